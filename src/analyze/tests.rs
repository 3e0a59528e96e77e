//! Findings and attribution, each kind with evidence that triggers it and
//! evidence that must not (in the style of eugene's hints).

use super::*;
use crate::record::{ErrorRow, PhaseSpan, RunInfo, StepInfo};

fn info() -> RunInfo {
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
    }
}

fn record() -> RunRecord {
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

fn stmt(step: &str, sql: &str, start: f64, end: f64) -> StatementRow {
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
    }
}

fn lock(step: &str, mode: &str, req: f64, granted: f64, released: f64) -> LockRow {
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

fn wait(start: f64, end: f64, cause: WaitCause) -> WaitRow {
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

fn step_info(step: &str, lock_timeout_ms: Option<f64>) -> StepInfo {
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
    }
}

fn kinds(a: &Analysis) -> Vec<FindingKind> {
    a.findings.iter().map(|f| f.kind).collect()
}

fn has(a: &Analysis, k: FindingKind) -> bool {
    kinds(a).contains(&k)
}

// --- blocking lock -------------------------------------------------------

#[test]
fn blocking_lock_held_long_is_a_finding() {
    let mut r = record();
    r.statements
        .push(stmt("idx", "CREATE INDEX i ON orders (c)", 1000.0, 1800.0));
    r.locks
        .push(lock("idx", "ShareLock", 1000.0, 1001.0, 1800.0));
    r.waits.push(wait(1100.0, 1800.0, WaitCause::Migration));
    let a = analyze(&r);
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::BlockingLock)
        .expect("finding");
    assert_eq!(f.step.as_deref(), Some("idx"));
    assert_eq!(f.relation.as_deref(), Some("orders"));
    assert!(f.seen.contains("799.0 ms"), "{}", f.seen);
    assert!(
        f.seen.contains("worst update_order (v1) 700.0 ms"),
        "{}",
        f.seen
    );
    assert!(
        f.safe_pattern.sql.contains("CONCURRENTLY"),
        "{}",
        f.safe_pattern.sql
    );
}

#[test]
fn short_or_non_blocking_locks_are_not() {
    let mut r = record();
    r.statements.push(stmt(
        "idx",
        "CREATE INDEX CONCURRENTLY i ON orders (c)",
        1000.0,
        1800.0,
    ));
    r.locks.push(lock(
        "idx",
        "ShareUpdateExclusiveLock",
        1000.0,
        1001.0,
        1800.0,
    ));
    r.statements.push(stmt(
        "col",
        "ALTER TABLE orders ADD COLUMN x int",
        2000.0,
        2005.0,
    ));
    r.locks
        .push(lock("col", "AccessExclusiveLock", 2000.0, 2001.0, 2005.0));
    let a = analyze(&r);
    assert!(!has(&a, FindingKind::BlockingLock), "{:?}", kinds(&a));
}

// --- rewrite / scan under ACCESS EXCLUSIVE ------------------------------

#[test]
fn rewrite_and_scan_under_access_exclusive_are_findings() {
    let mut r = record();
    let mut s = stmt(
        "type",
        "ALTER TABLE orders ALTER COLUMN total TYPE bigint",
        1000.0,
        1500.0,
    );
    s.rewrote = true;
    r.statements.push(s);
    r.locks
        .push(lock("type", "AccessExclusiveLock", 1000.0, 1000.5, 1500.0));
    let mut s = stmt(
        "nn",
        "ALTER TABLE orders ALTER COLUMN status SET NOT NULL",
        2000.0,
        2300.0,
    );
    s.seq_scans = 1;
    r.statements.push(s);
    r.locks
        .push(lock("nn", "AccessExclusiveLock", 2000.0, 2000.5, 2300.0));
    let a = analyze(&r);
    let rw = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::RewriteUnderAccessExclusive)
        .expect("rewrite");
    assert_eq!(rw.step.as_deref(), Some("type"));
    assert!(rw.seen.contains("rewrote"), "{}", rw.seen);
    let sc = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::ScanUnderAccessExclusive)
        .expect("scan");
    assert_eq!(sc.step.as_deref(), Some("nn"));
    assert!(
        sc.safe_pattern
            .sql
            .contains("CHECK (status IS NOT NULL) NOT VALID"),
        "{}",
        sc.safe_pattern.sql
    );
}

