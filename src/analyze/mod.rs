//! Analysis of one run directory: per-step facts (locks, holds, the app waits
//! each step caused, latency while it ran), per-phase latency and errors by
//! app version, the budget verdict and findings. Input is only a
//! [`RunRecord`], so `pgrehearse report RUN_DIR` can redo all of it.
//!
//! The files, in the order data flows through them: `steps` (step facts,
//! wait attribution), `latency` (figures over a span), `apps` (per app
//! version, error classes), `facts` (the types all of them produce),
//! `budget` and `findings` (the verdicts on those facts). This file only
//! puts them together; none of them imports it.

mod apps;
pub mod budget;
mod facts;
pub mod findings;
pub mod latency;
pub mod recovery;
mod replica;
mod steps;
pub(crate) use steps::latency_span;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use apps::{error_class, sqlstate_class};
pub use budget::{parse_budget_override, BudgetOverride, BudgetResult, BUDGET_KEYS};
pub use facts::{
    AppFacts, LockFact, PhaseFacts, Recovery, RecoveryState, ReplicaLag, RunHeader, Span,
    SqlstateCount, StepFacts, WaitFact,
};
pub use findings::{fmt_bytes, Finding, FindingKind, SafePattern, Severity, Thresholds};
pub use latency::LatencyFacts;
pub use steps::{created_by_any_step, normalize};

use crate::record::RunRecord;
use crate::scenario::Budget;

/// A latency difference smaller than this is noise on a shared machine (a
/// request descheduled for a few ms), not the migration's doing: compare
/// calls no verdict on it, and a step's recovery bar is never closer than
/// this above the p99 before.
pub const NOISE_MS: f64 = 10.0;

/// Everything the reports show, computed from a run directory alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Analysis {
    pub run: RunHeader,
    /// From the first statement start to the last statement end; None when no
    /// statement ran.
    pub migration: Option<Span>,
    pub steps: Vec<StepFacts>,
    /// App traffic before the first step started, while the steps ran
    /// (first step start to last step end, as run.json records them), and
    /// after: requests by completion time.
    pub before: LatencyFacts,
    pub during: LatencyFacts,
    pub after: LatencyFacts,
    pub phases: Vec<PhaseFacts>,
    /// Requests and errors per app version over the whole run.
    pub apps: Vec<AppFacts>,
    /// The replica's peak lag over the whole run; None without a replica.
    #[serde(default)]
    pub replica_lag: Option<ReplicaLag>,
    /// The budget that was checked (scenario merged with overrides).
    pub budget: Budget,
    /// The limits `pgrehearse report --budget` set other than run.json's
    /// (empty, and absent from summary.json, when the verdict is the
    /// run's own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub overridden: Vec<BudgetOverride>,
    pub budgets: Vec<BudgetResult>,
    pub findings: Vec<Finding>,
}

impl Analysis {
    /// Every checked budget held.
    pub fn passed(&self) -> bool {
        self.budgets.iter().all(|b| b.passed)
    }

    pub fn breached(&self) -> impl Iterator<Item = &BudgetResult> {
        self.budgets.iter().filter(|b| !b.passed)
    }

    /// The app's errors over the whole run (requests due in it that
    /// failed), every app version's: a script's are not the app's (its
    /// one-off sessions are actors of the scenario), so they stay under
    /// `script` in [`Analysis::apps`] and are not counted here, as the
    /// budgets do not count them.
    pub fn app_errors(&self) -> u64 {
        self.apps
            .iter()
            .filter(|x| x.app != crate::latency::SCRIPT_APP)
            .map(|x| x.latency.errors)
            .sum()
    }
}

/// How the analysis is tuned: the budget overrides from `--budget` and the
/// finding thresholds.
#[derive(Debug, Clone, Default)]
pub struct AnalyzeOptions {
    /// (key, value) pairs from [`parse_budget_override`], applied over the
    /// budget in run.json.
    pub budget_overrides: Vec<(String, f64)>,
    pub thresholds: Thresholds,
}

/// Analyze with the budget recorded in run.json and default thresholds.
pub fn analyze(rec: &RunRecord) -> Analysis {
    analyze_with(rec, &AnalyzeOptions::default()).expect("no budget overrides, nothing to reject")
}

