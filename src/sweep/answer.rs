//! The sweep's answer: every figure of every step fitted against size at
//! each version and rate (`fit.rs`), extrapolated to the target, and said in words —
//! `sweep.json` for machines, `sweep.md` (a sentence, then tables) for the
//! capacity review.

use std::path::Path;

use serde::Serialize;

use super::collect::{self, Measured, Unit, FIGURES};
use super::fit::{self, Fit, NoFit, Prediction};
use super::rate_label;
use crate::error::Result;

/// One figure of one step at one version and rate, fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureFit {
    pub phase: String,
    pub step: String,
    /// The `--pg-version` major; None without the flag.
    pub version: Option<String>,
    pub rate: Option<f64>,
    /// Index into [`FIGURES`].
    pub figure: usize,
    /// (rows, value) measured, ascending by rows.
    pub points: Vec<(f64, f64)>,
    pub fit: std::result::Result<Fit, NoFit>,
    /// At the target, when there is one and a fit.
    pub prediction: Option<Prediction>,
    /// The target is more than 100× the largest measured size.
    pub far: bool,
}

impl FigureFit {
    /// What a reader must be told about this fit, in words.
    pub fn caveats(&self) -> Vec<String> {
        let mut out = Vec::new();
        match &self.fit {
            Err(e) => out.push(e.to_string()),
            Ok(f) => {
                if f.is_poor() {
                    out.push(format!(
                        "poor fit (R² {:.2} < {}): the figure does not follow size",
                        f.r2,
                        fit::POOR_R2
                    ));
                }
                if f.points == 2 {
                    out.push("no interval with two points".into());
                }
            }
        }
        if self.far {
            let largest = self.points.last().map(|p| p.0).unwrap_or(0.0);
            let target = self.prediction.as_ref().map(|p| p.n).unwrap_or(0.0);
            out.push(format!(
                "the target is {:.0}× the largest measured size ({}): more than {}× beyond what was measured",
                target / largest,
                count(largest),
                fit::FAR_FACTOR
            ));
        }
        out
    }
}

/// Every fit of a sweep and the target.
#[derive(Debug, Clone)]
pub struct Answer {
    pub scenario: String,
    pub sizes: Vec<u64>,
    /// The `--pg-version` majors in the order asked; `[None]` without.
    pub versions: Vec<Option<String>>,
    pub rates: Vec<Option<f64>>,
    pub target: Option<u64>,
    pub fits: Vec<FigureFit>,
}

impl Answer {
    pub fn new(scenario: &str, measured: &[Measured], target: Option<u64>) -> Answer {
        let mut sizes: Vec<u64> = measured.iter().map(|m| m.cell.rows).collect();
        sizes.sort_unstable();
        sizes.dedup();
        let versions = distinct(measured.iter().map(|m| m.cell.version.clone()));
        let rates = distinct(measured.iter().map(|m| m.cell.rate));
        let series: Vec<(Option<String>, Option<f64>)> = versions
            .iter()
            .flat_map(|v| rates.iter().map(move |r| (v.clone(), *r)))
            .collect();
        let mut fits = Vec::new();
        for (phase, step) in collect::step_keys(measured) {
            for (version, rate) in &series {
                for figure in 0..FIGURES.len() {
                    let points: Vec<(f64, f64)> = measured
                        .iter()
                        .filter(|m| &m.cell.version == version && m.cell.rate == *rate)
                        .filter_map(|m| {
                            let s = m
                                .steps
                                .iter()
                                .find(|s| s.phase == phase && s.step == step)?;
                            Some((m.cell.rows as f64, s.values[figure]?))
                        })
                        .collect();
                    if points.is_empty() {
                        continue;
                    }
                    let fitted = fit::best_fit(&points);
                    let largest = points.last().map(|p| p.0).unwrap_or(0.0);
                    let prediction = match (&fitted, target) {
                        (Ok(f), Some(n)) => Some(f.predict(n as f64)),
                        _ => None,
                    };
                    fits.push(FigureFit {
                        phase: phase.clone(),
                        step: step.clone(),
                        version: version.clone(),
                        rate: *rate,
                        figure,
                        far: prediction.is_some()
                            && target.is_some_and(|n| fit::is_far(n as f64, largest)),
                        points,
                        fit: fitted,
                        prediction,
                    });
                }
            }
        }
        Answer {
            scenario: scenario.to_string(),
            sizes,
            versions,
            rates,
            target,
            fits,
        }
    }

