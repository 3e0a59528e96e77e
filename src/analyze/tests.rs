//! The analysis end to end: periods, budgets, and the finding registry
//! (every rule fires on its own example and stays quiet on the other).

use super::findings::{EXAMPLES, RULES};
use super::testkit::{broken_prepared_statements, lock, record, step_span, stmt, wait};
use super::*;
use crate::record::WaitCause;

#[test]
fn periods_split_at_the_steps_spans() {
    let mut r = record();
    r.statements.push(stmt("s", "SELECT 1", 1000.5, 1999.0));
    // run.json's span of the step (BEGIN to COMMIT) is what latency uses.
    step_span(&mut r, "s", 1000.0, 2000.0);
    let a = analyze(&r);
    let m = a.migration.unwrap();
    assert_eq!(
        (m.start_ms, m.end_ms, m.duration_ms),
        (1000.5, 1999.0, 998.5)
    );
    assert_eq!(a.before.requests, 10 * 2 * 10);
    assert_eq!(a.during.requests, 10 * 2 * 10);
    assert_eq!(a.after.requests, 20 * 2 * 10);
    assert_eq!((a.during.start_ms, a.during.end_ms), (1000.0, 2000.0));
    assert_eq!(a.during.p99_ms, Some(2.0));
    assert_eq!(a.during.p50_ms, Some(1.0));
    assert_eq!(a.during.qps, 200.0);
    assert_eq!(a.steps[0].latency, a.during);
    // The phase (1 s to 3 s) is the step's segment and the one after it.
    assert_eq!(a.phases[0].latency.requests, 20 * 2 * 10);
    assert_eq!(a.apps.iter().map(|x| x.latency.requests).sum::<u64>(), 800);
}

#[test]
fn before_runs_from_when_the_traffic_began() {
    // Traffic began at 500 ms (its connections took that long): the 10
    // windows' requests before the step at 1000 ms were due in 500 ms, not
    // in a second.
    let mut r = record();
    r.statements.push(stmt("s", "SELECT 1", 1000.0, 1010.0));
    step_span(&mut r, "s", 1000.0, 1010.0);
    let without = analyze(&r).before;
    r.info.as_mut().unwrap().traffic_started_ms = Some(500.0);
    let with = analyze(&r).before;
    assert_eq!((without.start_ms, with.start_ms), (0.0, 500.0));
    assert_eq!(with.requests, without.requests);
    assert_eq!(with.qps, 2.0 * without.qps);
}

#[test]
fn a_step_lasts_until_its_commit_released_its_locks() {
    // The UPDATE's result came at 1900 ms; its COMMIT, flushing the WAL it
    // wrote, released the lock at 1920 ms: the step (and the migration)
    // lasted until then, as the hold did.
    let mut r = record();
    r.statements
        .push(stmt("s", "UPDATE orders SET c = 1", 1000.0, 1900.0));
    r.locks
        .push(lock("s", "RowExclusiveLock", 1000.0, 1000.0, 1920.0));
    let a = analyze(&r);
    assert_eq!((a.steps[0].end_ms, a.steps[0].duration_ms), (1920.0, 920.0));
    assert_eq!(a.migration.unwrap().duration_ms, 920.0);
}

