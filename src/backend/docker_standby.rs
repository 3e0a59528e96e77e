//! The docker backend's streaming replica: a private Docker network that
//! pgrehearse creates (internal: no route out, no published ports), the
//! primary attached to it besides its default bridge (where its port stays
//! published on 127.0.0.1), and a second container from the same image that
//! makes itself a standby with `pg_basebackup` over that network and runs as
//! a hot standby. No other address is contacted: replication goes from one
//! container to the other on the private network only, and the primary's
//! pg_hba.conf lets replication in from that network's subnet alone.
//!
//! The image's entrypoint (the official one, or .ci/build-postgres-image.sh's)
//! runs a command that is not `postgres` as given: the replica's command is
//! a short bash script, its settings passed as arguments (no quoting).

use std::collections::HashMap;
use std::time::Duration;

use testcontainers::bollard::models::{
    EndpointSettings, HostConfig, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use testcontainers::bollard::Docker;
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use super::container::{split_image, CreatedGuard, PID_LABEL};
use super::docker_limits::Limits;
use super::replica::{self, standby_settings};
use super::ConnInfo;
use crate::error::{Error, Result};

/// Where the primary's entrypoint sources it at initdb time.
pub const HBA_SCRIPT: &str = "/docker-entrypoint-initdb.d/pgrehearse-replication.sh";
/// How long the engine may take to detach a container and remove the
/// network; once interrupted, the process has seconds to exit: the engine
/// completes a request it has received without us.
fn remove_wait() -> Duration {
    if super::container::interrupted() {
        Duration::from_secs(2)
    } else {
        Duration::from_secs(30)
    }
}

const STANDBY_SCRIPT: &str = r#"set -e
d=/var/lib/postgresql/pgrehearse-replica
mkdir -p -m 0700 "$d"
pg_basebackup --pgdata "$d" --host "$PRIMARY_HOST" --port 5432 --username "$PGUSER" \
  --wal-method=stream --write-recovery-conf --checkpoint=fast --no-sync --no-password
exec postgres -D "$d" "$@"
"#;

/// A Docker network of our own, internal; removed on drop if not before.
pub struct PrivateNetwork {
    /// `None` once removed.
    name: Option<String>,
    /// Its IPv4 subnet, e.g. 172.18.0.0/16.
    pub subnet: String,
}

impl PrivateNetwork {
    /// Create `pgrehearse-<pid>-<random>`, internal, labelled with our pid.
    pub async fn create(name: String) -> Result<PrivateNetwork> {
        let docker = engine()?;
        docker
            .create_network(NetworkCreateRequest {
                name: name.clone(),
                internal: Some(true),
                labels: Some(HashMap::from([(
                    PID_LABEL.to_string(),
                    std::process::id().to_string(),
                )])),
                ..Default::default()
            })
            .await
            .map_err(|e| Error::NoPostgres(format!("cannot create a Docker network: {e}")))?;
        // From here on, drop removes it.
        let mut net = PrivateNetwork {
            name: Some(name.clone()),
            subnet: String::new(),
        };
        let inspect = docker
            .inspect_network(&name, None)
            .await
            .map_err(|e| Error::NoPostgres(format!("cannot inspect network {name}: {e}")))?;
        net.subnet = inspect
            .ipam
            .and_then(|i| i.config)
            .into_iter()
            .flatten()
            .find_map(|c| c.subnet.filter(|s| s.contains('.')))
            .ok_or_else(|| Error::NoPostgres(format!("network {name} has no IPv4 subnet")))?;
        Ok(net)
    }

    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or_default()
    }

    /// The init script that lets replication in from this network only.
    pub fn hba_script(&self) -> Vec<u8> {
        format!(
            "printf 'host replication all {} scram-sha-256\\n' >> \"$PGDATA/pg_hba.conf\"\n",
            self.subnet
        )
        .into_bytes()
    }

    /// Attach `container` (the primary); its address on this network.
    pub async fn attach(&self, container: &str) -> Result<String> {
        let docker = engine()?;
        let failed = |e: String| {
            Error::NoPostgres(format!(
                "cannot attach the primary to network {}: {e}",
                self.name()
            ))
        };
        docker
            .connect_network(
                self.name(),
                NetworkConnectRequest {
                    container: container.to_string(),
                    endpoint_config: Some(EndpointSettings::default()),
                },
            )
            .await
            .map_err(|e| failed(e.to_string()))?;
        let inspect = docker
            .inspect_container(container, None)
            .await
            .map_err(|e| failed(e.to_string()))?;
        inspect
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(self.name()))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| failed("no address on it".into()))
    }

    /// Detach every container still attached, then remove the network.
    pub async fn remove(mut self) -> Result<()> {
        match self.name.take() {
            Some(name) => remove_network(&name).await,
            None => Ok(()),
        }
    }
}

