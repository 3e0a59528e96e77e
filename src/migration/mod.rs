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

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::ConnInfo;
use crate::clock::{Clock, ServerClock};
use crate::latency::SegmentMarks;
use crate::migrations::{Execution, MigrationFile};
use crate::observe::MigrationStatus;
use crate::record::{PhaseSpan, SegmentInfo, StatementRow, StepRow};
use crate::scenario::{PhasePlan, StepAction, StepPlan};

mod backfill;
mod catalog;
mod probe;
mod send;
mod steps;
mod wal;

use catalog::Catalog;
pub use catalog::{Footprint, RelationNames};
pub use probe::{is_catalog, parse_lsn, LockSeen};
use wal::PgssChange;
pub use wal::{same_statement, WalSource};

pub const MIGRATION_APP_NAME: &str = "pgrehearse/migration";

/// How long ROLLBACK / RESET may take after an abort (see `simple_after_abort`).
const AFTER_ABORT_WAIT: Duration = Duration::from_secs(2);

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
    at: Option<(&'a std::path::Path, usize)>,
}

impl<'a> Outgoing<'a> {
    pub(super) fn inline(sql: &'a str) -> Self {
        Outgoing {
            sql,
            code: sql,
            at: None,
        }
    }
}

/// Locks one transaction acquired, statement by statement.
#[derive(Debug, Clone)]
pub struct TxnLocks {
    pub phase: String,
    pub step: String,
    /// Each lock, with the index into `MigrationRun::statements` of the
    /// statement after which the probe first saw it.
    pub acquired: Vec<(LockSeen, usize)>,
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
    pub tables: Vec<String>,
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

enum Failure {
    /// 55P03: lock_timeout expired.
    LockTimeout(String),
    /// Any other SQL error, or a lost connection.
    Sql {
        sqlstate: String,
        message: String,
    },
    Aborted,
}

impl Failure {
    /// The one mapping of a Postgres error: 55P03 (lock_timeout expired) is
    /// retried, anything else fails the step; a lost connection is 08006.
    fn from_pg(e: &tokio_postgres::Error) -> Failure {
        let (sqlstate, message) = crate::pg::sqlstate_and_message(e);
        if sqlstate == "55P03" {
            Failure::LockTimeout(message)
        } else {
            Failure::Sql { sqlstate, message }
        }
    }

    /// The statement's outcome and SQLSTATE in statements.csv.
    fn statement_outcome(&self) -> (&'static str, &str) {
        match self {
            Failure::LockTimeout(_) => ("lock_timeout", "55P03"),
            Failure::Sql { sqlstate, .. } if sqlstate == "57014" => ("statement_timeout", sqlstate),
            Failure::Sql { sqlstate, .. } => ("error", sqlstate),
            Failure::Aborted => ("cancelled", ""),
        }
    }
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
}

/// Run every phase. Never returns an error for a failed step: the failure is
/// recorded in `MigrationRun::failure` so the report can be written.
pub async fn run(ctx: MigrationCtx) -> crate::Result<MigrationRun> {
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
    use rand::SeedableRng;
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x6d69_6772);
    let mut ex = Executor {
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
    };
    ex.run_phases().await;
    ex.ctx.status.in_statement.store(false, Ordering::Relaxed);
    ex.ctx.status.in_step.store(false, Ordering::Relaxed);
    ex.attribute_wal().await;
    ex.run.step_rows = ex.step_rows();
    Ok(ex.run)
}

impl Executor {
    async fn run_phases(&mut self) {
        let phases = self.ctx.phases.clone();
        self.run.start_ms = Some(self.ctx.clock.now_ms());
        for phase in &phases {
            let live: Vec<u16> = phase
                .apps
                .iter()
                .filter_map(|a| self.ctx.app_index.get(a).copied())
                .collect();
            let _ = self.ctx.live.send(Arc::new(live));
            tracing::info!("phase {}: live apps {:?}", phase.name, phase.apps);
            let start_ms = self.mark();
            let mut failed = false;
            for step in &phase.steps {
                if let Err(msg) = self.run_step(phase, step).await {
                    self.run.failure = Some(msg);
                    failed = true;
                    break;
                }
            }
            self.run.phases.push(PhaseSpan {
                name: phase.name.clone(),
                apps: phase.apps.clone(),
                start_ms,
                end_ms: self.mark(),
            });
            if failed {
                break;
            }
        }
        self.run.end_ms = Some(self.ctx.clock.now_ms());
    }

