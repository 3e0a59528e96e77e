//! An ephemeral cluster from the Postgres binaries on this machine.
//!
//! `initdb` into a fresh temp dir, start `postgres` on a free port of
//! 127.0.0.1 with its Unix socket in that (private) dir, create the work
//! database, and on teardown — or on drop, after a panic or an early error —
//! stop the postmaster and delete the dir. initdb and postgres refuse to run
//! as root, so as root both run as the `postgres` user (through `setpriv`).
//!
//! A *kept* cluster (`--reuse`, the cache) lives in a directory the caller
//! names instead: initdb only when it holds no cluster of this major yet,
//! a fast shutdown (with its checkpoint) at teardown, and the directory stays.
//!
//! The postmaster is spawned directly (not through `pg_ctl`) so that its pid
//! is our child's pid, the `-c` settings are passed as real argv entries (no
//! shell quoting), and it sits in its own process group: a Ctrl-C aimed at
//! pgrehearse must not shut the server down under the rehearsal's feet.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::tls::Tls;
use super::{BackendOptions, ConnInfo, ServerLog};
use crate::error::{Error, Result};

/// The database the harness works in; it is created by `start`.
pub const WORK_DB: &str = "pgrehearse";
/// Prefix of the temp dirs this backend creates (tests look for leftovers by it).
pub const TEMP_DIR_PREFIX: &str = "pgrehearse-";
const SUPERUSER: &str = "postgres";
/// How long the server gets to accept connections after it was spawned.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a stopping server gets before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
const PORT_ATTEMPTS: usize = 5;

pub struct LocalCluster {
    conn: ConnInfo,
    bin: PgBin,
    version: String,
    version_num: u32,
    /// Owns the postmaster and the temp dir; stopping/deleting happens there.
    guard: ClusterGuard,
}

/// A directory holding initdb, pg_ctl and postgres, and the version it reports.
#[derive(Debug, Clone)]
pub struct PgBin {
    pub dir: PathBuf,
    /// Major version, e.g. 15.
    pub major: u32,
}

impl LocalCluster {
    pub async fn start(opts: &BackendOptions) -> Result<LocalCluster> {
        let dir = tempfile::Builder::new()
            .prefix(TEMP_DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::NoPostgres(format!("cannot create a temp dir: {e}")))?;
        Self::start_in(opts, ClusterDir::Temp(dir), &random_password()).await
    }

    /// A kept cluster in `dir` (created if missing) whose superuser has
    /// `password`: started as it is when `dir/data` holds a cluster of the
    /// wanted major, else initdb'ed there first (whatever was in `dir`
    /// goes). Teardown leaves it stopped, in place. A cluster that does not
    /// start is an error: the caller decides to wipe it and start over.
    pub async fn start_kept(
        opts: &BackendOptions,
        dir: &Path,
        password: &str,
    ) -> Result<LocalCluster> {
        std::fs::create_dir_all(dir)?;
        // A postmaster left running by an invocation that was killed (we
        // hold the cache's lock, so it is nobody's now): its data stay good,
        // the next start recovers them.
        kill_processes_in(dir);
        Self::start_in(opts, ClusterDir::Kept(dir.to_path_buf()), password).await
    }

