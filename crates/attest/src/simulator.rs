//! Covenant's simulated TEE, for development and CI. It produces evidence in the same shape as a
//! TD (MRTD, RTMR0–3, report data, device id, a runtime event log) signed by a simulator root key,
//! and goes through the same verification after the signature check. Verifiers accept it only
//! when their policy says so; on chain that is `KmsRegistry.allowSimulatedTee`, visible to all.
//!
//! Quote layout (409 bytes): `"COVSIM01"` ‖ tcb status (1) ‖ device id (32) ‖ MRTD (48) ‖
//! RTMR0..3 (4×48) ‖ report data (64) ‖ ECDSA P-256/SHA-256 signature r‖s (64) over all before it.

use p256::ecdsa::{
    Signature, SigningKey, VerifyingKey,
    signature::{Signer, Verifier},
};

use crate::{
    DeviceId, Error, Measurement, ReportData, Result, TcbStatus, TdMeasurements,
    eventlog::{self, RuntimeEvent},
};

const MAGIC: &[u8; 8] = b"COVSIM01";
/// The length of a simulated quote.
pub const QUOTE_LEN: usize = 8 + 1 + 32 + 48 + 4 * 48 + 64 + 64;
const SIGNED_LEN: usize = QUOTE_LEN - 64;

/// The public key that signs simulated quotes; verifiers trust it only where policy allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimulatorRoot(VerifyingKey);

impl SimulatorRoot {
    /// Reads a SEC1-encoded P-256 public key.
    pub fn from_sec1(bytes: &[u8]) -> Result<Self> {
        VerifyingKey::from_sec1_bytes(bytes)
            .map(Self)
            .map_err(|e| Error::Malformed {
                what: "simulator root key",
                reason: e.to_string(),
            })
    }

    /// The SEC1 (uncompressed) encoding.
    pub fn to_sec1(&self) -> Vec<u8> {
        self.0.to_encoded_point(false).as_bytes().to_vec()
    }
}

/// The signing half of a simulator root. Development only: anyone holding it can make evidence.
pub struct SimulatorRootKey(SigningKey);

impl SimulatorRootKey {
    /// A root key from 32 secret bytes.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Self> {
        SigningKey::from_slice(seed)
            .map(Self)
            .map_err(|e| Error::Malformed {
                what: "simulator root seed",
                reason: e.to_string(),
            })
    }

    /// The well-known development root every devnet uses. Its seed is public: evidence signed by
    /// it proves nothing, which is why only `allowSimulatedTee` networks accept it.
    #[allow(clippy::expect_used)]
    pub fn development() -> Self {
        use sha2::Digest;
        let seed = sha2::Sha256::digest(b"covenant simulated TEE development root v1");
        Self(
            SigningKey::from_slice(&seed)
                .expect("this fixed seed is a valid P-256 scalar (development_root_is_stable)"),
        )
    }

    /// The public half.
    pub fn root(&self) -> SimulatorRoot {
        SimulatorRoot(*self.0.verifying_key())
    }
}

impl std::fmt::Debug for SimulatorRootKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimulatorRootKey")
            .field("root", &self.root())
            .finish_non_exhaustive()
    }
}

/// A simulated TEE instance: registers, a runtime event log, and a root key to sign quotes.
#[derive(Debug)]
pub struct SimulatedTee {
    root: SimulatorRootKey,
    device_id: DeviceId,
    tcb_status: TcbStatus,
    measurements: TdMeasurements,
    events: Vec<RuntimeEvent>,
}

impl SimulatedTee {
    /// A fresh instance: the given boot measurements, RTMR3 zero, an empty event log.
    pub fn new(
        root: SimulatorRootKey,
        device_id: DeviceId,
        mrtd: Measurement,
        rtmr0_2: [Measurement; 3],
    ) -> Self {
        let [r0, r1, r2] = rtmr0_2;
        Self {
            root,
            device_id,
            tcb_status: TcbStatus::UpToDate,
            measurements: TdMeasurements {
                mrtd,
                rtmr: [r0, r1, r2, Measurement::new([0; 48])],
            },
            events: Vec::new(),
        }
    }

    /// Reports `status` instead of `UpToDate` (to exercise TCB policies).
    pub fn with_tcb_status(mut self, status: TcbStatus) -> Self {
        self.tcb_status = status;
        self
    }

    /// Extends RTMR3 with `event` and records it in the log.
    pub fn extend(&mut self, event: RuntimeEvent) {
        self.measurements.rtmr[3] = eventlog::extend(&self.measurements.rtmr[3], &event);
        self.events.push(event);
    }

    /// Extends the boot sequence of `identity` (app id … system-ready), as a guest does at boot.
    pub fn record_boot(&mut self, identity: &eventlog::RuntimeIdentity) {
        for event in identity.boot_events() {
            self.extend(event);
        }
    }

