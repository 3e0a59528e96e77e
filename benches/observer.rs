//! Observer overhead: app throughput at 8 clients, closed loop, with and
//! without the observers (wait poller, held-lock poller, server sampler), on
//! one local cluster, in interleaved pairs so drift hits both sides alike.
//!
//! Four modes, each measured in every pair:
//! - `steady`: no migration step runs, so the observers back off (the wait
//!   poll every 5 × 5 ms, the server sample every second);
//! - `step`: a step runs (`MigrationStatus::in_step`), so they poll at full
//!   rate (the wait poll every 5 ms, the server sample every 250 ms);
//! - `statement`: a statement outside a transaction runs all along too (a
//!   long CREATE INDEX CONCURRENTLY), so the held-lock poller polls; the
//!   migration's stand-in holds a ShareUpdateExclusiveLock on the table, as
//!   the build would, on both sides of the pair;
//! - `transaction`: a statement inside a transaction runs all along (a long
//!   UPDATE), so the held-lock poller times its waits (every 1 ms for its
//!   first 100 ms, then backing off to every 16 ms; every 10 ms until
//!   2026-12-05); the stand-in holds a RowExclusiveLock
//!   on the table on both sides.
//!
//! `cargo bench --bench observer` prints, per mode, the median qps of each
//! side, the median of the per-pair ratios with/without and its bootstrap
//! 95% interval, the CPU per request here and in the server on each side,
//! and writes the raw runs to benches/results/observer/<UTC time>.csv (see
//! its README.md).
//! Then, per mode, the sliced measure ([`common::drive_sliced`]): one run
//! with the observers started and stopped every slice, the median of the
//! adjacent pairs' ratios and its bootstrap interval; raw slices to
//! <UTC time>-slices.csv.
//! Env: OBSERVER_BENCH_PAIRS (default 10), OBSERVER_BENCH_SECS (5),
//! OBSERVER_BENCH_MODES (comma-separated, default all four),
//! OBSERVER_BENCH_SLICE_PAIRS (40), OBSERVER_BENCH_SLICE_SECS (4),
//! OBSERVER_BENCH_AA (set: an A/A sliced run first, starting nothing).

mod common;

use pgrehearse::backend::{Backend, BackendOptions, ConnInfo};
use pgrehearse::scenario::*;

const ROWS: u64 = 100_000;

fn scenario() -> Scenario {
    let key = || ColumnGen {
        kind: Gen::ForeignKey {
            table: "accounts".into(),
            rows: ROWS,
        },
        null_fraction: 0.0,
    };
    let query = |name: &str, weight, sql: &str| QueryPlan {
        name: name.into(),
        weight,
        apps: vec!["app".into()],
        sql: sql.into(),
        params: vec![key()],
    };
    let accounts = TablePlan {
        name: "accounts".into(),
        rows: ROWS,
        create: Some(
            "CREATE TABLE accounts (aid bigint PRIMARY KEY, abalance int NOT NULL)".into(),
        ),
        after_seed: vec![],
        columns: vec![
            ColumnPlan::new("aid", Gen::Sequence { start: 1 }),
            ColumnPlan::new(
                "abalance",
                Gen::Int {
                    min: 0,
                    max: 1000,
                    dist: IntDist::Uniform,
                    s: 1.0,
                },
            ),
        ],
    };
    Scenario {
        workload: WorkloadPlan {
            clients: 8,
            queries: vec![
                query("read", 8, "SELECT abalance FROM accounts WHERE aid = $1"),
                query(
                    "write",
                    2,
                    "UPDATE accounts SET abalance = abalance + 1 WHERE aid = $1",
                ),
            ],
            ..WorkloadPlan::idle()
        },
        ..Scenario::seed_only("observer-bench", vec![accounts])
    }
}

/// One run: completed requests per second over `secs` of closed-loop
/// traffic, and the CPU it cost, µs per request, in this process (driver,
/// recorder, observers' clients) and in the server (every backend and
/// worker: the observers' queries included).
struct Run {
    qps: f64,
    client_us: f64,
    server_us: f64,
    /// Of `server_us`: the observers' own backends (their queries), read
    /// over the middle of the run; the rest of what observers add to the
    /// server is what their reads cost the app's backends.
    observer_backends_us: f64,
    /// The observers' backends and this process's threads, CPU s/s.
    own: OwnCpu,
    /// Wait polls, wait ticks skipped, held-lock polls.
    polls: [u64; 3],
}

