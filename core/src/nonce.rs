//! Request nonces and the outstanding-nonce tracker.
//!
//! Every device → service request carries a `nonce`: a random `u64` written as a canonical
//! decimal string (1–20 digits, no sign, no leading zero except `"0"`). The service echoes it in
//! its response, and the device accepts a response only if its nonce is one the device issued and
//! has not seen answered yet. [`NonceTracker`] keeps that bookkeeping in a fixed-capacity table:
//!
//! - [`NonceTracker::issue`] draws a fresh nonce and records it as *outstanding* (or refuses with
//!   [`Code::CapacityExceeded`] when the table is full: nothing is ever evicted silently);
//! - [`NonceTracker::answer`] accepts each outstanding nonce **exactly once**, then remembers it in
//!   a ring of the last `ANSWERED` answered nonces, so a second answer is a
//!   [`Code::ReplayedNonce`] and a nonce never issued (or long forgotten) is a
//!   [`Code::UnknownNonce`];
//! - [`NonceTracker::cancel`] and [`NonceTracker::expire`] forget outstanding nonces without an
//!   answer; they go into the answered ring too, so a late answer still counts as a replay.
//!
//! # Persistence
//!
//! So that replays stay rejected across a reboot, the tracker encodes into a small binary record
//! ([`NonceTracker::encode`], [`NonceTracker::decode`]). All integers are little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 4 | magic `b"SLNT"` |
//! | 4 | 1 | format version, `1` ([`FORMAT_VERSION`]) |
//! | 5 | 2 | `n`: number of outstanding entries, `u16` |
//! | 7 | 2 | `m`: number of answered entries, `u16` |
//! | 9 | 16·n | outstanding entries in issue order: nonce `u64`, then issued-at Unix ms `u64` |
//! | 9 + 16·n | 8·m | answered nonces `u64`, **oldest first** |
//! | 9 + 16·n + 8·m | 4 | CRC-32 (IEEE 802.3: reflected polynomial `0xEDB88320`, initial value and final XOR `0xFFFFFFFF`) of every preceding byte, `u32` |
//!
//! A record is therefore exactly `13 + 16·n + 8·m` bytes ([`encoded_len`]); the largest one a
//! tracker can produce is [`NonceTracker::ENCODED_LEN`]. The ring's write position is not stored:
//! the answered nonces are written oldest first and decoding pushes them back in that order,
//! which restores the same overwrite order.
//!
//! [`NonceTracker::decode`] checks, in this order, and reports a [`DecodeError`] with context
//! `"nonce tracker"`:
//!
//! 1. magic (a record shorter than 4 bytes included) → [`Code::RecordCorrupt`];
//! 2. version: missing or `0` → [`Code::RecordCorrupt`]; above [`FORMAT_VERSION`] →
//!    [`Code::RecordFromNewerVersion`];
//! 3. counts: missing → [`Code::RecordCorrupt`]; above this tracker's `OUTSTANDING` or
//!    `ANSWERED` → [`Code::CapacityExceeded`];
//! 4. total length: shorter than `13 + 16·n + 8·m` (truncated) → [`Code::RecordCorrupt`];
//!    longer → [`Code::TrailingBytes`];
//! 5. checksum mismatch → [`Code::RecordCorrupt`];
//! 6. a nonce appearing twice anywhere (outstanding or answered) → [`Code::RecordCorrupt`].
//!
//! Decoding never panics, whatever the input.

use core::fmt;
use core::str::FromStr;

use rand_core::{CryptoRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Code, DecodeError, EncodeError};
use crate::types::{format_u64, parse_canonical_u64, Timestamp};

/// A request nonce: a random `u64`, on the wire a canonical decimal string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nonce(u64);

impl Nonce {
    /// Parses the canonical decimal form (1–20 digits, no leading zero except `"0"`, at most
    /// `u64::MAX`); anything else is [`Code::InvalidValue`].
    pub fn parse(s: &str) -> Result<Nonce, Code> {
        parse_canonical_u64(s).map(Nonce)
    }

    /// Wraps a value (e.g. one read back from storage).
    pub const fn from_value(value: u64) -> Nonce {
        Nonce(value)
    }

    /// The numeric value.
    pub const fn value(self) -> u64 {
        self.0
    }

    /// Draws a fresh nonce from a cryptographic random number generator.
    pub fn generate<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Nonce {
        Nonce(rng.next_u64())
    }

    /// Writes the canonical decimal form into `buf` and returns it.
    pub fn format(self, buf: &mut [u8; 20]) -> &str {
        format_u64(self.0, buf)
    }
}

impl From<Nonce> for u64 {
    fn from(n: Nonce) -> u64 {
        n.0
    }
}

impl FromStr for Nonce {
    type Err = Code;

    fn from_str(s: &str) -> Result<Self, Code> {
        Nonce::parse(s)
    }
}

impl fmt::Display for Nonce {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 20];
        f.write_str(format_u64(self.0, &mut buf))
    }
}

impl Serialize for Nonce {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 20];
        s.serialize_str(format_u64(self.0, &mut buf))
    }
}

impl<'de> Deserialize<'de> for Nonce {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        Nonce::parse(s).map_err(|_| serde::de::Error::custom("nonce"))
    }
}

/// Default number of outstanding nonces a [`NonceTracker`] holds.
pub const DEFAULT_OUTSTANDING: usize = 16;
/// Default number of answered nonces a [`NonceTracker`] remembers.
pub const DEFAULT_ANSWERED: usize = 32;

/// The magic bytes opening an encoded tracker.
pub const MAGIC: [u8; 4] = *b"SLNT";
/// The format version [`NonceTracker::encode`] writes and the newest [`NonceTracker::decode`]
/// reads.
pub const FORMAT_VERSION: u8 = 1;

const HEADER_LEN: usize = 9;
const OUTSTANDING_ENTRY_LEN: usize = 16;
const ANSWERED_ENTRY_LEN: usize = 8;
const CRC_LEN: usize = 4;
const CONTEXT: &str = "nonce tracker";

