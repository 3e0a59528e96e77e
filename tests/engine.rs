//! The rehearsal engine end to end: the real binary against a real local
//! cluster, checked against known ground truth.

mod common;

use std::path::PathBuf;

use pgrehearse::record::{LockRow, RunRecord, WaitCause};

/// Run one engine fixture on the local backend; returns the exit code and
/// the run record.
fn rehearse(fixture: &str, extra: &[&str]) -> (i32, RunRecord, PathBuf) {
    let file = common::fixture(&format!("engine/{fixture}"));
    let mut args = vec!["--backend", "local", "-q"];
    args.extend_from_slice(extra);
    let ran = common::run(&file, &args, &[]);
    let (dir, rec) = ran.record();
    (ran.code, rec, dir)
}

fn lock<'a>(rec: &'a RunRecord, step: &str, relation: &str, mode: &str) -> Option<&'a LockRow> {
    rec.locks.iter().find(|l| {
        l.step == step && l.relation == relation && l.mode == mode && l.granted_ms.is_some()
    })
}

#[test]
fn ground_truth_hold_waits_and_stall() {
    let (code, rec, dir) = rehearse("ground-truth.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    // The table's key, for the advice's batches (run.json primary_keys).
    assert_eq!(
        rec.info
            .as_ref()
            .unwrap()
            .primary_keys
            .get("t")
            .map(String::as_str),
        Some("id")
    );
    let ae = lock(&rec, "hold", "t", "AccessExclusiveLock")
        .expect("AccessExclusiveLock on t in locks.csv");
    // The hold spans the sleep (the server's own 1.5 s, longer on a loaded
    // machine) and adds at most 25 ms of its own: LOCK's round trip, the
    // probes, COMMIT. Its precision against an independent observer is
    // tests/holds.rs's business.
    let sleep = rec
        .statements
        .iter()
        .find(|s| s.sql.contains("pg_sleep"))
        .unwrap();
    assert!(sleep.duration_ms >= 1500.0, "{sleep:?}");
    // Granted before the sleep was sent; released (the server's clock after
    // COMMIT) no sooner than the server's 1.5 s sleep could end. Not against
    // the sleep's end_ms: that is when this process read the result, which
    // a loaded machine delays past the server's release.
    assert!(
        ae.granted_ms.unwrap() <= sleep.start_ms
            && ae.released_ms.unwrap() >= sleep.start_ms + 1500.0
            && ae.held_ms.unwrap() >= 1500.0,
        "{ae:?} does not span {sleep:?}"
    );
    let held = ae.held_ms.unwrap();
    assert!(
        held - sleep.duration_ms <= 25.0,
        "held {held} ms for a {} ms sleep",
        sleep.duration_ms
    );
    assert_eq!(ae.blocks.to_string(), "reads+writes");
    // App queries waited behind the migration, up to about the hold.
    let mig: Vec<_> = rec
        .waits
        .iter()
        .filter(|w| w.cause == WaitCause::Migration)
        .collect();
    assert!(!mig.is_empty(), "no waits caused by the migration");
    let longest = mig.iter().map(|w| w.wait_ms).fold(0.0, f64::max);
    // Against the hold, not a fixed 1.6 s: the longest wait was 2-4 ms
    // under a 1502-1507 ms hold, and a loaded machine stretches the hold
    // (the 1.6 s ceiling was under 100 ms away); at 400 q/s some query
    // queues within the hold's first 300 ms.
    assert!(
        longest > held - 300.0 && longest <= held + 25.0,
        "longest wait {longest} ms, hold {held} ms"
    );
    assert!(mig.iter().all(|w| w.relation == "t"), "{mig:?}");
    // Readers and writers are apps of their own: both certainly queued.
    assert!(
        mig.iter().any(|w| w.query == "read" && w.app == "reader"),
        "{mig:?}"
    );
    assert!(
        mig.iter().any(|w| w.query == "write" && w.app == "writer"),
        "{mig:?}"
    );
    // The stall shows in latency.csv: some window's max ≥ 1 s.
    let worst = rec.latency.iter().map(|l| l.max_us).max().unwrap();
    assert!(worst >= 1_000_000, "max latency {worst} µs");
    // ... and no app errors.
    assert!(rec.errors.is_empty(), "{:?}", rec.errors);
    assert_eq!(rec.latency.iter().map(|l| l.errors).sum::<u64>(), 0);
    // Statements are timed.
    assert_eq!(rec.statements.len(), 2);
    assert!(rec.statements.iter().all(|s| s.outcome == "ok"));
}

#[test]
fn lock_queue_is_attributed_to_the_migration() {
    let (code, rec, dir) = rehearse("lock-queue.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    // The ALTER waited for the report.
    let alter = rec
        .locks
        .iter()
        .find(|l| l.relation == "t" && l.mode == "AccessExclusiveLock")
        .expect("the ALTER's lock");
    assert!(
        alter.wait_ms > 1000.0,
        "the ALTER waited {} ms",
        alter.wait_ms
    );
    // Readers behind the pending ALTER are queued-behind-migration.
    let queued: Vec<_> = rec
        .waits
        .iter()
        .filter(|w| w.cause == WaitCause::QueuedBehindMigration && w.query == "read")
        .collect();
    assert!(
        !queued.is_empty(),
        "no queued-behind-migration waits: {:?}",
        rec.waits
    );
    assert!(queued.iter().map(|w| w.wait_ms).fold(0.0, f64::max) > 1000.0);
}

/// pg_blocking_pids names the migration whether it holds the lock an app
/// query waits for or only queues ahead of it: while it waits for `t`,
/// readers of `a` wait behind the lock it holds on a, not in a queue.
#[test]
fn a_wait_behind_a_held_lock_is_not_queued_while_the_migration_waits_elsewhere() {
    let (code, rec, dir) = rehearse("held-while-queued.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let of = |q: &'static str| rec.waits.iter().filter(move |w| w.query == q);
    assert!(
        of("read_a").any(|w| w.wait_ms > 300.0),
        "readers of a waited behind its lock: {:?}",
        rec.waits
    );
    assert!(
        of("read_a").all(|w| w.cause == WaitCause::Migration),
        "{:?}",
        rec.waits
    );
    // Table locks, all of them: waits.csv says so.
    assert!(
        rec.waits.iter().all(|w| w.locktype == "relation"),
        "{:?}",
        rec.waits
    );
    assert!(
        of("read_t").any(|w| w.cause == WaitCause::QueuedBehindMigration && w.wait_ms > 300.0),
        "readers of t queued behind the ALTER's request: {:?}",
        rec.waits
    );
}

#[test]
fn lock_timeout_retries_bound_the_app_waits() {
    let (code, rec, dir) = rehearse("lock-queue-timeout.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let timeouts: Vec<_> = rec
        .statements
        .iter()
        .filter(|s| s.outcome == "lock_timeout")
        .collect();
    assert!(!timeouts.is_empty(), "no attempt failed with 55P03");
    assert!(timeouts.iter().all(|s| s.sqlstate == "55P03"));
    let last = rec.statements.last().unwrap();
    assert_eq!(last.outcome, "ok", "the step finally succeeded");
    assert!(last.attempt > 1);
    // No app query waited much longer than the lock_timeout.
    let app_waits: Vec<_> = rec.waits.iter().filter(|w| w.app != "script").collect();
    let longest = app_waits.iter().map(|w| w.wait_ms).fold(0.0, f64::max);
    assert!(
        longest < 250.0,
        "an app query waited {longest} ms: {app_waits:?}"
    );
}

#[test]
fn lock_facts_are_measured() {
    let (code, rec, dir) = rehearse("lock-facts.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    assert!(
        lock(&rec, "create index", "parent", "ShareLock").is_some(),
        "{:#?}",
        rec.locks
    );
    assert!(lock(&rec, "create index", "parent", "AccessExclusiveLock").is_none());
    assert!(lock(
        &rec,
        "create index concurrently",
        "parent",
        "ShareUpdateExclusiveLock"
    )
    .is_some());
    assert!(lock(&rec, "create index concurrently", "parent", "ShareLock").is_none());
    assert!(lock(&rec, "add foreign key", "child", "ShareRowExclusiveLock").is_some());
    assert!(lock(&rec, "add foreign key", "parent", "ShareRowExclusiveLock").is_some());
    assert!(lock(&rec, "validate check", "parent", "ShareUpdateExclusiveLock").is_some());
    let stmt = |step: &str| rec.statements.iter().find(|s| s.step == step).unwrap();
    assert_eq!(
        stmt("volatile default").rewrote,
        Some(true),
        "a volatile default rewrites"
    );
    assert_eq!(
        stmt("constant default").rewrote,
        Some(false),
        "a constant default does not"
    );
    assert_eq!(
        stmt("int to bigint").rewrote,
        Some(true),
        "int → bigint rewrites"
    );
    assert_eq!(stmt("create index").rewrote, Some(false));
    assert!(
        stmt("set not null").seq_scans.unwrap() >= 1,
        "SET NOT NULL scans"
    );
    assert_eq!(
        stmt("set not null proven").seq_scans,
        Some(0),
        "a valid CHECK proves NOT NULL"
    );
    assert!(stmt("validate check").seq_scans.unwrap() >= 1);
    assert!(
        stmt("volatile default").wal_bytes.unwrap() > 100_000,
        "a rewrite writes WAL"
    );
    // Outside a transaction scans cannot be counted: unknown, and why.
    let cic = stmt("create index concurrently");
    assert_eq!(cic.seq_scans, None);
    assert!(
        cic.unknown
            .contains("seq_scans: counted only inside a transaction"),
        "{}",
        cic.unknown
    );
    // The new indexes are named, marked new.
    assert!(
        lock(
            &rec,
            "create index concurrently",
            "parent_v2 (new)",
            "ShareUpdateExclusiveLock"
        )
        .is_some()
            || rec.locks.iter().any(|l| l.relation == "parent_v2 (new)"),
        "{:#?}",
        rec.locks
    );
    assert!(
        rec.locks
            .iter()
            .all(|l| !l.relation.bytes().all(|b| b.is_ascii_digit())),
        "{:#?}",
        rec.locks
    );
}

#[test]
fn open_loop_charges_the_stall_to_every_queued_request() {
    let (code, rec, dir) = rehearse("open-loop.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    // ~500 requests were intended during the 1 s stall; with 4 clients a
    // closed loop would have shown only 4 slow ones.
    let slow: u64 = rec
        .latency
        .iter()
        .filter(|l| l.p50_us >= 100_000)
        .map(|l| l.count)
        .sum();
    assert!(
        slow >= 150,
        "only {slow} requests in windows with p50 ≥ 100 ms"
    );
    let p99_max = rec.latency.iter().map(|l| l.p99_us).max().unwrap();
    assert!(p99_max >= 800_000, "p99 peaked at {p99_max} µs");
    // Service time stays small for most of them: they waited in the queue.
    let svc_small = rec
        .latency
        .iter()
        .filter(|l| l.p50_us >= 100_000 && l.service_p50_us < 50_000)
        .count();
    assert!(svc_small >= 1);
}

/// SHARE blocks the writes and lets the reads through, but with two
/// connections both soon wait on a write: the reads, scheduled open loop,
/// wait for a connection as long as the hold. While nothing completes the
/// oldest request's age climbs in inflight.csv; the finding names the pool
/// with the reads as its victim; the backlog delays the recovery, which
/// summary.json reports and `max_recovery_ms` budgets.
#[test]
fn pool_exhaustion_stall_and_recovery() {
    let file = common::fixture("engine/pool-exhaustion.toml");
    let ran = common::run(
        &file,
        &["--backend", "local", "-q", "--budget", "max_recovery_ms=1"],
        &[],
    );
    let (dir, rec) = ran.record();
    let summary = common::json(&dir.join("summary.json"));
    let step = &summary["steps"][0];
    assert_eq!(step["step"], "share hold");
    let (start, end) = (
        step["latency"]["start_ms"].as_f64().unwrap(),
        step["latency"]["end_ms"].as_f64().unwrap(),
    );

    // Every connection busy, and the oldest request's age rising through
    // the hold, window after window, to about the hold's length.
    let during: Vec<_> = rec
        .inflight
        .iter()
        .filter(|r| r.window_start_ms >= start && r.window_start_ms + r.window_ms <= end)
        .collect();
    assert!(during.len() >= 10, "{} windows in the step", during.len());
    assert!(during.iter().any(|r| r.busy == 2 && r.connections == 2));
    let ages: Vec<f64> = during.iter().filter_map(|r| r.oldest_ms).collect();
    let rising = ages.windows(2).filter(|p| p[1] > p[0]).count();
    assert!(rising >= 8, "oldest ages {ages:?}");
    let oldest = ages.iter().copied().fold(0.0, f64::max);
    assert!(oldest >= 1000.0, "oldest in flight {oldest} ms");

    // The reads had no lock wait of their own; the writes did.
    assert!(rec.waits.iter().any(|w| w.query == "write"));
    assert!(
        rec.waits.iter().all(|w| w.query != "read"),
        "{:?}",
        rec.waits
    );
    let finding = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "pool_exhausted")
        .unwrap_or_else(|| panic!("no pool_exhausted finding: {}", summary["findings"]));
    assert_eq!(finding["step"], "share hold");
    assert!(
        finding["seen"].as_str().unwrap().contains("read"),
        "{finding}"
    );
    // The app kept up until the hold: its baseline was not overloaded.
    assert!(
        summary["findings"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["kind"] != "overloaded_baseline"),
        "{}",
        summary["findings"]
    );

    // Recovery: the backlog's windows right after the hold are far above
    // the bar — 1.5× the p99 before, at least 10 ms above it (less is
    // noise) —, so recovery takes time (or never comes).
    let before_p99 = summary["before"]["p99_ms"].as_f64().unwrap();
    let recovery = &step["recovery"];
    let threshold = recovery["threshold_ms"].as_f64().unwrap();
    let bar = (1.5 * before_p99).max(before_p99 + 10.0);
    assert!((threshold - bar).abs() < 0.01, "{recovery}");
    match recovery["state"].as_str().unwrap() {
        "recovered" => {
            let ms = recovery["recovery_ms"].as_f64().unwrap();
            assert!(ms > 0.0 && ms < 2000.0, "{recovery}");
        }
        "not_recovered" => assert!(recovery["recovery_ms"].is_null(), "{recovery}"),
        other => panic!("recovery state {other}"),
    }
    let budget = summary["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "max_recovery_ms")
        .expect("the max_recovery_ms budget");
    assert_eq!(budget["passed"], false, "{budget}");
    assert_eq!(budget["step"], "migrate / share hold", "{budget}");
    ran.assert_code(1);
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("recovered after"), "{md}");
}

/// An app that cannot keep up before the migration (25 ms requests at
/// 160/s on two connections) is named by the overloaded_baseline finding,
/// with its backlog and what its connections serve; the pool-exhaustion
/// fixture's app, which keeps up until its step, is not.
#[test]
fn an_overloaded_baseline_is_named() {
    let ran = common::run(
        &common::fixture("engine/overloaded-baseline.toml"),
        &["--backend", "local", "-q"],
        &[],
    );
    ran.assert_code(0);
    let (dir, _) = ran.record();
    let summary = common::json(&dir.join("summary.json"));
    let finding = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "overloaded_baseline")
        .unwrap_or_else(|| panic!("no overloaded_baseline: {}", summary["findings"]));
    assert_eq!(finding["severity"], "warning");
    let seen = finding["seen"].as_str().unwrap();
    for part in [
        "all 2 connections of app were busy",
        "due at 160/s",
        "slowest query slow_read",
    ] {
        assert!(seen.contains(part), "{part}: {seen}");
    }
    // 2 connections of >= 25 ms requests serve at most 80/s.
    let serve: f64 = seen
        .split("2 connections serve about ")
        .nth(1)
        .and_then(|s| s.split('/').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no capacity in {seen}"));
    assert!(serve > 20.0 && serve <= 80.0, "{seen}");
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        md.contains("could not keep up before the migration"),
        "{md}"
    );
    // "Before" begins when the traffic did, which run.json records, and
    // lasts about the 1.5 s asked (the migration session was ready).
    let run = common::json(&dir.join("run.json"));
    let began = run["traffic_started_ms"]
        .as_f64()
        .expect("traffic_started_ms");
    assert!(began > 0.0, "{run}");
    assert_eq!(summary["before"]["start_ms"].as_f64(), Some(began));
    let before_ms = summary["before"]["end_ms"].as_f64().unwrap() - began;
    assert!(
        (1500.0..1900.0).contains(&before_ms),
        "before lasted {before_ms} ms"
    );
}

/// A statement that takes a lock and then fails inside a transaction has
/// no probe after it, yet it blocked writes until its error: locks.csv
/// shows the hold (from the poll), the app's waits agree with it, and the
/// blocking-lock budget is breached.
#[test]
fn a_statement_that_fails_after_taking_a_lock_still_shows_its_hold() {
    let ran = common::run(
        &common::fixture("engine/failed-statement-holds.toml"),
        &["--backend", "local", "-q"],
        &[],
    );
    let (dir, rec) = ran.record();
    ran.assert_code(1);
    let failed = rec
        .statements
        .iter()
        .find(|s| s.sql.starts_with("DO"))
        .expect("the DO statement");
    assert_eq!(failed.sqlstate, "P0001", "{failed:?}");
    let share = lock(&rec, "lock then fail", "t", "ShareLock")
        .unwrap_or_else(|| panic!("no ShareLock on t in {}: {:#?}", dir.display(), rec.locks));
    assert_eq!(share.source, "poll");
    assert_eq!(share.blocks.to_string(), "writes");
    // Held from within the statement until its error, about the sleep.
    assert!(share.held_ms.unwrap() >= 390.0, "{share:?}");
    let released = share.released_ms.unwrap();
    assert!(
        released <= failed.end_ms + 5.0,
        "{share:?} after {failed:?}"
    );
    assert!(
        share.granted_ms.unwrap() >= failed.start_ms - 5.0,
        "{share:?}"
    );
    // The writes that waited on it were released at its error: to the wait
    // poll's resolution (5 ms, later when parallel tests load the machine).
    let waits: Vec<_> = rec.waits.iter().filter(|w| w.query == "write").collect();
    assert!(!waits.is_empty(), "no write waited");
    assert!(
        waits.iter().all(|w| (w.end_ms - released).abs() <= 30.0),
        "{waits:?} vs release at {released}"
    );
    let summary = common::json(&dir.join("summary.json"));
    assert_eq!(
        summary["breached"],
        serde_json::json!(["max_blocking_lock_ms"]),
        "{summary}"
    );
}

/// A probe that fails (the migration drops pg_stat_statements, which the
/// probe reads) leaves its statements' figures empty, never 0 or false,
/// with the reason in statements.csv, steps.csv and the reports; the steps
/// before and after it keep every figure.
#[test]
fn a_failed_probe_leaves_empty_cells_and_says_why() {
    let ran = common::run(
        &common::fixture("engine/probe-fails.toml"),
        &["--backend", "local", "-q"],
        &[],
    );
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let stmt = |step: &str, sql: &str| {
        rec.statements
            .iter()
            .find(|s| s.step == step && s.sql.starts_with(sql))
            .unwrap_or_else(|| panic!("no `{sql}` in {step}: {:#?}", rec.statements))
    };
    // The normal path: every figure there, no reason given.
    for (step, sql) in [
        ("add column", "ALTER TABLE"),
        ("set not null", "ALTER TABLE"),
    ] {
        let s = stmt(step, sql);
        assert_eq!(s.rewrote, Some(false), "{s:?}");
        assert_eq!(s.seq_scans, Some(0), "{s:?}");
        assert!(s.wal_bytes.is_some_and(|w| w > 0), "{s:?}");
        assert!(s.cluster_wal_bytes.is_some_and(|w| w > 0), "{s:?}");
        assert_eq!(s.unknown, "", "{s:?}");
    }
    // Every statement with a failed probe before or after it.
    let failed = [
        ("reinstall pg_stat_statements", "DROP EXTENSION"),
        ("reinstall pg_stat_statements", "CREATE EXTENSION"),
        ("drop pg_stat_statements", "DROP EXTENSION"),
        ("index concurrently", "CREATE INDEX"),
        ("create pg_stat_statements", "CREATE EXTENSION"),
    ];
    for (step, sql) in failed {
        let s = stmt(step, sql);
        assert_eq!(s.outcome, "ok", "{s:?}");
        assert_eq!(
            (s.rewrote, s.seq_scans, s.wal_bytes, s.cluster_wal_bytes),
            (None, None, None, None),
            "{s:?}"
        );
        let why = pgrehearse::record::Unknown::parse(&s.unknown);
        for field in ["rewrote", "seq_scans", "wal_bytes", "cluster_wal_bytes"] {
            let w = why.why(field).unwrap_or_default();
            assert!(
                w.starts_with("the probe failed: ") && w.contains("pg_stat_statements"),
                "{field} of {s:?}"
            );
        }
    }
    // The DROP's locks, seen first by the probe after the CREATE, are dated
    // from the DROP (a hold is never understated).
    let drop = stmt("reinstall pg_stat_statements", "DROP EXTENSION");
    let create = stmt("reinstall pg_stat_statements", "CREATE EXTENSION");
    let view = lock(
        &rec,
        "reinstall pg_stat_statements",
        "pgrehearse.pg_stat_statements (dropped)",
        "AccessExclusiveLock",
    )
    .unwrap_or_else(|| panic!("{:#?}", rec.locks));
    assert!(
        view.granted_ms.unwrap() < create.start_ms && view.granted_ms.unwrap() >= drop.start_ms,
        "{view:?} not dated from {drop:?}"
    );
    // A transaction's last probe failed: its locks are listed nowhere, and
    // its row says so.
    let lone = stmt("drop pg_stat_statements", "DROP EXTENSION");
    assert!(
        rec.locks
            .iter()
            .all(|l| l.step != "drop pg_stat_statements"),
        "{:#?}",
        rec.locks
    );
    let why = pgrehearse::record::Unknown::parse(&lone.unknown);
    assert!(
        why.why("locks")
            .is_some_and(|w| w.starts_with("not in locks.csv: the probe failed")),
        "{lone:?}"
    );
    // Outside a transaction the lock poller still lists the build's lock.
    assert!(
        lock(&rec, "index concurrently", "t", "ShareUpdateExclusiveLock").is_some(),
        "{:#?}",
        rec.locks
    );
    // steps.csv: empty sums, and why; the normal steps keep theirs.
    for st in &rec.steps {
        let normal = st.step == "add column" || st.step == "set not null";
        assert_eq!(st.rewrote.is_some(), normal, "{st:?}");
        assert_eq!(st.wal_bytes.is_some(), normal, "{st:?}");
        assert_eq!(st.cluster_wal_bytes.is_some(), normal, "{st:?}");
        assert_eq!(st.unknown.contains("the probe failed: "), !normal, "{st:?}");
    }
    // The reports say "unknown (why)", never 0 for it.
    for report in ["summary.md", "index.html"] {
        let text = std::fs::read_to_string(dir.join(report)).unwrap();
        assert!(
            text.contains("rewrite unknown (unknown for `DROP EXTENSION pg_stat_statements`: the probe failed: "),
            "{report} ({})",
            dir.display()
        );
    }
    let summary = common::json(&dir.join("summary.json"));
    let steps = summary["steps"].as_array().unwrap();
    let cic = steps
        .iter()
        .find(|s| s["step"] == "index concurrently")
        .unwrap();
    assert!(
        cic["wal_bytes"].is_null() && cic["rewrote"].is_null(),
        "{cic}"
    );
    assert!(
        cic["unknown"]["wal_bytes"]
            .as_str()
            .is_some_and(|w| w.contains("the probe failed: ")),
        "{cic}"
    );
}

/// An app version live only from a later phase sends, in an open loop too,
/// from that phase on; the one taken out of service stops.
#[test]
fn an_app_version_live_from_a_later_phase_sends_in_an_open_loop() {
    let (code, rec, dir) = rehearse("versions-open-loop.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let info = rec.info.as_ref().unwrap();
    let contract = info
        .phases
        .iter()
        .find(|p| p.name == "contract")
        .expect("phase contract");
    let sent = |app: &str| -> Vec<&pgrehearse::record::LatencyRow> {
        rec.latency
            .iter()
            .filter(|l| l.app == app && l.count > 0)
            .collect()
    };
    let (v1, v2) = (sent("v1"), sent("v2"));
    let count =
        |rows: &[&pgrehearse::record::LatencyRow]| rows.iter().map(|l| l.count).sum::<u64>();
    // 100/s for ~1 s of the phase and the 0.6 s after it.
    assert!(count(&v2) >= 50, "v2 sent {} requests: {v2:?}", count(&v2));
    assert!(count(&v1) >= 50, "v1 sent {} requests", count(&v1));
    // v2 only from its phase on (a window may start before it), v1 not
    // after its phase (slack for completions of requests sent
    // before the switch).
    let first_v2 = v2
        .iter()
        .map(|l| l.window_start_ms + l.window_ms)
        .fold(f64::MAX, f64::min);
    assert!(
        first_v2 >= contract.start_ms,
        "{first_v2} < {}",
        contract.start_ms
    );
    let last_v1 = v1.iter().map(|l| l.window_start_ms).fold(0.0, f64::max);
    assert!(
        last_v1 <= contract.start_ms + 300.0,
        "{last_v1} vs {}",
        contract.start_ms
    );
}

/// A table called pg_jobs is the migration's: its ACCESS EXCLUSIVE hold is
/// in locks.csv, blocks the app, and its rewrite is seen.
#[test]
fn a_table_named_like_a_catalog_keeps_its_locks() {
    let (code, rec, dir) = rehearse(
        "pg-prefixed-table.toml",
        &["--budget", "max_blocking_lock_ms=100"],
    );
    assert_eq!(code, 1, "the hold breaches the budget: {}", dir.display());
    let ae = lock(&rec, "rewrite", "pg_jobs", "AccessExclusiveLock")
        .unwrap_or_else(|| panic!("AccessExclusiveLock on pg_jobs: {:?}", rec.locks));
    assert!(ae.held_ms.unwrap() >= 300.0, "{ae:?}");
    let alter = rec
        .statements
        .iter()
        .find(|s| s.sql.starts_with("ALTER"))
        .unwrap();
    assert_eq!(alter.rewrote, Some(true), "{alter:?}");
}

/// Rewrites, sizes and lock names follow the scenario's tables themselves:
/// a same-named table in another schema is not one of them, a renamed one
/// still is (and goes by its new name), a schema-qualified one is found.
#[test]
fn scenario_tables_are_followed_by_identity_not_by_name() {
    let (code, rec, dir) = rehearse("table-identity.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let step = |name: &str| {
        rec.steps
            .iter()
            .find(|s| s.step == name)
            .unwrap_or_else(|| panic!("step {name}: {:?}", rec.steps))
    };
    assert_eq!(
        step("copy_elsewhere").rewrote,
        Some(false),
        "{:?}",
        step("copy_elsewhere")
    );
    assert_eq!(
        step("rewrite_copy").rewrote,
        Some(false),
        "{:?}",
        step("rewrite_copy")
    );
    let copy = step("copy_elsewhere");
    assert_eq!(copy.table_bytes_after, copy.table_bytes_before, "{copy:?}");
    let rename = step("rename");
    assert_eq!(
        rename.table_bytes_after, rename.table_bytes_before,
        "{rename:?}"
    );
    assert_eq!(
        step("rewrite_renamed").rewrote,
        Some(true),
        "{:?}",
        step("rewrite_renamed")
    );
    assert_eq!(
        step("rewrite_items").rewrote,
        Some(true),
        "{:?}",
        step("rewrite_items")
    );
    assert!(
        lock(&rec, "rewrite_renamed", "orders_v2", "AccessExclusiveLock").is_some(),
        "{:?}",
        rec.locks
    );
    assert!(
        lock(&rec, "rewrite_items", "inv.items", "AccessExclusiveLock").is_some(),
        "{:?}",
        rec.locks
    );
}

/// A wait for a row the migration changed is a wait for its transaction
/// id; waits.csv still names the table the row is in.
#[test]
fn a_wait_for_a_row_names_its_table() {
    let file = common::fixture("engine/row-wait.toml");
    let ran = common::run(&file, &["--backend", "local", "-q"], &[]);
    let (dir, rec) = ran.record();
    let rows: Vec<_> = rec
        .waits
        .iter()
        .filter(|w| w.locktype == "transactionid" || w.locktype == "tuple")
        .collect();
    assert!(
        !rows.is_empty(),
        "row waits in {}: {:?}",
        dir.display(),
        rec.waits
    );
    for w in rows {
        assert_eq!(w.relation, "t", "{w:?}");
    }
    // No table lock blocked those writes, yet a finding says what did.
    let summary = common::json(&dir.join("summary.json"));
    let finding = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "row_lock_waits")
        .unwrap_or_else(|| panic!("no row_lock_waits finding: {}", summary["findings"]));
    assert_eq!(finding["relation"], "t", "{finding}");
    assert_eq!(finding["step"], "hold_rows", "{finding}");
}

/// An index a step creates and then drops, statement by statement: the
/// DROP's ACCESS EXCLUSIVE lock on it has a row of its own, named though
/// the index was gone from the catalog when the probe listed it.
#[test]
fn a_relation_created_then_dropped_in_one_step_has_the_drops_lock() {
    let (code, rec, dir) = rehearse("created-then-dropped.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let rows: Vec<&LockRow> = rec
        .locks
        .iter()
        .filter(|l| l.relation == "scratch_idx (new, dropped)" && l.mode == "AccessExclusiveLock")
        .collect();
    assert_eq!(
        rows.len(),
        2,
        "the CREATE's and the DROP's: {:#?}",
        rec.locks
    );
    let drop = rec
        .statements
        .iter()
        .find(|s| s.sql.starts_with("DROP"))
        .unwrap();
    assert!(
        rows.iter()
            .any(|l| l.granted_ms.unwrap() >= drop.start_ms - 1.0),
        "{rows:#?} {drop:?}"
    );
    assert!(rec
        .locks
        .iter()
        .all(|l| !l.relation.bytes().all(|b| b.is_ascii_digit())));
}

/// REFRESH ... CONCURRENTLY's EXCLUSIVE lock on a materialized view stops
/// only writes, which nothing makes to a materialized view: it blocks
/// nobody, and no finding calls it blocking.
#[test]
fn a_concurrent_refresh_of_a_materialized_view_blocks_nobody() {
    let file = common::fixture("engine/matview-refresh.toml");
    let ran = common::run(&file, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let excl = rec
        .locks
        .iter()
        .find(|l| l.relation == "t_totals" && l.mode == "ExclusiveLock")
        .unwrap_or_else(|| panic!("no ExclusiveLock on t_totals: {:#?}", rec.locks));
    assert_eq!(excl.blocks.to_string(), "none", "{excl:?}");
    let summary = common::json(&dir.join("summary.json"));
    let on_view: Vec<_> = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["relation"] == "t_totals" && f["severity"] != "info")
        .collect();
    assert!(on_view.is_empty(), "{on_view:#?}");
}

/// A schema error is charged to the step that changed what the failing
/// query reads (run.json `queries` holds the workload's SQL), not to a
/// later step that replaced a view nobody reads.
#[test]
fn a_schema_error_is_charged_to_the_step_that_changed_what_it_reads() {
    // The failing query is a script's, not the app's: the error budget
    // does not count it (QA: `max_errors 1 > 0`, exit 1, for a scripted
    // actor's error), though the finding reports it as the script's.
    let ran = common::run(
        &common::fixture("engine/schema-blame.toml"),
        &["--backend", "local", "-q", "--budget", "max_errors=0"],
        &[],
    );
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let error = rec
        .errors
        .iter()
        .find(|e| e.query == "monthly report")
        .unwrap_or_else(|| panic!("the report did not fail: {:?}", rec.errors));
    assert_eq!(error.sqlstate, "42703");
    let view = rec.steps.iter().find(|s| s.step == "view").unwrap();
    assert!(error.t_ms > view.start_ms, "{error:?} before {view:?}");
    let info = rec.info.as_ref().unwrap();
    assert!(
        info.queries
            .iter()
            .any(|q| q.name == "monthly report" && q.sql == "SELECT sum(total) FROM orders"),
        "{:?}",
        info.queries
    );
    let summary = common::json(&dir.join("summary.json"));
    let finding = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "app_errors")
        .unwrap_or_else(|| panic!("no app_errors finding: {}", summary["findings"]));
    assert_eq!(finding["step"], "rename", "{finding}");
    let budget = summary["budgets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "max_errors")
        .unwrap();
    assert_eq!(
        (&budget["measured"], &budget["passed"]),
        (&0.0.into(), &true.into()),
        "{budget}"
    );
    // errors.csv says when each failed request was due, and every span's
    // errors are the same requests as its errors by SQLSTATE (both by
    // due time: QA saw a phase with 1 error and no SQLSTATE for it).
    for e in &rec.errors {
        let due = e.due_ms.unwrap_or_else(|| panic!("no due_ms: {e:?}"));
        assert!(due <= e.t_ms, "{e:?}");
    }
    for phase in summary["phases"].as_array().unwrap() {
        for app in phase["by_app"].as_array().unwrap() {
            let by_code: u64 = app["errors_by_sqlstate"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["count"].as_u64().unwrap())
                .sum();
            assert_eq!(app["latency"]["errors"].as_u64(), Some(by_code), "{phase}");
        }
    }
}

/// A server statement_timeout (here 40 ms) binds what it binds in
/// production — the migration's statements, which run under the session's
/// default when the scenario gives none — and not the tool's own sessions:
/// seeding 200 000 rows and building their key took longer than that and
/// were once cancelled (57014, exit 4, "seeding failed").
#[test]
fn a_server_statement_timeout_binds_the_steps_not_the_seeding() {
    let (code, rec, dir) = rehearse("server-timeouts.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let info = rec.info.as_ref().expect("run.json");
    assert!(
        info.seed_ms > 40.0,
        "seeding outlasted the timeout: {} ms",
        info.seed_ms
    );
    let step = |name: &str| info.steps.iter().find(|s| s.step == name).unwrap();
    assert_eq!(step("quick").outcome, "ok");
    assert_eq!(step("slow").outcome, "expected_error");
    assert_eq!(step("slow").statement_timeout_ms, Some(40.0));
}

#[test]
fn a_key_of_several_columns_names_rows_its_parent_has() {
    // The seed's COPY checks the foreign key in the CREATE: a run at all
    // means every (tenant_id, account_id) names an account. The step checks
    // the tenant's skew came along; the query divides by zero for a pair of
    // parameters that names no account.
    let (code, rec, dir) = rehearse("composite-fk.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let requests: u64 = rec.latency.iter().map(|l| l.count).sum();
    assert!(requests > 100, "{requests} requests: {}", dir.display());
    assert!(
        rec.errors.is_empty(),
        "{} app errors, the first {:?}: {}",
        rec.errors.len(),
        rec.errors.first(),
        dir.display()
    );
}

#[test]
fn queries_of_one_text_are_told_apart_in_waits() {
    // QA: every wait was labelled with the last query of the text, and a
    // false pool_exhausted finding followed from it.
    let (code, rec, dir) = rehearse("same-text.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let waited = |q: &str| rec.waits.iter().filter(|w| w.query == q).count();
    assert!(
        waited("hot") > 0 && waited("cold") > 0,
        "hot {} cold {} of {} waits: {}",
        waited("hot"),
        waited("cold"),
        rec.waits.len(),
        dir.display()
    );
}

#[test]
fn an_advisory_lock_the_app_waits_for_is_a_blocking_hold() {
    // QA: locks.csv had no row for it, and the summary said no lock
    // blocked the app while 12 queries waited ~0.5 s on it.
    let (code, rec, dir) = rehearse("advisory.toml", &["--budget", "max_blocking_lock_ms=100"]);
    assert_eq!(code, 1, "the hold breaches the budget: {}", dir.display());
    let held = rec
        .locks
        .iter()
        .find(|l| l.locktype == "advisory")
        .unwrap_or_else(|| panic!("no advisory lock in locks.csv: {}", dir.display()));
    assert_eq!(
        (held.relation.as_str(), held.mode.as_str()),
        ("advisory 42", "ExclusiveLock")
    );
    assert_eq!(held.blocks, pgrehearse::record::Blocks::Sessions);
    assert!(held.held_ms.is_some_and(|h| h >= 500.0), "{held:?}");
    let waits: Vec<_> = rec.waits.iter().filter(|w| w.query == "take_job").collect();
    assert!(!waits.is_empty(), "{}", dir.display());
    assert!(
        waits.iter().all(|w| w.relation == "advisory 42"),
        "{waits:?}"
    );
}

#[test]
fn a_wait_behind_another_sessions_lock_is_not_the_migrations() {
    // QA: writes held back by a script's SHARE lock were charged to the
    // migration (queued-behind-migration) for the whole wait, and failed
    // max_app_wait_ms, where the migration's part was about 10 ms.
    let (code, rec, dir) = rehearse("queued-behind-a-script.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
    let long = |q: &str| {
        rec.waits
            .iter()
            .filter(|w| w.query == q && w.wait_ms > 200.0)
            .collect::<Vec<_>>()
    };
    let (writes, reads) = (long("write"), long("read"));
    // Writes that began once the migration's request was queued: blocked
    // by both, the script's SHARE most of the time.
    assert!(
        writes.iter().any(|w| w.blocked_by.contains("m:")) && !reads.is_empty(),
        "{}",
        dir.display()
    );
    assert!(
        writes.iter().all(|w| w.cause == WaitCause::App),
        "{writes:?}"
    );
    assert!(
        reads
            .iter()
            .all(|w| w.cause == WaitCause::QueuedBehindMigration),
        "{reads:?}"
    );
    // The migration's own wait says who held it up.
    let mine = rec
        .locks
        .iter()
        .find(|l| l.mode == "AccessExclusiveLock" && l.wait_ms > 200.0)
        .unwrap_or_else(|| panic!("the migration's wait: {:#?}", rec.locks));
    assert_eq!(mine.blocked_by, "script report", "{mine:?}");
}

#[test]
fn a_session_advisory_lock_outlives_its_step() {
    // QA: the session reset between steps released it, and the last
    // step's unlock found nothing to unlock.
    let (code, _, dir) = rehearse("session-advisory.toml", &[]);
    assert_eq!(code, 0, "{}", dir.display());
}

/// A step that terminates every other backend of the rehearsal's database
/// (`pg_terminate_backend` of all but its own) kills the app's connections
/// and pgrehearse's own sessions — health check, wait observer, server
/// sampler, lock poller — while the server lives on. Each reconnects: the
/// rehearsal goes on (QA: exit 4 "the server stopped answering" on the
/// health session's first failure), and the next step is observed as any
/// other.
#[test]
fn a_step_that_terminates_other_backends_does_not_end_the_rehearsal() {
    let file = common::fixture("engine/terminate-backends.toml");
    let ran = common::run(&file, &["--backend", "local", "-v"], &[]);
    assert!(!ran.stderr.contains("stopped answering"), "{}", ran.stderr);
    ran.assert_code(0);
    let (_, rec) = ran.record();
    let info = rec.info.as_ref().unwrap();
    assert_eq!(info.failure, None);
    // It did terminate sessions: the app's got 57P01 and reconnected.
    assert!(
        rec.errors.iter().any(|e| e.sqlstate == "57P01"),
        "{:?}",
        rec.errors
    );
    // Every session of ours was terminated and came back (`-v`).
    for who in [
        "health: the health session was lost",
        "the wait observer: its session was lost",
        "the server sampler: its session was lost",
        "the migration's lock poller: its session was lost",
    ] {
        assert!(ran.stderr.contains(who), "no {who:?}: {}", ran.stderr);
    }
    // The observers went on: the next step's locks (outside a transaction:
    // the lock poller's) and server samples after it.
    let index = info.steps.iter().find(|s| s.step == "index").unwrap();
    assert!(
        rec.locks
            .iter()
            .any(|l| l.step == "index" && l.source == "poll" && l.relation == "orders"),
        "{:#?}",
        rec.locks
    );
    assert!(
        rec.server.iter().any(|s| s.t_ms > index.end_ms),
        "no server sample after {}: {:?}",
        index.end_ms,
        rec.server
    );
    assert_eq!(info.steps.iter().filter(|s| s.outcome == "ok").count(), 2);
}

/// An index made ON ONLY a partitioned table and attached on one of its two
/// partitions is still INVALID at the end: not a failed build left behind
/// (QA: a critical `invalid_index` advising DROP INDEX CONCURRENTLY, which
/// a partitioned index refuses, and a breached `max_invalid_indexes`), but
/// a pattern not finished.
#[test]
fn an_on_only_index_not_attached_everywhere_is_unattached_not_invalid() {
    let file = common::fixture("engine/on-only-index.toml");
    let ran = common::run(&file, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let info = rec.info.as_ref().unwrap();
    assert!(
        info.invalid_indexes.is_empty(),
        "{:?}",
        info.invalid_indexes
    );
    assert_eq!(info.unattached_indexes, ["events_kind_idx"]);
    let summary = common::json(&dir.join("summary.json"));
    let kinds: Vec<_> = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["kind"].as_str().unwrap(), f["severity"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("unattached_index", "warning")),
        "{kinds:?}"
    );
    assert!(
        !kinds.iter().any(|(k, _)| *k == "invalid_index"),
        "{kinds:?}"
    );
}

/// The migration waits for a row a script holds: one row in locks.csv for
/// the wait, named by the row's table and by who held it up (QA: two rows,
/// one named `transactionid`, and nothing said the script was in the way).
#[test]
fn the_migrations_wait_names_who_held_it_up() {
    let file = common::fixture("engine/migration-row-wait.toml");
    let ran = common::run(&file, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let waits: Vec<_> = rec
        .locks
        .iter()
        .filter(|l| l.locktype == "transactionid" && l.mode == "ShareLock")
        .collect();
    assert_eq!(waits.len(), 1, "{waits:#?}");
    let w = waits[0];
    assert_eq!(w.relation, "t", "{w:?}");
    assert!(w.wait_ms > 200.0, "{w:?}");
    assert_eq!(w.blocked_by, "script row_locker", "{w:?}");
    let summary = common::json(&dir.join("summary.json"));
    assert_eq!(
        summary["steps"][0]["lock_wait_behind"],
        serde_json::json!(["script row_locker"]),
        "{}",
        summary["steps"][0]
    );
}

/// ATTACH PARTITION of a table whose CHECK proves its bounds, into a parent
/// with a DEFAULT partition: the scan is of the DEFAULT partition, and the
/// finding says so (QA: it named the new partition, and advised the CHECK
/// it already had).
#[test]
fn an_attach_names_the_partition_it_scanned() {
    let file = common::fixture("engine/attach-scans-default.toml");
    let ran = common::run(&file, &["--backend", "local", "-q"], &[]);
    let (dir, rec) = ran.record();
    let attach = rec
        .statements
        .iter()
        .find(|s| s.sql.contains("ATTACH"))
        .unwrap();
    assert_eq!(attach.scanned, "events_default", "{attach:?}");
    let summary = common::json(&dir.join("summary.json"));
    let scan = summary["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "scan_under_access_exclusive")
        .unwrap_or_else(|| panic!("no scan finding: {}", summary["findings"]));
    assert_eq!(scan["relation"], "events_default", "{scan}");
}

/// The step waits for row 1's tuple lock, held by an app update that is
/// itself waiting for a script's lock on the row: both hold it up, the
/// app update is no mere "queued ahead" (QA), and the script is named.
#[test]
fn a_wait_behind_a_chain_names_the_session_at_its_root() {
    let file = common::fixture("engine/row-wait-chain.toml");
    let ran = common::run(&file, &["--backend", "local", "-q"], &[]);
    let (_dir, rec) = ran.record();
    let w = rec
        .locks
        .iter()
        .filter(|l| l.step == "update row 1" && l.wait_ms > 100.0)
        .max_by(|a, b| a.wait_ms.total_cmp(&b.wait_ms))
        .unwrap_or_else(|| panic!("the step's wait: {:#?}", rec.locks));
    assert!(w.blocked_by.contains("script holder"), "{w:?}");
    assert!(!w.blocked_by.contains("queued ahead"), "{w:?}");
}
