//! Linking `fk` generators with `column` (a key of several columns) to the
//! parent columns whose values they copy.
//!
//! A row of a table whose foreign key spans several columns must name a row
//! its parent has: (tenant_id, account_id) both from one account. So the
//! columns of such a key draw one parent row together, and each takes that
//! row's value of its parent column, computed rather than read: the parent's
//! column is drawn row by row from a stream of its own
//! ([`Gen::Addressed`]), so its value in any row is known without the rows
//! around it, and the columns of the child's key share one such stream for
//! their draw. A query's parameters naming the same parent table draw one
//! row per request the same way.
//!
//! Runs once every table is validated (a reference may point at a later
//! table, or its own, with `deferred = true`), after `distinct` shares are
//! resolved, so the parent's generator is copied as it will run.

use std::collections::BTreeMap;
use std::ops::Range;

use super::diag::Diags;
use super::model::{GenSpec, QuerySection, TableSection, S};
use super::{ColumnGen, Gen, QueryPlan, RowKey, TablePlan};

/// A generator that copies a parent column: where it is, what it copies.
struct Ref {
    /// The owner's [`RowKey::table`]: a table's index, or a query's past
    /// the tables.
    owner: usize,
    stream: usize,
    /// The parent column: (table index, its place among the generators).
    parent: (usize, usize),
    /// The foreign key it is part of, if named.
    key: Option<String>,
    path: String,
    span: Range<usize>,
    /// Where its `column` is written.
    column_span: Range<usize>,
}

/// Link the `fk` generators with `column` of the tables and of the queries'
/// parameters; problems are recorded in `d` at the generator's place.
pub(super) fn link(
    d: &mut Diags,
    tables: &mut [TablePlan],
    table_specs: &[S<TableSection>],
    queries: &mut [QueryPlan],
    query_specs: &[S<QuerySection>],
) {
    let mut refs = Vec::new();
    for (i, t) in tables.iter().enumerate() {
        let specs = table_specs
            .get(i)
            .and_then(|s| s.get_ref().columns.as_ref());
        for (k, c) in t.columns.iter().enumerate() {
            let spec = specs.and_then(|m| m.0.iter().find(|(n, _)| *n.get_ref() == c.name));
            let Some((_, spec)) = spec else { continue };
            let path = format!("table[{i}].columns.{}", c.name);
            refs.extend(find(d, tables, &c.gen, (i, k), spec, path));
        }
    }
    for (q, query) in queries.iter().enumerate() {
        let specs = query_specs
            .get(q)
            .and_then(|s| s.get_ref().params.as_ref())
            .map(|p| p.get_ref());
        // A parameter refused earlier leaves the plan's list short: its
        // places would not match the file's.
        let Some(specs) = specs.filter(|s| s.len() == query.params.len()) else {
            continue;
        };
        for (n, g) in query.params.iter().enumerate() {
            let path = format!("workload.query[{q}].params[{n}]");
            let owner = (tables.len() + q, n);
            refs.extend(find(d, tables, g, owner, &specs[n], path));
        }
    }
    if refs.is_empty() {
        return;
    }
    group(d, tables, queries, &refs);
    for r in &refs {
        let parent = &mut tables[r.parent.0].columns[r.parent.1].gen;
        if !matches!(parent.kind, Gen::Addressed { .. }) {
            let inner = std::mem::replace(&mut parent.kind, Gen::Uuid);
            parent.kind = Gen::Addressed {
                key: RowKey {
                    table: r.parent.0,
                    stream: r.parent.1,
                },
                inner: Box::new(inner),
            };
        }
    }
    fill(d, tables, queries, refs);
}

/// The reference `g` makes, if it copies a parent column that exists.
fn find(
    d: &mut Diags,
    tables: &[TablePlan],
    g: &ColumnGen,
    (owner, stream): (usize, usize),
    spec: &S<GenSpec>,
    path: String,
) -> Option<Ref> {
    let Gen::ParentColumn {
        table, column, key, ..
    } = &g.kind
    else {
        return None;
    };
    let span = spec
        .get_ref()
        .column
        .as_ref()
        .map_or(spec.span(), |c| c.span());
    let j = tables.iter().position(|t| t.name == *table)?;
    let named = |exact: bool| {
        tables[j].columns.iter().position(|c| match exact {
            true => c.name == *column,
            false => c.name.eq_ignore_ascii_case(column),
        })
    };
    let Some(s) = named(true).or_else(|| named(false)) else {
        let have: Vec<&str> = tables[j].columns.iter().map(|c| c.name.as_str()).collect();
        d.err(
            span,
            format!("{path}.column"),
            format!(
                "table `{table}` has no generator for column `{column}` to copy; {}",
                match have.is_empty() {
                    true => "it generates no columns".to_string(),
                    false => format!("it generates: {}", have.join(", ")),
                }
            ),
        );
        return None;
    };
    Some(Ref {
        owner,
        stream,
        parent: (j, s),
        key: key.clone(),
        path,
        span: spec.span(),
        column_span: span,
    })
}

