//! run.json: what was rehearsed, where and how (reports/README.md "run.json").

use serde::{Deserialize, Deserializer, Serialize};

/// A key every run writes, even when its value is null: serde reads a
/// missing `Option` as None and a `#[serde(default)]` list as empty, and a
/// run.json with its `failure` deleted would read as a run that finished.
/// With this the key must be there (null is still None); only the keys
/// reports/README.md documents as added later stay optional.
pub(crate) fn required<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    T::deserialize(d)
}

/// `partition_keys`: a list of columns by table, or (runs recorded before
/// keys of several columns) one column.
fn columns_by_table<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<std::collections::BTreeMap<String, Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Columns {
        One(String),
        Many(Vec<String>),
    }
    let by_table = std::collections::BTreeMap::<String, Columns>::deserialize(d)?;
    Ok(by_table
        .into_iter()
        .map(|(table, c)| match c {
            Columns::One(c) => (table, vec![c]),
            Columns::Many(c) => (table, c),
        })
        .collect())
}

/// A time of the run (ms since its start) as a run writes one: checked as
/// it is read, so a damaged value is named at its line and column.
fn time_ms<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    super::check_time(f64::deserialize(d)?).map_err(serde::de::Error::custom)
}

/// [`time_ms`], or null.
fn opt_time_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    Option::<f64>::deserialize(d)?
        .map(super::check_time)
        .transpose()
        .map_err(serde::de::Error::custom)
}

/// The latency window's length: more than 0 ms, at most an hour.
fn window_len<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let v = f64::deserialize(d)?;
    match v.is_finite() && v > 0.0 && v <= 3_600_000.0 {
        true => Ok(v),
        false => Err(serde::de::Error::custom(format!(
            "{} is not a window length (expected more than 0 ms, at most an hour)",
            super::shown(v)
        ))),
    }
}

/// The open loop's rate, or null for a closed loop; never 0 or below.
fn opt_rate<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    match Option::<f64>::deserialize(d)? {
        Some(r) if !(r.is_finite() && r > 0.0) => Err(serde::de::Error::custom(format!(
            "{} is not a rate (expected requests per second above 0, or null)",
            super::shown(r)
        ))),
        r => Ok(r),
    }
}

