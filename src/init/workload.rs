//! The proposed workload: pg_stat_statements' most called app statements,
//! weighted by their calls, each `$n` given a generator — the generator of
//! the column it is compared with or assigned to where the text tells
//! (`fk` for a key), else one for its type. Without pg_stat_statements, a
//! primary-key read per table as an example.

use super::columns::{ColumnOut, TableGens};
use super::model::{ParamType, Source, Statement, Table, TypeKind};
use super::params::{mentioned_tables, param_targets, Target};
use super::spec::{Spec, Val};

pub struct QueryOut {
    pub name: String,
    pub weight: u32,
    pub sql: String,
    pub params: Vec<Spec>,
    pub notes: Vec<String>,
}

pub struct WorkloadOut {
    pub queries: Vec<QueryOut>,
    /// Comment lines above `[workload]`.
    pub notes: Vec<String>,
}

/// The tables as written: what the workload's generators are taken from.
pub struct Written<'a> {
    pub tables: &'a [Table],
    pub rows: &'a [u64],
    pub gens: &'a [TableGens],
    /// Table indexes in creation order.
    pub order: &'a [usize],
}

pub fn workload(source: &Source, w: &Written) -> WorkloadOut {
    let mut notes = Vec::new();
    let mut queries = Vec::new();
    match &source.statements {
        None => notes.push(
            "pg_stat_statements is not installed in the source (or not preloaded): an example \
             workload, a primary-key read per table. Replace it with your app's queries."
                .into(),
        ),
        Some(st) => {
            let total: i64 = st.top.iter().map(|s| s.calls).sum::<i64>().max(1);
            notes.push(format!(
                "The {} most called app statements of pg_stat_statements, weighted by their calls.",
                st.top.len()
            ));
            for (why, n) in &st.skipped {
                notes.push(format!("Skipped {n} other statement(s): {why}."));
            }
            for s in &st.top {
                match query(s, total, w, source) {
                    Ok(q) => queries.push(q),
                    Err(why) => notes.push(format!("Skipped `{}`: {why}.", short(&s.query))),
                }
            }
            if queries.is_empty() {
                notes.push(
                    "No app statement on these tables could be proposed: an example workload, \
                     a primary-key read per table."
                        .into(),
                );
            }
        }
    }
    if queries.is_empty() {
        queries = example(w);
    }
    dedupe_names(&mut queries);
    WorkloadOut { queries, notes }
}

fn query(s: &Statement, total: i64, w: &Written, source: &Source) -> Result<QueryOut, String> {
    let types = s
        .params
        .as_ref()
        .map_err(|e| format!("the server cannot prepare it ({e})"))?;
    if let Some(t) = types.iter().find(|t| !t.supported) {
        return Err(format!(
            "a parameter of type {}, which generators cannot fill",
            t.name
        ));
    }
    let mentioned = mentioned_tables(&s.query, w.tables);
    let targets = param_targets(&s.query, types.len(), w.tables, &mentioned);
    let mut params = Vec::new();
    let mut notes = vec![format!(
        "pg_stat_statements: {} calls ({}% of the calls proposed)",
        s.calls,
        super::spec::round_to(s.calls as f64 * 100.0 / total as f64, 1)
    )];
    if let Some(original) = &s.original {
        notes.push(format!(
            "pg_stat_statements' text `{}` does not parse (a typed literal takes a string, not \
             a parameter): written with casts",
            short(original)
        ));
    }
    let lookups = key_lookups(&targets, w);
    for (i, ty) in types.iter().enumerate() {
        let literal = s.constants.iter().find(|c| c.0 as usize == i + 1);
        let (spec, note) = match (literal, &lookups[i]) {
            (None, Some(lookup)) => lookup.clone(),
            (Some((_, value, ty)), _) => (
                Spec::new("constant").with("value", Val::Str(value.to_string())),
                format!(
                    "a literal of type {ty}: its value is not in pg_stat_statements; {value:?} assumed"
                ),
            ),
            (None, None) => param(&targets[i], ty, w, source),
        };
        notes.push(format!("${}: {note}", i + 1));
        params.push(spec);
    }
    let verb = super::statements::identifiers(&s.query)
        .into_iter()
        .next()
        .unwrap_or_else(|| "query".into());
    let table = mentioned
        .first()
        .map_or("tables", |&i| w.tables[i].name.as_str());
    Ok(QueryOut {
        name: format!("{verb}_{}", label(table)),
        weight: ((s.calls as f64 * 1000.0 / total as f64).round() as u32).clamp(1, 1_000_000),
        sql: s.query.clone(),
        params,
        notes,
    })
}

