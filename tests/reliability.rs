//! Failures, interruptions and safety, through the real binary against real
//! Postgres: a failing migration, a server that dies mid-run, SIGINT/SIGTERM
//! at different moments, the url backend on a server with data of its own,
//! secrets, and how exposed a local cluster is. After every run: nothing
//! left behind (no postgres process, no temp dir, no container, no scratch
//! database).

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgrehearse::record::RunRecord;
use pgrehearse::target::local::LocalCluster;
use pgrehearse::target::{BackendKind, ConnInfo, ServerLog, TargetOptions};

/// What every run directory holds, even a partial one.
const RECORD_FILES: &[&str] = &[
    "run.json",
    "statements.csv",
    "locks.csv",
    "waits.csv",
    "latency.csv",
    "errors.csv",
    "server.csv",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/reliability")
        .join(name)
}

/// A `pgrehearse run` child with its own TMPDIR (so its cluster can be told
/// apart from those of parallel tests) and its own output dir.
struct Rehearsal {
    child: Child,
    tmp: tempfile::TempDir,
    out: tempfile::TempDir,
    started: Instant,
}

/// How a run ended.
struct Finished {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// From spawn to exit.
    elapsed: Duration,
    tmp: tempfile::TempDir,
    out: tempfile::TempDir,
    pid: u32,
}

impl Rehearsal {
    fn start(fixture_name: &str, args: &[&str], env: &[(&str, &str)]) -> Rehearsal {
        let tmp = common::isolated_tmpdir();
        let out = tempfile::Builder::new()
            .prefix("pgrehearse-reliability-out")
            .tempdir()
            .unwrap();
        let mut cmd = Command::new(common::bin());
        cmd.arg("run")
            .arg(fixture(fixture_name))
            .arg("--out")
            .arg(out.path())
            .args(args)
            .env("TMPDIR", tmp.path())
            .env_remove("PGPASSWORD")
            .env_remove("PGREHEARSE_DATABASE_URL")
            .env_remove("PGREHEARSE_BACKEND")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn pgrehearse");
        Rehearsal {
            child,
            tmp,
            out,
            started: Instant::now(),
        }
    }

    fn local(fixture_name: &str) -> Rehearsal {
        Rehearsal::start(fixture_name, &["--backend", "local", "-q"], &[])
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&self, sig: &str) {
        send_signal(self.pid(), sig);
    }

    /// Wait for `cond` while the child runs; panics (after killing the
    /// child) if it exits first or `timeout` passes.
    fn wait_until(&mut self, what: &str, timeout: Duration, mut cond: impl FnMut(&Path) -> bool) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self.tmp.path()) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                let mut err = String::new();
                if let Some(e) = self.child.stderr.as_mut() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("pgrehearse exited ({status}) before {what}; stderr:\n{err}");
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("timed out waiting for {what}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Wait for the exit (killing the child after `timeout`).
    fn finish(mut self, timeout: Duration) -> Finished {
        let pid = self.pid();
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let mut stdout = String::new();
        let mut stderr = String::new();
        if let Some(o) = self.child.stdout.as_mut() {
            let _ = o.read_to_string(&mut stdout);
        }
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = e.read_to_string(&mut stderr);
        }
        Finished {
            code: status.and_then(|s| s.code()),
            stdout,
            stderr,
            elapsed,
            tmp: self.tmp,
            out: self.out,
            pid,
        }
    }
}

impl Finished {
    /// `<out>/<scenario>/<stamp>/`, if one was created.
    fn run_dir(&self) -> Option<PathBuf> {
        let scen = std::fs::read_dir(self.out.path())
            .ok()?
            .next()?
            .ok()?
            .path();
        Some(std::fs::read_dir(scen).ok()?.next()?.ok()?.path())
    }

