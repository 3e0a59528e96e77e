//! Rows in Postgres' binary COPY format, one deterministic chunk at a time.
//!
//! Format (COPY docs, "Binary Format"): an 11-byte signature, a flags word
//! and a header-extension length; then per tuple a 16-bit field count and per
//! field a 32-bit length (-1 for NULL) followed by the value's binary payload;
//! a 16-bit -1 ends the stream.

use bytes::{BufMut, Bytes, BytesMut};

use crate::scenario::gen::encode::encode;
use crate::scenario::gen::{chunk_rng, ConvertError, PgType, Sampler, Value, CHUNK_ROWS};

const SIGNATURE: &[u8; 11] = b"PGCOPY\n\xff\r\n\0";

/// Start of every binary COPY stream.
pub fn header() -> Bytes {
    let mut b = BytesMut::with_capacity(19);
    b.put_slice(SIGNATURE);
    b.put_i32(0); // flags: no OIDs
    b.put_i32(0); // no header extension
    b.freeze()
}

/// End of every binary COPY stream.
pub fn trailer() -> Bytes {
    Bytes::from_static(&[0xff, 0xff])
}

/// One generated column bound to the type of its table column.
#[derive(Clone)]
pub struct ColumnEncoder {
    pub name: String,
    /// Position in the scenario's column list: names the RNG stream, so a
    /// column's values do not depend on the other columns.
    pub stream: usize,
    pub sampler: Sampler,
    pub ty: PgType,
    /// Length word + payload of a `constant` column, encoded once.
    pub fixed: Option<Bytes>,
    /// `fixed` is the server's binary form of a constant only the server
    /// can parse (`ty` says nothing about it then).
    pub server_parsed: bool,
}

impl ColumnEncoder {
    pub fn new(
        name: String,
        stream: usize,
        sampler: Sampler,
        ty: PgType,
    ) -> Result<Self, ConvertError> {
        let fixed = match sampler.constant() {
            Some(text) => {
                let mut b = BytesMut::new();
                put_field(&Value::Text(text.to_string()), ty, &mut b)?;
                Some(b.freeze())
            }
            None => None,
        };
        Ok(ColumnEncoder {
            name,
            stream,
            sampler,
            ty,
            fixed,
            server_parsed: false,
        })
    }

    /// Encode a few of the generator's values as the column's type: a
    /// generator that cannot write this type (a uuid into an integer column)
    /// is refused before seeding starts, where its `[[table]]` can be named,
    /// not halfway through a COPY. Values a type refuses only sometimes (an
    /// int beyond smallint) can still fail while seeding.
    pub fn check(&self) -> Result<(), ConvertError> {
        if self.fixed.is_some() {
            return Ok(());
        }
        let mut rng = chunk_rng(0, 0, 0, self.stream);
        let mut b = BytesMut::new();
        for row in 0..8 {
            put_field(&self.sampler.sample(row, &mut rng), self.ty, &mut b)?;
        }
        Ok(())
    }

    /// A column that takes the same value on every row, already in the
    /// server's binary format (a constant of a type only the server can
    /// parse, see `catalog::server_constants`).
    pub fn fixed(name: String, stream: usize, sampler: Sampler, payload: &[u8]) -> Self {
        let mut b = BytesMut::with_capacity(4 + payload.len());
        b.put_i32(payload.len() as i32);
        b.put_slice(payload);
        ColumnEncoder {
            name,
            stream,
            sampler,
            // Never used to encode: every row takes `fixed`.
            ty: PgType::Text,
            fixed: Some(b.freeze()),
            server_parsed: true,
        }
    }

    /// A constant column's value as an SQL literal that the server turns
    /// into exactly the value this encoder sends: for text-like, integer
    /// and boolean columns, whose binary input is their text input. None
    /// for other types, for constants the server parsed (`fixed`) and for
    /// generated values.
    pub fn default_literal(&self) -> Option<String> {
        if self.server_parsed {
            return None;
        }
        let payload = self.fixed.as_ref()?.get(4..)?;
        let text = match self.ty {
            PgType::Text => std::str::from_utf8(payload).ok()?.to_string(),
            PgType::Int2 => i16::from_be_bytes(payload.try_into().ok()?).to_string(),
            PgType::Int4 => i32::from_be_bytes(payload.try_into().ok()?).to_string(),
            PgType::Int8 => i64::from_be_bytes(payload.try_into().ok()?).to_string(),
            PgType::Bool => (payload.first()? != &0).to_string(),
            _ => return None,
        };
        // standard_conforming_strings is on (the default since 9.1): only
        // quotes need doubling.
        Some(format!("'{}'", text.replace('\'', "''")))
    }

