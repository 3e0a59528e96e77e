//! Views: a migration that alters a column a view reads fails, so the
//! rehearsal needs the source's views.

use super::{init, seeded, source_url, source_with};

#[tokio::test(flavor = "multi_thread")]
async fn views_are_created_after_the_tables_and_those_left_out_are_named() {
    let server = source_with(
        "CREATE TABLE customers (id int PRIMARY KEY, country text NOT NULL);
         CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers (id),
                              total int NOT NULL);
         CREATE TABLE audit (id int PRIMARY KEY);
         INSERT INTO customers SELECT i, (ARRAY['DE', 'FR', 'US'])[1 + i % 3] FROM generate_series(1, 100) i;
         INSERT INTO orders SELECT i, 1 + i % 100, (i * 37) % 1000 FROM generate_series(1, 1000) i;
         ANALYZE;
         CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 500;
         -- Named to come first, it reads the view above.
         CREATE VIEW a_big_by_country AS
             SELECT c.country, count(*) AS n FROM big_orders o JOIN customers c ON c.id = o.customer_id
             GROUP BY c.country;
         CREATE MATERIALIZED VIEW totals AS SELECT customer_id, sum(total) AS total FROM orders GROUP BY 1;
         CREATE VIEW audit_v AS SELECT * FROM audit;
         CREATE FUNCTION twice(int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT 2 * $1';
         CREATE VIEW doubled AS SELECT twice(total) FROM orders;
         -- An extension's views are its, not the schema's: not named.
         CREATE EXTENSION pg_stat_statements;",
    )
    .await;
    let text = init(&source_url(&server), &["--tables", "orders"]);
    let header: Vec<&str> = text.lines().map_while(|l| l.strip_prefix("# ")).collect();
    let header = header.join(" ");
    assert!(
        header.contains("Views (big_orders, totals, a_big_by_country) are created in seed_sql"),
        "{text}"
    );
    assert!(!header.contains("pg_stat_statements"), "{text}");
    assert!(
        header.contains("audit_v (it reads audit, which the scenario does not have)")
            && header
                .contains("doubled (it calls twice(integer), which the scenario does not create)"),
        "{text}"
    );
    let c = seeded(server.conn(), &text).await;
    let big: i64 = c
        .query_one("SELECT sum(n)::int8 FROM a_big_by_country", &[])
        .await
        .unwrap()
        .get(0);
    let totals: i64 = c
        .query_one("SELECT count(*) FROM totals", &[])
        .await
        .unwrap()
        .get(0);
    assert!(big > 100 && totals > 50, "{big} {totals}");
    // What the rehearsal is for: the view holds the column.
    let err = c
        .batch_execute("ALTER TABLE orders DROP COLUMN total")
        .await
        .unwrap_err();
    assert!(format!("{err:?}").contains("depend"), "{err:?}");
    server.teardown().await;
}
