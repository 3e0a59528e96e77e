//! Application traffic: per app version a pool of connections sending the
//! scenario's weighted query mix, open loop (with `rate`) or closed loop, and
//! the timed one-off scripts.
//!
//! Open loop means every request has an *intended* start on a fixed
//! schedule; latency is measured from that intended start, so a stall shows
//! up in every request that queued behind it (no coordinated omission, as in
//! wrk2 and pgbench --rate). The schedule never waits for the server: when
//! all of an app's connections are busy its requests fall due unclaimed and
//! whichever connection frees up first takes the oldest, as a connection
//! pool would; the intended times stay fixed, so backpressure shows up as
//! latency, never as memory.
//!
//! The files: `check` (the queries prepared on the seeded schema before
//! any traffic), `driver` (the threads the connections run on), `client` (one
//! connection: send, time, hand over to the recorder), `wire` (the
//! protocol it speaks on its own socket), `open_loop` (each
//! app's schedule), `timer` (waiting for a request's due time to tens of
//! µs), `script` (the one-off sessions).

mod check;
mod client;
mod driver;
mod open_loop;
mod script;
mod timer;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::backend::ConnInfo;
use crate::clock::Clock;
use crate::latency::Registry;
pub use crate::latency::{AppError, Labels, SCRIPT_APP};
use crate::scenario::WorkloadPlan;
pub use check::check_queries;
use client::{ClientSpec, Shared};
use driver::Drivers;
use open_loop::Schedule;

/// application_name prefixes: the observer tells app, script and harness
/// sessions apart by these.
pub const APP_NAME_PREFIX: &str = "pgrehearse/app/";
pub const SCRIPT_NAME_PREFIX: &str = "pgrehearse/script/";

/// A session of the rehearsal that could not connect mid-run (a script at
/// its time): the rehearsal without it would be another scenario, so the
/// run stops (`abort`) and fails with this, the first such reason.
#[derive(Debug, Clone, Default)]
pub struct SessionLost(Arc<Mutex<Option<String>>>);

impl SessionLost {
    /// Keep `why` unless a session was lost before.
    pub fn set(&self, why: String) {
        if let Ok(mut slot) = self.0.lock() {
            slot.get_or_insert(why);
        }
    }

    pub fn take(&self) -> Option<String> {
        self.0.lock().ok().and_then(|mut slot| slot.take())
    }
}

/// Which app or script owns a server pid: filled as sessions connect, read
/// by the observer to attribute lock waits.
#[derive(Debug, Clone, Default)]
pub struct PidRegistry(Arc<Mutex<HashMap<i32, PidOwner>>>);

#[derive(Debug, Clone, PartialEq)]
pub enum PidOwner {
    /// An app version's connection, and the query it sends now.
    App(String, CurrentQuery),
    Script(String),
}

/// The query an app connection has in flight (its index in the plan's
/// queries), or had last: what a lock wait of its backend was waiting in.
/// Queries whose SQL is the same text (hot and cold ids of one statement)
/// cannot be told apart by the server's `query`; the connection knows.
#[derive(Debug, Clone, Default)]
pub struct CurrentQuery(Arc<std::sync::atomic::AtomicU32>);

impl CurrentQuery {
    const NONE: u32 = u32::MAX;

    pub fn new() -> CurrentQuery {
        CurrentQuery(Arc::new(std::sync::atomic::AtomicU32::new(Self::NONE)))
    }

    pub fn set(&self, query: u16) {
        self.0
            .store(u32::from(query), std::sync::atomic::Ordering::Relaxed);
    }

    pub fn get(&self) -> Option<usize> {
        match self.0.load(std::sync::atomic::Ordering::Relaxed) {
            Self::NONE => None,
            q => Some(q as usize),
        }
    }
}

/// One connection's slot is itself, whatever it holds.
impl PartialEq for CurrentQuery {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
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
    /// Where every connection hands its finished requests to the recorder.
    pub recording: Registry,
    pub pids: PidRegistry,
    /// Set (and `abort` cancelled) when a script cannot connect.
    pub lost: SessionLost,
}

/// The app versions and queries of a workload, as the recorder numbers
/// them: the scripts come after the queries, app `script` last.
pub fn labels(plan: &WorkloadPlan) -> Labels {
    let mut apps = plan.apps();
    if apps.is_empty() {
        apps.push("app".to_string());
    }
    apps.push(SCRIPT_APP.to_string());
    Labels {
        queries: plan
            .queries
            .iter()
            .map(|q| q.name.clone())
            .chain(plan.scripts.iter().map(|s| s.name.clone()))
            .collect(),
        apps,
    }
}

pub struct Workload {
    drivers: Drivers,
    /// The scripts, on the caller's runtime.
    tasks: JoinSet<()>,
    pub labels: Labels,
}

impl Workload {
    /// Connect every client (so connection errors surface before traffic
    /// starts), then start sending.
    pub async fn start(ctx: WorkloadCtx) -> crate::Result<Workload> {
        let labels = labels(&ctx.plan);
        let app_count = labels.apps.len() - 1;
        let shared = Arc::new(Shared::new(&ctx));
        let mut specs = Vec::new();
        for (ai, app) in labels.apps[..app_count].iter().enumerate() {
            let schedule = ctx.plan.rate.map(|r| Schedule::new(ai as u16, r));
            for ci in 0..ctx.plan.clients {
                specs.push(ClientSpec {
                    app: ai as u16,
                    app_name: app.clone(),
                    seed: mix(ctx.seed, 0x5eed_0000 + (ai as u64) * 10_000 + ci as u64),
                    schedule: schedule.clone(),
                });
            }
        }
        let drivers = Drivers::start(specs, shared.clone()).await?;

        let mut tasks = JoinSet::new();
        tasks.spawn(shared.clone().watch_stop());
        for (si, plan) in ctx.plan.scripts.iter().enumerate() {
            let s = script::ScriptTask {
                script: plan.clone(),
                index: (ctx.plan.queries.len() + si) as u16,
                conn: ctx.conn.clone(),
                clock: ctx.clock,
                log: ctx.recording.client(labels.script_app(), false),
                stop: ctx.stop.clone(),
                abort: ctx.abort.clone(),
                pids: ctx.pids.clone(),
                lost: ctx.lost.clone(),
            };
            tasks.spawn(s.run());
        }
        Ok(Workload {
            drivers,
            tasks,
            labels,
        })
    }

    /// Wait for every client, scheduler and script to finish (after `stop`
    /// or `abort` was triggered).
    pub async fn join(mut self) {
        while self.tasks.join_next().await.is_some() {}
        self.drivers.join().await;
    }
}

fn mix(seed: u64, salt: u64) -> u64 {
    // splitmix64 finaliser: unrelated streams from one user seed.
    let mut z = seed ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// (query index, weight) pairs of one app.
pub(crate) type QueryMix = Vec<(u16, u32)>;

/// The queries app `app` sends, with their weights.
fn query_mix(plan: &WorkloadPlan, app: &str) -> QueryMix {
    plan.queries
        .iter()
        .enumerate()
        .filter(|(_, q)| q.apps.iter().any(|a| a == app))
        .map(|(i, q)| (i as u16, q.weight))
        .collect()
}

pub(crate) fn pick_weighted(mix: &[(u16, u32)], rng: &mut impl rand::Rng) -> Option<u16> {
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

/// How long a lost connection waits before it tries again, at most.
const RECONNECT_BACKOFF_MAX: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

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
