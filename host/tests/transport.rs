//! The HTTP transport on real loopback sockets: a tiny server thread per test answers (or
//! misbehaves) exactly as scripted, and each outcome must carry its precise code.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use base64ct::Encoding;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use slup_core::Code;
use slup_host::transport::{HttpConfig, HttpTransport, Proxy, Transport};
use slup_host::{HostError, Roots};

/// What the scripted server does once it has read a whole request.
enum Act {
    /// Writes these bytes and closes.
    Raw(Vec<u8>),
    /// Closes without a byte.
    Close,
    /// Keeps the connection open, silent, for this long.
    Hang(Duration),
}

/// Reads one HTTP request (head and Content-Length body) from `s`.
fn read_request(s: &mut impl Read) -> Vec<u8> {
    let mut req = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        // A client that refuses us mid-handshake ends the request early.
        let n = s.read(&mut b).unwrap_or(0);
        if n == 0 {
            return req;
        }
        req.extend_from_slice(&b[..n]);
        if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&req[..end]).to_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse().unwrap());
            if req.len() >= end + 4 + len {
                return req;
            }
        }
    }
}

fn act(s: &mut (impl Read + Write), a: Act) {
    match a {
        Act::Raw(bytes) => {
            let _ = s.write_all(&bytes);
            let _ = s.flush();
        }
        Act::Close => {}
        Act::Hang(d) => std::thread::sleep(d),
    }
}

/// A plain HTTP server answering one connection; returns its URL and the request it saw.
fn serve(a: Act) -> (String, JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/cslu/v1/pi",
        l.local_addr().unwrap().port()
    );
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let req = read_request(&mut s);
        act(&mut s, a);
        req
    });
    (url, h)
}

fn response(head: &str, body: &[u8]) -> Vec<u8> {
    let mut v = head.replace('\n', "\r\n").into_bytes();
    v.extend_from_slice(body);
    v
}

fn post(url: &str, config: HttpConfig) -> Result<(u16, Vec<u8>), HostError> {
    let mut t = HttpTransport::new(config);
    let mut body = Vec::new();
    let head = t.post(url, br#"{"request":{}}"#, &mut body)?;
    Ok((head.status, body))
}

fn quick() -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_secs(5),
        exchange_timeout: Duration::from_millis(500),
        max_response: 1024,
        ..HttpConfig::default()
    }
}

