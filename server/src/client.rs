//! A small blocking HTTP/1.1 client for the server's own outgoing calls (CSLU-initiated pull):
//! one request per connection, `Content-Length` bodies, a size cap, deadlines, and HTTPS
//! through rustls verifying the server against a given CA.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use slup_core::url::ServiceUrl;
use slup_core::Code;

use crate::error::Error;

/// Largest response body accepted.
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;
const TIMEOUT: Duration = Duration::from_secs(30);

/// Parses a device URL (`slup_core::url`): `scheme://host[:port][/prefix]`.
pub fn parse_url(url: &str) -> Result<ServiceUrl<'_>, Error> {
    ServiceUrl::parse(url)
        .map_err(|why| Error::new(Code::InvalidArgument, format!("URL {url:?}: {why}")))
}

/// A response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status.
    pub status: u16,
    /// Body.
    pub body: Vec<u8>,
}

/// A client TLS configuration trusting only the CAs in the PEM file `ca`.
pub fn tls_trusting(ca_pem: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, Error> {
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_pem)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| Error::other(format!("{}: {e}", ca_pem.display())))?;
    for c in certs {
        roots
            .add(c)
            .map_err(|e| Error::other(format!("{}: {e}", ca_pem.display())))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::other(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

fn io_error(url: &ServiceUrl<'_>, e: std::io::Error) -> Error {
    let code = match e.kind() {
        std::io::ErrorKind::ConnectionRefused => Code::ConnectRefused,
        std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => Code::ReadTimeout,
        std::io::ErrorKind::ConnectionReset => Code::ConnectionReset,
        std::io::ErrorKind::UnexpectedEof => Code::TruncatedBody,
        std::io::ErrorKind::InvalidData => Code::TlsHandshake,
        _ => Code::NoReply,
    };
    Error::new(code, format!("{}:{}: {e}", url.host, url.port))
}

/// Sends one request (`path` is appended to the URL's path, less its trailing `/`) and reads
/// the answer.
pub fn request(
    url: &ServiceUrl<'_>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Response, Error> {
    let addr = (url.host, url.port)
        .to_socket_addrs()
        .map_err(|e| Error::new(Code::DnsFailure, format!("{}: {e}", url.host)))?
        .next()
        .ok_or_else(|| Error::new(Code::DnsFailure, url.host))?;
    let tcp = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| io_error(url, e))?;
    tcp.set_read_timeout(Some(TIMEOUT))
        .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
        .map_err(|e| io_error(url, e))?;
    let mut head = format!(
        "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        url.path.trim_end_matches('/'),
        url.host,
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut req = head.into_bytes();
    req.extend_from_slice(body);
    match (url.tls, tls) {
        (false, _) => exchange(url, tcp, &req),
        (true, Some(cfg)) => {
            let name = ServerName::try_from(url.host.to_string())
                .map_err(|e| Error::new(Code::InvalidArgument, format!("{}: {e}", url.host)))?;
            let conn = rustls::ClientConnection::new(Arc::clone(cfg), name)
                .map_err(|e| Error::new(Code::TlsHandshake, e.to_string()))?;
            exchange(url, rustls::StreamOwned::new(conn, tcp), &req)
        }
        (true, None) => Err(Error::new(
            Code::InvalidArgument,
            "an https:// URL needs a CA certificate to verify the device with",
        )),
    }
}

fn exchange<S: Read + Write>(
    url: &ServiceUrl<'_>,
    mut s: S,
    req: &[u8],
) -> Result<Response, Error> {
    s.write_all(req)
        .and_then(|()| s.flush())
        .map_err(|e| io_error(url, e))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(n) => n,
            // A peer that closes without TLS close_notify after a complete answer is common.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
            Err(e) => return Err(io_error(url, e)),
        };
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let parsed = resp
            .parse(&buf)
            .map_err(|e| Error::new(Code::HttpClientError, format!("bad HTTP answer: {e}")))?;
        if let httparse::Status::Complete(head) = parsed {
            let status = resp.code.unwrap_or(0);
            let len = resp
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                .and_then(|h| {
                    std::str::from_utf8(h.value)
                        .ok()?
                        .trim()
                        .parse::<usize>()
                        .ok()
                });
            if len.is_some_and(|l| l > MAX_RESPONSE) {
                return Err(Error::new(Code::OversizeBody, format!("{len:?} bytes")));
            }
            let mut body = buf.split_off(head);
            loop {
                if len.is_some_and(|l| body.len() >= l) {
                    body.truncate(len.unwrap_or(0));
                    return Ok(Response { status, body });
                }
                let n = match s.read(&mut chunk) {
                    Ok(n) => n,
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => 0,
                    Err(e) => return Err(io_error(url, e)),
                };
                if n == 0 {
                    return match len {
                        None => Ok(Response { status, body }),
                        Some(_) => Err(Error::new(Code::TruncatedBody, "answer cut short")),
                    };
                }
                body.extend_from_slice(chunk.get(..n).unwrap_or_default());
                if body.len() > MAX_RESPONSE {
                    return Err(Error::new(Code::OversizeBody, "answer too large"));
                }
            }
        }
        if n == 0 {
            return Err(Error::new(Code::NoReply, "closed before an answer"));
        }
        if buf.len() > 64 * 1024 {
            return Err(Error::new(Code::HttpClientError, "answer head too large"));
        }
    }
}
