//! The sans-IO agent engine (DESIGN.md §2).
//!
//! Bytes and time go in; bytes to send, events and the next deadline come out. The engine does
//! no I/O, reads no clock and owns no thread:
//!
//! ```text
//! engine.handle_command(now, Command)           establish trust, record usage, sync, reset
//! engine.poll_transmit(now, &mut buf)           -> Option<Transmit>: a request to POST
//! engine.handle_response(now, &bytes)           the service's answer to it
//! engine.handle_transport_error(now, code)      or why no answer came
//! engine.poll_timeout() / handle_timeout(now)   the next deadline, and reaching it
//! engine.poll_event()                           %SMART_LIC-… events for the log
//! ```
//!
//! At most one exchange is in flight. The building blocks:
//!
//! - [`clock`]: effective time and clock-change detection;
//! - [`config`]: who the product is, how it reaches the service, cadences;
//! - [`trust`]: pending and installed device keys and trust codes;
//! - [`usage`]: counts, samples, open reports and closing them into signed RUM reports;
//! - [`reports`]: closed reports kept as signed bytes until acknowledged;
//! - [`pull`]: the device REST API a CSLU pulls from;
//! - [`render`]: `show license …` outputs;
//! - [`persist`]: the records a driver saves after each call and restores after a reboot.

pub mod clock;
pub mod config;
pub mod persist;
pub mod pull;
pub mod render;
pub mod reports;
pub mod trust;
pub mod usage;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::Signer;
use crate::diag::event::{Event, EventKind, EventLog, Peer};
use crate::diag::history::MessageHistory;
use crate::diag::stats::{CommStats, ResponseStatus};
use crate::diag::MessageKind;
use crate::error::{Code, Error};
use crate::msg::policy::{Policy, ResolvedPolicy};
use crate::msg::request::{self, CertSerial, PollRef, Request, RequestData, RequestHeader};
use crate::msg::response::{self, ResponseData};
use crate::msg::{ConnectInfo, HaUdi, SignedList, Version, CAPABILITIES};
use crate::nonce::{Nonce, NonceTracker};
use crate::types::{IdToken, Ident, InstanceId, RequestType, Scope, StatusCode, Timestamp, Uuid};

use self::clock::ClockMonitor;
use self::config::{Config, TransportMode};
use self::reports::{ReportState, ReportStore};
use self::trust::{KeyProvider, PendingKeys, Trust};
use self::usage::{CloseReason, ReportContext, Usage, SAMPLE_INTERVAL_S};

// Capacities. The engine's RAM is DESIGN.md §6's budget (8 KiB on a Cortex-M4 at these
// defaults); each constant says what it costs there (32-bit sizes; a 64-bit host needs more).
// `examples/firmware` prints the measured size of every part.

pub use self::config::DEFAULT_MEMBERS;

/// Events the engine keeps, 80 bytes each (640 bytes). One log serves both `show logging`
/// ([`Engine::event_log`]) and [`Engine::poll_event`]: the queue is a cursor into it, so an
/// event stays available to poll until `EVENT_LOG` newer ones have pushed it out, and the
/// overwrite count says how many went unseen.
pub const EVENT_LOG: usize = 8;
/// Message history entries, 32 bytes each (256 bytes on a device), on top of
/// [`HISTORY_BYTES`]; 16 with the `std` feature.
pub const HISTORY_ENTRIES: usize = if cfg!(feature = "std") { 16 } else { 8 };
/// Bytes of message bodies in the history. A body longer than half of it is cut and marked, so
/// the newest request and its answer always fit together: on a device, 1 KiB, the first 512
/// bytes of each, which hold the signature and the header (type, nonce, status, message). A
/// host (the `std` feature) has room to spare and keeps 16 KiB, enough for a usage exchange and
/// the trust sync that follows it, whole.
pub const HISTORY_BYTES: usize = if cfg!(feature = "std") {
    16 * 1024
} else {
    1024
};
/// Bytes of the service's text kept with the last failure of each message kind (the code is
/// always kept whole); the statistics take `5 × (STATS_REASON_LEN + 80) + 8` bytes (648).
pub const STATS_REASON_LEN: usize = 48;
/// One day in milliseconds.
pub const DAY_MS: u64 = 86_400_000;
/// Agent version announced in `connect_info`.
pub const AGENT_VERSION: &str = env!("CARGO_PKG_VERSION");

/// What the caller asks of the engine.
#[derive(Clone, Copy, Debug)]
pub enum Command<'a> {
    /// `license smart trust idtoken <token> local|all [force]`.
    EstablishTrust {
        /// The ID token.
        token: &'a str,
        /// Which units.
        scope: Scope,
        /// Replace trust already installed.
        force: bool,
    },
    /// The count of `tag` in use is now `count`.
    RecordUsage {
        /// Entitlement tag.
        tag: &'a str,
        /// Count in use.
        count: u64,
    },
    /// A sub-device (an AP) joined or left, for `tag`.
    Entity {
        /// Entitlement tag.
        tag: &'a str,
        /// The sub-device's UDI.
        udi: crate::types::Udi<'a>,
        /// Joined (`true`) or left.
        joined: bool,
    },
    /// `license smart sync`: close open reports and report now.
    SyncNow,
    /// `license smart factory reset`: clears trust, policy, reports and counters.
    FactoryReset,
}

