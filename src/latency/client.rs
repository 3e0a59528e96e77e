//! What each app connection (and script session) hands the recorder: the
//! request it is executing now, and the requests it finished since the
//! recorder last looked.
//!
//! No message per request: a client appends to its own buffer under a mutex
//! that only it and the recorder take, each for a moment (the recorder
//! swaps the buffer out every tick). A client never waits for the recorder
//! and allocates nothing in the steady state.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::workload::AppError;

/// One finished request, times in ns since the run started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Finished {
    pub query: u16,
    pub failed: bool,
    /// Still in flight (or due and not yet sent) when the run was stopped
    /// hard: `done_ns` is the stop, so its latency is its age then, a lower
    /// bound. It did not complete.
    pub unfinished: bool,
    /// Open loop: the scheduled start; closed loop: when it was issued.
    pub intended_ns: u64,
    pub sent_ns: u64,
    pub done_ns: u64,
}

/// A request still executing, as the recorder saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Executing {
    pub app: u16,
    pub intended_ns: u64,
    /// None when it was handed to the client but not sent yet.
    pub sent_ns: Option<u64>,
}

/// Requests an app's schedule had due that no connection had taken when
/// the run was stopped hard: `count` of them, the first due at
/// `first_due_ns`, one every `interval_ns`, none after `done_ns` (the
/// stop); each one's query drawn from `mix` (query, weight).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Unclaimed {
    pub first_due_ns: u64,
    pub interval_ns: u64,
    pub count: u64,
    pub done_ns: u64,
    pub mix: Vec<(u16, u32)>,
}

#[derive(Debug, Default)]
pub(crate) struct Buffer {
    pub finished: Vec<Finished>,
    /// The failed ones' errors: (done_ns, intended_ns, query, error).
    pub errors: Vec<(u64, u64, u16, AppError)>,
    /// Left due and unsent by a hard stop (at most one per app).
    pub unclaimed: Vec<Unclaimed>,
}

/// One client's log. Cheap to share: the client holds one, the registry
/// another.
#[derive(Debug)]
pub struct ClientLog {
    pub(crate) app: u16,
    /// Counts towards its app's connections (scripts do not).
    pub(crate) pooled: bool,
    start: Instant,
    buffer: Mutex<Buffer>,
    /// The executing request's intended start and send time (ns since the
    /// run started, +1 so that 0 means none). Set without the lock when a
    /// request begins; cleared under it together with the push of the
    /// finished request, so the recorder never sees a request in both
    /// places or in neither.
    intended: AtomicU64,
    sent: AtomicU64,
}

impl ClientLog {
    fn ns(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.start).as_nanos() as u64
    }

    /// A request starts: it was due at `intended` (open loop: its scheduled
    /// time, so the time it queued counts) and is sent now.
    pub fn begin(&self, intended: Instant, sent: Instant) {
        self.intended
            .store(self.ns(intended) + 1, Ordering::Relaxed);
        // Release: whoever sees the send time sees the intended start too.
        self.sent.store(self.ns(sent) + 1, Ordering::Release);
    }

    /// Is a request in flight (begun, not ended)?
    pub fn executing(&self) -> bool {
        self.intended.load(Ordering::Relaxed) != 0
    }

    /// Was the request in flight sent before `cutoff_ns` (ns since the run
    /// started)? False when none is.
    fn sent_before(&self, cutoff_ns: u64) -> bool {
        let sent = self.sent.load(Ordering::Relaxed);
        sent != 0 && sent - 1 < cutoff_ns
    }

    /// The request ended at `done`, with `error` when it failed.
    pub fn end(
        &self,
        query: u16,
        intended: Instant,
        sent: Instant,
        done: Instant,
        error: Option<AppError>,
    ) {
        let f = Finished {
            query,
            failed: error.is_some(),
            unfinished: false,
            intended_ns: self.ns(intended),
            sent_ns: self.ns(sent),
            done_ns: self.ns(done),
        };
        let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        b.finished.push(f);
        if let Some(e) = error {
            b.errors.push((f.done_ns, f.intended_ns, query, e));
        }
        self.intended.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
    }

    /// The hard stop, at `at`: the request in flight, if one is (of
    /// `query`, which the connection knows: it tells the wait observer),
    /// never completes; it is recorded as unfinished, with its age at the
    /// stop. Called on the connection's own thread while its task is
    /// suspended, so the request cannot end meanwhile.
    pub fn abandon(&self, query: u16, at: Instant) {
        let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        let intended = self.intended.load(Ordering::Relaxed);
        if intended == 0 {
            return;
        }
        let sent = self.sent.load(Ordering::Relaxed);
        let done_ns = self.ns(at).max(intended - 1);
        b.finished.push(Finished {
            query,
            failed: false,
            unfinished: true,
            intended_ns: intended - 1,
            sent_ns: if sent == 0 { done_ns } else { sent - 1 },
            done_ns,
        });
        self.intended.store(0, Ordering::Relaxed);
        self.sent.store(0, Ordering::Relaxed);
    }

    /// The hard stop, at `at`: requests of this connection's app that fell
    /// due and no connection had taken yet (an open-loop backlog): `count`
    /// of them, the first due at `first`, one every `interval`, their
    /// queries those of `mix` (query, weight). Recorded as unfinished,
    /// never sent; the recorder expands them, so a long backlog costs no
    /// memory here either.
    pub fn abandon_unclaimed(
        &self,
        (first, interval, count): (Instant, Duration, u64),
        mix: &[(u16, u32)],
        at: Instant,
    ) {
        if count == 0 || mix.is_empty() {
            return;
        }
        let done_ns = self.ns(at);
        let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        b.unclaimed.push(Unclaimed {
            first_due_ns: self.ns(first).min(done_ns),
            interval_ns: interval.as_nanos() as u64,
            count,
            done_ns,
            mix: mix.to_vec(),
        });
    }

    /// Swap the finished requests into `into` (emptied first, capacity kept
    /// on both sides) and say what is executing now.
    pub(crate) fn drain(&self, into: &mut Buffer) -> Option<Executing> {
        into.finished.clear();
        into.errors.clear();
        into.unclaimed.clear();
        let mut b = self.buffer.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::swap(&mut *b, into);
        let sent = self.sent.load(Ordering::Acquire);
        let intended = self.intended.load(Ordering::Relaxed);
        drop(b);
        (intended > 0).then(|| Executing {
            app: self.app,
            intended_ns: intended - 1,
            sent_ns: (sent > 0).then(|| sent - 1),
        })
    }
}

