//! Shared helpers for the integration tests: a real Postgres to talk to, the
//! binary under test, and checks that nothing was left behind.
//!
//! Every test file that says `mod common;` compiles this file on its own, so
//! not every helper is used everywhere.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use pgrehearse::backend::{Backend, BackendOptions, ConnInfo};
use pgrehearse::record::RunRecord;

/// The `pgrehearse` binary built for this test run.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_pgrehearse"))
}

/// `tests/fixtures/<rel>`.
pub fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(rel)
}

/// The run directory `<out>/<scenario>/<stamp>/` that `pgrehearse run --out
/// OUT` created, if any (the first, when there are several).
pub fn run_dir_in(out: &Path) -> Option<PathBuf> {
    let scenario = std::fs::read_dir(out).ok()?.next()?.ok()?.path();
    Some(std::fs::read_dir(scenario).ok()?.next()?.ok()?.path())
}

/// A `pgrehearse run` that has exited.
pub struct Ran {
    pub code: i32,
    pub pid: u32,
    pub stdout: String,
    pub stderr: String,
    /// The --out directory: removed when this is dropped, unless
    /// PGREHEARSE_KEEP_RUNS is set (then its path is printed).
    out: Option<tempfile::TempDir>,
    /// The child's TMPDIR: a fresh one of its own unless `env` named one,
    /// so that what it left there is its own.
    tmp: PathBuf,
    _own_tmp: tempfile::TempDir,
}

/// `pgrehearse run SCENARIO --out <a fresh temp dir> ARGS...`, with a fresh
/// TMPDIR and `env` added to the child's environment, waited for.
pub fn run(scenario: &Path, args: &[&str], env: &[(&str, &str)]) -> Ran {
    let out = tempfile::Builder::new()
        .prefix("pgrehearse-run-")
        .tempdir()
        .expect("temp dir");
    let own_tmp = isolated_tmpdir();
    let tmp = env
        .iter()
        .find(|(k, _)| *k == "TMPDIR")
        .map_or(own_tmp.path().to_path_buf(), |(_, v)| PathBuf::from(v));
    let mut cmd = Command::new(bin());
    cmd.arg("run")
        .arg(scenario)
        .arg("--out")
        .arg(out.path())
        .args(args)
        .env("TMPDIR", &tmp)
        .env_remove("PGREHEARSE_BACKEND")
        .env_remove("PGREHEARSE_DATABASE_URL")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd.spawn().expect("spawn pgrehearse");
    let pid = child.id();
    let output = child.wait_with_output().expect("wait for pgrehearse");
    Ran {
        code: output.status.code().unwrap_or(-1),
        pid,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        out: Some(out),
        tmp,
        _own_tmp: own_tmp,
    }
}

impl Ran {
    pub fn out(&self) -> &Path {
        self.out.as_ref().expect("kept").path()
    }

