//! A timer precise to tens of microseconds, for the open-loop schedule.
//!
//! tokio's timer wakes on whole milliseconds: a request due 0.2 ms from now
//! would be sent up to a millisecond late, and since latency counts from
//! the intended start that lag would be reported as the app's latency. So
//! a connection that claimed a request not yet due waits here: each app
//! thread has a timerfd armed for its earliest deadline, which its runtime
//! waits on in the same `epoll_wait` as its sockets — as pgbench's `-R`
//! folds its schedule into its `select` timeout. No other thread is woken
//! for a request: an earlier version slept on a timer thread, and its
//! futex and cross-thread wake-ups cost the open loop a quarter more client
//! CPU per request than the closed loop.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::io;
use std::os::fd::OwnedFd;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;

struct Entry {
    at: Instant,
    seq: u64,
    waker: Waker,
}

impl PartialEq for Entry {
    fn eq(&self, o: &Entry) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}

impl Eq for Entry {}

impl PartialOrd for Entry {
    fn partial_cmp(&self, o: &Entry) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}

impl Ord for Entry {
    fn cmp(&self, o: &Entry) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(o.at, o.seq))
    }
}

#[derive(Default)]
struct Queue {
    due: BinaryHeap<Reverse<Entry>>,
    seq: u64,
    /// The deadline the timerfd is armed for.
    armed: Option<Instant>,
}

struct Inner {
    fd: AsyncFd<OwnedFd>,
    queue: Mutex<Queue>,
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Wake every task whose time has come; arm for the next.
    async fn run(self: Arc<Self>) {
        loop {
            let Ok(mut ready) = self.fd.readable().await else {
                return;
            };
            // The expiration count; WouldBlock clears the readiness.
            let _ = ready.try_io(|fd| {
                let mut count = [0u8; 8];
                rustix::io::read(fd.get_ref(), &mut count).map_err(io::Error::from)
            });
            let now = Instant::now();
            let mut q = self.queue();
            while q.due.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = q.due.pop() {
                    // On this thread's runtime: queued, not run here.
                    e.waker.wake();
                }
            }
            q.armed = None;
            self.arm(&mut q, now);
        }
    }

    /// Arm the timerfd for the earliest deadline (or disarm it).
    fn arm(&self, q: &mut Queue, now: Instant) {
        let next = q.due.peek().map(|Reverse(e)| e.at);
        if next == q.armed {
            return;
        }
        let after = next.map_or(Duration::ZERO, |at| {
            // Zero would disarm it: a deadline already here fires at once.
            at.saturating_duration_since(now)
                .max(Duration::from_nanos(1))
        });
        let zero = Timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let value = Itimerspec {
            it_interval: zero,
            it_value: Timespec {
                tv_sec: after.as_secs() as _,
                tv_nsec: after.subsec_nanos() as _,
            },
        };
        if timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &value).is_ok() {
            q.armed = next;
        }
    }
}

/// One app thread's timer; made on, and serving, that thread's runtime.
#[derive(Clone)]
pub(super) struct Timer {
    inner: Arc<Inner>,
}

impl Timer {
    /// On the current runtime: its reactor waits on the timer with the
    /// sockets, and the task that wakes the sleepers ends with the runtime.
    pub fn start() -> io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // `AsyncFd::new` is deprecated for a `T` that does not own its fd
        // (it could be closed and reused while registered); an `OwnedFd`
        // does, and its replacement is `unsafe`, which this crate denies.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        let inner = Arc::new(Inner {
            fd,
            queue: Mutex::default(),
        });
        tokio::spawn(inner.clone().run());
        Ok(Timer { inner })
    }

    /// Wait until `at`.
    pub fn sleep_until(&self, at: Instant) -> Sleep<'_> {
        Sleep {
            inner: &self.inner,
            at,
        }
    }
}

pub(super) struct Sleep<'a> {
    inner: &'a Inner,
    at: Instant,
}

impl Future for Sleep<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let now = Instant::now();
        if now >= self.at {
            return Poll::Ready(());
        }
        // Registered on every poll that is not yet due (a poll is a wake,
        // so this is once in practice); an extra entry only wakes early.
        let mut q = self.inner.queue();
        q.seq += 1;
        let seq = q.seq;
        q.due.push(Reverse(Entry {
            at: self.at,
            seq,
            waker: cx.waker().clone(),
        }));
        self.inner.arm(&mut q, now);
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn wakes_at_the_deadline_not_on_the_next_millisecond() {
        let timer = Timer::start().unwrap();
        let mut late = Vec::new();
        for i in 0..50u64 {
            let at = Instant::now() + Duration::from_micros(150 + 37 * (i % 7));
            timer.sleep_until(at).await;
            late.push(Instant::now().duration_since(at));
        }
        late.sort();
        // Shared CI machines: the median, not the worst.
        assert!(late[25] < Duration::from_micros(600), "{late:?}");
        // Two waiters, the later registered first.
        let t0 = Instant::now();
        let (a, b) = (t0 + Duration::from_millis(3), t0 + Duration::from_millis(1));
        tokio::join!(timer.sleep_until(a), timer.sleep_until(b));
        assert!(Instant::now() >= a);
    }
}
