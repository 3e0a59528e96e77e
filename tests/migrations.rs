//! Users' migration files on a real PostgreSQL: the statements the splitter
//! finds are the statements the server itself finds (pg_stat_statements
//! records each statement of a multi-statement query under the server's own
//! boundaries), every layout's whole history applies the way its tool
//! applies it (psql itself for Sqitch and plain files) into the same schema,
//! and the traps and refusals the loader reports are real failures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::migrations::{self, Execution, GolangMigrateOptions, Layout, MigrationFile, Spec};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/migrations")
        .join(name)
}

fn load(dir: &str) -> migrations::MigrationSet {
    migrations::load(&Spec::new(fixture(dir))).unwrap_or_else(|e| panic!("{dir}: {e}"))
}

/// A session whose objects go to `schema` (created here).
async fn session(server: &common::TestServer, schema: &str) -> Client {
    let c = server.client().await;
    c.batch_execute(&format!(
        "CREATE SCHEMA {schema}; SET search_path TO {schema}"
    ))
    .await
    .expect("schema");
    c
}

async fn reset_statements(c: &Client) {
    c.batch_execute("SELECT public.pg_stat_statements_reset()")
        .await
        .expect("reset pg_stat_statements");
}

/// The statements the server ran in this database since the last reset,
/// one entry per call, without transaction control and our own queries.
async fn server_statements(c: &Client) -> Vec<String> {
    let rows = c
        .query(
            "SELECT query, calls FROM public.pg_stat_statements \
             WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
               AND query NOT LIKE '%pg_stat_statements%'",
            &[],
        )
        .await
        .expect("read pg_stat_statements");
    let mut out = Vec::new();
    for r in rows {
        let text: String = r.get(0);
        let calls: i64 = r.get(1);
        let code = &text[pgrehearse::sql::statement_spans(&text).spans[0].code_start..];
        if matches!(
            code.to_ascii_uppercase().as_str(),
            "BEGIN" | "COMMIT" | "END"
        ) {
            continue;
        }
        out.extend(std::iter::repeat_n(text, calls as usize));
    }
    out
}

/// Equal, or equal where the server shows `$n` for a constant (servers
/// from 16 on normalize constants of utility statements too).
fn same_statement(server: &str, ours: &str) -> bool {
    if server == ours {
        return true;
    }
    let mut pattern = String::from("^");
    let mut rest = server;
    while let Some(i) = rest.find('$') {
        let digits = rest[i + 1..].bytes().take_while(u8::is_ascii_digit).count();
        pattern.push_str(&regex::escape(&rest[..i]));
        if digits > 0 {
            pattern.push_str(".+?");
        } else {
            pattern.push_str("\\$");
        }
        rest = &rest[i + 1 + digits..];
    }
    pattern.push_str(&regex::escape(rest));
    pattern.push('$');
    regex::RegexBuilder::new(&pattern)
        .dot_matches_new_line(true)
        .build()
        .is_ok_and(|re| re.is_match(ours))
}

fn assert_same_statements(mut server: Vec<String>, file: &MigrationFile) {
    let ours: Vec<&str> = file.statements().map(|s| s.sql.as_str()).collect();
    for st in &ours {
        let Some(i) = server.iter().position(|s| same_statement(s, st)) else {
            panic!(
                "{}: the server never saw the statement\n{st}\nit saw:\n{server:#?}",
                file.name
            );
        };
        server.remove(i);
    }
    assert!(
        server.is_empty(),
        "{}: the server saw more statements: {server:#?}",
        file.name
    );
}

/// The text the tool sends as ONE simple query, and whether it wraps it in
/// BEGIN/COMMIT; `None` when the file cannot be sent so (psql
/// meta-commands, or a statement that must run on its own).
fn as_one_query(layout: Layout, file: &MigrationFile) -> Option<(String, bool)> {
    let text = std::fs::read_to_string(&file.path).unwrap();
    let one_statement = file.statements().count() == 1;
    let all_transactional = file
        .segments
        .iter()
        .all(|s| s.execution == Execution::Transaction);
    match layout {
        // What these tools do.
        Layout::GolangMigrate | Layout::Prisma => Some((text, false)),
        Layout::Dbmate => {
            let up = text.find("-- migrate:up").unwrap();
            let down = text.find("-- migrate:down").unwrap();
            let section = text[up..down].to_string();
            let wrap = !section
                .lines()
                .next()
                .unwrap()
                .contains("transaction:false");
            Some((section, wrap))
        }
        // Flyway sends statement by statement in one transaction: as one
        // query they share an implicit one, the same effect.
        Layout::Flyway if all_transactional || one_statement => Some((text, false)),
        Layout::Sqitch | Layout::Plain
            if (all_transactional || one_statement)
                && !text.lines().any(|l| l.starts_with('\\')) =>
        {
            Some((text, false))
        }
        _ => None,
    }
}

