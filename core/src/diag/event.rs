//! Syslog-style events and the ring that keeps the newest of them.
//!
//! An [`Event`] renders as the device's syslog message, `%SMART_LIC-<severity>-<MNEMONIC>:
//! <text>`, with the texts of real devices where they are known (research §6) and the stable
//! [`Code`] of the cause where the real message would print a vague one: slup never says
//! "communications failure" without saying which (DNS, connect, TLS, proxy, HTTP status, …).
//!
//! | mnemonic | sev | text |
//! |---|---|---|
//! | `AGENT_READY` | 6 | `Smart Agent for Licensing is initialized` |
//! | `AGENT_ENABLED` | 6 | `Smart Agent for Licensing is enabled` |
//! | `TRUST_INSTALL_SUCCESS` | 6 | `A new licensing trust code was successfully installed` |
//! | `TRUST_CODE_INSTALL_FAILED` | 3 | `The install of a new licensing trust code has failed: <cause>` |
//! | `POLICY_INSTALL_SUCCESS` | 6 | `A new licensing policy was successfully installed` |
//! | `POLICY_INSTALL_FAILED` | 3 | `The install of a new licensing policy has failed: <cause>` |
//! | `COMM_FAILED` | 3 | `Communications failure with the <peer> : <cause>` |
//! | `COMM_RESTORED` | 5 | `Communications with <peer> restored` |
//! | `REPORTING_REQUIRED` | 6 | `A Usage report acknowledgement will be required in <n> days` |
//! | `REPORTING_NOT_SUPPORTED` | 4 | `Smart Agent for Licensing CSSM OnPrem is down rev and does not support the enhanced policy and usage reporting mode.` |
//! | `SYSTEM_CLOCK_CHANGED` | 5 | `Smart Agent for Licensing System clock has been changed` |
//! | `USAGE_ACK_RECEIVED` | 6 | `A usage report acknowledgement was received: <a> acknowledged, <r> rejected` (slup) |
//! | `FACTORY_RESET` | 4 | `Licensing factory reset; reload required` (slup) |
//! | `PLATFORM_ERROR` | 2 | `Smart Licensing has encountered an internal software error. Contact TAC: <cause>` |
//! | `%PKI-3-CRL_FETCH_FAIL` | 3 | `CRL fetch for trustpoint <trustpoint> failed` |
//!
//! `<cause>` is the code's [`Display`](fmt::Display) (`E1300 DnsFailure: DNS resolution
//! failed`) followed by `: <detail>` when the event carries one (the host name, the service's
//! message, …). Events without a cause slot append ` : <detail>` when they carry one.
//!
//! `USAGE_ACK_RECEIVED` and `FACTORY_RESET` are slup's own: no public source shows the real
//! devices' messages for these moments, so they get names of their own rather than guesses at
//! Cisco's (an `ACK_RECEIVED` mnemonic appears in hearsay only). `FACTORY_RESET` is a warning
//! because, as on the device (`%Warning: reload required after "license smart factory
//! reset"`), the operator has something left to do.

use core::fmt;

use super::time::fmt_syslog;
use super::{Detail, DEFAULT_DETAIL_LEN};
use crate::error::Code;
use crate::types::Timestamp;

/// Default number of events an [`EventLog`] keeps.
pub const DEFAULT_EVENTS: usize = 32;

/// Syslog severity (RFC 5424 numbering, as in `%FACILITY-<severity>-MNEMONIC`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Severity {
    /// 0: the system is unusable.
    Emergency = 0,
    /// 1: immediate action needed.
    Alert = 1,
    /// 2: critical condition.
    Critical = 2,
    /// 3: error condition.
    Error = 3,
    /// 4: warning condition.
    Warning = 4,
    /// 5: normal but significant condition.
    Notice = 5,
    /// 6: informational message.
    Informational = 6,
    /// 7: debugging message.
    Debug = 7,
}

impl Severity {
    /// The number printed in the message, 0–7.
    pub const fn number(self) -> u8 {
        self as u8
    }
}

/// The license service slup talks to, as the messages name it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// The cloud service: `Cisco Smart Software Manager (CSSM)`.
    Cssm,
    /// A local relay: `Cisco Smart License Utility (CSLU)`.
    Cslu,
    /// An on-premises service: `Cisco Smart Software Manager On-Prem`.
    OnPrem,
}

