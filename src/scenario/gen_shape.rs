//! Validating the generator options that shape a column like a real one:
//! `bounds` (an equi-depth histogram, as pg_stats keeps), `distinct` (a fixed
//! set of values), and `choice`'s `rest` (everything beyond the listed
//! values). `pgrehearse init` writes them from a live database's statistics;
//! gen_spec.rs hands the specs that use them over to here.

use std::ops::Range;

use toml::Value;

use super::diag::Diags;
use super::gen::encode::parse_timestamp;
use super::model::{GenSpec, S};
use super::{ColumnGen, Distinct, Gen, IntDist, Scale};

/// More buckets than this is not a histogram anyone wrote by hand or that
/// pg_stats holds (its statistics target tops out at 10000).
const MAX_BOUNDS: usize = 10_001;
/// A fixed value set is indexed by `row mod n` times a 61-bit prime.
pub const MAX_DISTINCT: u64 = 1 << 60;

/// `int`, `float` or `timestamp` with `bounds` and/or `distinct`.
pub(super) fn histogram(
    d: &mut Diags,
    g: &GenSpec,
    section: Range<usize>,
    path: &str,
    scale: Scale,
) -> Option<Gen> {
    let f = |name: &str| format!("{path}.{name}");
    let (lo_name, hi_name, lo, hi) = match scale {
        Scale::Timestamp => ("from", "to", &g.from, &g.to),
        Scale::Int | Scale::Float => ("min", "max", &g.min, &g.max),
    };
    if scale == Scale::Int {
        for (name, span) in [
            ("dist", g.dist.as_ref().map(|v| v.span())),
            ("s", g.s.as_ref().map(|v| v.span())),
        ] {
            if let Some(span) = span {
                d.err(
                    span,
                    f(name),
                    format!("`{name}` does not combine with `bounds` or `distinct`; the bounds give the shape"),
                );
            }
        }
    }
    let bounds = match &g.bounds {
        Some(b) => {
            for (name, v) in [(lo_name, lo), (hi_name, hi)] {
                if let Some(v) = v {
                    d.err(
                        v.span(),
                        f(name),
                        format!("give either `bounds` or {lo_name}/{hi_name}, not both: the first and last bound are the range"),
                    );
                }
            }
            bound_list(d, b, &f("bounds"), scale)?
        }
        None => {
            let what = match scale {
                Scale::Timestamp => "a date or timestamp, e.g. \"2024-01-01\"",
                Scale::Int => "an integer",
                Scale::Float => "a number",
            };
            let a = d
                .required(lo, section.clone(), &f(lo_name), what)
                .and_then(|v| point(d, v, &f(lo_name), scale));
            let b = d
                .required(hi, section.clone(), &f(hi_name), what)
                .and_then(|v| point(d, v, &f(hi_name), scale));
            let (a, b) = (a?, b?);
            if a > b {
                let span = hi.as_ref().map_or(section, |v| v.span());
                d.err(
                    span,
                    f(hi_name),
                    format!(
                        "`{hi_name}` is less than `{lo_name}`; expected {lo_name} <= {hi_name}"
                    ),
                );
                return None;
            }
            vec![a, b]
        }
    };
    let distinct = match &g.distinct {
        Some(v) => Some(distinct(d, v, &f("distinct"))?),
        None => None,
    };
    // Integers: `distinct` values must fit in the range.
    if let (Scale::Int, Some(Distinct::Count(n)), Some(v)) = (scale, distinct, &g.distinct) {
        let (lo, hi) = (bounds[0], bounds[bounds.len() - 1]);
        let room = hi - lo + 1.0;
        if (n as f64) > room {
            d.err(
                v.span(),
                f("distinct"),
                format!("{n} distinct integers do not fit in {lo}..={hi} (at most {room}); lower distinct or widen the range"),
            );
            return None;
        }
    }
    Some(Gen::Histogram {
        scale,
        bounds,
        distinct,
    })
}