/// The generator at `(owner, stream)`.
fn gen_at<'a>(
    tables: &'a mut [TablePlan],
    queries: &'a mut [QueryPlan],
    owner: usize,
    stream: usize,
) -> &'a mut ColumnGen {
    match owner.checked_sub(tables.len()) {
        None => &mut tables[owner].columns[stream].gen,
        Some(q) => &mut queries[q].params[stream],
    }
}

/// The columns (or parameters) of one owner that copy columns of one parent
/// table, for one foreign key (`key`, or none named), draw one parent row:
/// each is drawn from the stream of the first of them, so they must draw
/// alike.
fn group(d: &mut Diags, tables: &mut [TablePlan], queries: &mut [QueryPlan], refs: &[Ref]) {
    let mut groups: BTreeMap<(usize, usize, Option<&str>), Vec<&Ref>> = BTreeMap::new();
    for r in refs {
        groups
            .entry((r.owner, r.parent.0, r.key.as_deref()))
            .or_default()
            .push(r);
    }
    for members in groups.values() {
        let lead = members[0];
        let lead_gen = gen_at(tables, queries, lead.owner, lead.stream).clone();
        let lead_draw = draw_of(&lead_gen);
        // Their NULLs may differ (MATCH SIMPLE takes a key with any NULL
        // column as unchecked): each draws the same NULL number first,
        // so fewer NULLs nest in more.
        for r in members {
            let g = gen_at(tables, queries, r.owner, r.stream);
            if r.stream != lead.stream && draw_of(g) != lead_draw {
                d.err(
                    r.span.clone(),
                    r.path.clone(),
                    format!(
                        "draws its parent row unlike {}: what copies columns of one table for one foreign key takes them from one drawn row, so they need the same distinct, weights and rest_weight (or a `key` each, for two foreign keys into that table)",
                        lead.path
                    ),
                );
            }
            let inner = std::mem::replace(&mut g.kind, Gen::Uuid);
            g.kind = Gen::Addressed {
                key: RowKey {
                    table: lead.owner,
                    stream: lead.stream,
                },
                inner: Box::new(inner),
            };
        }
    }
}

/// How a copying generator draws its parent row.
fn draw_of(g: &ColumnGen) -> Option<&Gen> {
    match &g.kind {
        Gen::ParentColumn { draw, .. } => Some(draw),
        Gen::Addressed { inner, .. } => match &**inner {
            Gen::ParentColumn { draw, .. } => Some(draw),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `g` still waits for a parent generator to be copied into it.
fn unlinked(g: &Gen) -> bool {
    match g {
        Gen::ParentColumn { parent: None, .. } => true,
        Gen::ParentColumn {
            parent: Some(p), ..
        } => unlinked(&p.kind),
        Gen::Addressed { inner, .. } => unlinked(inner),
        _ => false,
    }
}

/// Copy each parent generator into the references to it, parents that copy
/// a column themselves once they are linked; what is left copies in a
/// circle.
fn fill(d: &mut Diags, tables: &mut [TablePlan], queries: &mut [QueryPlan], mut refs: Vec<Ref>) {
    while !refs.is_empty() {
        let before = refs.len();
        refs.retain(|r| {
            let parent = tables[r.parent.0].columns[r.parent.1].gen.clone();
            if unlinked(&parent.kind) {
                return true;
            }
            if let Gen::Addressed { inner, .. } =
                &mut gen_at(tables, queries, r.owner, r.stream).kind
            {
                if let Gen::ParentColumn { parent: slot, .. } = &mut **inner {
                    *slot = Some(Box::new(parent));
                }
            }
            false
        });
        if refs.len() == before {
            for r in &refs {
                let (t, c) = (&tables[r.parent.0], &tables[r.parent.0].columns[r.parent.1]);
                d.err(
                    r.column_span.clone(),
                    format!("{}.column", r.path),
                    format!(
                        "copies {}.{}, which copies back into it (a circle of `column` references); give one of these columns a generator of its own",
                        t.name, c.name
                    ),
                );
            }
            return;
        }
    }
}
