//! What the analysis measured, as the reports show it: the run header, the
//! migration's span, per-step facts (locks, holds, the app waits each step
//! caused, latency while it ran), per-phase and per-app figures. Plain data:
//! this file imports nothing else of the analysis but [`LatencyFacts`].

use serde::{Deserialize, Serialize};

use super::latency::LatencyFacts;
use crate::record::{Blocks, LockRow, WaitCause, WaitRow};

/// run.json, reduced to what a reader of the report needs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RunHeader {
    pub scenario: String,
    /// run.json's `pg_version_cell`: the `--pg-version` of this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pg_version_cell: Option<String>,
    pub description: Option<String>,
    pub pair: Option<String>,
    pub variant: Option<String>,
    pub started_at: String,
    pub tool_version: String,
    pub backend: String,
    pub postgres_version: String,
    pub rows: Vec<(String, u64)>,
    pub seed: u64,
    pub clients: u32,
    pub rate: Option<f64>,
    pub window_ms: f64,
    pub lock_precision_ms: f64,
    pub failure: Option<String>,
    pub end_ms: f64,
    /// The server size asked for and how it was applied ("4 CPUs, 16GB:
    /// container limits ..."); None without a size.
    #[serde(default)]
    pub size: Option<String>,
    /// The streaming replica, described; None without one.
    #[serde(default)]
    pub replica: Option<String>,
    /// run.json's `wal_unavailable`: why no statement's own WAL is known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wal_unavailable: Option<String>,
    /// run.json's `warnings`: what differs from what was asked for.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl RunHeader {
    /// The scenario, and the `--pg-version` it ran on when it was one of
    /// several ("orders @ 17"), as the batch lines name it.
    pub fn name(&self) -> String {
        match &self.pg_version_cell {
            Some(v) => format!("{} @ {v}", self.scenario),
            None => self.scenario.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Span {
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
}

/// What one migration step did and what it cost the app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepFacts {
    pub phase: String,
    pub step: String,
    /// Statements executed, counting each statement's final try only.
    pub statements: usize,
    pub attempts: u32,
    /// The distinct statement texts, in order (at most the first 10).
    pub sql: Vec<String>,
    /// How many distinct texts the step ran, listed in `sql` or not (a
    /// backfill's batches differ in their bounds). Absent from summaries
    /// written before it was added: `sql`'s length then.
    #[serde(default)]
    pub sql_distinct: usize,
    /// From its first statement (or lock request) to its last statement's
    /// result or its locks' release, whichever is later: a transactional
    /// step's COMMIT, which flushes the WAL it wrote, is part of it.
    pub start_ms: f64,
    pub end_ms: f64,
    pub duration_ms: f64,
    /// `ok`, or the first non-ok outcome of the last attempt.
    pub outcome: String,
    pub sqlstate: String,
    /// The strongest relation lock the step held, with its longest hold.
    pub strongest_lock: Option<LockFact>,
    /// The longest hold of a lock that blocks app reads or writes.
    pub longest_blocking_lock: Option<LockFact>,
    /// Longest time the step waited to be granted a lock.
    pub lock_wait_ms: f64,
    /// Who held up that longest wait (locks.csv `blocked_by`: `app
    /// VERSION`, `script NAME`, `another session (pid N)`); empty when it
    /// did not wait or no poll saw who.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lock_wait_behind: Vec<String>,
    /// null when unknown (`unknown` says why), as every figure below.
    pub rewrote: Option<bool>,
    pub seq_scans: Option<u64>,
    /// WAL its statements wrote themselves (pg_stat_statements).
    pub wal_bytes: Option<u64>,
    /// WAL the whole cluster wrote while its statements ran (app included).
    pub cluster_wal_bytes: Option<u64>,
    /// steps.csv: the scenario tables' bytes, index bytes before / after,
    /// dead tuples after.
    pub footprint: StepFootprint,
    /// Why each null figure is unknown: figure → reason.
    pub unknown: std::collections::BTreeMap<String, String>,
    /// App lock waits attributed to this step (cause migration or
    /// queued-behind-migration, overlapping its lock holds or statements).
    pub app_waits: usize,
    pub worst_app_wait: Option<WaitFact>,
    /// App traffic while the step ran: the requests that completed between
    /// its start and its end as run.json records them (from before BEGIN
    /// until COMMIT returned).
    pub latency: LatencyFacts,
    /// How long after the step ended the app's latency came back.
    pub recovery: Recovery,
    /// The one in effect when the step asked for its blocking lock: the
    /// last its own SQL set before then (`SET lock_timeout`, `set_config`,
    /// `RESET`), else the one it began under (run.json `steps`); None when
    /// none was.
    pub lock_timeout_ms: Option<f64>,
    /// Where the lock_timeout and statement_timeout the step began under
    /// came from when not from the scenario (run.json `steps`
    /// `lock_timeout_from`, `statement_timeout_from`: an earlier file, the
    /// session's default); None otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_timeout_from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statement_timeout_from: Option<String>,
    /// The replica's peak lag from this step's start until the next step
    /// starts; None without a replica.
    #[serde(default)]
    pub replica_lag: Option<ReplicaLag>,
}

/// The peak of a replica's lag over a span of server.csv samples.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct ReplicaLag {
    /// Peak replay lag (pg_stat_replication.replay_lag) in ms; None when
    /// Postgres gave no time figure in the span.
    pub peak_ms: Option<f64>,
    /// Peak WAL not yet replayed, in bytes.
    pub peak_bytes: Option<u64>,
    /// When the peak was sampled (of ms when there is one, else of bytes).
    pub at_ms: f64,
}

