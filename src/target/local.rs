//! An ephemeral cluster from the Postgres binaries on this machine.

use super::{ConnInfo, ServerLog, TargetOptions};
use crate::error::Result;

pub struct LocalCluster {
    conn: ConnInfo,
}

impl LocalCluster {
    pub async fn start(_opts: &TargetOptions) -> Result<LocalCluster> {
        Err(crate::Error::NoPostgres(
            "local backend not built yet".into(),
        ))
    }
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }
    pub fn server_log(&self) -> Option<ServerLog> {
        None
    }
    pub fn describe(&self) -> String {
        "local".into()
    }
    pub async fn teardown(self) -> Result<()> {
        Ok(())
    }
}