    /// The fit of `figure` (a key of [`FIGURES`]) for a step at a version
    /// and rate.
    pub fn find(
        &self,
        phase: &str,
        step: &str,
        version: Option<&str>,
        rate: Option<f64>,
        key: &str,
    ) -> Option<&FigureFit> {
        let i = collect::figure(key);
        self.fits.iter().find(|f| {
            f.phase == phase
                && f.step == step
                && f.version.as_deref() == version
                && f.rate == rate
                && f.figure == i
        })
    }

    /// One sentence per version and rate: the step that blocks the app
    /// longest (else the longest step), at the target when there is one.
    pub fn sentences(&self, measured: &[Measured]) -> Vec<String> {
        let mut out = Vec::new();
        for version in &self.versions {
            for &rate in &self.rates {
                let on = match version {
                    Some(v) => format!("on PostgreSQL {v}, "),
                    None => String::new(),
                };
                let at_rate = match self.rates.len() {
                    1 => String::new(),
                    _ => format!(" and {} queries/s", rate_label(rate)),
                };
                let worst = self.worst(version, rate, "blocking_hold_ms");
                let Some((lead, blocks)) = worst
                    .map(|f| (f, true))
                    .or(self.worst(version, rate, "duration_ms").map(|f| (f, false)))
                else {
                    let at_version = match version {
                        Some(v) => format!(" on PostgreSQL {v}"),
                        None => String::new(),
                    };
                    out.push(format!(
                        "{}{at_version}{at_rate}: no step measured (see the runs' outcomes)",
                        self.scenario
                    ));
                    continue;
                };
                out.push(on.clone() + &self.sentence(lead, blocks, &at_rate, measured));
                if let Some(w) = overload_warning(version, rate, measured) {
                    out.push(on + &w);
                }
            }
        }
        out
    }

    /// The step whose `key` figure is largest at the target (or at the
    /// largest measured size), at a version and rate.
    fn worst(&self, version: &Option<String>, rate: Option<f64>, key: &str) -> Option<&FigureFit> {
        let i = collect::figure(key);
        let value = |f: &FigureFit| match &f.prediction {
            Some(p) => p.value,
            None => f.points.last().map(|p| p.1).unwrap_or(0.0),
        };
        self.fits
            .iter()
            .filter(|f| &f.version == version && f.rate == rate && f.figure == i)
            .max_by(|a, b| value(a).total_cmp(&value(b)))
    }

    fn sentence(
        &self,
        f: &FigureFit,
        blocks: bool,
        at_rate: &str,
        measured: &[Measured],
    ) -> String {
        let row = measured
            .iter()
            .rev()
            .filter(|m| m.cell.version == f.version && m.cell.rate == f.rate)
            .flat_map(|m| m.steps.iter())
            .find(|s| s.phase == f.phase && s.step == f.step);
        let what = row
            .and_then(|r| r.sql.clone())
            .map(|sql| format!("`{}`", shorten(&sql)))
            .unwrap_or_else(|| format!("step {} / {}", f.phase, f.step));
        let verb = match (blocks, row.and_then(|r| r.blocking.clone())) {
            (true, Some((rel, b))) => format!("block {b} on {rel} for"),
            _ => "run for".to_string(),
        };
        let unit = FIGURES[f.figure].unit;
        let mut s = match (&f.fit, &f.prediction, self.target) {
            (Ok(fit), Some(p), Some(n)) => {
                let interval = match (p.low, p.high) {
                    (Some(lo), Some(hi)) => format!(
                        "95% interval {}–{}; ",
                        human(lo.max(0.0), unit),
                        human(hi, unit)
                    ),
                    _ => String::new(),
                };
                format!(
                    "at {} rows{at_rate} {what} would {verb} about {} ({interval}R² {:.2}, {} sizes, {})",
                    count(n as f64),
                    human(p.value.max(0.0), unit),
                    fit.r2,
                    fit.points,
                    fit.model.formula()
                )
            }
            _ => {
                let (n, v) = f.points.last().copied().unwrap_or_default();
                let past = verb
                    .replacen("block", "blocked", 1)
                    .replacen("run for", "ran for", 1);
                let tail = match (&f.fit, self.target) {
                    (Ok(fit), None) => format!(
                        "; fit {} with R² {:.2} over {} sizes (no --extrapolate target)",
                        fit.model.formula(),
                        fit.r2,
                        fit.points
                    ),
                    _ => String::new(),
                };
                format!(
                    "at {} rows{at_rate} {what} {past} {}{tail}",
                    count(n),
                    human(v, unit)
                )
            }
        };
        let caveats = f.caveats();
        if !caveats.is_empty() {
            s.push_str(&format!(" — {}", caveats.join("; ")));
            if f.fit.is_err() && self.target.is_some() {
                s.push_str(", no extrapolation");
            }
        }
        s
    }

