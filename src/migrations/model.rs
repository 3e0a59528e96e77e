//! What a migration set is once loaded: files in the tool's order, each made
//! of segments that run the way the tool runs them, each segment of located
//! statements.

use std::fmt;
use std::path::{Path, PathBuf};

pub use super::error::Location;
use super::error::{MigrationError, MigrationErrors};

/// The migration tool whose directory layout, ordering and transaction rules
/// a set follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Layout {
    Flyway,
    GolangMigrate,
    Dbmate,
    Goose,
    Sqitch,
    Prisma,
    Plain,
}

impl Layout {
    pub const ALL: [Layout; 7] = [
        Layout::Flyway,
        Layout::GolangMigrate,
        Layout::Dbmate,
        Layout::Goose,
        Layout::Sqitch,
        Layout::Prisma,
        Layout::Plain,
    ];

    /// The name a scenario uses: `layout = "golang-migrate"`.
    pub fn name(self) -> &'static str {
        match self {
            Layout::Flyway => "flyway",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Goose => "goose",
            Layout::Sqitch => "sqitch",
            Layout::Prisma => "prisma",
            Layout::Plain => "plain",
        }
    }

    /// The tool, for messages ("Flyway runs ...").
    pub fn tool(self) -> &'static str {
        match self {
            Layout::Flyway => "Flyway",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Dbmate => "dbmate",
            Layout::Goose => "goose",
            Layout::Sqitch => "Sqitch",
            Layout::Prisma => "Prisma Migrate",
            Layout::Plain => "psql",
        }
    }

    /// The layout named `name`, or `None`.
    pub fn from_name(name: &str) -> Option<Layout> {
        Layout::ALL.into_iter().find(|l| l.name() == name)
    }

    /// "flyway, golang-migrate, ..." for an error message.
    pub fn names() -> String {
        Layout::ALL.map(Layout::name).join(", ")
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A directory of migrations, loaded and checked.
#[derive(Debug, Clone)]
pub struct MigrationSet {
    pub layout: Layout,
    /// The directory as given (relative paths stay relative).
    pub dir: PathBuf,
    /// Every migration the tool would apply to an empty database, in the
    /// tool's order.
    pub files: Vec<MigrationFile>,
    /// Files in the directory that the tool does not apply (down migrations,
    /// Flyway undo and callback scripts, names the tool does not match), with
    /// the reason: shown by `check` so nothing is silently skipped.
    pub ignored: Vec<Ignored>,
}

impl MigrationSet {
    /// The set a loader found, or every error it met.
    pub(super) fn checked(
        layout: Layout,
        dir: &Path,
        files: Vec<MigrationFile>,
        ignored: Vec<Ignored>,
        errors: Vec<MigrationError>,
    ) -> Result<MigrationSet, MigrationErrors> {
        if !errors.is_empty() {
            return Err(MigrationErrors(errors));
        }
        Ok(MigrationSet {
            layout,
            dir: dir.to_path_buf(),
            files,
            ignored,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub path: PathBuf,
    pub reason: String,
}

/// The kind of a migration, as the tool classifies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Applied once, in version order (Sqitch changes, Prisma migrations,
    /// plain files are all versioned).
    Versioned,
    /// Flyway `R__`: applied after every versioned migration, again whenever
    /// its content changes.
    Repeatable,
    /// Flyway `B<version>__`: on an empty database it replaces every versioned
    /// migration up to its version.
    Baseline,
}

/// One migration file (a Sqitch change's deploy script, a Prisma migration's
/// migration.sql, a dbmate file's up sections).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationFile {
    pub path: PathBuf,
    /// Its path relative to the set's directory, `/`-separated: what reports
    /// show ("V1.10__add_status.sql", "20240101_init/migration.sql").
    pub name: String,
    /// The version as the tool reads it from the name (Flyway "1.10", a
    /// golang-migrate number, a dbmate or Prisma timestamp, a Sqitch change
    /// name, a plain file's name without `.sql`). Empty for repeatables.
    pub version: String,
    pub description: String,
    pub kind: Kind,
    /// In order. Most files have one segment; a script with its own
    /// `BEGIN ... COMMIT` followed by `CREATE INDEX CONCURRENTLY` has two.
    pub segments: Vec<Segment>,
    /// Facts worth a line in `check` that are not errors.
    pub notes: Vec<String>,
}

impl MigrationFile {
    /// A versioned migration without notes (most layouts' files).
    pub(super) fn versioned(
        path: PathBuf,
        name: String,
        version: String,
        description: String,
        segments: Vec<Segment>,
    ) -> Self {
        MigrationFile {
            path,
            name,
            version,
            description,
            kind: Kind::Versioned,
            segments,
            notes: Vec::new(),
        }
    }

    /// Every statement, in order, across segments.
    pub fn statements(&self) -> impl Iterator<Item = &Statement> {
        self.segments.iter().flat_map(|s| s.statements.iter())
    }

    /// The file's execution when it is one segment (the common case): one
    /// step with `transaction = true|false`.
    pub fn single_execution(&self) -> Option<Execution> {
        match self.segments.as_slice() {
            [only] => Some(only.execution),
            _ => None,
        }
    }
}

/// How the tool sends a run of statements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Execution {
    /// Inside one transaction: all of them or none, every lock held to the
    /// end. The statements exclude the BEGIN/COMMIT that delimit it.
    Transaction,
    /// One by one outside any transaction block (each commits on its own):
    /// what CREATE INDEX CONCURRENTLY needs.
    Autocommit,
}

/// Consecutive statements of a file that run the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub execution: Execution,
    /// Why the tool runs them this way, for `check` and the reports
    /// ("contains CREATE INDEX CONCURRENTLY (line 3)",
    /// "-- migrate:up transaction:false").
    pub reason: String,
    pub statements: Vec<Statement>,
}

/// One SQL statement and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// The text PostgreSQL would see for it: trimmed, without the
    /// terminating `;`, with the comments that precede it.
    pub sql: String,
    /// Where its code starts (its first token that is not a comment).
    pub location: Location,
    /// Byte offset in `sql` where the code starts.
    pub code_offset: usize,
}

impl Statement {
    /// The statement without its leading comments.
    pub fn code(&self) -> &str {
        &self.sql[self.code_offset..]
    }
}