    /// The runtime event log so far.
    pub fn event_log(&self) -> &[RuntimeEvent] {
        &self.events
    }

    /// The current registers.
    pub fn measurements(&self) -> &TdMeasurements {
        &self.measurements
    }

    /// A signed quote over the current registers and `report_data`.
    pub fn quote(&self, report_data: &ReportData) -> Vec<u8> {
        let mut quote = Vec::with_capacity(QUOTE_LEN);
        quote.extend_from_slice(MAGIC);
        quote.push(self.tcb_status.as_u8());
        quote.extend_from_slice(self.device_id.as_bytes());
        quote.extend_from_slice(self.measurements.mrtd.as_bytes());
        for r in &self.measurements.rtmr {
            quote.extend_from_slice(r.as_bytes());
        }
        quote.extend_from_slice(report_data.as_bytes());
        let signature: Signature = self.root.0.sign(&quote);
        quote.extend_from_slice(&signature.to_bytes());
        quote
    }
}

/// What a simulated quote says, once its signature checked out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SimulatedReport {
    pub(crate) tcb_status: TcbStatus,
    pub(crate) device_id: DeviceId,
    pub(crate) measurements: TdMeasurements,
    pub(crate) report_data: ReportData,
}

/// Parses a simulated quote and checks its signature against `root`.
pub(crate) fn verify_quote(quote: &[u8], root: &SimulatorRoot) -> Result<SimulatedReport> {
    if quote.len() != QUOTE_LEN {
        return Err(Error::Length {
            what: "simulated quote",
            expected: QUOTE_LEN,
            got: quote.len(),
        });
    }
    if &quote[..8] != MAGIC {
        return Err(Error::WrongPlatform(
            "not a simulated quote (bad magic)".into(),
        ));
    }
    let signature = Signature::from_slice(&quote[SIGNED_LEN..])
        .map_err(|e| Error::SimulatorSignature(e.to_string()))?;
    root.0
        .verify(&quote[..SIGNED_LEN], &signature)
        .map_err(|e| Error::SimulatorSignature(e.to_string()))?;
    let m = |at: usize| Measurement::try_from_slice(&quote[at..at + 48]);
    Ok(SimulatedReport {
        tcb_status: TcbStatus::from_u8(quote[8])?,
        device_id: DeviceId::try_from_slice(&quote[9..41])?,
        measurements: TdMeasurements {
            mrtd: m(41)?,
            rtmr: [m(89)?, m(137)?, m(185)?, m(233)?],
        },
        report_data: ReportData::try_from_slice(&quote[281..345])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tee() -> SimulatedTee {
        SimulatedTee::new(
            SimulatorRootKey::development(),
            DeviceId::new([7; 32]),
            Measurement::new([1; 48]),
            [
                Measurement::new([2; 48]),
                Measurement::new([3; 48]),
                Measurement::new([4; 48]),
            ],
        )
    }

    #[test]
    fn development_root_is_stable() {
        let a = SimulatorRootKey::development().root();
        let b = SimulatorRootKey::development().root();
        assert_eq!(a, b);
        assert_eq!(SimulatorRoot::from_sec1(&a.to_sec1()).unwrap(), a);
    }

    #[test]
    fn a_quote_verifies_and_reads_back() {
        let mut tee = tee();
        tee.extend(RuntimeEvent::new("app-id", vec![9; 20]));
        let quote = tee.quote(&ReportData::new([5; 64]));
        assert_eq!(quote.len(), QUOTE_LEN);
        let report = verify_quote(&quote, &SimulatorRootKey::development().root()).unwrap();
        assert_eq!(report.measurements, *tee.measurements());
        assert_eq!(report.report_data, ReportData::new([5; 64]));
        assert_eq!(report.device_id, DeviceId::new([7; 32]));
        assert_eq!(report.tcb_status, TcbStatus::UpToDate);
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        let quote = tee().quote(&ReportData::new([5; 64]));
        let root = SimulatorRootKey::development().root();
        for byte in 0..quote.len() {
            let mut bad = quote.clone();
            bad[byte] ^= 0x01;
            assert!(
                verify_quote(&bad, &root).is_err(),
                "flip at byte {byte} accepted"
            );
        }
        assert!(matches!(
            verify_quote(&quote[1..], &root),
            Err(Error::Length { .. })
        ));
    }

    #[test]
    fn another_root_is_rejected() {
        let quote = tee().quote(&ReportData::new([5; 64]));
        let other = SimulatorRootKey::from_seed(&[3; 32]).unwrap().root();
        assert!(matches!(
            verify_quote(&quote, &other),
            Err(Error::SimulatorSignature(_))
        ));
    }
}
