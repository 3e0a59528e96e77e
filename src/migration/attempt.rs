//! One attempt at a step's statements — in one transaction (the locks it
//! acquires, statement by statement, until COMMIT or ROLLBACK) or each
//! statement on its own — with the step's lock_timeout and
//! statement_timeout set around it, and the retries after a lock timeout,
//! with a jittered backoff.

use std::time::Duration;

use rand::Rng;

use super::failure::Failure;
use super::probe::Probe;
use super::{is_catalog, Executor, LockSeen, Outgoing, StepSpan, TxnLocks};
use crate::migrations::{called_procedure, may_end_transaction, same_in_own_transaction};
use crate::scenario::{PhasePlan, StepAction, StepPlan};

/// How long ROLLBACK / RESET may take after an abort (see `simple_after_abort`).
const AFTER_ABORT_WAIT: Duration = Duration::from_secs(2);

impl Executor {
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
        // The step's attempts: its first, and one more per retry, over all
        // its segments (a file's) and batches (a backfill's), each of which
        // comes through here.
        span.attempts = span.attempts.max(1);
        loop {
            attempt += 1;
            if attempt > 1 {
                span.attempts += 1;
            }
            self.ctx.current.set(if attempt > 1 {
                format!("{progress} (attempt {attempt})")
            } else {
                progress.to_string()
            });
            let r = if in_transaction {
                // A file's: at session level, read back after COMMIT
                // (session.rs).
                let local = file_name(step).is_none();
                let setup = format!("BEGIN; {}", self.session_settings(step, local));
                match self
                    .attempt_in_transaction(phase, step, stmts, attempt, &setup)
                    .await
                {
                    Ok(_) => match file_name(step) {
                        Some(file) => self.read_file_session(step, file, stmts).await,
                        None => Ok(()),
                    },
                    Err(f) => Err(f),
                }
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

    /// Run `stmts` in one transaction that `setup` begins; the last probe
    /// taken in it when it committed.
    async fn attempt_in_transaction(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        attempt: u32,
        setup: &str,
    ) -> Result<Result<Probe, String>, Failure> {
        let mut before = self.setup(setup, true).await?;
        let mut txn = TxnLocks {
            phase: phase.name.clone(),
            step: step.name.clone(),
            acquired: Vec::new(),
            gone: Vec::new(),
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
                    // Let go before COMMIT (a savepoint rolled back): gone
                    // after this statement. Taken again later: a hold of
                    // its own, from the statement whose probe lists it again.
                    let open: Vec<usize> = (0..txn.acquired.len())
                        .filter(|a| !txn.gone.iter().any(|(g, _)| g == a))
                        .collect();
                    for a in &open {
                        if !p.locks.iter().any(|k| txn.acquired[*a].0.same(k)) {
                            txn.gone.push((*a, idx));
                        }
                    }
                    for k in &p.locks {
                        let held = open.iter().any(|a| txn.acquired[*a].0.same(k));
                        if !held && !is_catalog_lock(k) {
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
        result.map(|()| before)
    }

    async fn attempt_autocommit(
        &mut self,
        phase: &PhasePlan,
        step: &StepPlan,
        stmts: &[Outgoing<'_>],
        attempt: u32,
    ) -> Result<(), Failure> {
        let mut before = self
            .setup(&self.session_settings(step, false), false)
            .await?;
        let mut result = Ok(());
        for sql in stmts {
            if same_in_own_transaction(sql.code) || self.call_cannot_commit(sql.code).await {
                // The same run as in autocommit, but the probe lists the
                // statement's locks before COMMIT releases them: a poll can
                // miss a statement shorter than its interval. No settings:
                // the session's (the step's, the file's own SET) apply.
                match self
                    .attempt_in_transaction(
                        phase,
                        step,
                        std::slice::from_ref(sql),
                        attempt,
                        "BEGIN",
                    )
                    .await
                {
                    Ok(probe) => before = probe,
                    Err(f) => {
                        result = Err(f);
                        break;
                    }
                }
                continue;
            }
            let sent = self.send(phase, step, *sql, attempt, false, false).await;
            self.record(&sent, &before, false);
            if let Err(f) = sent.outcome {
                result = Err(f);
                break;
            }
            before = sent.probe;
        }
        // What the file's statements set before one failed holds on too
        // (a step that expected the failure goes on under it): the
        // statements before it are done.
        let reset = match file_name(step) {
            Some(file) if !matches!(result, Err(Failure::Aborted)) => {
                self.read_file_session(step, file, stmts).await
            }
            _ => {
                self.clean_up("RESET lock_timeout; RESET statement_timeout", &result)
                    .await
            }
        };
        result.and(reset)
    }

    /// A `CALL` whose procedure cannot end a transaction runs the same in
    /// a transaction of its own (`same_in_own_transaction`): every
    /// procedure of that name (any overload; in its schema if the call
    /// names one) is PL/pgSQL or SQL and says no COMMIT, ROLLBACK or CALL.
    /// Read from the catalog just before the statement; any doubt (none
    /// found, the read fails) keeps it as sent.
    async fn call_cannot_commit(&mut self, code: &str) -> bool {
        let Some((schema, name)) = called_procedure(code) else {
            return false;
        };
        let rows = self
            .client
            .query(
                "SELECT l.lanname IN ('plpgsql', 'sql'), pg_get_functiondef(p.oid) \
                 FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang \
                 WHERE p.prokind = 'p' AND p.proname = $1 \
                   AND ($2::text IS NULL OR p.pronamespace = \
                        (SELECT oid FROM pg_namespace WHERE nspname = $2))",
                &[&name, &schema],
            )
            .await
            .unwrap_or_default();
        !rows.is_empty()
            && rows
                .iter()
                .all(|r| r.get::<_, bool>(0) && !may_end_transaction(r.get(1)))
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

/// A lock on a catalog relation (oids below 16384, or a system schema): the
/// probe's own, not the migration's.
fn is_catalog_lock(l: &LockSeen) -> bool {
    is_catalog(l.oid, &l.name)
}

/// The name of the file `step` runs, if it runs one.
fn file_name(step: &StepPlan) -> Option<&str> {
    match &step.action {
        StepAction::File(f) => Some(&f.name),
        _ => None,
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
