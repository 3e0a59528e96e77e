//! What the stages of a rehearsal share: how a stage says it stopped, and
//! the name of the harness's own sessions.

use crate::error::Error;

/// application_name of the harness's own sessions (the wait observer
/// ignores them).
pub const HARNESS_APP_NAME: &str = "pgrehearse/harness";

/// A stage that could not finish: what run.json's failure says, and the
/// error the rehearsal ends with.
#[derive(Debug)]
pub struct Stopped {
    pub why: String,
    pub error: Error,
}

impl From<Error> for Stopped {
    /// Stopped by `error`, which says why (and keeps its exit code).
    fn from(error: Error) -> Stopped {
        Stopped {
            why: error.to_string(),
            error,
        }
    }
}

impl Stopped {
    /// A failed rehearsal (exit 4) whose failure and error say `why`.
    pub fn failed(why: String) -> Stopped {
        Stopped {
            error: Error::rehearsal(why.clone()),
            why,
        }
    }

    /// Stopped by SIGINT/SIGTERM `while` doing something: the failure names
    /// the signal first (`interrupted by SIGTERM while seeding`), which is
    /// how `report` of the run directory exits as the run did (130/143).
    pub fn interrupted(signals: &crate::signals::Signals, while_: &str) -> Stopped {
        Stopped {
            why: format!("interrupted by {} {while_}", signals.name()),
            error: signals.error(),
        }
    }
}
