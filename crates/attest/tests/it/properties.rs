//! Round trips that must hold for every input.

use covenant_attest::{
    AppId, ComposeHash, Evidence, GpuEvidenceHash, InstanceId, OsImageHash, Platform,
    eventlog::{self, RuntimeEvent, RuntimeIdentity},
};
use proptest::prelude::*;

fn identity() -> impl Strategy<Value = RuntimeIdentity> {
    (
        any::<[u8; 20]>(),
        any::<[u8; 32]>(),
        any::<[u8; 20]>(),
        prop::collection::vec(any::<u8>(), 1..=64),
        any::<[u8; 32]>(),
        prop::option::of(any::<[u8; 32]>()),
    )
        .prop_map(
            |(app, compose, instance, key_provider, os, gpu)| RuntimeIdentity {
                app_id: AppId::new(app),
                compose_hash: ComposeHash::new(compose),
                instance_id: InstanceId::new(instance),
                key_provider,
                os_image_hash: OsImageHash::new(os),
                gpu_evidence_hash: gpu.map(GpuEvidenceHash::new),
            },
        )
}

fn event() -> impl Strategy<Value = RuntimeEvent> {
    (
        "[a-z0-9._-]{1,64}",
        prop::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(name, payload)| RuntimeEvent { name, payload })
}

proptest! {
    #[test]
    fn boot_events_decode_to_the_identity_they_encode(id in identity(), extra in prop::collection::vec(event(), 0..8)) {
        let mut events = id.boot_events();
        events.extend(extra);
        prop_assert_eq!(eventlog::decode_identity(&events).unwrap(), id);
        prop_assert!(eventlog::replay(&events).is_ok());
    }

    #[test]
    fn evidence_round_trips_through_its_wire_form(
        platform in prop_oneof![Just(Platform::Tdx), Just(Platform::Snp), Just(Platform::Simulated)],
        quote in prop::collection::vec(any::<u8>(), 0..2048),
        vcek in prop::collection::vec(any::<u8>(), 0..512),
        events in prop::collection::vec(event(), 0..16),
    ) {
        let evidence = Evidence { platform, quote, vcek, event_log: events, gpu: None };
        prop_assert_eq!(Evidence::from_bytes(&evidence.to_bytes()).unwrap(), evidence);
    }

    #[test]
    fn replay_is_order_sensitive(events in prop::collection::vec(event(), 2..8)) {
        let mut swapped = events.clone();
        swapped.swap(0, 1);
        prop_assume!(swapped != events);
        prop_assert_ne!(eventlog::replay(&events).unwrap(), eventlog::replay(&swapped).unwrap());
    }
}
