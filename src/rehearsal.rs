//! One rehearsal, start to finish: provision → seed → traffic + migration +
//! observers on one clock → record → report → exit code. Whatever happens
//! (a failed step, a dead server, Ctrl-C), what was recorded is written and
//! everything started is torn down.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, BackendKind, BackendOptions};
use crate::cli::Common;
use crate::clock::{Clock, ServerClock};
use crate::error::{exit, Error, Result};
use crate::latency::{LatencyRecorder, LiveStats};
use crate::migration::{self, CurrentStep, MigrationCtx, MigrationRun};
use crate::observe::{MigrationStatus, Observations, Observer, ObserverCtx};
use crate::record::{self, RunInfo, RunRecord};
use crate::scenario::Scenario;
use crate::workload::{PidRegistry, Workload, WorkloadCtx};

/// Bounded: a recorder that falls behind slows the clients down (which the
/// open-loop schedule then charges as latency) instead of growing memory.
const SAMPLE_QUEUE: usize = 65_536;

/// How often the wait observer polls pg_stat_activity.
pub const WAIT_POLL: Duration = Duration::from_millis(5);
/// How often server.csv gets a sample.
pub const SERVER_SAMPLE: Duration = Duration::from_millis(250);
/// How long the queries after the run (names of oids, invalid indexes) may take.
const LAST_QUERIES_WAIT: Duration = Duration::from_secs(5);

/// SIGINT / SIGTERM → a cancelled token and the signal number.
#[derive(Clone)]
pub struct Signals {
    pub token: CancellationToken,
    pub which: Arc<std::sync::atomic::AtomicI32>,
}

impl Signals {
    /// Must run (inside the runtime) before anything is provisioned: from
    /// here on SIGINT / SIGTERM no longer kill the process outright, so
    /// every teardown runs. The handlers are registered right here, not in
    /// the spawned task, so there is no window where a signal still kills.
    pub fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let s = Signals {
            token: CancellationToken::new(),
            which: Arc::default(),
        };
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return s;
        };
        let c = s.clone();
        tokio::spawn(async move {
            let n = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            };
            c.which.store(n, Ordering::SeqCst);
            // A container removal can take seconds on some storage drivers;
            // the engine completes it without us once requested.
            #[cfg(feature = "docker")]
            crate::backend::docker::stop_waiting_for_removals();
            c.token.cancel();
        });
        s
    }

    fn error(&self) -> Error {
        Error::Interrupted(self.which.load(Ordering::SeqCst).max(libc::SIGINT))
    }
}

/// `pgrehearse run`: every scenario in turn; the worst exit code wins.
pub async fn run_all(
    plans: Vec<Scenario>,
    common: Common,
    budgets: Vec<(String, f64)>,
) -> Result<u8> {
    let signals = Signals::install();
    let mut code = exit::OK;
    for s in &plans {
        code = code.max(run_one(s, &common, &budgets, &signals).await?);
    }
    Ok(code)
}

/// Settings the measurements need, where we own the server. The
/// scenario's own settings win where both name one.
fn harness_settings(s: &Scenario) -> Vec<(String, String)> {
    let clients = s.workload.clients as usize * s.workload.apps().len().max(1);
    let mut out: Vec<(String, String)> = vec![
        ("log_lock_waits".into(), "on".into()),
        ("deadlock_timeout".into(), "10ms".into()),
        ("log_timezone".into(), "UTC".into()),
        ("log_line_prefix".into(), "%m [%p] ".into()),
        (
            "max_connections".into(),
            (clients + s.workload.scripts.len() + 40)
                .max(100)
                .to_string(),
        ),
    ];
    for (k, v) in &s.postgres.settings {
        out.retain(|(hk, _)| hk != k);
        out.push((k.clone(), v.clone()));
    }
    out
}

