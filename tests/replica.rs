//! A real streaming replica: a backfill of tens of thousands of rows under
//! traffic puts it behind, and server.csv shows it (bytes and replay lag in
//! ms), on a local standby and on a replica container. The url backend
//! refuses a replica. (Teardown on every exit path: tests/reliability/replica.rs.)

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use pgrehearse::record::RunRecord;

fn backfill() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/capacity/backfill-replica.toml")
}

/// Run the backfill scenario with `args`; (exit code, stderr, run record,
/// what was left behind).
fn run(args: &[&str]) -> (Option<i32>, String, Option<RunRecord>, Vec<String>) {
    let tmp = common::isolated_tmpdir();
    let out = tempfile::tempdir().unwrap();
    let child = Command::new(common::bin())
        .arg("run")
        .arg(backfill())
        .args(["-q", "--out"])
        .arg(out.path())
        .args(args)
        .env("TMPDIR", tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let o = child.wait_with_output().unwrap();
    let dir = out.path().join("backfill-replica");
    let rec = std::fs::read_dir(&dir)
        .ok()
        .and_then(|mut d| d.next())
        .map(|e| RunRecord::read(&e.unwrap().path()).unwrap());
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
        rec,
        common::left_behind(tmp.path(), pid),
    )
}

/// The replica fell behind during the backfill, and caught up by the end.
fn assert_lag_was_measured(rec: &RunRecord, replica_says: &str) {
    let info = rec.info.as_ref().unwrap();
    assert!(info.failure.is_none(), "{:?}", info.failure);
    let replica = info.replica.as_deref().expect("run.json names the replica");
    assert!(replica.contains(replica_says), "{replica}");
    let sampled: Vec<_> = rec
        .server
        .iter()
        .filter(|s| s.replica_lag_bytes.is_some())
        .collect();
    assert!(
        sampled.len() * 10 >= rec.server.len() * 9,
        "nearly every sample sees the replica: {} of {}",
        sampled.len(),
        rec.server.len()
    );
    let peak_ms = rec
        .server
        .iter()
        .filter_map(|s| s.replica_lag_ms)
        .fold(0.0, f64::max);
    let peak_bytes = rec
        .server
        .iter()
        .filter_map(|s| s.replica_lag_bytes)
        .max()
        .unwrap_or(0);
    assert!(peak_ms > 0.0, "replay lag in ms: {:#?}", rec.server);
    assert!(peak_bytes > 0, "replay lag in bytes: {:#?}", rec.server);
    // The backfill's samples are where it fell behind.
    let backfill = info
        .steps
        .iter()
        .find(|s| s.step == "backfill")
        .expect("the backfill step");
    let behind_then = rec
        .server
        .iter()
        .any(|s| s.t_ms >= backfill.start_ms && s.replica_lag_bytes.unwrap_or(0) > 0);
    assert!(
        behind_then,
        "no lag from the backfill on: {:#?}",
        rec.server
    );
    // Caught up by the last sample (the scenario's traffic is light).
    let last = rec.server.last().unwrap();
    assert!(
        last.replica_lag_bytes.unwrap_or(u64::MAX) < 1_000_000,
        "{last:?}"
    );
}

#[test]
fn a_local_replica_falls_behind_during_a_backfill() {
    let (code, stderr, rec, left) = run(&["--backend", "local"]);
    assert_eq!(code, Some(0), "{stderr}");
    assert!(left.is_empty(), "{left:?}");
    assert_lag_was_measured(&rec.expect("a run directory"), "local PostgreSQL");
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread")]
async fn a_replica_container_falls_behind_during_a_backfill() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let (code, stderr, rec, left) =
        tokio::task::spawn_blocking(move || run(&["--backend", "docker", "--image", &image]))
            .await
            .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(left.is_empty(), "{left:?}");
    assert_lag_was_measured(&rec.expect("a run directory"), "private network");
}

#[test]
fn the_url_backend_refuses_a_replica() {
    for args in [
        vec![
            "--backend",
            "url",
            "--database-url",
            "postgres://u@127.0.0.1:1/db",
            "--replica",
        ],
        // The scenario asks for one.
        vec![
            "--backend",
            "url",
            "--database-url",
            "postgres://u@127.0.0.1:1/db",
        ],
    ] {
        let (code, stderr, rec, _) = run(&args);
        assert_eq!(code, Some(2), "{stderr}");
        assert!(
            stderr.contains("the url backend cannot start a replica"),
            "{stderr}"
        );
        assert!(rec.is_none());
    }
}
