//! What the migration session reads at each step's boundaries, while it
//! holds no lock: the database's relations (so that a lock on a relation the
//! step created or dropped is named, marked `(new)` / `(dropped)`), and the
//! scenario tables' footprint — table bytes, index bytes, dead tuples.
//!
//! Sizes never queue behind a lock: where the session may call
//! `pg_stat_file` (a superuser, or `pg_read_server_files`: every server we
//! own) they are the sizes of the relations' files (found through
//! `pg_relation_filepath`, a catalog read that takes no lock), which is what
//! `pg_relation_size` reports, to the byte; elsewhere `pg_table_size` /
//! `pg_indexes_size` under a 200 ms `lock_timeout`, unknown when that
//! expires. Dead tuples are `pg_stat_get_dead_tuples` after the session
//! flushed its own statistics (`pg_stat_force_next_flush`, PostgreSQL 15+):
//! the migration's own are exact, app sessions' may lag up to a second.

use std::collections::HashMap;
use std::time::Duration;

use tokio_postgres::{Client, Statement};

/// How long a boundary read may take: a hung server must not hold the
/// migration up.
const BOUNDARY_WAIT: Duration = Duration::from_secs(5);

/// The scenario tables' footprint at one boundary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Footprint {
    pub table_bytes: u64,
    pub index_bytes: u64,
    pub dead_tuples: u64,
}

/// One boundary: the relations by oid, and the footprint (or why unknown).
#[derive(Debug, Clone, Default)]
pub(super) struct Boundary {
    pub(super) relations: HashMap<u32, String>,
    /// Each index's table, by oid.
    pub(super) index_tables: HashMap<u32, u32>,
    /// The materialized views.
    pub(super) matviews: Vec<u32>,
    pub(super) footprint: Option<Footprint>,
    pub(super) unknown: Option<String>,
}

/// How this session reads sizes.
pub(super) struct Catalog {
    relations: Statement,
    sizes: Statement,
    by_files: bool,
    /// PostgreSQL 15+: the session can flush its statistics on demand.
    can_flush: bool,
    /// run.json `sizes_method`.
    pub(super) method: String,
}

/// The scenario tables (a partitioned one by its partitions:
/// [`crate::pg::scenario_storage_ctes`]), their TOAST tables and indexes:
/// `kind` is `table` for what pg_table_size counts, `index` for
/// pg_indexes_size.
fn rels() -> String {
    format!(
        "{}, rels AS (SELECT oid, 'table' AS kind FROM tabs \
            UNION ALL SELECT reltoastrelid, 'table' FROM tabs WHERE reltoastrelid <> 0 \
            UNION ALL SELECT i.indexrelid, 'table' FROM tabs t JOIN pg_index i ON i.indrelid = t.reltoastrelid \
            UNION ALL SELECT i.indexrelid, 'index' FROM tabs t JOIN pg_index i ON i.indrelid = t.oid)",
        crate::pg::scenario_storage_ctes(&crate::pg::SizedTables::oids_sql(1, 2, 3))
    )
}

