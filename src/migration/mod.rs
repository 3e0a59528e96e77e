//! The migration executor: phases in order, steps in order, each step in its
//! own transaction (or statement by statement for CONCURRENTLY), with
//! lock_timeout / statement_timeout, retries with backoff and jitter on lock
//! timeouts, and batched backfills.
//!
//! Timing: every statement's send and completion are taken on the run clock.
//! Inside a transaction the executor also *probes* its own session after each
//! statement — the locks it now holds (pg_locks for its own pid), its
//! sequential scans (pg_stat_xact_user_tables), the tables' relfilenodes (a
//! new one means a rewrite) and the WAL position. A probe is one round trip
//! (well under a millisecond on loopback); it runs while the locks are held,
//! so it lengthens the hold by exactly what it measures.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::watch;
use tokio_postgres::Client;
use tokio_util::sync::CancellationToken;

use crate::backend::ConnInfo;
use crate::clock::Clock;
use crate::migrations::{Execution, MigrationFile};
use crate::observe::MigrationStatus;
use crate::record::{PhaseSpan, SegmentInfo, StatementRow};
use crate::scenario::{PhasePlan, StepAction, StepPlan};

mod backfill;
mod probe;

pub use probe::{is_catalog, parse_lsn};
use probe::{is_transient, Probe};

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

/// A lock key: (locktype, relation or locktype, mode).
pub type LockKey = (String, String, String);

/// Locks one transaction acquired, statement by statement.
#[derive(Debug, Clone)]
pub struct TxnLocks {
    pub phase: String,
    pub step: String,
    /// Index into `MigrationRun::statements` of each statement of the txn.
    pub acquired: Vec<(LockKey, usize)>,
    /// When COMMIT / ROLLBACK returned: every lock is released by then.
    pub released_ms: f64,
}

pub use crate::record::StepInfo as StepSpan;

#[derive(Debug, Default)]
pub struct MigrationRun {
    pub statements: Vec<StatementRow>,
    pub txns: Vec<TxnLocks>,
    pub phases: Vec<PhaseSpan>,
    pub steps: Vec<StepSpan>,
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
    pub seed: u64,
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
    probe: tokio_postgres::Statement,
    rng: rand_chacha::ChaCha8Rng,
}

