//! `[migrations]` end to end through the binary: every layout's fixture
//! (tests/fixtures/migrations/<layout>/) builds its schema at setup, seeds
//! tables the scenario names without `create`, and rehearses its last files
//! as steps under a short workload, on one server (the url backend gives each
//! run a scratch database). Then the bad inputs, each with its exit code and
//! message.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::backend::Backend;

fn fixture_dir(layout: &str) -> PathBuf {
    common::fixture("migrations").join(layout)
}

/// A scenario rehearsing `rehearse` of `dir` with small tables (accounts and
/// orders come from the migrations; only rows and the generators of the
/// columns without a default are given) and a short read/write workload.
/// orders has 20k rows so that CREATE INDEX CONCURRENTLY on it lasts longer
/// than a scheduling delay of a loaded machine: outside a transaction its
/// locks are only seen by the 1 ms poller, which missed a 300-row build.
fn scenario(dir: &Path, rehearse: &str, extra: &str) -> String {
    format!(
        r#"name = "layout"
[migrations]
dir = "{dir}"
rehearse = {rehearse}
{extra}
[[table]]
name = "accounts"
rows = 50
[table.columns]
email = {{ gen = "text", min_len = 12, max_len = 20 }}

[[table]]
name = "orders"
rows = 20000
[table.columns]
total_cents = {{ gen = "int", min = 1, max = 1000 }}

[workload]
clients = 1
rate = 50
before = "200ms"
after = "200ms"

[[workload.query]]
name = "read"
sql = "SELECT * FROM orders WHERE id = $1"
params = [{{ gen = "fk", table = "orders" }}]

[[workload.query]]
name = "write"
sql = "INSERT INTO orders (account_id, total_cents) VALUES ($1, 5)"
params = [{{ gen = "fk", table = "accounts" }}]
"#,
        dir = dir.display()
    )
}

