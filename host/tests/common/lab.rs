//! A slup-server on loopback and devices trusted by it, each with its own record directory,
//! ready to send a usage report through whatever path a test sets up.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use rand_core::OsRng;
use slup_core::crypto::PublicKey;
use slup_core::diag::event::{Event, EventKind};
use slup_core::engine::config::{Config, TransportMode};
use slup_core::engine::render;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::types::{Scope, Timestamp};
use slup_core::Code;
use slup_host::driver::{Exchange, Outcome, Recorder};
use slup_host::http::Head;
use slup_host::persist::{self, Restart};
use slup_host::transport::Transport;
use slup_host::{
    Clock, Driver, FileStore, HostError, HttpConfig, HttpTransport, Roots, SystemClock,
};
use slup_server::{Running, Server, ServerConfig};

/// A scratch directory, in memory (`/dev/shm`) where the machine has one: these tests are
/// about the network, and a disk's fsync (about 10 ms here) per record write would make the
/// long runs slow without testing anything more. The record files are real files all the
/// same; the storage tests use the disk.
pub fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(d) = tempfile::tempdir_in(shm) {
            return d;
        }
    }
    tempfile::tempdir().unwrap()
}

/// The device type of the tests.
pub type Device = Engine<SoftwareKeys<OsRng>, OsRng>;

/// The entitlement the devices report.
pub const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

/// A license service for one test.
pub struct Lab {
    /// The running server (HTTP and HTTPS).
    pub server: Running,
    /// An ID token with uses to spare.
    pub token: String,
    dir: tempfile::TempDir,
    serials: AtomicU32,
}

impl Lab {
    /// A server with HTTP and HTTPS on loopback; `tune` adjusts its configuration.
    pub fn start(tune: impl FnOnce(&mut ServerConfig)) -> Lab {
        let dir = scratch();
        let mut cfg = ServerConfig::ephemeral(dir.path().join("slup.db")).with_https();
        cfg.log = false;
        tune(&mut cfg);
        let server = Server::start(cfg).unwrap();
        let token = server.mint_token("Lab", 10_000, 30).unwrap();
        Lab {
            server,
            token,
            dir,
            serials: AtomicU32::new(1),
        }
    }

    /// A second server on the same database (same key, same trusted devices), configured by
    /// `tune`: the same service behind a faulty front end.
    pub fn twin(&self, tune: impl FnOnce(&mut ServerConfig)) -> Running {
        let mut cfg = ServerConfig::ephemeral(self.dir.path().join("slup.db")).with_https();
        cfg.log = false;
        tune(&mut cfg);
        Server::start(cfg).unwrap()
    }

    /// Reports the service has stored from the device with serial `serial`.
    pub fn reports_of(&self, serial: &str) -> usize {
        self.server.with_backend(|b| {
            b.instances()
                .unwrap()
                .iter()
                .filter(|i| {
                    i.record
                        .members
                        .iter()
                        .any(|m| m.udi.serial.as_str() == serial)
                })
                .map(|i| i.reports)
                .sum()
        })
    }

    /// `http://127.0.0.1:P/licservice/license`.
    pub fn http_url(&self) -> String {
        format!("{}/licservice/license", self.server.http_url())
    }

    /// The plain HTTP port.
    pub fn http_port(&self) -> u16 {
        self.server.http_addr().unwrap().port()
    }

    /// The HTTPS port.
    pub fn https_port(&self) -> u16 {
        self.server.https_addr().unwrap().port()
    }

    /// `https://localhost:P/licservice/license`.
    pub fn https_url(&self) -> String {
        format!("https://localhost:{}/licservice/license", self.https_port())
    }

    /// The CA of the server's HTTPS certificate.
    pub fn roots(&self) -> Roots {
        Roots::from_pem_or_der(&self.server.ca_cert_der().unwrap()).unwrap()
    }

    /// The service key: the devices' trust anchor.
    pub fn anchor(&self) -> PublicKey {
        PublicKey::from_sec1(&self.server.trust_anchor_sec1()).unwrap()
    }

    /// A device configuration for `serial`, smart transport to `url`.
    pub fn config(&self, serial: &str, url: &str) -> Config {
        let mut c: Config = Config::new(
            "C9800-CL-K9",
            serial,
            "17.09.02",
            "regid.2018-05.com.cisco.WLC_9500C,1.0",
            self.anchor(),
        )
        .unwrap();
        c.set_transport(TransportMode::Smart, url).unwrap();
        c
    }

    /// A fresh serial number.
    pub fn serial(&self) -> String {
        format!("FLT{:08}", self.serials.fetch_add(1, Ordering::SeqCst))
    }

    /// A device trusted over the clean HTTP path, then restarted (its records restored) with
    /// `url` as its service URL. Usage is recorded; nothing is due yet.
    pub fn trusted(&self, url: &str) -> Bench {
        self.trusted_with(url, |_| {})
    }

