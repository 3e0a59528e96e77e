//! The run directory contract (reports/README.md, and README.md "Reading a
//! run directory"): one struct per CSV row, the run.json header, and
//! reading/writing them. The report module reads these back, so
//! `pgrehearse report RUN_DIR` needs nothing else.
//!
//! All times are milliseconds since run start on one monotonic clock.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{de::DeserializeOwned, Deserialize, Serialize};

use crate::error::Result;
use crate::latency_hdr::{Entry, HdrWriter, Histograms};

pub const RUN_JSON: &str = "run.json";
pub const STATEMENTS_CSV: &str = "statements.csv";
pub const LOCKS_CSV: &str = "locks.csv";
pub const WAITS_CSV: &str = "waits.csv";
pub const LATENCY_CSV: &str = "latency.csv";
pub const ERRORS_CSV: &str = "errors.csv";
pub const SERVER_CSV: &str = "server.csv";
pub const STEPS_CSV: &str = "steps.csv";
pub const LATENCY_HDR: &str = "latency.hdr";
pub const INFLIGHT_CSV: &str = "inflight.csv";

/// Every file of the record: what even a partial run directory holds.
pub const FILES: &[&str] = &[
    RUN_JSON,
    STATEMENTS_CSV,
    LOCKS_CSV,
    WAITS_CSV,
    LATENCY_CSV,
    ERRORS_CSV,
    SERVER_CSV,
    STEPS_CSV,
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
    /// How long the rehearsal waited for its data: seeding and/or cloning.
    pub seed_ms: f64,
    /// How the rehearsal's database got its data.
    #[serde(default)]
    pub database: Option<DataOrigin>,
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
    /// Where statements.csv / steps.csv `wal_bytes` (the migration's own
    /// WAL) come from, e.g. `pg_stat_statements 1.10 in schema pgrehearse`;
    /// null when they could not be attributed (then `wal_unavailable` says why).
    #[serde(default)]
    pub wal_attribution: Option<String>,
    /// Why the migration's own WAL is unknown in this run (the columns are
    /// empty), e.g. a url target without pg_stat_statements.
    #[serde(default)]
    pub wal_unavailable: Option<String>,
    /// How steps.csv's table and index bytes were read (and how precise they
    /// are), or why they are unknown.
    #[serde(default)]
    pub sizes_method: Option<String>,
    /// The server size asked for, how it was applied, what was derived.
    #[serde(default)]
    pub size: Option<SizeInfo>,
    /// The streaming replica, described (None: there was none).
    #[serde(default)]
    pub replica: Option<String>,
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

/// run.json `size`: the server size a rehearsal asked for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SizeInfo {
    pub cpus: Option<u32>,
    /// "16GB".
    pub memory: Option<String>,
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
    pub overridden_by: Option<String>,
}

/// How a rehearsal's database got its data (run.json `database`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DataOrigin {
    /// `seeded` (in the rehearsal's own database) or `cloned` (a copy of a
    /// template).
    pub how: String,
    /// The template's key (hex sha256), when cloned.
    pub template: Option<String>,
    /// Where the template came from: `seeded` (by this rehearsal),
    /// `earlier` (by an earlier rehearsal of the same invocation), `cache`
    /// (kept by an earlier invocation, `--reuse`).
    pub template_source: Option<String>,
    /// Milliseconds spent seeding for this rehearsal (its database, or the
    /// template it seeded); 0 when it seeded nothing.
    pub seed_ms: f64,
    /// Milliseconds cloning the template, when cloned.
    pub clone_ms: Option<f64>,
    /// The clone's CREATE DATABASE strategy: `file_copy`, `wal_log` or
    /// `default`.
    pub clone_strategy: Option<String>,
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
    /// None (an empty cell): unknown, and `unknown` says why.
    pub rewrote: Option<bool>,
    /// Sequential scans of the scenario's tables the statement made
    /// (pg_stat_get_xact_numscans, inside a transaction only).
    pub seq_scans: Option<u64>,
    /// WAL the statement itself wrote (pg_stat_statements), never app WAL.
    pub wal_bytes: Option<u64>,
    /// WAL the whole cluster wrote while the statement ran (app included).
    #[serde(default)]
    pub cluster_wal_bytes: Option<u64>,
    /// Why a figure is empty: `field: reason`, `; `-separated.
    #[serde(default)]
    pub unknown: String,
    /// The file the statement is in (a migration, or a step's `file`),
    /// as the scenario resolved it; empty for inline SQL and backfills.
    #[serde(default)]
    pub file: String,
    /// The line of `file` where its code starts; empty without a file.
    #[serde(default)]
    pub line: Option<u64>,
}

