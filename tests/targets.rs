//! The three backends against real servers: provision, connect, tear down,
//! and nothing left behind.

mod common;

use pgrehearse::target::local::LocalCluster;
use pgrehearse::target::{BackendKind, ServerLog, Target, TargetOptions};

fn local_opts(settings: &[(&str, &str)]) -> TargetOptions {
    TargetOptions {
        backend: BackendKind::Local,
        image: None,
        database_url: None,
        version: None,
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

#[tokio::test]
async fn local_cluster_starts_serves_and_leaves_nothing_behind() {
    let cluster = LocalCluster::start(&local_opts(&[("work_mem", "7MB")]))
        .await
        .expect("start local cluster");
    let pid = cluster.postmaster_pid().expect("postmaster pid");
    let dir = cluster.dir().to_path_buf();
    assert!(common::process_alive(pid));
    assert!(dir.join("data/PG_VERSION").is_file());

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
    assert!(bad.config().connect(tokio_postgres::NoTls).await.is_err());

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
}

#[tokio::test]
async fn local_cluster_is_removed_when_dropped_without_teardown() {
    let target = Target::start(&local_opts(&[])).await.expect("start");
    let Target::Local(cluster) = &target else {
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
    let err = match LocalCluster::start(&local_opts(&[("shared_buffers", "lots")])).await {
        Ok(_) => panic!("a bad setting must fail"),
        Err(e) => e,
    };
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("shared_buffers"), "{err}");
}

#[tokio::test]
async fn local_asks_for_a_missing_major_version_clearly() {
    let mut opts = local_opts(&[]);
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