#[test]
fn a_content_length_answer_arrives_whole_and_the_request_is_well_formed() {
    let (url, h) = serve(Act::Raw(response(
        "HTTP/1.1 200 OK\nContent-Type: application/json\nContent-Length: 11\n\n",
        br#"{"ok":true}"#,
    )));
    let (status, body) = post(&url, quick()).unwrap();
    assert_eq!(
        (status, body.as_slice()),
        (200, br#"{"ok":true}"#.as_slice())
    );
    let req = String::from_utf8(h.join().unwrap()).unwrap();
    assert!(req.starts_with("POST /cslu/v1/pi HTTP/1.1\r\n"), "{req}");
    for line in [
        "Content-Type: application/json\r\n",
        "Content-Length: 14\r\n",
        "Connection: close\r\n",
    ] {
        assert!(req.contains(line), "{line:?} missing from {req}");
    }
    assert!(req.ends_with("\r\n\r\n{\"request\":{}}"));
}

#[test]
fn a_chunked_answer_is_reassembled() {
    let (url, h) = serve(Act::Raw(response(
        "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n",
        b"4\r\n{\"ok\r\n7;ext=1\r\n\":true}\r\n0\r\n\r\n",
    )));
    let (_, body) = post(&url, quick()).unwrap();
    assert_eq!(body, br#"{"ok":true}"#);
    h.join().unwrap();
}

#[test]
fn oversize_answers_are_refused_by_length_chunks_or_stream() {
    let big = vec![b'x'; 2048];
    for head in [
        "HTTP/1.1 200 OK\nContent-Length: 2048\n\n".to_string(),
        "HTTP/1.1 200 OK\n\n".to_string(),
    ] {
        let (url, h) = serve(Act::Raw(response(&head, &big)));
        let e = post(&url, quick()).unwrap_err();
        assert_eq!(e.code, Code::OversizeBody, "{head:?}: {e}");
        h.join().unwrap();
    }
    let mut chunked = b"800\r\n".to_vec();
    chunked.extend_from_slice(&big);
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let (url, h) = serve(Act::Raw(response(
        "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n",
        &chunked,
    )));
    assert_eq!(post(&url, quick()).unwrap_err().code, Code::OversizeBody);
    h.join().unwrap();
}

#[test]
fn a_server_that_closes_without_answering_is_no_reply() {
    let (url, h) = serve(Act::Close);
    let e = post(&url, quick()).unwrap_err();
    assert_eq!(e.code, Code::NoReply, "{e}");
    h.join().unwrap();
}

#[test]
fn a_body_cut_short_is_truncated() {
    let (url, h) = serve(Act::Raw(response(
        "HTTP/1.1 200 OK\nContent-Length: 100\n\n",
        b"{\"par",
    )));
    let e = post(&url, quick()).unwrap_err();
    assert_eq!(e.code, Code::TruncatedBody, "{e}");
    assert!(e.detail.contains("5 of 100"), "{e}");
    h.join().unwrap();
}

#[test]
fn a_server_that_never_answers_hits_the_deadline() {
    let (url, h) = serve(Act::Hang(Duration::from_millis(1200)));
    let e = post(&url, quick()).unwrap_err();
    assert_eq!(e.code, Code::ReadTimeout, "{e}");
    h.join().unwrap();
}

#[test]
fn a_closed_port_is_refused() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let e = post(&format!("http://127.0.0.1:{port}/"), quick()).unwrap_err();
    assert_eq!(e.code, Code::ConnectRefused, "{e}");
    assert!(e.detail.contains(&port.to_string()));
}

#[test]
fn an_unknown_host_is_a_dns_failure() {
    let e = post("http://cslu-local.invalid:8182/cslu/v1/pi", quick()).unwrap_err();
    assert_eq!(e.code, Code::DnsFailure, "{e}");
}

#[test]
fn http_error_statuses_come_back_as_answers_for_the_driver_to_classify() {
    let body = br#"{"error":{"code":1100,"message":"bad signature"}}"#;
    let (url, h) = serve(Act::Raw(response(
        &format!(
            "HTTP/1.1 401 Unauthorized\nContent-Length: {}\n\n",
            body.len()
        ),
        body,
    )));
    let mut t = HttpTransport::new(quick());
    let mut got = Vec::new();
    let head = t.post(&url, b"{}", &mut got).unwrap();
    assert_eq!(head.status, 401);
    let e = slup_host::driver::classify_status(&head, &got);
    assert_eq!(e.code, Code::ServiceError);
    assert!(
        e.detail.contains("E1100 BadSignature: bad signature"),
        "{e}"
    );
    h.join().unwrap();
}

// ---- TLS ------------------------------------------------------------------------------------

struct Pki {
    ca_der: CertificateDer<'static>,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

/// A CA and a server certificate for `names`, valid from `not_before` to `not_after` (years).
fn pki(names: &[&str], years: (i32, i32)) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "slup test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.not_before = rcgen::date_time_ymd(years.0, 1, 1);
    p.not_after = rcgen::date_time_ymd(years.1, 1, 1);
    let issuer = rcgen::Issuer::from_params(&ca, &ca_key);
    let cert = p.signed_by(&key, &issuer).unwrap();
    Pki {
        ca_der: ca_cert.der().clone(),
        cert: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

fn server_config(p: &Pki) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![p.cert.clone()], p.key.clone_key())
            .unwrap(),
    )
}

/// An HTTPS server for one connection; the handshake may fail (the client refuses us).
fn serve_tls(p: &Pki, a: Act) -> (u16, JoinHandle<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let cfg = server_config(p);
    let h = std::thread::spawn(move || {
        let (s, _) = l.accept().unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let conn = rustls::ServerConnection::new(cfg).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, s);
        let req = read_request(&mut tls);
        if !req.is_empty() {
            act(&mut tls, a);
            tls.conn.send_close_notify();
            let _ = tls.flush();
        }
        req
    });
    (port, h)
}

