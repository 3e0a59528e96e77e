//! What the traffic benchmarks (`observer`, `load`) share: pgrehearse's own
//! app traffic — the real driver and the real latency recorder, with or
//! without the observers — driven for a while against a database, and the
//! statistics the benchmarks report.

#![allow(dead_code)] // each bench uses part of it

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use pgrehearse::analyze::latency::facts;
use pgrehearse::backend::ConnInfo;
use pgrehearse::clock::{Clock, ServerClock};
use pgrehearse::latency::{Registry, SegmentMarks};
use pgrehearse::observe::{MigrationStatus, Observer, ObserverCtx};
use pgrehearse::record::RunRecord;
use pgrehearse::rehearsal::{Traffic, TrafficCtx, SERVER_SAMPLE, WAIT_POLL};
use pgrehearse::scenario::WorkloadPlan;
use pgrehearse::workload::PidRegistry;
use rand::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

/// One measured stretch of traffic.
#[derive(Debug, Clone, Copy)]
pub struct Measured {
    /// Completed requests per second, first to last completion.
    pub qps: f64,
    pub requests: u64,
    /// CPU time this process spent per request (driver, recorder,
    /// observers), µs.
    pub cpu_us_per_request: f64,
    /// Over every request (latency.hdr, exact).
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// The observers' reads of the server: wait polls, the wait poller's
    /// ticks that skipped the read (no request old enough to be waiting),
    /// held-lock polls.
    pub polls: [u64; 3],
}

/// Run `plan`'s traffic (app version index 0 live) for `secs`, the observers
/// polling as in a rehearsal when `observe`; the recorder writes its files
/// into a temporary run directory as it would in a rehearsal.
/// Whether observers run beside the traffic, and what they think the
/// migration is doing (they poll faster while a step runs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observe {
    Off,
    Idle,
    InStep,
    /// In a step, a statement running outside a transaction all along (a
    /// long CREATE INDEX CONCURRENTLY): the held-lock poller polls too.
    InStatement,
    /// In a step, a statement running inside a transaction all along (a
    /// long UPDATE): the held-lock poller times its waits (every 10 ms
    /// after its first 100 ms).
    InTransaction,
}

/// The migration's status as the observers see it: in a step or not, in a
/// statement outside a transaction or not (backend `pid`'s).
fn status(observe: Observe, pid: i32) -> MigrationStatus {
    use std::sync::atomic::Ordering::Relaxed;
    let st = MigrationStatus::default();
    let in_statement = matches!(observe, Observe::InStatement | Observe::InTransaction);
    st.in_step
        .store(in_statement || observe == Observe::InStep, Relaxed);
    st.in_statement.store(in_statement, Relaxed);
    st.autocommit
        .store(observe == Observe::InStatement, Relaxed);
    st.pid.store(pid, Relaxed);
    st
}

pub async fn drive(
    conn: &ConnInfo,
    plan: &WorkloadPlan,
    tables: &[&str],
    observe: Observe,
    secs: f64,
) -> Measured {
    drive_with(conn, plan, tables, observe, secs, None).await
}

