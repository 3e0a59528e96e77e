//! Ctrl-C and SIGTERM at different moments of a local run.

use std::time::Duration;

use crate::exposure::assert_private_cluster;
use crate::harness::*;

#[test]
fn sigint_during_the_migration_cancels_writes_the_report_and_exits_130() {
    let mut r = Rehearsal::local("long-step.toml");
    r.wait_until("the 30 s step", Duration::from_secs(90), |tmp| {
        server_log_has(tmp, "CREATE TABLE sleep_marker")
    });
    // While it runs: how exposed is the cluster?
    assert_private_cluster(r.tmp.path());
    let run = interrupt(r, "INT", 130);

    let (dir, rec) = run.record();
    run.assert_report_written(&dir, "interrupted by SIGINT");
    let info = rec.info.as_ref().unwrap();
    let failure = info.failure.as_deref().unwrap_or_default();
    assert!(
        failure.starts_with("interrupted by SIGINT") && failure.contains("migrate / sleep"),
        "{failure}"
    );
    let sleep = rec
        .statements
        .iter()
        .find(|s| s.sql.contains("pg_sleep"))
        .expect("the sleep statement");
    assert_eq!(sleep.outcome, "cancelled", "{sleep:?}");
    assert!(sleep.duration_ms < 20_000.0, "{sleep:?}");
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);
    assert!(run.stderr.contains("SIGINT"), "{}", run.stderr);
}

#[test]
fn sigterm_during_seeding_exits_143_and_tears_down() {
    let mut r = Rehearsal::local("big-seed.toml");
    r.wait_until("seeding", Duration::from_secs(90), |tmp| {
        server_log_has(tmp, "CREATE TABLE big")
    });
    std::thread::sleep(Duration::from_millis(300));
    let run = interrupt(r, "TERM", 143);
    let (dir, rec) = run.record();
    let failure = rec.info.and_then(|i| i.failure).unwrap_or_default();
    assert!(failure.contains("seeding"), "{failure}");
    run.assert_report_written(&dir, "interrupted while seeding");
}

#[test]
fn sigterm_while_the_cluster_is_created_exits_143_and_leaves_nothing() {
    // The temp dir appears first (initdb is about to run or running).
    let mut r = Rehearsal::local("long-step.toml");
    r.wait_until("the cluster dir", Duration::from_secs(30), |tmp| {
        cluster_dir(tmp).is_some()
    });
    interrupt(r, "TERM", 143);
}

#[test]
fn sigint_while_the_server_starts_exits_130_and_leaves_nothing() {
    let mut r = Rehearsal::local("long-step.toml");
    r.wait_until("the postmaster", Duration::from_secs(60), |tmp| {
        postmaster_pid(tmp).is_some()
    });
    interrupt(r, "INT", 130);
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
    r.wait_until("the 30 s step", Duration::from_secs(90), |tmp| {
        server_log_has(tmp, "CREATE TABLE sleep_marker")
    });
    let run = interrupt(r, "INT", 130);
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
