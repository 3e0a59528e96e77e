//! Each column's generator: keys first (a foreign key draws its parent's
//! keys, a referenced or primary key is a `sequence`, a unique column never
//! repeats), then the column's statistics (distribution.rs); a type no
//! generator writes gets its default, NULL, or a constant. Last, every
//! unique key of the table gets at least one column that never repeats, or
//! is deduplicated before it is built.

use super::distribution::{figures, generator, kind_of, Input, Kind};
use super::fk::foreign_key;
use super::keys::{primary_key, sequence_fits, unique_alone, unique_keys, Keys};
use super::model::{Column, Constraint, Table};
use super::order::Order;
use super::spec::{Spec, Val};
use super::unique::{coprime_counts, make_unique, set_of, Set};
use crate::sql::{tokens, TokenKind};

/// One column as written: its generator (None: its default or NULL fills
/// it) and the comment lines above it.
pub struct ColumnOut {
    pub name: String,
    pub spec: Option<Spec>,
    pub notes: Vec<String>,
}

pub struct TableGens {
    pub columns: Vec<ColumnOut>,
    /// Unique keys whose rows may repeat (name, why): duplicates are
    /// deleted before the key is built, in after_seed.
    pub dedupe: Vec<(String, String)>,
}

/// What every table's generators are decided against.
pub struct Context<'a> {
    pub tables: &'a [super::model::Table],
    /// Rows each table gets, by table index.
    pub rows: &'a [u64],
    pub keys: &'a Keys,
    pub order: &'a Order,
    pub include_values: bool,
}

pub fn generators(cx: &Context, ti: usize) -> TableGens {
    let t = &cx.tables[ti];
    let mut columns: Vec<ColumnOut> = t.columns.iter().map(|c| column(cx, ti, c)).collect();
    let mut dedupe = Vec::new();
    for key in unique_keys(t) {
        let unique = key.columns.iter().any(|n| {
            columns
                .iter()
                .zip(&t.columns)
                .any(|(out, c)| c.num == *n && out.spec.as_ref().is_some_and(Spec::unique))
        });
        if unique {
            continue;
        }
        if key.columns.len() > 1 && unique_by_one(cx, ti, &key.columns, &mut columns, &key.name) {
            continue;
        }
        if key.columns.len() > 1 {
            // Only the combination must be unique: each column keeps its
            // values, from sets sized so combinations do not repeat. Beyond
            // these rows (--rows) they may: duplicates are deleted then.
            let why = if combine(cx, ti, &key.columns, &mut columns, &key.name) {
                "its columns' value sets are sized so that their combinations do not repeat \
                 (where a set is a share of rows, at any --rows); any that do are deleted before"
            } else {
                "its columns' generators cannot keep their combinations apart, so duplicates \
                 are deleted before"
            };
            dedupe.push((key.name, why.to_string()));
            continue;
        }
        let n = key.columns[0];
        let Some(i) = t.columns.iter().position(|c| c.num == n) else {
            continue;
        };
        // A foreign key keeps drawing its parent's keys.
        let spec = match &columns[i].spec {
            Some(spec) if !cx.keys.filled_by_parent(t, n) => Some(spec.clone()),
            _ => None,
        };
        match spec.map(|spec| make_unique(spec, &t.columns[i], cx.rows[ti])) {
            Some(Ok(spec)) => {
                columns[i].spec = Some(spec);
                columns[i].notes.push(format!(
                    "never repeats, for the unique key {}: its own distribution would repeat values",
                    key.name
                ));
                continue;
            }
            Some(Err((_, why))) => columns[i]
                .notes
                .push(format!("cannot be made unique: {why}")),
            None => {}
        }
        dedupe.push((
            key.name,
            "its column's generator may repeat values, so duplicates are deleted before".into(),
        ));
    }
    TableGens { columns, dedupe }
}

