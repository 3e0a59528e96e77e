//! `run --pg-version`: the same scenario on PostgreSQL 15 and 17 gives a run
//! directory each whose run.json names a different server, and a
//! side-by-side directory linking them; a version pgrehearse does not know,
//! or that the machine cannot give, is exit 3 naming what is available; a
//! malformed list is exit 2 naming the flag. Nothing is started for a
//! refused list.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use pgrehearse::backend::available::{offline_image, SUPPORTED};
use pgrehearse::record::RunRecord;

fn tiny() -> PathBuf {
    common::fixture("good/tiny.toml")
}

/// `pgrehearse run tiny.toml ARGS` (fresh TMPDIR and output dir).
fn run(args: &[&str], env: &[(&str, &str)]) -> common::Ran {
    common::run(&tiny(), args, env)
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
        common::unavailable(
            "the image pgrehearse/postgres:17 for the versions test (.ci/run builds it)",
        );
        return;
    }
    let step_summary = tempfile::NamedTempFile::new().unwrap();
    let ran = run(
        &["--pg-version", "15,17", "--json"],
        &[("GITHUB_STEP_SUMMARY", step_summary.path().to_str().unwrap())],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.left_behind().is_empty(), "{:?}", ran.left_behind());

    let dirs = ran.dirs_of("tiny");
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
    let json: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("stdout is versions.json ({e}):\n{}", ran.stdout));
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
        let ran = run(&["--pg-version", v], &[]);
        assert_eq!(ran.code, 3, "{v}: {}", ran.stderr);
        let err = &ran.stderr;
        assert!(
            err.contains("not a PostgreSQL major version")
                && err.contains("Available on this machine: ")
                && err.contains("15 (local"),
            "{v}: {err}"
        );
        assert!(ran.dirs_of("tiny").is_empty(), "nothing ran for {v}");
        assert!(ran.left_behind().is_empty(), "{:?}", ran.left_behind());
    }
}

#[test]
fn an_unavailable_version_says_which_and_why() {
    let m = a_missing_major();
    let ran = run(&["--pg-version", &format!("15,{m}")], &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!(
            "{m}: no local binaries under /usr/lib/postgresql/{m}/bin and "
        )) && ran
            .stderr
            .contains(&format!(".ci/build-postgres-image.sh {m}")),
        "{}",
        ran.stderr
    );
    assert!(ran.dirs_of("tiny").is_empty(), "15 did not run either");

    // The local backend alone: binaries or nothing.
    let ran = run(&["--backend", "local", "--pg-version", &m.to_string()], &[]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.contains(&format!("(install postgresql-{m})")),
        "{}",
        ran.stderr
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
        let ran = run(&["--pg-version", v], &[]);
        assert_eq!(ran.code, 2, "{v}: {}", ran.stderr);
        assert!(
            ran.stderr.contains("--pg-version: ") && ran.stderr.contains(says),
            "{v}: {}",
            ran.stderr
        );
        assert!(ran.dirs_of("tiny").is_empty());
    }
    // One image cannot be several versions; the url backend picks none.
    let ran = run(
        &["--pg-version", "15,17", "--image", "pgrehearse/postgres:15"],
        &[],
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("--image names one image"),
        "{}",
        ran.stderr
    );
    let ran = run(
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
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("--pg-version picks the servers"),
        "{}",
        ran.stderr
    );
}
