//! Observers: who waits for which lock behind whom (waits.rs), which locks
//! the migration session holds while a statement runs outside a
//! transaction (held.rs), the `log_lock_waits` lines of a server we own
//! (log.rs), and server-wide samples (server.rs).
//!
//! Cost: the wait poll reads three per-backend figures of this database's
//! backends (no view, no query text; the database's oid is a parameter)
//! every 5 ms while a step runs or someone waits, backing off to 25 ms
//! otherwise; query texts, blocking pids and pg_locks are read only while
//! some backend waits for a lock. The held-lock poll (one read of pg_locks
//! per poll, the costliest query of all) runs only while a migration
//! statement runs: outside a transaction every 1 ms at its start and after
//! its locks change, then at an eighth of how long they have stayed the
//! same, up to every 16 ms; inside one (its
//! waits only) every 1 ms for its first 100 ms, every 10 ms after. The
//! server sampler (statistics functions, not the views over them) every
//! 250 ms during steps, every second otherwise. benches/results/observer
//! says what each costs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncSeekExt;
use tokio_util::sync::CancellationToken;

use crate::backend::{ConnInfo, ServerLog};
use crate::clock::{Clock, ServerClock};
use crate::record::{ServerRow, WaitRow};
use crate::workload::PidRegistry;

mod held;
mod log;
mod server;
mod waits;

pub use held::{HeldSighting, StatementPolls, TxnChange, HELD_POLL, HELD_POLL_STILL};
pub use log::parse_acquired;
pub use waits::SUSPECT_AFTER;

pub const OBSERVER_APP_NAME: &str = "pgrehearse/observer";

/// waits.csv keeps at most this many rows (about 25 MB in memory): a long
/// run with constant app-on-app row-lock contention must not grow without
/// bound. Waits past the cap are counted in `Observations::waits_dropped`.
pub const MAX_WAIT_ROWS: usize = 100_000;

/// Did `e` end the session itself (terminated by an administrator
/// command, the connection closed), rather than fail one query?
pub(crate) fn session_lost(client: &tokio_postgres::Client, e: &tokio_postgres::Error) -> bool {
    client.is_closed()
        || e.is_closed()
        || e.code().is_some_and(|c| {
            let c = c.code();
            c.starts_with("08") || c.starts_with("57P")
        })
}

/// A fresh session for an observer whose session was lost (`lost`), if
/// the server still takes one within 2 s: a step may terminate other
/// backends (`pg_terminate_backend` of every session but its own), the
/// tool's among them, while the server lives on. None: the server is gone,
/// and the observer's loss stands (the health watch says so too).
pub(crate) async fn reconnect(
    ctx: &ObserverCtx,
    who: &str,
    lost: &str,
) -> Option<tokio_postgres::Client> {
    let fresh =
        tokio::time::timeout(Duration::from_secs(2), ctx.conn.connect(OBSERVER_APP_NAME)).await;
    match fresh {
        Ok(Ok(c)) => {
            tracing::info!("{who}: its session was lost ({lost}); reconnected");
            Some(c)
        }
        _ => None,
    }
}

/// What the migration session is doing, shared with the observer.
#[derive(Debug, Default)]
pub struct MigrationStatus {
    pub pid: AtomicI32,
    /// A step runs (from its first statement to its last COMMIT): the
    /// observers poll at full rate.
    pub in_step: AtomicBool,
    /// A statement is executing.
    pub in_statement: AtomicBool,
    /// The current statement runs outside an explicit transaction, so the
    /// executor cannot list its locks itself: the held-lock poller does.
    pub autocommit: AtomicBool,
    /// Wakes the wait poller (backed off while idle) when a step starts.
    pub step_started: tokio::sync::Notify,
    /// Wakes the held-lock poller the moment such a statement is sent.
    pub statement_sent: tokio::sync::Notify,
    /// Counts the statements sent outside a transaction: which one runs.
    pub statement_seq: AtomicU64,
    /// The `statement_seq` the held-lock poller follows, set as it starts
    /// to (`poller_armed` wakes whoever waits for it): a statement outside
    /// a transaction is sent once its first poll is on the way.
    pub armed_seq: AtomicU64,
    pub poller_armed: tokio::sync::Notify,
    /// Backends seen waiting for a lock at the last poll (progress display).
    pub waiting_backends: AtomicU32,
}

