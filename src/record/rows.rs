//! One struct per CSV row of the run directory (reports/README.md), and
//! the `unknown` column's reasons.

use serde::{Deserialize, Serialize};

/// statements.csv: one executed statement (each attempt of each statement).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StatementRow {
    pub phase: String,
    pub step: String,
    pub attempt: u32,
    pub sql: String,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub start_ms: f64,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub end_ms: f64,
    #[serde(deserialize_with = "super::bounded_ms")]
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
    /// The relations those scans were of (`; `-separated, most scanned
    /// first); empty with no scan, where unknown, and in run directories
    /// written before this column.
    #[serde(default)]
    pub scanned: String,
}

/// A step's figures over its statements (every attempt): each known, or
/// `None` with its reason handed to the caller's `unknown(field, why)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StatementTotals {
    pub seq_scans: Option<u64>,
    pub wal_bytes: Option<u64>,
    pub cluster_wal_bytes: Option<u64>,
    pub rewrote: Option<bool>,
}

impl StatementTotals {
    pub fn of(rows: &[&StatementRow], mut unknown: impl FnMut(&str, String)) -> StatementTotals {
        let mut sum = |field: &str, get: fn(&StatementRow) -> Option<u64>| {
            sum_known(rows, field, get)
                .map_err(|why| unknown(field, why))
                .ok()
        };
        let seq_scans = sum("seq_scans", |s| s.seq_scans);
        let wal_bytes = sum("wal_bytes", |s| s.wal_bytes);
        let cluster_wal_bytes = sum("cluster_wal_bytes", |s| s.cluster_wal_bytes);
        let rewrote = any_rewrote(rows)
            .map_err(|why| unknown("rewrote", why))
            .ok();
        StatementTotals {
            seq_scans,
            wal_bytes,
            cluster_wal_bytes,
            rewrote,
        }
    }
}

/// A figure summed over statements: Err(why) when any statement's is
/// unknown — a partial sum would understate it.
fn sum_known(
    rows: &[&StatementRow],
    field: &str,
    get: fn(&StatementRow) -> Option<u64>,
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
fn any_rewrote(rows: &[&StatementRow]) -> std::result::Result<bool, String> {
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

/// What an app can no longer do while a lock is held, from the conflict
/// matrix; for a lock of no table (an advisory lock), from what the app
/// was seen to wait for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
pub enum Blocks {
    #[serde(rename = "none")]
    None,
    /// An advisory lock app sessions waited for: they take the same key.
    #[serde(rename = "sessions")]
    Sessions,
    #[serde(rename = "writes")]
    Writes,
    #[serde(rename = "reads+writes")]
    ReadsWrites,
}

impl std::fmt::Display for Blocks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Blocks::None => "none",
            Blocks::Sessions => "sessions",
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
    #[serde(deserialize_with = "super::bounded_ms")]
    pub requested_ms: f64,
    #[serde(deserialize_with = "super::opt_bounded_ms")]
    pub granted_ms: Option<f64>,
    #[serde(deserialize_with = "super::opt_bounded_ms")]
    pub released_ms: Option<f64>,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub wait_ms: f64,
    /// Empty for a lock never granted (`source` `wait`).
    #[serde(deserialize_with = "super::opt_bounded_ms")]
    pub held_ms: Option<f64>,
    pub blocks: Blocks,
    /// Where the row comes from: `probe` (the migration session listed its
    /// own locks after the statement, inside a transaction), `poll` (the
    /// migration's backend polled every millisecond while a statement ran
    /// outside a transaction), `wait` (only seen waiting, never granted).
    #[serde(default)]
    pub source: String,
    /// For a lock on an index: the table the index is on (empty otherwise,
    /// and in run directories written before this column).
    #[serde(default)]
    pub table: String,
    /// For a lock the migration waited for: who held it up, as the wait
    /// poller saw (`app VERSION`, `script NAME`, `another session (pid
    /// N)`, joined by `; `); empty when it did not wait, no poll saw it
    /// blocked, and in run directories written before this column.
    #[serde(default)]
    pub blocked_by: String,
}

/// steps.csv: one executed step, with the footprint it left on the
/// scenario's tables (summed over them), read at its boundaries.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepRow {
    pub phase: String,
    pub step: String,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub start_ms: f64,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub end_ms: f64,
    /// ok | error | lock_timeout | statement_timeout | cancelled
    pub outcome: String,
    /// A statement of the step rewrote a table.
    pub rewrote: Option<bool>,
    /// Heap + TOAST + free space and visibility maps, before / after (a
    /// partitioned table's: its partitions').
    pub table_bytes_before: Option<u64>,
    pub table_bytes_after: Option<u64>,
    /// Every index of the scenario's tables (a partitioned table's
    /// partitions' included), before / after.
    pub index_bytes_before: Option<u64>,
    pub index_bytes_after: Option<u64>,
    /// n_dead_tup summed over the scenario's tables (a partitioned one's
    /// partitions) after the step.
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
    #[serde(deserialize_with = "super::bounded_ms")]
    pub start_ms: f64,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub end_ms: f64,
    #[serde(deserialize_with = "super::bounded_ms")]
    pub wait_ms: f64,
    /// Blocking pids, space-separated; the migration's pid is marked `m:PID`.
    pub blocked_by: String,
    pub cause: WaitCause,
    /// pg_locks' locktype of the lock waited for: `relation`, or `tuple`
    /// and `transactionid` for a row another transaction locked (their
    /// `relation` is the table the row is in). Empty in run directories
    /// written before it was recorded.
    #[serde(default)]
    pub locktype: String,
}

