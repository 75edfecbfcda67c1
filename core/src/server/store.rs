//! What the service persists, behind the [`ServiceStore`] trait.
//!
//! The service never holds state of its own: accounts, ID tokens, product instances, usage
//! reports and pending poll results all live in a store. [`super::MemStore`] keeps them in RAM
//! (tests, fuzzers, the Python harness); the reference server keeps them in SQLite. Records are
//! plain owned values with fixed-size strings, so a store can hand out copies without
//! allocating, and rows are named by small `Copy` ids.
//!
//! Every method returns `Result<_, Code>`: [`Code::CapacityExceeded`] when a fixed table is full,
//! [`Code::StorageIo`] (or another storage code) when the medium fails. A store never panics and
//! never drops a write silently.

use heapless::String;

use crate::crypto::PublicKey;
use crate::error::Code;
use crate::msg::policy::{Classes, Policy, MAX_DAYS};
use crate::msg::response::{Ack, Rejected, MAX_ACKED, MAX_REJECTED};
use crate::msg::MAX_HA_MEMBERS;
use crate::types::{
    ReportId, Role, Text, Timestamp, TrustId, Udi, Uuid, MAX_TOKEN_LEN, MAX_UDI_PART_LEN,
};

/// Longest smart or virtual account name, and longest policy name, in bytes.
pub const NAME_LEN: usize = 64;
/// Longest entitlement tag a usage record keeps, in bytes (the wire's identifier limit).
pub const TAG_LEN: usize = crate::types::MAX_IDENT_LEN;
/// Length of a UUID's text.
pub const UUID_LEN: usize = 36;

/// An account or policy name.
pub type Name = String<NAME_LEN>;
/// An ID token's text.
pub type TokenText = String<MAX_TOKEN_LEN>;
/// A lower-case UUID's text (product instance ids, poll ids).
pub type UuidText = String<UUID_LEN>;
/// An entitlement tag.
pub type TagText = String<TAG_LEN>;

/// Copies `s` into a fixed-size string; too long is [`Code::CapacityExceeded`].
pub fn fixed<const N: usize>(s: &str) -> Result<String<N>, Code> {
    String::try_from(s).map_err(|_| Code::CapacityExceeded)
}

macro_rules! id_type {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u32);
    };
}

id_type!(
    /// A smart account row.
    SaId
);
id_type!(
    /// A virtual account row.
    VaId
);
id_type!(
    /// An ID token row.
    TokenId
);
id_type!(
    /// A product instance row (not its UUID, which the instance record holds).
    PiId
);

/// An owned UDI, as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UdiBuf {
    /// `udi_pid`.
    pub pid: String<MAX_UDI_PART_LEN>,
    /// `udi_serial_number`.
    pub serial: String<MAX_UDI_PART_LEN>,
}

impl UdiBuf {
    /// Copies a validated UDI.
    pub fn from_udi(udi: &Udi<'_>) -> Result<Self, Code> {
        Ok(UdiBuf {
            pid: fixed(udi.udi_pid.as_str())?,
            serial: fixed(udi.udi_serial_number.as_str())?,
        })
    }

    /// The UDI, checked again (a store may hand back anything it was given).
    pub fn udi(&self) -> Result<Udi<'_>, Code> {
        Udi::new(&self.pid, &self.serial)
    }

    /// `true` if this is `udi`.
    pub fn matches(&self, udi: &Udi<'_>) -> bool {
        self.pid == udi.udi_pid.as_str() && self.serial == udi.udi_serial_number.as_str()
    }
}

/// A virtual account: its smart account, name and policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VirtualAccount {
    /// The smart account it belongs to.
    pub smart_account: SaId,
    /// The name shown in trust codes.
    pub name: Name,
    /// The policy sent to its product instances; `None` sends `null` (no policy change).
    pub policy: Option<StoredPolicy>,
}

/// A policy as stored: the wire [`Policy`] with an owned name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPolicy {
    /// Policy name, e.g. `Custom Policy`.
    pub name: Name,
    /// Whether reports must be acknowledged; `None` keeps Cisco's default.
    pub ack_required: Option<bool>,
    /// Per-class attributes.
    pub classes: Classes,
}

