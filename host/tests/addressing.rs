//! Discovery and addressing on loopback: IPv4 and IPv6 literals, names with several
//! addresses tried in order, `cslu-local` for CSLU mode without a URL, the source address
//! bound before connecting, and the seed's two identical `COMM_FAILED` logs told apart.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use common::faults::{closed_port, Blackhole};
use common::lab::{Device, Lab};
use rand_core::OsRng;
use slup_core::diag::event::EventKind;
use slup_core::diag::MessageKind;
use slup_core::engine::config::{TransportMode, DEFAULT_CSLU_URL};
use slup_core::engine::render;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::types::Scope;
use slup_core::Code;
use slup_host::driver::{Outcome, Recorder};
use slup_host::transport::Transport;
use slup_host::{
    Clock, Driver, HostError, HttpConfig, HttpTransport, Resolver, Source, SystemClock,
};

/// The IPv6 loopback, or why this machine has none.
fn ipv6_loopback() -> Result<TcpListener, String> {
    TcpListener::bind("[::1]:0").map_err(|e| format!("no IPv6 loopback (binding [::1]: {e})"))
}

/// Answers one request on `l` with 200 and `{}`; returns the peer address it saw.
fn answer_once(l: TcpListener) -> JoinHandle<SocketAddr> {
    std::thread::spawn(move || {
        let (mut s, peer) = l.accept().unwrap();
        let mut req = Vec::new();
        let mut b = [0u8; 4096];
        while !req.ends_with(b"{}") {
            let n = s.read(&mut b).unwrap();
            assert!(n > 0, "closed before the request ended");
            req.extend_from_slice(&b[..n]);
        }
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
            .unwrap();
        peer
    })
}

fn quick(resolver: Resolver, source: Source) -> HttpConfig {
    HttpConfig {
        connect_timeout: Duration::from_millis(400),
        exchange_timeout: Duration::from_secs(2),
        resolver,
        source,
        ..HttpConfig::default()
    }
}

fn post(url: &str, config: HttpConfig) -> Result<u16, HostError> {
    let mut body = Vec::new();
    HttpTransport::new(config)
        .post(url, b"{}", &mut body)
        .map(|h| h.status)
}

#[test]
fn ipv4_and_ipv6_literals_reach_the_service() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://127.0.0.1:{}/cslu/v1/pi",
        l.local_addr().unwrap().port()
    );
    let h = answer_once(l);
    assert_eq!(post(&url, quick(Resolver::system(), Source::Auto)), Ok(200));
    assert!(h.join().unwrap().is_ipv4());

    let l = match ipv6_loopback() {
        Ok(l) => l,
        Err(why) => {
            println!("SKIPPED the IPv6 half: {why}");
            return;
        }
    };
    let url = format!("http://[::1]:{}/cslu/v1/pi", l.local_addr().unwrap().port());
    let h = answer_once(l);
    assert_eq!(post(&url, quick(Resolver::system(), Source::Auto)), Ok(200));
    assert_eq!(h.join().unwrap().ip(), IpAddr::V6(Ipv6Addr::LOCALHOST));
}

