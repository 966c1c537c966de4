//! The runtime event log: what the guest extended into RTMR3 (or the platform's equivalent), in
//! order, so that a verifier can replay it, compare the result with the signed register, and read
//! the app's identity out of it.
//!
//! Extend rule: `RTMR3' = SHA-384(RTMR3 ‖ SHA-384(name ‖ ":" ‖ payload))`, from 48 zero bytes.
//! Boot events, in this order: `app-id` (20 bytes), `compose-hash` (32), `instance-id` (20),
//! `key-provider` (1–64 bytes: the KMS root's id), `os-image-hash` (32), optionally `gpu-evidence`
//! (32: sha256 of the GPU evidence), then `system-ready` (empty). Events after `system-ready` are
//! the app's own (replayed, not interpreted).

use sha2::{Digest, Sha384};

use crate::{
    AppId, ComposeHash, Error, GpuEvidenceHash, InstanceId, Measurement, OsImageHash, Result,
};

/// The most events a log may hold.
pub const MAX_EVENTS: usize = 256;
/// The longest event name, in bytes.
pub const MAX_NAME_LEN: usize = 64;
/// The longest event payload, in bytes.
pub const MAX_PAYLOAD_LEN: usize = 4096;
/// The longest key-provider id, in bytes.
pub const MAX_KEY_PROVIDER_LEN: usize = 64;

/// Event names of the boot sequence.
pub mod names {
    /// The app id (20 bytes).
    pub const APP_ID: &str = "app-id";
    /// The compose hash (32 bytes).
    pub const COMPOSE_HASH: &str = "compose-hash";
    /// The instance id (20 bytes).
    pub const INSTANCE_ID: &str = "instance-id";
    /// The KMS root the instance trusts (1–64 bytes).
    pub const KEY_PROVIDER: &str = "key-provider";
    /// The OS image hash (32 bytes).
    pub const OS_IMAGE_HASH: &str = "os-image-hash";
    /// sha256 of the GPU evidence (32 bytes); optional.
    pub const GPU_EVIDENCE: &str = "gpu-evidence";
    /// End of the boot sequence (empty payload).
    pub const SYSTEM_READY: &str = "system-ready";
    /// A KMS node's identity address (20 bytes), extended right after `system-ready`, so the
    /// address it onboards and commits under is bound by its evidence.
    pub const KMS_IDENTITY: &str = "kms-identity";
}

/// The KMS identity address a boot log names: the payload of a `kms-identity` event that comes
/// right after `system-ready` and is the only event of that name. `None` for any other log.
pub fn kms_identity(events: &[RuntimeEvent]) -> Option<[u8; 20]> {
    let ready = events.iter().position(|e| e.name == names::SYSTEM_READY)?;
    let event = events.get(ready + 1)?;
    if event.name != names::KMS_IDENTITY
        || events
            .iter()
            .filter(|e| e.name == names::KMS_IDENTITY)
            .count()
            != 1
    {
        return None;
    }
    event.payload.as_slice().try_into().ok()
}

/// One event extended into the runtime register.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeEvent {
    /// The event's name: 1–64 bytes of `a-z`, `0-9`, `-`, `.`, `_` (no `:`, which separates the
    /// name from the payload in the digest).
    pub name: String,
    /// The event's payload.
    #[serde(with = "hex_bytes")]
    pub payload: Vec<u8>,
}

impl RuntimeEvent {
    /// A new event.
    pub fn new(name: &str, payload: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.to_owned(),
            payload: payload.into(),
        }
    }

    /// SHA-384(name ‖ ":" ‖ payload): what is extended into the register.
    pub fn digest(&self) -> [u8; 48] {
        let mut h = Sha384::new();
        h.update(self.name.as_bytes());
        h.update(b":");
        h.update(&self.payload);
        h.finalize().into()
    }
}

