//! A partitioned table's size is its partitions': steps.csv `table_bytes_*`
//! and `index_bytes_*` and server.csv `table_bytes` count every leaf of its
//! partition tree (heap, TOAST, free space and visibility maps; their
//! indexes), not the parent's own storage, which is none. A rehearsal on a
//! local cluster of a range-partitioned `metrics` (4 partitions, one of them
//! hash-partitioned again, and an empty DEFAULT one; 30 000 rows) and a 200-row `devices`: before the
//! fix the figures were devices' alone (32 kB of table, 16 kB of index).
//! The statement probe reads the partitions too: a rewrite of a partitioned
//! table is `rewrote`, its scans are counted. And a table swapped in under
//! a scenario table's name is sized under it.

mod common;

const SCENARIO: &str = r#"
name = "partition-sizes"
description = "a partitioned table beside a small plain one"

[[table]]
name = "devices"
rows = 200
create = "CREATE TABLE devices (id int PRIMARY KEY, name text NOT NULL)"
# run.json `rows` says what is left: 190.
after_seed = ["DELETE FROM devices WHERE id % 20 = 0"]
[table.columns]
id = { gen = "sequence" }
name = { gen = "text", min_len = 8, max_len = 8 }

[[table]]
name = "metrics"
rows = 30_000
create = """
CREATE TABLE metrics (
    id bigint NOT NULL,
    device_id int NOT NULL,
    ts timestamptz NOT NULL,
    v float8 NOT NULL,
    PRIMARY KEY (id, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE metrics_q1 PARTITION OF metrics FOR VALUES FROM ('2025-01-01') TO ('2025-04-01');
CREATE TABLE metrics_q2 PARTITION OF metrics FOR VALUES FROM ('2025-04-01') TO ('2025-07-01');
CREATE TABLE metrics_q3 PARTITION OF metrics FOR VALUES FROM ('2025-07-01') TO ('2025-10-01')
    PARTITION BY HASH (id);
CREATE TABLE metrics_q3a PARTITION OF metrics_q3 FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE metrics_q3b PARTITION OF metrics_q3 FOR VALUES WITH (MODULUS 2, REMAINDER 1);
CREATE TABLE metrics_q4 PARTITION OF metrics FOR VALUES FROM ('2025-10-01') TO ('2026-01-01');
CREATE TABLE metrics_rest PARTITION OF metrics DEFAULT
"""
[table.columns]
id = { gen = "sequence" }
device_id = { gen = "int", min = 1, max = 200 }
ts = { gen = "timestamp", from = "2025-01-01", to = "2025-12-31" }
v = { gen = "float", min = 0, max = 100 }

[workload]
clients = 1
rate = 20
before = "500ms"
after = "500ms"

[[workload.query]]
name = "read"
sql = "SELECT name FROM devices WHERE id = $1"
params = [{ gen = "fk", table = "devices" }]

[[phase]]
name = "p"

[[phase.step]]
name = "comment"
sql = "COMMENT ON TABLE devices IS 'sized'"
"#;

/// Lower bounds from the rows alone: a heap tuple of metrics is at least
/// 24 B of header + 32 B of data + a 4 B line pointer; a primary-key entry
/// (id, ts) at least 8 B of header + 16 B + 4 B. Devices' share is 32 kB
/// of table and 16 kB of index.
const METRICS_ROWS: u64 = 30_000;
const MIN_TABLE_BYTES: u64 = METRICS_ROWS * 60;
const MIN_INDEX_BYTES: u64 = METRICS_ROWS * 28;

/// Rehearse `scenario` (written to `file`) on a local cluster: it must
/// succeed.
fn rehearse(file: &str, scenario: &str) -> common::Ran {
    let tmp = common::isolated_tmpdir();
    let path = tmp.path().join(file);
    std::fs::write(&path, scenario).unwrap();
    let ran = common::run(&path, &["--backend", "local", "-q"], &[]);
    ran.assert_code(0);
    ran
}

#[test]
fn a_partitioned_tables_size_is_its_partitions() {
    let ran = rehearse("partition-sizes.toml", SCENARIO);
    let (dir, rec) = ran.record();
    // The ATTACH advice's CHECK names them (run.json `partition_keys`): the
    // range key, and the sub-partitioned quarter's hash key.
    let keys = &rec.info.as_ref().expect("run.json").partition_keys;
    assert_eq!(
        keys.get("metrics"),
        Some(&vec!["ts".to_string()]),
        "{keys:?}"
    );
    assert_eq!(
        keys.get("metrics_q3"),
        Some(&vec!["id".to_string()]),
        "{keys:?}"
    );
    // run.json `rows`: what after_seed's DELETE left, not the rows asked for.
    let rows = &rec.info.as_ref().unwrap().rows;
    assert!(
        rows.contains(&("devices".to_string(), 190))
            && rows.contains(&("metrics".to_string(), 30_000)),
        "{rows:?}"
    );
    // And its DEFAULT partition, which an ATTACH scans (run.json
    // `default_partitions`).
    assert_eq!(
        rec.info.as_ref().unwrap().default_partitions,
        [("metrics".to_string(), "metrics_rest".to_string())].into(),
    );
    let step = rec.steps.first().expect("the step's row");
    eprintln!("{}:\n{step:#?}", dir.display());

    let table = step.table_bytes_before.expect("table bytes before");
    let index = step.index_bytes_before.expect("index bytes before");
    assert!(
        table >= MIN_TABLE_BYTES,
        "table_bytes_before {table} B: less than metrics' rows alone ({MIN_TABLE_BYTES} B)"
    );
    assert!(
        index >= MIN_INDEX_BYTES,
        "index_bytes_before {index} B: less than metrics' keys alone ({MIN_INDEX_BYTES} B)"
    );
    // Nothing the step or the reads do changes a size.
    assert_eq!(step.table_bytes_after, Some(table));
    assert_eq!(step.index_bytes_after, Some(index));

    // server.csv: pg_total_relation_size, table and indexes together, over
    // the same relations: the same bytes.
    let sampled = rec
        .server
        .iter()
        .map(|s| s.table_bytes)
        .max()
        .expect("server samples");
    assert_eq!(
        sampled,
        table + index,
        "server.csv table_bytes against steps.csv's table + index bytes: {:#?}",
        rec.server
    );
}