/// A key of several columns one of which is unique by itself in the source
/// (pg_stats' n_distinct within 5 % of the rows; a foreign key aside: it
/// draws its parent's keys), or one of which has a hot value (5 % of the
/// rows or more) beside a column that can be made unique: that column never
/// repeats, at any --rows, and the others keep their own distributions — a
/// customer's skew in (customer_id, placed_at), a tenant's in (tenant_id,
/// id), stays, where sets sized for the combination spread it evenly and do
/// not follow --rows. False, changing nothing, when neither holds.
fn unique_by_one(
    cx: &Context,
    ti: usize,
    key: &[i16],
    columns: &mut [ColumnOut],
    name: &str,
) -> bool {
    let t = &cx.tables[ti];
    let rows = cx.rows[ti];
    // (column index, its distinct share, its most common value's share),
    // of the key's columns a foreign key does not fill.
    let mut own: Vec<(usize, f64)> = Vec::new();
    let mut hottest: Option<(usize, f64)> = None;
    for n in key {
        let Some(i) = t.columns.iter().position(|c| c.num == *n) else {
            continue;
        };
        let stats = t.columns[i].stats.as_ref();
        let top = stats.and_then(|s| s.mcf.first().copied()).unwrap_or(0.0);
        if hottest.is_none_or(|(_, h)| top > h) {
            hottest = Some((i, top));
        }
        if !cx.keys.filled_by_parent(t, *n) {
            let distinct = stats.map_or(0.0, |s| match s.n_distinct {
                d if d < 0.0 => -d,
                d => d / (rows.max(1) as f64),
            });
            own.push((i, distinct));
        }
    }
    own.sort_by(|a, b| b.1.total_cmp(&a.1));
    let mut made = |i: usize, why: String| match columns[i].spec.clone() {
        Some(spec) => match make_unique(spec, &t.columns[i], rows) {
            Ok(spec) => {
                columns[i].spec = Some(spec);
                columns[i].notes.push(why);
                true
            }
            Err(_) => false,
        },
        None => false,
    };
    // Unique by itself in the source.
    if let Some((i, _)) = own.first().filter(|(_, d)| *d >= 0.95) {
        return made(
            *i,
            format!(
                "never repeats, for the key {name}: unique by itself in the source, so the \
                 key's other columns keep their own distributions"
            ),
        );
    }
    // A column with a hot value (a tenant with 15 % of the rows): sets
    // sized for the combination would spread it evenly. The most distinct
    // of the others never repeats instead (a tenant's own ids become one
    // sequence), and the hot one keeps its skew.
    let Some((hot, share)) = hottest.filter(|(_, s)| *s >= 0.05) else {
        return false;
    };
    let hot_name = &t.columns[hot].name;
    own.iter().filter(|(i, _)| *i != hot).any(|(i, _)| {
        made(
            *i,
            format!(
                "never repeats, for the key {name}: {hot_name}'s most common value holds {:.0} % \
                 of the rows, a skew sets sized for the combination would spread evenly, so \
                 this column is unique instead (its values are not the source's)",
                share * 100.0
            ),
        )
    })
}

/// Give the columns of a several-column key fixed sets of pairwise coprime
/// sizes whose product reaches the table's rows (unique.rs says why that
/// keeps combinations apart). False, changing nothing, when they cannot.
fn combine(cx: &Context, ti: usize, key: &[i16], columns: &mut [ColumnOut], name: &str) -> bool {
    let t = &cx.tables[ti];
    let rows = cx.rows[ti];
    let mut sets = Vec::new();
    for n in key {
        let Some(i) = t.columns.iter().position(|c| c.num == *n) else {
            continue;
        };
        // A column copying its parent row's value draws that row with
        // the other columns of its foreign key: no set of its own.
        if cx.keys.copy_of(t, *n).is_some() {
            continue;
        }
        let parent_rows = cx.keys.fk_of(t, *n).map(|(_, p)| cx.rows[p]);
        let set = columns[i]
            .spec
            .as_ref()
            .and_then(|s| set_of(s, &t.columns[i], rows, parent_rows));
        if let Some(set) = set {
            sets.push((i, set));
        }
    }
    let only: Vec<Set> = sets.iter().map(|(_, s)| s.clone()).collect();
    let Some(counts) = coprime_counts(&only, rows) else {
        return false;
    };
    let sizes: Vec<String> = sets
        .iter()
        .zip(&counts)
        .map(|((i, _), n)| format!("{} {n}", t.columns[*i].name))
        .collect();
    let combinations: u128 = counts.iter().map(|n| u128::from(*n)).product();
    let short = match u128::from(rows).checked_sub(combinations) {
        Some(d) if d > 0 => format!(
            "; they hold {combinations} combinations for {rows} rows, so the last {d} are \
             deleted as duplicates"
        ),
        _ => String::new(),
    };
    let grows = growing_set(&sets, &counts, rows);
    for (k, ((i, set), n)) in sets.into_iter().zip(counts).enumerate() {
        let nulls = match columns[i]
            .spec
            .as_ref()
            .and_then(|s| s.get("null_fraction"))
        {
            Some(Val::Float(x)) => *x,
            _ => 0.0,
        };
        let (distinct, follows) = match grows {
            // Its share of rows, moved to a count coprime with the others
            // when the rows are known (gen_shape.rs resolve_shares): the
            // combinations follow --rows.
            Some(g) if g == k && short.is_empty() => (
                Val::Str(format!("{}%", share_percent(n, rows))),
                ", a share of the rows that follows --rows",
            ),
            _ => (Val::Int(n as i64), ""),
        };
        let spec = set.shape.with("distinct", distinct).nulls(nulls);
        columns[i].spec = Some(spec);
        columns[i].notes.push(format!(
            "a set of {n} values{follows}, for the key {name}: sets of coprime sizes ({}) never \
             repeat a combination, where each column's own distribution would{short}",
            sizes.join(", ")
        ));
    }
    true
}

