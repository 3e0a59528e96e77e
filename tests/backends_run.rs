//! `pgrehearse run` of a small scenario on each backend, through the real
//! binary: it succeeds, writes a run directory, and leaves nothing behind —
//! no cluster process, no temp dir, no container, no scratch database.

mod common;

use std::path::Path;

use pgrehearse::record::RunRecord;

/// Run tiny.toml with `args` and TMPDIR `tmp`; returns (exit code, the
/// child's pid, run record), once the report is known to be written.
fn run(tmp: &Path, args: &[&str]) -> (i32, u32, RunRecord) {
    let mut all = vec!["-q"];
    all.extend_from_slice(args);
    let tmp = tmp.to_str().expect("a UTF-8 temp dir");
    let ran = common::run(&common::fixture("good/tiny.toml"), &all, &[("TMPDIR", tmp)]);
    let (dir, rec) = ran.record();
    assert!(
        dir.join("summary.json").exists() && dir.join("index.html").exists(),
        "{}",
        ran.stderr
    );
    (ran.code, ran.pid, rec)
}

/// Nothing of the run under `tmp` (pid `pid`) is left, it exited 0, and it
/// rehearsed everything on `backend`.
fn assert_clean_rehearsal(tmp: &Path, pid: u32, code: i32, rec: &RunRecord, backend: &str) {
    let left = common::left_behind(tmp, pid);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(code, 0);
    assert_rehearsed(rec);
    assert_eq!(rec.info.as_ref().unwrap().backend, backend);
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
    assert_clean_rehearsal(tmp.path(), pid, code, &rec, "local");
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
    assert_clean_rehearsal(tmp.path(), pid, code, &rec, "docker");
    assert!(common::containers_of_pid(pid).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn run_on_url_drops_its_scratch_database() {
    // A server of our own to point the url backend at.
    let server = pgrehearse::backend::Backend::start(&common::test_options(&[]))
        .await
        .unwrap();
    let c = server.conn().clone();
    let url = common::url_of(&c);
    // A setting of the URL's database, as production has it: the scratch
    // database gets it too, and the steps with no lock_timeout of their
    // own run under it.
    common::connect(&c, &c.dbname)
        .await
        .batch_execute(&format!(
            "ALTER DATABASE {} SET lock_timeout = '45s'",
            pgrehearse::pg::quote_ident(&c.dbname)
        ))
        .await
        .unwrap();
    let before = common::scratch_databases(&c).await;
    let tmp = common::isolated_tmpdir();
    let dir = tmp.path().to_path_buf();
    let (code, pid, rec) = tokio::task::spawn_blocking(move || {
        run(&dir, &["--backend", "url", "--database-url", &url])
    })
    .await
    .unwrap();
    assert_clean_rehearsal(tmp.path(), pid, code, &rec, "url");
    let steps = &rec.info.as_ref().unwrap().steps;
    let defaulted: Vec<_> = steps
        .iter()
        .filter(|s| s.lock_timeout_from.is_some())
        .collect();
    assert!(!defaulted.is_empty(), "{steps:#?}");
    for s in defaulted {
        assert_eq!(s.lock_timeout_ms, Some(45_000.0), "{s:?}");
        assert!(
            s.lock_timeout_from
                .as_deref()
                .is_some_and(|f| f.starts_with("the session's default")),
            "{s:?}"
        );
    }
    assert_eq!(
        common::scratch_databases(&c).await,
        before,
        "the scratch database was dropped"
    );
    server.teardown().await.unwrap();
}