#[test]
fn scan_under_a_weaker_lock_is_not() {
    // VALIDATE CONSTRAINT scans under SHARE UPDATE EXCLUSIVE: the safe way.
    let mut r = record();
    let mut s = stmt(
        "validate",
        "ALTER TABLE orders VALIDATE CONSTRAINT c",
        1000.0,
        1500.0,
    );
    s.seq_scans = 1;
    r.statements.push(s);
    r.locks.push(lock(
        "validate",
        "ShareUpdateExclusiveLock",
        1000.0,
        1000.5,
        1500.0,
    ));
    // A rewrite in a step whose ACCESS EXCLUSIVE hold does not overlap it.
    let mut s = stmt("other", "UPDATE orders SET x = 1", 2000.0, 2100.0);
    s.rewrote = true;
    r.statements.push(s);
    r.locks
        .push(lock("other", "AccessExclusiveLock", 2500.0, 2500.5, 2502.0));
    let a = analyze(&r);
    assert!(
        !has(&a, FindingKind::ScanUnderAccessExclusive),
        "{:?}",
        kinds(&a)
    );
    assert!(
        !has(&a, FindingKind::RewriteUnderAccessExclusive),
        "{:?}",
        kinds(&a)
    );
}

// --- lock queue -----------------------------------------------------------

#[test]
fn queue_behind_a_pending_request_is_a_finding() {
    let mut r = record();
    r.statements.push(stmt(
        "col",
        "ALTER TABLE orders ADD COLUMN x int",
        1000.0,
        1304.0,
    ));
    r.locks
        .push(lock("col", "AccessExclusiveLock", 1000.0, 1300.0, 1304.0));
    r.waits
        .push(wait(1010.0, 1304.0, WaitCause::QueuedBehindMigration));
    r.waits
        .push(wait(1050.0, 1304.0, WaitCause::QueuedBehindMigration));
    r.info
        .as_mut()
        .unwrap()
        .steps
        .push(step_info("col", Some(2000.0)));
    let a = analyze(&r);
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::LockQueue)
        .expect("queue");
    assert_eq!(f.step.as_deref(), Some("col"));
    assert!(f.seen.contains("2 app queries"), "{}", f.seen);
    assert!(f.seen.contains("294.0 ms"), "{}", f.seen);
    assert!(f.seen.contains("waited 300.0 ms"), "{}", f.seen);
    assert!(
        f.safe_pattern.sql.contains("lock_timeout"),
        "{}",
        f.safe_pattern.sql
    );
    assert_eq!(a.steps[0].app_waits, 2);
}

#[test]
fn waits_on_the_held_lock_or_between_apps_are_no_queue() {
    let mut r = record();
    r.statements.push(stmt(
        "col",
        "ALTER TABLE orders ADD COLUMN x int",
        1000.0,
        1004.0,
    ));
    r.locks
        .push(lock("col", "AccessExclusiveLock", 1000.0, 1000.5, 1004.0));
    r.waits.push(wait(1001.0, 1004.0, WaitCause::Migration));
    r.waits.push(wait(3000.0, 3050.0, WaitCause::App));
    let a = analyze(&r);
    assert!(!has(&a, FindingKind::LockQueue), "{:?}", kinds(&a));
    // The app-vs-app wait is charged to no step.
    assert_eq!(a.steps[0].app_waits, 1);
}

// --- no lock_timeout -------------------------------------------------------