/// Extends `register` with `event`.
pub fn extend(register: &Measurement, event: &RuntimeEvent) -> Measurement {
    let mut h = Sha384::new();
    h.update(register.as_bytes());
    h.update(event.digest());
    Measurement::new(h.finalize().into())
}

/// What the boot events say about the instance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuntimeIdentity {
    /// The app.
    pub app_id: AppId,
    /// The app-compose document's hash.
    pub compose_hash: ComposeHash,
    /// The instance.
    pub instance_id: InstanceId,
    /// The KMS root the instance trusts.
    pub key_provider: Vec<u8>,
    /// The OS image.
    pub os_image_hash: OsImageHash,
    /// sha256 of the GPU evidence, when the instance presented any.
    pub gpu_evidence_hash: Option<GpuEvidenceHash>,
}

impl RuntimeIdentity {
    /// The boot events for this identity, in order, ending with `system-ready`.
    pub fn boot_events(&self) -> Vec<RuntimeEvent> {
        let mut events = vec![
            RuntimeEvent::new(names::APP_ID, self.app_id.as_bytes().to_vec()),
            RuntimeEvent::new(names::COMPOSE_HASH, self.compose_hash.as_bytes().to_vec()),
            RuntimeEvent::new(names::INSTANCE_ID, self.instance_id.as_bytes().to_vec()),
            RuntimeEvent::new(names::KEY_PROVIDER, self.key_provider.clone()),
            RuntimeEvent::new(names::OS_IMAGE_HASH, self.os_image_hash.as_bytes().to_vec()),
        ];
        if let Some(gpu) = &self.gpu_evidence_hash {
            events.push(RuntimeEvent::new(
                names::GPU_EVIDENCE,
                gpu.as_bytes().to_vec(),
            ));
        }
        events.push(RuntimeEvent::new(names::SYSTEM_READY, Vec::new()));
        events
    }
}

/// Checks every event's bounds and replays the log from a zero register.
pub fn replay(events: &[RuntimeEvent]) -> Result<Measurement> {
    if events.len() > MAX_EVENTS {
        return Err(Error::EventLog(format!(
            "{} events, at most {MAX_EVENTS}",
            events.len()
        )));
    }
    let mut register = Measurement::new([0; 48]);
    for (index, event) in events.iter().enumerate() {
        check_event(index, event)?;
        register = extend(&register, event);
    }
    Ok(register)
}

/// Replays `events` and requires the result to equal `expected` (the signed register).
pub fn replay_and_match(events: &[RuntimeEvent], expected: &Measurement) -> Result<()> {
    let replayed = replay(events)?;
    if &replayed != expected {
        return Err(Error::EventLogMismatch {
            replayed: Box::new(replayed),
            signed: Box::new(*expected),
        });
    }
    Ok(())
}

/// Reads the boot sequence at the start of the log.
pub fn decode_identity(events: &[RuntimeEvent]) -> Result<RuntimeIdentity> {
    let mut it = events.iter().enumerate();
    let mut next = |name: &'static str| -> Result<&[u8]> {
        match it.next() {
            Some((_, event)) if event.name == name => Ok(&event.payload),
            Some((index, event)) => Err(Error::EventLog(format!(
                "event {index} is {:?}, expected {name:?}",
                event.name
            ))),
            None => Err(Error::EventLog(format!("log ends before {name:?}"))),
        }
    };
    let app_id = AppId::try_from_slice(next(names::APP_ID)?)?;
    let compose_hash = ComposeHash::try_from_slice(next(names::COMPOSE_HASH)?)?;
    let instance_id = InstanceId::try_from_slice(next(names::INSTANCE_ID)?)?;
    let key_provider = next(names::KEY_PROVIDER)?.to_vec();
    if key_provider.is_empty() || key_provider.len() > MAX_KEY_PROVIDER_LEN {
        return Err(Error::EventLog(format!(
            "key-provider is {} bytes, expected 1..={MAX_KEY_PROVIDER_LEN}",
            key_provider.len()
        )));
    }
    let os_image_hash = OsImageHash::try_from_slice(next(names::OS_IMAGE_HASH)?)?;
    let after_os = events.get(5).map(|e| e.name.as_str());
    let gpu_evidence_hash = if after_os == Some(names::GPU_EVIDENCE) {
        Some(GpuEvidenceHash::try_from_slice(next(names::GPU_EVIDENCE)?)?)
    } else {
        None
    };
    if !next(names::SYSTEM_READY)?.is_empty() {
        return Err(Error::EventLog("system-ready carries a payload".into()));
    }
    Ok(RuntimeIdentity {
        app_id,
        compose_hash,
        instance_id,
        key_provider,
        os_image_hash,
        gpu_evidence_hash,
    })
}

