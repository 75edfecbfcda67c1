//! A NOR flash for tests that loses power where it is told to and misbehaves on request.
//!
//! [`FaultFlash`] models what the storage layer must survive (`../shared/research/reliability.md`
//! §2, after sequential-storage's mock flash, littlefs' emulated block device and ekv's flash
//! contract):
//!
//! - NOR semantics: an erase sets a page to `0xFF`, a write can only clear bits (the cell
//!   becomes `old & new`), and a word may be written once per erase ([`WriteCheck`]);
//! - alignment: writes start and end on word boundaries, erases on page boundaries;
//! - a power cut at any byte of any write or erase ([`FaultFlash::cut_at`]), counted over the
//!   flash's whole *traffic* (bytes written plus bytes erased), leaving the interrupted byte
//!   half-programmed or half-erased ([`Torn`]); everything after the cut fails until
//!   [`FaultFlash::power_on`];
//! - injected program and erase errors and silent no-ops, at a rate per million operations
//!   ([`Faults`]);
//! - erase counts per page, for wear figures.
//!
//! It allocates (the image is a `Vec`), so it lives behind the `fault-injection` feature and
//! never reaches a device build.

use std::vec;
use std::vec::Vec;

use embedded_storage::nor_flash::{
    ErrorType, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// How often a word may be programmed between two erases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteCheck {
    /// Once (flash with ECC, e.g. STM32L4/H7 internal flash).
    Once,
    /// Once, then again only with all zeros, any number of times (STM32L4/G4 internal flash:
    /// a program over programmed cells is refused unless the data is all zero).
    OnceThenZeros,
    /// Any number of times (plain SPI NOR): bits still only go from 1 to 0.
    Unlimited,
}

/// What a power cut leaves of the write or erase it interrupts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Torn {
    /// The bytes before the cut are done, the byte at the cut is half done (a random subset
    /// of its bits), the rest untouched.
    Prefix,
    /// Every word of the interrupted write is half done (the flash contract allows any state
    /// for the words being written); an interrupted erase behaves as with `Prefix`.
    Scatter,
}

/// Fault rates, in operations per million.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// A write fails part-way and says so.
    pub program_error: u32,
    /// An erase fails part-way and says so.
    pub erase_error: u32,
    /// A write reports success and changes nothing.
    pub silent_program: u32,
    /// An erase reports success and changes nothing.
    pub silent_erase: u32,
}

/// Why a [`FaultFlash`] operation failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlashFault {
    /// The power is off (cut by [`FaultFlash::cut_at`]).
    PowerLost,
    /// Outside the flash.
    OutOfBounds,
    /// Not aligned to a word (write) or page (erase).
    NotAligned,
    /// A word written again before an erase, against the [`WriteCheck`] (the address).
    WrittenTwice(u32),
    /// An injected program error (the address of the write).
    ProgramFailed(u32),
    /// An injected erase error (the address of the page).
    EraseFailed(u32),
}

impl NorFlashError for FlashFault {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FlashFault::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FlashFault::NotAligned => NorFlashErrorKind::NotAligned,
            _ => NorFlashErrorKind::Other,
        }
    }
}

/// Counters since creation (or [`FaultFlash::reset_stats`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Write operations.
    pub writes: u64,
    /// Bytes written.
    pub bytes_written: u64,
    /// Page erases.
    pub erases: u64,
    /// Read operations.
    pub reads: u64,
}

/// An emulated NOR flash of `WORD`-byte words and `PAGE`-byte erase pages.
#[derive(Clone, Debug)]
pub struct FaultFlash<const WORD: usize, const PAGE: usize> {
    data: Vec<u8>,
    /// Programs per word since its page was erased.
    programs: Vec<u8>,
    erases: Vec<u32>,
    check: WriteCheck,
    torn: Torn,
    faults: Faults,
    /// Bytes of traffic (written or erased) so far.
    traffic: u64,
    cut: Option<u64>,
    powered: bool,
    rng: u64,
    stats: Stats,
}

impl<const WORD: usize, const PAGE: usize> FaultFlash<WORD, PAGE> {
    /// `pages` erased pages, word-once writes, prefix tears, no injected faults.
    pub fn new(pages: usize) -> Self {
        FaultFlash {
            data: vec![0xFF; pages * PAGE],
            programs: vec![0; pages * PAGE / WORD.max(1)],
            erases: vec![0; pages],
            check: WriteCheck::Once,
            torn: Torn::Prefix,
            faults: Faults::default(),
            traffic: 0,
            cut: None,
            powered: true,
            rng: 0x9E37_79B9_7F4A_7C15,
            stats: Stats::default(),
        }
    }

