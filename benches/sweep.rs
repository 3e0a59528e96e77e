//! The sweep's performance target (issue 9): a 3-size sweep at
//! 100k/400k/1.6M rows finishes within 1.3× the sum of its single runs'
//! rehearsal time plus one seed per size — no needless reseeding.
//!
//! `cargo bench --bench sweep` starts one local cluster and, in each round,
//! runs on it (the real binary, as processes, through the url backend so
//! that neither side pays for provisioning):
//!
//! - `pgrehearse sweep SCENARIO --rows 100k,400k,1.6M`, timed wall-clock;
//! - `pgrehearse run SCENARIO --rows N` for each size, timed wall-clock,
//!   and their run.json read for `seed_ms` (the seed) and `end_ms` (the
//!   rehearsal, traffic included);
//!
//! alternating which goes first from round to round, a `CHECKPOINT` before
//! each process. Per round: the ratio of the sweep's wall time to the sum of
//! the single runs' seed + rehearsal (the target: ≤ 1.3), and to the sum of
//! their wall times. benches/results/sweep/README.md has the commands and
//! the figures; every process is a row of
//! `benches/results/sweep/<UTC stamp>.csv`, the summary goes to `.txt`
//! beside it.
//!
//! Environment: PGREHEARSE_BENCH_SWEEP_ROWS (`100k,400k,1.6M`),
//! PGREHEARSE_BENCH_RUNS (rounds, 3), PGREHEARSE_BENCH_SCENARIO
//! (`scenarios/create-index-naive.toml`), PGREHEARSE_BENCH_TRAFFIC (traffic
//! before and after the migration, e.g. `500ms`; default the scenario's).
//!
//! A plain main rather than criterion's sampler: one sample is a whole
//! sweep (minutes at full size), and the point is a ratio measured in
//! alternation so both sides see the same machine noise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pgrehearse::backend::{BackendKind, ConnInfo};
use pgrehearse::options::ServerOptions;
use pgrehearse::rehearsal::{Server, ServerNeeds};
use pgrehearse::scenario::{self, Overrides};
use pgrehearse::signals::Signals;

/// What one round measured.
struct Round {
    sweep_s: f64,
    /// Per size: (wall s, seed s, rehearsal s).
    runs: Vec<(f64, f64, f64)>,
}

impl Round {
    /// The sweep against the single runs' seed + rehearsal (the target).
    fn ratio(&self) -> f64 {
        self.sweep_s / self.runs.iter().map(|r| r.1 + r.2).sum::<f64>()
    }

    /// The sweep against the single runs' wall time.
    fn wall_ratio(&self) -> f64 {
        self.sweep_s / self.runs.iter().map(|r| r.0).sum::<f64>()
    }
}

/// The bench's settings, from the environment.
struct Plan {
    scenario: PathBuf,
    sizes: String,
    rounds: usize,
    traffic: Option<String>,
}

impl Plan {
    fn from_env() -> Plan {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        Plan {
            scenario: root.join(
                var("PGREHEARSE_BENCH_SCENARIO")
                    .unwrap_or_else(|| "scenarios/create-index-naive.toml".into()),
            ),
            sizes: var("PGREHEARSE_BENCH_SWEEP_ROWS").unwrap_or_else(|| "100k,400k,1.6M".into()),
            rounds: var("PGREHEARSE_BENCH_RUNS")
                .and_then(|v| v.parse().ok())
                .unwrap_or(3),
            traffic: var("PGREHEARSE_BENCH_TRAFFIC"),
        }
    }

    /// `pgrehearse COMMAND SCENARIO` on `url`, writing into `out`.
    fn command(&self, command: &str, url: &str, out: &Path) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgrehearse"));
        cmd.arg(command)
            .arg(&self.scenario)
            .args(["--backend", "url", "--database-url", url, "-q", "--out"])
            .arg(out)
            .env_remove("PGREHEARSE_BACKEND")
            .env_remove("PGREHEARSE_DATABASE_URL");
        if let Some(t) = &self.traffic {
            cmd.args(["--before", t, "--after", t]);
        }
        cmd
    }
}

