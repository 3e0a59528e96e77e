//! The local cluster's streaming replica: `pg_basebackup` of the primary
//! into the cluster's private temp dir, then a hot standby on another free
//! port of 127.0.0.1, run like the primary (as `postgres` when we are root,
//! in its own process group). Replication goes over loopback only; the
//! primary's pg_hba.conf from initdb already allows it there.
//!
//! The standby's postmaster is held by the cluster's guard, so every exit
//! path that stops the primary stops it first.

use std::path::Path;
use std::process::Stdio;

use super::local::{free_port, wait_ready, ClusterGuard, PgBin, Postmaster, Runner, StartFailure};
use super::replica::{self, standby_settings};
use super::ConnInfo;
use crate::error::{Error, Result};

/// A running standby of the local cluster.
#[derive(Debug)]
pub struct Standby {
    pub port: u16,
}

const PORT_ATTEMPTS: usize = 3;

/// Make the replica of the primary behind `primary` and start it; on
/// failure the guard's cleanup removes whatever was made.
pub(super) async fn start(
    bin: &PgBin,
    runner: &Runner,
    guard: &mut ClusterGuard,
    primary: &ConnInfo,
    settings: &[(String, String)],
) -> Result<Standby> {
    let root = guard.root().to_path_buf();
    let data = root.join("replica");
    base_backup(bin, runner, &root, &data, primary).await?;
    let log_path = root.join("replica.log");
    let settings = standby_settings(settings);
    let mut last = String::new();
    for _ in 0..PORT_ATTEMPTS {
        let port = free_port()?;
        let server = Postmaster {
            bin,
            runner,
            root: &root,
            data: &data,
            log_path: &log_path,
            port,
        };
        guard.standby = Some(server.spawn(&settings)?);
        let standby = ConnInfo {
            port,
            ..primary.clone()
        };
        match wait_ready(&mut guard.standby, &standby, &log_path).await {
            Ok(()) => {}
            Err(StartFailure::PortTaken) => {
                last = format!("port {port} was taken");
                continue;
            }
            Err(StartFailure::Fatal(e)) => return Err(replica_failed(e)),
        }
        let gone = || {
            let exited = guard
                .standby
                .as_mut()
                .is_none_or(|c| matches!(c.try_wait(), Ok(Some(_))));
            let log = exited.then(|| log_tail(&log_path));
            async move { log }
        };
        replica::wait_streaming(primary, gone)
            .await
            .map_err(replica_failed)?;
        return Ok(Standby { port });
    }
    Err(Error::NoPostgres(format!(
        "could not find a free port for the replica ({last})"
    )))
}

/// `pg_basebackup` of the primary into `data`, streaming the WAL it needs,
/// with the standby's recovery settings written (`-R`). The password goes
/// through the environment, never the command line.
async fn base_backup(
    bin: &PgBin,
    runner: &Runner,
    root: &Path,
    data: &Path,
    primary: &ConnInfo,
) -> Result<()> {
    let tool = bin.dir.join("pg_basebackup");
    if !tool.is_file() {
        return Err(Error::NoPostgres(format!(
            "the replica could not be made: no pg_basebackup in {}",
            bin.dir.display()
        )));
    }
    let mut cmd = runner.command(&tool);
    cmd.arg("--pgdata")
        .arg(data)
        .args(["--host", "127.0.0.1", "--port", &primary.port.to_string()])
        .args(["--username", &primary.user])
        .args(["--wal-method=stream", "--write-recovery-conf"])
        // The primary is idle and throwaway: no need to spread the
        // checkpoint, nor to fsync a copy that is thrown away too.
        .args(["--checkpoint=fast", "--no-sync", "--no-password"])
        .env(
            "PGPASSWORD",
            primary.password.as_deref().unwrap_or_default(),
        )
        .current_dir(root)
        .stdin(Stdio::null());
    let out = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| Error::NoPostgres(format!("cannot run pg_basebackup: {e}")))?;
    if !out.status.success() {
        return Err(Error::NoPostgres(format!(
            "the replica could not be made: pg_basebackup failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

fn replica_failed(e: Error) -> Error {
    match e {
        Error::NoPostgres(m) if !m.contains("replica") => {
            Error::NoPostgres(format!("the replica did not start: {m}"))
        }
        e => e,
    }
}

fn log_tail(path: &Path) -> String {
    super::last_lines(&std::fs::read_to_string(path).unwrap_or_default(), 6)
}