/// What each layout's fixture rehearses with `last = 2`: the files, and the
/// one whose CONCURRENTLY statement runs outside a transaction.
const LAYOUTS: &[(&str, &[&str], &str)] = &[
    (
        "flyway",
        &[
            "V1.10__order_status_index.sql",
            "release2/V2__orders_account_index.sql",
            // Repeatables follow the versioned migrations.
            "R__order_totals_view.sql",
        ],
        "release2/V2__orders_account_index.sql",
    ),
    (
        "golang-migrate",
        &[
            "10_order_status_index.up.sql",
            "11_orders_account_index.up.sql",
        ],
        "11_orders_account_index.up.sql",
    ),
    (
        "dbmate",
        &[
            "20240201_order_status_index.sql",
            "20240301000000_orders_account_index.sql",
        ],
        "20240301000000_orders_account_index.sql",
    ),
    (
        "goose",
        &[
            "00010_order_status_index.sql",
            "00011_orders_account_index.sql",
        ],
        "00011_orders_account_index.sql",
    ),
    (
        "plain",
        &["10_order_status_index.sql", "11_orders_account_index.sql"],
        "11_orders_account_index.sql",
    ),
    (
        "prisma",
        &[
            "20240201000000_add_order_status_index/migration.sql",
            "20240301000000_orders_account_index/migration.sql",
        ],
        "20240301000000_orders_account_index/migration.sql",
    ),
    (
        "sqitch",
        &[
            "deploy/touch_updated_at.sql",
            "deploy/orders_account_index.sql",
        ],
        "deploy/orders_account_index.sql",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn every_layout_rehearses_its_files_end_to_end() {
    let server = Backend::start(&common::test_options(&[])).await.unwrap();
    let url = common::url_of(server.conn());
    let tmp = common::isolated_tmpdir();
    for (layout, rehearsed, concurrently) in LAYOUTS {
        let path = tmp.path().join(format!("{layout}.toml"));
        std::fs::write(&path, scenario(&fixture_dir(layout), "{ last = 2 }", "")).unwrap();
        let url = url.clone();
        let ran = tokio::task::spawn_blocking(move || {
            common::run(
                &path,
                &["--backend", "url", "--database-url", &url, "-q"],
                &[],
            )
        })
        .await
        .unwrap();
        ran.assert_code(0);
        let (dir, rec) = ran.record();
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();

        // Setup: every earlier file applied, none timed as a step.
        let m = &json["migrations"];
        assert_eq!(m["layout"], *layout);
        let setup = m["setup"].as_array().unwrap();
        assert!(!setup.is_empty(), "{layout}");
        assert!(
            setup
                .iter()
                .all(|f| f["outcome"] == "ok" && f["ms"].is_number()),
            "{layout}: {setup:?}"
        );
        assert_eq!(m["rehearsed"], serde_json::json!(rehearsed), "{layout}");

        // One step per rehearsed file, named by it, in the tool's order;
        // the CONCURRENTLY one outside a transaction.
        let info = rec.info.as_ref().expect("run.json");
        let steps: Vec<&str> = info.steps.iter().map(|s| s.step.as_str()).collect();
        assert_eq!(&steps, rehearsed, "{layout}");
        for s in json["steps"].as_array().unwrap() {
            assert_eq!(s["outcome"], "ok", "{layout}: {s}");
            let segments = s["segments"].as_array().unwrap();
            // No lock timeout, no retry: one attempt, however many
            // segments the file runs as (QA: two segments read as two).
            assert_eq!(s["attempts"], 1, "{layout}: {s}");
            let autocommit = segments.iter().any(|g| g["transaction"] == false);
            assert_eq!(
                autocommit,
                s["step"] == *concurrently,
                "{layout}: {} runs its CONCURRENTLY statement outside a transaction",
                s["step"]
            );
        }

        // statements.csv: every statement at its file:line. The CONCURRENTLY
        // statement succeeding is Postgres agreeing on the boundaries: sent
        // with another statement in one query, or in a transaction block, it
        // would have been refused.
        let statements = common::csv_rows(&dir.join("statements.csv"));
        assert!(!statements.is_empty(), "{layout}");
        for st in &statements {
            assert_eq!(st["outcome"], "ok", "{layout}: {st:?}");
            // The step's file, or one it includes (Sqitch's `\i`).
            let file = Path::new(&st["file"]);
            assert!(
                file.ends_with(&st["step"]) || file.starts_with(fixture_dir(layout)),
                "{layout}: {} is the step's file",
                st["file"]
            );
            let line: usize = st["line"].parse().expect("a line number");
            let text = std::fs::read_to_string(file).unwrap();
            let at = text.lines().nth(line - 1).unwrap_or_default().trim();
            let first = st["sql"]
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty() && !l.starts_with("--"))
                .unwrap();
            assert!(
                at.starts_with(first) || first.starts_with(at),
                "{layout}: {}:{line} is `{at}`, the statement starts `{first}`",
                st["file"]
            );
        }
        assert!(
            statements
                .iter()
                .any(|s| s["step"] == *concurrently && s["sql"].contains("CONCURRENTLY")),
            "{layout}"
        );
        let locks = common::csv_rows(&dir.join("locks.csv"));
        assert!(
            locks.iter().any(|l| l["step"] == *concurrently
                && l["relation"] == "orders"
                && l["mode"] == "ShareUpdateExclusiveLock"),
            "{layout}: CREATE INDEX CONCURRENTLY holds ShareUpdateExclusiveLock on orders: {locks:?}"
        );
        // The non-concurrent CREATE INDEX blocks writes: without a
        // lock_timeout that is a finding, but dbmate's file sets its own
        // (`SET lock_timeout = '1500ms'`), which counts as the step's.
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap())
                .unwrap();
        let blocking = rehearsed[0];
        let step = summary["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["step"] == blocking)
            .unwrap();
        let unbounded = summary["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "no_lock_timeout" && f["step"] == blocking);
        if *layout == "dbmate" {
            assert_eq!(step["lock_timeout_ms"], 1500.0, "{layout}: {step}");
            assert!(!unbounded, "{layout}: {}", summary["findings"]);
        } else if step["longest_blocking_lock"].is_object() {
            assert!(step["lock_timeout_ms"].is_null(), "{layout}: {step}");
            assert!(unbounded, "{layout}: {}", summary["findings"]);
        }
        // The seeded tables were filled, the rest by their defaults.
        assert!(
            info.rows.contains(&("orders".to_string(), 20_000)),
            "{layout}: {:?}",
            info.rows
        );
    }
    server.teardown().await.unwrap();
}

/// Two scenarios with the same data in one batch would share a template;
/// with `[migrations]` each is seeded in place after its own setup (a
/// template is not built through the setup migrations), and both pass.
#[tokio::test(flavor = "multi_thread")]
async fn a_batch_seeds_migrations_scenarios_in_place_after_their_setup() {
    let server = Backend::start(&common::test_options(&[])).await.unwrap();
    let url = common::url_of(server.conn());
    let tmp = common::isolated_tmpdir();
    let text = scenario(&fixture_dir("flyway"), "{ last = 1 }", "");
    let mut paths = Vec::new();
    for twin in ["twin-a", "twin-b"] {
        let path = tmp.path().join(format!("{twin}.toml"));
        let named = text.replacen("name = \"layout\"", &format!("name = \"{twin}\""), 1);
        std::fs::write(&path, named).unwrap();
        paths.push(path);
    }
    let out = tmp.path().join("out");
    let (code, stderr) = tokio::task::spawn_blocking({
        let (paths, out, cwd) = (paths.clone(), out.clone(), tmp.path().to_path_buf());
        move || {
            let mut args = vec!["run".to_string()];
            args.extend(paths.iter().map(|p| p.display().to_string()));
            args.extend(
                ["--backend", "url", "--database-url", &url, "-q", "--out"]
                    .iter()
                    .map(|a| a.to_string()),
            );
            args.push(out.display().to_string());
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            pgrehearse(&cwd, &args)
        }
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    // Run directories, wherever under --out they are.
    let mut runs: Vec<PathBuf> = Vec::new();
    let mut dirs = vec![out.clone()];
    while let Some(d) = dirs.pop() {
        if d.join("run.json").is_file() {
            runs.push(d);
            continue;
        }
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            }
        }
    }
    assert_eq!(runs.len(), 2, "{runs:?}");
    for dir in runs {
        let json: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
        assert_eq!(json["database"]["how"], "seeded", "{}", dir.display());
        let setup = json["migrations"]["setup"].as_array().unwrap();
        assert!(
            !setup.is_empty() && setup.iter().all(|f| f["outcome"] == "ok"),
            "{setup:?}"
        );
    }
    server.teardown().await.unwrap();
}

/// `pgrehearse ARGS` in `cwd`, waited for: (exit code, stderr).
fn pgrehearse(cwd: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(common::bin())
        .args(args)
        .current_dir(cwd)
        .env_remove("PGREHEARSE_BACKEND")
        .env_remove("PGREHEARSE_DATABASE_URL")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_scenario(dir: &Path, migrations: &Path, rehearse: &str) -> PathBuf {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, scenario(migrations, rehearse, "")).unwrap();
    path
}

#[test]
fn bad_migration_directories_are_located_errors_at_check_time() {
    let tmp = common::isolated_tmpdir();
    let t = tmp.path();
    let check = |migrations: &Path, rehearse: &str, extra: &[&str]| {
        let s = write_scenario(t, migrations, rehearse);
        let mut args = vec!["check", s.to_str().unwrap()];
        args.extend_from_slice(extra);
        pgrehearse(t, &args)
    };

    let missing = t.join("db/nowhere");
    let (code, err) = check(&missing, "{ last = 1 }", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&missing.display().to_string()), "{err}");

    let (code, err) = check(&fixture_dir("bad/flyway-duplicate"), "{ last = 1 }", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("V2__first.sql") && err.contains("V2.0__second.sql"),
        "{err}"
    );

    let not_utf8 = t.join("not-utf8");
    std::fs::create_dir_all(&not_utf8).unwrap();
    std::fs::write(not_utf8.join("1_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    std::fs::write(
        not_utf8.join("2_b.sql"),
        b"COMMENT ON TABLE a IS '\xff\xfe';\n",
    )
    .unwrap();
    let (code, err) = check(&not_utf8, "{ last = 1 }", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("2_b.sql") && err.contains("UTF-8"), "{err}");

    // Another tool's directory: nothing matches the layout's names, and
    // the error says which files were skipped and why.
    let s = t.join("other-layout.toml");
    std::fs::write(
        &s,
        scenario(
            &fixture_dir("flyway"),
            "{ last = 1 }",
            "layout = \"golang-migrate\"",
        ),
    )
    .unwrap();
    let (code, err) = pgrehearse(t, &["check", s.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("migrations.layout: no golang-migrate migrations in")
            && err.contains("do not follow golang-migrate's naming")
            && err.contains("leave it out to detect it"),
        "{err}"
    );

    let (code, err) = check(&fixture_dir("bad/unterminated"), "{ last = 1 }", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        regex::Regex::new(r"1_function\.sql:\d+:\d+")
            .unwrap()
            .is_match(&err),
        "file:line:column: {err}"
    );

    // --since-git outside a git repository, and with a revision git does
    // not know.
    let outside = t.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("1_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    let (code, err) = check(&outside, "{ last = 1 }", &["--since-git", "main"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("git"), "{err}");
    let repo = t.join("repo");
    std::fs::create_dir_all(repo.join("db")).unwrap();
    std::fs::write(repo.join("db/1_a.sql"), "CREATE TABLE a (id int);\n").unwrap();
    let git = |args: &[&str]| common::git(&repo, args);
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "one"]);
    let s = repo.join("s.toml");
    std::fs::write(
        &s,
        "name = \"git\"\n[migrations]\ndir = \"db\"\n[[phase]]\nname = \"p\"\n[[phase.step]]\nname = \"x\"\nsql = \"SELECT 1\"\n",
    )
    .unwrap();
    let (code, err) = pgrehearse(&repo, &["check", "s.toml", "--since-git", "no-such-rev"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no-such-rev"), "{err}");

    // A merged migration edited since the revision, beside a new one: the
    // new one is rehearsed, the edit is warned about, not passed over.
    git(&["update-ref", "refs/remotes/origin/main", "HEAD"]);
    std::fs::write(repo.join("db/1_a.sql"), "CREATE TABLE a (id bigint);\n").unwrap();
    std::fs::write(repo.join("db/2_b.sql"), "CREATE TABLE b (id int);\n").unwrap();
    std::fs::write(
        repo.join("ok.toml"),
        "name = \"git\"\n[migrations]\ndir = \"db\"\n[[table]]\nname = \"a\"\nrows = 10\n\
         [workload]\nclients = 1\nrate = 10\n[[workload.query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["check", "ok.toml", "--since-git", "origin/main"])
        .current_dir(&repo)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("rehearsed: 1 file(s)") && stdout.contains("    2_b.sql"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "warning: 1_a.sql was already merged at origin/main and has been edited since"
        ),
        "{stdout}"
    );
}

/// A project in a temp dir: `files` in `db/` (plain layout) and s.toml, a
/// scenario seeding `accounts` with `columns` (TOML lines) under a trivial
/// workload. Returns the dir and the scenario's path.
fn plain_project(files: &[(&str, &str)], columns: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = common::isolated_tmpdir();
    let dir = tmp.path().join("db");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, sql) in files {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    let s = tmp.path().join("s.toml");
    std::fs::write(
        &s,
        format!(
            "name = \"project\"\n[migrations]\ndir = \"db\"\n\n[[table]]\nname = \"accounts\"\n\
             rows = 10\n{columns}\n[workload]\nclients = 1\nrate = 10\nbefore = \"100ms\"\n\
             after = \"100ms\"\n[[workload.query]]\nname = \"q\"\nsql = \"SELECT 1\"\n"
        ),
    )
    .unwrap();
    (tmp, s)
}

/// The first file of a plain project: the accounts table `plain_project`
/// seeds.
const BASE_ACCOUNTS: (&str, &str) = (
    "1_base.sql",
    "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
     email text NOT NULL);\n",
);

/// psql runs each plain (or Sqitch) file in a session of its own: what one
/// file SETs does not reach the next, at setup or rehearsed. QA: pg_dump's
/// `set_config('search_path', '', false)` in a structure file made the next
/// file's `ALTER TABLE accounts` fail (42P01), and a rehearsed file's
/// search_path put the next file's table in the wrong schema.
#[test]
fn each_plain_file_starts_a_session_of_its_own() {
    let (tmp, s) = plain_project(
        &[
            (
                "1_structure.sql",
                "SELECT pg_catalog.set_config('search_path', '', false);\n\
                 CREATE TABLE public.accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 email text NOT NULL);\nCREATE SCHEMA s2;\n",
            ),
            ("2_note.sql", "ALTER TABLE accounts ADD COLUMN note text;\n"),
            (
                "3_path.sql",
                "SET search_path = s2, public;\nCREATE TABLE t2 (id int);\n",
            ),
            ("4_t3.sql", "CREATE TABLE t3 (id int);\n"),
            ("5_check.sql", "SELECT 'public.t3'::regclass;\n"),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    let text = std::fs::read_to_string(&s).unwrap();
    std::fs::write(
        &s,
        text.replace("dir = \"db\"\n", "dir = \"db\"\nrehearse = { last = 3 }\n"),
    )
    .unwrap();
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    drop(tmp);
}

/// A rehearsed file's statement that fails where the server points: the
/// error names the file, line and column of that character.
#[test]
fn a_rehearsed_statement_that_fails_names_its_file_line_and_column() {
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_typo.sql",
                "-- a type nobody made\nALTER TABLE accounts\n    ADD COLUMN x int,\n    ADD COLUMN y nosuchtype;\n",
            ),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    assert!(
        ran.stderr
            .contains("2_typo.sql:4:18: type \"nosuchtype\" does not exist"),
        "the file, line and column of `nosuchtype`: {}",
        ran.stderr
    );
}

/// An inline `sql` step's statement that fails is placed in the scenario
/// file the same way: its line and column there, through a multi-line
/// string's opening newline, a second statement in the same string, and
/// the escapes of a basic string (`\n`, `\"`) before the failing token.
#[test]
fn an_inline_statement_that_fails_names_the_scenarios_line_and_column() {
    let (tmp, s) = plain_project(
        &[BASE_ACCOUNTS],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    // The file is set up; the step is the only one.
    let scenario = std::fs::read_to_string(&s)
        .unwrap()
        .replace("dir = \"db\"\n", "dir = \"db\"\nrehearse = { last = 0 }\n");
    let steps = [
        // Line 2 of the string is the scenario's line after `sql = """`.
        "sql = \"\"\"\nSELECT 1;\nALTER TABLE accounts\n    ADD COLUMN y nosuchtype\"\"\"",
        // Escapes: `\n` is one byte of SQL from two of TOML, `\"` too.
        "sql = \"SELECT '\\\"';\\nSELECT nosuchcol FROM accounts\"",
        // A literal multi-line string in a file with CRLF line endings
        // (the parser gives its value LF).
        "sql = '''\nSELECT 1;\nALTER TABLE accounts\n    ADD COLUMN y nosuchtype'''",
        // Cut off at its end, in a transaction: the server reads on into the
        // `;` and savepoint sent behind it, which are not the user's.
        "sql = \"ALTER TABLE accounts ADD COLUMN\"",
    ];
    for (k, step) in steps.iter().enumerate() {
        let mut text =
            format!("{scenario}\n[[phase]]\nname = \"p\"\n[[phase.step]]\nname = \"s\"\n{step}\n");
        if k == 2 {
            text = text.replace('\n', "\r\n");
        }
        std::fs::write(&s, &text).unwrap();
        // Where the failing token is in the scenario's text.
        let offset = match k {
            1 => text.find("nosuchcol").unwrap(),
            3 => text.find("COLUMN\"").unwrap() + "COLUMN".len(),
            _ => text.find("nosuchtype").unwrap(),
        };
        let line = text[..offset].matches('\n').count() + 1;
        let column = offset - text[..offset].rfind('\n').unwrap();
        let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
        ran.assert_code(4);
        let want = format!("s.toml:{line}:{column}: ");
        assert!(
            ran.stderr.contains(&want),
            "{want} in:\n{text}\n{}",
            ran.stderr
        );
        if k == 3 {
            assert!(
                ran.stderr.contains("syntax error at end of input")
                    && !ran.stderr.contains("near \";\""),
                "{}",
                ran.stderr
            );
        }
    }
    drop(tmp);
}

/// Statements that end in a `--` comment, with their `;` on the next line
/// or none at all (the file's last): valid SQL for PostgreSQL, psql and
/// every migration tool. The probe's savepoint, sent right behind each
/// statement inside a transaction, once went into that comment (exit 4,
/// "savepoint does not exist").
#[test]
fn statements_ending_in_a_line_comment_rehearse() {
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_commented.sql",
                "BEGIN;\nALTER TABLE accounts ADD COLUMN a int -- JIRA-1\n;\n\
                 UPDATE accounts SET a = 1 -- every row\n;\nCOMMIT;\n\
                 CREATE INDEX accounts_a ON accounts (a) -- for the reports",
            ),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let sql: Vec<(&str, &str)> = rec
        .statements
        .iter()
        .map(|s| (s.sql.as_str(), s.outcome.as_str()))
        .collect();
    assert_eq!(
        sql,
        [
            ("ALTER TABLE accounts ADD COLUMN a int -- JIRA-1", "ok"),
            ("UPDATE accounts SET a = 1 -- every row", "ok"),
            (
                "CREATE INDEX accounts_a ON accounts (a) -- for the reports",
                "ok"
            ),
        ],
        "{}",
        dir.display()
    );
    // Each statement's probe ran: the index build's SHARE lock is listed.
    assert!(
        rec.locks
            .iter()
            .any(|l| l.relation == "accounts" && l.mode == "ShareLock" && l.source == "probe"),
        "{:#?}",
        rec.locks
    );
}

#[test]
fn a_setup_migration_that_fails_exits_4_naming_the_file_with_a_partial_report() {
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_broken.sql",
                "-- refers to a table nothing creates\n\nALTER TABLE nowhere\n    ADD COLUMN x int;\n",
            ),
            ("3_next.sql", "ALTER TABLE accounts ADD COLUMN y int;\n"),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    assert!(
        ran.stderr.contains("2_broken.sql:3"),
        "the file and the statement's line: {}",
        ran.stderr
    );
    let (dir, _) = ran.record();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let setup = json["migrations"]["setup"].as_array().unwrap();
    assert_eq!(setup[0]["outcome"], "ok");
    assert_eq!(setup[1]["file"], "2_broken.sql");
    assert_eq!(setup[1]["outcome"], "error");
    assert!(json["failure"].as_str().unwrap().contains("2_broken.sql"));
}

#[test]
fn unfilled_columns_and_mistyped_generators_are_located_errors_after_setup() {
    let (_tmp, s) = plain_project(
        &[
            (
                "1_base.sql",
                "CREATE TABLE accounts (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, \
                 email text NOT NULL, note text, plan text NOT NULL DEFAULT 'free', n int);\n",
            ),
            ("2_next.sql", "ALTER TABLE accounts ADD COLUMN y int;\n"),
        ],
        "[table.columns]\nn = { gen = \"uuid\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(2);
    // At the [[table]] (line 5), naming the column; nothing about `note`
    // (nullable) or `plan` (a default).
    assert!(
        ran.stderr.contains("s.toml:5:") && ran.stderr.contains("email"),
        "{}",
        ran.stderr
    );
    assert!(
        !ran.stderr.contains("note") && !ran.stderr.contains("plan ("),
        "{}",
        ran.stderr
    );
    // A generator that cannot write its column's type, at its line, in the
    // same report (before seeding: nothing was copied).
    assert!(
        regex::Regex::new(r"s\.toml:[1-9]\d*:\d+: table\[0\]\.columns\.n: accounts\.n \(integer\)")
            .unwrap()
            .is_match(&ran.stderr),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("while seeding"), "{}", ran.stderr);
}

/// Phases place rehearsed files (`migrations = [...]`, `migration = ...`,
/// `"*"`), mixed with inline SQL and a `file = ...` step; placing them out
/// of the tool's order is a located error. `check` only: no server.
#[test]
fn phases_place_files_in_the_tools_order() {
    let tmp = common::isolated_tmpdir();
    let t = tmp.path();
    std::fs::write(
        t.join("extra.sql"),
        "-- by hand\nANALYZE orders;\nANALYZE accounts;\n",
    )
    .unwrap();
    let write = |first: &str, second: &str| {
        let text = format!(
            r#"name = "phases"
[migrations]
dir = "{dir}"
rehearse = {{ from = "9" }}

[[table]]
name = "accounts"
rows = 10
[table.columns]
email = {{ gen = "text" }}

[workload]
clients = 1
rate = 20
[[workload.query]]
name = "v1"
apps = ["v1"]
sql = "SELECT 1"
[[workload.query]]
name = "v2"
apps = ["v2"]
sql = "SELECT 2"

[[phase]]
name = "expand"
apps = ["v1"]
migrations = ["{first}"]

[[phase]]
name = "index"
[[phase.step]]
migration = "{second}"
lock_timeout = "2s"
[[phase.step]]
name = "by hand"
file = "extra.sql"
transaction = false

[[phase]]
name = "contract"
apps = ["v2"]
migrations = "*"
"#,
            dir = fixture_dir("golang-migrate").display()
        );
        let path = t.join("phases.toml");
        std::fs::write(&path, text).unwrap();
        path
    };
    let good = write("9_order_status.up.sql", "10_order_status_index.up.sql");
    let out = Command::new(common::bin())
        .arg("check")
        .arg(&good)
        .output()
        .unwrap();
    let plan = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let at = |what: &str| {
        plan.find(what)
            .unwrap_or_else(|| panic!("{what} in:\n{plan}"))
    };
    assert!(at("1. expand") < at("step 9_order_status.up.sql"));
    assert!(
        at("2. index")
            < at(
                "step 10_order_status_index.up.sql (1 statement in a transaction, lock_timeout 2s)"
            )
    );
    assert!(
        at("step 10_order_status_index.up.sql") < at("step by hand (2 statements in autocommit)")
    );
    assert!(
        at("3. contract") < at("step 11_orders_account_index.up.sql (1 statement in autocommit)")
    );

    let swapped = write("10_order_status_index.up.sql", "9_order_status.up.sql");
    let (code, err) = pgrehearse(t, &["check", swapped.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("phases.toml:")
            && err.contains("phase[1].step[0].migration: 9_order_status.up.sql runs after 10_order_status_index.up.sql"),
        "{err}"
    );

    // A step naming a file that is not rehearsed: said at its `migration`,
    // and only there (its name is the file's, not "missing").
    let unknown = write("9_order_status.up.sql", "1_init.up.sql");
    let (code, err) = pgrehearse(t, &["check", unknown.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("phase[1].step[0].migration: no rehearsed migration is named `1_init.up.sql`"),
        "{err}"
    );
    assert!(!err.contains("phase[1].step[0].name"), "{err}");

    // A phase with both migrations = "*" and steps: that error alone, not a
    // follow-on "no phase runs it" telling the user to add what is there.
    let both = t.join("both.toml");
    let text = std::fs::read_to_string(&good).unwrap().replace(
        "migrations = \"*\"",
        "migrations = \"*\"\n[[phase.step]]\nname = \"extra\"\nsql = \"SELECT 1\"",
    );
    std::fs::write(&both, text).unwrap();
    let (code, err) = pgrehearse(t, &["check", both.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("phase[2].migrations: a phase runs either"),
        "{err}"
    );
    assert!(!err.contains("no phase runs it"), "{err}");
}

/// An autocommit `ALTER TABLE ... ADD COLUMN` (the CONCURRENTLY build makes
/// the file run outside a transaction) takes its AccessExclusiveLock for well
/// under a millisecond, shorter than any poll. It runs as its own transaction
/// (which means the same for one such statement), so the probe lists the
/// locks before the commit releases them.
#[test]
fn sub_millisecond_autocommit_locks_are_listed_by_the_probe() {
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_note.sql",
                "ALTER TABLE accounts ADD COLUMN note text;\n\
                 ALTER TABLE accounts ALTER COLUMN email SET STATISTICS 500;\n\
                 CREATE INDEX CONCURRENTLY accounts_email ON accounts (email);\n",
            ),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, _) = ran.record();
    let locks = common::csv_rows(&dir.join("locks.csv"));
    for mode in ["AccessExclusiveLock", "ShareUpdateExclusiveLock"] {
        assert!(
            locks.iter().any(|l| l["relation"] == "accounts"
                && l["mode"] == mode
                && l["source"] == "probe"),
            "{mode} on accounts: {locks:?}"
        );
    }
    // In their own transaction the ALTERs' table scans are known; the
    // CONCURRENTLY build's are not.
    let statements = common::csv_rows(&dir.join("statements.csv"));
    assert_eq!(statements.len(), 3, "{statements:?}");
    for st in &statements[..2] {
        assert_eq!(st["seq_scans"], "0", "{st:?}");
    }
    assert_eq!(statements[2]["seq_scans"], "", "{:?}", statements[2]);
}

/// A file whose ALTER gives up after its own lock_timeout behind a long
/// read: exit 4 naming the file and line, like any other failure; the lock
/// it waited for and never got has no hold (held_ms empty, not 0).
#[test]
fn a_lock_timeout_names_the_file_and_line_and_holds_nothing() {
    let (tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_lockto.sql",
                "SET lock_timeout = '100ms';\nALTER TABLE accounts ADD COLUMN frozen bool;\n",
            ),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    with_long_read(&s, "");
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    assert!(
        ran.stderr
            .contains("2_lockto.sql:2: lock timeout after 1 attempt(s)"),
        "{}",
        ran.stderr
    );
    let (dir, _) = ran.record();
    let locks = common::csv_rows(&dir.join("locks.csv"));
    let never = locks
        .iter()
        .find(|l| l["mode"] == "AccessExclusiveLock" && l["relation"] == "accounts")
        .unwrap_or_else(|| panic!("the lock waited for: {locks:?}"));
    assert_eq!(never["source"], "wait", "{never:?}");
    assert_eq!(never["granted_ms"], "", "{never:?}");
    assert_eq!(never["held_ms"], "", "{never:?}");
    let wait: f64 = never["wait_ms"].parse().unwrap();
    assert!((90.0..400.0).contains(&wait), "{never:?}");
    drop(tmp);
}

/// Add to the scenario at `s` a long read: ACCESS SHARE on accounts from
/// the start of traffic for 2.5 s, across the steps; and `migrations`
/// (TOML lines) to its `[migrations]`. The first step starts after a 700 ms
/// "before" phase, so a script connection slow to open on a loaded CI
/// machine (seen: the 50 ms of a 100 ms phase were not enough) still has
/// its lock first.
fn with_long_read(s: &Path, migrations: &str) {
    let scenario = std::fs::read_to_string(s)
        .unwrap()
        .replace("before = \"100ms\"", "before = \"700ms\"")
        .replace("dir = \"db\"\n", &format!("dir = \"db\"\n{migrations}"));
    let scenario = format!(
        "{scenario}\n[[workload.script]]\nname = \"long_read\"\nat = \"0ms\"\nsql = [\"BEGIN\", \
         \"SELECT count(*) FROM accounts\", \"SELECT pg_sleep(2.5)\", \"COMMIT\"]\n",
    );
    assert!(scenario.contains("before = \"700ms\""), "{scenario}");
    std::fs::write(s, scenario).unwrap();
}

/// A `SET lock_timeout` a file makes at session level holds where it
/// holds in production: through the file's own later transaction (psql
/// runs a file in one session), and, where the tool runs every file on one
/// connection (Flyway), into the next file — but not where psql runs each
/// file in a session of its own (plain). The ALTER behind the long read
/// gives up after 100 ms under it, and waits out the read without it.
#[test]
fn a_files_session_set_holds_through_its_file_and_on_the_tools_connection() {
    let timeout = "SET lock_timeout = '100ms';\n";
    let alter = "ALTER TABLE accounts ADD COLUMN frozen bool;\n";
    let columns = "[table.columns]\nemail = { gen = \"text\" }\n";
    let step = |ran: &common::Ran, name: &str| {
        let (_, rec) = ran.record();
        let info = rec.info.expect("run.json");
        info.steps
            .into_iter()
            .find(|s| s.step == name)
            .unwrap_or_else(|| panic!("step {name} in run.json"))
    };

    // Within one file, into its own BEGIN ... COMMIT: the transaction once
    // ran under the step's (no) lock_timeout.
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            ("2_alter.sql", &format!("{timeout}BEGIN;\n{alter}COMMIT;\n")),
        ],
        columns,
    );
    with_long_read(&s, "");
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    assert!(
        ran.stderr
            .contains("2_alter.sql:3: lock timeout after 1 attempt(s)"),
        "{}",
        ran.stderr
    );

    // Flyway: one connection for every file, so into the next file.
    let (_tmp, s) = plain_project(
        &[
            ("V1__base.sql", BASE_ACCOUNTS.1),
            (
                "V2__timeout.sql",
                &format!("{timeout}CREATE TABLE notes (id int);\n"),
            ),
            ("V3__alter.sql", alter),
        ],
        columns,
    );
    with_long_read(&s, "layout = \"flyway\"\nrehearse = { from = \"2\" }\n");
    // `check` says so ahead of the run.
    let carried = "note: leaves lock_timeout 100 ms at session level";
    let plan = |s: &Path| {
        let out = Command::new(common::bin())
            .args(["check", "s.toml"])
            .current_dir(s.parent().unwrap())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let flyway_plan = plan(&s);
    assert!(flyway_plan.contains(carried), "{flyway_plan}");
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    assert!(
        ran.stderr
            .contains("V3__alter.sql:1: lock timeout after 1 attempt(s)"),
        "{}",
        ran.stderr
    );
    let v3 = step(&ran, "V3__alter.sql");
    assert_eq!(v3.lock_timeout_ms, Some(100.0), "{v3:?}");
    assert_eq!(
        v3.lock_timeout_from.as_deref(),
        Some("V2__timeout.sql"),
        "{v3:?}"
    );
    // The report says whose timeout it was.
    let (dir, _) = ran.record();
    let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
    assert!(
        summary.contains("lock_timeout (55P03), under a timeout from V2__timeout.sql"),
        "{summary}"
    );

    // The same where the scenario gives V2's step the very value its file
    // sets: the file's SET still holds on into V3 (the session's value
    // read back equals what the step was given; the SET is the file's).
    // V3's retries are accepted: its lock can time out, under V2's value.
    let phases =
        "\n[[phase]]\nname = \"migrate\"\n[[phase.step]]\nmigration = \"V2__timeout.sql\"\n\
                  lock_timeout = \"100ms\"\n[[phase.step]]\nmigration = \"V3__alter.sql\"\n\
                  retries = 1\n";
    let text = std::fs::read_to_string(&s).unwrap();
    std::fs::write(&s, format!("{text}{phases}")).unwrap();
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    let v3 = step(&ran, "V3__alter.sql");
    assert_eq!(
        v3.lock_timeout_from.as_deref(),
        Some("V2__timeout.sql"),
        "{v3:?}"
    );
    assert_eq!(v3.attempts, 2, "{v3:?}");

    // Plain files: psql per file, so the next file runs without it and
    // waits the read out.
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_timeout.sql",
                &format!("{timeout}CREATE TABLE notes (id int);\n"),
            ),
            ("3_alter.sql", alter),
        ],
        columns,
    );
    with_long_read(&s, "rehearse = { last = 2 }\n");
    let plain_plan = plan(&s);
    assert!(plain_plan.contains("3_alter.sql"), "{plain_plan}");
    assert!(!plain_plan.contains(carried), "{plain_plan}");
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let alter_step = step(&ran, "3_alter.sql");
    assert_eq!(alter_step.lock_timeout_ms, None, "{alter_step:?}");
    assert_eq!(alter_step.lock_timeout_from, None, "{alter_step:?}");
    assert!(
        alter_step.end_ms - alter_step.start_ms > 1_000.0,
        "it waited out the read: {alter_step:?}"
    );

    // With nothing set anywhere, the session's own default: the server's
    // lock_timeout, as the tool's connection would have it (the steps once
    // ran with none).
    let text = std::fs::read_to_string(&s).unwrap();
    std::fs::write(
        &s,
        format!("{text}\n[postgres]\nsettings = {{ lock_timeout = \"100ms\" }}\n"),
    )
    .unwrap();
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(4);
    let alter_step = step(&ran, "3_alter.sql");
    assert_eq!(alter_step.lock_timeout_ms, Some(100.0), "{alter_step:?}");
    assert!(
        alter_step
            .lock_timeout_from
            .as_deref()
            .is_some_and(|f| f.starts_with("the session's default")),
        "{alter_step:?}"
    );
}

/// The tool's history table exists, as the tool made it before its first
/// migration: a real project's migration that alters it (harbor's
/// golang-migrate files do) applies at setup.
#[test]
fn a_migration_that_alters_the_tools_history_table_applies() {
    let tmp = common::isolated_tmpdir();
    let dir = tmp.path().join("db");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, sql) in [
        ("1_base.up.sql", BASE_ACCOUNTS.1),
        (
            "2_history.up.sql",
            "ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS data_version int;\n",
        ),
        (
            "3_note.up.sql",
            "ALTER TABLE accounts ADD COLUMN note text;\n",
        ),
    ] {
        std::fs::write(dir.join(name), sql).unwrap();
    }
    let s = tmp.path().join("s.toml");
    std::fs::write(
        &s,
        "name = \"history\"\n[migrations]\ndir = \"db\"\n\n[[table]]\nname = \"accounts\"\n\
         rows = 10\n[table.columns]\nemail = { gen = \"text\" }\n[workload]\nclients = 1\n\
         rate = 10\nbefore = \"100ms\"\nafter = \"100ms\"\n[[workload.query]]\nname = \"q\"\n\
         sql = \"SELECT 1\"\n",
    )
    .unwrap();
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (_, rec) = ran.record();
    let info = rec.info.as_ref().unwrap();
    assert_eq!(info.steps.len(), 1, "{:?}", info.steps);
    assert_eq!(info.steps[0].step, "3_note.up.sql");
}

