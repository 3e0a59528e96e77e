//! Production-sized servers: `[postgres] size` and `--cpus` / `--memory`
//! become settings on every server pgrehearse owns (checked with SHOW on a
//! real cluster and a real container), container limits (checked with
//! `docker inspect`), a refusal when the machine is smaller, a warning and
//! nothing applied on the url backend, and run.json's record of all of it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::backend::BackendKind;
use pgrehearse::options::ServerOptions;
use pgrehearse::rehearsal::{Database, Server, ServerNeeds};
use pgrehearse::signals::Signals;
use pgrehearse::sizing::{parse_memory, ServerSize};

fn sized() -> PathBuf {
    common::fixture("capacity/sized.toml")
}

fn one_gb_one_cpu() -> ServerSize {
    ServerSize {
        cpus: Some(1),
        memory: Some(parse_memory("1GB").unwrap()),
        cpus_from: "--cpus".into(),
        memory_from: "--memory".into(),
    }
}

/// A server provisioned the way `run` does it, for 1 CPU and 1GB, with the
/// scenario setting maintenance_work_mem = 32MB.
async fn provision(backend: BackendKind, image: Option<String>) -> Server {
    let needs = ServerNeeds {
        version: None,
        image: None,
        settings: vec![("maintenance_work_mem".into(), "32MB".into())],
        sessions: 4,
        size: Some(one_gb_one_cpu()),
        replica: false,
    };
    let opts = ServerOptions {
        backend,
        image,
        database_url: None,
        version: None,
        image_from_env: false,
        reuse: false,
    };
    Server::provision(&opts, &needs, &Signals::default())
        .await
        .unwrap_or_else(|e| panic!("provision {backend:?}: {e}"))
}

/// SHOW of each setting on the work database.
async fn show(db: &Database, names: &[&str]) -> Vec<String> {
    let client = common::connect(&db.conn, &db.conn.dbname).await;
    let mut out = Vec::new();
    for n in names {
        let row = client.query_one(&format!("SHOW {n}"), &[]).await.unwrap();
        out.push(row.get(0));
    }
    out
}

const DERIVED_FOR_1GB: [(&str, &str); 5] = [
    ("shared_buffers", "256MB"),
    ("effective_cache_size", "768MB"),
    ("max_wal_size", "8GB"),
    ("min_wal_size", "2GB"),
    ("checkpoint_timeout", "15min"),
];

/// The derived settings are in force, the scenario's own value won, the
/// harness's settings stay, and the record says so.
async fn assert_sized(db: &Database, applied: &str) {
    let names: Vec<&str> = DERIVED_FOR_1GB.iter().map(|(n, _)| *n).collect();
    let want: Vec<&str> = DERIVED_FOR_1GB.iter().map(|(_, v)| *v).collect();
    assert_eq!(show(db, &names).await, want);
    assert_eq!(
        show(db, &["maintenance_work_mem", "log_lock_waits"]).await,
        ["32MB", "on"],
        "the scenario's maintenance_work_mem wins over the derived 64MB; the harness's settings stay"
    );
    let size = db.size.as_ref().expect("the size is recorded");
    assert_eq!((size.cpus, size.memory.as_deref()), (Some(1), Some("1GB")));
    assert!(size.applied.starts_with(applied), "{}", size.applied);
    let mwm = size
        .derived
        .iter()
        .find(|d| d.name == "maintenance_work_mem")
        .expect("maintenance_work_mem derived");
    assert_eq!(
        (mwm.value.as_str(), mwm.overridden_by.as_deref()),
        ("64MB", Some("32MB"))
    );
    // Below 4 CPUs PGTune keeps Postgres' parallel defaults.
    assert!(size.derived.iter().all(|d| !d.name.contains("parallel")));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_local_cluster_gets_the_settings_derived_from_its_size() {
    let server = provision(BackendKind::Local, None).await;
    assert_sized(&server.work_database(), "derived settings only").await;
    server.teardown().await;
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread")]
async fn a_container_gets_cpu_and_memory_limits_and_the_derived_settings() {
    let Some(image) = common::docker_image_or_notice().await else {
        return;
    };
    let server = provision(BackendKind::Docker, Some(image)).await;
    let db = server.work_database();
    assert_sized(&db, "container limits").await;
    // "docker PostgreSQL 15.18 (image ..., container 0123456789ab)"
    let id = db
        .target
        .rsplit("container ")
        .next()
        .unwrap()
        .trim_end_matches(')');
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}} {{.HostConfig.MemorySwap}}",
            id,
        ])
        .output()
        .unwrap();
    let gib = 1024 * 1024 * 1024;
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("1000000000 {gib} {gib}"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.teardown().await;
}

#[test]
fn the_readme_shows_the_derivation_the_code_uses() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    assert!(
        readme.contains(&pgrehearse::sizing::rules_markdown()),
        "README.md \"Server size\" must hold the table of sizing::rules_markdown():\n{}",
        pgrehearse::sizing::rules_markdown()
    );
}

