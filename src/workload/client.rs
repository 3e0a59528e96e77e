//! One app connection: it takes a request (from its app's open-loop queue,
//! or the next of its own closed loop), sends it with freshly generated
//! parameters, and hands the timing to the recorder.
//!
//! This is the hot path of the load driver, so per request it allocates
//! nothing of its own and touches nothing another thread writes: parameters
//! go into a reused buffer, the prepared statement is looked up by index,
//! the result is read by `execute` (row count only, no row objects), the
//! stop is an atomic flag, the hard stop is the thread's business (see
//! `driver`), and the recorder takes finished requests from the
//! connection's own buffer (see `latency::client`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::watch;
use tokio_postgres::CancelToken;
use tokio_util::sync::CancellationToken;

use super::open_loop::{Claim, Schedule};
use super::timer::Timer;
use super::wire::WireSession;
use super::{
    pick_weighted, query_mix, CurrentQuery, PidOwner, PidRegistry, QueryMix, WorkloadCtx,
    APP_NAME_PREFIX, RECONNECT_BACKOFF_MAX,
};
use crate::backend::ConnInfo;
use crate::latency::{ClientLog, Registry};
use crate::scenario::gen::{Sampler, Value};
use crate::scenario::{ColumnGen, Gen, QueryPlan, WorkloadPlan};

/// What every connection of the workload shares.
pub(super) struct Shared {
    conn: ConnInfo,
    plan: WorkloadPlan,
    /// Parameter samplers per query, built once (a zipf table is not free).
    samplers: Vec<Vec<Sampler>>,
    /// Per query, per parameter: the parameter whose row number it takes.
    /// Parameters that copy columns of one parent row (`fk` with `column`)
    /// share one, so they name the same row; the others draw their own.
    /// None for a query where none share (the usual case: no bookkeeping
    /// on its requests).
    row_of: Vec<Option<Vec<usize>>>,
    live: watch::Receiver<Arc<Vec<u16>>>,
    pub stop: CancellationToken,
    /// `stop` was cancelled: an atomic load per request, where the token
    /// would take a lock every connection shares.
    stopping: AtomicBool,
    pub abort: CancellationToken,
    recording: Registry,
    pids: PidRegistry,
}

impl Shared {
    pub fn new(ctx: &WorkloadCtx) -> Shared {
        Shared {
            conn: ctx.conn.clone(),
            plan: ctx.plan.clone(),
            samplers: ctx
                .plan
                .queries
                .iter()
                .map(|q| {
                    q.params
                        .iter()
                        .map(|g| g.sampler().seeded(ctx.seed))
                        .collect()
                })
                .collect(),
            row_of: ctx
                .plan
                .queries
                .iter()
                .map(|q| shared_rows(&q.params))
                .collect(),
            live: ctx.live.clone(),
            stop: ctx.stop.clone(),
            stopping: AtomicBool::new(false),
            abort: ctx.abort.clone(),
            recording: ctx.recording.clone(),
            pids: ctx.pids.clone(),
        }
    }

    /// Wait for `stop` (or `abort`) and say so to every connection (see
    /// `stopping`).
    pub async fn watch_stop(self: Arc<Self>) {
        tokio::select! {
            _ = self.stop.cancelled() => {}
            _ = self.abort.cancelled() => {}
        }
        self.stopping.store(true, Ordering::Relaxed);
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Relaxed)
    }

    /// Cancel on the server what a connection is running; best effort.
    pub async fn cancel(&self, slot: &CancelSlot) {
        let token = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        self.conn.cancel_wire(&token).await;
    }

    fn query(&self, qi: u16) -> &QueryPlan {
        &self.plan.queries[qi as usize]
    }
}

/// One connection to open: its app, its random stream, and in open loop
/// the app's schedule it takes requests from.
pub(super) struct ClientSpec {
    pub app: u16,
    pub app_name: String,
    pub seed: u64,
    pub schedule: Option<Arc<Schedule>>,
}

/// One app connection, speaking the wire protocol itself (see `wire`).
struct AppSession {
    wire: WireSession,
    cancel: CancelToken,
}

impl AppSession {
    /// `current`: the connection's query slot, which its new backend pid
    /// is registered with.
    async fn connect(
        shared: &Shared,
        app: &str,
        current: &CurrentQuery,
    ) -> crate::Result<AppSession> {
        let mut cfg = shared.conn.config();
        cfg.application_name(format!("{APP_NAME_PREFIX}{app}"));
        if let Some(t) = shared.plan.query_timeout {
            cfg.options(format!("-c statement_timeout={}", t.as_millis()));
        }
        let (stream, cancel) = shared
            .conn
            .open_wire(&cfg)
            .await
            .map_err(|e| anyhow::anyhow!("app {app}: {e}"))?;
        // Statements are prepared on first use, not here: an app version
        // may name columns that only exist once an earlier phase ran (the
        // expand/contract pattern), exactly as a real deploy would.
        let mut wire = WireSession::new(stream, shared.plan.queries.len());
        let pid = wire
            .backend_pid()
            .await
            .map_err(|f| anyhow::anyhow!("app {app}: {}", f.error.message))?;
        shared
            .pids
            .insert(pid, PidOwner::App(app.to_string(), current.clone()));
        Ok(AppSession { wire, cancel })
    }
}

