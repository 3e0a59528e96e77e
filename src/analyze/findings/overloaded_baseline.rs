//! An overloaded baseline: in open loop, an app could not keep up with its
//! schedule before the first step ran. Its latency "before" is then queueing
//! behind a growing backlog, not the server's answer, and the backlog runs
//! on into every figure after it (p99 during and after, recovery), so no
//! comparison with the migration means anything. A scenario whose app has
//! no index for its hot query, or a rate above what its connections can
//! serve, rehearses an outage that production does not have.
//!
//! - **Reads** run.json (the open-loop rate, the phases and steps: the
//!   migration's start), inflight.csv (per window's end: the app's busy
//!   connections, its oldest request in flight) and latency.csv (requests
//!   completed and their service time) of the windows before the migration.
//! - **Fires when**, at the last window's end before the migration began,
//!   every connection of an app was busy, its oldest request in flight was
//!   older than the blocking-lock threshold (100 ms) and older than halfway
//!   through the traffic before: a backlog that grew, not one slow request.
//!   Once per app, for the whole run; warning.
//! - **Advises** a sustainable baseline: a rate below what the app's
//!   connections serve (estimated from their service time), more
//!   connections, or the index the slow query needs; then rehearse again.

use super::finding::{Finding, FindingKind, SafePattern, Severity};
use super::rule::{distinct, Evidence, Rule};
use crate::record::{InflightRow, LatencyRow};

pub const KIND: FindingKind = FindingKind::new("overloaded_baseline");

pub const RULE: Rule = Rule::run(KIND, check);

/// The app's backlog before the migration, as its windows show it.
struct Backlog<'a> {
    app: String,
    /// Windows from the app's first request in flight to the migration's
    /// start.
    rows: Vec<&'a InflightRow>,
}

impl Backlog<'_> {
    fn last(&self) -> &InflightRow {
        self.rows.last().expect("a backlog has windows")
    }

    fn traffic_start_ms(&self) -> f64 {
        self.rows[0].window_start_ms
    }

    fn oldest_at(&self, i: usize) -> f64 {
        self.rows[i].oldest_ms.unwrap_or(0.0)
    }

    /// A full pool whose oldest request aged past `threshold_ms` and past
    /// its age halfway through the traffic before.
    fn grew(&self, threshold_ms: f64) -> bool {
        let last = self.last();
        let oldest = self.oldest_at(self.rows.len() - 1);
        self.rows.len() >= 4
            && last.connections > 0
            && last.busy >= last.connections
            && oldest >= threshold_ms
            && oldest > self.oldest_at(self.rows.len() / 2)
    }
}

/// When the migration began: the first phase's or step's start.
fn migration_start_ms(ev: &Evidence<'_>) -> Option<f64> {
    let phases = ev.rec.info.iter().flat_map(|i| i.phases.iter().map(|p| p.start_ms));
    let steps = ev.steps.iter().map(|s| s.start_ms);
    phases.chain(steps).min_by(f64::total_cmp)
}

fn check(ev: &Evidence<'_>) -> Vec<Finding> {
    let Some(rate) = ev.rec.info.as_ref().and_then(|i| i.rate) else {
        return vec![]; // closed loop: every connection is always busy by design
    };
    let Some(start) = migration_start_ms(ev) else {
        return vec![];
    };
    let apps = distinct(ev.rec.inflight.iter().map(|r| r.app.clone()));
    let mut out = Vec::new();
    for app in apps {
        let rows: Vec<&InflightRow> = ev
            .rec
            .inflight
            .iter()
            .filter(|r| r.app == app && r.window_start_ms + r.window_ms <= start)
            .skip_while(|r| r.oldest_ms.is_none())
            .collect();
        let backlog = Backlog { app, rows };
        if backlog.rows.is_empty() || !backlog.grew(ev.th.blocking_lock_ms) {
            continue;
        }
        // A backlog behind a lock (another session's, a script's) is a
        // stall, not a rate the connections cannot serve: waits.csv says so.
        let from = backlog.traffic_start_ms();
        let stalled = ev.rec.waits.iter().any(|w| {
            w.app == backlog.app
                && w.end_ms > from
                && w.start_ms < start
                && w.wait_ms >= ev.th.blocking_lock_ms
        });
        if stalled {
            continue;
        }
        out.push(finding(&backlog, &ev.rec.latency, rate, start));
    }
    out
}

