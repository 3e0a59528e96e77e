//! Application traffic: per app version a pool of connections sending the
//! scenario's weighted query mix, open loop (with `rate`) or closed loop, and
//! the timed one-off scripts.
//!
//! Open loop means every request has an *intended* start on a fixed
//! schedule; latency is measured from that intended start, so a stall shows
//! up in every request that queued behind it (no coordinated omission, as in
//! wrk2 and pgbench --rate). The schedule never waits for the server: when all
//! clients are busy, requests queue in a bounded channel and, once that is
//! full, the scheduler itself falls behind — but the intended times stay
//! fixed, so backpressure shows up as latency, never as memory.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_postgres::{Client, Statement};
use tokio_util::sync::CancellationToken;

use crate::backend::ConnInfo;
use crate::clock::Clock;
use crate::scenario::gen::{Sampler, Value};
use crate::scenario::{QueryPlan, ScriptPlan, WorkloadPlan};

/// How many requests may wait for a free client of one app before the
/// scheduler itself blocks.
const QUEUE_PER_APP: usize = 4096;

/// application_name prefixes: the observer tells app, script and harness
/// sessions apart by these.
pub const APP_NAME_PREFIX: &str = "pgrehearse/app/";
pub const SCRIPT_NAME_PREFIX: &str = "pgrehearse/script/";

/// One finished request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub query: u16,
    pub app: u16,
    pub intended: Instant,
    pub sent: Instant,
    pub done: Instant,
    pub error: Option<AppError>,
}

#[derive(Debug, Clone)]
pub struct AppError {
    pub sqlstate: String,
    pub message: String,
}

impl AppError {
    pub fn from_pg(e: &tokio_postgres::Error) -> AppError {
        match e.as_db_error() {
            Some(db) => AppError {
                sqlstate: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None if e.is_closed() => AppError {
                sqlstate: "08006".into(),
                message: format!("connection lost: {e}"),
            },
            None => AppError {
                sqlstate: "08000".into(),
                message: e.to_string(),
            },
        }
    }
}

/// Names behind the indices in a [`Sample`].
#[derive(Debug, Clone)]
pub struct Labels {
    pub queries: Vec<String>,
    pub apps: Vec<String>,
}

/// Which app or script owns a server pid: filled as sessions connect, read
/// by the observer to attribute lock waits.
#[derive(Debug, Clone, Default)]
pub struct PidRegistry(Arc<Mutex<HashMap<i32, PidOwner>>>);

#[derive(Debug, Clone, PartialEq)]
pub enum PidOwner {
    App(String),
    Script(String),
}

impl PidRegistry {
    pub fn insert(&self, pid: i32, owner: PidOwner) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(pid, owner);
    }
    pub fn get(&self, pid: i32) -> Option<PidOwner> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pid)
            .cloned()
    }
}

/// A script's statement outcome, reported like an app request so its errors
/// and latency are kept.
pub struct WorkloadCtx {
    pub conn: ConnInfo,
    pub plan: WorkloadPlan,
    pub clock: Clock,
    pub seed: u64,
    /// Indices into `labels.apps` of the apps live now.
    pub live: watch::Receiver<Arc<Vec<u16>>>,
    /// Graceful stop: no new requests; in-flight ones finish.
    pub stop: CancellationToken,
    /// Hard stop: in-flight queries are cancelled on the server.
    pub abort: CancellationToken,
    pub samples: mpsc::Sender<Sample>,
    pub pids: PidRegistry,
}

pub struct Workload {
    tasks: JoinSet<()>,
    pub labels: Labels,
}