/// `text` with `distinct`.
pub(super) fn text_set(
    d: &mut Diags,
    v: &S<Value>,
    path: &str,
    min_len: u32,
    max_len: u32,
) -> Option<Gen> {
    let field = format!("{path}.distinct");
    let n = distinct(d, v, &field)?;
    if let Distinct::Count(n) = n {
        // 62 characters per position: short texts hold few distinct values.
        let capacity = 62u64.checked_pow(max_len.min(11)).unwrap_or(u64::MAX);
        if capacity < n {
            d.err(
                v.span(),
                field,
                format!("{n} distinct texts do not fit in {max_len} characters (at most {capacity}); raise max_len"),
            );
            return None;
        }
    }
    Some(Gen::TextSet {
        min_len,
        max_len,
        distinct: n,
    })
}

/// `fk` with `distinct` (keys from a fixed set spread evenly over the
/// parent's keys, so the column references that many parents) and/or
/// `weights` (the first keys, the hottest parents, drawn with these weights,
/// every other key with `rest_weight`). `rows` is the parent's after --rows /
/// --scale: a parent scaled below the weighted keys keeps the ones it has,
/// and its rest draws from all of them.
pub(super) fn foreign_key(
    d: &mut Diags,
    g: &GenSpec,
    section: Range<usize>,
    path: &str,
    table: &str,
    rows: u64,
) -> Option<Gen> {
    let f = |name: &str| format!("{path}.{name}");
    let set = match &g.distinct {
        Some(v) => Some(distinct(d, v, &f("distinct"))?),
        None => None,
    };
    // Keys first..=rows: all of them, or those after the weighted ones.
    let keys = |first: u64| match set {
        Some(n) => Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![first as f64, rows as f64],
            distinct: Some(n),
        },
        None if first == 1 => Gen::ForeignKey {
            table: table.to_string(),
            rows,
        },
        None => Gen::Int {
            min: first as i64,
            max: rows as i64,
            dist: IntDist::Uniform,
            s: 1.0,
        },
    };
    let Some(w) = &g.weights else {
        if let Some(r) = &g.rest_weight {
            d.err(
                r.span(),
                f("rest_weight"),
                "rest_weight weighs the other keys against `weights` (the first keys'); give weights too",
            );
            return None;
        }
        return Some(keys(1));
    };
    if w.get_ref().is_empty() {
        d.err(
            w.span(),
            f("weights"),
            "is empty; expected the weights of keys 1, 2, ...",
        );
        return None;
    }
    let mut weights = Vec::new();
    for (i, x) in w.get_ref().iter().enumerate() {
        weights
            .push(d.int_in(x, &format!("{}[{i}]", f("weights")), 0, i64::from(u32::MAX))? as u32);
    }
    let r = d.required(
        &g.rest_weight,
        section,
        &f("rest_weight"),
        "the weight of drawing any other key, against `weights`, e.g. rest_weight = 50",
    )?;
    let rest_weight = d.int_in(r, &f("rest_weight"), 0, i64::from(u32::MAX))? as u32;
    let total = weights.iter().map(|&x| u64::from(x)).sum::<u64>() + u64::from(rest_weight);
    if total == 0 || total > u64::from(u32::MAX) {
        d.err(
            w.span(),
            f("weights"),
            format!("weights and rest_weight must sum to 1..={}", u32::MAX),
        );
        return None;
    }
    weights.truncate(rows.min(weights.len() as u64) as usize);
    let k = weights.len() as u64;
    let rest = if rows > k { keys(k + 1) } else { keys(1) };
    Some(Gen::WeightedKeys {
        weights,
        rest: Box::new(rest),
        rest_weight,
    })
}

/// `choice` with `rest` (validated by the caller) and `rest_weight`.
pub(super) fn choice_rest(
    d: &mut Diags,
    g: &GenSpec,
    section: Range<usize>,
    path: &str,
    listed: Gen,
    rest: Option<ColumnGen>,
) -> Option<Gen> {
    let f = |name: &str| format!("{path}.{name}");
    let Some(rest_spec) = &g.rest else {
        if let Some(w) = &g.rest_weight {
            d.err(
                w.span(),
                f("rest_weight"),
                "there is no `rest` generator to weigh; add rest = { gen = ... } or drop rest_weight",
            );
            return None;
        }
        return Some(listed);
    };
    let rest = rest?;
    if let Some(nf) = &rest_spec.get_ref().null_fraction {
        d.err(
            nf.span(),
            format!("{path}.rest.null_fraction"),
            "NULLs are the outer generator's: set null_fraction on the choice, not on its rest",
        );
        return None;
    }
    let w = d.required(
        &g.rest_weight,
        section,
        &f("rest_weight"),
        "the weight of the rest against `weights`, e.g. rest_weight = 40",
    )?;
    let rest_weight = d.int_in(w, &f("rest_weight"), 0, i64::from(u32::MAX))? as u32;
    let Gen::Choice { values, weights } = listed else {
        return None;
    };
    let total: u64 = weights.iter().map(|&x| u64::from(x)).sum::<u64>() + u64::from(rest_weight);
    if total > u64::from(u32::MAX) {
        d.err(
            w.span(),
            f("rest_weight"),
            format!(
                "weights and rest_weight sum to more than {}; use smaller weights",
                u32::MAX
            ),
        );
        return None;
    }
    Some(Gen::ChoiceRest {
        values,
        weights,
        rest: Box::new(rest.kind),
        rest_weight,
    })
}