async fn measure(
    conn: &ConnInfo,
    server: &Server,
    s: &Scenario,
    observe: bool,
    mode: common::Observe,
    secs: f64,
) -> Run {
    let observe = if observe { mode } else { common::Observe::Off };
    let hold = stand_in_hold(mode);
    let before = server.cpu();
    let (m, own) = tokio::join!(
        common::drive_with(conn, &s.workload, &["accounts"], observe, secs, hold),
        own_cpu(conn, secs),
    );
    // The app's and observers' backends have exited: wait until the
    // postmaster has reaped them (their CPU moves into its children's).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let server_cpu = server.cpu().saturating_sub(before);
    Run {
        qps: m.qps,
        client_us: m.cpu_us_per_request,
        server_us: server_cpu.as_secs_f64() * 1e6 / m.requests.max(1) as f64,
        observer_backends_us: own.backends * 1e6 / m.qps.max(1.0),
        own,
        polls: m.polls,
    }
}

/// The lock the migration's stand-in holds on the table in `mode`, with or
/// without observers: what the statement it stands for would hold.
fn stand_in_hold(mode: common::Observe) -> Option<&'static str> {
    match mode {
        common::Observe::InStatement => Some("SHARE UPDATE EXCLUSIVE"),
        common::Observe::InTransaction => Some("ROW EXCLUSIVE"),
        _ => None,
    }
}

/// The sliced measure of one mode ([`common::drive_sliced`]): one run of
/// `pairs` pairs of adjacent slices; prints the median of the pairs'
/// ratios with its bootstrap interval, appends the slices to `csv`.
async fn sliced(
    conn: &ConnInfo,
    s: &Scenario,
    mode: &str,
    observe: common::Observe,
    pairs: usize,
    slice_secs: f64,
    csv: &mut String,
) {
    let (slices, polls) = common::drive_sliced(
        conn,
        &s.workload,
        &["accounts"],
        observe,
        stand_in_hold(observe),
        pairs,
        slice_secs,
    )
    .await;
    for c in &slices {
        csv.push_str(&format!(
            "{mode},{},{},{},{:.1},{:.1},{:.1},{},{:.1}\n",
            c.pair,
            c.order,
            c.observed,
            c.from_ms,
            c.counted_from_ms,
            c.to_ms,
            c.requests,
            c.qps()
        ));
    }
    let side = |observed: bool| -> Vec<f64> {
        slices
            .iter()
            .filter(|c| c.observed == observed)
            .map(|c| c.qps())
            .collect()
    };
    let (with, without) = (side(true), side(false));
    // Slices are pushed pair by pair, so both sides are in pair order.
    let ratios: Vec<f64> = with.iter().zip(&without).map(|(w, o)| w / o).collect();
    let (lo, hi) = bootstrap_95(&ratios);
    let mr = median(&ratios);
    println!(
        "{mode}, sliced: median qps {:.0} without, {:.0} with observers; median ratio \
         {mr:.4} (95% bootstrap {lo:.4}..{hi:.4}): overhead {:.2}% ({:.2}%..{:.2}%), \
         {pairs} pairs of adjacent {slice_secs} s slices in one run, each counted \
         after its first quarter; wait polls {} \
         ({} ticks skipped), held-lock polls {}",
        median(&without),
        median(&with),
        (1.0 - mr) * 100.0,
        (1.0 - hi) * 100.0,
        (1.0 - lo) * 100.0,
        polls[0],
        polls[1],
        polls[2],
    );
    assert!(
        ratios.iter().all(|r| r.is_finite()),
        "a slice without traffic"
    );
}

/// CPU used over the middle of a run, seconds per second.
#[derive(Default)]
struct OwnCpu {
    /// The observers' own backends (0 without observers: there are none).
    backends: f64,
    /// This process's lock poller thread (`pgrehearse-held-locks`).
    held_thread: f64,
    /// This process's threads other than the app's and the lock poller's:
    /// the runtime the recorder, the wait poller and the server sampler
    /// share. With observers less without is the wait poller's and the
    /// sampler's client side.
    other_threads: f64,
}

