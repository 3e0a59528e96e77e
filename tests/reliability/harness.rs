//! Running `pgrehearse run` as a child process and checking what it leaves.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use pgrehearse::record::RunRecord;

use crate::common;

/// What every run directory holds, even a partial one: the record ...
pub const RECORD_FILES: &[&str] = pgrehearse::record::FILES;

/// ... and the report rendered from it.
pub const REPORT_FILES: &[&str] = &["summary.json", "summary.md", "index.html"];

pub fn fixture(name: &str) -> PathBuf {
    common::fixture(&format!("reliability/{name}"))
}

/// tests/fixtures/good/tiny.toml: a scenario that runs clean in seconds.
pub fn tiny_fixture() -> String {
    common::fixture("good/tiny.toml").display().to_string()
}

/// A `pgrehearse run` child with its own TMPDIR (so its cluster can be told
/// apart from those of parallel tests) and its own output dir.
pub struct Rehearsal {
    child: Child,
    pub tmp: tempfile::TempDir,
    out: tempfile::TempDir,
    started: Instant,
    /// When [`Rehearsal::signal_in_stage`] sent its signal.
    signalled: Option<Instant>,
}

/// How a run ended.
pub struct Finished {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// From spawn to exit.
    pub elapsed: Duration,
    pub tmp: tempfile::TempDir,
    pub out: tempfile::TempDir,
    pub pid: u32,
}