    /// Rough bytes per value, to size chunk buffers once.
    fn estimate(&self) -> usize {
        if let Some(f) = &self.fixed {
            return f.len();
        }
        4 + match self.ty {
            PgType::Bool => 1,
            PgType::Int2 => 2,
            PgType::Int4 | PgType::Float4 | PgType::Date => 4,
            PgType::Int8 | PgType::Float8 | PgType::Timestamp | PgType::Timestamptz => 8,
            PgType::Uuid => 16,
            _ => 24,
        }
    }
}

/// Length word, then payload (or -1 for NULL).
fn put_field(v: &Value, ty: PgType, out: &mut BytesMut) -> Result<(), ConvertError> {
    if *v == Value::Null {
        out.put_i32(-1);
        return Ok(());
    }
    let at = out.len();
    out.put_i32(0);
    encode(v, ty, out)?;
    let len = (out.len() - at - 4) as i32;
    out[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Rough bytes of one chunk of rows of `columns`.
pub fn chunk_bytes_estimate(columns: &[ColumnEncoder]) -> usize {
    (2 + columns.iter().map(ColumnEncoder::estimate).sum::<usize>()) * CHUNK_ROWS as usize
}

/// A conversion failure while encoding, with the column it happened in.
#[derive(Debug)]
pub struct ChunkError {
    pub column: String,
    pub error: ConvertError,
}

/// Rows `[chunk * CHUNK_ROWS, ..)` (at most `total_rows`) of table number
/// `table`, as binary COPY tuples (no header, no trailer).
pub fn encode_chunk(
    columns: &[ColumnEncoder],
    seed: u64,
    table: usize,
    chunk: u64,
    total_rows: u64,
) -> Result<BytesMut, ChunkError> {
    let first = chunk * CHUNK_ROWS;
    let last = total_rows.min(first + CHUNK_ROWS);
    let n = last.saturating_sub(first) as usize;
    let per_row = 2 + columns.iter().map(ColumnEncoder::estimate).sum::<usize>();
    let mut out = BytesMut::with_capacity(n * per_row + 64);
    let mut rngs: Vec<_> = columns
        .iter()
        .map(|c| chunk_rng(seed, table, chunk, c.stream))
        .collect();
    let nfields = columns.len() as i16;
    for row in first..last {
        out.put_i16(nfields);
        for (c, rng) in columns.iter().zip(rngs.iter_mut()) {
            if let Some(f) = &c.fixed {
                out.put_slice(f);
                continue;
            }
            let v = c.sampler.sample(row, rng);
            put_field(&v, c.ty, &mut out).map_err(|error| ChunkError {
                column: c.name.clone(),
                error,
            })?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::{ColumnGen, Gen};

    fn enc(kind: Gen, ty: PgType, stream: usize) -> ColumnEncoder {
        let g = ColumnGen {
            kind,
            null_fraction: 0.0,
        };
        ColumnEncoder::new("c".into(), stream, g.sampler(), ty).unwrap()
    }

    #[test]
    fn tuples_have_field_counts_and_lengths() {
        let cols = vec![
            enc(Gen::Sequence { start: 1 }, PgType::Int4, 0),
            enc(Gen::Constant { value: "".into() }, PgType::Text, 1),
        ];
        let b = encode_chunk(&cols, 1, 0, 0, 2).unwrap();
        assert_eq!(
            &b[..],
            &[0, 2, 0, 0, 0, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 4, 0, 0, 0, 2, 0, 0, 0, 0]
        );
    }

    #[test]
    fn last_chunk_is_partial_and_chunks_are_independent() {
        let cols = vec![enc(Gen::Uuid, PgType::Uuid, 0)];
        let rows = CHUNK_ROWS + 10;
        let tail = encode_chunk(&cols, 3, 0, 1, rows).unwrap();
        assert_eq!(tail.len(), 10 * (2 + 4 + 16));
        assert_eq!(tail, encode_chunk(&cols, 3, 0, 1, rows).unwrap());
        assert_ne!(tail, encode_chunk(&cols, 4, 0, 1, rows).unwrap());
    }

    #[test]
    fn conversion_errors_name_the_column() {
        let cols = vec![enc(Gen::Uuid, PgType::Int4, 0)];
        let e = encode_chunk(&cols, 1, 0, 0, 5).unwrap_err();
        assert_eq!(e.column, "c");
    }
}
