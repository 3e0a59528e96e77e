//! Naive vs safe DDL under traffic, with criterion: `cargo bench --bench ddl`.
//!
//! For each pattern (create-index, add-foreign-key, set-not-null,
//! add-column-default, change-column-type) and each variant of its pair in
//! scenarios/, one benchmark whose iteration is a whole rehearsal: a fresh
//! `CREATE DATABASE ... TEMPLATE` clone of a database seeded once per
//! pattern (both variants share the data), the migration under the
//! scenario's traffic, the run directory analyzed. One local server for the
//! whole bench.
//!
//! What criterion measures is what users care about, through a custom
//! [`Measurement`] in milliseconds and `iter_custom`: group
//! `blocking_hold_ms` (the longest hold of a lock that blocks app reads or
//! writes), `app_wait_ms` (the longest lock wait of an app query) and
//! `migration_ms` (wall time of the migration, first statement to last).
//! Each rehearsal gives all three: the first group runs them, the other two
//! take its figures in order (running another rehearsal only if they run
//! out), so the bench costs one rehearsal per sample, not three.
//!
//! Environment: PGREHEARSE_BENCH_ROWS (rows of the largest table, default
//! 20000), PGREHEARSE_BENCH_SAMPLES (criterion samples, default 10, its
//! minimum), PGREHEARSE_BENCH_TRAFFIC_MS (traffic before and after the
//! migration, default 500; the scenarios' own is seconds).
//!
//! A figure of none (the safe variant holds no blocking lock) is recorded as
//! 0.001 ms: criterion's warm-up loops until its measurement grows, so a
//! value must be positive. A variant whose samples are all one value (none,
//! mostly) is printed as such and not handed to criterion (a constant
//! sample breaks its t-test plot against a saved baseline).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use pgrehearse::analyze;
use pgrehearse::backend::BackendKind;
use pgrehearse::options::{OutputMode, RunOptions, ServerOptions, SummaryFormat};
use pgrehearse::record::{Blocks, RunRecord};
use pgrehearse::rehearsal::{self, Database, Server, ServerNeeds};
use pgrehearse::scenario::{self, Overrides, Scenario};
use pgrehearse::signals::Signals;

const PATTERNS: [&str; 5] = [
    "create-index",
    "add-foreign-key",
    "set-not-null",
    "add-column-default",
    "change-column-type",
];
/// The figure of a rehearsal without such a lock or wait (see module docs).
const NONE_MS: f64 = 0.001;

/// Milliseconds of whatever a group measures; values come from
/// `iter_custom`, never from a clock.
struct Millis;

impl Measurement for Millis {
    type Intermediate = ();
    type Value = f64;
    fn start(&self) {}
    fn end(&self, _: ()) -> f64 {
        unreachable!("only iter_custom is used: values come from rehearsals")
    }
    fn add(&self, a: &f64, b: &f64) -> f64 {
        a + b
    }
    fn zero(&self) -> f64 {
        0.0
    }
    /// Criterion compares this with its warm-up and measurement times in
    /// nanoseconds: a millisecond counts as 10^6 of them, so one rehearsal
    /// (never below 0.001 ms) passes the 1 ns budgets set in `main`.
    fn to_f64(&self, v: &f64) -> f64 {
        v * 1e6
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &MillisFormatter
    }
}

struct MillisFormatter;

impl ValueFormatter for MillisFormatter {
    fn scale_values(&self, _typical: f64, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms"
    }
    fn scale_throughputs(&self, _: f64, _: &Throughput, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms"
    }
    fn scale_for_machines(&self, values: &mut [f64]) -> &'static str {
        values.iter_mut().for_each(|v| *v /= 1e6);
        "ms"
    }
}

/// One rehearsal's three figures (ms).
#[derive(Clone, Copy)]
struct Figures {
    hold: f64,
    wait: f64,
    migration: f64,
}