const PROBED: &str = r#"
name = "partition-probe"

[[table]]
name = "m"
rows = 2_000
create = """
CREATE TABLE m (id bigint NOT NULL, v int NOT NULL) PARTITION BY RANGE (id);
CREATE TABLE m_low PARTITION OF m FOR VALUES FROM (0) TO (1001);
CREATE TABLE m_high PARTITION OF m FOR VALUES FROM (1001) TO (3000)
"""
[table.columns]
id = { gen = "sequence" }
v = { gen = "int", min = 0, max = 1000 }

[workload]
clients = 1
rate = 20
before = "300ms"
after = "300ms"

[[workload.query]]
name = "read"
sql = "SELECT v FROM m WHERE id = $1"
params = [{ gen = "fk", table = "m" }]

[[phase]]
name = "p"

[[phase.step]]
name = "retype"
sql = "ALTER TABLE m ALTER COLUMN v TYPE bigint"

[[phase.step]]
name = "check"
sql = "ALTER TABLE m ADD CONSTRAINT v_pos CHECK (v >= 0)"
"#;

#[test]
fn a_partitioned_tables_rewrite_and_scans_are_its_partitions() {
    let ran = rehearse("partition-probe.toml", PROBED);
    let (_dir, rec) = ran.record();
    let stmt = |step: &str| rec.statements.iter().find(|s| s.step == step).unwrap();
    assert_eq!(stmt("retype").rewrote, Some(true), "{:#?}", rec.statements);
    assert_eq!(stmt("check").rewrote, Some(false), "{:#?}", rec.statements);
    // The CHECK scans each partition.
    assert!(
        stmt("check").seq_scans.unwrap_or(0) >= 2,
        "{:#?}",
        rec.statements
    );
}

const SWAPPED: &str = r#"
name = "table-swap"

[[table]]
name = "orders"
rows = 20_000
create = "CREATE TABLE orders (id bigint PRIMARY KEY, total int NOT NULL, note text NOT NULL)"
[table.columns]
id = { gen = "sequence" }
total = { gen = "int", min = 1, max = 1000 }
note = { gen = "text", min_len = 20, max_len = 40 }

[workload]
clients = 1
rate = 20
before = "300ms"
after = "300ms"

[[workload.query]]
name = "read"
sql = "SELECT total FROM orders WHERE id = 1"

[[phase]]
name = "p"

[[phase.step]]
name = "copy"
sql = "CREATE TABLE orders_new (LIKE orders INCLUDING ALL); INSERT INTO orders_new SELECT * FROM orders"

[[phase.step]]
name = "swap"
sql = "ALTER TABLE orders RENAME TO orders_old; ALTER TABLE orders_new RENAME TO orders"

[[phase.step]]
name = "drop"
sql = "DROP TABLE orders_old"
"#;

/// A table swap (copy into a new table, rename it to the old one's name,
/// drop the old one): sizes follow the old table by oid until it is
/// dropped, and count the new one once it has the scenario's name. Before,
/// only the old table's oid was sized, and after the drop steps.csv said 0
/// bytes for a table of 20 000 rows.
#[test]
fn a_swapped_in_table_is_sized_under_its_name() {
    let ran = rehearse("table-swap.toml", SWAPPED);
    let (_dir, rec) = ran.record();
    let step = |name: &str| {
        rec.steps
            .iter()
            .find(|s| s.step == name)
            .unwrap_or_else(|| panic!("{name}: {:#?}", rec.steps))
    };
    let bytes = |b: Option<u64>| b.expect("sized") as f64;
    let one = bytes(step("copy").table_bytes_before);
    assert!(one > 1e6, "20 000 rows of orders: {one} B");
    // The copy is not yet named orders: one table.
    assert_eq!(step("copy").table_bytes_after, Some(one as u64));
    // Renamed: the old one (followed by oid) and the new one (by name).
    let both = bytes(step("swap").table_bytes_after);
    assert!(
        (1.7..2.3).contains(&(both / one)),
        "two copies after the swap: {both} B against {one} B"
    );
    // Dropped: the new one alone, about the old one's size (its heap as
    // large; no visibility map yet).
    let new = bytes(step("drop").table_bytes_after);
    assert!(
        (0.85..1.15).contains(&(new / one)),
        "the new table after the drop: {new} B against {one} B"
    );
    let index = bytes(step("drop").index_bytes_after);
    assert!(index > 0.0, "its primary key: {:#?}", step("drop"));
}