#[test]
fn blocking_step_without_lock_timeout_is_a_finding() {
    let mut r = record();
    r.statements.push(stmt(
        "col",
        "ALTER TABLE orders ADD COLUMN x int",
        1000.0,
        1004.0,
    ));
    r.locks
        .push(lock("col", "AccessExclusiveLock", 1000.0, 1000.5, 1004.0));
    r.info.as_mut().unwrap().steps.push(step_info("col", None));
    let a = analyze(&r);
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::NoLockTimeout)
        .expect("finding");
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.seen.contains("AccessExclusiveLock on orders"),
        "{}",
        f.seen
    );
}

#[test]
fn lock_timeout_set_or_proven_or_non_blocking_is_fine() {
    // Set in the plan.
    let mut r = record();
    r.statements.push(stmt(
        "col",
        "ALTER TABLE orders ADD COLUMN x int",
        1000.0,
        1004.0,
    ));
    r.locks
        .push(lock("col", "AccessExclusiveLock", 1000.0, 1000.5, 1004.0));
    r.info
        .as_mut()
        .unwrap()
        .steps
        .push(step_info("col", Some(2000.0)));
    assert!(!has(&analyze(&r), FindingKind::NoLockTimeout));
    // Not recorded, but a 55P03 attempt proves one was set.
    let mut r = record();
    let mut s = stmt("col", "ALTER TABLE orders ADD COLUMN x int", 900.0, 950.0);
    s.outcome = "lock_timeout".into();
    s.sqlstate = "55P03".into();
    r.statements.push(s);
    let mut s = stmt("col", "ALTER TABLE orders ADD COLUMN x int", 1000.0, 1004.0);
    s.attempt = 2;
    r.statements.push(s);
    r.locks
        .push(lock("col", "AccessExclusiveLock", 1000.0, 1000.5, 1004.0));
    let a = analyze(&r);
    assert!(!has(&a, FindingKind::NoLockTimeout), "{:?}", kinds(&a));
    assert_eq!(a.steps[0].attempts, 2);
    assert_eq!(a.steps[0].outcome, "ok");
    // Non-blocking lock.
    let mut r = record();
    r.statements.push(stmt(
        "v",
        "ALTER TABLE orders VALIDATE CONSTRAINT c",
        1000.0,
        1100.0,
    ));
    r.locks.push(lock(
        "v",
        "ShareUpdateExclusiveLock",
        1000.0,
        1000.5,
        1100.0,
    ));
    r.info.as_mut().unwrap().steps.push(step_info("v", None));
    assert!(!has(&analyze(&r), FindingKind::NoLockTimeout));
}

// --- app errors per app version -----------------------------------------

fn error(t: f64, app: &str, code: &str) -> ErrorRow {
    ErrorRow {
        t_ms: t,
        query: "read_order".into(),
        app: app.into(),
        sqlstate: code.into(),
        message: "column \"note\" does not exist".into(),
    }
}

#[test]
fn schema_incompatibility_is_reported_per_app_version() {
    let mut r = record();
    r.statements.push(stmt(
        "drop",
        "ALTER TABLE orders DROP COLUMN note",
        1000.0,
        1010.0,
    ));
    r.errors.push(error(1500.0, "v1", "42703"));
    r.errors.push(error(1600.0, "v1", "42703"));
    let a = analyze(&r);
    let f: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::AppErrors)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].severity, Severity::Critical);
    assert!(
        f[0].title
            .contains("App v1: 2 error(s), schema incompatibility"),
        "{}",
        f[0].title
    );
    assert!(f[0].seen.contains("42703"), "{}", f[0].seen);
    assert_eq!(f[0].phase.as_deref(), Some("p"));
    assert!(f[0].safe_pattern.advice.contains("Expand/contract"));
    assert_eq!(
        a.apps
            .iter()
            .find(|x| x.app == "v2")
            .unwrap()
            .errors_by_sqlstate
            .len(),
        0
    );
}

#[test]
fn no_errors_no_finding() {
    let mut r = record();
    r.statements.push(stmt(
        "drop",
        "ALTER TABLE orders DROP COLUMN note",
        1000.0,
        1010.0,
    ));
    assert!(!has(&analyze(&r), FindingKind::AppErrors));
}

