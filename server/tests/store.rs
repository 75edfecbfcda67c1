//! The store contract: the same behaviour tests run against `MemStore` (RAM, in slup-core) and
//! `SqliteStore`, then what only a file can do: reopen and find everything, refuse a newer
//! schema, and keep nothing of a failed transaction.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use slup_core::crypto::{Signer, SoftwareSigner};
use slup_core::msg::policy::{ClassAttrs, Classes, Policy};
use slup_core::server::store::{
    fixed, InstanceRecord, MemberRecord, PiId, PollRecord, RejectReason, ReportRecord, SaId,
    ServiceStore, StoredAck, StoredPolicy, TokenId, TokenRecord, UdiBuf, VaId,
};
use slup_core::server::MemStore;
use slup_core::types::{ReportId, Role, Text, Timestamp, TrustId, Udi};
use slup_core::Code;
use slup_server::store::{SqliteStore, SCHEMA_VERSION};

use common::TempDir;

fn policy() -> StoredPolicy {
    StoredPolicy::from_policy(&Policy {
        name: Text::plain("Custom \"Lab\" Policy"),
        ack_required: Some(true),
        classes: Classes {
            perpetual: Some(ClassAttrs {
                first_report_days: Some(30),
                reporting_frequency_days: Some(60),
                report_on_change_days: None,
            }),
            subscription: None,
            enforced: Some(ClassAttrs::default()),
            export: Some(ClassAttrs {
                first_report_days: Some(3650),
                reporting_frequency_days: Some(0),
                report_on_change_days: Some(1),
            }),
        },
    })
    .unwrap()
}

fn udi(serial: &str) -> Udi<'_> {
    Udi::new("C9800-CL-K9", serial).unwrap()
}

fn member(role: Role, serial: &str, secret: u8, trust_id: u64) -> MemberRecord {
    MemberRecord {
        role,
        udi: UdiBuf::from_udi(&udi(serial)).unwrap(),
        public_key: SoftwareSigner::from_secret_bytes(&[secret; 32])
            .unwrap()
            .public_key()
            .clone(),
        trust_id: TrustId(trust_id),
    }
}

fn instance(va: VaId, token: TokenId, uuid: &str, members: &[MemberRecord]) -> InstanceRecord {
    InstanceRecord {
        virtual_account: va,
        uuid: fixed(uuid).unwrap(),
        token,
        members: members.iter().cloned().collect(),
        export_controlled: true,
        removed: false,
        trusted_at: Timestamp(1_700_000_000_000),
        last_contact: Timestamp(1_700_000_000_000),
    }
}

fn report(pi: PiId, serial: &str, id: u64, sha: u8) -> ReportRecord {
    ReportRecord {
        instance: pi,
        udi: UdiBuf::from_udi(&udi(serial)).unwrap(),
        report_id: ReportId(id),
        payload_sha256: [sha; 32],
        entitlement: fixed(common::TAG).unwrap(),
        // Values that only survive a 64-bit column if stored bit for bit.
        count: u64::MAX - 1,
        received_at: Timestamp(1_700_000_000_123),
    }
}

const UUID_A: &str = "2e84a42f-c903-44c5-83b2-e62e258c780f";
const UUID_B: &str = "7d1c2a44-5b0e-4f39-9a61-0c2f5e8b9d13";

