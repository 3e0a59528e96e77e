//! A partitioned table's own index still invalid at the end: made `ON ONLY`
//! the parent (the first step of indexing a partitioned table without
//! holding its writes for the whole build) and not yet attached on every
//! partition. Not a failed build: it has no storage and nothing to drop.
//! But until each partition's index is attached the parent's index is not
//! valid: a partition without its index attached has no index for it (a
//! unique one is not enforced there). A partition created or attached
//! later does get one (PostgreSQL builds and attaches it then).
//!
//! - **Reads** run.json `unattached_indexes` (pg_index.indisvalid false on
//!   a partitioned index, relkind `I`) and the statement that named it.
//! - **Fires when** any is left; a warning (the rehearsal may stop midway
//!   through the pattern on purpose).
//! - **Advises** build each partition's index CONCURRENTLY and attach it.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::rule::{Evidence, Rule};

pub const KIND: FindingKind = FindingKind::new("unattached_index");

pub const RULE: Rule = Rule::run(KIND, check);

fn check(ev: &Evidence<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for name in ev.rec.info.iter().flat_map(|i| i.unattached_indexes.iter()) {
        let lname = name.to_ascii_lowercase();
        let st = ev
            .steps
            .iter()
            .find(|s| s.sql.iter().any(|q| q.to_ascii_lowercase().contains(&lname)));
        out.push(
            Finding::new(
                KIND,
                Severity::Warning,
                format!("Partitioned index {name} not attached on every partition"),
                format!(
                    "index {name} of a partitioned table is still INVALID when the run ended: it was made ON ONLY the parent and some partition's index is not attached to it yet. Until they all are, it is not valid, and a partition without its index attached has no such index (a unique one is not enforced there)"
                ),
            )
            .at(st.map(|s| s.phase.clone()), st.map(|s| s.step.clone()))
            .on(Some(name.clone()))
            .instead(SafePattern {
                advice: "Finish the pattern: build each partition's index CONCURRENTLY, then attach it to the parent's (a brief lock; the parent's index turns valid once every partition's is attached).".into(),
                sql: format!(
                    "CREATE INDEX CONCURRENTLY partition_1_idx ON partition_1 (col);\nALTER INDEX {name} ATTACH PARTITION partition_1_idx;\n-- ... for every partition"
                ),
            }),
        );
    }
    out
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::analyze;
    use crate::analyze::testkit::one_statement;
    use crate::record::RunRecord;

    /// The parent's index made ON ONLY, nothing attached yet.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = quiet();
        r.info
            .as_mut()
            .unwrap()
            .unattached_indexes
            .push("events_kind_idx".into());
        r
    }

    /// The same statement, every partition's index attached since.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let sql = "CREATE INDEX events_kind_idx ON ONLY events (kind)";
        one_statement("on only", sql, 1000.0, 1001.0)
    }

    #[test]
    fn is_a_warning_not_an_invalid_index_and_no_budget_counts_it() {
        let a = analyze(&fires());
        let f = a.findings.iter().find(|f| f.kind == KIND).expect("finding");
        assert_eq!(f.severity, super::Severity::Warning);
        assert_eq!(f.step.as_deref(), Some("on only"));
        assert!(f.safe_pattern.sql.contains("ALTER INDEX events_kind_idx ATTACH PARTITION"));
        assert!(!a
            .findings
            .iter()
            .any(|f| f.kind == super::super::invalid_index::KIND));
    }
}
