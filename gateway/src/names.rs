//! Which app a TLS server name (SNI) or HTTP `Host` asks for.
//!
//! A name under the gateway's base domain is `<app-id>[-<port>].<base-domain>`: the app's
//! address as 40 hex digits (no `0x`; DNS names are case-insensitive, so case carries no
//! checksum) and optionally the compose port, e.g. `5fbdb2315678afecb367f032d93f642f64180aa3-8080.
//! apps.example`. Any other name is a custom domain, routed only where the chain and DNS both say
//! so. Parsing is strict and total: a name that is not a valid DNS host name is refused with a
//! reason, never guessed at.

use alloy::primitives::Address;

/// The longest host name (RFC 1035: 253 characters in text form).
pub const MAX_NAME_LEN: usize = 253;
/// The longest label.
pub const MAX_LABEL_LEN: usize = 63;

/// What a host name asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `<app-id>[-<port>].<base-domain>`: the app and, if named, the compose port.
    App {
        /// The app.
        app: Address,
        /// The compose port; `None` for the app's first HTTP or passthrough port.
        port: Option<u16>,
    },
    /// Any other name (lower case, no trailing dot).
    Custom(String),
}

/// Why a name was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, too long, or not a DNS host name.
    #[error("not a valid host name: {0}")]
    Invalid(&'static str),
    /// Under the base domain, but the first label is not `<app-id>[-<port>]`.
    #[error("not an app name under the base domain: {0}")]
    NotAnApp(&'static str),
    /// The base domain itself (no app named).
    #[error("the base domain names no app")]
    BaseDomain,
}

/// A host name in canonical form: ASCII lower case, no trailing dot, each label 1–63 letters,
/// digits or hyphens, not starting or ending with a hyphen; at most [`MAX_NAME_LEN`].
pub fn canonical(name: &str) -> Result<String, NameError> {
    let name = name.strip_suffix('.').unwrap_or(name);
    if name.is_empty() {
        return Err(NameError::Invalid("empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::Invalid("longer than 253 characters"));
    }
    for label in name.split('.') {
        if label.is_empty() {
            return Err(NameError::Invalid("empty label"));
        }
        if label.len() > MAX_LABEL_LEN {
            return Err(NameError::Invalid("label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(NameError::Invalid(
                "only letters, digits and hyphens are allowed",
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(NameError::Invalid("label starts or ends with a hyphen"));
        }
    }
    // No top-level domain is numeric: such a name is an IPv4 address (or nothing).
    if name
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err(NameError::Invalid("an IP address, not a name"));
    }
    Ok(name.to_ascii_lowercase())
}

/// What `name` asks for, given the gateway's canonical `base_domain`.
pub fn target(name: &str, base_domain: &str) -> Result<Target, NameError> {
    let name = canonical(name)?;
    if name == base_domain {
        return Err(NameError::BaseDomain);
    }
    let Some(first) = name
        .strip_suffix(base_domain)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Ok(Target::Custom(name));
    };
    if first.contains('.') {
        return Err(NameError::NotAnApp(
            "more than one label before the base domain",
        ));
    }
    let (hex, port) = match first.split_once('-') {
        Some((hex, port)) => (hex, Some(port)),
        None => (first, None),
    };
    if hex.len() != 40 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(NameError::NotAnApp("the app id is not 40 hex digits"));
    }
    let mut app = [0u8; 20];
    hex::decode_to_slice(hex, &mut app)
        .map_err(|_| NameError::NotAnApp("the app id is not 40 hex digits"))?;
    let port = match port {
        None => None,
        Some(p) => {
            if p.starts_with('0') || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(NameError::NotAnApp(
                    "the port is not a number from 1 to 65535",
                ));
            }
            Some(
                p.parse::<u16>()
                    .map_err(|_| NameError::NotAnApp("the port is not a number from 1 to 65535"))?,
            )
        }
    };
    Ok(Target::App {
        app: Address::from(app),
        port,
    })
}

/// The gateway's name for `app` (and `port`) under `base_domain`.
pub fn app_host(app: Address, port: Option<u16>, base_domain: &str) -> String {
    let hex = hex::encode(app.as_slice());
    match port {
        Some(port) => format!("{hex}-{port}.{base_domain}"),
        None => format!("{hex}.{base_domain}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "apps.example";
    const APP: &str = "5fbdb2315678afecb367f032d93f642f64180aa3";

    fn app() -> Address {
        APP.parse().unwrap()
    }

    #[test]
    fn an_app_name_with_and_without_a_port() {
        assert_eq!(
            target(&format!("{APP}.{BASE}"), BASE),
            Ok(Target::App {
                app: app(),
                port: None
            })
        );
        assert_eq!(
            target(&format!("{}-8080.APPS.example.", APP.to_uppercase()), BASE),
            Ok(Target::App {
                app: app(),
                port: Some(8080)
            })
        );
        assert_eq!(
            target(&app_host(app(), Some(443), BASE), BASE),
            Ok(Target::App {
                app: app(),
                port: Some(443)
            })
        );
    }

    #[test]
    fn a_custom_domain_is_named_as_such() {
        assert_eq!(
            target("Shop.Example.COM", BASE),
            Ok(Target::Custom("shop.example.com".into()))
        );
        // A name that merely ends with the base domain's text is not under it.
        assert_eq!(
            target(&format!("x{BASE}"), BASE),
            Ok(Target::Custom(format!("x{BASE}")))
        );
    }

    #[test]
    fn malformed_names_are_refused() {
        for (name, why) in [
            ("", "empty"),
            (".", "empty"),
            ("a..b", "empty label"),
            ("-a.example", "hyphen"),
            ("a-.example", "hyphen"),
            ("a_b.example", "letters"),
            ("a b.example", "letters"),
            ("a\0.example", "letters"),
            ("ünï.example", "letters"),
            ("10.0.0.1", "IP address"),
            ("127.0.0.1.", "IP address"),
        ] {
            let err = target(name, BASE).unwrap_err().to_string();
            assert!(err.contains(why), "{name:?}: {err}");
        }
        let long_label = format!("{}.example", "a".repeat(64));
        assert!(target(&long_label, BASE).is_err());
        let long_name = format!("{}example", "a.".repeat(127));
        assert!(long_name.len() > MAX_NAME_LEN);
        assert!(target(&long_name, BASE).is_err());
        assert_eq!(target(BASE, BASE), Err(NameError::BaseDomain));
    }

    #[test]
    fn malformed_app_names_are_refused() {
        for name in [
            format!("{}.{BASE}", &APP[..39]),
            format!("{APP}0.{BASE}"),
            format!("{}g.{BASE}", &APP[..39]),
            format!("{APP}-0.{BASE}"),
            format!("{APP}-08080.{BASE}"),
            format!("{APP}-65536.{BASE}"),
            format!("{APP}-99999999.{BASE}"),
            format!("{APP}-80-1.{BASE}"),
            format!("www.{APP}.{BASE}"),
            format!("0x{}.{BASE}", &APP[..38]),
        ] {
            assert!(
                matches!(target(&name, BASE), Err(NameError::NotAnApp(_))),
                "{name}: {:?}",
                target(&name, BASE)
            );
        }
    }
}
