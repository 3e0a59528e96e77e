//! Stage 2, data: the rehearsal's database with its data in it, seeded in
//! place or cloned from a template (seeded now, by an earlier rehearsal of
//! the same invocation, or kept in the cache), cancellable by a signal.
//! `crate::seed` does the seeding, `provision.rs` the databases.

use std::future::Future;
use std::time::{Duration, Instant};

use super::provision::{Database, Server, TemplateMade};
use super::stage::{Stopped, HARNESS_APP_NAME};
use crate::backend::ConnInfo;
use crate::error::{Error, Result};
use crate::options::RunOptions;
use crate::record::{DataOrigin, MigrationsInfo};
use crate::scenario::{MigrationsPlan, Scenario};
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

/// Get `s`'s database on `server` the way `plan` says. With `setup` (the
/// scenario's `[migrations]` and run.json's record of them), the setup
/// migrations build the schema first and the data are always seeded in
/// place, whatever `plan` says: a template would have to be built through
/// the setup and keyed by its digest, which is not done yet. The stage's
/// time leaves the setup out (run.json records it under `migrations`).
pub async fn obtain(
    server: &Server,
    s: &Scenario,
    plan: DataPlan,
    setup: Option<(&MigrationsPlan, &mut MigrationsInfo)>,
    opts: &RunOptions,
    signals: &Signals,
) -> Result<Obtained, Stopped> {
    let started = Instant::now();
    let seed_opts = SeedOptions {
        progress: opts.output.progress(),
        ..SeedOptions::new(opts.seed)
    };
    let mut setup_ms = 0.0;
    let (db, origin) = match setup {
        Some((m, record)) => {
            let got = after_setup(server, s, m, &mut *record, &seed_opts, signals).await;
            setup_ms = record.setup_ms;
            got?
        }
        None => {
            let work = async {
                match plan {
                    DataPlan::InPlace => in_place(server, s, &seed_opts).await,
                    DataPlan::Template => cloned(server, s, &seed_opts).await,
                }
            };
            cancellable(work, signals).await?
        }
    };
    let ms = (started.elapsed().as_secs_f64() * 1e3 - setup_ms).max(0.0);
    if opts.output.chatter {
        crate::say!("pgrehearse: {} — {}", s.name, describe(&origin, ms));
    }
    Ok(Obtained { db, origin, ms })
}

/// Seed `s` into the empty database `db` (someone else's: the ddl bench
/// seeds one per pattern and copies it per iteration). Returns how long it took, ms.
pub async fn seed_into(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
) -> Result<f64, Stopped> {
    let seed_opts = SeedOptions {
        progress: opts.output.progress(),
        ..SeedOptions::new(opts.seed)
    };
    let (ms, _) = cancellable(seed_timed(db, s, &seed_opts), signals).await?;
    Ok(ms)
}

/// Seed `db`, logging each table, and checkpoint. Returns how long it all
/// took and the checkpoint's share (when the role may), ms.
async fn seed_timed(db: &Database, s: &Scenario, opts: &SeedOptions) -> Result<(f64, Option<f64>)> {
    let started = Instant::now();
    log_tables(&crate::seed::seed_with(&db.conn, s, opts).await?);
    let checkpoint = crate::seed::checkpoint_or_say(&db.conn).await?;
    Ok((
        started.elapsed().as_secs_f64() * 1e3,
        checkpoint.map(|d| d.as_secs_f64() * 1e3),
    ))
}