impl Workload {
    /// Connect every client (so connection errors surface before traffic
    /// starts) and start sending.
    pub async fn start(ctx: WorkloadCtx) -> crate::Result<Workload> {
        let apps = ctx.plan.apps();
        let apps = if apps.is_empty() {
            vec!["app".to_string()]
        } else {
            apps
        };
        let labels = Labels {
            queries: ctx.plan.queries.iter().map(|q| q.name.clone()).collect(),
            apps: apps.clone(),
        };
        let queries = Arc::new(ctx.plan.queries.clone());
        let samplers: Arc<Vec<Vec<Sampler>>> = Arc::new(
            queries
                .iter()
                .map(|q| q.params.iter().map(|g| g.sampler()).collect())
                .collect(),
        );
        let mut tasks = JoinSet::new();
        let mut senders = Vec::new();

        for (ai, app) in apps.iter().enumerate() {
            // The queries this app sends, with their weights.
            let mine: Vec<(u16, u32)> = queries
                .iter()
                .enumerate()
                .filter(|(_, q)| q.apps.contains(app))
                .map(|(i, q)| (i as u16, q.weight))
                .collect();
            let (tx, rx) = mpsc::channel::<Request>(QUEUE_PER_APP);
            let rx = Arc::new(tokio::sync::Mutex::new(rx));
            senders.push((tx, mine.clone()));
            for ci in 0..ctx.plan.clients {
                let session =
                    AppSession::connect(&ctx.conn, app, &ctx.pids, ctx.plan.query_timeout).await?;
                let mode = match ctx.plan.rate {
                    Some(_) => Mode::Open(rx.clone()),
                    None => Mode::Closed {
                        mix: mine.clone(),
                        live: ctx.live.clone(),
                        stop: ctx.stop.clone(),
                    },
                };
                let rng = ChaCha8Rng::seed_from_u64(mix(
                    ctx.seed,
                    0x5eed_0000 + (ai as u64) * 10_000 + ci as u64,
                ));
                let client = ClientTask {
                    session,
                    app: ai as u16,
                    queries: queries.clone(),
                    samplers: samplers.clone(),
                    samples: ctx.samples.clone(),
                    abort: ctx.abort.clone(),
                    rng,
                    conn: ctx.conn.clone(),
                    app_name: app.clone(),
                    pids: ctx.pids.clone(),
                    query_timeout: ctx.plan.query_timeout,
                };
                tasks.spawn(client.run(mode));
            }
        }

        if let Some(rate) = ctx.plan.rate {
            let sched = Scheduler {
                rate,
                senders,
                live: ctx.live.clone(),
                stop: ctx.stop.clone(),
                abort: ctx.abort.clone(),
                rng: ChaCha8Rng::seed_from_u64(mix(ctx.seed, 0x5c4e_d01e)),
            };
            tasks.spawn(sched.run());
        }

        for (si, script) in ctx.plan.scripts.iter().enumerate() {
            let run = ScriptTask {
                script: script.clone(),
                index: (queries.len() + si) as u16,
                conn: ctx.conn.clone(),
                clock: ctx.clock,
                samples: ctx.samples.clone(),
                stop: ctx.stop.clone(),
                abort: ctx.abort.clone(),
                pids: ctx.pids.clone(),
            };
            tasks.spawn(run.run());
        }
        let mut labels = labels;
        labels
            .queries
            .extend(ctx.plan.scripts.iter().map(|s| s.name.clone()));
        labels.apps.push(SCRIPT_APP.to_string());
        Ok(Workload { tasks, labels })
    }

