//! Per-category communication statistics, the "Communication Statistics" block of
//! `show license tech-support`.
//!
//! One [`CommBlock`] per [`MessageKind`]: attempts (total, succeeded, failed), the current run
//! of failures (overall, and of failures where the service could not be reached at all), the last
//! response with its time, why it failed, and when the last success and failure happened.
//!
//! Where the device prints `Failure Reason: <none>` after `NO REPLY` (research §1.3), slup
//! prints the stable code of what went wrong (`E1300 DnsFailure: DNS resolution failed`), and
//! after an error status it adds the service's own words.

use core::fmt;

use super::time::{fmt_history, Zone};
use super::{Detail, MessageKind};
use crate::error::Code;
use crate::types::{StatusCode, Timestamp};

/// Default capacity in bytes of the free text of a [`FailureReason`] (the device prints the
/// service's JSON error body here; the one in research §1.3 is 148 bytes).
pub const DEFAULT_REASON_LEN: usize = 160;

/// How an exchange ended, as the `Last Response:` line names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ResponseStatus {
    /// `OK`: the service answered and the answer was applied.
    Ok,
    /// `OK_POLL`: accepted; the result comes from a later poll.
    OkPoll,
    /// `OK_TRY_AGAIN`: the service asked to resend later.
    OkTryAgain,
    /// `FAILED`: the service refused, with a message.
    Failed,
    /// `NO REPLY`: the service could not be reached or did not answer (DNS, connect, TLS,
    /// proxy, timeout, reset).
    NoReply,
    /// `INVALID STATUS CODE`: an HTTP status other than success.
    InvalidStatusCode,
    /// `INVALID RESPONSE` (slup): a reply arrived but was rejected (malformed, truncated, bad
    /// signature, unknown nonce, clock skew, …).
    InvalidResponse,
    /// `BUILD REQUEST ERROR`: the request could not be built or signed.
    BuildRequestError,
}

impl ResponseStatus {
    /// The text on the `Last Response:` line, e.g. `"NO REPLY"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ResponseStatus::Ok => "OK",
            ResponseStatus::OkPoll => "OK_POLL",
            ResponseStatus::OkTryAgain => "OK_TRY_AGAIN",
            ResponseStatus::Failed => "FAILED",
            ResponseStatus::NoReply => "NO REPLY",
            ResponseStatus::InvalidStatusCode => "INVALID STATUS CODE",
            ResponseStatus::InvalidResponse => "INVALID RESPONSE",
            ResponseStatus::BuildRequestError => "BUILD REQUEST ERROR",
        }
    }

    /// The status of a verified response header.
    pub const fn from_status_code(status: StatusCode) -> Self {
        match status {
            StatusCode::OK => ResponseStatus::Ok,
            StatusCode::OK_POLL => ResponseStatus::OkPoll,
            StatusCode::OK_TRY_AGAIN => ResponseStatus::OkTryAgain,
            StatusCode::FAILED => ResponseStatus::Failed,
        }
    }

    /// The status that best names a failure with code `cause`: transport codes (except HTTP
    /// statuses and broken bodies) are `NO REPLY`, HTTP 4xx/5xx `INVALID STATUS CODE`,
    /// `ServiceFailed` / `ServiceError` `FAILED`, `ServiceTryAgain` `OK_TRY_AGAIN`, API-misuse
    /// and signing codes `BUILD REQUEST ERROR`, and everything else (decode, verify, nonce,
    /// storage, state) `INVALID RESPONSE`.
    pub const fn for_failure(cause: Code) -> Self {
        match cause {
            Code::HttpClientError | Code::HttpServerError => ResponseStatus::InvalidStatusCode,
            Code::TruncatedBody | Code::OversizeBody => ResponseStatus::InvalidResponse,
            Code::ServiceFailed | Code::ServiceError => ResponseStatus::Failed,
            Code::ServiceTryAgain => ResponseStatus::OkTryAgain,
            Code::SigningFailed => ResponseStatus::BuildRequestError,
            c if c.number() >= 1300 && c.number() < 1400 => ResponseStatus::NoReply,
            c if c.number() >= 1600 && c.number() < 1700 => ResponseStatus::BuildRequestError,
            _ => ResponseStatus::InvalidResponse,
        }
    }

    /// `true` for `OK`, `OK_POLL` and `OK_TRY_AGAIN`: the service answered and was understood.
    pub const fn is_success(self) -> bool {
        matches!(
            self,
            ResponseStatus::Ok | ResponseStatus::OkPoll | ResponseStatus::OkTryAgain
        )
    }

    /// `true` for `NO REPLY`: a failure to communicate at all, counted by
    /// `Ongoing Failure: Communication=`.
    pub const fn is_communication_failure(self) -> bool {
        matches!(self, ResponseStatus::NoReply)
    }
}