/// Which of a key's sets may be written as a share of rows: the largest,
/// larger than every other (a share moves up to a count coprime with the
/// fixed ones when the rows are known), of a generator whose room grows with
/// the rows (a foreign key's parent) or far exceeds them (timestamps,
/// floats, long text). None keeps every count fixed.
fn growing_set(sets: &[(usize, Set)], counts: &[u64], rows: u64) -> Option<usize> {
    let (k, n) = counts.iter().copied().enumerate().max_by_key(|(_, n)| *n)?;
    let alone = counts.iter().enumerate().all(|(j, m)| j == k || *m < n);
    let set = &sets[k].1;
    let room = set.shape.kind() == "fk" || set.room >= 100.0 * rows as f64;
    (alone && room && rows > 0).then_some(k)
}

/// `n` of `rows` as a percentage that resolves back to at least `n` rows.
fn share_percent(n: u64, rows: u64) -> f64 {
    let exact = n as f64 / rows as f64 * 100.0;
    let mut p = (exact * 1e6).ceil() / 1e6;
    while (p / 100.0 * rows as f64).round() < n as f64 {
        p += 1e-6;
    }
    p
}

/// Column `c`'s part of the foreign key `fk` of several columns into table
/// `p`: its parent column's value in a drawn parent row, and its comment.
/// Every column of the key draws the row alike. Where a parent column is
/// unique by itself in the source (an account's global id), the column
/// referencing it tells how the references spread over the parents (a
/// tenant's accounts: by account, not by tenant), hot ones and all; where
/// none is (ids counted per tenant, line numbers per order), a value of any
/// one column is shared by many parent rows, so its statistics say nothing
/// of a row's share: the rows are drawn evenly. NULL only where every
/// column may be. A table with two such keys into one parent names each
/// (`key`): they draw their rows apart.
fn copied_key(cx: &Context, ti: usize, fk: &Constraint, p: usize, c: &Column) -> (Spec, String) {
    let (t, parent) = (&cx.tables[ti], &cx.tables[p]);
    let unique_share = |r: &i16| {
        parent
            .column(*r)
            .and_then(|pc| pc.stats.as_ref())
            .map_or(0.0, |s| match s.n_distinct {
                d if d < 0.0 => -d,
                d => d / cx.rows[p].max(1) as f64,
            })
    };
    let lead = fk
        .columns
        .iter()
        .zip(&fk.ref_columns)
        .filter(|(_, r)| unique_alone(parent, **r) || unique_share(r) >= 0.95)
        .max_by(|a, b| unique_share(a.1).total_cmp(&unique_share(b.1)))
        .and_then(|(n, _)| t.column(*n));
    let deferred = cx.order.is_deferred(t, &fk.name);
    let mut spec = match lead {
        Some(lead) => {
            let input = Input {
                column: lead,
                kind: kind_of(&lead.base),
                rows: cx.rows[ti],
                include_values: false,
                allowed: None,
            };
            foreign_key(&input, &parent.name, cx.rows[p], deferred)
        }
        None => {
            let spec = Spec::new("fk").with("table", Val::Str(parent.name.clone()));
            match deferred {
                true => spec.with("deferred", Val::Bool(true)),
                false => spec,
            }
        }
    };
    // MATCH SIMPLE (the default) leaves a key with any NULL column
    // unchecked: each column keeps its own share of NULLs (the copies draw
    // one NULL number, so fewer nest in more). MATCH FULL wants all or
    // none: they share the largest, none where a column is NOT NULL.
    let nulls_of = |x: &Column| match (&x.stats, x.not_null) {
        (Some(st), false) => st.null_frac,
        _ => 0.0,
    };
    let own = if fk.def.contains("MATCH FULL") {
        let key_columns = || fk.columns.iter().filter_map(|n| t.column(*n));
        match key_columns().any(|x| x.not_null) {
            true => 0.0,
            false => key_columns().map(nulls_of).fold(0.0, f64::max),
        }
    } else {
        nulls_of(c)
    };
    spec.remove("null_fraction");
    let spec = spec.nulls(own);
    let at = fk.columns.iter().position(|n| *n == c.num).unwrap_or(0);
    let parent_column = parent
        .column(fk.ref_columns[at])
        .map_or("", |x| x.name.as_str());
    let mut spec = spec.with("column", Val::Str(parent_column.to_string()));
    let others: Vec<&str> = fk
        .columns
        .iter()
        .filter(|n| **n != c.num)
        .filter_map(|n| t.column(*n).map(|x| x.name.as_str()))
        .collect();
    let mut note = format!(
        "{}.{parent_column} of one row of {} drawn with {} for the foreign key {}{}",
        parent.name,
        parent.name,
        others.join(", "),
        fk.name,
        match lead {
            Some(l) => format!(", spread as {} is in the source", l.name),
            None => ", drawn evenly: no column of the key is unique in the parent by itself".into(),
        }
    );
    let keys_into_parent = t
        .constraints
        .iter()
        .filter(|k| cx.keys.is_copied(t, k) && k.ref_table == fk.ref_table)
        .count();
    if keys_into_parent > 1 {
        spec = spec.with("key", Val::Str(fk.name.clone()));
        note.push_str("; its own row, apart from the other foreign keys into it");
    }
    (spec, note)
}

