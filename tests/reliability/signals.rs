//! Ctrl-C and SIGTERM at different stages of a local run. Each signal is
//! sent in a stage the test sees (the server log, the processes of the
//! cluster, the run directory), looked at while the run is stopped, and the
//! outcome says that stage was the one interrupted.

use std::time::Duration;

use crate::exposure::assert_private_cluster;
use crate::harness::*;

#[test]
fn sigint_during_the_migration_cancels_writes_the_report_and_exits_130() {
    let mut r = Rehearsal::local("long-step.toml");
    let sleep_sent = |tmp: &std::path::Path| server_logged_statement(tmp, "SELECT pg_sleep(30)");
    r.wait_until(
        "the 30 s sleep on the server",
        Duration::from_secs(90),
        sleep_sent,
    );
    // While it runs: how exposed is the cluster?
    assert_private_cluster(r.tmp.path());
    r.signal_in_stage("INT", "the sleep", Duration::from_secs(5), |r| {
        sleep_sent(r.tmp.path())
    });
    let run = interrupted(r, 130);

    let (dir, rec) = run.record();
    run.assert_report_written(&dir, "interrupted by SIGINT");
    let info = rec.info.as_ref().unwrap();
    let failure = info.failure.as_deref().unwrap_or_default();
    assert_eq!(
        failure, "interrupted by SIGINT (step `migrate / sleep` was cancelled)",
        "the migration step was the stage interrupted"
    );
    let sleep = rec
        .statements
        .iter()
        .find(|s| s.sql == "SELECT pg_sleep(30)")
        .expect("the sleep statement");
    assert_eq!(sleep.outcome, "cancelled", "{sleep:?}");
    assert!(sleep.duration_ms < 20_000.0, "{sleep:?}");
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);
    assert!(run.stderr.contains("SIGINT"), "{}", run.stderr);
}

/// Interrupted while a step blocks the app: the requests stuck behind the
/// lock and those that fell due unsent never complete, yet they are the
/// stall. The partial report counts them with their age at the stop, so
/// "during" says the app waited about as long as the stall lasted — not
/// the p99 of the few requests that got through before the lock.
#[test]
fn sigint_in_a_stall_counts_the_requests_it_cut_off() {
    let mut r = Rehearsal::local("stalled-step.toml");
    let sleep_sent = |tmp: &std::path::Path| server_logged_statement(tmp, "SELECT pg_sleep(30)");
    r.wait_until(
        "the lock and sleep on the server",
        Duration::from_secs(90),
        sleep_sent,
    );
    // Every request due from the lock on waits: let a second of them fall
    // due.
    std::thread::sleep(Duration::from_millis(1000));
    r.signal_in_stage("INT", "the sleep", Duration::from_secs(5), |r| {
        sleep_sent(r.tmp.path())
    });
    let run = interrupted(r, 130);
    let (dir, _) = run.record();
    run.assert_report_written(&dir, "were unfinished");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    let during = &summary["during"];
    let unfinished = during["unfinished"].as_u64().unwrap_or(0);
    // 200/s for about a second: the two connections' requests and the
    // backlog behind them.
    assert!(unfinished >= 100, "{during}");
    assert!(
        during["requests"].as_u64().unwrap() >= unfinished,
        "{during}"
    );
    let p99 = during["p99_ms"].as_f64().unwrap();
    assert!(
        p99 >= 800.0,
        "the stall's p99, not the quick requests': {during}"
    );
    // Re-rendered from the files, the same figures and exit code: the
    // unfinished requests are due in latency.hdr but completed nowhere.
    let again = dir.join("again");
    let report = std::process::Command::new(crate::common::bin())
        .arg("report")
        .arg(&dir)
        .arg("--out")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(
        report.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
    let text = String::from_utf8_lossy(&report.stdout);
    assert!(text.contains("unfinished at the stop"), "{text}");
    let rerendered: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(again.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(rerendered["during"], summary["during"]);
}

#[test]
fn sigterm_during_seeding_exits_143_and_tears_down() {
    let mut r = Rehearsal::local("big-seed.toml");
    // The load has begun (a COPY arrived) and is not over (no VACUUM yet).
    r.signal_in_stage(
        "TERM",
        "the COPY of seeding",
        Duration::from_secs(90),
        |r| {
            let tmp = r.tmp.path();
            server_log_has(tmp, "FROM STDIN (FORMAT binary") && !server_log_has(tmp, "VACUUM")
        },
    );
    let run = interrupted(r, 143);
    let (dir, rec) = run.record();
    let info = rec.info.as_ref().unwrap();
    assert_eq!(
        info.failure.as_deref(),
        Some("interrupted by SIGTERM while seeding")
    );
    assert!(rec.statements.is_empty(), "no migration statement ran");
    run.assert_report_written(&dir, "interrupted by SIGTERM while seeding");
    // Re-rendered later, the run exits as it did.
    let report = std::process::Command::new(crate::common::bin())
        .arg("report")
        .arg(&dir)
        .output()
        .unwrap();
    assert_eq!(
        report.status.code(),
        Some(143),
        "{}",
        String::from_utf8_lossy(&report.stderr)
    );
}

#[test]
fn sigterm_while_the_cluster_is_created_exits_143_and_leaves_nothing() {
    let mut r = Rehearsal::local("long-step.toml");
    r.signal_in_stage("TERM", "initdb", Duration::from_secs(60), |r| {
        initdb_running(r.tmp.path())
    });
    let run = interrupted(r, 143);
    assert!(run.run_dir().is_none(), "interrupted before the rehearsal");
}

#[test]
fn sigint_while_the_server_starts_exits_130_and_leaves_nothing() {
    let mut r = Rehearsal::local("long-step.toml");
    // Started, not yet ready: the run waits for it to accept connections.
    r.signal_in_stage("INT", "the starting server", Duration::from_secs(60), |r| {
        let tmp = r.tmp.path();
        postmaster_pid(tmp).is_some() && !server_log_has(tmp, "ready to accept connections")
    });
    let run = interrupted(r, 130);
    assert!(run.run_dir().is_none(), "interrupted before the rehearsal");
}

/// `run a.toml b.toml`: a signal during the first scenario stops the batch;
/// the second is not started and the recap says so.
#[test]
fn a_signal_stops_the_whole_batch() {
    let mut r = Rehearsal::start(
        "long-step.toml",
        &["--backend", "local", "-q", &tiny_fixture()],
        &[],
    );
    let sleep_sent = |tmp: &std::path::Path| server_logged_statement(tmp, "SELECT pg_sleep(30)");
    r.wait_until(
        "the 30 s sleep on the server",
        Duration::from_secs(90),
        sleep_sent,
    );
    r.signal_in_stage("INT", "the sleep", Duration::from_secs(5), |r| {
        sleep_sent(r.tmp.path())
    });
    let run = interrupted(r, 130);
    let names: Vec<String> = run.run_dirs().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["long-step"], "{}", run.stderr);
    assert!(
        run.stderr
            .lines()
            .any(|l| l.trim_start().starts_with("tiny") && l.contains("not run")),
        "{}",
        run.stderr
    );
}
