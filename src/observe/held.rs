//! The migration's own locks while a statement runs outside a transaction
//! (CREATE INDEX CONCURRENTLY, autocommit steps), where the executor cannot
//! list them itself: one prepared `pg_locks WHERE pid = $1`, polled from the
//! moment the statement is sent (the executor wakes us) until it returns:
//! back to back for its first 10 ms and for 10 ms after its locks, its
//! waits or its internal transaction changed (`back_to_back`), every
//! [`HELD_POLL`] for its first 100 ms and for 20 ms after such a change,
//! then less often the longer they stay the same, up to every
//! [`HELD_POLL_STILL`] (see `FULL_RATE_FOR`); between those polls, while
//! it waits for a lock, its wait event every [`HELD_POLL`] (`watch_wait`).
//! Idle otherwise.
//!
//! Inside a transaction (where the probe lists the locks) the same poll
//! times the migration's lock waits instead, with `waitstart`: a wait too
//! short for the 5 ms wait poller still moves the lock's grant. Its
//! sightings of held locks there only name what a statement that failed
//! held (no probe follows a failed statement; the error released them).
//!
//! Each lock is kept with the polls around its sightings: the last poll
//! before its first sighting that did not see it, and the first after its
//! last sighting that did not — a lock taken or released mid-statement is
//! then placed to half a poll interval (holds.rs). Every time is the
//! server's clock around its read of pg_locks, mapped onto the run clock:
//! this process being slow to send a poll or read its answer does not
//! shift it.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::types::Type;
use tokio_postgres::{Client, Statement};

use super::{MigrationWait, ObserverCtx};
use crate::locks::blocks_of;
use crate::record::Blocks;

/// How often an idle lock poller looks whether its session is still open
/// (no round trip: the client's own state).
const IDLE_CHECK: Duration = Duration::from_millis(20);

/// How often the migration's locks are listed while a statement runs
/// outside a transaction.
pub const HELD_POLL: Duration = Duration::from_millis(1);

/// A lock seen held by the migration while a statement ran outside a
/// transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldSighting {
    pub locktype: String,
    pub oid: Option<u32>,
    /// The name the poller saw (digits when it could not see one).
    pub relation: String,
    pub mode: String,
    /// The end of the first poll that saw it (the server's clock after its
    /// read of pg_locks): held by then.
    pub first_ms: f64,
    /// The start of the last poll that saw it: held at least until then.
    pub last_ms: f64,
    /// The start of the poll just before the first sighting, which did not
    /// see it: taken after that.
    pub missed_before_ms: Option<f64>,
    /// The end of the poll just after the last sighting, which did not see
    /// it: released by then (None: held until the statement returned).
    pub missed_after_ms: Option<f64>,
    /// When the backend began the statement it ran at the first sighting
    /// (`pg_stat_activity.query_start`, read just before pg_locks): the
    /// lock was taken no earlier. The server reads it as it takes the
    /// statement's message off the socket, so, unlike the clock read sent
    /// ahead of the statement, it is not early by however long the backend
    /// waited for a CPU in between.
    pub statement_start_ms: Option<f64>,
    /// Seen inside a transaction: the executor's probe lists these locks,
    /// unless the statement failed before it (holds.rs uses them then).
    pub in_txn: bool,
}

/// The polls of one statement the poller followed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatementPolls {
    /// The start (server clock, on the run clock) of the first and of the
    /// last read of pg_locks made while the statement ran — or of the last
    /// look that saw it still waiting for a lock. A lock the statement
    /// holds at its end that no poll listed was taken after `last_ms`.
    pub first_ms: f64,
    pub last_ms: f64,
}

/// The migration's backend, running a statement outside a transaction, was
/// in one transaction at the poll that started at `before_ms` and in
/// another by the end of the next, `after_ms` (a procedure or DO block that
/// commits, a statement's internal transactions): a transaction's locks
/// went with it in between, however briefly, even those seen on both sides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TxnChange {
    pub before_ms: f64,
    pub after_ms: f64,
}

pub(super) struct Held {
    ctx: Arc<ObserverCtx>,
    client: Client,
    query: Statement,
    /// Is the backend still waiting for a lock: its wait event, from the
    /// backend status array alone (see `watch_wait`).
    wait_event: Statement,
    pub(super) sightings: Vec<HeldSighting>,
    /// Where a statement outside a transaction moved on to another
    /// transaction (see [`TxnChange`]).
    pub(super) txn_changes: Vec<TxnChange>,
    /// Per statement followed, when its polls ran.
    pub(super) statement_polls: Vec<StatementPolls>,
    /// The migration's lock waits, seen every poll (see `follow_statement`).
    pub(super) waits: Vec<MigrationWait>,
    pub(super) polls: u64,
    pub(super) lost: Option<String>,
}

