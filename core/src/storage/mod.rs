//! Power-loss-safe storage for the engine's persistence records.
//!
//! The engine cuts its state into six records ([`Record`]; frames with a format version and a
//! CRC, trust re-verified by signature on restore: see [`crate::engine::persist`]). This module
//! puts them on a medium so that a power cut at any instant leaves either the state before a
//! save or the state after it, across *all* records of that save, never a mix:
//!
//! - [`flash::FlashStorage`]: NOR flash through `embedded-storage`, on a
//!   `sequential-storage` map (wear-levelled, no heap);
//! - `file::FileStorage` (feature `std`): one state file in a directory, replaced atomically
//!   (temporary file, `fsync`, `rename`, `fsync` of the directory);
//! - `ram::RamStorage` (feature `std`): in memory, for tests;
//! - `fault` (feature `fault-injection`): a NOR flash that loses power at any byte and injects
//!   faults, and a file system that crashes between system calls, for the power-cut tests.
//!
//! # Why a save is one transaction
//!
//! One engine call can change several records together, and each record being old-or-new on
//! its own is not enough. A report close moves a report from `Usage` (open) to `Reports`
//! (closed): if only `Reports` reached the medium, the reboot would close the same open report
//! a second time under the same report id; if only `Usage` did, the report would be lost. An
//! ACK prunes `Reports`, answers a nonce in `Nonces` and moves `last_ack` in `Schedule`. So
//! [`Storage`] stages every changed record and then commits them at once, and [`save`] does
//! exactly that.
//!
//! # The driver contract
//!
//! After every call into the engine, and before acting on its output:
//!
//! ```text
//! save(&mut engine, &mut storage, &mut buf)?;   // every changed record, one transaction
//! then forward the engine's events, send its transmit, hand out its usage file
//! ```
//!
//! - **Before a transmit goes out** its nonce (and, for a usage file, the reports it carries)
//!   must be saved: if [`save`] fails, do not send; call
//!   [`Engine::handle_transport_error`] with the error instead, and try again later.
//! - **An answer counts once its save commits.** If power fails between
//!   [`Engine::handle_response`] and the end of the [`save`] after it, the device comes back
//!   with the state before the answer: reports the service acknowledged are still stored as
//!   unsent and go out again with their same report ids and bytes. The service deduplicates
//!   reports by (UDI, report id) and acknowledges them again; the device then prunes them.
//!   An acknowledgement whose save committed is never undone: an acknowledged report is
//!   never sent again.
//! - **Events after the save**: forward `poll_event` output once the save committed, so that
//!   the log never reports a change (`TRUST_INSTALL_SUCCESS`, `USAGE_ACK_RECEIVED`) that a
//!   power cut then undid.
//! - **A failed save changes nothing the engine knows**: records stay marked as changed, and
//!   the next [`save`] writes them again. Whether the failed commit reached the medium or not,
//!   the medium holds one of the two states, and the next successful save converges.
//! - **At boot**: [`restore`], then [`save`] (restoring closes the reports that were open at
//!   power-off, a change like any other).
//!
//! # Geometry and wear (flash)
//!
//! Each record has two slots on flash; a save writes changed records into their spare slot
//! and then a small manifest that names the current slot, length and CRC-32 of every record.
//! The manifest is the commit point: `sequential-storage` writes each item with a CRC and keeps
//! the previous value of a key until the new one is complete, so a torn manifest leaves the
//! previous one in force, and the slots it names were never touched by the interrupted save.
//! Every write and erase is read back (a flash that silently does nothing fails the save
//! instead of corrupting a later one). Pages are used in a ring, so wear spreads evenly; the
//! `wear` example prints erases per page for ten years of hourly reporting.
//!
//! The flash range needs room for two copies of the largest records plus two pages of
//! headroom for `sequential-storage`'s garbage collection; a save that does not fit fails with
//! [`Code::StorageFull`] and leaves the previous state intact.
//!
//! # Degraded states
//!
//! A record that is missing, torn, from a newer version or (trust) no longer verifies restores
//! to its fresh state with a `%SMART_LIC-3-PLATFORM_ERROR` event naming what was lost (see
//! [`Engine::restore_record`]); the others restore normally. A flash image so damaged that the
//! map cannot be read loses every record, with an event each, and is formatted by the next
//! save; so is a range that holds no manifest but is not blank. A mount that has read a
//! manifest never formats: if the map later stops showing that manifest, saves fail with
//! [`Code::RecordCorrupt`] until the next boot. Storage written by a newer format is never
//! overwritten: every save fails with [`Code::RecordFromNewerVersion`] until the firmware is
//! upgraded again or the storage is wiped ([`Storage::wipe`]).
//!
//! `docs/STORAGE.md` describes the power-cut tests, their figures and the known limits.
//!
//! [`Engine::handle_transport_error`]: crate::engine::Engine::handle_transport_error
//! [`Engine::handle_response`]: crate::engine::Engine::handle_response
//! [`Engine::restore_record`]: crate::engine::Engine::restore_record

use rand_core::{CryptoRng, RngCore};

use crate::engine::persist::{Record, Records};
use crate::engine::trust::KeyProvider;
use crate::engine::Engine;
use crate::error::Code;
use crate::types::Timestamp;

pub mod flash;

#[cfg(feature = "std")]
pub mod file;

#[cfg(feature = "std")]
pub mod ram;

#[cfg(feature = "fault-injection")]
pub mod fault;

