//! Seeding speed against `pgbench -i`, side by side on the same server.
//!
//! `cargo bench --bench seed` seeds a pgbench_accounts-shaped table (2M rows
//! at the default scale 20, plus pgbench's branches/tellers/history) with
//! pgrehearse and runs `pgbench -i -s 20 -I dtgvp` into a second database on
//! the same server, alternating, and prints medians and their ratio.
//!
//! Both sides do the same work: drop, create without keys, load, vacuum, add
//! primary keys after loading (pgbench's `p` step ↔ our `after_seed`).
//! pgrehearse additionally freezes (VACUUM (FREEZE, ANALYZE)).
//!
//! Environment:
//! - PGREHEARSE_BENCH_URL: an existing server (a scratch database and a
//!   pgbench database are created on it and dropped); else a local cluster.
//! - PGREHEARSE_BENCH_RUNS (5), PGREHEARSE_BENCH_SCALE (20),
//!   PGREHEARSE_BENCH_MODES (`auto,parallel`: the load modes to time).
//!
//! A plain main rather than criterion's sampler: one sample takes seconds and
//! the point is the ratio against an external program, measured in
//! alternation so both sides see the same machine noise.

use std::process::Command;
use std::time::{Duration, Instant};

use pgrehearse::backend::{Backend, BackendOptions, ConnInfo};
use pgrehearse::scenario::{ColumnPlan, Gen, Scenario, TablePlan};
use pgrehearse::seed::{self, LoadMode, SeedOptions};

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// pgbench's four tables, filled the way `pgbench -i` fills them: accounts
/// with an empty (blank-padded) filler and zero balances; branches and
/// tellers with NULL fillers; history empty.
fn pgbench_shape(scale: u64) -> Scenario {
    let table = |name: &str, rows: u64, create: &str, pk: &str, columns| TablePlan {
        name: name.into(),
        rows,
        create: Some(create.into()),
        after_seed: vec![format!("ALTER TABLE {name} ADD PRIMARY KEY ({pk})")],
        columns,
    };
    let tables = vec![
        table(
            "pgbench_branches",
            scale,
            "CREATE TABLE pgbench_branches (bid int NOT NULL, bbalance int, filler char(88)) \
             WITH (fillfactor = 100)",
            "bid",
            vec![
                ColumnPlan::new("bid", Gen::Sequence { start: 1 }),
                ColumnPlan::new("bbalance", Gen::Constant { value: "0".into() }),
            ],
        ),
        table(
            "pgbench_tellers",
            scale * 10,
            "CREATE TABLE pgbench_tellers (tid int NOT NULL, bid int, tbalance int, \
             filler char(84)) WITH (fillfactor = 100)",
            "tid",
            vec![
                ColumnPlan::new("tid", Gen::Sequence { start: 1 }),
                ColumnPlan::new(
                    "bid",
                    Gen::ForeignKey {
                        table: "pgbench_branches".into(),
                        rows: scale,
                    },
                ),
                ColumnPlan::new("tbalance", Gen::Constant { value: "0".into() }),
            ],
        ),
        table(
            "pgbench_accounts",
            scale * 100_000,
            "CREATE TABLE pgbench_accounts (aid int NOT NULL, bid int, abalance int, \
             filler char(84)) WITH (fillfactor = 100)",
            "aid",
            vec![
                ColumnPlan::new("aid", Gen::Sequence { start: 1 }),
                ColumnPlan::new(
                    "bid",
                    Gen::ForeignKey {
                        table: "pgbench_branches".into(),
                        rows: scale,
                    },
                ),
                ColumnPlan::new("abalance", Gen::Constant { value: "0".into() }),
                ColumnPlan::new("filler", Gen::Constant { value: "".into() }),
            ],
        ),
        TablePlan {
            name: "pgbench_history".into(),
            rows: 0,
            create: Some(
                "CREATE TABLE pgbench_history (tid int, bid int, aid int, delta int, \
                 mtime timestamp, filler char(22))"
                    .into(),
            ),
            after_seed: vec![],
            columns: vec![],
        },
    ];
    Scenario::seed_only("pgbench-shape", tables)
}

async fn client(conn: &ConnInfo, db: &str) -> tokio_postgres::Client {
    conn.connect_to(db, "pgrehearse-bench")
        .await
        .unwrap_or_else(|e| panic!("connect to {}: {e}", conn.redacted()))
}