#[test]
fn a_name_tries_each_address_in_order_and_reports_the_last_failure() {
    let v6 = match ipv6_loopback() {
        Ok(l) => Some(l),
        Err(why) => {
            println!("SKIPPED the IPv6 addresses: {why}");
            None
        }
    };
    // The name's first address refuses, the second answers.
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let dead = Ipv4Addr::new(127, 0, 0, 1);
    let refused_port = closed_port();
    let first = if v6.is_some() {
        // Nothing listens on [::1]:port (we only took the IPv4 port).
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))
    };
    let r = Resolver::system().with_host("svc.lab", &[first, IpAddr::V4(dead)]);
    let h = answer_once(l);
    let url = format!("http://svc.lab:{port}/cslu/v1/pi");
    assert_eq!(post(&url, quick(r, Source::Auto)), Ok(200));
    h.join().unwrap();

    // Both refuse: the code is the last one's, the detail names both addresses.
    let r = Resolver::system().with_host("svc.lab", &[first, IpAddr::V4(dead)]);
    let e = post(
        &format!("http://svc.lab:{refused_port}/"),
        quick(r, Source::Auto),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::ConnectRefused, "{e}");
    assert!(
        e.detail
            .starts_with(&format!("127.0.0.1:{refused_port}: connection refused")),
        "{e}"
    );
    assert!(e.detail.contains("1 address(es) tried before"), "{e}");

    // A blackhole last: the timeout is what is reported, after the refusal.
    let hole = Blackhole::start();
    let r = Resolver::system().with_host("svc.lab", &[first, IpAddr::V4(dead)]);
    let e = post(
        &format!("http://svc.lab:{}/", hole.port),
        quick(r, Source::Auto),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::ConnectTimeout, "{e}");
    assert!(e.detail.contains("no answer to the connect"), "{e}");
    assert!(e.detail.contains("connection refused"), "{e}");
    drop(v6);
}

#[test]
fn the_source_address_is_bound_before_connecting() {
    // Any 127/8 address is this host's loopback: the service must see the one we chose.
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = answer_once(l);
    let src = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        post(&url, quick(Resolver::system(), Source::Address(src))),
        Ok(200)
    );
    assert_eq!(h.join().unwrap().ip(), src);

    // The platform's hook chooses per peer (here: per family).
    let l = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let h = answer_once(l);
    let hook: slup_host::connect::SourceHook = Arc::new(|peer: SocketAddr| {
        Some(if peer.is_ipv4() {
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9))
        } else {
            IpAddr::V6(Ipv6Addr::LOCALHOST)
        })
    });
    let url = format!("http://127.0.0.1:{port}/");
    assert_eq!(
        post(&url, quick(Resolver::system(), Source::Hook(hook))),
        Ok(200)
    );
    assert_eq!(
        h.join().unwrap().ip(),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 9))
    );

    // An address this host does not have, and one of the other family, are told as such.
    let e = post(
        &url,
        quick(
            Resolver::system(),
            Source::Address("192.0.2.55".parse().unwrap()),
        ),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    assert!(
        e.detail
            .contains("192.0.2.55 is not an address of this host"),
        "{e}"
    );
    let e = post(
        &url,
        quick(
            Resolver::system(),
            Source::Address(IpAddr::V6(Ipv6Addr::LOCALHOST)),
        ),
    )
    .unwrap_err();
    assert_eq!(e.code, Code::InvalidArgument, "{e}");
    assert!(e.detail.contains("other IP family"), "{e}");
}

/// A device in CSLU mode without a URL.
fn cslu_device(lab: &Lab) -> Device {
    let mut cfg = lab.config(&lab.serial(), "");
    cfg.set_transport(TransportMode::Cslu, "").unwrap();
    assert_eq!(cfg.effective_url(), Some(DEFAULT_CSLU_URL));
    Engine::new(cfg, SoftwareKeys(OsRng), OsRng, SystemClock.now())
}

