//! Helpers of the init tests: the binary, a source database built from
//! SQL, a scenario checked and seeded into a copy, pg_stats read back.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use super::common::{self, TestServer};
use pgrehearse::backend::{Backend, BackendKind, BackendOptions, ConnInfo};
use pgrehearse::scenario::{self, Overrides};

/// Settings of the source server: pg_stat_statements, every statement in
/// the log with the session's application_name.
pub(super) const SOURCE_SETTINGS: &[(&str, &str)] = &[
    ("shared_preload_libraries", "pg_stat_statements"),
    ("log_statement", "all"),
    ("log_line_prefix", "%m [%p] %a: "),
];

pub(super) fn url(conn: &ConnInfo, dbname: &str, user: &str, password: Option<&str>) -> String {
    let mut s = format!(
        "host={} port={} user={user} dbname={dbname}",
        conn.host, conn.port
    );
    if let Some(p) = password {
        s.push_str(&format!(
            " password='{}'",
            p.replace('\\', "\\\\").replace('\'', "\\'")
        ));
    }
    s
}

pub(super) fn source_url(server: &TestServer) -> String {
    let c = server.conn();
    url(c, &c.dbname, &c.user, c.password.as_deref())
}

/// `pgrehearse ARGS`, waited for two minutes at most: a command that
/// never ends (QA: init looped on a foreign key into a partitioned table)
/// fails its test instead of hanging the run.
pub(super) fn pgrehearse(args: &[&str]) -> Output {
    use std::io::Read;
    let mut child = Command::new(common::bin())
        .args(args)
        .env_remove("PGREHEARSE_DATABASE_URL")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run pgrehearse");
    let read = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = read(Box::new(child.stdout.take().expect("stdout")));
    let err = read(Box::new(child.stderr.take().expect("stderr")));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for pgrehearse") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("pgrehearse {args:?} still running after 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// `init` on the server's work database; its stdout when it exits 0.
pub(super) fn init(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["init", "--database-url", url];
    args.extend_from_slice(extra);
    let out = pgrehearse(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "init failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A test server whose work database holds what `sql` makes.
pub(super) async fn source_with(sql: &str) -> TestServer {
    let server = common::test_server().await;
    server
        .client()
        .await
        .batch_execute(sql)
        .await
        .expect("the source's SQL");
    server
}

/// `text` checked, then seeded into a fresh database `copy` of the server
/// behind `conn`: a client on it.
pub(super) async fn seeded(conn: &ConnInfo, text: &str) -> tokio_postgres::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = check(dir.path(), text);
    let copy = seed_copy(conn, &path, "copy").await;
    common::connect(&copy, "copy").await
}

/// Every one of `expected` is somewhere in `text`.
pub(super) fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in\n{text}");
    }
}

/// Write `text` to a file and `pgrehearse check` it.
pub(super) fn check(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("scenario.toml");
    std::fs::write(&path, text).unwrap();
    let out = pgrehearse(&["check", path.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "check rejected init's scenario: {}\n{text}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

/// Seed `scenario_path` into a fresh database `dbname` of the server
/// behind `conn`.
pub(super) async fn seed_copy(conn: &ConnInfo, scenario_path: &Path, dbname: &str) -> ConnInfo {
    seed_scaled(conn, scenario_path, dbname, &Overrides::default())
        .await
        .0
}

/// [`seed_copy`] with `--rows`/`--scale` overrides; also the seed's report
/// and the rows each table was asked for.
pub(super) async fn seed_scaled(
    conn: &ConnInfo,
    scenario_path: &Path,
    dbname: &str,
    over: &Overrides,
) -> (ConnInfo, pgrehearse::seed::SeedReport, Vec<(String, u64)>) {
    let admin = common::connect(conn, &conn.dbname).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {dbname}"))
        .await
        .unwrap();
    let s = scenario::load(scenario_path, over).expect("load");
    let conn = ConnInfo {
        dbname: dbname.into(),
        ..conn.clone()
    };
    let report = pgrehearse::seed::seed(&conn, &s, 1, false)
        .await
        .expect("seed the scenario");
    let asked = s.tables.iter().map(|t| (t.name.clone(), t.rows)).collect();
    (conn, report, asked)
}

/// A column's figures in pg_stats.
#[derive(Debug)]
pub(super) struct Figures {
    pub(super) nulls: f64,
    /// Distinct values (n_distinct made a count).
    pub(super) distinct: f64,
    /// The frequency of its most common value (0 without MCVs).
    pub(super) top: f64,
}

/// (table, column) → figures from pg_stats, and the tables' reltuples.
pub(super) async fn stats_of(
    conn: &ConnInfo,
    dbname: &str,
) -> (BTreeMap<(String, String), Figures>, BTreeMap<String, f64>) {
    let c = common::connect(conn, dbname).await;
    let rows = c
        .query(
            "SELECT s.tablename::text, s.attname::text, s.null_frac::float8, \
                    CASE WHEN s.n_distinct < 0 THEN -s.n_distinct * c.reltuples ELSE s.n_distinct END::float8, \
                    coalesce(s.most_common_freqs[1], 0)::float8 \
             FROM pg_stats s JOIN pg_class c ON c.relname = s.tablename \
             WHERE s.schemaname = 'public'",
            &[],
        )
        .await
        .unwrap();
    let stats = rows
        .iter()
        .map(|r| {
            let f = Figures {
                nulls: r.get(2),
                distinct: r.get(3),
                top: r.get(4),
            };
            ((r.get(0), r.get(1)), f)
        })
        .collect();
    let rows = c
        .query(
            "SELECT relname::text, reltuples::float8 FROM pg_class \
             WHERE relnamespace = 'public'::regnamespace AND relkind = 'r'",
            &[],
        )
        .await
        .unwrap();
    (stats, rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

/// A local cluster with `settings` (these tests read its log and preload
/// pg_stat_statements, so they need a server of their own).
pub(super) async fn local_server(settings: &[(&str, &str)]) -> Backend {
    let opts = BackendOptions {
        backend: BackendKind::Local,
        database_url: None,
        ..common::test_options(settings)
    };
    Backend::start(&opts).await.expect("a local cluster")
}

pub(super) fn backend_url(b: &Backend) -> String {
    let c = b.conn();
    url(c, &c.dbname, &c.user, c.password.as_deref())
}

/// The statements session `app` ran, as the server logged them (past byte
/// `from` of the log).
pub(super) fn logged_statements(log: &Path, from: u64, app: &str) -> Vec<String> {
    let text = std::fs::read(log).expect("server log");
    let text = String::from_utf8_lossy(&text[from as usize..]).into_owned();
    let marker = format!(" {app}: LOG:  ");
    text.lines()
        .filter_map(|l| l.split_once(&marker).map(|(_, rest)| rest))
        .filter_map(|rest| {
            rest.strip_prefix("statement: ").or_else(|| {
                rest.strip_prefix("execute ")
                    .and_then(|r| r.split_once(": ").map(|x| x.1))
            })
        })
        .map(str::to_string)
        .collect()
}

/// The scenario without pg_stat_statements' "Skipped" lines, which count
/// the catalog queries of earlier init runs too.
pub(super) fn without_skips(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("# Skipped"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `SELECT count(*) FROM table`.
pub(super) async fn count(c: &tokio_postgres::Client, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .await
        .unwrap()
        .get(0)
}
