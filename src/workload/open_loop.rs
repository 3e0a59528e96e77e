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
        if live.contains(&self.app) {
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
        let mut s = self.state();
        if s.stopped_at.is_none() {
            s.stopped_at = Some(now);
            if let Some(last) = s.pieces.back_mut() {
                last.end.get_or_insert(now);
            }
        }
    }

    /// Was the stop before `due`? (A request claimed before the stop but
    /// due after it is not sent.)
    pub fn stopped_before(&self, due: Instant) -> bool {
        self.state().stopped_at.is_some_and(|s| s <= due)
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
}
