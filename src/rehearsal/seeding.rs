//! Stage 2, seed: the scenario's tables and rows in the rehearsal's database
//! (`crate::seed` does the work), cancellable by a signal.

use std::time::{Duration, Instant};

use super::stage::{Stopped, HARNESS_APP_NAME};
use crate::backend::ConnInfo;
use crate::error::Error;
use crate::scenario::Scenario;
use crate::signals::Signals;

/// Seed the database behind `conn`; returns how long it took (ms).
pub async fn seed(
    conn: &ConnInfo,
    s: &Scenario,
    seed: u64,
    progress: bool,
    signals: &Signals,
) -> Result<f64, Stopped> {
    let started = Instant::now();
    let seeded = tokio::select! {
        r = crate::seed::seed(conn, s, seed, progress) => r,
        _ = signals.token.cancelled() => {
            return Err(Stopped {
                why: "interrupted while seeding".into(),
                error: signals.error(),
            });
        }
    };
    match seeded {
        Ok(report) => {
            for t in &report.tables {
                tracing::info!(
                    "seeded {}: {} rows, {:.1} MB, {} load on {} connection(s), {:.1} ms",
                    t.name,
                    t.rows,
                    t.bytes as f64 / 1e6,
                    format!("{:?}", t.load).to_lowercase(),
                    t.connections,
                    t.duration.as_secs_f64() * 1e3
                );
            }
            Ok(started.elapsed().as_secs_f64() * 1e3)
        }
        // A generator that does not fit its column is the scenario's fault
        // (exit 2); a server that cannot be used is exit 3.
        Err(e @ (Error::Scenario(_) | Error::NoPostgres(_))) => Err(Stopped {
            why: format!("seeding failed: {e}"),
            error: e,
        }),
        Err(e) => Err(Stopped::failed(format!("seeding failed: {e}"))),
    }
}

/// How long the replica may take to replay the seeded data.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(600);

/// Wait until the replica has replayed the seeded data: the lag the
/// rehearsal measures must be its own traffic's and migration's.
pub async fn replica_caught_up(conn: &ConnInfo, signals: &Signals) -> Result<(), Stopped> {
    let failed = |e: Error| Stopped::failed(format!("the replica did not catch up: {e}"));
    let admin = conn.session(HARNESS_APP_NAME).await.map_err(failed)?;
    tokio::select! {
        r = crate::backend::replica::wait_caught_up(&admin, CATCH_UP_LIMIT) => r.map_err(failed),
        _ = signals.token.cancelled() => Err(Stopped {
            why: "interrupted while the replica caught up with the seeded data".into(),
            error: signals.error(),
        }),
    }
}
