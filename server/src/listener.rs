//! The HTTP(S) front end: one acceptor thread per listener, one thread per connection (up to a
//! cap), routing, the checks every request passes before the service sees it, fault
//! injection, log lines, and graceful shutdown.
//!
//! **Concurrency and throughput.** Connections are read, parsed, TLS-decrypted and answered in
//! parallel, but the [`crate::backend::Backend`] (the sans-IO service and its SQLite
//! connection) sits behind one lock ([`Committer`]): requests are *handled* one at a time.
//! Handling includes verifying every signature (one ECDSA P-256 verification per usage report
//! plus one for the envelope) and signing the answer, so ingest throughput is bounded by one
//! core's P-256 rate, whatever the number of connections (a profile of `slup-server bench`
//! spends about 80 % of its cycles in P-256 field arithmetic). The fsync of each commit is
//! shared by the requests queued meanwhile (group commit). The way past the bound is to verify
//! before taking the lock: split `Service::handle` into a pure check phase, run in parallel,
//! and a store phase.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use slup_core::msg::response::ErrorBody;
use slup_core::Code;

use crate::backend::Answer;
use crate::commit::Committer;
use crate::faults::{self, Injector};
use crate::http::{self, ReadError, Request};

/// The endpoints, as `(path or prefix, name)`: smart transport, CSLU, on-prem.
pub const ENDPOINTS: &[&str] = &[
    "/licservice/license",
    "/cslu/v1/pi",
    "/cslu/v1/pi/<VA>-<n>",
    "/SmartTransport",
];

/// `true` if `path` is one of the protocol endpoints.
pub fn is_endpoint(path: &str) -> bool {
    match path {
        "/licservice/license" | "/cslu/v1/pi" | "/SmartTransport" => true,
        _ => path
            .strip_prefix("/cslu/v1/pi/")
            .and_then(|rest| rest.rsplit_once('-'))
            .is_some_and(|(va, n)| {
                !va.is_empty()
                    && !va.contains('/')
                    && !n.is_empty()
                    && n.bytes().all(|b| b.is_ascii_digit())
            }),
    }
}

/// What every connection thread shares.
pub struct Shared {
    /// The service, behind its lock.
    pub backend: Committer,
    /// Set when the server is stopping.
    pub shutdown: AtomicBool,
    /// Open connections.
    pub active: AtomicUsize,
    /// Most connections served at once; more are refused with `503`.
    pub max_connections: usize,
    /// Largest accepted request body.
    pub max_body: usize,
    /// A request must be complete this long after its first byte.
    pub request_timeout: Duration,
    /// An idle keep-alive connection is closed after this long.
    pub idle_timeout: Duration,
    /// Test switches.
    pub faults: Injector,
    /// Write a line on stderr for every refused request.
    pub log: bool,
    /// Connection threads, joined at shutdown.
    pub threads: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("active", &self.active)
            .field("max_connections", &self.max_connections)
            .field("max_body", &self.max_body)
            .finish_non_exhaustive()
    }
}

/// How often a blocked read wakes up to look at the shutdown flag.
const POLL: Duration = Duration::from_millis(100);

impl Shared {
    fn log(&self, peer: SocketAddr, what: Option<(&str, &str)>, status: u16, detail: &str) {
        if self.log {
            let (method, path) = what.unwrap_or(("-", "-"));
            // Status 0: no answer was sent (connection failure, dropped answer).
            if status == 0 {
                eprintln!("slup-server: {peer} {method} {path} -> no answer: {detail}");
            } else {
                eprintln!("slup-server: {peer} {method} {path} -> {status} {detail}");
            }
        }
    }

    /// Answers one parsed request: `(status, body, extra headers, fault plan)`.
    fn respond(&self, req: &Request, peer: SocketAddr) -> (Answer, &'static str, faults::Plan) {
        let what = Some((req.method.as_str(), req.path.as_str()));
        let refuse = |status: u16, code: Code, message: &str| {
            self.log(peer, what, status, &format!("{code}: {message}"));
            Answer {
                status,
                body: http::error_json(code, message),
            }
        };
        if !is_endpoint(&req.path) {
            let m = format!(
                "no such path {:?}; the endpoints are {}",
                req.path,
                ENDPOINTS.join(", ")
            );
            return (
                refuse(404, Code::InvalidArgument, &m),
                "",
                faults::Plan::default(),
            );
        }
        if req.method != "POST" {
            let m = format!("method {} not allowed; use POST", req.method);
            return (
                refuse(405, Code::InvalidArgument, &m),
                "Allow: POST\r\n",
                faults::Plan::default(),
            );
        }
        let json = req.content_type.as_deref().is_some_and(|t| {
            t.split(';')
                .next()
                .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/json"))
        });
        if !json {
            let m = format!(
                "Content-Type must be application/json, not {}",
                req.content_type.as_deref().unwrap_or("(none)")
            );
            return (
                refuse(415, Code::InvalidArgument, &m),
                "",
                faults::Plan::default(),
            );
        }
        let plan = self.faults.next();
        if plan.reject {
            let a = refuse(
                503,
                Code::ServiceTryAgain,
                "request rejected by the test switch reject",
            );
            return (a, "Retry-After: 1\r\n", plan);
        }
        let answer = self.backend.handle(&req.body);
        if answer.status != 200 {
            match ErrorBody::decode(&answer.body) {
                Ok(e) => {
                    let code = Code::from_number(e.code)
                        .map_or_else(|| format!("E{}", e.code), |c| c.to_string());
                    self.log(peer, what, answer.status, &format!("{code}: {}", e.message));
                }
                Err(_) => self.log(peer, what, answer.status, "(no error body)"),
            }
        }
        (answer, "", plan)
    }
}

