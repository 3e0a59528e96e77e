//! App queries queued behind the migration's pending lock request: the lock
//! queue that forms behind an ACCESS EXCLUSIVE (or any conflicting) request
//! that cannot be granted yet.
//!
//! - **Reads** waits.csv rows charged to the step with cause `queued-behind-
//!   migration`, and the step's lock requests and grants.
//! - **Fires when** app queries waited in the lock queue behind the step's
//!   pending request, once per relation; critical when the part of a wait
//!   spent behind the pending request passed the blocking-lock threshold,
//!   unless the step's own lock_timeout bounded it (the safe form working).
//! - **Advises** a short lock_timeout on the step with retries and backoff
//!   (a shorter one when the step had one: it is the queue's length),
//!   so a request that cannot be granted quickly gives up instead of queueing
//!   every app query behind it.

use super::finding::{Finding, FindingKind, Severity};
use super::patterns;
use super::rule::{distinct, Evidence, Rule, StepEvidence};
use crate::locks::unmarked;
use crate::record::{LockRow, WaitRow};

pub const KIND: FindingKind = FindingKind::new("lock_queue");

pub const RULE: Rule = Rule::step(KIND, check);

/// The part of a wait spent behind the *pending* request on `rel`: from
/// the wait's start until the step's lock was granted. The rest is waiting
/// on the held lock (the blocking-lock finding).
fn pending_part(locks: &[&LockRow], rel: &str, w: &WaitRow) -> f64 {
    let granted = locks
        .iter()
        .filter(|l| unmarked(&l.relation) == rel && l.requested_ms <= w.start_ms)
        .filter_map(|l| l.granted_ms)
        .filter(|g| *g >= w.start_ms)
        .fold(f64::INFINITY, f64::min);
    let end = if granted.is_finite() {
        granted.min(w.end_ms)
    } else {
        w.end_ms
    };
    (end - w.start_ms).clamp(0.0, w.wait_ms)
}

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    let queued = st.queued();
    let mut out = Vec::new();
    for rel in distinct(queued.iter().map(|w| w.relation.clone())) {
        let q: Vec<&WaitRow> = queued.iter().copied().filter(|w| w.relation == rel).collect();
        let worst = q
            .iter()
            .map(|w| pending_part(&st.locks, &rel, w))
            .fold(0.0, f64::max);
        let worst_total = q.iter().map(|w| w.wait_ms).fold(0.0, f64::max);
        let pending = st
            .locks
            .iter()
            .filter(|l| unmarked(&l.relation) == rel)
            .max_by(|x, y| x.wait_ms.total_cmp(&y.wait_ms));
        let mut seen = format!(
            "{} app queries ({}) queued for up to {:.1} ms behind the step's pending lock request on {rel}",
            q.len(),
            distinct(q.iter().map(|w| format!("{} {}", w.query, w.app))).join(", "),
            worst
        );
        if worst_total > worst + 0.05 {
            seen.push_str(&format!(
                " ({:.1} ms in all, the rest behind the granted lock)",
                worst_total
            ));
        }
        if let Some(p) = pending {
            seen.push_str(&format!(
                "; the step asked for {} and waited {:.1} ms for it while the queue grew",
                p.mode, p.wait_ms
            ));
        }
        // A queue a short lock_timeout of the step's (no longer than the
        // threshold) cut off, give or take the timer's overshoot, is the
        // safe form working: no critical.
        let bounded = st
            .facts
            .lock_timeout_ms
            .is_some_and(|lt| lt <= ev.th.blocking_lock_ms && worst <= lt * 1.1 + 5.0);
        let severity = if worst > ev.th.blocking_lock_ms && !bounded {
            Severity::Critical
        } else {
            Severity::Warning
        };
        // The statement whose request the queue formed behind.
        let sql = pending.map_or_else(|| st.first_sql().to_string(), |p| st.statement_at(p.requested_ms));
        let title = format!("Lock queue on {rel} behind a pending migration lock");
        out.push(
            st.finding(KIND, severity, title, seen)
                .on(Some(rel.clone()))
                .instead(match st.facts.lock_timeout_ms {
                    Some(ms) => patterns::shorter_lock_timeout(&sql, ms),
                    None => patterns::lock_timeout(&sql),
                }),
        );
    }
    out
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::testkit::{record, step_holding, step_info, wait};
    use crate::analyze::{analyze, Finding, Severity};
    use crate::record::{RunRecord, WaitCause};

    /// ADD COLUMN waits 300 ms for ACCESS EXCLUSIVE; two writes queue
    /// behind its pending request.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        let sql = "ALTER TABLE orders ADD COLUMN x int";
        step_holding(&mut r, "col", sql, (1000.0, 1304.0), "AccessExclusiveLock", 1300.0);
        for start in [1010.0, 1050.0] {
            r.waits
                .push(wait(start, 1304.0, WaitCause::QueuedBehindMigration));
        }
        r.info.as_mut().unwrap().steps = vec![step_info("col", Some(2000.0))];
        r
    }

    /// A write waits on the granted lock (no queue), and an app-vs-app wait
    /// is nobody's queue.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = record();
        let sql = "ALTER TABLE orders ADD COLUMN x int";
        step_holding(&mut r, "col", sql, (1000.0, 1004.0), "AccessExclusiveLock", 1000.5);
        r.waits.push(wait(1001.0, 1004.0, WaitCause::Migration));
        r.waits.push(wait(3000.0, 3050.0, WaitCause::App));
        r
    }

    fn found(r: &RunRecord) -> Finding {
        let a = analyze(r);
        a.findings.into_iter().find(|f| f.kind == KIND).expect("queue")
    }

    #[test]
    fn counts_the_queue_and_the_pending_wait() {
        let f = found(&fires());
        assert_eq!(f.step.as_deref(), Some("col"));
        for part in ["2 app queries", "294.0 ms", "waited 300.0 ms"] {
            assert!(f.seen.contains(part), "{}", f.seen);
        }
        // The step had lock_timeout = 2s: that was the queue's bound, so
        // the advice is a shorter one, not "set one".
        let sql = &f.safe_pattern.sql;
        assert!(sql.contains("SET lock_timeout = '500ms'"), "{sql}");
        let advice = &f.safe_pattern.advice;
        assert!(advice.contains("lock_timeout of 2000 ms"), "{advice}");
        let mut none = fires();
        none.info.as_mut().unwrap().steps = vec![step_info("col", None)];
        let f = found(&none);
        assert!(f.safe_pattern.advice.starts_with("Set a short lock_timeout"), "{f:?}");
    }

    /// A queue of 110 ms under a 100 ms lock_timeout is the timeout cutting
    /// it off (the safe form working, give or take the timer): a warning
    /// (QA: critical at 100.27 ms). Without one, or under a long one that
    /// did not cut it off, critical.
    #[test]
    fn a_queue_a_short_lock_timeout_cut_off_is_no_critical() {
        let mut r = fires();
        for w in &mut r.waits {
            (w.start_ms, w.wait_ms) = (1190.0, 114.0);
        }
        for (timeout, severity) in [
            (None, Severity::Critical),
            (Some(2000.0), Severity::Critical),
            (Some(100.0), Severity::Warning),
        ] {
            r.info.as_mut().unwrap().steps = vec![step_info("col", timeout)];
            assert_eq!(found(&r).severity, severity, "{timeout:?}");
        }
    }

    #[test]
    fn queue_time_excludes_the_hold() {
        // The request pends 5 ms; the queued write then waits 600 ms on the
        // hold.
        let mut r = record();
        let sql = "CREATE INDEX i ON orders (c)";
        step_holding(&mut r, "idx", sql, (1000.0, 1605.0), "ShareLock", 1005.0);
        r.waits
            .push(wait(1001.0, 1605.0, WaitCause::QueuedBehindMigration));
        let f = found(&r);
        assert_eq!(f.severity, Severity::Warning);
        for part in [
            "up to 4.0 ms behind the step's pending lock request",
            "(604.0 ms in all, the rest behind the granted lock)",
        ] {
            assert!(f.seen.contains(part), "{}", f.seen);
        }
    }
}
