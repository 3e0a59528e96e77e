//! `pgrehearse run` of a small scenario on each backend, through the real
//! binary: it succeeds, writes a run directory, and leaves nothing behind —
//! no cluster process, no temp dir, no container, no scratch database.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::record::RunRecord;

fn tiny() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/good/tiny.toml")
}

/// Run tiny.toml with `args`; returns (exit code, the child's pid, run record).
fn run(tmp: &Path, args: &[&str]) -> (i32, u32, RunRecord) {
    let out = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .arg("run")
        .arg(tiny())
        .args(["-q", "--out"])
        .arg(out.path())
        .args(args)
        .env("TMPDIR", tmp)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    use std::io::Read;
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    let scen = out.path().join("tiny");
    let dir = std::fs::read_dir(&scen)
        .unwrap_or_else(|e| panic!("no run directory ({e}); stderr:\n{stderr}"))
        .next()
        .unwrap()
        .unwrap()
        .path();
    let rec = RunRecord::read(&dir).unwrap();
    assert!(
        dir.join("summary.json").exists() && dir.join("index.html").exists(),
        "{stderr}"
    );
    (status.code().unwrap_or(-1), pid, rec)
}

fn assert_rehearsed(rec: &RunRecord) {
    let info = rec.info.as_ref().unwrap();
    assert!(info.failure.is_none(), "{:?}", info.failure);
    assert_eq!(
        info.rows,
        vec![("customers".to_string(), 100), ("orders".to_string(), 400)]
    );
    assert!(rec.statements.iter().all(|s| s.outcome == "ok"));
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 50);
}

#[test]
fn run_on_local_leaves_nothing() {
    let tmp = common::isolated_tmpdir();
    let (code, pid, rec) = run(tmp.path(), &["--backend", "local"]);
    assert_eq!(code, 0);
    assert_rehearsed(&rec);
    assert_eq!(rec.info.as_ref().unwrap().backend, "local");
    assert!(
        common::left_behind(tmp.path(), pid).is_empty(),
        "{:?}",
        common::left_behind(tmp.path(), pid)
    );
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread")]
async fn run_on_docker_leaves_nothing() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let tmp = common::isolated_tmpdir();
    let dir = tmp.path().to_path_buf();
    let (code, pid, rec) =
        tokio::task::spawn_blocking(move || run(&dir, &["--backend", "docker", "--image", &image]))
            .await
            .unwrap();
    let left = common::left_behind(tmp.path(), pid);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(code, 0);
    assert_rehearsed(&rec);
    assert_eq!(rec.info.as_ref().unwrap().backend, "docker");
    assert!(common::containers_of_pid(pid).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_on_url_drops_its_scratch_database() {
    // A server of our own to point the url backend at.
    let server = pgrehearse::backend::Backend::start(&common::test_options(&[]))
        .await
        .unwrap();
    let c = server.conn().clone();
    let url = format!(
        "postgres://{}:{}@{}:{}/{}",
        c.user,
        c.password.clone().unwrap_or_default(),
        if c.host.starts_with('/') {
            "127.0.0.1".to_string()
        } else {
            c.host.clone()
        },
        c.port,
        c.dbname
    );
    let before = common::scratch_databases(&c).await;
    let tmp = common::isolated_tmpdir();
    let dir = tmp.path().to_path_buf();
    let (code, pid, rec) = tokio::task::spawn_blocking(move || {
        run(&dir, &["--backend", "url", "--database-url", &url])
    })
    .await
    .unwrap();
    let left = common::left_behind(tmp.path(), pid);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(code, 0);
    assert_rehearsed(&rec);
    assert_eq!(rec.info.as_ref().unwrap().backend, "url");
    assert_eq!(
        common::scratch_databases(&c).await,
        before,
        "the scratch database was dropped"
    );
    server.teardown().await.unwrap();
}
