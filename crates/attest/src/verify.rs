//! Evidence, the policy it is judged by, and the one function that turns evidence into a
//! [`VerifiedEvidence`] — the only way to obtain one.

use std::time::Duration;

use dcap_qvl::QuoteCollateralV3;
use sha2::{Digest, Sha256, Sha512};

use crate::{
    DeviceId, Error, Measurement, MrAggregated, Platform, ReportData, Result, TcbStatus,
    TdMeasurements,
    eventlog::{self, RuntimeEvent, RuntimeIdentity, hex_bytes},
    nvidia::{self, GpuEvidence, VerifiedGpu},
    simulator::{self, SimulatorRoot},
    snp::{self, SnpTcb},
    tdx,
};

/// The largest serialized evidence accepted, in bytes.
pub const MAX_EVIDENCE_LEN: usize = 128 * 1024;
/// Domain separator of the report data that binds a TLS key.
pub const RATLS_PREFIX: &[u8] = b"covenant-ratls-v1:";
/// Domain separator of SEV-SNP report data, which also binds the runtime event log.
pub const SNP_RUNTIME_PREFIX: &[u8] = b"covenant-snp-runtime-v1:";

/// TEE evidence as a guest presents it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Evidence {
    /// Which TEE produced it.
    pub platform: Platform,
    /// The TDX quote, SNP report or simulated quote.
    #[serde(with = "hex_bytes")]
    pub quote: Vec<u8>,
    /// SEV-SNP only: the VCEK certificate (DER) that signed the report.
    #[serde(default, with = "hex_bytes", skip_serializing_if = "Vec::is_empty")]
    pub vcek: Vec<u8>,
    /// The runtime event log.
    pub event_log: Vec<RuntimeEvent>,
    /// NVIDIA GPU evidence, when the instance has a confidential GPU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<GpuEvidence>,
}

impl Evidence {
    /// The wire form (JSON; byte strings as hex).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serialising plain data with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads the wire form, within [`MAX_EVIDENCE_LEN`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() > MAX_EVIDENCE_LEN {
            return Err(Error::TooLarge {
                what: "evidence",
                limit: MAX_EVIDENCE_LEN,
                got: bytes.len(),
            });
        }
        serde_json::from_slice(bytes).map_err(|e| Error::Malformed {
            what: "evidence",
            reason: e.to_string(),
        })
    }
}

/// What the report data of the evidence must commit to.
#[derive(Clone, Copy, Debug)]
pub enum Binding<'a> {
    /// A TLS public key (SubjectPublicKeyInfo DER): report data = SHA-512(prefix ‖ SPKI).
    TlsKey(&'a [u8]),
    /// Exactly these 64 bytes (e.g. a verifier's nonce).
    ReportData(ReportData),
}

impl Binding<'_> {
    /// The 64 bytes a TDX or simulated quote must carry.
    pub fn report_data(&self) -> ReportData {
        match self {
            Binding::TlsKey(spki) => tls_report_data(spki),
            Binding::ReportData(data) => *data,
        }
    }
}

/// SHA-512("covenant-ratls-v1:" ‖ SPKI DER).
pub fn tls_report_data(spki_der: &[u8]) -> ReportData {
    let mut h = Sha512::new();
    h.update(RATLS_PREFIX);
    h.update(spki_der);
    ReportData::new(h.finalize().into())
}

/// SEV-SNP has no runtime register, so its report data also commits to the replayed event log:
/// SHA-512("covenant-snp-runtime-v1:" ‖ binding report data ‖ replayed log register).
pub fn snp_report_data(binding: &ReportData, replayed_log: &Measurement) -> ReportData {
    let mut h = Sha512::new();
    h.update(SNP_RUNTIME_PREFIX);
    h.update(binding.as_bytes());
    h.update(replayed_log.as_bytes());
    ReportData::new(h.finalize().into())
}

/// Endorsements supplied by the caller (never fetched by this crate).
#[derive(Clone, Debug, Default)]
pub struct Collateral {
    /// PCK collateral for TDX quotes.
    pub tdx: Option<QuoteCollateralV3>,
    /// The VCEK (DER) for an SEV-SNP report whose evidence carries none (its host supplied no
    /// certificate table): fetched by the caller from a key distribution service, and verified
    /// here like one from the evidence. Ignored when the evidence carries its own.
    pub snp_vcek: Option<Vec<u8>>,
}