fn column(cx: &Context, ti: usize, c: &Column) -> ColumnOut {
    let t = &cx.tables[ti];
    let mut notes = Vec::new();
    let out = |spec: Option<Spec>, notes: Vec<String>| ColumnOut {
        name: c.name.clone(),
        spec,
        notes,
    };
    if c.generated.is_some() {
        return out(
            None,
            vec!["a generated column: Postgres computes it".into()],
        );
    }
    let kind = kind_of(&c.base);
    let nulls = match &c.stats {
        Some(s) if !c.not_null => s.null_frac,
        _ => 0.0,
    };
    if let Some((fk, p)) = cx.keys.copy_of(t, c.num) {
        notes.push(figures(c));
        let (spec, note) = copied_key(cx, ti, fk, p, c);
        notes.push(note);
        return out(Some(spec), notes);
    }
    if let Some((fk, p)) = cx.keys.fk_of(t, c.num) {
        let parent = &cx.tables[p].name;
        notes.push(figures(c));
        if unique_alone(t, c.num) {
            notes.push(format!(
                "a unique foreign key to {parent}: keys 1, 2, 3, ... one per row (no more rows than {parent})"
            ));
            return out(Some(Spec::new("sequence").nulls(nulls)), notes);
        }
        notes.push(format!(
            "foreign key to {parent}: its keys; the most common ones go to the first keys of {parent}"
        ));
        let input = Input {
            column: c,
            kind,
            rows: cx.rows[ti],
            include_values: false,
            allowed: None,
        };
        let deferred = cx.order.is_deferred(t, &fk.name);
        let spec = foreign_key(&input, parent, cx.rows[p], deferred);
        return out(Some(spec), notes);
    }
    let referenced = cx.keys.referenced.contains(&(t.oid, c.num));
    let keyed = referenced || primary_key(t, c.num) || c.identity.is_some() || c.serial;
    if keyed && sequence_fits(kind) {
        let why = if referenced {
            "referenced by a foreign key: keys 1, 2, 3, ... which fk columns draw from"
        } else if primary_key(t, c.num) {
            "primary key: 1, 2, 3, ..."
        } else {
            "identity/serial: 1, 2, 3, ..."
        };
        notes.push(why.into());
        return out(Some(Spec::new("sequence").nulls(nulls)), notes);
    }
    notes.push(figures(c));
    let allowed = match kind {
        Kind::Text { .. } => check_literals(t, c),
        _ => None,
    };
    let input = Input {
        column: c,
        kind,
        rows: cx.rows[ti],
        include_values: cx.include_values || list_partition_key(t, c),
        allowed,
    };
    let (spec, more) = generator(&input);
    notes.extend(more);
    let Some(spec) = spec else {
        let (spec, note) = unsupported(c);
        notes.push(note);
        return out(spec, notes);
    };
    if unique_alone(t, c.num) && !spec.unique() {
        return match make_unique(spec, c, cx.rows[ti]) {
            Ok(spec) => {
                notes.push("unique: every row its own value".into());
                out(Some(spec), notes)
            }
            // generators() says why, with the key.
            Err((spec, _)) => out(Some(spec), notes),
        };
    }
    out(Some(spec), notes)
}

