//! Seeding: schema, deterministic rows over binary COPY, seed_sql, after_seed
//! SQL, VACUUM (FREEZE, ANALYZE); and template databases to clone per run.
//!
//! Rows come in fixed chunks of [`CHUNK_ROWS`] whose values depend only on
//! (seed, table, chunk, column), so any split of the key range gives the same
//! data. Two ways to load a table:
//!
//! - **freeze** (the default when possible): the table's `create` SQL and a
//!   `COPY ... (FREEZE)` run in one transaction on one connection while the
//!   chunks are generated in parallel threads. Rows land already frozen, so
//!   the final VACUUM (FREEZE) has nothing to rewrite. On a 2-core machine
//!   this beats parallel loading by 1.7–2× end to end (benches/README.md): the
//!   freeze pass after a non-frozen load rewrites and WAL-logs every page and
//!   costs more than the whole COPY.
//! - **parallel**: N connections COPY disjoint, contiguous chunk ranges at
//!   once. Used when FREEZE is impossible (the table already existed, is
//!   partitioned, or its create SQL refuses a transaction block, such as
//!   CREATE INDEX CONCURRENTLY) or when asked for with [`LoadMode::Parallel`].

/// application_name of seeding sessions.
pub const SEED_APP_NAME: &str = "pgrehearse/seed";

mod catalog;
mod copy;
mod schema;
mod template;

pub use template::{clone_database, drop_database};

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use crate::backend::ConnInfo;
use crate::error::{Error, Result, ScenarioError};
use crate::pg::quote_ident;
use crate::scenario::gen::CHUNK_ROWS;
use crate::scenario::{Scenario, TablePlan};
use catalog::{bind_columns, describe, server_constants, sync_sequences};
use copy::ColumnEncoder;

/// How rows reach a table (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Freeze when the table was created by its `create` SQL, else parallel.
    Auto,
    Freeze,
    Parallel,
}

#[derive(Debug, Clone)]
pub struct SeedOptions {
    pub seed: u64,
    /// Show an indicatif bar (only when stderr is a terminal).
    pub progress: bool,
    /// Connections (parallel) or generator threads (freeze). Default:
    /// available parallelism, at least 2, at most 8.
    pub workers: Option<usize>,
    pub load: LoadMode,
}

