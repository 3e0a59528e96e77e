//! A full-table scan (no rewrite) while holding ACCESS EXCLUSIVE.
//!
//! - **Reads** statements.csv `seq_scans` (sequential scans of the scenario's
//!   tables by the statement) and the step's ACCESS EXCLUSIVE holds.
//! - **Fires when** a statement that did not rewrite made a sequential scan
//!   while the step held ACCESS EXCLUSIVE on a relation others can see (SET
//!   NOT NULL, a validated CHECK or foreign key added in one go); critical
//!   past the blocking-lock threshold.
//! - **Advises** prove the condition under a weaker lock first: a CHECK or
//!   foreign key added NOT VALID and validated in its own step (SHARE UPDATE
//!   EXCLUSIVE), then SET NOT NULL skips its scan. When an earlier statement
//!   of the transaction took the ACCESS EXCLUSIVE (a VALIDATE right after
//!   its NOT VALID add, in one migration file), splitting the transaction.

use super::access_exclusive::{self, Work};
use super::finding::{Finding, FindingKind};
use super::rule::{Evidence, Rule, StepEvidence};
use crate::record::StatementRow;

pub const KIND: FindingKind = FindingKind::new("scan_under_access_exclusive");

pub const RULE: Rule = Rule::step(KIND, check);

fn scanned(s: &StatementRow) -> Option<Work> {
    let scans = s.seq_scans.unwrap_or(0);
    (scans > 0 && s.rewrote != Some(true)).then(|| {
        let of = match s.scanned.as_str() {
            "" => String::new(),
            names => format!(" of {names}"),
        };
        (
            format!(
                "made {scans} sequential scan(s){of} in {:.1} ms",
                s.duration_ms
            ),
            "Full scan",
        )
    })
}

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    access_exclusive::check(st, ev, KIND, scanned)
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::{lock_on, record, step_holding, stmt};
    use crate::record::RunRecord;

    /// SET NOT NULL scans orders under ACCESS EXCLUSIVE.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        let sql = "ALTER TABLE orders ALTER COLUMN status SET NOT NULL";
        step_holding(&mut r, "nn", sql, (2000.0, 2300.0), "AccessExclusiveLock", 2000.5)
            .seq_scans = Some(1);
        r
    }

    /// VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE: the safe way.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = record();
        let sql = "ALTER TABLE orders VALIDATE CONSTRAINT c";
        step_holding(&mut r, "validate", sql, (1000.0, 1500.0), "ShareUpdateExclusiveLock", 1000.5)
            .seq_scans = Some(1);
        r
    }

    /// ATTACH PARTITION holds ACCESS EXCLUSIVE on the partition and on the
    /// DEFAULT partition, and scanned only the DEFAULT one (the partition's
    /// own CHECK proved its bounds): the finding is about that one.
    #[test]
    fn names_the_relation_it_scanned_among_those_held() {
        let mut r = record();
        let sql = "ALTER TABLE events ATTACH PARTITION events_q1 FOR VALUES FROM (1) TO (2)";
        let st = step_holding(&mut r, "attach", sql, (2000.0, 2100.0), "AccessExclusiveLock", 2000.5);
        st.seq_scans = Some(1);
        st.scanned = "events_default".into();
        r.locks.last_mut().expect("pushed").relation = "events_q1".into();
        r.locks
            .push(lock_on("events_default", "attach", "AccessExclusiveLock", 2000.6, 2100.0));
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("scan");
        assert_eq!(f.relation.as_deref(), Some("events_default"), "{f:?}");
        assert!(f.seen.contains("1 sequential scan(s) of events_default"), "{}", f.seen);
    }

    #[test]
    fn advises_a_check_constraint_before_set_not_null() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("scan");
        assert_eq!(f.step.as_deref(), Some("nn"));
        let sql = &f.safe_pattern.sql;
        assert!(sql.contains("CHECK (status IS NOT NULL) NOT VALID"), "{sql}");
    }

    #[test]
    fn a_validate_in_the_transaction_of_its_not_valid_add_is_told_to_split() {
        // One migration file: ADD CONSTRAINT ... NOT VALID takes ACCESS
        // EXCLUSIVE at 1000; VALIDATE then scans under it until COMMIT.
        let mut r = record();
        let add = "ALTER TABLE orders ADD CONSTRAINT c CHECK (total > 0) NOT VALID";
        step_holding(&mut r, "v2", add, (1000.0, 1002.0), "AccessExclusiveLock", 1000.0);
        r.locks[0].released_ms = Some(1300.0);
        let validate = "ALTER TABLE orders VALIDATE CONSTRAINT c";
        let mut v = stmt("v2", validate, 1003.0, 1299.0);
        v.seq_scans = Some(1);
        r.statements.push(v);
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("scan");
        let advice = &f.safe_pattern.advice;
        assert!(advice.contains("same transaction as `ALTER TABLE orders ADD CONSTRAINT c"), "{advice}");
        assert!(advice.contains("takes only SHARE UPDATE EXCLUSIVE"), "{advice}");
        let sql = &f.safe_pattern.sql;
        let (first, second) = sql.split_once("-- the next migration").expect(sql);
        assert!(first.contains("NOT VALID;") && second.contains("VALIDATE CONSTRAINT c;"), "{sql}");
    }

    #[test]
    fn the_statement_that_scanned_the_locked_table_leads() {
        // One transaction: ALTER TABLE t takes ACCESS EXCLUSIVE at 1000;
        // CREATE INDEX then scans u under it, and SET NOT NULL scans t.
        let mut r = record();
        let add = "ALTER TABLE t ADD COLUMN y int";
        step_holding(&mut r, "multi", add, (1000.0, 1001.0), "AccessExclusiveLock", 1000.0);
        r.locks[0].relation = "t".into();
        r.locks[0].released_ms = Some(1500.0);
        let mut index = stmt("multi", "CREATE INDEX u_w ON u (w)", 1002.0, 1200.0);
        index.seq_scans = Some(1);
        let mut nn = stmt("multi", "ALTER TABLE t ALTER COLUMN note SET NOT NULL", 1201.0, 1400.0);
        nn.seq_scans = Some(1);
        r.statements.extend([index, nn]);
        let a = analyze(&r);
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("scan");
        assert!(f.seen.starts_with("`ALTER TABLE t ALTER COLUMN note SET NOT NULL`"), "{}", f.seen);
        assert!(f.seen.contains("as did 1 other statement"), "{}", f.seen);
    }

    #[test]
    fn access_exclusive_on_the_index_being_built_is_not_one() {
        // CREATE INDEX holds ACCESS EXCLUSIVE on the index it builds; nobody
        // can see that index, and the table scan happens under SHARE.
        let mut r = record();
        let sql = "CREATE INDEX idx_new ON orders (c)";
        step_holding(&mut r, "idx", sql, (1000.0, 1600.0), "ShareLock", 1000.5).seq_scans = Some(1);
        r.locks.push(lock_on("idx_new", "idx", "AccessExclusiveLock", 1000.0, 1600.0));
        assert!(!analyze(&r).findings.iter().any(|f| f.kind == KIND));
    }
}
