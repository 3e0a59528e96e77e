//! Errors and the exit codes they map to (README.md "Commands": exit codes).

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Exit codes are part of the CLI contract: CI scripts branch on them.
pub mod exit {
    pub const OK: u8 = 0;
    pub const BUDGET_BREACHED: u8 = 1;
    pub const BAD_INPUT: u8 = 2;
    pub const NO_POSTGRES: u8 = 3;
    pub const REHEARSAL_FAILED: u8 = 4;
    pub const SIGINT: u8 = 130;
    pub const SIGTERM: u8 = 143;
}

/// A problem in a scenario file, located at `file:line:column` and naming the
/// field (a dotted path such as `table[0].columns.id.min`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem has no position (missing file, not UTF-8).
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // No position (a missing file): the path alone, not a fake 0:0.
        if self.line == 0 {
            write!(f, "{}: ", self.file.display())?;
        } else {
            write!(f, "{}:{}:{}: ", self.file.display(), self.line, self.column)?;
        }
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        write!(f, "{}", self.message)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad command-line usage (exit 2).
    #[error("{0}")]
    Usage(String),
    /// One or more bad scenario files (exit 2). Every problem found is listed.
    #[error("{}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("\n"))]
    Scenario(Vec<ScenarioError>),
    /// No usable Postgres: no engine, no binaries, cannot connect (exit 3).
    #[error("no usable Postgres: {0}")]
    NoPostgres(String),
    /// The rehearsal failed (migration SQL error, server died); a partial
    /// report may have been written (exit 4).
    #[error("rehearsal failed: {message}")]
    Rehearsal {
        message: String,
        report_dir: Option<PathBuf>,
    },
    /// Interrupted by a signal (exit 128 + signal number).
    #[error("interrupted by {}", if *.0 == 2 { "SIGINT" } else { "SIGTERM" })]
    Interrupted(i32),
    /// Anything else unexpected is a failed rehearsal (exit 4).
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Usage(_) | Error::Scenario(_) => exit::BAD_INPUT,
            Error::NoPostgres(_) => exit::NO_POSTGRES,
            Error::Rehearsal { .. } | Error::Other(_) => exit::REHEARSAL_FAILED,
            Error::Interrupted(sig) => (128 + *sig) as u8,
        }
    }

    pub fn rehearsal(message: impl Into<String>) -> Self {
        Error::Rehearsal {
            message: message.into(),
            report_dir: None,
        }
    }
}

impl From<tokio_postgres::Error> for Error {
    /// tokio-postgres' own Display of a server error is the bare "db error":
    /// the message is the server's with its SQLSTATE (`pg::error_text`),
    /// the error itself kept as the source.
    fn from(e: tokio_postgres::Error) -> Self {
        let text = crate::pg::error_text(&e);
        Error::Other(anyhow::Error::new(e).context(text))
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Other(anyhow::Error::new(e))
    }
}
