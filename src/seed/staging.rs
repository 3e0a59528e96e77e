//! `pgrehearse seed`: a scenario's data in an existing database (staging
//! data, or measuring seeding), with no scratch database around it.
//!
//! - A database that already has any of the scenario's tables is refused
//!   (exit 2, naming them) unless `--replace`, which drops them and what
//!   the scenario's SQL creates besides (types, domains, sequences,
//!   functions, views: replace.rs says which and why), without CASCADE.
//! - All of it is one transaction ([`OneTransaction`]): --replace's drops,
//!   every create, every load, seed_sql and after_seed, committed only when
//!   all succeeded. So a seed that fails or is interrupted (SIGINT/SIGTERM:
//!   exit 130/143) or killed before that commit changes nothing, and a
//!   --replace never loses the tables it was to replace: the drop and the
//!   new tables become visible together. COPY FREEZE still works: every
//!   table is created in that transaction. While it runs, the tables it
//!   drops stay locked (ACCESS EXCLUSIVE): sessions that use them wait for
//!   the commit, then see the new ones.
//! - Only the last pass (ANALYZE, VACUUM (FREEZE) where needed; VACUUM
//!   refuses a transaction block) comes after the commit. A failure or an
//!   interruption there drops what the seed made (exit 4 for a failure),
//!   the same drops as --replace's.
//! - A table is complete only when its COMMENT ends with the marker
//!   [`COMPLETE_MARKER`] (`pgrehearse seed: complete — N rows, seed S, <UTC
//!   time>`, after the create SQL's own comment if it set one), written
//!   after everything (load, seed_sql, after_seed, ANALYZE) finished. Killed
//!   outright during the last pass, it may leave tables behind, but never
//!   one that carries the marker.

use std::time::Duration;

use tokio_postgres::Client;

use super::{
    db_error, replace, OneTransaction, SeedOptions, SeedReport, TableReport, SEED_APP_NAME,
};
use crate::backend::url::parse_database_url;
use crate::backend::ConnInfo;
use crate::error::{exit, Error, Result};
use crate::options::SeedCommand;
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
    let drops = match cmd.replace {
        true => replace_drops(s, &existing)?,
        false if existing.is_empty() => Vec::new(),
        false => {
            let names: Vec<&str> = existing.iter().map(|(name, _)| name.as_str()).collect();
            return Err(Error::Usage(format!(
                "{} already has the table(s) {} of scenario {}: pass --replace to drop and \
                 recreate them",
                conn.redacted(),
                names.join(", "),
                s.name
            )));
        }
    };
    let opts = SeedOptions {
        progress: cmd.output.progress(),
        one_transaction: Some(OneTransaction { drops }),
        ..SeedOptions::new(cmd.seed)
    };
    // Until this returns Ok nothing is committed: an error, or the signal
    // (which drops the seeding session with the future), rolls all of it
    // back, --replace's drops included, so there is nothing to clean up.
    let loaded = tokio::select! {
        r = super::load(&conn, s, &opts) => r,
        _ = signals.token.cancelled() => Err(signals.error()),
    }
    .map_err(failed)?;
    let finished = tokio::select! {
        r = loaded.finish() => r,
        _ = signals.token.cancelled() => Err(signals.error()),
    };
    let marked = match finished {
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

/// --replace's drops (replace.rs). A table the scenario does not create
/// (no create SQL: the setup migrations' schema) is not the seed's to drop:
/// refused (exit 2).
fn replace_drops(s: &Scenario, existing: &[(String, bool)]) -> Result<Vec<String>> {
    let not_ours: Vec<&str> = existing
        .iter()
        .filter(|(_, created)| !created)
        .map(|(name, _)| name.as_str())
        .collect();
    if !not_ours.is_empty() {
        return Err(Error::Usage(format!(
            "--replace: the table(s) {} of scenario {} have no create SQL, so the seed could not \
             create them again: drop or empty them yourself",
            not_ours.join(", "),
            s.name
        )));
    }
    let names: Vec<String> = existing.iter().map(|(name, _)| name.clone()).collect();
    Ok(replace::drops(s, &names))
}

/// A seeding error is a failed seed here, not a failed rehearsal (exit 4
/// either way).
fn failed(e: Error) -> Error {
    match e {
        Error::Rehearsal { message, .. } => Error::Other(anyhow::anyhow!(message)),
        e => e,
    }
}

/// The scenario's tables that exist in the database, as qualified names,
/// each with whether the scenario creates it (has create SQL).
async fn existing_tables(client: &Client, s: &Scenario) -> Result<Vec<(String, bool)>> {
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
            found.push((name, t.create.is_some()));
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

/// After a seed that failed or was interrupted once committed (in its last
/// pass, or marking the tables): drop what it made, as --replace would, on
/// a session of its own, waiting at most a few seconds for locks. All of
/// it is the seed's: the tables did not exist before it or --replace
/// dropped them, and what replace.rs drops besides is only what a CREATE
/// without IF NOT EXISTS made, which the commit proves was new. Best effort.
async fn drop_incomplete(conn: &ConnInfo, s: &Scenario) {
    let cleanup = async {
        let c = conn.session(SEED_APP_NAME).await?;
        let ours: Vec<String> = existing_tables(&c, s)
            .await?
            .into_iter()
            .filter(|(_, created)| *created)
            .map(|(name, _)| name)
            .collect();
        let mut sql = vec!["SET lock_timeout = '10s'".to_string()];
        sql.extend(replace::drops(s, &ours));
        c.batch_execute(&sql.join(";\n"))
            .await
            .map_err(|e| db_error(e, "dropping the incomplete tables"))
    };
    match tokio::time::timeout(Duration::from_secs(20), cleanup).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => crate::say!("pgrehearse: warning: {e}"),
        Err(_) => {
            crate::say!("pgrehearse: warning: the incomplete tables could not be dropped in time")
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
            "  {:width$}  {:>12} rows  {:>9.1} MB of COPY  {} load  {}{}\n",
            t.name,
            t.rows,
            t.bytes as f64 / 1e6,
            format!("{:?}", t.load).to_lowercase(),
            secs(t.duration),
            changed(t)
        ));
    }
    out
}

/// ", not the N loaded: ..." where seed_sql or after_seed added or deleted
/// rows (init's removal of duplicate keys), said where the rows are.
pub fn changed(t: &TableReport) -> String {
    match t.rows.cmp(&t.loaded) {
        std::cmp::Ordering::Equal => String::new(),
        _ => format!(
            "  ({} loaded: seed_sql or after_seed {} {})",
            t.loaded,
            if t.rows < t.loaded {
                "deleted"
            } else {
                "added"
            },
            t.rows.abs_diff(t.loaded)
        ),
    }
}
