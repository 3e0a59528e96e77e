use super::*;
use crate::migrations::model::Execution;

/// The pieces goose would send for the up direction, as text, and whether
/// the file runs in a transaction.
fn pieces(text: &str) -> Result<(Vec<String>, bool), String> {
    let src = Source::new(Path::new("1_x.sql"), text.to_string());
    up_pieces(&src)
        .map(|up| {
            let texts = up
                .pieces
                .into_iter()
                .map(|(r, _)| text[r].trim().to_string())
                .collect();
            (texts, up.transaction)
        })
        .map_err(|e| e.to_string())
}

/// A segment: how it runs, and its statements' code and line.
type Shape = (Execution, Vec<(String, usize)>);

/// A file's segments.
fn segments(text: &str) -> Result<Vec<Shape>, String> {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("00002_x.sql");
    std::fs::write(&p, text).unwrap();
    load_file(&p)
        .map(|segs| {
            segs.into_iter()
                .map(|s| {
                    let sts = s
                        .statements
                        .iter()
                        .map(|st| (st.code().to_string(), st.location.line))
                        .collect();
                    (s.execution, sts)
                })
                .collect()
        })
        .map_err(|e| {
            e.to_string()
                .replace(&format!("{}", p.display()), "00002_x.sql")
        })
}

#[test]
fn versions_are_the_integer_before_the_first_underscore() {
    assert_eq!(version_of("00001_create.sql"), Ok(1));
    assert_eq!(version_of("20240101120000_add_x.sql"), Ok(20240101120000));
    assert!(version_of("create.sql").is_err());
    assert!(version_of("1a_create.sql").is_err());
    assert!(version_of("0_create.sql").is_err());
    assert!(is_migration_name("7_x_y.sql"));
    assert!(!is_migration_name("7_x.go"));
}

#[test]
fn pieces_end_at_lines_ending_in_a_semicolon_and_down_is_left_out() {
    let t = "-- a header comment\n\n-- +goose Up\n-- about accounts\nCREATE TABLE accounts (\n    id int -- no ; here\n);\nSELECT 1; SELECT 2;\nSELECT 3; -- trailing; comment\n\n-- +goose Down\nDROP TABLE accounts;\n";
    let (p, tx) = pieces(t).unwrap();
    assert!(tx);
    assert_eq!(
        p,
        [
            "CREATE TABLE accounts (\n    id int -- no ; here\n);",
            "SELECT 1; SELECT 2;",
            "SELECT 3; -- trailing; comment",
        ]
    );
    // `--` ends the words looked at: this line does not end the piece.
    let (p, _) = pieces("-- +goose Up\nSELECT 1 -- not the end;\n+ 1;\n").unwrap();
    assert_eq!(p, ["SELECT 1 -- not the end;\n+ 1;"]);
}

#[test]
fn a_statement_block_is_one_piece_and_annotations_ignore_case() {
    let t = "--+goose up\n-- +goose NO TRANSACTION\n-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n-- +goose StatementEnd\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- +goose down\n-- +goose StatementBegin\nDROP FUNCTION f;\n-- +goose StatementEnd\n";
    let (p, tx) = pieces(t).unwrap();
    assert!(!tx);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(p[0].starts_with("CREATE FUNCTION") && p[0].ends_with("$$;"));
    let segs = segments(t).unwrap();
    assert_eq!(segs.len(), 2, "{segs:?}");
    assert_eq!(segs[0].0, Execution::Transaction);
    assert_eq!(segs[0].1[0].1, 4);
    assert_eq!(
        segs[1],
        (
            Execution::Autocommit,
            vec![("CREATE INDEX CONCURRENTLY i ON t (a)".to_string(), 10)]
        )
    );
}

#[test]
fn a_file_runs_in_one_transaction_statement_by_statement() {
    let segs =
        segments("-- +goose Up\nALTER TABLE t ADD a int;\nSELECT 1; SELECT 2;\n-- +goose Down\n")
            .unwrap();
    let codes: Vec<&str> = segs[0].1.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(segs.len(), 1);
    assert_eq!(segs[0].0, Execution::Transaction);
    assert_eq!(codes, ["ALTER TABLE t ADD a int", "SELECT 1", "SELECT 2"]);
    // In a transaction, CONCURRENTLY is refused with goose's fix.
    let e = segments("-- +goose Up\nCREATE INDEX CONCURRENTLY i ON t (a);\n").unwrap_err();
    assert!(
        e.starts_with(
            "00002_x.sql:2:1: CREATE INDEX CONCURRENTLY cannot run inside a transaction block"
        ),
        "{e}"
    );
    assert!(e.contains("-- +goose NO TRANSACTION"), "{e}");
    // Without one, two statements on one line are still one query: one
    // implicit transaction, where CONCURRENTLY is refused too.
    let e = segments(
        "-- +goose Up\n-- +goose NO TRANSACTION\nSELECT 1; CREATE INDEX CONCURRENTLY i ON t (a);\n",
    )
    .unwrap_err();
    assert!(
        e.starts_with("00002_x.sql:3:11: CREATE INDEX CONCURRENTLY"),
        "{e}"
    );
}

