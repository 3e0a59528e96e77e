//! The load driver against pgbench: select-only, closed loop, 8 clients on
//! a pgbench_accounts table of 2M rows (`pgbench -i -s 20`), on the same
//! server, side by side.
//!
//! Each pair runs `pgbench -S -M prepared -c 8 -j 2 -T SECS -n` and
//! pgrehearse's own driver — the real app connections, the real latency
//! recorder (every request in its histograms, latency.hdr written) and the
//! observers polling as in a rehearsal — with the same query
//! (`SELECT abalance FROM pgbench_accounts WHERE aid = $1`, aid uniform in
//! 1..=scale×100,000, prepared) for the same time, in alternating order so
//! both see the same machine noise. It reports the medians, their ratio and
//! a paired-bootstrap 95% interval; then three open-loop checks, each at
//! 90% of a closed-loop run just before it (the machine's speed drifts
//! between runs), to check the schedule is kept at that rate.
//!
//! `cargo bench --bench load` (a local cluster), `-- --tuned` for a server
//! with shared_buffers=1GB and max_wal_size=8GB. Environment:
//! PGREHEARSE_BENCH_URL (an existing server instead; its settings are its
//! own), PGREHEARSE_BENCH_PAIRS (10), PGREHEARSE_BENCH_SECS (10),
//! PGREHEARSE_BENCH_SCALE (20). Needs `pgbench` on PATH. Raw runs go to
//! benches/results/load/<UTC time>-<server>.csv, the environment and the
//! summary beside it (.txt). Without `--bench` (`cargo test --all-targets`)
//! it exits at once.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use pgrehearse::backend::{Backend, BackendOptions, ConnInfo};
use pgrehearse::scenario::{ColumnGen, Gen, IntDist, QueryPlan, WorkloadPlan};

const CLIENTS: u32 = 8;
const PGBENCH_THREADS: u32 = 2;
/// Each open-loop check runs at this fraction of the closed-loop run
/// just before it.
const OPEN_LOOP_FRACTION: f64 = 0.9;
const OPEN_LOOP_CHECKS: usize = 3;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// pgbench's select-only transaction as a pgrehearse workload.
fn select_only(accounts: i64, rate: Option<f64>) -> WorkloadPlan {
    WorkloadPlan {
        clients: CLIENTS,
        rate,
        before: Duration::ZERO,
        after: Duration::ZERO,
        window: Duration::from_millis(100),
        query_timeout: None,
        queries: vec![QueryPlan {
            name: "select_only".into(),
            weight: 1,
            apps: vec!["app".into()],
            sql: "SELECT abalance FROM pgbench_accounts WHERE aid = $1".into(),
            params: vec![ColumnGen {
                kind: Gen::Int {
                    min: 1,
                    max: accounts,
                    dist: IntDist::Uniform,
                    s: 1.0,
                },
                null_fraction: 0.0,
            }],
        }],
        scripts: vec![],
    }
}

/// One CSV row of a pgrehearse run: closed loop, or open at `rate`.
fn our_row(
    csv: &mut String,
    pair: &str,
    order: u32,
    secs: u64,
    rate: Option<f64>,
    m: &common::Measured,
) {
    let (mode, rate) = match rate {
        Some(r) => ("open", format!("{r:.0}")),
        None => ("closed", String::new()),
    };
    let _ = writeln!(
        csv,
        "{pair},{order},pgrehearse,{mode},{secs},{rate},{:.1},,{:.3},{:.3},{:.2}",
        m.qps, m.p50_ms, m.p99_ms, m.cpu_us_per_request
    );
}