#[test]
fn cslu_mode_without_a_url_finds_cslu_local() {
    // The default URL names port 8182: this test needs it free on loopback.
    if let Err(e) = TcpListener::bind("127.0.0.1:8182") {
        println!("SKIPPED: port 8182 (the CSLU default) is taken on this machine: {e}");
        return;
    }
    // Without a record for cslu-local the device says so, in the COMM_FAILED event itself.
    let lab = Lab::start(|c| {
        // The CSLU port of the default URL, on loopback.
        c.http = Some(SocketAddr::from(([127, 0, 0, 1], 8182)));
        c.https = None;
    });
    let mut dev = cslu_device(&lab);
    dev.handle_command(
        SystemClock.now(),
        Command::EstablishTrust {
            token: &lab.token,
            scope: Scope::Local,
            force: false,
        },
    )
    .unwrap();
    let no_dns = Resolver {
        hosts: Vec::new(),
        dns: false,
    };
    let mut d = Driver::new(HttpTransport::new(quick(no_dns, Source::Auto)), SystemClock);
    let mut sink = Recorder::default();
    d.exchange(&mut dev, &mut sink).unwrap();
    let failed = sink
        .events
        .iter()
        .find(|e| {
            matches!(
                e.kind,
                EventKind::CommFailed {
                    cause: Code::DnsFailure,
                    ..
                }
            )
        })
        .unwrap_or_else(|| panic!("{:?}", sink.events));
    assert!(
        failed.to_string().contains("cslu-local: no DNS server"),
        "{failed}"
    );

    // With a host entry (IPv6 first, where nothing listens), the device reaches the CSLU.
    let mut dev = cslu_device(&lab);
    dev.handle_command(
        SystemClock.now(),
        Command::EstablishTrust {
            token: &lab.token,
            scope: Scope::Local,
            force: false,
        },
    )
    .unwrap();
    let hosts = Resolver::system().with_host(
        "cslu-local",
        &[
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        ],
    );
    let mut d = Driver::new(HttpTransport::new(quick(hosts, Source::Auto)), SystemClock);
    let mut sink = Recorder::default();
    d.pump(&mut dev, &mut sink);
    assert!(dev.trust().is_installed(), "{:?}", sink.exchanges);
    assert!(sink
        .exchanges
        .iter()
        .all(|x| x.outcome == Outcome::Applied && x.url == DEFAULT_CSLU_URL));
    assert!(sink.exchanges.iter().any(|x| x.kind == MessageKind::Hello));
}

#[test]
fn the_seeds_two_comm_failed_logs_come_out_different() {
    let lab = Lab::start(|_| {});
    let hole = Blackhole::start();
    let url = format!(
        "https://smartreceiver.cisco.com:{}/licservice/license",
        hole.port
    );
    // 1. No DNS server defined.
    let no_dns = Resolver {
        hosts: Vec::new(),
        dns: false,
    };
    // 2. DNS works (the name resolves), but nothing gets through to the service.
    let dns_ok = Resolver {
        hosts: vec![(
            "smartreceiver.cisco.com".into(),
            vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        )],
        dns: false,
    };
    let mut lines = Vec::new();
    let mut histories = Vec::new();
    for (resolver, want) in [(no_dns, Code::DnsFailure), (dns_ok, Code::ConnectTimeout)] {
        let mut dev: Device = Engine::new(
            lab.config(&lab.serial(), &url),
            SoftwareKeys(OsRng),
            OsRng,
            SystemClock.now(),
        );
        dev.handle_command(
            SystemClock.now(),
            Command::EstablishTrust {
                token: &lab.token,
                scope: Scope::Local,
                force: false,
            },
        )
        .unwrap();
        let mut d = Driver::new(
            HttpTransport::new(quick(resolver, Source::Auto)),
            SystemClock,
        );
        let mut sink = Recorder::default();
        let x = d.exchange(&mut dev, &mut sink).unwrap();
        assert!(
            matches!(&x.outcome, Outcome::Failed(e) if e.code == want),
            "{x:?}"
        );
        let ev = sink
            .events
            .iter()
            .find(|e| matches!(e.kind, EventKind::CommFailed { .. }))
            .unwrap();
        assert_eq!(ev.kind.cause(), Some(want));
        lines.push(ev.to_string());
        let mut h = String::new();
        render::history_message(&dev, SystemClock.now(), &mut h).unwrap();
        assert!(
            h.contains(&format!("<no reply: E{} {}", want.number(), want.name())),
            "{h}"
        );
        histories.push(h);
    }
    println!("no DNS server:           {}", lines[0]);
    println!("DNS but no Internet:     {}", lines[1]);
    assert_ne!(lines[0], lines[1]);
    assert!(lines[0].contains("E1300 DnsFailure") && lines[0].contains("no DNS server"));
    assert!(lines[1].contains("E1302 ConnectTimeout") && lines[1].contains("127.0.0.1:"));
}
