//! The one session `init` opens on the source: a single `BEGIN ISOLATION
//! LEVEL REPEATABLE READ READ ONLY` transaction (one consistent snapshot,
//! and the server refuses any write), catalog and statistics SELECTs only,
//! then COMMIT. It never creates anything: not even the scratch database the
//! url backend makes for a rehearsal.
//!
//! `lock_timeout` is set for the transaction: describing an app statement
//! (statements.rs) takes the locks parsing takes, and init must never queue
//! behind a migration running on the source.

use tokio_postgres::Client;

use super::model::{Source, Table};
use super::{catalog, depends, statements, stats, views, InitOptions};
use crate::backend::url::parse_database_url;
use crate::error::{Error, Result};

/// application_name of the session, in pg_stat_activity and server logs.
pub const APP_NAME: &str = "pgrehearse/init";

/// A failed catalog read: the database cannot be read (exit 3).
pub fn read_error(e: tokio_postgres::Error, what: &str) -> Error {
    Error::NoPostgres(format!(
        "cannot read {what} from the source database: {}",
        crate::pg::error_text(&e)
    ))
}

/// Connect, read everything `opts` asks for in one read-only transaction.
pub async fn read(opts: &InitOptions) -> Result<Source> {
    let (server, dbname) = parse_database_url(&opts.database_url)?;
    let client = server.session_on(&dbname, APP_NAME).await?;
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
        .map_err(|e| read_error(e, "a read-only transaction"))?;
    let source = read_in_transaction(&client, opts).await;
    // Read-only: ending it either way changes nothing.
    let end = if source.is_ok() { "COMMIT" } else { "ROLLBACK" };
    let ended = client.batch_execute(end).await;
    let source = source?;
    ended.map_err(|e| read_error(e, "the end of the transaction"))?;
    Ok(source)
}

async fn read_in_transaction(client: &Client, opts: &InitOptions) -> Result<Source> {
    // The schema first on the search path: the server then writes its
    // objects' names unqualified, as the rehearsal database will have them.
    let row = client
        .query_one(
            "SELECT set_config('search_path', quote_ident($1), true), \
                    set_config('lock_timeout', '1s', true), \
                    set_config('statement_timeout', '60s', true), \
                    current_setting('server_version_num')::int, current_database()::text, \
                    EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1), \
                    current_setting('pg_stat_statements.max', true) IS NOT NULL",
            &[&opts.schema],
        )
        .await
        .map_err(|e| read_error(e, "the server version"))?;
    let version_num = row.get::<_, i32>(3) as u32;
    if version_num < 120000 {
        return Err(Error::NoPostgres(format!(
            "init reads PostgreSQL 12 or newer; the source runs {}.{}",
            version_num / 10000,
            version_num % 10000
        )));
    }
    if !row.get::<_, bool>(5) {
        return Err(Error::Usage(format!(
            "--schema: the source database has no schema `{}`",
            opts.schema
        )));
    }
    let pgss_loaded: bool = row.get(6);
    let mut source = Source {
        database: row.get(4),
        version_num,
        schema: opts.schema.clone(),
        ..Source::default()
    };
    let in_schema = catalog::schema_tables(client, &opts.schema).await?;
    if in_schema.is_empty() {
        return Err(Error::Usage(format!(
            "schema `{}` of the source database has no tables",
            opts.schema
        )));
    }
    let picked = pick(&in_schema, opts)?;
    let (mut tables, added) = fk_closure(client, in_schema, picked).await?;
    catalog::fill(client, &mut tables).await?;
    let types = catalog::types(client, &mut tables).await?;
    let depends = depends::read(client, &mut tables, &opts.schema).await?;
    stats::fill(client, &mut tables).await?;
    source.relations = catalog::relation_names(client, &opts.schema).await?;
    source.sequences = shared_sequences(&tables);
    source.added_by_fk = added;
    source.named_tables = opts.tables.is_some();
    source.types = types.defs;
    source.type_schemas = types.schemas;
    let mut extensions = types.extensions;
    extensions.extend(depends.extensions);
    extensions.sort();
    extensions.dedup();
    source.extensions = extensions;
    source.functions = depends.functions;
    source.function_defs = depends.function_defs;
    source.tables = tables;
    source.views = views::read(client, &opts.schema).await?;
    source.statements = statements::read(client, &source, pgss_loaded).await?;
    Ok(source)
}

