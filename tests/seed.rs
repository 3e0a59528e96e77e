//! Seeding against a real Postgres: PGREHEARSE_TEST_URL when set, else an
//! ephemeral local cluster (see tests/common).

mod common;

use pgrehearse::scenario::gen::Value;
use pgrehearse::scenario::{ColumnGen, ColumnPlan, Gen, IntDist, Scenario, TablePlan};
use pgrehearse::seed::{self, LoadMode, SeedOptions};
use pgrehearse::Error;

fn col(name: &str, kind: Gen, null_fraction: f64) -> ColumnPlan {
    ColumnPlan {
        name: name.into(),
        gen: ColumnGen {
            kind,
            null_fraction,
        },
    }
}

fn scenario(tables: Vec<TablePlan>, seed_sql: Vec<String>) -> Scenario {
    Scenario {
        seed_sql,
        ..Scenario::seed_only("seed-test", tables)
    }
}

const CUSTOMERS: u64 = 70_000; // two chunks, the second partial
const ORDERS: u64 = 150_000; // three chunks

/// Two tables with a foreign key between them, every generator kind, every
/// supported column type.
fn shop() -> Scenario {
    let customers = TablePlan {
        name: "customers".into(),
        rows: CUSTOMERS,
        create: Some(
            "CREATE TYPE tier AS ENUM ('free', 'pro', 'team');
                 CREATE TABLE customers (
                   id bigint PRIMARY KEY, name text NOT NULL, code varchar(20),
                   tier tier NOT NULL, active boolean, signup timestamptz NOT NULL,
                   ext_id uuid NOT NULL, props jsonb, score double precision,
                   small smallint, balance numeric(12, 2), region char(4),
                   created_by text DEFAULT current_user)"
                .into(),
        ),
        after_seed: vec!["CREATE INDEX customers_signup ON customers (signup)".into()],
        columns: vec![
            col("id", Gen::Sequence { start: 1 }, 0.0),
            col("name", Gen::Words { min: 1, max: 3 }, 0.0),
            col(
                "code",
                Gen::Text {
                    min_len: 4,
                    max_len: 12,
                },
                0.25,
            ),
            col(
                "tier",
                Gen::Choice {
                    values: vec!["free".into(), "pro".into(), "team".into()],
                    weights: vec![7, 2, 1],
                },
                0.0,
            ),
            col("active", Gen::Bool { p_true: 0.8 }, 0.0),
            col(
                "signup",
                Gen::Timestamp {
                    from_us: 1_704_067_200_000_000, // 2024-01-01
                    to_us: 1_767_225_600_000_000,   // 2026-01-01
                },
                0.0,
            ),
            col("ext_id", Gen::Uuid, 0.0),
            col("props", Gen::Json { keys: 2 }, 0.1),
            col("score", Gen::Float { min: 0.0, max: 5.0 }, 0.0),
            col(
                "small",
                Gen::Int {
                    min: -100,
                    max: 100,
                    dist: IntDist::Uniform,
                    s: 1.0,
                },
                0.0,
            ),
            col(
                "balance",
                Gen::Float {
                    min: -1000.0,
                    max: 1000.0,
                },
                0.0,
            ),
            col("region", Gen::Constant { value: "eu".into() }, 0.0),
        ],
    };
    let orders = TablePlan {
        name: "orders".into(),
        rows: ORDERS,
        create: Some(
            "CREATE TABLE orders (
                   id bigserial PRIMARY KEY,
                   customer_id bigint NOT NULL REFERENCES customers (id),
                   total_cents integer NOT NULL, placed date NOT NULL,
                   status text NOT NULL, note text)"
                .into(),
        ),
        after_seed: vec!["CREATE INDEX orders_customer ON orders (customer_id)".into()],
        columns: vec![
            col("id", Gen::Sequence { start: 1 }, 0.0),
            col(
                "customer_id",
                Gen::ForeignKey {
                    table: "customers".into(),
                    rows: CUSTOMERS,
                },
                0.0,
            ),
            col(
                "total_cents",
                Gen::Int {
                    min: 100,
                    max: 100_000,
                    dist: IntDist::Zipf,
                    s: 1.1,
                },
                0.0,
            ),
            col(
                "placed",
                Gen::Timestamp {
                    from_us: 1_704_067_200_000_000,
                    to_us: 1_767_225_600_000_000,
                },
                0.0,
            ),
            col(
                "status",
                Gen::Constant {
                    value: "new".into(),
                },
                0.0,
            ),
            col(
                "note",
                Gen::Text {
                    min_len: 0,
                    max_len: 30,
                },
                0.5,
            ),
        ],
    };
    scenario(
        vec![customers, orders],
        // Leaves dead tuples behind for VACUUM to clean up.
        vec!["UPDATE orders SET status = 'paid' WHERE id % 10 = 0".into()],
    )
}

