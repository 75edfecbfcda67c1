//! A real device engine against the real server over loopback sockets: HTTP and HTTPS, HA
//! pairs and token uses, OK_POLL, RMA, a restart on the same database, and a crowd of devices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;

use slup_core::diag::MessageKind;
use slup_core::server::store::ServiceStore;
use slup_core::types::{Scope, Udi};
use slup_core::Code;
use slup_server::{Running, Server, ServerConfig};

use common::{tls_trusting, Client, Device, TempDir, MIN};

fn start(dir: &TempDir) -> Running {
    Server::start(ServerConfig::ephemeral(dir.db())).unwrap()
}

fn http(r: &Running, path: &str) -> Client {
    Client::new(r.http_addr().unwrap(), path)
}

fn https(r: &Running, path: &str) -> Client {
    let mut c = Client::new(r.https_addr().unwrap(), path);
    c.tls = Some(tls_trusting(&r.ca_cert_der().unwrap()));
    c
}

/// Reports the service stored for the unit `serial`'s live instance.
fn stored_reports(r: &Running, serial: &str) -> usize {
    r.with_backend(|b| {
        let udi = Udi::new("C9800-CL-K9", serial).unwrap();
        let (pi, _) = b.service().instance_by_udi(&udi).unwrap().unwrap();
        b.service().report_count(pi).unwrap()
    })
}

#[test]
fn trust_report_and_ack_over_http_in_cslu_mode() {
    let dir = TempDir::new("http-cslu");
    let srv = start(&dir);
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let c = http(&srv, "/cslu/v1/pi");
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 1);
    dev.trust(&token, Scope::Local);
    let sent = dev.run(&c);
    assert_eq!(
        sent[0],
        (MessageKind::TrustEstablishment, 200),
        "{:?}",
        dev.events
    );
    assert!(dev.e.trust().is_installed(), "{:?}", dev.events);

    dev.report(3);
    let sent = dev.run(&c);
    assert!(
        sent.contains(&(MessageKind::UsageReporting, 200)),
        "{sent:?}"
    );
    assert_eq!(dev.held(), 0, "every report acknowledged: {:?}", dev.events);
    assert_eq!(stored_reports(&srv, "9PJK8D70CNB"), 1);
    srv.shutdown();
}

#[test]
fn trust_report_and_ack_over_https_on_every_endpoint() {
    let dir = TempDir::new("https");
    let srv = Server::start(ServerConfig::ephemeral(dir.db()).with_https()).unwrap();
    assert!(srv.https_url().unwrap().starts_with("https://127.0.0.1:"));
    let token = srv.mint_token("Lab", 3, 30).unwrap();
    for (i, path) in [
        "/licservice/license",
        "/SmartTransport",
        "/cslu/v1/pi/Lab-1",
    ]
    .into_iter()
    .enumerate()
    {
        let c = https(&srv, path);
        let serial = format!("FCW2233{i}ABC");
        let mut dev = Device::new(&serial, None, &srv.trust_anchor_sec1(), 10 + i as u64);
        dev.trust(&token, Scope::Local);
        dev.run(&c);
        assert!(dev.e.trust().is_installed(), "{path}: {:?}", dev.events);
        dev.report(2);
        dev.run(&c);
        assert_eq!(dev.held(), 0, "{path}: {:?}", dev.events);
        assert_eq!(stored_reports(&srv, &serial), 1, "{path}");
    }
    srv.shutdown();
}

#[test]
fn https_with_a_foreign_ca_is_refused_by_the_client() {
    let dir = TempDir::new("foreign-ca");
    let mut cfg = ServerConfig::ephemeral(dir.db()).with_https();
    if let Some((_, src)) = cfg.https.as_mut() {
        *src = slup_server::TlsSource::ForeignCa;
    }
    let srv = Server::start(cfg).unwrap();
    let c = https(&srv, "/licservice/license");
    let err = c.post_json(b"{}").unwrap_err();
    let text = err.to_string();
    assert!(text.contains("UnknownIssuer"), "{text}");
    // A device over it never reaches the service and records the TLS failure.
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 2);
    dev.trust(&token, Scope::Local);
    assert_eq!(dev.run(&c), vec![(MessageKind::TrustEstablishment, 0)]);
    assert!(dev.has_event("E1305"), "{:?}", dev.events);
    srv.shutdown();
}

