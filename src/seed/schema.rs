//! Seeding into a schema the setup migrations built (`[[table]]`s without
//! `create`), prepared before any row is loaded:
//!
//! - every such table is checked against the scenario at once — it exists,
//!   each generator fits its column, each NOT NULL column without a default
//!   is filled — so all problems come out together (exit 2), located in the
//!   scenario file by their field;
//! - a foreign-key column without a generator gets an `fk` generator into
//!   the seeded table it references (keys 1..rows, as `fk` always draws),
//!   when it is an integer column;
//! - tables load in foreign-key order: a referenced table before the tables
//!   that reference it (and before those whose `fk` generators point at it).

use tokio_postgres::Client;

use super::catalog::{bind_columns, describe, find_column, server_constants, TableInfo};
use super::db_error;
use crate::error::{Error, Result};
use crate::scenario::gen::PgType;
use crate::scenario::{ColumnGen, ColumnPlan, Gen, Scenario};

/// The scenario to load (with the `fk` generators it gained) and the order
/// to load its tables in (indexes into `scenario.tables`).
pub(super) struct Prepared {
    pub(super) scenario: Scenario,
    pub(super) order: Vec<usize>,
}

/// A single-column foreign key between two tables of the scenario:
/// `from.column` references table `to`.
struct ForeignKey {
    from: usize,
    column: String,
    to: usize,
}

pub(super) async fn prepare(client: &Client, scenario: &Scenario) -> Result<Prepared> {
    let mut scenario = scenario.clone();
    let existing: Vec<usize> = (0..scenario.tables.len())
        .filter(|&i| scenario.tables[i].create.is_none())
        .collect();
    if existing.is_empty() {
        let order = (0..scenario.tables.len()).collect();
        return Ok(Prepared { scenario, order });
    }
    let mut infos: Vec<(usize, TableInfo)> = Vec::new();
    let mut problems = Vec::new();
    for &i in &existing {
        match describe(client, &scenario, i).await {
            Ok(info) => infos.push((i, info)),
            Err(Error::Scenario(p)) => problems.extend(p),
            Err(e) => return Err(e),
        }
    }
    let keys = foreign_keys(client, &infos).await?;
    for (i, info) in infos.iter_mut() {
        for k in keys.iter().filter(|k| k.from == *i && k.to != *i) {
            let to = scenario.tables[k.to].name.clone();
            if let Some(c) = info.columns.iter_mut().find(|c| c.name == k.column) {
                c.references = Some(to);
            }
        }
    }
    for (i, info) in &infos {
        add_fk_generators(&mut scenario, *i, info, &keys);
        // Constants of types the generators cannot write are checked by the
        // server, as seeding will.
        let constants = match server_constants(client, &scenario, *i, info).await {
            Ok(c) => c,
            Err(Error::Scenario(p)) => {
                problems.extend(p);
                continue;
            }
            Err(e) => return Err(e),
        };
        if let Err(Error::Scenario(p)) = bind_columns(&scenario, *i, info, &constants, 0) {
            problems.extend(p);
        }
    }
    if !problems.is_empty() {
        return Err(Error::Scenario(problems));
    }
    let order = load_order(&scenario, &keys);
    Ok(Prepared { scenario, order })
}

/// The single-column foreign keys among the described tables.
async fn foreign_keys(client: &Client, infos: &[(usize, TableInfo)]) -> Result<Vec<ForeignKey>> {
    let oids: Vec<u32> = infos.iter().map(|(_, t)| t.oid).collect();
    let rows = client
        .query(
            "SELECT c.conrelid, c.confrelid, a.attname::text \
             FROM pg_constraint c \
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1] \
             WHERE c.contype = 'f' AND cardinality(c.conkey) = 1 \
               AND c.conrelid = ANY($1) AND c.confrelid = ANY($1)",
            &[&oids],
        )
        .await
        .map_err(|e| db_error(e, "reading foreign keys"))?;
    let index_of = |oid: u32| infos.iter().find(|(_, t)| t.oid == oid).map(|(i, _)| *i);
    Ok(rows
        .iter()
        .filter_map(|r| {
            Some(ForeignKey {
                from: index_of(r.get(0))?,
                column: r.get(2),
                to: index_of(r.get(1))?,
            })
        })
        .collect())
}

