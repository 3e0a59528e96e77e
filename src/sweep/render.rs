//! The sweep's answer written out: `sweep.json` for machines, `sweep.md`
//! (the sentences, then the fits and the runs as tables) for the capacity
//! review, and how both put figures in words (sizes in MiB, as the run
//! summaries do).

use std::path::Path;

use serde::Serialize;

use super::answer::Answer;
use super::collect::{Measured, Unit, FIGURES};
use super::fit::{self, Fit, Prediction};
use super::rate_label;
use crate::error::Result;

impl Answer {
    /// sweep.json.
    pub fn write_json(&self, path: &Path, measured: &[Measured]) -> Result<()> {
        let json = SweepJson {
            scenario: &self.scenario,
            sizes: &self.sizes,
            pg_versions: self.versions.iter().flatten().cloned().collect(),
            rates: self.rates.clone(),
            extrapolate: self.target,
            answer: self.sentences(measured),
            poor_r2_below: fit::POOR_R2,
            far_factor: fit::FAR_FACTOR,
            cells: measured
                .iter()
                .map(|m| CellJson {
                    pg_version: m.pg_version.as_deref(),
                    rows: m.cell.rows,
                    rate: m.rate,
                    exit_code: m.cell.exit_code,
                    outcome: &m.cell.outcome,
                    run_dir: m.run_dir.as_deref(),
                    overloaded_baseline: m.overloaded.as_deref(),
                })
                .collect(),
            fits: self
                .fits
                .iter()
                .map(|f| FitJson {
                    phase: &f.phase,
                    step: &f.step,
                    pg_version: f.version.as_deref(),
                    rate: f.rate,
                    figure: FIGURES[f.figure].key,
                    points: &f.points,
                    not_fitted: f
                        .not_fitted
                        .iter()
                        .map(|(rows, outcome)| NotFittedJson {
                            rows: *rows,
                            outcome,
                        })
                        .collect(),
                    fit: f.fit.as_ref().ok(),
                    prediction: f.prediction.as_ref(),
                    caveats: f.caveats(),
                })
                .collect(),
        };
        let text = serde_json::to_string_pretty(&json).map_err(anyhow::Error::new)?;
        std::fs::write(path, text + "\n")?;
        Ok(())
    }

    /// sweep.md: the answer, then the fits and the runs as tables.
    pub fn markdown(&self, measured: &[Measured]) -> String {
        let mut md = format!("# Sweep: {}\n\n", self.scenario);
        for s in self.sentences(measured) {
            md.push_str(&format!("- {s}\n"));
        }
        let versions: Vec<&str> = self.versions.iter().flatten().map(String::as_str).collect();
        if !versions.is_empty() {
            md.push_str(&format!("\nPostgreSQL versions: {}.", versions.join(", ")));
        }
        md.push_str(&format!(
            "\nSizes (rows of the largest table): {}. Rates: {}. Target: {}.\n\n",
            self.sizes
                .iter()
                .map(|&n| count(n as f64))
                .collect::<Vec<_>>()
                .join(", "),
            self.rates
                .iter()
                .map(|&r| rate_label(r))
                .collect::<Vec<_>>()
                .join(", "),
            self.target
                .map(|n| count(n as f64))
                .unwrap_or_else(|| "none".into())
        ));
        md.push_str("## Fits\n\nEach figure against size at each version and rate: the better of a + b·n and a + b·n·ln n (least squares) over the sizes where the step completed; the interval is a 95% prediction interval from the residuals.\n\n");
        md.push_str("| step | figure | version | rate | measured | model | R² | at target | notes |\n|---|---|---|---|---|---|---|---|---|\n");
        for f in &self.fits {
            let unit = FIGURES[f.figure].unit;
            let measured = f
                .points
                .iter()
                .map(|(n, v)| format!("{}: {}", count(*n), human(*v, unit)))
                .collect::<Vec<_>>()
                .join(", ");
            let (model, r2) = match &f.fit {
                Ok(fit) => (fit.model.formula().to_string(), format!("{:.3}", fit.r2)),
                Err(_) => ("—".into(), "—".into()),
            };
            let at = match &f.prediction {
                Some(p) => at_target(p, unit),
                None => "—".into(),
            };
            md.push_str(&format!(
                "| {} / {} | {} | {} | {} | {measured} | {model} | {r2} | {at} | {} |\n",
                f.phase,
                f.step,
                FIGURES[f.figure].title,
                f.version.as_deref().unwrap_or("—"),
                rate_label(f.rate),
                f.caveats().join("; ")
            ));
        }
        md.push_str(&runs_table(measured));
        md
    }
}