impl WaitRow {
    /// "ExclusiveLock on t", "ShareLock on a row of t (transactionid)".
    pub fn lock(&self) -> String {
        match self.locktype.as_str() {
            "" | "relation" => format!("{} on {}", self.mode, self.relation),
            "tuple" | "transactionid" => format!(
                "{} on a row of {} ({})",
                self.mode, self.relation, self.locktype
            ),
            other => format!("{} on {} ({other})", self.mode, self.relation),
        }
    }
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
    #[serde(deserialize_with = "super::opt_bounded_ms")]
    pub oldest_ms: Option<f64>,
}

/// errors.csv: one app error.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorRow {
    #[serde(deserialize_with = "super::bounded_ms")]
    pub t_ms: f64,
    pub query: String,
    pub app: String,
    pub sqlstate: String,
    pub message: String,
    /// When the failed request was due (its intended start; the send in
    /// closed loop): the span its error counts in, as latency.hdr's
    /// segments count it. None in run directories written before it was
    /// recorded (the column is absent there).
    #[serde(default)]
    pub due_ms: Option<f64>,
}

impl ErrorRow {
    /// When the failed request was due: the span its error counts in (as
    /// latency.hdr's segments count it); when it completed in a run
    /// directory written before `due_ms` was recorded.
    pub fn due(&self) -> f64 {
        self.due_ms.unwrap_or(self.t_ms)
    }
}

/// server.csv: one sample of server-wide figures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServerRow {
    #[serde(deserialize_with = "super::bounded_ms")]
    pub t_ms: f64,
    /// WAL written since run start.
    pub wal_bytes: u64,
    /// n_dead_tup summed over the scenario's tables (a partitioned one's
    /// partitions).
    pub dead_tuples: u64,
    /// pg_total_relation_size summed over the scenario's tables and
    /// materialized views (a partitioned table's partitions).
    pub table_bytes: u64,
    /// Empty when there is no replica.
    pub replica_lag_bytes: Option<u64>,
    /// pg_stat_replication.replay_lag in ms (0 once the replica has
    /// replayed all the primary wrote); empty without a replica, or while
    /// Postgres has no figure yet.
    #[serde(default)]
    #[serde(deserialize_with = "super::opt_bounded_ms")]
    pub replica_lag_ms: Option<f64>,
    pub waiting_backends: u32,
}

#[cfg(test)]
mod wait_row_tests {
    use super::*;

    #[test]
    fn a_row_lock_wait_says_it_is_a_row_not_the_table() {
        let mut w = WaitRow {
            query: "pay".into(),
            app: "v1".into(),
            pid: 7,
            relation: "orders".into(),
            mode: "ShareLock".into(),
            start_ms: 1.0,
            end_ms: 2.0,
            wait_ms: 1.0,
            blocked_by: "m:9".into(),
            cause: WaitCause::Migration,
            locktype: "transactionid".into(),
        };
        assert_eq!(w.lock(), "ShareLock on a row of orders (transactionid)");
        w.locktype = "relation".into();
        assert_eq!(w.lock(), "ShareLock on orders");
        w.locktype = String::new();
        assert_eq!(w.lock(), "ShareLock on orders", "written before locktype");
    }
}