    /// [`Lab::trusted`], the restarted device's configuration adjusted by `tune`.
    pub fn trusted_with(&self, url: &str, tune: impl Fn(&mut Config)) -> Bench {
        let dir = scratch();
        let store = FileStore::open(dir.path()).unwrap();
        let serial = self.serial();
        {
            let now = SystemClock.now();
            let mut first = self.config(&serial, &self.http_url());
            // The schedule (report time) is in the records: the same intervals from the start.
            tune(&mut first);
            let mut dev: Device = Engine::new(first, SoftwareKeys(OsRng), OsRng, now);
            let mut d = Driver::new(HttpTransport::new(HttpConfig::default()), SystemClock)
                .with_store(store.clone());
            dev.handle_command(
                now,
                Command::EstablishTrust {
                    token: &self.token,
                    scope: Scope::Local,
                    force: false,
                },
            )
            .unwrap();
            let mut sink = Recorder::default();
            d.pump(&mut dev, &mut sink);
            assert!(dev.trust().is_installed(), "{:?}", sink.exchanges);
            dev.handle_command(
                SystemClock.now(),
                Command::RecordUsage { tag: TAG, count: 3 },
            )
            .unwrap();
            persist::save(&mut dev, &store).unwrap();
        }
        let now = SystemClock.now();
        let mut config = self.config(&serial, url);
        tune(&mut config);
        let mut dev: Device = Engine::new(config, SoftwareKeys(OsRng), OsRng, now);
        let lost = persist::restore(&mut dev, &store, now, Restart::Resume);
        assert!(lost.is_empty(), "{lost:?}");
        while dev.poll_event().is_some() {}
        persist::save(&mut dev, &store).unwrap();
        Bench {
            dev,
            store,
            serial,
            _dir: dir,
        }
    }
}

/// A trusted device and its records.
pub struct Bench {
    /// The engine.
    pub dev: Device,
    /// Its records.
    pub store: FileStore,
    /// Its serial number.
    pub serial: String,
    _dir: tempfile::TempDir,
}

/// Every record file's bytes, by name.
pub fn snapshot(store: &FileStore) -> BTreeMap<String, Vec<u8>> {
    persist::records(store)
        .unwrap()
        .into_iter()
        .map(|(r, bytes)| (r.name().to_string(), bytes))
        .collect()
}

/// A transport that times each `post`.
pub struct Timed<T> {
    /// The transport.
    pub inner: T,
    /// Duration of the last post.
    pub last: Duration,
}

impl<T: Transport> Transport for Timed<T> {
    fn post(&mut self, url: &str, body: &[u8], response: &mut Vec<u8>) -> Result<Head, HostError> {
        let t = Instant::now();
        let r = self.inner.post(url, body, response);
        self.last = t.elapsed();
        r
    }
}

/// What one usage report exchange came to.
pub struct Run {
    /// The exchange.
    pub exchange: Exchange,
    /// The events forwarded by the driver.
    pub events: Vec<Event>,
    /// How long the transport took.
    pub elapsed: Duration,
    /// `show license history message` afterwards.
    pub history: String,
    /// The engine's own event log afterwards: kind and detail.
    pub engine_log: Vec<(EventKind, String)>,
    /// Records before and after.
    pub before: BTreeMap<String, Vec<u8>>,
    /// Records after.
    pub after: BTreeMap<String, Vec<u8>>,
}

impl Run {
    /// The failure's code and detail (failed or refused), `None` when applied.
    pub fn failure(&self) -> Option<&HostError> {
        match &self.exchange.outcome {
            Outcome::Applied => None,
            Outcome::Refused(e) | Outcome::Failed(e) => Some(e),
        }
    }

    /// The COMM_FAILED event of the exchange.
    pub fn comm_failed(&self) -> Option<&Event> {
        self.events
            .iter()
            .find(|e| matches!(e.kind, EventKind::CommFailed { .. }))
    }
}

impl Bench {
    /// Closes the open report and sends it with `http` (one exchange).
    pub fn report(&mut self, http: HttpConfig) -> Run {
        self.report_with(HttpTransport::new(http)).0
    }

    /// Closes the open report and sends it with `transport` (one exchange); gives the
    /// transport back.
    pub fn report_with<T: Transport>(&mut self, transport: T) -> (Run, T) {
        self.dev
            .handle_command(SystemClock.now(), Command::SyncNow)
            .unwrap();
        while self.dev.poll_event().is_some() {}
        persist::save(&mut self.dev, &self.store).unwrap();
        let before = snapshot(&self.store);
        let mut d = Driver::new(
            Timed {
                inner: transport,
                last: Duration::ZERO,
            },
            SystemClock,
        )
        .with_store(self.store.clone());
        let mut sink = Recorder::default();
        let exchange = d
            .exchange(&mut self.dev, &mut sink)
            .expect("a report was due");
        assert!(sink.storage_errors.is_empty(), "{:?}", sink.storage_errors);
        let mut history = String::new();
        render::history_message(&self.dev, Timestamp(0), &mut history).unwrap();
        let engine_log = self
            .dev
            .event_log()
            .iter()
            .map(|e| (e.kind, e.detail.as_str().to_string()))
            .collect();
        let run = Run {
            exchange,
            events: sink.events,
            elapsed: d.transport.last,
            history,
            engine_log,
            before,
            after: snapshot(&self.store),
        };
        (run, d.transport.inner)
    }

