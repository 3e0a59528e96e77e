//! Seeding speed against `pgbench -i`, linear scaling, and template clones.
//!
//! `cargo bench --bench seed` runs the pgbench and templates sections; the
//! linear one, which seeds 50M rows and takes minutes, runs when
//! PGREHEARSE_BENCH_SECTIONS names it (benches/results/seed/README.md has
//! the commands, the settings and the figures):
//!
//! - **pgbench**: `pgrehearse seed benches/pgbench-shape.toml --rows N` (the
//!   real binary, as a process) against `pgbench -i -s N/100000 -I dtgvp`,
//!   into two databases of the same server, alternating, on an untuned and
//!   a tuned server (shared_buffers 1GB, max_wal_size 8GB): medians, and
//!   their ratio. Both sides do the same work: drop, create without keys,
//!   load frozen, statistics, primary keys (pgbench's `p` ↔ after_seed).
//! - **linear**: the same seed at several sizes (2M, 50M rows) on the tuned
//!   server: rows per second of each, their ratio, and the client's peak RSS
//!   (`/usr/bin/time -f %M`).
//! - **templates**: the pgbench shape at 1M rows seeded once into a
//!   template (`Server::ensure_template`), then cloned again and again with
//!   STRATEGY FILE_COPY and WAL_LOG alternating: each clone's time against
//!   the seed's.
//!
//! Every run is a row of `benches/results/seed/<UTC stamp>.csv`.
//!
//! Environment: PGREHEARSE_BENCH_RUNS (5), PGREHEARSE_BENCH_ROWS (2M),
//! PGREHEARSE_BENCH_SERVERS (`untuned,tuned`), PGREHEARSE_BENCH_SECTIONS
//! (`pgbench,templates`; add `linear`), PGREHEARSE_BENCH_LINEAR_ROWS (`2M,50M`),
//! PGREHEARSE_BENCH_LINEAR_RUNS (3), PGREHEARSE_BENCH_TEMPLATE_ROWS (1M).
//! Needs `pgbench` and GNU `time` (/usr/bin/time).
//!
//! A plain main rather than criterion's sampler: one sample takes seconds and
//! the point is the ratio against an external program, measured in
//! alternation so both sides see the same machine noise.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use pgrehearse::backend::{BackendKind, ConnInfo};
use pgrehearse::options::ServerOptions;
use pgrehearse::rehearsal::{Server, ServerNeeds};
use pgrehearse::scenario::{self, Overrides, Scenario};
use pgrehearse::seed::template::{self, CloneStrategy};
use pgrehearse::seed::SeedOptions;
use pgrehearse::signals::Signals;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn env_list(name: &str, default: &str) -> Vec<String> {
    std::env::var(name)
        .unwrap_or_else(|_| default.into())
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn rows_of(s: &str) -> u64 {
    pgrehearse::cli::parse_rows(s).unwrap_or_else(|e| panic!("{e}"))
}

fn shape() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pgbench-shape.toml")
}

/// A server setting profile of the bench.
fn settings(profile: &str) -> Vec<(String, String)> {
    match profile {
        "untuned" => vec![],
        "tuned" => vec![
            ("shared_buffers".into(), "1GB".into()),
            ("max_wal_size".into(), "8GB".into()),
        ],
        other => panic!("PGREHEARSE_BENCH_SERVERS: unknown profile {other:?} (untuned, tuned)"),
    }
}

/// One measured run: a row of the CSV.
struct Sample {
    section: &'static str,
    server: String,
    rows: u64,
    run: usize,
    tool: String,
    seconds: f64,
    peak_rss_kb: Option<u64>,
    detail: String,
}

/// The CSV of this bench invocation, written row by row.
struct Csv {
    file: std::fs::File,
    path: PathBuf,
}

impl Csv {
    fn create() -> Csv {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/results/seed");
        std::fs::create_dir_all(&dir).unwrap();
        let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
        let path = dir.join(format!("{stamp}.csv"));
        let mut file = std::fs::File::create(&path).unwrap();
        writeln!(
            file,
            "section,server,rows,run,tool,seconds,rows_per_s,peak_rss_kb,detail"
        )
        .unwrap();
        Csv { file, path }
    }

