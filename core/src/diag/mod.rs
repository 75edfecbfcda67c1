//! Diagnostics: the troubleshooting surface an operator reads when licensing misbehaves.
//!
//! Four allocation-free building blocks, each a plain value the engine owns and updates with the
//! time passed in by the caller (nothing here reads a clock):
//!
//! - [`time`]: civil (calendar) time from Unix milliseconds and the exact date layouts of the
//!   device outputs (`Aug 22 12:13:08.425`, `Aug 23 10:18:08 2021 UTC`,
//!   `07:38:15.237 UTC Fri Aug 27 2021`);
//! - [`event`]: syslog-style events (`%SMART_LIC-6-TRUST_INSTALL_SUCCESS: …`) and the
//!   [`EventLog`](event::EventLog) ring that keeps the newest of them;
//! - [`history`]: [`MessageHistory`](history::MessageHistory), the REQUEST/RESPONSE ring behind
//!   `show license history message`, where a missing reply is recorded *as* a missing reply
//!   (never as the empty RESPONSE of Cisco bug CSCvy84684);
//! - [`stats`]: [`CommStats`](stats::CommStats), the per-message-category communication
//!   counters of `show license tech-support`.
//!
//! Every store has a fixed capacity chosen by const generics with a documented default. When a
//! store is full the oldest content is overwritten *and counted*; text longer than its slot is
//! cut and marked with its original length. Renderers write into any [`core::fmt::Write`] and
//! escape bytes that are not printable UTF-8, so no body or message from the network can break
//! a line layout, reach a terminal as a control sequence, or cause a panic.
//!
//! ```
//! use slup_core::diag::event::{EventKind, EventLog, Peer};
//! use slup_core::diag::history::MessageHistory;
//! use slup_core::diag::time::Zone;
//! use slup_core::diag::MessageKind;
//! use slup_core::error::Code;
//! use slup_core::types::Timestamp;
//!
//! let now = Timestamp(1_629_713_888_600); // Aug 23 2021 10:18:08.600 UTC
//! let mut log: EventLog = EventLog::new();
//! log.record(
//!     now,
//!     EventKind::CommFailed { peer: Peer::Cssm, cause: Code::DnsFailure },
//!     "smartreceiver.cisco.com",
//! );
//! let mut out = heapless::String::<256>::new();
//! log.render(&mut out).unwrap();
//! assert_eq!(
//!     out.as_str(),
//!     "Aug 23 10:18:08.600: %SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco \
//!      Smart Software Manager (CSSM) : E1300 DnsFailure: DNS resolution failed: \
//!      smartreceiver.cisco.com\n"
//! );
//!
//! let mut history: MessageHistory<4, 512> = MessageHistory::new();
//! history.record_request(now, MessageKind::TrustEstablishment, br#"{"request":{}}"#);
//! history.record_no_reply(now.add_millis(1000), MessageKind::TrustEstablishment, Code::ConnectTimeout);
//! let mut out = heapless::String::<1024>::new();
//! history.render(&mut out, Zone::UTC).unwrap();
//! assert!(out.contains(
//!     "REQUEST: Aug 23 10:18:08 2021 UTC\n{\"request\":{}}\n\
//!      RESPONSE: Aug 23 10:18:09 2021 UTC\n<no reply: E1302 ConnectTimeout: connect timed out>\n"
//! ));
//! ```

pub mod event;
pub mod history;
pub mod stats;
pub mod time;

use core::fmt;

use crate::types::RequestType;

/// A kind of network exchange with the license service: one block of communication statistics
/// and one section of the message history each.
///
/// The names are those of the device outputs (research §1.3). Cisco's SLAC authorization
/// exchanges and the never-used "Trust Acknowledgement" have no counterpart in slup.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MessageKind {
    /// `ID_TOKEN_TRUST`: establishing trust with an ID token.
    TrustEstablishment,
    /// `LICENSE_USAGE`: sending usage reports.
    UsageReporting,
    /// `POLL_REQ`: polling for the result of a request answered `OK_POLL`.
    ResultPolling,
    /// `TRUST_SYNC`: refreshing trust and policy.
    TrustSync,
    /// `HELLO`: the CSLU hello.
    Hello,
}

