//! Stage 3, run: application traffic, the migration and the observers on
//! one clock, in one database. Traffic runs `before` the first step, during
//! the migration and `after` the last step; a failure anywhere (a step's
//! error, a dead server, a signal) stops it early and what was measured
//! until then is kept.
//!
//! Two tokens: `stop` ends traffic and observers normally; `abort` cancels
//! in-flight work (a signal, a dead server, traffic that will not drain).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::stage::{Stopped, HARNESS_APP_NAME};
use crate::backend::{ConnInfo, ServerLog};
use crate::clock::{Clock, ServerClock};
use crate::error::Result;
use crate::health::HealthWatch;
use crate::latency::LatencyRecorder;
use crate::migration::{self, MigrationCtx, MigrationRun};
use crate::observe::{Observations, Observer, ObserverCtx};
use crate::options::OutputMode;
use crate::progress::{Live, Progress};
use crate::scenario::Scenario;
use crate::signals::Signals;
use crate::workload::{PidRegistry, Workload, WorkloadCtx};

/// How often the wait observer polls pg_stat_activity.
pub const WAIT_POLL: Duration = Duration::from_millis(5);
/// How often server.csv gets a sample.
pub const SERVER_SAMPLE: Duration = Duration::from_millis(250);

/// Bounded: a recorder that falls behind slows the clients down (which the
/// open-loop schedule then charges as latency) instead of growing memory.
const SAMPLE_QUEUE: usize = 65_536;
/// In-flight queries get this long to finish at the end, then are cancelled.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// What the run stage needs: a database, not the server it is on.
pub struct RunInputs<'a> {
    /// Connects to the rehearsal's (seeded) database.
    pub conn: &'a ConnInfo,
    /// The server's log, where we own the server.
    pub server_log: Option<ServerLog>,
    pub scenario: &'a Scenario,
    /// The tables whose rewrites, scans, dead tuples and size are watched
    /// ([`observed_tables`]).
    pub tables: Vec<String>,
    /// Seed of query parameters and retry jitter.
    pub seed: u64,
    pub output: OutputMode,
}

/// What the run stage measured, on the run clock.
pub struct Measured {
    /// UTC, RFC 3339: time zero of every `_ms` figure.
    pub started_at: String,
    pub server_clock: ServerClock,
    /// Statements, transactions, steps and phases; `failure` says why the
    /// run stopped early, if it did.
    pub migration: MigrationRun,
    pub observations: Observations,
    pub latency: LatencyRecorder,
    pub end_ms: f64,
    /// A signal stopped it.
    pub interrupted: bool,
}

/// Clock, tokens and live figures shared by everything that runs at once.
struct Shared {
    clock: Clock,
    stop: CancellationToken,
    abort: CancellationToken,
    pids: PidRegistry,
    live: Live,
}

/// Run traffic, migration and observers; see the module docs.
pub async fn run(input: &RunInputs<'_>, signals: &Signals) -> Result<Measured, Stopped> {
    let s = input.scenario;
    let clock = Clock::start();
    let server_clock = measure_server_clock(input.conn, &clock)
        .await
        .map_err(|e| Stopped::failed(format!("the server clock could not be measured: {e}")))?;
    let sh = Shared {
        clock,
        stop: CancellationToken::new(),
        // A signal cancels it too.
        abort: signals.token.child_token(),
        pids: PidRegistry::default(),
        live: Live::default(),
    };
    let apps = AppVersions::of(s);
    let (live_tx, live_rx) = watch::channel(Arc::new(apps.first_live.clone()));
    let observer = start_observer(input, &sh, server_clock)
        .await
        .map_err(|e| Stopped::failed(format!("the observers could not start: {e}")))?;
    let traffic = match Traffic::start(input, &sh, live_rx).await {
        Ok(t) => t,
        Err(e) => {
            sh.stop.cancel();
            sh.abort.cancel();
            let _ = observer.finish().await;
            return Err(Stopped::failed(format!(
                "the workload could not start: {e}"
            )));
        }
    };
    let health = HealthWatch::start(input.conn.clone(), sh.abort.clone());
    let progress = Progress::start(&input.output, &sh.live);

    let mut migration = drive(input, &sh, apps.index, live_tx).await;

    sh.live.current.set("stopping".into());
    sh.stop.cancel();
    let latency = traffic.stop(&sh.abort).await;
    let observed = observer.finish().await;
    let died = health.finish().await;
    if let Some(p) = progress {
        p.stop().await;
    }
    let end_ms = clock.now_ms();
    let (observations, observer_failed) = match observed {
        Ok(o) => (o, None),
        Err(e) => (Observations::default(), Some(format!("observer: {e}"))),
    };
    let failure = died
        .or(observer_failed)
        .or_else(|| observations.connection_lost.clone());
    explain_stop(&mut migration, signals, failure);
    tracing::debug!(
        "observer: {} polls, mean interval {:.2} ms, {} app waits",
        observations.polls,
        observations.mean_poll_ms,
        observations.waits.len()
    );
    Ok(Measured {
        started_at: clock.started_at(),
        server_clock,
        migration,
        observations,
        latency: latency.map_err(|e| Stopped::failed(format!("latency recorder: {e}")))?,
        end_ms,
        interrupted: signals.received(),
    })
}