/// What every store must do, in one scenario. Returns the ids the reopen test looks up.
fn behaviour<S: ServiceStore>(s: &mut S) -> (SaId, VaId, PiId) {
    // Accounts: unique names, parents must exist.
    let sa = s.add_smart_account("Wireless TAC").unwrap();
    assert_eq!(
        s.add_smart_account("Wireless TAC"),
        Err(Code::InvalidArgument)
    );
    assert_eq!(s.smart_account_by_name("Wireless TAC").unwrap(), Some(sa));
    assert_eq!(s.smart_account_by_name("nobody").unwrap(), None);
    assert_eq!(s.smart_account_name(sa).unwrap().unwrap(), "Wireless TAC");
    assert_eq!(s.smart_account_name(SaId(999)).unwrap(), None);
    assert_eq!(
        s.add_virtual_account(SaId(999), "Lab"),
        Err(Code::InvalidArgument)
    );
    let va = s.add_virtual_account(sa, "Lab \"9800\" VA").unwrap();
    assert_eq!(
        s.add_virtual_account(sa, "Lab \"9800\" VA"),
        Err(Code::InvalidArgument)
    );
    let other = s.add_virtual_account(sa, "Other").unwrap();
    assert_ne!(va, other);
    assert_eq!(s.virtual_account_by_name(sa, "Other").unwrap(), Some(other));
    let v = s.virtual_account(va).unwrap().unwrap();
    assert_eq!(
        (v.smart_account, v.name.as_str(), v.policy),
        (sa, "Lab \"9800\" VA", None)
    );

    // Policies per virtual account.
    s.set_policy(va, Some(policy())).unwrap();
    assert_eq!(
        s.virtual_account(va).unwrap().unwrap().policy,
        Some(policy())
    );
    assert_eq!(s.virtual_account(other).unwrap().unwrap().policy, None);
    assert_eq!(s.set_policy(VaId(999), None), Err(Code::InvalidArgument));

    // Tokens: unique text, known virtual account.
    let rec = TokenRecord {
        text: fixed("TOKEN-TWO-USES").unwrap(),
        virtual_account: va,
        max_uses: 2,
        uses: 0,
        expires_at: Timestamp(u64::MAX),
        export_controlled: true,
    };
    let tok = s.add_token(&rec).unwrap();
    assert_eq!(s.add_token(&rec), Err(Code::InvalidArgument));
    let mut orphan = rec.clone();
    orphan.text = fixed("ORPHAN").unwrap();
    orphan.virtual_account = VaId(999);
    assert_eq!(s.add_token(&orphan), Err(Code::InvalidArgument));
    assert_eq!(
        s.token_by_text("TOKEN-TWO-USES").unwrap(),
        Some((tok, rec.clone()))
    );
    assert_eq!(s.token_by_text("nope").unwrap(), None);

    // Trust: an HA pair, all or nothing.
    assert_eq!(s.last_trust_id().unwrap(), 0);
    let pair = [
        member(Role::Active, "9PJK8D70CNB", 0x11, 7),
        member(Role::Standby, "9PJK8D70CNC", 0x22, 8),
    ];
    let a = instance(va, tok, UUID_A, &pair);
    assert_eq!(
        s.commit_trust(TokenId(999), 2, None, &a),
        Err(Code::InvalidArgument)
    );
    // An unknown instance id changes nothing, not even the token's uses.
    assert_eq!(
        s.commit_trust(tok, 2, Some(PiId(999)), &a),
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        s.token_by_text("TOKEN-TWO-USES").unwrap().unwrap().1.uses,
        0
    );
    let pi = s.commit_trust(tok, 2, None, &a).unwrap();
    assert_eq!(s.instance(pi).unwrap(), Some(a.clone()));
    assert_eq!(s.instance(PiId(999)).unwrap(), None);
    assert_eq!(
        s.token_by_text("TOKEN-TWO-USES").unwrap().unwrap().1.uses,
        2
    );
    assert_eq!(s.last_trust_id().unwrap(), 8);
    assert_eq!(s.instance_by_udi(&udi("9PJK8D70CNC")).unwrap(), Some(pi));
    assert_eq!(s.instance_by_udi(&udi("UNKNOWN")).unwrap(), None);

    // Re-trust in place: new keys for the active unit, members replaced.
    let mut renewed = a.clone();
    renewed.members[0] = member(Role::Active, "9PJK8D70CNB", 0x33, 9);
    renewed.members.truncate(1);
    assert_eq!(s.commit_trust(tok, 2, Some(pi), &renewed).unwrap(), pi);
    assert_eq!(s.instance(pi).unwrap(), Some(renewed.clone()));
    assert_eq!(s.instance_by_udi(&udi("9PJK8D70CNC")).unwrap(), None);
    assert_eq!(s.last_trust_id().unwrap(), 9);

    s.touch_instance(pi, Timestamp(1_800_000_000_000)).unwrap();
    assert_eq!(
        s.instance(pi).unwrap().unwrap().last_contact,
        Timestamp(1_800_000_000_000)
    );
    assert_eq!(
        s.touch_instance(PiId(999), Timestamp(1)),
        Err(Code::InvalidArgument)
    );

    // Usage reports, deduplicated by (UDI, report id) by the caller.
    assert_eq!(s.report(&udi("9PJK8D70CNB"), ReportId(1)).unwrap(), None);
    let r1 = report(pi, "9PJK8D70CNB", 1, 0xa1);
    let big = report(pi, "9PJK8D70CNB", u64::MAX, 0xa2);
    s.add_report(&r1).unwrap();
    s.add_report(&big).unwrap();
    // The same id from another unit is another report.
    s.add_report(&report(pi, "9PJK8D70CNC", 1, 0xa3)).unwrap();
    assert_eq!(
        s.report(&udi("9PJK8D70CNB"), ReportId(1)).unwrap(),
        Some(r1)
    );
    assert_eq!(
        s.report(&udi("9PJK8D70CNB"), ReportId(u64::MAX)).unwrap(),
        Some(big)
    );
    assert_eq!(s.report_count(pi).unwrap(), 3);
    assert_eq!(s.report_count(PiId(999)).unwrap(), 0);

    // Polls: collected once, only by their instance.
    let mut ack = StoredAck::default();
    ack.acked.push(ReportId(1)).unwrap();
    ack.acked.push(ReportId(u64::MAX)).unwrap();
    ack.rejected
        .push((ReportId(5), RejectReason::ConflictingDuplicate))
        .unwrap();
    ack.rejected
        .push((ReportId(6), RejectReason::WrongKey))
        .unwrap();
    let poll = PollRecord {
        poll_id: fixed(UUID_B).unwrap(),
        instance: pi,
        ack,
        created_at: Timestamp(1_700_000_000_999),
    };
    s.add_poll(&poll).unwrap();
    assert_eq!(s.take_poll(PiId(999), UUID_B).unwrap(), None);
    assert_eq!(s.take_poll(pi, UUID_A).unwrap(), None);
    assert_eq!(s.take_poll(pi, UUID_B).unwrap(), Some(poll.clone()));
    assert_eq!(s.take_poll(pi, UUID_B).unwrap(), None);
    s.add_poll(&poll).unwrap();

    // RMA: a removed instance still answers by UDI until a live one takes the unit.
    s.set_removed(pi, true).unwrap();
    assert_eq!(s.set_removed(PiId(999), true), Err(Code::InvalidArgument));
    assert_eq!(s.instance_by_udi(&udi("9PJK8D70CNB")).unwrap(), Some(pi));
    assert!(s.instance(pi).unwrap().unwrap().removed);
    let tok2 = s
        .add_token(&TokenRecord {
            text: fixed("TOKEN-AGAIN").unwrap(),
            max_uses: 1,
            ..rec
        })
        .unwrap();
    let b = instance(
        va,
        tok2,
        UUID_B,
        &[member(Role::Active, "9PJK8D70CNB", 0x44, 10)],
    );
    let pi2 = s.commit_trust(tok2, 1, None, &b).unwrap();
    assert_ne!(pi2, pi);
    assert_eq!(s.instance_by_udi(&udi("9PJK8D70CNB")).unwrap(), Some(pi2));
    // Both removed: the most recent one.
    s.set_removed(pi2, true).unwrap();
    assert_eq!(s.instance_by_udi(&udi("9PJK8D70CNB")).unwrap(), Some(pi2));
    s.set_removed(pi2, false).unwrap();
    (sa, va, pi)
}

