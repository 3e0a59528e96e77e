//! pgrehearse as a library: rehearse a scenario from Rust (a test in your
//! own suite, a criterion bench) and get back what was measured, typed.
//!
//! ```no_run
//! use pgrehearse::{rehearse, scenario, Blocks, RunOptions};
//!
//! # async fn example() -> pgrehearse::Result<()> {
//! let toml = r#"
//!     name = "add-index"
//!     [[table]]
//!     name = "orders"
//!     rows = 20_000
//!     create = "CREATE TABLE orders (id bigint PRIMARY KEY, status int NOT NULL)"
//!     [table.columns]
//!     id = { gen = "sequence" }
//!     status = { gen = "int", min = 0, max = 5 }
//!     [workload]
//!     rate = 200
//!     before = "500ms"
//!     after = "500ms"
//!     [[workload.query]]
//!     name = "update_status"
//!     sql = "UPDATE orders SET status = $2 WHERE id = $1"
//!     params = [{ gen = "fk", table = "orders" }, { gen = "int", min = 0, max = 5 }]
//!     [[phase]]
//!     name = "expand"
//!     [[phase.step]]
//!     name = "index"
//!     sql = "CREATE INDEX CONCURRENTLY orders_status ON orders (status)"
//!     transaction = false
//! "#;
//! let s = scenario::load_str("add-index.toml".as_ref(), toml.as_bytes(), &Default::default())?;
//! // An ephemeral local cluster (Postgres binaries on PATH), reports in ./rehearsals.
//! let r = rehearse(&s, &RunOptions::local("rehearsals")).await?;
//! assert!(r.passed(), "{}", r.summary());
//! let step = r.step("expand", "index").expect("the step ran");
//! // What the app felt: no lock that blocks reads or writes held over 50 ms
//! // (CONCURRENTLY holds ACCESS EXCLUSIVE on its new index for a moment:
//! // that blocks nobody, `Blocks::None`), no app query waited over 100 ms.
//! for hold in r.locks_of(step).filter(|l| l.blocks != Blocks::None) {
//!     assert!(hold.held_ms.unwrap_or(0.0) < 50.0, "{hold:?}");
//! }
//! assert!(step.worst_app_wait.as_ref().is_none_or(|w| w.wait_ms < 100.0));
//! println!("p99 while it ran: {:?} ms", step.latency.p99_ms);
//! # Ok(())
//! # }
//! ```
//!
//! - [`rehearse`] provisions a server as `RunOptions::server` says (see
//!   [`RunOptions::local`]; `docker` and `url` as on the command line),
//!   seeds, runs the traffic and the migration, writes the run directory
//!   (every report the command line writes), tears the server down, and
//!   returns a [`Rehearsal`]: the run directory read back
//!   ([`crate::record::RunRecord`]) and analysed ([`Analysis`]: steps,
//!   spans, budgets, findings).
//! - It installs no signal handler: Ctrl-C stays the process's. To stop a
//!   rehearsal, cancel the token of [`rehearse_until`]: it stops as an
//!   interrupted run does (a partial report, the server torn down, exit
//!   code 130). Dropping the future also tears the server down, but leaves
//!   a run directory without its reports.
//! - Figures are milliseconds on the run's clock, as in the CSVs
//!   (reports/README.md documents every one). Lock modes are PostgreSQL's
//!   names (`AccessExclusiveLock`); [`crate::locks::LockMode`] parses them,
//!   and `blocks` says what a lock took from the app. Relations a step
//!   created or dropped carry ` (new)` / ` (dropped)`
//!   ([`crate::locks::unmarked`] strips it).
//! - Several rehearsals may run at once in one process (parallel tests):
//!   each gets its own server, ports and run directory.
//! - A bad scenario is [`crate::Error::Scenario`] naming file, line, column
//!   and field, as `pgrehearse check` says it. A scenario built in code
//!   (its plan's fields are public) is not checked as thoroughly: `rehearse`
//!   refuses phases whose app versions no query sends
//!   ([`Scenario::check_apps`]), which would otherwise run without traffic.
//!
//! # Seed once, rehearse many
//!
//! Rehearsing several scenarios on the same data (naive against safe, a
//! bench's samples) need not seed each time: provision one server, seed a
//! template once, clone it per rehearsal (`CREATE DATABASE ... TEMPLATE`),
//! as `compare`, `sweep` and `benches/ddl.rs` do:
//!
//! ```no_run
//! use pgrehearse::rehearsal::{self, Server, ServerNeeds, TemplateMade};
//! use pgrehearse::scenario::Scenario;
//! use pgrehearse::seed::SeedOptions;
//! use pgrehearse::signals::Signals;
//! use pgrehearse::RunOptions;
//!
//! # async fn example(naive: Scenario, safe: Scenario) -> pgrehearse::Result<()> {
//! let opts = RunOptions::local("rehearsals");
//! let signals = Signals::default();
//! // None when the two need different servers (versions, settings).
//! let needs = ServerNeeds::of_all(&[&naive, &safe]).expect("one server for both");
//! let server = Server::provision(&opts.server, &needs, &signals).await?;
//! // Seeds on the first call for this data, returns the same template after.
//! let template = server.ensure_template(&naive, &SeedOptions::new(opts.seed)).await?;
//! let seed_ms = match &template.made {
//!     TemplateMade::Seeded(report) => report.duration.as_secs_f64() * 1e3,
//!     _ => 0.0,
//! };
//! for s in [&naive, &safe] {
//!     let db = template.clone_into().await?;
//!     let outcome = rehearsal::rehearse_seeded(&db, s, &opts, &signals, seed_ms).await;
//!     db.discard().await?; // teardown would drop it too
//!     println!("{}: {} ({:?})", s.name, outcome.describe(), outcome.run_dir);
//! }
//! server.teardown().await; // drops what it created, stops what it started
//! # Ok(())
//! # }
//! ```
//!
//! Two scenarios share a template when their data are the same (tables,
//! generators, rows, seed_sql, seed, server version); their workloads and
//! steps may differ.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use crate::analyze::{Analysis, StepFacts};
use crate::error::{exit, Error, Result};
use crate::options::{OutputMode, RunOptions, ServerOptions, SummaryFormat};
use crate::record::{LockRow, RunRecord, WaitRow};
use crate::scenario::Scenario;
use crate::signals::Signals;