pub async fn run_one(
    s: &Scenario,
    common: &Common,
    budgets: &[(String, f64)],
    signals: &Signals,
) -> Result<u8> {
    let opts = BackendOptions {
        backend: common.backend,
        image: common.image.clone().or_else(|| s.postgres.image.clone()),
        database_url: common.database_url.clone(),
        version: s.postgres.version.clone(),
        settings: if common.backend == BackendKind::Url {
            s.postgres.settings.clone()
        } else {
            harness_settings(s)
        },
    };
    if !common.quiet {
        eprintln!(
            "pgrehearse: {} — provisioning Postgres ({:?} backend)",
            s.name, common.backend
        );
    }
    let backend = if common.backend == BackendKind::Url {
        // Not raced against a signal: a CREATE DATABASE abandoned mid-way
        // still completes on the server, with nobody left to drop it. The
        // start is short (bounded by the connect timeout); finish it, then
        // tear down.
        let backend = Backend::start(&opts).await?;
        if signals.token.is_cancelled() {
            if let Err(e) = backend.teardown().await {
                eprintln!("pgrehearse: teardown: {e}");
            }
            return Err(signals.error());
        }
        backend
    } else {
        // Dropping a local or docker start tears down what it started.
        tokio::select! {
            t = Backend::start(&opts) => t?,
            _ = signals.token.cancelled() => return Err(signals.error()),
        }
    };
    let result = rehearse(&backend, s, common, budgets, signals).await;
    if let Err(e) = backend.teardown().await {
        eprintln!("pgrehearse: teardown: {e}");
    }
    result
}

