//! The recorder end to end: finished requests in, latency.csv,
//! inflight.csv and latency.hdr out, read back as the report reads them.

use std::time::{Duration, Instant};

use super::*;
use crate::analyze::latency::facts;
use crate::clock::Clock;
use crate::record::RunRecord;

/// A recorder replaying a run that started 30 s ago, so every time a test
/// uses is in the past.
struct Replay {
    dir: tempfile::TempDir,
    clock: Clock,
    registry: Registry,
    marks: Arc<SegmentMarks>,
    rec: LatencyRecorder,
}

const V1: u16 = 0;
const SCRIPT: u16 = 1;
const READ: u16 = 0;
const REPORT: u16 = 2;

fn replay() -> Replay {
    let clock = Clock::started_ago(Duration::from_secs(30));
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::new(clock.start_instant());
    let marks = Arc::new(SegmentMarks::new(clock));
    let labels = Labels {
        queries: vec!["read".into(), "write".into(), "report".into()],
        apps: vec!["v1".into(), SCRIPT_APP.into()],
    };
    let files = LatencyFiles::create(dir.path(), clock.start_wall()).unwrap();
    let rec = LatencyRecorder::new(
        Duration::from_millis(100),
        labels,
        registry.clone(),
        marks.clone(),
        files,
        Arc::default(),
    );
    Replay {
        dir,
        clock,
        registry,
        marks,
        rec,
    }
}

impl Replay {
    fn at(&self, ms: f64) -> Instant {
        self.clock.start_instant() + Duration::from_secs_f64(ms / 1e3)
    }

    /// A finished request: due at `intended`, sent at `sent`, done at
    /// `done` (ms).
    fn request(&self, log: &ClientLog, query: u16, (intended, sent, done): (f64, f64, f64)) {
        log.end(query, self.at(intended), self.at(sent), self.at(done), None);
    }

    fn finish(self) -> (tempfile::TempDir, Recorded, RunRecord) {
        let out = self.rec.finish().unwrap();
        let read = RunRecord::read(self.dir.path()).unwrap();
        (self.dir, out, read)
    }
}

fn near(got: u64, want: f64) -> bool {
    (got as f64 - want).abs() <= want * 0.001 + 1.0
}

#[test]
fn latency_counts_from_the_intended_start_in_the_window_it_completed() {
    let r = replay();
    let c = r.registry.client(V1, true);
    // Due at 0, sent at 900 ms (it queued), done at 1000 ms.
    r.request(&c, READ, (0.0, 900.0, 1000.0));
    let (_dir, out, rec) = r.finish();
    assert_eq!(out.requests, 1);
    assert_eq!(rec.latency.len(), 1);
    let row = &rec.latency[0];
    assert_eq!(
        (row.window_start_ms, row.query.as_str(), row.app.as_str()),
        (1000.0, "read", "v1")
    );
    assert!(near(row.max_us, 1_000_000.0), "{row:?}");
    assert!(near(row.service_p99_us, 100_000.0), "{row:?}");
    let seg = &rec.histograms.segments[0];
    assert_eq!((seg.from_ms, seg.hist.len()), (0.0, 1));
    assert!(seg.to_ms > 1000.0);
}

#[test]
fn errors_are_counted_and_kept_scripts_under_their_own_app() {
    let r = replay();
    let (app, script) = (
        r.registry.client(V1, true),
        r.registry.client(SCRIPT, false),
    );
    let err = || {
        Some(AppError {
            sqlstate: "55P03".into(),
            message: "lock timeout".into(),
        })
    };
    for (log, q) in [(&app, READ), (&app, READ), (&script, REPORT)] {
        log.end(q, r.at(10.0), r.at(10.0), r.at(20.0), err());
    }
    let (_dir, out, rec) = r.finish();
    assert_eq!(out.errors.len(), 3);
    assert_eq!(
        (out.errors[2].app.as_str(), out.errors[2].query.as_str()),
        ("script", "report")
    );
    assert_eq!(rec.latency.iter().map(|l| l.errors).sum::<u64>(), 3);
    // The app's figures leave the script out; its own are its app's.
    let f = facts(&rec, 0.0, f64::INFINITY, None);
    assert_eq!((f.requests, f.errors), (2, 2));
    let f = facts(&rec, 0.0, f64::INFINITY, Some("script"));
    assert_eq!((f.requests, f.errors), (1, 1));
    // Scripts are no connection of the app pool.
    assert!(rec
        .inflight
        .iter()
        .all(|i| i.app == "v1" && i.connections == 1));
}

