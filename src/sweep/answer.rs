//! The sweep's answer: every figure of every step fitted against size at
//! each version and rate (`fit.rs`), extrapolated to the target, and said
//! in words. `render.rs` writes it out (`sweep.json`, `sweep.md`).
//!
//! Only what was measured to the end is fitted: a step's figures from a
//! run where that step did not complete (it failed, timed out, was
//! cancelled) are left out and named in the fit's caveats, while the steps
//! that completed before it still count. A version and rate at which no
//! rehearsal succeeded gets no capacity answer at all — the migration does
//! not get through there — only which runs failed and why; its fits are
//! kept (what was measured) but not extrapolated.

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
    /// (rows, value) measured where the step completed, ascending by rows.
    pub points: Vec<(f64, f64)>,
    /// (rows, the step's outcome) where it ran but did not complete: not
    /// fitted.
    pub not_fitted: Vec<(u64, String)>,
    pub fit: std::result::Result<Fit, NoFit>,
    /// At the target, when there is one and a fit (its `value` None when
    /// the fit cannot give one: `not_extrapolated`).
    pub prediction: Option<Prediction>,
    /// No rehearsal of its version and rate succeeded: not extrapolated.
    pub no_success: bool,
    /// The target is more than 100× the largest measured size.
    pub far: bool,
}