/// A figure summed over statements (every attempt): Err(why) when any
/// statement's is unknown — a partial sum would understate it.
pub fn sum_known<'a>(
    rows: impl IntoIterator<Item = &'a StatementRow>,
    field: &str,
    get: impl Fn(&StatementRow) -> Option<u64>,
) -> std::result::Result<u64, String> {
    let mut total = 0u64;
    for s in rows {
        match get(s) {
            Some(v) => total += v,
            None => return Err(unknown_in(s, field)),
        }
    }
    Ok(total)
}

/// Did any statement rewrite? Unknown when none did and one is unknown.
pub fn any_rewrote<'a>(
    rows: impl IntoIterator<Item = &'a StatementRow>,
) -> std::result::Result<bool, String> {
    let mut unknown = None;
    for s in rows {
        match s.rewrote {
            Some(true) => return Ok(true),
            Some(false) => {}
            None => {
                unknown.get_or_insert_with(|| unknown_in(s, "rewrote"));
            }
        }
    }
    unknown.map_or(Ok(false), Err)
}

/// "unknown for `ALTER TABLE ...`: why".
fn unknown_in(s: &StatementRow, field: &str) -> String {
    let flat = s.sql.split_whitespace().collect::<Vec<_>>().join(" ");
    let clipped = match flat.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &flat[..i]),
        None => flat,
    };
    let why = Unknown::parse(&s.unknown);
    format!(
        "unknown for `{clipped}`: {}",
        why.why(field).unwrap_or("not measured")
    )
}

/// Why each unknown figure of a row is unknown: `field: reason; field: reason`
/// in the record, one pair each here.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unknown(pub Vec<(String, String)>);

impl Unknown {
    /// Say `field` is unknown because of `why` (the first reason wins).
    pub fn add(&mut self, field: &str, why: impl Into<String>) {
        if !self.0.iter().any(|(f, _)| f == field) {
            self.0.push((field.to_string(), why.into()));
        }
    }

    /// Why `field` is unknown, if it is.
    pub fn why(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, w)| w.as_str())
    }

    /// Read the record's `field: reason; ...` text back.
    pub fn parse(s: &str) -> Unknown {
        Unknown(
            s.split("; ")
                .filter_map(|p| p.split_once(": "))
                .map(|(f, w)| (f.trim().to_string(), w.trim().to_string()))
                .collect(),
        )
    }
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            // A reason must not break the list apart when read back.
            .map(|(k, w)| format!("{k}: {}", w.replace("; ", ", ")))
            .collect();
        f.write_str(&parts.join("; "))
    }
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
    /// Where the row comes from: `probe` (the migration session listed its
    /// own locks after the statement, inside a transaction), `poll` (the
    /// migration's backend polled every millisecond while a statement ran
    /// outside a transaction), `wait` (only seen waiting, never granted).
    #[serde(default)]
    pub source: String,
}

/// steps.csv: one executed step, with the footprint it left on the
/// scenario's tables (summed over them), read at its boundaries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub phase: String,
    pub step: String,
    pub start_ms: f64,
    pub end_ms: f64,
    /// ok | error | lock_timeout | statement_timeout | cancelled
    pub outcome: String,
    /// A statement of the step rewrote a table.
    pub rewrote: Option<bool>,
    /// Heap + TOAST + free space and visibility maps, before / after.
    pub table_bytes_before: Option<u64>,
    pub table_bytes_after: Option<u64>,
    /// Every index of the scenario's tables, before / after.
    pub index_bytes_before: Option<u64>,
    pub index_bytes_after: Option<u64>,
    /// n_dead_tup summed over the scenario's tables after the step.
    pub dead_tuples_after: Option<u64>,
    /// The step's statements' own WAL (every attempt), as in statements.csv.
    pub wal_bytes: Option<u64>,
    /// WAL the cluster wrote while its statements ran (app included).
    pub cluster_wal_bytes: Option<u64>,
    /// Why a figure is empty: `field: reason`, `; `-separated.
    pub unknown: String,
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

/// inflight.csv: one app's connections at the end of one latency window.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InflightRow {
    pub window_start_ms: f64,
    pub window_ms: f64,
    pub app: String,
    /// The app's connections.
    pub connections: u32,
    /// Connections executing a request at the window's end.
    pub busy: u32,
    /// Age at the window's end of the app's oldest request in flight
    /// (queued or executing; from its intended start); empty when none was.
    pub oldest_ms: Option<f64>,
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
    /// pg_stat_replication.replay_lag in ms (0 once the replica has
    /// replayed all the primary wrote); empty without a replica, or while
    /// Postgres has no figure yet.
    #[serde(default)]
    pub replica_lag_ms: Option<f64>,
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
    /// latency.hdr: segment histograms and per-window figures.
    pub histograms: Histograms,
    pub inflight: Vec<InflightRow>,
    pub errors: Vec<ErrorRow>,
    pub server: Vec<ServerRow>,
    pub steps: Vec<StepRow>,
}

