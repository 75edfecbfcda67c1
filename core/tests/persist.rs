#![cfg(feature = "server")]
//! Persistence records: a device saved after every call (the lab's RAM store) and rebooted at
//! chosen points resumes exactly; a damaged, foreign or newer record loses only its own part,
//! with an event saying so; trust is believed only when its signatures verify.

mod common;

use common::lab::*;
use slup_core::diag::MessageKind;
use slup_core::engine::persist::{Record, FORMAT_VERSION};
use slup_core::engine::reports::ReportState;
use slup_core::engine::usage::CloseReason;
use slup_core::engine::Command;
use slup_core::server::UsageMode;
use slup_core::types::{Scope, Timestamp, Udi};
use slup_core::Code;

/// An HA pair trusted with `all`, a custom policy, usage with APs, one report acknowledged and
/// one closed but unsent (the service was unreachable).
fn busy_pair() -> Pair {
    let policy = common::custom_policy();
    let mut p = Pair::with_policy(true, UsageMode::Immediate, Some(&policy));
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-TWO-USES",
        scope: Scope::All,
        force: false,
    })
    .unwrap();
    assert_eq!(p.exchange(), Some(MessageKind::TrustEstablishment));
    assert!(p.dev.trust().is_installed(), "{:?}", p.events);
    p.cmd(Command::RecordUsage { tag: TAG, count: 3 }).unwrap();
    for serial in ["FGL1", "FGL2"] {
        p.cmd(Command::Entity {
            tag: TAG,
            udi: Udi::new("AIR-AP1852I", serial).unwrap(),
            joined: true,
        })
        .unwrap();
    }
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    assert!(p.dev.reports().is_empty(), "{:?}", p.events);
    p.run_for(HOUR);
    p.cmd(Command::RecordUsage { tag: TAG, count: 4 }).unwrap();
    p.unreachable = true;
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    p.unreachable = false;
    // The count change closed one report, the sync another; neither could be sent.
    assert_eq!(p.dev.reports().len(), 2);
    p
}

/// CRC-32 (IEEE), as the record frame uses.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = u32::MAX;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

/// `record` with its body edited and its CRC fixed up.
fn frame_with(record: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut body = record[..record.len() - 4].to_vec();
    edit(&mut body);
    let crc = crc32(&body);
    body.extend_from_slice(&crc.to_le_bytes());
    body
}

#[test]
fn a_reboot_resumes_trust_policy_usage_reports_and_schedule() {
    let mut p = busy_pair();
    let before_instance = p.dev.trust().instance().unwrap().as_str().to_string();
    let before_codes: Vec<_> = p.dev.trust().codes().collect();
    let before: Vec<_> = p
        .dev
        .reports()
        .iter()
        .map(|r| (r.id, p.dev.reports().bytes(r).to_vec()))
        .collect();
    let next_report = p.dev.next_report_time();
    let last_ack = p.dev.last_ack();
    let open_id = p.dev.usage().tags()[0].open.unwrap().report_id;

    p.run_for(10 * MIN);
    let results = p.reboot();
    assert_eq!(results.len(), Record::ALL.len());
    assert!(results.iter().all(|(_, r)| r.is_ok()), "{results:?}");

    let t = p.dev.trust();
    assert_eq!(t.instance().unwrap().as_str(), before_instance);
    assert_eq!(t.codes().collect::<Vec<_>>(), before_codes);
    assert_eq!(p.dev.policy().name.as_str(), "Custom Policy");
    assert_eq!(p.dev.next_report_time(), next_report);
    assert_eq!(p.dev.last_ack(), last_ack);
    let tag = &p.dev.usage().tags()[0];
    assert_eq!((tag.count, tag.entities.active_now), (4, 2));
    // The unsent reports are there byte for byte; the report open at power-off closed on
    // reload.
    let store = p.dev.reports();
    let after: Vec<_> = store.iter().collect();
    assert_eq!(after.len(), before.len() + 1);
    for (r, (id, bytes)) in after.iter().zip(&before) {
        assert_eq!((r.id, r.state), (*id, ReportState::Closed));
        assert_eq!(store.bytes(r), bytes.as_slice());
    }
    let reload = after.last().unwrap();
    assert_eq!(reload.id, open_id);
    let text = std::str::from_utf8(store.bytes(reload)).unwrap();
    assert!(text.contains(CloseReason::ProductReload.as_str()), "{text}");

    // The restored device signs with its restored key: the service takes both reports.
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    assert!(p.dev.reports().is_empty(), "{:?}", p.events);
    let (pi, _) = p
        .svc
        .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap())
        .unwrap()
        .unwrap();
    // The first ACK's report, the unsent ones, the one closed on reload and the sync's.
    assert_eq!(p.svc.report_count(pi).unwrap(), 1 + before.len() + 2);
}

