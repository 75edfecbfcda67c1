//! The message history behind `show license history message`.
//!
//! A ring of REQUEST/RESPONSE entries whose bodies live in one fixed byte arena. Each entry
//! records when, which way, which exchange ([`Category`]) and what: the bytes as sent or
//! received, or — the point of this module — an explicit [`Body::NoReply`] with the precise
//! [`Code`] of why nothing came back. Real devices print an empty RESPONSE one second after a
//! request that got no answer at all (Cisco bug CSCvy84684), which reads as "the service
//! answered with nothing"; slup prints `<no reply: E1302 ConnectTimeout: connect timed out>`.
//! A reply that arrived with an empty body prints `<empty body>`, so the two never look alike.
//!
//! Capacity, in two dimensions chosen by const generics: at most `ENTRIES` entries and `BYTES`
//! bytes of bodies. Recording evicts the oldest entries until both fit and counts every eviction
//! ([`MessageHistory::evicted`]). A body longer than half the arena
//! ([`MessageHistory::MAX_BODY_LEN`]) is cut to that length (at a character boundary when the
//! cut would split one) and remembers its original length, so the newest request and its
//! response always fit together and one oversized message cannot wipe out the rest.
//!
//! Rendering writes bodies as text: valid UTF-8 as is, control characters other than line feed
//! and tab as `\xNN` / `\u{NNNN}`, and every byte that is not valid UTF-8 as `\xNN`.

use core::fmt;

use super::time::{fmt_history, Zone};
use super::{write_bytes_escaped, Category, ImportKind, MessageKind, TrackLast};
use crate::error::Code;
use crate::types::Timestamp;

/// Default number of entries a [`MessageHistory`] keeps.
pub const DEFAULT_ENTRIES: usize = 16;
/// Default size in bytes of a [`MessageHistory`]'s body arena.
pub const DEFAULT_BYTES: usize = 8192;

/// Which way a message went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Device to service (`REQUEST:`).
    Request,
    /// Service to device (`RESPONSE:`); an imported file is recorded as a response.
    Response,
}

impl Direction {
    /// The line label, `"REQUEST"` or `"RESPONSE"`.
    pub const fn label(self) -> &'static str {
        match self {
            Direction::Request => "REQUEST",
            Direction::Response => "RESPONSE",
        }
    }
}

/// Where an entry's body bytes sit in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stored {
    Bytes {
        start: usize,
        len: usize,
        original_len: usize,
    },
    NoReply(Code),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Slot {
    at: Timestamp,
    direction: Direction,
    category: Category,
    stored: Stored,
}

impl Slot {
    /// An unused slot. Its value is never read; an empty body keeps the empty history all
    /// zero bytes, which a constructor can clear in place rather than copy from flash.
    const EMPTY: Slot = Slot {
        at: Timestamp(0),
        direction: Direction::Request,
        category: Category::Message(MessageKind::TrustEstablishment),
        stored: Stored::Bytes {
            start: 0,
            len: 0,
            original_len: 0,
        },
    };

    const fn stored_len(&self) -> usize {
        match self.stored {
            Stored::Bytes { len, .. } => len,
            Stored::NoReply(_) => 0,
        }
    }
}

/// One entry of the history, borrowed from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// When the message was sent or received (for [`Body::NoReply`], when the wait ended).
    pub at: Timestamp,
    /// Which way it went.
    pub direction: Direction,
    /// Which exchange it belongs to.
    pub category: Category,
    /// What it carried.
    pub body: Body<'a>,
}

/// What an entry carried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body<'a> {
    /// Bytes as sent or received (possibly cut).
    Bytes(BodyBytes<'a>),
    /// Nothing came back, and why.
    NoReply {
        /// The failure that ended the wait (DNS, connect, timeout, reset, …).
        cause: Code,
    },
}

/// The stored bytes of a body: up to two slices of the arena (the ring may wrap), and the
/// length the body had before it was cut.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BodyBytes<'a> {
    first: &'a [u8],
    second: &'a [u8],
    original_len: usize,
}

impl<'a> BodyBytes<'a> {
    /// The stored bytes, in two parts (the second is empty unless the arena wrapped).
    pub const fn parts(&self) -> (&'a [u8], &'a [u8]) {
        (self.first, self.second)
    }

