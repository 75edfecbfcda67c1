//! # slup-server
//!
//! The reference license service of slup: the sans-IO [`slup_core::server::Service`] behind a
//! real HTTP and HTTPS server, with its state in one SQLite file.
//!
//! - [`store`]: [`SqliteStore`], the [`slup_core::server::ServiceStore`] on SQLite (WAL, schema
//!   versioned and migrated, every write in a transaction);
//! - [`backend`]: [`Backend`], the service with its key (kept in the database), randomness and
//!   clock, and the operator's commands (tokens, policies, instances, RMA, offline ACK files);
//! - [`http`]: HTTP/1.1 framing with `httparse`;
//! - [`commit`]: the lock around the backend, with group commit;
//! - [`listener`]: acceptors, connection threads, routing, checks, graceful shutdown;
//! - [`tls`]: rustls (ring provider) with a generated CA or PEM files;
//! - [`faults`]: test switches (drop, delay, truncate, corrupt, reject, foreign CA);
//! - [`pull`]: CSLU-initiated mode, reading a device's REST API (with [`client`], a small
//!   blocking HTTP(S) client);
//! - [`bench`](mod@bench): the ingest load generator behind `slup-server bench`.

//!
//! Endpoints (all `POST`, `Content-Type: application/json`): `/licservice/license` (smart
//! transport), `/cslu/v1/pi` (CSLU), `/cslu/v1/pi/<VA>-<n>` and `/SmartTransport` (on-prem).
//! The answer is a signed service envelope (`200`) or an unsigned error body
//! `{"error":{"code":…,"message":…}}` with a non-2xx status and a stable code.
//!
//! ```no_run
//! use slup_server::{Server, ServerConfig};
//!
//! let dir = std::env::temp_dir().join("slup-doc");
//! std::fs::create_dir_all(&dir)?;
//! let running = Server::start(ServerConfig::ephemeral(dir.join("slup.db")).with_https())?;
//! let token = running.mint_token("Lab", 2, 30)?;
//! println!("{} {:?} token {token}", running.http_url(), running.https_url());
//! running.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    warn(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod backend;
pub mod bench;
pub mod client;
pub mod commit;
pub mod error;
pub mod faults;
pub mod http;
pub mod listener;
pub mod pull;

pub mod store;
pub mod tls;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub use backend::{Backend, DEFAULT_SMART_ACCOUNT};
pub use error::Error;
pub use faults::Faults;
pub use store::{Durability, SqliteStore};
pub use tls::TlsSource;

use listener::Shared;

/// Default largest request body: the protocol's 1 MiB message limit.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// Default most connections served at once.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How to run the server. Plain fields; start from [`ServerConfig::ephemeral`].
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The SQLite database (created if absent).
    pub db_path: PathBuf,
    /// How hard commits wait for the disk (default [`Durability::Full`]).
    pub durability: Durability,
    /// Plain HTTP listener address (`None`: no HTTP).
    pub http: Option<SocketAddr>,
    /// HTTPS listener address and certificate source (`None`: no HTTPS).
    pub https: Option<(SocketAddr, TlsSource)>,
    /// `Some(s)`: answer usage with `OK_POLL` and `retry_time_seconds = s`, the ACK coming
    /// with the device's `POLL_REQ`; `None`: `OK` with the ACK at once.
    pub poll_delay: Option<u32>,
    /// Largest request body; a larger one is refused with `413` (default 1 MiB).
    pub max_body: usize,
    /// Most connections at once; more are refused with `503` (default 512).
    pub max_connections: usize,
    /// A request must be complete this long after its first byte, or `408` (default 10 s).
    pub request_timeout: Duration,
    /// Idle keep-alive connections are closed after this long (default 30 s).
    pub idle_timeout: Duration,
    /// Test switches (default: none).
    pub faults: Faults,
    /// A line on stderr for every refused request (default `true`).
    pub log: bool,
}

impl ServerConfig {
    /// HTTP on 127.0.0.1:0 (ephemeral port), SQLite database at `db_path` (created if absent).
    pub fn ephemeral(db_path: impl Into<PathBuf>) -> Self {
        ServerConfig {
            db_path: db_path.into(),
            durability: Durability::Full,
            http: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            https: None,
            poll_delay: None,
            max_body: DEFAULT_MAX_BODY,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            request_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(30),
            faults: Faults::default(),
            log: true,
        }
    }

    /// Also serve HTTPS on 127.0.0.1:0 with a CA generated at start (see
    /// [`Running::ca_cert_der`]).
    pub fn with_https(mut self) -> Self {
        self.https = Some((SocketAddr::from(([127, 0, 0, 1], 0)), TlsSource::Generate));
        self
    }
}

/// Starts servers.
#[derive(Debug)]
pub struct Server;

