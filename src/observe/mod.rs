//! Observers: who waits for which lock behind whom (a cheap poll of
//! pg_stat_activity, pg_locks only when someone waits), which locks the
//! migration session holds while it runs outside a transaction, the
//! `log_lock_waits` lines of a server we own, and server-wide samples.
//!
//! Cost: every poll reads pg_stat_activity (a shared-memory scan, a few µs);
//! pg_locks and pg_blocking_pids are only read while some backend waits for
//! a lock, so a quiet server pays almost nothing.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncSeekExt;
use tokio_util::sync::CancellationToken;

use crate::backend::{ConnInfo, ServerLog};
use crate::clock::{Clock, ServerClock};
use crate::record::{ServerRow, WaitCause, WaitRow};
use crate::workload::{PidOwner, PidRegistry, SCRIPT_APP};

mod log;
mod server;

pub use log::parse_acquired;

pub const OBSERVER_APP_NAME: &str = "pgrehearse/observer";

/// waits.csv keeps at most this many rows (about 25 MB in memory): a long
/// run with constant app-on-app row-lock contention must not grow without
/// bound. Waits past the cap are counted in `Observations::waits_dropped`.
pub const MAX_WAIT_ROWS: usize = 100_000;

/// What the migration session is doing, shared with the observer.
#[derive(Debug, Default)]
pub struct MigrationStatus {
    pub pid: AtomicI32,
    /// A statement is executing.
    pub in_statement: AtomicBool,
    /// The current statement runs outside an explicit transaction, so the
    /// executor cannot snapshot its locks itself: the observer polls them.
    pub autocommit: AtomicBool,
    /// Backends seen waiting for a lock at the last poll (progress display).
    pub waiting_backends: AtomicU32,
}

/// A lock the migration waited for.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationWait {
    pub locktype: String,
    pub relation: String,
    pub mode: String,
    pub start_ms: f64,
    /// When it stopped waiting (granted or gave up), to poll precision.
    pub end_ms: f64,
}

/// A lock seen held by the migration while it ran outside a transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldSighting {
    pub locktype: String,
    pub relation: String,
    pub mode: String,
    pub first_ms: f64,
    pub last_ms: f64,
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
    pub log_acquired: Vec<LogAcquired>,
    pub server: Vec<ServerRow>,
    pub polls: u64,
    /// Waits not kept because waits.csv reached [`MAX_WAIT_ROWS`].
    pub waits_dropped: u64,
    /// Set when an observer lost its connection before the end (the server
    /// died): what it saw until then is kept.
    pub connection_lost: Option<String>,
    /// Mean time between polls, ms (the precision of wait ends).
    pub mean_poll_ms: f64,
}

pub struct ObserverCtx {
    pub conn: ConnInfo,
    pub clock: Clock,
    pub server_clock: ServerClock,
    pub pids: PidRegistry,
    pub migration: Arc<MigrationStatus>,
    /// Exact SQL text → workload query name.
    pub query_names: HashMap<String, String>,
    pub tables: Vec<String>,
    pub poll: Duration,
    pub sample: Duration,
    pub server_log: Option<ServerLog>,
    pub stop: CancellationToken,
}

pub struct Observer {
    waits: tokio::task::JoinHandle<crate::Result<WaitPoller>>,
    server: tokio::task::JoinHandle<crate::Result<(Vec<ServerRow>, Option<String>)>>,
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
        let poller = WaitPoller::new(ctx.clone());
        let waits = tokio::spawn(poller.run(wait_client));
        let server = tokio::spawn(server::sample_server(server_client, ctx.clone()));
        Ok(Observer { waits, server, log })
    }

    /// Stop (the ctx's `stop` token must have been cancelled) and collect.
    pub async fn finish(self) -> crate::Result<Observations> {
        let poller = self.waits.await.map_err(anyhow::Error::new)??;
        let (server, server_lost) = self.server.await.map_err(anyhow::Error::new)??;
        let log_acquired = match self.log {
            Some(h) => h.await.unwrap_or_default(),
            None => Vec::new(),
        };
        let mut obs = poller.into_observations();
        obs.server = server;
        obs.connection_lost = obs.connection_lost.or(server_lost);
        obs.log_acquired = log_acquired;
        Ok(obs)
    }
}

