//! Production-sized servers: a size (CPUs, memory) and the server settings
//! derived from it the way the usual tuning guides do, for the backends that
//! own their server (README.md "Server size").
//!
//! The rules follow PGTune's "OLTP" profile (le0pard/pgtune,
//! `configurationSlice.js`): a migration rehearsal is OLTP traffic plus
//! maintenance. PGTune in turn follows the PostgreSQL wiki ("Tuning Your
//! PostgreSQL Server": shared_buffers a quarter of RAM, effective_cache_size
//! between half and three quarters). checkpoint_timeout, which PGTune leaves
//! alone, follows EDB's guidance for large shared_buffers (15 minutes).
//!
//! `work_mem` is not derived: PGTune divides memory by production's
//! max_connections, which a size does not tell (and a rehearsal's own
//! max_connections is small, so the figure would be too generous). Set it in
//! `[postgres] settings`.

use serde::{Deserialize, Serialize};

const KB: u64 = 1024;
const MB: u64 = 1024 * KB;
const GB: u64 = 1024 * MB;
const TB: u64 = 1024 * GB;

/// The smallest size worth rehearsing on (PGTune warns below 256MB too).
pub const MIN_MEMORY: u64 = 256 * MB;
pub const MAX_MEMORY: u64 = 64 * TB;
pub const MAX_CPUS: u32 = 1024;

/// The server size a rehearsal asks for; either part may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSize {
    pub cpus: Option<u32>,
    /// Bytes, a whole number of MB.
    pub memory: Option<u64>,
    /// Where `cpus` came from, for messages: `--cpus`, or the scenario file.
    pub cpus_from: String,
    /// Where `memory` came from.
    pub memory_from: String,
}

impl ServerSize {
    pub fn is_empty(&self) -> bool {
        self.cpus.is_none() && self.memory.is_none()
    }

    /// "4 CPUs, 16GB".
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(c) = self.cpus {
            parts.push(format!("{c} CPU{}", if c == 1 { "" } else { "s" }));
        }
        if let Some(m) = self.memory {
            parts.push(fmt_memory(m));
        }
        parts.join(", ")
    }

    /// `over` on top of `self`, field by field (command-line flags win over
    /// the scenario's size).
    pub fn overlay(&self, over: &ServerSize) -> ServerSize {
        let (cpus, cpus_from) = match over.cpus {
            Some(c) => (Some(c), over.cpus_from.clone()),
            None => (self.cpus, self.cpus_from.clone()),
        };
        let (memory, memory_from) = match over.memory {
            Some(m) => (Some(m), over.memory_from.clone()),
            None => (self.memory, self.memory_from.clone()),
        };
        ServerSize {
            cpus,
            memory,
            cpus_from,
            memory_from,
        }
    }
}

/// `16GB`, `512MB`, `1.5GB`, `16GiB`, `1TB` → bytes. Units are binary
/// (1GB = 1024MB) as in postgresql.conf; case does not matter; the result
/// is rounded down to a whole MB.
pub fn parse_memory(s: &str) -> Result<u64, String> {
    const EXPECTED: &str = "expected an amount of memory like \"16GB\", \"512MB\" or \"1.5TB\"";
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not an amount of memory; {EXPECTED}"))?;
    let unit = unit.trim();
    let upper = unit.to_ascii_uppercase();
    let per = match upper.trim_end_matches('B').trim_end_matches('I') {
        "M" => MB,
        "G" => GB,
        "T" => TB,
        "" => return Err(format!("`{s}` has no unit; {EXPECTED}")),
        _ => return Err(format!("`{s}` has an unknown unit `{unit}`; {EXPECTED}")),
    };
    let bytes = value * per as f64;
    if !bytes.is_finite() || bytes < MIN_MEMORY as f64 || bytes > MAX_MEMORY as f64 {
        return Err(format!(
            "`{s}` is out of range; expected between {} and {}",
            fmt_memory(MIN_MEMORY),
            fmt_memory(MAX_MEMORY)
        ));
    }
    Ok((bytes as u64) / MB * MB)
}

/// Bytes as Postgres writes memory: `16GB`, `1536MB`, `64kB`.
pub fn fmt_memory(bytes: u64) -> String {
    if bytes >= TB && bytes % TB == 0 {
        format!("{}TB", bytes / TB)
    } else if bytes >= GB && bytes % GB == 0 {
        format!("{}GB", bytes / GB)
    } else if bytes >= MB && bytes % MB == 0 {
        format!("{}MB", bytes / MB)
    } else {
        format!("{}kB", bytes / KB)
    }
}

