//! The device's own networking (`slup_core::net`, the code the firmware links) against the real
//! reference server on loopback: plain HTTP, HTTPS through embedded-tls with the server always
//! checked, each certificate failure told apart, and a CONNECT proxy with Basic credentials.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use embedded_io_adapters::std::FromStd;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::PublicKey;
use slup_core::engine::config::Config;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::net::io::{connect_tunnel, post, status_code};
use slup_core::net::tls::{
    post_tls, set_wall_clock, ClientIdentity, TlsBuffers, TlsSettings, RECORD_READ_BYTES,
};
use slup_core::types::{Scope, Timestamp};
use slup_core::Code;
use slup_server::{Running, Server, ServerConfig, TlsSource};

type Device = Engine<SoftwareKeys<ChaCha20Rng>, ChaCha20Rng>;

/// The wall clock is process-wide (embedded-tls reads it statically): tests that set it
/// take this lock.
static CLOCK: Mutex<()> = Mutex::new(());

const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

fn now() -> Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    Timestamp(u64::try_from(ms).unwrap())
}

fn server(tls: Option<TlsSource>) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::ephemeral(dir.path().join("slup.db"));
    cfg.log = false;
    if let Some(source) = tls {
        cfg.https = Some((SocketAddr::from(([127, 0, 0, 1], 0)), source));
    }
    (Server::start(cfg).unwrap(), dir)
}

fn device(svc: &Running) -> Device {
    let anchor = PublicKey::from_sec1(&svc.trust_anchor_sec1()).unwrap();
    let cfg = Config::new(
        "C9800-CL-K9",
        "9PJK8D70CNB",
        "17.09.02",
        "regid.2018-05.com.cisco.WLC_9500C,1.0",
        anchor,
    )
    .unwrap();
    Engine::new(
        cfg,
        SoftwareKeys(ChaCha20Rng::seed_from_u64(1)),
        ChaCha20Rng::seed_from_u64(2),
        now(),
    )
}

/// How the device reaches the service in a test.
enum Path<'a> {
    Http(SocketAddr),
    Https(SocketAddr, TlsSettings<'a>),
}

/// `POST /licservice/license` over embedded-tls on `stream`.
fn https_post(
    stream: FromStd<TcpStream>,
    settings: TlsSettings<'_>,
    body: &[u8],
    rx: &mut [u8],
) -> Result<slup_core::net::http::Response, Code> {
    let mut read = vec![0u8; RECORD_READ_BYTES];
    let mut write = vec![0u8; 4096];
    let buffers = TlsBuffers {
        read: &mut read,
        write: &mut write,
    };
    let rng = ChaCha20Rng::seed_from_u64(7);
    post_tls(
        stream,
        settings,
        rng,
        buffers,
        "localhost",
        "/licservice/license",
        body,
        rx,
    )
}

/// One request from the device and its answer, over the device's own stack.
fn exchange(dev: &mut Device, path: &Path<'_>) -> Result<Option<()>, Code> {
    let mut tx = vec![0u8; 16 * 1024];
    let Some(t) = dev.poll_transmit(now(), &mut tx) else {
        return Ok(None);
    };
    let mut rx = vec![0u8; 32 * 1024];
    let result = match path {
        Path::Http(addr) => {
            let mut s = FromStd::new(TcpStream::connect(addr).unwrap());
            post(
                &mut s,
                &addr.to_string(),
                "/licservice/license",
                &[],
                &tx[..t.len],
                &mut rx,
            )
        }
        Path::Https(addr, settings) => {
            let s = FromStd::new(TcpStream::connect(addr).unwrap());
            https_post(s, *settings, &tx[..t.len], &mut rx)
        }
    };
    match result.and_then(|r| match status_code(r.status) {
        None => Ok(r),
        Some(code) => Err(code),
    }) {
        Ok(r) => {
            dev.handle_response(now(), &rx[r.body])
                .map_err(|e| e.code())?;
            Ok(Some(()))
        }
        Err(code) => {
            dev.handle_transport_error(now(), code);
            Err(code)
        }
    }
}

/// Trust, usage, a report and its ACK over `path`.
fn full_cycle(svc: &Running, path: &Path<'_>) {
    let mut dev = device(svc);
    let token = svc.mint_token("Lab", 1, 30).unwrap();
    dev.handle_command(
        now(),
        Command::EstablishTrust {
            token: &token,
            scope: Scope::Local,
            force: false,
        },
    )
    .unwrap();
    assert_eq!(exchange(&mut dev, path), Ok(Some(())));
    assert!(dev.trust().is_installed());
    dev.handle_command(now(), Command::RecordUsage { tag: TAG, count: 3 })
        .unwrap();
    dev.handle_command(now(), Command::SyncNow).unwrap();
    while exchange(&mut dev, path).unwrap().is_some() {}
    assert!(dev.reports().is_empty());
    assert!(dev.last_ack().is_some());
}

