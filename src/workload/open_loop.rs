//! Open loop: `rate` requests per second in total, split evenly among the
//! live app versions, each app's on a fixed schedule (request k due at
//! `start + k / app_rate`).
//!
//! The schedule is *pulled*: a free connection claims the app's next
//! request — the oldest not yet claimed — and, if it is not due yet, waits
//! for it on its own thread's timer. That is a connection pool taking the
//! next request from one FIFO queue, without the queue: when every
//! connection is busy the unclaimed requests simply fall due, their intended
//! times fixed, and the first connection to free up takes the oldest, so
//! the wait is charged as latency (no coordinated omission). The backlog is
//! a position in the schedule, so it costs no memory however long a stall,
//! and no thread ever wakes another to hand it a request.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One run of the schedule at one rate.
#[derive(Debug)]
struct Piece {
    /// When the next unclaimed request of this piece is due.
    next: Instant,
    interval: Duration,
    /// Requests are due before this; None while the piece is current.
    end: Option<Instant>,
}

#[derive(Debug, Default)]
struct State {
    /// Oldest first: a piece ends when the live apps change, its unclaimed
    /// requests stay due.
    pieces: VecDeque<Piece>,
    /// The live apps the last piece was made for.
    applied: Option<Vec<u16>>,
    /// Graceful stop: nothing due from then on is sent.
    stopped_at: Option<Instant>,
    /// When the app was out of service (from, until; None: still out). A
    /// request claimed while it was live but due in one of these is not
    /// sent: an app taken out of service sends nothing new.
    outages: Vec<(Instant, Option<Instant>)>,
}

impl State {
    fn stop(&mut self, now: Instant) {
        if self.stopped_at.is_none() {
            self.stopped_at = Some(now);
            if let Some(last) = self.pieces.back_mut() {
                last.end.get_or_insert(now);
            }
        }
    }
}

/// What a connection gets when it asks for the next request.
#[derive(Debug, PartialEq)]
pub(super) enum Claim {
    /// This request, due then (maybe in the future).
    Due(Instant),
    /// The app is not live and nothing of it is due: wait for a change.
    Idle,
    /// Stopped, and nothing due before the stop is left.
    Stop,
}

/// One app's schedule, shared by its connections across the driver threads.
#[derive(Debug)]
pub(super) struct Schedule {
    app: u16,
    /// Requests per second of the whole workload.
    rate: f64,
    state: Mutex<State>,
}