fn finding(b: &Backlog<'_>, latency: &[LatencyRow], rate: f64, start: f64) -> Finding {
    let last = b.last();
    let from = b.traffic_start_ms();
    let secs = (start - from) / 1e3;
    let full = b
        .rows
        .iter()
        .filter(|r| r.connections > 0 && r.busy >= r.connections)
        .count();
    let oldest = last.oldest_ms.unwrap_or(0.0);
    let halfway = b.oldest_at(b.rows.len() / 2);
    let done: Vec<&LatencyRow> = latency
        .iter()
        .filter(|l| l.app == b.app && l.window_start_ms >= from && l.window_start_ms + l.window_ms <= start)
        .collect();
    let completed: u64 = done.iter().map(|l| l.count).sum();
    let mut seen = format!(
        "in the {secs:.1} s of traffic before the migration ({:.2}–{:.2} s), all {} connections of {} were busy at the end of {full} of {} windows, and its oldest request in flight had waited {oldest:.0} ms when the migration began ({halfway:.0} ms halfway): requests were due at {rate:.0}/s in total and {} completed {:.0}/s",
        from / 1e3,
        start / 1e3,
        last.connections,
        b.app,
        b.rows.len(),
        b.app,
        completed as f64 / secs.max(1e-3),
    );
    let service = mean_service_ms(&done);
    let capacity = service.map(|ms| f64::from(last.connections) * 1e3 / ms);
    if let (Some(ms), Some(cap)) = (service, capacity) {
        seen.push_str(&format!(
            "; a request held its connection {ms:.1} ms (service time p50, weighted by count), so {} connections serve about {cap:.0}/s",
            last.connections
        ));
        if let Some((q, q_ms)) = slowest_query(&done) {
            seen.push_str(&format!(", the slowest query {q} at {q_ms:.1} ms"));
        }
    }
    seen.push_str(". Latency before the migration is queueing, and the backlog carries into every figure after it");
    let title = format!(
        "App {} could not keep up before the migration: {oldest:.0} ms behind schedule",
        b.app
    );
    Finding::new(KIND, Severity::Warning, title, seen).instead(advice(capacity, rate, last.connections))
}

/// The mean time a request held its connection: each window's service-time
/// p50 weighted by its requests (ms); none without requests.
fn mean_service_ms(rows: &[&LatencyRow]) -> Option<f64> {
    let n: u64 = rows.iter().map(|l| l.count).sum();
    let total: f64 = rows.iter().map(|l| l.count as f64 * l.service_p50_us as f64).sum();
    (n > 0 && total > 0.0).then(|| total / n as f64 / 1e3)
}

/// The query with the longest weighted service time, and that time (ms).
fn slowest_query(rows: &[&LatencyRow]) -> Option<(String, f64)> {
    distinct(rows.iter().map(|l| l.query.clone()))
        .into_iter()
        .filter_map(|q| {
            let of: Vec<&LatencyRow> = rows.iter().copied().filter(|l| l.query == q).collect();
            mean_service_ms(&of).map(|ms| (q, ms))
        })
        .max_by(|a, b| a.1.total_cmp(&b.1))
}

fn advice(capacity: Option<f64>, rate: f64, connections: u32) -> SafePattern {
    // 70 % of what the connections serve; where that is above the rate
    // (service times understate a backlog's cause), 70 % of the rate.
    let sustainable = capacity
        .map(|c| format!("{:.0}", (c * 0.7).min(rate * 0.7).max(1.0)))
        .unwrap_or_else(|| "<lower>".into());
    let why = match capacity {
        Some(c) if c * 0.7 < rate * 0.7 => "about 70 % of what the connections serve",
        Some(_) => "70 % of the rate: the connections' service time alone would serve it",
        None => "below what the connections serve",
    };
    SafePattern {
        advice: "Rehearse from a baseline the app sustains: a production app this far behind is down already, with or without the migration. Lower the scenario's rate below what the app's connections serve, give it more connections (clients), or give its slow query the index it needs (the schema the rehearsal starts from should be production's); then rehearse again. EXPLAIN (ANALYZE, BUFFERS) of the slowest query shows where its time goes.".into(),
        sql: format!(
            "-- in the scenario (TOML):\n-- [workload]\n-- rate = {sustainable}      # {why}\n-- clients = {}",
            connections * 2
        ),
    }
}