impl Peer {
    /// The name in messages.
    pub const fn name(self) -> &'static str {
        match self {
            Peer::Cssm => "Cisco Smart Software Manager (CSSM)",
            Peer::Cslu => "Cisco Smart License Utility (CSLU)",
            Peer::OnPrem => "Cisco Smart Software Manager On-Prem",
        }
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What happened: one syslog mnemonic, with the values its text needs.
///
/// See the [module documentation](self) for the table of mnemonics, severities and texts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// `%SMART_LIC-6-AGENT_READY`: the agent has initialised.
    AgentReady,
    /// `%SMART_LIC-6-AGENT_ENABLED`: the agent is enabled.
    AgentEnabled,
    /// `%SMART_LIC-6-TRUST_INSTALL_SUCCESS`: a trust code was installed.
    TrustInstallSuccess,
    /// `%SMART_LIC-3-TRUST_CODE_INSTALL_FAILED`: a trust code could not be installed.
    TrustCodeInstallFailed {
        /// Why.
        cause: Code,
    },
    /// `%SMART_LIC-6-POLICY_INSTALL_SUCCESS`: a policy was installed.
    PolicyInstallSuccess,
    /// `%SMART_LIC-3-POLICY_INSTALL_FAILED`: a policy could not be installed.
    PolicyInstallFailed {
        /// Why.
        cause: Code,
    },
    /// `%SMART_LIC-3-COMM_FAILED`: an exchange with the service failed.
    CommFailed {
        /// Which service.
        peer: Peer,
        /// The precise failure (DNS, connect, TLS, HTTP status, bad signature, …).
        cause: Code,
    },
    /// `%SMART_LIC-5-COMM_RESTORED`: an exchange succeeded after failures.
    CommRestored {
        /// Which service.
        peer: Peer,
    },
    /// `%SMART_LIC-6-REPORTING_REQUIRED`: the ACK deadline approaches.
    ReportingRequired {
        /// Days left before an acknowledgement is required.
        days: u32,
    },
    /// `%SMART_LIC-4-REPORTING_NOT_SUPPORTED`: the on-prem service predates usage reporting.
    ReportingNotSupported,
    /// `%SMART_LIC-5-SYSTEM_CLOCK_CHANGED`: the system clock jumped.
    SystemClockChanged,
    /// `%SMART_LIC-6-USAGE_ACK_RECEIVED` (slup): a usage acknowledgement was applied.
    UsageAckReceived {
        /// Reports the service acknowledged.
        acknowledged: u32,
        /// Reports the service rejected.
        rejected: u32,
    },
    /// `%SMART_LIC-4-FACTORY_RESET` (slup): licensing state and trust were cleared.
    FactoryReset,
    /// `%SMART_LIC-2-PLATFORM_ERROR`: an internal error (storage, platform data, …).
    PlatformError {
        /// Why.
        cause: Code,
    },
    /// `%PKI-3-CRL_FETCH_FAIL`: the revocation list of a trust point could not be fetched.
    CrlFetchFail {
        /// The trust point, e.g. `"SLA-TrustPoint"`.
        trustpoint: &'static str,
    },
}

