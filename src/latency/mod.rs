//! The latency recorder: every finished request, exactly once, in
//! HdrHistograms per window and per segment, streamed to the run directory
//! as windows close (latency.csv, latency.hdr, inflight.csv) and errors kept
//! for errors.csv.
//!
//! - Windows are the fixed `window` grid from the run's start; a request
//!   belongs to the window in which it *completed* (latency over time, as
//!   it was observed). Segments lie between the boundaries the migration
//!   marks (`segments`); a request's latency belongs to the segment in
//!   which it was *due* (its intended start), while each segment also
//!   counts the requests that *completed* in it (throughput). So a request
//!   sent while a step held its lock, and answered only after the step
//!   committed, is charged to the step.
//!   Latency is completion − intended start (open loop), service time
//!   completion − send.
//! - Clients hand their finished requests over in `client` buffers; the
//!   recorder drains them every [`TICK`], so no message is sent per request.
//! - A window closes `GRACE` after its end: its rows and histograms are
//!   written and its memory freed, so memory stays flat however long the
//!   run (what grows is the files). Segment histograms live until the end:
//!   there are a few per step.
//! - At each window's end the recorder also knows, per app, the oldest
//!   request still in flight (queued or executing, from its intended start)
//!   and how many connections were busy: a stall is visible while no
//!   request completes (`window::Inflight`).

mod client;
mod segments;
#[cfg(test)]
mod tests;
mod window;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::error::Result;
use crate::latency_hdr::{self, Entry, Span};
use crate::pg::round3;
use crate::record::{ErrorRow, LatencyFiles};
use client::{Buffer, Executing, Finished, Unclaimed};
pub use client::{ClientLog, Registry};
pub use segments::SegmentMarks;
use window::Window;

/// errors.csv keeps at most this many rows; the counts in latency.csv and
/// latency.hdr stay exact beyond it.
pub const MAX_ERROR_ROWS: usize = 100_000;

/// How often the recorder drains the clients' buffers.
pub const TICK: Duration = Duration::from_millis(25);

/// How long after its end a window is closed. A request is handed over the
/// moment it completes, so only a client thread descheduled for longer
/// than this between the two can miss its window: it is then counted in
/// the oldest open window (and in its right segment), and `-v` says so.
pub const GRACE_MS: f64 = 100.0;

/// The app label scripts report under.
pub const SCRIPT_APP: &str = "script";

/// The app of a lock wait of a session that is none of the rehearsal's (a
/// monitoring agent, a DBA's job connected to the scratch database):
/// waits.csv lists it, for the chains it is part of, but it is not the app.
pub const OTHER_APP: &str = "other";

/// Is a wait of `app` one of the app's (any version's)? Not a script's,
/// not another session's.
pub fn is_the_apps(app: &str) -> bool {
    app != SCRIPT_APP && app != OTHER_APP
}

/// Names behind the indices the recorder keeps: queries (the scripts come
/// after the workload's queries) and app versions (`script` last).
#[derive(Debug, Clone)]
pub struct Labels {
    pub queries: Vec<String>,
    pub apps: Vec<String>,
}

impl Labels {
    /// The index scripts report under (the last app).
    pub fn script_app(&self) -> u16 {
        self.apps.len().saturating_sub(1) as u16
    }
}

/// An app request that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct AppError {
    pub sqlstate: String,
    pub message: String,
}

impl AppError {
    pub fn from_pg(e: &tokio_postgres::Error) -> AppError {
        match e.as_db_error() {
            Some(db) => AppError {
                sqlstate: db.code().code().to_string(),
                message: db.message().to_string(),
            },
            None if e.is_closed() => AppError {
                sqlstate: "08006".into(),
                message: format!("connection lost: {e}"),
            },
            None => AppError {
                sqlstate: "08000".into(),
                message: e.to_string(),
            },
        }
    }
}

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

/// One segment's histograms per query × app.
struct Segment {
    from_ms: f64,
    /// Indexed like the windows' aggregates.
    aggs: Vec<Option<SegmentAgg>>,
}

/// One query × app in one segment.
struct SegmentAgg {
    /// The requests due in the segment: their latencies, and how many failed.
    latency: hdrhistogram::Histogram<u64>,
    errors: u64,
    /// The requests that completed in the segment, and how many failed.
    completed: u64,
    completed_errors: u64,
    /// Of the requests due, those a hard stop cut off (in `latency` with
    /// their age at the stop).
    unfinished: u64,
}

