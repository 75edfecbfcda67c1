//! Test helpers: a tiny blocking HTTP(S) client (the real device-side client is slup-host's)
//! and a device engine driven over it on the wall clock.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::PublicKey;
use slup_core::diag::MessageKind;
use slup_core::engine::config::Config as DeviceConfig;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine, Outcome};
use slup_core::types::{Role, Scope, Timestamp};
use slup_core::Code;

pub const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";
pub const MIN: u64 = 60_000;
pub const HOUR: u64 = 60 * MIN;

/// A temporary directory removed on drop.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!(
            "slup-server-test-{name}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn db(&self) -> std::path::PathBuf {
        self.0.join("slup.db")
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where and how to POST.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    pub path: String,
    /// TLS with this configuration, verifying the name `localhost`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// A response as received.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The error body's code.
    pub fn error_code(&self) -> u16 {
        slup_core::msg::response::ErrorBody::decode(&self.body)
            .unwrap_or_else(|e| panic!("not an error body ({e}): {}", self.text()))
            .code
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client configuration trusting only `ca_der`.
pub fn tls_trusting(ca_der: &[u8]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from(ca_der.to_vec()))
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(cfg)
}

/// Sends raw request bytes and reads one response (until the body's Content-Length, or EOF).
pub fn raw_exchange<S: Read + Write>(s: &mut S, request: &[u8]) -> std::io::Result<Response> {
    s.write_all(request)?;
    s.flush()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(n) = resp
            .parse(&buf)
            .map_err(|e| std::io::Error::other(e.to_string()))?
        {
            let status = resp.code.unwrap_or(0);
            let headers: Vec<(String, String)> = resp
                .headers
                .iter()
                .map(|h| {
                    (
                        h.name.to_owned(),
                        String::from_utf8_lossy(h.value).into_owned(),
                    )
                })
                .collect();
            let len: Option<usize> = headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.parse().ok());
            let mut body = buf.split_off(n);
            while len.is_none_or(|l| body.len() < l) {
                let k = s.read(&mut chunk)?;
                if k == 0 {
                    if len.is_some() {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "body truncated",
                        ));
                    }
                    break;
                }
                body.extend_from_slice(&chunk[..k]);
            }
            return Ok(Response {
                status,
                headers,
                body,
            });
        }
        let k = s.read(&mut chunk)?;
        if k == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "closed before a response",
            ));
        }
        buf.extend_from_slice(&chunk[..k]);
    }
}

impl Client {
    pub fn new(addr: SocketAddr, path: &str) -> Client {
        Client {
            addr,
            path: path.to_owned(),
            tls: None,
        }
    }

    /// One request on a fresh connection.
    pub fn request(
        &self,
        method: &str,
        content_type: &str,
        body: &[u8],
    ) -> std::io::Result<Response> {
        let mut req = format!(
            "{method} {} HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.path,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.send_raw(&req)
    }

    /// Raw bytes on a fresh connection (plain or TLS).
    pub fn send_raw(&self, req: &[u8]) -> std::io::Result<Response> {
        let tcp = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
        tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
        match &self.tls {
            None => {
                let mut tcp = tcp;
                raw_exchange(&mut tcp, req)
            }
            Some(cfg) => {
                let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
                let conn = rustls::ClientConnection::new(Arc::clone(cfg), name)
                    .map_err(std::io::Error::other)?;
                let mut s = rustls::StreamOwned::new(conn, tcp);
                raw_exchange(&mut s, req)
            }
        }
    }

    pub fn post_json(&self, body: &[u8]) -> std::io::Result<Response> {
        self.request("POST", "application/json", body)
    }
}

pub type Engine1 = Engine<SoftwareKeys<ChaCha20Rng>, ChaCha20Rng>;

/// A device engine on the wall clock (plus an offset the test may move forward).
pub struct Device {
    pub e: Engine1,
    pub offset: u64,
    pub buf: Vec<u8>,
    pub events: Vec<String>,
}

pub fn wall() -> u64 {
    slup_server::backend::now().0
}

impl Device {
    pub fn new(serial: &str, standby: Option<&str>, anchor: &[u8], seed: u64) -> Device {
        let mut cfg: DeviceConfig = DeviceConfig::new(
            "C9800-CL-K9",
            serial,
            "17.09.02",
            "regid.2018-05.com.cisco.WLC_9500C,1.0",
            PublicKey::from_sec1(anchor).unwrap(),
        )
        .unwrap();
        if let Some(s) = standby {
            cfg.add_member(Role::Standby, "C9800-CL-K9", s).unwrap();
        }
        // Retries within the service's one-hour clock tolerance: the test moves the device
        // clock ahead of the wall clock to reach them.
        cfg.intervals.comm_retry_s = 60;
        cfg.intervals.trust_first_retry_s = 60;
        let e = Engine::new(
            cfg,
            SoftwareKeys(ChaCha20Rng::seed_from_u64(seed)),
            ChaCha20Rng::seed_from_u64(seed ^ 0x5eed),
            Timestamp(wall()),
        );
        let mut d = Device {
            e,
            offset: 0,
            buf: vec![0u8; 64 * 1024],
            events: Vec::new(),
        };
        d.drain();
        d
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(wall() + self.offset)
    }