/// An integer foreign-key column of table `i` that no generator fills (and
/// no default either) references a seeded table: draw its keys.
fn add_fk_generators(scenario: &mut Scenario, i: usize, info: &TableInfo, keys: &[ForeignKey]) {
    for k in keys.iter().filter(|k| k.from == i && k.to != i) {
        let target = &scenario.tables[k.to];
        let (to_name, to_rows) = (target.name.clone(), target.rows);
        let table = &scenario.tables[i];
        let generated = table
            .columns
            .iter()
            .any(|g| find_column(info, &g.name).is_some_and(|c| c.name == k.column));
        let Some(col) = find_column(info, &k.column) else {
            continue;
        };
        let integer = matches!(col.ty, Some(PgType::Int2 | PgType::Int4 | PgType::Int8));
        if generated || col.has_default || !integer || to_rows == 0 {
            continue;
        }
        tracing::info!(
            "seeding {}.{} with keys of {to_name} (1..={to_rows}): a foreign key without a generator",
            table.name,
            k.column
        );
        scenario.tables[i].columns.push(ColumnPlan {
            name: k.column.clone(),
            gen: ColumnGen {
                kind: Gen::ForeignKey {
                    table: to_name,
                    rows: to_rows,
                },
                null_fraction: 0.0,
            },
        });
    }
}

/// Tables in an order where each comes after the tables it references
/// (foreign keys, `fk` generators); among those ready, the scenario's
/// order. A cycle is broken at its first table in the scenario's order.
fn load_order(scenario: &Scenario, keys: &[ForeignKey]) -> Vec<usize> {
    let n = scenario.tables.len();
    let mut before: Vec<Vec<usize>> = vec![Vec::new(); n];
    for k in keys.iter().filter(|k| k.from != k.to) {
        before[k.from].push(k.to);
    }
    for (i, t) in scenario.tables.iter().enumerate() {
        for c in &t.columns {
            if let Some(table) = c.gen.kind.references() {
                if let Some(j) = scenario.tables.iter().position(|x| x.name == table) {
                    if j != i {
                        before[i].push(j);
                    }
                }
            }
        }
    }
    let mut done = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let ready = (0..n).find(|&i| !done[i] && before[i].iter().all(|&j| done[j]));
        let next = ready.unwrap_or_else(|| {
            (0..n)
                .find(|&i| !done[i] && in_cycle(i, &before, &done))
                .unwrap_or(0)
        });
        done[next] = true;
        order.push(next);
    }
    order
}

/// Does table `i` reach itself through tables not yet loaded?
fn in_cycle(i: usize, before: &[Vec<usize>], done: &[bool]) -> bool {
    let mut seen = vec![false; before.len()];
    let mut stack: Vec<usize> = before[i].iter().copied().filter(|&j| !done[j]).collect();
    while let Some(j) = stack.pop() {
        if j == i {
            return true;
        }
        if !std::mem::replace(&mut seen[j], true) {
            stack.extend(before[j].iter().copied().filter(|&k| !done[k]));
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::TablePlan;

    fn table(name: &str, fk_to: Option<&str>) -> TablePlan {
        TablePlan {
            name: name.into(),
            rows: 10,
            create: None,
            after_seed: Vec::new(),
            columns: fk_to
                .map(|t| {
                    ColumnPlan::new(
                        "ref",
                        Gen::ForeignKey {
                            table: t.into(),
                            rows: 10,
                        },
                    )
                })
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn referenced_tables_load_first() {
        // orders → customers (a foreign key), items → orders (a generator).
        let s = Scenario::seed_only(
            "t",
            vec![
                table("items", Some("orders")),
                table("orders", None),
                table("customers", None),
            ],
        );
        let keys = [ForeignKey {
            from: 1,
            column: "customer_id".into(),
            to: 2,
        }];
        assert_eq!(load_order(&s, &keys), vec![2, 1, 0]);
        // A cycle is broken at its first table (orders); items, ready once
        // orders is loaded, comes before customers in the file's order.
        let cycle = [
            ForeignKey {
                from: 1,
                column: "a".into(),
                to: 2,
            },
            ForeignKey {
                from: 2,
                column: "b".into(),
                to: 1,
            },
        ];
        assert_eq!(load_order(&s, &cycle), vec![1, 0, 2]);
    }
}
