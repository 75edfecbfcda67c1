//! The fault matrix, on loopback, every component started by the tests: a trusted device sends
//! a usage report to slup-server through a fault proxy (latency, reset, slice, limit, slow
//! drip, close mid-body, stall) placed in each phase (connect, TLS handshake, request,
//! response head, body), through a real tinyproxy (with and without Basic credentials, wrong
//! password included), to servers presenting a foreign CA, an expired or misnamed
//! certificate, to middleboxes answering HTML, and with the server's own faults.
//!
//! Every case checks: the stable code; the `COMM_FAILED` event carrying that code and a
//! detail; the history entry; that the device's persisted records are unchanged except the
//! nonces and the schedule; and that the deadline held (upper bound, 10 % margin). Each case
//! prints one table row (`cargo test --test fault_matrix -- --nocapture`).

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use common::faults::{closed_port, Blackhole, Dir, FaultProxy, Mark, Toxic};
use common::lab::{check_failure, check_success, http_answer, Lab, Recording};
use common::tinyproxy::Tinyproxy;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
use slup_core::Code;
use slup_host::{HttpConfig, HttpTransport, Proxy, Resolver, Roots};
use slup_server::{Faults, TlsSource};

/// Bound on each connect.
const CONNECT: Duration = Duration::from_millis(500);
/// Bound on the exchange after the connect.
const EXCHANGE: Duration = Duration::from_millis(1000);

