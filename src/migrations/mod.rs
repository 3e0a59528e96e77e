//! Users' own migration files — Flyway, golang-migrate, dbmate, goose, Sqitch,
//! Prisma, or plain ordered `.sql` files — loaded the way their tool would
//! apply them: in the tool's order, each file split into located statements,
//! each run inside a transaction or outside one exactly as the tool would.
//!
//! # Using it (for the scenario / rehearsal integration)
//!
//! ```no_run
//! use pgrehearse::migrations::{self, Execution, Selection, Spec};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // [migrations] dir = "../db/migrations" (relative to the scenario file),
//! // layout = "flyway" (None: detected), rehearse = { from = "5" }
//! let spec = Spec::new("scenarios/../db/migrations");
//! let set = migrations::load(&spec)?; // every check-time problem, at once
//! let plan = set.select(&Selection::From("5".into()))?;
//! for file in &plan.setup { /* apply untimed: its segments, in order */ }
//! for file in &plan.rehearse {
//!     // one step per file, named file.name; usually one segment:
//!     for segment in &file.segments {
//!         let transaction = segment.execution == Execution::Transaction;
//!         for st in &segment.statements {
//!             // st.sql, st.location (file:line:column) for statements.csv
//!         }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! - [`load`] reads and checks a directory: [`MigrationSet`] (files in the
//!   tool's order, plus the files the tool would not run, in `ignored`) or
//!   [`MigrationErrors`] (all problems, each at a migration file's
//!   line:column or at a `[migrations]` setting, with the fix). Map them with
//!   [`MigrationErrors::to_scenario_errors`] into `Error::Scenario` (exit 2).
//! - [`MigrationSet::select`] splits it into `setup` and `rehearse` by a
//!   [`Selection`] (`from`, `last`, `--since-git`); [`detect`] names the
//!   layout of a directory.
//! - A [`MigrationFile`] is a list of [`Segment`]s, each an [`Execution`]
//!   (`Transaction`: the executor sends BEGIN, the statements, COMMIT;
//!   `Autocommit`: each statement alone) with the `reason` the tool runs it
//!   so. A file with one segment maps onto one `[[phase.step]]` with
//!   `transaction = true|false`; a Sqitch script `BEGIN; ...; COMMIT; CREATE
//!   INDEX CONCURRENTLY ...;` has two segments (a step with sub-transactions,
//!   or two steps).
//! - A [`Statement`]'s `sql` is the text PostgreSQL itself would see for it
//!   (leading comments included, trailing `;` excluded: what
//!   pg_stat_statements records); its `location` is where its code starts.
//!   Transaction-control statements that delimit a segment are not in it.
//!
//! # What each tool does (researched in the tools' sources)
//!
//! - **Flyway**: `V<version>__<desc>.sql`, found recursively; versions
//!   compare part by part as integers, `_` and `.` both separate parts, and
//!   trailing zero parts do not count (`V1` and `V1.0` are the same version:
//!   a duplicate). `R__<desc>.sql` run after every versioned one, ordered by
//!   description. `B<version>__` baseline migrations (in Flyway's
//!   open-source core since 9.21) replace the versioned ones up to their
//!   version on an empty database. `U` undo files, callbacks (`afterMigrate.sql`, ...) and
//!   other names are ignored. A file runs in one transaction unless one of
//!   its statements matches Flyway's own non-transactional list (CREATE/DROP
//!   \[UNIQUE\] INDEX CONCURRENTLY, CREATE/DROP DATABASE/TABLESPACE/
//!   SUBSCRIPTION, ALTER SYSTEM, REINDEX SCHEMA/DATABASE/SYSTEM, VACUUM,
//!   DISCARD ALL; ALTER TYPE ... ADD VALUE only before PostgreSQL 12, so not
//!   here): then it runs statement by statement in autocommit. A file with
//!   both kinds is refused ("Detected both transactional and
//!   non-transactional statements") unless `mixed` is set, which runs the
//!   whole file in autocommit (not just the non-transactional statements).
//!   `V3__x.sql.conf` with `executeInTransaction=false|true` overrides the
//!   detection. Flyway's list misses REINDEX ... CONCURRENTLY and DETACH
//!   PARTITION ... CONCURRENTLY: it runs them in a transaction, where they
//!   fail — reported with the `.conf` fix. `flyway.postgresql.transactional.
//!   lock` is not about that choice: it is how Flyway holds its own advisory
//!   lock (in a transaction by default since 9.1), which a CONCURRENTLY
//!   build may wait for forever; a note says to set it to false.
//!   `${placeholders}` are replaced everywhere in the text before parsing, as
//!   Flyway does (built-ins `flyway:defaultSchema` = public, `flyway:table`,
//!   `flyway:filename`; others from [`FlywayOptions::placeholders`]); an
//!   unknown one is an error, as in Flyway.
//! - **golang-migrate**: `<version>_<title>.up.<ext>` in the directory only,
//!   numeric order (`9_` before `10_`; `1_` and `001_` are one version).
//!   Its postgres and pgx drivers do not wrap a file in a transaction: they
//!   send the whole file as one query, and PostgreSQL runs a multi-statement
//!   query as one implicit transaction — so CONCURRENTLY only works alone in
//!   its file (golang-migrate's own advice). With `x-multi-statement=true`
//!   ([`GolangMigrateOptions::multi_statement`]) the file is cut at every
//!   `;` byte — inside dollar quotes and comments too — and each piece sent
//!   alone (autocommit); where that cut breaks a statement, it is an error.
//! - **dbmate**: `<digits>...sql`, ordered by file name in byte order (not
//!   numerically: `10_x` sorts before `9_y`; versions are strings, so `1` and
//!   `001` differ). Each file needs `-- migrate:up` and `-- migrate:down`
//!   (required since dbmate 2.0); since 2.29 a file may hold several
//!   up/down sections. An up section runs inside BEGIN/COMMIT; with
//!   `-- migrate:up transaction:false` it is sent without them — but still
//!   as one query, so several statements there still share an implicit
//!   transaction and CONCURRENTLY must be alone in its section (dbmate issues
//!   #126, #182, #285).
//! - **goose**: `<version>_<name>.sql`, version order (an integer above 0;
//!   `goose up` refuses other `.sql` names and duplicate versions). The up
//!   section (`-- +goose Up` to `-- +goose Down`) is cut into pieces at each
//!   line whose last word ends in `;`, or around a `StatementBegin` /
//!   `StatementEnd` block; each piece is one query, all of them in one
//!   transaction unless `-- +goose NO TRANSACTION`. Go migrations are listed
//!   as not applied; `ENVSUB ON` substitution is refused where it would
//!   change a line.
//! - **Sqitch**: sqitch.plan order (dependencies are checked, never used to
//!   reorder; a change listed again after a tag is reworked, its earlier
//!   script being `deploy/<change>@<tag>.sql`), `deploy/<change>.sql`, run
//!   with `psql --file` and ON_ERROR_STOP: autocommit, except inside the
//!   script's own BEGIN ... COMMIT. `from` takes Sqitch change specs
//!   (`users`, `users@v1.0`, `@v1.0`, `@HEAD^`, `@v1.0~` = the change after
//!   the tag). sqitch.conf `top_dir` / `plan_file` are honoured.
//! - **Prisma**: `<timestamp>_<name>/migration.sql`, directory-name order;
//!   migration_lock.toml must say postgresql. The schema engine sends the
//!   script as one simple query, no BEGIN: like golang-migrate.
//! - **plain**: the directory's `.sql` files in natural order (`2_x` before
//!   `10_y`). No tool decides, so pgrehearse's rule: a file runs in one
//!   transaction (psql `--single-transaction`) unless it has its own
//!   transaction control or a statement PostgreSQL refuses in a transaction
//!   block; then it runs as `psql --file` would.
//!
//! psql meta-commands (Sqitch, plain): `\i`, `\ir` (and their long names)
//! are inlined, their statements located in the included file; `\set
//! ON_ERROR_STOP`, `\restrict`/`\unrestrict` (pg_dump) and output-only
//! commands are ignored; any other is an error naming it. Where the server
//! reads the file (Flyway, golang-migrate, dbmate, Prisma) any meta-command
//! is an error. psql `:variables` are not interpolated. COPY ... FROM STDIN
//! with inline data is refused.
//!
//! A lone statement sent as one query (golang-migrate, Prisma, dbmate) is
//! its own transaction: DDL or DML is a one-statement `Transaction`
//! segment, which takes and holds the same locks; anything PostgreSQL
//! refuses in a transaction block, or runs differently there (a `DO` or
//! `CALL` that commits inside), is `Autocommit`.
//!
//! # Selection
//!
//! - `From(v)`: the first migration in the tool's order whose version is at
//!   or after `v`, compared the tool's way (Flyway numerically, golang-
//!   migrate and goose as a number, dbmate as a string, Prisma by directory name,
//!   plain naturally, Sqitch as a change spec), and every one after it. `v`
//!   need not name an existing file; none at or after it is an error.
//! - `Last(n)`: the last `n` migrations (Flyway repeatables not counted).
//! - `SinceGit(rev)`: the files `git diff --no-renames REV` reports added
//!   between `rev` and the working tree, plus untracked files git does not
//!   ignore (a migration not yet committed is part of the change); for
//!   Sqitch, the changes sqitch.plan gained since `rev` (a reworked change
//!   counts, though its script was modified, not added). Nothing new gives
//!   an empty `rehearse`. A new migration that sorts before one that is not
//!   new is an error naming both: in production the older one is applied,
//!   and the tool would refuse, skip or reorder the new one.
//! - Flyway repeatables: rehearsed after the versioned ones with `From` and
//!   `Last` (without history every one counts as changed); with `SinceGit`
//!   only the added or modified ones, the others ending the setup, and a
//!   modified one's text at the revision too (`R__x.sql@REV`: production
//!   applied it, and the rehearsal replaces it as Flyway will).
//!
//! Whether a statement can run in a transaction block is decided on its
//! words, as PostgreSQL 12+ decides it (`PreventInTransactionBlock`):
//! CREATE/DROP INDEX CONCURRENTLY, REINDEX CONCURRENTLY / SCHEMA / DATABASE
//! / SYSTEM, VACUUM, CLUSTER without a table, CREATE/DROP DATABASE,
//! TABLESPACE, SUBSCRIPTION, ALTER SYSTEM, ALTER DATABASE SET TABLESPACE,
//! ALTER SUBSCRIPTION REFRESH, DETACH PARTITION CONCURRENTLY, DISCARD ALL,
//! COMMIT/ROLLBACK PREPARED. Where the tool would run one inside a
//! transaction, loading fails at that statement with the layout's fix.

