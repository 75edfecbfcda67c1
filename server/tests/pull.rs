//! CSLU-initiated pull against a real device engine serving its REST API on a loopback socket,
//! and the offline usage-file → ACK-file round trip.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use slup_core::engine::pull::{PullCredentials, PullRequest};
use slup_core::server::store::RejectReason;
use slup_core::types::{Scope, Timestamp};
use slup_core::Code;
use slup_server::pull::{pull, PullOptions};
use slup_server::{Server, ServerConfig};

use common::{Client, Device, TempDir};

/// Serves `dev.handle_pull` over HTTP on loopback until `requests` requests were answered.
fn serve_device(dev: Arc<Mutex<Device>>, requests: usize) -> (String, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let t = std::thread::spawn(move || {
        for _ in 0..requests {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = Vec::new();
            let req = slup_server::http::read_request(&mut s, &mut buf, 1 << 20, |_| true).unwrap();
            let mut out = vec![0u8; 256 * 1024];
            let mut d = dev.lock().unwrap();
            let now = d.now();
            let r = d.e.handle_pull(
                now,
                &PullRequest {
                    method: &req.method,
                    path: &req.path,
                    authorization: req.authorization.as_deref(),
                    body: &req.body,
                },
                &PullCredentials {
                    user: "cslu",
                    password: "s3cret",
                },
                &mut out,
            );
            d.drain();
            slup_server::http::write_response(&mut s, r.status, &out[..r.len], true, "").unwrap();
            s.flush().unwrap();
        }
    });
    (url, t)
}

#[test]
fn pull_reads_verifies_and_stores_each_report_once_then_pushes_the_ack() {
    let dir = TempDir::new("pull");
    let srv = Server::start(ServerConfig::ephemeral(dir.db())).unwrap();
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 31);
    dev.trust(&token, Scope::Local);
    dev.run(&Client::new(srv.http_addr().unwrap(), "/cslu/v1/pi"));
    assert!(dev.e.trust().is_installed());
    dev.cmd(slup_core::engine::Command::RecordUsage {
        tag: common::TAG,
        count: 4,
    })
    .unwrap();
    let dev = Arc::new(Mutex::new(dev));

    // close-reports, all-reports, import.
    let (url, t) = serve_device(Arc::clone(&dev), 3);
    let opts = PullOptions {
        user: "cslu".into(),
        password: "s3cret".into(),
        push: true,
        tls: None,
    };
    let outcome = srv.with_backend(|b| pull(b, &url, &opts)).unwrap();
    t.join().unwrap();
    assert!(outcome.pulled >= 1, "{outcome}");
    assert_eq!(outcome.ack.acked.len(), outcome.pulled, "{outcome}");
    assert!(outcome.ack.rejected.is_empty());
    let (stored, _) = srv.with_backend(|b| b.store().totals().unwrap());
    assert_eq!(stored, outcome.pulled as u64);
    // The device imported the pushed ACK (it answers the nonce of the listing) and holds
    // nothing any more.
    let (status, body) = outcome.push.clone().unwrap();
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(outcome.push_accepted(), "{outcome}");
    assert_eq!(dev.lock().unwrap().held(), 0);

    // A second pull returns what the device still holds (and any report closed since): each
    // is acknowledged again and stored once.
    let (url, t) = serve_device(Arc::clone(&dev), 3);
    let again = srv.with_backend(|b| pull(b, &url, &opts)).unwrap();
    t.join().unwrap();
    assert_eq!(again.ack.acked.len(), again.pulled, "{again}");
    let mut ids: Vec<u64> = outcome
        .ack
        .acked
        .iter()
        .chain(&again.ack.acked)
        .map(|r| r.0)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let (stored2, _) = srv.with_backend(|b| b.store().totals().unwrap());
    assert_eq!(stored2, ids.len() as u64, "{again}");
    srv.shutdown();
}

#[test]
fn pull_with_wrong_credentials_is_a_device_error() {
    let dir = TempDir::new("pull-auth");
    let srv = Server::start(ServerConfig::ephemeral(dir.db())).unwrap();
    let dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 32);
    let (url, t) = serve_device(Arc::new(Mutex::new(dev)), 1);
    let opts = PullOptions {
        user: "cslu".into(),
        password: "wrong".into(),
        push: true,
        tls: None,
    };
    let err = srv.with_backend(|b| pull(b, &url, &opts)).unwrap_err();
    t.join().unwrap();
    let text = err.to_string();
    assert!(text.contains("close-reports answered 401"), "{text}");
    srv.shutdown();
}

#[test]
fn pulled_reports_of_an_unknown_unit_are_rejected() {
    // A device trusted by another service: its reports verify with nothing we know.
    let dir = TempDir::new("pull-foreign");
    let srv = Server::start(ServerConfig::ephemeral(dir.db())).unwrap();
    let other_dir = TempDir::new("pull-foreign-other");
    let other = Server::start(ServerConfig::ephemeral(other_dir.db())).unwrap();
    let token = other.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &other.trust_anchor_sec1(), 33);
    dev.trust(&token, Scope::Local);
    dev.run(&Client::new(other.http_addr().unwrap(), "/cslu/v1/pi"));
    dev.cmd(slup_core::engine::Command::RecordUsage {
        tag: common::TAG,
        count: 1,
    })
    .unwrap();
    // Not pushed: close-reports and all-reports only.
    let (url, t) = serve_device(Arc::new(Mutex::new(dev)), 2);
    let opts = PullOptions {
        user: "cslu".into(),
        password: "s3cret".into(),
        push: false,
        tls: None,
    };
    let outcome = srv.with_backend(|b| pull(b, &url, &opts)).unwrap();
    t.join().unwrap();
    assert!(outcome.push.is_none());
    assert!(outcome.pulled >= 1);
    assert!(outcome.ack.acked.is_empty());
    assert!(outcome
        .ack
        .rejected
        .iter()
        .all(|(_, why)| *why == RejectReason::ForeignUnit));
    assert_eq!(srv.with_backend(|b| b.store().totals().unwrap()).0, 0);
    other.shutdown();
    srv.shutdown();
}

#[test]
fn an_offline_usage_file_gets_an_ack_file_the_device_imports() {
    let dir = TempDir::new("offline");
    let srv = Server::start(ServerConfig::ephemeral(dir.db())).unwrap();
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let mut dev = Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 34);
    dev.trust(&token, Scope::Local);
    dev.run(&Client::new(srv.http_addr().unwrap(), "/cslu/v1/pi"));
    dev.cmd(slup_core::engine::Command::RecordUsage {
        tag: common::TAG,
        count: 2,
    })
    .unwrap();
    let mut file = vec![0u8; 64 * 1024];
    let n = dev.e.save_usage(dev.now(), true, &mut file).unwrap();
    file.truncate(n);
    assert!(dev.held() > 0);
    let ack = srv.with_backend(|b| b.ack_usage_file(&file)).unwrap();
    dev.e.import(Timestamp(dev.now().0), &ack).unwrap();
    assert_eq!(dev.held(), 0);
    // The same file again is acknowledged again and stored once; a garbage file is refused.
    let again = srv.with_backend(|b| b.ack_usage_file(&file)).unwrap();
    assert_ne!(again, ack, "a fresh signature time");
    let e = srv.with_backend(|b| b.ack_usage_file(b"{}")).unwrap_err();
    assert_eq!(e.code(), Some(Code::MissingField));
    srv.shutdown();
}