/// errors.csv is in time order, whichever connection handed its error over
/// first (QA: 2270.8 before 2265.8).
#[test]
fn errors_are_kept_in_time_order() {
    let r = replay();
    let (a, b) = (r.registry.client(V1, true), r.registry.client(V1, true));
    let err = || {
        Some(AppError {
            sqlstate: "57014".into(),
            message: "canceled".into(),
        })
    };
    a.end(READ, r.at(10.0), r.at(10.0), r.at(30.0), err());
    b.end(READ, r.at(10.0), r.at(10.0), r.at(20.0), err());
    let (_dir, out, _rec) = r.finish();
    let t: Vec<f64> = out.errors.iter().map(|e| e.t_ms).collect();
    assert!(t.len() == 2 && t[0] < t[1], "{t:?}");
}

#[test]
fn a_stall_shows_while_nothing_completes() {
    let mut r = replay();
    let (a, b) = (r.registry.client(V1, true), r.registry.client(V1, true));
    // Quick requests on b, never across a window's end.
    for k in 0..30 {
        let t = k as f64 * 100.0 + 20.0;
        r.request(&b, READ, (t, t, t + 1.0));
    }
    // a is stuck from 1000 ms.
    a.begin(r.at(1000.0), r.at(1000.0));
    r.rec.collect();
    r.rec.close_before(1300.0).unwrap();
    // b took a request due at 1150 that waited until 1500 to be sent.
    r.request(&b, READ, (1150.0, 1500.0, 1520.0));
    r.rec.collect();
    r.rec.close_before(1600.0).unwrap();
    r.request(&a, READ, (1000.0, 1000.0, 1650.0));
    let (_dir, _out, rec) = r.finish();
    let at = |end: f64| {
        rec.inflight
            .iter()
            .find(|i| i.window_start_ms + i.window_ms == end)
            .map(|i| (i.busy, i.oldest_ms))
            .unwrap()
    };
    // Due exactly at a window's end: in flight there, for no time yet.
    assert_eq!(at(1000.0), (1, Some(0.0)));
    assert_eq!(at(900.0), (0, None));
    for (end, busy) in [
        (1100.0, 1),
        (1200.0, 1),
        (1300.0, 1),
        (1400.0, 1),
        (1500.0, 2),
        (1600.0, 1),
    ] {
        assert_eq!(at(end), (busy, Some(end - 1000.0)), "at {end}");
    }
    assert_eq!(at(1700.0), (0, None));
    assert!(rec.inflight.iter().all(|i| i.connections == 2));
    // Windows without a completion still have their in-flight row.
    assert!(!rec
        .latency
        .iter()
        .any(|l| l.window_start_ms == 1100.0 && l.count > 1));
}