/// A text foreign key is not filled unasked; the error names the `fk`
/// generator, and with it the child's keys are the parent's `sequence`
/// keys, as text.
#[test]
fn a_text_foreign_key_without_a_generator_is_named_with_the_fk_generator() {
    let tmp = common::isolated_tmpdir();
    let dir = tmp.path().join("db");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("1_base.sql"),
        "CREATE TABLE parent (id text PRIMARY KEY);\n\
         CREATE TABLE child (id bigint PRIMARY KEY, parent_id text NOT NULL REFERENCES parent (id));\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("2_note.sql"),
        "ALTER TABLE child ADD COLUMN note text;\n",
    )
    .unwrap();
    let scenario = |child_columns: &str| {
        let s = tmp.path().join("s.toml");
        std::fs::write(
            &s,
            format!(
                "name = \"textfk\"\n[migrations]\ndir = \"db\"\n\n\
                 [[table]]\nname = \"parent\"\nrows = 50\n[table.columns]\nid = {{ gen = \"sequence\" }}\n\n\
                 [[table]]\nname = \"child\"\nrows = 200\n[table.columns]\nid = {{ gen = \"sequence\" }}\n{child_columns}\n\
                 [workload]\nclients = 1\nrate = 10\nbefore = \"100ms\"\nafter = \"100ms\"\n\
                 [[workload.query]]\nname = \"q\"\nsql = \"SELECT 1\"\n"
            ),
        )
        .unwrap();
        s
    };
    let ran = common::run(&scenario(""), &["--backend", "local", "-q"], &[]);
    ran.assert_code(2);
    assert!(
        ran.stderr
            .contains(r#""parent_id" = { gen = "fk", table = "parent" }"#)
            || ran
                .stderr
                .contains(r#"parent_id = { gen = "fk", table = "parent" }"#),
        "{}",
        ran.stderr
    );
    let ran = common::run(
        &scenario("parent_id = { gen = \"fk\", table = \"parent\" }"),
        &["--backend", "local", "-q"],
        &[],
    );
    ran.assert_code(0);
}

/// A table the scenario gives `create` for, which the setup migrations
/// already made: a located error at that `create`, exit 2 — not a server
/// error mid-run.
#[test]
fn a_create_for_a_table_the_migrations_make_is_located() {
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            ("2_next.sql", "ALTER TABLE accounts ADD COLUMN y int;\n"),
        ],
        "create = \"CREATE TABLE accounts (id bigint PRIMARY KEY, email text NOT NULL)\"\n\
         [table.columns]\nemail = { gen = \"text\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(2);
    assert!(
        regex::Regex::new(r"s\.toml:\d+:\d+: table\[0\]\.create: table accounts exists already: the setup migrations already create it")
            .unwrap()
            .is_match(&ran.stderr),
        "{}",
        ran.stderr
    );
}