/// The CPU the observers' own backends, and this process's threads by
/// kind, use over the middle of a run of `secs`. The backends' pids are
/// looked up once they have connected, and every CPU read from /proc twice,
/// before they exit.
async fn own_cpu(conn: &ConnInfo, secs: f64) -> OwnCpu {
    let admin = conn.connect("pgrehearse-bench").await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs_f64(secs * 0.2)).await;
    let pids: Vec<i32> = admin
        .query(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
            &[&pgrehearse::observe::OBSERVER_APP_NAME],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    let read = || -> [u64; 3] {
        let backends = pids
            .iter()
            .filter_map(|&pid| stat_fields(&format!("/proc/{pid}/stat")))
            .map(|f| f[14 - 3] + f[15 - 3])
            .sum();
        let (mut held, mut other) = (0, 0);
        for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
            let dir = task.path();
            let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
            let Some(f) = stat_fields(&dir.join("stat").to_string_lossy()) else {
                continue;
            };
            let ticks = f[14 - 3] + f[15 - 3];
            // Thread names are cut to 15 bytes: "pgrehearse-held", "pgrehearse-app-".
            match comm.trim() {
                c if c.starts_with("pgrehearse-held") => held += ticks,
                c if c.starts_with("pgrehearse-app") => {}
                _ => other += ticks,
            }
        }
        [backends, held, other]
    };
    let (t0, start) = (read(), std::time::Instant::now());
    tokio::time::sleep(std::time::Duration::from_secs_f64(secs * 0.7)).await;
    let t1 = read();
    let per_s =
        |k: usize| t1[k].saturating_sub(t0[k]) as f64 / 100.0 / start.elapsed().as_secs_f64();
    OwnCpu {
        backends: per_s(0),
        held_thread: per_s(1),
        other_threads: per_s(2),
    }
}

/// The bench's local cluster, for its CPU time.
struct Server {
    postmaster: u32,
}

impl Server {
    async fn find(conn: &ConnInfo) -> Server {
        let c = conn.connect("pgrehearse-bench").await.unwrap();
        let dir: String = c
            .query_one("SELECT current_setting('data_directory')", &[])
            .await
            .unwrap()
            .get(0);
        let pid = std::fs::read_to_string(std::path::Path::new(&dir).join("postmaster.pid"))
            .expect("postmaster.pid of the local cluster");
        Server {
            postmaster: pid.lines().next().unwrap().trim().parse().unwrap(),
        }
    }

    /// CPU time of the whole server so far: the postmaster, its live
    /// children, and the children it has reaped.
    fn cpu(&self) -> std::time::Duration {
        let mut ticks = 0;
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|p| p.parse::<u32>().ok())
            else {
                continue;
            };
            let Some(f) = stat_fields(&format!("/proc/{pid}/stat")) else {
                continue;
            };
            // ppid is field 4; utime, stime 14, 15; cutime, cstime 16, 17.
            let at = |n: usize| f.get(n - 3).copied().unwrap_or(0);
            if pid == self.postmaster {
                ticks += at(14) + at(15) + at(16) + at(17);
            } else if at(4) == u64::from(self.postmaster) {
                ticks += at(14) + at(15);
            }
        }
        // USER_HZ: 100 on Linux.
        std::time::Duration::from_secs_f64(ticks as f64 / 100.0)
    }
}

/// A /proc stat file's numeric fields from the third (state) on.
fn stat_fields(path: &str) -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string(path).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

use common::median;

/// Bootstrap 95% interval of the median of `ratios` (resampling the pairs,
/// 10 000 times, seeded: the same runs give the same interval).
fn bootstrap_95(ratios: &[f64]) -> (f64, f64) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0x0b5e_4e7e);
    let mut medians: Vec<f64> = (0..10_000)
        .map(|_| {
            let sample: Vec<f64> = (0..ratios.len())
                .map(|_| ratios[rng.gen_range(0..ratios.len())])
                .collect();
            median(&sample)
        })
        .collect();
    medians.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| medians[((medians.len() - 1) as f64 * q).round() as usize];
    (at(0.025), at(0.975))
}