/// A lock the migration waited for.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationWait {
    pub locktype: String,
    /// The relation's oid, for relation locks.
    pub oid: Option<u32>,
    /// Its name as the observer saw it.
    pub relation: String,
    pub mode: String,
    pub start_ms: f64,
    /// When it stopped waiting (granted or gave up), to poll precision.
    pub end_ms: f64,
    /// Who held it up, as the wait poller saw (pg_blocking_pids): `app
    /// VERSION` (`the app` for the default one), `script NAME`, `another
    /// session (pid N)`; those seen in a good part of the wait, most seen
    /// first (see `waits::main_blockers`). Empty
    /// when no poll saw it blocked by anyone (too short, or the lock
    /// poller's alone).
    pub blockers: Vec<String>,
}

/// "process N acquired MODE on TAG after X ms" from the server log.
#[derive(Debug, Clone, PartialEq)]
pub struct LogAcquired {
    pub pid: i32,
    pub mode: String,
    /// Relation oid when the tag is a relation.
    pub relation_oid: Option<u32>,
    pub locktag: String,
    pub at_ms: f64,
    pub after_ms: f64,
}

#[derive(Debug, Default)]
pub struct Observations {
    pub waits: Vec<WaitRow>,
    pub migration_waits: Vec<MigrationWait>,
    pub migration_held: Vec<HeldSighting>,
    pub migration_txn_changes: Vec<TxnChange>,
    /// When the lock poller read the migration's locks, per statement.
    pub migration_statement_polls: Vec<StatementPolls>,
    pub log_acquired: Vec<LogAcquired>,
    pub server: Vec<ServerRow>,
    pub polls: u64,
    /// The wait poller's ticks that did not read the server: no request had
    /// been there long enough to be waiting (waits.rs).
    pub polls_skipped: u64,
    /// Polls of the migration's own locks (outside transactions).
    pub held_polls: u64,
    /// Waits not kept because waits.csv reached [`MAX_WAIT_ROWS`].
    pub waits_dropped: u64,
    /// Set when an observer lost its connection before the end (the server
    /// died): what it saw until then is kept.
    pub connection_lost: Option<String>,
    /// Mean time between polls while a step ran, ms (the precision of wait
    /// ends).
    pub mean_poll_ms: f64,
}

pub struct ObserverCtx {
    pub conn: ConnInfo,
    pub clock: Clock,
    pub server_clock: ServerClock,
    pub pids: PidRegistry,
    pub migration: Arc<MigrationStatus>,
    /// The app connections' and script sessions' requests in flight: the
    /// wait poller reads the server only while one has been there a while.
    pub requests: crate::latency::Registry,
    /// Exact SQL text → workload query name.
    pub query_names: HashMap<String, String>,
    /// The workload's query names, in the plan's order (an app
    /// connection's current query is an index into it).
    pub query_list: Vec<String>,
    /// The scenario's tables, by oid.
    pub tables: Vec<u32>,
    /// What server.csv sizes besides `tables` (their names now, every
    /// table with `[migrations]`).
    pub sized: crate::pg::SizedTables,
    /// The wait poll's interval during steps (it backs off to 5× outside).
    pub poll: Duration,
    /// The server sample's interval during steps (4× outside).
    pub sample: Duration,
    pub server_log: Option<ServerLog>,
    pub stop: CancellationToken,
}

type Sampled = (Vec<ServerRow>, Option<String>);

pub struct Observer {
    waits: tokio::task::JoinHandle<crate::Result<waits::WaitPoller>>,
    held: std::thread::JoinHandle<Option<held::Held>>,
    server: tokio::task::JoinHandle<crate::Result<Sampled>>,
    log: Option<tokio::task::JoinHandle<Vec<LogAcquired>>>,
}

impl Observer {
    pub async fn start(ctx: ObserverCtx) -> crate::Result<Observer> {
        let ctx = Arc::new(ctx);
        let wait_client = ctx.conn.connect(OBSERVER_APP_NAME).await?;
        let server_client = ctx.conn.connect(OBSERVER_APP_NAME).await?;
        // The size sampler must never queue behind a migration lock.
        server_client
            .batch_execute("SET lock_timeout = '1ms'")
            .await?;
        let log = match &ctx.server_log {
            Some(ServerLog::File(path)) => {
                let path = path.clone();
                let c = ctx.clone();
                let mut file = tokio::fs::File::open(&path).await?;
                file.seek(std::io::SeekFrom::End(0)).await?;
                Some(tokio::spawn(log::tail_log(file, c)))
            }
            None => None,
        };
        let poller = waits::WaitPoller::prepare(ctx.clone(), &wait_client).await?;
        let waits = tokio::spawn(poller.run(wait_client));
        let held = held::Held::start(ctx.clone()).await?;
        let server = tokio::spawn(server::sample_server(server_client, ctx.clone()));
        Ok(Observer {
            waits,
            held,
            server,
            log,
        })
    }