/// run.json: what was rehearsed, where and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub scenario: String,
    pub scenario_file: String,
    pub scenario_hash: String,
    #[serde(deserialize_with = "required")]
    pub description: Option<String>,
    #[serde(deserialize_with = "required")]
    pub pair: Option<String>,
    #[serde(deserialize_with = "required")]
    pub variant: Option<String>,
    pub tool_version: String,
    /// UTC, RFC 3339.
    pub started_at: String,
    pub backend: String,
    /// Redacted target description (never a password).
    pub target: String,
    pub postgres_version: String,
    pub server_version_num: u32,
    pub settings: Vec<(String, String)>,
    pub seed: u64,
    /// Rows per table after --rows / --scale.
    pub rows: Vec<(String, u64)>,
    /// How long the rehearsal waited for its data: seeding and/or cloning.
    #[serde(deserialize_with = "time_ms")]
    pub seed_ms: f64,
    /// How the rehearsal's database got its data.
    #[serde(deserialize_with = "required")]
    pub database: Option<DataOrigin>,
    pub clients: u32,
    #[serde(deserialize_with = "opt_rate")]
    pub rate: Option<f64>,
    #[serde(deserialize_with = "window_len")]
    pub window_ms: f64,
    /// When the app traffic began (its connections open, the schedule
    /// started): the "before" period starts here, not at 0. Absent from
    /// run directories of earlier versions.
    #[serde(default, deserialize_with = "opt_time_ms")]
    pub traffic_started_ms: Option<f64>,
    /// Phases in order with their live app versions and time span.
    pub phases: Vec<PhaseSpan>,
    /// Budget from the scenario merged with --budget flags.
    pub budget: crate::scenario::Budget,
    /// How precisely lock grant/release times are known (ms), as measured
    /// (poll interval, clock offset uncertainty).
    #[serde(deserialize_with = "time_ms")]
    pub lock_precision_ms: f64,
    /// Set when the rehearsal did not finish: what went wrong.
    #[serde(deserialize_with = "required")]
    pub failure: Option<String>,
    #[serde(deserialize_with = "time_ms")]
    pub end_ms: f64,
    /// Every step as executed, with its settings and outcome.
    #[serde(deserialize_with = "required")]
    pub steps: Vec<StepInfo>,
    /// Indexes left invalid at the end (a failed CONCURRENTLY build).
    #[serde(deserialize_with = "required")]
    pub invalid_indexes: Vec<String>,
    /// Partitioned tables' own indexes still invalid at the end: made `ON
    /// ONLY` the parent, and not yet attached on every partition (they have
    /// no storage and no build to fail; not in `invalid_indexes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unattached_indexes: Vec<String>,
    /// Each table's primary key, when it is one column, at the end of the
    /// run (named as locks.csv names the table): the advice batches by it
    /// rather than by a guessed `id`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub primary_keys: std::collections::BTreeMap<String, String>,
    /// Each partitioned table's partition key columns, in order, when they
    /// are columns (not expressions), at the end of the run (named as
    /// locks.csv names the table): the ATTACH PARTITION advice's CHECK
    /// constraint names them rather than a placeholder. Runs recorded before
    /// it took several wrote one column as a string.
    #[serde(
        default,
        skip_serializing_if = "std::collections::BTreeMap::is_empty",
        deserialize_with = "columns_by_table"
    )]
    pub partition_keys: std::collections::BTreeMap<String, Vec<String>>,
    /// Each partitioned table's DEFAULT partition, where it has one, at the
    /// end of the run (both named as locks.csv names them): the ATTACH
    /// advice gives it a CHECK too.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub default_partitions: std::collections::BTreeMap<String, String>,
    /// Where statements.csv / steps.csv `wal_bytes` (the migration's own
    /// WAL) come from, e.g. `pg_stat_statements 1.10 in schema pgrehearse`;
    /// null when they could not be attributed (then `wal_unavailable` says why).
    #[serde(deserialize_with = "required")]
    pub wal_attribution: Option<String>,
    /// Why the migration's own WAL is unknown in this run (the columns are
    /// empty), e.g. a url target without pg_stat_statements.
    #[serde(deserialize_with = "required")]
    pub wal_unavailable: Option<String>,
    /// How steps.csv's table and index bytes were read (and how precise they
    /// are), or why they are unknown.
    #[serde(deserialize_with = "required")]
    pub sizes_method: Option<String>,
    /// The server size asked for, how it was applied, what was derived.
    #[serde(deserialize_with = "required")]
    pub size: Option<SizeInfo>,
    /// The streaming replica, described (None: there was none).
    #[serde(deserialize_with = "required")]
    pub replica: Option<String>,
    /// The `--pg-version` this run was one of (the major, as given): the
    /// summaries name it beside the scenario, so each version's verdict
    /// says which it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_version_cell: Option<String>,
    /// The scenario's `[migrations]`: what built the schema at setup (and
    /// how long it took), what was rehearsed. Null without `[migrations]`.
    #[serde(deserialize_with = "required")]
    pub migrations: Option<MigrationsInfo>,
    /// The workload's queries and scripts with their SQL, as errors.csv's
    /// `query` names them: which relations an app's failing query reads
    /// decides which step its schema errors are charged to (absent from
    /// runs made before it was recorded).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub queries: Vec<QueryInfo>,
    /// What differs from what the scenario asked for or from the database
    /// rehearsed for, as said on stderr at start: a url server's settings
    /// that were not copied or applied, another PostgreSQL version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// run.json `queries[]`: one query (or script) of the workload.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueryInfo {
    pub name: String,
    /// A script's statements, joined by `;\n`.
    pub sql: String,
}

