//! Fitting a figure against table size: two one-parameter-plus-intercept
//! models, `a + b·n` and `a + b·n·ln n`, each by ordinary least squares on
//! its transformed size; the one with the smaller residual sum of squares
//! (the higher R²) is kept, linear on a tie (the simpler story). A
//! prediction at a target size comes with a 95% prediction interval from
//! the residuals: ŷ ± t(0.975, k−2) · s · √(1 + 1/k + (x₀ − x̄)² / Sxx),
//! where s² is the residual variance over k−2 degrees of freedom. With two
//! points the line passes through both and there is nothing left to
//! estimate the scatter from: no interval.
//!
//! Every figure a sweep fits (durations, bytes, counts) cannot be negative,
//! so [`Fit::predict_non_negative`] refuses a value rather than print a
//! clamped one: a fit that falls with size (noise between too few sizes —
//! a migration does not get cheaper on a bigger table) or that reaches 0
//! or below at the target gives no value, only the reason. Its interval's
//! low end is clamped at 0 and said to be (the scatter is large against
//! the value there); the high end is kept.
//!
//! Pure maths, no I/O: everything else of the sweep uses it.

use serde::Serialize;

/// Below this R² a fit is called poor in every report.
pub const POOR_R2: f64 = 0.9;
/// A target more than this many times the largest measured size is called
/// a far extrapolation.
pub const FAR_FACTOR: f64 = 100.0;

/// How a figure grows with the size n.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// a + b·n
    Linear,
    /// a + b·n·ln n
    NLogN,
}

impl Model {
    /// The regressor for size `n`.
    pub fn x(self, n: f64) -> f64 {
        match self {
            Model::Linear => n,
            Model::NLogN => n * n.max(1.0).ln(),
        }
    }

    pub fn formula(self) -> &'static str {
        match self {
            Model::Linear => "a + b·n",
            Model::NLogN => "a + b·n·ln n",
        }
    }
}

/// A least-squares fit of y against one model's x(n).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fit {
    pub model: Model,
    /// Intercept.
    pub a: f64,
    /// Slope (per unit of x(n)).
    pub b: f64,
    /// Coefficient of determination, 1 − SSres/SStot; 1 when every y is
    /// the same and the fit is exact.
    pub r2: f64,
    /// Points fitted (distinct sizes).
    pub points: usize,
    /// Residual standard error, √(SSres/(k−2)); None with two points.
    pub residual_se: Option<f64>,
    #[serde(skip)]
    mean_x: f64,
    #[serde(skip)]
    sxx: f64,
    /// max x(n) − min x(n): how far the fit's slope is measured across.
    #[serde(skip)]
    x_span: f64,
    /// The largest |y| measured: what "falls" and "reaches 0" are judged
    /// against (a series of zeros is predicted 0, not refused).
    #[serde(skip)]
    y_max: f64,
}

/// A prediction at a target size.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    pub n: f64,
    /// None: not extrapolated (`not_extrapolated` says why).
    pub value: Option<f64>,
    /// The 95% prediction interval; None with two points or no value.
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// `low` was below 0 and is 0 here: the figure cannot be negative.
    pub low_clamped: bool,
    pub not_extrapolated: Option<NoValue>,
}

/// Why a fit gives no value at the target for a figure that cannot be
/// negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NoValue {
    /// The slope is negative: the figure fell as the table grew.
    FallsWithSize,
    /// The fitted value at the target is 0 or below while some measured
    /// value is not (a target below the sizes measured).
    NotPositive,
}

impl std::fmt::Display for NoValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoValue::FallsWithSize => write!(
                f,
                "falls with size in these runs (noise or too few sizes); not extrapolated"
            ),
            NoValue::NotPositive => write!(
                f,
                "the fit reaches 0 or below at the target, which this figure cannot; not extrapolated"
            ),
        }
    }
}

/// Why there is no fit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoFit {
    /// Fewer than two sizes have the figure.
    OnePoint,
    NoPoints,
}

impl std::fmt::Display for NoFit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NoFit::OnePoint => write!(f, "no fit with one point"),
            NoFit::NoPoints => write!(f, "no measured points"),
        }
    }
}

