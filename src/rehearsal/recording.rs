//! Stage 4, record: what the run measured becomes the run directory's CSVs
//! and run.json (the contract of `crate::record`). Also the run directory
//! itself, opened before seeding as a [`Draft`], so that a rehearsal that
//! stops at any stage still leaves a report saying why.

use std::path::PathBuf;
use std::time::Duration;

use super::provision::Database;
use super::run::Measured;
use super::stage::{Stopped, HARNESS_APP_NAME};
use crate::backend::ConnInfo;
use crate::clock::ServerClock;
use crate::error::{Error, Result};
use crate::observe::Observations;
use crate::options::RunOptions;
use crate::record::{self, RunInfo, RunRecord};
use crate::scenario::Scenario;

/// How long the query after the run (invalid indexes) may
/// take: a server that hangs (rather than dies) must not hold the report back.
const LAST_QUERIES_WAIT: Duration = Duration::from_secs(5);

/// The run directory being filled, and run.json as known so far.
pub struct Draft {
    pub dir: PathBuf,
    pub info: RunInfo,
    budgets: Vec<(String, f64)>,
}

impl Draft {
    /// Ask the server its version, then create the run directory.
    pub async fn open(db: &Database, s: &Scenario, opts: &RunOptions) -> Result<Draft> {
        let admin = db.conn.session(HARNESS_APP_NAME).await?;
        let (postgres_version, server_version_num) = crate::pg::server_version(&admin).await?;
        let info = RunInfo {
            scenario: s.name.clone(),
            scenario_file: s.path.display().to_string(),
            scenario_hash: s.hash.clone(),
            description: s.description.clone(),
            pair: s.pair.clone(),
            variant: s.variant.map(|v| format!("{v:?}").to_lowercase()),
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            started_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            backend: format!("{:?}", db.backend).to_lowercase(),
            target: db.target.clone(),
            postgres_version,
            server_version_num,
            // Only what was in force: a url server takes some at most.
            settings: match &db.settings_in_force {
                Some(applied) => s
                    .postgres
                    .settings
                    .iter()
                    .filter(|kv| applied.contains(kv))
                    .cloned()
                    .collect(),
                None => s.postgres.settings.clone(),
            },
            seed: opts.seed,
            rows: s.tables.iter().map(|t| (t.name.clone(), t.rows)).collect(),
            seed_ms: 0.0,
            database: None,
            clients: s.workload.clients,
            rate: s.workload.rate,
            window_ms: s.workload.window.as_secs_f64() * 1e3,
            traffic_started_ms: None,
            phases: Vec::new(),
            budget: s.budget.clone(),
            lock_precision_ms: 0.0,
            failure: None,
            end_ms: 0.0,
            steps: Vec::new(),
            invalid_indexes: Vec::new(),
            unattached_indexes: Vec::new(),
            primary_keys: Default::default(),
            partition_keys: Default::default(),
            default_partitions: Default::default(),
            migrations: s.migrations.as_ref().map(super::setup::info),
            wal_attribution: None,
            wal_unavailable: None,
            sizes_method: None,
            size: db.size.clone(),
            replica: db.replica.clone(),
            pg_version_cell: opts.server.version.clone(),
            queries: crate::record::QueryInfo::of(&s.workload),
            warnings: db.warnings.clone(),
        };
        Ok(Draft {
            dir: record::create_run_dir(&opts.out, &s.name)?,
            info,
            budgets: opts.budgets.clone(),
        })
    }

    /// Write a partial report for a stage that stopped: run.json says why,
    /// the CSVs are empty, the summary says what failed. Returns the
    /// stage's error, pointing at this run directory.
    pub fn abandon(&self, stopped: Stopped) -> Error {
        tracing::info!("partial report: {}", stopped.why);
        let mut info = self.info.clone();
        info.failure = Some(stopped.why);
        let written = RunRecord {
            info: Some(info),
            ..Default::default()
        }
        .write(&self.dir);
        if written.is_ok() {
            let _ = crate::report::render(
                &self.dir,
                &crate::report::RenderOptions::with_budgets(self.budgets.clone()),
            );
        }
        match stopped.error {
            Error::Rehearsal {
                message,
                report_dir: None,
            } => Error::Rehearsal {
                message,
                report_dir: Some(self.dir.clone()),
            },
            e => e,
        }
    }
}

/// A run directory with its record written, ready for the report stage.
#[derive(Debug)]
pub struct Recorded {
    pub dir: PathBuf,
    /// Why the rehearsal stopped early, if it did.
    pub failure: Option<String>,
    /// A signal stopped it.
    pub interrupted: bool,
}

