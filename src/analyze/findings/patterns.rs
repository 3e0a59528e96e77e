//! The safe pattern to use instead of a statement that hurt the app, chosen
//! from what the statement is. Each comes with a short SQL example built
//! from the statement itself where that is possible.

use regex::Regex;

pub use attach::{with_partitioning, Partitioning};

use super::finding::SafePattern;

mod attach;

fn re(p: &str) -> Regex {
    Regex::new(p).expect("static regex")
}

fn pattern(advice: &str, sql: String) -> SafePattern {
    SafePattern {
        advice: advice.to_string(),
        sql,
    }
}

pub(crate) use crate::sql::one_line;

/// The batches of the advice, `WHERE id > $1 AND id <= $2`, over the
/// table's own key (`key`, a column name as the catalog spells it).
pub fn batched_by(sql: &str, key: &str) -> String {
    // Quoted only where it must be: `aid`, but `"Order ID"`.
    let key = as_identifier(key);
    sql.replace(
        "WHERE id > $1 AND id <= $2",
        &format!("WHERE {key} > $1 AND {key} <= $2"),
    )
}

#[cfg(test)]
#[test]
fn batches_go_by_the_key_quoted_only_where_it_must_be() {
    let sql = "UPDATE t SET c = 1 WHERE id > $1 AND id <= $2;";
    assert_eq!(
        batched_by(sql, "aid"),
        "UPDATE t SET c = 1 WHERE aid > $1 AND aid <= $2;"
    );
    assert_eq!(
        batched_by(sql, "Order ID"),
        "UPDATE t SET c = 1 WHERE \"Order ID\" > $1 AND \"Order ID\" <= $2;"
    );
}

