//! The A/B protocol: two arms (e.g. direct to the model server, and through Covenant) run the
//! same prompt set on the same schedule, interleaved — A B, then B A, and so on, so that a drift
//! of the machine weighs on both — for several repeats. Each metric is reported as each arm's
//! median over the repeats with its confidence interval, and as the paired difference B − A per
//! repeat (added milliseconds per request and per step, not only a percentage) with its own
//! interval.

use std::sync::Arc;

use crate::{
    client::{Api, Client},
    prompts::Prompt,
    run::{self, Report},
    schedule::Rate,
    stats::{self, Interval},
};

/// Runs `prompts` at `rate` through both clients, interleaved ([`order`]), `repeats` times, after
/// one unrecorded warm-up run of each (which opens the connections the schedule needs); calls
/// `each(repeat, arm, report)` after every recorded run. Fails on a run in which no stream
/// completed, or in which any stream failed (an arm that drops requests is not measured).
pub async fn interleave(
    clients: [&Arc<Client>; 2],
    api: Api,
    prompts: &[Prompt],
    rate: Rate,
    seed: u64,
    repeats: usize,
    mut each: impl FnMut(usize, usize, &Report),
) -> Result<[Vec<Report>; 2], String> {
    let mut reports: [Vec<Report>; 2] = [Vec::new(), Vec::new()];
    for r in 0..=repeats {
        for i in order(r) {
            let result = run::run(clients[i], api, prompts, rate, seed).await;
            let failed: Vec<&String> = result
                .outcomes
                .iter()
                .filter_map(|o| o.as_ref().err())
                .collect();
            if let Some(first) = failed.first() {
                return Err(format!(
                    "arm {} ({}): {} of {} requests failed, the first: {first}",
                    NAMES[i],
                    clients[i].target().addr(),
                    failed.len(),
                    result.outcomes.len()
                ));
            }
            let report = Report::of(&result)
                .ok_or_else(|| format!("arm {}: no request completed", NAMES[i]))?;
            if r > 0 {
                each(r - 1, i, &report);
                reports[i].push(report);
            }
        }
    }
    Ok(reports)
}

/// The arms' names in output.
pub const NAMES: [&str; 2] = ["A", "B"];

/// Which arm runs first in repeat `r` (0-based): A in even repeats, B in odd ones.
pub fn order(r: usize) -> [usize; 2] {
    if r.is_multiple_of(2) { [0, 1] } else { [1, 0] }
}

/// One metric across the repeats.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Compared {
    /// Arm A's per-repeat values: median and interval.
    pub a: Interval,
    /// Arm B's.
    pub b: Interval,
    /// B − A per repeat: median and interval.
    pub added: Interval,
    /// The median of B − A relative to A's median, in percent.
    pub added_percent: f64,
}

/// Compares per-repeat values `a[r]` and `b[r]` (same repeat, same length) at `level`.
pub fn compare(a: &[f64], b: &[f64], level: f64) -> Option<Compared> {
    if a.len() != b.len() {
        return None;
    }
    let diff: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let a = stats::median_interval(a, level)?;
    let added = stats::median_interval(&diff, level)?;
    Some(Compared {
        b: stats::median_interval(b, level)?,
        added_percent: 100.0 * added.median / a.median,
        a,
        added,
    })
}

/// Every metric of [`METRICS`] that both arms have, compared at `level`.
pub fn compare_all(reports: &[Vec<Report>; 2], level: f64) -> Vec<(&'static str, Compared)> {
    METRICS
        .iter()
        .filter_map(|(name, metric)| {
            let values = |i: usize| -> Option<Vec<f64>> { reports[i].iter().map(metric).collect() };
            Some((*name, compare(&values(0)?, &values(1)?, level)?))
        })
        .collect()
}

/// Reads one metric from a run's report (`None` when the run has no such value).
pub type Metric = fn(&Report) -> Option<f64>;

/// The metrics the comparison reports, by name, from one run's report.
pub const METRICS: &[(&str, Metric)] = &[
    ("TTFT mean ms", |r| Some(r.ttft_ms.mean)),
    ("TTFT p50 ms", |r| Some(r.ttft_ms.median)),
    ("TTFT p99 ms", |r| Some(r.ttft_ms.p99)),
    ("TPOT mean ms", |r| r.tpot_ms.map(|s| s.mean)),
    ("TPOT p50 ms", |r| r.tpot_ms.map(|s| s.median)),
    ("TPOT p99 ms", |r| r.tpot_ms.map(|s| s.p99)),
    ("ITL mean ms", |r| r.itl_ms.map(|s| s.mean)),
    ("ITL p50 ms", |r| r.itl_ms.map(|s| s.median)),
    ("ITL p99 ms", |r| r.itl_ms.map(|s| s.p99)),
    ("E2EL mean ms", |r| Some(r.e2el_ms.mean)),
    ("E2EL p50 ms", |r| Some(r.e2el_ms.median)),
    ("E2EL p99 ms", |r| Some(r.e2el_ms.p99)),
    ("requests/s", |r| Some(r.request_throughput)),
    ("output tokens/s", |r| Some(r.output_throughput)),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arms_alternate_which_goes_first() {
        assert_eq!(order(0), [0, 1]);
        assert_eq!(order(1), [1, 0]);
        assert_eq!(order(4), [0, 1]);
    }

    #[test]
    fn the_added_cost_is_the_paired_difference() {
        // Per repeat, B is A + 0.3 except one repeat with + 2.0: the median difference is 0.3
        // whatever the level of A (which drifts from 10 to 14), and its 9-repeat interval at
        // 90 % is x(2)..x(8) of the sorted differences.
        let a = [10.0, 10.5, 11.0, 11.5, 12.0, 12.5, 13.0, 13.5, 14.0];
        let mut b: Vec<f64> = a.iter().map(|x| x + 0.3).collect();
        b[4] = a[4] + 2.0;
        let c = compare(&a, &b, 0.90).unwrap();
        assert!((c.added.median - 0.3).abs() < 1e-9);
        assert!((c.added.low - 0.3).abs() < 1e-9 && (c.added.high - 0.3).abs() < 1e-9);
        assert!((c.a.median - 12.0).abs() < 1e-12);
        assert!((c.added_percent - 2.5).abs() < 1e-9);
        // Unpaired medians would say 0.3 too here, but not the spread: A's own interval is
        // x(2)..x(8) of A, 10.5..13.5.
        assert_eq!((c.a.low, c.a.high), (10.5, 13.5));
        assert!(compare(&a, &b[..8], 0.9).is_none());
    }
}
