//! Engine configuration: who the product is, how it talks to the service, and its cadences.
//!
//! Everything here is set by the firmware (or `slup device` on a host) and may change at run
//! time through `configure`; nothing here is learned from the network. Defaults follow
//! DESIGN.md §3 and the seed.

use crate::crypto::PublicKey;
use crate::error::Code;
use crate::types::{Role, Udi};

/// HA units a configuration (and the engine: its installed trust and pending keys) holds by
/// default: an active/standby pair. Each unit costs about 140 bytes here and 1.1 KiB in the
/// engine with software keys (a trust code, a key, a pending key) on a 32-bit target. The wire
/// allows up to [`MAX_HA_MEMBERS`](crate::msg::MAX_HA_MEMBERS) units; a bigger group sets the
/// `MEMBERS` parameter of [`Config`] and [`Engine`](crate::engine::Engine).
pub const DEFAULT_MEMBERS: usize = 2;
/// Longest URL accepted (164 bytes of RAM).
pub const MAX_URL_LEN: usize = 160;
/// Longest software tag kept (100 bytes of RAM), e.g.
/// `regid.2018-05.com.cisco.WLC_9500C,1.0`.
pub const MAX_SOFTWARE_LEN: usize = 96;
/// Longest software version kept (36 bytes of RAM), e.g. `17.09.02`.
pub const MAX_SOFTWARE_VERSION_LEN: usize = 32;
/// Longest UDI part kept, as the wire allows (68 bytes of RAM per part, two per unit).
pub const MAX_UDI_LEN: usize = 64;

/// The cloud service's default URL (`license smart url default`).
pub const DEFAULT_SMART_URL: &str = "https://smartreceiver.cisco.com/licservice/license";
/// A CSLU's default URL; `cslu-local` is resolved through DNS.
pub const DEFAULT_CSLU_URL: &str = "http://cslu-local:8182/cslu/v1/pi";

/// Report every 8 hours (the seed: the 9800 talks to CSSM every 8 h).
pub const DEFAULT_REPORT_INTERVAL_S: u32 = 8 * 3600;
/// Poll after `OK_POLL` when the service gives no retry time.
pub const DEFAULT_POLL_RETRY_S: u32 = 300;
/// The first trust retry comes one minute after a failure (the seed).
pub const DEFAULT_TRUST_FIRST_RETRY_S: u32 = 60;
/// Then retries follow the communication-failure cadence, hourly as observed on devices.
pub const DEFAULT_COMM_RETRY_S: u32 = 3600;
/// Trust is refused when the service's signed time differs from ours by more than an hour.
pub const DEFAULT_MAX_CLOCK_SKEW_MS: u64 = 3_600_000;
/// Warn this many days before the ACK deadline (`REPORTING_REQUIRED`).
pub const DEFAULT_REPORTING_WARNING_DAYS: u16 = 14;

/// A software version or tag: a valid wire identifier that fits in `N` bytes.
fn text<const N: usize>(s: &str) -> Result<heapless::String<N>, Code> {
    crate::types::Ident::new(s)?;
    heapless::String::try_from(s).map_err(|_| Code::InvalidValue)
}

/// How the device reaches its service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransportMode {
    /// Directly to the cloud service (`license smart transport smart`).
    Smart,
    /// Through a CSLU, product-instance initiated (`license smart transport cslu`); sends HELLO.
    Cslu,
    /// An on-prem service (`/cslu/v1/pi/<VA>-<n>` or `/SmartTransport`).
    OnPrem,
    /// Air-gapped: usage leaves by file (`save_usage`), ACKs come back by `import`.
    Off,
}

/// A UDI kept by value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedUdi {
    pid: heapless::String<MAX_UDI_LEN>,
    serial: heapless::String<MAX_UDI_LEN>,
}

impl OwnedUdi {
    /// Checks and copies a UDI.
    pub fn new(pid: &str, serial: &str) -> Result<Self, Code> {
        let udi = Udi::new(pid, serial)?;
        Ok(OwnedUdi {
            pid: heapless::String::try_from(udi.udi_pid.as_str())
                .map_err(|_| Code::InvalidValue)?,
            serial: heapless::String::try_from(udi.udi_serial_number.as_str())
                .map_err(|_| Code::InvalidValue)?,
        })
    }

    /// The wire form.
    pub fn udi(&self) -> Udi<'_> {
        Udi {
            udi_pid: crate::types::UdiPart::from_validated(&self.pid),
            udi_serial_number: crate::types::UdiPart::from_validated(&self.serial),
        }
    }
}

/// One unit of the HA group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    /// Its role.
    pub role: Role,
    /// Its UDI.
    pub udi: OwnedUdi,
}

/// Cadences and tolerances, all configurable and all shown in status output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Intervals {
    /// Seconds between usage reports; it takes effect, bounded by policy deadlines.
    pub report_s: u32,
    /// Poll delay after `OK_POLL` when the service gives none.
    pub poll_retry_s: u32,
    /// First retry after a failed trust attempt.
    pub trust_first_retry_s: u32,
    /// Retry cadence after communication failures.
    pub comm_retry_s: u32,
    /// Largest accepted difference between the service's time and ours.
    pub max_clock_skew_ms: u64,
    /// Days before the ACK deadline at which `REPORTING_REQUIRED` warnings start.
    pub reporting_warning_days: u16,
}

impl Default for Intervals {
    fn default() -> Self {
        Intervals {
            report_s: DEFAULT_REPORT_INTERVAL_S,
            poll_retry_s: DEFAULT_POLL_RETRY_S,
            trust_first_retry_s: DEFAULT_TRUST_FIRST_RETRY_S,
            comm_retry_s: DEFAULT_COMM_RETRY_S,
            max_clock_skew_ms: DEFAULT_MAX_CLOCK_SKEW_MS,
            reporting_warning_days: DEFAULT_REPORTING_WARNING_DAYS,
        }
    }
}

