//! The registry's `isAppAllowed` / `isKmsAllowed` rules evaluated over mirrored facts, with the
//! contracts' own reason strings, as pure functions over [`BootInfo`]. The caller gathers the
//! facts at one block ([`crate::facts`]). Apps whose policy the mirror cannot reproduce (custom
//! policy contracts, or an App implementation other than the deployment's) are answered by
//! `eth_call` at that block instead.

use alloy::primitives::{Address, B256, FixedBytes};
use covenant_chain::BootInfo;
use serde::{Deserialize, Serialize};

/// A `BootInfo`, as the API accepts it (hex strings; enums as names or numbers).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootInfoJson {
    /// The app's address.
    #[schema(value_type = String, example = "0x1111111111111111111111111111111111111111")]
    pub app_id: Address,
    /// Compose hash (32 bytes, 0x-hex).
    #[schema(value_type = String)]
    pub compose_hash: B256,
    /// Instance id (20 bytes, 0x-hex).
    #[schema(value_type = String)]
    pub instance_id: FixedBytes<20>,
    /// Device id (32 bytes, 0x-hex).
    #[schema(value_type = String)]
    pub device_id: B256,
    /// Aggregated measurement (32 bytes, 0x-hex).
    #[schema(value_type = String)]
    pub mr_aggregated: B256,
    /// OS image hash (32 bytes, 0x-hex).
    #[schema(value_type = String)]
    pub os_image_hash: B256,
    /// sha256 of the OS registers (32 bytes, 0x-hex): MRTD ‖ RTMR0..2 or the SEV-SNP MEASUREMENT.
    #[schema(value_type = String)]
    pub os_measurement: B256,
    /// TEE kind: `unknown`, `tdx`, `sevSnp`, `simulated` or 0..=3.
    pub tee_kind: EnumValue,
    /// TCB status: `unknown`, `upToDate`, `swHardeningNeeded`, `configurationNeeded`,
    /// `configurationAndSwHardeningNeeded`, `outOfDate`, `outOfDateConfigurationNeeded`,
    /// `revoked`, or 0..=7.
    pub tcb_status: EnumValue,
    /// GPU evidence hash (zero when none).
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub gpu_evidence_hash: B256,
    /// Key generation.
    pub key_generation: u64,
}

/// An enum given by name or number.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq, utoipa::ToSchema)]
#[serde(untagged)]
pub enum EnumValue {
    /// By number.
    Number(u8),
    /// By name.
    Name(String),
}

const TEE_KINDS: [&str; 4] = ["unknown", "tdx", "sevSnp", "simulated"];
const TCB_STATUSES: [&str; 8] = [
    "unknown",
    "upToDate",
    "swHardeningNeeded",
    "configurationNeeded",
    "configurationAndSwHardeningNeeded",
    "outOfDate",
    "outOfDateConfigurationNeeded",
    "revoked",
];

fn enum_index(v: &EnumValue, names: &[&str], what: &str) -> Result<u8, String> {
    match v {
        EnumValue::Number(n) if (*n as usize) < names.len() => Ok(*n),
        EnumValue::Number(n) => Err(format!(
            "{what} {n} is out of range 0..={}",
            names.len() - 1
        )),
        EnumValue::Name(s) => names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(s))
            .map(|i| i as u8)
            .ok_or_else(|| format!("unknown {what} `{s}`; expected one of {}", names.join(", "))),
    }
}

impl BootInfoJson {
    /// The TEE kind's number.
    pub fn tee_kind(&self) -> Result<u8, String> {
        enum_index(&self.tee_kind, &TEE_KINDS, "teeKind")
    }
    /// The TCB status's number.
    pub fn tcb_status(&self) -> Result<u8, String> {
        enum_index(&self.tcb_status, &TCB_STATUSES, "tcbStatus")
    }
    /// The on-chain `BootInfo` (an enum given by an unknown name or out of range is refused).
    pub fn to_boot_info(&self) -> Result<BootInfo, String> {
        Ok(BootInfo {
            appId: self.app_id,
            composeHash: self.compose_hash,
            instanceId: self.instance_id,
            deviceId: self.device_id,
            mrAggregated: self.mr_aggregated,
            osImageHash: self.os_image_hash,
            osMeasurement: self.os_measurement,
            teeKind: self.tee_kind()?,
            tcbStatus: self.tcb_status()?,
            gpuEvidenceHash: self.gpu_evidence_hash,
            keyGeneration: self.key_generation,
        })
    }
}