/// How strict a verifier is. [`Policy::default`] is the production policy.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Hardware platforms accepted (default: TDX and SEV-SNP).
    pub platforms: Vec<Platform>,
    /// The simulator root whose evidence is accepted; `None` (default) refuses simulated
    /// evidence. Set it only where the chain's `allowSimulatedTee` is true.
    pub simulator_root: Option<SimulatorRoot>,
    /// TCB statuses accepted (default: `UpToDate` only).
    pub accepted_tcb: Vec<TcbStatus>,
    /// The oldest collateral accepted (default: 30 days).
    pub max_collateral_age: Duration,
    /// The lowest SEV-SNP TCB that counts as up to date (default: none, so SNP is `OutOfDate`).
    pub snp_minimum_tcb: Option<SnpTcb>,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            platforms: vec![Platform::Tdx, Platform::Snp],
            simulator_root: None,
            accepted_tcb: vec![TcbStatus::UpToDate],
            max_collateral_age: Duration::from_secs(30 * 24 * 3600),
            snp_minimum_tcb: None,
        }
    }
}

impl Policy {
    /// For verifiers whose answer the chain then judges (`isAppAllowed`, `isKmsAllowed`): every
    /// platform, every TCB status the chain can judge (it refuses unknown or revoked TCBs and,
    /// per app, out-of-date ones), and the simulator's public development root only when
    /// `simulated_allowed` — the chain's `allowSimulatedTee` where the verifier decides, since
    /// evidence signed with a published root proves nothing where simulation is not allowed.
    pub fn judged_by_chain(simulated_allowed: bool) -> Self {
        // Deriving the root is a P-256 scalar multiplication: once per process.
        static DEVELOPMENT_ROOT: std::sync::LazyLock<SimulatorRoot> =
            std::sync::LazyLock::new(|| crate::simulator::SimulatorRootKey::development().root());
        Self {
            platforms: vec![Platform::Tdx, Platform::Snp],
            simulator_root: simulated_allowed.then(|| DEVELOPMENT_ROOT.clone()),
            accepted_tcb: vec![
                TcbStatus::UpToDate,
                TcbStatus::SwHardeningNeeded,
                TcbStatus::ConfigurationNeeded,
                TcbStatus::ConfigurationAndSwHardeningNeeded,
                TcbStatus::OutOfDate,
                TcbStatus::OutOfDateConfigurationNeeded,
            ],
            ..Self::default()
        }
    }
}

/// The measurements a platform signed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlatformMeasurements {
    /// MRTD and RTMR0–3 (TDX, simulator).
    Td(TdMeasurements),
    /// SEV-SNP launch measurement and host data.
    Snp {
        /// MEASUREMENT.
        measurement: Measurement,
        /// HOST_DATA.
        host_data: [u8; 32],
    },
}

impl PlatformMeasurements {
    /// The registers that measure the OS, as the chain registers them with an image: MRTD ‖
    /// RTMR0 ‖ RTMR1 ‖ RTMR2 (192 bytes) or MEASUREMENT (48 bytes).
    pub fn os_registers(&self) -> Vec<u8> {
        match self {
            Self::Td(td) => [td.mrtd, td.rtmr[0], td.rtmr[1], td.rtmr[2]]
                .iter()
                .flat_map(|m| m.as_bytes().to_vec())
                .collect(),
            Self::Snp { measurement, .. } => measurement.as_bytes().to_vec(),
        }
    }
}

/// Evidence that passed every check of [`verify`]. Only `verify` can build one, so holding one
/// proves the checks ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEvidence {
    platform: Platform,
    measurements: PlatformMeasurements,
    mr_aggregated: MrAggregated,
    report_data: ReportData,
    device_id: DeviceId,
    tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    collateral_issued_at: Option<u64>,
    runtime: RuntimeIdentity,
    event_log: Vec<RuntimeEvent>,
    gpu: Option<VerifiedGpu>,
}

