//! `run --pg-version`: the same scenario on PostgreSQL 15 and 17 gives a run
//! directory each whose run.json names a different server, and a
//! side-by-side directory linking them; a version pgrehearse does not know,
//! or that the machine cannot give, is exit 3 naming what is available; a
//! malformed list is exit 2 naming the flag. Nothing is started for a
//! refused list.

mod common;

use std::path::{Path, PathBuf};
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
    // Each run's heading says which version it is.
    assert_eq!(gh.matches("# pgrehearse: tiny @ 15\n").count(), 1, "{gh}");
    assert_eq!(gh.matches("# pgrehearse: tiny @ 17\n").count(), 1, "{gh}");
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

/// `pgrehearse ARGS --out <tmp>` (no TMPDIR of its own: these commands are
/// checked through their directories): (exit code, stdout, stderr, out).
fn pgrehearse(args: &[&str]) -> (i32, String, String, tempfile::TempDir) {
    let out = tempfile::Builder::new()
        .prefix("pgrehearse-versions-")
        .tempdir()
        .unwrap();
    let o = Command::new(common::bin())
        .args(args)
        .arg("--out")
        .arg(out.path())
        .env_remove("PGREHEARSE_BACKEND")
        .env_remove("PGREHEARSE_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        out,
    )
}