    /// Wait for every client, scheduler and script to finish (after `stop`
    /// or `abort` was triggered).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The app label scripts report under.
pub const SCRIPT_APP: &str = "script";

fn mix(seed: u64, salt: u64) -> u64 {
    // splitmix64 finaliser: unrelated streams from one user seed.
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn pick_weighted(mix: &[(u16, u32)], rng: &mut impl Rng) -> Option<u16> {
    let total: u64 = mix.iter().map(|(_, w)| *w as u64).sum();
    if total == 0 {
        return None;
    }
    let mut x = rng.gen_range(0..total);
    for (q, w) in mix {
        if x < *w as u64 {
            return Some(*q);
        }
        x -= *w as u64;
    }
    None
}

/// (query index, weight) pairs of one app.
type QueryMix = Vec<(u16, u32)>;

struct Request {
    query: u16,
    intended: Instant,
}

enum Mode {
    Open(Arc<tokio::sync::Mutex<mpsc::Receiver<Request>>>),
    Closed {
        mix: Vec<(u16, u32)>,
        live: watch::Receiver<Arc<Vec<u16>>>,
        stop: CancellationToken,
    },
}

/// Emits requests at `rate`/s on a fixed schedule, each to a live app chosen
/// uniformly, its query chosen by weight.
struct Scheduler {
    rate: f64,
    senders: Vec<(mpsc::Sender<Request>, QueryMix)>,
    live: watch::Receiver<Arc<Vec<u16>>>,
    stop: CancellationToken,
    abort: CancellationToken,
    rng: ChaCha8Rng,
}

impl Scheduler {
    async fn run(mut self) {
        let t0 = tokio::time::Instant::now();
        let mut i: u64 = 0;
        loop {
            let intended = t0 + Duration::from_secs_f64(i as f64 / self.rate);
            i += 1;
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(intended) => {}
            }
            let live = self.live.borrow().clone();
            if live.is_empty() {
                continue;
            }
            let app = live[self.rng.gen_range(0..live.len())] as usize;
            let Some((tx, mix)) = self.senders.get(app) else {
                continue;
            };
            let Some(query) = pick_weighted(mix, &mut self.rng) else {
                continue;
            };
            let req = Request {
                query,
                intended: intended.into_std(),
            };
            // Blocking here is the backpressure: the schedule's intended
            // times are kept, so the delay is charged as latency.
            tokio::select! {
                _ = self.abort.cancelled() => break,
                r = tx.send(req) => if r.is_err() { break },
            }
        }
        // Dropping the senders closes the queues: clients drain and exit.
    }
}

/// One app connection with its prepared statements.
struct AppSession {
    client: Client,
    statements: HashMap<u16, Statement>,
}

impl AppSession {
    async fn connect(
        conn: &ConnInfo,
        app: &str,
        pids: &PidRegistry,
        query_timeout: Option<Duration>,
    ) -> crate::Result<AppSession> {
        let mut cfg = conn.config();
        cfg.application_name(format!("{APP_NAME_PREFIX}{app}"));
        if let Some(t) = query_timeout {
            cfg.options(format!("-c statement_timeout={}", t.as_millis()));
        }
        let client = conn.open(&cfg).await?;
        let pid: i32 = client
            .query_one("SELECT pg_backend_pid()", &[])
            .await?
            .get(0);
        pids.insert(pid, PidOwner::App(app.to_string()));
        // Statements are prepared on first use, not here: an app version
        // may name columns that only exist once an earlier phase ran (the
        // expand/contract pattern), exactly as a real deploy would.
        let statements = HashMap::new();
        Ok(AppSession { client, statements })
    }
}

impl AppSession {
    /// Prepare on first use; forget the statement after an error that means
    /// the schema moved under it, so the next use prepares again.
    async fn run(
        &mut self,
        qi: u16,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let stmt = match self.statements.get(&qi) {
            Some(s) => s.clone(),
            None => {
                let s = self.client.prepare(sql).await?;
                self.statements.insert(qi, s.clone());
                s
            }
        };
        let r = self.client.query(&stmt, params).await;
        if let Err(e) = &r {
            if e.as_db_error().is_some() {
                // 0A000 cached plan must not change result type, 42703
                // undefined column, 42P01 undefined table, 42804 datatype
                // mismatch...: the statement may be stale. Preparing again
                // is cheap and mirrors what drivers do.
                self.statements.remove(&qi);
            }
        }
        r
    }
}

struct ClientTask {
    session: AppSession,
    app: u16,
    queries: Arc<Vec<QueryPlan>>,
    /// Parameter samplers per query, built once (a zipf table is not free).
    samplers: Arc<Vec<Vec<Sampler>>>,
    samples: mpsc::Sender<Sample>,
    abort: CancellationToken,
    rng: ChaCha8Rng,
    conn: ConnInfo,
    app_name: String,
    pids: PidRegistry,
    query_timeout: Option<Duration>,
}

impl ClientTask {
    async fn run(mut self, mode: Mode) {
        match mode {
            Mode::Open(rx) => loop {
                let req = {
                    let mut rx = rx.lock().await;
                    tokio::select! {
                        r = rx.recv() => r,
                        _ = self.abort.cancelled() => None,
                    }
                };
                let Some(req) = req else { break };
                if !self.execute(req.query, req.intended).await {
                    break;
                }
            },
            Mode::Closed {
                mix,
                mut live,
                stop,
            } => loop {
                if stop.is_cancelled() {
                    break;
                }
                if !live.borrow().contains(&self.app) {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        r = live.changed() => if r.is_err() { break },
                    }
                    continue;
                }
                let Some(q) = pick_weighted(&mix, &mut self.rng) else {
                    break;
                };
                if !self.execute(q, Instant::now()).await {
                    break;
                }
            },
        }
    }