#[test]
fn check_shows_the_size_and_the_settings_derived_from_it() {
    // The size as an inline table (the fixture), under a header of its own,
    // and as dotted keys: the same plan.
    let text = std::fs::read_to_string(sized()).unwrap();
    let inline = "size = { cpus = 8, memory = \"32GB\" }\n";
    assert!(text.contains(inline), "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let mut files = vec![sized()];
    for (name, size) in [
        (
            "header",
            "[postgres.size]\ncpus = 8\nmemory = \"32GB\"\n[postgres]\n",
        ),
        ("dotted", "size.cpus = 8\nsize.memory = \"32GB\"\n"),
    ] {
        let written = if name == "header" {
            text.replace(&format!("[postgres]\n{inline}"), size)
        } else {
            text.replace(inline, size)
        };
        assert_ne!(written, text, "{name}");
        let path = tmp.path().join(format!("{name}.toml"));
        std::fs::write(&path, written).unwrap();
        files.push(path);
    }
    for file in files {
        let out = Command::new(common::bin())
            .arg("check")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let plan = String::from_utf8_lossy(&out.stdout);
        for line in [
            "  size 8 CPUs, 32GB",
            "    derived shared_buffers = 8GB",
            "    derived effective_cache_size = 24GB",
            "    derived maintenance_work_mem = 2GB (the scenario's setting wins)",
            "    derived autovacuum_work_mem = 2GB",
            "    derived max_parallel_maintenance_workers = 4",
            "    derived max_worker_processes = 8",
        ] {
            assert!(plan.lines().any(|l| l == line), "no `{line}` in:\n{plan}");
        }
    }
}

/// `run sized.toml --backend local ARGS`.
fn run_sized(args: &[&str]) -> common::Ran {
    let mut all = vec!["--backend", "local"];
    all.extend(args);
    common::run(&sized(), &all, &[])
}

#[test]
fn a_size_larger_than_the_machine_is_refused_before_anything_starts() {
    let ran = run_sized(&["--cpus", "1", "--memory", "64TB"]);
    ran.assert_code(2);
    assert!(
        ran.stderr.contains("larger than this machine")
            && ran.stderr.contains("--memory asks for 64TB of memory"),
        "{}",
        ran.stderr
    );
    assert!(
        common::run_dir_in(ran.out()).is_none(),
        "no run directory for a refused size"
    );
    assert!(ran.left_behind().is_empty(), "{:?}", ran.left_behind());
    // The scenario's 8 CPUs, without --cpus, are refused too.
    let ran = run_sized(&["--memory", "1GB"]);
    ran.assert_code(2);
    assert!(
        ran.stderr.contains("postgres.size.cpus (") && ran.stderr.contains("asks for 8 CPUs"),
        "{}",
        ran.stderr
    );
}

#[test]
fn bad_size_flags_exit_2_naming_the_flag() {
    for (args, says) in [
        (
            vec!["--cpus", "0"],
            "expected a whole number of CPUs from 1 to 1024",
        ),
        (
            vec!["--cpus", "1.5"],
            "expected a whole number of CPUs from 1 to 1024",
        ),
        (vec!["--cpus", "many"], "--cpus"),
        (
            vec!["--memory", "lots"],
            "--memory: `lots` is not an amount of memory",
        ),
        (vec!["--memory", "16"], "--memory: `16` has no unit"),
    ] {
        let ran = run_sized(&args);
        assert_eq!(ran.code, 2, "{args:?}: {}", ran.stderr);
        assert!(ran.stderr.contains(says), "{args:?}: {}", ran.stderr);
        assert!(common::run_dir_in(ran.out()).is_none());
    }
}

#[test]
fn run_json_records_the_size_the_flags_asked_for() {
    let ran = run_sized(&["-q", "--cpus", "1", "--memory", "1GB"]);
    ran.assert_code(0);
    assert!(ran.left_behind().is_empty(), "{:?}", ran.left_behind());
    let (_, rec) = ran.record();
    let size = rec.info.unwrap().size.expect("run.json size");
    assert_eq!((size.cpus, size.memory.as_deref()), (Some(1), Some("1GB")));
    assert_eq!(size.memory_bytes, Some(1024 * 1024 * 1024));
    let get = |n: &str| size.derived.iter().find(|d| d.name == n).cloned();
    let sb = get("shared_buffers").expect("shared_buffers derived");
    assert_eq!(sb.value, "256MB");
    assert!(sb.rule.contains("PGTune"), "{}", sb.rule);
    assert_eq!(
        get("maintenance_work_mem")
            .unwrap()
            .overridden_by
            .as_deref(),
        Some("512MB")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_url_backend_warns_that_it_applies_no_size() {
    // A server of our own to point the url backend at.
    let server = pgrehearse::backend::Backend::start(&common::test_options(&[]))
        .await
        .unwrap();
    let url = common::url_of(server.conn());
    let ran = tokio::task::spawn_blocking(move || {
        common::run(
            &sized(),
            &["--backend", "url", "--database-url", &url, "-q"],
            &[],
        )
    })
    .await
    .unwrap();
    server.teardown().await.unwrap();
    ran.assert_code(0);
    assert!(ran.left_behind().is_empty(), "{:?}", ran.left_behind());
    assert!(
        ran.stderr
            .contains("warning: the server size (8 CPUs, 32GB) is not applied"),
        "{}",
        ran.stderr
    );
    let size = ran.record().1.info.unwrap().size.expect("run.json size");
    assert!(size.applied.starts_with("not applied"), "{}", size.applied);
    assert!(size.derived.is_empty());
}
