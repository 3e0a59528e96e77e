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
//!   this beats parallel loading by ~2× end to end (benches/README.md): the
//!   freeze pass after a non-frozen load rewrites and WAL-logs every page and
//!   costs more than the whole COPY.
//! - **parallel**: N connections COPY disjoint, contiguous chunk ranges at
//!   once. Used when FREEZE is impossible (the table already existed, or is
//!   partitioned) or when asked for with [`LoadMode::Parallel`].

mod copy;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{pin_mut, SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use tokio_postgres::{Client, NoTls};

use crate::error::{Error, Result, ScenarioError};
use crate::scenario::gen::{PgType, CHUNK_ROWS};
use crate::scenario::{Scenario, TablePlan};
use crate::target::ConnInfo;
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
    let client = connect(conn, &conn.dbname).await?;
    let workers = opts.workers.unwrap_or_else(default_workers).clamp(1, 64);
    let total: u64 = scenario.tables.iter().map(|t| t.rows).sum();
    let bar = progress_bar(total, opts.progress);

    let mut tables = Vec::with_capacity(scenario.tables.len());
    let mut names = Vec::with_capacity(scenario.tables.len());
    for (index, table) in scenario.tables.iter().enumerate() {
        bar.set_message(table.name.clone());
        let (report, qualified) =
            load_table(&client, conn, scenario, index, opts, workers, &bar).await?;
        tables.push(report);
        names.push(qualified);
    }
    bar.finish_and_clear();

    for (i, sql) in scenario.seed_sql.iter().enumerate() {
        run_sql(&client, sql, &format!("seed_sql[{i}]")).await?;
    }
    for table in &scenario.tables {
        for (i, sql) in table.after_seed.iter().enumerate() {
            run_sql(
                &client,
                sql,
                &format!("table {}: after_seed[{i}]", table.name),
            )
            .await?;
        }
    }
    for name in &names {
        run_sql(
            &client,
            &format!("VACUUM (FREEZE, ANALYZE) {name}"),
            &format!("VACUUM of {name}"),
        )
        .await?;
    }
    let bytes = tables.iter().map(|t| t.bytes).sum();
    Ok(SeedReport {
        tables,
        duration: started.elapsed(),
        bytes,
    })
}

/// Available parallelism, at least 2 (one generates while one loads), at most 8.
pub fn default_workers() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(2, 8)
}

