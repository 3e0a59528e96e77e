//! The executor's probe of its own session after each statement: the locks
//! it now holds, its sequential scans, the tables' relfilenodes (a new one
//! means a rewrite), the WAL insert position and, where pg_stat_statements
//! is there, a snapshot of its counters (see wal.rs).
//!
//! The probe is *pipelined* behind the statement (sent before the
//! statement's result is back), so it adds no round trip to the locks'
//! hold, only its own execution (a fraction of a millisecond). Inside a
//! transaction it runs between `SAVEPOINT` and `ROLLBACK TO SAVEPOINT`: a
//! probe that fails (a revoked function, a dropped extension) then leaves
//! the migration's transaction as it was, and its figures are unknown.

use std::collections::HashMap;

use tokio_postgres::{Client, Row, Statement};

use super::wal::{PgssSnapshot, WalSource};

/// A lock the session held: the relation's oid (None for other lock types),
/// the name the session saw (an oid in digits when it could not see one),
/// and the mode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LockSeen {
    pub locktype: String,
    pub oid: Option<u32>,
    pub name: String,
    pub mode: String,
}

impl LockSeen {
    /// Same lock: same type, relation and mode (a relation's name may
    /// differ, after a rename); a lock with no relation (an advisory
    /// lock's key) by its name.
    pub fn same(&self, other: &LockSeen) -> bool {
        self.locktype == other.locktype
            && self.oid == other.oid
            && self.mode == other.mode
            && (self.oid.is_some() || self.name == other.name)
    }
}

/// A session-side probe result.
#[derive(Debug, Clone, Default)]
pub(super) struct Probe {
    pub(super) wal_lsn: Option<u64>,
    pub(super) seq_scans: i64,
    /// Sequential scans so far in this transaction, per relation scanned
    /// (by name).
    pub(super) scans: Vec<(String, i64)>,
    pub(super) relfilenodes: String,
    pub(super) locks: Vec<LockSeen>,
    /// The server's clock as the probe began (ms since the Unix epoch).
    pub(super) server_ms: f64,
    pub(super) pgss: Option<PgssSnapshot>,
}

/// Savepoint around the probe inside a transaction.
pub(super) const SAVEPOINT: &str = "SAVEPOINT pgrehearse_probe";
/// Undo the probe's subtransaction whether or not it failed (it changed
/// nothing), so the migration's transaction goes on as it was.
pub(super) const UNDO_SAVEPOINT: &str =
    "ROLLBACK TO SAVEPOINT pgrehearse_probe; RELEASE SAVEPOINT pgrehearse_probe";

/// Prepare the probe on the migration session for the scenario's `tables`.
/// `wal` adds the pg_stat_statements snapshot when it is there.
pub(super) async fn prepare(
    client: &Client,
    tables: &[u32],
    wal: &WalSource,
) -> Result<Statement, tokio_postgres::Error> {
    let pgss = match wal.pgss_function() {
        Some(f) => format!(
            ", ARRAY(SELECT queryid::text || ':' || calls::text || ':' || wal_bytes::text \
               FROM {f}(false) WHERE toplevel \
               AND dbid = (SELECT oid FROM pg_database WHERE datname = current_database()))"
        ),
        None => String::new(),
    };
    // Cheap functions only: the probe runs while the migration's locks are
    // held, so its execution is real blocking. No parameter, so its plan is
    // made once, not at every execution. Relations by oid: the name is
    // settled at the step's end (a new or dropped one is marked). The
    // server's clock comes first: the columns are computed in order (the
    // subqueries when first needed), so it is read right as the probe
    // starts, before its reads of pg_locks and pg_stat_statements (which
    // take up to a millisecond) — the end of the statement before it.
    // A partitioned table is its partitions: their relfilenodes change in
    // a rewrite and their scans count (the parent has neither).
    let tree = crate::pg::scenario_storage_ctes(&crate::pg::oid_array(tables));
    let name = crate::pg::LOCK_NAME_SQL;
    client
        .prepare(&format!(
            "{tree}, t AS (SELECT c.oid, c.relfilenode FROM pg_class c \
                WHERE c.oid IN (SELECT oid FROM tree WHERE relkind IN ('r', 'm'))) \
             SELECT (extract(epoch from clock_timestamp()) * 1000)::float8, \
             pg_current_wal_insert_lsn()::text, \
             (SELECT coalesce(sum(pg_stat_get_xact_numscans(oid)), 0)::int8 FROM t), \
             (SELECT coalesce(string_agg(oid::text || ':' || relfilenode, ',' ORDER BY oid), '') FROM t), \
             ARRAY(SELECT locktype || '|' || coalesce(relation::text, '') || '|' \
                || {name} || '|' || mode \
                FROM pg_locks WHERE pid = pg_backend_pid() AND granted \
                AND locktype IN ('relation', 'transactionid', 'advisory')), \
             ARRAY(SELECT oid::regclass::text || '|' || pg_stat_get_xact_numscans(oid) \
                FROM t WHERE pg_stat_get_xact_numscans(oid) > 0){pgss}"
        ))
        .await
}

