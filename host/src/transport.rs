//! The HTTP transport: one `POST` per exchange over TCP, optionally through an HTTP proxy
//! (`CONNECT` for HTTPS, absolute-form for HTTP, Basic credentials), optionally over TLS.
//!
//! Every step has its own code, so an operator can tell where the path breaks: DNS
//! (`DnsFailure`, `ProxyDnsFailure`), TCP (`ConnectRefused`, `ProxyRefused`, `ConnectTimeout`),
//! the proxy (`ProxyAuthRequired`), TLS (`TlsUnknownCa`, `TlsHostMismatch`, `TlsCertExpired`,
//! `TlsHandshake`), then HTTP framing (see [`crate::http`]).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use slup_core::Code;

use crate::error::{classify_io, HostError};
use crate::http::{self, Deadline, Head, Stream};
use crate::tls::{self, Roots};
use crate::url::{split_host_port, Url};

/// Default bound on a TCP connect.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on a whole exchange after the connect (request out, response in).
pub const DEFAULT_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a response body: the decoder's own input limit (1 MiB).
pub const DEFAULT_MAX_RESPONSE: usize = slup_core::json::DEFAULT_LIMITS.max_input_len;

/// Something that can carry one request to the service and bring its answer back.
pub trait Transport {
    /// POSTs `body` (a JSON message) to `url` and puts the response body in `response`.
    /// Any HTTP status is an `Ok`; only a failure to get a complete answer is an `Err`.
    fn post(&mut self, url: &str, body: &[u8], response: &mut Vec<u8>) -> Result<Head, HostError>;
}

/// An HTTP proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Proxy host.
    pub host: String,
    /// Proxy port.
    pub port: u16,
    /// Basic credentials, user and password.
    pub credentials: Option<(String, String)>,
}

impl Proxy {
    /// Parses `[http://][user:password@]host:port`.
    pub fn parse(text: &str) -> Result<Proxy, HostError> {
        let bad =
            |why: &str| HostError::new(Code::InvalidArgument, format!("proxy {text:?}: {why}"));
        let rest = text.strip_prefix("http://").unwrap_or(text);
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((cred, auth)) => {
                let (user, pass) = cred
                    .split_once(':')
                    .ok_or_else(|| bad("credentials must be user:password"))?;
                (Some((user.to_string(), pass.to_string())), auth)
            }
            None => (None, rest),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        let port = port.ok_or_else(|| bad("a proxy needs a port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Proxy {
            host: host.to_string(),
            port,
            credentials,
        })
    }

    fn authorization(&self) -> String {
        match &self.credentials {
            Some((u, p)) => format!(
                "Proxy-Authorization: Basic {}\r\n",
                Base64::encode_string(format!("{u}:{p}").as_bytes())
            ),
            None => String::new(),
        }
    }
}

/// Settings of [`HttpTransport`].
#[derive(Clone, Debug)]
pub struct HttpConfig {
    /// Bound on each TCP connect.
    pub connect_timeout: Duration,
    /// Bound on the exchange after the connect.
    pub exchange_timeout: Duration,
    /// Largest response body accepted.
    pub max_response: usize,
    /// Proxy, if any.
    pub proxy: Option<Proxy>,
    /// Who may vouch for an HTTPS service.
    pub roots: Roots,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            exchange_timeout: DEFAULT_EXCHANGE_TIMEOUT,
            max_response: DEFAULT_MAX_RESPONSE,
            proxy: None,
            roots: Roots::WebPki,
        }
    }
}

/// HTTP/1.1 over TCP, with TLS for `https` URLs.
#[derive(Debug)]
pub struct HttpTransport {
    config: HttpConfig,
    tls: Option<Arc<ClientConfig>>,
}

enum Conn {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            // A peer that closes without close_notify ends the stream; the HTTP framing
            // (length or chunks) then tells a complete answer from a cut one.
            Conn::Tls(s) => match s.read(buf) {
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                r => r,
            },
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.write(buf),
            Conn::Tls(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.flush(),
            Conn::Tls(s) => s.flush(),
        }
    }
}

