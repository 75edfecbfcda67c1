//! [`MemStore`]: a [`ServiceStore`] in fixed-size RAM tables, for tests, fuzzers and the Python
//! harness. Nothing survives the process; the reference server uses SQLite instead.

use heapless::Vec;

use super::store::{
    fixed, InstanceRecord, Name, PiId, PollRecord, ReportRecord, SaId, ServiceStore, StoredPolicy,
    TokenId, TokenRecord, VaId, VirtualAccount,
};
use crate::error::Code;
use crate::types::{ReportId, Timestamp, Udi};

/// Default number of ID tokens.
pub const DEFAULT_TOKENS: usize = 16;
/// Default number of product instances.
pub const DEFAULT_INSTANCES: usize = 16;
/// Default number of stored usage reports.
pub const DEFAULT_REPORTS: usize = 128;
/// Default number of pending poll results.
pub const DEFAULT_POLLS: usize = 16;
/// Default number of smart accounts.
pub const DEFAULT_SMART_ACCOUNTS: usize = 4;
/// Default number of virtual accounts (all smart accounts together).
pub const DEFAULT_VIRTUAL_ACCOUNTS: usize = 8;

/// A RAM store with a fixed capacity per table; a full table answers
/// [`Code::CapacityExceeded`] and keeps what it has.
///
/// At the default capacities it takes about 130 KiB, most of it usage reports (each keeps
/// its entitlement tag) and instances (each keeps up to eight units with their keys).
#[derive(Clone, Debug)]
pub struct MemStore<
    const TOKENS: usize = DEFAULT_TOKENS,
    const INSTANCES: usize = DEFAULT_INSTANCES,
    const REPORTS: usize = DEFAULT_REPORTS,
    const POLLS: usize = DEFAULT_POLLS,
    const SMART_ACCOUNTS: usize = DEFAULT_SMART_ACCOUNTS,
    const VIRTUAL_ACCOUNTS: usize = DEFAULT_VIRTUAL_ACCOUNTS,
> {
    smart_accounts: Vec<Name, SMART_ACCOUNTS>,
    virtual_accounts: Vec<VirtualAccount, VIRTUAL_ACCOUNTS>,
    tokens: Vec<TokenRecord, TOKENS>,
    instances: Vec<InstanceRecord, INSTANCES>,
    reports: Vec<ReportRecord, REPORTS>,
    polls: Vec<PollRecord, POLLS>,
    last_trust_id: u64,
}

impl<
        const TOKENS: usize,
        const INSTANCES: usize,
        const REPORTS: usize,
        const POLLS: usize,
        const SMART_ACCOUNTS: usize,
        const VIRTUAL_ACCOUNTS: usize,
    > MemStore<TOKENS, INSTANCES, REPORTS, POLLS, SMART_ACCOUNTS, VIRTUAL_ACCOUNTS>
{
    /// An empty store.
    pub const fn new() -> Self {
        MemStore {
            smart_accounts: Vec::new(),
            virtual_accounts: Vec::new(),
            tokens: Vec::new(),
            instances: Vec::new(),
            reports: Vec::new(),
            polls: Vec::new(),
            last_trust_id: 0,
        }
    }

    /// Pending poll results.
    pub fn poll_count(&self) -> usize {
        self.polls.len()
    }

    /// Every stored report, in arrival order.
    pub fn reports(&self) -> impl Iterator<Item = &ReportRecord> {
        self.reports.iter()
    }
}

impl<
        const TOKENS: usize,
        const INSTANCES: usize,
        const REPORTS: usize,
        const POLLS: usize,
        const SMART_ACCOUNTS: usize,
        const VIRTUAL_ACCOUNTS: usize,
    > Default for MemStore<TOKENS, INSTANCES, REPORTS, POLLS, SMART_ACCOUNTS, VIRTUAL_ACCOUNTS>
{
    fn default() -> Self {
        Self::new()
    }
}

/// Row index of a new row in a table holding `len` rows.
fn next_id(len: usize) -> Result<u32, Code> {
    u32::try_from(len).map_err(|_| Code::CapacityExceeded)
}

/// Ids are row indexes; a foreign or stale id is simply not found.
fn index(id: u32) -> usize {
    usize::try_from(id).unwrap_or(usize::MAX)
}

fn push<T, const N: usize>(v: &mut Vec<T, N>, item: T) -> Result<u32, Code> {
    let id = next_id(v.len())?;
    v.push(item).map_err(|_| Code::CapacityExceeded)?;
    Ok(id)
}