#[test]
fn a_step_still_slow_when_the_next_began_breaches_recovery_only_past_the_limit() {
    // Step a (1000–1010) leaves the app slow until step b (1300–1310)
    // begins, and b's slowdown lasts to 1600; then the app is back.
    let mut r = record();
    for (step, from, to) in [("a", 1000.0, 1010.0), ("b", 1300.0, 1310.0)] {
        r.statements.push(stmt(step, "SELECT 1", from, to));
        step_span(&mut r, step, from, to);
    }
    r.histograms.windows = (10..40)
        .map(|k| {
            let p99_us = if (10..16).contains(&k) {
                900_000
            } else {
                2_000
            };
            crate::latency_hdr::WindowFigures {
                from_ms: k as f64 * 100.0,
                to_ms: (k + 1) as f64 * 100.0,
                query: None,
                count: 20,
                p50_us: 1_000,
                p99_us,
                max_us: p99_us,
            }
        })
        .collect();
    let mut recovery = |limit: f64| {
        r.info.as_mut().unwrap().budget.max_recovery_ms = Some(limit);
        let a = analyze(&r);
        let st: Vec<_> = a
            .steps
            .iter()
            .map(|s| (s.recovery.state, s.recovery.recovery_ms))
            .collect();
        assert_eq!(
            st,
            [
                (RecoveryState::NextStepBegan, None),
                (RecoveryState::Recovered, Some(290.0))
            ]
        );
        a.budgets
            .into_iter()
            .find(|b| b.name == "max_recovery_ms")
            .unwrap()
    };
    // 290 ms from a's end to b's start: over a 200 ms limit, a's breach.
    let b = recovery(200.0);
    assert!(!b.passed && b.step.as_deref() == Some("p / a"), "{b:?}");
    assert!(
        b.detail
            .contains("when the next step began, 290.0 ms after"),
        "{b:?}"
    );
    // Under a 300 ms limit, a is not known to have breached it; b's 290 ms
    // recovery is the slowest.
    let b = recovery(300.0);
    assert!(
        b.passed && b.step.as_deref() == Some("p / b") && b.measured == Some(290.0),
        "{b:?}"
    );
}

/// A step still slow when the run ended, sooner after it than the limit:
/// no recovery time was measured, and none is shown as a breach "under"
/// its limit (QA: `max_recovery_ms: FAIL 19.6 ms > limit 2000.0 ms` for a
/// run cut short 19.6 ms after its step). A finished run cannot show the
/// limit held (a breach, not measured); one that did not finish leaves it
/// open; past the limit it is a breach measured either way.
#[test]
fn a_step_not_recovered_when_the_run_ended_sooner_than_the_limit_is_not_measured() {
    let mut r = record();
    r.statements.push(stmt("s", "SELECT 1", 3900.0, 3980.4));
    step_span(&mut r, "s", 3900.0, 3980.4);
    r.histograms.windows = vec![crate::latency_hdr::WindowFigures {
        from_ms: 3900.0,
        to_ms: 4000.0,
        query: None,
        count: 20,
        p50_us: 1_000,
        p99_us: 900_000,
        max_us: 900_000,
    }];
    let mut recovery = |limit: f64, failure: Option<&str>| {
        let info = r.info.as_mut().unwrap();
        info.budget.max_recovery_ms = Some(limit);
        info.failure = failure.map(str::to_string);
        let a = analyze(&r);
        // A run that did not finish stopped before the step could recover.
        let state = match failure {
            None => RecoveryState::NotRecovered,
            Some(_) => RecoveryState::RunStopped,
        };
        assert_eq!(a.steps[0].recovery.state, state);
        let b = a
            .budgets
            .iter()
            .find(|b| b.name == "max_recovery_ms")
            .unwrap()
            .clone();
        (b, crate::report::text_summary(&a))
    };
    let (b, text) = recovery(2000.0, None);
    assert_eq!((b.passed, b.measured), (false, None), "{b:?}");
    assert!(
        b.detail
            .contains("19.6 ms after the step ended: too soon to tell"),
        "{b:?}"
    );
    assert!(!text.contains("19.6 ms >"), "{text}");
    let (b, text) = recovery(2000.0, Some("the server stopped answering"));
    assert_eq!((b.passed, b.measured), (true, None), "{b:?}");
    assert!(
        text.contains("budget max_recovery_ms: n/a  not measured: the run did not finish"),
        "{text}"
    );
    assert!(
        text.contains("recovery: not measured: the run stopped first"),
        "{text}"
    );
    for failure in [None, Some("the server stopped answering")] {
        let (b, _) = recovery(10.0, failure);
        assert_eq!((b.passed, b.measured), (false, Some(19.6)), "{b:?}");
    }
}

