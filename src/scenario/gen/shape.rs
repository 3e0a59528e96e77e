//! The sampling side of the shaped generators (gen_shape.rs validates them):
//! an equi-depth histogram's inverse CDF, the shuffled `row mod n` index of a
//! fixed value set, and the text of value number `i`.

use super::mix64;

/// Value number `row mod n` of a fixed set, shuffled by a multiplier coprime
/// with `n`: a bijection on 0..n, so `n` consecutive rows take `n` different
/// values, and the values do not follow the physical row order.
#[derive(Debug, Clone, Copy)]
pub struct ValueIndex {
    n: u64,
    mult: u64,
    offset: u64,
}

impl ValueIndex {
    pub fn new(n: u64) -> ValueIndex {
        let n = n.max(1);
        let mut mult = mix64(n) % n;
        while gcd(mult, n) != 1 {
            mult = (mult + 1) % n;
        }
        ValueIndex {
            n,
            mult,
            offset: mix64(n ^ 0x0DD5_EED5) % n,
        }
    }

    #[inline]
    pub fn of(&self, row: u64) -> u64 {
        let i = u128::from(row % self.n) * u128::from(self.mult) + u128::from(self.offset);
        (i % u128::from(self.n)) as u64
    }

    /// Where value number `i` sits in (0, 1): the middle of its 1/n slice.
    #[inline]
    pub fn quantile(&self, i: u64) -> f64 {
        (i as f64 + 0.5) / self.n as f64
    }
}

/// Greatest common divisor: sets of coprime sizes (gcd 1) keep their
/// combinations apart.
pub(crate) fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// The value at quantile `u` (0..=1) of an equi-depth histogram: `bounds`
/// are the edges of equally likely buckets, uniform within each.
#[inline]
pub fn inverse_cdf(bounds: &[f64], u: f64) -> f64 {
    let buckets = bounds.len().saturating_sub(1);
    if buckets == 0 {
        return bounds.first().copied().unwrap_or(0.0);
    }
    let pos = u.clamp(0.0, 1.0) * buckets as f64;
    let k = (pos as usize).min(buckets - 1);
    let (lo, hi) = (bounds[k], bounds[k + 1]);
    lo + (pos - k as f64) * (hi - lo)
}

const ALNUM: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// 2^61 - 1, a prime: coprime with 62^k, so multiplying by it permutes 0..62^k.
const PRIME: u128 = (1 << 61) - 1;

/// Text number `i` of a fixed set: its length from `i`'s hash, its first
/// (up to ten) characters the base-62 digits of a permutation of `i`, so two
/// values of the same length differ whenever `i < 62^length`; the rest of a
/// long text comes from `i`'s hash.
pub fn text_value(i: u64, min_len: u32, max_len: u32) -> String {
    let (lo, hi) = if min_len <= max_len {
        (min_len, max_len)
    } else {
        (max_len, min_len)
    };
    let span = u64::from(hi - lo) + 1;
    let len = lo as usize + (mix64(i ^ 0x7E47_5E75) % span) as usize;
    let mut s = String::with_capacity(len);
    let head = len.min(10);
    let m = 62u128.pow(head as u32);
    let mut j = (u128::from(i) % m) * PRIME % m;
    for _ in 0..head {
        s.push(ALNUM[(j % 62) as usize] as char);
        j /= 62;
    }
    let mut x = mix64(i);
    while s.len() < len {
        x = mix64(x);
        let mut y = x;
        for _ in 0..(len - s.len()).min(10) {
            s.push(ALNUM[(y % 62) as usize] as char);
            y /= 62;
        }
    }
    s
}

/// A uuid for an integer key: the same uuid for the same integer and
/// different ones for different integers (all 64 bits of a bijective mix are
/// kept), laid out as a version-4 uuid. This is how `sequence` and `fk`
/// fill uuid keys that reference each other.
pub fn uuid_of_int(i: i64) -> [u8; 16] {
    let x = mix64(i as u64);
    let y = mix64(x ^ 0x00C0_FFEE);
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&x.to_be_bytes()[..6]);
    b[6] = 0x40 | ((x >> 12) & 0x0f) as u8;
    b[7] = ((x >> 4) & 0xff) as u8;
    b[8] = 0x80 | (y & 0x3f) as u8;
    b[9] = (((x & 0x0f) << 4) as u8) | ((y >> 8) & 0x0f) as u8;
    b[10..].copy_from_slice(&y.to_be_bytes()[2..]);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn value_index_is_a_bijection_on_each_block() {
        for n in [1u64, 2, 10, 62, 97, 1000, 4096, 65_537] {
            let idx = ValueIndex::new(n);
            let seen: HashSet<u64> = (0..n).map(|r| idx.of(r)).collect();
            assert_eq!(seen.len() as u64, n, "n = {n}");
            assert!(seen.iter().all(|&i| i < n));
            // The next block repeats the same values.
            assert_eq!(idx.of(3 % n), idx.of(n + 3 % n));
        }
        // Not the row order itself.
        let idx = ValueIndex::new(1000);
        let in_order = (0..999).filter(|&r| idx.of(r + 1) == idx.of(r) + 1).count();
        assert!(in_order < 50, "{in_order}");
    }

    #[test]
    fn inverse_cdf_follows_equal_mass_buckets() {
        let b = [0.0, 1.0, 100.0];
        assert_eq!(inverse_cdf(&b, 0.0), 0.0);
        assert_eq!(inverse_cdf(&b, 0.25), 0.5);
        assert_eq!(inverse_cdf(&b, 0.5), 1.0);
        assert_eq!(inverse_cdf(&b, 0.75), 50.5);
        assert_eq!(inverse_cdf(&b, 1.0), 100.0);
        assert_eq!(inverse_cdf(&[7.0], 0.3), 7.0);
    }

    #[test]
    fn text_values_are_distinct_and_sized() {
        let n = 200_000u64;
        let mut seen = HashSet::new();
        for i in 0..n {
            let t = text_value(i, 4, 12);
            assert!((4..=12).contains(&t.len()), "{t}");
            assert!(t.bytes().all(|b| b.is_ascii_alphanumeric()));
            seen.insert(t);
        }
        assert_eq!(seen.len() as u64, n);
        // Three characters hold 62^3 values: all of them, no repeats.
        let three: HashSet<String> = (0..62u64.pow(3)).map(|i| text_value(i, 3, 3)).collect();
        assert_eq!(three.len(), 62usize.pow(3));
        assert_eq!(text_value(42, 0, 0), "");
    }

    #[test]
    fn uuids_of_ints_are_distinct_v4() {
        let mut seen = HashSet::new();
        for i in -1000..100_000i64 {
            let b = uuid_of_int(i);
            assert_eq!(uuid::Uuid::from_bytes(b).get_version_num(), 4);
            assert!(seen.insert(b));
        }
        assert_eq!(uuid_of_int(5), uuid_of_int(5));
    }
}
