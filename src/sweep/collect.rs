//! The sweep's figures, read back from its run directories (summary.json
//! per step, run.json for each step's outcome and the server's version,
//! server.csv for table sizes), and `sweep.csv`: one row per combination,
//! per step its outcome and a column per figure. A figure a run does not
//! have (no blocking lock, no replica, a step that did not run, a run that
//! failed before it) is empty, never 0. A step that ran but did not
//! complete keeps its figures here (they are what was measured); the fits
//! leave them out ([`StepRow::completed`]).

use std::path::Path;

use serde_json::Value;

use super::Cell;
use crate::error::{exit, Result};

/// What a figure counts, for formatting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Ms,
    Bytes,
    Count,
}

/// One figure of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Figure {
    /// Column and JSON name.
    pub key: &'static str,
    /// How the reports name it.
    pub title: &'static str,
    pub unit: Unit,
}

/// Every figure of a step, in sweep.csv's column order.
pub const FIGURES: [Figure; 10] = [
    Figure {
        key: "duration_ms",
        title: "duration",
        unit: Unit::Ms,
    },
    Figure {
        key: "blocking_hold_ms",
        title: "longest blocking hold",
        unit: Unit::Ms,
    },
    Figure {
        key: "worst_app_wait_ms",
        title: "worst app lock wait",
        unit: Unit::Ms,
    },
    Figure {
        key: "p99_during_ms",
        title: "app p99 during the step",
        unit: Unit::Ms,
    },
    Figure {
        key: "errors",
        title: "app errors during the step",
        unit: Unit::Count,
    },
    Figure {
        key: "wal_bytes",
        title: "WAL",
        unit: Unit::Bytes,
    },
    Figure {
        key: "table_bytes",
        title: "table bytes after the step",
        unit: Unit::Bytes,
    },
    Figure {
        key: "index_bytes",
        title: "index bytes after the step",
        unit: Unit::Bytes,
    },
    Figure {
        key: "replica_lag_peak_ms",
        title: "replica lag peak",
        unit: Unit::Ms,
    },
    Figure {
        key: "replica_lag_peak_bytes",
        title: "replica lag peak (bytes)",
        unit: Unit::Bytes,
    },
];

/// The index of `key` in [`FIGURES`].
pub fn figure(key: &str) -> usize {
    FIGURES
        .iter()
        .position(|f| f.key == key)
        .expect("a known figure")
}

/// One step of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRow {
    pub phase: String,
    pub step: String,
    /// Aligned with [`FIGURES`].
    pub values: Vec<Option<f64>>,
    /// The longest blocking lock's relation and what it blocks (`writes`,
    /// `reads+writes`), when the step held one.
    pub blocking: Option<(String, String)>,
    /// The step's first statement.
    pub sql: Option<String>,
    /// How it ended: run.json's `outcome` (`ok`, `error`, `lock_timeout`,
    /// `statement_timeout`, `cancelled`, `expected_error`), else
    /// summary.json's.
    pub outcome: String,
}

impl StepRow {
    /// "phase / step", as budgets and findings name it.
    pub fn label(&self) -> String {
        format!("{} / {}", self.phase, self.step)
    }

    /// Whether the step ran to its end, so that its figures are the
    /// migration's at this size: `ok`, or `expected_error` (it failed as
    /// the scenario says it should and the migration went on — that
    /// failure is what is rehearsed). A step that failed, timed out or was
    /// cancelled stopped part way: its duration and holds are of a
    /// migration that did not happen, and are not fitted.
    pub fn completed(&self) -> bool {
        matches!(self.outcome.as_str(), "ok" | "expected_error")
    }
}

/// One combination and what its run directory holds.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub cell: Cell,
    /// The open-loop rate it ran at: `--rate`'s, else the scenario's own
    /// (None: a closed-loop scenario without `--rate`).
    pub rate: Option<f64>,
    /// The major version of the server it ran on (run.json's
    /// `server_version_num`), else the `--pg-version` asked; None when
    /// neither is known (no run directory, no flag).
    pub pg_version: Option<String>,
    /// Its run directory relative to the sweep directory.
    pub run_dir: Option<String>,
    pub steps: Vec<StepRow>,
    /// The titles of its `overloaded_baseline` findings: an app that could
    /// not keep up before the migration, so its latency figures at this
    /// rate are queueing, not the migration's. Empty when every app kept up;
    /// None without a summary.json (the run stopped before it).
    pub overloaded: Option<Vec<String>>,
}

