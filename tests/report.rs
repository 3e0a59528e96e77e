//! Rendering the committed fixture run directory (tests/fixtures/run, a
//! hand-shaped "create-index-naive" rehearsal): summaries as insta
//! snapshots, charts, index.html links, budgets, and a real browser.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::analyze::{analyze, parse_budget_override, AnalyzeOptions};
use pgrehearse::record::{self, RunRecord};
use pgrehearse::report::{charts, render, text_summary, RenderOptions, Summary};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run")
}

/// The recorder writes latency.hdr, not `RunRecord::write`: a test that
/// writes a fixture's record elsewhere brings its histograms along.
fn copy_histograms(to: &Path) {
    std::fs::copy(fixture().join("latency.hdr"), to.join("latency.hdr")).unwrap();
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
            budget_overrides: budget
                .iter()
                .map(|b| parse_budget_override(b).unwrap())
                .collect(),
            ..Default::default()
        },
        charts: true,
        github_step_summary: None,
        out: None,
    }
}

/// Render a copy of the fixture. PGREHEARSE_KEEP_REPORT=DIR keeps a copy of
/// the output for looking at it.
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
fn summary_md_and_json_snapshots() {
    let (t, s) = render_fixture(&[]);
    let md = std::fs::read_to_string(t.path().join("summary.md")).unwrap();
    let json = std::fs::read_to_string(t.path().join("summary.json")).unwrap();
    // Nothing machine- or time-dependent may leak in.
    let tmp = t.path().to_string_lossy().to_string();
    assert!(
        !md.contains(&tmp) && !json.contains(&tmp),
        "absolute path in a summary"
    );
    insta::assert_snapshot!("summary_md", md);
    insta::assert_snapshot!("summary_json", json);
    // summary.json is the Summary.
    let back: Summary = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn fixture_findings_are_the_measured_ones() {
    let rec = RunRecord::read(&fixture()).unwrap();
    let a = analyze(&rec);
    let kinds: Vec<String> = a
        .findings
        .iter()
        .map(|f| format!("{} {}", f.kind, f.location()))
        .collect();
    assert_eq!(
        kinds,
        [
            "lock_queue expand / add column on orders",
            "blocking_lock expand / create index on orders",
            "no_lock_timeout expand / create index on orders",
            "app_errors expand / create index on orders",
            "wal_volume expand / create index on orders",
        ]
    );
    let idx = &a.steps[1];
    assert_eq!(idx.step, "create index");
    assert_eq!(idx.strongest_lock.as_ref().unwrap().mode, "ShareLock");
    assert_eq!(
        idx.longest_blocking_lock.as_ref().unwrap().held_ms,
        Some(1199.2)
    );
    assert_eq!(idx.worst_app_wait.as_ref().unwrap().wait_ms, 1150.0);
    assert_eq!(idx.app_waits, 13);
    // Of the two failed writes, one was due before the step started.
    assert_eq!(idx.latency.errors, 1);
    assert_eq!(a.during.errors, 2);
    // Before and after the migration the app is calm; during it is not.
    assert!(a.before.p99_ms.unwrap() < 10.0);
    assert!(a.after.p99_ms.unwrap() < 10.0);
    assert!(a.during.p99_ms.unwrap() > 500.0);
}

fn png_pixels(path: &Path) -> (u32, u32, Vec<u8>) {
    let f = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(f).read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

#[test]
fn charts_exist_are_readable_and_decode() {
    let (t, s) = render_fixture(&[]);
    let expect = [
        (
            "latency",
            charts::LATENCY_SIZE,
            vec![
                "App latency per query",
                "time since run start (s)",
                "latency (ms, log scale)",
                "update_order",
                "p99 (thick)",
                "ShareLock on orders",
            ],
        ),
        (
            "locks",
            charts::LOCKS_SIZE,
            vec![
                "Locks held by the migration",
                "time since run start (s)",
                "orders",
                "ShareLock",
                "Share 1199 ms",
                "blocked by the migration",
            ],
        ),
        (
            "throughput",
            charts::THROUGHPUT_SIZE,
            vec![
                "Throughput (successful requests) and errors by app version",
                "ok/s",
                "errors/s",
                "app v1",
                "app v2",
            ],
        ),
    ];
    for (name, (w, h), texts) in expect {
        let svg_path = t.path().join(format!("{name}.svg"));
        let svg = std::fs::read_to_string(&svg_path).unwrap();
        assert!(svg.len() > 10_000, "{name}.svg is only {} bytes", svg.len());
        assert!(svg.starts_with("<svg"), "{name}.svg");
        for text in texts {
            assert!(svg.contains(text), "{name}.svg lacks {text:?}");
        }
        let png_path = t.path().join(format!("{name}.png"));
        assert!(
            std::fs::metadata(&png_path).unwrap().len() > 20_000,
            "{name}.png too small"
        );
        let (pw, ph, px) = png_pixels(&png_path);
        assert_eq!((pw, ph), (w, h), "{name}.png dimensions");
        // Not one colour: count distinct pixels (RGB triples).
        let mut colours: Vec<&[u8]> = px.chunks(3).collect();
        colours.sort_unstable();
        colours.dedup();
        assert!(
            colours.len() > 20,
            "{name}.png has {} colours",
            colours.len()
        );
        assert!(
            s.files.contains(&format!("{name}.svg")) && s.files.contains(&format!("{name}.png"))
        );
    }
}

/// Every src= / href= in index.html that is not an #anchor or a URL names a
/// file that exists in the run directory.
#[test]
fn index_html_references_only_existing_files() {
    let (t, _) = render_fixture(&[]);
    let html = std::fs::read_to_string(t.path().join("index.html")).unwrap();
    let re = regex::Regex::new(r#"(?:src|href)\s*=\s*"([^"]*)""#).unwrap();
    let refs: Vec<String> = re.captures_iter(&html).map(|c| c[1].to_string()).collect();
    assert!(refs.len() >= 15, "only {} references", refs.len());
    for r in &refs {
        assert!(
            !r.starts_with("http:") && !r.starts_with("https:") && !r.starts_with("//"),
            "external reference {r}: the page must work offline"
        );
        if r.starts_with('#') {
            continue;
        }
        assert!(
            t.path().join(r).is_file(),
            "index.html references {r}, which does not exist"
        );
    }
    let charts = ["latency.svg", "locks.svg", "throughput.svg"];
    for f in charts.iter().chain(&["summary.json"]).chain(record::FILES) {
        assert!(refs.iter().any(|r| r == f), "index.html does not link {f}");
    }
    assert!(!html.contains("<script"), "no scripts needed");
}

#[test]
fn tight_budget_fails_naming_limit_measured_and_step() {
    let (t, s) = render_fixture(&[
        "max_blocking_lock_ms=100",
        "p99_ms=1s",
        "max_app_wait_ms=5000",
        "max_errors=10",
    ]);
    assert!(!s.verdict_passed());
    assert_eq!(s.exit_code(), 1);
    assert_eq!(s.breached, ["max_blocking_lock_ms", "p99_ms"]);
    let b = &s.analysis.budgets[0];
    assert_eq!(
        (b.name.as_str(), b.limit, b.measured),
        ("max_blocking_lock_ms", 100.0, Some(1199.2))
    );
    assert_eq!(b.step.as_deref(), Some("expand / create index"));
    let md = std::fs::read_to_string(t.path().join("summary.md")).unwrap();
    let verdict = md.lines().nth(2).unwrap();
    assert!(
        verdict.starts_with("**Verdict: ❌ FAIL** — 2 of 4 budgets breached: max_blocking_lock_ms (limit 100.0 ms, measured 1199.2 ms, step expand / create index); p99_ms (limit 1000.0 ms, measured 1089.5 ms, step expand / create index)"),
        "{verdict}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(json["verdict"], "fail");
    assert_eq!(json["budgets"][0]["limit"], 100.0);
    assert_eq!(json["budgets"][0]["measured"], 1199.2);
    assert_eq!(json["budgets"][0]["step"], "expand / create index");
}

#[test]
fn loose_budget_passes() {
    let (_t, s) = render_fixture(&[
        "max_blocking_lock_ms=5s",
        "max_app_wait_ms=5s",
        "p99_ms=5s",
        "max_errors=10",
        "max_error_rate=5%",
        "max_duration_ms=10s",
    ]);
    assert!(s.verdict_passed(), "{:?}", s.breached);
    assert_eq!(s.exit_code(), 0);
    assert_eq!(s.verdict, "pass");
    assert_eq!(s.analysis.budgets.len(), 6);
}

#[test]
fn summary_md_is_appended_to_the_github_step_summary() {
    let t = copy_fixture();
    let step = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(step.path(), "earlier step\n").unwrap();
    let mut o = opts(&[]);
    o.charts = false;
    o.github_step_summary = Some(step.path().to_path_buf());
    render(t.path(), &o).unwrap();
    let got = std::fs::read_to_string(step.path()).unwrap();
    let md = std::fs::read_to_string(t.path().join("summary.md")).unwrap();
    assert_eq!(got, format!("earlier step\n{md}\n"));
}

#[test]
fn text_summary_names_each_step() {
    let a = analyze(&RunRecord::read(&fixture()).unwrap());
    let s = text_summary(&a);
    assert!(
        s.starts_with("create-index-naive: FAIL (4 of 4 budgets breached)\n"),
        "{s}"
    );
    assert!(
        s.contains("app p99 before 6.9 ms · during 1089.5 ms · after 7.2 ms · errors 2 (2 during)"),
        "{s}"
    );
    assert!(s.contains("  expand / create index — 1200.4 ms · ok\n      strongest lock: ShareLock on orders held 1199.2 ms\n"), "{s}");
    assert!(
        s.contains("worst app wait: 1150.0 ms (update_order v1, migration) of 13 waits"),
        "{s}"
    );
    assert!(
        s.contains(
            "budget max_blocking_lock_ms: FAIL 1199.2 ms > limit 500.0 ms (expand / create index)"
        ),
        "{s}"
    );
}

#[test]
fn not_a_run_directory_is_bad_usage() {
    let t = tempfile::tempdir().unwrap();
    let e = render(t.path(), &opts(&[])).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("not a run directory"), "{e}");
    let e = render(&t.path().join("missing"), &opts(&[])).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    // A file cut short or edited by hand: exit 2, naming it and its line.
    let t = copy_fixture();
    let locks = t.path().join("locks.csv");
    let text = std::fs::read_to_string(&locks).unwrap();
    std::fs::write(&locks, format!("{text}expand,create index,short row\n")).unwrap();
    let e = render(t.path(), &opts(&[])).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    let said = e.to_string();
    assert!(
        said.contains("not a readable run directory") && said.contains("locks.csv"),
        "{said}"
    );
    let t = copy_fixture();
    std::fs::write(t.path().join("run.json"), "{\"scenario\": ").unwrap();
    let e = render(t.path(), &opts(&[])).unwrap_err();
    assert_eq!(e.exit_code(), 2, "{e}");
    assert!(e.to_string().contains("run.json"), "{e}");
    // A field of the wrong kind is named by its path, in JSON's words.
    let mut info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture().join("run.json")).unwrap())
            .unwrap();
    info["steps"][1]["outcome"] = serde_json::json!(3);
    std::fs::write(t.path().join("run.json"), info.to_string()).unwrap();
    let said = render(t.path(), &opts(&[])).unwrap_err().to_string();
    assert!(
        said.contains("run.json:1:")
            && said.contains(
                ": field `steps[1].outcome`: invalid type: number `3`, expected a string"
            ),
        "{said}"
    );
    // Values no run writes, which would size the report's windows.
    for (field, value, says) in [
        (
            "window_ms",
            serde_json::json!(0),
            "field `window_ms`: 0 is not a window length",
        ),
        (
            "end_ms",
            serde_json::json!(1e300),
            "field `end_ms`: 1e300 is not a time of a run",
        ),
        (
            "end_ms",
            serde_json::json!(-5.0),
            "field `end_ms`: -5 is not a time of a run",
        ),
    ] {
        let mut damaged = info.clone();
        damaged["steps"][1]["outcome"] = serde_json::json!("ok");
        damaged[field] = value;
        std::fs::write(t.path().join("run.json"), damaged.to_string()).unwrap();
        let e = render(t.path(), &opts(&[])).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
    let mut damaged = info.clone();
    damaged["steps"][1]["outcome"] = serde_json::json!("ok");
    let end = damaged["steps"][0]["end_ms"].clone();
    damaged["steps"][0]["start_ms"] = serde_json::json!(end.as_f64().unwrap() + 1.0);
    std::fs::write(t.path().join("run.json"), damaged.to_string()).unwrap();
    let said = render(t.path(), &opts(&[])).unwrap_err().to_string();
    assert!(said.contains("field `steps[0]`: it ends"), "{said}");
    for (json, says) in [
        ("[]", "not a JSON object"),
        (
            "{\"scenario\": []}",
            "field `scenario`: invalid type: array, expected a string",
        ),
    ] {
        std::fs::write(t.path().join("run.json"), json).unwrap();
        let said = render(t.path(), &opts(&[])).unwrap_err().to_string();
        assert!(said.contains(says) && !said.contains("struct"), "{said}");
    }
}

#[test]
fn unknown_budget_key_is_a_clear_error() {
    let e = parse_budget_override("max_lock=5").unwrap_err();
    assert!(
        e.contains("unknown budget key `max_lock`") && e.contains("max_blocking_lock_ms"),
        "{e}"
    );
}

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|b| which::which(b).ok())
}

