//! The url backend on a server shared with others, as a non-superuser owner
//! role: the URL database's settings reach the scratch database one by one,
//! other roles stay out of what pgrehearse creates, and a database that
//! cannot be dropped is said with who holds it.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pgrehearse::backend::ConnInfo;
use pgrehearse::record::RunRecord;

/// A local cluster (superuser connection `sc`) with a role `owner` (LOGIN
/// CREATEDB, password `pw`, nothing else) owning database `db`, a plain
/// role `other_app`, and `extra` run as the superuser after; returns the
/// URL the owner rehearses through.
async fn owned_database(sc: &ConnInfo, owner: &str, db: &str, extra: &str) -> String {
    let su = common::connect(sc, "postgres").await;
    // One statement at a time: CREATE DATABASE refuses a transaction block.
    let setup = [
        format!("CREATE ROLE {owner} LOGIN CREATEDB PASSWORD 'pw'"),
        "CREATE ROLE other_app LOGIN PASSWORD 'pw'".into(),
        format!("CREATE DATABASE {db} OWNER {owner}"),
    ];
    for sql in setup.iter().map(String::as_str).chain(extra.split(';')) {
        if !sql.trim().is_empty() {
            su.batch_execute(sql).await.unwrap();
        }
    }
    format!("postgres://{owner}:pw@127.0.0.1:{}/{db}", sc.port)
}

/// `pgrehearse run tiny.toml --backend url --database-url URL`, started
/// (not waited for), its run directory under `out`.
fn start_run(url: &str, out: &Path) -> std::process::Child {
    start_scenario(&common::fixture("good/tiny.toml"), url, out)
}

fn start_scenario(scenario: &Path, url: &str, out: &Path) -> std::process::Child {
    Command::new(common::bin())
        .arg("run")
        .arg(scenario)
        .args(["-q", "--backend", "url", "--database-url", url, "--out"])
        .arg(out)
        .env_remove("PGREHEARSE_BACKEND")
        .env_remove("PGREHEARSE_DATABASE_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgrehearse")
}