impl Catalog {
    pub(super) async fn prepare(
        client: &Client,
        version_num: u32,
    ) -> Result<Catalog, tokio_postgres::Error> {
        let relations = client
            .prepare(
                "SELECT coalesce(array_agg(c.oid::int8), '{}'), coalesce(array_agg(c.oid::regclass::text), '{}'), \
                    coalesce(array_agg(coalesce(i.indrelid, 0)::int8), '{}'), \
                    coalesce(array_agg(c.oid::int8) FILTER (WHERE c.relkind = 'm'), '{}') \
                 FROM pg_class c LEFT JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relnamespace NOT IN \
                 ('pg_catalog'::regnamespace, 'information_schema'::regnamespace, 'pg_toast'::regnamespace)",
            )
            .await?;
        let by_files: bool = client
            .query_one(
                "SELECT has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE')",
                &[],
            )
            .await?
            .get(0);
        let dead = "(SELECT coalesce(sum(pg_stat_get_dead_tuples(oid)), 0)::int8 FROM tabs)";
        let rels = rels();
        let sizes = if by_files {
            // A main fork continues in `path.1`, `path.2` ... once a segment
            // is full; the free space and visibility maps are `_fsm`, `_vm`.
            format!(
                "{rels}, files AS (SELECT kind, pg_relation_filepath(oid) AS path FROM rels), \
                 seg AS (SELECT pg_size_bytes(current_setting('segment_size')) AS seg_bytes) \
                 SELECT coalesce(sum(b) FILTER (WHERE kind = 'table'), 0)::int8, \
                        coalesce(sum(b) FILTER (WHERE kind = 'index'), 0)::int8, {dead} \
                 FROM (SELECT f.kind, s.b FROM files f, LATERAL ( \
                    WITH RECURSIVE main(n, b) AS ( \
                        SELECT 0, (pg_stat_file(f.path, true)).size \
                        UNION ALL SELECT n + 1, (pg_stat_file(f.path || '.' || (n + 1), true)).size \
                        FROM main WHERE b >= (SELECT seg_bytes FROM seg)) \
                    SELECT b FROM main \
                    UNION ALL SELECT (pg_stat_file(f.path || '_fsm', true)).size \
                    UNION ALL SELECT (pg_stat_file(f.path || '_vm', true)).size) s(b)) x"
            )
        } else {
            format!(
                "{rels} SELECT coalesce(sum(pg_relation_size(oid, 'main') + pg_relation_size(oid, 'fsm') \
                    + pg_relation_size(oid, 'vm')) FILTER (WHERE kind = 'table'), 0)::int8, \
                 coalesce(sum(pg_relation_size(oid, 'main') + pg_relation_size(oid, 'fsm') \
                    + pg_relation_size(oid, 'vm')) FILTER (WHERE kind = 'index'), 0)::int8, {dead} FROM rels"
            )
        };
        let sizes = client.prepare(&sizes).await?;
        let can_flush = version_num >= 150000;
        let method = format!(
            "{}; dead tuples: pg_stat_get_dead_tuples{}",
            if by_files {
                "file sizes (pg_stat_file of each relation's files, no lock taken): exact, as pg_relation_size"
            } else {
                "pg_relation_size under lock_timeout 200ms (pg_stat_file not allowed): exact, unknown when a lock held the table"
            },
            if can_flush {
                " after the migration flushed its own statistics (app sessions' up to 1 s behind)"
            } else {
                " (statistics reach it up to a second late before PostgreSQL 15)"
            }
        );
        Ok(Catalog {
            relations,
            sizes,
            by_files,
            can_flush,
            method,
        })
    }

    /// Read a boundary on `client` (which holds no lock now).
    pub(super) async fn read(
        &self,
        client: &Client,
        tables: &[u32],
        sized: &crate::pg::SizedTables,
    ) -> Boundary {
        match tokio::time::timeout(BOUNDARY_WAIT, self.read_now(client, tables, sized)).await {
            Ok(b) => b,
            Err(_) => Boundary {
                unknown: Some(format!(
                    "the server did not answer within {BOUNDARY_WAIT:?}"
                )),
                ..Boundary::default()
            },
        }
    }

    async fn read_now(
        &self,
        client: &Client,
        tables: &[u32],
        sized: &crate::pg::SizedTables,
    ) -> Boundary {
        let flush = async {
            if self.can_flush {
                // Flushed before the result of this returns: the next query
                // sees the session's own dead tuples.
                let _ = client
                    .batch_execute("SELECT pg_stat_force_next_flush()")
                    .await;
            }
        };
        let rels = client.query_one(&self.relations, &[]);
        let (set, reset) = if self.by_files {
            ("", "")
        } else {
            ("SET lock_timeout = '200ms'", "RESET lock_timeout")
        };
        let set = async {
            if !set.is_empty() {
                let _ = client.batch_execute(set).await;
            }
        };
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] =
            [&tables, &sized.names, &sized.every_table];
        let sizes = client.query_one(&self.sizes, &params);
        let reset = async {
            if !reset.is_empty() {
                let _ = client.batch_execute(reset).await;
            }
        };
        // Pipelined, in this order.
        let (_, rels, _, sizes, _) = tokio::join!(flush, rels, set, sizes, reset);
        let (relations, index_tables, matviews) = match rels {
            Ok(r) => {
                let oids: Vec<i64> = r.get(0);
                let names: Vec<String> = r.get(1);
                let tables: Vec<i64> = r.get(2);
                let index_tables = oids
                    .iter()
                    .zip(&tables)
                    .filter(|(_, t)| **t != 0)
                    .map(|(o, t)| (*o as u32, *t as u32))
                    .collect();
                let relations = oids.into_iter().map(|o| o as u32).zip(names).collect();
                let matviews: Vec<i64> = r.get(3);
                (
                    relations,
                    index_tables,
                    matviews.into_iter().map(|o| o as u32).collect(),
                )
            }
            Err(_) => (HashMap::new(), HashMap::new(), Vec::new()),
        };
        match sizes {
            Ok(r) => Boundary {
                relations,
                index_tables,
                matviews,
                footprint: Some(Footprint {
                    table_bytes: r.get::<_, i64>(0).max(0) as u64,
                    index_bytes: r.get::<_, i64>(1).max(0) as u64,
                    dead_tuples: r.get::<_, i64>(2).max(0) as u64,
                }),
                unknown: None,
            },
            Err(e) => Boundary {
                relations,
                index_tables,
                matviews,
                footprint: None,
                unknown: Some(format!(
                    "the sizes could not be read: {}",
                    crate::pg::error_text(&e)
                )),
            },
        }
    }
}

