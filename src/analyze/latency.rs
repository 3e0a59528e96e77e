//! Latency and error figures over a time span, merged from latency.csv
//! windows.
//!
//! latency.csv keeps, per window × query × app, the count and the p50, p95,
//! p99 and max (no raw samples, no histogram). A span covers many windows, so
//! its percentiles have to be *reconstructed*: each window's distribution is
//! taken as the piecewise-linear CDF through (0, 0), (p50, .50), (p95, .95),
//! (p99, .99), (max, 1), the windows' CDFs are summed weighted by their
//! counts, and the merged quantile is found by bisection. This is exact for a
//! single window, and a merged p99 always lies between the smallest and the
//! largest window p99 (as the true one does); the max is exact. It is an
//! estimate, not a histogram merge: say so wherever it is shown.

use serde::{Deserialize, Serialize};

use crate::pg::{round3, round6};
use crate::record::LatencyRow;

/// Latency, throughput and errors of the app over one span.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyFacts {
    pub start_ms: f64,
    pub end_ms: f64,
    /// Requests completed (errors included).
    pub requests: u64,
    pub errors: u64,
    /// errors / requests, 0 when there were no requests.
    pub error_rate: f64,
    /// Completed requests per second over the windows covered, errors
    /// included (see `ok_qps`, `error_qps`).
    pub qps: f64,
    /// Successful requests (requests − errors) per second: the throughput
    /// the app got.
    #[serde(default)]
    pub ok_qps: f64,
    /// Failed requests per second.
    #[serde(default)]
    pub error_qps: f64,
    /// Reconstructed from the windows' percentiles (see the module docs).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Exact: the largest window max.
    pub max_ms: Option<f64>,
}

/// Does the window overlap `[a, b]`? Windows straddling a boundary count as
/// inside: a stall at the edge of a step is charged to the step.
pub fn overlaps(r: &LatencyRow, a: f64, b: f64) -> bool {
    r.window_start_ms < b.max(a + f64::EPSILON) && r.window_start_ms + r.window_ms > a
}

/// Figures over `rows` (already selected for the span `[start, end]`).
pub fn facts<'a>(
    rows: impl IntoIterator<Item = &'a LatencyRow>,
    start: f64,
    end: f64,
) -> LatencyFacts {
    let rows: Vec<&LatencyRow> = rows.into_iter().collect();
    let requests: u64 = rows.iter().map(|r| r.count).sum();
    let errors: u64 = rows.iter().map(|r| r.errors).sum();
    // qps over the wall time the selected windows cover (distinct windows).
    let mut windows: Vec<(u64, u64)> = rows
        .iter()
        .map(|r| (r.window_start_ms.to_bits(), r.window_ms.to_bits()))
        .collect();
    windows.sort_unstable();
    windows.dedup();
    let covered_ms: f64 = windows.iter().map(|(_, w)| f64::from_bits(*w)).sum();
    let per_s = |n: u64| {
        if covered_ms > 0.0 {
            round3(n as f64 / (covered_ms / 1000.0))
        } else {
            0.0
        }
    };
    let with_samples: Vec<&LatencyRow> = rows.iter().copied().filter(|r| r.count > 0).collect();
    let ms = |us: f64| round3(us / 1000.0);
    LatencyFacts {
        start_ms: start,
        end_ms: end,
        requests,
        errors,
        error_rate: if requests > 0 {
            round6(errors as f64 / requests as f64)
        } else {
            0.0
        },
        qps: per_s(requests),
        ok_qps: per_s(requests - errors.min(requests)),
        error_qps: per_s(errors),
        p50_ms: merged_quantile(&with_samples, 0.50).map(ms),
        p99_ms: merged_quantile(&with_samples, 0.99).map(ms),
        max_ms: with_samples
            .iter()
            .map(|r| r.max_us)
            .max()
            .map(|m| ms(m as f64)),
    }
}

/// The window's CDF knots, made monotone (a window's columns may be rounded
/// independently).
fn knots(r: &LatencyRow) -> [(f64, f64); 5] {
    let mut v = [
        0.0,
        r.p50_us as f64,
        r.p95_us as f64,
        r.p99_us as f64,
        r.max_us as f64,
    ];
    for i in 1..v.len() {
        if v[i] < v[i - 1] {
            v[i] = v[i - 1];
        }
    }
    [
        (v[0], 0.0),
        (v[1], 0.50),
        (v[2], 0.95),
        (v[3], 0.99),
        (v[4], 1.0),
    ]
}

fn cdf(x: f64, k: &[(f64, f64); 5]) -> f64 {
    if x >= k[4].0 {
        return 1.0;
    }
    for i in 1..k.len() {
        if x < k[i].0 {
            let (v0, c0) = k[i - 1];
            let (v1, c1) = k[i];
            // x >= v0 here and v1 > x, so v1 > v0.
            return c0 + (c1 - c0) * (x - v0).max(0.0) / (v1 - v0);
        }
    }
    1.0
}

