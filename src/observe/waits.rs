//! App lock waits (waits.csv) and the migration's own waits: a cheap poll
//! of this database's backends for one waiting on a lock — three
//! per-backend figures over `pg_stat_get_backend_idset()`, no view, no
//! query text — and, only while someone waits, their query texts, blocking
//! pids and ungranted pg_locks rows (with `waitstart`).
//!
//! It ticks every [`ObserverCtx::poll`] while a step runs or someone waits,
//! 5× that otherwise, and reads the server at a tick only when someone may
//! be waiting: a wait seen at the last poll is still open, or a request of
//! the app (or of a script) has been on the server for over
//! [`SUSPECT_AFTER`] — a request waiting for a lock is one. Otherwise the
//! poll would find nobody: at tens of thousands of requests a second each
//! takes well under that, and a read of every backend's status 200 times a
//! second was most of what the observers cost the app during a step
//! (benches/results/observer). A wait's start is `waitstart`, exact
//! whenever it is seen; a wait that ends within [`SUSPECT_AFTER`] of the
//! tick after its start is missed. The migration's own waits are the
//! held-lock poller's (held.rs), which polls whenever a statement runs.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio_postgres::{Client, Statement};

use super::{MigrationWait, Observations, ObserverCtx, MAX_WAIT_ROWS};
use crate::record::{WaitCause, WaitRow};
use crate::workload::{PidOwner, SCRIPT_APP};

/// How long a request must have been on the server before the next tick
/// reads the server for waits.
pub const SUSPECT_AFTER: std::time::Duration = std::time::Duration::from_millis(1);

/// Sessions of pgrehearse itself: never app waits.
const OWN_APPS: [&str; 3] = [
    "pgrehearse/observer",
    "pgrehearse/health",
    "pgrehearse/harness",
];

/// An app wait being watched.
struct OpenWait {
    pid: i32,
    query: String,
    app: String,
    locktype: String,
    relation: String,
    mode: String,
    start_ms: f64,
    last_seen_ms: f64,
    blockers: BTreeSet<i32>,
    queued_behind_migration: bool,
    blocked_by_migration: bool,
    /// Until when its time was shared out below.
    shared_to_ms: f64,
    /// How long a session other than the migration held a lock it
    /// conflicted with (a blocker not itself waiting holds one), and how
    /// long only the migration blocked it: a wait behind another's lock
    /// that the migration's queued request joins late is that session's.
    other_ms: f64,
    migration_ms: f64,
}

/// Waits being watched from poll to poll, each under a key that names one
/// wait (its waitstart, to the µs, is part of it). A wait one poll does not
/// see is closed only if the next one does not see it either: a waiting
/// backend is woken now and then (its deadlock check at
/// `deadlock_timeout`, a release on the lock it waits for) and shows no
/// wait event until it sleeps again, so a poll can miss a wait that goes
/// on — one wait, not two rows with the same start.
struct Watch<K, V> {
    /// Each wait, with the poll that last saw it.
    open: HashMap<K, (V, u64)>,
    /// Missed by the last poll, which looked at this time.
    missed: HashMap<K, (V, f64)>,
}

impl<K: std::hash::Hash + Eq + Clone, V> Watch<K, V> {
    fn new() -> Self {
        Watch {
            open: HashMap::new(),
            missed: HashMap::new(),
        }
    }

    /// Poll `poll` sees the wait `key` (a new one made by `new`).
    fn see(&mut self, key: K, poll: u64, new: impl FnOnce() -> V) -> &mut V {
        let missed = self.missed.remove(&key).map(|(v, _)| v);
        let e = self
            .open
            .entry(key)
            .or_insert_with(|| (missed.unwrap_or_else(new), poll));
        e.1 = poll;
        &mut e.0
    }