/// An app wait being watched.
struct OpenWait {
    pid: i32,
    query: String,
    app: String,
    relation: String,
    mode: String,
    start_ms: f64,
    last_seen_ms: f64,
    blockers: BTreeSet<i32>,
    queued_behind_migration: bool,
    blocked_by_migration: bool,
    seen_in_poll: u64,
}

struct OpenMigWait {
    wait: MigrationWait,
    seen_in_poll: u64,
}

struct WaitPoller {
    ctx: Arc<ObserverCtx>,
    open: HashMap<(i32, String, String, i64), OpenWait>,
    mig_open: HashMap<(String, String, String, i64), OpenMigWait>,
    held_open: HashMap<(String, String, String), HeldSighting>,
    done: Vec<WaitRow>,
    waits_dropped: u64,
    mig_done: Vec<MigrationWait>,
    held_done: Vec<HeldSighting>,
    polls: u64,
    /// Why polling stopped early, if it did.
    lost: Option<String>,
    first_poll_ms: f64,
    last_poll_ms: f64,
}

struct Waiter {
    pid: i32,
    query: String,
    blockers: Vec<i32>,
}

struct Ungranted {
    pid: i32,
    locktype: String,
    relation: String,
    mode: String,
    waitstart_ms: Option<f64>,
}

impl WaitPoller {
    fn new(ctx: Arc<ObserverCtx>) -> WaitPoller {
        WaitPoller {
            ctx,
            open: HashMap::new(),
            mig_open: HashMap::new(),
            held_open: HashMap::new(),
            done: Vec::new(),
            waits_dropped: 0,
            mig_done: Vec::new(),
            held_done: Vec::new(),
            polls: 0,
            lost: None,
            first_poll_ms: 0.0,
            last_poll_ms: 0.0,
        }
    }