/// A lock followed from poll to poll: (locktype, relation, mode), the
/// locktype standing for a lock with no relation by its name (an advisory
/// lock's key: `advisory 42`), so that two of them are two locks.
type Key = (String, Option<u32>, String);

fn key_of(locktype: &str, oid: Option<u32>, name: &str, mode: &str) -> Key {
    let kind = match (oid, locktype) {
        (None, "advisory") => name,
        _ => locktype,
    };
    (kind.to_string(), oid, mode.to_string())
}

impl Held {
    /// Connect and start polling on a thread and runtime of its own: a
    /// busy runtime (the app's clients, the recorder) must not delay its
    /// 1 ms polls, whose gaps are its precision.
    pub(super) async fn start(
        ctx: Arc<ObserverCtx>,
    ) -> crate::Result<std::thread::JoinHandle<Option<Held>>> {
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("pgrehearse-held-locks".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready_tx.send(Err(crate::Error::from(anyhow::Error::new(e))));
                        return None;
                    }
                };
                rt.block_on(async move {
                    let held = async {
                        let client = ctx.conn.connect(super::OBSERVER_APP_NAME).await?;
                        Held::prepare(ctx, client).await
                    };
                    match held.await {
                        Ok(h) => {
                            let _ = ready_tx.send(Ok(()));
                            Some(h.run().await)
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            None
                        }
                    }
                })
            })
            .map_err(anyhow::Error::new)?;
        match ready_rx.await {
            Ok(Ok(())) => Ok(thread),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(anyhow::anyhow!("the migration's lock poller did not start").into()),
        }
    }

    async fn prepare(ctx: Arc<ObserverCtx>, client: Client) -> crate::Result<Held> {
        let (query, wait_event) = Self::statements(&client).await?;
        Ok(Held {
            ctx,
            client,
            query,
            wait_event,
            sightings: Vec::new(),
            txn_changes: Vec::new(),
            statement_polls: Vec::new(),
            waits: Vec::new(),
            polls: 0,
            lost: None,
        })
    }

    /// The poll's statements, prepared on `client`: its read of pg_locks and
    /// of the backend's wait event.
    async fn statements(client: &Client) -> Result<(Statement, Statement), tokio_postgres::Error> {
        // The server's clock around the read of pg_locks: a sighting's time
        // is the server's, free of this process's delays. Before pg_locks
        // (the columns are computed in order), when the backend began the
        // statement it runs, when `$2`: a lock seen held was taken no
        // earlier (see `HeldSighting::statement_start_ms`). One read of
        // pg_locks for both the relation locks held and those waited for:
        // each read snapshots the whole lock table, the bulk of a poll's
        // cost on the server. With them the backend's own virtual
        // transaction: a statement outside a transaction that moves on to
        // its next internal transaction (CONCURRENTLY's phases) is about to
        // take that transaction's locks.
        let query = client
            .prepare_typed(
                &format!(
                    "SELECT (extract(epoch from clock_timestamp()) * 1000)::float8, \
                 CASE WHEN $2 THEN (SELECT (extract(epoch from query_start) * 1000)::float8 \
                    FROM pg_stat_get_activity($1)) END, \
                 ARRAY(SELECT CASE WHEN locktype = 'virtualxid' AND granted \
                    THEN 'vxid|' || virtualxid \
                    ELSE CASE WHEN granted THEN 'held' ELSE 'wait' END || '|' \
                    || locktype || '|' || coalesce(relation::oid::text, '') || '|' \
                    || {} || '|' || mode || '|' \
                    || coalesce((extract(epoch from waitstart) * 1000)::float8::text, '') END \
                    FROM pg_locks WHERE pid = $1 \
                    AND (NOT granted OR locktype IN ('relation', 'transactionid', 'advisory') \
                    OR (locktype = 'virtualxid' AND virtualxid = virtualtransaction))), \
                 (extract(epoch from clock_timestamp()) * 1000)::float8",
                    crate::pg::LOCK_NAME_SQL
                ),
                &[Type::INT4, Type::BOOL],
            )
            .await?;
        let wait_event = client
            .prepare_typed(
                "SELECT (extract(epoch from clock_timestamp()) * 1000)::float8, wait_event_type \
                 FROM pg_stat_get_activity($1)",
                &[Type::INT4],
            )
            .await?;
        Ok((query, wait_event))
    }

    /// A fresh session in place of one that was lost (a step terminated
    /// it), with the statements prepared on it; false when the server takes
    /// none. The statement it was following has no more polls: its locks
    /// come from its probe, or are unknown as when a poll misses them.
    async fn reconnect(&mut self, lost: &tokio_postgres::Error) -> bool {
        super::session_lost(&self.client, lost)
            && self.replace_session(&crate::pg::error_text(lost)).await
    }

    /// [`Held::reconnect`], for a session lost for the reason `why`.
    async fn replace_session(&mut self, why: &str) -> bool {
        let Some(fresh) = super::reconnect(&self.ctx, "the migration's lock poller", why).await
        else {
            return false;
        };
        match Self::statements(&fresh).await {
            Ok((query, wait_event)) => {
                (self.client, self.query, self.wait_event) = (fresh, query, wait_event);
                true
            }
            Err(_) => false,
        }
    }

    pub(super) async fn run(mut self) -> Held {
        loop {
            tokio::select! {
                _ = self.ctx.stop.cancelled() => break,
                _ = self.ctx.migration.statement_sent.notified() => {}
                // Idle, its session terminated (by a step that terminates
                // other backends): a fresh one at once, not when the next
                // statement is sent — that statement's first polls, where
                // a short one takes its locks, would go to the reconnect.
                _ = tokio::time::sleep(IDLE_CHECK), if !self.client.is_closed() => continue,
                _ = std::future::ready(()), if self.client.is_closed() => {
                    if self.replace_session("connection closed").await {
                        continue;
                    }
                    self.lost = Some(
                        "the migration's lock poller lost the server: connection closed".into(),
                    );
                    break;
                }
            }
            // A session lost mid-statement (the statement itself may be
            // what terminated it) follows the rest of the statement on a
            // fresh one, if it still runs; a few times at most.
            let mut followed = self.follow_statement().await;
            for _ in 0..3 {
                match &followed {
                    Err(e) if self.reconnect(e).await => {
                        followed = self.follow_statement().await;
                    }
                    _ => break,
                }
            }
            if let Err(e) = followed {
                self.lost = Some(format!(
                    "the migration's lock poller lost the server: {}",
                    crate::pg::error_text(&e)
                ));
                break;
            }
        }
        self
    }

    /// Poll while the statement that was just sent runs.
    async fn follow_statement(&mut self) -> Result<(), tokio_postgres::Error> {
        let mig = self.ctx.migration.clone();
        let pid = mig.pid.load(Ordering::Relaxed);
        // The statement followed: the next one may be sent before a poll
        // notices this one ended.
        let seq = mig.statement_seq.load(Ordering::Relaxed);
        // Inside a transaction the probe lists what the statement took; the
        // poll times its waits (a wait too short for the wait poller still
        // moves the grant) and names what it held in case it fails, at full
        // rate for the statement's first [`FULL_RATE_FOR`] (where a
        // statement takes its locks), slower after.
        let in_txn = !mig.autocommit.load(Ordering::Relaxed);
        mig.armed_seq.store(seq, Ordering::Relaxed);
        mig.poller_armed.notify_one();
        let mut open: HashMap<Key, HeldSighting> = HashMap::new();
        let mut waiting: HashMap<Key, FollowedWait> = HashMap::new();
        let mut previous: Option<f64> = None;
        let mut previous_start: Option<f64> = None;
        let mut previous_vxid: Option<String> = None;
        let mut seen_any = false;
        let mut polled: Option<StatementPolls> = None;
        let mut pace = Pace::new(in_txn);
        loop {
            let polled_at = tokio::time::Instant::now();
            let running = mig.in_statement.load(Ordering::Relaxed)
                && mig.statement_seq.load(Ordering::Relaxed) == seq;
            // When the backend began the statement: read until a lock of
            // it is seen (each read snapshots every backend's status), and
            // only in its first [`FULL_RATE_FOR`]: a lock first seen later
            // was taken after the poll before, which bounds it as well.
            // (A statement that takes no relation lock would otherwise pay
            // for the read on every poll: 2 points of the app's throughput
            // in `cargo bench --bench observer`.)
            let want_start = !in_txn && !seen_any && pace.started.elapsed() <= FULL_RATE_FOR;
            let (t0, t1, statement_start, rows) = self.poll(pid, want_start).await?;
            let t = (t0 + t1) / 2.0;
            let kind = |k: &'static str| {
                rows.iter()
                    .filter_map(move |r| r.strip_prefix(k)?.strip_prefix('|'))
            };
            // The poll after the statement returned only closes what it
            // saw: the locks of the statement sent next, or of the probe
            // behind this one, can already be in it. So does a poll the
            // next statement was sent during (inside a transaction nothing
            // waits for this poller before sending): its read of pg_locks
            // may have come after that send.
            let next_sent = mig.statement_seq.load(Ordering::Relaxed) != seq;
            let may_open = running && !next_sent;
            if may_open {
                let p = polled.get_or_insert(StatementPolls {
                    first_ms: t0,
                    last_ms: t0,
                });
                p.last_ms = t0;
            }
            let waits: Vec<&str> = kind("wait").collect();
            let waited = waiting.len();
            self.follow_waits(&mut waiting, &waits, t, previous, may_open);
            let poll = HeldPoll {
                t0,
                t1,
                previous_start,
                statement_start,
                may_open,
                in_txn,
            };
            let (seen, held_changed) = poll.follow(&mut open, kind("held"), &mut self.sightings);
            seen_any |= seen;
            // Another internal transaction of the statement (DROP INDEX
            // CONCURRENTLY's third, which takes the index in ACCESS
            // EXCLUSIVE for a millisecond or two before it returns).
            let vxid = kind("vxid").next().map(str::to_string);
            let moved_on =
                !in_txn && vxid.is_some() && previous_vxid.is_some() && vxid != previous_vxid;
            if moved_on {
                if let Some(before_ms) = previous_start {
                    self.txn_changes.push(TxnChange {
                        before_ms,
                        after_ms: t1,
                    });
                }
            }
            if vxid.is_some() {
                previous_vxid = vxid;
            }
            let changed =
                held_changed || moved_on || waiting.len() != waited || waits.len() != waited;
            previous = Some(t);
            previous_start = Some(t0);
            if !running || self.ctx.stop.is_cancelled() {
                break;
            }
            // Holding or waiting for a lock the app queues behind: when it
            // is released (inside a transaction: in the COMMIT, which the
            // poll follows), and when the statement takes more of them
            // (ALTER COLUMN TYPE's index locks at its end), is what the app
            // feels.
            let blocks = |k: &Key| blocks_of(&k.0, &k.2) != Blocks::None;
            let blocking = waiting.keys().any(blocks) || open.keys().any(blocks);
            let interval = pace.after(polled_at, changed, !waiting.is_empty(), blocking);
            // A late poll does not make the next one early.
            let next = polled_at + interval;
            // Not through the timer, whose wheel turns in whole
            // milliseconds: a sleep until now can last one.
            if interval.is_zero() {
                continue;
            }
            if waiting.is_empty() || interval <= HELD_POLL {
                tokio::time::sleep_until(next).await;
                continue;
            }
            let still = self
                .watch_wait(pid, next, || {
                    mig.in_statement.load(Ordering::Relaxed)
                        && mig.statement_seq.load(Ordering::Relaxed) == seq
                })
                .await?;
            // A backend waiting for a lock does nothing else: what it held
            // and waited for at the last poll, it still did then.
            if let Some(at) = still {
                for h in open.values_mut() {
                    h.last_ms = h.last_ms.max(at);
                }
                for w in waiting.values_mut() {
                    w.wait.end_ms = w.wait.end_ms.max(at);
                }
                previous = Some(at);
                previous_start = Some(at);
                if let Some(p) = polled.as_mut() {
                    p.last_ms = p.last_ms.max(at);
                }
            }
        }
        self.statement_polls.extend(polled);
        // Still held when the statement returned.
        self.sightings.extend(open.into_values());
        self.waits.extend(waiting.into_values().map(|w| w.wait));
        Ok(())
    }
}