pub(crate) mod classify;
mod dbmate;
mod detect;
mod dir;
mod error;
mod flyway;
mod git;
mod golang_migrate;
mod goose;
mod model;
mod plain;
mod prisma;
mod script;
mod segment;
mod select;
mod since_git;
mod sqitch;
mod sqitch_plan;

use std::path::{Path, PathBuf};

pub use detect::detect;
pub use error::{At, MigrationError, MigrationErrors, Setting};
pub use flyway::FlywayOptions;
pub use git::GitChanges;
pub use golang_migrate::GolangMigrateOptions;
pub use model::{
    Execution, Ignored, Kind, Layout, Location, MigrationFile, MigrationSet, Segment, Statement,
    StatementOrigin, FRESH_SESSION,
};
pub use select::{Plan, Selection};
pub use since_git::{edited_warning, Change, MergedChange};

/// Whether PostgreSQL refuses a statement (its code, without leading
/// comments) inside a transaction block, and as what: `Some("CREATE INDEX
/// CONCURRENTLY")`.
pub use classify::{
    called_procedure, first_word, may_end_transaction, refused_in_transaction,
    same_in_own_transaction,
};

/// The tool settings that change how files run (the scenario's
/// `[migrations]` options).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    pub flyway: FlywayOptions,
    pub golang_migrate: GolangMigrateOptions,
}

