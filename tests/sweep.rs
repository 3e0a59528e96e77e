//! `pgrehearse sweep` through the real binary against real Postgres (a
//! local cluster): three small sizes give three rows, fits with R² and an
//! extrapolation, and a CREATE INDEX hold that grows with size; bad lists
//! exit 2 naming the flag; one size runs and says it cannot fit; with
//! `--reuse` a second sweep clones the sizes the first seeded; a scenario
//! with `[migrations]` is set up and seeded per combination; a migration
//! that fails at every size exits 4 and says so instead of extrapolating.
//! (Versions: tests/versions.rs.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// `pgrehearse sweep <fixture> --backend local --out <tmp> ARGS...`.
fn sweep(args: &[&str]) -> (i32, String, String, tempfile::TempDir) {
    sweep_of(&common::fixture("sweep/create-index.toml"), args, &[])
}

/// `pgrehearse sweep SCENARIO --backend local --out <tmp> ARGS...`, with
/// `env` added.
fn sweep_of(
    scenario: &Path,
    args: &[&str],
    env: &[(&str, &Path)],
) -> (i32, String, String, tempfile::TempDir) {
    let out = tempfile::Builder::new()
        .prefix("pgrehearse-sweep-")
        .tempdir()
        .expect("temp dir");
    let mut cmd = Command::new(common::bin());
    cmd.arg("sweep")
        .arg(scenario)
        .args(["--backend", "local", "--out"])
        .arg(out.path())
        .args(args)
        .env_remove("PGREHEARSE_BACKEND")
        .env_remove("PGREHEARSE_DATABASE_URL")
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("run pgrehearse sweep");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        out,
    )
}

/// The one `sweep-<stamp>` directory under `<out>/sweep-create-index/`.
fn sweep_dir(out: &Path) -> PathBuf {
    sweep_dir_of(out, "sweep-create-index")
}

/// The one `sweep-<stamp>` directory under `<out>/<scenario>/`.
fn sweep_dir_of(out: &Path, scenario: &str) -> PathBuf {
    let scenario = out.join(scenario);
    std::fs::read_dir(&scenario)
        .expect("scenario dir")
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("sweep-")
        })
        .expect("a sweep-<stamp> directory")
}

fn fit<'a>(json: &'a Value, figure: &str) -> &'a Value {
    json["fits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["figure"] == figure && f["step"] == "create index")
        .unwrap_or_else(|| panic!("no fit of {figure}: {json:#}"))
}

#[test]
fn three_sizes_fit_and_extrapolate_and_the_hold_grows() {
    // 128k, not 32k: 32k's hold (22-47 ms) was within a loaded machine's
    // noise of 2k's (3-10 ms); 128k's is several times either.
    let (code, stdout, stderr, out) = sweep(&["--rows", "2k,8k,128k", "--extrapolate", "400M"]);
    assert_eq!(code, 0, "stderr:\n{stderr}");
    let dir = sweep_dir(out.path());

    // One row per size, each pointing at a run directory with a summary.
    let mut csv = csv::Reader::from_path(dir.join("sweep.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 3, "{rows:?}");
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let hold = col("index/create index:blocking_hold_ms");
    let sizes: Vec<&str> = rows.iter().map(|r| &r[col("rows")]).collect();
    assert_eq!(sizes, ["2000", "8000", "128000"]);
    for r in &rows {
        assert!(dir.join(&r[col("run_dir")]).join("summary.json").is_file());
        assert_eq!(&r[col("outcome")], "pass");
        // No --rate: the scenario's own, carried as a number.
        assert_eq!(&r[col("rate")], "200");
        assert_eq!(&r[col("index/create index:outcome")], "ok");
        // No replica ran: its columns are empty, not 0.
        assert_eq!(&r[col("index/create index:replica_lag_peak_ms")], "");
    }
    // The hold grows with size: the largest table's against the smallest's
    // (64× the rows; the middle one may sit within noise of either).
    let held: Vec<f64> = rows.iter().map(|r| r[hold].parse().unwrap()).collect();
    assert!(held[2] > held[0], "holds {held:?}");

    // A fit with R², an extrapolation to 400M with its interval.
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    assert_eq!(json["rates"], serde_json::json!([200.0]));
    let f = fit(&json, "blocking_hold_ms");
    assert_eq!(f["points"].as_array().unwrap().len(), 3);
    let r2 = f["fit"]["r2"].as_f64().expect("R²");
    assert!((0.0..=1.0).contains(&r2));
    assert!(["linear", "n_log_n"].contains(&f["fit"]["model"].as_str().unwrap()));
    let p = &f["prediction"];
    assert_eq!(p["n"].as_f64(), Some(400e6));
    let (v, lo, hi) = (
        p["value"].as_f64().unwrap(),
        p["low"].as_f64().unwrap(),
        p["high"].as_f64().unwrap(),
    );
    assert!(lo <= v && v <= hi, "{p}");
    // 400M is 3125× 128k: said plainly.
    let caveats = f["caveats"].to_string();
    assert!(caveats.contains("more than 100× beyond"), "{caveats}");

    // The answer in a sentence, in sweep.md and on stdout; the charts.
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    assert!(md.contains("at 400M rows `CREATE INDEX"), "{md}");
    assert!(
        md.contains("would block writes on orders for about"),
        "{md}"
    );
    assert!(md.contains("3 sizes"), "{md}");
    assert!(stdout.contains("at 400M rows"), "{stdout}");
    for chart in ["sweep.svg", "sweep.png"] {
        assert!(std::fs::metadata(dir.join(chart)).unwrap().len() > 1000);
    }
}

#[test]
fn one_size_runs_and_does_not_fit() {
    let (code, stdout, stderr, out) = sweep(&["--rows", "3k", "--extrapolate", "1M"]);
    assert_eq!(code, 0, "stderr:\n{stderr}");
    assert!(stdout.contains("no fit with one point"), "{stdout}");
    assert!(stdout.contains("no extrapolation"), "{stdout}");
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(sweep_dir(out.path()).join("sweep.json")).unwrap(),
    )
    .unwrap();
    let f = fit(&json, "duration_ms");
    assert!(f["fit"].is_null() && f["prediction"].is_null(), "{f}");
}

#[test]
fn malformed_lists_exit_2_naming_the_flag() {
    for (args, flag) in [
        (&["--rows", "2k,,8k"][..], "--rows"),
        (&["--rows", "2k,lots"][..], "--rows"),
        (&["--rows", "2k,2000"][..], "--rows"),
        (&["--rows", "1.5"][..], "--rows"),
        (&["--rows", "2k", "--rate", "200,-1"][..], "--rate"),
        (&["--rows", "2k", "--rate", "fast"][..], "--rate"),
        (
            &["--rows", "2k", "--extrapolate", "huge"][..],
            "--extrapolate",
        ),
        (&[][..], "--rows"),
        (&["--rows", "2k", "--scale", "2"][..], "--scale"),
        (
            &["--rows", "2k", "--pg-version", "15,,17"][..],
            "--pg-version",
        ),
    ] {
        let (code, _, stderr, out) = sweep(args);
        assert_eq!(code, 2, "{args:?}: stderr:\n{stderr}");
        assert!(
            stderr.contains(flag),
            "{args:?} should name {flag}:\n{stderr}"
        );
        // Refused before anything ran: no directory written.
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "{args:?}"
        );
    }
}