impl Measured {
    /// Whether its rehearsal reached a verdict (pass or budget breached).
    /// A failed one (exit 2–4, a signal) or one not run did not: the
    /// answer names it and its unfinished steps are not fitted.
    pub fn succeeded(&self) -> bool {
        matches!(self.cell.exit_code, Some(exit::OK | exit::BUDGET_BREACHED))
    }
}

/// Read every cell's run directory (none: no steps). `own_rate`: the
/// scenario's rate, which a cell without `--rate` ran at.
pub fn read_all(sweep_dir: &Path, cells: &[Cell], own_rate: Option<f64>) -> Vec<Measured> {
    cells
        .iter()
        .map(|c| {
            let summary = c
                .run_dir
                .as_deref()
                .and_then(|d| json_file(&d.join("summary.json")));
            let run = c
                .run_dir
                .as_deref()
                .and_then(|d| json_file(&d.join(crate::record::RUN_JSON)));
            Measured {
                cell: c.clone(),
                rate: c.rate.or(own_rate),
                pg_version: run
                    .as_ref()
                    .and_then(server_major)
                    .or_else(|| c.version.clone()),
                run_dir: c
                    .run_dir
                    .as_ref()
                    .map(|d| d.strip_prefix(sweep_dir).unwrap_or(d).display().to_string()),
                steps: c
                    .run_dir
                    .as_deref()
                    .zip(summary.as_ref())
                    .map(|(d, s)| read_steps(d, s, run.as_ref()))
                    .unwrap_or_default(),
                overloaded: summary.as_ref().map(overloaded_apps),
            }
        })
        .collect()
}

/// The major version run.json's `server_version_num` names ("17").
fn server_major(run: &Value) -> Option<String> {
    let num = run["server_version_num"].as_u64().filter(|n| *n > 0)?;
    Some((num / 10_000).to_string())
}

/// A run directory's summary.json or run.json; None when it is missing or
/// unreadable (the run stopped before it was written): for summary.json,
/// no steps, no findings.
fn json_file(path: &Path) -> Option<Value> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
}