/// A connection's cancel key, for the hard stop (it changes when the
/// connection is opened again).
pub(super) type CancelSlot = Arc<Mutex<CancelToken>>;

/// A connection as the hard stop sees it: its request in flight (`log`,
/// and `current`, its query), the key that cancels it on the server, and
/// its app's schedule and query mix (for the requests due that nobody
/// sent).
pub(super) struct Stopper {
    pub log: Arc<ClientLog>,
    /// The query it sends now (or last), as the wait observer reads it.
    pub current: CurrentQuery,
    pub cancel: CancelSlot,
    pub schedule: Option<Arc<Schedule>>,
    pub mix: QueryMix,
    /// Its session is gone and it is connecting again (the server died or
    /// dropped it).
    pub lost: Arc<AtomicBool>,
}

pub(super) struct ClientTask {
    shared: Arc<Shared>,
    app: u16,
    app_name: String,
    session: AppSession,
    /// The query this connection sends now, for the wait observer.
    current: CurrentQuery,
    cancel: CancelSlot,
    log: Arc<ClientLog>,
    rng: ChaCha8Rng,
    /// Reused for every request's parameters.
    params: Vec<Value>,
    /// The row numbers `params` were drawn for.
    rows: Vec<u64>,
    mix: QueryMix,
    schedule: Option<Arc<Schedule>>,
    /// Open loop: its thread's timer, for requests not yet due.
    timer: Option<Timer>,
    /// Set while it connects again (see [`Stopper::lost`]).
    lost: Arc<AtomicBool>,
}

impl ClientTask {
    /// Connect; the recorder learns of the connection once it is up.
    pub async fn connect(
        spec: ClientSpec,
        shared: Arc<Shared>,
        timer: Option<Timer>,
    ) -> crate::Result<ClientTask> {
        let current = CurrentQuery::new();
        let session = AppSession::connect(&shared, &spec.app_name, &current).await?;
        Ok(ClientTask {
            current,
            log: shared.recording.client(spec.app, true),
            mix: query_mix(&shared.plan, &spec.app_name),
            app: spec.app,
            app_name: spec.app_name,
            cancel: Arc::new(Mutex::new(session.cancel.clone())),
            session,
            rng: ChaCha8Rng::seed_from_u64(spec.seed),
            params: Vec::new(),
            rows: Vec::new(),
            schedule: spec.schedule,
            timer,
            shared,
            lost: Arc::default(),
        })
    }