/// The relations scanned between two probes, most scanned first (by
/// name; ties by name).
pub(super) fn scanned(before: &Probe, after: &Probe) -> Vec<String> {
    let mut out: Vec<(&str, i64)> = after
        .scans
        .iter()
        .map(|(name, n)| {
            let was = before
                .scans
                .iter()
                .find(|(b, _)| b == name)
                .map_or(0, |(_, n)| *n);
            (name.as_str(), n - was)
        })
        .filter(|(_, d)| *d > 0)
        .collect();
    out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    out.into_iter().map(|(n, _)| n.to_string()).collect()
}

/// Read a probe's row.
pub(super) fn parse(r: &Row) -> Probe {
    let locks: Vec<String> = r.get(4);
    let scans: Vec<String> = r.get(5);
    let pgss: Option<Vec<String>> = if r.len() > 6 { r.get(6) } else { None };
    Probe {
        server_ms: r.get(0),
        wal_lsn: parse_lsn(r.get(1)),
        seq_scans: r.get(2),
        scans: scans
            .iter()
            .filter_map(|s| {
                let (name, n) = s.rsplit_once('|')?;
                Some((name.to_string(), n.parse().ok()?))
            })
            .collect(),
        relfilenodes: r.get(3),
        locks: locks.iter().filter_map(|l| parse_lock(l)).collect(),
        pgss: pgss.map(|v| PgssSnapshot::parse(&v)),
    }
}

/// The server's clock now, ms since the Unix epoch: pipelined right before
/// a statement and right after COMMIT, it says when the server began the
/// statement and ended the transaction, without the client's delays.
pub(super) async fn prepare_clock(client: &Client) -> Result<Statement, tokio_postgres::Error> {
    client.prepare(CLOCK_SQL).await
}

/// The server's clock, ms since the Unix epoch.
pub(super) const CLOCK_SQL: &str = "SELECT (extract(epoch from clock_timestamp()) * 1000)::float8";

/// `relation|16385|orders|AccessExclusiveLock`.
fn parse_lock(l: &str) -> Option<LockSeen> {
    let (head, mode) = l.rsplit_once('|')?;
    let mut it = head.splitn(3, '|');
    let locktype = it.next()?.to_string();
    let oid = it.next()?.parse().ok();
    let name = it.next()?.to_string();
    let mode = mode.to_string();
    Some(LockSeen {
        locktype,
        oid,
        name,
        mode,
    })
}

/// The oids PostgreSQL's own catalogs, their indexes and information_schema
/// have (`FirstNormalObjectId`): everything initdb made.
const FIRST_NORMAL_OID: u32 = 16384;

/// A relation of the system (the catalogs the probe itself touches, TOAST
/// tables), not the migration's: by oid where known, else by a schema the
/// name is qualified with. Never by a `pg_` prefix alone: `pg_jobs` is a
/// user's table like any other (its name shows unqualified, as the
/// catalogs' do).
pub fn is_catalog(oid: Option<u32>, relation: &str) -> bool {
    oid.is_some_and(|o| o < FIRST_NORMAL_OID)
        || ["pg_catalog.", "pg_toast.", "information_schema."]
            .iter()
            .any(|schema| relation.starts_with(schema))
}

/// `16/B374D848` → a byte position.
pub fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    Some((u64::from_str_radix(hi, 16).ok()? << 32) | u64::from_str_radix(lo, 16).ok()?)
}

/// Did any table get a new relfilenode? (`oid:node,...` lists, sorted)
pub(super) fn rewrote(before: &str, after: &str) -> bool {
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
        assert!(is_catalog(Some(1259), "pg_class"));
        assert!(is_catalog(Some(30000), "pg_toast.pg_toast_16390"));
        assert!(is_catalog(None, "information_schema.tables"));
        assert!(!is_catalog(Some(16390), "orders"));
        // A user's table whose name starts with pg_.
        assert!(!is_catalog(Some(16400), "pg_jobs"));
    }

    #[test]
    fn lock_lines_carry_oid_name_and_mode() {
        let l = parse_lock("relation|16385|public.orders|AccessExclusiveLock").unwrap();
        assert_eq!(l.oid, Some(16385));
        assert_eq!(l.name, "public.orders");
        assert_eq!(l.mode, "AccessExclusiveLock");
        let x = parse_lock("transactionid||transactionid|ExclusiveLock").unwrap();
        assert_eq!((x.oid, x.name.as_str()), (None, "transactionid"));
        // A name with a | in it keeps it (the mode is the last field).
        let odd = parse_lock("relation|1|a|b|ShareLock").unwrap();
        assert_eq!((odd.name.as_str(), odd.mode.as_str()), ("a|b", "ShareLock"));
    }
}
