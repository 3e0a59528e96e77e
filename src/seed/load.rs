//! Loading one table: its create SQL, then its rows over binary COPY, frozen
//! in the creating transaction or over parallel connections (module docs of
//! `seed`).

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use indicatif::ProgressBar;
use tokio_postgres::error::SqlState;
use tokio_postgres::Client;

use super::catalog::{bind_columns, describe, server_constants, sync_sequences};
use super::copy::{self, ColumnEncoder};
use super::{
    db_error, run_sql, run_statements, tx_error, LoadMode, SeedOptions, TableReport, SEED_APP_NAME,
};
use crate::backend::ConnInfo;
use crate::error::{Error, Result, ScenarioError};
use crate::pg::quote_ident;
use crate::scenario::gen::CHUNK_ROWS;
use crate::scenario::Scenario;

/// What loading table `index` of `scenario` needs.
pub(super) struct LoadCtx<'a> {
    /// The seeding session (the freeze load runs on it).
    pub client: &'a Client,
    /// For the parallel load's extra connections.
    pub conn: &'a ConnInfo,
    pub scenario: &'a Scenario,
    pub index: usize,
    pub opts: &'a SeedOptions,
    pub workers: usize,
    pub bar: &'a ProgressBar,
}

/// Create, map generators onto columns, load. Returns the report and the
/// table's quoted, qualified name.
pub(super) async fn load_table(cx: &LoadCtx<'_>) -> Result<(TableReport, String)> {
    let (client, scenario, index, opts) = (cx.client, cx.scenario, cx.index, cx.opts);
    let table = &scenario.tables[index];
    let started = Instant::now();
    let one = opts.one_transaction.is_some();
    create_table(client, scenario, index, one).await?;
    let info = describe(client, scenario, index).await?;
    let constants = server_constants(client, scenario, index, &info).await?;
    let encoders = Arc::new(bind_columns(scenario, index, &info, &constants, opts.seed)?);
    let mode = match opts.load {
        LoadMode::Auto if info.freezable => LoadMode::Freeze,
        LoadMode::Freeze if !info.freezable => {
            return Err(Error::rehearsal(format!(
                "table {}: COPY FREEZE needs a plain table created by its create SQL",
                table.name
            )))
        }
        LoadMode::Auto | LoadMode::Parallel if one => LoadMode::Single,
        LoadMode::Auto => LoadMode::Parallel,
        m => m,
    };
    let job = CopyJob {
        encoders: encoders.clone(),
        seed: opts.seed,
        table: index,
        rows: table.rows,
        what: table.name.clone(),
        scenario_path: scenario.path.clone(),
        generated: Arc::new(encoders.iter().map(|e| e.name.clone()).collect()),
        rules: Arc::new(info.rules.clone()),
        bar: cx.bar.clone(),
    };
    let (rows, bytes, connections) = if table.rows == 0 {
        end_table(client, one).await?;
        (0, 0, 0)
    } else if encoders.is_empty() {
        // Nothing generated: rows of defaults only.
        let sql = format!(
            "INSERT INTO {} SELECT FROM generate_series(1, {})",
            info.qualified, table.rows
        );
        let ctx = |e| db_error(e, &format!("table {}: INSERT", table.name));
        let n = client.execute(&sql, &[]).await.map_err(ctx)?;
        end_table(client, one).await?;
        cx.bar.inc(n);
        (n, 0, 1)
    } else if mode == LoadMode::Freeze {
        let (n, b) = job.copy_frozen(client, &info.qualified, cx.workers).await?;
        end_table(client, one).await?;
        (n, b, 1)
    } else if mode == LoadMode::Single {
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            info.qualified,
            column_list(&encoders)
        );
        let chunks = table.rows.div_ceil(CHUNK_ROWS);
        let (n, b) = job.copy(client, &sql, 0..chunks, cx.workers).await?;
        end_table(client, one).await?;
        (n, b, 1)
    } else {
        run_sql(client, "COMMIT", "COMMIT").await?;
        let sql = format!(
            "COPY {} ({}) FROM STDIN (FORMAT binary)",
            info.qualified,
            column_list(&encoders)
        );
        job.copy_parallel(cx.conn, &sql, cx.workers).await?
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
        loaded: rows,
        bytes,
        load: match encoders.is_empty() {
            true if one => LoadMode::Single,
            true => LoadMode::Parallel,
            false => mode,
        },
        connections,
        duration: started.elapsed(),
    };
    Ok((report, info.qualified))
}

/// COMMIT the table's own transaction; in one transaction for the whole
/// seed (`one`) there is none to end.
async fn end_table(client: &Client, one: bool) -> Result<()> {
    match one {
        true => Ok(()),
        false => run_sql(client, "COMMIT", "COMMIT").await,
    }
}