/// Every client log of the run, for the recorder to drain. Clients register
/// as they connect; a reconnecting client keeps its log.
#[derive(Debug, Clone)]
pub struct Registry {
    start: Instant,
    logs: Arc<Mutex<Vec<Arc<ClientLog>>>>,
}

impl Registry {
    pub fn new(start: Instant) -> Registry {
        Registry {
            start,
            logs: Arc::default(),
        }
    }

    /// A new log for a connection of app `app` (an index into the labels'
    /// apps); `pooled` when it is one of the app's connections rather than
    /// a script's session.
    pub fn client(&self, app: u16, pooled: bool) -> Arc<ClientLog> {
        let log = Arc::new(ClientLog {
            app,
            pooled,
            start: self.start,
            buffer: Mutex::default(),
            intended: AtomicU64::new(0),
            sent: AtomicU64::new(0),
        });
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(log.clone());
        log
    }

    /// Has a request (of an app connection or a script session) been on
    /// the server for longer than `age`? Lock-free per connection: what
    /// the wait poller asks before each poll (a request waiting for a lock
    /// is one of them).
    pub fn any_executing_longer_than(&self, age: Duration) -> bool {
        let now = Instant::now().saturating_duration_since(self.start);
        let Some(cutoff) = now.checked_sub(age) else {
            return false;
        };
        let cutoff_ns = cutoff.as_nanos() as u64;
        self.logs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .any(|l| l.sent_before(cutoff_ns))
    }

    pub(crate) fn logs(&self) -> Vec<Arc<ClientLog>> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_executing_or_finished_never_both() {
        let t0 = Instant::now();
        let reg = Registry::new(t0);
        let log = reg.client(0, true);
        let mut buf = Buffer::default();
        assert!(log.drain(&mut buf).is_none());
        let (i, s) = (t0 + Duration::from_millis(5), t0 + Duration::from_millis(7));
        log.begin(i, s);
        let ex = log.drain(&mut buf).expect("executing");
        assert_eq!((ex.intended_ns, ex.sent_ns), (5_000_000, Some(7_000_000)));
        assert!(buf.finished.is_empty());
        log.end(3, i, s, t0 + Duration::from_millis(9), None);
        assert!(log.drain(&mut buf).is_none());
        assert_eq!(buf.finished.len(), 1);
        assert_eq!(buf.finished[0].done_ns, 9_000_000);
        assert_eq!(reg.logs().len(), 1);
    }

    #[test]
    fn a_request_on_the_server_too_long_is_noticed() {
        let t0 = Instant::now();
        let reg = Registry::new(t0);
        let log = reg.client(0, true);
        assert!(!reg.any_executing_longer_than(Duration::ZERO));
        let sent = Instant::now();
        log.begin(sent, sent);
        assert!(!reg.any_executing_longer_than(Duration::from_secs(60)));
        std::thread::sleep(Duration::from_millis(3));
        assert!(reg.any_executing_longer_than(Duration::from_millis(2)));
        log.end(0, sent, sent, Instant::now(), None);
        assert!(!reg.any_executing_longer_than(Duration::ZERO));
    }

    #[test]
    fn the_hard_stop_records_what_was_in_flight_and_due_as_unfinished() {
        let t0 = Instant::now();
        let reg = Registry::new(t0);
        let log = reg.client(0, true);
        let ms = Duration::from_millis;
        let stop = t0 + ms(900);
        // Nothing in flight: nothing recorded.
        log.abandon(2, stop);
        let mut buf = Buffer::default();
        assert!(log.drain(&mut buf).is_none());
        assert!(buf.finished.is_empty());
        log.begin(t0 + ms(100), t0 + ms(101));
        log.abandon(2, stop);
        log.abandon_unclaimed((t0 + ms(300), ms(100), 7), &[(1, 1), (2, 1)], stop);
        assert!(log.drain(&mut buf).is_none(), "no longer executing");
        assert_eq!(
            buf.unclaimed,
            [Unclaimed {
                first_due_ns: 300_000_000,
                interval_ns: 100_000_000,
                count: 7,
                done_ns: 900_000_000,
                mix: vec![(1, 1), (2, 1)],
            }]
        );
        let got: Vec<_> = buf
            .finished
            .iter()
            .map(|f| {
                (
                    f.query,
                    f.unfinished,
                    f.failed,
                    f.intended_ns / 1_000_000,
                    f.sent_ns / 1_000_000,
                    f.done_ns / 1_000_000,
                )
            })
            .collect();
        assert_eq!(got, [(2, true, false, 100, 101, 900)]);
    }
}