    /// Stop (the ctx's `stop` token must have been cancelled) and collect.
    pub async fn finish(self) -> crate::Result<Observations> {
        let poller = self.waits.await.map_err(anyhow::Error::new)??;
        let held = tokio::task::spawn_blocking(move || self.held.join())
            .await
            .map_err(anyhow::Error::new)?
            .ok()
            .flatten()
            .ok_or_else(|| anyhow::anyhow!("the migration's lock poller panicked"))?;
        let (server, server_lost) = self.server.await.map_err(anyhow::Error::new)??;
        let log_acquired = match self.log {
            Some(h) => h.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut obs = poller.into_observations();
        obs.migration_held = held.sightings;
        obs.migration_txn_changes = held.txn_changes;
        obs.migration_statement_polls = held.statement_polls;
        merge_waits(&mut obs.migration_waits, held.waits);
        obs.held_polls = held.polls;
        obs.server = server;
        obs.connection_lost = obs.connection_lost.or(held.lost).or(server_lost);
        obs.log_acquired = log_acquired;
        Ok(obs)
    }
}

/// The migration's waits of the lock poller (every 1 ms while a statement
/// runs) replace those of the wait poller (every 5 ms) for the same lock and
/// time: one wait, one row, the finer timing.
fn merge_waits(waits: &mut Vec<MigrationWait>, mut fine: Vec<MigrationWait>) {
    // One wait seen by both: the same lock (a wait for another
    // transaction's end whatever table each names it by), over the same
    // time. The fine one keeps its timing and takes the coarse one's
    // blockers, and its table where it names none.
    let same = |f: &MigrationWait, w: &MigrationWait| {
        f.locktype == w.locktype
            && (f.oid == w.oid || f.locktype == "transactionid")
            && f.mode == w.mode
            && f.start_ms <= w.end_ms + 1.0
            && w.start_ms <= f.end_ms + 1.0
    };
    for f in fine.iter_mut() {
        let coarse: Vec<&MigrationWait> = waits.iter().filter(|w| same(f, w)).collect();
        for w in coarse {
            for b in &w.blockers {
                if !f.blockers.contains(b) {
                    f.blockers.push(b.clone());
                }
            }
            if f.oid.is_none() && w.oid.is_some() {
                f.oid = w.oid;
                f.relation = w.relation.clone();
            }
        }
    }
    waits.retain(|w| !fine.iter().any(|f| same(f, w)));
    waits.extend(fine);
    waits.sort_by(|a, b| {
        a.start_ms
            .total_cmp(&b.start_ms)
            .then_with(|| (&a.locktype, a.oid, &a.mode).cmp(&(&b.locktype, b.oid, &b.mode)))
    });
    // The lock poller follows one statement at a time: a wait that goes on
    // across two follows (the statement's and the probe's behind it) is
    // seen twice, with the same waitstart (µs, from pg_locks). One wait:
    // it ended when the later sighting did.
    waits.dedup_by(|later, earlier| {
        let same = later.locktype == earlier.locktype
            && later.oid == earlier.oid
            && later.mode == earlier.mode
            && (later.start_ms - earlier.start_ms).abs() < 0.001;
        if same {
            earlier.end_ms = earlier.end_ms.max(later.end_ms);
            for b in later.blockers.drain(..) {
                if !earlier.blockers.contains(&b) {
                    earlier.blockers.push(b);
                }
            }
        }
        same
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(mode: &str, start_ms: f64, end_ms: f64) -> MigrationWait {
        MigrationWait {
            locktype: "relation".into(),
            oid: Some(16_400),
            relation: "items".into(),
            mode: mode.into(),
            start_ms,
            end_ms,
            blockers: Vec::new(),
        }
    }

    #[test]
    fn one_wait_seen_by_two_follows_is_one_wait() {
        let mut coarse = vec![wait("AccessExclusiveLock", 1281.9, 1286.5)];
        let fine = vec![
            wait("AccessExclusiveLock", 1281.95, 1282.304),
            wait("ShareLock", 1281.95, 1283.0),
            wait("AccessExclusiveLock", 1281.95, 1285.99),
            // A retry after a lock timeout waits anew: another waitstart.
            wait("AccessExclusiveLock", 1300.0, 1301.0),
        ];
        merge_waits(&mut coarse, fine);
        assert_eq!(
            coarse,
            vec![
                wait("AccessExclusiveLock", 1281.95, 1285.99),
                wait("ShareLock", 1281.95, 1283.0),
                wait("AccessExclusiveLock", 1300.0, 1301.0),
            ]
        );
    }
}