    async fn run_step(&mut self, phase: &PhasePlan, step: &StepPlan) -> Result<(), String> {
        let before = self.boundary().await;
        let start_ms = self.mark();
        tracing::info!("step {} / {}: started", phase.name, step.name);
        let mut span = StepSpan {
            phase: phase.name.clone(),
            step: step.name.clone(),
            start_ms,
            end_ms: start_ms,
            transaction: step.transaction,
            lock_timeout_ms: step.lock_timeout.map(|d| d.as_secs_f64() * 1e3),
            statement_timeout_ms: step.statement_timeout.map(|d| d.as_secs_f64() * 1e3),
            retries: step.retries,
            attempts: 0,
            backfill: matches!(step.action, StepAction::Backfill(_)),
            outcome: "ok".into(),
            file: None,
            segments: Vec::new(),
        };
        self.ctx.status.in_step.store(true, Ordering::Relaxed);
        self.ctx.status.step_started.notify_one();
        let progress = format!("{} / {}", phase.name, step.name);
        let result = match &step.action {
            StepAction::Sql(stmts) => {
                let out: Vec<Outgoing> = stmts.iter().map(|s| Outgoing::inline(s)).collect();
                self.run_with_retries(phase, step, &out, step.transaction, &mut span, &progress)
                    .await
            }
            StepAction::File(file) => self.run_file(phase, step, file, &mut span, &progress).await,
            StepAction::Backfill(b) => self.run_backfill(phase, step, b, &mut span).await,
        };
        self.ctx.status.in_step.store(false, Ordering::Relaxed);
        span.end_ms = self.mark();
        let result = expected(step, result);
        span.outcome = match &result {
            Ok(Outcome::Succeeded) => "ok".into(),
            Ok(Outcome::FailedAsExpected(_)) => "expected_error".into(),
            Err(Failure::LockTimeout(_)) => "lock_timeout".into(),
            Err(Failure::Sql { .. }) => "error".into(),
            Err(Failure::Aborted) => "cancelled".into(),
        };
        tracing::info!(
            "step {} / {}: {} after {:.1} ms, {} attempt(s)",
            phase.name,
            step.name,
            span.outcome,
            span.end_ms - span.start_ms,
            span.attempts
        );
        let after = if matches!(result, Err(Failure::Aborted)) {
            steps::interrupted()
        } else {
            self.boundary().await
        };
        self.run
            .relations
            .step(&phase.name, &step.name, &before.relations, &after.relations);
        self.boundaries
            .push(steps::StepBoundaries::of(&before, &after));
        self.run.steps.push(span);
        match result {
            Ok(Outcome::Succeeded) if !step.expect_error.is_empty() => Err(format!(
                "phase `{}` step `{}`: succeeded, but it was expected to fail with {}",
                phase.name,
                step.name,
                step.expect_error.join(" or ")
            )),
            Ok(outcome) => {
                if let Outcome::FailedAsExpected(sqlstate) = outcome {
                    tracing::info!(
                        "step {} / {}: failed with {sqlstate} as expected (rolled back); the migration goes on",
                        phase.name,
                        step.name
                    );
                }
                if !step.pause_after.is_zero() && !self.sleep(step.pause_after).await {
                    self.run.aborted = true;
                    return Err("interrupted".into());
                }
                Ok(())
            }
            Err(Failure::Aborted) => {
                self.run.aborted = true;
                Err("interrupted".into())
            }
            Err(Failure::LockTimeout(m)) => Err(format!(
                "phase `{}` step `{}`: lock timeout after {} attempt(s): {m} (55P03)",
                phase.name,
                step.name,
                step.retries + 1
            )),
            Err(Failure::Sql { sqlstate, message }) => Err(format!(
                "phase `{}` step `{}`: {}{message} ({sqlstate})",
                phase.name,
                step.name,
                self.failed_at()
            )),
        }
    }

    /// `file:line: ` of the statement that just failed, when it is in a
    /// file (a migration names where to fix it).
    fn failed_at(&self) -> String {
        match self.run.statements.last() {
            Some(row) if row.outcome != "ok" && !row.file.is_empty() => match row.line {
                Some(line) => format!("{}:{line}: ", row.file),
                None => format!("{}: ", row.file),
            },
            _ => String::new(),
        }
    }