async fn rehearse(
    backend: &Backend,
    s: &Scenario,
    common: &Common,
    budgets: &[(String, f64)],
    signals: &Signals,
) -> Result<u8> {
    let conn = backend.conn().clone();
    let run_dir = record::create_run_dir(&common.out, &s.name)?;
    let admin = conn.session("pgrehearse/harness").await?;
    let (version, version_num): (String, String) = {
        let r = admin
            .query_one(
                "SELECT current_setting('server_version'), current_setting('server_version_num')",
                &[],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    let version_num: u32 = version_num.parse().unwrap_or(0);
    let mut info = RunInfo {
        scenario: s.name.clone(),
        scenario_file: s.path.display().to_string(),
        scenario_hash: s.hash.clone(),
        description: s.description.clone(),
        pair: s.pair.clone(),
        variant: s.variant.map(|v| format!("{v:?}").to_lowercase()),
        tool_version: env!("CARGO_PKG_VERSION").to_string(),
        started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        backend: format!("{:?}", backend.kind()).to_lowercase(),
        target: backend.describe(),
        postgres_version: version,
        server_version_num: version_num,
        settings: s.postgres.settings.clone(),
        seed: common.seed,
        rows: s.tables.iter().map(|t| (t.name.clone(), t.rows)).collect(),
        seed_ms: 0.0,
        clients: s.workload.clients,
        rate: s.workload.rate,
        window_ms: s.workload.window.as_secs_f64() * 1e3,
        phases: Vec::new(),
        budget: s.budget.clone(),
        lock_precision_ms: 0.0,
        failure: None,
        end_ms: 0.0,
        steps: Vec::new(),
        invalid_indexes: Vec::new(),
    };
    // A run that ends before the rehearsal proper still gets its report:
    // run.json says why, the CSVs are empty, the summary says what failed.
    let write_partial = |info: &RunInfo, why: &str| {
        let mut info = info.clone();
        info.failure = Some(why.to_string());
        let written = RunRecord {
            info: Some(info),
            ..Default::default()
        }
        .write(&run_dir);
        if written.is_ok() {
            let _ = crate::report::render(
                &run_dir,
                &crate::report::RenderOptions::with_budgets(budgets.to_vec()),
            );
        }
    };

    // Seed.
    let seed_start = std::time::Instant::now();
    let seeded = tokio::select! {
        r = crate::seed::seed(&conn, s, common.seed, !common.quiet) => r,
        _ = signals.token.cancelled() => {
            write_partial(&info, "interrupted while seeding");
            return Err(signals.error());
        }
    };
    match seeded {
        Ok(_) => {}
        // A generator that does not fit its column is the scenario's fault
        // (exit 2); a server that cannot be used is exit 3.
        Err(e @ (Error::Scenario(_) | Error::NoPostgres(_))) => {
            write_partial(&info, &format!("seeding failed: {e}"));
            return Err(e);
        }
        Err(e) => {
            let msg = format!("seeding failed: {e}");
            write_partial(&info, &msg);
            return Err(Error::Rehearsal {
                message: msg,
                report_dir: Some(run_dir),
            });
        }
    }
    info.seed_ms = seed_start.elapsed().as_secs_f64() * 1e3;

    // The rehearsal proper, on one clock.
    let clock = Clock::start();
    info.started_at = clock.started_at();
    let server_clock = ServerClock::measure(&admin, &clock).await?;
    let apps = {
        let a = s.workload.apps();
        if a.is_empty() {
            vec!["app".to_string()]
        } else {
            a
        }
    };
    let app_index: HashMap<String, u16> = apps
        .iter()
        .enumerate()
        .map(|(i, a)| (a.clone(), i as u16))
        .collect();
    let first_live: Vec<u16> = s
        .phases
        .first()
        .map(|p| {
            p.apps
                .iter()
                .filter_map(|a| app_index.get(a).copied())
                .collect()
        })
        .unwrap_or_else(|| (0..apps.len() as u16).collect());
    let (live_tx, live_rx) = watch::channel(Arc::new(first_live));
    let stop = CancellationToken::new();
    let abort = CancellationToken::new();
    let pids = PidRegistry::default();
    let status = Arc::new(MigrationStatus::default());
    let current = Arc::new(CurrentStep::default());
    let live_stats = Arc::new(LiveStats::default());
    let tables: Vec<String> = s.tables.iter().map(|t| t.name.clone()).collect();

    let observer = Observer::start(ObserverCtx {
        conn: conn.clone(),
        clock,
        server_clock,
        pids: pids.clone(),
        migration: status.clone(),
        query_names: s
            .workload
            .queries
            .iter()
            .map(|q| (q.sql.trim().to_string(), q.name.clone()))
            .collect(),
        tables: tables.clone(),
        poll: WAIT_POLL,
        sample: SERVER_SAMPLE,
        server_log: backend.server_log(),
        stop: stop.clone(),
    })
    .await?;

    let (sample_tx, sample_rx) = mpsc::channel(SAMPLE_QUEUE);
    let workload = match Workload::start(WorkloadCtx {
        conn: conn.clone(),
        plan: s.workload.clone(),
        clock,
        seed: common.seed,
        live: live_rx,
        stop: stop.clone(),
        abort: abort.clone(),
        samples: sample_tx,
        pids: pids.clone(),
    })
    .await
    {
        Ok(w) => w,
        Err(e) => {
            stop.cancel();
            abort.cancel();
            let _ = observer.finish().await;
            let msg = format!("the workload could not start: {e}");
            write_partial(&info, &msg);
            return Err(Error::Rehearsal {
                message: msg,
                report_dir: Some(run_dir),
            });
        }
    };
    let recorder = LatencyRecorder::new(
        clock,
        s.workload.window.as_secs_f64() * 1e3,
        workload.labels.clone(),
        live_stats.clone(),
    );
    let recorder = tokio::spawn(recorder.run(sample_rx));

    // A failure anywhere (signal, dead server) cancels `abort`.
    let failure: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    let health = tokio::spawn(watch_health(
        conn.clone(),
        abort.clone(),
        failure.clone(),
        stop.clone(),
    ));
    {
        let abort = abort.clone();
        let tok = signals.token.clone();
        tokio::spawn(async move {
            tok.cancelled().await;
            abort.cancel();
        });
    }
    let progress = (!common.quiet
        && std::io::stdout().is_terminal()
        && std::io::stderr().is_terminal())
    .then(|| {
        spawn_progress(
            current.clone(),
            live_stats.clone(),
            status.clone(),
            stop.clone(),
        )
    });

    // Traffic before the first step.
    current.set("before".into());
    sleep_or(&abort, s.workload.before).await;

    let mut run = if abort.is_cancelled() {
        MigrationRun::default()
    } else {
        let ctx = MigrationCtx {
            conn: conn.clone(),
            phases: s.phases.clone(),
            tables: tables.clone(),
            clock,
            status: status.clone(),
            app_index: app_index.clone(),
            live: live_tx,
            abort: abort.clone(),
            current: current.clone(),
            seed: common.seed,
        };
        match migration::run(ctx).await {
            Ok(r) => r,
            Err(e) => MigrationRun {
                failure: Some(format!("the migration session failed: {e}")),
                ..Default::default()
            },
        }
    };
    // Traffic after the last step (skipped when something failed: the
    // windows still close and the report is still written).
    if run.failure.is_none() && !abort.is_cancelled() {
        current.set("after".into());
        sleep_or(&abort, s.workload.after).await;
    }
    current.set("stopping".into());
    stop.cancel();
    // In-flight queries get a moment to finish, then are cancelled.
    if tokio::time::timeout(Duration::from_secs(3), workload.join())
        .await
        .is_err()
    {
        abort.cancel();
    }
    let recorder = recorder.await.map_err(anyhow::Error::new)?;
    let observations = observer.finish().await.unwrap_or_else(|e| {
        failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(format!("observer: {e}"));
        Observations::default()
    });
    health.abort();
    if let Some(p) = progress {
        p.abort();
    }
    let end_ms = clock.now_ms();

    // Why did we stop early, if we did? A step's own error says most; a
    // signal or a dead server says more than the "interrupted" of the
    // migration it aborted.
    let interrupted = signals.token.is_cancelled();
    let fail = failure
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone()
        .or_else(|| observations.connection_lost.clone());
    if run.failure.is_none() || run.aborted {
        let cancelled = run
            .steps
            .iter()
            .rev()
            .find(|s| s.outcome == "cancelled")
            .map(|s| format!(" (step `{} / {}` was cancelled)", s.phase, s.step))
            .unwrap_or_default();
        if interrupted {
            let sig = if signals.which.load(Ordering::SeqCst) == libc::SIGTERM {
                "SIGTERM"
            } else {
                "SIGINT"
            };
            run.failure = Some(format!("interrupted by {sig}{cancelled}"));
        } else if let Some(f) = fail {
            run.failure = Some(format!("{f}{cancelled}"));
        }
    }

    // Caps that keep a long run's memory bounded: say when one was hit.
    if recorder.errors_dropped > 0 {
        eprintln!(
            "pgrehearse: warning: errors.csv keeps the first {} app errors; {} more are counted in latency.csv only",
            crate::latency::MAX_ERROR_ROWS,
            recorder.errors_dropped
        );
    }
    if observations.waits_dropped > 0 {
        eprintln!(
            "pgrehearse: warning: waits.csv keeps the first {} lock waits; {} more were not recorded",
            crate::observe::MAX_WAIT_ROWS,
            observations.waits_dropped
        );
    }

    // Record.
    // A server that hangs (rather than dies) must not hold the report back.
    let oid_names = tokio::time::timeout(LAST_QUERIES_WAIT, resolve_oids(&admin, &observations))
        .await
        .unwrap_or_default();
    let locks = crate::holds::lock_rows(&run, &observations, &oid_names);
    info.phases = run.phases.clone();
    info.steps = run.steps.clone();
    info.invalid_indexes = tokio::time::timeout(LAST_QUERIES_WAIT, invalid_indexes(&admin))
        .await
        .unwrap_or_default();
    info.end_ms = crate::pg::round3(end_ms);
    info.failure = run.failure.clone();
    info.lock_precision_ms = lock_precision(&server_clock, &observations);
    let mut server = observations.server.clone();
    server.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    let rec = RunRecord {
        info: Some(info),
        statements: run.statements.clone(),
        locks,
        waits: observations.waits.clone(),
        latency: recorder.rows,
        errors: recorder.errors,
        server,
    };
    rec.write(&run_dir)?;

    // Report.
    let summary = crate::report::render(
        &run_dir,
        &crate::report::RenderOptions::with_budgets(budgets.to_vec()),
    )
    .map_err(|e| Error::Rehearsal {
        message: format!("the report could not be rendered: {e}"),
        report_dir: Some(run_dir.clone()),
    })?;
    print_outcome(common, &run_dir, &summary)?;

    if interrupted {
        return Err(signals.error());
    }
    if let Some(f) = run.failure {
        return Err(Error::Rehearsal {
            message: f,
            report_dir: Some(run_dir),
        });
    }
    Ok(summary.exit_code())
}

fn print_outcome(common: &Common, run_dir: &Path, summary: &crate::report::Summary) -> Result<()> {
    if common.json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).map_err(anyhow::Error::new)?
        );
    } else if common.quiet {
        println!("{}", summary.verdict_line());
    } else {
        println!("{}", summary.text());
        println!("report: {}", run_dir.join("index.html").display());
    }
    Ok(())
}

