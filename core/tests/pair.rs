#![cfg(feature = "server")]
//! Deterministic pair tests: the device engine and the service side on one virtual clock with
//! seeded RNGs, every byte passing through the real codecs. Each test asserts state, events and
//! history.

mod common;

use common::lab::*;
use slup_core::diag::MessageKind;
use slup_core::engine::reports::ReportState;
use slup_core::engine::{Command, Outcome};
use slup_core::server::UsageMode;
use slup_core::types::{Scope, Timestamp, Udi};
use slup_core::Code;

#[test]
fn direct_trust_then_reporting_and_ack() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    assert_eq!(
        p.cmd(Command::EstablishTrust {
            token: "TOKEN-ONE-USE",
            scope: Scope::Local,
            force: false
        }),
        Ok(Outcome::Queued)
    );
    assert_eq!(p.exchange(), Some(MessageKind::TrustEstablishment));
    assert!(p.dev.trust().is_installed());
    assert!(p.has_event("%SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code was successfully installed"), "{:?}", p.events);

    p.cmd(Command::RecordUsage { tag: TAG, count: 3 }).unwrap();
    p.run_for(8 * HOUR + MIN);
    // The report closed at report time went out and was acknowledged: nothing is left.
    assert_eq!(p.dev.reports().len(), 0, "{:?}", p.events);
    assert!(p.has_event("USAGE_ACK_RECEIVED"), "{:?}", p.events);
    let (pi, _) = p
        .svc
        .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(p.svc.report_count(pi).unwrap(), 1);
    // The history holds the request and the response, with bodies.
    let mut h = String::new();
    p.dev
        .history()
        .render(&mut h, slup_core::diag::time::Zone::UTC)
        .unwrap();
    assert!(
        h.contains("Usage Reporting:") && h.contains("\"request_type\":\"LICENSE_USAGE\""),
        "{h}"
    );
}

#[test]
fn ha_all_with_a_two_use_token_then_exhausted() {
    let mut p = Pair::new(true, UsageMode::Immediate);
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-TWO-USES",
        scope: Scope::All,
        force: false,
    })
    .unwrap();
    p.exchange();
    assert_eq!(p.dev.trust().codes().count(), 2);
    assert_eq!(
        p.cmd(Command::EstablishTrust {
            token: "TOKEN-TWO-USES",
            scope: Scope::All,
            force: false
        }),
        Err(Code::TrustAlreadyInstalled)
    );
    // With force the request goes out, and the exhausted token gets FAILED; trust stays.
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-TWO-USES",
        scope: Scope::All,
        force: true,
    })
    .unwrap();
    p.exchange();
    assert_eq!(p.dev.trust().codes().count(), 2);
    assert!(p.has_event("%SMART_LIC-3-COMM_FAILED"), "{:?}", p.events);
    assert!(
        p.has_event("%SMART_LIC-3-TRUST_CODE_INSTALL_FAILED"),
        "{:?}",
        p.events
    );
    // A FAILED answer is a failure: it does not also count as communication restored.
    assert!(!p.has_event("COMM_RESTORED"), "{:?}", p.events);
}

#[test]
fn trust_retries_once_after_a_minute_then_hourly() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.unreachable = true;
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-ONE-USE",
        scope: Scope::Local,
        force: false,
    })
    .unwrap();
    let mut attempts = vec![];
    while attempts.len() < 4 {
        match p.exchange() {
            Some(kind) => {
                assert_eq!(kind, MessageKind::TrustEstablishment);
                attempts.push(p.now - T0);
            }
            None => {
                // Nothing to send: jump to the next deadline (samples fire on the way).
                p.now = p.dev.poll_timeout().unwrap().0;
                p.dev.handle_timeout(Timestamp(p.now));
            }
        }
    }
    assert_eq!(attempts, [0, MIN, MIN + HOUR, MIN + 2 * HOUR]);
    // And the history says "no reply", never an empty response.
    let mut h = String::new();
    p.dev
        .history()
        .render(&mut h, slup_core::diag::time::Zone::UTC)
        .unwrap();
    assert!(h.contains("<no reply: E1301"), "{h}");
    // Once the network is back, the next retry installs trust and COMM_RESTORED is logged.
    p.unreachable = false;
    p.run_for(HOUR);
    assert!(p.dev.trust().is_installed());
    assert!(p.has_event("COMM_RESTORED"), "{:?}", p.events);
}

