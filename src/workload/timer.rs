//! A timer precise to tens of microseconds, for the open-loop schedule.
//!
//! tokio's timer wakes on whole milliseconds: a request due 0.2 ms from now
//! would be sent up to a millisecond late, and since latency counts from
//! the intended start that lag would be reported as the app's latency. So
//! a connection that claimed a request not yet due waits here: one thread
//! sleeps until the earliest deadline (a futex timeout, to the kernel's
//! timer slack) and wakes the waiting tasks.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Instant;

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
    closed: bool,
}

#[derive(Default)]
struct Inner {
    queue: Mutex<Queue>,
    changed: Condvar,
}

impl Inner {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The timer thread: wake every task whose time has come, sleep until
    /// the next one.
    fn run(&self) {
        let mut q = self.queue();
        while !q.closed {
            let now = Instant::now();
            let mut wake = Vec::new();
            while q.due.peek().is_some_and(|Reverse(e)| e.at <= now) {
                if let Some(Reverse(e)) = q.due.pop() {
                    wake.push(e.waker);
                }
            }
            if !wake.is_empty() {
                drop(q);
                wake.into_iter().for_each(Waker::wake);
                q = self.queue();
                continue;
            }
            q = match q.due.peek().map(|Reverse(e)| e.at) {
                Some(at) => {
                    let wait = at.saturating_duration_since(now);
                    self.changed
                        .wait_timeout(q, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
                None => self.changed.wait(q).unwrap_or_else(|p| p.into_inner()),
            };
        }
    }
}

/// The timer; its thread ends when the last handle is dropped.
#[derive(Clone)]
pub(super) struct Timer {
    inner: Arc<Inner>,
    _thread: Arc<Stopper>,
}

/// Stops the thread when dropped.
struct Stopper(Arc<Inner>);

impl Drop for Stopper {
    fn drop(&mut self) {
        self.0.queue().closed = true;
        self.0.changed.notify_one();
    }
}

impl Timer {
    pub fn start() -> std::io::Result<Timer> {
        let inner = Arc::new(Inner::default());
        let run = inner.clone();
        std::thread::Builder::new()
            .name("pgrehearse-timer".into())
            .spawn(move || run.run())?;
        Ok(Timer {
            _thread: Arc::new(Stopper(inner.clone())),
            inner,
        })
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
        if Instant::now() >= self.at {
            return Poll::Ready(());
        }
        // Registered on every poll that is not yet due (a poll is a wake,
        // so this is once in practice); an extra entry only wakes early.
        let mut q = self.inner.queue();
        let earliest = q.due.peek().is_none_or(|Reverse(e)| self.at < e.at);
        q.seq += 1;
        let seq = q.seq;
        q.due.push(Reverse(Entry {
            at: self.at,
            seq,
            waker: cx.waker().clone(),
        }));
        drop(q);
        if earliest {
            self.inner.changed.notify_one();
        }
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
