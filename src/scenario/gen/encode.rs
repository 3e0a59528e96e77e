//! Generated [`Value`]s in Postgres' binary wire format: used by binary COPY
//! when seeding and, through `ToSql`, for query parameters. The column (or
//! parameter) type decides: an integer can become int2/int4/int8, a float,
//! numeric, text or json; text is parsed into whatever the column holds
//! (that is how `constant` and `choice` values reach typed columns).

use bytes::{BufMut, BytesMut};
use postgres_types::{IsNull, Kind, ToSql, Type};

use super::Value;

/// Microseconds from 1970-01-01 to 2000-01-01 (Postgres' epoch).
const PG_EPOCH_US: i64 = 946_684_800_000_000;
const DAY_US: i64 = 86_400_000_000;

/// The server types we can write in binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgType {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    Numeric,
    /// text, varchar, bpchar, name, enums, citext: the bytes of the string.
    Text,
    Bool,
    Timestamptz,
    Timestamp,
    Date,
    Uuid,
    Json,
    Jsonb,
}

impl PgType {
    /// Built-in types by OID. Enums and domains are resolved by the caller
    /// (an enum is [`PgType::Text`], a domain is its base type).
    pub fn from_oid(oid: u32) -> Option<PgType> {
        Some(match oid {
            21 => PgType::Int2,
            23 => PgType::Int4,
            20 => PgType::Int8,
            700 => PgType::Float4,
            701 => PgType::Float8,
            1700 => PgType::Numeric,
            25 | 1043 | 1042 | 19 => PgType::Text,
            16 => PgType::Bool,
            1184 => PgType::Timestamptz,
            1114 => PgType::Timestamp,
            1082 => PgType::Date,
            2950 => PgType::Uuid,
            114 => PgType::Json,
            3802 => PgType::Jsonb,
            _ => return None,
        })
    }

    /// A tokio-postgres parameter type: built-ins by OID, enums as text,
    /// domains as their base type, and `citext` (an extension type) as text.
    pub fn from_type(ty: &Type) -> Option<PgType> {
        match ty.kind() {
            Kind::Enum(_) => Some(PgType::Text),
            Kind::Domain(inner) => PgType::from_type(inner),
            _ if ty.name() == "citext" => Some(PgType::Text),
            _ => PgType::from_oid(ty.oid()),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            PgType::Int2 => "int2",
            PgType::Int4 => "int4",
            PgType::Int8 => "int8",
            PgType::Float4 => "float4",
            PgType::Float8 => "float8",
            PgType::Numeric => "numeric",
            PgType::Text => "text",
            PgType::Bool => "bool",
            PgType::Timestamptz => "timestamptz",
            PgType::Timestamp => "timestamp",
            PgType::Date => "date",
            PgType::Uuid => "uuid",
            PgType::Json => "json",
            PgType::Jsonb => "jsonb",
        }
    }
}

/// A value that cannot be stored in the requested type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot convert {value} to {ty}: {reason}")]
pub struct ConvertError {
    /// The value, shortened for messages.
    pub value: String,
    pub ty: &'static str,
    pub reason: String,
}

fn fail(v: &Value, ty: PgType, reason: impl Into<String>) -> ConvertError {
    let mut value = match v {
        Value::Text(s) | Value::Json(s) => format!("{s:?}"),
        other => other.to_string(),
    };
    if value.len() > 60 {
        let mut cut = 57;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push_str("...");
    }
    ConvertError {
        value,
        ty: ty.name(),
        reason: reason.into(),
    }
}