#[test]
fn changed_names_exactly_the_records_that_moved() {
    let mut p = busy_pair();
    assert!(p.dev.changed().is_empty());
    // Same instant: a count change touches usage and reports (the old report closed), nothing else.
    p.dev
        .handle_command(
            Timestamp(p.now),
            Command::RecordUsage { tag: TAG, count: 9 },
        )
        .unwrap();
    let changed: Vec<_> = p.dev.changed().iter().collect();
    assert_eq!(changed, [Record::Usage, Record::Reports]);
    p.save();
    // Issuing a nonce is a nonce change that must be saved before the request leaves.
    p.dev
        .handle_command(Timestamp(p.now), Command::SyncNow)
        .unwrap();
    p.save();
    p.dev.poll_transmit(Timestamp(p.now), &mut p.buf).unwrap();
    assert!(p.dev.changed().contains(Record::Nonces));
    assert!(!p.dev.changed().contains(Record::Trust));
}

#[test]
fn a_damaged_record_loses_only_its_own_part_and_says_so() {
    let p = busy_pair();
    for r in Record::ALL {
        let good = p.store[&r.id()].clone();
        // Every single-byte change anywhere in the record is caught by the CRC.
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x41;
            let mut q = fresh_like(&p);
            assert_eq!(
                q.dev.restore_record(Timestamp(q.now), r, &bad),
                Err(Code::RecordCorrupt),
                "{r:?} byte {at}"
            );
        }
        // The part is fresh, the event names the loss, and the record must be rewritten.
        let mut q = fresh_like(&p);
        let mut bad = good.clone();
        bad[good.len() / 2] ^= 1;
        for other in Record::ALL.into_iter().filter(|o| *o != r) {
            q.dev
                .restore_record(Timestamp(q.now), other, &p.store[&other.id()])
                .unwrap();
        }
        assert!(q.dev.restore_record(Timestamp(q.now), r, &bad).is_err());
        q.drain_events();
        assert!(
            q.events
                .iter()
                .any(|e| e.contains(&format!("{} record lost", r.name()))),
            "{r:?}: {:?}",
            q.events
        );
        assert!(q.dev.changed().contains(r));
        match r {
            Record::Trust => assert!(!q.dev.trust().is_installed()),
            Record::Policy => assert_eq!(q.dev.policy().name.as_str(), "Cisco default"),
            Record::Usage => assert!(q.dev.usage().tags().is_empty()),
            Record::Reports => assert!(q.dev.reports().is_empty()),
            Record::Nonces | Record::Schedule => {}
        }
        if r != Record::Trust {
            assert!(q.dev.trust().is_installed(), "{r:?}");
        }
    }
}

/// A new engine with `p`'s configuration and nothing restored, at `p`'s time.
fn fresh_like(p: &Pair) -> Pair {
    let mut q = Pair::new(true, UsageMode::Immediate);
    q.now = p.now;
    q.store.clear();
    q.dev = p.fresh_engine(9);
    q.drain_events();
    q.events.clear();
    q
}

