//! The findings' advice, run: for each statement with an online form of its
//! own (REFRESH MATERIALIZED VIEW, REINDEX, DROP INDEX, DETACH PARTITION),
//! the SQL the finding advises runs on a real server beside an app query on
//! the same relation, which gets through; and the bad form (REINDEX, held
//! in a transaction) blocks that app's write. As eugene pairs each hint's
//! bad.sql with its good.sql.

mod common;

use pgrehearse::analyze::findings::patterns;
use pgrehearse::backend::{Backend, BackendOptions};

const SETUP: &str = "
CREATE TABLE orders (id bigint PRIMARY KEY, status text NOT NULL);
INSERT INTO orders SELECT g, 'new' FROM generate_series(1, 20000) g;
CREATE INDEX orders_status_idx ON orders (status);
CREATE MATERIALIZED VIEW totals AS SELECT status, count(*) AS n FROM orders GROUP BY status;
CREATE UNIQUE INDEX totals_status ON totals (status);
CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2024 PARTITION OF events FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE events_2025 PARTITION OF events FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
";

/// (the statement, the relation it blocks, a query of the app on it)
const CASES: &[(&str, &str, &str)] = &[
    (
        "REFRESH MATERIALIZED VIEW totals",
        "totals",
        "SELECT n FROM totals WHERE status = 'new'",
    ),
    (
        "REINDEX INDEX orders_status_idx",
        "orders",
        "UPDATE orders SET status = 'paid' WHERE id = 7",
    ),
    (
        "DROP INDEX orders_status_idx",
        "orders",
        "SELECT status FROM orders WHERE id = 7",
    ),
    (
        "ALTER TABLE events DETACH PARTITION events_2024",
        "events",
        "SELECT count(*) FROM events_2025",
    ),
];

#[tokio::test(flavor = "multi_thread")]
async fn advised_online_forms_run_and_let_the_app_through() {
    let server = Backend::start(&BackendOptions::local(&[])).await.unwrap();
    let conn = server.conn().clone();
    let db = common::connect(&conn, &conn.dbname).await;
    db.batch_execute(SETUP).await.unwrap();
    for (bad, relation, app_query) in CASES {
        let advice = patterns::for_statement(bad, relation);
        let good: Vec<String> = advice
            .sql
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect::<Vec<_>>()
            .join("\n")
            .split(';')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect();
        assert!(!good.is_empty(), "{bad}: no SQL in {advice:?}");
        for sql in &good {
            assert!(sql.contains("CONCURRENTLY"), "{bad}: advised {sql}");
            // The app's query gets through while the advised statement's
            // session sits between its phases: run it with the app query
            // concurrently, the app under a short lock_timeout.
            let app = common::connect(&conn, &conn.dbname).await;
            app.batch_execute("SET lock_timeout = '2s'").await.unwrap();
            let (ran, served) = tokio::join!(db.batch_execute(sql), app.batch_execute(app_query));
            ran.unwrap_or_else(|e| panic!("{bad}: advised `{sql}` failed: {e}"));
            served.unwrap_or_else(|e| panic!("{bad}: the app's `{app_query}` beside `{sql}`: {e}"));
        }
    }
    // The bad form, in a transaction held open, blocks the same app query.
    let app = common::connect(&conn, &conn.dbname).await;
    app.batch_execute("SET lock_timeout = '200ms'")
        .await
        .unwrap();
    db.batch_execute("CREATE INDEX orders_status_idx ON orders (status)")
        .await
        .unwrap();
    db.batch_execute("BEGIN; REINDEX INDEX orders_status_idx")
        .await
        .unwrap();
    let blocked = app
        .batch_execute("UPDATE orders SET status = 'paid' WHERE id = 7")
        .await;
    assert!(
        blocked
            .as_ref()
            .err()
            .and_then(|e| e.code())
            .map(|c| c.code())
            == Some("55P03"),
        "REINDEX without CONCURRENTLY should block writes: {blocked:?}"
    );
    db.batch_execute("ROLLBACK").await.unwrap();
    server.teardown().await.unwrap();
}

