//! Check-time problems of a migration set: each names the migration file,
//! line and column, or the `[migrations]` setting at fault, and says how to
//! fix it. They map onto [`ScenarioError`] (exit code 2).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::ScenarioError;

/// The `[migrations]` setting (or command-line flag) a problem is about, so
/// that the caller can point at its line in the scenario file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Setting {
    Dir,
    Layout,
    From,
    Last,
    SinceGit,
    /// A layout option (`mixed`, `multi_statement`, `placeholders`, ...).
    Options,
}

impl Setting {
    /// The field path for a [`ScenarioError`] (`migrations.rehearse.from`).
    pub fn field(self) -> &'static str {
        match self {
            Setting::Dir => "migrations.dir",
            Setting::Layout => "migrations.layout",
            Setting::From => "migrations.rehearse.from",
            Setting::Last => "migrations.rehearse.last",
            Setting::SinceGit => "--since-git",
            Setting::Options => "migrations",
        }
    }
}

/// Where a problem is: in a migration file (or sqitch.plan, or a Flyway
/// `.sql.conf`), or in a setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    File(Location),
    Setting(Setting),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationError {
    pub at: At,
    /// What is wrong, what the tool would do, and the fix.
    pub message: String,
}

impl MigrationError {
    pub fn at(location: Location, message: impl Into<String>) -> Self {
        MigrationError {
            at: At::File(location),
            message: message.into(),
        }
    }

    pub fn setting(setting: Setting, message: impl Into<String>) -> Self {
        MigrationError {
            at: At::Setting(setting),
            message: message.into(),
        }
    }

    /// As a scenario error. `locate` gives the line and column of a setting
    /// in `scenario` (0, 0 when it is not there, e.g. an auto-detected
    /// layout or a command-line flag); problems inside migration files keep
    /// their own file and position.
    pub fn to_scenario_error(
        &self,
        scenario: &Path,
        locate: impl Fn(Setting) -> (usize, usize),
    ) -> ScenarioError {
        match &self.at {
            At::File(loc) => ScenarioError {
                file: loc.file.clone(),
                line: loc.line,
                column: loc.column,
                field: String::new(),
                message: self.message.clone(),
            },
            At::Setting(s) => {
                let (line, column) = locate(*s);
                ScenarioError {
                    file: scenario.to_path_buf(),
                    line,
                    column,
                    field: s.field().to_string(),
                    message: self.message.clone(),
                }
            }
        }
    }
}

impl fmt::Display for MigrationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.at {
            At::File(loc) => write!(f, "{loc}: {}", self.message),
            At::Setting(s) => write!(f, "{}: {}", s.field(), self.message),
        }
    }
}

impl std::error::Error for MigrationError {}

/// Every problem found, all at once (a user fixes them in one go).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationErrors(pub Vec<MigrationError>);

impl MigrationErrors {
    /// As scenario errors, for `Error::Scenario` (exit code 2).
    pub fn to_scenario_errors(
        &self,
        scenario: &Path,
        locate: impl Fn(Setting) -> (usize, usize),
    ) -> Vec<ScenarioError> {
        self.0
            .iter()
            .map(|e| e.to_scenario_error(scenario, &locate))
            .collect()
    }
}

impl From<MigrationError> for MigrationErrors {
    fn from(e: MigrationError) -> Self {
        MigrationErrors(vec![e])
    }
}

impl fmt::Display for MigrationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for MigrationErrors {}

/// A position in a file: 1-based line and column (in characters); 0 and 0
/// when the problem is the whole file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    pub fn new(file: &Path, line: usize, column: usize) -> Self {
        Location {
            file: file.to_path_buf(),
            line,
            column,
        }
    }

    /// The whole file.
    pub fn file(file: &Path) -> Self {
        Location::new(file, 0, 0)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.file.display())
        } else {
            write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
        }
    }
}
