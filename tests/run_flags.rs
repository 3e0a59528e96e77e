//! The flags of `pgrehearse run` that users script against, through the
//! real binary on a local cluster, with small data: `--json`, `--budget`,
//! `--rows`, `--scale`, `--seed`, `--before` / `--after`, and exit code 1 on
//! a breached budget.

mod common;

use std::path::PathBuf;

use pgrehearse::record::RunRecord;

fn small() -> PathBuf {
    common::fixture("cli/small.toml")
}

fn rows(rec: &RunRecord) -> Vec<(String, u64)> {
    rec.info.as_ref().expect("run.json").rows.clone()
}

/// `--json` prints summary.json, and only it, on stdout; `--rows N` gives
/// the largest table N rows and the other its proportion.
#[test]
fn json_prints_the_summary_and_rows_scales_the_tables() {
    let ran = common::run(
        &small(),
        &["--backend", "local", "--json", "--rows", "2k"],
        &[],
    );
    ran.assert_code(0);
    let printed: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", ran.stdout));
    let (dir, rec) = ran.record();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(printed, written, "stdout is summary.json");
    assert_eq!(printed["verdict"], "pass", "{}", ran.stdout);
    assert_eq!(printed["run"]["scenario"], "cli-small");
    assert!(printed["budgets"].as_array().is_some_and(|b| !b.is_empty()));
    assert_eq!(
        rows(&rec),
        vec![
            ("accounts".to_string(), 2000),
            ("branches".to_string(), 500)
        ]
    );
    assert_eq!(
        printed["run"]["rows"],
        serde_json::json!([["accounts", 2000], ["branches", 500]])
    );
}

/// `--budget KEY=VALUE` tightens the scenario's budget (the loose one passes,
/// see above); the breach exits 1, the summary names it, run.json records the
/// budget in force, the scenario's other limits still apply; and `--scale F`
/// multiplies every table's rows.
#[test]
fn budget_overrides_the_scenario_and_a_breach_exits_1_and_scale_multiplies_rows() {
    let ran = common::run(
        &small(),
        &[
            "--backend",
            "local",
            "-q",
            "--scale",
            "0.5",
            "--budget",
            "max_duration_ms=0.001",
        ],
        &[],
    );
    ran.assert_code(1);
    assert!(ran.stdout.to_lowercase().contains("fail"), "{}", ran.stdout);
    let (dir, rec) = ran.record();
    let info = rec.info.as_ref().unwrap();
    assert_eq!(info.failure, None, "the rehearsal itself went through");
    assert_eq!(
        info.budget.max_duration_ms,
        Some(0.001),
        "--budget in force"
    );
    assert_eq!(
        info.budget.p99_ms,
        Some(10_000.0),
        "the scenario's own limit"
    );
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "fail");
    assert_eq!(summary["breached"], serde_json::json!(["max_duration_ms"]));
    assert_eq!(
        rows(&rec),
        vec![
            ("accounts".to_string(), 2000),
            ("branches".to_string(), 500)
        ]
    );
}

/// The fixture's only step fails with an md5 of all seeded values (the data
/// itself is gone with the server): the same `--seed` gives the same data,
/// another seed other data.
#[test]
fn the_same_seed_gives_the_same_data_another_seed_other_data() {
    let checksum = |seed: &str| {
        let ran = common::run(
            &common::fixture("cli/seed-checksum.toml"),
            &["--backend", "local", "-q", "--seed", seed],
            &[],
        );
        ran.assert_code(4);
        let (_, rec) = ran.record();
        let info = rec.info.unwrap();
        assert_eq!(info.seed.to_string(), seed, "run.json records the seed");
        let failure = info.failure.unwrap_or_default();
        let sum = regex::Regex::new(r"data checksum ([0-9a-f]{32})")
            .unwrap()
            .captures(&failure)
            .unwrap_or_else(|| panic!("no checksum in the failure: {failure}"))[1]
            .to_string();
        sum
    };
    let first = checksum("7");
    assert_eq!(first, checksum("7"), "same seed, same data");
    assert_ne!(first, checksum("8"), "another seed, other data");
}

/// `--before` / `--after` replace the scenario's traffic before the first
/// step and after the last (the fixture says 500 ms each); a value that is
/// not a duration is bad usage, refused before anything starts.
#[test]
fn before_and_after_replace_the_scenarios_traffic_around_the_migration() {
    let ran = common::run(
        &small(),
        &[
            "--backend",
            "local",
            "-q",
            "--before",
            "1.5s",
            "--after",
            "1200ms",
        ],
        &[],
    );
    ran.assert_code(0);
    let (_, rec) = ran.record();
    let info = rec.info.as_ref().unwrap();
    let first = rec.statements.first().expect("the step ran");
    let last = rec.statements.last().unwrap();
    assert!(
        first.start_ms >= 1500.0,
        "the migration started at {} ms, before --before 1.5s",
        first.start_ms
    );
    assert!(
        info.end_ms - last.end_ms >= 1200.0,
        "traffic ended {} ms after the migration, under --after 1200ms",
        info.end_ms - last.end_ms
    );

    let bad = common::run(&small(), &["--backend", "local", "--before", "soon"], &[]);
    bad.assert_code(2);
    assert!(
        bad.stderr.contains("--before") && bad.stderr.contains("not a duration"),
        "{}",
        bad.stderr
    );
    assert!(common::run_dir_in(bad.out()).is_none(), "nothing ran");
}

