//! Each table's SQL: its `create` (columns, and the constraints generated
//! rows satisfy), and its `after_seed` (indexes, built faster after the load
//! than during it, and the constraints that can only come after: deferred
//! foreign keys of a cycle, and constraints added NOT VALID because
//! independently generated columns would break them).

use super::columns::{check_literals, TableGens};
use super::distribution::{kind_of, Kind};
use super::keys::Keys;
use super::model::{Column, Constraint, Source, Table, TypeKind};
use super::order::Order;

pub struct TableSql {
    pub create: String,
    pub after_seed: Vec<String>,
    /// Comment lines: what was moved or left out, and why.
    pub notes: Vec<String>,
}

/// Where a constraint goes.
enum Place {
    Inline,
    /// In after_seed, as written.
    After(&'static str),
    /// In after_seed, NOT VALID.
    NotValid(&'static str),
    /// Deduplicate, then add it in after_seed (why).
    Dedupe(String),
    /// Delete the rows that reference no parent row, then add it in
    /// after_seed (why).
    Orphans(&'static str),
    Skip(&'static str),
}

/// `tables`: all the tables written (a foreign key names its parent
/// unqualified, as the rehearsal database has it), `all_gens` their
/// generators; `t` is `tables[ti]`.
pub fn table_sql(
    t: &Table,
    tables: &[Table],
    all_gens: &[TableGens],
    ti: usize,
    keys: &Keys,
    order: &Order,
) -> TableSql {
    let gens = &all_gens[ti];
    let name = &t.sql_name;
    let mut lines: Vec<String> = t.columns.iter().map(column_sql).collect();
    let mut after = Vec::new();
    let mut notes = Vec::new();
    for c in &t.constraints {
        let parent = tables.iter().find(|p| Some(p.oid) == c.ref_table);
        let def = match parent {
            Some(p) => c.def.replace(
                &format!("REFERENCES {}.{}(", p.sql_schema, p.sql_name),
                &format!("REFERENCES {}(", p.sql_name),
            ),
            None => c.def.clone(),
        };
        let c = &Constraint { def, ..c.clone() };
        let add = format!("ALTER TABLE {name} ADD CONSTRAINT {} {}", c.name, c.def);
        // A parent deleting rows of repeated keys after its load leaves a
        // few copied references without a row.
        let parent_dedupes = tables
            .iter()
            .position(|p| Some(p.oid) == c.ref_table)
            .is_some_and(|p| !all_gens[p].dedupe.is_empty());
        match place(t, c, gens, keys, order, parent_dedupes) {
            Place::Inline => lines.push(format!("CONSTRAINT {} {}", c.name, c.def)),
            Place::After(why) => {
                notes.push(format!("{} is added in after_seed: {why}", c.name));
                after.push(add);
            }
            Place::NotValid(why) => {
                notes.push(format!(
                    "{} is added NOT VALID in after_seed: {why}",
                    c.name
                ));
                after.push(format!("{add} NOT VALID"));
            }
            Place::Dedupe(why) => {
                notes.push(format!("{}: {why} it is added", c.name));
                after.push(dedupe_sql(t, &c.columns));
                after.push(add);
            }
            Place::Orphans(why) => {
                notes.push(format!(
                    "{} is added in after_seed: {why} it is added",
                    c.name
                ));
                if let Some(p) = parent {
                    after.push(orphans_sql(t, p, c));
                }
                after.push(add);
            }
            Place::Skip(why) => notes.push(format!("{} ({}) is not written: {why}", c.name, c.def)),
        }
    }
    for i in &t.indexes {
        if !i.valid {
            notes.push(format!("index {} is not written: it is invalid in the source (a failed CREATE INDEX CONCURRENTLY?)", i.name));
            continue;
        }
        if let Some((_, why)) = gens.dedupe.iter().find(|(n, _)| *n == i.name) {
            notes.push(format!("unique index {}: {why} it is built", i.name));
            after.push(dedupe_sql(t, &i.columns));
        }
        after.push(i.def.clone());
    }
    if !t.triggers.is_empty() {
        notes.push(format!(
            "its triggers are not written (nor their functions): {}",
            t.triggers.join(", ")
        ));
    }
    if !t.inherits.is_empty() {
        notes.push(format!(
            "inherits from {}: written as a table of its own, with every column",
            t.inherits.join(", ")
        ));
    }
    let mut create = format!(
        "CREATE {}TABLE {name} (\n    {}\n)",
        if t.unlogged { "UNLOGGED " } else { "" },
        lines.join(",\n    ")
    );
    if let Some(key) = &t.partition_key {
        create.push_str(&format!(" PARTITION BY {key}"));
    }
    if !t.options.is_empty() {
        create.push_str(&format!(" WITH ({})", t.options.join(", ")));
    }
    for p in &t.partitions {
        create.push_str(&format!(
            ";\nCREATE TABLE {} PARTITION OF {} {}",
            p.name, p.parent, p.bound
        ));
        if let Some(key) = &p.partition_key {
            create.push_str(&format!(" PARTITION BY {key}"));
        }
    }
    TableSql {
        create,
        after_seed: after,
        notes,
    }
}

fn place(
    t: &Table,
    c: &Constraint,
    gens: &TableGens,
    keys: &Keys,
    order: &Order,
    parent_dedupes: bool,
) -> Place {
    if c.def.ends_with(" NOT VALID") {
        return Place::After("it is NOT VALID in the source");
    }
    let dedupe = gens.dedupe.iter().find(|(n, _)| *n == c.name);
    match c.kind {
        'p' | 'u' if dedupe.is_some() => Place::Dedupe(dedupe.map(|d| d.1.clone()).unwrap_or_default()),
        'p' | 'u' => Place::Inline,
        // A key the generators cannot fill (a self-reference of several
        // columns: its columns would copy themselves) is NOT VALID wherever
        // it goes.
        'f' if order.is_deferred(t, &c.name) && !keys.is_generated(t, c) => Place::NotValid(
            "its columns would have to copy a row of their own table, which the generators cannot draw",
        ),
        'f' if order.is_deferred(t, &c.name) => {
            if c.ref_table == Some(t.oid) {
                Place::After("it references its own table")
            } else {
                Place::After("the foreign keys form a cycle; this one is added once every table is loaded")
            }
        }
        'f' if keys.is_copied(t, c) && parent_dedupes => Place::Orphans(
            "its columns copy a drawn row of its parent, which deletes rows of repeated keys after its load (only at --rows its key's value sets cannot keep apart): the rows naming one are deleted before",
        ),
        'f' if keys.is_generated(t, c) => Place::Inline,
        'f' => Place::NotValid("the generators cannot draw keys that match its parent's (a key type they cannot fill, a column in two keys, or its parent's own columns)"),
        'c' if check_holds(t, c) => Place::Inline,
        'c' => Place::NotValid("it relates columns (or shapes text) that are generated independently"),
        'x' => Place::Skip("generated rows would conflict under it"),
        _ => Place::Skip("an unknown kind of constraint"),
    }
}

/// A CHECK that generated rows satisfy: it tests one column of numbers,
/// dates, booleans or an enum (their generated values stay within the
/// source's range), or lists a text column's values (which its generator
/// then draws from).
fn check_holds(t: &Table, c: &Constraint) -> bool {
    let [num] = c.columns[..] else {
        return false;
    };
    let Some(col) = t.column(num) else {
        return false;
    };
    match kind_of(&col.base) {
        Kind::Int
        | Kind::Numeric { .. }
        | Kind::Float
        | Kind::Timestamp
        | Kind::Date
        | Kind::Bool
        | Kind::Enum => true,
        Kind::Text { .. } => check_literals(t, col).is_some(),
        _ => false,
    }
}

fn column_sql(c: &Column) -> String {
    let mut s = format!("{} ", c.sql_name);
    if c.serial {
        s.push_str(match c.base.oid {
            20 => "bigserial",
            21 => "smallserial",
            _ => "serial",
        });
    } else {
        s.push_str(&c.type_sql);
    }
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    match c.identity {
        Some('a') => s.push_str(" GENERATED ALWAYS AS IDENTITY"),
        Some(_) => s.push_str(" GENERATED BY DEFAULT AS IDENTITY"),
        None => {}
    }
    if let Some(expr) = &c.generated {
        s.push_str(&format!(" GENERATED ALWAYS AS ({expr}) STORED"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    if let (Some(d), false) = (&c.default, c.serial) {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    s
}

/// Delete the rows of `t` whose foreign key `c` into `p` names no row of
/// `p` (a key with a NULL in it names none and is kept, as MATCH SIMPLE
/// keeps it).
fn orphans_sql(t: &Table, p: &Table, c: &Constraint) -> String {
    let name = |table: &Table, n: &i16| {
        table
            .column(*n)
            .map_or(String::new(), |x| x.sql_name.clone())
    };
    let matches: Vec<String> = c
        .columns
        .iter()
        .zip(&c.ref_columns)
        .map(|(a, b)| format!("p.{} = c.{}", name(p, b), name(t, a)))
        .collect();
    let present: Vec<String> = c
        .columns
        .iter()
        .map(|a| format!("c.{} IS NOT NULL", name(t, a)))
        .collect();
    format!(
        "DELETE FROM {} c WHERE {} AND NOT EXISTS (SELECT FROM {} p WHERE {})",
        t.sql_name,
        present.join(" AND "),
        p.sql_name,
        matches.join(" AND ")
    )
}

/// Delete all but one row of each set of equal keys.
fn dedupe_sql(t: &Table, columns: &[i16]) -> String {
    let name = &t.sql_name;
    let same: Vec<String> = columns
        .iter()
        .filter_map(|n| t.column(*n))
        .map(|c| format!("a.{0} = b.{0}", c.sql_name))
        .collect();
    format!(
        "DELETE FROM {name} a USING {name} b WHERE a.ctid > b.ctid AND {}",
        same.join(" AND ")
    )
}

/// What the tables need around them.
pub struct Prelude {
    /// Before the first table: extensions, types, shared sequences.
    pub sql: Vec<String>,
    /// After seeding: domain checks synthetic text would break, NOT VALID.
    pub after_seed: Vec<String>,
    pub notes: Vec<String>,
}

/// What goes before the first table: extensions, types and shared
/// sequences its columns need. Enum and domain types are written; other
/// user-defined types cannot be (a comment says so).
pub fn prelude(source: &Source) -> Prelude {
    let mut sql = Vec::new();
    let mut notes = Vec::new();
    let mut after_seed = Vec::new();
    for s in &source.type_schemas {
        sql.push(format!("CREATE SCHEMA IF NOT EXISTS {s}"));
    }
    for e in &source.extensions {
        sql.push(format!("CREATE EXTENSION IF NOT EXISTS {e}"));
    }
    for t in &source.types {
        if let TypeKind::Enum(labels) = &t.kind {
            let labels: Vec<String> = labels.iter().map(|l| sql_literal(l)).collect();
            sql.push(format!(
                "CREATE TYPE {} AS ENUM ({})",
                t.name,
                labels.join(", ")
            ));
        }
    }
    for t in &source.types {
        match &t.kind {
            TypeKind::Range(sub) => {
                sql.push(format!("CREATE TYPE {} AS RANGE (subtype = {sub})", t.name))
            }
            TypeKind::Composite(attrs) => sql.push(format!("CREATE TYPE {} AS ({attrs})", t.name)),
            _ => {}
        }
    }
    // Domains over domains: the inner one first.
    let mut domains: Vec<&super::model::TypeDef> = source
        .types
        .iter()
        .filter(|t| matches!(t.kind, TypeKind::Domain { .. }))
        .collect();
    domains.sort_by_key(|d| domain_depth(source, d.oid));
    for d in domains {
        let TypeKind::Domain {
            base,
            text,
            not_null,
            default,
            checks,
            ..
        } = &d.kind
        else {
            continue;
        };
        if *text && !checks.is_empty() {
            notes.push(format!(
                "The checks of domain {} are added NOT VALID after seeding: they shape text, which is synthetic.",
                d.name
            ));
            for c in checks {
                after_seed.push(format!("ALTER DOMAIN {} ADD {c} NOT VALID", d.name));
            }
        }
        let mut s = format!("CREATE DOMAIN {} AS {base}", d.name);
        if let Some(def) = default {
            s.push_str(&format!(" DEFAULT {def}"));
        }
        if *not_null {
            s.push_str(" NOT NULL");
        }
        if !*text {
            for c in checks {
                s.push_str(&format!(" {c}"));
            }
        }
        sql.push(s);
    }
    for t in &source.types {
        if let TypeKind::Other(kind) = t.kind {
            notes.push(format!(
                "Type {} ({}) is not written: create it before the first table.",
                t.name,
                match kind {
                    'c' => "a table's row type",
                    _ => "a base type outside an extension",
                }
            ));
        }
    }
    for s in &source.sequences {
        sql.push(format!("CREATE SEQUENCE IF NOT EXISTS {s}"));
    }
    if !source.function_defs.is_empty() {
        // As the source has them; what they call in turn is not written,
        // and their bodies are checked when called, not now (nor are the
        // tables they read there yet).
        sql.push("SET check_function_bodies = off".to_string());
        sql.extend(source.function_defs.iter().map(|(def, _)| def.clone()));
        sql.push("RESET check_function_bodies".to_string());
        let names: Vec<&str> = source
            .function_defs
            .iter()
            .map(|(_, n)| n.as_str())
            .collect();
        notes.push(format!(
            "Functions the defaults, checks or indexes call are written as the source has \
             them: {}. Functions they call in turn are not.",
            names.join(", ")
        ));
    }
    if !source.functions.is_empty() {
        notes.push(format!(
            "Defaults, checks or indexes call functions that are not written (another \
             language than SQL or PL/pgSQL, or another schema): {}. Create them before the \
             first table.",
            source.functions.join(", ")
        ));
    }
    Prelude {
        sql,
        after_seed,
        notes,
    }
}

fn domain_depth(source: &Source, oid: u32) -> usize {
    let mut depth = 0;
    let mut at = oid;
    while let Some(t) = source.types.iter().find(|t| t.oid == at) {
        match t.kind {
            TypeKind::Domain { base_oid, .. } if depth < 16 => {
                depth += 1;
                at = base_oid;
            }
            _ => break,
        }
    }
    depth
}

fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