    fn record(&self) -> (PathBuf, RunRecord) {
        let dir = self
            .run_dir()
            .unwrap_or_else(|| panic!("no run directory; stderr:\n{}", self.stderr));
        let rec = RunRecord::read(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        (dir, rec)
    }

    fn assert_code(&self, want: i32) {
        assert_eq!(
            self.code,
            Some(want),
            "exit code (after {:?}); stderr:\n{}",
            self.elapsed,
            self.stderr
        );
    }

    /// No postgres process, no temp dir, no container of this run.
    fn assert_nothing_left(&self) {
        // An interrupted run requests a container's removal without waiting
        // for the engine to finish it (seconds on the vfs storage driver).
        let deadline = Instant::now() + Duration::from_secs(20);
        let left = || {
            let mut left = common::left_behind(self.tmp.path(), self.pid);
            left.extend(working_in(self.tmp.path()));
            left
        };
        let mut found = left();
        while !found.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            found = left();
        }
        assert!(found.is_empty(), "left behind: {found:#?}");
    }

    fn assert_record_files(&self, dir: &Path) {
        for f in RECORD_FILES {
            assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
        }
    }
}

/// Processes whose working directory is under `dir`: postgres backends
/// run in their data directory but rename themselves ("postgres: ..."), so
/// an orphan of a killed postmaster does not show its data dir in its
/// command line.
fn working_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            (cwd.starts_with(dir) && common::process_alive(pid))
                .then(|| format!("process {pid} working in {}", cwd.display()))
        })
        .collect()
}

fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {sig} {pid}");
}

/// The cluster dir a local run created under its TMPDIR.
fn cluster_dir(tmp: &Path) -> Option<PathBuf> {
    common::entries_in(tmp).into_iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(pgrehearse::target::local::TEMP_DIR_PREFIX))
    })
}

fn server_log_has(tmp: &Path, needle: &str) -> bool {
    cluster_dir(tmp)
        .and_then(|d| std::fs::read_to_string(d.join("server.log")).ok())
        .is_some_and(|log| log.contains(needle))
}

/// The postmaster of the cluster under `tmp`: the process started with `-D`.
fn postmaster_pid(tmp: &Path) -> Option<u32> {
    common::postgres_processes_under(tmp)
        .iter()
        .find(|p| p.contains(" -D "))
        .and_then(|p| p.split_whitespace().next()?.parse().ok())
}

// ---------------------------------------------------------------------------
// A failing migration, a dying server.

#[test]
fn migration_sql_error_is_recorded_reported_and_exits_4() {
    let run = Rehearsal::local("sql-error.toml").finish(Duration::from_secs(120));
    run.assert_code(4);
    let (dir, rec) = run.record();
    run.assert_record_files(&dir);

    // The failing statement, with its SQLSTATE.
    let failed: Vec<_> = rec
        .statements
        .iter()
        .filter(|s| s.outcome == "error")
        .collect();
    assert_eq!(failed.len(), 1, "{:#?}", rec.statements);
    assert_eq!(failed[0].sql, "ALTER TABLE nope ADD COLUMN x int");
    assert_eq!(failed[0].sqlstate, "42P01");
    assert_eq!(failed[0].step, "alter missing table");
    // The step before it ran; the one after it did not.
    assert!(rec
        .statements
        .iter()
        .any(|s| s.step == "add column" && s.outcome == "ok"));
    assert!(rec.statements.iter().all(|s| s.step != "never runs"));

    // run.json says what failed.
    let info = rec.info.as_ref().expect("run.json");
    let failure = info.failure.as_deref().expect("run.json failure");
    assert!(
        failure.contains("alter missing table") && failure.contains("42P01"),
        "{failure}"
    );
    let step = info
        .steps
        .iter()
        .find(|s| s.step == "alter missing table")
        .expect("the failed step in run.json");
    assert_eq!(step.outcome, "error");
    // The traffic until then was recorded.
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);

    // The error names the failure and where the report is.
    assert!(run.stderr.contains("42P01"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&dir.display().to_string()),
        "{}",
        run.stderr
    );
    run.assert_nothing_left();
}