/// The offset between the server's clock and the run clock.
async fn measure_server_clock(conn: &ConnInfo, clock: &Clock) -> Result<ServerClock> {
    let admin = conn.session(HARNESS_APP_NAME).await?;
    let sc = ServerClock::measure(&admin, clock).await?;
    tracing::debug!(
        "server clock mapped onto the run clock to ±{:.3} ms",
        sc.uncertainty_ms
    );
    Ok(sc)
}

/// Traffic before the first step, the migration, traffic after the last
/// step (skipped when something failed: the windows still close and the
/// report is still written).
async fn drive(
    input: &RunInputs<'_>,
    sh: &Shared,
    app_index: HashMap<String, u16>,
    live: watch::Sender<Arc<Vec<u16>>>,
) -> MigrationRun {
    let s = input.scenario;
    sh.live.current.set("before".into());
    timed_traffic("before the first step", &sh.abort, s.workload.before).await;
    let run = if sh.abort.is_cancelled() {
        MigrationRun::default()
    } else {
        let started = Instant::now();
        tracing::info!("migration: {} phase(s)", s.phases.len());
        let ctx = MigrationCtx {
            conn: input.conn.clone(),
            phases: s.phases.clone(),
            tables: input.tables.clone(),
            clock: sh.clock,
            status: sh.live.status.clone(),
            app_index,
            live,
            abort: sh.abort.clone(),
            current: sh.live.current.clone(),
            seed: input.seed,
        };
        let run = migration::run(ctx).await.unwrap_or_else(|e| MigrationRun {
            failure: Some(format!("the migration session failed: {e}")),
            ..Default::default()
        });
        tracing::info!(
            "migration ended in {:.1} ms{}",
            started.elapsed().as_secs_f64() * 1e3,
            run.failure
                .as_deref()
                .map(|f| format!(": {f}"))
                .unwrap_or_default()
        );
        run
    };
    if run.failure.is_none() && !sh.abort.is_cancelled() {
        sh.live.current.set("after".into());
        timed_traffic("after the last step", &sh.abort, s.workload.after).await;
    }
    run
}