/// Parameters that together give every column of a unique key of several
/// columns (`WHERE tenant_id = $1 AND id = $2`) look up one row: each takes
/// its column's value in one drawn row of the table (`fk` with `column`),
/// so the pair names a row that exists, where values drawn column by column
/// would name almost none.
fn key_lookups(targets: &[Target], w: &Written) -> Vec<Option<(Spec, String)>> {
    let mut out = vec![None; targets.len()];
    for (ti, t) in w.tables.iter().enumerate() {
        let params: Vec<(usize, &str)> = targets
            .iter()
            .enumerate()
            .filter_map(|(i, tg)| match tg {
                Target::Column {
                    table,
                    column,
                    insert: false,
                } if *table == ti => Some((i, column.as_str())),
                _ => None,
            })
            .collect();
        let generated = |name: &str| {
            w.gens[ti]
                .columns
                .iter()
                .any(|c| c.name == name && c.spec.is_some())
        };
        let key = super::keys::unique_keys(t).into_iter().find(|k| {
            k.columns.len() > 1
                && k.columns.iter().all(|n| {
                    t.column(*n).is_some_and(|c| {
                        generated(&c.name) && params.iter().any(|(_, p)| *p == c.name)
                    })
                })
        });
        let Some(key) = key.filter(|_| w.rows[ti] > 0) else {
            continue;
        };
        let in_key = |name: &str| {
            key.columns
                .iter()
                .any(|n| t.column(*n).is_some_and(|c| c.name == name))
        };
        let mut seen: Vec<&str> = Vec::new();
        for (i, column) in params {
            // A column given twice (a range) is left to its own values.
            if !in_key(column) || seen.contains(&column) {
                continue;
            }
            seen.push(column);
            out[i] = Some((
                Spec::new("fk")
                    .with("table", Val::Str(t.name.clone()))
                    .with("column", Val::Str(column.to_string())),
                format!(
                    "{}.{column} of one row of {}, drawn with the other columns of its key {}: together they name a row",
                    t.name, t.name, key.name
                ),
            ));
        }
    }
    out
}

fn param(target: &Target, ty: &ParamType, w: &Written, source: &Source) -> (Spec, String) {
    match target {
        Target::Limit => (
            Spec::new("constant").with("value", Val::Str("20".into())),
            "LIMIT: the app's page size is not in pg_stat_statements; 20 assumed".into(),
        ),
        Target::Offset => (
            Spec::new("constant").with("value", Val::Str("0".into())),
            "OFFSET: 0 assumed".into(),
        ),
        Target::Column {
            table,
            column,
            insert,
        } => match column_param(*table, column, *insert, ty, w) {
            Some(spec) => (spec, format!("{}.{column}", w.tables[*table].name)),
            None => type_param(ty, source),
        },
        Target::Unknown => type_param(ty, source),
    }
}

/// The generator of the column a parameter stands for: its keys for a key
/// (`fk`), its values otherwise (never NULL: `col = NULL` matches nothing).
fn column_param(
    ti: usize,
    column: &str,
    insert: bool,
    ty: &ParamType,
    w: &Written,
) -> Option<Spec> {
    let out: &ColumnOut = w.gens[ti].columns.iter().find(|c| c.name == column)?;
    let mut spec = out.spec.clone()?;
    spec.remove("null_fraction");
    spec.remove("deferred");
    let rows = w.rows[ti];
    match spec.kind() {
        "sequence" if insert => Some(new_key(ty, rows)),
        "sequence" if rows > 0 => {
            Some(Spec::new("fk").with("table", Val::Str(w.tables[ti].name.clone())))
        }
        "sequence" => None,
        _ => {
            counts(&mut spec, rows);
            Some(spec)
        }
    }
}

/// A key an INSERT writes: past the seeded ones.
fn new_key(ty: &ParamType, rows: u64) -> Spec {
    let max: i64 = match ty.name.as_str() {
        "int2" => 32_767,
        "int4" => 2_147_483_647,
        "uuid" => return Spec::new("uuid"),
        _ => 9_000_000_000_000_000_000,
    };
    let min = (rows as i64 + 1).min(max);
    Spec::new("int")
        .with("min", Val::Int(min))
        .with("max", Val::Int(max))
}

