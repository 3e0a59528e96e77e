//! `pgrehearse seed`: a scenario's data in an existing database (staging
//! data, or measuring seeding), with no scratch database around it.
//!
//! - A database that already has any of the scenario's tables is refused
//!   (exit 2, naming them) unless `--replace`, which drops them first (one
//!   `DROP TABLE`, no CASCADE: a view of yours on them stops it).
//! - A table is complete only when its COMMENT ends with the marker
//!   [`COMPLETE_MARKER`] (`pgrehearse seed: complete — N rows, seed S, <UTC
//!   time>`, after the create SQL's own comment if it set one), written
//!   after everything (load, seed_sql, after_seed, ANALYZE) finished. Each table is created and loaded in one
//!   transaction where it can be (COPY FREEZE); a seed that fails or is
//!   interrupted (SIGINT/SIGTERM: exit 130/143) drops the tables it created
//!   before it exits (exit 4 for a failure). Killed outright, it may leave a
//!   table behind, but never one that carries the marker.

use std::time::Duration;

use tokio_postgres::Client;

use super::{db_error, seed_with, SeedOptions, SeedReport, SEED_APP_NAME};
use crate::backend::url::parse_database_url;
use crate::backend::ConnInfo;
use crate::error::{exit, Error, Result};
use crate::options::SeedCommand;
use crate::pg::quote_ident;
use crate::scenario::Scenario;
use crate::signals::Signals;

/// How a complete table's comment ends (module docs).
pub const COMPLETE_MARKER: &str = "pgrehearse seed: complete";

/// Run `pgrehearse seed`; Ok carries the exit code.
pub async fn seed_command(cmd: &SeedCommand) -> Result<u8> {
    let signals = Signals::install();
    let (conn, _) = parse_database_url(&cmd.database_url)?;
    let s = &cmd.scenario;
    let admin = conn.session(SEED_APP_NAME).await?;
    let existing = existing_tables(&admin, s).await?;
    if !existing.is_empty() {
        if !cmd.replace {
            return Err(Error::Usage(format!(
                "{} already has the table(s) {} of scenario {}: pass --replace to drop and \
                 recreate them",
                conn.redacted(),
                existing.join(", "),
                s.name
            )));
        }
        let sql = format!("DROP TABLE IF EXISTS {}", existing.join(", "));
        admin
            .batch_execute(&sql)
            .await
            .map_err(|e| failed(db_error(e, "--replace: dropping the tables")))?;
    }
    let opts = SeedOptions {
        progress: cmd.output.progress(),
        ..SeedOptions::new(cmd.seed)
    };
    let seeded = tokio::select! {
        r = seed_with(&conn, s, &opts) => r,
        _ = signals.token.cancelled() => Err(signals.error()),
    };
    let marked = match seeded {
        Ok(report) => mark_complete(&admin, s, &report, cmd.seed)
            .await
            .map(|()| report),
        Err(e) => Err(e),
    };
    match marked {
        Ok(report) => {
            if cmd.output.chatter {
                crate::printer::stdout(&summary(&conn, &report))?;
            }
            Ok(exit::OK)
        }
        Err(e) => {
            drop_incomplete(&conn, s).await;
            Err(failed(e))
        }
    }
}

/// A seeding error is a failed seed here, not a failed rehearsal (exit 4
/// either way).
fn failed(e: Error) -> Error {
    match e {
        Error::Rehearsal { message, .. } => Error::Other(anyhow::anyhow!(message)),
        e => e,
    }
}

/// The scenario's tables that exist in the database, as qualified names.
async fn existing_tables(client: &Client, s: &Scenario) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for t in &s.tables {
        let row = client
            .query_one(
                "SELECT coalesce(to_regclass(quote_ident($1)), to_regclass($1))::text",
                &[&t.name],
            )
            .await
            .map_err(|e| db_error(e, &format!("looking up table {}", t.name)))?;
        if let Some(name) = row.get::<_, Option<String>>(0) {
            found.push(name);
        }
    }
    Ok(found)
}

/// Append the marker to every table's comment, in one transaction.
async fn mark_complete(
    client: &Client,
    s: &Scenario,
    report: &SeedReport,
    seed: u64,
) -> Result<()> {
    let when = chrono::Utc::now().format("%Y-%m-%d %H:%M:%S UTC");
    let mut sql = vec!["BEGIN".to_string()];
    for (t, loaded) in s.tables.iter().zip(&report.tables) {
        let row = client
            .query_one(
                "SELECT c.oid::regclass::text, obj_description(c.oid, 'pg_class') FROM pg_class c \
                 WHERE c.oid = coalesce(to_regclass(quote_ident($1)), to_regclass($1))",
                &[&t.name],
            )
            .await
            .map_err(|e| db_error(e, &format!("{}: comment", t.name)))?;
        let (name, comment): (String, Option<String>) = (row.get(0), row.get(1));
        let marker = format!(
            "{COMPLETE_MARKER} — {} rows, seed {seed}, {when}",
            loaded.rows
        );
        let text = match comment.filter(|c| !c.is_empty()) {
            Some(own) => format!("{own}\n\n{marker}"),
            None => marker,
        };
        sql.push(format!(
            "COMMENT ON TABLE {name} IS '{}'",
            text.replace('\'', "''")
        ));
    }
    sql.push("COMMIT".into());
    client
        .batch_execute(&sql.join(";\n"))
        .await
        .map_err(|e| db_error(e, "marking the tables complete"))
}

/// After a failed or interrupted seed: drop the scenario's tables (all of
/// them are ours: none existed, or --replace dropped them), on a session
/// of its own, waiting at most a few seconds for locks. Best effort.
async fn drop_incomplete(conn: &ConnInfo, s: &Scenario) {
    let names: Vec<String> = s.tables.iter().map(|t| quote_ident(&t.name)).collect();
    let cleanup = async {
        let c = conn.session(SEED_APP_NAME).await?;
        c.batch_execute(&format!(
            "SET lock_timeout = '10s'; DROP TABLE IF EXISTS {}",
            names.join(", ")
        ))
        .await
        .map_err(|e| db_error(e, "dropping the incomplete tables"))
    };
    match tokio::time::timeout(Duration::from_secs(20), cleanup).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("pgrehearse: warning: {e}"),
        Err(_) => {
            eprintln!("pgrehearse: warning: the incomplete tables could not be dropped in time")
        }
    }
}

/// What `seed` prints when it is done.
fn summary(conn: &ConnInfo, r: &SeedReport) -> String {
    let secs = |d: Duration| format!("{:.2} s", d.as_secs_f64());
    let mut out = format!(
        "seeded {} table(s), {} rows into {} in {} (create + load {}, seed_sql + after_seed {}, \
         ANALYZE/VACUUM {})\n",
        r.tables.len(),
        r.total_rows(),
        conn.redacted(),
        secs(r.duration),
        secs(r.load),
        secs(r.sql),
        secs(r.vacuum)
    );
    let width = r.tables.iter().map(|t| t.name.len()).max().unwrap_or(0);
    for t in &r.tables {
        out.push_str(&format!(
            "  {:width$}  {:>12} rows  {:>9.1} MB of COPY  {} load  {}\n",
            t.name,
            t.rows,
            t.bytes as f64 / 1e6,
            format!("{:?}", t.load).to_lowercase(),
            secs(t.duration)
        ));
    }
    out
}
