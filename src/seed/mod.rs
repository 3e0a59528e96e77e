//! Seeding: schema, deterministic rows over binary COPY, seed_sql, after_seed
//! SQL, statistics and frozen pages; and template databases (`template.rs`)
//! that a seeded database becomes, to be cloned per rehearsal.
//!
//! Rows come in fixed chunks of [`CHUNK_ROWS`](crate::scenario::gen::CHUNK_ROWS) whose values depend only on
//! (seed, table, chunk, column), so any split of the key range gives the same
//! data. Three ways to load a table (`load.rs`):
//!
//! - **freeze** (the default when possible): the table's `create` SQL and a
//!   `COPY ... (FREEZE)` run in one transaction on one connection while the
//!   chunks are generated in parallel threads, a bounded number ahead of the
//!   server (backpressure: the client's memory does not grow with the
//!   table). Rows land already frozen and, on PostgreSQL 14+, every page is
//!   marked all-visible and all-frozen in the visibility map, so no VACUUM
//!   pass is needed: the last pass is an ANALYZE, and a VACUUM (FREEZE) only
//!   for a table whose pages seed_sql or after_seed changed (pg_class
//!   `relallvisible`, which ANALYZE refreshes from the visibility map, says
//!   so). On a 2-core machine this beats parallel loading by 1.7–2× end to
//!   end (benches/README.md): the freeze pass after a non-frozen load
//!   rewrites and WAL-logs every page and costs more than the whole COPY.
//! - **parallel**: N connections COPY disjoint, contiguous chunk ranges at
//!   once. Used when FREEZE is impossible (the table already existed, is
//!   partitioned, or its create SQL refuses a transaction block, such as
//!   CREATE INDEX CONCURRENTLY) or when asked for with [`LoadMode::Parallel`].
//!   Such tables get VACUUM (FREEZE, ANALYZE) at the end.
//! - **single**: in [`OneTransaction`] (`pgrehearse seed`: the whole seed is
//!   one transaction), a table FREEZE cannot load gets one COPY on the
//!   seeding session, inside that transaction: other connections cannot
//!   see a table before it commits, so they cannot share the load. VACUUM
//!   (FREEZE, ANALYZE) at the end, as for parallel.
//!
//! Constant columns of a frozen load do not travel: they become the
//! column's default for the length of the COPY (in the transaction that
//! created the table, so nobody sees it), which saves their bytes on the
//! wire and their parsing on the server (`load.rs`).
//!
//! The seeding session sets what bulk work wants, for itself only (never
//! the server's settings, which the rehearsal measures):
//!
//! - `maintenance_work_mem` at least 256MB and
//!   `max_parallel_maintenance_workers` up to 4: after_seed's primary keys
//!   and indexes build with parallel workers and sort in memory;
//! - `synchronous_commit = off`: no commit of the seed waits for its WAL to
//!   reach the disk (the COPY's, each after_seed statement's, the index
//!   builds'); the WAL writer flushes it in the background while the next
//!   stage runs. Before a VACUUM the session flushes its WAL (a synchronous
//!   commit: a VACUUM cannot set the hint bits of rows whose commit is not
//!   flushed yet), and checks the visibility map after it (last_pass.rs).
//!   Seeding ends with such a flush too, so a finished seed is durable as
//!   before;
//! - `maintenance_io_concurrency = 0` for the ANALYZE, when the tables fit
//!   well in the server's cache (a quarter of `effective_cache_size`): they
//!   were just written, so their pages are in memory and the prefetch
//!   requests ANALYZE makes for each sampled block are system calls for
//!   nothing (about 15 % of its CPU on 2M pgbench_accounts rows).

/// application_name of seeding sessions.
pub const SEED_APP_NAME: &str = "pgrehearse/seed";

mod catalog;
mod copy;
mod last_pass;
mod load;
mod replace;
mod schema;
pub mod staging;
pub mod template;

pub use template::{clone_database, drop_database};

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use tokio_postgres::Client;

use crate::backend::ConnInfo;
use crate::error::{Error, Result};
use crate::scenario::Scenario;

/// How rows reach a table (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadMode {
    /// Freeze when the table was created by its `create` SQL, else
    /// parallel (single in [`OneTransaction`]).
    Auto,
    Freeze,
    Parallel,
    /// One COPY on the seeding session, in its transaction, not frozen:
    /// what [`OneTransaction`] does with a table FREEZE cannot load (a
    /// partitioned one), since other connections cannot see a table before
    /// it commits.
    Single,
}