impl VerifiedEvidence {
    /// The verified GPU evidence, when the instance presented any.
    pub fn gpu(&self) -> Option<&VerifiedGpu> {
        self.gpu.as_ref()
    }
    /// The platform.
    pub fn platform(&self) -> Platform {
        self.platform
    }
    /// The signed measurements.
    pub fn measurements(&self) -> &PlatformMeasurements {
        &self.measurements
    }
    /// sha256(MRTD ‖ RTMR0..3), or sha256(MEASUREMENT ‖ HOST_DATA) on SEV-SNP.
    pub fn mr_aggregated(&self) -> MrAggregated {
        self.mr_aggregated
    }
    /// sha256 of the registers that measure the OS: MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 (TDX, simulator)
    /// or MEASUREMENT (SEV-SNP). The chain registers the expected value with each OS image.
    pub fn os_measurement(&self) -> [u8; 32] {
        Sha256::digest(self.measurements.os_registers()).into()
    }
    /// The KMS identity address the boot log names (the `kms-identity` event right after
    /// `system-ready`), when the evidence is a KMS node's.
    pub fn kms_identity(&self) -> Option<[u8; 20]> {
        eventlog::kms_identity(&self.event_log)
    }
    /// The aggregated measurement as of `system-ready`: what every KMS node of the same code on
    /// the same image shares, before the node extends its own identity. Equal to
    /// [`Self::mr_aggregated`] on SEV-SNP (whose aggregate does not cover the log) and for logs
    /// that end at `system-ready`.
    pub fn mr_aggregated_at_system_ready(&self) -> MrAggregated {
        match &self.measurements {
            PlatformMeasurements::Td(td) => {
                let ready = self
                    .event_log
                    .iter()
                    .position(|e| e.name == eventlog::names::SYSTEM_READY)
                    .map_or(self.event_log.len(), |i| i + 1);
                // The log verified against RTMR3, so its prefix replays to what RTMR3 was then.
                let prefix =
                    eventlog::replay(&self.event_log[..ready]).unwrap_or(Measurement::new([0; 48]));
                TdMeasurements {
                    mrtd: td.mrtd,
                    rtmr: [td.rtmr[0], td.rtmr[1], td.rtmr[2], prefix],
                }
                .mr_aggregated()
            }
            PlatformMeasurements::Snp { .. } => self.mr_aggregated,
        }
    }
    /// The report data (checked against the binding).
    pub fn report_data(&self) -> ReportData {
        self.report_data
    }
    /// sha256(PPID) or sha256(CHIP_ID).
    pub fn device_id(&self) -> DeviceId {
        self.device_id
    }
    /// The TCB status (accepted by the policy).
    pub fn tcb_status(&self) -> TcbStatus {
        self.tcb_status
    }
    /// Intel security advisories that apply to the platform's TCB.
    pub fn advisory_ids(&self) -> &[String] {
        &self.advisory_ids
    }
    /// When the collateral used was issued (TDX), unix seconds.
    pub fn collateral_issued_at(&self) -> Option<u64> {
        self.collateral_issued_at
    }
    /// The identity read from the replayed boot events.
    pub fn runtime(&self) -> &RuntimeIdentity {
        &self.runtime
    }
    /// The whole replayed event log.
    pub fn event_log(&self) -> &[RuntimeEvent] {
        &self.event_log
    }
}

/// Verifies `evidence` at `now` (unix seconds): the platform signature and endorsements, the
/// policy (platform, TCB status, collateral age), the event log against the signed register, the
/// binding of the report data, and the boot identity in the log.
pub fn verify(
    evidence: &Evidence,
    binding: &Binding<'_>,
    collateral: &Collateral,
    policy: &Policy,
    now: u64,
) -> Result<VerifiedEvidence> {
    let signed = signed_by_platform(evidence, collateral, policy, now)?;
    judge(signed, evidence, binding, policy, now)
}