/// The registry-wide facts a decision reads, at one block (and its timestamp).
#[derive(Clone, Debug, Default)]
pub struct RegistryFacts {
    /// `allowSimulatedTee`.
    pub allow_simulated_tee: bool,
    /// Whether the boot's OS image is allowed.
    pub os_image_allowed: bool,
    /// Whether its notice period has passed at the block's timestamp.
    pub os_image_effective: bool,
    /// Whether the boot's OS measurement is registered with the image for the boot's TEE kind.
    pub os_measurement_registered: bool,
}

/// An app's settings, as `App.settings()` reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    /// Bit i set = TEE kind i allowed.
    pub allowed_tee_kinds: u8,
    /// Any device is allowed.
    pub any_device: bool,
    /// TCB must be up to date.
    pub require_up_to_date_tcb: bool,
    /// GPU evidence is required.
    pub require_gpu: bool,
}

/// An app's settings schedule (the `SettingsScheduled` event): `before` until `effective_at`,
/// `scheduled` from then on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SettingsSchedule {
    /// In force before `effective_at`.
    pub before: Settings,
    /// In force from `effective_at` on.
    pub scheduled: Settings,
    /// Block timestamp.
    pub effective_at: u64,
}

impl SettingsSchedule {
    /// The settings in force at block timestamp `now`.
    pub fn at(&self, now: u64) -> &Settings {
        if now >= self.effective_at {
            &self.scheduled
        } else {
            &self.before
        }
    }
}

/// How an app is registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppRegistration {
    /// Not registered.
    None,
    /// A factory app running the deployment's App implementation: the mirror decides.
    Mirrored(AppFacts),
    /// A custom policy, or an App implementation the mirror does not model: ask the chain.
    Delegated,
}

/// A factory app's policy facts for one boot, at one block's timestamp.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppFacts {
    /// The boot's compose hash is allowed.
    pub compose_hash_allowed: bool,
    /// ... and its notice period has passed.
    pub compose_hash_effective: bool,
    /// The boot's device is allowed.
    pub device_allowed: bool,
    /// ... and its notice period has passed.
    pub device_effective: bool,
    /// Any device is allowed (in force).
    pub any_device: bool,
    /// Bit i set = TEE kind i allowed (in force).
    pub allowed_tee_kinds: u8,
    /// TCB must be up to date (in force).
    pub require_up_to_date_tcb: bool,
    /// GPU evidence is required (in force).
    pub require_gpu: bool,
    /// The current key generation.
    pub key_generation: u64,
}

/// A policy answer, as the contracts give it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// Whether the boot is allowed.
    pub allowed: bool,
    /// Empty when allowed; the contract's reason otherwise.
    pub reason: String,
}

impl Decision {
    /// Allowed.
    pub fn allow() -> Self {
        Self {
            allowed: true,
            reason: String::new(),
        }
    }
    /// Denied for `reason`.
    pub fn deny(reason: &str) -> Self {
        Self {
            allowed: false,
            reason: reason.to_owned(),
        }
    }
}

const TEE_UNKNOWN: u8 = 0;
const TEE_SIMULATED: u8 = 3;
const TCB_UNKNOWN: u8 = 0;
const TCB_UP_TO_DATE: u8 = 1;
const TCB_REVOKED: u8 = 7;

fn platform(tee: u8, tcb: u8, r: &RegistryFacts) -> Option<Decision> {
    if tee == TEE_UNKNOWN {
        return Some(Decision::deny("unknown tee kind"));
    }
    if tee == TEE_SIMULATED && !r.allow_simulated_tee {
        return Some(Decision::deny("simulated tee not allowed"));
    }
    if tcb == TCB_UNKNOWN || tcb == TCB_REVOKED {
        return Some(Decision::deny("tcb status not acceptable"));
    }
    if !r.os_image_allowed {
        return Some(Decision::deny("os image not allowed"));
    }
    if !r.os_image_effective {
        return Some(Decision::deny("os image not yet effective"));
    }
    if !r.os_measurement_registered {
        return Some(Decision::deny("os measurement not allowed"));
    }
    None
}

