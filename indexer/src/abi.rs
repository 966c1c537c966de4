//! Dynamic decoding with the committed ABIs: every log of a mirrored contract becomes a named
//! JSON object (parameter names from the ABI), and calldata of governance proposals becomes a
//! readable call such as `App(0x…).addComposeHash(composeHash: 0x…, provenance: {…})`.

use std::collections::HashMap;

use alloy::{
    dyn_abi::{DynSolValue, EventExt, JsonAbiExt},
    json_abi::{Event, Function, JsonAbi, Param},
    primitives::{B256, Selector},
};
use serde_json::{Map, Value, json};

/// Which of Covenant's contracts emitted a log or is the target of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Source {
    /// The KMS registry.
    KmsRegistry,
    /// An app created by the registry's factory (or a registered custom app).
    App,
    /// The domain registry.
    DomainRegistry,
    /// The Governor.
    Governor,
    /// The Timelock.
    Timelock,
    /// The votes token.
    Token,
    /// The Timelock's cancel-only guardian.
    Guardian,
}

impl Source {
    /// Every source.
    pub const ALL: [Source; 7] = [
        Self::KmsRegistry,
        Self::App,
        Self::DomainRegistry,
        Self::Governor,
        Self::Timelock,
        Self::Token,
        Self::Guardian,
    ];

    /// The name stored in `events.source`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::KmsRegistry => "kms_registry",
            Self::App => "app",
            Self::DomainRegistry => "domain_registry",
            Self::Governor => "governor",
            Self::Timelock => "timelock",
            Self::Token => "token",
            Self::Guardian => "guardian",
        }
    }

    /// The contract's name, as shown in decoded calls.
    pub fn contract_name(self) -> &'static str {
        match self {
            Self::KmsRegistry => "KmsRegistry",
            Self::App => "App",
            Self::DomainRegistry => "DomainRegistry",
            Self::Governor => "CovenantGovernor",
            Self::Timelock => "TimelockController",
            Self::Token => "CovenantToken",
            Self::Guardian => "CovenantGuardian",
        }
    }

    /// Whether this source's events change the policy the kms-oracle and gateway enforce.
    pub fn is_policy(self) -> bool {
        matches!(self, Self::KmsRegistry | Self::App | Self::DomainRegistry)
    }

    fn abi_json(self) -> &'static str {
        use covenant_chain::abi_json as j;
        match self {
            Self::KmsRegistry => j::KMS_REGISTRY,
            Self::App => j::APP,
            Self::DomainRegistry => j::DOMAIN_REGISTRY,
            Self::Governor => j::GOVERNOR,
            Self::Timelock => j::TIMELOCK,
            Self::Token => j::TOKEN,
            Self::Guardian => j::GUARDIAN,
        }
    }
}

/// The ABIs of every source, indexed by event topic and function selector.
#[derive(Debug)]
pub struct Abis {
    events: HashMap<(Source, B256), Event>,
    functions: HashMap<(Source, Selector), Function>,
}

/// Why a log or calldata could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum AbiError {
    /// The committed ABI is not valid JSON ABI (a build problem).
    #[error("abi of {0:?} is malformed: {1}")]
    Malformed(Source, String),
    /// No event of this contract has that topic.
    #[error("{0} has no event with topic {1}")]
    UnknownEvent(&'static str, B256),
    /// The log has no topic.
    #[error("anonymous log")]
    Anonymous,
    /// The data does not match the ABI.
    #[error("{0}")]
    Decode(String),
}

impl Abis {
    /// Loads the committed ABIs.
    pub fn load() -> Result<Self, AbiError> {
        let mut events = HashMap::new();
        let mut functions = HashMap::new();
        for source in Source::ALL {
            let abi: JsonAbi = serde_json::from_str(source.abi_json())
                .map_err(|e| AbiError::Malformed(source, e.to_string()))?;
            for event in abi.events() {
                events.insert((source, event.selector()), event.clone());
            }
            for function in abi.functions() {
                functions.insert((source, function.selector()), function.clone());
            }
        }
        Ok(Self { events, functions })
    }