/// A server sample with the replica `bytes` / `ms` behind.
fn lag(t_ms: f64, bytes: u64, ms: f64) -> crate::record::ServerRow {
    crate::record::ServerRow {
        t_ms,
        wal_bytes: 0,
        dead_tuples: 0,
        table_bytes: 0,
        replica_lag_bytes: Some(bytes),
        replica_lag_ms: Some(ms),
        waiting_backends: 0,
    }
}

#[test]
fn replica_lag_peaks_per_step_until_the_next_step_and_feeds_its_budget() {
    let mut r = record();
    r.statements
        .push(stmt("a", "ALTER TABLE orders ADD c int", 1000.0, 1100.0));
    r.statements
        .push(stmt("b", "UPDATE orders SET c = 1", 1200.0, 1500.0));
    r.statements.push(stmt("c", "SELECT 1", 2500.0, 2510.0));
    r.server = vec![
        lag(1050.0, 100, 2.0),
        lag(1300.0, 8_000_000, 40.0),
        // After `b` ended, before `c` started: still `b`'s lag.
        lag(1800.0, 2_000_000, 95.5),
        lag(2600.0, 0, 0.0),
    ];
    let opts = AnalyzeOptions {
        budget_overrides: vec![("max_replica_lag_ms".into(), 50.0)],
        ..Default::default()
    };
    let a = analyze_with(&r, &opts).unwrap();
    let peaks: Vec<_> = a
        .steps
        .iter()
        .map(|s| s.replica_lag.map(|l| (l.peak_ms, l.peak_bytes)))
        .collect();
    assert_eq!(
        peaks,
        [
            Some((Some(2.0), Some(100))),
            Some((Some(95.5), Some(8_000_000))),
            Some((Some(0.0), Some(0))),
        ]
    );
    assert_eq!(a.replica_lag.unwrap().peak_ms, Some(95.5));
    let b = &a.budgets[0];
    assert_eq!(b.name, "max_replica_lag_ms");
    assert!(!b.passed);
    assert_eq!((b.limit, b.measured), (50.0, Some(95.5)));
    assert_eq!(b.step.as_deref(), Some("p / b"));
    assert!(b.detail.contains("95.5 ms"), "{}", b.detail);
}

#[test]
fn a_replica_lag_budget_without_a_replica_is_a_breach_that_says_why() {
    let mut r = record();
    r.statements.push(stmt("a", "SELECT 1", 1000.0, 1100.0));
    let opts = AnalyzeOptions {
        budget_overrides: vec![("max_replica_lag_ms".into(), 1000.0)],
        ..Default::default()
    };
    let a = analyze_with(&r, &opts).unwrap();
    assert!(a.steps[0].replica_lag.is_none());
    let b = &a.budgets[0];
    assert!(!b.passed);
    assert_eq!(b.measured, None, "not measured, not 0");
    assert_eq!(
        crate::report::format::breach(b, false),
        "max_replica_lag_ms not measured against 1000.0 ms"
    );
    assert!(
        b.detail.contains("no replica lag was sampled"),
        "{}",
        b.detail
    );
}