/// Let traffic run for `d` (unless aborted), saying so with `-v`.
async fn timed_traffic(what: &str, abort: &CancellationToken, d: Duration) {
    tracing::info!("traffic {what}: {d:?}");
    tokio::select! {
        _ = abort.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Why did we stop early, if we did? A step's own error says most; a signal
/// or a dead server says more than the "interrupted" of the migration it
/// aborted.
fn explain_stop(run: &mut MigrationRun, signals: &Signals, failure: Option<String>) {
    if run.failure.is_some() && !run.aborted {
        return;
    }
    let cancelled = run
        .steps
        .iter()
        .rev()
        .find(|s| s.outcome == "cancelled")
        .map(|s| format!(" (step `{} / {}` was cancelled)", s.phase, s.step))
        .unwrap_or_default();
    if signals.received() {
        run.failure = Some(format!("interrupted by {}{cancelled}", signals.name()));
    } else if let Some(f) = failure {
        run.failure = Some(format!("{f}{cancelled}"));
    }
}

/// The app versions of the workload, numbered, and those live in the first
/// phase.
struct AppVersions {
    index: HashMap<String, u16>,
    first_live: Vec<u16>,
}

impl AppVersions {
    fn of(s: &Scenario) -> AppVersions {
        let mut apps = s.workload.apps();
        if apps.is_empty() {
            apps = vec!["app".to_string()];
        }
        let index: HashMap<String, u16> = apps
            .iter()
            .enumerate()
            .map(|(i, a)| (a.clone(), i as u16))
            .collect();
        let first_live = match s.phases.first() {
            Some(p) => p
                .apps
                .iter()
                .filter_map(|a| index.get(a).copied())
                .collect(),
            None => (0..apps.len() as u16).collect(),
        };
        AppVersions { index, first_live }
    }
}

/// The tables whose rewrites, scans, dead tuples and size the run watches:
/// the scenario's, and with `[migrations]` every table of the database
/// once seeded (the schema is the migrations').
pub async fn observed_tables(conn: &ConnInfo, s: &Scenario) -> Vec<String> {
    let mut names: Vec<String> = s.tables.iter().map(|t| t.name.clone()).collect();
    if s.migrations.is_none() {
        return names;
    }
    let found = match conn.session(HARNESS_APP_NAME).await {
        Ok(c) => c
            .query(
                "SELECT c.relname::text FROM pg_class c \
                 WHERE c.relkind IN ('r', 'p', 'm') \
                   AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, \
                       'information_schema'::regnamespace, 'pg_toast'::regnamespace) \
                 ORDER BY 1",
                &[],
            )
            .await
            .map(|rows| {
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    for n in found {
        if !names.contains(&n) {
            names.push(n);
        }
    }
    names
}

async fn start_observer(
    input: &RunInputs<'_>,
    sh: &Shared,
    server_clock: ServerClock,
) -> Result<Observer> {
    Observer::start(ObserverCtx {
        conn: input.conn.clone(),
        clock: sh.clock,
        server_clock,
        pids: sh.pids.clone(),
        migration: sh.live.status.clone(),
        query_names: input
            .scenario
            .workload
            .queries
            .iter()
            .map(|q| (q.sql.trim().to_string(), q.name.clone()))
            .collect(),
        tables: input.tables.clone(),
        poll: WAIT_POLL,
        sample: SERVER_SAMPLE,
        server_log: input.server_log.clone(),
        stop: sh.stop.clone(),
    })
    .await
}

/// The app clients and the recorder of their latencies.
struct Traffic {
    workload: Workload,
    recorder: JoinHandle<LatencyRecorder>,
}

impl Traffic {
    async fn start(
        input: &RunInputs<'_>,
        sh: &Shared,
        live: watch::Receiver<Arc<Vec<u16>>>,
    ) -> Result<Traffic> {
        let plan = &input.scenario.workload;
        let (samples, sample_rx) = mpsc::channel(SAMPLE_QUEUE);
        let workload = Workload::start(WorkloadCtx {
            conn: input.conn.clone(),
            plan: plan.clone(),
            clock: sh.clock,
            seed: input.seed,
            live,
            stop: sh.stop.clone(),
            abort: sh.abort.clone(),
            samples,
            pids: sh.pids.clone(),
        })
        .await?;
        let recorder = LatencyRecorder::new(
            sh.clock,
            plan.window.as_secs_f64() * 1e3,
            workload.labels.clone(),
            sh.live.stats.clone(),
        );
        let recorder = tokio::spawn(recorder.run(sample_rx));
        Ok(Traffic { workload, recorder })
    }

    /// After `stop` was cancelled: let in-flight queries finish (cancelling
    /// them through `abort` after [`DRAIN_WAIT`]), then close every window.
    async fn stop(self, abort: &CancellationToken) -> Result<LatencyRecorder> {
        if tokio::time::timeout(DRAIN_WAIT, self.workload.join())
            .await
            .is_err()
        {
            tracing::info!("traffic did not drain in {DRAIN_WAIT:?}: cancelling it");
            abort.cancel();
        }
        Ok(self.recorder.await.map_err(anyhow::Error::new)?)
    }
}
