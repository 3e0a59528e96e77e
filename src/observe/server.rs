//! Server-wide samples every [`super::ObserverCtx::sample`] during steps
//! (4× less often outside them) for server.csv:
//! WAL written, dead tuples and size of the scenario's tables, backends
//! waiting for a lock, replica lag.
//!
//! Replica lag is read on the primary (pg_stat_replication), the only place
//! every backend can see it (a docker replica has no reachable port): in
//! bytes, the primary's WAL position minus the standby's replay position;
//! in time, `replay_lag` — how long ago the primary flushed the WAL the
//! standby has just replayed, as the standby last reported (every second
//! at least: our standbys set wal_receiver_status_interval = 1s). Postgres
//! shows `replay_lag` NULL once an idle standby has caught up, and keeps
//! the last figure for a while after it caught up, so a standby that has
//! replayed everything the primary wrote counts as 0. The alternative,
//! `now() - pg_last_xact_replay_timestamp()` on the standby, grows without
//! bound while the primary commits nothing, and needs a session on the
//! standby.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::ObserverCtx;
use crate::record::ServerRow;

/// Server-wide samples for server.csv.
pub(super) async fn sample_server(
    mut client: tokio_postgres::Client,
    ctx: Arc<ObserverCtx>,
) -> crate::Result<(Vec<ServerRow>, Option<String>)> {
    let start_lsn: String = client
        .query_one("SELECT pg_current_wal_lsn()::text", &[])
        .await?
        .get(0);
    let (mut stats, mut sizes) = statements(&client).await?;
    let mut rows = Vec::new();
    let mut last_size = 0u64;
    let mut last = None;
    loop {
        if let Some(last) = last {
            if !next_sample(&ctx, last).await {
                break;
            }
        }
        last = Some(tokio::time::Instant::now());
        let t = ctx.clock.now_ms();
        let (names, every) = (&ctx.sized.names, &ctx.sized.every_table);
        let r = match client
            .query_one(&stats, &[&start_lsn, &ctx.tables, names, every])
            .await
        {
            Ok(r) => r,
            // Its session terminated by a step while the server lives:
            // sampled again on a fresh one from the next sample.
            Err(e) if super::session_lost(&client, &e) => {
                let fresh =
                    match super::reconnect(&ctx, "the server sampler", &crate::pg::error_text(&e))
                        .await
                    {
                        Some(c) => c,
                        None => return Ok((rows, Some(lost(&e)))),
                    };
                match fresh_statements(&fresh).await {
                    Ok((s, z)) => (client, stats, sizes) = (fresh, s, z),
                    Err(_) => return Ok((rows, Some(lost(&e)))),
                }
                continue;
            }
            // Keep the samples taken so far.
            Err(e) => return Ok((rows, Some(lost(&e)))),
        };
        if let Ok(s) = client.query_one(&sizes, &[&ctx.tables, names, every]).await {
            last_size = s.get::<_, i64>(0).max(0) as u64;
        }
        let lag: Option<i64> = r.get(3);
        let lag_ms: Option<f64> = r.get(4);
        rows.push(ServerRow {
            t_ms: crate::pg::round3(t),
            wal_bytes: r.get::<_, i64>(0).max(0) as u64,
            dead_tuples: r.get::<_, i64>(1).max(0) as u64,
            table_bytes: last_size,
            replica_lag_bytes: lag.map(|l| l.max(0) as u64),
            replica_lag_ms: lag_ms.map(|l| crate::pg::round3(l.max(0.0))),
            waiting_backends: r.get::<_, i32>(2).max(0) as u32,
        });
    }
    Ok((rows, None))
}

fn lost(e: &tokio_postgres::Error) -> String {
    format!(
        "the server sampler lost the server: {}",
        crate::pg::error_text(e)
    )
}

/// A fresh session's settings and statements: like the first, it must
/// never queue behind a migration lock.
async fn fresh_statements(
    client: &tokio_postgres::Client,
) -> Result<(tokio_postgres::Statement, tokio_postgres::Statement), tokio_postgres::Error> {
    client.batch_execute("SET lock_timeout = '1ms'").await?;
    statements(client).await
}

/// The sample's statements: the server's figures, and the tables' sizes.
async fn statements(
    client: &tokio_postgres::Client,
) -> Result<(tokio_postgres::Statement, tokio_postgres::Statement), tokio_postgres::Error> {
    // The statistics functions themselves, not the views over them
    // (pg_stat_user_tables, pg_stat_activity: every table's and backend's
    // columns, joined), and pg_stat_replication read once: half the cost of
    // a sample on the server.
    // Dead tuples and sizes of the scenario's tables: a partitioned one's
    // are its partitions' (pg::scenario_storage_ctes).
    let stats = client
        .prepare(&format!(
            "{}, r AS (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn))::int8 AS bytes, \
                 max(CASE WHEN replay_lsn >= pg_current_wal_lsn() THEN 0 \
                          ELSE extract(epoch FROM replay_lag) * 1000 END)::float8 AS ms \
               FROM pg_stat_replication) \
             SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::text::pg_lsn)::int8, \
             (SELECT coalesce(sum(pg_stat_get_dead_tuples(oid)), 0)::int8 FROM tabs), \
             (SELECT count(*)::int4 FROM pg_stat_get_backend_idset() b \
                WHERE pg_stat_get_backend_wait_event_type(b) = 'Lock' \
                AND pg_stat_get_backend_dbid(b) = (SELECT oid FROM pg_database WHERE datname = current_database())), \
             r.bytes, r.ms FROM r",
            crate::pg::scenario_storage_ctes(&crate::pg::SizedTables::oids_sql(2, 3, 4))
        ))
        .await?;
    // Sizing takes AccessShareLock on each table; with lock_timeout = 1ms it
    // gives up instead of queueing behind the migration (the last size is kept).
    let sizes = client
        .prepare(&format!(
            "{} SELECT coalesce(sum(pg_total_relation_size(oid)), 0)::int8 FROM tabs",
            crate::pg::scenario_storage_ctes(&crate::pg::SizedTables::oids_sql(1, 2, 3))
        ))
        .await?;
    Ok((stats, sizes))
}

/// Wait for the sample after the one taken at `last`: `sample` after it
/// while a step runs, 4× that otherwise — but a step that starts meanwhile
/// is sampled within `sample` of its start (a step shorter than the slow
/// interval would otherwise go unseen). False once stopped.
async fn next_sample(ctx: &ObserverCtx, last: tokio::time::Instant) -> bool {
    let idle_until = last + ctx.sample * 4;
    let mut wake = last;
    loop {
        let in_step = ctx.migration.in_step.load(Ordering::Relaxed);
        if in_step && tokio::time::Instant::now() >= last + ctx.sample {
            return true;
        }
        if tokio::time::Instant::now() >= idle_until {
            return true;
        }
        // Look again a sample interval on (or when the idle wait ends).
        wake = (wake + ctx.sample).min(idle_until).max(last + ctx.sample);
        tokio::select! {
            _ = ctx.stop.cancelled() => return false,
            _ = tokio::time::sleep_until(wake) => {}
        }
    }
}