impl StoredPolicy {
    /// Copies a wire policy. A name longer than [`NAME_LEN`] bytes is
    /// [`Code::CapacityExceeded`]; a day count above [`MAX_DAYS`] is [`Code::InvalidValue`].
    pub fn from_policy(p: &Policy<'_>) -> Result<Self, Code> {
        let mut name = [0u8; NAME_LEN];
        let name = p
            .name
            .unescape_into(&mut name)
            .map_err(|_| Code::CapacityExceeded)?;
        let c = &p.classes;
        let too_long = [c.perpetual, c.subscription, c.enforced, c.export]
            .iter()
            .flatten()
            .flat_map(|a| {
                [
                    a.first_report_days,
                    a.reporting_frequency_days,
                    a.report_on_change_days,
                ]
            })
            .flatten()
            .any(|d| d > MAX_DAYS);
        if too_long {
            return Err(Code::InvalidValue);
        }
        Ok(StoredPolicy {
            name: fixed(name)?,
            ack_required: p.ack_required,
            classes: p.classes,
        })
    }

    /// The wire form, borrowing the name.
    pub fn policy(&self) -> Policy<'_> {
        Policy {
            name: Text::plain(&self.name),
            ack_required: self.ack_required,
            classes: self.classes,
        }
    }
}

/// An ID token minted for a virtual account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRecord {
    /// The token text the device sends.
    pub text: TokenText,
    /// The virtual account instances trusted with it join.
    pub virtual_account: VaId,
    /// How many units it may trust in total (one use per HA member).
    pub max_uses: u32,
    /// How many uses are spent.
    pub uses: u32,
    /// The token is refused from this instant on.
    pub expires_at: Timestamp,
    /// Instances trusted with it may use export-controlled licenses.
    pub export_controlled: bool,
}

/// One HA unit of a product instance, bound by a trust code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// Role at trust time.
    pub role: Role,
    /// The unit.
    pub udi: UdiBuf,
    /// The device key its trust code binds (its key id is [`PublicKey::key_id`]).
    pub public_key: PublicKey,
    /// The id of its current trust code.
    pub trust_id: TrustId,
}

/// A product instance: one device or one HA group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceRecord {
    /// The virtual account it belongs to.
    pub virtual_account: VaId,
    /// `product_instance_identifier`: the lower-case UUID assigned at first trust.
    pub uuid: UuidText,
    /// The ID token the current trust came from (a resend of that request is recognised).
    pub token: TokenId,
    /// Its units, the active unit at trust time first.
    pub members: heapless::Vec<MemberRecord, MAX_HA_MEMBERS>,
    /// Trusted with an export-controlled token.
    pub export_controlled: bool,
    /// Removed by an operator (RMA): its keys no longer authenticate anything.
    pub removed: bool,
    /// When trust was last established or refreshed.
    pub trusted_at: Timestamp,
    /// Last authenticated request.
    pub last_contact: Timestamp,
}

impl InstanceRecord {
    /// The unit with this UDI, if it belongs to the instance.
    pub fn member(&self, udi: &Udi<'_>) -> Option<&MemberRecord> {
        self.members.iter().find(|m| m.udi.matches(udi))
    }
}

/// A stored usage report, deduplicated by (UDI, report id).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReportRecord {
    /// The instance it was received from.
    pub instance: PiId,
    /// The unit that measured (payload `sudi`).
    pub udi: UdiBuf,
    /// Unique per UDI.
    pub report_id: ReportId,
    /// SHA-256 of the exact signed payload bytes: a resend must match it to be acked again.
    pub payload_sha256: [u8; 32],
    /// The entitlement measured.
    pub entitlement: TagText,
    /// The count of the report's last measurement (0 without measurements).
    pub count: u64,
    /// When the service stored it.
    pub received_at: Timestamp,
}

/// Why the service refused one report; the wire reason is [`RejectReason::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RejectReason {
    /// The report's signature does not verify with its unit's device key.
    BadSignature,
    /// The report names a key other than its unit's device key.
    WrongKey,
    /// The payload `sudi` is not a unit of the sending product instance.
    ForeignUnit,
    /// The (UDI, report id) was stored before with different bytes.
    ConflictingDuplicate,
}

impl RejectReason {
    /// The `reason` text sent in the ACK.
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::BadSignature => "signature does not verify",
            RejectReason::WrongKey => "signed with a key that is not the unit's device key",
            RejectReason::ForeignUnit => "sudi is not a unit of this product instance",
            RejectReason::ConflictingDuplicate => {
                "report_id already received with different content"
            }
        }
    }
}

/// An ACK as stored for a later poll: ids and static reasons, no borrowed text.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredAck {
    /// Acknowledged report ids.
    pub acked: heapless::Vec<ReportId, MAX_ACKED>,
    /// Refused report ids with the reason.
    pub rejected: heapless::Vec<(ReportId, RejectReason), MAX_REJECTED>,
}