/// Checks an event an app asks to extend after `system-ready`: a valid name and payload, and not
/// the name of a boot event (or `kms-identity`), whose meaning verifiers read from the log.
pub fn check_app_event(event: &RuntimeEvent) -> Result<()> {
    check_event(0, event)?;
    let reserved = [
        names::APP_ID,
        names::COMPOSE_HASH,
        names::INSTANCE_ID,
        names::KEY_PROVIDER,
        names::OS_IMAGE_HASH,
        names::GPU_EVIDENCE,
        names::SYSTEM_READY,
        names::KMS_IDENTITY,
    ];
    if reserved.contains(&event.name.as_str()) {
        return Err(Error::EventLog(format!(
            "{:?} is a boot event's name; an app may not extend it",
            event.name
        )));
    }
    Ok(())
}

fn check_event(index: usize, event: &RuntimeEvent) -> Result<()> {
    let name = event.name.as_bytes();
    let valid_name = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .iter()
            .all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_'));
    if !valid_name {
        return Err(Error::EventLog(format!(
            "event {index} has an invalid name {:?}",
            event.name
        )));
    }
    if event.payload.len() > MAX_PAYLOAD_LEN {
        return Err(Error::EventLog(format!(
            "event {index} payload is {} bytes, at most {MAX_PAYLOAD_LEN}",
            event.payload.len()
        )));
    }
    Ok(())
}

