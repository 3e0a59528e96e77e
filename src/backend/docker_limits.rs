//! A container's share of the machine: the server size as Docker limits,
//! and what the engine can give (the machine check of `crate::sizing`).

use std::time::Duration;

use testcontainers::bollard::models::HostConfig;

/// Docker's 64 MB /dev/shm is too small for parallel queries on real data.
const SHM_BYTES: u64 = 512 * 1024 * 1024;

/// A container's share of the machine, from the server size: NanoCpus, and
/// Memory with MemorySwap equal to it (no swap: a server that runs out of
/// memory must show it, not page).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    pub nano_cpus: Option<i64>,
    pub memory: Option<i64>,
}

impl Limits {
    pub fn of(size: Option<&crate::sizing::ServerSize>) -> Limits {
        Limits {
            nano_cpus: size
                .and_then(|s| s.cpus)
                .map(|c| i64::from(c) * 1_000_000_000),
            memory: size.and_then(|s| s.memory).map(|m| m as i64),
        }
    }

    pub fn apply(&self, hc: &mut HostConfig) {
        if let Some(n) = self.nano_cpus {
            hc.nano_cpus = Some(n);
        }
        if let Some(m) = self.memory {
            hc.memory = Some(m);
            hc.memory_swap = Some(m);
        }
    }

    /// /dev/shm (parallel query's shared memory) counts against the memory
    /// limit: at most half of it.
    pub fn shm_bytes(&self) -> u64 {
        match self.memory {
            Some(m) => SHM_BYTES.min(m as u64 / 2),
            None => SHM_BYTES,
        }
    }
}

/// What the engine can give a container (a VM's, under Docker Desktop).
pub async fn engine_machine() -> Option<crate::sizing::Machine> {
    let docker = testcontainers::bollard::Docker::connect_with_defaults().ok()?;
    let info = tokio::time::timeout(Duration::from_secs(5), docker.info())
        .await
        .ok()?
        .ok()?;
    Some(crate::sizing::Machine {
        name: "the Docker engine".into(),
        cpus: u32::try_from(info.ncpu?).ok()?,
        memory: u64::try_from(info.mem_total?).ok()?,
    })
}