impl fmt::Display for ResponseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which way the device reaches the service (`Communication Level Allowed:`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CommLevel {
    /// Straight to the cloud service.
    #[default]
    Direct,
    /// Through a relay (CSLU, on-prem).
    Indirect,
}

impl CommLevel {
    /// `"DIRECT"` or `"INDIRECT"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            CommLevel::Direct => "DIRECT",
            CommLevel::Indirect => "INDIRECT",
        }
    }
}

/// Why the last response was a failure: a stable code and, optionally, the service's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureReason<const R: usize = DEFAULT_REASON_LEN> {
    /// The stable code.
    pub code: Code,
    /// The service's message or error body (cut to `R` bytes and marked); may be empty.
    pub text: Detail<R>,
}

impl<const R: usize> fmt::Display for FailureReason<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.code)?;
        if !self.text.is_empty() {
            write!(f, ": {}", self.text)?;
        }
        Ok(())
    }
}

/// The counters of one message category.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommBlock<const R: usize = DEFAULT_REASON_LEN> {
    total: u32,
    success: u32,
    fail: u32,
    ongoing_overall: u32,
    ongoing_communication: u32,
    last_response: Option<(ResponseStatus, Timestamp)>,
    failure_reason: Option<FailureReason<R>>,
    last_success: Option<Timestamp>,
    last_failure: Option<Timestamp>,
}

impl<const R: usize> Default for CommBlock<R> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const R: usize> CommBlock<R> {
    /// A block with no attempts.
    pub const EMPTY: Self = CommBlock {
        total: 0,
        success: 0,
        fail: 0,
        ongoing_overall: 0,
        ongoing_communication: 0,
        last_response: None,
        failure_reason: None,
        last_success: None,
        last_failure: None,
    };

    /// Attempts started (`Total=`); at least `success + fail`, one more while an attempt is in
    /// flight. Counters saturate at `u32::MAX`.
    pub const fn total(&self) -> u32 {
        self.total
    }

    /// Attempts that ended with a success (`Success=`).
    pub const fn success(&self) -> u32 {
        self.success
    }

    /// Attempts that ended with a failure (`Fail=`).
    pub const fn fail(&self) -> u32 {
        self.fail
    }

    /// Failures since the last success (`Ongoing Failure: Overall=`).
    pub const fn ongoing_overall(&self) -> u32 {
        self.ongoing_overall
    }

    /// `NO REPLY` failures in a row (`Communication=`): reset by a success and by any failure
    /// in which the service did answer.
    pub const fn ongoing_communication(&self) -> u32 {
        self.ongoing_communication
    }

    /// The last response and when it ended.
    pub const fn last_response(&self) -> Option<(ResponseStatus, Timestamp)> {
        self.last_response
    }

    /// Why the last response failed; `None` after a success.
    pub const fn failure_reason(&self) -> Option<&FailureReason<R>> {
        self.failure_reason.as_ref()
    }

    /// When the last success happened.
    pub const fn last_success(&self) -> Option<Timestamp> {
        self.last_success
    }

    /// When the last failure happened.
    pub const fn last_failure(&self) -> Option<Timestamp> {
        self.last_failure
    }