/// How many draws [`NonceTracker::issue`] makes before it gives up on the random number
/// generator. A working generator repeats a known value with probability below 2⁻⁴⁰ per draw.
const MAX_DRAWS: u32 = 64;

/// The exact encoded size of a tracker holding `outstanding` outstanding and `answered` answered
/// nonces: `13 + 16·outstanding + 8·answered` (saturating).
pub const fn encoded_len(outstanding: usize, answered: usize) -> usize {
    HEADER_LEN
        .saturating_add(outstanding.saturating_mul(OUTSTANDING_ENTRY_LEN))
        .saturating_add(answered.saturating_mul(ANSWERED_ENTRY_LEN))
        .saturating_add(CRC_LEN)
}

/// The largest encoded size of a tracker with the default capacities
/// ([`DEFAULT_OUTSTANDING`], [`DEFAULT_ANSWERED`]): 525 bytes.
pub const ENCODED_LEN: usize = encoded_len(DEFAULT_OUTSTANDING, DEFAULT_ANSWERED);

/// One outstanding nonce and when it was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    nonce: Nonce,
    issued_at: Timestamp,
}

/// A ring of the last `N` answered nonce values; the oldest is overwritten when full.
#[derive(Clone, Debug)]
struct Ring<const N: usize> {
    slots: [u64; N],
    /// Number of valid slots; they are `slots[..len]` (all of them once full).
    len: usize,
    /// Next slot to write; always `< N` (or 0 when `N == 0`). Once full it is also the oldest.
    next: usize,
}

impl<const N: usize> Ring<N> {
    const fn new() -> Self {
        Ring {
            slots: [0; N],
            len: 0,
            next: 0,
        }
    }

    fn contains(&self, value: u64) -> bool {
        self.slots
            .get(..self.len)
            .is_some_and(|valid| valid.contains(&value))
    }

    fn push(&mut self, value: u64) {
        let Some(slot) = self.slots.get_mut(self.next) else {
            // N == 0: nothing is remembered.
            return;
        };
        *slot = value;
        let next = self.next.saturating_add(1);
        self.next = if next >= N { 0 } else { next };
        if self.len < N {
            self.len = self.len.saturating_add(1);
        }
    }

    /// The values, oldest first.
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let start = if self.len < N { 0 } else { self.next };
        let (newer, older) = self
            .slots
            .split_at_checked(start)
            .unwrap_or((self.slots.as_slice(), &[]));
        older.iter().chain(newer.iter()).copied().take(self.len)
    }
}

/// The outstanding-nonce table: which nonces were issued and not yet answered, and which were
/// answered recently.
///
/// Each issued (or tracked) nonce is accepted by [`answer`](Self::answer) exactly once. The table
/// holds at most `OUTSTANDING` outstanding nonces and remembers the last `ANSWERED` answered (or
/// cancelled, or expired) ones, so that a second answer is recognised as a replay. It never
/// allocates and never evicts an outstanding nonce on its own. See the [module docs](self) for
/// the persistent format.
#[derive(Clone, Debug)]
pub struct NonceTracker<
    const OUTSTANDING: usize = DEFAULT_OUTSTANDING,
    const ANSWERED: usize = DEFAULT_ANSWERED,
> {
    outstanding: heapless::Vec<Entry, OUTSTANDING>,
    answered: Ring<ANSWERED>,
}

impl<const OUTSTANDING: usize, const ANSWERED: usize> Default
    for NonceTracker<OUTSTANDING, ANSWERED>
{
    fn default() -> Self {
        Self::new()
    }
}

/// Two trackers are equal when they hold the same outstanding entries in the same order and
/// remember the same answered nonces in the same order.
impl<const OUTSTANDING: usize, const ANSWERED: usize> PartialEq
    for NonceTracker<OUTSTANDING, ANSWERED>
{
    fn eq(&self, other: &Self) -> bool {
        self.outstanding == other.outstanding && self.answered.iter().eq(other.answered.iter())
    }
}

impl<const OUTSTANDING: usize, const ANSWERED: usize> Eq for NonceTracker<OUTSTANDING, ANSWERED> {}

impl<const OUTSTANDING: usize, const ANSWERED: usize> NonceTracker<OUTSTANDING, ANSWERED> {
    /// The largest encoded size of this tracker: both tables full (see [`encoded_len`]).
    pub const ENCODED_LEN: usize = encoded_len(OUTSTANDING, ANSWERED);

    /// An empty tracker.
    pub const fn new() -> Self {
        Self {
            outstanding: heapless::Vec::new(),
            answered: Ring::new(),
        }
    }

    /// Number of outstanding nonces.
    pub fn len(&self) -> usize {
        self.outstanding.len()
    }

    /// `true` if no nonce is outstanding.
    pub fn is_empty(&self) -> bool {
        self.outstanding.is_empty()
    }

    /// `true` if no more nonces can be issued or tracked until one is answered, cancelled or
    /// expired.
    pub fn is_full(&self) -> bool {
        self.outstanding.is_full()
    }

    /// Number of answered nonces remembered (at most `ANSWERED`).
    pub fn answered_len(&self) -> usize {
        self.answered.len
    }

    /// `true` if `nonce` is outstanding.
    pub fn is_outstanding(&self, nonce: Nonce) -> bool {
        self.position(nonce).is_some()
    }

    /// `true` if `nonce` is in the ring of recently answered (or cancelled, or expired) nonces.
    pub fn was_answered(&self, nonce: Nonce) -> bool {
        self.answered.contains(nonce.0)
    }

