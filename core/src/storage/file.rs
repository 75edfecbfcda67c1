//! The engine's records in one state file, replaced atomically (feature `std`).
//!
//! A commit writes every record (the staged ones and the unchanged ones) into `slup-state.tmp`,
//! flushes it to the medium (`fsync`), renames it over `slup-state`, and flushes the directory
//! so that the rename itself survives a power cut. `rename` is atomic on POSIX file systems, so
//! a reader finds the old file or the new one, never a mix, and never a file whose data did not
//! reach the medium. A leftover temporary file is an uncommitted save: it is ignored and
//! replaced.
//!
//! Every system call goes through the [`Fs`] trait: [`StdFs`] is the real directory;
//! the `fault` module's file systems crash between calls, for the power-cut tests.
//!
//! File (little-endian): `b"SLST"`, format version, sequence number (u64), record count, then
//! per record its id, length (u32) and frame; then a CRC-32 of all preceding bytes.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, ErrorKind, Read, Write};
use std::path::PathBuf;
use std::vec::Vec;

use super::Storage;
use crate::engine::persist::Record;
use crate::error::Code;
use crate::nonce::{crc32_finish, crc32_update, CRC_INIT};

/// The state file.
pub const STATE: &str = "slup-state";
/// The file a commit writes before renaming it over [`STATE`].
pub const TMP: &str = "slup-state.tmp";
const MAGIC: [u8; 4] = *b"SLST";
/// State file format version written.
pub const FILE_VERSION: u8 = 1;

/// The system calls a commit makes, one method each, on files named within one directory.
pub trait Fs {
    /// Reads a whole file; `None` if it does not exist.
    fn read(&mut self, name: &str) -> io::Result<Option<Vec<u8>>>;
    /// Creates (or truncates) a file for writing.
    fn create(&mut self, name: &str) -> io::Result<()>;
    /// Appends to the file last created.
    fn write(&mut self, name: &str, bytes: &[u8]) -> io::Result<()>;
    /// Flushes the file last created to the medium (`fsync`) and closes it.
    fn sync(&mut self, name: &str) -> io::Result<()>;
    /// Renames a file, replacing the target (atomic).
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Flushes the directory (the names in it) to the medium.
    fn sync_dir(&mut self) -> io::Result<()>;
    /// Removes a file if it exists.
    fn remove(&mut self, name: &str) -> io::Result<()>;
}

/// A real directory.
#[derive(Debug)]
pub struct StdFs {
    dir: PathBuf,
    open: Option<File>,
}

impl StdFs {
    /// The directory `dir`, created if needed.
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<StdFs> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(StdFs { dir, open: None })
    }

    fn not_open() -> io::Error {
        io::Error::other("no file is open for writing")
    }
}