/// Serves one connection until it closes, idles out, or the server stops.
fn serve<S: Read + Write>(shared: &Shared, mut stream: S, peer: SocketAddr) {
    let mut buf = Vec::new();
    loop {
        let idle_since = Instant::now();
        let mut started: Option<Instant> = None;
        let give_up = |in_request: bool| {
            if !in_request {
                return shared.shutdown.load(Ordering::SeqCst)
                    || idle_since.elapsed() >= shared.idle_timeout;
            }
            let t0 = *started.get_or_insert_with(Instant::now);
            t0.elapsed() >= shared.request_timeout
        };
        let req = match http::read_request(&mut stream, &mut buf, shared.max_body, give_up) {
            Ok(r) => r,
            Err(ReadError::Closed | ReadError::Idle) => return,
            Err(ReadError::Bad {
                status,
                code,
                message,
                what,
            }) => {
                let what_ref = what.as_ref().map(|(m, p)| (m.as_str(), p.as_str()));
                shared.log(peer, what_ref, status, &format!("{code}: {message}"));
                let body = http::error_json(code, &message);
                // The connection is closed next either way; a failed write changes nothing.
                let _ = http::write_response(&mut stream, status, &body, true, "");
                return;
            }
            Err(ReadError::Io(e)) => {
                shared.log(peer, None, 0, &format!("connection failed: {e}"));
                return;
            }
        };
        let (mut answer, extra, plan) = shared.respond(&req, peer);
        if let Some(d) = shared.faults.faults().delay {
            std::thread::sleep(d);
        }
        if plan.drop && answer.status == 200 {
            shared.log(
                peer,
                Some((&req.method, &req.path)),
                0,
                "answer dropped (test switch drop)",
            );
            return;
        }
        if plan.corrupt && answer.status == 200 {
            faults::corrupt_signature(&mut answer.body);
        }
        let close = req.close || shared.shutdown.load(Ordering::SeqCst);
        if plan.truncate && answer.status == 200 {
            let half = answer.body.len() / 2;
            let head = http::response_head(answer.status, answer.body.len(), true, extra);
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(answer.body.get(..half).unwrap_or_default());
            let _ = stream.flush();
            return;
        }
        if http::write_response(&mut stream, answer.status, &answer.body, close, extra).is_err()
            || close
        {
            return;
        }
    }
}

/// A TLS connection over `tcp`.
fn serve_tls(shared: &Shared, tcp: TcpStream, peer: SocketAddr, tls: Arc<rustls::ServerConfig>) {
    let conn = match rustls::ServerConnection::new(tls) {
        Ok(c) => c,
        Err(e) => {
            shared.log(peer, None, 0, &format!("TLS: {e}"));
            return;
        }
    };
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    serve(shared, &mut stream, peer);
    stream.conn.send_close_notify();
    let _ = stream.conn.complete_io(&mut stream.sock);
}

/// Runs the accept loop of one listener until shutdown.
pub fn accept_loop(
    shared: Arc<Shared>,
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    for conn in listener.incoming() {
        if shared.shutdown.load(Ordering::SeqCst) {
            break;
        }
        let tcp = match conn {
            Ok(t) => t,
            Err(e) => {
                if shared.log {
                    eprintln!("slup-server: accept failed: {e}");
                }
                // Out of descriptors or similar: do not spin.
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let peer = tcp
            .peer_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        // Small answers go out at once; the read timeout lets threads see the shutdown flag.
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(POLL));
        let _ = tcp.set_write_timeout(Some(shared.request_timeout));
        if shared.active.fetch_add(1, Ordering::SeqCst) >= shared.max_connections {
            shared.active.fetch_sub(1, Ordering::SeqCst);
            let m = format!(
                "more than {} connections at once; retry later",
                shared.max_connections
            );
            shared.log(peer, None, 503, &format!("{}: {m}", Code::ServiceTryAgain));
            if tls.is_none() {
                let body = http::error_json(Code::ServiceTryAgain, &m);
                let mut tcp = tcp;
                let _ = http::write_response(&mut tcp, 503, &body, true, "Retry-After: 1\r\n");
            }
            continue;
        }
        let s = Arc::clone(&shared);
        let tls = tls.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("slup-conn-{peer}"))
            .spawn(move || {
                match tls {
                    Some(cfg) => serve_tls(&s, tcp, peer, cfg),
                    None => serve(&s, tcp, peer),
                }
                s.active.fetch_sub(1, Ordering::SeqCst);
            });
        match spawned {
            Ok(handle) => {
                let mut threads = shared.threads.lock().unwrap_or_else(|p| p.into_inner());
                threads.retain(|t| !t.is_finished());
                threads.push(handle);
            }
            Err(e) => {
                shared.active.fetch_sub(1, Ordering::SeqCst);
                shared.log(peer, None, 0, &format!("no thread for the connection: {e}"));
            }
        }
    }
}