impl Held {
    /// One read of the migration backend's locks: the server's clock
    /// around it on the run clock (its read of pg_locks lies between them;
    /// a poll the server was descheduled in is long, and its midpoint can
    /// be on either side of a change it missed or saw), the backend's
    /// `query_start` when `want_start`, and the rows.
    async fn poll(
        &mut self,
        pid: i32,
        want_start: bool,
    ) -> Result<(f64, f64, Option<f64>, Vec<String>), tokio_postgres::Error> {
        let row = self
            .client
            .query_one(&self.query, &[&pid, &want_start])
            .await?;
        self.polls += 1;
        let clock = &self.ctx.server_clock;
        Ok((
            clock.to_run_ms(row.get(0)),
            clock.to_run_ms(row.get(3)),
            row.get::<_, Option<f64>>(1).map(|ms| clock.to_run_ms(ms)),
            row.get(2),
        ))
    }
}

/// When the next poll of one statement goes out.
struct Pace {
    in_txn: bool,
    started: tokio::time::Instant,
    /// The last poll whose locks, waits or internal transaction changed
    /// (the statement's start at first).
    changed_at: tokio::time::Instant,
    /// How long the poll has run back to back (see `EAGER_BUDGET`), and
    /// since when it does so now.
    eager_spent: Duration,
    eager_since: Option<tokio::time::Instant>,
}