    /// The stored bytes one by one.
    pub fn bytes(&self) -> impl Iterator<Item = u8> + 'a {
        self.first.iter().chain(self.second).copied()
    }

    /// Stored length in bytes.
    pub const fn len(&self) -> usize {
        self.first.len() + self.second.len()
    }

    /// `true` if nothing is stored (an empty body, or a body cut to nothing).
    pub const fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Length of the body as recorded, before any cut.
    pub const fn original_len(&self) -> usize {
        self.original_len
    }

    /// `true` if the body was cut to fit.
    pub const fn is_truncated(&self) -> bool {
        self.original_len > self.len()
    }

    /// Copies the stored bytes into `buf`, returning how many were copied (at most
    /// `buf.len()`).
    pub fn copy_to(&self, buf: &mut [u8]) -> usize {
        let mut n = 0;
        for (dst, src) in buf.iter_mut().zip(self.bytes()) {
            *dst = src;
            n += 1;
        }
        n
    }
}

/// What [`MessageHistory::record`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// `false` only when the history holds no entries at all (`ENTRIES == 0`); the entry was
    /// then counted as evicted.
    pub stored: bool,
    /// Older entries evicted to make room.
    pub evicted: usize,
    /// `true` if the body was cut to [`MessageHistory::MAX_BODY_LEN`] bytes.
    pub truncated: bool,
}

/// The last `ENTRIES` messages exchanged with the license service, with up to `BYTES` bytes of
/// bodies; see the [module documentation](self).
///
/// Memory: `BYTES` plus about 48 bytes per entry on a 64-bit host, 32 on a 32-bit device
/// (8.8 KiB at the defaults).
#[derive(Clone, Debug)]
pub struct MessageHistory<
    const ENTRIES: usize = DEFAULT_ENTRIES,
    const BYTES: usize = DEFAULT_BYTES,
> {
    slots: [Slot; ENTRIES],
    /// Index of the oldest entry; `< ENTRIES` (0 when `ENTRIES == 0`).
    head: usize,
    len: usize,
    arena: [u8; BYTES],
    /// Arena offset of the oldest stored body byte; `< BYTES` (0 when `BYTES == 0`).
    data_start: usize,
    /// Body bytes stored, `≤ BYTES`; they run from `data_start`, wrapping, in entry order.
    data_len: usize,
    evicted: u64,
    truncated: u64,
}

impl<const ENTRIES: usize, const BYTES: usize> Default for MessageHistory<ENTRIES, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const ENTRIES: usize, const BYTES: usize> MessageHistory<ENTRIES, BYTES> {
    /// Longest body stored whole: half the arena, so that a request and its response always
    /// fit together.
    pub const MAX_BODY_LEN: usize = BYTES / 2;

    /// An empty history.
    pub const fn new() -> Self {
        MessageHistory {
            slots: [Slot::EMPTY; ENTRIES],
            head: 0,
            len: 0,
            arena: [0; BYTES],
            data_start: 0,
            data_len: 0,
            evicted: 0,
            truncated: 0,
        }
    }

    /// Most entries kept.
    pub const fn capacity(&self) -> usize {
        ENTRIES
    }

    /// Size of the body arena in bytes.
    pub const fn arena_capacity(&self) -> usize {
        BYTES
    }

    /// Entries kept.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// `true` if no entry is kept.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes currently stored.
    pub const fn bytes_used(&self) -> usize {
        self.data_len
    }

    /// Entries lost so far to make room (saturating), including entries that could not be
    /// stored at all when `ENTRIES == 0`.
    pub const fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Bodies cut so far (saturating).
    pub const fn truncated(&self) -> u64 {
        self.truncated
    }

    /// Records a message sent to the service.
    pub fn record_request(
        &mut self,
        at: Timestamp,
        category: impl Into<Category>,
        body: &[u8],
    ) -> Recorded {
        self.record(at, category, Direction::Request, body)
    }

    /// Records a reply received from the service (or an imported file).
    pub fn record_response(
        &mut self,
        at: Timestamp,
        category: impl Into<Category>,
        body: &[u8],
    ) -> Recorded {
        self.record(at, category, Direction::Response, body)
    }

    /// Records an imported file.
    pub fn record_import(&mut self, at: Timestamp, kind: ImportKind, body: &[u8]) -> Recorded {
        self.record(at, kind, Direction::Response, body)
    }

    /// Records that no reply came, and why: rendered `<no reply: E1302 ConnectTimeout: …>`,
    /// never as an empty body.
    pub fn record_no_reply(
        &mut self,
        at: Timestamp,
        category: impl Into<Category>,
        cause: Code,
    ) -> Recorded {
        self.insert(
            at,
            category.into(),
            Direction::Response,
            Stored::NoReply(cause),
            &[],
        )
    }

