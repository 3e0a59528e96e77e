//! An ephemeral cluster from the Postgres binaries on this machine.
//!
//! `initdb` into a fresh temp dir, start `postgres` on a free port of
//! 127.0.0.1 with its Unix socket in that (private) dir, create the work
//! database, and on teardown — or on drop, after a panic or an early error —
//! stop the postmaster and delete the dir. initdb and postgres refuse to run
//! as root, so as root both run as the `postgres` user (through `setpriv`).
//!
//! The postmaster is spawned directly (not through `pg_ctl`) so that its pid
//! is our child's pid, the `-c` settings are passed as real argv entries (no
//! shell quoting), and it sits in its own process group: a Ctrl-C aimed at
//! pgrehearse must not shut the server down under the rehearsal's feet.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;

use super::local_standby;
pub use super::pg_bin::{find_binaries, PgBin};
pub use super::postmaster::wipe_kept;
use super::postmaster::{
    free_port, kill_processes_in, wait_ready, ClusterDir, ClusterGuard, Postmaster, Runner,
    StartFailure,
};
use super::tls::Tls;
use super::{BackendOptions, ConnInfo, ServerLog};
use crate::error::{Error, Result};
use crate::sizing::Machine;

/// The database the harness works in; it is created by `start`.
pub const WORK_DB: &str = "pgrehearse";
/// Prefix of the temp dirs this backend creates (tests look for leftovers by it).
pub const TEMP_DIR_PREFIX: &str = "pgrehearse-";
const SUPERUSER: &str = "postgres";
const PORT_ATTEMPTS: usize = 5;

pub struct LocalCluster {
    conn: ConnInfo,
    bin: PgBin,
    version: String,
    version_num: u32,
    /// The streaming replica, when one was asked for.
    standby: Option<local_standby::Standby>,
    /// Owns the postmaster and the temp dir; stopping/deleting happens there.
    guard: ClusterGuard,
}

impl LocalCluster {
    pub async fn start(opts: &BackendOptions) -> Result<LocalCluster> {
        let dir = tempfile::Builder::new()
            .prefix(TEMP_DIR_PREFIX)
            .tempdir()
            .map_err(|e| Error::NoPostgres(format!("cannot create a temp dir: {e}")))?;
        Self::start_in(opts, ClusterDir::Temp(dir), &random_password()).await
    }

    /// Why a cluster in `dir` could not run here, when it could not: as
    /// root it runs as `postgres`, which must be able to reach `dir`.
    pub fn unusable_dir(dir: &Path) -> Option<String> {
        let runner = Runner::for_current_user().ok()?;
        let blocked = runner.unreachable_on_the_way_to(dir)?;
        Some(format!(
            "as root the cluster runs as the `postgres` user (initdb refuses root), which cannot \
             reach {}: {} is not searchable by it",
            dir.display(),
            blocked.display()
        ))
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
        if let Some(size) = &opts.size {
            crate::sizing::ensure_fits(size, Machine::this(), if opts.replica { 2 } else { 1 })?;
        }
        let bin = find_binaries(opts.version.as_deref())?;
        let runner = Runner::for_current_user()?;
        let mut guard = ClusterGuard {
            postmaster: None,
            standby: None,
            dir: Some(dir),
            runner: runner.clone(),
        };
        let root = guard.root().to_path_buf();
        if let Some(blocked) = runner.unreachable_on_the_way_to(&root) {
            let hint = match guard.dir {
                Some(ClusterDir::Kept(_)) => "set XDG_CACHE_HOME to a directory it can reach",
                _ => "set TMPDIR to a directory it can reach",
            };
            return Err(Error::NoPostgres(format!(
                "the cluster runs as the `postgres` user (initdb refuses root), which cannot \
                 reach {}: {} is not searchable by it ({hint})",
                root.display(),
                blocked.display()
            )));
        }
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
            let server = Postmaster {
                bin: &bin,
                runner: &runner,
                root: &root,
                data: &root.join("data"),
                log_path: &log_path,
                port,
            };
            guard.postmaster = Some(server.spawn(&opts.settings)?);
            match wait_ready(&mut guard.postmaster, &conn, &log_path).await {
                Ok(()) => {
                    let (version, version_num) = create_work_db(&conn).await?;
                    let standby = if opts.replica {
                        Some(
                            local_standby::start(&bin, &runner, &mut guard, &conn, &opts.settings)
                                .await?,
                        )
                    } else {
                        None
                    };
                    return Ok(LocalCluster {
                        conn,
                        bin,
                        version,
                        version_num,
                        standby,
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

    /// The streaming replica, described for run.json.
    pub fn replica(&self) -> Option<String> {
        self.standby.as_ref().map(|s| {
            format!(
                "local PostgreSQL {} hot standby on 127.0.0.1:{} (pg_basebackup of the primary, \
                 streaming over loopback)",
                self.version, s.port
            )
        })
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

async fn create_work_db(conn: &ConnInfo) -> Result<(String, u32)> {
    let client = conn
        .connect_to("postgres", "pgrehearse/harness")
        .await
        .map_err(|e| Error::NoPostgres(format!("cannot connect to the local cluster: {e}")))?;
    let (version, num) = crate::pg::server_version(&client).await?;
    crate::pg::require_supported(&version, num, "the local cluster")?;
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&WORK_DB])
        .await?
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {WORK_DB}"))
            .await?;
    }
    Ok((version, num))
}