impl SeedOptions {
    pub fn new(seed: u64) -> Self {
        SeedOptions {
            seed,
            progress: false,
            workers: None,
            load: LoadMode::Auto,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableReport {
    pub name: String,
    /// Rows loaded, as counted by the server.
    pub rows: u64,
    /// Binary COPY bytes sent.
    pub bytes: u64,
    /// The mode actually used: freeze or parallel.
    pub load: LoadMode,
    /// Connections that loaded it.
    pub connections: usize,
    /// create + load (not after_seed or VACUUM).
    pub duration: Duration,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SeedReport {
    pub tables: Vec<TableReport>,
    /// Everything: create, load, seed_sql, after_seed, VACUUM.
    pub duration: Duration,
    /// Of which: creating and loading the tables.
    pub load: Duration,
    /// Of which: seed_sql and every after_seed statement.
    pub sql: Duration,
    /// Of which: VACUUM (FREEZE, ANALYZE).
    pub vacuum: Duration,
    pub bytes: u64,
}

impl SeedReport {
    pub fn rows(&self, table: &str) -> Option<u64> {
        self.tables.iter().find(|t| t.name == table).map(|t| t.rows)
    }

    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|t| t.rows).sum()
    }
}

/// Seed the work database of `conn` with `scenario`'s tables and SQL.
pub async fn seed(
    conn: &ConnInfo,
    scenario: &Scenario,
    seed: u64,
    progress: bool,
) -> Result<SeedReport> {
    let opts = SeedOptions {
        progress,
        ..SeedOptions::new(seed)
    };
    seed_with(conn, scenario, &opts).await
}

/// [`seed`] with every knob.
pub async fn seed_with(
    conn: &ConnInfo,
    scenario: &Scenario,
    opts: &SeedOptions,
) -> Result<SeedReport> {
    let started = Instant::now();
    let client = conn.session(SEED_APP_NAME).await?;
    let prepared = schema::prepare(&client, scenario).await?;
    let scenario = &prepared.scenario;
    raise_maintenance_work_mem(&client).await?;
    let workers = opts.workers.unwrap_or_else(default_workers).clamp(1, 64);
    let total: u64 = scenario.tables.iter().map(|t| t.rows).sum();
    let bar = progress_bar(total, opts.progress);

    let mut tables = Vec::with_capacity(scenario.tables.len());
    let mut names = Vec::with_capacity(scenario.tables.len());
    for &index in &prepared.order {
        let table = &scenario.tables[index];
        bar.set_message(table.name.clone());
        let (report, qualified) =
            load_table(&client, conn, scenario, index, opts, workers, &bar).await?;
        tables.push(report);
        names.push(qualified);
    }
    bar.finish_and_clear();
    let load = started.elapsed();

    for (i, sql) in scenario.seed_sql.iter().enumerate() {
        run_statements(&client, sql, &format!("seed_sql[{i}]")).await?;
    }
    for table in &scenario.tables {
        for (i, sql) in table.after_seed.iter().enumerate() {
            run_statements(
                &client,
                sql,
                &format!("table {}: after_seed[{i}]", table.name),
            )
            .await?;
        }
    }
    let sql = started.elapsed() - load;
    for name in &names {
        run_sql(
            &client,
            &format!("VACUUM (FREEZE, ANALYZE) {name}"),
            &format!("VACUUM of {name}"),
        )
        .await?;
    }
    let bytes = tables.iter().map(|t| t.bytes).sum();
    let duration = started.elapsed();
    Ok(SeedReport {
        tables,
        duration,
        load,
        sql,
        vacuum: duration - load - sql,
        bytes,
    })
}

/// after_seed usually builds indexes and keys: give the seeding session a
/// sort big enough for millions of keys (never lowering a larger setting).
const SEED_MAINTENANCE_WORK_MEM_KB: i64 = 256 * 1024;

async fn raise_maintenance_work_mem(client: &Client) -> Result<()> {
    let kb: i64 = client
        .query_one(
            "SELECT setting::int8 FROM pg_settings WHERE name = 'maintenance_work_mem'",
            &[],
        )
        .await
        .map_err(|e| db_error(e, "reading maintenance_work_mem"))?
        .get(0);
    if kb < SEED_MAINTENANCE_WORK_MEM_KB {
        let sql = format!("SET maintenance_work_mem = '{SEED_MAINTENANCE_WORK_MEM_KB}kB'");
        run_sql(client, &sql, "raising maintenance_work_mem").await?;
    }
    Ok(())
}

/// Available parallelism, at least 2 (one generates while one loads), at most 8.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

fn progress_bar(total: u64, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() || !std::io::stdout().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "seeding {msg:>16} [{bar:30}] {human_pos}/{human_len} rows  {per_sec}  eta {eta}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total).with_style(style)
}

/// Create, map generators onto columns, load. Returns the report and the
/// table's quoted, qualified name.
async fn load_table(
    client: &Client,
    conn: &ConnInfo,
    scenario: &Scenario,
    index: usize,
    opts: &SeedOptions,
    workers: usize,
    bar: &ProgressBar,
) -> Result<(TableReport, String)> {
    let table = &scenario.tables[index];
    let started = Instant::now();
    create_table(client, table).await?;
    let info = describe(client, scenario, index).await?;
    let constants = server_constants(client, scenario, index, &info).await?;
    let encoders = Arc::new(bind_columns(scenario, index, &info, &constants)?);
    let mode = match opts.load {
        LoadMode::Auto if info.freezable => LoadMode::Freeze,
        LoadMode::Auto => LoadMode::Parallel,
        LoadMode::Freeze if !info.freezable => {
            return Err(Error::rehearsal(format!(
                "table {}: COPY FREEZE needs a plain table created by its create SQL",
                table.name
            )))
        }
        m => m,
    };
    let chunks = table.rows.div_ceil(CHUNK_ROWS);
    let list = encoders
        .iter()
        .map(|e| quote_ident(&e.name))
        .collect::<Vec<_>>()
        .join(", ");
    let job = CopyJob {
        encoders: encoders.clone(),
        seed: opts.seed,
        table: index,
        rows: table.rows,
        what: table.name.clone(),
        bar: bar.clone(),
    };
    let ctx = |e| db_error(e, &format!("table {}: COPY", table.name));
    let (rows, bytes, connections) = if table.rows == 0 {
        run_sql(client, "COMMIT", "COMMIT").await?;
        (0, 0, 0)
    } else if encoders.is_empty() {
        // Nothing generated: rows of defaults only.
        let sql = format!(
            "INSERT INTO {} SELECT FROM generate_series(1, {})",
            info.qualified, table.rows
        );
        let n = client.execute(&sql, &[]).await.map_err(ctx)?;
        run_sql(client, "COMMIT", "COMMIT").await?;
        bar.inc(n);
        (n, 0, 1)
    } else if mode == LoadMode::Freeze {
        let sql = format!(
            "COPY {} ({list}) FROM STDIN (FORMAT binary, FREEZE)",
            info.qualified
        );
        let (n, b) = job.copy(client, &sql, 0..chunks, workers).await?;
        run_sql(client, "COMMIT", "COMMIT").await?;
        (n, b, 1)
    } else {
        run_sql(client, "COMMIT", "COMMIT").await?;
        let sql = format!(
            "COPY {} ({list}) FROM STDIN (FORMAT binary)",
            info.qualified
        );
        job.copy_parallel(conn, &sql, chunks, workers).await?
    };
    if rows != table.rows {
        return Err(Error::rehearsal(format!(
            "table {}: loaded {rows} rows, wanted {}",
            table.name, table.rows
        )));
    }
    if rows > 0 {
        sync_sequences(client, &info.qualified, &encoders).await?;
    }
    let report = TableReport {
        name: table.name.clone(),
        rows,
        bytes,
        load: if encoders.is_empty() {
            LoadMode::Parallel
        } else {
            mode
        },
        connections,
        duration: started.elapsed(),
    };
    Ok((report, info.qualified))
}

/// BEGIN and the table's create SQL, left in the open transaction (so the
/// load can be COPY FREEZE) unless the SQL refuses a transaction block. A
/// table without create SQL exists already (from the setup migrations).
async fn create_table(client: &Client, table: &TablePlan) -> Result<()> {
    run_sql(client, "BEGIN", "BEGIN").await?;
    let Some(create) = &table.create else {
        return Ok(());
    };
    let what = format!("table {}: create", table.name);
    if let Err(e) = client.batch_execute(create).await {
        if e.code() != Some(&SqlState::ACTIVE_SQL_TRANSACTION) {
            return Err(db_error(e, &what));
        }
        // Something in it refuses a transaction block (CONCURRENTLY, ...):
        // run it statement by statement; the table cannot be loaded frozen.
        run_sql(client, "ROLLBACK", "ROLLBACK").await?;
        run_statements(client, create, &what).await?;
        run_sql(client, "BEGIN", "BEGIN").await?;
    }
    Ok(())
}

/// Everything a COPY stream needs; cheap to clone into worker tasks.
#[derive(Clone)]
struct CopyJob {
    encoders: Arc<Vec<ColumnEncoder>>,
    seed: u64,
    table: usize,
    rows: u64,
    what: String,
    bar: ProgressBar,
}

/// Pieces handed to the connection: big enough to keep syscalls rare, small
/// enough to keep the progress bar moving.
const SEND_BYTES: usize = 1 << 20;

impl CopyJob {
    /// The chunks split over up to `workers` connections, one COPY stream
    /// each, into an already committed table. Returns (rows, bytes,
    /// connections used).
    async fn copy_parallel(
        &self,
        conn: &ConnInfo,
        sql: &str,
        chunks: u64,
        workers: usize,
    ) -> Result<(u64, u64, usize)> {
        let n_conn = workers.min(chunks as usize).max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..n_conn as u64 {
            let range = (w * chunks / n_conn as u64)..((w + 1) * chunks / n_conn as u64);
            let (job, sql, conn) = (self.clone(), sql.to_string(), conn.clone());
            tasks.spawn(async move {
                let c = conn.session(SEED_APP_NAME).await?;
                job.copy(&c, &sql, range, 2).await
            });
        }
        let (mut n, mut b) = (0, 0);
        while let Some(res) = tasks.join_next().await {
            let (rn, rb) = res.map_err(|e| Error::Other(anyhow::anyhow!("COPY worker: {e}")))??;
            n += rn;
            b += rb;
        }
        Ok((n, b, n_conn))
    }

    /// One COPY stream over `chunks`, generated `ahead` chunks in advance on
    /// blocking threads, in order. Returns (rows the server stored, bytes).
    async fn copy(
        &self,
        client: &Client,
        sql: &str,
        chunks: std::ops::Range<u64>,
        ahead: usize,
    ) -> Result<(u64, u64)> {
        let ctx = |e| db_error(e, &format!("table {}: COPY", self.what));
        let sink = client.copy_in::<_, Bytes>(sql).await.map_err(ctx)?;
        pin_mut!(sink);
        sink.feed(copy::header()).await.map_err(ctx)?;
        let mut bytes = 0u64;
        let mut encoded = futures_util::stream::iter(chunks)
            .map(|chunk| {
                let job = self.clone();
                tokio::task::spawn_blocking(move || {
                    let buf =
                        copy::encode_chunk(&job.encoders, job.seed, job.table, chunk, job.rows);
                    (chunk, buf)
                })
            })
            .buffered(ahead.max(1));
        while let Some(done) = encoded.next().await {
            let (chunk, buf) =
                done.map_err(|e| Error::Other(anyhow::anyhow!("row generator: {e}")))?;
            let mut buf = buf
                .map_err(|e| {
                    Error::Scenario(vec![ScenarioError {
                        file: Default::default(),
                        line: 0,
                        column: 0,
                        field: format!("table.{}.columns.{}", self.what, e.column),
                        message: format!("{} (while seeding)", e.error),
                    }])
                })?
                .freeze();
            bytes += buf.len() as u64;
            while !buf.is_empty() {
                let piece = buf.split_to(buf.len().min(SEND_BYTES));
                sink.feed(piece).await.map_err(ctx)?;
            }
            let first = chunk * CHUNK_ROWS;
            self.bar.inc(self.rows.min(first + CHUNK_ROWS) - first);
        }
        sink.feed(copy::trailer()).await.map_err(ctx)?;
        let rows = sink.as_mut().finish().await.map_err(ctx)?;
        Ok((rows, bytes))
    }
}

/// Statement by statement, each in its own implicit transaction, so that
/// CONCURRENTLY and other transaction-refusing commands work in a list.
async fn run_statements(client: &Client, sql: &str, what: &str) -> Result<()> {
    for stmt in crate::sql::split(sql) {
        run_sql(client, &stmt, what).await?;
    }
    Ok(())
}

async fn run_sql(client: &Client, sql: &str, what: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| db_error(e, what))
}

fn db_error(e: tokio_postgres::Error, what: &str) -> Error {
    Error::rehearsal(format!("seeding: {what}: {}", crate::pg::error_text(&e)))
}
