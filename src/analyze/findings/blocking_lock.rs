//! A lock that blocks app reads or writes, held past the threshold.
//!
//! - **Reads** the step's lock holds (locks.csv, with `blocks` from the
//!   conflict matrix; a lock on a relation the step creates blocks nobody)
//!   and the app waits charged to the step.
//! - **Fires when** a lock that blocks app reads or writes was held longer
//!   than the threshold (100 ms): once per relation and mode, for the longest
//!   hold, and once for holds taken and released together (a partitioned
//!   table's parent and partitions, `LOCK a, b`), on the relation the
//!   statement names; critical when it blocks reads too or is held 10× the
//!   threshold.
//! - **Advises** the safe form of the statement that took the lock (CREATE
//!   INDEX CONCURRENTLY, NOT VALID then VALIDATE, a CHECK before SET NOT
//!   NULL, expand/contract for a type change, ...); for an index on a
//!   partitioned table, the per-partition build CONCURRENTLY can't do.

use super::finding::{Finding, FindingKind, Severity};
use super::patterns;
use super::rule::{Evidence, Rule, StepEvidence};
use crate::analyze::steps::{first_granted, held_together};
use crate::locks::unmarked;
use crate::record::{Blocks, LockRow};

pub const KIND: FindingKind = FindingKind::new("blocking_lock");

pub const RULE: Rule = Rule::step(KIND, check);

fn check(st: &StepEvidence<'_>, ev: &Evidence<'_>) -> Vec<Finding> {
    let th = ev.th.blocking_lock_ms;
    let mut blocking: Vec<&LockRow> = st
        .locks
        .iter()
        .copied()
        .filter(|l| l.blocks != Blocks::None && l.held_ms.is_some_and(|h| h > th))
        .collect();
    // Longest first; of holds as long, the one that blocks more (a table's
    // ACCESS EXCLUSIVE and SHARE over one span), whatever locks.csv's order.
    blocking.sort_by(|x, y| held(y).total_cmp(&held(x)).then(y.blocks.cmp(&x.blocks)));
    let mut seen_keys: Vec<(&str, &str)> = Vec::new();
    let mut out = Vec::new();
    for (i, l) in blocking.iter().enumerate() {
        if seen_keys.contains(&(l.relation.as_str(), l.mode.as_str())) {
            continue;
        }
        // The holds that go with this one, and those that go with them (an
        // index let go after its table, the ShareLock under the table's).
        let mut group: Vec<&LockRow> = vec![l];
        let mut grew = true;
        while grew {
            grew = false;
            for o in blocking[i + 1..].iter().copied() {
                let key = (o.relation.as_str(), o.mode.as_str());
                let joins = |m: &&LockRow| {
                    held_together(m, o) || within(st, o, m) || within(st, m, o)
                };
                if !seen_keys.contains(&key)
                    && !group.iter().any(|g| std::ptr::eq(*g, o))
                    && group.iter().any(joins)
                {
                    group.push(o);
                    grew = true;
                }
            }
        }
        seen_keys.extend(group.iter().map(|o| (o.relation.as_str(), o.mode.as_str())));
        let statement = st.statement_at(l.granted_ms.unwrap_or(l.requested_ms));
        out.push(one_hold(st, ev, &group, &statement));
    }
    out
}

/// Is `inner` held within `outer`'s hold (granted no more than 2 ms before
/// it, released no more than [`RELEASE_SLACK`] after), blocking no
/// more than it does, on the same relation or — taken by the same
/// statement — on one of its indexes (locks.csv `table`; in a run directory
/// written before that column, an index named after it, as PostgreSQL
/// names them: `orders_pkey`, `orders_status_idx`)? Then it blocked nothing
/// `outer` did not already: the indexes a rewrite rebuilds under its
/// table's ACCESS EXCLUSIVE, the ShareLock taken on the table for one of
/// them. One finding, not one per lock, and an app wait is not charged to a
/// weaker lock it was not behind.
fn within(st: &StepEvidence<'_>, inner: &LockRow, outer: &LockRow) -> bool {
    let (Some(ig), Some(ir), Some(og), Some(or)) = (
        inner.granted_ms,
        inner.released_ms,
        outer.granted_ms,
        outer.released_ms,
    ) else {
        return false;
    };
    let (i, o) = (unmarked(&inner.relation), unmarked(&outer.relation));
    let its_index = if inner.table.is_empty() {
        i.starts_with(&format!("{o}_"))
    } else {
        inner.table == o
    };
    let its_own = i == o || (its_index && st.statement_at(ig) == st.statement_at(og));
    its_own && ig >= og - 2.0 && ir <= or + RELEASE_SLACK && inner.blocks <= outer.blocks
}

