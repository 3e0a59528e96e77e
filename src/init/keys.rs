//! Keys across the tables: which foreign keys a generator can satisfy (an
//! `fk` column draws 1..rows of its parent, so the referenced column must be
//! the parent's `sequence`), which columns are referenced, and which sets of
//! columns must be unique.

use std::collections::{BTreeMap, BTreeSet};

use super::distribution::{kind_of, Kind};
use super::model::{Constraint, Table};

pub struct Keys {
    /// (table oid, constraint name) → index of the parent table: single-
    /// column foreign keys whose values `fk` generates.
    pub generated: BTreeMap<(u32, String), usize>,
    /// (table oid, constraint name) → index of the parent table: foreign
    /// keys of several columns, each of which copies its parent column's
    /// value in one drawn parent row (`fk` with `column`).
    pub copied: BTreeMap<(u32, String), usize>,
    /// (table oid, column number) of columns such foreign keys reference.
    pub referenced: BTreeSet<(u32, i16)>,
}

/// Whether `sequence` can fill a column of this kind with keys 1..rows that
/// `fk` values match (integers, as text, or as the uuids of integers).
pub fn sequence_fits(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Int | Kind::Numeric { .. } | Kind::Uuid | Kind::Text { limit: None }
    ) || matches!(kind, Kind::Text { limit: Some(n) } if n >= 12)
}

pub fn keys(tables: &[Table]) -> Keys {
    let mut generated = BTreeMap::new();
    let mut copied = BTreeMap::new();
    let mut referenced = BTreeSet::new();
    for t in tables {
        // A column fills one foreign key: the first that takes it.
        let mut taken: BTreeSet<i16> = BTreeSet::new();
        for c in t.constraints.iter().filter(|c| c.kind == 'f') {
            if c.columns.iter().any(|n| taken.contains(n)) {
                continue;
            }
            if let Some(p) = generatable_fk(tables, t, c) {
                generated.insert((t.oid, c.name.clone()), p);
                referenced.insert((tables[p].oid, c.ref_columns[0]));
            } else if let Some(p) = copyable_fk(tables, t, c) {
                copied.insert((t.oid, c.name.clone()), p);
            } else {
                continue;
            }
            taken.extend(c.columns.iter().copied());
        }
    }
    Keys {
        generated,
        copied,
        referenced,
    }
}

/// The parent's index when the columns of this foreign key of several
/// columns can copy their parent's: each parent column is one a generator
/// fills (not a generated column), of the kind of its child column.
fn copyable_fk(tables: &[Table], t: &Table, c: &Constraint) -> Option<usize> {
    if c.columns.len() < 2 || c.columns.len() != c.ref_columns.len() {
        return None;
    }
    let p = tables.iter().position(|x| Some(x.oid) == c.ref_table)?;
    // A key into its own table would copy its own columns.
    if tables[p].oid == t.oid {
        return None;
    }
    let fits = c.columns.iter().zip(&c.ref_columns).all(|(n, r)| {
        match (t.column(*n), tables[p].column(*r)) {
            (Some(child), Some(parent)) => {
                parent.generated.is_none() && kind_of(&child.base) == kind_of(&parent.base)
            }
            _ => false,
        }
    });
    fits.then_some(p)
}

/// The parent's index when `fk` can fill this foreign key.
fn generatable_fk(tables: &[Table], t: &Table, c: &Constraint) -> Option<usize> {
    if c.columns.len() != 1 || c.ref_columns.len() != 1 {
        return None;
    }
    let p = tables.iter().position(|x| Some(x.oid) == c.ref_table)?;
    let parent_col = tables[p].column(c.ref_columns[0])?;
    let child_col = t.column(c.columns[0])?;
    let fits = sequence_fits(kind_of(&parent_col.base))
        && parent_col.generated.is_none()
        && matches!(
            kind_of(&child_col.base),
            Kind::Int | Kind::Numeric { .. } | Kind::Uuid | Kind::Text { .. }
        );
    fits.then_some(p)
}

impl Keys {
    /// The parent index of the generated foreign key on column `num` of `t`.
    pub fn fk_of<'t>(&self, t: &'t Table, num: i16) -> Option<(&'t Constraint, usize)> {
        t.constraints
            .iter()
            .filter(|c| c.kind == 'f' && c.columns == [num])
            .find_map(|c| {
                self.generated
                    .get(&(t.oid, c.name.clone()))
                    .map(|p| (c, *p))
            })
    }

    pub fn is_generated(&self, t: &Table, c: &Constraint) -> bool {
        self.generated.contains_key(&(t.oid, c.name.clone())) || self.is_copied(t, c)
    }

    pub fn is_copied(&self, t: &Table, c: &Constraint) -> bool {
        self.copied.contains_key(&(t.oid, c.name.clone()))
    }

    /// The foreign key of several columns that column `num` of `t` copies
    /// its value for, with its parent's index.
    pub fn copy_of<'t>(&self, t: &'t Table, num: i16) -> Option<(&'t Constraint, usize)> {
        t.constraints
            .iter()
            .filter(|c| c.kind == 'f' && c.columns.contains(&num))
            .find_map(|c| self.copied.get(&(t.oid, c.name.clone())).map(|p| (c, *p)))
    }

    /// Whether a foreign key fills column `num` of `t` with its parent's
    /// keys (drawn, or copied from a drawn row).
    pub fn filled_by_parent(&self, t: &Table, num: i16) -> bool {
        self.fk_of(t, num).is_some() || self.copy_of(t, num).is_some()
    }
}

/// A set of columns that must not repeat: a primary key, a unique
/// constraint or a unique index (not partial, no expressions).
pub struct UniqueKey {
    pub name: String,
    pub columns: Vec<i16>,
}

pub fn unique_keys(t: &Table) -> Vec<UniqueKey> {
    let mut out: Vec<UniqueKey> = t
        .constraints
        .iter()
        .filter(|c| matches!(c.kind, 'p' | 'u'))
        .map(|c| UniqueKey {
            name: c.name.clone(),
            columns: c.columns.clone(),
        })
        .collect();
    out.extend(
        t.indexes
            .iter()
            .filter(|i| i.unique && i.valid && !i.partial && !i.columns.contains(&0))
            .map(|i| UniqueKey {
                name: i.name.clone(),
                columns: i.columns.clone(),
            }),
    );
    out
}

/// Whether column `num` alone must be unique.
pub fn unique_alone(t: &Table, num: i16) -> bool {
    unique_keys(t).iter().any(|k| k.columns == [num])
}

/// Whether column `num` is the whole primary key.
pub fn primary_key(t: &Table, num: i16) -> bool {
    t.constraints
        .iter()
        .any(|c| c.kind == 'p' && c.columns == [num])
}