/// SIGKILL the postmaster once `marker` shows in the server log (the long
/// step has begun): the run must notice within seconds, write what it
/// recorded, exit 4 and leave nothing behind.
fn kill_the_server_during(fixture_name: &str, marker: &str, step_sql: &str) {
    let mut r = Rehearsal::local(fixture_name);
    r.wait_until("the long step", Duration::from_secs(90), |tmp| {
        server_log_has(tmp, marker)
    });
    let postmaster = postmaster_pid(r.tmp.path()).expect("the postmaster");
    send_signal(postmaster, "KILL");
    let killed = Instant::now();
    let run = r.finish(Duration::from_secs(60));
    let after_kill = killed.elapsed();
    run.assert_code(4);
    assert!(
        after_kill < Duration::from_secs(10),
        "took {after_kill:?} after the kill"
    );
    assert!(
        run.elapsed < Duration::from_secs(25),
        "the run took {:?}: it waited for the step",
        run.elapsed
    );

    let (dir, rec) = run.record();
    run.assert_record_files(&dir);
    let info = rec.info.as_ref().expect("run.json");
    let failure = info.failure.as_deref().expect("a failure in run.json");
    assert!(
        failure.contains("connection lost") || failure.contains("stopped answering"),
        "{failure}"
    );
    // What was recorded before the death was written.
    let step = rec
        .statements
        .iter()
        .find(|s| s.sql == step_sql)
        .expect("the long statement");
    assert_ne!(step.outcome, "ok");
    assert!(step.duration_ms < 20_000.0, "{step:?}");
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);
    assert!(!rec.server.is_empty(), "server samples were written");
    run.assert_nothing_left();
}

#[test]
fn a_server_killed_mid_run_is_noticed_within_seconds_and_exits_4() {
    kill_the_server_during(
        "long-step.toml",
        "CREATE TABLE sleep_marker",
        "SELECT pg_sleep(30)",
    );
}

/// A backend busy in a CPU-bound query does not notice its postmaster's
/// death: it must not outlive the run.
#[test]
fn a_killed_server_leaves_no_orphaned_backend() {
    kill_the_server_during(
        "busy-step.toml",
        "CREATE TABLE busy_marker",
        "SELECT count(*) FROM t a, t b, t c",
    );
}

// ---------------------------------------------------------------------------
// Ctrl-C and SIGTERM.

/// Signal a run at a moment, then: the exit code, within 10 s, nothing left.
fn interrupt(r: Rehearsal, sig: &str, code: i32) -> Finished {
    r.signal(sig);
    let sent = Instant::now();
    let run = r.finish(Duration::from_secs(30));
    let took = sent.elapsed();
    run.assert_code(code);
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    run.assert_nothing_left();
    run
}

#[test]
fn sigint_during_the_migration_cancels_writes_the_report_and_exits_130() {
    let mut r = Rehearsal::local("long-step.toml");
    r.wait_until("the 30 s step", Duration::from_secs(90), |tmp| {
        server_log_has(tmp, "CREATE TABLE sleep_marker")
    });
    // While it runs: how exposed is the cluster?
    assert_private_cluster(r.tmp.path());
    let run = interrupt(r, "INT", 130);

    let (dir, rec) = run.record();
    run.assert_record_files(&dir);
    let info = rec.info.as_ref().unwrap();
    let failure = info.failure.as_deref().unwrap_or_default();
    assert!(
        failure.starts_with("interrupted by SIGINT") && failure.contains("migrate / sleep"),
        "{failure}"
    );
    let sleep = rec
        .statements
        .iter()
        .find(|s| s.sql.contains("pg_sleep"))
        .expect("the sleep statement");
    assert_eq!(sleep.outcome, "cancelled", "{sleep:?}");
    assert!(sleep.duration_ms < 20_000.0, "{sleep:?}");
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);
    assert!(run.stderr.contains("SIGINT"), "{}", run.stderr);
}

#[test]
fn sigterm_during_seeding_exits_143_and_tears_down() {
    let mut r = Rehearsal::local("big-seed.toml");
    r.wait_until("seeding", Duration::from_secs(90), |tmp| {
        server_log_has(tmp, "CREATE TABLE big")
    });
    std::thread::sleep(Duration::from_millis(300));
    let run = interrupt(r, "TERM", 143);
    let (_, rec) = run.record();
    let failure = rec.info.and_then(|i| i.failure).unwrap_or_default();
    assert!(failure.contains("seeding"), "{failure}");
}

