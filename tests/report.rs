//! Rendering the committed fixture run directory: summaries (insta
//! snapshots), charts, index.html, budgets, and a real browser.

use std::path::{Path, PathBuf};

use pgrehearse::analyze::{parse_budget_override, AnalyzeOptions};
use pgrehearse::report::{render, RenderOptions, Summary};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run")
}

/// A temp copy of the fixture, so rendering never writes into the repo.
fn copy_fixture() -> tempfile::TempDir {
    let t = tempfile::tempdir().unwrap();
    for e in std::fs::read_dir(fixture()).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), t.path().join(e.file_name())).unwrap();
    }
    t
}

fn opts(budget: &[&str]) -> RenderOptions {
    RenderOptions {
        analyze: AnalyzeOptions {
            budget_overrides: budget.iter().map(|b| parse_budget_override(b).unwrap()).collect(),
            ..Default::default()
        },
        charts: true,
        github_step_summary: None,
    }
}

fn render_fixture(budget: &[&str]) -> (tempfile::TempDir, Summary) {
    let t = copy_fixture();
    let s = render(t.path(), &opts(budget)).unwrap();
    if let Ok(keep) = std::env::var("PGREHEARSE_KEEP_REPORT") {
        let keep = PathBuf::from(keep);
        std::fs::create_dir_all(&keep).unwrap();
        for e in std::fs::read_dir(t.path()).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), keep.join(e.file_name())).unwrap();
        }
    }
    (t, s)
}

#[test]
fn renders_the_fixture() {
    let (_t, s) = render_fixture(&[]);
    assert_eq!(s.verdict, "fail");
}
