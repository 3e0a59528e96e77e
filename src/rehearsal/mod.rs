//! One rehearsal, in five stages, one file each:
//!
//! 1. `provision.rs` — a [`Server`] from a backend, and the [`Database`] the
//!    rehearsal runs in;
//! 2. `setup.rs` — with `[migrations]`, the migrations before the rehearsed
//!    ones build the schema; then `seeding.rs` — the scenario's tables and
//!    rows in that database;
//! 3. `run.rs` — traffic, the migration and the observers on one clock;
//! 4. `recording.rs` — what was measured, written to the run directory;
//! 5. `reporting.rs` — the reports rendered, the summary printed, the exit
//!    code.
//!
//! (`stage.rs` holds what they share.) Whatever happens (a failed step, a
//! dead server, Ctrl-C), what was recorded is written (a partial report when
//! a stage stopped early) and the server is torn down. Only provisioning and
//! teardown see the server; the other stages take a [`Database`], so one
//! server can host several rehearsals (a template database seeded once and
//! cloned per rehearsal).

mod provision;
mod recording;
mod reporting;
mod run;
mod seeding;
mod setup;
mod stage;

use std::future::Future;
use std::path::PathBuf;
use std::time::Instant;

pub use provision::{Database, Server, ServerNeeds};
pub use recording::{Draft, Recorded};
pub use run::{Measured, RunInputs, SERVER_SAMPLE, WAIT_POLL};
pub use setup::SETUP_APP_NAME;
pub use stage::{Stopped, HARNESS_APP_NAME};

use crate::error::{exit, Result};
use crate::options::RunOptions;
use crate::printer::{self, BatchLine};
use crate::scenario::Scenario;
use crate::signals::Signals;

/// How one rehearsal ended.
#[derive(Debug)]
pub struct Outcome {
    /// Its run directory, when one was created (it holds a partial report
    /// when the rehearsal failed).
    pub run_dir: Option<PathBuf>,
    /// The verdict's exit code (0 or 1), or why it did not finish.
    pub result: Result<u8>,
}

impl Outcome {
    pub fn exit_code(&self) -> u8 {
        match &self.result {
            Ok(code) => *code,
            Err(e) => e.exit_code(),
        }
    }

    /// "pass", "budget breached", or the error.
    pub fn describe(&self) -> String {
        match &self.result {
            Ok(exit::OK) => "pass".into(),
            Ok(_) => "budget breached".into(),
            Err(e) => e.to_string(),
        }
    }
}

/// `pgrehearse run`: every scenario in turn, each on a server of its own.
/// A failed scenario does not stop the others; a signal stops the batch.
/// Returns the worst exit code (numerically the largest: 143 > 130 > 4 >
/// 3 > 2 > 1 > 0). Errors are printed as they happen.
pub async fn rehearse_batch(scenarios: &[Scenario], opts: &RunOptions) -> u8 {
    let signals = Signals::install();
    let mut code = exit::OK;
    let mut lines = Vec::new();
    for s in scenarios {
        if signals.received() {
            code = code.max(signals.error().exit_code());
            lines.push(BatchLine {
                scenario: s.name.clone(),
                code: None,
                outcome: format!("not run ({})", signals.name()),
                run_dir: None,
            });
            continue;
        }
        let outcome = rehearse_one(s, opts, &signals).await;
        if let Err(e) = &outcome.result {
            printer::error(e, outcome.run_dir.as_deref());
        }
        code = code.max(outcome.exit_code());
        lines.push(BatchLine {
            scenario: s.name.clone(),
            code: Some(outcome.exit_code()),
            outcome: outcome.describe(),
            run_dir: outcome.run_dir,
        });
    }
    if scenarios.len() > 1 {
        printer::batch(&lines, code);
    }
    code
}

/// Provision a server for `s`, rehearse in its work database, tear it down.
/// A scenario whose `--since-git` found no new migration needs no server.
pub async fn rehearse_one(s: &Scenario, opts: &RunOptions, signals: &Signals) -> Outcome {
    if s.nothing_to_rehearse() {
        return nothing_to_rehearse(s);
    }
    if opts.output.chatter {
        eprintln!(
            "pgrehearse: {} — provisioning Postgres ({:?} backend)",
            s.name, opts.server.backend
        );
    }
    let needs = ServerNeeds::of(s);
    let server = match timed(
        "provision",
        Server::provision(&opts.server, &needs, signals),
    )
    .await
    {
        Ok(server) => server,
        Err(e) => {
            return Outcome {
                run_dir: None,
                result: Err(e),
            }
        }
    };
    let outcome = rehearse(&server.work_database(), s, opts, signals).await;
    timed("teardown", server.teardown()).await;
    outcome
}

