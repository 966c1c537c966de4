//! Summary statistics in vLLM's serving-benchmark conventions, and the confidence intervals the
//! A/B protocol reports.
//!
//! - Percentiles interpolate linearly between order statistics (numpy's default `linear` method,
//!   which vLLM's benchmark uses): the p-th percentile of `n` sorted values sits at rank
//!   `p / 100 · (n − 1)`.
//! - The median's confidence interval is distribution-free: the order statistics
//!   `x(l) ≤ median ≤ x(n + 1 − l)` cover the true median with probability
//!   `1 − 2 · P(Binomial(n, ½) < l)`; [`median_interval`] picks the narrowest interval whose
//!   coverage is at least the level asked for (or, with too few samples, the widest there is,
//!   and says what it covers).

/// Mean, median, 99th percentile and standard deviation of a sample (vLLM prints these for
/// TTFT, TPOT, ITL and E2EL).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Summary {
    /// Number of values.
    pub n: usize,
    /// Arithmetic mean.
    pub mean: f64,
    /// 50th percentile.
    pub median: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Population standard deviation (numpy's default, `ddof = 0`).
    pub std: f64,
}

impl Summary {
    /// The summary of `values`; `None` when there are none or one is not a number.
    pub fn of(values: &[f64]) -> Option<Self> {
        let sorted = sorted(values)?;
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        let var = sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n as f64;
        Some(Self {
            n,
            mean,
            median: percentile_sorted(&sorted, 50.0),
            p99: percentile_sorted(&sorted, 99.0),
            std: var.sqrt(),
        })
    }
}

/// `values` sorted ascending; `None` when empty or when one is NaN.
pub fn sorted(values: &[f64]) -> Option<Vec<f64>> {
    if values.is_empty() || values.iter().any(|v| v.is_nan()) {
        return None;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    Some(v)
}

/// The `p`-th percentile (0–100) of `values`, linear between order statistics.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    Some(percentile_sorted(&sorted(values)?, p))
}

/// [`percentile`] of values already sorted ascending (not empty).
pub fn percentile_sorted(sorted: &[f64], p: f64) -> f64 {
    let p = p.clamp(0.0, 100.0);
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (lo, hi) = (rank.floor() as usize, rank.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

/// A confidence interval for a median.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Interval {
    /// The sample median.
    pub median: f64,
    /// Lower bound (an order statistic).
    pub low: f64,
    /// Upper bound (an order statistic).
    pub high: f64,
    /// The probability that such an interval covers the true median (exact, not the level
    /// asked for: order statistics give only some levels).
    pub coverage: f64,
}

/// `P(Binomial(n, ½) ≤ k)`.
fn binomial_half_cdf(n: usize, k: usize) -> f64 {
    // Sum of C(n, i) / 2^n, with the binomial coefficients built in floating point as ratios so
    // that large n neither overflows nor underflows early.
    let mut term = 0.5f64.powi(n as i32); // C(n, 0) / 2^n
    let mut sum = term;
    for i in 1..=k.min(n) {
        term *= (n + 1 - i) as f64 / i as f64;
        sum += term;
    }
    sum.min(1.0)
}

/// The median of `values` and the distribution-free interval around it that covers the true
/// median with probability at least `level` (e.g. 0.95); with fewer values than that needs,
/// the interval from the smallest to the largest value and the coverage it has.
pub fn median_interval(values: &[f64], level: f64) -> Option<Interval> {
    let sorted = sorted(values)?;
    let n = sorted.len();
    // The largest l (1-based) with coverage 1 − 2·P(B ≤ l − 1) ≥ level; l = 1 at the least.
    let mut l = 1;
    while l < n.div_ceil(2) && 1.0 - 2.0 * binomial_half_cdf(n, l) >= level {
        l += 1;
    }
    let coverage = 1.0 - 2.0 * binomial_half_cdf(n, l - 1);
    Some(Interval {
        median: percentile_sorted(&sorted, 50.0),
        low: sorted[l - 1],
        high: sorted[n - l],
        coverage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * b.abs().max(1.0)
    }

    // Expected values below were computed independently in Python (plain lists; numpy's
    // "linear" percentile rule written out, `math.comb` for the binomial sums), not with this
    // code.

    #[test]
    fn percentiles_interpolate_between_order_statistics() {
        let v = [15.0, 20.0, 35.0, 40.0, 50.0];
        assert_eq!(percentile(&v, 0.0), Some(15.0));
        assert_eq!(percentile(&v, 100.0), Some(50.0));
        assert_eq!(percentile(&v, 50.0), Some(35.0));
        assert!(close(percentile(&v, 40.0).unwrap(), 29.0));
        assert!(close(percentile(&v, 99.0).unwrap(), 49.6));
        // Order does not matter; an even count interpolates the median.
        let w = [4.0, 1.0, 3.0, 2.0];
        assert!(close(percentile(&w, 50.0).unwrap(), 2.5));
        assert!(close(percentile(&w, 99.0).unwrap(), 3.97));
        assert_eq!(percentile(&[], 50.0), None);
        assert_eq!(percentile(&[1.0, f64::NAN], 50.0), None);
    }

    #[test]
    fn a_summary_has_vllms_fields() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Summary::of(&v).unwrap();
        assert_eq!(s.n, 100);
        assert!(close(s.mean, 50.5));
        assert!(close(s.median, 50.5));
        assert!(close(s.p99, 99.01));
        assert!(close(s.std, 28.86607004772212));
    }

    #[test]
    fn the_binomial_sums_match_exact_values() {
        assert!(close(binomial_half_cdf(5, 0), 0.03125));
        assert!(close(binomial_half_cdf(10, 1), 0.0107421875));
        assert!(close(binomial_half_cdf(20, 5), 0.020694732666015625));
        assert!(close(binomial_half_cdf(7, 7), 1.0));
    }

    #[test]
    fn the_median_interval_is_the_narrowest_with_the_coverage_asked_for() {
        // n = 20: x(6)..x(15) covers with 1 − 2·P(B ≤ 5) = 0.958610..., the narrowest ≥ 95 %
        // (x(7)..x(14) covers 0.884682...).
        let v: Vec<f64> = (1..=20).map(|i| f64::from(i) * 10.0).collect();
        let ci = median_interval(&v, 0.95).unwrap();
        assert_eq!((ci.low, ci.high), (60.0, 150.0));
        assert!(close(ci.coverage, 0.958610534667969));
        assert!(close(ci.median, 105.0));
        // n = 5 cannot reach 95 %: min..max, covering 1 − 2/32 = 0.9375.
        let ci = median_interval(&[5.0, 1.0, 4.0, 2.0, 3.0], 0.95).unwrap();
        assert_eq!((ci.low, ci.high, ci.median), (1.0, 5.0, 3.0));
        assert!(close(ci.coverage, 0.9375));
        // n = 9 at 90 %: x(2)..x(8) covers 0.9609375 (x(3)..x(7) only 0.8203125).
        let v: Vec<f64> = (1..=9).map(f64::from).collect();
        let ci = median_interval(&v, 0.90).unwrap();
        assert_eq!((ci.low, ci.high), (2.0, 8.0));
        assert!(close(ci.coverage, 0.9609375));
    }
}