impl EventKind {
    /// The facility: `"SMART_LIC"`, or `"PKI"` for [`EventKind::CrlFetchFail`].
    pub const fn facility(&self) -> &'static str {
        match self {
            EventKind::CrlFetchFail { .. } => "PKI",
            _ => "SMART_LIC",
        }
    }

    /// The severity.
    pub const fn severity(&self) -> Severity {
        match self {
            EventKind::PlatformError { .. } => Severity::Critical,
            EventKind::TrustCodeInstallFailed { .. }
            | EventKind::PolicyInstallFailed { .. }
            | EventKind::CommFailed { .. }
            | EventKind::CrlFetchFail { .. } => Severity::Error,
            EventKind::ReportingNotSupported | EventKind::FactoryReset => Severity::Warning,
            EventKind::CommRestored { .. } | EventKind::SystemClockChanged => Severity::Notice,
            EventKind::AgentReady
            | EventKind::AgentEnabled
            | EventKind::TrustInstallSuccess
            | EventKind::PolicyInstallSuccess
            | EventKind::ReportingRequired { .. }
            | EventKind::UsageAckReceived { .. } => Severity::Informational,
        }
    }

    /// The mnemonic, e.g. `"COMM_FAILED"`.
    pub const fn mnemonic(&self) -> &'static str {
        match self {
            EventKind::AgentReady => "AGENT_READY",
            EventKind::AgentEnabled => "AGENT_ENABLED",
            EventKind::TrustInstallSuccess => "TRUST_INSTALL_SUCCESS",
            EventKind::TrustCodeInstallFailed { .. } => "TRUST_CODE_INSTALL_FAILED",
            EventKind::PolicyInstallSuccess => "POLICY_INSTALL_SUCCESS",
            EventKind::PolicyInstallFailed { .. } => "POLICY_INSTALL_FAILED",
            EventKind::CommFailed { .. } => "COMM_FAILED",
            EventKind::CommRestored { .. } => "COMM_RESTORED",
            EventKind::ReportingRequired { .. } => "REPORTING_REQUIRED",
            EventKind::ReportingNotSupported => "REPORTING_NOT_SUPPORTED",
            EventKind::SystemClockChanged => "SYSTEM_CLOCK_CHANGED",
            EventKind::UsageAckReceived { .. } => "USAGE_ACK_RECEIVED",
            EventKind::FactoryReset => "FACTORY_RESET",
            EventKind::PlatformError { .. } => "PLATFORM_ERROR",
            EventKind::CrlFetchFail { .. } => "CRL_FETCH_FAIL",
        }
    }

    /// The cause, for kinds whose text has a cause slot.
    pub const fn cause(&self) -> Option<Code> {
        match *self {
            EventKind::TrustCodeInstallFailed { cause }
            | EventKind::PolicyInstallFailed { cause }
            | EventKind::CommFailed { cause, .. }
            | EventKind::PlatformError { cause } => Some(cause),
            _ => None,
        }
    }

    /// Writes the message text (after `%FAC-SEV-MNEMONIC: `) with `detail`.
    fn write_text<const D: usize>(
        &self,
        f: &mut fmt::Formatter<'_>,
        detail: &Detail<D>,
    ) -> fmt::Result {
        match *self {
            EventKind::AgentReady => f.write_str("Smart Agent for Licensing is initialized")?,
            EventKind::AgentEnabled => f.write_str("Smart Agent for Licensing is enabled")?,
            EventKind::TrustInstallSuccess => {
                f.write_str("A new licensing trust code was successfully installed")?
            }
            EventKind::TrustCodeInstallFailed { .. } => {
                f.write_str("The install of a new licensing trust code has failed: ")?
            }
            EventKind::PolicyInstallSuccess => {
                f.write_str("A new licensing policy was successfully installed")?
            }
            EventKind::PolicyInstallFailed { .. } => {
                f.write_str("The install of a new licensing policy has failed: ")?
            }
            EventKind::CommFailed { peer, .. } => {
                write!(f, "Communications failure with the {peer} : ")?
            }
            EventKind::CommRestored { peer } => write!(f, "Communications with {peer} restored")?,
            EventKind::ReportingRequired { days } => write!(
                f,
                "A Usage report acknowledgement will be required in {days} days"
            )?,
            EventKind::ReportingNotSupported => f.write_str(
                "Smart Agent for Licensing CSSM OnPrem is down rev and does not support the \
                 enhanced policy and usage reporting mode.",
            )?,
            EventKind::SystemClockChanged => {
                f.write_str("Smart Agent for Licensing System clock has been changed")?
            }
            EventKind::UsageAckReceived {
                acknowledged,
                rejected,
            } => write!(
                f,
                "A usage report acknowledgement was received: {acknowledged} acknowledged, \
                 {rejected} rejected"
            )?,
            EventKind::FactoryReset => f.write_str("Licensing factory reset; reload required")?,
            EventKind::PlatformError { .. } => f.write_str(
                "Smart Licensing has encountered an internal software error. Contact TAC: ",
            )?,
            EventKind::CrlFetchFail { trustpoint } => {
                write!(f, "CRL fetch for trustpoint {trustpoint} failed")?
            }
        }
        match self.cause() {
            Some(cause) => {
                write!(f, "{cause}")?;
                if !detail.is_empty() {
                    write!(f, ": {detail}")?;
                }
            }
            None if !detail.is_empty() => write!(f, " : {detail}")?,
            None => {}
        }
        Ok(())
    }
}