impl Pace {
    fn new(in_txn: bool) -> Pace {
        let started = tokio::time::Instant::now();
        Pace {
            in_txn,
            started,
            changed_at: started,
            eager_spent: Duration::ZERO,
            eager_since: None,
        }
    }

    /// How long after the poll sent at `polled_at` the next one goes: what
    /// that poll found (`changed`, the statement `waiting` for a lock, a
    /// lock it holds or waits for `blocking` the app) decides.
    ///
    /// Outside a transaction, back to back for EAGER_FOR after the
    /// statement began and after its locks, its waits or its internal
    /// transaction changed: what comes right after such a change can be
    /// over in a millisecond (a DROP INDEX CONCURRENTLY of a small index is
    /// over in 2 ms; the ACCESS EXCLUSIVE it, REINDEX and DETACH
    /// CONCURRENTLY take at their end, once their last wait is over, lasts
    /// 0.2–3 ms), shorter than a 1 ms interval plus a poll. Otherwise
    /// `poll_interval`.
    fn after(
        &mut self,
        polled_at: tokio::time::Instant,
        changed: bool,
        waiting: bool,
        blocking: bool,
    ) -> Duration {
        if changed {
            self.changed_at = polled_at;
        }
        if let Some(since) = self.eager_since.take() {
            self.eager_spent += since.elapsed();
        }
        let (into, still) = (self.started.elapsed(), self.changed_at.elapsed());
        if !self.in_txn && back_to_back(still, into, self.eager_spent) {
            self.eager_since = Some(tokio::time::Instant::now());
            Duration::ZERO
        } else {
            poll_interval(into, self.in_txn, waiting, blocking, still)
        }
    }
}