    pub fn drain(&mut self) {
        while let Some(e) = self.e.poll_event() {
            self.events.push(e.to_string());
        }
    }

    pub fn has_event(&self, needle: &str) -> bool {
        self.events.iter().any(|e| e.contains(needle))
    }

    pub fn cmd(&mut self, c: Command<'_>) -> Result<Outcome, Code> {
        let r = self.e.handle_command(self.now(), c).map_err(|e| e.code());
        self.drain();
        r
    }

    pub fn trust(&mut self, token: &str, scope: Scope) {
        self.cmd(Command::EstablishTrust {
            token,
            scope,
            force: false,
        })
        .unwrap();
    }

    /// One exchange over `client` if the device has something to send. Returns what was sent
    /// and the HTTP status (0 when no answer came).
    pub fn exchange(&mut self, client: &Client) -> Option<(MessageKind, u16)> {
        let now = self.now();
        let t = self.e.poll_transmit(now, &mut self.buf)?;
        let status = match client.post_json(&self.buf[..t.len]) {
            Ok(r) if r.status == 200 => {
                let _ = self.e.handle_response(self.now(), &r.body);
                200
            }
            Ok(r) => {
                let code = if r.status >= 500 {
                    Code::HttpServerError
                } else {
                    Code::HttpClientError
                };
                self.e.handle_transport_error(self.now(), code);
                r.status
            }
            Err(e) => {
                let code = match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => Code::TruncatedBody,
                    std::io::ErrorKind::ConnectionRefused => Code::ConnectRefused,
                    std::io::ErrorKind::InvalidData => Code::TlsUnknownCa,
                    _ => Code::NoReply,
                };
                self.e.handle_transport_error(self.now(), code);
                0
            }
        };
        self.drain();
        Some((t.kind, status))
    }

    /// Exchanges until the device has nothing more to send now; returns what went out.
    pub fn run(&mut self, client: &Client) -> Vec<(MessageKind, u16)> {
        let mut sent = Vec::new();
        while let Some(x) = self.exchange(client) {
            sent.push(x);
            assert!(
                sent.len() < 50,
                "runaway exchanges: {sent:?} {:?}",
                self.events
            );
        }
        sent
    }

    /// Moves the device clock `ms` ahead and fires its deadlines.
    pub fn advance(&mut self, ms: u64) {
        self.offset += ms;
        self.e.handle_timeout(self.now());
        self.drain();
    }

    /// Exchanges and fires deadlines until `ms` of device time have passed.
    pub fn run_for(&mut self, client: &Client, ms: u64) -> Vec<(MessageKind, u16)> {
        let end = self.now().0 + ms;
        let mut sent = Vec::new();
        for _ in 0..1000 {
            sent.extend(self.run(client));
            let now = self.now().0;
            let next = self.e.poll_timeout().map_or(end, |t| t.0);
            if next > end {
                break;
            }
            self.offset += next.saturating_sub(now);
            self.e.handle_timeout(self.now());
            self.drain();
            assert!(sent.len() < 200, "runaway exchanges: {sent:?}");
        }
        sent
    }

    /// Records usage and asks for a report now.
    pub fn report(&mut self, count: u64) {
        self.cmd(Command::RecordUsage { tag: TAG, count }).unwrap();
        self.cmd(Command::SyncNow).unwrap();
    }

    /// Report ids the device still holds (not yet acknowledged).
    pub fn held(&self) -> usize {
        self.e.reports().len()
    }
}