#[test]
fn a_token_with_two_uses_trusts_an_ha_pair_and_is_then_exhausted_with_the_reason() {
    let dir = TempDir::new("ha");
    let srv = start(&dir);
    let c = http(&srv, "/licservice/license");
    let token = srv.mint_token("Lab", 2, 30).unwrap();
    let mut pair = Device::new(
        "9PJK8D70CNB",
        Some("9PJK8D70CNC"),
        &srv.trust_anchor_sec1(),
        3,
    );
    pair.trust(&token, Scope::All);
    pair.run(&c);
    assert!(pair.e.trust().is_installed(), "{:?}", pair.events);
    let uses = srv.with_backend(|b| b.service().token(&token).unwrap().unwrap().uses);
    assert_eq!(uses, 2, "one use per HA member");
    let (_, rec) = srv
        .with_backend(|b| {
            b.service()
                .instance_by_udi(&Udi::new("C9800-CL-K9", "9PJK8D70CNC").unwrap())
                .unwrap()
        })
        .unwrap();
    assert_eq!(rec.members.len(), 2);

    // A third unit finds the token spent, and the device shows the service's reason.
    let mut third = Device::new("9PJK8D70CND", None, &srv.trust_anchor_sec1(), 4);
    third.trust(&token, Scope::Local);
    assert_eq!(third.run(&c), vec![(MessageKind::TrustEstablishment, 200)]);
    assert!(!third.e.trust().is_installed());
    assert!(
        third.has_event("The ID token has 0 of 2 uses left"),
        "{:?}",
        third.events
    );
    srv.shutdown();
}

#[test]
fn an_expired_token_is_refused_with_the_reason() {
    let dir = TempDir::new("expired");
    let srv = start(&dir);
    let c = http(&srv, "/cslu/v1/pi");
    // Zero days: it expires the moment it is minted (the service judges by its own clock).
    let token = srv.mint_token("Lab", 1, 0).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 5);
    dev.trust(&token, Scope::Local);
    dev.run(&c);
    assert!(!dev.e.trust().is_installed());
    assert!(dev.has_event("The ID token expired at"), "{:?}", dev.events);
    srv.shutdown();
}

#[test]
fn ok_poll_then_poll_req_and_an_unknown_poll_id_gets_the_seed_failed_message() {
    let dir = TempDir::new("poll");
    let mut cfg = ServerConfig::ephemeral(dir.db());
    cfg.poll_delay = Some(60);
    let srv = Server::start(cfg).unwrap();
    let c = http(&srv, "/cslu/v1/pi");
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 6);
    dev.trust(&token, Scope::Local);
    dev.run(&c);

    // OK_POLL: the report is stored, the ACK waits for the poll.
    dev.report(1);
    dev.run(&c);
    assert_eq!(dev.held(), 1);
    let polls = srv.with_backend(|b| b.store().polls().unwrap());
    assert_eq!(polls.len(), 1);
    assert_eq!(stored_reports(&srv, "9PJK8D70CNB"), 1);
    let sent = dev.run_for(&c, 2 * MIN);
    assert!(
        sent.contains(&(MessageKind::ResultPolling, 200)),
        "{sent:?}"
    );
    assert_eq!(dev.held(), 0, "{:?}", dev.events);
    assert!(srv.with_backend(|b| b.store().polls().unwrap()).is_empty());

    // The service forgets the next pending poll: the device's poll gets CSSM's FAILED text.
    dev.report(2);
    dev.run(&c);
    let (poll_id, pi) = srv.with_backend(|b| b.store().polls().unwrap()).remove(0);
    srv.with_backend(|b| {
        b.service_mut()
            .store_mut()
            .take_poll(pi, &poll_id)
            .unwrap()
            .unwrap()
    });
    // Move to the poll time and send the poll by hand, to read the whole answer.
    let mut buf = vec![0u8; 64 * 1024];
    let mut poll = None;
    for _ in 0..10 {
        dev.advance(MIN);
        if let Some(t) = dev.e.poll_transmit(dev.now(), &mut buf) {
            poll = Some(t);
            break;
        }
    }
    let t = poll.expect("the device polls");
    assert_eq!(t.kind, MessageKind::ResultPolling);
    let r = c.post_json(&buf[..t.len]).unwrap();
    assert_eq!(r.status, 200);
    let resp = slup_core::msg::response::decode(&r.body).unwrap();
    let h = &resp.response.header;
    assert_eq!(h.status_code, slup_core::types::StatusCode::FAILED);
    assert_eq!(
        h.message.to_string(),
        format!("Invalid ProductInstanceIdentifier: {poll_id} provided in the polling request")
    );
    let _ = dev.e.handle_response(dev.now(), &r.body);
    dev.drain();
    assert!(dev.has_event("E1205 ServiceFailed"), "{:?}", dev.events);
    srv.shutdown();
}

