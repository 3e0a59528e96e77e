//! Column shapes init must keep within what its generators can hold: a
//! `distinct` no larger than the integers of its range, unique keys that
//! stay unique and inside their type.

use super::{init, seeded, source_url, source_with};

#[tokio::test(flavor = "multi_thread")]
async fn distinct_never_exceeds_the_integers_of_the_range() {
    // 600 rows: value 1 in 540 of them, the other 60 spread over 2..=50
    // (49 values). pg_stats says 50 distinct values, 1 most common: the
    // rest's 49 values reach only a tenth of the rows, so the set that
    // would cover them all is larger than the 49 integers of 2..=50.
    let server = source_with(
        "CREATE TABLE t (id int PRIMARY KEY, v smallint NOT NULL, w int NOT NULL);
         INSERT INTO t SELECT i,
             CASE WHEN i <= 540 THEN 1 ELSE 2 + (i * 3) % 49 END,
             CASE WHEN i <= 540 THEN 7 ELSE 100 + (i * 3) % 49 END
         FROM generate_series(1, 600) i;
         ANALYZE t;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    let c = seeded(server.conn(), &text).await;
    let row = c
        .query_one(
            "SELECT count(DISTINCT v), min(v), max(v), count(DISTINCT w) FROM t",
            &[],
        )
        .await
        .unwrap();
    let (v, lo, hi, w): (i64, i16, i16, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert!((1..=50).contains(&lo) && hi <= 50, "{lo}..{hi}\n{text}");
    assert!(v > 20 && v <= 50 && w > 20 && w <= 50, "{v} {w}\n{text}");
    server.teardown().await;
}