/// ATTACH PARTITION's advice, run: with the advised CHECKs validated first,
/// the attach makes no scan of the table it attaches, nor of the parent's
/// DEFAULT partition; without them, one of each. For a range, one unbounded
/// below, a list that takes NULL (whose rows a `key IS NOT NULL` check
/// would refuse), a range over two columns, a hash partition, and a parent
/// with a DEFAULT partition.
#[tokio::test(flavor = "multi_thread")]
async fn an_attach_after_the_advised_check_skips_its_scan() {
    let server = Backend::start(&BackendOptions::local(&[])).await.unwrap();
    let conn = server.conn().clone();
    let db = common::connect(&conn, &conn.dbname).await;
    db.batch_execute(
        "CREATE TABLE events (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE events_2026 (id bigint, at date NOT NULL);
         INSERT INTO events_2026 SELECT g, '2026-03-01' FROM generate_series(1, 5000) g;
         CREATE TABLE events_2027 (LIKE events_2026);
         INSERT INTO events_2027 SELECT g, '2027-03-01' FROM generate_series(1, 5000) g;
         CREATE TABLE events_old (LIKE events_2026);
         INSERT INTO events_old SELECT g, '2020-03-01' FROM generate_series(1, 5000) g;
         CREATE TABLE regions (id bigint, country text) PARTITION BY LIST (country);
         CREATE TABLE regions_de (id bigint, country text);
         INSERT INTO regions_de SELECT g, CASE WHEN g % 2 = 0 THEN 'de' END
           FROM generate_series(1, 5000) g;
         CREATE TABLE readings (site int NOT NULL, day int NOT NULL, v int)
           PARTITION BY RANGE (site, day);
         CREATE TABLE readings_a (LIKE readings);
         INSERT INTO readings_a SELECT 1 + g % 2, g % 300, g FROM generate_series(1, 5000) g;
         CREATE TABLE hashed (id bigint NOT NULL, v int) PARTITION BY HASH (id);
         CREATE TABLE hashed_1 PARTITION OF hashed FOR VALUES WITH (MODULUS 2, REMAINDER 1);
         CREATE TABLE hashed_0 (LIKE hashed);
         INSERT INTO hashed_0 SELECT g, g FROM generate_series(1, 20000) g
           WHERE satisfies_hash_partition('hashed'::regclass, 2, 0, g::bigint);
         CREATE TABLE logs (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE logs_other PARTITION OF logs DEFAULT;
         INSERT INTO logs SELECT g, '2020-01-01' FROM generate_series(1, 5000) g;
         CREATE TABLE logs_2026 (LIKE logs);
         INSERT INTO logs_2026 SELECT g, '2026-03-01' FROM generate_series(1, 5000) g;
         CREATE TABLE logs_2027 (LIKE logs);",
    )
    .await
    .unwrap();
    // What an attach scans: the difference inside its transaction (the
    // counter also holds earlier transactions' scans not yet flushed).
    // The scans of the partition and of the parent's DEFAULT partition.
    let scans_of = |part: &'static str, attach: String| {
        let db = &db;
        async move {
            let count = format!(
                "SELECT pg_stat_get_xact_numscans('{part}'::regclass), \
                        pg_stat_get_xact_numscans('logs_other'::regclass)"
            );
            db.batch_execute("BEGIN").await.unwrap();
            let before = db.query_one(&count, &[]).await.unwrap();
            db.batch_execute(&attach).await.unwrap();
            let after = db.query_one(&count, &[]).await.unwrap();
            db.batch_execute("COMMIT").await.unwrap();
            let diff = |i: usize| after.get::<_, i64>(i) - before.get::<_, i64>(i);
            (diff(0), diff(1))
        }
    };
    // What run.json `partition_keys` and `default_partitions` hold.
    let column = |c: &[&str]| c.iter().map(|c| c.to_string()).collect::<Vec<_>>();
    let keys = [
        ("events".to_string(), column(&["at"])),
        ("regions".to_string(), column(&["country"])),
        ("readings".to_string(), column(&["site", "day"])),
        ("hashed".to_string(), column(&["id"])),
        ("logs".to_string(), column(&["at"])),
    ]
    .into();
    let defaults = [("logs".to_string(), "logs_other".to_string())].into();
    let known = patterns::Partitioning {
        keys: &keys,
        defaults: &defaults,
    };
    for (part, attach) in [
        ("events_2026", "ALTER TABLE events ATTACH PARTITION events_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"),
        ("events_old", "ALTER TABLE events ATTACH PARTITION events_old FOR VALUES FROM (MINVALUE) TO ('2026-01-01')"),
        ("regions_de", "ALTER TABLE regions ATTACH PARTITION regions_de FOR VALUES IN (NULL, 'de')"),
        ("readings_a", "ALTER TABLE readings ATTACH PARTITION readings_a FOR VALUES FROM (1, 0) TO (2, 300)"),
        ("hashed_0", "ALTER TABLE hashed ATTACH PARTITION hashed_0 FOR VALUES WITH (MODULUS 2, REMAINDER 0)"),
        ("logs_2026", "ALTER TABLE logs ATTACH PARTITION logs_2026 FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')"),
    ] {
        let mut advice = patterns::for_statement(attach, part);
        patterns::with_partitioning(&mut advice, known);
        for sql in advice
            .sql
            .lines()
            .filter(|l| !l.starts_with("--") && !l.contains("ATTACH") && !l.contains("DROP"))
        {
            db.batch_execute(sql)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}\n{}", advice.sql));
        }
        assert_eq!(
            scans_of(part, attach.to_string()).await,
            (0, 0),
            "{}",
            advice.sql
        );
    }
    let bad = "ALTER TABLE events ATTACH PARTITION events_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')";
    assert_eq!(
        scans_of("events_2027", bad.to_string()).await,
        (1, 0),
        "the bad form scans"
    );
    let bad = "ALTER TABLE logs ATTACH PARTITION logs_2027 FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')";
    assert_eq!(
        scans_of("logs_2027", bad.to_string()).await,
        (1, 1),
        "the bad form scans the DEFAULT partition too"
    );
    server.teardown().await.unwrap();
}