impl Rehearsal {
    pub fn start(fixture_name: &str, args: &[&str], env: &[(&str, &str)]) -> Rehearsal {
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
            signalled: None,
        }
    }

    pub fn local(fixture_name: &str) -> Rehearsal {
        Rehearsal::start(fixture_name, &["--backend", "local", "-q"], &[])
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the run has created its run directory: provisioning is over
    /// and the rehearsal proper has begun.
    pub fn has_run_dir(&self) -> bool {
        common::run_dir_in(self.out.path()).is_some()
    }

    /// Wait for `cond` while the child runs; panics (after killing the
    /// child) if it exits first or `timeout` passes.
    pub fn wait_until(
        &mut self,
        what: &str,
        timeout: Duration,
        mut cond: impl FnMut(&Path) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        loop {
            if cond(self.tmp.path()) {
                return;
            }
            self.still_running(what, deadline);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Send `sig` in the stage `stage` says the run is in. The run is
    /// stopped (SIGSTOP) while `stage` looks, so it cannot move on between
    /// the look and the signal: the signal arrives in exactly the stage seen
    /// and is handled when the run goes on (SIGCONT). Looks every 5 ms;
    /// panics (after killing the child) if it exits first or `timeout`
    /// passes. `stage` must not panic: the run would stay stopped.
    pub fn signal_in_stage(
        &mut self,
        sig: &str,
        what: &str,
        timeout: Duration,
        mut stage: impl FnMut(&Rehearsal) -> bool,
    ) {
        let deadline = Instant::now() + timeout;
        let pid = self.pid();
        loop {
            self.still_running(what, deadline);
            // A first look while it runs; only a likely moment is confirmed
            // with the run stopped.
            if stage(self) {
                send_signal(pid, "STOP");
                let now = stage(self);
                if now {
                    send_signal(pid, sig);
                    self.signalled = Some(Instant::now());
                }
                send_signal(pid, "CONT");
                if now {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Panics (after killing the child) if it has exited or `deadline` has
    /// passed.
    fn still_running(&mut self, what: &str, deadline: Instant) {
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
    }

    /// Wait for the exit (killing the child after `timeout`).
    pub fn finish(mut self, timeout: Duration) -> Finished {
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
    pub fn run_dir(&self) -> Option<PathBuf> {
        common::run_dir_in(self.out.path())
    }

    /// Every run directory, as (scenario, `<out>/<scenario>/<stamp>/`),
    /// sorted.
    pub fn run_dirs(&self) -> Vec<(String, PathBuf)> {
        let mut dirs = Vec::new();
        for scenario in std::fs::read_dir(self.out.path()).unwrap().flatten() {
            let name = scenario.file_name().to_string_lossy().into_owned();
            for stamp in std::fs::read_dir(scenario.path()).unwrap().flatten() {
                dirs.push((name.clone(), stamp.path()));
            }
        }
        dirs.sort();
        dirs
    }

    pub fn record(&self) -> (PathBuf, RunRecord) {
        let dir = self
            .run_dir()
            .unwrap_or_else(|| panic!("no run directory; stderr:\n{}", self.stderr));
        let rec = RunRecord::read(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        (dir, rec)
    }

    pub fn assert_code(&self, want: i32) {
        assert_eq!(
            self.code,
            Some(want),
            "exit code (after {:?}); stderr:\n{}",
            self.elapsed,
            self.stderr
        );
    }

    /// No postgres process, no temp dir, no container of this run.
    pub fn assert_nothing_left(&self) {
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

    /// The record and the report are there, and the summary says `says`
    /// (what stopped the run, when something did).
    pub fn assert_report_written(&self, dir: &Path, says: &str) {
        for f in RECORD_FILES.iter().chain(REPORT_FILES) {
            assert!(dir.join(f).is_file(), "{f} missing in {}", dir.display());
        }
        let summary = std::fs::read_to_string(dir.join("summary.md")).unwrap();
        assert!(
            summary.contains(says),
            "summary.md does not say `{says}`:\n{summary}"
        );
    }
}

/// Processes whose working directory is under `dir`: postgres backends
/// run in their data directory but rename themselves ("postgres: ..."), so
/// an orphan of a killed postmaster does not show its data dir in its
/// command line. (The local backend's teardown finds strays the same way;
/// this is the test's own look, so a blind spot there cannot hide here.)
pub fn working_in(dir: &Path) -> Vec<String> {
    processes_in(dir)
        .into_iter()
        .map(|(pid, comm)| format!("process {pid} ({comm}) working in {}", dir.display()))
        .collect()
}

/// (pid, command name) of the live processes working under `dir`.
fn processes_in(dir: &Path) -> Vec<(u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            (cwd.starts_with(dir) && common::process_alive(pid))
                .then(|| (pid, comm.trim().to_string()))
        })
        .collect()
}

/// Is initdb creating the cluster under `tmp`? Processes work there (initdb
/// itself, and mostly the bootstrap and single-user servers it runs, which
/// have no `-D`), and no postmaster has been started yet.
pub fn initdb_running(tmp: &Path) -> bool {
    !processes_in(tmp).is_empty() && postmaster_pid(tmp).is_none()
}

/// Has `pid` installed its SIGINT and SIGTERM handlers (its signal mask of
/// caught signals, SigCgt in /proc)? Before that a signal kills it outright.
pub fn catches_signals(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let caught = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .unwrap_or(0);
    let bit = |sig: i32| 1u64 << (sig - 1);
    caught & bit(libc::SIGINT) != 0 && caught & bit(libc::SIGTERM) != 0
}

pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -s {sig} {pid}");
}

/// The cluster dir a local run created under its TMPDIR.
pub fn cluster_dir(tmp: &Path) -> Option<PathBuf> {
    common::entries_in(tmp).into_iter().find(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(pgrehearse::backend::local::TEMP_DIR_PREFIX))
    })
}

pub fn server_log_has(tmp: &Path, needle: &str) -> bool {
    cluster_dir(tmp)
        .and_then(|d| std::fs::read_to_string(d.join("server.log")).ok())
        .is_some_and(|log| log.contains(needle))
}

/// Did the server under `tmp` log a statement containing `sql`? (The
/// migration sends a step's SQL in one message with its clock reads, so the
/// logged statement holds more than the step's SQL.)
pub fn server_logged_statement(tmp: &Path, sql: &str) -> bool {
    cluster_dir(tmp)
        .and_then(|d| std::fs::read_to_string(d.join("server.log")).ok())
        .is_some_and(|log| {
            log.lines()
                .any(|l| l.contains("statement: ") && l.contains(sql))
        })
}

/// The postmaster of the cluster under `tmp`: the `postgres` process started
/// with `-D` (initdb has a `-D` too, and "postgres" in its path).
pub fn postmaster_pid(tmp: &Path) -> Option<u32> {
    common::postgres_processes_under(tmp)
        .iter()
        .filter(|p| p.contains(" -D "))
        .filter_map(|p| p.split_whitespace().next()?.parse().ok())
        .find(|pid: &u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
}

/// After [`Rehearsal::signal_in_stage`]: the exit code, within 10 s of the
/// signal, and nothing left.
pub fn interrupted(r: Rehearsal, code: i32) -> Finished {
    let sent = r.signalled.expect("a signal was sent");
    let run = r.finish(Duration::from_secs(30));
    let took = sent.elapsed();
    run.assert_code(code);
    assert!(took < Duration::from_secs(10), "exit took {took:?}");
    run.assert_nothing_left();
    run
}

/// Every file of `dir`, recursively, and the captured output: which contain
/// `secret`?
pub fn where_is(secret: &str, dir: &Path, run: &Finished) -> Vec<String> {
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
