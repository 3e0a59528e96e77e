//! Per-window latency histograms: the recorder task that turns finished
//! requests into latency.csv and errors.csv rows.
//!
//! A request belongs to the window in which it completed. Windows are closed
//! (their percentiles computed, histograms dropped) once no request for them
//! can still arrive, so memory stays bounded however long the run.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::clock::Clock;
use crate::pg::round3;
use crate::record::{ErrorRow, LatencyRow};
use crate::workload::{Labels, Sample, SCRIPT_APP};

/// errors.csv keeps at most this many rows; the counts in latency.csv stay
/// exact beyond it.
pub const MAX_ERROR_ROWS: usize = 100_000;

/// Highest latency a histogram tracks (1 hour, in µs); larger values are
/// clamped rather than dropped.
const MAX_TRACKABLE_US: u64 = 3_600_000_000;

/// Live figures for the progress display.
#[derive(Debug, Default)]
pub struct LiveStats {
    pub completed: AtomicU64,
    pub errors: AtomicU64,
    /// p99 of the last closed window, µs.
    pub last_p99_us: AtomicU64,
    /// Requests of the last closed window.
    pub last_window_count: AtomicU64,
}

struct Agg {
    latency: Histogram<u32>,
    service: Histogram<u32>,
    errors: u64,
}

impl Agg {
    fn new() -> Agg {
        // 2 significant digits keeps each histogram small (a few KB) while
        // percentiles stay within 1%.
        let h = || Histogram::<u32>::new_with_bounds(1, MAX_TRACKABLE_US, 2).expect("valid bounds");
        Agg {
            latency: h(),
            service: h(),
            errors: 0,
        }
    }
}

pub struct LatencyRecorder {
    clock: Clock,
    window_ms: f64,
    windows: BTreeMap<u64, HashMap<(u16, u16), Agg>>,
    pub rows: Vec<LatencyRow>,
    pub errors: Vec<ErrorRow>,
    pub errors_dropped: u64,
    labels: Labels,
    live: Arc<LiveStats>,
}

impl LatencyRecorder {
    pub fn new(
        clock: Clock,
        window_ms: f64,
        labels: Labels,
        live: Arc<LiveStats>,
    ) -> LatencyRecorder {
        LatencyRecorder {
            clock,
            window_ms,
            windows: BTreeMap::new(),
            rows: Vec::new(),
            errors: Vec::new(),
            errors_dropped: 0,
            labels,
            live,
        }
    }

