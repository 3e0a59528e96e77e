//! The order tables are created and loaded in: every table after the tables
//! its foreign keys reference (a topological order, ties by name). A cycle
//! of foreign keys (a self-reference is the smallest) has no such order: one
//! table of the cycle goes first, and its foreign keys into the cycle are
//! *deferred* — added in after_seed, once every table is loaded.

use std::collections::BTreeSet;

use super::model::Table;

pub struct Order {
    /// Indexes into the tables, in creation order.
    pub tables: Vec<usize>,
    /// (table oid, constraint name) of the deferred foreign keys.
    pub deferred: BTreeSet<(u32, String)>,
}

impl Order {
    pub fn is_deferred(&self, table: &Table, constraint: &str) -> bool {
        self.deferred.contains(&(table.oid, constraint.to_string()))
    }
}

/// `tables` sorted by name (their index order breaks ties).
pub fn order(tables: &[Table]) -> Order {
    let index_of = |oid: u32| tables.iter().position(|t| t.oid == oid);
    // parents[i]: (constraint, parent index) of table i's foreign keys.
    let parents: Vec<Vec<(String, usize)>> = tables
        .iter()
        .map(|t| {
            t.constraints
                .iter()
                .filter(|c| c.kind == 'f')
                .filter_map(|c| Some((c.name.clone(), index_of(c.ref_table?)?)))
                .collect()
        })
        .collect();
    let mut deferred = BTreeSet::new();
    for (i, ps) in parents.iter().enumerate() {
        for (name, p) in ps {
            if *p == i {
                deferred.insert((tables[i].oid, name.clone()));
            }
        }
    }
    let mut placed = vec![false; tables.len()];
    let mut out = Vec::with_capacity(tables.len());
    while out.len() < tables.len() {
        let waits = |i: usize, placed: &[bool], deferred: &BTreeSet<(u32, String)>| {
            parents[i]
                .iter()
                .any(|(name, p)| !placed[*p] && !deferred.contains(&(tables[i].oid, name.clone())))
        };
        let ready = (0..tables.len()).find(|&i| !placed[i] && !waits(i, &placed, &deferred));
        let next = match ready {
            Some(i) => i,
            None => {
                // Every table left waits: break a cycle at its first table
                // (by name) that is on one.
                let on_cycle = (0..tables.len())
                    .find(|&i| !placed[i] && reaches(i, i, &parents, &placed))
                    .unwrap_or_else(|| (0..tables.len()).find(|&i| !placed[i]).unwrap_or(0));
                for (name, p) in &parents[on_cycle] {
                    if !placed[*p] && reaches(*p, on_cycle, &parents, &placed) {
                        deferred.insert((tables[on_cycle].oid, name.clone()));
                    }
                }
                on_cycle
            }
        };
        placed[next] = true;
        out.push(next);
    }
    Order {
        tables: out,
        deferred,
    }
}

/// Whether `from` leads to `to` through foreign keys among unplaced tables
/// (at least one step).
fn reaches(from: usize, to: usize, parents: &[Vec<(String, usize)>], placed: &[bool]) -> bool {
    let mut seen = vec![false; parents.len()];
    let mut stack = vec![from];
    while let Some(i) = stack.pop() {
        for (_, p) in &parents[i] {
            if *p == to {
                return true;
            }
            if !placed[*p] && !seen[*p] {
                seen[*p] = true;
                stack.push(*p);
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::model::Constraint;

    fn table(oid: u32, name: &str, fks: &[u32]) -> Table {
        Table {
            oid,
            name: name.into(),
            constraints: fks
                .iter()
                .map(|p| Constraint {
                    name: format!("{name}_fk_{p}"),
                    kind: 'f',
                    def: String::new(),
                    columns: vec![1],
                    ref_table: Some(*p),
                    ref_columns: vec![1],
                })
                .collect(),
            ..Table::default()
        }
    }

    fn names(tables: &[Table], o: &Order) -> Vec<String> {
        o.tables.iter().map(|&i| tables[i].name.clone()).collect()
    }

    #[test]
    fn parents_come_first_ties_by_name() {
        let t = vec![
            table(1, "a_items", &[2, 3]),
            table(2, "b_orders", &[3]),
            table(3, "c_customers", &[]),
            table(4, "d_other", &[]),
        ];
        let o = order(&t);
        assert_eq!(
            names(&t, &o),
            ["c_customers", "b_orders", "a_items", "d_other"]
        );
        assert!(o.deferred.is_empty());
    }

    #[test]
    fn a_cycle_is_broken_at_its_first_table_and_a_self_reference_is_deferred() {
        // a -> b -> c -> b (cycle b, c), c -> c (self): a is first by name
        // but not on the cycle; once b is placed, a is ready before c.
        let t = vec![
            table(1, "a", &[2]),
            table(2, "b", &[3]),
            table(3, "c", &[2, 3]),
        ];
        let o = order(&t);
        assert_eq!(names(&t, &o), ["b", "a", "c"]);
        let deferred: Vec<&str> = o.deferred.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(deferred, ["b_fk_3", "c_fk_3"]);
    }
}
