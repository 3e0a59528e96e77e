//! The load driver's wire protocol (src/workload/wire.rs) against a real
//! server, through the binary: parameters of built-in types in binary, an
//! enum and a domain in text, NULLs, row counts; and a statement whose
//! result type a step changes goes stale once per connection and is
//! prepared again, so the app recovers as a real driver's would; a COPY
//! FROM STDIN fails without hanging its connection.

mod common;

use common::csv_rows as rows;

#[test]
fn every_parameter_kind_is_sent_and_a_stale_statement_is_prepared_again() {
    let ran = common::run(
        &common::fixture("good/wire_types.toml"),
        &["-q", "--backend", "local"],
        &[],
    );
    ran.assert_code(0);
    let (dir, _) = ran.record();

    // Every query was answered, in every phase of the run.
    let latency = rows(&dir.join("latency.csv"));
    for query in ["by_tier", "by_code", "touch", "price", "copy_in"] {
        let (count, errors) =
            latency
                .iter()
                .filter(|r| r["query"] == query)
                .fold((0u64, 0u64), |(c, e), r| {
                    (
                        c + r["count"].parse::<u64>().unwrap(),
                        e + r["errors"].parse::<u64>().unwrap(),
                    )
                });
        assert!(count > 20, "{query}: {count} requests");
        assert!(
            query == "copy_in" || errors < count,
            "{query}: all {count} failed"
        );
    }

    // The only errors: the widened column's statement, stale once per
    // connection that had prepared it (3 clients), and every COPY FROM
    // STDIN, refused with CopyFail; never the enum, the domain or a NULL.
    let errors = rows(&dir.join("errors.csv"));
    let (stale, copy): (Vec<_>, Vec<_>) = errors.iter().partition(|e| e["query"] == "price");
    for e in &stale {
        assert_eq!(e["sqlstate"], "0A000", "{e:?}");
        assert!(e["message"].contains("cached plan"), "{e:?}");
    }
    assert!(
        (1..=3).contains(&stale.len()),
        "stale once per connection that had prepared it: {stale:?}"
    );
    for e in &copy {
        assert_eq!(
            (e["query"].as_str(), e["sqlstate"].as_str()),
            ("copy_in", "57014"),
            "{e:?}"
        );
    }
    let copies: u64 = latency
        .iter()
        .filter(|r| r["query"] == "copy_in")
        .map(|r| r["count"].parse::<u64>().unwrap())
        .sum();
    assert!(
        copies > 0 && copy.len() as u64 == copies,
        "{copies} copies, {copy:?}"
    );

    // After the step, the statement was prepared again and served.
    let steps = rows(&dir.join("steps.csv"));
    let end_ms: f64 = steps[0]["end_ms"].parse().unwrap();
    let after: u64 = latency
        .iter()
        .filter(|r| r["query"] == "price")
        .filter(|r| r["window_start_ms"].parse::<f64>().unwrap() > end_ms + 100.0)
        .map(|r| r["count"].parse::<u64>().unwrap() - r["errors"].parse::<u64>().unwrap())
        .sum();
    assert!(after > 0, "no price request succeeded after the step");

    // No budget was set, and nothing else went wrong.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["verdict"], "pass", "{summary}");
}
