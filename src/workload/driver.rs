//! The threads the app connections run on: one per core (at most one per
//! connection), each with its own single-threaded runtime driving its
//! connections and their sockets, as `pgbench -j` runs its clients on
//! threads. A request then never hops between threads on its way out and
//! back, and no thread is woken to steal work; the rest of the rehearsal
//! (recorder, observers, migration, the open-loop scheduler) keeps the main
//! runtime. An app's connections are dealt across the threads, and its
//! open-loop schedule is shared by all of them. Each thread also carries
//! out the hard stop for its connections.

use std::sync::Arc;
use std::thread::JoinHandle;

use tokio::sync::{oneshot, watch};
use tokio::task::JoinSet;

use super::client::{ClientSpec, ClientTask, Shared};
use super::timer::Timer;

/// Threads for `connections` connections on this machine.
pub(super) fn threads_for(connections: usize) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    cores.min(connections).max(1)
}

pub(super) struct Drivers {
    done: Vec<oneshot::Receiver<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl Drivers {
    /// Connect every client on its thread; once all are connected, they
    /// start sending. The first connection error stops them all.
    pub async fn start(specs: Vec<ClientSpec>, shared: Arc<Shared>) -> crate::Result<Drivers> {
        let n = threads_for(specs.len());
        let mut dealt: Vec<Vec<ClientSpec>> = (0..n).map(|_| Vec::new()).collect();
        for (i, s) in specs.into_iter().enumerate() {
            dealt[i % n].push(s);
        }
        // true: every thread connected, send; dropped: one failed, stop.
        let (go, go_rx) = watch::channel(false);
        let mut ready = Vec::new();
        let mut drivers = Drivers {
            done: Vec::new(),
            threads: Vec::new(),
        };
        for (t, clients) in dealt.into_iter().enumerate() {
            let (ready_tx, ready_rx) = oneshot::channel();
            let (done_tx, done_rx) = oneshot::channel();
            let (shared, go) = (shared.clone(), go_rx.clone());
            let thread = std::thread::Builder::new()
                .name(format!("pgrehearse-app-{t}"))
                .spawn(move || {
                    match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(rt) => rt.block_on(drive(clients, shared, ready_tx, go)),
                        Err(e) => {
                            let _ = ready_tx.send(Err(anyhow::Error::new(e).into()));
                        }
                    }
                    let _ = done_tx.send(());
                })?;
            ready.push(ready_rx);
            drivers.done.push(done_rx);
            drivers.threads.push(thread);
        }
        let mut failed = None;
        for r in ready {
            let r = r
                .await
                .unwrap_or_else(|_| Err(anyhow::anyhow!("a connection thread died").into()));
            if let Err(e) = r {
                failed.get_or_insert(e);
            }
        }
        if let Some(e) = failed {
            drop(go);
            drivers.join().await;
            return Err(e);
        }
        let _ = go.send(true);
        Ok(drivers)
    }

    /// Wait until every connection has stopped and its thread ended.
    pub async fn join(self) {
        for d in self.done {
            let _ = d.await;
        }
        let threads = self.threads;
        let _ = tokio::task::spawn_blocking(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .await;
    }
}

/// One thread's work: connect its clients, report, and once every thread
/// is ready run them to the end.
async fn drive(
    clients: Vec<ClientSpec>,
    shared: Arc<Shared>,
    ready: oneshot::Sender<crate::Result<()>>,
    go: watch::Receiver<bool>,
) {
    // Open loop: one timer for this thread's connections (see `timer`).
    let timer = match clients.iter().any(|c| c.schedule.is_some()) {
        true => match Timer::start() {
            Ok(t) => Some(t),
            Err(e) => {
                let _ = ready.send(Err(anyhow::Error::new(e).into()));
                return;
            }
        },
        false => None,
    };
    let mut tasks = Vec::new();
    for spec in clients {
        match ClientTask::connect(spec, shared.clone(), timer.clone()).await {
            Ok(c) => tasks.push(c),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let _ = ready.send(Ok(()));
    let mut go = go;
    if go.wait_for(|go| *go).await.is_err() {
        return;
    }
    let stoppers: Vec<_> = tasks.iter().map(ClientTask::stopper).collect();
    let mut set = JoinSet::new();
    for c in tasks {
        set.spawn(c.run());
    }
    let all_done = async { while set.join_next().await.is_some() {} };
    tokio::select! {
        _ = all_done => return,
        _ = shared.abort.cancelled() => {}
    }
    // The hard stop: drop the connections (and with them the requests they
    // await), then cancel on the server what they were running. Nothing
    // else runs on this thread between the look at which connections are
    // busy and the abort, so no request starts unseen in between.
    // The requests in flight, and those due that nobody sent, never
    // complete: they are recorded with their age at the stop.
    let at = std::time::Instant::now();
    let busy: Vec<_> = stoppers
        .iter()
        .filter(|s| s.log.executing())
        .map(|s| &s.cancel)
        .collect();
    // Not the backlog of an app whose connections were lost (the server
    // died): nothing could have sent it, and its age would run on to when
    // the health check gave up — it is no measure of the app's latency.
    let lost = |schedule: &Arc<super::open_loop::Schedule>| {
        stoppers.iter().any(|o| {
            o.lost.load(std::sync::atomic::Ordering::Relaxed)
                && o.schedule
                    .as_ref()
                    .is_some_and(|x| Arc::ptr_eq(x, schedule))
        })
    };
    for s in &stoppers {
        if let Some(q) = s.current.get() {
            s.log.abandon(q as u16, at);
        }
        if let Some(schedule) = &s.schedule {
            let runs = schedule.take_unclaimed(at);
            if lost(schedule) {
                continue;
            }
            for run in runs {
                s.log.abandon_unclaimed(run, &s.mix, at);
            }
        }
    }
    set.abort_all();
    futures_util::future::join_all(busy.into_iter().map(|slot| shared.cancel(slot))).await;
    while set.join_next().await.is_some() {}
}
