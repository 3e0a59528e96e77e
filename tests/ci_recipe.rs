//! The CI recipe works as written: the `pgrehearse ...` commands of
//! examples/github-actions.yml, with the env the workflow sets, run on a copy
//! of examples/flyway-shop/ in a git repository where the pending migration
//! is the commit under test and `origin/main` the base branch. The safe
//! migration passes; the naive one breaches the budget (exit 1), and the job
//! summary and run directory say so, and that it edited a released migration. Commands are read from the YAML so the
//! recipe and this test cannot drift.
#![cfg(feature = "docker")]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

const WORKFLOW: &str = "examples/github-actions.yml";
const PENDING: &str = "db/migration/V5__orders_account_index.sql";
/// A released migration the naive pull request also edits.
const EDITED: &str = "db/migration/V4__touch_updated_at.sql";
const NAIVE: &str = "-- Pending, the naive way: blocks every write to orders while it builds.\n\
                     CREATE INDEX orders_account_id_idx ON orders (account_id);\n";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The workflow's `pgrehearse ...` command lines, in order.
fn workflow_commands(yaml: &str) -> Vec<String> {
    yaml.lines()
        .map(str::trim)
        .map(|l| l.strip_prefix("run:").map_or(l, str::trim))
        .filter(|l| l.starts_with("pgrehearse "))
        .map(str::to_string)
        .collect()
}

