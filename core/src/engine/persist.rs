//! Persistence records: what the engine must find again after a reboot, cut into independent
//! records so that a driver can write each one atomically on its own.
//!
//! | record     | holds                                                                      |
//! |------------|----------------------------------------------------------------------------|
//! | `Trust`    | product instance, per unit: key handle and the signed trust code as received |
//! | `Policy`   | the installed policy with per-attribute origins, its name and install time |
//! | `Usage`    | counts per tag, open reports, pending sub-device changes, report id counter, first use |
//! | `Reports`  | closed reports as their signed bytes, with state and rejection reason      |
//! | `Nonces`   | outstanding and answered nonces (the `SLNT` format of [`crate::nonce`])     |
//! | `Schedule` | clock high-water mark, report/sample/warning times, last ACK, poll, HELLO  |
//!
//! The driver's loop, after every call into the engine:
//!
//! ```text
//! for record in engine.changed().iter() {               // digest differs from what was saved
//!     let n = engine.write_record(record, &mut buf)?;
//!     storage.write_atomically(record, &buf[..n])?;   // old or new, never mixed
//!     engine.mark_saved(record);
//! }
//! ```
//!
//! Save before acting on the engine's output: before sending a transmit (its nonce is in
//! `Nonces`), before handing out a usage file, and after an answer is applied (an ACK prunes
//! `Reports`). At boot: [`Engine::new`], then [`Engine::restore_record`] for every record
//! found, then [`Engine::finish_restore`]. A record that does not restore is reported by an
//! event and leaves that part in its fresh state; the others are unaffected.
//!
//! Frame (little-endian): `b"SL"`, record id, format version, body, CRC-32 (IEEE) of all
//! preceding bytes. The frame never changes; a version above [`FORMAT_VERSION`] is refused
//! with [`Code::RecordFromNewerVersion`], never misread. Trust is believed only if every
//! trust code's signature verifies against the configured trust anchor and binds the key its
//! handle names, not merely because the checksum matches. Change detection is by digest: the
//! engine encodes each record into a 64-bit FNV-1a digest (not the CRC: see [`fnv1a`]) and
//! compares it with the digest of what was last saved, so no code path can forget to mark a
//! change.

use rand_core::{CryptoRng, RngCore};

use crate::diag::event::EventKind;
use crate::error::Code;
use crate::msg::policy::{Origin, ResolvedPolicy};
use crate::nonce::{crc32_finish, crc32_update, NonceTracker, CRC_INIT};
use crate::types::{ReportId, Scope, Timestamp};

use super::reports::ReportState;
use super::trust::{KeyProvider, PendingKeys, MAX_KEY_HANDLE_LEN};
use super::usage::CloseReason;
use super::{Engine, PendingTrust, PolicyState};

/// Frame magic.
pub const MAGIC: [u8; 2] = *b"SL";
/// Format version written. Version 2 added the pending trust establishment to the trust
/// record; version 1 records are still read (their trust record has no pending section).
pub const FORMAT_VERSION: u8 = 2;
/// Frame bytes around a body: magic, id, version, CRC.
pub const FRAME_LEN: usize = 8;

/// One persistence record. The discriminant is its stable id on storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Record {
    /// Installed trust (key handles and signed trust codes) and a trust establishment under
    /// way (its key handles, token and retry time), so that a reboot can resend it.
    Trust = 1,
    /// The installed policy.
    Policy = 2,
    /// Counters and open reports.
    Usage = 3,
    /// Closed reports.
    Reports = 4,
    /// Outstanding and answered nonces.
    Nonces = 5,
    /// Clock high-water mark and timers.
    Schedule = 6,
}

impl Record {
    /// Every record, in restore order.
    pub const ALL: [Record; 6] = [
        Record::Trust,
        Record::Policy,
        Record::Usage,
        Record::Reports,
        Record::Nonces,
        Record::Schedule,
    ];

    /// The record with stable id `id`.
    pub const fn from_id(id: u8) -> Option<Record> {
        match id {
            1 => Some(Record::Trust),
            2 => Some(Record::Policy),
            3 => Some(Record::Usage),
            4 => Some(Record::Reports),
            5 => Some(Record::Nonces),
            6 => Some(Record::Schedule),
            _ => None,
        }
    }

