//! Column shapes init must keep within what its generators can hold: a
//! `distinct` no larger than the integers of its range, unique keys that
//! stay unique and inside their type.

use super::{common, count, init, seed_scaled, seeded, source_url, source_with};

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

/// 2000 orders of 1 to 8 lines each: (order_id, line_no) is unique, but
/// neither column is.
const ORDER_LINES: &str = "
CREATE TABLE orders (id int PRIMARY KEY);
INSERT INTO orders SELECT generate_series(1, 2000);
CREATE TABLE lines (
    order_id int NOT NULL REFERENCES orders (id),
    line_no smallint NOT NULL,
    qty int NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
INSERT INTO lines SELECT o, l, 1 + (o * l) % 5
FROM generate_series(1, 2000) o, generate_series(1, 8) l WHERE l <= 1 + (o * 7) % 8;
ANALYZE;";

#[tokio::test(flavor = "multi_thread")]
async fn a_composite_key_keeps_its_columns_values_and_never_repeats() {
    let server = source_with(ORDER_LINES).await;
    let text = init(&source_url(&server), &[]);
    let source = server.client().await;
    let want = count(&source, "lines").await;
    let c = seeded(server.conn(), &text).await;
    let row = c
        .query_one(
            "SELECT count(*), count(DISTINCT line_no), min(line_no), max(line_no), \
                    count(DISTINCT order_id), \
                    (SELECT count(*) FROM pg_constraint WHERE conname = 'lines_pkey') \
             FROM lines",
            &[],
        )
        .await
        .unwrap();
    let (rows, lines, lo, hi, orders, pk): (i64, i64, i16, i16, i64, i64) = (
        row.get(0),
        row.get(1),
        row.get(2),
        row.get(3),
        row.get(4),
        row.get(5),
    );
    // No row lost to deduplication, the key built, line numbers 1..=8.
    assert_eq!((rows, pk), (want, 1), "{text}");
    assert!(
        lines <= 8 && lo >= 1 && hi <= 8,
        "{lines} {lo}..{hi}\n{text}"
    );
    assert!(orders > 1000, "{orders}\n{text}");
    server.teardown().await;
}

/// The key of 1 to 8 lines per order at five times the rows (--rows): its
/// order set is a share of the rows, resolved coprime with the 8 line
/// numbers, so no combination repeats and no row is deleted. Before, fixed
/// set sizes held the source's combinations only: most of the rows went as
/// duplicates.
#[tokio::test(flavor = "multi_thread")]
async fn a_composite_key_holds_at_five_times_the_rows() {
    let server = source_with(ORDER_LINES).await;
    let text = init(&source_url(&server), &[]);
    assert!(
        text.contains("a share of the rows that follows --rows"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = super::check(dir.path(), &text);
    let over = pgrehearse::scenario::Overrides {
        scale: Some(5.0),
        ..Default::default()
    };
    let (conn, _, asked) = seed_scaled(server.conn(), &path, "big", &over).await;
    let want = asked.iter().find(|(t, _)| t == "lines").unwrap().1;
    let c = common::connect(&conn, "big").await;
    let rows = count(&c, "lines").await;
    assert_eq!(rows as u64, want, "{text}");
    server.teardown().await;
}

/// Exactly two lines to each of 1000 orders: sets of 1000 orders and 2 line
/// numbers share a factor, so no coprime pair covers the 2000 rows; 997
/// orders hold 1994 of them, and the 6 others are deleted as duplicates
/// (before, with 998 orders at most and no near cover, 715 were). The seed's
/// report and its completion marker say what the table holds.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_two_lines_to_every_order_keeps_its_rows() {
    let server = source_with(
        "CREATE TABLE orders (id int PRIMARY KEY);
         INSERT INTO orders SELECT generate_series(1, 1000);
         CREATE TABLE lines (
             order_id int NOT NULL REFERENCES orders (id),
             line_no int NOT NULL,
             PRIMARY KEY (order_id, line_no)
         );
         INSERT INTO lines SELECT o, l FROM generate_series(1, 1000) o, generate_series(1, 2) l;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    assert!(
        text.contains("so the last 6 are deleted as duplicates"),
        "{text}"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = super::check(dir.path(), &text);
    let (conn, report, _) = seed_scaled(server.conn(), &path, "copy", &Default::default()).await;
    let c = common::connect(&conn, "copy").await;
    let rows = count(&c, "lines").await;
    assert_eq!(rows, 1994, "{text}");
    assert_eq!(report.rows("lines"), Some(1994));
    // And the seed's summary line says so, without -v.
    let lines = report.tables.iter().find(|t| t.name == "lines").unwrap();
    assert_eq!(
        pgrehearse::seed::staging::changed(lines),
        "  (2000 loaded: seed_sql or after_seed deleted 6)"
    );
    server.teardown().await;
}

/// A short text column whose every value differs (n_distinct -1, 2 to 5
/// characters, no unique index): texts long enough to hold them all, a set
/// that follows --rows. Before, the room of its shortest length (62² + 1)
/// capped it at a fixed 3845: 77 % distinct here, 7.7 % at ten times the
/// rows.
#[tokio::test(flavor = "multi_thread")]
async fn short_distinct_text_stays_distinct_at_any_rows() {
    let server = source_with(
        "CREATE TABLE a (id int PRIMARY KEY, name text);
         INSERT INTO a SELECT g, 'n' || g FROM generate_series(1, 5000) g;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    let line = text
        .lines()
        .find(|l| l.starts_with("name = {"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        line.contains("distinct = \"100%\"") || !line.contains("distinct"),
        "{line}"
    );
    let c = seeded(server.conn(), &text).await;
    let (rows, names): (i64, i64) = {
        let r = c
            .query_one("SELECT count(*), count(DISTINCT name) FROM a", &[])
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert_eq!((rows, names), (5000, 5000), "{line}");
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_unique_smallint_stays_within_smallint() {
    // Analyzed at 1000 rows of 31000..=31999, then 2000 more rows: its
    // statistics put 3000 keys from 31000, past 32767.
    let server = source_with(
        "CREATE TABLE codes (id int PRIMARY KEY, code smallint NOT NULL UNIQUE);
         INSERT INTO codes SELECT i, 30999 + i FROM generate_series(1, 1000) i;
         ANALYZE codes;
         INSERT INTO codes SELECT i, -i FROM generate_series(1001, 3000) i;",
    )
    .await;
    // reltuples 3000, pg_stats still the first 1000 rows'.
    server
        .client()
        .await
        .batch_execute("VACUUM codes")
        .await
        .unwrap();
    let text = init(&source_url(&server), &[]);
    assert!(text.contains("rows = 3000"), "{text}");
    let c = seeded(server.conn(), &text).await;
    let n: i64 = c
        .query_one("SELECT count(DISTINCT code) FROM codes", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3000, "{text}");
    // The last of 3000 keys from 29768 is 32767.
    assert!(
        text.contains("code = { gen = \"sequence\", start = 29768 }"),
        "{text}"
    );
    server.teardown().await;
}