    /// A flash holding `image` (its length rounded down to whole pages), every word counted as
    /// programmed once: a mounted image is as if written by someone else.
    pub fn from_image(image: &[u8]) -> Self {
        let pages = image.len() / PAGE;
        let mut f = Self::new(pages);
        if let Some(src) = image.get(..pages * PAGE) {
            f.data.copy_from_slice(src);
        }
        for (w, n) in f.programs.iter_mut().enumerate() {
            let word = f.data.get(w * WORD..(w + 1) * WORD).unwrap_or_default();
            *n = u8::from(word.iter().any(|b| *b != 0xFF));
        }
        f
    }

    /// Sets how often a word may be programmed per erase.
    pub fn with_check(mut self, check: WriteCheck) -> Self {
        self.check = check;
        self
    }

    /// Sets what a cut leaves.
    pub fn with_torn(mut self, torn: Torn) -> Self {
        self.torn = torn;
        self
    }

    /// Sets the injected fault rates.
    pub fn with_faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }

    /// Seeds the generator behind torn bytes and injected faults.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.rng = seed | 1;
        self
    }

    /// Changes the fault rates.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Changes what a cut leaves.
    pub fn set_torn(&mut self, torn: Torn) {
        self.torn = torn;
    }

    /// The raw contents.
    pub fn image(&self) -> &[u8] {
        &self.data
    }

    /// Bytes of traffic (written plus erased) since creation.
    pub fn traffic(&self) -> u64 {
        self.traffic
    }

    /// Cuts the power when the traffic counter reaches `at`: the byte of traffic numbered
    /// `at` is torn and nothing after it happens.
    pub fn cut_at(&mut self, at: u64) {
        self.cut = Some(at);
    }

    /// Cuts the power after `n` more bytes of traffic.
    pub fn cut_after(&mut self, n: u64) {
        self.cut = Some(self.traffic.saturating_add(n));
    }

    /// No cut pending.
    pub fn disarm(&mut self) {
        self.cut = None;
    }

    /// `false` once a cut happened, until [`FaultFlash::power_on`].
    pub fn powered(&self) -> bool {
        self.powered
    }

    /// Power comes back (the pending cut, if any, is dropped).
    pub fn power_on(&mut self) {
        self.powered = true;
        self.cut = None;
    }

    /// Erases per page.
    pub fn erase_counts(&self) -> &[u32] {
        &self.erases
    }

    /// Operation counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Zeroes the operation counters and erase counts.
    pub fn reset_stats(&mut self) {
        self.stats = Stats::default();
        self.erases.iter_mut().for_each(|e| *e = 0);
    }

    fn next_rand(&mut self) -> u64 {
        // xorshift64*: deterministic, good enough to pick bits and fault points.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn chance(&mut self, per_million: u32) -> bool {
        per_million > 0 && self.next_rand() % 1_000_000 < u64::from(per_million)
    }

    /// Counts one byte of traffic; `true` if the power goes at this byte.
    fn tick(&mut self) -> bool {
        let hit = self.cut == Some(self.traffic);
        self.traffic += 1;
        if hit {
            self.powered = false;
            self.cut = None;
        }
        hit
    }

    fn check_range(&self, offset: u32, len: usize) -> Result<usize, FlashFault> {
        let start = offset as usize;
        match start.checked_add(len) {
            Some(end) if end <= self.data.len() => Ok(start),
            _ => Err(FlashFault::OutOfBounds),
        }
    }

    /// Programs `bytes` at `start` (already checked); stops at a cut.
    fn program(&mut self, start: usize, bytes: &[u8]) -> Result<(), FlashFault> {
        // Word rules first: a refused write changes nothing.
        for (i, word) in bytes.chunks(WORD).enumerate() {
            let w = start / WORD + i;
            let n = self.programs.get(w).copied().unwrap_or(0);
            let allowed = match self.check {
                WriteCheck::Once => n == 0,
                WriteCheck::OnceThenZeros => n == 0 || word.iter().all(|b| *b == 0),
                WriteCheck::Unlimited => true,
            };
            if !allowed {
                return Err(FlashFault::WrittenTwice((start + i * WORD) as u32));
            }
        }
        let mut before = [0u8; 64];
        for (i, &b) in bytes.iter().enumerate() {
            let at = start + i;
            if at.is_multiple_of(WORD) {
                if let Some(n) = self.programs.get_mut(at / WORD) {
                    *n = n.saturating_add(1);
                }
                let old = self.data.get(at..at + WORD).unwrap_or_default();
                if let Some(dst) = before.get_mut(..old.len()) {
                    dst.copy_from_slice(old);
                }
            }
            if self.tick() {
                let noise = self.next_rand() as u8;
                match self.torn {
                    Torn::Prefix => self.half_program(at, b, noise),
                    Torn::Scatter => {
                        for (j, &b) in bytes.iter().enumerate() {
                            let noise = self.next_rand() as u8;
                            self.half_program(start + j, b, noise);
                        }
                    }
                }
                // A program cut before it changed any cell of the word never happened.
                let w = at / WORD * WORD;
                let now = self.data.get(w..w + WORD).unwrap_or_default();
                if before.get(..now.len()) == Some(now) {
                    if let Some(n) = self.programs.get_mut(at / WORD) {
                        *n = n.saturating_sub(1);
                    }
                }
                return Err(FlashFault::PowerLost);
            }
            if let Some(cell) = self.data.get_mut(at) {
                *cell &= b;
            }
            self.stats.bytes_written += 1;
        }
        Ok(())
    }

    /// A cell part-way through programming: some of the bits to clear are cleared.
    fn half_program(&mut self, at: usize, target: u8, noise: u8) {
        if let Some(cell) = self.data.get_mut(at) {
            *cell &= target | noise;
        }
    }

    fn erase_page(&mut self, page: usize) -> Result<(), FlashFault> {
        let base = page * PAGE;
        if let Some(e) = self.erases.get_mut(page) {
            *e = e.saturating_add(1);
        }
        self.stats.erases += 1;
        for at in base..base + PAGE {
            if self.tick() {
                // Part-way through erasing: some bits of this cell are already set.
                let noise = self.next_rand() as u8;
                if let Some(cell) = self.data.get_mut(at) {
                    *cell |= noise;
                }
                return Err(FlashFault::PowerLost);
            }
            if let Some(cell) = self.data.get_mut(at) {
                *cell = 0xFF;
            }
            if at.is_multiple_of(WORD) {
                if let Some(n) = self.programs.get_mut(at / WORD) {
                    *n = 0;
                }
            }
        }
        Ok(())
    }
}