/// One poll's reading of the held locks, and what it can say of them.
struct HeldPoll {
    /// The server's clock around its read of pg_locks.
    t0: f64,
    t1: f64,
    /// The start of the poll before (it did not see a lock first seen now).
    previous_start: Option<f64>,
    /// The backend's `query_start`, when read.
    statement_start: Option<f64>,
    /// Whether a lock first seen now is the statement's (see `next_sent`).
    may_open: bool,
    in_txn: bool,
}

impl HeldPoll {
    /// Follow the open sightings with this poll's held locks (`held`, the
    /// rows without their kind): extend those still seen, open new ones
    /// (when it may), and close into `closed` those no longer seen.
    /// Returns (a lock of the statement was seen, the locks changed in a
    /// way that should speed the polls up).
    fn follow<'a>(
        &self,
        open: &mut HashMap<Key, HeldSighting>,
        held: impl Iterator<Item = &'a str>,
        closed: &mut Vec<HeldSighting>,
    ) -> (bool, bool) {
        let (mut seen_any, mut changed) = (false, false);
        let mut seen: Vec<Key> = Vec::new();
        for l in held {
            // A held lock has no waitstart: drop its empty last field.
            let Some((locktype, oid, name, mode)) =
                l.rsplit_once('|').and_then(|(head, _)| split_lock(head))
            else {
                continue;
            };
            let key = key_of(locktype, oid, name, mode);
            if !self.may_open && !open.contains_key(&key) {
                continue;
            }
            seen_any = true;
            // Inside a transaction the probe times the holds; a sighting
            // only names what a statement that fails (no probe) held, and
            // does not speed the polls up.
            changed |= !self.in_txn && !open.contains_key(&key);
            let e = open.entry(key.clone()).or_insert_with(|| HeldSighting {
                locktype: locktype.to_string(),
                oid: key.1,
                relation: name.to_string(),
                mode: key.2.clone(),
                first_ms: self.t1,
                last_ms: self.t0,
                missed_before_ms: self.previous_start,
                missed_after_ms: None,
                statement_start_ms: self.statement_start,
                in_txn: self.in_txn,
            });
            e.last_ms = self.t0;
            // A name seen once the relation became visible is better than
            // its oid.
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                e.relation = name.to_string();
            }
            seen.push(key);
        }
        let gone: Vec<Key> = open.keys().filter(|k| !seen.contains(k)).cloned().collect();
        for k in gone {
            let mut s = open.remove(&k).expect("present");
            s.missed_after_ms = Some(self.t1);
            closed.push(s);
            changed = true;
        }
        (seen_any, changed)
    }
}

