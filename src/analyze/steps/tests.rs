use super::*;
use crate::analyze::testkit::{lock, lock_on, partitioned_index, record, step_holding, stmt, wait};

/// The step facts as the analysis computes them (after normalizing).
fn facts(r: &RunRecord) -> Vec<StepFacts> {
    let r = normalize(r);
    step_facts(&r, &attribute_waits(&r))
}

#[test]
fn a_partitioned_tables_locks_are_named_by_the_parent() {
    // SHARE on two partitions and the parent, taken and released
    // together; the statement names the parent.
    let mut r = record();
    partitioned_index(&mut r);
    let f = &facts(&r)[0];
    assert_eq!(f.strongest_lock.as_ref().unwrap().relation, "m");
    assert_eq!(f.longest_blocking_lock.as_ref().unwrap().relation, "m");
}

#[test]
fn waits_go_to_the_step_they_overlap_most() {
    let mut r = record();
    r.statements.push(stmt("a", "LOCK orders", 1000.0, 1200.0));
    r.locks
        .push(lock("a", "AccessExclusiveLock", 1000.0, 1000.0, 1200.0));
    r.statements
        .push(stmt("b", "CREATE INDEX i ON orders (c)", 1200.0, 2000.0));
    r.locks.push(lock("b", "ShareLock", 1200.0, 1200.0, 2000.0));
    r.waits.push(wait(1150.0, 1900.0, WaitCause::Migration));
    r.waits.push(wait(1100.0, 1180.0, WaitCause::Migration));
    let s = facts(&r);
    assert_eq!(s[0].app_waits, 1);
    assert_eq!(s[1].app_waits, 1);
    assert_eq!(s[1].worst_app_wait.as_ref().unwrap().wait_ms, 750.0);
    assert_eq!(
        s[0].strongest_lock.as_ref().unwrap().mode,
        "AccessExclusiveLock"
    );
    assert_eq!(
        s[1].longest_blocking_lock.as_ref().unwrap().held_ms,
        Some(800.0)
    );
}

#[test]
fn a_new_relation_blocks_once_its_creation_committed() {
    // CREATE TABLE audit in one transaction, LOCK audit in the next.
    let mut r = record();
    let mut create = lock("a", "AccessExclusiveLock", 100.0, 100.0, 102.0);
    create.relation = "audit (new)".into();
    let mut lock_later = lock("a", "AccessExclusiveLock", 110.0, 110.0, 500.0);
    lock_later.relation = "audit (new)".into();
    r.locks.extend([create, lock_later]);
    let n = normalize(&r);
    assert_eq!(n.locks[0].blocks, Blocks::None);
    assert_eq!(n.locks[1].blocks, Blocks::ReadsWrites);
    assert_eq!(normalize(&n).locks, n.locks, "idempotent");
}

#[test]
fn a_lock_never_granted_is_no_hold() {
    // Waited 100 ms for ACCESS EXCLUSIVE, then lock_timeout; the ROW
    // EXCLUSIVE of an earlier statement was held.
    let mut r = record();
    r.statements.push(stmt(
        "a",
        "ALTER TABLE orders ADD COLUMN x int",
        1000.0,
        1100.0,
    ));
    r.locks
        .push(lock("a", "RowExclusiveLock", 990.0, 990.0, 1100.0));
    let mut never = lock("a", "AccessExclusiveLock", 1000.0, 1000.0, 1100.0);
    never.granted_ms = None;
    never.released_ms = None;
    never.wait_ms = 100.0;
    never.held_ms = None;
    never.source = "wait".into();
    r.locks.push(never);
    let f = &facts(&r)[0];
    assert!(
        f.longest_blocking_lock.is_none(),
        "{:?}",
        f.longest_blocking_lock
    );
    let strongest = f.strongest_lock.as_ref().unwrap();
    assert_eq!(
        strongest.mode, "RowExclusiveLock",
        "held beats never granted"
    );
    // Alone, the lock waited for is the strongest, and says so.
    r.locks.remove(0);
    let f = &facts(&r)[0];
    let strongest = f.strongest_lock.clone();
    assert_eq!(strongest.as_ref().unwrap().held_ms, None);
    assert_eq!(
        crate::report::format::lock(&strongest),
        "AccessExclusiveLock on orders waited 100.0 ms, never granted"
    );
}

#[test]
fn app_vs_app_waits_are_charged_to_no_step() {
    let mut r = record();
    let sql = "ALTER TABLE orders ADD COLUMN x int";
    step_holding(
        &mut r,
        "col",
        sql,
        (1000.0, 1004.0),
        "AccessExclusiveLock",
        1000.5,
    );
    r.waits.push(wait(1001.0, 1004.0, WaitCause::Migration));
    r.waits
        .push(wait(1002.0, 1004.0, WaitCause::QueuedBehindMigration));
    r.waits.push(wait(3000.0, 3050.0, WaitCause::App));
    assert_eq!(attribute_waits(&r), [Some(0), Some(0), None]);
    assert_eq!(facts(&r)[0].app_waits, 2);
}

