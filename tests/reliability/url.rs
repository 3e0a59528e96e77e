//! The url backend on a server that is not ours: scratch database only,
//! nothing else touched, clear errors, no password anywhere.

use std::path::{Path, PathBuf};
use std::time::Duration;

use pgrehearse::backend::local::LocalCluster;
use pgrehearse::backend::{BackendOptions, ConnInfo, ServerLog};
use pgrehearse::migration::MIGRATION_APP_NAME;
use pgrehearse::seed::SEED_APP_NAME;
use tokio_postgres::Client;

use crate::common;
use crate::harness::*;

/// A server with data of its own: a database `existing_app` with a table,
/// and a table in `postgres`. Logs every DDL and data change with the
/// database it happened in.
async fn server_with_data() -> LocalCluster {
    let server = LocalCluster::start(&BackendOptions::local(&[
        ("log_statement", "mod"),
        ("log_line_prefix", "%m [%p] db=%d "),
    ]))
    .await
    .expect("a local cluster");
    let sc = server.conn().clone();
    let admin = common::connect(&sc, "postgres").await;
    admin
        .batch_execute("CREATE DATABASE existing_app")
        .await
        .unwrap();
    admin
        .batch_execute(
            "CREATE TABLE keep_me (id int PRIMARY KEY, note text); \
             INSERT INTO keep_me SELECT g, 'row ' || g FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let app = common::connect(&sc, "existing_app").await;
    app.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, total int); \
         INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 500) g; \
         CREATE INDEX orders_total ON orders (total);",
    )
    .await
    .unwrap();
    server
}