#[test]
fn memstore_behaves() {
    let mut s: MemStore = MemStore::new();
    behaviour(&mut s);
}

#[test]
fn sqlite_behaves_and_keeps_everything_across_a_reopen() {
    let dir = TempDir::new("store-reopen");
    let (sa, va, pi) = {
        let mut s = SqliteStore::open(dir.db()).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        behaviour(&mut s)
    };
    let s = SqliteStore::open(dir.db()).unwrap();
    assert_eq!(s.smart_account_by_name("Wireless TAC").unwrap(), Some(sa));
    assert_eq!(
        s.virtual_account(va).unwrap().unwrap().policy,
        Some(policy())
    );
    assert_eq!(
        s.token_by_text("TOKEN-TWO-USES").unwrap().unwrap().1.uses,
        2
    );
    assert_eq!(s.token_by_text("TOKEN-AGAIN").unwrap().unwrap().1.uses, 1);
    let rec = s.instance(pi).unwrap().unwrap();
    assert!(rec.removed);
    assert_eq!(rec.uuid, UUID_A);
    assert_eq!(rec.members[0], member(Role::Active, "9PJK8D70CNB", 0x33, 9));
    assert_eq!(s.last_trust_id().unwrap(), 10);
    assert_eq!(s.report_count(pi).unwrap(), 3);
    assert_eq!(
        s.report(&udi("9PJK8D70CNB"), ReportId(u64::MAX)).unwrap(),
        Some(report(pi, "9PJK8D70CNB", u64::MAX, 0xa2))
    );
    let mut s = s;
    let poll = s.take_poll(pi, UUID_B).unwrap().unwrap();
    assert_eq!(
        poll.ack.rejected.as_slice(),
        &[
            (ReportId(5), RejectReason::ConflictingDuplicate),
            (ReportId(6), RejectReason::WrongKey)
        ]
    );
    // The operator's listing sees both instances, the removed one with its reports.
    let rows = s.instances().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].reports, 3);
    assert_eq!(s.instance_by_uuid(UUID_B).unwrap(), Some(rows[1].id));
}

