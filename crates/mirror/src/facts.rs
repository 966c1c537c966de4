//! Policy facts read from the mirror *as of one block*: what `isAppAllowed` / `isKmsAllowed`
//! decide over, a KMS node's record and the KMS root keys. The indexer's API answers with them,
//! and the [`crate::PolicyView`] reads them at the exact finalized block it decides at (then
//! cross-checks the decision by `eth_call` at that block's hash). Reads only; every statement is
//! in [`crate::read`].

use std::{collections::BTreeMap, str::FromStr};

use alloy::primitives::{Address, B256};
use covenant_chain::BootInfo;
use serde_json::Value;
use sqlx::PgConnection;

use crate::{
    Result, read,
    rules::{self, AppFacts, AppRegistration, Decision, RegistryFacts, SettingsSchedule},
};

/// A member's `effectiveAt` (absent: effective from the start).
fn effective_at(data: &Value) -> u64 {
    data.get("effectiveAt").and_then(Value::as_u64).unwrap_or(0)
}

/// The mirror's answer about an app boot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppAnswer {
    /// The decision, or `None` when only the app's own contract can decide (custom policy
    /// contracts, App implementations the mirror does not model).
    pub decision: Option<Decision>,
    /// The app's key generation, when the mirror models the app.
    pub key_generation: Option<u64>,
}

/// Registry-wide facts for `boot` at block `at`, whose timestamp is `now`.
pub async fn registry_facts(
    c: &mut PgConnection,
    registry: Address,
    boot: &BootInfo,
    at: u64,
    now: u64,
) -> Result<RegistryFacts> {
    let settings = read::settings_at(c, registry.as_slice(), at).await?;
    let image = read::scoped_member_at(
        c,
        "os_image",
        registry.as_slice(),
        boot.osImageHash.as_slice(),
        at,
    )
    .await?;
    Ok(registry_facts_of(
        &settings,
        image.as_ref().map(|r| &r.data),
        boot,
        now,
    ))
}

/// [`RegistryFacts`] from the registry's settings and the row of the boot's OS image.
fn registry_facts_of(
    settings: &BTreeMap<String, Value>,
    image: Option<&Value>,
    boot: &BootInfo,
    now: u64,
) -> RegistryFacts {
    let measured = |data: &Value| {
        data.get("measurements")
            .and_then(Value::as_array)
            .is_some_and(|list| {
                list.iter().any(|m| {
                    m.get("teeKind").and_then(Value::as_u64) == Some(u64::from(boot.teeKind))
                        && m.get("osMeasurement")
                            .and_then(Value::as_str)
                            .and_then(|h| B256::from_str(h).ok())
                            == Some(boot.osMeasurement)
                })
            })
    };
    RegistryFacts {
        allow_simulated_tee: settings
            .get("allow_simulated_tee")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        os_image_allowed: image.is_some(),
        os_image_effective: image.is_some_and(|d| effective_at(d) <= now),
        os_measurement_registered: image.is_some_and(measured),
    }
}

/// How `app` is registered at block `at` (timestamp `now`), with its policy facts for `boot`
/// when the mirror models it (`app_implementation`: the deployment's App implementation).
pub async fn app_registration(
    c: &mut PgConnection,
    app_implementation: Address,
    boot: &BootInfo,
    at: u64,
    now: u64,
) -> Result<AppRegistration> {
    let app = boot.appId;
    let Some(row) = read::member_at(c, "app", app.as_slice(), at).await? else {
        return Ok(AppRegistration::None);
    };
    if row.data["kind"] != "factory" {
        return Ok(AppRegistration::Delegated);
    }
    let settings = read::settings_at(c, app.as_slice(), at).await?;
    let compose = read::scoped_member_at(
        c,
        "compose_hash",
        app.as_slice(),
        boot.composeHash.as_slice(),
        at,
    )
    .await?;
    let device =
        read::scoped_member_at(c, "device", app.as_slice(), boot.deviceId.as_slice(), at).await?;
    Ok(app_registration_of(
        app_implementation,
        Some(&row.data),
        &settings,
        compose.as_ref().map(|r| &r.data),
        device.as_ref().map(|r| &r.data),
        now,
    ))
}

/// [`AppRegistration`] from the app's registration row, its settings and the rows of the boot's
/// compose hash and device.
fn app_registration_of(
    app_implementation: Address,
    app: Option<&Value>,
    settings: &BTreeMap<String, Value>,
    compose: Option<&Value>,
    device: Option<&Value>,
    now: u64,
) -> AppRegistration {
    let Some(app) = app else {
        return AppRegistration::None;
    };
    if app["kind"] != "factory" {
        return AppRegistration::Delegated;
    }
    let implementation = settings
        .get("implementation")
        .and_then(Value::as_str)
        .and_then(|a| Address::from_str(a).ok());
    if implementation != Some(app_implementation) {
        return AppRegistration::Delegated;
    }
    let schedule: SettingsSchedule = settings
        .get("settings")
        .and_then(|v| serde_json::from_value(v.clone()).ok())
        .unwrap_or_default();
    let current = schedule.at(now);
    AppRegistration::Mirrored(AppFacts {
        compose_hash_allowed: compose.is_some(),
        compose_hash_effective: compose.is_some_and(|d| effective_at(d) <= now),
        device_allowed: device.is_some(),
        device_effective: device.is_some_and(|d| effective_at(d) <= now),
        any_device: current.any_device,
        allowed_tee_kinds: current.allowed_tee_kinds,
        require_up_to_date_tcb: current.require_up_to_date_tcb,
        require_gpu: current.require_gpu,
        key_generation: settings
            .get("key_generation")
            .and_then(Value::as_u64)
            .unwrap_or(0),
    })
}