impl Held {
    /// Between two polls of pg_locks while the migration waits for a lock:
    /// look every [`HELD_POLL`] whether it still waits, and return (for the
    /// next poll, at once) as soon as it does not, or its statement ended,
    /// with the server's clock at the last look that saw it waiting.
    /// The end of a wait for another transaction is when CONCURRENTLY goes
    /// on, and after its last such wait lets go of its table: read from
    /// the backend status array, which takes no lock-manager lock, at about
    /// half a pg_locks read's cost (`pgbench -f` of each: 28–36 against
    /// 49–56 µs), the wait's end is seen within a millisecond, not a
    /// backed-off interval (±8 ms).
    async fn watch_wait(
        &self,
        pid: i32,
        until: tokio::time::Instant,
        running: impl Fn() -> bool,
    ) -> Result<Option<f64>, tokio_postgres::Error> {
        let mut still = None;
        loop {
            let next = tokio::time::Instant::now() + HELD_POLL;
            if next >= until {
                tokio::time::sleep_until(until).await;
                return Ok(still);
            }
            tokio::time::sleep_until(next).await;
            if !running() || self.ctx.stop.is_cancelled() {
                return Ok(still);
            }
            // The clock is read before the status: waiting at least until then.
            let Some(row) = self.client.query_opt(&self.wait_event, &[&pid]).await? else {
                return Ok(still);
            };
            if row.get::<_, Option<&str>>(1) != Some("Lock") {
                return Ok(still);
            }
            still = Some(self.ctx.server_clock.to_run_ms(row.get(0)));
        }
    }

    /// Open (when `may_open`), extend and close the migration's waits from
    /// one poll's ungranted locks (`locktype|oid|name|mode|waitstart_ms`) at
    /// `t`; a wait ends halfway between its last sighting and the poll
    /// without it.
    fn follow_waits(
        &mut self,
        waiting: &mut HashMap<Key, FollowedWait>,
        rows: &[&str],
        t: f64,
        previous: Option<f64>,
        may_open: bool,
    ) {
        let mut seen: Vec<Key> = Vec::new();
        let mut over: Vec<MigrationWait> = Vec::new();
        for l in rows {
            let Some((head, start)) = l.rsplit_once('|') else {
                continue;
            };
            let Some((locktype, oid, name, mode)) = split_lock(head) else {
                continue;
            };
            let key = key_of(locktype, oid, name, mode);
            let waitstart = start
                .parse::<f64>()
                .ok()
                .map(|ms| self.ctx.server_clock.to_run_ms(ms));
            // Another waitstart for the same lock is another wait (a retry
            // after a lock timeout waits anew): the one followed is over,
            // by the time the new one began at the latest.
            if let Some(new_start) = waitstart {
                if waiting
                    .get(&key)
                    .and_then(|w| w.waitstart)
                    .is_some_and(|s| (s - new_start).abs() >= 0.001)
                {
                    let mut w = waiting.remove(&key).expect("present").wait;
                    w.end_ms = w.end_ms.min(new_start);
                    over.push(w);
                }
            }
            if !may_open && !waiting.contains_key(&key) {
                continue;
            }
            let start_ms = waitstart.unwrap_or_else(|| previous.map_or(t, |p| (p + t) / 2.0));
            let w = waiting.entry(key.clone()).or_insert_with(|| FollowedWait {
                wait: MigrationWait {
                    locktype: locktype.to_string(),
                    oid,
                    relation: name.to_string(),
                    mode: mode.to_string(),
                    start_ms,
                    end_ms: t,
                    blockers: Vec::new(),
                },
                waitstart,
            });
            // First seen before the server had dated it (its waitstart is
            // set as it goes to sleep): the server's date is the better one.
            if w.waitstart.is_none() && waitstart.is_some() {
                w.waitstart = waitstart;
                w.wait.start_ms = start_ms;
            }
            w.wait.end_ms = t;
            seen.push(key);
        }
        let gone: Vec<Key> = waiting
            .keys()
            .filter(|k| !seen.contains(k))
            .cloned()
            .collect();
        // A backend waits for one lock at a time: one that began after
        // this one (CONCURRENTLY waits for older transactions one after
        // the other) began once this one was over.
        let next_start = waiting
            .iter()
            .filter(|(k, _)| !gone.contains(k))
            .map(|(_, w)| w.wait.start_ms)
            .fold(f64::INFINITY, f64::min);
        for k in gone {
            let mut w = waiting.remove(&k).expect("present").wait;
            let end = (w.end_ms + t) / 2.0;
            w.end_ms = if next_start > w.start_ms {
                end.min(next_start)
            } else {
                end
            };
            self.waits.push(w);
        }
        self.waits.extend(over);
    }
}

