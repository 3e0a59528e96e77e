use std::collections::HashMap;

use super::*;
use crate::migration::{LockSeen, TxnLocks};
use crate::observe::{HeldSighting, MigrationWait};

const T: u32 = 16390;

/// A statement of step `s` (`LOCK t`) with the given outcome.
fn stmt(start: f64, end: f64, outcome: &str) -> StatementRow {
    StatementRow {
        outcome: outcome.into(),
        ..crate::analyze::testkit::stmt("s", "LOCK t", start, end)
    }
}

fn key(mode: &str) -> LockSeen {
    LockSeen {
        locktype: "relation".into(),
        oid: Some(T),
        name: "t".into(),
        mode: mode.into(),
    }
}

/// The poll saw `mode` on t inside a transaction from `first_ms` to
/// `last_ms` (the polls around it unset: tests set what they need).
fn seen_in_txn(mode: &str, first_ms: f64, last_ms: f64) -> HeldSighting {
    HeldSighting {
        locktype: "relation".into(),
        oid: Some(T),
        relation: "t".into(),
        mode: mode.into(),
        first_ms,
        last_ms,
        missed_before_ms: None,
        missed_after_ms: None,
        statement_start_ms: None,
        in_txn: true,
    }
}

/// A run of `statements` in one transaction that took `acquired` and
/// ended at `released_ms`.
fn one_txn(
    statements: Vec<StatementRow>,
    acquired: Vec<(LockSeen, usize)>,
    released_ms: f64,
) -> MigrationRun {
    MigrationRun {
        statements,
        txns: vec![TxnLocks {
            phase: "p".into(),
            step: "s".into(),
            acquired,
            gone: Vec::new(),
            released_ms,
        }],
        pid: 7,
        ..Default::default()
    }
}

/// The migration waited for `mode` on t from `start_ms` to `end_ms`.
fn wait(mode: &str, start_ms: f64, end_ms: f64) -> MigrationWait {
    MigrationWait {
        locktype: "relation".into(),
        oid: Some(T),
        relation: "t".into(),
        mode: mode.into(),
        start_ms,
        end_ms,
        blockers: Vec::new(),
    }
}

#[test]
fn uncontended_lock_is_held_from_send_to_commit() {
    let run = one_txn(
        vec![stmt(100.0, 101.0, "ok"), stmt(101.5, 1601.5, "ok")],
        vec![(key("AccessExclusiveLock"), 0)],
        1602.0,
    );
    let rows = lock_rows(&run, &Observations::default());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].held_ms, Some(1502.0));
    assert_eq!(rows[0].wait_ms, 0.0);
    assert_eq!(rows[0].blocks, crate::record::Blocks::ReadsWrites);
    assert_eq!(rows[0].source, "probe");
}

#[test]
fn a_failed_statement_in_a_transaction_held_what_the_poll_saw_until_its_error() {
    // ALTER (ok, probed: ACCESS EXCLUSIVE) then CREATE UNIQUE INDEX,
    // which failed at 400 (a duplicate key): no probe followed it. The
    // poll saw its SHARE lock (and the ALTER's lock again); the error
    // released it. A sighting during the ok statement adds nothing.
    let run = one_txn(
        vec![stmt(100.0, 101.0, "ok"), stmt(102.0, 400.0, "error")],
        vec![(key("AccessExclusiveLock"), 0)],
        401.0,
    );
    let seen = |mode: &str, first_ms: f64| HeldSighting {
        missed_before_ms: Some(first_ms - 1.0),
        ..seen_in_txn(mode, first_ms, first_ms + 50.0)
    };
    let mut obs = Observations {
        migration_held: vec![
            seen("RowExclusiveLock", 100.5),
            seen("AccessExclusiveLock", 103.0),
            seen("ShareLock", 103.0),
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let modes: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r.mode.as_str(), r.source.as_str()))
        .collect();
    assert_eq!(
        modes,
        [("AccessExclusiveLock", "probe"), ("ShareLock", "poll")],
        "{rows:#?}"
    );
    let share = &rows[1];
    assert_eq!(
        (share.granted_ms, share.released_ms),
        (Some(102.0), Some(400.0))
    );
    assert_eq!(share.blocks, crate::record::Blocks::Writes);
    // The probed lock, seen during the failed statement too, went at
    // the error (its end as we got it), not at the ROLLBACK (401).
    assert_eq!(rows[0].released_ms, Some(400.0));
    // The poll after the error saw both locks gone sooner (last
    // sightings at 396, the poll without them ending at 398): released
    // by 398.
    for h in obs.migration_held.iter_mut().skip(1) {
        (h.last_ms, h.missed_after_ms) = (396.0, Some(398.0));
    }
    let rows = lock_rows(&run, &obs);
    let released: Vec<_> = rows.iter().map(|r| r.released_ms).collect();
    assert_eq!(released, [Some(398.0), Some(398.0)], "{rows:#?}");
}