impl QueryInfo {
    /// The workload's queries, then its scripts.
    pub fn of(w: &crate::scenario::WorkloadPlan) -> Vec<QueryInfo> {
        let queries = w.queries.iter().map(|q| QueryInfo {
            name: q.name.clone(),
            sql: q.sql.clone(),
        });
        let scripts = w.scripts.iter().map(|s| QueryInfo {
            name: s.name.clone(),
            sql: s.sql.join(";\n"),
        });
        queries.chain(scripts).collect()
    }
}

/// run.json `migrations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationsInfo {
    /// The directory, as resolved from the scenario file.
    pub dir: String,
    /// flyway | golang-migrate | dbmate | goose | sqitch | prisma | plain
    pub layout: String,
    /// How the rehearsed files were chosen: `from 5`, `last 2`,
    /// `since git origin/main`.
    pub selection: String,
    /// The files applied before seeding, in order.
    pub setup: Vec<SetupFile>,
    /// All of setup, not part of the rehearsal's clock.
    pub setup_ms: f64,
    /// sha256 of what the setup files make PostgreSQL do.
    pub setup_digest: String,
    /// The rehearsed files, in order: a step each.
    pub rehearsed: Vec<String>,
    /// `--since-git`: migrations already merged at the revision whose file
    /// changed since (applied at setup as they are now; databases that ran
    /// them before will not run the edit).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edited: Vec<String>,
    /// How each file of `edited` changed, in the same order (absent from
    /// runs made before it was recorded: each one then was edited).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changes: Vec<EditedInfo>,
}

/// run.json `migrations.changes[]`: how a migration merged at the
/// `--since-git` revision changed since.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EditedInfo {
    /// Its name at the revision.
    pub file: String,
    /// edited | renamed | deleted
    pub kind: String,
    /// renamed: its name now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renamed_to: Option<String>,
    /// renamed: whether its SQL changed too (line endings and a BOM aside).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_changed: Option<bool>,
    /// edited: whether the setup applied it as it was at the revision
    /// (absent from runs made before: they applied it as it was then, in
    /// the file, so false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub as_it_was: Option<bool>,
}

impl EditedInfo {
    pub fn of(c: &crate::migrations::MergedChange) -> Self {
        use crate::migrations::Change;
        let (renamed_to, content_changed) = match &c.change {
            Change::Renamed {
                to,
                content_changed,
            } => (Some(to.clone()), Some(*content_changed)),
            _ => (None, None),
        };
        EditedInfo {
            file: c.name.clone(),
            kind: c.change.kind().into(),
            renamed_to,
            content_changed,
            as_it_was: match c.change {
                Change::Edited { as_it_was } => Some(as_it_was),
                _ => None,
            },
        }
    }

    /// The change it records; an unknown kind reads as an edit.
    pub fn change(&self) -> crate::migrations::MergedChange {
        use crate::migrations::{Change, MergedChange};
        let change = match (self.kind.as_str(), &self.renamed_to) {
            ("renamed", Some(to)) => Change::Renamed {
                to: to.clone(),
                content_changed: self.content_changed.unwrap_or(true),
            },
            ("deleted", _) => Change::Deleted,
            ("merged_after_fork", _) => Change::MergedAfterFork,
            _ => Change::Edited {
                as_it_was: self.as_it_was.unwrap_or(false),
            },
        };
        MergedChange {
            name: self.file.clone(),
            change,
        }
    }
}

/// One migration applied at setup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetupFile {
    pub file: String,
    pub statements: usize,
    /// How long it took; null when it did not run.
    #[serde(deserialize_with = "required")]
    pub ms: Option<f64>,
    /// ok | error | not run
    pub outcome: String,
}

/// run.json `size`: the server size a rehearsal asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeInfo {
    #[serde(deserialize_with = "required")]
    pub cpus: Option<u32>,
    /// "16GB".
    #[serde(deserialize_with = "required")]
    pub memory: Option<String>,
    #[serde(deserialize_with = "required")]
    pub memory_bytes: Option<u64>,
    /// How the size was applied on this backend, in words.
    pub applied: String,
    /// The settings derived from the size (empty where none were applied).
    pub derived: Vec<DerivedInfo>,
}

