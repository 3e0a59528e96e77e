//! A postmaster we spawn and own, for the local backend's primary and its
//! standby alike (`local.rs`, `local_standby.rs`): the binaries' runner
//! (directly, or as `postgres` when we are root), its directory and the
//! guard that stops it and removes that directory, its settings on the
//! command line, and waiting until it accepts connections.

use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::pg_bin::PgBin;
use super::ConnInfo;
use crate::error::{Error, Result};

/// How long the server gets to accept connections after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The OS user the server binaries run as when we are root.
const SUPERUSER: &str = "postgres";
/// How long a stopping server gets before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a cluster lives: a temp dir deleted at the end, or a kept one.
pub(super) enum ClusterDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl ClusterDir {
    pub(super) fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(d) => d.path(),
            ClusterDir::Kept(p) => p,
        }
    }
}

/// Stops the postmasters and removes the temp dir when dropped (a kept dir
/// stays, its cluster shut down cleanly).
pub(super) struct ClusterGuard {
    pub(super) postmaster: Option<Child>,
    /// The replica's postmaster; its data directory is inside the temp dir.
    pub(super) standby: Option<Child>,
    pub(super) dir: Option<ClusterDir>,
    pub(super) runner: Runner,
}

impl ClusterGuard {
    pub(super) fn root(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// The standby first: it would otherwise retry its primary until stopped.
    pub(super) fn stop_postmaster(&mut self) {
        let kept = matches!(self.dir, Some(ClusterDir::Kept(_)));
        stop(&self.runner, self.standby.take(), false);
        stop(&self.runner, self.postmaster.take(), kept);
    }

    pub(super) fn cleanup(&mut self) -> Result<()> {
        self.stop_postmaster();
        if let Some(ClusterDir::Temp(dir)) = self.dir.take() {
            let path = dir.path().to_path_buf();
            // A postmaster that was killed (not stopped) leaves its backends
            // running until they notice; an interrupted initdb leaves its
            // single-user postgres. Either would keep writing into the dir.
            kill_processes_in(&path);
            // Removal can race with the last of them exiting: retry briefly.
            let mut result = std::fs::remove_dir_all(&path);
            for _ in 0..20 {
                if result.is_ok() || !path.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
                kill_processes_in(&path);
                result = std::fs::remove_dir_all(&path);
            }
            // Deleted (or given up on) here: the TempDir must not try again.
            let _ = dir.keep();
            if let (Err(e), true) = (result, path.exists()) {
                return Err(Error::Other(anyhow::anyhow!(
                    "could not remove the cluster dir {}: {e}",
                    path.display()
                )));
            }
        }
        Ok(())
    }
}

/// Immediate shutdown (SIGQUIT) for a temp cluster: the data is thrown
/// away anyway, so a shutdown checkpoint would only cost time. Fast
/// shutdown (SIGINT) for a kept one, so the next start needs no crash
/// recovery. SIGKILL if it lingers.
pub(super) fn stop(runner: &Runner, child: Option<Child>, kept: bool) {
    let Some(mut child) = child else {
        return;
    };
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = runner.signal(child.id(), if kept { "INT" } else { "QUIT" });
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_)) | Err(_)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Remove a kept cluster's directory, stopping whatever still runs in it.
pub fn wipe_kept(dir: &Path) -> Result<()> {
    kill_processes_in(dir);
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::Other(anyhow::anyhow!(
            "could not remove the cluster dir {}: {e}",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

/// SIGKILL every process whose working directory is inside `dir` (postgres
/// processes run in their data directory, initdb in the cluster dir) and
/// wait up to a second for them to go. Only processes we may signal are
/// seen: ours, or any when we are root.
pub(super) fn kill_processes_in(dir: &Path) {
    let strays = || -> Vec<u32> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cwd = std::fs::read_link(e.path().join("cwd")).ok()?;
                (pid != std::process::id() && cwd.starts_with(dir)).then_some(pid)
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let pids = strays();
        if pids.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in pids {
            let _ = Command::new("kill")
                .args(["-s", "KILL", &pid.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for ClusterGuard {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}

/// How to run the server binaries: directly, or as `postgres` when we are root.
#[derive(Debug, Clone)]
pub(super) enum Runner {
    Direct,
    AsPostgres { uid: u32, gid: u32 },
}

impl Runner {
    pub(super) fn for_current_user() -> Result<Runner> {
        // /proc/self is owned by our effective uid; no unsafe geteuid needed.
        let euid = std::fs::metadata("/proc/self")
            .map(|m| m.uid())
            .unwrap_or(u32::MAX);
        if euid != 0 {
            return Ok(Runner::Direct);
        }
        let (uid, gid) = lookup_user(SUPERUSER).ok_or_else(|| {
            Error::NoPostgres(
                "running as root, and initdb refuses root, but there is no `postgres` user \
                 to run the local cluster as (create one, or run pgrehearse as a normal user)"
                    .into(),
            )
        })?;
        if which::which("setpriv").is_err() {
            return Err(Error::NoPostgres(
                "running as root needs `setpriv` (util-linux) to run the cluster as `postgres`"
                    .into(),
            ));
        }
        Ok(Runner::AsPostgres { uid, gid })
    }

    pub(super) fn command(&self, program: &Path) -> Command {
        match self {
            Runner::Direct => Command::new(program),
            Runner::AsPostgres { .. } => {
                let mut c = Command::new("setpriv");
                c.args([
                    "--reuid",
                    SUPERUSER,
                    "--regid",
                    SUPERUSER,
                    "--init-groups",
                    "--",
                ])
                .arg(program);
                c
            }
        }
    }

    /// The first directory on the way to `dir` (`dir` itself excluded: it
    /// is given to the server's user) that the server's user cannot search,
    /// when it runs as `postgres`: initdb and the postmaster would fail
    /// there with "Permission denied". Judged by the mode bits against the
    /// user and its primary group (`setpriv --init-groups` may add groups:
    /// then this says nothing and initdb's own error still does).
    pub(super) fn unreachable_on_the_way_to(&self, dir: &Path) -> Option<PathBuf> {
        use std::os::unix::fs::MetadataExt;
        let Runner::AsPostgres { uid, gid } = self else {
            return None;
        };
        let mut ancestors: Vec<&Path> = dir.ancestors().skip(1).collect();
        ancestors.reverse();
        ancestors.into_iter().find_map(|a| {
            let m = std::fs::metadata(a).ok()?;
            let mode = m.mode();
            let searchable = if m.uid() == *uid {
                mode & 0o100 != 0
            } else if m.gid() == *gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            (!searchable).then(|| a.to_path_buf())
        })
    }

    /// Make `path` owned by the user the server runs as.
    pub(super) fn give(&self, path: &Path) -> Result<()> {
        if let Runner::AsPostgres { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))?;
        }
        Ok(())
    }

    pub(super) fn signal(&self, pid: u32, sig: &str) -> std::io::Result<()> {
        Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|_| ())
    }
}

pub(super) fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let out = Command::new("getent")
        .args(["passwd", name])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .or_else(|| std::fs::read_to_string("/etc/passwd").ok())?;
    out.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.len() >= 4 && f[0] == name).then(|| Some((f[2].parse().ok()?, f[3].parse().ok()?)))?
    })
}

