//! `slup probe` against slup-server on loopback: a good CA, a foreign CA (interception), a
//! closed port, an unresolvable name, and a real proxy (tinyproxy) refusing a wrong password.

#[path = "../../host/tests/common/tinyproxy.rs"]
#[allow(dead_code)]
mod tinyproxy;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Output};

use slup_server::{Running, Server, ServerConfig, TlsSource};

fn slup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slup"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `slup probe args…`, requiring exit status `want`; returns stdout and stderr.
fn probe(args: &[&str], want: i32) -> (String, String) {
    let mut all = vec!["probe", "--timeout", "3"];
    all.extend_from_slice(args);
    let o = slup(&all);
    let (out, err) = (
        String::from_utf8_lossy(&o.stdout).to_string(),
        String::from_utf8_lossy(&o.stderr).to_string(),
    );
    assert_eq!(
        o.status.code(),
        Some(want),
        "slup {all:?}\n--- stdout\n{out}\n--- stderr\n{err}"
    );
    println!("$ slup {}\n{out}{err}", all.join(" "));
    (out, err)
}

fn server(tls: TlsSource) -> (tempfile::TempDir, Running, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::ephemeral(dir.path().join("slup.db"));
    cfg.https = Some((SocketAddr::from(([127, 0, 0, 1], 0)), tls));
    cfg.log = false;
    let s = Server::start(cfg).unwrap();
    // The CA the device is configured with: the service's own (for ForeignCa, the one the
    // server certificate is *not* signed by).
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, s.ca_cert_pem().unwrap()).unwrap();
    let ca = ca.to_str().unwrap().to_string();
    (dir, s, ca)
}

/// The line of step `name`.
fn step<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find(|l| l.trim_start().starts_with(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name} step in\n{out}"))
}

#[test]
fn a_reachable_service_passes_every_step() {
    let (_d, s, ca) = server(TlsSource::Generate);
    let url = format!(
        "https://localhost:{}/licservice/license",
        s.https_addr().unwrap().port()
    );
    let (out, _) = probe(&[&url, "--ca", &ca], 0);
    for name in ["dns", "tcp", "tls", "http"] {
        assert!(step(&out, name).contains(" ok "), "{name}\n{out}");
    }
    assert!(
        step(&out, "dns").contains("localhost resolved: 127.0.0.1"),
        "{out}"
    );
    assert!(
        step(&out, "tls").contains("certificate verified for localhost"),
        "{out}"
    );
    assert!(
        out.contains(
            "certificate 0: subject CN=slup-server localhost; issuer CN=slup-server test CA"
        ),
        "{out}"
    );
    assert!(out.contains("(valid now)"), "{out}");
    assert!(
        step(&out, "http").contains("the license service answered with its error body"),
        "{out}"
    );
    assert!(out.contains("the license service is reachable"), "{out}");
    // Plain HTTP: no TLS step.
    let (out, _) = probe(&[&format!("{}/cslu/v1/pi", s.http_url())], 0);
    assert!(!out.contains("tls"), "{out}");
}

#[test]
fn a_foreign_ca_stops_at_tls_and_shows_the_interceptors_chain() {
    let (_d, s, ca) = server(TlsSource::ForeignCa);
    let url = format!(
        "https://localhost:{}/licservice/license",
        s.https_addr().unwrap().port()
    );
    let (out, err) = probe(&[&url, "--ca", &ca], 4);
    assert!(step(&out, "tcp").contains(" ok "), "{out}");
    let tls = step(&out, "tls");
    assert!(
        tls.contains("FAIL") && tls.contains("E1305 TlsUnknownCa"),
        "{out}"
    );
    assert!(
        out.contains("issuer CN=slup-server foreign CA, O=slup is not a trusted CA"),
        "{out}"
    );
    assert!(
        out.contains(
            "certificate 0: subject CN=slup-server localhost; issuer CN=slup-server foreign CA"
        ),
        "{out}"
    );
    assert!(
        out.contains("certificate 1: subject CN=slup-server foreign CA, O=slup (self-signed)"),
        "{out}"
    );
    assert!(step(&out, "http").contains("not run"), "{out}");
    assert!(
        err.contains("error: E1305 TlsUnknownCa") && err.contains("hint:"),
        "{err}"
    );
}

#[test]
fn a_closed_port_fails_at_tcp_like_telnet_would() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let (out, err) = probe(
        &[&format!("https://127.0.0.1:{port}/licservice/license")],
        4,
    );
    assert!(
        step(&out, "dns").contains("127.0.0.1 (IP literal, no lookup)"),
        "{out}"
    );
    let tcp = step(&out, "tcp");
    assert!(
        tcp.contains("FAIL") && tcp.contains("E1301 ConnectRefused"),
        "{out}"
    );
    assert!(
        out.contains(&format!("127.0.0.1:{port}: connection refused")),
        "{out}"
    );
    assert!(step(&out, "tls").contains("not run"), "{out}");
    assert!(err.contains("telnet <host> 443"), "{err}");
}

#[test]
fn an_unresolvable_name_fails_at_dns() {
    let (out, err) = probe(&["https://smartreceiver.invalid/licservice/license"], 4);
    let dns = step(&out, "dns");
    assert!(
        dns.contains("FAIL") && dns.contains("E1300 DnsFailure"),
        "{out}"
    );
    assert!(out.contains("smartreceiver.invalid: DNS:"), "{out}");
    assert!(step(&out, "tcp").contains("not run"), "{out}");
    assert!(err.contains("error: E1300 DnsFailure"), "{err}");
    // The default port of https is 443: with a host entry the probe goes on to TCP 443.
    let (out, _) = probe(
        &[
            "https://smartreceiver.invalid/licservice/license",
            "--host",
            "smartreceiver.invalid=127.0.0.1",
        ],
        4,
    );
    assert!(
        step(&out, "dns").contains("smartreceiver.invalid resolved: 127.0.0.1"),
        "{out}"
    );
    assert!(out.contains("127.0.0.1:443"), "{out}");
}

#[test]
fn a_proxy_refusing_the_password_fails_at_the_proxy_step() {
    let (_d, s, ca) = server(TlsSource::Generate);
    let url = format!(
        "https://localhost:{}/licservice/license",
        s.https_addr().unwrap().port()
    );
    let px = tinyproxy::Tinyproxy::start(Some(("alice", "wonder")));
    let wrong = format!("alice:rabbit@127.0.0.1:{}", px.port);
    let (out, _) = probe(&[&url, "--ca", &ca, "--proxy", &wrong], 4);
    assert!(step(&out, "dns").contains("proxy 127.0.0.1"), "{out}");
    let p = step(&out, "proxy");
    assert!(
        p.contains("FAIL") && p.contains("E1310 ProxyAuthRequired"),
        "{out}"
    );
    assert!(step(&out, "tls").contains("not run"), "{out}");
    let good = format!("alice:wonder@127.0.0.1:{}", px.port);
    let (out, _) = probe(&[&url, "--ca", &ca, "--proxy", &good], 0);
    assert!(step(&out, "proxy").contains("CONNECT localhost:"), "{out}");
    assert!(step(&out, "tls").contains(" ok "), "{out}");
}
