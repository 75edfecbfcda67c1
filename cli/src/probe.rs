//! `slup probe <url>`: is the license service reachable from here, and if not, where does the
//! path break? DNS, TCP connect (443 by default for https: "telnet 443, not ping"), the
//! proxy's CONNECT, TLS with the presented chain, then one HTTP request; each step with its
//! verdict and timing. The first failure stops the probe and sets the exit status.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::Duration;

use clap::Args;
use slup_core::Code;
use slup_host::probe::{self, Report};
use slup_host::{HttpConfig, Proxy, Resolver, Roots, Source};

use crate::fail::CliError;

/// `slup probe <url> [--proxy …] [--ca FILE] [--source ADDR] [--host NAME=ADDR]…`.
#[derive(Args, Debug)]
pub struct ProbeArgs {
    /// The service URL, e.g. https://smartreceiver.cisco.com/licservice/license (https uses
    /// port 443 unless the URL names one).
    url: String,
    /// HTTP proxy `[http://][user:password@]host:port`.
    #[arg(long)]
    proxy: Option<String>,
    /// CA certificate(s), PEM or DER, that vouch for the service (default: the public web
    /// roots).
    #[arg(long)]
    ca: Option<String>,
    /// Local address to connect from (`ip http client source-interface`).
    #[arg(long)]
    source: Option<IpAddr>,
    /// A host entry `NAME=ADDRESS`, tried before DNS (repeatable).
    #[arg(long = "host", value_name = "NAME=ADDRESS")]
    hosts: Vec<String>,
    /// Seconds allowed for each TCP connect, and for everything after it.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

impl ProbeArgs {
    fn config(&self) -> Result<HttpConfig, CliError> {
        let roots = match &self.ca {
            Some(path) => {
                let bytes = std::fs::read(path).map_err(|e| CliError::file(path, &e))?;
                let roots = Roots::from_pem_or_der(&bytes)?;
                roots.client_config()?;
                roots
            }
            None => Roots::WebPki,
        };
        let mut resolver = Resolver::system();
        for h in &self.hosts {
            let (name, addr) = h
                .split_once('=')
                .and_then(|(n, a)| Some((n, a.parse::<IpAddr>().ok()?)))
                .ok_or_else(|| {
                    CliError::new(
                        Code::InvalidArgument,
                        format!("--host {h:?}: write NAME=ADDRESS"),
                    )
                })?;
            resolver = resolver.with_host(name, &[addr]);
        }
        let timeout = Duration::from_secs(self.timeout.max(1));
        Ok(HttpConfig {
            connect_timeout: timeout,
            exchange_timeout: timeout,
            proxy: self.proxy.as_deref().map(Proxy::parse).transpose()?,
            roots,
            resolver,
            source: self.source.map_or(Source::Auto, Source::Address),
            ..HttpConfig::default()
        })
    }
}

/// The steps a probe of `url` runs, in order.
fn planned(report: &Report, proxy: bool) -> Vec<&'static str> {
    let tls = report.url.starts_with("https://");
    let mut v = vec!["dns", "tcp"];
    if proxy && tls {
        v.push("proxy");
    }
    if tls {
        v.push("tls");
    }
    v.push("http");
    v
}

/// The report as printed.
pub fn render(report: &Report, proxy: bool) -> String {
    let mut out = format!("probe {}\n", report.url);
    for s in &report.steps {
        let ms = s.elapsed.as_millis();
        match &s.verdict {
            Ok(text) => {
                let _ = writeln!(out, "  {:<6} ok    {ms:>5} ms  {text}", s.name);
            }
            Err(e) => {
                let _ = writeln!(out, "  {:<6} FAIL  {ms:>5} ms  {}", s.name, e.code);
                let _ = writeln!(out, "                        {}", e.detail);
            }
        }
        for l in &s.lines {
            let _ = writeln!(out, "                        {l}");
        }
    }
    let done: Vec<&str> = report.steps.iter().map(|s| s.name).collect();
    for name in planned(report, proxy) {
        if !done.contains(&name) {
            let _ = writeln!(out, "  {name:<6} not run");
        }
    }
    match report.failure() {
        None => out.push_str("the license service is reachable and answers\n"),
        Some(e) => {
            let _ = writeln!(out, "stopped at the first failure: {}", e.code);
        }
    }
    out
}

/// Runs `slup probe`.
pub fn run(args: ProbeArgs) -> Result<(), CliError> {
    let config = args.config()?;
    let report = probe::probe(&args.url, config);
    crate::print(&render(&report, args.proxy.is_some()));
    match report.failure() {
        None => Ok(()),
        Some(e) => Err(CliError::new(e.code, e.detail.clone())),
    }
}
