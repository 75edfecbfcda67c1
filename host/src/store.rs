//! Atomic file storage: each record is one file in a directory, replaced whole.
//!
//! A write goes to a temporary file in the same directory, is flushed to the medium (`fsync`),
//! renamed over the old file, and the directory is flushed so that the rename itself survives
//! a power cut. A reader therefore sees the old record or the new one, never a mix. Each record
//! carries a small header (magic, format version, length, SHA-256 of the payload) so that a
//! file damaged outside slup is reported as `RecordCorrupt` and never trusted, and a file from
//! a newer slup as `RecordFromNewerVersion`.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use slup_core::Code;

use crate::error::HostError;

/// The record format this build writes and reads.
pub const FORMAT_VERSION: u16 = 1;
const MAGIC: &[u8; 4] = b"SLUP";
/// magic, version (u16 LE), reserved (u16), payload length (u32 LE), SHA-256 of the payload.
const HEADER_LEN: usize = 4 + 2 + 2 + 4 + 32;
/// Temporary files start with this, so that no record name can collide with one.
const TMP_PREFIX: &str = ".tmp-";

/// A directory of records.
#[derive(Clone, Debug)]
pub struct FileStore {
    dir: PathBuf,
}

fn io_err(e: &std::io::Error, what: &Path) -> HostError {
    let code = if e.raw_os_error() == Some(28) {
        // ENOSPC
        Code::StorageFull
    } else {
        Code::StorageIo
    };
    HostError::new(code, format!("{}: {e}", what.display()))
}

/// Checks a record name: letters, digits, `-`, `_`, `.`, not starting with a dot.
fn check_name(name: &str) -> Result<(), HostError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(HostError::new(
            Code::InvalidArgument,
            format!("record name {name:?}"),
        ))
    }
}

