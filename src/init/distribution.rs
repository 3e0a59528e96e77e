//! From a column's pg_stats to a generator that reproduces it: the most
//! common values as a `choice` weighted by their frequencies, the rest of
//! the distribution as its `rest` (a histogram's `bounds` for numbers and
//! timestamps, text of the same average length), `distinct` set so the
//! generated column has as many distinct values as the source, and
//! `null_fraction` from null_frac.

use super::distinct::{self, significant, Target};
use super::histogram::{self, MAX_BOUNDS};
use super::model::{BaseType, Column, ColumnStats};
use super::spec::{round_to, Spec, Val};
use crate::scenario::gen::encode::parse_timestamp;

/// Weights are frequencies in millionths.
pub(super) const WEIGHT_SCALE: f64 = 1e6;
/// A most common value is written as one when it is at least this many
/// times as frequent as the average other value.
const NOTABLY_COMMON: f64 = 5.0;

/// What kind of values a column holds, as far as generators care.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Kind {
    Int,
    /// `scale` decimals when the type says (numeric(10,2)).
    Numeric {
        scale: Option<i32>,
    },
    Float,
    /// At most `limit` characters (varchar(n), char(n)).
    Text {
        limit: Option<u32>,
    },
    Enum,
    Bool,
    Timestamp,
    Date,
    Uuid,
    Json,
    /// No generator writes it.
    Other,
}

pub fn kind_of(b: &BaseType) -> Kind {
    let modifier = (b.typmod >= 4).then_some(b.typmod - 4);
    match b.oid {
        20 | 21 | 23 => Kind::Int,
        1700 => Kind::Numeric {
            scale: modifier.map(|m| m & 0xffff),
        },
        700 | 701 => Kind::Float,
        25 => Kind::Text { limit: None },
        1043 | 1042 => Kind::Text {
            limit: modifier.map(|m| m.max(0) as u32),
        },
        19 => Kind::Text { limit: Some(63) },
        16 => Kind::Bool,
        1114 | 1184 => Kind::Timestamp,
        1082 => Kind::Date,
        2950 => Kind::Uuid,
        114 | 3802 => Kind::Json,
        _ if b.typtype == 'e' => Kind::Enum,
        _ if b.name == "citext" => Kind::Text { limit: None },
        _ => Kind::Other,
    }
}

/// What a column's generator is built from.
pub struct Input<'a> {
    pub column: &'a Column,
    pub kind: Kind,
    /// Rows the table will get.
    pub rows: u64,
    /// Copy the most common values of text columns.
    pub include_values: bool,
    /// The only values a CHECK allows (`status IN ('new', 'paid')`).
    pub allowed: Option<Vec<String>>,
}

/// The figures of pg_stats one generator rests on.
pub(super) struct Facts<'a> {
    pub(super) stats: Option<&'a ColumnStats>,
    /// Share of NULL rows.
    pub(super) nulls: f64,
    /// (value, share of all rows), most common first.
    pub(super) common: Vec<(String, f64)>,
    /// Share of rows that are neither NULL nor a common value.
    pub(super) rest_share: f64,
    /// Distinct non-NULL values, when pg_stats knows.
    pub(super) distinct: Option<f64>,
    /// pg_stats says the count grows with the table (n_distinct < 0).
    pub(super) scales: bool,
    pub(super) rows: f64,
    /// Common values left to the rest (not notably more common), with
    /// their shares.
    pub(super) dropped: Vec<(String, f64)>,
}

impl Facts<'_> {
    pub(super) fn target(&self, values: f64, share: f64) -> Target {
        Target {
            values,
            rows: self.rows,
            share,
            scales: self.scales,
        }
    }
}

