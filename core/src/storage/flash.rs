//! The engine's records on NOR flash, through `embedded-storage` and a `sequential-storage`
//! map. No heap: the caller lends a work buffer.
//!
//! Layout (all items of one `sequential-storage` map with `u16` keys):
//!
//! | key | item |
//! |---|---|
//! | `0x0000` | the manifest: for every record its current slot, and per slot length and CRC-32 |
//! | `id << 8 \| slot << 7 \| n` | chunk `n` of record `id` (1–6) in slot 0 or 1 |
//!
//! A record is cut into chunks of at most half a page, so that two fit a page and records of
//! any size up to 64 KiB fit any page size. A save writes every changed record into the slot
//! the manifest does not name, then writes the new manifest: that one item is the commit
//! point (see the module docs of [`crate::storage`]).
//!
//! Manifest (little-endian): `b"SM"`, format version, sequence number (u32), then for each
//! record id 1–6 the current slot (0, 1 or `0xFF` for none) and, for slot 0 and 1, the length
//! (u16) and the CRC-32 the frame last written there carries (see [`content_crc`]); then a
//! CRC-32 of all preceding bytes.

use core::ops::Range;

use embassy_futures::block_on;
use embedded_storage::nor_flash::{NorFlash, NorFlashError, NorFlashErrorKind};
use sequential_storage::cache::key_pointers::ArrayKeyPointers;
use sequential_storage::cache::page_states::CalculatedPageStates;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};

use super::Storage;
use crate::engine::persist::Record;
use crate::error::Code;
use crate::nonce::{crc32_finish, crc32_update, CRC_INIT};

/// Manifest magic.
const MAGIC: [u8; 2] = *b"SM";
/// Manifest format version written. Version 1 kept a CRC over each whole frame, which is the
/// same for every valid frame; a version-1 manifest reads as corrupt (no release wrote one).
pub const MANIFEST_VERSION: u8 = 2;
const MANIFEST_KEY: u16 = 0;
const ENTRY_LEN: usize = 1 + 2 * (2 + 4);
/// Bytes of an encoded manifest.
pub const MANIFEST_LEN: usize = 2 + 1 + 4 + Record::ALL.len() * ENTRY_LEN + 4;
/// Chunks per record and slot (the low 7 bits of a chunk key).
const MAX_CHUNKS: usize = 0x80;
/// Bytes of the key in front of every item.
const KEY_LEN: usize = 2;
const NO_SLOT: u8 = 0xFF;

/// A flash failure, as seen through the read-back check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashError<E> {
    /// The flash driver failed.
    Device(E),
    /// A write or erase reported success but reading back shows otherwise.
    Verify(u32),
}

impl<E: NorFlashError> NorFlashError for FlashError<E> {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashError::Device(e) => e.kind(),
            FlashError::Verify(_) => NorFlashErrorKind::Other,
        }
    }
}

/// A blocking flash seen as the async flash `sequential-storage` drives (every future is ready
/// at once), with every write and erase read back.
struct Verified<F>(F);

const VERIFY_CHUNK: usize = 256;

