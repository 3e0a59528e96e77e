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
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::Zipf;

use super::{ColumnGen, Distinct, Gen, IntDist, Scale};
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
    /// `values[i]` for i < values.len(), else a value of `rest`.
    ChoiceRest {
        values: Vec<String>,
        index: WeightedIndex<u32>,
        rest: Box<Sampler>,
    },
}

fn value_set(d: Option<Distinct>) -> Option<ValueIndex> {
    match d {
        Some(Distinct::Count(n)) => Some(ValueIndex::new(n)),
        _ => None,
    }
}

impl Sampler {
    /// Compile a plan generator. Bad parameters (which validation rejects
    /// before we get here) are normalised rather than panicking: ranges are
    /// ordered, probabilities clamped.
    pub fn new(gen: &ColumnGen) -> Sampler {
        let nf = gen.null_fraction;
        let null = if nf > 0.0 && nf.is_finite() {
            Some(Bernoulli::new(nf.min(1.0)).expect("clamped probability"))
        } else {
            None
        };
        let kind = match &gen.kind {
            Gen::Sequence { start } => Kind::Sequence { start: *start },
            Gen::Int { min, max, dist, s } => {
                let (lo, hi) = ordered(*min, *max);
                match dist {
                    IntDist::Uniform => Kind::Uniform(Uniform::new_inclusive(lo, hi)),
                    IntDist::Zipf => {
                        // Span can be 2^64 for the full i64 range: saturate.
                        let n = (hi as i128 - lo as i128 + 1).min(u64::MAX as i128) as u64;
                        let s = if s.is_finite() && *s >= 0.0 { *s } else { 1.0 };
                        Kind::Zipf {
                            min: lo,
                            n,
                            zipf: Zipf::new(n, s).expect("n >= 1 and s >= 0"),
                        }
                    }
                }
            }
            Gen::Float { min, max } => {
                let (lo, hi) = (min.min(*max), min.max(*max));
                if lo.is_finite() && hi.is_finite() && lo < hi {
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
            Gen::ChoiceRest {
                values,
                weights,
                rest,
                rest_weight,
            } => {
                let w: Vec<u32> = (0..values.len())
                    .map(|i| weights.get(i).copied().unwrap_or(1))
                    .chain([*rest_weight])
                    .collect();
                let rest = Box::new(Sampler::new(&ColumnGen {
                    kind: (**rest).clone(),
                    null_fraction: 0.0,
                }));
                match WeightedIndex::new(&w) {
                    Ok(index) => Kind::ChoiceRest {
                        values: values.clone(),
                        index,
                        rest,
                    },
                    Err(_) => Kind::NoParent,
                }
            }
        };
        Sampler { null, kind }
    }

    /// The value for 0-based `row`. `row` only matters to `sequence`; every
    /// other generator draws from `rng`.
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
            Kind::ChoiceRest {
                values,
                index,
                rest,
            } => match values.get(index.sample(rng)) {
                Some(v) => Value::Text(v.clone()),
                None => rest.sample(row, rng),
            },
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
mod tests {
    use super::*;

    fn cg(kind: Gen) -> ColumnGen {
        ColumnGen {
            kind,
            null_fraction: 0.0,
        }
    }

    fn draw(gen: &ColumnGen, seed: u64, n: u64) -> Vec<Value> {
        let s = gen.sampler();
        let mut rng = chunk_rng(seed, 0, 0, 0);
        (0..n).map(|row| s.sample(row, &mut rng)).collect()
    }

    fn all_kinds() -> Vec<Gen> {
        vec![
            Gen::Sequence { start: 1 },
            Gen::Int {
                min: -5,
                max: 5,
                dist: IntDist::Uniform,
                s: 1.0,
            },
            Gen::Int {
                min: 10,
                max: 1000,
                dist: IntDist::Zipf,
                s: 1.0,
            },
            Gen::Float { min: 1.5, max: 2.5 },
            Gen::Text {
                min_len: 3,
                max_len: 17,
            },
            Gen::Words { min: 1, max: 4 },
            Gen::Choice {
                values: vec!["a".into(), "b".into(), "c".into()],
                weights: vec![1, 5, 4],
            },
            Gen::Bool { p_true: 0.3 },
            Gen::Timestamp {
                from_us: 1_700_000_000_000_000,
                to_us: 1_800_000_000_000_000,
            },
            Gen::Uuid,
            Gen::Json { keys: 3 },
            Gen::ForeignKey {
                table: "p".into(),
                rows: 42,
            },
            Gen::Constant { value: "x".into() },
        ]
    }

    #[test]
    fn same_seed_same_values_other_seed_other_values() {
        for kind in all_kinds() {
            let g = cg(kind.clone());
            assert_eq!(draw(&g, 7, 200), draw(&g, 7, 200), "{kind:?}");
            let varies = !matches!(kind, Gen::Sequence { .. } | Gen::Constant { .. });
            if varies {
                assert_ne!(draw(&g, 7, 200), draw(&g, 8, 200), "{kind:?}");
            }
        }
    }

    #[test]
    fn chunk_streams_differ_by_table_chunk_and_column() {
        let g = cg(Gen::Uuid);
        let s = g.sampler();
        let a = s.sample(0, &mut chunk_rng(1, 0, 0, 0));
        assert_ne!(a, s.sample(0, &mut chunk_rng(1, 1, 0, 0)));
        assert_ne!(a, s.sample(0, &mut chunk_rng(1, 0, 1, 0)));
        assert_ne!(a, s.sample(0, &mut chunk_rng(1, 0, 0, 1)));
        assert_eq!(a, s.sample(0, &mut chunk_rng(1, 0, 0, 0)));
    }

    #[test]
    fn ranges_are_respected() {
        for v in draw(&cg(all_kinds()[1].clone()), 1, 5000) {
            let Value::Int(i) = v else { panic!("{v:?}") };
            assert!((-5..=5).contains(&i));
        }
        let zipf = draw(&cg(all_kinds()[2].clone()), 1, 5000);
        assert!(zipf
            .iter()
            .all(|v| matches!(v, Value::Int(i) if (10..=1000).contains(i))));
        for v in draw(&cg(all_kinds()[3].clone()), 1, 5000) {
            let Value::Float(x) = v else { panic!("{v:?}") };
            assert!((1.5..=2.5).contains(&x));
        }
        for v in draw(&cg(all_kinds()[4].clone()), 1, 5000) {
            let Value::Text(t) = v else { panic!("{v:?}") };
            assert!((3..=17).contains(&t.len()), "{t}");
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        for v in draw(&cg(all_kinds()[5].clone()), 1, 2000) {
            let Value::Text(t) = v else { panic!("{v:?}") };
            let n = t.split(' ').count();
            assert!((1..=4).contains(&n), "{t}");
            assert!(t.split(' ').all(|w| WORDS.contains(&w)));
        }
        for v in draw(&cg(all_kinds()[8].clone()), 1, 5000) {
            let Value::Timestamp(us) = v else {
                panic!("{v:?}")
            };
            assert!((1_700_000_000_000_000..=1_800_000_000_000_000).contains(&us));
        }
        for v in draw(&cg(all_kinds()[11].clone()), 1, 5000) {
            let Value::Int(i) = v else { panic!("{v:?}") };
            assert!((1..=42).contains(&i));
        }
        let seq = draw(&cg(Gen::Sequence { start: 100 }), 1, 5);
        assert_eq!(seq, (100..105).map(Value::Int).collect::<Vec<_>>());
    }

    #[test]
    fn choice_and_bool_follow_their_weights() {
        let vals = draw(&cg(all_kinds()[6].clone()), 3, 100_000);
        let share = |c: &str| {
            vals.iter()
                .filter(|v| matches!(v, Value::Text(t) if t == c))
                .count() as f64
                / vals.len() as f64
        };
        assert!((share("a") - 0.1).abs() < 0.01, "{}", share("a"));
        assert!((share("b") - 0.5).abs() < 0.01, "{}", share("b"));
        assert!((share("c") - 0.4).abs() < 0.01, "{}", share("c"));
        let bools = draw(&cg(Gen::Bool { p_true: 0.3 }), 3, 100_000);
        let t = bools.iter().filter(|v| **v == Value::Bool(true)).count() as f64 / 1e5;
        assert!((t - 0.3).abs() < 0.01, "{t}");
    }

    #[test]
    fn null_fraction_is_honoured() {
        for nf in [0.0, 0.1, 0.5, 1.0] {
            let g = ColumnGen {
                kind: Gen::Uuid,
                null_fraction: nf,
            };
            let vals = draw(&g, 11, 100_000);
            let nulls = vals.iter().filter(|v| **v == Value::Null).count() as f64 / 1e5;
            assert!((nulls - nf).abs() < 0.01, "wanted {nf}, got {nulls}");
        }
    }

    #[test]
    fn zipf_is_skewed_towards_min() {
        let g = cg(Gen::Int {
            min: 1,
            max: 10_000,
            dist: IntDist::Zipf,
            s: 1.0,
        });
        let vals = draw(&g, 5, 100_000);
        let count = |x: i64| vals.iter().filter(|v| **v == Value::Int(x)).count() as f64;
        // P(rank k) ∝ 1/k: rank 1 about twice rank 2 and ten times rank 10.
        let (c1, c2, c10) = (count(1), count(2), count(10));
        assert!((c1 / c2 - 2.0).abs() < 0.3, "{c1} {c2}");
        assert!((c1 / c10 - 10.0).abs() < 2.0, "{c1} {c10}");
        // Harmonic number H(10000) ≈ 9.79: rank 1 holds about 10%.
        assert!((c1 / 1e5 - 0.102).abs() < 0.01, "{c1}");
        let uniform = draw(
            &cg(Gen::Int {
                min: 1,
                max: 10_000,
                dist: IntDist::Uniform,
                s: 1.0,
            }),
            5,
            100_000,
        );
        let u1 = uniform.iter().filter(|v| **v == Value::Int(1)).count();
        assert!(u1 < 50, "{u1}");
    }

    #[test]
    fn zipf_over_the_whole_i64_range_does_not_panic() {
        let g = cg(Gen::Int {
            min: i64::MIN,
            max: i64::MAX,
            dist: IntDist::Zipf,
            s: 1.2,
        });
        assert_eq!(draw(&g, 1, 100).len(), 100);
    }

    #[test]
    fn uuids_are_v4_and_json_parses() {
        for v in draw(&cg(Gen::Uuid), 2, 100) {
            let Value::Uuid(b) = v else { panic!() };
            assert_eq!(uuid::Uuid::from_bytes(b).get_version_num(), 4);
        }
        for v in draw(&cg(Gen::Json { keys: 3 }), 2, 100) {
            let Value::Json(s) = v else { panic!() };
            let j: serde_json::Value = serde_json::from_str(&s).unwrap();
            assert_eq!(j.as_object().unwrap().len(), 3);
        }
    }

    #[test]
    fn histograms_follow_their_buckets() {
        // Half the values in [0, 10], half in [10, 1000].
        let g = cg(Gen::Histogram {
            scale: Scale::Int,
            bounds: vec![0.0, 10.0, 1000.0],
            distinct: None,
        });
        let vals = draw(&g, 4, 100_000);
        let low = vals
            .iter()
            .filter(|v| matches!(v, Value::Int(i) if (0..=10).contains(i)))
            .count() as f64;
        assert!((low / 1e5 - 0.5).abs() < 0.01, "{low}");
        assert!(vals
            .iter()
            .all(|v| matches!(v, Value::Int(i) if (0..=1000).contains(i))));
        let t = cg(Gen::Histogram {
            scale: Scale::Timestamp,
            bounds: vec![1e15, 2e15],
            distinct: None,
        });
        assert!(draw(&t, 4, 1000)
            .iter()
            .all(|v| matches!(v, Value::Timestamp(us) if (1_000_000_000_000_000..=2_000_000_000_000_000).contains(us))));
    }

    #[test]
    fn distinct_sets_hold_exactly_n_values() {
        use std::collections::HashSet;
        let kinds = [
            Gen::Histogram {
                scale: Scale::Int,
                bounds: vec![0.0, 1e9],
                distinct: Some(Distinct::Count(777)),
            },
            Gen::Histogram {
                scale: Scale::Float,
                bounds: vec![0.0, 1.0, 5.0],
                distinct: Some(Distinct::Count(777)),
            },
            Gen::Histogram {
                scale: Scale::Timestamp,
                bounds: vec![1.7e15, 1.8e15],
                distinct: Some(Distinct::Count(777)),
            },
            Gen::TextSet {
                min_len: 2,
                max_len: 9,
                distinct: Distinct::Count(777),
            },
        ];
        for kind in kinds {
            let g = cg(kind.clone());
            let vals: HashSet<String> = draw(&g, 1, 10_000).iter().map(|v| v.to_string()).collect();
            assert_eq!(vals.len(), 777, "{kind:?}");
            // As many rows as values: every row its own value.
            let once: HashSet<String> = draw(&g, 1, 777).iter().map(|v| v.to_string()).collect();
            assert_eq!(once.len(), 777, "{kind:?}");
        }
    }

    #[test]
    fn choice_rest_mixes_listed_values_and_the_rest() {
        let g = cg(Gen::ChoiceRest {
            values: vec!["7".into(), "8".into()],
            weights: vec![50, 30],
            rest: Box::new(Gen::Histogram {
                scale: Scale::Int,
                bounds: vec![100.0, 200.0],
                distinct: Some(Distinct::Count(10)),
            }),
            rest_weight: 20,
        });
        let vals = draw(&g, 2, 100_000);
        let share = |f: &dyn Fn(&Value) -> bool| vals.iter().filter(|v| f(v)).count() as f64 / 1e5;
        assert!((share(&|v| *v == Value::Text("7".into())) - 0.5).abs() < 0.01);
        assert!((share(&|v| *v == Value::Text("8".into())) - 0.3).abs() < 0.01);
        let rest = share(&|v| matches!(v, Value::Int(i) if (100..=200).contains(i)));
        assert!((rest - 0.2).abs() < 0.01, "{rest}");
    }

    #[test]
    fn generate_matches_sampler() {
        let g = cg(all_kinds()[2].clone());
        let mut a = chunk_rng(9, 0, 0, 0);
        let mut b = chunk_rng(9, 0, 0, 0);
        let s = g.sampler();
        for row in 0..100 {
            assert_eq!(g.generate(row, &mut a), s.sample(row, &mut b));
        }
    }
}
