//! Rehearsing a sweep's combinations: one server for the whole sweep; per
//! size, one database seeded once ([`SeededSize::prepare`]), then one
//! rehearsal per rate, each in a copy of it (CREATE DATABASE ... TEMPLATE),
//! the last rate in the seeded database itself (nothing needs it after), so
//! a sweep with one rate copies nothing. Every database made here is
//! dropped on every path; the server is torn down at the end.

use std::path::Path;

use crate::error::{exit, Error};
use crate::options::{RunOptions, SummaryFormat};
use crate::rehearsal::{self, Database, Draft, Outcome, Server, ServerNeeds};
use crate::scenario::Scenario;
use crate::seed::{clone_database, drop_database};
use crate::signals::Signals;

use super::{Cell, SweepOptions};

/// Rehearse every size × rate of `opts` into `dir/<cell label>/`. Returns
/// the cells in order (sizes outer, rates inner) and the worst exit code.
pub async fn rehearse_all(
    scenarios: &[Scenario],
    opts: &SweepOptions,
    dir: &Path,
) -> (Vec<Cell>, u8) {
    let signals = Signals::install();
    let mut cells: Vec<Cell> = Vec::new();
    let chatter = opts.run.output.chatter;
    if chatter {
        eprintln!(
            "pgrehearse sweep: {} — {} sizes × {} rates, provisioning Postgres ({:?} backend)",
            scenarios[0].name,
            opts.sizes.len(),
            opts.rates.len(),
            opts.run.server.backend
        );
    }
    let needs = ServerNeeds::of(&scenarios[0]);
    let server = match Server::provision(&opts.run.server, &needs, &signals).await {
        Ok(s) => s,
        Err(e) => {
            crate::printer::error(&e, None);
            let why = format!("not run (no server: {e})");
            for &rows in &opts.sizes {
                cells.extend(opts.rates.iter().map(|&rate| not_run(rows, rate, &why)));
            }
            return (cells, e.exit_code());
        }
    };
    let mut progress = Progress {
        done: 0,
        total: opts.sizes.len() * opts.rates.len(),
        chatter,
    };
    for (i, (s, &rows)) in scenarios.iter().zip(&opts.sizes).enumerate() {
        if signals.received() {
            let why = format!("not run ({})", signals.name());
            cells.extend(opts.rates.iter().map(|&rate| not_run(rows, rate, &why)));
            continue;
        }
        let size = Size { index: i, rows, s };
        cells.extend(
            size.rehearse(&server, opts, dir, &signals, &mut progress)
                .await,
        );
    }
    server.teardown().await;
    let mut code = cells
        .iter()
        .filter_map(|c| c.exit_code)
        .fold(exit::OK, u8::max);
    if signals.received() {
        code = code.max(signals.error().exit_code());
    }
    (cells, code)
}

/// "sweep [3/6] rows 8000, rate 400" on stderr, across the whole sweep.
struct Progress {
    done: usize,
    total: usize,
    chatter: bool,
}

impl Progress {
    fn next(&mut self, rows: u64, rate: Option<f64>) {
        self.done += 1;
        if self.chatter {
            eprintln!(
                "pgrehearse sweep [{}/{}]: rows {rows}, rate {}",
                self.done,
                self.total,
                super::rate_label(rate)
            );
        }
    }
}

fn not_run(rows: u64, rate: Option<f64>, why: &str) -> Cell {
    Cell {
        rows,
        rate,
        exit_code: None,
        outcome: why.to_string(),
        run_dir: None,
    }
}

/// One size of the sweep: its scenario (already scaled to `rows`).
struct Size<'a> {
    index: usize,
    rows: u64,
    s: &'a Scenario,
}

impl Size<'_> {
    /// Seed once, rehearse every rate; drop what was made.
    async fn rehearse(
        &self,
        server: &Server,
        opts: &SweepOptions,
        dir: &Path,
        signals: &Signals,
        progress: &mut Progress,
    ) -> Vec<Cell> {
        let work = server.work_database();
        let seeded = SeededSize::prepare(&work, self, &opts.run, signals).await;
        let mut cells = Vec::new();
        match seeded {
            Err(e) => {
                // The first rate carries the partial report (when a run
                // directory could be made); the others were not rehearsed.
                let first = opts.rates[0];
                progress.next(self.rows, first);
                let cell_opts = cell_options(&opts.run, dir, self.rows, first);
                let outcome = match e {
                    Prepared::Stopped(db, stopped) => {
                        match Draft::open(&db, &with_rate(self.s, first), &cell_opts).await {
                            Ok(draft) => Outcome {
                                run_dir: Some(draft.dir.clone()),
                                result: Err(draft.abandon(stopped)),
                            },
                            Err(_) => Outcome {
                                run_dir: None,
                                result: Err(stopped.error),
                            },
                        }
                    }
                    Prepared::Failed(error) => Outcome {
                        run_dir: None,
                        result: Err(error),
                    },
                };
                cells.push(finish(self.rows, first, outcome));
                let why = format!("not run (size {} could not be seeded)", self.rows);
                cells.extend(opts.rates[1..].iter().map(|&r| not_run(self.rows, r, &why)));
            }
            Ok(seeded) => {
                for (j, &rate) in opts.rates.iter().enumerate() {
                    if signals.received() {
                        cells.push(not_run(
                            self.rows,
                            rate,
                            &format!("not run ({})", signals.name()),
                        ));
                        continue;
                    }
                    progress.next(self.rows, rate);
                    let last = j + 1 == opts.rates.len();
                    let cell_opts = cell_options(&opts.run, dir, self.rows, rate);
                    let outcome = seeded
                        .rehearse(&with_rate(self.s, rate), &cell_opts, signals, j, last)
                        .await;
                    cells.push(finish(self.rows, rate, outcome));
                }
                seeded.drop_all(&work).await;
            }
        }
        cells
    }
}