pub(super) fn facts<'a>(input: &Input<'a>) -> Facts<'a> {
    let rows = input.rows as f64;
    let stats = input.column.stats.as_ref();
    let nulls = match stats {
        Some(s) if !input.column.not_null => s.null_frac.clamp(0.0, 1.0),
        _ => 0.0,
    };
    let mut common: Vec<(String, f64)> = match stats {
        Some(s) if s.mcv.len() == s.mcf.len() => {
            s.mcv.iter().cloned().zip(s.mcf.iter().copied()).collect()
        }
        _ => Vec::new(),
    };
    let distinct = stats.and_then(|s| match s.n_distinct {
        n if n > 0.0 => Some(n),
        n if n < 0.0 => Some(-n * rows),
        _ => None,
    });
    // In a column of mostly distinct values, ANALYZE lists values seen a
    // few times more than the others: noise a histogram covers as well.
    let all = common.len();
    let mut dropped = Vec::new();
    if let Some(d) = distinct.filter(|d| *d > all as f64 + 0.5) {
        let listed: f64 = common.iter().map(|c| c.1).sum();
        let each_other = (1.0 - nulls - listed).max(0.0) / (d - all as f64);
        let (keep, drop): (Vec<_>, Vec<_>) = common
            .into_iter()
            .partition(|c| c.1 >= NOTABLY_COMMON * each_other);
        common = keep;
        dropped = drop;
    }
    let listed: f64 = common.iter().map(|c| c.1).sum();
    Facts {
        stats,
        nulls,
        rest_share: (1.0 - nulls - listed).max(0.0),
        common,
        distinct,
        scales: stats.is_some_and(|s| s.n_distinct < 0.0),
        rows,
        dropped,
    }
}

/// The comment line that says where a generator's figures came from.
pub fn figures(column: &Column) -> String {
    let Some(s) = &column.stats else {
        return "pg_stats: none (never analyzed, or no SELECT on it): generic values of its type"
            .into();
    };
    let mut parts = vec![format!("null_frac {}", trim(round_to(s.null_frac, 4)))];
    parts.push(format!("n_distinct {}", trim(round_to(s.n_distinct, 4))));
    if !s.mcf.is_empty() {
        let share: f64 = s.mcf.iter().sum();
        parts.push(format!(
            "{} MCVs ({}% of rows)",
            s.mcf.len(),
            trim(round_to(share * 100.0, 1))
        ));
    }
    if !s.histogram.is_empty() {
        parts.push(format!("histogram of {} bounds", s.histogram.len()));
    }
    parts.push(format!("avg_width {}", s.avg_width));
    format!("pg_stats: {}", parts.join(", "))
}

/// The generator for a column from its statistics (None: no generator
/// writes its type), and notes on what it could not reproduce.
pub fn generator(input: &Input) -> (Option<Spec>, Vec<String>) {
    let f = facts(input);
    let mut notes = Vec::new();
    if !f.dropped.is_empty() {
        notes.push(format!(
            "{} of its most common values are hardly more common than the others: left to the rest",
            f.dropped.len()
        ));
    }
    let spec = match input.kind {
        Kind::Int | Kind::Numeric { .. } | Kind::Float | Kind::Timestamp | Kind::Date => {
            Some(ordered(input, &f, &mut notes))
        }
        Kind::Text { .. } => Some(text(input, &f, &mut notes)),
        Kind::Enum => Some(listed_values(&input.column.base.labels, &f)),
        Kind::Bool => Some(boolean(&f)),
        Kind::Uuid => Some(Spec::new("uuid")),
        Kind::Json => {
            let width = f.stats.map_or(40, |s| s.avg_width).max(16);
            let keys = ((width - 2) / 14).clamp(1, 50);
            Some(Spec::new("json").with("keys", Val::Int(i64::from(keys))))
        }
        Kind::Other => return (None, notes),
    };
    (spec.map(|s| s.nulls(f.nulls)), notes)
}

