//! TCP connects: each resolved address in order, from the configured source address (the
//! seed's `ip http client source-interface`), under one deadline.
//!
//! The last failure gives the code; the detail names every address tried, so "refused on
//! IPv6, timed out on IPv4" reads as such.

use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slup_core::Code;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::HostError;
use crate::http::Deadline;

/// The platform's choice of local address for a connection to a peer: `None` lets the
/// system choose (its routing table).
pub type SourceHook = Arc<dyn Fn(SocketAddr) -> Option<IpAddr> + Send + Sync>;

/// Where connections to the service (or the proxy) come from.
#[derive(Clone, Default)]
pub enum Source {
    /// The system picks the local address from its routing table.
    #[default]
    Auto,
    /// Bind this local address before connecting. Peers of the other IP family are skipped:
    /// an IPv4 source cannot reach an IPv6 address.
    Address(IpAddr),
    /// Ask the platform for each peer (for example, the current address of the interface its
    /// configuration names).
    Hook(SourceHook),
}

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Auto => f.write_str("Auto"),
            Source::Address(a) => write!(f, "Address({a})"),
            Source::Hook(_) => f.write_str("Hook(..)"),
        }
    }
}

impl Source {
    /// The local address to bind for `peer`, `None` for the system's choice.
    pub fn for_peer(&self, peer: SocketAddr) -> Option<IpAddr> {
        match self {
            Source::Auto => None,
            Source::Address(a) => Some(*a),
            Source::Hook(h) => h(peer),
        }
    }
}

/// A connected stream and how it came about.
#[derive(Debug)]
pub struct Connected {
    /// The stream.
    pub stream: TcpStream,
    /// The address that answered.
    pub peer: SocketAddr,
    /// Our end of it.
    pub local: Option<SocketAddr>,
    /// The addresses that failed before it, with why.
    pub failed: Vec<String>,
}

/// What one failed attempt was.
fn attempt_code(e: &io::Error, via_proxy: bool) -> Code {
    match e.kind() {
        io::ErrorKind::ConnectionRefused if via_proxy => Code::ProxyRefused,
        io::ErrorKind::ConnectionRefused => Code::ConnectRefused,
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => Code::ConnectionReset,
        // Timed out, or no route to the host or its network: the SYN went nowhere (the
        // detail says when it was the proxy's address).
        _ => Code::ConnectTimeout,
    }
}

/// Words for an attempt's failure, without the OS error number.
fn attempt_text(e: &io::Error, waited: Duration) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::TimedOut => format!("no answer to the connect in {} ms", waited.as_millis()),
        _ => match e.raw_os_error() {
            Some(101) => "network unreachable (no route)".into(),
            Some(113) => "no route to host".into(),
            _ => e.to_string(),
        },
    }
}

/// One connect to `addr` from `source`, bounded by `timeout`.
fn connect_one(addr: SocketAddr, source: Option<IpAddr>, timeout: Duration) -> io::Result<Socket> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if let Some(ip) = source {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))?;
    }
    sock.connect_timeout(&SockAddr::from(addr), timeout)?;
    Ok(sock)
}

/// Connects to the first of `addrs` that accepts, each attempt bounded by `per_attempt` and
/// all of them by `deadline`. `what` names the target in messages (`cslu-local:8182`,
/// `proxy proxy.lab:3128`).
pub fn connect(
    addrs: &[SocketAddr],
    source: &Source,
    per_attempt: Duration,
    deadline: Deadline,
    via_proxy: bool,
    what: &str,
) -> Result<Connected, HostError> {
    let mut failed: Vec<String> = Vec::new();
    let mut last: Option<HostError> = None;
    for &addr in addrs {
        let src = source.for_peer(addr);
        if let Some(ip) = src {
            if ip.is_ipv4() != addr.is_ipv4() {
                let why =
                    format!("{addr}: skipped, the source address {ip} is of the other IP family");
                last = Some(HostError::new(Code::InvalidArgument, why.clone()));
                failed.push(why);
                continue;
            }
        }
        let Ok(left) = deadline.remaining("connecting") else {
            last = Some(HostError::new(
                attempt_code(&io::ErrorKind::TimedOut.into(), via_proxy),
                format!("{what}: the connect deadline passed before {addr} was tried"),
            ));
            break;
        };
        let timeout = left.min(per_attempt);
        let started = Instant::now();
        match connect_one(addr, src, timeout) {
            Ok(sock) => {
                let stream: TcpStream = sock.into();
                // Small requests: send them without waiting for Nagle.
                let _ = stream.set_nodelay(true);
                return Ok(Connected {
                    local: stream.local_addr().ok(),
                    stream,
                    peer: addr,
                    failed,
                });
            }
            Err(e) if e.kind() == io::ErrorKind::AddrNotAvailable && src.is_some() => {
                let why = format!(
                    "{addr}: the source address {} is not an address of this host",
                    src.map_or_else(String::new, |a| a.to_string())
                );
                last = Some(HostError::new(Code::InvalidArgument, why.clone()));
                failed.push(why);
            }
            Err(e) => {
                let why = format!("{addr}: {}", attempt_text(&e, started.elapsed()));
                last = Some(HostError::new(attempt_code(&e, via_proxy), why.clone()));
                failed.push(why);
            }
        }
    }
    let mut err = last.unwrap_or_else(|| {
        HostError::new(
            if via_proxy {
                Code::ProxyDnsFailure
            } else {
                Code::DnsFailure
            },
            format!("{what}: no address to connect to"),
        )
    });
    // The last failure first (it gives the code), then the earlier ones.
    let via = if via_proxy { "proxy " } else { "" };
    let earlier = failed.len().saturating_sub(1);
    err.detail = if earlier == 0 {
        format!("{via}{}", err.detail)
    } else {
        let others: Vec<&str> = failed.iter().take(earlier).map(String::as_str).collect();
        format!(
            "{via}{}; {} address(es) tried before: {}",
            err.detail,
            earlier,
            others.join("; ")
        )
    };
    Err(err)
}
