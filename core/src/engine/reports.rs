//! Closed usage reports, kept as their exact signed bytes until the service acknowledges them.
//!
//! A closed report is immutable: it is signed once, stored as bytes, sent (perhaps many times)
//! exactly as stored, and deleted only when an ACK names it. A rejected report is kept with its
//! reason. When the store is full, closing a new report fails and the report stays open — the
//! caller's usage is never dropped to make room.

use crate::error::Code;
use crate::types::ReportId;

/// Default number of closed reports held (96 bytes each on a 32-bit target, besides their
/// bytes).
pub const DEFAULT_REPORTS: usize = 4;
/// Default bytes for their signed contents: four reports of an HA pair (4.5 KiB). A signed RUM
/// report with a 75-byte entitlement tag is about 950 bytes for a single unit and 1,030 for a
/// pair, plus about 50 per sub-device that joined or left; four is what an outage followed by
/// a reload piles up (a usage change, a sync, the reload, the next sync). A product with more
/// tags, or that must hold reports through long outages, raises it (`ReportStore<N, BYTES>`);
/// when it is full, new usage stays in the open report and keeps counting rather than being
/// dropped.
pub const DEFAULT_REPORT_BYTES: usize = 4608;
/// Longest rejection reason kept (longer ones are cut); the reference service's longest is 52
/// bytes.
pub const MAX_REASON_LEN: usize = 64;

/// Where a closed report stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportState {
    /// Closed, not yet in an answered exchange.
    Closed,
    /// Sent; waiting for its ACK (possibly through `OK_POLL`).
    Pending,
    /// The service refused it; kept with the reason.
    Rejected,
}

/// One stored report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredReport {
    /// Its id.
    pub id: ReportId,
    /// Index of its entitlement tag.
    pub tag: usize,
    /// Where it stands.
    pub state: ReportState,
    /// When it closed, Unix s.
    pub closed_s: u64,
    /// Why the service refused it.
    pub reason: heapless::String<MAX_REASON_LEN, u8>,
    off: usize,
    len: usize,
}

/// Closed reports and their bytes.
#[derive(Clone, Debug)]
pub struct ReportStore<const N: usize = DEFAULT_REPORTS, const BYTES: usize = DEFAULT_REPORT_BYTES>
{
    meta: heapless::Vec<StoredReport, N>,
    arena: [u8; BYTES],
    used: usize,
}

impl<const N: usize, const BYTES: usize> Default for ReportStore<N, BYTES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize, const BYTES: usize> ReportStore<N, BYTES> {
    /// An empty store.
    pub const fn new() -> Self {
        ReportStore {
            meta: heapless::Vec::new(),
            arena: [0; BYTES],
            used: 0,
        }
    }

    /// The free space to sign a report into, or `CapacityExceeded` if no slot is left.
    pub fn free(&mut self) -> Result<&mut [u8], Code> {
        if self.meta.is_full() {
            return Err(Code::CapacityExceeded);
        }
        self.arena
            .get_mut(self.used..)
            .ok_or(Code::CapacityExceeded)
    }

    /// Keeps the `len` bytes just written into [`ReportStore::free`] as report `id`.
    pub fn commit(
        &mut self,
        id: ReportId,
        tag: usize,
        len: usize,
        closed_s: u64,
    ) -> Result<(), Code> {
        let end = self.used.checked_add(len).ok_or(Code::CapacityExceeded)?;
        if end > BYTES || self.meta.iter().any(|r| r.id == id) {
            return Err(Code::InvalidArgument);
        }
        self.meta
            .push(StoredReport {
                id,
                tag,
                state: ReportState::Closed,
                closed_s,
                reason: heapless::String::new(),
                off: self.used,
                len,
            })
            .map_err(|_| Code::CapacityExceeded)?;
        self.used = end;
        Ok(())
    }

