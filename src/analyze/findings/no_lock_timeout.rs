//! A step that takes a lock blocking the app, with no lock_timeout: behind
//! a long transaction it would wait without bound, and every app query on
//! the table would queue behind it.
//!
//! - **Reads** the step's longest blocking lock, its lock_timeout: the
//!   scenario's (run.json `steps`), else a `SET lock_timeout` its own SQL
//!   ran before asking for that lock, else a 55P03 / lock_timeout attempt
//!   proving one was set.
//! - **Fires when** the step held a lock that blocks app reads or writes and
//!   had no lock_timeout; critical when it waited past the blocking-lock
//!   threshold for the lock or app queries queued behind it.
//! - **Advises** a short lock_timeout on the step with retries and backoff.

use super::finding::{Finding, FindingKind, Severity};
use super::patterns;
use super::rule::{Evidence, Rule, StepEvidence};

pub const KIND: FindingKind = FindingKind::new("no_lock_timeout");

pub const RULE: Rule = Rule::step(KIND, check);

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    let Some(bl) = &st.facts.longest_blocking_lock else {
        return Vec::new();
    };
    // The scenario's or the step's own `SET lock_timeout`; else a
    // lock_timeout outcome proves one was set.
    let had_timeout = st.facts.lock_timeout_ms.is_some()
        || st
            .statements
            .iter()
            .any(|s| s.outcome == "lock_timeout" || s.sqlstate == "55P03");
    if had_timeout {
        return Vec::new();
    }
    let how = if st.info.is_some() {
        "with no lock_timeout"
    } else {
        "with no lock_timeout recorded"
    };
    let severity = if bl.wait_ms > ev.th.blocking_lock_ms || !st.queued().is_empty() {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let title = format!("Blocking step without lock_timeout: {}", st.facts.step);
    let seen = format!(
        "the step took {} on {} (blocks {}) {how}; it waited {:.1} ms for the lock here, but behind a long transaction it would wait without bound while every app query on {} queues behind it",
        bl.mode,
        bl.relation,
        bl.blocks,
        // That lock's own wait: the step's may be another relation's.
        bl.wait_ms,
        bl.queued_on()
    );
    vec![st
        .finding(KIND, severity, title, seen)
        .on(Some(bl.relation.clone()))
        .instead(patterns::lock_timeout(st.first_sql()))]
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::testkit::{record, step_holding, step_info, stmt};
    use crate::analyze::{analyze, Severity};
    use crate::record::RunRecord;

    /// ADD COLUMN (ACCESS EXCLUSIVE for 4 ms) with this lock_timeout in
    /// run.json.
    fn add_column(lock_timeout_ms: Option<f64>) -> RunRecord {
        let mut r = record();
        let sql = "ALTER TABLE orders ADD COLUMN x int";
        step_holding(&mut r, "col", sql, (1000.0, 1004.0), "AccessExclusiveLock", 1000.5);
        r.info.as_mut().unwrap().steps = vec![step_info("col", lock_timeout_ms)];
        r
    }

    /// ADD COLUMN takes ACCESS EXCLUSIVE with no lock_timeout.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        add_column(None)
    }

    /// The same with lock_timeout = 2s.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        add_column(Some(2000.0))
    }

    fn fired(r: &RunRecord) -> bool {
        analyze(r).findings.iter().any(|f| f.kind == KIND)
    }

    #[test]
    fn names_the_lock_and_what_it_blocks() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert_eq!(f.severity, Severity::Warning);
        let lock = "AccessExclusiveLock on orders";
        assert!(f.seen.contains(lock), "{}", f.seen);
    }

    #[test]
    fn a_lock_timeout_attempt_proves_one_was_set() {
        // Not recorded in run.json, but a 55P03 first attempt proves it.
        let mut r = add_column(None);
        r.info.as_mut().unwrap().steps.clear();
        let mut first = r.statements[0].clone();
        (first.start_ms, first.end_ms) = (900.0, 950.0);
        (first.outcome, first.sqlstate) = ("lock_timeout".into(), "55P03".into());
        r.statements[0].attempt = 2;
        r.statements.insert(0, first);
        assert!(!fired(&r));
    }

    #[test]
    fn a_set_lock_timeout_in_the_step_itself_counts() {
        // A migration file's own `SET lock_timeout` before the ALTER.
        let with = |set: &str, at: f64| {
            let mut r = add_column(None);
            r.statements.insert(0, stmt("col", set, at, at + 0.2));
            r
        };
        assert!(!fired(&with("SET lock_timeout = '1s'", 999.0)));
        assert!(!fired(&with("SELECT set_config('lock_timeout', '500ms', true)", 999.0)));
        let a = analyze(&with("SET LOCAL lock_timeout TO 750", 999.0));
        assert_eq!(a.steps[0].lock_timeout_ms, Some(750.0));
        // Turned off, or set only after the lock was asked for: none.
        assert!(fired(&with("SET lock_timeout = 0", 999.0)));
        assert!(fired(&with("SET lock_timeout = '1s'", 1005.0)));
    }

    #[test]
    fn the_steps_own_set_wins_over_what_it_began_under() {
        // Began under 5 s (the scenario's, or carried from an earlier
        // file), then its own SQL turned it off, or shortened it, before
        // the ALTER asked for its lock: that is what the lock waited under.
        let with = |set: &str| {
            let mut r = add_column(Some(5000.0));
            r.statements.insert(0, stmt("col", set, 999.0, 999.2));
            r
        };
        assert!(fired(&with("SET lock_timeout = 0")));
        assert!(fired(&with("RESET lock_timeout")));
        let a = analyze(&with("SET lock_timeout = '100ms'"));
        assert_eq!(a.steps[0].lock_timeout_ms, Some(100.0));
        assert!(!fired(&with("SET statement_timeout = 0")));
    }

    #[test]
    fn a_lock_that_blocks_nobody_needs_none() {
        let mut r = record();
        let sql = "ALTER TABLE orders VALIDATE CONSTRAINT c";
        step_holding(&mut r, "v", sql, (1000.0, 1100.0), "ShareUpdateExclusiveLock", 1000.5);
        r.info.as_mut().unwrap().steps = vec![step_info("v", None)];
        assert!(!fired(&r));
    }
}