/// One rehearsal, as measured: its run directory, read back and analysed.
#[derive(Debug, Clone)]
pub struct Rehearsal {
    /// Where every report and CSV of the run is.
    pub run_dir: PathBuf,
    /// What `pgrehearse run` would have exited with: 0 every budget held, 1
    /// one was breached, 4 the rehearsal failed (a step's SQL error, the
    /// server died; its partial report is there), 130 stopped.
    pub exit_code: u8,
    /// The run directory's files, as read back.
    pub record: RunRecord,
    /// Steps, spans, budgets and findings (summary.json's figures).
    pub analysis: Analysis,
}

impl Rehearsal {
    /// The rehearsal finished and every budget held.
    pub fn passed(&self) -> bool {
        self.exit_code == exit::OK
    }

    /// Why it did not finish, if it did not (run.json `failure`).
    pub fn failure(&self) -> Option<&str> {
        self.analysis.run.failure.as_deref()
    }

    /// A step by phase and step name.
    pub fn step(&self, phase: &str, step: &str) -> Option<&StepFacts> {
        self.analysis
            .steps
            .iter()
            .find(|s| s.phase == phase && s.step == step)
    }

    /// The locks `step` took (locks.csv rows), in the order requested.
    pub fn locks_of<'a>(&'a self, step: &'a StepFacts) -> impl Iterator<Item = &'a LockRow> {
        self.record
            .locks
            .iter()
            .filter(move |l| l.phase == step.phase && l.step == step.step)
    }