/// The safe way to run `sql` without holding a lock that blocks the app.
pub fn for_statement(sql: &str, relation: &str) -> SafePattern {
    let s = sql.trim().trim_end_matches(';');
    let up = s.to_ascii_uppercase();
    let create_index = re(r"(?i)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(IF\s+NOT\s+EXISTS\s+)?");
    if create_index.is_match(s) && !up.contains("CONCURRENTLY") {
        let conc = create_index.replace(s, "CREATE ${1}INDEX CONCURRENTLY ${2}");
        return pattern(
            "Build the index with CREATE INDEX CONCURRENTLY in a step with transaction = false: it takes SHARE UPDATE EXCLUSIVE, which lets reads and writes continue. If it fails it leaves an INVALID index: drop it with DROP INDEX CONCURRENTLY and retry.",
            format!("{conc};"),
        );
    }
    if let Some(p) = attach::advice(s, None) {
        return p;
    }
    if up.contains("FOREIGN KEY") || (up.contains("ADD CONSTRAINT") && up.contains("REFERENCES")) {
        let name = constraint_name(s).unwrap_or_else(|| "fk_name".into());
        return pattern(
            "Add the foreign key NOT VALID (a brief lock, no scan), then VALIDATE CONSTRAINT in a separate step: validation takes SHARE UPDATE EXCLUSIVE on the table and ROW SHARE on the referenced one, so writes continue.",
            format!("{s} NOT VALID;\n-- next step:\nALTER TABLE {relation} VALIDATE CONSTRAINT {name};"),
        );
    }
    if up.contains("SET NOT NULL") {
        let col = re(&format!(
            r"(?i)ALTER\s+COLUMN\s+{}\s+SET\s+NOT\s+NULL",
            ident()
        ))
        .captures(s)
        .map(|c| c[1].to_string())
        .unwrap_or_else(|| "col".into());
        let check = derived(&col, "_not_null");
        return pattern(
            "Prove the column has no NULLs with a CHECK constraint added NOT VALID and validated separately; SET NOT NULL then skips its full-table scan under ACCESS EXCLUSIVE (PostgreSQL 12+).",
            format!(
                "ALTER TABLE {relation} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID;\nALTER TABLE {relation} VALIDATE CONSTRAINT {check};\nALTER TABLE {relation} ALTER COLUMN {col} SET NOT NULL;\nALTER TABLE {relation} DROP CONSTRAINT {check};"
            ),
        );
    }
    if up.contains("CHECK") && up.contains("ADD") && !up.contains("NOT VALID") {
        let name = constraint_name(s).unwrap_or_else(|| "check_name".into());
        return pattern(
            "Add the CHECK constraint NOT VALID, then VALIDATE CONSTRAINT in a separate step (SHARE UPDATE EXCLUSIVE: reads and writes continue).",
            format!("{s} NOT VALID;\n-- next step:\nALTER TABLE {relation} VALIDATE CONSTRAINT {name};"),
        );
    }
    if re(r"(?i)ALTER\s+COLUMN\s+\S+\s+(SET\s+DATA\s+)?TYPE").is_match(s) {
        return pattern(
            "Change the type by expand/contract: add a new column, keep it in sync with a trigger, backfill it in batches, switch the app, then drop the old column. Only binary-compatible changes (e.g. varchar(n) to text) avoid the rewrite.",
            format!(
                "ALTER TABLE {relation} ADD COLUMN new_col new_type;\n-- trigger to copy writes, then in batches:\nUPDATE {relation} SET new_col = old_col::new_type WHERE id > $1 AND id <= $2;\n-- after the app reads new_col:\nALTER TABLE {relation} DROP COLUMN old_col;"
            ),
        );
    }
    if up.contains("ADD COLUMN") && volatile_default(&up) {
        return pattern(
            "A volatile default rewrites the table. Add the column without a default, set the default for new rows, then backfill existing rows in batches.",
            volatile_default_backfill(s, relation),
        );
    }
    if up.contains("PRIMARY KEY") || (up.contains("ADD CONSTRAINT") && up.contains("UNIQUE")) {
        return pattern(
            "Build the unique index CONCURRENTLY first, then attach it as the constraint (a brief lock, no scan).",
            key_from_index(s, relation),
        );
    }
    if up.starts_with("UPDATE") || up.starts_with("DELETE") {
        return pattern(
            "Change rows in short batches, one transaction each, with a pause between batches (a backfill step), so row locks and WAL are spread out.",
            format!("UPDATE {relation} SET ... WHERE id > $1 AND id <= $2; -- 10k rows per batch, pause 20ms"),
        );
    }
    if let Some(p) = online_form(s) {
        return p;
    }
    if up.starts_with("VACUUM FULL") || up.starts_with("CLUSTER") {
        return pattern(
            "VACUUM FULL and CLUSTER rewrite the table under ACCESS EXCLUSIVE. Use pg_repack (or pg_squeeze), which rebuilds online.",
            format!("pg_repack --table={relation} --no-superuser-check"),
        );
    }
    if re(r"(?is)\bSET\s+TABLESPACE\b").is_match(s) && up.starts_with("ALTER TABLE") {
        return pattern(
            "SET TABLESPACE copies the table, block by block, under ACCESS EXCLUSIVE: reads and writes wait for the whole copy, and no lock_timeout shortens it. PostgreSQL has no online form; pg_repack moves a table (and its indexes) to another tablespace online.",
            format!("pg_repack --table={relation} --tablespace=<new tablespace> --moveidx --no-superuser-check"),
        );
    }
    if re(r"(?is)\bADD\s+(CONSTRAINT\s+\S+\s+)?EXCLUDE\b").is_match(s) {
        return pattern(
            "ADD CONSTRAINT ... EXCLUDE builds its index and checks every row under ACCESS EXCLUSIVE: reads and writes wait for all of it, and no lock_timeout shortens it. PostgreSQL has no NOT VALID or USING INDEX for an exclusion constraint. Add it while the table is small, in a maintenance window, or on a new table that takes over: create it with the constraint, copy the rows in batches (a trigger copying writes meanwhile), then swap the names in one brief transaction.",
            format!("CREATE TABLE {relation}_new (LIKE {relation} INCLUDING ALL, {});\n-- trigger to copy writes, then in batches:\nINSERT INTO {relation}_new SELECT * FROM {relation} WHERE id > $1 AND id <= $2;\n-- one brief transaction:\nALTER TABLE {relation} RENAME TO {relation}_old;\nALTER TABLE {relation}_new RENAME TO {relation};",
                re(r"(?is)^.*?\bADD\s+").replace(s, "")),
        );
    }
    lock_timeout(s)
}

/// The name an `ADD CONSTRAINT name ...` gives, as written.
fn constraint_name(s: &str) -> Option<String> {
    re(&format!(r"(?i)ADD\s+CONSTRAINT\s+{}", ident()))
        .captures(s)
        .map(|c| c[1].to_string())
}