/// A setting derived from the size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DerivedSetting {
    pub name: String,
    pub value: String,
    /// The rule, in words, with its source.
    pub rule: String,
}

/// One rule of the derivation: what it sets, how, and who says so. README.md
/// shows the same table.
struct Rule {
    name: &'static str,
    rule: &'static str,
    value: fn(&ServerSize) -> Option<String>,
}

/// Memory rounded down to a whole MB, as a Postgres value.
fn mem_value(bytes: u64) -> String {
    fmt_memory(bytes / MB * MB)
}

/// CPU-derived settings: PGTune sets them from 4 CPUs up and keeps
/// Postgres' defaults below that.
fn parallel(size: &ServerSize, f: fn(u32) -> u32) -> Option<String> {
    size.cpus.filter(|c| *c >= 4).map(|c| f(c).to_string())
}

fn half_capped(cpus: u32) -> u32 {
    cpus.div_ceil(2).min(4)
}

const RULES: &[Rule] = &[
    Rule {
        name: "shared_buffers",
        rule: "memory / 4 (PGTune, OLTP; the PostgreSQL wiki \"Tuning Your PostgreSQL Server\": 25% of RAM)",
        value: |s| s.memory.map(|m| mem_value(m / 4)),
    },
    Rule {
        name: "effective_cache_size",
        rule: "memory * 3/4 (PGTune, OLTP; the PostgreSQL wiki: 1/2 to 3/4 of RAM)",
        value: |s| s.memory.map(|m| mem_value(m / 4 * 3)),
    },
    Rule {
        name: "maintenance_work_mem",
        rule: "memory / 16, at most 8GB (PGTune, OLTP)",
        value: |s| s.memory.map(|m| mem_value((m / 16).min(8 * GB))),
    },
    Rule {
        name: "autovacuum_work_mem",
        rule: "2GB once maintenance_work_mem reaches 2GB, else unset: each autovacuum worker may take that much (PGTune)",
        value: |s| s.memory.filter(|m| m / 16 >= 2 * GB).map(|_| "2GB".into()),
    },
    Rule {
        name: "min_wal_size",
        rule: "2GB (PGTune, OLTP)",
        value: |s| s.memory.map(|_| "2GB".into()),
    },
    Rule {
        name: "max_wal_size",
        rule: "8GB (PGTune, OLTP): checkpoints come from checkpoint_timeout, not from WAL volume",
        value: |s| s.memory.map(|_| "8GB".into()),
    },
    Rule {
        name: "checkpoint_timeout",
        rule: "15min (EDB: \"such as 15 minutes ... especially when using large values for shared_buffers\")",
        value: |s| s.memory.map(|_| "15min".into()),
    },
    Rule {
        name: "max_worker_processes",
        rule: "cpus, from 4 CPUs up; below, Postgres' default 8 (PGTune)",
        value: |s| parallel(s, |c| c),
    },
    Rule {
        name: "max_parallel_workers",
        rule: "cpus, from 4 CPUs up; below, Postgres' default 8 (PGTune)",
        value: |s| parallel(s, |c| c),
    },
    Rule {
        name: "max_parallel_workers_per_gather",
        rule: "cpus / 2 rounded up, at most 4, from 4 CPUs up; below, Postgres' default 2 (PGTune)",
        value: |s| parallel(s, half_capped),
    },
    Rule {
        name: "max_parallel_maintenance_workers",
        rule: "cpus / 2 rounded up, at most 4, from 4 CPUs up; below, Postgres' default 2 (PGTune)",
        value: |s| parallel(s, half_capped),
    },
];

/// The settings `size` calls for, in a fixed order; settings whose rule
/// does not apply (no memory given, fewer than 4 CPUs) are left out.
pub fn derive(size: &ServerSize) -> Vec<DerivedSetting> {
    RULES
        .iter()
        .filter_map(|r| {
            (r.value)(size).map(|value| DerivedSetting {
                name: r.name.to_string(),
                value,
                rule: r.rule.to_string(),
            })
        })
        .collect()
}

/// What a machine (this one, or a Docker engine's) can give a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    /// "this machine", "the Docker engine".
    pub name: String,
    pub cpus: u32,
    pub memory: u64,
}

