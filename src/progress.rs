//! The live progress line while a rehearsal runs: the current phase / step,
//! throughput, p99 of the last window, app errors and waiting backends.
//! Drawn only when both stdout and stderr are terminals (never into a CI log
//! or a pipe), and not with `-v`, whose log lines it would overwrite.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::latency::LiveStats;
use crate::migration::CurrentStep;
use crate::observe::MigrationStatus;
use crate::options::OutputMode;

const REDRAW: Duration = Duration::from_millis(250);

/// What the line shows, shared with the migration, the latency recorder and
/// the wait observer.
#[derive(Clone, Default)]
pub struct Live {
    pub current: Arc<CurrentStep>,
    pub stats: Arc<LiveStats>,
    pub status: Arc<MigrationStatus>,
}

/// A drawn progress line; gone (cleared) once stopped.
pub struct Progress {
    task: JoinHandle<()>,
    stop: CancellationToken,
}

impl Progress {
    /// Start drawing when `output` and the terminals allow it.
    pub fn start(output: &OutputMode, live: &Live) -> Option<Progress> {
        let wanted =
            output.progress() && std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        if !wanted {
            return None;
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(draw(live.clone(), stop.clone()));
        Some(Progress { task, stop })
    }

    /// Clear the line before anything else is printed.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn draw(live: Live, stop: CancellationToken) {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
    );
    let mut last = live.stats.completed.load(Ordering::Relaxed);
    let mut last_t = Instant::now();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(REDRAW) => {}
        }
        let now = live.stats.completed.load(Ordering::Relaxed);
        let dt = last_t.elapsed().as_secs_f64().max(1e-3);
        let qps = (now - last) as f64 / dt;
        last = now;
        last_t = Instant::now();
        bar.set_message(format!(
            "{} | {:.0} qps | p99 {:.1} ms | errors {} | waiting backends {}",
            live.current.get(),
            qps,
            live.stats.last_p99_us.load(Ordering::Relaxed) as f64 / 1e3,
            live.stats.errors.load(Ordering::Relaxed),
            live.status.waiting_backends.load(Ordering::Relaxed),
        ));
        bar.tick();
    }
    bar.finish_and_clear();
}
