//! The executor's probe of its own session after each statement inside a
//! transaction: the locks it now holds, its sequential scans, the tables'
//! relfilenodes (a new one means a rewrite) and the WAL position.

use std::collections::HashMap;

use tokio_postgres::{Client, Statement};

use super::{Executor, LockKey};

/// A session-side probe result.
#[derive(Debug, Clone, Default)]
pub(super) struct Probe {
    pub(super) wal_lsn: String,
    pub(super) seq_scans: i64,
    pub(super) relfilenodes: String,
    pub(super) locks: Vec<LockKey>,
}

/// Prepare the probe on the migration session.
pub(super) async fn prepare(client: &Client) -> Result<Statement, tokio_postgres::Error> {
    // One round trip, cheap functions only: the probe runs while the
    // migration's locks are held, so every millisecond here is a millisecond
    // of real blocking.
    client
        .prepare(
            "WITH t AS (SELECT c.oid, c.relname, c.relfilenode FROM pg_class c \
                WHERE c.relname = ANY($1) AND c.relkind IN ('r', 'm', 'p') \
                AND c.relnamespace NOT IN ('pg_catalog'::regnamespace, 'information_schema'::regnamespace)) \
             SELECT pg_current_wal_insert_lsn()::text, \
             (SELECT coalesce(sum(pg_stat_get_xact_numscans(oid)), 0)::int8 FROM t), \
             (SELECT coalesce(string_agg(relname || ':' || relfilenode, ',' ORDER BY relname), '') FROM t), \
             ARRAY(SELECT locktype || '|' || coalesce(relation::regclass::text, locktype) || '|' || mode \
                FROM pg_locks WHERE pid = pg_backend_pid() AND granted \
                AND locktype IN ('relation', 'transactionid'))",
        )
        .await
}

impl Executor {
    pub(super) async fn probe(&mut self) -> Option<Probe> {
        let r = self
            .client
            .query_one(&self.probe, &[&self.ctx.tables])
            .await
            .ok()?;
        let locks: Vec<String> = r.get(3);
        Some(Probe {
            wal_lsn: r.get(0),
            seq_scans: r.get(1),
            relfilenodes: r.get(2),
            locks: locks
                .iter()
                .filter_map(|l| {
                    let mut it = l.splitn(3, '|');
                    Some((
                        it.next()?.to_string(),
                        it.next()?.to_string(),
                        it.next()?.to_string(),
                    ))
                })
                .collect(),
        })
    }

    pub(super) fn fill_probe_facts(&mut self, idx: usize, before: &Probe, after: &Probe) {
        let row = &mut self.run.statements[idx];
        row.rewrote = rewrote(&before.relfilenodes, &after.relfilenodes);
        row.seq_scans = (after.seq_scans - before.seq_scans).max(0) as u64;
        row.wal_bytes = match (parse_lsn(&before.wal_lsn), parse_lsn(&after.wal_lsn)) {
            (Some(b), Some(a)) => a.saturating_sub(b),
            _ => 0,
        };
    }
}

/// Catalog relations the probe itself touches are not the migration's.
pub fn is_catalog(relation: &str) -> bool {
    relation.starts_with("pg_") || relation.starts_with("information_schema.")
}

/// A relation that no longer exists when the probe looks (the transient heap
/// of a rewrite) shows as a bare oid: it is part of the statement's work, not
/// a lock anyone else could wait for.
pub(super) fn is_transient(relation: &str) -> bool {
    !relation.is_empty() && relation.bytes().all(|b| b.is_ascii_digit())
}

/// `16/B374D848` → a byte position.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Did any table get a new relfilenode? (`name:node,...` lists, sorted)
fn rewrote(before: &str, after: &str) -> bool {
    let parse = |s: &str| -> HashMap<String, String> {
        s.split(',')
            .filter_map(|p| p.rsplit_once(':'))
            .map(|(n, f)| (n.to_string(), f.to_string()))
            .collect()
    };
    let b = parse(before);
    let a = parse(after);
    b.iter()
        .any(|(name, node)| a.get(name).is_some_and(|n| n != node))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrite_is_a_changed_relfilenode() {
        assert!(!rewrote("orders:100,users:200", "orders:100,users:200"));
        assert!(rewrote("orders:100,users:200", "orders:101,users:200"));
        // A dropped or new table is not a rewrite.
        assert!(!rewrote("orders:100", "orders:100,new:5"));
        assert!(!rewrote("orders:100,old:4", "orders:100"));
    }

    #[test]
    fn lsns_parse_to_byte_positions() {
        assert_eq!(parse_lsn("0/10"), Some(16));
        assert_eq!(parse_lsn("1/0"), Some(1 << 32));
        assert_eq!(parse_lsn("16/B374D848"), Some((0x16 << 32) | 0xB374D848));
        assert_eq!(parse_lsn("bogus"), None);
    }

    #[test]
    fn catalog_relations_are_filtered() {
        assert!(is_catalog("pg_locks"));
        assert!(is_catalog("pg_class"));
        assert!(!is_catalog("orders"));
    }
}
