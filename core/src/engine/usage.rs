//! Usage measurement: the count in use per entitlement tag, 15-minute samples into open RUM
//! reports, sub-device joins and leaves (the 9800's access points), and closing a report into
//! its signed, immutable bytes.
//!
//! One open report per tag holds one measurement: a count change closes the report (reason
//! `UsageChanged`) and opens the next with the new count, so a report's count is exact for its
//! whole window. Joins and leaves wait in a bounded list until their tag's report closes; what
//! does not fit is counted in `sudi_list_overflow`, never dropped silently.

use crate::crypto::Signer;
use crate::engine::persist::{In, Out};
use crate::error::{Code, Error};
use crate::msg::rum::{
    self, MeasuredValue, Measurement, MeasurementMeta, RumPayload, RumVersion, ValueType,
    MAX_SUDI_LIST,
};
use crate::msg::{HaUdi, MAX_HA_MEMBERS};
use crate::types::{Count, Delta, Ident, InstanceId, ReportId, Udi, UdiPart};

/// Seconds between samples, as on real devices (`Interval: 00:15:00`).
pub const SAMPLE_INTERVAL_S: u32 = 900;
/// Longest entitlement tag accepted.
pub const MAX_TAG_LEN: usize = 96;
/// Default number of entitlement tags tracked.
pub const DEFAULT_TAGS: usize = 4;
/// Default number of sub-device joins/leaves held until their report closes.
pub const DEFAULT_ENTITY_CHANGES: usize = 16;
/// Longest sub-device UDI part kept (PIDs and serials of access points are far shorter).
pub const MAX_ENTITY_PART_LEN: usize = 32;

/// Why a report closed (`termination_reason`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// The reporting time came.
    ReportTime,
    /// The product reloads (or reloaded without closing).
    ProductReload,
    /// Someone asked for current usage (`sync_now`, `save_usage`, CSLU pull).
    CurrentUsageRequested,
    /// The count changed.
    UsageChanged,
}

impl CloseReason {
    /// The wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::ReportTime => "ReportTime",
            CloseReason::ProductReload => "ProductReload",
            CloseReason::CurrentUsageRequested => "CurrentUsageRequested",
            CloseReason::UsageChanged => "UsageChanged",
        }
    }
}

/// A sub-device UDI kept by value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntityUdi {
    pid: heapless::String<MAX_ENTITY_PART_LEN>,
    serial: heapless::String<MAX_ENTITY_PART_LEN>,
}

impl EntityUdi {
    /// Copies a UDI; parts longer than [`MAX_ENTITY_PART_LEN`] are an `InvalidArgument`.
    pub fn new(udi: &Udi<'_>) -> Result<Self, Code> {
        let copy = |s: &str| heapless::String::try_from(s).map_err(|_| Code::InvalidArgument);
        Ok(EntityUdi {
            pid: copy(udi.udi_pid.as_str())?,
            serial: copy(udi.udi_serial_number.as_str())?,
        })
    }

    /// Borrows it back as a wire UDI.
    pub fn udi(&self) -> Udi<'_> {
        // Both parts were checked by `Udi` when copied in `new`.
        Udi {
            udi_pid: UdiPart::from_validated(&self.pid),
            udi_serial_number: UdiPart::from_validated(&self.serial),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct EntityChange {
    tag: u8,
    joined: bool,
    udi: EntityUdi,
}

/// The open report of one tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// Its id, fixed when it opened.
    pub report_id: ReportId,
    /// Window start, Unix s.
    pub start_s: u64,
    /// Samples taken so far.
    pub num_samples: u32,
    /// The count during the whole window.
    pub count: u64,
    /// Joins and leaves that did not fit the pending list.
    pub overflow: u32,
    /// Clock changes seen in the window, s.
    pub clock_delta_s: i64,
}

/// What `show license air entities summary` shows for a tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EntitySummary {
    /// Sub-devices active when the last report closed.
    pub active_at_last_report: u32,
    /// Joins carried by the last report.
    pub added_with_last_report: u32,
    /// Leaves carried by the last report.
    pub deleted_with_last_report: u32,
    /// Sub-devices active now.
    pub active_now: u32,
}