    /// Poll `poll`, made at `t`, is over: the waits it missed after the one
    /// before missed them too are returned, each with when it was first
    /// missed; those it missed first wait for the next poll.
    fn end_poll(&mut self, poll: u64, t: f64) -> Vec<(V, f64)> {
        let over = self.missed.drain().map(|(_, v)| v).collect();
        let unseen: Vec<K> = self
            .open
            .iter()
            .filter(|(_, (_, p))| *p != poll)
            .map(|(k, _)| k.clone())
            .collect();
        for k in unseen {
            let (v, _) = self.open.remove(&k).expect("present");
            self.missed.insert(k, (v, t));
        }
        over
    }

    /// Polling is over at `t`: every wait still watched, with when it was
    /// last looked for.
    fn finish(&mut self, t: f64) -> Vec<(V, f64)> {
        let mut over: Vec<(V, f64)> = self.missed.drain().map(|(_, v)| v).collect();
        over.extend(self.open.drain().map(|(_, (v, _))| (v, t)));
        over
    }

    fn is_empty(&self) -> bool {
        self.open.is_empty() && self.missed.is_empty()
    }

    fn len(&self) -> usize {
        self.open.len()
    }
}

pub(super) struct WaitPoller {
    ctx: Arc<ObserverCtx>,
    /// The oid of the rehearsal's database.
    database: u32,
    queries: Queries,
    open: Watch<(i32, String, String, i64), OpenWait>,
    mig_open: Watch<(String, String, String, i64), MigrationWait>,
    done: Vec<WaitRow>,
    waits_dropped: u64,
    mig_done: Vec<MigrationWait>,
    polls: u64,
    /// Why polling stopped early, if it did.
    lost: Option<String>,
    /// Polls at full rate and the time between them (the precision of a
    /// wait's end).
    busy_polls: u64,
    busy_gap_ms: f64,
    /// Ticks without a poll: nobody could have been waiting.
    ticks_skipped: u64,
}

struct Queries {
    /// Pids of this database's backends waiting for a lock.
    waiting: Statement,
    /// Their query text, application and blocking pids.
    details: Statement,
    /// Ungranted pg_locks rows.
    ungranted: Statement,
}

struct Waiter {
    pid: i32,
    query: String,
    blockers: Vec<i32>,
}

struct Ungranted {
    pid: i32,
    locktype: String,
    oid: Option<u32>,
    relation: String,
    mode: String,
    waitstart_ms: Option<f64>,
}

impl WaitPoller {
    pub(super) async fn prepare(
        ctx: Arc<ObserverCtx>,
        client: &Client,
    ) -> crate::Result<WaitPoller> {
        let (database, queries) = Self::queries(client).await?;
        Ok(WaitPoller {
            ctx,
            database,
            queries,
            open: Watch::new(),
            mig_open: Watch::new(),
            done: Vec::new(),
            waits_dropped: 0,
            mig_done: Vec::new(),
            polls: 0,
            lost: None,
            busy_polls: 0,
            busy_gap_ms: 0.0,
            ticks_skipped: 0,
        })
    }