/// QA: a DBA's `ANALYZE` every 50 ms in the scratch database waited a
/// second behind the safe build's lock; that session is not the app, and
/// its wait made the safe side's worst app wait 1 002 ms.
#[test]
fn another_sessions_wait_is_not_the_apps() {
    let mut r = record();
    let sql = "CREATE INDEX CONCURRENTLY orders_x ON orders (x)";
    step_holding(
        &mut r,
        "idx",
        sql,
        (1000.0, 2004.0),
        "ShareUpdateExclusiveLock",
        1000.5,
    );
    let mut other = wait(1001.0, 2003.0, WaitCause::Migration);
    other.app = crate::latency::OTHER_APP.into();
    r.waits.push(other);
    r.waits.push(wait(1002.0, 1004.0, WaitCause::Migration));
    assert_eq!(attribute_waits(&r), [None, Some(0)]);
    let st = &facts(&r)[0];
    assert_eq!(st.app_waits, 1);
    assert_eq!(st.worst_app_wait.as_ref().map(|w| w.wait_ms), Some(2.0));
}

#[test]
fn a_single_statement_retry_counts_once() {
    // transaction = false: statement 2 timed out once and succeeded on retry.
    let mut r = record();
    r.statements.push(stmt("s", "SET x", 1000.0, 1001.0));
    let mut t = stmt("s", "ALTER TABLE orders ADD COLUMN y int", 1001.0, 1101.0);
    t.outcome = "lock_timeout".into();
    t.sqlstate = "55P03".into();
    // Given up waiting: no probe behind it, so its figures are unknown.
    (t.rewrote, t.seq_scans, t.wal_bytes, t.cluster_wal_bytes) = (None, None, None, None);
    t.unknown = "rewrote: the statement failed; wal_bytes: the statement failed".into();
    r.statements.push(t);
    let mut ok = stmt("s", "ALTER TABLE orders ADD COLUMN y int", 1200.0, 1201.0);
    ok.attempt = 2;
    ok.wal_bytes = Some(3355);
    r.statements.push(ok);
    let st = &facts(&r)[0];
    assert_eq!(
        (st.statements, st.attempts, st.outcome.as_str()),
        (2, 2, "ok")
    );
    assert_eq!(st.sql, ["SET x", "ALTER TABLE orders ADD COLUMN y int"]);
    // The step's figures are the attempt's that ran (QA: "rewrite
    // unknown, WAL unknown" wherever a retry happened).
    assert_eq!((st.rewrote, st.wal_bytes), (Some(false), Some(3355)));
    assert!(st.unknown.is_empty(), "{:?}", st.unknown);
}

#[test]
fn a_backfill_lists_ten_texts_and_counts_them_all() {
    let mut r = record();
    for i in 0..12 {
        let sql = format!("UPDATE orders SET c = 0 WHERE id BETWEEN {i}000 AND {i}999");
        let t = 1000.0 + f64::from(i) * 10.0;
        r.statements.push(stmt("fill", &sql, t, t + 5.0));
    }
    let st = &facts(&r)[0];
    assert_eq!((st.sql.len(), st.sql_distinct, st.statements), (10, 12, 12));
    assert!(crate::report::format::sql_list(&st.sql, st.sql_distinct).ends_with("… (+9 more)"));
}

/// A 6 MB `INSERT ... VALUES` of reference data: summaries keep its start
/// and its length (statements.csv keeps it whole), and a table cell 200
/// characters of it.
#[test]
fn a_huge_statement_is_clipped_in_the_summary() {
    let mut r = record();
    let values: Vec<String> = (0..200_000).map(|i| format!("({i}, 'x')")).collect();
    let sql = format!("INSERT INTO ref VALUES {}", values.join(", "));
    r.statements.push(stmt("load", &sql, 1000.0, 1500.0));
    let st = &facts(&r)[0];
    assert!(st.sql[0].starts_with("INSERT INTO ref VALUES (0, 'x'), (1, 'x')"));
    assert!(st.sql[0].chars().count() < 2100, "{}", st.sql[0].len());
    assert!(
        st.sql[0].ends_with(&format!(
            "… ({} characters in all: statements.csv has it whole)",
            sql.len()
        )),
        "{}",
        &st.sql[0][1900..]
    );
    let cell = crate::report::format::sql_list(&st.sql, st.sql_distinct);
    assert_eq!(cell.chars().count(), 200, "{cell}");
    assert!(cell.ends_with("..."), "{cell}");
}