/// `KmsRegistry.isAppAllowed`. `None`: the app's own contract must be asked.
pub fn app_decision(
    boot: &BootInfo,
    registry: &RegistryFacts,
    app: &AppRegistration,
) -> Option<Decision> {
    let (tee, tcb) = (boot.teeKind, boot.tcbStatus);
    let facts = match app {
        AppRegistration::None => return Some(Decision::deny("app not registered")),
        AppRegistration::Mirrored(f) => Some(f),
        AppRegistration::Delegated => None,
    };
    if let Some(d) = platform(tee, tcb, registry) {
        return Some(d);
    }
    let f = facts?;
    let d = if !f.compose_hash_allowed {
        Decision::deny("compose hash not allowed")
    } else if !f.compose_hash_effective {
        Decision::deny("compose hash not yet effective")
    } else if !f.any_device && !f.device_allowed {
        Decision::deny("device not allowed")
    } else if !f.any_device && !f.device_effective {
        Decision::deny("device not yet effective")
    } else if (f.allowed_tee_kinds >> tee) & 1 == 0 {
        Decision::deny("tee kind not allowed")
    } else if f.require_up_to_date_tcb && tcb != TCB_UP_TO_DATE {
        Decision::deny("tcb not up to date")
    } else if f.require_gpu && boot.gpuEvidenceHash == B256::ZERO {
        Decision::deny("gpu evidence required")
    } else if boot.keyGeneration != f.key_generation {
        Decision::deny("key generation not current")
    } else if boot.instanceId == FixedBytes::<20>::ZERO {
        Decision::deny("instance id missing")
    } else {
        Decision::allow()
    };
    Some(d)
}

