//! Exact WAL per step (issue 9): steps.csv's `wal_bytes` is the migration's
//! own WAL (pg_stat_statements), `cluster_wal_bytes` everything the cluster
//! wrote meanwhile. On a local cluster under write traffic:
//!
//! - a rewrite (`ALTER COLUMN ... TYPE bigint`) writes at least the table
//!   it leaves behind: every page of the new heap is WAL-logged;
//! - an index-only step (a partial `CREATE INDEX CONCURRENTLY` matching a
//!   handful of rows) writes a few pages, far below what the cluster wrote
//!   while it waited ~1.5 s for a long app transaction, with the app's
//!   UPDATEs (~1 kB rows, 400/s) going on.
//!
//! Either check fails if `wal_bytes` were the cluster-wide figure (the
//! index step's would equal its cluster figure) or missing, or 0.

mod common;

use pgrehearse::analyze::{analyze_with, AnalyzeOptions, Thresholds};
use pgrehearse::record::StepRow;

const SCENARIO: &str = r#"
name = "exact-wal"
description = "a rewrite's WAL against an index-only step's, under write traffic"

[[table]]
name = "accounts"
rows = 20_000
create = "CREATE TABLE accounts (id bigint PRIMARY KEY, balance int NOT NULL, flagged bool NOT NULL, note text NOT NULL)"
# An index with a name of its own: the rewrite rebuilds it under the
# table's lock.
after_seed = ["CREATE INDEX by_balance ON accounts (balance)"]
[table.columns]
id = { gen = "sequence" }
balance = { gen = "int", min = 0, max = 1000 }
flagged = { gen = "bool", p_true = 0.001 }
note = { gen = "text", min_len = 100, max_len = 200 }

[workload]
clients = 4
rate = 400
before = "1s"
after = "500ms"

[[workload.query]]
name = "rewrite_note"
sql = "UPDATE accounts SET note = repeat(md5(random()::text), 30) WHERE id = $1"
params = [{ gen = "fk", table = "accounts" }]

# An app transaction that keeps a row lock on accounts for 3 s: CREATE
# INDEX CONCURRENTLY waits for it to end while the UPDATEs go on (for at
# least a second of it however long the migration takes to begin).
[[workload.script]]
name = "long_transaction"
at = "500ms"
sql = ["BEGIN", "UPDATE accounts SET balance = balance WHERE id = 1", "SELECT pg_sleep(3)", "COMMIT"]

[[phase]]
name = "wal"

[[phase.step]]
name = "index only"
sql = "CREATE INDEX CONCURRENTLY accounts_flagged_idx ON accounts (id) WHERE flagged"
transaction = false

[[phase.step]]
name = "rewrite"
sql = "ALTER TABLE accounts ALTER COLUMN balance TYPE bigint"
"#;

fn step<'a>(steps: &'a [StepRow], name: &str) -> &'a StepRow {
    steps
        .iter()
        .find(|s| s.step == name)
        .unwrap_or_else(|| panic!("no step {name}: {steps:#?}"))
}

#[test]
fn a_rewrite_writes_its_table_and_an_index_only_step_far_less_than_the_cluster() {
    let tmp = common::isolated_tmpdir();
    let path = tmp.path().join("exact-wal.toml");
    std::fs::write(&path, SCENARIO).unwrap();
    let ran = common::run(&path, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    let (dir, rec) = ran.record();
    let info = rec.info.clone().expect("run.json");
    assert!(
        info.wal_unavailable.is_none() && info.wal_attribution.is_some(),
        "{:?} / {:?}",
        info.wal_unavailable,
        info.wal_attribution
    );
    let index = step(&rec.steps, "index only");
    let rewrite = step(&rec.steps, "rewrite");
    eprintln!("{}:\n{index:#?}\n{rewrite:#?}", dir.display());

    // The rewrite: a new heap, every page of it in the WAL.
    assert_eq!(rewrite.rewrote, Some(true));
    let wal = rewrite.wal_bytes.expect("the rewrite's own WAL");
    let table = rewrite.table_bytes_after.expect("the table after");
    assert!(
        wal >= table,
        "the rewrite wrote {wal} B of WAL, less than the {table} B table it left"
    );

    // The rebuilt indexes are named with their table in locks.csv (the
    // index on the retyped column is dropped and made anew), and their
    // locks go with the table's hold: one finding, not one each.
    for index in ["by_balance (dropped)", "by_balance (new)", "accounts_pkey"] {
        let lock = rec
            .locks
            .iter()
            .find(|l| l.step == "rewrite" && l.relation == index)
            .unwrap_or_else(|| panic!("no lock on {index}: {:#?}", rec.locks));
        assert_eq!(lock.table, "accounts", "{lock:?}");
    }
    assert!(
        rec.locks
            .iter()
            .all(|l| l.relation != "accounts" || l.table.is_empty()),
        "a table has no table: {:#?}",
        rec.locks
    );
    // However short the rewrite was here, with any hold counted.
    let opts = AnalyzeOptions {
        thresholds: Thresholds {
            blocking_lock_ms: 0.0,
            ..Thresholds::default()
        },
        ..AnalyzeOptions::default()
    };
    let analysis = analyze_with(&rec, &opts).unwrap();
    let blocking: Vec<_> = analysis
        .findings
        .iter()
        .filter(|f| f.kind.as_str() == "blocking_lock" && f.step.as_deref() == Some("rewrite"))
        .collect();
    assert_eq!(blocking.len(), 1, "{blocking:#?}");
    assert_eq!(blocking[0].relation.as_deref(), Some("accounts"));
    assert!(
        blocking[0].seen.contains("by_balance"),
        "{}",
        blocking[0].seen
    );

    // The index-only step: its own WAL is a few pages; the cluster's, app
    // writes included, is far more.
    assert_eq!(index.rewrote, Some(false));
    let own = index.wal_bytes.expect("the index step's own WAL");
    let cluster = index.cluster_wal_bytes.expect("the cluster's WAL");
    assert!(own > 0, "building an index writes some WAL");
    assert!(
        own * 5 < cluster,
        "the index step's own WAL ({own} B) should be far below the cluster's \
         ({cluster} B) under write traffic"
    );
    // It waited for the long transaction, and the app wrote meanwhile.
    assert!(
        index.end_ms - index.start_ms > 1000.0,
        "the index step waited: {index:?}"
    );
}