/// `--since-git`, Flyway: a repeatable edited since the revision replaces
/// the version production has, which ends the setup. An edit Flyway would
/// fail to apply there (renaming a view's column) fails the rehearsal; a
/// compatible one replaces the existing view (its lock is not on a new
/// relation).
#[test]
fn an_edited_repeatable_is_rehearsed_over_its_merged_version() {
    let tmp = common::isolated_tmpdir();
    let repo = tmp.path();
    std::fs::create_dir_all(repo.join("db")).unwrap();
    std::fs::write(repo.join("db/V1__accounts.sql"), BASE_ACCOUNTS.1).unwrap();
    let view = repo.join("db/R__account_emails.sql");
    std::fs::write(
        &view,
        "CREATE OR REPLACE VIEW account_emails AS SELECT id, email FROM accounts;\n",
    )
    .unwrap();
    let git = |args: &[&str]| common::git(repo, args);
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-qm", "released"]);
    let s = repo.join("s.toml");
    std::fs::write(
        &s,
        "name = \"repeatable\"\n[migrations]\ndir = \"db\"\n\n[[table]]\nname = \"accounts\"\n\
         rows = 10\n[table.columns]\nemail = { gen = \"text\" }\n[workload]\nclients = 1\n\
         rate = 10\nbefore = \"100ms\"\nafter = \"100ms\"\n[[workload.query]]\nname = \"q\"\n\
         sql = \"SELECT 1\"\n",
    )
    .unwrap();

    // Renaming a column of an existing view: what production would get.
    std::fs::write(
        &view,
        "CREATE OR REPLACE VIEW account_emails AS SELECT id, email AS address FROM accounts;\n",
    )
    .unwrap();
    let out = check_since_head_output(repo);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("R__account_emails.sql@HEAD") && stdout.contains("rehearsed: 1 file(s)"),
        "the merged version ends the setup:\n{stdout}"
    );
    let ran = run_since_head(&s);
    ran.assert_code(4);
    assert!(
        ran.stderr.contains("cannot change name of view column"),
        "{}",
        ran.stderr
    );

    // A compatible edit (a column added at the end) replaces the view.
    std::fs::write(
        &view,
        "CREATE OR REPLACE VIEW account_emails AS SELECT id, email, lower(email) AS folded \
         FROM accounts;\n",
    )
    .unwrap();
    let ran = run_since_head(&s);
    ran.assert_code(0);
    let (dir, _) = ran.record();
    let locks = common::csv_rows(&dir.join("locks.csv"));
    assert!(
        locks
            .iter()
            .any(|l| l["relation"] == "account_emails" && l["mode"] == "AccessExclusiveLock"),
        "the existing view is locked to be replaced, not created: {locks:?}"
    );
}

