//! Producing TEE evidence, behind one trait ([`EvidenceProducer`]), for every Covenant component
//! that boots inside a TEE: guests, the gateway, KMS nodes.
//!
//! - [`Simulated`]: the software TEE for development and CI, for any app identity (apps, the
//!   gateway and KMS nodes all boot as apps); its evidence goes through the same `verify`.
//! - [`Tdx`]: Intel TDX through configfs-tsm ([`configfs`]), with each runtime event extended
//!   into RTMR3 through the kernel's TDX guest interface ([`rtmr`]).
//! - [`Snp`]: AMD SEV-SNP through configfs-tsm, with the VCEK or VLEK taken from the certificate
//!   table the host supplies with the report ([`certtable`]); SNP has no runtime register, so the
//!   replayed event log is committed in the report data (`covenant_attest::snp_report_data`).
//!
//! A confidential GPU is a [`GpuProducer`]: [`covenant_attest::simulated_gpu::SimulatedGpu`] for
//! development; [`EvidenceProducer::boot`] binds its evidence to the boot's RA-TLS key.
//!
//! Each producer records the runtime events of a boot in order (app id, compose hash, instance
//! id, key provider, OS image, optional GPU evidence, system ready) and returns
//! [`covenant_attest::Evidence`] that `covenant_attest::verify` judges. This crate does the I/O
//! that takes and decides nothing: whether evidence is acceptable is the verifier's and the
//! chain's business.

mod error;

pub mod certtable;
pub mod configfs;
pub mod rtmr;

use covenant_attest::{
    Evidence, Measurement, Platform, ReportData,
    eventlog::{self, RuntimeEvent, RuntimeIdentity},
    nvidia::{GpuEvidence, gpu_nonce},
    ratls::{self, RaTlsIdentity},
    simulated_gpu::SimulatedGpu,
    simulator::SimulatedTee,
};

pub use error::{Error, Result};

/// Something that can extend runtime events and produce evidence over report data.
pub trait EvidenceProducer: Send + Sync + std::fmt::Debug {
    /// The platform of the evidence.
    fn platform(&self) -> Platform;

    /// Extends `event` into the runtime register (where the platform has one) and records it.
    fn extend(&mut self, event: RuntimeEvent) -> Result<()>;

    /// The runtime events recorded so far, in order.
    fn event_log(&self) -> &[RuntimeEvent];

    /// Evidence whose report data binds `binding` (e.g. an RA-TLS key), with the event log.
    fn evidence(&self, binding: &ReportData) -> Result<Evidence>;

    /// Records the boot of `identity`: its events, in order.
    fn record_boot(&mut self, identity: &RuntimeIdentity) -> Result<()> {
        for event in identity.boot_events() {
            self.extend(event)?;
        }
        Ok(())
    }

    /// Records the boot of `identity` and makes the boot's RA-TLS key. With a `gpu`, the GPU's
    /// evidence is collected first, its SPDM nonce bound to that key ([`gpu_nonce`] of the key's
    /// report data), and announced by the `gpu-evidence` event (any hash `identity` names is
    /// replaced), so it is part of the boot the chain judges. Evidence made later over other
    /// report data carries [`Boot::gpu`], which names the boot key.
    fn boot(&mut self, identity: &RuntimeIdentity, gpu: Option<&dyn GpuProducer>) -> Result<Boot> {
        let Some(gpu) = gpu else {
            self.record_boot(identity)?;
            return Ok(Boot {
                identity: self.ratls_identity()?,
                gpu: None,
            });
        };
        let mut identity = identity.clone();
        let mut collected = None;
        let mut failure = None;
        let made = ratls::generate_identity(|report_data| {
            let mut steps = || -> Result<Evidence> {
                let evidence = gpu.evidence(&gpu_nonce(report_data))?;
                identity.gpu_evidence_hash = Some(evidence.hash());
                self.record_boot(&identity)?;
                let mut cpu = self.evidence(report_data)?;
                cpu.gpu = Some(evidence.clone());
                collected = Some(evidence);
                Ok(cpu)
            };
            steps().map_err(|e| {
                failure = Some(e);
                covenant_attest::Error::RaTls("evidence production failed".into())
            })
        });
        let boot_identity = match (made, failure) {
            (_, Some(e)) => return Err(e),
            (made, None) => made?,
        };
        let mut gpu = collected.ok_or(Error::Gpu("no GPU evidence was collected".into()))?;
        gpu.bound_key = boot_identity.subject_public_key_info()?;
        Ok(Boot {
            identity: boot_identity,
            gpu: Some(gpu),
        })
    }

    /// A fresh RA-TLS key and certificate whose evidence binds that key.
    fn ratls_identity(&self) -> Result<RaTlsIdentity> {
        let mut failure = None;
        let identity = ratls::generate_identity(|report_data| {
            self.evidence(report_data).map_err(|e| {
                failure = Some(e);
                covenant_attest::Error::RaTls("evidence production failed".into())
            })
        });
        match (identity, failure) {
            (_, Some(e)) => Err(e),
            (identity, None) => Ok(identity?),
        }
    }
}

/// A boot as [`EvidenceProducer::boot`] recorded it.
#[derive(Debug)]
pub struct Boot {
    /// The boot's RA-TLS key and certificate; with a GPU, its evidence carries the GPU's.
    pub identity: RaTlsIdentity,
    /// The GPU evidence the boot announced, naming the boot key (`bound_key`): what evidence
    /// over other report data carries so that verifiers can check the GPU.
    pub gpu: Option<GpuEvidence>,
}