#[cfg(test)]
pub(super) mod examples {
    use super::KIND;
    use crate::analyze::testkit::{inflight_row, latency_row, record};
    use crate::analyze::{analyze, Severity};
    use crate::record::RunRecord;

    /// Open loop at 300/s; app v1's 8 connections are all busy from 300 ms
    /// on and its oldest request ages 40 ms per window until the phase
    /// starts at 1 s: a growing backlog. Its reads take 50 ms each.
    pub(in crate::analyze::findings) fn fires() -> RunRecord {
        let mut r = record();
        r.info.as_mut().expect("run.json").rate = Some(300.0);
        r.latency.retain(|l| l.app != "v1" || l.window_start_ms >= 1000.0);
        for k in 2..10 {
            let t = k as f64 * 100.0;
            r.inflight.push(inflight_row("v1", t, 8, 40.0 * (k - 1) as f64));
            r.inflight.push(inflight_row("v2", t, 2, 3.0));
            let mut l = latency_row("read", "v1", t, 300_000);
            l.count = 16;
            l.service_p50_us = 50_000;
            r.latency.push(l);
        }
        r
    }

    /// The same app keeping up: a full pool for a moment, its oldest
    /// request never older than a few milliseconds.
    pub(in crate::analyze::findings) fn quiet() -> RunRecord {
        let mut r = fires();
        for row in &mut r.inflight {
            row.oldest_ms = Some(4.0);
        }
        r
    }

    #[test]
    fn says_how_far_behind_and_what_the_connections_serve() {
        let f = analyze(&fires())
            .findings
            .into_iter()
            .find(|f| f.kind == KIND)
            .expect("overloaded");
        assert_eq!(f.severity, Severity::Warning);
        assert!(f.title.contains("App v1 could not keep up"), "{}", f.title);
        assert!(f.title.contains("320 ms behind schedule"), "{}", f.title);
        for part in [
            "all 8 connections of v1 were busy at the end of 8 of 8 windows",
            "waited 320 ms when the migration began (200 ms halfway)",
            "due at 300/s in total and v1 completed 160/s",
            "held its connection 50.0 ms",
            "8 connections serve about 160/s",
            "the slowest query read",
        ] {
            assert!(f.seen.contains(part), "{part}: {}", f.seen);
        }
        assert!(f.safe_pattern.sql.contains("rate = 112"), "{}", f.safe_pattern.sql);
    }

    /// The same backlog behind a lock (a script's, 700 ms): a stall, not a
    /// rate the connections cannot serve (QA: called "overload").
    #[test]
    fn a_backlog_behind_a_lock_is_no_overload() {
        let mut r = fires();
        let mut w = crate::analyze::testkit::wait(250.0, 950.0, crate::record::WaitCause::App);
        w.app = "v1".into();
        r.waits.push(w);
        assert!(analyze(&r).findings.iter().all(|f| f.kind != KIND));
    }

    #[test]
    fn closed_loop_and_a_short_stall_are_no_overload() {
        let mut closed = fires();
        closed.info.as_mut().expect("run.json").rate = None;
        let stall = {
            let mut r = fires();
            // One slow window halfway, caught up by the migration's start.
            for row in r.inflight.iter_mut().filter(|i| i.app == "v1") {
                row.oldest_ms = Some(if row.window_start_ms == 500.0 { 300.0 } else { 5.0 });
            }
            r
        };
        for r in [closed, stall] {
            assert!(analyze(&r).findings.iter().all(|f| f.kind != KIND));
        }
    }
}