/// A UNIQUE or PRIMARY KEY constraint added from an index built
/// CONCURRENTLY: the statement's own constraint name and columns where it
/// gives them.
fn key_from_index(s: &str, relation: &str) -> String {
    let primary = re(r"(?i)\bPRIMARY\s+KEY\b").is_match(s);
    let (kind, suffix) = if primary {
        ("PRIMARY KEY", "_pkey")
    } else {
        ("UNIQUE", "_key")
    };
    let columns = re(r"(?is)\b(?:UNIQUE|PRIMARY\s+KEY)\s*\(([^)]*)\)")
        .captures(s)
        .map_or_else(|| "col".to_string(), |c| c[1].trim().to_string());
    let name = constraint_name(s).unwrap_or_else(|| derived(relation, suffix));
    let index = derived(&name, "_idx");
    format!(
        "CREATE UNIQUE INDEX CONCURRENTLY {index} ON {relation} ({columns});\nALTER TABLE {relation} ADD CONSTRAINT {name} {kind} USING INDEX {index};"
    )
}

/// ADD COLUMN with a volatile default, as three steps: the column without
/// it, the default for new rows, existing rows in batches. The column, its
/// type and default are the statement's where it spells them plainly.
fn volatile_default_backfill(s: &str, relation: &str) -> String {
    // NOT NULL may come before DEFAULT or after it (`uuid NOT NULL DEFAULT
    // gen_random_uuid()` is the usual spelling): taken out first, so that
    // neither the type nor the default swallows it.
    let parts = re(&format!(
        r"(?is)ADD\s+COLUMN\s+(?:IF\s+NOT\s+EXISTS\s+)?{}\s+(.+?)\s*$",
        ident()
    ))
    .captures(s)
    .and_then(|c| {
        let rest = c[2].to_string();
        let not_null = re(r"(?i)\bNOT\s+NULL\b").is_match(&rest);
        let rest = re(r"(?i)\s*\bNOT\s+NULL\b").replace_all(&rest, "");
        let d = re(r"(?is)^(.+?)\s+DEFAULT\s+(.+?)\s*$").captures(&rest)?;
        Some((
            c[1].to_string(),
            d[1].to_string(),
            d[2].to_string(),
            not_null,
        ))
    });
    let (col, ty, default, not_null) =
        parts.unwrap_or_else(|| ("col".into(), "type".into(), "expr".into(), false));
    let mut sql = format!(
        "ALTER TABLE {relation} ADD COLUMN {col} {ty};\nALTER TABLE {relation} ALTER COLUMN {col} SET DEFAULT {default};\nUPDATE {relation} SET {col} = {default} WHERE id > $1 AND id <= $2 AND {col} IS NULL; -- in batches"
    );
    if not_null {
        let check = derived(&col, "_not_null");
        sql.push_str(&format!(
            "\n-- then NOT NULL through a validated CHECK (SET NOT NULL then skips its scan):\nALTER TABLE {relation} ADD CONSTRAINT {check} CHECK ({col} IS NOT NULL) NOT VALID;\nALTER TABLE {relation} VALIDATE CONSTRAINT {check};\nALTER TABLE {relation} ALTER COLUMN {col} SET NOT NULL;\nALTER TABLE {relation} DROP CONSTRAINT {check};"
        ));
    }
    sql
}

/// Does an ADD COLUMN's DEFAULT call a volatile function? Since PostgreSQL
/// 11 a constant or stable default (`'local'`, `now()`) is stored once and
/// rewrites nothing; a volatile one is computed per row, by a rewrite.
fn volatile_default(up: &str) -> bool {
    const VOLATILE: &[&str] = &[
        "RANDOM(",
        "GEN_RANDOM_UUID(",
        "UUID_GENERATE_V",
        "CLOCK_TIMESTAMP(",
        "TIMEOFDAY(",
        "NEXTVAL(",
        "UUIDV7(",
        "UUIDV4(",
    ];
    up.split_once("DEFAULT").is_some_and(|(_, rest)| {
        let rest: String = rest.chars().filter(|c| !c.is_whitespace()).collect();
        VOLATILE.iter().any(|f| rest.contains(f))
    })
}

