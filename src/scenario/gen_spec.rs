//! Validating a generator spec (`{ gen = "int", min = 1, max = 100 }`) into a
//! [`ColumnGen`]: which fields each kind allows and needs, ranges, dates,
//! foreign keys; and a generated row's rough size. Reading the TOML values
//! of the fields is gen_value.rs.

use std::ops::Range;

use super::diag::Diags;
use super::gen_shape;
use super::gen_value::{
    float_value, int_value, len_range, opt_small_int, scalar_text, span_of, timestamp,
};
use super::model::{GenSpec, S};
use super::{ColumnGen, Gen, IntDist, Scale};

pub const KINDS: &[&str] = &[
    "sequence",
    "int",
    "float",
    "text",
    "words",
    "choice",
    "bool",
    "timestamp",
    "uuid",
    "json",
    "fk",
    "constant",
];

/// Fields each kind accepts besides `gen` and `null_fraction`.
fn allowed(kind: &str) -> &'static [&'static str] {
    match kind {
        "sequence" => &["start"],
        "int" => &["min", "max", "dist", "s", "bounds", "distinct"],
        "float" => &["min", "max", "bounds", "distinct"],
        "text" => &["min_len", "max_len", "distinct"],
        "words" => &["min", "max"],
        "choice" => &["values", "weights", "rest", "rest_weight"],
        "bool" => &["p_true", "p"],
        "timestamp" => &["from", "to", "bounds", "distinct"],
        "json" => &["keys"],
        "fk" => &[
            "table",
            "column",
            "key",
            "deferred",
            "distinct",
            "weights",
            "rest_weight",
        ],
        "constant" => &["value"],
        _ => &[],
    }
}

/// A table a foreign-key generator may point at.
pub struct FkTarget {
    pub name: String,
    pub rows: u64,
    /// Where the table is defined, for "defined later" messages.
    pub line: usize,
    /// Whether this generator may use it (tables defined earlier, for
    /// columns; every table, for query parameters).
    pub usable: bool,
}

/// Validate one spec; `path` is its dotted field path. None when invalid
/// (every problem recorded in `d`).
pub fn column_gen(
    d: &mut Diags,
    spec: &S<GenSpec>,
    path: &str,
    targets: &[FkTarget],
) -> Option<ColumnGen> {
    let s = Spec {
        g: spec.get_ref(),
        span: spec.span(),
        path,
    };
    let kind = gen_kind(d, &s)?;
    let errors_before = d.errors.len();
    check_fields(d, &s, kind);
    let null_fraction = match &s.g.null_fraction {
        Some(v) => d
            .float_in(v, &s.field("null_fraction"), 0.0, 1.0)
            .unwrap_or(0.0),
        None => 0.0,
    };
    let gen = match kind {
        "sequence" => Gen::Sequence {
            start: s.g.start.as_ref().map_or(1, |v| *v.get_ref()),
        },
        "int" | "float" | "timestamp" if s.g.bounds.is_some() || s.g.distinct.is_some() => {
            let scale = match kind {
                "int" => Scale::Int,
                "float" => Scale::Float,
                _ => Scale::Timestamp,
            };
            gen_shape::histogram(d, s.g, s.span.clone(), path, scale)?
        }
        "int" => int_gen(d, &s)?,
        "float" => {
            let min = float_value(d, &s.g.min, &s.field("min"), s.span.clone());
            let max = float_value(d, &s.g.max, &s.field("max"), s.span.clone());
            let (min, max) = (min?, max?);
            check_min_max(d, &s, min, max);
            if !(max - min).is_finite() {
                d.err(
                    span_of(&s.g.max, s.span.clone()),
                    s.field("max"),
                    format!("max - min overflows a double ({max:e} - {min:e}); narrow the range"),
                );
            }
            Gen::Float { min, max }
        }
        "text" => {
            let (min_len, max_len) = len_range(
                d,
                &s.g.min_len,
                &s.g.max_len,
                &s.field("min_len"),
                &s.field("max_len"),
                (8, 32),
                1_000_000,
            )?;
            match &s.g.distinct {
                Some(v) => gen_shape::text_set(d, v, path, min_len, max_len)?,
                None => Gen::Text { min_len, max_len },
            }
        }
        "words" => {
            let min = opt_small_int(d, &s.g.min, &s.field("min"), 10_000);
            let max = opt_small_int(d, &s.g.max, &s.field("max"), 10_000);
            let (min, max) = (min?.unwrap_or(1), max?.unwrap_or(8));
            check_min_max(d, &s, min, max);
            Gen::Words { min, max }
        }
        "choice" => {
            let rest =
                s.g.rest
                    .as_ref()
                    .map(|r| column_gen(d, r, &s.field("rest"), targets));
            let listed = choice(d, s.g, s.span.clone(), path)?;
            gen_shape::choice_rest(d, s.g, s.span.clone(), path, listed, rest.flatten())?
        }
        "bool" => bool_gen(d, &s)?,
        "timestamp" => timestamp_gen(d, &s)?,
        "uuid" => Gen::Uuid,
        "json" => Gen::Json {
            keys: match &s.g.keys {
                Some(v) => d.int_in(v, &s.field("keys"), 1, 1000)? as u32,
                None => 3,
            },
        },
        "fk" => fk_gen(d, &s, targets)?,
        "constant" => {
            let v = d.required(
                &s.g.value,
                s.span.clone(),
                &s.field("value"),
                "the value, e.g. value = \"new\"",
            )?;
            Gen::Constant {
                value: scalar_text(d, v, &s.field("value"))?,
            }
        }
        _ => return None,
    };
    (d.errors.len() == errors_before).then_some(ColumnGen {
        kind: gen,
        null_fraction,
    })
}

