//! Stage 2, seed: the scenario's tables and rows in the rehearsal's database
//! (`crate::seed` does the work), cancellable by a signal.

use std::time::Instant;

use super::stage::Stopped;
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
        // A generator that does not fit its column, a NOT NULL column no
        // generator fills, is the scenario's fault (exit 2), located in it
        // by field; a server that cannot be used is exit 3.
        Err(Error::Scenario(errors)) => {
            let e = Error::Scenario(crate::scenario::locate_fields(errors));
            Err(Stopped {
                why: format!("seeding failed: {e}"),
                error: e,
            })
        }
        Err(e @ Error::NoPostgres(_)) => Err(Stopped {
            why: format!("seeding failed: {e}"),
            error: e,
        }),
        Err(e) => Err(Stopped::failed(format!("seeding failed: {e}"))),
    }
}
