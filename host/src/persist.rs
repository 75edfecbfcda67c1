//! The engine's persistence records on a [`FileStore`]: one file per record
//! (`engine-trust`, `engine-usage`, …), each replaced atomically.
//!
//! [`save`] writes every record the engine reports changed and marks it saved only once it is
//! on the medium; [`restore`] hands every record found back to a fresh engine. A record that
//! fails its file checksum or the engine's own checks is reported, never trusted, and the
//! others restore on their own.

use rand_core::{CryptoRng, RngCore};
use slup_core::engine::persist::Record;
use slup_core::engine::trust::KeyProvider;
use slup_core::engine::Engine;
use slup_core::types::Timestamp;
use slup_core::Code;

use crate::error::HostError;
use crate::store::FileStore;

/// The file name of an engine record.
pub fn file_name(r: Record) -> String {
    format!("engine-{}", r.name())
}

/// Writes every changed record; returns how many were written.
pub fn save<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    engine: &mut Engine<K, R, M>,
    store: &FileStore,
) -> Result<usize, HostError> {
    let mut n = 0;
    for r in engine.changed().iter() {
        let len = engine
            .record_len(r)
            .map_err(|c| HostError::new(c, format!("encoding the {} record", r.name())))?;
        let mut buf = vec![0u8; len];
        let len = engine
            .write_record(r, &mut buf)
            .map_err(|c| HostError::new(c, format!("encoding the {} record", r.name())))?;
        store.write(&file_name(r), buf.get(..len).unwrap_or_default())?;
        engine.mark_saved(r);
        n += 1;
    }
    Ok(n)
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
    let mut lost = Vec::new();
    for r in Record::ALL {
        match store.read(&file_name(r)) {
            Ok(None) => {}
            Ok(Some(bytes)) => {
                if let Err(c) = engine.restore_record(now, r, &bytes) {
                    lost.push((r, HostError::new(c, format!("{} record", r.name()))));
                }
            }
            Err(e) => lost.push((r, e)),
        }
    }
    match restart {
        Restart::Reload => engine.finish_restore(now),
        Restart::Resume => engine.finish_resume(now),
    }
    lost
}

/// Removes every engine record (a device's licensing state, not its configuration).
pub fn clear(store: &FileStore) -> Result<(), HostError> {
    for r in Record::ALL {
        store.remove(&file_name(r))?;
    }
    Ok(())
}

/// `true` when the store holds any engine record.
pub fn any(store: &FileStore) -> Result<bool, HostError> {
    let names = store.names()?;
    Ok(Record::ALL.iter().any(|r| names.contains(&file_name(*r))))
}

/// The code a caller reports when saving failed before a request went out.
pub const SAVE_FAILED: Code = Code::StorageIo;