/// One generator spec under validation: its fields, where it is, and its
/// dotted path.
struct Spec<'a> {
    g: &'a GenSpec,
    span: Range<usize>,
    path: &'a str,
}

impl Spec<'_> {
    fn field(&self, name: &str) -> String {
        format!("{}.{name}", self.path)
    }
}

/// The `gen` kind, if it is given and known.
fn gen_kind<'a>(d: &mut Diags, s: &Spec<'a>) -> Option<&'a str> {
    let Some(kind_v) = &s.g.gen else {
        d.err(
            s.span.clone(),
            s.field("gen"),
            format!(
                "missing; expected a generator, one of: {}",
                KINDS.join(", ")
            ),
        );
        return None;
    };
    let kind = kind_v.get_ref().as_str();
    if !KINDS.contains(&kind) {
        d.err(
            kind_v.span(),
            s.field("gen"),
            format!(
                "unknown generator `{kind}`;{} expected one of: {}",
                super::keys::closest(kind, KINDS)
                    .map_or(String::new(), |k| format!(" did you mean `{k}`?")),
                KINDS.join(", ")
            ),
        );
        return None;
    }
    Some(kind)
}

/// Every field set must apply to `kind`.
fn check_fields(d: &mut Diags, s: &Spec, kind: &str) {
    let ok_fields = allowed(kind);
    for (name, span) in s.g.set_fields() {
        if name != "null_fraction" && !ok_fields.contains(&name) {
            let takes: Vec<&str> = ok_fields.iter().copied().chain(["null_fraction"]).collect();
            d.err(
                span,
                s.field(name),
                format!(
                    "`{name}` does not apply to gen = \"{kind}\"; it takes: {}",
                    takes.join(", ")
                ),
            );
        }
    }
}

/// `min` must not exceed `max` (the error points at `max`).
fn check_min_max<T: PartialOrd + std::fmt::Display>(d: &mut Diags, s: &Spec, min: T, max: T) {
    if min > max {
        d.err(
            span_of(&s.g.max, s.span.clone()),
            s.field("max"),
            format!("max {max} is less than min {min}; expected min <= max"),
        );
    }
}

