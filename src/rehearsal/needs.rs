//! What the rehearsals a server will host ask of it: version, image,
//! settings (the harness's own included), sessions, size, replica — and
//! whether two sets of needs can share one server.

use crate::backend::BackendKind;
use crate::record::{DerivedInfo, SizeInfo};
use crate::scenario::Scenario;
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

    /// One server for all of `scenarios`, if they can share one: the same
    /// version, image and settings (the sessions of the busiest). None when
    /// they ask for different servers.
    pub fn of_all(scenarios: &[&Scenario]) -> Option<ServerNeeds> {
        let mut needs = ServerNeeds::of(scenarios.first()?);
        for s in &scenarios[1..] {
            needs = needs.shared_with(&ServerNeeds::of(s))?;
        }
        Some(needs)
    }

    /// A server that serves both, when they ask for the same one.
    pub fn shared_with(&self, other: &ServerNeeds) -> Option<ServerNeeds> {
        let same = self.version == other.version
            && self.image == other.image
            && self.settings == other.settings
            && self.size == other.size
            && self.replica == other.replica;
        same.then(|| ServerNeeds {
            sessions: self.sessions.max(other.sessions),
            ..self.clone()
        })
    }

    /// Where we own the server: the settings derived from its size, those
    /// the measurements need, and the scenario's, which win over all but
    /// `shared_preload_libraries`, which keeps pg_stat_statements (each
    /// statement's own WAL) next to the scenario's libraries.
    pub(super) fn harness_settings(&self) -> Vec<(String, String)> {
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
    pub(super) fn size_info(&self, backend: BackendKind) -> Option<SizeInfo> {
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
