//! Before seeding: can the rehearsal open every session it will hold at
//! once? A role's CONNECTION LIMIT, the database's, or a server near
//! max_connections would otherwise refuse one mid-run — a script, the
//! migration — and the rehearsal would measure another scenario or fail
//! with a bare connection error. Too few is "cannot connect" (exit 3),
//! naming the limit and the number needed.

use tokio_postgres::Client;

use super::stage::HARNESS_APP_NAME;
use crate::backend::ConnInfo;
use crate::error::{Error, Result};
use crate::scenario::Scenario;

/// The harness's own sessions while traffic runs: the wait observer, the
/// server sampler, the lock poller (`observe`), the migration session and
/// the health check.
pub const HARNESS_SESSIONS: usize = 5;

/// The sessions a rehearsal of `s` holds at once, and what they are.
pub fn sessions_needed(s: &Scenario) -> (usize, String) {
    let apps = s.workload.apps().len().max(1);
    let clients = s.workload.clients as usize * apps;
    let scripts = s.workload.scripts.len();
    let total = clients + scripts + HARNESS_SESSIONS;
    let what = format!(
        "{clients} app connection(s) ({} client(s) × {apps} app version(s)), {scripts} \
         script(s), {HARNESS_SESSIONS} of its own (observers, migration, health check)",
        s.workload.clients
    );
    (total, what)
}

/// Refuse (exit 3) when a limit of the role, the database `conn` names or
/// the server leaves fewer connections than a rehearsal of `s` needs.
pub async fn check(conn: &ConnInfo, s: &Scenario) -> Result<()> {
    let (needed, what) = sessions_needed(s);
    let client = conn.session(HARNESS_APP_NAME).await?;
    let limits = read_limits(&client).await.map_err(|e| {
        Error::NoPostgres(format!(
            "cannot read the connection limits of role {} on {}: {}",
            conn.user,
            conn.redacted(),
            crate::pg::error_text(&e)
        ))
    })?;
    drop(client);
    match limits.shortest(needed) {
        None => Ok(()),
        Some(short) => Err(Error::NoPostgres(format!(
            "the rehearsal needs {needed} connections at once — {what} — but {short}; \
             raise the limit or lower the scenario's [workload] clients"
        ))),
    }
}

/// What the server says about the connections this role may still open.
#[derive(Debug, Clone, PartialEq)]
struct Limits {
    role: String,
    /// -1: none.
    rolconnlimit: i64,
    /// Sessions of the role already open in other databases: those in this
    /// one are this process's own (a database it created or works in),
    /// possibly still exiting after their client closed them.
    role_open: i64,
    database: String,
    datconnlimit: i64,
    database_open: i64,
    max_connections: i64,
    /// Reserved for superusers (and pg_use_reserved_connections on 16+),
    /// 0 for a role that may use them.
    reserved: i64,
    server_open: i64,
}

async fn read_limits(c: &Client) -> std::result::Result<Limits, tokio_postgres::Error> {
    // Reserved for superusers, and on 16+ (reserved_connections) for who
    // is not a member of pg_use_reserved_connections.
    const RESERVED_16: &str = "current_setting('superuser_reserved_connections')::int8 \
        + CASE WHEN pg_has_role(current_user, 'pg_use_reserved_connections', 'MEMBER') \
               THEN 0 \
               ELSE coalesce(current_setting('reserved_connections', true), '0')::int8 END";
    const RESERVED_15: &str = "current_setting('superuser_reserved_connections')::int8";
    match read_limits_with(c, RESERVED_16).await {
        // pg_use_reserved_connections exists from 16 on; before, ask without it.
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNDEFINED_OBJECT) => {
            read_limits_with(c, RESERVED_15).await
        }
        r => r,
    }
}

async fn read_limits_with(
    c: &Client,
    reserved: &str,
) -> std::result::Result<Limits, tokio_postgres::Error> {
    // Every figure here is readable by any role: the counts come from
    // pg_stat_activity's rows (other roles' columns are hidden, not their
    // rows), the settings are not superuser-only.
    let sql = format!(
        "SELECT current_user::text, r.rolconnlimit::int8, \
           (SELECT count(*) FROM pg_stat_activity a WHERE a.usename = current_user \
              AND a.datname IS DISTINCT FROM current_database()), \
           current_database()::text, d.datconnlimit::int8, \
           (SELECT count(*) FROM pg_stat_activity a WHERE a.datname = current_database() \
              AND a.pid <> pg_backend_pid()), \
           current_setting('max_connections')::int8, \
           CASE WHEN r.rolsuper THEN 0 ELSE {reserved} END, \
           (SELECT count(*) FROM pg_stat_activity a WHERE a.backend_type = 'client backend' \
              AND a.pid <> pg_backend_pid()) \
         FROM pg_roles r, pg_database d \
         WHERE r.rolname = current_user AND d.datname = current_database()"
    );
    let row = c.query_one(&sql, &[]).await?;
    Ok(limits_of(&row))
}

fn limits_of(row: &tokio_postgres::Row) -> Limits {
    Limits {
        role: row.get(0),
        rolconnlimit: row.get(1),
        role_open: row.get(2),
        database: row.get(3),
        datconnlimit: row.get(4),
        database_open: row.get(5),
        max_connections: row.get(6),
        reserved: row.get(7),
        server_open: row.get(8),
    }
}

impl Limits {
    /// The first limit that leaves fewer than `needed`, said.
    fn shortest(&self, needed: usize) -> Option<String> {
        let needed = needed as i64;
        if self.rolconnlimit >= 0 && self.rolconnlimit - self.role_open < needed {
            return Some(format!(
                "role {} may open only {} more (CONNECTION LIMIT {}, {} open already; \
                 ALTER ROLE {} CONNECTION LIMIT {} would do)",
                self.role,
                (self.rolconnlimit - self.role_open).max(0),
                self.rolconnlimit,
                self.role_open,
                crate::pg::quote_ident(&self.role),
                needed + self.role_open
            ));
        }
        if self.datconnlimit >= 0 && self.datconnlimit - self.database_open < needed {
            return Some(format!(
                "database {} takes only {} more (CONNECTION LIMIT {}, {} open already)",
                self.database,
                (self.datconnlimit - self.database_open).max(0),
                self.datconnlimit,
                self.database_open
            ));
        }
        let free = self.max_connections - self.reserved - self.server_open;
        if free < needed {
            return Some(format!(
                "the server takes only {} more (max_connections {}, {} reserved for \
                 superusers, {} open already)",
                free.max(0),
                self.max_connections,
                self.reserved,
                self.server_open
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            role: "owner_l".into(),
            rolconnlimit: -1,
            role_open: 0,
            database: "d".into(),
            datconnlimit: -1,
            database_open: 0,
            max_connections: 100,
            reserved: 3,
            server_open: 5,
        }
    }

    #[test]
    fn each_limit_is_named_with_what_it_leaves() {
        assert_eq!(limits().shortest(92), None);
        let e = limits().shortest(93).unwrap();
        assert!(e.contains("only 92 more (max_connections 100"), "{e}");
        let role = Limits {
            rolconnlimit: 11,
            role_open: 1,
            ..limits()
        };
        assert_eq!(role.shortest(10), None);
        let e = role.shortest(12).unwrap();
        assert!(
            e.contains("role owner_l may open only 10 more (CONNECTION LIMIT 11, 1 open")
                && e.contains("CONNECTION LIMIT 13 would do"),
            "{e}"
        );
        let db = Limits {
            datconnlimit: 4,
            ..limits()
        };
        assert!(db.shortest(5).unwrap().contains("database d takes only 4"));
    }
}
