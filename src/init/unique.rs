//! Unique keys: a column that must not repeat by itself gets a generator
//! that never repeats ([`make_unique`]); a key of several columns keeps each
//! column's own values and makes only their combination unique
//! ([`combine`]).
//!
//! How a combination stays unique: a generator with `distinct = N` gives
//! row r value number r mod N (shuffled, one value per number). With the
//! key's columns' N pairwise coprime, the numbers (r mod N1, r mod N2, ...)
//! differ for every r below N1 × N2 × ... (the Chinese remainder theorem),
//! so a table of no more rows than that product never repeats a
//! combination — as long as every number maps to its own value, which
//! [`Set`] makes sure of by keeping values at least one unit apart.

use super::distribution::{kind_of, Kind};
use super::model::{BaseType, Column};
use super::spec::{Spec, Val};

/// Why a column cannot be made unique (a comment says it).
pub type Refusal = String;

/// The same generator made to never repeat a value for `rows` rows; Err
/// gives it back, with why, when its kind or type cannot.
pub fn make_unique(spec: Spec, c: &Column, rows: u64) -> Result<Spec, (Spec, Refusal)> {
    let nulls = match spec.get("null_fraction") {
        Some(Val::Float(x)) => *x,
        _ => 0.0,
    };
    // Of a choice, the rest carries the shape.
    let shape = match (spec.kind(), &spec.rest) {
        ("choice", Some(rest)) => (**rest).clone(),
        _ => spec.clone(),
    };
    let all = Val::Str("100%".into());
    let made = match kind_of(&c.base) {
        Kind::Int | Kind::Numeric { .. } => match sequence_start(c, rows) {
            Ok(start) => Spec::new("sequence").with("start", Val::Int(start)),
            Err(why) => return Err((spec, why)),
        },
        Kind::Uuid => Spec::new("uuid"),
        Kind::Text { limit } if shape.kind() == "text" => {
            let mut s = shape.with("distinct", all);
            // Enough characters for any --rows.
            let lo = match s.get("min_len") {
                Some(Val::Int(n)) => *n,
                _ => 0,
            };
            let lo = lo.max(6).min(i64::from(limit.unwrap_or(u32::MAX)));
            s.set("min_len", Val::Int(lo));
            if matches!(s.get("max_len"), Some(Val::Int(n)) if *n < lo) {
                s.set("max_len", Val::Int(lo));
            }
            s
        }
        Kind::Float | Kind::Timestamp | Kind::Date
            if matches!(shape.kind(), "float" | "timestamp" | "int") =>
        {
            shape.with("distinct", all)
        }
        _ => {
            let why = format!("no generator of {} values never repeats", c.type_sql);
            return Err((spec, why));
        }
    };
    let mut made = made;
    made.remove("null_fraction");
    Ok(made.nulls(nulls))
}

/// Where a unique integer column's `sequence` starts: at the column's
/// smallest value in pg_stats (its most common values and histogram), moved
/// down when `rows` keys from there would pass the type's largest value.
fn sequence_start(c: &Column, rows: u64) -> Result<i64, Refusal> {
    let least = c
        .stats
        .iter()
        .flat_map(|s| s.histogram.iter().chain(&s.mcv))
        .filter_map(|v| v.parse::<f64>().ok())
        .filter(|x| x.is_finite())
        .min_by(f64::total_cmp)
        .map_or(1, |x| x.ceil() as i64);
    let (lo, hi) = int_range(&c.base);
    let span = rows.saturating_sub(1) as i128;
    if (hi as i128 - lo as i128) < span {
        return Err(format!(
            "{rows} different values do not fit in {} ({lo}..={hi})",
            c.type_sql
        ));
    }
    let start = (least as i128).clamp(lo as i128, hi as i128 - span);
    Ok(start as i64)
}

/// The smallest and largest integer a column of this type holds.
fn int_range(b: &BaseType) -> (i64, i64) {
    match b.oid {
        21 => (i16::MIN.into(), i16::MAX.into()),
        23 => (i32::MIN.into(), i32::MAX.into()),
        1700 if b.typmod >= 4 => {
            // numeric(p, s): p - s digits before the point.
            let m = b.typmod - 4;
            let digits = ((m >> 16) & 0xffff) - (m & 0xffff);
            if (1..=18).contains(&digits) {
                let max = 10i64.pow(digits as u32) - 1;
                (-max, max)
            } else {
                (i64::MIN, i64::MAX)
            }
        }
        _ => (i64::MIN, i64::MAX),
    }
}