/// Analyze with budget overrides and thresholds. Fails only on a bad
/// override key or value.
pub fn analyze_with(rec: &RunRecord, opts: &AnalyzeOptions) -> Result<Analysis, String> {
    let normalized = normalize(rec);
    let rec = &normalized;
    let mut budget = rec
        .info
        .as_ref()
        .map(|i| i.budget.clone())
        .unwrap_or_default();
    let run_budget = budget.clone();
    for (k, v) in &opts.budget_overrides {
        budget.apply(k, *v)?;
    }
    let overridden = budget::overridden(&run_budget, &budget);
    let run = header(rec);
    let wait_steps = steps::attribute_waits(rec);
    let mut steps = steps::step_facts(rec, &wait_steps);
    let migration = migration_span(&steps);
    replica::per_step(&rec.server, &mut steps, run.end_ms);
    let replica_lag = replica::peak(rec.server.iter());
    let [before, during, after] = periods(rec, &steps);
    let next: Vec<Option<f64>> = steps
        .iter()
        .map(|s| recovery::next_step_start(&steps, s.latency.end_ms))
        .collect();
    let stopped = rec.info.as_ref().is_some_and(|i| i.failure.is_some());
    for (st, next) in steps.iter_mut().zip(next) {
        st.recovery = recovery::recovery(rec, before.p99_ms, st.latency.end_ms, next);
        if stopped && st.recovery.state == RecoveryState::NotRecovered {
            st.recovery.state = RecoveryState::RunStopped;
        }
    }
    let apps = apps::app_facts(rec, f64::NEG_INFINITY, f64::INFINITY);

    let budgets = budget::evaluate(
        &budget,
        &budget::Measured {
            steps: &steps,
            during: &during,
            migration,
            run_end_ms: latency::run_end_ms(rec),
            rec,
            wait_steps: &wait_steps,
            replica_lag,
        },
    );
    let findings = findings::find(rec, &steps, &apps, &wait_steps, &opts.thresholds);
    Ok(Analysis {
        run,
        migration,
        steps,
        before,
        during,
        after,
        phases: phase_facts(rec),
        apps,
        replica_lag,
        budget,
        overridden,
        budgets,
        findings,
    })
}

/// App traffic before the first step, while the steps ran and after
/// them; without a step, the whole run is "before". Each is a union of
/// latency segments (a step's span starts and ends at segment boundaries).
fn periods(rec: &RunRecord, steps: &[StepFacts]) -> [LatencyFacts; 3] {
    let first = steps.iter().map(|s| s.latency.start_ms).reduce(f64::min);
    let last = steps.iter().map(|s| s.latency.end_ms).reduce(f64::max);
    let (Some(first), Some(last)) = (first, last) else {
        return [
            latency::facts(rec, 0.0, f64::INFINITY, None),
            LatencyFacts::default(),
            LatencyFacts::default(),
        ];
    };
    // Before: from when the traffic began (no request was due earlier).
    let began = rec
        .info
        .as_ref()
        .and_then(|i| i.traffic_started_ms)
        .unwrap_or(0.0)
        .min(first);
    let before = latency::figures(
        &latency::merge(rec, 0.0, first, latency::of_the_app),
        began,
        first,
    );
    [
        before,
        latency::facts(rec, first, last, None),
        latency::facts(rec, last, f64::INFINITY, None),
    ]
}

/// Per phase of run.json: its latency and its apps' errors.
fn phase_facts(rec: &RunRecord) -> Vec<PhaseFacts> {
    rec.info
        .iter()
        .flat_map(|i| i.phases.iter())
        .map(|p| PhaseFacts {
            name: p.name.clone(),
            apps: p.apps.clone(),
            latency: latency::facts(rec, p.start_ms, p.end_ms, None),
            by_app: apps::app_facts(rec, p.start_ms, p.end_ms),
        })
        .collect()
}

fn header(rec: &RunRecord) -> RunHeader {
    let Some(i) = &rec.info else {
        let end = latency::run_end_ms(rec);
        return RunHeader {
            scenario: "unknown (no run.json)".into(),
            end_ms: end,
            ..Default::default()
        };
    };
    RunHeader {
        scenario: i.scenario.clone(),
        pg_version_cell: i.pg_version_cell.clone(),
        description: i.description.clone(),
        pair: i.pair.clone(),
        variant: i.variant.clone(),
        started_at: i.started_at.clone(),
        tool_version: i.tool_version.clone(),
        backend: i.backend.clone(),
        postgres_version: i.postgres_version.clone(),
        rows: i.rows.clone(),
        seed: i.seed,
        clients: i.clients,
        rate: i.rate,
        window_ms: i.window_ms,
        lock_precision_ms: i.lock_precision_ms,
        failure: i.failure.clone(),
        end_ms: i.end_ms,
        size: i.size.as_ref().map(|z| {
            let asked = [z.cpus.map(|c| format!("{c} CPUs")), z.memory.clone()];
            let asked: Vec<String> = asked.into_iter().flatten().collect();
            format!("{}: {}", asked.join(", "), z.applied)
        }),
        replica: i.replica.clone(),
        warnings: i.warnings.clone(),
        wal_unavailable: i.wal_unavailable.clone(),
    }
}

/// From the first step's start to the last one's end (its COMMIT
/// included); None when no statement ran.
fn migration_span(steps: &[StepFacts]) -> Option<Span> {
    let start = steps.iter().map(|s| s.start_ms).reduce(f64::min)?;
    let end = steps.iter().map(|s| s.end_ms).fold(start, f64::max);
    Some(Span {
        start_ms: start,
        end_ms: end,
        duration_ms: crate::pg::round3(end - start),
    })
}
