//! What a command asks for, already validated: plain structs that `cli/`
//! fills from the command line and the library takes. Nothing here knows
//! clap, so a test, a bench or a new command builds them directly.
//!
//! Row overrides (`--rows`, `--scale`) are not here: they are applied when a
//! scenario is loaded ([`crate::scenario::Overrides`]), so the scenario a
//! rehearsal gets already has its final row counts.

use std::path::PathBuf;

use crate::backend::BackendKind;

/// Where Postgres comes from.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerOptions {
    pub backend: BackendKind,
    /// Container image for the docker backend; the scenario's when `None`.
    pub image: Option<String>,
    /// An existing server (the url backend needs one).
    pub database_url: Option<String>,
    /// The major version to rehearse on, over the scenario's: one version
    /// of `--pg-version`, set by the `matrix` module.
    pub version: Option<String>,
    /// `image` came from PGREHEARSE_IMAGE, not `--image`: with
    /// `--pg-version` such an image serves only the version its tag names.
    pub image_from_env: bool,
    /// Keep the local cluster or container and its templates in the cache
    /// between invocations (`--reuse`; never for the url backend).
    pub reuse: bool,
}

impl ServerOptions {
    /// A server of `backend` as the defaults have it: no image, URL or
    /// version over the scenario's, nothing kept (benches, tests).
    pub fn of(backend: BackendKind) -> ServerOptions {
        ServerOptions {
            backend,
            image: None,
            database_url: None,
            version: None,
            image_from_env: false,
            reuse: false,
        }
    }
}

/// The seed of generated data and query parameters when none is given
/// (`--seed`'s default).
pub const DEFAULT_SEED: u64 = 1;

/// Everything a rehearsal needs besides its scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    pub server: ServerOptions,
    /// Run directories go to `<out>/<scenario>/<UTC stamp>/`.
    pub out: PathBuf,
    /// Seed of all generated data and query parameters.
    pub seed: u64,
    /// Budget overrides (`KEY=VALUE`), checked by
    /// [`crate::analyze::parse_budget_override`].
    pub budgets: Vec<(String, f64)>,
    pub output: OutputMode,
    /// `--pg-version`: rehearse each scenario on each of these majors, as
    /// given (well-formed, no repeats); whether the machine has them is
    /// checked before anything runs. Empty: the scenario's version.
    pub versions: Vec<String>,
}

/// `pgrehearse seed`: one scenario's data into an existing database.
#[derive(Debug, Clone, PartialEq)]
pub struct SeedCommand {
    /// With --rows / --scale applied.
    pub scenario: crate::scenario::Scenario,
    /// The database to seed (a URL or a `key=value` connection string).
    pub database_url: String,
    pub seed: u64,
    /// Drop the scenario's tables first when they exist.
    pub replace: bool,
    /// `chatter`: progress and the summary on stderr / stdout (off with -q).
    pub output: OutputMode,
}

/// What goes on stdout after a rehearsal or a re-render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SummaryFormat {
    /// The plain-text summary and where the report is.
    Text,
    /// One verdict line (`-q`).
    Verdict,
    /// summary.json (`--json`).
    Json,
    /// Nothing: a matrix of rehearsals prints its own side-by-side JSON.
    Nothing,
}

/// How much pgrehearse says, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputMode {
    pub summary: SummaryFormat,
    /// Status lines and the live progress display on stderr (off with `-q`).
    pub chatter: bool,
    /// `-v` count: 1 logs each stage, statement and retry on stderr, 2 adds
    /// the observers' polls (see `cli/mod.rs` for the subscriber).
    pub verbose: u8,
}

impl Default for OutputMode {
    fn default() -> Self {
        OutputMode {
            summary: SummaryFormat::Text,
            chatter: true,
            verbose: 0,
        }
    }
}

impl OutputMode {
    /// Progress displays (seeding's bar, the live line) are wanted, where a
    /// terminal shows them: not with `-q`, and not with `-v`, whose log
    /// lines they would overwrite.
    pub fn progress(&self) -> bool {
        self.chatter && self.verbose == 0
    }

    /// `-q`: only the verdict and errors.
    pub fn quiet() -> OutputMode {
        OutputMode {
            summary: SummaryFormat::Verdict,
            chatter: false,
            verbose: 0,
        }
    }
}