#[test]
fn ok_poll_then_poll_request_after_retry_time() {
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
    assert!(p
        .dev
        .reports()
        .iter()
        .all(|r| r.state == ReportState::Pending));
    // `sync` also refreshes trust and policy; then nothing before the retry time.
    assert_eq!(p.exchange(), Some(MessageKind::TrustSync));
    assert_eq!(p.exchange(), None);
    p.now += 300_000;
    assert_eq!(p.exchange(), Some(MessageKind::ResultPolling));
    assert_eq!(p.dev.reports().len(), 0, "{:?}", p.events);
}

#[test]
fn a_replayed_answer_is_rejected() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-ONE-USE",
        scope: Scope::Local,
        force: false,
    })
    .unwrap();
    let t = p.dev.poll_transmit(Timestamp(p.now), &mut p.buf).unwrap();
    let reply = p
        .svc
        .handle(Timestamp(p.now), &mut p.srng, &p.buf[..t.len], &mut p.out);
    let answer = p.out[..reply.len].to_vec();
    p.dev.handle_response(Timestamp(p.now), &answer).unwrap();
    // The same answer again: nothing is in flight.
    assert_eq!(
        p.dev
            .handle_response(Timestamp(p.now), &answer)
            .unwrap_err()
            .code(),
        Code::NotAnswering
    );
    // Sent as the answer to a later request: its nonce was already answered.
    p.cmd(Command::RecordUsage { tag: TAG, count: 1 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    p.dev.poll_transmit(Timestamp(p.now), &mut p.buf).unwrap();
    assert_eq!(
        p.dev
            .handle_response(Timestamp(p.now), &answer)
            .unwrap_err()
            .code(),
        Code::ReplayedNonce
    );
}

#[test]
fn garbage_and_silence_from_the_service() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-ONE-USE",
        scope: Scope::Local,
        force: false,
    })
    .unwrap();
    p.dev.poll_transmit(Timestamp(p.now), &mut p.buf).unwrap();
    assert_eq!(
        p.dev
            .handle_response(Timestamp(p.now), b"<html>502 Bad Gateway</html>")
            .unwrap_err()
            .code(),
        Code::JsonSyntax
    );
    p.drain();
    assert!(
        p.has_event("COMM_FAILED") && p.has_event("E1000"),
        "{:?}",
        p.events
    );
    assert!(!p.dev.trust().is_installed());
}

#[test]
fn factory_reset_clears_licensing_state_and_asks_for_reload() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 1 }).unwrap();
    assert_eq!(p.cmd(Command::FactoryReset), Ok(Outcome::ReloadRequired));
    assert!(!p.dev.trust().is_installed());
    assert!(p.dev.usage().tags().is_empty());
    assert_eq!(p.dev.policy().installed_at, None);
    assert!(p.has_event("FACTORY_RESET"));
}

#[test]
fn clock_rollback_is_logged_and_the_schedule_survives() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 1 }).unwrap();
    let next = p.dev.next_report_time();
    p.now -= 2 * HOUR;
    p.dev.handle_timeout(Timestamp(p.now));
    p.drain();
    assert!(
        p.has_event("%SMART_LIC-5-SYSTEM_CLOCK_CHANGED"),
        "{:?}",
        p.events
    );
    assert_eq!(p.dev.next_report_time(), next);
    assert!(matches!(p.dev.usage().tags()[0].open, Some(o) if o.clock_delta_s == -7200));
}