#[test]
fn trust_is_believed_for_its_signatures_not_its_checksum() {
    let p = busy_pair();
    let good = p.store[&Record::Trust.id()].clone();
    // Rename the smart account inside the first signed code and fix up the CRC: the frame is
    // intact, the service's signature no longer is.
    let at = good
        .windows(b"Wireless TAC".len())
        .position(|w| w == b"Wireless TAC")
        .unwrap();
    let forged = frame_with(&good, |b| b[at] = b'w');
    let mut q = fresh_like(&p);
    assert_eq!(
        q.dev
            .restore_record(Timestamp(q.now), Record::Trust, &forged),
        Err(Code::BadSignature)
    );
    assert!(!q.dev.trust().is_installed());

    // Another key handle (a valid scalar, not the key the code binds).
    let swapped = frame_with(&good, |b| {
        // The first unit's handle is 32 bytes right after: count, slot, installed_at, length.
        let h = 2 + 1 + 1 + 1 + 1 + 8 + 1;
        assert_eq!(b[h - 1], 32);
        b[h..h + 32].copy_from_slice(&common::ACTIVE_SECRET);
    });
    let mut q = fresh_like(&p);
    assert_eq!(
        q.dev
            .restore_record(Timestamp(q.now), Record::Trust, &swapped),
        Err(Code::KeyIdMismatch)
    );
    assert!(!q.dev.trust().is_installed());
}

#[test]
fn newer_foreign_and_short_records_are_refused_by_name() {
    let p = busy_pair();
    let policy = p.store[&Record::Policy.id()].clone();
    let mut q = fresh_like(&p);
    let newer = frame_with(&policy, |b| b[3] = FORMAT_VERSION + 1);
    assert_eq!(
        q.dev
            .restore_record(Timestamp(q.now), Record::Policy, &newer),
        Err(Code::RecordFromNewerVersion)
    );
    let unknown_kind = frame_with(&policy, |b| b[2] = 0x7f);
    assert_eq!(
        q.dev
            .restore_record(Timestamp(q.now), Record::Policy, &unknown_kind),
        Err(Code::RecordFromNewerVersion)
    );
    // The trust record offered as the policy record.
    assert_eq!(
        q.dev.restore_record(
            Timestamp(q.now),
            Record::Policy,
            &p.store[&Record::Trust.id()]
        ),
        Err(Code::RecordCorrupt)
    );
    // A frame cut short, and one with trailing bytes, both checksummed.
    let short = frame_with(&policy, |b| {
        b.pop();
    });
    let long = frame_with(&policy, |b| b.push(0));
    for bad in [&short, &long, &policy[..3].to_vec(), &Vec::new()] {
        assert_eq!(
            q.dev.restore_record(Timestamp(q.now), Record::Policy, bad),
            Err(Code::RecordCorrupt)
        );
    }
}

#[test]
fn answered_nonces_stay_answered_across_a_reboot() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 1 }).unwrap();
    let mut file = vec![0u8; 16 * 1024];
    let n = p
        .dev
        .save_usage(Timestamp(p.now), false, &mut file)
        .unwrap();
    p.save();
    let saved: Vec<_> = p.dev.reports().iter().map(|r| r.id).collect();
    assert_eq!(saved.len(), 1);
    let mut ack = vec![0u8; 16 * 1024];
    let m = p
        .svc
        .ack_usage_file(Timestamp(p.now), &mut p.srng, &file[..n], &mut ack)
        .unwrap();

    // Saved file, then a power cycle: the ACK file still answers it.
    p.now += HOUR;
    p.reboot();
    p.dev.import(Timestamp(p.now), &ack[..m]).unwrap();
    p.drain();
    // The saved report is acknowledged; only the one closed on reload remains.
    assert!(p.dev.reports().iter().all(|r| !saved.contains(&r.id)));
    assert_eq!(p.dev.reports().len(), 1);
    // And once applied, it is a replay, even after another power cycle.
    p.now += HOUR;
    p.reboot();
    assert_eq!(
        p.dev
            .import(Timestamp(p.now), &ack[..m])
            .unwrap_err()
            .code(),
        Code::ReplayedNonce
    );
}

