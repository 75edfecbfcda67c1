//! Reachability of a license service, step by step, the way the seed says to test it ("telnet
//! 443, not ping"): DNS, TCP connect, the proxy's `CONNECT`, TLS (with the presented chain
//! summarised), then one HTTP request. Each step has its own verdict and timing; the probe
//! stops at the first failure, whose stable code says where the path breaks.
//!
//! The HTTP step POSTs an empty JSON object. A license service refuses it with its own error
//! body, which proves that the service itself answered; an HTML page or a bare status means
//! something else did.

use std::time::{Duration, Instant};

use slup_core::msg::response::ErrorBody;
use slup_core::Code;

use crate::connect::Connected;
use crate::error::HostError;
use crate::http::{Deadline, Head};
use crate::transport::{status_text, Conn, HttpConfig, HttpTransport};
use crate::url::{host_port, Url};

/// One step of a probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// `dns`, `tcp`, `proxy`, `tls` or `http`.
    pub name: &'static str,
    /// How long it took.
    pub elapsed: Duration,
    /// What it found, or why it failed.
    pub verdict: Result<String, HostError>,
    /// Further lines (addresses tried, certificates presented).
    pub lines: Vec<String>,
}

/// A whole probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// The URL probed.
    pub url: String,
    /// The steps run, in order; the last one failed if any did.
    pub steps: Vec<Step>,
}

impl Report {
    /// The failure that stopped the probe.
    pub fn failure(&self) -> Option<&HostError> {
        self.steps.iter().find_map(|s| s.verdict.as_ref().err())
    }
}

/// Runs `f` as step `name`, timed; `Err` stops the probe.
fn step<T>(
    steps: &mut Vec<Step>,
    name: &'static str,
    f: impl FnOnce(&mut Vec<String>) -> Result<(T, String), HostError>,
) -> Option<T> {
    let started = Instant::now();
    let mut lines = Vec::new();
    let r = f(&mut lines);
    let elapsed = started.elapsed();
    let (value, verdict) = match r {
        Ok((v, text)) => (Some(v), Ok(text)),
        Err(e) => (None, Err(e)),
    };
    steps.push(Step {
        name,
        elapsed,
        verdict,
        lines,
    });
    value
}

/// Probes `url` with `config` (its proxy, CA roots, resolver, source address and deadlines).
pub fn probe(url: &str, config: HttpConfig) -> Report {
    let mut steps = Vec::new();
    let report = |steps| Report {
        url: url.to_string(),
        steps,
    };
    let parsed = match Url::parse(url) {
        Ok(u) => u,
        Err(e) => {
            steps.push(Step {
                name: "url",
                elapsed: Duration::ZERO,
                verdict: Err(e),
                lines: Vec::new(),
            });
            return report(steps);
        }
    };
    let mut t = HttpTransport::new(config);
    let proxy = t.config().proxy.clone();
    let (host, port, via_proxy) = match &proxy {
        None => (parsed.host.clone(), parsed.port, false),
        Some(p) => (p.host.clone(), p.port, true),
    };

    let Some(addrs) = step(&mut steps, "dns", |lines| {
        let addrs = t.resolve(&host, port, via_proxy)?;
        if via_proxy {
            lines.push(format!("the proxy resolves {} itself", parsed.host));
        }
        let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
        let who = if via_proxy { "proxy " } else { "" };
        let text = if host.parse::<std::net::IpAddr>().is_ok() {
            format!("{who}{host} (IP literal, no lookup)")
        } else {
            format!("{who}{host} resolved: {}", list.join(", "))
        };
        Ok((addrs, text))
    }) else {
        return report(steps);
    };

    let deadline = Deadline::after(t.config().connect_timeout + t.config().exchange_timeout);
    let Some(tcp) = step(&mut steps, "tcp", |lines| {
        let c = t.connect(&addrs, via_proxy, &host_port(&host, port), deadline)?;
        lines.extend(c.failed.iter().map(|f| format!("tried first: {f}")));
        let Connected {
            stream,
            peer,
            local,
            ..
        } = c;
        let from = local.map_or_else(String::new, |l| format!(" from {l}"));
        Ok((stream, format!("port {} open at {peer}{from}", peer.port())))
    }) else {
        return report(steps);
    };

    let deadline = Deadline::after(t.config().exchange_timeout);
    let mut tcp = tcp;
    if let (Some(p), true) = (&proxy, parsed.tls) {
        let ok = step(&mut steps, "proxy", |_| {
            t.tunnel(&mut tcp, &parsed, p, deadline)?;
            Ok(((), format!("CONNECT {} accepted", parsed.authority())))
        });
        if ok.is_none() {
            return report(steps);
        }
    }

    let conn = if parsed.tls {
        let r = step(&mut steps, "tls", |lines| {
            let r = t.handshake(tcp, &parsed, deadline);
            let now = crate::cert::unix_now();
            for (i, c) in t.presented().iter().enumerate() {
                lines.push(format!("certificate {i}: {c} ({})", c.validity_at(now)));
            }
            let conn = r?;
            let params = conn.tls_parameters().unwrap_or_default();
            Ok((
                conn,
                format!("{params}; certificate verified for {}", parsed.host),
            ))
        });
        match r {
            Some(c) => c,
            None => return report(steps),
        }
    } else {
        Conn::Plain(tcp)
    };

    let mut conn = conn;
    step(&mut steps, "http", |_| {
        let mut body = Vec::new();
        let head = t.request(&mut conn, &parsed, b"{}", &mut body, deadline)?;
        http_verdict(&head, &body).map(|v| ((), v))
    });
    report(steps)
}

/// The HTTP step's verdict on the answer to `{}`.
fn http_verdict(head: &Head, body: &[u8]) -> Result<String, HostError> {
    let said = status_text(head, body);
    if let Ok(err) = ErrorBody::decode(body) {
        let name = Code::from_number(err.code).map_or("", |c| c.name());
        return Ok(format!(
            "HTTP {}: the license service answered with its error body (E{} {name}), as \
             expected for an empty probe request",
            head.status, err.code
        ));
    }
    match head.status {
        200..=299 => Ok(format!(
            "{said} (an answer, though not a license service's error body)"
        )),
        _ => Err(crate::driver::classify_status(head, body)),
    }
}