    fn attempt(&mut self) {
        self.total = self.total.saturating_add(1);
    }

    /// Counts an implicit attempt when an outcome arrives without one in flight, so that
    /// `total ≥ success + fail` always holds.
    fn resolve_attempt(&mut self) {
        if self.total <= self.success.saturating_add(self.fail) {
            self.attempt();
        }
    }

    fn succeed(&mut self, now: Timestamp, status: ResponseStatus) {
        self.resolve_attempt();
        self.success = self.success.saturating_add(1);
        self.ongoing_overall = 0;
        self.ongoing_communication = 0;
        self.last_response = Some((status, now));
        self.failure_reason = None;
        self.last_success = Some(now);
    }

    fn failed(&mut self, now: Timestamp, status: ResponseStatus, reason: FailureReason<R>) {
        self.resolve_attempt();
        self.fail = self.fail.saturating_add(1);
        self.ongoing_overall = self.ongoing_overall.saturating_add(1);
        self.ongoing_communication = if status.is_communication_failure() {
            self.ongoing_communication.saturating_add(1)
        } else {
            0
        };
        self.last_response = Some((status, now));
        self.failure_reason = Some(reason);
        self.last_failure = Some(now);
    }

    fn render<W: fmt::Write + ?Sized>(
        &self,
        w: &mut W,
        title: &str,
        zone: Zone<'_>,
    ) -> fmt::Result {
        writeln!(w, "{title}:")?;
        writeln!(
            w,
            "  Attempts: Total={}, Success={}, Fail={}  Ongoing Failure: Overall={} Communication={}",
            self.total, self.success, self.fail, self.ongoing_overall, self.ongoing_communication
        )?;
        match self.last_response {
            Some((status, at)) => {
                writeln!(w, "  Last Response: {status} on {}", fmt_history(at, zone))?
            }
            None => writeln!(w, "  Last Response: <none>")?,
        }
        match &self.failure_reason {
            Some(reason) => writeln!(w, "    Failure Reason: {reason}")?,
            None => writeln!(w, "    Failure Reason: <none>")?,
        }
        match self.last_success {
            Some(at) => writeln!(w, "  Last Success Time: {}", fmt_history(at, zone))?,
            None => writeln!(w, "  Last Success Time: <none>")?,
        }
        match self.last_failure {
            Some(at) => writeln!(w, "  Last Failure Time: {}", fmt_history(at, zone)),
            None => writeln!(w, "  Last Failure Time: <none>"),
        }
    }
}

/// Communication statistics: one [`CommBlock`] per [`MessageKind`], plus the two header lines
/// of the tech-support block. `R` is the capacity of each failure reason's text.
///
/// Memory: about `5 × (R + 100)` bytes (1.3 KiB at the default).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommStats<const R: usize = DEFAULT_REASON_LEN> {
    trust_establishment: CommBlock<R>,
    usage_reporting: CommBlock<R>,
    result_polling: CommBlock<R>,
    trust_sync: CommBlock<R>,
    hello: CommBlock<R>,
    level: CommLevel,
    offline: bool,
}

impl<const R: usize> Default for CommStats<R> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const R: usize> CommStats<R> {
    /// Empty statistics, level [`CommLevel::Direct`], online.
    pub const fn new() -> Self {
        CommStats {
            trust_establishment: CommBlock::EMPTY,
            usage_reporting: CommBlock::EMPTY,
            result_polling: CommBlock::EMPTY,
            trust_sync: CommBlock::EMPTY,
            hello: CommBlock::EMPTY,
            level: CommLevel::Direct,
            offline: false,
        }
    }

    /// The block of one category.
    pub const fn block(&self, kind: MessageKind) -> &CommBlock<R> {
        match kind {
            MessageKind::TrustEstablishment => &self.trust_establishment,
            MessageKind::UsageReporting => &self.usage_reporting,
            MessageKind::ResultPolling => &self.result_polling,
            MessageKind::TrustSync => &self.trust_sync,
            MessageKind::Hello => &self.hello,
        }
    }