impl Schedule {
    pub fn new(app: u16, rate: f64) -> Arc<Schedule> {
        Arc::new(Schedule {
            app,
            rate,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live apps are `live` from `now` (idempotent: every connection
    /// that sees the change applies it, the first one counts).
    pub fn apply(&self, live: &[u16], now: Instant) {
        let mut s = self.state();
        if s.applied.as_deref() == Some(live) || s.stopped_at.is_some() {
            return;
        }
        if let Some(last) = s.pieces.back_mut() {
            last.end.get_or_insert(now);
        }
        let is_live = live.contains(&self.app);
        let outage = s.outages.last_mut().filter(|(_, until)| until.is_none());
        match (is_live, outage) {
            (true, Some((_, until))) => *until = Some(now),
            (false, None) => s.outages.push((now, None)),
            _ => {}
        }
        if is_live {
            s.pieces.push_back(Piece {
                next: now,
                interval: Duration::from_secs_f64(live.len() as f64 / self.rate),
                end: None,
            });
        }
        s.applied = Some(live.to_vec());
    }

    /// Graceful stop at `now`: requests already due are still sent.
    pub fn stop(&self, now: Instant) {
        self.state().stop(now);
    }

    /// Was the stop before `due`? (A request claimed before the stop but
    /// due after it is not sent.)
    pub fn stopped_before(&self, due: Instant) -> bool {
        self.state().stopped_at.is_some_and(|s| s <= due)
    }

    /// Is a request due at `due` still to be sent: not stopped by then,
    /// and the app not out of service then? (A connection claims its next
    /// request ahead of time and waits for it; the live apps can change
    /// meanwhile.)
    pub fn sends(&self, due: Instant) -> bool {
        let s = self.state();
        s.stopped_at.is_none_or(|t| t > due)
            && !s
                .outages
                .iter()
                .any(|&(from, until)| from <= due && until.is_none_or(|u| due < u))
    }

    /// The hard stop at `at`: stop, and take the requests due by then that
    /// no connection claimed, as runs (first due, interval, count), so the
    /// first thread to stop counts them and the others find none. A piece
    /// never reaches into an outage (it ends when its app goes out of
    /// service), so each of them would have been sent.
    pub fn take_unclaimed(&self, at: Instant) -> Vec<(Instant, Duration, u64)> {
        let mut s = self.state();
        s.stop(at);
        let mut runs = Vec::new();
        for p in s.pieces.iter_mut() {
            let end = p.end.map_or(at, |e| e.min(at));
            if p.next >= end || p.interval.is_zero() {
                continue;
            }
            // Due at next + k·interval < end.
            let span = (end - p.next).as_nanos();
            let count = span.div_ceil(p.interval.as_nanos()) as u64;
            runs.push((p.next, p.interval, count));
            p.next = end;
        }
        runs
    }

    /// Claim the next request.
    pub fn claim(&self) -> Claim {
        let mut s = self.state();
        while let Some(p) = s.pieces.front_mut() {
            if p.end.is_some_and(|e| p.next >= e) {
                s.pieces.pop_front();
                continue;
            }
            let due = p.next;
            p.next += p.interval;
            return Claim::Due(due);
        }
        if s.stopped_at.is_some() {
            Claim::Stop
        } else {
            Claim::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn requests_are_due_on_a_fixed_schedule_split_among_live_apps() {
        let t0 = Instant::now();
        // 1000/s in total, two apps live: 500/s each.
        let s = Schedule::new(1, 1000.0);
        s.apply(&[0, 1], t0);
        assert_eq!(s.claim(), Claim::Due(t0));
        assert_eq!(s.claim(), Claim::Due(t0 + 2 * MS));
        // Nothing claimed for a while: the backlog is still due, in order,
        // at its own times.
        assert_eq!(s.claim(), Claim::Due(t0 + 4 * MS));
        // Only app 1 live from 10 ms: 1000/s from then; the older
        // requests (due at 6 and 8 ms) stay due first.
        s.apply(&[1], t0 + 10 * MS);
        s.apply(&[1], t0 + 11 * MS);
        let due: Vec<Claim> = (0..4).map(|_| s.claim()).collect();
        assert_eq!(due, [6, 8, 10, 11].map(|ms| Claim::Due(t0 + ms * MS)));
    }

    #[test]
    fn a_hard_stop_takes_the_unclaimed_backlog_once() {
        let t0 = Instant::now();
        let s = Schedule::new(0, 100.0);
        s.apply(&[0], t0);
        assert_eq!(s.claim(), Claim::Due(t0));
        // Due at 10, 20, ... 90 ms, and 100 ms is the stop itself: nine.
        assert_eq!(
            s.take_unclaimed(t0 + 100 * MS),
            [(t0 + 10 * MS, 10 * MS, 9)]
        );
        assert!(s.take_unclaimed(t0 + 100 * MS).is_empty(), "taken once");
        assert_eq!(s.claim(), Claim::Stop);
        // An app out of service from 30 ms, back at 60: nothing due while
        // it was out.
        let s = Schedule::new(0, 100.0);
        s.apply(&[0], t0);
        s.apply(&[], t0 + 25 * MS);
        s.apply(&[0], t0 + 60 * MS);
        let runs = s.take_unclaimed(t0 + 85 * MS);
        assert_eq!(
            runs,
            [(t0, 10 * MS, 3), (t0 + 60 * MS, 10 * MS, 3)],
            "0, 10, 20 ms and 60, 70, 80 ms"
        );
    }

    #[test]
    fn not_live_is_idle_and_a_stop_leaves_only_what_was_due() {
        let t0 = Instant::now();
        let s = Schedule::new(0, 1000.0);
        s.apply(&[1], t0);
        assert_eq!(s.claim(), Claim::Idle);
        s.apply(&[0, 1], t0 + 5 * MS);
        s.stop(t0 + 8 * MS);
        assert_eq!(s.claim(), Claim::Due(t0 + 5 * MS));
        assert_eq!(s.claim(), Claim::Due(t0 + 7 * MS));
        assert_eq!(s.claim(), Claim::Stop);
        assert!(s.stopped_before(t0 + 9 * MS));
        assert!(!s.stopped_before(t0 + 7 * MS));
    }

    #[test]
    fn a_request_claimed_ahead_is_not_sent_once_its_app_is_out_of_service() {
        let t0 = Instant::now();
        let s = Schedule::new(0, 100.0);
        s.apply(&[0], t0);
        // Claimed at t0, the second due at 10 ms: the connection waits.
        assert_eq!(s.claim(), Claim::Due(t0));
        assert_eq!(s.claim(), Claim::Due(t0 + 10 * MS));
        // App 0 is taken out of service at 5 ms (the next phase runs only
        // app 1): what was due before is still sent, what was due after is
        // not.
        s.apply(&[1], t0 + 5 * MS);
        assert!(s.sends(t0 + 4 * MS));
        assert!(!s.sends(t0 + 10 * MS));
        assert_eq!(s.claim(), Claim::Idle);
        // Back in service at 30 ms: due from then on is sent again, the
        // outage between stays closed.
        s.apply(&[0, 1], t0 + 30 * MS);
        assert!(!s.sends(t0 + 29 * MS));
        assert!(s.sends(t0 + 30 * MS));
        assert_eq!(s.claim(), Claim::Due(t0 + 30 * MS));
        // And nothing is sent that is due after a stop.
        s.stop(t0 + 40 * MS);
        assert!(!s.sends(t0 + 41 * MS));
    }
}