/// `pgbench -i -s SCALE -I dtgvp` into `db`, timed as a whole process.
fn pgbench_init(conn: &ConnInfo, db: &str, scale: u64) -> Duration {
    let mut cmd = Command::new("pgbench");
    cmd.args(["-i", "-q", "-s", &scale.to_string(), "-I", "dtgvp"])
        .args([
            "-h",
            &conn.host,
            "-p",
            &conn.port.to_string(),
            "-U",
            &conn.user,
            db,
        ]);
    if let Some(p) = &conn.password {
        cmd.env("PGPASSWORD", p);
    }
    let start = Instant::now();
    let out = cmd.output().expect("run pgbench (is it on PATH?)");
    let took = start.elapsed();
    assert!(
        out.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    took
}

async fn pgrehearse_seed(conn: &ConnInfo, plan: &Scenario, mode: LoadMode) -> Duration {
    let c = client(conn, &conn.dbname).await;
    let start = Instant::now();
    // pgbench's `d` step is inside its timing: ours too.
    c.batch_execute(
        "DROP TABLE IF EXISTS pgbench_accounts, pgbench_branches, pgbench_tellers, pgbench_history",
    )
    .await
    .unwrap();
    let opts = SeedOptions {
        load: mode,
        ..SeedOptions::new(42)
    };
    let report = seed::seed_with(conn, plan, &opts).await.expect("seed");
    let took = start.elapsed();
    println!(
        "    create+load {}, after_seed {}, vacuum {}, {} MB of COPY data",
        secs(report.load),
        secs(report.sql),
        secs(report.vacuum),
        report.bytes >> 20
    );
    assert_eq!(
        report.total_rows(),
        plan.tables.iter().map(|t| t.rows).sum::<u64>()
    );
    took
}

fn median(xs: &mut [Duration]) -> Duration {
    xs.sort();
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2
    }
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // that is not the time for a minutes-long benchmark.
    if !std::env::args().any(|a| a == "--bench") {
        println!("seed bench: run it with `cargo bench --bench seed`");
        return;
    }
    let runs: usize = env_or("PGREHEARSE_BENCH_RUNS", 5);
    let scale: u64 = env_or("PGREHEARSE_BENCH_SCALE", 20);
    let modes: Vec<LoadMode> = std::env::var("PGREHEARSE_BENCH_MODES")
        .unwrap_or_else(|_| "auto,parallel".into())
        .split(',')
        .map(|m| match m.trim() {
            "auto" => LoadMode::Auto,
            "freeze" => LoadMode::Freeze,
            "parallel" => LoadMode::Parallel,
            other => panic!("PGREHEARSE_BENCH_MODES: unknown mode {other:?}"),
        })
        .collect();
    let url = std::env::var("PGREHEARSE_BENCH_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let opts = match url {
        Some(url) => BackendOptions::url(&url),
        None => BackendOptions::local(&[]),
    };
    let target = Backend::start(&opts).await.expect("a server for the bench");
    let conn = target.conn().clone();
    let pgbench_db = format!("{}_pgbench", conn.dbname);
    let admin = client(&conn, &conn.dbname).await;
    admin
        .batch_execute(&format!("CREATE DATABASE \"{pgbench_db}\""))
        .await
        .unwrap();
    let version: String = admin
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    let plan = pgbench_shape(scale);
    println!(
        "seed bench: {} pgbench_accounts rows (scale {scale}), {runs} runs + 1 warm-up, \
         PostgreSQL {version} on {}, {} CPUs",
        scale * 100_000,
        target.describe(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
    );

    let mut ours: Vec<Vec<Duration>> = vec![Vec::new(); modes.len()];
    let mut theirs = Vec::new();
    for run in 0..=runs {
        let warm = run == 0;
        for (i, mode) in modes.iter().enumerate() {
            admin.batch_execute("CHECKPOINT").await.unwrap();
            let d = pgrehearse_seed(&conn, &plan, *mode).await;
            println!(
                "  run {run}{}: pgrehearse ({mode:?}) {}",
                if warm { " (warm-up)" } else { "" },
                secs(d)
            );
            if !warm {
                ours[i].push(d);
            }
        }
        admin.batch_execute("CHECKPOINT").await.unwrap();
        let d = pgbench_init(&conn, &pgbench_db, scale);
        println!(
            "  run {run}{}: pgbench -i {}",
            if warm { " (warm-up)" } else { "" },
            secs(d)
        );
        if !warm {
            theirs.push(d);
        }
    }

    let base = median(&mut theirs);
    println!("\n| what | median | min | max | vs pgbench |");
    println!("|---|---|---|---|---|");
    for (mode, xs) in modes.iter().zip(ours.iter_mut()) {
        let m = median(xs);
        println!(
            "| pgrehearse seed ({}) | {} | {} | {} | {:.2}× |",
            format!("{mode:?}").to_lowercase(),
            secs(m),
            secs(xs[0]),
            secs(xs[xs.len() - 1]),
            m.as_secs_f64() / base.as_secs_f64()
        );
    }
    println!(
        "| pgbench -i -s {scale} -I dtgvp | {} | {} | {} | 1.00× |",
        secs(base),
        secs(theirs[0]),
        secs(theirs[theirs.len() - 1])
    );

    admin
        .batch_execute(&format!("DROP DATABASE \"{pgbench_db}\" WITH (FORCE)"))
        .await
        .unwrap();
    drop(admin);
    target.teardown().await.expect("teardown");
}
