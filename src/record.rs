//! The run directory contract (reports/README.md, and README.md "Reading a
//! run directory"): one struct per CSV row, the run.json header, and
//! reading/writing them. The report module reads these back, so
//! `pgrehearse report RUN_DIR` needs nothing else.
//!
//! All times are milliseconds since run start on one monotonic clock.

use std::path::{Path, PathBuf};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::Result;

pub const RUN_JSON: &str = "run.json";
pub const STATEMENTS_CSV: &str = "statements.csv";
pub const LOCKS_CSV: &str = "locks.csv";
pub const WAITS_CSV: &str = "waits.csv";
pub const LATENCY_CSV: &str = "latency.csv";
pub const ERRORS_CSV: &str = "errors.csv";
pub const SERVER_CSV: &str = "server.csv";

/// Every file of the record: what even a partial run directory holds.
pub const FILES: &[&str] = &[
    RUN_JSON,
    STATEMENTS_CSV,
    LOCKS_CSV,
    WAITS_CSV,
    LATENCY_CSV,
    ERRORS_CSV,
    SERVER_CSV,
];

/// run.json: what was rehearsed, where and how.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    pub scenario: String,
    pub scenario_file: String,
    pub scenario_hash: String,
    pub description: Option<String>,
    pub pair: Option<String>,
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
    pub seed_ms: f64,
    pub clients: u32,
    pub rate: Option<f64>,
    pub window_ms: f64,
    /// Phases in order with their live app versions and time span.
    pub phases: Vec<PhaseSpan>,
    /// Budget from the scenario merged with --budget flags.
    pub budget: crate::scenario::Budget,
    /// How precisely lock grant/release times are known (ms), as measured
    /// (poll interval, clock offset uncertainty).
    pub lock_precision_ms: f64,
    /// Set when the rehearsal did not finish: what went wrong.
    pub failure: Option<String>,
    pub end_ms: f64,
    /// Every step as executed, with its settings and outcome.
    #[serde(default)]
    pub steps: Vec<StepInfo>,
    /// Indexes left invalid at the end (a failed CONCURRENTLY build).
    #[serde(default)]
    pub invalid_indexes: Vec<String>,
    /// The scenario's `[migrations]`: what built the schema at setup (and
    /// how long it took), what was rehearsed. Null without `[migrations]`.
    #[serde(default)]
    pub migrations: Option<MigrationsInfo>,
}

/// run.json `migrations`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MigrationsInfo {
    /// The directory, as resolved from the scenario file.
    pub dir: String,
    /// flyway | golang-migrate | dbmate | sqitch | prisma | plain
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
}

/// One migration applied at setup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SetupFile {
    pub file: String,
    pub statements: usize,
    /// How long it took; null when it did not run.
    pub ms: Option<f64>,
    /// ok | error | not run
    pub outcome: String,
}

/// One executed step: its span, its settings and how it ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepInfo {
    pub phase: String,
    pub step: String,
    pub start_ms: f64,
    pub end_ms: f64,
    pub transaction: bool,
    pub lock_timeout_ms: Option<f64>,
    pub statement_timeout_ms: Option<f64>,
    pub retries: u32,
    /// Attempts made (for a backfill: batches plus retries).
    pub attempts: u32,
    pub backfill: bool,
    /// ok | error | lock_timeout | statement_timeout | cancelled
    pub outcome: String,
    /// The SQL file the step ran (a rehearsed migration, or a step's
    /// `file`); null for inline SQL and backfills.
    #[serde(default)]
    pub file: Option<String>,
    /// A file step's segments in order, each run in one transaction or
    /// statement by statement (`transaction` above is true when all are
    /// transactions); empty for other steps.
    #[serde(default)]
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
    pub start_ms: f64,
    pub end_ms: f64,
}

/// statements.csv: one executed statement (each attempt of each statement).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatementRow {
    pub phase: String,
    pub step: String,
    pub attempt: u32,
    pub sql: String,
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
    /// ok | error | lock_timeout | statement_timeout | cancelled
    pub outcome: String,
    pub sqlstate: String,
    /// Did the statement give a relation a new relfilenode (a rewrite)?
    pub rewrote: bool,
    /// Sequential scans the statement's transaction made (pg_stat_xact_*).
    pub seq_scans: u64,
    /// Cluster WAL written while the statement ran (includes app traffic).
    pub wal_bytes: u64,
    /// The file the statement is in (a migration, or a step's `file`),
    /// as the scenario resolved it; empty for inline SQL and backfills.
    #[serde(default)]
    pub file: String,
    /// The line of `file` where its code starts; empty without a file.
    #[serde(default)]
    pub line: Option<u64>,
}