/// What the platform's keys vouch for: the quote's or report's signature and endorsements, and
/// the collateral's age. Nothing about the guest is judged here.
fn signed_by_platform(
    evidence: &Evidence,
    collateral: &Collateral,
    policy: &Policy,
    now: u64,
) -> Result<Signed> {
    Ok(match evidence.platform {
        Platform::Simulated => {
            let root = policy
                .simulator_root
                .as_ref()
                .ok_or(Error::SimulatedNotAllowed)?;
            let r = simulator::verify_quote(&evidence.quote, root)?;
            Signed {
                measurements: PlatformMeasurements::Td(r.measurements),
                mr_aggregated: r.measurements.mr_aggregated(),
                report_data: r.report_data,
                device_id: r.device_id,
                tcb_status: r.tcb_status,
                advisory_ids: Vec::new(),
                collateral_issued_at: None,
                runtime_register: Some(r.measurements.rtmr[3]),
                snp_guest: None,
            }
        }
        Platform::Tdx => {
            require_platform(policy, Platform::Tdx)?;
            let collateral = collateral
                .tdx
                .as_ref()
                .ok_or(Error::MissingCollateral(Platform::Tdx))?;
            let r = tdx::verify_quote(&evidence.quote, collateral, now)?;
            let max_age = policy.max_collateral_age.as_secs();
            if now.saturating_sub(r.collateral_issued_at) > max_age {
                return Err(Error::StaleCollateral {
                    issued: r.collateral_issued_at,
                    now,
                    max_age_secs: max_age,
                });
            }
            Signed {
                measurements: PlatformMeasurements::Td(r.measurements),
                mr_aggregated: r.measurements.mr_aggregated(),
                report_data: r.report_data,
                device_id: r.device_id,
                tcb_status: r.tcb_status,
                advisory_ids: r.advisory_ids,
                collateral_issued_at: Some(r.collateral_issued_at),
                runtime_register: Some(r.measurements.rtmr[3]),
                snp_guest: None,
            }
        }
        Platform::Snp => {
            require_platform(policy, Platform::Snp)?;
            let vek = match (&evidence.vcek, &collateral.snp_vcek) {
                (own, _) if !own.is_empty() => own,
                (_, Some(fetched)) => fetched,
                _ => {
                    return Err(Error::SnpVerification {
                        what: "VCEK",
                        reason: "the evidence carries no VCEK and none was supplied".into(),
                    });
                }
            };
            let r = snp::verify_signed_report(&evidence.quote, vek, now)?;
            Signed {
                measurements: PlatformMeasurements::Snp {
                    measurement: r.measurement,
                    host_data: r.host_data,
                },
                mr_aggregated: r.mr_aggregated(),
                report_data: r.report_data,
                device_id: r.device_id,
                tcb_status: SnpTcb::status(
                    &r.reported_tcb,
                    &r.committed_tcb,
                    policy.snp_minimum_tcb.as_ref(),
                ),
                advisory_ids: Vec::new(),
                collateral_issued_at: None,
                runtime_register: None,
                snp_guest: Some(r.guest),
            }
        }
    })
}

