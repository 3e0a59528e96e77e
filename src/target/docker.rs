//! A container started with testcontainers.

use super::{ConnInfo, ServerLog, TargetOptions};
use crate::error::Result;

pub struct DockerPostgres {
    conn: ConnInfo,
}

impl DockerPostgres {
    pub async fn start(_opts: &TargetOptions) -> Result<DockerPostgres> {
        Err(crate::Error::NoPostgres(
            "docker backend not built yet".into(),
        ))
    }
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }
    pub fn server_log(&self) -> Option<ServerLog> {
        None
    }
    pub fn server_version_num(&self) -> u32 {
        0
    }
    pub fn describe(&self) -> String {
        "docker".into()
    }
    pub async fn teardown(self) -> Result<()> {
        Ok(())
    }
}

/// Does a Docker engine answer?
pub async fn engine_answers() -> bool {
    false
}