    /// Decodes a log of `source` into its event name and a JSON object of its parameters.
    pub fn decode_log(
        &self,
        source: Source,
        topics: &[B256],
        data: &[u8],
    ) -> Result<(String, Value), AbiError> {
        let topic0 = topics.first().ok_or(AbiError::Anonymous)?;
        let event = self
            .events
            .get(&(source, *topic0))
            .ok_or(AbiError::UnknownEvent(source.contract_name(), *topic0))?;
        let decoded = event
            .decode_log_parts(topics.iter().copied(), data)
            .map_err(|e| AbiError::Decode(e.to_string()))?;
        let mut indexed = decoded.indexed.into_iter();
        let mut body = decoded.body.into_iter();
        let mut out = Map::new();
        for (i, input) in event.inputs.iter().enumerate() {
            let value = if input.indexed {
                indexed.next()
            } else {
                body.next()
            };
            let value = value.ok_or_else(|| AbiError::Decode("parameter count mismatch".into()))?;
            out.insert(param_key(&input.name, i), render(&value, &input.components));
        }
        Ok((event.name.clone(), Value::Object(out)))
    }

    /// Decodes calldata sent to a contract of kind `source` (`None`: not one of ours) at
    /// `target` into a readable call.
    pub fn decode_call(
        &self,
        source: Option<Source>,
        target: &str,
        value: &str,
        calldata: &[u8],
    ) -> Value {
        let raw = || json!({ "target": target, "value": value, "calldata": hex_str(calldata) });
        let (Some(source), Some(selector)) = (source, calldata.get(..4)) else {
            let mut v = raw();
            v["text"] = json!(format!(
                "{target}.call({}) — not a Covenant contract or no selector",
                hex_str(calldata)
            ));
            return v;
        };
        let selector = Selector::from_slice(selector);
        let Some(function) = self.functions.get(&(source, selector)) else {
            let mut v = raw();
            v["contract"] = json!(source.contract_name());
            v["text"] = json!(format!(
                "{}({target}).<unknown function {selector}>",
                source.contract_name()
            ));
            return v;
        };
        match function.abi_decode_input(&calldata[4..]) {
            Ok(args) => {
                let rendered: Vec<(String, Value)> = function
                    .inputs
                    .iter()
                    .zip(&args)
                    .enumerate()
                    .map(|(i, (p, a))| (param_key(&p.name, i), render(a, &p.components)))
                    .collect();
                let text_args = rendered
                    .iter()
                    .map(|(k, v)| format!("{k}: {}", compact(v)))
                    .collect::<Vec<_>>()
                    .join(", ");
                let value_note = if value == "0" {
                    String::new()
                } else {
                    format!(" {{value: {value}}}")
                };
                let mut v = raw();
                v["contract"] = json!(source.contract_name());
                v["function"] = json!(function.name);
                v["signature"] = json!(function.signature());
                v["args"] = Value::Object(rendered.into_iter().collect());
                v["text"] = json!(format!(
                    "{}({target}).{}({text_args}){value_note}",
                    source.contract_name(),
                    function.name
                ));
                v
            }
            Err(e) => {
                let mut v = raw();
                v["contract"] = json!(source.contract_name());
                v["function"] = json!(function.name);
                v["text"] = json!(format!(
                    "{}({target}).{}(<undecodable arguments: {e}>)",
                    source.contract_name(),
                    function.name
                ));
                v
            }
        }
    }
}

fn param_key(name: &str, index: usize) -> String {
    if name.is_empty() {
        format!("_{index}")
    } else {
        name.trim_end_matches('_').to_owned()
    }
}