/// Everything about the guest that the signed content must show: the guest policy (SNP), the
/// TCB status the policy accepts, the event log replaying to the runtime register (or committed
/// in SNP report data), the binding, the boot identity, HOST_DATA (SNP), and the GPU evidence.
/// Whether the signed OS registers are what the claimed OS image measures to is the chain's
/// decision (`BootInfo.osMeasurement`, registered with the image), not this crate's. Separate from [`signed_by_platform`] so every
/// check can be exercised on its own without re-signing a report.
fn judge(
    signed: Signed,
    evidence: &Evidence,
    binding: &Binding<'_>,
    policy: &Policy,
    now: u64,
) -> Result<VerifiedEvidence> {
    // An SNP report's guest policy is always judged: its absence is a refusal, not a pass.
    match (&signed.measurements, &signed.snp_guest) {
        (PlatformMeasurements::Snp { .. }, Some(guest)) => snp::check_guest(guest)?,
        (PlatformMeasurements::Snp { .. }, None) => {
            return Err(Error::SnpVerification {
                what: "guest policy",
                reason: "not read from the report".into(),
            });
        }
        _ => {}
    }
    let expected = binding.report_data();
    let binding_report_data = expected;
    let replayed = eventlog::replay(&evidence.event_log)?;
    if !policy.accepted_tcb.contains(&signed.tcb_status) {
        return Err(Error::TcbNotAccepted {
            status: signed.tcb_status,
            advisories: signed.advisory_ids,
        });
    }
    let expected = match signed.runtime_register {
        Some(register) => {
            if replayed != register {
                return Err(Error::EventLogMismatch {
                    replayed: Box::new(replayed),
                    signed: Box::new(register),
                });
            }
            expected
        }
        None => snp_report_data(&expected, &replayed),
    };
    if signed.report_data != expected {
        return Err(Error::ReportDataMismatch {
            expected: Box::new(expected),
            got: Box::new(signed.report_data),
        });
    }
    let runtime = eventlog::decode_identity(&evidence.event_log)?;
    if let PlatformMeasurements::Snp { host_data, .. } = &signed.measurements {
        let required = snp_host_data(&runtime);
        if host_data != &required {
            return Err(Error::SnpVerification {
                what: "host data",
                reason: "HOST_DATA does not fix this app identity at launch".into(),
            });
        }
    }
    let gpu = verify_gpu_binding(
        evidence,
        &runtime,
        &binding_report_data,
        now,
        simulated_gpu_accepted(evidence.platform, policy),
    )?;
    Ok(VerifiedEvidence {
        platform: evidence.platform,
        measurements: signed.measurements,
        mr_aggregated: signed.mr_aggregated,
        report_data: signed.report_data,
        device_id: signed.device_id,
        tcb_status: signed.tcb_status,
        advisory_ids: signed.advisory_ids,
        collateral_issued_at: signed.collateral_issued_at,
        runtime,
        event_log: evidence.event_log.clone(),
        gpu,
    })
}

/// SEV-SNP only: the HOST_DATA that fixes an instance's app identity at launch, so that code
/// inside the guest cannot later ask for a report over another identity:
/// sha256("covenant-snp-host-data-v1:" ‖ app id ‖ compose hash ‖ os image hash ‖ key provider).
pub fn snp_host_data(identity: &RuntimeIdentity) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"covenant-snp-host-data-v1:");
    h.update(identity.app_id.as_bytes());
    h.update(identity.compose_hash.as_bytes());
    h.update(identity.os_image_hash.as_bytes());
    h.update(&identity.key_provider);
    h.finalize().into()
}

/// A simulated GPU is accepted only beside a simulated CPU, where the policy accepts that: a real
/// TDX or SEV-SNP boot never satisfies a GPU requirement with a GPU whose signing key is public.
fn simulated_gpu_accepted(platform: Platform, policy: &Policy) -> bool {
    platform == Platform::Simulated && policy.simulator_root.is_some()
}

/// GPU evidence must be announced in the log (its hash, extended by the guest before
/// `system-ready` and so signed by the CPU), bound to the CPU evidence (its nonce is derived from
/// the binding's report data, or from the boot key it names, see `GpuEvidence::bound_key`), and
/// verify, to the NVIDIA root or, where simulated TEEs are accepted, to the simulated GPU root;
/// evidence without the event or the event without evidence is refused.
fn verify_gpu_binding(
    evidence: &Evidence,
    runtime: &RuntimeIdentity,
    quote_report_data: &ReportData,
    now: u64,
    simulated_accepted: bool,
) -> Result<Option<VerifiedGpu>> {
    match (&evidence.gpu, &runtime.gpu_evidence_hash) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(Error::Gpu {
            what: "event log",
            reason: "GPU evidence is not announced by a gpu-evidence event".into(),
        }),
        (None, Some(_)) => Err(Error::Gpu {
            what: "evidence",
            reason: "the event log announces GPU evidence that is missing".into(),
        }),
        (Some(gpu), Some(announced)) => {
            if &gpu.hash() != announced {
                return Err(Error::Gpu {
                    what: "evidence hash",
                    reason: "the GPU evidence is not the one announced in the event log".into(),
                });
            }
            let nonce_source = if gpu.bound_key.is_empty() {
                *quote_report_data
            } else {
                tls_report_data(&gpu.bound_key)
            };
            nvidia::verify_gpu(
                gpu,
                &nvidia::gpu_nonce(&nonce_source),
                now,
                simulated_accepted,
            )
            .map(Some)
        }
    }
}

