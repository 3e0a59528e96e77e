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

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::stage::{Stopped, HARNESS_APP_NAME};
use crate::backend::{ConnInfo, ServerLog};
use crate::clock::{Clock, ServerClock};
use crate::error::Result;
use crate::health::HealthWatch;
use crate::latency::{LatencyRecorder, Recorded, Registry, SegmentMarks};
use crate::migration::{self, MigrationCtx, MigrationRun, WalSource};
use crate::observe::{Observations, Observer, ObserverCtx};
use crate::options::OutputMode;
use crate::progress::{Live, Progress};
use crate::record::LatencyFiles;
use crate::scenario::Scenario;
use crate::signals::Signals;
use crate::workload::{PidRegistry, SessionLost, Workload, WorkloadCtx};

/// How often the wait observer polls this database's backends while a step
/// runs (it backs off to 5× that while nothing happens).
pub const WAIT_POLL: Duration = Duration::from_millis(5);
/// How often server.csv gets a sample while a step runs (4× less often
/// otherwise).
pub const SERVER_SAMPLE: Duration = Duration::from_millis(250);

/// In-flight queries get this long to finish at the end, then are cancelled.
const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// What the run stage needs: a database, not the server it is on.
pub struct RunInputs<'a> {
    /// Connects to the rehearsal's (seeded) database.
    pub conn: &'a ConnInfo,
    /// The server's log, where we own the server.
    pub server_log: Option<ServerLog>,
    pub scenario: &'a Scenario,
    /// The tables whose rewrites, scans, dead tuples and size are watched,
    /// by oid (`observed_tables`).
    pub tables: Vec<u32>,
    /// The run directory: the latency recorder streams its files there.
    pub run_dir: &'a std::path::Path,
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
    /// What the latency recorder kept besides the files it streamed.
    pub latency: Recorded,
    /// When the app traffic began (connected, scheduled).
    pub traffic_started_ms: Option<f64>,
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
    /// Where steps and phases begin and end: the latency segments.
    marks: Arc<SegmentMarks>,
    /// The requests in flight and finished: the clients write, the
    /// recorder and the wait poller read.
    requests: Registry,
}