/// Fit `points` (size, value) with one model. Needs two distinct sizes.
pub fn fit_model(model: Model, points: &[(f64, f64)]) -> Result<Fit, NoFit> {
    let k = points.len();
    match k {
        0 => return Err(NoFit::NoPoints),
        1 => return Err(NoFit::OnePoint),
        _ => {}
    }
    let xs: Vec<f64> = points.iter().map(|p| model.x(p.0)).collect();
    let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    let mean_x = xs.iter().sum::<f64>() / k as f64;
    let mean_y = ys.iter().sum::<f64>() / k as f64;
    let sxx: f64 = xs.iter().map(|x| (x - mean_x).powi(2)).sum();
    if sxx <= 0.0 {
        // Every point at one size: as good as one point.
        return Err(NoFit::OnePoint);
    }
    let sxy: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let b = sxy / sxx;
    let a = mean_y - b * mean_x;
    let ss_res: f64 = xs
        .iter()
        .zip(&ys)
        .map(|(x, y)| (y - (a + b * x)).powi(2))
        .sum();
    let ss_tot: f64 = ys.iter().map(|y| (y - mean_y).powi(2)).sum();
    // Rounding leaves a residual of ~1e-16 relative on an exact line.
    let scale = ys.iter().map(|y| y * y).sum::<f64>().max(f64::MIN_POSITIVE);
    let r2 = if ss_tot <= scale * 1e-24 {
        if ss_res <= scale * 1e-20 {
            1.0
        } else {
            0.0
        }
    } else {
        (1.0 - ss_res / ss_tot).clamp(0.0, 1.0)
    };
    let residual_se = (k > 2).then(|| (ss_res / (k - 2) as f64).sqrt());
    let x_span =
        xs.iter().copied().fold(f64::MIN, f64::max) - xs.iter().copied().fold(f64::MAX, f64::min);
    Ok(Fit {
        model,
        a,
        b,
        r2,
        points: k,
        residual_se,
        mean_x,
        sxx,
        x_span,
        y_max: ys.iter().map(|y| y.abs()).fold(0.0, f64::max),
    })
}

/// Both models; the better one (higher R², linear on a tie).
pub fn best_fit(points: &[(f64, f64)]) -> Result<Fit, NoFit> {
    let linear = fit_model(Model::Linear, points)?;
    let nlogn = fit_model(Model::NLogN, points)?;
    Ok(if nlogn.r2 > linear.r2 + 1e-12 {
        nlogn
    } else {
        linear
    })
}

impl Fit {
    pub fn value_at(&self, n: f64) -> f64 {
        self.a + self.b * self.model.x(n)
    }

    /// The fitted value at `n` with its 95% prediction interval, as the
    /// maths give them (negative if the line goes there).
    pub fn predict(&self, n: f64) -> Prediction {
        let x = self.model.x(n);
        let value = self.a + self.b * x;
        let half = self.residual_se.map(|s| {
            let k = self.points as f64;
            let t = t_975(self.points - 2);
            t * s * (1.0 + 1.0 / k + (x - self.mean_x).powi(2) / self.sxx).sqrt()
        });
        Prediction {
            n,
            value: Some(value),
            low: half.map(|h| value - h),
            high: half.map(|h| value + h),
            low_clamped: false,
            not_extrapolated: None,
        }
    }

    /// The prediction for a figure that cannot be negative (module docs):
    /// no value when the fit falls with size or reaches 0 or below at `n`
    /// (unless every measured value is 0: a figure that stays 0 is
    /// predicted 0); otherwise the interval's low end at 0 at least.
    pub fn predict_non_negative(&self, n: f64) -> Prediction {
        let mut p = self.predict(n);
        let value = p.value.unwrap_or_default();
        let refused = if self.falls() {
            Some(NoValue::FallsWithSize)
        } else if value <= 0.0 && self.y_max > 0.0 {
            Some(NoValue::NotPositive)
        } else {
            None
        };
        if refused.is_some() {
            return Prediction {
                n,
                value: None,
                low: None,
                high: None,
                low_clamped: false,
                not_extrapolated: refused,
            };
        }
        if let Some(lo) = p.low.filter(|lo| *lo < 0.0) {
            p.low = Some(lo.max(0.0));
            p.low_clamped = true;
        }
        p
    }

    /// Whether the fitted figure falls as the size grows, by more than
    /// rounding (a constant series can get a slope of ±1e-17).
    pub fn falls(&self) -> bool {
        self.b < 0.0 && -self.b * self.x_span > self.y_max * 1e-9
    }

    pub fn is_poor(&self) -> bool {
        self.r2 < POOR_R2
    }
}