    /// The run directory and its record; panics (showing stderr) when the
    /// run wrote none.
    pub fn record(&self) -> (PathBuf, RunRecord) {
        let dir = run_dir_in(self.out())
            .unwrap_or_else(|| panic!("no run directory; stderr:\n{}", self.stderr));
        let rec = RunRecord::read(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        (dir, rec)
    }

    /// Panics, showing stderr, unless the exit code is `want`.
    pub fn assert_code(&self, want: i32) {
        assert_eq!(self.code, want, "exit code; stderr:\n{}", self.stderr);
    }

    /// What the run left in its TMPDIR and the Docker engine (see
    /// [`left_behind`]).
    pub fn left_behind(&self) -> Vec<String> {
        left_behind(&self.tmp, self.pid)
    }

    /// Every entry of `<out>/<scenario>/`: run directories and side-by-side
    /// directories, sorted.
    pub fn dirs_of(&self, scenario: &str) -> Vec<PathBuf> {
        let mut v = entries_in(&self.out().join(scenario));
        v.sort();
        v
    }
}

impl Drop for Ran {
    fn drop(&mut self) {
        if std::env::var_os("PGREHEARSE_KEEP_RUNS").is_some() {
            if let Some(out) = self.out.take() {
                eprintln!("kept run output in {}", out.keep().display());
            }
        }
    }
}

/// Options for a target: the url backend on PGREHEARSE_TEST_URL when set,
/// else an ephemeral local cluster.
pub fn test_options(settings: &[(&str, &str)]) -> BackendOptions {
    let url = std::env::var("PGREHEARSE_TEST_URL")
        .ok()
        .filter(|u| !u.is_empty());
    match url {
        Some(url) => BackendOptions::url(&url),
        None => BackendOptions::local(settings),
    }
}

/// A running server with a fresh work database, torn down on drop (the
/// backends' own drop safety nets) or explicitly with [`TestServer::teardown`].
pub struct TestServer {
    target: Option<Backend>,
}

/// A server for one test: PGREHEARSE_TEST_URL (url backend, a scratch
/// database) when set, else a local cluster started through `Backend::start`.
pub async fn test_server() -> TestServer {
    test_server_with(&[]).await
}

/// Like [`test_server`] with server settings (ignored by the url backend,
/// which does not own the server).
pub async fn test_server_with(settings: &[(&str, &str)]) -> TestServer {
    let opts = test_options(settings);
    match Backend::start(&opts).await {
        Ok(t) => TestServer { target: Some(t) },
        Err(e) => panic!("cannot provision a test server ({:?}): {e}", opts.backend),
    }
}

impl TestServer {
    pub fn target(&self) -> &Backend {
        self.target.as_ref().expect("torn down")
    }

    pub fn conn(&self) -> &ConnInfo {
        self.target().conn()
    }

    /// A client on the work database; its connection runs on a spawned task.
    pub async fn client(&self) -> tokio_postgres::Client {
        connect(self.conn(), &self.conn().dbname).await
    }

    /// Stop and remove the server (or drop the scratch database).
    pub async fn teardown(mut self) {
        if let Some(t) = self.target.take() {
            t.teardown().await.expect("teardown");
        }
    }
}

/// A `postgres://` URL with the password of the server behind `conn` (a
/// test's own), over TCP: what `--database-url` takes.
pub fn url_of(c: &ConnInfo) -> String {
    let host = if c.host.starts_with('/') {
        "127.0.0.1"
    } else {
        c.host.as_str()
    };
    format!(
        "postgres://{}:{}@{host}:{}/{}",
        c.user,
        c.password.clone().unwrap_or_default(),
        c.port,
        c.dbname
    )
}

/// A local cluster of our own to point the url backend (or `seed`) at: the
/// cluster, its connection, and a URL to its `postgres` database.
pub async fn own_server(
    settings: &[(&str, &str)],
) -> (pgrehearse::backend::local::LocalCluster, ConnInfo, String) {
    let server = pgrehearse::backend::local::LocalCluster::start(&BackendOptions::local(settings))
        .await
        .expect("a local cluster");
    let sc = server.conn().clone();
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        sc.password.clone().unwrap(),
        sc.port
    );
    (server, sc, url)
}

/// A client on `dbname` of the server behind `conn`.
pub async fn connect(conn: &ConnInfo, dbname: &str) -> tokio_postgres::Client {
    conn.connect_to(dbname, "pgrehearse-test")
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", conn.redacted()))
}

/// A fresh temp dir to use as TMPDIR for a child `pgrehearse`, so that the
/// clusters *it* creates can be told apart from those of parallel tests.
/// Searchable by others (0755): the cluster runs as `postgres` under root.
pub fn isolated_tmpdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::Builder::new()
        .prefix("pgrehearse-test-")
        .tempdir()
        .expect("temp dir");
    std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    d
}

/// Is a process with this pid still there (and not a zombie)?
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ..." — the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Postgres processes whose command line mentions `dir` (a postmaster runs
/// as `postgres -D <dir>/pgrehearse-xxx/data ...`): "pid cmdline" each.
pub fn postgres_processes_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmd = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmd.contains("postgres") && cmd.contains(&needle) && process_alive(pid) {
            found.push(format!("{pid} {}", cmd.trim()));
        }
    }
    found
}

/// Entries left in `dir` (e.g. an isolated TMPDIR after a run).
pub fn entries_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect()
}