#[test]
fn rma_removed_instance_is_refused_and_a_replacement_trusts() {
    let dir = TempDir::new("rma");
    let srv = start(&dir);
    let c = http(&srv, "/cslu/v1/pi");
    let token = srv.mint_token("Lab", 2, 30).unwrap();
    let mut old = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 7);
    old.trust(&token, Scope::Local);
    old.run(&c);
    old.report(1);
    old.run(&c);
    assert_eq!(old.held(), 0);

    let pi = srv.with_backend(|b| {
        let rows = b.instances().unwrap();
        assert_eq!(rows.len(), 1);
        b.remove_instance(rows[0].id).unwrap();
        rows[0].id
    });
    // The old identity is refused: 403 with NotTrusted, and its report stays on the device.
    old.report(2);
    let sent = old.run(&c);
    assert!(
        sent.contains(&(MessageKind::UsageReporting, 403)),
        "{sent:?}"
    );
    assert!(old.held() > 0, "nothing acknowledged");
    let hello = {
        let mut buf = vec![0u8; 16 * 1024];
        old.advance(2 * MIN);
        let t = old.e.poll_transmit(old.now(), &mut buf).unwrap();
        buf.truncate(t.len);
        buf
    };
    let r = c.post_json(&hello).unwrap();
    assert_eq!((r.status, r.error_code()), (403, Code::NotTrusted.number()));
    assert!(
        r.text().contains("Please re-register the instance"),
        "{}",
        r.text()
    );

    let mut new = Device::new("9PJK8D70CNZ", None, &srv.trust_anchor_sec1(), 8);
    new.trust(&token, Scope::Local);
    new.run(&c);
    assert!(new.e.trust().is_installed(), "{:?}", new.events);
    let rows = srv.with_backend(|b| b.instances().unwrap());
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().any(|r| r.id == pi && r.record.removed));
    srv.shutdown();
}

#[test]
fn a_restart_on_the_same_database_loses_nothing() {
    let dir = TempDir::new("restart");
    let srv = start(&dir);
    let anchor = srv.trust_anchor_sec1();
    let token = srv.mint_token("Lab", 2, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &anchor, 9);
    dev.trust(&token, Scope::Local);
    dev.run(&http(&srv, "/cslu/v1/pi"));
    dev.report(1);
    dev.run(&http(&srv, "/cslu/v1/pi"));
    assert_eq!(dev.held(), 0);
    srv.shutdown();

    // Mid-run: the device reports while the service is down, then the service comes back.
    dev.report(2);
    let gone = Client::new(
        std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        "/cslu/v1/pi",
    );
    assert_eq!(dev.run(&gone)[0], (MessageKind::UsageReporting, 0));
    let waiting = dev.held();
    assert!(waiting > 0);
    let before = acknowledged(&dev);

    let srv = start(&dir);
    assert_eq!(srv.trust_anchor_sec1(), anchor, "same key after a restart");
    let c = http(&srv, "/cslu/v1/pi");
    dev.run_for(&c, 2 * MIN);
    assert_eq!(dev.held(), 0, "{:?}", dev.events);
    // Everything waiting went through (with anything closed since), each stored once.
    let acked = acknowledged(&dev);
    assert!(acked >= before + waiting, "{acked} {before} {waiting}");
    assert_eq!(
        stored_reports(&srv, "9PJK8D70CNB"),
        acked,
        "{:?}",
        dev.events
    );
    let uses = srv.with_backend(|b| b.service().token(&token).unwrap().unwrap().uses);
    assert_eq!(uses, 1);
    srv.shutdown();
}

/// Reports the device saw acknowledged, summed over its ACK events.
fn acknowledged(dev: &Device) -> usize {
    const NEEDLE: &str = "A usage report acknowledgement was received: ";
    dev.events
        .iter()
        .filter_map(|e| e.split_once(NEEDLE))
        .map(|(_, rest)| {
            rest.split(' ')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap()
        })
        .sum()
}

