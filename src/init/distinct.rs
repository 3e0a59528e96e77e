//! How many distinct values a generator should draw from, so the generated
//! column has as many as the source's: `distinct = N` gives value `i` of
//! `N` to the rows `≡ i (mod N)`, but a row reaches the generator only with
//! some probability (the rest are NULL or common values), and rounding to
//! an integer, a cent or a day merges values that fall in a narrow bucket.

use super::spec::{round_to, Val};

/// What the setting rests on.
pub struct Target {
    /// Distinct values wanted.
    pub values: f64,
    /// Rows of the table.
    pub rows: f64,
    /// Share of rows that reach this generator.
    pub share: f64,
    /// pg_stats says the count grows with the table (n_distinct < 0): the
    /// setting is a share of rows, which follows --rows.
    pub scales: bool,
}

/// `distinct` so that about `target` different values come out: value `i`
/// of `n` goes to the rows `≡ i (mod n)`, each of which reaches this
/// generator with probability `share`, and rounding to `unit` merges values
/// that fall in a narrow bucket. None: random draws do as well.
pub fn setting(t: &Target, bounds: &[f64], unit: Option<f64>) -> Option<Val> {
    let (target, rows, share) = (t.values, t.rows, t.share);
    if rows < 1.0 || share <= 0.0 {
        return None;
    }
    let reaching = rows * share;
    let target = target.clamp(1.0, reaching.max(1.0));
    let buckets = bounds.len().saturating_sub(1).max(1) as f64;
    let capacity = |n: f64| -> f64 {
        match unit {
            Some(u) if bounds.len() >= 2 => bounds
                .windows(2)
                .map(|w| (n / buckets).min((w[1] - w[0]) / u + 1.0))
                .sum::<f64>()
                .min(n),
            _ => n,
        }
    };
    let continuous = match unit {
        None => true,
        Some(u) => bounds.len() >= 2 && (bounds[bounds.len() - 1] - bounds[0]) / u >= 100.0 * rows,
    };
    if continuous && target >= 0.9 * reaching {
        // Random draws on a line this fine do not repeat.
        return None;
    }
    let realized = |n: f64| -> f64 {
        let covered = if n <= rows {
            1.0 - (1.0 - share).powf(rows / n)
        } else {
            share * rows / n
        };
        capacity(n) * covered
    };
    // The generator cannot hold more values than its range has units (an
    // integer range of 49 integers holds 49 values, whatever share of the
    // rows reaches it): check refuses more, and more would merge anyway.
    let room = match unit {
        Some(u) if bounds.len() >= 2 => {
            ((bounds[bounds.len() - 1] - bounds[0]) / u + 1e-9).floor() + 1.0
        }
        _ => f64::INFINITY,
    };
    // realized() grows with n up to n = rows: bisect on a log scale.
    let (mut lo, mut hi) = (1.0f64, rows.min(room).max(1.0));
    if realized(hi) <= target {
        lo = hi;
    } else {
        for _ in 0..100 {
            let mid = (lo * hi).sqrt();
            if realized(mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
            if hi - lo < 0.5 {
                break;
            }
        }
    }
    let n = lo.round().clamp(1.0, room.max(1.0));
    // A set as large as the range stays that large at any --rows.
    Some(if t.scales && n < room {
        if n >= rows {
            Val::Str("100%".into())
        } else {
            Val::Str(format!("{}%", significant(n / rows * 100.0, 4)))
        }
    } else {
        Val::Int(n as i64)
    })
}

/// `x` to `digits` significant digits.
pub fn significant(x: f64, digits: i32) -> f64 {
    if x == 0.0 || !x.is_finite() {
        return x;
    }
    let magnitude = x.abs().log10().floor() as i32;
    round_to(x, (digits - 1 - magnitude).max(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(values: f64, share: f64, scales: bool) -> Target {
        Target {
            values,
            rows: 10_000.0,
            share,
            scales,
        }
    }

    #[test]
    fn distinct_counts_account_for_rows_that_go_elsewhere() {
        // Every row reaches the generator: n is the target.
        assert_eq!(
            setting(&target(500.0, 1.0, false), &[0.0, 1e6], Some(1.0)),
            Some(Val::Int(500))
        );
        // Half the rows are common values: 2000 values over 5000 rows need
        // more than 2000 slots, since some slots see no row.
        let Some(Val::Int(n)) = setting(&target(2000.0, 0.5, false), &[0.0, 1e6], Some(1.0)) else {
            panic!()
        };
        assert!((2050..2200).contains(&n), "{n}");
        // Integers in a narrow range cannot all differ.
        let Some(Val::Int(n)) =
            setting(&target(150.0, 1.0, false), &[0.0, 10.0, 1000.0], Some(1.0))
        else {
            panic!()
        };
        assert!(n > 150, "{n}");
        // A share of rows when pg_stats says the count grows with the table.
        assert_eq!(
            setting(&target(2500.0, 1.0, true), &[0.0, 1e9], Some(1.0)),
            Some(Val::Str("25%".into()))
        );
        assert_eq!(
            setting(&target(10_000.0, 1.0, true), &[0.0, 1e5], Some(1.0)),
            Some(Val::Str("100%".into()))
        );
        // Never more values than the integers of the range, even when
        // few rows reach the generator (a tenth here); a count then, since
        // the range does not grow with the rows.
        assert_eq!(
            setting(&target(49.0, 0.1, false), &[2.0, 50.0], Some(1.0)),
            Some(Val::Int(49))
        );
        assert_eq!(
            setting(&target(49.0, 0.1, true), &[2.0, 3.0, 50.0], Some(1.0)),
            Some(Val::Int(49))
        );
        // Days: as many as the range has.
        assert_eq!(
            setting(
                &target(40.0, 0.2, false),
                &[0.0, 9.0 * 86_400e6],
                Some(86_400e6)
            ),
            Some(Val::Int(10))
        );
        // Continuous values that never repeat need no set.
        assert_eq!(
            setting(&target(10_000.0, 1.0, true), &[0.0, 1.0], None),
            None
        );
    }
}
