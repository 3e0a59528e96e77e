//! The scenario library really runs on Postgres: every file seeds (at a small
//! --rows), every step's SQL executes in its transaction mode, and after each
//! phase every query of the apps live in it still prepares and executes.
//! A safe variant must never break a live app; the naive rename must (that is
//! what it demonstrates). No workload timing here: that is the engine's tests.
//!
//! Real Postgres: PGREHEARSE_TEST_URL when set, else a local cluster.

mod common;

use std::path::{Path, PathBuf};

use pgrehearse::scenario::{self, Overrides, Scenario, StepAction};
use pgrehearse::seed;
use rand::SeedableRng;

fn library() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

/// Prepare and execute every query an app in `apps` sends, with generated
/// parameters; the failures as "query: sqlstate message".
async fn exercise(client: &tokio_postgres::Client, s: &Scenario, apps: &[String]) -> Vec<String> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut failures = Vec::new();
    for q in &s.workload.queries {
        if !q.apps.iter().any(|a| apps.contains(a)) {
            continue;
        }
        let values: Vec<_> = q.params.iter().map(|p| p.generate(0, &mut rng)).collect();
        let params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let result = match client.prepare(&q.sql).await {
            Ok(stmt) => client.execute(&stmt, &params).await.map(|_| ()),
            Err(e) => Err(e),
        };
        if let Err(e) = result {
            let code = e.code().map(|c| c.code().to_string()).unwrap_or_default();
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or(e.to_string());
            failures.push(format!("{}: {code} {msg}", q.name));
        }
    }
    failures
}

async fn run_step(
    client: &tokio_postgres::Client,
    action: &StepAction,
    transaction: bool,
) -> Result<(), String> {
    let stmts: Vec<String> = match action {
        StepAction::Sql(stmts) => stmts.clone(),
        // The library is inline SQL; a file's statements in order, should
        // one come (tests/migrations_run.rs runs files the executor's way).
        StepAction::File(f) => f.statements().map(|s| s.sql.clone()).collect(),
        // One UPDATE for the whole range: this test checks the SQL, the
        // executor's batching has its own tests.
        StepAction::Backfill(b) => vec![format!(
            "UPDATE {} SET {}{}",
            b.table,
            b.set,
            b.where_clause
                .as_ref()
                .map_or(String::new(), |w| format!(" WHERE {w}"))
        )],
    };
    let wrap = transaction && matches!(action, StepAction::Sql(_));
    let mut all = Vec::new();
    if wrap {
        all.push("BEGIN".to_string());
    }
    all.extend(stmts);
    if wrap {
        all.push("COMMIT".to_string());
    }
    for sql in &all {
        if let Err(e) = client.batch_execute(sql).await {
            let _ = client.batch_execute("ROLLBACK").await;
            let msg = e
                .as_db_error()
                .map(|d| d.message().to_string())
                .unwrap_or(e.to_string());
            return Err(format!("{sql}: {msg}"));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_scenarios_run_and_safe_variants_keep_live_apps_working() {
    let files = library();
    assert!(files.len() >= 14, "{files:?}");
    let server = common::test_server().await;
    let admin = server.client().await;
    let mut problems = Vec::new();
    for file in &files {
        let ov = Overrides {
            rows: Some(2_000),
            ..Overrides::default()
        };
        let s = scenario::load(file, &ov).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let db = format!("pgr_lib_{}", s.name.replace('-', "_"));
        admin
            .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
            .await
            .unwrap();
        admin
            .batch_execute(&format!("CREATE DATABASE {db}"))
            .await
            .unwrap();
        let mut conn = server.conn().clone();
        conn.dbname = db.clone();
        seed::seed(&conn, &s, 1, false)
            .await
            .unwrap_or_else(|e| panic!("{}: seeding failed: {e}", s.name));
        let client = common::connect(&conn, &db).await;

        let mut app_failures = exercise(&client, &s, &s.phases[0].apps).await;
        for phase in &s.phases {
            for step in &phase.steps {
                if let Err(e) = run_step(&client, &step.action, step.transaction).await {
                    problems.push(format!(
                        "{}: phase {} step {}: {e}",
                        s.name, phase.name, step.name
                    ));
                }
            }
            app_failures.extend(exercise(&client, &s, &phase.apps).await);
        }
        drop(client);
        admin
            .batch_execute(&format!("DROP DATABASE {db}"))
            .await
            .unwrap();

        if s.name == "rename-column-naive" {
            // The point of the naive rename: some live app version breaks.
            if !app_failures.iter().any(|f| f.contains("42703")) {
                problems.push(format!(
                    "{}: expected live apps to break, got {app_failures:?}",
                    s.name
                ));
            }
        } else if !app_failures.is_empty() {
            problems.push(format!(
                "{}: live app queries failed: {app_failures:?}",
                s.name
            ));
        }
    }
    server.teardown().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
