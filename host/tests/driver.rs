//! The driver pumping a real engine over real loopback HTTP against the sans-IO service of
//! `slup-core` (feature `server`) behind a tiny HTTP server thread.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use rand_core::OsRng;
use slup_core::crypto::{Signer, SoftwareSigner};
use slup_core::diag::event::EventKind;
use slup_core::diag::MessageKind;
use slup_core::engine::config::{Config as DeviceConfig, TransportMode};
use slup_core::engine::persist::Record;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::server::{Config, MemStore, Service, TokenSpec};
use slup_core::types::{Scope, Timestamp};
use slup_core::Code;
use slup_host::driver::{Outcome, Recorder};
use slup_host::persist::Restart;
use slup_host::{Clock, Driver, HttpConfig, HttpTransport, SystemClock};

type Svc = Arc<Mutex<Service<MemStore, SoftwareSigner>>>;
type Device = Engine<SoftwareKeys<OsRng>, OsRng>;

const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

fn service_key() -> SoftwareSigner {
    SoftwareSigner::from_secret_bytes(&[0x5e; 32]).unwrap()
}

/// The service behind HTTP on loopback; answers in chunks when `chunked`. Serves until the
/// test process ends.
fn serve(svc: Svc, chunked: bool) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/cslu/v1/pi",
        l.local_addr().unwrap().port()
    );
    std::thread::spawn(move || {
        for s in l.incoming() {
            let mut s = s.unwrap();
            let mut req = Vec::new();
            let mut b = [0u8; 8192];
            let body_at = loop {
                let n = s.read(&mut b).unwrap();
                assert!(n > 0);
                req.extend_from_slice(&b[..n]);
                if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..end]).to_lowercase();
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    if req.len() >= end + 4 + len {
                        break end + 4;
                    }
                }
            };
            let mut out = vec![0u8; 64 * 1024];
            let now = SystemClock.now();
            let reply = svc
                .lock()
                .unwrap()
                .handle(now, &mut OsRng, &req[body_at..], &mut out);
            let body = &out[..reply.len];
            let mut answer = format!(
                "HTTP/1.1 {} X\r\nContent-Type: application/json\r\n",
                reply.http_status
            )
            .into_bytes();
            if chunked {
                answer.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
                for part in body.chunks(100) {
                    answer.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                    answer.extend_from_slice(part);
                    answer.extend_from_slice(b"\r\n");
                }
                answer.extend_from_slice(b"0\r\n\r\n");
            } else {
                answer.extend_from_slice(
                    format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes(),
                );
                answer.extend_from_slice(body);
            }
            let _ = s.write_all(&answer);
        }
    });
    url
}

fn service() -> Svc {
    let mut svc = Service::new(MemStore::new(), service_key(), Config::default()).unwrap();
    let sa = svc.create_smart_account("Wireless TAC").unwrap();
    let va = svc.create_virtual_account(sa, "Lab VA").unwrap();
    svc.add_token(
        "TOKEN-ONE-USE",
        TokenSpec {
            virtual_account: va,
            max_uses: 1,
            expires_at: Timestamp(SystemClock.now().0 + 86_400_000),
            export_controlled: false,
        },
    )
    .unwrap();
    Arc::new(Mutex::new(svc))
}

fn device(url: &str, serial: &str) -> Device {
    let mut cfg: DeviceConfig = DeviceConfig::new(
        "C9800-CL-K9",
        serial,
        "17.09.02",
        "regid.2018-05.com.cisco.WLC_9500C,1.0",
        service_key().public_key().clone(),
    )
    .unwrap();
    cfg.set_transport(TransportMode::Cslu, url).unwrap();
    Engine::new(cfg, SoftwareKeys(OsRng), OsRng, SystemClock.now())
}

/// Establishes trust for `dev` with `TOKEN-ONE-USE` through the driver.
fn trust(d: &mut Driver<HttpTransport, SystemClock>, dev: &mut Device, sink: &mut Recorder) {
    dev.handle_command(
        SystemClock.now(),
        Command::EstablishTrust {
            token: "TOKEN-ONE-USE",
            scope: Scope::Local,
            force: false,
        },
    )
    .unwrap();
    d.pump(dev, sink);
}

/// A fresh engine for the test device, restored from `store` (a reboot or a resume); returns
/// it with the records that could not be restored.
fn restored(
    url: &str,
    store: &slup_host::FileStore,
    restart: Restart,
) -> (Device, Vec<(Record, slup_host::HostError)>) {
    let mut dev = device(url, "9PJK8D70CNB");
    let lost = slup_host::persist::restore(&mut dev, store, SystemClock.now(), restart);
    (dev, lost)
}

fn kinds(r: &Recorder) -> Vec<&'static str> {
    r.events.iter().map(|e| e.kind.mnemonic()).collect()
}