/// What the recorder kept besides the streamed files.
#[derive(Debug, Default)]
pub struct Recorded {
    /// errors.csv rows (the first [`MAX_ERROR_ROWS`]).
    pub errors: Vec<ErrorRow>,
    pub errors_dropped: u64,
    /// Requests that reached the recorder after their window had closed.
    pub late: u64,
    pub requests: u64,
    /// When the first and the last request completed, ns since the run
    /// started.
    pub first_done_ns: Option<u64>,
    pub last_done_ns: u64,
}

pub struct LatencyRecorder {
    window_ns: u64,
    labels: Labels,
    live: Arc<LiveStats>,
    registry: Registry,
    marks: Arc<SegmentMarks>,
    files: LatencyFiles,
    /// Index of the oldest open window; `windows[0]` is it.
    first_open: u64,
    windows: VecDeque<Window>,
    segments: Vec<Segment>,
    bounds: Vec<f64>,
    /// Per registered client: its log and the buffer it was drained into.
    drained: Vec<(Arc<ClientLog>, Buffer)>,
    executing: Vec<Executing>,
    /// Connections per app (scripts' sessions are not counted).
    pools: Vec<u32>,
    out: Recorded,
}

impl LatencyRecorder {
    pub fn new(
        window: Duration,
        labels: Labels,
        registry: Registry,
        marks: Arc<SegmentMarks>,
        files: LatencyFiles,
        live: Arc<LiveStats>,
    ) -> LatencyRecorder {
        LatencyRecorder {
            window_ns: (window.as_nanos() as u64).max(1),
            labels,
            live,
            registry,
            marks,
            files,
            first_open: 0,
            windows: VecDeque::new(),
            segments: Vec::new(),
            bounds: Vec::new(),
            drained: Vec::new(),
            executing: Vec::new(),
            pools: Vec::new(),
            out: Recorded::default(),
        }
    }