/// What a platform signed, before policy.
#[derive(Clone)]
struct Signed {
    measurements: PlatformMeasurements,
    mr_aggregated: MrAggregated,
    report_data: ReportData,
    device_id: DeviceId,
    tcb_status: TcbStatus,
    advisory_ids: Vec<String>,
    collateral_issued_at: Option<u64>,
    /// RTMR3 (TDX, simulator); SNP has none.
    runtime_register: Option<Measurement>,
    /// SNP: the guest policy and VMPL, judged by [`snp::check_guest`].
    snp_guest: Option<snp::SnpGuest>,
}

fn require_platform(policy: &Policy, platform: Platform) -> Result<()> {
    if policy.platforms.contains(&platform) {
        Ok(())
    } else {
        Err(Error::PlatformNotAllowed(platform))
    }
}

#[cfg(test)]
mod tests {
    //! The SEV-SNP half of [`judge`] on an accepting path, then each of its checks on its own —
    //! without re-signing a report (the signature stage is tested on the real vector).
    use super::*;
    use crate::{AppId, ComposeHash, InstanceId, OsImageHash, snp::SnpGuest};

    const MEASUREMENT: [u8; 48] = [0x3c; 48];

    fn identity(instance: u8) -> RuntimeIdentity {
        RuntimeIdentity {
            app_id: AppId::new([0xa1; 20]),
            compose_hash: ComposeHash::new([0xc0; 32]),
            instance_id: InstanceId::new([instance; 20]),
            key_provider: vec![0x4b; 20],
            os_image_hash: OsImageHash::new([0x05; 32]),
            gpu_evidence_hash: None,
        }
    }

    fn binding() -> ReportData {
        ReportData::new([0x5a; 64])
    }

    /// What a genuine report of `identity(1)`'s boot, bound to `binding()`, would carry.
    fn case() -> (Signed, Evidence, Policy) {
        let events = identity(1).boot_events();
        let replayed = eventlog::replay(&events).unwrap();
        let signed = Signed {
            measurements: PlatformMeasurements::Snp {
                measurement: Measurement::new(MEASUREMENT),
                host_data: snp_host_data(&identity(1)),
            },
            mr_aggregated: MrAggregated::new([0x77; 32]),
            report_data: snp_report_data(&binding(), &replayed),
            device_id: DeviceId::new([0x0d; 32]),
            tcb_status: TcbStatus::OutOfDate,
            advisory_ids: Vec::new(),
            collateral_issued_at: None,
            runtime_register: None,
            snp_guest: Some(SnpGuest {
                debug_allowed: false,
                migration_agent_allowed: false,
                vmpl: 0,
            }),
        };
        let evidence = Evidence {
            platform: Platform::Snp,
            quote: Vec::new(),
            vcek: Vec::new(),
            event_log: events,
            gpu: None,
        };
        let policy = Policy {
            accepted_tcb: vec![TcbStatus::OutOfDate],
            ..Policy::default()
        };
        (signed, evidence, policy)
    }

    fn run(signed: Signed, evidence: &Evidence, policy: &Policy) -> Result<VerifiedEvidence> {
        judge(signed, evidence, &Binding::ReportData(binding()), policy, 0)
    }

