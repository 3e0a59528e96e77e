//! The workload init proposes from pg_stat_statements: statements whose
//! normalized text does not parse as is, and statements that are no traffic.

use super::{backend_url, init, local_server, seeded};

#[tokio::test(flavor = "multi_thread")]
async fn typed_literals_become_casts_and_one_off_statements_are_left_out() {
    let server = local_server(&[("shared_preload_libraries", "pg_stat_statements")]).await;
    let c = common_client(&server).await;
    c.batch_execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, at timestamptz NOT NULL, day date NOT NULL);
         INSERT INTO events SELECT i, '2024-01-01'::timestamptz + i * interval '1 hour',
             '2024-01-01'::date + i / 24 FROM generate_series(1, 500) i;
         ANALYZE events;
         CREATE EXTENSION pg_stat_statements;
         SELECT pg_stat_statements_reset();",
    )
    .await
    .unwrap();
    // pg_stat_statements keeps these as `interval $1`, `date $2` and
    // `timestamp with time zone $3`, which do not parse.
    for _ in 0..3 {
        c.batch_execute(
            "SELECT count(*) FROM events WHERE at > now() - interval '7 days' \
             AND day >= date '2024-01-05' AND at < timestamp with time zone '2030-01-01'",
        )
        .await
        .unwrap();
        c.batch_execute("SELECT * FROM events WHERE id = 3")
            .await
            .unwrap();
    }
    // A one-off: run once by hand.
    c.batch_execute("SELECT max(at) FROM events WHERE id > 400")
        .await
        .unwrap();
    let text = init(&backend_url(&server), &[]);
    let doc: toml::Value = toml::from_str(&text).unwrap();
    let queries = doc["workload"]["query"].as_array().unwrap();
    let sql: Vec<&str> = queries.iter().map(|q| q["sql"].as_str().unwrap()).collect();
    let cast = "SELECT count(*) FROM events WHERE at > now() - $1::text::interval \
                AND day >= $2::date AND at < $3::timestamp with time zone";
    // As many calls each: by their text.
    assert_eq!(sql, ["SELECT * FROM events WHERE id = $1", cast], "{text}");
    assert!(
        text.contains("interval $1"),
        "the comment names the original\n{text}"
    );
    // The interval's value is not in pg_stat_statements: a constant.
    let params = queries[1]["params"].to_string();
    assert!(params.contains("value = \"1 day\""), "{params}");
    assert!(!text.contains("max(at)"), "{text}");
    // The header says what was left out, and why.
    let header: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("# ")).collect();
    let header = header.join(" ");
    assert!(
        header.contains("Left out of the workload: 1 statement(s)")
            && header.contains("called only once"),
        "{text}"
    );
    // The statement as written prepares on the seeded copy.
    let copy = seeded(server.conn(), &text).await;
    copy.prepare(cast)
        .await
        .expect("the rewritten statement prepares");
    server.teardown().await.unwrap();
}

async fn common_client(server: &pgrehearse::backend::Backend) -> tokio_postgres::Client {
    super::common::connect(server.conn(), &server.conn().dbname).await
}