// --- invalid index ---------------------------------------------------------

#[test]
fn invalid_index_left_by_a_failed_concurrently_is_a_finding() {
    let mut r = record();
    let mut s = stmt(
        "idx",
        "CREATE UNIQUE INDEX CONCURRENTLY idx_u ON orders (c)",
        1000.0,
        1500.0,
    );
    s.outcome = "error".into();
    s.sqlstate = "23505".into();
    r.statements.push(s);
    r.info
        .as_mut()
        .unwrap()
        .invalid_indexes
        .push("idx_u".into());
    let a = analyze(&r);
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::InvalidIndex)
        .expect("finding");
    assert_eq!(f.step.as_deref(), Some("idx"));
    assert!(f.seen.contains("ended error 23505"), "{}", f.seen);
    assert!(
        f.safe_pattern
            .sql
            .starts_with("DROP INDEX CONCURRENTLY IF EXISTS idx_u;"),
        "{}",
        f.safe_pattern.sql
    );
}

#[test]
fn valid_indexes_are_fine() {
    let mut r = record();
    r.statements.push(stmt(
        "idx",
        "CREATE UNIQUE INDEX CONCURRENTLY idx_u ON orders (c)",
        1000.0,
        1500.0,
    ));
    assert!(!has(&analyze(&r), FindingKind::InvalidIndex));
}

// --- WAL volume --------------------------------------------------------------

#[test]
fn wal_heavy_step_is_a_finding_and_a_light_one_is_not() {
    let mut r = record();
    let mut s = stmt(
        "backfill",
        "UPDATE orders SET s2 = s WHERE id > 0 AND id <= 10000",
        1000.0,
        3000.0,
    );
    s.wal_bytes = 64 * 1024 * 1024;
    r.statements.push(s);
    let mut s = stmt(
        "small",
        "ALTER TABLE orders ADD COLUMN y int",
        3100.0,
        3101.0,
    );
    s.wal_bytes = 4096;
    r.statements.push(s);
    let a = analyze(&r);
    let f: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::WalVolume)
        .collect();
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].step.as_deref(), Some("backfill"));
    assert!(
        f[0].seen.contains("64.0 MiB of WAL in 2.0 s (32.0 MiB/s"),
        "{}",
        f[0].seen
    );
}

// --- facts, periods, attribution ---------------------------------------------

#[test]
fn periods_split_at_the_migration_span() {
    let mut r = record();
    r.statements.push(stmt("s", "SELECT 1", 1000.0, 2000.0));
    let a = analyze(&r);
    let m = a.migration.unwrap();
    assert_eq!(
        (m.start_ms, m.end_ms, m.duration_ms),
        (1000.0, 2000.0, 1000.0)
    );
    assert_eq!(a.before.requests, 10 * 2 * 10);
    assert_eq!(a.during.requests, 10 * 2 * 10);
    assert_eq!(a.after.requests, 20 * 2 * 10);
    assert_eq!(a.during.p99_ms, Some(3.0));
    assert_eq!(a.during.qps, 200.0);
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
    let a = analyze(&r);
    assert_eq!(a.steps[0].app_waits, 1);
    assert_eq!(a.steps[1].app_waits, 1);
    assert_eq!(a.steps[1].worst_app_wait.as_ref().unwrap().wait_ms, 750.0);
    assert_eq!(
        a.steps[0].strongest_lock.as_ref().unwrap().mode,
        "AccessExclusiveLock"
    );
    assert_eq!(
        a.steps[1].longest_blocking_lock.as_ref().unwrap().held_ms,
        800.0
    );
}