/// Append the binary payload of `v` as `ty` (no length word). `Value::Null`
/// has no payload: callers write length -1 / `IsNull::Yes` instead.
pub fn encode(v: &Value, ty: PgType, out: &mut BytesMut) -> Result<(), ConvertError> {
    use PgType as T;
    match (v, ty) {
        (Value::Null, _) => Err(fail(v, ty, "NULL has no binary payload")),

        (Value::Int(i), _) => encode_int(v, *i, ty, out),
        (Value::Float(x), T::Float4) => {
            out.put_f32(*x as f32);
            Ok(())
        }
        (Value::Float(x), T::Float8) => {
            out.put_f64(*x);
            Ok(())
        }
        (Value::Float(x), T::Numeric) => encode_numeric(v, &format!("{x}"), out),
        (Value::Float(x), T::Int2 | T::Int4 | T::Int8) => {
            if x.fract() == 0.0 && *x >= i64::MIN as f64 && *x < i64::MAX as f64 {
                encode_int(v, *x as i64, ty, out)
            } else {
                Err(fail(v, ty, "not a whole number in range"))
            }
        }
        (Value::Float(x), T::Text) => {
            out.put_slice(x.to_string().as_bytes());
            Ok(())
        }
        (Value::Float(x), T::Json | T::Jsonb) if x.is_finite() => {
            encode_json(&x.to_string(), ty, out);
            Ok(())
        }

        (Value::Bool(b), T::Bool) => {
            out.put_u8(*b as u8);
            Ok(())
        }
        (Value::Bool(b), T::Text | T::Json | T::Jsonb) => {
            encode_text_like(if *b { "true" } else { "false" }, ty, out);
            Ok(())
        }
        (Value::Bool(b), T::Int2 | T::Int4 | T::Int8) => encode_int(v, *b as i64, ty, out),

        (Value::Timestamp(us), T::Timestamptz | T::Timestamp) => {
            out.put_i64(us.saturating_sub(PG_EPOCH_US));
            Ok(())
        }
        (Value::Timestamp(us), T::Date) => {
            let days = us.saturating_sub(PG_EPOCH_US).div_euclid(DAY_US);
            out.put_i32(days.clamp(i32::MIN as i64, i32::MAX as i64) as i32);
            Ok(())
        }
        (Value::Timestamp(us), T::Text) => {
            out.put_slice(format_timestamp(*us).as_bytes());
            Ok(())
        }
        (Value::Timestamp(us), T::Json | T::Jsonb) => {
            encode_json(&format!("\"{}\"", format_timestamp(*us)), ty, out);
            Ok(())
        }

        (Value::Uuid(b), T::Uuid) => {
            out.put_slice(b);
            Ok(())
        }
        (Value::Uuid(b), T::Text) => {
            let s = uuid::Uuid::from_bytes(*b).hyphenated().to_string();
            out.put_slice(s.as_bytes());
            Ok(())
        }

        (Value::Json(s), T::Json | T::Jsonb | T::Text) => {
            encode_text_like(s, ty, out);
            Ok(())
        }

        (Value::Text(s), _) => encode_from_text(v, s, ty, out),

        _ => Err(fail(v, ty, "no conversion between these types")),
    }
}

fn encode_int(v: &Value, i: i64, ty: PgType, out: &mut BytesMut) -> Result<(), ConvertError> {
    match ty {
        PgType::Int2 => {
            let x = i16::try_from(i).map_err(|_| fail(v, ty, "out of range for int2"))?;
            out.put_i16(x);
        }
        PgType::Int4 => {
            let x = i32::try_from(i).map_err(|_| fail(v, ty, "out of range for int4"))?;
            out.put_i32(x);
        }
        PgType::Int8 => out.put_i64(i),
        PgType::Float4 => out.put_f32(i as f32),
        PgType::Float8 => out.put_f64(i as f64),
        PgType::Numeric => encode_numeric(v, &i.to_string(), out)?,
        PgType::Text => out.put_slice(itoa(i).as_bytes()),
        PgType::Json | PgType::Jsonb => encode_json(&itoa(i), ty, out),
        PgType::Bool => match i {
            0 => out.put_u8(0),
            1 => out.put_u8(1),
            _ => return Err(fail(v, ty, "only 0 and 1 convert to bool")),
        },
        // A key: `sequence` and `fk` give the same uuid for the same number.
        PgType::Uuid => out.put_slice(&super::shape::uuid_of_int(i)),
        PgType::Timestamptz | PgType::Timestamp | PgType::Date => {
            return Err(fail(v, ty, "an integer generator cannot fill this type"))
        }
    }
    Ok(())
}

fn itoa(i: i64) -> String {
    i.to_string()
}

fn encode_json(text: &str, ty: PgType, out: &mut BytesMut) {
    if ty == PgType::Jsonb {
        out.put_u8(1); // jsonb binary format version
    }
    out.put_slice(text.as_bytes());
}

/// text as text, json as json, jsonb with its version byte.
fn encode_text_like(text: &str, ty: PgType, out: &mut BytesMut) {
    match ty {
        PgType::Json | PgType::Jsonb => encode_json(text, ty, out),
        _ => out.put_slice(text.as_bytes()),
    }
}

