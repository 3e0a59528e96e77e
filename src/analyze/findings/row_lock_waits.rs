//! App writes that waited for rows the migration changed: a long UPDATE or
//! DELETE (or SELECT ... FOR UPDATE) keeps every row it touched locked until
//! its transaction ends, and an app write to one of them waits all that
//! time — with no lock of the table's in the way, so no blocking-lock
//! finding says so.
//!
//! - **Reads** waits.csv rows charged to the step with cause `migration`
//!   and lock type `transactionid` or `tuple` (a row), on the table
//!   waits.csv names.
//! - **Fires when** such a wait passed the blocking-lock threshold (100 ms),
//!   once per table; critical at 10× the threshold.
//! - **Advises** changing the rows in short batches, one transaction each
//!   (a backfill step) — smaller ones, with a pause, when the step already
//!   ran in batches.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::patterns;
use super::rule::{distinct, Evidence, Rule, StepEvidence};
use crate::record::{WaitCause, WaitRow};

pub const KIND: FindingKind = FindingKind::new("row_lock_waits");

pub const RULE: Rule = Rule::step(KIND, check);

fn on_a_row(w: &WaitRow) -> bool {
    w.cause == WaitCause::Migration && matches!(w.locktype.as_str(), "transactionid" | "tuple")
}

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    let th = ev.th.blocking_lock_ms;
    let rows: Vec<&WaitRow> = st.waits.iter().copied().filter(|w| on_a_row(w)).collect();
    let mut out = Vec::new();
    for table in distinct(rows.iter().map(|w| w.relation.clone())) {
        let on: Vec<&WaitRow> = rows.iter().copied().filter(|w| w.relation == table).collect();
        let Some(worst) = on.iter().max_by(|a, b| a.wait_ms.total_cmp(&b.wait_ms)) else {
            continue;
        };
        if worst.wait_ms <= th {
            continue;
        }
        let severity = if worst.wait_ms >= 10.0 * th {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let sql = st.statement_at(worst.start_ms);
        let seen = format!(
            "{} app queries ({}) waited for rows of {table} the step's transaction had changed or locked, worst {} ({}) {:.1} ms, until it ended (threshold {th:.0} ms)",
            on.len(),
            distinct(on.iter().map(|w| format!("{} {}", w.query, w.app))).join(", "),
            worst.query,
            worst.app,
            worst.wait_ms
        );
        // Writes wait for changed rows; so do reads that lock rows (FOR
        // SHARE / FOR UPDATE), whose wait has the same shape.
        let title = format!(
            "App queries waited {:.0} ms for rows of {table} the migration held",
            worst.wait_ms
        );
        out.push(
            st.finding(KIND, severity, title, seen)
                .on(Some(table.clone()))
                .instead(advice(st, &sql, &table)),
        );
    }
    out
}

fn advice(st: &StepEvidence<'_>, sql: &str, table: &str) -> SafePattern {
    if st.facts.statements > 1 {
        // Already in batches: each one still holds its rows too long.
        return SafePattern {
            advice: "Each batch holds the rows it changed until it commits, and app writes to them wait that long: make the batches smaller (time one on a copy: aim for tens of milliseconds) and pause between them so the app's writes get through.".into(),
            sql: format!("UPDATE {table} SET ... WHERE id > $1 AND id <= $2; -- 1k rows per batch, pause 50ms"),
        };
    }
    let up = sql.trim_start().to_ascii_uppercase();
    if up.starts_with("UPDATE") || up.starts_with("DELETE") {
        return patterns::for_statement(sql, table);
    }
    SafePattern {
        advice: "The step's transaction held these rows until it ended. Keep it short: change or lock rows in small batches, one transaction each (a backfill step), and commit before anything slow.".into(),
        sql: format!("UPDATE {table} SET ... WHERE id > $1 AND id <= $2; -- in batches"),
    }
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::{record, stmt, wait};
    use crate::analyze::Severity;
    use crate::record::{RunRecord, WaitCause};

    /// One UPDATE of every row for 2 s; app writes to its rows wait for
    /// its COMMIT.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        r.statements
            .push(stmt("backfill", "UPDATE orders SET s2 = s", 1000.0, 3000.0));
        for start in [1100.0, 1500.0] {
            let mut w = wait(start, 3000.0, WaitCause::Migration);
            w.locktype = "transactionid".into();
            w.mode = "ShareLock".into();
            r.waits.push(w);
        }
        r
    }

    /// The same UPDATE in batches: each row wait is brief.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = record();
        for k in 0..4 {
            let s = 1000.0 + k as f64 * 100.0;
            r.statements.push(stmt(
                "backfill",
                "UPDATE orders SET s2 = s WHERE id > $1 AND id <= $2",
                s,
                s + 30.0,
            ));
        }
        let mut w = wait(1010.0, 1030.0, WaitCause::Migration);
        w.locktype = "transactionid".into();
        r.waits.push(w);
        r
    }

    #[test]
    fn names_the_table_the_worst_wait_and_the_batched_form() {
        let a = analyze(&fires());
        let f: Vec<_> = a.findings.iter().filter(|f| f.kind == KIND).collect();
        assert_eq!(f.len(), 1, "{f:?}");
        let f = f[0];
        assert_eq!(f.severity, Severity::Critical);
        assert_eq!(f.relation.as_deref(), Some("orders"));
        assert!(f.seen.contains("worst update_order (v1) 1900.0 ms"), "{}", f.seen);
        assert!(f.safe_pattern.advice.contains("short batches"), "{}", f.safe_pattern.advice);
    }
}
