//! Analysis of one run directory: per-step facts (locks, holds, the app waits
//! each step caused, latency while it ran), per-phase latency and errors by
//! app version, the budget verdict and findings. Input is only a
//! [`RunRecord`], so `pgrehearse report RUN_DIR` can redo all of it.

pub mod budget;
pub mod findings;
pub mod latency;
pub mod patterns;
mod steps;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use budget::{parse_budget_override, BudgetResult, BUDGET_KEYS};
pub use findings::{fmt_bytes, Finding, FindingKind, SafePattern, Severity, Thresholds};
pub use latency::LatencyFacts;
pub(crate) use steps::{attribute_waits, step_facts, step_keys};
pub use steps::{created_by_any_step, normalize};

use crate::record::{Blocks, LatencyRow, LockRow, RunRecord, StatementRow, WaitCause, WaitRow};
use crate::scenario::Budget;

/// Everything the reports show, computed from a run directory alone.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Analysis {
    pub run: RunHeader,
    /// From the first statement start to the last statement end; None when no
    /// statement ran.
    pub migration: Option<Span>,
    pub steps: Vec<StepFacts>,
    /// App traffic before the first statement, while the migration ran
    /// (first start to last end), and after it.
    pub before: LatencyFacts,
    pub during: LatencyFacts,
    pub after: LatencyFacts,
    pub phases: Vec<PhaseFacts>,
    /// Requests and errors per app version over the whole run.
    pub apps: Vec<AppFacts>,
    /// The budget that was checked (scenario merged with overrides).
    pub budget: Budget,
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
}

/// run.json, reduced to what a reader of the report needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunHeader {
    pub scenario: String,
    pub description: Option<String>,
    pub pair: Option<String>,
    pub variant: Option<String>,
    pub started_at: String,
    pub tool_version: String,
    pub backend: String,
    pub postgres_version: String,
    pub rows: Vec<(String, u64)>,
    pub seed: u64,
    pub clients: u32,
    pub rate: Option<f64>,
    pub window_ms: f64,
    pub lock_precision_ms: f64,
    pub failure: Option<String>,
    pub end_ms: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Span {
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
}

/// What one migration step did and what it cost the app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepFacts {
    pub phase: String,
    pub step: String,
    /// Statements executed, counting each statement's final try only.
    pub statements: usize,
    pub attempts: u32,
    /// The distinct statement texts, in order (at most the first 10).
    pub sql: Vec<String>,
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
    /// `ok`, or the first non-ok outcome of the last attempt.
    pub outcome: String,
    pub sqlstate: String,
    /// The strongest relation lock the step held, with its longest hold.
    pub strongest_lock: Option<LockFact>,
    /// The longest hold of a lock that blocks app reads or writes.
    pub longest_blocking_lock: Option<LockFact>,
    /// Longest time the step waited to be granted a lock.
    pub lock_wait_ms: f64,
    pub rewrote: bool,
    pub seq_scans: u64,
    /// Cluster WAL written while its statements ran (app traffic included).
    pub wal_bytes: u64,
    /// App lock waits attributed to this step (cause migration or
    /// queued-behind-migration, overlapping its lock holds or statements).
    pub app_waits: usize,
    pub worst_app_wait: Option<WaitFact>,
    /// App traffic while the step ran (first statement start to last end).
    pub latency: LatencyFacts,
    /// From run.json `steps`; None when not set or not recorded.
    pub lock_timeout_ms: Option<f64>,
}

