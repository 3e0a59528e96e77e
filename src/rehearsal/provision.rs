//! Stage 1, provision: a server from a backend, and the database a rehearsal
//! runs in. The two are apart on purpose: one [`Server`] can host several
//! rehearsals (each in a [`Database`] of its own), and every later stage
//! takes only the [`Database`].

use crate::backend::{Backend, BackendKind, BackendOptions, ConnInfo, ServerLog};
use crate::error::Result;
use crate::options::ServerOptions;
use crate::scenario::Scenario;
use crate::signals::Signals;

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
}

impl ServerNeeds {
    pub fn of(s: &Scenario) -> ServerNeeds {
        ServerNeeds {
            version: s.postgres.version.clone(),
            image: s.postgres.image.clone(),
            settings: s.postgres.settings.clone(),
            sessions: s.workload.clients as usize * s.workload.apps().len().max(1)
                + s.workload.scripts.len(),
        }
    }

    /// Settings the measurements need, where we own the server. The
    /// scenario's own settings win where both name one, but for
    /// `shared_preload_libraries`, which keeps pg_stat_statements (each
    /// statement's own WAL) next to the scenario's libraries.
    fn harness_settings(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = vec![
            ("shared_preload_libraries".into(), PRELOAD.into()),
            ("log_lock_waits".into(), "on".into()),
            ("deadlock_timeout".into(), "10ms".into()),
            ("log_timezone".into(), "UTC".into()),
            ("log_line_prefix".into(), "%m [%p] ".into()),
            (
                "max_connections".into(),
                (self.sessions + 40).max(100).to_string(),
            ),
        ];
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
        let backend_opts = BackendOptions {
            backend: opts.backend,
            image: opts.image.clone().or_else(|| needs.image.clone()),
            database_url: opts.database_url.clone(),
            version: needs.version.clone(),
            settings: if url {
                needs.settings.clone()
            } else {
                needs.harness_settings()
            },
        };
        let backend = if url {
            // Not raced against a signal: a CREATE DATABASE abandoned mid-way
            // still completes on the server, with nobody left to drop it. The
            // start is short (bounded by the connect timeout); finish it, then
            // tear down.
            let backend = Backend::start(&backend_opts).await?;
            if signals.received() {
                Server { backend }.teardown().await;
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
        Ok(Server { backend })
    }

    /// The database the backend created for work; nothing else uses it.
    pub fn work_database(&self) -> Database {
        Database {
            conn: self.backend.conn().clone(),
            server_log: self.backend.server_log(),
            backend: self.backend.kind(),
            target: self.backend.describe(),
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
