//! The explorer in a real headless Chromium (Debian's `chromium`, driven through `chromedriver`)
//! against a running devnet, while governance acts on it: a proposal to allow version 2 of the
//! demo app appears (without a reload) and decoded into a plain call with its provenance, its
//! countdown advances, a vote changes the tally once final (still without a reload), the
//! executed upgrade shows in the app's history as made by that proposal, the instance the gateway
//! routes to the app is listed and judged allowed, and a grant's inclusion
//! proof served by the KMS node checks in the page while a tampered one is refused. A hostile
//! description is shown as text, never run. On failure, a screenshot of each page is kept in
//! `target/test-artifacts/explorer/`.

use std::{collections::BTreeMap, path::PathBuf, process::Command, time::Duration};

use covenant_e2e::read_env_file;
use covenant_testkit::{Process, Signal, tools, wait_for};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use serde_json::{Value, json};

/// How long a step may take to show (finality, the page's refresh, a CLI call).
const STEP: Duration = Duration::from_secs(60);

/// A headless Chromium session through ChromeDriver (its own process group, stopped on drop).
struct Browser {
    client: Client,
    _driver: Process,
    _profile: tempfile::TempDir,
}

impl Browser {
    async fn start() -> Self {
        let profile = tempfile::tempdir().unwrap();
        let mut command = Command::new("chromedriver");
        command.arg("--port=0");
        let driver = Process::spawn("chromedriver", command, Signal::SIGTERM).unwrap();
        let line = driver
            .wait_for_line("chromedriver's port", Duration::from_secs(30), |l| {
                l.contains("started successfully on port")
            })
            .unwrap();
        let port: u16 = line
            .rsplit("port ")
            .next()
            .unwrap()
            .trim()
            .trim_end_matches('.')
            .parse()
            .unwrap();
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,2400",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap();
        Self {
            client,
            _driver: driver,
            _profile: profile,
        }
    }

    async fn text(&self, css: &str) -> Result<String, String> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("{css}: {e}"))?;
        element.text().await.map_err(|e| format!("{css}: {e}"))
    }

    async fn attr(&self, css: &str, name: &str) -> Result<Option<String>, String> {
        let element = self
            .client
            .find(Locator::Css(css))
            .await
            .map_err(|e| format!("{css}: {e}"))?;
        element.attr(name).await.map_err(|e| format!("{css}: {e}"))
    }

    async fn script(&self, source: &str, args: Vec<Value>) -> Value {
        self.client.execute(source, args).await.unwrap()
    }

    /// Waits until `probe` answers `Ok` (the page refreshes itself; nothing here reloads it).
    async fn until<T, F, Fut>(&self, what: &str, probe: F) -> T
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, String>>,
    {
        wait_for(what.to_owned())
            .timeout(STEP)
            .until_ok_async(probe)
            .await
            .unwrap()
    }

    /// A screenshot of each page, for a failed run.
    async fn keep_screenshots(&self, pages: &[(String, String)]) -> PathBuf {
        let dir = tools::repo_root().join("target/test-artifacts/explorer");
        std::fs::create_dir_all(&dir).unwrap();
        if let Ok(png) = self.client.screenshot().await {
            let _ = std::fs::write(dir.join("00-at-failure.png"), png);
        }
        for (i, (name, url)) in pages.iter().enumerate() {
            if self.client.goto(url).await.is_ok()
                && let Ok(png) = self.client.screenshot().await
            {
                let _ = std::fs::write(dir.join(format!("{:02}-{name}.png", i + 1)), png);
            }
        }
        dir
    }
}