/// Most windows fast, a few slow windows with few requests (a stall cuts
/// throughput): the windows' percentiles mislead — the mean of the window
/// p99s says 35 ms, and reconstructing the span from them said about
/// 65 ms — but the step's p99 is 100 ms: 30 of the ~2,030 requests due
/// while it ran (1.5%) took 100 ms. The report says so, at run time and
/// re-rendered.
#[test]
fn span_percentiles_are_exact_where_windows_mislead() {
    let r = replay();
    let c = r.registry.client(V1, true);
    r.marks.mark_at(2000.0);
    r.marks.mark_at(5000.0);
    let mut all_in_step = Vec::new();
    for w in 0..70 {
        let ws = w as f64 * 100.0;
        let slow = (2100.0..3100.0).contains(&ws);
        let (n, lat_ms) = if slow {
            (3, 100.0)
        } else {
            (100, 1.0 + (w % 2) as f64)
        };
        for i in 0..n {
            let done = ws + 1.0 + i as f64 * (98.0 / n as f64);
            let due = done - lat_ms;
            r.request(&c, READ, (due, due, done));
            if (2000.0..5000.0).contains(&due) {
                all_in_step.push(lat_ms);
            }
        }
    }
    let (dir, _out, mut rec) = r.finish();
    all_in_step.sort_by(f64::total_cmp);
    let rank = (0.99 * all_in_step.len() as f64).ceil() as usize;
    let exact_p99 = all_in_step[rank - 1];
    assert_eq!(exact_p99, 100.0);
    assert!(
        (2020..2040).contains(&all_in_step.len()),
        "{}",
        all_in_step.len()
    );
    let window_p99s: Vec<f64> = rec
        .latency
        .iter()
        .filter(|l| (2100.0..5100.0).contains(&l.window_start_ms))
        .map(|l| l.p99_us as f64 / 1000.0)
        .collect();
    let mean = window_p99s.iter().sum::<f64>() / window_p99s.len() as f64;
    assert!(mean < 40.0, "{mean}");

    // The run as the rehearsal records it: a step from 2 s to 5 s.
    let mut info = crate::analyze::testkit::info();
    info.phases[0].start_ms = 2000.0;
    info.phases[0].end_ms = 5000.0;
    info.end_ms = 7000.0;
    info.steps = vec![crate::record::StepInfo {
        start_ms: 2000.0,
        end_ms: 5000.0,
        ..crate::analyze::testkit::step_info("slow", None)
    }];
    rec.info = Some(info);
    rec.statements = vec![crate::analyze::testkit::stmt(
        "slow",
        "LOCK orders; SELECT pg_sleep(3)",
        2000.5,
        4999.0,
    )];
    rec.write(dir.path()).unwrap();
    let opts = crate::report::RenderOptions {
        charts: false,
        github_step_summary: None,
        ..Default::default()
    };
    let at_run_time = crate::report::render(dir.path(), &opts).unwrap();
    let a = &at_run_time.analysis;
    let p99 = a.during.p99_ms.unwrap();
    assert!((p99 - exact_p99).abs() <= exact_p99 * 0.001, "{p99}");
    assert_eq!(a.during.requests, all_in_step.len() as u64);
    assert_eq!(a.steps[0].latency.p99_ms, Some(p99));
    assert_eq!(a.phases[0].latency.p99_ms, Some(p99));
    assert!(a.before.p99_ms.unwrap() <= 2.002, "{:?}", a.before);
    // Re-rendered from the directory alone: the same figures.
    let again = crate::report::render(dir.path(), &opts).unwrap();
    assert_eq!(again, at_run_time);
    let md = std::fs::read_to_string(dir.path().join("summary.md")).unwrap();
    assert!(!md.contains("reconstructed"), "{md}");
}

