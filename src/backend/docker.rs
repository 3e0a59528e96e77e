//! A container started with testcontainers (`GenericImage`).
//!
//! The image is the caller's choice (--image / PGREHEARSE_IMAGE / scenario),
//! default the official `postgres:17` (or `postgres:<version>`). It must have
//! the official image's interface; .ci/build-postgres-image.sh builds one
//! offline. The port is published on 127.0.0.1 only, the password is random,
//! and the container (with its volumes) is removed on teardown or drop.
//!
//! testcontainers for Rust has no Ryuk reaper: removal on drop is done by
//! `ContainerAsync`'s own `Drop`, so nothing needs pulling besides the image.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use testcontainers::bollard::models::{HostConfig, PortBinding};
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt, ReuseDirective};

use super::docker_limits::engine_machine;
pub use super::docker_limits::Limits;
use super::docker_standby::{self, PrivateNetwork, StandbyPlan, HBA_SCRIPT};
use super::tls::Tls;
use super::{BackendOptions, ConnInfo, ServerLog};
use crate::error::{Error, Result};

pub const DEFAULT_IMAGE: &str = "postgres:17";
/// Every container we start carries `pgrehearse.pid=<our pid>`, so leftovers
/// can be traced to the process that made them.
pub const PID_LABEL: &str = "pgrehearse.pid";
/// Kept containers (`--reuse`) carry `pgrehearse.cache=<name>` instead: they
/// outlive the process.
pub const KEPT_LABEL: &str = "pgrehearse.cache";
const WORK_DB: &str = "pgrehearse";
const SUPERUSER: &str = "postgres";
const READY: &str = "database system is ready to accept connections";
/// Container creation on a vfs storage driver copies the whole image.
pub(super) const STARTUP_TIMEOUT: Duration = Duration::from_secs(180);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Set when the process was interrupted (Ctrl-C, SIGTERM): it has seconds to
/// exit, and removing a container can take that long (the vfs storage
/// driver deletes a full copy of the image). A removal the engine has
/// received is completed by the engine, so from then on we request removals
/// and wait for them at most [`INTERRUPTED_REMOVAL_WAIT`].
static INTERRUPTED: AtomicBool = AtomicBool::new(false);
const INTERRUPTED_REMOVAL_WAIT: Duration = Duration::from_secs(2);

/// Was the process interrupted? (Removals are then requested, not awaited.)
pub(super) fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// See [`INTERRUPTED`]: called by the signal handler.
pub fn stop_waiting_for_removals() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Remove a container; once interrupted, without waiting for the engine to
/// finish. (If we stop waiting, `ContainerAsync`'s own drop asks again and
/// gets a quick "removal already in progress".)
pub(super) async fn remove(container: Box<ContainerAsync<GenericImage>>) -> Result<()> {
    let id = container.id().to_string();
    let rm = container.rm();
    let done = if INTERRUPTED.load(Ordering::SeqCst) {
        match tokio::time::timeout(INTERRUPTED_REMOVAL_WAIT, rm).await {
            Ok(r) => r,
            Err(_) => Ok(()),
        }
    } else {
        rm.await
    };
    done.map_err(|e| Error::Other(anyhow::anyhow!("could not remove container {id}: {e}")))
}

pub struct DockerPostgres {
    conn: ConnInfo,
    image: String,
    version: String,
    version_num: u32,
    /// `None` once removed. Boxed: it is large and `Backend` is an enum.
    container: Option<Box<ContainerAsync<GenericImage>>>,
    /// The replica container, when one was asked for ...
    standby: Option<Box<ContainerAsync<GenericImage>>>,
    /// ... and the private network it shares with the primary.
    network: Option<PrivateNetwork>,
    /// The server's stderr, copied to a file for the log observer.
    log_dir: tempfile::TempDir,
    log_task: tokio::task::AbortHandle,
    /// Stopped, not removed, at teardown.
    kept: bool,
}

/// A kept container (`--reuse`): its name, and the password its superuser
/// was created with.
#[derive(Debug, Clone)]
pub struct Kept {
    pub name: String,
    pub password: String,
}