    fn snp_refusal(result: Result<VerifiedEvidence>) -> &'static str {
        match result {
            Err(Error::SnpVerification { what, .. }) => what,
            other => panic!("expected an SEV-SNP refusal, got {other:?}"),
        }
    }

    #[test]
    fn an_snp_report_of_this_boot_is_accepted() {
        let (signed, evidence, policy) = case();
        let verified = run(signed, &evidence, &policy).unwrap();
        assert_eq!(verified.platform(), Platform::Snp);
        assert_eq!(verified.runtime(), &identity(1));
        assert_eq!(verified.device_id(), DeviceId::new([0x0d; 32]));
        assert_eq!(verified.tcb_status(), TcbStatus::OutOfDate);
    }

    #[test]
    fn a_real_platform_never_takes_a_simulated_gpu() {
        let gpu = crate::simulated_gpu::SimulatedGpu::development(&[1; 32])
            .unwrap()
            .evidence(&nvidia::gpu_nonce(&binding()));
        let id = RuntimeIdentity {
            gpu_evidence_hash: Some(gpu.hash()),
            ..identity(1)
        };
        let (mut signed, mut evidence, mut policy) = case();
        evidence.event_log = id.boot_events();
        evidence.gpu = Some(gpu);
        signed.report_data =
            snp_report_data(&binding(), &eventlog::replay(&evidence.event_log).unwrap());
        policy.simulator_root = Some(crate::simulator::SimulatorRootKey::development().root());
        let judged = |signed: Signed, evidence: &Evidence| {
            judge(
                signed,
                evidence,
                &Binding::ReportData(binding()),
                &policy,
                1_795_305_600,
            )
        };
        // An SEV-SNP boot with every other check passing: the simulated GPU's root is refused,
        // although the policy accepts simulated evidence.
        let err = judged(signed.clone(), &evidence).unwrap_err();
        assert!(
            matches!(
                err,
                Error::Gpu {
                    what: "certificate chain",
                    ..
                }
            ),
            "{err}"
        );
        // What tells them apart is the CPU platform alone.
        evidence.platform = Platform::Simulated;
        let verified = judged(signed, &evidence).unwrap();
        assert!(verified.gpu().unwrap().simulated);
    }

    #[test]
    fn the_event_log_must_be_the_one_committed_in_the_report_data() {
        let (signed, mut evidence, policy) = case();
        evidence.event_log = identity(2).boot_events();
        assert!(matches!(
            run(signed, &evidence, &policy),
            Err(Error::ReportDataMismatch { .. })
        ));
    }

    #[test]
    fn host_data_must_fix_this_app_identity() {
        let (mut signed, evidence, policy) = case();
        let mut other = identity(1);
        other.compose_hash = ComposeHash::new([0xc1; 32]);
        signed.measurements = PlatformMeasurements::Snp {
            measurement: Measurement::new(MEASUREMENT),
            host_data: snp_host_data(&other),
        };
        assert_eq!(snp_refusal(run(signed, &evidence, &policy)), "host data");
    }

    #[test]
    fn the_os_measurement_is_the_sha256_of_the_launch_measurement() {
        let (signed, evidence, policy) = case();
        let verified = run(signed, &evidence, &policy).unwrap();
        let expected: [u8; 32] = Sha256::digest(MEASUREMENT).into();
        assert_eq!(verified.os_measurement(), expected);
        // SEV-SNP's aggregate does not cover the log: it is the same at system-ready.
        assert_eq!(
            verified.mr_aggregated_at_system_ready(),
            verified.mr_aggregated()
        );
        assert_eq!(verified.kms_identity(), None);
    }

    #[test]
    fn debugging_a_migration_agent_and_a_vmpl_above_zero_are_each_refused() {
        let guests = [
            (
                SnpGuest {
                    debug_allowed: true,
                    migration_agent_allowed: false,
                    vmpl: 0,
                },
                "guest policy",
            ),
            (
                SnpGuest {
                    debug_allowed: false,
                    migration_agent_allowed: true,
                    vmpl: 0,
                },
                "guest policy",
            ),
            (
                SnpGuest {
                    debug_allowed: false,
                    migration_agent_allowed: false,
                    vmpl: 1,
                },
                "VMPL",
            ),
        ];
        for (guest, refused_by) in guests {
            let (mut signed, evidence, policy) = case();
            signed.snp_guest = Some(guest);
            assert_eq!(
                snp_refusal(run(signed, &evidence, &policy)),
                refused_by,
                "{guest:?}"
            );
        }
    }

    #[test]
    fn an_snp_report_whose_guest_policy_was_not_read_is_refused() {
        let (mut signed, evidence, policy) = case();
        signed.snp_guest = None;
        assert_eq!(snp_refusal(run(signed, &evidence, &policy)), "guest policy");
    }

    #[test]
    fn a_tcb_the_policy_does_not_accept_is_refused() {
        let (signed, evidence, mut policy) = case();
        policy.accepted_tcb = vec![TcbStatus::UpToDate];
        assert!(matches!(
            run(signed, &evidence, &policy),
            Err(Error::TcbNotAccepted { .. })
        ));
    }
}