/// The latency files, streamed into the run directory by the recorder as
/// windows close (so a long run's rows are never all in memory):
/// latency.csv, inflight.csv and latency.hdr.
pub struct LatencyFiles {
    latency: csv::Writer<File>,
    inflight: csv::Writer<File>,
    hdr: HdrWriter<BufWriter<File>>,
}

impl LatencyFiles {
    /// Create the three files in `dir`, headers written; the run started at
    /// `started` (latency.hdr's base time).
    pub fn create(dir: &Path, started: SystemTime) -> Result<LatencyFiles> {
        fn csv_with_header<T: serde::de::DeserializeOwned>(
            path: &Path,
        ) -> Result<csv::Writer<File>> {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_path(path)
                .map_err(anyhow::Error::new)?;
            w.write_record(header::<T>()).map_err(anyhow::Error::new)?;
            Ok(w)
        }
        Ok(LatencyFiles {
            latency: csv_with_header::<LatencyRow>(&dir.join(LATENCY_CSV))?,
            inflight: csv_with_header::<InflightRow>(&dir.join(INFLIGHT_CSV))?,
            hdr: HdrWriter::new(
                BufWriter::new(File::create(dir.join(LATENCY_HDR))?),
                started,
            )?,
        })
    }

    pub fn latency_row(&mut self, r: &LatencyRow) -> Result<()> {
        self.latency.serialize(r).map_err(anyhow::Error::new)?;
        Ok(())
    }

    pub fn inflight_row(&mut self, r: &InflightRow) -> Result<()> {
        self.inflight.serialize(r).map_err(anyhow::Error::new)?;
        Ok(())
    }

    pub fn histogram(&mut self, e: &Entry) -> Result<()> {
        Ok(self.hdr.write(e)?)
    }

    /// Flush everything to disk.
    pub fn finish(mut self) -> Result<()> {
        self.latency.flush()?;
        self.inflight.flush()?;
        self.hdr.flush()?;
        Ok(())
    }
}

/// `<out>/<scenario>/<UTC timestamp>/`, created; a numeric suffix avoids
/// clobbering a run that started in the same second.
pub fn create_run_dir(out: &Path, scenario: &str) -> Result<PathBuf> {
    create_stamped_dir(out, scenario, "")
}

