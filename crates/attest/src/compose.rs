//! The app-compose document and its hash: `sha256(JCS(document))` (RFC 8785), exactly 32 bytes.
//!
//! The document is validated against the schema in `docs/app-compose.md` before hashing: unknown
//! or duplicate fields, unpinned images (a tag instead of `@sha256:<digest>`) and out-of-range
//! values are rejected, so a hash is only ever computed for a document a guest would run.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{ComposeHash, Error, Result};

/// The largest app-compose document accepted, in bytes.
pub const MAX_COMPOSE_LEN: usize = 64 * 1024;
/// The only manifest version this crate knows.
pub const MANIFEST_VERSION: u32 = 1;

/// An app-compose document (manifest version 1).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppCompose {
    /// Always 1.
    pub manifest_version: u32,
    /// The app's name: 1–64 bytes of `a-z`, `0-9`, `-`.
    pub name: String,
    /// The containers to run (1–32).
    pub containers: Vec<Container>,
    /// Names of environment variables that may be injected (encrypted to the app); at most 64.
    #[serde(default)]
    pub allowed_envs: Vec<String>,
    /// Ports the gateway may route to.
    #[serde(default)]
    pub ports: Vec<Port>,
    /// The KMS the app trusts.
    pub kms: Kms,
    /// The gateway the app registers with, if any.
    #[serde(default)]
    pub gateway: Option<Gateway>,
    /// Feature flags.
    #[serde(default)]
    pub flags: Flags,
}

/// One container.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Container {
    /// 1–64 bytes of `a-z`, `0-9`, `-`; unique within the document.
    pub name: String,
    /// An image reference pinned by digest: `<repository>@sha256:<64 lower-case hex>`.
    pub image: String,
    /// The command, if it overrides the image's.
    #[serde(default)]
    pub command: Vec<String>,
    /// Environment variable names (from `allowed_envs`) passed to this container.
    #[serde(default)]
    pub env: Vec<String>,
    /// What to do when the container exits (default: [`Restart::No`]).
    #[serde(default)]
    pub restart: Restart,
}

/// A container's restart policy (docker compose's names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Restart {
    /// Never restart.
    #[default]
    No,
    /// Restart when it exits with a non-zero status or a signal.
    OnFailure,
    /// Always restart, until the guest stops.
    Always,
}

/// A routable port.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// The container serving it.
    pub container: String,
    /// 1–65535.
    pub port: u32,
    /// `http`, `tcp` or `tls-passthrough`.
    pub protocol: String,
}

/// The KMS an app trusts: a chain and its KMS registry.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Kms {
    /// The chain id.
    pub chain_id: u64,
    /// The `KmsRegistry` proxy address (`0x` + 40 hex).
    pub registry: String,
}

/// The gateway an app registers with.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The gateway's app id (`0x` + 40 hex).
    pub app_id: String,
}

/// Feature flags.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flags {
    /// The app needs a confidential GPU.
    #[serde(default)]
    pub gpu: bool,
    /// The app's logs may be read by the operator.
    #[serde(default)]
    pub public_logs: bool,
}

/// Validates `document` and returns it parsed together with its compose hash.
pub fn compose_hash(document: &[u8]) -> Result<(AppCompose, ComposeHash)> {
    if document.len() > MAX_COMPOSE_LEN {
        return Err(Error::TooLarge {
            what: "app-compose",
            limit: MAX_COMPOSE_LEN,
            got: document.len(),
        });
    }
    let compose: AppCompose =
        serde_json::from_slice(document).map_err(|e| Error::Compose(e.to_string()))?;
    validate(&compose)?;
    // Canonicalise the document as written (every field is known and checked above).
    let value: serde_json::Value =
        serde_json::from_slice(document).map_err(|e| Error::Compose(e.to_string()))?;
    let canonical = serde_jcs::to_vec(&value).map_err(|e| Error::Compose(e.to_string()))?;
    Ok((compose, ComposeHash::new(Sha256::digest(&canonical).into())))
}