/// Statements that have an online form of their own: (the statement, as a
/// regex; its online form, as the replacement; why).
const ONLINE: &[(&str, &str, &str)] = &[
    (
        r"(?i)^\s*REFRESH\s+MATERIALIZED\s+VIEW\s+",
        "REFRESH MATERIALIZED VIEW CONCURRENTLY ",
        "REFRESH MATERIALIZED VIEW holds ACCESS EXCLUSIVE on the view while it recomputes it: every read of the view waits. REFRESH ... CONCURRENTLY takes EXCLUSIVE, which lets reads go on; it needs a unique index on the view (made once, CONCURRENTLY).",
    ),
    (
        r"(?i)^\s*REINDEX\s+(INDEX|TABLE)\s+",
        "REINDEX ${1} CONCURRENTLY ",
        "REINDEX blocks writes to the table (and reads that would use the index) for the whole rebuild. REINDEX ... CONCURRENTLY (PostgreSQL 12+) builds the new index beside the old and swaps them under a brief lock; run it in a step with transaction = false.",
    ),
    (
        r"(?i)^\s*DROP\s+INDEX\s+",
        "DROP INDEX CONCURRENTLY ",
        "DROP INDEX takes ACCESS EXCLUSIVE on the index's table: brief, but it waits behind any running query on the table, and every query queues behind it. DROP INDEX CONCURRENTLY waits for them without blocking anyone; run it in a step with transaction = false.",
    ),
    (
        r"(?i)\bDETACH\s+PARTITION\s+(\S+)\s*$",
        "DETACH PARTITION ${1} CONCURRENTLY",
        "DETACH PARTITION takes ACCESS EXCLUSIVE on the parent: every query on the partitioned table waits. DETACH PARTITION ... CONCURRENTLY (PostgreSQL 14+) takes SHARE UPDATE EXCLUSIVE; run it in a step with transaction = false.",
    ),
];

/// The online form of a statement that has one (see [`ONLINE`]).
fn online_form(s: &str) -> Option<SafePattern> {
    if s.to_ascii_uppercase().contains("CONCURRENTLY") {
        return None;
    }
    ONLINE.iter().find_map(|(statement, online, why)| {
        let r = re(statement);
        r.is_match(s)
            .then(|| pattern(why, r.replace(s, *online).to_string() + ";"))
    })
}

/// The safe way for a statement that locked a partitioned table's parent
/// and its partitions together. CREATE INDEX CONCURRENTLY refuses a
/// partitioned table: the parent's index is made ON ONLY the parent
/// (invalid, nothing built), each partition's built CONCURRENTLY and
/// attached; the parent's index turns valid with the last one.
pub fn for_partitioned(sql: &str, parent: &str, partitions: &[&str]) -> SafePattern {
    let s = sql.trim().trim_end_matches(';');
    let index = re(&format!(
        r"(?is)^\s*CREATE\s+(UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?(?:{}\s+)?ON\s+(?:ONLY\s+)?{}\s*(.*)$",
        ident(),
        qualified()
    ));
    let Some(c) = index
        .captures(s)
        .filter(|_| !s.to_ascii_uppercase().contains("CONCURRENTLY"))
    else {
        return for_statement(sql, parent);
    };
    let unique = c.get(1).map_or("", |m| m.as_str());
    let name = c
        .get(2)
        .map_or_else(|| derived(parent, "_idx"), |m| m.as_str().to_string());
    let (table, rest) = (&c[3], &c[4]);
    let mut example = format!(
        "-- the parent's index, building nothing (invalid until every partition has one):\nCREATE {unique}INDEX {name} ON ONLY {table} {rest};\n-- each partition, writes going on (a step each, transaction = false):\n"
    );
    for p in partitions.iter().take(3) {
        let child = derived(p, &format!("_{}", bare(&name)));
        example.push_str(&format!(
            "CREATE {unique}INDEX CONCURRENTLY {child} ON {p} {rest};\nALTER INDEX {} ATTACH PARTITION {};\n",
            beside(table, &name),
            beside(p, &child)
        ));
    }
    if partitions.len() > 3 {
        example.push_str(&format!(
            "-- ... and so for the other {} partitions\n",
            partitions.len() - 3
        ));
    }
    pattern(
        "The index was built on the partitioned table and all its partitions at once, under SHARE on each: writes to every partition waited. CREATE INDEX CONCURRENTLY refuses a partitioned table, so build it per partition: create the parent's index ON ONLY the parent (no build; invalid), build each partition's index CONCURRENTLY and ATTACH it; the parent's index becomes valid when the last partition's is attached.",
        example.trim_end().to_string(),
    )
}