/// The state of one entitlement tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TagUsage {
    /// The entitlement tag.
    pub tag: heapless::String<MAX_TAG_LEN>,
    /// The count in use now.
    pub count: u64,
    /// The open report, if any.
    pub open: Option<OpenReport>,
    /// Sub-device figures.
    pub entities: EntitySummary,
}

/// The report-independent parts of every RUM payload.
#[derive(Clone, Copy, Debug)]
pub struct ReportContext<'a> {
    /// The reporting device.
    pub sudi: Udi<'a>,
    /// Assigned at trust; empty before.
    pub instance: InstanceId<'a>,
    /// Product software tag.
    pub software_tag: &'a str,
    /// Software version.
    pub software_version: &'a str,
    /// The HA group.
    pub ha: &'a [HaUdi<'a>],
}

/// A report just closed and signed into the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closed {
    /// Its id.
    pub report_id: ReportId,
    /// Index of its tag.
    pub tag: usize,
    /// Length of the signed bytes written.
    pub len: usize,
}

/// Counts, open reports and pending sub-device changes for up to `TAGS` tags.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Usage<const TAGS: usize = DEFAULT_TAGS, const CHANGES: usize = DEFAULT_ENTITY_CHANGES> {
    tags: heapless::Vec<TagUsage, TAGS>,
    changes: heapless::Vec<EntityChange, CHANGES>,
    next_report_id: u64,
}

impl<const TAGS: usize, const CHANGES: usize> Default for Usage<TAGS, CHANGES> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const TAGS: usize, const CHANGES: usize> Usage<TAGS, CHANGES> {
    /// Nothing measured yet.
    pub const fn new() -> Self {
        Usage {
            tags: heapless::Vec::new(),
            changes: heapless::Vec::new(),
            next_report_id: 0,
        }
    }

    /// The tags, in the order first seen.
    pub fn tags(&self) -> &[TagUsage] {
        &self.tags
    }

    /// The next report id to assign (persisted so ids keep increasing across reboots).
    pub fn next_report_id(&self) -> u64 {
        self.next_report_id
    }

    /// Restores the report id counter after a reboot.
    pub fn restore_next_report_id(&mut self, next: u64) {
        self.next_report_id = self.next_report_id.max(next);
    }

    /// Forgets every tag, open report and pending change; the report id counter stays.
    pub fn clear(&mut self) {
        self.tags.clear();
        self.changes.clear();
    }

    /// Writes the persisted form (the `Usage` record body, see `engine::persist`).
    pub(crate) fn encode(&self, out: &mut Out<'_>) -> Result<(), Code> {
        out.u64(self.next_report_id)?;
        out.count(self.tags.len())?;
        for t in &self.tags {
            out.short(t.tag.as_bytes())?;
            out.u64(t.count)?;
            let e = &t.entities;
            for v in [
                e.active_at_last_report,
                e.added_with_last_report,
                e.deleted_with_last_report,
                e.active_now,
            ] {
                out.u32(v)?;
            }
            out.bool(t.open.is_some())?;
            let o = t.open.unwrap_or(OpenReport {
                report_id: ReportId(0),
                start_s: 0,
                num_samples: 0,
                count: 0,
                overflow: 0,
                clock_delta_s: 0,
            });
            out.u64(o.report_id.0)?;
            out.u64(o.start_s)?;
            out.u32(o.num_samples)?;
            out.u64(o.count)?;
            out.u32(o.overflow)?;
            out.i64(o.clock_delta_s)?;
        }
        out.count(self.changes.len())?;
        for c in &self.changes {
            out.u8(c.tag)?;
            out.bool(c.joined)?;
            out.short(c.udi.pid.as_bytes())?;
            out.short(c.udi.serial.as_bytes())?;
        }
        Ok(())
    }

    /// Reads what [`Usage::encode`] wrote. On error the usage is left cleared (the caller
    /// reports the loss); the report id counter never goes back.
    pub(crate) fn restore(&mut self, inp: &mut In<'_>) -> Result<(), Code> {
        self.clear();
        let result = self.read(inp);
        if result.is_err() {
            self.clear();
        }
        result
    }