fn validate(c: &AppCompose) -> Result<()> {
    let fail = |m: String| Err(Error::Compose(m));
    if c.manifest_version != MANIFEST_VERSION {
        return fail(format!(
            "manifest_version {} is not {MANIFEST_VERSION}",
            c.manifest_version
        ));
    }
    check_name("name", &c.name)?;
    if c.containers.is_empty() || c.containers.len() > 32 {
        return fail(format!(
            "{} containers, expected 1..=32",
            c.containers.len()
        ));
    }
    if c.allowed_envs.len() > 64 {
        return fail(format!("{} allowed_envs, at most 64", c.allowed_envs.len()));
    }
    for env in &c.allowed_envs {
        check_env_name(env)?;
    }
    let mut names = std::collections::BTreeSet::new();
    for container in &c.containers {
        check_name("container name", &container.name)?;
        if !names.insert(container.name.as_str()) {
            return fail(format!("duplicate container name {:?}", container.name));
        }
        check_pinned_image(&container.image)?;
        if container.command.len() > 64 || container.command.iter().any(|a| a.len() > 4096) {
            return fail(format!("command of {:?} is too long", container.name));
        }
        for env in &container.env {
            if !c.allowed_envs.contains(env) {
                return fail(format!(
                    "container {:?} uses {env:?}, not in allowed_envs",
                    container.name
                ));
            }
        }
    }
    if c.ports.len() > 64 {
        return fail(format!("{} ports, at most 64", c.ports.len()));
    }
    for port in &c.ports {
        if !names.contains(port.container.as_str()) {
            return fail(format!(
                "port {} names unknown container {:?}",
                port.port, port.container
            ));
        }
        if port.port == 0 || port.port > 65_535 {
            return fail(format!("port {} out of range", port.port));
        }
        if !matches!(port.protocol.as_str(), "http" | "tcp" | "tls-passthrough") {
            return fail(format!("unknown protocol {:?}", port.protocol));
        }
    }
    // JCS writes numbers as IEEE doubles: beyond 2^53 two chain ids would share one hash.
    if c.kms.chain_id > (1 << 53) - 1 {
        return fail(format!("kms.chain_id {} is above 2^53 - 1", c.kms.chain_id));
    }
    check_address("kms.registry", &c.kms.registry)?;
    if let Some(gateway) = &c.gateway {
        check_address("gateway.app_id", &gateway.app_id)?;
    }
    Ok(())
}

fn check_name(what: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Compose(format!("invalid {what} {name:?}")))
    }
}

/// Whether `name` is an environment variable name a compose may list: 1–128 bytes of `A-Z`,
/// `0-9`, `_`, not starting with a digit.
pub fn is_env_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 128
        && !bytes[0].is_ascii_digit()
        && bytes
            .iter()
            .all(|b| matches!(b, b'A'..=b'Z' | b'0'..=b'9' | b'_'))
}

fn check_env_name(name: &str) -> Result<()> {
    if is_env_name(name) {
        Ok(())
    } else {
        Err(Error::Compose(format!(
            "invalid environment variable name {name:?}"
        )))
    }
}

