//! Foreign keys with skew: the hottest parents keep their shares in the
//! copy, whatever the key's type and however few parents there are.

use super::{backend_url, count, init, local_server, seeded, source_url, source_with};

/// The shares of the most referenced keys of `table.column`, most first.
async fn top_shares(c: &tokio_postgres::Client, table: &str, column: &str) -> Vec<f64> {
    let rows = c
        .query(
            &format!(
                "SELECT (count(*)::float8 / sum(count(*)) OVER ())::float8 FROM {table} \
                 GROUP BY {column} ORDER BY 1 DESC LIMIT 5"
            ),
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

fn close(got: &[f64], want: &[f64], by: f64) -> bool {
    got.len() == want.len() && got.iter().zip(want).all(|(g, w)| (g - w).abs() <= by)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_skewed_foreign_key_to_a_uuid_key_seeds_with_its_skew() {
    // 60% of the children reference one parent, 20% another, the rest
    // spread over 197 more.
    let server = source_with(
        "CREATE TABLE parent (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), n int NOT NULL);
         INSERT INTO parent (n) SELECT i FROM generate_series(1, 200) i;
         CREATE TABLE child (id int PRIMARY KEY, parent_id uuid NOT NULL REFERENCES parent (id));
         INSERT INTO child SELECT i, p.id FROM generate_series(1, 5000) i
             JOIN parent p ON p.n = CASE WHEN i % 10 < 6 THEN 1 WHEN i % 10 < 8 THEN 2
                                         ELSE 3 + i % 197 END;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    let source = server.client().await;
    let want = top_shares(&source, "child", "parent_id").await;
    let c = seeded(server.conn(), &text).await;
    let got = top_shares(&c, "child", "parent_id").await;
    assert!(
        close(&got[..2], &want[..2], 0.02),
        "{got:?} vs {want:?}\n{text}"
    );
    server.teardown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn skew_to_a_small_parent_is_kept_key_by_key() {
    // Ten teams, all in pg_stats' common values: 40%, 20%, 10%, and 30%
    // over the other seven.
    let server = source_with(
        "CREATE TABLE team (id int PRIMARY KEY);
         INSERT INTO team SELECT generate_series(1, 10);
         CREATE TABLE player (id int PRIMARY KEY, team_id int NOT NULL REFERENCES team (id));
         INSERT INTO player SELECT i, CASE WHEN i % 100 < 40 THEN 1 WHEN i % 100 < 60 THEN 2
                                           WHEN i % 100 < 70 THEN 3 ELSE 4 + i % 7 END
         FROM generate_series(1, 7000) i;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    let source = server.client().await;
    let want = top_shares(&source, "player", "team_id").await;
    let c = seeded(server.conn(), &text).await;
    let got = top_shares(&c, "player", "team_id").await;
    assert!(close(&got, &want, 0.015), "{got:?} vs {want:?}\n{text}");
    server.teardown().await;
}

/// A unique key of a skewed foreign key and a column unique by itself
/// (`(customer_id, placed_at)`, placed_at never repeating): placed_at is
/// made unique, so the key holds at any --rows and customer_id keeps its
/// skew. Before, both became evenly used sets of fixed sizes: the hottest
/// customer's 30 % became 0.2 %, and 10 × the rows broke the key.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_with_a_column_unique_by_itself_keeps_the_others_skew() {
    let server = source_with(
        "CREATE TABLE customer (id int PRIMARY KEY);
         INSERT INTO customer SELECT generate_series(1, 500);
         CREATE TABLE orders (
             id int PRIMARY KEY,
             customer_id int NOT NULL REFERENCES customer (id),
             placed_at timestamptz NOT NULL,
             UNIQUE (customer_id, placed_at)
         );
         INSERT INTO orders SELECT i, CASE WHEN i % 10 < 3 THEN 1 ELSE 2 + i % 499 END,
             '2024-01-01'::timestamptz + i * interval '1 minute'
         FROM generate_series(1, 8000) i;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &["--tables", "orders"]);
    assert!(
        text.contains("unique by itself in the source") && !text.contains("DELETE FROM orders"),
        "{text}"
    );
    let source = server.client().await;
    let want = top_shares(&source, "orders", "customer_id").await;
    let c = seeded(server.conn(), &text).await;
    let got = top_shares(&c, "orders", "customer_id").await;
    assert!(
        close(&got[..1], &want[..1], 0.03),
        "{got:?} vs {want:?}\n{text}"
    );
    let rows = count(&c, "orders").await;
    assert_eq!(rows, 8000);
    server.teardown().await;
}

/// A multi-tenant key (tenant_id, id), ids counted per tenant, tenant 1
/// holding 15 % of the rows: id never repeats (one sequence) and tenant_id
/// keeps its skew. Before, sets sized for the combination gave every tenant
/// the same share (QA: 14.9 % became 0.3 %).
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_skew_survives_its_composite_key() {
    let server = source_with(
        "CREATE TABLE tenants (id int PRIMARY KEY);
         INSERT INTO tenants SELECT generate_series(1, 300);
         CREATE TABLE users (
             tenant_id int NOT NULL REFERENCES tenants (id),
             id int NOT NULL,
             PRIMARY KEY (tenant_id, id)
         );
         INSERT INTO users
         SELECT t, row_number() OVER (PARTITION BY t ORDER BY i)
         FROM (SELECT i, CASE WHEN i % 100 < 15 THEN 1 ELSE 2 + i % 299 END AS t
               FROM generate_series(1, 10000) i) s;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &["--tables", "users"]);
    let source = server.client().await;
    let want = top_shares(&source, "users", "tenant_id").await;
    let c = seeded(server.conn(), &text).await;
    let got = top_shares(&c, "users", "tenant_id").await;
    assert!(
        close(&got[..1], &want[..1], 0.03),
        "{got:?} vs {want:?}\n{text}"
    );
    let rows = count(&c, "users").await;
    assert_eq!(rows, 10_000, "{text}");
    server.teardown().await;
}

/// A foreign key of two columns, (tenant_id, user_id) → users (tenant_id,
/// id): each column copies its value from one drawn user (`fk` with
/// `column`), so the key is written in the CREATE and checked as rows load,
/// the tenant's skew comes along, and a lookup by the whole key draws its
/// parameters from one user too. Before, the columns were drawn one by one,
/// 99 % of the rows named no user and the key was added NOT VALID.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_of_two_columns_copies_one_parent_row() {
    let server = local_server(&[("shared_preload_libraries", "pg_stat_statements")]).await;
    let source = super::common::connect(server.conn(), &server.conn().dbname).await;
    source
        .batch_execute(
            "CREATE TABLE tenants (id int PRIMARY KEY);
             INSERT INTO tenants SELECT generate_series(1, 40);
             CREATE TABLE users (
                 tenant_id int NOT NULL REFERENCES tenants (id),
                 id bigint NOT NULL,
                 PRIMARY KEY (tenant_id, id)
             );
             INSERT INTO users SELECT CASE WHEN i % 5 = 0 THEN 1 ELSE 1 + i % 40 END, i
             FROM generate_series(1, 3000) i;
             CREATE TABLE documents (
                 id bigint PRIMARY KEY,
                 tenant_id int NOT NULL,
                 user_id bigint,
                 FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id)
             );
             INSERT INTO documents SELECT d, u.tenant_id, u.id
             FROM generate_series(1, 12000) d JOIN users u ON u.id = 1 + d % 3000;
             ANALYZE;
             CREATE EXTENSION pg_stat_statements;
             SELECT pg_stat_statements_reset();",
        )
        .await
        .unwrap();
    for _ in 0..3 {
        source
            .query(
                "SELECT * FROM users WHERE tenant_id = $1 AND id = $2",
                &[&1i32, &5i64],
            )
            .await
            .unwrap();
    }
    let text = init(&backend_url(&server), &[]);
    super::assert_contains_all(
        &text,
        &[
            "FOREIGN KEY (tenant_id, user_id) REFERENCES users(tenant_id, id)\n",
            "tenant_id = { gen = \"fk\", table = \"users\", column = \"tenant_id\" }",
            "user_id = { gen = \"fk\", table = \"users\", column = \"id\" }",
            "params = [\n    { gen = \"fk\", table = \"users\", column = \"tenant_id\" },\n    { gen = \"fk\", table = \"users\", column = \"id\" },\n]",
        ],
    );
    assert!(!text.contains("NOT VALID"), "{text}");
    let c = seeded(server.conn(), &text).await;
    assert_eq!(count(&c, "documents").await, 12_000, "{text}");
    let want = top_shares(&source, "documents", "tenant_id").await;
    let got = top_shares(&c, "documents", "tenant_id").await;
    assert!(
        close(&got[..1], &want[..1], 0.03),
        "{got:?} vs {want:?}\n{text}"
    );
    server.teardown().await.unwrap();
}

/// Foreign keys of several columns that copying cannot simply fill, each as
/// QA found it: two keys into one parent (from / to accounts) named apart,
/// so a transfer does not go from an account to itself; a self-reference,
/// NOT VALID (its columns would copy themselves), where it was added VALID
/// and failed the seed; a parent that deletes repeated keys after its load,
/// whose orphans are deleted before the key is added VALID; and a foreign
/// key into a partitioned table, on which init looped for good.
#[tokio::test(flavor = "multi_thread")]
async fn keys_that_copying_cannot_simply_fill() {
    let server = source_with(
        "CREATE TABLE accounts (tenant_id int NOT NULL, id int NOT NULL, PRIMARY KEY (tenant_id, id));
         INSERT INTO accounts SELECT t, i FROM generate_series(1, 20) t, generate_series(1, 100) i;
         CREATE TABLE transfers (id bigint PRIMARY KEY,
             from_tenant int NOT NULL, from_account int NOT NULL,
             to_tenant int NOT NULL, to_account int NOT NULL,
             FOREIGN KEY (from_tenant, from_account) REFERENCES accounts (tenant_id, id),
             FOREIGN KEY (to_tenant, to_account) REFERENCES accounts (tenant_id, id));
         INSERT INTO transfers SELECT g, 1 + g % 20, 1 + (g * 7) % 100, 1 + (g * 3) % 20,
             1 + (g * 11) % 100 FROM generate_series(1, 6000) g;
         CREATE TABLE folders (tenant_id int NOT NULL, id int NOT NULL, parent_id int,
             PRIMARY KEY (tenant_id, id),
             FOREIGN KEY (tenant_id, parent_id) REFERENCES folders (tenant_id, id));
         INSERT INTO folders SELECT t, i, CASE WHEN i > 1 THEN i / 2 END
             FROM generate_series(1, 10) t, generate_series(1, 100) i;
         CREATE TABLE orders (id int PRIMARY KEY);
         INSERT INTO orders SELECT generate_series(1, 2000);
         CREATE TABLE order_lines (order_id int NOT NULL REFERENCES orders, line_no int NOT NULL,
             PRIMARY KEY (order_id, line_no));
         INSERT INTO order_lines SELECT o, l FROM generate_series(1, 2000) o,
             generate_series(1, 1 + o % 5) l;
         CREATE TABLE shipments (id int PRIMARY KEY, order_id int NOT NULL, line_no int NOT NULL,
             FOREIGN KEY (order_id, line_no) REFERENCES order_lines);
         INSERT INTO shipments SELECT row_number() OVER (), order_id, line_no FROM order_lines
             WHERE (order_id + line_no) % 3 > 0;
         CREATE TABLE events (id bigint PRIMARY KEY) PARTITION BY HASH (id);
         CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (modulus 2, remainder 0);
         CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (modulus 2, remainder 1);
         INSERT INTO events SELECT generate_series(1, 500);
         CREATE TABLE event_tags (event_id bigint NOT NULL REFERENCES events (id), tag int);
         INSERT INTO event_tags SELECT id, id % 7 FROM events;
         ANALYZE;",
    )
    .await;
    let text = init(&source_url(&server), &[]);
    super::assert_contains_all(
        &text,
        &[
            "key = \"transfers_from_tenant_from_account_fkey\"",
            "key = \"transfers_to_tenant_to_account_fkey\"",
            "folders_tenant_id_parent_id_fkey is added NOT VALID",
            "DELETE FROM shipments c WHERE",
        ],
    );
    let c = seeded(server.conn(), &text).await;
    let same: f64 = c
        .query_one(
            "SELECT avg((from_tenant = to_tenant AND from_account = to_account)::int)::float8 \
             FROM transfers",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        same < 0.05,
        "{same} of the transfers go to their own account\n{text}"
    );
    let valid: Vec<(String, bool)> = c
        .query(
            "SELECT conname::text, convalidated FROM pg_constraint WHERE contype = 'f' \
             AND conparentid = 0 ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (name, want) in [
        ("transfers_from_tenant_from_account_fkey", true),
        ("transfers_to_tenant_to_account_fkey", true),
        ("folders_tenant_id_parent_id_fkey", false),
        ("shipments_order_id_line_no_fkey", true),
        ("event_tags_event_id_fkey", true),
    ] {
        assert!(
            valid.contains(&(name.to_string(), want)),
            "{name} validated {want}: {valid:?}\n{text}"
        );
    }
    server.teardown().await;
}