fn finish(child: std::process::Child) -> (i32, String) {
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn record_in(out: &Path) -> RunRecord {
    let dir = common::run_dir_in(out).expect("a run directory");
    RunRecord::read(&dir).unwrap()
}

/// The newest scratch database (not a template) once one appears.
async fn wait_for_scratch(sc: &ConnInfo) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = common::scratch_databases(sc).await;
        if let Some(db) = found
            .iter()
            .rev()
            .find(|d| !d.starts_with("pgrehearse_tpl_"))
        {
            return db.clone();
        }
        assert!(Instant::now() < deadline, "no scratch database appeared");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn another_roles_setting_does_not_cost_the_databases_lock_timeout() {
    let (server, sc, _) = common::own_server(&[]).await;
    // Another role's setting made first: the order a copy that stopped at
    // its failure would have met it in.
    let url = owned_database(
        &sc,
        "owner_s",
        "db_s",
        "ALTER ROLE other_app IN DATABASE db_s SET statement_timeout = '2s'; \
         ALTER DATABASE db_s SET lock_timeout = '45s'; \
         ALTER DATABASE db_s SET deadlock_timeout = '50ms'",
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_run(&url, out.path()));
    assert_eq!(code, 0, "{stderr}");
    let info = record_in(out.path()).info.unwrap();
    let defaulted: Vec<_> = info
        .steps
        .iter()
        .filter(|s| s.lock_timeout_from.is_some())
        .collect();
    assert!(!defaulted.is_empty(), "{:#?}", info.steps);
    for s in defaulted {
        assert_eq!(s.lock_timeout_ms, Some(45_000.0), "{s:?}\n{stderr}");
    }
    // The setting not copied is named, as role-specific and harmless, on
    // stderr and in run.json.
    let said = |t: &str| {
        t.contains("role-specific setting statement_timeout = 2s of role other_app")
            && t.contains("(42501)")
            && t.contains("connect as owner_s")
    };
    assert!(said(&stderr), "{stderr}");
    assert!(info.warnings.iter().any(|w| said(w)), "{:?}", info.warnings);
    let run_dir = common::run_dir_in(out.path()).unwrap();
    let summary = std::fs::read_to_string(run_dir.join("summary.md")).unwrap();
    assert!(said(&summary), "{summary}");
    // A database-wide setting that decides lock waits, which only a
    // superuser may set, is lost loudly.
    assert!(
        stderr.contains(
            "pgrehearse: WARNING: the database-wide setting deadlock_timeout = 50ms of db_s"
        ) && stderr.contains("verdict may not be production's"),
        "{stderr}"
    );
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn other_roles_stay_out_and_a_held_scratch_database_is_named() {
    let (server, sc, _) = common::own_server(&[]).await;
    let url = owned_database(&sc, "owner_f", "db_f", "").await;
    let out = tempfile::tempdir().unwrap();
    let child = start_run(&url, out.path());
    let scratch = wait_for_scratch(&sc).await;
    // A monitoring agent as another plain role cannot get in ...
    let other = ConnInfo {
        user: "other_app".into(),
        password: Some("pw".into()),
        ..sc.clone()
    };
    let Err(refused) = other.connect_to(&scratch, "monitor-agent").await else {
        panic!("other_app may connect to the scratch database {scratch}");
    };
    let code = refused.as_db_error().map(|d| d.code().code().to_string());
    assert_eq!(code.as_deref(), Some("42501"), "{refused:?}");
    // ... a superuser's session can, and the owner may not end it: the
    // drop is retried, then said with the session and the command.
    let su = sc.connect_to(&scratch, "su-agent").await.unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let pid: i32 = su
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    for want in [
        format!("could not drop database {scratch}"),
        "(42501)".to_string(),
        format!("pid {pid} (role postgres, application_name 'su-agent')"),
        format!("DROP DATABASE \"{scratch}\" WITH (FORCE)"),
    ] {
        assert!(stderr.contains(&want), "{want}\n{stderr}");
    }
    assert!(!stderr.contains("db error"), "{stderr}");
    drop(su);
    let admin = common::connect(&sc, "postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE \"{scratch}\" WITH (FORCE)"))
        .await
        .unwrap();
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_and_clones_keep_other_roles_out() {
    let (server, sc, _) = common::own_server(&[]).await;
    owned_database(&sc, "owner_t", "db_t", "").await;
    let owner = ConnInfo {
        user: "owner_t".into(),
        password: Some("pw".into()),
        dbname: "db_t".into(),
        ..sc.clone()
    };
    let other = ConnInfo {
        user: "other_app".into(),
        password: Some("pw".into()),
        ..sc.clone()
    };
    use pgrehearse::seed::template;
    template::create_database(&owner, "pgrehearse_tpl_t")
        .await
        .unwrap();
    template::clone_database(&owner, "pgrehearse_tpl_t", "pgrehearse_c")
        .await
        .unwrap();
    for db in ["pgrehearse_tpl_t", "pgrehearse_c"] {
        // The owner's own sessions still connect; another role's do not.
        owner.connect_to(db, "rehearsal").await.unwrap();
        let e = other.connect_to(db, "monitor-agent").await.err();
        let code = e
            .as_ref()
            .and_then(|e| e.as_db_error())
            .map(|d| d.code().code());
        assert_eq!(code, Some("42501"), "{db}: {e:?}");
        template::drop_database(&owner, db).await.unwrap();
    }
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn scenario_settings_reach_every_session_and_the_rest_are_said() {
    let (server, sc, _) = common::own_server(&[]).await;
    let url = owned_database(&sc, "owner_v", "db_v", "").await;
    // tiny.toml asking for PostgreSQL 17 (the server is 15), a work_mem,
    // and shared_buffers (server start only); an app script and the
    // migration fail unless the work_mem is theirs.
    let check = "DO $$BEGIN IF current_setting('work_mem') <> '8MB' THEN \
                 RAISE EXCEPTION 'work_mem is %', current_setting('work_mem'); END IF; END$$";
    let tiny = std::fs::read_to_string(common::fixture("good/tiny.toml")).unwrap();
    let scenario = tiny
        .replace("version = \"15\"", "version = \"17\"")
        .replace(
            "settings = { work_mem = \"8MB\", log_min_duration_statement = -1, jit = false }",
            "settings = { work_mem = \"8MB\", shared_buffers = \"64MB\" }",
        )
        .replace(
            "[[phase]]\nname = \"expand\"\napps = [\"v1\"]\n",
            &format!(
                "[[workload.script]]\nname = \"work_mem_check\"\nat = \"100ms\"\nsql = [\"{check}\"]\n\n\
                 [[phase]]\nname = \"expand\"\napps = [\"v1\"]\n\
                 [[phase.step]]\nname = \"work_mem\"\nsql = \"{check}\"\n"
            ),
        );
    assert!(scenario.contains("work_mem_check") && scenario.contains("\"17\""));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny-v17.toml");
    std::fs::write(&file, scenario).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_scenario(&file, &url, out.path()));
    assert_eq!(code, 0, "{stderr}");
    let run_dir = common::run_dir_in(out.path()).unwrap();
    let errors = common::csv_rows(&run_dir.join("errors.csv"));
    assert!(errors.is_empty(), "{errors:?}");
    let info = record_in(out.path()).info.unwrap();
    assert_eq!(info.settings, [("work_mem".to_string(), "8MB".to_string())]);
    let shared_buffers = |t: &str| {
        t.contains("shared_buffers = 64MB was not applied") && t.contains("context = postmaster")
    };
    let version = |t: &str| t.contains("PostgreSQL 17") && t.contains("runs PostgreSQL 15.");
    for said in [&shared_buffers as &dyn Fn(&str) -> bool, &version] {
        assert!(said(&stderr), "{stderr}");
        assert!(info.warnings.iter().any(|w| said(w)), "{:?}", info.warnings);
    }
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_busy_template1_is_said_as_such_not_as_createdb() {
    let (server, sc, _) = common::own_server(&[]).await;
    let url = owned_database(&sc, "owner_b", "db_b", "").await;
    // Someone stays connected to template1, which CREATE DATABASE copies.
    let _held = common::connect(&sc, "template1").await;
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_run(&url, out.path()));
    assert_eq!(code, 3, "{stderr}");
    for want in [
        "cannot create the scratch database",
        "\"template1\" is being accessed by other users (55006)",
        "have them disconnect from template1",
    ] {
        assert!(stderr.contains(want), "{want}\n{stderr}");
    }
    assert!(!stderr.contains("CREATEDB"), "{stderr}");
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_plain_role_measures_wal_where_pg_stat_statements_answers_it() {
    let (server, sc, _) =
        common::own_server(&[("shared_preload_libraries", "pg_stat_statements")]).await;
    let url = owned_database(&sc, "owner_w", "db_w", "").await;
    // Not in template1 yet: the role (no superuser, no pg_read_all_settings)
    // cannot create it; the reason is a sentence, said once.
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_run(&url, out.path()));
    assert_eq!(code, 0, "{stderr}");
    let rec = record_in(out.path());
    let why = rec.info.as_ref().unwrap().wal_unavailable.clone().unwrap();
    assert!(
        why.contains("this role could not create it") && why.contains("template1"),
        "{why}"
    );
    assert!(!why.contains("shared_preload_libraries\""), "{why}");
    for st in &rec.statements {
        assert!(st.wal_bytes.is_none());
        assert!(!st.unknown.contains(&why), "{}", st.unknown);
    }
    // As the QA setup has it: created in template1, so the scratch
    // database has it; the plain role reads it, and each statement's WAL
    // is measured.
    common::connect(&sc, "template1")
        .await
        .batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_run(&url, out.path()));
    assert_eq!(code, 0, "{stderr}");
    let rec = record_in(out.path());
    let info = rec.info.as_ref().unwrap();
    assert_eq!(info.wal_unavailable, None);
    assert!(info.wal_attribution.is_some());
    assert!(
        rec.statements
            .iter()
            .any(|s| s.wal_bytes.is_some_and(|b| b > 0)),
        "{:#?}",
        rec.statements
    );
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_role_connection_limit_too_low_is_refused_before_seeding() {
    let (server, sc, _) = common::own_server(&[]).await;
    // tiny.toml holds 2 clients × 2 app versions, 1 script and 5 sessions
    // of the harness: 10 at once.
    let url = owned_database(
        &sc,
        "owner_l",
        "db_l",
        "ALTER ROLE owner_l CONNECTION LIMIT 9",
    )
    .await;
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_run(&url, out.path()));
    assert_eq!(code, 3, "{stderr}");
    for want in [
        "needs 10 connections at once",
        "role owner_l may open only 9 more (CONNECTION LIMIT 9",
    ] {
        assert!(stderr.contains(want), "{want}\n{stderr}");
    }
    let info = record_in(out.path()).info.unwrap();
    assert!(info.failure.unwrap().contains("CONNECTION LIMIT 9"));
    assert_eq!(info.database, None, "refused before seeding");
    // Exactly enough is enough.
    common::connect(&sc, "postgres")
        .await
        .batch_execute("ALTER ROLE owner_l CONNECTION LIMIT 10")
        .await
        .unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_run(&url, out.path()));
    assert_eq!(code, 0, "{stderr}");
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_script_that_cannot_connect_mid_run_fails_the_run() {
    let (server, sc, _) = common::own_server(&[]).await;
    let url = owned_database(&sc, "owner_m", "db_m", "").await;
    // The first step closes the database to new sessions of the owner; a
    // script due after it cannot connect.
    let close = "DO $$BEGIN EXECUTE format('ALTER DATABASE %I CONNECTION LIMIT 0', \
                 current_database()); END$$";
    let tiny = std::fs::read_to_string(common::fixture("good/tiny.toml")).unwrap();
    // Traffic runs 500 ms before the first step and 2 s after the last
    // (the steps take well under a second): 1.5 s is after the close.
    let scenario = tiny.replace("after = \"500ms\"", "after = \"2s\"").replace(
        "[[phase]]\nname = \"expand\"\napps = [\"v1\"]\n",
        &format!(
            "[[workload.script]]\nname = \"late\"\nat = \"1500ms\"\nsql = [\"SELECT 1\"]\n\n\
             [[phase]]\nname = \"expand\"\napps = [\"v1\"]\n\
             [[phase.step]]\nname = \"close\"\nsql = \"{close}\"\n"
        ),
    );
    assert!(scenario.contains("name = \"late\""));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tiny-late.toml");
    std::fs::write(&file, scenario).unwrap();
    let out = tempfile::tempdir().unwrap();
    let (code, stderr) = finish(start_scenario(&file, &url, out.path()));
    assert_eq!(code, 4, "{stderr}");
    let want = "script `late` could not connect at 1.5s: too many connections for database";
    assert!(
        stderr.contains(want) && stderr.contains("(53300)"),
        "{stderr}"
    );
    let run_dir = common::run_dir_in(out.path()).unwrap();
    let info = record_in(out.path()).info.unwrap();
    assert!(info.failure.unwrap().contains(want));
    let errors = common::csv_rows(&run_dir.join("errors.csv"));
    assert!(errors.iter().all(|e| e["query"] != "late"), "{errors:?}");
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}