    /// Its stable id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// A short name, for file names and logs.
    pub const fn name(self) -> &'static str {
        match self {
            Record::Trust => "trust",
            Record::Policy => "policy",
            Record::Usage => "usage",
            Record::Reports => "reports",
            Record::Nonces => "nonces",
            Record::Schedule => "schedule",
        }
    }

    /// What the device lost when this record could not be restored (the event's detail).
    const fn lost(self) -> &'static str {
        match self {
            Record::Trust => "trust record lost: establish trust again",
            Record::Policy => "policy record lost: Cisco default policy in force",
            Record::Usage => "usage record lost: counts restart from zero",
            Record::Reports => "reports record lost: unacknowledged reports dropped",
            Record::Nonces => "nonces record lost: pending answers will be refused",
            Record::Schedule => "schedule record lost: timers restart now",
        }
    }

    pub(crate) const fn index(self) -> usize {
        self as usize - 1
    }
}

/// A set of records.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Records(u8);

impl Records {
    /// No record.
    pub const EMPTY: Records = Records(0);

    /// Adds `r`.
    pub fn insert(&mut self, r: Record) {
        self.0 |= 1 << r.index();
    }

    /// `true` if `r` is in the set.
    pub const fn contains(self, r: Record) -> bool {
        self.0 & (1 << r.index()) != 0
    }

    /// `true` if the set is empty.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The records in the set, in restore order.
    pub fn iter(self) -> impl Iterator<Item = Record> {
        Record::ALL.into_iter().filter(move |r| self.contains(*r))
    }
}

/// Writes a frame body: into a buffer, or (without one) only into the running CRC and
/// digest, which is how [`Engine::changed`] compares the current state with what was saved.
pub(crate) struct Out<'b> {
    buf: Option<&'b mut [u8]>,
    len: usize,
    crc: u32,
    digest: u64,
}

/// FNV-1a (64-bit) offset basis and prime.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Change detection cannot use the frame's CRC-32: the nonce record ends with the tracker's
/// own CRC-32 of its bytes, and a CRC over data followed by its CRC is the same for all data
/// of one length. Every nonce table of one size had the same frame CRC, so a change that kept
/// the size (a nonce issued and cancelled, one expired and one issued) went unsaved. FNV-1a is
/// not linear over GF(2), so no embedded CRC cancels out of it.
fn fnv1a(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h = (h ^ u64::from(*b)).wrapping_mul(FNV_PRIME);
    }
    h
}

impl Out<'_> {
    pub(crate) fn put(&mut self, bytes: &[u8]) -> Result<(), Code> {
        let end = self
            .len
            .checked_add(bytes.len())
            .ok_or(Code::BufferTooSmall)?;
        if let Some(buf) = self.buf.as_deref_mut() {
            buf.get_mut(self.len..end)
                .ok_or(Code::BufferTooSmall)?
                .copy_from_slice(bytes);
        }
        self.crc = crc32_update(self.crc, bytes);
        self.digest = fnv1a(self.digest, bytes);
        self.len = end;
        Ok(())
    }
    pub(crate) fn u8(&mut self, v: u8) -> Result<(), Code> {
        self.put(&[v])
    }
    pub(crate) fn bool(&mut self, v: bool) -> Result<(), Code> {
        self.u8(u8::from(v))
    }
    pub(crate) fn u16(&mut self, v: u16) -> Result<(), Code> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn u32(&mut self, v: u32) -> Result<(), Code> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn u64(&mut self, v: u64) -> Result<(), Code> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn i64(&mut self, v: i64) -> Result<(), Code> {
        self.put(&v.to_le_bytes())
    }
    pub(crate) fn time(&mut self, t: Timestamp) -> Result<(), Code> {
        self.u64(t.0)
    }
    pub(crate) fn opt_time(&mut self, t: Option<Timestamp>) -> Result<(), Code> {
        self.bool(t.is_some())?;
        self.u64(t.map_or(0, |t| t.0))
    }
    /// A count of items that must fit a byte.
    pub(crate) fn count(&mut self, n: usize) -> Result<(), Code> {
        self.u8(u8::try_from(n).map_err(|_| Code::CapacityExceeded)?)
    }
    /// Up to 255 bytes, length-prefixed.
    pub(crate) fn short(&mut self, bytes: &[u8]) -> Result<(), Code> {
        self.count(bytes.len())?;
        self.put(bytes)
    }
    /// Up to 65,535 bytes, length-prefixed.
    pub(crate) fn long(&mut self, bytes: &[u8]) -> Result<(), Code> {
        self.u16(u16::try_from(bytes.len()).map_err(|_| Code::CapacityExceeded)?)?;
        self.put(bytes)
    }
}