#[test]
fn budgets_name_limit_measured_and_step() {
    let mut r = record();
    r.statements
        .push(stmt("b", "CREATE INDEX i ON orders (c)", 1200.0, 2000.0));
    r.locks.push(lock("b", "ShareLock", 1200.0, 1200.0, 2000.0));
    r.waits.push(wait(1250.0, 1900.0, WaitCause::Migration));
    let opts = AnalyzeOptions {
        budget_overrides: vec![
            ("max_blocking_lock_ms".into(), 500.0),
            ("max_app_wait_ms".into(), 1000.0),
        ],
        ..Default::default()
    };
    let a = analyze_with(&r, &opts).unwrap();
    assert!(!a.passed());
    let b: Vec<_> = a.breached().collect();
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].name, "max_blocking_lock_ms");
    assert_eq!((b[0].limit, b[0].measured), (500.0, 800.0));
    assert_eq!(b[0].step.as_deref(), Some("p / b"));
    let w = a
        .budgets
        .iter()
        .find(|x| x.name == "max_app_wait_ms")
        .unwrap();
    assert!(w.passed);
    assert_eq!(w.measured, 650.0);
    assert_eq!(w.step.as_deref(), Some("p / b"));
    let bad = AnalyzeOptions {
        budget_overrides: vec![("nope".into(), 1.0)],
        ..Default::default()
    };
    assert!(analyze_with(&r, &bad).unwrap_err().contains("known keys"));
}

#[test]
fn locks_on_relations_the_step_creates_block_nobody() {
    let mut r = record();
    r.statements.push(stmt(
        "idx",
        "CREATE INDEX idx_new ON orders (c)",
        1000.0,
        1800.0,
    ));
    r.locks
        .push(lock("idx", "ShareLock", 1000.0, 1001.0, 1800.0));
    let mut on_new = lock("idx", "AccessExclusiveLock", 1000.0, 1001.0, 1800.0);
    on_new.relation = "public.idx_new".into();
    r.locks.push(on_new);
    let a = analyze(&r);
    let blocking: Vec<_> = a
        .findings
        .iter()
        .filter(|f| f.kind == FindingKind::BlockingLock)
        .collect();
    assert_eq!(blocking.len(), 1, "{blocking:?}");
    assert_eq!(blocking[0].relation.as_deref(), Some("orders"));
    assert_eq!(
        a.steps[0].longest_blocking_lock.as_ref().unwrap().relation,
        "orders"
    );
    // The strongest lock reported is the one others feel.
    assert_eq!(
        a.steps[0].strongest_lock.as_ref().unwrap().relation,
        "orders"
    );
}

#[test]
fn a_single_statement_retry_counts_once() {
    // transaction = false: statement 2 timed out once and succeeded on retry.
    let mut r = record();
    r.statements.push(stmt("s", "SET x", 1000.0, 1001.0));
    let mut t = stmt("s", "ALTER TABLE orders ADD COLUMN y int", 1001.0, 1101.0);
    t.outcome = "lock_timeout".into();
    t.sqlstate = "55P03".into();
    r.statements.push(t);
    let mut ok = stmt("s", "ALTER TABLE orders ADD COLUMN y int", 1200.0, 1201.0);
    ok.attempt = 2;
    r.statements.push(ok);
    let a = analyze(&r);
    let st = &a.steps[0];
    assert_eq!(
        (st.statements, st.attempts, st.outcome.as_str()),
        (2, 2, "ok")
    );
    assert_eq!(st.sql, ["SET x", "ALTER TABLE orders ADD COLUMN y int"]);
}