/// A relation's or column's name without schema or quotes, for deriving
/// names: `"App Data"."Order Items"` gives `Order Items`.
fn bare(ident: &str) -> String {
    parts(ident).pop().unwrap_or_default()
}

/// The parts of a name, schema first, unquoted.
fn parts(ident: &str) -> Vec<String> {
    split_name(ident, false)
}

/// The parts of a name, schema first, unquoted; with `fold`, the parts
/// that were not quoted in lower case, as the server reads them.
fn split_name(ident: &str, fold: bool) -> Vec<String> {
    let (mut out, mut part, mut quoted, mut was_quoted) = (Vec::new(), String::new(), false, false);
    let mut push = |part: &mut String, was_quoted: bool| {
        let p = std::mem::take(part);
        out.push(if fold && !was_quoted {
            p.to_lowercase()
        } else {
            p
        });
    };
    let mut chars = ident.trim().chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                part.push('"');
            }
            '"' => {
                quoted = !quoted;
                was_quoted = true;
            }
            '.' if !quoted => {
                push(&mut part, was_quoted);
                was_quoted = false;
            }
            c => part.push(c),
        }
    }
    push(&mut part, was_quoted);
    out
}

/// `name` (an identifier as SQL spells it) in `relation`'s schema, where
/// the relation names one: an index lives in its table's schema, which
/// need not be on the search_path.
fn beside(relation: &str, name: &str) -> String {
    let mut p = parts(relation);
    p.pop();
    match p.pop() {
        Some(schema) => format!("{}.{name}", as_identifier(&schema)),
        None => name.to_string(),
    }
}

/// A name made from `ident`'s (see [`bare`]) and `suffix`, as PostgreSQL
/// takes it in CREATE INDEX, ADD CONSTRAINT and USING INDEX: unqualified
/// (an index or constraint lives in its table's schema), quoted where it
/// must be, at most 63 bytes (what PostgreSQL would keep of it).
fn derived(ident: &str, suffix: &str) -> String {
    let mut name = format!("{}{suffix}", bare(ident));
    while name.len() > 63 {
        name.pop();
    }
    as_identifier(&name)
}

/// `name` as SQL spells it: as is where it is a plain lower-case
/// identifier, else quoted.
pub(crate) fn as_identifier(name: &str) -> String {
    let plain = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain && !RESERVED.contains(&name) {
        name.to_string()
    } else {
        crate::pg::quote_ident(name)
    }
}

/// PostgreSQL's reserved key words (and those only a function or type may
/// be named): a column named one must be quoted.
const RESERVED: &[&str] = &[
    "all",
    "analyse",
    "analyze",
    "and",
    "any",
    "array",
    "as",
    "asc",
    "asymmetric",
    "authorization",
    "binary",
    "both",
    "case",
    "cast",
    "check",
    "collate",
    "collation",
    "column",
    "concurrently",
    "constraint",
    "create",
    "cross",
    "current_catalog",
    "current_date",
    "current_role",
    "current_schema",
    "current_time",
    "current_timestamp",
    "current_user",
    "default",
    "deferrable",
    "desc",
    "distinct",
    "do",
    "else",
    "end",
    "except",
    "false",
    "fetch",
    "for",
    "foreign",
    "freeze",
    "from",
    "full",
    "grant",
    "group",
    "having",
    "ilike",
    "in",
    "initially",
    "inner",
    "intersect",
    "into",
    "is",
    "isnull",
    "join",
    "lateral",
    "leading",
    "left",
    "like",
    "limit",
    "localtime",
    "localtimestamp",
    "natural",
    "not",
    "notnull",
    "null",
    "offset",
    "on",
    "only",
    "or",
    "order",
    "outer",
    "overlaps",
    "placing",
    "primary",
    "references",
    "returning",
    "right",
    "select",
    "session_user",
    "similar",
    "some",
    "symmetric",
    "system_user",
    "table",
    "tablesample",
    "then",
    "to",
    "trailing",
    "true",
    "union",
    "unique",
    "user",
    "using",
    "variadic",
    "verbose",
    "when",
    "where",
    "window",
    "with",
];

/// One part of a name as written in a statement: quoted (spaces, dots and
/// all) or not.
const PART: &str = r#"(?:"(?:[^"]|"")+"|[^\s(),;."]+)"#;

/// A regex group capturing a name of one part (a column, a constraint).
fn ident() -> String {
    format!("({PART})")
}