    /// The outstanding nonces with the time each was issued, oldest issued first.
    pub fn outstanding(&self) -> impl ExactSizeIterator<Item = (Nonce, Timestamp)> + '_ {
        self.outstanding.iter().map(|e| (e.nonce, e.issued_at))
    }

    /// The remembered answered nonces, oldest first.
    pub fn answered(&self) -> impl Iterator<Item = Nonce> + '_ {
        self.answered.iter().map(Nonce)
    }

    fn position(&self, nonce: Nonce) -> Option<usize> {
        self.outstanding.iter().position(|e| e.nonce == nonce)
    }

    fn is_known(&self, nonce: Nonce) -> bool {
        self.is_outstanding(nonce) || self.was_answered(nonce)
    }

    /// Draws a fresh nonce and records it as outstanding, issued at `now`.
    ///
    /// The value drawn is neither outstanding nor in the answered ring (the generator is asked
    /// again if it is). Errors: [`Code::CapacityExceeded`] when `OUTSTANDING` nonces are already
    /// outstanding (nothing is evicted, and the generator is not called);
    /// [`Code::InvalidArgument`] if the generator returned only known values in 64 draws (it is
    /// broken).
    pub fn issue<R: RngCore + CryptoRng + ?Sized>(
        &mut self,
        rng: &mut R,
        now: Timestamp,
    ) -> Result<Nonce, Code> {
        if self.outstanding.is_full() {
            return Err(Code::CapacityExceeded);
        }
        for _ in 0..MAX_DRAWS {
            let nonce = Nonce::generate(rng);
            if !self.is_known(nonce) {
                self.outstanding
                    .push(Entry {
                        nonce,
                        issued_at: now,
                    })
                    .map_err(|_| Code::CapacityExceeded)?;
                return Ok(nonce);
            }
        }
        Err(Code::InvalidArgument)
    }

    /// Registers an externally produced nonce as outstanding, issued at `now`.
    ///
    /// Errors: [`Code::InvalidArgument`] if the nonce is already outstanding or in the answered
    /// ring; [`Code::CapacityExceeded`] if the table is full.
    pub fn track(&mut self, nonce: Nonce, now: Timestamp) -> Result<(), Code> {
        if self.is_known(nonce) {
            return Err(Code::InvalidArgument);
        }
        self.outstanding
            .push(Entry {
                nonce,
                issued_at: now,
            })
            .map_err(|_| Code::CapacityExceeded)
    }

    /// Accepts the answer to `nonce` and returns when it was issued.
    ///
    /// An outstanding nonce is removed and remembered in the answered ring (the oldest
    /// remembered one is forgotten when the ring is full). Errors: [`Code::ReplayedNonce`] if
    /// the nonce is in the answered ring (answered, cancelled or expired before);
    /// [`Code::UnknownNonce`] if it is neither outstanding nor remembered.
    pub fn answer(&mut self, nonce: Nonce) -> Result<Timestamp, Code> {
        match self.take(nonce) {
            Some(issued_at) => Ok(issued_at),
            None if self.was_answered(nonce) => Err(Code::ReplayedNonce),
            None => Err(Code::UnknownNonce),
        }
    }

    /// Forgets an outstanding nonce without an answer (e.g. its request was never sent).
    ///
    /// The nonce goes into the answered ring, so a late answer is a [`Code::ReplayedNonce`].
    /// Returns `false` if the nonce was not outstanding.
    pub fn cancel(&mut self, nonce: Nonce) -> bool {
        self.take(nonce).is_some()
    }

    /// Removes an outstanding nonce into the answered ring; returns its issue time.
    fn take(&mut self, nonce: Nonce) -> Option<Timestamp> {
        let i = self.position(nonce)?;
        let entry = self.outstanding.remove(i);
        self.answered.push(entry.nonce.0);
        Some(entry.issued_at)
    }

    /// Drops every outstanding nonce issued more than `max_age_ms` before `now`, moving it to
    /// the answered ring (so a late answer is a [`Code::ReplayedNonce`]); returns how many.
    ///
    /// A nonce issued after `now` (the clock moved back) has age 0 and is kept.
    pub fn expire(&mut self, now: Timestamp, max_age_ms: u64) -> usize {
        let answered = &mut self.answered;
        let mut expired = 0usize;
        self.outstanding.retain(|e| {
            let age = now.millis().saturating_sub(e.issued_at.millis());
            if age > max_age_ms {
                answered.push(e.nonce.0);
                expired = expired.saturating_add(1);
                false
            } else {
                true
            }
        });
        expired
    }

    /// The exact size [`encode`](Self::encode) needs for the current state.
    pub fn encoded_len(&self) -> usize {
        encoded_len(self.outstanding.len(), self.answered.len)
    }

    /// Writes the persistent form (see the [module docs](self)) into `buf` and returns its
    /// length, [`encoded_len`](Self::encoded_len) bytes; a buffer of
    /// [`ENCODED_LEN`](Self::ENCODED_LEN) bytes always suffices.
    ///
    /// Errors: [`Code::BufferTooSmall`]; [`Code::CapacityExceeded`] if a count does not fit the
    /// format's `u16` (only possible with capacities above 65 535).
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let out = buf
            .get_mut(..self.encoded_len())
            .ok_or(EncodeError::buffer(CONTEXT))?;
        let mut pos = 0usize;
        self.emit(|bytes| {
            let end = pos.saturating_add(bytes.len());
            out.get_mut(pos..end)
                .ok_or(Code::BufferTooSmall)?
                .copy_from_slice(bytes);
            pos = end;
            Ok(())
        })
        .map_err(|code| EncodeError {
            code,
            context: CONTEXT,
        })?;
        Ok(pos)
    }

    /// Hands the persistent form to `put` piece by piece, in order: what
    /// [`encode`](Self::encode) writes, without needing a buffer of its own (the engine's
    /// nonce record streams it into its own frame).
    pub fn emit(&self, mut put: impl FnMut(&[u8]) -> Result<(), Code>) -> Result<(), Code> {
        let n_out = u16::try_from(self.outstanding.len()).map_err(|_| Code::CapacityExceeded)?;
        let n_ans = u16::try_from(self.answered.len).map_err(|_| Code::CapacityExceeded)?;
        let mut crc = CRC_INIT;
        let mut w = |bytes: &[u8]| {
            crc = crc32_update(crc, bytes);
            put(bytes)
        };
        w(&MAGIC)?;
        w(&[FORMAT_VERSION])?;
        w(&n_out.to_le_bytes())?;
        w(&n_ans.to_le_bytes())?;
        for e in &self.outstanding {
            w(&e.nonce.0.to_le_bytes())?;
            w(&e.issued_at.millis().to_le_bytes())?;
        }
        for v in self.answered.iter() {
            w(&v.to_le_bytes())?;
        }
        put(&crc32_finish(crc).to_le_bytes())
    }

    /// Reads a tracker written by [`encode`](Self::encode), rejecting anything that is not
    /// exactly such a record for these capacities (see the [module docs](self) for the checks
    /// and their codes). Never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let err = |code: Code, offset: usize| DecodeError::new(code, offset, CONTEXT);

        match bytes.get(..MAGIC.len()) {
            Some(m) if m == MAGIC.as_slice() => {}
            _ => return Err(err(Code::RecordCorrupt, 0)),
        }
        let version = *bytes.get(4).ok_or(err(Code::RecordCorrupt, bytes.len()))?;
        if version == 0 {
            return Err(err(Code::RecordCorrupt, 4));
        }
        if version > FORMAT_VERSION {
            return Err(err(Code::RecordFromNewerVersion, 4));
        }
        let n_out = usize::from(read_u16(bytes, 5).ok_or(err(Code::RecordCorrupt, bytes.len()))?);
        let n_ans = usize::from(read_u16(bytes, 7).ok_or(err(Code::RecordCorrupt, bytes.len()))?);
        if n_out > OUTSTANDING {
            return Err(err(Code::CapacityExceeded, 5));
        }
        if n_ans > ANSWERED {
            return Err(err(Code::CapacityExceeded, 7));
        }
        let total = encoded_len(n_out, n_ans);
        if bytes.len() < total {
            return Err(err(Code::RecordCorrupt, bytes.len()));
        }
        if bytes.len() > total {
            return Err(err(Code::TrailingBytes, total));
        }
        let body_len = total
            .checked_sub(CRC_LEN)
            .ok_or(err(Code::RecordCorrupt, 0))?;
        let (body, stored) = bytes
            .split_at_checked(body_len)
            .ok_or(err(Code::RecordCorrupt, bytes.len()))?;
        let stored = read_u32(stored, 0).ok_or(err(Code::RecordCorrupt, body_len))?;
        if stored != crc32(body) {
            return Err(err(Code::RecordCorrupt, body_len));
        }

        let mut tracker = Self::new();
        let mut pos = HEADER_LEN;
        for _ in 0..n_out {
            let nonce = Nonce(read_u64(body, pos).ok_or(err(Code::RecordCorrupt, pos))?);
            let at = pos.saturating_add(8);
            let issued_at = Timestamp(read_u64(body, at).ok_or(err(Code::RecordCorrupt, at))?);
            if tracker.is_known(nonce) {
                return Err(err(Code::RecordCorrupt, pos));
            }
            tracker
                .outstanding
                .push(Entry { nonce, issued_at })
                .map_err(|_| err(Code::CapacityExceeded, pos))?;
            pos = pos.saturating_add(OUTSTANDING_ENTRY_LEN);
        }
        for _ in 0..n_ans {
            let nonce = Nonce(read_u64(body, pos).ok_or(err(Code::RecordCorrupt, pos))?);
            if tracker.is_known(nonce) {
                return Err(err(Code::RecordCorrupt, pos));
            }
            tracker.answered.push(nonce.0);
            pos = pos.saturating_add(ANSWERED_ENTRY_LEN);
        }
        Ok(tracker)
    }
}