/// A cell from a rehearsal's outcome; its error printed as it happens.
fn finish(rows: u64, rate: Option<f64>, outcome: Outcome) -> Cell {
    if let Err(e) = &outcome.result {
        crate::printer::error(e, outcome.run_dir.as_deref());
    }
    Cell {
        rows,
        rate,
        exit_code: Some(outcome.exit_code()),
        outcome: outcome.describe(),
        run_dir: outcome.run_dir,
    }
}

/// The scenario with its open-loop rate set (`None`: as the file says).
fn with_rate(s: &Scenario, rate: Option<f64>) -> Scenario {
    let mut s = s.clone();
    if rate.is_some() {
        s.workload.rate = rate;
    }
    s
}

/// A rehearsal of the sweep writes into `<sweep dir>/<cell label>/` and
/// prints nothing on stdout: the sweep prints its own answer.
fn cell_options(run: &RunOptions, dir: &Path, rows: u64, rate: Option<f64>) -> RunOptions {
    let mut o = run.clone();
    o.out = dir.join(
        Cell {
            rows,
            rate,
            exit_code: None,
            outcome: String::new(),
            run_dir: None,
        }
        .label(),
    );
    o.output.summary = SummaryFormat::Nothing;
    o
}

/// Why a size could not be seeded: a stage that stopped (with the database
/// it stopped in, for a partial report), or no database at all.
enum Prepared {
    Stopped(Box<Database>, rehearsal::Stopped),
    Failed(Error),
}

/// A database seeded for one size, which every rate of that size starts
/// from. The one call a template cache would replace: prepare → (a seeded
/// database, how long seeding took).
struct SeededSize {
    db: Database,
    seed_ms: f64,
}

impl SeededSize {
    /// A fresh empty database on the server, seeded for `size`. Dropped
    /// again if seeding fails.
    async fn prepare(
        work: &Database,
        size: &Size<'_>,
        run: &RunOptions,
        signals: &Signals,
    ) -> Result<SeededSize, Prepared> {
        let name = database_name(&work.conn.dbname, size.index);
        clone_database(&work.conn, "template0", &name)
            .await
            .map_err(Prepared::Failed)?;
        let db = on(work, &name);
        match rehearsal::seed_only(&db, size.s, run, signals).await {
            Ok(seed_ms) => Ok(SeededSize { db, seed_ms }),
            Err(stopped) => {
                let _ = drop_database(&work.conn, &name).await;
                Err(Prepared::Stopped(Box::new(work.clone()), stopped))
            }
        }
    }

    /// Rehearse `s` (rate `j` of this size) in a copy of the seeded
    /// database, or in the seeded database itself when it is the `last`.
    async fn rehearse(
        &self,
        s: &Scenario,
        opts: &RunOptions,
        signals: &Signals,
        j: usize,
        last: bool,
    ) -> Outcome {
        if last {
            return rehearsal::rehearse_seeded(&self.db, s, opts, signals, self.seed_ms).await;
        }
        let copy = format!("{}_r{j}", self.db.conn.dbname);
        if let Err(e) = clone_database(&self.db.conn, &self.db.conn.dbname, &copy).await {
            return Outcome {
                run_dir: None,
                result: Err(e),
            };
        }
        let db = on(&self.db, &copy);
        let outcome = rehearsal::rehearse_seeded(&db, s, opts, signals, self.seed_ms).await;
        if let Err(e) = drop_database(&self.db.conn, &copy).await {
            eprintln!("pgrehearse sweep: {e}");
        }
        outcome
    }

    /// Drop the seeded database (each copy was dropped after its run).
    async fn drop_all(self, work: &Database) {
        if let Err(e) = drop_database(&work.conn, &self.db.conn.dbname).await {
            eprintln!("pgrehearse sweep: {e}");
        }
    }
}

/// `db`'s server and measurements, in database `name`.
fn on(db: &Database, name: &str) -> Database {
    db.in_database(name)
}

/// `<work db>_s<size>`: unique on a shared server (the url backend's work
/// database has a unique scratch name), within Postgres's 63 bytes.
/// (A rate's copy adds `_r<rate>`.)
fn database_name(work: &str, size: usize) -> String {
    let base: String = work.chars().take(48).collect();
    format!("{base}_s{size}")
}