/// A confidential GPU: answers an SPDM request nonce with its signed measurements.
pub trait GpuProducer: Send + Sync + std::fmt::Debug {
    /// The GPU's evidence for `nonce`.
    fn evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence>;
}

impl GpuProducer for SimulatedGpu {
    fn evidence(&self, nonce: &[u8; 32]) -> Result<GpuEvidence> {
        Ok(SimulatedGpu::evidence(self, nonce))
    }
}

/// What a simulated boot of `os_image` measures to: MRTD and RTMR0..2 derived from the image
/// hash, so that a development image has one fixed measurement to register on chain (a real
/// image's come from building it). Register them with `addOsImage` as MRTD ‖ RTMR0 ‖ RTMR1 ‖
/// RTMR2. Guests and KMS nodes booted from the same simulated image measure alike.
pub fn simulated_os_registers(os_image: [u8; 32]) -> (Measurement, [Measurement; 3]) {
    use sha2::{Digest, Sha384};
    let register = |name: &str| {
        let mut h = Sha384::new();
        h.update(b"covenant-simulated-os:");
        h.update(name.as_bytes());
        h.update(os_image);
        Measurement::new(h.finalize().into())
    };
    (
        register("mrtd"),
        [register("rtmr0"), register("rtmr1"), register("rtmr2")],
    )
}

/// The simulated TEE.
#[derive(Debug)]
pub struct Simulated {
    tee: SimulatedTee,
}

impl Simulated {
    /// A producer around `tee` (its registers, device, TCB status and signing root).
    pub fn new(tee: SimulatedTee) -> Self {
        Self { tee }
    }
}

impl EvidenceProducer for Simulated {
    fn platform(&self) -> Platform {
        Platform::Simulated
    }

    fn extend(&mut self, event: RuntimeEvent) -> Result<()> {
        self.tee.extend(event);
        Ok(())
    }

    fn event_log(&self) -> &[RuntimeEvent] {
        self.tee.event_log()
    }

    fn evidence(&self, binding: &ReportData) -> Result<Evidence> {
        Ok(Evidence {
            platform: Platform::Simulated,
            quote: self.tee.quote(binding),
            vcek: Vec::new(),
            event_log: self.tee.event_log().to_vec(),
            gpu: None,
        })
    }
}

/// Intel TDX: quotes through configfs-tsm, runtime events extended into RTMR3.
#[derive(Debug)]
pub struct Tdx {
    tsm: configfs::ConfigfsTsm,
    rtmr3: rtmr::Rtmr3,
    events: Vec<RuntimeEvent>,
}

impl Tdx {
    /// A producer using `tsm` and `rtmr3` (the kernel's, by default).
    pub fn new(tsm: configfs::ConfigfsTsm, rtmr3: rtmr::Rtmr3) -> Self {
        Self {
            tsm,
            rtmr3,
            events: Vec::new(),
        }
    }
}

impl EvidenceProducer for Tdx {
    fn platform(&self) -> Platform {
        Platform::Tdx
    }

    fn extend(&mut self, event: RuntimeEvent) -> Result<()> {
        self.rtmr3.extend(&event.digest())?;
        self.events.push(event);
        Ok(())
    }

    fn event_log(&self) -> &[RuntimeEvent] {
        &self.events
    }

    fn evidence(&self, binding: &ReportData) -> Result<Evidence> {
        let quote = self.tsm.quote(binding)?;
        if quote.platform != Platform::Tdx {
            return Err(Error::WrongPlatform {
                expected: Platform::Tdx,
                got: quote.platform,
            });
        }
        Ok(Evidence {
            platform: Platform::Tdx,
            quote: quote.quote,
            vcek: Vec::new(),
            event_log: self.events.clone(),
            gpu: None,
        })
    }
}

/// AMD SEV-SNP: reports through configfs-tsm over the binding and the replayed event log, the
/// VCEK or VLEK (whichever signed the report) from the host's certificate table. A VCEK the host
/// did not supply is left out, for the verifier to fetch from a key distribution service.
#[derive(Debug)]
pub struct Snp {
    tsm: configfs::ConfigfsTsm,
    events: Vec<RuntimeEvent>,
}

impl Snp {
    /// A producer using `tsm`.
    pub fn new(tsm: configfs::ConfigfsTsm) -> Self {
        Self {
            tsm,
            events: Vec::new(),
        }
    }
}

impl EvidenceProducer for Snp {
    fn platform(&self) -> Platform {
        Platform::Snp
    }

    /// SNP has no runtime register: the event is recorded, and the replayed log is committed in
    /// the report data of every report.
    fn extend(&mut self, event: RuntimeEvent) -> Result<()> {
        self.events.push(event);
        Ok(())
    }

    fn event_log(&self) -> &[RuntimeEvent] {
        &self.events
    }

    fn evidence(&self, binding: &ReportData) -> Result<Evidence> {
        let replayed = eventlog::replay(&self.events)?;
        let report_data = covenant_attest::snp_report_data(binding, &replayed);
        let report = self.tsm.quote(&report_data)?;
        if report.platform != Platform::Snp {
            return Err(Error::WrongPlatform {
                expected: Platform::Snp,
                got: report.platform,
            });
        }
        let signer = covenant_attest::snp::unverified_signing(&report.quote)?.signer;
        Ok(Evidence {
            platform: Platform::Snp,
            vcek: certtable::endorsement_key(&report.aux, signer)?.unwrap_or_default(),
            quote: report.quote,
            event_log: self.events.clone(),
            gpu: None,
        })
    }
}

#[cfg(test)]
mod tests;