/// Reads a frame body; running short or meeting an impossible value is `RecordCorrupt`.
pub(crate) struct In<'b> {
    bytes: &'b [u8],
    pos: usize,
}

impl<'b> In<'b> {
    pub(crate) fn take(&mut self, n: usize) -> Result<&'b [u8], Code> {
        let end = self.pos.checked_add(n).ok_or(Code::RecordCorrupt)?;
        let s = self.bytes.get(self.pos..end).ok_or(Code::RecordCorrupt)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], Code> {
        self.take(N)?.try_into().map_err(|_| Code::RecordCorrupt)
    }
    pub(crate) fn u8(&mut self) -> Result<u8, Code> {
        Ok(u8::from_le_bytes(self.array()?))
    }
    pub(crate) fn bool(&mut self) -> Result<bool, Code> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Code::RecordCorrupt),
        }
    }
    pub(crate) fn u16(&mut self) -> Result<u16, Code> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, Code> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u64(&mut self) -> Result<u64, Code> {
        Ok(u64::from_le_bytes(self.array()?))
    }
    pub(crate) fn i64(&mut self) -> Result<i64, Code> {
        Ok(i64::from_le_bytes(self.array()?))
    }
    pub(crate) fn time(&mut self) -> Result<Timestamp, Code> {
        self.u64().map(Timestamp)
    }
    pub(crate) fn opt_time(&mut self) -> Result<Option<Timestamp>, Code> {
        let some = self.bool()?;
        let t = self.time()?;
        Ok(some.then_some(t))
    }
    pub(crate) fn count(&mut self) -> Result<usize, Code> {
        self.u8().map(usize::from)
    }
    pub(crate) fn short(&mut self) -> Result<&'b [u8], Code> {
        let n = self.count()?;
        self.take(n)
    }
    pub(crate) fn short_str(&mut self) -> Result<&'b str, Code> {
        core::str::from_utf8(self.short()?).map_err(|_| Code::RecordCorrupt)
    }
    pub(crate) fn long(&mut self) -> Result<&'b [u8], Code> {
        let n = usize::from(self.u16()?);
        self.take(n)
    }
    /// Everything must have been read.
    pub(crate) fn end(&self) -> Result<(), Code> {
        if self.pos == self.bytes.len() {
            Ok(())
        } else {
            Err(Code::RecordCorrupt)
        }
    }
}