#[test]
fn sigterm_while_the_cluster_is_created_exits_143_and_leaves_nothing() {
    // The temp dir appears first (initdb is about to run or running).
    let mut r = Rehearsal::local("long-step.toml");
    r.wait_until("the cluster dir", Duration::from_secs(30), |tmp| {
        cluster_dir(tmp).is_some()
    });
    interrupt(r, "TERM", 143);
}

#[test]
fn sigint_while_the_server_starts_exits_130_and_leaves_nothing() {
    let mut r = Rehearsal::local("long-step.toml");
    r.wait_until("the postmaster", Duration::from_secs(60), |tmp| {
        postmaster_pid(tmp).is_some()
    });
    interrupt(r, "INT", 130);
}

// ---------------------------------------------------------------------------
// Exposure.

/// The cluster under `tmp` listens on 127.0.0.1 only (no other address, no
/// IPv6), its Unix socket sits in a private dir, and no connection is trusted
/// without a password.
fn assert_private_cluster(tmp: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let pid = postmaster_pid(tmp).expect("the postmaster");
    let dir = cluster_dir(tmp).expect("the cluster dir");
    let listening = listening_sockets(pid);
    assert!(!listening.is_empty(), "the postmaster listens on nothing?");
    for (addr, _) in &listening {
        assert!(
            addr.starts_with("127.0.0.1:"),
            "the postmaster listens on {addr}: {listening:?}"
        );
    }
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "{}", dir.display());
    let port = listening[0].0.rsplit(':').next().unwrap();
    let socket = dir.join(format!(".s.PGSQL.{port}"));
    assert!(socket.exists(), "no socket at {}", socket.display());
    assert_eq!(mode(&socket) & 0o077, 0, "{}", socket.display());
    let hba = std::fs::read_to_string(dir.join("data/pg_hba.conf")).unwrap();
    let rules: Vec<&str> = hba
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(!rules.is_empty());
    for rule in rules {
        assert!(
            rule.ends_with("scram-sha-256"),
            "pg_hba.conf allows more than passwords: {rule}"
        );
    }
}

/// TCP sockets in LISTEN state owned by `pid`, as ("a.b.c.d:port" or
/// "[v6]:port", inode).
fn listening_sockets(pid: u32) -> Vec<(String, u64)> {
    let inodes: Vec<u64> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| {
            let s = l.to_str()?.to_string();
            s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
        })
        .collect();
    let mut out = Vec::new();
    for (file, v6) in [("/proc/net/tcp", false), ("/proc/net/tcp6", true)] {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue;
            }
            let inode: u64 = f[9].parse().unwrap_or(0);
            if !inodes.contains(&inode) {
                continue;
            }
            let (addr, port) = f[1].split_once(':').unwrap();
            let port = u16::from_str_radix(port, 16).unwrap();
            let addr = if v6 {
                format!("[{addr}]")
            } else {
                let n = u32::from_str_radix(addr, 16).unwrap();
                std::net::Ipv4Addr::from(n.swap_bytes()).to_string()
            };
            out.push((format!("{addr}:{port}"), inode));
        }
    }
    out
}

// ---------------------------------------------------------------------------
// The url backend on a server that is not ours.

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

/// A server with data of its own: a database `existing_app` with a table,
/// and a table in `postgres`. Logs every DDL and data change with the
/// database it happened in.
async fn server_with_data() -> LocalCluster {
    let server = LocalCluster::start(&local_opts(&[
        ("log_statement", "mod"),
        ("log_line_prefix", "%m [%p] db=%d "),
    ]))
    .await
    .expect("a local cluster");
    let sc = server.conn().clone();
    let admin = common::connect(&sc, "postgres").await;
    admin
        .batch_execute("CREATE DATABASE existing_app")
        .await
        .unwrap();
    admin
        .batch_execute(
            "CREATE TABLE keep_me (id int PRIMARY KEY, note text); \
             INSERT INTO keep_me SELECT g, 'row ' || g FROM generate_series(1, 50) g;",
        )
        .await
        .unwrap();
    let app = common::connect(&sc, "existing_app").await;
    app.batch_execute(
        "CREATE TABLE orders (id int PRIMARY KEY, total int); \
         INSERT INTO orders SELECT g, g * 10 FROM generate_series(1, 500) g; \
         CREATE INDEX orders_total ON orders (total);",
    )
    .await
    .unwrap();
    server
}

