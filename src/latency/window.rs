//! One latency window while it is open: its histograms per query × app,
//! and per app what was in flight at its end; closed into latency.csv rows,
//! latency.hdr histograms and inflight.csv rows.

use hdrhistogram::Histogram;

use super::{label, Labels};
use crate::latency_hdr::{self, Entry, Span};
use crate::pg::round3;
use crate::record::{InflightRow, LatencyRow};

/// The requests of one query × app that completed in the window.
pub(super) struct Agg {
    latency: Histogram<u64>,
    service: Histogram<u64>,
    errors: u64,
}

/// One app's requests in flight at the window's end.
#[derive(Debug, Clone, Copy)]
pub(super) struct Inflight {
    /// The earliest intended start among them (ns since the run started).
    oldest_ns: u64,
    /// Connections executing a request.
    pub busy: u32,
}

impl Inflight {
    /// A request due since `intended_ns` was in flight.
    pub fn queued_since(&mut self, intended_ns: u64) {
        self.oldest_ns = self.oldest_ns.min(intended_ns);
    }
}

pub(super) struct Window {
    /// Indexed by `query × apps + app`.
    aggs: Vec<Option<Agg>>,
    /// Indexed by app.
    pub inflight: Vec<Inflight>,
}

/// What a window needs to know to close.
pub(super) struct Closing<'a> {
    pub labels: &'a Labels,
    pub start_ns: u64,
    pub window_ns: u64,
    /// Connections per app.
    pub pools: &'a [u32],
}

/// A closed window's output.
pub(super) struct Closed {
    pub latency: Vec<LatencyRow>,
    pub histograms: Vec<Entry>,
    pub inflight: Vec<InflightRow>,
    pub requests: u64,
    /// The largest p99 of a query × app in the window (µs).
    pub p99_us: u64,
}

impl Window {
    pub fn new(pairs: usize, apps: usize) -> Window {
        Window {
            aggs: (0..pairs).map(|_| None).collect(),
            inflight: vec![
                Inflight {
                    oldest_ns: u64::MAX,
                    busy: 0
                };
                apps
            ],
        }
    }

    pub fn record(&mut self, pair: usize, latency_us: u64, service_us: u64, failed: bool) {
        let a = self.aggs[pair].get_or_insert_with(|| Agg {
            latency: latency_hdr::histogram(),
            service: latency_hdr::histogram(),
            errors: 0,
        });
        latency_hdr::record(&mut a.latency, latency_us);
        latency_hdr::record(&mut a.service, service_us);
        a.errors += u64::from(failed);
    }

    pub fn close(self, c: Closing<'_>) -> Closed {
        let apps = c.labels.apps.len();
        let start_ms = round3(c.start_ns as f64 / 1e6);
        let window_ms = c.window_ns as f64 / 1e6;
        let mut out = Closed {
            latency: Vec::new(),
            histograms: Vec::new(),
            inflight: Vec::new(),
            requests: 0,
            p99_us: 0,
        };
        for (pair, agg) in self.aggs.into_iter().enumerate() {
            let Some(a) = agg else { continue };
            let (query, app) = (
                label(&c.labels.queries, (pair / apps) as u16),
                label(&c.labels.apps, (pair % apps) as u16),
            );
            let row = LatencyRow {
                window_start_ms: start_ms,
                window_ms,
                query: query.clone(),
                app: app.clone(),
                count: a.latency.len(),
                errors: a.errors,
                p50_us: a.latency.value_at_quantile(0.50),
                p95_us: a.latency.value_at_quantile(0.95),
                p99_us: a.latency.value_at_quantile(0.99),
                max_us: a.latency.max(),
                service_p50_us: a.service.value_at_quantile(0.50),
                service_p99_us: a.service.value_at_quantile(0.99),
            };
            out.requests += row.count;
            out.p99_us = out.p99_us.max(row.p99_us);
            out.latency.push(row);
            out.histograms.push(Entry {
                span: Span::Window,
                query,
                app,
                from_ms: start_ms,
                to_ms: round3(start_ms + window_ms),
                hist: a.latency,
            });
        }
        let end_ns = c.start_ns + c.window_ns;
        for (app, f) in self.inflight.iter().enumerate() {
            let connections = c.pools.get(app).copied().unwrap_or(0);
            if connections == 0 {
                continue;
            }
            out.inflight.push(InflightRow {
                window_start_ms: start_ms,
                window_ms,
                app: label(&c.labels.apps, app as u16),
                connections,
                busy: f.busy,
                oldest_ms: (f.oldest_ns <= end_ns)
                    .then(|| round3(end_ns.saturating_sub(f.oldest_ns) as f64 / 1e6)),
            });
        }
        out
    }
}