/// Run a file's segments the way the rehearsal executor will.
async fn apply_segments(c: &Client, file: &MigrationFile) {
    for seg in &file.segments {
        let tx = seg.execution == Execution::Transaction;
        if tx {
            c.batch_execute("BEGIN").await.unwrap();
        }
        for st in &seg.statements {
            c.batch_execute(&st.sql)
                .await
                .unwrap_or_else(|e| panic!("{}: {e}\n{}", st.location, st.sql));
        }
        if tx {
            c.batch_execute("COMMIT").await.unwrap();
        }
    }
}

/// The schema every layout's history builds.
async fn check_schema(c: &Client, schema: &str, layout: &str) {
    let one = |sql: &'static str| async move {
        c.query_one(sql, &[&schema])
            .await
            .unwrap_or_else(|e| panic!("{schema}: {sql}: {e}"))
    };
    for table in ["accounts", "orders", "audit;log"] {
        let r = c
            .query_one(
                "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL",
                &[&schema, &table],
            )
            .await
            .unwrap();
        assert!(r.get::<_, bool>(0), "{schema}: table {table}");
    }
    let r = one("SELECT count(*) FROM information_schema.columns \
         WHERE table_schema = $1 AND table_name = 'orders' AND column_name = 'status'")
    .await;
    assert_eq!(r.get::<_, i64>(0), 1, "{schema}: orders.status");
    let r = one(
        "SELECT coalesce(bool_and(i.indisvalid), false), count(*) FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname IN ('orders_account_id_idx', 'orders_status_idx')",
    )
    .await;
    assert_eq!(
        (r.get::<_, bool>(0), r.get::<_, i64>(1)),
        (true, 2),
        "{schema}: both indexes, valid"
    );
    let r = one(
        "SELECT count(*) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = $1 AND c.relname = 'orders' AND t.tgname = 'orders_touch'",
    )
    .await;
    assert_eq!(r.get::<_, i64>(0), 1, "{schema}: trigger");
    let r =
        one("SELECT obj_description(format('%I.orders', $1::text)::regclass, 'pg_class')").await;
    assert_eq!(
        r.get::<_, Option<String>>(0).as_deref(),
        Some("orders; one row per order"),
        "{schema}"
    );
    let r = one(
        "SELECT string_agg(\"what happened\", '|') FROM \"audit;log\" WHERE $1::text IS NOT NULL",
    )
    .await;
    assert_eq!(
        r.get::<_, Option<String>>(0).as_deref(),
        Some("added orders.status; default 'new'"),
        "{schema}"
    );
    // The trigger works: an update touches updated_at.
    c.batch_execute(
        "INSERT INTO accounts (email) VALUES ('ann@example.org');
         INSERT INTO orders (account_id, total_cents, updated_at)
             SELECT id, 100, now() - interval '1 day' FROM accounts;
         UPDATE orders SET total_cents = 200;",
    )
    .await
    .unwrap_or_else(|e| panic!("{schema}: {e}"));
    let r = one("SELECT bool_and(updated_at > now() - interval '1 hour') FROM orders WHERE $1::text IS NOT NULL").await;
    assert!(
        r.get::<_, bool>(0),
        "{schema}: the trigger touched updated_at"
    );
    if layout == "flyway" {
        let r = one("SELECT to_regclass(format('%I.order_totals', $1::text)) IS NOT NULL").await;
        assert!(r.get::<_, bool>(0), "{schema}: the repeatable's view");
    }
}

