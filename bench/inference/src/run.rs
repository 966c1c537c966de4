//! One run: the prompt set sent to one target on the schedule, every stream measured, and the
//! report in vLLM's serving-benchmark terms.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use crate::{
    client::{Api, Client, Outcome},
    prompts::Prompt,
    schedule::{self, Rate},
    stats::Summary,
};

/// A run's results.
#[derive(Debug)]
pub struct Run {
    /// One per request, in the set's order.
    pub outcomes: Vec<Result<Outcome, String>>,
    /// First send → last stream end.
    pub duration: Duration,
    /// Connections the client opened during the run.
    pub opened: usize,
}

/// Sends `prompts` through `client` at `rate` (arrivals from `seed`) and waits for every stream.
pub async fn run(client: &Arc<Client>, api: Api, prompts: &[Prompt], rate: Rate, seed: u64) -> Run {
    let at = schedule::arrivals(rate, prompts.len(), seed);
    let opened = client.opened();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(prompts.len());
    for (prompt, at) in prompts.iter().zip(at) {
        let body = Arc::new(api.body(crate::mock::MODEL, &prompt.text, prompt.output));
        tokio::time::sleep_until((start + at).into()).await;
        let client = client.clone();
        tasks.push(tokio::spawn(async move { client.stream(api, &body).await }));
    }
    let mut outcomes = Vec::with_capacity(tasks.len());
    for t in tasks {
        outcomes.push(
            t.await
                .unwrap_or_else(|e| Err(format!("request task: {e}"))),
        );
    }
    Run {
        outcomes,
        duration: start.elapsed(),
        opened: client.opened() - opened,
    }
}

/// vLLM's serving metrics of a run.
#[derive(Clone, Debug)]
pub struct Report {
    /// Streams that completed.
    pub completed: usize,
    /// Streams that failed.
    pub failed: usize,
    /// Connections opened during the run.
    pub opened: usize,
    /// Completed requests per second of the run.
    pub request_throughput: f64,
    /// Output tokens per second of the run.
    pub output_throughput: f64,
    /// Milliseconds.
    pub ttft_ms: Summary,
    /// Milliseconds (requests of more than one token).
    pub tpot_ms: Option<Summary>,
    /// Milliseconds, every gap of every request.
    pub itl_ms: Option<Summary>,
    /// Milliseconds.
    pub e2el_ms: Summary,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Report {
    /// One line: completions, failures, connections opened, throughput, TTFT and ITL medians.
    pub fn line(&self) -> String {
        format!(
            "{} ok, {} failed, {} connections opened, {:.2} req/s, TTFT p50 {:.2} ms, ITL p50 {:.3} ms",
            self.completed,
            self.failed,
            self.opened,
            self.request_throughput,
            self.ttft_ms.median,
            self.itl_ms.map_or(f64::NAN, |s| s.median),
        )
    }

    /// The report of `run`; `None` when no stream completed.
    pub fn of(run: &Run) -> Option<Self> {
        let ok: Vec<&Outcome> = run
            .outcomes
            .iter()
            .filter_map(|o| o.as_ref().ok())
            .collect();
        let secs = run.duration.as_secs_f64();
        let tokens: usize = ok.iter().map(|o| o.output_tokens).sum();
        let ttft: Vec<f64> = ok.iter().map(|o| ms(o.ttft)).collect();
        let tpot: Vec<f64> = ok.iter().filter_map(|o| o.tpot()).map(ms).collect();
        let itl: Vec<f64> = ok
            .iter()
            .flat_map(|o| o.itl.iter().copied().map(ms))
            .collect();
        let e2el: Vec<f64> = ok.iter().map(|o| ms(o.e2el)).collect();
        Some(Self {
            completed: ok.len(),
            failed: run.outcomes.len() - ok.len(),
            opened: run.opened,
            request_throughput: ok.len() as f64 / secs,
            output_throughput: tokens as f64 / secs,
            ttft_ms: Summary::of(&ttft)?,
            tpot_ms: Summary::of(&tpot),
            itl_ms: Summary::of(&itl),
            e2el_ms: Summary::of(&e2el)?,
        })
    }
}