    fn add(&mut self, s: &Sample) {
        writeln!(
            self.file,
            "{},{},{},{},{},{:.3},{:.0},{},\"{}\"",
            s.section,
            s.server,
            s.rows,
            s.run,
            s.tool,
            s.seconds,
            s.rows as f64 / s.seconds,
            s.peak_rss_kb.map(|k| k.to_string()).unwrap_or_default(),
            s.detail.replace('"', "'")
        )
        .unwrap();
        self.file.flush().unwrap();
    }
}

/// A server of the bench: a local cluster, and a URL to one of its databases.
struct BenchServer {
    server: Server,
    conn: ConnInfo,
}

impl BenchServer {
    async fn start(profile: &str) -> BenchServer {
        let needs = ServerNeeds {
            version: None,
            image: None,
            settings: settings(profile),
            sessions: 10,
            size: None,
            replica: false,
        };
        let opts = ServerOptions::of(BackendKind::Local);
        let server = Server::provision(&opts, &needs, &Signals::default())
            .await
            .expect("a local cluster for the bench");
        let conn = server.site().conn;
        BenchServer { server, conn }
    }

    async fn sql(&self, sql: &str) {
        let c = self.conn.session("pgrehearse-bench").await.unwrap();
        c.batch_execute(sql).await.unwrap();
    }

    fn url(&self, db: &str) -> String {
        format!(
            "postgres://{}:{}@{}:{}/{db}",
            self.conn.user,
            self.conn.password.clone().unwrap_or_default(),
            self.conn.host,
            self.conn.port
        )
    }
}

