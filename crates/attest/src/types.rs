//! The values a verification produces, as newtypes with checked lengths.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// Which TEE produced a piece of evidence. The numbering matches the on-chain `TeeKind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum Platform {
    /// Intel TDX.
    Tdx = 1,
    /// AMD SEV-SNP.
    Snp = 2,
    /// Covenant's simulated TEE (development only; accepted only where policy allows it).
    Simulated = 3,
}

/// A platform's TCB status, in Intel's vocabulary. The numbering matches the on-chain `TcbStatus`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[repr(u8)]
pub enum TcbStatus {
    /// The platform is patched.
    UpToDate = 1,
    /// Software hardening is needed.
    SwHardeningNeeded = 2,
    /// Configuration changes are needed.
    ConfigurationNeeded = 3,
    /// Both of the above.
    ConfigurationAndSwHardeningNeeded = 4,
    /// The platform is out of date.
    OutOfDate = 5,
    /// Out of date, and configuration changes are needed.
    OutOfDateConfigurationNeeded = 6,
    /// The platform's keys are revoked.
    Revoked = 7,
}

impl TcbStatus {
    /// Parses Intel's status strings (as dcap-qvl reports them).
    pub fn from_intel(status: &str) -> Result<Self> {
        Ok(match status {
            "UpToDate" => Self::UpToDate,
            "SWHardeningNeeded" => Self::SwHardeningNeeded,
            "ConfigurationNeeded" => Self::ConfigurationNeeded,
            "ConfigurationAndSWHardeningNeeded" => Self::ConfigurationAndSwHardeningNeeded,
            "OutOfDate" => Self::OutOfDate,
            "OutOfDateConfigurationNeeded" => Self::OutOfDateConfigurationNeeded,
            "Revoked" => Self::Revoked,
            other => return Err(Error::UnknownTcbStatus(other.to_owned())),
        })
    }

    /// The byte the simulator and the chain use for this status.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The status for an on-chain / simulator byte.
    pub fn from_u8(value: u8) -> Result<Self> {
        Ok(match value {
            1 => Self::UpToDate,
            2 => Self::SwHardeningNeeded,
            3 => Self::ConfigurationNeeded,
            4 => Self::ConfigurationAndSwHardeningNeeded,
            5 => Self::OutOfDate,
            6 => Self::OutOfDateConfigurationNeeded,
            7 => Self::Revoked,
            other => return Err(Error::UnknownTcbStatus(format!("byte {other}"))),
        })
    }
}

macro_rules! bytes_newtype {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name([u8; $len]);

        impl $name {
            /// The length in bytes.
            pub const LEN: usize = $len;

            /// Wraps exactly `LEN` bytes.
            pub const fn new(bytes: [u8; $len]) -> Self {
                Self(bytes)
            }

            /// Wraps a slice, which must be exactly `LEN` bytes long.
            pub fn try_from_slice(bytes: &[u8]) -> Result<Self> {
                <[u8; $len]>::try_from(bytes).map(Self).map_err(|_| Error::Length {
                    what: stringify!($name),
                    expected: $len,
                    got: bytes.len(),
                })
            }

            /// The bytes.
            pub const fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            /// Lower-case hex without prefix.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "0x{}", self.to_hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_hex())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                let text = text.strip_prefix("0x").unwrap_or(&text);
                let bytes = hex::decode(text).map_err(serde::de::Error::custom)?;
                Self::try_from_slice(&bytes).map_err(serde::de::Error::custom)
            }
        }
    };
}

bytes_newtype!(
    /// A 48-byte SHA-384 measurement register (MRTD, RTMRn, SNP MEASUREMENT).
    Measurement,
    48
);
bytes_newtype!(
    /// The 64 bytes of report data a quote carries.
    ReportData,
    64
);
bytes_newtype!(
    /// A device identity: sha256(PPID) for TDX, sha256(CHIP_ID) for SNP.
    DeviceId,
    32
);
bytes_newtype!(
    /// sha256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3), or SNP's sha256(MEASUREMENT ‖ HOST_DATA).
    MrAggregated,
    32
);
bytes_newtype!(
    /// An app id: the address of the app's `App` proxy.
    AppId,
    20
);
bytes_newtype!(
    /// sha256 of the JCS-canonical app-compose document.
    ComposeHash,
    32
);
bytes_newtype!(
    /// 20 random bytes created at an instance's first boot.
    InstanceId,
    20
);
bytes_newtype!(
    /// A guest OS image hash.
    OsImageHash,
    32
);
bytes_newtype!(
    /// sha256 of verified GPU evidence.
    GpuEvidenceHash,
    32
);

impl DeviceId {
    /// sha256 of a platform's hardware identity (PPID or CHIP_ID).
    pub fn from_hardware_id(id: &[u8]) -> Self {
        Self(Sha256::digest(id).into())
    }
}

/// The measurement registers of a TD (or the simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TdMeasurements {
    /// The initial TD measurement.
    pub mrtd: Measurement,
    /// RTMR0..RTMR3; RTMR3 holds the runtime events.
    pub rtmr: [Measurement; 4],
}

impl TdMeasurements {
    /// sha256(MRTD ‖ RTMR0 ‖ RTMR1 ‖ RTMR2 ‖ RTMR3).
    pub fn mr_aggregated(&self) -> MrAggregated {
        let mut h = Sha256::new();
        h.update(self.mrtd.as_bytes());
        for r in &self.rtmr {
            h.update(r.as_bytes());
        }
        MrAggregated(h.finalize().into())
    }
}