/// `pgrehearse report RUN_DIR`.
pub fn rerender(run_dir: &Path, json: bool, budgets: &[(String, f64)]) -> Result<u8> {
    if !run_dir.join(record::RUN_JSON).exists() {
        return Err(Error::Usage(format!(
            "{}: not a run directory (no {})",
            run_dir.display(),
            record::RUN_JSON
        )));
    }
    let summary = crate::report::render(
        run_dir,
        &crate::report::RenderOptions::with_budgets(budgets.to_vec()),
    )?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&summary).map_err(anyhow::Error::new)?
        );
    } else {
        println!("{}", summary.text());
    }
    Ok(summary.exit_code())
}

async fn sleep_or(abort: &CancellationToken, d: Duration) {
    tokio::select! {
        _ = abort.cancelled() => {}
        _ = tokio::time::sleep(d) => {}
    }
}

/// Notice a dead server within seconds: a trivial query every second on its
/// own connection; two failures in a row end the rehearsal.
async fn watch_health(
    conn: crate::backend::ConnInfo,
    abort: CancellationToken,
    failure: Arc<std::sync::Mutex<Option<String>>>,
    stop: CancellationToken,
) {
    let Ok(client) = conn.connect("pgrehearse/health").await else {
        return;
    };
    let mut misses = 0;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = abort.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(2), client.simple_query("SELECT 1")).await,
            Ok(Ok(_))
        );
        misses = if ok { 0 } else { misses + 1 };
        if misses >= 2 || client.is_closed() {
            failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| {
                    "the server stopped answering (it died or was stopped mid-run)".into()
                });
            abort.cancel();
            return;
        }
    }
}