impl DockerPostgres {
    pub async fn start(opts: &BackendOptions) -> Result<DockerPostgres> {
        Self::start_with(opts, None).await
    }

    /// The container called `kept.name`, started again if it is stopped, or
    /// created (labelled [`KEPT_LABEL`], not with our pid) if it is gone.
    /// Teardown stops it and leaves it in place.
    pub async fn start_kept(opts: &BackendOptions, kept: &Kept) -> Result<DockerPostgres> {
        if opts.replica {
            return Err(Error::Usage(
                "--reuse keeps one server: it cannot keep a replica beside it".into(),
            ));
        }
        Self::start_with(opts, Some(kept)).await
    }

    async fn start_with(opts: &BackendOptions, kept: Option<&Kept>) -> Result<DockerPostgres> {
        let image = image_for(opts);
        let (name, tag) = split_image(&image);
        let password = kept.map_or_else(random_password, |k| k.password.clone());
        if let Some(size) = &opts.size {
            let servers = if opts.replica { 2 } else { 1 };
            crate::sizing::ensure_fits(size, engine_machine().await, servers)?;
        }
        let limits = Limits::of(opts.size.as_ref());
        let pid = std::process::id();
        // Created first: the primary's pg_hba.conf names its subnet.
        let network = match opts.replica {
            true => {
                Some(PrivateNetwork::create(format!("pgrehearse-{pid}-{}", short_random())).await?)
            }
            false => None,
        };

        let (label, container_name) = match kept {
            Some(k) => ((KEPT_LABEL, k.name.clone()), k.name.clone()),
            None => (
                (PID_LABEL, pid.to_string()),
                format!("pgrehearse-{pid}-{}", short_random()),
            ),
        };
        let request = GenericImage::new(name, tag)
            .with_exposed_port(5432.tcp())
            // The official entrypoint's init-time server logs to stdout, the
            // real one to stderr: only the second means "ready".
            .with_wait_for(WaitFor::message_on_stdout(READY))
            .with_wait_for(WaitFor::message_on_stderr(READY))
            .with_env_var("POSTGRES_USER", SUPERUSER)
            .with_env_var("POSTGRES_PASSWORD", &password)
            .with_env_var("POSTGRES_DB", WORK_DB)
            .with_cmd(postgres_command(&opts.settings))
            .with_label(label.0, label.1)
            .with_container_name(&container_name)
            .with_shm_size(limits.shm_bytes())
            .with_startup_timeout(STARTUP_TIMEOUT)
            .with_host_config_modifier(move |hc| {
                publish_on_loopback(hc);
                limits.apply(hc);
            })
            .with_reuse(if kept.is_some() {
                ReuseDirective::Always
            } else {
                ReuseDirective::Never
            });
        let request = match &network {
            Some(net) => request.with_copy_to(HBA_SCRIPT, net.hba_script()),
            None => request,
        };

        // Until testcontainers hands the container back, nothing removes it:
        // the guard does, if the start fails, times out or is abandoned.
        let mut created = CreatedGuard::new(container_name);
        let started = request.start().await;
        // It returned: no creation is in flight any more.
        created.pending = false;
        let container = started.map_err(|e| {
            Error::NoPostgres(format!(
                "could not start a container from {image}: {e}\n\
                 (this machine may not reach a registry: build a local image with \
                 `.ci/build-postgres-image.sh 17` and pass --image pgrehearse/postgres:17 \
                 or set PGREHEARSE_IMAGE)"
            ))
        })?;
        created.armed = false;
        let id = container.id().to_string();

        let log_dir = tempfile::Builder::new()
            .prefix("pgrehearse-docker-log-")
            .tempdir()?;
        let log_path = log_dir.path().join("server.log");
        let log_task = follow_stderr(&container, log_path.clone()).await?;

        // From here on, `this` removes the container if anything fails.
        let mut this = DockerPostgres {
            conn: ConnInfo {
                host: "127.0.0.1".into(),
                port: 0,
                user: SUPERUSER.into(),
                password: Some(password),
                dbname: WORK_DB.into(),
                tls: Tls::plaintext(),
            },
            image: image.clone(),
            version: String::new(),
            version_num: 0,
            container: Some(Box::new(container)),
            standby: None,
            network,
            log_dir,
            log_task,
            kept: kept.is_some(),
        };
        let container = this.container.as_ref().expect("just set");
        this.conn.port = container
            .get_host_port_ipv4(5432.tcp())
            .await
            .map_err(|e| Error::NoPostgres(format!("container {id}: no published port: {e}")))?;

        let (version, num) = wait_for_connection(&this.conn).await.map_err(|e| {
            Error::NoPostgres(format!(
                "the container from {image} logged ready but refused connections: {e}"
            ))
        })?;
        crate::pg::require_supported(&version, num, &format!("the container from {image}"))?;
        this.version = version;
        this.version_num = num;
        this.start_standby(&opts.settings, limits).await?;
        Ok(this)
    }

