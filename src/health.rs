//! Notice a dead server within seconds. The migration may be blocked in a
//! 30-second statement and the workload retries its connections, so neither
//! would say soon that the server is gone: a trivial query every second on
//! a session of its own does. A probe that fails on that session is tried
//! again at once on a fresh one: a step may terminate other backends
//! (`pg_terminate_backend` of every session but its own, a "kill the
//! blockers" step gone broad), the health session among them, while the
//! server lives on. Only `MISSES` failures in a row of a fresh session —
//! it cannot connect, or does not answer — end the rehearsal.

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

/// Does `client` answer a trivial query within [`ANSWER_WAIT`]?
async fn answers(client: &tokio_postgres::Client) -> bool {
    matches!(
        tokio::time::timeout(ANSWER_WAIT, client.simple_query("SELECT 1")).await,
        Ok(Ok(_))
    )
}

/// A fresh health session, if the server takes one within [`ANSWER_WAIT`].
async fn reconnect(conn: &ConnInfo) -> Option<tokio_postgres::Client> {
    match tokio::time::timeout(ANSWER_WAIT, conn.connect(HEALTH_APP_NAME)).await {
        Ok(Ok(c)) => Some(c),
        _ => None,
    }
}

async fn watch(
    conn: ConnInfo,
    abort: CancellationToken,
    done: CancellationToken,
) -> Option<String> {
    let Ok(mut client) = conn.connect(HEALTH_APP_NAME).await else {
        return None;
    };
    let mut misses = 0;
    loop {
        tokio::select! {
            _ = done.cancelled() => return None,
            _ = abort.cancelled() => return None,
            _ = tokio::time::sleep(INTERVAL) => {}
        }
        let probe = async {
            if answers(&client).await {
                return true;
            }
            // The session may be gone while the server is not (terminated
            // by a step, or its socket dropped): a fresh one tells which.
            // The server is judged on fresh sessions only.
            match reconnect(&conn).await {
                Some(fresh) => {
                    tracing::info!(
                        "health: the health session was lost ({}); reconnected",
                        if client.is_closed() {
                            "closed"
                        } else {
                            "no answer"
                        }
                    );
                    client = fresh;
                    answers(&client).await
                }
                None => false,
            }
        };
        let answered = tokio::select! {
            _ = done.cancelled() => return None,
            a = probe => a,
        };
        misses = if answered { 0 } else { misses + 1 };
        if !answered {
            tracing::info!(
                "health: the server did not answer on a fresh session ({misses} in a row)"
            );
        }
        if misses >= MISSES {
            abort.cancel();
            return Some("the server stopped answering (it died or was stopped mid-run)".into());
        }
    }
}