/// Everything a run could have touched outside its scratch database:
/// databases, roles, every object and a checksum of every table's rows.
async fn server_state(sc: &ConnInfo) -> Vec<String> {
    let admin = common::connect(sc, "postgres").await;
    let mut state: Vec<String> = admin
        .query(
            "SELECT 'db ' || datname FROM pg_database WHERE datname NOT LIKE 'pgrehearse\\_%' \
             UNION ALL SELECT 'role ' || rolname FROM pg_roles ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    for db in ["postgres", "existing_app"] {
        let c = common::connect(sc, db).await;
        let objects = c
            .query(
                "SELECT c.relkind::text || ' ' || n.nspname || '.' || c.relname \
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') \
                 ORDER BY 1",
                &[],
            )
            .await
            .unwrap();
        state.extend(
            objects
                .iter()
                .map(|r| format!("{db}: {}", r.get::<_, String>(0))),
        );
        let table = if db == "postgres" {
            "keep_me"
        } else {
            "orders"
        };
        let sum: String = c
            .query_one(
                &format!("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) FROM {table} t"),
                &[],
            )
            .await
            .unwrap()
            .get(0);
        state.push(format!("{db}: {table} md5 {sum}"));
    }
    state
}

/// Statements the server logged, past byte `from` of its log, as run in a
/// database other than `scratch` (log_statement = mod: every DDL and data
/// change, by the simple or the extended protocol).
fn changes_outside(log: &Path, from: usize, scratch: &str) -> Vec<String> {
    let text = std::fs::read_to_string(log).unwrap();
    let re = regex::Regex::new(r"db=(\S*) LOG:  (?:statement|execute [^:]*): (.*)").unwrap();
    re.captures_iter(&text[from..])
        .filter(|c| &c[1] != scratch)
        .map(|c| format!("db={} {}", &c[1], &c[2]))
        .collect()
}

fn server_log_path(server: &LocalCluster) -> PathBuf {
    match server.server_log() {
        Some(ServerLog::File(p)) => p,
        None => panic!("a local cluster has a log"),
    }
}