/// The server, a seeded template per pattern, and the figures the first
/// group measured for the other two.
struct Bench {
    rt: tokio::runtime::Runtime,
    server: Server,
    work: Database,
    out: tempfile::TempDir,
    opts: RunOptions,
    scenarios: HashMap<String, Scenario>,
    templates: HashMap<String, String>,
    /// How long each template took to seed (run.json's seed_ms).
    seed_ms: HashMap<String, f64>,
    pending: Mutex<HashMap<String, VecDeque<Figures>>>,
    clones: Mutex<u64>,
    signals: Signals,
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn library(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(format!("{name}.toml"))
}

impl Bench {
    fn start() -> Bench {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let rows = env_or("PGREHEARSE_BENCH_ROWS", 20_000u64);
        let traffic = Duration::from_millis(env_or("PGREHEARSE_BENCH_TRAFFIC_MS", 500u64));
        let overrides = Overrides {
            rows: Some(rows),
            ..Overrides::default()
        };
        let mut scenarios = HashMap::new();
        for p in PATTERNS {
            for v in ["naive", "safe"] {
                let name = format!("{p}-{v}");
                let mut s = scenario::load(&library(&name), &overrides)
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                s.workload.before = traffic;
                s.workload.after = traffic;
                scenarios.insert(name, s);
            }
        }
        let opts = RunOptions {
            server: ServerOptions::of(BackendKind::Local),
            versions: Vec::new(),
            out: PathBuf::new(),
            seed: 1,
            budgets: Vec::new(),
            output: OutputMode {
                summary: SummaryFormat::Nothing,
                chatter: false,
                verbose: 0,
            },
        };
        let first = &scenarios["create-index-naive"];
        let needs = ServerNeeds {
            sessions: scenarios
                .values()
                .map(|s| ServerNeeds::of(s).sessions)
                .max()
                .unwrap_or(1),
            ..ServerNeeds::of(first)
        };
        let signals = rt.block_on(async { Signals::install() });
        let server = rt
            .block_on(Server::provision(&opts.server, &needs, &signals))
            .expect("a local Postgres (PGREHEARSE_PG_BIN or /usr/lib/postgresql/*/bin)");
        let work = server.work_database();
        let out = tempfile::Builder::new()
            .prefix("pgrehearse-bench-ddl-")
            .tempdir()
            .expect("temp dir");
        let mut bench = Bench {
            rt,
            server,
            work,
            opts: RunOptions {
                out: out.path().to_path_buf(),
                ..opts
            },
            out,
            scenarios,
            templates: HashMap::new(),
            seed_ms: HashMap::new(),
            pending: Mutex::new(HashMap::new()),
            clones: Mutex::new(0),
            signals,
        };
        for p in PATTERNS {
            let (template, ms) = bench.seed_template(p);
            bench.templates.insert(p.to_string(), template);
            bench.seed_ms.insert(p.to_string(), ms);
        }
        bench
    }

    /// Seed the pattern's data once, in a database of its own (the naive
    /// file's tables; the pair's files have the same, `compare` checks it).
    fn seed_template(&self, pattern: &str) -> (String, f64) {
        let s = &self.scenarios[&format!("{pattern}-naive")];
        let name = format!("tpl_{}", pattern.replace('-', "_"));
        let db = self.db(&name);
        let ms = self.rt.block_on(async {
            pgrehearse::seed::clone_database(&self.work.conn, &self.work.conn.dbname, &name)
                .await
                .expect("create the template database");
            rehearsal::seed_only(&db, s, &self.opts, &self.signals)
                .await
                .unwrap_or_else(|e| panic!("seeding {pattern}: {}", e.why))
        });
        (name, ms)
    }

    fn db(&self, name: &str) -> Database {
        let mut db = self.work.clone();
        db.conn.dbname = name.to_string();
        db
    }

    /// One rehearsal of `variant` on a fresh clone of its pattern's
    /// template; its figures.
    fn rehearse(&self, pattern: &str, variant: &str) -> Figures {
        let s = &self.scenarios[&format!("{pattern}-{variant}")];
        let n = {
            let mut c = self.clones.lock().unwrap();
            *c += 1;
            *c
        };
        let db = self.db(&format!("iter_{n}"));
        let outcome = self.rt.block_on(async {
            pgrehearse::seed::clone_database(
                &self.work.conn,
                &self.templates[pattern],
                &db.conn.dbname,
            )
            .await
            .expect("clone the template");
            let outcome = rehearsal::rehearse_seeded(
                &db,
                s,
                &self.opts,
                &self.signals,
                self.seed_ms[pattern],
            )
            .await;
            pgrehearse::seed::drop_database(&self.work.conn, &db.conn.dbname)
                .await
                .expect("drop the clone");
            outcome
        });
        let dir = outcome
            .run_dir
            .unwrap_or_else(|| panic!("{}: no run directory: {:?}", s.name, outcome.result));
        // Exit 1 (a budget breached) is what a naive variant is for; a
        // failed rehearsal is not a measurement.
        if let Err(e) = &outcome.result {
            panic!("{}: {e} (see {})", s.name, dir.display());
        }
        let rec = RunRecord::read(&dir).expect("the run directory reads");
        let a = analyze::analyze(&rec);
        let hold = a
            .steps
            .iter()
            .filter_map(|st| st.longest_blocking_lock.as_ref())
            .filter(|l| l.blocks != Blocks::None)
            .filter_map(|l| l.held_ms)
            .fold(NONE_MS, f64::max);
        let wait = a
            .steps
            .iter()
            .filter_map(|st| st.worst_app_wait.as_ref().map(|w| w.wait_ms))
            .fold(NONE_MS, f64::max);
        let migration = a.migration.map_or(NONE_MS, |m| m.duration_ms.max(NONE_MS));
        // Run directories are not kept: thousands would pile up.
        let _ = std::fs::remove_dir_all(&dir);
        Figures {
            hold,
            wait,
            migration,
        }
    }