/// `distinct`: a count of at least 1, or a share of rows like "12.5%".
fn distinct(d: &mut Diags, v: &S<Value>, field: &str) -> Option<Distinct> {
    match v.get_ref() {
        Value::Integer(n) if (1..=MAX_DISTINCT as i64).contains(n) => {
            Some(Distinct::Count(*n as u64))
        }
        Value::String(s) => {
            let share = s
                .trim()
                .strip_suffix('%')
                .and_then(|x| x.trim().parse::<f64>().ok())
                .filter(|x| x.is_finite() && *x > 0.0 && *x <= 100.0);
            match share {
                Some(p) => Some(Distinct::Share(p / 100.0)),
                None => {
                    d.err(
                        v.span(),
                        field,
                        format!("`{s}` is not a share of rows; expected a count such as 500 or a percentage above 0 and at most 100, such as \"12.5%\""),
                    );
                    None
                }
            }
        }
        other => {
            d.err(
                v.span(),
                field,
                format!("`{other}` is out of range; expected a count in 1..={MAX_DISTINCT} or a percentage of rows such as \"12.5%\""),
            );
            None
        }
    }
}

fn bound_list(d: &mut Diags, b: &S<Vec<S<Value>>>, field: &str, scale: Scale) -> Option<Vec<f64>> {
    let list = b.get_ref();
    if list.len() < 2 || list.len() > MAX_BOUNDS {
        d.err(
            b.span(),
            field,
            format!("has {} bounds; expected 2 to {MAX_BOUNDS} (n + 1 edges of n equally likely buckets)", list.len()),
        );
        return None;
    }
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let x = point(d, v, &format!("{field}[{i}]"), scale)?;
        if let Some(&prev) = out.last() {
            if x < prev {
                d.err(
                    v.span(),
                    format!("{field}[{i}]"),
                    "is less than the bound before it; expected ascending bounds",
                );
                return None;
            }
        }
        out.push(x);
    }
    Some(out)
}

/// One number, or one date/timestamp as microseconds since the epoch.
fn point(d: &mut Diags, v: &S<Value>, field: &str, scale: Scale) -> Option<f64> {
    let got = match (scale, v.get_ref()) {
        (Scale::Int, Value::Integer(i)) => Some(*i as f64),
        (Scale::Float, Value::Integer(i)) => Some(*i as f64),
        (Scale::Float, Value::Float(x)) if x.is_finite() => Some(*x),
        (Scale::Timestamp, Value::String(s)) => parse_timestamp(s.trim()).map(|us| us as f64),
        (Scale::Timestamp, Value::Datetime(t)) => {
            parse_timestamp(&t.to_string()).map(|us| us as f64)
        }
        _ => None,
    };
    if got.is_none() {
        let want = match scale {
            Scale::Int => "an integer",
            Scale::Float => "a finite number",
            Scale::Timestamp => {
                "a date or timestamp such as \"2024-01-01\" or \"2024-01-01 10:00:00+00\""
            }
        };
        d.err(v.span(), field, format!("`{}` is not {want}", v.get_ref()));
    }
    got
}