impl FileStore {
    /// Opens (creating it if needed) the directory `dir`, and removes temporary files a crash
    /// left behind.
    pub fn open(dir: impl Into<PathBuf>) -> Result<FileStore, HostError> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| io_err(&e, &dir))?;
        let store = FileStore { dir };
        for entry in fs::read_dir(&store.dir).map_err(|e| io_err(&e, &store.dir))? {
            let entry = entry.map_err(|e| io_err(&e, &store.dir))?;
            if entry.file_name().to_string_lossy().starts_with(TMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(store)
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Replaces record `name` with `payload`, atomically and durably.
    pub fn write(&self, name: &str, payload: &[u8]) -> Result<(), HostError> {
        check_name(name)?;
        let len = u32::try_from(payload.len())
            .map_err(|_| HostError::new(Code::StorageFull, format!("record {name} over 4 GiB")))?;
        let mut framed = Vec::with_capacity(HEADER_LEN + payload.len());
        framed.extend_from_slice(MAGIC);
        framed.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        framed.extend_from_slice(&[0, 0]);
        framed.extend_from_slice(&len.to_le_bytes());
        framed.extend_from_slice(&slup_core::crypto::sha256(payload));
        framed.extend_from_slice(payload);
        write_atomic(&self.dir.join(name), &framed)
    }

    /// Record `name`, or `None` when there is none.
    pub fn read(&self, name: &str) -> Result<Option<Vec<u8>>, HostError> {
        check_name(name)?;
        let path = self.dir.join(name);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&e, &path)),
        };
        let corrupt =
            |why: &str| HostError::new(Code::RecordCorrupt, format!("{}: {why}", path.display()));
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or_else(|| corrupt("shorter than its header"))?;
        if header.get(..4) != Some(MAGIC.as_slice()) {
            return Err(corrupt("not a slup record"));
        }
        let field = |at: usize, n: usize| header.get(at..at + n).unwrap_or_default();
        let version = u16::from_le_bytes(field(4, 2).try_into().unwrap_or_default());
        if version > FORMAT_VERSION {
            return Err(HostError::new(
                Code::RecordFromNewerVersion,
                format!(
                    "{}: format {version}, this build reads {FORMAT_VERSION}",
                    path.display()
                ),
            ));
        }
        if version == 0 || field(6, 2) != [0, 0] {
            return Err(corrupt("bad header"));
        }
        let len = u32::from_le_bytes(field(8, 4).try_into().unwrap_or_default());
        let payload = bytes.get(HEADER_LEN..).unwrap_or_default();
        if usize::try_from(len).ok() != Some(payload.len()) {
            return Err(corrupt("length does not match"));
        }
        if field(12, 32) != slup_core::crypto::sha256(payload).as_slice() {
            return Err(corrupt("checksum does not match"));
        }
        Ok(Some(payload.to_vec()))
    }

    /// Deletes record `name` (nothing to do when absent), durably.
    pub fn remove(&self, name: &str) -> Result<(), HostError> {
        check_name(name)?;
        let path = self.dir.join(name);
        match fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io_err(&e, &path)),
        }
    }

    /// The names of the records present, sorted.
    pub fn names(&self) -> Result<Vec<String>, HostError> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| io_err(&e, &self.dir))? {
            let entry = entry.map_err(|e| io_err(&e, &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_ok() && entry.file_type().is_ok_and(|t| t.is_file()) {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }
}

/// Replaces the file at `path` with `bytes` atomically and durably: temporary file in the same
/// directory, `fsync`, rename, `fsync` of the directory. For records and for user-visible files
/// such as a saved usage file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path.file_name().ok_or_else(|| {
        HostError::new(
            Code::InvalidArgument,
            format!("{}: not a file", path.display()),
        )
    })?;
    let tmp = dir.join(format!(
        "{TMP_PREFIX}{}-{}",
        std::process::id(),
        file_name.to_string_lossy()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(|e| io_err(&e, &tmp))?;
        f.write_all(bytes).map_err(|e| io_err(&e, &tmp))?;
        f.sync_all().map_err(|e| io_err(&e, &tmp))?;
        drop(f);
        fs::rename(&tmp, path).map_err(|e| io_err(&e, path))?;
        sync_dir(&dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Flushes a directory's entries (the rename) to the medium.
fn sync_dir(dir: &Path) -> Result<(), HostError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(&e, dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_replace_whole() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path().join("state")).unwrap();
        assert_eq!(s.read("trust").unwrap(), None);
        s.write("trust", b"first").unwrap();
        s.write("trust", b"second, longer").unwrap();
        s.write("usage", b"").unwrap();
        assert_eq!(s.read("trust").unwrap().unwrap(), b"second, longer");
        assert_eq!(s.read("usage").unwrap().unwrap(), b"");
        assert_eq!(s.names().unwrap(), ["trust", "usage"]);
        s.remove("trust").unwrap();
        s.remove("trust").unwrap();
        assert_eq!(s.names().unwrap(), ["usage"]);
    }

    #[test]
    fn damage_is_reported_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        s.write("r", b"payload bytes").unwrap();
        let path = dir.path().join("r");
        let good = fs::read(&path).unwrap();
        // Every single-byte change anywhere is caught.
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x01;
            fs::write(&path, &bad).unwrap();
            let e = s.read("r").unwrap_err();
            assert!(
                matches!(e.code, Code::RecordCorrupt | Code::RecordFromNewerVersion),
                "byte {i}: {e}"
            );
        }
        // Cut short, as by a copy that did not finish.
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert_eq!(s.read("r").unwrap_err().code, Code::RecordCorrupt);
        fs::write(&path, &good[..10]).unwrap();
        assert_eq!(s.read("r").unwrap_err().code, Code::RecordCorrupt);
        // Written by a newer slup.
        let mut newer = good.clone();
        newer[4..6].copy_from_slice(&(FORMAT_VERSION + 1).to_le_bytes());
        fs::write(&path, &newer).unwrap();
        assert_eq!(s.read("r").unwrap_err().code, Code::RecordFromNewerVersion);
    }

    #[test]
    fn leftover_temporary_files_are_swept_and_names_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(".tmp-99-trust"), b"half written").unwrap();
        let s = FileStore::open(dir.path()).unwrap();
        assert!(!dir.path().join(".tmp-99-trust").exists());
        assert!(s.names().unwrap().is_empty());
        for bad in ["", ".hidden", "../escape", "a/b", "sp ace"] {
            assert_eq!(
                s.write(bad, b"x").unwrap_err().code,
                Code::InvalidArgument,
                "{bad}"
            );
        }
    }

    #[test]
    fn write_atomic_reports_a_missing_directory() {
        let dir = tempfile::tempdir().unwrap();
        let e = write_atomic(&dir.path().join("nope/file.json"), b"{}").unwrap_err();
        assert_eq!(e.code, Code::StorageIo);
    }
}