/// What an app can no longer do while a lock is held, from the conflict matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Blocks {
    #[serde(rename = "none")]
    None,
    #[serde(rename = "writes")]
    Writes,
    #[serde(rename = "reads+writes")]
    ReadsWrites,
}

impl std::fmt::Display for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Blocks::None => "none",
            Blocks::Writes => "writes",
            Blocks::ReadsWrites => "reads+writes",
        })
    }
}

/// locks.csv: one lock the migration held.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockRow {
    pub phase: String,
    pub step: String,
    pub relation: String,
    /// relation | transactionid | virtualxid | object | ...
    pub locktype: String,
    /// AccessExclusiveLock, ShareLock, ...
    pub mode: String,
    pub requested_ms: f64,
    pub granted_ms: Option<f64>,
    pub released_ms: Option<f64>,
    pub wait_ms: f64,
    pub held_ms: f64,
    pub blocks: Blocks,
}

/// waits.csv: one lock wait of an app query.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitRow {
    pub query: String,
    pub app: String,
    pub pid: i32,
    pub relation: String,
    pub mode: String,
    pub start_ms: f64,
    pub end_ms: f64,
    pub wait_ms: f64,
    /// Blocking pids, space-separated; the migration's pid is marked `m:PID`.
    pub blocked_by: String,
    pub cause: WaitCause,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WaitCause {
    /// The migration holds the conflicting lock.
    #[serde(rename = "migration")]
    Migration,
    /// Stuck in the lock queue behind the migration's pending request.
    #[serde(rename = "queued-behind-migration")]
    QueuedBehindMigration,
    /// Blocked by another app session.
    #[serde(rename = "app")]
    App,
}

impl std::fmt::Display for WaitCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            WaitCause::Migration => "migration",
            WaitCause::QueuedBehindMigration => "queued-behind-migration",
            WaitCause::App => "app",
        })
    }
}

/// latency.csv: one time window × query × app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LatencyRow {
    pub window_start_ms: f64,
    pub window_ms: f64,
    pub query: String,
    pub app: String,
    /// Requests completed in the window (errors included).
    pub count: u64,
    pub errors: u64,
    /// Latency = completion − intended start (open loop), microseconds.
    pub p50_us: u64,
    pub p95_us: u64,
    pub p99_us: u64,
    pub max_us: u64,
    /// Service time = completion − actual send, microseconds.
    pub service_p50_us: u64,
    pub service_p99_us: u64,
}

/// errors.csv: one app error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorRow {
    pub t_ms: f64,
    pub query: String,
    pub app: String,
    pub sqlstate: String,
    pub message: String,
}

/// server.csv: one sample of server-wide figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerRow {
    pub t_ms: f64,
    /// WAL written since run start.
    pub wal_bytes: u64,
    /// n_dead_tup summed over the scenario's tables.
    pub dead_tuples: u64,
    /// pg_total_relation_size summed over the scenario's tables.
    pub table_bytes: u64,
    /// Empty when there is no replica.
    pub replica_lag_bytes: Option<u64>,
    pub waiting_backends: u32,
}

/// Everything one rehearsal recorded.
#[derive(Debug, Clone, Default)]
pub struct RunRecord {
    pub info: Option<RunInfo>,
    pub statements: Vec<StatementRow>,
    pub locks: Vec<LockRow>,
    pub waits: Vec<WaitRow>,
    pub latency: Vec<LatencyRow>,
    pub errors: Vec<ErrorRow>,
    pub server: Vec<ServerRow>,
}

/// `<out>/<scenario>/<UTC timestamp>/`, created; a numeric suffix avoids
/// clobbering a run that started in the same second.
pub fn create_run_dir(out: &Path, scenario: &str) -> Result<PathBuf> {
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
    let base = out.join(sanitize(scenario));
    std::fs::create_dir_all(&base)?;
    let mut dir = base.join(&stamp);
    let mut n = 1;
    while dir.exists() {
        n += 1;
        dir = base.join(format!("{stamp}-{n}"));
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// `name` as a folder name: anything but `[A-Za-z0-9._-]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

pub fn write_csv<T: Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut w = csv::Writer::from_path(path).map_err(anyhow::Error::new)?;
    for r in rows {
        w.serialize(r).map_err(anyhow::Error::new)?;
    }
    w.flush()?;
    Ok(())
}

pub fn read_csv<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let mut r = csv::Reader::from_path(path)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
    let mut rows = Vec::new();
    for row in r.deserialize() {
        rows.push(row.map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?);
    }
    Ok(rows)
}

