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
    /// long UPDATE): the held-lock poller times its waits (backing off to
    /// every 16 ms after its first 100 ms).
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

/// Run `plan`'s traffic (app version index 0 live) for `secs`, the observers
/// polling as in a rehearsal when `observe`; the recorder writes its files
/// into a temporary run directory as it would in a rehearsal.
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
    let Rig {
        clock,
        stop,
        requests,
        dir,
        admin,
    } = Rig::new(conn).await;
    let observer = if observe != Observe::Off {
        let ctx = ObserverSetup::read(&admin, conn, clock, tables, &requests).await;
        Some(ctx.start(observe, stop.clone()).await)
    } else {
        None
    };
    if let Some(mode) = hold {
        stand_in_lock(&admin, tables[0], mode).await;
    }
    let cpu = cpu_time(false);
    let (traffic, _live) = start_traffic(conn, plan, clock, &stop, &requests, dir.path()).await;
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

/// One slice of a [`drive_sliced`] run.
#[derive(Debug, Clone, Copy)]
pub struct Slice {
    pub pair: usize,
    /// 0 if it ran first in its pair.
    pub order: usize,
    pub observed: bool,
    /// Its span on the run's clock, whole latency windows.
    pub from_ms: f64,
    pub to_ms: f64,
    /// Its requests are counted from here on (whole windows too): its
    /// first quarter holds the observers' start or the previous slice's
    /// observers' finish.
    pub counted_from_ms: f64,
    /// Requests completed from `counted_from_ms` to `to_ms`.
    pub requests: u64,
}

impl Slice {
    pub fn qps(&self) -> f64 {
        self.requests as f64 * 1e3 / (self.to_ms - self.counted_from_ms)
    }
}

/// One long run of `plan`'s traffic with the observers started and stopped
/// every `slice_secs` (rounded to whole latency windows, so that every
/// completed request is counted in the slice it completed in): `pairs`
/// pairs of adjacent slices, one with and one without observers, the order
/// alternating from pair to pair (without-with, with-without, ...) so a
/// steady drift of the machine's speed cancels. The two sides of a pair
/// are a second apart, not the several seconds of [`drive_with`]'s runs,
/// so more of the machine's drift, which scatters those by ±5–10 %, is the
/// same for both. This measures the observers' steady cost: each slice's
/// first quarter is left uncounted, on both sides, because a slice with
/// observers starts them (their connections, the lock poller's first
/// back-to-back polls), which a rehearsal does once per run or statement,
/// and the slice after it waits for them to finish. The stand-in holds `hold` on the first of `tables` all along, on both
/// sides. Also returns the observers' polls, as [`Measured::polls`].
pub async fn drive_sliced(
    conn: &ConnInfo,
    plan: &WorkloadPlan,
    tables: &[&str],
    observe: Observe,
    hold: Option<&str>,
    pairs: usize,
    slice_secs: f64,
) -> (Vec<Slice>, [u64; 3]) {
    let Rig {
        clock,
        stop,
        requests,
        dir,
        admin,
    } = Rig::new(conn).await;
    let setup = ObserverSetup::read(&admin, conn, clock, tables, &requests).await;
    if let Some(mode) = hold {
        stand_in_lock(&admin, tables[0], mode).await;
    }
    let (traffic, _live) = start_traffic(conn, plan, clock, &stop, &requests, dir.path()).await;
    let window_ms = plan.window.as_secs_f64() * 1e3;
    let slice_ms = (slice_secs * 1e3 / window_ms).round().max(2.0) * window_ms;
    let skip_ms = (slice_ms / 4.0 / window_ms).ceil() * window_ms;
    // Half a second of traffic first, uncounted: every client connected.
    let first_ms = ((clock.now_ms() + 500.0) / window_ms).ceil() * window_ms;
    let until = |ms: f64| {
        tokio::time::sleep_until((clock.start_instant() + Duration::from_secs_f64(ms / 1e3)).into())
    };
    let mut slices = Vec::with_capacity(pairs * 2);
    let mut polls = [0; 3];
    for i in 0..pairs * 2 {
        let (pair, order) = (i / 2, i % 2);
        // Pairs 0, 2, 4, ... go without observers first.
        let observed = (order == 1) == (pair % 2 == 0);
        let from_ms = first_ms + i as f64 * slice_ms;
        let to_ms = from_ms + slice_ms;
        until(from_ms).await;
        // Observe::Off: an A/A run, nothing started on either side, to
        // show what the method itself reads into a difference.
        let observer = if observed && observe != Observe::Off {
            let token = CancellationToken::new();
            Some((setup.start(observe, token.clone()).await, token))
        } else {
            None
        };
        until(to_ms).await;
        if let Some(((observer, _), token)) = observer {
            token.cancel();
            let obs = observer.finish().await.expect("the observers");
            for (sum, n) in polls
                .iter_mut()
                .zip([obs.polls, obs.polls_skipped, obs.held_polls])
            {
                *sum += n;
            }
        }
        slices.push(Slice {
            pair,
            order,
            observed,
            from_ms,
            to_ms,
            counted_from_ms: from_ms + skip_ms,
            requests: 0,
        });
    }
    stop.cancel();
    traffic
        .stop(&CancellationToken::new())
        .await
        .expect("the recorder");
    if hold.is_some() {
        admin
            .batch_execute("ROLLBACK")
            .await
            .expect("end the stand-in's lock");
    }
    let rec = RunRecord::read(dir.path()).expect("the recorded run directory");
    // Window starts are whole multiples of the window, as are the slices'
    // bounds: half a window's slack only absorbs their rounding to µs.
    for row in &rec.latency {
        let at = row.window_start_ms + window_ms / 2.0;
        if let Some(slice) = slices
            .iter_mut()
            .find(|s| s.counted_from_ms <= at && at < s.to_ms)
        {
            slice.requests += row.count;
        }
    }
    (slices, polls)
}

