//! Latency and error figures over a span, merged exactly from latency.hdr.
//!
//! Segments lie between the boundaries the migration marked when it
//! started or ended a phase or a step, and run.json records the same
//! boundaries, so every span the reports show — before, during, after, a
//! step, a phase — is a union of segments, and its figures are a merge of
//! theirs: exact to HdrHistogram's precision (3 significant digits),
//! nothing reconstructed.
//!
//! Two questions, two sets of requests:
//!
//! - *How long did a request sent in the span take?* The latency figures
//!   (`requests`, `errors`, `error_rate`, p50/p99/max) are over the requests
//!   **due** in the span (their intended start: the schedule in open loop,
//!   the send in closed loop). A request that waited for a step's lock is
//!   due while the step runs and answered only once it committed: it is
//!   the step's, not the next span's.
//! - *How much did the app get done in the span?* The rates (`qps`,
//!   `ok_qps`, `error_qps`) count the requests that **completed** in it
//!   (`completed`): a stall shows as a drop.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::latency_hdr::{self, Entry, Span};
use crate::pg::{round3, round6};
use crate::record::RunRecord;

/// Latency, throughput and errors of the app over one span.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct LatencyFacts {
    pub start_ms: f64,
    pub end_ms: f64,
    /// Requests due in the span (errors included): the latency figures'.
    pub requests: u64,
    /// Of those, the ones that failed.
    pub errors: u64,
    /// Of those, the ones still in flight (or due and unsent) when the run
    /// was stopped hard, an interrupted run's: in the percentiles with their
    /// age at the stop, a lower bound of what they would have taken.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unfinished: u64,
    /// errors / requests, 0 when there were no requests.
    pub error_rate: f64,
    /// Requests that completed in the span (errors included): the rates'.
    #[serde(default)]
    pub completed: u64,
    /// Completed requests per second over the span, errors included (see
    /// `ok_qps`, `error_qps`).
    pub qps: f64,
    /// Successful requests (requests − errors) per second: the throughput
    /// the app got.
    #[serde(default)]
    pub ok_qps: f64,
    /// Failed requests per second.
    #[serde(default)]
    pub error_qps: f64,
    /// Over every request due in the span (HdrHistogram, 3 significant
    /// digits).
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Tolerance when matching segment bounds against run.json's spans (both
/// are the same numbers, rounded to the µs).
const EPS_MS: f64 = 0.000_5;

/// Does the segment lie within `[start, end)`?
pub fn in_span(e: &Entry, start: f64, end: f64) -> bool {
    e.from_ms >= start - EPS_MS && e.to_ms <= end + EPS_MS
}

/// The segments within a span, merged.
#[derive(Debug, Clone)]
pub struct Merged {
    /// Latencies of the requests due in the span.
    pub hist: Histogram<u64>,
    pub errors: u64,
    pub completed: u64,
    pub completed_errors: u64,
    pub unfinished: u64,
}

/// The segments within `[start, end)` that `keep` selects, merged.
pub fn merge(rec: &RunRecord, start: f64, end: f64, keep: impl Fn(&Entry) -> bool) -> Merged {
    let mut m = Merged {
        hist: latency_hdr::histogram(),
        errors: 0,
        completed: 0,
        completed_errors: 0,
        unfinished: 0,
    };
    for e in rec
        .histograms
        .segments
        .iter()
        .filter(|e| in_span(e, start, end) && keep(e))
    {
        // Our histogram grows: adding never fails.
        let _ = m.hist.add(&e.hist);
        if let Span::Segment {
            errors,
            completed,
            completed_errors,
            unfinished,
        } = e.span
        {
            m.errors += errors;
            m.completed += completed;
            m.completed_errors += completed_errors;
            m.unfinished += unfinished;
        }
    }
    m
}

