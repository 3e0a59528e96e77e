//! Notice a dead server within seconds. The migration may be blocked in a
//! 30-second statement and the workload retries its connections, so neither
//! would say soon that the server is gone: a trivial query every second on
//! a session of its own does; two failures in a row end the rehearsal.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backend::ConnInfo;

/// application_name of the health session (the wait observer ignores it).
pub const HEALTH_APP_NAME: &str = "pgrehearse/health";

const INTERVAL: Duration = Duration::from_secs(1);
const ANSWER_WAIT: Duration = Duration::from_secs(2);
const MISSES: u32 = 2;

/// A running health watch; [`HealthWatch::finish`] says whether the server died.
pub struct HealthWatch {
    task: JoinHandle<Option<String>>,
    done: CancellationToken,
}

impl HealthWatch {
    /// Watch the server behind `conn`; when it stops answering, cancel `abort`.
    pub fn start(conn: ConnInfo, abort: CancellationToken) -> HealthWatch {
        let done = CancellationToken::new();
        let task = tokio::spawn(watch(conn, abort, done.clone()));
        HealthWatch { task, done }
    }

    /// Stop watching. `Some(why)` when the server stopped answering.
    pub async fn finish(self) -> Option<String> {
        self.done.cancel();
        self.task.await.ok().flatten()
    }
}

async fn watch(
    conn: ConnInfo,
    abort: CancellationToken,
    done: CancellationToken,
) -> Option<String> {
    let Ok(client) = conn.connect(HEALTH_APP_NAME).await else {
        return None;
    };
    let mut misses = 0;
    loop {
        tokio::select! {
            _ = done.cancelled() => return None,
            _ = abort.cancelled() => return None,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
        let answered = tokio::select! {
            _ = done.cancelled() => return None,
            r = tokio::time::timeout(ANSWER_WAIT, client.simple_query("SELECT 1")) => matches!(r, Ok(Ok(_))),
        };
        misses = if answered { 0 } else { misses + 1 };
        if !answered {
            tracing::info!("health: the server did not answer ({misses} in a row)");
        }
        if misses >= MISSES || client.is_closed() {
            abort.cancel();
            return Some("the server stopped answering (it died or was stopped mid-run)".into());
        }
    }
}