    fn read(&mut self, inp: &mut In<'_>) -> Result<(), Code> {
        let corrupt = |_| Code::RecordCorrupt;
        self.restore_next_report_id(inp.u64()?);
        for _ in 0..inp.count()? {
            let tag = core::str::from_utf8(inp.short()?).map_err(corrupt)?;
            Ident::new(tag).map_err(|_| Code::RecordCorrupt)?;
            let count = inp.u64()?;
            let entities = EntitySummary {
                active_at_last_report: inp.u32()?,
                added_with_last_report: inp.u32()?,
                deleted_with_last_report: inp.u32()?,
                active_now: inp.u32()?,
            };
            let is_open = inp.bool()?;
            let open = OpenReport {
                report_id: ReportId(inp.u64()?),
                start_s: inp.u64()?,
                num_samples: inp.u32()?,
                count: inp.u64()?,
                overflow: inp.u32()?,
                clock_delta_s: inp.i64()?,
            };
            self.tags
                .push(TagUsage {
                    tag: heapless::String::try_from(tag).map_err(|_| Code::RecordCorrupt)?,
                    count,
                    open: is_open.then_some(open),
                    entities,
                })
                .map_err(|_| Code::CapacityExceeded)?;
        }
        for _ in 0..inp.count()? {
            let tag = inp.u8()?;
            if usize::from(tag) >= self.tags.len() {
                return Err(Code::RecordCorrupt);
            }
            let joined = inp.bool()?;
            let pid = core::str::from_utf8(inp.short()?).map_err(corrupt)?;
            let serial = core::str::from_utf8(inp.short()?).map_err(corrupt)?;
            let udi = Udi::new(pid, serial).map_err(|_| Code::RecordCorrupt)?;
            let udi = EntityUdi::new(&udi).map_err(|_| Code::RecordCorrupt)?;
            self.changes
                .push(EntityChange { tag, joined, udi })
                .map_err(|_| Code::CapacityExceeded)?;
        }
        Ok(())
    }

    fn tag_index(&mut self, tag: &str) -> Result<usize, Code> {
        if let Some(i) = self.tags.iter().position(|t| t.tag == tag) {
            return Ok(i);
        }
        Ident::new(tag)?;
        let copy = heapless::String::try_from(tag).map_err(|_| Code::InvalidArgument)?;
        self.tags
            .push(TagUsage {
                tag: copy,
                count: 0,
                open: None,
                entities: EntitySummary::default(),
            })
            .map_err(|_| Code::CapacityExceeded)?;
        Ok(self.tags.len().saturating_sub(1))
    }

    fn new_report_id(&mut self, now_s: u64) -> ReportId {
        // Seeded from the clock the first time, as real devices do, then strictly increasing.
        let id = self.next_report_id.max(now_s);
        self.next_report_id = id.saturating_add(1);
        ReportId(id)
    }

    fn open(&mut self, i: usize, now_s: u64) {
        let id = self.new_report_id(now_s);
        if let Some(t) = self.tags.get_mut(i) {
            t.open = Some(OpenReport {
                report_id: id,
                start_s: now_s,
                num_samples: 0,
                count: t.count,
                overflow: 0,
                clock_delta_s: 0,
            });
        }
    }

    /// Sets the count in use for `tag`. Returns the index of a tag whose open report must
    /// close because the count changed (the caller closes it with
    /// [`CloseReason::UsageChanged`] and then calls [`Usage::reopen`]).
    pub fn record(&mut self, now_s: u64, tag: &str, count: u64) -> Result<Option<usize>, Code> {
        let i = self.tag_index(tag)?;
        let t = self.tags.get_mut(i).ok_or(Code::InvalidArgument)?;
        let changed = t.count != count;
        t.count = count;
        match t.open {
            None => {
                self.open(i, now_s);
                Ok(None)
            }
            Some(_) if changed => Ok(Some(i)),
            Some(_) => Ok(None),
        }
    }

    /// Opens a fresh report for tag `i` after its previous one closed.
    pub fn reopen(&mut self, i: usize, now_s: u64) {
        self.open(i, now_s);
    }

