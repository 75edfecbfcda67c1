//! Records in memory, for tests and host tools that need no persistence. Transactions behave
//! as on the real media: staged records are invisible until committed.

use std::collections::BTreeMap;
use std::vec::Vec;

use super::Storage;
use crate::engine::persist::Record;
use crate::error::Code;

/// Committed records by id, and the records staged for the next commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RamStorage {
    committed: BTreeMap<u8, Vec<u8>>,
    staged: BTreeMap<u8, Vec<u8>>,
    /// Commits so far.
    pub commits: u64,
}

impl RamStorage {
    /// Empty.
    pub fn new() -> Self {
        RamStorage::default()
    }

    /// The committed records, by record id.
    pub fn records(&self) -> &BTreeMap<u8, Vec<u8>> {
        &self.committed
    }
}

impl Storage for RamStorage {
    fn read(&mut self, r: Record, buf: &mut [u8]) -> Result<Option<usize>, Code> {
        let Some(bytes) = self.committed.get(&r.id()) else {
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
        self.committed.append(&mut self.staged);
        self.commits += 1;
        Ok(())
    }

    fn discard(&mut self) {
        self.staged.clear();
    }

    fn wipe(&mut self) -> Result<(), Code> {
        self.committed.clear();
        self.staged.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_records_appear_only_on_commit() {
        let mut s = RamStorage::new();
        let mut buf = [0u8; 8];
        s.stage(Record::Policy, b"abc").unwrap();
        assert_eq!(s.read(Record::Policy, &mut buf), Ok(None));
        s.commit().unwrap();
        assert_eq!(s.read(Record::Policy, &mut buf), Ok(Some(3)));
        s.stage(Record::Policy, b"defg").unwrap();
        s.discard();
        s.commit().unwrap();
        assert_eq!(s.read(Record::Policy, &mut buf), Ok(Some(3)));
        assert_eq!(&buf[..3], b"abc");
        assert_eq!(
            s.read(Record::Policy, &mut [0u8; 2]),
            Err(Code::BufferTooSmall)
        );
        s.wipe().unwrap();
        assert_eq!(s.read(Record::Policy, &mut buf), Ok(None));
    }
}