/// Everything a run could have touched outside its scratch database:
/// databases, roles, every object and a checksum of every table's rows.
async fn server_state(sc: &ConnInfo) -> Vec<String> {
    let admin = common::connect(sc, "postgres").await;
    let mut state: Vec<String> = admin
        .query(
            "SELECT 'db ' || datname FROM pg_database WHERE datname NOT LIKE 'pgrehearse\\_%' \
             UNION ALL SELECT 'role ' || rolname FROM pg_roles ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for db in ["postgres", "existing_app"] {
        let c = common::connect(sc, db).await;
        let objects = c
            .query(
                "SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        state.extend(
            objects
                .iter()
                .map(|r| format!("{db}: {}", r.get::<_, String>(0))),
        );
        let table = if db == "postgres" {
            "keep_me"
        } else {
            "orders"
        };
        let sum: String = c
            .query_one(
                &format!("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        state.push(format!("{db}: {table} md5 {sum}"));
    }
    state
}

/// Statements the server logged, past byte `from` of its log, as run in a
/// database other than `scratch` (log_statement = mod: every DDL and data
/// change, by the simple or the extended protocol).
fn changes_outside(log: &Path, from: usize, scratch: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap();
    let re = regex::Regex::new(r"db=(\S*) LOG:  (?:statement|execute [^:]*): (.*)").unwrap();
    re.captures_iter(&text[from..])
        .filter(|c| &c[1] != scratch)
        .map(|c| format!("db={} {}", &c[1], &c[2]))
        .collect()
}

fn server_log_path(server: &LocalCluster) -> PathBuf {
    match server.server_log() {
        Some(ServerLog::File(p)) => p,
        None => panic!("a local cluster has a log"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_backend_touches_only_its_scratch_database_and_leaks_no_password() {
    let server = server_with_data().await;
    let sc = server.conn().clone();
    let password = sc.password.clone().unwrap();
    let before = server_state(&sc).await;
    let log = server_log_path(&server);
    let log_start = std::fs::metadata(&log).unwrap().len() as usize;
    let url = format!(
        "postgres://postgres:{password}@127.0.0.1:{}/postgres",
        sc.port
    );

    // Not quiet: progress and outcome lines are searched for the password too.
    let run = tokio::task::spawn_blocking(move || {
        Rehearsal::start(
            "url-safety.toml",
            &["--backend", "url", "--database-url", &url],
            &[],
        )
        .finish(Duration::from_secs(120))
    })
    .await
    .unwrap();
    run.assert_code(0);
    let (dir, rec) = run.record();
    run.assert_report_written(&dir, "url-safety");
    let info = rec.info.as_ref().unwrap();
    assert_eq!(info.backend, "url");
    assert!(rec.statements.iter().all(|s| s.outcome == "ok"));
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);

    // The scratch database: uniquely named, created and dropped, and the
    // only thing changed outside it.
    let scratch = regex::Regex::new(r"scratch database (pgrehearse_\d{8}T\d{6}_[a-z0-9]{6})")
        .unwrap()
        .captures(&info.target)
        .unwrap_or_else(|| panic!("run.json target names no scratch database: {}", info.target))[1]
        .to_string();
    assert!(common::scratch_databases(&sc).await.is_empty());
    let outside = changes_outside(&log, log_start, &scratch);
    assert_eq!(
        outside,
        vec![
            format!("db=postgres CREATE DATABASE \"{scratch}\""),
            // Other roles kept out of it (a monitoring agent's session
            // would stop its drop).
            format!("db=postgres REVOKE CONNECT, TEMPORARY ON DATABASE \"{scratch}\" FROM PUBLIC"),
            format!("db=postgres DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"),
        ],
        "changes outside the scratch database"
    );
    assert_eq!(
        before,
        server_state(&sc).await,
        "the server's own data changed"
    );

    let leaks = where_is(&password, &dir, &run);
    assert!(leaks.is_empty(), "the password appears in {leaks:?}");
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgpassword_appears_nowhere_even_when_the_migration_fails() {
    let server = server_with_data().await;
    let sc = server.conn().clone();
    let password = sc.password.clone().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", sc.port);
    let run = tokio::task::spawn_blocking(move || {
        Rehearsal::start(
            "sql-error.toml",
            &["--backend", "url", "--database-url", &url, "-v"],
            &[("PGPASSWORD", &password)],
        )
        .finish(Duration::from_secs(120))
    })
    .await
    .unwrap();
    run.assert_code(4);
    let (dir, _) = run.record();
    let leaks = where_is(sc.password.as_deref().unwrap(), &dir, &run);
    assert!(leaks.is_empty(), "the password appears in {leaks:?}");
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_backend_exits_3_clearly_on_refused_connection_and_bad_password() {
    let server = LocalCluster::start(&BackendOptions::local(&[]))
        .await
        .expect("a local cluster");
    let sc = server.conn().clone();
    let secret = "N0tTheRightPassw0rd";
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            format!("postgres://postgres:{secret}@127.0.0.1:{closed}/postgres"),
            "Connection refused",
        ),
        (
            format!(
                "postgres://postgres:{secret}@127.0.0.1:{}/postgres",
                sc.port
            ),
            "password authentication failed",
        ),
    ];
    for (url, why) in cases {
        let args = ["--backend", "url", "--database-url", url.as_str(), "-q"];
        let run = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Rehearsal::start("url-safety.toml", &args, &[]).finish(Duration::from_secs(60))
            }
        })
        .await
        .unwrap();
        run.assert_code(3);
        assert!(
            run.stderr.contains(
                "no usable Postgres: cannot connect to postgres://postgres:***@127.0.0.1:"
            ),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(why), "{why}: {}", run.stderr);
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
        assert!(run.run_dir().is_none(), "no run directory without a server");
    }
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

/// Whether the run's session `app` is running a statement that contains
/// `query` (and, with `waiting`, waits for a lock), on the server behind
/// `admin`. False when the server does not answer.
async fn run_session_is(admin: &Client, app: &str, query: &str, waiting: bool) -> bool {
    admin
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = $1 \
             AND state = 'active' AND strpos(query, $2) > 0 \
             AND (NOT $3 OR wait_event_type = 'Lock'))",
            &[&app, &query, &waiting],
        )
        .await
        .map(|r| r.get(0))
        .unwrap_or(false)
}