/// Run traffic, migration and observers; see the module docs.
pub async fn run(input: &RunInputs<'_>, signals: &Signals) -> Result<Measured, Stopped> {
    let s = input.scenario;
    let clock = Clock::start();
    let (server_clock, wal) = measure_server_clock(input.conn, &clock)
        .await
        .map_err(|e| Stopped::failed(format!("the server clock could not be measured: {e}")))?;
    let sh = Shared {
        clock,
        stop: CancellationToken::new(),
        // A signal cancels it too.
        abort: signals.token.child_token(),
        pids: PidRegistry::default(),
        live: Live::default(),
        marks: Arc::new(SegmentMarks::new(clock)),
        requests: Registry::new(clock.start_instant()),
    };
    let apps = AppVersions::of(s);
    let lost = SessionLost::default();
    let (live_tx, live_rx) = watch::channel(Arc::new(apps.first_live.clone()));
    let observer = start_observer(input, &sh, server_clock)
        .await
        .map_err(|e| Stopped::failed(format!("the observers could not start: {e}")))?;
    let traffic = Traffic::start(TrafficCtx {
        conn: input.conn,
        plan: &s.workload,
        clock: sh.clock,
        seed: input.seed,
        live: live_rx,
        stop: sh.stop.clone(),
        abort: sh.abort.clone(),
        pids: sh.pids.clone(),
        marks: sh.marks.clone(),
        stats: sh.live.stats.clone(),
        requests: sh.requests.clone(),
        lost: lost.clone(),
        run_dir: input.run_dir,
    })
    .await;
    let traffic = match traffic {
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
    let traffic_started_ms = Some(clock.now_ms());
    let health = HealthWatch::start(input.conn.clone(), sh.abort.clone());
    let progress = Progress::start(&input.output, &sh.live);

    let mut migration = drive(input, &sh, apps.index, live_tx, wal, server_clock).await;

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
        .or_else(|| lost.take())
        .or(observer_failed)
        .or_else(|| observations.connection_lost.clone());
    explain_stop(&mut migration, signals, failure);
    tracing::debug!(
        "observer: {} polls ({} ticks skipped: no request on the server for over {:?}), mean interval {:.2} ms, {} app waits; the migration's locks polled {} times",
        observations.polls,
        observations.polls_skipped,
        crate::observe::SUSPECT_AFTER,
        observations.mean_poll_ms,
        observations.waits.len(),
        observations.held_polls
    );
    Ok(Measured {
        started_at: clock.started_at(),
        server_clock,
        migration,
        observations,
        latency: latency.map_err(|e| Stopped::failed(format!("latency recorder: {e}")))?,
        traffic_started_ms,
        end_ms,
        interrupted: signals.received(),
    })
}

/// The offset between the server's clock and the run clock, and whether
/// the migration's own WAL can be attributed (pg_stat_statements, created in
/// the work database where it is loaded).
async fn measure_server_clock(conn: &ConnInfo, clock: &Clock) -> Result<(ServerClock, WalSource)> {
    let admin = conn.session(HARNESS_APP_NAME).await?;
    let sc = ServerClock::measure(&admin, clock).await?;
    tracing::debug!(
        "server clock mapped onto the run clock to ±{:.3} ms",
        sc.uncertainty_ms
    );
    let wal = WalSource::prepare(&admin).await;
    match (&wal.attribution, &wal.unavailable) {
        (Some(a), _) => tracing::info!("the migration's own WAL: {a}"),
        (_, Some(why)) => tracing::info!("the migration's own WAL is not measured: {why}"),
        _ => {}
    }
    Ok((sc, wal))
}

/// Traffic before the first step, the migration, traffic after the last
/// step (skipped when something failed: the windows still close and the
/// report is still written).
async fn drive(
    input: &RunInputs<'_>,
    sh: &Shared,
    app_index: HashMap<String, u16>,
    live: watch::Sender<Arc<Vec<u16>>>,
    wal: WalSource,
    server_clock: ServerClock,
) -> MigrationRun {
    let s = input.scenario;
    let ctx = MigrationCtx {
        conn: input.conn.clone(),
        phases: s.phases.clone(),
        tables: input.tables.clone(),
        sized: sized_tables(input.scenario),
        clock: sh.clock,
        status: sh.live.status.clone(),
        app_index,
        live,
        abort: sh.abort.clone(),
        current: sh.live.current.clone(),
        marks: sh.marks.clone(),
        seed: input.seed,
        wal: wal.clone(),
        server_clock,
    };
    sh.live.current.set("before".into());
    // The migration session connects and prepares while the traffic before
    // runs: the first step then begins when that period ends.
    let (prepared, ()) = tokio::join!(
        migration::prepare(ctx),
        timed_traffic("before the first step", &sh.abort, s.workload.before)
    );
    let run = if sh.abort.is_cancelled() {
        MigrationRun::default()
    } else {
        let started = Instant::now();
        tracing::info!("migration: {} phase(s)", s.phases.len());
        let run = match prepared {
            Ok(p) => migration::execute(p).await,
            Err(e) => MigrationRun {
                failure: Some(format!("the migration session failed: {e}")),
                wal,
                ..Default::default()
            },
        };
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
            apps = vec![crate::scenario::DEFAULT_APP.to_string()];
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

/// What sizes count besides the tables watched by oid: the tables now
/// bearing the scenario's names, and with `[migrations]` every table.
fn sized_tables(s: &Scenario) -> crate::pg::SizedTables {
    crate::pg::SizedTables {
        names: s.tables.iter().map(|t| t.name.clone()).collect(),
        every_table: s.migrations.is_some(),
    }
}

/// The tables whose rewrites, scans, dead tuples and size the run watches,
/// by oid (followed through renames): the scenario's, and with
/// `[migrations]` every table of the database once seeded (the schema is
/// the migrations').
pub async fn observed_tables(conn: &ConnInfo, s: &Scenario) -> Vec<u32> {
    let Ok(c) = conn.session(HARNESS_APP_NAME).await else {
        return Vec::new();
    };
    let names: Vec<String> = s.tables.iter().map(|t| t.name.clone()).collect();
    let mut oids = crate::pg::table_oids(&c, &names).await;
    if s.migrations.is_none() {
        return oids;
    }
    let found: Vec<u32> = c
        .query(
            "SELECT c.oid FROM pg_class c \
             WHERE c.relkind IN ('r', 'p', 'm') \
               AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, \
                   'information_schema'::regnamespace, 'pg_toast'::regnamespace) \
             ORDER BY c.relname",
            &[],
        )
        .await
        .map(|rows| rows.iter().map(|r| r.get::<_, u32>(0)).collect())
        .unwrap_or_default();
    for oid in found {
        if !oids.contains(&oid) {
            oids.push(oid);
        }
    }
    oids
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
        requests: sh.requests.clone(),
        query_names: input
            .scenario
            .workload
            .queries
            .iter()
            .map(|q| (q.sql.trim().to_string(), q.name.clone()))
            .collect(),
        query_list: input
            .scenario
            .workload
            .queries
            .iter()
            .map(|q| q.name.clone())
            .collect(),
        tables: input.tables.clone(),
        sized: sized_tables(input.scenario),
        poll: WAIT_POLL,
        sample: SERVER_SAMPLE,
        server_log: input.server_log.clone(),
        stop: sh.stop.clone(),
    })
    .await
}

/// What app traffic needs: the database, the workload, the run's clock and
/// tokens, and where its latency goes.
pub struct TrafficCtx<'a> {
    pub conn: &'a ConnInfo,
    pub plan: &'a crate::scenario::WorkloadPlan,
    pub clock: Clock,
    pub seed: u64,
    pub live: watch::Receiver<Arc<Vec<u16>>>,
    pub stop: CancellationToken,
    pub abort: CancellationToken,
    pub pids: PidRegistry,
    pub marks: Arc<SegmentMarks>,
    pub stats: Arc<crate::latency::LiveStats>,
    /// Where the clients log their requests (from [`Registry::new`] on the
    /// run's clock).
    pub requests: Registry,
    /// Set when a session of the workload cannot connect mid-run.
    pub lost: SessionLost,
    /// The latency recorder streams latency.csv, inflight.csv and
    /// latency.hdr here.
    pub run_dir: &'a std::path::Path,
}

