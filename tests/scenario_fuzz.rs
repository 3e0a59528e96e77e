//! Mutated scenario files never panic the loader: every input yields Ok or a
//! located `Error::Scenario`. The mutations start from the good fixtures and
//! the scenario library: byte flips, truncation, inserted bytes and text,
//! deleted and duplicated lines.

use std::path::{Path, PathBuf};

use pgrehearse::scenario::{self, Overrides};
use pgrehearse::Error;
use proptest::prelude::*;

fn seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = Vec::new();
    for dir in ["tests/fixtures/good", "scenarios"] {
        let Ok(rd) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "toml") {
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    assert!(!out.is_empty());
    out
}

#[derive(Debug, Clone)]
enum Mutation {
    FlipByte(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    DeleteLine(usize),
    DuplicateLine(usize),
}

/// Fragments that are likely to matter to the parser and the validator.
const SNIPPETS: &[&str] = &[
    "\"",
    "'",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "=",
    ",",
    "\n",
    "#",
    "\"\"\"",
    "$",
    "$1",
    "$2",
    ";",
    "-1",
    "0",
    "1e999",
    "nan",
    "inf",
    "\u{e9}",
    "\u{1F600}",
    "rows = ",
    "gen = \"fk\"",
    "[[phase]]",
    "[[table]]",
    "[workload]",
    "\\",
    "\0",
    "\u{feff}",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), any::<u8>()).prop_map(|(i, b)| Mutation::FlipByte(i, b)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            prop_oneof![
                proptest::sample::select(SNIPPETS).prop_map(|s| s.as_bytes().to_vec()),
                proptest::collection::vec(any::<u8>(), 1..8),
            ]
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        any::<usize>().prop_map(Mutation::DeleteLine),
        any::<usize>().prop_map(Mutation::DuplicateLine),
    ]
}

fn apply(mut b: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let n = b.len().max(1);
    match m {
        Mutation::FlipByte(i, x) => {
            if !b.is_empty() {
                let i = i % b.len();
                b[i] ^= x | 1;
            }
        }
        Mutation::Truncate(i) => b.truncate(i % n),
        Mutation::Insert(i, v) => {
            let i = i % (b.len() + 1);
            b.splice(i..i, v.iter().copied());
        }
        Mutation::DeleteLine(i) | Mutation::DuplicateLine(i) => {
            let mut lines: Vec<Vec<u8>> = b
                .split_inclusive(|c| *c == b'\n')
                .map(<[u8]>::to_vec)
                .collect();
            if !lines.is_empty() {
                let k = i % lines.len();
                if matches!(m, Mutation::DeleteLine(_)) {
                    lines.remove(k);
                } else {
                    let l = lines[k].clone();
                    lines.insert(k, l);
                }
            }
            b = lines.concat();
        }
    }
    b
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_files_never_panic(seed in any::<usize>(), muts in proptest::collection::vec(mutation(), 1..5)) {
        let all = seeds();
        let (path, bytes) = &all[seed % all.len()];
        let mutated = muts.iter().fold(bytes.clone(), apply);
        match scenario::load_str(path, &mutated, &Overrides::default()) {
            Ok(s) => {
                // A plan that loads must also describe without panicking.
                let _ = scenario::load::describe(&s);
            }
            Err(Error::Scenario(errors)) => {
                prop_assert!(!errors.is_empty());
                let lines = mutated.split(|c| *c == b'\n').count();
                for e in &errors {
                    prop_assert!(e.line >= 1 && e.line <= lines, "{e} outside 1..={lines}");
                    prop_assert!(e.column >= 1, "{e}");
                    prop_assert!(!e.message.is_empty(), "{e}");
                }
            }
            Err(other) => prop_assert!(false, "unexpected error kind: {other}"),
        }
    }
}

/// SQL-ish text: the characters the splitter cares about, plus anything.
fn sqlish() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            proptest::sample::select(
                &[
                    "'",
                    "''",
                    "E'",
                    "\\",
                    "\"",
                    "$$",
                    "$a$",
                    "$1",
                    "$2",
                    "--",
                    "\n",
                    "/*",
                    "*/",
                    ";",
                    "(",
                    ")",
                    "BEGIN",
                    " ATOMIC ",
                    "CASE",
                    "END",
                    "CREATE FUNCTION f() ",
                    "é",
                    " ",
                    "x",
                ][..]
            )
            .prop_map(str::to_string),
            any::<char>().prop_map(|c| c.to_string()),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn splitter_never_panics_and_keeps_text(sql in sqlish()) {
        let stmts = pgrehearse::sql::split(&sql);
        let mut rest = sql.as_str();
        for s in &stmts {
            prop_assert!(!s.is_empty());
            // Statements come out in order, each a piece of the input.
            let at = rest.find(s.as_str());
            prop_assert!(at.is_some(), "{s:?} not found in order in {sql:?}");
            rest = &rest[at.unwrap_or(0) + s.len()..];
        }
        if !sql.contains(';') {
            prop_assert!(stmts.len() <= 1);
        }
        let _ = pgrehearse::sql::placeholders(&sql);
    }
}
