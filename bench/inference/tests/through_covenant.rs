//! The benchmark's "through Covenant" arm on the real stack: the mock model booted by the guest
//! agent on the simulated TEE, routed by the gateway. Tokens must arrive through the gateway and
//! the RA-TLS hop as the model sends them (a proxy that buffered the stream would deliver them
//! together at the end), and the A/B protocol's warm-up must leave the recorded runs on
//! kept-alive connections.
#![allow(clippy::unwrap_used)]

use std::{sync::Arc, time::Duration};

use covenant_bench_inference::{
    ab,
    client::{Api, Client},
    covenant::Arms,
    mock::{self, Timing},
    prompts::{self, Bucket},
    schedule::Rate,
};

const TIMING: Timing = Timing {
    prefill_base: Duration::from_millis(30),
    prefill_per_token: Duration::ZERO,
    per_token: Duration::from_millis(40),
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_stream_through_the_gateway_as_the_model_sends_them() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let arms = Arms::start(TIMING).await.unwrap();
    let direct = Arc::new(Client::new(arms.direct.clone()));
    let through = Arc::new(Client::new(arms.through.clone()));
    for api in [Api::Completions, Api::Chat] {
        let out = through
            .stream(api, &api.body(mock::MODEL, "a b c", 6))
            .await
            .unwrap();
        assert_eq!(out.output_tokens, 6, "{api:?}");
        assert!(out.ttft >= TIMING.prefill_base, "{:?}", out.ttft);
        // Each token left the model 40 ms after the one before; through an unbuffered path each
        // arrives about then (a buffering proxy makes these gaps ~0).
        for gap in &out.itl {
            assert!(*gap >= Duration::from_millis(25), "{api:?}: {:?}", out.itl);
        }
    }
    // Both streams went over one kept-alive TLS connection.
    assert_eq!(through.opened(), 1);

    let set = prompts::generate(Bucket::Short, 4, 7);
    let reports = ab::interleave(
        [&direct, &through],
        Api::Completions,
        &set,
        Rate::Unbounded,
        7,
        2,
        |_, _, _| {},
    )
    .await
    .unwrap();
    for (arm, runs) in reports.iter().enumerate() {
        assert_eq!(runs.len(), 2);
        for run in runs {
            assert_eq!((run.completed, run.failed), (4, 0), "arm {arm}");
            // The warm-up opened the connections four concurrent requests need.
            assert_eq!(run.opened, 0, "arm {arm}");
        }
    }
    assert!(through.opened() <= 4 + 1, "{}", through.opened());
}