impl Stream for Conn {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        match self {
            Conn::Plain(s) => s.set_timeout(d),
            Conn::Tls(s) => s.sock.set_timeout(d),
        }
    }
}

impl HttpTransport {
    /// A transport with `config`.
    pub fn new(config: HttpConfig) -> Self {
        HttpTransport { config, tls: None }
    }

    /// The settings.
    pub fn config(&self) -> &HttpConfig {
        &self.config
    }

    fn tls_config(&mut self) -> Result<Arc<ClientConfig>, HostError> {
        if let Some(c) = &self.tls {
            return Ok(c.clone());
        }
        let c = self.config.roots.client_config()?;
        self.tls = Some(c.clone());
        Ok(c)
    }

    fn connect(
        &self,
        host: &str,
        port: u16,
        via_proxy: bool,
        deadline: Deadline,
    ) -> Result<TcpStream, HostError> {
        let target = crate::url::host_port(host, port);
        let addrs: Vec<SocketAddr> = match (host, port).to_socket_addrs() {
            Ok(a) => a.collect(),
            Err(e) => {
                let code = if via_proxy {
                    Code::ProxyDnsFailure
                } else {
                    Code::DnsFailure
                };
                return Err(HostError::new(code, format!("{host}: {e}")));
            }
        };
        if addrs.is_empty() {
            let code = if via_proxy {
                Code::ProxyDnsFailure
            } else {
                Code::DnsFailure
            };
            return Err(HostError::new(code, format!("{host}: no address")));
        }
        let mut last = HostError::new(Code::ConnectTimeout, target.clone());
        for addr in addrs {
            let left = deadline
                .remaining("connecting")
                .map_err(|_| HostError::new(Code::ConnectTimeout, target.clone()))?;
            match TcpStream::connect_timeout(&addr, left.min(self.config.connect_timeout)) {
                Ok(s) => {
                    // Small requests: send them without waiting for Nagle.
                    let _ = s.set_nodelay(true);
                    return Ok(s);
                }
                Err(e) => {
                    let code = match e.kind() {
                        io::ErrorKind::ConnectionRefused if via_proxy => Code::ProxyRefused,
                        io::ErrorKind::ConnectionRefused => Code::ConnectRefused,
                        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => {
                            Code::ConnectionReset
                        }
                        // Timed out, or no route to the host or network.
                        _ => Code::ConnectTimeout,
                    };
                    let via = if via_proxy { "proxy " } else { "" };
                    last = HostError::new(code, format!("{via}{addr}: {e}"));
                }
            }
        }
        Err(last)
    }

    /// Opens a tunnel to `url` through the proxy with `CONNECT`.
    fn tunnel(
        &self,
        tcp: &mut TcpStream,
        url: &Url,
        proxy: &Proxy,
        deadline: Deadline,
    ) -> Result<(), HostError> {
        let authority = url.authority();
        let head = format!(
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{}\r\n",
            proxy.authorization()
        );
        http::write_all(tcp, deadline, head.as_bytes(), b"")?;
        let mut body = Vec::new();
        let answer = http::read_response(tcp, deadline, 0, &mut body, true).map_err(|e| {
            HostError::new(
                Code::ProxyRefused,
                format!("CONNECT {authority}: {}", e.detail),
            )
        })?;
        match answer.status {
            200..=299 => Ok(()),
            407 => Err(HostError::new(
                Code::ProxyAuthRequired,
                format!("CONNECT {authority}: HTTP 407"),
            )),
            s => Err(HostError::new(
                Code::ProxyRefused,
                format!("CONNECT {authority}: HTTP {s}"),
            )),
        }
    }