/// One column of a several-column key as a fixed set of values: its
/// generator without `distinct`, and how many values it can hold apart.
#[derive(Clone)]
pub struct Set {
    pub shape: Spec,
    /// Values at least one unit apart that fit its range.
    pub room: f64,
    /// Distinct values the source has (n_distinct as a count).
    pub wanted: f64,
    /// A count that would repeat a value: an fk set of one less than its
    /// parent's keys (see [`set_of`]).
    pub never: Option<u64>,
}

/// The set form of a key column's generator, when it has one: a choice's
/// rest (its common values would be drawn at random, not by row), or the
/// range of a choice of integers, an `fk` without weights, a range of two
/// bounds (`min`/`max`: equally spaced values, no more than the units in
/// it, so no two round to the same value).
pub fn set_of(spec: &Spec, c: &Column, rows: u64, parent_rows: Option<u64>) -> Option<Set> {
    let mut shape = match (spec.kind(), &spec.rest) {
        ("choice", Some(rest)) => (**rest).clone(),
        // Integers pg_stats lists all (line numbers 1..8): their range.
        ("choice", None) => {
            let Some(Val::List(values)) = spec.get("values") else {
                return None;
            };
            let ints: Option<Vec<i64>> = values
                .iter()
                .map(|v| match v {
                    Val::Int(i) => Some(*i),
                    _ => None,
                })
                .collect();
            let ints = ints?;
            Spec::new("int")
                .with("min", Val::Int(*ints.iter().min()?))
                .with("max", Val::Int(*ints.iter().max()?))
        }
        _ => spec.clone(),
    };
    for k in ["distinct", "null_fraction", "weights", "rest_weight"] {
        shape.remove(k);
    }
    let num = |v: Option<&Val>| match v {
        Some(Val::Int(i)) => Some(*i as f64),
        Some(Val::Float(x)) => Some(*x),
        Some(Val::Str(s)) => crate::scenario::gen::encode::parse_timestamp(s).map(|us| us as f64),
        _ => None,
    };
    let (lo_key, hi_key) = if shape.kind() == "timestamp" {
        ("from", "to")
    } else {
        ("min", "max")
    };
    // Two bounds: values spread evenly, never closer than the span / N.
    if let Some(Val::List(b)) = shape.get("bounds").cloned() {
        shape.remove("bounds");
        shape.set(lo_key, b.first()?.clone());
        shape.set(hi_key, b.last()?.clone());
    }
    // Value i of N is the point (i + 0.5) / N of the range, rounded (or a
    // day, a cent). Points more than one unit apart never round to the
    // same value: N at most the units in the range, less one. An int range
    // widened to min - 1..=max + 1 holds all of min..=max that way.
    if shape.kind() == "int" {
        if let (Some(Val::Int(lo)), Some(Val::Int(hi))) =
            (shape.get("min").cloned(), shape.get("max").cloned())
        {
            shape.set("min", Val::Int(lo.saturating_sub(1)));
            shape.set("max", Val::Int(hi.saturating_add(1)));
        }
    }
    let span = || Some(num(shape.get(hi_key))? - num(shape.get(lo_key))?);
    // fk's set is its parent's keys 1..=R: value i of N is key
    // round(1 + (i + 0.5)(R - 1) / N). For N = R each lies within half a key
    // of key i + 1, and for N <= R - 2 they are more than a key apart: a
    // different key for every i. N = R - 1 puts them exactly a key apart on
    // the halves, where rounding pairs some: never that count.
    if shape.kind() == "fk" {
        let parent = parent_rows?.max(1);
        return Some(Set {
            room: parent as f64,
            wanted: wanted(c, rows),
            never: (parent > 1).then(|| parent - 1),
            shape,
        });
    }
    let units = match (shape.kind(), kind_of(&c.base)) {
        ("int", _) => span()?,
        ("timestamp", Kind::Date) => span()? / 86_400e6,
        ("timestamp", _) => span()?,
        ("float", Kind::Numeric { scale: Some(s) }) => span()? * 10f64.powi(s),
        ("float", _) => span()? * 1e6,
        // 62 characters a position: random texts of min_len never collide
        // as long as their numbers differ.
        ("text", _) => match shape.get("min_len") {
            Some(Val::Int(n)) => 62f64.powi((*n).min(10) as i32) + 1.0,
            _ => return None,
        },
        _ => return None,
    };
    let room = units.floor() - 1.0;
    Some(Set {
        room: room.max(1.0),
        wanted: wanted(c, rows),
        never: None,
        shape,
    })
}

/// The distinct values the source has, as a count for `rows` rows.
fn wanted(c: &Column, rows: u64) -> f64 {
    c.stats
        .as_ref()
        .map_or(rows as f64, |s| match s.n_distinct {
            n if n > 0.0 => n,
            n if n < 0.0 => -n * rows as f64,
            _ => rows as f64,
        })
}