impl Machine {
    /// This machine: the CPUs this process may use (cgroup limits
    /// included) and MemTotal of /proc/meminfo.
    pub fn this() -> Option<Machine> {
        let cpus = std::thread::available_parallelism().ok()?.get() as u32;
        let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
        let kb: u64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()?;
        Some(Machine {
            name: "this machine".into(),
            cpus,
            memory: kb * KB,
        })
    }

    /// A size larger than the machine cannot be rehearsed here: a memory
    /// limit above physical RAM limits nothing, and Docker refuses more CPUs
    /// than it has. `servers` is how many servers of that size will run
    /// (2 with a replica): their sum beyond the machine is a warning (the
    /// limits are maxima, not reservations, but they compete).
    pub fn check(&self, size: &ServerSize, servers: u32) -> Result<Vec<String>, String> {
        let mut problems = Vec::new();
        let mut warnings = Vec::new();
        if let Some(c) = size.cpus {
            if c > self.cpus {
                problems.push(format!(
                    "{} asks for {c} CPUs, but {} has {}",
                    size.cpus_from, self.name, self.cpus
                ));
            } else if c * servers > self.cpus {
                warnings.push(format!(
                    "{servers} servers of {c} CPUs (primary and replica) share {}'s {} CPUs: they compete for them",
                    self.name, self.cpus
                ));
            }
        }
        if let Some(m) = size.memory {
            if m > self.memory {
                problems.push(format!(
                    "{} asks for {} of memory, but {} has {}",
                    size.memory_from,
                    fmt_memory(m),
                    self.name,
                    fmt_gib(self.memory)
                ));
            } else if m * u64::from(servers) > self.memory {
                warnings.push(format!(
                    "{servers} servers of {} (primary and replica) are more than {}'s {}: they may swap or be killed",
                    fmt_memory(m),
                    self.name,
                    fmt_gib(self.memory)
                ));
            }
        }
        if problems.is_empty() {
            Ok(warnings)
        } else {
            Err(format!(
                "the server size is larger than {}: {}. A rehearsal on a server the machine \
                 cannot give measures contention (CPUs shared, memory swapped), not the \
                 migration: ask for at most {} CPUs and {}, or rehearse on a bigger machine",
                self.name,
                problems.join("; "),
                self.cpus,
                fmt_gib(self.memory)
            ))
        }
    }
}

/// Refuse a size `machine` cannot give (exit 2), warn when `servers` of
/// that size would compete for it. An unknown machine is not checked.
pub fn ensure_fits(size: &ServerSize, machine: Option<Machine>, servers: u32) -> crate::Result<()> {
    let Some(machine) = machine else {
        tracing::info!("the machine's CPUs and memory are unknown: the size is not checked");
        return Ok(());
    };
    for w in machine.check(size, servers).map_err(crate::Error::Usage)? {
        crate::say!("pgrehearse: warning: {w}");
    }
    Ok(())
}

/// "23.4GB": a machine's memory is rarely a whole number of GB.
fn fmt_gib(bytes: u64) -> String {
    format!("{:.1}GB", bytes as f64 / GB as f64)
}

