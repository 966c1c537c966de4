//! `covenant devnet demo`: the governance story on a running devnet, each step checked.
//!
//! 1. `covenant verify` of the demo app passes: every link of its chain of trust holds.
//! 2. An upgrade: a proposal allows version 2 (a new compose); it is shown decoded by the
//!    indexer while the vote is open, voted, queued and executed, and then shown *pending* in the
//!    app's status during its notice period; the clock moves past it.
//! 3. A version-2 instance boots and registers with the gateway; a second proposal removes
//!    version 1, and the gateway evicts the version-1 instance: the name is served by version 2
//!    alone, and `covenant verify` passes.
//! 4. A revocation: a third proposal removes version 2, and `covenant verify` fails, naming the
//!    broken link.
//!
//! The devnet ends with no allowed version of the demo app (`covenant devnet up --fresh` starts
//! over). The version-2 instance is this command's own and stops with it.

use std::{sync::Arc, time::Duration};

use alloy::{primitives::B256, sol_types::SolCall};
use covenant_chain::app::App;
use serde_json::{Value, json};

use super::{
    governance::{self, Proposal},
    process::Service,
    running,
    state::{Layout, Ports},
    up::{
        Binaries, add_compose_call, app_compose, app_host, boot, deployer_global, past_notice,
        repo_root, say,
    },
};
use crate::{
    context::{Chain, Indexer, Sender},
    error::{Context as _, Failure},
    gov::GovCommand,
    https,
    report::Report,
    verify::VerifyArgs,
};

/// How long a step may take to show (the indexer and the gateway act at finalized blocks).
const STEP: Duration = Duration::from_secs(90);