impl<F: NorFlash> Verified<F> {
    /// Reads `len` bytes at `offset` in pieces and checks each byte; `None` when the flash's
    /// read size does not allow piecewise reads (then nothing is checked).
    fn check(
        &mut self,
        offset: u32,
        len: usize,
        mut expect: impl FnMut(usize) -> u8,
    ) -> Result<(), FlashError<F::Error>> {
        let unit = F::READ_SIZE.max(1);
        let piece = (VERIFY_CHUNK / unit) * unit;
        if piece == 0 || !len.is_multiple_of(unit) || !(offset as usize).is_multiple_of(unit) {
            return Ok(());
        }
        let mut buf = [0u8; VERIFY_CHUNK];
        let mut done = 0usize;
        while done < len {
            let n = piece.min(len - done);
            let at = offset.saturating_add(done as u32);
            let part = buf.get_mut(..n).ok_or(FlashError::Verify(at))?;
            self.0.read(at, part).map_err(FlashError::Device)?;
            for (i, b) in part.iter().enumerate() {
                if *b != expect(done + i) {
                    return Err(FlashError::Verify(at.saturating_add(i as u32)));
                }
            }
            done += n;
        }
        Ok(())
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::ErrorType for Verified<F> {
    type Error = FlashError<F::Error>;
}

impl<F: NorFlash> embedded_storage_async::nor_flash::ReadNorFlash for Verified<F> {
    const READ_SIZE: usize = F::READ_SIZE;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(offset, bytes).map_err(FlashError::Device)
    }

    fn capacity(&self) -> usize {
        self.0.capacity()
    }
}

impl<F: NorFlash> embedded_storage_async::nor_flash::NorFlash for Verified<F> {
    const WRITE_SIZE: usize = F::WRITE_SIZE;
    const ERASE_SIZE: usize = F::ERASE_SIZE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        self.0.erase(from, to).map_err(FlashError::Device)?;
        self.check(from, to.saturating_sub(from) as usize, |_| 0xFF)
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        self.0.write(offset, bytes).map_err(FlashError::Device)?;
        self.check(offset, bytes.len(), |i| bytes.get(i).copied().unwrap_or(0))
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Slot {
    len: u16,
    crc: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    current: Option<u8>,
    slots: [Slot; 2],
}

const EMPTY_ENTRY: Entry = Entry {
    current: None,
    slots: [Slot { len: 0, crc: 0 }; 2],
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Manifest {
    seq: u32,
    entries: [Entry; Record::ALL.len()],
}

impl Manifest {
    const EMPTY: Manifest = Manifest {
        seq: 0,
        entries: [EMPTY_ENTRY; Record::ALL.len()],
    };

    fn entry(&self, r: Record) -> Entry {
        self.entries
            .get(usize::from(r.id()).saturating_sub(1))
            .copied()
            .unwrap_or(EMPTY_ENTRY)
    }

    fn entry_mut(&mut self, r: Record) -> Option<&mut Entry> {
        self.entries.get_mut(usize::from(r.id()).saturating_sub(1))
    }

    fn encode(&self) -> [u8; MANIFEST_LEN] {
        let mut out = [0u8; MANIFEST_LEN];
        let mut at = 0usize;
        let mut put = |bytes: &[u8]| {
            if let Some(dst) = out.get_mut(at..at + bytes.len()) {
                dst.copy_from_slice(bytes);
            }
            at += bytes.len();
        };
        put(&MAGIC);
        put(&[MANIFEST_VERSION]);
        put(&self.seq.to_le_bytes());
        for e in &self.entries {
            put(&[e.current.unwrap_or(NO_SLOT)]);
            for s in &e.slots {
                put(&s.len.to_le_bytes());
                put(&s.crc.to_le_bytes());
            }
        }
        let body = MANIFEST_LEN - 4;
        let crc = crc32(out.get(..body).unwrap_or_default());
        if let Some(dst) = out.get_mut(body..) {
            dst.copy_from_slice(&crc.to_le_bytes());
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Manifest, Code> {
        if bytes.len() < 2 + 1 + 4 + 4 {
            return Err(Code::RecordCorrupt);
        }
        let (body, trailer) = bytes.split_at(bytes.len() - 4);
        if crc32(body).to_le_bytes() != trailer {
            return Err(Code::RecordCorrupt);
        }
        if body.get(..2) != Some(&MAGIC[..]) {
            return Err(Code::RecordCorrupt);
        }
        match body.get(2).copied() {
            Some(MANIFEST_VERSION) => {}
            Some(v) if v > MANIFEST_VERSION => return Err(Code::RecordFromNewerVersion),
            _ => return Err(Code::RecordCorrupt),
        }
        if bytes.len() != MANIFEST_LEN {
            return Err(Code::RecordCorrupt);
        }
        let u16_at = |at: usize| -> Result<u16, Code> {
            let b = body.get(at..at + 2).ok_or(Code::RecordCorrupt)?;
            Ok(u16::from_le_bytes([b[0], b[1]]))
        };
        let u32_at = |at: usize| -> Result<u32, Code> {
            let b = body.get(at..at + 4).ok_or(Code::RecordCorrupt)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        let mut m = Manifest {
            seq: u32_at(3)?,
            ..Manifest::EMPTY
        };
        for (i, e) in m.entries.iter_mut().enumerate() {
            let at = 7 + i * ENTRY_LEN;
            e.current = match body.get(at).copied() {
                Some(NO_SLOT) => None,
                Some(s @ (0 | 1)) => Some(s),
                _ => return Err(Code::RecordCorrupt),
            };
            for (k, s) in e.slots.iter_mut().enumerate() {
                s.len = u16_at(at + 1 + k * 6)?;
                s.crc = u32_at(at + 3 + k * 6)?;
            }
            if let Some(cur) = e.current {
                let len = e.slots.get(usize::from(cur)).map_or(0, |s| s.len);
                if usize::from(len) < crate::engine::persist::FRAME_LEN {
                    return Err(Code::RecordCorrupt);
                }
            }
        }
        Ok(m)
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32_finish(crc32_update(CRC_INIT, bytes))
}

/// The CRC a record frame carries: that of all its bytes but the last four. (A CRC over the
/// whole frame, trailer included, is the same constant for every valid frame, so it would not
/// tell one version of a record from another.)
fn content_crc(frame: &[u8]) -> u32 {
    crc32(
        frame
            .get(..frame.len().saturating_sub(4))
            .unwrap_or_default(),
    )
}

fn chunk_key(r: Record, slot: u8, n: usize) -> u16 {
    (u16::from(r.id()) << 8) | (u16::from(slot & 1) << 7) | (n as u16 & 0x7F)
}

fn code<E>(e: sequential_storage::Error<E>) -> Code {
    match e {
        sequential_storage::Error::FullStorage | sequential_storage::Error::ItemTooBig => {
            Code::StorageFull
        }
        sequential_storage::Error::Corrupted { .. }
        | sequential_storage::Error::SerializationError(_) => Code::RecordCorrupt,
        sequential_storage::Error::BufferTooSmall(_) => Code::BufferTooSmall,
        _ => Code::StorageIo,
    }
}

/// Item locations remembered between reads (8 bytes each): enough for every chunk of every
/// record in both slots on pages of 1 KiB or more.
pub const KEY_CACHE: usize = 64;

type MapCache = Cache<CalculatedPageStates, Uncached, ArrayKeyPointers<u16, KEY_CACHE>, u16>;
type Map<F> = MapStorage<u16, Verified<F>, MapCache>;

// After a failed operation `sequential-storage` finds its cache marked dirty and rebuilds it.
fn new_cache(pages: usize) -> MapCache {
    Cache::new(
        CalculatedPageStates::new(pages),
        Uncached,
        ArrayKeyPointers::new(),
    )
}

/// The engine's records on a range of NOR flash. `W` is the work buffer: a `&mut [u8]` or an
/// array on a device, anything that lends a byte slice.
pub struct FlashStorage<F: NorFlash, W: AsMut<[u8]>> {
    /// Always `Some` between calls (taken only to rebuild it with a fresh cache).
    map: Option<Map<F>>,
    /// `sequential-storage`'s work buffer: one item, key included.
    work: W,
    chunk: usize,
    /// The manifest in force on flash; `None` until read (or after a failure, when the flash
    /// may hold either state).
    committed: Option<Manifest>,
    /// The manifest the next commit writes.
    pending: Option<Manifest>,
    /// The map's structure is beyond repair: the next save formats the range.
    unreadable: bool,
    range: Range<u32>,
    pages: usize,
    /// A range without a manifest was checked blank (or formatted).
    blank_checked: bool,
    /// Everything on the range was written by this storage since it was blank or formatted.
    own: bool,
    /// The manifest this mount last read or committed: once there is one, the engine may
    /// hold records as saved under it.
    known: Option<Manifest>,
    /// The manifest of a commit that failed (the flash may hold it or `known`).
    attempted: Option<Manifest>,
}

impl<F: NorFlash, W: AsMut<[u8]>> FlashStorage<F, W> {
    /// The work buffer needed for `F`'s geometry: one chunk item (see [`FlashStorage::new`]).
    pub const fn work_len() -> usize {
        Self::chunk_len() + KEY_LEN + F::WRITE_SIZE
    }

    /// Bytes of record per chunk: half a page, less the page-state words and item overhead.
    const fn chunk_len() -> usize {
        let room = F::ERASE_SIZE.saturating_sub(2 * F::WRITE_SIZE);
        let overhead = Map::<F>::item_overhead_size() as usize + KEY_LEN;
        let half = (room / 2).saturating_sub(overhead);
        let n = if half >= 32 {
            half
        } else {
            room.saturating_sub(overhead)
        };
        n / F::WRITE_SIZE * F::WRITE_SIZE
    }

    /// Storage on `range` of `flash` (whole pages, at least two), with `work` as the work
    /// buffer (at least [`FlashStorage::work_len`] bytes). Nothing is read before the first
    /// operation. [`Code::InvalidArgument`] for a range or page size the map cannot use.
    pub fn new(flash: F, range: Range<u32>, mut work: W) -> Result<Self, Code> {
        let pages = range.end.saturating_sub(range.start) as usize / F::ERASE_SIZE.max(1);
        let config =
            MapConfig::<Verified<F>>::try_new(range.clone()).map_err(|_| Code::InvalidArgument)?;
        let chunk = Self::chunk_len();
        let manifest_fits = MANIFEST_LEN + KEY_LEN + Map::<F>::item_overhead_size() as usize
            <= F::ERASE_SIZE.saturating_sub(2 * F::WRITE_SIZE);
        if chunk == 0 || !manifest_fits {
            return Err(Code::InvalidArgument);
        }
        if work.as_mut().len() < Self::work_len().max(MANIFEST_LEN + KEY_LEN + F::WRITE_SIZE) {
            return Err(Code::BufferTooSmall);
        }
        Ok(FlashStorage {
            map: Some(MapStorage::new(Verified(flash), config, new_cache(pages))),
            pages,
            work,
            chunk,
            committed: None,
            pending: None,
            unreadable: false,
            range,
            blank_checked: false,
            own: false,
            known: None,
            attempted: None,
        })
    }

    /// The flash (tests look at its wear; writing to it is at your own risk).
    pub fn flash(&mut self) -> Option<&mut F> {
        self.map.as_mut().map(|m| &mut m.flash().0)
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> Option<F> {
        self.map.map(|m| m.destroy().0 .0)
    }

    fn map(&mut self) -> Result<&mut Map<F>, Code> {
        self.map.as_mut().ok_or(Code::StorageIo)
    }

    /// Drops everything `sequential-storage` remembers about the flash (after an erase behind
    /// its back, its page and key caches would point at what is gone).
    fn forget(&mut self) -> Result<(), Code> {
        let config = MapConfig::<Verified<F>>::try_new(self.range.clone())
            .map_err(|_| Code::InvalidArgument)?;
        if let Some(map) = self.map.take() {
            let (flash, _) = map.destroy();
            self.map = Some(MapStorage::new(flash, config, new_cache(self.pages)));
        }
        Ok(())
    }

    /// `true` when this storage found the range blank or formatted it, so that everything on
    /// it was written here (rather than mounted from an image written elsewhere).
    pub fn own_structure(&self) -> bool {
        self.own
    }

    /// The sequence number of the manifest in force (0 before the first save).
    pub fn sequence(&mut self) -> Result<u32, Code> {
        self.manifest().map(|m| m.seq)
    }

    /// Erases the whole range.
    pub fn format(&mut self) -> Result<(), Code> {
        self.committed = None;
        self.pending = None;
        let erased = block_on(self.map()?.erase_all()).map_err(code);
        self.forget()?;
        erased?;
        self.committed = Some(Manifest::EMPTY);
        self.known = Some(Manifest::EMPTY);
        self.attempted = None;
        self.unreadable = false;
        self.blank_checked = true;
        self.own = true;
        Ok(())
    }

    /// The manifest in force, read from flash if needed.
    fn manifest(&mut self) -> Result<Manifest, Code> {
        if let Some(m) = self.committed {
            return Ok(m);
        }
        let Some(map) = self.map.as_mut() else {
            return Err(Code::StorageIo);
        };
        let m = match block_on(map.fetch_item::<&[u8]>(self.work.as_mut(), &MANIFEST_KEY)) {
            Ok(None) => Ok(Manifest::EMPTY),
            Ok(Some(bytes)) => Manifest::decode(bytes),
            Err(e) => Err(code(e)),
        };
        match (m, self.known) {
            // Read again after a failure: the flash holds the manifest this mount knew, or the
            // one whose commit failed. Anything else (none, an older one) means the map no
            // longer shows what it stored: refuse to build on it rather than commit a manifest
            // that forgets records the engine holds as saved.
            (Ok(m), Some(k)) if m != k && Some(m) != self.attempted => {
                self.unreadable = false;
                Err(Code::RecordCorrupt)
            }
            (Ok(m), _) => {
                self.committed = Some(m);
                self.known = Some(m);
                self.attempted = None;
                self.unreadable = false;
                Ok(m)
            }
            (Err(c), known) => {
                // A structure no repair can read, found before anything was read from it,
                // is formatted by the next save; I/O errors, newer formats, and a structure
                // that failed after this mount read it are left alone.
                self.unreadable = c == Code::RecordCorrupt && known.is_none();
                Err(c)
            }
        }
    }

    /// The manifest a save starts from: the one in force, or an empty one after formatting
    /// an unreadable range, or a range that holds no manifest but is not blank (someone
    /// else's data, or garbage: nothing of ours can be lost, and `sequential-storage` must
    /// not build on a structure it did not write).
    fn base(&mut self) -> Result<Manifest, Code> {
        match self.manifest() {
            Ok(m) if m == Manifest::EMPTY && !self.blank_checked => {
                if self.blank()? {
                    self.own = true;
                } else {
                    self.format()?;
                }
                self.blank_checked = true;
                Ok(Manifest::EMPTY)
            }
            Ok(m) => Ok(m),
            // Only while nothing was read from this range: once a manifest was, the engine
            // counts its records as saved, and formatting would lose them without a word.
            Err(Code::RecordCorrupt) if self.unreadable && self.known.is_none() => {
                self.format()?;
                Ok(Manifest::EMPTY)
            }
            Err(c) => Err(c),
        }
    }

    /// `true` if every byte of the range reads erased.
    fn blank(&mut self) -> Result<bool, Code> {
        let unit = F::READ_SIZE.max(1);
        let piece = (VERIFY_CHUNK / unit) * unit;
        if piece == 0 {
            return Ok(false);
        }
        let mut buf = [0u8; VERIFY_CHUNK];
        let mut at = self.range.start;
        while at < self.range.end {
            let n = piece.min((self.range.end - at) as usize);
            let part = buf.get_mut(..n).ok_or(Code::StorageIo)?;
            self.map()?
                .flash()
                .0
                .read(at, part)
                .map_err(|_| Code::StorageIo)?;
            if part.iter().any(|b| *b != 0xFF) {
                return Ok(false);
            }
            at = at.saturating_add(n as u32);
        }
        Ok(true)
    }

    fn store(&mut self, key: u16, value: &[u8]) -> Result<(), Code> {
        let Some(map) = self.map.as_mut() else {
            return Err(Code::StorageIo);
        };
        block_on(map.store_item(self.work.as_mut(), &key, &value)).map_err(code)
    }

    fn fail<T>(&mut self, c: Code) -> Result<T, Code> {
        // The flash may now hold either state: read the manifest again before going on.
        self.committed = None;
        self.pending = None;
        Err(c)
    }
}

impl<F: NorFlash, W: AsMut<[u8]>> Storage for FlashStorage<F, W> {
    fn read(&mut self, r: Record, buf: &mut [u8]) -> Result<Option<usize>, Code> {
        let m = self.manifest()?;
        let e = m.entry(r);
        let Some(slot) = e.current else {
            return Ok(None);
        };
        let s = e
            .slots
            .get(usize::from(slot))
            .copied()
            .ok_or(Code::RecordCorrupt)?;
        let len = usize::from(s.len);
        if len.div_ceil(self.chunk) > MAX_CHUNKS {
            // No save writes that many chunks: the manifest is not ours.
            return Err(Code::RecordCorrupt);
        }
        let out = buf.get_mut(..len).ok_or(Code::BufferTooSmall)?;
        for (n, part) in out.chunks_mut(self.chunk).enumerate() {
            let key = chunk_key(r, slot, n);
            let Some(map) = self.map.as_mut() else {
                return Err(Code::StorageIo);
            };
            let found =
                block_on(map.fetch_item::<&[u8]>(self.work.as_mut(), &key)).map_err(code)?;
            match found {
                Some(bytes) if bytes.len() == part.len() => part.copy_from_slice(bytes),
                _ => return Err(Code::RecordCorrupt),
            }
        }
        if content_crc(out) != s.crc {
            return Err(Code::RecordCorrupt);
        }
        Ok(Some(len))
    }

    fn stage(&mut self, r: Record, frame: &[u8]) -> Result<(), Code> {
        let committed = match self.base() {
            Ok(m) => m,
            Err(c) => return self.fail(c),
        };
        let len = u16::try_from(frame.len()).map_err(|_| Code::StorageFull)?;
        let chunks = frame.len().div_ceil(self.chunk);
        if chunks > MAX_CHUNKS {
            return Err(Code::StorageFull);
        }
        // The slot the manifest in force does not name: never the one a reader would use.
        let old = committed.entry(r);
        let slot = old.current.map_or(0, |s| s ^ 1);
        let chunk = self.chunk;
        for (n, part) in frame.chunks(chunk).enumerate() {
            if let Err(c) = self.store(chunk_key(r, slot, n), part) {
                return self.fail(c);
            }
        }
        // Empty the chunks a longer earlier version left in this slot (space, not safety:
        // nothing reads past the length in the manifest).
        let was = old
            .slots
            .get(usize::from(slot))
            .map_or(0, |s| usize::from(s.len).div_ceil(chunk));
        for n in chunks..was.min(MAX_CHUNKS) {
            if let Err(c) = self.store(chunk_key(r, slot, n), &[]) {
                return self.fail(c);
            }
        }
        let mut next = self.pending.unwrap_or(committed);
        if let Some(e) = next.entry_mut(r) {
            e.current = Some(slot);
            if let Some(s) = e.slots.get_mut(usize::from(slot)) {
                *s = Slot {
                    len,
                    crc: content_crc(frame),
                };
            }
        }
        self.pending = Some(next);
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Code> {
        let Some(mut next) = self.pending.take() else {
            return Ok(());
        };
        next.seq = next.seq.wrapping_add(1);
        let bytes = next.encode();
        match self.store(MANIFEST_KEY, &bytes) {
            Ok(()) => {
                self.committed = Some(next);
                self.known = Some(next);
                self.attempted = None;
                Ok(())
            }
            Err(c) => {
                self.attempted = Some(next);
                self.fail(c)
            }
        }
    }

    fn discard(&mut self) {
        self.pending = None;
    }

    fn wipe(&mut self) -> Result<(), Code> {
        self.format()
    }
}

#[cfg(all(test, feature = "fault-injection"))]
mod tests {
    use super::*;
    use crate::storage::fault::{FaultFlash, FlashFault, Torn};

    type F = FaultFlash<4, 512>;

    fn frame(r: Record, len: usize, fill: u8) -> std::vec::Vec<u8> {
        // The storage layer files bytes; a real frame is not needed here.
        let mut v = std::vec![fill; len];
        v[0] = r.id();
        v
    }

    #[test]
    fn records_round_trip_across_chunks_and_slots() {
        let mut work = [0u8; 512];
        let mut s = FlashStorage::new(F::new(16), 0..16 * 512, &mut work).unwrap();
        let mut buf = [0u8; 4096];
        assert_eq!(s.read(Record::Trust, &mut buf), Ok(None));
        for round in 0..20u8 {
            let a = frame(Record::Trust, 100 + usize::from(round) * 37, round);
            let b = frame(Record::Reports, 1500 - usize::from(round) * 50, !round);
            s.stage(Record::Trust, &a).unwrap();
            s.stage(Record::Reports, &b).unwrap();
            s.commit().unwrap();
            assert_eq!(s.read(Record::Trust, &mut buf), Ok(Some(a.len())));
            assert_eq!(&buf[..a.len()], &a[..]);
            // A new mount reads the same.
            let flash = s.into_flash().unwrap();
            s = FlashStorage::new(flash, 0..16 * 512, &mut work).unwrap();
            assert_eq!(s.read(Record::Reports, &mut buf), Ok(Some(b.len())));
            assert_eq!(&buf[..b.len()], &b[..]);
            assert_eq!(s.sequence(), Ok(u32::from(round) + 1));
        }
        // Staged but not committed: invisible.
        s.stage(Record::Trust, &frame(Record::Trust, 64, 0xAB))
            .unwrap();
        s.discard();
        let n = s.read(Record::Trust, &mut buf).unwrap().unwrap();
        assert_eq!(buf[1], 19);
        assert_eq!(n, 100 + 19 * 37);
    }

    #[test]
    fn a_cut_anywhere_in_a_save_leaves_old_or_new_for_every_record() {
        let mut work = [0u8; 512];
        let mut s = FlashStorage::new(F::new(8), 0..8 * 512, &mut work).unwrap();
        s.stage(Record::Usage, &frame(Record::Usage, 300, 1))
            .unwrap();
        s.stage(Record::Schedule, &frame(Record::Schedule, 90, 1))
            .unwrap();
        s.commit().unwrap();
        let base = s.into_flash().unwrap();
        let start = base.traffic();
        let mut cuts = 0;
        loop {
            let mut flash = base.clone();
            flash.cut_at(start + cuts);
            let mut s = FlashStorage::new(flash, 0..8 * 512, &mut work).unwrap();
            let done = s
                .stage(Record::Usage, &frame(Record::Usage, 700, 2))
                .and_then(|_| s.stage(Record::Schedule, &frame(Record::Schedule, 90, 2)))
                .and_then(|_| s.commit());
            let mut flash = s.into_flash().unwrap();
            let finished = flash.powered();
            flash.power_on();
            let mut s = FlashStorage::new(flash, 0..8 * 512, &mut work).unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(Record::Usage, &mut buf).unwrap().unwrap();
            let usage = (n, buf[1]);
            let n = s.read(Record::Schedule, &mut buf).unwrap().unwrap();
            let schedule = (n, buf[1]);
            assert!(
                (usage == (300, 1) && schedule == (90, 1))
                    || (usage == (700, 2) && schedule == (90, 2)),
                "cut {cuts}: {usage:?} {schedule:?}"
            );
            if finished {
                assert_eq!(done, Ok(()));
                break;
            }
            assert_eq!(done, Err(Code::StorageIo));
            cuts += 1;
        }
        assert!(cuts > 800, "{cuts}");
    }

    /// Saves of records of random sizes on a flash losing power in one save in eight, torn
    /// `torn`-wise: after every reboot each record reads as its last committed or its
    /// attempted frame, and a save with the power on never fails.
    fn cut_storm(torn: Torn, seed: u64, saves: u32) {
        use crate::storage::fault::WriteCheck;
        type R = FaultFlash<8, 1024>;
        const PAGES: usize = 24;
        let mut x = seed | 1;
        let mut rnd = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n.max(1)
        };
        let mount = |f: R| {
            let work = std::vec![0u8; FlashStorage::<R, std::vec::Vec<u8>>::work_len()];
            FlashStorage::new(f, 0..(PAGES * 1024) as u32, work).unwrap()
        };
        let flash = R::new(PAGES)
            .with_check(WriteCheck::OnceThenZeros)
            .with_torn(torn)
            .with_seed(seed);
        let mut s = mount(flash);
        let mut committed: std::collections::BTreeMap<u8, std::vec::Vec<u8>> = Default::default();
        let mut buf = std::vec![0u8; 8192];
        for i in 0..saves {
            let cut = rnd(8) == 0;
            if cut {
                let at = rnd(6000);
                s.flash().unwrap().cut_after(at);
            }
            let mut attempt = committed.clone();
            let mut result = Ok(());
            for r in Record::ALL {
                if result.is_ok() && rnd(3) == 0 {
                    let len = if r == Record::Reports {
                        64 + rnd(4000)
                    } else {
                        16 + rnd(600)
                    } as usize;
                    let f = frame(r, len, i as u8);
                    result = s.stage(r, &f);
                    attempt.insert(r.id(), f);
                }
            }
            match result.and_then(|()| s.commit()) {
                Ok(()) => committed = attempt.clone(),
                Err(c) => {
                    s.discard();
                    assert!(!s.flash().unwrap().powered(), "save {i} failed: {c:?}");
                }
            }
            if cut {
                let mut f = s.into_flash().unwrap();
                f.disarm();
                if !f.powered() {
                    f.power_on();
                }
                s = mount(f);
                // For each record the save changed: did the new frame land?
                let landed: std::vec::Vec<bool> = Record::ALL
                    .into_iter()
                    .filter_map(|r| {
                        let got = s
                            .read(r, &mut buf)
                            .unwrap_or_else(|c| panic!("save {i}: read {r:?}: {c:?}"))
                            .map(|n| &buf[..n]);
                        let old = committed.get(&r.id()).map(|v| &v[..]);
                        let new = attempt.get(&r.id()).map(|v| &v[..]);
                        if old != new && got == new {
                            return Some(true);
                        }
                        assert_eq!(got, old, "save {i}: {r:?} neither old nor new");
                        (old != new).then_some(false)
                    })
                    .collect();
                assert!(
                    landed.windows(2).all(|w| w[0] == w[1]),
                    "save {i}: records mixed: {landed:?}"
                );
                if landed.first() == Some(&true) {
                    committed = attempt;
                }
            }
        }
    }

    #[test]
    fn cut_storm_with_prefix_tears() {
        cut_storm(Torn::Prefix, 7, 3_000);
    }

    #[test]
    fn cut_storm_with_scattered_tears() {
        cut_storm(Torn::Scatter, 8, 3_000);
    }

    #[test]
    fn geometry_is_checked() {
        let mut work = [0u8; 512];
        assert!(FlashStorage::new(F::new(4), 0..512, &mut work).is_err());
        assert!(FlashStorage::new(F::new(4), 100..1024, &mut work).is_err());
        let mut small = [0u8; 16];
        assert_eq!(
            FlashStorage::new(F::new(4), 0..2048, &mut small).err(),
            Some(Code::BufferTooSmall)
        );
        let _ = FlashFault::PowerLost;
    }
}