impl MessageKind {
    /// Every kind, in the order the device outputs list them.
    pub const ALL: [MessageKind; 5] = [
        MessageKind::TrustEstablishment,
        MessageKind::UsageReporting,
        MessageKind::ResultPolling,
        MessageKind::TrustSync,
        MessageKind::Hello,
    ];

    /// The section title, e.g. `"Trust Establishment"`.
    pub const fn label(self) -> &'static str {
        match self {
            MessageKind::TrustEstablishment => "Trust Establishment",
            MessageKind::UsageReporting => "Usage Reporting",
            MessageKind::ResultPolling => "Result Polling",
            MessageKind::TrustSync => "Trust Sync",
            MessageKind::Hello => "Hello Message",
        }
    }

    /// The kind a request type belongs to.
    pub const fn of_request(request_type: RequestType) -> Self {
        match request_type {
            RequestType::ID_TOKEN_TRUST => MessageKind::TrustEstablishment,
            RequestType::LICENSE_USAGE => MessageKind::UsageReporting,
            RequestType::POLL_REQ => MessageKind::ResultPolling,
            RequestType::TRUST_SYNC => MessageKind::TrustSync,
            RequestType::HELLO => MessageKind::Hello,
        }
    }
}

impl From<RequestType> for MessageKind {
    fn from(request_type: RequestType) -> Self {
        MessageKind::of_request(request_type)
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A kind of file imported in air-gapped operation (`license smart import`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ImportKind {
    /// A policy file.
    Policy,
    /// A trust code file.
    TrustCode,
    /// A usage acknowledgement (ACK) file.
    RumAck,
}

impl ImportKind {
    /// Every kind, in the order the device outputs list them.
    pub const ALL: [ImportKind; 3] = [
        ImportKind::Policy,
        ImportKind::TrustCode,
        ImportKind::RumAck,
    ];

    /// The section title, e.g. `"Import RUM ACK"`.
    pub const fn label(self) -> &'static str {
        match self {
            ImportKind::Policy => "Import POLICY",
            ImportKind::TrustCode => "Import TRUST CODE",
            ImportKind::RumAck => "Import RUM ACK",
        }
    }
}

impl fmt::Display for ImportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// The section of the message history an entry belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// A network exchange.
    Message(MessageKind),
    /// An imported file.
    Import(ImportKind),
}

impl Category {
    /// The section title.
    pub const fn label(self) -> &'static str {
        match self {
            Category::Message(k) => k.label(),
            Category::Import(k) => k.label(),
        }
    }
}

impl From<MessageKind> for Category {
    fn from(kind: MessageKind) -> Self {
        Category::Message(kind)
    }
}

impl From<ImportKind> for Category {
    fn from(kind: ImportKind) -> Self {
        Category::Import(kind)
    }
}

