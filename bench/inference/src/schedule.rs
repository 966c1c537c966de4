//! When each request is sent: a Poisson process at a request rate (exponential gaps, mean
//! `1 / rate`), reproducible from a seed, or every request at once (rate ∞), as in vLLM's serving
//! benchmark.

use std::time::Duration;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A request rate: requests per second, or all at once.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Rate {
    /// Poisson arrivals at this many requests per second (> 0).
    PerSecond(f64),
    /// Every request at time zero.
    Unbounded,
}

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if matches!(s, "inf" | "∞") {
            return Ok(Rate::Unbounded);
        }
        match s.parse::<f64>() {
            Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::PerSecond(r)),
            _ => Err(format!("a rate is a positive number or `inf`, not `{s}`")),
        }
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rate::PerSecond(r) => write!(f, "{r}"),
            Rate::Unbounded => f.write_str("inf"),
        }
    }
}

/// The gap before the next arrival of a Poisson process at `rate`, from a uniform draw `u` in
/// [0, 1): `−ln(1 − u) / rate` (inverse of the exponential distribution's CDF).
pub fn exponential_gap(u: f64, rate: f64) -> f64 {
    -(1.0 - u).ln() / rate
}

/// Send times of `n` requests from the start, non-decreasing; the same `seed` gives the same
/// schedule (ChaCha8, whose output is fixed by its specification).
pub fn arrivals(rate: Rate, n: usize, seed: u64) -> Vec<Duration> {
    let Rate::PerSecond(rate) = rate else {
        return vec![Duration::ZERO; n];
    };
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut at = 0.0f64;
    (0..n)
        .map(|_| {
            at += exponential_gap(rng.random::<f64>(), rate);
            Duration::from_secs_f64(at)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gap_inverts_the_exponential_cdf() {
        // Computed independently (Python `math.log`): −ln(1 − u) / rate.
        assert_eq!(exponential_gap(0.0, 4.0), 0.0);
        assert!((exponential_gap(0.5, 1.0) - std::f64::consts::LN_2).abs() < 1e-15);
        assert!((exponential_gap(0.9, 4.0) - 0.5756462732485115).abs() < 1e-15);
        assert!((exponential_gap(0.25, 16.0) - 0.017980129528236306).abs() < 1e-15);
    }

    #[test]
    fn a_seed_fixes_the_schedule_and_the_gaps_are_exponential() {
        let a = arrivals(Rate::PerSecond(4.0), 20_000, 7);
        assert_eq!(a, arrivals(Rate::PerSecond(4.0), 20_000, 7));
        assert_ne!(a, arrivals(Rate::PerSecond(4.0), 20_000, 8));
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        let mut gaps: Vec<f64> = std::iter::once(a[0].as_secs_f64())
            .chain(a.windows(2).map(|w| (w[1] - w[0]).as_secs_f64()))
            .collect();
        // Mean 1/4 s: the sample mean of 20,000 gaps lies within 4 standard errors
        // (σ/√n = 0.25/√20000 ≈ 0.0018).
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        assert!(
            (mean - 0.25).abs() < 4.0 * 0.25 / (gaps.len() as f64).sqrt(),
            "{mean}"
        );
        // Kolmogorov–Smirnov against the exponential CDF 1 − e^(−4x): D below the 0.1 %
        // critical value 1.95/√n.
        gaps.sort_by(f64::total_cmp);
        let n = gaps.len() as f64;
        let d = gaps
            .iter()
            .enumerate()
            .map(|(i, x)| {
                let cdf = 1.0 - (-4.0 * x).exp();
                (cdf - i as f64 / n)
                    .abs()
                    .max((((i + 1) as f64) / n - cdf).abs())
            })
            .fold(0.0, f64::max);
        assert!(d < 1.95 / n.sqrt(), "KS distance {d}");
    }

    #[test]
    fn unbounded_sends_everything_at_once_and_rates_parse() {
        assert_eq!(arrivals(Rate::Unbounded, 3, 1), vec![Duration::ZERO; 3]);
        assert_eq!("inf".parse::<Rate>(), Ok(Rate::Unbounded));
        assert_eq!("16".parse::<Rate>(), Ok(Rate::PerSecond(16.0)));
        assert!("0".parse::<Rate>().is_err() && "-1".parse::<Rate>().is_err());
        assert!("NaN".parse::<Rate>().is_err());
    }
}