    /// What to print instead of a criterion benchmark when the rehearsals
    /// queued for `group` leave criterion a constant sample: the first is
    /// its warm-up, the rest its samples (one rehearsal each), and a sample
    /// of one value — typically none: the variant holds no such lock or
    /// waits no such wait — panics in its t-test plot against a saved
    /// baseline, and has no statistics to show anyway.
    fn degenerate(&self, pattern: &str, variant: &str, group: usize) -> Option<String> {
        let pending = self.pending.lock().unwrap();
        let queue = pending.get(&format!("{group}:{pattern}-{variant}"))?;
        let figure = GROUPS[group].1;
        let values: Vec<f64> = queue.iter().map(figure).collect();
        let sampled = values.get(1..).filter(|v| !v.is_empty())?;
        if sampled.iter().any(|v| *v != sampled[0]) {
            return None;
        }
        let show = |v: f64| {
            if v == NONE_MS {
                "none".to_string()
            } else {
                format!("{v:.3} ms")
            }
        };
        let others: Vec<String> = values
            .iter()
            .filter(|v| **v != sampled[0])
            .map(|v| show(*v))
            .collect();
        Some(if others.is_empty() {
            format!("{} in all {} rehearsals", show(sampled[0]), values.len())
        } else {
            format!(
                "{} in {} of {} rehearsals, the other {}",
                show(sampled[0]),
                sampled.len(),
                values.len(),
                others.join(", ")
            )
        })
    }

    /// The figures of the next rehearsal for group `group`: one the first
    /// group ran, if any is left, else a new one. The first group's
    /// rehearsals are queued for the others.
    fn next(&self, pattern: &str, variant: &str, group: usize) -> Figures {
        let id = format!("{pattern}-{variant}");
        if group > 0 {
            let mut pending = self.pending.lock().unwrap();
            let queue = pending.entry(format!("{group}:{id}")).or_default();
            if let Some(f) = queue.pop_front() {
                return f;
            }
        }
        let f = self.rehearse(pattern, variant);
        if group == 0 {
            let mut pending = self.pending.lock().unwrap();
            for g in 1..GROUPS.len() {
                pending.entry(format!("{g}:{id}")).or_default().push_back(f);
            }
        }
        f
    }
}

/// Which of a rehearsal's figures a group reports.
type Figure = fn(&Figures) -> f64;

/// The groups: name and the figure each reports. `migration_ms` comes
/// first: it is never none, so its rehearsals tell the other groups, before
/// they run, which variants have no such lock or wait at all.
const GROUPS: [(&str, Figure); 3] = [
    ("migration_ms", |f| f.migration),
    ("blocking_hold_ms", |f| f.hold),
    ("app_wait_ms", |f| f.wait),
];

fn main() {
    // `cargo test --all-targets` runs bench binaries without `--bench`: a
    // server and dozens of rehearsals are not for the test suite.
    if !std::env::args().any(|a| a == "--bench") {
        println!("ddl bench: run it with `cargo bench --bench ddl`");
        return;
    }
    // Criterion draws its plots with plotters; with ab_glyph (pgrehearse's
    // charts need it) text needs a registered font: the bundled DejaVu.
    pgrehearse::report::charts::register_fonts();
    let bench = Bench::start();
    let samples = env_or("PGREHEARSE_BENCH_SAMPLES", 10usize).max(10);
    let mut c = Criterion::default()
        .with_measurement(Millis)
        .sample_size(samples)
        // One iteration per sample: warm-up and measurement "time" are in
        // milliseconds of the figure, so the smallest budget stops after
        // one rehearsal.
        .warm_up_time(Duration::from_nanos(1))
        .measurement_time(Duration::from_nanos(1))
        .configure_from_args();
    for (g, (group, figure)) in GROUPS.iter().enumerate() {
        let mut grp = c.benchmark_group(*group);
        grp.sampling_mode(SamplingMode::Flat);
        for p in PATTERNS {
            for v in ["naive", "safe"] {
                if let Some(said) = bench.degenerate(p, v, g) {
                    println!("{group}/{p}/{v}: {said} (a constant sample: no statistics)");
                    continue;
                }
                grp.bench_function(BenchmarkId::new(p, v), |b| {
                    b.iter_custom(|iters| {
                        (0..iters)
                            .map(|_| figure(&bench.next(p, v, g)))
                            .sum::<f64>()
                    })
                });
            }
        }
        grp.finish();
    }
    c.final_summary();
    let Bench {
        rt, server, out, ..
    } = bench;
    rt.block_on(server.teardown());
    drop(out);
}