impl From<RequestType> for Category {
    fn from(request_type: RequestType) -> Self {
        Category::Message(MessageKind::of_request(request_type))
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Default capacity, in bytes, of the free text attached to an event (the engine's events use
/// it). 52 is the most that keeps an [`Event`](event::Event) at 80 bytes on a 32-bit target,
/// and holds the engine's own texts and short service messages whole (`Invalid
/// ProductInstanceIdentifier`); longer text is cut and marked. The service's full message also
/// goes into the communication statistics and the message history.
pub const DEFAULT_DETAIL_LEN: usize = 52;

/// A short piece of free text in a fixed buffer of `N` bytes: a host name, a service message,
/// a reason.
///
/// Text longer than `N` bytes is cut at a character boundary and remembers its original length,
/// which [`Display`](fmt::Display) shows as `<truncated: showing K of N bytes>`. Display also
/// escapes control characters (`\x0a`, `\u{0085}`), so a detail always renders on one line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Detail<const N: usize = DEFAULT_DETAIL_LEN> {
    buf: [u8; N],
    len: usize,
    original_len: usize,
}

impl<const N: usize> Default for Detail<N> {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl<const N: usize> Detail<N> {
    /// The empty text.
    pub const EMPTY: Self = Detail {
        buf: [0; N],
        len: 0,
        original_len: 0,
    };

    /// The capacity in bytes.
    pub const CAPACITY: usize = N;

    /// Copies `s`, cut to at most `N` bytes at a character boundary.
    pub fn new(s: &str) -> Self {
        let mut cut = s.len().min(N);
        while cut > 0 && !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut out = Self::EMPTY;
        let src = s.as_bytes().get(..cut).unwrap_or_default();
        for (dst, byte) in out.buf.iter_mut().zip(src) {
            *dst = *byte;
        }
        out.len = src.len();
        out.original_len = s.len();
        out
    }

    /// Collects characters (e.g. [`Text::chars`](crate::types::Text::chars), which unescapes
    /// wire text on the fly), keeping as many whole characters as fit in `N` bytes and counting
    /// the UTF-8 length of all of them.
    pub fn from_chars<I: IntoIterator<Item = char>>(chars: I) -> Self {
        let mut out = Self::EMPTY;
        let mut full = false;
        for c in chars {
            let width = c.len_utf8();
            out.original_len = out.original_len.saturating_add(width);
            if full {
                continue;
            }
            let end = out.len.saturating_add(width);
            match out.buf.get_mut(out.len..end) {
                Some(dst) => {
                    c.encode_utf8(dst);
                    out.len = end;
                }
                // Keep characters in order: once one does not fit, no later one is kept.
                None => full = true,
            }
        }
        out
    }

    /// The kept text.
    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in, so this never fails.
        self.buf
            .get(..self.len)
            .and_then(|b| core::str::from_utf8(b).ok())
            .unwrap_or_default()
    }

    /// `true` if there is no text.
    pub fn is_empty(&self) -> bool {
        self.original_len == 0
    }

    /// Bytes kept.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Length in bytes of the text before it was cut.
    pub fn original_len(&self) -> usize {
        self.original_len
    }

    /// `true` if the text was cut to fit.
    pub fn is_truncated(&self) -> bool {
        self.original_len > self.len
    }
}

impl<const N: usize> fmt::Display for Detail<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.as_str().chars() {
            write_char_escaped(f, c, false)?;
        }
        if self.is_truncated() {
            write!(
                f,
                " <truncated: showing {} of {} bytes>",
                self.len, self.original_len
            )?;
        }
        Ok(())
    }
}

/// Writes `c`, escaping control characters: ASCII ones as `\xNN`, others as `\u{NNNN}`. With
/// `multiline`, line feeds and tabs pass through.
pub(crate) fn write_char_escaped<W: fmt::Write + ?Sized>(
    w: &mut W,
    c: char,
    multiline: bool,
) -> fmt::Result {
    match c {
        '\n' | '\t' if multiline => w.write_char(c),
        c if c.is_ascii_control() => write!(w, "\\x{:02x}", u32::from(c)),
        c if c.is_control() => write!(w, "\\u{{{:04x}}}", u32::from(c)),
        c => w.write_char(c),
    }
}

/// Writes arbitrary bytes as text: valid UTF-8 as characters (control characters escaped as by
/// [`write_char_escaped`], line feeds and tabs kept), every byte that is not part of a valid
/// UTF-8 sequence as `\xNN`. The bytes arrive as a stream, so a character split across two
/// slices of a ring buffer is decoded whole.
pub(crate) fn write_bytes_escaped<W: fmt::Write + ?Sized>(
    w: &mut W,
    bytes: impl IntoIterator<Item = u8>,
) -> fmt::Result {
    let mut decoder = Utf8Stream::default();
    for b in bytes {
        decoder.push(w, b)?;
    }
    decoder.flush(w)
}

/// An incremental, lossless-for-display UTF-8 decoder.
#[derive(Default)]
struct Utf8Stream {
    pending: [u8; 4],
    len: usize,
    need: usize,
}

