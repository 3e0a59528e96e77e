//! The sweep's answer: every figure of every step fitted against size at
//! each version and rate (`fit.rs`), extrapolated to the target, and said
//! in words. `render.rs` writes it out (`sweep.json`, `sweep.md`).

use super::collect::{self, Measured, FIGURES};
use super::fit::{self, Fit, NoFit, Prediction};
use super::rate_label;
use super::render::{count, human, shorten};

/// One figure of one step at one version and rate, fitted.
#[derive(Debug, Clone, PartialEq)]
pub struct FigureFit {
    pub phase: String,
    pub step: String,
    /// The `--pg-version` major; None without the flag.
    pub version: Option<String>,
    /// The rate it ran at (the scenario's own without `--rate`).
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
    /// The rates run at, in the order asked (the scenario's own without
    /// `--rate`; `[None]` for a closed-loop scenario).
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
        let rates = distinct(measured.iter().map(|m| m.rate));
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
                        .filter(|m| &m.cell.version == version && m.rate == *rate)
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
            .filter(|m| m.cell.version == f.version && m.rate == f.rate)
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
                && m.rate == rate
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