/// No request completed while the migration ran: a p99 budget holds when
/// none was in flight either, and is breached by the age of one stuck in
/// flight (an overloaded app's backlog); 0 errors of 0 requests is no rate.
#[test]
fn a_p99_budget_with_requests_stuck_in_flight_is_not_unmeasured() {
    let mut r = record();
    r.statements
        .push(stmt("a", "LOCK TABLE orders", 1000.0, 1500.0));
    let opts = AnalyzeOptions {
        budget_overrides: vec![("p99_ms".into(), 50.0), ("max_error_rate".into(), 0.01)],
        ..Default::default()
    };
    let budget = |a: &super::Analysis, name: &str| {
        a.budgets.iter().find(|b| b.name == name).unwrap().clone()
    };
    let a = analyze_with(&r, &opts).unwrap();
    assert_eq!(a.during.requests, 0, "{:?}", a.during);
    let p99 = budget(&a, "p99_ms");
    assert_eq!((p99.measured, p99.passed), (None, true), "{p99:?}");
    let rate = budget(&a, "max_error_rate");
    assert_eq!((rate.measured, rate.passed), (None, true), "{rate:?}");
    r.inflight = (0..5)
        .map(|i| {
            super::testkit::inflight_row(
                "v1",
                1000.0 + 100.0 * i as f64,
                8,
                900.0 + 100.0 * i as f64,
            )
        })
        .collect();
    let a = analyze_with(&r, &opts).unwrap();
    let p99 = budget(&a, "p99_ms");
    assert_eq!((p99.measured, p99.passed), (Some(1300.0), false), "{p99:?}");
    assert!(
        p99.detail.contains("in flight for 1300.0 ms"),
        "{}",
        p99.detail
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
    assert_eq!((b[0].limit, b[0].measured), (500.0, Some(800.0)));
    assert_eq!(b[0].step.as_deref(), Some("p / b"));
    let w = a
        .budgets
        .iter()
        .find(|x| x.name == "max_app_wait_ms")
        .unwrap();
    assert!(w.passed);
    assert_eq!(w.measured, Some(650.0));
    assert_eq!(w.step.as_deref(), Some("p / b"));
    let bad = AnalyzeOptions {
        budget_overrides: vec![("nope".into(), 1.0)],
        ..Default::default()
    };
    assert!(analyze_with(&r, &bad).unwrap_err().contains("known keys"));
}

/// max_app_wait_ms counts the waits the migration caused — blocked by it,
/// queued behind it, or behind an app session that was waiting for it —
/// not one another app session caused on its own (a script's LOCK during a
/// step that blocks nobody: QA's exit 1 for a harmless migration).
#[test]
fn the_wait_budget_counts_what_the_migration_caused() {
    let mut r = record();
    r.statements
        .push(stmt("b", "SELECT pg_sleep(2)", 1200.0, 3200.0));
    let mut by_app = wait(1300.0, 2283.0, WaitCause::App);
    by_app.blocked_by = "42".into();
    r.waits.push(by_app);
    let opts = AnalyzeOptions {
        budget_overrides: vec![("max_app_wait_ms".into(), 250.0)],
        ..Default::default()
    };
    let measured = |r: &RunRecord| {
        let a = analyze_with(r, &opts).unwrap();
        let w = a
            .budgets
            .iter()
            .find(|x| x.name == "max_app_wait_ms")
            .unwrap();
        (w.passed, w.measured)
    };
    assert_eq!(measured(&r), (true, Some(0.0)));
    // Pid 42 was itself waiting for the migration then: a chain.
    let mut blocker = wait(1250.0, 2300.0, WaitCause::Migration);
    blocker.pid = 42;
    blocker.wait_ms = 40.0;
    r.waits.push(blocker);
    assert_eq!(measured(&r), (false, Some(983.0)));
}

#[test]
fn a_scripts_own_wait_is_not_the_apps_but_the_app_waiting_behind_it_is() {
    // A script waits 1050 ms for the migration's lock; an app query waits
    // 983 ms for the script's row meanwhile (a chain). The budget and the
    // step count the app's wait, not the script's (QA: the script's was
    // the "worst app wait", the app's went to no step).
    let mut r = record();
    r.statements
        .push(stmt("b", "SELECT pg_sleep(2)", 1200.0, 3200.0));
    r.locks.push(super::testkit::lock(
        "b",
        "AccessExclusiveLock",
        1200.0,
        1200.0,
        3200.0,
    ));
    let mut script = wait(1250.0, 2300.0, WaitCause::Migration);
    (script.pid, script.app, script.query) =
        (42, crate::latency::SCRIPT_APP.into(), "chain".into());
    let mut app = wait(1300.0, 2283.0, WaitCause::App);
    app.blocked_by = "42".into();
    r.waits.extend([script, app]);
    let opts = AnalyzeOptions {
        budget_overrides: vec![("max_app_wait_ms".into(), 250.0)],
        ..Default::default()
    };
    let a = analyze_with(&r, &opts).unwrap();
    let b = a
        .budgets
        .iter()
        .find(|x| x.name == "max_app_wait_ms")
        .unwrap();
    assert_eq!(b.measured, Some(983.0), "{b:?}");
    assert_eq!(b.step.as_deref(), Some("p / b"), "{b:?}");
    let st = &a.steps[0];
    assert_eq!(st.app_waits, 1, "{st:?}");
    assert_eq!(st.worst_app_wait.as_ref().unwrap().query, "update_order");
    // A second app query queued on the same row behind the first (a chain
    // of two links): the step's too.
    let mut behind = wait(1400.0, 2290.0, WaitCause::App);
    (behind.pid, behind.blocked_by) = (9, "7".into());
    r.waits.push(behind);
    let a = analyze_with(&r, &opts).unwrap();
    assert_eq!(a.steps[0].app_waits, 2, "{:?}", a.steps[0]);
}

/// A `[[workload.script]]` session's error (its last statement fails) is
/// the script's, not the app's: the error budgets and the run's app error
/// total do not count it (QA: `max_errors 1 > 0` for a scripted actor's
/// `SELECT 1/0`, and compare's total 1 beside errors by app 0).
#[test]
fn a_scripts_errors_are_not_the_apps() {
    let mut r = super::testkit::one_statement(
        "col",
        "ALTER TABLE orders ADD COLUMN note text",
        1000.0,
        1020.0,
    );
    step_span(&mut r, "col", 1000.0, 1100.0);
    let script = crate::latency::SCRIPT_APP;
    let mut e = super::testkit::error(1050.0, script, "22012");
    e.query = "nightly_job".into();
    r.errors.push(e);
    let mut row = super::testkit::latency_row("nightly_job", script, 1000.0, 3000);
    (row.count, row.errors) = (1, 1);
    r.latency.push(row);
    r.histograms.segments.push(super::testkit::segment_entry(
        "nightly_job",
        script,
        (1000.0, 1100.0),
        &[(3000, 1)],
        1,
    ));
    let budget = &mut r.info.as_mut().unwrap().budget;
    (budget.max_errors, budget.max_error_rate) = (Some(0), Some(0.0));
    let a = analyze(&r);
    for name in ["max_errors", "max_error_rate"] {
        let b = a.budgets.iter().find(|b| b.name == name).unwrap();
        assert!(b.passed, "{b:?}");
        assert_eq!((b.measured, b.step.as_deref()), (Some(0.0), None), "{b:?}");
    }
    assert_eq!(a.app_errors(), 0);
    let text = crate::report::text_summary(&a);
    assert!(text.contains("· errors 0 (0 during)"), "{text}");
    // Still reported, as the script's.
    let s = a.apps.iter().find(|x| x.app == script).unwrap();
    assert_eq!(s.latency.errors, 1);
    assert_eq!(s.errors_by_sqlstate[0].sqlstate, "22012");
}

#[test]
fn errors_that_began_before_the_migration_blame_no_step() {
    // The app fails before (500), during (1010) and after (3000) the
    // migration: a query that fails anyway, not the step's doing.
    let mut r = super::testkit::one_statement(
        "col",
        "ALTER TABLE orders ADD COLUMN note text",
        1000.0,
        1020.0,
    );
    for t in [500.0, 600.0, 1010.0, 3000.0, 3100.0] {
        r.errors.push(super::testkit::error(t, "v1", "42703"));
    }
    r.info.as_mut().unwrap().budget.max_errors = Some(0);
    let a = analyze(&r);
    let b = a.budgets.iter().find(|b| b.name == "max_errors").unwrap();
    assert_eq!((b.measured, b.step.as_deref()), (Some(5.0), None), "{b:?}");
    assert!(
        b.detail
            .ends_with("5 app errors over the whole run, most (2) due before the migration began"),
        "{}",
        b.detail
    );
}

/// The error budgets are charged to the span where the errors were, by
/// the span attribution the reports use (a request's error counts where it
/// was due): QA's run charged 143 errors to the step behind the first of
/// its largest class, `add col` (6 of them), while 93 came after the
/// migration and 40 of the 47 while it ran came during `alter type`.
#[test]
fn error_budgets_are_charged_where_the_errors_were() {
    let mut r = record();
    for (step, sql, start, end) in [
        (
            "add col",
            "ALTER TABLE orders ADD COLUMN memo text",
            1000.0,
            1100.0,
        ),
        (
            "alter type",
            "ALTER TABLE orders ALTER COLUMN n TYPE bigint",
            1500.0,
            2000.0,
        ),
        (
            "drop memo",
            "ALTER TABLE orders DROP COLUMN memo",
            2500.0,
            2600.0,
        ),
    ] {
        r.statements.push(stmt(step, sql, start + 1.0, end - 1.0));
        step_span(&mut r, step, start, end);
    }
    // Failed requests by when they were due (latency.hdr), and errors.csv.
    let seg = super::testkit::segment_entry;
    for (app, span, n) in [
        ("v1", (1000.0, 1100.0), 6),
        ("v1", (1500.0, 2000.0), 40),
        ("v2", (2600.0, 4000.0), 93),
    ] {
        r.histograms
            .segments
            .push(seg("refund", app, span, &[(1000, n)], n));
    }
    let error = super::testkit::error;
    let at = |from: f64, n: u64, app: &str, code: &str| {
        (0..n)
            .map(|k| error(from + k as f64, app, code))
            .collect::<Vec<_>>()
    };
    r.errors.extend(at(1050.0, 6, "v1", "42703"));
    r.errors.extend(at(1600.0, 40, "v1", "57014"));
    r.errors.extend(at(2700.0, 93, "v2", "42703"));
    let budget = &mut r.info.as_mut().unwrap().budget;
    (budget.max_errors, budget.max_error_rate) = (Some(0), Some(0.0));
    let a = analyze(&r);
    let b = |name: &str| a.budgets.iter().find(|b| b.name == name).unwrap();
    let errors = b("max_errors");
    assert_eq!(
        (errors.measured, errors.step.as_deref()),
        (Some(139.0), Some("after the migration")),
        "{errors:?}"
    );
    assert_eq!(
        errors.detail,
        "139 app errors over the whole run, most (93) due after the migration (after p / drop memo)"
    );
    let rate = b("max_error_rate");
    assert_eq!(rate.step.as_deref(), Some("p / alter type"), "{rate:?}");
    assert!(
        rate.detail
            .ends_with(", most (40) due while p / alter type ran"),
        "{}",
        rate.detail
    );
    // Between two steps is a span of its own.
    r.histograms
        .segments
        .push(seg("refund", "v2", (2000.0, 2500.0), &[(1000, 50)], 50));
    let a = analyze(&r);
    let rate = a
        .budgets
        .iter()
        .find(|b| b.name == "max_error_rate")
        .unwrap();
    assert_eq!(
        rate.step.as_deref(),
        Some("between p / alter type and p / drop memo"),
        "{rate:?}"
    );
}

/// A phase's (or step's) errors and their SQLSTATEs are the same requests:
/// those due in it (QA: `phase contract | v2 | 3 | 0 | 1` error and no
/// SQLSTATE, a 42703 due in the phase recorded 0.7 ms after it ended).
#[test]
fn a_spans_errors_and_their_sqlstates_are_the_requests_due_in_it() {
    let mut r = record();
    // Phase p runs 1000–3000: an error due at 2999.5, answered at 3000.2.
    r.histograms.segments.push(super::testkit::segment_entry(
        "read_order",
        "v2",
        (1000.0, 3000.0),
        &[(700, 1)],
        1,
    ));
    let mut e = super::testkit::error(3000.2, "v2", "42703");
    e.due_ms = Some(2999.5);
    r.errors.push(e);
    let a = analyze(&r);
    let v2 = |p: &PhaseFacts| p.by_app.iter().find(|x| x.app == "v2").cloned().unwrap();
    let during = v2(&a.phases[0]);
    let by_code: u64 = during.errors_by_sqlstate.iter().map(|c| c.count).sum();
    assert_eq!((during.latency.errors, by_code), (1, 1), "{during:?}");
    assert_eq!(during.errors_by_sqlstate[0].sqlstate, "42703");
    // Nothing of it in the span after the phase.
    let after = super::apps::app_facts(&r, 3000.0, f64::INFINITY);
    let v2_after = after.iter().find(|x| x.app == "v2").unwrap();
    assert!(v2_after.errors_by_sqlstate.is_empty(), "{v2_after:?}");
}

#[test]
fn errors_are_counted_per_app_version_by_sqlstate() {
    let a = analyze(&broken_prepared_statements());
    let count = |app: &str| {
        let facts = a.apps.iter().find(|x| x.app == app).unwrap();
        facts
            .errors_by_sqlstate
            .iter()
            .map(|c| c.count)
            .sum::<u64>()
    };
    assert_eq!((count("v1"), count("v2")), (4, 1));
}

fn kinds_found(r: &RunRecord) -> Vec<FindingKind> {
    analyze(r).findings.into_iter().map(|f| f.kind).collect()
}

#[test]
fn every_rule_fires_on_its_example_and_not_on_the_other() {
    for (kind, fires, quiet) in EXAMPLES {
        let found = kinds_found(&fires());
        assert!(
            found.contains(kind),
            "{kind} does not fire on its example: {found:?}"
        );
        assert!(
            !kinds_found(&quiet()).contains(kind),
            "{kind} fires on its quiet example"
        );
    }
}

#[test]
fn the_registry_is_complete_and_documented() {
    let names: Vec<&str> = RULES.iter().map(|r| r.kind.as_str()).collect();
    let mut unique = names.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(
        unique.len(),
        names.len(),
        "two rules share a kind: {names:?}"
    );
    // Every example's findings come from registered rules.
    for (_, fires, _) in EXAMPLES {
        for k in kinds_found(&fires()) {
            assert!(names.contains(&k.as_str()), "unregistered kind {k}");
        }
    }
    // summary.json's `kind` values are part of the run-directory contract.
    let readme = include_str!("../../reports/README.md");
    for n in &names {
        assert!(
            readme.contains(&format!("`{n}`")),
            "reports/README.md does not list the finding kind `{n}`"
        );
    }
}

/// The server died as a step began: steps.csv and run.json say it failed,
/// and no statement of it ran. Not "ok", and nothing it did is "no
/// rewrite, no WAL" (QA).
#[test]
fn a_step_that_failed_before_any_statement_is_not_ok() {
    let mut r = record();
    super::testkit::step_span(&mut r, "block", 1000.0, 1000.0);
    r.steps
        .push(super::testkit::step_row("block", (1000.0, 1000.0), "error"));
    let info = r.info.as_mut().unwrap();
    info.failure = Some("the server stopped answering".into());
    for s in info.steps.iter_mut().filter(|s| s.step == "block") {
        s.outcome = "error".into();
        s.attempts = 0;
    }
    let a = analyze(&r);
    let st = a
        .steps
        .iter()
        .find(|s| s.step == "block")
        .expect("the step");
    assert_eq!(st.outcome, "error", "{st:?}");
    assert_eq!((st.rewrote, st.wal_bytes), (None, None), "{st:?}");
    assert_eq!(
        st.unknown.get("rewrote").map(String::as_str),
        Some("no statement of the step ran")
    );
}
