//! Every class of bad scenario input: the real binary exits 2 and prints
//! `file:line:col: field: message`; the library returns exactly the located
//! errors expected. Fixtures: tests/fixtures/bad/, each a copy of one small
//! scenario with one defect (many_errors and duplicate_names have several).

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::error::ScenarioError;
use pgrehearse::scenario::{self, Overrides};
use pgrehearse::Error;

fn fixture(dir: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
        .join(name)
}

/// (line, column, field, a fragment of the message)
type Expect = (usize, usize, &'static str, &'static str);

/// Each bad fixture and the errors it must produce, in order.
const CASES: &[(&str, &[Expect])] = &[
    (
        "syntax.toml",
        &[(6, 11, "table[0].rows", "TOML syntax error")],
    ),
    (
        "unknown_key.toml",
        &[(
            6,
            1,
            "table[0].rowz",
            "unknown field `rowz`, did you mean `rows`? expected one of: name, rows, create",
        )],
    ),
    (
        "unknown_keys_many.toml",
        &[
            (
                6,
                1,
                "table[0].rowz",
                "unknown field `rowz`, did you mean `rows`?",
            ),
            (
                10,
                29,
                "table[0].columns.v.maximum",
                "unknown field `maximum`; expected one of: gen, min, max",
            ),
            (13, 1, "workload.clinets", "did you mean `clients`?"),
            (21, 1, "phase[0].app", "did you mean `apps`?"),
        ],
    ),
    (
        "column_not_in_create.toml",
        &[(
            10,
            1,
            "table[0].columns.value",
            "column `value` is not in the CREATE TABLE statement of `t`",
        )],
    ),
    (
        // `[table.columns.value]` without a `[table.columns]` line once
        // failed to load at all ("expected a borrowed string").
        "column_in_dotted_header.toml",
        &[(
            14,
            16,
            "table[0].columns.value",
            "column `value` is not in the CREATE TABLE statement of `t`",
        )],
    ),
    (
        "table_not_in_create.toml",
        &[(7, 10, "table[0].create", "does not mention table `t`")],
    ),
    (
        "wrong_type.toml",
        &[(
            13,
            11,
            "workload.clients",
            "invalid type: string \"two\", expected an integer",
        )],
    ),
    (
        "unknown_generator.toml",
        &[(
            10,
            13,
            "table[0].columns.v.gen",
            "unknown generator `integer`; expected one of: sequence, int, float",
        )],
    ),
    (
        "gen_field_not_allowed.toml",
        &[(
            10,
            49,
            "table[0].columns.v.min_len",
            "`min_len` does not apply to gen = \"int\"",
        )],
    ),
    (
        "gen_missing.toml",
        &[(
            10,
            5,
            "table[0].columns.v.gen",
            "missing; expected a generator",
        )],
    ),
    (
        "min_gt_max.toml",
        &[(
            10,
            36,
            "table[0].columns.v.max",
            "max 1 is less than min 10",
        )],
    ),
    (
        "from_gt_to.toml",
        &[(
            10,
            52,
            "table[0].columns.v.to",
            "`to` is earlier than `from`",
        )],
    ),
    (
        "bad_timestamp.toml",
        &[(
            10,
            33,
            "table[0].columns.v.from",
            "`2025-02-30` is not a date or timestamp",
        )],
    ),
    (
        "negative_rows.toml",
        &[(6, 8, "table[0].rows", "-10 is negative")],
    ),
    (
        "zero_rows.toml",
        &[(6, 8, "table[0].rows", "is 0; expected at least 1")],
    ),
    (
        "absurd_rows.toml",
        &[(
            6,
            8,
            "table[0].rows",
            "20000000000 rows is absurd; expected at most 10000000000",
        )],
    ),
    (
        "rows_beyond_disk.toml",
        &[(6, 8, "table[0].rows", "beyond any disk a rehearsal can use")],
    ),
    (
        "weights_length.toml",
        &[(
            10,
            59,
            "table[0].columns.v.weights",
            "has 2 weights for 3 values",
        )],
    ),
    (
        "weights_zero.toml",
        &[(10, 54, "table[0].columns.v.weights", "are all zero")],
    ),
    (
        "null_fraction.toml",
        &[(
            10,
            55,
            "table[0].columns.v.null_fraction",
            "1.5 is out of range; expected a number in 0..=1",
        )],
    ),
    (
        "placeholder_count.toml",
        &[(
            17,
            10,
            "workload.query[0].params",
            "uses placeholders $1, $2 but params has 1 generator(s)",
        )],
    ),
    (
        "placeholder_gap.toml",
        &[(
            17,
            10,
            "workload.query[0].params",
            "uses placeholders $1, $3 but params has 2 generator(s); expected exactly $1..$2",
        )],
    ),
    (
        "app_reserved.toml",
        &[(
            17,
            15,
            "workload.query[0].apps[1]",
            "`other` is reserved: the reports label scripts' and other sessions'",
        )],
    ),
    (
        "placeholder_huge.toml",
        &[(
            17,
            10,
            "workload.query[0].params",
            "uses placeholders $1, a $n past $65535 (PostgreSQL's limit) but params has 2",
        )],
    ),
    (
        "placeholder_quoted.toml",
        &[(
            17,
            10,
            "workload.query[0].params",
            "uses no placeholders but params has 1 generator(s)",
        )],
    ),
    (
        "query_two_statements.toml",
        &[(
            16,
            7,
            "workload.query[0].sql",
            "has 2 statements; expected exactly one",
        )],
    ),
    (
        "step_sql_and_backfill.toml",
        &[(
            24,
            12,
            "phase[0].step[0].backfill",
            "a step runs one of sql, backfill, migration or file, and this one also has sql",
        )],
    ),
    (
        "step_neither.toml",
        &[(
            21,
            1,
            "phase[0].step[0]",
            "runs nothing; expected one of sql, backfill, migration",
        )],
    ),
    (
        "unknown_app.toml",
        &[(
            22,
            15,
            "phase[0].apps[1]",
            "app `v3` is not sent any query; expected one of: v1, v2",
        )],
    ),
    (
        "duplicate_names.toml",
        &[
            (
                14,
                8,
                "table[1].name",
                "duplicate table name `t` (first defined on line 5)",
            ),
            (
                29,
                8,
                "workload.query[1].name",
                "duplicate query name `q` (first defined on line 24)",
            ),
            (
                37,
                8,
                "workload.script[1].name",
                "duplicate script name `r` (first defined on line 33)",
            ),
            (
                47,
                8,
                "phase[0].step[1].name",
                "duplicate step name `s` (first defined on line 44)",
            ),
            (
                51,
                8,
                "phase[1].name",
                "duplicate phase name `p` (first defined on line 42)",
            ),
        ],
    ),
    (
        "fk_unknown_table.toml",
        &[(
            17,
            33,
            "workload.query[0].params[0].table",
            "no table named `customers`; expected one of: t",
        )],
    ),
    (
        "fk_later_table.toml",
        &[(
            10,
            27,
            "table[0].columns.v.table",
            "table `u` (line 13) is not defined before this table",
        )],
    ),
    ("no_phases.toml", &[(1, 1, "phase", "no phases")]),
    ("no_steps.toml", &[(19, 1, "phase[0].step", "no steps")]),
    (
        "zero_clients.toml",
        &[(
            13,
            11,
            "workload.clients",
            "0 is out of range; expected an integer in 1..=10000",
        )],
    ),
    (
        "bad_size.toml",
        &[
            (
                5,
                17,
                "postgres.size.cpus",
                "0 is out of range; expected an integer in 1..=1024",
            ),
            (
                5,
                29,
                "postgres.size.memory",
                "`16 parsecs` has an unknown unit `parsecs`; expected an amount of memory like \"16GB\"",
            ),
        ],
    ),
    (
        "size_unknown_key.toml",
        &[(
            5,
            10,
            "postgres.size.cpu",
            "unknown field `cpu`, did you mean `cpus`? expected one of: cpus, memory",
        )],
    ),
    (
        "bad_rate.toml",
        &[(14, 8, "workload.rate", "-5 is out of range")],
    ),
    (
        "bad_duration.toml",
        &[(
            14,
            10,
            "workload.before",
            "`5 seconds` has an unknown unit `seconds`; expected a duration like",
        )],
    ),
    (
        "bad_variant.toml",
        &[(
            3,
            11,
            "variant",
            "unknown variant `careful`; expected \"naive\" or \"safe\"",
        )],
    ),
    (
        "concurrently_in_transaction.toml",
        &[(
            23,
            7,
            "phase[0].step[0].sql",
            "cannot run inside a transaction block; set transaction = false",
        )],
    ),
    (
        "rollback_in_transaction.toml",
        &[(
            23,
            7,
            "phase[0].step[0].sql",
            "`ROLLBACK` would end the step's own transaction",
        )],
    ),
    (
        "backfill_where_escapes.toml",
        &[(
            23,
            73,
            "phase[0].step[0].backfill.where",
            "the `)` at byte 5 closes a parenthesis it did not open: it goes into the UPDATE of each batch as one clause",
        )],
    ),
    (
        "window_tiny.toml",
        &[(
            14,
            10,
            "workload.window",
            "100ns is out of range; expected from 1ms to 60s",
        )],
    ),
    (
        "fk_key_without_column.toml",
        &[(
            17,
            44,
            "workload.query[0].params[0].key",
            "names the foreign key a copied column is part of: it needs `column`",
        )],
    ),
    (
        "fk_column_unknown.toml",
        &[(
            17,
            56,
            "table[1].columns.tenant_id.column",
            "table `accounts` has no generator for column `tenant` to copy; it generates: tenant_id, id",
        )],
    ),
    (
        "fk_column_draws_differ.toml",
        &[
            (
                18,
                14,
                "table[1].columns.account_id",
                "draws its parent row unlike table[1].columns.tenant_id",
            ),
            (
                25,
                69,
                "workload.query[0].params[1]",
                "draws its parent row unlike workload.query[0].params[0]",
            ),
        ],
    ),
    (
        "fk_column_circle.toml",
        &[
            (
                10,
                41,
                "table[0].columns.x.column",
                "copies b.y, which copies back into it",
            ),
            (
                18,
                41,
                "table[1].columns.y.column",
                "copies a.x, which copies back into it",
            ),
        ],
    ),
    (
        "begin_in_autocommit.toml",
        &[(
            23,
            7,
            "phase[0].step[0].sql",
            "`BEGIN`: a step with transaction = false runs each statement on its own, so a transaction block written in it would not hold",
        )],
    ),
    (
        "name_control_chars.toml",
        &[
            (
                15,
                8,
                "workload.query[0].name",
                "\"q\\tread\" holds a line break, tab, or other control or invisible character; expected a query name on one line",
            ),
            (
                20,
                8,
                "phase[0].name",
                "\"p\\u{2028}q\" holds a line break, tab, or other control or invisible character",
            ),
            (
                22,
                8,
                "phase[0].step[0].name",
                "\"first line\\nsecond line\" holds a line break",
            ),
        ],
    ),
    (
        "expect_error.toml",
        &[
            (
                24,
                16,
                "phase[0].step[0].expect_error",
                "\"timeout\" is not a SQLSTATE (five digits or letters)",
            ),
            (
                28,
                16,
                "phase[0].step[1].expect_error",
                "a backfill step cannot expect an error",
            ),
            (32, 16, "phase[0].step[2].expect_error", "is an empty list"),
            (
                35,
                23,
                "budget.max_invalid_indexes",
                "-1 is out of range; expected an integer in 0..=1000",
            ),
        ],
    ),
    (
        "distinct_range.toml",
        &[(
            10,
            50,
            "table[0].columns.v.distinct",
            "100 distinct integers do not fit in 1..=10",
        )],
    ),
    (
        "minor_version.toml",
        &[(
            26,
            11,
            "postgres.version",
            "`15.2` is a minor version; give its major, \"15\"",
        )],
    ),
    (
        "pg_limits.toml",
        &[
            (
                11,
                42,
                "table[0].columns.f.max",
                "max - min overflows a double",
            ),
            (
                15,
                17,
                "workload.query_timeout",
                "must be at least 1ms",
            ),
            (26, 16, "phase[0].step[0].lock_timeout", "must be at least 1ms"),
            (
                27,
                21,
                "phase[0].step[0].statement_timeout",
                "must be at most 2147483647 ms",
            ),
        ],
    ),
    (
        "setting_nan.toml",
        &[(
            26,
            25,
            "postgres.settings.work_mem",
            "NaN is not a value Postgres takes",
        )],
    ),
    (
        "nul_escape.toml",
        &[(
            23,
            7,
            "phase[0].step[0].sql",
            "a NUL character (\\u0000) in a string",
        )],
    ),
    (
        "retries_without_timeout.toml",
        &[(
            24,
            11,
            "phase[0].step[0].retries",
            "retries = 3 would never happen: a step is retried only after a lock timeout (55P03)",
        )],
    ),
    (
        "huge_integer.toml",
        &[(
            6,
            8,
            "table[0].rows",
            "the number is too large: a TOML integer is at most 9223372036854775807",
        )],
    ),
    (
        "huge_integer_inline.toml",
        &[(
            10,
            35,
            "table[0].columns.v.max",
            "the number is too large: a TOML integer is at most 9223372036854775807",
        )],
    ),
    (
        // Located at the quote, through the string's escaped quotes.
        "unclosed_quote_escaped.toml",
        &[(
            23,
            52,
            "phase[0].step[0].sql",
            "a quoted string opened at `'oops` is never closed",
        )],
    ),
    (
        "missing_name.toml",
        &[(1, 1, "name", "missing; expected a scenario name")],
    ),
    ("empty.toml", &[(1, 1, "", "the file is empty")]),
    ("comments_only.toml", &[(1, 1, "", "the file is empty")]),
    (
        "truncated.toml",
        &[(17, 31, "workload.query[0].params[0]", "TOML syntax error")],
    ),
    (
        "not_utf8.toml",
        &[(16, 11, "", "invalid UTF-8 (byte 0xff at offset 326)")],
    ),
    ("binary_garbage.toml", &[(1, 1, "", "invalid UTF-8")]),
    ("nul_byte.toml", &[(2, 1, "", "binary data (a NUL byte)")]),
    (
        "many_errors.toml",
        &[
            (6, 8, "table[0].rows", "-1 is negative"),
            (
                10,
                36,
                "table[0].columns.v.max",
                "max 1 is less than min 10",
            ),
            (13, 11, "workload.clients", "0 is out of range"),
        ],
    ),
];