    async fn run(mut self, client: tokio_postgres::Client) -> crate::Result<WaitPoller> {
        let waiters = client
            .prepare(
                "SELECT pid, coalesce(query, ''), pg_blocking_pids(pid) FROM pg_stat_activity \
                 WHERE wait_event_type = 'Lock' AND datname = current_database() \
                 AND application_name NOT IN ('pgrehearse/observer', 'pgrehearse/health', 'pgrehearse/harness')",
            )
            .await?;
        let ungranted = client
            .prepare(
                "SELECT pid, locktype, coalesce(relation::regclass::text, locktype), mode, \
                 (extract(epoch from waitstart) * 1000)::float8 \
                 FROM pg_locks WHERE NOT granted",
            )
            .await?;
        let held = client
            .prepare(
                "SELECT locktype, coalesce(relation::regclass::text, locktype), mode \
                 FROM pg_locks WHERE pid = $1 AND granted AND locktype = 'relation'",
            )
            .await?;
        let mut tick = tokio::time::interval(self.ctx.poll);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll_log = tracing::enabled!(tracing::Level::TRACE).then(PollLog::default);
        loop {
            tokio::select! {
                _ = self.ctx.stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let t0 = self.ctx.clock.now_ms();
            let mig = &self.ctx.migration;
            let mig_pid = mig.pid.load(Ordering::Relaxed);
            // Outside a transaction the executor cannot list its own locks,
            // so we do, only while such a statement runs.
            let want_held = mig_pid != 0
                && mig.in_statement.load(Ordering::Relaxed)
                && mig.autocommit.load(Ordering::Relaxed);
            let polled = async {
                let waiters: Vec<Waiter> = client
                    .query(&waiters, &[])
                    .await?
                    .iter()
                    .map(|r| Waiter {
                        pid: r.get(0),
                        query: r.get(1),
                        blockers: r.get(2),
                    })
                    .collect();
                let ungranted: Vec<Ungranted> = if waiters.is_empty() {
                    Vec::new()
                } else {
                    client
                        .query(&ungranted, &[])
                        .await?
                        .iter()
                        .map(|r| Ungranted {
                            pid: r.get(0),
                            locktype: r.get(1),
                            relation: r.get(2),
                            mode: r.get(3),
                            waitstart_ms: r.get(4),
                        })
                        .collect()
                };
                let held_rows = if want_held {
                    client.query(&held, &[&mig_pid]).await?
                } else {
                    Vec::new()
                };
                Ok::<_, tokio_postgres::Error>((waiters, ungranted, held_rows))
            }
            .await;
            // A dead server (or a lost connection) ends the polling, not the
            // observations: what was seen until then is still reported.
            let (waiters, ungranted, held_rows) = match polled {
                Ok(p) => p,
                Err(e) => {
                    self.lost = Some(format!(
                        "the wait observer lost the server: {}",
                        crate::pg::error_text(&e)
                    ));
                    break;
                }
            };
            let t1 = self.ctx.clock.now_ms();
            let t = (t0 + t1) / 2.0;
            if self.polls == 0 {
                self.first_poll_ms = t;
            }
            self.polls += 1;
            self.last_poll_ms = t;
            mig.waiting_backends
                .store(waiters.len() as u32, Ordering::Relaxed);
            self.observe(t, mig_pid, &waiters, &ungranted);
            self.observe_held(t, &held_rows);
            if let Some(log) = &mut poll_log {
                log.add(t0, t1, waiters.len(), self.open.len());
            }
        }
        let end = self.ctx.clock.now_ms();
        self.observe(end, 0, &[], &[]);
        Ok(self)
    }

    fn observe(&mut self, t: f64, mig_pid: i32, waiters: &[Waiter], ungranted: &[Ungranted]) {
        let poll = self.polls;
        let migration_waiting = mig_pid != 0 && waiters.iter().any(|w| w.pid == mig_pid);
        for w in waiters {
            let Some(lock) = ungranted.iter().find(|u| u.pid == w.pid) else {
                continue; // granted between the two queries
            };
            let start = lock
                .waitstart_ms
                .map(|ms| self.ctx.server_clock.to_run_ms(ms))
                .unwrap_or(t);
            let key_start = (start * 1000.0) as i64;
            if w.pid == mig_pid {
                let key = (
                    lock.locktype.clone(),
                    lock.relation.clone(),
                    lock.mode.clone(),
                    key_start,
                );
                let e = self.mig_open.entry(key).or_insert_with(|| OpenMigWait {
                    wait: MigrationWait {
                        locktype: lock.locktype.clone(),
                        relation: lock.relation.clone(),
                        mode: lock.mode.clone(),
                        start_ms: start,
                        end_ms: t,
                    },
                    seen_in_poll: poll,
                });
                e.wait.end_ms = t;
                e.seen_in_poll = poll;
                continue;
            }
            let (query, app) = self.who(w.pid, &w.query);
            let key = (w.pid, lock.relation.clone(), lock.mode.clone(), key_start);
            let e = self.open.entry(key).or_insert_with(|| OpenWait {
                pid: w.pid,
                query,
                app,
                relation: lock.relation.clone(),
                mode: lock.mode.clone(),
                start_ms: start,
                last_seen_ms: t,
                blockers: BTreeSet::new(),
                queued_behind_migration: false,
                blocked_by_migration: false,
                seen_in_poll: poll,
            });
            e.last_seen_ms = t;
            e.seen_in_poll = poll;
            e.blockers.extend(w.blockers.iter().copied());
            if mig_pid != 0 && w.blockers.contains(&mig_pid) {
                // pg_blocking_pids lists the migration both when it holds a
                // conflicting lock and when it merely queues ahead of us.
                if migration_waiting {
                    e.queued_behind_migration = true;
                } else {
                    e.blocked_by_migration = true;
                }
            }
        }
        // Whatever was not seen this time has ended: halfway between the
        // last sighting and now is the best estimate.
        let gone: Vec<_> = self
            .open
            .iter()
            .filter(|(_, w)| w.seen_in_poll != poll)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            let w = self.open.remove(&k).expect("present");
            if self.done.len() >= MAX_WAIT_ROWS {
                self.waits_dropped += 1;
                continue;
            }
            let end = (w.last_seen_ms + t) / 2.0;
            let cause = if w.queued_behind_migration {
                WaitCause::QueuedBehindMigration
            } else if w.blocked_by_migration {
                WaitCause::Migration
            } else {
                WaitCause::App
            };
            let blocked_by = w
                .blockers
                .iter()
                .map(|p| {
                    if *p == mig_pid || self.is_migration_pid(*p) {
                        format!("m:{p}")
                    } else {
                        p.to_string()
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            self.done.push(WaitRow {
                query: w.query,
                app: w.app,
                pid: w.pid,
                relation: w.relation,
                mode: w.mode,
                start_ms: crate::pg::round3(w.start_ms),
                end_ms: crate::pg::round3(end),
                wait_ms: crate::pg::round3((end - w.start_ms).max(0.0)),
                blocked_by,
                cause,
            });
        }
        let gone: Vec<_> = self
            .mig_open
            .iter()
            .filter(|(_, w)| w.seen_in_poll != poll)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            let mut w = self.mig_open.remove(&k).expect("present").wait;
            w.end_ms = (w.end_ms + t) / 2.0;
            self.mig_done.push(w);
        }
    }

    fn is_migration_pid(&self, pid: i32) -> bool {
        pid != 0 && pid == self.ctx.migration.pid.load(Ordering::Relaxed)
    }

    fn observe_held(&mut self, t: f64, rows: &[tokio_postgres::Row]) {
        for r in rows {
            let key: (String, String, String) = (r.get(0), r.get(1), r.get(2));
            let e = self
                .held_open
                .entry(key.clone())
                .or_insert_with(|| HeldSighting {
                    locktype: key.0.clone(),
                    relation: key.1.clone(),
                    mode: key.2.clone(),
                    first_ms: t,
                    last_ms: t,
                });
            e.last_ms = t;
        }
        if !self.ctx.migration.in_statement.load(Ordering::Relaxed)
            || !self.ctx.migration.autocommit.load(Ordering::Relaxed)
        {
            self.held_done
                .extend(self.held_open.drain().map(|(_, v)| v));
        }
    }

    /// Which query and app a waiting pid belongs to.
    fn who(&self, pid: i32, sql: &str) -> (String, String) {
        match self.ctx.pids.get(pid) {
            Some(PidOwner::Script(name)) => (name, SCRIPT_APP.to_string()),
            Some(PidOwner::App(app)) => {
                let q = self
                    .ctx
                    .query_names
                    .get(sql.trim())
                    .cloned()
                    .unwrap_or_else(|| "(unknown)".into());
                (q, app)
            }
            None => ("(other session)".into(), "other".into()),
        }
    }

    fn into_observations(mut self) -> Observations {
        self.held_done
            .extend(self.held_open.drain().map(|(_, v)| v));
        let mut waits = self.done;
        waits.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms).then(a.pid.cmp(&b.pid)));
        let mean_poll_ms = if self.polls > 1 {
            (self.last_poll_ms - self.first_poll_ms) / (self.polls - 1) as f64
        } else {
            0.0
        };
        Observations {
            waits,
            migration_waits: self.mig_done,
            migration_held: self.held_done,
            log_acquired: Vec::new(),
            server: Vec::new(),
            polls: self.polls,
            waits_dropped: self.waits_dropped,
            connection_lost: self.lost,
            mean_poll_ms,
        }
    }
}

/// `-vv`: the wait polls of each second summed up in one line (200 lines a
/// second would bury everything else).
#[derive(Default)]
struct PollLog {
    since_ms: f64,
    polls: u32,
    busy_ms: f64,
    max_ms: f64,
    max_waiters: usize,
}

impl PollLog {
    fn add(&mut self, t0: f64, t1: f64, waiters: usize, open_waits: usize) {
        self.polls += 1;
        self.busy_ms += t1 - t0;
        self.max_ms = self.max_ms.max(t1 - t0);
        self.max_waiters = self.max_waiters.max(waiters);
        if t1 - self.since_ms < 1000.0 {
            return;
        }
        tracing::trace!(
            "observer: {} polls in {:.0} ms (mean {:.2} ms, max {:.2} ms each), up to {} backends waiting, {open_waits} waits open",
            self.polls,
            t1 - self.since_ms,
            self.busy_ms / f64::from(self.polls),
            self.max_ms,
            self.max_waiters
        );
        *self = PollLog {
            since_ms: t1,
            ..PollLog::default()
        };
    }
}