    fn handshake(
        &mut self,
        mut tcp: TcpStream,
        url: &Url,
        deadline: Deadline,
    ) -> Result<Conn, HostError> {
        let config = self.tls_config()?;
        let name = tls::server_name(&url.host)?;
        let mut conn = ClientConnection::new(config, name).map_err(|e| tls::classify(&e))?;
        while conn.is_handshaking() {
            let left = deadline.remaining("during the TLS handshake")?;
            tcp.set_timeout(left)
                .map_err(|e| classify_io(&e, "TLS handshake"))?;
            if let Err(e) = conn.complete_io(&mut tcp) {
                let mut err = classify_io(&e, "TLS handshake");
                if matches!(err.code, Code::TruncatedBody | Code::ConnectionReset) {
                    // The peer hung up mid-handshake: not a TLS server, or a middlebox.
                    err.code = Code::TlsHandshake;
                }
                return Err(err);
            }
        }
        Ok(Conn::Tls(Box::new(StreamOwned::new(conn, tcp))))
    }
}

impl Transport for HttpTransport {
    fn post(&mut self, url: &str, body: &[u8], response: &mut Vec<u8>) -> Result<Head, HostError> {
        let url = Url::parse(url)?;
        let deadline = Deadline::after(self.config.connect_timeout + self.config.exchange_timeout);
        let proxy = self.config.proxy.clone();
        let mut tcp = match &proxy {
            None => self.connect(&url.host, url.port, false, deadline)?,
            Some(p) => self.connect(&p.host, p.port, true, deadline)?,
        };
        let deadline = Deadline::after(self.config.exchange_timeout);
        if let (Some(p), true) = (&proxy, url.tls) {
            self.tunnel(&mut tcp, &url, p, deadline)?;
        }
        let mut conn = if url.tls {
            self.handshake(tcp, &url, deadline)?
        } else {
            Conn::Plain(tcp)
        };
        let default_port = if url.tls { 443 } else { 80 };
        let host = if url.port != default_port {
            url.authority()
        } else if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        // Plain HTTP through a proxy names the whole URL (absolute form).
        let (target, proxy_auth) = match (&proxy, url.tls) {
            (Some(p), false) => (
                format!("http://{}{}", url.authority(), url.path),
                p.authorization(),
            ),
            _ => (url.path.clone(), String::new()),
        };
        let head = format!(
            "POST {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: slup/{}\r\n\
             Content-Type: application/json\r\nAccept: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n{proxy_auth}\r\n",
            slup_core::engine::AGENT_VERSION,
            body.len()
        );
        let sent = http::write_all(&mut conn, deadline, head.as_bytes(), body);
        // A server may answer early and close (say, 413 for an oversize body): read first,
        // and report the write failure only when no answer came.
        let answer = http::read_response(
            &mut conn,
            deadline,
            self.config.max_response,
            response,
            false,
        );
        let answer = match (sent, answer) {
            (_, Ok(a)) => a,
            (Err(w), Err(_)) => return Err(w),
            (Ok(()), Err(r)) => return Err(r),
        };
        if proxy.is_some() && answer.status == 407 {
            return Err(HostError::new(
                Code::ProxyAuthRequired,
                "HTTP 407 from the proxy",
            ));
        }
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_parse_with_and_without_credentials() {
        let p = Proxy::parse("http://alice:s3cr@t@proxy.lab:3128").unwrap();
        assert_eq!(p.host, "proxy.lab");
        assert_eq!(p.port, 3128);
        assert_eq!(p.credentials, Some(("alice".into(), "s3cr@t".into())));
        assert_eq!(
            p.authorization(),
            format!(
                "Proxy-Authorization: Basic {}\r\n",
                Base64::encode_string(b"alice:s3cr@t")
            )
        );
        let p = Proxy::parse("10.0.0.1:8080").unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.credentials),
            ("10.0.0.1", 8080, None)
        );
        assert_eq!(
            Proxy::parse("proxy.lab").unwrap_err().code,
            Code::InvalidArgument
        );
        assert_eq!(
            Proxy::parse("u@proxy.lab:1").unwrap_err().code,
            Code::InvalidArgument
        );
    }
}