/// Numbers, timestamps and dates: the common values plus the histogram.
fn ordered(input: &Input, f: &Facts, notes: &mut Vec<String>) -> Spec {
    let raw_bounds: Vec<String> = f.stats.map(|s| s.histogram.clone()).unwrap_or_default();
    let point = |s: &str| -> Option<f64> {
        match input.kind {
            Kind::Timestamp | Kind::Date => parse_timestamp(s).map(|us| us as f64),
            _ => s.parse::<f64>().ok().filter(|x| x.is_finite()),
        }
    };
    // Infinities and other values without a place on the line are left out.
    let mut bounds: Vec<(String, f64)> = raw_bounds
        .iter()
        .filter_map(|s| point(s).map(|x| (s.clone(), x)))
        .collect();
    let common: Vec<(String, f64)> = f
        .common
        .iter()
        .filter(|(v, _)| point(v).is_some())
        .cloned()
        .collect();
    if bounds.len() < 2 {
        // No histogram: the range of the common values, else a guess.
        let mut xs: Vec<(String, f64)> = common
            .iter()
            .map(|(v, _)| (v.clone(), point(v).unwrap_or(0.0)))
            .collect();
        xs.sort_by(|a, b| a.1.total_cmp(&b.1));
        bounds = match (xs.first(), xs.last()) {
            (Some(lo), Some(hi)) => vec![lo.clone(), hi.clone()],
            _ => {
                notes.push("no histogram in pg_stats: a generic range".into());
                guessed_range(input.kind, f.rows)
            }
        };
    }
    let bounds = with_dropped(bounds, f, &point, input.kind);
    let integral = |s: &str| !s.contains(['.', 'e', 'E']) && s.parse::<i64>().is_ok();
    let as_int = matches!(input.kind, Kind::Int)
        || (matches!(input.kind, Kind::Numeric { .. })
            && bounds.iter().all(|(s, _)| integral(s))
            && common.iter().all(|(s, _)| integral(s)));
    let (gen, unit) = match input.kind {
        _ if as_int => ("int", Some(1.0)),
        Kind::Numeric { scale: Some(s) } => ("float", Some(10f64.powi(-s))),
        Kind::Timestamp => ("timestamp", Some(1.0)),
        Kind::Date => ("timestamp", Some(86_400e6)),
        _ => ("float", None),
    };
    let val = |s: &str, x: f64| match gen {
        "int" => Val::Int(x.round() as i64),
        "float" => Val::Float(x),
        _ => Val::Str(s.to_string()),
    };
    let xs: Vec<f64> = bounds.iter().map(|b| b.1).collect();
    let mut shape = Spec::new(gen);
    let (lo_key, hi_key) = if gen == "timestamp" {
        ("from", "to")
    } else {
        ("min", "max")
    };
    if bounds.len() == 2 {
        shape.set(lo_key, val(&bounds[0].0, xs[0]));
        shape.set(hi_key, val(&bounds[1].0, xs[1]));
    } else {
        shape.set(
            "bounds",
            Val::List(bounds.iter().map(|(s, x)| val(s, *x)).collect()),
        );
    }
    let listed = common.len() as f64;
    let (target, share) = if common.is_empty() {
        (f.distinct, 1.0 - f.nulls)
    } else {
        (f.distinct.map(|d| (d - listed).max(1.0)), f.rest_share)
    };
    if let Some(target) = target {
        if let Some(d) = distinct::setting(&f.target(target, share), &xs, unit) {
            shape.set("distinct", d);
        }
    }
    if common.is_empty() {
        return shape;
    }
    let values = common
        .iter()
        .map(|(s, _)| val(s, point(s).unwrap_or(0.0)))
        .collect();
    choice(values, &common, f.rest_share, shape)
}