    /// Every stored report, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &StoredReport> {
        self.meta.iter()
    }

    /// The signed bytes of a report.
    pub fn bytes(&self, r: &StoredReport) -> &[u8] {
        self.arena
            .get(r.off..r.off.saturating_add(r.len))
            .unwrap_or_default()
    }

    /// Number of reports held.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// `true` if nothing is held.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Bytes in use.
    pub fn bytes_used(&self) -> usize {
        self.used
    }

    /// Sets the state of report `id`; `false` if unknown.
    pub fn set_state(&mut self, id: ReportId, state: ReportState) -> bool {
        match self.meta.iter_mut().find(|r| r.id == id) {
            Some(r) => {
                r.state = state;
                true
            }
            None => false,
        }
    }

    /// Every `Pending` report goes back to `Closed` (its exchange failed and will be redone).
    pub fn unsend_pending(&mut self) {
        for r in self
            .meta
            .iter_mut()
            .filter(|r| r.state == ReportState::Pending)
        {
            r.state = ReportState::Closed;
        }
    }

    /// Marks `id` rejected with `reason`; `false` if unknown.
    pub fn reject(&mut self, id: ReportId, reason: impl Iterator<Item = char>) -> bool {
        match self.meta.iter_mut().find(|r| r.id == id) {
            Some(r) => {
                r.state = ReportState::Rejected;
                r.reason.clear();
                for c in reason {
                    if r.reason.push(c).is_err() {
                        break;
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Deletes an acknowledged report and compacts the arena; `false` if unknown.
    pub fn remove(&mut self, id: ReportId) -> bool {
        let Some(pos) = self.meta.iter().position(|r| r.id == id) else {
            return false;
        };
        let gone = self.meta.remove(pos);
        let tail = gone.off.saturating_add(gone.len);
        self.arena.copy_within(tail..self.used, gone.off);
        self.used = self.used.saturating_sub(gone.len);
        for r in self.meta.iter_mut().filter(|r| r.off > gone.off) {
            r.off = r.off.saturating_sub(gone.len);
        }
        true
    }

    /// Rewrites every `Closed` report through `f` (old bytes in, new bytes written into the
    /// free space, their length returned), keeping the order. Stops at the first error; the
    /// reports rewritten so far stay rewritten. Returns how many were rewritten.
    pub fn rewrite_closed(
        &mut self,
        mut f: impl FnMut(&[u8], &mut [u8]) -> Result<usize, Code>,
    ) -> Result<usize, Code> {
        let mut done = 0usize;
        for i in 0..self.meta.len() {
            let Some(r) = self.meta.get(i).filter(|r| r.state == ReportState::Closed) else {
                continue;
            };
            let (off, old) = (r.off, r.len);
            let (held, free) = self.arena.split_at_mut(self.used);
            let src = held.get(off..off + old).ok_or(Code::InvalidArgument)?;
            let free_len = free.len();
            let new = f(src, free)?;
            if new > free_len {
                return Err(Code::BufferTooSmall);
            }
            let end = self.used + new;
            // Drop the old bytes, then turn the new ones (now at the end) into their place.
            self.arena.copy_within(off + old..end, off);
            self.arena
                .get_mut(off..end - old)
                .ok_or(Code::InvalidArgument)?
                .rotate_right(new);
            self.used = end - old;
            for other in self.meta.iter_mut().filter(|o| o.off > off) {
                other.off = other.off - old + new;
            }
            if let Some(r) = self.meta.get_mut(i) {
                r.len = new;
            }
            done += 1;
        }
        Ok(done)
    }

    /// Forgets everything (factory reset).
    pub fn clear(&mut self) {
        self.meta.clear();
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put<const N: usize, const B: usize>(
        s: &mut ReportStore<N, B>,
        id: u64,
        bytes: &[u8],
    ) -> Result<(), Code> {
        let free = s.free()?;
        free.get_mut(..bytes.len())
            .ok_or(Code::CapacityExceeded)?
            .copy_from_slice(bytes);
        s.commit(ReportId(id), 0, bytes.len(), 0)
    }

    #[test]
    fn removal_compacts_and_keeps_the_other_bytes_intact() {
        let mut s: ReportStore<4, 32> = ReportStore::new();
        put(&mut s, 1, b"aaaa").unwrap();
        put(&mut s, 2, b"bbbbbb").unwrap();
        put(&mut s, 3, b"cc").unwrap();
        assert!(s.remove(ReportId(2)));
        let all: std::vec::Vec<_> = s.iter().map(|r| (r.id.0, s.bytes(r).to_vec())).collect();
        assert_eq!(all, [(1, b"aaaa".to_vec()), (3, b"cc".to_vec())]);
        assert_eq!(s.bytes_used(), 6);
        assert!(!s.remove(ReportId(2)));
    }

    #[test]
    fn full_store_refuses_instead_of_dropping() {
        let mut s: ReportStore<2, 8> = ReportStore::new();
        put(&mut s, 1, b"1234").unwrap();
        assert_eq!(put(&mut s, 2, b"123456"), Err(Code::CapacityExceeded));
        put(&mut s, 2, b"12").unwrap();
        assert_eq!(s.free().unwrap_err(), Code::CapacityExceeded);
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn rewriting_closed_reports_keeps_order_and_the_others_intact() {
        let mut s: ReportStore<4, 32> = ReportStore::new();
        put(&mut s, 1, b"aaaa").unwrap();
        put(&mut s, 2, b"bb").unwrap();
        put(&mut s, 3, b"cccccc").unwrap();
        put(&mut s, 4, b"dd").unwrap();
        assert!(s.set_state(ReportId(2), ReportState::Pending));
        // Longer, shorter, and the same length.
        let n = s
            .rewrite_closed(|old, out| {
                let new: &[u8] = match old {
                    b"aaaa" => b"AAAAAAA",
                    b"cccccc" => b"C",
                    _ => b"DD",
                };
                out.get_mut(..new.len())
                    .ok_or(Code::CapacityExceeded)?
                    .copy_from_slice(new);
                Ok(new.len())
            })
            .unwrap();
        assert_eq!(n, 3);
        let all: std::vec::Vec<_> = s.iter().map(|r| (r.id.0, s.bytes(r).to_vec())).collect();
        assert_eq!(
            all,
            [
                (1, b"AAAAAAA".to_vec()),
                (2, b"bb".to_vec()),
                (3, b"C".to_vec()),
                (4, b"DD".to_vec())
            ]
        );
        assert_eq!(s.bytes_used(), 12);
        // No room for a rewrite: the error comes back and the report is left as it was.
        let mut full: ReportStore<1, 4> = ReportStore::new();
        put(&mut full, 1, b"abcd").unwrap();
        assert_eq!(
            full.rewrite_closed(|_, out| out.get_mut(..1).map(|_| 1).ok_or(Code::CapacityExceeded)),
            Err(Code::CapacityExceeded)
        );
        assert_eq!(full.bytes(full.iter().next().unwrap()), b"abcd");
    }

    #[test]
    fn states_and_reasons() {
        let mut s: ReportStore = ReportStore::new();
        put(&mut s, 7, b"x").unwrap();
        assert!(s.set_state(ReportId(7), ReportState::Pending));
        s.unsend_pending();
        assert_eq!(s.iter().next().unwrap().state, ReportState::Closed);
        assert!(s.reject(ReportId(7), "window in the future".chars()));
        let r = s.iter().next().unwrap();
        assert_eq!(
            (r.state, r.reason.as_str()),
            (ReportState::Rejected, "window in the future")
        );
        assert!(!s.set_state(ReportId(8), ReportState::Pending));
    }
}