/// `pgrehearse run FIXTURE --backend url --database-url URL -q`.
fn url_run(fixture: &str, url: &str) -> Rehearsal {
    Rehearsal::start(
        fixture,
        &["--backend", "url", "--database-url", url, "-q"],
        &[],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_on_the_url_backend_cancels_queries_and_drops_the_scratch_database() {
    let (server, sc, url) = common::own_server(&[("log_statement", "ddl")]).await;
    let admin = common::connect(&sc, "postgres").await;
    let handle = tokio::runtime::Handle::current();
    let run = tokio::task::spawn_blocking(move || {
        let mut r = url_run("long-step.toml", &url);
        let sleeping = || {
            handle.block_on(run_session_is(
                &admin,
                MIGRATION_APP_NAME,
                "SELECT pg_sleep(30)",
                false,
            ))
        };
        r.wait_until("the sleep on the server", Duration::from_secs(90), |_| {
            sleeping()
        });
        r.signal_in_stage("INT", "the sleep", Duration::from_secs(5), |_| sleeping());
        interrupted(r, 130)
    })
    .await
    .unwrap();
    let (_, rec) = run.record();
    let failure = rec.info.and_then(|i| i.failure).unwrap_or_default();
    assert_eq!(
        failure, "interrupted by SIGINT (step `migrate / sleep` was cancelled)",
        "the migration step was the stage interrupted"
    );
    // The sleep was cancelled on the server, not merely abandoned.
    let text = std::fs::read_to_string(server_log_path(&server)).unwrap();
    assert!(
        text.contains("canceling statement due to user request"),
        "no cancel in the server log"
    );
    assert!(common::scratch_databases(&sc).await.is_empty());
    let admin = common::connect(&sc, "postgres").await;
    let sessions: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgrehearse/%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0, "sessions of the run are still connected");
    server.teardown().await.unwrap();
}

/// A signal while the scratch database is being created leaves none: a
/// CREATE DATABASE abandoned by the client would still complete on the
/// server. The test holds the CREATE DATABASE in that stage: it needs a
/// ShareLock on its template, and a COMMENT on template1 in an open
/// transaction holds a lock that conflicts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_the_scratch_database_is_created_leaves_none() {
    let (server, sc, url) = common::own_server(&[]).await;
    let holder = common::connect(&sc, "postgres").await;
    holder
        .batch_execute("BEGIN; COMMENT ON DATABASE template1 IS 'held by a test'")
        .await
        .unwrap();
    let admin = common::connect(&sc, "postgres").await;
    let handle = tokio::runtime::Handle::current();
    let r = tokio::task::spawn_blocking(move || {
        let mut r = url_run("url-safety.toml", &url);
        r.signal_in_stage("INT", "CREATE DATABASE", Duration::from_secs(60), |_| {
            handle.block_on(run_session_is(
                &admin,
                "pgrehearse/harness",
                "CREATE DATABASE",
                true,
            ))
        });
        r
    })
    .await
    .unwrap();
    holder.batch_execute("ROLLBACK").await.unwrap();
    let run = tokio::task::spawn_blocking(move || interrupted(r, 130))
        .await
        .unwrap();
    assert!(run.run_dir().is_none(), "interrupted before the rehearsal");
    assert_eq!(common::scratch_databases(&sc).await, Vec::<String>::new());
    server.teardown().await.unwrap();
}

/// A signal while the scratch database is seeded drops it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_while_seeding_over_url_leaves_no_scratch_database() {
    let (server, sc, url) = common::own_server(&[]).await;
    let admin = common::connect(&sc, "postgres").await;
    let handle = tokio::runtime::Handle::current();
    let run = tokio::task::spawn_blocking(move || {
        let mut r = url_run("big-seed.toml", &url);
        let copying = || handle.block_on(run_session_is(&admin, SEED_APP_NAME, "COPY", false));
        r.wait_until("the COPY of seeding", Duration::from_secs(90), |_| {
            copying()
        });
        r.signal_in_stage("INT", "the COPY", Duration::from_secs(5), |_| copying());
        interrupted(r, 130)
    })
    .await
    .unwrap();
    let (_, rec) = run.record();
    let failure = rec.info.and_then(|i| i.failure);
    assert_eq!(
        failure.as_deref(),
        Some("interrupted by SIGINT while seeding")
    );
    assert_eq!(common::scratch_databases(&sc).await, Vec::<String>::new());
    server.teardown().await.unwrap();
}