/// What to load: the `[migrations]` table of a scenario.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// Already resolved against the scenario file's directory.
    pub dir: PathBuf,
    /// `None`: [`detect`] it.
    pub layout: Option<Layout>,
    pub options: Options,
}

impl Spec {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Spec {
            dir: dir.into(),
            layout: None,
            options: Options::default(),
        }
    }

    /// `dir` as a scenario file writes it: relative to the scenario file's
    /// directory (absolute stays absolute).
    pub fn relative_to(scenario_file: &Path, dir: impl AsRef<Path>) -> Self {
        Spec::new(relative_to(scenario_file, dir))
    }

    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = Some(layout);
        self
    }
}

/// A `layout = "..."` value, or an error listing the known ones.
pub fn parse_layout(name: &str) -> Result<Layout, MigrationError> {
    Layout::from_name(name).ok_or_else(|| {
        MigrationError::setting(
            Setting::Layout,
            format!("unknown layout \"{name}\"; known: {}", Layout::names()),
        )
    })
}

/// `path` as a scenario file writes it, relative to the scenario file's
/// directory (absolute stays absolute), with `.` and `dir/..` removed so
/// that messages and reports show `db/migration/V5__x.sql`, not
/// `examples/shop/../shop/db/migration/V5__x.sql`. Lexical: a `..` after a
/// symbolic link is resolved as if the link were a directory.
pub fn relative_to(scenario_file: &Path, path: impl AsRef<Path>) -> PathBuf {
    use std::path::Component;
    let base = scenario_file.parent().unwrap_or(Path::new(""));
    let joined = base.join(path);
    let mut out: Vec<Component> = Vec::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            // `/..` is `/`.
            Component::ParentDir if matches!(out.last(), Some(Component::RootDir)) => {}
            c => out.push(c),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}

