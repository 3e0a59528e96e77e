//! Histogram bounds as generators take them: at most [`MAX_BOUNDS`] of
//! pg_stats' (evenly picked, still equi-depth), and, when common values are
//! left to the histogram, one equi-depth histogram of both (pg_stats'
//! histogram leaves the most common values out).

/// Histogram bounds written at most (pg_stats keeps up to 101): 20 equally
/// likely buckets keep the shape and stay readable.
pub const MAX_BOUNDS: usize = 21;

/// At most [`MAX_BOUNDS`] of an equi-depth histogram's bounds, evenly
/// picked: still equi-depth.
pub fn subsample(b: Vec<(String, f64)>) -> Vec<(String, f64)> {
    if b.len() <= MAX_BOUNDS {
        return b;
    }
    let last = b.len() - 1;
    (0..MAX_BOUNDS)
        .map(|i| b[(i * last + (MAX_BOUNDS - 1) / 2) / (MAX_BOUNDS - 1)].clone())
        .collect()
}

/// The bounds of `buckets` equally likely buckets over a histogram whose
/// buckets each hold `each` of the rows, plus `points` (value, share): the
/// quantiles of both together.
pub fn merged(hist: &[f64], each: f64, points: &[(f64, f64)], buckets: usize) -> Vec<f64> {
    // Cumulative share at each breakpoint: just before it and just after.
    let mut xs: Vec<f64> = hist
        .iter()
        .copied()
        .chain(points.iter().map(|p| p.0))
        .collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let below = |x: f64| -> f64 {
        let in_buckets: f64 = hist
            .windows(2)
            .map(|w| {
                if x >= w[1] {
                    each
                } else if x <= w[0] {
                    0.0
                } else {
                    each * (x - w[0]) / (w[1] - w[0])
                }
            })
            .sum();
        in_buckets + points.iter().filter(|p| p.0 < x).map(|p| p.1).sum::<f64>()
    };
    let cdf: Vec<(f64, f64, f64)> = xs
        .iter()
        .map(|&x| {
            let before = below(x);
            let at: f64 = points.iter().filter(|p| p.0 == x).map(|p| p.1).sum();
            (x, before, before + at)
        })
        .collect();
    let total = cdf.last().map_or(0.0, |c| c.2);
    if cdf.is_empty() || total <= 0.0 {
        return xs;
    }
    let quantile = |q: f64| -> f64 {
        let want = q * total;
        let mut prev = cdf[0];
        for &c in &cdf {
            if want <= c.2 {
                if want >= c.1 {
                    return c.0;
                }
                // Between the last breakpoint and this one, linearly.
                let span = c.1 - prev.2;
                return if span <= 0.0 {
                    c.0
                } else {
                    prev.0 + (c.0 - prev.0) * (want - prev.2) / span
                };
            }
            prev = c;
        }
        prev.0
    };
    (0..=buckets)
        .map(|i| quantile(i as f64 / buckets as f64))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_subsampled_evenly() {
        let b: Vec<(String, f64)> = (0..=100).map(|i| (i.to_string(), i as f64)).collect();
        let s = subsample(b);
        assert_eq!(s.len(), 21);
        assert_eq!(s[0].1, 0.0);
        assert_eq!(s[10].1, 50.0);
        assert_eq!(s[20].1, 100.0);
    }

    #[test]
    fn common_values_merge_into_the_histogram() {
        // Half the rows uniform over [10, 20], half at 0: the first half
        // of the quantiles sit on 0.
        let b = merged(&[10.0, 20.0], 0.5, &[(0.0, 0.5)], 4);
        assert_eq!(b, vec![0.0, 0.0, 0.0, 15.0, 20.0]);
        // No points: the histogram itself.
        assert_eq!(merged(&[0.0, 1.0, 3.0], 0.5, &[], 2), vec![0.0, 1.0, 3.0]);
    }
}
