//! Open loop: a scheduler emits requests at `rate`/s on a fixed schedule,
//! each to a live app chosen uniformly, its query chosen by weight, into
//! that app's queue; any free connection of the app takes the next one.
//!
//! The schedule is `t0 + i / rate`, whatever happens: the scheduler wakes
//! (at the timer's 1 ms granularity) and emits every request due by then,
//! each with its own intended time, so the rate holds at tens of thousands
//! per second and a late wake-up shifts no intended time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use super::{pick_weighted, query_mix, QueryMix, WorkloadCtx, QUEUE_PER_APP};

/// One scheduled request.
pub(super) struct Request {
    pub query: u16,
    pub intended: Instant,
}

/// An app's queue of due requests, shared by its connections (whichever
/// frees up first takes the next, in order) across the driver threads.
/// Bounded: a full queue blocks the scheduler.
pub(super) struct RequestQueue {
    items: Mutex<VecDeque<Request>>,
    /// Permits = requests queued (plus, once closed, one per consumer).
    ready: Semaphore,
    /// Permits = free places.
    space: Semaphore,
    closed: AtomicBool,
    consumers: usize,
}

impl RequestQueue {
    fn new(consumers: usize) -> RequestQueue {
        RequestQueue {
            items: Mutex::new(VecDeque::with_capacity(QUEUE_PER_APP)),
            ready: Semaphore::new(0),
            space: Semaphore::new(QUEUE_PER_APP),
            closed: AtomicBool::new(false),
            consumers,
        }
    }

    fn items(&self) -> std::sync::MutexGuard<'_, VecDeque<Request>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `r`, waiting for a free place.
    async fn push(&self, r: Request) {
        if let Ok(p) = self.space.acquire().await {
            p.forget();
        }
        self.items().push_back(r);
        self.ready.add_permits(1);
    }

    /// The next request; None once the queue is closed and empty.
    pub async fn pop(&self) -> Option<Request> {
        self.ready.acquire().await.ok()?.forget();
        let r = self.items().pop_front();
        if r.is_some() {
            self.space.add_permits(1);
        }
        r
    }

    /// No more requests: the queued ones are still taken, then every
    /// consumer gets None.
    fn close(&self) {
        if !self.closed.swap(true, Ordering::AcqRel) {
            self.ready.add_permits(self.consumers);
        }
    }
}

/// One queue per app, each taken by `clients` connections.
pub(super) fn queues(apps: usize, clients: usize) -> Vec<Arc<RequestQueue>> {
    (0..apps)
        .map(|_| Arc::new(RequestQueue::new(clients)))
        .collect()
}

pub(super) struct Scheduler {
    rate: f64,
    queues: Vec<(Arc<RequestQueue>, QueryMix)>,
    live: watch::Receiver<Arc<Vec<u16>>>,
    stop: CancellationToken,
    abort: CancellationToken,
    rng: ChaCha8Rng,
}

impl Scheduler {
    pub fn new(
        rate: f64,
        ctx: &WorkloadCtx,
        queues: Vec<Arc<RequestQueue>>,
        seed: u64,
    ) -> Scheduler {
        let labels = super::labels(&ctx.plan);
        Scheduler {
            rate,
            queues: queues
                .into_iter()
                .zip(&labels.apps)
                .map(|(q, app)| (q, query_mix(&ctx.plan, app)))
                .collect(),
            live: ctx.live.clone(),
            stop: ctx.stop.clone(),
            abort: ctx.abort.clone(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub async fn run(mut self) {
        let (t0, rate) = (Instant::now(), self.rate);
        let at = |i: u64| t0 + Duration::from_secs_f64(i as f64 / rate);
        let mut i: u64 = 0;
        'schedule: loop {
            let now = Instant::now();
            while at(i) <= now {
                let intended = at(i);
                i += 1;
                if !self.emit(intended).await {
                    break 'schedule;
                }
            }
            tokio::select! {
                _ = self.stop.cancelled() => break,
                _ = tokio::time::sleep_until(at(i).into()) => {}
            }
        }
        // The queued requests are still served; then the connections stop.
        for (q, _) in &self.queues {
            q.close();
        }
    }

    /// Queue one request due at `intended`; false when told to stop.
    async fn emit(&mut self, intended: Instant) -> bool {
        if self.stop.is_cancelled() {
            return false;
        }
        let live = self.live.borrow().clone();
        if live.is_empty() {
            return true;
        }
        let app = live[self.rng.gen_range(0..live.len())] as usize;
        let Some((queue, mix)) = self.queues.get(app) else {
            return true;
        };
        let Some(query) = pick_weighted(mix, &mut self.rng) else {
            return true;
        };
        // Waiting for a place here is the backpressure: the schedule's
        // intended times are kept, so the delay is charged as latency.
        tokio::select! {
            _ = self.abort.cancelled() => false,
            _ = queue.push(Request { query, intended }) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn queued_requests_are_served_in_order_then_every_consumer_stops() {
        let q = Arc::new(RequestQueue::new(2));
        let t = Instant::now();
        for query in 0..3 {
            q.push(Request { query, intended: t }).await;
        }
        q.close();
        let mut got = Vec::new();
        while let Some(r) = q.pop().await {
            got.push(r.query);
        }
        assert_eq!(got, [0, 1, 2]);
        assert!(q.pop().await.is_none(), "the second consumer stops too");
    }

    #[tokio::test]
    async fn a_waiting_consumer_gets_the_next_request() {
        let q = Arc::new(RequestQueue::new(1));
        let waiter = tokio::spawn({
            let q = q.clone();
            async move { q.pop().await.map(|r| r.query) }
        });
        tokio::task::yield_now().await;
        q.push(Request {
            query: 7,
            intended: Instant::now(),
        })
        .await;
        assert_eq!(waiter.await.unwrap(), Some(7));
    }
}
