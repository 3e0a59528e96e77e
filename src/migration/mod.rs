//! The migration executor: phases in order, steps in order, each step in its
//! own transaction (or statement by statement for CONCURRENTLY), with
//! lock_timeout / statement_timeout, retries with backoff and jitter on lock
//! timeouts, and batched backfills.
//!
//! Timing: every statement's send and completion are taken on the run clock.
//! The executor also *probes* its own session after each statement (probe.rs)
//! — the locks it now holds, its sequential scans, the tables' relfilenodes,
//! the WAL position and pg_stat_statements' counters — pipelined behind the
//! statement, and behind the last statement of a transaction goes its COMMIT:
//! the probe adds its execution (a fraction of a millisecond) to the locks'
//! hold, and no round trip. At each step's boundaries (catalog.rs) it reads
//! the relations and the tables' sizes and dead tuples; at the end it
//! attributes each statement's own WAL (wal.rs).
//!
//! This file is what the executor is given and what it returns, and `run`,
//! which prepares the session and runs it. phases.rs runs the phases and
//! steps in order, attempt.rs each attempt at a step's statements and the
//! retries, failure.rs says how a step fails, send.rs sends one statement,
//! backfill.rs runs a backfill's batches, session.rs keeps the timeouts
//! migration files set for the files after them, steps.rs makes steps.csv.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::ConnInfo;
use crate::clock::{Clock, ServerClock};
use crate::latency::SegmentMarks;
use crate::observe::MigrationStatus;
use crate::record::{PhaseSpan, StatementRow, StepRow};
use crate::scenario::PhasePlan;

mod attempt;
mod backfill;
mod catalog;
mod failure;
mod phases;
mod probe;
mod send;
mod session;
mod steps;
mod wal;

use catalog::Catalog;
pub use catalog::{Footprint, RelationNames};
pub use probe::{is_catalog, parse_lsn, LockSeen};
use wal::PgssChange;
pub use wal::{same_statement, WalSource};

pub const MIGRATION_APP_NAME: &str = "pgrehearse/migration";

/// One statement to send, and where it is written (statements.csv `file`
/// and `line`; none for a scenario's inline SQL and backfill batches).
#[derive(Debug, Clone, Copy)]
pub(super) struct Outgoing<'a> {
    /// What the session sends: a file's statement with the comments before
    /// it, as its tool sends it.
    sql: &'a str,
    /// What statements.csv shows: from the first token that is not a
    /// comment, which the analysis reads (`CREATE INDEX ...`).
    code: &'a str,
    /// The file's statement it is.
    at: Option<&'a crate::migrations::Statement>,
    /// Where an inline statement is written in the scenario file: only to
    /// place a server error (statements.csv's `file` and `line` are a
    /// migration file's).
    written: Option<&'a crate::migrations::Statement>,
}

impl<'a> Outgoing<'a> {
    pub(super) fn inline(sql: &'a str) -> Self {
        Outgoing {
            sql,
            code: sql,
            at: None,
            written: None,
        }
    }
}

/// Locks one transaction acquired, statement by statement.
#[derive(Debug, Clone)]
pub struct TxnLocks {
    pub phase: String,
    pub step: String,
    /// Each hold of a lock, with the index into `MigrationRun::statements`
    /// of the statement after which the probe first saw it. A lock let go
    /// and taken again in the transaction has a hold for each time.
    pub acquired: Vec<(LockSeen, usize)>,
    /// Holds of `acquired` (their index there) a later probe no longer
    /// listed, with the index of the statement after which it did not (a
    /// ROLLBACK TO SAVEPOINT, or a PL/pgSQL exception block, released them
    /// before COMMIT).
    pub gone: Vec<(usize, usize)>,
    /// When the transaction ended and released its locks: the server's
    /// clock right after COMMIT / ROLLBACK (on the run clock), else when
    /// it returned.
    pub released_ms: f64,
}

/// When the server ran a statement, on the run clock: its clock right
/// before the statement (pipelined ahead of it) and during the probe right
/// after it. Free of the client's own delays (a loaded machine).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServerSpan {
    pub start_ms: f64,
    pub end_ms: f64,
}

pub use crate::record::StepInfo as StepSpan;

#[derive(Debug, Default)]
pub struct MigrationRun {
    pub statements: Vec<StatementRow>,
    /// The server's span of each statement (same index), where known.
    pub server_spans: Vec<Option<ServerSpan>>,
    /// The statements run outside a transaction (indexes): only the
    /// held-lock poll saw their locks.
    pub outside_txn: Vec<usize>,
    pub txns: Vec<TxnLocks>,
    pub phases: Vec<PhaseSpan>,
    pub steps: Vec<StepSpan>,
    /// steps.csv: each step's footprint, WAL and rewrite.
    pub step_rows: Vec<StepRow>,
    /// The names of the relations the steps locked (new, dropped).
    pub relations: RelationNames,
    /// How the migration's own WAL was attributed (run.json).
    pub wal: WalSource,
    /// How steps.csv's sizes were read, or why they are unknown (run.json).
    pub sizes_method: Option<String>,
    /// What went wrong, when the migration did not finish.
    pub failure: Option<String>,
    /// The migration stopped because `abort` was cancelled (a signal, a dead
    /// server), not because a step failed: the caller knows the real cause.
    pub aborted: bool,
    pub pid: i32,
    pub start_ms: Option<f64>,
    pub end_ms: Option<f64>,
}