/// Containers (running or not) that a pgrehearse process with this pid
/// started: the docker backend labels them `pgrehearse.pid=<pid>`.
/// Empty when no Docker engine answers.
pub fn containers_of_pid(pid: u32) -> Vec<String> {
    docker_ps(&format!("label=pgrehearse.pid={pid}"))
}

/// Docker networks that a pgrehearse process with this pid created (for a
/// replica); labelled like its containers. Empty when no engine answers.
pub fn networks_of_pid(pid: u32) -> Vec<String> {
    docker_list(
        &["network", "ls"],
        "{{.ID}} {{.Name}}",
        &format!("label=pgrehearse.pid={pid}"),
    )
}

/// All containers started by pgrehearse, any process.
pub fn pgrehearse_containers() -> Vec<String> {
    docker_ps("label=pgrehearse.pid")
}

fn docker_ps(filter: &str) -> Vec<String> {
    docker_list(&["ps", "-a"], "{{.ID}} {{.Names}} {{.Status}}", filter)
}

/// `docker <what> --no-trunc --format <format> --filter <filter>`, a line
/// per object.
fn docker_list(what: &[&str], format: &str, filter: &str) -> Vec<String> {
    let Ok(out) = Command::new("docker")
        .args(what)
        .args(["--no-trunc", "--format", format, "--filter", filter])
        .output()
    else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Scratch databases of the url backend (`pgrehearse_<timestamp>_<random>`)
/// on the server behind `conn`.
pub async fn scratch_databases(conn: &ConnInfo) -> Vec<String> {
    let client = connect(conn, "postgres").await;
    client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'pgrehearse\\_%' ORDER BY 1",
            &[],
        )
        .await
        .expect("list databases")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// After a child `pgrehearse` (pid `pid`, TMPDIR `tmp`) exited: no cluster
/// process, no temp dir, no container or network of its own. Returns what
/// was left.
pub fn left_behind(tmp: &Path, pid: u32) -> Vec<String> {
    let mut left = postgres_processes_under(tmp);
    left.extend(
        entries_in(tmp)
            .into_iter()
            .map(|p| format!("dir {}", p.display())),
    );
    left.extend(
        containers_of_pid(pid)
            .into_iter()
            .map(|c| format!("container {c}")),
    );
    left.extend(
        networks_of_pid(pid)
            .into_iter()
            .map(|n| format!("network {n}")),
    );
    left
}

/// Is this a CI run? `CI` set to anything but empty, `0` or `false`
/// (GitHub Actions and most services say `true`, some `1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        !(v.is_empty() || v == "0" || v.eq_ignore_ascii_case("false"))
    })
}

/// Something a test needs is not on this machine (`what` says what, and for
/// what). In CI that fails the test: CI must provide it. Elsewhere it prints
/// a notice and the caller returns without checking.
pub fn unavailable(what: &str) {
    if in_ci() {
        panic!("CI must provide {what}, and it is missing");
    }
    eprintln!("NOTICE: not checked here: missing {what}");
}

/// The docker tests need PGREHEARSE_IMAGE (a local image: this machine cannot
/// pull) and an engine: the image, or [`unavailable`] and None.
#[cfg(feature = "docker")]
pub async fn docker_image_or_notice() -> Option<String> {
    let image = std::env::var("PGREHEARSE_IMAGE")
        .ok()
        .filter(|s| !s.is_empty());
    let engine = pgrehearse::backend::docker::engine_answers().await;
    if let (Some(image), true) = (&image, engine) {
        return Some(image.clone());
    }
    unavailable(&format!(
        "PGREHEARSE_IMAGE (set: {}) and a Docker engine (answers: {engine}) for the docker \
         backend tests; .ci/run provides both",
        image.is_some()
    ));
    None
}

/// A JSON file of a run directory (summary.json, run.json, ...), parsed.
pub fn json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A CSV file of a run directory: each row by its column names.
pub fn csv_rows(path: &Path) -> Vec<std::collections::HashMap<String, String>> {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// git in `dir`, with an identity for commits; it must succeed (its stderr
/// in the panic otherwise).
pub fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .expect("git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
