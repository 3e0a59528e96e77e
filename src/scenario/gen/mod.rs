//! Deterministic value generators for seeding and for query parameters.
//!
//! A [`ColumnGen`] from the plan is compiled once into a [`Sampler`] (ranges
//! checked, distributions such as Zipf precomputed) and then asked for one
//! [`Value`] per row. Determinism comes from the RNG it is handed: seeding
//! derives one ChaCha8 stream per (seed, table, chunk of [`CHUNK_ROWS`] rows,
//! column) with [`chunk_rng`], so the data depends on the seed alone, never on
//! how many workers split the rows, and adding a column does not change the
//! values of the others.
//!
//! Turning a [`Value`] into the bytes of a server type (binary COPY and query
//! parameters) lives in [`encode`].

pub mod encode;
pub mod shape;

use rand::distributions::{Bernoulli, Distribution, Uniform, WeightedIndex};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Zipf;

use super::{ColumnGen, Distinct, Gen, IntDist, RowKey, Scale};
use shape::{inverse_cdf, text_value, ValueIndex};

pub use encode::{ConvertError, PgType};

/// Rows per deterministic chunk. Fixed, independent of the worker count, so
/// the same seed gives the same rows however the key range is split.
pub const CHUNK_ROWS: u64 = 65_536;

/// One generated value, before it meets a column type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Int(i64),
    Float(f64),
    Text(String),
    Bool(bool),
    /// Microseconds since the Unix epoch (UTC).
    Timestamp(i64),
    Uuid([u8; 16]),
    /// A JSON document, as text.
    Json(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) | Value::Json(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Timestamp(us) => f.write_str(&encode::format_timestamp(*us)),
            Value::Uuid(b) => write!(f, "{}", uuid::Uuid::from_bytes(*b).hyphenated()),
        }
    }
}

/// splitmix64's finaliser: spreads every input bit over the output.
fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The RNG for one column of one chunk of one table: a ChaCha8 stream keyed by
/// the mixed (seed, table index, chunk index), one stream per column.
pub fn chunk_rng(seed: u64, table: usize, chunk: u64, column: usize) -> ChaCha8Rng {
    let key = mix64(mix64(mix64(seed) ^ table as u64) ^ chunk);
    let mut rng = ChaCha8Rng::seed_from_u64(key);
    rng.set_stream(column as u64);
    rng
}

/// The random stream of one row of an addressed column ([`Gen::Addressed`]):
/// splitmix64 from the mixed (seed, table, column, row). Cheap to start,
/// so a row's value can be drawn on its own wherever it is needed.
struct RowRng(u64);

impl RowRng {
    fn new(seed: u64, key: RowKey, row: u64) -> RowRng {
        let place = ((key.table as u64) << 32) ^ key.stream as u64;
        RowRng(mix64(mix64(mix64(seed ^ 0xadd7_e55e) ^ place) ^ row))
    }
}

impl RngCore for RowRng {
    fn next_u64(&mut self) -> u64 {
        let out = mix64(self.0);
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        out
    }

    fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for part in dest.chunks_mut(8) {
            let x = self.next_u64().to_le_bytes();
            part.copy_from_slice(&x[..part.len()]);
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Words for the `words` generator: short, common, ASCII.
const WORDS: &[&str] = &[
    "alpha",
    "bravo",
    "charlie",
    "delta",
    "echo",
    "foxtrot",
    "golf",
    "hotel",
    "india",
    "juliet",
    "kilo",
    "lima",
    "mike",
    "november",
    "oscar",
    "papa",
    "quebec",
    "romeo",
    "sierra",
    "tango",
    "uniform",
    "victor",
    "whiskey",
    "xray",
    "yankee",
    "zulu",
    "red",
    "green",
    "blue",
    "amber",
    "north",
    "south",
    "east",
    "west",
    "order",
    "invoice",
    "customer",
    "account",
    "payment",
    "shipment",
    "product",
    "review",
    "ticket",
    "report",
    "status",
    "update",
    "pending",
    "active",
    "closed",
    "open",
    "fast",
    "slow",
    "large",
    "small",
    "new",
    "old",
    "first",
    "last",
    "daily",
    "weekly",
    "monthly",
    "yearly",
    "primary",
    "secondary",
];

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A compiled generator: ranges normalised and distributions built once, so
/// drawing a value is cheap enough for millions of rows.
#[derive(Debug, Clone)]
pub struct Sampler {
    null: Option<Bernoulli>,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Sequence {
        start: i64,
    },
    Uniform(Uniform<i64>),
    /// `min + rank - 1`, rank in [1, n] from Zipf.
    Zipf {
        min: i64,
        n: u64,
        zipf: Zipf<f64>,
    },
    Float(Uniform<f64>),
    FloatConst(f64),
    Text {
        len: Uniform<u32>,
    },
    Words {
        count: Uniform<u32>,
    },
    Choice {
        values: Vec<String>,
        index: WeightedIndex<u32>,
    },
    Bool(Bernoulli),
    Timestamp(Uniform<i64>),
    Uuid,
    Json {
        keys: u32,
    },
    /// Parent table has no rows: every reference is NULL.
    NoParent,
    Constant(String),
    Histogram {
        scale: Scale,
        bounds: Vec<f64>,
        /// None: a fresh draw per row.
        set: Option<ValueIndex>,
    },
    TextSet {
        min_len: u32,
        max_len: u32,
        /// None (a share no table resolved): a fresh index per row.
        set: Option<ValueIndex>,
    },
    /// Key `i + 1` for i < keys, else a key of `rest`.
    WeightedKeys {
        keys: usize,
        index: WeightedIndex<u32>,
        rest: Box<Sampler>,
    },
    /// `values[i]` for i < values.len(), else a value of `rest`.
    ChoiceRest {
        values: Vec<String>,
        index: WeightedIndex<u32>,
        rest: Box<Sampler>,
    },
    /// `parent`'s value in row `k - 1`, k the key `draw` gives.
    ParentColumn {
        draw: Box<Sampler>,
        parent: Box<Sampler>,
    },
    /// `inner` drawn from the row's own stream ([`RowRng`]).
    Addressed {
        key: RowKey,
        /// Set by [`Sampler::seeded`].
        seed: u64,
        inner: Box<Sampler>,
    },
}

fn value_set(d: Option<Distinct>) -> Option<ValueIndex> {
    match d {
        Some(Distinct::Count(n)) => Some(ValueIndex::new(n)),
        _ => None,
    }
}

/// A plan generator compiled (see [`Sampler::new`]).
fn kind_of(g: &Gen) -> Kind {
    match g {
        Gen::Sequence { start } => Kind::Sequence { start: *start },
        Gen::Int { min, max, dist, s } => int_kind(*min, *max, *dist, *s),
        Gen::Float { min, max } => {
            let (lo, hi) = (min.min(*max), min.max(*max));
            // `Uniform` panics when the span itself overflows.
            if lo.is_finite() && hi.is_finite() && lo < hi && (hi - lo).is_finite() {
                Kind::Float(Uniform::new_inclusive(lo, hi))
            } else {
                Kind::FloatConst(if lo.is_finite() { lo } else { 0.0 })
            }
        }
        Gen::Text { min_len, max_len } => {
            let (lo, hi) = ordered(*min_len, *max_len);
            Kind::Text {
                len: Uniform::new_inclusive(lo, hi),
            }
        }
        Gen::Words { min, max } => {
            let (lo, hi) = ordered(*min, *max);
            Kind::Words {
                count: Uniform::new_inclusive(lo, hi),
            }
        }
        Gen::Choice { values, weights } => {
            let w: Vec<u32> = (0..values.len())
                .map(|i| weights.get(i).copied().unwrap_or(1))
                .collect();
            match WeightedIndex::new(&w) {
                Ok(index) => Kind::Choice {
                    values: values.clone(),
                    index,
                },
                // No values or all-zero weights: nothing to choose from.
                Err(_) => Kind::NoParent,
            }
        }
        Gen::Bool { p_true } => Kind::Bool(
            Bernoulli::new(if p_true.is_finite() {
                p_true.clamp(0.0, 1.0)
            } else {
                0.5
            })
            .expect("clamped probability"),
        ),
        Gen::Timestamp { from_us, to_us } => {
            let (lo, hi) = ordered(*from_us, *to_us);
            Kind::Timestamp(Uniform::new_inclusive(lo, hi))
        }
        Gen::Uuid => Kind::Uuid,
        Gen::Json { keys } => Kind::Json { keys: *keys },
        Gen::ForeignKey { rows, .. } => {
            if *rows == 0 {
                Kind::NoParent
            } else {
                Kind::Uniform(Uniform::new_inclusive(
                    1,
                    (*rows).min(i64::MAX as u64) as i64,
                ))
            }
        }
        Gen::Constant { value } => Kind::Constant(value.clone()),
        Gen::Histogram {
            scale,
            bounds,
            distinct,
        } => Kind::Histogram {
            scale: *scale,
            bounds: if bounds.is_empty() {
                vec![0.0]
            } else {
                bounds.clone()
            },
            set: value_set(*distinct),
        },
        Gen::TextSet {
            min_len,
            max_len,
            distinct,
        } => {
            let (lo, hi) = ordered(*min_len, *max_len);
            Kind::TextSet {
                min_len: lo,
                max_len: hi,
                set: value_set(Some(*distinct)),
            }
        }
        Gen::WeightedKeys {
            weights,
            rest,
            rest_weight,
        } => match WeightedIndex::new(weights.iter().copied().chain([*rest_weight])) {
            Ok(index) => Kind::WeightedKeys {
                keys: weights.len(),
                index,
                rest: rest_sampler(rest),
            },
            Err(_) => Kind::NoParent,
        },
        Gen::ParentColumn { draw, parent, .. } => match parent {
            Some(parent) => Kind::ParentColumn {
                draw: rest_sampler(draw),
                parent: Box::new(Sampler::new(parent)),
            },
            // Not linked (validation refused the scenario): no row.
            None => Kind::NoParent,
        },
        Gen::Addressed { key, inner } => Kind::Addressed {
            key: *key,
            seed: 0,
            inner: rest_sampler(inner),
        },
        Gen::ChoiceRest {
            values,
            weights,
            rest,
            rest_weight,
        } => {
            let w = (0..values.len())
                .map(|i| weights.get(i).copied().unwrap_or(1))
                .chain([*rest_weight]);
            match WeightedIndex::new(w) {
                Ok(index) => Kind::ChoiceRest {
                    values: values.clone(),
                    index,
                    rest: rest_sampler(rest),
                },
                Err(_) => Kind::NoParent,
            }
        }
    }
}

/// `int`: uniform, or Zipf over the range (min the hottest).
fn int_kind(min: i64, max: i64, dist: IntDist, s: f64) -> Kind {
    let (lo, hi) = ordered(min, max);
    match dist {
        IntDist::Uniform => Kind::Uniform(Uniform::new_inclusive(lo, hi)),
        IntDist::Zipf => {
            // Span can be 2^64 for the full i64 range: saturate.
            let n = (hi as i128 - lo as i128 + 1).min(u64::MAX as i128) as u64;
            let s = if s.is_finite() && s >= 0.0 { s } else { 1.0 };
            Kind::Zipf {
                min: lo,
                n,
                zipf: Zipf::new(n, s).expect("n >= 1 and s >= 0"),
            }
        }
    }
}

/// The generator a weighted choice falls back to for its rest (never NULL:
/// the column's null_fraction is drawn before).
fn rest_sampler(rest: &Gen) -> Box<Sampler> {
    Box::new(Sampler::new(&ColumnGen {
        kind: rest.clone(),
        null_fraction: 0.0,
    }))
}

impl Sampler {
    /// Compile a plan generator. Bad parameters (which validation rejects
    /// before we get here) are normalised rather than panicking: ranges are
    /// ordered, probabilities clamped.
    pub fn new(gen: &ColumnGen) -> Sampler {
        if let Gen::Addressed { key, inner } = &gen.kind {
            // The NULLs too come from the row's own stream: the columns of
            // a key of several columns are NULL together, as far as their
            // shares of NULLs allow.
            let inner = Sampler::new(&ColumnGen {
                kind: (**inner).clone(),
                null_fraction: gen.null_fraction,
            });
            return Sampler {
                null: None,
                kind: Kind::Addressed {
                    key: *key,
                    seed: 0,
                    inner: Box::new(inner),
                },
            };
        }
        let nf = gen.null_fraction;
        let null = if nf > 0.0 && nf.is_finite() {
            Some(Bernoulli::new(nf.min(1.0)).expect("clamped probability"))
        } else if matches!(gen.kind, Gen::ParentColumn { .. }) {
            // Every copy of one drawn row takes its NULL draw first, with
            // or without NULLs of its own, so all of them then draw the
            // same row; the one draw makes their NULLs nest (a column
            // with fewer is NULL only where the others are too).
            Some(Bernoulli::new(0.0).expect("a probability"))
        } else {
            None
        };
        Sampler {
            null,
            kind: kind_of(&gen.kind),
        }
    }

    /// This sampler with `seed` for its addressed parts: the run's seed, as
    /// the rows are seeded with, so a reference computes the very values
    /// its parent row was given.
    pub fn seeded(mut self, seed: u64) -> Sampler {
        self.set_seed(seed);
        self
    }

    fn set_seed(&mut self, to: u64) {
        match &mut self.kind {
            Kind::Addressed { seed, inner, .. } => {
                *seed = to;
                inner.set_seed(to);
            }
            Kind::ParentColumn { draw, parent } => {
                draw.set_seed(to);
                parent.set_seed(to);
            }
            Kind::WeightedKeys { rest, .. } | Kind::ChoiceRest { rest, .. } => rest.set_seed(to),
            _ => {}
        }
    }

    /// The value for 0-based `row`. `row` matters to `sequence`, value
    /// sets and addressed generators; the others draw from `rng`.
    #[inline]
    pub fn sample<R: Rng + ?Sized>(&self, row: u64, rng: &mut R) -> Value {
        if let Some(null) = &self.null {
            if null.sample(rng) {
                return Value::Null;
            }
        }
        match &self.kind {
            Kind::Sequence { start } => Value::Int(start.wrapping_add(row as i64)),
            Kind::Uniform(u) => Value::Int(u.sample(rng)),
            Kind::Zipf { min, n, zipf } => {
                let rank = (zipf.sample(rng) as u64).clamp(1, *n);
                Value::Int(min.wrapping_add((rank - 1) as i64))
            }
            Kind::Float(u) => Value::Float(u.sample(rng)),
            Kind::FloatConst(x) => Value::Float(*x),
            Kind::Text { len } => {
                let n = len.sample(rng) as usize;
                let mut s = String::with_capacity(n);
                push_alnum(&mut s, n, rng);
                Value::Text(s)
            }
            Kind::Words { count } => {
                let n = count.sample(rng);
                let mut s = String::with_capacity(n as usize * 8);
                for i in 0..n {
                    if i > 0 {
                        s.push(' ');
                    }
                    s.push_str(WORDS[rng.gen_range(0..WORDS.len())]);
                }
                Value::Text(s)
            }
            Kind::Choice { values, index } => Value::Text(values[index.sample(rng)].clone()),
            Kind::Bool(b) => Value::Bool(b.sample(rng)),
            Kind::Timestamp(u) => Value::Timestamp(u.sample(rng)),
            Kind::Uuid => {
                let mut b: [u8; 16] = rng.gen();
                // RFC 4122 version 4, variant 1: looks like any v4 uuid.
                b[6] = (b[6] & 0x0f) | 0x40;
                b[8] = (b[8] & 0x3f) | 0x80;
                Value::Uuid(b)
            }
            Kind::Json { keys } => {
                use std::fmt::Write;
                let mut s = String::with_capacity(2 + *keys as usize * 12);
                s.push('{');
                for k in 0..*keys {
                    if k > 0 {
                        s.push_str(", ");
                    }
                    let _ = write!(s, "\"k{k}\": {}", rng.gen_range(0..1_000_000u32));
                }
                s.push('}');
                Value::Json(s)
            }
            Kind::NoParent => Value::Null,
            Kind::Constant(v) => Value::Text(v.clone()),
            Kind::Histogram { scale, bounds, set } => {
                let u = match set {
                    Some(set) => set.quantile(set.of(row)),
                    None => rng.gen::<f64>(),
                };
                let x = inverse_cdf(bounds, u);
                match scale {
                    Scale::Int => Value::Int(x.round() as i64),
                    Scale::Float => Value::Float(x),
                    Scale::Timestamp => Value::Timestamp(x.round() as i64),
                }
            }
            Kind::TextSet {
                min_len,
                max_len,
                set,
            } => {
                let i = match set {
                    Some(set) => set.of(row),
                    None => rng.gen(),
                };
                Value::Text(text_value(i, *min_len, *max_len))
            }
            Kind::WeightedKeys { keys, index, rest } => match index.sample(rng) {
                i if i < *keys => Value::Int(i as i64 + 1),
                _ => rest.sample(row, rng),
            },
            Kind::ChoiceRest {
                values,
                index,
                rest,
            } => match values.get(index.sample(rng)) {
                Some(v) => Value::Text(v.clone()),
                None => rest.sample(row, rng),
            },
            Kind::ParentColumn { draw, parent } => match draw.sample(row, rng) {
                Value::Int(k) if k >= 1 => parent.sample(k as u64 - 1, rng),
                _ => Value::Null,
            },
            Kind::Addressed { key, seed, inner } => {
                inner.sample(row, &mut RowRng::new(*seed, *key, row))
            }
        }
    }

    /// True when every value is the same non-random text (lets COPY encode it
    /// once per column instead of once per row).
    pub fn constant(&self) -> Option<&str> {
        match (&self.null, &self.kind) {
            (None, Kind::Constant(v)) => Some(v),
            _ => None,
        }
    }
}

fn ordered<T: PartialOrd>(a: T, b: T) -> (T, T) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

/// Append `n` random alphanumeric characters: ten characters per 64-bit draw
/// (62^10 < 2^64), which keeps text generation off the seeding profile.
fn push_alnum<R: Rng + ?Sized>(s: &mut String, mut n: usize, rng: &mut R) {
    while n > 0 {
        let mut x: u64 = rng.gen();
        for _ in 0..n.min(10) {
            s.push(ALNUM[(x % 62) as usize] as char);
            x /= 62;
        }
        n -= n.min(10);
    }
}

impl ColumnGen {
    /// Compile this generator (see [`Sampler`]); do it once and reuse it.
    pub fn sampler(&self) -> Sampler {
        Sampler::new(self)
    }

    /// One value for 0-based `row`. Compiles the generator on every call:
    /// fine for a handful of values, use [`ColumnGen::sampler`] in loops.
    pub fn generate(&self, row: u64, rng: &mut impl Rng) -> Value {
        Sampler::new(self).sample(row, rng)
    }
}

#[cfg(test)]
mod tests;