/// The app clients and the recorder of their latencies (public for the
/// benchmarks, which drive traffic without a migration).
pub struct Traffic {
    workload: Workload,
    recorder: JoinHandle<Result<Recorded>>,
    finish: CancellationToken,
}

impl Traffic {
    /// Start the recorder, connect every client, start sending.
    pub async fn start(ctx: TrafficCtx<'_>) -> Result<Traffic> {
        let recording = ctx.requests;
        let files = LatencyFiles::create(ctx.run_dir, ctx.clock.start_wall())?;
        let recorder = LatencyRecorder::new(
            ctx.plan.window,
            crate::workload::labels(ctx.plan),
            recording.clone(),
            ctx.marks,
            files,
            ctx.stats,
        );
        let finish = CancellationToken::new();
        let recorder = tokio::spawn(recorder.run(finish.clone()));
        let workload = Workload::start(WorkloadCtx {
            conn: ctx.conn.clone(),
            plan: ctx.plan.clone(),
            clock: ctx.clock,
            seed: ctx.seed,
            live: ctx.live,
            stop: ctx.stop,
            abort: ctx.abort,
            recording,
            pids: ctx.pids,
            lost: ctx.lost,
        })
        .await;
        match workload {
            Ok(workload) => Ok(Traffic {
                workload,
                recorder,
                finish,
            }),
            Err(e) => {
                finish.cancel();
                let _ = recorder.await;
                Err(e)
            }
        }
    }

    /// After `stop` was cancelled: let in-flight queries finish (cancelling
    /// them through `abort` after `DRAIN_WAIT`), then close every window.
    pub async fn stop(self, abort: &CancellationToken) -> Result<Recorded> {
        let join = self.workload.join();
        tokio::pin!(join);
        if tokio::time::timeout(DRAIN_WAIT, &mut join).await.is_err() {
            tracing::info!("traffic did not drain in {DRAIN_WAIT:?}: cancelling it");
            abort.cancel();
            // Cancelled queries return at once; a connection that does not
            // is left behind rather than holding the report back.
            let _ = tokio::time::timeout(DRAIN_WAIT, &mut join).await;
        }
        self.finish.cancel();
        self.recorder.await.map_err(anyhow::Error::new)?
    }
}