/// A wait of the migration being followed, with the server's date for it
/// (`pg_locks.waitstart`) once known: it tells one wait from the next on
/// the same lock.
struct FollowedWait {
    wait: MigrationWait,
    waitstart: Option<f64>,
}

/// Whether the next poll of a statement outside a transaction follows at
/// once: for [`EAGER_FOR`] after its locks, waits or internal transaction
/// last changed (`since_change`; its start counts), unless the poll has
/// already run back to back (`spent`) for more than [`EAGER_BUDGET`] plus
/// an [`EAGER_SHARE`]th of the statement's time so far.
fn back_to_back(since_change: Duration, into_statement: Duration, spent: Duration) -> bool {
    since_change < EAGER_FOR && spent < EAGER_BUDGET + into_statement / EAGER_SHARE
}

/// How long until the next poll, `into_statement` into a statement whose
/// locks and waits have stayed the same for `still`: every [`HELD_POLL`]
/// for the statement's first [`FULL_RATE_FOR`] (where a statement takes
/// its locks, and the whole of a short one), and for
/// [`FULL_RATE_AFTER_CHANGE`] after they changed; then at an interval of
/// an eighth of how long they have stayed the same ([`STILL_SHARE`]: 4 ms
/// after 32 ms of stillness), up to [`HELD_POLL_STILL`] (from 128 ms of
/// stillness on). Inside a transaction (the probe lists its locks: the
/// poll times its waits, and names what a statement that fails held) the
/// same, but every [`WAIT_WATCH_WAITING`] while it waits. Except while it
/// holds or waits for, in a transaction or not, a lock that blocks app
/// reads or writes (`blocking`: a VACUUM FULL, a REINDEX, an ALTER queued
/// behind a long read, an ALTER COLUMN TYPE through its COMMIT): every
/// [`HELD_POLL`], however still, since the end of that hold or wait is what
/// the queued app feels, and its queries on that table are not running to
/// pay for the reads.
///
/// Why back off: each poll reads pg_locks, which snapshots the whole lock
/// table under every lock partition's lock and visits every backend's
/// fast-path locks — on a 2-core machine, polling it every millisecond
/// through a long CREATE INDEX CONCURRENTLY cost the app about a fifth of
/// its throughput (`cargo bench --bench observer`, mode `statement`), and
/// the cost of each read grows with the app's own rate. CONCURRENTLY
/// changes its locks in bursts (the new index's, between its phases): a
/// change brings the full rate back. A change after a stretch of
/// stillness is placed to within a sixteenth of that stretch (±8 ms at
/// most): the longer the locks stayed the same, the less likely they are
/// to change at any given moment, so the polls go where changes are. (A
/// fixed 4 ms for the first second cost about as many reads in that second
/// as the next 4 s at 16 ms.) Inside a transaction the poll used to stay
/// at 10 ms: a long UPDATE cost the app 2.2 % of its throughput against
/// 0.8 % for a long CREATE INDEX CONCURRENTLY polled this way (`cargo
/// bench --bench observer`, 4 s slices, modes `transaction` and
/// `statement`), and the start of a wait is the server's `waitstart`
/// whatever the interval. The statement's own bounds (its `query_start`,
/// the probe after it) do not depend on the interval.
fn poll_interval(
    into_statement: Duration,
    in_txn: bool,
    waiting: bool,
    blocking: bool,
    still: Duration,
) -> Duration {
    if into_statement <= FULL_RATE_FOR || blocking {
        HELD_POLL
    } else if in_txn && waiting {
        WAIT_WATCH_WAITING
    } else if still <= FULL_RATE_AFTER_CHANGE {
        HELD_POLL
    } else {
        (still / STILL_SHARE).clamp(HELD_POLL, HELD_POLL_STILL)
    }
}