#[test]
fn a_hundred_devices_at_once_each_report_acknowledged_exactly_once() {
    const DEVICES: usize = 100;
    const REPORTS: u64 = 3;
    let dir = TempDir::new("crowd");
    let srv = Arc::new(start(&dir));
    let token = srv.mint_token("Crowd", DEVICES as u32, 30).unwrap();
    let anchor = srv.trust_anchor_sec1();
    let barrier = Arc::new(std::sync::Barrier::new(DEVICES));
    let threads: Vec<_> = (0..DEVICES)
        .map(|i| {
            let (srv, token, anchor, barrier) = (
                Arc::clone(&srv),
                token.clone(),
                anchor.clone(),
                Arc::clone(&barrier),
            );
            std::thread::spawn(move || {
                let c = http(&srv, "/cslu/v1/pi");
                let mut dev = Device::new(&format!("CROWD{i:04}"), None, &anchor, 100 + i as u64);
                barrier.wait();
                dev.trust(&token, Scope::Local);
                dev.run_for(&c, 5 * MIN);
                assert!(dev.e.trust().is_installed(), "{i}: {:?}", dev.events);
                for n in 0..REPORTS {
                    dev.report(n + 1);
                    dev.run_for(&c, 5 * MIN);
                }
                assert_eq!(dev.held(), 0, "{i}: {:?}", dev.events);
                (format!("CROWD{i:04}"), acknowledged(&dev))
            })
        })
        .collect();
    let mut acked_total = 0;
    for t in threads {
        let (serial, acked) = t.join().unwrap();
        // Every report the device closed was acknowledged once and stored once.
        assert!(acked >= REPORTS as usize, "{serial}: {acked}");
        assert_eq!(stored_reports(&srv, &serial), acked, "{serial}");
        acked_total += acked;
    }
    let (reports, polls) = srv.with_backend(|b| b.store().totals().unwrap());
    assert_eq!(reports, acked_total as u64);
    assert_eq!(polls, 0);
    srv.with_backend(|b| {
        assert_eq!(b.instances().unwrap().len(), DEVICES);
        assert_eq!(
            b.service().token(&token).unwrap().unwrap().uses,
            DEVICES as u32
        );
    });
    Arc::try_unwrap(srv).unwrap().shutdown();
}

#[test]
fn stored_report_count_is_visible_to_the_trait() {
    // The admin listing and the trait agree on what was stored.
    let dir = TempDir::new("count");
    let srv = start(&dir);
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let c = http(&srv, "/cslu/v1/pi");
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 11);
    dev.trust(&token, Scope::Local);
    dev.run(&c);
    dev.report(5);
    dev.run(&c);
    srv.with_backend(|b| {
        let row = &b.instances().unwrap()[0];
        assert_eq!(row.reports, b.store().report_count(row.id).unwrap());
        assert_eq!(row.reports, 1);
        let stored = b.store().reports_of(row.id).unwrap();
        assert_eq!(stored[0].count, 5);
        assert_ne!(stored[0].payload_sha256, [0u8; 32]);
    });
    srv.shutdown();
}

#[test]
fn https_from_pem_files_serves_a_device() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = TempDir::new("pem");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &ca)
        .unwrap();
    let (cert, key) = (dir.0.join("cert.pem"), dir.0.join("key.pem"));
    std::fs::write(&cert, leaf.pem()).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    let mut cfg = ServerConfig::ephemeral(dir.db());
    cfg.https = Some((
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        slup_server::TlsSource::Pem { cert, key },
    ));
    let srv = Server::start(cfg).unwrap();
    assert_eq!(srv.ca_cert_der(), None, "the operator holds the CA");
    let mut c = Client::new(srv.https_addr().unwrap(), "/SmartTransport");
    c.tls = Some(tls_trusting(ca.der()));
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 12);
    dev.trust(&token, Scope::Local);
    dev.run(&c);
    assert!(dev.e.trust().is_installed(), "{:?}", dev.events);
    srv.shutdown();

    // A key file that is not PEM is refused at start with the file named.
    let mut cfg = ServerConfig::ephemeral(dir.db());
    let bad = dir.0.join("bad.pem");
    std::fs::write(&bad, "nothing here").unwrap();
    cfg.https = Some((
        std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        slup_server::TlsSource::Pem {
            cert: dir.0.join("cert.pem"),
            key: bad,
        },
    ));
    let e = Server::start(cfg).unwrap_err();
    assert!(e.to_string().contains("bad.pem"), "{e}");
}