/// The titles of summary.json's `overloaded_baseline` findings.
fn overloaded_apps(summary: &Value) -> Vec<String> {
    summary["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["kind"] == crate::analyze::findings::overloaded_baseline::KIND.as_str())
        .filter_map(|f| f["title"].as_str().map(str::to_string))
        .collect()
}

/// The steps of one run directory, from its summary.json; each step's
/// outcome from run.json, which tells `expected_error` from `error`
/// (summary.json's is the statements' and says `error` for both).
fn read_steps(dir: &Path, summary: &Value, run: Option<&Value>) -> Vec<StepRow> {
    let table_bytes = server_samples(&dir.join("server.csv"));
    let outcome = |row: &StepRow| {
        run.and_then(|r| r["steps"].as_array())
            .into_iter()
            .flatten()
            .find(|s| s["phase"] == row.phase.as_str() && s["step"] == row.step.as_str())
            .and_then(|s| s["outcome"].as_str())
            .map(str::to_string)
    };
    summary["steps"]
        .as_array()
        .map(|steps| {
            steps
                .iter()
                .map(|s| {
                    let mut row = step_row(s, &table_bytes);
                    if let Some(o) = outcome(&row) {
                        row.outcome = o;
                    }
                    row
                })
                .collect()
        })
        .unwrap_or_default()
}

fn step_row(s: &Value, table_bytes: &[(f64, f64)]) -> StepRow {
    let num = |v: &Value| v.as_f64();
    let blocking = &s["longest_blocking_lock"];
    let lag = &s["replica_lag"];
    let end_ms = num(&s["end_ms"]);
    let mut values = vec![None; FIGURES.len()];
    let mut set = |key: &str, v: Option<f64>| values[figure(key)] = v;
    set("duration_ms", num(&s["duration_ms"]));
    set("blocking_hold_ms", num(&blocking["held_ms"]));
    set("worst_app_wait_ms", num(&s["worst_app_wait"]["wait_ms"]));
    set("p99_during_ms", num(&s["latency"]["p99_ms"]));
    set("errors", num(&s["latency"]["errors"]));
    set("wal_bytes", num(&s["wal_bytes"]));
    // steps.csv's sizes at the step's end (summary.json `footprint`); a run
    // recorded before steps.csv: the first server.csv sample after it.
    let footprint = &s["footprint"];
    set(
        "table_bytes",
        num(&footprint["table_bytes_after"])
            .or_else(|| end_ms.and_then(|t| sample_after(table_bytes, t))),
    );
    set("index_bytes", num(&footprint["index_bytes_after"]));
    set("replica_lag_peak_ms", num(&lag["peak_ms"]));
    set("replica_lag_peak_bytes", num(&lag["peak_bytes"]));
    StepRow {
        phase: s["phase"].as_str().unwrap_or_default().to_string(),
        step: s["step"].as_str().unwrap_or_default().to_string(),
        values,
        blocking: blocking["relation"].as_str().map(|r| {
            (
                r.to_string(),
                blocking["blocks"].as_str().unwrap_or("writes").to_string(),
            )
        }),
        sql: s["sql"][0].as_str().map(str::to_string),
        outcome: s["outcome"].as_str().unwrap_or_default().to_string(),
    }
}

/// server.csv's (t_ms, table_bytes) samples that have a size.
fn server_samples(path: &Path) -> Vec<(f64, f64)> {
    let Ok(mut r) = csv::Reader::from_path(path) else {
        return Vec::new();
    };
    let Some(col) = r
        .headers()
        .ok()
        .and_then(|h| h.iter().position(|c| c == "table_bytes"))
    else {
        return Vec::new();
    };
    r.records()
        .filter_map(|rec| {
            let rec = rec.ok()?;
            Some((rec.get(0)?.parse().ok()?, rec.get(col)?.parse().ok()?))
        })
        .collect()
}

/// The first sample at or after `t_ms` (the table once the step is done),
/// else the last one.
fn sample_after(samples: &[(f64, f64)], t_ms: f64) -> Option<f64> {
    samples
        .iter()
        .find(|(t, _)| *t >= t_ms)
        .or(samples.last())
        .map(|s| s.1)
}

/// Every step of the sweep, in the order the runs first show them.
pub fn step_keys(measured: &[Measured]) -> Vec<(String, String)> {
    let mut keys: Vec<(String, String)> = Vec::new();
    for s in measured.iter().flat_map(|m| &m.steps) {
        let k = (s.phase.clone(), s.step.clone());
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    keys
}

/// sweep.csv: `pg_version, rows, rate` (the rate it ran at, the
/// scenario's own included), `exit_code, outcome, run_dir,
/// overloaded_baseline` (the apps that could not keep up before the
/// migration, `;`-separated; empty when all did), then per step
/// `<phase>/<step>:outcome` and `<phase>/<step>:<figure>` for every figure.
pub fn write_csv(path: &Path, measured: &[Measured]) -> Result<()> {
    let keys = step_keys(measured);
    let mut w = csv::Writer::from_path(path).map_err(anyhow::Error::new)?;
    let mut header: Vec<String> = [
        "pg_version",
        "rows",
        "rate",
        "exit_code",
        "outcome",
        "run_dir",
        "overloaded_baseline",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (phase, step) in &keys {
        header.push(format!("{phase}/{step}:outcome"));
        header.extend(FIGURES.iter().map(|f| format!("{phase}/{step}:{}", f.key)));
    }
    w.write_record(&header).map_err(anyhow::Error::new)?;
    for m in measured {
        let mut row = vec![
            m.pg_version.clone().unwrap_or_default(),
            m.cell.rows.to_string(),
            m.rate.map(|r| r.to_string()).unwrap_or_default(),
            m.cell.exit_code.map(|c| c.to_string()).unwrap_or_default(),
            m.cell.outcome.clone(),
            m.run_dir.clone().unwrap_or_default(),
            m.overloaded.as_deref().unwrap_or_default().join("; "),
        ];
        for (phase, step) in &keys {
            let s = m
                .steps
                .iter()
                .find(|s| &s.phase == phase && &s.step == step);
            row.push(s.map(|s| s.outcome.clone()).unwrap_or_default());
            row.extend((0..FIGURES.len()).map(|i| {
                s.and_then(|s| s.values[i])
                    .map(|v| crate::pg::round3(v).to_string())
                    .unwrap_or_default()
            }));
        }
        w.write_record(&row).map_err(anyhow::Error::new)?;
    }
    w.flush()?;
    Ok(())
}
