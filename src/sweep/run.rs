//! Rehearsing a sweep's combinations: one server per version (one server
//! without `--pg-version`), then per size every rate, each rehearsal
//! through `crate::rehearsal` like `run`'s, its data as
//! [`DataPlan`] says ([`data_plan`]):
//!
//! - from the template of the size's data: seeded by the size's first
//!   rehearsal, cloned for each (`CREATE DATABASE ... TEMPLATE`), and with
//!   `--reuse` kept in the cache, so that the next sweep of the same sizes
//!   clones instead of seeding;
//! - seeded in place when the size has one rate and nothing keeps its data
//!   (a template would only cost a copy);
//! - with `[migrations]`, each rehearsal's database gets the setup
//!   migrations, then its seed, in place (as `run` does: templates are not
//!   built through setup migrations).
//!
//! A size whose data could not be made is not tried again at its other
//! rates. Every database made is dropped; each server is torn down.

use std::path::Path;

use crate::error::exit;
use crate::matrix::Variation;
use crate::options::{RunOptions, SummaryFormat};
use crate::rehearsal::{self, DataPlan, Outcome, Server, ServerNeeds};
use crate::scenario::Scenario;
use crate::signals::Signals;

use super::{Cell, SweepOptions};

/// Rehearse every version × size × rate of `opts` into `dir/<cell label>/`.
/// Returns the cells in order (versions outer, then sizes, rates inner)
/// and the worst exit code.
pub async fn rehearse_all(
    scenarios: &[Scenario],
    opts: &SweepOptions,
    variations: &[Variation],
    dir: &Path,
    signals: &Signals,
) -> (Vec<Cell>, u8) {
    let mut cells: Vec<Cell> = Vec::new();
    let mut code = exit::OK;
    let mut progress = Progress {
        done: 0,
        total: variations.len() * opts.sizes.len() * opts.rates.len(),
        chatter: opts.run.output.chatter,
    };
    let needs = ServerNeeds::of(&scenarios[0]);
    for v in variations {
        let version = (!v.label.is_empty()).then(|| v.label.clone());
        let every = |why: &str| -> Vec<Cell> {
            let mut out = Vec::new();
            for &rows in &opts.sizes {
                for &rate in &opts.rates {
                    out.push(not_run(&version, rows, rate, why));
                }
            }
            out
        };
        if signals.received() {
            cells.extend(every(&format!("not run ({})", signals.name())));
            continue;
        }
        say_provisioning(&scenarios[0], opts, v);
        let server = match Server::provision(&v.server, &needs, signals).await {
            Ok(s) => s,
            Err(e) => {
                crate::printer::error(&e, None);
                code = code.max(e.exit_code());
                cells.extend(every(&format!("not run (no server: {e})")));
                continue;
            }
        };
        let mut run = opts.run.clone();
        run.server = v.server.clone();
        run.versions.clear();
        for (s, &rows) in scenarios.iter().zip(&opts.sizes) {
            let size = Size {
                version: version.clone(),
                rows,
                s,
                plan: data_plan(s, opts),
            };
            cells.extend(
                size.rehearse(&server, &opts.rates, &run, dir, signals, &mut progress)
                    .await,
            );
        }
        server.teardown().await;
    }
    code = cells.iter().filter_map(|c| c.exit_code).fold(code, u8::max);
    if signals.received() {
        code = code.max(signals.error().exit_code());
    }
    (cells, code)
}

/// Where a size's data come from (module docs): a template whenever more
/// than one rehearsal uses them or `--reuse` keeps them.
pub fn data_plan(s: &Scenario, opts: &SweepOptions) -> DataPlan {
    // With [migrations] `rehearsal` seeds in place after the setup whatever
    // the plan says; InPlace says so here too.
    if s.migrations.is_none() && (opts.run.server.reuse || opts.rates.len() > 1) {
        DataPlan::Template
    } else {
        DataPlan::InPlace
    }
}