/// Regenerates tests/fixtures/run's latency.csv, latency.hdr and
/// inflight.csv: the hand-shaped fixture's windows (count, errors, p50,
/// p95, p99, max, service p50 per query × app) become synthetic requests
/// (spread over the window, latencies through those percentiles) that the
/// recorder records as it would in a run, at run.json's phase and step
/// bounds. Run it after changing the recorder's output:
/// `cargo test --lib regenerate_the_report_fixture -- --ignored`.
#[test]
#[ignore = "rewrites tests/fixtures/run"]
fn regenerate_the_report_fixture() {
    use crate::record::{read_csv, write_csv, InflightRow, LatencyRow, LATENCY_CSV, RUN_JSON};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/run");
    let info: crate::record::RunInfo =
        serde_json::from_str(&std::fs::read_to_string(dir.join(RUN_JSON)).unwrap()).unwrap();
    let rows: Vec<LatencyRow> = read_csv(&dir.join(LATENCY_CSV)).unwrap();
    let clock = Clock::started_ago(Duration::from_secs_f64(info.end_ms / 1e3));
    let registry = Registry::new(clock.start_instant());
    let marks = Arc::new(SegmentMarks::new(clock));
    let mut bounds: Vec<f64> = info
        .phases
        .iter()
        .flat_map(|p| [p.start_ms, p.end_ms])
        .chain(info.steps.iter().flat_map(|s| [s.start_ms, s.end_ms]))
        .collect();
    bounds.sort_by(f64::total_cmp);
    bounds.dedup();
    for b in bounds {
        marks.mark_at(b);
    }
    let distinct = |names: Vec<&String>| {
        let mut v: Vec<String> = Vec::new();
        for n in names {
            if !v.contains(n) {
                v.push(n.clone());
            }
        }
        v
    };
    let queries = distinct(rows.iter().map(|r| &r.query).collect());
    let mut apps = distinct(rows.iter().map(|r| &r.app).collect());
    apps.push(SCRIPT_APP.into());
    let logs: Vec<Vec<Arc<ClientLog>>> = (0..apps.len() - 1)
        .map(|a| {
            (0..info.clients)
                .map(|_| registry.client(a as u16, true))
                .collect()
        })
        .collect();
    let files = LatencyFiles::create(&dir, clock.start_wall()).unwrap();
    let rec = LatencyRecorder::new(
        Duration::from_secs_f64(info.window_ms / 1e3),
        Labels {
            queries: queries.clone(),
            apps: apps.clone(),
        },
        registry,
        marks,
        files,
        Arc::default(),
    );
    let at = |ms: f64| clock.start_instant() + Duration::from_secs_f64(ms.max(0.0) / 1e3);
    for r in &rows {
        let q = queries.iter().position(|x| *x == r.query).unwrap() as u16;
        let a = apps.iter().position(|x| *x == r.app).unwrap();
        // The percentiles as a piecewise-linear inverse CDF.
        let knots = [
            (0.0, r.p50_us as f64 * 0.6),
            (0.5, r.p50_us as f64),
            (0.95, r.p95_us as f64),
            (0.99, r.p99_us as f64),
            (1.0, r.max_us as f64),
        ];
        let inverse = |p: f64| {
            let k = knots
                .windows(2)
                .find(|k| p <= k[1].0)
                .unwrap_or(&knots[3..5]);
            k[0].1 + (k[1].1 - k[0].1) * (p - k[0].0) / (k[1].0 - k[0].0)
        };
        let service = r.service_p50_us as f64 / r.p50_us.max(1) as f64;
        for i in 0..r.count {
            let n = r.count as f64;
            let done = r.window_start_ms + r.window_ms * (i as f64 + 0.5) / n;
            let lat_ms = inverse((i + 1) as f64 / n) / 1000.0;
            let error = (i < r.errors).then(|| AppError {
                sqlstate: "55P03".into(),
                message: "canceling statement due to lock timeout".into(),
            });
            let log = &logs[a][i as usize % logs[a].len()];
            log.end(
                q,
                at(done - lat_ms),
                at(done - lat_ms * service.min(1.0)),
                at(done),
                error,
            );
        }
    }
    rec.finish().unwrap();
    // Synthetic requests overlap more than a pool allows: at most every
    // connection is busy.
    let path = dir.join(crate::record::INFLIGHT_CSV);
    let mut inflight: Vec<InflightRow> = read_csv(&path).unwrap();
    for i in &mut inflight {
        i.busy = i.busy.min(i.connections);
    }
    write_csv(&path, &inflight).unwrap();
}

#[test]
fn a_request_stuck_behind_a_step_is_the_steps_though_it_completed_after() {
    let r = replay();
    let c = r.registry.client(V1, true);
    r.marks.mark_at(1000.0);
    r.marks.mark_at(2000.0);
    // Due at 1.5 s while the step held its lock, answered at 2.3 s.
    r.request(&c, READ, (1500.0, 1500.0, 2300.0));
    r.request(&c, READ, (2400.0, 2400.0, 2401.0));
    let (_dir, _out, rec) = r.finish();
    let step = facts(&rec, 1000.0, 2000.0, None);
    assert_eq!((step.requests, step.completed), (1, 0));
    assert!(
        near((step.p99_ms.unwrap() * 1000.0) as u64, 800_000.0),
        "{step:?}"
    );
    let after = facts(&rec, 2000.0, f64::INFINITY, None);
    assert_eq!((after.requests, after.completed), (1, 2));
    assert_eq!(after.max_ms, Some(1.0));
}