impl<const WORD: usize, const PAGE: usize> ErrorType for FaultFlash<WORD, PAGE> {
    type Error = FlashFault;
}

impl<const WORD: usize, const PAGE: usize> ReadNorFlash for FaultFlash<WORD, PAGE> {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), FlashFault> {
        if !self.powered {
            return Err(FlashFault::PowerLost);
        }
        let start = self.check_range(offset, bytes.len())?;
        self.stats.reads += 1;
        bytes.copy_from_slice(
            self.data
                .get(start..start + bytes.len())
                .unwrap_or_default(),
        );
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.data.len()
    }
}

impl<const WORD: usize, const PAGE: usize> NorFlash for FaultFlash<WORD, PAGE> {
    const WRITE_SIZE: usize = WORD;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), FlashFault> {
        if !self.powered {
            return Err(FlashFault::PowerLost);
        }
        if from > to {
            return Err(FlashFault::OutOfBounds);
        }
        self.check_range(from, (to - from) as usize)?;
        if !(from as usize).is_multiple_of(PAGE) || !(to as usize).is_multiple_of(PAGE) {
            return Err(FlashFault::NotAligned);
        }
        for page in from as usize / PAGE..to as usize / PAGE {
            if self.chance(self.faults.silent_erase) {
                continue;
            }
            if self.chance(self.faults.erase_error) {
                // Fails part-way: a random prefix of the page is erased.
                let keep = self.cut;
                self.cut = Some(self.traffic + self.next_rand() % PAGE as u64);
                let r = self.erase_page(page);
                self.powered = true;
                self.cut = keep;
                if r.is_err() {
                    return Err(FlashFault::EraseFailed((page * PAGE) as u32));
                }
                continue;
            }
            self.erase_page(page)?;
        }
        Ok(())
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), FlashFault> {
        if !self.powered {
            return Err(FlashFault::PowerLost);
        }
        let start = self.check_range(offset, bytes.len())?;
        if !start.is_multiple_of(WORD) || !bytes.len().is_multiple_of(WORD) {
            return Err(FlashFault::NotAligned);
        }
        self.stats.writes += 1;
        if self.chance(self.faults.silent_program) {
            return Ok(());
        }
        if !bytes.is_empty() && self.chance(self.faults.program_error) {
            let keep = self.cut;
            self.cut = Some(self.traffic + self.next_rand() % bytes.len() as u64);
            let r = self.program(start, bytes);
            self.powered = true;
            self.cut = keep;
            return match r {
                Err(FlashFault::PowerLost) | Ok(()) => Err(FlashFault::ProgramFailed(offset)),
                Err(e) => Err(e),
            };
        }
        self.program(start, bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type F = FaultFlash<4, 64>;

    #[test]
    fn nor_rules_erase_to_ff_clear_bits_once_per_word_aligned() {
        let mut f = F::new(2);
        assert!(f.image().iter().all(|b| *b == 0xFF));
        f.write(0, &[0x0F, 0xF0, 0xAA, 0x55]).unwrap();
        assert_eq!(&f.image()[..4], &[0x0F, 0xF0, 0xAA, 0x55]);
        assert_eq!(f.write(0, &[0; 4]), Err(FlashFault::WrittenTwice(0)));
        assert_eq!(f.write(2, &[0; 4]), Err(FlashFault::NotAligned));
        assert_eq!(f.write(4, &[0; 3]), Err(FlashFault::NotAligned));
        assert_eq!(f.write(128, &[0; 4]), Err(FlashFault::OutOfBounds));
        assert_eq!(f.erase(0, 32), Err(FlashFault::NotAligned));
        f.erase(0, 64).unwrap();
        assert_eq!(f.erase_counts(), &[1, 0]);
        // After the erase the word takes a write again, and a write only clears bits.
        let mut g = f.clone().with_check(WriteCheck::Unlimited);
        g.write(0, &[0xF0; 4]).unwrap();
        g.write(0, &[0x0F; 4]).unwrap();
        assert_eq!(&g.image()[..4], &[0; 4]);
        let mut z = F::new(1).with_check(WriteCheck::OnceThenZeros);
        z.write(0, &[1; 4]).unwrap();
        assert_eq!(z.write(0, &[1; 4]), Err(FlashFault::WrittenTwice(0)));
        z.write(0, &[0; 4]).unwrap();
        // Zeros again and again: a page-state word torn twice is programmed a third time.
        z.write(0, &[0; 4]).unwrap();
        assert_eq!(z.write(0, &[1; 4]), Err(FlashFault::WrittenTwice(0)));
    }

    #[test]
    fn a_cut_tears_exactly_one_byte_and_stops_everything() {
        for at in 0..8u64 {
            let mut f = F::new(1).with_seed(at + 1);
            f.cut_at(at);
            assert_eq!(f.write(0, &[0u8; 8]), Err(FlashFault::PowerLost));
            let img = f.image();
            for (i, b) in img[..8].iter().enumerate() {
                if (i as u64) < at {
                    assert_eq!(*b, 0, "byte {i} before the cut at {at}");
                } else if i as u64 > at {
                    assert_eq!(*b, 0xFF, "byte {i} after the cut at {at}");
                }
            }
            let mut buf = [0u8; 4];
            assert_eq!(f.read(0, &mut buf), Err(FlashFault::PowerLost));
            assert_eq!(f.erase(0, 64), Err(FlashFault::PowerLost));
            f.power_on();
            f.read(0, &mut buf).unwrap();
        }
        // A cut inside an erase leaves the page part old, part erased.
        let mut f = F::new(1);
        f.write(0, &[0u8; 64]).unwrap();
        f.cut_after(10);
        assert_eq!(f.erase(0, 64), Err(FlashFault::PowerLost));
        assert!(f.image()[..10].iter().all(|b| *b == 0xFF));
        assert!(f.image()[11..].iter().all(|b| *b == 0));
        assert_eq!(f.traffic(), 64 + 11);
    }

    #[test]
    fn injected_faults_fail_loudly_or_do_nothing() {
        let all = Faults {
            program_error: 1_000_000,
            ..Faults::default()
        };
        let mut f = F::new(1).with_faults(all);
        assert_eq!(f.write(0, &[0u8; 8]), Err(FlashFault::ProgramFailed(0)));
        assert!(f.powered());
        let silent = Faults {
            silent_program: 1_000_000,
            silent_erase: 1_000_000,
            ..Faults::default()
        };
        let mut f = F::new(1).with_faults(silent);
        f.write(0, &[0u8; 8]).unwrap();
        assert!(f.image().iter().all(|b| *b == 0xFF));
        let mut f = F::new(1);
        f.write(0, &[0u8; 8]).unwrap();
        f.set_faults(silent);
        f.erase(0, 64).unwrap();
        assert_eq!(&f.image()[..8], &[0; 8]);
        let mut f = F::new(1).with_faults(Faults {
            erase_error: 1_000_000,
            ..Faults::default()
        });
        assert_eq!(f.erase(0, 64), Err(FlashFault::EraseFailed(0)));
    }
}

/// What survives of the writes a crash interrupted, on a [`SimFs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Crash {
    /// Directory changes (create, rename, remove) not yet flushed with `sync_dir` survive.
    pub dir_survives: bool,
    /// What survives of file data not yet flushed with `sync`.
    pub data: DataLoss,
}

