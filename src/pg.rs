//! Small things every module that talks to Postgres needs: quoting an
//! identifier, the text of an error, the server's version, rounding figures
//! for the record.

/// `"name"` with embedded quotes doubled: safe to splice into SQL.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled: a safe SQL string literal
/// (standard_conforming_strings is on in every supported version).
pub fn quote_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The text of a Postgres error for messages: the server's message with its
/// SQLSTATE, detail and hint; for other errors the whole cause chain
/// ("error connecting to server: Connection refused (os error 111)"), since
/// tokio-postgres' own Display stops at the first.
pub fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str("; ");
                s.push_str(d);
            }
            if let Some(h) = db.hint() {
                s.push_str("; hint: ");
                s.push_str(h);
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut cause = std::error::Error::source(e);
            while let Some(c) = cause {
                let text = c.to_string();
                if !s.contains(&text) {
                    s.push_str(": ");
                    s.push_str(&text);
                }
                cause = c.source();
            }
            s
        }
    }
}

/// The SQLSTATE and message (with its detail) of an error: the server's, or `08006` and the
/// cause chain when the connection itself failed.
/// The server's error position: the character (from 1) of the text sent
/// that the error points to, when it gives one.
pub fn error_position(e: &tokio_postgres::Error) -> Option<usize> {
    match e.as_db_error()?.position()? {
        tokio_postgres::error::ErrorPosition::Original(p) => Some(*p as usize),
        tokio_postgres::error::ErrorPosition::Internal { .. } => None,
    }
}

pub fn sqlstate_and_message(e: &tokio_postgres::Error) -> (String, String) {
    match e.as_db_error() {
        // The detail names what failed ("Key (email)=(a@x) is
        // duplicated.", the row a constraint rejected): the part a reader
        // of a failed migration needs.
        Some(db) => (
            db.code().code().to_string(),
            match db.detail() {
                Some(d) => format!("{}; {d}", db.message()),
                None => db.message().to_string(),
            },
        ),
        None => (
            "08006".to_string(),
            format!("connection lost: {}", error_text(e)),
        ),
    }
}

/// The server's version ("15.18", without a distribution's suffix such as
/// " (Debian 15.18-0+deb12u1)") and its `server_version_num` (150018).
pub async fn server_version(
    client: &tokio_postgres::Client,
) -> Result<(String, u32), tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT current_setting('server_version'), current_setting('server_version_num')::int",
            &[],
        )
        .await?;
    let version: String = row.get(0);
    let num: i32 = row.get(1);
    let version = version.split_whitespace().next().unwrap_or_default();
    Ok((version.to_string(), num as u32))
}

/// The oldest server pgrehearse measures: `pg_locks.waitstart` (when a
/// lock wait began) is new in PostgreSQL 14, and every lock wait and hold is
/// timed from it.
pub const MIN_SERVER_VERSION_NUM: u32 = 140000;

/// Refuse a server older than [`MIN_SERVER_VERSION_NUM`] before anything is
/// created on it: "no usable Postgres" (exit 3), naming the version found,
/// where, and what is needed.
pub fn require_supported(version: &str, version_num: u32, target: &str) -> crate::Result<()> {
    if version_num >= MIN_SERVER_VERSION_NUM {
        return Ok(());
    }
    Err(crate::Error::NoPostgres(format!(
        "{target} runs PostgreSQL {version} (server_version_num {version_num}): pgrehearse \
         needs PostgreSQL 14 or newer, whose pg_locks.waitstart times every lock wait; \
         rehearse on a server of version 14 or newer (a restored copy, or --backend local/docker)"
    )))
}

/// Which tables sizes count, besides the ones watched by oid from the start
/// (followed through renames): the tables that bear the scenario's names
/// now, and with `[migrations]` every table there is now. A table swap's
/// new table (created, filled, renamed to the old one's name) then counts
/// once it has the name — from its creation, with `[migrations]`, where a
/// copy's growth is what a capacity review asks about — and the old one
/// until it is dropped.
#[derive(Debug, Clone, Default)]
pub struct SizedTables {
    pub names: Vec<String>,
    pub every_table: bool,
}

impl SizedTables {
    /// An `oid[]` expression over three parameters — `$oids` (oid[], the
    /// tables watched by oid), `$names` (text[], [`SizedTables::names`]),
    /// `$every` (bool, [`SizedTables::every_table`]) — for
    /// [`scenario_storage_ctes`]. A name is resolved as
    /// [`table_oids`] resolves it (as one identifier, then as SQL), the
    /// second only when it parses as `[schema.]name`: `to_regclass` raises
    /// on bad syntax, and one bad name must not lose the whole read.
    pub fn oids_sql(oids: usize, names: usize, every: usize) -> String {
        format!(
            "ARRAY(SELECT unnest(${oids}::oid[]) \
               UNION SELECT CASE WHEN to_regclass(quote_ident(n)) IS NOT NULL \
                    THEN to_regclass(quote_ident(n)) \
                    WHEN n ~ '^(\"([^\"]|\"\")+\"|[[:alpha:]_][[:alnum:]_$]*)(\\.(\"([^\"]|\"\")+\"|[[:alpha:]_][[:alnum:]_$]*))?$' \
                    THEN to_regclass(n) END::oid FROM unnest(${names}::text[]) n \
               UNION SELECT c.oid FROM pg_class c WHERE ${every} AND c.relkind IN ('r', 'p', 'm') \
                 AND c.relpersistence <> 't' AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, \
                     'information_schema'::regnamespace, 'pg_toast'::regnamespace))"
        )
    }
}

