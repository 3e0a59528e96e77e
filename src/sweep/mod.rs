//! `pgrehearse sweep`: one scenario rehearsed at every version × size ×
//! rate, then each figure fitted against size (per version and rate) and
//! extrapolated to a target size.
//!
//! One file per concern: `run.rs` rehearses the combinations (a server per
//! version, each size's data made once, a rehearsal per rate), `collect.rs`
//! reads the run directories back into `sweep.csv`, `fit.rs` is the least-squares maths,
//! `answer.rs` fits every figure and words the answer, `render.rs` writes
//! it (`sweep.json`, `sweep.md`), `chart.rs` draws `sweep.svg`/`.png`. Like
//! `pgrehearse report`, everything after the rehearsals reads only run
//! directories.

pub mod answer;
pub mod chart;
pub mod collect;
pub mod fit;
pub mod render;
pub mod run;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::options::{RunOptions, SummaryFormat};
use crate::rehearsal;
use crate::scenario::Scenario;
use crate::signals::Signals;

/// A sweep, validated: the sizes, the rates, the target, and how each
/// rehearsal runs (`run.versions`: the `--pg-version` majors, a dimension
/// of the sweep like the rates).
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOptions {
    /// Rows of the largest table, ascending, no repeats (`--rows`).
    pub sizes: Vec<u64>,
    /// Open-loop rates in queries/s (`--rate`); `[None]`: the scenario's own.
    pub rates: Vec<Option<f64>>,
    /// The size to extrapolate to (`--extrapolate`).
    pub extrapolate: Option<u64>,
    pub run: RunOptions,
}

/// One combination of the sweep and how its rehearsal ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// The `--pg-version` major it ran on ("17"); None without the flag
    /// (the one server of the scenario's or the backend's version).
    pub version: Option<String>,
    pub rows: u64,
    pub rate: Option<f64>,
    /// None: not rehearsed (a signal stopped the sweep, or its size could
    /// not be seeded and an earlier rate already reported why).
    pub exit_code: Option<u8>,
    /// "pass", "budget breached", the error, or "not run (...)".
    pub outcome: String,
    pub run_dir: Option<PathBuf>,
}

impl Cell {
    /// `rows-2000-rate-400` (`rate-scenario` when the scenario's own;
    /// `pg-17-rows-...` with `--pg-version`): the folder of its run
    /// directory inside the sweep directory.
    pub fn label(&self) -> String {
        let version = match &self.version {
            Some(v) => format!("pg-{v}-"),
            None => String::new(),
        };
        format!("{version}rows-{}-rate-{}", self.rows, rate_label(self.rate))
    }
}

/// A rate as the reports print it: `400`, `12.5`, or `scenario`.
pub fn rate_label(rate: Option<f64>) -> String {
    match rate {
        Some(r) => crate::pg::round3(r).to_string(),
        None => "scenario".into(),
    }
}

/// `pgrehearse sweep`: rehearse every combination, then write the sweep
/// directory and print the answer. `scenarios` holds the scenario loaded at
/// each size of `opts.sizes`, in the same order. With `--pg-version`, every
/// version is checked against the machine before anything runs (exit 3
/// naming what is missing). Returns the worst exit code of the rehearsals
/// (or of writing the sweep's files): a combination whose rehearsal failed
/// makes it 4 (or its own code) even though the others' fits are written.
pub async fn sweep(scenarios: &[Scenario], opts: &SweepOptions) -> u8 {
    rehearsal::warn_edited(&scenarios[0]);
    let signals = Signals::install();
    if scenarios[0].nothing_to_rehearse() {
        // `--since-git` found nothing new: said as `run` says it.
        return rehearsal::rehearse_one(&scenarios[0], &opts.run, &signals)
            .await
            .exit_code();
    }
    let variations = match crate::matrix::variations(&scenarios[0], &opts.run).await {
        Ok(v) => v,
        Err(e) => {
            crate::printer::error(&e, None);
            return e.exit_code();
        }
    };
    let dir = match sweep_dir(&opts.run.out, &scenarios[0].name) {
        Ok(d) => d,
        Err(e) => {
            crate::printer::error(&e, None);
            return e.exit_code();
        }
    };
    let (cells, mut code) = run::rehearse_all(scenarios, opts, &variations, &dir, &signals).await;
    let own_rate = scenarios[0].workload.rate;
    match publish(&dir, &scenarios[0].name, &cells, own_rate, opts) {
        Ok(text) => {
            let out = match opts.run.output.summary {
                SummaryFormat::Json => {
                    std::fs::read_to_string(dir.join("sweep.json")).map_err(crate::Error::from)
                }
                _ => Ok(text),
            };
            if let Err(e) = out.and_then(|t| crate::printer::stdout(&t)) {
                crate::printer::error(&e, None);
                code = code.max(e.exit_code());
            }
        }
        Err(e) => {
            crate::printer::error(&e, Some(&dir));
            code = code.max(e.exit_code());
        }
    }
    code
}

/// Read the run directories, fit, and write sweep.csv / .json / .md / .svg
/// / .png into `dir`. `own_rate`: the scenario's rate, which the cells
/// without `--rate` ran at (the reports carry it as a number). Returns the
/// text to print: the answer and where the sweep directory is.
pub fn publish(
    dir: &Path,
    scenario: &str,
    cells: &[Cell],
    own_rate: Option<f64>,
    opts: &SweepOptions,
) -> Result<String> {
    let measured = collect::read_all(dir, cells, own_rate);
    collect::write_csv(&dir.join("sweep.csv"), &measured)?;
    let answer = answer::Answer::new(scenario, &measured, opts.extrapolate);
    answer.write_json(&dir.join("sweep.json"), &measured)?;
    std::fs::write(dir.join("sweep.md"), answer.markdown(&measured))?;
    chart::write(dir, &answer, &measured)?;
    Ok(format!(
        "{}\nsweep: {}\n",
        answer.sentences(&measured).join("\n"),
        dir.display()
    ))
}

/// `<out>/<scenario>/sweep-<UTC stamp>/` (`-2`, `-3` when taken).
fn sweep_dir(out: &Path, scenario: &str) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let parent = out.join(crate::record::sanitize(scenario));
    let mut dir = parent.join(format!("sweep-{stamp}"));
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = parent.join(format!("sweep-{stamp}-{n}"));
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
