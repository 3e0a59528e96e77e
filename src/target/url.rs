//! An existing server by URL; works only in a scratch database it creates.

use super::{ConnInfo, ServerLog, TargetOptions};
use crate::error::Result;

pub struct UrlTarget {
    conn: ConnInfo,
}

impl UrlTarget {
    pub async fn start(_opts: &TargetOptions) -> Result<UrlTarget> {
        Err(crate::Error::NoPostgres("url backend not built yet".into()))
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
        "url".into()
    }
    pub async fn teardown(self) -> Result<()> {
        Ok(())
    }
}