/// Run `cmd` under GNU time: (wall seconds, peak RSS in kB, stdout).
fn timed_process(cmd: Command) -> (f64, u64, String) {
    let rss = tempfile::NamedTempFile::new().unwrap();
    let program = cmd.get_program().to_owned();
    let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned())))
        .collect();
    let mut timed = Command::new("/usr/bin/time");
    timed
        .args(["-f", "%M", "-o"])
        .arg(rss.path())
        .arg(program)
        .args(args);
    for (k, v) in envs {
        match v {
            Some(v) => timed.env(k, v),
            None => timed.env_remove(k),
        };
    }
    let start = Instant::now();
    let out = timed
        .output()
        .expect("run /usr/bin/time (GNU time: apt-get install time)");
    let seconds = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{:?} failed: {}{}",
        timed,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let kb = std::fs::read_to_string(rss.path())
        .unwrap()
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0);
    (
        seconds,
        kb,
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `pgrehearse seed benches/pgbench-shape.toml --rows ROWS --replace`.
fn ours(server: &BenchServer, db: &str, rows: u64) -> (f64, u64, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pgrehearse"));
    cmd.arg("seed")
        .arg(shape())
        .args(["--rows", &rows.to_string(), "--replace"])
        .args(["--database-url", &server.url(db)])
        .env_remove("PGREHEARSE_DATABASE_URL");
    let (s, kb, stdout) = timed_process(cmd);
    // The first line breaks the time down: create + load, after_seed, ANALYZE.
    let detail = stdout.lines().next().unwrap_or_default().to_string();
    (s, kb, detail)
}

/// `pgbench -i -s SCALE -I dtgvp` into `db`.
fn pgbench(server: &BenchServer, db: &str, scale: u64) -> (f64, u64, String) {
    let c = &server.conn;
    let mut cmd = Command::new("pgbench");
    cmd.args(["-i", "-s", &scale.to_string(), "-I", "dtgvp"])
        .args(["-h", &c.host, "-p", &c.port.to_string(), "-U", &c.user, db])
        .env("PGPASSWORD", c.password.clone().unwrap_or_default());
    let (s, kb, _) = timed_process(cmd);
    (s, kb, String::new())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// pgrehearse seed vs pgbench -i, alternating, on one server profile.
async fn pgbench_section(profile: &str, rows: u64, runs: usize, csv: &mut Csv) -> String {
    let server = BenchServer::start(profile).await;
    // One statement each: several in one message are one transaction,
    // which CREATE DATABASE refuses.
    server.sql("CREATE DATABASE bench_ours").await;
    server.sql("CREATE DATABASE bench_pgbench").await;
    let scale = rows / 100_000;
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for run in 0..=runs {
        let warm = if run == 0 { " (warm-up)" } else { "" };
        server.sql("CHECKPOINT").await;
        let (s, kb, detail) = ours(&server, "bench_ours", rows);
        println!(
            "  {profile} run {run}{warm}: pgrehearse seed {s:.2} s, {} MB peak RSS  [{detail}]",
            kb / 1024
        );
        server.sql("CHECKPOINT").await;
        let (t, tkb, _) = pgbench(&server, "bench_pgbench", scale);
        println!("  {profile} run {run}{warm}: pgbench -i     {t:.2} s");
        if run > 0 {
            a.push(s);
            b.push(t);
            for (tool, seconds, kb, detail) in [
                ("pgrehearse", s, kb, detail),
                ("pgbench", t, tkb, String::new()),
            ] {
                csv.add(&Sample {
                    section: "pgbench",
                    server: profile.into(),
                    rows,
                    run,
                    tool: tool.into(),
                    seconds,
                    peak_rss_kb: Some(kb),
                    detail,
                });
            }
        }
    }
    server.server.teardown().await;
    let (ma, mb) = (median(a), median(b));
    format!(
        "| {profile} | {rows} | {ma:.2} s | {mb:.2} s | {:.2}× |",
        ma / mb
    )
}

/// Rows per second at each size, on the tuned server.
async fn linear_section(sizes: &[u64], runs: usize, csv: &mut Csv) -> Vec<String> {
    let server = BenchServer::start("tuned").await;
    server.sql("CREATE DATABASE bench_linear").await;
    let mut lines = Vec::new();
    let mut base = None;
    for &rows in sizes {
        let (mut rates, mut peak) = (Vec::new(), 0);
        for run in 1..=runs {
            server.sql("CHECKPOINT").await;
            let (s, kb, detail) = ours(&server, "bench_linear", rows);
            let rate = rows as f64 / s;
            println!(
                "  linear {rows} run {run}: {s:.2} s, {rate:.0} rows/s, {} MB peak RSS",
                kb / 1024
            );
            rates.push(rate);
            peak = peak.max(kb);
            csv.add(&Sample {
                section: "linear",
                server: "tuned".into(),
                rows,
                run,
                tool: "pgrehearse".into(),
                seconds: s,
                peak_rss_kb: Some(kb),
                detail,
            });
        }
        let m = median(rates);
        let base_rate = *base.get_or_insert(m);
        lines.push(format!(
            "| {rows} | {m:.0} rows/s | {:.0} % | {} MB |",
            100.0 * m / base_rate,
            peak / 1024
        ));
    }
    server.server.teardown().await;
    lines
}

/// Seed once into a template, then clone it with each strategy in turn.
async fn templates_section(rows: u64, runs: usize, csv: &mut Csv) -> Vec<String> {
    let server = BenchServer::start("tuned").await;
    let s: Scenario = scenario::load(
        &shape(),
        &Overrides {
            rows: Some(rows),
            ..Overrides::default()
        },
    )
    .expect("benches/pgbench-shape.toml");
    let started = Instant::now();
    let template = server
        .server
        .ensure_template(&s, &SeedOptions::new(1))
        .await
        .expect("template");
    let seed = started.elapsed().as_secs_f64();
    println!("  template of {rows} rows seeded in {seed:.2} s");
    csv.add(&Sample {
        section: "templates",
        server: "tuned".into(),
        rows,
        run: 1,
        tool: "seed".into(),
        seconds: seed,
        peak_rss_kb: None,
        detail: template.key.to_string(),
    });
    let strategies = [
        (CloneStrategy::FileCopy, "file_copy"),
        (CloneStrategy::WalLog, "wal_log"),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); strategies.len()];
    // The floor under any file copy: an empty database's clone (the fixed
    // cost: ~300 catalog files created, copied, fsynced, two checkpoints)
    // and the template's bytes at the disk's write speed.
    let mut empty = Vec::new();
    let size_mb = template_mb(&server, &template.key.database()).await;
    for run in 1..=runs {
        let took = empty_clone(&server, run).await;
        empty.push(took);
        csv.add(&Sample {
            section: "templates",
            server: "tuned".into(),
            rows,
            run,
            tool: "clone empty file_copy".into(),
            seconds: took,
            peak_rss_kb: None,
            detail: String::new(),
        });
        for (i, (strategy, name)) in strategies.iter().enumerate() {
            let t = template.clone().with_strategy(*strategy);
            let started = Instant::now();
            let db = t.clone_into().await.expect("clone");
            let took = started.elapsed().as_secs_f64();
            println!(
                "  clone {run} ({name}): {took:.3} s ({:.1} % of the seed)",
                100.0 * took / seed
            );
            db.discard().await.expect("drop the clone");
            times[i].push(took);
            csv.add(&Sample {
                section: "templates",
                server: "tuned".into(),
                rows,
                run,
                tool: format!("clone {name}"),
                seconds: took,
                peak_rss_kb: None,
                detail: String::new(),
            });
        }
    }
    server.server.teardown().await;
    let mut lines = vec![format!(
        "| seed (first rehearsal), {size_mb:.0} MB | {seed:.2} s | 100 % |"
    )];
    let m = median(empty);
    lines.push(format!(
        "| clone of an empty database (template0), FILE_COPY: the fixed cost | {m:.3} s | {:.1} % |",
        100.0 * m / seed
    ));
    for ((_, name), xs) in strategies.iter().zip(times) {
        let m = median(xs);
        lines.push(format!(
            "| clone, STRATEGY {} | {m:.3} s | {:.1} % |",
            name.to_uppercase(),
            100.0 * m / seed
        ));
    }
    lines
}

/// The size of database `db` on the bench's server, MB.
async fn template_mb(server: &BenchServer, db: &str) -> f64 {
    let c = server.conn.session("pgrehearse-bench").await.unwrap();
    let bytes: i64 = c
        .query_one("SELECT pg_database_size($1)", &[&db])
        .await
        .unwrap()
        .get(0);
    bytes as f64 / 1e6
}

/// Clone template0 (FILE_COPY) and drop the clone: how long the clone took.
async fn empty_clone(server: &BenchServer, run: usize) -> f64 {
    let name = format!("pgrehearse_bench_empty_{run}");
    let started = Instant::now();
    template::clone_database_with(&server.conn, "template0", &name, CloneStrategy::FileCopy)
        .await
        .expect("clone template0");
    let took = started.elapsed().as_secs_f64();
    println!("  clone {run} of an empty database: {took:.3} s");
    template::drop_database(&server.conn, &name)
        .await
        .expect("drop the empty clone");
    took
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
    let rows = rows_of(&std::env::var("PGREHEARSE_BENCH_ROWS").unwrap_or_else(|_| "2M".into()));
    let sections = env_list("PGREHEARSE_BENCH_SECTIONS", "pgbench,templates");
    let mut csv = Csv::create();
    println!(
        "seed bench: {} CPUs, pgbench shape, {runs} runs + 1 warm-up; raw runs in {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        csv.path.display()
    );
    let mut report = Vec::new();
    if sections.iter().any(|s| s == "pgbench") {
        report.push(
            "| server | accounts rows | pgrehearse seed | pgbench -i -I dtgvp | ratio |".into(),
        );
        report.push("|---|---|---|---|---|".into());
        for profile in env_list("PGREHEARSE_BENCH_SERVERS", "untuned,tuned") {
            report.push(pgbench_section(&profile, rows, runs, &mut csv).await);
        }
        report.push(String::new());
    }
    if sections.iter().any(|s| s == "linear") {
        let sizes: Vec<u64> = env_list("PGREHEARSE_BENCH_LINEAR_ROWS", "2M,50M")
            .iter()
            .map(|s| rows_of(s))
            .collect();
        report.push("| accounts rows | median rows/s | vs the first size | peak RSS |".into());
        report.push("|---|---|---|---|".into());
        report.extend(
            linear_section(&sizes, env_or("PGREHEARSE_BENCH_LINEAR_RUNS", 3), &mut csv).await,
        );
        report.push(String::new());
    }
    if sections.iter().any(|s| s == "templates") {
        let rows = rows_of(
            &std::env::var("PGREHEARSE_BENCH_TEMPLATE_ROWS").unwrap_or_else(|_| "1M".into()),
        );
        report.push(format!("| {rows} accounts rows | median | vs the seed |"));
        report.push("|---|---|---|".into());
        report.extend(templates_section(rows, runs, &mut csv).await);
    }
    println!("\n{}", report.join("\n"));
}