/// The rules as a Markdown table (README.md "Server size" holds a copy;
/// a test keeps them in step).
pub fn rules_markdown() -> String {
    let mut out = String::from("| setting | derived as |\n|---|---|\n");
    for r in RULES {
        out.push_str(&format!("| `{}` | {} |\n", r.name, r.rule));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(cpus: Option<u32>, memory: Option<&str>) -> ServerSize {
        ServerSize {
            cpus,
            memory: memory.map(|m| parse_memory(m).unwrap()),
            cpus_from: "--cpus".into(),
            memory_from: "--memory".into(),
        }
    }

    fn get(d: &[DerivedSetting], name: &str) -> Option<String> {
        d.iter().find(|s| s.name == name).map(|s| s.value.clone())
    }

    #[test]
    fn parses_memory_in_postgres_units() {
        assert_eq!(parse_memory("16GB"), Ok(16 * GB));
        assert_eq!(parse_memory("16 GB"), Ok(16 * GB));
        assert_eq!(parse_memory("16GiB"), Ok(16 * GB));
        assert_eq!(parse_memory("16gb"), Ok(16 * GB));
        assert_eq!(parse_memory("512MB"), Ok(512 * MB));
        assert_eq!(parse_memory("1.5GB"), Ok(1536 * MB));
        assert_eq!(parse_memory("1TB"), Ok(TB));
        for bad in [
            "16", "GB", "", "16XB", "-1GB", "100MB", "1000TB", "1e3GB", "1..2GB",
        ] {
            assert!(parse_memory(bad).is_err(), "{bad}");
        }
        assert!(parse_memory("16").unwrap_err().contains("no unit"));
        assert!(parse_memory("100MB").unwrap_err().contains("256MB"));
    }

    #[test]
    fn formats_memory_in_the_largest_whole_unit() {
        assert_eq!(fmt_memory(16 * GB), "16GB");
        assert_eq!(fmt_memory(1536 * MB), "1536MB");
        assert_eq!(fmt_memory(TB), "1TB");
        assert_eq!(fmt_memory(64 * KB), "64kB");
    }

    #[test]
    fn derives_pgtune_oltp_for_16gb_and_4_cpus() {
        let d = derive(&size(Some(4), Some("16GB")));
        assert_eq!(get(&d, "shared_buffers").as_deref(), Some("4GB"));
        assert_eq!(get(&d, "effective_cache_size").as_deref(), Some("12GB"));
        assert_eq!(get(&d, "maintenance_work_mem").as_deref(), Some("1GB"));
        assert_eq!(get(&d, "autovacuum_work_mem"), None);
        assert_eq!(get(&d, "min_wal_size").as_deref(), Some("2GB"));
        assert_eq!(get(&d, "max_wal_size").as_deref(), Some("8GB"));
        assert_eq!(get(&d, "checkpoint_timeout").as_deref(), Some("15min"));
        assert_eq!(get(&d, "max_worker_processes").as_deref(), Some("4"));
        assert_eq!(get(&d, "max_parallel_workers").as_deref(), Some("4"));
        assert_eq!(
            get(&d, "max_parallel_workers_per_gather").as_deref(),
            Some("2")
        );
        assert_eq!(
            get(&d, "max_parallel_maintenance_workers").as_deref(),
            Some("2")
        );
    }

    #[test]
    fn caps_and_thresholds() {
        let big = derive(&size(Some(64), Some("256GB")));
        assert_eq!(get(&big, "maintenance_work_mem").as_deref(), Some("8GB"));
        assert_eq!(get(&big, "autovacuum_work_mem").as_deref(), Some("2GB"));
        assert_eq!(
            get(&big, "max_parallel_maintenance_workers").as_deref(),
            Some("4")
        );
        assert_eq!(get(&big, "max_worker_processes").as_deref(), Some("64"));
        // Below 4 CPUs Postgres' defaults stay; no memory, no memory rules.
        let small = derive(&size(Some(2), None));
        assert!(small.is_empty(), "{small:?}");
        let odd = derive(&size(None, Some("1000MB")));
        assert_eq!(get(&odd, "shared_buffers").as_deref(), Some("250MB"));
        assert_eq!(get(&odd, "maintenance_work_mem").as_deref(), Some("62MB"));
        assert_eq!(get(&odd, "max_worker_processes"), None);
    }

    #[test]
    fn a_size_beyond_the_machine_is_refused_and_a_tight_pair_warned() {
        let m = Machine {
            name: "this machine".into(),
            cpus: 2,
            memory: 8 * GB,
        };
        let e = m.check(&size(Some(4), Some("16GB")), 1).unwrap_err();
        assert!(
            e.contains("--cpus asks for 4 CPUs, but this machine has 2"),
            "{e}"
        );
        assert!(e.contains("--memory asks for 16GB of memory"), "{e}");
        assert!(e.contains("8.0GB"), "{e}");
        assert_eq!(m.check(&size(Some(2), Some("8GB")), 1), Ok(vec![]));
        let w = m.check(&size(Some(2), Some("6GB")), 2).unwrap();
        assert_eq!(w.len(), 2, "{w:?}");
    }

    #[test]
    fn flags_win_field_by_field() {
        let scenario = ServerSize {
            cpus: Some(8),
            memory: Some(32 * GB),
            cpus_from: "a.toml".into(),
            memory_from: "a.toml".into(),
        };
        let flags = ServerSize {
            cpus: Some(2),
            cpus_from: "--cpus".into(),
            ..Default::default()
        };
        let s = scenario.overlay(&flags);
        assert_eq!((s.cpus, s.memory), (Some(2), Some(32 * GB)));
        assert_eq!(s.cpus_from, "--cpus");
        assert_eq!(s.memory_from, "a.toml");
        assert_eq!(s.describe(), "2 CPUs, 32GB");
    }
}