/// The tables `--tables` names (every table of the schema without it).
fn pick(in_schema: &[Table], opts: &InitOptions) -> Result<Vec<u32>> {
    let Some(names) = &opts.tables else {
        return Ok(in_schema.iter().map(|t| t.oid).collect());
    };
    let mut picked = Vec::new();
    let mut missing = Vec::new();
    for name in names {
        // As written, else as an unquoted identifier folds.
        let found = in_schema
            .iter()
            .find(|t| &t.name == name)
            .or_else(|| in_schema.iter().find(|t| t.name == name.to_lowercase()));
        match found {
            Some(t) if !picked.contains(&t.oid) => picked.push(t.oid),
            Some(_) => {}
            None => missing.push(name.as_str()),
        }
    }
    if !missing.is_empty() {
        let have: Vec<&str> = in_schema.iter().take(20).map(|t| t.name.as_str()).collect();
        let more = if in_schema.len() > 20 { ", ..." } else { "" };
        return Err(Error::Usage(format!(
            "--tables: no table {} in schema `{}` (it has: {}{more})",
            missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", "),
            opts.schema,
            have.join(", ")
        )));
    }
    Ok(picked)
}

/// The picked tables plus every table their foreign keys reach, and the
/// names of those added.
async fn fk_closure(
    client: &Client,
    in_schema: Vec<Table>,
    picked: Vec<u32>,
) -> Result<(Vec<Table>, Vec<String>)> {
    let mut pool = in_schema;
    let mut chosen: Vec<Table> = Vec::new();
    let mut added = Vec::new();
    let mut frontier = picked.clone();
    // Every oid looked for once: one that names no table to read (a
    // partition, which its parent brings) must not be looked for again.
    let mut tried: Vec<u32> = Vec::new();
    while !frontier.is_empty() {
        tried.extend(&frontier);
        let mut elsewhere = Vec::new();
        for oid in &frontier {
            if chosen.iter().any(|t| t.oid == *oid) {
                continue;
            }
            match pool.iter().position(|t| t.oid == *oid) {
                Some(i) => chosen.push(pool.swap_remove(i)),
                None => elsewhere.push(*oid),
            }
        }
        if !elsewhere.is_empty() {
            for t in catalog::tables_by_oid(client, &elsewhere).await? {
                if !chosen.iter().any(|c| c.oid == t.oid) {
                    chosen.push(t);
                }
            }
        }
        let oids: Vec<u32> = chosen.iter().map(|t| t.oid).collect();
        frontier = catalog::fk_edges(client, &oids)
            .await?
            .into_iter()
            .map(|(_, parent)| parent)
            .filter(|p| !oids.contains(p) && !tried.contains(p))
            .collect();
        frontier.sort_unstable();
        frontier.dedup();
    }
    for t in &chosen {
        if !picked.contains(&t.oid) {
            added.push(format!("{}.{}", t.schema, t.name));
        }
    }
    added.sort();
    chosen.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((chosen, added))
}

/// Sequences column defaults take `nextval` of that are not a serial
/// column's own: `nextval('order_no_seq'::regclass)` needs the sequence.
fn shared_sequences(tables: &[Table]) -> Vec<String> {
    let re = regex::Regex::new(r"nextval\('((?:[^']|'')+)'::regclass\)").expect("static regex");
    let mut out: Vec<String> = tables
        .iter()
        .flat_map(|t| &t.columns)
        .filter(|c| !c.serial)
        .filter_map(|c| c.default.as_deref())
        .flat_map(|d| re.captures_iter(d).map(|m| m[1].replace("''", "'")))
        .collect();
    out.sort();
    out.dedup();
    out
}