fn read_array<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    let end = at.checked_add(N)?;
    bytes.get(at..end)?.try_into().ok()
}

fn read_u16(bytes: &[u8], at: usize) -> Option<u16> {
    read_array(bytes, at).map(u16::from_le_bytes)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    read_array(bytes, at).map(u32::from_le_bytes)
}

fn read_u64(bytes: &[u8], at: usize) -> Option<u64> {
    read_array(bytes, at).map(u64::from_le_bytes)
}

pub(crate) const CRC_INIT: u32 = 0xFFFF_FFFF;

/// Feeds `data` into a running CRC-32 (IEEE 802.3, reflected, bitwise: no table).
pub(crate) fn crc32_update(mut crc: u32, data: &[u8]) -> u32 {
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = crc.wrapping_shr(1) ^ (0xEDB8_8320 & mask);
        }
    }
    crc
}

pub(crate) const fn crc32_finish(crc: u32) -> u32 {
    !crc
}

/// CRC-32 (IEEE) of `data`.
fn crc32(data: &[u8]) -> u32 {
    crc32_finish(crc32_update(CRC_INIT, data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::rand_core::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    type Tracker = NonceTracker;

    fn rng() -> ChaCha20Rng {
        ChaCha20Rng::seed_from_u64(0x5175_7000)
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp(ms)
    }

    /// A "random" generator returning a fixed script of values, then repeating the last one.
    struct Scripted<'a> {
        values: &'a [u64],
        next: usize,
    }

    impl RngCore for Scripted<'_> {
        fn next_u32(&mut self) -> u32 {
            self.next_u64() as u32
        }
        fn next_u64(&mut self) -> u64 {
            let v = self
                .values
                .get(self.next)
                .or(self.values.last())
                .copied()
                .unwrap_or(0);
            self.next += 1;
            v
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            rand_core::impls::fill_bytes_via_next(self, dest)
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }
    impl CryptoRng for Scripted<'_> {}

    fn encode<const O: usize, const A: usize>(tr: &NonceTracker<O, A>) -> heapless::Vec<u8, 2048> {
        let mut buf = [0u8; 2048];
        let n = tr.encode(&mut buf).unwrap();
        assert_eq!(n, tr.encoded_len());
        heapless::Vec::from_slice(&buf[..n]).unwrap()
    }

    /// A tracker with outstanding and answered entries, the ring wrapped around.
    fn busy_tracker() -> Tracker {
        let mut r = rng();
        let mut tr = Tracker::new();
        for i in 0..40u64 {
            let n = tr.issue(&mut r, t(1_000 + i)).unwrap();
            tr.answer(n).unwrap();
        }
        for i in 0..5u64 {
            tr.issue(&mut r, t(2_000 + i)).unwrap();
        }
        tr
    }

    #[test]
    fn nonce_parse_is_canonical() {
        assert_eq!(Nonce::parse("0"), Ok(Nonce::from_value(0)));
        assert_eq!(Nonce::parse("7").map(Nonce::value), Ok(7));
        assert_eq!(
            Nonce::parse("18446744073709551615").map(u64::from),
            Ok(u64::MAX)
        );
        assert_eq!(
            Nonce::parse("11702702165338740293").map(Nonce::value),
            Ok(11_702_702_165_338_740_293)
        );
        for bad in [
            "",
            "00",
            "007",
            "18446744073709551616",
            "100000000000000000000",
            "+1",
            "-1",
            " 1",
            "1 ",
            "1a",
            "0x10",
            "١",
        ] {
            assert_eq!(Nonce::parse(bad), Err(Code::InvalidValue), "{bad:?}");
        }
        assert_eq!("42".parse::<Nonce>(), Ok(Nonce::from_value(42)));
    }

    #[test]
    fn nonce_display_and_serde() {
        use core::fmt::Write;
        for v in [0u64, 9, 10, 11_702_702_165_338_740_293, u64::MAX] {
            let n = Nonce::from_value(v);
            let mut s: heapless::String<32> = heapless::String::new();
            write!(s, "{n}").unwrap();
            assert_eq!(Nonce::parse(&s), Ok(n));
            let mut buf = [0u8; 20];
            assert_eq!(n.format(&mut buf), s.as_str());

            let mut json = [0u8; 32];
            let len = serde_json_core::to_slice(&n, &mut json).unwrap();
            assert_eq!(&json[..len], alloc_free_quoted(&s).as_bytes());
            let (back, _) = serde_json_core::from_slice::<Nonce>(&json[..len]).unwrap();
            assert_eq!(back, n);
        }
        assert!(serde_json_core::from_str::<Nonce>("\"007\"").is_err());
        assert!(serde_json_core::from_str::<Nonce>("7").is_err());
        assert!(serde_json_core::from_str::<Nonce>("\"18446744073709551616\"").is_err());
    }

    fn alloc_free_quoted(s: &str) -> heapless::String<40> {
        let mut q = heapless::String::new();
        q.push('"').unwrap();
        q.push_str(s).unwrap();
        q.push('"').unwrap();
        q
    }

    #[test]
    fn generate_is_deterministic_with_seeded_rng() {
        let a = Nonce::generate(&mut rng());
        let b = Nonce::generate(&mut rng());
        assert_eq!(a, b);
        let mut r = rng();
        assert_ne!(Nonce::generate(&mut r), Nonce::generate(&mut r));
    }

    #[test]
    fn issue_answer_replay_unknown_are_distinct() {
        let mut r = rng();
        let mut tr = Tracker::new();
        assert!(tr.is_empty());
        let n = tr.issue(&mut r, t(1_000)).unwrap();
        assert!(tr.is_outstanding(n));
        assert_eq!(tr.len(), 1);
        assert_eq!(
            tr.outstanding().collect::<heapless::Vec<_, 4>>(),
            [(n, t(1_000))]
        );

        assert_eq!(tr.answer(n), Ok(t(1_000)));
        assert!(!tr.is_outstanding(n));
        assert!(tr.was_answered(n));
        assert!(tr.is_empty());
        assert_eq!(tr.answer(n), Err(Code::ReplayedNonce));
        assert_eq!(tr.answer(n), Err(Code::ReplayedNonce));

        let never = Nonce::from_value(n.value().wrapping_add(1));
        assert_eq!(tr.answer(never), Err(Code::UnknownNonce));
        assert_ne!(Code::ReplayedNonce, Code::UnknownNonce);
    }

    #[test]
    fn several_outstanding_answer_in_any_order() {
        let mut r = rng();
        let mut tr = Tracker::new();
        let a = tr.issue(&mut r, t(1)).unwrap();
        let b = tr.issue(&mut r, t(2)).unwrap();
        let c = tr.issue(&mut r, t(3)).unwrap();
        assert_eq!(tr.answer(b), Ok(t(2)));
        assert_eq!(
            tr.outstanding().collect::<heapless::Vec<_, 4>>(),
            [(a, t(1)), (c, t(3))]
        );
        assert_eq!(tr.answer(c), Ok(t(3)));
        assert_eq!(tr.answer(a), Ok(t(1)));
        assert_eq!(tr.answered().collect::<heapless::Vec<_, 4>>(), [b, c, a]);
    }

    #[test]
    fn capacity_is_an_error_not_an_eviction() {
        let mut r = rng();
        let mut tr = NonceTracker::<4, 8>::new();
        let mut issued = heapless::Vec::<Nonce, 4>::new();
        for i in 0..4 {
            issued.push(tr.issue(&mut r, t(i)).unwrap()).unwrap();
        }
        assert!(tr.is_full());
        assert_eq!(tr.issue(&mut r, t(9)), Err(Code::CapacityExceeded));
        assert_eq!(
            tr.track(Nonce::from_value(12345), t(9)),
            Err(Code::CapacityExceeded)
        );
        // Nothing was evicted.
        for n in &issued {
            assert!(tr.is_outstanding(*n));
        }
        assert_eq!(tr.len(), 4);
        // Answering frees a slot.
        tr.answer(issued[0]).unwrap();
        assert!(tr.issue(&mut r, t(10)).is_ok());
        assert_eq!(tr.issue(&mut r, t(11)), Err(Code::CapacityExceeded));
    }

    #[test]
    fn zero_capacities_work() {
        let mut r = rng();
        let mut tr = NonceTracker::<0, 0>::new();
        assert_eq!(tr.issue(&mut r, t(1)), Err(Code::CapacityExceeded));
        assert_eq!(tr.answer(Nonce::from_value(1)), Err(Code::UnknownNonce));
        let bytes = encode(&tr);
        assert_eq!(bytes.len(), NonceTracker::<0, 0>::ENCODED_LEN);
        assert_eq!(NonceTracker::<0, 0>::decode(&bytes), Ok(tr));

        // A tracker that remembers nothing answered still answers exactly once.
        let mut tr = NonceTracker::<2, 0>::new();
        let n = tr.issue(&mut r, t(1)).unwrap();
        assert_eq!(tr.answer(n), Ok(t(1)));
        assert_eq!(tr.answer(n), Err(Code::UnknownNonce));
        assert_eq!(NonceTracker::<2, 0>::decode(&encode(&tr)), Ok(tr));
    }

    #[test]
    fn track_registers_external_nonces_once() {
        let mut tr = Tracker::new();
        let n = Nonce::from_value(11_702_702_165_338_740_293);
        tr.track(n, t(5)).unwrap();
        assert_eq!(tr.track(n, t(6)), Err(Code::InvalidArgument));
        assert_eq!(tr.answer(n), Ok(t(5)));
        // Answered nonces are known too.
        assert_eq!(tr.track(n, t(7)), Err(Code::InvalidArgument));
        assert_eq!(tr.answer(n), Err(Code::ReplayedNonce));
    }

    #[test]
    fn issue_redraws_known_values() {
        let mut tr = Tracker::new();
        tr.track(Nonce::from_value(1), t(0)).unwrap();
        tr.track(Nonce::from_value(2), t(0)).unwrap();
        tr.answer(Nonce::from_value(2)).unwrap();
        let mut r = Scripted {
            values: &[1, 2, 1, 3],
            next: 0,
        };
        assert_eq!(tr.issue(&mut r, t(1)), Ok(Nonce::from_value(3)));
        assert_eq!(r.next, 4);

        // A generator stuck on a known value is reported, not looped on forever.
        let mut stuck = Scripted {
            values: &[3],
            next: 0,
        };
        assert_eq!(tr.issue(&mut stuck, t(2)), Err(Code::InvalidArgument));
        assert_eq!(stuck.next, MAX_DRAWS as usize);
        assert_eq!(tr.len(), 2);
    }

    #[test]
    fn answered_ring_overwrites_oldest() {
        let mut r = rng();
        let mut tr = NonceTracker::<4, 3>::new();
        let mut answered = heapless::Vec::<Nonce, 8>::new();
        for i in 0..5 {
            let n = tr.issue(&mut r, t(i)).unwrap();
            tr.answer(n).unwrap();
            answered.push(n).unwrap();
        }
        assert_eq!(tr.answered_len(), 3);
        assert_eq!(
            tr.answered().collect::<heapless::Vec<_, 4>>(),
            answered[2..]
        );
        assert_eq!(tr.answer(answered[0]), Err(Code::UnknownNonce));
        assert_eq!(tr.answer(answered[1]), Err(Code::UnknownNonce));
        for n in &answered[2..] {
            assert_eq!(tr.answer(*n), Err(Code::ReplayedNonce));
        }
    }

    #[test]
    fn cancel_forgets_without_answer_and_late_answer_is_replay() {
        let mut r = rng();
        let mut tr = Tracker::new();
        let a = tr.issue(&mut r, t(1)).unwrap();
        let b = tr.issue(&mut r, t(2)).unwrap();
        assert!(tr.cancel(a));
        assert!(!tr.is_outstanding(a));
        assert!(tr.is_outstanding(b));
        assert_eq!(tr.len(), 1);
        assert!(!tr.cancel(a));
        assert!(!tr.cancel(Nonce::from_value(a.value() ^ 1)));
        assert_eq!(tr.answer(a), Err(Code::ReplayedNonce));
        assert_eq!(tr.answer(b), Ok(t(2)));
    }

    #[test]
    fn expire_drops_old_outstanding_into_the_ring() {
        let mut r = rng();
        let mut tr = Tracker::new();
        let old1 = tr.issue(&mut r, t(1_000)).unwrap();
        let fresh = tr.issue(&mut r, t(5_000)).unwrap();
        let old2 = tr.issue(&mut r, t(2_000)).unwrap();
        let future = tr.issue(&mut r, t(99_000)).unwrap();
        let edge = tr.issue(&mut r, t(4_000)).unwrap();

        // Age exactly max_age is kept; strictly older goes.
        assert_eq!(tr.expire(t(6_000), 2_000), 2);
        assert_eq!(
            tr.outstanding()
                .map(|(n, _)| n)
                .collect::<heapless::Vec<_, 8>>(),
            [fresh, future, edge]
        );
        assert_eq!(tr.answered().collect::<heapless::Vec<_, 8>>(), [old1, old2]);
        assert_eq!(tr.answer(old1), Err(Code::ReplayedNonce));
        assert_eq!(tr.answer(old2), Err(Code::ReplayedNonce));
        assert_eq!(tr.expire(t(6_000), 2_000), 0);
        assert_eq!(tr.expire(t(u64::MAX), u64::MAX), 0);
        assert_eq!(tr.expire(t(u64::MAX), 0), 3);
        assert!(tr.is_empty());
        assert_eq!(tr.answer(future), Err(Code::ReplayedNonce));
    }

    #[test]
    fn crc32_matches_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32_update(crc32_update(CRC_INIT, b"1234"), b"56789"),
            !0xCBF4_3926
        );
    }

    #[test]
    fn encoding_layout_is_as_documented() {
        let mut tr = NonceTracker::<4, 2>::new();
        tr.track(Nonce::from_value(0x0102_0304_0506_0708), t(0x1122))
            .unwrap();
        tr.track(Nonce::from_value(7), t(8)).unwrap();
        tr.track(Nonce::from_value(9), t(10)).unwrap();
        tr.answer(Nonce::from_value(7)).unwrap();
        let bytes = encode(&tr);
        assert_eq!(bytes.len(), 13 + 16 * 2 + 8);
        assert_eq!(&bytes[..4], b"SLNT");
        assert_eq!(bytes[4], 1);
        assert_eq!(&bytes[5..9], &[2, 0, 1, 0]);
        assert_eq!(&bytes[9..17], &0x0102_0304_0506_0708u64.to_le_bytes());
        assert_eq!(&bytes[17..25], &0x1122u64.to_le_bytes());
        assert_eq!(&bytes[25..33], &9u64.to_le_bytes());
        assert_eq!(&bytes[33..41], &10u64.to_le_bytes());
        assert_eq!(&bytes[41..49], &7u64.to_le_bytes());
        let crc = crc32(&bytes[..49]);
        assert_eq!(&bytes[49..], &crc.to_le_bytes());

        assert_eq!(ENCODED_LEN, 525);
        assert_eq!(Tracker::ENCODED_LEN, ENCODED_LEN);
        assert_eq!(NonceTracker::<4, 2>::ENCODED_LEN, 13 + 64 + 16);
    }

    #[test]
    fn ring_order_survives_wraparound() {
        let tr = busy_tracker();
        let decoded = Tracker::decode(&encode(&tr)).unwrap();
        assert_eq!(decoded, tr);
        assert!(decoded.answered().eq(tr.answered()));
        // And the ring keeps overwriting in the same order after decoding.
        let (mut a, mut b) = (tr, decoded);
        let mut r = rng();
        for i in 0..10 {
            let n = a.issue(&mut r, t(i)).unwrap();
            a.answer(n).unwrap();
            b.track(n, t(i)).unwrap();
            b.answer(n).unwrap();
        }
        assert_eq!(a, b);
    }

    #[test]
    fn full_state_fits_encoded_len() {
        let mut r = rng();
        let mut tr = Tracker::new();
        for i in 0..DEFAULT_ANSWERED as u64 + 3 {
            let n = tr.issue(&mut r, t(i)).unwrap();
            tr.answer(n).unwrap();
        }
        while tr.issue(&mut r, t(7)).is_ok() {}
        assert_eq!(tr.encoded_len(), Tracker::ENCODED_LEN);
        let mut buf = [0u8; Tracker::ENCODED_LEN];
        assert_eq!(tr.encode(&mut buf), Ok(Tracker::ENCODED_LEN));
        assert_eq!(Tracker::decode(&buf), Ok(tr.clone()));
        let mut small = [0u8; Tracker::ENCODED_LEN - 1];
        assert_eq!(
            tr.encode(&mut small).map_err(|e| e.code()),
            Err(Code::BufferTooSmall)
        );
        assert_eq!(
            Tracker::new().encode(&mut [0u8; 12]).map_err(|e| e.code()),
            Err(Code::BufferTooSmall)
        );
    }

    #[test]
    fn reboot_keeps_replays_rejected_and_outstanding_answerable() {
        let mut r = rng();
        let mut tr = Tracker::new();
        let answered = tr.issue(&mut r, t(1_000)).unwrap();
        let pending = tr.issue(&mut r, t(2_000)).unwrap();
        let cancelled = tr.issue(&mut r, t(3_000)).unwrap();
        assert_eq!(tr.answer(answered), Ok(t(1_000)));
        assert!(tr.cancel(cancelled));
        let stored = encode(&tr);
        drop(tr);

        // Reboot.
        let mut tr = Tracker::decode(&stored).unwrap();
        assert_eq!(tr.len(), 1);
        assert_eq!(tr.answer(answered), Err(Code::ReplayedNonce));
        assert_eq!(tr.answer(cancelled), Err(Code::ReplayedNonce));
        assert_eq!(tr.answer(pending), Ok(t(2_000)));
        assert_eq!(tr.answer(pending), Err(Code::ReplayedNonce));
        assert_eq!(
            tr.answer(Nonce::from_value(pending.value() ^ 0x8000)),
            Err(Code::UnknownNonce)
        );
        // A fresh issue after the reboot never collides with remembered values.
        let mut r2 = rng(); // same seed as before the reboot: replays the same draws
        let n = tr.issue(&mut r2, t(4_000)).unwrap();
        assert!(n != answered && n != pending && n != cancelled);
    }

    fn decode_code(bytes: &[u8]) -> Result<Tracker, Code> {
        Tracker::decode(bytes).map_err(|e| {
            assert_eq!(e.context, "nonce tracker");
            assert!(e.offset <= bytes.len());
            e.code()
        })
    }

    #[test]
    fn every_truncation_is_rejected() {
        let bytes = encode(&busy_tracker());
        for len in 0..bytes.len() {
            assert!(decode_code(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for len in 9..bytes.len() {
            assert_eq!(
                decode_code(&bytes[..len]),
                Err(Code::RecordCorrupt),
                "{len}"
            );
        }
        assert!(decode_code(&bytes).is_ok());
        let empty = encode(&Tracker::new());
        for len in 0..empty.len() {
            assert_eq!(decode_code(&empty[..len]), Err(Code::RecordCorrupt));
        }
    }

    #[test]
    fn every_bit_flip_is_rejected() {
        for tr in [busy_tracker(), Tracker::new()] {
            let bytes = encode(&tr);
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut flipped = bytes.clone();
                    flipped[i] ^= 1 << bit;
                    assert!(decode_code(&flipped).is_err(), "byte {i} bit {bit}");
                }
            }
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let bytes = encode(&busy_tracker());
        let mut longer: heapless::Vec<u8, 2048> = bytes.clone();
        longer.push(0).unwrap();
        assert_eq!(decode_code(&longer), Err(Code::TrailingBytes));
        let err = Tracker::decode(&longer).unwrap_err();
        assert_eq!(err.offset, bytes.len());
    }

    /// Rewrites the checksum so a deliberately altered record passes the integrity check.
    fn reseal(bytes: &mut [u8]) {
        let body = bytes.len() - 4;
        let crc = crc32(&bytes[..body]);
        bytes[body..].copy_from_slice(&crc.to_le_bytes());
    }

    #[test]
    fn header_checks_have_their_own_codes() {
        let bytes = encode(&busy_tracker());

        let mut bad_magic = bytes.clone();
        bad_magic[..4].copy_from_slice(b"SLNU");
        reseal(&mut bad_magic);
        assert_eq!(decode_code(&bad_magic), Err(Code::RecordCorrupt));

        let mut newer = bytes.clone();
        newer[4] = 2;
        reseal(&mut newer);
        assert_eq!(decode_code(&newer), Err(Code::RecordFromNewerVersion));
        newer[4] = 255;
        reseal(&mut newer);
        assert_eq!(decode_code(&newer), Err(Code::RecordFromNewerVersion));

        let mut zero = bytes.clone();
        zero[4] = 0;
        reseal(&mut zero);
        assert_eq!(decode_code(&zero), Err(Code::RecordCorrupt));

        let mut bad_crc = bytes.clone();
        let last = bad_crc.len() - 1;
        bad_crc[last] ^= 0x40;
        assert_eq!(decode_code(&bad_crc), Err(Code::RecordCorrupt));

        assert_eq!(decode_code(b""), Err(Code::RecordCorrupt));
        assert_eq!(decode_code(b"SLNT"), Err(Code::RecordCorrupt));
        assert_eq!(decode_code(b"SLNT\x01\x00"), Err(Code::RecordCorrupt));
    }

    #[test]
    fn duplicate_nonces_are_rejected() {
        // outstanding: [5, 6], answered: [7]; then make duplicates and reseal.
        let mut tr = NonceTracker::<4, 4>::new();
        for v in [5u64, 6, 7] {
            tr.track(Nonce::from_value(v), t(v)).unwrap();
        }
        tr.answer(Nonce::from_value(7)).unwrap();
        let bytes = encode(&tr);
        assert!(NonceTracker::<4, 4>::decode(&bytes).is_ok());
        let (o2, a1) = (25, 41);

        for (at, value) in [(o2, 5u64), (a1, 5), (a1, 6)] {
            let mut dup = bytes.clone();
            dup[at..at + 8].copy_from_slice(&value.to_le_bytes());
            reseal(&mut dup);
            let err = NonceTracker::<4, 4>::decode(&dup).unwrap_err();
            assert_eq!(err.code(), Code::RecordCorrupt, "dup at {at}");
            assert_eq!(err.offset, at);
        }

        // Two answered entries with the same value.
        let mut tr = NonceTracker::<4, 4>::new();
        for v in [5u64, 6] {
            tr.track(Nonce::from_value(v), t(v)).unwrap();
            tr.answer(Nonce::from_value(v)).unwrap();
        }
        let mut dup = encode(&tr);
        dup[17..25].copy_from_slice(&5u64.to_le_bytes());
        reseal(&mut dup);
        assert_eq!(
            NonceTracker::<4, 4>::decode(&dup).map_err(|e| e.code()),
            Err(Code::RecordCorrupt)
        );
    }

    #[test]
    fn counts_above_capacity_are_rejected() {
        let bytes = encode(&busy_tracker()); // 5 outstanding, 32 answered
        assert_eq!(
            NonceTracker::<4, 32>::decode(&bytes).map_err(|e| e.code()),
            Err(Code::CapacityExceeded)
        );
        assert_eq!(
            NonceTracker::<16, 31>::decode(&bytes).map_err(|e| e.code()),
            Err(Code::CapacityExceeded)
        );
        assert_eq!(
            NonceTracker::<0, 0>::decode(&bytes).map_err(|e| e.code()),
            Err(Code::CapacityExceeded)
        );
        // A larger tracker takes it, and it behaves the same.
        let big = NonceTracker::<64, 64>::decode(&bytes).unwrap();
        assert_eq!(big.len(), 5);
        assert_eq!(big.answered_len(), 32);
        assert!(big.answered().eq(busy_tracker().answered()));

        // Huge counts in a short record: capacity is checked before length.
        let mut huge = [0u8; 13];
        huge[..5].copy_from_slice(b"SLNT\x01");
        huge[5..9].copy_from_slice(&[0xff, 0xff, 0xff, 0xff]);
        assert_eq!(decode_code(&huge), Err(Code::CapacityExceeded));
    }

    #[test]
    fn random_inputs_never_panic() {
        let mut r = ChaCha20Rng::seed_from_u64(99);
        let valid = encode(&busy_tracker());
        let mut buf = [0u8; 600];
        for round in 0..20_000u32 {
            let len = (r.next_u32() as usize) % buf.len();
            if round % 2 == 0 {
                // Pure noise, sometimes with a valid header.
                r.fill_bytes(&mut buf[..len]);
                if round % 4 == 0 && len >= 9 {
                    buf[..5].copy_from_slice(b"SLNT\x01");
                }
                let _ = Tracker::decode(&buf[..len]);
                let _ = NonceTracker::<0, 0>::decode(&buf[..len]);
                let _ = NonceTracker::<1, 1>::decode(&buf[..len]);
            } else {
                // Mutations of a valid record: several random byte writes, maybe resealed.
                let mut m = valid.clone();
                for _ in 0..1 + r.next_u32() % 4 {
                    let i = (r.next_u32() as usize) % m.len();
                    m[i] = r.next_u32() as u8;
                }
                if round % 3 == 0 {
                    reseal(&mut m);
                }
                if let Ok(tr) = Tracker::decode(&m) {
                    // Anything accepted re-encodes to the same bytes.
                    assert_eq!(encode(&tr), m);
                }
            }
        }
    }
}