#[test]
fn a_prepared_select_star_broken_by_add_column_is_a_schema_incompatibility() {
    let mut r = record();
    r.statements.push(stmt(
        "col",
        "ALTER TABLE orders ADD COLUMN note text",
        1000.0,
        1020.0,
    ));
    r.statements
        .push(stmt("later", "ANALYZE orders", 2000.0, 2300.0));
    r.info.as_mut().unwrap().budget.max_errors = Some(0);
    // v2 goes live later: its first error falls in the ANALYZE step.
    let mut e = error(2050.0, "v2", "0A000");
    e.message = "cached plan must not change result type".into();
    r.errors.push(e);
    for t in [1030.0, 1500.0, 2100.0, 2200.0] {
        let mut e = error(t, "v1", "0A000");
        e.message = "cached plan must not change result type".into();
        r.errors.push(e);
    }
    let a = analyze(&r);
    let v2 = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::AppErrors && f.title.contains("v2"))
        .expect("v2");
    assert_eq!(v2.step.as_deref(), Some("col"), "{v2:?}");
    let b = a.budgets.iter().find(|b| b.name == "max_errors").unwrap();
    assert_eq!((b.measured, b.step.as_deref()), (5.0, Some("p / col")));
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::AppErrors && f.title.contains("v1"))
        .expect("finding");
    assert_eq!(f.severity, Severity::Critical);
    assert!(f.title.contains("schema incompatibility"), "{}", f.title);
    // Charged to the step that changed the schema, not where most errors fell.
    assert_eq!(f.step.as_deref(), Some("col"));
    assert!(
        f.seen.contains("the first 10.0 ms after p / col finished"),
        "{}",
        f.seen
    );
    assert!(
        f.safe_pattern.advice.contains("re-prepare"),
        "{}",
        f.safe_pattern.advice
    );
}

#[test]
fn queue_time_behind_a_pending_request_excludes_the_hold() {
    // The request pends 5 ms; the queued writes then wait 600 ms on the hold.
    let mut r = record();
    r.statements
        .push(stmt("idx", "CREATE INDEX i ON orders (c)", 1000.0, 1605.0));
    r.locks
        .push(lock("idx", "ShareLock", 1000.0, 1005.0, 1605.0));
    r.waits
        .push(wait(1001.0, 1605.0, WaitCause::QueuedBehindMigration));
    let a = analyze(&r);
    let f = a
        .findings
        .iter()
        .find(|f| f.kind == FindingKind::LockQueue)
        .expect("queue");
    assert_eq!(f.severity, Severity::Warning);
    assert!(
        f.seen
            .contains("up to 4.0 ms behind the step's pending lock request"),
        "{}",
        f.seen
    );
    assert!(
        f.seen
            .contains("(604.0 ms in all, the rest behind the granted lock)"),
        "{}",
        f.seen
    );
}

#[test]
fn scan_while_holding_access_exclusive_on_the_new_index_is_not_a_finding() {
    // CREATE INDEX holds ACCESS EXCLUSIVE on the index it builds; nobody can
    // see that index, and the table scan happens under SHARE.
    let mut r = record();
    let mut s = stmt("idx", "CREATE INDEX idx_new ON orders (c)", 1000.0, 1600.0);
    s.seq_scans = 1;
    r.statements.push(s);
    r.locks
        .push(lock("idx", "ShareLock", 1000.0, 1000.5, 1600.0));
    let mut on_new = lock("idx", "AccessExclusiveLock", 1000.0, 1000.0, 1600.0);
    on_new.relation = "idx_new".into();
    r.locks.push(on_new);
    let a = analyze(&r);
    assert!(
        !has(&a, FindingKind::ScanUnderAccessExclusive),
        "{:?}",
        kinds(&a)
    );
}

#[test]
fn a_relation_known_only_by_oid_blocks_nobody() {
    // CREATE INDEX CONCURRENTLY: the index being built shows up in pg_locks
    // under an OID the observer cannot name.
    let mut r = record();
    r.statements.push(stmt(
        "cic",
        "CREATE INDEX CONCURRENTLY i ON orders (c)",
        1000.0,
        2000.0,
    ));
    r.locks.push(lock(
        "cic",
        "ShareUpdateExclusiveLock",
        1000.0,
        1000.5,
        2000.0,
    ));
    let mut by_oid = lock("cic", "AccessExclusiveLock", 1000.0, 1000.0, 2000.0);
    by_oid.relation = "18171".into();
    r.locks.push(by_oid);
    let a = analyze(&r);
    assert!(!has(&a, FindingKind::BlockingLock), "{:?}", kinds(&a));
    assert!(a.steps[0].longest_blocking_lock.is_none());
    assert_eq!(
        a.steps[0].strongest_lock.as_ref().unwrap().mode,
        "ShareUpdateExclusiveLock"
    );
}
