//! Template databases: a seeded work database is cloned per run instead of
//! being seeded again.

use std::time::Duration;

use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::{db_error, SEED_APP_NAME};
use crate::backend::ConnInfo;
use crate::error::{Error, Result};
use crate::pg::quote_ident;

/// Make `to` a copy of `from` (CREATE DATABASE ... TEMPLATE), after ending
/// every session connected to `from` (a template must have none).
pub async fn clone_database(conn: &ConnInfo, from: &str, to: &str) -> Result<()> {
    let admin = admin_client(conn, &[from, to]).await?;
    let create = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_ident(to),
        quote_ident(from)
    );
    // Terminated backends take a moment to exit: retry "being accessed".
    for attempt in 0.. {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&from],
            )
            .await
            .map_err(|e| db_error(e, "ending sessions on the template"))?;
        match admin.batch_execute(&create).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt < 100 && e.code() == Some(&SqlState::OBJECT_IN_USE) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(db_error(e, &format!("cloning {from} into {to}"))),
        }
    }
    unreachable!("the loop returns")
}

/// Drop `name` (ending its sessions first); no error when it does not exist.
pub async fn drop_database(conn: &ConnInfo, name: &str) -> Result<()> {
    let admin = admin_client(conn, &[name]).await?;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| db_error(e, &format!("dropping database {name}")))
}

/// A session in a database other than `avoid`: the work database, else
/// `postgres`, else `template1`.
async fn admin_client(conn: &ConnInfo, avoid: &[&str]) -> Result<Client> {
    let mut last = None;
    for db in [conn.dbname.as_str(), "postgres", "template1"] {
        if avoid.contains(&db) {
            continue;
        }
        match conn.session_on(db, SEED_APP_NAME).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::NoPostgres("no database to connect to".into())))
}
