//! Recovery time: how long after a step ended the app's latency came back.
//!
//! The bar is [`FACTOR`] × the p99 of every query and app before the
//! migration, and at least [`NOISE_MS`] above it: with a 3 ms p99 before,
//! 1.5× is 4.5 ms, and on a shared machine one request in thirty
//! descheduled for 10 ms kept a step that did nothing to the app "not
//! recovered" (QA: a 1.2 ms DROP COLUMN breached `max_recovery_ms`).
//! Compare treats a difference under the same [`NOISE_MS`] as noise. Walking the windows that end after the step ended, the
//! recovery begins with the first window that has requests and whose p99
//! (every query and app version merged, exactly; scripts left out) is
//! within the bar, provided the [`SUSTAIN`] windows with requests from it
//! are all within it too (fewer
//! when the run ends first), so that one lucky window in a backlog does not
//! count. A window without completions (none in latency.hdr) is never
//! within the bar when a request was stuck in flight (inflight.csv: its
//! oldest request older than the bar at the window's end): nothing came
//! back. At a low rate most windows have no request at all: such an idle
//! window neither breaks the run nor delays the recovery, which begins
//! where the idle stretch before that first window began. The recovery time
//! is from the step's end to there (0 when it began before the step ended),
//! known to a window. A run directory without inflight.csv counts every
//! gap as a stall, as before it had one.
//!
//! Only the windows that start before the next step does are the step's:
//! what the next step does to the app is that step's, not a slow recovery
//! of this one. A step still above the bar when the next one began has not
//! recovered *before the next step* (its own state); the backlog it left is
//! then part of the next step's figures.

use super::facts::{Recovery, RecoveryState, StepFacts};
use super::NOISE_MS;
use crate::latency_hdr::WindowFigures;
use crate::pg::round3;
use crate::record::RunRecord;

/// Latency is back when its p99 is within this factor of the p99 before.
pub const FACTOR: f64 = 1.5;

/// The recovery bar, ms, for a p99 before the migration of `before_ms`:
/// [`FACTOR`] × it, and never less than [`NOISE_MS`] above it.
pub fn threshold_ms(before_ms: f64) -> f64 {
    (before_ms * FACTOR).max(before_ms + NOISE_MS)
}

/// The bar in words, for the budget line and the reports.
pub const BAR_WORDS: &str = "1.5× the p99 before, at least 10 ms above it";

/// Consecutive windows that must all be within the bar.
pub const SUSTAIN: usize = 3;

/// When the next step after one that ended at `end_ms` began (the earliest
/// step start at or after it); None after the last step.
pub(crate) fn next_step_start(steps: &[StepFacts], end_ms: f64) -> Option<f64> {
    steps
        .iter()
        .map(|s| s.latency.start_ms)
        .filter(|s| *s >= end_ms)
        .reduce(f64::min)
}