/// The run.json of every combination, in sweep.csv's order.
fn run_jsons(dir: &Path) -> Vec<Value> {
    let mut csv = csv::Reader::from_path(dir.join("sweep.csv")).unwrap();
    let col = csv.headers().unwrap().iter().position(|h| h == "run_dir");
    csv.records()
        .map(|r| {
            let run = dir.join(&r.unwrap()[col.unwrap()]);
            serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn reuse_keeps_the_seeded_sizes_for_the_next_sweep() {
    let cache = common::isolated_tmpdir();
    let env = [("XDG_CACHE_HOME", cache.path())];
    let args = [
        "--rows", "2k,4k", "--reuse", "--before", "300ms", "--after", "300ms", "-q",
    ];
    let sources = |out: &Path| -> Vec<(String, String, f64)> {
        run_jsons(&sweep_dir(out))
            .iter()
            .map(|j| {
                let d = &j["database"];
                (
                    d["how"].as_str().unwrap().to_string(),
                    d["template_source"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    d["seed_ms"].as_f64().unwrap(),
                )
            })
            .collect()
    };
    let (code, _, stderr, first) =
        sweep_of(&common::fixture("sweep/create-index.toml"), &args, &env);
    assert_eq!(code, 0, "{stderr}");
    let seeded = sources(first.path());
    assert_eq!(seeded.len(), 2);
    for (how, source, seed_ms) in &seeded {
        assert_eq!((how.as_str(), source.as_str()), ("cloned", "seeded"));
        assert!(*seed_ms > 0.0);
    }
    // The second sweep seeds nothing: both sizes come from the cache.
    let (code, _, stderr, second) =
        sweep_of(&common::fixture("sweep/create-index.toml"), &args, &env);
    assert_eq!(code, 0, "{stderr}");
    for (how, source, seed_ms) in sources(second.path()) {
        assert_eq!((how.as_str(), source.as_str()), ("cloned", "cache"));
        assert_eq!(seed_ms, 0.0);
    }
    let clean = Command::new(common::bin())
        .args(["cache", "clean"])
        .env("XDG_CACHE_HOME", cache.path())
        .output()
        .unwrap();
    assert!(clean.status.success(), "{clean:?}");
    assert_eq!(
        common::postgres_processes_under(cache.path()),
        Vec::<String>::new()
    );
}

#[test]
fn several_rates_of_a_size_clone_one_template() {
    let (code, _, stderr, out) = sweep(&[
        "--rows", "2k", "--rate", "100,200", "--before", "300ms", "--after", "300ms", "-q",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let got: Vec<(String, String)> = run_jsons(&sweep_dir(out.path()))
        .iter()
        .map(|j| {
            (
                j["database"]["template_source"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                j["rate"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("seeded".into(), "100.0".into()),
            ("earlier".into(), "200.0".into())
        ]
    );
}

#[test]
fn a_migrations_scenario_is_set_up_and_seeded_per_combination() {
    let scenario = common::fixture("sweep/migrations.toml");
    let (code, stdout, stderr, out) = sweep_of(&scenario, &["--rows", "1k,3k"], &[]);
    assert_eq!(code, 0, "stdout:\n{stdout}\nstderr:\n{stderr}");
    let runs = run_jsons(&sweep_dir_of(out.path(), "sweep-migrations"));
    assert_eq!(runs.len(), 2);
    let mut orders = Vec::new();
    for j in &runs {
        assert_eq!(j["database"]["how"], "seeded", "{j:#}");
        let setup = j["migrations"]["setup"].as_array().unwrap();
        assert!(
            !setup.is_empty() && setup.iter().all(|f| f["outcome"] == "ok"),
            "{setup:?}"
        );
        // The last versioned file (and flyway's repeatable ones after it).
        assert_eq!(
            j["migrations"]["rehearsed"][0], "release2/V2__orders_account_index.sql",
            "{j:#}"
        );
        assert!(j["failure"].is_null(), "{j:#}");
        let rows = j["rows"].as_array().unwrap();
        orders.extend(
            rows.iter()
                .filter(|r| r[0] == "orders")
                .map(|r| r[1].clone()),
        );
    }
    assert_eq!(orders, [1000, 3000]);
}

/// A rate the app cannot sustain is said to overload the baseline: its
/// column in sweep.csv names the app, sweep.md's runs table and the answer
/// warn that the p99 at that rate is queueing; a rate it sustains is "kept
/// up". (25 ms requests on 2 connections serve at most 80/s.)
#[test]
fn a_rate_the_app_cannot_sustain_is_flagged() {
    let (code, stdout, stderr, out) = sweep_of(
        &common::fixture("engine/overloaded-baseline.toml"),
        &["--rows", "500,1k", "--rate", "20,160"],
        &[],
    );
    assert_eq!(code, 0, "stderr:\n{stderr}");
    let dir = sweep_dir_of(out.path(), "overloaded-baseline");
    let mut csv = csv::Reader::from_path(dir.join("sweep.csv")).unwrap();
    let headers = csv.headers().unwrap().clone();
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 4, "{rows:?}");
    for r in &rows {
        let flagged = &r[col("overloaded_baseline")];
        match &r[col("rate")] {
            "20" => assert_eq!(flagged, "", "{r:?}"),
            "160" => assert!(flagged.contains("App app could not keep up"), "{r:?}"),
            other => panic!("rate {other}"),
        }
    }
    let md = std::fs::read_to_string(dir.join("sweep.md")).unwrap();
    assert!(md.contains("| kept up |"), "{md}");
    assert!(
        md.contains("**overloaded**: App app could not keep up"),
        "{md}"
    );
    let warning = "at 160 queries/s and 500, 1k rows the baseline was overloaded";
    assert!(stdout.contains(warning), "{stdout}");
    assert!(!stdout.contains("at 20 queries/s and 500"), "{stdout}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let cells = json["cells"].as_array().unwrap();
    assert!(
        cells.iter().all(|c| c["overloaded_baseline"].is_array()),
        "{json:#}"
    );
}

/// Every rehearsal fails at its second step (a type that does not exist):
/// exit 4, the answer names the failure instead of a capacity figure, the
/// failed step is not fitted and nothing is extrapolated.
#[test]
fn a_migration_that_fails_at_every_size_is_said_to_fail() {
    let (code, stdout, stderr, out) = sweep_of(
        &common::fixture("sweep/bad-sql.toml"),
        &["--rows", "500,1k", "--extrapolate", "1M", "-q"],
        &[],
    );
    assert_eq!(code, 4, "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(
        stdout.contains("sweep-bad-sql: no rehearsal succeeded"),
        "{stdout}"
    );
    assert!(stdout.contains("at 500, 1k rows: exit 4, "), "{stdout}");
    assert!(stdout.contains("nosuchtype"), "{stdout}");
    assert!(!stdout.contains("would"), "{stdout}");
    let dir = sweep_dir_of(out.path(), "sweep-bad-sql");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("sweep.json")).unwrap()).unwrap();
    let fits = json["fits"].as_array().unwrap();
    assert!(fits.iter().all(|f| f["step"] != "bad type"), "{json:#}");
    assert!(fits.iter().any(|f| f["step"] == "index body"), "{json:#}");
    assert!(fits.iter().all(|f| f["prediction"].is_null()), "{json:#}");
    let cells = json["cells"].as_array().unwrap();
    assert!(cells.iter().all(|c| c["exit_code"] == 4), "{json:#}");
    let mut csv = csv::Reader::from_path(dir.join("sweep.csv")).unwrap();
    let col = csv
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "migrate/bad type:outcome")
        .unwrap();
    for r in csv.records() {
        assert_eq!(&r.unwrap()[col], "error");
    }
}