    /// What the hard stop needs of this connection once its task is gone.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            log: self.log.clone(),
            current: self.current.clone(),
            cancel: self.cancel.clone(),
            schedule: self.schedule.clone(),
            mix: self.mix.clone(),
            lost: self.lost.clone(),
        }
    }

    /// Send requests until stopped. The hard stop (`abort`) is not watched
    /// here but by the connection's thread (`driver`), which cancels the
    /// in-flight queries on the server and drops the connections: a request
    /// awaits only its result, no other future.
    pub async fn run(mut self) {
        match self.schedule.clone() {
            Some(schedule) => self.open_loop(&schedule).await,
            None => self.closed_loop().await,
        }
    }

    /// Take the app's next request as soon as this connection is free, and
    /// send it when it is due (at once when it already is).
    async fn open_loop(&mut self, schedule: &Schedule) {
        let shared = self.shared.clone();
        let mut live = shared.live.clone();
        schedule.apply(&live.borrow_and_update(), Instant::now());
        loop {
            if live.has_changed().unwrap_or(false) {
                schedule.apply(&live.borrow_and_update(), Instant::now());
            }
            if shared.stopping() {
                schedule.stop(Instant::now());
            }
            let due = match schedule.claim() {
                Claim::Due(due) => due,
                Claim::Stop => break,
                Claim::Idle => {
                    tokio::select! {
                        _ = shared.stop.cancelled() => schedule.stop(Instant::now()),
                        // `changed` marks the change seen: apply it here, or
                        // `has_changed` above never fires and an app that
                        // goes live in a later phase never sends.
                        r = live.changed() => match r {
                            Ok(()) => schedule.apply(&live.borrow_and_update(), Instant::now()),
                            Err(_) => break,
                        },
                    }
                    continue;
                }
            };
            if let Some(timer) = self.timer.as_ref().filter(|_| due > Instant::now()) {
                // Waiting for the request's time, the app may be taken out
                // of service (the next phase) or the run stopped.
                let mut changes = true;
                loop {
                    tokio::select! {
                        biased;
                        _ = shared.stop.cancelled() => schedule.stop(Instant::now()),
                        r = live.changed(), if changes => {
                            if r.is_err() {
                                // No more changes can come: wait for the time.
                                changes = false;
                                continue;
                            }
                            schedule.apply(&live.borrow_and_update(), Instant::now());
                            if schedule.sends(due) {
                                continue;
                            }
                        }
                        _ = timer.sleep_until(due) => {}
                    }
                    break;
                }
                if schedule.stopped_before(due) {
                    break;
                }
                if !schedule.sends(due) {
                    continue;
                }
            }
            let Some(q) = pick_weighted(&self.mix, &mut self.rng) else {
                break;
            };
            if !self.execute(q, due).await {
                break;
            }
        }
    }

    /// Send the next request as soon as the last one finished, while the
    /// app is live.
    async fn closed_loop(&mut self) {
        let shared = self.shared.clone();
        let mut live = shared.live.clone();
        let mut is_live = live.borrow_and_update().contains(&self.app);
        loop {
            // Atomic loads per request; the live list is read only when it
            // changed.
            if shared.stopping() {
                break;
            }
            if live.has_changed().unwrap_or(false) {
                is_live = live.borrow_and_update().contains(&self.app);
            }
            if !is_live {
                tokio::select! {
                    _ = shared.stop.cancelled() => break,
                    r = live.changed() => if r.is_err() { break },
                }
                is_live = live.borrow_and_update().contains(&self.app);
                continue;
            }
            let Some(q) = pick_weighted(&self.mix, &mut self.rng) else {
                break;
            };
            if !self.execute(q, Instant::now()).await {
                break;
            }
        }
    }

    /// Send one query and report it. False when the client must stop.
    async fn execute(&mut self, qi: u16, intended: Instant) -> bool {
        self.params.clear();
        let q = qi as usize;
        match &self.shared.row_of[q] {
            None => {
                for g in &self.shared.samplers[q] {
                    let row = self.rng.gen();
                    self.params.push(g.sample(row, &mut self.rng));
                }
            }
            Some(row_of) => {
                self.rows.clear();
                for (g, &of) in self.shared.samplers[q].iter().zip(row_of) {
                    let row = match self.rows.get(of) {
                        Some(&row) => row,
                        None => self.rng.gen(),
                    };
                    self.rows.push(row);
                    self.params.push(g.sample(row, &mut self.rng));
                }
            }
        }
        self.current.set(qi);
        let sent = Instant::now();
        self.log.begin(intended, sent);
        let sql = &self.shared.query(qi).sql;
        let result = self.session.wire.execute(qi, sql, &self.params).await;
        let done = Instant::now();
        let (error, lost) = match result {
            Ok(_) => (None, false),
            Err(f) => (Some(f.error), f.lost),
        };
        self.log.end(qi, intended, sent, done, error);
        if lost {
            return self.reconnect().await;
        }
        true
    }

    /// The server went away or dropped us: retry with backoff until it
    /// answers again or we are told to stop.
    async fn reconnect(&mut self) -> bool {
        let mut backoff = Duration::from_millis(50);
        let abort = &self.shared.abort;
        self.lost.store(true, Ordering::Relaxed);
        loop {
            if abort.is_cancelled() {
                return false;
            }
            match AppSession::connect(&self.shared, &self.app_name, &self.current).await {
                Ok(s) => {
                    *self.cancel.lock().unwrap_or_else(|p| p.into_inner()) = s.cancel.clone();
                    self.session = s;
                    self.lost.store(false, Ordering::Relaxed);
                    return true;
                }
                Err(_) => {
                    tokio::select! {
                        _ = abort.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(RECONNECT_BACKOFF_MAX);
                }
            }
        }
    }
}

/// For each parameter, the first parameter drawn from the same addressed
/// stream (see `Shared::row_of`), or itself; None where every parameter is
/// its own.
fn shared_rows(params: &[ColumnGen]) -> Option<Vec<usize>> {
    let key = |g: &ColumnGen| match &g.kind {
        Gen::Addressed { key, .. } => Some(*key),
        _ => None,
    };
    let of: Vec<usize> = params
        .iter()
        .enumerate()
        .map(|(n, g)| match key(g) {
            Some(k) => params.iter().position(|o| key(o) == Some(k)).unwrap_or(n),
            None => n,
        })
        .collect();
    of.iter().enumerate().any(|(n, o)| *o != n).then_some(of)
}
