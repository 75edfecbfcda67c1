//! The engine's persistence records in the device's directory: one state file (`slup-state`)
//! written through `slup_core::storage::file`, so that a save of several records lands whole
//! or not at all (a crash between two per-record files could keep a usage record that moved on
//! without the report it closed).
//!
//! [`save`] writes every record the engine reports changed, in one atomic replacement, and
//! marks them saved only once it is on the medium; [`restore`] hands every record found back
//! to a fresh engine. A record that fails its checks is reported, never trusted.

use rand_core::{CryptoRng, RngCore};
use slup_core::engine::persist::Record;
use slup_core::engine::trust::KeyProvider;
use slup_core::engine::Engine;
use slup_core::storage::file::FileStorage;
use slup_core::storage::{self, Storage};
use slup_core::types::Timestamp;
use slup_core::Code;

use crate::error::HostError;
use crate::store::FileStore;

/// Bytes lent to the storage for one record: more than the largest record the engine's
/// capacities allow.
const RECORD_BUF: usize = 64 * 1024;

fn open(store: &FileStore) -> Result<FileStorage, HostError> {
    FileStorage::open_dir(store.dir()).map_err(|c| {
        HostError::new(
            c,
            format!("opening the state file in {}", store.dir().display()),
        )
    })
}

/// Writes every changed record; returns how many were written.
pub fn save<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    engine: &mut Engine<K, R, M>,
    store: &FileStore,
) -> Result<usize, HostError> {
    if engine.changed().is_empty() {
        return Ok(0);
    }
    let mut buf = vec![0u8; RECORD_BUF];
    let written = storage::save(engine, &mut open(store)?, &mut buf)
        .map_err(|c| HostError::new(c, "saving the engine state"))?;
    Ok(written.iter().count())
}

/// What the restart that precedes a restore was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Restart {
    /// The product reloaded (power cycle, reboot): open reports close as `ProductReload`.
    Reload,
    /// Only this process restarted on the same state (each `slup device` command): the
    /// product never stopped, open reports stay open.
    Resume,
}

/// Restores every record found into a fresh engine, then finishes the restore as `restart`
/// says. Returns the records that could not be restored and why (the engine also emits an
/// event for each).
pub fn restore<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    engine: &mut Engine<K, R, M>,
    store: &FileStore,
    now: Timestamp,
    restart: Restart,
) -> Vec<(Record, HostError)> {
    let found = match open(store) {
        Ok(mut st) => {
            let mut buf = vec![0u8; RECORD_BUF];
            let r = storage::restore_records(engine, &mut st, &mut buf, now);
            if r.restored.is_empty() && r.lost.is_empty() {
                migrate_record_files(engine, store, &mut st, now)
            } else {
                r.lost
                    .iter()
                    .map(|rec| {
                        let code = r.cause(rec).unwrap_or(Code::RecordCorrupt);
                        (rec, HostError::new(code, format!("{} record", rec.name())))
                    })
                    .collect()
            }
        }
        // Without the directory nothing could be read: every part stays fresh.
        Err(e) => {
            for r in Record::ALL {
                engine.record_unreadable(now, r, e.code);
            }
            Record::ALL.iter().map(|r| (*r, e.clone())).collect()
        }
    };
    match restart {
        Restart::Reload => engine.finish_restore(now),
        Restart::Resume => engine.finish_resume(now),
    }
    found
}

/// The file a directory written before the state file kept record `r` in.
pub fn record_file_name(r: Record) -> String {
    format!("engine-{}", r.name())
}

/// A directory written by slup 0.1 keeps one file per record (`engine-trust`, …): restores
/// them, writes them into the state file, and removes them once that is on the medium, so an
/// upgrade loses nothing. Returns the records that could not be restored.
fn migrate_record_files<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    engine: &mut Engine<K, R, M>,
    store: &FileStore,
    st: &mut FileStorage,
    now: Timestamp,
) -> Vec<(Record, HostError)> {
    let mut lost = Vec::new();
    let mut found = false;
    for r in Record::ALL {
        match store.read(&record_file_name(r)) {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                found = true;
                if let Err(c) = engine.restore_record(now, r, &bytes) {
                    lost.push((r, HostError::new(c, format!("{} record", r.name()))));
                }
            }
            Err(e) => {
                found = true;
                engine.record_unreadable(now, r, e.code);
                lost.push((r, e));
            }
        }
    }
    if !found {
        return lost;
    }
    // Restored records count as saved; here they are saved elsewhere, so write them all.
    for r in Record::ALL {
        engine.mark_unsaved(r);
    }
    // Once the state file holds them the old files are never read again (a state file with
    // records wins), so a failure here only postpones the clean-up: the records stay marked
    // unsaved and the caller's next save writes them.
    let mut buf = vec![0u8; RECORD_BUF];
    if storage::save(engine, st, &mut buf).is_ok() {
        for r in Record::ALL {
            let _ = store.remove(&record_file_name(r));
        }
    }
    lost
}

/// Every engine record stored, by record, as its frame bytes (diagnostics and tests).
pub fn records(store: &FileStore) -> Result<Vec<(Record, Vec<u8>)>, HostError> {
    let mut st = open(store)?;
    let mut buf = vec![0u8; RECORD_BUF];
    let mut out = Vec::new();
    for r in Record::ALL {
        let read = st
            .read(r, &mut buf)
            .map_err(|c| HostError::new(c, format!("reading the {} record", r.name())))?;
        if let Some(n) = read {
            out.push((r, buf.get(..n).unwrap_or_default().to_vec()));
        }
    }
    Ok(out)
}

/// Removes every engine record (a device's licensing state, not its configuration).
pub fn clear(store: &FileStore) -> Result<(), HostError> {
    open(store)?
        .wipe()
        .map_err(|c| HostError::new(c, "removing the engine state"))
}

/// The code a caller reports when saving failed before a request went out.
pub const SAVE_FAILED: Code = Code::StorageIo;