fn int_gen(d: &mut Diags, s: &Spec) -> Option<Gen> {
    let min = int_value(d, &s.g.min, &s.field("min"), s.span.clone());
    let max = int_value(d, &s.g.max, &s.field("max"), s.span.clone());
    let dist = match &s.g.dist {
        None => IntDist::Uniform,
        Some(v) => match v.get_ref().as_str() {
            "uniform" => IntDist::Uniform,
            "zipf" => IntDist::Zipf,
            other => {
                d.err(
                    v.span(),
                    s.field("dist"),
                    format!("unknown distribution `{other}`; expected \"uniform\" or \"zipf\""),
                );
                IntDist::Uniform
            }
        },
    };
    let exponent = match &s.g.s {
        Some(v) if dist != IntDist::Zipf => {
            d.err(
                v.span(),
                s.field("s"),
                "the exponent `s` only applies to dist = \"zipf\"",
            );
            1.0
        }
        Some(v) => d.float_in(v, &s.field("s"), 0.01, 100.0).unwrap_or(1.0),
        None => 1.0,
    };
    let (min, max) = (min?, max?);
    check_min_max(d, s, min, max);
    Some(Gen::Int {
        min,
        max,
        dist,
        s: exponent,
    })
}

fn bool_gen(d: &mut Diags, s: &Spec) -> Option<Gen> {
    if let (Some(_), Some(p)) = (&s.g.p_true, &s.g.p) {
        d.err(
            p.span(),
            s.field("p"),
            "give either p_true or p (the same thing), not both",
        );
    }
    let p_true = match (&s.g.p_true, &s.g.p) {
        (Some(v), _) => d.float_in(v, &s.field("p_true"), 0.0, 1.0),
        (None, Some(v)) => d.float_in(v, &s.field("p"), 0.0, 1.0),
        (None, None) => Some(0.5),
    }?;
    Some(Gen::Bool { p_true })
}

fn timestamp_gen(d: &mut Diags, s: &Spec) -> Option<Gen> {
    let from = timestamp(d, &s.g.from, &s.field("from"), s.span.clone());
    let to = timestamp(d, &s.g.to, &s.field("to"), s.span.clone());
    let (from_us, to_us) = (from?, to?);
    if from_us > to_us {
        d.err(
            span_of(&s.g.to, s.span.clone()),
            s.field("to"),
            "`to` is earlier than `from`; expected from <= to",
        );
    }
    Some(Gen::Timestamp { from_us, to_us })
}

/// A key of an earlier table that has generated rows.
fn fk_gen(d: &mut Diags, s: &Spec, targets: &[FkTarget]) -> Option<Gen> {
    let field = s.field("table");
    let t = d.required(
        &s.g.table,
        s.span.clone(),
        &field,
        "the name of the table whose rows this references, e.g. table = \"customers\"",
    )?;
    let name = t.get_ref();
    let problem = match targets.iter().find(|x| &x.name == name) {
        None => {
            let names: Vec<&str> = targets.iter().map(|x| x.name.as_str()).collect();
            format!(
                "no table named `{name}`; expected one of: {}",
                names.join(", ")
            )
        }
        Some(x) if !x.usable && !s.g.deferred.as_ref().is_some_and(|v| *v.get_ref()) => format!(
            "table `{name}` (line {}) is not defined before this table; a foreign key may only point at an earlier [[table]] (or set deferred = true and add the constraint in after_seed)",
            x.line
        ),
        Some(x) if x.rows == 0 => {
            format!("table `{name}` has no generated rows, so there is no key to reference")
        }
        Some(x) => {
            let draw = gen_shape::foreign_key(d, s.g, s.span.clone(), s.path, &x.name, x.rows)?;
            let Some(column) = &s.g.column else {
                if let Some(k) = &s.g.key {
                    d.err(
                        k.span(),
                        s.field("key"),
                        "names the foreign key a copied column is part of: it needs `column`",
                    );
                }
                return Some(draw);
            };
            let key = match &s.g.key {
                Some(k) => Some(d.name(k, &s.field("key"), "the name of the foreign key")?),
                None => None,
            };
            // The parent's generator is linked in once every table is
            // known (gen_link.rs).
            let column = d.nonempty(column, &s.field("column"), "a column of the parent table")?;
            return Some(Gen::ParentColumn {
                table: x.name.clone(),
                column,
                key,
                draw: Box::new(draw),
                parent: None,
            });
        }
    };
    d.err(t.span(), field, problem);
    None
}