fn progress_bar(total: u64, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
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
    run_sql(client, "BEGIN", "BEGIN").await?;
    run_sql(
        client,
        &table.create,
        &format!("table {}: create", table.name),
    )
    .await?;
    let info = describe(client, scenario, index).await?;
    let encoders = Arc::new(bind_columns(scenario, index, &info)?);
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
        let n_conn = workers.min(chunks as usize).max(1);
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..n_conn as u64 {
            let range = (w * chunks / n_conn as u64)..((w + 1) * chunks / n_conn as u64);
            let (job, sql, conn) = (job.clone(), sql.clone(), conn.clone());
            tasks.spawn(async move {
                let c = connect(&conn, &conn.dbname).await?;
                job.copy(&c, &sql, range, 2).await
            });
        }
        let (mut n, mut b) = (0, 0);
        while let Some(res) = tasks.join_next().await {
            let (rn, rb) = res.map_err(|e| Error::Other(anyhow::anyhow!("COPY worker: {e}")))??;
            n += rn;
            b += rb;
        }
        (n, b, n_conn)
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

/// What the catalog says about a freshly created table.
struct TableInfo {
    qualified: String,
    /// A plain table created in the current transaction: COPY FREEZE works.
    freezable: bool,
    /// name, resolved type (None = not writable by us), format_type, generated.
    columns: Vec<(String, Option<PgType>, String, bool)>,
}

async fn describe(client: &Client, scenario: &Scenario, index: usize) -> Result<TableInfo> {
    let table: &TablePlan = &scenario.tables[index];
    let ctx = |e| db_error(e, &format!("table {}: catalog lookup", table.name));
    let row = client
        .query_opt(
            "SELECT c.oid, c.oid::regclass::text, c.relkind::text, \
                    c.xmin::text = (txid_current() % 4294967296)::text \
             FROM pg_class c \
             WHERE c.oid = coalesce(to_regclass($1), to_regclass(quote_ident($1)))",
            &[&table.name],
        )
        .await
        .map_err(ctx)?;
    let Some(row) = row else {
        return Err(bad_table(
            scenario,
            index,
            "name",
            format!(
                "table {:?} does not exist after running its create SQL",
                table.name
            ),
        ));
    };
    let oid: u32 = row.get(0);
    let relkind: String = row.get(2);
    let created_here: bool = row.get(3);
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, format_type(a.atttypid, a.atttypmod), \
                    t.typtype::text, t.typname::text, t.typbasetype, a.attgenerated::text <> '' \
             FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[&oid],
        )
        .await
        .map_err(ctx)?;
    let mut columns = Vec::with_capacity(rows.len());
    for r in rows {
        let (mut typtype, mut typname, mut typid, mut base): (String, String, u32, u32) =
            (r.get(3), r.get(4), r.get(1), r.get(5));
        // A domain is written as its base type; follow nested domains.
        for _ in 0..16 {
            if typtype != "d" {
                break;
            }
            typid = base;
            let b = client
                .query_one(
                    "SELECT typtype::text, typname::text, typbasetype FROM pg_type WHERE oid = $1",
                    &[&typid],
                )
                .await
                .map_err(ctx)?;
            (typtype, typname, base) = (b.get(0), b.get(1), b.get(2));
        }
        let ty = if typtype == "e" || typname == "citext" {
            Some(PgType::Text)
        } else {
            PgType::from_oid(typid)
        };
        columns.push((r.get(0), ty, r.get(2), r.get(6)));
    }
    Ok(TableInfo {
        qualified: row.get(1),
        freezable: relkind == "r" && created_here,
        columns,
    })
}

/// Pair each scenario column with its table column, in scenario order.
fn bind_columns(scenario: &Scenario, index: usize, info: &TableInfo) -> Result<Vec<ColumnEncoder>> {
    let table = &scenario.tables[index];
    let mut out = Vec::with_capacity(table.columns.len());
    let mut problems = Vec::new();
    for (stream, col) in table.columns.iter().enumerate() {
        let field = format!("table[{index}].columns.{}", col.name);
        let found = info.columns.iter().find(|c| c.0 == col.name).or_else(|| {
            let lower = col.name.to_lowercase();
            let mut m = info.columns.iter().filter(|c| c.0 == lower);
            m.next().filter(|_| m.next().is_none())
        });
        let Some((name, ty, type_name, generated)) = found else {
            let have: Vec<&str> = info.columns.iter().map(|c| c.0.as_str()).collect();
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "table {} has no column {:?} (it has: {})",
                    table.name,
                    col.name,
                    have.join(", ")
                ),
            ));
            continue;
        };
        if *generated {
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "{}.{name} is a generated column: Postgres computes it, drop its generator",
                    table.name
                ),
            ));
            continue;
        }
        let Some(ty) = ty else {
            problems.push(problem(
                scenario,
                &field,
                format!(
                    "{}.{name} has type {type_name}, which generators cannot fill; \
                     use int/bigint, real/double precision, numeric, text/varchar/char, \
                     an enum, boolean, timestamp[tz], date, uuid, json or jsonb — or fill it \
                     with seed_sql / after_seed",
                    table.name
                ),
            ));
            continue;
        };
        match ColumnEncoder::new(name.clone(), stream, col.gen.sampler(), *ty) {
            Ok(enc) => out.push(enc),
            Err(e) => problems.push(problem(
                scenario,
                &field,
                format!("{}.{name} ({type_name}): {e}", table.name),
            )),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(Error::Scenario(problems))
    }
}

/// A scenario problem found only against the live schema: no source position.
fn problem(scenario: &Scenario, field: &str, message: String) -> ScenarioError {
    ScenarioError {
        file: scenario.path.clone(),
        line: 0,
        column: 0,
        field: field.to_string(),
        message,
    }
}

