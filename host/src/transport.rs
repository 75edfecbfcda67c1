//! The HTTP transport: one `POST` per exchange over TCP, optionally through an HTTP proxy
//! (`CONNECT` for HTTPS, absolute-form for HTTP, Basic credentials), optionally over TLS.
//!
//! Every step has its own code, so an operator can tell where the path breaks: DNS
//! (`DnsFailure`, `ProxyDnsFailure`, see [`crate::resolve`]), TCP (`ConnectRefused`,
//! `ProxyRefused`, `ConnectTimeout`, see [`crate::connect`]), the proxy (`ProxyAuthRequired`,
//! `ProxyRefused`), TLS (`TlsUnknownCa`, `TlsHostMismatch`, `TlsCertExpired`, `TlsHandshake`,
//! with the presented chain named), then HTTP framing (see [`crate::http`]).
//!
//! Deadlines: resolving and connecting together take at most `connect_timeout +
//! exchange_timeout` (each address at most `connect_timeout`); from the connection on, the
//! proxy tunnel, the TLS handshake, the request and the whole response take at most
//! `exchange_timeout`. Name resolution itself is the system's and is not bounded here.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use base64ct::{Base64, Encoding};
use rustls::{ClientConfig, ClientConnection};
use slup_core::Code;

use crate::cert::CertSummary;
use crate::connect::{self, Connected, Source};
use crate::error::HostError;
use crate::http::{self, Deadline, Head, Stream};
use crate::resolve::Resolver;
use crate::tls::{self, Presented, Roots};
use crate::tlsio::TlsStream;
use crate::url::{host_port, split_host_port, Url};

/// Default bound on a TCP connect.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default bound on a whole exchange after the connect (request out, response in).
pub const DEFAULT_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on a response body: the decoder's own input limit (1 MiB).
pub const DEFAULT_MAX_RESPONSE: usize = slup_core::json::DEFAULT_LIMITS.max_input_len;
/// Cap on the body of a proxy's refusal of `CONNECT` (read for the operator, then dropped).
const MAX_PROXY_ERROR_BODY: usize = 16 * 1024;

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

    /// `host:port` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        host_port(&self.host, self.port)
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
    /// How names become addresses (host entries, DNS).
    pub resolver: Resolver,
    /// The local address connections come from.
    pub source: Source,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            exchange_timeout: DEFAULT_EXCHANGE_TIMEOUT,
            max_response: DEFAULT_MAX_RESPONSE,
            proxy: None,
            roots: Roots::WebPki,
            resolver: Resolver::system(),
            source: Source::Auto,
        }
    }
}

/// HTTP/1.1 over TCP, with TLS for `https` URLs.
#[derive(Debug)]
pub struct HttpTransport {
    config: HttpConfig,
    tls: Option<(Arc<ClientConfig>, Presented)>,
}

/// A connection to the service: plain TCP, or TLS over it.
pub enum Conn {
    /// Plain TCP.
    Plain(TcpStream),
    /// TLS over TCP.
    Tls(Box<TlsStream>),
}

