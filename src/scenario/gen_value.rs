//! A generator spec's field values read from TOML, each problem recorded
//! naming its field: integers, numbers, small counts, length ranges, scalars
//! as the text Postgres is sent, and dates or timestamps (as microseconds
//! since the epoch). gen_spec.rs decides which fields a kind takes.

use std::ops::Range;

use toml::Value;

use super::diag::Diags;
use super::model::S;

pub(super) fn span_of<T>(v: &Option<S<T>>, fallback: Range<usize>) -> Range<usize> {
    v.as_ref().map_or(fallback, |v| v.span())
}

pub(super) fn int_value(
    d: &mut Diags,
    v: &Option<S<Value>>,
    field: &str,
    section: Range<usize>,
) -> Option<i64> {
    let v = d.required(v, section, field, "an integer")?;
    integer(d, v, field)
}

/// An integer given as a TOML value (fields that take other types for other
/// generators, such as `min`).
fn integer(d: &mut Diags, v: &S<Value>, field: &str) -> Option<i64> {
    match v.get_ref() {
        Value::Integer(i) => Some(*i),
        other => {
            d.err(
                v.span(),
                field,
                format!("expected an integer, found {}", other.type_str()),
            );
            None
        }
    }
}

pub(super) fn float_value(
    d: &mut Diags,
    v: &Option<S<Value>>,
    field: &str,
    section: Range<usize>,
) -> Option<f64> {
    let v = d.required(v, section, field, "a number")?;
    match v.get_ref() {
        Value::Integer(i) => Some(*i as f64),
        Value::Float(x) if x.is_finite() => Some(*x),
        other => {
            d.err(
                v.span(),
                field,
                format!("expected a finite number, found {other}"),
            );
            None
        }
    }
}

/// An optional integer in 0..=hi given as a TOML Value. Outer None = invalid.
pub(super) fn opt_small_int(
    d: &mut Diags,
    v: &Option<S<Value>>,
    field: &str,
    hi: i64,
) -> Option<Option<u32>> {
    let Some(v) = v else { return Some(None) };
    let i = integer(d, v, field)?;
    if !(0..=hi).contains(&i) {
        d.err(
            v.span(),
            field,
            format!("{i} is out of range; expected an integer in 0..={hi}"),
        );
        return None;
    }
    Some(Some(i as u32))
}

pub(super) fn len_range(
    d: &mut Diags,
    lo: &Option<S<i64>>,
    hi: &Option<S<i64>>,
    lo_field: &str,
    hi_field: &str,
    default: (u32, u32),
    limit: i64,
) -> Option<(u32, u32)> {
    let a = match lo {
        Some(v) => d.int_in(v, lo_field, 0, limit).map(|x| x as u32),
        None => Some(default.0),
    };
    let b = match hi {
        Some(v) => d.int_in(v, hi_field, 0, limit).map(|x| x as u32),
        // Only min_len given: the range is at least that long.
        None => a.map(|a| a.max(default.1)),
    };
    let (a, b) = (a?, b?);
    if a > b {
        let span = hi.as_ref().map_or(0..0, |v| v.span());
        let short = |f: &str| f.rsplit('.').next().unwrap_or(f).to_string();
        let (hi_name, lo_name) = (short(hi_field), short(lo_field));
        let default = match lo {
            None => format!(" (the default; give {lo_name} to go lower)"),
            Some(_) => String::new(),
        };
        d.err(
            span,
            hi_field,
            format!("{hi_name} {b} is less than {lo_name} {a}{default}"),
        );
        return None;
    }
    Some((a, b))
}

/// A string, number or boolean as the text Postgres will be sent.
pub fn scalar_text(d: &mut Diags, v: &S<Value>, field: &str) -> Option<String> {
    match v.get_ref() {
        Value::String(s) => Some(s.clone()),
        Value::Integer(i) => Some(i.to_string()),
        Value::Float(x) if x.is_finite() => Some(x.to_string()),
        Value::Boolean(b) => Some(b.to_string()),
        Value::Datetime(t) => Some(t.to_string()),
        Value::Float(x) => {
            d.err(
                v.span(),
                field,
                format!(
                    "{x} is not a value Postgres takes: give a finite number, or quote it as text"
                ),
            );
            None
        }
        other => {
            d.err(
                v.span(),
                field,
                format!(
                    "expected a string, number or boolean, found {}",
                    other.type_str()
                ),
            );
            None
        }
    }
}

pub(super) fn timestamp(
    d: &mut Diags,
    v: &Option<S<Value>>,
    field: &str,
    section: Range<usize>,
) -> Option<i64> {
    let v = d.required(
        v,
        section,
        field,
        "a date or timestamp, e.g. \"2024-01-01\" or \"2024-01-01T00:00:00Z\"",
    )?;
    let text = match v.get_ref() {
        Value::String(s) => s.clone(),
        Value::Datetime(t) => t.to_string(),
        other => {
            d.err(
                v.span(),
                field,
                format!("expected a date or timestamp, found {}", other.type_str()),
            );
            return None;
        }
    };
    match parse_timestamp_us(&text) {
        Some(us) => Some(us),
        None => {
            d.err(
                v.span(),
                field,
                format!("`{text}` is not a date or timestamp; expected \"YYYY-MM-DD\" or RFC 3339 like \"2024-01-01T00:00:00Z\""),
            );
            None
        }
    }
}

/// Microseconds since the Unix epoch; dates and offset-less times are UTC.
pub fn parse_timestamp_us(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_micros());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc().timestamp_micros())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_timestamp_us("1970-01-02"), Some(86_400_000_000));
        assert_eq!(parse_timestamp_us("1970-01-01T00:00:01Z"), Some(1_000_000));
        assert_eq!(parse_timestamp_us("1970-01-01T01:00:00+01:00"), Some(0));
        assert_eq!(parse_timestamp_us("1970-01-01 00:00:00.5"), Some(500_000));
        assert_eq!(parse_timestamp_us("2024-13-01"), None);
        assert_eq!(parse_timestamp_us("yesterday"), None);
    }
}