impl FigureFit {
    /// What a reader must be told about this fit, in words.
    pub fn caveats(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Err(e) = &self.fit {
            out.push(e.to_string());
        }
        for (outcome, sizes) in group(self.not_fitted.iter().map(|(n, o)| (o.clone(), *n))) {
            out.push(format!(
                "the step did not complete at {} rows ({outcome}): not fitted there",
                sizes_text(&sizes)
            ));
        }
        if let Ok(f) = &self.fit {
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
        if self.no_success {
            out.push("no rehearsal at this version and rate succeeded: not extrapolated".into());
        }
        if let Some(p) = &self.prediction {
            if let Some(why) = p.not_extrapolated {
                out.push(why.to_string());
            }
            if p.low_clamped {
                out.push("the 95% interval reaches below 0: its low end is clamped at 0 (the scatter is large against the value)".into());
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

    /// The extrapolated value, when there is one.
    pub fn value(&self) -> Option<f64> {
        self.prediction.as_ref().and_then(|p| p.value)
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
        let mut fits = Vec::new();
        for (phase, step) in collect::step_keys(measured) {
            for version in &versions {
                for &rate in &rates {
                    let series = series_of(measured, version, rate);
                    for figure in 0..FIGURES.len() {
                        fits.extend(fit_figure(&series, &phase, &step, figure, target));
                    }
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

    /// Per version and rate: the step that blocks the app longest (else
    /// the longest step), at the target when there is one; then the runs
    /// that did not succeed, and an overloaded baseline. When no run there
    /// succeeded, only that.
    pub fn sentences(&self, measured: &[Measured]) -> Vec<String> {
        let mut out = Vec::new();
        for version in &self.versions {
            for &rate in &self.rates {
                out.extend(self.series_sentences(version, rate, measured));
            }
        }
        out
    }

    fn series_sentences(
        &self,
        version: &Option<String>,
        rate: Option<f64>,
        measured: &[Measured],
    ) -> Vec<String> {
        let on = match version {
            Some(v) => format!("on PostgreSQL {v}, "),
            None => String::new(),
        };
        let at_rate = match self.rates.len() {
            1 => String::new(),
            _ => format!(" and {} queries/s", rate_label(rate)),
        };
        // "sweep-x on PostgreSQL 17 at 200 queries/s": whom a sentence
        // without a step is about.
        let whom = format!(
            "{}{}{}",
            self.scenario,
            version
                .as_ref()
                .map(|v| format!(" on PostgreSQL {v}"))
                .unwrap_or_default(),
            match self.rates.len() {
                1 => String::new(),
                _ => format!(" at {} queries/s", rate_label(rate)),
            }
        );
        let series = series_of(measured, version, rate);
        let failed: Vec<&Measured> = series.iter().copied().filter(|m| !m.succeeded()).collect();
        if !series.is_empty() && failed.len() == series.len() {
            return vec![format!(
                "{whom}: no rehearsal succeeded, so there is no capacity answer and nothing is extrapolated — {}",
                failures(&failed)
            )];
        }
        let mut out = Vec::new();
        let worst = self.worst(version, rate, "blocking_hold_ms");
        match worst
            .map(|f| (f, true))
            .or(self.worst(version, rate, "duration_ms").map(|f| (f, false)))
        {
            Some((lead, blocks)) => {
                out.push(on.clone() + &self.sentence(lead, blocks, &at_rate, measured))
            }
            None => out.push(format!("{whom}: no step measured (see the runs' outcomes)")),
        }
        if !failed.is_empty() {
            // With several rates, say which one these failures are of.
            let rate_part = match self.rates.len() {
                1 => String::new(),
                _ => format!("at {} queries/s, ", rate_label(rate)),
            };
            out.push(format!(
                "{on}{rate_part}not every rehearsal succeeded; a step that did not complete is not fitted at that size — {}",
                failures(&failed)
            ));
        }
        if let Some(w) = overload_warning(version, rate, measured) {
            out.push(on + &w);
        }
        out
    }

    /// The step whose `key` figure is largest at the target (or, without
    /// a value there, at the largest measured size), at a version and rate.
    fn worst(&self, version: &Option<String>, rate: Option<f64>, key: &str) -> Option<&FigureFit> {
        let i = collect::figure(key);
        let value = |f: &FigureFit| f.value().or(f.points.last().map(|p| p.1)).unwrap_or(0.0);
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
            .find(|s| s.phase == f.phase && s.step == f.step && s.completed());
        let what = row
            .and_then(|r| r.sql.clone())
            .map(|sql| format!("`{}`", shorten(&sql)))
            .unwrap_or_else(|| format!("step {} / {}", f.phase, f.step));
        let verb = match (blocks, row.and_then(|r| r.blocking.clone())) {
            (true, Some((rel, b))) => format!("block {b} on {rel} for"),
            _ => "run for".to_string(),
        };
        let unit = FIGURES[f.figure].unit;
        let mut s = match (&f.fit, f.prediction.as_ref(), f.value(), self.target) {
            (Ok(fit), Some(p), Some(value), Some(n)) => {
                let interval = match (p.low, p.high) {
                    (Some(_), Some(hi)) if p.low_clamped => {
                        format!("95% interval up to {}; ", human(hi, unit))
                    }
                    (Some(lo), Some(hi)) => {
                        format!("95% interval {}–{}; ", human(lo, unit), human(hi, unit))
                    }
                    _ => String::new(),
                };
                format!(
                    "at {} rows{at_rate} {what} would {verb} about {} ({interval}R² {:.2}, {} sizes, {})",
                    count(n as f64),
                    human(value, unit),
                    fit.r2,
                    fit.points,
                    fit.model.formula()
                )
            }
            _ => {
                // No value at the target: what was measured at the
                // largest size, in the past tense.
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

/// The cells of one version and rate, in the sweep's order (sizes
/// ascending).
fn series_of<'a>(
    measured: &'a [Measured],
    version: &Option<String>,
    rate: Option<f64>,
) -> Vec<&'a Measured> {
    measured
        .iter()
        .filter(|m| &m.cell.version == version && m.rate == rate)
        .collect()
}

/// One figure of one step fitted over a series: the sizes where the step
/// completed, extrapolated to `target` unless no rehearsal of the series
/// succeeded. None when no completed run has the figure.
fn fit_figure(
    series: &[&Measured],
    phase: &str,
    step: &str,
    figure: usize,
    target: Option<u64>,
) -> Option<FigureFit> {
    let mut points = Vec::new();
    let mut not_fitted = Vec::new();
    for m in series {
        let Some(s) = m.steps.iter().find(|s| s.phase == phase && s.step == step) else {
            continue;
        };
        if !s.completed() {
            not_fitted.push((m.cell.rows, s.outcome.clone()));
        } else if let Some(v) = s.values[figure] {
            points.push((m.cell.rows as f64, v));
        }
    }
    let first = series.first()?;
    if points.is_empty() {
        return None;
    }
    let no_success = !series.iter().any(|m| m.succeeded());
    let fitted = fit::best_fit(&points);
    let largest = points.last().map(|p| p.0).unwrap_or(0.0);
    let prediction = match (&fitted, target) {
        (Ok(f), Some(n)) if !no_success => Some(f.predict_non_negative(n as f64)),
        _ => None,
    };
    let far = prediction.as_ref().is_some_and(|p| p.value.is_some())
        && target.is_some_and(|n| fit::is_far(n as f64, largest));
    Some(FigureFit {
        phase: phase.to_string(),
        step: step.to_string(),
        version: first.cell.version.clone(),
        rate: first.rate,
        figure,
        points,
        not_fitted,
        fit: fitted,
        prediction,
        no_success,
        far,
    })
}

/// The runs that did not succeed, grouped by how they ended: "at 500, 1k
/// rows: exit 4, <outcome>; at 2k rows: not run (SIGINT)".
fn failures(failed: &[&Measured]) -> String {
    let how = |m: &Measured| match m.cell.exit_code {
        Some(code) => format!("exit {code}, {}", one_line(&m.cell.outcome)),
        None => one_line(&m.cell.outcome),
    };
    group(failed.iter().map(|m| (how(m), m.cell.rows)))
        .into_iter()
        .map(|(how, sizes)| format!("at {} rows: {how}", sizes_text(&sizes)))
        .collect::<Vec<_>>()
        .join("; ")
}

/// An outcome on one line, at most 200 characters: an error's text can
/// carry a hint and a statement over several lines.
fn one_line(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    match one.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one[..i]),
        None => one,
    }
}

/// (key, size) pairs grouped by key, keys in the order first seen.
fn group(items: impl Iterator<Item = (String, u64)>) -> Vec<(String, Vec<u64>)> {
    let mut out: Vec<(String, Vec<u64>)> = Vec::new();
    for (key, n) in items {
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some((_, sizes)) => sizes.push(n),
            None => out.push((key, vec![n])),
        }
    }
    out
}

/// "500, 1k".
fn sizes_text(sizes: &[u64]) -> String {
    sizes
        .iter()
        .map(|&n| count(n as f64))
        .collect::<Vec<_>>()
        .join(", ")
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
    let cells: Vec<&Measured> = series_of(measured, version, rate)
        .into_iter()
        .filter(|m| m.overloaded.as_ref().is_some_and(|o| !o.is_empty()))
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