    /// Records a message with its body, evicting the oldest entries until it fits, cutting the
    /// body to [`MAX_BODY_LEN`](Self::MAX_BODY_LEN) bytes if longer.
    pub fn record(
        &mut self,
        at: Timestamp,
        category: impl Into<Category>,
        direction: Direction,
        body: &[u8],
    ) -> Recorded {
        let keep = cut_len(body, Self::MAX_BODY_LEN);
        let kept = body.get(..keep).unwrap_or_default();
        let stored = Stored::Bytes {
            start: 0, // set by `insert`
            len: kept.len(),
            original_len: body.len(),
        };
        self.insert(at, category.into(), direction, stored, kept)
    }

    fn insert(
        &mut self,
        at: Timestamp,
        category: Category,
        direction: Direction,
        mut stored: Stored,
        kept: &[u8],
    ) -> Recorded {
        let truncated =
            matches!(stored, Stored::Bytes { len, original_len, .. } if original_len > len);
        if truncated {
            self.truncated = self.truncated.saturating_add(1);
        }
        let mut evicted = 0;
        while self.len >= ENTRIES || BYTES.saturating_sub(self.data_len) < kept.len() {
            if !self.evict_oldest() {
                break;
            }
            evicted += 1;
        }
        if self.len >= ENTRIES || BYTES.saturating_sub(self.data_len) < kept.len() {
            // Only ENTRIES == 0 gets here (kept.len() ≤ BYTES / 2 always fits an empty arena).
            self.evicted = self.evicted.saturating_add(1);
            return Recorded {
                stored: false,
                evicted,
                truncated,
            };
        }
        if let Stored::Bytes { start, .. } = &mut stored {
            *start = self.write_arena(kept);
        }
        let idx = self.index(self.len);
        if let Some(slot) = self.slots.get_mut(idx) {
            *slot = Slot {
                at,
                direction,
                category,
                stored,
            };
        }
        self.len += 1;
        Recorded {
            stored: true,
            evicted,
            truncated,
        }
    }

    /// Appends `bytes` after the stored bodies, wrapping; returns where they start.
    fn write_arena(&mut self, bytes: &[u8]) -> usize {
        if BYTES == 0 {
            return 0;
        }
        if self.data_len == 0 {
            // Empty arena: start at the beginning so the body is less likely to wrap.
            self.data_start = 0;
        }
        let start = wrap_add(self.data_start, self.data_len, BYTES);
        let first_len = bytes.len().min(BYTES.saturating_sub(start));
        let (first, second) = bytes.split_at(first_len);
        if let Some(dst) = self.arena.get_mut(start..) {
            for (d, s) in dst.iter_mut().zip(first) {
                *d = *s;
            }
        }
        for (d, s) in self.arena.iter_mut().zip(second) {
            *d = *s;
        }
        self.data_len += bytes.len();
        start
    }

    /// Drops the oldest entry and its bytes; `false` if there is none.
    fn evict_oldest(&mut self) -> bool {
        if self.len == 0 {
            return false;
        }
        let freed = self.slots.get(self.head).map_or(0, Slot::stored_len);
        if BYTES > 0 {
            self.data_start = wrap_add(self.data_start, freed, BYTES);
        }
        self.data_len = self.data_len.saturating_sub(freed);
        self.head = self.index(1);
        self.len -= 1;
        self.evicted = self.evicted.saturating_add(1);
        true
    }