    /// Send one query and report it. False when the client must stop.
    async fn execute(&mut self, qi: u16, intended: Instant) -> bool {
        let params: Vec<Value> = self.samplers[qi as usize]
            .iter()
            .map(|g| {
                let row = self.rng.gen();
                g.sample(row, &mut self.rng)
            })
            .collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = params
            .iter()
            .map(|v| v as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let sent = Instant::now();
        let cancel = self.session.client.cancel_token();
        let result = tokio::select! {
            r = self.session.run(qi, &self.queries[qi as usize].sql, &refs) => Some(r),
            _ = self.abort.cancelled() => None,
        };
        let Some(result) = result else {
            // Hard stop: cancel the in-flight query on the server too.
            self.conn.cancel(&cancel).await;
            return false;
        };
        let done = Instant::now();
        let error = result.as_ref().err().map(AppError::from_pg);
        let lost =
            result.as_ref().err().is_some_and(|e| e.is_closed()) || self.session.client.is_closed();
        let sample = Sample {
            query: qi,
            app: self.app,
            intended,
            sent,
            done,
            error,
        };
        if self.samples.send(sample).await.is_err() {
            return false;
        }
        if lost {
            return self.reconnect().await;
        }
        true
    }

    /// The server went away or dropped us: retry with backoff until it
    /// answers again or we are told to stop.
    async fn reconnect(&mut self) -> bool {
        let mut backoff = Duration::from_millis(50);
        loop {
            if self.abort.is_cancelled() {
                return false;
            }
            match AppSession::connect(&self.conn, &self.app_name, &self.pids, self.query_timeout)
                .await
            {
                Ok(s) => {
                    self.session = s;
                    return true;
                }
                Err(_) => {
                    tokio::select! {
                        _ = self.abort.cancelled() => return false,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    }
}

/// A one-off session at a set time: each statement is reported as a request
/// of the script (query label = script name, app = "script").
struct ScriptTask {
    script: ScriptPlan,
    index: u16,
    conn: ConnInfo,
    clock: Clock,
    samples: mpsc::Sender<Sample>,
    stop: CancellationToken,
    abort: CancellationToken,
    pids: PidRegistry,
}

impl ScriptTask {
    async fn run(self) {
        let at = self.clock.instant_at(0.0) + self.script.at;
        tokio::select! {
            _ = self.stop.cancelled() => return,
            _ = tokio::time::sleep_until(at.into()) => {}
        }
        let mut cfg = self.conn.config();
        cfg.application_name(format!("{SCRIPT_NAME_PREFIX}{}", self.script.name));
        let client = match self.conn.open(&cfg).await {
            Ok(c) => c,
            Err(e) => {
                self.report(Instant::now(), Instant::now(), Some(AppError::from_pg(&e)))
                    .await;
                return;
            }
        };
        if let Ok(row) = client.query_one("SELECT pg_backend_pid()", &[]).await {
            self.pids
                .insert(row.get(0), PidOwner::Script(self.script.name.clone()));
        }
        let cancel = client.cancel_token();
        for sql in &self.script.sql {
            let sent = Instant::now();
            let r = tokio::select! {
                r = client.simple_query(sql) => Some(r),
                _ = self.abort.cancelled() => None,
            };
            let Some(r) = r else {
                self.conn.cancel(&cancel).await;
                return;
            };
            let err = r.err().map(|e| AppError::from_pg(&e));
            self.report(sent, Instant::now(), err).await;
        }
    }

    async fn report(&self, sent: Instant, done: Instant, error: Option<AppError>) {
        // Scripts report under the last app index (SCRIPT_APP); the recorder
        // resolves it through the labels.
        let _ = self
            .samples
            .send(Sample {
                query: self.index,
                app: u16::MAX,
                intended: sent,
                sent,
                done,
                error,
            })
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_pick_follows_weights() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mix = [(0u16, 70u32), (1, 20), (2, 10)];
        let mut counts = [0u32; 3];
        for _ in 0..100_000 {
            counts[pick_weighted(&mix, &mut rng).unwrap() as usize] += 1;
        }
        assert!((counts[0] as f64 / 1e5 - 0.7).abs() < 0.01, "{counts:?}");
        assert!((counts[2] as f64 / 1e5 - 0.1).abs() < 0.01, "{counts:?}");
        assert_eq!(pick_weighted(&[(0, 0)], &mut rng), None);
    }

    #[test]
    fn seeds_mix_apart() {
        assert_ne!(mix(1, 1), mix(1, 2));
        assert_ne!(mix(1, 1), mix(2, 1));
    }
}