    /// Consume samples until every sender is gone, then close all windows.
    pub async fn run(mut self, mut rx: mpsc::Receiver<Sample>) -> LatencyRecorder {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(50));
        loop {
            tokio::select! {
                s = rx.recv() => match s {
                    Some(s) => self.add(&s),
                    None => break,
                },
                _ = tick.tick() => self.close_before(self.clock.now_ms() - 2.0 * self.window_ms),
            }
        }
        self.close_before(f64::INFINITY);
        self
    }

    fn app_label(&self, app: u16) -> String {
        if app == u16::MAX {
            SCRIPT_APP.to_string()
        } else {
            self.labels
                .apps
                .get(app as usize)
                .cloned()
                .unwrap_or_default()
        }
    }

    pub fn add(&mut self, s: &Sample) {
        let done_ms = self.clock.ms_of(s.done);
        let w = (done_ms.max(0.0) / self.window_ms) as u64;
        let agg = self
            .windows
            .entry(w)
            .or_default()
            .entry((s.query, s.app))
            .or_insert_with(Agg::new);
        let lat = s.done.saturating_duration_since(s.intended).as_micros() as u64;
        let svc = s.done.saturating_duration_since(s.sent).as_micros() as u64;
        agg.latency
            .saturating_record(lat.clamp(1, MAX_TRACKABLE_US));
        agg.service
            .saturating_record(svc.clamp(1, MAX_TRACKABLE_US));
        self.live.completed.fetch_add(1, Ordering::Relaxed);
        if let Some(e) = &s.error {
            agg.errors += 1;
            self.live.errors.fetch_add(1, Ordering::Relaxed);
            if self.errors.len() < MAX_ERROR_ROWS {
                let row = ErrorRow {
                    t_ms: round3(done_ms),
                    query: self
                        .labels
                        .queries
                        .get(s.query as usize)
                        .cloned()
                        .unwrap_or_default(),
                    app: self.app_label(s.app),
                    sqlstate: e.sqlstate.clone(),
                    message: e.message.clone(),
                };
                self.errors.push(row);
            } else {
                self.errors_dropped += 1;
            }
        }
    }

    /// Close every window that ends before `t_ms`.
    fn close_before(&mut self, t_ms: f64) {
        while let Some((&w, _)) = self.windows.first_key_value() {
            let end = (w + 1) as f64 * self.window_ms;
            if end > t_ms {
                break;
            }
            let aggs = self.windows.remove(&w).unwrap_or_default();
            let mut keys: Vec<_> = aggs.keys().copied().collect();
            keys.sort();
            let mut window_count = 0;
            let mut window_p99 = 0;
            for k in keys {
                let a = &aggs[&k];
                let row = LatencyRow {
                    window_start_ms: round3(w as f64 * self.window_ms),
                    window_ms: self.window_ms,
                    query: self
                        .labels
                        .queries
                        .get(k.0 as usize)
                        .cloned()
                        .unwrap_or_default(),
                    app: self.app_label(k.1),
                    count: a.latency.len(),
                    errors: a.errors,
                    p50_us: a.latency.value_at_quantile(0.50),
                    p95_us: a.latency.value_at_quantile(0.95),
                    p99_us: a.latency.value_at_quantile(0.99),
                    max_us: a.latency.max(),
                    service_p50_us: a.service.value_at_quantile(0.50),
                    service_p99_us: a.service.value_at_quantile(0.99),
                };
                window_count += row.count;
                window_p99 = window_p99.max(row.p99_us);
                self.rows.push(row);
            }
            self.live
                .last_window_count
                .store(window_count, Ordering::Relaxed);
            self.live.last_p99_us.store(window_p99, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn labels() -> Labels {
        Labels {
            queries: vec!["q".into()],
            apps: vec!["v1".into()],
        }
    }

    #[test]
    fn latency_counts_from_intended_start() {
        let clock = Clock::start();
        let mut r = LatencyRecorder::new(clock, 100.0, labels(), Arc::default());
        let t0 = clock.start_instant();
        // Intended at 0, sent at 900 ms (queued), done at 1000 ms.
        r.add(&Sample {
            query: 0,
            app: 0,
            intended: t0,
            sent: t0 + Duration::from_millis(900),
            done: t0 + Duration::from_millis(1000),
            error: None,
        });
        r.close_before(f64::INFINITY);
        assert_eq!(r.rows.len(), 1);
        let row = &r.rows[0];
        assert_eq!(row.window_start_ms, 1000.0);
        assert!(
            (row.max_us as f64 - 1_000_000.0).abs() / 1e6 < 0.01,
            "{row:?}"
        );
        assert!(
            (row.service_p99_us as f64 - 100_000.0).abs() / 1e5 < 0.01,
            "{row:?}"
        );
    }

    #[test]
    fn errors_are_counted_and_kept() {
        let clock = Clock::start();
        let mut r = LatencyRecorder::new(clock, 100.0, labels(), Arc::default());
        let now = Instant::now();
        for i in 0..3 {
            r.add(&Sample {
                query: 0,
                app: if i == 2 { u16::MAX } else { 0 },
                intended: now,
                sent: now,
                done: now,
                error: Some(crate::workload::AppError {
                    sqlstate: "55P03".into(),
                    message: "lock timeout".into(),
                }),
            });
        }
        r.close_before(f64::INFINITY);
        assert_eq!(r.errors.len(), 3);
        assert_eq!(r.errors[2].app, "script");
        let total: u64 = r.rows.iter().map(|x| x.errors).sum();
        assert_eq!(total, 3);
    }
}