fn choice(d: &mut Diags, g: &GenSpec, section: Range<usize>, path: &str) -> Option<Gen> {
    let values_v = d.required(
        &g.values,
        section,
        &format!("{path}.values"),
        "a list of values, e.g. values = [\"new\", \"paid\"]",
    )?;
    let values_field = format!("{path}.values");
    if values_v.get_ref().is_empty() {
        d.err(
            values_v.span(),
            &values_field,
            "is empty; expected at least one value",
        );
        return None;
    }
    let mut values = Vec::new();
    for (i, v) in values_v.get_ref().iter().enumerate() {
        values.push(scalar_text(d, v, &format!("{values_field}[{i}]"))?);
    }
    let weights = match &g.weights {
        None => vec![1; values.len()],
        Some(w) => {
            let wf = format!("{path}.weights");
            if w.get_ref().len() != values.len() {
                d.err(
                    w.span(),
                    &wf,
                    format!(
                        "has {} weights for {} values; expected one weight per value",
                        w.get_ref().len(),
                        values.len()
                    ),
                );
                return None;
            }
            let mut ws = Vec::new();
            for (i, x) in w.get_ref().iter().enumerate() {
                ws.push(d.int_in(x, &format!("{wf}[{i}]"), 0, i64::from(u32::MAX))? as u32);
            }
            if ws.iter().all(|&x| x == 0) {
                d.err(
                    w.span(),
                    &wf,
                    "are all zero; expected at least one weight above zero",
                );
                return None;
            }
            if ws.iter().map(|&x| u64::from(x)).sum::<u64>() > u64::from(u32::MAX) {
                d.err(
                    w.span(),
                    &wf,
                    format!("sum to more than {}; use smaller weights", u32::MAX),
                );
                return None;
            }
            ws
        }
    };
    Some(Gen::Choice { values, weights })
}

/// A rough on-disk size of one generated row (heap tuple, no indexes), for
/// rejecting row counts no disk can hold.
pub fn estimated_row_bytes(cols: &[super::ColumnPlan]) -> u64 {
    // Tuple header + line pointer.
    28 + cols.iter().map(|c| value_bytes(&c.gen.kind)).sum::<u64>()
}

fn value_bytes(g: &Gen) -> u64 {
    match g {
        Gen::Sequence { .. }
        | Gen::Int { .. }
        | Gen::Float { .. }
        | Gen::ForeignKey { .. }
        | Gen::WeightedKeys { .. } => 8,
        Gen::Timestamp { .. } | Gen::Histogram { .. } => 8,
        Gen::Bool { .. } => 1,
        Gen::Uuid => 16,
        Gen::Text { min_len, max_len }
        | Gen::TextSet {
            min_len, max_len, ..
        } => 1 + (u64::from(*min_len) + u64::from(*max_len)) / 2,
        Gen::Words { min, max } => 1 + 7 * (u64::from(*min) + u64::from(*max)) / 2,
        // The rest of a choice is usually no wider than its values.
        Gen::Choice { values, .. } | Gen::ChoiceRest { values, .. } => {
            1 + values.iter().map(|v| v.len() as u64).max().unwrap_or(0)
        }
        Gen::Json { keys } => 2 + 16 * u64::from(*keys),
        Gen::Constant { value } => 1 + value.len() as u64,
        Gen::ParentColumn { parent, .. } => parent.as_ref().map_or(8, |p| value_bytes(&p.kind)),
        Gen::Addressed { inner, .. } => value_bytes(inner),
    }
}