/// Run `cmd` to its end: its wall time in seconds. A budget breach (exit
/// 1) is the scenario's verdict, not the bench's failure.
fn timed(mut cmd: Command) -> f64 {
    let started = Instant::now();
    let out = cmd.output().expect("run pgrehearse");
    let secs = started.elapsed().as_secs_f64();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{cmd:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

/// The one run.json under `out` (`<out>/<scenario>/<stamp>/run.json`):
/// (seed_ms, end_ms) in seconds.
fn seed_and_rehearsal(out: &Path) -> (f64, f64) {
    let scenario = std::fs::read_dir(out)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let run = std::fs::read_dir(scenario)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(run.join("run.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let secs = |k: &str| json[k].as_f64().unwrap_or_else(|| panic!("run.json {k}")) / 1e3;
    (secs("seed_ms"), secs("end_ms"))
}

async fn checkpoint(conn: &ConnInfo) {
    let c = conn.session("pgrehearse-bench").await.unwrap();
    c.batch_execute("CHECKPOINT").await.unwrap();
}

fn url(c: &ConnInfo) -> String {
    format!(
        "postgres://{}:{}@{}:{}/{}",
        c.user,
        c.password.clone().unwrap_or_default(),
        c.host,
        c.port,
        c.dbname
    )
}

/// One round: the sweep and the single runs, in the order `sweep_first`
/// says; each process's row appended to `csv`.
async fn round(plan: &Plan, n: usize, conn: &ConnInfo, csv: &mut std::fs::File) -> Round {
    let url = url(conn);
    let sizes: Vec<&str> = plan.sizes.split(',').map(str::trim).collect();
    let mut sweep_s = 0.0;
    let mut runs = Vec::new();
    let sweep_first = n % 2 == 0;
    for part in [sweep_first, !sweep_first] {
        if part {
            let out = tempfile::tempdir().unwrap();
            checkpoint(conn).await;
            let mut cmd = plan.command("sweep", &url, out.path());
            cmd.args(["--rows", &plan.sizes]);
            sweep_s = timed(cmd);
            println!("  round {n}: sweep --rows {}: {sweep_s:.2} s", plan.sizes);
            writeln!(csv, "{n},sweep,\"{}\",{sweep_s:.3},,", plan.sizes).unwrap();
        } else {
            for rows in &sizes {
                let out = tempfile::tempdir().unwrap();
                checkpoint(conn).await;
                let mut cmd = plan.command("run", &url, out.path());
                cmd.args(["--rows", rows]);
                let wall = timed(cmd);
                let (seed, rehearsal) = seed_and_rehearsal(out.path());
                println!(
                    "  round {n}: run --rows {rows}: {wall:.2} s (seed {seed:.2} s, rehearsal {rehearsal:.2} s)"
                );
                writeln!(csv, "{n},run,{rows},{wall:.3},{seed:.3},{rehearsal:.3}").unwrap();
                runs.push((wall, seed, rehearsal));
            }
        }
        csv.flush().unwrap();
    }
    Round { sweep_s, runs }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`:
    // nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sweep bench: run it with `cargo bench --bench sweep`");
        return;
    }
    let plan = Plan::from_env();
    let scenario = scenario::load(&plan.scenario, &Overrides::default())
        .unwrap_or_else(|e| panic!("{}: {e}", plan.scenario.display()));
    let opts = ServerOptions::of(BackendKind::Local);
    let server = Server::provision(&opts, &ServerNeeds::of(&scenario), &Signals::default())
        .await
        .expect("a local cluster for the bench");
    let conn = server.site().conn;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/sweep");
    std::fs::create_dir_all(&dir).unwrap();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let csv_path = dir.join(format!("{stamp}.csv"));
    let mut csv = std::fs::File::create(&csv_path).unwrap();
    writeln!(csv, "round,what,rows,seconds,seed_s,rehearsal_s").unwrap();
    println!(
        "sweep bench: {} at {}, {} rounds, on {} CPUs; raw runs in {}",
        plan.scenario.display(),
        plan.sizes,
        plan.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        csv_path.display()
    );
    let mut rounds = Vec::new();
    for n in 0..plan.rounds {
        rounds.push(round(&plan, n, &conn, &mut csv).await);
    }
    server.teardown().await;
    let mut summary = format!(
        "sweep bench {stamp}: {} --rows {}{}\n\n| round | sweep | Σ runs' seed + rehearsal | ratio (target ≤ 1.3) | Σ runs' wall | wall ratio |\n|---|---|---|---|---|---|\n",
        plan.scenario
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        plan.sizes,
        plan.traffic
            .as_ref()
            .map_or(String::new(), |t| format!(" --before {t} --after {t}"))
    );
    for (n, r) in rounds.iter().enumerate() {
        summary.push_str(&format!(
            "| {n} | {:.2} s | {:.2} s | {:.3} | {:.2} s | {:.3} |\n",
            r.sweep_s,
            r.runs.iter().map(|x| x.1 + x.2).sum::<f64>(),
            r.ratio(),
            r.runs.iter().map(|x| x.0).sum::<f64>(),
            r.wall_ratio()
        ));
    }
    summary.push_str(&format!(
        "\nmedian ratio {:.3} (wall {:.3})\n",
        median(rounds.iter().map(Round::ratio).collect()),
        median(rounds.iter().map(Round::wall_ratio).collect())
    ));
    print!("\n{summary}");
    std::fs::write(dir.join(format!("{stamp}.txt")), summary).unwrap();
}