impl Utf8Stream {
    fn push<W: fmt::Write + ?Sized>(&mut self, w: &mut W, b: u8) -> fmt::Result {
        if self.len > 0 {
            if b & 0xc0 == 0x80 {
                if let Some(slot) = self.pending.get_mut(self.len) {
                    *slot = b;
                }
                self.len += 1;
                if self.len >= self.need {
                    let seq = self.pending.get(..self.len).unwrap_or_default();
                    match core::str::from_utf8(seq) {
                        Ok(s) => {
                            for c in s.chars() {
                                write_char_escaped(w, c, true)?;
                            }
                        }
                        // Overlong forms, surrogates, values above U+10FFFF.
                        Err(_) => hex_bytes(w, seq)?,
                    }
                    self.len = 0;
                }
                return Ok(());
            }
            // The sequence ended early: show what came, then start afresh with `b`.
            self.flush(w)?;
        }
        match b {
            0x00..=0x7f => write_char_escaped(w, char::from(b), true),
            0xc2..=0xf4 => {
                self.need = match b {
                    0xc2..=0xdf => 2,
                    0xe0..=0xef => 3,
                    _ => 4,
                };
                self.pending[0] = b;
                self.len = 1;
                Ok(())
            }
            // Continuation bytes out of place, 0xc0, 0xc1, 0xf5..=0xff.
            _ => hex_bytes(w, &[b]),
        }
    }

    fn flush<W: fmt::Write + ?Sized>(&mut self, w: &mut W) -> fmt::Result {
        let pending = self.pending;
        let seq = pending.get(..self.len).unwrap_or_default();
        self.len = 0;
        hex_bytes(w, seq)
    }
}

fn hex_bytes<W: fmt::Write + ?Sized>(w: &mut W, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(w, "\\x{b:02x}")?;
    }
    Ok(())
}

/// A [`fmt::Write`] adapter that remembers the last character written, so renderers can end a
/// body with exactly one line feed.
pub(crate) struct TrackLast<'a, W: fmt::Write + ?Sized> {
    pub inner: &'a mut W,
    pub last: Option<char>,
}

impl<W: fmt::Write + ?Sized> fmt::Write for TrackLast<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if let Some(c) = s.chars().next_back() {
            self.last = Some(c);
        }
        self.inner.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn esc(bytes: &[u8]) -> String {
        let mut s = String::new();
        write_bytes_escaped(&mut s, bytes.iter().copied()).unwrap();
        s
    }

    #[test]
    fn escapes_invalid_utf8_and_controls() {
        assert_eq!(esc(b"ok\n\tx"), "ok\n\tx");
        assert_eq!(esc("é€😀".as_bytes()), "é€😀");
        assert_eq!(esc(b"\xff\xfe"), "\\xff\\xfe");
        assert_eq!(esc(b"a\xe2\x82"), "a\\xe2\\x82");
        assert_eq!(esc(b"\xe2\x82a"), "\\xe2\\x82a");
        assert_eq!(esc(b"\xc0\xaf"), "\\xc0\\xaf");
        assert_eq!(esc(b"\xed\xa0\x80"), "\\xed\\xa0\\x80");
        assert_eq!(esc(b"\x1b[31m\r"), "\\x1b[31m\\x0d");
        assert_eq!(esc("\u{85}".as_bytes()), "\\u{0085}");
        assert_eq!(esc(b"\x80"), "\\x80");
    }

    #[test]
    fn detail_cuts_at_char_boundary() {
        let d = Detail::<4>::new("aé€");
        assert_eq!(d.as_str(), "aé");
        assert_eq!(d.original_len(), 6);
        assert!(d.is_truncated());
        let d = Detail::<4>::from_chars("aé€".chars());
        assert_eq!(d.as_str(), "aé");
        assert_eq!(d.original_len(), 6);
        let d = Detail::<0>::new("x");
        assert_eq!(d.as_str(), "");
        assert!(d.is_truncated());
    }
}