    /// The app's lock waits (waits.csv rows, scripts' and other sessions'
    /// left out), longest first.
    pub fn app_waits(&self) -> Vec<&WaitRow> {
        let mut w: Vec<&WaitRow> = self
            .record
            .waits
            .iter()
            .filter(|w| crate::latency::is_the_apps(&w.app))
            .collect();
        w.sort_by(|a, b| b.wait_ms.total_cmp(&a.wait_ms));
        w
    }

    /// The verdict and each breached budget, on a few lines (for an
    /// assertion's message).
    pub fn summary(&self) -> String {
        let mut out = crate::report::verdict_line(&self.analysis);
        for b in self.analysis.breached() {
            out.push_str(&format!("\n{}: {}", b.name, b.detail));
        }
        if let Some(f) = self.failure() {
            out.push_str(&format!("\nfailure: {f}"));
        }
        out.push_str(&format!("\nrun directory: {}", self.run_dir.display()));
        out
    }
}

impl RunOptions {
    /// A rehearsal on an ephemeral local cluster (the Postgres binaries on
    /// PATH or in /usr/lib/postgresql), run directories under `out`, the
    /// default seed, quiet.
    pub fn local(out: impl AsRef<Path>) -> RunOptions {
        RunOptions::on(ServerOptions::of(crate::backend::BackendKind::Local), out)
    }

    /// A rehearsal on `server`, run directories under `out`, the default
    /// seed, nothing printed.
    pub fn on(server: ServerOptions, out: impl AsRef<Path>) -> RunOptions {
        RunOptions {
            server,
            out: out.as_ref().to_path_buf(),
            seed: crate::options::DEFAULT_SEED,
            budgets: Vec::new(),
            output: OutputMode {
                summary: SummaryFormat::Nothing,
                chatter: false,
                verbose: 0,
            },
            versions: Vec::new(),
        }
    }
}

/// Rehearse `scenario` as `opts` say and return what was measured. Fails
/// (with the error `pgrehearse run` would print, and its exit code) where
/// no run directory was written — a server that could not be provisioned,
/// data that could not be seeded —, for a scenario built in code that
/// [`Scenario::check_apps`] refuses, one with nothing to rehearse
/// (`--since-git` found no new migration), and a run directory that does
/// not read back. A rehearsal that failed midway is a [`Rehearsal`] with
/// exit code 4.
pub async fn rehearse(scenario: &Scenario, opts: &RunOptions) -> Result<Rehearsal> {
    rehearse_until(scenario, opts, CancellationToken::new()).await
}

/// [`rehearse`], stopped when `stop` is cancelled, as Ctrl-C stops `run`:
/// a partial report, the server torn down, exit code 130.
pub async fn rehearse_until(
    scenario: &Scenario,
    opts: &RunOptions,
    stop: CancellationToken,
) -> Result<Rehearsal> {
    // A file's scenario was checked as it loaded; one built in code was not.
    scenario
        .check_apps()
        .map_err(|why| Error::Usage(format!("scenario {}: {why}", scenario.name)))?;
    let signals = Signals::stopped_by(stop);
    let outcome = crate::rehearsal::rehearse_one(scenario, opts, &signals).await;
    let exit_code = outcome.exit_code();
    let run_dir = match (outcome.run_dir, outcome.result) {
        (Some(dir), _) => dir,
        (None, Err(e)) => return Err(e),
        (None, Ok(_)) => {
            return Err(Error::Usage(format!(
                "{}: nothing to rehearse (no migration is new)",
                scenario.name
            )))
        }
    };
    let record = RunRecord::read(&run_dir)?;
    let analysis = crate::analyze::analyze(&record);
    Ok(Rehearsal {
        run_dir,
        exit_code,
        record,
        analysis,
    })
}