/// Indexes a failed CONCURRENTLY build left behind.
async fn invalid_indexes(admin: &tokio_postgres::Client) -> Vec<String> {
    match admin
        .query(
            "SELECT indexrelid::regclass::text FROM pg_index WHERE NOT indisvalid ORDER BY 1",
            &[],
        )
        .await
    {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        Err(_) => Vec::new(),
    }
}

async fn resolve_oids(admin: &tokio_postgres::Client, obs: &Observations) -> HashMap<u32, String> {
    let oids: Vec<u32> = obs
        .log_acquired
        .iter()
        .filter_map(|a| a.relation_oid)
        .collect();
    if oids.is_empty() {
        return HashMap::new();
    }
    let mut out = HashMap::new();
    for oid in oids {
        if let Ok(r) = admin
            .query_one("SELECT $1::oid::regclass::text", &[&oid])
            .await
        {
            out.insert(oid, r.get(0));
        }
    }
    out
}

/// How precisely lock grant/release times are known: the clock mapping's
/// uncertainty, plus half a poll interval when a wait's end was only seen by
/// polling.
fn lock_precision(sc: &ServerClock, obs: &Observations) -> f64 {
    let mut p = sc.uncertainty_ms;
    if !obs.migration_waits.is_empty() && obs.log_acquired.is_empty() {
        p += obs.mean_poll_ms / 2.0;
    }
    crate::pg::round3(p.max(0.001))
}

fn spawn_progress(
    current: Arc<CurrentStep>,
    live: Arc<LiveStats>,
    status: Arc<MigrationStatus>,
    stop: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        let mut last = live.completed.load(Ordering::Relaxed);
        let mut last_t = std::time::Instant::now();
        while !stop.is_cancelled() {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = live.completed.load(Ordering::Relaxed);
            let dt = last_t.elapsed().as_secs_f64().max(1e-3);
            let qps = (now - last) as f64 / dt;
            last = now;
            last_t = std::time::Instant::now();
            bar.set_message(format!(
                "{} | {:.0} qps | p99 {:.1} ms | errors {} | waiting backends {}",
                current.get(),
                qps,
                live.last_p99_us.load(Ordering::Relaxed) as f64 / 1e3,
                live.errors.load(Ordering::Relaxed),
                status.waiting_backends.load(Ordering::Relaxed),
            ));
            bar.tick();
        }
        bar.finish_and_clear();
    })
}

/// Where a run directory for `scenario` would go (for messages and tests).
pub fn run_root(out: &Path, scenario: &str) -> PathBuf {
    out.join(scenario)
}