/// The job's `env:` (KEY: value lines under it), `${{ github.base_ref }}`
/// as a pull request against main would give it.
fn workflow_env(yaml: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = yaml.lines().skip_while(|l| l.trim() != "env:");
    let Some(header) = lines.next() else {
        return out;
    };
    let indent = header.len() - header.trim_start().len();
    for l in lines {
        let t = l.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        if l.len() - l.trim_start().len() <= indent {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            let v = v.trim().replace("${{ github.base_ref }}", "main");
            out.push((k.trim().to_string(), v));
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The example project with its history on `origin/main` and the pending
/// migration (`pending` as its text) committed on top.
fn project(tmp: &Path, pending: &str, edit_merged: bool) -> PathBuf {
    let dir = tmp.join("shop");
    copy_dir(&repo_root().join("examples/flyway-shop"), &dir);
    let pending_path = dir.join(PENDING);
    std::fs::remove_file(&pending_path).unwrap();
    common::git(&dir, &["init", "-q", "-b", "feature"]);
    common::git(&dir, &["add", "-A"]);
    common::git(&dir, &["commit", "-qm", "releases 1 to 4"]);
    common::git(&dir, &["update-ref", "refs/remotes/origin/main", "HEAD"]);
    std::fs::write(&pending_path, pending).unwrap();
    if edit_merged {
        // A change to a migration production already ran: warned about.
        let merged = dir.join(EDITED);
        let text = std::fs::read_to_string(&merged).unwrap();
        std::fs::write(&merged, format!("{text}-- edited after the release\n")).unwrap();
    }
    common::git(&dir, &["add", "-A"]);
    common::git(
        &dir,
        &[
            "commit",
            "-qm",
            "the pull request: an index on orders.account_id",
        ],
    );
    dir
}

struct Step {
    command: String,
    code: i32,
    stderr: String,
}

/// Each command as the workflow's shell runs it, until one fails (as a job's
/// steps do).
fn run_workflow(dir: &Path, image: &str, summary: &Path) -> Vec<Step> {
    let yaml = std::fs::read_to_string(repo_root().join(WORKFLOW)).unwrap();
    let commands = workflow_commands(&yaml);
    assert!(
        commands.iter().any(|c| c.starts_with("pgrehearse check "))
            && commands.iter().any(|c| c.starts_with("pgrehearse run ")),
        "{WORKFLOW} checks and runs: {commands:?}"
    );
    let env = workflow_env(&yaml);
    assert!(
        env.iter().any(|(k, _)| k == "BASE_REF"),
        "{WORKFLOW} sets BASE_REF: {env:?}"
    );
    let bin_dir = common::bin().parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut steps = Vec::new();
    for command in commands {
        let mut cmd = Command::new("bash");
        cmd.args(["-eo", "pipefail", "-c", &command])
            .current_dir(dir)
            .env("PATH", &path)
            .env("GITHUB_STEP_SUMMARY", summary)
            .env("GITHUB_ACTIONS", "true")
            .env_remove("PGREHEARSE_BACKEND")
            .env_remove("PGREHEARSE_DATABASE_URL");
        for (k, v) in &env {
            cmd.env(k, v);
        }
        // This machine cannot pull: the workflow's image, built offline.
        cmd.env("PGREHEARSE_IMAGE", image);
        let out = cmd.output().expect("bash");
        let step = Step {
            command,
            code: out.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        let failed = step.code != 0;
        steps.push(step);
        if failed {
            break;
        }
    }
    steps
}

fn only_run_dir(dir: &Path) -> PathBuf {
    let out = dir.join("rehearsals");
    common::run_dir_in(&out).unwrap_or_else(|| panic!("no run directory under {}", out.display()))
}

#[tokio::test]
async fn the_workflow_passes_a_safe_migration_and_fails_a_naive_one() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let tmp = common::isolated_tmpdir();
    for (case, pending, want) in [
        (
            "safe",
            std::fs::read_to_string(repo_root().join("examples/flyway-shop").join(PENDING))
                .unwrap(),
            0,
        ),
        ("naive", NAIVE.to_string(), 1),
    ] {
        let case_dir = tmp.path().join(case);
        std::fs::create_dir_all(&case_dir).unwrap();
        let dir = project(&case_dir, &pending, case == "naive");
        let summary = case_dir.join("step-summary.md");
        let image = image.clone();
        let (steps, dir, summary) = tokio::task::spawn_blocking(move || {
            (run_workflow(&dir, &image, &summary), dir, summary)
        })
        .await
        .unwrap();
        let codes: Vec<(String, i32)> = steps.iter().map(|s| (s.command.clone(), s.code)).collect();
        let last = steps.last().unwrap();
        assert!(
            last.command.starts_with("pgrehearse run ") && last.code == want,
            "{case}: every step ran and the rehearsal exited {want}: {codes:?}\nstderr:\n{}",
            last.stderr
        );
        assert!(
            steps[..steps.len() - 1].iter().all(|s| s.code == 0),
            "{case}: {codes:?}"
        );

        let run_dir = only_run_dir(&dir);
        let rec: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json")).unwrap())
                .unwrap();
        let m = &rec["migrations"];
        assert_eq!(m["selection"], "since git origin/main", "{case}");
        assert_eq!(
            m["rehearsed"],
            serde_json::json!(["V5__orders_account_index.sql"])
        );
        let setup: Vec<&str> = m["setup"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["file"].as_str().unwrap())
            .collect();
        // Flyway's order: 1.9 before 1.10. The naive case's edited V4 is
        // set up as it was on the base branch, as production has it.
        let v4 = if case == "naive" {
            "V4__touch_updated_at.sql@origin/main"
        } else {
            "V4__touch_updated_at.sql"
        };
        assert_eq!(
            setup,
            [
                "V1__accounts_and_orders.sql",
                "V1.9__order_status.sql",
                "V1.10__order_status_index.sql",
                "V2__order_lines.sql",
                "V3__accounts_email_unique.sql",
                v4
            ],
            "{case}"
        );
        assert!(m["setup"]
            .as_array()
            .unwrap()
            .iter()
            .all(|f| f["outcome"] == "ok"));
        let edited_file = EDITED.rsplit('/').next().unwrap();
        let run = &steps[steps.len() - 1];
        if case == "naive" {
            assert_eq!(m["edited"], serde_json::json!([edited_file]), "{case}");
            assert!(
                run.stderr
                    .contains(&format!("{edited_file} was already merged at origin/main")),
                "{}",
                run.stderr
            );
        } else {
            assert!(m.get("edited").is_none(), "{case}: {m}");
        }

        let summary = std::fs::read_to_string(&summary).expect("the job summary was written");
        let verdict = if want == 0 { "PASS" } else { "FAIL" };
        assert!(
            summary.contains(verdict) && summary.contains("V5__orders_account_index.sql"),
            "{case}: the job summary shows {verdict} and the step:\n{summary}"
        );
        if want == 1 {
            assert!(
                summary.contains("max_blocking_lock_ms"),
                "the breached budget is named:\n{summary}"
            );
            assert!(
                summary.contains(&format!("Merged migration edited: {edited_file}")),
                "the edited migration is named:\n{summary}"
            );
        }
    }
}

#[test]
fn the_workflow_commands_are_found() {
    let yaml = std::fs::read_to_string(repo_root().join(WORKFLOW)).unwrap();
    let commands = workflow_commands(&yaml);
    assert_eq!(commands.len(), 2, "{commands:?}");
    assert!(commands
        .iter()
        .all(|c| c.contains("--since-git \"origin/$BASE_REF\"")));
    assert!(commands[1].contains("--backend docker"));
    let env = workflow_env(&yaml);
    assert!(
        env.contains(&("BASE_REF".to_string(), "main".to_string())),
        "{env:?}"
    );
    assert!(env.iter().any(|(k, _)| k == "PGREHEARSE_IMAGE"), "{env:?}");
}
