//! The last pass of a seed: ANALYZE, and VACUUM (FREEZE) where the pages
//! are not all frozen and visible yet (module docs of `seed`).

use tokio_postgres::Client;

use super::{db_error, flush_wal, run_sql};
use crate::error::Result;

/// The last pass: statistics for every table, every tuple frozen and every
/// page all-visible (so a rehearsal starts without hint-bit writes or an
/// anti-wraparound vacuum). Tables loaded with COPY FREEZE on 14+ only need
/// an ANALYZE, unless seed_sql or after_seed changed some of their pages
/// (fewer all-visible pages than pages); the others get VACUUM (FREEZE,
/// ANALYZE). Returns the tables that were vacuumed.
///
/// A VACUUM right after the session's asynchronous commits can leave the
/// pages of rows they wrote not all-visible, even with the WAL flushed
/// first (measured on 15: 89 of 974 pages after a 10 % UPDATE; a second
/// pass, or the same work done with synchronous commits, marks them all).
/// So each vacuumed table's visibility map is checked again, and vacuumed
/// once more where it is not complete yet.
pub(super) async fn last_pass(
    client: &Client,
    loaded: &[(String, bool)],
    version_num: u32,
) -> Result<Vec<String>> {
    // Before 14, COPY FREEZE froze the tuples but left the visibility map empty.
    let all_visible_on_load = |frozen: bool| frozen && version_num >= 140_000;
    let frozen: Vec<&str> = loaded
        .iter()
        .filter(|(_, frozen)| all_visible_on_load(*frozen))
        .map(|(name, _)| name.as_str())
        .collect();
    // (table, whether its VACUUM must ANALYZE too)
    let mut to_vacuum: Vec<(&str, bool)> = Vec::new();
    if !frozen.is_empty() {
        analyze(client, &frozen).await?;
        for name in frozen {
            if not_all_visible(client, name).await? {
                to_vacuum.push((name, false));
            }
        }
    }
    to_vacuum.extend(
        loaded
            .iter()
            .filter(|(_, f)| !all_visible_on_load(*f))
            .map(|(name, _)| (name.as_str(), true)),
    );
    if to_vacuum.is_empty() {
        return Ok(Vec::new());
    }
    flush_wal(client).await?;
    for &(name, analyze) in &to_vacuum {
        let options = if analyze { "FREEZE, ANALYZE" } else { "FREEZE" };
        let sql = format!("VACUUM ({options}) {name}");
        run_sql(client, &sql, &format!("VACUUM of {name}")).await?;
    }
    for &(name, _) in &to_vacuum {
        if not_all_visible(client, name).await? {
            let sql = format!("VACUUM (FREEZE) {name}");
            run_sql(client, &sql, &format!("VACUUM of {name}")).await?;
        }
    }
    Ok(to_vacuum.iter().map(|(name, _)| name.to_string()).collect())
}

/// Fewer all-visible pages than pages, by pg_class (which ANALYZE and
/// VACUUM refresh from the visibility map).
async fn not_all_visible(client: &Client, name: &str) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT relpages, relallvisible FROM pg_class WHERE oid = $1::text::regclass",
            &[&name],
        )
        .await
        .map_err(|e| db_error(e, &format!("{name}: visibility")))?;
    let (pages, visible): (i32, i32) = (row.get(0), row.get(1));
    if visible < pages {
        tracing::debug!("{name}: {visible} of {pages} pages all-visible: VACUUM (FREEZE)");
    }
    Ok(visible < pages)
}

/// ANALYZE `tables`, without prefetching when they fit well in the
/// server's cache (module docs).
async fn analyze(client: &Client, tables: &[&str]) -> Result<()> {
    let names: Vec<String> = tables.iter().map(|t| t.to_string()).collect();
    let cached: bool = client
        .query_one(
            "SELECT coalesce(sum(pg_table_size(t::regclass)), 0) \
                    <= pg_size_bytes(current_setting('effective_cache_size')) / 4 \
             FROM unnest($1::text[]) t",
            &[&names],
        )
        .await
        .map_err(|e| db_error(e, "table sizes"))?
        .get(0);
    let sql = format!("ANALYZE {}", tables.join(", "));
    if !cached {
        return run_sql(client, &sql, "ANALYZE").await;
    }
    run_sql(client, "SET maintenance_io_concurrency = 0", "ANALYZE").await?;
    run_sql(client, &sql, "ANALYZE").await?;
    run_sql(client, "RESET maintenance_io_concurrency", "ANALYZE").await
}