/// `pgrehearse seed` (staging.rs): every create, load, seed_sql and
/// after_seed statement in one transaction on the seeding session, these
/// drops first, committed only when all of it succeeded: a failure, or the
/// seed dropped half-way, changes nothing. A statement that refuses a
/// transaction block is refused (exit 2) rather than run outside it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OneTransaction {
    /// `--replace`'s drops, before anything else.
    pub drops: Vec<String>,
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
    /// None: a transaction per table, committed before parallel loads and
    /// before seed_sql (rehearsals: their database is theirs alone).
    pub one_transaction: Option<OneTransaction>,
}

impl SeedOptions {
    pub fn new(seed: u64) -> Self {
        SeedOptions {
            seed,
            progress: false,
            workers: None,
            load: LoadMode::Auto,
            one_transaction: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TableReport {
    pub name: String,
    /// Rows the table holds once seeded: those loaded, or where seed_sql or
    /// after_seed may have added or deleted some, counted after them.
    pub rows: u64,
    /// Rows loaded, as counted by the server.
    pub loaded: u64,
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
    /// Of which: the last pass, ANALYZE (and VACUUM (FREEZE) where needed).
    pub vacuum: Duration,
    /// Tables that needed a VACUUM (FREEZE): not loaded frozen, or changed
    /// by seed_sql / after_seed.
    pub vacuumed: Vec<String>,
    pub bytes: u64,
    /// The CHECKPOINT after it ([`checkpoint`]), where the caller asked
    /// for one and the role may: a template is checkpointed once, when made.
    pub checkpoint: Option<Duration>,
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
    load(conn, scenario, opts).await?.finish().await
}

/// What [`load`] leaves for [`Loaded::finish`]: the seeding session and the
/// figures so far.
pub struct Loaded {
    client: Client,
    version_num: u32,
    tables: Vec<TableReport>,
    /// Each table's qualified name, and whether it was loaded frozen.
    loaded: Vec<(String, bool)>,
    started: Instant,
    load: Duration,
    sql: Duration,
}

/// Everything up to the last pass: the tables created and filled, seed_sql
/// and after_seed run, all of it committed. With
/// [`SeedOptions::one_transaction`] it is one transaction, committed right
/// before this returns Ok: an error, or this future dropped (the session
/// ends with it), rolls all of it back.
pub async fn load(conn: &ConnInfo, scenario: &Scenario, opts: &SeedOptions) -> Result<Loaded> {
    let started = Instant::now();
    let client = conn.session(SEED_APP_NAME).await?;
    let version_num = prepare_session(&client).await?;
    let prepared = schema::prepare(&client, scenario).await?;
    let scenario = &prepared.scenario;
    let one = opts.one_transaction.is_some();
    if let Some(tx) = &opts.one_transaction {
        run_sql(&client, "BEGIN", "BEGIN").await?;
        for sql in &tx.drops {
            client
                .batch_execute(sql)
                .await
                .map_err(|e| drop_error(e, sql))?;
        }
    }
    let workers = opts.workers.unwrap_or_else(default_workers).clamp(1, 64);
    let total: u64 = scenario.tables.iter().map(|t| t.rows).sum();
    let bar = progress_bar(total, opts.progress);

    let mut tables = Vec::with_capacity(scenario.tables.len());
    let mut loaded = Vec::with_capacity(scenario.tables.len());
    for &index in &prepared.order {
        let table = &scenario.tables[index];
        bar.set_message(table.name.clone());
        let ctx = load::LoadCtx {
            client: &client,
            conn,
            scenario,
            index,
            opts,
            workers,
            bar: &bar,
        };
        let (report, qualified) = load::load_table(&ctx).await?;
        loaded.push((qualified, report.load == LoadMode::Freeze));
        tables.push(report);
    }
    bar.finish_and_clear();
    let load = started.elapsed();

    for (i, sql) in scenario.seed_sql.iter().enumerate() {
        run_statements(&client, sql, &format!("seed_sql[{i}]"), one).await?;
    }
    for table in &scenario.tables {
        for (i, sql) in table.after_seed.iter().enumerate() {
            let what = format!("table {}: after_seed[{i}]", table.name);
            run_statements(&client, sql, &what, one).await?;
        }
    }
    // What the tables hold now, where seed_sql or after_seed may have added
    // or deleted rows (init's removal of duplicate keys): the report, the
    // completion marker and run.json say that, not the rows asked for.
    for (name, rows) in rows_now(&client, scenario).await? {
        if let Some(t) = tables.iter_mut().find(|t| t.name == name) {
            t.rows = rows;
        }
    }
    if one {
        run_sql(&client, "COMMIT", "COMMIT").await?;
    }
    let sql = started.elapsed() - load;
    Ok(Loaded {
        client,
        version_num,
        tables,
        loaded,
        started,
        load,
        sql,
    })
}

impl Loaded {
    /// The last pass (last_pass.rs), and the session's WAL flushed.
    pub async fn finish(self) -> Result<SeedReport> {
        let vacuumed = last_pass::last_pass(&self.client, &self.loaded, self.version_num).await?;
        flush_wal(&self.client).await?;
        let bytes = self.tables.iter().map(|t| t.bytes).sum();
        let duration = self.started.elapsed();
        Ok(SeedReport {
            tables: self.tables,
            duration,
            load: self.load,
            sql: self.sql,
            vacuum: duration - self.load - self.sql,
            vacuumed,
            bytes,
            checkpoint: None,
        })
    }
}

/// Whether seed_sql or an after_seed statement may add or delete rows (its
/// first word DELETE, INSERT, TRUNCATE, MERGE, COPY, or WITH, which may hold
/// either): then the tables' rows are counted after them.
pub fn rows_may_change(scenario: &Scenario) -> bool {
    scenario
        .seed_sql
        .iter()
        .chain(scenario.tables.iter().flat_map(|t| &t.after_seed))
        .flat_map(|sql| crate::sql::split(sql))
        .filter_map(|st| crate::migrations::classify::first_word(&st))
        .any(|w| {
            matches!(
                w.as_str(),
                "DELETE" | "INSERT" | "TRUNCATE" | "MERGE" | "COPY" | "WITH"
            )
        })
}

/// Each scenario table's rows, counted, where [`rows_may_change`]; else none.
pub async fn rows_now(client: &Client, scenario: &Scenario) -> Result<Vec<(String, u64)>> {
    if !rows_may_change(scenario) {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(scenario.tables.len());
    for t in &scenario.tables {
        let what = format!("table {}: counting its rows", t.name);
        let row = client
            .query_one(
                "SELECT coalesce(to_regclass(quote_ident($1)), to_regclass($1))::text",
                &[&t.name],
            )
            .await
            .map_err(|e| db_error(e, &what))?;
        let Some(table) = row.get::<_, Option<String>>(0) else {
            continue;
        };
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(|e| db_error(e, &what))?
            .get(0);
        out.push((t.name.clone(), n.max(0) as u64));
    }
    Ok(out)
}

/// Wait until everything the session committed asynchronously is on disk:
/// a synchronous commit of a transaction that has an xid flushes the WAL up
/// to its commit record, and so everything before it. (Two messages: the
/// setting in force when a transaction commits decides, and one message is
/// one transaction.)
async fn flush_wal(client: &Client) -> Result<()> {
    let what = "flushing the WAL";
    run_sql(
        client,
        "SET synchronous_commit = on; SELECT txid_current()",
        what,
    )
    .await?;
    run_sql(client, "SET synchronous_commit = off", what).await
}

/// after_seed usually builds indexes and keys: give the seeding session a
/// sort big enough for millions of keys (never lowering a larger setting).
const SEED_MAINTENANCE_WORK_MEM_KB: i64 = 256 * 1024;
/// Parallel workers for after_seed's index builds, at most (the server's
/// max_parallel_workers caps it further).
const SEED_MAINTENANCE_WORKERS: i64 = 4;

/// Session settings for bulk work (module docs); returns server_version_num.
async fn prepare_session(client: &Client) -> Result<u32> {
    let rows = client
        .query(
            "SELECT name, setting::int8 FROM pg_settings WHERE name IN \
             ('maintenance_work_mem', 'max_parallel_maintenance_workers', \
              'max_parallel_workers', 'server_version_num')",
            &[],
        )
        .await
        .map_err(|e| db_error(e, "reading settings"))?;
    let get = |name: &str| -> i64 {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == name)
            .map(|r| r.get(1))
            .unwrap_or(0)
    };
    let mut set = vec![
        "SET standard_conforming_strings = on".to_string(),
        "SET synchronous_commit = off".to_string(),
    ];
    if get("maintenance_work_mem") < SEED_MAINTENANCE_WORK_MEM_KB {
        set.push(format!(
            "SET maintenance_work_mem = '{SEED_MAINTENANCE_WORK_MEM_KB}kB'"
        ));
    }
    let workers = SEED_MAINTENANCE_WORKERS.min(get("max_parallel_workers"));
    if get("max_parallel_maintenance_workers") < workers {
        set.push(format!("SET max_parallel_maintenance_workers = {workers}"));
    }
    run_sql(client, &set.join("; "), "session settings").await?;
    Ok(get("server_version_num") as u32)
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

/// Statement by statement: outside a transaction each in its own implicit
/// one, so that CONCURRENTLY and other transaction-refusing commands work in
/// a list; inside [`OneTransaction`] (`in_one`) errors as [`tx_error`].
async fn run_statements(client: &Client, sql: &str, what: &str, in_one: bool) -> Result<()> {
    for stmt in crate::sql::split(sql) {
        match client.batch_execute(&stmt).await {
            Ok(()) => {}
            Err(e) if in_one => return Err(tx_error(e, what)),
            Err(e) => return Err(db_error(e, what)),
        }
    }
    Ok(())
}

/// An error inside [`OneTransaction`] that says the scenario does not fit
/// the database, not that seeding failed: exit 2 (the transaction rolls
/// back, so nothing was changed). Others as [`db_error`].
fn tx_error(e: tokio_postgres::Error, what: &str) -> Error {
    use tokio_postgres::error::SqlState as S;
    let duplicates = [
        S::DUPLICATE_OBJECT,
        S::DUPLICATE_FUNCTION,
        S::DUPLICATE_TABLE,
        S::DUPLICATE_SCHEMA,
    ];
    let advice = match e.code() {
        Some(c) if *c == S::ACTIVE_SQL_TRANSACTION => {
            "`pgrehearse seed` runs every create, seed_sql and after_seed statement in one \
             transaction, so that a failure changes nothing: write it without CONCURRENTLY \
             (nobody sees the tables before the seed commits) and leave VACUUM to the seed"
        }
        Some(c) if duplicates.contains(c) => {
            "the database has it already: --replace drops what the scenario's SQL creates \
             (tables, views, sequences, types, domains, functions, procedures, schemas, \
             extensions) before creating it again; drop anything else yourself"
        }
        _ => return db_error(e, what),
    };
    Error::Usage(format!(
        "seeding: {what}: {}: {advice}; nothing was changed",
        crate::pg::error_text(&e)
    ))
}

/// A `--replace` drop the database refuses: something outside the
/// scenario depends on what it drops (2BP01; no CASCADE, the detail names
/// it), or holds a name the scenario creates as another kind of object
/// (42809). Exit 2: nothing was changed.
fn drop_error(e: tokio_postgres::Error, sql: &str) -> Error {
    use tokio_postgres::error::SqlState as S;
    let Some(db) = e.as_db_error() else {
        return db_error(e, &format!("--replace: {sql}"));
    };
    let advice = match db.code() {
        c if *c == S::DEPENDENT_OBJECTS_STILL_EXIST => {
            "--replace drops without CASCADE: drop or change what depends on it yourself"
        }
        c if *c == S::WRONG_OBJECT_TYPE => {
            "the scenario creates an object of another kind by that name: drop or rename the \
             database's yourself"
        }
        _ => return db_error(e, &format!("--replace: {sql}")),
    };
    let detail = db
        .detail()
        .map(|d| format!("; {}", d.replace('\n', "; ")))
        .unwrap_or_default();
    Error::Usage(format!(
        "--replace refused: {sql}: {} ({}){detail}: {advice}; nothing was changed",
        db.message(),
        db.code().code()
    ))
}

/// CHECKPOINT once the data are in, before the rehearsal: production's
/// data sit on disk long since, and so should the rehearsal's. Without it
/// the checkpointer writes the seed's dirty pages in the background while
/// the migration runs (I/O no production migration competes with), and a
/// page the migration or the app changes first writes no full-page image
/// to the WAL (it was written since the last checkpoint), so the WAL
/// figures come out smaller than production's. Its time, or why it was not
/// done: a role that is neither superuser nor in `pg_checkpoint` may not.
pub async fn checkpoint(conn: &ConnInfo) -> Result<std::result::Result<Duration, String>> {
    let started = Instant::now();
    let client = conn.session(SEED_APP_NAME).await?;
    match client.batch_execute("CHECKPOINT").await {
        Ok(()) => Ok(Ok(started.elapsed())),
        Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE) => {
            Ok(Err(crate::pg::error_text(&e)))
        }
        Err(e) => Err(db_error(e, "CHECKPOINT")),
    }
}

/// [`checkpoint`], its refusal said in the log (the rehearsal runs on).
pub async fn checkpoint_or_say(conn: &ConnInfo) -> Result<Option<Duration>> {
    Ok(match checkpoint(conn).await? {
        Ok(took) => Some(took),
        Err(why) => {
            tracing::info!("no CHECKPOINT after seeding: {why}");
            None
        }
    })
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
