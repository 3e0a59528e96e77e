//! Scenario files: the raw TOML model (`model`), loading with source spans and
//! validation into a [`Scenario`] plan (`load`), and the value generators
//! (`gen`). Everything downstream consumes only the validated plan below.

mod describe;
pub use describe::gen_text;
mod diag;
pub mod gen;
mod gen_link;
mod gen_shape;
mod gen_spec;
mod gen_value;
mod keys;
pub mod load;
pub mod model;
mod span;
mod validate;
mod validate_migrations;
mod validate_phases;
mod validate_placement;
mod validate_size;
mod validate_workload;

use std::path::PathBuf;
use std::time::Duration;

pub use diag::{fmt_duration, parse_duration};
pub use load::{load, load_str, locate_fields, Overrides};

use crate::migrations::{Ignored, Layout, MigrationFile};

/// A validated scenario: everything a rehearsal needs, no raw input left.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    pub path: PathBuf,
    pub name: String,
    pub description: Option<String>,
    /// naive/safe files that share a pair are compared.
    pub pair: Option<String>,
    pub variant: Option<Variant>,
    /// sha256 of the file's bytes, hex.
    pub hash: String,
    pub postgres: PostgresPlan,
    /// Tables in creation order (a foreign key generator may only point at an
    /// earlier table).
    pub tables: Vec<TablePlan>,
    /// Plain-SQL seeding, run after the generated tables are loaded and before
    /// VACUUM (FREEZE, ANALYZE).
    pub seed_sql: Vec<String>,
    pub workload: WorkloadPlan,
    pub phases: Vec<PhasePlan>,
    pub budget: Budget,
    /// `[migrations]`: the project's own migration files. The `setup` ones
    /// build the schema before seeding; the rehearsed ones are steps of
    /// `phases` ([`StepAction::File`]).
    pub migrations: Option<MigrationsPlan>,
}

/// The `[migrations]` of a scenario, loaded, checked and split.
#[derive(Debug, Clone, PartialEq)]
pub struct MigrationsPlan {
    /// The directory, resolved against the scenario file's directory.
    pub dir: PathBuf,
    pub layout: Layout,
    /// How the rehearsed files were chosen (`rehearse`, or `--since-git`);
    /// `Last(0)`: none, every file is setup.
    pub selection: crate::migrations::Selection,
    /// Applied before seeding, untimed, the tool's way, in order.
    pub setup: Vec<MigrationFile>,
    /// Rehearsed, in the tool's order; each is one step of `phases`.
    pub rehearse: Vec<MigrationFile>,
    /// Files of the directory the tool would not apply, and why.
    pub ignored: Vec<Ignored>,
    /// `--since-git`: setup files (merged at the revision) edited, renamed
    /// or deleted since.
    pub edited: Vec<crate::migrations::MergedChange>,
}

impl MigrationsPlan {
    /// What the setup files make PostgreSQL do, as one sha256: equal
    /// digests build equal schemas (a template database's key).
    pub fn setup_digest(&self) -> String {
        crate::migrations::digest(&self.setup)
    }
}

/// The app version of a workload whose queries name none.
pub const DEFAULT_APP: &str = "app";

impl Scenario {
    /// What loading a file checks of the app versions, for a scenario built
    /// in code: every query is sent by some version, and every phase makes
    /// live versions that send queries — a typo there would leave a phase
    /// without traffic, and every budget passing on nothing.
    pub fn check_apps(&self) -> std::result::Result<(), String> {
        if let Some(q) = self.workload.queries.iter().find(|q| q.apps.is_empty()) {
            return Err(format!(
                "workload query `{}` names no app version (a file's get `{DEFAULT_APP}`)",
                q.name
            ));
        }
        let apps = self.workload.apps();
        if apps.is_empty() {
            return Ok(());
        }
        for p in &self.phases {
            if p.apps.is_empty() {
                return Err(format!("phase `{}` makes no app version live", p.name));
            }
            if let Some(a) = p.apps.iter().find(|a| !apps.contains(a)) {
                return Err(format!(
                    "phase `{}` makes app version `{a}` live, which no workload query sends \
                     (the queries' versions: {})",
                    p.name,
                    apps.join(", ")
                ));
            }
        }
        Ok(())
    }

    /// `--since-git` found no migration added since the revision: there is
    /// nothing to rehearse (`run` says so and exits 0).
    pub fn nothing_to_rehearse(&self) -> bool {
        self.phases.is_empty()
            && self
                .migrations
                .as_ref()
                .is_some_and(|m| m.rehearse.is_empty())
    }