/// One derived setting: its value, the rule, and the scenario's own value
/// when that won.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DerivedInfo {
    pub name: String,
    pub value: String,
    pub rule: String,
    /// The scenario's `[postgres] settings` value that was applied instead.
    #[serde(deserialize_with = "required")]
    pub overridden_by: Option<String>,
}

/// How a rehearsal's database got its data (run.json `database`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataOrigin {
    /// `seeded` (in the rehearsal's own database) or `cloned` (a copy of a
    /// template).
    pub how: String,
    /// The template's key (hex sha256), when cloned.
    #[serde(deserialize_with = "required")]
    pub template: Option<String>,
    /// Where the template came from: `seeded` (by this rehearsal),
    /// `earlier` (by an earlier rehearsal of the same invocation), `cache`
    /// (kept by an earlier invocation, `--reuse`).
    #[serde(deserialize_with = "required")]
    pub template_source: Option<String>,
    /// Milliseconds spent seeding for this rehearsal (its database, or the
    /// template it seeded); 0 when it seeded nothing.
    pub seed_ms: f64,
    /// Milliseconds cloning the template, when cloned.
    #[serde(deserialize_with = "required")]
    pub clone_ms: Option<f64>,
    /// The clone's CREATE DATABASE strategy: `file_copy`, `wal_log` or
    /// `default`.
    #[serde(deserialize_with = "required")]
    pub clone_strategy: Option<String>,
    /// Milliseconds of the CHECKPOINT after this rehearsal's seeding (in
    /// `seed_ms`): null when it seeded nothing or the role may not.
    #[serde(deserialize_with = "required")]
    pub checkpoint_ms: Option<f64>,
}

/// One executed step: its span, its settings and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepInfo {
    pub phase: String,
    pub step: String,
    #[serde(deserialize_with = "time_ms")]
    pub start_ms: f64,
    #[serde(deserialize_with = "time_ms")]
    pub end_ms: f64,
    pub transaction: bool,
    #[serde(deserialize_with = "required")]
    pub lock_timeout_ms: Option<f64>,
    #[serde(deserialize_with = "required")]
    pub statement_timeout_ms: Option<f64>,
    /// Where the lock_timeout above came from when not from the scenario:
    /// the earlier migration file whose session-level `SET` left it in
    /// effect (its tool runs every file on one connection), or the
    /// session's own default (a role's, database's or server's setting);
    /// null when it is the scenario's, or none. Absent in run directories
    /// of earlier versions.
    #[serde(default)]
    pub lock_timeout_from: Option<String>,
    /// The same for the statement_timeout above.
    #[serde(default)]
    pub statement_timeout_from: Option<String>,
    pub retries: u32,
    /// Attempts made (for a backfill: batches plus retries).
    pub attempts: u32,
    pub backfill: bool,
    /// ok | error | lock_timeout | statement_timeout | cancelled
    pub outcome: String,
    /// The SQL file the step ran (a rehearsed migration, or a step's
    /// `file`); null for inline SQL and backfills.
    #[serde(deserialize_with = "required")]
    pub file: Option<String>,
    /// A file step's segments in order, each run in one transaction or
    /// statement by statement (`transaction` above is true when all are
    /// transactions); empty for other steps.
    #[serde(deserialize_with = "required")]
    pub segments: Vec<SegmentInfo>,
}

/// One part of a file step that runs one way, as its tool runs it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SegmentInfo {
    pub transaction: bool,
    /// Why the tool runs it so ("contains CREATE INDEX CONCURRENTLY (line 3)").
    pub reason: String,
    pub statements: usize,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseSpan {
    pub name: String,
    pub apps: Vec<String>,
    #[serde(deserialize_with = "time_ms")]
    pub start_ms: f64,
    #[serde(deserialize_with = "time_ms")]
    pub end_ms: f64,
}