#[test]
fn trust_usage_and_ack_over_http_with_both_body_framings() {
    for chunked in [false, true] {
        let url = serve(service(), chunked);
        let mut dev = device(&url, "9PJK8D70CNB");
        let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock);
        let mut sink = Recorder::default();
        // Nothing is signed, so nothing is sent, before trust.
        assert_eq!(d.pump(&mut dev, &mut sink), 0);
        let now = SystemClock.now();
        dev.handle_command(
            now,
            Command::EstablishTrust {
                token: "TOKEN-ONE-USE",
                scope: Scope::Local,
                force: false,
            },
        )
        .unwrap();
        d.pump(&mut dev, &mut sink);
        assert!(dev.trust().is_installed(), "{:?}", kinds(&sink));
        // Then the CSLU is greeted.
        assert_eq!(sink.exchanges[0].kind, MessageKind::TrustEstablishment);
        assert_eq!(sink.exchanges[1].kind, MessageKind::Hello);
        assert!(sink.exchanges.iter().all(|x| x.outcome == Outcome::Applied));
        dev.handle_command(
            SystemClock.now(),
            Command::RecordUsage { tag: TAG, count: 3 },
        )
        .unwrap();
        dev.handle_command(SystemClock.now(), Command::SyncNow)
            .unwrap();
        d.pump(&mut dev, &mut sink);
        let k = kinds(&sink);
        for want in ["TRUST_INSTALL_SUCCESS", "USAGE_ACK_RECEIVED"] {
            assert!(k.contains(&want), "{want} missing: {k:?}");
        }
        assert!(!k.contains(&"COMM_FAILED"), "{k:?}");
        assert!(sink.exchanges.iter().all(|x| x.http_status == Some(200)));
        assert!(
            dev.reports().iter().next().is_none(),
            "every report acknowledged"
        );
    }
}

#[test]
fn an_exhausted_token_is_refused_with_the_services_reason() {
    let url = serve(service(), false);
    let mut dev = device(&url, "9PJK8D70CNB");
    let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock);
    let mut sink = Recorder::default();
    trust(&mut d, &mut dev, &mut sink);
    assert!(dev.trust().is_installed());
    // A second device spends the same one-use token: the signed answer is FAILED.
    let mut impostor = device(&url, "9PJK8D70CND");
    impostor
        .handle_command(
            SystemClock.now(),
            Command::EstablishTrust {
                token: "TOKEN-ONE-USE",
                scope: Scope::Local,
                force: false,
            },
        )
        .unwrap();
    let mut sink = Recorder::default();
    d.pump(&mut impostor, &mut sink);
    let x = sink
        .exchanges
        .iter()
        .find(|x| x.kind == MessageKind::TrustEstablishment)
        .unwrap();
    assert_eq!(x.http_status, Some(200));
    assert!(!impostor.trust().is_installed());
    let failed = sink
        .events
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                EventKind::CommFailed {
                    cause: Code::ServiceFailed,
                    ..
                }
            )
        })
        .unwrap_or_else(|| panic!("{:?}", kinds(&sink)));
    assert!(
        !failed.detail.is_empty(),
        "the service's reason is kept: {failed}"
    );
}