/// `pgbench -i -s SCALE` into the work database.
fn pgbench_init(conn: &ConnInfo, scale: u64) {
    let out = common::pgbench(conn)
        .args(["-i", "-q", "-s", &scale.to_string(), &conn.dbname])
        .output()
        .expect("run pgbench (is it on PATH?)");
    assert!(
        out.status.success(),
        "pgbench -i failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What one pgbench run reported.
struct PgbenchRun {
    tps: f64,
    latency_avg_ms: f64,
    /// pgbench's CPU time per transaction, µs.
    cpu_us_per_request: f64,
}

fn number_after(text: &str, key: &str) -> Option<f64> {
    let rest = &text[text.find(key)? + key.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

fn pgbench_select_only(conn: &ConnInfo, secs: u64) -> PgbenchRun {
    let cpu = common::cpu_time(true);
    let out = common::pgbench(conn)
        .args(["-S", "-M", "prepared", "-n"])
        .args([
            "-c",
            &CLIENTS.to_string(),
            "-j",
            &PGBENCH_THREADS.to_string(),
        ])
        .args(["-T", &secs.to_string(), &conn.dbname])
        .output()
        .expect("run pgbench");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "pgbench failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cpu = common::cpu_time(true).saturating_sub(cpu);
    let transactions =
        number_after(&text, "number of transactions actually processed: ").unwrap_or(f64::NAN);
    PgbenchRun {
        tps: number_after(&text, "tps = ").expect("pgbench printed tps"),
        latency_avg_ms: number_after(&text, "latency average = ").unwrap_or(f64::NAN),
        cpu_us_per_request: cpu.as_secs_f64() * 1e6 / transactions,
    }
}

fn command_line(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("({cmd}: {e})"))
}

/// Machine, versions and settings, for the record.
fn environment(server: &str, version: &str, settings: &[(String, String)]) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("?")
        .trim()
        .to_string();
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "machine: {cpu}, {} CPUs, {}\nkernel: {}\nload average at start: {}\nPostgreSQL {version} ({server}), settings: {}\n{}\nrustc: {}\npgrehearse {} (release profile: cargo bench)\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem.split_whitespace().skip(1).collect::<Vec<_>>().join(" "),
        command_line("uname", &["-r"]),
        load.trim(),
        if settings.is_empty() {
            "the server's defaults".to_string()
        } else {
            settings
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        },
        command_line("pgbench", &["--version"]),
        command_line("rustc", &["--version"]),
        env!("CARGO_PKG_VERSION"),
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("load bench: run it with `cargo bench --bench load` (-- --tuned)");
        return;
    }
    let tuned = std::env::args().any(|a| a == "--tuned")
        || std::env::var("PGREHEARSE_BENCH_TUNED").is_ok_and(|v| v == "1");
    let pairs: usize = env_or("PGREHEARSE_BENCH_PAIRS", 10);
    let secs: u64 = env_or("PGREHEARSE_BENCH_SECS", 10);
    let scale: u64 = env_or("PGREHEARSE_BENCH_SCALE", 20);
    let url = std::env::var("PGREHEARSE_BENCH_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let settings: Vec<(String, String)> = if tuned {
        vec![
            ("shared_buffers".into(), "1GB".into()),
            ("max_wal_size".into(), "8GB".into()),
        ]
    } else {
        vec![]
    };
    let options = match &url {
        Some(url) => BackendOptions::url(url),
        None => BackendOptions {
            settings: settings.clone(),
            ..BackendOptions::local(&[])
        },
    };
    let target = Backend::start(&options)
        .await
        .expect("a server for the bench");
    let conn = target.conn().clone();
    let admin = conn.connect("pgrehearse-bench").await.expect("connect");
    let version: String = admin
        .query_one("SHOW server_version", &[])
        .await
        .unwrap()
        .get(0);
    let server = match (&url, tuned) {
        (Some(_), _) => "url",
        (None, true) => "tuned",
        (None, false) => "default",
    };
    let env = environment(&target.describe(), &version, &settings);
    println!("load bench: {pairs} pairs × {secs} s, scale {scale}\n{env}");
    pgbench_init(&conn, scale);
    admin.batch_execute("CHECKPOINT").await.unwrap();
    let accounts = (scale * 100_000) as i64;
    let closed = select_only(accounts, None);
    let tables = ["pgbench_accounts"];

    // Warm-up (caches, the driver's threads): not counted.
    pgbench_select_only(&conn, 3);
    common::drive(&conn, &closed, &tables, common::Observe::Idle, 3.0).await;

    let mut csv = String::from(
        "pair,order,tool,mode,seconds,intended_qps,qps,latency_avg_ms,p50_ms,p99_ms,client_cpu_us_per_request\n",
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    let (mut ours_cpu, mut theirs_cpu) = (Vec::new(), Vec::new());
    for pair in 0..pairs {
        let pgbench_first = pair % 2 == 0;
        for order in 1..=2 {
            if (order == 1) == pgbench_first {
                let r = pgbench_select_only(&conn, secs);
                println!(
                    "pair {pair}: pgbench    {:>9.0} tps (client CPU {:.1} µs per transaction)",
                    r.tps, r.cpu_us_per_request
                );
                let _ = writeln!(
                    csv,
                    "{pair},{order},pgbench,closed,{secs},,{:.1},{:.3},,,{:.2}",
                    r.tps, r.latency_avg_ms, r.cpu_us_per_request
                );
                theirs.push(r.tps);
                theirs_cpu.push(r.cpu_us_per_request);
            } else {
                let m = common::drive(&conn, &closed, &tables, common::Observe::Idle, secs as f64)
                    .await;
                println!(
                    "pair {pair}: pgrehearse {:>9.0} q/s (p50 {:.3} ms, p99 {:.3} ms; client CPU {:.1} µs per request)",
                    m.qps, m.p50_ms, m.p99_ms, m.cpu_us_per_request
                );
                our_row(&mut csv, &pair.to_string(), order, secs, None, &m);
                ours.push(m.qps);
                ours_cpu.push(m.cpu_us_per_request);
            }
        }
    }
    let (mo, mt) = (common::median(&ours), common::median(&theirs));
    let (lo, hi) = common::ratio_interval(&ours, &theirs);

    // The open-loop checks: each at 90 % of a closed-loop run just before
    // it, so its rate is what the machine gives at that moment (its speed
    // drifts ±15 % between runs, and a rate above it only builds a backlog).
    let mut achieved = Vec::new();
    let mut open_cpu = Vec::new();
    for check in 0..OPEN_LOOP_CHECKS {
        let before =
            common::drive(&conn, &closed, &tables, common::Observe::Idle, secs as f64).await;
        let rate = (before.qps * OPEN_LOOP_FRACTION).round();
        let open = common::drive(
            &conn,
            &select_only(accounts, Some(rate)),
            &tables,
            common::Observe::Idle,
            secs as f64,
        )
        .await;
        println!(
            "open-loop check {check}: closed {:.0} q/s, then open at {rate:.0}/s: {:.0} q/s \
             ({:.4} of the rate, p99 {:.3} ms; client CPU {:.1} µs per request)",
            before.qps,
            open.qps,
            open.qps / rate,
            open.p99_ms,
            open.cpu_us_per_request
        );
        let label = format!("open-{check}");
        our_row(&mut csv, &label, 1, secs, None, &before);
        our_row(&mut csv, &label, 2, secs, Some(rate), &open);
        achieved.push(open.qps / rate);
        open_cpu.push(open.cpu_us_per_request);
    }

    let summary = format!(
        "| what | median | | client CPU per request |\n|---|---:|---:|---:|\n\
         | pgbench -S -M prepared -c {CLIENTS} -j {PGBENCH_THREADS} | {mt:.0} tps | 1.00× | {:.1} µs |\n\
         | pgrehearse driver, closed loop, {CLIENTS} clients, recorder + observers | {mo:.0} q/s | {:.3}× (95% CI {lo:.3}–{hi:.3}) | {:.1} µs |\n\
         | pgrehearse driver, open loop at {:.0}% of the closed-loop run before it, {OPEN_LOOP_CHECKS} checks | median {:.4} of the rate (range {:.4}–{:.4}) | | {:.1} µs |\n\
         {pairs} pairs × {secs} s, alternating; scale {scale} ({accounts} accounts)\n",
        common::median(&theirs_cpu),
        mo / mt,
        common::median(&ours_cpu),
        OPEN_LOOP_FRACTION * 100.0,
        common::median(&achieved),
        achieved.iter().copied().fold(f64::INFINITY, f64::min),
        achieved.iter().copied().fold(0.0, f64::max),
        common::median(&open_cpu),
    );
    println!("\n{summary}");

    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/results/load");
    std::fs::create_dir_all(&dir).unwrap();
    let stem = format!("{}-{server}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    std::fs::write(dir.join(format!("{stem}.csv")), csv).unwrap();
    let cmd = std::env::args().skip(1).collect::<Vec<_>>().join(" ");
    std::fs::write(
        dir.join(format!("{stem}.txt")),
        format!("cargo bench --bench load {cmd}\n{env}\n{summary}"),
    )
    .unwrap();
    println!("raw runs: {}", dir.join(format!("{stem}.csv")).display());
    drop(admin);
    target.teardown().await.expect("teardown");
}