fn column_list(encoders: &[ColumnEncoder]) -> String {
    encoders
        .iter()
        .map(|e| quote_ident(&e.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// BEGIN and the table's create SQL, left in the open transaction (so the
/// load can be COPY FREEZE) unless the SQL refuses a transaction block. A
/// table without create SQL exists already (from the setup migrations).
/// In one transaction for the whole seed (`one`) there is no BEGIN of its
/// own, and SQL that refuses a transaction block is refused.
async fn create_table(client: &Client, scenario: &Scenario, index: usize, one: bool) -> Result<()> {
    let table = &scenario.tables[index];
    if !one {
        run_sql(client, "BEGIN", "BEGIN").await?;
    }
    let Some(create) = &table.create else {
        return Ok(());
    };
    let what = format!("table {}: create", table.name);
    if let Err(e) = client.batch_execute(create).await {
        if e.code() == Some(&SqlState::DUPLICATE_TABLE) {
            return Err(exists_already(scenario, index));
        }
        if one {
            return Err(tx_error(e, &what));
        }
        if e.code() != Some(&SqlState::ACTIVE_SQL_TRANSACTION) {
            return Err(db_error(e, &what));
        }
        // Something in it refuses a transaction block (CONCURRENTLY, ...):
        // run it statement by statement; the table cannot be loaded frozen.
        run_sql(client, "ROLLBACK", "ROLLBACK").await?;
        run_statements(client, create, &what, false).await?;
        run_sql(client, "BEGIN", "BEGIN").await?;
    }
    Ok(())
}

/// A `create` of a table that exists already — the setup migrations (or
/// `seed --replace`'s absence) made it — is the scenario's mistake: located
/// at its `create`, with what to do (exit 2), not a server error (exit 4).
fn exists_already(scenario: &Scenario, index: usize) -> Error {
    let table = &scenario.tables[index];
    let why = if scenario.migrations.is_some() {
        "the setup migrations already create it: leave `create` out, and the table is seeded as they made it"
    } else {
        "it exists already in the database: leave `create` out to seed it as it is, or drop it first (`seed --replace`)"
    };
    Error::Scenario(vec![ScenarioError {
        file: scenario.path.clone(),
        line: 0,
        column: 0,
        field: format!("table[{index}].create"),
        message: format!("table {} exists already: {why}", table.name),
    }])
}

/// Everything a COPY stream needs; cheap to clone into worker tasks.
#[derive(Clone)]
struct CopyJob {
    encoders: Arc<Vec<ColumnEncoder>>,
    seed: u64,
    table: usize,
    rows: u64,
    what: String,
    /// Where a value the column refuses is located (by its field).
    scenario_path: std::path::PathBuf,
    /// Every generated column (a freeze load sends fewer: see
    /// `copy_frozen`), and the table's rules with their columns, to locate
    /// a refused row at a column.
    generated: Arc<Vec<String>>,
    rules: Arc<Vec<(String, Vec<String>)>>,
    bar: ProgressBar,
}

/// Pieces handed to the connection: big enough to keep syscalls rare, small
/// enough to keep the progress bar moving.
const SEND_BYTES: usize = 1 << 20;

/// Chunks generated ahead of the server, at most: enough to keep it busy,
/// and a bound on the client's memory whatever the table's size.
const AHEAD_BYTES: usize = 64 << 20;

impl CopyJob {
    /// The freeze load, in the transaction that created the table (the
    /// caller commits). Constant columns that have no default of their own
    /// become the column's default for the COPY and do not travel (module
    /// docs of `seed`); the defaults are dropped again before returning, in
    /// the same transaction, so nobody ever sees them.
    async fn copy_frozen(
        &self,
        client: &Client,
        qualified: &str,
        workers: usize,
    ) -> Result<(u64, u64)> {
        let mut defaulted = self.defaultable(client, qualified).await?;
        if defaulted.len() == self.encoders.len() {
            // A COPY needs one column at least: that one travels.
            defaulted.pop();
        }
        let alter = |set: bool| {
            let actions: Vec<String> = defaulted
                .iter()
                .map(|(name, literal)| match set {
                    true => format!("ALTER COLUMN {} SET DEFAULT {literal}", quote_ident(name)),
                    false => format!("ALTER COLUMN {} DROP DEFAULT", quote_ident(name)),
                })
                .collect();
            format!("ALTER TABLE {qualified} {}", actions.join(", "))
        };
        let mut job = self.clone();
        if !defaulted.is_empty() {
            run_sql(client, &alter(true), "constant columns as defaults").await?;
            let travelling: Vec<ColumnEncoder> = self
                .encoders
                .iter()
                .filter(|e| !defaulted.iter().any(|(name, _)| *name == e.name))
                .cloned()
                .collect();
            job.encoders = Arc::new(travelling);
        }
        let sql = format!(
            "COPY {qualified} ({}) FROM STDIN (FORMAT binary, FREEZE)",
            column_list(&job.encoders)
        );
        let loaded = job
            .copy(client, &sql, 0..self.rows.div_ceil(CHUNK_ROWS), workers)
            .await?;
        if !defaulted.is_empty() {
            run_sql(client, &alter(false), "constant columns' defaults").await?;
        }
        Ok(loaded)
    }

    /// Constant columns the server can fill as a default with exactly the
    /// value the encoder would send: (column, SQL literal). Not those that
    /// already have a default, are identity or generated columns.
    async fn defaultable(&self, client: &Client, qualified: &str) -> Result<Vec<(String, String)>> {
        let candidates: Vec<(&str, String)> = self
            .encoders
            .iter()
            .filter_map(|e| Some((e.name.as_str(), e.default_literal()?)))
            .collect();
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let plain: Vec<String> = client
            .query(
                "SELECT attname::text FROM pg_attribute WHERE attrelid = $1::text::regclass \
                 AND attnum > 0 AND NOT attisdropped AND NOT atthasdef \
                 AND attidentity = '' AND attgenerated = ''",
                &[&qualified],
            )
            .await
            .map_err(|e| db_error(e, &format!("{qualified}: columns")))?
            .iter()
            .map(|r| r.get(0))
            .collect();
        Ok(candidates
            .into_iter()
            .filter(|(name, _)| plain.iter().any(|p| p == name))
            .map(|(name, literal)| (name.to_string(), literal))
            .collect())
    }

    /// The chunks split over up to `workers` connections, one COPY stream
    /// each, into an already committed table. Returns (rows, bytes,
    /// connections used).
    async fn copy_parallel(
        &self,
        conn: &ConnInfo,
        sql: &str,
        workers: usize,
    ) -> Result<(u64, u64, usize)> {
        let chunks = self.rows.div_ceil(CHUNK_ROWS);
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

    /// One COPY stream over `chunks`, generated up to `ahead` chunks in
    /// advance on blocking threads, in order (fewer for wide rows: see
    /// [`AHEAD_BYTES`]). A chunk is generated while the server parses the
    /// ones before it; the sink takes the next piece only when the
    /// connection has sent the last one, so the server sets the pace.
    /// Returns (rows the server stored, bytes).
    async fn copy(
        &self,
        client: &Client,
        sql: &str,
        chunks: std::ops::Range<u64>,
        ahead: usize,
    ) -> Result<(u64, u64)> {
        let ctx = |e: tokio_postgres::Error| {
            self.refused(&e)
                .unwrap_or_else(|| db_error(e, &format!("table {}: COPY", self.what)))
        };
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
            .buffered(ahead.clamp(1, self.max_ahead()));
        while let Some(done) = encoded.next().await {
            let (chunk, buf) =
                done.map_err(|e| Error::Other(anyhow::anyhow!("row generator: {e}")))?;
            let mut buf = buf
                .map_err(|e| {
                    Error::Scenario(vec![ScenarioError {
                        file: self.scenario_path.clone(),
                        line: 0,
                        column: 0,
                        field: format!("table[{}].columns.{}", self.table, e.column),
                        message: format!(
                            "{}.{}: {} (while seeding: the generator wrote a value the column's type refuses; narrow its range)",
                            self.what, e.column, e.error
                        ),
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

    /// A generated row the table refuses — a CHECK, NOT NULL, unique or
    /// foreign key it breaks (class 23), a value its type refuses on the
    /// server (class 22) — is the scenario's mistake, not the server's:
    /// located at the column when the server names it (its error's column,
    /// or COPY's context "column c"), else at the table's columns (exit 2).
    fn refused(&self, e: &tokio_postgres::Error) -> Option<Error> {
        let db = e.as_db_error()?;
        let code = db.code().code();
        if !(code.starts_with("23") || code.starts_with("22")) {
            return None;
        }
        // The column the server names (NOT NULL), or COPY's context
        // ("column c": a type's refusal), or the first generated column of
        // the rule it breaks (a CHECK, key or foreign key, by its name).
        let rule_columns = db
            .constraint()
            .and_then(|name| self.rules.iter().find(|(n, _)| n == name))
            .map(|(_, cols)| cols.as_slice())
            .unwrap_or_default();
        let column = db
            .column()
            .map(str::to_string)
            .or_else(|| {
                let context = db.where_()?;
                let (_, rest) = context.split_once(", column ")?;
                Some(rest.split(':').next()?.trim().to_string())
            })
            .or_else(|| {
                rule_columns
                    .iter()
                    .find(|c| self.generated.contains(c))
                    .cloned()
            });
        let field = match &column {
            Some(c) => format!("table[{}].columns.{c}", self.table),
            None => format!("table[{}].columns", self.table),
        };
        let detail = db.detail().map(|d| format!("; {d}")).unwrap_or_default();
        let rule = match (db.constraint(), rule_columns) {
            (Some(c), []) => format!(" (constraint {c})"),
            (Some(c), cols) => format!(" (constraint {c}, on {})", cols.join(", ")),
            (None, _) => String::new(),
        };
        Some(Error::Scenario(vec![ScenarioError {
            file: self.scenario_path.clone(),
            line: 0,
            column: 0,
            field,
            message: format!(
                "{}: {} ({code}){detail} — while seeding: the generated rows break the table's rules{rule}; make the generators fit them (a narrower range, a choice, null_fraction = 0, unique, fk) or leave the column out to take its default",
                self.what,
                db.message()
            ),
        }]))
    }

    /// How many chunks fit in [`AHEAD_BYTES`].
    fn max_ahead(&self) -> usize {
        (AHEAD_BYTES / copy::chunk_bytes_estimate(&self.encoders).max(1)).max(1)
    }
}
