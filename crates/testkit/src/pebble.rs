//! A real ACME CA for tests: Debian's `pebble`, configured in a throwaway directory, its own TLS
//! certificate made here, the TLS-ALPN-01 validation port and the DNS server it resolves names
//! with given by the test.
//!
//! A gateway must know the directory URL before pebble can know the gateway's port, so this
//! comes in two steps: [`PebbleConfig::new`] picks pebble's ports and makes its certificate
//! ([`PebbleConfig::directory`], [`PebbleConfig::ca_file`]); [`PebbleConfig::start`] runs it.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{Error, Process, Result, Signal, rpc::free_port};

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Pebble's configuration, before it runs.
#[derive(Debug)]
pub struct PebbleConfig {
    dir: tempfile::TempDir,
    acme_port: u16,
    management_port: u16,
    validity: Option<u64>,
}

/// A running pebble, stopped on drop.
pub struct Pebble {
    process: Process,
    config: PebbleConfig,
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

impl PebbleConfig {
    /// Ports picked (free a moment ago) and pebble's own TLS certificate (for `127.0.0.1` and
    /// `localhost`) made.
    pub fn new() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(io("tempdir", Path::new("/tmp")))?;
        let key = rcgen::KeyPair::generate().map_err(|e| Error::Pebble(e.to_string()))?;
        let params = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .map_err(|e| Error::Pebble(e.to_string()))?;
        let certificate = params
            .self_signed(&key)
            .map_err(|e| Error::Pebble(e.to_string()))?;
        for (name, contents) in [
            ("cert.pem", certificate.pem()),
            ("key.pem", key.serialize_pem()),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, contents).map_err(io("write", &path))?;
        }
        Ok(Self {
            dir,
            acme_port: free_port()?,
            management_port: free_port()?,
            validity: None,
        })
    }

    /// Certificates valid for `seconds` (pebble's default is five years).
    pub fn with_certificate_validity(mut self, seconds: u64) -> Self {
        self.validity = Some(seconds);
        self
    }

    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.acme_port)
    }

    /// The certificate (PEM) pebble's own TLS presents: what an ACME client must trust.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Starts pebble: TLS-ALPN-01 validations connect to `tls_port` of whatever address `dns`
    /// (a DNS server, UDP) gives for the name. Challenges are validated at once, nonces never
    /// rejected, authorizations never reused.
    pub fn start(self, tls_port: u16, dns: SocketAddr) -> Result<Pebble> {
        let mut config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{}", self.acme_port),
                "managementListenAddress": format!("127.0.0.1:{}", self.management_port),
                "certificate": self.dir.path().join("cert.pem"),
                "privateKey": self.dir.path().join("key.pem"),
                // HTTP-01 is not used; TLS-ALPN-01 is.
                "httpPort": 1,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
            }
        });
        if let Some(seconds) = self.validity {
            config["pebble"]["certificateValidityPeriod"] = seconds.into();
        }
        let path = self.dir.path().join("pebble-config.json");
        std::fs::write(&path, config.to_string()).map_err(io("write", &path))?;
        let mut command = Command::new("pebble");
        command
            .arg("-config")
            .arg(&path)
            .args(["-dnsserver", &dns.to_string()])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .env("PEBBLE_AUTHZREUSE", "0");
        let process = Process::spawn("pebble", command, Signal::SIGTERM)?;
        process.wait_for_line("pebble's directory line", STARTUP_TIMEOUT, |l| {
            l.contains("ACME directory available at")
        })?;
        Ok(Pebble {
            process,
            config: self,
        })
    }
}

impl Pebble {
    /// The ACME directory URL.
    pub fn directory(&self) -> String {
        self.config.directory()
    }

    /// The root (DER) that pebble's issued certificates chain to (made when it started; asked
    /// of its management interface, which may start listening a moment after the directory).
    pub fn issuing_root(&self) -> Result<Vec<u8>> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.config.management_port));
        let fetched = crate::wait_for("pebble's /roots/0")
            .timeout(STARTUP_TIMEOUT)
            .watching(&self.process)
            .until_ok(
                || match crate::tls::get_with_chain(addr, "localhost", "/roots/0") {
                    Ok(f) if f.status == 200 => Ok(f),
                    Ok(f) => Err(format!("{} {}", f.status, f.body)),
                    Err(e) => Err(e),
                },
            )?;
        rustls::pki_types::pem::PemObject::from_pem_slice(fetched.body.as_bytes())
            .map(|der: rustls::pki_types::CertificateDer<'static>| der.to_vec())
            .map_err(|e| Error::Pebble(format!("the root: {e}")))
    }

    /// The process (to watch while waiting, or read its log).
    pub fn process(&self) -> &Process {
        &self.process
    }
}