fn json_at(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The one directory under `dir` whose name starts with `prefix`.
fn one_dir(dir: &std::path::Path, prefix: &str) -> PathBuf {
    let found: Vec<PathBuf> = common::entries_in(dir)
        .into_iter()
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(found.len(), 1, "{prefix}* in {}: {found:?}", dir.display());
    found[0].clone()
}

#[test]
fn a_sweep_on_fifteen_and_seventeen_fits_each_version() {
    if !image_present(&offline_image(17)) {
        common::unavailable("the image pgrehearse/postgres:17 (.ci/run builds it)");
        return;
    }
    let fixture = common::fixture("sweep/create-index.toml");
    let (code, stdout, stderr, out) = pgrehearse(&[
        "sweep",
        fixture.to_str().unwrap(),
        "--rows",
        "2k,4k",
        "--pg-version",
        "15,17",
        "--extrapolate",
        "100k",
        "--before",
        "300ms",
        "--after",
        "300ms",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let dir = one_dir(&out.path().join("sweep-create-index"), "sweep-");
    // A row per version × size, the version in its own column, and each
    // run on a server of that version.
    let mut csv = csv::Reader::from_path(dir.join("sweep.csv")).unwrap();
    let h = csv.headers().unwrap().clone();
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    let got: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (&r[col("pg_version")], &r[col("rows")]))
        .collect();
    assert_eq!(
        got,
        [
            ("15", "2000"),
            ("15", "4000"),
            ("17", "2000"),
            ("17", "4000")
        ]
    );
    for r in &rows {
        let info = RunRecord::read(&dir.join(&r[col("run_dir")]))
            .unwrap()
            .info
            .unwrap();
        assert_eq!(
            (info.server_version_num / 10_000).to_string(),
            &r[col("pg_version")]
        );
    }
    // Fits per version: each from that version's two sizes.
    let json = json_at(&dir.join("sweep.json"));
    assert_eq!(json["pg_versions"], serde_json::json!(["15", "17"]));
    for v in ["15", "17"] {
        let f = json["fits"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["pg_version"] == v && f["figure"] == "duration_ms")
            .unwrap_or_else(|| panic!("no fit for {v}"));
        let sizes: Vec<f64> = f["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[0].as_f64().unwrap())
            .collect();
        assert_eq!(sizes, [2000.0, 4000.0], "{f}");
        assert!(!f["fit"].is_null(), "{f}");
    }
    // The answer names each version: at the target, or — where noise at
    // these tiny sizes made the larger one faster — at the largest size
    // measured, not extrapolated.
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    for v in ["15", "17"] {
        let says = format!("on PostgreSQL {v}, at ");
        let line = md
            .lines()
            .find(|l| l.contains(&says))
            .unwrap_or_else(|| panic!("{says}:\n{md}"));
        assert!(stdout.contains(&says), "{says}:\n{stdout}");
        assert!(
            line.contains(&format!("{says}100k rows")) || line.contains("not extrapolated"),
            "{line}"
        );
    }
    let svg = std::fs::read_to_string(dir.join("sweep.svg")).unwrap();
    assert!(svg.contains("PG 15") && svg.contains("PG 17"), "the legend");
}

#[test]
fn a_compare_on_fifteen_and_seventeen_puts_the_verdicts_side_by_side() {
    if !image_present(&offline_image(17)) {
        common::unavailable("the image pgrehearse/postgres:17 (.ci/run builds it)");
        return;
    }
    let scenarios = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let (code, stdout, stderr, out) = pgrehearse(&[
        "compare",
        "--pair",
        "create-index",
        "--scenarios-dir",
        scenarios.to_str().unwrap(),
        "--rows",
        "4000",
        "--before",
        "300ms",
        "--after",
        "300ms",
        "--pg-version",
        "15,17",
        "--json",
    ]);
    // The naive side may breach its budget (1); nothing may fail.
    assert!(code <= 1, "exit {code}: {stderr}");
    let pair = out.path().join("create-index");
    let side = one_dir(&pair, "compare-versions-");
    let json = json_at(&side.join("versions.json"));
    // --json prints versions.json, and nothing else.
    let printed: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!("stdout is versions.json ({e}):\n{stdout}");
    });
    assert_eq!(printed, json);
    let cols = json["columns"].as_array().unwrap();
    assert_eq!(cols.len(), 2);
    for (c, v) in cols.iter().zip(["15", "17"]) {
        assert_eq!(c["label"], v);
        assert!(
            c["postgres_version"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{v}.")),
            "{c}"
        );
        // Its own compare directory, both sides on that version.
        let dir = side.join(c["compare_dir"].as_str().unwrap());
        assert!(dir
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(&format!("compare-pg{v}-")));
        let compare = json_at(&dir.join("compare.json"));
        assert_eq!(compare["verdict"], c["verdict"]);
        for s in compare["sides"].as_array().unwrap() {
            let run = dir.join(s["run_dir"].as_str().unwrap());
            let info = RunRecord::read(&run).unwrap().info.unwrap();
            assert_eq!((info.server_version_num / 10_000).to_string(), v);
        }
        assert!(
            c["totals"][0].is_object() && c["totals"][1].is_object(),
            "{c}"
        );
    }
    let line = json["line"].as_str().unwrap();
    let agree = json["agree"].as_bool().unwrap();
    assert!(
        line.contains("on every version (15, 17)") == agree,
        "{line}"
    );
    let md = std::fs::read_to_string(side.join("versions.md")).unwrap();
    assert!(md.contains("| | 15 | 17 |"), "{md}");
    assert!(md.contains("A: longest blocking hold"), "{md}");
}

#[test]
fn sweep_and_compare_refuse_an_unavailable_version_before_anything_runs() {
    let m = a_missing_major().to_string();
    let fixture = common::fixture("sweep/create-index.toml");
    // Two sides that differ (a scenario compared with itself is refused
    // first): nothing of them runs.
    let library = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let (naive, safe) = (
        library.join("create-index-naive.toml"),
        library.join("create-index-safe.toml"),
    );
    for args in [
        vec![
            "sweep",
            fixture.to_str().unwrap(),
            "--rows",
            "2k",
            "--pg-version",
        ],
        vec![
            "compare",
            naive.to_str().unwrap(),
            safe.to_str().unwrap(),
            "--pg-version",
        ],
    ] {
        let list = format!("15,{m}");
        let mut all = args.clone();
        all.push(&list);
        let (code, _, stderr, out) = pgrehearse(&all);
        assert_eq!(code, 3, "{all:?}: {stderr}");
        assert!(
            stderr.contains(&format!("{m}: no local binaries"))
                && stderr.contains("Available on this machine: "),
            "{stderr}"
        );
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "{all:?} wrote nothing"
        );
    }
}