/// COMMIT releases a transaction's locks together, but a backend
/// descheduled while it walks them lets them go milliseconds apart (4.4 ms
/// seen between a table and its index, tests/wal.rs, on 2 busy cores).
const RELEASE_SLACK: f64 = 10.0;

/// One finding for holds taken together, placed on the relation the
/// statement names (a partitioned table's parent), else the longest hold.
fn one_hold(st: &StepEvidence<'_>, ev: &Evidence<'_>, group: &[&LockRow], statement: &str) -> Finding {
    let th = ev.th.blocking_lock_ms;
    let named = crate::sql::names_relation;
    // Of those the statement names, the one taken first: the table before
    // the index CLUSTER names, the parent before its partitions.
    let l = group
        .iter()
        .copied()
        .filter(|g| named(statement, &g.relation))
        .reduce(first_granted)
        .unwrap_or(group[0]);
    let others: Vec<&str> = group
        .iter()
        .filter(|g| g.relation != l.relation)
        .map(|g| g.relation.as_str())
        .collect();
    let relations: Vec<&str> = std::iter::once(l.relation.as_str()).chain(others.iter().copied()).collect();
    let on_rel: Vec<_> = st
        .waits
        .iter()
        .filter(|w| relations.iter().any(|r| unmarked(r) == w.relation))
        .collect();
    let worst = on_rel.iter().max_by(|x, y| x.wait_ms.total_cmp(&y.wait_ms));
    let also = match others.len() {
        0 => String::new(),
        n => format!(" (and, within the same hold, on {n} more: {})", others.join(", ")),
    };
    // The hold as the app felt it: the longest of the group (a partition
    // can be let go milliseconds after its parent), which the budget's
    // max_blocking_lock_ms also measures.
    let longest = group
        .iter()
        .copied()
        .max_by(|a, b| held(a).total_cmp(&held(b)))
        .unwrap_or(l);
    let longest_note = if held(longest) > held(l) + 0.05 {
        format!(" ({:.1} ms on {}, the longest)", held(longest), longest.relation)
    } else {
        String::new()
    };
    let mut seen = format!(
        "{} on {}{also} held {:.1} ms{longest_note}, blocking app {} (threshold {:.0} ms)",
        l.mode,
        l.relation,
        held(l),
        l.blocks,
        th
    );
    match worst {
        Some(w) => seen.push_str(&format!(
            "; {} app queries waited on {}, worst {} ({}) {:.1} ms",
            on_rel.len(),
            distinct_relations(&on_rel),
            w.query,
            w.app,
            w.wait_ms
        )),
        None => seen.push_str("; no app query happened to wait on it in this rehearsal"),
    }
    if st.facts.latency.errors > 0 {
        seen.push_str(&format!(
            "; {} app errors while the step ran",
            st.facts.latency.errors
        ));
    }
    let severity = if l.blocks == Blocks::ReadsWrites || held(longest) >= 10.0 * th {
        Severity::Critical
    } else {
        Severity::Warning
    };
    let more = match others.len() {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    let title = format!(
        "{} blocked {} on {}{more} for {:.0} ms",
        l.mode,
        l.blocks,
        l.relation,
        held(longest)
    );
    let advice = if others.is_empty() {
        patterns::for_statement(statement, &l.relation)
    } else {
        patterns::for_partitioned(statement, &l.relation, &others)
    };
    st.finding(KIND, severity, title, seen)
        .on(Some(l.relation.clone()))
        .instead(advice)
}

/// The relations of these waits, each once, in order.
fn distinct_relations(waits: &[&&crate::record::WaitRow]) -> String {
    super::rule::distinct(waits.iter().map(|w| w.relation.clone())).join(", ")
}

/// How long a lock this finding looks at was held: only granted ones are.
fn held(l: &LockRow) -> f64 {
    l.held_ms.unwrap_or(0.0)
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::testkit::{lock_on, partitioned_index, record, step_holding, wait};
    use crate::analyze::{analyze, Finding};
    use crate::record::{RunRecord, WaitCause};

    /// CREATE INDEX holds SHARE on orders for 799 ms while a write waits.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        let sql = "CREATE INDEX i ON orders (c)";
        step_holding(&mut r, "idx", sql, (1000.0, 1800.0), "ShareLock", 1001.0);
        r.waits.push(wait(1100.0, 1800.0, WaitCause::Migration));
        r
    }

    /// CONCURRENTLY holds a lock that blocks nobody for as long; ADD COLUMN
    /// holds ACCESS EXCLUSIVE for 4 ms, under the threshold.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = record();
        let (cic, add) = (
            "CREATE INDEX CONCURRENTLY i ON orders (c)",
            "ALTER TABLE orders ADD COLUMN x int",
        );
        step_holding(&mut r, "idx", cic, (1000.0, 1800.0), "ShareUpdateExclusiveLock", 1001.0);
        step_holding(&mut r, "col", add, (2000.0, 2005.0), "AccessExclusiveLock", 2001.0);
        r
    }

    fn found(r: &RunRecord) -> Vec<Finding> {
        let a = analyze(r);
        a.findings.into_iter().filter(|f| f.kind == KIND).collect()
    }

    #[test]
    fn says_how_long_who_waited_and_what_to_do_instead() {
        let f = found(&fires());
        assert_eq!(f.len(), 1, "{f:?}");
        let f = &f[0];
        assert_eq!(f.step.as_deref(), Some("idx"));
        assert_eq!(f.relation.as_deref(), Some("orders"));
        assert!(f.seen.contains("799.0 ms"), "{}", f.seen);
        let worst = "worst update_order (v1) 700.0 ms";
        assert!(f.seen.contains(worst), "{}", f.seen);
        let sql = &f.safe_pattern.sql;
        assert!(sql.contains("CONCURRENTLY"), "{sql}");
    }

    #[test]
    fn the_locks_a_rewrite_takes_under_its_tables_lock_are_one_finding() {
        // ALTER COLUMN TYPE: ACCESS EXCLUSIVE on orders for the whole
        // statement, then on each index it rebuilds and a ShareLock on
        // orders for the build; the app waits behind the table's lock.
        let mut r = record();
        let sql = "ALTER TABLE orders ALTER COLUMN c TYPE bigint";
        step_holding(&mut r, "type", sql, (1000.0, 1500.0), "AccessExclusiveLock", 1000.5);
        for (rel, mode) in [
            ("orders_pkey", "AccessExclusiveLock"),
            ("orders_c_idx", "AccessExclusiveLock"),
            ("orders", "ShareLock"),
        ] {
            r.locks.push(lock_on(rel, "type", mode, 1200.0, 1499.0));
        }
        r.waits.push(wait(1010.0, 1500.0, WaitCause::Migration));
        let f = found(&r);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!(f[0].relation.as_deref(), Some("orders"));
        assert!(f[0].title.starts_with("AccessExclusiveLock blocked reads+writes on orders and 2 more"), "{}", f[0].title);
        assert!(f[0].seen.contains("on 2 more: orders_pkey, orders_c_idx"), "{}", f[0].seen);
        assert!(f[0].seen.contains("worst update_order (v1) 490.0 ms"), "{}", f[0].seen);
        // An index of another table, locked within that hold by another
        // statement, is its own finding.
        let mut r2 = r.clone();
        r2.statements.push(crate::analyze::testkit::stmt("type", "ALTER INDEX x", 1300.0, 1310.0));
        r2.locks.push(lock_on("orders2_pkey", "type", "AccessExclusiveLock", 1300.0, 1499.0));
        assert_eq!(found(&r2).len(), 2, "{:#?}", found(&r2));
    }

    #[test]
    fn of_two_modes_held_over_one_span_the_stronger_is_named() {
        // ALTER COLUMN TYPE holds SHARE and ACCESS EXCLUSIVE on its table
        // from the same poll to the same COMMIT; locks.csv lists them in
        // either order, and the finding is the same.
        let sql = "ALTER TABLE orders ALTER COLUMN c TYPE bigint";
        for share_first in [true, false] {
            let mut r = record();
            step_holding(&mut r, "type", sql, (1000.0, 1500.0), "AccessExclusiveLock", 1000.5);
            let mut share = r.locks.last().unwrap().clone();
            share.mode = "ShareLock".into();
            share.blocks = crate::record::Blocks::Writes;
            let at = if share_first { r.locks.len() - 1 } else { r.locks.len() };
            r.locks.insert(at, share);
            r.waits.push(wait(1010.0, 1500.0, WaitCause::Migration));
            let f = found(&r);
            assert_eq!(f.len(), 1, "{f:#?}");
            assert!(f[0].title.starts_with("AccessExclusiveLock blocked reads+writes on orders"), "{}", f[0].title);
            assert_eq!(f[0].severity, crate::analyze::Severity::Critical);
        }
    }

    #[test]
    fn an_index_of_any_name_goes_with_its_tables_hold() {
        // The same rewrite; its index is named by the user, not after the
        // table, and locks.csv says whose it is. COMMIT let it go 4 ms after
        // the table, so it was held longest.
        let mut r = record();
        let sql = "ALTER TABLE orders ALTER COLUMN c TYPE bigint";
        step_holding(&mut r, "type", sql, (1000.0, 1500.0), "AccessExclusiveLock", 1000.5);
        let mut idx = lock_on("by_customer", "type", "AccessExclusiveLock", 1000.5, 1504.5);
        idx.table = "orders".into();
        r.locks.push(idx.clone());
        r.waits.push(wait(1010.0, 1500.0, WaitCause::Migration));
        let f = found(&r);
        assert_eq!(f.len(), 1, "{f:#?}");
        assert!(f[0].seen.contains("on 1 more: by_customer"), "{}", f[0].seen);
        // Another table's index, even named like this one's, is not.
        let mut r2 = r.clone();
        r2.locks.pop();
        idx.relation = "orders_archive_idx".into();
        idx.table = "orders_archive".into();
        r2.locks.push(idx);
        assert_eq!(found(&r2).len(), 2, "{:#?}", found(&r2));
    }

    #[test]
    fn a_lock_on_the_relation_the_step_creates_is_not_one() {
        // CREATE INDEX holds ACCESS EXCLUSIVE on the index it builds;
        // nobody else can see that index before commit.
        let mut r = fires();
        r.locks.push(lock_on("public.i", "idx", "AccessExclusiveLock", 1001.0, 1800.0));
        let f = found(&r);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].relation.as_deref(), Some("orders"));
    }

    #[test]
    fn a_partitioned_tables_holds_are_one_finding_with_the_per_partition_build() {
        // CREATE INDEX on a partitioned table: SHARE on the parent and on
        // both partitions, taken and released together.
        let mut r = record();
        partitioned_index(&mut r);
        // A hold at another time is its own finding.
        r.locks.push(lock_on("orders", "idx", "ShareLock", 1001.0, 1200.0));
        let f = found(&r);
        assert_eq!(f.len(), 2, "{f:#?}");
        let part = &f[0];
        assert_eq!(part.relation.as_deref(), Some("m"), "the statement's table");
        assert!(part.title.contains("on m and 2 more for 299 ms"), "{}", part.title);
        assert!(part.seen.contains("on 2 more: m_2025, m_2024"), "{}", part.seen);
        let sql = &part.safe_pattern.sql;
        for line in [
            "CREATE INDEX m_sensor ON ONLY m (sensor_id);",
            "CREATE INDEX CONCURRENTLY m_2025_m_sensor ON m_2025 (sensor_id);",
            "ALTER INDEX m_sensor ATTACH PARTITION m_2024_m_sensor;",
        ] {
            assert!(sql.contains(line), "{line}: {sql}");
        }
        assert_eq!(f[1].relation.as_deref(), Some("orders"));
        assert!(f[1].safe_pattern.sql.contains("CREATE INDEX CONCURRENTLY m_sensor ON m"));

        // A partition let go 4 ms after its parent: the finding's figure
        // is the longest hold, as the budget's is, and says where.
        let mut r = record();
        partitioned_index(&mut r);
        let late = r.locks.iter_mut().find(|l| l.relation == "m_2024").unwrap();
        late.released_ms = Some(1304.0);
        late.held_ms = Some(303.0);
        let f = found(&r);
        assert!(f[0].title.contains("on m and 2 more for 303 ms"), "{}", f[0].title);
        assert!(
            f[0].seen.contains("held 299.0 ms (303.0 ms on m_2024, the longest)"),
            "{}",
            f[0].seen
        );
    }

    #[test]
    fn a_relation_known_only_by_oid_blocks_nobody() {
        // CREATE INDEX CONCURRENTLY: the index being built shows up in
        // pg_locks under an OID the observer cannot name.
        let mut r = quiet();
        r.locks.push(lock_on("18171", "idx", "AccessExclusiveLock", 1000.0, 1800.0));
        assert!(found(&r).is_empty());
    }
}