/// Every file of `dir`, recursively, and the captured output: which contain
/// `secret`?
fn where_is(secret: &str, dir: &Path, run: &Finished) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                let bytes = std::fs::read(&p).unwrap();
                if String::from_utf8_lossy(&bytes).contains(secret) {
                    found.push(p.display().to_string());
                }
            }
        }
    }
    assert!(files >= RECORD_FILES.len(), "only {files} files searched");
    if run.stdout.contains(secret) {
        found.push("stdout".into());
    }
    if run.stderr.contains(secret) {
        found.push("stderr".into());
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_backend_touches_only_its_scratch_database_and_leaks_no_password() {
    let server = server_with_data().await;
    let sc = server.conn().clone();
    let password = sc.password.clone().unwrap();
    let before = server_state(&sc).await;
    let log = server_log_path(&server);
    let log_start = std::fs::metadata(&log).unwrap().len() as usize;
    let url = format!(
        "postgres://postgres:{password}@127.0.0.1:{}/postgres",
        sc.port
    );

    // Not quiet: progress and outcome lines are searched for the password too.
    let run = tokio::task::spawn_blocking(move || {
        Rehearsal::start(
            "url-safety.toml",
            &["--backend", "url", "--database-url", &url],
            &[],
        )
        .finish(Duration::from_secs(120))
    })
    .await
    .unwrap();
    run.assert_code(0);
    let (dir, rec) = run.record();
    run.assert_record_files(&dir);
    let info = rec.info.as_ref().unwrap();
    assert_eq!(info.backend, "url");
    assert!(rec.statements.iter().all(|s| s.outcome == "ok"));
    assert!(rec.latency.iter().map(|l| l.count).sum::<u64>() > 0);

    // The scratch database: uniquely named, created and dropped, and the
    // only thing changed outside it.
    let scratch = regex::Regex::new(r"scratch database (pgrehearse_\d{8}T\d{6}_[a-z0-9]{6})")
        .unwrap()
        .captures(&info.target)
        .unwrap_or_else(|| panic!("run.json target names no scratch database: {}", info.target))[1]
        .to_string();
    assert!(common::scratch_databases(&sc).await.is_empty());
    let outside = changes_outside(&log, log_start, &scratch);
    assert_eq!(
        outside,
        vec![
            format!("db=postgres CREATE DATABASE \"{scratch}\""),
            format!("db=postgres DROP DATABASE IF EXISTS \"{scratch}\" WITH (FORCE)"),
        ],
        "changes outside the scratch database"
    );
    assert_eq!(
        before,
        server_state(&sc).await,
        "the server's own data changed"
    );

    let leaks = where_is(&password, &dir, &run);
    assert!(leaks.is_empty(), "the password appears in {leaks:?}");
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pgpassword_appears_nowhere_even_when_the_migration_fails() {
    let server = server_with_data().await;
    let sc = server.conn().clone();
    let password = sc.password.clone().unwrap();
    let url = format!("postgres://postgres@127.0.0.1:{}/postgres", sc.port);
    let run = tokio::task::spawn_blocking(move || {
        Rehearsal::start(
            "sql-error.toml",
            &["--backend", "url", "--database-url", &url, "-v"],
            &[("PGPASSWORD", &password)],
        )
        .finish(Duration::from_secs(120))
    })
    .await
    .unwrap();
    run.assert_code(4);
    let (dir, _) = run.record();
    let leaks = where_is(sc.password.as_deref().unwrap(), &dir, &run);
    assert!(leaks.is_empty(), "the password appears in {leaks:?}");
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_backend_exits_3_clearly_on_refused_connection_and_bad_password() {
    let server = LocalCluster::start(&local_opts(&[]))
        .await
        .expect("a local cluster");
    let sc = server.conn().clone();
    let secret = "N0tTheRightPassw0rd";
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cases = [
        (
            format!("postgres://postgres:{secret}@127.0.0.1:{closed}/postgres"),
            "Connection refused",
        ),
        (
            format!(
                "postgres://postgres:{secret}@127.0.0.1:{}/postgres",
                sc.port
            ),
            "password authentication failed",
        ),
    ];
    for (url, why) in cases {
        let args = ["--backend", "url", "--database-url", url.as_str(), "-q"];
        let run = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
            move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                Rehearsal::start("url-safety.toml", &args, &[]).finish(Duration::from_secs(60))
            }
        })
        .await
        .unwrap();
        run.assert_code(3);
        assert!(
            run.stderr.contains(
                "no usable Postgres: cannot connect to postgres://postgres:***@127.0.0.1:"
            ),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains(why), "{why}: {}", run.stderr);
        assert!(!run.stderr.contains(secret) && !run.stdout.contains(secret));
        assert!(run.run_dir().is_none(), "no run directory without a server");
    }
    assert!(common::scratch_databases(&sc).await.is_empty());
    server.teardown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_on_the_url_backend_cancels_queries_and_drops_the_scratch_database() {
    let server = LocalCluster::start(&local_opts(&[("log_statement", "ddl")]))
        .await
        .expect("a local cluster");
    let sc = server.conn().clone();
    let log = server_log_path(&server);
    let url = format!(
        "postgres://postgres:{}@127.0.0.1:{}/postgres",
        sc.password.clone().unwrap(),
        sc.port
    );
    let run = tokio::task::spawn_blocking(move || {
        let mut r = Rehearsal::start(
            "long-step.toml",
            &["--backend", "url", "--database-url", &url, "-q"],
            &[],
        );
        r.wait_until("the 30 s step", Duration::from_secs(90), |_| {
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .contains("CREATE TABLE sleep_marker")
        });
        interrupt(r, "INT", 130)
    })
    .await
    .unwrap();
    let (_, rec) = run.record();
    let failure = rec.info.and_then(|i| i.failure).unwrap_or_default();
    assert!(failure.starts_with("interrupted by SIGINT"), "{failure}");
    // The sleep was cancelled on the server, not merely abandoned.
    let text = std::fs::read_to_string(server_log_path(&server)).unwrap();
    assert!(
        text.contains("canceling statement due to user request"),
        "no cancel in the server log"
    );
    assert!(common::scratch_databases(&sc).await.is_empty());
    let admin = common::connect(&sc, "postgres").await;
    let sessions: i64 = admin
        .query_one(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgrehearse/%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0, "sessions of the run are still connected");
    server.teardown().await.unwrap();
}

// ---------------------------------------------------------------------------
// The docker backend: its generated password, and no container left behind.

/// One docker test at a time: on the vfs storage driver every container
/// creation copies the whole image, and parallel copies make each one slow.
#[cfg(feature = "docker")]
static DOCKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// PGREHEARSE_IMAGE and a Docker engine, or (outside CI) a notice and None;
/// under CI=true their absence fails the test, as in tests/targets.rs.
#[cfg(feature = "docker")]
async fn docker_image_or_notice() -> Option<String> {
    let image = std::env::var("PGREHEARSE_IMAGE")
        .ok()
        .filter(|s| !s.is_empty());
    let engine = pgrehearse::target::docker::engine_answers().await;
    if let (Some(image), true) = (&image, engine) {
        return Some(image.clone());
    }
    let why = format!(
        "the docker reliability tests need PGREHEARSE_IMAGE (set: {}) and a Docker engine \
         (answers: {engine}); .ci/run provides both",
        image.is_some()
    );
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("{why}");
    }
    eprintln!("NOTICE: not testing the docker backend: {why}");
    None
}