async fn checksum(client: &tokio_postgres::Client, table: &str) -> String {
    client
        .query_one(
            &format!("SELECT md5(string_agg(t::text, ',' ORDER BY id)) FROM {table} t"),
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

async fn scalar_i64(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

async fn scalar_f64(client: &tokio_postgres::Client, sql: &str) -> f64 {
    client.query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_generator_loads_exact_rows_then_after_seed_and_vacuum() {
    let server = common::test_server().await;
    let c = server.client().await;
    let report = seed::seed(server.conn(), &shop(), 42, false).await.unwrap();
    assert_eq!(report.rows("customers"), Some(CUSTOMERS));
    assert_eq!(report.rows("orders"), Some(ORDERS));
    assert!(report.bytes > 0);

    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM customers").await,
        CUSTOMERS as i64
    );
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM orders").await,
        ORDERS as i64
    );

    // Sequence: exactly 1..=rows.
    let r = c
        .query_one(
            "SELECT min(id), max(id), count(DISTINCT id) FROM customers",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        (r.get::<_, i64>(0), r.get::<_, i64>(1)),
        (1, CUSTOMERS as i64)
    );
    assert_eq!(r.get::<_, i64>(2), CUSTOMERS as i64);
    // Ranges, on the server's side of the wire.
    let in_range = c
        .query_one(
            "SELECT bool_and(score BETWEEN 0 AND 5), bool_and(small BETWEEN -100 AND 100),
                    bool_and(balance BETWEEN -1000 AND 1000),
                    bool_and(signup >= '2024-01-01' AND signup <= '2026-01-01'),
                    bool_and(length(code) BETWEEN 4 AND 12),
                    bool_and(array_length(string_to_array(name, ' '), 1) BETWEEN 1 AND 3),
                    bool_and(region = 'eu  '), bool_and(created_by = current_user),
                    bool_and(props ? 'k0' AND props ? 'k1')
             FROM customers",
            &[],
        )
        .await
        .unwrap();
    for i in 0..9 {
        assert!(in_range.get::<_, bool>(i), "customers check #{i}");
    }
    let r = c
        .query_one(
            "SELECT bool_and(total_cents BETWEEN 100 AND 100000),
                    bool_and(customer_id BETWEEN 1 AND 70000),
                    bool_and(placed BETWEEN '2024-01-01' AND '2026-01-01'),
                    bool_and(length(note) <= 30)
             FROM orders",
            &[],
        )
        .await
        .unwrap();
    for i in 0..4 {
        assert!(r.get::<_, bool>(i), "orders check #{i}");
    }
    // Weighted choice into an enum, null fractions, zipf skew.
    let free = scalar_f64(
        &c,
        "SELECT avg((tier = 'free')::int)::float8 FROM customers",
    )
    .await;
    assert!((free - 0.7).abs() < 0.02, "free share {free}");
    let null_code = scalar_f64(&c, "SELECT avg((code IS NULL)::int)::float8 FROM customers").await;
    assert!(
        (null_code - 0.25).abs() < 0.02,
        "null code share {null_code}"
    );
    let null_note = scalar_f64(&c, "SELECT avg((note IS NULL)::int)::float8 FROM orders").await;
    assert!(
        (null_note - 0.5).abs() < 0.02,
        "null note share {null_note}"
    );
    let hottest = scalar_i64(
        &c,
        "SELECT total_cents::int8 FROM orders GROUP BY 1 ORDER BY count(*) DESC LIMIT 1",
    )
    .await;
    assert_eq!(hottest, 100, "zipf: min is the hottest value");

    // The bigserial's sequence was moved past the seeded keys.
    c.execute(
        "INSERT INTO orders (customer_id, total_cents, placed, status) VALUES (1, 1, now(), 'x')",
        &[],
    )
    .await
    .unwrap();

    // seed_sql and after_seed ran.
    assert_eq!(
        scalar_i64(&c, "SELECT count(*) FROM orders WHERE status = 'paid'").await,
        (ORDERS / 10) as i64
    );
    assert_eq!(
        scalar_i64(
            &c,
            "SELECT count(*) FROM pg_indexes WHERE indexname IN ('customers_signup', 'orders_customer')"
        )
        .await,
        2
    );
    // VACUUM (FREEZE, ANALYZE): every page all-visible again after the
    // UPDATE's dead tuples, tuples frozen, statistics present.
    for t in ["customers", "orders"] {
        let r = c
            .query_one(
                "SELECT relpages, relallvisible, age(relfrozenxid), reltuples::int8
                 FROM pg_class WHERE relname = $1",
                &[&t],
            )
            .await
            .unwrap();
        let (pages, visible): (i32, i32) = (r.get(0), r.get(1));
        assert!(
            pages > 0 && visible == pages,
            "{t}: {visible} of {pages} pages all-visible"
        );
        assert!(
            r.get::<_, i32>(2) < 50,
            "{t}: relfrozenxid age {}",
            r.get::<_, i32>(2)
        );
        assert!(r.get::<_, i64>(3) > 0, "{t}: analyzed");
    }
    drop(c);
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_data_whatever_the_split_other_seed_other_data() {
    let server = common::test_server().await;
    let c = server.client().await;
    // The foreign key constraint is checked in the first test; without it
    // the four loads here take a fraction of the time.
    let mut plan = shop();
    plan.tables[1].create = plan.tables[1]
        .create
        .as_ref()
        .map(|c| c.replace("REFERENCES customers (id)", ""));
    let reset = "DROP TABLE orders, customers; DROP TYPE tier";
    let mut sums = Vec::new();
    for (seed, load, workers) in [
        (7, LoadMode::Freeze, 2),
        (7, LoadMode::Parallel, 3),
        (7, LoadMode::Parallel, 1),
        (8, LoadMode::Auto, 2),
    ] {
        let opts = SeedOptions {
            workers: Some(workers),
            load,
            ..SeedOptions::new(seed)
        };
        let report = seed::seed_with(server.conn(), &plan, &opts).await.unwrap();
        if load != LoadMode::Auto {
            assert!(report.tables.iter().all(|t| t.load == load), "{report:?}");
        }
        sums.push((
            checksum(&c, "customers").await,
            checksum(&c, "orders").await,
        ));
        c.batch_execute(reset).await.unwrap();
    }
    assert_eq!(sums[0], sums[1], "freeze vs 3 parallel connections");
    assert_eq!(sums[0], sums[2], "freeze vs 1 connection");
    assert_ne!(sums[0].0, sums[3].0, "another seed, other customers");
    assert_ne!(sums[0].1, sums[3].1, "another seed, other orders");
    drop(c);
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeded_database_clones_as_a_template() {
    let server = common::test_server().await;
    let conn = server.conn().clone();
    let plan = scenario(
        vec![TablePlan {
            name: "t".into(),
            rows: 1000,
            create: Some("CREATE TABLE t (id int PRIMARY KEY, v text)".into()),
            after_seed: vec![],
            columns: vec![
                col("id", Gen::Sequence { start: 1 }, 0.0),
                col("v", Gen::Words { min: 1, max: 2 }, 0.0),
            ],
        }],
        vec![],
    );
    seed::seed(&conn, &plan, 1, false).await.unwrap();
    let source = server.client().await; // a session the clone must end
    let before = checksum(&source, "t").await;
    let copy = format!("seedclone_{}", std::process::id());
    seed::clone_database(&conn, &conn.dbname, &copy)
        .await
        .unwrap();
    let cloned = common::connect(&conn, &copy).await;
    assert_eq!(checksum(&cloned, "t").await, before);
    drop(cloned);
    seed::drop_database(&conn, &copy).await.unwrap();
    let admin = common::connect(&conn, "postgres").await;
    let left = scalar_i64(
        &admin,
        &format!("SELECT count(*) FROM pg_database WHERE datname = '{copy}'"),
    )
    .await;
    assert_eq!(left, 0);
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_columns_are_scenario_errors_naming_table_and_column() {
    let server = common::test_server().await;
    let table = |name: &str, create: &str, columns| TablePlan {
        name: name.into(),
        rows: 10,
        create: Some(create.into()),
        after_seed: vec![],
        columns,
    };
    let cases = [
        (
            table(
                "a",
                "CREATE TABLE a (id int)",
                vec![col("nope", Gen::Uuid, 0.0)],
            ),
            "no column \"nope\"",
        ),
        (
            table(
                "b",
                "CREATE TABLE b (addr inet)",
                vec![col("addr", Gen::Uuid, 0.0)],
            ),
            "type inet",
        ),
        (
            table(
                "c",
                "CREATE TABLE c (n int)",
                vec![col(
                    "n",
                    Gen::Constant {
                        value: "abc".into(),
                    },
                    0.0,
                )],
            ),
            "not an integer",
        ),
        (
            table(
                "d",
                "CREATE TABLE d (n smallint)",
                vec![col("n", Gen::Uuid, 0.0)],
            ),
            "int2",
        ),
        (
            table(
                "g",
                "CREATE TABLE g (id int)",
                vec![
                    col("id", Gen::Sequence { start: 1 }, 0.0),
                    col("ID", Gen::Sequence { start: 1 }, 0.0),
                ],
            ),
            "g.id already has a generator, under `id`",
        ),
    ];
    for (t, want) in cases {
        let name = t.name.clone();
        let err = seed::seed(server.conn(), &scenario(vec![t], vec![]), 1, false)
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2, "{err}");
        let Error::Scenario(problems) = &err else {
            panic!("{err:?}")
        };
        let msg = err.to_string();
        assert!(msg.contains(want), "{name}: {msg}");
        assert!(problems[0].field.contains("columns."), "{msg}");
        assert!(msg.contains(&name), "{msg}");
    }
    // A value the type refuses only past some row (a sequence beyond
    // smallint) is found while seeding, named by its table's index (so it
    // is located in the file) and column.
    let mut big = table(
        "e",
        "CREATE TABLE e (n smallint)",
        vec![col("n", Gen::Sequence { start: 32_760 }, 0.0)],
    );
    big.rows = 100;
    let err = seed::seed(server.conn(), &scenario(vec![big], vec![]), 1, false)
        .await
        .unwrap_err();
    assert_eq!(err.exit_code(), 2, "{err}");
    let Error::Scenario(problems) = &err else {
        panic!("{err:?}")
    };
    assert_eq!(problems[0].field, "table[0].columns.n", "{err}");
    assert!(problems[0].message.contains("e.n: "), "{err}");
    // Rows the table's own rules refuse (a CHECK, a UNIQUE, a key, named
    // by PostgreSQL or by the user, on the column or the table, or a
    // unique index): located at the first generated column of the rule,
    // found in the catalog by the rule's name.
    let two = || Gen::Int {
        min: 1,
        max: 2,
        dist: IntDist::Uniform,
        s: 1.0,
    };
    let seq = |start| Gen::Sequence { start };
    let constant = |v: &str| Gen::Constant { value: v.into() };
    let cases: Vec<(&str, &str, Vec<ColumnPlan>, &str, &str)> = vec![
        (
            "ck",
            "CREATE TABLE ck (amount int CHECK (amount > 0))",
            vec![col("amount", seq(-5), 0.0)],
            "amount",
            "violates check constraint \"ck_amount_check\" (23514)",
        ),
        (
            "uq",
            "CREATE TABLE uq (code int UNIQUE)",
            vec![col("code", two(), 0.0)],
            "code",
            "(23505)",
        ),
        (
            "named",
            "CREATE TABLE named (id int, price int CONSTRAINT positive CHECK (price > 0))",
            vec![col("id", seq(1), 0.0), col("price", seq(-5), 0.0)],
            "price",
            "(constraint positive, on price)",
        ),
        (
            "tlevel",
            "CREATE TABLE tlevel (id int, lo int, hi int, CHECK (lo < hi))",
            vec![
                col("id", seq(1), 0.0),
                col("lo", seq(10), 0.0),
                col("hi", seq(1), 0.0),
            ],
            "lo",
            "on lo, hi)",
        ),
        (
            "pk",
            "CREATE TABLE pk (note text, id int PRIMARY KEY)",
            vec![col("note", constant("x"), 0.0), col("id", two(), 0.0)],
            "id",
            "(constraint pk_pkey, on id)",
        ),
        (
            "ix",
            "CREATE TABLE ix (id int, code int); CREATE UNIQUE INDEX ix_code ON ix (code)",
            vec![col("id", seq(1), 0.0), col("code", two(), 0.0)],
            "code",
            "(constraint ix_code, on code)",
        ),
        (
            // A constant column becomes a default for a frozen load and
            // does not travel: still the one located.
            "konst",
            "CREATE TABLE konst (id int, qty int CHECK (qty >= 0))",
            vec![col("id", seq(1), 0.0), col("qty", constant("-1"), 0.0)],
            "qty",
            "(constraint konst_qty_check, on qty)",
        ),
    ];
    for (name, create, cols, col_name, want) in cases {
        let mut t = table(name, create, cols);
        t.rows = 50;
        let err = seed::seed(server.conn(), &scenario(vec![t], vec![]), 1, false)
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2, "{name}: {err}");
        let Error::Scenario(problems) = &err else {
            panic!("{err:?}")
        };
        assert_eq!(
            problems[0].field,
            format!("table[0].columns.{col_name}"),
            "{err}"
        );
        assert!(problems[0].message.contains(want), "{name}: {err}");
        assert!(
            problems[0].message.contains("make the generators fit them"),
            "{err}"
        );
    }
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_convert_to_the_parameter_type_the_server_asks_for() {
    let server = common::test_server().await;
    let c = server.client().await;
    let ts = Value::Timestamp(1_712_345_678_123_456);
    let text = |s: &str| Value::Text(s.into());
    let cases: Vec<(&str, Value, &str)> = vec![
        ("$1::int2::text", Value::Int(-7), "-7"),
        ("$1::int4::text", text("42"), "42"),
        ("$1::int8::text", Value::Int(1 << 40), "1099511627776"),
        ("$1::float4::text", Value::Float(1.5), "1.5"),
        ("$1::float8::text", Value::Int(3), "3"),
        ("$1::numeric::text", text("12345.678"), "12345.678"),
        ("$1::numeric::text", text("-0.0001"), "-0.0001"),
        ("$1::numeric::text", text("100000000.00"), "100000000.00"),
        (
            "$1::numeric::text",
            Value::Int(-9_000_000_000),
            "-9000000000",
        ),
        ("$1::numeric::text", Value::Float(0.25), "0.25"),
        ("$1::numeric::text", text("0"), "0"),
        ("$1::numeric::text", text("NaN"), "NaN"),
        (
            "$1::text",
            Value::Uuid([0x11; 16]),
            "11111111-1111-1111-1111-111111111111",
        ),
        ("$1::varchar(5)", text("hello"), "hello"),
        ("$1::bool::text", text("yes"), "true"),
        ("$1::bool::text", Value::Bool(false), "false"),
        (
            "($1::timestamptz AT TIME ZONE 'UTC')::text",
            ts.clone(),
            "2024-04-05 19:34:38.123456",
        ),
        (
            "$1::timestamp::text",
            ts.clone(),
            "2024-04-05 19:34:38.123456",
        ),
        ("$1::date::text", ts.clone(), "2024-04-05"),
        ("$1::date::text", text("1999-12-31"), "1999-12-31"),
        (
            "$1::uuid::text",
            text("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        ),
        ("$1::jsonb->>'a'", Value::Json("{\"a\": 5}".into()), "5"),
        ("$1::json->>'a'", Value::Json("{\"a\": 6}".into()), "6"),
        ("coalesce($1::int4::text, 'null')", Value::Null, "null"),
    ];
    for (expr, value, want) in cases {
        let got: String = c
            .query_one(&format!("SELECT {expr}"), &[&value])
            .await
            .unwrap_or_else(|e| panic!("{expr} with {value:?}: {e:?}"))
            .get(0);
        assert_eq!(got, want, "{expr} with {value:?}");
    }
    for (expr, value, why) in [
        ("$1::date", Value::Int(3), "date"),
        ("$1::int2", Value::Int(1 << 20), "int2"),
        ("$1::int4", Value::Float(2.5), "int4"),
        ("$1::inet", text("10.0.0.1"), "inet"),
    ] {
        let err = c
            .query_one(&format!("SELECT {expr}"), &[&value])
            .await
            .unwrap_err();
        let chain = format!("{err:?}").to_lowercase();
        assert!(chain.contains(why), "{expr}: {chain}");
    }
    // An integer into a uuid is the uuid of that integer (how `fk` meets a
    // uuid key that `sequence` filled).
    let got: String = c
        .query_one("SELECT $1::uuid::text", &[&Value::Int(7)])
        .await
        .unwrap()
        .get(0);
    let want = pgrehearse::scenario::gen::shape::uuid_of_int(7);
    assert_eq!(got, uuid::Uuid::from_bytes(want).to_string());
    drop(c);
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_sql_that_refuses_a_transaction_block_still_loads() {
    let server = common::test_server().await;
    let c = server.client().await;
    let plan = scenario(
        vec![TablePlan {
            name: "k".into(),
            rows: 70_000,
            create: Some("CREATE TABLE k (id int, v text); CREATE INDEX CONCURRENTLY k_v ON k (v)"
                .into()),
            after_seed: vec![
                "CREATE INDEX CONCURRENTLY k_id ON k (id); CREATE INDEX CONCURRENTLY k_id_v ON k (id, v)"
                    .into(),
            ],
            columns: vec![
                col("id", Gen::Sequence { start: 1 }, 0.0),
                col("v", Gen::Uuid, 0.0),
            ],
        }],
        vec![],
    );
    let report = seed::seed(server.conn(), &plan, 3, false).await.unwrap();
    // CONCURRENTLY cannot share the load's transaction: no FREEZE then.
    assert_eq!(report.tables[0].load, LoadMode::Parallel);
    assert_eq!(scalar_i64(&c, "SELECT count(*) FROM k").await, 70_000);
    let valid = scalar_i64(
        &c,
        "SELECT count(*) FROM pg_index i JOIN pg_class x ON x.oid = i.indexrelid
         WHERE x.relname IN ('k_v', 'k_id', 'k_id_v') AND i.indisvalid",
    )
    .await;
    assert_eq!(valid, 3);
    drop(c);
    server.teardown().await;
}

/// A sequence the seeded key columns draw from by their DEFAULT, not owned
/// by them (one shared by two tables, as `init` writes it from a schema that
/// has one), is moved past the keys of every table seeded: an app's INSERT
/// gets a key none of them holds. Before, only serial and identity
/// sequences moved, and a shared one stayed at 1 (23505 on the first
/// INSERT). A text column whose default draws from it is left be.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_sequence_moves_past_the_keys_of_every_table() {
    let server = common::test_server().await;
    let c = server.client().await;
    let table = |name: &str, rows: u64, create: &str| TablePlan {
        name: name.into(),
        rows,
        create: Some(create.into()),
        after_seed: vec![],
        columns: vec![
            col("id", Gen::Sequence { start: 1 }, 0.0),
            col("code", Gen::Uuid, 0.0),
        ],
    };
    let plan = scenario(
        vec![
            table(
                "people",
                300,
                "CREATE SEQUENCE party_seq;
                 CREATE TABLE people (id bigint PRIMARY KEY DEFAULT nextval('party_seq'),
                                      code text DEFAULT 'P' || nextval('party_seq'))",
            ),
            // Seeded after, with fewer keys: the sequence must not go back.
            table(
                "firms",
                100,
                "CREATE TABLE firms (id int PRIMARY KEY DEFAULT nextval('party_seq'),
                                     code text DEFAULT 'F' || nextval('party_seq'))",
            ),
        ],
        vec![],
    );
    seed::seed(server.conn(), &plan, 5, false).await.unwrap();
    c.batch_execute("INSERT INTO people DEFAULT VALUES; INSERT INTO firms DEFAULT VALUES")
        .await
        .unwrap();
    assert_eq!(
        scalar_i64(&c, "SELECT max(id)::int8 FROM firms").await,
        303,
        "after people's 300 keys (each INSERT draws two: id and code)"
    );
    drop(c);
    server.teardown().await;
}
