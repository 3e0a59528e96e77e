//! `pgrehearse init` against real Postgres: a source database is built with
//! plain SQL and ANALYZEd, init runs through the binary, and its scenario is
//! checked, run, and seeded into a second database whose statistics are
//! compared with the source's.

mod common;
#[path = "init_cases/keys.rs"]
mod keys;
#[path = "init_cases/shapes.rs"]
mod shapes;
#[path = "init_cases/workload.rs"]
mod workload;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use common::TestServer;
use pgrehearse::backend::{Backend, BackendKind, BackendOptions, ConnInfo, ServerLog};
use pgrehearse::scenario::{self, Overrides};

/// Settings of the source server: pg_stat_statements, every statement in
/// the log with the session's application_name.
const SOURCE_SETTINGS: &[(&str, &str)] = &[
    ("shared_preload_libraries", "pg_stat_statements"),
    ("log_statement", "all"),
    ("log_line_prefix", "%m [%p] %a: "),
];

fn url(conn: &ConnInfo, dbname: &str, user: &str, password: Option<&str>) -> String {
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

fn source_url(server: &TestServer) -> String {
    let c = server.conn();
    url(c, &c.dbname, &c.user, c.password.as_deref())
}

fn pgrehearse(args: &[&str]) -> Output {
    Command::new(common::bin())
        .args(args)
        .env_remove("PGREHEARSE_DATABASE_URL")
        .output()
        .expect("run pgrehearse")
}

/// `init` on the server's work database; its stdout when it exits 0.
fn init(url: &str, extra: &[&str]) -> String {
    let mut args = vec!["init", "--database-url", url];
    args.extend_from_slice(extra);
    let out = pgrehearse(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "init failed: {stderr}");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// A test server whose work database holds what `sql` makes.
async fn source_with(sql: &str) -> TestServer {
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
async fn seeded(conn: &ConnInfo, text: &str) -> tokio_postgres::Client {
    let dir = tempfile::tempdir().unwrap();
    let path = check(dir.path(), text);
    let copy = seed_copy(conn, &path, "copy").await;
    common::connect(&copy, "copy").await
}

/// Every one of `expected` is somewhere in `text`.
fn assert_contains_all(text: &str, expected: &[&str]) {
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in\n{text}");
    }
}

/// Write `text` to a file and `pgrehearse check` it.
fn check(dir: &Path, text: &str) -> std::path::PathBuf {
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
async fn seed_copy(conn: &ConnInfo, scenario_path: &Path, dbname: &str) -> ConnInfo {
    let admin = common::connect(conn, &conn.dbname).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {dbname}"))
        .await
        .unwrap();
    let s = scenario::load(scenario_path, &Overrides::default()).expect("load");
    let conn = ConnInfo {
        dbname: dbname.into(),
        ..conn.clone()
    };
    pgrehearse::seed::seed(&conn, &s, 1, false)
        .await
        .expect("seed the scenario");
    conn
}

/// A column's figures in pg_stats.
#[derive(Debug)]
struct Figures {
    nulls: f64,
    /// Distinct values (n_distinct made a count).
    distinct: f64,
    /// The frequency of its most common value (0 without MCVs).
    top: f64,
}

/// (table, column) → figures from pg_stats, and the tables' reltuples.
async fn stats_of(
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

/// Tables of every kind of column the generators reproduce, with data of
/// known shape (deterministic: hashes of the row number).
const SHOP: &str = r#"
CREATE TYPE mood AS ENUM ('happy', 'sad', 'meh');
CREATE TABLE customers (
    id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    email text NOT NULL,
    "Display Name" text,
    country text NOT NULL,
    mood mood,
    created_at timestamptz NOT NULL
);
CREATE UNIQUE INDEX customers_email ON customers (email);
CREATE TABLE orders (
    id bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),
    status text NOT NULL,
    total_cents int NOT NULL CHECK (total_cents >= 0),
    score int,
    note text,
    placed_at timestamptz NOT NULL,
    paid boolean,
    ref uuid NOT NULL,
    day date
);
CREATE INDEX orders_placed_at ON orders (placed_at);
CREATE FUNCTION u(i int, salt int) RETURNS float8 IMMUTABLE LANGUAGE sql AS
    $$ SELECT (hashint4(i * 7919 + salt) & 2147483647)::float8 / 2147483648 $$;
INSERT INTO customers (email, "Display Name", country, mood, created_at)
SELECT 'user' || i || '@example.com',
       CASE WHEN u(i, 1) < 0.2 THEN NULL ELSE 'Name ' || (i % 700) END,
       (ARRAY['DE', 'FR', 'US', 'US', 'US', 'GB', 'NL'])[1 + (i % 7)],
       CASE WHEN u(i, 2) < 0.1 THEN NULL ELSE (ARRAY['happy', 'sad', 'meh'])[1 + (i % 3)]::mood END,
       '2024-01-01'::timestamptz + i * interval '1 hour'
FROM generate_series(1, 2000) i;
INSERT INTO orders (customer_id, status, total_cents, score, note, placed_at, paid, ref, day)
SELECT 1 + floor(2000 * power(u(i, 3), 3))::int,
       (ARRAY['new', 'paid', 'paid', 'shipped', 'shipped', 'shipped', 'cancelled'])[1 + floor(u(i, 4) * 7)::int],
       floor(u(i, 5) * 100000)::int,
       1 + floor(5000 * power(u(i, 6), 6))::int,
       CASE WHEN u(i, 7) < 0.3 THEN NULL ELSE md5(i::text) END,
       '2024-01-01'::timestamptz + u(i, 8) * interval '365 days',
       CASE WHEN u(i, 9) < 0.05 THEN NULL ELSE u(i, 10) < 0.7 END,
       md5(i::text || 'ref')::uuid,
       '2024-01-01'::date + floor(u(i, 11) * 90)::int
FROM generate_series(1, 20000) i;
ANALYZE;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn round_trip_reproduces_the_source() {
    let server = common::test_server().await;
    server.client().await.batch_execute(SHOP).await.unwrap();
    let text = init(&source_url(&server), &[]);
    let dir = tempfile::tempdir().unwrap();
    let path = check(dir.path(), &text);
    // Text values are not copied unless asked for.
    assert!(
        !text.contains("\"US\"") && text.contains("\"country_1\""),
        "{text}"
    );
    let with_values = init(&source_url(&server), &["--include-values"]);
    assert!(with_values.contains("\"US\"") && !with_values.contains("country_1"));
    assert!(with_values.contains("Also copied (--include-values)"));

    // It runs as written: a local cluster, a couple of seconds of traffic.
    let out = pgrehearse(&[
        "run",
        path.to_str().unwrap(),
        "--backend",
        "local",
        "--out",
        dir.path().join("reports").to_str().unwrap(),
        "-q",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Seeded, it has the source's row counts and column statistics.
    let copy = seed_copy(server.conn(), &path, "copy").await;
    let (source, source_rows) = stats_of(server.conn(), &server.conn().dbname).await;
    let (seeded, seeded_rows) = stats_of(&copy, "copy").await;
    let mut problems = Vec::new();
    for (table, rows) in &source_rows {
        let got = seeded_rows.get(table).copied().unwrap_or(-1.0);
        if (got - rows).abs() > 0.01 * rows {
            problems.push(format!("{table}: {got} rows, the source has {rows}"));
        }
    }
    for (key, want) in &source {
        let Some(got) = seeded.get(key) else {
            problems.push(format!("{key:?}: no statistics in the copy"));
            continue;
        };
        if (got.nulls - want.nulls).abs() > 0.02
            || (got.distinct - want.distinct).abs() > 0.2 * want.distinct
            || (got.top - want.top).abs() > 0.02
        {
            problems.push(format!("{key:?}: {got:?}, the source has {want:?}"));
        }
    }
    assert!(source.len() >= 16, "{source:?}");
    assert!(problems.is_empty(), "{}\n{text}", problems.join("\n"));
    server.teardown().await;
}

/// A local cluster with `settings` (these tests read its log and preload
/// pg_stat_statements, so they need a server of their own).
async fn local_server(settings: &[(&str, &str)]) -> Backend {
    let opts = BackendOptions {
        backend: BackendKind::Local,
        database_url: None,
        ..common::test_options(settings)
    };
    Backend::start(&opts).await.expect("a local cluster")
}

fn backend_url(b: &Backend) -> String {
    let c = b.conn();
    url(c, &c.dbname, &c.user, c.password.as_deref())
}

/// The statements session `app` ran, as the server logged them (past byte
/// `from` of the log).
fn logged_statements(log: &Path, from: u64, app: &str) -> Vec<String> {
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
fn without_skips(text: &str) -> String {
    text.lines()
        .filter(|l| !l.starts_with("# Skipped"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn init_only_reads_in_one_read_only_transaction_and_a_reader_role_suffices() {
    let server = local_server(SOURCE_SETTINGS).await;
    let c = common::connect(server.conn(), &server.conn().dbname).await;
    c.batch_execute(SHOP).await.unwrap();
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    for id in 1..=5i64 {
        c.query("SELECT * FROM orders WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
    // Twice: a statement called once is a one-off, not the app's traffic.
    for id in 1..=2i64 {
        c.execute(
            "UPDATE orders SET status = $1 WHERE id = $2",
            &[&"paid", &id],
        )
        .await
        .unwrap();
    }
    c.batch_execute(
        "CREATE ROLE reader LOGIN PASSWORD 'reader-pw'; \
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader; \
         GRANT pg_read_all_stats TO reader",
    )
    .await
    .unwrap();
    let databases = |c: tokio_postgres::Client| async move {
        c.query("SELECT datname::text FROM pg_database ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let before = databases(common::connect(server.conn(), "postgres").await).await;
    let Some(ServerLog::File(log)) = server.server_log() else {
        panic!("a local cluster has a log file")
    };
    let from = std::fs::metadata(&log).unwrap().len();

    let owner = init(&backend_url(&server), &[]);
    let sent = logged_statements(&log, from, pgrehearse::init::APP_NAME);
    assert_eq!(
        sent.first().map(String::as_str),
        Some("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"),
        "{sent:#?}"
    );
    assert_eq!(sent.last().map(String::as_str), Some("COMMIT"), "{sent:#?}");
    assert!(sent.len() > 10, "{sent:#?}");
    for s in &sent[1..sent.len() - 1] {
        let word = s.split_whitespace().next().unwrap_or("").to_uppercase();
        let ok = word == "SELECT"
            || s.starts_with("SAVEPOINT ")
            || s.starts_with("ROLLBACK TO SAVEPOINT ");
        assert!(
            ok,
            "init sent {s:?}; only SELECTs (and savepoints) belong in its transaction"
        );
    }
    // It described the app's statements without running them.
    assert!(
        owner.contains("sql = \"UPDATE orders SET status = $1 WHERE id = $2\""),
        "{owner}"
    );
    assert!(!sent.iter().any(|s| s.contains("UPDATE orders")));
    // Nothing was created, not even a scratch database.
    let after = databases(common::connect(server.conn(), "postgres").await).await;
    assert_eq!(before, after);

    // SELECT and pg_read_all_stats are all it needs: the same scenario.
    let c = server.conn();
    let reader = init(&url(c, &c.dbname, "reader", Some("reader-pw")), &[]);
    assert_eq!(without_skips(&owner), without_skips(&reader));
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_or_unreadable_sources_exit_3_and_bad_names_exit_2() {
    // Nothing listens on a port just released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = pgrehearse(&[
        "init",
        "--database-url",
        &format!("postgres://someone:s3cret-pw@127.0.0.1:{port}/app"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(!stderr.contains("s3cret-pw"), "{stderr}");
    assert!(out.stdout.is_empty());

    let server = common::test_server().await;
    server
        .client()
        .await
        .batch_execute("CREATE TABLE t (id int PRIMARY KEY); ANALYZE t")
        .await
        .unwrap();
    let c = server.conn();
    let missing_db = url(c, "no_such_database", &c.user, c.password.as_deref());
    let out = pgrehearse(&["init", "--database-url", &missing_db]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("no_such_database"), "{stderr}");

    let source = source_url(&server);
    for (args, message) in [
        (
            vec!["--tables", "t,nosuch"],
            "--tables: no table `nosuch` in schema `public` (it has: t)",
        ),
        (
            vec!["--schema", "nosuch"],
            "--schema: the source database has no schema `nosuch`",
        ),
        (vec!["--tables", "t,,"], "--tables: expected table names"),
    ] {
        let mut all = vec!["init", "--database-url", &source];
        all.extend(args.iter());
        let out = pgrehearse(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn columns_of_types_no_generator_writes_get_a_comment_and_still_seed() {
    let server = source_with(
        "CREATE TABLE odd (
            id int PRIMARY KEY,
            addr inet NOT NULL,
            tags text[],
            wait interval NOT NULL DEFAULT '1 day',
            spot point NOT NULL,
            doc tsvector,
            span int4range NOT NULL,
            blob bytea NOT NULL
         );
         INSERT INTO odd SELECT i, '10.0.0.1', CASE WHEN i % 2 = 0 THEN ARRAY['a'] END,
             interval '1 hour', point(i, i), to_tsvector('some words'), int4range(i, i + 5), 'x'
         FROM generate_series(1, 300) i;
         ANALYZE odd;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    assert_contains_all(
        &text,
        &[
            "# type inet: no generator writes it; every row gets the constant \"0.0.0.0\"",
            "# tags: type text[]: no generator writes it; left NULL",
            "# wait: type interval: no generator writes it; its default fills every row",
            "# type point: no generator writes it; every row gets the constant \"(0,0)\"",
            "# doc: type tsvector: no generator writes it; left NULL",
            "# type int4range: no generator writes it; every row gets the constant \"empty\"",
            "addr = { gen = \"constant\", value = \"0.0.0.0\" }",
            "blob = { gen = \"constant\", value = \"\" }",
        ],
    );
    let c = seeded(server.conn(), &text).await;
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE addr = '0.0.0.0' AND spot ~= point(0, 0) AND span = 'empty' \
                                     AND blob = '' AND wait = interval '1 day'), count(*) FROM odd",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (300, 300));
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cycle_of_foreign_keys_is_closed_after_seeding() {
    let server = source_with(
        "CREATE TABLE a (id int PRIMARY KEY, b_id int);
         CREATE TABLE b (id int PRIMARY KEY, a_id int NOT NULL REFERENCES a (id));
         ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b (id);
         CREATE TABLE node (id int PRIMARY KEY, parent_id int REFERENCES node (id));
         INSERT INTO a SELECT i, NULL FROM generate_series(1, 100) i;
         INSERT INTO b SELECT i, 1 + i % 100 FROM generate_series(1, 50) i;
         UPDATE a SET b_id = 1 + id % 50;
         INSERT INTO node SELECT i, CASE WHEN i > 1 THEN i / 2 END FROM generate_series(1, 200) i;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    assert_contains_all(
        &text,
        &[
        "a_b_fk is added in after_seed: the foreign keys form a cycle",
        "\"ALTER TABLE a ADD CONSTRAINT a_b_fk FOREIGN KEY (b_id) REFERENCES b(id)\"",
        "node_parent_id_fkey is added in after_seed: it references its own table",
        "\"ALTER TABLE node ADD CONSTRAINT node_parent_id_fkey FOREIGN KEY (parent_id) REFERENCES node(id)\"",
        "b_id = { gen = \"fk\", table = \"b\", deferred = true }",
        ],
    );
    // b references a, so a comes first.
    assert!(text.find("name = \"a\"").unwrap() < text.find("name = \"b\"").unwrap());
    let c = seeded(server.conn(), &text).await;
    let rows = c
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint WHERE contype = 'f' ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let fks: Vec<(String, bool)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        fks,
        [
            ("a_b_fk".to_string(), true),
            ("b_a_id_fkey".to_string(), true),
            ("node_parent_id_fkey".to_string(), true)
        ]
    );
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg_stat_statements_becomes_the_workload_by_calls() {
    let server = local_server(&[("shared_preload_libraries", "pg_stat_statements")]).await;
    let c = common::connect(server.conn(), &server.conn().dbname).await;
    c.batch_execute(SHOP).await.unwrap();
    c.batch_execute("CREATE EXTENSION pg_stat_statements; SELECT pg_stat_statements_reset()")
        .await
        .unwrap();
    for id in 1..=40i64 {
        c.query("SELECT * FROM orders WHERE id = $1", &[&id])
            .await
            .unwrap();
    }
    for _ in 0..20 {
        c.query(
            "SELECT count(*) FROM customers WHERE country = $1",
            &[&"DE"],
        )
        .await
        .unwrap();
    }
    for id in 1..=10i64 {
        c.execute(
            "UPDATE orders SET status = $1 WHERE id = $2",
            &[&"paid", &id],
        )
        .await
        .unwrap();
    }
    for _ in 0..5 {
        c.batch_execute(
            "INSERT INTO orders (customer_id, status, total_cents, placed_at, ref) \
             VALUES (7, 'new', 100, now(), gen_random_uuid())",
        )
        .await
        .unwrap();
    }
    let text = init(&backend_url(&server), &[]);
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let queries = doc["workload"]["query"].as_array().unwrap();
    let got: Vec<(&str, i64)> = queries
        .iter()
        .map(|q| {
            (
                q["name"].as_str().unwrap(),
                q["weight"].as_integer().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("select_orders", 533),
            ("select_customers", 267),
            ("update_orders", 133),
            ("insert_orders", 67)
        ],
        "{text}"
    );
    let params = |i: usize| queries[i]["params"].to_string();
    assert_eq!(
        queries[0]["sql"].as_str(),
        Some("SELECT * FROM orders WHERE id = $1")
    );
    assert!(
        params(0).contains("gen = \"fk\"") && params(0).contains("table = \"orders\""),
        "{}",
        params(0)
    );
    // The country of customers: its own generator, the same synthetic labels.
    assert!(params(1).contains("country_1"), "{}", params(1));
    // The INSERT's values come from its columns; new keys are not drawn.
    let insert = queries[3].to_string();
    assert!(
        insert.contains("VALUES ($1, $2, $3, now(), gen_random_uuid())"),
        "{insert}"
    );
    assert!(insert.contains("table = \"customers\""), "{insert}");
    assert!(!text.contains("pg_stat_statements_reset"), "{text}");
    server.teardown().await.unwrap();
}

/// A small schema with one of each thing init writes specially: an enum, a
/// domain over text with a CHECK, a serial, a quoted name, a generated
/// column, a date, a varchar limit, a partitioned table with an identity
/// key, a CHECK listing values, a foreign key, unique and plain indexes.
const SMALL: &str = r#"
CREATE TYPE plan AS ENUM ('free', 'pro', 'team');
CREATE DOMAIN email AS text CHECK (VALUE LIKE '%@%');
CREATE TABLE accounts (
    id serial PRIMARY KEY,
    "Email" email NOT NULL,
    plan plan NOT NULL DEFAULT 'free',
    name varchar(12),
    seats int NOT NULL CHECK (seats > 0),
    seats_x2 int GENERATED ALWAYS AS (seats * 2) STORED,
    created date NOT NULL
);
CREATE UNIQUE INDEX accounts_email ON accounts ("Email");
CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY,
    account_id int NOT NULL REFERENCES accounts (id),
    kind text NOT NULL CHECK (kind IN ('login', 'logout', 'purchase')),
    at timestamptz NOT NULL,
    amount numeric(10, 2),
    PRIMARY KEY (id, at)
) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_later PARTITION OF events DEFAULT;
CREATE INDEX events_account ON events (account_id);
INSERT INTO accounts ("Email", plan, name, seats, created)
SELECT 'a' || i || '@x.org', (ARRAY['free', 'free', 'free', 'pro', 'team'])[1 + i % 5]::plan,
       CASE WHEN i % 4 = 0 THEN NULL ELSE 'Acct ' || i END, 1 + i % 7, DATE '2023-01-01' + i % 365
FROM generate_series(1, 300) i;
INSERT INTO events (account_id, kind, at, amount)
SELECT 1 + (i * i) % 50, (ARRAY['login', 'login', 'logout', 'purchase'])[1 + i % 4],
       TIMESTAMPTZ '2024-01-01 00:00:00+00' + (i % 500) * interval '1 day',
       CASE WHEN i % 4 = 3 THEN (i % 1000) / 10.0 END
FROM generate_series(1, 3000) i;
ANALYZE;
"#;

#[tokio::test(flavor = "multi_thread")]
async fn the_scenario_of_a_small_schema() {
    let server = local_server(&[]).await;
    let c = common::connect(server.conn(), &server.conn().dbname).await;
    c.batch_execute(SMALL).await.unwrap();
    let text = init(&backend_url(&server), &[]);
    let version = regex::Regex::new(r"PostgreSQL \d+\.\d+").unwrap();
    insta::assert_snapshot!("init_small", version.replace(&text, "PostgreSQL <version>"));
    // The same database, the same file.
    assert_eq!(init(&backend_url(&server), &[]), text);
    // It seeds: partitions, the generated column, the domain's check.
    let c = seeded(server.conn(), &text).await;
    let row = c
        .query_one(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM events_later), \
                    (SELECT count(*) FROM accounts WHERE seats_x2 = 2 * seats), \
                    (SELECT count(*) FROM pg_constraint WHERE conname = 'email_check')",
            &[],
        )
        .await
        .unwrap();
    let counts: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!((counts.0, counts.2, counts.3), (3000, 300, 1), "{counts:?}");
    assert!(counts.1 > 500, "{counts:?}");
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn another_schema_with_types_extensions_functions_and_triggers() {
    let server = source_with(
        r#"CREATE EXTENSION citext;
         CREATE EXTENSION "uuid-ossp";
         CREATE SCHEMA types;
         CREATE TYPE types.mood AS ENUM ('up', 'down');
         CREATE TYPE pair AS (a int, b text);
         CREATE TYPE floatrange AS RANGE (subtype = float8);
         CREATE SCHEMA shared;
         CREATE TABLE shared.regions (id int PRIMARY KEY, name text);
         CREATE SCHEMA app;
         CREATE FUNCTION app.positive(x int) RETURNS bool IMMUTABLE LANGUAGE sql AS $$ SELECT x > 0 $$;
         CREATE FUNCTION app.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
         CREATE TABLE app.users (
             id uuid PRIMARY KEY DEFAULT uuid_generate_v4(),
             login citext NOT NULL,
             mood types.mood,
             p pair,
             r floatrange,
             region_id int REFERENCES shared.regions (id),
             n int CHECK (app.positive(n))
         );
         CREATE TRIGGER users_touch BEFORE UPDATE ON app.users FOR EACH ROW EXECUTE FUNCTION app.touch();
         CREATE TABLE app.visits (region text NOT NULL, at date NOT NULL) PARTITION BY LIST (region);
         CREATE TABLE app.visits_eu PARTITION OF app.visits FOR VALUES IN ('eu-west', 'eu-north');
         CREATE TABLE app.visits_us PARTITION OF app.visits FOR VALUES IN ('us-east');
         INSERT INTO app.visits SELECT (ARRAY['eu-west', 'eu-north', 'us-east', 'us-east'])[1 + i % 4], DATE '2024-01-01' + i % 30
         FROM generate_series(1, 400) i;
         INSERT INTO shared.regions SELECT i, 'r' || i FROM generate_series(1, 5) i;
         INSERT INTO app.users (login, mood, region_id, n)
         SELECT 'u' || i, (ARRAY['up', 'down'])[1 + i % 2]::types.mood, 1 + i % 5, i FROM generate_series(1, 100) i;
         ANALYZE;"#,
    )
    .await;
    let text = init(&source_url(&server), &["--schema", "app"]);
    assert_contains_all(
        &text,
        &[
        "Besides the tables of schema app: shared.regions, which their foreign keys reference.",
        "CREATE SCHEMA IF NOT EXISTS types;",
        "CREATE EXTENSION IF NOT EXISTS citext;",
        "CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\";",
        "CREATE TYPE types.mood AS ENUM ('up', 'down');",
        "CREATE TYPE public.pair AS (a integer, b text);",
        "CREATE TYPE public.floatrange AS RANGE (subtype = double precision);",
        "FOREIGN KEY (region_id) REFERENCES regions(id)",
        "functions that are not written: positive(integer)",
        "its triggers are not written (nor their functions): users_touch",
        "mood = { gen = \"choice\", values = [\"up\", \"down\"]",
        // A LIST partition key keeps its values: they are in the bounds.
        "[table.columns.region]\ngen = \"choice\"\nvalues = [\"us-east\", \"eu-north\", \"eu-west\"]",
        ],
    );
    server.teardown().await;
}