/// A medium for the engine's records, written in transactions.
///
/// [`Storage::stage`] the new frame of every changed record, then [`Storage::commit`]: after a
/// power cut at any point the medium holds every staged record or none of them. Reads see the
/// committed state only.
pub trait Storage {
    /// Reads record `r` into `buf`: `Ok(Some(len))`, or `Ok(None)` if it was never saved.
    /// [`Code::BufferTooSmall`] if `buf` cannot hold it, [`Code::RecordCorrupt`] if what is
    /// stored fails the medium's integrity check.
    fn read(&mut self, r: Record, buf: &mut [u8]) -> Result<Option<usize>, Code>;

    /// Stages `frame` as the next content of `r`. Nothing is visible before
    /// [`Storage::commit`]; staging the same record twice keeps the second frame.
    fn stage(&mut self, r: Record, frame: &[u8]) -> Result<(), Code>;

    /// Makes every staged record visible at once. On error nothing staged remains, and the
    /// medium holds either the previous state or (if the failure came after the commit point)
    /// the new one.
    fn commit(&mut self) -> Result<(), Code>;

    /// Drops what was staged.
    fn discard(&mut self);

    /// Erases every record (the medium's factory reset).
    fn wipe(&mut self) -> Result<(), Code>;
}

impl<S: Storage + ?Sized> Storage for &mut S {
    fn read(&mut self, r: Record, buf: &mut [u8]) -> Result<Option<usize>, Code> {
        (**self).read(r, buf)
    }
    fn stage(&mut self, r: Record, frame: &[u8]) -> Result<(), Code> {
        (**self).stage(r, frame)
    }
    fn commit(&mut self) -> Result<(), Code> {
        (**self).commit()
    }
    fn discard(&mut self) {
        (**self).discard()
    }
    fn wipe(&mut self) -> Result<(), Code> {
        (**self).wipe()
    }
}

/// Saves every record the engine reports changed, in one transaction, and marks them saved
/// once committed. `buf` must hold the largest record ([`Engine::record_len`]). Returns the
/// records written (empty when nothing changed).
pub fn save<S, K, R, const M: usize>(
    engine: &mut Engine<K, R, M>,
    storage: &mut S,
    buf: &mut [u8],
) -> Result<Records, Code>
where
    S: Storage + ?Sized,
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    let changed = engine.changed();
    if changed.is_empty() {
        return Ok(changed);
    }
    let result = changed.iter().try_for_each(|r| {
        engine
            .write_record(r, buf)
            .and_then(|n| storage.stage(r, buf.get(..n).ok_or(Code::BufferTooSmall)?))
    });
    if let Err(e) = result.and_then(|()| storage.commit()) {
        storage.discard();
        // A failed commit may still have landed: if the state then moved back to what was
        // saved before, only a fresh write of these records makes the medium agree again.
        for r in changed.iter() {
            engine.mark_unsaved(r);
        }
        return Err(e);
    }
    for r in changed.iter() {
        engine.mark_saved(r);
    }
    Ok(changed)
}

/// Attempts [`restore`] makes to read a record whose read failed with [`Code::StorageIo`].
pub const READ_ATTEMPTS: usize = 3;

/// What [`restore`] found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Restored {
    /// Records restored.
    pub restored: Records,
    /// Records stored but not restored (each with a `PLATFORM_ERROR` event).
    pub lost: Records,
    /// Why each lost record was lost, by record index.
    causes: [Option<Code>; Record::ALL.len()],
}

impl Restored {
    /// Why record `r` was lost (`None` if it was not).
    pub fn cause(&self, r: Record) -> Option<Code> {
        self.causes.get(r.index()).copied().flatten()
    }

    /// The first reason a record was lost, in restore order.
    pub fn first_error(&self) -> Option<Code> {
        Record::ALL.iter().find_map(|r| self.cause(*r))
    }
}

/// Restores a fresh engine (right after [`Engine::new`]) from `storage` and finishes the
/// restore at `now` as a product reload ([`Engine::finish_restore`]). A record that cannot be
/// read or does not restore leaves its part fresh, with an event; the others are unaffected.
/// `buf` must hold the largest record. Call [`save`] next.
pub fn restore<S, K, R, const M: usize>(
    engine: &mut Engine<K, R, M>,
    storage: &mut S,
    buf: &mut [u8],
    now: Timestamp,
) -> Restored
where
    S: Storage + ?Sized,
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    let out = restore_records(engine, storage, buf, now);
    engine.finish_restore(now);
    out
}

/// [`restore`] without the finish: the caller picks [`Engine::finish_restore`] (a product
/// reload) or [`Engine::finish_resume`] (a host process restarted on the same state).
pub fn restore_records<S, K, R, const M: usize>(
    engine: &mut Engine<K, R, M>,
    storage: &mut S,
    buf: &mut [u8],
    now: Timestamp,
) -> Restored
where
    S: Storage + ?Sized,
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    let mut out = Restored::default();
    for r in Record::ALL {
        // A read that failed on the medium (not on a check) is tried again before the record
        // is given up: giving it up means the next save overwrites it with a fresh state.
        let mut read = storage.read(r, buf);
        for _ in 1..READ_ATTEMPTS {
            if read != Err(Code::StorageIo) {
                break;
            }
            read = storage.read(r, buf);
        }
        let result = match read {
            Ok(None) => continue,
            Ok(Some(n)) => match buf.get(..n) {
                Some(bytes) => engine.restore_record(now, r, bytes),
                None => {
                    engine.record_unreadable(now, r, Code::BufferTooSmall);
                    Err(Code::BufferTooSmall)
                }
            },
            Err(cause) => {
                engine.record_unreadable(now, r, cause);
                Err(cause)
            }
        };
        match result {
            Ok(()) => out.restored.insert(r),
            Err(cause) => {
                out.lost.insert(r);
                if let Some(slot) = out.causes.get_mut(r.index()) {
                    *slot = Some(cause);
                }
            }
        }
    }
    out
}