/// One event: when, what, and an optional short detail (`D` bytes at most, cut and marked
/// beyond; see [`Detail`]).
///
/// [`Display`](fmt::Display) renders the syslog message without the time stamp,
/// `%SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code was successfully installed`;
/// [`Event::line`] adds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Event<const D: usize = DEFAULT_DETAIL_LEN> {
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// Free text completing the message (host name, service message, …); may be empty.
    pub detail: Detail<D>,
}

impl<const D: usize> Event<D> {
    /// An event without detail.
    pub const fn new(at: Timestamp, kind: EventKind) -> Self {
        Event {
            at,
            kind,
            detail: Detail::EMPTY,
        }
    }

    /// An event with a detail, cut to `D` bytes if longer.
    pub fn with_detail(at: Timestamp, kind: EventKind, detail: &str) -> Self {
        Event {
            at,
            kind,
            detail: Detail::new(detail),
        }
    }

    /// The severity of its kind.
    pub const fn severity(&self) -> Severity {
        self.kind.severity()
    }

    /// The whole syslog line, `Aug 22 12:13:11.879: %SMART_LIC-6-…: …` (no line feed).
    pub const fn line(&self) -> EventLine<'_, D> {
        EventLine(self)
    }
}

impl<const D: usize> fmt::Display for Event<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "%{}-{}-{}: ",
            self.kind.facility(),
            self.kind.severity().number(),
            self.kind.mnemonic()
        )?;
        self.kind.write_text(f, &self.detail)
    }
}

/// An event with its syslog time stamp; see [`Event::line`].
#[derive(Clone, Copy, Debug)]
pub struct EventLine<'a, const D: usize>(&'a Event<D>);

impl<const D: usize> fmt::Display for EventLine<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", fmt_syslog(self.0.at), self.0)
    }
}

/// The newest `N` events, oldest first; a full log overwrites its oldest event and counts it.
///
/// Every event pushed gets the next *sequence number* (0, 1, 2, …, never reused, not even
/// after [`clear`](Self::clear)), so a reader can keep its place with a single `u64` instead of
/// a copy of the events it has not read yet: [`get`](Self::get) finds an event by number while
/// the log still keeps it. The engine's event queue is such a cursor.
///
/// With `N = 0` nothing is kept and every event is counted as overwritten. Memory:
/// `N × size_of::<Event<D>>()` plus 24 bytes: 80 bytes per event at the default detail length
/// on a 32-bit target (96 on a 64-bit host).
#[derive(Clone, Debug)]
pub struct EventLog<const N: usize = DEFAULT_EVENTS, const D: usize = DEFAULT_DETAIL_LEN> {
    slots: [Option<Event<D>>; N],
    /// Index of the oldest event; always `< N` (0 when `N == 0`).
    head: usize,
    len: usize,
    overwritten: u64,
    /// Sequence number of the next event pushed.
    next_seq: u64,
}

impl<const N: usize, const D: usize> Default for EventLog<N, D> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const D: usize> EventLog<N, D> {
    /// An empty log.
    pub const fn new() -> Self {
        EventLog {
            slots: [None; N],
            head: 0,
            len: 0,
            overwritten: 0,
            next_seq: 0,
        }
    }

    /// A log holding `first` (sequence number 0), as one value: lets a constructor build its
    /// log in place instead of pushing onto a copy.
    pub const fn starting_with(first: Event<D>) -> Self {
        let mut log = Self::new();
        match log.slots.first_mut() {
            Some(slot) => {
                *slot = Some(first);
                log.len = 1;
            }
            None => log.overwritten = 1,
        }
        log.next_seq = 1;
        log
    }

    /// Most events kept.
    pub const fn capacity(&self) -> usize {
        N
    }

    /// Events kept.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// `true` if no event is kept.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events lost so far because the log was full (saturating).
    pub const fn overwritten(&self) -> u64 {
        self.overwritten
    }

    /// Appends `event`; when the log is full, the oldest event is overwritten, counted, and
    /// returned.
    pub fn push(&mut self, event: Event<D>) -> Option<Event<D>> {
        self.next_seq = self.next_seq.saturating_add(1);
        if N == 0 {
            self.overwritten = self.overwritten.saturating_add(1);
            return Some(event);
        }
        if self.len < N {
            let idx = self.index(self.len);
            if let Some(slot) = self.slots.get_mut(idx) {
                *slot = Some(event);
            }
            self.len += 1;
            return None;
        }
        // Full: the oldest slot becomes the newest.
        let old = self
            .slots
            .get_mut(self.head)
            .and_then(|slot| slot.replace(event));
        self.head = self.index(1);
        self.overwritten = self.overwritten.saturating_add(1);
        old
    }