fn say_provisioning(s: &Scenario, opts: &SweepOptions, v: &Variation) {
    if !opts.run.output.chatter {
        return;
    }
    let version = match v.label.as_str() {
        "" => String::new(),
        l => format!(" {l}"),
    };
    crate::say!(
        "pgrehearse sweep: {} — {} × {}, provisioning PostgreSQL{version} ({:?} backend{})",
        s.name,
        crate::report::plural(opts.sizes.len(), "size", "sizes"),
        crate::report::plural(opts.rates.len(), "rate", "rates"),
        v.server.backend,
        if v.server.reuse {
            ", kept in the cache"
        } else {
            ""
        }
    );
}

/// "sweep [3/6] rows 8000, rate 400" on stderr, across the whole sweep.
struct Progress {
    done: usize,
    total: usize,
    chatter: bool,
}

impl Progress {
    fn next(&mut self, cell: &Cell) {
        self.done += 1;
        if self.chatter {
            let version = match &cell.version {
                Some(v) => format!("PostgreSQL {v}, "),
                None => String::new(),
            };
            crate::say!(
                "pgrehearse sweep [{}/{}]: {version}rows {}, rate {}",
                self.done,
                self.total,
                cell.rows,
                super::rate_label(cell.rate)
            );
        }
    }
}

fn not_run(version: &Option<String>, rows: u64, rate: Option<f64>, why: &str) -> Cell {
    Cell {
        version: version.clone(),
        rows,
        rate,
        exit_code: None,
        outcome: why.to_string(),
        run_dir: None,
    }
}

/// One size of the sweep on one server: its scenario (already scaled to
/// `rows`) and where its data come from.
struct Size<'a> {
    version: Option<String>,
    rows: u64,
    s: &'a Scenario,
    plan: DataPlan,
}

impl Size<'_> {
    /// Every rate of this size, one rehearsal each, until its data cannot
    /// be made.
    async fn rehearse(
        &self,
        server: &Server,
        rates: &[Option<f64>],
        run: &RunOptions,
        dir: &Path,
        signals: &Signals,
        progress: &mut Progress,
    ) -> Vec<Cell> {
        let mut cells = Vec::new();
        let mut unseeded: Option<String> = None;
        for &rate in rates {
            if signals.received() {
                let why = format!("not run ({})", signals.name());
                cells.push(not_run(&self.version, self.rows, rate, &why));
                continue;
            }
            if let Some(why) = &unseeded {
                cells.push(not_run(&self.version, self.rows, rate, why));
                continue;
            }
            let mut cell = not_run(&self.version, self.rows, rate, "");
            progress.next(&cell);
            let cell_opts = cell_options(run, dir, &cell);
            let outcome = rehearsal::rehearse_on(
                server,
                &with_rate(self.s, rate),
                self.plan,
                &cell_opts,
                signals,
            )
            .await;
            if outcome.result.is_err() && !had_data(&outcome) {
                unseeded = Some(format!(
                    "not run (size {} could not be seeded: see rate {})",
                    self.rows,
                    super::rate_label(rate)
                ));
            }
            finish(&mut cell, outcome);
            cells.push(cell);
        }
        cells
    }
}

/// Whether the rehearsal got as far as having its data: its run.json
/// records where they came from (`database`) only once they were there.
fn had_data(outcome: &Outcome) -> bool {
    let Some(dir) = &outcome.run_dir else {
        return false;
    };
    std::fs::read_to_string(dir.join(crate::record::RUN_JSON))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .is_some_and(|j| !j["database"].is_null())
}

/// `cell` with its rehearsal's outcome; the error printed as it happens.
fn finish(cell: &mut Cell, outcome: Outcome) {
    if let Err(e) = &outcome.result {
        crate::printer::error(e, outcome.run_dir.as_deref());
    }
    cell.exit_code = Some(outcome.exit_code());
    cell.outcome = outcome.describe();
    cell.run_dir = outcome.run_dir;
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
fn cell_options(run: &RunOptions, dir: &Path, cell: &Cell) -> RunOptions {
    let mut o = run.clone();
    o.out = dir.join(cell.label());
    o.output.summary = SummaryFormat::Nothing;
    o
}