/// What a bench run of traffic starts from: its clock, the token that
/// stops it, the registry its requests are logged in, a run directory for
/// the recorder, and the migration's stand-in session (idle: its locks are
/// polled).
struct Rig {
    clock: Clock,
    stop: CancellationToken,
    requests: Registry,
    dir: tempfile::TempDir,
    admin: tokio_postgres::Client,
}

impl Rig {
    async fn new(conn: &ConnInfo) -> Rig {
        let clock = Clock::start();
        Rig {
            clock,
            stop: CancellationToken::new(),
            requests: Registry::new(clock.start_instant()),
            dir: tempfile::tempdir().expect("a temporary run directory"),
            admin: conn
                .connect("pgrehearse-bench")
                .await
                .expect("connect for the observers"),
        }
    }
}

/// What the observers need to know of the run, read once: the server's
/// clock, the migration stand-in's pid, the watched tables' oids.
struct ObserverSetup {
    conn: ConnInfo,
    clock: Clock,
    server_clock: ServerClock,
    pid: i32,
    tables: Vec<u32>,
    requests: Registry,
}

impl ObserverSetup {
    /// `admin` is the migration's stand-in.
    async fn read(
        admin: &tokio_postgres::Client,
        conn: &ConnInfo,
        clock: Clock,
        tables: &[&str],
        requests: &Registry,
    ) -> ObserverSetup {
        let server_clock = ServerClock::measure(admin, &clock)
            .await
            .expect("measure the server clock");
        let pid: i32 = admin
            .query_one("SELECT pg_backend_pid()", &[])
            .await
            .expect("the stand-in's pid")
            .get(0);
        let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
        ObserverSetup {
            conn: conn.clone(),
            clock,
            server_clock,
            pid,
            tables: pgrehearse::pg::table_oids(admin, &names).await,
            requests: requests.clone(),
        }
    }

    /// Start the observers as a rehearsal does, seeing the migration as
    /// `observe` says, until `stop`.
    async fn start(
        &self,
        observe: Observe,
        stop: CancellationToken,
    ) -> (Observer, Arc<MigrationStatus>) {
        let migration = Arc::new(status(observe, self.pid));
        let observer = Observer::start(ObserverCtx {
            conn: self.conn.clone(),
            clock: self.clock,
            server_clock: self.server_clock,
            pids: PidRegistry::default(),
            migration: migration.clone(),
            requests: self.requests.clone(),
            query_names: Default::default(),
            query_list: Vec::new(),
            tables: self.tables.clone(),
            sized: Default::default(),
            poll: WAIT_POLL,
            sample: SERVER_SAMPLE,
            server_log: None,
            stop,
        })
        .await
        .expect("start the observers");
        if matches!(observe, Observe::InStatement | Observe::InTransaction) {
            // The statement is sent: the held-lock poller follows it.
            migration.statement_sent.notify_one();
        }
        (observer, migration)
    }
}

/// The app's traffic and its recorder, app version 0 live, until `stop`;
/// keep the sender that says which version is live (dropped, it would tell
/// the clients the run ended).
async fn start_traffic(
    conn: &ConnInfo,
    plan: &WorkloadPlan,
    clock: Clock,
    stop: &CancellationToken,
    requests: &Registry,
    run_dir: &std::path::Path,
) -> (Traffic, watch::Sender<Arc<Vec<u16>>>) {
    let (live_tx, live) = watch::channel(Arc::new(vec![0u16]));
    let traffic = Traffic::start(TrafficCtx {
        conn,
        plan,
        clock,
        seed: 1,
        live,
        stop: stop.clone(),
        abort: CancellationToken::new(),
        pids: PidRegistry::default(),
        marks: Arc::new(SegmentMarks::new(clock)),
        stats: Arc::default(),
        requests: requests.clone(),
        lost: Default::default(),
        run_dir,
    })
    .await
    .expect("start the traffic");
    (traffic, live_tx)
}

/// The migration's stand-in takes a lock in mode `hold` on `table`, in a
/// transaction it keeps open.
async fn stand_in_lock(admin: &tokio_postgres::Client, table: &str, hold: &str) {
    admin
        .batch_execute(&format!("BEGIN; LOCK TABLE {table} IN {hold} MODE"))
        .await
        .expect("the stand-in's lock");
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