/// Pairwise coprime counts, one per set (in their order), each within its
/// room, whose product reaches `rows`; None when the rooms cannot.
pub fn coprime_counts(sets: &[Set], rows: u64) -> Option<Vec<u64>> {
    // The largest room takes up what the others leave.
    let last = (0..sets.len()).max_by(|&a, &b| sets[a].room.total_cmp(&sets[b].room))?;
    let mut counts = vec![0u64; sets.len()];
    let mut product: u128 = 1;
    for (i, s) in sets.iter().enumerate() {
        if i == last {
            continue;
        }
        let mut n = s.wanted.clamp(1.0, s.room).round() as u64;
        while n > 1 && (gcd(n as u128, product) != 1 || s.never == Some(n)) {
            n -= 1;
        }
        counts[i] = n;
        product *= u128::from(n);
    }
    let need = (u128::from(rows)).div_ceil(product).max(1);
    let room = sets[last].room as u128;
    let wanted = need.max(sets[last].wanted.clamp(1.0, sets[last].room).round() as u128);
    // The coprime count nearest what the source has, down to what the rows
    // need, else up to the room.
    let fits = |n: &u128| gcd(*n, product) == 1 && sets[last].never.map(u128::from) != Some(*n);
    let n = (need..=wanted.min(room))
        .rev()
        .chain(wanted + 1..=room)
        .find(fits)
        // None covers the rows (2 lines to each of 1000 orders: 1000 and 2
        // share a factor): the largest that fits, if its combinations
        // reach 99 % of them — the rest are deleted as duplicates, fewer
        // than each column's own distribution would repeat.
        .or_else(|| {
            (1..=room.min(need))
                .rev()
                .find(fits)
                .filter(|n| n * product * 100 >= u128::from(rows) * 99)
        })?;
    counts[last] = n as u64;
    Some(counts)
}

fn gcd(mut a: u128, mut b: u128) -> u128 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::model::ColumnStats;

    fn int_column(oid: u32, values: &[&str]) -> Column {
        Column {
            name: "n".into(),
            type_sql: if oid == 21 { "smallint" } else { "integer" }.into(),
            base: BaseType {
                oid,
                ..BaseType::default()
            },
            stats: Some(ColumnStats {
                mcv: vec![values[0].into()],
                histogram: values[1..].iter().map(|s| s.to_string()).collect(),
                n_distinct: -1.0,
                ..ColumnStats::default()
            }),
            ..Column::default()
        }
    }

    #[test]
    fn a_unique_integer_starts_at_its_least_value_and_stays_in_its_type() {
        // The most common value is 500, the least 7.
        let c = int_column(23, &["500", "7", "90", "2000"]);
        let made = make_unique(Spec::new("int"), &c, 1000).unwrap();
        assert_eq!(made.get("start"), Some(&Val::Int(7)));
        // 30 000 smallints from 5000 would pass 32 767: moved down.
        let c = int_column(21, &["9000", "5000", "6000"]);
        let made = make_unique(Spec::new("int"), &c, 30_000).unwrap();
        assert_eq!(made.get("start"), Some(&Val::Int(32_767 - 29_999)));
        // More rows than smallints: it says so.
        let Err((_, why)) = make_unique(Spec::new("int"), &c, 70_000) else {
            panic!()
        };
        assert!(why.contains("do not fit in smallint"), "{why}");
    }

    fn set(room: f64, wanted: f64) -> Set {
        Set {
            shape: Spec::new("int"),
            room,
            wanted,
            never: None,
        }
    }

    #[test]
    fn counts_are_coprime_and_cover_the_rows() {
        // 8 line numbers and up to 4999 orders for 20 000 rows: the
        // orders' count is coprime with 8 and at least 2500.
        let c = coprime_counts(&[set(8.0, 8.0), set(4999.0, 2500.0)], 20_000).unwrap();
        assert_eq!(c[0], 8);
        assert!(
            gcd(8, u128::from(c[1])) == 1 && c[0] * c[1] >= 20_000,
            "{c:?}"
        );
        // Rooms too small for the rows: none.
        assert_eq!(coprime_counts(&[set(3.0, 3.0), set(10.0, 10.0)], 100), None);
        // Two lines to each of 1000 orders: 1000 shares a factor with 2,
        // and an fk set of 999 of 1000 keys repeats one (`never`); 997
        // orders hold 1994 of the 2000 rows (the 6 others are deleted).
        let orders = Set {
            never: Some(999),
            ..set(1000.0, 1000.0)
        };
        assert_eq!(
            coprime_counts(&[set(2.0, 2.0), orders.clone()], 2000),
            Some(vec![2, 997])
        );
        // Short by more than 1 %: none.
        assert_eq!(coprime_counts(&[set(2.0, 2.0), orders], 2030), None);
    }
}
