//! Phases in order, steps in order: each phase switches the live apps, each
//! step runs its SQL, file or backfill, marks its span as latency segment
//! boundaries, reads its footprint before and after (steps.rs), and ends
//! in an outcome the report names; a failed step ends the migration unless
//! it expected the failure.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::failure::{expected, Failure, Outcome};
use super::{steps, Executor, Outgoing, StepSpan};
use crate::migrations::{Execution, MigrationFile};
use crate::record::{PhaseSpan, SegmentInfo};
use crate::scenario::{PhasePlan, StepAction, StepPlan};

impl Executor {
    pub(super) async fn run_phases(&mut self) {
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
        self.enter_session(phase, step);
        let [(lock_timeout_ms, lock_timeout_from), (statement_timeout_ms, statement_timeout_from)] =
            self.starting_timeouts(step);
        let mut span = StepSpan {
            phase: phase.name.clone(),
            step: step.name.clone(),
            start_ms,
            end_ms: start_ms,
            transaction: step.transaction,
            lock_timeout_ms,
            statement_timeout_ms,
            lock_timeout_from,
            statement_timeout_from,
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
                // Where each is written, when the scenario's text gave it.
                let written = |i: usize| step.sql_at.get(i).filter(|w| w.sql == stmts[i]);
                let out: Vec<Outgoing> = (0..stmts.len())
                    .map(|i| Outgoing {
                        written: written(i),
                        ..Outgoing::inline(&stmts[i])
                    })
                    .collect();
                self.run_with_retries(phase, step, &out, step.transaction, &mut span, &progress)
                    .await
            }
            StepAction::File(file) => self.run_file(phase, step, file, &mut span, &progress).await,
            StepAction::Backfill(b) => self.run_backfill(phase, step, b, &mut span).await,
        };
        self.ctx.status.in_step.store(false, Ordering::Relaxed);
        self.leave_session(phase, step);
        span.end_ms = self.mark();
        let result = expected(step, result);
        span.outcome = match &result {
            Ok(Outcome::Succeeded) => "ok".into(),
            Ok(Outcome::FailedAsExpected(_)) => "expected_error".into(),
            // As its failing statement's in statements.csv.
            Err(f) => f.statement_outcome().0.into(),
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
        self.run
            .relations
            .kinds(&before.index_tables, &before.matviews);
        self.run
            .relations
            .kinds(&after.index_tables, &after.matviews);
        self.boundaries
            .push(steps::StepBoundaries::of(&before, &after));
        self.end_file_session(step).await;
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
                "phase `{}` step `{}`: {}lock timeout after {} attempt(s): {m} (55P03)",
                phase.name,
                step.name,
                self.failed_at(),
                step.retries + 1
            )),
            Err(Failure::Sql {
                sqlstate,
                message,
                at,
                ..
            }) => Err(format!(
                "phase `{}` step `{}`: {}{message} ({sqlstate})",
                phase.name,
                step.name,
                at.map_or_else(|| self.failed_at(), |at| format!("{at}: "))
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
                    at: Some(st),
                    written: None,
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
    pub(super) async fn sleep(&self, d: Duration) -> bool {
        tokio::select! {
            _ = self.ctx.abort.cancelled() => false,
            _ = tokio::time::sleep(d) => true,
        }
    }
}