/// psql, the tool Sqitch runs and plain files are written for.
fn psql(server: &common::TestServer, schema: &str, file: &Path, single_transaction: bool) {
    let bin = pgrehearse::backend::local::find_binaries(None)
        .expect("psql: the PostgreSQL client binaries")
        .dir
        .join("psql");
    let conn = server.conn();
    let mut cmd = Command::new(bin);
    cmd.args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", &conn.host])
        .args([
            "-p",
            &conn.port.to_string(),
            "-U",
            &conn.user,
            "-d",
            &conn.dbname,
        ])
        .env("PGOPTIONS", format!("-c search_path={schema}"))
        .env("PGPASSWORD", conn.password.clone().unwrap_or_default());
    if single_transaction {
        cmd.arg("--single-transaction");
    }
    let out = cmd.arg("--file").arg(file).output().expect("run psql");
    assert!(
        out.status.success(),
        "psql --file {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn expect_sqlstate(c: &Client, sql: &str, state: &SqlState, what: &str) {
    let e = c.batch_execute(sql).await.expect_err(what);
    assert_eq!(e.code(), Some(state), "{what}: {e}");
    c.batch_execute("ROLLBACK").await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn statement_boundaries_match_the_server_and_histories_apply_the_tools_way() {
    let server = common::test_server_with(&[
        ("shared_preload_libraries", "pg_stat_statements"),
        ("pg_stat_statements.track_utility", "on"),
    ])
    .await;
    let admin = server.client().await;
    admin
        .batch_execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .await
        .expect("this test needs pg_stat_statements in shared_preload_libraries");

    // Files sent as one query (the boundaries checked against the server's)
    // per layout; the others run segment by segment.
    let expected_one_query = [
        ("flyway", 5),
        ("golang-migrate", 4),
        ("dbmate", 4),
        ("sqitch", 4),
        ("prisma", 4),
        ("plain", 3),
        // goose sends piece by piece: applied segment by segment.
        ("goose", 0),
    ];
    for (dir, want) in expected_one_query {
        let set = load(dir);
        let schema = dir.replace('-', "_");
        let c = session(&server, &schema).await;
        let mut one_query = 0;
        for file in &set.files {
            match as_one_query(set.layout, file) {
                Some((text, wrap)) => {
                    reset_statements(&c).await;
                    if wrap {
                        c.batch_execute("BEGIN").await.unwrap();
                    }
                    c.batch_execute(&text)
                        .await
                        .unwrap_or_else(|e| panic!("{dir}/{}: {e}", file.name));
                    if wrap {
                        c.batch_execute("COMMIT").await.unwrap();
                    }
                    assert_same_statements(server_statements(&c).await, file);
                    one_query += 1;
                }
                None => apply_segments(&c, file).await,
            }
        }
        assert_eq!(one_query, want, "{dir}: files checked as one query");
        check_schema(&c, &schema, dir).await;
    }

    // psql itself, for the layouts it runs.
    for dir in ["sqitch", "plain"] {
        let set = load(dir);
        let schema = format!("{}_psql", dir);
        let c = session(&server, &schema).await;
        for file in &set.files {
            let single = file.segments.len() == 1
                && file.segments[0]
                    .reason
                    .starts_with("a plain file runs in one transaction");
            psql(&server, &schema, &file.path, single);
        }
        check_schema(&c, &schema, dir).await;
    }

    // The traps are real: golang-migrate's files in name order fail.
    let c = session(&server, "traps").await;
    let gm = load("golang-migrate");
    let text = |f: &str| std::fs::read_to_string(fixture("golang-migrate").join(f)).unwrap();
    c.batch_execute(&text("1_accounts_and_orders.up.sql"))
        .await
        .unwrap();
    assert!(
        gm.files.iter().position(|f| f.name.starts_with("9_"))
            < gm.files.iter().position(|f| f.name.starts_with("10_"))
    );
    let e = c
        .batch_execute(&text("10_order_status_index.up.sql"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some(&SqlState::UNDEFINED_COLUMN), "{e}");

    // What the loader refuses, PostgreSQL refuses: CONCURRENTLY in a
    // multi-statement query, in dbmate's transaction, REINDEX CONCURRENTLY in
    // Flyway's transaction.
    let bad = |f: &str| std::fs::read_to_string(fixture("bad").join(f)).unwrap();
    let refused = [
        bad("golang-migrate-concurrently/1_note.up.sql"),
        format!(
            "BEGIN; {}",
            bad("dbmate-concurrently/20240101000000_note_index.sql")
        ),
        format!("BEGIN; {}", bad("flyway-reindex/V1__reindex.sql")),
    ];
    for sql in &refused {
        expect_sqlstate(&c, sql, &SqlState::ACTIVE_SQL_TRANSACTION, sql).await;
    }
    // ... and its fix works: x-multi-statement sends them one by one.
    let mut spec = Spec::new(fixture("bad/golang-migrate-concurrently"));
    spec.options.golang_migrate = GolangMigrateOptions {
        multi_statement: true,
    };
    let set = migrations::load(&spec).unwrap();
    apply_segments(&c, &set.files[0]).await;
    let r = c
        .query_one(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'traps.orders_note_idx'::regclass",
            &[],
        )
        .await
        .unwrap();
    assert!(r.get::<_, bool>(0));

    server.teardown().await;
}