/// Open index.html in a real headless browser (Debian's chromium) and check
/// the screenshot shows a rendered page. Without chromium the test passes
/// locally with a note, but fails in CI, where it must be installed.
#[test]
fn index_html_renders_in_headless_chromium() {
    let Some(bin) = chromium() else {
        common::unavailable("chromium, to open index.html in a real browser");
        return;
    };
    let (t, _) = render_fixture(&[]);
    let profile = tempfile::tempdir().unwrap();
    let shot = t.path().join("screenshot.png");
    let url = format!("file://{}", t.path().join("index.html").display());
    let out = Command::new("timeout")
        .arg("120")
        .arg(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1280,2000")
        .arg(&url)
        .output()
        .unwrap();
    assert!(
        shot.is_file(),
        "no screenshot; chromium said: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    if let Ok(keep) = std::env::var("PGREHEARSE_KEEP_REPORT") {
        std::fs::copy(&shot, Path::new(&keep).join("screenshot.png")).unwrap();
    }
    let (w, h, px) = png_pixels(&shot);
    assert_eq!((w, h), (1280, 2000));
    // The page drew: the red verdict banner and the charts make many colours,
    // and the fail banner's tint (#fde7e7) is on it.
    let chunk = px.len() / (w * h) as usize;
    let mut colours: Vec<&[u8]> = px.chunks(chunk).map(|c| &c[..3]).collect();
    colours.sort_unstable();
    colours.dedup();
    assert!(
        colours.len() > 200,
        "screenshot has {} colours",
        colours.len()
    );
    assert!(
        px.chunks(chunk).any(|c| c[..3] == [0xfd, 0xe7, 0xe7]),
        "no fail banner in the screenshot"
    );
}

/// A run that recorded nothing but run.json (it failed before any traffic)
/// still renders every file without panicking, and a run directory without
/// run.json (a crash) renders from its CSVs.
#[test]
fn empty_and_partial_runs_render() {
    let full = RunRecord::read(&fixture()).unwrap();
    let t = tempfile::tempdir().unwrap();
    let mut info = full.info.clone().unwrap();
    info.failure = Some("server died".into());
    let empty = RunRecord {
        info: Some(info),
        ..Default::default()
    };
    empty.write(t.path()).unwrap();
    let s = render(t.path(), &opts(&[])).unwrap();
    for f in [
        "summary.json",
        "summary.md",
        "index.html",
        "latency.png",
        "locks.svg",
        "throughput.png",
    ] {
        assert!(t.path().join(f).is_file(), "{f} missing");
    }
    assert!(s.analysis.steps.is_empty());
    let md = std::fs::read_to_string(t.path().join("summary.md")).unwrap();
    assert!(
        md.contains("**The rehearsal did not finish:** server died"),
        "{md}"
    );

    let t = tempfile::tempdir().unwrap();
    let partial = RunRecord { info: None, ..full };
    partial.write(t.path()).unwrap();
    copy_histograms(t.path());
    let s = render(t.path(), &opts(&[])).unwrap();
    assert_eq!(s.analysis.steps.len(), 3);
    assert!(s.analysis.budgets.is_empty());
    assert!(s.verdict_passed());
}

#[test]
fn verdict_line_and_text_for_the_cli() {
    let (_t, s) = render_fixture(&[
        "max_blocking_lock_ms=500",
        "max_app_wait_ms=5s",
        "p99_ms=5s",
        "max_errors=5",
    ]);
    // Limits other than run.json's are named, with the run's; one the
    // same as the run's (max_blocking_lock_ms 500) is not an override.
    let overridden = " [limits overridden by `pgrehearse report --budget`, not the run's (run.json keeps its own): max_app_wait_ms 5000.0 ms (the run's: 500.0 ms); p99_ms 5000.0 ms (the run's: 250.0 ms); max_errors 5 (the run's: 0)]";
    assert_eq!(
        s.verdict_line(),
        format!("create-index-naive: FAIL — max_blocking_lock_ms 1199.2 ms > 500.0 ms (expand / create index){overridden}")
    );
    assert!(s.text().starts_with(&format!(
        "create-index-naive: FAIL (1 of 4 budgets breached)\n{}\n",
        &overridden[2..overridden.len() - 1]
    )));
    let (_t, s) = render_fixture(&[
        "max_blocking_lock_ms=5s",
        "max_app_wait_ms=5s",
        "p99_ms=5s",
        "max_errors=5",
    ]);
    assert!(
        s.verdict_line()
            .starts_with("create-index-naive: PASS (4 budgets held) [limits overridden"),
        "{}",
        s.verdict_line()
    );
    // The run's own budget: its verdict, nothing overridden.
    let (_t, s) = render_fixture(&[]);
    assert_eq!(
        s.verdict_line(),
        "create-index-naive: FAIL — max_blocking_lock_ms 1199.2 ms > 500.0 ms (expand / create index); max_app_wait_ms 1150.0 ms > 500.0 ms (expand / create index); p99_ms 1089.5 ms > 250.0 ms (expand / create index); max_errors 2 > 0 (between expand / add column and expand / create index)"
    );
    assert_eq!(
        RenderOptions::with_budgets(vec![("p99_ms".into(), 5.0)])
            .analyze
            .budget_overrides
            .len(),
        1
    );
}

/// `pgrehearse report RUN_DIR` re-renders from the CSVs alone and exits 1 on
/// a breached budget, 0 when every budget holds, 2 on a bad --budget.
#[test]
fn report_command_exit_codes_and_json() {
    let bin = env!("CARGO_BIN_EXE_pgrehearse");
    let t = copy_fixture();
    let run = |args: &[&str]| {
        Command::new(bin)
            .arg("report")
            .arg(t.path())
            .args(args)
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap()
    };
    // A lag budget on a run of our own server without a replica could only
    // fail: refused, exit 2, as `run` refuses it.
    let lag = run(&["--budget", "max_replica_lag_ms=100"]);
    assert_eq!(lag.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&lag.stderr).contains("had no replica to measure its lag on"),
        "{}",
        String::from_utf8_lossy(&lag.stderr)
    );
    // Rendered as the run judged it first: the CI artifact.
    assert_eq!(run(&[]).status.code(), Some(1));
    let artifact = |f: &str| std::fs::read(t.path().join(f)).unwrap();
    let kept: Vec<Vec<u8>> = ["summary.json", "summary.md", "index.html", "run.json"]
        .iter()
        .map(|f| artifact(f))
        .collect();
    let tight = run(&["--budget", "max_blocking_lock_ms=100"]);
    assert_eq!(
        tight.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&tight.stderr)
    );
    let out = String::from_utf8_lossy(&tight.stdout);
    assert!(
        out.contains(
            "budget max_blocking_lock_ms: FAIL 1199.2 ms > limit 100.0 ms (expand / create index)"
        ),
        "{out}"
    );
    // A what-if says so, with the run's own limit, and writes nothing.
    assert!(
        out.contains("limits overridden by `pgrehearse report --budget`, not the run's (run.json keeps its own): max_blocking_lock_ms 100.0 ms (the run's: 500.0 ms)"),
        "{out}"
    );
    assert!(out.contains("report: not written"), "{out}");

    // QA: a --budget that turns the FAIL into a PASS replaced the run's
    // summary.md, summary.json and index.html, silently.
    let loosen = [
        "--budget",
        "max_blocking_lock_ms=5s",
        "--budget",
        "max_app_wait_ms=5s",
        "--budget",
        "p99_ms=5s",
        "--budget",
        "max_errors=10",
    ];
    let quiet = run(&[&["-q"][..], &loosen].concat());
    assert_eq!(quiet.status.code(), Some(0));
    let line = String::from_utf8_lossy(&quiet.stdout);
    assert!(
        line.starts_with("create-index-naive: PASS (4 budgets held) [limits overridden by `pgrehearse report --budget`"),
        "{line}"
    );
    for (f, before) in ["summary.json", "summary.md", "index.html", "run.json"]
        .iter()
        .zip(&kept)
    {
        assert!(
            artifact(f) == *before,
            "{f} was rewritten by a what-if --budget"
        );
    }
    // With --out the what-if's reports go there, each verdict saying so.
    let what_if = t.path().join("what-if");
    let written = run(&[&["--out", what_if.to_str().unwrap()][..], &loosen].concat());
    assert_eq!(written.status.code(), Some(0));
    for f in [
        "summary.json",
        "summary.md",
        "index.html",
        "latency.svg",
        "locks.png",
        "throughput.svg",
    ] {
        assert!(what_if.join(f).is_file(), "{f} not rendered");
    }
    for f in ["summary.md", "index.html"] {
        let text = std::fs::read_to_string(what_if.join(f)).unwrap();
        assert!(
            text.contains("Not the run&#39;s verdict:") || text.contains("Not the run's verdict:"),
            "{f}: {text}"
        );
        assert!(
            text.contains("p99_ms 5000.0 ms (the run&#39;s: 250.0 ms)")
                || text.contains("p99_ms 5000.0 ms (the run's: 250.0 ms)"),
            "{f}: {text}"
        );
    }
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(what_if.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["verdict"], "pass");
    assert_eq!(
        s["overridden"][0]["name"], "max_blocking_lock_ms",
        "{}",
        s["overridden"]
    );
    assert_eq!(s["overridden"][0]["run_limit"], 500.0);
    for (f, before) in ["summary.json", "summary.md", "index.html", "run.json"]
        .iter()
        .zip(&kept)
    {
        assert!(artifact(f) == *before, "{f} was rewritten by --out");
    }

    let loose = run(&[
        "--json",
        "--budget",
        "max_blocking_lock_ms=5s",
        "--budget",
        "max_app_wait_ms=5s",
        "--budget",
        "p99_ms=5s",
        "--budget",
        "max_errors=10",
    ]);
    assert_eq!(
        loose.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&loose.stderr)
    );
    let printed: Summary = serde_json::from_slice(&loose.stdout).unwrap();
    assert_eq!(printed.verdict, "pass");
    let written: Summary =
        serde_json::from_str(&std::fs::read_to_string(what_if.join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(printed.analysis, written.analysis);

    let bad = run(&["--budget", "p98_ms=5"]);
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("unknown budget key `p98_ms`") && err.contains("max_blocking_lock_ms"),
        "{err}"
    );
}