    /// Drain the clients every [`TICK`] until `finish` is cancelled (after
    /// every client has stopped), then close every window and segment and
    /// flush the files.
    pub async fn run(mut self, finish: CancellationToken) -> Result<Recorded> {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = finish.cancelled() => break,
                _ = tick.tick() => {
                    let upto = self.collect();
                    self.close_before(upto - GRACE_MS)?;
                }
            }
        }
        self.finish()
    }

    /// Take what every client finished since the last tick; returns the
    /// run-clock ms up to which everything is known.
    fn collect(&mut self) -> f64 {
        let logs = self.registry.logs();
        for log in logs.into_iter().skip(self.drained.len()) {
            let app = log.app as usize;
            if log.pooled {
                if self.pools.len() <= app {
                    self.pools.resize(app + 1, 0);
                }
                self.pools[app] += 1;
            }
            self.drained.push((log, Buffer::default()));
        }
        self.executing.clear();
        for (log, buf) in &mut self.drained {
            if let Some(ex) = log.drain(buf) {
                if log.pooled {
                    self.executing.push(ex);
                }
            }
        }
        // After draining: every request drained completed before `upto`,
        // and every boundary not in `bounds` lies after it.
        let upto = self.marks.snapshot(&mut self.bounds);
        let drained = std::mem::take(&mut self.drained);
        for (log, buf) in &drained {
            for f in &buf.finished {
                self.add(log.app, log.pooled, f);
            }
            for (done_ns, intended_ns, query, e) in &buf.errors {
                self.add_error(log.app, (*intended_ns, *done_ns), *query, e);
            }
            for u in &buf.unclaimed {
                self.add_unclaimed(log.app, log.pooled, u);
            }
        }
        self.drained = drained;
        upto
    }

    fn pair(&self, query: u16, app: u16) -> usize {
        query as usize * self.labels.apps.len() + app as usize
    }

    /// The window of index `w`, opening windows up to it.
    fn window(&mut self, w: u64) -> &mut Window {
        let pairs = self.labels.queries.len() * self.labels.apps.len();
        let apps = self.labels.apps.len();
        while self.first_open + (self.windows.len() as u64) <= w {
            self.windows.push_back(Window::new(pairs, apps));
        }
        &mut self.windows[(w - self.first_open) as usize]
    }

    fn add(&mut self, app: u16, pooled: bool, f: &Finished) {
        if f.unfinished {
            self.add_unfinished(app, f.query, f.intended_ns, f.done_ns);
            if pooled {
                self.in_flight_until_done(app, f);
            }
            return;
        }
        let lat_us = f.done_ns.saturating_sub(f.intended_ns) / 1_000;
        let svc_us = f.done_ns.saturating_sub(f.sent_ns) / 1_000;
        let mut w = f.done_ns / self.window_ns;
        if w < self.first_open {
            self.out.late += 1;
            w = self.first_open;
        }
        let pair = self.pair(f.query, app);
        self.window(w).record(pair, lat_us, svc_us, f.failed);
        if pooled {
            self.in_flight_until_done(app, f);
        }
        let due = segments::segment_of(&self.bounds, f.intended_ns as f64 / 1e6);
        let agg = self.segment_agg(due, pair);
        latency_hdr::record(&mut agg.latency, lat_us);
        agg.errors += u64::from(f.failed);
        let done = segments::segment_of(&self.bounds, f.done_ns as f64 / 1e6);
        let agg = self.segment_agg(done, pair);
        agg.completed += 1;
        agg.completed_errors += u64::from(f.failed);
        self.out.requests += 1;
        self.out.last_done_ns = self.out.last_done_ns.max(f.done_ns);
        let first = self.out.first_done_ns.get_or_insert(f.done_ns);
        *first = (*first).min(f.done_ns);
        self.live.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// A request due at `due_ns` that a hard stop at `stop_ns` cut off: its
    /// age then goes to its segment's latencies (a lower bound of what it
    /// would have taken), counted as unfinished; it completed nowhere, so
    /// no window and no throughput counts it.
    fn add_unfinished(&mut self, app: u16, query: u16, due_ns: u64, stop_ns: u64) {
        let pair = self.pair(query, app);
        let seg = segments::segment_of(&self.bounds, due_ns as f64 / 1e6);
        let agg = self.segment_agg(seg, pair);
        latency_hdr::record(&mut agg.latency, stop_ns.saturating_sub(due_ns) / 1_000);
        agg.unfinished += 1;
    }

    /// An app's backlog that a hard stop left unsent: each request with its
    /// query drawn from the app's mix (seeded by the backlog, so the same
    /// record reads the same), and the oldest in flight until the stop.
    fn add_unclaimed(&mut self, app: u16, pooled: bool, u: &Unclaimed) {
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(u.first_due_ns);
        for k in 0..u.count {
            let due_ns = (u.first_due_ns + k * u.interval_ns).min(u.done_ns);
            if let Some(q) = crate::workload::pick_weighted(&u.mix, &mut rng) {
                self.add_unfinished(app, q, due_ns, u.done_ns);
            }
        }
        if pooled && u.count > 0 {
            let oldest = Finished {
                query: 0,
                failed: false,
                unfinished: true,
                intended_ns: u.first_due_ns,
                sent_ns: u.done_ns,
                done_ns: u.done_ns,
            };
            self.in_flight_until_done(app, &oldest);
        }
    }

    /// The finished request was in flight at the end of every window from
    /// its intended start (busy from its send) until it completed: tell the
    /// windows still open. Those already closed counted it as executing.
    fn in_flight_until_done(&mut self, app: u16, f: &Finished) {
        let wn = self.window_ns;
        // Window m-1 ends at m·wn; in flight there when start <= m·wn < done.
        let last = f.done_ns.div_ceil(wn).saturating_sub(1);
        let open = self.first_open + 1;
        let first = |start_ns: u64| start_ns.div_ceil(wn).max(open);
        for m in first(f.intended_ns)..=last {
            self.window(m - 1).inflight[app as usize].queued_since(f.intended_ns);
        }
        for m in first(f.sent_ns)..=last {
            self.window(m - 1).inflight[app as usize].busy += 1;
        }
    }

    fn segment_agg(&mut self, seg: usize, pair: usize) -> &mut SegmentAgg {
        self.segment(seg).aggs[pair].get_or_insert_with(|| SegmentAgg {
            latency: latency_hdr::histogram(),
            errors: 0,
            completed: 0,
            completed_errors: 0,
            unfinished: 0,
        })
    }

    fn segment(&mut self, i: usize) -> &mut Segment {
        let pairs = self.labels.queries.len() * self.labels.apps.len();
        while self.segments.len() <= i {
            let n = self.segments.len();
            self.segments.push(Segment {
                from_ms: if n == 0 { 0.0 } else { self.bounds[n - 1] },
                aggs: (0..pairs).map(|_| None).collect(),
            });
        }
        &mut self.segments[i]
    }

    /// A failed request, due at `intended_ns` and done at `done_ns`.
    fn add_error(
        &mut self,
        app: u16,
        (intended_ns, done_ns): (u64, u64),
        query: u16,
        e: &AppError,
    ) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        if self.out.errors.len() >= MAX_ERROR_ROWS {
            self.out.errors_dropped += 1;
            return;
        }
        self.out.errors.push(ErrorRow {
            t_ms: round3(done_ns as f64 / 1e6),
            query: label(&self.labels.queries, query),
            app: label(&self.labels.apps, app),
            sqlstate: e.sqlstate.clone(),
            message: e.message.clone(),
            due_ms: Some(round3(intended_ns as f64 / 1e6)),
        });
    }

    /// Close every window that ends at or before `t_ms`.
    fn close_before(&mut self, t_ms: f64) -> Result<()> {
        let window_ms = self.window_ns as f64 / 1e6;
        while (self.first_open + 1) as f64 * window_ms <= t_ms {
            self.close_first()?;
        }
        Ok(())
    }

    /// Write the oldest open window (rows, histograms, in-flight figures)
    /// and drop it.
    fn close_first(&mut self) -> Result<()> {
        let k = self.first_open;
        self.window(k);
        let mut w = self.windows.pop_front().expect("opened above");
        self.first_open += 1;
        let start_ns = k * self.window_ns;
        let end_ns = start_ns + self.window_ns;
        // Requests still executing now were in flight at the window's end
        // if they were due (or sent) by then.
        for ex in &self.executing {
            let f = &mut w.inflight[ex.app as usize];
            if ex.intended_ns <= end_ns {
                f.queued_since(ex.intended_ns);
            }
            if ex.sent_ns.is_some_and(|s| s <= end_ns) {
                f.busy += 1;
            }
        }
        let closed = w.close(window::Closing {
            labels: &self.labels,
            start_ns,
            window_ns: self.window_ns,
            pools: &self.pools,
        });
        for row in &closed.latency {
            self.files.latency_row(row)?;
        }
        for e in &closed.histograms {
            self.files.histogram(e)?;
        }
        for row in &closed.inflight {
            self.files.inflight_row(row)?;
        }
        self.live
            .last_window_count
            .store(closed.requests, Ordering::Relaxed);
        self.live
            .last_p99_us
            .store(closed.p99_us, Ordering::Relaxed);
        Ok(())
    }

    /// The last collection, every window closed, every segment written,
    /// the files flushed.
    fn finish(mut self) -> Result<Recorded> {
        let end_ms = self.collect();
        let window_ms = self.window_ns as f64 / 1e6;
        while (self.first_open as f64) * window_ms < end_ms || !self.windows.is_empty() {
            self.close_first()?;
        }
        // The last segment ends with the run: after every request and bound.
        let end_ms = (end_ms * 1e3).ceil() / 1e3;
        let end_ms = end_ms
            .max(self.bounds.last().copied().unwrap_or(0.0))
            .max((self.out.last_done_ns as f64 / 1e3).ceil() / 1e3 + 0.001);
        let segments = std::mem::take(&mut self.segments);
        for (i, seg) in segments.into_iter().enumerate() {
            let to_ms = self.bounds.get(i).copied().unwrap_or(end_ms);
            for (pair, agg) in seg.aggs.into_iter().enumerate() {
                let Some(agg) = agg else { continue };
                let (q, a) = (pair / self.labels.apps.len(), pair % self.labels.apps.len());
                self.files.histogram(&Entry {
                    span: Span::Segment {
                        errors: agg.errors,
                        completed: agg.completed,
                        completed_errors: agg.completed_errors,
                        unfinished: agg.unfinished,
                    },
                    query: label(&self.labels.queries, q as u16),
                    app: label(&self.labels.apps, a as u16),
                    from_ms: seg.from_ms,
                    to_ms,
                    hist: agg.latency,
                })?;
            }
        }
        self.files.finish()?;
        // In time order: requests are recorded as their connections hand
        // them over, which is not quite the order they ended in.
        self.out.errors.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        if self.out.late > 0 {
            tracing::info!(
                "latency: {} request(s) reached the recorder after their window had closed; counted in the next open window",
                self.out.late
            );
        }
        Ok(self.out)
    }
}

/// The name behind an index ("" if there is none).
fn label(names: &[String], i: u16) -> String {
    names.get(i as usize).cloned().unwrap_or_default()
}