fn errors_of(path: &Path) -> Vec<ScenarioError> {
    match scenario::load(path, &Overrides::default()) {
        Ok(_) => panic!("{} loaded without errors", path.display()),
        Err(Error::Scenario(v)) => v,
        Err(e) => panic!("{}: not a scenario error: {e}", path.display()),
    }
}

#[test]
fn library_reports_exactly_the_expected_located_errors() {
    let mut failures = Vec::new();
    for (name, expected) in CASES {
        let path = fixture("bad", name);
        let got = errors_of(&path);
        let got_short: Vec<(usize, usize, &str)> = got
            .iter()
            .map(|e| (e.line, e.column, e.field.as_str()))
            .collect();
        let want_short: Vec<(usize, usize, &str)> =
            expected.iter().map(|(l, c, f, _)| (*l, *c, *f)).collect();
        if got_short != want_short {
            failures.push(format!("{name}: want {want_short:?}\n  got {got:#?}"));
            continue;
        }
        for (e, (_, _, _, msg)) in got.iter().zip(expected.iter()) {
            assert_eq!(e.file, path);
            if !e.message.contains(msg) {
                failures.push(format!("{name}: message {:?} lacks {msg:?}", e.message));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_bad_fixture_is_covered() {
    let dir = fixture("bad", "");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".toml"))
        .collect();
    on_disk.sort();
    let mut listed: Vec<String> = CASES.iter().map(|(n, _)| n.to_string()).collect();
    listed.sort();
    assert_eq!(on_disk, listed);
}

fn check(args: &[&Path]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
        .arg("check")
        .args(args)
        .output()
        .expect("run pgrehearse");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn binary_exits_2_with_file_line_column_field_message() {
    let mut failures = Vec::new();
    for (name, expected) in CASES {
        let path = fixture("bad", name);
        let (code, _, stderr) = check(&[&path]);
        if code != 2 {
            failures.push(format!("{name}: exit {code}, stderr {stderr}"));
        }
        if stderr.contains("panicked") {
            failures.push(format!("{name}: panic: {stderr}"));
        }
        for (line, col, field, msg) in expected.iter() {
            let located = if field.is_empty() {
                format!("{}:{line}:{col}: {msg}", path.display())
            } else {
                format!("{}:{line}:{col}: {field}: ", path.display())
            };
            if !stderr.contains(&located) || !stderr.contains(msg) {
                failures.push(format!(
                    "{name}: stderr lacks {located:?} / {msg:?}:\n{stderr}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn missing_file_exits_2_naming_the_path() {
    let path = fixture("bad", "does-not-exist.toml");
    let (code, _, stderr) = check(&[&path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}: cannot read the scenario file: ",
            path.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains(":0:0"), "no position is no 0:0: {stderr}");
}

#[test]
fn a_directory_is_not_a_scenario_file() {
    let path = fixture("bad", "");
    let (code, _, stderr) = check(&[&path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(": cannot read the scenario file: "),
        "{stderr}"
    );
    // A device is refused before a byte is read: /dev/zero never ends.
    let (code, _, stderr) = check(&[Path::new("/dev/zero")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn good_and_bad_together_reports_the_bad_one_and_exits_2() {
    let good = fixture("good", "tiny.toml");
    let bad = fixture("bad", "zero_clients.toml");
    let (code, _, stderr) = check(&[&good, &bad]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("zero_clients.toml:13:11: workload.clients: "),
        "{stderr}"
    );
    assert!(!stderr.contains("tiny.toml"), "{stderr}");
}

#[test]
fn good_fixture_checks_and_prints_the_plan() {
    let good = fixture("good", "tiny.toml");
    let (code, stdout, stderr) = check(&[&good]);
    assert_eq!(code, 0, "{stderr}");
    for want in [
        "scenario tiny",
        "customers — 100 rows",
        "orders — 400 rows",
        "customer_id      fk customers 1..=100",
        "query read_order weight 6 (60%) apps [v1, v2]",
        "step index concurrently (autocommit)",
        "backfill: UPDATE orders SET total_v2 = total_cents WHERE id > lo",
        "longest blocking lock <= 1000 ms",
    ] {
        assert!(stdout.contains(want), "plan lacks {want:?}:\n{stdout}");
    }
}

#[test]
fn the_scenario_library_checks_clean() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 14,
        "expected naive/safe pairs, found {files:?}"
    );
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let (code, _, stderr) = check(&refs);
    assert_eq!(code, 0, "{stderr}");
    // Every pair has exactly one naive and one safe file.
    let mut pairs: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for f in &files {
        let s = scenario::load(f, &Overrides::default()).unwrap();
        let variant = s
            .variant
            .map(|v| format!("{v:?}").to_lowercase())
            .unwrap_or_default();
        pairs
            .entry(s.pair.clone().expect("every library scenario has a pair"))
            .or_default()
            .push(variant);
    }
    for (pair, mut variants) in pairs {
        variants.sort();
        assert_eq!(variants, ["naive", "safe"], "pair {pair}");
    }
}

#[test]
fn rows_and_scale_overrides_keep_exact_counts_and_foreign_keys() {
    let good = fixture("good", "tiny.toml");
    let rows = Overrides {
        rows: Some(40),
        scale: None,
        ..Overrides::default()
    };
    let s = scenario::load(&good, &rows).unwrap();
    let counts: Vec<(&str, u64)> = s.tables.iter().map(|t| (t.name.as_str(), t.rows)).collect();
    assert_eq!(counts, [("customers", 10), ("orders", 40)]);
    let fk = &s.tables[1]
        .columns
        .iter()
        .find(|c| c.name == "customer_id")
        .unwrap()
        .gen
        .kind;
    assert_eq!(
        fk,
        &scenario::Gen::ForeignKey {
            table: "customers".into(),
            rows: 10
        }
    );
    // Query parameters follow the scaled table too.
    assert_eq!(
        s.workload.queries[0].params[0].kind,
        scenario::Gen::ForeignKey {
            table: "orders".into(),
            rows: 40
        }
    );
    let scale = Overrides {
        rows: None,
        scale: Some(2.5),
        ..Overrides::default()
    };
    let s = scenario::load(&good, &scale).unwrap();
    let counts: Vec<u64> = s.tables.iter().map(|t| t.rows).collect();
    assert_eq!(counts, [250, 1000]);
    let tiny = Overrides {
        rows: None,
        scale: Some(0.000_001),
        ..Overrides::default()
    };
    let s = scenario::load(&good, &tiny).unwrap();
    assert!(s.tables.iter().all(|t| t.rows == 1));
    let absurd = Overrides {
        rows: Some(50_000_000_000),
        scale: None,
        ..Overrides::default()
    };
    match scenario::load(&good, &absurd) {
        Err(Error::Scenario(v)) => {
            assert!(
                v.iter()
                    .any(|e| e.field == "table[1].rows"
                        && e.message.contains("after --rows/--scale")),
                "{v:?}"
            );
        }
        other => panic!("expected a scenario error, got {other:?}"),
    }
    assert!(matches!(
        scenario::load(
            &good,
            &Overrides {
                rows: Some(0),
                scale: None,
                ..Overrides::default()
            }
        ),
        Err(Error::Usage(_))
    ));
}

#[test]
fn the_plan_of_the_good_fixture_is_what_the_file_says() {
    let good = fixture("good", "tiny.toml");
    let s = scenario::load(&good, &Overrides::default()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    use sha2::Digest;
    assert_eq!(s.hash, hex::encode(sha2::Sha256::digest(&bytes)));
    assert_eq!(s.workload.apps(), ["v1", "v2"]);
    assert_eq!(s.workload.queries[0].apps, ["v1", "v2"]);
    assert_eq!(s.phases[1].apps, ["v1", "v2"]);
    assert_eq!(s.workload.rate, Some(100.0));
    assert_eq!(s.workload.window, std::time::Duration::from_millis(100));
    let contract = &s.phases[2].steps[0];
    assert_eq!(
        contract.action,
        scenario::StepAction::Sql(vec![
            "ALTER TABLE orders DROP COLUMN note".into(),
            "COMMENT ON COLUMN orders.total_v2 IS 'cents; was total_cents'".into()
        ])
    );
    assert_eq!(
        contract.statement_timeout,
        Some(std::time::Duration::from_secs(5))
    );
    let add = &s.phases[0].steps[0];
    assert_eq!(
        (add.retries, add.retry_backoff),
        (2, std::time::Duration::from_millis(50))
    );
    assert!(!s.phases[0].steps[1].transaction);
    assert_eq!(
        s.postgres.settings,
        [
            ("work_mem".to_string(), "8MB".to_string()),
            ("log_min_duration_statement".to_string(), "-1".to_string()),
            ("jit".to_string(), "off".to_string())
        ]
    );
    let created = s.tables[0]
        .columns
        .iter()
        .find(|c| c.name == "created_at")
        .unwrap();
    assert_eq!(
        created.gen.kind,
        scenario::Gen::Timestamp {
            from_us: 1_704_067_200_000_000,
            to_us: 1_751_284_800_000_000
        }
    );
}

/// A value of the wrong kind where a table belongs names what belongs
/// there, in the scenario's words, not a Rust type.
#[test]
fn a_string_where_a_table_belongs_says_which_table() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "name = \"x\"\n[migrations]\ndir = \"db\"\nrehearse = \"all\"\n",
            "4:12: migrations.rehearse: invalid type: string \"all\", expected a table: \
             { from = \"<version>\" } or { last = <count> }",
        ),
        (
            "name = \"x\"\nworkload = 5\n",
            "2:12: workload: invalid type: integer `5`, expected a [workload] table",
        ),
    ];
    for (toml, want) in cases {
        let path = dir.path().join("s.toml");
        std::fs::write(&path, toml).unwrap();
        let (code, _, stderr) = check(&[&path]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!stderr.contains("struct"), "{stderr}");
    }
}

/// `last = 0` with no phase of the scenario's own leaves nothing to
/// rehearse: the error points at the 0.
#[test]
fn last_zero_without_phases_points_at_the_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("db")).unwrap();
    std::fs::write(
        dir.path().join("db/V1__t.sql"),
        "CREATE TABLE t (id int PRIMARY KEY);\n",
    )
    .unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "name = \"x\"\n[migrations]\ndir = \"db\"\nrehearse = { last = 0 }\n\n\
         [[table]]\nname = \"t\"\nrows = 10\n",
    )
    .unwrap();
    let (code, _, stderr) = check(&[&path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("s.toml:4:21: migrations.rehearse.last: 0 rehearses no file"),
        "{stderr}"
    );
}

/// What leaving a zero duration out means, per field; a Postgres version
/// pgrehearse does not rehearse on is refused by `check`, not at run time.
#[test]
fn zero_window_and_unknown_version_say_what_is_meant() {
    let dir = tempfile::tempdir().unwrap();
    let base = "name = \"x\"\n[[table]]\nname = \"t\"\nrows = 10\n\
                create = \"CREATE TABLE t (id int)\"\n[table.columns]\nid = { gen = \"sequence\" }\n";
    let cases = [
        (
            "[workload]\nwindow = \"0ms\"\n",
            "workload.window: must be greater than zero; omit it for the default, 100ms",
        ),
        (
            "[postgres]\nversion = \"99\"\n",
            "postgres.version: PostgreSQL 99 is not one pgrehearse rehearses on; expected a major version from 14 to 18",
        ),
        (
            "[postgres]\nversion = 12\n",
            "postgres.version: `12` is not a Postgres major version pgrehearse rehearses on; expected one from 14 to 18",
        ),
    ];
    for (extra, want) in cases {
        let path = dir.path().join("s.toml");
        std::fs::write(&path, format!("{base}{extra}")).unwrap();
        let (code, _, stderr) = check(&[&path]);
        assert_eq!(code, 2, "{stderr}");
        assert!(stderr.contains(want), "want {want}\n{stderr}");
    }
}

/// A quote never closed in inline SQL is found by `check`, as it is in a
/// migration file.
#[test]
fn an_unclosed_quote_in_inline_sql_is_found_by_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(
        &path,
        "name = \"x\"\n[[table]]\nname = \"t\"\nrows = 10\n\
         create = \"CREATE TABLE t (id int)\"\n[table.columns]\nid = { gen = \"sequence\" }\n\
         [[phase]]\nname = \"p\"\n[[phase.step]]\nname = \"s\"\nsql = \"SELECT 'abc\"\n",
    )
    .unwrap();
    let (code, _, stderr) = check(&[&path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "s.toml:12:15: phase[0].step[0].sql: a quoted string opened at `'abc` is never closed"
        ),
        "{stderr}"
    );
    // In a multi-line string: at the quote's own line and column.
    std::fs::write(
        &path,
        "name = \"x\"\n[[table]]\nname = \"t\"\nrows = 10\n\
         create = \"CREATE TABLE t (id int)\"\n[table.columns]\nid = { gen = \"sequence\" }\n\
         [[phase]]\nname = \"p\"\n[[phase.step]]\nname = \"s\"\nsql = '''\nSELECT 1;\n\
         UPDATE t SET id = 2\n  WHERE id = 'x;\n'''\n",
    )
    .unwrap();
    let (code, _, stderr) = check(&[&path]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(
            "s.toml:15:14: phase[0].step[0].sql: a quoted string opened at `'x;` is never closed"
        ),
        "{stderr}"
    );
}

/// A negative number on the command line is a bad value of its flag, said
/// as such, not clap's "unexpected argument" with a `-- -5` tip.
#[test]
fn negative_numbers_on_the_command_line_are_bad_values() {
    let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/tiny.toml");
    for (command, flag, value, says) in [
        (
            "check",
            "--rows",
            "-5",
            "--rows: `-5` must be a whole number of rows",
        ),
        (
            "check",
            "--scale",
            "-2",
            "--scale: -2 must be a positive number",
        ),
        (
            "run",
            "--seed",
            "-1",
            "invalid value '-1' for '--seed <SEED>'",
        ),
        (
            "run",
            "--before",
            "-1s",
            "--before: `-1s` is not a duration",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
            .arg(command)
            .arg(&tiny)
            .args([flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(says) && !stderr.contains("-- -"),
            "{stderr}"
        );
    }
}

/// `max_error_rate` takes a percentage in the file as `--budget` does.
#[test]
fn an_error_rate_is_a_ratio_or_a_percentage() {
    let path = fixture("good", "tiny.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let with = |v: &str| text.replace("max_error_rate = 0.05", &format!("max_error_rate = {v}"));
    let load = |t: String| scenario::load_str(&path, t.as_bytes(), &Overrides::default());
    let s = load(with("\"5%\"")).expect("a percentage");
    assert_eq!(s.budget.max_error_rate, Some(0.05));
    let Err(Error::Scenario(e)) = load(with("\"150%\"")) else {
        panic!("150% is refused")
    };
    assert_eq!(e[0].field, "budget.max_error_rate", "{e:?}");
    assert!(e[0].message.contains("a percentage"), "{e:?}");
}

/// Retries need something that can time out a lock: the step's
/// lock_timeout, its own `SET lock_timeout` or NOWAIT, or the server's
/// lock_timeout setting; without any they are refused.
#[test]
fn retries_count_only_where_a_lock_can_time_out() {
    let path = fixture("bad", "retries_without_timeout.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let load = |t: String| scenario::load_str(&path, t.as_bytes(), &Overrides::default());
    let step = "sql = \"ALTER TABLE t ADD COLUMN w int\"";
    for ok in [
        text.replace(step, "sql = [\"SET LOCAL lock_timeout = '1s'\", \"ALTER TABLE t ADD COLUMN w int\"]"),
        text.replace(step, "sql = [\"LOCK TABLE t IN ACCESS EXCLUSIVE MODE NOWAIT\", \"ALTER TABLE t ADD COLUMN w int\"]"),
        format!("{text}\n[postgres]\nsettings = {{ lock_timeout = \"2s\" }}\n"),
    ] {
        load(ok.clone()).unwrap_or_else(|e| panic!("{e}\n{ok}"));
    }
    // A lock_timeout of 0 is none.
    let off = format!("{text}\n[postgres]\nsettings = {{ lock_timeout = 0 }}\n");
    let Err(Error::Scenario(e)) = load(off) else {
        panic!("lock_timeout = 0 times nothing out")
    };
    assert_eq!(e[0].field, "phase[0].step[0].retries");
}

/// A replica-lag budget without a replica is refused by `check` as by
/// `run` — exit 2 at the budget's file:line:col, before any server — so a
/// CI job's `check` names it (QA: `check` passed it, `run` exited 2). The
/// url backend's server may have replicas of its own: allowed there, as
/// `run --backend url` allows it.
#[test]
fn check_refuses_a_replica_lag_budget_without_a_replica() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(fixture("good", "tiny.toml")).unwrap();
    let budget = "max_error_rate = 0.05";
    let path = dir.path().join("lag.toml");
    std::fs::write(
        &path,
        text.replace(budget, &format!("{budget}\nmax_replica_lag_ms = 100")),
    )
    .unwrap();
    let line = text.lines().position(|l| l == budget).unwrap() + 2;
    let check_with = |backend: &str, path: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_pgrehearse"))
            .args(["check", "-q", "--backend", backend])
            .arg(path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = check_with("auto", &path);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{}:{line}:1: budget.max_replica_lag_ms: needs a replica to measure",
            path.display()
        )),
        "{stderr}"
    );
    let (code, stderr) = check_with("url", &path);
    assert_eq!(code, Some(0), "{stderr}");
    // With a replica it is measured.
    let with_replica = dir.path().join("with-replica.toml");
    std::fs::write(
        &with_replica,
        std::fs::read_to_string(&path).unwrap().replacen(
            "[postgres]\n",
            "[postgres]\nreplica = true\n",
            1,
        ),
    )
    .unwrap();
    let (code, stderr) = check_with("local", &with_replica);
    assert_eq!(code, Some(0), "{stderr}");
}
