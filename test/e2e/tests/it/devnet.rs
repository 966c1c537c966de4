//! `scripts/devnet` — README command one: setup, then `covenant devnet up` — brings up a working
//! devnet whose demo app is served end to end through the gateway; `covenant devnet down` stops
//! it and `scripts/devnet` brings the same one back; `covenant devnet demo` plays the governance
//! story; and the devnet takes all of it down again on Ctrl-C or SIGTERM — also when it was
//! started with SIGINT ignored, as a non-interactive shell starts background commands, and also
//! halfway through its start. Every port is picked by the system (port 0, read back from the env
//! file).

use std::{net::SocketAddr, path::Path, process::Command, time::Duration};

use covenant_e2e::read_env_file;
use covenant_testkit::{Process, Signal, json_rpc, tools, wait_for};
use serde_json::json;
use sqlx::{Connection, PgConnection};

/// `cast call` of a view function given by its signature; returns cast's decoded output.
fn cast_call(rpc_url: &str, to: &str, signature: &str) -> String {
    let output = Command::new(tools::foundry_bin("cast").unwrap())
        .args(["call", "--rpc-url", rpc_url, to, signature])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

/// A plain HTTP/1.1 GET on loopback; the body if the status is 200.
fn http_get(base: &str, path: &str) -> Result<String, String> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).map_err(|e| e.to_string())?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let (head, body) = out.split_once("\r\n\r\n").ok_or("no body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(head.lines().next().unwrap_or_default().to_owned());
    }
    Ok(body.to_owned())
}

/// The indexer's finalized block number.
fn head(base: &str) -> Result<u64, String> {
    let body = http_get(base, "/v1/head")?;
    let v: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    v["finalized"]["number"]
        .as_u64()
        .ok_or_else(|| format!("no finalized block: {v}"))
}

fn accepts(addr: SocketAddr) -> bool {
    std::net::TcpStream::connect(addr).is_ok()
}

/// The port of a URL on `127.0.0.1:PORT`.
fn port_of(url: &str) -> u16 {
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        url.ends_with(&format!("127.0.0.1:{port}")) && port != 0,
        "{url}"
    );
    port
}

/// `scripts/devnet` (README command one) with every port 0 (the system picks), state in
/// `state`; started through a shell that ignores SIGINT first when `sigint_ignored` (the
/// disposition is inherited).
fn devnet_command(state: &Path, sigint_ignored: bool) -> Command {
    let script = tools::repo_root().join("scripts/devnet");
    let mut command = if sigint_ignored {
        let mut c = Command::new("bash");
        c.args(["-c", "trap '' INT; exec \"$0\""]).arg(script);
        c
    } else {
        Command::new(script)
    };
    devnet_env(&mut command, state);
    command
}

/// `covenant devnet up` itself (what `scripts/devnet` runs after setup), every port 0.
pub(crate) fn devnet_up(state: &Path) -> Command {
    let mut command = Command::new(tools::workspace_bin("covenant").unwrap());
    command
        .current_dir(tools::repo_root())
        .args(["devnet", "up"]);
    devnet_env(&mut command, state);
    command
}

fn devnet_env(command: &mut Command, state: &Path) {
    command
        .env("COVENANT_DEVNET_DIR", state)
        .env("COVENANT_DEVNET_BLOCK_TIME", "0.2")
        // The kms-oracle (started by the devnet, inheriting this) commits its log every second.
        .env("COVENANT_KMS_COMMIT_INTERVAL_MS", "1000");
    for port in ["RPC", "PG", "INDEXER", "KMS", "APP", "GATEWAY"] {
        command.env(format!("COVENANT_DEVNET_{port}_PORT"), "0");
    }
    // The demo app's gateway-facing port is written into its compose (a compose port is where
    // the container listens), so it cannot be 0: a port the system had free a moment ago.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    command.env(
        "COVENANT_DEVNET_APP_HTTP_PORT",
        free.local_addr().unwrap().port().to_string(),
    );
}