    async fn start_in(
        opts: &BackendOptions,
        dir: ClusterDir,
        password: &str,
    ) -> Result<LocalCluster> {
        let bin = find_binaries(opts.version.as_deref())?;
        let runner = Runner::for_current_user()?;
        let mut guard = ClusterGuard {
            postmaster: None,
            dir: Some(dir),
            runner: runner.clone(),
        };
        let root = guard.root().to_path_buf();
        // Private: the socket and the password file live here.
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o700))?;
        runner.give(&root)?;

        let data = root.join("data");
        let existing = std::fs::read_to_string(data.join("PG_VERSION")).ok();
        if existing.as_deref().map(str::trim) != Some(bin.major.to_string().as_str()) {
            if data.exists() {
                std::fs::remove_dir_all(&data)?;
            }
            initdb(&bin, &runner, &root, password).await?;
        }

        let log_path = root.join("server.log");
        let mut last_err = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_port()?;
            let conn = ConnInfo {
                host: "127.0.0.1".into(),
                port,
                user: SUPERUSER.into(),
                password: Some(password.to_string()),
                dbname: WORK_DB.into(),
                tls: Tls::plaintext(),
            };
            let child = spawn_postmaster(&bin, &runner, &root, &log_path, port, &opts.settings)?;
            guard.postmaster = Some(child);
            match wait_ready(&mut guard, &conn, &log_path).await {
                Ok(()) => {
                    let (version, version_num) = create_work_db(&conn).await?;
                    return Ok(LocalCluster {
                        conn,
                        bin,
                        version,
                        version_num,
                        guard,
                    });
                }
                Err(StartFailure::PortTaken) => {
                    guard.stop_postmaster();
                    last_err = Some(format!("port {port} was taken"));
                }
                Err(StartFailure::Fatal(e)) => return Err(e),
            }
        }
        Err(Error::NoPostgres(format!(
            "could not find a free port for the local cluster ({})",
            last_err.unwrap_or_default()
        )))
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    pub fn server_log(&self) -> Option<ServerLog> {
        Some(ServerLog::File(self.guard.root().join("server.log")))
    }

    pub fn describe(&self) -> String {
        format!(
            "local PostgreSQL {} ({})",
            self.version,
            self.bin.dir.display()
        )
    }

    /// `server_version_num`, e.g. 150018.
    pub fn server_version_num(&self) -> u32 {
        self.version_num
    }

    /// The postmaster's pid (tests check it is gone after teardown).
    pub fn postmaster_pid(&self) -> Option<u32> {
        self.guard.postmaster.as_ref().map(|c| c.id())
    }

    /// The temp dir holding the data directory, socket and log.
    pub fn dir(&self) -> &Path {
        self.guard.root()
    }

    pub async fn teardown(self) -> Result<()> {
        let LocalCluster { mut guard, .. } = self;
        tokio::task::spawn_blocking(move || guard.cleanup())
            .await
            .map_err(|e| Error::Other(anyhow::anyhow!("teardown task failed: {e}")))?
    }
}

/// Where a cluster lives: a temp dir deleted at the end, or a kept one.
enum ClusterDir {
    Temp(tempfile::TempDir),
    Kept(PathBuf),
}

impl ClusterDir {
    fn path(&self) -> &Path {
        match self {
            ClusterDir::Temp(d) => d.path(),
            ClusterDir::Kept(p) => p,
        }
    }
}

/// Stops the postmaster and removes the temp dir when dropped (a kept dir
/// stays, its cluster shut down cleanly).
struct ClusterGuard {
    postmaster: Option<Child>,
    dir: Option<ClusterDir>,
    runner: Runner,
}