#[test]
fn an_error_body_is_a_service_error_carrying_the_services_code() {
    let svc = service();
    let url = serve(svc.clone(), false);
    let mut dev = device(&url, "9PJK8D70CNB");
    let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock);
    let mut sink = Recorder::default();
    trust(&mut d, &mut dev, &mut sink);
    assert!(dev.trust().is_installed());
    // The service loses its database: it no longer knows this device and cannot
    // authenticate it, so it answers with an unsigned error body.
    *svc.lock().unwrap() = Service::new(MemStore::new(), service_key(), Config::default()).unwrap();
    dev.handle_command(
        SystemClock.now(),
        Command::RecordUsage { tag: TAG, count: 1 },
    )
    .unwrap();
    dev.handle_command(SystemClock.now(), Command::SyncNow)
        .unwrap();
    let mut sink = Recorder::default();
    d.pump(&mut dev, &mut sink);
    let x = &sink.exchanges[0];
    assert_eq!(x.http_status, Some(401));
    match &x.outcome {
        Outcome::Failed(e) => {
            assert_eq!(e.code, Code::ServiceError);
            assert!(e.detail.starts_with("HTTP 401: service error E15"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    assert!(sink.events.iter().any(|e| matches!(
        e.kind,
        EventKind::CommFailed {
            cause: Code::ServiceError,
            ..
        }
    )));
}

#[test]
fn an_unreachable_service_is_recorded_as_no_reply_with_its_cause() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut dev = device(
        &format!("http://127.0.0.1:{port}/cslu/v1/pi"),
        "9PJK8D70CNB",
    );
    let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock);
    let mut sink = Recorder::default();
    trust(&mut d, &mut dev, &mut sink);
    let x = &sink.exchanges[0];
    assert!(
        matches!(&x.outcome, Outcome::Failed(e) if e.code == Code::ConnectRefused),
        "{x:?}"
    );
    assert!(sink.events.iter().any(|e| matches!(
        e.kind,
        EventKind::CommFailed {
            cause: Code::ConnectRefused,
            ..
        }
    )));
    // One attempt, then the engine waits for its retry cadence: the pump does not spin.
    assert_eq!(sink.exchanges.len(), 1);
    let mut text = String::new();
    slup_core::engine::render::history_message(&dev, SystemClock.now(), &mut text).unwrap();
    assert!(
        text.contains("ConnectRefused") || text.to_lowercase().contains("no reply"),
        "{text}"
    );
}

#[test]
fn state_saved_by_the_driver_survives_a_reboot() {
    let url = serve(service(), false);
    let dir = tempfile::tempdir().unwrap();
    let store = slup_host::FileStore::open(dir.path()).unwrap();
    let mut sink = Recorder::default();
    {
        let mut dev = device(&url, "9PJK8D70CNB");
        let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock)
            .with_store(store.clone());
        trust(&mut d, &mut dev, &mut sink);
        assert!(dev.trust().is_installed());
        dev.handle_command(
            SystemClock.now(),
            Command::RecordUsage { tag: TAG, count: 2 },
        )
        .unwrap();
        slup_host::persist::save(&mut dev, &store).unwrap();
    }
    assert!(!slup_host::persist::records(&store).unwrap().is_empty());
    // Reboot: a fresh engine with the same configuration, restored from the files.
    let (mut dev, lost) = restored(&url, &store, Restart::Reload);
    assert!(lost.is_empty(), "{lost:?}");
    assert!(dev.trust().is_installed());
    assert_eq!(
        dev.usage()
            .tags()
            .iter()
            .map(|t| t.count)
            .collect::<Vec<_>>(),
        [2]
    );
    let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock)
        .with_store(store.clone());
    dev.handle_command(SystemClock.now(), Command::SyncNow)
        .unwrap();
    d.pump(&mut dev, &mut sink);
    assert!(
        kinds(&sink).contains(&"USAGE_ACK_RECEIVED"),
        "{:?}",
        kinds(&sink)
    );
    assert!(
        dev.changed().is_empty(),
        "the driver saved everything after the exchange"
    );
    // A damaged state file is reported and not trusted: every part starts fresh, with an
    // event each, and the next save replaces the file.
    let path = dir.path().join(slup_core::storage::file::STATE);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    let (mut dev, lost) = restored(&url, &store, Restart::Reload);
    assert!(!lost.is_empty());
    assert!(
        lost.iter().all(|(_, e)| e.code == Code::RecordCorrupt),
        "{lost:?}"
    );
    assert!(!dev.trust().is_installed());
    slup_host::persist::save(&mut dev, &store).unwrap();
    assert_eq!(
        slup_host::persist::records(&store).unwrap().len(),
        Record::ALL.len()
    );
}

/// A directory written by slup 0.1 (one `engine-<record>` file each) is migrated on the first
/// restore: everything comes back, the state file takes the records, the old files go.
#[test]
fn a_directory_with_one_file_per_record_is_migrated() {
    let url = serve(service(), false);
    let dir = tempfile::tempdir().unwrap();
    let store = slup_host::FileStore::open(dir.path()).unwrap();
    let mut sink = Recorder::default();
    let mut dev = device(&url, "9PJK8D70CNB");
    let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock);
    trust(&mut d, &mut dev, &mut sink);
    assert!(dev.trust().is_installed());
    dev.handle_command(
        SystemClock.now(),
        Command::RecordUsage { tag: TAG, count: 4 },
    )
    .unwrap();
    // Written as slup 0.1 did.
    for r in Record::ALL {
        let mut b = vec![0u8; dev.record_len(r).unwrap()];
        dev.write_record(r, &mut b).unwrap();
        store
            .write(&slup_host::persist::record_file_name(r), &b)
            .unwrap();
    }

    let (back, lost) = restored(&url, &store, Restart::Resume);
    assert!(lost.is_empty(), "{lost:?}");
    assert!(back.trust().is_installed());
    assert_eq!(back.usage().tags()[0].count, 4);
    let names = store.names().unwrap();
    assert!(!names.iter().any(|n| n.starts_with("engine-")), "{names:?}");
    assert_eq!(
        slup_host::persist::records(&store).unwrap().len(),
        Record::ALL.len()
    );
}