    /// With a private network (a replica was asked for): attach the primary
    /// to it and start the replica there.
    async fn start_standby(&mut self, settings: &[(String, String)], limits: Limits) -> Result<()> {
        let (Some(net), Some(primary)) = (&self.network, &self.container) else {
            return Ok(());
        };
        let primary_host = net.attach(primary.id()).await?;
        let standby = docker_standby::start(StandbyPlan {
            image: &self.image,
            network: net,
            primary_host,
            primary: &self.conn,
            settings,
            limits,
            container_name: format!(
                "pgrehearse-{}-{}-replica",
                std::process::id(),
                short_random()
            ),
        })
        .await?;
        self.standby = Some(standby);
        Ok(())
    }

    /// The streaming replica, described for run.json.
    pub fn replica(&self) -> Option<String> {
        let id = self.standby.as_ref()?.id();
        Some(format!(
            "docker PostgreSQL {} hot standby (container {}) on the private network {} \
             (internal, nothing published), made with pg_basebackup of the primary",
            self.version,
            &id[..id.len().min(12)],
            self.network.as_ref().map(|n| n.name()).unwrap_or_default()
        ))
    }

    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// The server's stderr, followed into a file.
    pub fn server_log(&self) -> Option<ServerLog> {
        Some(ServerLog::File(self.log_dir.path().join("server.log")))
    }

    pub fn server_version_num(&self) -> u32 {
        self.version_num
    }

    /// The container's id (tests check it is gone after teardown).
    pub fn container_id(&self) -> Option<String> {
        self.container.as_ref().map(|c| c.id().to_string())
    }

    pub fn describe(&self) -> String {
        let id = self.container_id().unwrap_or_default();
        format!(
            "docker PostgreSQL {} (image {}, container {})",
            self.version,
            self.image,
            &id[..id.len().min(12)]
        )
    }

    /// The replica first, then the network (detaching the primary), then
    /// the primary; every step is tried, the first error is returned.
    pub async fn teardown(mut self) -> Result<()> {
        self.log_task.abort();
        let standby = match self.standby.take() {
            Some(c) => remove(c).await,
            None => Ok(()),
        };
        let network = match self.network.take() {
            Some(n) => n.remove().await,
            None => Ok(()),
        };
        let primary = match self.container.take() {
            Some(c) if self.kept => {
                // Fast shutdown (SIGINT) so the next start needs no recovery;
                // dropping a reused container leaves it in place.
                let stopped = c.stop_with_timeout(Some(30)).await;
                stopped.map_err(|e| {
                    Error::Other(anyhow::anyhow!("could not stop container {}: {e}", c.id()))
                })
            }
            Some(c) => remove(c).await,
            None => Ok(()),
        };
        standby.and(network).and(primary)
    }
}

impl Drop for DockerPostgres {
    fn drop(&mut self) {
        self.log_task.abort();
        // The replica and the network, in that order, from a thread of
        // their own (see below for the primary).
        let standby = self.standby.take();
        let network = self.network.take();
        if standby.is_some() || network.is_some() {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    if let Some(c) = standby {
                        let _ = rt.block_on(remove(c));
                    }
                }
                drop(network);
            })
            .join();
        }
        let Some(container) = self.container.take() else {
            return;
        };
        // ContainerAsync removes itself on drop but needs a tokio runtime,
        // and waits for the removal to finish: not when we were interrupted.
        if INTERRUPTED.load(Ordering::SeqCst) {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    let _ = rt.block_on(remove(container));
                }
            })
            .join();
        } else if tokio::runtime::Handle::try_current().is_ok() {
            drop(container);
        } else {
            let _ = std::thread::spawn(move || {
                if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    rt.block_on(async move { drop(container) });
                }
            })
            .join();
        }
    }
}