#[test]
fn air_gapped_save_and_import() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.dev
        .handle_command(
            Timestamp(p.now),
            Command::RecordUsage { tag: TAG, count: 5 },
        )
        .unwrap();
    let mut file = vec![0u8; 16 * 1024];
    let n = p
        .dev
        .save_usage(Timestamp(p.now), false, &mut file)
        .unwrap();
    assert_eq!(p.dev.reports().len(), 1);
    // The service turns the usage file into an ACK file.
    let mut ack = vec![0u8; 16 * 1024];
    let m = p
        .svc
        .ack_usage_file(Timestamp(p.now), &mut p.srng, &file[..n], &mut ack)
        .unwrap();
    p.dev.import(Timestamp(p.now), &ack[..m]).unwrap();
    assert_eq!(p.dev.reports().len(), 0);
    assert_eq!(p.dev.last_ack(), Some(Timestamp(p.now)));
    // The same ACK file again is a replay; an ACK for a file never saved answers nothing.
    assert_eq!(
        p.dev
            .import(Timestamp(p.now), &ack[..m])
            .unwrap_err()
            .code(),
        Code::ReplayedNonce
    );
}

/// Usage files saved again and again and never imported: each takes a nonce, and once the
/// table is full the oldest is given up rather than refusing the next file (or every network
/// request after it). The newest file's ACK acknowledges everything; the oldest's is refused.
#[test]
fn usage_files_never_imported_do_not_fill_the_nonce_table() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    let mut files = Vec::new();
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    for count in 1..=2 * slup_core::nonce::DEFAULT_OUTSTANDING {
        let mut file = vec![0u8; 16 * 1024];
        let n = p
            .dev
            .save_usage(Timestamp(p.now), false, &mut file)
            .unwrap_or_else(|e| panic!("file {count}: {e:?}"));
        files.push(file[..n].to_vec());
        p.now += MIN;
    }
    let ack = |p: &mut Pair, file: &[u8]| {
        let mut ack = vec![0u8; 16 * 1024];
        let m = p
            .svc
            .ack_usage_file(Timestamp(p.now), &mut p.srng, file, &mut ack)
            .unwrap();
        ack.truncate(m);
        ack
    };
    let oldest = ack(&mut p, &files[0]);
    assert_eq!(
        p.dev.import(Timestamp(p.now), &oldest).unwrap_err().code(),
        Code::ReplayedNonce
    );
    let newest = ack(&mut p, files.last().unwrap());
    p.dev.import(Timestamp(p.now), &newest).unwrap();
    assert!(p.dev.reports().is_empty(), "{:?}", p.dev.reports());
    // Once the store was full, the current usage stayed open, and said so.
    p.drain_events();
    assert!(p.has_event("report store full"), "{:?}", p.events);
    assert!(p.dev.usage().tags()[0].open.is_some());
    // The network still works: the open report goes out and is acknowledged.
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    assert!(p.has_event("1 acknowledged"), "{:?}", p.events);
}

#[test]
fn an_ack_for_another_device_is_rejected() {
    let mut a = Pair::new(false, UsageMode::Immediate);
    a.cmd(Command::EstablishTrust {
        token: "TOKEN-ONE-USE",
        scope: Scope::Local,
        force: false,
    })
    .unwrap();
    a.exchange();
    a.dev
        .handle_command(
            Timestamp(a.now),
            Command::RecordUsage { tag: TAG, count: 1 },
        )
        .unwrap();
    let mut file = vec![0u8; 16 * 1024];
    let n = a
        .dev
        .save_usage(Timestamp(a.now), false, &mut file)
        .unwrap();
    let mut ack = vec![0u8; 16 * 1024];
    let m = a
        .svc
        .ack_usage_file(Timestamp(a.now), &mut a.srng, &file[..n], &mut ack)
        .unwrap();
    // Device B (another serial, same seeds) never saved that file.
    let mut b = Pair::new(false, UsageMode::Immediate);
    b.cmd(Command::EstablishTrust {
        token: "TOKEN-ONE-USE",
        scope: Scope::Local,
        force: false,
    })
    .unwrap();
    b.exchange();
    let e = b
        .dev
        .import(Timestamp(b.now), &ack[..m])
        .unwrap_err()
        .code();
    assert!(
        matches!(
            e,
            Code::NotAnswering | Code::UdiMismatch | Code::ReplayedNonce
        ),
        "{e:?}"
    );
}