/// Text into a typed column: the way `constant` and `choice` values (and any
/// generated text) reach non-text columns. Parsed here, not by the server,
/// because binary COPY has no text input path.
fn encode_from_text(
    v: &Value,
    s: &str,
    ty: PgType,
    out: &mut BytesMut,
) -> Result<(), ConvertError> {
    let t = s.trim();
    match ty {
        PgType::Text => out.put_slice(s.as_bytes()),
        PgType::Json | PgType::Jsonb => {
            if serde_json::from_str::<serde::de::IgnoredAny>(s).is_err() {
                return Err(fail(v, ty, "not valid JSON"));
            }
            encode_json(s, ty, out);
        }
        PgType::Int2 | PgType::Int4 | PgType::Int8 => {
            let i: i64 = t.parse().map_err(|_| fail(v, ty, "not an integer"))?;
            encode_int(v, i, ty, out)?;
        }
        PgType::Float4 | PgType::Float8 => {
            let x: f64 = match t.to_ascii_lowercase().as_str() {
                "infinity" | "inf" => f64::INFINITY,
                "-infinity" | "-inf" => f64::NEG_INFINITY,
                "nan" => f64::NAN,
                _ => t.parse().map_err(|_| fail(v, ty, "not a number"))?,
            };
            if ty == PgType::Float4 {
                out.put_f32(x as f32)
            } else {
                out.put_f64(x)
            }
        }
        PgType::Numeric => encode_numeric(v, t, out)?,
        PgType::Bool => {
            let b = match t.to_ascii_lowercase().as_str() {
                "t" | "true" | "y" | "yes" | "on" | "1" => true,
                "f" | "false" | "n" | "no" | "off" | "0" => false,
                _ => return Err(fail(v, ty, "not a boolean")),
            };
            out.put_u8(b as u8);
        }
        PgType::Timestamptz | PgType::Timestamp | PgType::Date => {
            let us = parse_timestamp(t).ok_or_else(|| {
                fail(
                    v,
                    ty,
                    "not a timestamp (use RFC 3339, 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD')",
                )
            })?;
            return encode(&Value::Timestamp(us), ty, out);
        }
        PgType::Uuid => {
            let u = uuid::Uuid::parse_str(t).map_err(|_| fail(v, ty, "not a uuid"))?;
            out.put_slice(u.as_bytes());
        }
    }
    Ok(())
}

/// Microseconds since the Unix epoch from RFC 3339 or a naive UTC date/time.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime};
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(dt.timestamp_micros());
    }
    // Postgres' own output: `2024-01-01 10:00:00.5+00`, `...+05:30`.
    for fmt in ["%Y-%m-%d %H:%M:%S%.f%#z", "%Y-%m-%dT%H:%M:%S%.f%#z"] {
        if let Ok(dt) = DateTime::parse_from_str(s, fmt) {
            return Some(dt.timestamp_micros());
        }
    }
    for fmt in [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(n.and_utc().timestamp_micros());
        }
    }
    let d = NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}

/// `YYYY-MM-DD HH:MM:SS.ffffff+00`, which Postgres reads back exactly.
pub fn format_timestamp(us: i64) -> String {
    match chrono::DateTime::from_timestamp_micros(us) {
        Some(dt) => dt.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string(),
        None => us.to_string(),
    }
}

/// numeric's binary form from a decimal string: base-10000 digit groups,
/// weight of the first group, sign, display scale.
fn encode_numeric(v: &Value, s: &str, out: &mut BytesMut) -> Result<(), ConvertError> {
    let bad = || fail(v, PgType::Numeric, "not a decimal number");
    if s.eq_ignore_ascii_case("nan") {
        out.put_i16(0);
        out.put_i16(0);
        out.put_u16(0xC000);
        out.put_u16(0);
        return Ok(());
    }
    // Exponent forms come from user text only; go through f64.
    let owned;
    let s = if s.contains(['e', 'E']) {
        let x: f64 = s.parse().map_err(|_| bad())?;
        if !x.is_finite() {
            return Err(fail(v, PgType::Numeric, "infinite"));
        }
        owned = format!("{x}");
        owned.as_str()
    } else {
        s
    };
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int_part, frac_part) = body.split_once('.').unwrap_or((body, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        if s.eq_ignore_ascii_case("inf")
            || s.eq_ignore_ascii_case("infinity")
            || s.eq_ignore_ascii_case("-infinity")
        {
            return Err(fail(v, PgType::Numeric, "infinite"));
        }
        return Err(bad());
    }
    let dscale = u16::try_from(frac_part.len()).map_err(|_| bad())?;
    let int_part = int_part.trim_start_matches('0');
    // Left-pad the integer part and right-pad the fraction to whole groups.
    let int_pad = (4 - int_part.len() % 4) % 4;
    let frac_pad = (4 - frac_part.len() % 4) % 4;
    let digits: Vec<u8> = std::iter::repeat_n(b'0', int_pad)
        .chain(int_part.bytes())
        .chain(frac_part.bytes())
        .chain(std::iter::repeat_n(b'0', frac_pad))
        .map(|b| b - b'0')
        .collect();
    let mut groups: Vec<i16> = digits
        .chunks(4)
        .map(|c| c.iter().fold(0i16, |acc, d| acc * 10 + *d as i16))
        .collect();
    let mut weight = ((int_pad + int_part.len()) / 4) as i32 - 1;
    let lead = groups.iter().take_while(|g| **g == 0).count();
    groups.drain(..lead);
    weight -= lead as i32;
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let weight = i16::try_from(weight).map_err(|_| bad())?;
    let ndigits = i16::try_from(groups.len()).map_err(|_| bad())?;
    out.put_i16(ndigits);
    out.put_i16(weight);
    out.put_u16(if neg && !groups.is_empty() { 0x4000 } else { 0 });
    out.put_u16(dscale);
    for g in groups {
        out.put_i16(g);
    }
    Ok(())
}