/// The fate of unflushed file data in a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataLoss {
    /// Lost: the file holds what was last flushed.
    Lost,
    /// Kept whole.
    Kept,
    /// Half of it kept.
    Torn,
}

impl Crash {
    /// Every combination.
    pub const ALL: [Crash; 6] = [
        Crash {
            dir_survives: false,
            data: DataLoss::Lost,
        },
        Crash {
            dir_survives: false,
            data: DataLoss::Kept,
        },
        Crash {
            dir_survives: false,
            data: DataLoss::Torn,
        },
        Crash {
            dir_survives: true,
            data: DataLoss::Lost,
        },
        Crash {
            dir_survives: true,
            data: DataLoss::Kept,
        },
        Crash {
            dir_survives: true,
            data: DataLoss::Torn,
        },
    ];
}

#[derive(Clone, Debug, Default)]
struct Inode {
    data: Vec<u8>,
    synced: Vec<u8>,
}

/// An in-memory directory with a power-cut model: file data reaches the medium on `sync`,
/// names on `sync_dir`; a crash at system call number *n* ([`SimFs::crash_at`]) fails that call
/// and every later one, and [`SimFs::reboot`] keeps what a [`Crash`] says survives.
#[derive(Clone, Debug, Default)]
pub struct SimFs {
    inodes: Vec<Inode>,
    dir: std::collections::BTreeMap<std::string::String, usize>,
    dir_synced: std::collections::BTreeMap<std::string::String, usize>,
    calls: u64,
    crash: Option<u64>,
    crashed: bool,
}