    /// The database's oid and the poll's statements, prepared on `client`.
    async fn queries(client: &Client) -> Result<(u32, Queries), tokio_postgres::Error> {
        // This database's backends are this rehearsal's: it works in a
        // scratch database of its own. Its oid is read once: a lookup of
        // pg_database in every poll cost a third of the poll.
        let database: u32 = client
            .query_one(
                "SELECT oid FROM pg_database WHERE datname = current_database()",
                &[],
            )
            .await?
            .get(0);
        let waiting = client
            .prepare_typed(
                "SELECT pid FROM (SELECT pg_stat_get_backend_pid(b) AS pid, \
                   pg_stat_get_backend_dbid(b) AS db, pg_stat_get_backend_wait_event_type(b) AS w \
                   FROM pg_stat_get_backend_idset() b) s \
                 WHERE w = 'Lock' AND db = $1",
                &[tokio_postgres::types::Type::OID],
            )
            .await?;
        let details = client
            .prepare(
                "SELECT pid, coalesce(query, ''), pg_blocking_pids(pid) FROM pg_stat_activity \
                 WHERE pid = ANY($1) AND wait_event_type = 'Lock' AND NOT application_name = ANY($2)",
            )
            .await?;
        let ungranted = client
            .prepare(
                // An advisory lock is named by its key, never a table. A
                // wait for a row another transaction changed is a wait for
                // that transaction's id, with no relation: the table is the
                // one the waiter holds the row's tuple lock on, else the
                // one it is changing (its RowExclusiveLock on a table).
                &format!(
                    "WITH l AS MATERIALIZED (SELECT * FROM pg_locks), \
                 w AS (SELECT l.pid, l.locktype, l.mode, l.waitstart, l.classid, l.objid, \
                     l.objsubid, CASE WHEN l.locktype = 'advisory' THEN NULL ELSE coalesce(l.relation, \
                     (SELECT t.relation FROM l t WHERE t.pid = l.pid AND t.granted \
                        AND t.locktype = 'tuple' LIMIT 1), \
                     (SELECT min(t.relation) FROM l t JOIN pg_class c ON c.oid = t.relation \
                        WHERE t.pid = l.pid AND t.granted AND t.locktype = 'relation' \
                        AND t.mode = 'RowExclusiveLock' AND c.relkind IN ('r', 'p'))) END AS relation \
                   FROM l WHERE NOT l.granted) \
                 SELECT pid, locktype, relation::oid::int8, {}, mode, \
                 (extract(epoch from waitstart) * 1000)::float8 FROM w",
                    crate::pg::LOCK_NAME_SQL
                ),
            )
            .await?;
        Ok((
            database,
            Queries {
                waiting,
                details,
                ungranted,
            },
        ))
    }

    /// A fresh session in place of one that was lost, with the poll's
    /// statements prepared on it; false when the server takes none.
    async fn reconnect(&mut self, client: &mut Client, lost: &tokio_postgres::Error) -> bool {
        self.reopen(client, &crate::pg::error_text(lost)).await
    }

    /// [`WaitPoller::reconnect`], for a session lost for the reason `why`.
    async fn reopen(&mut self, client: &mut Client, why: &str) -> bool {
        let Some(fresh) = super::reconnect(&self.ctx, "the wait observer", why).await else {
            return false;
        };
        match Self::queries(&fresh).await {
            Ok((_, queries)) => {
                self.queries = queries;
                *client = fresh;
                true
            }
            Err(_) => false,
        }
    }

    /// Someone waits: a wait seen at the last poll is still open.
    fn waits_open(&self, waiting: bool) -> bool {
        waiting || !self.open.is_empty() || !self.mig_open.is_empty()
    }

    /// Ticks at full rate while a step runs or someone waits; 5× slower
    /// otherwise.
    fn busy(&self, waiting: bool) -> bool {
        self.waits_open(waiting) || self.ctx.migration.in_step.load(Ordering::Relaxed)
    }

    /// Is this tick's poll worth its cost: someone waits, or a request has
    /// been on the server long enough to be waiting for a lock?
    fn worth_polling(&self, waiting: bool) -> bool {
        self.waits_open(waiting) || self.ctx.requests.any_executing_longer_than(SUSPECT_AFTER)
    }