    /// A plan that only seeds `tables`: no traffic, no phases, no budget.
    /// For seeding from code (benchmarks, tests) without a file.
    pub fn seed_only(name: &str, tables: Vec<TablePlan>) -> Scenario {
        Scenario {
            path: PathBuf::from(name),
            name: name.to_string(),
            description: None,
            pair: None,
            variant: None,
            hash: String::new(),
            postgres: PostgresPlan::default(),
            tables,
            seed_sql: Vec::new(),
            workload: WorkloadPlan::idle(),
            phases: Vec::new(),
            budget: Budget::default(),
            migrations: None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    Naive,
    Safe,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PostgresPlan {
    /// Major version wanted ("15", "17"): image tag / local binaries.
    pub version: Option<String>,
    /// Container image, overridden by --image / PGREHEARSE_IMAGE.
    pub image: Option<String>,
    /// Server settings applied as `-c name=value` where we own the server.
    pub settings: Vec<(String, String)>,
    /// CPUs and memory of the server (container limits, derived settings);
    /// `--cpus` / `--memory` are applied over it when the plan is made.
    pub size: Option<crate::sizing::ServerSize>,
    /// A streaming physical replica next to the primary (`--replica` too).
    pub replica: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TablePlan {
    pub name: String,
    /// Exact number of rows to generate (after --rows / --scale).
    pub rows: u64,
    /// The CREATE TABLE statement; `None` when the table comes from the
    /// setup migrations (it must exist once they ran).
    pub create: Option<String>,
    pub after_seed: Vec<String>,
    /// Generated columns; a table column without a generator gets its
    /// default (or NULL; with `[migrations]`, a foreign key into a seeded
    /// table gets an `fk` generator).
    pub columns: Vec<ColumnPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ColumnPlan {
    pub name: String,
    pub gen: ColumnGen,
}

impl ColumnPlan {
    /// Column `name` filled by `kind`, never NULL.
    pub fn new(name: &str, kind: Gen) -> ColumnPlan {
        ColumnPlan {
            name: name.to_string(),
            gen: ColumnGen {
                kind,
                null_fraction: 0.0,
            },
        }
    }
}

/// A value generator plus the fraction of NULLs it yields.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnGen {
    pub kind: Gen,
    /// 0.0..=1.0
    pub null_fraction: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntDist {
    Uniform,
    /// Zipf over [min, max] with exponent `s` (1.0 by default): min is the
    /// hottest value.
    Zipf,
}

/// Value generators. Every one is deterministic given the RNG it is handed.
#[derive(Debug, Clone, PartialEq)]
pub enum Gen {
    /// start, start+1, ... (the row number, 0-based, plus `start`).
    Sequence {
        start: i64,
    },
    Int {
        min: i64,
        max: i64,
        dist: IntDist,
        /// Zipf exponent; ignored for uniform.
        s: f64,
    },
    Float {
        min: f64,
        max: f64,
    },
    /// Random alphanumeric text, length in [min_len, max_len].
    Text {
        min_len: u32,
        max_len: u32,
    },
    /// Space-separated words from a fixed built-in list, count in [min, max].
    Words {
        min: u32,
        max: u32,
    },
    /// One of `values`, chosen by `weights` (same length, all > 0 sum).
    Choice {
        values: Vec<String>,
        weights: Vec<u32>,
    },
    Bool {
        p_true: f64,
    },
    /// Microseconds since the Unix epoch, uniform in [from, to].
    Timestamp {
        from_us: i64,
        to_us: i64,
    },
    Uuid,
    /// A small JSON object with `keys` integer-valued keys.
    Json {
        keys: u32,
    },
    /// A key of another table: uniform in [1, rows of that table]. The row
    /// count is resolved after --rows/--scale, so the range follows scaling.
    ForeignKey {
        table: String,
        rows: u64,
    },
    /// The same text every time (cast by Postgres to the column type).
    Constant {
        value: String,
    },
    /// Numbers or timestamps along a shape: `bounds` are the edges of
    /// equally likely buckets, uniform inside each (an equi-depth histogram,
    /// as in pg_stats.histogram_bounds); two bounds are a plain [min, max].
    /// `int`/`float`/`timestamp` with `bounds` or `distinct`.
    Histogram {
        scale: Scale,
        /// At least two, ascending.
        bounds: Vec<f64>,
        distinct: Option<Distinct>,
    },
    /// Random text from a fixed set of `distinct` values (`text` with
    /// `distinct`).
    TextSet {
        min_len: u32,
        max_len: u32,
        distinct: Distinct,
    },
    /// `fk` with `weights`: key `i + 1` with `weights[i]` (the hottest
    /// parents), or, with weight `rest_weight`, a key of `rest` (the other
    /// keys). Keys are integers, so a uuid key becomes the uuid `sequence`
    /// gives the same integer.
    WeightedKeys {
        weights: Vec<u32>,
        rest: Box<Gen>,
        rest_weight: u32,
    },
    /// `choice` with a `rest`: one of `values` by `weights`, or, with weight
    /// `rest_weight`, a value of the `rest` generator (the most common values
    /// of a column plus the rest of its distribution).
    ChoiceRest {
        values: Vec<String>,
        weights: Vec<u32>,
        rest: Box<Gen>,
        rest_weight: u32,
    },
    /// `fk` with `column`: the value column `column` of table `table` holds
    /// in the parent row `draw` picks (a key 1..=rows, as `fk` draws it).
    /// The columns of a key of several columns each take theirs from one
    /// drawn row (they share a [`Gen::Addressed`] key), so together they
    /// name a row the parent has; a table with two keys into one parent
    /// names each (`key`). `parent` is that column's generator,
    /// addressed, once the scenario is linked (gen_link.rs).
    ParentColumn {
        table: String,
        column: String,
        /// The foreign key it is part of (`key`): the copies of one parent
        /// table with the same key (or none) draw one row together.
        key: Option<String>,
        draw: Box<Gen>,
        parent: Option<Box<ColumnGen>>,
    },
    /// `inner` (its NULLs included) drawn for row r from a random stream of
    /// its own, keyed by (seed, `key`, r), not from the chunk's stream: so
    /// the value of any row can be computed on its own, by another table
    /// that references it, or by every column of a key that must agree on
    /// one drawn parent row.
    Addressed {
        key: RowKey,
        inner: Box<Gen>,
    },
}

impl Gen {
    /// The table whose keys this generator draws, where it names one.
    pub fn references(&self) -> Option<&str> {
        match self {
            Gen::ForeignKey { table, .. } | Gen::ParentColumn { table, .. } => Some(table),
            Gen::Addressed { inner, .. } => inner.references(),
            _ => None,
        }
    }
}

/// Which values an [`Gen::Addressed`] generator draws: a table (by its
/// place in the scenario, or a query's, offset past the tables) and a
/// column (its place among the table's generators).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowKey {
    pub table: usize,
    pub stream: usize,
}

/// What a [`Gen::Histogram`] yields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Rounded to the nearest integer.
    Int,
    Float,
    /// Microseconds since the Unix epoch.
    Timestamp,
}

/// How many different values a generator draws from. Row `r` takes value
/// number `r mod n` (shuffled), so a table with at least `n` rows holds
/// exactly `n` distinct values, each as often as the others.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Distinct {
    Count(u64),
    /// A share of the table's rows (`distinct = "50%"`), resolved to a
    /// count once the table's rows are known (after --rows / --scale); a
    /// query parameter cannot have one.
    Share(f64),
}

#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadPlan {
    /// Connections per app version.
    pub clients: u32,
    /// Total intended queries/s across apps (open loop); None = closed loop.
    pub rate: Option<f64>,
    pub before: Duration,
    pub after: Duration,
    /// Width of a latency window (100 ms by default).
    pub window: Duration,
    /// statement_timeout for app queries, if any.
    pub query_timeout: Option<Duration>,
    pub queries: Vec<QueryPlan>,
    pub scripts: Vec<ScriptPlan>,
}

impl WorkloadPlan {
    /// No traffic: one client, no queries, no time before or after.
    pub fn idle() -> WorkloadPlan {
        WorkloadPlan {
            clients: 1,
            rate: None,
            before: Duration::ZERO,
            after: Duration::ZERO,
            window: Duration::from_millis(100),
            query_timeout: None,
            queries: Vec::new(),
            scripts: Vec::new(),
        }
    }