impl Fs for StdFs {
    fn read(&mut self, name: &str) -> io::Result<Option<Vec<u8>>> {
        match File::open(self.dir.join(name)) {
            Ok(mut f) => {
                let mut v = Vec::new();
                f.read_to_end(&mut v)?;
                Ok(Some(v))
            }
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn create(&mut self, name: &str) -> io::Result<()> {
        self.open = Some(
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(self.dir.join(name))?,
        );
        Ok(())
    }

    fn write(&mut self, _name: &str, bytes: &[u8]) -> io::Result<()> {
        self.open
            .as_mut()
            .ok_or_else(Self::not_open)?
            .write_all(bytes)
    }

    fn sync(&mut self, _name: &str) -> io::Result<()> {
        let f = self.open.take().ok_or_else(Self::not_open)?;
        f.sync_all()
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        File::open(&self.dir)?.sync_all()
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        match fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

fn io_code(e: &io::Error) -> Code {
    // ENOSPC and EDQUOT: the medium is full.
    match e.raw_os_error() {
        Some(28) | Some(122) => Code::StorageFull,
        _ => Code::StorageIo,
    }
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32_finish(crc32_update(CRC_INIT, bytes))
}

type Records = BTreeMap<u8, Vec<u8>>;

fn encode(seq: u64, records: &Records) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC);
    out.push(FILE_VERSION);
    out.extend_from_slice(&seq.to_le_bytes());
    out.push(records.len() as u8);
    for (id, bytes) in records {
        out.push(*id);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

fn decode(bytes: &[u8]) -> Result<(u64, Records), Code> {
    if bytes.len() < 4 + 1 + 8 + 1 + 4 {
        return Err(Code::RecordCorrupt);
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 4);
    if crc32(body).to_le_bytes() != trailer || body.get(..4) != Some(&MAGIC[..]) {
        return Err(Code::RecordCorrupt);
    }
    match body.get(4).copied() {
        Some(FILE_VERSION) => {}
        Some(v) if v > FILE_VERSION => return Err(Code::RecordFromNewerVersion),
        _ => return Err(Code::RecordCorrupt),
    }
    let mut at = 5usize;
    let mut take = |n: usize| -> Result<&[u8], Code> {
        let s = body.get(at..at + n).ok_or(Code::RecordCorrupt)?;
        at += n;
        Ok(s)
    };
    let seq = u64::from_le_bytes(take(8)?.try_into().map_err(|_| Code::RecordCorrupt)?);
    let count = take(1)?.first().copied().unwrap_or(0);
    let mut records = Records::new();
    for _ in 0..count {
        let id = take(1)?.first().copied().unwrap_or(0);
        let len = u32::from_le_bytes(take(4)?.try_into().map_err(|_| Code::RecordCorrupt)?);
        let bytes = take(len as usize)?;
        if Record::from_id(id).is_none() || records.insert(id, bytes.to_vec()).is_some() {
            return Err(Code::RecordCorrupt);
        }
    }
    if at != body.len() {
        return Err(Code::RecordCorrupt);
    }
    Ok((seq, records))
}

/// The engine's records in one state file of a directory.
#[derive(Debug)]
pub struct FileStorage<F: Fs = StdFs> {
    fs: F,
    /// Sequence number and records of the state file in force; `None` until read (or after
    /// a failure, when the directory may hold either state).
    committed: Option<(u64, Records)>,
    staged: Records,
    /// The state file is damaged: the next commit replaces it.
    unreadable: bool,
}

impl FileStorage<StdFs> {
    /// Storage in directory `dir` (created if needed).
    pub fn open_dir(dir: impl Into<PathBuf>) -> Result<Self, Code> {
        let fs = StdFs::new(dir).map_err(|e| io_code(&e))?;
        FileStorage::open(fs)
    }
}

impl<F: Fs> FileStorage<F> {
    /// Storage on `fs`; a temporary file an interrupted save left behind is removed.
    pub fn open(mut fs: F) -> Result<Self, Code> {
        fs.remove(TMP).map_err(|e| io_code(&e))?;
        Ok(FileStorage {
            fs,
            committed: None,
            staged: Records::new(),
            unreadable: false,
        })
    }

    /// The file system.
    pub fn fs(&mut self) -> &mut F {
        &mut self.fs
    }

    /// Gives the file system back.
    pub fn into_fs(self) -> F {
        self.fs
    }

    /// The sequence number of the state file in force (0 before the first save).
    pub fn sequence(&mut self) -> Result<u64, Code> {
        self.state().map(|(seq, _)| *seq)
    }

    fn state(&mut self) -> Result<&(u64, Records), Code> {
        if self.committed.is_none() {
            let loaded = match self.fs.read(STATE) {
                Ok(None) => Ok((0, Records::new())),
                Ok(Some(bytes)) => decode(&bytes),
                Err(e) => Err(io_code(&e)),
            };
            self.unreadable = loaded.as_ref().err() == Some(&Code::RecordCorrupt);
            self.committed = Some(loaded?);
        }
        self.committed.as_ref().ok_or(Code::StorageIo)
    }

    fn write_state(&mut self, image: &[u8]) -> io::Result<()> {
        self.fs.create(TMP)?;
        self.fs.write(TMP, image)?;
        self.fs.sync(TMP)?;
        self.fs.rename(TMP, STATE)?;
        self.fs.sync_dir()
    }
}

impl<F: Fs> Storage for FileStorage<F> {
    fn read(&mut self, r: Record, buf: &mut [u8]) -> Result<Option<usize>, Code> {
        let (_, records) = self.state()?;
        let Some(bytes) = records.get(&r.id()) else {
            return Ok(None);
        };
        buf.get_mut(..bytes.len())
            .ok_or(Code::BufferTooSmall)?
            .copy_from_slice(bytes);
        Ok(Some(bytes.len()))
    }

    fn stage(&mut self, r: Record, frame: &[u8]) -> Result<(), Code> {
        self.staged.insert(r.id(), frame.to_vec());
        Ok(())
    }

    fn commit(&mut self) -> Result<(), Code> {
        if self.staged.is_empty() {
            return Ok(());
        }
        let state = self.state().cloned();
        let (seq, mut records) = match state {
            Ok(s) => s,
            // A damaged state file holds nothing that could be restored: replace it.
            Err(Code::RecordCorrupt) if self.unreadable => (0, Records::new()),
            Err(c) => {
                self.staged.clear();
                return Err(c);
            }
        };
        records.append(&mut self.staged);
        let seq = seq.wrapping_add(1);
        let image = encode(seq, &records);
        match self.write_state(&image) {
            Ok(()) => {
                self.committed = Some((seq, records));
                self.unreadable = false;
                Ok(())
            }
            Err(e) => {
                self.committed = None;
                Err(io_code(&e))
            }
        }
    }

    fn discard(&mut self) {
        self.staged.clear();
    }

    fn wipe(&mut self) -> Result<(), Code> {
        self.staged.clear();
        self.committed = None;
        let r = self
            .fs
            .remove(STATE)
            .and_then(|_| self.fs.remove(TMP))
            .and_then(|_| self.fs.sync_dir());
        r.map_err(|e| io_code(&e))?;
        self.committed = Some((0, Records::new()));
        self.unreadable = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tempdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(std::format!(
            "slup-file-storage-{name}-{}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn a_commit_replaces_the_state_file_and_a_reopen_reads_it() {
        let dir = tempdir("roundtrip");
        let mut s = FileStorage::open_dir(&dir).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(s.read(Record::Trust, &mut buf), Ok(None));
        s.stage(Record::Trust, b"trust-1").unwrap();
        s.stage(Record::Usage, b"usage-1").unwrap();
        s.commit().unwrap();
        s.stage(Record::Usage, b"usage-2").unwrap();
        s.commit().unwrap();
        // A leftover temporary file (an interrupted save) is ignored and removed.
        fs::write(dir.join(TMP), b"half a save").unwrap();
        let mut s = FileStorage::open_dir(&dir).unwrap();
        assert!(!dir.join(TMP).exists());
        assert_eq!(s.sequence(), Ok(2));
        assert_eq!(s.read(Record::Trust, &mut buf), Ok(Some(7)));
        assert_eq!(&buf[..7], b"trust-1");
        assert_eq!(s.read(Record::Usage, &mut buf), Ok(Some(7)));
        assert_eq!(&buf[..7], b"usage-2");
        s.wipe().unwrap();
        assert_eq!(s.read(Record::Usage, &mut buf), Ok(None));
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn damaged_and_newer_state_files_are_refused_by_name() {
        let dir = tempdir("damaged");
        let mut s = FileStorage::open_dir(&dir).unwrap();
        s.stage(Record::Policy, b"policy").unwrap();
        s.commit().unwrap();
        let good = fs::read(dir.join(STATE)).unwrap();
        let mut buf = [0u8; 64];
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            fs::write(dir.join(STATE), &bad).unwrap();
            let mut s = FileStorage::open_dir(&dir).unwrap();
            assert_eq!(s.read(Record::Policy, &mut buf), Err(Code::RecordCorrupt));
        }
        // A damaged file is replaced by the next save.
        let mut s = FileStorage::open_dir(&dir).unwrap();
        assert!(s.read(Record::Policy, &mut buf).is_err());
        s.stage(Record::Policy, b"again").unwrap();
        s.commit().unwrap();
        assert_eq!(s.read(Record::Policy, &mut buf), Ok(Some(5)));
        // A newer format is refused, and never overwritten.
        let mut newer = encode(9, &Records::new());
        newer[4] = FILE_VERSION + 1;
        let n = newer.len() - 4;
        let crc = crc32(&newer[..n]);
        newer[n..].copy_from_slice(&crc.to_le_bytes());
        fs::write(dir.join(STATE), &newer).unwrap();
        let mut s = FileStorage::open_dir(&dir).unwrap();
        assert_eq!(
            s.read(Record::Policy, &mut buf),
            Err(Code::RecordFromNewerVersion)
        );
        s.stage(Record::Policy, b"older").unwrap();
        assert_eq!(s.commit(), Err(Code::RecordFromNewerVersion));
        assert_eq!(fs::read(dir.join(STATE)).unwrap(), newer);
        fs::remove_dir_all(&dir).unwrap();
    }
}