    pub(super) async fn run(mut self, mut client: Client) -> crate::Result<WaitPoller> {
        let own: Vec<String> = OWN_APPS.iter().map(|s| s.to_string()).collect();
        let mut poll_log = tracing::enabled!(tracing::Level::TRACE).then(PollLog::default);
        let mut next = tokio::time::Instant::now();
        let mut last_busy: Option<f64> = None;
        let mut waiting = false;
        loop {
            let busy = self.busy(waiting);
            next += if busy {
                self.ctx.poll
            } else {
                self.ctx.poll * 5
            };
            // A late poll does not make the next ones early.
            next = next.max(tokio::time::Instant::now());
            tokio::select! {
                _ = self.ctx.stop.cancelled() => break,
                _ = tokio::time::sleep_until(next) => {}
                // A step starting cuts a back-off short, and the ticks of
                // the step count from now: left on the back-off's
                // deadline, the next one would come up to 5 ticks late,
                // and a short wait at the step's start go unseen.
                _ = self.ctx.migration.step_started.notified(), if !busy => {
                    next = tokio::time::Instant::now();
                }
            }
            // Its session terminated (by a step that terminates other
            // backends) while no poll was due: a fresh one now, so the next
            // poll that matters is not the one spent finding out.
            if client.is_closed() && !self.reopen(&mut client, "connection closed").await {
                self.lost = Some("the wait observer lost the server: connection closed".into());
                break;
            }
            if !self.worth_polling(waiting) {
                self.ticks_skipped += 1;
                // The gap to the next poll is not a wait's precision.
                last_busy = None;
                if let Some(log) = &mut poll_log {
                    log.skip(self.ctx.clock.now_ms());
                }
                continue;
            }
            let t0 = self.ctx.clock.now_ms();
            let mig_pid = self.ctx.migration.pid.load(Ordering::Relaxed);
            let polled = self.poll_once(&client, &own).await;
            // A dead server (or a lost connection) ends the polling, not the
            // observations: what was seen until then is still reported.
            let (waiters, ungranted) = match polled {
                Ok(p) => p,
                // Its session terminated (by a step) while the server
                // lives: polled again on a fresh one from the next tick.
                Err(e)
                    if super::session_lost(&client, &e)
                        && self.reconnect(&mut client, &e).await =>
                {
                    continue
                }
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
            self.polls += 1;
            if self.busy(waiting) {
                if let Some(prev) = last_busy {
                    self.busy_polls += 1;
                    self.busy_gap_ms += t - prev;
                }
                last_busy = Some(t);
            } else {
                last_busy = None;
            }
            waiting = !waiters.is_empty();
            self.ctx
                .migration
                .waiting_backends
                .store(waiters.len() as u32, Ordering::Relaxed);
            self.observe(t, mig_pid, &waiters, &ungranted);
            if let Some(log) = &mut poll_log {
                log.add(t0, t1, waiters.len(), self.open.len());
            }
        }
        let end = self.ctx.clock.now_ms();
        let (over, mig_over) = (self.open.finish(end), self.mig_open.finish(end));
        self.close(over, mig_over, 0);
        Ok(self)
    }

    /// One poll: the waiting pids; their details and the ungranted locks
    /// only when there are some.
    async fn poll_once(
        &self,
        client: &Client,
        own: &[String],
    ) -> Result<(Vec<Waiter>, Vec<Ungranted>), tokio_postgres::Error> {
        let pids: Vec<i32> = client
            .query(&self.queries.waiting, &[&self.database])
            .await?
            .iter()
            .map(|r| r.get(0))
            .collect();
        if pids.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&pids, &own];
        let (details, ungranted) = tokio::join!(
            client.query(&self.queries.details, &params),
            client.query(&self.queries.ungranted, &[]),
        );
        let waiters = details?
            .iter()
            .map(|r| Waiter {
                pid: r.get(0),
                query: r.get(1),
                blockers: r.get(2),
            })
            .collect();
        let ungranted = ungranted?
            .iter()
            .map(|r| Ungranted {
                pid: r.get(0),
                locktype: r.get(1),
                oid: r.get::<_, Option<i64>>(2).map(|o| o as u32),
                relation: r.get(3),
                mode: r.get(4),
                waitstart_ms: r.get(5),
            })
            .collect();
        Ok((waiters, ungranted))
    }

