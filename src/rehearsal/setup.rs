//! Stage 2a, setup: the migrations before the rehearsed ones build the
//! schema, applied the tool's way — each segment in one transaction, or
//! statement by statement — before seeding and off the rehearsal's clock.
//! run.json's `migrations` records every file and how long it took. A file
//! that fails stops the rehearsal (exit 4), naming the file and the line.

use std::time::Instant;

use tokio_postgres::Client;

use super::stage::Stopped;
use crate::backend::ConnInfo;
use crate::migrations::{Execution, MigrationFile, Selection, Statement};
use crate::record::{EditedInfo, MigrationsInfo, SetupFile};
use crate::scenario::MigrationsPlan;
use crate::signals::Signals;

/// application_name of the setup session.
pub const SETUP_APP_NAME: &str = "pgrehearse/setup";

/// run.json's `migrations` before setup ran: every setup file `not run`.
pub fn info(m: &MigrationsPlan) -> MigrationsInfo {
    MigrationsInfo {
        dir: m.dir.display().to_string(),
        layout: m.layout.name().to_string(),
        selection: match &m.selection {
            Selection::All => "all".to_string(),
            Selection::From(v) => format!("from {v}"),
            Selection::Last(n) => format!("last {n}"),
            Selection::SinceGit(rev) => format!("since git {rev}"),
        },
        setup: m
            .setup
            .iter()
            .map(|f| SetupFile {
                file: f.name.clone(),
                statements: f.statements().count(),
                ms: None,
                outcome: "not run".into(),
            })
            .collect(),
        setup_ms: 0.0,
        setup_digest: m.setup_digest(),
        rehearsed: m.rehearse.iter().map(|f| f.name.clone()).collect(),
        edited: m.edited.iter().map(|c| c.name.clone()).collect(),
        changes: m.edited.iter().map(EditedInfo::of).collect(),
    }
}

/// Apply `m.setup` in order into the database of `conn`, recording each
/// file in `record` (run.json's `migrations`) as it goes.
pub async fn apply(
    conn: &ConnInfo,
    m: &MigrationsPlan,
    record: &mut MigrationsInfo,
    signals: &Signals,
) -> Result<(), Stopped> {
    let client = conn.session(SETUP_APP_NAME).await.map_err(|e| Stopped {
        why: format!("setup: {e}"),
        error: e,
    })?;
    // The tool made its history table before its first migration; real
    // migrations alter or read it (a column added to schema_migrations).
    if let Some(ddl) = m.layout.history_table() {
        client.batch_execute(ddl).await.map_err(|e| {
            Stopped::failed(format!(
                "setup: creating {}'s history table: {}",
                m.layout.tool(),
                crate::pg::error_text(&e)
            ))
        })?;
    }
    let started = Instant::now();
    for (i, (file, rec)) in m.setup.iter().zip(record.setup.iter_mut()).enumerate() {
        let t = Instant::now();
        // psql gives each Sqitch or plain file a session of its own: what
        // one SETs (pg_dump's search_path = '') does not reach the next.
        let fresh = i > 0 && !m.layout.shares_session();
        let applied = tokio::select! {
            r = apply_fresh(&client, file, fresh) => r,
            _ = signals.token.cancelled() => {
                return Err(Stopped::interrupted(
                    signals,
                    &format!("during setup, while applying {}", file.name),
                ));
            }
        };
        rec.ms = Some(crate::pg::round3(t.elapsed().as_secs_f64() * 1e3));
        record.setup_ms = crate::pg::round3(started.elapsed().as_secs_f64() * 1e3);
        match applied {
            Ok(()) => {
                rec.outcome = "ok".into();
                tracing::info!(
                    "setup: applied {} in {:.1} ms",
                    file.name,
                    rec.ms.unwrap_or(0.0)
                );
            }
            Err(why) => {
                rec.outcome = "error".into();
                return Err(Stopped::failed(format!(
                    "setup migration {} failed: {why}; the migrations before the rehearsed ones \
                     must apply cleanly on an empty database",
                    file.name
                )));
            }
        }
    }
    Ok(())
}

/// [`apply_file`], in a session as new (`fresh`) as psql would open.
async fn apply_fresh(client: &Client, file: &MigrationFile, fresh: bool) -> Result<(), String> {
    if fresh {
        send(client, crate::migrations::FRESH_SESSION).await?;
    }
    apply_file(client, file).await
}

/// One file's segments; the error names the statement's file:line.
async fn apply_file(client: &Client, file: &MigrationFile) -> Result<(), String> {
    for seg in &file.segments {
        let tx = seg.execution == Execution::Transaction;
        if tx {
            send(client, "BEGIN").await?;
        }
        for st in &seg.statements {
            if let Err(e) = client.batch_execute(&st.sql).await {
                if tx {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
                return Err(format!("{}: {}", at(st, &e), crate::pg::error_text(&e)));
            }
        }
        if tx {
            send(client, "COMMIT").await?;
        }
    }
    Ok(())
}

async fn send(client: &Client, sql: &str) -> Result<(), String> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| format!("{sql}: {}", crate::pg::error_text(&e)))
}

/// `file:line:column` of the statement, or of the character the server's
/// error position points to when it gives one.
fn at(st: &Statement, e: &tokio_postgres::Error) -> String {
    st.location_at(crate::pg::error_position(e)).to_string()
}