/// A segment nobody was due in (the 3 ms between a step's end and its
/// phase's) where the backlog the step held back completed: its
/// completions are in latency.hdr and every span's count.
#[test]
fn completions_in_a_segment_nobody_was_due_in_are_kept() {
    let r = replay();
    let c = r.registry.client(V1, true);
    r.marks.mark_at(1000.0);
    r.marks.mark_at(2000.0);
    r.marks.mark_at(2003.0);
    // Due during the step, answered as its lock went, before the phase end.
    r.request(&c, READ, (1500.0, 1500.0, 2001.0));
    r.request(&c, READ, (1600.0, 1600.0, 2001.5));
    r.request(&c, READ, (2500.0, 2500.0, 2501.0));
    let (_dir, _out, rec) = r.finish();
    let gap = facts(&rec, 2000.0, 2003.0, None);
    assert_eq!((gap.requests, gap.completed), (0, 2), "{gap:?}");
    let run = facts(&rec, 0.0, f64::INFINITY, None);
    assert_eq!((run.requests, run.completed), (3, 3), "{run:?}");
}

/// A run stopped hard in a stall (Ctrl-C while a step blocks the app): the
/// requests in flight and the backlog nobody sent never complete. They
/// count in the segment they were due in, with their age at the stop, so
/// the step's p99 is the stall's, not that of the few quick requests that
/// got through; none of them is throughput.
#[test]
fn a_hard_stop_counts_the_requests_it_cut_off() {
    let r = replay();
    let (a, b) = (r.registry.client(V1, true), r.registry.client(V1, true));
    r.marks.mark_at(1000.0);
    for k in 0..50 {
        let t = k as f64 * 20.0;
        r.request(&b, READ, (t, t, t + 1.0));
    }
    // The step blocks from 1000 ms: a is stuck in a write, b got two quick
    // reads through, then stuck too; 100/s fell due unsent from 1050 ms.
    a.begin(r.at(1000.0), r.at(1000.0));
    r.request(&b, READ, (1000.0, 1000.0, 1000.5));
    r.request(&b, READ, (1010.0, 1010.0, 1010.5));
    b.begin(r.at(1020.0), r.at(1020.0));
    let stop = r.at(1700.0);
    a.abandon(1, stop);
    b.abandon(1, stop);
    b.abandon_unclaimed(
        (r.at(1050.0), Duration::from_millis(10), 65),
        &[(READ, 1), (1, 1)],
        stop,
    );
    let (_dir, out, rec) = r.finish();
    assert_eq!(
        out.requests, 52,
        "only the completed are requests handed over"
    );
    let step = facts(&rec, 1000.0, f64::INFINITY, None);
    assert_eq!((step.requests, step.unfinished), (69, 67), "{step:?}");
    assert_eq!(step.completed, 2, "{step:?}");
    assert!(
        near((step.max_ms.unwrap() * 1e3) as u64, 700_000.0),
        "{step:?}"
    );
    // 67 of 69 were cut off, aged 700 ms down to 10: the p99 is the
    // oldest's, the p50 about 360 ms — not the 0.5 ms of what completed.
    assert!(step.p99_ms.unwrap() >= 680.0, "{step:?}");
    assert!((300.0..400.0).contains(&step.p50_ms.unwrap()), "{step:?}");
    let before = facts(&rec, 0.0, 1000.0, None);
    assert_eq!((before.requests, before.unfinished), (50, 0));
    // The stall stays visible to the stop: two connections busy, the
    // oldest request 600 ms old at the last window's end before it.
    let last = rec
        .inflight
        .iter()
        .find(|i| i.window_start_ms + i.window_ms == 1600.0)
        .unwrap();
    assert_eq!((last.busy, last.oldest_ms), (2, Some(600.0)), "{last:?}");
}