impl ToSql for Value {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut BytesMut,
    ) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        if *self == Value::Null {
            return Ok(IsNull::Yes);
        }
        let pg = PgType::from_type(ty).ok_or_else(|| {
            format!(
                "a generated value cannot be sent as a parameter of type {} \
                 (supported: int2/4/8, float4/8, numeric, text/varchar/char, enums, bool, \
                 timestamp[tz], date, uuid, json, jsonb)",
                ty.name()
            )
        })?;
        encode(self, pg, out)?;
        Ok(IsNull::No)
    }

    fn accepts(ty: &Type) -> bool {
        PgType::from_type(ty).is_some()
    }

    postgres_types::to_sql_checked!();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: Value, ty: PgType) -> Result<Vec<u8>, ConvertError> {
        let mut b = BytesMut::new();
        encode(&v, ty, &mut b)?;
        Ok(b.to_vec())
    }

    #[test]
    fn integers_check_their_range() {
        assert_eq!(enc(Value::Int(7), PgType::Int2).unwrap(), vec![0, 7]);
        assert!(enc(Value::Int(70_000), PgType::Int2).is_err());
        assert!(enc(Value::Int(1 << 40), PgType::Int4).is_err());
        assert_eq!(enc(Value::Int(-1), PgType::Int8).unwrap(), vec![0xff; 8]);
        let e = enc(Value::Float(1.5), PgType::Int4).unwrap_err();
        assert!(e.to_string().contains("int4"), "{e}");
        assert!(enc(Value::Uuid([0; 16]), PgType::Int8).is_err());
        assert_eq!(
            enc(Value::Int(7), PgType::Uuid).unwrap(),
            super::super::shape::uuid_of_int(7).to_vec()
        );
    }

    #[test]
    fn numeric_groups() {
        // 12345.678 → groups [1, 2345, 6780], weight 1, dscale 3.
        let b = enc(Value::Text("12345.678".into()), PgType::Numeric).unwrap();
        assert_eq!(
            b,
            vec![0, 3, 0, 1, 0, 0, 0, 3, 0, 1, 0x09, 0x29, 0x1a, 0x7c]
        );
        // -0.0001 → one group [1], weight -1, negative, dscale 4.
        let b = enc(Value::Text("-0.0001".into()), PgType::Numeric).unwrap();
        assert_eq!(b, vec![0, 1, 0xff, 0xff, 0x40, 0, 0, 4, 0, 1]);
        // 0 → no groups.
        let b = enc(Value::Int(0), PgType::Numeric).unwrap();
        assert_eq!(b, vec![0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(enc(Value::Text("1.2.3".into()), PgType::Numeric).is_err());
    }

    #[test]
    fn text_parses_into_typed_columns() {
        assert_eq!(
            enc(Value::Text(" 42 ".into()), PgType::Int4).unwrap(),
            vec![0, 0, 0, 42]
        );
        assert_eq!(
            enc(Value::Text("yes".into()), PgType::Bool).unwrap(),
            vec![1]
        );
        let d = enc(Value::Text("2000-01-02".into()), PgType::Date).unwrap();
        assert_eq!(d, vec![0, 0, 0, 1]);
        let ts = enc(
            Value::Text("2000-01-01T00:00:01Z".into()),
            PgType::Timestamptz,
        )
        .unwrap();
        assert_eq!(ts, 1_000_000i64.to_be_bytes().to_vec());
        assert!(enc(Value::Text("{".into()), PgType::Jsonb).is_err());
        assert_eq!(
            enc(Value::Text("{}".into()), PgType::Jsonb).unwrap(),
            b"\x01{}"
        );
        assert!(enc(Value::Text("nope".into()), PgType::Uuid).is_err());
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let us = 1_712_345_678_123_456;
        assert_eq!(parse_timestamp(&format_timestamp(us)), Some(us));
        // Before 2000 the date is floored, not truncated towards zero.
        let d = enc(Value::Timestamp(PG_EPOCH_US - 1), PgType::Date).unwrap();
        assert_eq!(d, (-1i32).to_be_bytes().to_vec());
    }
}