    /// Every app version any query names, in first-seen order.
    pub fn apps(&self) -> Vec<String> {
        let mut apps: Vec<String> = Vec::new();
        for q in &self.queries {
            for a in &q.apps {
                if !apps.contains(a) {
                    apps.push(a.clone());
                }
            }
        }
        apps
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct QueryPlan {
    pub name: String,
    pub weight: u32,
    /// App versions that send it (resolved: never empty).
    pub apps: Vec<String>,
    pub sql: String,
    /// One generator per `$n` placeholder, in order.
    pub params: Vec<ColumnGen>,
}

/// A one-off session at a set time since traffic started.
#[derive(Debug, Clone, PartialEq)]
pub struct ScriptPlan {
    pub name: String,
    pub at: Duration,
    pub sql: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PhasePlan {
    pub name: String,
    /// App versions live during this phase (never empty).
    pub apps: Vec<String>,
    pub steps: Vec<StepPlan>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StepPlan {
    pub name: String,
    pub action: StepAction,
    /// Run the statements in one transaction (default) or each on its own
    /// (required for CONCURRENTLY). For a [`StepAction::File`]: whether
    /// every segment is a transaction (what run.json says).
    pub transaction: bool,
    pub lock_timeout: Option<Duration>,
    pub statement_timeout: Option<Duration>,
    /// Retries after a lock timeout (55P03), with exponential backoff + jitter.
    pub retries: u32,
    /// First backoff; doubled each retry.
    pub retry_backoff: Duration,
    /// Pause after the step, traffic still running.
    pub pause_after: Duration,
    /// SQLSTATEs the step is expected to fail with (`expect_error`); empty:
    /// it must succeed. A step that fails with one of them is rolled back
    /// and the migration goes on; one that succeeds fails the rehearsal.
    pub expect_error: Vec<String>,
    /// An inline `sql` step's statements (as [`StepAction::Sql`] has them)
    /// with where each is written in the scenario file: a server error in
    /// one names `scenario.toml:line:column`. Empty for other steps, and
    /// for a scenario built in code.
    pub sql_at: Vec<crate::migrations::Statement>,
}

impl StepPlan {
    /// A step with no options of its own: no timeouts, no retries (100 ms
    /// backoff if it had some), no pause after, no expected error.
    pub fn plain(name: String, action: StepAction, transaction: bool) -> StepPlan {
        StepPlan {
            name,
            action,
            transaction,
            lock_timeout: None,
            statement_timeout: None,
            retries: 0,
            retry_backoff: Duration::from_millis(100),
            pause_after: Duration::ZERO,
            expect_error: Vec::new(),
            sql_at: Vec::new(),
        }
    }

    /// Is a failure with `sqlstate` what this step expects?
    pub fn expects(&self, sqlstate: &str) -> bool {
        self.expect_error.iter().any(|c| c == sqlstate)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum StepAction {
    /// Statements, already split by [`crate::sql::split`], run as the
    /// step's `transaction` says.
    Sql(Vec<String>),
    /// A SQL file — a rehearsed migration, or a step's `file = ...` — run
    /// segment by segment, each the way its tool runs it; every statement
    /// knows its file and line.
    File(MigrationFile),
    Backfill(BackfillPlan),
}

/// `UPDATE table SET <set> WHERE key > lo AND key <= hi [AND (<where>)]`, one
/// transaction per batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BackfillPlan {
    pub table: String,
    pub key: String,
    pub batch: u64,
    pub pause: Duration,
    pub set: String,
    pub where_clause: Option<String>,
}

/// Limits that fail the run (exit 1) when breached. None = not checked.
/// run.json has every key (null: not checked): a key deleted from it is a
/// damaged directory, not a budget that went unchecked.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Budget {
    /// Longest hold of a migration lock that blocks app reads or writes.
    #[serde(deserialize_with = "crate::record::required")]
    pub max_blocking_lock_ms: Option<f64>,
    /// Longest lock wait of any app query.
    #[serde(deserialize_with = "crate::record::required")]
    pub max_app_wait_ms: Option<f64>,
    /// App p99 latency while the migration runs.
    #[serde(deserialize_with = "crate::record::required")]
    pub p99_ms: Option<f64>,
    #[serde(deserialize_with = "crate::record::required")]
    pub max_errors: Option<u64>,
    /// Errors / requests while the migration runs, 0.0..=1.0.
    #[serde(deserialize_with = "crate::record::required")]
    pub max_error_rate: Option<f64>,
    /// Total migration duration.
    #[serde(deserialize_with = "crate::record::required")]
    pub max_duration_ms: Option<f64>,
    /// Indexes left INVALID at the end (a failed CREATE INDEX CONCURRENTLY).
    #[serde(deserialize_with = "crate::record::required")]
    pub max_invalid_indexes: Option<u64>,
    /// Longest time after a step ended until the app's p99 came back within
    /// 1.5× its p99 before the migration, at least 10 ms above it (a step not recovered by the end
    /// of the run breaches it).
    #[serde(deserialize_with = "crate::record::required")]
    pub max_recovery_ms: Option<f64>,
    /// Peak replay lag of the streaming replica (needs a replica).
    #[serde(deserialize_with = "crate::record::required")]
    pub max_replica_lag_ms: Option<f64>,
}