/// Recovery after a step that ended at `end_ms`, given the p99 before the
/// migration, until the next step began (`next_ms`; None for the last).
pub(crate) fn recovery(
    rec: &RunRecord,
    before_p99_ms: Option<f64>,
    end_ms: f64,
    next_ms: Option<f64>,
) -> Recovery {
    let Some(before) = before_p99_ms else {
        return Recovery::default();
    };
    let bar_us = threshold_ms(before) * 1000.0;
    let windows: Vec<&WindowFigures> = rec
        .histograms
        .windows
        .iter()
        .filter(|w| w.query.is_none() && w.to_ms > end_ms)
        .filter(|w| next_ms.is_none_or(|n| w.from_ms < n))
        .collect();
    let within = |w: &WindowFigures| w.count > 0 && w.p99_us as f64 <= bar_us;
    // Between `from` and `to` (no completion there): the end of the last
    // window at whose end a request was stuck; None when none was.
    // The windows (start, end) at whose end a request was stuck past the
    // bar, once: the walk below asks about many gaps.
    let stuck: Vec<(f64, f64)> = rec
        .inflight
        .iter()
        .filter(|r| r.oldest_ms.is_some_and(|o| o * 1000.0 > bar_us))
        .map(|r| (r.window_start_ms, r.window_start_ms + r.window_ms))
        .collect();
    let stuck_until = |from: f64, to: f64| -> Option<f64> {
        if to - from < 0.001 {
            return None;
        }
        if rec.inflight.is_empty() {
            return Some(to);
        }
        stuck
            .iter()
            .filter(|(s, e)| *e > from + 0.001 && *s < to - 0.001)
            .map(|(_, e)| e.min(to))
            .reduce(f64::max)
    };
    let start = (0..windows.len()).find(|&i| {
        let run = &windows[i..windows.len().min(i + SUSTAIN)];
        run.iter().all(|w| within(w))
            && run
                .windows(2)
                .all(|p| stuck_until(p[0].to_ms, p[1].from_ms).is_none())
    });
    let threshold_ms = Some(round3(bar_us / 1000.0));
    match start {
        Some(i) => {
            // Back from where the idle stretch before it began.
            let prev_end = if i == 0 { end_ms } else { windows[i - 1].to_ms };
            let from = stuck_until(prev_end, windows[i].from_ms).unwrap_or(prev_end);
            Recovery {
                state: RecoveryState::Recovered,
                threshold_ms,
                recovery_ms: Some(round3((from - end_ms).max(0.0))),
            }
        }
        None => Recovery {
            state: match next_ms {
                Some(_) => RecoveryState::NextStepBegan,
                None => RecoveryState::NotRecovered,
            },
            threshold_ms,
            recovery_ms: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testkit::record;

    /// Windows of 100 ms from `from_ms` with these p99s (µs); 0 = no
    /// completions (no window in latency.hdr).
    fn with_windows(from_ms: f64, p99s: &[u64]) -> RunRecord {
        let mut r = record();
        r.histograms.windows = p99s
            .iter()
            .enumerate()
            .filter(|(_, p)| **p > 0)
            .map(|(i, p)| WindowFigures {
                from_ms: from_ms + i as f64 * 100.0,
                to_ms: from_ms + (i + 1) as f64 * 100.0,
                query: None,
                count: 50,
                p50_us: p / 2,
                p99_us: *p,
                max_us: *p,
            })
            .collect();
        r
    }

    #[test]
    fn recovered_once_latency_stays_within_the_bar() {
        // Step ends at 1050; a backlog drains; one lucky window at 1300.
        let r = with_windows(
            1000.0,
            &[900_000, 0, 400_000, 2_000, 300_000, 2_900, 2_000, 1_000],
        );
        let rec = recovery(&r, Some(2.0), 1050.0, None);
        assert_eq!(rec.state, RecoveryState::Recovered);
        assert_eq!(rec.threshold_ms, Some(12.0));
        assert_eq!(rec.recovery_ms, Some(450.0));
    }

    /// Jitter of a few ms over a 3 ms p99 is no slowdown (QA: 1.5 × 3 ms =
    /// 4.5 ms; windows of 6.3, 4.6, 4.9, 1.4, 12.7, 8.6 ms after a 1.2 ms
    /// DROP COLUMN kept it "not recovered", a `max_recovery_ms` breach);
    /// a slowdown past the noise margin still is one.
    #[test]
    fn jitter_within_the_noise_margin_is_recovered() {
        let jitter = [6_300, 4_600, 4_900, 1_400, 12_700, 8_600, 600];
        let rec = recovery(&with_windows(4900.0, &jitter), Some(3.0), 4900.0, None);
        assert_eq!(rec.threshold_ms, Some(13.0));
        assert_eq!(
            (rec.state, rec.recovery_ms),
            (RecoveryState::Recovered, Some(0.0))
        );
        let slow = [40_000, 30_000, 6_300, 4_600, 4_900];
        let rec = recovery(&with_windows(4900.0, &slow), Some(3.0), 4900.0, None);
        assert_eq!(rec.recovery_ms, Some(200.0));
        // A large p99 before keeps its 1.5× bar.
        assert_eq!(threshold_ms(100.0), 150.0);
        // The words say what the numbers are.
        assert!(BAR_WORDS.contains(&format!("{FACTOR}×")));
        assert!(BAR_WORDS.contains(&format!("{NOISE_MS} ms")));
    }

    #[test]
    fn no_slowdown_is_no_recovery_time() {
        let r = with_windows(1000.0, &[2_000, 2_000, 2_000, 2_000]);
        assert_eq!(recovery(&r, Some(2.0), 1050.0, None).recovery_ms, Some(0.0));
    }

    #[test]
    fn still_slow_at_the_end_is_not_recovered() {
        let r = with_windows(1000.0, &[900_000, 800_000, 2_000, 700_000]);
        let rec = recovery(&r, Some(2.0), 1000.0, None);
        assert_eq!(
            (rec.state, rec.recovery_ms),
            (RecoveryState::NotRecovered, None)
        );
        // The last windows of the run count even when fewer than SUSTAIN.
        let r = with_windows(1000.0, &[900_000, 800_000, 2_000]);
        assert_eq!(
            recovery(&r, Some(2.0), 1000.0, None).recovery_ms,
            Some(200.0)
        );
    }

    #[test]
    fn the_next_steps_slowdown_is_not_this_steps_recovery() {
        // A harmless step ends at 1000; the next one starts at 1100 and
        // slows the app from 1100 on.
        let r = with_windows(1000.0, &[2_000, 900_000, 800_000, 2_000, 2_000, 2_000]);
        let rec = recovery(&r, Some(2.0), 1000.0, Some(1100.0));
        assert_eq!(
            (rec.state, rec.recovery_ms),
            (RecoveryState::Recovered, Some(0.0))
        );
        // Still slow when the next step began: not this step's recovery
        // time, and not "never".
        let r = with_windows(1000.0, &[900_000, 800_000, 2_000, 2_000, 2_000]);
        let rec = recovery(&r, Some(2.0), 1000.0, Some(1200.0));
        assert_eq!(
            (rec.state, rec.recovery_ms),
            (RecoveryState::NextStepBegan, None)
        );
        // Without the bound, the later windows would have counted.
        let rec = recovery(&r, Some(2.0), 1000.0, None);
        assert_eq!(rec.recovery_ms, Some(200.0));
    }

    /// inflight.csv rows of one app: at the end of each 100 ms window from
    /// `from_ms`, its oldest request in flight (None: none in flight).
    fn with_inflight(r: &mut RunRecord, from_ms: f64, oldest: &[Option<f64>]) {
        r.inflight = oldest
            .iter()
            .enumerate()
            .map(|(i, o)| crate::record::InflightRow {
                window_start_ms: from_ms + i as f64 * 100.0,
                window_ms: 100.0,
                app: "v1".into(),
                connections: 2,
                busy: u32::from(o.is_some()),
                oldest_ms: *o,
            })
            .collect();
    }

    #[test]
    fn at_a_low_rate_idle_windows_are_no_slowdown() {
        // One request a second, each fast: most windows have none.
        let p99s: Vec<u64> = (0..40)
            .map(|i| if i % 10 == 5 { 1_000 } else { 0 })
            .collect();
        let mut r = with_windows(1000.0, &p99s);
        with_inflight(&mut r, 1000.0, &[None; 40]);
        let rec = recovery(&r, Some(2.0), 1000.0, None);
        assert_eq!(
            (rec.state, rec.recovery_ms),
            (RecoveryState::Recovered, Some(0.0))
        );
        // The same windows while a request was stuck for the first 1.2 s:
        // back once it was not.
        let stuck: Vec<Option<f64>> = (0..40)
            .map(|i| (i < 12).then_some(100.0 * (i + 1) as f64))
            .collect();
        with_inflight(&mut r, 1000.0, &stuck);
        let rec = recovery(&r, Some(2.0), 1000.0, None);
        assert_eq!(
            (rec.state, rec.recovery_ms),
            (RecoveryState::Recovered, Some(1200.0))
        );
    }

    #[test]
    fn without_traffic_before_there_is_no_bar() {
        let r = with_windows(1000.0, &[2_000]);
        assert_eq!(
            recovery(&r, None, 1000.0, None).state,
            RecoveryState::NoBaseline
        );
    }
}