fn check_pinned_image(image: &str) -> Result<()> {
    let pinned = image
        .rsplit_once("@sha256:")
        .is_some_and(|(repository, digest)| {
            !repository.is_empty()
                && repository.len() <= 255
                && !repository.contains(char::is_whitespace)
                && digest.len() == 64
                && digest
                    .bytes()
                    .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
    if pinned {
        Ok(())
    } else {
        Err(Error::Compose(format!(
            "image {image:?} is not pinned by a sha256 digest"
        )))
    }
}

fn check_address(what: &str, address: &str) -> Result<()> {
    let ok = address.len() == 42
        && address.starts_with("0x")
        && address.bytes().skip(2).all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(())
    } else {
        Err(Error::Compose(format!(
            "{what} {address:?} is not an address"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945";

    fn document() -> String {
        format!(
            r#"{{"manifest_version":1,"name":"hello","containers":[{{"name":"web",
            "image":"registry.example/hello@sha256:{DIGEST}","env":["API_KEY"]}}],
            "allowed_envs":["API_KEY"],"ports":[{{"container":"web","port":8080,"protocol":"http"}}],
            "kms":{{"chain_id":31337,"registry":"0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"}}}}"#
        )
    }

    #[test]
    fn whitespace_and_key_order_do_not_change_the_hash() {
        let (_, a) = compose_hash(document().as_bytes()).unwrap();
        let reordered = format!(
            r#"{{ "kms": {{"registry":"0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6", "chain_id": 31337}},
              "ports": [{{"protocol":"http","port":8080,"container":"web"}}],
              "allowed_envs": ["API_KEY"],
              "containers": [{{"env":["API_KEY"],"image":"registry.example/hello@sha256:{DIGEST}","name":"web"}}],
              "name": "hello",   "manifest_version": 1 }}"#
        );
        let (_, b) = compose_hash(reordered.as_bytes()).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn the_hash_is_sha256_of_the_canonical_form() {
        let (_, hash) = compose_hash(document().as_bytes()).unwrap();
        let canonical = format!(
            r#"{{"allowed_envs":["API_KEY"],"containers":[{{"env":["API_KEY"],"image":"registry.example/hello@sha256:{DIGEST}","name":"web"}}],"kms":{{"chain_id":31337,"registry":"0x2279B7A0a67DB372996a5FaB50D91eAA73d2eBe6"}},"manifest_version":1,"name":"hello","ports":[{{"container":"web","port":8080,"protocol":"http"}}]}}"#
        );
        assert_eq!(
            hash.as_bytes(),
            &<[u8; 32]>::from(Sha256::digest(canonical.as_bytes()))
        );
    }

    #[test]
    fn any_value_change_changes_the_hash() {
        let (_, a) = compose_hash(document().as_bytes()).unwrap();
        let (_, b) = compose_hash(document().replace("8080", "8081").as_bytes()).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn rejects_invalid_documents() {
        let cases = [
            (
                document().replace(&format!("@sha256:{DIGEST}"), ":latest"),
                "not pinned",
            ),
            (document().replace(DIGEST, &DIGEST[..63]), "not pinned"),
            (
                document().replace(DIGEST, &DIGEST.to_uppercase()),
                "not pinned",
            ),
            (
                document().replace(r#""manifest_version":1"#, r#""manifest_version":2"#),
                "manifest_version",
            ),
            (
                document().replace(r#""name":"hello""#, r#""name":"Hello""#),
                "invalid name",
            ),
            (
                document().replace(r#""env":["API_KEY"]"#, r#""env":["OTHER"]"#),
                "not in allowed_envs",
            ),
            (document().replace("8080", "70000"), "out of range"),
            (
                document().replace(r#""protocol":"http""#, r#""protocol":"udp""#),
                "unknown protocol",
            ),
            (
                document().replace("0x2279B7A0", "0x2279B7A"),
                "not an address",
            ),
            (
                document().replace(
                    r#""manifest_version":1,"#,
                    r#""manifest_version":1,"extra":true,"#,
                ),
                "unknown field",
            ),
            (
                document().replace(r#""name":"hello","#, r#""name":"hello","name":"again","#),
                "duplicate field",
            ),
            ("[1,2]".to_owned(), "invalid type"),
            ("{".to_owned(), "EOF"),
            (
                document().replace("31337", "9007199254740993"),
                "above 2^53",
            ),
        ];
        for (doc, expected) in cases {
            let err = compose_hash(doc.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
        }
        let huge = vec![b' '; MAX_COMPOSE_LEN + 1];
        assert!(matches!(compose_hash(&huge), Err(Error::TooLarge { .. })));
    }
}