/// A rehearsal that did not finish is INCOMPLETE, never PASS, however its
/// budgets look over the part that ran; `report` of it exits as the run
/// did: 4 failed, 130 interrupted.
#[test]
fn a_run_that_did_not_finish_is_incomplete_not_pass() {
    let bin = env!("CARGO_BIN_EXE_pgrehearse");
    for (failure, code) in [
        (
            "phase `p` step `s2`: syntax error at or near \"INDEXX\" (42601)",
            4,
        ),
        ("interrupted by SIGINT (step `p / s2` was cancelled)", 130),
    ] {
        let t = copy_fixture();
        let mut rec = RunRecord::read(t.path()).unwrap();
        rec.info.as_mut().unwrap().failure = Some(failure.into());
        rec.write(t.path()).unwrap();
        let out = Command::new(bin)
            .arg("report")
            .arg(t.path())
            .args([
                "--budget",
                "max_blocking_lock_ms=5s",
                "--budget",
                "max_app_wait_ms=5s",
            ])
            .args(["--budget", "p99_ms=5s", "--budget", "max_errors=10"])
            // Written where it is read below: a what-if --budget writes
            // only with --out.
            .arg("--out")
            .arg(t.path())
            .env_remove("GITHUB_STEP_SUMMARY")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(code), "{stdout}");
        assert!(
            stdout.starts_with("create-index-naive: INCOMPLETE (the rehearsal did not finish; 0 of 4 budgets breached over the part that ran)"),
            "{stdout}"
        );
        let s: Summary =
            serde_json::from_str(&std::fs::read_to_string(t.path().join("summary.json")).unwrap())
                .unwrap();
        assert_eq!(s.verdict, "incomplete");
        assert!(!s.verdict_passed());
        assert!(s
            .verdict_line()
            .starts_with(&format!("create-index-naive: INCOMPLETE — {failure}")));
        let md = std::fs::read_to_string(t.path().join("summary.md")).unwrap();
        assert!(md.contains("INCOMPLETE") && !md.contains("PASS"), "{md}");
    }
}