    /// A sub-device joined (`joined`) or left tag `tag`.
    pub fn entity(
        &mut self,
        now_s: u64,
        tag: &str,
        udi: &Udi<'_>,
        joined: bool,
    ) -> Result<(), Code> {
        let i = self.tag_index(tag)?;
        let copy = EntityUdi::new(udi)?;
        if self.tags.get(i).is_some_and(|t| t.open.is_none()) {
            self.open(i, now_s);
        }
        let t = self.tags.get_mut(i).ok_or(Code::InvalidArgument)?;
        let e = &mut t.entities;
        e.active_now = if joined {
            e.active_now.saturating_add(1)
        } else {
            e.active_now.saturating_sub(1)
        };
        let change = EntityChange {
            tag: u8::try_from(i).map_err(|_| Code::CapacityExceeded)?,
            joined,
            udi: copy,
        };
        if self.changes.push(change).is_err() {
            if let Some(open) = t.open.as_mut() {
                open.overflow = open.overflow.saturating_add(1);
            }
        }
        Ok(())
    }

    /// Takes a sample: every open report counts one more.
    pub fn sample(&mut self) {
        for t in self.tags.iter_mut() {
            if let Some(open) = t.open.as_mut() {
                open.num_samples = open.num_samples.saturating_add(1);
            }
        }
    }

    /// Records a clock change in every open report.
    pub fn clock_changed(&mut self, delta_s: i64) {
        for t in self.tags.iter_mut() {
            if let Some(open) = t.open.as_mut() {
                open.clock_delta_s = open.clock_delta_s.saturating_add(delta_s);
            }
        }
    }