/// A regex group capturing a name that may be schema-qualified.
fn qualified() -> String {
    format!(r"({PART}(?:\.{PART})*)")
}

/// Work that ran under an ACCESS EXCLUSIVE lock an earlier statement of its
/// transaction took (`earlier`): commit that first and run `sql` in a
/// transaction of its own, where it takes only the lock it needs.
pub fn split_transaction(earlier: &str, sql: &str, relation: &str) -> SafePattern {
    let validate = re(r"(?i)\bVALIDATE\s+CONSTRAINT\b").is_match(sql);
    let own_lock = if validate {
        "VALIDATE CONSTRAINT takes only SHARE UPDATE EXCLUSIVE, so reads and writes go on while it scans"
    } else {
        "it takes only the lock it needs itself"
    };
    pattern(
        &format!("`{}` ran in the same transaction as `{}`, which took ACCESS EXCLUSIVE on {relation}: the scan ran under that lock until COMMIT. Commit the first statement on its own (under a short lock_timeout), then run this one in a separate transaction, where {own_lock}. In migration files that means two files: Flyway, golang-migrate, dbmate and Prisma run each file in one transaction.", one_line(sql, 80), one_line(earlier, 80)),
        format!(
            "-- one migration (its own transaction):\nSET lock_timeout = '2s';\n{};\n-- the next migration (a transaction of its own):\n{};",
            one_line(earlier.trim().trim_end_matches(';'), 160),
            one_line(sql.trim().trim_end_matches(';'), 160)
        ),
    )
}

/// Bound the wait for the lock and retry: a pending request that cannot be
/// granted quickly gives up instead of queueing the app behind it.
pub fn lock_timeout(sql: &str) -> SafePattern {
    pattern(
        "Set a short lock_timeout on the step (100 ms: below what the app tolerates waiting) and retries with backoff, so a lock request that cannot be granted quickly gives up instead of making every app query on the table queue behind it; keep the transaction short. It bounds the queue before the lock, not the work done while holding it.",
        format!("SET lock_timeout = '100ms';\n{};\n-- scenario: lock_timeout = \"100ms\", retries = 10", one_line(sql.trim().trim_end_matches(';'), 160)),
    )
}