/// Removes the container called `name` when dropped armed.
///
/// testcontainers removes a container only once it has handed it back, so a
/// start that fails or times out after the creation, or that is abandoned
/// (Ctrl-C), would leave it. Worse, an abandoned creation keeps running in
/// the engine: the container may appear a moment later (seconds on the vfs
/// storage driver). So while a creation may be pending, wait for it — unless
/// the engine's events show the container was already destroyed (the start
/// got as far as testcontainers' own drop guard).
pub(super) struct CreatedGuard {
    name: String,
    pub(super) armed: bool,
    /// `start` has not returned yet: a creation may be in flight.
    pub(super) pending: bool,
    /// When the start began (unix seconds), for the events query.
    since: i64,
}

impl CreatedGuard {
    /// Armed, with a creation of container `name` about to be in flight.
    pub(super) fn new(name: String) -> CreatedGuard {
        CreatedGuard {
            name,
            armed: true,
            pending: true,
            since: chrono::Utc::now().timestamp() - 1,
        }
    }
}

/// How long an abandoned creation may take to produce its container: a
/// vfs copy of the image on a busy disk takes seconds. Bounded so that a
/// Ctrl-C still ends the process within 10 s.
const ABANDONED_CREATE_WAIT: Duration = Duration::from_secs(8);

impl Drop for CreatedGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (name, pending, since) = (self.name.clone(), self.pending, self.since);
        // Own thread and runtime: we may be inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(remove_created(name, pending, since));
        })
        .join();
    }
}

