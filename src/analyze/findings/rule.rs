//! What a finding rule is, and the evidence it reads: the step facts, the
//! rows of the run directory, and for a per-step rule the rows of its step.

use super::finding::{Finding, FindingKind, Severity, Thresholds};
use crate::analyze::facts::{AppFacts, StepFacts};
use crate::record::{LockRow, RunRecord, StatementRow, StepInfo, WaitCause, WaitRow};

/// One kind of finding, as the registry lists it. The rule's file says in
/// its first lines what it reads, when it fires and what it advises.
pub struct Rule {
    pub kind: FindingKind,
    pub(crate) check: Check,
}

impl Rule {
    /// A rule that looks at one step at a time.
    pub(crate) const fn step(
        kind: FindingKind,
        check: fn(&StepEvidence<'_>, &Evidence<'_>) -> Vec<Finding>,
    ) -> Rule {
        Rule {
            kind,
            check: Check::Step(check),
        }
    }

    /// A rule that looks at the whole run.
    pub(crate) const fn run(kind: FindingKind, check: fn(&Evidence<'_>) -> Vec<Finding>) -> Rule {
        Rule {
            kind,
            check: Check::Run(check),
        }
    }
}

pub(crate) enum Check {
    /// Runs once per step, in the order the steps ran.
    Step(fn(&StepEvidence<'_>, &Evidence<'_>) -> Vec<Finding>),
    /// Runs once over the whole run, after every per-step rule.
    Run(fn(&Evidence<'_>) -> Vec<Finding>),
}

/// Everything a rule may read about the run.
pub(crate) struct Evidence<'a> {
    pub rec: &'a RunRecord,
    pub steps: &'a [StepFacts],
    /// Requests and errors per app version over the whole run.
    pub apps: &'a [AppFacts],
    /// For each wait of waits.csv, the index into `steps` of the step it is
    /// charged to.
    pub wait_steps: &'a [Option<usize>],
    pub th: &'a Thresholds,
}

/// One step's facts and its rows of the run directory.
pub(crate) struct StepEvidence<'a> {
    pub facts: &'a StepFacts,
    pub statements: Vec<&'a StatementRow>,
    pub locks: Vec<&'a LockRow>,
    /// App lock waits charged to the step.
    pub waits: Vec<&'a WaitRow>,
    /// run.json's record of the step, when there is one.
    pub info: Option<&'a StepInfo>,
}

impl<'a> StepEvidence<'a> {
    pub fn of(ev: &Evidence<'a>, idx: usize) -> StepEvidence<'a> {
        let st = &ev.steps[idx];
        let mine = |phase: &str, step: &str| phase == st.phase && step == st.step;
        StepEvidence {
            facts: st,
            statements: ev
                .rec
                .statements
                .iter()
                .filter(|s| mine(&s.phase, &s.step))
                .collect(),
            locks: ev
                .rec
                .locks
                .iter()
                .filter(|l| mine(&l.phase, &l.step))
                .collect(),
            waits: ev
                .rec
                .waits
                .iter()
                .zip(ev.wait_steps)
                .filter(|(_, s)| **s == Some(idx))
                .map(|(w, _)| w)
                .collect(),
            info: ev
                .rec
                .info
                .iter()
                .flat_map(|i| i.steps.iter())
                .find(|s| mine(&s.phase, &s.step)),
        }
    }

    /// A finding placed at this step.
    pub fn finding(
        &self,
        kind: FindingKind,
        severity: Severity,
        title: String,
        seen: String,
    ) -> Finding {
        Finding::new(kind, severity, title, seen).at(
            Some(self.facts.phase.clone()),
            Some(self.facts.step.clone()),
        )
    }

    /// The statement that was running at `at_ms`, else the step's first.
    pub fn statement_at(&self, at_ms: f64) -> String {
        self.statements
            .iter()
            .find(|s| s.start_ms <= at_ms && at_ms <= s.end_ms)
            .map(|s| s.sql.clone())
            .unwrap_or_else(|| self.first_sql().to_string())
    }

    /// The step's first statement text ("" for a step that ran none).
    pub fn first_sql(&self) -> &str {
        self.facts.sql.first().map(String::as_str).unwrap_or("")
    }

    /// App waits stuck in the lock queue behind the step's pending request.
    pub fn queued(&self) -> Vec<&'a WaitRow> {
        self.waits
            .iter()
            .copied()
            .filter(|w| w.cause == WaitCause::QueuedBehindMigration)
            .collect()
    }
}

/// The distinct items, in their first order.
pub(crate) fn distinct(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for i in items {
        if !v.contains(&i) {
            v.push(i);
        }
    }
    v
}