/// A long backfill (hundreds of batches, each a statement with its own locks,
/// and app waits) renders quickly and keeps the summary small.
#[test]
fn a_long_backfill_renders_quickly() {
    use pgrehearse::record::{Blocks, LockRow, StatementRow};
    let mut rec = RunRecord::read(&fixture()).unwrap();
    let base = rec.statements.iter().map(|s| s.end_ms).fold(0.0, f64::max) + 10.0;
    for b in 0..600u32 {
        let start = base + b as f64 * 3.0;
        rec.statements.push(StatementRow {
            phase: "switch".into(),
            step: "backfill".into(),
            attempt: 1,
            sql: format!(
                "UPDATE orders SET note = status WHERE id > {} AND id <= {}",
                b * 1000,
                (b + 1) * 1000
            ),
            start_ms: start,
            end_ms: start + 2.0,
            duration_ms: 2.0,
            outcome: "ok".into(),
            sqlstate: String::new(),
            rewrote: Some(false),
            seq_scans: Some(0),
            scanned: String::new(),
            wal_bytes: Some(200_000),
            cluster_wal_bytes: Some(300_000),
            unknown: String::new(),
            file: String::new(),
            line: None,
        });
        rec.locks.push(LockRow {
            phase: "switch".into(),
            step: "backfill".into(),
            relation: "orders".into(),
            locktype: "relation".into(),
            mode: "RowExclusiveLock".into(),
            requested_ms: start,
            granted_ms: Some(start),
            released_ms: Some(start + 2.0),
            wait_ms: 0.0,
            held_ms: Some(2.0),
            blocks: Blocks::None,
            source: "probe".into(),
            table: String::new(),
            blocked_by: String::new(),
        });
    }
    let t = tempfile::tempdir().unwrap();
    rec.write(t.path()).unwrap();
    copy_histograms(t.path());
    let started = std::time::Instant::now();
    let s = render(t.path(), &opts(&[])).unwrap();
    let took = started.elapsed();
    assert!(took.as_secs() < 60, "rendering took {took:?}");
    let backfill = s
        .analysis
        .steps
        .iter()
        .find(|st| st.step == "backfill")
        .unwrap();
    assert_eq!(backfill.statements, 600);
    assert_eq!(backfill.sql.len(), 10);
    assert_eq!(backfill.wal_bytes, Some(600 * 200_000));
    let json = std::fs::metadata(t.path().join("summary.json"))
        .unwrap()
        .len();
    assert!(json < 100_000, "summary.json is {json} bytes");
}