/// Names of the relations the migration locked, settled per step: the name
/// a relation had at the step's start, or — created by the step — at its
/// end, marked `(new)`; dropped by the step, marked `(dropped)`. A table a
/// step renamed goes by its new name from the next step on.
#[derive(Debug, Clone, Default)]
pub struct RelationNames {
    /// The first name each relation was seen with: for one a step's own
    /// readings do not have.
    names: HashMap<u32, String>,
    /// Each index the migration could lock, with its table: an index keeps
    /// its table for life.
    index_tables: HashMap<u32, u32>,
    /// The materialized views: the app can read them, never write them.
    matviews: std::collections::HashSet<u32>,
    steps: Vec<StepRelations>,
}

#[derive(Debug, Clone, Default)]
struct StepRelations {
    phase: String,
    step: String,
    created: Vec<u32>,
    dropped: Vec<u32>,
    /// The name at the step's start, else at its end.
    names: HashMap<u32, String>,
    /// Both boundaries were read: what is in neither was made and dropped
    /// inside the step.
    read: bool,
    /// Only the start was read (the step's session died with it): what is
    /// not in that reading was made by the step.
    before_only: Option<std::collections::HashSet<u32>>,
}

impl RelationNames {
    /// Remember a step's relations: those at its start and at its end.
    pub fn step(
        &mut self,
        phase: &str,
        step: &str,
        before: &HashMap<u32, String>,
        after: &HashMap<u32, String>,
    ) {
        for (oid, name) in before.iter().chain(after) {
            self.names.entry(*oid).or_insert_with(|| name.clone());
        }
        // Without a reading on one side, nothing can be said to be new or gone.
        let read = !before.is_empty() && !after.is_empty();
        let (created, dropped) = if !read {
            (Vec::new(), Vec::new())
        } else {
            (
                after
                    .keys()
                    .filter(|o| !before.contains_key(o))
                    .copied()
                    .collect(),
                before
                    .keys()
                    .filter(|o| !after.contains_key(o))
                    .copied()
                    .collect(),
            )
        };
        let before_only =
            (!before.is_empty() && after.is_empty()).then(|| before.keys().copied().collect());
        let mut names = after.clone();
        names.extend(before.iter().map(|(o, n)| (*o, n.clone())));
        self.steps.push(StepRelations {
            phase: phase.to_string(),
            step: step.to_string(),
            created,
            dropped,
            names,
            read,
            before_only,
        });
    }

    /// Remember which table each index belongs to, and which relations are
    /// materialized views.
    pub fn kinds(&mut self, index_tables: &HashMap<u32, u32>, matviews: &[u32]) {
        self.index_tables.extend(index_tables);
        self.matviews.extend(matviews);
    }

    /// A materialized view: nothing the app does writes it.
    pub fn is_matview(&self, oid: Option<u32>) -> bool {
        oid.is_some_and(|o| self.matviews.contains(&o))
    }

    /// For an index locked during `phase / step`: its table's name there,
    /// without a `(new)`/`(dropped)` mark (the table an index is on, which
    /// a lock on the index is held for); empty for anything else.
    pub fn table_of(&self, phase: &str, step: &str, oid: Option<u32>) -> String {
        oid.and_then(|o| self.index_tables.get(&o))
            .and_then(|t| self.name(phase, step, Some(*t), ""))
            .map(|n| crate::locks::unmarked(&n).to_string())
            .unwrap_or_default()
    }

