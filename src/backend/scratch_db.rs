//! Creating and dropping the databases pgrehearse makes on a server that
//! outlives it (the url backend's scratch database, templates and clones),
//! so that no other session gets into them and none keeps them alive.
//!
//! - Right after CREATE DATABASE, `REVOKE CONNECT ... FROM PUBLIC`: only
//!   our role (the owner, whose own privilege stays) and superusers connect.
//!   A monitoring agent that connects to every database it sees would
//!   otherwise take locks the rehearsal measures as app waits and keep the
//!   database from being dropped.
//! - DROP DATABASE ... WITH (FORCE) ends the sessions still in it; one that
//!   our role may not end (a superuser's) makes it fail. We retry for a
//!   few seconds (such sessions tend to be short), then say which sessions
//!   held it and how to drop it later.

use std::time::{Duration, Instant};

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::pg::{error_text, quote_ident};

/// How long a drop keeps trying while other sessions hold the database.
const DROP_RETRY: Duration = Duration::from_secs(5);

/// How long CREATE DATABASE waits for template1 to be free.
const CREATE_RETRY: Duration = Duration::from_secs(5);

/// CREATE DATABASE `name` (a copy of template1) and keep other roles out
/// of it. Another session connected to template1 makes CREATE DATABASE
/// fail (55006): retried for a few seconds, then said as what it is. The
/// error is a sentence for "cannot create the scratch database ...: ".
pub async fn create(admin: &Client, name: &str) -> Result<(), String> {
    let sql = format!("CREATE DATABASE {}", quote_ident(name));
    let deadline = Instant::now() + CREATE_RETRY;
    loop {
        let err = match admin.batch_execute(&sql).await {
            Ok(()) => return keep_others_out(admin, name).await,
            Err(e) => e,
        };
        let busy = err.code() == Some(&SqlState::OBJECT_IN_USE);
        if busy && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let text = error_text(&err);
        return Err(match err.code() {
            Some(&SqlState::INSUFFICIENT_PRIVILEGE) => {
                format!("{text}: the role needs CREATEDB (ALTER ROLE ... CREATEDB)")
            }
            _ if busy => format!(
                "{text}: CREATE DATABASE copies template1, and other sessions stayed \
                 connected to it for {} s; have them disconnect from template1 (see \
                 pg_stat_activity WHERE datname = 'template1') and run again",
                CREATE_RETRY.as_secs()
            ),
            _ => text,
        });
    }
}

/// Keep every other role's session out of database `name`, which our role
/// just created and owns. Returns the server's error text on failure.
pub async fn keep_others_out(admin: &Client, name: &str) -> Result<(), String> {
    admin
        .batch_execute(&format!(
            "REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC",
            quote_ident(name)
        ))
        .await
        .map_err(|e| {
            format!(
                "cannot keep other roles out of database {name} \
                 (REVOKE CONNECT ON DATABASE ... FROM PUBLIC): {}",
                error_text(&e)
            )
        })
}

/// `DROP DATABASE IF EXISTS name WITH (FORCE)`, retried for a few seconds
/// while sessions our role may not end hold it. The error names the
/// database, the sessions that held it (pid, role, application_name) and
/// the command to drop it once they are gone.
pub async fn drop_database(admin: &Client, name: &str) -> Result<(), String> {
    let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", quote_ident(name));
    let deadline = Instant::now() + DROP_RETRY;
    loop {
        let err = match admin.batch_execute(&sql).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // 42501: FORCE may not end another role's session (a superuser's,
        // or any without pg_signal_backend); 55006: one came back in between.
        let retry = matches!(
            err.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE) | Some(&SqlState::OBJECT_IN_USE)
        );
        if !retry || Instant::now() >= deadline {
            let holders = if retry {
                sessions_in(admin, name).await
            } else {
                String::new()
            };
            return Err(format!(
                "could not drop database {name}: {}{holders}; it is left on the server: \
                 drop it with `DROP DATABASE {} WITH (FORCE);` as a role that may end \
                 those sessions, or once they are gone",
                error_text(&err),
                quote_ident(name)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// "; held by 2 other session(s): pid 123 (role postgres, application_name
/// 'psql'), ..." — what pg_stat_activity shows any role of the sessions in
/// database `name`; empty when it cannot be read.
async fn sessions_in(admin: &Client, name: &str) -> String {
    let rows = admin
        .query(
            "SELECT pid, coalesce(usename::text, '?'), coalesce(application_name, '') \
             FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid() ORDER BY pid",
            &[&name],
        )
        .await;
    let Ok(rows) = rows else {
        return String::new();
    };
    if rows.is_empty() {
        return String::new();
    }
    let list: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "pid {} (role {}, application_name '{}')",
                r.get::<_, i32>(0),
                r.get::<_, String>(1),
                r.get::<_, String>(2)
            )
        })
        .collect();
    format!(
        "; held by {} other session(s) after {} s of retrying: {}",
        list.len(),
        DROP_RETRY.as_secs(),
        list.join(", ")
    )
}