/// `pgrehearse report DIR | head -1`: a reader that stops early is not an
/// error and never a panic; the exit code is still the verdict's.
#[test]
fn report_to_a_closed_pipe_keeps_its_exit_code() {
    use std::process::Stdio;
    let t = copy_fixture();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .args(["report", "--json"])
        .arg(t.path())
        .env_remove("GITHUB_STEP_SUMMARY")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the read end before anything is read, like `head` after its line.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

/// A run directory missing a file every run writes, or with one emptied,
/// is damaged: `report` says which, exit 2, instead of reading it as "no
/// locks" and passing a run that failed.
#[test]
fn a_damaged_run_directory_is_refused_naming_the_file() {
    let report = |dir: &Path| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
            .arg("report")
            .arg(dir)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let t = copy_fixture();
    let (code, err) = report(t.path());
    assert!(matches!(code, Some(0 | 1)), "the fixture renders: {err}");
    for (file, damage) in [
        ("locks.csv", "missing"),
        ("waits.csv", "empty"),
        ("latency.hdr", "empty"),
    ] {
        let t = copy_fixture();
        let p = t.path().join(file);
        match damage {
            "missing" => std::fs::remove_file(&p).unwrap(),
            _ => std::fs::write(&p, "").unwrap(),
        }
        let (code, err) = report(t.path());
        assert_eq!(code, Some(2), "{file} {damage}: {err}");
        assert!(err.contains(file), "{file} {damage}: {err}");
    }
}

/// latency.hdr cut short at a line boundary (a run killed while writing
/// its segment lines, an artifact truncated) is damaged, exit 2: read as
/// it is, the spans it no longer covers had no traffic (QA: the fixture's
/// p99_ms FAIL became a PASS, "during" 0 requests).
#[test]
fn a_latency_hdr_cut_short_at_a_line_is_refused() {
    for keep in [1, 7, 20] {
        let (code, err) = report_damaged(|dir| {
            let p = dir.join("latency.hdr");
            let text = std::fs::read_to_string(&p).unwrap();
            let mut segments = 0;
            let cut: String = text
                .lines()
                .take_while(|l| {
                    segments += usize::from(l.starts_with("Tag=segment"));
                    segments <= keep
                })
                .map(|l| format!("{l}\n"))
                .collect();
            assert!(cut.len() < text.len());
            std::fs::write(&p, cut).unwrap();
        });
        assert_eq!(code, Some(2), "{keep} segment lines kept: {err}");
        assert!(
            err.contains("latency.hdr: its segments hold")
                && err.contains("latency.csv")
                && err.contains("cut short"),
            "{err}"
        );
    }
    // A segment line of the middle gone: the same.
    let (code, err) = report_damaged(|dir| {
        let p = dir.join("latency.hdr");
        let text = std::fs::read_to_string(&p).unwrap();
        let gone = text
            .lines()
            .find(|l| l.contains("from_ms=2000.000;"))
            .unwrap();
        std::fs::write(&p, text.replacen(&format!("{gone}\n"), "", 1)).unwrap();
    });
    assert_eq!(code, Some(2), "{err}");
}

/// `pgrehearse report DIR` of a copy of the fixture damaged by `damage`:
/// its exit code and stderr.
fn report_damaged(damage: impl FnOnce(&Path)) -> (Option<i32>, String) {
    let t = copy_fixture();
    damage(t.path());
    let out = Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .arg("report")
        .arg(t.path())
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Rewrite the run.json of `dir` through `edit`, as one line (as QA's
/// hand-edited copies were).
fn edit_run_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>)) {
    let p = dir.join("run.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    edit(v.as_object_mut().unwrap());
    std::fs::write(&p, v.to_string()).unwrap();
}

/// Replace `from` by `to` in the file `name` of `dir` (once, and it is there).
fn edit_file(dir: &Path, name: &str, from: &str, to: &str) {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(text.contains(from), "{name} has no {from:?}");
    std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
}

/// No message of `report` names a Rust type: the reader of a run directory
/// knows JSON and CSV, not the structs behind them.
fn assert_no_rust_type(said: &str) {
    for word in said.split(|c: char| !c.is_ascii_alphanumeric() && c != '_') {
        assert!(
            !["f32", "f64", "u32", "u64", "i32", "i64", "usize", "String", "Vec", "Option"]
                .contains(&word),
            "names the Rust type {word}: {said}"
        );
    }
    assert!(!said.contains("struct "), "{said}");
}

/// A failed run whose run.json lost its `failure` key read as a run that
/// finished, and passed (QA: exit 0, PASS, for a division by zero). Every
/// key a run writes must be there.
#[test]
fn run_json_without_its_failure_key_is_refused() {
    let (code, err) = report_damaged(|d| {
        edit_run_json(d, |j| {
            j["steps"][1]["outcome"] = "error".into();
            j.remove("failure");
        })
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("run.json:1:")
            && err.contains("key `failure` is missing: every run writes it"),
        "{err}"
    );
    // Even on a run whose steps all went well: the key is part of the file.
    let (code, err) = report_damaged(|d| edit_run_json(d, |j| drop(j.remove("failure"))));
    assert_eq!(code, Some(2), "{err}");
    // A key nested in a step, and a budget's, the same.
    let (code, err) = report_damaged(|d| {
        edit_run_json(d, |j| {
            j["steps"][0]
                .as_object_mut()
                .unwrap()
                .remove("lock_timeout_ms");
        })
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("key `steps[0].lock_timeout_ms` is missing"),
        "{err}"
    );
    let (code, err) = report_damaged(|d| {
        edit_run_json(d, |j| {
            j["budget"].as_object_mut().unwrap().remove("max_errors");
        })
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("key `budget.max_errors` is missing"), "{err}");
    // The keys reports/README.md documents as added later stay optional:
    // the fixture has no traffic_started_ms, primary_keys or pg_version_cell.
    let (code, err) = report_damaged(|_| {});
    assert!(matches!(code, Some(0 | 1)), "{err}");
}

/// `failure: null` on a run whose step failed: what a finished run cannot
/// hold, named by both fields, in run.json, steps.csv or statements.csv.
#[test]
fn null_failure_on_a_failed_run_is_refused_naming_both_fields() {
    let (code, err) = report_damaged(|d| {
        edit_run_json(d, |j| {
            j["steps"][1]["outcome"] = "error".into();
            j["failure"] = serde_json::Value::Null;
        })
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("run.json: field `steps[1].outcome` is `error`")
            && err.contains("but its field `failure` is null"),
        "{err}"
    );
    let (code, err) = report_damaged(|d| {
        edit_file(
            d,
            "steps.csv",
            "expand,add column,2000.0,2154.0,ok,",
            "expand,add column,2000.0,2154.0,lock_timeout,",
        )
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("steps.csv:2: column `outcome` is `lock_timeout`")
            && err.contains("but run.json field `failure` is null"),
        "{err}"
    );
    let (code, err) =
        report_damaged(|d| edit_file(d, "statements.csv", ",81.5,ok,,", ",81.5,error,22012,"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("statements.csv:4: column `outcome` of the last statement of step switch / analyze is `error`")
            && err.contains("but run.json field `failure` is null"),
        "{err}"
    );
    // With its failure recorded, the same run reads: incomplete, exit 4.
    let (code, err) = report_damaged(|d| {
        edit_run_json(d, |j| {
            j["steps"][1]["outcome"] = "error".into();
            j["failure"] = "phase `expand` step `create index`: division by zero".into();
        })
    });
    assert_eq!(code, Some(4), "{err}");
}

/// run.json without `steps` read as a run with none (QA: accepted).
#[test]
fn run_json_without_steps_is_refused() {
    let (code, err) = report_damaged(|d| edit_run_json(d, |j| drop(j.remove("steps"))));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("key `steps` is missing"), "{err}");
}

/// A window that starts before the run did (or at no time at all) is no
/// window a run writes: refused, naming file, line and column.
#[test]
fn a_window_start_that_is_no_time_is_refused() {
    for bad in ["-100", "inf", "NaN"] {
        let (code, err) = report_damaged(|d| {
            edit_file(
                d,
                "latency.csv",
                "\n0.0,100.0,read_order,v1,",
                &format!("\n{bad},100.0,read_order,v1,"),
            )
        });
        assert_eq!(code, Some(2), "{bad}: {err}");
        assert!(
            err.contains("latency.csv:2: column `window_start_ms`: ")
                && err.contains("is not a time of a run"),
            "{bad}: {err}"
        );
    }
}

/// An `inf` or `1e308` in a time column made `report` walk windows or
/// ticks up to it, at full CPU for good (QA: still running after 60 s).
/// Every time column is bounded as it is read, and named at its line.
#[test]
fn a_time_column_that_is_no_time_is_refused() {
    let cases = [
        (
            "locks.csv",
            ",2000.0,2150.0,2154.0,150.0,",
            ",2000.0,2150.0,inf,150.0,",
            2,
        ),
        (
            "statements.csv",
            ",2000.0,2154.0,154.0,ok,",
            ",2000.0,1e308,154.0,ok,",
            2,
        ),
        (
            "inflight.csv",
            "\n0.0,100.0,v1,8,0,\n",
            "\n0.0,100.0,v1,8,0,inf\n",
            2,
        ),
        (
            "errors.csv",
            "\n3454.1,update_order",
            "\n-1e308,update_order",
            2,
        ),
    ];
    for (file, from, to, line) in cases {
        let (code, err) = report_damaged(|d| edit_file(d, file, from, to));
        assert_eq!(code, Some(2), "{file}: {err}");
        assert!(
            err.contains(&format!("{file}:{line}")) && err.contains("is not a time of a run"),
            "{file}: {err}"
        );
    }
    // A budget no scenario can set is a damaged file too, not a breach.
    let (code, err) =
        report_damaged(|d| edit_run_json(d, |j| j["budget"]["max_app_wait_ms"] = (-1).into()));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("field `budget.max_app_wait_ms`: -1 is not a limit"),
        "{err}"
    );
}

/// A value of the wrong kind in run.json: where (line and column), which
/// field, what was expected, in JSON's words.
#[test]
fn run_json_type_error_names_line_field_and_what_was_expected() {
    let (code, err) =
        report_damaged(|d| edit_run_json(d, |j| drop(j.insert("end_ms".into(), "soon".into()))));
    assert_eq!(code, Some(2), "{err}");
    let at = regex::Regex::new(
        r"run\.json:1:\d+: field `end_ms`: invalid type: string \x22soon\x22, expected a number",
    )
    .unwrap();
    assert!(at.is_match(&err), "{err}");
    assert_no_rust_type(&err);
    let (code, err) = report_damaged(|d| {
        edit_run_json(d, |j| {
            drop(j.insert("server_version_num".into(), (-1).into()))
        })
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("field `server_version_num`: invalid value: number `-1`, expected a whole number from 0 to 4294967295"), "{err}");
    assert_no_rust_type(&err);
}

/// A CSV cell that is not its column's kind: the line, the column by its
/// header's name, what is there and what was expected (QA: "field 9:
/// invalid float literal").
#[test]
fn csv_cell_error_names_line_column_and_what_was_expected() {
    let (code, err) = report_damaged(|d| {
        edit_file(
            d,
            "locks.csv",
            ",150.0,4.0,reads+writes,",
            ",150.0,abc,reads+writes,",
        )
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("locks.csv:2: column `held_ms`: `abc`, expected a number"),
        "{err}"
    );
    assert!(!err.contains("field 9") && !err.contains("byte"), "{err}");
    assert_no_rust_type(&err);
    let (code, err) =
        report_damaged(|d| edit_file(d, "locks.csv", ",4.0,reads+writes,", ",4.0,sometimes,"));
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("locks.csv:2: column `blocks`: unknown variant `sometimes`, expected one of"),
        "{err}"
    );
    let (code, err) = report_damaged(|d| {
        edit_file(
            d,
            "statements.csv",
            "expand,add column,1,",
            "expand,add column,-1,",
        )
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains(
            "statements.csv:2: column `attempt`: `-1`, expected a whole number, 0 or more"
        ),
        "{err}"
    );
    assert_no_rust_type(&err);
}

/// run.json cut short: the line and column where it ends, never a field
/// `?` (QA: "field `?`: EOF while parsing").
#[test]
fn truncated_run_json_names_line_and_column() {
    let (code, err) = report_damaged(|d| {
        let p = d.join("run.json");
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().take(5).collect();
        std::fs::write(&p, lines.join("\n")).unwrap();
    });
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("run.json:5:")
            && err.contains("the file ends inside a JSON value: it is cut short"),
        "{err}"
    );
    assert!(!err.contains('?') && !err.contains("EOF"), "{err}");
}