    /// Records usage again (`count`), so that another report can be closed.
    pub fn use_more(&mut self, count: u64) {
        self.dev
            .handle_command(SystemClock.now(), Command::RecordUsage { tag: TAG, count })
            .unwrap();
        while self.dev.poll_event().is_some() {}
    }
}

/// Records a failed exchange may change: the nonce it spent, and the schedule (clock mark,
/// retry time). Trust, policy, usage and reports must come out byte for byte as they were.
pub const MAY_CHANGE: [&str; 2] = ["nonces", "schedule"];

/// Checks what every failed exchange must satisfy: the code, the COMM_FAILED event with the
/// code and a detail, the history entry, the persisted records, and the deadline (`bound`,
/// with 10 % margin). Returns the detail.
pub fn check_failure(name: &str, run: &Run, want: Code, bound: Duration) -> String {
    let e = run
        .failure()
        .unwrap_or_else(|| panic!("{name}: the exchange succeeded: {:?}", run.exchange));
    assert_eq!(e.code, want, "{name}: {e}");
    let ev = run
        .comm_failed()
        .unwrap_or_else(|| panic!("{name}: no COMM_FAILED in {:?}", run.events));
    assert_eq!(ev.kind.cause(), Some(want), "{name}: {ev}");
    let line = ev.to_string();
    assert!(
        line.contains(&format!("E{} {}", want.number(), want.name())),
        "{name}: {line}"
    );
    assert!(
        !ev.detail.is_empty(),
        "{name}: the event carries no detail: {line}"
    );
    assert!(
        run.engine_log
            .iter()
            .any(|(k, detail)| matches!(k, EventKind::CommFailed { .. })
                && k.cause() == Some(want)
                && (!detail.is_empty() || !matches!(run.exchange.outcome, Outcome::Failed(_)))),
        "{name}: the engine's own log lacks COMM_FAILED {want:?} with the failure's detail: {:?}",
        run.engine_log
    );
    match &run.exchange.outcome {
        // No answer: the history says so, with the code.
        Outcome::Failed(_) => assert!(
            run.history
                .contains(&format!("<no reply: E{} {}", want.number(), want.name()))
                || run.exchange.http_status.is_some(),
            "{name}: {}",
            run.history
        ),
        // An answer the engine refused: the history keeps it as received.
        _ => assert!(run.history.contains("RESPONSE:"), "{name}: {}", run.history),
    }
    for (file, bytes) in &run.before {
        if !MAY_CHANGE.contains(&file.as_str()) {
            assert_eq!(
                run.after.get(file),
                Some(bytes),
                "{name}: the failed exchange changed {file}"
            );
        }
    }
    let limit = bound + bound / 10;
    assert!(
        run.elapsed <= limit,
        "{name}: took {:?}, over the deadline {bound:?} + 10 %",
        run.elapsed
    );
    println!(
        "| {name} | E{} {} | {} ms (deadline {} ms) | {} |",
        want.number(),
        want.name(),
        run.elapsed.as_millis(),
        bound.as_millis(),
        e.detail
    );
    e.detail.clone()
}

/// A transport that keeps the last answer's body (to replay it later).
pub struct Recording<T> {
    /// The transport.
    pub inner: T,
    /// The last body received.
    pub last: Vec<u8>,
}

impl<T: Transport> Transport for Recording<T> {
    fn post(&mut self, url: &str, body: &[u8], response: &mut Vec<u8>) -> Result<Head, HostError> {
        let r = self.inner.post(url, body, response);
        self.last = response.clone();
        r
    }
}

/// A whole HTTP answer carrying `body`.
pub fn http_answer(status: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut v = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    v.extend_from_slice(body);
    v
}

/// Checks a successful exchange (the report acknowledged) within `bound` + 10 %.
pub fn check_success(name: &str, run: &Run, bound: Duration) {
    assert_eq!(
        run.exchange.outcome,
        Outcome::Applied,
        "{name}: {:?}",
        run.exchange
    );
    assert!(
        run.events.iter().any(|e| matches!(
            e.kind,
            EventKind::UsageAckReceived {
                acknowledged: 1,
                ..
            }
        )),
        "{name}: {:?}",
        run.events
    );
    let limit = bound + bound / 10;
    assert!(run.elapsed <= limit, "{name}: took {:?}", run.elapsed);
    println!(
        "| {name} | success (report acknowledged) | {} ms (deadline {} ms) | |",
        run.elapsed.as_millis(),
        bound.as_millis()
    );
}
