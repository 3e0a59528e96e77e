//! The side-by-side of two run directories: per step and in total, the
//! figures a reviewer weighs (strongest lock, longest blocking hold, worst
//! app wait, app p99, errors by app version, duration, rewrite, WAL), and a
//! verdict. Built only from what the run directories hold (run.json and the
//! CSVs, through `crate::analyze`), like every other report, so a compare
//! can be redone from the two directories alone.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::analyze::{self, latency, Analysis, LockFact, StepFacts};
use crate::error::exit;
use crate::locks::LockMode;
use crate::record::{Blocks, RunRecord};

/// How one side's rehearsal ended, as the command saw it.
#[derive(Debug, Clone)]
pub struct SideRun {
    pub scenario: String,
    pub exit_code: u8,
    /// "pass", "budget breached", or the error.
    pub outcome: String,
    pub run_dir: Option<PathBuf>,
}

/// What compare.json holds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// The pair both files share, if they do.
    pub pair: Option<String>,
    /// A and B, in the order given.
    pub sides: [Side; 2],
    /// Every step of either side, in the order they ran (A's first).
    pub steps: Vec<StepRow>,
    pub verdict: Verdict,
}

/// One side: how it ended and its figures over the whole migration.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Side {
    pub scenario: String,
    pub variant: Option<String>,
    pub exit_code: u8,
    pub outcome: String,
    /// The run directory, relative to the compare directory.
    pub run_dir: Option<String>,
    /// None without a readable run directory.
    pub total: Option<Figures>,
    /// Its `overloaded_baseline` findings' titles: an app that could not
    /// keep up before the migration, whose latency figures are queueing.
    pub overloaded_baseline: Vec<String>,
}

/// One step and its figures on each side (None: the step is not there).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StepRow {
    pub phase: String,
    pub step: String,
    pub cells: [Option<Figures>; 2],
}

/// The figures compared, for a step or for the whole migration.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Figures {
    /// e.g. "AccessExclusiveLock on orders".
    pub strongest_lock: Option<String>,
    /// The longest hold of a lock that blocks app reads or writes.
    pub longest_blocking_hold_ms: Option<f64>,
    /// Its mode and relation.
    pub blocking_lock: Option<String>,
    /// The longest lock wait of an app query.
    pub worst_app_wait_ms: Option<f64>,
    /// App p99 while the step (or the migration) ran.
    pub p99_ms: Option<f64>,
    /// App errors by app version while it ran.
    pub errors_by_app: Vec<AppErrors>,
    pub errors: u64,
    /// Over the whole migration only (0 for a step): app errors from the
    /// migration's start on, beyond what each app version's error rate
    /// before it predicts for as many requests. An app that fails a steady
    /// share of requests whatever the migration does (a unique violation
    /// it retries) fails more in the longer run: those are not the
    /// migration's (QA: a constant 5 % of 23505s made the naive side win).
    #[serde(default)]
    pub errors_above_baseline: u64,
    /// How many errors the baseline rates predict from the migration's
    /// start on: the background the excess is told apart from.
    #[serde(default)]
    pub baseline_errors_expected: f64,
    pub duration_ms: f64,
    /// None: unknown (a probe that failed; reports/README.md "unknown").
    pub rewrote: Option<bool>,
    /// The migration's own WAL; None where it could not be attributed.
    pub wal_bytes: Option<u64>,
    /// Indexes left INVALID at the end (run.json `invalid_indexes`): over
    /// the whole migration only, None for a step.
    pub invalid_indexes: Option<u64>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AppErrors {
    pub app: String,
    pub errors: u64,
}

/// Which side did less harm, and by which figure.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Verdict {
    /// The scenario that did less harm; None when no figure differs
    /// materially or a side has no run directory.
    pub better: Option<String>,
    /// The figure that decided ("errors", "longest_blocking_hold_ms", ...).
    pub decided_by: Option<String>,
    /// One line for people.
    pub line: String,
}