/// A `DO` block and a `CALL` of a procedure that cannot commit run as a
/// transaction of their own, so the probe lists the ACCESS EXCLUSIVE lock
/// they take for well under a millisecond (a poll can miss it); a `CALL`
/// of a procedure that commits still runs as sent (inside a block it would
/// fail with 2D000).
#[test]
fn do_blocks_and_calls_that_cannot_commit_have_their_locks_probed() {
    let (_tmp, s) = plain_project(
        &[
            BASE_ACCOUNTS,
            (
                "2_procedures.sql",
                "CREATE TABLE notes (id int);\n\
                 CREATE PROCEDURE add_note_column() LANGUAGE plpgsql AS $$\n\
                 BEGIN ALTER TABLE notes ADD COLUMN body text; END $$;\n\
                 CREATE PROCEDURE add_and_commit() LANGUAGE plpgsql AS $$\n\
                 BEGIN ALTER TABLE notes ADD COLUMN extra int; COMMIT; END $$;\n",
            ),
            (
                "3_blocks.sql",
                "DO $$ BEGIN ALTER TABLE accounts ADD COLUMN flag int; END $$;\n\
                 CALL add_note_column();\n\
                 CALL add_and_commit();\n\
                 CREATE INDEX CONCURRENTLY accounts_flag ON accounts (flag);\n",
            ),
        ],
        "[table.columns]\nemail = { gen = \"text\" }\n",
    );
    let ran = common::run(&s, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, _) = ran.record();
    let locks = common::csv_rows(&dir.join("locks.csv"));
    for table in ["accounts", "notes"] {
        assert!(
            locks.iter().any(|l| l["relation"] == table
                && l["mode"] == "AccessExclusiveLock"
                && l["source"] == "probe"),
            "{table}'s ACCESS EXCLUSIVE, probed: {locks:?}"
        );
    }
    let statements = common::csv_rows(&dir.join("statements.csv"));
    assert_eq!(statements.len(), 4, "{statements:?}");
    assert!(
        statements.iter().all(|s| s["outcome"] == "ok"),
        "{statements:?}"
    );
}