impl SimFs {
    /// An empty directory.
    pub fn new() -> Self {
        SimFs::default()
    }

    /// System calls so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }

    /// System call number `n` (counted from creation) and every later one fail.
    pub fn crash_at(&mut self, n: u64) {
        self.crash = Some(n);
    }

    /// The crash point still ahead, if any.
    pub fn pending_crash(&self) -> Option<u64> {
        self.crash.filter(|_| !self.crashed)
    }

    /// `true` once the crash happened.
    pub fn crashed(&self) -> bool {
        self.crashed
    }

    /// The directory after power comes back: what `crash` says survived, all of it durable.
    pub fn reboot(&self, crash: Crash) -> SimFs {
        let dir = if crash.dir_survives {
            self.dir.clone()
        } else {
            self.dir_synced.clone()
        };
        // Only the files a surviving name points to come back (compacted, renumbered).
        let mut renumber = std::collections::BTreeMap::new();
        let dir: std::collections::BTreeMap<_, _> = dir
            .into_iter()
            .map(|(name, i)| {
                let n = renumber.len();
                let new = *renumber.entry(i).or_insert(n);
                (name, new)
            })
            .collect();
        let mut kept: Vec<(usize, usize)> = renumber.into_iter().collect();
        kept.sort_by_key(|(_, new)| *new);
        let inodes = kept
            .into_iter()
            .filter_map(|(old, _)| self.inodes.get(old))
            .map(|i| {
                let data = match crash.data {
                    DataLoss::Lost => i.synced.clone(),
                    DataLoss::Kept => i.data.clone(),
                    DataLoss::Torn => {
                        let keep = i.data.len().saturating_sub(i.synced.len()) / 2;
                        let mut d = i.synced.clone();
                        if i.data.starts_with(&i.synced) {
                            d.extend_from_slice(&i.data[i.synced.len()..i.synced.len() + keep]);
                        }
                        d
                    }
                };
                Inode {
                    synced: data.clone(),
                    data,
                }
            })
            .collect();
        SimFs {
            inodes,
            dir_synced: dir.clone(),
            dir,
            calls: self.calls,
            crash: None,
            crashed: false,
        }
    }