/// The registry's facts and the app's registration for each of `boots` at block `at`
/// (timestamp `now`), in order, read in one round trip however many boots: what
/// [`registry_facts`] and [`app_registration`] answer together.
pub async fn app_facts(
    c: &mut PgConnection,
    registry: Address,
    app_implementation: Address,
    boots: &[BootInfo],
    at: u64,
    now: u64,
) -> Result<Vec<(RegistryFacts, AppRegistration)>> {
    let keys: Vec<read::BootKey<'_>> = boots
        .iter()
        .map(|b| read::BootKey {
            app: b.appId.as_slice(),
            image: b.osImageHash.as_slice(),
            compose: b.composeHash.as_slice(),
            device: b.deviceId.as_slice(),
        })
        .collect();
    let rows = read::app_boot_rows(c, registry.as_slice(), &keys, at).await?;
    Ok(boots
        .iter()
        .zip(rows)
        .map(|(boot, rows)| {
            (
                registry_facts_of(&rows.registry_settings, rows.os_image.as_ref(), boot, now),
                app_registration_of(
                    app_implementation,
                    rows.app.as_ref(),
                    &rows.app_settings,
                    rows.compose_hash.as_ref(),
                    rows.device.as_ref(),
                    now,
                ),
            )
        })
        .collect())
}

/// `isAppAllowed(boot)` at block `at` (timestamp `now`) as far as the mirror can tell.
pub async fn app_at(
    c: &mut PgConnection,
    registry: Address,
    app_implementation: Address,
    boot: &BootInfo,
    at: u64,
    now: u64,
) -> Result<AppAnswer> {
    let boots = std::slice::from_ref(boot);
    let Some((facts, registration)) = app_facts(c, registry, app_implementation, boots, at, now)
        .await?
        .pop()
    else {
        unreachable!("app_facts answers every boot it is given")
    };
    let key_generation = match &registration {
        AppRegistration::Mirrored(f) => Some(f.key_generation),
        _ => None,
    };
    Ok(AppAnswer {
        decision: rules::app_decision(boot, &facts, &registration),
        key_generation,
    })
}

/// `isKmsAllowed(boot)` at block `at` (timestamp `now`).
pub async fn kms_at(
    c: &mut PgConnection,
    registry: Address,
    boot: &BootInfo,
    at: u64,
    now: u64,
) -> Result<Decision> {
    let facts = registry_facts(c, registry, boot, at, now).await?;
    let reg = registry.as_slice();
    let m = read::is_member_at(c, "kms_measurement", reg, boot.mrAggregated.as_slice(), at).await?;
    let d = read::is_member_at(c, "kms_device", reg, boot.deviceId.as_slice(), at).await?;
    Ok(rules::kms_decision(boot, &facts, m, d))
}

/// A KMS node's onboarding record at block `at`, while it is active.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsNodeRecord {
    /// Who onboarded it.
    pub onboarded_by: Option<Address>,
    /// Its aggregated measurement at onboarding.
    pub mr_aggregated: Option<B256>,
    /// Its device id at onboarding.
    pub device_id: Option<B256>,
}

/// The record of `node` if it is an active KMS node at block `at`.
pub async fn kms_node_at(
    c: &mut PgConnection,
    registry: Address,
    node: Address,
    at: u64,
) -> Result<Option<KmsNodeRecord>> {
    let rows = read::member_history(
        c,
        "kms_node",
        registry.as_slice(),
        Some(node.as_slice()),
        at,
    )
    .await?;
    let field =
        |row: &read::MemberRow, k: &str| row.data.get(k).and_then(Value::as_str).map(str::to_owned);
    Ok(rows
        .iter()
        .rev()
        .find(|r| r.to_block.is_none())
        .map(|r| KmsNodeRecord {
            onboarded_by: field(r, "onboardedBy").and_then(|a| Address::from_str(&a).ok()),
            mr_aggregated: field(r, "mrAggregated").and_then(|h| B256::from_str(&h).ok()),
            device_id: field(r, "deviceId").and_then(|h| B256::from_str(&h).ok()),
        }))
}

/// The KMS root keys registered at block `at`: (generation, root signer, CA public key).
pub async fn root_keys_at(
    c: &mut PgConnection,
    registry: Address,
    at: u64,
) -> Result<Option<(u64, Address, Vec<u8>)>> {
    let rows = read::members_at(c, "root_keys", Some(registry.as_slice()), at).await?;
    let latest = rows.iter().filter_map(|r| {
        let generation = r.data.get("generation")?.as_u64()?;
        let signer = Address::from_str(r.data.get("rootSigner")?.as_str()?).ok()?;
        let ca = alloy::primitives::Bytes::from_str(r.data.get("caPublicKey")?.as_str()?).ok()?;
        Some((generation, signer, ca.to_vec()))
    });
    Ok(latest.max_by_key(|(g, _, _)| *g))
}