    fn observe(&mut self, t: f64, mig_pid: i32, waiters: &[Waiter], ungranted: &[Ungranted]) {
        let poll = self.polls;
        // The relations the migration waits for a lock on: an app query
        // waiting on one of them may queue behind that request.
        let migration_waits_on: Vec<Option<u32>> =
            if mig_pid != 0 && waiters.iter().any(|w| w.pid == mig_pid) {
                ungranted
                    .iter()
                    .filter(|u| u.pid == mig_pid && u.locktype == "relation")
                    .map(|u| u.oid)
                    .collect()
            } else {
                Vec::new()
            };
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
                let blockers = self.migration_blockers(w, lock, waiters, ungranted, mig_pid);
                let e = self.mig_open.see(key, poll, || MigrationWait {
                    locktype: lock.locktype.clone(),
                    oid: lock.oid,
                    relation: lock.relation.clone(),
                    mode: lock.mode.clone(),
                    start_ms: start,
                    end_ms: t,
                    blockers: Vec::new(),
                });
                e.end_ms = t;
                // One entry per poll: `close` keeps those that held it up
                // for a good part of the wait.
                e.blockers.extend(blockers);
                continue;
            }
            let (query, app) = self.who(w.pid, &w.query);
            let key = (w.pid, lock.relation.clone(), lock.mode.clone(), key_start);
            let e = self.open.see(key, poll, || OpenWait {
                pid: w.pid,
                query,
                app,
                locktype: lock.locktype.clone(),
                relation: lock.relation.clone(),
                mode: lock.mode.clone(),
                start_ms: start,
                last_seen_ms: t,
                blockers: BTreeSet::new(),
                queued_behind_migration: false,
                blocked_by_migration: false,
                shared_to_ms: start,
                other_ms: 0.0,
                migration_ms: 0.0,
            });
            e.last_seen_ms = t;
            e.blockers.extend(w.blockers.iter().copied());
            let since = (t - e.shared_to_ms).max(0.0);
            e.shared_to_ms = t;
            let holder = |b: &i32| *b != mig_pid && !waiters.iter().any(|x| x.pid == *b);
            if w.blockers.iter().any(holder) {
                e.other_ms += since;
            } else if mig_pid != 0 && w.blockers.contains(&mig_pid) {
                e.migration_ms += since;
            }
            if mig_pid != 0 && w.blockers.contains(&mig_pid) {
                // pg_blocking_pids lists the migration both when it holds a
                // conflicting lock and when it merely queues ahead of us on
                // the lock we wait for. Queued: it waits for a lock on the
                // relation we wait for. A wait on another relation, or on
                // its transaction (a row it locked), is behind what it
                // holds, even while it waits for something else.
                if lock.locktype == "relation" && migration_waits_on.contains(&lock.oid) {
                    e.queued_behind_migration = true;
                } else {
                    e.blocked_by_migration = true;
                }
            }
        }
        let over = self.open.end_poll(poll, t);
        let mig_over = self.mig_open.end_poll(poll, t);
        self.close(over, mig_over, mig_pid);
    }

    /// Waits that are over, each with the time of the poll that first
    /// missed it: halfway between the last sighting and that poll is the
    /// best estimate of its end.
    fn close(
        &mut self,
        over: Vec<(OpenWait, f64)>,
        mig_over: Vec<(MigrationWait, f64)>,
        mig_pid: i32,
    ) {
        for (w, t) in over {
            if self.done.len() >= MAX_WAIT_ROWS {
                self.waits_dropped += 1;
                continue;
            }
            let end = (w.last_seen_ms + t) / 2.0;
            let cause = if w.other_ms > w.migration_ms {
                // Another session's lock held it back most of the time:
                // it would have waited without the migration (a script's
                // SHARE lock, with the migration's request queued behind).
                WaitCause::App
            } else if w.queued_behind_migration {
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
                locktype: w.locktype,
            });
        }
        for (mut w, t) in mig_over {
            w.end_ms = (w.end_ms + t) / 2.0;
            w.blockers = main_blockers(std::mem::take(&mut w.blockers));
            self.mig_done.push(w);
        }
    }

    fn is_migration_pid(&self, pid: i32) -> bool {
        pid != 0 && pid == self.ctx.migration.pid.load(Ordering::Relaxed)
    }

    /// Which query and app a waiting pid belongs to.
    /// Who holds up the migration's wait `w` for `lock` at this poll, in
    /// words (`main_blockers` keeps those seen in a good part of the wait).
    /// Those holding what it waits for; the sessions queued ahead of it on
    /// the same lock (waiting for the same holders) only when no holder is
    /// seen. A blocker waiting for another lock holds what the migration
    /// wants (an app update's tuple lock, itself waiting for a script's
    /// row): a holder, and so is whoever holds it up in turn.
    fn migration_blockers(
        &self,
        w: &Waiter,
        lock: &Ungranted,
        waiters: &[Waiter],
        ungranted: &[Ungranted],
        mig_pid: i32,
    ) -> Vec<String> {
        let queued = |b: &i32| {
            ungranted.iter().any(|u| {
                u.pid == *b
                    && u.locktype == lock.locktype
                    && u.oid == lock.oid
                    && u.relation == lock.relation
            })
        };
        if !w.blockers.iter().any(|b| !queued(b)) {
            return w
                .blockers
                .iter()
                .map(|b| format!("{} (queued ahead)", self.blocker(*b)))
                .collect();
        }
        let mut names: Vec<String> = Vec::new();
        for b in w.blockers.iter().filter(|b| !queued(b)) {
            names.push(self.blocker(*b));
            let behind = waiters.iter().find(|x| x.pid == *b);
            for root in behind.iter().flat_map(|x| x.blockers.iter()) {
                if *root != mig_pid && !waiters.iter().any(|x| x.pid == *root) {
                    names.push(self.blocker(*root));
                }
            }
        }
        names.dedup();
        names
    }

    /// Who a session holding up the migration is, in words.
    fn blocker(&self, pid: i32) -> String {
        // pg_blocking_pids says 0 for a prepared transaction (PREPARE
        // TRANSACTION): no session holds its locks any more.
        if pid == 0 {
            return "a prepared transaction".into();
        }
        match self.ctx.pids.get(pid) {
            Some(PidOwner::Script(name)) => format!("script {name}"),
            Some(PidOwner::App(app, _)) if app == "app" => "the app".into(),
            Some(PidOwner::App(app, _)) => format!("app {app}"),
            None => format!("another session (pid {pid})"),
        }
    }

    fn who(&self, pid: i32, sql: &str) -> (String, String) {
        match self.ctx.pids.get(pid) {
            Some(PidOwner::Script(name)) => (name, SCRIPT_APP.to_string()),
            Some(PidOwner::App(app, current)) => {
                // The query the connection has in flight: two queries of
                // one text are told apart by it, not by the text.
                let q = current
                    .get()
                    .and_then(|i| self.ctx.query_list.get(i))
                    .or_else(|| self.ctx.query_names.get(sql.trim()))
                    .cloned()
                    .unwrap_or_else(|| "(unknown)".into());
                (q, app)
            }
            None => ("(other session)".into(), crate::latency::OTHER_APP.into()),
        }
    }

    pub(super) fn into_observations(self) -> Observations {
        let mut waits = self.done;
        waits.sort_by(|a, b| a.start_ms.total_cmp(&b.start_ms).then(a.pid.cmp(&b.pid)));
        let mean_poll_ms = if self.busy_polls > 0 {
            self.busy_gap_ms / self.busy_polls as f64
        } else {
            self.ctx.poll.as_secs_f64() * 1e3
        };
        Observations {
            waits,
            migration_waits: self.mig_done,
            polls: self.polls,
            polls_skipped: self.ticks_skipped,
            waits_dropped: self.waits_dropped,
            connection_lost: self.lost,
            mean_poll_ms,
            ..Observations::default()
        }
    }
}