#[test]
fn a_pending_poll_resumes_after_a_reboot() {
    let mut p = Pair::new(
        false,
        UsageMode::Poll {
            retry_time_seconds: 300,
        },
    );
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    assert_eq!(p.exchange(), Some(MessageKind::UsageReporting));
    let sent: Vec<_> = p.dev.reports().iter().map(|r| r.id).collect();
    p.now += MIN;
    p.reboot();
    // The report the service holds waits for the poll; it is not sent a second time.
    let pending: Vec<_> = p
        .dev
        .reports()
        .iter()
        .filter(|r| r.state == ReportState::Pending)
        .map(|r| r.id)
        .collect();
    assert_eq!(pending, sent);
    p.now += 300_000;
    // The poll goes out at its time; the ACK prunes exactly the reports it names (the one sent
    // before the reboot), and the report closed on reload waits for the next cycle.
    let mut kinds = Vec::new();
    while let Some(k) = p.exchange() {
        kinds.push(k);
    }
    assert_eq!(
        kinds.first(),
        Some(&MessageKind::ResultPolling),
        "{kinds:?}"
    );
    assert!(p.has_event("USAGE_ACK_RECEIVED"), "{:?}", p.events);
    assert!(p.dev.reports().iter().all(|r| !sent.contains(&r.id)));
}

#[test]
fn a_clock_set_back_while_powered_off_is_noticed() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.run_for(HOUR);
    p.now -= 2 * HOUR;
    p.reboot();
    assert!(p.has_event("SYSTEM_CLOCK_CHANGED"), "{:?}", p.events);
    // The report closed on reload carries the change.
    let r = p.dev.reports().iter().last().unwrap();
    let text = std::str::from_utf8(p.dev.reports().bytes(r)).unwrap();
    assert!(text.contains("\"clock_change_delta\":\"-"), "{text}");
}

#[test]
fn time_powered_off_is_neither_sampled_nor_a_clock_change() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.run_for(HOUR);
    let samples = p.dev.usage().tags()[0].open.unwrap().num_samples;
    assert_eq!(samples, 4);
    p.now += 3 * 24 * HOUR;
    p.reboot();
    assert!(!p.has_event("SYSTEM_CLOCK_CHANGED"), "{:?}", p.events);
    let r = p.dev.reports().iter().last().unwrap();
    let text = std::str::from_utf8(p.dev.reports().bytes(r)).unwrap();
    assert!(text.contains("\"num_samples\":4"), "{text}");
}

#[test]
fn a_factory_reset_is_durable() {
    let mut p = busy_pair();
    p.cmd(Command::FactoryReset).unwrap();
    p.reboot();
    assert!(!p.dev.trust().is_installed());
    assert!(p.dev.reports().is_empty());
    assert!(p.dev.usage().tags().is_empty());
    assert_eq!(p.dev.policy().name.as_str(), "Cisco default");
}

#[test]
fn checksummed_nonsense_never_panics_and_leaves_a_working_engine() {
    let p = busy_pair();
    let mut q = fresh_like(&p);
    for r in Record::ALL {
        let good = p.store[&r.id()].clone();
        for at in 4..good.len() - 4 {
            for flip in [0x01u8, 0x80, 0xff] {
                let bad = frame_with(&good, |b| b[at] ^= flip);
                if q.dev.restore_record(Timestamp(q.now), r, &bad).is_ok() {
                    // Accepted: it counts as saved exactly when it encodes back to the same bytes.
                    let mut again = vec![0u8; q.dev.record_len(r).unwrap()];
                    q.dev.write_record(r, &mut again).unwrap();
                    assert_eq!(q.dev.changed().contains(r), again != bad, "{r:?} @{at}");
                }
            }
        }
    }
    q.dev.finish_restore(Timestamp(q.now));
    let mut status = String::new();
    slup_core::engine::render::status(&q.dev, Timestamp(q.now), &mut status).unwrap();
    assert!(status.contains("Smart Licensing Using Policy:"), "{status}");
}

