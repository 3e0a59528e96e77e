//! The three backends against real servers: provision, connect, tear down,
//! and nothing left behind.

mod common;

use pgrehearse::backend::local::LocalCluster;
use pgrehearse::backend::{Backend, BackendKind, BackendOptions, ServerLog};

#[tokio::test]
async fn local_cluster_starts_serves_and_leaves_nothing_behind() {
    let cluster = LocalCluster::start(&BackendOptions::local(&[("work_mem", "7MB")]))
        .await
        .expect("start local cluster");
    let pid = cluster.postmaster_pid().expect("postmaster pid");
    let dir = cluster.dir().to_path_buf();
    assert!(common::process_alive(pid));
    assert!(dir.join("data/PG_VERSION").is_file());
    assert!(
        common::postgres_processes_under(&dir)
            .iter()
            .any(|p| p.starts_with(&format!("{pid} "))),
        "the leftover finder sees the postmaster"
    );

    let conn = cluster.conn().clone();
    assert_eq!(conn.host, "127.0.0.1");
    assert_eq!(conn.dbname, "pgrehearse");
    let password = conn.password.clone().expect("a password");
    assert!(password.len() >= 16);
    assert!(!format!("{conn:?}").contains(&password));
    assert!(!cluster.describe().contains(&password));
    assert!(cluster.describe().starts_with("local PostgreSQL "));

    let client = common::connect(&conn, &conn.dbname).await;
    let row = client
        .query_one(
            "SELECT current_database(), current_setting('server_version_num')::int, \
             current_setting('work_mem'), current_setting('listen_addresses'), \
             current_setting('unix_socket_directories')",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pgrehearse");
    assert_eq!(row.get::<_, i32>(1) as u32, cluster.server_version_num());
    assert_eq!(row.get::<_, String>(2), "7MB", "scenario setting applied");
    assert_eq!(row.get::<_, String>(3), "127.0.0.1");
    assert_eq!(row.get::<_, String>(4), dir.display().to_string());

    // Password auth over TCP: a wrong password is refused.
    let mut bad = conn.clone();
    bad.password = Some("wrong".into());
    assert!(bad.connect("pgrehearse-test").await.is_err());

    // The log is a file with the parseable prefix.
    let Some(ServerLog::File(log)) = cluster.server_log() else {
        panic!("a local cluster has a log file")
    };
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        regex::Regex::new(r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[\d+\] ")
            .unwrap()
            .is_match(&text),
        "log lines carry '%m [%p] ': {text}"
    );

    // The private socket dir.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);

    drop(client);
    cluster.teardown().await.expect("teardown");
    assert!(
        !common::process_alive(pid),
        "postmaster {pid} still running"
    );
    assert!(!dir.exists(), "{} still exists", dir.display());
    assert_eq!(common::postgres_processes_under(&dir), Vec::<String>::new());
}

#[tokio::test]
async fn local_cluster_is_removed_when_dropped_without_teardown() {
    let target = Backend::start(&BackendOptions::local(&[]))
        .await
        .expect("start");
    let Backend::Local(cluster) = &target else {
        panic!("asked for local")
    };
    let pid = cluster.postmaster_pid().unwrap();
    let dir = cluster.dir().to_path_buf();
    assert!(target.server_version_num() >= 100000);
    drop(target);
    assert!(
        !common::process_alive(pid),
        "postmaster {pid} survived drop"
    );
    assert!(!dir.exists());
}

#[tokio::test]
async fn local_cluster_rejects_a_bad_setting_as_bad_input() {
    let err = match LocalCluster::start(&BackendOptions::local(&[("shared_buffers", "lots")])).await
    {
        Ok(_) => panic!("a bad setting must fail"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("shared_buffers"), "{err}");
}

#[test]
fn local_finds_binaries_and_honours_a_wanted_major() {
    use pgrehearse::backend::local::find_binaries;
    let any = find_binaries(None).expect("server binaries on this machine");
    assert!(any.dir.join("initdb").is_file());
    let same = find_binaries(Some(&format!("{}.3", any.major))).unwrap();
    assert_eq!(same.major, any.major);
    assert_eq!(find_binaries(Some("x")).unwrap_err().exit_code(), 2);
}

#[tokio::test]
async fn local_asks_for_a_missing_major_version_clearly() {
    let mut opts = BackendOptions::local(&[]);
    opts.version = Some("9".into());
    let err = match LocalCluster::start(&opts).await {
        Ok(_) => panic!("no PostgreSQL 9 here"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), 3, "{err}");
    assert!(err.to_string().contains("PostgreSQL 9"), "{err}");
}

#[tokio::test]
async fn test_server_helper_provides_a_work_database() {
    let server = common::test_server().await;
    let client = server.client().await;
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
    drop(client);
    server.teardown().await;
}

#[tokio::test]
async fn auto_falls_back_to_local_when_docker_cannot_serve() {
    // With an engine, the image cannot be found nor pulled; without one,
    // docker is not tried. Either way a local cluster serves.
    let opts = BackendOptions {
        backend: BackendKind::Auto,
        image: Some("pgrehearse/does-not-exist:0".into()),
        ..BackendOptions::local(&[])
    };
    let target = Backend::start(&opts).await.expect("auto target");
    assert_eq!(target.kind(), BackendKind::Local);
    target.teardown().await.unwrap();
}

/// The url backend against a cluster this test starts: it creates one
/// scratch database, works there, drops it, and touches nothing else.
#[tokio::test]
async fn url_backend_works_in_a_scratch_database_and_touches_nothing_else() {
    let server = LocalCluster::start(&BackendOptions::local(&[]))
        .await
        .expect("server");
    let sc = server.conn().clone();
    let pw = sc.password.clone().unwrap();

    // Pre-existing state the url backend must not touch.
    let admin = common::connect(&sc, "postgres").await;
    admin
        .batch_execute("CREATE DATABASE existing_app")
        .await
        .unwrap();
    let app = common::connect(&sc, "existing_app").await;
    app.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, total int); \
         INSERT INTO orders VALUES (1, 100), (2, 200);",
    )
    .await
    .unwrap();
    let databases = |c: tokio_postgres::Client| async move {
        c.query("SELECT datname FROM pg_database ORDER BY 1", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let before = databases(common::connect(&sc, "postgres").await).await;

    let url = format!("postgres://postgres:{pw}@127.0.0.1:{}/postgres", sc.port);
    let target = Backend::start(&BackendOptions::url(&url))
        .await
        .expect("url target");
    let conn = target.conn().clone();
    assert!(conn.dbname.starts_with("pgrehearse_"), "{}", conn.dbname);
    assert_ne!(conn.dbname, "postgres");
    assert!(!target.describe().contains(&pw), "{}", target.describe());
    assert_eq!(target.server_version_num(), server.server_version_num());
    assert!(target.server_log().is_none());
    assert_eq!(
        common::scratch_databases(&sc).await,
        vec![conn.dbname.clone()]
    );

    // Work in the scratch database, leave a session open: teardown must still drop it.
    let work = common::connect(&conn, &conn.dbname).await;
    work.batch_execute("CREATE TABLE orders (id int); INSERT INTO orders VALUES (42);")
        .await
        .unwrap();
    target.teardown().await.expect("teardown");

    assert!(common::scratch_databases(&sc).await.is_empty());
    let after = databases(common::connect(&sc, "postgres").await).await;
    assert_eq!(before, after, "exactly the pre-existing databases remain");
    let rows: i64 = app
        .query_one("SELECT count(*) FROM orders", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "pre-existing objects untouched");
    drop((admin, app, work));
    server.teardown().await.unwrap();
}

#[tokio::test]
async fn url_scratch_database_is_dropped_when_the_target_is_dropped() {
    let server = LocalCluster::start(&BackendOptions::local(&[]))
        .await
        .expect("server");
    let sc = server.conn().clone();
    let url = format!(
        "host=127.0.0.1 port={} user=postgres password={} dbname=postgres",
        sc.port,
        sc.password.clone().unwrap()
    );
    let target = Backend::start(&BackendOptions::url(&url))
        .await
        .expect("url target");
    assert_eq!(common::scratch_databases(&sc).await.len(), 1);
    drop(target);
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

#[tokio::test]
async fn url_backend_fails_with_exit_3_and_no_password_in_the_message() {
    let server = LocalCluster::start(&BackendOptions::local(&[]))
        .await
        .expect("server");
    let port = server.conn().port;
    let secret = "Sup3rSecretPassw0rd";
    let cases = [
        // wrong password
        format!("postgres://postgres:{secret}@127.0.0.1:{port}/postgres"),
        // unknown user
        format!("postgres://nobody:{secret}@127.0.0.1:{port}/postgres"),
        // nothing listening
        format!("postgres://postgres:{secret}@127.0.0.1:1/postgres"),
        // not a URL at all
        format!("postgres://postgres:{secret}@127.0.0.1:notaport/postgres"),
        format!("host=127.0.0.1 port={port} password={secret} bogus_option=1"),
    ];
    for url in cases {
        let err = match Backend::start(&BackendOptions::url(&url)).await {
            Ok(_) => panic!("{url} must fail"),
            Err(e) => e,
        };
        assert_eq!(err.exit_code(), 3, "{url}: {err}");
        let msg = err.to_string();
        assert!(!msg.contains(secret), "password leaked: {msg}");
    }
    assert!(common::scratch_databases(server.conn()).await.is_empty());
    server.teardown().await.unwrap();
}

#[cfg(feature = "docker")]
fn docker_inspect(id: &str, format: &str) -> Option<String> {
    let out = std::process::Command::new("docker")
        .args(["inspect", "--format", format, id])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[cfg(feature = "docker")]
#[tokio::test]
async fn docker_container_serves_on_loopback_and_is_removed() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let target = Backend::start(&BackendOptions::docker(&image, &[("work_mem", "9MB")]))
        .await
        .expect("docker target");
    let Backend::Docker(pg) = &target else {
        panic!("asked for docker")
    };
    let id = pg.container_id().expect("container id");
    let conn = target.conn().clone();
    assert_eq!(conn.host, "127.0.0.1");
    assert_eq!(conn.dbname, "pgrehearse");
    let password = conn.password.clone().unwrap();
    assert!(password.len() >= 16);
    assert!(!target.describe().contains(&password));
    assert!(target.describe().contains(&image), "{}", target.describe());

    // Published on 127.0.0.1 only.
    let bindings = docker_inspect(&id, "{{json .NetworkSettings.Ports}}").unwrap();
    let ports: serde_json::Value = serde_json::from_str(&bindings).unwrap();
    let hosts: Vec<&serde_json::Value> = ports["5432/tcp"].as_array().unwrap().iter().collect();
    assert!(!hosts.is_empty(), "{bindings}");
    for h in &hosts {
        assert_eq!(h["HostIp"], "127.0.0.1", "{bindings}");
        assert_eq!(h["HostPort"], conn.port.to_string(), "{bindings}");
    }
    let labels = docker_inspect(&id, "{{index .Config.Labels \"pgrehearse.pid\"}}").unwrap();
    assert_eq!(labels, std::process::id().to_string());

    let client = common::connect(&conn, &conn.dbname).await;
    let row = client
        .query_one(
            "SELECT current_database(), current_setting('work_mem'), \
             current_setting('server_version_num')::int",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "pgrehearse");
    assert_eq!(row.get::<_, String>(1), "9MB");
    assert_eq!(row.get::<_, i32>(2) as u32, target.server_version_num());
    let mut bad = conn.clone();
    bad.password = Some("wrong".into());
    assert!(bad.connect("pgrehearse-test").await.is_err());

    // The server log is followed into a file, with the parseable prefix.
    let Some(ServerLog::File(log)) = target.server_log() else {
        panic!("a docker target has a log file")
    };
    client
        .batch_execute("DO $$ BEGIN RAISE LOG 'pgrehearse-log-probe'; END $$")
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let text = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("pgrehearse-log-probe") || std::time::Instant::now() > deadline {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert!(text.contains("pgrehearse-log-probe"), "log: {text}");
    assert!(
        regex::Regex::new(
            r"(?m)^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \w+ \[\d+\] LOG:  pgrehearse-log-probe"
        )
        .unwrap()
        .is_match(&text),
        "log: {text}"
    );

    drop(client);
    target.teardown().await.expect("teardown");
    assert!(
        docker_inspect(&id, "{{.Id}}").is_none(),
        "container {id} survived teardown"
    );
    assert!(!log.exists(), "log file removed");
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_container_is_removed_when_dropped() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let target = Backend::start(&BackendOptions::docker(&image, &[]))
        .await
        .expect("docker target");
    let Backend::Docker(pg) = &target else {
        panic!("asked for docker")
    };
    let id = pg.container_id().unwrap();
    assert!(docker_inspect(&id, "{{.Id}}").is_some());
    drop(target);
    assert!(
        docker_inspect(&id, "{{.Id}}").is_none(),
        "container {id} survived drop"
    );
}

#[cfg(feature = "docker")]
#[tokio::test]
async fn docker_missing_image_is_exit_3_with_a_hint() {
    if !pgrehearse::backend::docker::engine_answers().await {
        common::unavailable("a Docker engine, for the missing-image error");
        return;
    }
    let opts = BackendOptions::docker("pgrehearse/does-not-exist:0", &[]);
    let err = match Backend::start(&opts).await {
        Ok(_) => panic!("a missing image must fail"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), 3, "{err}");
    assert!(err.to_string().contains("build-postgres-image.sh"), "{err}");
}