impl ClusterGuard {
    fn root(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// Immediate shutdown (SIGQUIT) for a temp cluster: the data is thrown
    /// away anyway, so a shutdown checkpoint would only cost time. Fast
    /// shutdown (SIGINT) for a kept one, so the next start needs no crash
    /// recovery. SIGKILL if it lingers.
    fn stop_postmaster(&mut self) {
        let Some(mut child) = self.postmaster.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        let kept = matches!(self.dir, Some(ClusterDir::Kept(_)));
        let _ = self
            .runner
            .signal(child.id(), if kept { "INT" } else { "QUIT" });
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

    fn cleanup(&mut self) -> Result<()> {
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
fn kill_processes_in(dir: &Path) {
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
enum Runner {
    Direct,
    AsPostgres { uid: u32, gid: u32 },
}

impl Runner {
    fn for_current_user() -> Result<Runner> {
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

    fn command(&self, program: &Path) -> Command {
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

    /// Make `path` owned by the user the server runs as.
    fn give(&self, path: &Path) -> Result<()> {
        if let Runner::AsPostgres { uid, gid } = self {
            std::os::unix::fs::chown(path, Some(*uid), Some(*gid))?;
        }
        Ok(())
    }

    fn signal(&self, pid: u32, sig: &str) -> std::io::Result<()> {
        Command::new("kill")
            .args(["-s", sig, &pid.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|_| ())
    }
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
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

/// Where the server binaries are: PGREHEARSE_PG_BIN, then `pg_config --bindir`
/// and `initdb` on PATH, then Debian's /usr/lib/postgresql/<major>/bin
/// (newest first). With `want` ("15", "17.2") only that major qualifies.
pub fn find_binaries(want: Option<&str>) -> Result<PgBin> {
    let want_major: Option<u32> = match want {
        Some(v) => Some(
            v.split('.')
                .next()
                .and_then(|m| m.trim().parse().ok())
                .ok_or_else(|| Error::Usage(format!("bad Postgres version {v:?}")))?,
        ),
        None => None,
    };
    if let Ok(dir) = std::env::var("PGREHEARSE_PG_BIN") {
        let dir = PathBuf::from(dir);
        let bin = probe(&dir).ok_or_else(|| {
            Error::NoPostgres(format!(
                "PGREHEARSE_PG_BIN={} holds no working initdb and postgres",
                dir.display()
            ))
        })?;
        if let Some(m) = want_major.filter(|m| *m != bin.major) {
            return Err(Error::NoPostgres(format!(
                "PostgreSQL {m} was asked for, but PGREHEARSE_PG_BIN={} is version {}",
                dir.display(),
                bin.major
            )));
        }
        return Ok(bin);
    }

    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Ok(pg_config) = which::which("pg_config") {
        if let Ok(out) = Command::new(pg_config).arg("--bindir").output() {
            if out.status.success() {
                candidates.push(PathBuf::from(
                    String::from_utf8_lossy(&out.stdout).trim().to_string(),
                ));
            }
        }
    }
    if let Ok(initdb) = which::which("initdb") {
        let initdb = std::fs::canonicalize(&initdb).unwrap_or(initdb);
        if let Some(d) = initdb.parent() {
            candidates.push(d.to_path_buf());
        }
    }
    let mut debian: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((major, e.path().join("bin")))
        })
        .collect();
    debian.sort_by_key(|d| std::cmp::Reverse(d.0));
    candidates.extend(debian.into_iter().map(|(_, p)| p));

    let mut seen = Vec::new();
    for dir in candidates {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        if let Some(bin) = probe(&dir) {
            if want_major.is_none_or(|m| m == bin.major) {
                return Ok(bin);
            }
        }
    }
    let looked: Vec<String> = seen.iter().map(|p| p.display().to_string()).collect();
    Err(Error::NoPostgres(match want_major {
        Some(m) => format!(
            "no PostgreSQL {m} server binaries found (looked in: {}); install them \
             (Debian: apt-get install postgresql-{m}) or set PGREHEARSE_PG_BIN",
            if looked.is_empty() {
                "nothing found".into()
            } else {
                looked.join(", ")
            }
        ),
        None => "no PostgreSQL server binaries found (PGREHEARSE_PG_BIN, pg_config, PATH, \
                 /usr/lib/postgresql/*/bin); install them (Debian: apt-get install postgresql) \
                 or set PGREHEARSE_PG_BIN"
            .into(),
    }))
}

/// `dir` holds initdb and postgres; `postgres --version` tells the major.
fn probe(dir: &Path) -> Option<PgBin> {
    if !dir.join("initdb").is_file() {
        return None;
    }
    let out = Command::new(dir.join("postgres"))
        .arg("--version")
        .output()
        .ok()?;
    // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.split_whitespace().nth(2)?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some(PgBin {
        dir: dir.to_path_buf(),
        major,
    })
}

fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

async fn initdb(bin: &PgBin, runner: &Runner, root: &Path, password: &str) -> Result<()> {
    let pwfile = root.join("pwfile");
    std::fs::write(&pwfile, format!("{password}\n"))?;
    std::fs::set_permissions(&pwfile, std::fs::Permissions::from_mode(0o600))?;
    runner.give(&pwfile)?;
    let mut cmd = runner.command(&bin.dir.join("initdb"));
    cmd.arg("-D")
        .arg(root.join("data"))
        .args([
            "--username",
            SUPERUSER,
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            // The cluster is thrown away: no need to fsync its files.
            "--no-sync",
        ])
        .arg(format!("--pwfile={}", pwfile.display()))
        .current_dir(root)
        .env_remove("PGDATA")
        .stdin(Stdio::null());
    // A start abandoned mid-initdb (Ctrl-C) must not leave initdb running;
    // the postgres it spawned is reaped by the guard's cleanup.
    let out = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::NoPostgres(format!("cannot run initdb: {e}")))?;
    let _ = std::fs::remove_file(&pwfile);
    if !out.status.success() {
        let mut msg = format!(
            "initdb ({}) failed: {}",
            bin.dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        if matches!(runner, Runner::AsPostgres { .. }) {
            msg.push_str(
                "\n(it runs as the `postgres` user: the temp dir's parents must be \
                 searchable by it; set TMPDIR to change where the cluster goes)",
            );
        }
        return Err(Error::NoPostgres(msg));
    }
    Ok(())
}

fn free_port() -> Result<u16> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::NoPostgres(format!("cannot bind a port on 127.0.0.1: {e}")))?;
    Ok(l.local_addr()?.port())
}

fn spawn_postmaster(
    bin: &PgBin,
    runner: &Runner,
    root: &Path,
    log_path: &Path,
    port: u16,
    settings: &[(String, String)],
) -> Result<Child> {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log_path)?;
    let socket_dir = root.display().to_string();
    // Defaults the harness's own settings may override ...
    let defaults = [("log_line_prefix", "%m [%p] "), ("lc_messages", "C")];
    // ... and what makes the cluster private and its log ours, which nothing overrides.
    let port_s = port.to_string();
    let forced = [
        ("listen_addresses", "127.0.0.1"),
        ("port", port_s.as_str()),
        ("unix_socket_directories", socket_dir.as_str()),
        ("unix_socket_permissions", "0700"),
        ("logging_collector", "off"),
        ("log_destination", "stderr"),
    ];
    let mut cmd = runner.command(&bin.dir.join("postgres"));
    cmd.arg("-D").arg(root.join("data"));
    for kv in super::server_settings(&defaults, settings, &forced) {
        cmd.arg("-c").arg(kv);
    }
    cmd.current_dir(root)
        .env_remove("PGDATA")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    cmd.spawn()
        .map_err(|e| Error::NoPostgres(format!("cannot start postgres: {e}")))
}

enum StartFailure {
    PortTaken,
    Fatal(Error),
}

async fn wait_ready(
    guard: &mut ClusterGuard,
    conn: &ConnInfo,
    log_path: &Path,
) -> std::result::Result<(), StartFailure> {
    let deadline = Instant::now() + START_TIMEOUT;
    let cfg = conn.config_for("postgres");
    loop {
        if let Some(child) = guard.postmaster.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                guard.postmaster = None;
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
    let tail: Vec<&str> = log.lines().rev().take(8).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    let tail = tail.join("\n");
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

/// The work database, unless a kept cluster has it already.
async fn create_work_db(conn: &ConnInfo) -> Result<(String, u32)> {
    let client = conn
        .connect_to("postgres", "pgrehearse/harness")
        .await
        .map_err(|e| Error::NoPostgres(format!("cannot connect to the local cluster: {e}")))?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&WORK_DB])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {WORK_DB}"))
            .await?;
    }
    Ok(crate::pg::server_version(&client).await?)
}