/// One `.sql` file outside a migrations directory (a scenario step's `file
/// = ...`), loaded as the plain layout loads a file: in one transaction
/// unless it has its own transaction control or a statement PostgreSQL
/// refuses in one. `transaction` forces it: `Some(true)` one transaction,
/// `Some(false)` statement by statement (its own BEGIN ... COMMIT blocks
/// stay transactions). Its `name` is the path as given.
pub fn load_sql_file(
    path: &Path,
    transaction: Option<bool>,
) -> Result<MigrationFile, MigrationError> {
    plain::load_single(path, transaction)
}

/// sha256 (hex) of what `files` make PostgreSQL do: each file's name, and
/// each segment's execution and statements, in order. Two setups with the
/// same digest build the same schema (a key for template databases).
pub fn digest<'a>(files: impl IntoIterator<Item = &'a MigrationFile>) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for f in files {
        h.update(f.name.as_bytes());
        h.update([0]);
        for seg in &f.segments {
            h.update(match seg.execution {
                Execution::Transaction => b"T",
                Execution::Autocommit => b"A",
            });
            for st in &seg.statements {
                h.update((st.sql.len() as u64).to_le_bytes());
                h.update(st.sql.as_bytes());
            }
        }
        h.update([1]);
    }
    hex::encode(h.finalize())
}

/// Load and check the migrations of `spec`: every problem is reported at
/// once, each at its file:line:column or setting.
pub fn load(spec: &Spec) -> Result<MigrationSet, MigrationErrors> {
    let dir: &Path = &spec.dir;
    dir::require(dir)?;
    let layout = match spec.layout {
        Some(l) => l,
        None => detect(dir)?,
    };
    let mut set = match layout {
        Layout::Flyway => flyway::load(dir, &spec.options.flyway),
        Layout::GolangMigrate => golang_migrate::load(dir, &spec.options.golang_migrate),
        Layout::Dbmate => dbmate::load(dir),
        Layout::Goose => goose::load(dir),
        Layout::Sqitch => sqitch::load(dir),
        Layout::Prisma => prisma::load(dir),
        Layout::Plain => plain::load(dir),
    }?;
    set.options = spec.options.clone();
    set.detected = spec.layout.is_none();
    for f in &mut set.files {
        let notes = classify::commits_in_a_transaction(f);
        f.notes.extend(notes);
    }
    Ok(set)
}