/// The fits table's "at target" cell: the value with its interval ("up
/// to" when its low end was clamped at 0), or why there is none. Never a
/// clamped value.
fn at_target(p: &Prediction, unit: Unit) -> String {
    let Some(v) = p.value else {
        return "not extrapolated".into();
    };
    match (p.low, p.high) {
        (Some(_), Some(hi)) if p.low_clamped => {
            format!("{} (up to {})", human(v, unit), human(hi, unit))
        }
        (Some(lo), Some(hi)) => format!(
            "{} ({}–{})",
            human(v, unit),
            human(lo, unit),
            human(hi, unit)
        ),
        _ => human(v, unit),
    }
}

/// sweep.md's runs table: every combination, how it ended.
fn runs_table(measured: &[Measured]) -> String {
    let mut md = String::from("\n## Runs\n\n| PostgreSQL | rows | rate | exit | outcome | baseline | run directory |\n|---|---|---|---|---|---|---|\n");
    for m in measured {
        let baseline = match m.overloaded.as_deref() {
            None => "—".to_string(),
            Some([]) => "kept up".to_string(),
            Some(titles) => format!("**overloaded**: {}", titles.join("; ")),
        };
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {baseline} | {} |\n",
            m.pg_version.as_deref().unwrap_or("—"),
            m.cell.rows,
            rate_label(m.rate),
            m.cell
                .exit_code
                .map(|c| c.to_string())
                .unwrap_or("—".into()),
            m.cell.outcome,
            m.run_dir.as_deref().unwrap_or("—")
        ));
    }
    md
}

#[derive(Serialize)]
struct SweepJson<'a> {
    scenario: &'a str,
    sizes: &'a [u64],
    /// `--pg-version` as asked; empty without it.
    pg_versions: Vec<String>,
    /// Queries/s, as numbers (the cells' and fits' `rate`); null: a
    /// closed-loop scenario without `--rate`.
    rates: Vec<Option<f64>>,
    extrapolate: Option<u64>,
    answer: Vec<String>,
    poor_r2_below: f64,
    far_factor: f64,
    cells: Vec<CellJson<'a>>,
    fits: Vec<FitJson<'a>>,
}

#[derive(Serialize)]
struct CellJson<'a> {
    pg_version: Option<&'a str>,
    rows: u64,
    rate: Option<f64>,
    exit_code: Option<u8>,
    outcome: &'a str,
    run_dir: Option<&'a str>,
    /// The titles of the run's `overloaded_baseline` findings.
    /// null: no summary.json to tell.
    overloaded_baseline: Option<&'a [String]>,
}

#[derive(Serialize)]
struct FitJson<'a> {
    phase: &'a str,
    step: &'a str,
    pg_version: Option<&'a str>,
    rate: Option<f64>,
    figure: &'static str,
    points: &'a [(f64, f64)],
    not_fitted: Vec<NotFittedJson<'a>>,
    fit: Option<&'a Fit>,
    prediction: Option<&'a Prediction>,
    caveats: Vec<String>,
}

#[derive(Serialize)]
struct NotFittedJson<'a> {
    rows: u64,
    /// The step's outcome there (`error`, `lock_timeout`, ...).
    outcome: &'a str,
}

/// A statement on one line, at most 60 characters.
pub fn shorten(sql: &str) -> String {
    crate::sql::one_line(sql, 60)
}

/// A row count as people say it: 400M, 1.6M, 32k, 950.
pub fn count(n: f64) -> String {
    let (v, suffix) = match n {
        n if n >= 1e9 => (n / 1e9, "G"),
        n if n >= 1e6 => (n / 1e6, "M"),
        n if n >= 1e3 => (n / 1e3, "k"),
        n => (n, ""),
    };
    let s = format!("{v:.1}");
    format!("{}{suffix}", s.trim_end_matches(".0"))
}

/// A figure with its unit, rounded for people: 38 min, 2.4 s, 84 ms; bytes
/// in binary units as the run summaries print them (1.1 GiB, 24.0 MiB).
/// Callers pass values that cannot be negative (predictions are refused
/// below 0, interval ends clamped); bytes below 0 would read 0 B.
pub fn human(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => match v {
            v if v >= 3_600_000.0 => format!("{:.1} h", v / 3_600_000.0),
            v if v >= 600_000.0 => format!("{:.0} min", v / 60_000.0),
            v if v >= 60_000.0 => format!("{:.1} min", v / 60_000.0),
            v if v >= 1_000.0 => format!("{:.1} s", v / 1_000.0),
            // A sub-millisecond figure is not 0.
            v if v > 0.0 && v < 10.0 => format!("{v:.2} ms"),
            v => format!("{v:.0} ms"),
        },
        Unit::Bytes => crate::analyze::fmt_bytes(v.max(0.0).round() as u64),
        Unit::Count => format!("{v:.0}"),
    }
}