/// `-vv`: the wait polls of each second summed up in one line (200 lines a
/// second would bury everything else). Skipped ticks count too, so a quiet
/// second still gets its line.
#[derive(Default)]
struct PollLog {
    since_ms: f64,
    polls: u32,
    skipped: u32,
    busy_ms: f64,
    max_ms: f64,
    max_waiters: usize,
    open_waits: usize,
}

impl PollLog {
    fn add(&mut self, t0: f64, t1: f64, waiters: usize, open_waits: usize) {
        self.polls += 1;
        self.busy_ms += t1 - t0;
        self.max_ms = self.max_ms.max(t1 - t0);
        self.max_waiters = self.max_waiters.max(waiters);
        self.open_waits = open_waits;
        self.flush_after_a_second(t1);
    }

    fn skip(&mut self, now_ms: f64) {
        self.skipped += 1;
        self.flush_after_a_second(now_ms);
    }

    fn flush_after_a_second(&mut self, now_ms: f64) {
        if now_ms - self.since_ms < 1000.0 {
            return;
        }
        tracing::trace!(
            "observer: {} polls in {:.0} ms ({} ticks skipped: no request on the server for over {:?}; mean {:.2} ms, max {:.2} ms each), up to {} backends waiting, {} waits open",
            self.polls,
            now_ms - self.since_ms,
            self.skipped,
            SUSPECT_AFTER,
            if self.polls > 0 { self.busy_ms / f64::from(self.polls) } else { 0.0 },
            self.max_ms,
            self.max_waiters,
            self.open_waits
        );
        *self = PollLog {
            since_ms: now_ms,
            ..PollLog::default()
        };
    }
}