/// Text: the common values (copied with --include-values, else synthetic
/// labels with the same frequencies), the rest of the same average length.
fn text(input: &Input, f: &Facts, notes: &mut Vec<String>) -> Spec {
    if let Some(allowed) = &input.allowed {
        notes.push("the values its CHECK allows, weighted by their frequencies".into());
        return listed_values(allowed, f);
    }
    let limit = match input.kind {
        Kind::Text { limit } => limit,
        _ => None,
    };
    // avg_width counts the 1-byte length header of short values.
    let mean = f.stats.map_or(12, |s| (s.avg_width - 1).max(0)) as u32;
    let half = mean / 2;
    let (mut lo, mut hi) = (mean - half, mean + half);
    let target = if f.common.is_empty() {
        f.distinct
    } else {
        f.distinct.map(|d| (d - f.common.len() as f64).max(1.0))
    };
    let share = if f.common.is_empty() {
        1.0 - f.nulls
    } else {
        f.rest_share
    };
    // Short text holds few values (62 a character): a set keeps them apart,
    // of texts long enough for the values wanted (5000 names of 2 to 6
    // characters need 3; a room of 2 held 3844, a fixed count short of them).
    let wanted_len = target.map_or(0, |t| t.max(1.0).log(62.0).ceil() as u32);
    let room_len = lo.max(wanted_len).min(limit.unwrap_or(u32::MAX)).min(12);
    let room = [0.0, 62f64.powi(room_len as i32)];
    let setting = target.and_then(|t| distinct::setting(&f.target(t, share), &room, Some(1.0)));
    // Enough characters to tell the values apart (62 per position).
    let count = match &setting {
        Some(Val::Int(n)) => *n as f64,
        _ => f.rows.max(1.0),
    };
    let needed = count.log(62.0).ceil().max(1.0) as u32;
    lo = lo.max(needed);
    hi = hi.max(lo);
    if let Some(limit) = limit {
        hi = hi.min(limit);
        lo = lo.min(hi);
    }
    let mut rest = Spec::new("text")
        .with("min_len", Val::Int(i64::from(lo)))
        .with("max_len", Val::Int(i64::from(hi)));
    // Random text of 12 characters or more does not repeat by itself.
    let unique_anyway = lo >= 12 && matches!(setting, Some(Val::Str(ref s)) if s == "100%");
    if let (Some(d), false) = (setting, unique_anyway) {
        rest.set("distinct", d);
    }
    if f.common.is_empty() {
        return rest;
    }
    let values = if input.include_values {
        f.common.iter().map(|(v, _)| Val::Str(v.clone())).collect()
    } else {
        labels(&input.column.name, f.common.len(), limit)
            .into_iter()
            .map(Val::Str)
            .collect()
    };
    choice(values, &f.common, f.rest_share, rest)
}

/// A `choice` of `values` weighted by the common values' shares, with the
/// rest of the rows going to `rest`.
fn choice(values: Vec<Val>, common: &[(String, f64)], rest_share: f64, rest: Spec) -> Spec {
    let weights = common
        .iter()
        .map(|(_, p)| Val::Int(((p * WEIGHT_SCALE).round() as i64).max(1)))
        .collect();
    let mut spec = Spec::new("choice")
        .with("values", Val::List(values))
        .with("weights", Val::List(weights));
    let rest_weight = (rest_share * WEIGHT_SCALE).round() as i64;
    if rest_weight > 0 {
        spec.set("rest_weight", Val::Int(rest_weight));
        spec.rest = Some(Box::new(rest));
    }
    spec
}

/// A `choice` over a known list (enum labels, the literals of a CHECK):
/// a listed common value keeps its share, the others split what is left.
fn listed_values(values: &[String], f: &Facts) -> Spec {
    let known: f64 = f
        .common
        .iter()
        .filter(|(v, _)| values.contains(v))
        .map(|c| c.1)
        .sum();
    let unlisted = values
        .iter()
        .filter(|v| !f.common.iter().any(|(c, _)| c == *v))
        .count();
    let each_other = if f.common.is_empty() {
        1.0
    } else if unlisted > 0 {
        (1.0 - f.nulls - known).max(0.0) / unlisted as f64
    } else {
        0.0
    };
    let weights: Vec<Val> = values
        .iter()
        .map(|v| {
            let p = f
                .common
                .iter()
                .find(|(c, _)| c == v)
                .map_or(each_other, |c| c.1);
            Val::Int((p * WEIGHT_SCALE).round() as i64)
        })
        .collect();
    let all_zero = weights.iter().all(|w| *w == Val::Int(0));
    let mut spec = Spec::new("choice").with(
        "values",
        Val::List(values.iter().map(|v| Val::Str(v.clone())).collect()),
    );
    if !all_zero {
        spec.set("weights", Val::List(weights));
    }
    spec
}