/// Is `target` more than [`FAR_FACTOR`] times the largest measured size?
pub fn is_far(target: f64, largest: f64) -> bool {
    target > largest * FAR_FACTOR
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom (two-sided
/// 95%): the exact table to 30, then the Cornish–Fisher expansion around the
/// normal quantile (error below 1e-4 there).
pub fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    match df {
        0 => f64::INFINITY,
        1..=30 => TABLE[df - 1],
        _ => {
            let z: f64 = 1.959964;
            let v = df as f64;
            z + (z.powi(3) + z) / (4.0 * v)
                + (5.0 * z.powi(5) + 16.0 * z.powi(3) + 3.0 * z) / (96.0 * v * v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1.0)
    }

    #[test]
    fn an_exact_line_is_recovered() {
        let pts: Vec<(f64, f64)> = [1e3, 4e3, 16e3, 64e3]
            .iter()
            .map(|&n| (n, 5.0 + 0.25 * n))
            .collect();
        let f = best_fit(&pts).unwrap();
        assert_eq!(f.model, Model::Linear);
        assert!(close(f.a, 5.0, 1e-9), "{f:?}");
        assert!(close(f.b, 0.25, 1e-9), "{f:?}");
        assert!(close(f.r2, 1.0, 1e-12));
        let p = f.predict(1e6);
        assert!(close(p.value.unwrap(), 5.0 + 0.25e6, 1e-9));
        // No scatter: the interval collapses onto the value.
        assert!(close(p.low.unwrap(), p.value.unwrap(), 1e-6), "{p:?}");
    }

    #[test]
    fn n_log_n_is_recovered_and_preferred() {
        let pts: Vec<(f64, f64)> = [1e3_f64, 1e4, 1e5, 1e6]
            .iter()
            .map(|&n| (n, 2.0 + 0.01 * n * n.ln()))
            .collect();
        let f = best_fit(&pts).unwrap();
        assert_eq!(f.model, Model::NLogN);
        assert!(close(f.b, 0.01, 1e-9), "{f:?}");
        assert!(close(f.a, 2.0, 1e-6), "{f:?}");
        let lin = fit_model(Model::Linear, &pts).unwrap();
        assert!(lin.r2 < f.r2);
    }

    #[test]
    fn r2_is_the_share_of_variance_explained() {
        // y = x with one point off: hand-computed SSres / SStot.
        let pts = [(1.0, 1.0), (2.0, 2.0), (3.0, 4.0)];
        let f = fit_model(Model::Linear, &pts).unwrap();
        // b = 1.5, a = -2/3; residuals 1/6, -1/3, 1/6 -> SSres = 1/6;
        // mean 7/3, SStot = 14/3; R² = 1 - (1/6)/(14/3) = 1 - 1/28.
        assert!(close(f.b, 1.5, 1e-12));
        assert!(close(f.r2, 1.0 - 1.0 / 28.0, 1e-12), "{}", f.r2);
    }

    #[test]
    fn the_interval_narrows_with_more_points() {
        // The same noisy law sampled at 3 and at 8 sizes.
        let noise = [1.0, -1.0, 0.5, -0.5, 0.8, -0.8, 0.3, -0.3];
        let law = |i: usize, n: f64| 10.0 + 0.002 * n + noise[i] * 5.0;
        let three: Vec<(f64, f64)> = [1e3, 1e4, 1e5]
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, law(i, n)))
            .collect();
        let eight: Vec<(f64, f64)> = (0..8)
            .map(|i| {
                let n = 1e3 * 2f64.powi(i as i32 * 2);
                (n, law(i, n))
            })
            .collect();
        let w = |pts: &[(f64, f64)]| {
            let p = fit_model(Model::Linear, pts).unwrap().predict(1e7);
            p.high.unwrap() - p.low.unwrap()
        };
        assert!(w(&eight) < w(&three), "{} !< {}", w(&eight), w(&three));
    }

    #[test]
    fn two_points_fit_exactly_with_no_interval_and_one_point_does_not_fit() {
        let f = best_fit(&[(1e3, 10.0), (2e3, 30.0)]).unwrap();
        assert_eq!(f.model, Model::Linear, "a tie keeps linear");
        assert!(f.residual_se.is_none());
        let p = f.predict(1e4);
        assert!(close(p.value.unwrap(), 10.0 + 0.02 * 9e3, 1e-9));
        assert!(p.low.is_none() && p.high.is_none());
        assert_eq!(best_fit(&[(1e3, 10.0)]), Err(NoFit::OnePoint));
        assert_eq!(best_fit(&[(1e3, 10.0), (1e3, 12.0)]), Err(NoFit::OnePoint));
        assert_eq!(best_fit(&[]), Err(NoFit::NoPoints));
        assert_eq!(NoFit::OnePoint.to_string(), "no fit with one point");
    }

    #[test]
    fn a_poor_fit_is_flagged() {
        // Up, down, up: no line explains that.
        let pts = [(1e3, 10.0), (2e3, 50.0), (3e3, 5.0), (4e3, 60.0)];
        let f = best_fit(&pts).unwrap();
        assert!(f.is_poor(), "R² {}", f.r2);
        let good = best_fit(&[(1e3, 10.0), (2e3, 20.5), (3e3, 29.0), (4e3, 40.2)]).unwrap();
        assert!(!good.is_poor(), "R² {}", good.r2);
    }

    #[test]
    fn far_extrapolation_and_t_quantiles() {
        assert!(is_far(1e9, 1e6));
        assert!(!is_far(1e8, 1e6));
        assert_eq!(t_975(1), 12.706);
        assert_eq!(t_975(30), 2.042);
        assert!((t_975(60) - 2.0003).abs() < 1e-3, "{}", t_975(60));
        assert!((t_975(1000) - 1.9623).abs() < 1e-3);
        assert!(t_975(0).is_infinite());
    }

    #[test]
    fn constant_figures_fit_with_r2_one() {
        let f = best_fit(&[(1e3, 7.0), (1e4, 7.0), (1e5, 7.0)]).unwrap();
        assert!(close(f.r2, 1.0, 1e-12));
        assert!(close(f.predict(1e8).value.unwrap(), 7.0, 1e-9));
    }

    /// QA's repro: 3.01 s at 10k, 2.78 s at 20k (noise) extrapolated to
    /// 10M gave −221757 ms, printed as "about 0 ms".
    #[test]
    fn a_figure_that_falls_with_size_is_not_extrapolated() {
        let f = best_fit(&[(10e3, 3010.0), (20e3, 2780.0)]).unwrap();
        assert!(f.falls());
        let raw = f.predict(10e6);
        assert!(raw.value.unwrap() < -200_000.0, "{raw:?}");
        let p = f.predict_non_negative(10e6);
        assert_eq!(p.value, None);
        assert_eq!((p.low, p.high), (None, None));
        assert_eq!(p.not_extrapolated, Some(NoValue::FallsWithSize));
        assert_eq!(
            NoValue::FallsWithSize.to_string(),
            "falls with size in these runs (noise or too few sizes); not extrapolated"
        );
        // Even when the line is still above 0 at the target: the slope
        // itself is the noise.
        let p = f.predict_non_negative(21e3);
        assert_eq!(p.value, None, "{p:?}");
        let json = serde_json::to_value(&p).unwrap();
        assert!(json["value"].is_null(), "{json}");
        assert_eq!(json["not_extrapolated"], "falls_with_size");
    }

    #[test]
    fn a_value_at_or_below_zero_is_refused_but_a_series_of_zeros_is_zero() {
        // Rising, but a target below the sizes measured crosses 0.
        let f = best_fit(&[(10e3, 10.0), (20e3, 110.0), (30e3, 205.0)]).unwrap();
        assert!(!f.falls());
        let p = f.predict_non_negative(1e3);
        assert_eq!(p.value, None, "{p:?}");
        assert_eq!(p.not_extrapolated, Some(NoValue::NotPositive));
        // No app error at any size: 0 at the target is the answer.
        let zeros = best_fit(&[(1e3, 0.0), (2e3, 0.0), (4e3, 0.0)]).unwrap();
        let p = zeros.predict_non_negative(1e9);
        assert_eq!(p.value, Some(0.0), "{p:?}");
        assert_eq!(p.not_extrapolated, None);
        // A constant of a value that does not sum exactly (0.1 × 3) has a
        // rounding slope; it does not "fall".
        let flat = best_fit(&[(1e3, 0.1), (2e3, 0.1), (4e3, 0.1)]).unwrap();
        assert!(!flat.falls(), "{flat:?}");
        assert!(flat.predict_non_negative(1e9).value.is_some());
    }

    #[test]
    fn a_low_end_below_zero_is_clamped_and_said_so() {
        // Rising with much scatter: the interval reaches below 0.
        let pts = [(1e3, 5.0), (2e3, 60.0), (3e3, 20.0), (4e3, 80.0)];
        let f = fit_model(Model::Linear, &pts).unwrap();
        assert!(!f.falls());
        let raw = f.predict(5e3);
        assert!(raw.low.unwrap() < 0.0, "{raw:?}");
        let p = f.predict_non_negative(5e3);
        assert_eq!(p.low, Some(0.0));
        assert!(p.low_clamped);
        assert_eq!(p.high, raw.high);
        assert_eq!(p.value, raw.value);
        // A tight fit keeps its own low end.
        let tight = best_fit(&[(1e3, 10.0), (2e3, 20.5), (3e3, 29.0), (4e3, 40.2)]).unwrap();
        let p = tight.predict_non_negative(1e4);
        assert!(!p.low_clamped && p.low.unwrap() > 0.0, "{p:?}");
    }
}