/// Of the sessions seen holding up a wait, one name per poll that saw it,
/// those seen in at least a quarter of the polls that saw the most-seen
/// one, most-seen first: the app's writes that ran for a moment as a
/// script's lock went are not named beside the script that held it all
/// along.
fn main_blockers(per_poll: Vec<String>) -> Vec<String> {
    let mut counts: std::collections::BTreeMap<String, usize> = Default::default();
    for b in per_poll {
        *counts.entry(b).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    let mut kept: Vec<(String, usize)> =
        counts.into_iter().filter(|(_, n)| n * 4 >= most).collect();
    kept.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    kept.into_iter().map(|(b, _)| b).collect()
}

#[cfg(test)]
mod tests {
    use super::Watch;

    #[test]
    fn a_wait_one_poll_missed_is_still_one_wait() {
        let mut watch: Watch<(i32, i64), f64> = Watch::new();
        // Polls 1 and 2 see the wait that began at 100.000 ms.
        watch.see((7, 100_000), 1, || 100.0);
        assert!(watch.end_poll(1, 101.0).is_empty());
        watch.see((7, 100_000), 2, || panic!("the same wait"));
        assert!(watch.end_poll(2, 106.0).is_empty());
        // Poll 3 misses it (the backend was awake between two sleeps)...
        assert!(watch.end_poll(3, 111.0).is_empty());
        assert!(!watch.is_empty(), "still watched");
        // ...poll 4 sees it again: the same wait, not a new one.
        watch.see((7, 100_000), 4, || panic!("the same wait, reopened"));
        assert!(watch.end_poll(4, 116.0).is_empty());
        // Missed by polls 5 and 6: over since poll 5 looked.
        assert!(watch.end_poll(5, 121.0).is_empty());
        assert_eq!(watch.end_poll(6, 126.0), vec![(100.0, 121.0)]);
        assert!(watch.is_empty());
    }

    #[test]
    fn another_waitstart_is_another_wait() {
        let mut watch: Watch<(i32, i64), f64> = Watch::new();
        watch.see((7, 100_000), 1, || 100.0);
        assert!(watch.end_poll(1, 101.0).is_empty());
        // The same backend waits anew (another waitstart) at poll 2.
        let mut made = false;
        watch.see((7, 103_000), 2, || {
            made = true;
            103.0
        });
        assert!(made);
        assert!(watch.end_poll(2, 106.0).is_empty());
        watch.see((7, 103_000), 3, || panic!("the second wait goes on"));
        assert_eq!(watch.end_poll(3, 111.0), vec![(100.0, 106.0)]);
        // Polling ends with the second one still open.
        assert_eq!(watch.finish(115.0), vec![(103.0, 115.0)]);
    }
}