    /// A file's segments in order, each the way its tool runs it (one
    /// transaction, or statement by statement), each retried on its own
    /// after a lock timeout: the segments before it are committed.
    async fn run_file(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        file: &MigrationFile,
        span: &mut StepSpan,
        progress: &str,
    ) -> Result<(), Failure> {
        span.file = Some(file.path.display().to_string());
        span.segments = file
            .segments
            .iter()
            .map(|seg| SegmentInfo {
                transaction: seg.execution == Execution::Transaction,
                reason: seg.reason.clone(),
                statements: seg.statements.len(),
            })
            .collect();
        let many = file.segments.len() > 1;
        for (k, seg) in file.segments.iter().enumerate() {
            let out: Vec<Outgoing> = seg
                .statements
                .iter()
                .map(|st| Outgoing {
                    sql: &st.sql,
                    code: st.code(),
                    at: Some((&st.location.file, st.location.line)),
                })
                .collect();
            let progress = if many {
                format!("{progress} (part {} of {})", k + 1, file.segments.len())
            } else {
                progress.to_string()
            };
            let in_transaction = seg.execution == Execution::Transaction;
            self.run_with_retries(phase, step, &out, in_transaction, span, &progress)
                .await?;
        }
        Ok(())
    }

    /// Now, as the start or end of a phase or step: marked as a latency
    /// segment boundary, so the app latency reported for the span is
    /// exactly the requests that completed in it.
    fn mark(&self) -> f64 {
        self.ctx.marks.mark()
    }

    /// Sleep unless aborted; false when aborted.
    async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.ctx.abort.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }

    /// Run `stmts` (in one transaction or each on its own) until they
    /// succeed, fail for another reason, or lock timeouts have used up the
    /// step's retries, with a jittered backoff between attempts. `progress`
    /// is what the progress display shows. SQL steps and backfill batches
    /// both retry through here.
    pub(super) async fn run_with_retries(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        in_transaction: bool,
        span: &mut StepSpan,
        progress: &str,
    ) -> Result<(), Failure> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            span.attempts += 1;
            self.ctx.current.set(if attempt > 1 {
                format!("{progress} (attempt {attempt})")
            } else {
                progress.to_string()
            });
            let r = if in_transaction {
                self.attempt_in_transaction(phase, step, stmts, attempt)
                    .await
            } else {
                self.attempt_autocommit(phase, step, stmts, attempt).await
            };
            match r {
                Err(Failure::LockTimeout(_)) if attempt <= step.retries => {
                    let wait = self.backoff(step, attempt);
                    log_retry(phase, step, attempt, wait);
                    if !self.sleep(wait).await {
                        return Err(Failure::Aborted);
                    }
                }
                other => return other,
            }
        }
    }

    /// Exponential backoff with ±50% jitter so retries of several migrators
    /// (or of app retries) don't synchronise; capped at 10 s.
    fn backoff(&mut self, step: &StepPlan, attempt: u32) -> Duration {
        let base = step.retry_backoff.as_secs_f64() * 2f64.powi(attempt as i32 - 1);
        let jitter = self.rng.gen_range(0.5..1.5);
        Duration::from_secs_f64((base * jitter).min(10.0))
    }

    fn session_settings(step: &StepPlan, local: bool) -> String {
        let scope = if local { "SET LOCAL" } else { "SET" };
        let lt = step.lock_timeout.map(|d| d.as_millis()).unwrap_or(0);
        let st = step.statement_timeout.map(|d| d.as_millis()).unwrap_or(0);
        format!("{scope} lock_timeout = {lt}; {scope} statement_timeout = {st};")
    }

    async fn attempt_in_transaction(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        attempt: u32,
    ) -> Result<(), Failure> {
        let setup = format!("BEGIN; {}", Self::session_settings(step, true));
        let mut before = self.setup(&setup, true).await?;
        let mut txn = TxnLocks {
            phase: phase.name.clone(),
            step: step.name.clone(),
            acquired: Vec::new(),
            released_ms: 0.0,
        };
        let mut result = Ok(());
        // When COMMIT (sent behind the last statement) returned.
        let mut ended: Option<f64> = None;
        // The first statement since the last probe that worked: a lock a
        // later probe sees first may have been taken from its start on.
        let mut unprobed: Option<(usize, String)> = None;
        for (i, sql) in stmts.iter().enumerate() {
            let last = i + 1 == stmts.len();
            let sent = self.send(phase, step, *sql, attempt, true, last).await;
            let idx = self.record(&sent, &before, true);
            match &sent.probe {
                Ok(p) => {
                    // Dated from the earliest statement that may have taken
                    // it: a hold is never understated.
                    let taken_by = unprobed.take().map_or(idx, |(first, _)| first);
                    for k in &p.locks {
                        if !txn.acquired.iter().any(|(a, _)| a.same(k)) && !is_catalog_lock(k) {
                            txn.acquired.push((k.clone(), taken_by));
                        }
                    }
                }
                Err(why) if sent.outcome.is_ok() => {
                    unprobed.get_or_insert_with(|| (idx, why.clone()));
                }
                Err(_) => {}
            }
            if let Some((commit, at)) = sent.commit {
                // A failed statement aborted the message before its COMMIT
                // (the probe's undo fails first): ROLLBACK below ends it.
                if sent.outcome.is_ok() {
                    ended = Some(at);
                    result = commit;
                }
            }
            if let Err(f) = sent.outcome {
                result = Err(f);
                break;
            }
            before = sent.probe;
        }
        if let Some((first, why)) = unprobed {
            // No later probe listed what these statements took (COMMIT
            // went out behind the last one, or the transaction failed).
            self.locks_unknown(first, &why);
        }
        if ended.is_none() {
            let end_sql = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
            let end = self.clean_up(end_sql, &result).await;
            if result.is_ok() {
                result = end;
            }
        }
        txn.released_ms = ended.unwrap_or_else(|| self.ctx.clock.now_ms());
        self.run.txns.push(txn);
        result
    }

    async fn attempt_autocommit(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        attempt: u32,
    ) -> Result<(), Failure> {
        let mut before = self
            .setup(&Self::session_settings(step, false), false)
            .await?;
        let mut result = Ok(());
        for sql in stmts {
            let sent = self.send(phase, step, *sql, attempt, false, false).await;
            self.record(&sent, &before, false);
            if let Err(f) = sent.outcome {
                result = Err(f);
                break;
            }
            before = sent.probe;
        }
        let reset = self
            .clean_up("RESET lock_timeout; RESET statement_timeout", &result)
            .await;
        result.and(reset)
    }

    async fn simple(&mut self, sql: &str) -> Result<(), Failure> {
        tracing::debug!("migration session: sending {sql}");
        self.client
            .batch_execute(sql)
            .await
            .map_err(|e| Failure::from_pg(&e))
    }

    /// Close a transaction or reset the session after `result`: quickly
    /// when the attempt was aborted (see `simple_after_abort`).
    async fn clean_up(&mut self, sql: &str, result: &Result<(), Failure>) -> Result<(), Failure> {
        if matches!(result, Err(Failure::Aborted)) {
            self.simple_after_abort(sql).await
        } else {
            self.simple(sql).await
        }
    }

    /// After an abort the cancelled statement may still be running: a
    /// killed postmaster cannot forward the cancel request, and its orphaned
    /// backend runs on. Whatever is sent now queues behind it, so give up
    /// quickly instead of waiting forever.
    async fn simple_after_abort(&mut self, sql: &str) -> Result<(), Failure> {
        match tokio::time::timeout(AFTER_ABORT_WAIT, self.simple(sql)).await {
            Ok(r) => r,
            Err(_) => Err(Failure::Aborted),
        }
    }
}