#[test]
fn a_resume_is_not_a_reload() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.run_for(HOUR);
    let open = p.dev.usage().tags()[0].open.unwrap();
    // A host process restarted on the same state (the CLI): the open report stays open, and
    // the hour since counts as usage time.
    p.now += HOUR;
    p.resume();
    assert!(p.dev.reports().is_empty());
    p.dev.handle_timeout(Timestamp(p.now));
    let resumed = p.dev.usage().tags()[0].open.unwrap();
    assert_eq!(resumed.report_id, open.report_id);
    assert_eq!(resumed.num_samples, open.num_samples + 4);
}

/// Found by the bad-block runs: change detection used the frame's CRC-32, and the nonce record
/// ends with the tracker's own CRC-32, so every nonce table of one size had the same digest.
/// Once the ring of answered nonces is full, a request built and then failed (its nonce issued
/// and cancelled) leaves the table the same size: that change was never saved, and after a
/// reboot the cancelled nonce's late answer would no longer count as a replay.
#[test]
fn a_nonce_table_change_that_keeps_its_size_is_saved() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    for _ in 0..slup_core::nonce::DEFAULT_ANSWERED {
        p.cmd(Command::SyncNow).unwrap();
        p.run_for(MIN);
    }
    let before = p.store[&Record::Nonces.id()].clone();

    p.cmd(Command::SyncNow).unwrap();
    let now = Timestamp(p.now);
    assert!(p.dev.poll_transmit(now, &mut p.buf).is_some());
    p.dev.handle_transport_error(now, Code::ConnectRefused);
    p.drain();

    let stored = &p.store[&Record::Nonces.id()];
    assert_eq!(stored.len(), before.len(), "the ring was not full yet");
    assert_ne!(stored, &before, "the cancelled nonce was not saved");
    let mut live = vec![0u8; p.dev.record_len(Record::Nonces).unwrap()];
    p.dev.write_record(Record::Nonces, &mut live).unwrap();
    assert_eq!(stored, &live);
}

/// The trust record carries an establishment under way: a reboot after the service installed
/// the device's new keys but before its answer was applied resends the same request (the same
/// keys and token), and the service answers it without spending a second use.
#[test]
fn a_trust_establishment_under_way_survives_a_reboot() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust_answer_lost("TOKEN-ONE-USE");

    for (r, result) in p.reboot() {
        assert_eq!(result, Ok(()), "{r:?}");
    }
    p.run_for(2 * MIN);
    assert!(p.dev.trust().is_installed(), "{:?}", p.events);
    assert_eq!(p.svc.token("TOKEN-ONE-USE").unwrap().unwrap().uses, 1);

    // Once installed, nothing is under way any more: the record says so.
    let installed = p.store[&Record::Trust.id()].clone();
    let mut q = fresh_like(&p);
    q.dev
        .restore_record(Timestamp(q.now), Record::Trust, &installed)
        .unwrap();
    q.dev.finish_restore(Timestamp(q.now));
    assert_eq!(q.dev.poll_transmit(Timestamp(q.now), &mut q.buf), None);
}

/// A trust record of format version 1 (before the pending section) still restores.
#[test]
fn a_version_1_trust_record_still_restores() {
    let p = busy_pair();
    let trust = p.store[&Record::Trust.id()].clone();
    let v1 = frame_with(&trust, |b| {
        assert_eq!(b.pop(), Some(0), "nothing under way");
        b[3] = 1;
    });
    let mut q = fresh_like(&p);
    assert_eq!(
        q.dev.restore_record(Timestamp(q.now), Record::Trust, &v1),
        Ok(())
    );
    assert!(q.dev.trust().is_installed());
    // Saved again in the current format.
    assert!(q.dev.changed().contains(Record::Trust));
}