/// The whole-run pairs of one mode: throughput with and without observers,
/// the CPU per request, and the observers' own CPU.
fn summarize_pairs(mode: &str, runs: &[Vec<Run>; 2], secs: f64) {
    let pairs = runs[0].len();
    let [without, with] = runs;
    let field = |v: &[Run], f: fn(&Run) -> f64| v.iter().map(f).collect::<Vec<f64>>();
    let ratios: Vec<f64> = with
        .iter()
        .zip(without)
        .map(|(w, o)| w.qps / o.qps)
        .collect();
    let (mw, mo, mr) = (
        median(&field(with, |r| r.qps)),
        median(&field(without, |r| r.qps)),
        median(&ratios),
    );
    let (lo, hi) = bootstrap_95(&ratios);
    println!(
        "{mode}: median qps {mo:.0} without, {mw:.0} with observers; \
         median ratio {mr:.4} (95% bootstrap {lo:.4}..{hi:.4}): \
         overhead {:.2}% ({:.2}%..{:.2}%), {pairs} pairs of {secs} s",
        (1.0 - mr) * 100.0,
        (1.0 - hi) * 100.0,
        (1.0 - lo) * 100.0,
    );
    // The cost in CPU, far less noisy than throughput on a shared
    // machine: what the observers add per request, here and in the
    // server, and as a share of all the CPU a request takes.
    let cpu = |v: &[Run]| {
        (
            median(&field(v, |r| r.client_us)),
            median(&field(v, |r| r.server_us)),
        )
    };
    let ((cw, sw), (co, so)) = (cpu(with), cpu(without));
    let own = median(&field(with, |r| r.observer_backends_us));
    println!(
        "{mode}: CPU per request {co:.1} + {so:.1} µs (here + server) without, \
         {cw:.1} + {sw:.1} µs with observers: {:+.1}% of it; the observers' own \
         backends {own:.2} µs of the server's {:+.2}",
        ((cw + sw) / (co + so) - 1.0) * 100.0,
        sw - so
    );
    // What the observers themselves run, as a share of the
    // machine: their backends, the lock poller's thread, and what
    // the rest of this process (the wait poller's and the sampler's
    // client side) uses more than without them. Measured apart
    // from the throughput, so far less noisy; it leaves out what
    // they cost others indirectly (caches, the lock table's locks).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let own_of =
        |v: &[Run], f: fn(&OwnCpu) -> f64| v.iter().map(|r| f(&r.own)).collect::<Vec<f64>>();
    let extra_other: Vec<f64> = with
        .iter()
        .zip(without)
        .map(|(w, o)| w.own.other_threads - o.own.other_threads)
        .collect();
    let shares: Vec<f64> = with
        .iter()
        .zip(&extra_other)
        .map(|(w, x)| (w.own.backends + w.own.held_thread + x) / cores)
        .collect();
    let (slo, shi) = bootstrap_95(&shares);
    println!(
        "{mode}: the observers' own CPU {:.2}% of the machine's {cores} cores \
         (95% bootstrap {:.2}%..{:.2}%): backends {:.1} ms/s, lock poller \
         thread {:.1} ms/s, other threads {:+.1} ms/s over the runs without",
        median(&shares) * 100.0,
        slo * 100.0,
        shi * 100.0,
        median(&own_of(with, |c| c.backends)) * 1e3,
        median(&own_of(with, |c| c.held_thread)) * 1e3,
        median(&extra_other) * 1e3,
    );
    assert!(mw > 0.0 && mo > 0.0, "no traffic measured");
}

const MODES: [(&str, common::Observe); 4] = [
    ("steady", common::Observe::Idle),
    ("step", common::Observe::InStep),
    ("statement", common::Observe::InStatement),
    ("transaction", common::Observe::InTransaction),
];