pub(super) fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::NoPostgres(format!("cannot bind a port on 127.0.0.1: {e}")))?;
    Ok(l.local_addr()?.port())
}

/// A `shared_preload_libraries` value without the libraries these binaries
/// do not have (a server without its contrib package would not start);
/// any other setting as it is.
fn installed_libraries(bin: &PgBin, key: &str, value: &str) -> String {
    if key != "shared_preload_libraries" {
        return value.to_string();
    }
    let Some(libdir) = pkglibdir(bin) else {
        return value.to_string();
    };
    value
        .split(',')
        .map(str::trim)
        .filter(|l| {
            let l = l.trim_matches('\'');
            // Only the harness's own library is dropped when missing: the
            // scenario's are the user's business (the server says what is wrong).
            l != "pg_stat_statements" || libdir.join(format!("{l}.so")).exists()
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Where these binaries load libraries from: the directory holding
/// plpgsql.so (every server has it) among pg_config's answer and the usual
/// places next to the binaries.
fn pkglibdir(bin: &PgBin) -> Option<PathBuf> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(out) = Command::new(bin.dir.join("pg_config"))
        .arg("--pkglibdir")
        .output()
    {
        let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && !dir.is_empty() {
            candidates.push(PathBuf::from(dir));
        }
    }
    if let Some(prefix) = bin.dir.parent() {
        for sub in ["lib", "lib/postgresql", "lib64/pgsql", "lib/pgsql"] {
            candidates.push(prefix.join(sub));
        }
    }
    candidates
        .into_iter()
        .find(|d| d.join("plpgsql.so").exists())
}

/// One postmaster to start: the primary, or the replica in its own data
/// directory beside it.
pub(super) struct Postmaster<'a> {
    pub bin: &'a PgBin,
    pub runner: &'a Runner,
    /// The private temp dir: the working directory and the socket's.
    pub root: &'a Path,
    pub data: &'a Path,
    pub log_path: &'a Path,
    pub port: u16,
}

impl Postmaster<'_> {
    pub(super) fn spawn(&self, settings: &[(String, String)]) -> Result<Child> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path)?;
        let socket_dir = self.root.display().to_string();
        // What makes the cluster private and its log ours.
        let port_s = self.port.to_string();
        let forced = [
            ("listen_addresses", "127.0.0.1"),
            ("port", port_s.as_str()),
            ("unix_socket_directories", socket_dir.as_str()),
            ("unix_socket_permissions", "0700"),
            ("logging_collector", "off"),
            ("log_destination", "stderr"),
        ];
        let mut cmd = self.runner.command(&self.bin.dir.join("postgres"));
        cmd.arg("-D").arg(self.data);
        let settings: Vec<(String, String)> = settings
            .iter()
            .map(|(k, v)| (k.clone(), installed_libraries(self.bin, k, v)))
            .collect();
        cmd.args(super::server_args(&settings, &forced));
        cmd.current_dir(self.root)
            .env_remove("PGDATA")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .process_group(0);
        cmd.spawn()
            .map_err(|e| Error::NoPostgres(format!("cannot start postgres: {e}")))
    }
}