/// A step with `expect_error` that fails with that SQLSTATE is rolled back
/// and the migration goes on (step outcome `expected_error`, exit 0); one
/// that succeeds fails the rehearsal (exit 4), since what it was there to
/// show did not happen.
#[test]
fn expect_error_lets_the_expected_failure_pass_and_fails_a_success() {
    let base = std::fs::read_to_string(small()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, step: &str| {
        let text = base.replace(
            "[[phase.step]]\nname = \"add column\"",
            &format!("[[phase.step]]\nname = \"{name}\"\n{step}\n\n[[phase.step]]\nname = \"add column\""),
        );
        assert_ne!(text, base);
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let fails = write(
        "times out",
        "sql = \"SELECT pg_sleep(5)\"\nstatement_timeout = \"50ms\"\nexpect_error = \"57014\"",
    );
    let ran = common::run(&fails, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (_, rec) = ran.record();
    let steps = &rec.info.as_ref().unwrap().steps;
    let outcomes: Vec<(&str, &str)> = steps
        .iter()
        .map(|s| (s.step.as_str(), s.outcome.as_str()))
        .collect();
    assert_eq!(
        outcomes,
        [("times out", "expected_error"), ("add column", "ok")]
    );
    assert_eq!(rec.statements[0].sqlstate, "57014");
    // The report says so too, not "error".
    let (dir, _) = ran.record();
    let md = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(md.contains("failed as expected (57014)"), "{md}");
    let summary = common::json(&dir.join("summary.json"));
    assert_eq!(
        summary["steps"][0]["outcome"], "expected_error",
        "{summary}"
    );

    let succeeds = write("succeeds", "sql = \"SELECT 1\"\nexpect_error = \"57014\"");
    let ran = common::run(&succeeds, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    assert!(
        ran.stderr.contains("expected to fail with 57014"),
        "{}",
        ran.stderr
    );

    // Not expected: the step ends as its statement did, in run.json too.
    let slow = write(
        "slow",
        "sql = \"SELECT pg_sleep(5)\"\nstatement_timeout = \"50ms\"",
    );
    let ran = common::run(&slow, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    let (_, rec) = ran.record();
    assert_eq!(
        rec.info.as_ref().unwrap().steps[0].outcome,
        "statement_timeout"
    );
    assert_eq!(rec.statements[0].outcome, "statement_timeout");
}

/// `pgrehearse run <small> --backend local ARGS`, which must be refused
/// with exit 2 before anything starts; its stderr.
fn refused(args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .args(["run", small().to_str().unwrap(), "--backend", "local"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

/// An --out pgrehearse cannot write in is said at once, exit 2, before any
/// server starts.
#[test]
fn an_unusable_out_is_a_usage_error_before_anything_starts() {
    let stderr = refused(&["--out", "/dev/null"]);
    assert!(
        stderr.contains("--out /dev/null: not a directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("server"), "nothing started: {stderr}");
}

/// Flags the local backend does not use are refused, not ignored.
#[test]
fn server_flags_the_local_backend_does_not_use_are_refused() {
    for (flag, value) in [
        ("--database-url", "postgres://nobody@127.0.0.1:1/x"),
        ("--image", "nosuch:0"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let stderr = refused(&[flag, value, "--out", dir.path().to_str().unwrap()]);
        assert!(
            stderr.contains(&format!("{flag} is not used by --backend local")),
            "{stderr}"
        );
    }
}

/// A --database-url with no backend picked is the url backend's server
/// (QA: it was ignored, and the run went to an ephemeral local cluster);
/// --backend docker refuses it.
#[test]
fn a_database_url_picks_the_url_backend_and_docker_refuses_it() {
    let url = "postgres://nobody@127.0.0.1:1/x";
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .args([
            "run",
            small().to_str().unwrap(),
            "--database-url",
            url,
            "-q",
        ])
        .env_remove("PGREHEARSE_BACKEND")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "cannot connect to it: {stderr}");
    assert!(stderr.contains("127.0.0.1"), "{stderr}");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .args(["run", small().to_str().unwrap(), "--backend", "docker"])
        .args(["--database-url", url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--database-url is not used by --backend docker"),
        "{stderr}"
    );
}

/// With stdout and stderr closed (`pgrehearse ... 2>&1 | head -1`), what
/// pgrehearse would say is lost, not a panic: exit 2 here, not 101 (QA: a
/// run stopped by that panic could leave its scratch database behind).
#[test]
fn closed_output_pipes_are_not_a_panic() {
    use std::process::Stdio;
    let bad = common::fixture("bad/placeholder_gap.toml");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .args(["check", bad.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    drop(child.stderr.take());
    assert_eq!(child.wait().unwrap().code(), Some(2));
}

/// A run that stops before it writes anything — no PostgreSQL 99 to start,
/// exit 3 — leaves no empty `--out` behind (checking that it can write
/// there made it).
#[test]
fn a_run_that_never_starts_leaves_no_empty_out() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("reports").join("ci");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .args(["run", small().to_str().unwrap(), "--backend", "local"])
        .args(["--pg-version", "99", "-q", "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(3), "{stderr}");
    assert!(!dir.path().join("reports").exists(), "{stderr}");
}