/// The advice's SQL is built from the statement's own names: it must run
/// as written where those are schema-qualified, quoted, mixed-case or
/// reserved words, as PostgreSQL renders them in locks.csv.
#[tokio::test(flavor = "multi_thread")]
async fn advised_sql_runs_as_written_on_qualified_and_quoted_names() {
    let server = Backend::start(&BackendOptions::local(&[])).await.unwrap();
    let conn = server.conn().clone();
    let db = common::connect(&conn, &conn.dbname).await;
    db.batch_execute(
        r#"CREATE SCHEMA app;
         CREATE TABLE app.customers (id bigint PRIMARY KEY);
         INSERT INTO app.customers SELECT g FROM generate_series(1, 1000) g;
         CREATE TABLE app.orders (id bigint NOT NULL, note text, "order" int);
         INSERT INTO app.orders SELECT g, 'n' || g, g FROM generate_series(1, 1000) g;
         CREATE SCHEMA "App Data";
         CREATE TABLE "App Data"."Order Items" (id bigint NOT NULL, "Note" text);
         INSERT INTO "App Data"."Order Items" SELECT g, 'N' || g FROM generate_series(1, 1000) g;
         CREATE TABLE "App Data"."Events" (id bigint, at date NOT NULL) PARTITION BY RANGE (at);
         CREATE TABLE "App Data"."Events 2026" PARTITION OF "App Data"."Events"
             FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');"#,
    )
    .await
    .unwrap();
    let (orders, items) = ("app.orders", r#""App Data"."Order Items""#);
    let cases = [
        (
            "ALTER TABLE app.orders ADD CONSTRAINT orders_note_uq UNIQUE (note, id)",
            orders,
        ),
        ("ALTER TABLE app.orders ADD PRIMARY KEY (id)", orders),
        (
            r#"ALTER TABLE app.orders ADD CONSTRAINT "Positive" CHECK ("order" > 0)"#,
            orders,
        ),
        (
            r#"ALTER TABLE app.orders ADD CONSTRAINT "Cust FK" FOREIGN KEY ("order") REFERENCES app.customers (id)"#,
            orders,
        ),
        (
            r#"ALTER TABLE app.orders ALTER COLUMN "order" SET NOT NULL"#,
            orders,
        ),
        (
            r#"ALTER TABLE "App Data"."Order Items" ALTER COLUMN "Note" SET NOT NULL"#,
            items,
        ),
        (
            r#"ALTER TABLE "App Data"."Order Items" ADD CONSTRAINT "Note uq" UNIQUE ("Note", id)"#,
            items,
        ),
        (
            r#"ALTER TABLE "App Data"."Order Items" ADD COLUMN "Made At" timestamptz DEFAULT clock_timestamp() NOT NULL"#,
            items,
        ),
        // NOT NULL before DEFAULT, the usual spelling: the column is added
        // nullable, backfilled, then made NOT NULL (QA: the advice added it
        // NOT NULL without a default, which fails on rows that exist).
        (
            "ALTER TABLE app.orders ADD COLUMN public_id uuid NOT NULL DEFAULT gen_random_uuid()",
            orders,
        ),
    ];
    let mut advised: Vec<(String, String)> = cases
        .iter()
        .map(|(bad, rel)| (bad.to_string(), patterns::for_statement(bad, rel).sql))
        .collect();
    let index = r#"CREATE INDEX "By Day" ON "App Data"."Events" (at)"#;
    let per_partition = patterns::for_partitioned(
        index,
        r#""App Data"."Events""#,
        &[r#""App Data"."Events 2026""#],
    );
    advised.push((index.to_string(), per_partition.sql));
    for (bad, sql) in &advised {
        // One statement a line; the batches' bounds made concrete.
        for line in sql.lines().filter(|l| !l.trim_start().starts_with("--")) {
            let statement = line
                .split("; --")
                .next()
                .unwrap()
                .replace("$1", "0")
                .replace("$2", "1000000");
            if let Err(e) = db.batch_execute(&statement).await {
                panic!(
                    "advice for `{bad}`:\n{sql}\n`{statement}` failed: {}",
                    pgrehearse::pg::error_text(&e)
                );
            }
        }
    }
    server.teardown().await.unwrap();
}
