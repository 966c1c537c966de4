//! A real anvil (from `node_modules/.bin`) on a free loopback port, with a fixed mnemonic so
//! addresses and keys are the same in every run, stopped when dropped.

use std::{
    ffi::OsString,
    net::{Ipv4Addr, SocketAddr},
    process::Command,
    time::Duration,
};

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::{Error, Result, process::Process, rpc, tools, wait::Watched};

/// The mnemonic every test anvil derives its accounts from.
pub const TEST_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// The chain id of a test anvil unless set otherwise.
pub const DEFAULT_CHAIN_ID: u64 = 31_337;

const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);

/// One of anvil's funded accounts, as anvil printed it at start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestAccount {
    /// The checksummed `0x…` address.
    pub address: String,
    /// The `0x…` hex private key (a public test key: never use it for anything else).
    pub private_key: String,
}

/// Options for a test anvil; finish with [`AnvilBuilder::spawn`] or [`AnvilBuilder::try_spawn`].
#[derive(Clone, Debug)]
pub struct AnvilBuilder {
    block_time: Option<Duration>,
    chain_id: u64,
    port: Option<u16>,
    extra_args: Vec<OsString>,
}

impl Default for AnvilBuilder {
    fn default() -> Self {
        Self {
            block_time: None,
            chain_id: DEFAULT_CHAIN_ID,
            port: None,
            extra_args: Vec::new(),
        }
    }
}

impl AnvilBuilder {
    /// Mines a block every `interval` instead of one per transaction.
    pub fn with_block_time(mut self, interval: Duration) -> Self {
        self.block_time = Some(interval);
        self
    }