    /// sweep.json.
    pub fn write_json(&self, path: &Path, measured: &[Measured]) -> Result<()> {
        let json = SweepJson {
            scenario: &self.scenario,
            sizes: &self.sizes,
            pg_versions: self.versions.iter().flatten().cloned().collect(),
            rates: self.rates.iter().map(|r| rate_label(*r)).collect(),
            extrapolate: self.target,
            answer: self.sentences(measured),
            poor_r2_below: fit::POOR_R2,
            far_factor: fit::FAR_FACTOR,
            cells: measured
                .iter()
                .map(|m| CellJson {
                    pg_version: m.pg_version.as_deref(),
                    rows: m.cell.rows,
                    rate: m.cell.rate,
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
        md.push_str("## Fits\n\nEach figure against size at each version and rate: the better of a + b·n and a + b·n·ln n (least squares); the interval is a 95% prediction interval from the residuals.\n\n");
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
                Some(p) => match (p.low, p.high) {
                    (Some(lo), Some(hi)) => format!(
                        "{} ({}–{})",
                        human(p.value.max(0.0), unit),
                        human(lo.max(0.0), unit),
                        human(hi, unit)
                    ),
                    _ => human(p.value.max(0.0), unit),
                },
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
        md.push_str("\n## Runs\n\n| PostgreSQL | rows | rate | exit | outcome | baseline | run directory |\n|---|---|---|---|---|---|---|\n");
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
                rate_label(m.cell.rate),
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
}

#[derive(Serialize)]
struct SweepJson<'a> {
    scenario: &'a str,
    sizes: &'a [u64],
    /// `--pg-version` as asked; empty without it.
    pg_versions: Vec<String>,
    rates: Vec<String>,
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
    fit: Option<&'a Fit>,
    prediction: Option<&'a Prediction>,
    caveats: Vec<String>,
}

/// At one version and rate, the sizes at which an app could not keep up
/// before the migration, said as a warning: the latency figures there
/// (p99, recovery) are queueing, not the migration's; the lock figures
/// still hold.
fn overload_warning(
    version: &Option<String>,
    rate: Option<f64>,
    measured: &[Measured],
) -> Option<String> {
    let cells: Vec<&Measured> = measured
        .iter()
        .filter(|m| {
            &m.cell.version == version
                && m.cell.rate == rate
                && m.overloaded.as_ref().is_some_and(|o| !o.is_empty())
        })
        .collect();
    let first = cells.first()?;
    let sizes = cells
        .iter()
        .map(|m| count(m.cell.rows as f64))
        .collect::<Vec<_>>()
        .join(", ");
    Some(format!(
        "at {} queries/s and {sizes} rows the baseline was overloaded ({}): the app p99 there is queueing, not the migration's; the lock figures still hold",
        rate_label(rate),
        first.overloaded.as_deref().unwrap_or_default().join("; ")
    ))
}

/// The distinct items, in the order first seen.
fn distinct<T: PartialEq>(items: impl Iterator<Item = T>) -> Vec<T> {
    let mut out: Vec<T> = Vec::new();
    for i in items {
        if !out.contains(&i) {
            out.push(i);
        }
    }
    out
}

/// A statement on one line, at most 60 characters.
fn shorten(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
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

/// A figure with its unit, rounded for people: 38 min, 2.4 s, 84 ms, 1.2 GB.
pub fn human(v: f64, unit: Unit) -> String {
    match unit {
        Unit::Ms => match v {
            v if v >= 3_600_000.0 => format!("{:.1} h", v / 3_600_000.0),
            v if v >= 60_000.0 => format!("{:.0} min", v / 60_000.0),
            v if v >= 1_000.0 => format!("{:.1} s", v / 1_000.0),
            v => format!("{v:.0} ms"),
        },
        Unit::Bytes => match v {
            v if v >= 1e9 => format!("{:.1} GB", v / 1e9),
            v if v >= 1e6 => format!("{:.1} MB", v / 1e6),
            v if v >= 1e3 => format!("{:.0} kB", v / 1e3),
            v => format!("{v:.0} B"),
        },
        Unit::Count => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn people_units() {
        assert_eq!(count(400e6), "400M");
        assert_eq!(count(1.6e6), "1.6M");
        assert_eq!(count(32_000.0), "32k");
        assert_eq!(human(38.0 * 60_000.0, Unit::Ms), "38 min");
        assert_eq!(human(2_400.0, Unit::Ms), "2.4 s");
        assert_eq!(human(1.2e9, Unit::Bytes), "1.2 GB");
        assert_eq!(
            shorten("CREATE INDEX\n  i ON t (c)"),
            "CREATE INDEX i ON t (c)"
        );
    }
}