    /// Appends an event built from its parts; see [`push`](Self::push).
    pub fn record(&mut self, at: Timestamp, kind: EventKind, detail: &str) -> Option<Event<D>> {
        self.push(Event::with_detail(at, kind, detail))
    }

    /// The events, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = &Event<D>> + '_ {
        (0..self.len).filter_map(move |i| self.slots.get(self.index(i)).and_then(Option::as_ref))
    }

    /// The newest event.
    pub fn newest(&self) -> Option<&Event<D>> {
        self.iter().next_back()
    }

    /// Forgets every event and resets the overwrite count; sequence numbers carry on.
    pub fn clear(&mut self) {
        *self = EventLog {
            next_seq: self.next_seq,
            ..Self::new()
        };
    }

    /// Sequence number the next event pushed will get (events pushed so far, saturating).
    pub const fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Sequence number of the oldest event kept ([`next_seq`](Self::next_seq) when empty).
    pub const fn oldest_seq(&self) -> u64 {
        self.next_seq.saturating_sub(self.len as u64)
    }

    /// The event with sequence number `seq`, while the log keeps it.
    pub fn get(&self, seq: u64) -> Option<&Event<D>> {
        let age = seq.checked_sub(self.oldest_seq())?;
        let i = usize::try_from(age).ok().filter(|i| *i < self.len)?;
        self.slots.get(self.index(i)).and_then(Option::as_ref)
    }

    /// Writes one syslog line per event, oldest first:
    /// `Aug 22 12:13:11.879: %SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code
    /// was successfully installed`. When events were overwritten, a first line says how many:
    /// `<3 older events overwritten>`.
    pub fn render<W: fmt::Write + ?Sized>(&self, w: &mut W) -> fmt::Result {
        if self.overwritten > 0 {
            writeln!(w, "<{} older events overwritten>", self.overwritten)?;
        }
        for event in self.iter() {
            writeln!(w, "{}", event.line())?;
        }
        Ok(())
    }

    /// Slot of the `i`-th oldest event (`i < N`).
    fn index(&self, i: usize) -> usize {
        let j = self.head.wrapping_add(i);
        if j >= N {
            j.wrapping_sub(N)
        } else {
            j
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn days(e: Option<&Event<8>>) -> Option<u32> {
        match e?.kind {
            EventKind::ReportingRequired { days } => Some(days),
            _ => None,
        }
    }

    #[test]
    fn sequence_numbers_find_events_while_kept() {
        let mut log: EventLog<3, 8> = EventLog::new();
        assert_eq!((log.oldest_seq(), log.next_seq()), (0, 0));
        assert!(log.get(0).is_none());
        for d in 0..5u32 {
            log.record(Timestamp(0), EventKind::ReportingRequired { days: d }, "");
        }
        // Events 0 and 1 were overwritten; 2, 3 and 4 are kept under their numbers.
        assert_eq!((log.oldest_seq(), log.next_seq()), (2, 5));
        assert_eq!(days(log.get(1)), None);
        assert_eq!(days(log.get(2)), Some(2));
        assert_eq!(days(log.get(4)), Some(4));
        assert_eq!(days(log.get(5)), None);
        assert_eq!(days(log.get(u64::MAX)), None);
        // Numbers are never reused, not even after a clear.
        log.clear();
        assert_eq!((log.oldest_seq(), log.next_seq(), log.len()), (5, 5, 0));
        log.record(Timestamp(0), EventKind::ReportingRequired { days: 9 }, "");
        assert_eq!(days(log.get(5)), Some(9));
        assert_eq!(days(log.get(4)), None);
    }

    #[test]
    fn starting_with_is_one_push() {
        let first = Event::new(Timestamp(7), EventKind::AgentReady);
        let log: EventLog<2, 8> = EventLog::starting_with(first);
        assert_eq!((log.len(), log.next_seq(), log.overwritten()), (1, 1, 0));
        assert_eq!(log.get(0), Some(&first));
        let none: EventLog<0, 8> = EventLog::starting_with(first);
        assert_eq!((none.len(), none.next_seq(), none.overwritten()), (0, 1, 1));
        assert!(none.get(0).is_none());
    }
}