/// Each column's `distinct` share becomes a count of the table's rows (at
/// least 1), moved up to the nearest count that shares no factor with the
/// table's fixed counts: row r takes value `r mod n` of each set, so sets of
/// coprime sizes keep every combination of their values apart for as many
/// rows as the product of the sizes — a key (order_id, line_no) of a share
/// of orders and 8 line numbers stays unique at any --rows (a count of 2000
/// orders would repeat every 8000 rows there). A few values more than the
/// share says, at most; none for a set of a value per row.
pub(super) fn resolve_shares(columns: &mut [super::ColumnPlan], rows: u64) {
    let fixed: Vec<u64> = columns
        .iter()
        .filter_map(|c| match set_size(&c.gen.kind) {
            Some(Distinct::Count(n)) if n > 1 => Some(n),
            _ => None,
        })
        .collect();
    for c in columns {
        resolve_share(&mut c.gen.kind, rows, &fixed);
    }
}

/// The `distinct` of a generator's own value set.
fn set_size(gen: &Gen) -> Option<Distinct> {
    match gen {
        Gen::Histogram { distinct, .. } => *distinct,
        Gen::TextSet { distinct, .. } => Some(*distinct),
        Gen::ChoiceRest { rest, .. } | Gen::WeightedKeys { rest, .. } => set_size(rest),
        Gen::ParentColumn { draw: inner, .. } | Gen::Addressed { inner, .. } => set_size(inner),
        _ => None,
    }
}

fn resolve_share(gen: &mut Gen, rows: u64, fixed: &[u64]) {
    let resolve = |n: &mut Distinct| {
        if let Distinct::Share(p) = *n {
            let mut count = ((p * rows as f64).round() as u64).clamp(1, MAX_DISTINCT);
            // A set of a value per row repeats nothing: left as it is (a
            // range may hold no more values than that).
            while count < rows && fixed.iter().any(|f| super::gen::shape::gcd(count, *f) != 1) {
                count += 1;
            }
            *n = Distinct::Count(count);
        }
    };
    match gen {
        Gen::Histogram {
            distinct: Some(n), ..
        } => resolve(n),
        Gen::TextSet { distinct, .. } => resolve(distinct),
        Gen::ChoiceRest { rest, .. } | Gen::WeightedKeys { rest, .. } => {
            resolve_share(rest, rows, fixed)
        }
        Gen::ParentColumn { draw: inner, .. } | Gen::Addressed { inner, .. } => {
            resolve_share(inner, rows, fixed)
        }
        _ => {}
    }
}

/// Whether a generator has a share of rows that no table resolves.
pub(super) fn has_share(gen: &Gen) -> bool {
    match gen {
        Gen::Histogram {
            distinct: Some(Distinct::Share(_)),
            ..
        }
        | Gen::TextSet {
            distinct: Distinct::Share(_),
            ..
        } => true,
        Gen::ChoiceRest { rest, .. } | Gen::WeightedKeys { rest, .. } => has_share(rest),
        Gen::ParentColumn { draw: inner, .. } | Gen::Addressed { inner, .. } => has_share(inner),
        _ => false,
    }
}

#[cfg(test)]
mod share_tests {
    use super::resolve_shares;
    use crate::scenario::{ColumnPlan, Distinct, Gen, Scale};

    fn set(distinct: Distinct) -> ColumnPlan {
        ColumnPlan::new(
            "c",
            Gen::Histogram {
                scale: Scale::Int,
                bounds: vec![1.0, 1e9],
                distinct: Some(distinct),
            },
        )
    }

    fn counts(columns: &[ColumnPlan]) -> Vec<u64> {
        columns
            .iter()
            .map(|c| match &c.gen.kind {
                Gen::Histogram {
                    distinct: Some(Distinct::Count(n)),
                    ..
                } => *n,
                g => panic!("{g:?}"),
            })
            .collect()
    }

    /// A share moves up to the nearest count coprime with the table's fixed
    /// counts (8 line numbers: an odd count of orders), so their
    /// combinations never repeat at any rows; one of a value per row stays.
    #[test]
    fn a_share_resolves_coprime_with_the_fixed_counts() {
        for (rows, want) in [(9000, 1125), (90_000, 11_251), (1_000_000, 125_001)] {
            let mut columns = vec![set(Distinct::Count(8)), set(Distinct::Share(0.125))];
            resolve_shares(&mut columns, rows);
            assert_eq!(counts(&columns), [8, want], "{rows} rows");
        }
        let mut columns = vec![set(Distinct::Count(8)), set(Distinct::Share(1.0))];
        resolve_shares(&mut columns, 1000);
        assert_eq!(counts(&columns), [8, 1000]);
    }
}
