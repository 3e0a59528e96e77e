//! `pgrehearse seed SCENARIO --database-url URL` through the binary, into a
//! database of a server of the test's own: row counts round-trip, tables
//! that exist are refused (exit 2) unless --replace, an interrupted seed
//! leaves no table that looks complete, and a --replace is one transaction:
//! types and functions the scenario creates do not collide, and a replace
//! that fails, is refused or is interrupted leaves the old tables whole.

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use pgrehearse::seed::staging::COMPLETE_MARKER;
use pgrehearse::seed::SEED_APP_NAME;

/// `pgrehearse seed ARGS` against `url`, waited for.
fn seed(url: &str, args: &[&str]) -> Output {
    Command::new(common::bin())
        .arg("seed")
        .args(args)
        .arg("--database-url")
        .arg(url)
        .env_remove("PGREHEARSE_DATABASE_URL")
        .stdin(Stdio::null())
        .output()
        .expect("run pgrehearse seed")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A database `staging` on a fresh cluster, with a table of its own; the
/// cluster, a client on `staging` and its URL.
async fn staging() -> (
    pgrehearse::backend::local::LocalCluster,
    tokio_postgres::Client,
    String,
) {
    let (server, sc, url) = common::own_server(&[]).await;
    let admin = common::connect(&sc, "postgres").await;
    admin
        .batch_execute("CREATE DATABASE staging")
        .await
        .unwrap();
    let db = common::connect(&sc, "staging").await;
    db.batch_execute("CREATE TABLE keep_me (id int); INSERT INTO keep_me VALUES (7)")
        .await
        .unwrap();
    let url = format!(
        "{}/staging",
        url.strip_suffix("/postgres").expect("a URL to postgres")
    );
    (server, db, url)
}

async fn count(db: &tokio_postgres::Client, table: &str) -> i64 {
    db.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}

async fn comment(db: &tokio_postgres::Client, table: &str) -> Option<String> {
    db.query_one(
        "SELECT obj_description(to_regclass($1), 'pg_class')",
        &[&table],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_round_trips_rows_refuses_existing_tables_and_replaces_them() {
    let (server, db, url) = staging().await;
    let small = common::fixture("cli/small.toml");
    let small = small.to_str().unwrap();

    let out = seed(&url, &[small, "--rows", "3000", "--seed", "5"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(count(&db, "accounts").await, 3000);
    assert_eq!(count(&db, "branches").await, 750);
    let marked = comment(&db, "accounts").await.unwrap_or_default();
    assert!(
        marked.starts_with(COMPLETE_MARKER) && marked.contains("3000 rows, seed 5"),
        "{marked}"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accounts") && stdout.contains("3000"),
        "{stdout}"
    );
    let first: String = db
        .query_one(
            "SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM accounts a",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    // The tables are there now: refused, naming them, nothing touched.
    let out = seed(&url, &[small]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("accounts") && stderr.contains("branches") && stderr.contains("--replace"),
        "{stderr}"
    );
    assert_eq!(count(&db, "accounts").await, 3000);

    // --replace drops and recreates them (default rows and seed now).
    let out = seed(&url, &[small, "--replace", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(out.stdout.is_empty(), "-q: {}", text(&out));
    assert_eq!(count(&db, "accounts").await, 4000);
    assert_eq!(count(&db, "branches").await, 1000);
    let replaced: String = db
        .query_one(
            "SELECT md5(string_agg(a::text, ',' ORDER BY id)) FROM accounts a",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_ne!(replaced, first);
    // What was not the scenario's stays.
    assert_eq!(count(&db, "keep_me").await, 1);
    drop(db);
    server.teardown().await.unwrap();
}

/// Wait until the seed `child` is running its COPY.
async fn wait_for_copy(db: &tokio_postgres::Client, child: &mut std::process::Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let copying: i64 = db
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                 AND query LIKE 'COPY%' AND state = 'active'",
                &[&SEED_APP_NAME],
            )
            .await
            .unwrap()
            .get(0);
        if copying > 0 {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "seed ended before its COPY was seen"
        );
        assert!(Instant::now() < deadline, "no COPY within 120 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `pgrehearse seed SCENARIO ARGS` sent `signal` once its COPY runs.
async fn seed_signalled_in_copy(
    db: &tokio_postgres::Client,
    url: &str,
    scenario: &str,
    args: &[&str],
    signal: &str,
) -> Output {
    let mut child = Command::new(common::bin())
        .arg("seed")
        .arg(scenario)
        .args(["--database-url", url, "-q"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_copy(db, &mut child).await;
    let status = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_seed_leaves_no_table_that_looks_complete() {
    let (server, db, url) = staging().await;
    let big = common::fixture("reliability/big-seed.toml");
    let out = seed_signalled_in_copy(&db, &url, big.to_str().unwrap(), &[], "INT").await;
    assert_eq!(out.status.code(), Some(130), "{}", text(&out));
    // No table at all (the load's transaction rolled back), so none that
    // carries the marker.
    let left: Option<String> = db
        .query_one("SELECT to_regclass('big')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, None, "{}", text(&out));
    assert_eq!(count(&db, "keep_me").await, 1);
    drop(db);
    server.teardown().await.unwrap();
}

/// A scenario with what `init` writes into a first table's create (an
/// enum, a domain) and more (a sequence, a function a generated column
/// calls), plus a partitioned table (no COPY FREEZE: loaded by one COPY in
/// the seed's transaction). `AFTER_SEED` is docs' after_seed.
const DOCS: &str = r#"
name = "docs"
description = "types, a domain, a function and a partitioned table"

[[table]]
name = "docs"
rows = 5_000
create = """
CREATE TYPE doc_state AS ENUM ('draft', 'live');
CREATE DOMAIN title_text AS text CHECK (length(VALUE) <= 40);
CREATE SEQUENCE doc_ids;
CREATE FUNCTION doc_label(s doc_state, n int DEFAULT 1) RETURNS text
    LANGUAGE sql IMMUTABLE AS $$ SELECT s::text || n $$;
CREATE TABLE docs (
    id bigint PRIMARY KEY DEFAULT nextval('doc_ids'),
    state doc_state NOT NULL,
    title title_text NOT NULL,
    label text GENERATED ALWAYS AS (doc_label(state)) STORED
)
"""
after_seed = AFTER_SEED
[table.columns]
id = { gen = "sequence" }
state = { gen = "choice", values = ["draft", "live"] }
title = { gen = "text", min_len = 5, max_len = 30 }

[[table]]
name = "events"
rows = 5_000
create = """
CREATE TABLE events (id bigint PRIMARY KEY, doc_id bigint NOT NULL REFERENCES docs) PARTITION BY RANGE (id);
CREATE TABLE events_low PARTITION OF events FOR VALUES FROM (MINVALUE) TO (2001);
CREATE TABLE events_high PARTITION OF events FOR VALUES FROM (2001) TO (MAXVALUE)
"""
[table.columns]
id = { gen = "sequence" }
doc_id = { gen = "fk", table = "docs" }

[workload]
clients = 1
rate = 10

[[workload.query]]
name = "read"
sql = "SELECT title FROM docs WHERE id = $1"
params = [{ gen = "fk", table = "docs" }]

[[phase]]
name = "p"

[[phase.step]]
name = "s"
sql = "SELECT 1"
"#;

/// DOCS with `after_seed` for docs, written into `dir`.
fn docs_file(dir: &std::path::Path, name: &str, after_seed: &[&str]) -> String {
    let list: Vec<String> = after_seed.iter().map(|s| format!("{s:?}")).collect();
    let line = match list.is_empty() {
        true => String::new(), // an empty list is refused
        false => format!("after_seed = [{}]", list.join(", ")),
    };
    let toml = DOCS.replace("after_seed = AFTER_SEED", &line);
    let path = dir.join(name);
    std::fs::write(&path, toml).unwrap();
    path.to_str().unwrap().to_string()
}

/// The rows of docs and events, a checksum of docs, docs' comment, and how
/// many types named doc_state there are.
async fn docs_state(db: &tokio_postgres::Client) -> (i64, i64, String, String, i64) {
    let r = db
        .query_one(
            "SELECT (SELECT count(*) FROM docs), (SELECT count(*) FROM events), \
                    (SELECT md5(string_agg(d::text, ',' ORDER BY id)) FROM docs d), \
                    obj_description('docs'::regclass, 'pg_class'), \
                    (SELECT count(*) FROM pg_type WHERE typname = 'doc_state')",
            &[],
        )
        .await
        .unwrap();
    (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_is_one_transaction_and_recreates_types_domains_and_functions() {
    let (server, db, url) = staging().await;
    let tmp = tempfile::tempdir().unwrap();
    let good = docs_file(tmp.path(), "docs.toml", &[]);

    let out = seed(&url, &[&good, "--rows", "5k", "--seed", "3"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (docs, events, _, marked, types) = docs_state(&db).await;
    assert_eq!((docs, events, types), (5000, 5000, 1));
    assert!(marked.contains("5000 rows, seed 3"), "{marked}");
    assert_eq!(count(&db, "events_low").await, 2000, "partitions filled");

    // The QA repro: the enum (and domain, sequence, function) no longer
    // collide; everything is new.
    let out = seed(&url, &[&good, "--rows", "3k", "--replace"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let before = docs_state(&db).await;
    let (docs, events, _, marked, types) = before.clone();
    assert_eq!((docs, events, types), (3000, 3000, 1));
    assert!(marked.contains("3000 rows, seed 1"), "{marked}");

    // A replace that fails in after_seed (duplicate states) changes
    // nothing: the old tables, rows, comment and types are all there.
    let failing = docs_file(
        tmp.path(),
        "failing.toml",
        &["CREATE UNIQUE INDEX ON docs (state)"],
    );
    let out = seed(&url, &[&failing, "--replace"]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("23505"),
        "{}",
        text(&out)
    );
    assert_eq!(docs_state(&db).await, before, "{}", text(&out));

    // A statement that refuses a transaction block: bad input, nothing done.
    let concurrently = docs_file(
        tmp.path(),
        "concurrently.toml",
        &["CREATE INDEX CONCURRENTLY docs_title ON docs (title)"],
    );
    let out = seed(&url, &[&concurrently, "--replace"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("CONCURRENTLY") && stderr.contains("one transaction"),
        "{stderr}"
    );
    assert_eq!(docs_state(&db).await, before);

    // A foreign key from a table outside the scenario: refused by name
    // (exit 2), nothing dropped.
    db.batch_execute("CREATE TABLE refs (doc_id bigint REFERENCES docs)")
        .await
        .unwrap();
    let out = seed(&url, &[&good, "--replace"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("2BP01") && stderr.contains("table refs") && stderr.contains("CASCADE"),
        "{stderr}"
    );
    assert_eq!(docs_state(&db).await, before);
    db.batch_execute("DROP TABLE refs").await.unwrap();

    // Without --replace the tables are refused before anything runs.
    let out = seed(&url, &[&good]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(count(&db, "keep_me").await, 1);
    drop(db);
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_replace_keeps_the_tables_it_was_replacing() {
    let (server, db, url) = staging().await;
    let big = common::fixture("reliability/big-seed.toml");
    let big = big.to_str().unwrap();
    let out = seed(&url, &[big, "--rows", "1000", "-q"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = seed_signalled_in_copy(&db, &url, big, &["--replace"], "TERM").await;
    assert_eq!(out.status.code(), Some(143), "{}", text(&out));
    // The drop was rolled back with the load: the old table is whole.
    assert_eq!(count(&db, "big").await, 1000, "{}", text(&out));
    let marked = comment(&db, "big").await.unwrap_or_default();
    assert!(marked.contains("1000 rows"), "{marked}");
    drop(db);
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_then_seed_then_replace_with_an_enum_and_a_domain() {
    let (server, db, url) = staging().await;
    let admin = common::connect(server.conn(), "postgres").await;
    admin.batch_execute("CREATE DATABASE source").await.unwrap();
    let source = common::connect(server.conn(), "source").await;
    source
        .batch_execute(
            "CREATE TYPE doc_state AS ENUM ('draft', 'live'); \
             CREATE DOMAIN positive AS int CHECK (VALUE > 0); \
             CREATE TABLE docs (id bigint PRIMARY KEY, state doc_state NOT NULL, n positive); \
             INSERT INTO docs SELECT i, CASE WHEN i % 3 = 0 THEN 'live' ELSE 'draft' END::doc_state, i \
                 FROM generate_series(1, 500) i; \
             ANALYZE docs",
        )
        .await
        .unwrap();
    let source_url = url.replace("/staging", "/source");
    let out = Command::new(common::bin())
        .args(["init", "--database-url", &source_url, "-q"])
        .env_remove("PGREHEARSE_DATABASE_URL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let scenario = String::from_utf8(out.stdout).unwrap();
    assert!(scenario.contains("CREATE TYPE"), "{scenario}");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("app.toml");
    std::fs::write(&path, &scenario).unwrap();
    let path = path.to_str().unwrap();

    let out = seed(&url, &[path, "--rows", "5k"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = seed(&url, &[path, "--rows", "3k", "--replace"]);
    assert_eq!(out.status.code(), Some(0), "{}\n{scenario}", text(&out));
    assert_eq!(count(&db, "docs").await, 3000);
    let out = seed(&url, &[path, "--rows", "2k", "--replace"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(count(&db, "docs").await, 2000);
    drop((db, source));
    server.teardown().await.unwrap();
}