impl StoredAck {
    /// The wire ACK.
    pub fn ack(&self) -> Ack<'static> {
        let mut rejected = heapless::Vec::new();
        for (id, why) in &self.rejected {
            // Same capacity on both sides: every push fits.
            let _ = rejected.push(Rejected {
                report_id: *id,
                reason: Text::plain(why.as_str()),
            });
        }
        Ack {
            acked: self.acked.clone(),
            rejected,
        }
    }
}

/// A `LICENSE_USAGE` result waiting for the device's `POLL_REQ`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PollRecord {
    /// The `poll_id` sent with `OK_POLL`.
    pub poll_id: UuidText,
    /// Only this instance may collect it.
    pub instance: PiId,
    /// The ACK to return.
    pub ack: StoredAck,
    /// When the usage was received.
    pub created_at: Timestamp,
}

impl PollRecord {
    /// The poll id as a UUID.
    pub fn uuid(&self) -> Result<Uuid<'_>, Code> {
        Uuid::new(&self.poll_id)
    }
}

/// Everything the service persists.
///
/// Names are unique per parent (smart account names globally, virtual account names per smart
/// account, token texts globally): adding a duplicate is [`Code::InvalidArgument`].
pub trait ServiceStore {
    /// Adds a smart account.
    fn add_smart_account(&mut self, name: &str) -> Result<SaId, Code>;
    /// Finds a smart account by name.
    fn smart_account_by_name(&self, name: &str) -> Result<Option<SaId>, Code>;
    /// A smart account's name.
    fn smart_account_name(&self, id: SaId) -> Result<Option<Name>, Code>;

    /// Adds a virtual account (without policy) to a smart account.
    fn add_virtual_account(&mut self, sa: SaId, name: &str) -> Result<VaId, Code>;
    /// Finds a virtual account by smart account and name.
    fn virtual_account_by_name(&self, sa: SaId, name: &str) -> Result<Option<VaId>, Code>;
    /// A virtual account.
    fn virtual_account(&self, id: VaId) -> Result<Option<VirtualAccount>, Code>;
    /// Replaces a virtual account's policy (`None`: send `null`).
    fn set_policy(&mut self, va: VaId, policy: Option<StoredPolicy>) -> Result<(), Code>;

    /// Adds an ID token.
    fn add_token(&mut self, token: &TokenRecord) -> Result<TokenId, Code>;
    /// Finds an ID token by its text.
    fn token_by_text(&self, text: &str) -> Result<Option<(TokenId, TokenRecord)>, Code>;

    /// A product instance.
    fn instance(&self, id: PiId) -> Result<Option<InstanceRecord>, Code>;
    /// The instance a unit belongs to: the one not removed if there is one, else the most
    /// recent removed one.
    fn instance_by_udi(&self, udi: &Udi<'_>) -> Result<Option<PiId>, Code>;
    /// The highest trust id ever issued (0 before the first).
    fn last_trust_id(&self) -> Result<u64, Code>;
    /// Establishes trust in one step, all or nothing: sets the token's spent `uses`, and writes
    /// `record` over `instance` (or adds it when `None`). Returns the instance's id. Afterwards
    /// [`ServiceStore::last_trust_id`] is at least every trust id of `record`.
    fn commit_trust(
        &mut self,
        token: TokenId,
        uses: u32,
        instance: Option<PiId>,
        record: &InstanceRecord,
    ) -> Result<PiId, Code>;
    /// Marks an instance removed (RMA) or restores it.
    fn set_removed(&mut self, id: PiId, removed: bool) -> Result<(), Code>;
    /// Records an authenticated contact.
    fn touch_instance(&mut self, id: PiId, now: Timestamp) -> Result<(), Code>;

    /// The report with this (UDI, report id), if stored.
    fn report(&self, udi: &Udi<'_>, id: ReportId) -> Result<Option<ReportRecord>, Code>;
    /// Stores a new report; the caller has checked it is not stored yet.
    fn add_report(&mut self, report: &ReportRecord) -> Result<(), Code>;
    /// How many reports an instance has delivered.
    fn report_count(&self, instance: PiId) -> Result<usize, Code>;

    /// Stores a pending poll result.
    fn add_poll(&mut self, poll: &PollRecord) -> Result<(), Code>;
    /// Removes and returns the poll result `poll_id` if it belongs to `instance`.
    fn take_poll(&mut self, instance: PiId, poll_id: &str) -> Result<Option<PollRecord>, Code>;
}