impl Conn {
    /// The negotiated TLS version and cipher suite, for TLS connections.
    pub fn tls_parameters(&self) -> Option<String> {
        match self {
            Conn::Plain(_) => None,
            Conn::Tls(s) => s.parameters(),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(s) => s.read(buf),
            Conn::Tls(s) => s.read(buf),
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
            Conn::Tls(s) => s.set_timeout(d),
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

    /// The certificates the last HTTPS server presented, accepted or not.
    pub fn presented(&self) -> Vec<CertSummary> {
        self.tls
            .as_ref()
            .map(|(_, p)| p.summaries())
            .unwrap_or_default()
    }

    fn tls_config(&mut self) -> Result<(Arc<ClientConfig>, Presented), HostError> {
        if let Some(c) = &self.tls {
            return Ok(c.clone());
        }
        let c = self.config.roots.recording_config()?;
        self.tls = Some(c.clone());
        Ok(c)
    }

    /// The addresses of `host`: `DnsFailure`, or `ProxyDnsFailure` for the proxy's name.
    pub fn resolve(
        &self,
        host: &str,
        port: u16,
        via_proxy: bool,
    ) -> Result<Vec<SocketAddr>, HostError> {
        self.config.resolver.resolve(host, port).map_err(|why| {
            if via_proxy {
                HostError::new(Code::ProxyDnsFailure, format!("proxy {why}"))
            } else {
                HostError::new(Code::DnsFailure, why)
            }
        })
    }

    /// Connects to the first of `addrs` that accepts (see [`crate::connect`]).
    pub fn connect(
        &self,
        addrs: &[SocketAddr],
        via_proxy: bool,
        what: &str,
        deadline: Deadline,
    ) -> Result<Connected, HostError> {
        connect::connect(
            addrs,
            &self.config.source,
            self.config.connect_timeout,
            deadline,
            via_proxy,
            what,
        )
    }

    /// Opens a tunnel to `url` through the proxy with `CONNECT`.
    pub fn tunnel(
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
        let what = format!("proxy {}: CONNECT {authority}", proxy.authority());
        http::write_all(tcp, deadline, head.as_bytes(), b"")
            .map_err(|e| HostError::new(Code::ProxyRefused, format!("{what}: {}", e.detail)))?;
        let mut body = Vec::new();
        let answer = http::read_response(tcp, deadline, MAX_PROXY_ERROR_BODY, &mut body, true)
            .map_err(|e| {
                // A proxy that takes the connection and then says nothing in time is a
                // timeout; any other failure to answer CONNECT is the proxy refusing.
                let code = if e.code == Code::ReadTimeout {
                    Code::ReadTimeout
                } else {
                    Code::ProxyRefused
                };
                HostError::new(code, format!("{what}: {}", e.detail))
            })?;
        let said = status_text(&answer, &body);
        match answer.status {
            200..=299 => Ok(()),
            // A CONNECT is answered by the proxy itself: 401 is its refusal of the
            // credentials too (tinyproxy answers a wrong password so).
            401 | 407 => Err(HostError::new(
                Code::ProxyAuthRequired,
                format!(
                    "{what}: {said}{}",
                    if proxy.credentials.is_some() {
                        " (credentials refused)"
                    } else {
                        " (no credentials configured)"
                    }
                ),
            )),
            _ => Err(HostError::new(
                Code::ProxyRefused,
                format!("{what}: {said}"),
            )),
        }
    }

    /// The TLS handshake over `tcp` for `url`'s host; certificate failures name the
    /// presented chain.
    pub fn handshake(
        &mut self,
        tcp: TcpStream,
        url: &Url,
        deadline: Deadline,
    ) -> Result<Conn, HostError> {
        let (config, presented) = self.tls_config()?;
        presented.clear();
        let name = tls::server_name(&url.host)?;
        let conn = ClientConnection::new(config, name).map_err(|e| tls::classify(&e))?;
        match TlsStream::handshake(conn, tcp, deadline) {
            Ok(s) => Ok(Conn::Tls(Box::new(s))),
            Err(e) => Err(tls::explain(e, &url.host, &presented.summaries())),
        }
    }

    /// Sends the `POST` and reads the answer, under `deadline`.
    pub fn request(
        &self,
        conn: &mut Conn,
        url: &Url,
        body: &[u8],
        response: &mut Vec<u8>,
        deadline: Deadline,
    ) -> Result<Head, HostError> {
        let proxy = self.config.proxy.as_ref();
        let default_port = if url.tls { 443 } else { 80 };
        let host = if url.port != default_port {
            url.authority()
        } else if url.host.contains(':') {
            format!("[{}]", url.host)
        } else {
            url.host.clone()
        };
        // Plain HTTP through a proxy names the whole URL (absolute form).
        let (target, proxy_auth) = match (proxy, url.tls) {
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
        let sent = http::write_all(conn, deadline, head.as_bytes(), body);
        // A server may answer early and close (say, 413 for an oversize body): read first,
        // and report the write failure only when no answer came.
        let answer = http::read_response(conn, deadline, self.config.max_response, response, false);
        let answer = match (sent, answer) {
            (_, Ok(a)) => a,
            (Err(w), Err(r)) if r.code == Code::NoReply => return Err(w),
            (_, Err(r)) => return Err(r),
        };
        if let Some(p) = proxy.filter(|_| !url.tls) {
            // A license service never asks for Basic credentials and answers with its own
            // error body; a proxy refusing ours may say 401 instead of 407 (tinyproxy does).
            let basic = answer
                .authenticate
                .as_deref()
                .is_some_and(|a| a.trim_start().to_ascii_lowercase().starts_with("basic"));
            let from_proxy = answer.status == 407
                || (answer.status == 401
                    && basic
                    && slup_core::msg::response::ErrorBody::decode(response).is_err());
            if from_proxy {
                return Err(HostError::new(
                    Code::ProxyAuthRequired,
                    format!(
                        "proxy {}: {}{}",
                        p.authority(),
                        status_text(&answer, response),
                        if p.credentials.is_some() {
                            " (credentials refused)"
                        } else {
                            " (no credentials configured)"
                        }
                    ),
                ));
            }
        }
        Ok(answer)
    }
}

/// `HTTP 407 Proxy Authentication Required: <excerpt of the body>`.
pub fn status_text(head: &Head, body: &[u8]) -> String {
    let mut t = format!("HTTP {}", head.status);
    if !head.reason.is_empty() {
        t.push(' ');
        t.push_str(&head.reason);
    }
    let ex = http::excerpt(body, 120);
    if !ex.is_empty() {
        t.push_str(": ");
        t.push_str(&ex);
    }
    if head.cut {
        t.push_str(" [the page was cut short]");
    }
    t
}

impl Transport for HttpTransport {
    fn post(&mut self, url: &str, body: &[u8], response: &mut Vec<u8>) -> Result<Head, HostError> {
        let url = Url::parse(url)?;
        let deadline = Deadline::after(self.config.connect_timeout + self.config.exchange_timeout);
        let proxy = self.config.proxy.clone();
        let (host, port, via_proxy) = match &proxy {
            None => (url.host.as_str(), url.port, false),
            Some(p) => (p.host.as_str(), p.port, true),
        };
        let addrs = self.resolve(host, port, via_proxy)?;
        let Connected { stream, .. } =
            self.connect(&addrs, via_proxy, &host_port(host, port), deadline)?;
        let mut tcp = stream;
        let deadline = Deadline::after(self.config.exchange_timeout);
        if let (Some(p), true) = (&proxy, url.tls) {
            self.tunnel(&mut tcp, &url, p, deadline)?;
        }
        let mut conn = if url.tls {
            self.handshake(tcp, &url, deadline)?
        } else {
            Conn::Plain(tcp)
        };
        self.request(&mut conn, &url, body, response, deadline)
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