fn boolean(f: &Facts) -> Spec {
    let share = |v: &str| f.common.iter().find(|(c, _)| c == v).map(|c| c.1);
    let nn = 1.0 - f.nulls;
    let p_true = match (share("t").or(share("true")), share("f").or(share("false"))) {
        (Some(t), _) if nn > 0.0 => t / nn,
        (None, Some(fa)) if nn > 0.0 => 1.0 - fa / nn,
        _ => 0.5,
    };
    Spec::new("bool").with("p_true", Val::Float(round_to(p_true.clamp(0.0, 1.0), 4)))
}

/// The bounds to write: pg_stats' (at most [`MAX_BOUNDS`]), with the
/// common values left to the rest merged in, since pg_stats' histogram
/// leaves every common value out.
fn with_dropped(
    bounds: Vec<(String, f64)>,
    f: &Facts,
    point: &dyn Fn(&str) -> Option<f64>,
    kind: Kind,
) -> Vec<(String, f64)> {
    let points: Vec<(f64, f64)> = f
        .dropped
        .iter()
        .filter_map(|(v, p)| point(v).map(|x| (x, *p)))
        .collect();
    if points.is_empty() || bounds.len() < 2 {
        return histogram::subsample(bounds);
    }
    let xs: Vec<f64> = bounds.iter().map(|b| b.1).collect();
    let listed: f64 = f.common.iter().chain(&f.dropped).map(|c| c.1).sum();
    let each = (1.0 - f.nulls - listed).max(0.0) / (xs.len() - 1) as f64;
    histogram::merged(&xs, each, &points, MAX_BOUNDS - 1)
        .into_iter()
        .map(|x| match kind {
            // To the second: an interpolated bound has no finer meaning.
            Kind::Timestamp | Kind::Date => {
                let us = (x / 1e6).round() as i64 * 1_000_000;
                let text = chrono::DateTime::from_timestamp_micros(us)
                    .map_or(us.to_string(), |t| {
                        t.format("%Y-%m-%d %H:%M:%S+00").to_string()
                    });
                (text, us as f64)
            }
            Kind::Numeric { scale: Some(s) } => {
                let x = round_to(x, s);
                (trim(x), x)
            }
            _ => {
                let x = significant(x, 6);
                (trim(x), x)
            }
        })
        .collect()
}

fn guessed_range(kind: Kind, rows: f64) -> Vec<(String, f64)> {
    match kind {
        Kind::Timestamp | Kind::Date => ["2024-01-01", "2025-01-01"]
            .iter()
            .map(|s| (s.to_string(), parse_timestamp(s).unwrap_or(0) as f64))
            .collect(),
        _ => {
            let hi = rows.max(1000.0);
            vec![("1".into(), 1.0), (hi.to_string(), hi)]
        }
    }
}

/// `status_1` .. `status_k`; short numbered codes when the column's
/// length limit is tighter.
fn labels(column: &str, k: usize, limit: Option<u32>) -> Vec<String> {
    let mut prefix: String = column
        .to_lowercase()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    prefix = prefix.trim_matches('_').chars().take(16).collect();
    if prefix.is_empty() {
        prefix = "value".into();
    }
    let fits = |s: &str| limit.is_none_or(|l| s.len() as u32 <= l);
    (1..=k)
        .map(|i| {
            let long = format!("{prefix}_{i}");
            if fits(&long) {
                long
            } else {
                base62(i)
            }
        })
        .collect()
}

fn base62(mut i: usize) -> String {
    const ALNUM: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let mut s = Vec::new();
    loop {
        s.push(ALNUM[i % 62]);
        i /= 62;
        if i == 0 {
            break;
        }
    }
    s.reverse();
    String::from_utf8(s).unwrap_or_default()
}

/// A float as Rust prints it: 0.25, 3, 12.5.
pub fn trim(x: f64) -> String {
    format!("{x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_fit_the_column() {
        assert_eq!(
            labels("Order Status", 2, None),
            vec!["order_status_1", "order_status_2"]
        );
        assert_eq!(labels("status", 2, Some(3)), vec!["1", "2"]);
        assert_eq!(base62(61), "z");
        assert_eq!(base62(62), "10");
    }
}
