//! `-v` / `-vv`: what pgrehearse does, logged on stderr, through the real
//! binary on a local cluster.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn run_tiny(verbosity: &str) -> Output {
    let out = tempfile::tempdir().unwrap();
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/tiny.toml");
    let output = Command::new(common::bin())
        .arg("run")
        .arg(tiny)
        .args(["--backend", "local", verbosity, "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[test]
fn v_logs_stages_with_durations_and_every_statement_sent() {
    let output = run_tiny("-v");
    let stderr = String::from_utf8_lossy(&output.stderr);
    for stage in ["provision", "seed", "run", "record", "report", "teardown"] {
        let ended = format!("stage {stage}: ended after ");
        assert!(stderr.contains(&ended), "no `{ended}`:\n{stderr}");
    }
    // The migration's statements, as sent, in order.
    let alter = stderr
        .find("sending ALTER TABLE orders ADD COLUMN total_v2 bigint")
        .unwrap_or_else(|| panic!("the ALTER was not logged:\n{stderr}"));
    let index = stderr
        .find("sending CREATE INDEX CONCURRENTLY orders_customer ON orders (customer_id)")
        .unwrap_or_else(|| panic!("the CREATE INDEX was not logged:\n{stderr}"));
    assert!(alter < index, "{stderr}");
    // -vv's observer polls are not there; no colours into a pipe.
    assert!(!stderr.contains("polls in"), "{stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "escape codes in a pipe:\n{stderr}"
    );
    // The log is on stderr only: stdout keeps the summary.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(!stdout.contains("stage "), "{stdout}");
}

#[test]
fn vv_adds_the_observer_polls_summed_up_per_second() {
    let output = run_tiny("-vv");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let polls: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("observer: ") && l.contains(" polls in "))
        .collect();
    // tiny runs traffic for about two seconds: one line per second of it,
    // not one per 5 ms poll.
    assert!(!polls.is_empty(), "no poll summaries:\n{stderr}");
    assert!(polls.len() <= 10, "{} poll lines:\n{stderr}", polls.len());
    // A second with no request on the server long enough to wait skips its
    // polls; the line says so rather than going missing.
    assert!(
        polls.iter().all(|l| l.contains("ticks skipped")),
        "{stderr}"
    );
}
