//! Live progress: shown on a terminal (phase/step, qps, p99, waiting
//! backends), absent when output is not a terminal or with -q.

mod common;

use std::path::Path;
use std::process::Command;

fn tiny() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/good/tiny.toml")
        .display()
        .to_string()
}

#[test]
fn progress_only_on_a_terminal() {
    let out = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} run {} --backend local --out {}",
        common::bin().display(),
        tiny(),
        out.path().display()
    );
    // util-linux `script` gives the child a pseudo-terminal.
    let tty = Command::new("script")
        .args(["-qefc", &cmd, "/dev/null"])
        .output()
        .expect("script(1) from util-linux");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(tty.status.success(), "{shown}");
    assert!(
        shown.contains("qps") && shown.contains("waiting backends"),
        "no live progress on a terminal:\n{shown}"
    );
    assert!(shown.contains("p99"), "{shown}");

    let piped = Command::new(common::bin())
        .args(["run", &tiny(), "--backend", "local", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(piped.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(
        !all.contains("waiting backends"),
        "progress drawn without a terminal:\n{all}"
    );
    // Without -v nothing is logged (tests/verbose.rs covers -v).
    assert!(!all.contains("stage seed"), "a log without -v:\n{all}");
}
