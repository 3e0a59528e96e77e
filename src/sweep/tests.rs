//! The sweep's answer from hand-made measurements (no server): what is
//! fitted, what the sentences, sweep.json, sweep.csv and sweep.md say.

use serde_json::Value;

use super::answer::Answer;
use super::collect::{self, Measured, StepRow, Unit, FIGURES};
use super::render::{count, human, shorten};
use super::Cell;

/// A combination at `rows` and `rate` that ended with `exit` / `outcome`.
fn cell(rows: u64, rate: Option<f64>, exit: u8, outcome: &str) -> Measured {
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
        steps: Vec::new(),
        overloaded: Some(Vec::new()),
    }
}

/// A step with the figures given (the others absent).
fn step(name: &str, figures: &[(&str, f64)]) -> StepRow {
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
    }
}

/// sweep.json of `answer`, read back.
fn json_of(answer: &Answer, measured: &[Measured]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sweep.json");
    answer.write_json(&path, measured).unwrap();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
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
    let mut r = csv::Reader::from_path(&csv_path).unwrap();
    let col = r
        .headers()
        .unwrap()
        .iter()
        .position(|h| h == "rate")
        .unwrap();
    let rates: Vec<String> = r
        .records()
        .map(|rec| rec.unwrap()[col].to_string())
        .collect();
    assert_eq!(rates, ["200", "200"]);
    let answer = Answer::new("x", &measured, None);
    let json = json_of(&answer, &measured);
    assert_eq!(json["rates"], serde_json::json!([200.0]));
    assert_eq!(json["cells"][0]["rate"], 200.0);

    // --rate 50,100: numbers, not ["50","100"].
    let measured = vec![
        cell(1_000, Some(50.0), 0, "pass"),
        cell(1_000, Some(100.0), 0, "pass"),
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

/// Sizes in binary units, as the run summaries print them.
#[test]
fn people_units() {
    assert_eq!(count(400e6), "400M");
    assert_eq!(count(1.6e6), "1.6M");
    assert_eq!(count(32_000.0), "32k");
    assert_eq!(human(38.0 * 60_000.0, Unit::Ms), "38 min");
    assert_eq!(human(2_400.0, Unit::Ms), "2.4 s");
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
            let mut m = cell(n, None, 0, "pass");
            m.steps = vec![step("w", &[("wal_bytes", n as f64 * 16_384.0)])];
            m
        })
        .collect();
    let md = Answer::new("x", &measured, None).markdown(&measured);
    assert!(md.contains("1k: 15.6 MiB, 2k: 31.2 MiB"), "{md}");
    assert!(!md.contains(" MB"), "{md}");
}