fn bad_table(scenario: &Scenario, index: usize, field: &str, message: String) -> Error {
    Error::Scenario(vec![problem(
        scenario,
        &format!("table[{index}].{field}"),
        message,
    )])
}

/// serial / identity columns we filled: move their sequences past the data so
/// the workload's INSERTs do not collide with seeded keys.
async fn sync_sequences(client: &Client, table: &str, encoders: &[ColumnEncoder]) -> Result<()> {
    for e in encoders {
        let seq: Option<String> = client
            .query_one("SELECT pg_get_serial_sequence($1, $2)", &[&table, &e.name])
            .await
            .map_err(|err| db_error(err, &format!("{table}: sequence lookup")))?
            .get(0);
        if let Some(seq) = seq {
            let sql = format!(
                "SELECT setval($1::text::regclass, m) FROM (SELECT max({})::bigint AS m FROM {table}) s \
                 WHERE m IS NOT NULL",
                quote_ident(&e.name)
            );
            client
                .execute(&sql, &[&seq])
                .await
                .map_err(|err| db_error(err, &format!("{table}: setval of {seq}")))?;
        }
    }
    Ok(())
}

/// Make `to` a copy of `from` (CREATE DATABASE ... TEMPLATE), after ending
/// every session connected to `from` (a template must have none).
pub async fn clone_database(conn: &ConnInfo, from: &str, to: &str) -> Result<()> {
    let admin = admin_client(conn, &[from, to]).await?;
    let create = format!(
        "CREATE DATABASE {} TEMPLATE {}",
        quote_ident(to),
        quote_ident(from)
    );
    // Terminated backends take a moment to exit: retry "being accessed".
    for attempt in 0.. {
        admin
            .execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&from],
            )
            .await
            .map_err(|e| db_error(e, "ending sessions on the template"))?;
        match admin.batch_execute(&create).await {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < 100
                    && e.code() == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => return Err(db_error(e, &format!("cloning {from} into {to}"))),
        }
    }
    unreachable!("the loop returns")
}

/// Drop `name` (ending its sessions first); no error when it does not exist.
pub async fn drop_database(conn: &ConnInfo, name: &str) -> Result<()> {
    let admin = admin_client(conn, &[name]).await?;
    admin
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            quote_ident(name)
        ))
        .await
        .map_err(|e| db_error(e, &format!("dropping database {name}")))
}

/// A session in a database other than `avoid`: the work database, else
/// `postgres`, else `template1`.
async fn admin_client(conn: &ConnInfo, avoid: &[&str]) -> Result<Client> {
    let mut last = None;
    for db in [conn.dbname.as_str(), "postgres", "template1"] {
        if avoid.contains(&db) {
            continue;
        }
        match connect(conn, db).await {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| Error::NoPostgres("no database to connect to".into())))
}

async fn connect(conn: &ConnInfo, dbname: &str) -> Result<Client> {
    let (client, connection) = conn.config_for(dbname).connect(NoTls).await.map_err(|e| {
        Error::NoPostgres(format!(
            "cannot connect to {}: {}",
            ConnInfo {
                dbname: dbname.to_string(),
                ..conn.clone()
            }
            .redacted(),
            describe_pg_error(&e)
        ))
    })?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

async fn run_sql(client: &Client, sql: &str, what: &str) -> Result<()> {
    client
        .batch_execute(sql)
        .await
        .map_err(|e| db_error(e, what))
}

fn db_error(e: tokio_postgres::Error, what: &str) -> Error {
    Error::rehearsal(format!("seeding: {what}: {}", describe_pg_error(&e)))
}

/// The server's message (with detail and hint) rather than just "db error".
fn describe_pg_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} ({})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(h) = db.hint() {
                s.push_str(&format!("; hint: {h}"));
            }
            s
        }
        None => {
            let mut s = e.to_string();
            let mut src = std::error::Error::source(e);
            while let Some(inner) = src {
                s.push_str(&format!(": {inner}"));
                src = inner.source();
            }
            s
        }
    }
}

/// `"name"` with embedded quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