/// Retries `attempt` until it answers `Ok` or `STEP` passes; the last complaint otherwise.
async fn eventually<T, F, Fut>(what: &str, attempt: F) -> Result<T, Failure>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(Failure::new(format!(
                    "{what}: not within {} s ({e})",
                    STEP.as_secs()
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

fn show(report: &str) {
    crate::progress::done();
    #[allow(clippy::print_stderr)] // the story, for people
    {
        eprintln!("{}\n", indent(report));
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The compose hashes of the instances the gateway routes `host` to, from its
/// `/.well-known/covenant` (trusting the devnet's CA).
async fn routed(host: &str, port: u16, ca: &std::path::Path) -> Result<Vec<B256>, String> {
    let config = Arc::new(https::trusting(ca).map_err(|e| e.to_string())?);
    let answer = https::get(host, port, config, "/.well-known/covenant")
        .await
        .map_err(|e| e.to_string())?;
    let document: Value = serde_json::from_slice(&answer.body).map_err(|e| e.to_string())?;
    Ok(document["instances"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["bootInfo"]["composeHash"].as_str()?.parse().ok())
        .collect())
}

pub(crate) async fn run(layout: &Layout) -> Result<Report, Failure> {
    let saved = layout.load()?.ok_or_else(|| {
        Failure::new(format!("no devnet in {}", layout.dir.display()))
            .next("start one with scripts/devnet")
    })?;
    if running(layout).is_none() {
        return Err(
            Failure::new(format!("the devnet in {} is stopped", layout.dir.display()))
                .next("start it with scripts/devnet (or `covenant devnet up`)"),
        );
    }
    let root = repo_root()?;
    let bins = Binaries::find(&root)?;
    let p = saved.ports;
    let global = deployer_global(
        layout,
        &format!("http://127.0.0.1:{}", p.rpc),
        &format!("http://127.0.0.1:{}", p.indexer),
    )?;
    let chain = Chain::connect(&global).await?;
    let sender = Sender::from(&global)?;
    let app = saved.app.clone();
    let host = app_host(app.app);
    let url = format!("https://{host}:{}/", p.gateway);
    let parsed: url::Url = url.parse().doing("the demo app's URL")?;
    let ca = layout.path("gateway/dev-ca.pem");
    let verify = || {
        let args = VerifyArgs::new(parsed.clone(), Some(ca.clone()));
        crate::verify::run(&global, args)
    };
    let mut steps = Vec::new();

    say(format!("1/4  covenant verify {url}"));
    let before = verify().await?;
    show(&before.text);
    steps.push(json!({ "step": "verify", "verified": true }));

    // --- 2. the upgrade ----------------------------------------------------------------------
    say("2/4  an upgrade: a proposal to allow version 2 of the demo app");
    // Version 2 serves the same compose ports (the gateway routes a name by port) from a
    // loopback address of its own, so both versions' instances can run on this machine.
    let v2_ports = Ports { app: 0, ..p };
    let mut v2 = app_compose(
        layout,
        &bins,
        &v2_ports,
        &chain.deployment,
        ("hello", "app-v2", std::net::Ipv4Addr::new(127, 0, 0, 2)),
    )?;
    v2.app = app.app;
    let upgrade = Proposal {
        description: format!(
            "Upgrade the demo app {} to version 2 (compose hash {})",
            app.app, v2.compose_hash
        ),
        calls: vec![add_compose_call(&v2, &root, "test/apps/hello")],
    };
    let id = governance::propose(&chain, &sender, &upgrade, &mut |l| say(l)).await?;
    let shown = eventually("the proposal in the indexer", || async {
        crate::gov::run(&global, GovCommand::Show { id })
            .await
            .map_err(|e| e.to_string())
    })
    .await?;
    say("the proposal as voters see it (covenant gov show):");
    show(&shown.text);
    governance::carry(&chain, &sender, &upgrade, &mut |l| say(l)).await?;
    let pending = eventually("version 2 pending in the app's status", || async {
        let r = crate::app::status_report(&global, app.app)
            .await
            .map_err(|e| e.to_string())?;
        r.text
            .contains("pending")
            .then_some(r)
            .ok_or_else(|| "not pending yet".to_owned())
    })
    .await?;
    say("executed; version 2 is pending during its notice period (covenant app status):");
    show(&pending.text);
    past_notice(&chain, &Indexer::new(&global), app.app, v2.compose_hash).await?;
    say("moved the clock past the notice period: version 2 is allowed");

    // --- 3. a version-2 instance, the old version evicted -----------------------------------
    say("3/4  booting a version-2 instance; then a proposal removes version 1");
    let kms_url = format!("https://127.0.0.1:{}", p.kms);
    let gateway_api = format!("https://localhost:{}", p.gateway_api);
    let mut instance = boot(
        &bins,
        layout,
        &global.rpc_url,
        &kms_url,
        saved.finality,
        &v2,
        saved.os_image,
        "app-v2",
        Some(&gateway_api),
    )?;
    let story = async {
        instance
            .wait_until(
                "the version-2 instance routed by the gateway",
                STEP,
                || async {
                    let hashes = routed(&host, p.gateway, &ca).await?;
                    hashes
                        .contains(&v2.compose_hash)
                        .then_some(())
                        .ok_or_else(|| format!("routed: {hashes:?}"))
                },
            )
            .await?;
        say("the gateway routes the name to both versions' instances");
        let retire = Proposal {
            description: format!("Retire version 1 of the demo app {}", app.app),
            calls: vec![remove_call(app.app, app.compose_hash)],
        };
        governance::pass(&chain, &sender, &retire, &mut |l| say(l)).await?;
        eventually("the version-1 instance evicted", || async {
            let hashes = routed(&host, p.gateway, &ca).await?;
            (hashes == [v2.compose_hash])
                .then_some(())
                .ok_or_else(|| format!("routed: {hashes:?}"))
        })
        .await?;
        say("the gateway evicted the version-1 instance; covenant verify:");
        let after_upgrade = eventually("verify to pass on version 2", || async {
            verify().await.map_err(|e| e.to_string())
        })
        .await?;
        show(&after_upgrade.text);

        // --- 4. the revocation -----------------------------------------------------------------
        say("4/4  a revocation: a proposal removes version 2");
        let revoke = Proposal {
            description: format!("Revoke version 2 of the demo app {}", app.app),
            calls: vec![remove_call(app.app, v2.compose_hash)],
        };
        governance::pass(&chain, &sender, &revoke, &mut |l| say(l)).await?;
        let refused = eventually("verify to fail after the revocation", || async {
            match verify().await {
                Ok(_) => Err("still verified".to_owned()),
                Err(f) => Ok(f),
            }
        })
        .await?;
        say("covenant verify now fails:");
        show(&refused.to_string());
        Ok::<_, Failure>(refused.to_string())
    };
    let outcome = tokio::select! {
        r = story => r,
        _ = tokio::signal::ctrl_c() => Err(Failure::new("interrupted")),
    };
    stop(&mut instance).await;
    let refused = outcome?;
    steps
        .push(json!({ "step": "upgrade", "proposal": id.to_string(), "version": v2.compose_hash }));
    steps.push(json!({ "step": "evicted", "version": app.compose_hash }));
    steps.push(json!({ "step": "revoked", "version": v2.compose_hash, "verify": refused }));
    Ok(Report::new(
        "demo done: version 2 voted in and version 1 evicted, then version 2 revoked, and \
         `covenant verify` fails naming the broken link. The demo app has no allowed version \
         now: `covenant devnet up --fresh` starts over.",
        json!({ "steps": steps }),
    ))
}

fn remove_call(
    app: alloy::primitives::Address,
    hash: B256,
) -> (alloy::primitives::Address, alloy::primitives::Bytes) {
    (
        app,
        App::removeComposeHashCall { composeHash: hash }
            .abi_encode()
            .into(),
    )
}

async fn stop(instance: &mut Service) {
    instance.stop().await;
}