#[test]
fn a_full_cycle_over_plain_http_and_over_embedded_tls() {
    let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_wall_clock(u32::try_from(now().0 / 1000).unwrap());
    let (svc, _dir) = server(Some(TlsSource::Generate));
    full_cycle(&svc, &Path::Http(svc.http_addr().unwrap()));
    let ca = svc.ca_cert_der().unwrap();
    let settings = TlsSettings {
        server_name: "localhost",
        ca_der: &ca,
        danger_accept_any_certificate: false,
        client: None,
    };
    full_cycle(&svc, &Path::Https(svc.https_addr().unwrap(), settings));
    svc.shutdown();
}

#[test]
fn each_certificate_fault_has_its_own_code_and_sends_nothing() {
    let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    let (good, _d1) = server(Some(TlsSource::Generate));
    let (intercepted, _d2) = server(Some(TlsSource::ForeignCa));
    let ca = good.ca_cert_der().unwrap();
    // One use: a failed handshake must not spend it.
    let token = good.mint_token("Lab", 1, 30).unwrap();
    let check = |svc: &Running, name: &str, clock_s: u32| {
        set_wall_clock(clock_s);
        let mut dev = device(svc);
        dev.handle_command(
            now(),
            Command::EstablishTrust {
                token: &token,
                scope: Scope::Local,
                force: false,
            },
        )
        .unwrap();
        let settings = TlsSettings {
            server_name: name,
            ca_der: &ca,
            danger_accept_any_certificate: false,
            client: None,
        };
        exchange(&mut dev, &Path::Https(svc.https_addr().unwrap(), settings))
    };
    let today = u32::try_from(now().0 / 1000).unwrap();
    // The intercepting CA's server signs for "localhost" too: only the chain is wrong.
    let intercepted_ca = intercepted.ca_cert_der().unwrap();
    assert_ne!(intercepted_ca, ca);
    assert_eq!(
        check(&intercepted, "localhost", today),
        Err(Code::TlsUnknownCa)
    );
    assert_eq!(
        check(&good, "smartreceiver.cisco.com", today),
        Err(Code::TlsHostMismatch)
    );
    // 1970: before the certificate's validity.
    assert_eq!(check(&good, "localhost", 1), Err(Code::TlsCertExpired));
    // Nothing reached the service in the failed handshakes: the one-use token still works.
    assert!(good.with_backend(|b| b.instances()).unwrap().is_empty());
    assert_eq!(check(&good, "localhost", today), Ok(Some(())));
    assert_eq!(good.with_backend(|b| b.instances()).unwrap().len(), 1);
    set_wall_clock(today);
    good.shutdown();
    intercepted.shutdown();
}

#[test]
fn danger_accept_any_certificate_reaches_an_unverifiable_service() {
    let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_wall_clock(u32::try_from(now().0 / 1000).unwrap());
    let (svc, _dir) = server(Some(TlsSource::ForeignCa));
    let ca = svc.ca_cert_der().unwrap();
    let settings = TlsSettings {
        server_name: "localhost",
        ca_der: &ca,
        danger_accept_any_certificate: true,
        client: None,
    };
    full_cycle(&svc, &Path::Https(svc.https_addr().unwrap(), settings));
    svc.shutdown();
}

/// A CONNECT proxy requiring `user:secret`, piping bytes both ways once the tunnel is up.
fn proxy() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(mut client) = client else { continue };
            thread::spawn(move || {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if client.read(&mut byte).unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).to_string();
                // base64("user:secret")
                if !head.contains("Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n") {
                    let _ = client.write_all(
                        b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"lab\"\r\nContent-Length: 0\r\n\r\n",
                    );
                    return;
                }
                let target = head.split_whitespace().nth(1).unwrap().to_string();
                let Ok(upstream) = TcpStream::connect(&target) else {
                    let _ =
                        client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
                    return;
                };
                client
                    .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    .unwrap();
                let (mut c2, mut u2) = (client.try_clone().unwrap(), upstream.try_clone().unwrap());
                let (mut c1, mut u1) = (client, upstream);
                thread::spawn(move || {
                    let _ = std::io::copy(&mut u2, &mut c2);
                });
                let _ = std::io::copy(&mut c1, &mut u1);
            });
        }
    });
    addr
}