/// A Flyway project in a git repository at `repo`: `files` in `db/`,
/// committed (HEAD is the revision), and s.toml seeding `t`.
fn flyway_repo(repo: &Path, files: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(repo.join("db")).unwrap();
    for (name, sql) in files {
        std::fs::write(repo.join("db").join(name), sql).unwrap();
    }
    let s = repo.join("s.toml");
    std::fs::write(
        &s,
        "name = \"merged\"\n[migrations]\ndir = \"db\"\n[[table]]\nname = \"t\"\nrows = 5\n\
         [workload]\nclients = 1\nrate = 10\nbefore = \"100ms\"\nafter = \"100ms\"\n\
         [[workload.query]]\nname = \"q\"\nsql = \"SELECT 1\"\n",
    )
    .unwrap();
    common::git(repo, &["init", "-q"]);
    common::git(repo, &["add", "-A"]);
    common::git(repo, &["commit", "-qm", "released"]);
    s
}

/// `run` of scenario `s` on a local server, rehearsing what changed since HEAD.
fn run_since_head(s: &Path) -> common::Ran {
    common::run(s, &["--backend", "local", "-q", "--since-git", "HEAD"], &[])
}

/// run.json `migrations` of a passing [`run_since_head`].
fn migrations_since_head(s: &Path) -> serde_json::Value {
    let ran = run_since_head(s);
    ran.assert_code(0);
    let (dir, _) = ran.record();
    common::json(&dir.join("run.json"))["migrations"].clone()
}