/// Build the comparison from the two sides' run directories; `base` is
/// where compare.md goes (run directories are linked relative to it).
pub fn build(pair: Option<String>, runs: [&SideRun; 2], base: &Path) -> Comparison {
    let read = |r: &SideRun| -> Option<(RunRecord, Analysis)> {
        let rec = RunRecord::read(r.run_dir.as_ref()?).ok()?;
        let a = analyze::analyze(&rec);
        Some((rec, a))
    };
    let read = [read(runs[0]), read(runs[1])];
    let mut steps: Vec<StepRow> = Vec::new();
    for (i, side) in read.iter().enumerate() {
        let Some((rec, a)) = side else { continue };
        // Each side's steps stay in its own order: a step matches a row of
        // the same name only after the row of this side's step before it;
        // else it gets a row of its own there.
        let names: Vec<(&str, &str)> = a
            .steps
            .iter()
            .map(|s| (s.phase.as_str(), s.step.as_str()))
            .collect();
        let mut next = 0;
        for (k, s) in a.steps.iter().enumerate() {
            let at = place(&mut steps, i, &names[k..], next);
            steps[at].cells[i] = Some(step_figures(rec, s));
            next = at + 1;
        }
    }
    let side = |i: usize| {
        let r = runs[i];
        Side {
            scenario: r.scenario.clone(),
            variant: read[i].as_ref().and_then(|(_, a)| a.run.variant.clone()),
            exit_code: r.exit_code,
            outcome: r.outcome.lines().next().unwrap_or_default().to_string(),
            run_dir: r.run_dir.as_deref().map(|d| relative(base, d)),
            total: read[i].as_ref().map(|(rec, a)| total_figures(rec, a)),
            overloaded_baseline: read[i]
                .iter()
                .flat_map(|(_, a)| a.findings.iter())
                .filter(|f| f.kind == analyze::findings::overloaded_baseline::KIND)
                .map(|f| f.title.clone())
                .collect(),
        }
    };
    let sides = [side(0), side(1)];
    let mut verdict = verdict(&sides);
    for s in sides.iter().filter(|s| !s.overloaded_baseline.is_empty()) {
        verdict.line.push_str(&format!(
            " — but {}'s baseline was overloaded ({}): its p99 is queueing, not its migration's",
            s.scenario,
            s.overloaded_baseline.join("; ")
        ));
    }
    Comparison {
        pair,
        sides,
        steps,
        verdict,
    }
}

/// The row of side `i`'s step `steps_left[0]`, whose previous step's row
/// is just before `next`: the first row of that name from `next` on that
/// this side has not filled; else a new row, before the first row a later
/// step of this side will fill (or last).
fn place(steps: &mut Vec<StepRow>, i: usize, steps_left: &[(&str, &str)], next: usize) -> usize {
    let free =
        |r: &StepRow, (p, s): &(&str, &str)| r.phase == *p && r.step == *s && r.cells[i].is_none();
    let (phase, step) = steps_left[0];
    if let Some(k) = steps
        .iter()
        .skip(next)
        .position(|r| free(r, &steps_left[0]))
    {
        return next + k;
    }
    let at = steps
        .iter()
        .skip(next)
        .position(|r| steps_left[1..].iter().any(|n| free(r, n)))
        .map_or(steps.len(), |k| next + k);
    steps.insert(
        at,
        StepRow {
            phase: phase.to_string(),
            step: step.to_string(),
            cells: [None, None],
        },
    );
    at
}

fn lock_name(l: &LockFact) -> String {
    format!("{} on {}", l.mode, l.relation)
}

