//! What the rewrite and the full-scan findings share: a statement doing
//! work proportional to the table while its step holds ACCESS EXCLUSIVE on
//! a relation others can see, so reads and writes wait for all of it.

use super::finding::{Finding, FindingKind, Severity};
use super::patterns::{self, one_line};
use super::rule::{Evidence, StepEvidence};
use crate::locks::LockMode;
use crate::record::{Blocks, LockRow, StatementRow};

/// What a statement did that grows with the table: (what, in words, for
/// `seen`; the title's lead, e.g. "Table rewrite").
pub(super) type Work = (String, &'static str);

/// One finding per step for the first statement whose `work` is Some while
/// an ACCESS EXCLUSIVE lock of the step was held (on the relation it names,
/// where it names one), counting the others that did likewise.
pub(super) fn check(
    st: &StepEvidence<'_>,
    ev: &Evidence<'_>,
    kind: FindingKind,
    work: fn(&StatementRow) -> Option<Work>,
) -> Vec<Finding> {
    // Every statement of the step that did such work under such a lock:
    // the finding is about the first, and says how many more there were.
    let mut doing: Vec<(&StatementRow, Work, &LockRow)> = st
        .statements
        .iter()
        .filter_map(|s| {
            let w = work(s)?;
            Some((*s, w, held_during(&st.locks, s)?))
        })
        .collect();
    // The one that worked on the relation it held ACCESS EXCLUSIVE on leads
    // (SET NOT NULL on t), before one that only ran while an earlier
    // statement's lock on another relation was held (CREATE INDEX on u,
    // after ALTER TABLE t in the same transaction).
    doing.sort_by_key(|(s, _, ae)| {
        !crate::sql::names_relation(&s.sql, crate::locks::unmarked(&ae.relation))
    });
    if let Some((s, (what, lead), ae)) = doing.first() {
        let (s, lead, ae) = (*s, *lead, *ae);
        let what = match doing.len() - 1 {
            0 => what.clone(),
            n => format!(
                "{what} (as did {} of this step)",
                crate::report::plural(n, "other statement", "other statements")
            ),
        };
        let held = ae.held_ms.unwrap_or(0.0);
        let severity = if held > ev.th.blocking_lock_ms {
            Severity::Critical
        } else {
            Severity::Warning
        };
        let seen = format!(
            "`{}` {what} while holding AccessExclusiveLock on {} for {:.1} ms (reads and writes blocked); the time grows with the table",
            one_line(&s.sql, 80),
            ae.relation,
            held
        );
        let title = format!("{lead} under ACCESS EXCLUSIVE on {}", ae.relation);
        // Taken by an earlier statement of the transaction: the work ran
        // under a lock it did not need itself (VALIDATE right after its
        // ADD ... NOT VALID, in one migration file).
        let earlier = ae
            .granted_ms
            .filter(|g| *g < s.start_ms - 0.5)
            .map(|g| st.statement_at(g))
            .filter(|e| *e != s.sql);
        let advice = match &earlier {
            Some(e) => patterns::split_transaction(e, &s.sql, &ae.relation),
            None => patterns::for_statement(&s.sql, &ae.relation),
        };
        return vec![st
            .finding(kind, severity, title, seen)
            .on(Some(ae.relation.clone()))
            .instead(advice)];
    }
    Vec::new()
}

/// The relations a statement names come first: of the step's ACCESS
/// EXCLUSIVE holds during it, the one on the table it works on, not the
/// first one the transaction took — and of those, a table before an index
/// (`CLUSTER orders USING orders_created_idx` names both).
///
/// Where the statement's scans are known by relation, the one it scanned
/// leads: ATTACH PARTITION holds ACCESS EXCLUSIVE on the partition and on
/// the parent's DEFAULT partition, and scans only the one whose CHECK does
/// not already prove the bounds (QA: a partition with a valid CHECK was
/// blamed for the DEFAULT partition's scan, and advised the CHECK it had).
fn named_first<'a>(locks: &[&'a LockRow], s: &StatementRow) -> Vec<&'a LockRow> {
    let scanned: Vec<&str> = s.scanned.split("; ").filter(|n| !n.is_empty()).collect();
    let (mut named, others): (Vec<&LockRow>, Vec<&LockRow>) = locks
        .iter()
        .copied()
        .partition(|l| crate::sql::names_relation(&s.sql, crate::locks::unmarked(&l.relation)));
    named.sort_by_key(|l| crate::analyze::steps::is_index(l));
    named.extend(others);
    // Stable: the order above within each.
    named.sort_by_key(|l| !scanned.contains(&crate::locks::unmarked(&l.relation)));
    named
}

/// The step's ACCESS EXCLUSIVE lock on a relation others can see, held
/// while the statement ran.
fn held_during<'a>(locks: &[&'a LockRow], s: &StatementRow) -> Option<&'a LockRow> {
    named_first(locks, s).into_iter().find(|l| {
        LockMode::parse(&l.mode) == Some(LockMode::AccessExclusive)
            && l.locktype == "relation"
            // Not a relation the step itself creates (normalized to block
            // nothing): nobody else can see it.
            && l.blocks != Blocks::None
            && l.granted_ms.is_some_and(|g| g <= s.end_ms)
            && l.released_ms.is_none_or(|r| r >= s.start_ms)
    })
}