/// What the progress display shows.
#[derive(Debug, Default)]
pub struct CurrentStep(pub std::sync::Mutex<String>);

impl CurrentStep {
    pub fn set(&self, s: String) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = s;
    }
    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

pub struct MigrationCtx {
    pub conn: ConnInfo,
    pub phases: Vec<PhasePlan>,
    pub tables: Vec<u32>,
    /// What steps.csv sizes besides `tables` (their names now, every
    /// table with `[migrations]`).
    pub sized: crate::pg::SizedTables,
    pub clock: Clock,
    pub status: Arc<MigrationStatus>,
    /// App name → index, for switching live apps per phase.
    pub app_index: HashMap<String, u16>,
    pub live: watch::Sender<Arc<Vec<u16>>>,
    pub abort: CancellationToken,
    pub current: Arc<CurrentStep>,
    /// Phases and steps start and end here: the latency segments' bounds.
    pub marks: Arc<SegmentMarks>,
    pub seed: u64,
    /// Whether the migration's own WAL can be attributed (see wal.rs).
    pub wal: WalSource,
    /// Maps the server's clock onto the run clock.
    pub server_clock: ServerClock,
}

struct Executor {
    client: Client,
    ctx: MigrationCtx,
    run: MigrationRun,
    /// The probe, or why there is none (it could not be prepared).
    probe: Result<tokio_postgres::Statement, String>,
    /// The server's clock (probe.rs), sent around statements.
    server_now: Option<tokio_postgres::Statement>,
    /// Step boundaries, or why they cannot be read.
    catalog: Result<Catalog, String>,
    /// Per step: the footprint at its start and end (steps.rs).
    boundaries: Vec<steps::StepBoundaries>,
    /// Per statement (index): the pg_stat_statements entries that moved
    /// while it ran, attributed at the end (wal.rs).
    pgss_changes: Vec<(usize, Vec<PgssChange>)>,
    rng: rand_chacha::ChaCha8Rng,
    /// What migration files' own session-level `SET`s left in effect for
    /// the step that runs now (session.rs).
    session: session::FileTimeouts,
    /// What the tool's one connection carries out of the last of its
    /// files that ran, and in which phase.
    tool_session: Option<(String, session::FileTimeouts)>,
    /// The session's own lock_timeout and statement_timeout as it
    /// connected (ms): a role's, a database's or the server's.
    session_defaults: (u64, u64),
}

/// Run every phase. Never returns an error for a failed step: the failure is
/// recorded in `MigrationRun::failure` so the report can be written.
/// The migration session, connected and its statements prepared, ready to
/// run the phases: made while the traffic before the first step runs, so
/// that the first step begins when that period ends (connecting and
/// preparing take a few hundred ms).
pub struct Prepared(Executor);

/// Connect the migration session and prepare its probe, catalog reads and
/// clock.
pub async fn prepare(ctx: MigrationCtx) -> crate::Result<Prepared> {
    let client = ctx.conn.connect(MIGRATION_APP_NAME).await?;
    let row = client
        .query_one(
            "SELECT pg_backend_pid(), current_setting('server_version_num')::int",
            &[],
        )
        .await?;
    let (pid, version_num): (i32, i32) = (row.get(0), row.get(1));
    ctx.status.pid.store(pid, Ordering::Relaxed);
    let probe = probe::prepare(&client, &ctx.tables, &ctx.wal)
        .await
        .map_err(|e| {
            format!(
                "the probe could not be prepared: {}",
                crate::pg::error_text(&e)
            )
        });
    let catalog = Catalog::prepare(&client, version_num as u32)
        .await
        .map_err(|e| {
            format!(
                "the sizes could not be prepared: {}",
                crate::pg::error_text(&e)
            )
        });
    let server_now = probe::prepare_clock(&client).await.ok();
    let session_defaults = session::defaults(&client).await;
    use rand::SeedableRng;
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x6d69_6772);
    Ok(Prepared(Executor {
        client,
        run: MigrationRun {
            pid,
            wal: ctx.wal.clone(),
            sizes_method: Some(match &catalog {
                Ok(c) => c.method.clone(),
                Err(e) => e.clone(),
            }),
            ..Default::default()
        },
        ctx,
        probe,
        server_now,
        catalog,
        boundaries: Vec::new(),
        pgss_changes: Vec::new(),
        rng,
        session: Default::default(),
        tool_session: None,
        session_defaults,
    }))
}

/// Run every phase on the prepared session; what happened, failures
/// included.
pub async fn execute(prepared: Prepared) -> MigrationRun {
    let Prepared(mut ex) = prepared;
    ex.run_phases().await;
    ex.ctx.status.in_statement.store(false, Ordering::Relaxed);
    ex.ctx.status.in_step.store(false, Ordering::Relaxed);
    ex.attribute_wal().await;
    ex.run.step_rows = ex.step_rows();
    ex.run
}