/// Frames `body` as record `r`: into `buf`, or only through the CRC and digest when `buf` is
/// `None`. Returns the frame's length and digest.
fn frame(
    r: Record,
    buf: Option<&mut [u8]>,
    body: impl FnOnce(&mut Out<'_>) -> Result<(), Code>,
) -> Result<(usize, u64), Code> {
    let mut out = Out {
        buf,
        len: 0,
        crc: CRC_INIT,
        digest: FNV_OFFSET,
    };
    out.put(&MAGIC)?;
    out.u8(r.id())?;
    out.u8(FORMAT_VERSION)?;
    body(&mut out)?;
    let crc = crc32_finish(out.crc);
    out.u32(crc)?;
    Ok((out.len, out.digest))
}

/// Checks a frame's magic, version and CRC and says which record it is, with its CRC (a
/// storage layer can file a record without restoring it).
pub fn open(bytes: &[u8]) -> Result<(Record, u32), Code> {
    open_body(bytes).map(|(r, _, _, crc)| (r, crc))
}

fn open_body(bytes: &[u8]) -> Result<(Record, u8, In<'_>, u32), Code> {
    if bytes.len() < FRAME_LEN {
        return Err(Code::RecordCorrupt);
    }
    let (covered, trailer) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(trailer.try_into().map_err(|_| Code::RecordCorrupt)?);
    let crc = crc32_finish(crc32_update(CRC_INIT, covered));
    if stored != crc {
        return Err(Code::RecordCorrupt);
    }
    let mut inp = In {
        bytes: covered,
        pos: 0,
    };
    if inp.take(2)? != MAGIC {
        return Err(Code::RecordCorrupt);
    }
    let id = inp.u8()?;
    let version = inp.u8()?;
    if version == 0 {
        return Err(Code::RecordCorrupt);
    }
    // A checksummed frame from a newer format (or of a record kind this build does not know)
    // was written by newer firmware: refuse it by name rather than misread it.
    if version > FORMAT_VERSION {
        return Err(Code::RecordFromNewerVersion);
    }
    let r = Record::from_id(id).ok_or(Code::RecordFromNewerVersion)?;
    Ok((r, version, inp, crc))
}

const fn origin_id(o: Origin) -> u8 {
    match o {
        Origin::CiscoDefault => 0,
        Origin::Customer => 1,
    }
}

fn origin_from(id: u8) -> Result<Origin, Code> {
    match id {
        0 => Ok(Origin::CiscoDefault),
        1 => Ok(Origin::Customer),
        _ => Err(Code::RecordCorrupt),
    }
}

fn encode_policy(p: &PolicyState, out: &mut Out<'_>) -> Result<(), Code> {
    out.short(p.name.as_bytes())?;
    out.opt_time(p.installed_at)?;
    let (ack, ack_origin) = p.resolved.ack_required;
    out.bool(ack)?;
    out.u8(origin_id(ack_origin))?;
    for class in &p.resolved.classes {
        for (days, o) in class {
            out.u16(*days)?;
            out.u8(origin_id(*o))?;
        }
    }
    Ok(())
}

fn decode_policy(inp: &mut In<'_>) -> Result<PolicyState, Code> {
    let name = heapless::String::try_from(inp.short_str()?).map_err(|_| Code::RecordCorrupt)?;
    let installed_at = inp.opt_time()?;
    let ack_required = (inp.bool()?, origin_from(inp.u8()?)?);
    let mut resolved = ResolvedPolicy {
        ack_required,
        ..ResolvedPolicy::CISCO_DEFAULT
    };
    for class in resolved.classes.iter_mut() {
        for attr in class.iter_mut() {
            *attr = (inp.u16()?, origin_from(inp.u8()?)?);
        }
    }
    Ok(PolicyState {
        resolved,
        name,
        installed_at,
    })
}

/// A report's stored state. A report in an exchange that a reboot cut short goes out again; one
/// the service took and answered with `OK_POLL` waits for the poll, as before the reboot.
const fn state_id(s: ReportState, polling: bool) -> u8 {
    match s {
        ReportState::Closed => 0,
        ReportState::Pending if polling => 2,
        ReportState::Pending => 0,
        ReportState::Rejected => 1,
    }
}

impl<K, R, const MEMBERS: usize> Engine<K, R, MEMBERS>
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    /// The records whose current state differs from what was last saved with
    /// [`Engine::mark_saved`] (or restored). A fresh engine reports all of them.
    pub fn changed(&self) -> Records {
        let mut set = Records::EMPTY;
        for r in Record::ALL {
            let saved = self.saved.get(r.index()).copied().flatten();
            if saved.is_none() || self.digest(r) != saved {
                set.insert(r);
            }
        }
        set
    }

    /// Writes record `r` into `buf` and returns its length. [`Code::BufferTooSmall`] if it
    /// does not fit ([`Engine::record_len`] says how much it needs).
    pub fn write_record(&self, r: Record, buf: &mut [u8]) -> Result<usize, Code> {
        frame(r, Some(buf), |out| self.encode_body(r, out)).map(|(len, _)| len)
    }

    /// The length [`Engine::write_record`] needs for `r` now.
    pub fn record_len(&self, r: Record) -> Result<usize, Code> {
        frame(r, None, |out| self.encode_body(r, out)).map(|(len, _)| len)
    }

    /// Record `r`, as last written, is safely stored.
    pub fn mark_saved(&mut self, r: Record) {
        let digest = self.digest(r);
        if let Some(slot) = self.saved.get_mut(r.index()) {
            *slot = digest;
        }
    }

    /// Record `r` may or may not be stored as last written (a save that failed after it was
    /// handed to the storage, which may have landed anyway): the next save writes it again,
    /// even if the state moves back to what was saved before.
    pub fn mark_unsaved(&mut self, r: Record) {
        if let Some(slot) = self.saved.get_mut(r.index()) {
            *slot = None;
        }
    }

    fn digest(&self, r: Record) -> Option<u64> {
        frame(r, None, |out| self.encode_body(r, out))
            .ok()
            .map(|(_, digest)| digest)
    }

    fn encode_body(&self, r: Record, out: &mut Out<'_>) -> Result<(), Code> {
        match r {
            Record::Trust => self.encode_trust(out),
            Record::Policy => encode_policy(&self.policy, out),
            Record::Usage => {
                out.opt_time(self.first_use)?;
                self.usage.encode(out)
            }
            Record::Reports => {
                out.count(self.reports.len())?;
                for rep in self.reports.iter() {
                    out.u64(rep.id.0)?;
                    out.count(rep.tag)?;
                    out.u8(state_id(rep.state, self.poll.is_some()))?;
                    out.u64(rep.closed_s)?;
                    out.short(rep.reason.as_bytes())?;
                    out.long(self.reports.bytes(rep))?;
                }
                Ok(())
            }
            Record::Nonces => self.nonces.emit(|bytes| out.put(bytes)),
            Record::Schedule => {
                out.time(self.clock.high_water())?;
                out.time(self.next_sample)?;
                out.time(self.next_report)?;
                out.time(self.next_warning)?;
                out.opt_time(self.last_ack)?;
                out.opt_time(self.hello_due)?;
                out.opt_time(self.poll.as_ref().map(|(at, _)| *at))?;
                out.short(self.poll.as_ref().map_or(&[][..], |(_, id)| id.as_bytes()))?;
                out.bool(self.report_now)?;
                out.bool(self.trust_sync_due)?;
                out.bool(self.comm_failing)
            }
        }
    }

    fn encode_trust(&self, out: &mut Out<'_>) -> Result<(), Code> {
        let units = self.trust.units();
        out.count(units.len())?;
        for u in units {
            let mut handle = [0u8; MAX_KEY_HANDLE_LEN];
            let n = self.keys.export(&u.key, &mut handle)?;
            out.u8(u.slot)?;
            out.time(u.installed_at)?;
            out.short(handle.get(..n).ok_or(Code::BufferTooSmall)?)?;
            out.long(&u.code)?;
        }
        // The establishment under way: its keys are already with the service once the request
        // left, so a reboot must resend it with the same keys (the service answers a resend
        // without spending a token use) rather than forget them.
        let Some(p) = self.pending_trust.as_ref() else {
            return out.bool(false);
        };
        out.bool(true)?;
        out.bool(p.keys.scope == Scope::All)?;
        out.bool(p.force)?;
        out.short(p.token.as_bytes())?;
        out.u32(p.failures)?;
        out.time(p.due)?;
        out.count(p.keys.keys.len())?;
        for (slot, key) in p.keys.keys.iter() {
            let mut handle = [0u8; MAX_KEY_HANDLE_LEN];
            let n = self.keys.export(key, &mut handle)?;
            out.u8(u8::try_from(*slot).map_err(|_| Code::CapacityExceeded)?)?;
            out.short(handle.get(..n).ok_or(Code::BufferTooSmall)?)?;
        }
        Ok(())
    }

    /// Restores record `r` from the bytes storage holds for it, right after [`Engine::new`]
    /// and before any other call. On success the record counts as saved. On failure (corrupt,
    /// another record's bytes, from a newer version, trust that no longer verifies) that part
    /// stays fresh, an event says what was lost, and the record counts as changed so that the
    /// driver overwrites it.
    pub fn restore_record(&mut self, now: Timestamp, r: Record, bytes: &[u8]) -> Result<(), Code> {
        let result = open_body(bytes).and_then(|(found, version, mut inp, _)| {
            if found != r {
                return Err(Code::RecordCorrupt);
            }
            self.apply_record(r, version, &mut inp)?;
            inp.end()
        });
        match result {
            Ok(()) => {
                if let Some(slot) = self.saved.get_mut(r.index()) {
                    *slot = Some(fnv1a(FNV_OFFSET, bytes));
                }
                Ok(())
            }
            Err(cause) => {
                self.reset_part(r);
                self.emit(now, EventKind::PlatformError { cause }, r.lost());
                Err(cause)
            }
        }
    }

    /// Record `r` exists on storage but could not be read (`cause`: an I/O error, a torn or
    /// newer storage structure): like a failed [`Engine::restore_record`], that part stays
    /// fresh, an event says what was lost, and the record counts as changed.
    pub fn record_unreadable(&mut self, now: Timestamp, r: Record, cause: Code) {
        self.reset_part(r);
        self.emit(now, EventKind::PlatformError { cause }, r.lost());
    }

    /// Ends a restore: checks `now` against the restored clock high-water mark (a clock set
    /// back while the device was off is a `SYSTEM_CLOCK_CHANGED`), skips the samples of the
    /// time the device was off, and closes the reports that were open when it went down
    /// (termination reason `ProductReload`).
    pub fn finish_restore(&mut self, now: Timestamp) {
        let now = self.check_restored_clock(now);
        // The exchange in flight at power-off died with it: its nonce, saved before the request
        // left, can never be answered now. Only a saved usage file's nonce still can (by
        // `import`), and the two cannot be told apart, so once half the table is taken the
        // oldest are given up (a late answer is then refused as a replay). Otherwise every
        // power cut during an exchange would leave one more nonce behind until none could be
        // issued and the device never spoke to the service again.
        while self.nonces.len() > crate::nonce::DEFAULT_OUTSTANDING / 2 {
            let oldest = self
                .nonces
                .outstanding()
                .min_by_key(|(_, at)| *at)
                .map(|(n, _)| n);
            match oldest {
                Some(n) => {
                    self.nonces.cancel(n);
                }
                None => break,
            }
        }
        let sample = super::secs_ms(super::usage::SAMPLE_INTERVAL_S);
        if self.next_sample <= now {
            self.next_sample = now.add_millis(sample);
        }
        if self.trust.is_installed() {
            if let Err(e) = self.close_all(now, CloseReason::ProductReload) {
                let cause = e.code();
                self.emit(now, EventKind::PlatformError { cause }, "closing reports");
            }
        }
    }

    /// Ends a restore that is not a product reload: a host process that keeps the device's
    /// state on disk between commands (the `slup device` CLI) picks up where the last one
    /// stopped. Open reports stay open and the samples of the gap are taken as usual, since the
    /// product itself never stopped; only the clock is checked against the high-water mark.
    pub fn finish_resume(&mut self, now: Timestamp) {
        self.check_restored_clock(now);
    }

    /// A clock set back while nobody looked is a `SYSTEM_CLOCK_CHANGED`; time that passed is
    /// not (there was no deadline to miss). Returns the effective time.
    fn check_restored_clock(&mut self, now: Timestamp) -> Timestamp {
        let (now, change) = self.clock.observe(now, None);
        if let Some(c) = change {
            self.usage.clock_changed(c.delta_secs());
            self.emit(now, EventKind::SystemClockChanged, "");
        }
        now
    }

    fn apply_record(&mut self, r: Record, version: u8, inp: &mut In<'_>) -> Result<(), Code> {
        match r {
            Record::Trust => self.apply_trust(version, inp),
            Record::Policy => {
                self.policy = decode_policy(inp)?;
                Ok(())
            }
            Record::Usage => {
                self.first_use = inp.opt_time()?;
                self.usage.restore(inp)
            }
            Record::Reports => self.apply_reports(inp),
            Record::Nonces => {
                let rest = inp.take(inp.bytes.len().saturating_sub(inp.pos))?;
                self.nonces = NonceTracker::decode(rest).map_err(|e| e.code)?;
                Ok(())
            }
            Record::Schedule => {
                // Read everything first: a short record changes nothing.
                let high_water = inp.time()?;
                let next_sample = inp.time()?;
                let next_report = inp.time()?;
                let next_warning = inp.time()?;
                let last_ack = inp.opt_time()?;
                let hello_due = inp.opt_time()?;
                let poll_at = inp.opt_time()?;
                let poll_id = inp.short_str()?;
                let poll = match poll_at {
                    Some(at) => Some((
                        at,
                        heapless::String::try_from(poll_id).map_err(|_| Code::RecordCorrupt)?,
                    )),
                    None => None,
                };
                let flags = (inp.bool()?, inp.bool()?, inp.bool()?);
                self.clock = super::clock::ClockMonitor::new(high_water);
                self.next_sample = next_sample;
                self.next_report = next_report;
                self.next_warning = next_warning;
                self.last_ack = last_ack;
                self.hello_due = hello_due;
                self.poll = poll;
                (self.report_now, self.trust_sync_due, self.comm_failing) = flags;
                Ok(())
            }
        }
    }

    fn apply_trust(&mut self, version: u8, inp: &mut In<'_>) -> Result<(), Code> {
        let n = inp.count()?;
        let mut parts: heapless::Vec<(usize, Timestamp, K::Key, &[u8]), MEMBERS> =
            heapless::Vec::new();
        for _ in 0..n {
            let slot = usize::from(inp.u8()?);
            let installed_at = inp.time()?;
            let handle = inp.short()?;
            let code = inp.long()?;
            let key = self.keys.import(slot, handle)?;
            parts
                .push((slot, installed_at, key, code))
                .map_err(|_| Code::CapacityExceeded)?;
        }
        let pending = if version >= 2 {
            self.decode_pending_trust(inp)?
        } else {
            None
        };
        if parts.is_empty() {
            self.trust.clear();
        } else {
            let anchor = &self.config.trust_anchor;
            self.trust
                .restore(parts.into_iter(), anchor, &self.config.members)?;
        }
        self.pending_trust = pending;
        Ok(())
    }

    fn decode_pending_trust(
        &mut self,
        inp: &mut In<'_>,
    ) -> Result<Option<PendingTrust<K::Key, MEMBERS>>, Code> {
        if !inp.bool()? {
            return Ok(None);
        }
        let scope = if inp.bool()? {
            Scope::All
        } else {
            Scope::Local
        };
        let force = inp.bool()?;
        let token = core::str::from_utf8(inp.short()?).map_err(|_| Code::RecordCorrupt)?;
        let token = heapless::String::try_from(token).map_err(|_| Code::RecordCorrupt)?;
        let failures = inp.u32()?;
        let due = inp.time()?;
        let mut keys = heapless::Vec::new();
        for _ in 0..inp.count()? {
            let slot = usize::from(inp.u8()?);
            if slot >= self.config.members.len() {
                return Err(Code::RecordCorrupt);
            }
            let key = self.keys.import(slot, inp.short()?)?;
            keys.push((slot, key)).map_err(|_| Code::RecordCorrupt)?;
        }
        if keys.is_empty() {
            return Err(Code::RecordCorrupt);
        }
        Ok(Some(PendingTrust {
            keys: PendingKeys { keys, scope },
            token,
            force,
            failures,
            due,
        }))
    }

    fn apply_reports(&mut self, inp: &mut In<'_>) -> Result<(), Code> {
        self.reports.clear();
        for _ in 0..inp.count()? {
            let id = ReportId(inp.u64()?);
            let tag = inp.count()?;
            let state = match inp.u8()? {
                0 => ReportState::Closed,
                1 => ReportState::Rejected,
                2 => ReportState::Pending,
                _ => return Err(Code::RecordCorrupt),
            };
            let closed_s = inp.u64()?;
            let reason = core::str::from_utf8(inp.short()?).map_err(|_| Code::RecordCorrupt)?;
            let bytes = inp.long()?;
            let free = self.reports.free()?;
            free.get_mut(..bytes.len())
                .ok_or(Code::CapacityExceeded)?
                .copy_from_slice(bytes);
            self.reports.commit(id, tag, bytes.len(), closed_s)?;
            match state {
                ReportState::Rejected => {
                    self.reports.reject(id, reason.chars());
                }
                ReportState::Pending => {
                    self.reports.set_state(id, ReportState::Pending);
                }
                ReportState::Closed => {}
            }
        }
        Ok(())
    }

    /// Puts one part back in its fresh state after its record failed to restore.
    fn reset_part(&mut self, r: Record) {
        match r {
            Record::Trust => {
                self.trust.clear();
                self.pending_trust = None;
            }
            Record::Policy => self.policy = PolicyState::cisco_default(),
            Record::Usage => {
                self.first_use = None;
                self.usage.clear();
            }
            Record::Reports => self.reports.clear(),
            Record::Nonces => self.nonces = NonceTracker::new(),
            Record::Schedule => {}
        }
        self.mark_unsaved(r);
    }
}