/// What a command did, beyond success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Done,
    /// Queued; a request will go out at the next `poll_transmit`.
    Queued,
    /// Done; the product must reload (factory reset).
    ReloadRequired,
}

/// A request to send: POST the first `len` bytes of the caller's buffer to `url`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Which exchange this is.
    pub kind: MessageKind,
    /// Bytes written.
    pub len: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct InFlight {
    kind: MessageKind,
    nonce: Nonce,
}

struct PendingTrust<K, const M: usize> {
    keys: PendingKeys<K, M>,
    token: heapless::String<{ crate::types::MAX_TOKEN_LEN }>,
    force: bool,
    failures: u32,
    due: Timestamp,
}

/// The installed policy (or Cisco's default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyState {
    /// Resolved values with origins.
    pub resolved: ResolvedPolicy,
    /// The name, `Cisco default` until one is installed.
    pub name: heapless::String<64>,
    /// When it was installed.
    pub installed_at: Option<Timestamp>,
}

impl PolicyState {
    /// Cisco's default policy, in force until one is installed.
    pub fn cisco_default() -> Self {
        PolicyState {
            resolved: ResolvedPolicy::CISCO_DEFAULT,
            name: heapless::String::try_from("Cisco default").unwrap_or_default(),
            installed_at: None,
        }
    }
}

/// The agent.
pub struct Engine<K: KeyProvider, R, const MEMBERS: usize = DEFAULT_MEMBERS> {
    config: Config<MEMBERS>,
    keys: K,
    rng: R,
    clock: ClockMonitor,
    nonces: NonceTracker,
    trust: Trust<K::Key, MEMBERS>,
    pending_trust: Option<PendingTrust<K::Key, MEMBERS>>,
    usage: Usage,
    reports: ReportStore,
    policy: PolicyState,
    inflight: Option<InFlight>,
    poll: Option<(Timestamp, heapless::String<36>)>,
    next_sample: Timestamp,
    next_report: Timestamp,
    report_now: bool,
    trust_sync_due: bool,
    hello_due: Option<Timestamp>,
    last_ack: Option<Timestamp>,
    first_use: Option<Timestamp>,
    next_warning: Timestamp,
    comm_failing: bool,
    /// Sequence number (in `log`) of the next event [`Engine::poll_event`] hands out.
    events: u64,
    log: EventLog<EVENT_LOG>,
    history: MessageHistory<HISTORY_ENTRIES, HISTORY_BYTES>,
    stats: CommStats<STATS_REASON_LEN>,
    /// Digest of each persistence record as last saved (`None`: not saved yet).
    saved: [Option<u64>; persist::Record::ALL.len()],
}

fn secs_ms(s: u32) -> u64 {
    u64::from(s).saturating_mul(1000)
}

