//! A failing migration step, a server that dies mid-run.

use std::time::{Duration, Instant};

use crate::harness::*;

#[test]
fn migration_sql_error_is_recorded_reported_and_exits_4() {
    let run = Rehearsal::local("sql-error.toml").finish(Duration::from_secs(120));
    run.assert_code(4);
    let (dir, rec) = run.record();
    run.assert_report_written(&dir, "relation \"nope\" does not exist (42P01)");

    // The failing statement, with its SQLSTATE.
    let failed: Vec<_> = rec
        .statements
        .iter()
        .filter(|s| s.outcome == "error")
        .collect();
    assert_eq!(failed.len(), 1, "{:#?}", rec.statements);
    assert_eq!(failed[0].sql, "ALTER TABLE nope ADD COLUMN x int");
    assert_eq!(failed[0].sqlstate, "42P01");
    assert_eq!(failed[0].step, "alter missing table");
    // The step before it ran; the one after it did not.
    assert!(rec
        .statements
        .iter()
        .any(|s| s.step == "add column" && s.outcome == "ok"));
    assert!(rec.statements.iter().all(|s| s.step != "never runs"));

    // run.json says what failed.
    let info = rec.info.as_ref().expect("run.json");
    let failure = info.failure.as_deref().expect("run.json failure");
    assert!(
        failure.contains("alter missing table") && failure.contains("42P01"),
        "{failure}"
    );
    let step = info
        .steps
        .iter()
        .find(|s| s.step == "alter missing table")
        .expect("the failed step in run.json");
    assert_eq!(step.outcome, "error");
    // The traffic until then was recorded.
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);

    // The error names the failure and where the report is.
    assert!(run.stderr.contains("42P01"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&dir.display().to_string()),
        "{}",
        run.stderr
    );
    run.assert_nothing_left();
}

/// Queries that cannot run on the seeded schema are the scenario's mistake:
/// exit 2 before any traffic, each named at its place in the file, a
/// partial report saying why, nothing left behind.
#[test]
fn queries_that_do_not_fit_the_schema_exit_2_before_any_traffic() {
    let run = Rehearsal::local("query-mistakes.toml").finish(Duration::from_secs(120));
    run.assert_code(2);
    let file = fixture("query-mistakes.toml");
    let at =
        |line: usize, col: usize, rest: &str| format!("{}:{line}:{col}: {rest}", file.display());
    for want in [
        at(25, 1, "workload.query[0].sql: query `read`: cannot run on the schema as seeded: relation \"tt\" does not exist (42P01)"),
        at(32, 11, "workload.query[1].params[0]: query `by_value`: $1 is a int4 for the server, and its generator's values do not fit"),
    ] {
        assert!(run.stderr.contains(&want), "want {want}\nstderr:\n{}", run.stderr);
    }
    assert!(!run.stderr.contains("read_new"), "{}", run.stderr);
    let (dir, rec) = run.record();
    let failure = rec.info.as_ref().and_then(|i| i.failure.clone()).unwrap();
    assert!(
        failure.starts_with("the workload's queries do not fit the schema"),
        "{failure}"
    );
    assert_eq!(
        rec.latency.iter().map(|l| l.count).sum::<u64>(),
        0,
        "no traffic ran"
    );
    assert!(dir.join("run.json").is_file());
    run.assert_nothing_left();
}

/// SIGKILL the postmaster once the server has the long statement
/// `step_sql` (its log shows it arrive; it runs for far longer than the
/// test): the run must notice within seconds, write what it recorded, exit 4
/// and leave nothing behind.
fn kill_the_server_during(fixture_name: &str, step_sql: &str) {
    let mut r = Rehearsal::local(fixture_name);
    r.wait_until("the long statement", Duration::from_secs(90), |tmp| {
        server_logged_statement(tmp, step_sql)
    });
    let postmaster = postmaster_pid(r.tmp.path()).expect("the postmaster");
    send_signal(postmaster, "KILL");
    let killed = Instant::now();
    let run = r.finish(Duration::from_secs(60));
    let after_kill = killed.elapsed();
    run.assert_code(4);
    assert!(
        after_kill < Duration::from_secs(10),
        "took {after_kill:?} after the kill"
    );
    assert!(
        run.elapsed < Duration::from_secs(25),
        "the run took {:?}: it waited for the step",
        run.elapsed
    );

    let (dir, rec) = run.record();
    let info = rec.info.as_ref().expect("run.json");
    let failure = info.failure.as_deref().expect("a failure in run.json");
    run.assert_report_written(&dir, failure);
    assert!(
        failure.contains("connection lost") || failure.contains("stopped answering"),
        "{failure}"
    );
    // What was recorded before the death was written, and the statement cut
    // short is the one the server was killed under.
    let step = rec
        .statements
        .iter()
        .find(|s| s.sql == step_sql)
        .expect("the long statement");
    assert_ne!(step.outcome, "ok");
    let last = info.steps.last().expect("the step in run.json");
    assert_eq!(last.step, step.step, "the run stopped in that step");
    assert_ne!(last.outcome, "ok", "{last:?}");
    assert!(step.duration_ms < 20_000.0, "{step:?}");
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);
    assert!(!rec.server.is_empty(), "server samples were written");
    run.assert_nothing_left();
}

#[test]
fn a_server_killed_mid_run_is_noticed_within_seconds_and_exits_4() {
    kill_the_server_during("long-step.toml", "SELECT pg_sleep(30)");
}

/// A backend busy in a CPU-bound query does not notice its postmaster's
/// death: it must not outlive the run.
#[test]
fn a_killed_server_leaves_no_orphaned_backend() {
    kill_the_server_during("busy-step.toml", "SELECT count(*) FROM t a, t b, t c");
}

/// `run a.toml b.toml`: a scenario that fails does not stop the next one;
/// each gets its run directory and a recap line, the worst exit code wins.
#[test]
fn a_failed_scenario_does_not_stop_the_batch_and_the_worst_code_wins() {
    let run = Rehearsal::start(
        "sql-error.toml",
        &["--backend", "local", "-q", &tiny_fixture()],
        &[],
    )
    .finish(Duration::from_secs(180));
    run.assert_code(4);
    let dirs = run.run_dirs();
    let names: Vec<&str> = dirs.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["sql-error", "tiny"], "{}", run.stderr);

    let (_, failed) = &dirs[0];
    run.assert_report_written(failed, "relation \"nope\" does not exist (42P01)");
    let (_, clean) = &dirs[1];
    let rec = pgrehearse::record::RunRecord::read(clean).unwrap();
    let info = rec.info.expect("tiny's run.json");
    assert_eq!(info.failure, None);
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(clean.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["verdict"], "pass", "{summary:#}");

    // One recap line per scenario: its exit code and run directory.
    let recap = |name: &str, code: &str, dir: &std::path::Path| {
        run.stderr.lines().any(|l| {
            l.trim_start().starts_with(name)
                && l.contains(code)
                && l.contains(&dir.display().to_string())
        })
    };
    assert!(recap("sql-error", "exit 4", failed), "{}", run.stderr);
    assert!(recap("tiny", "exit 0", clean), "{}", run.stderr);
    run.assert_nothing_left();
}