const FULL_RATE_FOR: Duration = Duration::from_millis(100);
/// How long the poll runs back to back into a statement outside a
/// transaction, and after its locks, waits or internal transaction changed.
const EAGER_FOR: Duration = Duration::from_millis(10);
/// Back to back, the poll reads pg_locks some 7 000 times a second (a
/// poll every ~0.13 ms on a 2-core machine under load), busy on both this
/// process's side and its backend's: a statement has this much of it (a
/// short DROP INDEX CONCURRENTLY wants three bursts: its start and its next
/// two transactions), and beyond it an [`EAGER_SHARE`]th of its time (a
/// procedure that commits every few milliseconds changes its transaction
/// all along).
const EAGER_BUDGET: Duration = Duration::from_millis(30);
const EAGER_SHARE: u32 = 16;
const FULL_RATE_AFTER_CHANGE: Duration = Duration::from_millis(20);
/// The held-lock poll's interval is how long its locks have stayed the
/// same, divided by this.
const STILL_SHARE: u32 = 8;
/// The held-lock poll's longest interval, once a statement's locks have
/// stayed the same for 128 ms (under the 20 ms a lock must last for the
/// test witness to insist on seeing it: tests/holds.rs).
pub const HELD_POLL_STILL: Duration = Duration::from_millis(16);
/// Inside a transaction while the migration waits for a lock: the wait
/// poller's rate in a step, which no longer reads the server unless an app
/// request is old enough to be waiting (waits.rs), so the end of a wait
/// nobody queues behind is this poll's to time.
const WAIT_WATCH_WAITING: Duration = Duration::from_millis(5);

/// `relation|16385|orders|ShareLock` → its parts (the name may hold `|`).
fn split_lock(l: &str) -> Option<(&str, Option<u32>, &str, &str)> {
    let (head, mode) = l.rsplit_once('|')?;
    let mut it = head.splitn(3, '|');
    Some((it.next()?, it.next()?.parse().ok(), it.next()?, mode))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_change_the_poll_runs_back_to_back_for_a_while() {
        let ms = Duration::from_millis;
        // The statement's start, and a change late in it (another internal
        // transaction: the final one of DROP INDEX CONCURRENTLY).
        assert!(back_to_back(ms(0), ms(0), ms(0)));
        assert!(back_to_back(ms(3), ms(2_000), ms(40)));
        // Not 10 ms after the change.
        assert!(!back_to_back(ms(10), ms(2_000), ms(40)));
        // A short statement's three bursts.
        assert!(back_to_back(ms(1), ms(25), ms(29)));
        // Not past 30 ms and a sixteenth of the statement: a procedure
        // that commits every few milliseconds.
        assert!(!back_to_back(ms(1), ms(1_600), ms(131)));
        assert!(back_to_back(ms(1), ms(1_600), ms(129)));
    }

    #[test]
    fn the_poll_slows_as_the_locks_stay_the_same() {
        let ms = Duration::from_millis;
        // A statement's first 100 ms, inside a transaction or not: 1 ms.
        assert_eq!(poll_interval(ms(50), false, false, false, ms(900)), ms(1));
        assert_eq!(poll_interval(ms(50), true, false, false, ms(900)), ms(1));
        // Inside a transaction after that: 5 ms while it waits, else as
        // outside one.
        assert_eq!(poll_interval(ms(500), true, true, false, ms(0)), ms(5));
        assert_eq!(poll_interval(ms(500), true, false, false, ms(15)), ms(1));
        assert_eq!(poll_interval(ms(500), true, false, false, ms(400)), ms(16));
        // Outside one: 1 ms for 20 ms after a change, then an eighth of
        // the stillness, up to 16 ms.
        assert_eq!(poll_interval(ms(500), false, false, false, ms(15)), ms(1));
        assert_eq!(poll_interval(ms(500), false, false, false, ms(32)), ms(4));
        assert_eq!(poll_interval(ms(500), false, false, false, ms(64)), ms(8));
        assert_eq!(poll_interval(ms(500), false, false, false, ms(128)), ms(16));
        assert_eq!(
            poll_interval(ms(60_000), false, false, false, ms(50_000)),
            ms(16)
        );
        // Holding a lock the app queues behind, outside a transaction, or
        // waiting for one anywhere: every millisecond, however still.
        assert_eq!(
            poll_interval(ms(60_000), false, false, true, ms(50_000)),
            ms(1)
        );
        assert_eq!(poll_interval(ms(500), true, true, true, ms(400)), ms(1));
    }
}