fn check_since_head_output(repo: &Path) -> std::process::Output {
    Command::new(common::bin())
        .args(["check", "s.toml", "--since-git", "HEAD"])
        .current_dir(repo)
        .output()
        .unwrap()
}

/// `pgrehearse check s.toml --since-git HEAD` in `repo`: exit code, and
/// stdout then stderr.
fn check_since_head(repo: &Path) -> (Option<i32>, String) {
    let out = check_since_head_output(repo);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), format!("{stdout}{stderr}"))
}

/// `--since-git`: a merged migration renamed since and one deleted since
/// are set up as they were at the revision (production has them: the new
/// migration needs the deleted one's column), the renamed file is not
/// rehearsed as new, and both are warned about, each for what it is.
#[test]
fn merged_migrations_renamed_or_deleted_since_are_set_up_as_merged() {
    let tmp = common::isolated_tmpdir();
    let repo = tmp.path();
    let s = flyway_repo(
        repo,
        &[
            (
                "V1__init.sql",
                "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
            ),
            ("V2__a.sql", "ALTER TABLE t ADD COLUMN a int;\n"),
            ("V3__b.sql", "ALTER TABLE t ADD COLUMN b int;\n"),
        ],
    );
    common::git(repo, &["mv", "db/V2__a.sql", "db/V2__add_a.sql"]);
    common::git(repo, &["rm", "-q", "db/V3__b.sql"]);
    std::fs::write(
        repo.join("db/V4__c.sql"),
        "ALTER TABLE t ADD COLUMN c int;\nUPDATE t SET c = a + b;\n",
    )
    .unwrap();
    let (code, out) = check_since_head(repo);
    assert_eq!(code, Some(0), "{out}");
    // The warnings go to stderr too, as `run`'s do (a CI log shows them).
    let stderr = check_since_head_output(repo).stderr;
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        stderr.contains("pgrehearse: warning: ")
            && stderr.contains("V2__a.sql was already merged at HEAD"),
        "{stderr}"
    );
    assert!(
        out.contains("    V2__a.sql@HEAD")
            && out.contains("    V3__b.sql@HEAD")
            && out.contains("rehearsed: 1 file(s)")
            && out.contains("    V4__c.sql"),
        "{out}"
    );
    assert!(
        out.contains("warning: V2__a.sql was already merged at HEAD and has been renamed (its SQL unchanged) since, to V2__add_a.sql")
            && out.contains("Migration description mismatch"),
        "{out}"
    );
    assert!(
        out.contains("warning: V3__b.sql was already merged at HEAD and has been deleted")
            && out.contains("not resolved locally"),
        "{out}"
    );

    let m = &migrations_since_head(&s);
    assert_eq!(m["rehearsed"], serde_json::json!(["V4__c.sql"]), "{m}");
    assert_eq!(
        m["edited"],
        serde_json::json!(["V2__a.sql", "V3__b.sql"]),
        "{m}"
    );
    assert_eq!(
        m["changes"],
        serde_json::json!([
            { "file": "V2__a.sql", "kind": "renamed", "renamed_to": "V2__add_a.sql", "content_changed": false },
            { "file": "V3__b.sql", "kind": "deleted" }
        ]),
        "{m}"
    );
}