/// A query parameter belongs to no table: `distinct` shares of rows become
/// counts.
fn counts(spec: &mut Spec, rows: u64) {
    if let Some(Val::Str(s)) = spec.get("distinct") {
        let share: f64 = s.trim_end_matches('%').parse().unwrap_or(100.0);
        let n = ((share / 100.0 * rows as f64).round() as i64).max(1);
        spec.set("distinct", Val::Int(n));
    }
    if let Some(rest) = &mut spec.rest {
        counts(rest, rows);
    }
}

/// A generator for a parameter's type alone.
fn type_param(ty: &ParamType, source: &Source) -> (Spec, String) {
    let spec = match ty.name.as_str() {
        "int2" => Spec::new("int")
            .with("min", Val::Int(1))
            .with("max", Val::Int(100)),
        "int4" | "int8" => Spec::new("int")
            .with("min", Val::Int(1))
            .with("max", Val::Int(1000)),
        "numeric" | "float4" | "float8" => Spec::new("float")
            .with("min", Val::Float(0.0))
            .with("max", Val::Float(1000.0)),
        "bool" => Spec::new("bool"),
        "timestamp" | "timestamptz" | "date" => Spec::new("timestamp")
            .with("from", Val::Str("2024-01-01".into()))
            .with("to", Val::Str("2025-01-01".into())),
        "uuid" => Spec::new("uuid"),
        "json" | "jsonb" => Spec::new("json"),
        _ => match source
            .types
            .iter()
            .find(|t| t.oid == ty.oid)
            .map(|t| &t.kind)
        {
            Some(TypeKind::Enum(labels)) => Spec::new("choice").with(
                "values",
                Val::List(labels.iter().map(|l| Val::Str(l.clone())).collect()),
            ),
            _ => Spec::new("text")
                .with("min_len", Val::Int(8))
                .with("max_len", Val::Int(16)),
        },
    };
    (
        spec,
        format!(
            "a value of its type ({}): the text does not say which column it meets",
            ty.name
        ),
    )
}

/// A primary-key read of every table with a generated single-column key.
fn example(w: &Written) -> Vec<QueryOut> {
    let mut out = Vec::new();
    for &ti in w.order {
        let t = &w.tables[ti];
        if w.rows[ti] == 0 {
            continue;
        }
        let pk = t
            .constraints
            .iter()
            .find(|c| c.kind == 'p' && c.columns.len() == 1);
        let Some(col) = pk.and_then(|c| t.column(c.columns[0])) else {
            continue;
        };
        let keyed = w.gens[ti]
            .columns
            .iter()
            .any(|c| c.name == col.name && c.spec.as_ref().is_some_and(|s| s.kind() == "sequence"));
        if !keyed {
            continue;
        }
        out.push(QueryOut {
            name: format!("read_{}", label(&t.name)),
            weight: 1,
            sql: format!("SELECT * FROM {} WHERE {} = $1", t.sql_name, col.sql_name),
            params: vec![Spec::new("fk").with("table", Val::Str(t.name.clone()))],
            notes: vec!["an example: a primary-key read".into()],
        });
    }
    if out.is_empty() {
        if let Some(&ti) = w.order.first() {
            let t = &w.tables[ti];
            out.push(QueryOut {
                name: format!("read_{}", label(&t.name)),
                weight: 1,
                sql: format!("SELECT * FROM {} LIMIT 1", t.sql_name),
                params: Vec::new(),
                notes: vec![
                    "an example: no table has a single-column primary key to read by".into(),
                ],
            });
        }
    }
    out
}

/// A table name as part of a query name: lowercase letters, digits, `_`.
fn label(s: &str) -> String {
    let l: String = s
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    l.trim_matches('_').to_string()
}

fn dedupe_names(qs: &mut [QueryOut]) {
    let mut seen: Vec<String> = Vec::new();
    for q in qs.iter_mut() {
        let base = q.name.clone();
        let mut n = 1;
        while seen.contains(&q.name) {
            n += 1;
            q.name = format!("{base}_{n}");
        }
        seen.push(q.name.clone());
    }
}

fn short(sql: &str) -> String {
    let one: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 80 {
        format!("{}...", one.chars().take(77).collect::<String>())
    } else {
        one
    }
}