impl Drop for PrivateNetwork {
    fn drop(&mut self) {
        let Some(name) = self.name.take() else {
            return;
        };
        // Own thread and runtime: we may be inside or outside a runtime.
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                if let Err(e) = rt.block_on(remove_network(&name)) {
                    crate::say!("pgrehearse: teardown: {e}");
                }
            }
        })
        .join();
    }
}

fn engine() -> Result<Docker> {
    Docker::connect_with_defaults().map_err(|e| Error::NoPostgres(format!("no Docker engine: {e}")))
}

async fn remove_network(name: &str) -> Result<()> {
    let docker = engine()?;
    let attached: Vec<String> = match docker.inspect_network(name, None).await {
        Ok(n) => n.containers.unwrap_or_default().into_keys().collect(),
        Err(_) => Vec::new(),
    };
    for container in attached {
        let _ = tokio::time::timeout(
            remove_wait(),
            docker.disconnect_network(
                name,
                NetworkDisconnectRequest {
                    container,
                    force: Some(true),
                },
            ),
        )
        .await;
    }
    match tokio::time::timeout(remove_wait(), docker.remove_network(name)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) if e.to_string().contains("404") => Ok(()),
        Ok(Err(e)) => Err(Error::Other(anyhow::anyhow!(
            "could not remove network {name}: {e}"
        ))),
        Err(_) => Err(Error::Other(anyhow::anyhow!(
            "could not remove network {name}: the engine did not answer"
        ))),
    }
}

/// What the replica container is made from.
pub struct StandbyPlan<'a> {
    pub image: &'a str,
    pub network: &'a PrivateNetwork,
    /// The primary's address on the private network.
    pub primary_host: String,
    pub primary: &'a ConnInfo,
    /// The primary's settings; the standby's own are added.
    pub settings: &'a [(String, String)],
    pub limits: Limits,
    pub container_name: String,
}

/// Start the replica container and wait until the primary sees it stream.
/// On failure it is removed (with what its log said).
pub async fn start(plan: StandbyPlan<'_>) -> Result<Box<ContainerAsync<GenericImage>>> {
    let (name, tag) = split_image(plan.image);
    let mut cmd: Vec<String> = vec![
        "bash".to_string(),
        "-c".to_string(),
        STANDBY_SCRIPT.to_string(),
        "pgrehearse-replica".to_string(),
    ];
    cmd.extend(super::server_args(
        &standby_settings(plan.settings),
        &[("port", "5432")],
    ));
    let limits = plan.limits;
    let request = GenericImage::new(name, tag)
        .with_network(plan.network.name())
        .with_user("postgres")
        .with_env_var(
            "PGPASSWORD",
            plan.primary.password.as_deref().unwrap_or_default(),
        )
        .with_env_var("PGUSER", &plan.primary.user)
        .with_env_var("PRIMARY_HOST", &plan.primary_host)
        .with_cmd(cmd)
        .with_label(PID_LABEL, std::process::id().to_string())
        .with_container_name(&plan.container_name)
        .with_startup_timeout(super::container::STARTUP_TIMEOUT)
        .with_host_config_modifier(move |hc: &mut HostConfig| {
            // Nothing published: the replica is reachable from the private
            // network only.
            hc.publish_all_ports = Some(false);
            hc.port_bindings = None;
            limits.apply(hc);
        });
    let mut created = CreatedGuard::new(plan.container_name.clone());
    let started = request.start().await;
    created.pending = false;
    let container =
        Box::new(started.map_err(|e| {
            Error::NoPostgres(format!("could not start the replica container: {e}"))
        })?);
    created.armed = false;
    let streaming = {
        let c = &container;
        replica::wait_streaming(plan.primary, || async move {
            match c.is_running().await {
                Ok(true) => None,
                _ => Some(log_tail(c).await),
            }
        })
        .await
    };
    match streaming {
        Ok(()) => Ok(container),
        Err(e) => {
            let _ = super::container::remove(container).await;
            Err(e)
        }
    }
}

async fn log_tail(c: &ContainerAsync<GenericImage>) -> String {
    let log = c.stderr_to_vec().await.unwrap_or_default();
    super::last_lines(&String::from_utf8_lossy(&log), 6)
}