    /// The name to report for relation `oid`, locked during `phase / step`,
    /// which the session that saw the lock called `seen`. None when nobody
    /// ever saw a name: a relation created and dropped inside one statement
    /// (a rewrite's transient heap), which no other session could wait for.
    pub fn name(&self, phase: &str, step: &str, oid: Option<u32>, seen: &str) -> Option<String> {
        let Some(oid) = oid else {
            return Some(seen.to_string());
        };
        let bare = !seen.is_empty() && seen.bytes().all(|b| b.is_ascii_digit());
        let st = self
            .steps
            .iter()
            .find(|s| s.phase == phase && s.step == step);
        let base = match st
            .and_then(|s| s.names.get(&oid))
            .or_else(|| self.names.get(&oid))
        {
            Some(n) => n.clone(),
            None if !bare => seen.to_string(),
            None => return None,
        };
        let mark = match st {
            Some(s) if s.created.contains(&oid) => " (new)",
            Some(s) if s.dropped.contains(&oid) => " (dropped)",
            // Seen by name but in neither reading: made and dropped in the step.
            Some(s) if s.read && !self.names.contains_key(&oid) => " (new, dropped)",
            // The end went unread (a failure took the session): whether it
            // outlived the step is unknown, but nobody could wait for it
            // before the step made it.
            Some(s) if s.before_only.as_ref().is_some_and(|b| !b.contains(&oid)) => " (new)",
            _ => "",
        };
        Some(format!("{base}{mark}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(u32, &str)]) -> HashMap<u32, String> {
        pairs.iter().map(|(o, n)| (*o, n.to_string())).collect()
    }

    #[test]
    fn new_and_dropped_relations_are_marked() {
        let mut names = RelationNames::default();
        names.step(
            "p",
            "swap",
            &map(&[(10, "orders"), (11, "orders_old_idx")]),
            &map(&[(10, "orders"), (12, "orders_new_idx")]),
        );
        let n = |oid, seen| names.name("p", "swap", Some(oid), seen);
        assert_eq!(n(10, "orders").as_deref(), Some("orders"));
        // The poller saw the new index only by its oid.
        assert_eq!(n(12, "12").as_deref(), Some("orders_new_idx (new)"));
        // The session saw the dropped index only by its oid.
        assert_eq!(n(11, "11").as_deref(), Some("orders_old_idx (dropped)"));
        // A transient heap: never seen by name.
        assert_eq!(n(13, "13"), None);
        // A table created and dropped inside the step, seen by name.
        assert_eq!(n(14, "scratch").as_deref(), Some("scratch (new, dropped)"));
        assert_eq!(
            names.name("p", "swap", None, "transactionid").as_deref(),
            Some("transactionid")
        );
        // In another step the new index is just its name.
        names.step(
            "p",
            "later",
            &map(&[(12, "orders_new_idx")]),
            &map(&[(12, "orders_new_idx")]),
        );
        assert_eq!(
            names.name("p", "later", Some(12), "12").as_deref(),
            Some("orders_new_idx")
        );
    }

    #[test]
    fn without_the_end_reading_what_the_start_lacks_is_new() {
        let mut names = RelationNames::default();
        // The step's session was terminated: its end could not be read.
        names.step("p", "dies", &map(&[(10, "orders")]), &HashMap::new());
        let n = |oid, seen| names.name("p", "dies", Some(oid), seen);
        assert_eq!(n(10, "orders").as_deref(), Some("orders"));
        assert_eq!(n(21, "scratch_pkey").as_deref(), Some("scratch_pkey (new)"));
        // Neither side read: nothing can be said.
        names.step("p", "blind", &HashMap::new(), &HashMap::new());
        assert_eq!(
            names.name("p", "blind", Some(22), "other").as_deref(),
            Some("other")
        );
    }

    #[test]
    fn a_renamed_table_goes_by_its_new_name_after_the_rename() {
        let mut names = RelationNames::default();
        names.step(
            "p",
            "rename",
            &map(&[(10, "orders")]),
            &map(&[(10, "orders_v2"), (20, "orders")]),
        );
        names.step(
            "p",
            "alter",
            &map(&[(10, "orders_v2"), (20, "orders")]),
            &map(&[(10, "orders_v2"), (20, "orders")]),
        );
        // In the renaming step: its name at the start; the view that took
        // the old name is new.
        assert_eq!(
            names.name("p", "rename", Some(10), "orders").as_deref(),
            Some("orders")
        );
        assert_eq!(
            names.name("p", "rename", Some(20), "orders").as_deref(),
            Some("orders (new)")
        );
        // After it: the new name, and the old name is the view's.
        assert_eq!(
            names.name("p", "alter", Some(10), "orders_v2").as_deref(),
            Some("orders_v2")
        );
        assert_eq!(
            names.name("p", "alter", Some(20), "orders").as_deref(),
            Some("orders")
        );
    }
}