impl StepFacts {
    /// "phase / step", how budgets and findings name it.
    pub fn label(&self) -> String {
        format!("{} / {}", self.phase, self.step)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockFact {
    pub relation: String,
    pub mode: String,
    pub blocks: Blocks,
    pub requested_ms: f64,
    pub granted_ms: Option<f64>,
    pub released_ms: Option<f64>,
    pub wait_ms: f64,
    pub held_ms: f64,
}

impl LockFact {
    fn of(l: &LockRow) -> LockFact {
        LockFact {
            relation: l.relation.clone(),
            mode: l.mode.clone(),
            blocks: l.blocks,
            requested_ms: l.requested_ms,
            granted_ms: l.granted_ms,
            released_ms: l.released_ms,
            wait_ms: l.wait_ms,
            held_ms: l.held_ms,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitFact {
    pub query: String,
    pub app: String,
    pub relation: String,
    pub mode: String,
    pub start_ms: f64,
    pub wait_ms: f64,
    pub cause: WaitCause,
}

impl WaitFact {
    fn of(w: &WaitRow) -> WaitFact {
        WaitFact {
            query: w.query.clone(),
            app: w.app.clone(),
            relation: w.relation.clone(),
            mode: w.mode.clone(),
            start_ms: w.start_ms,
            wait_ms: w.wait_ms,
            cause: w.cause,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseFacts {
    pub name: String,
    pub apps: Vec<String>,
    pub latency: LatencyFacts,
    pub by_app: Vec<AppFacts>,
}

/// One app version's traffic and errors over a span.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppFacts {
    pub app: String,
    pub latency: LatencyFacts,
    /// errors.csv rows by SQLSTATE, most frequent first.
    pub errors_by_sqlstate: Vec<SqlstateCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqlstateCount {
    pub sqlstate: String,
    /// What the code means for a migration (schema incompatibility, lock
    /// timeout, ...).
    pub class: String,
    pub count: u64,
    pub queries: Vec<String>,
    pub example: String,
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
    for (k, v) in &opts.budget_overrides {
        budget.apply(k, *v)?;
    }
    let run = header(rec);
    let migration = migration_span(&rec.statements);
    let wait_steps = attribute_waits(rec);
    let steps = step_facts(rec, &wait_steps);

    let (before, during, after) = match migration {
        Some(m) => (
            latency::facts(
                rec.latency
                    .iter()
                    .filter(|r| r.window_start_ms + r.window_ms <= m.start_ms),
                0.0,
                m.start_ms,
            ),
            latency::facts(
                rec.latency
                    .iter()
                    .filter(|r| latency::overlaps(r, m.start_ms, m.end_ms)),
                m.start_ms,
                m.end_ms,
            ),
            latency::facts(
                rec.latency.iter().filter(|r| r.window_start_ms >= m.end_ms),
                m.end_ms,
                run.end_ms.max(m.end_ms),
            ),
        ),
        None => (
            latency::facts(&rec.latency, 0.0, run.end_ms),
            LatencyFacts::default(),
            LatencyFacts::default(),
        ),
    };

    let phases = rec
        .info
        .iter()
        .flat_map(|i| i.phases.iter())
        .map(|p| {
            // Phases are adjacent: a window belongs to the phase its middle
            // falls in, so no request is counted twice.
            let rows: Vec<&LatencyRow> = rec
                .latency
                .iter()
                .filter(|r| {
                    let mid = r.window_start_ms + r.window_ms / 2.0;
                    mid >= p.start_ms && mid < p.end_ms
                })
                .collect();
            PhaseFacts {
                name: p.name.clone(),
                apps: p.apps.clone(),
                latency: latency::facts(rows.iter().copied(), p.start_ms, p.end_ms),
                by_app: app_facts(&rows, rec, p.start_ms, p.end_ms),
            }
        })
        .collect();
    let all: Vec<&LatencyRow> = rec.latency.iter().collect();
    let apps = app_facts(&all, rec, f64::NEG_INFINITY, f64::INFINITY);

    let mut a = Analysis {
        run,
        migration,
        steps,
        before,
        during,
        after,
        phases,
        apps,
        budget: budget.clone(),
        budgets: Vec::new(),
        findings: Vec::new(),
    };
    a.budgets = budget::evaluate(&budget, &a, rec, &wait_steps);
    a.findings = findings::find(&a, rec, &wait_steps, &opts.thresholds);
    Ok(a)
}

fn header(rec: &RunRecord) -> RunHeader {
    let Some(i) = &rec.info else {
        let end = rec
            .latency
            .iter()
            .map(|r| r.window_start_ms + r.window_ms)
            .fold(0.0, f64::max);
        return RunHeader {
            scenario: "unknown (no run.json)".into(),
            end_ms: end,
            ..Default::default()
        };
    };
    RunHeader {
        scenario: i.scenario.clone(),
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
    }
}

fn migration_span(st: &[StatementRow]) -> Option<Span> {
    let start = st.iter().map(|s| s.start_ms).reduce(f64::min)?;
    let end = st.iter().map(|s| s.end_ms).fold(start, f64::max);
    Some(Span {
        start_ms: start,
        end_ms: end,
        duration_ms: crate::pg::round3(end - start),
    })
}

/// Per app version: latency over the selected windows, and errors.csv rows
/// within `[start, end)` grouped by SQLSTATE.
fn app_facts(rows: &[&LatencyRow], rec: &RunRecord, start: f64, end: f64) -> Vec<AppFacts> {
    let mut apps: Vec<String> = Vec::new();
    for a in rows.iter().map(|r| &r.app).chain(
        rec.errors
            .iter()
            .filter(|e| e.t_ms >= start && e.t_ms < end)
            .map(|e| &e.app),
    ) {
        if !apps.contains(a) {
            apps.push(a.clone());
        }
    }
    apps.iter()
        .map(|app| {
            let mut by: BTreeMap<String, SqlstateCount> = BTreeMap::new();
            for e in rec
                .errors
                .iter()
                .filter(|e| &e.app == app && e.t_ms >= start && e.t_ms < end)
            {
                let c = by
                    .entry(e.sqlstate.clone())
                    .or_insert_with(|| SqlstateCount {
                        sqlstate: e.sqlstate.clone(),
                        class: error_class(&e.sqlstate, &e.message).to_string(),
                        count: 0,
                        queries: Vec::new(),
                        example: e.message.clone(),
                    });
                c.count += 1;
                if !c.queries.contains(&e.query) {
                    c.queries.push(e.query.clone());
                }
            }
            let mut errors_by_sqlstate: Vec<SqlstateCount> = by.into_values().collect();
            errors_by_sqlstate
                .sort_by(|a, b| b.count.cmp(&a.count).then(a.sqlstate.cmp(&b.sqlstate)));
            let (s, e) = (
                start.max(0.0),
                if end.is_finite() {
                    end
                } else {
                    rec.info.as_ref().map(|i| i.end_ms).unwrap_or(0.0)
                },
            );
            AppFacts {
                app: app.clone(),
                latency: latency::facts(rows.iter().copied().filter(|r| &r.app == app), s, e),
                errors_by_sqlstate,
            }
        })
        .collect()
}

/// The step to blame for app errors whose first one came at `first_ms`: the
/// step running, or last started, then. For a schema incompatibility the
/// last step before it that changed the shape of a table or view (an
/// ANALYZE or an index build cannot break a query's columns).
pub(crate) fn blame_step(a: &Analysis, first_ms: f64, schema: bool) -> Option<&StepFacts> {
    let latest = |pred: &dyn Fn(&StepFacts) -> bool| {
        a.steps
            .iter()
            .filter(|s| s.start_ms <= first_ms && pred(s))
            .max_by(|x, y| x.start_ms.total_cmp(&y.start_ms))
    };
    if schema {
        if let Some(s) = latest(&|s| s.sql.iter().any(|q| changes_shape(q))) {
            return Some(s);
        }
    }
    latest(&|_| true)
}

/// Does the statement change what queries see (columns, tables, views, types)?
fn changes_shape(sql: &str) -> bool {
    let up: String = sql
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_uppercase();
    let alter_table = up.starts_with("ALTER TABLE")
        && [
            "ADD COLUMN",
            "DROP COLUMN",
            "RENAME",
            "TYPE",
            "ADD ",
            "DROP ",
        ]
        .iter()
        .any(|k| up.contains(k))
        && !up.contains("VALIDATE CONSTRAINT");
    alter_table
        || [
            "DROP TABLE",
            "DROP VIEW",
            "ALTER VIEW",
            "CREATE OR REPLACE VIEW",
            "DROP TYPE",
            "ALTER TYPE",
            "DROP FUNCTION",
            "CREATE OR REPLACE FUNCTION",
        ]
        .iter()
        .any(|k| up.starts_with(k))
}

/// What an app error means for a migration, from its SQLSTATE and message:
/// "cached plan must not change result type" (0A000) is a prepared
/// statement broken by a schema change, so a schema incompatibility.
pub fn error_class(code: &str, message: &str) -> &'static str {
    if code == "0A000" && message.contains("cached plan") {
        return "schema incompatibility";
    }
    sqlstate_class(code)
}

/// What an app error's SQLSTATE means for a migration.
pub fn sqlstate_class(code: &str) -> &'static str {
    match code {
        "42703" | "42P01" | "42883" | "42704" | "42P10" | "42804" => "schema incompatibility",
        "55P03" => "lock timeout",
        "57014" => "statement timeout",
        "40P01" => "deadlock",
        "40001" => "serialization failure",
        "23505" | "23503" | "23502" | "23514" => "constraint violation",
        "08006" | "08003" | "57P01" => "connection lost",
        _ => "other",
    }
}

#[cfg(test)]
mod tests;
