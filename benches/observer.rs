//! Observer overhead: app throughput at 8 clients, closed loop, with and
//! without the observers (wait poller, held-lock poller, server sampler), on
//! one local cluster, in interleaved pairs so drift hits both sides alike.
//!
//! Two modes, each measured in every pair:
//! - `steady`: no migration step runs, so the observers back off (the wait
//!   poll every 5 × 5 ms, the server sample every second);
//! - `step`: a step runs (`MigrationStatus::in_step`), so they poll at full
//!   rate (the wait poll every 5 ms, the server sample every 250 ms).
//!
//! `cargo bench --bench observer` prints, per mode, the median qps of each
//! side, the median of the per-pair ratios with/without and its bootstrap
//! 95% interval, and writes the raw runs to
//! benches/results/observer/<UTC time>.csv (see its README.md).
//! Env: OBSERVER_BENCH_PAIRS (default 10), OBSERVER_BENCH_SECS (5).

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

/// Completed requests per second over `secs` of closed-loop traffic.
async fn measure(conn: &ConnInfo, s: &Scenario, observe: bool, in_step: bool, secs: f64) -> f64 {
    let observe = match (observe, in_step) {
        (false, _) => common::Observe::Off,
        (true, false) => common::Observe::Idle,
        (true, true) => common::Observe::InStep,
    };
    common::drive(conn, &s.workload, &["accounts"], observe, secs)
        .await
        .qps
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

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

const MODES: [(&str, bool); 2] = [("steady", false), ("step", true)];

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
        // Per mode: qps with, without, and each pair's ratio.
        let mut with = [Vec::new(), Vec::new()];
        let mut without = [Vec::new(), Vec::new()];
        let mut ratios = [Vec::new(), Vec::new()];
        let mut csv = String::from("pair,mode,order,observers,secs,qps\n");
        // Warm-up, not counted.
        measure(&conn, &s, false, false, 1.0).await;
        for i in 0..pairs {
            for (m, (mode, in_step)) in MODES.iter().enumerate() {
                // Alternate which side goes first.
                let order = if (i + m) % 2 == 0 {
                    [false, true]
                } else {
                    [true, false]
                };
                let mut pair = [0.0; 2];
                for (k, observe) in order.into_iter().enumerate() {
                    let qps = measure(&conn, &s, observe, *in_step, secs).await;
                    csv.push_str(&format!("{i},{mode},{k},{observe},{secs},{qps:.1}\n"));
                    eprintln!("pair {i} {mode} observers={observe}: {qps:.0} qps");
                    pair[usize::from(observe)] = qps;
                }
                without[m].push(pair[0]);
                with[m].push(pair[1]);
                ratios[m].push(pair[1] / pair[0]);
            }
        }
        for (m, (mode, _)) in MODES.iter().enumerate() {
            let (mw, mo, mr) = (median(&with[m]), median(&without[m]), median(&ratios[m]));
            let (lo, hi) = bootstrap_95(&ratios[m]);
            println!(
                "{mode}: median qps {mo:.0} without, {mw:.0} with observers; \
                 median ratio {mr:.4} (95% bootstrap {lo:.4}..{hi:.4}): \
                 overhead {:.2}% ({:.2}%..{:.2}%), {pairs} pairs of {secs} s",
                (1.0 - mr) * 100.0,
                (1.0 - hi) * 100.0,
                (1.0 - lo) * 100.0,
            );
            assert!(mw > 0.0 && mo > 0.0, "no traffic measured");
        }
        if full {
            let dir =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/observer");
            std::fs::create_dir_all(&dir).unwrap();
            let name = chrono::Utc::now().format("%Y%m%dT%H%M%SZ.csv").to_string();
            std::fs::write(dir.join(&name), csv).unwrap();
            println!("raw runs: benches/results/observer/{name}");
        }
        target.teardown().await.unwrap();
    });
}