fn step_figures(rec: &RunRecord, s: &StepFacts) -> Figures {
    Figures {
        strongest_lock: s.strongest_lock.as_ref().map(lock_name),
        longest_blocking_hold_ms: s.longest_blocking_lock.as_ref().and_then(|l| l.held_ms),
        blocking_lock: s.longest_blocking_lock.as_ref().map(lock_name),
        worst_app_wait_ms: s.worst_app_wait.as_ref().map(|w| w.wait_ms),
        p99_ms: s.latency.p99_ms,
        // Over the span the step's latency covers (its segment, from before
        // its BEGIN), as `errors` is: the first statement's start would
        // leave the step's own segment out.
        errors_by_app: {
            let (from, to) = crate::analyze::latency_span(rec, &s.phase, &s.step)
                .unwrap_or((s.start_ms, s.end_ms));
            errors_by_app(rec, from, to)
        },
        errors: s.latency.errors,
        errors_above_baseline: 0,
        baseline_errors_expected: 0.0,
        duration_ms: s.duration_ms,
        rewrote: s.rewrote,
        wal_bytes: s.wal_bytes,
        invalid_indexes: None,
    }
}

/// The whole migration: the strongest of the steps' locks, the longest of
/// their holds and waits, the app's p99 while the migration ran.
fn total_figures(rec: &RunRecord, a: &Analysis) -> Figures {
    let excess = errors_above_baseline(rec, a.migration.map_or(f64::INFINITY, |m| m.start_ms));
    let strongest = a
        .steps
        .iter()
        .filter_map(|s| s.strongest_lock.as_ref())
        .max_by_key(|l| LockMode::parse(&l.mode));
    let blocking = a
        .steps
        .iter()
        .filter_map(|s| s.longest_blocking_lock.as_ref())
        .filter(|l| l.blocks != Blocks::None && l.held_ms.is_some())
        .max_by(|x, y| {
            x.held_ms
                .unwrap_or(0.0)
                .total_cmp(&y.held_ms.unwrap_or(0.0))
        });
    Figures {
        strongest_lock: strongest.map(lock_name),
        longest_blocking_hold_ms: blocking.and_then(|l| l.held_ms),
        blocking_lock: blocking.map(lock_name),
        worst_app_wait_ms: a
            .steps
            .iter()
            .filter_map(|s| s.worst_app_wait.as_ref().map(|w| w.wait_ms))
            .reduce(f64::max),
        p99_ms: a.during.p99_ms,
        // Over the whole run: an incompatibility that shows after the
        // migration (an app reading a dropped column) is the migration's.
        errors_by_app: errors_by_app(rec, f64::NEG_INFINITY, f64::INFINITY),
        // The app's: a script that errs is part of the scenario's setup.
        errors: a.app_errors(),
        errors_above_baseline: excess.0,
        baseline_errors_expected: excess.1,
        duration_ms: a.migration.map_or(0.0, |m| m.duration_ms),
        // Any rewrite is one; no rewrite only when every step is known.
        rewrote: if a.steps.iter().any(|s| s.rewrote == Some(true)) {
            Some(true)
        } else {
            let known = a.steps.iter().all(|s| s.rewrote.is_some());
            known.then_some(false)
        },
        wal_bytes: a.steps.iter().map(|s| s.wal_bytes).sum(),
        invalid_indexes: rec.info.as_ref().map(|i| i.invalid_indexes.len() as u64),
    }
}

/// Requests a query must have had before the migration for its error rate
/// then to predict anything.
const BASELINE_REQUESTS: u64 = 20;

/// (app errors from `start` on beyond each query's error rate before it,
/// the errors those rates predict), summed over the app's queries. By
/// query, not app version: a version live only from the migration on (v2)
/// sends queries the old one sent before it, and fails them as often.
fn errors_above_baseline(rec: &RunRecord, start: f64) -> (u64, f64) {
    let mut queries: Vec<&str> = rec
        .histograms
        .segments
        .iter()
        .filter(|e| latency::of_the_app(e))
        .map(|e| e.query.as_str())
        .collect();
    queries.sort_unstable();
    queries.dedup();
    let (mut excess, mut expected) = (0.0, 0.0);
    for q in queries {
        let one = |e: &crate::latency_hdr::Entry| latency::of_the_app(e) && e.query == q;
        let before = latency::merge(rec, f64::NEG_INFINITY, start, one);
        let since = latency::merge(rec, start, f64::INFINITY, one);
        let rate = match before.hist.len() {
            n if n >= BASELINE_REQUESTS => before.errors as f64 / n as f64,
            _ => 0.0,
        };
        let predicted = rate * since.hist.len() as f64;
        expected += predicted;
        excess += (since.errors as f64 - predicted).max(0.0);
    }
    (excess.round() as u64, expected)
}

