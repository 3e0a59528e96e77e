//! Lock holds of the migration (locks.csv): the executor's own lock lists per
//! transaction, refined by what the observer saw it wait for and by the
//! server log's "acquired ... after X ms" lines.
//!
//! - requested: when the statement that took the lock was sent, or — if the
//!   migration had to wait — pg_locks.waitstart (server clock, µs precision).
//! - granted: the statement's send time when there was no wait; after a wait,
//!   the log line's timestamp (ms precision) where we own the server, else the
//!   first poll that no longer saw the wait (± half a poll interval).
//! - released: when COMMIT/ROLLBACK returned (transactional steps), or when
//!   the statement returned (outside a transaction).

use std::collections::HashMap;

use crate::locks::blocks_of;
use crate::migration::{is_catalog, MigrationRun};
use crate::observe::{LogAcquired, MigrationWait, Observations};
use crate::record::{LockRow, StatementRow};

use crate::pg::round3;

/// A log line matched to a lock: its relation name resolved from the oid.
pub struct NamedAcquired<'a> {
    pub line: &'a LogAcquired,
    pub relation: String,
}

pub fn lock_rows(
    run: &MigrationRun,
    obs: &Observations,
    oid_names: &HashMap<u32, String>,
) -> Vec<LockRow> {
    let acquired: Vec<NamedAcquired> = obs
        .log_acquired
        .iter()
        .filter(|a| a.pid == run.pid)
        .map(|a| NamedAcquired {
            line: a,
            relation: a
                .relation_oid
                .and_then(|o| oid_names.get(&o).cloned())
                .unwrap_or_else(|| a.locktag.clone()),
        })
        .collect();
    let mut used_waits = vec![false; obs.migration_waits.len()];
    let mut rows = Vec::new();

    let wait_for = |relation: &str,
                    mode: &str,
                    stmt: &StatementRow,
                    used: &mut Vec<bool>|
     -> Option<(f64, f64)> {
        let (i, w) = obs.migration_waits.iter().enumerate().find(|(i, w)| {
            !used[*i]
                && w.relation == relation
                && w.mode == mode
                && w.start_ms >= stmt.start_ms - 5.0
                && w.start_ms <= stmt.end_ms + 5.0
        })?;
        used[i] = true;
        let granted = acquired
            .iter()
            .find(|a| {
                a.relation == relation
                    && a.line.mode == mode
                    && a.line.at_ms >= w.start_ms - 5.0
                    && a.line.at_ms <= stmt.end_ms + 5.0
            })
            .map(|a| a.line.at_ms.max(w.start_ms))
            .unwrap_or(w.end_ms);
        Some((w.start_ms, granted))
    };

    for txn in &run.txns {
        for ((locktype, relation, mode), idx) in &txn.acquired {
            let stmt = &run.statements[*idx];
            let (requested, granted) = wait_for(relation, mode, stmt, &mut used_waits)
                .unwrap_or((stmt.start_ms, stmt.start_ms));
            rows.push(row(
                &txn.phase,
                &txn.step,
                relation,
                locktype,
                mode,
                requested,
                Some(granted),
                Some(txn.released_ms),
            ));
        }
    }
    // Locks seen held while a statement ran outside a transaction.
    for h in &obs.migration_held {
        if is_catalog(&h.relation) {
            continue;
        }
        let Some(stmt) = run
            .statements
            .iter()
            .find(|s| h.first_ms >= s.start_ms - 1.0 && h.first_ms <= s.end_ms + 1.0)
        else {
            continue;
        };
        let (requested, granted) = wait_for(&h.relation, &h.mode, stmt, &mut used_waits)
            .unwrap_or((stmt.start_ms, stmt.start_ms));
        rows.push(row(
            &stmt.phase,
            &stmt.step,
            &h.relation,
            &h.locktype,
            &h.mode,
            requested,
            Some(granted),
            Some(stmt.end_ms),
        ));
    }
    // Waits that never led to a grant: lock timeouts, cancelled attempts.
    for (i, w) in obs.migration_waits.iter().enumerate() {
        if used_waits[i] {
            continue;
        }
        let stmt = statement_at(&run.statements, w);
        let (phase, step) = stmt
            .map(|s| (s.phase.as_str(), s.step.as_str()))
            .unwrap_or(("", ""));
        rows.push(row(
            phase,
            step,
            &w.relation,
            &w.locktype,
            &w.mode,
            w.start_ms,
            None,
            None,
        ));
        let last = rows.last_mut().expect("just pushed");
        last.wait_ms = round3(w.end_ms - w.start_ms);
    }
    rows.sort_by(|a, b| a.requested_ms.total_cmp(&b.requested_ms));
    rows
}