impl Server {
    /// Opens the database and starts the listeners; returns once they accept connections.
    pub fn start(cfg: ServerConfig) -> Result<Running, Error> {
        let mut backend = Backend::open(&cfg.db_path, cfg.durability)?;
        backend.set_poll_delay(cfg.poll_delay);
        let trust_anchor = backend.trust_anchor_sec1();
        let shared = Arc::new(Shared {
            backend: commit::Committer::new(backend),
            shutdown: AtomicBool::new(false),
            active: AtomicUsize::new(0),
            max_connections: cfg.max_connections,
            max_body: cfg.max_body,
            request_timeout: cfg.request_timeout,
            idle_timeout: cfg.idle_timeout,
            faults: faults::Injector::new(cfg.faults.clone()),
            log: cfg.log,
            threads: Mutex::new(Vec::new()),
        });
        let bind = |addr: SocketAddr| {
            TcpListener::bind(addr)
                .map_err(|e| Error::other(format!("cannot listen on {addr}: {e}")))
        };
        let http = cfg.http.map(bind).transpose()?;
        let https = match &cfg.https {
            Some((addr, source)) => Some((bind(*addr)?, tls::load(source)?)),
            None => None,
        };
        let mut running = Running {
            shared,
            http_addr: None,
            https_addr: None,
            ca_der: None,
            ca_pem: None,
            trust_anchor,
            acceptors: Vec::new(),
        };
        if let Some(l) = http {
            running.http_addr = Some(local_addr(&l)?);
            running.spawn_acceptor(l, None)?;
        }
        if let Some((l, t)) = https {
            running.https_addr = Some(local_addr(&l)?);
            running.ca_der = t.ca_der;
            running.ca_pem = t.ca_pem;
            running.spawn_acceptor(l, Some(t.config))?;
        }
        Ok(running)
    }
}

fn local_addr(l: &TcpListener) -> Result<SocketAddr, Error> {
    l.local_addr()
        .map_err(|e| Error::other(format!("listener address: {e}")))
}

/// A started server. Dropping it shuts it down like [`Running::shutdown`].
#[derive(Debug)]
pub struct Running {
    shared: Arc<Shared>,
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    ca_der: Option<Vec<u8>>,
    ca_pem: Option<String>,
    trust_anchor: Vec<u8>,
    acceptors: Vec<(SocketAddr, JoinHandle<()>)>,
}

impl Running {
    fn spawn_acceptor(
        &mut self,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<(), Error> {
        let addr = local_addr(&listener)?;
        let shared = Arc::clone(&self.shared);
        let handle = std::thread::Builder::new()
            .name(format!("slup-accept-{addr}"))
            .spawn(move || listener::accept_loop(shared, listener, tls))
            .map_err(|e| Error::other(format!("no acceptor thread: {e}")))?;
        self.acceptors.push((addr, handle));
        Ok(())
    }

    /// `http://127.0.0.1:PORT` (no path); empty when HTTP is off.
    pub fn http_url(&self) -> String {
        self.http_addr
            .map(|a| format!("http://{a}"))
            .unwrap_or_default()
    }

    /// `https://127.0.0.1:PORT` (no path), when HTTPS is on.
    pub fn https_url(&self) -> Option<String> {
        self.https_addr.map(|a| format!("https://{a}"))
    }

    /// The HTTP listener's address.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// The HTTPS listener's address.
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.https_addr
    }

    /// The CA that signed the HTTPS certificate (`localhost`, `127.0.0.1`), DER; `None` without
    /// HTTPS or with PEM files.
    pub fn ca_cert_der(&self) -> Option<Vec<u8>> {
        self.ca_der.clone()
    }

    /// The same CA, PEM.
    pub fn ca_cert_pem(&self) -> Option<String> {
        self.ca_pem.clone()
    }

    /// The service public key, 65-byte SEC1 uncompressed: the devices' trust anchor.
    pub fn trust_anchor_sec1(&self) -> Vec<u8> {
        self.trust_anchor.clone()
    }

    /// Requests handled and batches committed (group commit) so far.
    pub fn commit_stats(&self) -> commit::CommitStats {
        self.shared.backend.stats()
    }

    /// Requests (and operator calls) waiting for the service lock right now.
    pub fn queued_requests(&self) -> usize {
        self.shared.backend.queued()
    }

    /// Connections open right now.
    pub fn active_connections(&self) -> usize {
        self.shared.active.load(Ordering::SeqCst)
    }

    /// Runs `f` on the service, holding its lock (administration and inspection while
    /// serving).
    pub fn with_backend<T>(&self, f: impl FnOnce(&mut Backend) -> T) -> T {
        self.shared.backend.with_backend(f)
    }

    /// Smart account "Demo SA", virtual account `va` (created if absent); returns the token
    /// text.
    pub fn mint_token(
        &self,
        va: &str,
        max_uses: u32,
        expires_in_days: u32,
    ) -> Result<String, Error> {
        self.with_backend(|b| {
            b.mint_token(DEFAULT_SMART_ACCOUNT, va, max_uses, expires_in_days, false)
        })
    }

    /// Graceful shutdown: stop accepting, finish in-flight requests, join every thread, close
    /// the database.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        if self.shared.shutdown.swap(true, Ordering::SeqCst) {
            return;
        }
        for (addr, handle) in self.acceptors.drain(..) {
            // Wake the blocking accept; it sees the flag and returns.
            let _ = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
            let _ = handle.join();
        }
        let threads = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        );
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop();
    }
}