fn main() {
    // `cargo bench` passes --bench; under `cargo test --all-targets` this
    // runs one short pair per mode, as a smoke test of the bench itself.
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let pairs = if full {
        env("OBSERVER_BENCH_PAIRS", 10.0) as usize
    } else {
        1
    };
    let secs = if full {
        env("OBSERVER_BENCH_SECS", 5.0)
    } else {
        1.0
    };
    let (slice_pairs, slice_secs) = if full {
        (
            env("OBSERVER_BENCH_SLICE_PAIRS", 40.0) as usize,
            env("OBSERVER_BENCH_SLICE_SECS", 4.0),
        )
    } else {
        (2, 0.5)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let target = Backend::start(&BackendOptions::local(&[]))
            .await
            .expect("a local cluster");
        let conn = target.conn().clone();
        let s = scenario();
        pgrehearse::seed::seed(&conn, &s, 1, false).await.unwrap();
        let server = Server::find(&conn).await;
        // Per mode and side (0 without, 1 with observers): the runs.
        let mut runs: [[Vec<Run>; 2]; MODES.len()] = Default::default();
        let wanted: Vec<String> = std::env::var("OBSERVER_BENCH_MODES")
            .map(|v| v.split(',').map(|m| m.trim().to_string()).collect())
            .unwrap_or_default();
        let measured = |mode: &str| wanted.is_empty() || wanted.iter().any(|w| w == mode);
        let mut csv = String::from(
            "pair,mode,order,observers,secs,qps,client_us_per_request,server_us_per_request,observer_backends_us_per_request,observer_backends_cpu,held_thread_cpu,other_threads_cpu\n",
        );
        // Warm-up, not counted.
        measure(&conn, &server, &s, false, common::Observe::Off, 1.0).await;
        for i in 0..pairs {
            for (m, (mode, observed)) in MODES.iter().enumerate() {
                if !measured(mode) {
                    continue;
                }
                // Alternate which side goes first.
                let order = if (i + m) % 2 == 0 {
                    [false, true]
                } else {
                    [true, false]
                };
                for (k, observe) in order.into_iter().enumerate() {
                    let r = measure(&conn, &server, &s, observe, *observed, secs).await;
                    csv.push_str(&format!(
                        "{i},{mode},{k},{observe},{secs},{:.1},{:.2},{:.2},{:.2},{:.4},{:.4},{:.4}\n",
                        r.qps,
                        r.client_us,
                        r.server_us,
                        r.observer_backends_us,
                        r.own.backends,
                        r.own.held_thread,
                        r.own.other_threads
                    ));
                    eprintln!(
                        "pair {i} {mode} observers={observe}: {:.0} qps, CPU per request {:.1} µs here + {:.1} µs in the server ({:.2} in the observers' backends); wait polls {} ({} ticks skipped), held-lock polls {}",
                        r.qps, r.client_us, r.server_us, r.observer_backends_us, r.polls[0], r.polls[1], r.polls[2]
                    );
                    runs[m][usize::from(observe)].push(r);
                }
            }
        }
        for (m, (mode, _)) in MODES.iter().enumerate() {
            if measured(mode) && pairs > 0 {
                summarize_pairs(mode, &runs[m], secs);
            }
        }
        let mut slices_csv =
            String::from("mode,pair,order,observers,from_ms,counted_from_ms,to_ms,requests,qps\n");
        if std::env::var("OBSERVER_BENCH_AA").is_ok() {
            let off = common::Observe::Off;
            sliced(&conn, &s, "none (A/A)", off, slice_pairs, slice_secs, &mut slices_csv).await;
        }
        for (mode, observed) in MODES {
            if measured(mode) && slice_pairs > 0 {
                sliced(&conn, &s, mode, observed, slice_pairs, slice_secs, &mut slices_csv).await;
            }
        }
        if full {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/observer");
            std::fs::create_dir_all(&dir).unwrap();
            let name = chrono::Utc::now().format("%Y%m%dT%H%M%SZ.csv").to_string();
            std::fs::write(dir.join(&name), csv).unwrap();
            println!("raw runs: benches/results/observer/{name}");
            if slice_pairs > 0 {
                let name = name.replace(".csv", "-slices.csv");
                std::fs::write(dir.join(&name), slices_csv).unwrap();
                println!("raw slices: benches/results/observer/{name}");
            }
        }
        target.teardown().await.unwrap();
    });
}