/// `<out>/<scenario>/<prefix><UTC timestamp>/`, created, beside the
/// scenario's run directories (e.g. `versions-20260101T120000Z`).
pub fn create_stamped_dir(out: &Path, scenario: &str, prefix: &str) -> Result<PathBuf> {
    let stamp = format!("{prefix}{}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
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
    /// for empty tables so readers can rely on the columns. The latency
    /// files the recorder streamed ([`LatencyFiles`]) are left as they are
    /// when this record has no rows of its own for them.
    pub fn write(&self, dir: &Path) -> Result<()> {
        if let Some(info) = &self.info {
            let json = serde_json::to_string_pretty(info).map_err(anyhow::Error::new)?;
            std::fs::write(dir.join(RUN_JSON), json + "\n")?;
        }
        write_csv_with_header::<StatementRow>(&dir.join(STATEMENTS_CSV), &self.statements)?;
        write_csv_with_header::<LockRow>(&dir.join(LOCKS_CSV), &self.locks)?;
        write_csv_with_header::<WaitRow>(&dir.join(WAITS_CSV), &self.waits)?;
        for (file, empty) in [
            (LATENCY_CSV, self.latency.is_empty()),
            (INFLIGHT_CSV, self.inflight.is_empty()),
        ] {
            if empty && dir.join(file).exists() {
                continue;
            }
            match file {
                LATENCY_CSV => write_csv_with_header(&dir.join(file), &self.latency)?,
                _ => write_csv_with_header(&dir.join(file), &self.inflight)?,
            }
        }
        write_csv_with_header::<ErrorRow>(&dir.join(ERRORS_CSV), &self.errors)?;
        write_csv_with_header::<ServerRow>(&dir.join(SERVER_CSV), &self.server)?;
        write_csv_with_header::<StepRow>(&dir.join(STEPS_CSV), &self.steps)?;
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
        let latency: Vec<LatencyRow> = opt(dir.join(LATENCY_CSV))?;
        let hdr = dir.join(LATENCY_HDR);
        let histograms = match File::open(&hdr) {
            Ok(f) => crate::latency_hdr::load(std::io::BufReader::new(f))
                .map_err(|e| anyhow::anyhow!("{}: {e}", hdr.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && latency.is_empty() => {
                Histograms::default()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(crate::error::Error::Usage(format!(
                    "{}: missing, but {LATENCY_CSV} has rows: percentiles over a span are merged from its histograms (this run directory was written by an older pgrehearse; rehearse again)",
                    hdr.display()
                )))
            }
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", hdr.display()).into()),
        };
        Ok(RunRecord {
            info,
            statements: opt(dir.join(STATEMENTS_CSV))?,
            locks: opt(dir.join(LOCKS_CSV))?,
            waits: opt(dir.join(WAITS_CSV))?,
            latency,
            histograms,
            inflight: opt(dir.join(INFLIGHT_CSV))?,
            errors: opt(dir.join(ERRORS_CSV))?,
            server: opt(dir.join(SERVER_CSV))?,
            steps: opt(dir.join(STEPS_CSV))?,
        })
    }
}

/// csv's serializer only writes a header with the first row; an empty table
/// still needs one. Column names come from the struct's field names.
fn write_csv_with_header<T: Serialize + serde::de::DeserializeOwned>(
    path: &Path,
    rows: &[T],
) -> Result<()> {
    if rows.is_empty() {
        std::fs::write(path, header::<T>().join(",") + "\n")?;
        Ok(())
    } else {
        write_csv(path, rows)
    }
}

/// A CSV file's columns: the field names a struct's `Deserialize` asks for: serde hands them to
/// `deserialize_struct`, where this deserializer keeps them and stops. One
/// list of columns (the struct), never a second to keep in step.
fn header<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::{self, Deserializer, Visitor};

    struct Fields(Option<&'static [&'static str]>);
    #[derive(Debug)]
    struct Stop;
    impl std::fmt::Display for Stop {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("field names read")
        }
    }
    impl std::error::Error for Stop {}
    impl de::Error for Stop {
        fn custom<M: std::fmt::Display>(_: M) -> Self {
            Stop
        }
    }
    impl<'de> Deserializer<'de> for &mut Fields {
        type Error = Stop;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
            Err(Stop)
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Stop> {
            self.0 = Some(fields);
            Err(Stop)
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields = Fields(None);
    let _ = T::deserialize(&mut fields);
    fields.0.unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_reasons_read_back_as_written() {
        let mut u = Unknown::default();
        u.add("seq_scans", "counted only inside a transaction");
        u.add("wal_bytes", "the probe failed: permission denied; hint: x");
        u.add("seq_scans", "a second reason is not kept");
        let text = u.to_string();
        assert_eq!(
            text,
            "seq_scans: counted only inside a transaction; wal_bytes: the probe failed: permission denied, hint: x"
        );
        let back = Unknown::parse(&text);
        assert_eq!(
            back.why("seq_scans"),
            Some("counted only inside a transaction")
        );
        assert_eq!(
            back.why("wal_bytes"),
            Some("the probe failed: permission denied, hint: x")
        );
        assert_eq!(back.why("rewrote"), None);
        assert_eq!(Unknown::parse(""), Unknown::default());
    }

    #[test]
    fn unknown_figures_are_empty_cells() {
        let dir = tempfile::tempdir().unwrap();
        let row = StatementRow {
            phase: "p".into(),
            step: "s".into(),
            attempt: 1,
            sql: "CREATE INDEX CONCURRENTLY i ON t (c)".into(),
            start_ms: 1.0,
            end_ms: 2.0,
            duration_ms: 1.0,
            outcome: "ok".into(),
            sqlstate: String::new(),
            rewrote: Some(false),
            seq_scans: None,
            wal_bytes: None,
            cluster_wal_bytes: Some(4096),
            unknown:
                "seq_scans: counted only inside a transaction; wal_bytes: no pg_stat_statements"
                    .into(),
            file: String::new(),
            line: None,
        };
        let path = dir.path().join(STATEMENTS_CSV);
        write_csv(&path, std::slice::from_ref(&row)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(",ok,,false,,,4096,"), "{text}");
        let back: Vec<StatementRow> = read_csv(&path).unwrap();
        assert_eq!(back, [row]);
        // An empty file has the header a row brings with it.
        let first_line = text.lines().next().unwrap();
        assert_eq!(header::<StatementRow>().join(","), first_line);
        let empty = dir.path().join("empty.csv");
        write_csv_with_header::<StatementRow>(&empty, &[]).unwrap();
        assert_eq!(
            std::fs::read_to_string(&empty).unwrap(),
            format!("{first_line}\n")
        );
        assert_eq!(
            header::<ErrorRow>(),
            ["t_ms", "query", "app", "sqlstate", "message"]
        );
    }
}