#[test]
fn reporting_required_warnings_before_the_ack_deadline() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.unreachable = true;
    p.dev
        .handle_command(
            Timestamp(p.now),
            Command::RecordUsage { tag: TAG, count: 1 },
        )
        .unwrap();
    // Cisco default: the first report is due within 90 days (subscription class).
    assert_eq!(p.dev.ack_deadline(), Some(Timestamp(T0 + 90 * 24 * HOUR)));
    p.run_for(80 * 24 * HOUR);
    assert!(p.has_event("%SMART_LIC-6-REPORTING_REQUIRED: A Usage report acknowledgement will be required in 14 days"), "{:?}", p.events);
    assert!(p.has_event("required in 10 days"), "{:?}", p.events);
}

#[test]
fn the_configured_report_interval_takes_effect() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.dev
        .handle_command(
            Timestamp(p.now),
            Command::RecordUsage { tag: TAG, count: 1 },
        )
        .unwrap();
    p.run_for(24 * HOUR + MIN);
    let (pi, _) = p
        .svc
        .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap())
        .unwrap()
        .unwrap();
    // Every 8 hours by default: three reports in a day.
    assert_eq!(p.svc.report_count(pi).unwrap(), 3);
}

#[test]
fn cslu_pull_api() {
    use slup_core::engine::pull::{PullCredentials, PullRequest};
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    let creds = PullCredentials {
        user: "cslu",
        password: "s3cret",
    };
    // "cslu:s3cret" in base64.
    let auth = Some("Basic Y3NsdTpzM2NyZXQ=");
    let mut out = vec![0u8; 16 * 1024];
    let mut call =
        |p: &mut Pair, method: &str, path: &str, authorization: Option<&str>, body: &[u8]| {
            let r = p.dev.handle_pull(
                Timestamp(p.now),
                &PullRequest {
                    method,
                    path,
                    authorization,
                    body,
                },
                &creds,
                &mut out,
            );
            (r.status, String::from_utf8(out[..r.len].to_vec()).unwrap())
        };
    assert_eq!(
        call(&mut p, "GET", "/smartlic-service/list", None, b"").0,
        401
    );
    assert_eq!(
        call(
            &mut p,
            "GET",
            "/smartlic-service/list",
            Some("Basic Y3NsdTp3cm9uZw=="),
            b""
        )
        .0,
        401
    );
    assert_eq!(
        call(&mut p, "GET", "/smartlic-service/nothing", auth, b"").0,
        404
    );
    assert_eq!(
        call(&mut p, "DELETE", "/smartlic-service/list", auth, b"").0,
        405
    );
    assert_eq!(
        call(&mut p, "GET", "/smartlic-service/close-reports", auth, b"").0,
        405
    );
    assert_eq!(
        call(&mut p, "GET", "/smartlic-service/days/0", auth, b"").0,
        400
    );
    assert_eq!(
        call(&mut p, "GET", "/smartlic-service/days/x", auth, b"").0,
        400
    );
    let (s, body) = call(&mut p, "POST", "/smartlic-service/close-reports", auth, b"");
    assert_eq!((s, body.as_str()), (200, r#"{"closed":1}"#));
    let (s, body) = call(&mut p, "GET", "/smartlic-service/list", auth, b"");
    assert_eq!(s, 200);
    assert!(
        body.starts_with(r#"{"usage_list":[{"report_id":"#) && body.contains(r#""state":"CLOSED""#),
        "{body}"
    );
    let (s, all) = call(&mut p, "GET", "/smartlic-service/all-reports", auth, b"");
    assert_eq!(s, 200);
    // The pulled reports are the signed bytes, exactly as stored.
    let stored = p
        .dev
        .reports()
        .iter()
        .next()
        .map(|r| p.dev.reports().bytes(r).to_vec())
        .unwrap();
    // Each listing carries a fresh nonce for the ACK to answer.
    let usage = format!(r#""usage":[{}]}}"#, String::from_utf8(stored).unwrap());
    let nonce = |body: &str| {
        let rest = body.strip_prefix(r#"{"nonce":""#).unwrap();
        rest[..rest.find('"').unwrap()].to_string()
    };
    assert!(all.ends_with(&usage), "{all}");
    let day = call(&mut p, "GET", "/smartlic-service/days/1", auth, b"").1;
    assert!(day.ends_with(&usage), "{day}");
    assert_ne!(nonce(&all), nonce(&day));
    // An import that answers nothing this device saved is a conflict, and changes nothing.
    let (s, body) = call(&mut p, "POST", "/smartlic-service/import", auth, b"{}");
    assert_eq!(s, 400, "{body}");
    assert_eq!(p.dev.reports().len(), 1);

    // The CSLU's round trip: the service takes the pulled reports and signs an ACK answering
    // the listing's nonce; the device imports it once.
    let n = slup_core::nonce::Nonce::parse(&nonce(&day)).unwrap();
    let report = p
        .dev
        .reports()
        .iter()
        .next()
        .map(|r| p.dev.reports().bytes(r).to_vec());
    let report = report.unwrap();
    let ack = p
        .svc
        .ingest_pulled(Timestamp(p.now), [report.as_slice()])
        .unwrap();
    let udi = Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap();
    let mut file = vec![0u8; 4096];
    let len = p
        .svc
        .pulled_ack(Timestamp(p.now), udi, Some(n), &ack, &mut file)
        .unwrap();
    let (s, body) = call(
        &mut p,
        "POST",
        "/smartlic-service/import",
        auth,
        &file[..len],
    );
    assert_eq!((s, body.as_str()), (200, r#"{"imported":true}"#));
    assert!(p.dev.reports().is_empty());
    let (s, _) = call(
        &mut p,
        "POST",
        "/smartlic-service/import",
        auth,
        &file[..len],
    );
    assert_eq!(s, 409);
}

#[test]
fn report_ids_stay_unique_across_a_factory_reset() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-TWO-USES");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    while p.exchange().is_some() {}
    let first = p.dev.usage().next_report_id();
    p.cmd(Command::FactoryReset).unwrap();
    p.trust("TOKEN-TWO-USES");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    while p.exchange().is_some() {}
    assert!(p.dev.usage().next_report_id() > first);
    // Both reports were accepted: none is left rejected on the device.
    assert_eq!(p.dev.reports().len(), 0, "{:?}", p.events);
}

#[test]
fn a_lost_poll_answer_then_an_unknown_poll_id_loses_and_double_counts_nothing() {
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
    assert_eq!(p.exchange(), Some(MessageKind::TrustSync));
    // The service answers the poll (and forgets it), but the answer never arrives.
    p.now += 300_000;
    p.lose_next_answer = true;
    assert_eq!(p.exchange(), Some(MessageKind::ResultPolling));
    // The retried poll names an id the service no longer knows: the seed's FAILED answer.
    p.now += HOUR;
    assert_eq!(p.exchange(), Some(MessageKind::ResultPolling));
    assert!(
        p.has_event("Invalid ProductInstanceIdentifier"),
        "{:?}",
        p.events
    );
    // The report goes out again and is acknowledged again; with the one closed at report time
    // that makes two reports, each stored once on the service.
    p.run_for(9 * HOUR);
    assert_eq!(p.dev.reports().len(), 0, "{:?}", p.events);
    let (pi, _) = p
        .svc
        .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(p.svc.report_count(pi).unwrap(), 2);
    // The lost answer was logged as what it was.
    assert!(p.has_event("E1303 ReadTimeout"), "{:?}", p.events);
}

#[test]
fn rma_a_replacement_is_a_new_product_instance() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-ONE-USE");
    let old = p.dev.trust().instance().unwrap().as_str().to_string();
    // The operator removes the failed unit from the service (the seed's "Remove...").
    let (pi, _) = p
        .svc
        .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap())
        .unwrap()
        .unwrap();
    p.svc.remove_instance(pi).unwrap();
    // The old unit is refused from now on, and keeps its unacknowledged report.
    p.cmd(Command::RecordUsage { tag: TAG, count: 1 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    assert_eq!(p.exchange(), Some(MessageKind::UsageReporting));
    assert!(p.has_event("COMM_FAILED"), "{:?}", p.events);
    assert_eq!(p.dev.reports().len(), 1);
    // The replacement, another serial, establishes trust as a new product instance.
    p.replace_device("9PJK8D70CNZ");
    p.trust("TOKEN-TWO-USES");
    let new = p.dev.trust().instance().unwrap().as_str().to_string();
    assert_ne!(old, new);
    assert!(p
        .svc
        .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNZ").unwrap())
        .unwrap()
        .is_some());
}

#[test]
fn a_lost_trust_answer_does_not_burn_the_token() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust_answer_lost("TOKEN-ONE-USE");
    // The retry a minute later carries the same pending key: the service recognises the
    // resend, returns the codes again and spends no second use.
    p.run_for(2 * MIN);
    assert!(p.dev.trust().is_installed(), "{:?}", p.events);
    assert_eq!(p.svc.token("TOKEN-ONE-USE").unwrap().unwrap().uses, 1);
    // A new attempt (new keys) with the spent token is refused, and trust stays.
    p.cmd(Command::EstablishTrust {
        token: "TOKEN-ONE-USE",
        scope: Scope::Local,
        force: true,
    })
    .unwrap();
    p.exchange();
    assert!(p.has_event("uses left"), "{:?}", p.events);
    assert!(p.dev.trust().is_installed());
}

/// A forced re-trust while closed reports wait unsent (the service was unreachable): the
/// service then knows only the new device key, so the device signs those reports again with
/// it; none is rejected and every one is acknowledged.
#[test]
fn reports_closed_before_a_forced_retrust_are_signed_again_and_accepted() {
    let mut p = Pair::new(false, UsageMode::Immediate);
    p.trust("TOKEN-TWO-USES");
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.unreachable = true;
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    p.cmd(Command::RecordUsage { tag: TAG, count: 3 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    let waiting: Vec<_> = p.dev.reports().iter().map(|r| r.id).collect();
    assert!(waiting.len() >= 2, "{waiting:?}");
    p.unreachable = false;

    p.cmd(Command::EstablishTrust {
        token: "TOKEN-TWO-USES",
        scope: Scope::Local,
        force: true,
    })
    .unwrap();
    assert_eq!(p.exchange(), Some(MessageKind::TrustEstablishment));
    assert!(p.has_event("TRUST_INSTALL_SUCCESS"), "{:?}", p.events);
    p.cmd(Command::SyncNow).unwrap();
    p.run_for(MIN);
    assert!(
        p.dev.reports().is_empty(),
        "reports left: {:?}; events {:?}",
        p.dev.reports(),
        p.events
    );
    let acks: Vec<_> = p
        .events
        .iter()
        .filter(|e| e.contains("USAGE_ACK_RECEIVED"))
        .collect();
    assert!(!acks.is_empty());
    assert!(acks.iter().all(|e| e.ends_with(" 0 rejected")), "{acks:?}");
}