fn hex_str(bytes: &[u8]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// JSON for an ABI value: numbers up to 64 bits as JSON numbers, wider ones as decimal strings,
/// bytes as 0x-hex, addresses checksummed, tuples as objects keyed by component name.
pub fn render(value: &DynSolValue, components: &[Param]) -> Value {
    match value {
        DynSolValue::Bool(b) => json!(b),
        DynSolValue::Uint(u, bits) => {
            if *bits <= 64 {
                json!(u.to::<u64>())
            } else {
                json!(u.to_string())
            }
        }
        DynSolValue::Int(i, bits) => {
            if *bits <= 64 {
                json!(i.as_i64())
            } else {
                json!(i.to_string())
            }
        }
        DynSolValue::Address(a) => json!(a.to_checksum(None)),
        DynSolValue::Function(f) => json!(hex_str(f.as_slice())),
        DynSolValue::FixedBytes(w, size) => json!(hex_str(&w[..*size])),
        DynSolValue::Bytes(b) => json!(hex_str(b)),
        DynSolValue::String(s) => json!(s),
        DynSolValue::Array(items) | DynSolValue::FixedArray(items) => {
            Value::Array(items.iter().map(|i| render(i, components)).collect())
        }
        DynSolValue::Tuple(items) => {
            let mut out = Map::new();
            for (i, item) in items.iter().enumerate() {
                let (name, sub) = components
                    .get(i)
                    .map(|p| (param_key(&p.name, i), p.components.as_slice()))
                    .unwrap_or_else(|| (format!("_{i}"), &[]));
                out.insert(name, render(item, sub));
            }
            Value::Object(out)
        }
        #[allow(unreachable_patterns)]
        other => json!(format!("{other:?}")),
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) if s.starts_with("0x") => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::{
        primitives::{Address, b256},
        sol_types::{SolCall, SolEvent},
    };
    use covenant_chain::{app, kms_registry};

    #[test]
    fn renders_an_add_compose_hash_call_with_names() {
        let abis = Abis::load().unwrap();
        let call = app::App::addComposeHashCall {
            composeHash: b256!("1111111111111111111111111111111111111111111111111111111111111111"),
            provenance: app::App::Provenance {
                sourceUrl: "https://example.invalid/repo".into(),
                sourceCommit: "abc123".into(),
                artifactDigests: vec![B256::repeat_byte(0x22)],
            },
        };
        let target = Address::repeat_byte(0x33).to_checksum(None);
        let v = abis.decode_call(Some(Source::App), &target, "0", &call.abi_encode());
        assert_eq!(v["function"], "addComposeHash");
        assert_eq!(v["args"]["provenance"]["sourceCommit"], "abc123");
        let text = v["text"].as_str().unwrap();
        assert!(
            text.starts_with(&format!("App({target}).addComposeHash(composeHash: 0x1111")),
            "{text}"
        );
        assert!(
            text.contains("\"sourceUrl\":\"https://example.invalid/repo\""),
            "{text}"
        );
    }

    #[test]
    fn unknown_selectors_and_targets_stay_raw_but_readable() {
        let abis = Abis::load().unwrap();
        let v = abis.decode_call(Some(Source::KmsRegistry), "0xabc", "0", &[1, 2, 3, 4, 5]);
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .contains("unknown function 0x01020304")
        );
        assert_eq!(v["calldata"], "0x0102030405");
        let v = abis.decode_call(None, "0xabc", "5", &[]);
        assert!(
            v["text"]
                .as_str()
                .unwrap()
                .contains("not a Covenant contract")
        );
    }

    #[test]
    fn decodes_logs_with_indexed_and_body_parameters() {
        let abis = Abis::load().unwrap();
        let ev = kms_registry::KmsRegistry::GrantLogCommitted {
            node: Address::repeat_byte(1),
            fromSeq: 5,
            toSeq: 9,
            merkleRoot: B256::repeat_byte(7),
        };
        let data = ev.encode_log_data();
        let (name, v) = abis
            .decode_log(Source::KmsRegistry, data.topics(), &data.data)
            .unwrap();
        assert_eq!(name, "GrantLogCommitted");
        assert_eq!(v["fromSeq"], 5);
        assert_eq!(v["toSeq"], 9);
        assert_eq!(v["node"], Address::repeat_byte(1).to_checksum(None));
        // A topic of another contract is refused, not guessed.
        assert!(matches!(
            abis.decode_log(Source::App, data.topics(), &data.data),
            Err(AbiError::UnknownEvent("App", _))
        ));
    }
}