/// `GET /` over HTTPS to `addr` with server name `name`, trusting only the PEM certificate
/// `root` (the check a browser would make against that CA); the status line and the body.
fn https_get_trusting(
    addr: SocketAddr,
    name: &str,
    root: &Path,
) -> Result<(String, String), String> {
    use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(root).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let connection = rustls::ClientConnection::new(std::sync::Arc::new(config), server_name)
        .map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    write!(
        tls,
        "GET / HTTP/1.1\r\nhost: {name}\r\nconnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = Vec::new();
    match tls.read_to_end(&mut response) {
        Ok(_) => {}
        // A peer closing without close_notify still delivered the whole response.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {}
        Err(e) => return Err(e.to_string()),
    }
    let response = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    Ok((
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    ))
}

/// DER certificates as a PEM file's text.
fn pem_chain(chain: &[Vec<u8>]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for der in chain {
        let mut b64 = String::new();
        for group in der.chunks(3) {
            let n = group
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
            for i in 0..4 {
                if i <= group.len() {
                    b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
                } else {
                    b64.push('=');
                }
            }
        }
        out.push_str("-----BEGIN CERTIFICATE-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap());
            out.push('\n');
        }
        out.push_str("-----END CERTIFICATE-----\n");
    }
    out
}

/// Every process the devnet started (its pids file) has exited; returns how many it started.
fn assert_all_stopped(state: &Path) -> usize {
    let pids = std::fs::read_to_string(state.join("pids")).unwrap();
    for line in pids.lines() {
        let (name, pid) = line.split_once(' ').unwrap();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let run_state = stat.rsplit(") ").next().and_then(|r| r.split(' ').next());
        assert!(
            stat.is_empty() || run_state == Some("Z"),
            "{name} (pid {pid}) survived the devnet's stop: {stat}"
        );
    }
    pids.lines().count()
}

#[tokio::test(flavor = "multi_thread")]
async fn devnet_serves_a_chain_and_a_database_until_interrupted() {
    let state = tempfile::tempdir().unwrap();
    // SIGINT ignored from the start: the test kit's Ctrl-C cannot reach the script, so it must
    // escalate, and the devnet must still stop everything.
    let command = devnet_command(state.path(), true);
    let devnet = Process::spawn("devnet", command, Signal::SIGINT).unwrap();
    devnet
        .wait_for_line("readiness", Duration::from_secs(180), |line| {
            line.starts_with("devnet ready")
        })
        .unwrap();

    let env = read_env_file(&state.path().join("env")).unwrap();
    let rpc_port = port_of(&env["COVENANT_RPC_URL"]);
    let pg_port = port_of(env["DATABASE_URL"].trim_end_matches("/covenant"));
    let indexer_port = port_of(&env["COVENANT_INDEXER_URL"]);
    assert_eq!(env["COVENANT_CHAIN_ID"], "31337");
    let rpc: SocketAddr = ([127, 0, 0, 1], rpc_port).into();
    assert_eq!(
        json_rpc(rpc, "eth_chainId", json!([])).unwrap(),
        json!("0x7a69")
    );
    // Blocks come on their own, at the configured interval.
    wait_for("the devnet chain to mine blocks")
        .watching(&devnet)
        .until(|| {
            json_rpc(rpc, "eth_blockNumber", json!([]))
                .is_ok_and(|n| n.as_str().is_some_and(|n| n != "0x0"))
        })
        .unwrap();

    // The contracts are deployed and owned by the Timelock.
    let deployment: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(state.path().join("deployment.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(deployment["chainId"], json!(31337));
    let registry = deployment["contracts"]["KmsRegistry"].as_str().unwrap();
    let timelock = deployment["contracts"]["TimelockController"]
        .as_str()
        .unwrap();
    assert_eq!(env["COVENANT_KMS_REGISTRY"], registry);
    let rpc_url = &env["COVENANT_RPC_URL"];
    assert_eq!(cast_call(rpc_url, registry, "owner()(address)"), timelock);
    assert_eq!(
        cast_call(rpc_url, registry, "allowSimulatedTee()(bool)"),
        "true"
    );

    let mut db = PgConnection::connect(&env["DATABASE_URL"]).await.unwrap();
    let name: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(name, "covenant");
    db.close().await.unwrap();

    // The kms-oracle was registered by an executed governance proposal and serves (the devnet
    // waited for its /healthz): its node is active on chain with the root keys of generation 1.
    let node = &env["COVENANT_KMS_NODE"];
    let record = Command::new(tools::foundry_bin("cast").unwrap())
        .args([
            "call",
            "--rpc-url",
            rpc_url,
            registry,
            "kmsNode(address)((bool,address,uint64,uint64,bytes32,bytes32))",
            node,
        ])
        .output()
        .unwrap();
    let record = String::from_utf8(record.stdout).unwrap();
    assert!(
        record.starts_with("(true, "),
        "the KMS node is not active: {record}"
    );
    let roots = cast_call(rpc_url, registry, "kmsRootKeys()(address,bytes,uint64)");
    assert_eq!(
        roots.lines().last(),
        Some("1"),
        "root key generation: {roots}"
    );
    let kms: SocketAddr = env["COVENANT_KMS_URL"]
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    std::net::TcpStream::connect(kms).expect("the kms-oracle listens");

    // The indexer mirrors the deployment and its finalized view follows the chain.
    let indexer = &env["COVENANT_INDEXER_URL"];
    let first = wait_for("the indexer to finalize a block")
        .watching(&devnet)
        .until_ok(|| head(indexer))
        .unwrap();
    wait_for("the indexer's finalized view to advance")
        .watching(&devnet)
        .until(|| head(indexer).is_ok_and(|n| n > first))
        .unwrap();
    let registry_view = http_get(indexer, "/v1/registry").unwrap();
    assert!(
        registry_view.contains("\"allowSimulatedTee\":true"),
        "{registry_view}"
    );

    // The demo app: created with the Timelock as owner and its compose hash allowed, booted by the
    // guest in a simulated TEE with keys from the devnet's KMS, serving a certificate under the
    // app CA of the root CA key on chain and its attested identity.
    let app: alloy::primitives::Address = env["COVENANT_APP_ID"].parse().unwrap();
    assert_eq!(
        cast_call(rpc_url, &app.to_string(), "owner()(address)"),
        timelock
    );
    let compose = state.path().join("app/app-compose.json");
    let compose_hash = Command::new(tools::workspace_bin("covenant-guest").unwrap())
        .arg("compose-hash")
        .arg(&compose)
        .output()
        .unwrap();
    assert!(compose_hash.status.success());
    let compose_hash = String::from_utf8(compose_hash.stdout).unwrap();
    let compose_hash = compose_hash.trim();
    let app_view = http_get(indexer, &format!("/v1/apps/{app}")).unwrap();
    assert!(
        app_view.contains(&compose_hash[2..]),
        "{compose_hash} not in {app_view}"
    );
    let app_addr: SocketAddr = env["COVENANT_APP_URL"]
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    assert_eq!(app_addr.port(), port_of(&env["COVENANT_APP_URL"]));
    let served = covenant_testkit::tls::get_with_chain(app_addr, "localhost", "/").unwrap();
    assert_eq!(served.status, 200, "{}", served.body);
    let identity: serde_json::Value = serde_json::from_str(&served.body).unwrap();
    assert_eq!(
        identity["appId"]
            .as_str()
            .unwrap()
            .parse::<alloy::primitives::Address>()
            .unwrap(),
        app
    );
    assert_eq!(identity["composeHash"], compose_hash);
    let mut roots = roots.lines();
    let anchor = covenant_kms_api::RootAnchor {
        chain_id: 31337,
        kms_registry: registry.parse().unwrap(),
        ca_public_key: hex::decode(roots.nth(1).unwrap().trim_start_matches("0x")).unwrap(),
        generation: roots.next().unwrap().parse().unwrap(),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let certificate =
        covenant_kms_api::verify_app_chain(&served.chain, &anchor, Some(app), now as i64).unwrap();
    assert_eq!(certificate.dns_names, ["localhost"]);
    let socket = std::path::PathBuf::from(&env["COVENANT_GUEST_SOCKET"]);
    assert!(socket.exists(), "the guest's local API socket");

    // Through the gateway: `https://<app id>.localhost:<port>`, a certificate from the gateway's
    // development CA for exactly that name, the answer from the same app.
    let gateway_port: u16 = env["COVENANT_GATEWAY_PORT"].parse().unwrap();
    assert_ne!(gateway_port, 0);
    let gateway: SocketAddr = ([127, 0, 0, 1], gateway_port).into();
    let host = format!("{}.localhost", hex::encode(app.as_slice()));
    assert_eq!(
        env["COVENANT_APP_GATEWAY_URL"],
        format!("https://{host}:{gateway_port}")
    );
    assert_eq!(
        cast_call(rpc_url, registry, "gatewayAppId()(address)"),
        env["COVENANT_GATEWAY_APP_ID"],
        "the gateway runs as the chain's gateway app"
    );
    let ca = Path::new(&env["COVENANT_GATEWAY_CA"]);
    let (status, body) = https_get_trusting(gateway, &host, ca).unwrap();
    assert!(status.contains(" 200"), "{status}: {body}");
    let through: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(through["appId"], identity["appId"]);
    assert_eq!(through["composeHash"], compose_hash);
    // `covenant verify` checks every link of the chain of trust behind the URL.
    let covenant = |args: &[&str]| {
        let mut command = Command::new(tools::workspace_bin("covenant").unwrap());
        command
            .current_dir(tools::repo_root())
            .envs(env.iter())
            .env("COVENANT_PRIVATE_KEY", &env["COVENANT_DEPLOYER_KEY"])
            .args(args);
        command.output().unwrap()
    };
    let gateway_url = env["COVENANT_APP_GATEWAY_URL"].clone();
    let verified = covenant(&["verify", &gateway_url]);
    let verified_text = String::from_utf8_lossy(&verified.stdout).into_owned();
    assert!(
        verified.status.success(),
        "{verified_text}{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    for link in ["served key", "gateway", "instance", "KMS root"] {
        assert!(
            verified_text.contains(&format!("ok      {link}:")),
            "{link} not verified: {verified_text}"
        );
    }

    // The KMS as the chain and the indexer describe it: the devnet's node, serving, under the
    // root the evidence names.
    let kms_info = covenant(&["--json", "kms", "info"]);
    assert!(
        kms_info.status.success(),
        "{}",
        String::from_utf8_lossy(&kms_info.stderr)
    );
    let kms_info: serde_json::Value = serde_json::from_slice(&kms_info.stdout).unwrap();
    let node = kms_info["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| {
            n["node"]
                .as_str()
                .unwrap()
                .parse::<alloy::primitives::Address>()
                .unwrap()
                == env["COVENANT_KMS_NODE"]
                    .parse::<alloy::primitives::Address>()
                    .unwrap()
        })
        .unwrap_or_else(|| panic!("the devnet's node is not listed: {kms_info}"));
    assert_eq!(node["serving"], true, "{kms_info}");
    assert!(
        verified_text.contains(kms_info["rootSigner"].as_str().unwrap()),
        "verify names the chain's root signer: {verified_text}"
    );

    // Env secrets sealed to the demo app with the key the devnet's KMS serves, checked against
    // the root signer on chain; the values never appear in what the CLI prints.
    let secrets = state.path().join("secrets.env");
    std::fs::write(&secrets, "API_TOKEN=hunter2\n").unwrap();
    let sealed = covenant(&[
        "--json",
        "app",
        "env",
        "encrypt",
        &app.to_string(),
        "--env-file",
        secrets.to_str().unwrap(),
    ]);
    let sealed_text = String::from_utf8_lossy(&sealed.stdout).into_owned();
    assert!(
        sealed.status.success(),
        "{}",
        String::from_utf8_lossy(&sealed.stderr)
    );
    assert!(!sealed_text.contains("hunter2"));
    let sealed: serde_json::Value = serde_json::from_str(&sealed_text).unwrap();
    assert_eq!(sealed["rootSigner"], kms_info["rootSigner"]);
    assert_eq!(sealed["variables"], json!(["API_TOKEN"]));
    let document = &sealed["document"];
    assert_eq!(
        document["appId"]
            .as_str()
            .unwrap()
            .parse::<alloy::primitives::Address>()
            .unwrap(),
        app
    );
    assert_eq!(document["version"], 1);
    assert_eq!(document["enc"].as_str().unwrap().len(), 64);

    // The KMS's first decision (the gateway's boot), proven from its audit log up to the root
    // the node committed on chain.
    let proven = wait_for("the first audit entry to be committed and proven")
        .timeout(Duration::from_secs(60))
        .watching(&devnet)
        .until_ok(|| {
            let run = covenant(&["--json", "kms", "proof", "1"]);
            if run.status.success() {
                Ok(serde_json::from_slice::<serde_json::Value>(&run.stdout).unwrap())
            } else {
                Err(String::from_utf8_lossy(&run.stderr).into_owned())
            }
        })
        .unwrap();
    assert_eq!(proven["proven"], true, "{proven}");
    assert_eq!(proven["entry"]["granted"], true, "{proven}");
    assert_eq!(
        proven["entry"]["appId"]
            .as_str()
            .unwrap()
            .parse::<alloy::primitives::Address>()
            .unwrap(),
        env["COVENANT_GATEWAY_APP_ID"]
            .parse::<alloy::primitives::Address>()
            .unwrap(),
        "the first grant went to the gateway app: {proven}"
    );

    // The demo app's decisions by the KMS node, newest first: its boot's grant among them.
    let listed = covenant(&["--json", "kms", "grants", "--app", &app.to_string()]);
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    let decisions = listed["entries"].as_array().unwrap();
    assert!(
        decisions
            .iter()
            .any(|e| e["granted"] == true && e["composeHash"].as_str() == Some(compose_hash)),
        "{listed}"
    );

    // The app's certificate chain, as any client received it, checked by `covenant verify
    // <file>` against the KMS root on chain; the same chain under another root is refused.
    let chain_file = state.path().join("chain.pem");
    std::fs::write(&chain_file, pem_chain(&served.chain)).unwrap();
    let checked = covenant(&["verify", chain_file.to_str().unwrap()]);
    let checked_text = String::from_utf8_lossy(&checked.stdout).into_owned();
    assert!(
        checked.status.success(),
        "{}",
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked_text.contains(&format!("ok      certificate: issued to app {app}")),
        "{checked_text}"
    );
    let mut foreign = served.chain.clone();
    foreign[2] = std::fs::read_to_string(ca)
        .ok()
        .and_then(|pem| {
            use rustls::pki_types::{CertificateDer, pem::PemObject};
            CertificateDer::from_pem_slice(pem.as_bytes()).ok()
        })
        .unwrap()
        .to_vec();
    std::fs::write(&chain_file, pem_chain(&foreign)).unwrap();
    let refused = covenant(&["verify", chain_file.to_str().unwrap()]);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("BROKEN  certificate:"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );

    // Another name under the base domain is no app: the handshake or the request is refused.
    let unknown = https_get_trusting(gateway, &format!("{}.localhost", "ab".repeat(20)), ca);
    assert!(
        unknown.as_ref().map_or(true, |(s, _)| !s.contains(" 200")),
        "{unknown:?}"
    );

    // `covenant devnet status` sees it all running and the app answering through the gateway.
    let status = covenant(&["--json", "devnet", "status"]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["running"], true, "{status}");
    assert_eq!(status["served"], true, "{status}");
    assert_eq!(status["services"].as_object().unwrap().len(), 6, "{status}");

    // `covenant devnet down` stops every process; the state stays.
    let down = covenant(&["devnet", "down"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    wait_for("the devnet to exit after `covenant devnet down`")
        .until(|| devnet.log_contains("devnet stopped ("))
        .unwrap();
    assert_eq!(assert_all_stopped(state.path()), 6);
    assert!(!accepts(gateway), "the gateway still serving after down");
    assert!(!accepts(rpc), "anvil still listening after down");

    // README command one again: the same devnet comes back — the same chain (anvil's state),
    // databases, KMS node (its sealed root) and apps — without a new deployment or vote.
    let devnet = Process::spawn(
        "devnet",
        devnet_command(state.path(), false),
        Signal::SIGINT,
    )
    .unwrap();
    devnet
        .wait_for_line(
            "readiness after a restart",
            Duration::from_secs(180),
            |line| line.starts_with("devnet ready"),
        )
        .unwrap();
    assert!(
        devnet.log_contains("resuming the devnet"),
        "{}",
        devnet.log_tail(40)
    );
    assert!(
        !devnet.log_contains("deploying the contracts"),
        "redeployed on a restart"
    );
    let env = read_env_file(&state.path().join("env")).unwrap();
    assert_eq!(env["COVENANT_APP_ID"], app.to_checksum(None));
    assert_eq!(env["COVENANT_KMS_REGISTRY"], registry);
    assert_eq!(env["COVENANT_KMS_NODE"], node["node"].as_str().unwrap());
    let gateway_port: u16 = env["COVENANT_GATEWAY_PORT"].parse().unwrap();
    let gateway: SocketAddr = ([127, 0, 0, 1], gateway_port).into();
    let (status, body) =
        https_get_trusting(gateway, &host, Path::new(&env["COVENANT_GATEWAY_CA"])).unwrap();
    assert!(status.contains(" 200"), "{status}: {body}");
    let again: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(again["appId"], identity["appId"]);
    assert_eq!(again["composeHash"], compose_hash);

    // `covenant devnet demo`: an upgrade voted in (shown decoded while the vote is open, then
    // pending during its notice period), a version-2 instance routed next to version 1, version 1
    // retired and its instance evicted, then version 2 revoked — and `covenant verify` fails.
    let covenant = |args: &[&str]| {
        let mut command = Command::new(tools::workspace_bin("covenant").unwrap());
        command
            .current_dir(tools::repo_root())
            .envs(env.iter())
            .args(args);
        command.output().unwrap()
    };
    let demo = covenant(&["--json", "devnet", "demo"]);
    let story = String::from_utf8_lossy(&demo.stderr).into_owned();
    assert!(demo.status.success(), "{story}");
    for step in [
        "calls:\n      1. App(",
        ").addComposeHash(composeHash: ",
        "pending: takes effect",
        "the gateway routes the name to both versions' instances",
        "the gateway evicted the version-1 instance",
        "verified: every link holds",
    ] {
        assert!(
            story.contains(step),
            "no `{step}` in the demo's story:\n{story}"
        );
    }
    let demo: serde_json::Value = serde_json::from_slice(&demo.stdout).unwrap();
    let steps = demo["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(names, ["verify", "upgrade", "evicted", "revoked"]);
    assert_eq!(steps[2]["version"], compose_hash);
    let v2 = steps[1]["version"].as_str().unwrap();
    assert_ne!(v2, compose_hash);
    // The chain agrees: neither version is allowed now.
    let allowed = |hash: &str| {
        let out = Command::new(tools::foundry_bin("cast").unwrap())
            .args([
                "call",
                "--rpc-url",
                &env["COVENANT_RPC_URL"],
                &app.to_string(),
            ])
            .args(["composeHashEffectiveAt(bytes32)(uint64)", hash])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim() != "0"
    };
    assert!(!allowed(compose_hash), "version 1 still allowed");
    assert!(!allowed(v2), "version 2 still allowed");
    // And `covenant verify` run on its own fails, naming the broken link.
    let refused = covenant(&["verify", &env["COVENANT_APP_GATEWAY_URL"]]);
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr);
    // Depending on when it looks, the gateway still answers for the name with no instance left,
    // or already refuses the name: either way the app's instance is what broke.
    assert!(
        refused.contains("broken link: instances: no instance serves")
            || refused.contains("routes to no allowed instance"),
        "{refused}"
    );

    devnet.stop();
    assert!(
        devnet.log_contains("devnet stopped"),
        "{}",
        devnet.log_tail(40)
    );
    assert_eq!(
        assert_all_stopped(state.path()),
        6,
        "anvil, postgres, indexer, kms, gateway, app"
    );
    assert!(
        !accepts(gateway),
        "the gateway still serving after the stop"
    );
    assert!(
        !accepts(app_addr),
        "the demo app still serving after the stop"
    );
    assert!(!socket.exists(), "the guest's socket left behind");
    assert!(
        !accepts(kms),
        "the kms-oracle still listening after the stop"
    );
    assert!(!accepts(rpc), "anvil still listening after Ctrl-C");
    assert!(
        !accepts(([127, 0, 0, 1], pg_port).into()),
        "PostgreSQL still listening after Ctrl-C"
    );
    assert!(
        !accepts(([127, 0, 0, 1], indexer_port).into()),
        "the indexer still listening after Ctrl-C"
    );
}

#[test]
fn devnet_refuses_a_port_that_is_taken() {
    let squatter = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let state = tempfile::tempdir().unwrap();
    let mut command = devnet_up(state.path());
    command.env("COVENANT_DEVNET_RPC_PORT", taken.to_string());
    let devnet = Process::spawn("devnet", command, Signal::SIGINT).unwrap();
    let err = devnet
        .wait_for_line("readiness", Duration::from_secs(60), |line| {
            line.starts_with("devnet ready")
        })
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains(&format!("port {taken} is in use")),
        "{message}"
    );
    assert!(message.contains("COVENANT_DEVNET_RPC_PORT"), "{message}");
}

#[test]
fn devnet_stopped_halfway_through_its_start_leaves_nothing_running() {
    let state = tempfile::tempdir().unwrap();
    let devnet = Process::spawn("devnet", devnet_up(state.path()), Signal::SIGTERM).unwrap();
    // Anvil, PostgreSQL and the indexer run; the kms-oracle is being set up.
    devnet
        .wait_for_line(
            "the kms-oracle's bootstrap",
            Duration::from_secs(120),
            |line| line.contains("bootstrapping the kms-oracle"),
        )
        .unwrap();
    let env_pids = std::fs::read_to_string(state.path().join("pids")).unwrap();
    assert_eq!(env_pids.lines().count(), 3, "{env_pids}");
    // SIGTERM to the devnet alone (not its process group): it stops each process itself, each
    // in a process group of its own, out of the group's reach.
    let term = Command::new("kill")
        .args(["-TERM", &devnet.pid().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    devnet
        .wait_for_line("the devnet's own stop", Duration::from_secs(60), |line| {
            line.contains("devnet stopped")
        })
        .unwrap();
    assert_eq!(assert_all_stopped(state.path()), 3);
    devnet.stop();
}
