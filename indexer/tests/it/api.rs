//! Every endpoint, including its errors, and the OpenAPI document that describes them.

use std::collections::BTreeSet;

use sha2::Digest;

use covenant_testkit::postgres;
use serde_json::json;

use crate::{
    fixture::{Chain, Feed, Indexer},
    gateway_stub::GatewayStub,
    history::{self, h},
};
use covenant_testkit::dns::DnsServer;

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_answers_and_errors_are_clear() {
    let chain = Chain::start().await;
    let hist = Box::pin(history::script(&chain)).await;
    let (app1, app3) = (hist.apps[0], hist.apps[2]);
    // Claims whose DNS the explorer judges: app1.example.com (app1's, named by DNS), four (no
    // record), and three, claimed by app3 and app1 alike and named by DNS for both.
    let domains = covenant_chain::domain_registry::DomainRegistry::new(
        chain.deployment.contracts.domain_registry,
        &chain.provider,
    );
    for (name, app) in [("three.example.com", app1), ("four.example.com", app1)] {
        crate::send!(domains.claimDomain(name.into(), app).from(chain.account(1)));
    }
    let dns = DnsServer::start("example.com.").await;
    dns.add_txt("_covenant.app1.example.com.", &app1.to_string())
        .await;
    for app in [app3, app1] {
        dns.add_txt("_covenant.three.example.com.", &app.to_string())
            .await;
    }
    // What a gateway reports routing to app1: one instance whose boot the chain allows, and one
    // running a version it never allowed.
    let good = json!({
        "instanceId": format!("0x{}", "1d".repeat(20)), "composeHash": h(0xa2),
        "osImageHash": h(0x01),
        "osMeasurement": alloy::primitives::B256::from(<[u8; 32]>::from(sha2::Sha256::digest([0x31u8; 192]))),
        "deviceId": h(0xd2), "mrAggregated": h(0x11), "teeKind": 1, "tcbStatus": 1,
        "gpuEvidenceHash": h(0), "keyGeneration": 2, "evidenceDigest": h(0xe1),
        "hosts": ["app1.example.com"], "decidedAt": 7,
    });
    let mut rogue = good.clone();
    rogue["instanceId"] = json!(format!("0x{}", "2e".repeat(20)));
    rogue["composeHash"] = json!(h(0xee));
    let gateway = GatewayStub::start(json!({
        "block": { "number": 7, "hash": h(7) },
        "apps": [{ "app": app1, "instances": [good, rogue] }],
    }))
    .await;
    let head = chain.head().await;
    let db = postgres::database();
    let indexer = Indexer::start(
        &chain,
        &db,
        &[
            "--dns-server",
            &dns.addr.to_string(),
            "--gateway-api-url",
            &format!("https://127.0.0.1:{}", gateway.addr.port()),
        ],
    );
    let view = indexer.wait_finalized(head).await;
    assert_eq!(view["chainId"], chain.anvil.chain_id());
    assert_eq!(view["finalized"]["number"], head);
    assert_eq!(view["lagBlocks"], 0);
    assert!(view["finalized"]["timestamp"].as_u64().unwrap() > 0);

    // Successful reads (their contents are checked against the chain in `equivalence`).
    for path in [
        "/v1/head",
        "/v1/registry",
        "/v1/apps",
        "/v1/os-images",
        "/v1/kms-nodes",
        "/v1/domains",
        "/v1/domains/app1.example.com",
        "/v1/proposals",
        "/v1/grant-log",
        "/healthz",
    ] {
        let (status, body) = indexer.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    indexer.get_ok(&format!("/v1/apps/{}", hist.apps[0])).await;

    // What serves app1: DNS judged per claim, and the gateway's instances judged by the chain.
    let serving = indexer.get_ok(&format!("/v1/apps/{app1}/serving")).await;
    assert_eq!(serving["block"]["number"], head);
    let dns_of = |serving: &serde_json::Value| -> Vec<(String, String)> {
        serving["domains"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| {
                (
                    d["domain"].as_str().unwrap().to_owned(),
                    d["dns"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    let mut judged = dns_of(&serving);
    judged.sort();
    assert_eq!(
        judged,
        [
            ("app1.example.com", "proven"),
            ("four.example.com", "notNamed"),
            ("three.example.com", "ambiguous"),
        ]
        .map(|(d, s)| (d.to_owned(), s.to_owned()))
    );
    // app3 released app1.example.com: naming it there does not count against app1 (checked
    // above); on three, app1's claim makes app3's ambiguous too.
    let serving3 = indexer.get_ok(&format!("/v1/apps/{app3}/serving")).await;
    assert_eq!(
        dns_of(&serving3),
        [("three.example.com".to_owned(), "ambiguous".to_owned())]
    );
    let routed = &serving["gateway"];
    assert_eq!(routed["decidedAt"], 7, "{routed}");
    let verdicts: Vec<(String, serde_json::Value)> = routed["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["instanceId"].as_str().unwrap().to_owned(),
                i["allowed"].clone(),
            )
        })
        .collect();
    assert_eq!(
        verdicts,
        [
            (format!("0x{}", "1d".repeat(20)), json!(true)),
            (format!("0x{}", "2e".repeat(20)), json!(false)),
        ],
        "{routed}"
    );
    assert_eq!(routed["instances"][1]["reason"], "compose hash not allowed");
    // Another app: the gateway routes nothing to it.
    assert_eq!(serving3["gateway"]["instances"], json!([]));
    // Paging: the second app alone, and the total.
    let all = indexer.get_ok("/v1/apps").await;
    let page = indexer.get_ok("/v1/apps?offset=1&limit=1").await;
    assert_eq!(page["total"], all["total"]);
    assert_eq!(page["apps"].as_array().unwrap().len(), 1);
    assert_eq!(page["apps"][0], all["apps"][1]);
    indexer
        .get_ok(&format!("/v1/proposals/{}", hist.proposals[0]))
        .await;

    // Errors: status and a message that says what is wrong.
    let unknown_app = format!("/v1/apps/0x{}", "99".repeat(20));
    let cases: Vec<(String, u16, &str)> = vec![
        (unknown_app, 404, "no app 0x9999"),
        (
            "/v1/apps/0x1234".into(),
            400,
            "malformed address `0x1234`: expected 0x followed by 40 hex digits",
        ),
        ("/v1/apps/zz".into(), 400, "malformed address"),
        (
            "/v1/proposals/12ab".into(),
            400,
            "malformed proposal id `12ab`",
        ),
        ("/v1/proposals/123".into(), 404, "no proposal 123"),
        ("/v1/domains/Not_A_Domain".into(), 400, "malformed domain"),
        (
            "/v1/domains/nobody.example.com".into(),
            404,
            "is not claimed",
        ),
        ("/v1/grant-log?node=0x12".into(), 400, "malformed address"),
        ("/v1/grant-log?nodes=1".into(), 400, "unknown field `nodes`"),
        (
            "/v1/feed?after=yesterday".into(),
            400,
            "malformed position `yesterday`",
        ),
        ("/v1/nothing".into(), 404, "no such endpoint"),
        (
            "/v1/apps?limit=0".into(),
            400,
            "limit must be between 1 and 1000",
        ),
        ("/v1/apps?page=2".into(), 400, "unknown field `page`"),
    ];
    for (path, status, message) in cases {
        let (got, body) = indexer.get(&path).await;
        assert_eq!(got, status, "{path}: {body}");
        let error = body["error"].as_str().unwrap_or_default();
        assert!(
            error.contains(message),
            "{path}: `{error}` lacks `{message}`"
        );
    }
    let good_boot = json!({
        "appId": hist.apps[0], "composeHash": h(0xa2), "instanceId": format!("0x{}", "1d".repeat(20)),
        "deviceId": h(0xd2), "mrAggregated": h(0x11), "osImageHash": h(0x01),
        // What history.rs registered with image 0x01 on TDX: sha256 of 192 bytes of 0x31.
        "osMeasurement": alloy::primitives::B256::from(<[u8; 32]>::from(sha2::Sha256::digest([0x31u8; 192]))),
        "teeKind": "tdx", "tcbStatus": "upToDate", "keyGeneration": 2,
    });
    let (status, body) = indexer.post("/v1/policy/app", &good_boot).await;
    assert_eq!(
        (status, body["allowed"].clone(), body["decidedBy"].clone()),
        (200, json!(true), json!("mirror")),
        "{body}"
    );
    let (status, body) = indexer.post("/v1/policy/kms", &good_boot).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["reason"], "kms device not allowed");
    let mut bad_kind = good_boot.clone();
    bad_kind["teeKind"] = json!("sgx");
    let mut missing = good_boot.clone();
    missing.as_object_mut().unwrap().remove("composeHash");
    let mut short_hash = good_boot.clone();
    short_hash["composeHash"] = json!("0x1234");
    let mut extra = good_boot.clone();
    extra["admin"] = json!(true);
    for (body, message) in [
        (bad_kind, "unknown teeKind `sgx`"),
        (missing, "missing field `composeHash`"),
        (short_hash, "malformed BootInfo"),
        (extra, "unknown field `admin`"),
        (json!("not an object"), "malformed BootInfo"),
    ] {
        let (status, answer) = indexer.post("/v1/policy/app", &body).await;
        assert_eq!(status, 400, "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(message),
            "{answer} lacks {message}"
        );
    }

    // The explorer's pages: HTML at the same finalized block, with their security headers;
    // errors are pages too, with the API's status and message.
    let page = |path: String| {
        let url = format!("{}{path}", indexer.api);
        async move {
            let r = reqwest::get(&url).await.unwrap();
            let status = r.status().as_u16();
            let headers = r.headers().clone();
            (status, headers, r.text().await.unwrap())
        }
    };
    for path in [
        "/".to_owned(),
        "/apps".to_owned(),
        format!("/apps/{}", hist.apps[0]),
        format!("/proposals/{}", hist.proposals[0]),
        format!("/proposals/{}", hist.executed_proposal),
        "/kms".to_owned(),
    ] {
        let (status, headers, body) = page(path.clone()).await;
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(
            headers["content-type"], "text/html; charset=utf-8",
            "{path}"
        );
        let csp = headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
            "{path}: {csp}"
        );
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert!(
            body.contains(&format!(
                "Shown as of finalized block <strong data-block=\"{head}\">"
            )),
            "{path}: {body}"
        );
        assert!(
            body.starts_with("<!DOCTYPE html><html lang=\"en\">"),
            "{path}"
        );
    }
    // The app's page says the same as its JSON, and links it.
    let (_, _, body) = page(format!("/apps/{app1}")).await;
    for marker in [
        "data-domain=\"app1.example.com\" data-dns=\"proven\"".to_owned(),
        "data-domain=\"four.example.com\" data-dns=\"notNamed\"".to_owned(),
        format!(
            "data-instance=\"0x{}\" data-allowed=\"yes\"",
            "1d".repeat(20)
        ),
        format!(
            "data-instance=\"0x{}\" data-allowed=\"no\"",
            "2e".repeat(20)
        ),
        format!("href=\"/v1/apps/{}/serving\"", app1.to_checksum(None)),
    ] {
        assert!(body.contains(&marker), "the app's page lacks {marker}");
    }
    for (path, status, message) in [
        ("/apps/0x1234".to_owned(), 400, "malformed address `0x1234`"),
        (format!("/apps/0x{}", "99".repeat(20)), 404, "no app 0x9999"),
        ("/proposals/123".to_owned(), 404, "no proposal 123"),
        ("/apps?offset=x".to_owned(), 400, "offset"),
    ] {
        let (got, headers, body) = page(path.clone()).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(headers.contains_key("content-security-policy"), "{path}");
        assert!(
            body.contains("role=\"alert\"") && body.contains(message),
            "{path}: {body}"
        );
    }
    // The proof form: a paste is checked and answered; more than the limit is refused unread.
    let client = reqwest::Client::new();
    let proof = |body: String| {
        let request = client
            .post(format!("{}/kms/proof", indexer.api))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        async move {
            let r = request.send().await.unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        }
    };
    let (status, body) = proof("proof=%7B%22entry%22%3A1%7D".into()).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("data-verdict=\"refused\"") && body.contains("not an audit entry"),
        "{body}"
    );
    let (status, _) = proof(format!("proof={}", "a".repeat(70 * 1024))).await;
    assert_eq!(status, 413);

    // Metrics name what the issue asks for.
    let metrics = indexer.get("/metrics").await.1;
    let metrics = metrics.as_str().unwrap();
    for name in [
        "covenant_indexer_head_block",
        "covenant_indexer_finalized_block",
        "covenant_indexer_lag_blocks",
        "covenant_indexer_reorgs_total",
        "covenant_indexer_reorg_depth_blocks",
        "covenant_indexer_events_total",
        "covenant_indexer_rpc_errors_total",
    ] {
        assert!(
            metrics.contains(&format!("\n{name}")),
            "{name} missing from\n{metrics}"
        );
    }
    assert!(
        metrics.contains(&format!("covenant_indexer_finalized_block {head}")),
        "{metrics}"
    );

    // The OpenAPI document describes exactly the routes the server has.
    let doc = indexer.get_ok("/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let documented: BTreeSet<String> = doc["paths"].as_object().unwrap().keys().cloned().collect();
    let served: BTreeSet<String> = [
        "/healthz",
        "/metrics",
        "/openapi.json",
        "/v1/head",
        "/v1/registry",
        "/v1/apps",
        "/v1/apps/{address}",
        "/v1/apps/{address}/serving",
        "/v1/os-images",
        "/v1/kms-nodes",
        "/v1/domains",
        "/v1/domains/{domain}",
        "/v1/proposals",
        "/v1/proposals/{id}",
        "/v1/grant-log",
        "/v1/policy/app",
        "/v1/policy/kms",
        "/v1/feed",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(documented, served);
    // The document is generated from the response types: every field an answer carries is a
    // property of its documented schema, and every required property is there.
    for path in [
        "/v1/head",
        "/v1/registry",
        "/v1/apps",
        "/v1/os-images",
        "/v1/kms-nodes",
        "/v1/domains",
        "/v1/proposals",
        "/v1/grant-log",
    ] {
        let answer = indexer.get_ok(path).await;
        let schema_ref =
            doc["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
                ["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{path}: no 200 schema"));
        let schema = &doc["components"]["schemas"][schema_ref.rsplit('/').next().unwrap()];
        let properties: BTreeSet<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let fields: BTreeSet<&str> = answer
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(fields, properties, "{path}: answer vs schema {schema_ref}");
        for required in schema["required"].as_array().unwrap() {
            assert!(
                fields.contains(required.as_str().unwrap()),
                "{path}: {required} missing"
            );
        }
    }

    // The feed replays from a position and then marks the finalized block.
    let feed = Feed::subscribe(&indexer, Some("0")).await;
    feed.wait_for("a finalized marker", |n, _| n == "finalized")
        .await;
    let events = feed.snapshot();
    let kinds: BTreeSet<&str> = events
        .iter()
        .filter_map(|(_, v)| v["source"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["app", "domain_registry", "kms_registry"]
            .into_iter()
            .collect(),
        "policy events only"
    );
    let positions: Vec<(u64, u64)> = events
        .iter()
        .filter(|(n, _)| n != "finalized")
        .map(|(_, v)| {
            (
                v["block"].as_u64().unwrap(),
                v["logIndex"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "chain order");
    // Resuming after the last position gives nothing old.
    let (b, l) = *positions.last().unwrap();
    let resumed = Feed::subscribe(&indexer, Some(&format!("{b}-{l}"))).await;
    resumed
        .wait_for("the finalized marker", |n, _| n == "finalized")
        .await;
    assert!(
        resumed.snapshot().iter().all(|(n, _)| n == "finalized"),
        "{:?}",
        resumed.snapshot()
    );
}