/// The POSTGRES_PASSWORD of the container a pgrehearse process started.
#[cfg(feature = "docker")]
fn container_password(pid: u32) -> Option<String> {
    let id = common::containers_of_pid(pid)
        .first()?
        .split_whitespace()
        .next()?
        .to_string();
    let out = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{range .Config.Env}}{{println .}}{{end}}",
            &id,
        ])
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("POSTGRES_PASSWORD="))
        .map(str::to_string)
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_password_appears_nowhere_and_no_container_is_left() {
    let _one_at_a_time = DOCKER.lock().await;
    let Some(image) = docker_image_or_notice().await else {
        return;
    };
    let (run, password) = tokio::task::spawn_blocking(move || {
        let mut r = Rehearsal::start(
            "sql-error.toml",
            &["--backend", "docker", "--image", &image, "-v"],
            &[],
        );
        let pid = r.pid();
        let mut password = None;
        r.wait_until("the container", Duration::from_secs(300), |_| {
            password = container_password(pid);
            password.is_some()
        });
        (r.finish(Duration::from_secs(300)), password.unwrap())
    })
    .await
    .unwrap();
    assert!(password.len() >= 16, "a generated password");
    run.assert_code(4);
    let (dir, rec) = run.record();
    run.assert_record_files(&dir);
    assert_eq!(rec.info.as_ref().unwrap().backend, "docker");
    let leaks = where_is(&password, &dir, &run);
    assert!(leaks.is_empty(), "the password appears in {leaks:?}");
    run.assert_nothing_left();
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_docker_run_removes_the_container() {
    let _one_at_a_time = DOCKER.lock().await;
    let Some(image) = docker_image_or_notice().await else {
        return;
    };
    tokio::task::spawn_blocking(move || {
        let mut r = Rehearsal::start(
            "long-step.toml",
            &["--backend", "docker", "--image", &image, "-q"],
            &[],
        );
        let pid = r.pid();
        // The container exists (it may still be starting): interrupt.
        r.wait_until("the container", Duration::from_secs(300), |_| {
            !common::containers_of_pid(pid).is_empty()
        });
        interrupt(r, "TERM", 143);
    })
    .await
    .unwrap();
}

#[cfg(feature = "docker")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_early_in_a_docker_start_leaves_no_container() {
    let _one_at_a_time = DOCKER.lock().await;
    let Some(image) = docker_image_or_notice().await else {
        return;
    };
    tokio::task::spawn_blocking(move || {
        let r = Rehearsal::start(
            "long-step.toml",
            &["--backend", "docker", "--image", &image, "-q"],
            &[],
        );
        // Most likely while the engine creates the container (seconds on
        // vfs), which goes on in the engine after the client gave up.
        std::thread::sleep(Duration::from_millis(400));
        interrupt(r, "INT", 130);
    })
    .await
    .unwrap();
}