fn statement_at<'a>(stmts: &'a [StatementRow], w: &MigrationWait) -> Option<&'a StatementRow> {
    stmts
        .iter()
        .find(|s| w.start_ms >= s.start_ms - 5.0 && w.start_ms <= s.end_ms + 5.0)
}

#[allow(clippy::too_many_arguments)]
fn row(
    phase: &str,
    step: &str,
    relation: &str,
    locktype: &str,
    mode: &str,
    requested: f64,
    granted: Option<f64>,
    released: Option<f64>,
) -> LockRow {
    let wait = granted.map(|g| (g - requested).max(0.0)).unwrap_or(0.0);
    let held = match (granted, released) {
        (Some(g), Some(r)) => (r - g).max(0.0),
        _ => 0.0,
    };
    LockRow {
        phase: phase.to_string(),
        step: step.to_string(),
        relation: relation.to_string(),
        locktype: locktype.to_string(),
        mode: mode.to_string(),
        requested_ms: round3(requested),
        granted_ms: granted.map(round3),
        released_ms: released.map(round3),
        wait_ms: round3(wait),
        held_ms: round3(held),
        blocks: blocks_of(locktype, mode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::TxnLocks;

    fn stmt(start: f64, end: f64, outcome: &str) -> StatementRow {
        StatementRow {
            phase: "p".into(),
            step: "s".into(),
            attempt: 1,
            sql: "LOCK t".into(),
            start_ms: start,
            end_ms: end,
            duration_ms: end - start,
            outcome: outcome.into(),
            sqlstate: String::new(),
            rewrote: false,
            seq_scans: 0,
            wal_bytes: 0,
            file: String::new(),
            line: None,
        }
    }

    fn key(mode: &str) -> (String, String, String) {
        ("relation".into(), "t".into(), mode.into())
    }

    /// The migration waited for `mode` on t from `start_ms` to `end_ms`.
    fn wait(mode: &str, start_ms: f64, end_ms: f64) -> MigrationWait {
        MigrationWait {
            locktype: "relation".into(),
            relation: "t".into(),
            mode: mode.into(),
            start_ms,
            end_ms,
        }
    }

    #[test]
    fn uncontended_lock_is_held_from_send_to_commit() {
        let run = MigrationRun {
            statements: vec![stmt(100.0, 101.0, "ok"), stmt(101.5, 1601.5, "ok")],
            txns: vec![TxnLocks {
                phase: "p".into(),
                step: "s".into(),
                acquired: vec![(key("AccessExclusiveLock"), 0)],
                released_ms: 1602.0,
            }],
            pid: 7,
            ..Default::default()
        };
        let rows = lock_rows(&run, &Observations::default(), &HashMap::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].held_ms, 1502.0);
        assert_eq!(rows[0].wait_ms, 0.0);
        assert_eq!(rows[0].blocks, crate::record::Blocks::ReadsWrites);
    }

    #[test]
    fn a_wait_moves_the_grant_and_a_log_line_refines_it() {
        let run = MigrationRun {
            statements: vec![stmt(100.0, 600.0, "ok")],
            txns: vec![TxnLocks {
                phase: "p".into(),
                step: "s".into(),
                acquired: vec![(key("ShareLock"), 0)],
                released_ms: 700.0,
            }],
            pid: 7,
            ..Default::default()
        };
        let mut obs = Observations::default();
        obs.migration_waits.push(wait("ShareLock", 100.5, 503.0));
        let rows = lock_rows(&run, &obs, &HashMap::new());
        assert_eq!(rows[0].requested_ms, 100.5);
        assert_eq!(rows[0].granted_ms, Some(503.0));
        obs.log_acquired.push(LogAcquired {
            pid: 7,
            mode: "ShareLock".into(),
            relation_oid: Some(42),
            locktag: "relation 42 of database 5".into(),
            at_ms: 500.0,
            after_ms: 399.5,
        });
        let names = HashMap::from([(42u32, "t".to_string())]);
        let rows = lock_rows(&run, &obs, &names);
        assert_eq!(rows[0].granted_ms, Some(500.0));
        assert_eq!(rows[0].held_ms, 200.0);
        assert_eq!(rows[0].wait_ms, 399.5);
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
        let rows = lock_rows(&run, &obs, &HashMap::new());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].granted_ms, None);
        assert!((rows[0].wait_ms - 99.9).abs() < 1e-6);
        assert_eq!(rows[0].held_ms, 0.0);
    }
}