/// Write everything `m` holds into the draft's run directory. `conn` lists
/// invalid indexes.
pub async fn record(draft: Draft, conn: &ConnInfo, m: Measured) -> Result<Recorded> {
    warn_about_caps(&m);
    let last = tokio::time::timeout(LAST_QUERIES_WAIT, last_look(conn))
        .await
        .unwrap_or_default();
    let locks = crate::holds::lock_rows(&m.migration, &m.observations);
    let mut m = m;
    crate::holds::align_waits(&mut m.observations.waits, &locks);
    crate::holds::note_unseen(&mut m.migration, &locks);
    let mut info = draft.info;
    info.started_at = m.started_at;
    info.phases = m.migration.phases;
    info.steps = m.migration.steps;
    info.invalid_indexes = last.invalid_indexes;
    info.unattached_indexes = last.unattached_indexes;
    info.primary_keys = last.primary_keys;
    info.partition_keys = last.partition_keys;
    info.default_partitions = last.default_partitions;
    info.end_ms = crate::pg::round3(m.end_ms);
    info.traffic_started_ms = m.traffic_started_ms.map(crate::pg::round3);
    info.failure = m.migration.failure.clone();
    info.lock_precision_ms = lock_precision(&m.server_clock, &m.observations);
    info.wal_attribution = m.migration.wal.attribution.clone();
    info.wal_unavailable = m.migration.wal.unavailable.clone();
    info.sizes_method = m.migration.sizes_method.clone();
    let mut server = m.observations.server;
    server.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
    RunRecord {
        info: Some(info),
        statements: m.migration.statements,
        locks,
        waits: m.observations.waits,
        // latency.csv, inflight.csv and latency.hdr were streamed there.
        errors: m.latency.errors,
        server,
        steps: m.migration.step_rows,
        ..Default::default()
    }
    .write(&draft.dir)?;
    Ok(Recorded {
        dir: draft.dir,
        failure: m.migration.failure,
        interrupted: m.interrupted,
    })
}

/// Caps that keep a long run's memory bounded: say when one was hit.
fn warn_about_caps(m: &Measured) {
    if m.latency.errors_dropped > 0 {
        crate::say!(
            "pgrehearse: warning: errors.csv keeps the first {} app errors; {} more are counted in latency.csv and latency.hdr only",
            crate::latency::MAX_ERROR_ROWS,
            m.latency.errors_dropped
        );
    }
    if m.observations.waits_dropped > 0 {
        crate::say!(
            "pgrehearse: warning: waits.csv keeps the first {} lock waits; {} more were not recorded",
            crate::observe::MAX_WAIT_ROWS,
            m.observations.waits_dropped
        );
    }
}

/// What the run left, read once it ended; empty where the server does not
/// answer.
#[derive(Default)]
struct LastLook {
    /// Indexes a failed CONCURRENTLY build left behind.
    invalid_indexes: Vec<String>,
    /// Partitioned indexes not attached on every partition yet.
    unattached_indexes: Vec<String>,
    /// Single-column primary keys, by table (run.json `primary_keys`).
    primary_keys: std::collections::BTreeMap<String, String>,
    /// Partition key columns, by table (run.json `partition_keys`).
    partition_keys: std::collections::BTreeMap<String, Vec<String>>,
    /// DEFAULT partitions, by table (run.json `default_partitions`).
    default_partitions: std::collections::BTreeMap<String, String>,
}

async fn last_look(conn: &ConnInfo) -> LastLook {
    let Ok(admin) = conn.session(HARNESS_APP_NAME).await else {
        return LastLook::default();
    };
    let column = |sql: &'static str| {
        let admin = &admin;
        async move {
            admin
                .query(sql, &[])
                .await
                .map(|rows| {
                    rows.iter()
                        .map(|r| (r.get::<_, String>(0), r.get::<_, Option<String>>(1)))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        }
    };
    let invalid = column(
        "SELECT i.indexrelid::regclass::text, nullif(c.relkind, 'i')::text FROM pg_index i \
         JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid ORDER BY 1",
    )
    .await;
    let keys = column(
        "SELECT i.indrelid::regclass::text, a.attname::text FROM pg_index i \
         JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0] \
         JOIN pg_class c ON c.oid = i.indrelid \
         WHERE i.indisprimary AND i.indnkeyatts = 1 AND c.relnamespace NOT IN \
           ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)",
    )
    .await;
    // The columns as a JSON array: a name may hold any character.
    let partition_keys = column(
        "SELECT p.partrelid::regclass::text, \
           (SELECT json_agg(a.attname::text ORDER BY k.n)::text \
              FROM unnest(p.partattrs::int2[]) WITH ORDINALITY k(attnum, n) \
              JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum) \
         FROM pg_partitioned_table p WHERE NOT 0 = ANY (p.partattrs::int2[])",
    )
    .await;
    let default_partitions = column(
        "SELECT partrelid::regclass::text, partdefid::regclass::text \
         FROM pg_partitioned_table WHERE partdefid <> 0",
    )
    .await;
    let by_table = |rows: Vec<(String, Option<String>)>| {
        rows.into_iter()
            .filter_map(|(table, key)| Some((table, key?)))
            .collect()
    };
    // relkind 'I': a partitioned table's own index, which is valid once
    // every partition's index is attached to it.
    let (unattached, invalid): (Vec<_>, Vec<_>) = invalid
        .into_iter()
        .partition(|(_, kind)| kind.as_deref() == Some("I"));
    LastLook {
        invalid_indexes: invalid.into_iter().map(|(name, _)| name).collect(),
        unattached_indexes: unattached.into_iter().map(|(name, _)| name).collect(),
        primary_keys: by_table(keys),
        partition_keys: by_table(partition_keys)
            .into_iter()
            .filter_map(|(table, json)| Some((table, serde_json::from_str(&json).ok()?)))
            .collect(),
        default_partitions: by_table(default_partitions),
    }
}

/// How precisely lock grant/release times are known: the clock mapping's
/// uncertainty, plus half a poll interval when a wait's end was only seen by
/// polling.
fn lock_precision(sc: &ServerClock, obs: &Observations) -> f64 {
    let mut p = sc.uncertainty_ms;
    if !obs.migration_waits.is_empty() && obs.log_acquired.is_empty() {
        p += obs.mean_poll_ms / 2.0;
    }
    crate::pg::round3(p.max(0.001))
}