/// Run every phase. Never returns an error for a failed step: the failure is
/// recorded in `MigrationRun::failure` so the report can be written.
pub async fn run(ctx: MigrationCtx) -> crate::Result<MigrationRun> {
    let client = ctx.conn.connect(MIGRATION_APP_NAME).await?;
    let pid: i32 = client
        .query_one("SELECT pg_backend_pid()", &[])
        .await?
        .get(0);
    ctx.status.pid.store(pid, Ordering::Relaxed);
    let probe = probe::prepare(&client).await?;
    use rand::SeedableRng;
    let rng = rand_chacha::ChaCha8Rng::seed_from_u64(ctx.seed ^ 0x6d69_6772);
    let mut ex = Executor {
        client,
        ctx,
        run: MigrationRun {
            pid,
            ..Default::default()
        },
        probe,
        rng,
    };
    ex.run_phases().await;
    ex.ctx.status.in_statement.store(false, Ordering::Relaxed);
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
            let start_ms = self.ctx.clock.now_ms();
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
                end_ms: self.ctx.clock.now_ms(),
            });
            if failed {
                break;
            }
        }
        self.run.end_ms = Some(self.ctx.clock.now_ms());
    }

    async fn run_step(&mut self, phase: &PhasePlan, step: &StepPlan) -> Result<(), String> {
        let start_ms = self.ctx.clock.now_ms();
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
        span.end_ms = self.ctx.clock.now_ms();
        if let Err(f) = &result {
            span.outcome = match f {
                Failure::LockTimeout(_) => "lock_timeout".into(),
                Failure::Sql { .. } => "error".into(),
                Failure::Aborted => "cancelled".into(),
            };
        }
        tracing::info!(
            "step {} / {}: {} after {:.1} ms, {} attempt(s)",
            phase.name,
            step.name,
            span.outcome,
            span.end_ms - span.start_ms,
            span.attempts
        );
        self.run.steps.push(span);
        match result {
            Ok(()) => {
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
        let mut s = String::new();
        let lt = step.lock_timeout.map(|d| d.as_millis()).unwrap_or(0);
        let st = step.statement_timeout.map(|d| d.as_millis()).unwrap_or(0);
        s.push_str(&format!(
            "{scope} lock_timeout = {lt}; {scope} statement_timeout = {st};"
        ));
        s
    }

    async fn attempt_in_transaction(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        attempt: u32,
    ) -> Result<(), Failure> {
        let setup = format!("BEGIN; {}", Self::session_settings(step, true));
        self.simple(&setup).await?;
        let mut txn = TxnLocks {
            phase: phase.name.clone(),
            step: step.name.clone(),
            acquired: Vec::new(),
            released_ms: 0.0,
        };
        let mut before = self.probe().await.unwrap_or_default();
        let mut result = Ok(());
        for sql in stmts {
            let (idx, after) = match self
                .recorded(phase, step, *sql, attempt, false, &before)
                .await
            {
                Ok(r) => r,
                Err(f) => {
                    result = Err(f);
                    break;
                }
            };
            for k in &after.locks {
                if !txn.acquired.iter().any(|(a, _)| a == k)
                    && !is_catalog(&k.1)
                    && !is_transient(&k.1)
                {
                    txn.acquired.push((k.clone(), idx));
                }
            }
            before = after;
        }
        let end_sql = if result.is_ok() { "COMMIT" } else { "ROLLBACK" };
        let end = self.clean_up(end_sql, &result).await;
        txn.released_ms = self.ctx.clock.now_ms();
        self.run.txns.push(txn);
        match (result, end) {
            (Err(f), _) => Err(f),
            (Ok(()), Err(f)) => Err(f),
            (Ok(()), Ok(())) => Ok(()),
        }
    }

    /// Send one statement, record its row, and probe the session after it
    /// (rewrite, scans, WAL against `before`). Returns the row's index and
    /// the new probe.
    async fn recorded(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        sql: Outgoing<'_>,
        attempt: u32,
        autocommit: bool,
        before: &Probe,
    ) -> Result<(usize, Probe), Failure> {
        let (row, outcome) = self.execute(phase, step, sql, attempt, autocommit).await;
        let idx = self.run.statements.len();
        self.run.statements.push(row);
        outcome?;
        let after = self.probe().await.unwrap_or_default();
        self.fill_probe_facts(idx, before, &after);
        Ok((idx, after))
    }

    async fn attempt_autocommit(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        attempt: u32,
    ) -> Result<(), Failure> {
        self.simple(&Self::session_settings(step, false)).await?;
        let mut result = Ok(());
        for sql in stmts {
            let before = self.probe().await.unwrap_or_default();
            if let Err(f) = self
                .recorded(phase, step, *sql, attempt, true, &before)
                .await
            {
                result = Err(f);
                break;
            }
        }
        let reset = self
            .clean_up("RESET lock_timeout; RESET statement_timeout", &result)
            .await;
        result.and(reset)
    }

    /// Send one statement and time it. Never panics on SQL errors: they come
    /// back as the outcome.
    async fn execute(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        out: Outgoing<'_>,
        attempt: u32,
        autocommit: bool,
    ) -> (StatementRow, Result<(), Failure>) {
        let sql = out.sql;
        let status = &self.ctx.status;
        status.autocommit.store(autocommit, Ordering::Relaxed);
        status.in_statement.store(true, Ordering::Relaxed);
        let cancel = self.client.cancel_token();
        tracing::debug!(
            "{} / {} (attempt {attempt}): sending {sql}",
            phase.name,
            step.name
        );
        let start = self.ctx.clock.now_ms();
        let r = tokio::select! {
            r = self.client.simple_query(sql) => Some(r),
            _ = self.ctx.abort.cancelled() => None,
        };
        let end = self.ctx.clock.now_ms();
        status.in_statement.store(false, Ordering::Relaxed);
        let result = match r {
            None => {
                self.ctx.conn.cancel(&cancel).await;
                Err(Failure::Aborted)
            }
            Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(Failure::from_pg(&e)),
        };
        let (outcome, sqlstate) = match &result {
            Ok(()) => ("ok", ""),
            Err(f) => f.statement_outcome(),
        };
        tracing::debug!(
            "{} / {}: {outcome}{} after {:.1} ms",
            phase.name,
            step.name,
            if sqlstate.is_empty() {
                String::new()
            } else {
                format!(" ({sqlstate})")
            },
            end - start
        );
        let row = StatementRow {
            phase: phase.name.clone(),
            step: step.name.clone(),
            attempt,
            sql: out.code.to_string(),
            start_ms: crate::pg::round3(start),
            end_ms: crate::pg::round3(end),
            duration_ms: crate::pg::round3(end - start),
            outcome: outcome.to_string(),
            sqlstate: sqlstate.to_string(),
            rewrote: false,
            seq_scans: 0,
            wal_bytes: 0,
            file: out
                .at
                .map(|(f, _)| f.display().to_string())
                .unwrap_or_default(),
            line: out.at.map(|(_, l)| l as u64).filter(|l| *l > 0),
        };
        (row, result)
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