impl<K, R, const MEMBERS: usize> Engine<K, R, MEMBERS>
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    /// A fresh agent (no trust, Cisco default policy) starting at `now`.
    pub fn new(config: Config<MEMBERS>, keys: K, rng: R, now: Timestamp) -> Self {
        let report_ms = secs_ms(config.intervals.report_s);
        // With a CSLU, HELLO goes out at start and then with every report cycle.
        let hello_due = (config.transport == TransportMode::Cslu).then_some(now);
        // One struct expression, no call on a local copy, and the big parts as constants: so
        // that the compiler can build the engine where the caller keeps it (a static, on a
        // device), field by field, rather than build it on the stack and copy it there.
        Engine {
            config,
            keys,
            rng,
            clock: ClockMonitor::new(now),
            nonces: const { NonceTracker::new() },
            trust: Trust::default(),
            pending_trust: None,
            usage: const { Usage::new() },
            reports: const { ReportStore::new() },
            policy: PolicyState::cisco_default(),
            inflight: None,
            poll: None,
            next_sample: now.add_millis(secs_ms(SAMPLE_INTERVAL_S)),
            next_report: now.add_millis(report_ms),
            report_now: false,
            trust_sync_due: false,
            hello_due,
            last_ack: None,
            first_use: None,
            next_warning: now,
            comm_failing: false,
            events: 0,
            log: EventLog::starting_with(Event::new(now, EventKind::AgentReady)),
            history: const { MessageHistory::new() },
            stats: const { CommStats::new() },
            saved: [None; persist::Record::ALL.len()],
        }
    }

    // ---- read-only views ------------------------------------------------------------------

    /// The configuration.
    pub fn config(&self) -> &Config<MEMBERS> {
        &self.config
    }
    /// Installed trust.
    pub fn trust(&self) -> &Trust<K::Key, MEMBERS> {
        &self.trust
    }
    /// Usage counters and open reports.
    pub fn usage(&self) -> &Usage {
        &self.usage
    }
    /// Closed reports.
    pub fn reports(&self) -> &ReportStore {
        &self.reports
    }
    /// The policy in force.
    pub fn policy(&self) -> &PolicyState {
        &self.policy
    }
    /// The event log.
    pub fn event_log(&self) -> &EventLog<EVENT_LOG> {
        &self.log
    }
    /// The message history.
    pub fn history(&self) -> &MessageHistory<HISTORY_ENTRIES, HISTORY_BYTES> {
        &self.history
    }
    /// Communication statistics.
    pub fn stats(&self) -> &CommStats<STATS_REASON_LEN> {
        &self.stats
    }
    /// When the next usage report is due.
    pub fn next_report_time(&self) -> Timestamp {
        self.next_report
    }
    /// When the last usage acknowledgement arrived.
    pub fn last_ack(&self) -> Option<Timestamp> {
        self.last_ack
    }

    /// The ACK deadline: the last ACK (or, before any, the first recorded use) plus the
    /// shortest non-zero reporting requirement of the policy in force. `None` when the policy
    /// requires no ACK or nothing was used yet.
    pub fn ack_deadline(&self) -> Option<Timestamp> {
        if !self.policy.resolved.ack_required.0 {
            return None;
        }
        // Column 1 is the reporting frequency (after an ACK), column 0 the first report.
        let (base, column) = match self.last_ack {
            Some(t) => (t, 1),
            None => (self.first_use?, 0),
        };
        let days = self
            .policy
            .resolved
            .classes
            .iter()
            .map(|c| c.get(column).map(|a| a.0).unwrap_or(0))
            .filter(|d| *d > 0)
            .min()?;
        Some(base.add_millis(u64::from(days).saturating_mul(DAY_MS)))
    }

    /// `true` while a request waits for its answer.
    pub fn in_flight(&self) -> bool {
        self.inflight.is_some()
    }

    // ---- events ---------------------------------------------------------------------------

    fn emit(&mut self, at: Timestamp, kind: EventKind, detail: &str) {
        self.log.record(at, kind, detail);
    }

    /// The next event for the platform's log, oldest first. Events not polled before
    /// [`EVENT_LOG`] newer ones pushed them out of the log are skipped (the log counts them
    /// as overwritten).
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events = self.events.max(self.log.oldest_seq());
        let event = *self.log.get(self.events)?;
        self.events = self.events.saturating_add(1);
        Some(event)
    }

    fn peer(&self) -> Peer {
        match self.config.transport {
            TransportMode::Cslu => Peer::Cslu,
            TransportMode::OnPrem => Peer::OnPrem,
            TransportMode::Smart | TransportMode::Off => Peer::Cssm,
        }
    }

    fn observe(&mut self, now: Timestamp) -> Timestamp {
        let deadline = self.poll_timeout();
        let (eff, change) = self.clock.observe(now, deadline);
        if let Some(c) = change {
            self.usage.clock_changed(c.delta_secs());
            self.emit(eff, EventKind::SystemClockChanged, "");
        }
        eff
    }

    // ---- commands -------------------------------------------------------------------------

    /// Carries out a command.
    pub fn handle_command(&mut self, now: Timestamp, cmd: Command<'_>) -> Result<Outcome, Error> {
        let now = self.observe(now);
        match cmd {
            Command::EstablishTrust {
                token,
                scope,
                force,
            } => {
                IdToken::new(token).map_err(Error::Protocol)?;
                if self.config.transport == TransportMode::Off {
                    // Air-gapped: there is no service to send the token to.
                    return Err(Error::Protocol(Code::InvalidArgument));
                }
                if self.trust.is_installed() && !force {
                    return Err(Error::Protocol(Code::TrustAlreadyInstalled));
                }
                let keys = PendingKeys::generate(&mut self.keys, &self.config.members, scope)
                    .map_err(Error::Protocol)?;
                let token = heapless::String::try_from(token)
                    .map_err(|_| Error::Protocol(Code::InvalidValue))?;
                self.pending_trust = Some(PendingTrust {
                    keys,
                    token,
                    force,
                    failures: 0,
                    due: now,
                });
                Ok(Outcome::Queued)
            }
            Command::RecordUsage { tag, count } => {
                if count > 0 && self.first_use.is_none() {
                    self.first_use = Some(now);
                }
                if let Some(i) = self
                    .usage
                    .record(now.secs(), tag, count)
                    .map_err(Error::Protocol)?
                {
                    self.close_report(now, i, CloseReason::UsageChanged)?;
                    self.usage.reopen(i, now.secs());
                }
                Ok(Outcome::Done)
            }
            Command::Entity { tag, udi, joined } => {
                self.usage
                    .entity(now.secs(), tag, &udi, joined)
                    .map_err(Error::Protocol)?;
                Ok(Outcome::Done)
            }
            Command::SyncNow => {
                // What is stored goes out even if the open report cannot close (a full store:
                // only the ACK of what it holds frees it); the error still reaches the caller.
                self.report_now = true;
                self.trust_sync_due = self.trust.is_installed();
                self.close_all(now, CloseReason::CurrentUsageRequested)?;
                Ok(Outcome::Queued)
            }
            Command::FactoryReset => {
                self.trust.clear();
                self.pending_trust = None;
                // Report ids stay unique per UDI across the reset: the service still holds the old ones.
                let next_id = self.usage.next_report_id();
                self.usage = Usage::new();
                self.usage.restore_next_report_id(next_id);
                self.reports.clear();
                self.poll = None;
                self.inflight = None;
                self.policy = PolicyState::cisco_default();
                self.last_ack = None;
                self.first_use = None;
                self.trust_sync_due = false;
                self.emit(now, EventKind::FactoryReset, "");
                Ok(Outcome::ReloadRequired)
            }
        }
    }

    fn close_report(&mut self, now: Timestamp, i: usize, reason: CloseReason) -> Result<(), Error> {
        let Some(active) = self.config.members.first() else {
            return Err(Error::Protocol(Code::InvalidArgument));
        };
        let mut ha: heapless::Vec<HaUdi<'_>, MEMBERS> = heapless::Vec::new();
        for m in self.config.members.iter() {
            let _ = ha.push(HaUdi {
                role: m.role,
                sudi: m.udi.udi(),
            });
        }
        let instance = InstanceId(self.trust.instance());
        let ctx = ReportContext {
            sudi: active.udi.udi(),
            instance,
            software_tag: &self.config.software_tag,
            software_version: &self.config.software_version,
            ha: &ha,
        };
        // Reports are signed by the active unit's installed key; before trust there is none,
        // and usage keeps accumulating in the open report.
        let Some((key, _)) = self.trust.active() else {
            return Err(Error::Protocol(Code::NotTrusted));
        };
        let free = self.reports.free().map_err(Error::Protocol)?;
        let closed = self.usage.close(i, now.secs(), reason, &ctx, key, free)?;
        self.reports
            .commit(closed.report_id, closed.tag, closed.len, now.secs())
            .map_err(Error::Protocol)
    }

    /// After a re-trust the service knows only the new device key: reports closed under the
    /// old one and not sent yet are signed again with the new one, or they would be rejected.
    fn resign_stored_reports(&mut self, now: Timestamp) {
        let Some((key, _)) = self.trust.active() else {
            return;
        };
        let resigned = self.reports.rewrite_closed(|old, out| {
            crate::msg::rum::resign(old, key, out).map_err(|e| e.code())
        });
        if let Err(cause) = resigned {
            self.emit(
                now,
                EventKind::PlatformError { cause },
                "stored reports not signed with the new key",
            );
        }
    }

    fn close_all(&mut self, now: Timestamp, reason: CloseReason) -> Result<(), Error> {
        let open: heapless::Vec<usize, { usage::DEFAULT_TAGS }> = self.usage.open_tags().collect();
        for i in open {
            self.close_report(now, i, reason)?;
            self.usage.reopen(i, now.secs());
        }
        Ok(())
    }

    // ---- transmit -------------------------------------------------------------------------

    fn header(
        &self,
        now: Timestamp,
        t: RequestType,
        nonce: Nonce,
    ) -> Result<RequestHeader<'_>, Code> {
        let active = self.config.members.first().ok_or(Code::InvalidArgument)?;
        let (instance, serial) = match self.trust.active() {
            Some((_, id)) => (InstanceId(self.trust.instance()), CertSerial(Some(id))),
            None => (InstanceId::NONE, CertSerial(None)),
        };
        Ok(RequestHeader {
            version: Version,
            request_type: t,
            locale: Ident::new("en_US.UTF-8")?,
            sudi: active.udi.udi(),
            timestamp: now,
            nonce,
            product_instance_identifier: instance,
            signing_cert_serial_number: serial,
            id_cert_serial_number: Ident::new("")?,
            connect_info: ConnectInfo::new("slup", AGENT_VERSION, None, CAPABILITIES)?,
        })
    }

    /// The next request to send, written into `buf`, if one is due and none is in flight.
    pub fn poll_transmit(&mut self, now: Timestamp, buf: &mut [u8]) -> Option<Transmit> {
        let now = self.observe(now);
        if self.inflight.is_some() || self.config.transport == TransportMode::Off {
            return None;
        }
        let kind = self.due_kind(now)?;
        match self.build(now, kind, buf) {
            Ok(t) => Some(t),
            Err(e) => {
                // A request that cannot even be built (buffer too small, no key): say so and
                // try again at the retry cadence rather than spinning.
                self.stats.record_error(kind, now, e.code(), "");
                self.emit(
                    now,
                    EventKind::PlatformError { cause: e.code() },
                    "request build failed",
                );
                self.defer(now, kind);
                None
            }
        }
    }

    fn due_kind(&self, now: Timestamp) -> Option<MessageKind> {
        if self.pending_trust.as_ref().is_some_and(|p| p.due <= now) {
            return Some(MessageKind::TrustEstablishment);
        }
        if !self.trust.is_installed() {
            return None;
        }
        if self.poll.as_ref().is_some_and(|(at, _)| *at <= now) {
            return Some(MessageKind::ResultPolling);
        }
        let unsent = self.reports.iter().any(|r| r.state == ReportState::Closed);
        if unsent && (self.report_now || now >= self.next_report) {
            return Some(MessageKind::UsageReporting);
        }
        if self.trust_sync_due {
            return Some(MessageKind::TrustSync);
        }
        if self.hello_due.is_some_and(|t| t <= now) {
            return Some(MessageKind::Hello);
        }
        None
    }

    fn defer(&mut self, now: Timestamp, kind: MessageKind) {
        let retry = now.add_millis(secs_ms(self.config.intervals.comm_retry_s));
        match kind {
            MessageKind::TrustEstablishment => {
                if let Some(p) = self.pending_trust.as_mut() {
                    p.failures = p.failures.saturating_add(1);
                    // Once after a minute, then at the communication retry cadence (the seed).
                    p.due = if p.failures == 1 {
                        now.add_millis(secs_ms(self.config.intervals.trust_first_retry_s))
                    } else {
                        retry
                    };
                }
            }
            MessageKind::ResultPolling => {
                if let Some((at, _)) = self.poll.as_mut() {
                    *at = retry;
                }
            }
            // A failed sync waits for the next one; it is not retried on its own.
            MessageKind::TrustSync => self.trust_sync_due = false,
            MessageKind::Hello => self.hello_due = Some(retry),
            MessageKind::UsageReporting => {
                self.report_now = false;
                self.next_report = retry;
            }
        }
    }

    fn build(
        &mut self,
        now: Timestamp,
        kind: MessageKind,
        buf: &mut [u8],
    ) -> Result<Transmit, Error> {
        let nonce = self.issue_nonce(now)?;
        let result = self.build_with(now, kind, nonce, buf);
        match result {
            Ok(len) => {
                self.inflight = Some(InFlight { kind, nonce });
                self.stats.record_attempt(kind, now);
                self.history
                    .record_request(now, kind, buf.get(..len).unwrap_or_default());
                Ok(Transmit { kind, len })
            }
            Err(e) => {
                self.nonces.cancel(nonce);
                self.reports.unsend_pending();
                Err(e)
            }
        }
    }

    /// A fresh nonce for a request, a usage file or a report listing. With the table full
    /// (usage files saved and never imported), the oldest nonce not in flight is given up
    /// first: its answer is then refused as a replay, and nothing is lost, since the reports it
    /// covered are still held and go into every later file. Without this, the sixteenth
    /// unanswered file would stop the device from issuing any request at all.
    fn issue_nonce(&mut self, now: Timestamp) -> Result<Nonce, Error> {
        if self.nonces.is_full() {
            let in_flight = self.inflight.map(|f| f.nonce);
            let oldest = self
                .nonces
                .outstanding()
                .filter(|(n, _)| Some(*n) != in_flight)
                .min_by_key(|(_, at)| *at)
                .map(|(n, _)| n);
            if let Some(n) = oldest {
                self.nonces.cancel(n);
            }
        }
        self.nonces
            .issue(&mut self.rng, now)
            .map_err(Error::Protocol)
    }

    fn build_with(
        &mut self,
        now: Timestamp,
        kind: MessageKind,
        nonce: Nonce,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        match kind {
            MessageKind::TrustEstablishment => {
                let Some(p) = self.pending_trust.as_ref() else {
                    return Err(Error::Protocol(Code::InvalidArgument));
                };
                let mut members = heapless::Vec::new();
                for (slot, key) in p.keys.keys.iter() {
                    let m = self
                        .config
                        .members
                        .get(*slot)
                        .ok_or(Error::Protocol(Code::InvalidArgument))?;
                    members
                        .push(crate::msg::trust::TrustMember {
                            role: m.role,
                            sudi: m.udi.udi(),
                            public_key: crate::msg::trust::PublicKeyB64(key.public_key().clone()),
                        })
                        .map_err(|_| Error::Protocol(Code::CapacityExceeded))?;
                }
                let data = RequestData::IdTokenTrust(crate::msg::trust::TrustRequest {
                    id_token: IdToken::new(&p.token).map_err(Error::Protocol)?,
                    scope: p.keys.scope,
                    force: p.force,
                    members,
                });
                // Proof of possession: the new active key signs its own trust request.
                let active_key = &p
                    .keys
                    .keys
                    .first()
                    .ok_or(Error::Protocol(Code::InvalidArgument))?
                    .1;
                let header = self
                    .header(now, RequestType::ID_TOKEN_TRUST, nonce)
                    .map_err(Error::Protocol)?;
                request::encode(buf, &Request { header, data }, active_key)
            }
            MessageKind::ResultPolling => {
                let (_, id) = self
                    .poll
                    .as_ref()
                    .ok_or(Error::Protocol(Code::InvalidArgument))?;
                let data = RequestData::PollReq(PollRef {
                    original_request_type: RequestType::LICENSE_USAGE,
                    original_pid: Uuid::new(id).map_err(Error::Protocol)?,
                });
                self.signed_request(now, RequestType::POLL_REQ, nonce, data, buf)
            }
            MessageKind::TrustSync => {
                let (_, id) = self
                    .trust
                    .active()
                    .ok_or(Error::Protocol(Code::NotTrusted))?;
                self.signed_request(
                    now,
                    RequestType::TRUST_SYNC,
                    nonce,
                    RequestData::TrustSync(id),
                    buf,
                )
            }
            MessageKind::Hello => {
                self.signed_request(now, RequestType::HELLO, nonce, RequestData::Hello, buf)
            }
            MessageKind::UsageReporting => {
                // As many unsent reports as fit; the rest go in the next message.
                let mut ids: heapless::Vec<
                    crate::types::ReportId,
                    { request::MAX_REPORTS_PER_MESSAGE },
                > = heapless::Vec::new();
                let len = self.usage_request(now, nonce, buf, &mut ids)?;
                for id in ids {
                    self.reports.set_state(id, ReportState::Pending);
                }
                // This report cycle is done: the next one comes an interval on, whatever the
                // answer (an ACK, OK_POLL, or a failure that reschedules it at the retry cadence).
                self.report_now = false;
                self.next_report = now.add_millis(secs_ms(self.config.intervals.report_s));
                Ok(len)
            }
        }
    }

    /// Writes a `LICENSE_USAGE` with as many unsent reports as fit; `ids` receives which.
    fn usage_request(
        &self,
        now: Timestamp,
        nonce: Nonce,
        buf: &mut [u8],
        ids: &mut heapless::Vec<crate::types::ReportId, { request::MAX_REPORTS_PER_MESSAGE }>,
    ) -> Result<usize, Error> {
        self.usage_request_with(now, nonce, buf, ids, |s| s == ReportState::Closed)
    }

    /// [`Engine::usage_request`] over the reports whose state `wanted` accepts.
    fn usage_request_with(
        &self,
        now: Timestamp,
        nonce: Nonce,
        buf: &mut [u8],
        ids: &mut heapless::Vec<crate::types::ReportId, { request::MAX_REPORTS_PER_MESSAGE }>,
        wanted: impl Fn(ReportState) -> bool,
    ) -> Result<usize, Error> {
        let mut slices: heapless::Vec<&[u8], { request::MAX_REPORTS_PER_MESSAGE }> =
            heapless::Vec::new();
        let budget = buf.len().saturating_sub(2048);
        let mut total = 0usize;
        for r in self.reports.iter().filter(|r| wanted(r.state)) {
            let b = self.reports.bytes(r);
            if (!slices.is_empty() && total.saturating_add(b.len()) > budget) || slices.is_full() {
                break;
            }
            total = total.saturating_add(b.len().saturating_add(1));
            let _ = slices.push(b);
            let _ = ids.push(r.id);
        }
        let data = RequestData::LicenseUsage(SignedList::Items(&slices));
        self.signed_request(now, RequestType::LICENSE_USAGE, nonce, data, buf)
    }

    fn signed_request(
        &self,
        now: Timestamp,
        t: RequestType,
        nonce: Nonce,
        data: RequestData<'_>,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let header = self.header(now, t, nonce).map_err(Error::Protocol)?;
        let (key, _) = self
            .trust
            .active()
            .ok_or(Error::Protocol(Code::NotTrusted))?;
        request::encode(buf, &Request { header, data }, key)
    }

    // ---- offline (air-gapped) -------------------------------------------------------------

    /// `license smart save usage all|unreported`: closes open reports and writes the signed
    /// `LICENSE_USAGE` message a connected device would have posted into `buf`, for a file.
    /// Its nonce stays outstanding until [`Engine::import`] applies the ACK file answering
    /// it. `all` includes reports already sent and waiting for an ACK.
    pub fn save_usage(
        &mut self,
        now: Timestamp,
        all: bool,
        buf: &mut [u8],
    ) -> Result<usize, Error> {
        let now = self.observe(now);
        if !self.trust.is_installed() {
            return Err(Error::Protocol(Code::NotTrusted));
        }
        match self.close_all(now, CloseReason::CurrentUsageRequested) {
            // A full store: the file still carries what it holds (only the ACK of that frees
            // it), and the current usage stays open and counting for a later file.
            Err(e) if e.code() == Code::CapacityExceeded => self.emit(
                now,
                EventKind::PlatformError {
                    cause: Code::CapacityExceeded,
                },
                "report store full: current usage stays open for the next file",
            ),
            other => other?,
        }
        let nonce = self.issue_nonce(now)?;
        let mut ids = heapless::Vec::new();
        let wanted = |state: ReportState| {
            state == ReportState::Closed || (all && state == ReportState::Pending)
        };
        match self.usage_request_with(now, nonce, buf, &mut ids, wanted) {
            Ok(len) => {
                self.history.record_request(
                    now,
                    MessageKind::UsageReporting,
                    buf.get(..len).unwrap_or_default(),
                );
                Ok(len)
            }
            Err(e) => {
                self.nonces.cancel(nonce);
                Err(e)
            }
        }
    }

    /// `license smart import`: applies a signed ACK file (or any service answer) that answers
    /// a usage file this device saved; anything else is refused and changes nothing.
    pub fn import(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), Error> {
        let now = self.observe(now);
        self.history
            .record_import(now, crate::diag::ImportKind::RumAck, bytes);
        let resp = response::decode(bytes)?;
        resp.verify(&self.config.trust_anchor)
            .map_err(Error::Crypto)?;
        let nonce = resp
            .response
            .header
            .nonce
            .ok_or(Error::Protocol(Code::NotAnswering))?;
        if !self.nonces.is_outstanding(nonce) {
            return Err(Error::Protocol(if self.nonces.was_answered(nonce) {
                Code::ReplayedNonce
            } else {
                Code::NotAnswering
            }));
        }
        if resp.response.header.status_code != StatusCode::OK
            || resp.response.header.request_type != RequestType::LICENSE_USAGE
        {
            return Err(Error::Protocol(Code::InvalidValue));
        }
        // Checked; now the file is applied exactly like an online answer.
        let answering = InFlight {
            kind: MessageKind::UsageReporting,
            nonce,
        };
        self.apply(now, answering, bytes).map(|_| ())
    }

    // ---- responses ------------------------------------------------------------------------

    /// Applies the service's answer to the request in flight.
    pub fn handle_response(&mut self, now: Timestamp, bytes: &[u8]) -> Result<(), Error> {
        let now = self.observe(now);
        let Some(inflight) = self.inflight.take() else {
            return Err(Error::Protocol(Code::NotAnswering));
        };
        self.history.record_response(now, inflight.kind, bytes);
        match self.apply(now, inflight, bytes) {
            Ok(status) => {
                self.stats.record_success(inflight.kind, now, status);
                // A FAILED answer was already logged as a failure: it restores nothing.
                if self.comm_failing && status != ResponseStatus::Failed {
                    self.comm_failing = false;
                    let peer = self.peer();
                    self.emit(now, EventKind::CommRestored { peer }, "");
                }
                Ok(())
            }
            Err(e) => {
                self.fail_with(now, inflight.kind, e.code(), "");
                Err(e)
            }
        }
    }

    fn apply(
        &mut self,
        now: Timestamp,
        inflight: InFlight,
        bytes: &[u8],
    ) -> Result<ResponseStatus, Error> {
        let resp = response::decode(bytes)?;
        resp.verify(&self.config.trust_anchor)
            .map_err(Error::Crypto)?;
        let h = &resp.response.header;
        // The nonce proves this answers *our* request, once.
        match h.nonce {
            Some(n) if n == inflight.nonce => {
                self.nonces.answer(n).map_err(Error::Protocol)?;
            }
            Some(n) => {
                return Err(Error::Protocol(match self.nonces.answer(n) {
                    Err(Code::ReplayedNonce) => Code::ReplayedNonce,
                    _ => Code::NonceMismatch,
                }))
            }
            None => return Err(Error::Protocol(Code::NonceMismatch)),
        }
        let expected = match inflight.kind {
            MessageKind::TrustEstablishment => RequestType::ID_TOKEN_TRUST,
            MessageKind::ResultPolling => RequestType::POLL_REQ,
            MessageKind::TrustSync => RequestType::TRUST_SYNC,
            MessageKind::Hello => RequestType::HELLO,
            _ => RequestType::LICENSE_USAGE,
        };
        if h.request_type != expected {
            return Err(Error::Protocol(Code::RequestTypeMismatch));
        }
        let active = self.config.members.first().map(|m| m.udi.udi());
        if active != Some(h.sudi) {
            return Err(Error::Protocol(Code::UdiMismatch));
        }
        match h.status_code {
            StatusCode::FAILED => {
                let mut msg = [0u8; 160];
                let text = h.message.unescape_into(&mut msg).unwrap_or("");
                let mut detail: heapless::String<160> = heapless::String::new();
                let _ = detail.push_str(text);
                if inflight.kind == MessageKind::ResultPolling {
                    // The service does not know the poll: the reports go out again.
                    self.poll = None;
                    self.reports.unsend_pending();
                }
                self.fail_with(now, inflight.kind, Code::ServiceFailed, &detail);
                return Ok(ResponseStatus::Failed);
            }
            StatusCode::OK_TRY_AGAIN => {
                let at = now.add_millis(secs_ms(h.retry_time_seconds.max(1)));
                self.reports.unsend_pending();
                match inflight.kind {
                    MessageKind::TrustEstablishment => {
                        if let Some(p) = self.pending_trust.as_mut() {
                            p.due = at;
                        }
                    }
                    MessageKind::ResultPolling => {
                        if let Some((t, _)) = self.poll.as_mut() {
                            *t = at;
                        }
                    }
                    _ => {
                        self.next_report = at;
                        self.report_now = false;
                    }
                }
                return Ok(ResponseStatus::OkTryAgain);
            }
            StatusCode::OK_POLL | StatusCode::OK => {}
        }
        match resp.response.data {
            ResponseData::Poll(id) => {
                let retry = if h.retry_time_seconds == 0 {
                    self.config.intervals.poll_retry_s
                } else {
                    h.retry_time_seconds
                };
                let id = heapless::String::try_from(id.as_str())
                    .map_err(|_| Error::Protocol(Code::InvalidValue))?;
                self.poll = Some((now.add_millis(secs_ms(retry)), id));
                Ok(ResponseStatus::OkPoll)
            }
            ResponseData::Trust {
                trust_codes,
                policy,
            } => {
                if h.mp.abs_diff(now) > self.config.intervals.max_clock_skew_ms {
                    return Err(Error::Protocol(Code::ClockSkew));
                }
                let pending = self
                    .pending_trust
                    .take()
                    .ok_or(Error::Protocol(Code::NotAnswering))?;
                let anchor = self.config.trust_anchor.clone();
                if let Err(c) = self.trust.install(
                    now,
                    &trust_codes,
                    &anchor,
                    pending.keys,
                    &self.config.members,
                ) {
                    self.emit(now, EventKind::TrustCodeInstallFailed { cause: c }, "");
                    return Err(Error::Protocol(c));
                }
                self.emit(now, EventKind::TrustInstallSuccess, "");
                self.resign_stored_reports(now);
                self.install_policy(now, policy.as_ref());
                Ok(ResponseStatus::Ok)
            }
            ResponseData::Usage { ack, policy } => {
                let mut acked = 0u32;
                for id in ack.acked.iter() {
                    if self.reports.remove(*id) {
                        acked = acked.saturating_add(1);
                    }
                }
                let mut rejected = 0u32;
                for r in ack.rejected.iter() {
                    if self.reports.reject(r.report_id, r.reason.chars()) {
                        rejected = rejected.saturating_add(1);
                    }
                }
                // Reports the ACK does not name go out again next time.
                self.reports.unsend_pending();
                self.poll = None;
                self.report_now = false;
                self.last_ack = Some(now);
                self.next_report = now.add_millis(secs_ms(self.config.intervals.report_s));
                self.emit(
                    now,
                    EventKind::UsageAckReceived {
                        acknowledged: acked,
                        rejected,
                    },
                    "",
                );
                self.install_policy(now, policy.as_ref());
                Ok(ResponseStatus::Ok)
            }
            ResponseData::TrustSync { policy } => {
                self.trust_sync_due = false;
                self.install_policy(now, policy.as_ref());
                Ok(ResponseStatus::Ok)
            }
            ResponseData::Hello => {
                self.hello_due = Some(now.add_millis(secs_ms(self.config.intervals.report_s)));
                Ok(ResponseStatus::Ok)
            }
            ResponseData::None => Ok(ResponseStatus::Ok),
        }
    }

    fn install_policy(&mut self, now: Timestamp, policy: Option<&Policy<'_>>) {
        let Some(p) = policy else { return };
        let mut name: heapless::String<64> = heapless::String::new();
        for c in p.name.chars() {
            if name.push(c).is_err() {
                break;
            }
        }
        self.policy = PolicyState {
            resolved: p.resolve(),
            name,
            installed_at: Some(now),
        };
        self.emit(now, EventKind::PolicyInstallSuccess, "");
    }

    // ---- failures and time ----------------------------------------------------------------

    /// No answer came for the request in flight: `code` says why (DNS, connect, TLS, ...).
    pub fn handle_transport_error(&mut self, now: Timestamp, code: Code) {
        self.handle_transport_failure(now, code, "");
    }

    /// [`Engine::handle_transport_error`] with the specifics (the host tried, the issuer
    /// presented, the status line): they go into the `COMM_FAILED` event and the failure
    /// statistics, cut to their sizes.
    pub fn handle_transport_failure(&mut self, now: Timestamp, code: Code, detail: &str) {
        let now = self.observe(now);
        let Some(inflight) = self.inflight.take() else {
            return;
        };
        // The request's nonce will never be answered: a late answer counts as a replay.
        self.nonces.cancel(inflight.nonce);
        self.history.record_no_reply(now, inflight.kind, code);
        self.fail_with(now, inflight.kind, code, detail);
    }

    fn fail_with(&mut self, now: Timestamp, kind: MessageKind, code: Code, detail: &str) {
        self.stats.record_error(kind, now, code, detail);
        self.reports.unsend_pending();
        self.comm_failing = true;
        let peer = self.peer();
        self.emit(now, EventKind::CommFailed { peer, cause: code }, detail);
        if kind == MessageKind::TrustEstablishment {
            self.emit(
                now,
                EventKind::TrustCodeInstallFailed { cause: code },
                detail,
            );
        }
        self.defer(now, kind);
    }

    /// The next instant the engine wants [`Engine::handle_timeout`] called.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let mut t = self.next_sample.min(self.next_report);
        if let Some(p) = &self.pending_trust {
            t = t.min(p.due);
        }
        if let Some((at, _)) = &self.poll {
            t = t.min(*at);
        }
        if let Some(h) = self.hello_due {
            t = t.min(h);
        }
        if self.ack_deadline().is_some() {
            t = t.min(self.next_warning);
        }
        Some(t)
    }

    /// Advances timers: samples, report time, retries.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.observe(now);
        let sample = secs_ms(SAMPLE_INTERVAL_S);
        while self.next_sample <= now {
            self.usage.sample();
            self.next_sample = self.next_sample.add_millis(sample);
        }
        self.warn_reporting_required(now);
        if now >= self.next_report && self.inflight.is_none() {
            // Report time: close what is open so it can be sent (or saved, when air-gapped).
            if self.trust.is_installed() {
                if let Err(e) = self.close_all(now, CloseReason::ReportTime) {
                    let cause = e.code();
                    self.emit(now, EventKind::PlatformError { cause }, "closing reports");
                }
            }
            // Unless a usage request is now due, the next report time comes one interval on:
            // a deadline in the past must never be handed out again.
            if self.due_kind(now) != Some(MessageKind::UsageReporting)
                || self.config.transport == TransportMode::Off
            {
                self.next_report = now.add_millis(secs_ms(self.config.intervals.report_s));
            }
        }
    }

    /// `REPORTING_REQUIRED` once a day from `reporting_warning_days` before the ACK deadline.
    fn warn_reporting_required(&mut self, now: Timestamp) {
        let Some(deadline) = self.ack_deadline() else {
            return;
        };
        let window = u64::from(self.config.intervals.reporting_warning_days).saturating_mul(DAY_MS);
        if now < self.next_warning || now.add_millis(window) < deadline {
            if self.next_warning <= now {
                // Not in the window yet: look again when it opens.
                self.next_warning = Timestamp(deadline.0.saturating_sub(window)).max(now);
            }
            return;
        }
        let days = deadline.0.saturating_sub(now.0).div_ceil(DAY_MS);
        self.emit(
            now,
            EventKind::ReportingRequired {
                days: u32::try_from(days).unwrap_or(u32::MAX),
            },
            "",
        );
        self.next_warning = now.add_millis(DAY_MS);
    }
}