/// `covenant --json <args>` with the devnet's environment; its JSON, or its complaint.
fn covenant(env: &BTreeMap<String, String>, args: &[&str]) -> Result<Value, String> {
    let out = Command::new(tools::workspace_bin("covenant").unwrap())
        .current_dir(tools::repo_root())
        .envs(env.iter())
        // The devnet's deployer holds the votes.
        .env("COVENANT_PRIVATE_KEY", &env["COVENANT_DEPLOYER_KEY"])
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    if out.status.success() {
        serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Moves anvil's clock by `seconds` and mines a block.
fn advance(env: &BTreeMap<String, String>, seconds: u64) {
    let cast = tools::foundry_bin("cast").unwrap();
    let rpc = &env["COVENANT_RPC_URL"];
    for args in [
        vec![
            "rpc",
            "--rpc-url",
            rpc,
            "evm_increaseTime",
            &seconds.to_string(),
        ],
        vec!["rpc", "--rpc-url", rpc, "evm_mine"],
    ] {
        let out = Command::new(&cast).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn explorer_follows_an_upgrade_from_proposal_to_the_apps_history() {
    let state = tempfile::tempdir().unwrap();
    let devnet = Process::spawn(
        "devnet",
        super::devnet::devnet_up(state.path()),
        Signal::SIGINT,
    )
    .unwrap();
    devnet
        .wait_for_line("readiness", Duration::from_secs(240), |line| {
            line.starts_with("devnet ready")
        })
        .unwrap();
    let env = read_env_file(&state.path().join("env")).unwrap();
    let indexer = env["COVENANT_INDEXER_URL"].trim_end_matches('/').to_owned();
    let app = env["COVENANT_APP_ID"].clone();
    let browser = Browser::start().await;
    let mut pages = vec![
        ("proposals".to_owned(), format!("{indexer}/")),
        ("app".to_owned(), format!("{indexer}/apps/{app}")),
        ("kms".to_owned(), format!("{indexer}/kms")),
    ];
    let outcome = std::panic::AssertUnwindSafe(story(&browser, &env, &indexer, &app, &mut pages))
        .catch_unwind()
        .await;
    if let Err(panic) = outcome {
        let dir = browser.keep_screenshots(&pages).await;
        eprintln!("explorer test failed: screenshots in {}", dir.display());
        eprintln!("devnet log:\n{}", devnet.log_tail(30));
        std::panic::resume_unwind(panic);
    }
    let _ = browser.client.close().await;
    devnet.stop();
}

async fn story(
    browser: &Browser,
    env: &BTreeMap<String, String>,
    indexer: &str,
    app: &str,
    pages: &mut Vec<(String, String)>,
) {
    let b = browser;
    // The list is open before the proposal exists: it must appear without a reload.
    b.client.goto(&format!("{indexer}/")).await.unwrap();
    b.script("window.__loaded = 'once'", vec![]).await;
    // Keyboard: the first Tab reaches the skip link.
    b.client
        .find(Locator::Css("body"))
        .await
        .unwrap()
        .send_keys("\u{E004}")
        .await
        .unwrap();
    let focused = b
        .script("return document.activeElement.className", vec![])
        .await;
    assert_eq!(
        focused,
        json!("skip"),
        "Tab does not reach the skip link first"
    );

    // --- the proposal: version 2 of the demo app ---------------------------------------------
    let version = format!("0x{}", "5e".repeat(32));
    let digest = format!("0x{}", "d1".repeat(32));
    let description = "Upgrade the demo app to version 2\n\n\
        <img src=x onerror=\"window.__pwned=1\"><script>window.__pwned=2</script>";
    let proposed = covenant(
        env,
        &[
            "gov",
            "propose",
            "--description",
            description,
            "add-compose-hash",
            "--app",
            app,
            "--hash",
            &version,
            "--source-url",
            "https://example.invalid/hello",
            "--commit",
            "0123abc",
            "--digest",
            &digest,
        ],
    )
    .unwrap();
    let id = proposed["id"].as_str().unwrap().to_owned();
    pages.push(("proposal".into(), format!("{indexer}/proposals/{id}")));
    let row = format!("tr[data-proposal=\"{id}\"]");
    b.until("the proposal listed as open, without a reload", || async {
        let text = b.text(&format!("#open-proposals {row}")).await?;
        text.contains("Upgrade the demo app to version 2")
            .then_some(())
            .ok_or(text)
    })
    .await;
    assert_eq!(
        b.script("return window.__loaded", vec![]).await,
        json!("once")
    );
    b.client
        .find(Locator::Css(&format!("{row} a")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();

    // Decoded into a plain call with its provenance.
    let call = b
        .until("the proposal's page", || async { b.text("li.call").await })
        .await;
    for shown in [
        "Allow a new version of app",
        app,
        &version,
        "https://example.invalid/hello",
        "0123abc",
        &digest,
        "after execution (the app's notice period)",
    ] {
        assert!(call.contains(shown), "`{shown}` not in the call:\n{call}");
    }
    // The hostile description is text.
    let shown = b.text("pre.description").await.unwrap();
    assert!(shown.contains("<img src=x onerror="), "{shown}");
    let pwned = b
        .script(
            "return [window.__pwned === undefined, document.querySelectorAll('pre.description *').length]",
            vec![],
        )
        .await;
    assert_eq!(pwned, json!([true, 0]), "the description was run as HTML");

    // The countdown advances on its own.
    let first = b.text("#summary-section .countdown").await.unwrap();
    b.until("the countdown to advance", || async {
        let now = b.text("#summary-section .countdown").await?;
        (now != first).then_some(()).ok_or(now)
    })
    .await;

    // --- a vote changes the tally once final, without a reload --------------------------------
    assert_eq!(b.text("[data-tally=for]").await.unwrap(), "0");
    b.script("window.__marker = 42", vec![]).await;
    wait_for("the vote to be accepted (voting opens after the delay)")
        .timeout(STEP)
        .until_ok(|| covenant(env, &["gov", "vote", &id, "for"]))
        .unwrap();
    let tally = b
        .until("the tally to count the vote", || async {
            let t = b.text("[data-tally=for]").await?;
            (t != "0").then_some(t.clone()).ok_or(t)
        })
        .await;
    assert!(tally.ends_with(",000"), "whole tokens: {tally}");
    assert_eq!(
        b.script("return window.__marker", vec![]).await,
        json!(42),
        "the page was reloaded rather than refreshed in place"
    );
    let quorum = b.text("[data-tally=quorum]").await.unwrap();
    assert!(quorum.ends_with("reached"), "{quorum}");

    // --- queued, executed: the page follows ---------------------------------------------------
    let proposal = api_json(&format!("{indexer}/v1/proposals/{id}"));
    let voting_left =
        proposal["voteEnd"].as_u64().unwrap() - proposal["timestamp"].as_u64().unwrap();
    advance(env, voting_left + 2);
    wait_for("the proposal to be queued")
        .timeout(STEP)
        .until_ok(|| covenant(env, &["gov", "queue", &id]))
        .unwrap();
    b.until("the page to show it queued", || async {
        let s = b
            .attr("[data-state]", "data-state")
            .await?
            .unwrap_or_default();
        (s == "queued").then_some(()).ok_or(s)
    })
    .await;
    wait_for("the proposal to be executed")
        .timeout(STEP)
        .until_ok(|| {
            advance(env, 30);
            covenant(env, &["gov", "execute", &id])
        })
        .unwrap();
    b.until("the page to show it executed", || async {
        let s = b
            .attr("[data-state]", "data-state")
            .await?
            .unwrap_or_default();
        (s == "executed").then_some(()).ok_or(s)
    })
    .await;

    // --- the app's history names the proposal -------------------------------------------------
    b.client
        .find(Locator::Css(&format!("li.call a[href=\"/apps/{app}\"]")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let history = format!("#history-section tr[data-compose-hash=\"{version}\"]");
    let added = b
        .until("the app's page", || async { b.text(&history).await })
        .await;
    assert!(added.contains("by proposal"), "{added}");
    let by = b
        .attr(&format!("{history} a[data-proposal]"), "data-proposal")
        .await
        .unwrap();
    assert_eq!(by.as_deref(), Some(id.as_str()));
    // Pending during its notice period, or already in effect; either way listed with its
    // provenance.
    let listed = b
        .text(&format!("li[data-compose-hash=\"{version}\"]"))
        .await
        .unwrap();
    assert!(
        listed.contains("takes effect") || listed.contains("in effect since"),
        "{listed}"
    );
    assert!(listed.contains("https://example.invalid/hello"), "{listed}");

    // --- the instance the gateway routes to the app, judged by the chain ----------------------
    let out = Command::new("curl")
        .args([
            "-sfk",
            &format!("{}/v1/instances", env["COVENANT_GATEWAY_API_URL"]),
        ])
        .output()
        .unwrap();
    let table: Value = serde_json::from_slice(&out.stdout).unwrap();
    let routed = table["apps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["app"].as_str().unwrap().eq_ignore_ascii_case(app))
        .unwrap_or_else(|| panic!("the gateway routes nothing to {app}: {table}"));
    let instance = routed["instances"][0]["instanceId"].as_str().unwrap();
    let allowed = b
        .until("the routed instance on the app's page", || async {
            b.attr(
                &format!("#routed-section tr[data-instance=\"{instance}\"]"),
                "data-allowed",
            )
            .await?
            .ok_or_else(|| "not listed".to_owned())
        })
        .await;
    assert_eq!(allowed, "yes");

    // --- a grant's inclusion proof, checked in the page ---------------------------------------
    let proven = wait_for("the KMS's first audit entry to be committed")
        .timeout(STEP)
        .until_ok(|| covenant(env, &["kms", "proof", "1"]))
        .unwrap();
    let served = proven["served"].clone();
    b.client.goto(&format!("{indexer}/kms")).await.unwrap();
    let check = |pasted: String| async move {
        // The last verdict goes, so the one waited for is this paste's.
        b.script(
            "document.getElementById('proof-result')?.remove(); \
             document.getElementById('proof-input').value = arguments[0]",
            vec![json!(pasted)],
        )
        .await;
        b.client
            .find(Locator::Css("form button[type=submit]"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let verdict = b
            .until("the proof's verdict", || async {
                b.attr("#proof-result", "data-verdict")
                    .await?
                    .ok_or_else(|| "no verdict".to_owned())
            })
            .await;
        (verdict, b.text("#proof-result").await.unwrap())
    };
    let (verdict, text) = check(serde_json::to_string_pretty(&served).unwrap()).await;
    assert_eq!(verdict, "proven", "{text}");
    assert!(text.contains("Entry 1 of node"), "{text}");
    let mut tampered = served.clone();
    tampered["entry"]["granted"] = json!(!served["entry"]["granted"].as_bool().unwrap());
    let (verdict, text) = check(tampered.to_string()).await;
    assert_eq!(verdict, "refused", "{text}");
    assert!(text.contains("not the encoding of the entry"), "{text}");
}

/// `GET url` as JSON (the indexer's API, plain HTTP on loopback).
fn api_json(url: &str) -> Value {
    let out = Command::new("curl").args(["-sf", url]).output().unwrap();
    assert!(out.status.success(), "GET {url} failed");
    serde_json::from_slice(&out.stdout).unwrap()
}