/// Hex (no prefix) for byte strings in JSON.
pub(crate) mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&hex::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        // Owned as well as borrowed text (a `serde_json::Value` holds owned strings).
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        hex::decode(text.as_ref()).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(gpu: bool) -> RuntimeIdentity {
        RuntimeIdentity {
            app_id: AppId::new([1; 20]),
            compose_hash: ComposeHash::new([2; 32]),
            instance_id: InstanceId::new([3; 20]),
            key_provider: vec![4; 20],
            os_image_hash: OsImageHash::new([5; 32]),
            gpu_evidence_hash: gpu.then(|| GpuEvidenceHash::new([6; 32])),
        }
    }

    #[test]
    fn extend_follows_the_documented_rule() {
        let event = RuntimeEvent::new("app-id", vec![0xab]);
        let inner = Sha384::digest(b"app-id:\xab");
        let mut outer = Sha384::new();
        outer.update([0u8; 48]);
        outer.update(inner);
        let expected: [u8; 48] = outer.finalize().into();
        assert_eq!(
            extend(&Measurement::new([0; 48]), &event).as_bytes(),
            &expected
        );
    }

    #[test]
    fn boot_events_round_trip_through_decode() {
        for gpu in [false, true] {
            let id = identity(gpu);
            let mut events = id.boot_events();
            events.push(RuntimeEvent::new("app.custom", b"anything".to_vec()));
            assert_eq!(decode_identity(&events).unwrap(), id);
        }
    }

    #[test]
    fn replay_detects_any_change() {
        let events = identity(true).boot_events();
        let signed = replay(&events).unwrap();
        assert!(replay_and_match(&events, &signed).is_ok());
        let mut reordered = events.clone();
        reordered.swap(0, 1);
        assert!(matches!(
            replay_and_match(&reordered, &signed),
            Err(Error::EventLogMismatch { .. })
        ));
        let mut truncated = events.clone();
        truncated.pop();
        assert!(replay_and_match(&truncated, &signed).is_err());
        let mut extended = events.clone();
        extended.push(RuntimeEvent::new("extra", vec![]));
        assert!(replay_and_match(&extended, &signed).is_err());
        let mut flipped = events;
        flipped[1].payload[0] ^= 1;
        assert!(replay_and_match(&flipped, &signed).is_err());
    }

    #[test]
    fn decode_rejects_wrong_order_lengths_and_payloads() {
        let mut events = identity(false).boot_events();
        events.swap(1, 2);
        assert!(
            decode_identity(&events)
                .unwrap_err()
                .to_string()
                .contains("expected \"compose-hash\"")
        );
        let mut events = identity(false).boot_events();
        events[0].payload.push(0);
        assert!(matches!(
            decode_identity(&events),
            Err(Error::Length { what: "AppId", .. })
        ));
        let mut events = identity(false).boot_events();
        events[3].payload.clear();
        assert!(decode_identity(&events).is_err());
        let mut events = identity(false).boot_events();
        events.last_mut().unwrap().payload.push(1);
        assert!(decode_identity(&events).is_err());
        assert!(decode_identity(&identity(false).boot_events()[..4]).is_err());
    }

    #[test]
    fn replay_enforces_bounds() {
        let bad_name = [RuntimeEvent::new("Bad Name", vec![])];
        assert!(
            replay(&bad_name)
                .unwrap_err()
                .to_string()
                .contains("invalid name")
        );
        let big = [RuntimeEvent::new("x", vec![0; MAX_PAYLOAD_LEN + 1])];
        assert!(replay(&big).is_err());
        let many = vec![RuntimeEvent::new("x", vec![]); MAX_EVENTS + 1];
        assert!(replay(&many).is_err());
    }

    #[test]
    fn a_colon_in_a_name_is_refused_because_it_would_make_two_events_digest_alike() {
        // ("a:b", "c") and ("a", "b:c") both hash "a:b:c": one could stand for the other.
        let one = RuntimeEvent::new("a:b", b"c".to_vec());
        let other = RuntimeEvent::new("a", b"b:c".to_vec());
        assert_eq!(one.digest(), other.digest());
        let err = replay(&[one]).unwrap_err().to_string();
        assert!(err.contains("invalid name"), "{err}");
        replay(&[other]).unwrap();
    }

    #[test]
    fn an_app_event_has_a_valid_name_and_payload_and_is_not_a_boot_event() {
        check_app_event(&RuntimeEvent::new(
            "app.migrated-v2",
            vec![1; MAX_PAYLOAD_LEN],
        ))
        .unwrap();
        for bad in [
            RuntimeEvent::new("", Vec::new()),
            RuntimeEvent::new("Upper", Vec::new()),
            RuntimeEvent::new("a:b", Vec::new()),
            RuntimeEvent::new(&"a".repeat(MAX_NAME_LEN + 1), Vec::new()),
            RuntimeEvent::new("big", vec![0; MAX_PAYLOAD_LEN + 1]),
            RuntimeEvent::new(names::COMPOSE_HASH, vec![0; 32]),
            RuntimeEvent::new(names::SYSTEM_READY, Vec::new()),
            RuntimeEvent::new(names::KMS_IDENTITY, vec![0; 20]),
        ] {
            assert!(check_app_event(&bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_event_reads_from_owned_json_as_well_as_from_text() {
        let event = RuntimeEvent::new("app.x", vec![1, 2]);
        let value = serde_json::to_value(&event).unwrap();
        assert_eq!(
            serde_json::from_value::<RuntimeEvent>(value.clone()).unwrap(),
            event
        );
        assert_eq!(
            serde_json::from_str::<RuntimeEvent>(&value.to_string()).unwrap(),
            event
        );
    }
}
