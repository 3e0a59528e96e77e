//! A table rewrite (a new relfilenode) while holding ACCESS EXCLUSIVE.
//!
//! - **Reads** statements.csv `rewrote` (a table of the scenario got a new
//!   relfilenode) and the step's ACCESS EXCLUSIVE holds.
//! - **Fires when** a statement rewrote a table while the step held ACCESS
//!   EXCLUSIVE on a relation others can see; critical when that hold passed
//!   the blocking-lock threshold.
//! - **Advises** the form that does not rewrite: a column added without a
//!   volatile default and backfilled in batches, a type change by
//!   expand/contract, pg_repack instead of VACUUM FULL.

use super::access_exclusive::{self, Work};
use super::finding::{Finding, FindingKind};
use super::rule::{Evidence, Rule, StepEvidence};
use crate::record::StatementRow;

pub const KIND: FindingKind = FindingKind::new("rewrite_under_access_exclusive");

pub const RULE: Rule = Rule::step(KIND, check);

fn rewrote(s: &StatementRow) -> Option<Work> {
    // TRUNCATE gives the table a new, empty file: no rows are copied, and
    // its time does not grow with the table.
    let truncate = crate::migrations::first_word(&s.sql).as_deref() == Some("TRUNCATE");
    (s.rewrote == Some(true) && !truncate).then(|| {
        (
            format!(
                "rewrote the table (new relfilenode) in {:.1} ms",
                s.duration_ms
            ),
            "Table rewrite",
        )
    })
}

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    access_exclusive::check(st, ev, KIND, rewrote)
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::{record, step_holding};
    use crate::record::RunRecord;

    /// ALTER COLUMN ... TYPE rewrites orders under ACCESS EXCLUSIVE.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        let sql = "ALTER TABLE orders ALTER COLUMN total TYPE bigint";
        step_holding(&mut r, "type", sql, (1000.0, 1500.0), "AccessExclusiveLock", 1000.5)
            .rewrote = Some(true);
        r
    }

    /// A rewrite in a step whose ACCESS EXCLUSIVE hold does not overlap it.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = record();
        let sql = "UPDATE orders SET x = 1";
        let s = step_holding(&mut r, "other", sql, (2000.0, 2100.0), "AccessExclusiveLock", 0.0);
        s.rewrote = Some(true);
        let l = r.locks.last_mut().expect("pushed");
        (l.requested_ms, l.granted_ms, l.released_ms) = (2500.0, Some(2500.5), Some(2502.0));
        r
    }

    /// In a transaction that first locked another table, the finding names
    /// the table the rewriting statement names, and counts the others.
    #[test]
    fn names_the_rewritten_table_and_counts_the_other_rewrites() {
        use crate::analyze::testkit::{lock_on, stmt};
        let mut r = record();
        let first = "ALTER TABLE accessory ADD COLUMN x int";
        step_holding(&mut r, "many", first, (1000.0, 1001.0), "AccessExclusiveLock", 1000.5);
        r.locks.last_mut().unwrap().relation = "accessory".into();
        r.locks.last_mut().unwrap().released_ms = Some(1900.0);
        r.locks.last_mut().unwrap().held_ms = Some(899.5);
        for (i, t) in ["robot", "blob"].iter().enumerate() {
            let at = 1100.0 + 300.0 * i as f64;
            let mut s = stmt("many", &format!("ALTER TABLE {t} ALTER COLUMN c TYPE bigint"), at, at + 200.0);
            s.rewrote = Some(true);
            r.statements.push(s);
            r.locks.push(lock_on(t, "many", "AccessExclusiveLock", at + 0.5, 1900.0));
        }
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("rewrite");
        assert_eq!(f.relation.as_deref(), Some("robot"), "{f:?}");
        assert!(f.seen.contains("as did 1 other statement of this step"), "{}", f.seen);
    }

    #[test]
    fn a_truncate_is_no_rewrite() {
        let mut r = fires();
        r.statements[0].sql = "-- empty it\nTRUNCATE orders".into();
        let a = analyze(&r);
        assert!(a.findings.iter().all(|f| f.kind != KIND), "{:?}", a.findings);
    }

    #[test]
    fn names_the_step_and_the_rewrite() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("rewrite");
        assert_eq!(f.step.as_deref(), Some("type"));
        assert!(f.seen.contains("rewrote the table"), "{}", f.seen);
        let title = "Table rewrite under ACCESS EXCLUSIVE on orders";
        assert!(f.title.starts_with(title), "{}", f.title);
        let advice = &f.safe_pattern.advice;
        assert!(advice.contains("expand/contract"), "{advice}");
    }
}