impl StepFacts {
    /// "phase / step", how budgets and findings name it.
    pub fn label(&self) -> String {
        format!("{} / {}", self.phase, self.step)
    }
}

/// What steps.csv says of a step's tables.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StepFootprint {
    pub table_bytes_before: Option<u64>,
    pub table_bytes_after: Option<u64>,
    pub index_bytes_before: Option<u64>,
    pub index_bytes_after: Option<u64>,
    pub dead_tuples_after: Option<u64>,
}

/// How long after a step ended the windowed p99 of the app (every query
/// and app version; scripts left out) came back within the bar:
/// `recovery::FACTOR` × the p99 before the migration, at least
/// `NOISE_MS` above it (see `recovery.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Recovery {
    pub state: RecoveryState,
    /// The bar, ms: FACTOR × the app p99 before the migration, at least
    /// NOISE_MS above it.
    pub threshold_ms: Option<f64>,
    /// From the step's end until the first window of the recovery began
    /// (0 when latency never left the bar); None unless recovered.
    pub recovery_ms: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RecoveryState {
    Recovered,
    /// Still above the bar when the run ended.
    NotRecovered,
    /// Not back within the bar (or no traffic after it) when a run that
    /// did not finish stopped: a failed step skips the traffic after, an
    /// interrupted run has none. Nothing says it would not have come back.
    RunStopped,
    /// Still above the bar when the next step began: what follows is that
    /// step's.
    NextStepBegan,
    /// No app traffic before the migration: nothing to come back to.
    #[default]
    NoBaseline,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LockFact {
    pub relation: String,
    pub mode: String,
    pub blocks: Blocks,
    pub requested_ms: f64,
    pub granted_ms: Option<f64>,
    pub released_ms: Option<f64>,
    pub wait_ms: f64,
    /// None for a lock waited for and never granted.
    pub held_ms: Option<f64>,
    /// For a lock on an index: its table (locks.csv `table`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub table: String,
}

impl LockFact {
    /// What the app queues on behind this lock: an index's table, else the
    /// relation itself.
    pub fn queued_on(&self) -> &str {
        if self.table.is_empty() {
            &self.relation
        } else {
            &self.table
        }
    }

    pub(crate) fn of(l: &LockRow) -> LockFact {
        LockFact {
            relation: l.relation.clone(),
            mode: l.mode.clone(),
            blocks: l.blocks,
            requested_ms: l.requested_ms,
            granted_ms: l.granted_ms,
            released_ms: l.released_ms,
            wait_ms: l.wait_ms,
            held_ms: l.held_ms,
            table: l.table.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WaitFact {
    pub query: String,
    pub app: String,
    pub relation: String,
    pub mode: String,
    pub start_ms: f64,
    pub wait_ms: f64,
    pub cause: WaitCause,
}

impl WaitFact {
    pub(crate) fn of(w: &WaitRow) -> WaitFact {
        WaitFact {
            query: w.query.clone(),
            app: w.app.clone(),
            relation: w.relation.clone(),
            mode: w.mode.clone(),
            start_ms: w.start_ms,
            wait_ms: w.wait_ms,
            cause: w.cause,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PhaseFacts {
    pub name: String,
    pub apps: Vec<String>,
    pub latency: LatencyFacts,
    pub by_app: Vec<AppFacts>,
}

/// One app version's traffic and errors over a span.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AppFacts {
    pub app: String,
    pub latency: LatencyFacts,
    /// errors.csv rows by SQLSTATE, most frequent first.
    pub errors_by_sqlstate: Vec<SqlstateCount>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SqlstateCount {
    pub sqlstate: String,
    /// What the code means for a migration (schema incompatibility, lock
    /// timeout, ...).
    pub class: String,
    pub count: u64,
    pub queries: Vec<String>,
    pub example: String,
}