    fn block_mut(&mut self, kind: MessageKind) -> &mut CommBlock<R> {
        match kind {
            MessageKind::TrustEstablishment => &mut self.trust_establishment,
            MessageKind::UsageReporting => &mut self.usage_reporting,
            MessageKind::ResultPolling => &mut self.result_polling,
            MessageKind::TrustSync => &mut self.trust_sync,
            MessageKind::Hello => &mut self.hello,
        }
    }

    /// Sets the `Communication Level Allowed:` line.
    pub fn set_level(&mut self, level: CommLevel) {
        self.level = level;
    }

    /// The communication level shown.
    pub const fn level(&self) -> CommLevel {
        self.level
    }

    /// Marks the device as configured for offline (file) transport: `Overall State: Device
    /// configured for Offline transport`.
    pub fn set_offline(&mut self, offline: bool) {
        self.offline = offline;
    }

    /// `true` if the device is configured for offline transport.
    pub const fn is_offline(&self) -> bool {
        self.offline
    }

    /// An exchange of `kind` starts: `Total` goes up by one.
    pub fn record_attempt(&mut self, kind: MessageKind, _now: Timestamp) {
        self.block_mut(kind).attempt();
    }

    /// The exchange of `kind` ended with `status` understood and applied (normally `OK`,
    /// `OK_POLL` or `OK_TRY_AGAIN`): the failure runs end and the failure reason is cleared.
    /// An outcome without a recorded attempt counts one.
    pub fn record_success(&mut self, kind: MessageKind, now: Timestamp, status: ResponseStatus) {
        self.block_mut(kind).succeed(now, status);
    }

    /// The exchange of `kind` failed with `status` because of `cause`; `text` (the service's
    /// message or error body, may be empty) is kept up to `R` bytes. An outcome without a
    /// recorded attempt counts one.
    pub fn record_failure(
        &mut self,
        kind: MessageKind,
        now: Timestamp,
        status: ResponseStatus,
        cause: Code,
        text: &str,
    ) {
        let reason = FailureReason {
            code: cause,
            text: Detail::new(text),
        };
        self.block_mut(kind).failed(now, status, reason);
    }

    /// [`record_failure`](Self::record_failure) with the status derived from the code
    /// ([`ResponseStatus::for_failure`]).
    pub fn record_error(&mut self, kind: MessageKind, now: Timestamp, cause: Code, text: &str) {
        self.record_failure(kind, now, ResponseStatus::for_failure(cause), cause, text);
    }

    /// Forgets all counters (the level and offline flag stay).
    pub fn reset(&mut self) {
        *self = CommStats {
            level: self.level,
            offline: self.offline,
            ..Self::new()
        };
    }

    /// Writes the tech-support layout, times in `zone`:
    ///
    /// ```text
    /// Communication Statistics:
    /// =======================
    /// Communication Level Allowed: DIRECT
    /// Overall State: <empty>
    /// Trust Establishment:
    ///   Attempts: Total=0, Success=0, Fail=0  Ongoing Failure: Overall=0 Communication=0
    ///   Last Response: <none>
    ///     Failure Reason: <none>
    ///   Last Success Time: <none>
    ///   Last Failure Time: <none>
    /// Usage Reporting:
    /// …
    /// ```
    pub fn render<W: fmt::Write + ?Sized>(&self, w: &mut W, zone: Zone<'_>) -> fmt::Result {
        writeln!(w, "Communication Statistics:\n=======================")?;
        writeln!(w, "Communication Level Allowed: {}", self.level.as_str())?;
        if self.offline {
            writeln!(w, "Overall State: Device configured for Offline transport")?;
        } else {
            writeln!(w, "Overall State: <empty>")?;
        }
        for kind in MessageKind::ALL {
            self.block(kind).render(w, kind.label(), zone)?;
        }
        Ok(())
    }
}