/// The q-quantile (0..1) of the count-weighted mixture of the windows, in µs,
/// rounded to the microsecond. None when there are no samples.
pub fn merged_quantile(rows: &[&LatencyRow], q: f64) -> Option<f64> {
    let total: f64 = rows.iter().map(|r| r.count as f64).sum();
    if total <= 0.0 {
        return None;
    }
    let ks: Vec<(f64, [(f64, f64); 5])> = rows.iter().map(|r| (r.count as f64, knots(r))).collect();
    let mut lo = 0.0_f64;
    let mut hi = ks.iter().map(|(_, k)| k[4].0).fold(0.0, f64::max);
    for _ in 0..100 {
        let mid = (lo + hi) / 2.0;
        let f: f64 = ks.iter().map(|(n, k)| n * cdf(mid, k)).sum::<f64>() / total;
        if f >= q {
            hi = mid;
        } else {
            lo = mid;
        }
        if hi - lo < 0.01 {
            break;
        }
    }
    Some(hi.round())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ws: f64, count: u64, p50: u64, p95: u64, p99: u64, max: u64) -> LatencyRow {
        LatencyRow {
            window_start_ms: ws,
            window_ms: 100.0,
            query: "q".into(),
            app: "v1".into(),
            count,
            errors: 0,
            p50_us: p50,
            p95_us: p95,
            p99_us: p99,
            max_us: max,
            service_p50_us: p50,
            service_p99_us: p99,
        }
    }

    #[test]
    fn single_window_is_exact() {
        let r = row(0.0, 100, 1000, 3000, 5000, 9000);
        assert_eq!(merged_quantile(&[&r], 0.99), Some(5000.0));
        assert_eq!(merged_quantile(&[&r], 0.50), Some(1000.0));
    }

    #[test]
    fn merged_p99_lies_between_window_p99s_and_follows_counts() {
        let calm = row(0.0, 990, 1000, 2000, 3000, 4000);
        let stall = row(100.0, 10, 500_000, 900_000, 1_000_000, 1_100_000);
        let p99 = merged_quantile(&[&calm, &stall], 0.99).unwrap();
        assert!((3000.0..=1_000_000.0).contains(&p99), "{p99}");
        // 1% of all requests sit in the stall window: p99 is at its bottom.
        assert!(p99 < 500_000.0, "{p99}");
        let heavy = row(100.0, 100, 500_000, 900_000, 1_000_000, 1_100_000);
        let p99h = merged_quantile(&[&calm, &heavy], 0.99).unwrap();
        assert!(p99h > 500_000.0, "{p99h}");
    }

    #[test]
    fn empty_windows_have_no_percentiles() {
        let r = row(0.0, 0, 0, 0, 0, 0);
        let f = facts([&r], 0.0, 100.0);
        assert_eq!(f.p99_ms, None);
        assert_eq!(f.requests, 0);
        assert_eq!(f.error_rate, 0.0);
    }

    #[test]
    fn facts_sum_counts_and_errors() {
        let mut a = row(0.0, 40, 1000, 2000, 3000, 4000);
        a.errors = 2;
        let b = row(100.0, 60, 1000, 2000, 3000, 8000);
        let f = facts([&a, &b], 0.0, 200.0);
        assert_eq!(f.requests, 100);
        assert_eq!(f.errors, 2);
        assert_eq!(f.error_rate, 0.02);
        assert_eq!((f.qps, f.ok_qps, f.error_qps), (500.0, 490.0, 10.0));
        assert_eq!(f.max_ms, Some(8.0));
    }

    proptest::proptest! {
        /// The documented guarantee: a merged quantile lies between the
        /// smallest and the largest window's own value of that quantile.
        #[test]
        fn merged_quantile_is_bounded_by_the_windows(
            windows in proptest::collection::vec((1u64..500, 1u64..5_000, 0u64..5_000, 0u64..50_000, 0u64..100_000), 1..8)
        ) {
            let rows: Vec<LatencyRow> = windows
                .iter()
                .enumerate()
                .map(|(i, (n, p50, d95, d99, dmax))| {
                    row(i as f64 * 100.0, *n, *p50, p50 + d95, p50 + d95 + d99, p50 + d95 + d99 + dmax)
                })
                .collect();
            let refs: Vec<&LatencyRow> = rows.iter().collect();
            let got = merged_quantile(&refs, 0.99).unwrap();
            let lo = rows.iter().map(|r| r.p99_us).min().unwrap() as f64;
            let hi = rows.iter().map(|r| r.p99_us).max().unwrap() as f64;
            proptest::prop_assert!(got >= lo - 1.0 && got <= hi + 1.0, "{} not in [{}, {}]", got, lo, hi);
        }
    }
}