/// `--since-git`: a merged migration edited since is set up as it was at
/// the revision, as production has it: the new V3 uses the column only
/// the merged V2 makes (the edit makes another), so it runs only on that
/// schema. The edit is warned about, and run.json says how it was set up.
#[test]
fn a_merged_migration_edited_since_is_set_up_as_merged() {
    let tmp = common::isolated_tmpdir();
    let repo = tmp.path();
    let s = flyway_repo(
        repo,
        &[
            (
                "V1__init.sql",
                "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
            ),
            ("V2__a.sql", "ALTER TABLE t ADD COLUMN a int;\n"),
        ],
    );
    std::fs::write(
        repo.join("db/V2__a.sql"),
        "ALTER TABLE t ADD COLUMN z int;\n",
    )
    .unwrap();
    std::fs::write(repo.join("db/V3__b.sql"), "UPDATE t SET a = 1;\n").unwrap();
    let (code, out) = check_since_head(repo);
    assert_eq!(code, Some(0), "{out}");
    // The warnings go to stderr too, as `run`'s do (a CI log shows them).
    let stderr = check_since_head_output(repo).stderr;
    let stderr = String::from_utf8_lossy(&stderr);
    assert!(
        stderr.contains("pgrehearse: warning: ")
            && stderr.contains("V2__a.sql was already merged at HEAD"),
        "{stderr}"
    );
    assert!(
        out.contains("    V2__a.sql@HEAD") && out.contains("    V3__b.sql"),
        "{out}"
    );
    assert!(
        out.contains("warning: V2__a.sql was already merged at HEAD and has been edited since")
            && out.contains("as it was at HEAD, untimed, as production has it"),
        "{out}"
    );
    let m = &migrations_since_head(&s);
    assert_eq!(m["rehearsed"], serde_json::json!(["V3__b.sql"]), "{m}");
    assert_eq!(
        m["changes"],
        serde_json::json!([{ "file": "V2__a.sql", "kind": "edited", "as_it_was": true }]),
        "{m}"
    );
}

/// `--since-git`: a merged migration and a repeatable whose files only
/// changed line endings (and gained a BOM) hold the same SQL: no edit to
/// warn about, no repeatable to rehearse.
#[test]
fn line_endings_and_a_bom_are_not_an_edit() {
    let tmp = common::isolated_tmpdir();
    let repo = tmp.path();
    flyway_repo(
        repo,
        &[
            (
                "V1__init.sql",
                "CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY);\n",
            ),
            ("V2__a.sql", "ALTER TABLE t\n  ADD COLUMN a int;\n"),
            (
                "R__tv.sql",
                "CREATE OR REPLACE VIEW tv AS SELECT id FROM t;\n",
            ),
        ],
    );
    std::fs::write(
        repo.join("db/V2__a.sql"),
        "\u{feff}ALTER TABLE t\r\n  ADD COLUMN a int;\r\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("db/R__tv.sql"),
        "CREATE OR REPLACE VIEW tv AS SELECT id FROM t;\r\n",
    )
    .unwrap();
    std::fs::write(
        repo.join("db/V3__b.sql"),
        "ALTER TABLE t ADD COLUMN b int;\n",
    )
    .unwrap();
    let (code, out) = check_since_head(repo);
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("warning:"), "{out}");
    assert!(
        out.contains("rehearsed: 1 file(s)") && out.contains("    R__tv.sql —"),
        "the repeatable ends the setup, unchanged:\n{out}"
    );
}
