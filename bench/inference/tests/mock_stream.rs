//! The streaming client against the mock model server, both real, over loopback: every token
//! arrives as its own event, no earlier than the mock's schedule allows, in both APIs.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use covenant_bench_inference::{
    client::{Api, Client, Target},
    mock,
};

const TIMING: mock::Timing = mock::Timing {
    prefill_base: Duration::from_millis(30),
    prefill_per_token: Duration::from_millis(1),
    per_token: Duration::from_millis(4),
};

async fn mock_server() -> std::net::SocketAddr {
    let (addr, serving) = mock::bind(([127, 0, 0, 1], 0).into(), TIMING)
        .await
        .unwrap();
    tokio::spawn(serving);
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_is_an_event_sent_on_the_mocks_schedule() {
    let client = Client::new(Target::plain(mock_server().await));
    let prompt = "one two three four five six seven eight nine ten";
    for api in [Api::Completions, Api::Chat] {
        let out = client
            .stream(api, &api.body(mock::MODEL, prompt, 12))
            .await
            .unwrap();
        assert_eq!(out.output_tokens, 12, "{api:?}");
        assert_eq!(out.itl.len(), 11);
        // Lower bounds the mock guarantees (each token waits for its deadline, counted from the
        // request's arrival): the first after a prefill of 30 ms + 10 input tokens × 1 ms, the
        // last 11 × 4 ms after the first's deadline.
        assert!(out.ttft >= Duration::from_millis(40), "{:?}", out.ttft);
        assert!(out.e2el >= Duration::from_millis(84), "{:?}", out.e2el);
        let gaps: Duration = out.itl.iter().sum();
        assert!(gaps <= out.e2el - out.ttft);
        assert_eq!(out.tpot(), Some((out.e2el - out.ttft) / 11));
    }
    // Both requests went over one kept-alive connection.
    assert_eq!(client.opened(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_is_an_error_not_a_measurement() {
    let client = Client::new(Target::plain(mock_server().await));
    let err = client
        .stream(Api::Completions, &Api::Completions.body("m", "hi", 0))
        .await
        .unwrap_err();
    assert!(err.contains("400"), "{err}");
    // The refused request's connection is not reused.
    client
        .stream(Api::Chat, &Api::Chat.body("m", "hi", 1))
        .await
        .unwrap();
    assert_eq!(client.opened(), 2);
    // Nothing listens here: a connection error, reported.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = Client::new(Target::plain(closed))
        .stream(Api::Chat, &Api::Chat.body("m", "hi", 1))
        .await
        .unwrap_err();
    assert!(err.contains("connect"), "{err}");
}