impl RunRecord {
    /// Write run.json and every CSV into `dir`. Header rows are written even
    /// for empty tables so readers can rely on the columns.
    pub fn write(&self, dir: &Path) -> Result<()> {
        if let Some(info) = &self.info {
            let json = serde_json::to_string_pretty(info).map_err(anyhow::Error::new)?;
            std::fs::write(dir.join(RUN_JSON), json + "\n")?;
        }
        write_csv_with_header::<StatementRow>(&dir.join(STATEMENTS_CSV), &self.statements)?;
        write_csv_with_header::<LockRow>(&dir.join(LOCKS_CSV), &self.locks)?;
        write_csv_with_header::<WaitRow>(&dir.join(WAITS_CSV), &self.waits)?;
        write_csv_with_header::<LatencyRow>(&dir.join(LATENCY_CSV), &self.latency)?;
        write_csv_with_header::<ErrorRow>(&dir.join(ERRORS_CSV), &self.errors)?;
        write_csv_with_header::<ServerRow>(&dir.join(SERVER_CSV), &self.server)?;
        Ok(())
    }

    /// Read a run directory back. Missing CSVs read as empty (a partial run).
    pub fn read(dir: &Path) -> Result<RunRecord> {
        let info_path = dir.join(RUN_JSON);
        let info = match std::fs::read_to_string(&info_path) {
            Ok(s) => Some(
                serde_json::from_str(&s)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", info_path.display()))?,
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        fn opt<T: DeserializeOwned>(p: PathBuf) -> Result<Vec<T>> {
            if p.exists() {
                read_csv(&p)
            } else {
                Ok(Vec::new())
            }
        }
        Ok(RunRecord {
            info,
            statements: opt(dir.join(STATEMENTS_CSV))?,
            locks: opt(dir.join(LOCKS_CSV))?,
            waits: opt(dir.join(WAITS_CSV))?,
            latency: opt(dir.join(LATENCY_CSV))?,
            errors: opt(dir.join(ERRORS_CSV))?,
            server: opt(dir.join(SERVER_CSV))?,
        })
    }
}

/// csv's serializer only writes a header with the first row; an empty table
/// still needs one. Column names come from the struct's field names.
fn write_csv_with_header<T: Serialize + HeaderOf>(path: &Path, rows: &[T]) -> Result<()> {
    if rows.is_empty() {
        std::fs::write(path, T::header().join(",") + "\n")?;
        Ok(())
    } else {
        write_csv(path, rows)
    }
}

pub trait HeaderOf {
    fn header() -> &'static [&'static str];
}

macro_rules! header {
    ($t:ty, [$($f:literal),* $(,)?]) => {
        impl HeaderOf for $t {
            fn header() -> &'static [&'static str] { &[$($f),*] }
        }
    };
}

header!(
    StatementRow,
    [
        "phase",
        "step",
        "attempt",
        "sql",
        "start_ms",
        "end_ms",
        "duration_ms",
        "outcome",
        "sqlstate",
        "rewrote",
        "seq_scans",
        "wal_bytes",
        "file",
        "line"
    ]
);
header!(
    LockRow,
    [
        "phase",
        "step",
        "relation",
        "locktype",
        "mode",
        "requested_ms",
        "granted_ms",
        "released_ms",
        "wait_ms",
        "held_ms",
        "blocks"
    ]
);
header!(
    WaitRow,
    [
        "query",
        "app",
        "pid",
        "relation",
        "mode",
        "start_ms",
        "end_ms",
        "wait_ms",
        "blocked_by",
        "cause"
    ]
);
header!(
    LatencyRow,
    [
        "window_start_ms",
        "window_ms",
        "query",
        "app",
        "count",
        "errors",
        "p50_us",
        "p95_us",
        "p99_us",
        "max_us",
        "service_p50_us",
        "service_p99_us"
    ]
);
header!(ErrorRow, ["t_ms", "query", "app", "sqlstate", "message"]);
header!(
    ServerRow,
    [
        "t_ms",
        "wal_bytes",
        "dead_tuples",
        "table_bytes",
        "replica_lag_bytes",
        "waiting_backends"
    ]
);