/// App errors per app version among the requests due in `[start, end)`
/// (exact: the segments the migration marked); every app version that sent
/// requests is listed, with 0 errors too.
fn errors_by_app(rec: &RunRecord, start: f64, end: f64) -> Vec<AppErrors> {
    let mut apps: Vec<&str> = rec
        .histograms
        .segments
        .iter()
        .map(|e| e.app.as_str())
        .filter(|a| *a != "script")
        .collect();
    apps.sort_unstable();
    apps.dedup();
    apps.into_iter()
        .map(|app| AppErrors {
            app: app.to_string(),
            errors: latency::merge(rec, start, end, |e| e.app == app).errors,
        })
        .collect()
}

/// `dir` as a link from `base`: both live under the same output directory,
/// `base` two levels down (`<out>/<name>/compare-<stamp>`).
fn relative(base: &Path, dir: &Path) -> String {
    let (b, d) = (absolute(base), absolute(dir));
    let common = b
        .components()
        .zip(d.components())
        .take_while(|(x, y)| x == y)
        .count();
    let ups = b.components().count() - common;
    let mut out: Vec<String> = vec!["..".to_string(); ups];
    out.extend(
        d.components()
            .skip(common)
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    out.join("/")
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// A difference this small is noise on a shared machine, not a verdict
/// (the analysis's one figure for it: recovery uses it too).
pub const MATERIAL_MS: f64 = crate::analyze::NOISE_MS;
pub const MATERIAL_RATIO: f64 = 1.5;

/// The figures in the order they decide: errors first (a broken app is
/// worse than a slow one), then the longest blocking hold, the worst app
/// wait, the app p99 during the migration.
fn verdict(sides: &[Side; 2]) -> Verdict {
    // A side whose rehearsal did not finish (a failed migration, an
    // interruption; exit 1 is a breached budget, which finished) did less
    // harm only by doing less: no winner.
    let unfinished: Vec<String> = sides
        .iter()
        .filter(|s| s.exit_code > exit::BUDGET_BREACHED)
        .map(|s| {
            format!(
                "{} did not finish (exit {}: {})",
                s.scenario, s.exit_code, s.outcome
            )
        })
        .collect();
    if !unfinished.is_empty() {
        return Verdict {
            better: None,
            decided_by: None,
            line: format!("no verdict: {}", unfinished.join("; ")),
        };
    }
    let (Some(a), Some(b)) = (&sides[0].total, &sides[1].total) else {
        return Verdict {
            better: None,
            decided_by: None,
            line: "no verdict: a side has no run directory to compare".into(),
        };
    };
    let ms = |v: Option<f64>| v.unwrap_or(0.0);
    let invalid = |f: &Figures| f.invalid_indexes.unwrap_or(0) as f64;
    // Errors beyond the background rate decide, and only by more than the
    // background's own scatter (two Poisson standard deviations of it).
    let noise = 2.0 * (a.baseline_errors_expected + b.baseline_errors_expected).sqrt();
    let figures: [(&str, f64, f64, Option<f64>); 5] = [
        (
            "errors",
            a.errors_above_baseline as f64,
            b.errors_above_baseline as f64,
            Some(noise),
        ),
        // An index a failed CONCURRENTLY build left INVALID slows every
        // write and must be dropped by hand: harm, whatever the timings.
        ("invalid_indexes", invalid(a), invalid(b), Some(0.0)),
        (
            "longest_blocking_hold_ms",
            ms(a.longest_blocking_hold_ms),
            ms(b.longest_blocking_hold_ms),
            None,
        ),
        (
            "worst_app_wait_ms",
            ms(a.worst_app_wait_ms),
            ms(b.worst_app_wait_ms),
            None,
        ),
        ("p99_ms", ms(a.p99_ms), ms(b.p99_ms), None),
    ];
    // A count differs materially by more than its noise (none but the
    // errors' has any); a time by MATERIAL_MS and MATERIAL_RATIO both.
    let material = |x: f64, y: f64, count: Option<f64>| {
        let (lo, hi) = (x.min(y), x.max(y));
        if let Some(noise) = count {
            hi > lo && hi - lo > noise
        } else {
            hi - lo >= MATERIAL_MS && hi >= lo * MATERIAL_RATIO
        }
    };
    let decided = figures
        .iter()
        .find(|(_, x, y, count)| material(*x, *y, *count));
    let [sa, sb] = sides;
    let Some((key, x, y, _)) = decided else {
        return Verdict {
            better: None,
            decided_by: None,
            line: format!("no material difference: {}", facts_line(a, b)),
        };
    };
    let (winner, w, l, loser) = if x < y {
        (sa, a, b, sb)
    } else {
        (sb, b, a, sa)
    };
    let label = |s: &Side| match &s.variant {
        Some(v) => format!("{v} ({})", s.scenario),
        None => s.scenario.clone(),
    };
    Verdict {
        better: Some(winner.scenario.clone()),
        decided_by: Some(key.to_string()),
        line: format!(
            "{} did less harm than {}: {}",
            label(winner),
            loser.scenario,
            facts_line(w, l)
        ),
    }
}

/// "longest blocking hold 3 ms vs 1 840 ms; ..." with `x` first; indexes
/// left INVALID where either side left one.
fn facts_line(x: &Figures, y: &Figures) -> String {
    let ms = |v: Option<f64>| v.map_or("none".to_string(), fmt_ms);
    let (xi, yi) = (
        x.invalid_indexes.unwrap_or(0),
        y.invalid_indexes.unwrap_or(0),
    );
    let invalid = match xi + yi {
        0 => String::new(),
        _ => format!("; indexes left INVALID {xi} vs {yi}"),
    };
    // Where the app erred before the migration too, the errors that
    // decide are those beyond that rate.
    let errors = if x.baseline_errors_expected + y.baseline_errors_expected >= 0.5 {
        format!(
            "errors beyond the app's rate before the migration {} vs {} ({} vs {} in all)",
            x.errors_above_baseline, y.errors_above_baseline, x.errors, y.errors
        )
    } else {
        format!("errors {} vs {}", x.errors, y.errors)
    };
    format!(
        "longest blocking hold {} vs {}; worst app wait {} vs {}; p99 during {} vs {}; {errors}{invalid}",
        ms(x.longest_blocking_hold_ms),
        ms(y.longest_blocking_hold_ms),
        ms(x.worst_app_wait_ms),
        ms(y.worst_app_wait_ms),
        ms(x.p99_ms),
        ms(y.p99_ms),
    )
}

/// Milliseconds with a thin grouping space: "1 840 ms", "3 ms", "0.4 ms".
pub fn fmt_ms(v: f64) -> String {
    if v < 10.0 {
        return format!("{v:.1} ms");
    }
    let n = v.round() as u64;
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    format!("{out} ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(name: &str, variant: &str, hold: f64, p99: f64, errors: u64) -> Side {
        Side {
            scenario: name.into(),
            variant: Some(variant.into()),
            exit_code: 0,
            outcome: "pass".into(),
            run_dir: None,
            overloaded_baseline: vec![],
            total: Some(Figures {
                longest_blocking_hold_ms: Some(hold),
                p99_ms: Some(p99),
                errors,
                errors_above_baseline: errors,
                ..Figures::default()
            }),
        }
    }

    #[test]
    fn an_index_left_invalid_is_harm_whatever_the_timings() {
        // invalid-index: the naive build fails and leaves its index INVALID,
        // with timings like the safe one's (QA: "no material difference").
        let mut naive = side("ii-naive", "naive", 3.0, 9.0, 0);
        if let Some(t) = naive.total.as_mut() {
            t.invalid_indexes = Some(1);
        }
        let safe = side("ii-safe", "safe", 3.0, 9.0, 0);
        let v = verdict(&[naive, safe]);
        assert_eq!(v.better.as_deref(), Some("ii-safe"));
        assert_eq!(v.decided_by.as_deref(), Some("invalid_indexes"));
        assert!(
            v.line.ends_with("indexes left INVALID 0 vs 1"),
            "{}",
            v.line
        );
    }

    #[test]
    fn the_smaller_blocking_hold_wins_and_the_line_puts_it_first() {
        let v = verdict(&[
            side("ci-naive", "naive", 1840.0, 1910.0, 0),
            side("ci-safe", "safe", 3.0, 9.0, 0),
        ]);
        assert_eq!(v.better.as_deref(), Some("ci-safe"));
        assert_eq!(v.decided_by.as_deref(), Some("longest_blocking_hold_ms"));
        assert!(
            v.line
                .starts_with("safe (ci-safe) did less harm than ci-naive: longest blocking hold 3.0 ms vs 1 840 ms"),
            "{}",
            v.line
        );
    }

    #[test]
    fn errors_decide_before_locks() {
        let v = verdict(&[
            side("a", "naive", 5.0, 5.0, 40),
            side("b", "safe", 500.0, 5.0, 0),
        ]);
        assert_eq!(v.better.as_deref(), Some("b"));
        assert_eq!(v.decided_by.as_deref(), Some("errors"));
    }

    /// QA: an app that fails 5 % of its requests whatever the migration
    /// does (a unique violation it retries) fails more in the longer run.
    /// Those errors are background: the hold decides.
    #[test]
    fn background_errors_do_not_decide() {
        let mut naive = side("dup-naive", "naive", 738.0, 730.0, 86);
        let mut safe = side("dup-safe", "safe", 1.6, 133.0, 120);
        for (s, excess, expected) in [(&mut naive, 2, 60.0), (&mut safe, 0, 95.0)] {
            let t = s.total.as_mut().expect("figures");
            t.errors_above_baseline = excess;
            t.baseline_errors_expected = expected;
        }
        let v = verdict(&[naive, safe]);
        assert_eq!(v.better.as_deref(), Some("dup-safe"));
        assert_eq!(v.decided_by.as_deref(), Some("longest_blocking_hold_ms"));
        assert!(
            v.line.ends_with(
                "errors beyond the app's rate before the migration 0 vs 2 (120 vs 86 in all)"
            ),
            "{}",
            v.line
        );
    }

    #[test]
    fn a_side_that_did_not_finish_wins_nothing() {
        let mut safe = side("m-safe", "safe", 0.0, 5.0, 0);
        safe.exit_code = 4;
        safe.outcome = "phase `p` step `detach`: cannot detach partitions concurrently when a default partition exists (55000)".into();
        let v = verdict(&[side("m-naive", "naive", 664.0, 700.0, 0), safe]);
        assert_eq!((v.better, v.decided_by), (None, None));
        assert_eq!(
            v.line,
            "no verdict: m-safe did not finish (exit 4: phase `p` step `detach`: cannot detach partitions concurrently when a default partition exists (55000))"
        );
        // A breached budget is a finished run: it still compares.
        let mut naive = side("m-naive", "naive", 664.0, 700.0, 0);
        naive.exit_code = 1;
        let v = verdict(&[naive, side("m-safe", "safe", 1.0, 5.0, 0)]);
        assert_eq!(v.better.as_deref(), Some("m-safe"));
    }

    #[test]
    fn noise_is_no_verdict() {
        let v = verdict(&[
            side("a", "naive", 12.0, 8.0, 0),
            side("b", "safe", 15.0, 9.0, 0),
        ]);
        assert_eq!(v.better, None, "{}", v.line);
    }

    #[test]
    fn links_go_up_to_the_common_directory() {
        assert_eq!(
            relative(
                Path::new("/r/create-index/compare-1"),
                Path::new("/r/create-index-safe/2")
            ),
            "../../create-index-safe/2"
        );
    }

    /// A step's errors by app version count its whole segment, from before
    /// its BEGIN, as its `errors` do: not from its first statement on.
    #[test]
    fn a_steps_errors_by_app_are_over_its_own_segment() {
        use crate::analyze::testkit::{record, segment_entry, step_holding, step_span};
        let mut r = record();
        step_holding(
            &mut r,
            "s",
            "ALTER TABLE orders ADD x int",
            (1000.0, 1500.0),
            "AccessExclusiveLock",
            1000.5,
        );
        step_span(&mut r, "s", 990.0, 1510.0);
        r.histograms
            .segments
            .retain(|e| !(e.app == "v1" && e.from_ms == 990.0));
        r.histograms
            .segments
            .push(segment_entry("q", "v1", (990.0, 1510.0), &[(1000, 50)], 4));
        let a = crate::analyze::analyze(&r);
        let step = a.steps.iter().find(|s| s.step == "s").expect("step s");
        let f = step_figures(&r, step);
        assert_eq!(f.errors, 4, "{f:?}");
        let v1 = f.errors_by_app.iter().find(|e| e.app == "v1").expect("v1");
        assert_eq!(v1.errors, 4, "{f:?}");
    }

    /// A query failing 5 % of its requests before the migration and after:
    /// nothing beyond its rate, though v2 (live only from the migration on)
    /// sends it too; a query that starts failing with the migration is all
    /// excess; a script's errors are nobody's.
    #[test]
    fn errors_beyond_each_querys_rate_before_the_migration() {
        use crate::analyze::testkit::{record, segment_entry};
        let mut r = record();
        r.histograms.segments = vec![
            segment_entry("signup", "v1", (0.0, 1000.0), &[(1000, 100)], 5),
            segment_entry("signup", "v1", (1000.0, 3000.0), &[(1000, 200)], 10),
            segment_entry("signup", "v2", (1000.0, 3000.0), &[(1000, 200)], 10),
            segment_entry("memo", "v1", (0.0, 1000.0), &[(1000, 100)], 0),
            segment_entry("memo", "v1", (1000.0, 3000.0), &[(1000, 100)], 7),
            segment_entry("sleep", "script", (1000.0, 3000.0), &[(1000, 1)], 1),
        ];
        let (excess, expected) = errors_above_baseline(&r, 1000.0);
        assert_eq!((excess, expected), (7, 20.0));
    }

    /// Each side's steps in its own order: B's `contract / drop` matching a
    /// row of A's does not pull it before B's earlier steps.
    #[test]
    fn rows_keep_each_sides_order() {
        let mut steps = Vec::new();
        let fill = |steps: &mut Vec<StepRow>, i: usize, names: &[(&str, &str)]| {
            let mut next = 0;
            for k in 0..names.len() {
                let at = place(steps, i, &names[k..], next);
                steps[at].cells[i] = Some(Figures::default());
                next = at + 1;
            }
        };
        fill(&mut steps, 0, &[("migrate", "drop"), ("migrate", "vacuum")]);
        fill(
            &mut steps,
            1,
            &[
                ("migrate", "expand"),
                ("migrate", "backfill"),
                ("migrate", "drop"),
            ],
        );
        let order: Vec<(&str, bool, bool)> = steps
            .iter()
            .map(|r| (r.step.as_str(), r.cells[0].is_some(), r.cells[1].is_some()))
            .collect();
        assert_eq!(
            order,
            [
                ("expand", false, true),
                ("backfill", false, true),
                ("drop", true, true),
                ("vacuum", true, false)
            ]
        );
    }

    #[test]
    fn milliseconds_are_grouped() {
        assert_eq!(fmt_ms(1840.2), "1 840 ms");
        assert_eq!(fmt_ms(3.04), "3.0 ms");
        assert_eq!(fmt_ms(1_234_567.0), "1 234 567 ms");
    }
}
