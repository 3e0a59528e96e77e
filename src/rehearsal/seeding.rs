//! Stage 2, data: the rehearsal's database with its data in it, seeded in
//! place or cloned from a template (seeded now, by an earlier rehearsal of
//! the same invocation, or kept in the cache), cancellable by a signal.
//! `crate::seed` does the seeding, `provision.rs` the databases.

use std::future::Future;
use std::time::Instant;

use super::provision::{Database, Server, TemplateMade};
use super::stage::Stopped;
use crate::error::{Error, Result};
use crate::options::RunOptions;
use crate::record::DataOrigin;
use crate::scenario::Scenario;
use crate::seed::{SeedOptions, SeedReport};
use crate::signals::Signals;

/// Where a rehearsal's data come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataPlan {
    /// Seeded in the rehearsal's own (empty) database: nobody else needs
    /// these data, so a template would only cost a copy.
    InPlace,
    /// Cloned from the template of these data, seeded first if need be.
    Template,
}

/// A rehearsal's database with its data, and how they got there.
pub struct Obtained {
    pub db: Database,
    pub origin: DataOrigin,
    /// The whole stage, ms.
    pub ms: f64,
}

/// Get `s`'s database on `server` the way `plan` says.
pub async fn obtain(
    server: &Server,
    s: &Scenario,
    plan: DataPlan,
    opts: &RunOptions,
    signals: &Signals,
) -> Result<Obtained, Stopped> {
    let started = Instant::now();
    let seed_opts = SeedOptions {
        progress: opts.output.progress(),
        ..SeedOptions::new(opts.seed)
    };
    let work = async {
        match plan {
            DataPlan::InPlace => in_place(server, s, &seed_opts).await,
            DataPlan::Template => cloned(server, s, &seed_opts).await,
        }
    };
    let done = tokio::select! {
        r = work => r,
        _ = signals.token.cancelled() => {
            return Err(Stopped {
                why: "interrupted while seeding".into(),
                error: signals.error(),
            });
        }
    };
    let (db, origin) = done.map_err(|e| match e {
        // A generator that does not fit its column is the scenario's fault
        // (exit 2); a server that cannot be used is exit 3.
        e @ (Error::Scenario(_) | Error::NoPostgres(_)) => Stopped {
            why: format!("seeding failed: {e}"),
            error: e,
        },
        e => Stopped::failed(format!("seeding failed: {e}")),
    })?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if opts.output.chatter {
        eprintln!("pgrehearse: {} — {}", s.name, describe(&origin, ms));
    }
    Ok(Obtained { db, origin, ms })
}

async fn in_place(
    server: &Server,
    s: &Scenario,
    opts: &SeedOptions,
) -> Result<(Database, DataOrigin)> {
    let db = server.empty_database().await?;
    let (report, seed_ms) = timed(crate::seed::seed_with(&db.conn, s, opts)).await;
    log_tables(&report?);
    let origin = DataOrigin {
        how: "seeded".into(),
        template: None,
        template_source: None,
        seed_ms: crate::pg::round3(seed_ms),
        clone_ms: None,
        clone_strategy: None,
    };
    Ok((db, origin))
}

async fn cloned(
    server: &Server,
    s: &Scenario,
    opts: &SeedOptions,
) -> Result<(Database, DataOrigin)> {
    let (template, ensure_ms) = timed(server.ensure_template(s, opts)).await;
    let template = template?;
    let seed_ms = match &template.made {
        TemplateMade::Seeded(report) => {
            log_tables(report);
            ensure_ms
        }
        TemplateMade::Earlier | TemplateMade::Cache => 0.0,
    };
    let (db, clone_ms) = timed(template.clone_into()).await;
    let db = db?;
    tracing::info!(
        "cloned template {} ({}) into {} in {clone_ms:.1} ms",
        template.key.short(),
        template.made.as_str(),
        db.conn.dbname
    );
    let origin = DataOrigin {
        how: "cloned".into(),
        template: Some(template.key.to_string()),
        template_source: Some(template.made.as_str().into()),
        seed_ms: crate::pg::round3(seed_ms),
        clone_ms: Some(crate::pg::round3(clone_ms)),
        clone_strategy: Some(template.strategy().into()),
    };
    Ok((db, origin))
}

/// The status line: how the data came.
fn describe(o: &DataOrigin, ms: f64) -> String {
    let secs = |ms: f64| format!("{:.1} s", ms / 1e3);
    match (&o.template, o.template_source.as_deref(), o.clone_ms) {
        (Some(key), Some(source), Some(clone)) => {
            let short = &key[..16.min(key.len())];
            match source {
                "seeded" => format!(
                    "seeded template {short} in {}, cloned from it in {}",
                    secs(o.seed_ms),
                    secs(clone)
                ),
                "cache" => format!(
                    "cloned from template {short} (kept in the cache) in {}",
                    secs(clone)
                ),
                _ => format!("cloned from template {short} in {}", secs(clone)),
            }
        }
        _ => format!("seeded in {}", secs(ms)),
    }
}

fn log_tables(report: &SeedReport) {
    for t in &report.tables {
        tracing::info!(
            "seeded {}: {} rows, {:.1} MB, {} load on {} connection(s), {:.1} ms",
            t.name,
            t.rows,
            t.bytes as f64 / 1e6,
            format!("{:?}", t.load).to_lowercase(),
            t.connections,
            t.duration.as_secs_f64() * 1e3
        );
    }
    if !report.vacuumed.is_empty() {
        tracing::info!(
            "vacuumed (not frozen on load): {}",
            report.vacuumed.join(", ")
        );
    }
}

async fn timed<T>(f: impl Future<Output = T>) -> (T, f64) {
    let started = Instant::now();
    let out = f.await;
    (out, started.elapsed().as_secs_f64() * 1e3)
}
