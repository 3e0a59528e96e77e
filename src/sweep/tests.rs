//! The sweep's answer from hand-made measurements (no server): what is
//! fitted, what is refused, what the sentences, sweep.json, sweep.csv and
//! sweep.md say about it.

use serde_json::Value;

use super::answer::Answer;
use super::collect::{self, Measured, StepRow, Unit, FIGURES};
use super::render::{count, human, shorten};
use super::Cell;

/// A step with `outcome` and the figures given (the others absent).
fn step(name: &str, outcome: &str, figures: &[(&str, f64)]) -> StepRow {
    let mut values = vec![None; FIGURES.len()];
    for (key, v) in figures {
        values[collect::figure(key)] = Some(*v);
    }
    StepRow {
        phase: "migrate".into(),
        step: name.into(),
        values,
        blocking: Some(("docs".into(), "reads+writes".into())),
        sql: Some(format!("ALTER TABLE docs -- {name}")),
        outcome: outcome.into(),
    }
}

/// A combination at `rows` and `rate` that ended with `exit` / `outcome`.
fn cell(rows: u64, rate: Option<f64>, exit: u8, outcome: &str, steps: Vec<StepRow>) -> Measured {
    Measured {
        cell: Cell {
            version: None,
            rows,
            rate,
            exit_code: Some(exit),
            outcome: outcome.into(),
            run_dir: None,
        },
        rate,
        pg_version: None,
        run_dir: None,
        steps,
        overloaded: Some(Vec::new()),
    }
}

fn hold(ms: f64) -> Vec<(&'static str, f64)> {
    vec![("blocking_hold_ms", ms), ("duration_ms", ms + 10.0)]
}

/// sweep.json of `answer`, read back.
fn json_of(answer: &Answer, measured: &[Measured]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.json");
    answer.write_json(&path, measured).unwrap();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// QA's repro: `--rows 10k,20k --rate 50,100 --extrapolate 10M`, where at
/// 50/s noise made 20k faster than 10k. Printed "about 0 ms" with
/// prediction.value −221757 before.
#[test]
fn a_hold_that_falls_with_size_is_not_extrapolated_nor_called_harmless() {
    let measured = vec![
        cell(
            10_000,
            Some(50.0),
            1,
            "budget breached",
            vec![step("rewrite", "ok", &hold(3010.0))],
        ),
        cell(
            10_000,
            Some(100.0),
            1,
            "budget breached",
            vec![step("rewrite", "ok", &hold(3000.0))],
        ),
        cell(
            20_000,
            Some(50.0),
            1,
            "budget breached",
            vec![step("rewrite", "ok", &hold(2780.0))],
        ),
        cell(
            20_000,
            Some(100.0),
            1,
            "budget breached",
            vec![step("rewrite", "ok", &hold(6100.0))],
        ),
    ];
    let answer = Answer::new("docs-naive", &measured, Some(10_000_000));
    let sentences = answer.sentences(&measured);
    let at_50 = &sentences[0];
    assert!(!at_50.contains("0 ms"), "{at_50}");
    assert!(!at_50.contains("would"), "{at_50}");
    assert!(
        at_50.contains("at 20k rows and 50 queries/s `ALTER TABLE docs` blocked reads+writes on docs for 2.8 s"),
        "{at_50}"
    );
    assert!(
        at_50.contains("falls with size in these runs (noise or too few sizes); not extrapolated"),
        "{at_50}"
    );
    // The rate at which it grew is extrapolated as before.
    assert!(
        sentences[1].contains("at 10M rows and 100 queries/s"),
        "{sentences:?}"
    );
    assert!(sentences[1].contains("would block reads+writes on docs for about"));

    let json = json_of(&answer, &measured);
    let fit = json["fits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rate"] == 50.0 && f["figure"] == "blocking_hold_ms")
        .unwrap();
    let p = &fit["prediction"];
    assert!(p["value"].is_null(), "{p}");
    assert!(p["low"].is_null() && p["high"].is_null(), "{p}");
    assert_eq!(p["not_extrapolated"], "falls_with_size");
    assert_eq!(p["n"], 1e7);
    assert!(
        fit["caveats"].to_string().contains("falls with size"),
        "{fit}"
    );

    let md = answer.markdown(&measured);
    assert!(!md.contains("0 ms"), "{md}");
    let row = md
        .lines()
        .find(|l| l.contains("| longest blocking hold | — | 50 |"))
        .unwrap();
    assert!(row.contains("| not extrapolated |"), "{row}");
}

