//! Every bad request gets a JSON error body with its stable code; keep-alive, the connection
//! cap, graceful shutdown, and the test switches (reject, drop, truncate, corrupt, delay).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use slup_core::diag::MessageKind;
use slup_core::types::Scope;
use slup_core::Code;
use slup_server::{Faults, Running, Server, ServerConfig};

use common::{raw_exchange, Client, Device, TempDir, MIN};

fn quiet(dir: &TempDir) -> ServerConfig {
    let mut cfg = ServerConfig::ephemeral(dir.db());
    cfg.log = false;
    cfg
}

fn client(r: &Running, path: &str) -> Client {
    Client::new(r.http_addr().unwrap(), path)
}

fn connect(r: &Running) -> TcpStream {
    let s = TcpStream::connect(r.http_addr().unwrap()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

fn expect(resp: &common::Response, status: u16, code: Code) {
    assert_eq!(
        (resp.status, resp.error_code()),
        (status, code.number()),
        "{}",
        resp.text()
    );
    assert_eq!(resp.header("content-type"), Some("application/json"));
}

#[test]
fn every_bad_request_gets_its_status_and_stable_code() {
    let dir = TempDir::new("bad");
    let srv = Server::start(quiet(&dir)).unwrap();
    let c = client(&srv, "/cslu/v1/pi");

    let r = client(&srv, "/nowhere").post_json(b"{}").unwrap();
    expect(&r, 404, Code::InvalidArgument);
    assert!(r.text().contains("/licservice/license"), "{}", r.text());
    expect(
        &client(&srv, "/cslu/v1/pi/no-va-number")
            .post_json(b"{}")
            .unwrap(),
        404,
        Code::InvalidArgument,
    );

    let r = c.request("GET", "application/json", b"").unwrap();
    expect(&r, 405, Code::InvalidArgument);
    assert_eq!(r.header("allow"), Some("POST"));

    expect(
        &c.request("POST", "text/plain", b"{}").unwrap(),
        415,
        Code::InvalidArgument,
    );
    // Parameters after the media type are fine; the body is then judged by the service.
    expect(
        &c.request("POST", "application/json; charset=utf-8", b"{")
            .unwrap(),
        400,
        Code::JsonSyntax,
    );
    expect(&c.post_json(b"not json").unwrap(), 400, Code::JsonSyntax);
    expect(&c.post_json(b"{}").unwrap(), 400, Code::MissingField);

    // Oversize: refused from the header alone, before any body is read.
    let head = format!(
        "POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        2 * 1024 * 1024
    );
    expect(
        &c.send_raw(head.as_bytes()).unwrap(),
        413,
        Code::MessageTooLarge,
    );

    let r = c
        .send_raw(b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\n\r\n")
        .unwrap();
    expect(&r, 411, Code::InvalidArgument);
    let r = c
        .send_raw(
            b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\n\
              Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        )
        .unwrap();
    expect(&r, 411, Code::InvalidArgument);
    expect(
        &c.send_raw(b"NOT HTTP AT ALL\r\n\r\n").unwrap(),
        400,
        Code::InvalidArgument,
    );
    let r = c
        .send_raw(b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Length: x\r\n\r\n")
        .unwrap();
    expect(&r, 400, Code::InvalidArgument);
    let huge = format!(
        "POST /cslu/v1/pi HTTP/1.1\r\nX-Filler: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    expect(
        &c.send_raw(huge.as_bytes()).unwrap(),
        431,
        Code::InvalidArgument,
    );

    // A body cut short: the client closes its side after 10 of 100 bytes.
    let mut s = connect(&srv);
    s.write_all(
        b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"request\"",
    )
    .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let r = raw_exchange(&mut s, b"").unwrap();
    expect(&r, 400, Code::TruncatedBody);
    srv.shutdown();
}

#[test]
fn a_request_that_stalls_gets_408() {
    let dir = TempDir::new("stall");
    let mut cfg = quiet(&dir);
    cfg.request_timeout = Duration::from_millis(300);
    let srv = Server::start(cfg).unwrap();
    let mut s = connect(&srv);
    let r = raw_exchange(
        &mut s,
        b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n{",
    )
    .unwrap();
    expect(&r, 408, Code::ReadTimeout);
    let mut s = connect(&srv);
    let r = raw_exchange(&mut s, b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Ty").unwrap();
    expect(&r, 408, Code::ReadTimeout);
    srv.shutdown();
}

#[test]
fn unknown_instance_and_bad_signature_are_refused_with_their_codes() {
    let dir = TempDir::new("auth");
    let srv = Server::start(quiet(&dir)).unwrap();
    let other_dir = TempDir::new("auth-other");
    let other = Server::start(quiet(&other_dir)).unwrap();
    let c = client(&srv, "/cslu/v1/pi");
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 21);
    dev.trust(&token, Scope::Local);
    dev.run(&c);
    assert!(dev.e.trust().is_installed());
    dev.report(1);
    let mut buf = vec![0u8; 64 * 1024];
    let t = dev.e.poll_transmit(dev.now(), &mut buf).unwrap();
    assert_eq!(t.kind, MessageKind::UsageReporting);
    let usage = buf[..t.len].to_vec();

    // A service that never trusted this unit.
    let r = client(&other, "/cslu/v1/pi").post_json(&usage).unwrap();
    expect(&r, 401, Code::NotTrusted);
    assert!(r
        .text()
        .contains("is not valid. Please re-register the instance"));

    // The envelope's signature (the last "value" of the body) altered in flight.
    let mut bad = usage.clone();
    let needle = b"\"value\":\"";
    let at = bad
        .windows(needle.len())
        .rposition(|w| w == needle)
        .unwrap();
    let ch = &mut bad[at + needle.len() + 4];
    *ch = if *ch == b'A' { b'B' } else { b'A' };
    let r = c.post_json(&bad).unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        [
            Code::BadSignature.number(),
            Code::InvalidSignatureEncoding.number()
        ]
        .contains(&r.error_code()),
        "{}",
        r.text()
    );

    // The genuine request is still accepted afterwards.
    let r = c.post_json(&usage).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    dev.e.handle_response(dev.now(), &r.body).unwrap();
    other.shutdown();
    srv.shutdown();
}

#[test]
fn keep_alive_serves_several_requests_on_one_connection() {
    let dir = TempDir::new("keepalive");
    let srv = Server::start(quiet(&dir)).unwrap();
    let mut s = connect(&srv);
    for _ in 0..3 {
        let r = raw_exchange(
            &mut s,
            b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        )
        .unwrap();
        expect(&r, 400, Code::MissingField);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
    srv.shutdown();
}

#[test]
fn connections_beyond_the_cap_get_503() {
    let dir = TempDir::new("cap");
    let mut cfg = quiet(&dir);
    cfg.max_connections = 1;
    let srv = Server::start(cfg).unwrap();
    let mut first = connect(&srv);
    // The first connection is being served (a request proves it), and stays open.
    let r = raw_exchange(
        &mut first,
        b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
    )
    .unwrap();
    assert_eq!(r.status, 400);
    let r = client(&srv, "/cslu/v1/pi").post_json(b"{}").unwrap();
    expect(&r, 503, Code::ServiceTryAgain);
    drop(first);
    srv.shutdown();
}

#[test]
fn shutdown_finishes_the_request_in_flight() {
    let dir = TempDir::new("graceful");
    let mut cfg = quiet(&dir);
    cfg.faults.delay = Some(Duration::from_millis(300));
    let srv = Server::start(cfg).unwrap();
    let c = client(&srv, "/cslu/v1/pi");
    let t = std::thread::spawn(move || c.post_json(b"{}"));
    // Once the connection is being served, stop the server while it answers.
    while srv.active_connections() == 0 {
        std::thread::sleep(Duration::from_millis(5));
    }
    let addr = srv.http_addr().unwrap();
    srv.shutdown();
    let r = t.join().unwrap().unwrap();
    expect(&r, 400, Code::MissingField);
    assert_eq!(r.header("connection"), Some("close"));
    // Nothing listens any more.
    assert!(TcpStream::connect(addr).is_err());
}

fn with_faults(dir: &TempDir, f: Faults) -> Running {
    let mut cfg = quiet(dir);
    cfg.faults = f;
    Server::start(cfg).unwrap()
}

#[test]
fn reject_is_deterministic_for_a_seed_and_changes_nothing() {
    let draws = |seed| {
        let dir = TempDir::new(&format!("reject-{seed}"));
        let srv = with_faults(
            &dir,
            Faults {
                reject: 0.5,
                seed,
                ..Faults::default()
            },
        );
        let c = client(&srv, "/cslu/v1/pi");
        let statuses: Vec<u16> = (0..24)
            .map(|_| c.post_json(b"{}").unwrap().status)
            .collect();
        srv.shutdown();
        statuses
    };
    let a = draws(7);
    assert_eq!(a, draws(7));
    assert_ne!(a, draws(8));
    assert!(a.contains(&503) && a.contains(&400), "{a:?}");

    let dir = TempDir::new("reject-all");
    let srv = with_faults(
        &dir,
        Faults {
            reject: 1.0,
            ..Faults::default()
        },
    );
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 22);
    dev.trust(&token, Scope::Local);
    let c = client(&srv, "/cslu/v1/pi");
    let r = {
        let mut buf = vec![0u8; 16 * 1024];
        let t = dev.e.poll_transmit(dev.now(), &mut buf).unwrap();
        c.post_json(&buf[..t.len]).unwrap()
    };
    expect(&r, 503, Code::ServiceTryAgain);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(srv.with_backend(|b| b.instances().unwrap()).is_empty());
    srv.shutdown();
}

#[test]
fn a_dropped_answer_is_handled_and_the_resend_spends_nothing() {
    let dir = TempDir::new("drop");
    let srv = with_faults(
        &dir,
        Faults {
            drop: 1.0,
            ..Faults::default()
        },
    );
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let anchor = srv.trust_anchor_sec1();
    let mut dev = Device::new("9PJK8D70CNB", None, &anchor, 23);
    dev.trust(&token, Scope::Local);
    assert_eq!(
        dev.run(&client(&srv, "/cslu/v1/pi")),
        vec![(MessageKind::TrustEstablishment, 0)]
    );
    assert!(!dev.e.trust().is_installed());
    // The service did the work: the one use is spent.
    assert_eq!(srv.with_backend(|b| b.instances().unwrap()).len(), 1);
    srv.shutdown();

    // Same database, no faults: the device's retry is recognised as a resend.
    let srv = Server::start(quiet(&dir)).unwrap();
    dev.run_for(&client(&srv, "/cslu/v1/pi"), 2 * MIN);
    assert!(dev.e.trust().is_installed(), "{:?}", dev.events);
    let uses = srv.with_backend(|b| b.service().token(&token).unwrap().unwrap().uses);
    assert_eq!(uses, 1);
    srv.shutdown();
}

#[test]
fn truncated_and_corrupted_answers_are_caught_by_the_device() {
    for (name, faults, expect_event) in [
        (
            "truncate",
            Faults {
                truncate: 1.0,
                ..Faults::default()
            },
            "E1313",
        ),
        (
            "corrupt",
            Faults {
                corrupt_signature: 1.0,
                ..Faults::default()
            },
            "E11",
        ),
    ] {
        let dir = TempDir::new(name);
        let srv = with_faults(&dir, faults);
        let token = srv.mint_token("Lab", 1, 30).unwrap();
        let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 24);
        dev.trust(&token, Scope::Local);
        dev.exchange(&client(&srv, "/cslu/v1/pi")).unwrap();
        assert!(!dev.e.trust().is_installed(), "{name}");
        assert!(
            dev.events.iter().any(|e| e.contains(expect_event)),
            "{name}: {:?}",
            dev.events
        );
        srv.shutdown();
    }
}

#[test]
fn a_delayed_answer_still_arrives() {
    let dir = TempDir::new("delay");
    let srv = with_faults(
        &dir,
        Faults {
            delay: Some(Duration::from_millis(50)),
            ..Faults::default()
        },
    );
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 25);
    dev.trust(&token, Scope::Local);
    dev.run(&client(&srv, "/cslu/v1/pi"));
    assert!(dev.e.trust().is_installed());
    srv.shutdown();
}

#[test]
fn the_trust_anchor_is_a_sec1_point_that_survives_restarts() {
    let dir = TempDir::new("anchor");
    let a = Server::start(quiet(&dir)).unwrap();
    let anchor = a.trust_anchor_sec1();
    assert_eq!((anchor.len(), anchor[0]), (65, 0x04));
    a.shutdown();
    let b = Server::start(quiet(&dir)).unwrap();
    assert_eq!(b.trust_anchor_sec1(), anchor);
    b.shutdown();
    let other = TempDir::new("anchor-other");
    let c = Server::start(quiet(&other)).unwrap();
    assert_ne!(c.trust_anchor_sec1(), anchor);
    c.shutdown();
}

#[test]
fn the_server_reads_what_it_is_sent_byte_by_byte() {
    // A client that trickles its request in small pieces is served like any other.
    let dir = TempDir::new("trickle");
    let srv = Server::start(quiet(&dir)).unwrap();
    let mut s = connect(&srv);
    let req = b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\nnot json";
    for piece in req.chunks(7) {
        s.write_all(piece).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    let r = raw_exchange(&mut s, b"").unwrap();
    expect(&r, 400, Code::JsonSyntax);
    let mut rest = Vec::new();
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    // Keep-alive: the connection is still open and silent.
    assert!(s.read_to_end(&mut rest).is_err() && rest.is_empty());
    srv.shutdown();
}

#[test]
fn expect_100_continue_is_honoured() {
    let dir = TempDir::new("continue");
    let srv = Server::start(quiet(&dir)).unwrap();
    let mut s = connect(&srv);
    s.write_all(
        b"POST /cslu/v1/pi HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 8\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert_eq!(interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    let r = raw_exchange(&mut s, b"not json").unwrap();
    expect(&r, 400, Code::JsonSyntax);
    srv.shutdown();
}

#[test]
fn requests_queued_behind_the_lock_share_one_commit() {
    const N: usize = 8;
    let dir = TempDir::new("group");
    let srv = Server::start(quiet(&dir)).unwrap();
    let before = srv.commit_stats();
    let c = client(&srv, "/cslu/v1/pi");
    let threads = srv.with_backend(|_| {
        // While the operator holds the service, N requests queue up behind it.
        let threads: Vec<_> = (0..N)
            .map(|_| {
                let c = c.clone();
                std::thread::spawn(move || c.post_json(b"{}").unwrap())
            })
            .collect();
        while srv.queued_requests() < N {
            std::thread::sleep(Duration::from_millis(1));
        }
        threads
    });
    for t in threads {
        expect(&t.join().unwrap(), 400, Code::MissingField);
    }
    let after = srv.commit_stats();
    assert_eq!(after.requests - before.requests, N as u64);
    assert_eq!(after.commits - before.commits, 1, "{after:?}");
    srv.shutdown();
}