/// A column of a type no generator writes: its default, NULL where it may
/// be NULL, else a constant the type accepts.
fn unsupported(c: &Column) -> (Option<Spec>, String) {
    let ty = &c.type_sql;
    if c.default.is_some() {
        return (
            None,
            format!("type {ty}: no generator writes it; its default fills every row"),
        );
    }
    if !c.not_null {
        return (
            None,
            format!("type {ty}: no generator writes it; left NULL"),
        );
    }
    let value = placeholder(c);
    (
        Some(Spec::new("constant").with("value", Val::Str(value.clone()))),
        format!("type {ty}: no generator writes it; every row gets the constant {value:?} (edit it, or fill the column in seed_sql)"),
    )
}

/// A value of the column's type that its input function accepts.
fn placeholder(c: &Column) -> String {
    let b = &c.base;
    let v = match (b.category, b.typtype, b.name.as_str()) {
        ('A', _, _) => "{}",
        (_, 'r', _) => "empty",
        (_, 'm', _) => "{}",
        (_, 'c', _) => "()",
        (_, _, "inet") => "0.0.0.0",
        (_, _, "cidr") => "0.0.0.0/0",
        (_, _, "macaddr") => "00:00:00:00:00:00",
        (_, _, "macaddr8") => "00:00:00:00:00:00:00:00",
        (_, _, "time" | "timetz") => "00:00:00",
        (_, _, "interval" | "money" | "oid") => "0",
        (_, _, "point") => "(0,0)",
        (_, _, "line") => "{1,-1,0}",
        (_, _, "lseg" | "path") => "[(0,0),(1,1)]",
        (_, _, "box") => "(1,1),(0,0)",
        (_, _, "polygon") => "((0,0),(1,1),(1,0))",
        (_, _, "circle") => "<(0,0),1>",
        (_, _, "pg_lsn") => "0/0",
        (_, _, "bit") => return "0".repeat(b.typmod.max(1) as usize),
        ('B', _, _) => "false",
        ('N', _, _) => "0",
        _ => "",
    };
    v.to_string()
}

/// The column a table is partitioned by LIST on: its values are in the
/// partitions' bounds (schema, not data), and synthetic ones would fit no
/// partition.
fn list_partition_key(t: &Table, c: &Column) -> bool {
    t.partition_key
        .as_deref()
        .is_some_and(|k| k == format!("LIST ({})", c.sql_name))
}

/// The string literals of a CHECK that lists a text column's values
/// (`status IN ('new', 'paid')`, which Postgres keeps as `= ANY (ARRAY[...])`).
pub fn check_literals(t: &Table, c: &Column) -> Option<Vec<String>> {
    let check = t.constraints.iter().find(|k| {
        k.kind == 'c'
            && k.columns == [c.num]
            && k.def.contains("= ANY (ARRAY[")
            && !k.def.contains(['~', '<', '>'])
            && !k.def.to_uppercase().contains("LIKE")
    })?;
    let def = &check.def;
    let literals: Vec<String> = tokens(def)
        .into_iter()
        .filter(|tok| tok.kind == TokenKind::String)
        .map(|tok| {
            let s = &def[tok.start..tok.end];
            s.strip_prefix('\'')
                .and_then(|s| s.strip_suffix('\''))
                .unwrap_or(s)
                .replace("''", "'")
        })
        .collect();
    (!literals.is_empty()).then_some(literals)
}
