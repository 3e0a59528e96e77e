//! Small hand-made run records for the analysis tests: a 4 s run with steady
//! traffic of two app versions, and builders for the rows a test adds. Each
//! finding's examples (a record that fires it, one that must not) are built
//! from these.

use crate::latency_hdr::{self, Entry, Span};
use crate::record::{
    ErrorRow, InflightRow, LatencyRow, LockRow, PhaseSpan, RunInfo, RunRecord, StatementRow,
    StepInfo, WaitCause, WaitRow,
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
        database: None,
        clients: 1,
        rate: None,
        window_ms: 100.0,
        traffic_started_ms: None,
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
        unattached_indexes: vec![],
        primary_keys: Default::default(),
        partition_keys: Default::default(),
        default_partitions: Default::default(),
        migrations: None,
        wal_attribution: None,
        wal_unavailable: None,
        sizes_method: None,
        size: None,
        replica: None,
        pg_version_cell: None,
        queries: Vec::new(),
        warnings: Vec::new(),
    }
}

/// The latencies (µs, count) of each window's 10 requests per app in
/// [`record`]: p50 1 ms, p99 and max 2 ms (exact in a histogram).
pub(crate) const STEADY: [(u64, u64); 3] = [(1000, 5), (1500, 4), (2000, 1)];

/// 40 windows of 100 ms, 10 requests each for app v1 and v2 (see
/// [`STEADY`]), no errors; one phase `p` from 1 s to 3 s. Its latency.hdr
/// segments follow run.json's phases and steps (see [`resegment`]).
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
                p99_us: 2000,
                max_us: 2000,
                service_p50_us: 900,
                service_p99_us: 1900,
            });
        }
    }
    resegment(&mut r);
    r
}

/// A latency.hdr segment of `query` × `app` over `[from, to)` holding
/// `values` (µs, count), `errors` of them failed; they also completed in
/// it.
pub(crate) fn segment_entry(
    query: &str,
    app: &str,
    (from_ms, to_ms): (f64, f64),
    values: &[(u64, u64)],
    errors: u64,
) -> Entry {
    let mut hist = latency_hdr::histogram();
    for (v, n) in values {
        let _ = hist.record_n(*v, *n);
    }
    Entry {
        span: Span::Segment {
            errors,
            completed: hist.len(),
            completed_errors: errors,
            unfinished: 0,
        },
        query: query.into(),
        app: app.into(),
        from_ms,
        to_ms,
        hist,
    }
}

/// Rebuild latency.hdr's segments of [`record`]'s steady traffic at
/// run.json's phase and step bounds (each window's requests in the segment
/// its start falls in: the tests put bounds at window edges).
pub(crate) fn resegment(r: &mut RunRecord) {
    let mut bounds: Vec<f64> = r
        .info
        .iter()
        .flat_map(|i| {
            i.phases
                .iter()
                .flat_map(|p| [p.start_ms, p.end_ms])
                .chain(i.steps.iter().flat_map(|s| [s.start_ms, s.end_ms]))
        })
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    let end = r.info.as_ref().map_or(4000.0, |i| i.end_ms);
    let mut edges = vec![0.0];
    edges.extend(bounds);
    edges.push(end);
    r.histograms.segments.clear();
    for seg in edges.windows(2) {
        for app in ["v1", "v2"] {
            let windows = r
                .latency
                .iter()
                .filter(|l| l.app == app && l.query == "q")
                .filter(|l| l.window_start_ms >= seg[0] && l.window_start_ms < seg[1])
                .count() as u64;
            if windows == 0 {
                continue;
            }
            let values: Vec<(u64, u64)> = STEADY.iter().map(|(v, n)| (*v, n * windows)).collect();
            r.histograms
                .segments
                .push(segment_entry("q", app, (seg[0], seg[1]), &values, 0));
        }
    }
}

/// Give step `step` its run.json span (as the executor marks it) and
/// segment the traffic there.
pub(crate) fn step_span(r: &mut RunRecord, step: &str, start_ms: f64, end_ms: f64) {
    let info = r.info.as_mut().expect("record() has run.json");
    info.steps.retain(|s| s.step != step);
    info.steps.push(StepInfo {
        start_ms,
        end_ms,
        ..step_info(step, None)
    });
    resegment(r);
}

/// steps.csv: step `step` of phase `p` from `start_ms` to `end_ms`, ended
/// `outcome`, every figure empty.
pub(crate) fn step_row(
    step: &str,
    (start_ms, end_ms): (f64, f64),
    outcome: &str,
) -> crate::record::StepRow {
    crate::record::StepRow {
        phase: "p".into(),
        step: step.into(),
        start_ms,
        end_ms,
        outcome: outcome.into(),
        rewrote: None,
        table_bytes_before: None,
        table_bytes_after: None,
        index_bytes_before: None,
        index_bytes_after: None,
        dead_tuples_after: None,
        wal_bytes: None,
        cluster_wal_bytes: None,
        unknown: String::new(),
    }
}

/// inflight.csv: app `app` at the end of the window from `window_start`,
/// `busy` of 8 connections, the oldest request in flight `oldest_ms` old.
pub(crate) fn inflight_row(app: &str, window_start: f64, busy: u32, oldest_ms: f64) -> InflightRow {
    InflightRow {
        window_start_ms: window_start,
        window_ms: 100.0,
        app: app.into(),
        connections: 8,
        busy,
        oldest_ms: Some(oldest_ms),
    }
}

/// latency.csv: `query` × `app` in the window from `window_start`, 5
/// requests, the slowest `max_us`.
pub(crate) fn latency_row(query: &str, app: &str, window_start: f64, max_us: u64) -> LatencyRow {
    LatencyRow {
        window_start_ms: window_start,
        window_ms: 100.0,
        query: query.into(),
        app: app.into(),
        count: 5,
        errors: 0,
        p50_us: max_us / 2,
        p95_us: max_us,
        p99_us: max_us,
        max_us,
        service_p50_us: 500,
        service_p99_us: 900,
    }
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
        rewrote: Some(false),
        seq_scans: Some(0),
        scanned: String::new(),
        wal_bytes: Some(0),
        cluster_wal_bytes: Some(0),
        unknown: String::new(),
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
        held_ms: Some(released - granted),
        blocks: crate::locks::blocks_of("relation", mode),
        source: "probe".into(),
        table: String::new(),
        blocked_by: String::new(),
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
        locktype: "relation".into(),
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
        lock_timeout_from: None,
        statement_timeout_from: None,
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
        due_ms: None,
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

/// CREATE INDEX on partitioned table m (step `idx`, 1000–1300 ms): SHARE on
/// its partitions m_2025 and m_2024 and on m itself, taken at 1001 and
/// released at 1300 together.
pub(crate) fn partitioned_index(r: &mut RunRecord) {
    let sql = "CREATE INDEX m_sensor ON m (sensor_id)";
    step_holding(r, "idx", sql, (1000.0, 1300.0), "ShareLock", 1001.0);
    r.locks.last_mut().expect("pushed").relation = "m_2025".into();
    for rel in ["m_2024", "m"] {
        r.locks
            .push(lock_on(rel, "idx", "ShareLock", 1001.0, 1300.0));
    }
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
