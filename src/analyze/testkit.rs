//! Small hand-made run records for the analysis tests: a 4 s run with steady
//! traffic of two app versions, and builders for the rows a test adds. Each
//! finding's examples (a record that fires it, one that must not) are built
//! from these.

use crate::record::{
    ErrorRow, LatencyRow, LockRow, PhaseSpan, RunInfo, RunRecord, StatementRow, StepInfo,
    WaitCause, WaitRow,
};
use crate::scenario::Budget;

pub(crate) fn info() -> RunInfo {
    RunInfo {
        scenario: "t".into(),
        scenario_file: "t.toml".into(),
        scenario_hash: "0".into(),
        description: None,
        pair: None,
        variant: None,
        tool_version: "0".into(),
        started_at: "2026-01-01T00:00:00Z".into(),
        backend: "local".into(),
        target: "local".into(),
        postgres_version: "15".into(),
        server_version_num: 150000,
        settings: vec![],
        seed: 1,
        rows: vec![("orders".into(), 1000)],
        seed_ms: 1.0,
        clients: 1,
        rate: None,
        window_ms: 100.0,
        phases: vec![PhaseSpan {
            name: "p".into(),
            apps: vec!["v1".into(), "v2".into()],
            start_ms: 1000.0,
            end_ms: 3000.0,
        }],
        budget: Budget::default(),
        lock_precision_ms: 1.0,
        failure: None,
        end_ms: 4000.0,
        steps: vec![],
        invalid_indexes: vec![],
        migrations: None,
    }
}

/// 40 windows of 100 ms, 10 requests each for app v1 and v2, no errors;
/// one phase `p` from 1 s to 3 s.
pub(crate) fn record() -> RunRecord {
    let mut r = RunRecord {
        info: Some(info()),
        ..Default::default()
    };
    for k in 0..40 {
        for app in ["v1", "v2"] {
            r.latency.push(LatencyRow {
                window_start_ms: k as f64 * 100.0,
                window_ms: 100.0,
                query: "q".into(),
                app: app.into(),
                count: 10,
                errors: 0,
                p50_us: 1000,
                p95_us: 2000,
                p99_us: 3000,
                max_us: 4000,
                service_p50_us: 900,
                service_p99_us: 2500,
            });
        }
    }
    r
}

/// A statement of step `step` in phase `p` that ended ok.
pub(crate) fn stmt(step: &str, sql: &str, start: f64, end: f64) -> StatementRow {
    StatementRow {
        phase: "p".into(),
        step: step.into(),
        attempt: 1,
        sql: sql.into(),
        start_ms: start,
        end_ms: end,
        duration_ms: end - start,
        outcome: "ok".into(),
        sqlstate: String::new(),
        rewrote: false,
        seq_scans: 0,
        wal_bytes: 0,
        file: String::new(),
        line: None,
    }
}

/// A relation lock on `orders` taken by step `step`.
pub(crate) fn lock(step: &str, mode: &str, req: f64, granted: f64, released: f64) -> LockRow {
    LockRow {
        phase: "p".into(),
        step: step.into(),
        relation: "orders".into(),
        locktype: "relation".into(),
        mode: mode.into(),
        requested_ms: req,
        granted_ms: Some(granted),
        released_ms: Some(released),
        wait_ms: granted - req,
        held_ms: released - granted,
        blocks: crate::locks::blocks_of("relation", mode),
    }
}

/// An app write (`update_order`, v1) waiting on `orders`.
pub(crate) fn wait(start: f64, end: f64, cause: WaitCause) -> WaitRow {
    WaitRow {
        query: "update_order".into(),
        app: "v1".into(),
        pid: 7,
        relation: "orders".into(),
        mode: "RowExclusiveLock".into(),
        start_ms: start,
        end_ms: end,
        wait_ms: end - start,
        blocked_by: "m:1".into(),
        cause,
    }
}

/// run.json's record of step `step`, with its lock_timeout.
pub(crate) fn step_info(step: &str, lock_timeout_ms: Option<f64>) -> StepInfo {
    StepInfo {
        phase: "p".into(),
        step: step.into(),
        start_ms: 0.0,
        end_ms: 0.0,
        transaction: true,
        lock_timeout_ms,
        statement_timeout_ms: None,
        retries: 0,
        attempts: 1,
        backfill: false,
        outcome: "ok".into(),
        file: None,
        segments: Vec::new(),
    }
}

/// An app error of `read_order` (a missing column by default).
pub(crate) fn error(t: f64, app: &str, code: &str) -> ErrorRow {
    ErrorRow {
        t_ms: t,
        query: "read_order".into(),
        app: app.into(),
        sqlstate: code.into(),
        message: "column \"note\" does not exist".into(),
    }
}

/// [`record`] with one step of one statement that took no lock.
pub(crate) fn one_statement(step: &str, sql: &str, start: f64, end: f64) -> RunRecord {
    let mut r = record();
    r.statements.push(stmt(step, sql, start, end));
    r
}

/// Adds a step of one statement, `sql` from `start` to `end`, holding `mode`
/// on orders from `granted` until `end`; returns the statement to adjust.
pub(crate) fn step_holding<'r>(
    r: &'r mut RunRecord,
    step: &str,
    sql: &str,
    (start, end): (f64, f64),
    mode: &str,
    granted: f64,
) -> &'r mut StatementRow {
    r.locks.push(lock(step, mode, start, granted, end));
    r.statements.push(stmt(step, sql, start, end));
    r.statements.last_mut().expect("pushed")
}

/// ADD COLUMN note (step `col`, 1000–1020 ms) breaks the apps' prepared
/// `SELECT *` ("cached plan must not change result type", 0A000): v1 gets
/// four errors from 1030 ms on, v2 one at 2050 ms, during a later ANALYZE.
pub(crate) fn broken_prepared_statements() -> RunRecord {
    let sql = "ALTER TABLE orders ADD COLUMN note text";
    let mut r = one_statement("col", sql, 1000.0, 1020.0);
    r.statements
        .push(stmt("later", "ANALYZE orders", 2000.0, 2300.0));
    for (t, app) in [
        (1030.0, "v1"),
        (1500.0, "v1"),
        (2050.0, "v2"),
        (2100.0, "v1"),
        (2200.0, "v1"),
    ] {
        let mut e = error(t, app, "0A000");
        e.message = "cached plan must not change result type".into();
        r.errors.push(e);
    }
    r
}

/// A lock of step `step` on relation `rel` (not orders), granted when
/// requested.
pub(crate) fn lock_on(rel: &str, step: &str, mode: &str, granted: f64, released: f64) -> LockRow {
    LockRow {
        relation: rel.into(),
        ..lock(step, mode, granted, granted, released)
    }
}
