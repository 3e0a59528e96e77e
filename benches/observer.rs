//! Observer overhead: app throughput at 8 clients, closed loop, with and
//! without the observers (wait poller every 5 ms + server sampler), on one
//! local cluster, alternating runs so drift hits both sides alike.
//!
//! `cargo bench --bench observer` prints the median qps of each side and the
//! ratio, and writes the raw runs to benches/results/observer.csv.
//! Env: OBSERVER_BENCH_RUNS (default 5 per side), OBSERVER_BENCH_SECS (5).

use std::sync::Arc;
use std::time::Duration;

use pgrehearse::backend::{Backend, BackendOptions, ConnInfo};
use pgrehearse::clock::{Clock, ServerClock};
use pgrehearse::observe::{MigrationStatus, Observer, ObserverCtx};
use pgrehearse::rehearsal::{SERVER_SAMPLE, WAIT_POLL};
use pgrehearse::scenario::*;
use pgrehearse::workload::{PidRegistry, Workload, WorkloadCtx};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

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
async fn measure(conn: &ConnInfo, s: &Scenario, observe: bool, secs: f64) -> f64 {
    let clock = Clock::start();
    let stop = CancellationToken::new();
    let (_live_tx, live_rx) = watch::channel(Arc::new(vec![0u16]));
    let (tx, mut rx) = mpsc::channel(65_536);
    let observer = if observe {
        let admin = connect(conn).await;
        let sc = ServerClock::measure(&admin, &clock).await.unwrap();
        Some(
            Observer::start(ObserverCtx {
                conn: conn.clone(),
                clock,
                server_clock: sc,
                pids: PidRegistry::default(),
                migration: Arc::new(MigrationStatus::default()),
                query_names: Default::default(),
                tables: vec!["accounts".into()],
                poll: WAIT_POLL,
                sample: SERVER_SAMPLE,
                server_log: None,
                stop: stop.clone(),
            })
            .await
            .unwrap(),
        )
    } else {
        None
    };
    let w = Workload::start(WorkloadCtx {
        conn: conn.clone(),
        plan: s.workload.clone(),
        clock,
        seed: 1,
        live: live_rx,
        stop: stop.clone(),
        abort: CancellationToken::new(),
        samples: tx,
        pids: PidRegistry::default(),
    })
    .await
    .unwrap();
    let counter = tokio::spawn(async move {
        let mut n = 0u64;
        let mut first = None;
        let mut last = None;
        while let Some(s) = rx.recv().await {
            first.get_or_insert(s.done);
            last = Some(s.done);
            n += 1;
        }
        (n, first, last)
    });
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.cancel();
    w.join().await;
    if let Some(o) = observer {
        o.finish().await.unwrap();
    }
    let (n, first, last) = counter.await.unwrap();
    let span = last.unwrap().duration_since(first.unwrap()).as_secs_f64();
    n as f64 / span
}

async fn connect(conn: &ConnInfo) -> tokio_postgres::Client {
    conn.connect("pgrehearse-bench").await.unwrap()
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; under `cargo test --all-targets` this
    // runs once, briefly, as a smoke test of the bench itself.
    let full = std::env::args().any(|a| a == "--bench");
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(d)
    };
    let runs = if full {
        env("OBSERVER_BENCH_RUNS", 5.0) as usize
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
        let mut with = Vec::new();
        let mut without = Vec::new();
        let mut csv = String::from("run,observers,qps\n");
        // Warm-up, not counted.
        measure(&conn, &s, false, 1.0).await;
        for i in 0..runs {
            // Alternate which side goes first.
            for observe in if i % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            } {
                let qps = measure(&conn, &s, observe, secs).await;
                csv.push_str(&format!("{i},{observe},{qps:.1}\n"));
                eprintln!("run {i} observers={observe}: {qps:.0} qps");
                if observe {
                    with.push(qps)
                } else {
                    without.push(qps)
                }
            }
        }
        let (mw, mo) = (median(&mut with), median(&mut without));
        println!("median qps without observers: {mo:.0}");
        println!("median qps with observers:    {mw:.0}");
        println!(
            "overhead: {:.2}% (ratio with/without = {:.4})",
            (1.0 - mw / mo) * 100.0,
            mw / mo
        );
        assert!(mw > 0.0 && mo > 0.0, "no traffic measured");
        if full {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("observer.csv"), csv).unwrap();
        }
        target.teardown().await.unwrap();
    });
}
