//! `pgrehearse seed SCENARIO --database-url URL` through the binary, into a
//! database of a server of the test's own: row counts round-trip, tables
//! that exist are refused (exit 2) unless --replace, and an interrupted seed
//! leaves no table that looks complete.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_seed_leaves_no_table_that_looks_complete() {
    let (server, db, url) = staging().await;
    let big = common::fixture("reliability/big-seed.toml");
    let mut child = Command::new(common::bin())
        .arg("seed")
        .arg(&big)
        .args(["--database-url", &url, "-q"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt it while the COPY runs.
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
    let status = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
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