/// A low end below 0 is shown as "up to" the high end, never as 0, and
/// said to be clamped.
#[test]
fn a_clamped_low_end_reads_up_to() {
    let measured: Vec<Measured> = [(1_000, 5.0), (2_000, 60.0), (3_000, 20.0), (4_000, 80.0)]
        .into_iter()
        .map(|(n, ms)| cell(n, Some(200.0), 0, "pass", vec![step("s", "ok", &hold(ms))]))
        .collect();
    let answer = Answer::new("x", &measured, Some(5_000));
    let f = answer
        .find("migrate", "s", None, Some(200.0), "blocking_hold_ms")
        .unwrap();
    let p = f.prediction.as_ref().unwrap();
    assert!(p.low_clamped && p.low == Some(0.0), "{p:?}");
    let s = &answer.sentences(&measured)[0];
    assert!(s.contains("(95% interval up to "), "{s}");
    assert!(s.contains("its low end is clamped at 0"), "{s}");
    let md = answer.markdown(&measured);
    assert!(md.contains(" (up to "), "{md}");
    assert_eq!(
        json_of(&answer, &measured)["fits"][0]["prediction"]["low"],
        0.0
    );
}

/// QA's `bad_sql.toml --rows 500,1000`: every rehearsal exits 4 at its
/// second step. The failed step is not fitted; the step before it is, but
/// nothing is extrapolated and the answer says why instead.
#[test]
fn when_no_rehearsal_succeeded_the_answer_says_so_and_extrapolates_nothing() {
    let why = "migrate / bad failed: ERROR:  type \"nosuchtype\" does not exist (42704)";
    let measured: Vec<Measured> = [500, 1_000]
        .into_iter()
        .map(|n| {
            let steps = vec![
                step("good", "ok", &hold(n as f64 / 10.0)),
                step("bad", "error", &hold(2.0)),
            ];
            cell(n, Some(100.0), 4, why, steps)
        })
        .collect();
    let answer = Answer::new("bad-sql", &measured, Some(1_000_000));
    let sentences = answer.sentences(&measured);
    assert_eq!(sentences.len(), 1, "{sentences:?}");
    let s = &sentences[0];
    assert!(s.starts_with("bad-sql: no rehearsal succeeded"), "{s}");
    assert!(s.contains("nothing is extrapolated"), "{s}");
    // On one line: the error's double space and line breaks collapse.
    assert!(
        s.contains("at 500, 1k rows: exit 4, migrate / bad failed: ERROR: type \"nosuchtype\" does not exist (42704)"),
        "{s}"
    );
    assert!(!s.contains("would"), "{s}");
    // The failed step: no fit at all. The completed one: fitted, not
    // extrapolated.
    assert!(answer.fits.iter().all(|f| f.step != "bad"));
    let good = answer
        .find("migrate", "good", None, Some(100.0), "blocking_hold_ms")
        .unwrap();
    assert!(good.fit.is_ok() && good.prediction.is_none(), "{good:?}");
    assert!(good
        .caveats()
        .contains(&"no rehearsal at this version and rate succeeded: not extrapolated".into()));
    let json = json_of(&answer, &measured);
    assert!(json["fits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|f| f["prediction"].is_null()));
    assert!(answer
        .markdown(&measured)
        .contains("| 4 | migrate / bad failed"));
}

/// One size of three failed at its second step (a lock timeout): that
/// step is fitted over the other two and says where it did not complete;
/// the first step keeps all three sizes; the answer names the failed run.
#[test]
fn a_step_that_did_not_complete_is_left_out_of_its_fit_and_named() {
    let measured = vec![
        cell(
            1_000,
            None,
            0,
            "pass",
            vec![step("a", "ok", &hold(10.0)), step("b", "ok", &hold(20.0))],
        ),
        cell(
            2_000,
            None,
            0,
            "pass",
            vec![step("a", "ok", &hold(20.0)), step("b", "ok", &hold(40.0))],
        ),
        cell(
            4_000,
            None,
            4,
            "migrate / b: lock timeout",
            vec![
                step("a", "ok", &hold(40.0)),
                step("b", "lock_timeout", &hold(5.0)),
            ],
        ),
    ];
    let answer = Answer::new("x", &measured, Some(100_000));
    let b = answer
        .find("migrate", "b", None, None, "blocking_hold_ms")
        .unwrap();
    assert_eq!(b.points, [(1e3, 20.0), (2e3, 40.0)]);
    assert_eq!(b.not_fitted, [(4_000, "lock_timeout".to_string())]);
    assert!(b.caveats()[0]
        .contains("the step did not complete at 4k rows (lock_timeout): not fitted there"));
    let a = answer
        .find("migrate", "a", None, None, "blocking_hold_ms")
        .unwrap();
    assert_eq!(a.points.len(), 3);
    let sentences = answer.sentences(&measured);
    assert!(sentences[0].contains("would block"), "{sentences:?}");
    assert!(
        sentences[0].contains("lock_timeout"),
        "the lead's caveat: {sentences:?}"
    );
    assert!(
        sentences[1].contains("not every rehearsal succeeded")
            && sentences[1].contains("at 4k rows: exit 4, migrate / b: lock timeout"),
        "{sentences:?}"
    );
    let json = json_of(&answer, &measured);
    let b = json["fits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["step"] == "b" && f["figure"] == "blocking_hold_ms")
        .unwrap()
        .clone();
    assert_eq!(
        b["not_fitted"],
        serde_json::json!([{"rows": 4000, "outcome": "lock_timeout"}])
    );
}

/// A step that failed as the scenario expects (`expected_error`) is what
/// it rehearses: fitted.
#[test]
fn an_expected_error_step_is_fitted() {
    let measured: Vec<Measured> = [1_000, 2_000]
        .into_iter()
        .map(|n| {
            cell(
                n,
                None,
                0,
                "pass",
                vec![step("e", "expected_error", &hold(n as f64))],
            )
        })
        .collect();
    let answer = Answer::new("x", &measured, None);
    let f = answer
        .find("migrate", "e", None, None, "blocking_hold_ms")
        .unwrap();
    assert_eq!(f.points.len(), 2);
    assert!(f.not_fitted.is_empty());
}

/// Without `--rate` the cells ran at the scenario's own rate: sweep.csv
/// and sweep.json carry it as a number; `rates` are numbers like the
/// cells'.
#[test]
fn the_scenarios_own_rate_is_carried_and_rates_are_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let cells: Vec<Cell> = [1_000, 2_000]
        .into_iter()
        .map(|rows| Cell {
            version: None,
            rows,
            rate: None,
            exit_code: Some(0),
            outcome: "pass".into(),
            run_dir: None,
        })
        .collect();
    let measured = collect::read_all(dir.path(), &cells, Some(200.0));
    assert!(measured.iter().all(|m| m.rate == Some(200.0)));
    let csv_path = dir.path().join("sweep.csv");
    collect::write_csv(&csv_path, &measured).unwrap();
    assert_eq!(csv_column(&csv_path, "rate"), ["200", "200"]);
    let answer = Answer::new("x", &measured, None);
    let json = json_of(&answer, &measured);
    assert_eq!(json["rates"], serde_json::json!([200.0]));
    assert_eq!(json["cells"][0]["rate"], 200.0);

    // --rate 50,100: numbers, not ["50","100"].
    let measured = vec![
        cell(1_000, Some(50.0), 0, "pass", vec![]),
        cell(1_000, Some(100.0), 0, "pass", vec![]),
    ];
    let json = json_of(&Answer::new("x", &measured, None), &measured);
    assert_eq!(json["rates"], serde_json::json!([50.0, 100.0]));
    // A closed-loop scenario without --rate has no rate: null, empty.
    let closed = collect::read_all(dir.path(), &cells, None);
    assert_eq!(
        json_of(&Answer::new("x", &closed, None), &closed)["rates"],
        serde_json::json!([null])
    );
}

/// sweep.csv: each step's outcome beside its figures.
#[test]
fn sweep_csv_has_each_steps_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let measured = vec![
        cell(1_000, None, 0, "pass", vec![step("a", "ok", &hold(1.0))]),
        cell(2_000, None, 4, "boom", vec![step("a", "error", &hold(1.0))]),
    ];
    let path = dir.path().join("sweep.csv");
    collect::write_csv(&path, &measured).unwrap();
    assert_eq!(csv_column(&path, "migrate/a:outcome"), ["ok", "error"]);
}

/// The cells of column `name` of the CSV at `path`, top to bottom.
fn csv_column(path: &std::path::Path, name: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let col = r.headers().unwrap().iter().position(|h| h == name).unwrap();
    r.records()
        .map(|rec| rec.unwrap()[col].to_string())
        .collect()
}

/// Sizes in binary units, as the run summaries print them.
#[test]
fn people_units() {
    assert_eq!(count(400e6), "400M");
    assert_eq!(count(1.6e6), "1.6M");
    assert_eq!(count(32_000.0), "32k");
    assert_eq!(human(38.0 * 60_000.0, Unit::Ms), "38 min");
    assert_eq!(human(2_400.0, Unit::Ms), "2.4 s");
    // Not rounded into a different figure: 89 s is not "1 min", 0.35 ms not 0.
    assert_eq!(human(89_000.0, Unit::Ms), "1.5 min");
    assert_eq!(human(0.35, Unit::Ms), "0.35 ms");
    assert_eq!(human(0.0, Unit::Ms), "0 ms");
    assert_eq!(human(25_165_824.0, Unit::Bytes), "24.0 MiB");
    assert_eq!(
        human(1.2e9, Unit::Bytes),
        crate::analyze::fmt_bytes(1_200_000_000)
    );
    assert_eq!(human(1.2e9, Unit::Bytes), "1.1 GiB");
    assert_eq!(human(512.0, Unit::Bytes), "512 B");
    assert_eq!(
        shorten("CREATE INDEX\n  i ON t (c)"),
        "CREATE INDEX i ON t (c)"
    );
    let measured: Vec<Measured> = [1_000, 2_000]
        .into_iter()
        .map(|n| {
            cell(
                n,
                None,
                0,
                "pass",
                vec![step("w", "ok", &[("wal_bytes", n as f64 * 16_384.0)])],
            )
        })
        .collect();
    let md = Answer::new("x", &measured, None).markdown(&measured);
    assert!(md.contains("1k: 15.6 MiB, 2k: 31.2 MiB"), "{md}");
    assert!(!md.contains(" MB"), "{md}");
}