/// An empty database for the rehearsal, the setup migrations applied in it
/// (each recorded in `record`), then seeded. Dropped again if any of it fails.
async fn after_setup(
    server: &Server,
    s: &Scenario,
    m: &MigrationsPlan,
    record: &mut MigrationsInfo,
    opts: &SeedOptions,
    signals: &Signals,
) -> Result<(Database, DataOrigin), Stopped> {
    let db = cancellable(server.empty_database(), signals).await?;
    let applied = super::setup::apply(&db.conn, m, record, signals).await;
    let seeded = match applied {
        Ok(()) => cancellable(seed_timed(&db, s, opts), signals).await,
        Err(stopped) => Err(stopped),
    };
    match seeded {
        Ok((seed_ms, checkpoint_ms)) => Ok((db, seeded_in_place(seed_ms, checkpoint_ms))),
        Err(stopped) => {
            if let Err(e) = db.discard().await {
                tracing::info!("the rehearsal's database was not dropped: {e}");
            }
            Err(stopped)
        }
    }
}

fn seeded_in_place(seed_ms: f64, checkpoint_ms: Option<f64>) -> DataOrigin {
    DataOrigin {
        how: "seeded".into(),
        template: None,
        template_source: None,
        seed_ms: crate::pg::round3(seed_ms),
        clone_ms: None,
        clone_strategy: None,
        checkpoint_ms: checkpoint_ms.map(crate::pg::round3),
    }
}

/// Seeding until done or a signal, its error as the stage's.
async fn cancellable<T>(
    work: impl Future<Output = Result<T>>,
    signals: &Signals,
) -> Result<T, Stopped> {
    let done = tokio::select! {
        r = work => r,
        _ = signals.token.cancelled() => {
            return Err(Stopped::interrupted(signals, "while seeding"));
        }
    };
    done.map_err(|e| match e {
        // A generator that does not fit its column, a NOT NULL column no
        // generator fills, is the scenario's fault (exit 2), located in it
        // by field; a server that cannot be used is exit 3.
        Error::Scenario(errors) => {
            let e = Error::Scenario(crate::scenario::locate_fields(errors));
            Stopped {
                why: format!("seeding failed: {e}"),
                error: e,
            }
        }
        e @ Error::NoPostgres(_) => Stopped {
            why: format!("seeding failed: {e}"),
            error: e,
        },
        // The seeder's own errors begin "seeding: ": said once.
        Error::Rehearsal { message, .. } => Stopped::failed(format!(
            "seeding failed: {}",
            message.strip_prefix("seeding: ").unwrap_or(&message)
        )),
        e => Stopped::failed(format!("seeding failed: {e}")),
    })
}

async fn in_place(
    server: &Server,
    s: &Scenario,
    opts: &SeedOptions,
) -> Result<(Database, DataOrigin)> {
    let db = server.empty_database().await?;
    let (seed_ms, checkpoint_ms) = seed_timed(&db, s, opts).await?;
    Ok((db, seeded_in_place(seed_ms, checkpoint_ms)))
}

async fn cloned(
    server: &Server,
    s: &Scenario,
    opts: &SeedOptions,
) -> Result<(Database, DataOrigin)> {
    let (template, ensure_ms) = timed(server.ensure_template(s, opts)).await;
    let template = template?;
    let (seed_ms, checkpoint) = match &template.made {
        TemplateMade::Seeded(report) => {
            log_tables(report);
            (ensure_ms, report.checkpoint)
        }
        TemplateMade::Earlier | TemplateMade::Cache => (0.0, None),
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
        checkpoint_ms: checkpoint.map(|d| crate::pg::round3(d.as_secs_f64() * 1e3)),
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

/// How long the replica may take to replay the seeded data.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);

/// Wait until the replica has replayed the seeded data: the lag the
/// rehearsal measures must be its own traffic's and migration's.
pub async fn replica_caught_up(conn: &ConnInfo, signals: &Signals) -> Result<(), Stopped> {
    let failed = |e: Error| Stopped::failed(format!("the replica did not catch up: {e}"));
    let admin = conn.session(HARNESS_APP_NAME).await.map_err(failed)?;
    tokio::select! {
        r = crate::backend::replica::wait_caught_up(&admin, CATCH_UP_LIMIT) => r.map_err(failed),
        _ = signals.token.cancelled() => Err(Stopped::interrupted(
            signals,
            "while the replica caught up with the seeded data",
        )),
    }
}