#[test]
fn https_through_a_connect_proxy_with_basic_credentials() {
    let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_wall_clock(u32::try_from(now().0 / 1000).unwrap());
    let (svc, _dir) = server(Some(TlsSource::Generate));
    let proxy = proxy();
    let target = svc.https_addr().unwrap().to_string();
    let tunnel = |credentials: Option<(&str, &str)>| {
        let mut s = FromStd::new(TcpStream::connect(proxy).unwrap());
        s.inner_mut()
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        connect_tunnel(&mut s, &target, credentials).map(|()| s)
    };
    assert_eq!(tunnel(None).err(), Some(Code::ProxyAuthRequired));
    assert_eq!(
        tunnel(Some(("user", "wrong"))).err(),
        Some(Code::ProxyAuthRequired)
    );
    let s = tunnel(Some(("user", "secret"))).unwrap();

    // TLS inside the tunnel, the server checked end to end.
    let ca = svc.ca_cert_der().unwrap();
    let mut dev = device(&svc);
    let token = svc.mint_token("Lab", 1, 30).unwrap();
    dev.handle_command(
        now(),
        Command::EstablishTrust {
            token: &token,
            scope: Scope::Local,
            force: false,
        },
    )
    .unwrap();
    let mut tx = vec![0u8; 16 * 1024];
    let t = dev.poll_transmit(now(), &mut tx).unwrap();
    let mut rx = vec![0u8; 32 * 1024];
    let settings = TlsSettings {
        server_name: "localhost",
        ca_der: &ca,
        danger_accept_any_certificate: false,
        client: None,
    };
    let r = https_post(s, settings, &tx[..t.len], &mut rx).unwrap();
    assert_eq!(r.status, 200);
    dev.handle_response(now(), &rx[r.body]).unwrap();
    assert!(dev.trust().is_installed());
    svc.shutdown();
}

/// A CA, a `localhost` server certificate and a device certificate for `device`'s key.
struct Pki {
    ca: Vec<u8>,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: rustls::pki_types::PrivateKeyDer<'static>,
    device_cert: Vec<u8>,
}

fn pki(name: &str, device: &rcgen::KeyPair) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, name);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let mut dev = CertificateParams::new(Vec::<String>::new()).unwrap();
    dev.distinguished_name
        .push(DnType::CommonName, "C9800-CL-K9 9PJK8D70CNB");
    let dev = dev.signed_by(device, &ca).unwrap();
    Pki {
        ca: ca.der().to_vec(),
        server_chain: vec![server.der().clone()],
        server_key: rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
        device_cert: dev.der().to_vec(),
    }
}

/// The device key inside an rcgen P-256 key pair: the 32-byte private key of its PKCS#8 form.
fn software_key(kp: &rcgen::KeyPair) -> slup_core::crypto::SoftwareSigner {
    let der = kp.serialize_der();
    let at = der.windows(2).position(|w| w == [0x04, 0x20]).unwrap() + 2;
    let secret: [u8; 32] = der[at..at + 32].try_into().unwrap();
    let key = slup_core::crypto::SoftwareSigner::from_secret_bytes(&secret).unwrap();
    use slup_core::crypto::Signer as _;
    assert_eq!(&key.public_key().sec1()[..], kp.public_key_raw());
    key
}

/// A TLS server on loopback that demands a client certificate from `roots`, answers one
/// request with `{}`, and reports whether the handshake succeeded.
fn client_auth_server(pki: &Pki, roots_der: &[u8]) -> (SocketAddr, thread::JoinHandle<bool>) {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(roots_der.to_vec().into()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        std::sync::Arc::new(roots),
        provider.clone(),
    )
    .build()
    .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain.clone(), pki.server_key.clone_key())
        .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut conn = rustls::ServerConnection::new(std::sync::Arc::new(config)).unwrap();
        while conn.is_handshaking() {
            if conn.complete_io(&mut tcp).is_err() {
                return false;
            }
        }
        let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && tls.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let _ = tls.write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
        );
        let _ = tls.flush();
        true
    });
    (addr, handle)
}

#[test]
fn a_service_that_asks_for_a_client_certificate_gets_the_device_one() {
    let _clock = CLOCK.lock().unwrap_or_else(|e| e.into_inner());
    set_wall_clock(u32::try_from(now().0 / 1000).unwrap());
    let device = rcgen::KeyPair::generate().unwrap();
    let key = software_key(&device);
    let lab = pki("lab CA", &device);
    let attempt = |client: Option<ClientIdentity<'_>>, roots: &[u8]| {
        let (addr, server) = client_auth_server(&lab, roots);
        let settings = TlsSettings {
            server_name: "localhost",
            ca_der: &lab.ca,
            danger_accept_any_certificate: false,
            client,
        };
        let mut rx = vec![0u8; 1024];
        let stream = FromStd::new(TcpStream::connect(addr).unwrap());
        let r = https_post(stream, settings, b"{}", &mut rx).map(|r| r.status);
        (r, server.join().unwrap())
    };
    let identity = ClientIdentity {
        cert_der: &lab.device_cert,
        key: &key,
    };
    // The device presents its certificate, signed by the CA the service trusts.
    assert_eq!(attempt(Some(identity), &lab.ca), (Ok(200), true));
    // Without one, or with one the service's CA did not sign, the handshake fails.
    let (r, accepted) = attempt(None, &lab.ca);
    assert!(r.is_err() && !accepted, "{r:?}");
    let other = pki("other CA", &rcgen::KeyPair::generate().unwrap());
    let (r, accepted) = attempt(Some(identity), &other.ca);
    assert!(r.is_err() && !accepted, "{r:?}");
}