async fn remove_created(name: String, pending: bool, since: i64) {
    use testcontainers::bollard::errors::Error as DockerError;
    use testcontainers::bollard::query_parameters::RemoveContainerOptions;
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() else {
        return;
    };
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    let deadline = Instant::now() + ABANDONED_CREATE_WAIT;
    loop {
        // Once the engine has the request it completes the removal even if
        // we stop waiting (which on vfs can take seconds): don't wait long.
        let removed = tokio::time::timeout(
            Duration::from_secs(2),
            docker.remove_container(&name, Some(options.clone())),
        )
        .await;
        if removed.is_err() {
            return;
        }
        let missing = matches!(
            removed,
            Ok(Err(DockerError::DockerResponseServerError {
                status_code: 404,
                ..
            }))
        );
        if !missing || !pending || was_destroyed(&docker, &name, since).await {
            return;
        }
        if Instant::now() > deadline {
            eprintln!(
                "pgrehearse: warning: the Docker engine was still creating container {name} \
                 when we gave up waiting; if it appears, remove it with `docker rm -f {name}`"
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Did the engine destroy a container called `name` since `since`?
async fn was_destroyed(docker: &testcontainers::bollard::Docker, name: &str, since: i64) -> bool {
    use futures_util::StreamExt;
    let options = testcontainers::bollard::query_parameters::EventsOptions {
        since: Some(since.to_string()),
        // Fractional "now": a whole second would make the engine hold the
        // stream open until that second has passed.
        until: Some(format!(
            "{:.6}",
            chrono::Utc::now().timestamp_micros() as f64 / 1e6
        )),
        filters: Some(HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("container".to_string(), vec![name.to_string()]),
            ("event".to_string(), vec!["destroy".to_string()]),
        ])),
    };
    let first = tokio::time::timeout(
        Duration::from_secs(3),
        docker.events(Some(options)).boxed().next(),
    )
    .await;
    matches!(first, Ok(Some(Ok(_))))
}

/// The image `opts` asks for: --image / PGREHEARSE_IMAGE / the scenario's,
/// else `postgres:<version>`, else [`DEFAULT_IMAGE`].
pub fn image_for(opts: &BackendOptions) -> String {
    match (&opts.image, &opts.version) {
        (Some(i), _) => i.clone(),
        (None, Some(v)) => format!("postgres:{v}"),
        (None, None) => DEFAULT_IMAGE.to_string(),
    }
}

/// What a container started for `opts` runs: its image and command line
/// (a kept container is found again by this).
pub fn identity(opts: &BackendOptions) -> String {
    format!(
        "{} {}",
        image_for(opts),
        postgres_command(&opts.settings).join(" ")
    )
}

/// Remove the container called `name` (with its volumes) if there is one.
pub async fn remove_named(name: &str) -> Result<()> {
    use testcontainers::bollard::errors::Error as DockerError;
    use testcontainers::bollard::query_parameters::RemoveContainerOptions;
    let docker = testcontainers::bollard::Docker::connect_with_defaults()
        .map_err(|e| Error::NoPostgres(format!("no Docker engine: {e}")))?;
    let options = RemoveContainerOptions {
        force: true,
        v: true,
        link: false,
    };
    match docker.remove_container(name, Some(options)).await {
        Ok(())
        | Err(DockerError::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(()),
        Err(e) => Err(Error::Other(anyhow::anyhow!(
            "could not remove container {name}: {e}"
        ))),
    }
}

/// `postgres -c k=v ...`; the published port needs the server on 5432,
/// listening everywhere in the container.
fn postgres_command(settings: &[(String, String)]) -> Vec<String> {
    let forced = [("listen_addresses", "*"), ("port", "5432")];
    std::iter::once("postgres".to_string())
        .chain(super::server_args(settings, &forced))
        .collect()
}

/// Publish 5432 on 127.0.0.1 (a random port) instead of every interface.
fn publish_on_loopback(hc: &mut HostConfig) {
    hc.publish_all_ports = Some(false);
    hc.port_bindings = Some(HashMap::from([(
        "5432/tcp".to_string(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".into()),
            host_port: Some(String::new()),
        }]),
    )]));
}

/// `registry:5000/team/pg:15` → (`registry:5000/team/pg`, `15`); no tag → `latest`.
pub(super) fn split_image(image: &str) -> (String, String) {
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (
            image[..last_slash + i].to_string(),
            image[last_slash + i + 1..].to_string(),
        ),
        None => (image.to_string(), "latest".to_string()),
    }
}

fn random_password() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), 32)
}

fn short_random() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric
        .sample_string(&mut rand::thread_rng(), 6)
        .to_lowercase()
}

async fn follow_stderr(
    container: &ContainerAsync<GenericImage>,
    path: PathBuf,
) -> Result<tokio::task::AbortHandle> {
    let mut stderr = container.stderr(true);
    let mut file = tokio::fs::File::create(&path).await?;
    let task = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        // Ends with an error when the container goes away: nothing to report.
        let _ = tokio::io::copy_buf(&mut stderr, &mut file).await;
        let _ = file.flush().await;
    });
    Ok(task.abort_handle())
}

async fn wait_for_connection(conn: &ConnInfo) -> Result<(String, u32), tokio_postgres::Error> {
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        match conn.open(&conn.config()).await {
            Ok(client) => return crate::pg::server_version(&client).await,
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Does a Docker engine answer (DOCKER_HOST, else the default socket) within 2 s?
pub async fn engine_answers() -> bool {
    let Ok(docker) = testcontainers::bollard::Docker::connect_with_defaults() else {
        return false;
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(2), docker.ping()).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use super::split_image;

    #[test]
    fn splits_image_references() {
        let s = |i: &str| {
            let (n, t) = split_image(i);
            format!("{n} {t}")
        };
        assert_eq!(s("postgres:17"), "postgres 17");
        assert_eq!(s("pgrehearse/postgres:15"), "pgrehearse/postgres 15");
        assert_eq!(
            s("registry:5000/team/pg:15.4"),
            "registry:5000/team/pg 15.4"
        );
        assert_eq!(s("registry:5000/team/pg"), "registry:5000/team/pg latest");
        assert_eq!(s("postgres"), "postgres latest");
    }
}