/// A migration file of comments only runs no statement: steps.csv has its
/// row, and so must the summary, between the steps around it.
#[test]
fn a_step_that_ran_no_statement_is_listed() {
    let mut r = record();
    r.statements.push(stmt("a", "SELECT 1", 1000.0, 1001.0));
    r.statements.push(stmt("c", "SELECT 2", 1100.0, 1101.0));
    r.steps.push(crate::analyze::testkit::step_row(
        "b",
        (1050.0, 1050.5),
        "ok",
    ));
    let s = facts(&r);
    let names: Vec<&str> = s.iter().map(|f| f.step.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(
        (
            s[1].statements,
            s[1].outcome.as_str(),
            s[1].start_ms,
            s[1].end_ms
        ),
        (0, "ok", 1050.0, 1050.5)
    );
}

#[test]
fn locks_on_relations_the_step_creates_block_nobody() {
    let mut r = record();
    let sql = "CREATE INDEX idx_new ON orders (c)";
    step_holding(&mut r, "idx", sql, (1000.0, 1800.0), "ShareLock", 1001.0);
    r.locks.push(lock_on(
        "public.idx_new",
        "idx",
        "AccessExclusiveLock",
        1001.0,
        1800.0,
    ));
    assert!(created_by_any_step(&r, "public.idx_new"));
    assert!(!created_by_any_step(&r, "orders"));
    let st = &facts(&r)[0];
    let blocking = st.longest_blocking_lock.as_ref().unwrap();
    assert_eq!(blocking.relation, "orders");
    // The strongest lock reported is the one others feel.
    assert_eq!(st.strongest_lock.as_ref().unwrap().relation, "orders");
}

#[test]
fn a_relation_known_only_by_oid_blocks_nobody() {
    // CREATE INDEX CONCURRENTLY: the index being built shows up in
    // pg_locks under an OID the observer cannot name.
    let mut r = record();
    let sql = "CREATE INDEX CONCURRENTLY i ON orders (c)";
    step_holding(
        &mut r,
        "cic",
        sql,
        (1000.0, 2000.0),
        "ShareUpdateExclusiveLock",
        1000.5,
    );
    r.locks.push(lock_on(
        "18171",
        "cic",
        "AccessExclusiveLock",
        1000.0,
        2000.0,
    ));
    let st = &facts(&r)[0];
    assert!(st.longest_blocking_lock.is_none());
    assert_eq!(
        st.strongest_lock.as_ref().unwrap().mode,
        "ShareUpdateExclusiveLock"
    );
}

#[test]
fn a_table_and_its_index_locked_together_are_named_by_the_table() {
    // CLUSTER locks the table, then the index it names; the index's hold
    // ends a hair later.
    let mut r = record();
    r.statements.push(stmt(
        "cluster",
        "CLUSTER customers USING customers_pkey",
        1000.0,
        1500.0,
    ));
    r.locks.push(lock_on(
        "customers",
        "cluster",
        "AccessExclusiveLock",
        1000.2,
        1500.0,
    ));
    r.locks.push(lock_on(
        "customers_pkey",
        "cluster",
        "AccessExclusiveLock",
        1000.9,
        1501.5,
    ));
    let f = &facts(&r)[0];
    assert_eq!(f.strongest_lock.as_ref().unwrap().relation, "customers");
    assert_eq!(
        f.longest_blocking_lock.as_ref().unwrap().relation,
        "customers"
    );
}

/// CLUSTER and DROP TABLE lock a table and its index in the same mode for
/// the same time: the table is the one named, whatever the rows' order.
#[test]
fn of_holds_alike_the_table_is_named_not_its_index() {
    for index_first in [true, false] {
        let mut r = record();
        let sql = "CLUSTER orders USING idx_amount";
        step_holding(
            &mut r,
            "cluster",
            sql,
            (1000.0, 1500.0),
            "AccessExclusiveLock",
            1000.5,
        );
        let mut idx = lock_on(
            "idx_amount",
            "cluster",
            "AccessExclusiveLock",
            1000.5,
            1500.0,
        );
        idx.table = "orders".into();
        if index_first {
            r.locks.insert(0, idx);
        } else {
            r.locks.push(idx);
        }
        let steps = step_facts(&r, &attribute_waits(&r));
        let s = steps.iter().find(|s| s.step == "cluster").unwrap();
        let strongest = s.strongest_lock.as_ref().unwrap();
        let longest = s.longest_blocking_lock.as_ref().unwrap();
        assert_eq!(strongest.relation, "orders", "index first: {index_first}");
        assert_eq!(longest.relation, "orders", "index first: {index_first}");
    }
}

/// A statement that failed before its probe ran, its locks seen by no
/// poll: the step's locks are unknown, and the reports say so rather than
/// "none".
#[test]
fn a_step_whose_locks_went_unlisted_says_unknown_not_none() {
    let mut r = record();
    let mut failed = stmt(
        "dup",
        "ALTER TABLE orders ADD COLUMN id int",
        1000.0,
        1001.4,
    );
    failed.sqlstate = "42701".into();
    failed.unknown = "locks: not in locks.csv: the statement failed (42701) after 1.4 ms".into();
    r.statements.push(failed);
    let st = &facts(&r)[0];
    assert!(st.longest_blocking_lock.is_none());
    assert!(
        st.unknown["locks"].starts_with("not in locks.csv"),
        "{:?}",
        st.unknown
    );
    assert_eq!(crate::report::format::strongest(st), "unknown");
    let cell = crate::report::format::blocking(st);
    assert!(cell.starts_with("unknown (not in locks.csv"), "{cell}");
}