impl<
        const TOKENS: usize,
        const INSTANCES: usize,
        const REPORTS: usize,
        const POLLS: usize,
        const SMART_ACCOUNTS: usize,
        const VIRTUAL_ACCOUNTS: usize,
    > ServiceStore
    for MemStore<TOKENS, INSTANCES, REPORTS, POLLS, SMART_ACCOUNTS, VIRTUAL_ACCOUNTS>
{
    fn add_smart_account(&mut self, name: &str) -> Result<SaId, Code> {
        if self.smart_account_by_name(name)?.is_some() {
            return Err(Code::InvalidArgument);
        }
        push(&mut self.smart_accounts, fixed(name)?).map(SaId)
    }

    fn smart_account_by_name(&self, name: &str) -> Result<Option<SaId>, Code> {
        Ok(self
            .smart_accounts
            .iter()
            .position(|n| n == name)
            .map(next_id)
            .transpose()?
            .map(SaId))
    }

    fn smart_account_name(&self, id: SaId) -> Result<Option<Name>, Code> {
        Ok(self.smart_accounts.get(index(id.0)).cloned())
    }

    fn add_virtual_account(&mut self, sa: SaId, name: &str) -> Result<VaId, Code> {
        if self.smart_accounts.get(index(sa.0)).is_none()
            || self.virtual_account_by_name(sa, name)?.is_some()
        {
            return Err(Code::InvalidArgument);
        }
        let va = VirtualAccount {
            smart_account: sa,
            name: fixed(name)?,
            policy: None,
        };
        push(&mut self.virtual_accounts, va).map(VaId)
    }

    fn virtual_account_by_name(&self, sa: SaId, name: &str) -> Result<Option<VaId>, Code> {
        Ok(self
            .virtual_accounts
            .iter()
            .position(|v| v.smart_account == sa && v.name == name)
            .map(next_id)
            .transpose()?
            .map(VaId))
    }

    fn virtual_account(&self, id: VaId) -> Result<Option<VirtualAccount>, Code> {
        Ok(self.virtual_accounts.get(index(id.0)).cloned())
    }

    fn set_policy(&mut self, va: VaId, policy: Option<StoredPolicy>) -> Result<(), Code> {
        let v = self
            .virtual_accounts
            .get_mut(index(va.0))
            .ok_or(Code::InvalidArgument)?;
        v.policy = policy;
        Ok(())
    }

    fn add_token(&mut self, token: &TokenRecord) -> Result<TokenId, Code> {
        if self.token_by_text(&token.text)?.is_some()
            || self
                .virtual_accounts
                .get(index(token.virtual_account.0))
                .is_none()
        {
            return Err(Code::InvalidArgument);
        }
        push(&mut self.tokens, token.clone()).map(TokenId)
    }

    fn token_by_text(&self, text: &str) -> Result<Option<(TokenId, TokenRecord)>, Code> {
        for (i, t) in self.tokens.iter().enumerate() {
            if t.text == text {
                return Ok(Some((TokenId(next_id(i)?), t.clone())));
            }
        }
        Ok(None)
    }

    fn instance(&self, id: PiId) -> Result<Option<InstanceRecord>, Code> {
        Ok(self.instances.get(index(id.0)).cloned())
    }

    fn instance_by_udi(&self, udi: &Udi<'_>) -> Result<Option<PiId>, Code> {
        let mut removed = None;
        for (i, rec) in self.instances.iter().enumerate() {
            if rec.member(udi).is_some() {
                if !rec.removed {
                    return Ok(Some(PiId(next_id(i)?)));
                }
                // Later rows are newer: the last removed one wins.
                removed = Some(PiId(next_id(i)?));
            }
        }
        Ok(removed)
    }

    fn last_trust_id(&self) -> Result<u64, Code> {
        Ok(self.last_trust_id)
    }

    fn commit_trust(
        &mut self,
        token: TokenId,
        uses: u32,
        instance: Option<PiId>,
        record: &InstanceRecord,
    ) -> Result<PiId, Code> {
        // Check everything that can fail before changing anything: all or nothing.
        if self.tokens.get(index(token.0)).is_none() {
            return Err(Code::InvalidArgument);
        }
        let id = match instance {
            Some(id) => {
                let slot = self
                    .instances
                    .get_mut(index(id.0))
                    .ok_or(Code::InvalidArgument)?;
                *slot = record.clone();
                id
            }
            None => PiId(push(&mut self.instances, record.clone())?),
        };
        if let Some(t) = self.tokens.get_mut(index(token.0)) {
            t.uses = uses;
        }
        let highest = record.members.iter().map(|m| m.trust_id.0).max();
        self.last_trust_id = self.last_trust_id.max(highest.unwrap_or(0));
        Ok(id)
    }

    fn set_removed(&mut self, id: PiId, removed: bool) -> Result<(), Code> {
        let rec = self
            .instances
            .get_mut(index(id.0))
            .ok_or(Code::InvalidArgument)?;
        rec.removed = removed;
        Ok(())
    }

    fn touch_instance(&mut self, id: PiId, now: Timestamp) -> Result<(), Code> {
        let rec = self
            .instances
            .get_mut(index(id.0))
            .ok_or(Code::InvalidArgument)?;
        rec.last_contact = now;
        Ok(())
    }

    fn report(&self, udi: &Udi<'_>, id: ReportId) -> Result<Option<ReportRecord>, Code> {
        Ok(self
            .reports
            .iter()
            .find(|r| r.report_id == id && r.udi.matches(udi))
            .cloned())
    }

    fn add_report(&mut self, report: &ReportRecord) -> Result<(), Code> {
        push(&mut self.reports, report.clone()).map(|_| ())
    }

    fn report_count(&self, instance: PiId) -> Result<usize, Code> {
        Ok(self
            .reports
            .iter()
            .filter(|r| r.instance == instance)
            .count())
    }

    fn add_poll(&mut self, poll: &PollRecord) -> Result<(), Code> {
        push(&mut self.polls, poll.clone()).map(|_| ())
    }

    fn take_poll(&mut self, instance: PiId, poll_id: &str) -> Result<Option<PollRecord>, Code> {
        let at = self
            .polls
            .iter()
            .position(|p| p.instance == instance && p.poll_id == poll_id);
        // `at` came from `position` on this very table, so `swap_remove` stays in bounds.
        Ok(at.map(|i| self.polls.swap_remove(i)))
    }
}