/// No migration was added since the `--since-git` revision: say so (also
/// in GitHub's job summary), pass.
fn nothing_to_rehearse(s: &Scenario) -> Outcome {
    let since = match s.migrations.as_ref().map(|m| &m.selection) {
        Some(crate::migrations::Selection::SinceGit(rev)) => format!(" since {rev}"),
        _ => String::new(),
    };
    let dir = s
        .migrations
        .as_ref()
        .map_or(String::new(), |m| format!(" in {}", m.dir.display()));
    eprintln!(
        "pgrehearse: {} — no migration added{since}{dir}: nothing to rehearse",
        s.name
    );
    let summary = crate::report::RenderOptions::default().github_step_summary;
    if let Some(path) = summary {
        let md = format!(
            "## pgrehearse: {}\n\nNo migration added{since}{dir}: nothing to rehearse.\n",
            s.name
        );
        if let Err(e) = crate::report::append_step_summary(&path, &md) {
            eprintln!("pgrehearse: cannot append to {}: {e}", path.display());
        }
    }
    Outcome {
        run_dir: None,
        result: Ok(exit::OK),
    }
}

/// Rehearse `s` in `db` (empty: it is seeded here), on a server someone
/// else provisioned and tears down.
pub async fn rehearse(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
) -> Outcome {
    rehearse_in(db, s, opts, signals, None).await
}

/// Seed the empty database `db` for `s` and nothing else, so that several
/// rehearsals can start from copies of it (`crate::sweep`). Returns how long
/// seeding took (ms), which their run.json records as `seed_ms`.
pub async fn seed_only(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
) -> std::result::Result<f64, Stopped> {
    let seeded = seeding::seed(&db.conn, s, opts.seed, opts.output.progress(), signals);
    timed("seed", seeded).await
}

/// Rehearse `s` in `db`, which already holds the data [`seed_only`] wrote
/// for `s` (in `seed_ms`).
pub async fn rehearse_seeded(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
    seed_ms: f64,
) -> Outcome {
    rehearse_in(db, s, opts, signals, Some(seed_ms)).await
}

/// Rehearse in `db`: seeded here when `seeded_ms` is None.
async fn rehearse_in(
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
    seeded_ms: Option<f64>,
) -> Outcome {
    let draft = match Draft::open(db, s, opts).await {
        Ok(d) => d,
        Err(e) => {
            return Outcome {
                run_dir: None,
                result: Err(e),
            }
        }
    };
    let run_dir = Some(draft.dir.clone());
    tracing::info!("run directory {}", draft.dir.display());
    let result = stages(draft, db, s, opts, signals, seeded_ms).await;
    Outcome { run_dir, result }
}

/// Setup and seed (unless done) → run → record → report, into `draft`.
async fn stages(
    mut draft: Draft,
    db: &Database,
    s: &Scenario,
    opts: &RunOptions,
    signals: &Signals,
    seeded_ms: Option<f64>,
) -> Result<u8> {
    draft.info.seed_ms = match seeded_ms {
        Some(ms) => ms,
        None => {
            // The setup migrations build the schema the tables are seeded
            // into. (`sweep` seeds once before this and refuses [migrations].)
            if let (Some(m), Some(record)) = (&s.migrations, draft.info.migrations.as_mut()) {
                let applied = setup::apply(&db.conn, m, record, signals);
                timed("setup", applied)
                    .await
                    .map_err(|stopped| draft.abandon(stopped))?;
            }
            seed_only(db, s, opts, signals)
                .await
                .map_err(|stopped| draft.abandon(stopped))?
        }
    };
    let tables = run::observed_tables(&db.conn, s).await;
    let input = RunInputs {
        conn: &db.conn,
        server_log: db.server_log.clone(),
        scenario: s,
        tables,
        seed: opts.seed,
        output: opts.output,
    };
    let measured = timed("run", run::run(&input, signals))
        .await
        .map_err(|stopped| draft.abandon(stopped))?;
    let recorded = timed("record", recording::record(draft, &db.conn, measured)).await?;
    timed("report", async {
        reporting::report(&recorded, opts, signals)
    })
    .await
}

/// Await a stage, logging (`-v`) when it starts and how long it took.
async fn timed<T>(stage: &str, f: impl Future<Output = T>) -> T {
    tracing::info!("stage {stage}: started");
    let started = Instant::now();
    let out = f.await;
    tracing::info!(
        "stage {stage}: ended after {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );
    out
}