/// When the run ended: run.json's end, else the last segment's.
pub fn run_end_ms(rec: &RunRecord) -> f64 {
    rec.info.as_ref().map(|i| i.end_ms).unwrap_or_else(|| {
        rec.histograms
            .segments
            .iter()
            .map(|e| e.to_ms)
            .fold(0.0, f64::max)
    })
}

/// Is the segment the app's (any version's), not a script's? A script's
/// one-off session (a long transaction, a `pg_sleep(4)`) is an actor of the
/// scenario, not the app: its latency and errors are not the app's.
pub fn of_the_app(e: &Entry) -> bool {
    e.app != crate::latency::SCRIPT_APP
}

/// Figures over the requests that completed in `[start, end)` (an open end:
/// `f64::INFINITY`), of the app (every version, no script) or only of `app`.
pub fn facts(rec: &RunRecord, start: f64, end: f64, app: Option<&str>) -> LatencyFacts {
    let m = merge(rec, start, end, |e| {
        app.map_or(of_the_app(e), |a| e.app == a)
    });
    let end_ms = if end.is_finite() {
        end
    } else {
        run_end_ms(rec).max(start)
    };
    figures(&m, start.max(0.0), end_ms)
}

/// The figures of merged segments over `[start, end)`.
pub fn figures(m: &Merged, start: f64, end: f64) -> LatencyFacts {
    let (h, errors) = (&m.hist, m.errors);
    let requests = h.len();
    let secs = (end - start) / 1000.0;
    let per_s = |n: u64| {
        if secs > 0.0 {
            round3(n as f64 / secs)
        } else {
            0.0
        }
    };
    let ms = |us: u64| (requests > 0).then(|| round3(us as f64 / 1000.0));
    LatencyFacts {
        start_ms: round3(start),
        end_ms: round3(end),
        requests,
        errors,
        unfinished: m.unfinished,
        error_rate: if requests > 0 {
            round6(errors as f64 / requests as f64)
        } else {
            0.0
        },
        completed: m.completed,
        qps: per_s(m.completed),
        ok_qps: per_s(m.completed - m.completed_errors.min(m.completed)),
        error_qps: per_s(m.completed_errors),
        p50_ms: ms(h.value_at_quantile(0.50)),
        p99_ms: ms(h.value_at_quantile(0.99)),
        max_ms: ms(h.max()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::testkit::{record, segment_entry};

    #[test]
    fn a_span_merges_exactly_the_segments_inside_it() {
        let mut r = record();
        r.histograms.segments = vec![
            segment_entry("q", "v1", (0.0, 1000.0), &[(1000, 99), (50_015, 1)], 0),
            segment_entry("q", "v1", (1000.0, 2000.0), &[(200_000, 10)], 2),
            segment_entry("q", "v2", (1000.0, 2000.0), &[(2000, 90)], 0),
        ];
        let before = facts(&r, 0.0, 1000.0, None);
        assert_eq!((before.requests, before.p99_ms), (100, Some(1.0)));
        assert_eq!(before.max_ms, Some(50.015));
        let during = facts(&r, 1000.0, 2000.0, None);
        assert_eq!((during.requests, during.errors), (100, 2));
        // 10 of 100 requests took 200 ms: p99 is one of them (as the
        // histogram reports a value: the top of its 0.1% bucket).
        assert_eq!(during.p99_ms, Some(200.063));
        assert_eq!(during.p50_ms, Some(2.0));
        assert_eq!(
            (during.qps, during.ok_qps, during.error_qps),
            (100.0, 98.0, 2.0)
        );
        let v2 = facts(&r, 0.0, f64::INFINITY, Some("v2"));
        assert_eq!((v2.requests, v2.end_ms), (90, 4000.0));
    }

    #[test]
    fn no_requests_no_percentiles() {
        let r = record();
        let f = facts(&r, 0.0, 100.0, None);
        assert_eq!((f.requests, f.p99_ms, f.error_rate), (0, None, 0.0));
    }
}
