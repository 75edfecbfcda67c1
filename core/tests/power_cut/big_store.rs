//! The lab's service store with room for any number of usage reports: a device that reports
//! for years (the wear simulation) or through thousands of power cuts sends far more reports
//! than `MemStore`'s fixed table holds. Everything else is `MemStore`'s.

use std::collections::BTreeMap;

use slup_core::server::store::{
    InstanceRecord, Name, PiId, PollRecord, ReportRecord, SaId, StoredPolicy, TokenId, TokenRecord,
    VaId, VirtualAccount,
};
use slup_core::server::{MemStore, ServiceStore};
use slup_core::types::{ReportId, Timestamp, Udi};
use slup_core::Code;

/// `MemStore`, with reports in an unbounded map keyed by (UDI, report id).
#[derive(Clone, Debug, Default)]
pub struct BigStore {
    inner: MemStore,
    reports: BTreeMap<(String, String, u64), ReportRecord>,
}

impl BigStore {
    pub fn new() -> Self {
        BigStore {
            inner: MemStore::new(),
            reports: BTreeMap::new(),
        }
    }
}

fn key(udi: &Udi<'_>, id: ReportId) -> (String, String, u64) {
    (
        udi.udi_pid.as_str().to_string(),
        udi.udi_serial_number.as_str().to_string(),
        id.0,
    )
}

impl ServiceStore for BigStore {
    fn add_smart_account(&mut self, name: &str) -> Result<SaId, Code> {
        self.inner.add_smart_account(name)
    }
    fn smart_account_by_name(&self, name: &str) -> Result<Option<SaId>, Code> {
        self.inner.smart_account_by_name(name)
    }
    fn smart_account_name(&self, id: SaId) -> Result<Option<Name>, Code> {
        self.inner.smart_account_name(id)
    }
    fn add_virtual_account(&mut self, sa: SaId, name: &str) -> Result<VaId, Code> {
        self.inner.add_virtual_account(sa, name)
    }
    fn virtual_account_by_name(&self, sa: SaId, name: &str) -> Result<Option<VaId>, Code> {
        self.inner.virtual_account_by_name(sa, name)
    }
    fn virtual_account(&self, id: VaId) -> Result<Option<VirtualAccount>, Code> {
        self.inner.virtual_account(id)
    }
    fn set_policy(&mut self, va: VaId, policy: Option<StoredPolicy>) -> Result<(), Code> {
        self.inner.set_policy(va, policy)
    }
    fn add_token(&mut self, token: &TokenRecord) -> Result<TokenId, Code> {
        self.inner.add_token(token)
    }
    fn token_by_text(&self, text: &str) -> Result<Option<(TokenId, TokenRecord)>, Code> {
        self.inner.token_by_text(text)
    }
    fn instance(&self, id: PiId) -> Result<Option<InstanceRecord>, Code> {
        self.inner.instance(id)
    }
    fn instance_by_udi(&self, udi: &Udi<'_>) -> Result<Option<PiId>, Code> {
        self.inner.instance_by_udi(udi)
    }
    fn last_trust_id(&self) -> Result<u64, Code> {
        self.inner.last_trust_id()
    }
    fn commit_trust(
        &mut self,
        token: TokenId,
        uses: u32,
        instance: Option<PiId>,
        record: &InstanceRecord,
    ) -> Result<PiId, Code> {
        self.inner.commit_trust(token, uses, instance, record)
    }
    fn set_removed(&mut self, id: PiId, removed: bool) -> Result<(), Code> {
        self.inner.set_removed(id, removed)
    }
    fn touch_instance(&mut self, id: PiId, now: Timestamp) -> Result<(), Code> {
        self.inner.touch_instance(id, now)
    }
    fn report(&self, udi: &Udi<'_>, id: ReportId) -> Result<Option<ReportRecord>, Code> {
        Ok(self.reports.get(&key(udi, id)).cloned())
    }
    fn add_report(&mut self, report: &ReportRecord) -> Result<(), Code> {
        let udi = report.udi.udi()?;
        self.reports
            .insert(key(&udi, report.report_id), report.clone());
        Ok(())
    }
    fn report_count(&self, instance: PiId) -> Result<usize, Code> {
        Ok(self
            .reports
            .values()
            .filter(|r| r.instance == instance)
            .count())
    }
    fn add_poll(&mut self, poll: &PollRecord) -> Result<(), Code> {
        self.inner.add_poll(poll)
    }
    fn take_poll(&mut self, instance: PiId, poll_id: &str) -> Result<Option<PollRecord>, Code> {
        self.inner.take_poll(instance, poll_id)
    }
}
