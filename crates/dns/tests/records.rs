//! Reading `_covenant.<domain>` from a real DNS server in the test process.

#![allow(clippy::unwrap_used)]

use alloy::primitives::Address;
use covenant_dns::{Records, lookup_apps, resolver};
use covenant_testkit::dns::DnsServer;

#[tokio::test]
async fn the_record_names_apps_and_answers_are_kept() {
    let dns = DnsServer::start("example.test.").await;
    let (a, b) = (Address::repeat_byte(0xa1), Address::repeat_byte(0xb2));
    dns.add_txt("_covenant.shop.example.test.", &a.to_string())
        .await;
    dns.add_txt("_covenant.shop.example.test.", "v=spf1 -all")
        .await;

    let fresh = resolver(Some(dns.addr)).unwrap();
    assert_eq!(lookup_apps(&fresh, "shop.example.test").await, Ok(vec![a]));
    // No such name, no such record: nothing named (not a failure).
    assert_eq!(lookup_apps(&fresh, "none.example.test").await, Ok(vec![]));

    let records = Records::new(Some(dns.addr)).unwrap();
    assert_eq!(records.apps("shop.example.test").await, Ok(vec![a]));
    // A change is seen by a new resolver at once, and through `Records` only once its answer
    // expires: page views and requests cannot turn into DNS traffic.
    dns.add_txt("_covenant.shop.example.test.", &b.to_string())
        .await;
    let mut both = vec![a, b];
    both.sort();
    let fresh = resolver(Some(dns.addr)).unwrap();
    assert_eq!(lookup_apps(&fresh, "shop.example.test").await, Ok(both));
    assert_eq!(records.apps("shop.example.test").await, Ok(vec![a]));
}

#[tokio::test]
async fn a_server_that_does_not_answer_is_an_error_not_an_empty_record() {
    // A port nothing listens on.
    let gone = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let records = Records::new(Some(gone)).unwrap();
    let answer = records.apps("shop.example.test").await;
    assert!(answer.is_err(), "{answer:?}");
}