fn with_ca(ca: &CertificateDer<'static>) -> HttpConfig {
    HttpConfig {
        roots: Roots::Certificates(vec![ca.clone()]),
        ..quick()
    }
}

fn ok_answer() -> Act {
    Act::Raw(response("HTTP/1.1 200 OK\nContent-Length: 2\n\n", b"{}"))
}

#[test]
fn https_verifies_the_server_against_the_configured_ca() {
    let p = pki(&["localhost", "127.0.0.1"], (2020, 2100));
    let (port, h) = serve_tls(&p, ok_answer());
    let (status, body) = post(
        &format!("https://localhost:{port}/licservice/license"),
        with_ca(&p.ca_der),
    )
    .unwrap();
    assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));
    assert!(String::from_utf8(h.join().unwrap())
        .unwrap()
        .starts_with("POST /licservice/license "));
    // By IP address too, since the certificate names it.
    let (port, h) = serve_tls(&p, ok_answer());
    post(&format!("https://127.0.0.1:{port}/"), with_ca(&p.ca_der)).unwrap();
    h.join().unwrap();
}

#[test]
fn a_foreign_ca_is_unknown_ca() {
    let p = pki(&["localhost"], (2020, 2100));
    let other = pki(&["localhost"], (2020, 2100));
    let (port, h) = serve_tls(&p, ok_answer());
    let e = post(
        &format!("https://localhost:{port}/"),
        with_ca(&other.ca_der),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::TlsUnknownCa, "{e}");
    h.join().unwrap();
    // The public web roots do not vouch for a lab CA either.
    let (port, h) = serve_tls(&p, ok_answer());
    let e = post(&format!("https://localhost:{port}/"), quick()).unwrap_err();
    assert_eq!(e.code, Code::TlsUnknownCa, "{e}");
    h.join().unwrap();
}

#[test]
fn a_certificate_for_another_name_is_host_mismatch() {
    let p = pki(&["license.example.com"], (2020, 2100));
    let (port, h) = serve_tls(&p, ok_answer());
    let e = post(&format!("https://127.0.0.1:{port}/"), with_ca(&p.ca_der)).unwrap_err();
    assert_eq!(e.code, Code::TlsHostMismatch, "{e}");
    h.join().unwrap();
}

#[test]
fn an_expired_certificate_is_cert_expired() {
    let p = pki(&["localhost"], (2001, 2002));
    let (port, h) = serve_tls(&p, ok_answer());
    let e = post(&format!("https://localhost:{port}/"), with_ca(&p.ca_der)).unwrap_err();
    assert_eq!(e.code, Code::TlsCertExpired, "{e}");
    h.join().unwrap();
}

#[test]
fn plain_http_to_a_tls_port_fails_the_handshake() {
    // An HTTP server where HTTPS was expected: it answers the ClientHello with a 400.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = std::thread::spawn(move || {
        let (mut s, _) = l.accept().unwrap();
        let mut b = [0u8; 512];
        let _ = s.read(&mut b).unwrap();
        s.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            .unwrap();
    });
    let e = post(&format!("https://127.0.0.1:{port}/"), quick()).unwrap_err();
    assert_eq!(e.code, Code::TlsHandshake, "{e}");
    h.join().unwrap();
}

#[test]
fn ca_files_load_from_pem_and_der() {
    let p = pki(&["localhost"], (2020, 2100));
    let pem = format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64ct::Base64::encode_string(p.ca_der.as_ref())
    );
    assert!(
        matches!(Roots::from_pem_or_der(pem.as_bytes()).unwrap(), Roots::Certificates(c) if c.len() == 1)
    );
    assert!(
        matches!(Roots::from_pem_or_der(p.ca_der.as_ref()).unwrap(), Roots::Certificates(c) if c.len() == 1)
    );
    assert_eq!(
        Roots::from_pem_or_der(b"not a certificate")
            .unwrap_err()
            .code,
        Code::InvalidArgument
    );
}

// ---- proxy ----------------------------------------------------------------------------------