    /// The entries, oldest first.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = Entry<'_>> + '_ {
        (0..self.len).filter_map(move |i| self.slots.get(self.index(i)).map(|s| self.entry(s)))
    }

    /// The entries of one category, oldest first.
    pub fn iter_category(&self, category: Category) -> impl Iterator<Item = Entry<'_>> + '_ {
        self.iter().filter(move |e| e.category == category)
    }

    /// The newest entry.
    pub fn newest(&self) -> Option<Entry<'_>> {
        self.iter().next_back()
    }

    /// Forgets every entry and resets the counters.
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
        self.data_start = 0;
        self.data_len = 0;
        self.evicted = 0;
        self.truncated = 0;
    }

    fn entry(&self, slot: &Slot) -> Entry<'_> {
        let body = match slot.stored {
            Stored::NoReply(cause) => Body::NoReply { cause },
            Stored::Bytes {
                start,
                len,
                original_len,
            } => {
                let first_len = len.min(BYTES.saturating_sub(start));
                let first = self
                    .arena
                    .get(start..start.saturating_add(first_len))
                    .unwrap_or_default();
                let second = self
                    .arena
                    .get(..len.saturating_sub(first_len))
                    .unwrap_or_default();
                Body::Bytes(BodyBytes {
                    first,
                    second,
                    original_len,
                })
            }
        };
        Entry {
            at: slot.at,
            direction: slot.direction,
            category: slot.category,
            body,
        }
    }

    /// Slot of the `i`-th oldest entry (`i < ENTRIES`).
    fn index(&self, i: usize) -> usize {
        if ENTRIES == 0 {
            return 0;
        }
        wrap_add(self.head, i, ENTRIES)
    }

    /// Writes the history in the device layout, times in `zone`:
    ///
    /// ```text
    /// Message History (oldest to newest):
    /// ====================================================
    /// Trust Establishment:
    /// REQUEST: Aug 23 10:18:08 2021 UTC
    /// {"request":…}
    /// RESPONSE: Aug 23 10:18:10 2021 UTC
    /// <no reply: E1302 ConnectTimeout: connect timed out>
    /// Usage Reporting:
    ///   No past history
    /// …
    ///
    /// Import Message History (oldest to newest):
    /// ====================================================
    /// Import POLICY:
    ///   No past Import history
    /// …
    /// ```
    ///
    /// A cut body is followed by `<truncated: showing K of N bytes>`, an empty one shows
    /// `<empty body>`, and when entries were evicted a line `<N older entries evicted>` follows
    /// the first rule.
    pub fn render<W: fmt::Write + ?Sized>(&self, w: &mut W, zone: Zone<'_>) -> fmt::Result {
        const RULE: &str = "====================================================";
        writeln!(w, "Message History (oldest to newest):\n{RULE}")?;
        if self.evicted > 0 {
            writeln!(w, "<{} older entries evicted>", self.evicted)?;
        }
        for kind in MessageKind::ALL {
            writeln!(w, "{}:", kind.label())?;
            if !self.render_category(w, Category::Message(kind), zone)? {
                writeln!(w, "  No past history")?;
            }
        }
        writeln!(w, "\nImport Message History (oldest to newest):\n{RULE}")?;
        for (i, kind) in ImportKind::ALL.into_iter().enumerate() {
            if i > 0 {
                writeln!(w)?;
            }
            writeln!(w, "{}:", kind.label())?;
            if !self.render_category(w, Category::Import(kind), zone)? {
                writeln!(w, "  No past Import history")?;
            }
        }
        Ok(())
    }

    /// Writes the entries of `category`; `Ok(false)` if there are none.
    fn render_category<W: fmt::Write + ?Sized>(
        &self,
        w: &mut W,
        category: Category,
        zone: Zone<'_>,
    ) -> Result<bool, fmt::Error> {
        let mut any = false;
        for entry in self.iter_category(category) {
            any = true;
            writeln!(
                w,
                "{}: {}",
                entry.direction.label(),
                fmt_history(entry.at, zone)
            )?;
            render_body(w, &entry.body)?;
        }
        Ok(any)
    }
}

/// Writes a body and ends it with exactly one line feed.
fn render_body<W: fmt::Write + ?Sized>(w: &mut W, body: &Body<'_>) -> fmt::Result {
    match body {
        Body::NoReply { cause } => writeln!(w, "<no reply: {cause}>"),
        Body::Bytes(b) if b.original_len() == 0 => writeln!(w, "<empty body>"),
        Body::Bytes(b) => {
            let mut t = TrackLast {
                inner: w,
                last: None,
            };
            write_bytes_escaped(&mut t, b.bytes())?;
            if t.last.is_some_and(|c| c != '\n') {
                fmt::Write::write_char(&mut t, '\n')?;
            }
            if b.is_truncated() {
                writeln!(
                    t.inner,
                    "<truncated: showing {} of {} bytes>",
                    b.len(),
                    b.original_len()
                )?;
            }
            Ok(())
        }
    }
}

/// `(a + b) mod m` for `a < m`, `b ≤ m`, `m > 0`, without overflow.
fn wrap_add(a: usize, b: usize, m: usize) -> usize {
    let room = m.saturating_sub(a);
    if b >= room {
        b - room
    } else {
        a + b
    }
}

/// How many leading bytes of `body` to keep within `max`: all if it fits, else `max` moved back
/// (at most three bytes) to a character boundary when the cut would split a UTF-8 sequence.
fn cut_len(body: &[u8], max: usize) -> usize {
    if body.len() <= max {
        return body.len();
    }
    let mut cut = max;
    for _ in 0..3 {
        match body.get(cut) {
            Some(b) if cut > 0 && b & 0xc0 == 0x80 => cut -= 1,
            _ => return cut,
        }
    }
    // Not UTF-8 (four continuation bytes in a row): cut where asked.
    if body.get(cut).is_some_and(|b| b & 0xc0 == 0x80) {
        max
    } else {
        cut
    }
}