/// A lock on a catalog relation (oids below 16384, or `pg_*` names): the
/// probe's own, not the migration's.
fn is_catalog_lock(l: &LockSeen) -> bool {
    l.oid.is_some_and(|o| o < 16384) || is_catalog(&l.name)
}

/// How a step ended when the migration goes on after it.
enum Outcome {
    Succeeded,
    /// It failed with a SQLSTATE its `expect_error` lists (the SQLSTATE).
    FailedAsExpected(String),
}

/// A failure the step expects (`expect_error`) is no failure of the
/// migration: its transaction was rolled back (or its autocommit statement
/// undone), and the next step runs. A lock timeout counts once the step's
/// retries are used up.
fn expected(step: &StepPlan, result: Result<(), Failure>) -> Result<Outcome, Failure> {
    match result {
        Ok(()) => Ok(Outcome::Succeeded),
        Err(Failure::LockTimeout(_)) if step.expects("55P03") => {
            Ok(Outcome::FailedAsExpected("55P03".into()))
        }
        Err(Failure::Sql { sqlstate, .. }) if step.expects(&sqlstate) => {
            Ok(Outcome::FailedAsExpected(sqlstate))
        }
        Err(f) => Err(f),
    }
}

/// `-v`: a lock timeout is retried after `wait` (backoff with jitter).
fn log_retry(phase: &PhasePlan, step: &StepPlan, attempt: u32, wait: Duration) {
    tracing::info!(
        "{} / {}: lock timeout on attempt {attempt}; retry {attempt} of {} after a {:.0} ms backoff",
        phase.name,
        step.name,
        step.retries,
        wait.as_secs_f64() * 1e3
    );
}