    /// Indexes of tags with an open report.
    pub fn open_tags(&self) -> impl Iterator<Item = usize> + '_ {
        self.tags
            .iter()
            .enumerate()
            .filter(|(_, t)| t.open.is_some())
            .map(|(i, _)| i)
    }

    /// Closes tag `i`'s open report: builds the payload, signs it into `buf`, and moves the
    /// tag's pending joins and leaves into it. The report is gone from RAM afterwards; the
    /// caller owns the signed bytes (and must persist them before anything else).
    pub fn close(
        &mut self,
        i: usize,
        now_s: u64,
        reason: CloseReason,
        ctx: &ReportContext<'_>,
        signer: &impl Signer,
        buf: &mut [u8],
    ) -> Result<Closed, Error> {
        let (report_id, len, n_added, n_removed) =
            self.sign_open(i, now_s, reason, ctx, signer, buf)?;
        // Only now that the report is signed does the RAM state move on.
        let tag_index = u8::try_from(i).unwrap_or(u8::MAX);
        self.changes.retain(|c| c.tag != tag_index);
        if let Some(t) = self.tags.get_mut(i) {
            t.open = None;
            t.entities.added_with_last_report = n_added;
            t.entities.deleted_with_last_report = n_removed;
            t.entities.active_at_last_report = t.entities.active_now;
        }
        Ok(Closed {
            report_id,
            tag: i,
            len,
        })
    }

    /// Builds and signs tag `i`'s open report without changing any state.
    fn sign_open(
        &self,
        i: usize,
        now_s: u64,
        reason: CloseReason,
        ctx: &ReportContext<'_>,
        signer: &impl Signer,
        buf: &mut [u8],
    ) -> Result<(ReportId, usize, u32, u32), Error> {
        let (tag, open) = match self.tags.get(i) {
            Some(TagUsage {
                tag, open: Some(o), ..
            }) => (tag, *o),
            _ => return Err(Error::Protocol(Code::InvalidArgument)),
        };
        let mut added = heapless::Vec::<Udi<'_>, MAX_SUDI_LIST>::new();
        let mut removed = heapless::Vec::<Udi<'_>, MAX_SUDI_LIST>::new();
        let mut overflow = open.overflow;
        for c in self.changes.iter().filter(|c| usize::from(c.tag) == i) {
            let list = if c.joined { &mut added } else { &mut removed };
            if list.push(c.udi.udi()).is_err() {
                overflow = overflow.saturating_add(1);
            }
        }
        let mut ha = heapless::Vec::<HaUdi<'_>, MAX_HA_MEMBERS>::new();
        for h in ctx.ha.iter().take(MAX_HA_MEMBERS) {
            let _ = ha.push(*h);
        }
        let (n_added, n_removed) = (added.len() as u32, removed.len() as u32);
        let mut measurements = heapless::Vec::new();
        let _ = measurements.push(Measurement {
            log_time: now_s,
            metric_name: Ident::new("ENTITLEMENT").map_err(Error::Protocol)?,
            start_time: open.start_s.min(now_s),
            end_time: now_s,
            sample_interval: SAMPLE_INTERVAL_S,
            num_samples: open.num_samples,
            value: MeasuredValue {
                kind: ValueType::COUNT,
                value: Count(open.count),
            },
            meta: MeasurementMeta {
                added_sudi_list: added,
                removed_sudi_list: removed,
                sudi_list_overflow: overflow,
                termination_reason: Ident::new(reason.as_str()).map_err(Error::Protocol)?,
                clock_change_delta: Delta(open.clock_delta_s),
            },
        });
        let payload = RumPayload {
            version: RumVersion,
            report_id: open.report_id,
            sudi: ctx.sudi,
            product_instance_identifier: ctx.instance,
            software_tag: Ident::new(ctx.software_tag).map_err(Error::Protocol)?,
            entitlement_tag: Ident::new(tag).map_err(Error::Protocol)?,
            software_version: Ident::new(ctx.software_version).map_err(Error::Protocol)?,
            ha_udi: ha,
            measurements,
        };
        let len = rum::encode(buf, &payload, signer)?;
        Ok((open.report_id, len, n_added, n_removed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::SoftwareSigner;
    use crate::msg::rum::SignedRum;
    use crate::types::{Role, Uuid};

    const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";
    const T0: u64 = 1_680_767_118;

    fn ctx_with<'a>(ha: &'a [HaUdi<'a>]) -> ReportContext<'a> {
        ReportContext {
            sudi: Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap(),
            instance: InstanceId(Some(
                Uuid::new("2e84a42f-c903-44c5-83b2-e62e258c780f").unwrap(),
            )),
            software_tag: "regid.2018-05.com.cisco.WLC_9500C,1.0",
            software_version: "17.09.02",
            ha,
        }
    }

    fn ap(n: u32) -> std::string::String {
        std::format!("FJC{n:08}")
    }

    #[test]
    fn a_report_carries_its_window_samples_count_and_entities() {
        let signer = SoftwareSigner::from_secret_bytes(&[0x11; 32]).unwrap();
        let ha = [HaUdi {
            role: Role::Active,
            sudi: Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap(),
        }];
        let ctx = ctx_with(&ha);
        let mut u: Usage = Usage::new();
        assert_eq!(u.record(T0, TAG, 3).unwrap(), None);
        for n in 0..3 {
            let s = ap(n);
            u.entity(T0 + 10, TAG, &Udi::new("C9130AXI-E", &s).unwrap(), true)
                .unwrap();
        }
        let s = ap(0);
        u.entity(T0 + 20, TAG, &Udi::new("C9130AXI-E", &s).unwrap(), false)
            .unwrap();
        for _ in 0..46 {
            u.sample();
        }
        u.clock_changed(-3433);
        let mut buf = [0u8; 4096];
        let closed = u
            .close(
                0,
                T0 + 40_500,
                CloseReason::ReportTime,
                &ctx,
                &signer,
                &mut buf,
            )
            .unwrap();
        assert_eq!(closed.report_id, ReportId(T0));
        let r = SignedRum::decode(&buf[..closed.len]).unwrap();
        r.signed
            .verify(crate::crypto::Signer::public_key(&signer))
            .unwrap();
        let m = &r.payload.measurements[0];
        assert_eq!(
            (m.start_time, m.end_time, m.num_samples),
            (T0, T0 + 40_500, 46)
        );
        assert_eq!(m.value.value, Count(3));
        assert_eq!(m.meta.added_sudi_list.len(), 3);
        assert_eq!(m.meta.removed_sudi_list.len(), 1);
        assert_eq!(m.meta.clock_change_delta, Delta(-3433));
        assert_eq!(m.meta.termination_reason.as_str(), "ReportTime");
        let e = u.tags()[0].entities;
        assert_eq!(
            (
                e.active_now,
                e.active_at_last_report,
                e.added_with_last_report,
                e.deleted_with_last_report
            ),
            (2, 2, 3, 1)
        );
        assert!(u.tags()[0].open.is_none());
    }

    #[test]
    fn a_count_change_asks_for_a_close_and_ids_keep_increasing() {
        let signer = SoftwareSigner::from_secret_bytes(&[0x11; 32]).unwrap();
        let ctx = ctx_with(&[]);
        let mut u: Usage = Usage::new();
        u.record(T0, TAG, 3).unwrap();
        assert_eq!(u.record(T0 + 5, TAG, 3).unwrap(), None);
        assert_eq!(u.record(T0 + 6, TAG, 4).unwrap(), Some(0));
        let mut buf = [0u8; 4096];
        let a = u
            .close(
                0,
                T0 + 6,
                CloseReason::UsageChanged,
                &ctx,
                &signer,
                &mut buf,
            )
            .unwrap();
        // The closed report holds the old count; the next opens with the new one.
        assert_eq!(
            SignedRum::decode(&buf[..a.len])
                .unwrap()
                .payload
                .measurements[0]
                .value
                .value,
            Count(3)
        );
        u.reopen(0, T0 + 6);
        assert_eq!(u.tags()[0].open.unwrap().count, 4);
        // Even if the clock went back, the next id is larger.
        let b = u
            .close(
                0,
                T0 - 1000,
                CloseReason::CurrentUsageRequested,
                &ctx,
                &signer,
                &mut buf,
            )
            .unwrap();
        assert!(b.report_id > a.report_id);
        let r = SignedRum::decode(&buf[..b.len]).unwrap();
        let m = &r.payload.measurements[0];
        assert!(m.start_time <= m.end_time);
    }

    #[test]
    fn entity_overflow_is_counted_not_dropped() {
        let signer = SoftwareSigner::from_secret_bytes(&[0x11; 32]).unwrap();
        let ctx = ctx_with(&[]);
        let mut u: Usage<2, 4> = Usage::new();
        u.record(T0, TAG, 1).unwrap();
        for n in 0..10 {
            let s = ap(n);
            u.entity(T0, TAG, &Udi::new("C9130AXI-E", &s).unwrap(), true)
                .unwrap();
        }
        let mut buf = [0u8; 4096];
        let c = u
            .close(
                0,
                T0 + 900,
                CloseReason::ReportTime,
                &ctx,
                &signer,
                &mut buf,
            )
            .unwrap();
        let r = SignedRum::decode(&buf[..c.len]).unwrap();
        let meta = &r.payload.measurements[0].meta;
        assert_eq!(
            meta.added_sudi_list.len() as u32 + meta.sudi_list_overflow,
            10
        );
    }

    #[test]
    fn capacity_and_bad_input_are_errors() {
        let mut u: Usage<1, 1> = Usage::new();
        u.record(T0, TAG, 1).unwrap();
        assert_eq!(u.record(T0, "another", 1), Err(Code::CapacityExceeded));
        assert_eq!(u.record(T0, "bad\"tag", 1), Err(Code::InvalidValue));
        let long = [b'a'; MAX_TAG_LEN + 1];
        let mut u2: Usage = Usage::new();
        assert_eq!(
            u2.record(T0, core::str::from_utf8(&long).unwrap(), 1),
            Err(Code::InvalidArgument)
        );
        let signer = SoftwareSigner::from_secret_bytes(&[0x11; 32]).unwrap();
        let mut small = [0u8; 10];
        let e = u
            .close(
                0,
                T0,
                CloseReason::ReportTime,
                &ctx_with(&[]),
                &signer,
                &mut small,
            )
            .unwrap_err();
        assert_eq!(e.code(), Code::BufferTooSmall);
        // A failed close changes nothing: the report is still open.
        assert!(u.tags()[0].open.is_some());
    }
}