#[test]
fn a_body_cut_at_a_semicolon_line_says_to_use_a_block() {
    let e = segments(
        "-- +goose Up\nCREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n",
    )
    .unwrap_err();
    assert!(e.starts_with("00002_x.sql:2:"), "{e}");
    assert!(e.contains("-- +goose StatementBegin"), "{e}");
}

#[test]
fn goose_parse_errors_are_located() {
    let cases = [
        (
            "-- only a comment\n\n",
            "1_x.sql: no `-- +goose Up` annotation",
        ),
        (
            "-- +goose Up\n-- +goose Up\n",
            "1_x.sql:2:1: a second `-- +goose Up`",
        ),
        (
            "SELECT 1;\n-- +goose Up\n",
            "1_x.sql:1:1: a statement before `-- +goose Up`",
        ),
        (
            "-- +goose Down\n",
            "1_x.sql:1:1: `-- +goose Down` where goose expects",
        ),
        (
            "-- +goose Up\n  -- +goose Down\n",
            "1_x.sql:2:1: goose refuses an annotation indented",
        ),
        (
            "-- +goose Up\n-- +goose Sideways\n",
            "1_x.sql:2:1: goose does not know the annotation `Sideways`",
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n",
            "1_x.sql:2:1: `-- +goose StatementBegin` without its `-- +goose StatementEnd`",
        ),
        (
            "-- +goose Up\n-- +goose StatementBegin\nSELECT 1;\n-- +goose Down\n",
            "1_x.sql:2:1: `-- +goose StatementBegin` without its `-- +goose StatementEnd` \
             before `-- +goose Down`",
        ),
        (
            "-- +goose Up\n-- +goose StatementEnd\n",
            "1_x.sql:2:1: `-- +goose StatementEnd` without",
        ),
        (
            "-- +goose Up\nSELECT 1\n-- +goose Down\n",
            "1_x.sql:2:1: this statement does not end",
        ),
        (
            "-- +goose Up\nSELECT 1\n",
            "1_x.sql:2:1: this statement does not end",
        ),
        (
            "-- +goose Up\n-- +goose ENVSUB ON\nSELECT '${X}';\n",
            "1_x.sql:3:1: goose substitutes environment variables",
        ),
    ];
    for (text, want) in cases {
        let got = pieces(text).unwrap_err();
        assert!(got.starts_with(want), "{text:?}: {got}");
    }
    // ENVSUB on a line with nothing to substitute changes nothing.
    assert!(pieces("-- +goose Up\n-- +goose ENVSUB ON\nSELECT 1;\n").is_ok());
}

#[test]
fn go_migrations_are_listed_as_not_applied_and_bad_names_refused() {
    let dir = tempfile::tempdir().unwrap();
    let w = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
    w("00001_a.sql", "-- +goose Up\nCREATE TABLE a (x int);\n");
    w("00002_b.go", "package migrations\n");
    w("helpers.go", "package migrations\n");
    w(
        "10_c.sql",
        "-- +goose Up\nALTER TABLE a ADD y int;\n-- +goose Down\n",
    );
    let set = load(dir.path()).unwrap();
    let names: Vec<&str> = set.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["00001_a.sql", "10_c.sql"]);
    assert_eq!(set.files[1].version, "10");
    assert_eq!(set.ignored.len(), 1);
    assert!(set.ignored[0].reason.starts_with("a Go migration"));
    w("notes.sql", "SELECT 1;\n");
    w("010_d.sql", "-- +goose Up\nSELECT 1;\n");
    let e = load(dir.path()).unwrap_err().to_string();
    assert!(e.contains("notes.sql: not a goose migration name"), "{e}");
    assert!(e.contains("version 10 is the same as"), "{e}");
}

#[test]
fn a_byte_order_mark_is_refused_as_goose_refuses_it() {
    let e = segments("\u{feff}-- +goose Up\nSELECT 1;\n").unwrap_err();
    assert!(e.starts_with("00002_x.sql:1:1: the file starts with a UTF-8 byte order mark, which goose reads as part of the first line"), "{e}");
}
