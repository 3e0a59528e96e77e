//! `run --pg-version`: the same scenario on PostgreSQL 15 and 17 gives a run
//! directory each whose run.json names a different server, and a
//! side-by-side directory linking them; a version pgrehearse does not know,
//! or that the machine cannot give, is exit 3 naming what is available; a
//! malformed list is exit 2 naming the flag. Nothing is started for a
//! refused list.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use pgrehearse::backend::available::{offline_image, SUPPORTED};
use pgrehearse::record::RunRecord;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/tiny.toml")
}

/// `pgrehearse run tiny.toml ARGS` with an isolated TMPDIR and output dir;
/// (output, the output dir, what was left behind).
fn run(args: &[&str], env: &[(&str, &str)]) -> (Output, tempfile::TempDir, Vec<String>) {
    let tmp = common::isolated_tmpdir();
    let out = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(common::bin());
    cmd.arg("run")
        .arg(tiny())
        .arg("--out")
        .arg(out.path())
        .args(args)
        .env("TMPDIR", tmp.path())
        .env_remove("PGREHEARSE_BACKEND")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let left = common::left_behind(tmp.path(), pid);
    (o, out, left)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Entries of `<out>/tiny/`, sorted.
fn entries(out: &Path) -> Vec<PathBuf> {
    let mut v = common::entries_in(&out.join("tiny"));
    v.sort();
    v
}

/// Is `image` in the Docker engine?
fn image_present(image: &str) -> bool {
    Command::new("docker")
        .args(["image", "inspect", image])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A supported major this machine has neither binaries nor an image for.
fn a_missing_major() -> u32 {
    let local = pgrehearse::backend::pg_bin::installed();
    SUPPORTED
        .rev()
        .find(|m| {
            local.iter().all(|b| b.major != *m)
                && !image_present(&offline_image(*m))
                && !image_present(&format!("postgres:{m}"))
        })
        .expect("some supported major is missing here")
}

#[test]
fn fifteen_and_seventeen_give_a_run_each_and_a_side_by_side() {
    // 15 from the local binaries (or the image), 17 from the image .ci/run builds.
    if !image_present(&offline_image(17)) {
        let why = "this test needs the image pgrehearse/postgres:17 (.ci/run builds it)";
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            panic!("{why}");
        }
        eprintln!("NOTICE: {why}; not testing versions");
        return;
    }
    let step_summary = tempfile::NamedTempFile::new().unwrap();
    let (o, out, left) = run(
        &["--pg-version", "15,17", "--json"],
        &[("GITHUB_STEP_SUMMARY", step_summary.path().to_str().unwrap())],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(left.is_empty(), "{left:?}");

    let dirs = entries(out.path());
    let runs: Vec<&PathBuf> = dirs
        .iter()
        .filter(|d| d.join("run.json").is_file())
        .collect();
    assert_eq!(runs.len(), 2, "{dirs:?}");
    let versions: Vec<u32> = runs
        .iter()
        .map(|d| {
            let info = RunRecord::read(d).unwrap().info.unwrap();
            assert!(info.failure.is_none(), "{:?}", info.failure);
            info.server_version_num / 10_000
        })
        .collect();
    assert_eq!(versions, [15, 17], "run.json server_version_num");

    // --json prints versions.json (and no per-run summary).
    let json: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is versions.json ({e}):\n{}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    let side = dirs
        .iter()
        .find(|d| {
            d.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("versions-")
        })
        .expect("a versions-<stamp> directory");
    let written: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(side.join("versions.json")).unwrap())
            .unwrap();
    assert_eq!(json, written);
    let cols = json["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 2);
    assert_eq!(
        (cols[0]["label"].as_str(), cols[1]["label"].as_str()),
        (Some("15"), Some("17"))
    );
    for (c, run) in cols.iter().zip(&runs) {
        let link = c["run_dir"].as_str().unwrap();
        assert_eq!(
            side.join(link).canonicalize().unwrap(),
            run.canonicalize().unwrap(),
            "{link}"
        );
        assert_eq!(c["exit_code"], 0);
    }
    assert!(cols[0]["postgres_version"]
        .as_str()
        .unwrap()
        .starts_with("15."));
    assert!(cols[1]["postgres_version"]
        .as_str()
        .unwrap()
        .starts_with("17."));
    // Every step of the scenario, with a figure per version.
    let steps = json["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 4, "{steps:#?}");
    for s in steps {
        let cells = s["cells"].as_array().unwrap();
        assert!(
            cells
                .iter()
                .all(|c| c["duration_ms"].as_f64().unwrap() >= 0.0),
            "{s}"
        );
    }
    let md = std::fs::read_to_string(side.join("versions.md")).unwrap();
    assert!(md.contains("| figure | 15 | 17 |"), "{md}");
    assert!(md.contains("## migrate / backfill"), "{md}");
    assert!(md.contains("longest blocking lock hold"), "{md}");
    // The step summary gets each run's summary, then the side by side.
    let gh = std::fs::read_to_string(step_summary.path()).unwrap();
    assert_eq!(gh.matches("# pgrehearse: tiny").count(), 2, "{gh}");
    assert!(gh.trim_end().ends_with(md.trim_end()), "{gh}");
}

#[test]
fn unknown_versions_exit_3_listing_what_is_available() {
    for v in ["9", "99", "abc", "15,99"] {
        let (o, out, left) = run(&["--pg-version", v], &[]);
        assert_eq!(o.status.code(), Some(3), "{v}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("not a PostgreSQL major version")
                && err.contains("Available on this machine: ")
                && err.contains("15 (local"),
            "{v}: {err}"
        );
        assert!(entries(out.path()).is_empty(), "nothing ran for {v}");
        assert!(left.is_empty(), "{left:?}");
    }
}

#[test]
fn an_unavailable_version_says_which_and_why() {
    let m = a_missing_major();
    let (o, out, _) = run(&["--pg-version", &format!("15,{m}")], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "{m}: no local binaries under /usr/lib/postgresql/{m}/bin and "
        )) && stderr(&o).contains(&format!(".ci/build-postgres-image.sh {m}")),
        "{}",
        stderr(&o)
    );
    assert!(entries(out.path()).is_empty(), "15 did not run either");

    // The local backend alone: binaries or nothing.
    let (o, _, _) = run(&["--backend", "local", "--pg-version", &m.to_string()], &[]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("(install postgresql-{m})")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_malformed_list_exits_2_naming_the_flag() {
    for (v, says) in [
        ("15,,17", "an empty item"),
        ("15;17", "is not a version"),
        ("17.2", "give its major, 17"),
        ("15,15", "15 is listed twice"),
    ] {
        let (o, out, _) = run(&["--pg-version", v], &[]);
        assert_eq!(o.status.code(), Some(2), "{v}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("--pg-version: ") && stderr(&o).contains(says),
            "{v}: {}",
            stderr(&o)
        );
        assert!(entries(out.path()).is_empty());
    }
    // One image cannot be several versions; the url backend picks none.
    let (o, _, _) = run(
        &["--pg-version", "15,17", "--image", "pgrehearse/postgres:15"],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--image names one image"),
        "{}",
        stderr(&o)
    );
    let (o, _, _) = run(
        &[
            "--pg-version",
            "15",
            "--backend",
            "url",
            "--database-url",
            "postgres://u@127.0.0.1:1/db",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--pg-version picks the servers"),
        "{}",
        stderr(&o)
    );
}