fn config(lab: &Lab) -> HttpConfig {
    HttpConfig {
        connect_timeout: CONNECT,
        exchange_timeout: EXCHANGE,
        roots: lab.roots(),
        ..HttpConfig::default()
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A fault proxy in front of the lab's HTTP (or HTTPS) listener, and the URL through it.
fn through(lab: &Lab, toxic: Toxic, tls: bool) -> (FaultProxy, String) {
    let upstream = if tls {
        lab.server.https_addr().unwrap()
    } else {
        lab.server.http_addr().unwrap()
    };
    let p = FaultProxy::start(upstream, toxic);
    let url = if tls {
        format!("https://localhost:{}/licservice/license", p.port)
    } else {
        format!("http://127.0.0.1:{}/licservice/license", p.port)
    };
    (p, url)
}

/// One case through the fault proxy: `want` is the code, `None` for success.
fn proxied(lab: &Lab, name: &str, toxic: Toxic, tls: bool, want: Option<Code>) {
    let (_p, url) = through(lab, toxic, tls);
    let mut b = lab.trusted(&url);
    let run = b.report(config(lab));
    match want {
        Some(code) => {
            check_failure(name, &run, code, EXCHANGE);
        }
        None => check_success(name, &run, EXCHANGE),
    }
}

#[test]
fn connect_phase() {
    let lab = Lab::start(|_| {});
    let port = closed_port();
    let mut b = lab.trusted(&format!("http://127.0.0.1:{port}/licservice/license"));
    let run = b.report(config(&lab));
    check_failure(
        "connect: refused (nothing listens)",
        &run,
        Code::ConnectRefused,
        CONNECT,
    );

    let hole = Blackhole::start();
    let mut b = lab.trusted(&format!(
        "http://127.0.0.1:{}/licservice/license",
        hole.port
    ));
    let run = b.report(config(&lab));
    let d = check_failure(
        "connect: SYN unanswered (blackhole)",
        &run,
        Code::ConnectTimeout,
        CONNECT,
    );
    assert!(d.contains("no answer to the connect"), "{d}");

    proxied(
        &lab,
        "connect: reset as soon as the request arrives",
        Toxic::Reset(Dir::Up, Mark::Bytes(0)),
        false,
        Some(Code::ConnectionReset),
    );
    proxied(
        &lab,
        "connect: latency 200 ms (service connect delayed)",
        Toxic::ConnectDelay(ms(200)),
        false,
        None,
    );
    proxied(
        &lab,
        "connect: latency past the deadline",
        Toxic::ConnectDelay(EXCHANGE + ms(300)),
        false,
        Some(Code::ReadTimeout),
    );
}

#[test]
fn handshake_phase() {
    let lab = Lab::start(|_| {});
    let cases: [(&str, Toxic, Option<Code>); 7] = [
        (
            "handshake: latency 150 ms on the server flight",
            Toxic::Latency(Dir::Down, Mark::Bytes(0), ms(150)),
            None,
        ),
        (
            "handshake: slices of 64 B every 1 ms",
            Toxic::Slice(Dir::Down, Mark::Bytes(0), 64, ms(1)),
            None,
        ),
        (
            "handshake: reset inside the server flight",
            Toxic::Reset(Dir::Down, Mark::Bytes(100)),
            Some(Code::ConnectionReset),
        ),
        (
            "handshake: close inside the server flight (limit 100 B)",
            Toxic::Close(Dir::Down, Mark::Bytes(100)),
            Some(Code::TlsHandshake),
        ),
        (
            "handshake: close inside the ClientHello (limit 50 B)",
            Toxic::Close(Dir::Up, Mark::Bytes(50)),
            Some(Code::TlsHandshake),
        ),
        (
            "handshake: stall after 100 B of the server flight",
            Toxic::Stall(Dir::Down, Mark::Bytes(100)),
            Some(Code::ReadTimeout),
        ),
        (
            "handshake: slow drip, 1 B every 10 ms",
            Toxic::Slice(Dir::Down, Mark::Bytes(0), 1, ms(10)),
            Some(Code::ReadTimeout),
        ),
    ];
    for (name, toxic, want) in cases {
        proxied(&lab, name, toxic, true, want);
    }
}

#[test]
fn request_phase() {
    let lab = Lab::start(|_| {});
    let cases: [(&str, Toxic, Option<Code>); 7] = [
        (
            "request: latency 150 ms",
            Toxic::Latency(Dir::Up, Mark::Bytes(0), ms(150)),
            None,
        ),
        (
            "request: slices of 16 B every 1 ms",
            Toxic::Slice(Dir::Up, Mark::Bytes(0), 16, ms(1)),
            None,
        ),
        (
            "request: reset inside the head",
            Toxic::Reset(Dir::Up, Mark::Bytes(40)),
            Some(Code::ConnectionReset),
        ),
        (
            "request: close inside the head (limit 40 B)",
            Toxic::Close(Dir::Up, Mark::Bytes(40)),
            Some(Code::NoReply),
        ),
        (
            "request: close inside the body",
            Toxic::Close(Dir::Up, Mark::AfterHead(20)),
            Some(Code::NoReply),
        ),
        (
            "request: stall inside the body",
            Toxic::Stall(Dir::Up, Mark::AfterHead(20)),
            Some(Code::ReadTimeout),
        ),
        (
            "request: slow drip, 1 B every 5 ms",
            Toxic::Slice(Dir::Up, Mark::Bytes(0), 1, ms(5)),
            Some(Code::ReadTimeout),
        ),
    ];
    for (name, toxic, want) in cases {
        proxied(&lab, name, toxic, false, want);
    }
}

#[test]
fn response_head_phase() {
    let lab = Lab::start(|_| {});
    let cases: [(&str, Toxic, Option<Code>); 5] = [
        (
            "headers: slices of 8 B every 1 ms",
            Toxic::Slice(Dir::Down, Mark::Bytes(0), 8, ms(1)),
            None,
        ),
        (
            "headers: reset inside the head",
            Toxic::Reset(Dir::Down, Mark::Bytes(20)),
            Some(Code::ConnectionReset),
        ),
        (
            "headers: close inside the head (limit 20 B)",
            Toxic::Close(Dir::Down, Mark::Bytes(20)),
            Some(Code::TruncatedBody),
        ),
        (
            "headers: stall inside the head",
            Toxic::Stall(Dir::Down, Mark::Bytes(20)),
            Some(Code::ReadTimeout),
        ),
        (
            "headers: slow drip, 1 B every 10 ms",
            Toxic::Slice(Dir::Down, Mark::Bytes(0), 1, ms(10)),
            Some(Code::ReadTimeout),
        ),
    ];
    for (name, toxic, want) in cases {
        proxied(&lab, name, toxic, false, want);
    }
}

#[test]
fn body_phase() {
    let lab = Lab::start(|_| {});
    let cases: [(&str, Toxic, Option<Code>); 6] = [
        (
            "body: latency 150 ms",
            Toxic::Latency(Dir::Down, Mark::AfterHead(0), ms(150)),
            None,
        ),
        (
            "body: slices of 24 B every 1 ms",
            Toxic::Slice(Dir::Down, Mark::AfterHead(0), 24, ms(1)),
            None,
        ),
        (
            "body: close mid-body",
            Toxic::Close(Dir::Down, Mark::AfterHead(50)),
            Some(Code::TruncatedBody),
        ),
        (
            "body: reset mid-body",
            Toxic::Reset(Dir::Down, Mark::AfterHead(50)),
            Some(Code::ConnectionReset),
        ),
        (
            "body: stall mid-body",
            Toxic::Stall(Dir::Down, Mark::AfterHead(50)),
            Some(Code::ReadTimeout),
        ),
        (
            "body: slow drip, 1 B every 10 ms",
            Toxic::Slice(Dir::Down, Mark::AfterHead(0), 1, ms(10)),
            Some(Code::ReadTimeout),
        ),
    ];
    for (name, toxic, want) in cases {
        proxied(&lab, name, toxic, false, want);
    }
}

#[test]
fn server_faults() {
    let lab = Lab::start(|_| {});
    let cases: [(&str, Faults, Code); 5] = [
        (
            "server: answer dropped after the request was handled",
            Faults {
                drop: 1.0,
                ..Faults::default()
            },
            Code::NoReply,
        ),
        (
            "server: half the body, then close",
            Faults {
                truncate: 1.0,
                ..Faults::default()
            },
            Code::TruncatedBody,
        ),
        (
            "server: signature corrupted",
            Faults {
                corrupt_signature: 1.0,
                ..Faults::default()
            },
            Code::BadSignature,
        ),
        (
            "server: 503 try again (error body E1206)",
            Faults {
                reject: 1.0,
                ..Faults::default()
            },
            Code::ServiceError,
        ),
        (
            "server: answer delayed past the deadline",
            Faults {
                delay: Some(EXCHANGE + ms(300)),
                ..Faults::default()
            },
            Code::ReadTimeout,
        ),
    ];
    for (name, faults, want) in cases {
        // The same service (database, key), behind a faulty front end.
        let twin = lab.twin(|c| c.faults = faults);
        let mut b = lab.trusted(&format!("{}/licservice/license", twin.http_url()));
        let run = b.report(config(&lab));
        let d = check_failure(name, &run, want, EXCHANGE);
        if want == Code::ServiceError {
            assert!(d.contains("E1206 ServiceTryAgain"), "{d}");
        }
    }
}

/// A CA and an expired certificate for the loopback names, as PEM files in `dir`.
fn expired_pki(dir: &std::path::Path) -> (TlsSource, Roots) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "lab CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
    p.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    p.distinguished_name
        .push(DnType::CommonName, "expired license server");
    p.not_before = rcgen::date_time_ymd(2001, 1, 1);
    p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    let cert = p
        .signed_by(&key, &rcgen::Issuer::from_params(&ca, &ca_key))
        .unwrap();
    let chain = dir.join("chain.pem");
    let key_file = dir.join("key.pem");
    std::fs::write(&chain, format!("{}{}", cert.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    (
        TlsSource::Pem {
            cert: chain,
            key: key_file,
        },
        Roots::Certificates(vec![ca_cert.der().clone()]),
    )
}

#[test]
fn certificates() {
    let lab = Lab::start(|_| {});

    // A TLS-intercepting middlebox: the certificate comes from a CA the device does not
    // trust. The request must not leave: the service stores nothing, and what crossed the
    // wire from the device is less than the request alone.
    let foreign = lab.twin(|c| {
        c.http = None;
        c.https = Some((SocketAddr::from(([127, 0, 0, 1], 0)), TlsSource::ForeignCa));
    });
    let tap = FaultProxy::start(foreign.https_addr().unwrap(), Toxic::None);
    let mut b = lab.trusted(&format!(
        "https://localhost:{}/licservice/license",
        tap.port
    ));
    let run = b.report(config(&lab));
    let d = check_failure(
        "tls: foreign CA (interception)",
        &run,
        Code::TlsUnknownCa,
        EXCHANGE,
    );
    assert!(d.contains("slup-server foreign CA"), "{d}");
    assert_eq!(lab.reports_of(&b.serial), 0, "the service saw a report");
    assert!(
        tap.up_bytes() < run.exchange.sent,
        "{} bytes left the device, the request alone is {}",
        tap.up_bytes(),
        run.exchange.sent
    );

    // The service's certificate, under a name it does not carry.
    let hosts =
        Resolver::system().with_host("license.example.com", &[IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let mut b = lab.trusted(&format!(
        "https://license.example.com:{}/licservice/license",
        lab.https_port()
    ));
    let run = b.report(HttpConfig {
        resolver: hosts,
        ..config(&lab)
    });
    let d = check_failure(
        "tls: certificate for another name",
        &run,
        Code::TlsHostMismatch,
        EXCHANGE,
    );
    assert!(d.contains("localhost"), "{d}");

    // An expired certificate.
    let dir = tempfile::tempdir().unwrap();
    let (source, roots) = expired_pki(dir.path());
    let expired = lab.twin(|c| {
        c.http = None;
        c.https = Some((SocketAddr::from(([127, 0, 0, 1], 0)), source));
    });
    let mut b = lab.trusted(&format!(
        "https://localhost:{}/licservice/license",
        expired.https_addr().unwrap().port()
    ));
    let run = b.report(HttpConfig {
        roots,
        ..config(&lab)
    });
    let d = check_failure(
        "tls: expired certificate",
        &run,
        Code::TlsCertExpired,
        EXCHANGE,
    );
    assert!(d.contains("EXPIRED"), "{d}");

    // HTTPS to a plain HTTP port.
    let mut b = lab.trusted(&format!(
        "https://127.0.0.1:{}/licservice/license",
        lab.http_port()
    ));
    let run = b.report(config(&lab));
    check_failure(
        "tls: plain HTTP server on an https URL",
        &run,
        Code::TlsHandshake,
        EXCHANGE,
    );

    // The public web roots do not vouch for a lab CA.
    let mut b = lab.trusted(&lab.https_url());
    let run = b.report(HttpConfig {
        roots: Roots::WebPki,
        ..config(&lab)
    });
    check_failure(
        "tls: lab CA against the public web roots",
        &run,
        Code::TlsUnknownCa,
        EXCHANGE,
    );
}

#[test]
fn real_proxy() {
    let lab = Lab::start(|_| {});
    let open = Tinyproxy::start(None);
    let auth = Tinyproxy::start(Some(("alice", "wonder")));
    let with = |p: Proxy| HttpConfig {
        proxy: Some(p),
        ..config(&lab)
    };
    let good = Some(("alice", "wonder"));
    let wrong = Some(("alice", "rabbit"));
    type Creds<'a> = Option<(&'a str, &'a str)>;
    let cases: [(&str, &Tinyproxy, Creds, bool, Option<Code>); 8] = [
        (
            "proxy: tinyproxy, HTTPS by CONNECT",
            &open,
            None,
            true,
            None,
        ),
        (
            "proxy: tinyproxy, HTTP in absolute form",
            &open,
            None,
            false,
            None,
        ),
        (
            "proxy: tinyproxy Basic auth, HTTPS, right password",
            &auth,
            good,
            true,
            None,
        ),
        (
            "proxy: tinyproxy Basic auth, HTTP, right password",
            &auth,
            good,
            false,
            None,
        ),
        (
            "proxy: tinyproxy Basic auth, HTTPS, no credentials (407)",
            &auth,
            None,
            true,
            Some(Code::ProxyAuthRequired),
        ),
        (
            "proxy: tinyproxy Basic auth, HTTP, no credentials (407)",
            &auth,
            None,
            false,
            Some(Code::ProxyAuthRequired),
        ),
        (
            "proxy: tinyproxy Basic auth, HTTPS, wrong password (its 401)",
            &auth,
            wrong,
            true,
            Some(Code::ProxyAuthRequired),
        ),
        (
            "proxy: tinyproxy Basic auth, HTTP, wrong password (its 401)",
            &auth,
            wrong,
            false,
            Some(Code::ProxyAuthRequired),
        ),
    ];
    for (name, proxy, creds, tls, want) in cases {
        let url = if tls { lab.https_url() } else { lab.http_url() };
        let mut b = lab.trusted(&url);
        let run = b.report(with(proxy.proxy(creds)));
        match want {
            None => check_success(name, &run, EXCHANGE),
            Some(code) => {
                let d = check_failure(name, &run, code, EXCHANGE);
                let creds_said = if creds.is_some() {
                    "credentials refused"
                } else {
                    "no credentials configured"
                };
                assert!(d.contains(creds_said), "{d}");
            }
        }
    }
    // The proxy cannot reach the service: CONNECT refused.
    let mut b = lab.trusted(&format!(
        "https://localhost:{}/licservice/license",
        closed_port()
    ));
    let run = b.report(with(open.proxy(None)));
    let d = check_failure(
        "proxy: CONNECT to a port where nothing listens",
        &run,
        Code::ProxyRefused,
        EXCHANGE,
    );
    assert!(d.contains("Unable to connect"), "{d}");
    // Interception behind the proxy: the foreign CA still shows.
    let foreign = lab.twin(|c| {
        c.http = None;
        c.https = Some((SocketAddr::from(([127, 0, 0, 1], 0)), TlsSource::ForeignCa));
    });
    let mut b = lab.trusted(&format!(
        "https://localhost:{}/licservice/license",
        foreign.https_addr().unwrap().port()
    ));
    let run = b.report(with(auth.proxy(good)));
    check_failure(
        "proxy: foreign CA behind tinyproxy",
        &run,
        Code::TlsUnknownCa,
        EXCHANGE,
    );
    // Nothing listens at the proxy's address; its name does not resolve.
    let mut b = lab.trusted(&lab.https_url());
    let run = b.report(with(
        Proxy::parse(&format!("127.0.0.1:{}", closed_port())).unwrap(),
    ));
    check_failure(
        "proxy: nothing listens on the proxy port",
        &run,
        Code::ProxyRefused,
        CONNECT,
    );
    let mut b = lab.trusted(&lab.https_url());
    let run = b.report(HttpConfig {
        resolver: Resolver {
            hosts: Vec::new(),
            dns: false,
        },
        ..with(Proxy::parse("proxy.lab:3128").unwrap())
    });
    check_failure(
        "proxy: the proxy's name does not resolve",
        &run,
        Code::ProxyDnsFailure,
        CONNECT,
    );
    assert!(auth.log().contains("alice") || !auth.log().is_empty());
}

#[test]
fn answers_that_are_not_the_services() {
    let lab = Lab::start(|_| {});
    let nowhere = SocketAddr::from(([127, 0, 0, 1], closed_port()));
    let canned = |status: &str, ty: &str, body: &[u8]| {
        let p = FaultProxy::start(nowhere, Toxic::Respond(http_answer(status, ty, body)));
        let url = format!("http://127.0.0.1:{}/licservice/license", p.port);
        (p, url)
    };
    let portal =
        b"<html><head><title>Guest Wi-Fi login</title></head><body>Accept the terms</body></html>";
    let (_p, url) = canned("403 Forbidden", "text/html", portal);
    let run = lab.trusted(&url).report(config(&lab));
    let d = check_failure(
        "http: 403 page from a middlebox",
        &run,
        Code::HttpClientError,
        EXCHANGE,
    );
    assert!(
        d.contains("HTTP 403 Forbidden: Guest Wi-Fi login Accept the terms"),
        "{d}"
    );

    let (_p, url) = canned(
        "502 Bad Gateway",
        "text/html",
        b"<html><body><h1>502 Bad Gateway</h1>upstream unreachable</body></html>",
    );
    let run = lab.trusted(&url).report(config(&lab));
    let d = check_failure(
        "http: 502 page from a gateway",
        &run,
        Code::HttpServerError,
        EXCHANGE,
    );
    assert!(d.contains("upstream unreachable"), "{d}");

    let mut b = lab.trusted(&format!("{}/licservice/nowhere", lab.server.http_url()));
    let run = b.report(config(&lab));
    let d = check_failure(
        "http: wrong path (service's 404)",
        &run,
        Code::HttpClientError,
        EXCHANGE,
    );
    assert!(d.starts_with("HTTP 404: service error E1602"), "{d}");

    let (_p, url) = canned("200 OK", "text/html", portal);
    let run = lab.trusted(&url).report(config(&lab));
    let d = check_failure(
        "answer: 200 with a captive portal page",
        &run,
        Code::JsonSyntax,
        EXCHANGE,
    );
    assert!(d.contains("text/html") && d.contains("Guest Wi-Fi"), "{d}");

    let mut b = lab.trusted(&lab.http_url());
    let run = b.report(HttpConfig {
        max_response: 256,
        ..config(&lab)
    });
    check_failure(
        "answer: larger than the receive buffer",
        &run,
        Code::OversizeBody,
        EXCHANGE,
    );

    // A signed answer replayed: first the device's own earlier one, then another device's.
    let mut x = lab.trusted(&lab.http_url());
    let (run, rec) = x.report_with(Recording {
        inner: HttpTransport::new(config(&lab)),
        last: Vec::new(),
    });
    check_success("answer: recorded for replay", &run, EXCHANGE);
    let replay = http_answer("200 OK", "application/json", &rec.last);
    let p = FaultProxy::start(nowhere, Toxic::Respond(replay.clone()));
    let url = format!("http://127.0.0.1:{}/licservice/license", p.port);
    let mut y = lab.trusted(&url);
    let run = y.report(config(&lab));
    check_failure(
        "answer: another device's signed answer",
        &run,
        Code::NonceMismatch,
        EXCHANGE,
    );
    // The same device, sent its own earlier answer again (a caching middlebox).
    let p = FaultProxy::start(lab.server.http_addr().unwrap(), Toxic::None);
    let url = format!("http://127.0.0.1:{}/licservice/license", p.port);
    let mut z = lab.trusted(&url);
    let (run, rec) = z.report_with(Recording {
        inner: HttpTransport::new(config(&lab)),
        last: Vec::new(),
    });
    check_success("answer: own answer recorded", &run, EXCHANGE);
    p.set_toxic(Toxic::Respond(http_answer(
        "200 OK",
        "application/json",
        &rec.last,
    )));
    z.use_more(5);
    let run = z.report(config(&lab));
    check_failure(
        "answer: the device's own earlier answer again",
        &run,
        Code::ReplayedNonce,
        EXCHANGE,
    );
}