/// The whole configuration.
#[derive(Clone, Debug)]
pub struct Config<const MEMBERS: usize = DEFAULT_MEMBERS> {
    /// The HA group; the first member is the active unit, whose UDI is the product's.
    pub members: heapless::Vec<Member, MEMBERS>,
    /// Software version, e.g. `17.09.02`.
    pub software_version: heapless::String<MAX_SOFTWARE_VERSION_LEN>,
    /// ISO 19770-2 software tag.
    pub software_tag: heapless::String<MAX_SOFTWARE_LEN>,
    /// How to reach the service.
    pub transport: TransportMode,
    /// Service URL; empty means the mode's default.
    pub url: heapless::String<MAX_URL_LEN>,
    /// The service's public key: every response, trust code and ACK must verify with it.
    pub trust_anchor: PublicKey,
    /// Cadences.
    pub intervals: Intervals,
}

impl<const MEMBERS: usize> Config<MEMBERS> {
    /// A single-unit product with default transport (smart) and cadences.
    pub fn new(
        pid: &str,
        serial: &str,
        software_version: &str,
        software_tag: &str,
        trust_anchor: PublicKey,
    ) -> Result<Self, Code> {
        let mut members = heapless::Vec::new();
        members
            .push(Member {
                role: Role::Active,
                udi: OwnedUdi::new(pid, serial)?,
            })
            .map_err(|_| Code::CapacityExceeded)?;
        Ok(Config {
            members,
            software_version: text(software_version)?,
            software_tag: text(software_tag)?,
            transport: TransportMode::Smart,
            url: heapless::String::new(),
            trust_anchor,
            intervals: Intervals::default(),
        })
    }

    /// Adds an HA unit (Standby or Member).
    pub fn add_member(&mut self, role: Role, pid: &str, serial: &str) -> Result<(), Code> {
        if role == Role::Active {
            return Err(Code::InvalidArgument);
        }
        let udi = OwnedUdi::new(pid, serial)?;
        if self.members.iter().any(|m| m.udi == udi) {
            return Err(Code::InvalidArgument);
        }
        self.members
            .push(Member { role, udi })
            .map_err(|_| Code::CapacityExceeded)
    }

    /// Sets the transport and its URL (empty: the mode's default). A URL that is not a
    /// service URL ([`crate::url`]) is [`Code::InvalidArgument`].
    pub fn set_transport(&mut self, mode: TransportMode, url: &str) -> Result<(), Code> {
        if !url.is_empty() && crate::url::ServiceUrl::parse(url).is_err() {
            return Err(Code::InvalidArgument);
        }
        self.url = heapless::String::try_from(url).map_err(|_| Code::InvalidArgument)?;
        self.transport = mode;
        Ok(())
    }

    /// The URL in force: the configured one, or the mode's default (`None` when air-gapped,
    /// or on-prem without a URL).
    pub fn effective_url(&self) -> Option<&str> {
        if !self.url.is_empty() {
            return (self.transport != TransportMode::Off).then_some(self.url.as_str());
        }
        match self.transport {
            TransportMode::Smart => Some(DEFAULT_SMART_URL),
            TransportMode::Cslu => Some(DEFAULT_CSLU_URL),
            TransportMode::OnPrem | TransportMode::Off => None,
        }
    }

    /// The active unit (the product instance's UDI).
    pub fn active(&self) -> Option<&Member> {
        self.members.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{Signer, SoftwareSigner};

    fn anchor() -> PublicKey {
        SoftwareSigner::from_secret_bytes(&[0x5e; 32])
            .unwrap()
            .public_key()
            .clone()
    }

    #[test]
    fn defaults_follow_the_design() {
        let mut c: Config = Config::new(
            "C9800-CL-K9",
            "9PJK8D70CNB",
            "17.09.02",
            "regid.x",
            anchor(),
        )
        .unwrap();
        assert_eq!(c.effective_url(), Some(DEFAULT_SMART_URL));
        assert_eq!(c.intervals.report_s, 8 * 3600);
        c.set_transport(TransportMode::Cslu, "").unwrap();
        assert_eq!(c.effective_url(), Some(DEFAULT_CSLU_URL));
        c.set_transport(
            TransportMode::OnPrem,
            "https://onprem.example/cslu/v1/pi/VA-1",
        )
        .unwrap();
        assert_eq!(
            c.effective_url(),
            Some("https://onprem.example/cslu/v1/pi/VA-1")
        );
        c.set_transport(TransportMode::Off, "").unwrap();
        assert_eq!(c.effective_url(), None);
        assert_eq!(
            c.set_transport(TransportMode::Smart, "ftp://x"),
            Err(Code::InvalidArgument)
        );
    }

    #[test]
    fn members_are_checked() {
        let mut c: Config<2> =
            Config::new("C9800-CL-K9", "A", "17.09.02", "regid.x", anchor()).unwrap();
        assert_eq!(
            c.add_member(Role::Active, "C9800-CL-K9", "B"),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            c.add_member(Role::Standby, "C9800-CL-K9", "A"),
            Err(Code::InvalidArgument)
        );
        c.add_member(Role::Standby, "C9800-CL-K9", "B").unwrap();
        assert_eq!(
            c.add_member(Role::Member, "C9800-CL-K9", "C"),
            Err(Code::CapacityExceeded)
        );
        assert_eq!(
            c.active().unwrap().udi.udi().udi_serial_number.as_str(),
            "A"
        );
        assert!(Config::<2>::new("", "A", "1", "t", anchor()).is_err());
    }
}
