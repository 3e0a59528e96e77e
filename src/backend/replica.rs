//! A streaming physical replica next to the primary, whichever backend
//! starts it (`local_standby.rs`, `docker_standby.rs`): the standby's own
//! settings, and the primary's view of it — streaming yet, caught up yet.
//!
//! Everything is asked of the primary (`pg_stat_replication`), so the
//! replica needs no port anyone can reach: in Docker it has none.

use std::future::Future;
use std::time::{Duration, Instant};

use super::ConnInfo;
use crate::error::{Error, Result};

/// The standby's `cluster_name`, which its WAL receiver reports as
/// `application_name` in the primary's pg_stat_replication.
pub const REPLICA_NAME: &str = "pgrehearse_replica";
/// From the standby's start until the primary sees it stream: its recovery
/// replays only what the (empty) base backup holds.
const STREAMING_TIMEOUT: Duration = Duration::from_secs(120);
const POLL: Duration = Duration::from_millis(100);

/// The primary's settings (a hot standby needs max_connections and the
/// worker limits at least as high as its primary's) plus the standby's own:
/// it answers read-only queries, names itself, and reports its replay
/// position every second (the default 10 s would leave replay_lag stale
/// for up to 10 s once WAL stops flowing).
pub fn standby_settings(primary: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = primary.to_vec();
    for (k, v) in [
        ("hot_standby", "on"),
        ("cluster_name", REPLICA_NAME),
        ("wal_receiver_status_interval", "1s"),
    ] {
        out.retain(|(name, _)| name != k);
        out.push((k.to_string(), v.to_string()));
    }
    out
}

/// Wait until the primary behind `primary` reports the standby streaming.
/// `gone` is asked every poll whether the standby stopped (and why, e.g.
/// the tail of its log): then there is nothing to wait for.
pub async fn wait_streaming<F, Fut>(primary: &ConnInfo, mut gone: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<String>>,
{
    let admin = primary
        .connect_to("postgres", "pgrehearse/harness")
        .await
        .map_err(|e| primary.cannot_connect("postgres", " to watch the replica", &e))?;
    let deadline = Instant::now() + STREAMING_TIMEOUT;
    loop {
        let state: Option<String> = admin
            .query_opt(
                "SELECT state FROM pg_stat_replication WHERE application_name = $1",
                &[&REPLICA_NAME],
            )
            .await?
            .map(|r| r.get(0));
        if state.as_deref() == Some("streaming") {
            return Ok(());
        }
        if let Some(why) = gone().await {
            return Err(Error::NoPostgres(format!(
                "the replica stopped before it streamed: {why}"
            )));
        }
        if Instant::now() > deadline {
            return Err(Error::NoPostgres(format!(
                "the replica did not stream within {}s (pg_stat_replication state: {})",
                STREAMING_TIMEOUT.as_secs(),
                state.as_deref().unwrap_or("no row")
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// Wait until the replica has replayed everything the primary has written
/// so far (after seeding: the rehearsal's lag must be its own, not the
/// seed's). Gives up after `limit` with an error naming how far behind it is.
pub async fn wait_caught_up(client: &tokio_postgres::Client, limit: Duration) -> Result<()> {
    let target: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let deadline = Instant::now() + limit;
    // Since when no walsender has served the replica: it may be between
    // two connections (it reconnects after an error, or restarts
    // streaming), so only one gone for a while is gone.
    let mut absent_since: Option<Instant> = None;
    loop {
        let row = client
            .query_one(
                "SELECT count(*)::int8, max(pg_wal_lsn_diff($1::text::pg_lsn, replay_lsn))::int8 \
                 FROM pg_stat_replication WHERE application_name = $2",
                &[&target, &REPLICA_NAME],
            )
            .await?;
        let (connected, behind): (i64, Option<i64>) = (row.get(0), row.get(1));
        let now = Instant::now();
        absent_since = match connected {
            0 => absent_since.or(Some(now)),
            _ => None,
        };
        match catch_up(behind, absent_since.map(|t| now - t), now > deadline) {
            CatchUp::Done => return Ok(()),
            CatchUp::Wait => tokio::time::sleep(POLL).await,
            CatchUp::Gone => {
                return Err(Error::rehearsal(
                    "the replica is no longer connected to the primary",
                ))
            }
            CatchUp::Late => {
                return Err(Error::rehearsal(format!(
                    "the replica did not catch up with the seeded data within {}s ({})",
                    limit.as_secs(),
                    match behind {
                        Some(b) => format!("{b} bytes of WAL behind"),
                        None => "no replay position reported yet".into(),
                    }
                )))
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum CatchUp {
    Done,
    Wait,
    Gone,
    Late,
}

/// One look at the replica's replay: `behind` the target (bytes; None
/// while no walsender reports a replay position), no walsender for
/// `absent_for`, past the deadline or not. A walsender that has not heard
/// from the standby yet shows no replay position: that is a replica to
/// wait for, not one gone (QA: read as gone, 10 of 17 small --replica runs
/// failed while the standby streamed); one with no walsender for a while
/// is gone.
fn catch_up(behind: Option<i64>, absent_for: Option<Duration>, late: bool) -> CatchUp {
    match behind {
        Some(b) if b <= 0 => CatchUp::Done,
        _ if absent_for.is_some_and(|d| d > RECONNECT_GRACE) => CatchUp::Gone,
        _ if late => CatchUp::Late,
        _ => CatchUp::Wait,
    }
}

/// How long a replica may have no walsender before it counts as gone.
const RECONNECT_GRACE: Duration = Duration::from_secs(5);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_without_a_replay_position_is_waited_for() {
        let s = Duration::from_secs;
        // Connected, no replay position yet: wait (it was "gone").
        assert_eq!(catch_up(None, None, false), CatchUp::Wait);
        assert_eq!(catch_up(Some(0), None, false), CatchUp::Done);
        assert_eq!(catch_up(Some(4096), None, false), CatchUp::Wait);
        assert_eq!(catch_up(Some(4096), None, true), CatchUp::Late);
        // Between two connections for a moment; then gone.
        assert_eq!(catch_up(None, Some(s(1)), false), CatchUp::Wait);
        assert_eq!(catch_up(None, Some(s(6)), false), CatchUp::Gone);
    }

    #[test]
    fn standby_settings_keep_the_primarys_and_add_its_own() {
        let primary = vec![
            ("max_connections".to_string(), "140".to_string()),
            ("hot_standby".to_string(), "off".to_string()),
        ];
        let s = standby_settings(&primary);
        assert!(s.contains(&("max_connections".into(), "140".into())));
        assert!(s.contains(&("hot_standby".into(), "on".into())));
        assert!(s.contains(&("cluster_name".into(), REPLICA_NAME.into())));
        assert_eq!(s.iter().filter(|(k, _)| k == "hot_standby").count(), 1);
    }
}
