//! Stage 1, provision: a server from a backend, and the database a rehearsal
//! runs in. The two are apart on purpose: one [`Server`] can host several
//! rehearsals (each in a [`Database`] of its own), and every later stage
//! takes only the [`Database`].

use crate::backend::{Backend, BackendKind, BackendOptions, ConnInfo, ServerLog};
use crate::error::Result;
use crate::options::ServerOptions;
use crate::record::{DerivedInfo, SizeInfo};
use crate::scenario::Scenario;
use crate::signals::Signals;
use crate::sizing::{derive, fmt_memory, ServerSize};

/// What the rehearsals a server will host ask of it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerNeeds {
    /// Wanted major version ("15"), if any.
    pub version: Option<String>,
    /// The scenario's image (docker backend), below `--image`.
    pub image: Option<String>,
    /// The scenario's server settings (`-c` flags where we own the server).
    pub settings: Vec<(String, String)>,
    /// Sessions one rehearsal opens at once: app clients and scripts.
    pub sessions: usize,
    /// The server's size (scenario, then `--cpus` / `--memory`).
    pub size: Option<ServerSize>,
    /// A streaming physical replica next to the primary.
    pub replica: bool,
}

impl ServerNeeds {
    pub fn of(s: &Scenario) -> ServerNeeds {
        ServerNeeds {
            version: s.postgres.version.clone(),
            image: s.postgres.image.clone(),
            settings: s.postgres.settings.clone(),
            sessions: s.workload.clients as usize * s.workload.apps().len().max(1)
                + s.workload.scripts.len(),
            size: s.postgres.size.clone(),
            replica: s.postgres.replica,
        }
    }

    /// Where we own the server: the settings derived from its size, those
    /// the measurements need, and the scenario's, which win over all but
    /// `shared_preload_libraries`, which keeps pg_stat_statements (each
    /// statement's own WAL) next to the scenario's libraries.
    fn harness_settings(&self) -> Vec<(String, String)> {
        let derived = self.size.iter().flat_map(derive);
        let mut out: Vec<(String, String)> = derived.map(|d| (d.name, d.value)).collect();
        out.extend([
            ("shared_preload_libraries".into(), PRELOAD.into()),
            ("log_lock_waits".into(), "on".into()),
            ("deadlock_timeout".into(), "10ms".into()),
            ("log_timezone".into(), "UTC".into()),
            ("log_line_prefix".into(), "%m [%p] ".into()),
            (
                "max_connections".into(),
                (self.sessions + 40).max(100).to_string(),
            ),
        ]);
        for (k, v) in &self.settings {
            let v = if k == "shared_preload_libraries" {
                with_library(v, PRELOAD)
            } else {
                v.clone()
            };
            out.retain(|(hk, _)| hk != k);
            out.push((k.clone(), v));
        }
        out
    }

    /// How the size was applied on `backend`, for run.json.
    fn size_info(&self, backend: BackendKind) -> Option<SizeInfo> {
        let size = self.size.as_ref()?;
        let owned = backend != BackendKind::Url;
        let applied = match backend {
            BackendKind::Url => {
                "not applied: the url backend's server is not pgrehearse's (no limits, no settings)"
            }
            BackendKind::Local => {
                "derived settings only: a local cluster shares this machine's CPUs and memory \
                 (no limits)"
            }
            _ => "container limits (CPUs, memory without swap) and derived settings",
        };
        let derived = if owned { derive(size) } else { Vec::new() };
        Some(SizeInfo {
            cpus: size.cpus,
            memory: size.memory.map(fmt_memory),
            memory_bytes: size.memory,
            applied: applied.to_string(),
            derived: derived
                .into_iter()
                .map(|d| DerivedInfo {
                    overridden_by: self
                        .settings
                        .iter()
                        .find(|(k, _)| *k == d.name)
                        .map(|(_, v)| v.clone()),
                    name: d.name,
                    value: d.value,
                    rule: d.rule,
                })
                .collect(),
        })
    }
}

/// The library the harness preloads where it owns the server.
const PRELOAD: &str = "pg_stat_statements";

/// A comma-separated library list with `lib` in it.
fn with_library(list: &str, lib: &str) -> String {
    if list.split(',').any(|l| l.trim().trim_matches('\'') == lib) {
        list.to_string()
    } else if list.trim().is_empty() {
        lib.to_string()
    } else {
        format!("{list},{lib}")
    }
}