/// A transaction's failed statement let go of its locks at its error even
/// when no poll saw them during it (a `SELECT 1/0` over in microseconds),
/// and not before it began (a poll's clock, read across a socket, put the
/// release of the lock on `t` 0.5 ms before the failing statement was sent).
#[test]
fn a_transaction_lets_go_at_its_error_and_not_before_it() {
    let run = one_txn(
        vec![
            stmt(100.0, 101.0, "ok"),
            stmt(101.2, 104.0, "ok"),
            stmt(104.5, 105.0, "error"),
        ],
        vec![(key("AccessExclusiveLock"), 0)],
        106.0,
    );
    // No sighting at all: released at the error as we got it, not at the
    // ROLLBACK.
    let rows = lock_rows(&run, &Observations::default());
    assert_eq!(rows[0].released_ms, Some(105.0), "{rows:#?}");
    // A poll near the failing statement whose "gone" is earlier than the
    // statement's start: not before the start.
    let obs = Observations {
        migration_held: vec![HeldSighting {
            missed_before_ms: Some(100.2),
            missed_after_ms: Some(104.1),
            ..seen_in_txn("AccessExclusiveLock", 104.4, 104.4)
        }],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    assert_eq!(rows[0].released_ms, Some(104.5), "{rows:#?}");
}

/// The next statement of a transaction is sent a fraction of a
/// millisecond after the last returned: a lock first seen just inside it
/// is its lock, though the one before ended less than the clocks' slack
/// (1 ms) earlier. (Given to the earlier statement, which succeeded, the
/// failed DO block's lock had no row at all.)
#[test]
fn a_lock_seen_just_after_a_statement_is_the_next_ones() {
    let run = one_txn(
        vec![stmt(3294.3, 3295.4, "ok"), stmt(3295.6, 3396.4, "error")],
        vec![(key("ShareLock"), 0)],
        3397.0,
    );
    let obs = Observations {
        migration_held: vec![
            seen_in_txn("ShareLock", 3296.3, 3395.0),
            seen_in_txn("ShareRowExclusiveLock", 3296.3, 3395.0),
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let sre: Vec<_> = rows
        .iter()
        .filter(|r| r.mode == "ShareRowExclusiveLock")
        .collect();
    assert_eq!(sre.len(), 1, "{rows:#?}");
    assert_eq!(sre[0].source, "poll");
    assert_eq!(
        (sre[0].granted_ms, sre[0].released_ms),
        (Some(3295.6), Some(3396.4))
    );
    // Between two statements, 0.2 ms from one and 0.6 ms from the other:
    // the nearer.
    assert_eq!(statement_near(&run.statements, 3295.45, 1.0), Some(0));
    assert_eq!(statement_near(&run.statements, 3295.55, 1.0), Some(1));
    assert_eq!(statement_near(&run.statements, 3398.0, 1.0), None);
}

#[test]
fn a_wait_moves_the_grant_and_a_log_line_refines_it() {
    let run = one_txn(
        vec![stmt(100.0, 600.0, "ok")],
        vec![(key("ShareLock"), 0)],
        700.0,
    );
    let mut obs = Observations::default();
    obs.migration_waits.push(wait("ShareLock", 100.5, 503.0));
    let rows = lock_rows(&run, &obs);
    assert_eq!(rows[0].requested_ms, 100.5);
    assert_eq!(rows[0].granted_ms, Some(503.0));
    obs.log_acquired.push(LogAcquired {
        pid: 7,
        mode: "ShareLock".into(),
        relation_oid: Some(T),
        locktag: format!("relation {T} of database 5"),
        at_ms: 500.0,
        after_ms: 399.5,
    });
    let rows = lock_rows(&run, &obs);
    assert_eq!(rows[0].granted_ms, Some(500.0));
    assert_eq!(rows[0].held_ms, Some(200.0));
    assert_eq!(rows[0].wait_ms, 399.5);
}

/// DROP TABLE behind a reader: it waits 260 ms for the table, and only then
/// takes its index, for the 2 ms before it returns; no poll saw the index
/// lock (QA: it came out held 265 ms from the statement's start, a false
/// FAIL that turned on whether a poll caught it). The polls during the wait
/// did not list it: it was taken after the last of them.
#[test]
fn a_lock_no_poll_saw_is_taken_after_the_statements_last_poll() {
    const PKEY: u32 = 16395;
    let pkey = LockSeen {
        oid: Some(PKEY),
        name: "t_pkey".into(),
        ..key("AccessExclusiveLock")
    };
    let run = one_txn(
        vec![stmt(1043.0, 1307.5, "ok")],
        vec![(key("AccessExclusiveLock"), 0), (pkey, 0)],
        1309.0,
    );
    let mut obs = Observations::default();
    obs.migration_waits
        .push(wait("AccessExclusiveLock", 1043.2, 1305.0));
    let row =
        |rows: &[LockRow], rel: &str| rows.iter().find(|r| r.relation == rel).cloned().unwrap();
    // Without the polls' times: from the statement's start, as before.
    let rows = lock_rows(&run, &obs);
    assert_eq!(row(&rows, "t_pkey").granted_ms, Some(1043.0));
    obs.migration_statement_polls
        .push(crate::observe::StatementPolls {
            first_ms: 1043.4,
            last_ms: 1305.5,
        });
    let rows = lock_rows(&run, &obs);
    assert_eq!(row(&rows, "t").granted_ms, Some(1305.0));
    let p = row(&rows, "t_pkey");
    assert_eq!(p.granted_ms, Some(1306.5), "{p:?}");
    assert_eq!(p.held_ms, Some(2.5), "{p:?}");
}

#[test]
fn a_wait_that_timed_out_is_a_request_without_grant() {
    let run = MigrationRun {
        statements: vec![stmt(100.0, 200.0, "lock_timeout")],
        pid: 7,
        ..Default::default()
    };
    let mut obs = Observations::default();
    obs.migration_waits
        .push(wait("AccessExclusiveLock", 100.2, 200.1));
    let rows = lock_rows(&run, &obs);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].granted_ms, None);
    assert!((rows[0].wait_ms - 99.9).abs() < 1e-6);
    assert_eq!(rows[0].held_ms, None, "never granted: not a hold of 0 ms");
    assert_eq!(rows[0].source, "wait");
}

/// CONCURRENTLY waits for older transactions to end (a virtualxid lock):
/// the statement went on, so the lock was got at the wait's end and let
/// go at once — not "never granted".
#[test]
fn a_wait_for_another_transaction_that_ended_was_got() {
    let vxid = |end_ms: f64| {
        let mut w = wait("ShareLock", 120.0, end_ms);
        w.locktype = "virtualxid".into();
        w.oid = None;
        w.relation = "virtualxid".into();
        w
    };
    let rows = |outcome: &str, w: MigrationWait| {
        let run = MigrationRun {
            statements: vec![stmt(100.0, 200.0, outcome)],
            pid: 7,
            ..Default::default()
        };
        let obs = Observations {
            migration_waits: vec![w],
            ..Default::default()
        };
        lock_rows(&run, &obs)
    };
    let ok = rows("ok", vxid(180.0));
    assert_eq!(ok.len(), 1);
    assert_eq!(
        (ok[0].granted_ms, ok[0].released_ms),
        (Some(180.0), Some(180.0))
    );
    assert_eq!((ok[0].wait_ms, ok[0].held_ms), (60.0, Some(0.0)));
    // A wait last seen by a poll after its statement returned (its end is
    // halfway to the poll that missed it): got when the statement went on,
    // not after it returned.
    let late = rows("ok", vxid(203.0));
    assert_eq!(
        (late[0].granted_ms, late[0].wait_ms),
        (Some(200.0), 80.0),
        "{late:?}"
    );
    // Cancelled while it waited: never got.
    let cancelled = rows("cancelled", vxid(180.0));
    assert_eq!(
        (cancelled[0].granted_ms, cancelled[0].held_ms),
        (None, None)
    );
}

#[test]
fn the_poll_places_a_probed_lock_taken_mid_statement_and_released_inside_commit() {
    // ALTER COLUMN TYPE from 100 to 300 takes SHARE near its end (the
    // poll missed it at 250, saw it at 252); COMMIT returns at 320,
    // but the poll saw the lock gone by 306 (last seen at 304): the
    // old files are unlinked after the locks go.
    let run = one_txn(
        vec![stmt(100.0, 300.0, "ok")],
        vec![(key("ShareLock"), 0)],
        320.0,
    );
    let sighting = |first, last, before, after| HeldSighting {
        missed_before_ms: before,
        missed_after_ms: after,
        ..seen_in_txn("ShareLock", first, last)
    };
    let obs = Observations {
        migration_held: vec![sighting(252.0, 304.0, Some(250.0), Some(306.0))],
        ..Default::default()
    };
    let mut run = run;
    run.txns[0].acquired.push((
        LockSeen {
            locktype: "transactionid".into(),
            oid: None,
            name: String::new(),
            mode: "ExclusiveLock".into(),
        },
        0,
    ));
    let rows = lock_rows(&run, &obs);
    // The transaction's id went with the table's lock: COMMIT releases
    // them together, and the poll does not read transactionid locks.
    let xid = rows.iter().find(|r| r.locktype == "transactionid").unwrap();
    assert_eq!(xid.released_ms, Some(305.0), "{rows:?}");
    let rows: Vec<LockRow> = rows
        .into_iter()
        .filter(|r| r.locktype == "relation")
        .collect();
    assert_eq!(rows[0].granted_ms, Some(251.0), "{rows:?}");
    assert_eq!(rows[0].requested_ms, 251.0, "no wait: {rows:?}");
    assert_eq!(rows[0].wait_ms, 0.0, "{rows:?}");
    assert_eq!(rows[0].released_ms, Some(305.0), "{rows:?}");
    // Without the poll's sightings: the statement's start and COMMIT.
    let rows: Vec<LockRow> = lock_rows(&run, &Observations::default())
        .into_iter()
        .filter(|r| r.locktype == "relation")
        .collect();
    assert_eq!(
        (rows[0].granted_ms, rows[0].released_ms),
        (Some(100.0), Some(320.0))
    );
}

#[test]
fn a_lock_seen_after_another_went_is_not_released_with_it() {
    // ADD FOREIGN KEY: COMMIT (returning at 312) released `child` (seen
    // gone at 306, last seen at 304) but `parent` three milliseconds
    // later: the poll still saw it at 309, then stopped with COMMIT.
    let parent = LockSeen {
        oid: Some(T + 1),
        name: "parent".into(),
        ..key("ShareRowExclusiveLock")
    };
    let run = one_txn(
        vec![stmt(100.0, 300.0, "ok")],
        vec![(key("ShareRowExclusiveLock"), 0), (parent, 0)],
        312.0,
    );
    let sighting = |oid, name: &str, last, after| HeldSighting {
        oid: Some(oid),
        relation: name.into(),
        missed_before_ms: Some(100.5),
        missed_after_ms: after,
        ..seen_in_txn("ShareRowExclusiveLock", 101.0, last)
    };
    let obs = Observations {
        migration_held: vec![
            sighting(T, "t", 304.0, Some(306.0)),
            sighting(T + 1, "parent", 309.0, None),
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let released = |name: &str| {
        rows.iter()
            .find(|r| r.relation == name)
            .and_then(|r| r.released_ms)
    };
    assert_eq!(released("t"), Some(305.0), "{rows:?}");
    assert_eq!(released("parent"), Some(310.5), "{rows:?}");
}

#[test]
fn ddl_outside_a_transaction_with_no_lock_seen_says_so() {
    let mut drop_index = stmt(100.0, 102.0, "ok");
    drop_index.sql = "DROP INDEX CONCURRENTLY t_idx".into();
    let mut set = stmt(103.0, 103.2, "ok");
    set.sql = "SET lock_timeout = '1s'".into();
    // A DO that commits inside runs outside a transaction, polled only.
    let mut committing = stmt(104.0, 104.5, "ok");
    committing.sql = "DO $$ BEGIN ALTER TABLE t ADD COLUMN c int; COMMIT; END $$".into();
    let mut run = MigrationRun {
        statements: vec![drop_index, set, committing],
        outside_txn: vec![0, 1, 2],
        ..Default::default()
    };
    note_unseen(&mut run, &[]);
    assert!(
        run.statements[2].unknown.contains("a DO or CALL"),
        "{:?}",
        run.statements[2]
    );
    assert!(
        run.statements[0]
            .unknown
            .starts_with("locks: not in locks.csv"),
        "{:?}",
        run.statements[0]
    );
    assert_eq!(run.statements[1].unknown, "", "SET takes no lock");
    // Seen: nothing to say.
    run.statements[0].unknown.clear();
    let seen = row(
        "p",
        "s",
        ("t", ""),
        &Taken {
            locktype: "relation",
            oid: Some(T),
            seen: "t",
            mode: "ShareUpdateExclusiveLock",
        },
        100.5,
        Some(100.5),
        Some(101.5),
        "poll",
    );
    note_unseen(&mut run, &[seen]);
    assert_eq!(run.statements[0].unknown, "");
}

#[test]
fn a_statement_failing_in_a_transaction_unseen_by_the_poll_has_its_locks_unknown() {
    // ALTER TABLE ... ADD COLUMN of a column that exists: ACCESS EXCLUSIVE
    // taken, 42701 a millisecond later, no probe behind it. Beside it, a
    // statement that succeeded (its probe listed its locks) and one that
    // failed after a poll saw its lock.
    let mut failed = stmt(100.0, 101.0, "failed as expected");
    failed.sql = "ALTER TABLE t ADD COLUMN id int".into();
    failed.sqlstate = "42701".into();
    let mut ok = stmt(102.0, 103.0, "ok");
    ok.sql = "ALTER TABLE t ADD COLUMN x int".into();
    let mut polled = stmt(104.0, 110.0, "failed");
    polled.sql = "ALTER TABLE t ADD CONSTRAINT c CHECK (x > 0)".into();
    polled.sqlstate = "23514".into();
    let mut run = MigrationRun {
        statements: vec![failed, ok, polled],
        ..Default::default()
    };
    let seen = row(
        "p",
        "s",
        ("t", ""),
        &Taken {
            locktype: "relation",
            oid: Some(T),
            seen: "t",
            mode: "AccessExclusiveLock",
        },
        104.0,
        Some(104.0),
        Some(110.5),
        "poll",
    );
    note_unseen(&mut run, &[seen]);
    let u = &run.statements[0].unknown;
    assert!(
        u.starts_with("locks: not in locks.csv: the statement failed (42701)"),
        "{u}"
    );
    assert_eq!(run.statements[1].unknown, "", "its probe listed its locks");
    assert_eq!(run.statements[2].unknown, "", "the poll saw its lock");
}

#[test]
fn a_relation_the_step_created_blocks_once_its_creation_committed() {
    // One file: CREATE TABLE audit (its own transaction), then
    // BEGIN; LOCK audit; ... COMMIT. The second transaction's lock is
    // on a table every session can see by then.
    const AUDIT: u32 = 16500;
    let lock_on_audit = |mode: &str| LockSeen {
        locktype: "relation".into(),
        oid: Some(AUDIT),
        name: "audit".into(),
        mode: mode.into(),
    };
    let txn = |acquired: Vec<(LockSeen, usize)>, released_ms: f64| TxnLocks {
        phase: "p".into(),
        step: "s".into(),
        acquired,
        gone: Vec::new(),
        released_ms,
    };
    let mut run = MigrationRun {
        statements: vec![stmt(100.0, 101.0, "ok"), stmt(110.0, 111.0, "ok")],
        txns: vec![
            txn(vec![(lock_on_audit("AccessExclusiveLock"), 0)], 102.0),
            txn(vec![(lock_on_audit("AccessExclusiveLock"), 1)], 500.0),
        ],
        pid: 7,
        ..Default::default()
    };
    let before = HashMap::from([(T, "t".to_string())]);
    let mut after = before.clone();
    after.insert(AUDIT, "audit".to_string());
    run.relations.step("p", "s", &before, &after);
    let rows = lock_rows(&run, &Observations::default());
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows.iter().all(|r| r.relation == "audit (new)"), "{rows:?}");
    use crate::record::Blocks;
    assert_eq!(rows[0].blocks, Blocks::None, "nobody sees it before commit");
    assert_eq!(rows[1].blocks, Blocks::ReadsWrites, "{:?}", rows[1]);
}

#[test]
fn polled_locks_are_placed_between_the_polls_around_them() {
    // CREATE INDEX CONCURRENTLY from 100 to 160: the table's lock seen
    // from the first poll to the end, the new index's taken and dropped
    // mid-statement.
    let mut run = MigrationRun {
        statements: vec![stmt(100.0, 160.0, "ok")],
        pid: 7,
        ..Default::default()
    };
    let before = HashMap::from([(T, "t".to_string())]);
    let mut after = before.clone();
    after.insert(16400, "t_idx".to_string());
    run.relations.step("p", "s", &before, &after);
    let sighting =
        |oid, name: &str, mode: &str, polls: (Option<f64>, f64, f64, Option<f64>)| HeldSighting {
            locktype: "relation".into(),
            oid: Some(oid),
            relation: name.into(),
            mode: mode.into(),
            first_ms: polls.1,
            last_ms: polls.2,
            missed_before_ms: polls.0,
            missed_after_ms: polls.3,
            statement_start_ms: None,
            in_txn: false,
        };
    let obs = Observations {
        migration_held: vec![
            sighting(
                T,
                "t",
                "ShareUpdateExclusiveLock",
                (Some(99.8), 100.4, 159.6, None),
            ),
            sighting(
                16400,
                "16400",
                "RowExclusiveLock",
                (Some(120.0), 121.0, 150.0, Some(151.0)),
            ),
            // Never named: a relation made and dropped inside the statement.
            sighting(
                16401,
                "16401",
                "AccessExclusiveLock",
                (Some(130.0), 131.0, 131.0, Some(132.0)),
            ),
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    assert_eq!(rows.len(), 2, "{rows:#?}");
    let sue = &rows[0];
    assert_eq!(
        (sue.granted_ms, sue.released_ms),
        (Some(100.0), Some(160.0))
    );
    assert_eq!(sue.source, "poll");
    let idx = &rows[1];
    assert_eq!(idx.relation, "t_idx (new)");
    assert_eq!(
        (idx.granted_ms, idx.released_ms),
        (Some(120.5), Some(150.5))
    );
}

#[test]
fn a_polled_lock_is_granted_no_earlier_than_the_backend_began_its_statement() {
    // The clock read ahead of the statement says 100; the backend took
    // the statement's message at 102.5 (it waited for a CPU), the
    // poller saw the lock first at 103.
    let run = MigrationRun {
        statements: vec![stmt(100.0, 160.0, "ok")],
        server_spans: vec![Some(crate::migration::ServerSpan {
            start_ms: 100.0,
            end_ms: 160.0,
        })],
        pid: 7,
        ..Default::default()
    };
    let sighting = |statement_start_ms| HeldSighting {
        locktype: "relation".into(),
        oid: Some(T),
        relation: "t".into(),
        mode: "ShareUpdateExclusiveLock".into(),
        first_ms: 103.0,
        last_ms: 159.0,
        missed_before_ms: Some(99.0),
        missed_after_ms: None,
        statement_start_ms,
        in_txn: false,
    };
    let granted = |h| {
        let obs = Observations {
            migration_held: vec![h],
            ..Default::default()
        };
        lock_rows(&run, &obs)[0].granted_ms
    };
    assert_eq!(granted(sighting(Some(102.5))), Some(102.5));
    // Unknown, or not within the statement before the sighting: the
    // clock read ahead of it.
    assert_eq!(granted(sighting(None)), Some(100.0));
    assert_eq!(granted(sighting(Some(98.0))), Some(100.0));
    assert_eq!(granted(sighting(Some(104.0))), Some(100.0));
}

/// A wait behind the migration's lock ends no earlier than its release;
/// one far before it (another wait), one behind an app, and one behind a
/// lock that does not conflict keep their poll-placed ends.
#[test]
fn a_wait_behind_the_migration_ends_at_the_release_it_waited_for() {
    use crate::analyze::testkit::{lock, wait};
    let locks = vec![
        lock("s", "AccessExclusiveLock", 1000.0, 1000.0, 1500.0),
        lock("s", "ShareUpdateExclusiveLock", 1000.0, 1000.0, 1800.0),
    ];
    let mut waits = vec![
        wait(1100.0, 1497.5, WaitCause::Migration),
        wait(1100.0, 1480.0, WaitCause::Migration),
        wait(1100.0, 1497.5, WaitCause::App),
        wait(1600.0, 1797.0, WaitCause::Migration),
    ];
    align_waits(&mut waits, &locks);
    let ends: Vec<(f64, f64)> = waits.iter().map(|w| (w.end_ms, w.wait_ms)).collect();
    assert_eq!(
        ends,
        [
            (1500.0, 400.0),
            (1480.0, 380.0),
            (1497.5, 397.5),
            (1797.0, 197.0)
        ]
    );
    // Queued behind the migration's pending request (asked for at 1000,
    // granted at 1300 after its own wait): it ends at that lock's release.
    let pending = vec![lock("s", "AccessExclusiveLock", 1000.0, 1300.0, 1500.0)];
    let mut queued = vec![wait(1100.0, 1496.0, WaitCause::QueuedBehindMigration)];
    align_waits(&mut queued, &pending);
    assert_eq!((queued[0].end_ms, queued[0].wait_ms), (1500.0, 400.0));
    // Queued behind a request that was never granted (its lock_timeout
    // fired at 1500): it ends no earlier than the migration gave it up.
    let mut given_up = lock("s", "AccessExclusiveLock", 1000.0, 1000.0, 1500.0);
    (given_up.granted_ms, given_up.released_ms, given_up.wait_ms) = (None, None, 500.0);
    let mut queued = vec![wait(1100.0, 1498.8, WaitCause::QueuedBehindMigration)];
    align_waits(&mut queued, &[given_up.clone()]);
    assert_eq!((queued[0].end_ms, queued[0].wait_ms), (1500.0, 400.0));
    // That sum rounded as every time is (QA: 1187.4869999999999).
    (given_up.requested_ms, given_up.wait_ms) = (1087.387, 100.1);
    let mut queued = vec![wait(1090.0, 1186.0, WaitCause::QueuedBehindMigration)];
    align_waits(&mut queued, &[given_up]);
    assert_eq!(queued[0].end_ms.to_string(), "1187.487");
}

/// A wait for a row the migration's transaction updated ends at that
/// transaction's COMMIT: the release of its locks (QA: row waits ended 1–4
/// ms before it, where relation waits were aligned).
#[test]
fn a_row_wait_behind_the_migration_ends_at_its_commit() {
    use crate::analyze::testkit::{lock, wait};
    let locks = vec![lock("s", "RowExclusiveLock", 1000.0, 1000.0, 1622.5)];
    let row = |end: f64, cause: WaitCause| {
        let mut w = wait(1100.0, end, cause);
        (w.locktype, w.mode) = ("transactionid".into(), "ShareLock".into());
        w
    };
    let mut waits = vec![
        row(1618.4, WaitCause::Migration),
        row(1618.4, WaitCause::App),
        row(1600.0, WaitCause::Migration),
    ];
    align_waits(&mut waits, &locks);
    let ends: Vec<f64> = waits.iter().map(|w| w.end_ms).collect();
    assert_eq!(ends, [1622.5, 1618.4, 1600.0]);
}

#[test]
fn the_dead_index_a_concurrent_drop_locks_blocks_nobody() {
    let dic = "DROP INDEX CONCURRENTLY orders_status_idx";
    assert!(drops_dead_index(dic, "orders_status_idx (dropped)"));
    assert!(drops_dead_index(
        "REINDEX INDEX CONCURRENTLY orders_status_idx",
        "orders_status_idx (dropped)"
    ));
    // Its table, and an index a plain DROP INDEX drops, are live.
    assert!(!drops_dead_index(dic, "orders"));
    assert!(!drops_dead_index(
        "DROP INDEX orders_status_idx",
        "orders_status_idx (dropped)"
    ));
}

#[test]
fn a_commit_release_between_far_polls_is_placed_at_the_gaps_end() {
    // Polls 1 ms apart: halfway.
    assert_eq!(seen_released(100.0, 101.0, 105.0), 100.5);
    // 10 ms apart (a transaction holding nothing the app queues behind):
    // COMMIT lets go at its end, so the end of the gap...
    assert_eq!(seen_released(100.0, 110.0, 112.0), 110.0);
    // ... or the COMMIT's clock, when that came first.
    assert_eq!(seen_released(100.0, 110.0, 108.0), 108.0);
}

/// Locks let go before COMMIT inside a transaction. A savepoint rolled back
/// by the third statement: the probe after it no longer lists the lock the
/// second took, and the poll saw it go between 160 and 161 — released
/// then, not at COMMIT (600). And a lock taken and let go within one ok
/// statement (a PL/pgSQL exception block), which no probe lists: the poll's
/// row, released where the poll saw it go.
#[test]
fn locks_let_go_before_commit_are_released_where_they_went() {
    let mut run = one_txn(
        vec![
            stmt(100.0, 101.0, "ok"),
            stmt(102.0, 150.0, "ok"),
            stmt(150.5, 200.0, "ok"),
            stmt(201.0, 500.0, "ok"),
        ],
        vec![(key("AccessExclusiveLock"), 1)],
        600.0,
    );
    run.txns[0].gone = vec![(0, 2)];
    let obs = Observations {
        migration_held: vec![
            HeldSighting {
                missed_after_ms: Some(161.0),
                ..seen_in_txn("AccessExclusiveLock", 103.0, 160.0)
            },
            HeldSighting {
                missed_before_ms: Some(209.0),
                missed_after_ms: Some(261.0),
                ..seen_in_txn("ShareLock", 210.0, 260.0)
            },
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let got: Vec<_> = rows
        .iter()
        .map(|r| {
            (
                r.mode.as_str(),
                r.source.as_str(),
                r.granted_ms,
                r.released_ms,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("AccessExclusiveLock", "probe", Some(102.0), Some(160.5)),
            ("ShareLock", "poll", Some(209.5), Some(260.5)),
        ],
        "{rows:#?}"
    );
    // No sighting of its going: somewhere in the statement that let it go.
    let rows = lock_rows(&run, &Observations::default());
    assert_eq!(rows[0].released_ms, Some(175.25), "{rows:#?}");
}

/// The poll saw `mode` on t outside a transaction: first seen at `first`
/// (missed by the poll at `first - 1`), last at `last` (missed at `last + 1`).
fn seen_outside(mode: &str, first: f64, last: f64) -> HeldSighting {
    HeldSighting {
        missed_before_ms: Some(first - 1.0),
        missed_after_ms: Some(last + 1.0),
        in_txn: false,
        ..seen_in_txn(mode, first, last)
    }
}

/// QA (witness): a procedure that commits between batches takes SHARE
/// three times in one CALL, waiting only before the second and third
/// holds (app writes got in between). Each hold takes the wait that ended
/// as it began; the first, which waited for nothing, used to take the
/// second's wait and come out 0 ms long, and a 200 ms hold passed a 100 ms
/// budget.
#[test]
fn each_hold_of_one_statement_takes_the_wait_just_before_it() {
    let run = MigrationRun {
        statements: vec![stmt(100.0, 400.0, "ok")],
        outside_txn: vec![0],
        pid: 7,
        ..Default::default()
    };
    let obs = Observations {
        migration_held: vec![
            seen_outside("ShareLock", 101.0, 300.0),
            seen_outside("ShareLock", 306.0, 335.0),
            seen_outside("ShareLock", 341.0, 370.0),
        ],
        migration_waits: vec![
            wait("ShareLock", 301.5, 305.0),
            wait("ShareLock", 336.5, 340.0),
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.requested_ms, r.granted_ms, r.released_ms))
        .collect();
    assert_eq!(
        got,
        [
            (100.0, Some(100.0), Some(300.5)),
            (301.5, Some(305.0), Some(335.5)),
            (336.5, Some(340.0), Some(370.5)),
        ],
        "{rows:#?}"
    );
}

/// A DO block retrying on lock_timeout: two waits given up, then a grant
/// after a third. The hold starts at the third wait's end; the first two
/// are requests never granted (they used to date the hold, 195 ms instead
/// of 55, a false critical finding).
#[test]
fn waits_given_up_before_a_hold_are_not_its_wait() {
    let run = MigrationRun {
        statements: vec![stmt(100.0, 400.0, "ok")],
        outside_txn: vec![0],
        pid: 7,
        ..Default::default()
    };
    let obs = Observations {
        migration_held: vec![seen_outside("ShareLock", 312.0, 366.0)],
        migration_waits: vec![
            wait("ShareLock", 100.5, 200.5),
            wait("ShareLock", 201.0, 301.0),
            wait("ShareLock", 301.5, 310.0),
        ],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let held: Vec<_> = rows.iter().filter(|r| r.granted_ms.is_some()).collect();
    assert_eq!(held.len(), 1, "{rows:#?}");
    assert_eq!(
        (
            held[0].requested_ms,
            held[0].granted_ms,
            held[0].released_ms
        ),
        (301.5, Some(310.0), Some(366.5))
    );
    let never: Vec<_> = rows
        .iter()
        .filter(|r| r.granted_ms.is_none())
        .map(|r| (r.requested_ms, r.wait_ms))
        .collect();
    assert_eq!(never, [(100.5, 100.0), (201.0, 100.0)], "{rows:#?}");
}

/// QA (witness): a DO block in a transaction locks SHARE, sleeps 200 ms and
/// lets it go through its exception handler just before it returns. The
/// probe behind it does not list the lock, and the last poll ran before
/// the release: the hold is the poll's, let go by the statement's end. It
/// used to be dropped as one the probe would list (no row at all, a false
/// PASS while the app waited 200 ms).
#[test]
fn a_lock_let_go_at_the_very_end_of_a_statement_is_still_a_hold() {
    let run = one_txn(vec![stmt(100.0, 305.0, "ok")], Vec::new(), 306.0);
    let obs = Observations {
        migration_held: vec![HeldSighting {
            missed_before_ms: Some(101.0),
            missed_after_ms: Some(307.0),
            ..seen_in_txn("ShareLock", 102.0, 304.0)
        }],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    assert_eq!(rows.len(), 1, "{rows:#?}");
    assert_eq!(rows[0].source, "poll");
    assert_eq!(
        (rows[0].granted_ms, rows[0].released_ms),
        (Some(101.5), Some(304.5))
    );
    // Where the probe behind it failed, the lock may be held to COMMIT:
    // unknown, not a hold.
    let mut run = run;
    run.statements[0].unknown = "locks: not in locks.csv: the probe failed".into();
    assert_eq!(lock_rows(&run, &obs).len(), 0);
}

/// QA (witness): SHARE held 155 ms, a ROLLBACK TO SAVEPOINT lets it go,
/// then, after a 110 ms wait, taken again for 54 ms: two holds, not one of
/// 310 ms (a false FAIL at a 250 ms budget).
#[test]
fn a_lock_taken_again_after_a_savepoint_rolled_back_is_a_second_hold() {
    let mut run = one_txn(
        vec![
            stmt(100.0, 101.0, "ok"), // SAVEPOINT a
            stmt(101.5, 102.0, "ok"), // LOCK t IN SHARE MODE
            stmt(102.5, 257.0, "ok"), // SELECT pg_sleep(.155)
            stmt(257.5, 258.0, "ok"), // ROLLBACK TO SAVEPOINT a
            stmt(258.5, 370.0, "ok"), // LOCK t IN SHARE MODE (waits 110 ms)
            stmt(370.5, 425.0, "ok"), // SELECT pg_sleep(.054)
        ],
        vec![(key("ShareLock"), 1), (key("ShareLock"), 4)],
        426.0,
    );
    run.txns[0].gone = vec![(0, 3)];
    let obs = Observations {
        migration_held: vec![
            HeldSighting {
                missed_before_ms: Some(101.6),
                missed_after_ms: Some(257.9),
                ..seen_in_txn("ShareLock", 101.9, 257.6)
            },
            HeldSighting {
                missed_before_ms: Some(368.0),
                ..seen_in_txn("ShareLock", 369.5, 425.5)
            },
        ],
        migration_waits: vec![wait("ShareLock", 258.7, 368.8)],
        ..Default::default()
    };
    let rows = lock_rows(&run, &obs);
    let got: Vec<_> = rows
        .iter()
        .map(|r| (r.requested_ms, r.granted_ms, r.released_ms))
        .collect();
    assert_eq!(
        got,
        [
            (101.75, Some(101.75), Some(257.75)),
            (258.7, Some(368.8), Some(426.0)),
        ],
        "{rows:#?}"
    );
}

/// QA (witness): a procedure's second and third holds of one table, 1.5 ms
/// apart across its COMMIT, too briefly for a poll to see the table
/// unlocked: the poller saw the backend move to another transaction, so
/// the sighting is two holds. VACUUM, which keeps its table's lock for the
/// session across its own transactions, stays one.
#[test]
fn a_procedures_commit_ends_a_hold_the_poll_saw_go_on() {
    let call = |sql: &str| MigrationRun {
        statements: vec![StatementRow {
            sql: sql.into(),
            ..stmt(100.0, 400.0, "ok")
        }],
        outside_txn: vec![0],
        pid: 7,
        ..Default::default()
    };
    let obs = Observations {
        migration_held: vec![seen_outside("ShareLock", 101.0, 370.0)],
        migration_txn_changes: vec![crate::observe::TxnChange {
            before_ms: 335.0,
            after_ms: 337.0,
        }],
        ..Default::default()
    };
    let spans = |run: &MigrationRun| -> Vec<_> {
        lock_rows(run, &obs)
            .iter()
            .map(|r| (r.granted_ms, r.released_ms))
            .collect()
    };
    assert_eq!(
        spans(&call("CALL batches()")),
        [(Some(100.0), Some(336.0)), (Some(336.0), Some(370.5))]
    );
    assert_eq!(spans(&call("VACUUM t")), [(Some(100.0), Some(370.5))]);
}