#[test]
fn a_rolled_back_batch_leaves_nothing() {
    let dir = TempDir::new("store-rollback");
    let mut s = SqliteStore::open(dir.db()).unwrap();
    let sa = s.add_smart_account("SA").unwrap();
    s.begin().unwrap();
    s.add_virtual_account(sa, "Gone").unwrap();
    // A failing call inside the batch rolls back only itself…
    assert_eq!(s.add_smart_account("SA"), Err(Code::InvalidArgument));
    assert!(s.take_last_error().unwrap().contains("UNIQUE"));
    s.add_virtual_account(sa, "Also gone").unwrap();
    // …and a rolled-back batch leaves nothing, also for a later reader of the file.
    s.rollback();
    assert_eq!(s.virtual_account_by_name(sa, "Gone").unwrap(), None);
    drop(s);
    let s = SqliteStore::open(dir.db()).unwrap();
    assert_eq!(s.virtual_account_by_name(sa, "Also gone").unwrap(), None);
    assert_eq!(s.smart_account_by_name("SA").unwrap(), Some(sa));
}

#[test]
fn a_newer_schema_is_refused_and_left_untouched() {
    let dir = TempDir::new("store-newer");
    drop(SqliteStore::open(dir.db()).unwrap());
    {
        let c = rusqlite::Connection::open(dir.db()).unwrap();
        c.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let e = SqliteStore::open(dir.db()).unwrap_err();
    assert_eq!(e.code, Code::RecordFromNewerVersion);
    assert!(e.to_string().contains("E1401"), "{e}");
    let c = rusqlite::Connection::open(dir.db()).unwrap();
    let v: u32 = c
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION + 1);
}

#[test]
fn a_file_that_is_not_sqlite_is_refused() {
    let dir = TempDir::new("store-garbage");
    std::fs::write(dir.db(), vec![0x42u8; 8192]).unwrap();
    let e = SqliteStore::open(dir.db()).unwrap_err();
    assert_eq!(e.code, Code::RecordCorrupt, "{e}");
}

#[test]
fn the_file_is_wal_with_foreign_keys() {
    let dir = TempDir::new("store-pragmas");
    let s = SqliteStore::open(dir.db()).unwrap();
    drop(s);
    let c = rusqlite::Connection::open(dir.db()).unwrap();
    let mode: String = c
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Foreign keys are per connection: check ours enforces them.
    let mut s = SqliteStore::open(dir.db()).unwrap();
    assert_eq!(
        s.add_virtual_account(SaId(77), "x"),
        Err(Code::InvalidArgument)
    );
    assert!(s.take_last_error().unwrap().contains("FOREIGN KEY"));
}