/// A running Postgres that pgrehearse provisioned (or a scratch database on
/// an existing one). Torn down by [`Server::teardown`], on every path.
pub struct Server {
    backend: Backend,
    size: Option<SizeInfo>,
}

/// The database one rehearsal runs in, and what the measurements may use
/// of the server that hosts it.
#[derive(Debug, Clone)]
pub struct Database {
    /// Connects to this database (its `dbname`).
    pub conn: ConnInfo,
    /// The server's log, where we own the server (`log_lock_waits` lines).
    pub server_log: Option<ServerLog>,
    /// For run.json.
    pub backend: BackendKind,
    /// The target described without secrets, for run.json.
    pub target: String,
    /// The server's size and what was derived from it, for run.json.
    pub size: Option<SizeInfo>,
    /// The streaming replica, described for run.json, when there is one.
    pub replica: Option<String>,
}

impl Server {
    /// Provision a server for `needs`. A signal during the start tears down
    /// what was started and returns the signal's error.
    pub async fn provision(
        opts: &ServerOptions,
        needs: &ServerNeeds,
        signals: &Signals,
    ) -> Result<Server> {
        let url = opts.backend == BackendKind::Url;
        if url && needs.replica {
            return Err(crate::Error::Usage(
                "the url backend cannot start a replica: the server is not pgrehearse's".into(),
            ));
        }
        let backend_opts = BackendOptions {
            backend: opts.backend,
            image: opts.image.clone().or_else(|| needs.image.clone()),
            database_url: opts.database_url.clone(),
            version: opts.version.clone().or_else(|| needs.version.clone()),
            settings: if url {
                needs.settings.clone()
            } else {
                needs.harness_settings()
            },
            size: needs.size.clone(),
            replica: needs.replica,
        };
        if let (true, Some(s)) = (url, &needs.size) {
            eprintln!(
                "pgrehearse: warning: the server size ({}) is not applied: the url backend's \
                 server is not pgrehearse's to limit or configure",
                s.describe()
            );
        }
        let backend = if url {
            // Not raced against a signal: a CREATE DATABASE abandoned mid-way
            // still completes on the server, with nobody left to drop it. The
            // start is short (bounded by the connect timeout); finish it, then
            // tear down.
            let backend = Backend::start(&backend_opts).await?;
            if signals.received() {
                Server {
                    backend,
                    size: None,
                }
                .teardown()
                .await;
                return Err(signals.error());
            }
            backend
        } else {
            // Dropping a local or docker start tears down what it started.
            tokio::select! {
                b = Backend::start(&backend_opts) => b?,
                _ = signals.token.cancelled() => return Err(signals.error()),
            }
        };
        tracing::info!("provisioned {}", backend.describe());
        // After the start: `auto` has become docker or local by now.
        let size = needs.size_info(backend.kind());
        Ok(Server { backend, size })
    }

    /// The database the backend created for work; nothing else uses it.
    pub fn work_database(&self) -> Database {
        Database {
            conn: self.backend.conn().clone(),
            server_log: self.backend.server_log(),
            backend: self.backend.kind(),
            target: self.backend.describe(),
            size: self.size.clone(),
            replica: self.backend.replica(),
        }
    }

    /// Stop and remove everything the backend started or created. A failure
    /// is reported, not returned: the rehearsal's own outcome matters more.
    pub async fn teardown(self) {
        if let Err(e) = self.backend.teardown().await {
            eprintln!("pgrehearse: teardown: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_stat_statements_is_preloaded_next_to_the_scenarios_libraries() {
        let needs = |settings: &[(&str, &str)]| ServerNeeds {
            version: None,
            image: None,
            settings: settings
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            sessions: 4,
            size: None,
            replica: false,
        };
        let preload = |n: &ServerNeeds| {
            n.harness_settings()
                .into_iter()
                .filter(|(k, _)| k == "shared_preload_libraries")
                .map(|(_, v)| v)
                .collect::<Vec<_>>()
        };
        assert_eq!(preload(&needs(&[])), ["pg_stat_statements"]);
        assert_eq!(
            preload(&needs(&[("shared_preload_libraries", "auto_explain")])),
            ["auto_explain,pg_stat_statements"]
        );
        assert_eq!(
            preload(&needs(&[(
                "shared_preload_libraries",
                "pg_stat_statements,auto_explain"
            )])),
            ["pg_stat_statements,auto_explain"]
        );
    }
}