/// [`drive`], the migration's stand-in holding a lock in mode `hold` on the
/// first of `tables` all along (SHARE UPDATE EXCLUSIVE as CREATE INDEX
/// CONCURRENTLY holds on its table, ROW EXCLUSIVE as an UPDATE does; neither
/// blocks the app's reads and writes). Without a lock to see, the held-lock
/// poller would keep reading every backend's status for the statement's
/// start on each poll, which a real statement stops doing at its first lock.
pub async fn drive_with(
    conn: &ConnInfo,
    plan: &WorkloadPlan,
    tables: &[&str],
    observe: Observe,
    secs: f64,
    hold: Option<&str>,
) -> Measured {
    let clock = Clock::start();
    let stop = CancellationToken::new();
    let requests = Registry::new(clock.start_instant());
    let (_live_tx, live_rx) = watch::channel(Arc::new(vec![0u16]));
    let dir = tempfile::tempdir().expect("a temporary run directory");
    // Stands in for the migration's session (idle: its locks are polled).
    let admin = conn
        .connect("pgrehearse-bench")
        .await
        .expect("connect for the observers");
    let observer = if observe != Observe::Off {
        let server_clock = ServerClock::measure(&admin, &clock)
            .await
            .expect("measure the server clock");
        let pid: i32 = admin
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("the stand-in's pid")
            .get(0);
        let migration = Arc::new(status(observe, pid));
        Some((
            Observer::start(ObserverCtx {
                conn: conn.clone(),
                clock,
                server_clock,
                pids: PidRegistry::default(),
                migration: migration.clone(),
                requests: requests.clone(),
                query_names: Default::default(),
                tables: pgrehearse::pg::table_oids(
                    &admin,
                    &tables.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                )
                .await,
                poll: WAIT_POLL,
                sample: SERVER_SAMPLE,
                server_log: None,
                stop: stop.clone(),
            })
            .await
            .expect("start the observers"),
            migration,
        ))
    } else {
        None
    };
    if let Some((_, migration)) = &observer {
        if matches!(observe, Observe::InStatement | Observe::InTransaction) {
            // The statement is sent: the held-lock poller follows it.
            migration.statement_sent.notify_one();
        }
    }
    if let Some(mode) = hold {
        admin
            .batch_execute(&format!("BEGIN; LOCK TABLE {} IN {mode} MODE", tables[0]))
            .await
            .expect("the stand-in's lock");
    }
    let cpu = cpu_time(false);
    let traffic = Traffic::start(TrafficCtx {
        conn,
        plan,
        clock,
        seed: 1,
        live: live_rx,
        stop: stop.clone(),
        abort: CancellationToken::new(),
        pids: PidRegistry::default(),
        marks: Arc::new(SegmentMarks::new(clock)),
        stats: Arc::default(),
        requests,
        run_dir: dir.path(),
    })
    .await
    .expect("start the traffic");
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.cancel();
    let recorded = traffic
        .stop(&CancellationToken::new())
        .await
        .expect("the recorder");
    let polls = match observer {
        Some((o, _)) => {
            let obs = o.finish().await.expect("the observers");
            [obs.polls, obs.polls_skipped, obs.held_polls]
        }
        None => [0; 3],
    };
    let cpu = cpu_time(false).saturating_sub(cpu);
    if hold.is_some() {
        admin
            .batch_execute("ROLLBACK")
            .await
            .expect("end the stand-in's lock");
    }
    drop(admin);
    let first = recorded.first_done_ns.expect("requests completed");
    let span = (recorded.last_done_ns - first) as f64 / 1e9;
    let rec = RunRecord::read(dir.path()).expect("the recorded run directory");
    let all = facts(&rec, 0.0, f64::INFINITY, None);
    Measured {
        qps: recorded.requests as f64 / span,
        requests: recorded.requests,
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / recorded.requests.max(1) as f64,
        p50_ms: all.p50_ms.unwrap_or(0.0),
        p99_ms: all.p99_ms.unwrap_or(0.0),
        polls,
    }
}

/// CPU time (user + system) of this process (all its threads), or of its
/// children that ended (pgbench), so far: /proc/self/stat, in clock ticks.
pub fn cpu_time(children: bool) -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces): state is
    // field 3, utime 14, stime 15, cutime 16, cstime 17.
    let rest: Vec<u64> = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let at = |field: usize| rest.get(field - 3).copied().unwrap_or(0);
    let ticks = if children {
        at(16) + at(17)
    } else {
        at(14) + at(15)
    };
    Duration::from_secs_f64(ticks as f64 / clock_ticks())
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

pub fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        f64::NAN
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A 95% interval of median(a) / median(b) over pairs (a[i], b[i]):
/// percentile bootstrap, the pairs resampled with replacement 10,000 times
/// (a fixed seed: the same runs give the same interval).
pub fn ratio_interval(a: &[f64], b: &[f64]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(20_261_201);
    let mut ratios: Vec<f64> = (0..10_000)
        .map(|_| {
            let idx: Vec<usize> = (0..n).map(|_| rng.gen_range(0..n)).collect();
            let ra: Vec<f64> = idx.iter().map(|&i| a[i]).collect();
            let rb: Vec<f64> = idx.iter().map(|&i| b[i]).collect();
            median(&ra) / median(&rb)
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    (ratios[249], ratios[9_749])
}

/// `pgbench` pointed at `conn`'s server and user (the database is the
/// caller's last argument).
pub fn pgbench(conn: &ConnInfo) -> Command {
    let mut cmd = Command::new("pgbench");
    cmd.args([
        "-h",
        &conn.host,
        "-p",
        &conn.port.to_string(),
        "-U",
        &conn.user,
    ]);
    if let Some(p) = &conn.password {
        cmd.env("PGPASSWORD", p);
    }
    cmd
}