/// A one-connection HTTP proxy that wants `user:pass`. `CONNECT` is tunnelled; a plain request
/// in absolute form is forwarded. Returns the proxy address and the first request line it saw.
fn proxy(upstream: u16) -> (String, JoinHandle<String>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    let h = std::thread::spawn(move || {
        let (mut c, _) = l.accept().unwrap();
        let req = read_request(&mut c);
        let text = String::from_utf8_lossy(&req).to_string();
        let first = text.lines().next().unwrap_or("").to_string();
        let want = format!(
            "proxy-authorization: basic {}",
            base64ct::Base64::encode_string(b"alice:wonder").to_lowercase()
        );
        if !text.to_lowercase().contains(&want) {
            let _ = c.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"lab\"\r\nContent-Length: 0\r\n\r\n");
            return first;
        }
        let mut up = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
        if first.starts_with("CONNECT ") {
            c.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .unwrap();
        } else {
            up.write_all(&req).unwrap();
        }
        let mut c2 = c.try_clone().unwrap();
        let mut up2 = up.try_clone().unwrap();
        let t = std::thread::spawn(move || {
            let _ = std::io::copy(&mut up2, &mut c2);
            let _ = c2.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut c, &mut up);
        let _ = up.shutdown(std::net::Shutdown::Write);
        t.join().unwrap();
        first
    });
    (addr, h)
}

#[test]
fn https_goes_through_a_proxy_with_basic_credentials() {
    let p = pki(&["localhost"], (2020, 2100));
    let (port, server) = serve_tls(&p, ok_answer());
    let (addr, px) = proxy(port);
    let config = HttpConfig {
        proxy: Some(Proxy::parse(&format!("http://alice:wonder@{addr}")).unwrap()),
        ..with_ca(&p.ca_der)
    };
    let (status, _) = post(
        &format!("https://localhost:{port}/licservice/license"),
        config,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        px.join().unwrap(),
        format!("CONNECT localhost:{port} HTTP/1.1")
    );
    server.join().unwrap();
}

#[test]
fn a_proxy_without_credentials_is_proxy_auth_required() {
    let (addr, px) = proxy(1);
    let config = HttpConfig {
        proxy: Some(Proxy::parse(&addr).unwrap()),
        ..quick()
    };
    let e = post("https://localhost:9/", config.clone()).unwrap_err();
    assert_eq!(e.code, Code::ProxyAuthRequired, "{e}");
    px.join().unwrap();
    // Plain HTTP through the proxy: the 407 is the answer to the request itself.
    let (addr, px) = proxy(1);
    let config = HttpConfig {
        proxy: Some(Proxy::parse(&addr).unwrap()),
        ..quick()
    };
    let e = post("http://cslu-local:8182/cslu/v1/pi", config).unwrap_err();
    assert_eq!(e.code, Code::ProxyAuthRequired, "{e}");
    assert_eq!(
        px.join().unwrap(),
        "POST http://cslu-local:8182/cslu/v1/pi HTTP/1.1"
    );
}

#[test]
fn plain_http_is_forwarded_in_absolute_form() {
    let (url, server) = serve(ok_answer());
    let port: u16 = url
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let (addr, px) = proxy(port);
    let config = HttpConfig {
        proxy: Some(Proxy::parse(&format!("alice:wonder@{addr}")).unwrap()),
        ..quick()
    };
    let (status, body) = post(&url, config).unwrap();
    assert_eq!((status, body.as_slice()), (200, b"{}".as_slice()));
    assert_eq!(px.join().unwrap(), format!("POST {url} HTTP/1.1"));
    server.join().unwrap();
}

#[test]
fn an_unreachable_proxy_is_named_as_the_proxy() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = HttpConfig {
        proxy: Some(Proxy::parse(&format!("127.0.0.1:{port}")).unwrap()),
        ..quick()
    };
    assert_eq!(
        post("https://localhost/", config).unwrap_err().code,
        Code::ProxyRefused
    );
    let config = HttpConfig {
        proxy: Some(Proxy::parse("proxy.invalid:3128").unwrap()),
        ..quick()
    };
    assert_eq!(
        post("https://localhost/", config).unwrap_err().code,
        Code::ProxyDnsFailure
    );
}