/// `KmsRegistry.isKmsAllowed`.
pub fn kms_decision(
    boot: &BootInfo,
    registry: &RegistryFacts,
    measurement_allowed: bool,
    device_allowed: bool,
) -> Decision {
    let (tee, tcb) = (boot.teeKind, boot.tcbStatus);
    if let Some(d) = platform(tee, tcb, registry) {
        return d;
    }
    if tcb != TCB_UP_TO_DATE {
        return Decision::deny("tcb not up to date");
    }
    if !measurement_allowed {
        return Decision::deny("kms measurement not allowed");
    }
    if !device_allowed {
        return Decision::deny("kms device not allowed");
    }
    Decision::allow()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn boot() -> BootInfoJson {
        serde_json::from_value(serde_json::json!({
            "appId": "0x1111111111111111111111111111111111111111",
            "composeHash": format!("0x{}", "22".repeat(32)),
            "instanceId": format!("0x{}", "33".repeat(20)),
            "deviceId": format!("0x{}", "44".repeat(32)),
            "mrAggregated": format!("0x{}", "55".repeat(32)),
            "osImageHash": format!("0x{}", "66".repeat(32)),
            "osMeasurement": format!("0x{}", "77".repeat(32)),
            "teeKind": "tdx",
            "tcbStatus": 1,
            "keyGeneration": 1
        }))
        .unwrap()
    }

    fn good() -> (RegistryFacts, AppFacts) {
        (
            RegistryFacts {
                allow_simulated_tee: false,
                os_image_allowed: true,
                os_image_effective: true,
                os_measurement_registered: true,
            },
            AppFacts {
                compose_hash_allowed: true,
                compose_hash_effective: true,
                device_allowed: true,
                device_effective: true,
                any_device: false,
                allowed_tee_kinds: 0b0110,
                require_up_to_date_tcb: true,
                require_gpu: false,
                key_generation: 1,
            },
        )
    }

    #[test]
    fn reasons_match_the_contracts_in_their_order() {
        let b = boot();
        let (r, a) = good();
        let decide = |b: &BootInfoJson, r: &RegistryFacts, a: AppFacts| {
            app_decision(&b.to_boot_info().unwrap(), r, &AppRegistration::Mirrored(a)).unwrap()
        };
        assert_eq!(decide(&b, &r, a.clone()), Decision::allow());
        let cases: Vec<(&str, BootInfoJson, RegistryFacts, AppFacts)> = vec![
            (
                "unknown tee kind",
                BootInfoJson {
                    tee_kind: EnumValue::Number(0),
                    ..b.clone()
                },
                r.clone(),
                a.clone(),
            ),
            (
                "simulated tee not allowed",
                BootInfoJson {
                    tee_kind: EnumValue::Name("simulated".into()),
                    ..b.clone()
                },
                r.clone(),
                a.clone(),
            ),
            (
                "tcb status not acceptable",
                BootInfoJson {
                    tcb_status: EnumValue::Name("revoked".into()),
                    ..b.clone()
                },
                r.clone(),
                a.clone(),
            ),
            (
                "os image not allowed",
                b.clone(),
                RegistryFacts {
                    os_image_allowed: false,
                    ..r.clone()
                },
                a.clone(),
            ),
            (
                "os image not yet effective",
                b.clone(),
                RegistryFacts {
                    os_image_effective: false,
                    ..r.clone()
                },
                a.clone(),
            ),
            (
                "os measurement not allowed",
                b.clone(),
                RegistryFacts {
                    os_measurement_registered: false,
                    ..r.clone()
                },
                a.clone(),
            ),
            (
                "compose hash not allowed",
                b.clone(),
                r.clone(),
                AppFacts {
                    compose_hash_allowed: false,
                    ..a.clone()
                },
            ),
            (
                "compose hash not yet effective",
                b.clone(),
                r.clone(),
                AppFacts {
                    compose_hash_effective: false,
                    ..a.clone()
                },
            ),
            (
                "device not yet effective",
                b.clone(),
                r.clone(),
                AppFacts {
                    device_effective: false,
                    ..a.clone()
                },
            ),
            (
                "device not allowed",
                b.clone(),
                r.clone(),
                AppFacts {
                    device_allowed: false,
                    ..a.clone()
                },
            ),
            (
                "tee kind not allowed",
                b.clone(),
                r.clone(),
                AppFacts {
                    allowed_tee_kinds: 0b0100,
                    ..a.clone()
                },
            ),
            (
                "tcb not up to date",
                BootInfoJson {
                    tcb_status: EnumValue::Number(5),
                    ..b.clone()
                },
                r.clone(),
                a.clone(),
            ),
            (
                "gpu evidence required",
                b.clone(),
                r.clone(),
                AppFacts {
                    require_gpu: true,
                    ..a.clone()
                },
            ),
            (
                "key generation not current",
                BootInfoJson {
                    key_generation: 2,
                    ..b.clone()
                },
                r.clone(),
                a.clone(),
            ),
            (
                "instance id missing",
                BootInfoJson {
                    instance_id: FixedBytes::ZERO,
                    ..b.clone()
                },
                r.clone(),
                a.clone(),
            ),
        ];
        for (reason, b, r, a) in cases {
            assert_eq!(decide(&b, &r, a), Decision::deny(reason), "{reason}");
        }
        // Any device overrides the device list, pending devices included.
        assert!(
            decide(
                &b,
                &r,
                AppFacts {
                    device_allowed: false,
                    device_effective: false,
                    any_device: true,
                    ..a
                }
            )
            .allowed
        );
    }

    fn with(tee: u8, tcb: u8) -> BootInfo {
        BootInfo {
            teeKind: tee,
            tcbStatus: tcb,
            ..boot().to_boot_info().unwrap()
        }
    }

    #[test]
    fn unregistered_and_delegated_apps() {
        let b = with(1, 1);
        let (r, _) = good();
        assert_eq!(
            app_decision(&b, &r, &AppRegistration::None),
            Some(Decision::deny("app not registered"))
        );
        // The registry's own checks still apply before delegating.
        let no_image = RegistryFacts {
            os_image_allowed: false,
            ..r.clone()
        };
        assert_eq!(
            app_decision(&b, &no_image, &AppRegistration::Delegated),
            Some(Decision::deny("os image not allowed"))
        );
        assert_eq!(app_decision(&b, &r, &AppRegistration::Delegated), None);
    }

    #[test]
    fn kms_rules() {
        let (r, _) = good();
        assert!(kms_decision(&with(1, 1), &r, true, true).allowed);
        assert_eq!(
            kms_decision(&with(1, 2), &r, true, true),
            Decision::deny("tcb not up to date")
        );
        assert_eq!(
            kms_decision(&with(1, 1), &r, false, true),
            Decision::deny("kms measurement not allowed")
        );
        assert_eq!(
            kms_decision(&with(1, 1), &r, true, false),
            Decision::deny("kms device not allowed")
        );
    }

    #[test]
    fn a_settings_schedule_switches_at_its_effective_time() {
        let strict = Settings {
            allowed_tee_kinds: 0b0010,
            require_up_to_date_tcb: true,
            ..Settings::default()
        };
        let loose = Settings {
            allowed_tee_kinds: 0b1110,
            any_device: true,
            ..Settings::default()
        };
        let s = SettingsSchedule {
            before: strict.clone(),
            scheduled: loose.clone(),
            effective_at: 100,
        };
        assert_eq!(s.at(99), &strict);
        assert_eq!(s.at(100), &loose);
        assert_eq!(s.at(u64::MAX), &loose);
    }

    #[test]
    fn enum_names_and_numbers_are_checked() {
        let mut b = boot();
        b.tee_kind = EnumValue::Number(4);
        assert!(b.tee_kind().unwrap_err().contains("out of range"));
        b.tcb_status = EnumValue::Name("fine".into());
        assert!(
            b.tcb_status()
                .unwrap_err()
                .contains("unknown tcbStatus `fine`")
        );
    }
}