/// For a step that has a lock_timeout (`ms`) and still let the app queue
/// behind its pending request: the timeout is the queue's length, so it
/// must be shorter than what the app tolerates.
pub fn shorter_lock_timeout(sql: &str, ms: f64) -> SafePattern {
    let shorter = (ms / 4.0).clamp(50.0, 500.0);
    pattern(
        &format!("The step's lock_timeout of {ms:.0} ms is how long app queries may queue behind its pending request: make it shorter than the app tolerates (a few hundred ms at most) and let retries with backoff and jitter find a moment when the lock is free."),
        format!("SET lock_timeout = '{shorter:.0}ms';\n{};\n-- scenario: lock_timeout = \"{shorter:.0}ms\", retries = 10", one_line(sql.trim().trim_end_matches(';'), 160)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_with_an_online_form_get_it() {
        for (bad, good) in [
            (
                "REFRESH MATERIALIZED VIEW totals",
                "REFRESH MATERIALIZED VIEW CONCURRENTLY totals;",
            ),
            (
                "REINDEX INDEX orders_pkey;",
                "REINDEX INDEX CONCURRENTLY orders_pkey;",
            ),
            ("reindex table orders", "REINDEX table CONCURRENTLY orders;"),
            (
                "DROP INDEX IF EXISTS orders_status_idx",
                "DROP INDEX CONCURRENTLY IF EXISTS orders_status_idx;",
            ),
            (
                "ALTER TABLE events DETACH PARTITION events_2024",
                "ALTER TABLE events DETACH PARTITION events_2024 CONCURRENTLY;",
            ),
        ] {
            assert_eq!(for_statement(bad, "orders").sql, good, "{bad}");
        }
        // Already online, or nothing to make online: no such advice.
        assert!(online_form("REINDEX INDEX CONCURRENTLY i").is_none());
        assert!(online_form("ALTER TABLE e DETACH PARTITION p FINALIZE").is_none());
    }

    #[test]
    fn only_a_volatile_default_is_called_a_rewrite() {
        let volatile = for_statement(
            "ALTER TABLE t ADD COLUMN id uuid DEFAULT gen_random_uuid ()",
            "t",
        );
        assert!(
            volatile.advice.starts_with("A volatile default"),
            "{}",
            volatile.advice
        );
        for constant in [
            "ALTER TABLE t ADD COLUMN kind text NOT NULL DEFAULT 'local'",
            "ALTER TABLE t ADD COLUMN at timestamptz DEFAULT now()",
        ] {
            let p = for_statement(constant, "t");
            assert!(!p.advice.contains("volatile"), "{constant}: {}", p.advice);
        }
    }

    #[test]
    fn create_index_becomes_concurrently() {
        let p = for_statement("CREATE UNIQUE INDEX idx ON orders (customer_id)", "orders");
        assert_eq!(
            p.sql,
            "CREATE UNIQUE INDEX CONCURRENTLY idx ON orders (customer_id);"
        );
    }

    #[test]
    fn foreign_key_becomes_not_valid_then_validate() {
        let p = for_statement(
            "ALTER TABLE orders ADD CONSTRAINT fk_c FOREIGN KEY (customer_id) REFERENCES customers (id)",
            "orders",
        );
        assert!(p.sql.contains("NOT VALID"), "{}", p.sql);
        assert!(p.sql.contains("VALIDATE CONSTRAINT fk_c"), "{}", p.sql);
    }

    #[test]
    fn set_not_null_goes_through_a_check() {
        let p = for_statement(
            "ALTER TABLE orders ALTER COLUMN status SET NOT NULL",
            "orders",
        );
        assert!(
            p.sql.contains("CHECK (status IS NOT NULL) NOT VALID"),
            "{}",
            p.sql
        );
    }

    #[test]
    fn derived_names_are_unqualified_and_quoted_where_they_must_be() {
        let p = for_statement(
            r#"ALTER TABLE "App Data"."Order Items" ALTER COLUMN "Note" SET NOT NULL"#,
            r#""App Data"."Order Items""#,
        );
        assert!(
            p.sql
                .contains(r#"ADD CONSTRAINT "Note_not_null" CHECK ("Note" IS NOT NULL)"#),
            "{}",
            p.sql
        );
        let p = for_statement(
            "ALTER TABLE app.orders ADD CONSTRAINT orders_note_uq UNIQUE (note, id)",
            "app.orders",
        );
        assert_eq!(
            p.sql,
            "CREATE UNIQUE INDEX CONCURRENTLY orders_note_uq_idx ON app.orders (note, id);\nALTER TABLE app.orders ADD CONSTRAINT orders_note_uq UNIQUE USING INDEX orders_note_uq_idx;"
        );
        let p = for_statement("ALTER TABLE orders ADD PRIMARY KEY (id)", "orders");
        assert!(
            p.sql
                .contains("ADD CONSTRAINT orders_pkey PRIMARY KEY USING INDEX orders_pkey_idx"),
            "{}",
            p.sql
        );
        assert_eq!(bare(r#""a.b"."c""d""#), r#"c"d"#);
        assert_eq!(as_identifier("order"), r#""order""#);
        assert_eq!(as_identifier("order_id"), "order_id");
    }

    #[test]
    fn unknown_statements_get_lock_timeout() {
        let p = for_statement("ALTER TABLE orders RENAME COLUMN a TO b", "orders");
        assert!(p.sql.starts_with("SET lock_timeout = '100ms'"), "{}", p.sql);
    }

    /// Work under ACCESS EXCLUSIVE with no online form in core: the advice
    /// says so, rather than a lock_timeout that cannot shorten the hold.
    #[test]
    fn work_without_an_online_form_says_how_to_avoid_it() {
        let p = for_statement("ALTER TABLE orders SET TABLESPACE fast", "orders");
        assert!(
            p.advice.contains("no lock_timeout shortens it"),
            "{}",
            p.advice
        );
        assert!(
            p.sql.starts_with("pg_repack --table=orders --tablespace="),
            "{}",
            p.sql
        );
        let p = for_statement(
            "ALTER TABLE bookings ADD CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&)",
            "bookings",
        );
        assert!(
            p.advice.contains("no NOT VALID or USING INDEX"),
            "{}",
            p.advice
        );
        assert!(
            p.sql.starts_with("CREATE TABLE bookings_new (LIKE bookings INCLUDING ALL, CONSTRAINT no_overlap EXCLUDE USING gist (room WITH =, during WITH &&));"),
            "{}",
            p.sql
        );
    }
}