pub(super) enum StartFailure {
    PortTaken,
    Fatal(Error),
}

/// Wait until the server `postmaster` runs accepts connections (as `conn`).
pub(super) async fn wait_ready(
    postmaster: &mut Option<Child>,
    conn: &ConnInfo,
    log_path: &Path,
) -> std::result::Result<(), StartFailure> {
    let deadline = Instant::now() + START_TIMEOUT;
    let cfg = conn.config_for("postgres");
    loop {
        if let Some(child) = postmaster.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                *postmaster = None;
                let log = std::fs::read_to_string(log_path).unwrap_or_default();
                if log.contains("could not bind") || log.contains("Address already in use") {
                    return Err(StartFailure::PortTaken);
                }
                return Err(StartFailure::Fatal(startup_error(status, &log)));
            }
        }
        match conn.open(&cfg).await {
            Ok(client) => {
                drop(client);
                return Ok(());
            }
            Err(e) if Instant::now() > deadline => {
                return Err(StartFailure::Fatal(Error::NoPostgres(format!(
                    "the local cluster did not accept connections within {}s ({e})",
                    START_TIMEOUT.as_secs()
                ))))
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The postmaster exited during startup: a rejected setting is bad input
/// (exit 2), anything else means no usable Postgres (exit 3).
fn startup_error(status: std::process::ExitStatus, log: &str) -> Error {
    let tail = super::last_lines(log, 8);
    let bad_setting = [
        "invalid value for parameter",
        "unrecognized configuration parameter",
    ];
    if bad_setting.iter().any(|s| log.contains(s)) {
        return Error::Usage(format!("the server rejected a setting:\n{tail}"));
    }
    Error::NoPostgres(format!(
        "the local postgres exited during startup ({status}):\n{tail}"
    ))
}
