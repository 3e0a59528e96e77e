//! SIGINT / SIGTERM: a cancelled token instead of a killed process, so that
//! every stage can write what it has and every teardown runs. The exit code
//! then says which signal it was (130 / 143).

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::error::Error;

/// SIGINT / SIGTERM → a cancelled token and the signal number.
#[derive(Clone, Default)]
pub struct Signals {
    pub token: CancellationToken,
    which: Arc<AtomicI32>,
    /// The token is the caller's (a library user's stop), not a signal's.
    caller: bool,
}

impl Signals {
    /// Must run (inside the runtime) before anything is provisioned: from
    /// here on SIGINT / SIGTERM no longer kill the process outright, so
    /// every teardown runs. The handlers are registered right here, not in
    /// the spawned task, so there is no window where a signal still kills.
    pub fn install() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let s = Signals::default();
        let (Ok(mut int), Ok(mut term)) = (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) else {
            return s;
        };
        let c = s.clone();
        tokio::spawn(async move {
            let n = tokio::select! {
                _ = int.recv() => libc::SIGINT,
                _ = term.recv() => libc::SIGTERM,
            };
            c.which.store(n, Ordering::SeqCst);
            tracing::info!("{} received: stopping", signal_name(n));
            // A container removal can take seconds on some storage drivers;
            // the engine completes it without us once requested.
            #[cfg(feature = "docker")]
            crate::backend::docker::stop_waiting_for_removals();
            c.token.cancel();
        });
        s
    }

    /// A stop the caller controls, no signal handler installed (a library
    /// user's: Ctrl-C stays the process's): cancelling `token` stops the
    /// rehearsal as a SIGINT would, said as "the caller's stop", exit 130.
    pub fn stopped_by(token: CancellationToken) -> Signals {
        Signals {
            token,
            which: Arc::default(),
            caller: true,
        }
    }

    /// A signal arrived.
    pub fn received(&self) -> bool {
        self.token.is_cancelled()
    }

    /// "SIGINT" or "SIGTERM" (SIGINT until one arrived); "the caller's
    /// stop" for [`Signals::stopped_by`].
    pub fn name(&self) -> &'static str {
        match self.which.load(Ordering::SeqCst) {
            0 if self.caller => "the caller's stop",
            n => signal_name(n),
        }
    }

    /// The error a rehearsal ends with once a signal arrived (exit 130/143).
    pub fn error(&self) -> Error {
        Error::Interrupted(self.which.load(Ordering::SeqCst).max(libc::SIGINT))
    }
}

fn signal_name(n: i32) -> &'static str {
    if n == libc::SIGTERM {
        "SIGTERM"
    } else {
        "SIGINT"
    }
}