/// A pg_locks row's name, as locks.csv and waits.csv give it: its
/// relation; `advisory <key>` for an advisory lock (the bigint key of
/// `pg_advisory_lock(bigint)`, or `k1,k2` of the two-int form), which apps
/// take on their own keys and wait for as they wait for a table; else its
/// locktype.
pub const LOCK_NAME_SQL: &str =
    "coalesce(relation::regclass::text, CASE WHEN locktype = 'advisory' \
    THEN 'advisory ' || CASE WHEN objsubid = 1 THEN ((classid::int8 << 32) | objid::int8)::text \
    ELSE classid::text || ',' || objid::text END ELSE locktype END)";

/// The opening of a query over the scenario's tables' storage, as
/// `WITH RECURSIVE` CTEs, `oids` being SQL for an oid[] of the tables
/// ([`table_oids`]; `$1`): by oid, not by name, so that a table of the same
/// name in another schema is not taken for it, and a renamed one is still
/// followed. `tree`, those tables (plain, partitioned, materialized views)
/// and everything in a partitioned one's
/// partition tree; `tabs` (oid, reltoastrelid), the relations of it that
/// hold rows — plain tables and materialized views, a partitioned table by
/// its leaves — each once (a partition also named, as with `[migrations]`'
/// every table, is counted once). A partitioned table has no storage of its
/// own: its size is its leaves' (their TOAST and indexes are found from
/// them, as a plain table's). The tree is read from pg_inherits, a catalog
/// read that takes no lock (pg_partition_tree locks every partition, and
/// sizes must never queue behind the migration's locks). Append more CTEs
/// with `, name AS (...)`, or the query's SELECT.
pub fn scenario_storage_ctes(oids: &str) -> String {
    format!(
        "WITH RECURSIVE tree(oid, relkind) AS ( \
            SELECT c.oid, c.relkind FROM pg_class c \
            WHERE c.oid = ANY({oids}) AND c.relkind IN ('r', 'm', 'p') \
            UNION SELECT c.oid, c.relkind FROM tree t \
              JOIN pg_inherits i ON i.inhparent = t.oid JOIN pg_class c ON c.oid = i.inhrelid \
            WHERE t.relkind = 'p'), \
         tabs AS (SELECT c.oid, c.reltoastrelid FROM pg_class c \
            WHERE c.oid IN (SELECT oid FROM tree WHERE relkind IN ('r', 'm'))) "
    )
}

/// The oids of the tables a scenario names, as seeding resolved them: the
/// name as one identifier first (`Order Items`), then as SQL
/// (`inv.items`, `Orders` folding to orders), on the search path. A name
/// that resolves to nothing (or cannot be resolved) is left out.
pub async fn table_oids(client: &tokio_postgres::Client, names: &[String]) -> Vec<u32> {
    let mut oids = Vec::new();
    for name in names {
        let row = client
            .query_one(
                "SELECT coalesce(to_regclass(quote_ident($1)), to_regclass($1))::oid",
                &[name],
            )
            .await;
        if let Ok(Some(oid)) = row.map(|r| r.get::<_, Option<u32>>(0)) {
            if !oids.contains(&oid) {
                oids.push(oid);
            }
        }
    }
    oids
}

/// An oid[] literal for SQL: `'{16390,16400}'::oid[]`.
pub fn oid_array(oids: &[u32]) -> String {
    let list: Vec<String> = oids.iter().map(u32::to_string).collect();
    format!("'{{{}}}'::oid[]", list.join(","))
}

/// Milliseconds (or any figure) to 3 decimals: what the CSVs and JSON keep.
pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Ratios to 6 decimals.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_quoted() {
        assert_eq!(quote_literal("orders"), "'orders'");
        assert_eq!(quote_literal("o'brien"), "'o''brien'");
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("orders"), "\"orders\"");
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
    }

    #[test]
    fn servers_older_than_14_are_refused_by_name() {
        assert!(require_supported("14.0", 140000, "x").is_ok());
        assert!(require_supported("17.2", 170002, "x").is_ok());
        let e = require_supported("13.16", 130016, "postgres://u@db:5432/app").unwrap_err();
        assert_eq!(e.exit_code(), crate::error::exit::NO_POSTGRES);
        let msg = e.to_string();
        for want in [
            "postgres://u@db:5432/app",
            "13.16",
            "14 or newer",
            "waitstart",
        ] {
            assert!(msg.contains(want), "{msg}");
        }
    }

    #[test]
    fn rounding() {
        assert_eq!(round3(1.23456), 1.235);
        assert_eq!(round6(0.1234567), 0.123457);
    }
}