    /// Sets the chain id (default [`DEFAULT_CHAIN_ID`]).
    pub fn with_chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = chain_id;
        self
    }

    /// Asks for a specific port; if it is taken, a free one is used instead.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Passes an extra command-line argument to anvil.
    pub fn with_arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Starts anvil and waits until it answers JSON-RPC; panics on failure.
    #[allow(clippy::expect_used)]
    pub fn spawn(self) -> Anvil {
        self.try_spawn().expect("start anvil")
    }

    /// Starts anvil and waits until it answers JSON-RPC.
    pub fn try_spawn(self) -> Result<Anvil> {
        let program = tools::foundry_bin("anvil")?;
        // A requested port may be taken; then fall back to one the kernel picks.
        let attempts = match self.port {
            Some(port) => vec![port, 0],
            None => vec![0],
        };
        let mut last_error = None;
        for port in attempts {
            let mut command = Command::new(&program);
            command
                .args(["--host", "127.0.0.1", "--port", &port.to_string()])
                .args(["--chain-id", &self.chain_id.to_string()])
                .args(["--mnemonic", TEST_MNEMONIC, "--accounts", "10"])
                .args(&self.extra_args);
            if let Some(interval) = self.block_time {
                command.args(["--block-time", &interval.as_secs_f64().to_string()]);
            }
            let process = Process::spawn("anvil", command, Signal::SIGKILL)?;
            match process.wait_for_line("its listening address", STARTUP_TIMEOUT, |line| {
                line.starts_with("Listening on ")
            }) {
                Ok(line) => return Anvil::ready(process, &line, self.chain_id),
                Err(e) if port != 0 && process.log_contains("Address already in use") => {
                    last_error = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last_error.unwrap_or(Error::Timeout {
            what: "anvil to start".into(),
            after: STARTUP_TIMEOUT,
            last: None,
        }))
    }
}

/// A running anvil. Dropping it kills the process.
#[derive(Debug)]
pub struct Anvil {
    process: Process,
    addr: SocketAddr,
    chain_id: u64,
    accounts: Vec<TestAccount>,
}

impl Anvil {
    /// Options for a test anvil.
    pub fn builder() -> AnvilBuilder {
        AnvilBuilder::default()
    }

    /// Starts an anvil with default options (automine, chain id 31337); panics on failure.
    pub fn spawn() -> Self {
        Self::builder().spawn()
    }

    fn ready(process: Process, listening: &str, chain_id: u64) -> Result<Self> {
        let port = listening
            .rsplit(':')
            .next()
            .and_then(|port| port.trim().parse::<u16>().ok())
            .ok_or_else(|| Error::Rpc {
                method: "start-up".into(),
                endpoint: "anvil".into(),
                reason: format!("unexpected listening line {listening:?}"),
            })?;
        let accounts = parse_accounts(&process.log_tail(usize::MAX));
        let anvil = Self {
            process,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            chain_id,
            accounts,
        };
        let answered = anvil.rpc("eth_chainId", Value::Array(vec![]))?;
        let expected = format!("{chain_id:#x}");
        if answered.as_str() != Some(expected.as_str()) {
            return Err(Error::Rpc {
                method: "eth_chainId".into(),
                endpoint: anvil.endpoint(),
                reason: format!("answered {answered}, expected {expected}"),
            });
        }
        Ok(anvil)
    }

    /// The HTTP JSON-RPC endpoint, `http://127.0.0.1:<port>`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The WebSocket JSON-RPC endpoint, `ws://127.0.0.1:<port>`.
    pub fn ws_endpoint(&self) -> String {
        format!("ws://{}", self.addr)
    }

    /// The port anvil listens on.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The chain id.
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    /// The ten funded accounts derived from [`TEST_MNEMONIC`].
    pub fn accounts(&self) -> &[TestAccount] {
        &self.accounts
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The last lines anvil printed.
    pub fn log(&self) -> String {
        self.process.log_tail(200)
    }

    /// Calls a JSON-RPC method (e.g. `evm_mine`, `eth_blockNumber`) and returns its result.
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value> {
        match rpc::json_rpc(self.addr, method, params) {
            // A refused call to a dead anvil is reported with anvil's own log.
            Err(e) => Err(self.process.ensure_alive().err().unwrap_or(e)),
            ok => ok,
        }
    }

    /// The current block number.
    pub fn block_number(&self) -> Result<u64> {
        let answer = self.rpc("eth_blockNumber", Value::Array(vec![]))?;
        answer
            .as_str()
            .and_then(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
            .ok_or_else(|| Error::Rpc {
                method: "eth_blockNumber".into(),
                endpoint: self.endpoint(),
                reason: format!("not a hex quantity: {answer}"),
            })
    }
}

impl Watched for Anvil {
    fn ensure_alive(&self) -> Result<()> {
        self.process.ensure_alive()
    }
}

/// Reads the "Available Accounts" and "Private Keys" sections anvil prints at start-up.
fn parse_accounts(startup_output: &str) -> Vec<TestAccount> {
    let mut addresses = Vec::new();
    let mut keys = Vec::new();
    let mut section = None;
    for line in startup_output.lines() {
        match line.trim() {
            "Available Accounts" => section = Some(&mut addresses),
            "Private Keys" => section = Some(&mut keys),
            "Wallet" | "Chain ID" => section = None,
            trimmed => {
                if let (Some(list), Some(rest)) = (section.as_mut(), trimmed.strip_prefix('('))
                    && let Some((_, value)) = rest.split_once(") ")
                {
                    list.push(
                        value
                            .split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        }
    }
    addresses
        .into_iter()
        .zip(keys)
        .map(|(address, private_key)| TestAccount {
            address,
            private_key,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_account_sections_anvil_prints() {
        let output = "Available Accounts\n==================\n\n\
            (0) 0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266 (10000.000000000000000000 ETH)\n\
            (1) 0x70997970C51812dc3A010C7d01b50e0d17dc79C8 (10000.000000000000000000 ETH)\n\n\
            Private Keys\n==================\n\n\
            (0) 0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n\
            (1) 0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d\n\n\
            Wallet\n==================\nMnemonic: test test\n";
        let accounts = parse_accounts(output);
        assert_eq!(accounts.len(), 2);
        assert_eq!(
            accounts[1].address,
            "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
        );
        assert_eq!(
            accounts[1].private_key,
            "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"
        );
    }
}