    fn call(&mut self) -> std::io::Result<()> {
        let n = self.calls;
        self.calls += 1;
        if self.crashed || self.crash == Some(n) {
            self.crashed = true;
            return Err(std::io::Error::other("simulated power cut"));
        }
        Ok(())
    }

    fn inode(&mut self, name: &str) -> std::io::Result<&mut Inode> {
        let i = *self.dir.get(name).ok_or(std::io::ErrorKind::NotFound)?;
        self.inodes
            .get_mut(i)
            .ok_or_else(|| std::io::ErrorKind::NotFound.into())
    }
}

impl super::file::Fs for SimFs {
    fn read(&mut self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.call()?;
        match self.inode(name) {
            Ok(i) => Ok(Some(i.data.clone())),
            Err(_) => Ok(None),
        }
    }

    fn create(&mut self, name: &str) -> std::io::Result<()> {
        self.call()?;
        self.inodes.push(Inode::default());
        let i = self.inodes.len() - 1;
        self.dir.insert(name.into(), i);
        Ok(())
    }

    fn write(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.call()?;
        self.inode(name)?.data.extend_from_slice(bytes);
        Ok(())
    }

    fn sync(&mut self, name: &str) -> std::io::Result<()> {
        self.call()?;
        let i = self.inode(name)?;
        i.synced = i.data.clone();
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.call()?;
        let i = self.dir.remove(from).ok_or(std::io::ErrorKind::NotFound)?;
        self.dir.insert(to.into(), i);
        Ok(())
    }

    fn sync_dir(&mut self) -> std::io::Result<()> {
        self.call()?;
        self.dir_synced = self.dir.clone();
        Ok(())
    }

    fn remove(&mut self, name: &str) -> std::io::Result<()> {
        self.call()?;
        self.dir.remove(name);
        Ok(())
    }
}

/// A file system that stops working at system call number *n*: every call from there on fails,
/// as if the machine lost power then. On a real directory the calls before the crash all
/// reached the disk; [`SimFs`] models what else a power cut can lose.
#[derive(Debug)]
pub struct CrashAfter<F> {
    /// The file system.
    pub inner: F,
    /// System calls so far.
    pub calls: u64,
    /// The call that fails first.
    pub crash: Option<u64>,
}

impl<F: super::file::Fs> CrashAfter<F> {
    fn call(&mut self) -> std::io::Result<()> {
        let n = self.calls;
        self.calls += 1;
        match self.crash {
            Some(c) if n >= c => Err(std::io::Error::other("simulated crash")),
            _ => Ok(()),
        }
    }
}

impl<F: super::file::Fs> super::file::Fs for CrashAfter<F> {
    fn read(&mut self, name: &str) -> std::io::Result<Option<Vec<u8>>> {
        self.call()?;
        self.inner.read(name)
    }
    fn create(&mut self, name: &str) -> std::io::Result<()> {
        self.call()?;
        self.inner.create(name)
    }
    fn write(&mut self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        self.call()?;
        self.inner.write(name, bytes)
    }
    fn sync(&mut self, name: &str) -> std::io::Result<()> {
        self.call()?;
        self.inner.sync(name)
    }
    fn rename(&mut self, from: &str, to: &str) -> std::io::Result<()> {
        self.call()?;
        self.inner.rename(from, to)
    }
    fn sync_dir(&mut self) -> std::io::Result<()> {
        self.call()?;
        self.inner.sync_dir()
    }
    fn remove(&mut self, name: &str) -> std::io::Result<()> {
        self.call()?;
        self.inner.remove(name)
    }
}
