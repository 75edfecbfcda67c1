//! `slup demo`: a license service and a simulated Catalyst 9800-CL on this machine, talking
//! over real HTTPS, through the whole life the seed describes: trust with an ID token, APs
//! joining and leaving, usage reports and their ACK; then the three `show license` views.

use std::fmt::Write as _;
use std::time::Instant;

use rand_core::OsRng;
use slup_core::crypto::PublicKey;
use slup_core::engine::config::{Config, TransportMode};
use slup_core::engine::render;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::types::{Scope, Udi};
use slup_host::driver::{Exchange, Outcome, Sink};
use slup_host::{Clock, Driver, HttpConfig, HttpTransport, Roots, SystemClock};
use slup_server::{Server, ServerConfig};

use crate::fail::CliError;

/// The simulated controller (the seed's platform, a made-up serial number).
pub const PID: &str = "C9800-CL-K9";
/// Its serial number, invented for the demo.
pub const SERIAL: &str = "9DEMO98CL01";
/// IOS-XE release announced in reports.
pub const SOFTWARE_VERSION: &str = "17.09.02";
/// The controller's ISO 19770-2 software tag.
pub const SOFTWARE_TAG: &str = "regid.2018-05.com.cisco.WLC_9500C,1.0";
/// The license each joined access point uses (DNA Advantage for wireless).
pub const AP_TAG: &str =
    "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

/// Access points of the story: model and serial number (made up).
const APS: [(&str, &str); 4] = [
    ("C9120AXI-E", "FGL2401A0B1"),
    ("C9120AXI-E", "FGL2401A0B2"),
    ("C9130AXI-E", "FJC2402Z0C3"),
    ("C9115AXI-E", "FOC2403X0D4"),
];

struct Printer {
    out: String,
}

impl Sink for Printer {
    fn event(&mut self, e: &slup_core::diag::event::Event) {
        let _ = writeln!(self.out, "  {}", e.line());
    }
    fn exchange(&mut self, x: &Exchange) {
        let path = x
            .url
            .find("//")
            .and_then(|i| x.url.get(i + 2..))
            .and_then(|r| r.find('/').map(|j| &r[j..]))
            .unwrap_or("");
        let verdict = match &x.outcome {
            Outcome::Applied => format!(
                "HTTP {}, answer verified and applied",
                x.http_status.unwrap_or(0)
            ),
            Outcome::Refused(c) => format!("answer refused: {c}"),
            Outcome::Failed(e) => format!("no answer: {e}"),
        };
        let _ = writeln!(
            self.out,
            "  -> {} ({} bytes) POST {path}: {verdict}",
            x.kind, x.sent
        );
    }
}

fn heading(out: &mut String, text: &str) {
    let _ = writeln!(out, "\n=== {text}");
}

type Device = Engine<SoftwareKeys<OsRng>, OsRng>;

/// Runs the demo; returns its whole text.
pub fn run() -> Result<String, CliError> {
    let started = Instant::now();
    let tmp = tempfile::tempdir().map_err(|e| CliError::file("temporary directory", &e))?;
    let mut cfg = ServerConfig::ephemeral(tmp.path().join("slup-server.db")).with_https();
    cfg.log = false;
    let server = Server::start(cfg).map_err(|e| {
        CliError::new(
            e.code().unwrap_or(slup_core::Code::StorageIo),
            e.to_string(),
        )
    })?;
    let mut p = Printer { out: String::new() };
    let out = &mut p.out;
    let _ = writeln!(
        out,
        "slup demo: a license service and a Catalyst 9800-CL on this machine, over real HTTPS."
    );
    let https = server.https_url().unwrap_or_default();
    let url = format!("{https}/licservice/license");
    heading(out, "The license service (slup-server, in this process)");
    let _ = writeln!(
        out,
        "  listening on {https} (smart transport endpoint /licservice/license)"
    );
    let _ = writeln!(
        out,
        "  database {} (temporary)",
        tmp.path().join("slup-server.db").display()
    );
    let token = server.mint_token("Wireless", 2, 30).map_err(|e| {
        CliError::new(
            e.code().unwrap_or(slup_core::Code::InvalidArgument),
            e.to_string(),
        )
    })?;
    let shown: String = token.chars().take(16).collect();
    let _ = writeln!(out, "  minted an ID token for smart account \"{}\", virtual account \"Wireless\": {shown}… (2 uses, 30 days)", slup_server::DEFAULT_SMART_ACCOUNT);

    let anchor = PublicKey::from_sec1(&server.trust_anchor_sec1())?;
    let mut config: Config = Config::new(PID, SERIAL, SOFTWARE_VERSION, SOFTWARE_TAG, anchor)?;
    config.set_transport(TransportMode::Smart, &url)?;
    let roots = Roots::Certificates(vec![server.ca_cert_der().unwrap_or_default().into()]);
    let http = HttpConfig {
        roots,
        ..HttpConfig::default()
    };
    let mut driver = Driver::new(HttpTransport::new(http), SystemClock);
    let mut dev: Device = Engine::new(config, SoftwareKeys(OsRng), OsRng, SystemClock.now());
    heading(
        out,
        &format!("The controller boots: PID {PID}, SN {SERIAL}, IOS-XE {SOFTWARE_VERSION}"),
    );
    let _ = writeln!(
        out,
        "  license smart transport smart\n  license smart url {url}"
    );
    let _ = writeln!(
        out,
        "  (the service's CA and public key are the device's only trust anchors)"
    );
    driver.pump(&mut dev, &mut p);

    heading(
        &mut p.out,
        "Trust: license smart trust idtoken <token> local",
    );
    let now = SystemClock.now();
    dev.handle_command(
        now,
        Command::EstablishTrust {
            token: &token,
            scope: Scope::Local,
            force: false,
        },
    )?;
    driver.pump(&mut dev, &mut p);
    if !dev.trust().is_installed() {
        return Err(CliError::new(
            slup_core::Code::NotTrusted,
            format!("trust was not installed:\n{}", p.out),
        ));
    }

    // Each AP that joins or leaves is a sub-device change for AIR-DNA-A; the count in use
    // follows the APs in service.
    let mut joined: Vec<(&str, &str)> = Vec::new();
    let aps = |p: &mut Printer,
               dev: &mut Device,
               changes: &[((&'static str, &'static str), bool)],
               joined: &mut Vec<(&'static str, &'static str)>|
     -> Result<(), CliError> {
        for (ap, join) in changes {
            let udi = Udi::new(ap.0, ap.1)?;
            dev.handle_command(
                SystemClock.now(),
                Command::Entity {
                    tag: AP_TAG,
                    udi,
                    joined: *join,
                },
            )?;
            if *join {
                joined.push(*ap);
            } else {
                joined.retain(|a| a != ap);
            }
            let verb = if *join { "joins" } else { "leaves" };
            let _ = writeln!(p.out, "  AP {} SN {} {verb}", ap.0, ap.1);
        }
        let count = u64::try_from(joined.len()).unwrap_or(u64::MAX);
        dev.handle_command(
            SystemClock.now(),
            Command::RecordUsage { tag: AP_TAG, count },
        )?;
        let _ = writeln!(p.out, "  AIR-DNA-A licenses in use: {count}");
        while let Some(e) = dev.poll_event() {
            p.event(&e);
        }
        Ok(())
    };
    heading(
        &mut p.out,
        "Three access points join; each uses one AIR-DNA-A license",
    );
    let first: Vec<_> = APS.iter().take(3).map(|a| (*a, true)).collect();
    aps(&mut p, &mut dev, &first, &mut joined)?;

    heading(
        &mut p.out,
        "Report: license smart sync all (usage out, ACK back)",
    );
    dev.handle_command(SystemClock.now(), Command::SyncNow)?;
    driver.pump(&mut dev, &mut p);

    heading(
        &mut p.out,
        "One AP leaves, another joins; the next report carries both changes",
    );
    aps(
        &mut p,
        &mut dev,
        &[(APS[1], false), (APS[3], true)],
        &mut joined,
    )?;
    dev.handle_command(SystemClock.now(), Command::SyncNow)?;
    driver.pump(&mut dev, &mut p);

    let now = SystemClock.now();
    let mut views = String::new();
    type View = fn(&Device, slup_core::types::Timestamp, &mut String) -> std::fmt::Result;
    let shows: [(&str, View); 3] = [
        ("show license status", |d, t, w| render::status(d, t, w)),
        ("show license air entities summary", |d, t, w| {
            render::air_entities_summary(d, t, w)
        }),
        ("show license history message", |d, t, w| {
            render::history_message(d, t, w)
        }),
    ];
    for (cmd, f) in shows {
        let _ = writeln!(views, "\n=== {SERIAL}# {cmd}\n");
        f(&dev, now, &mut views)
            .map_err(|_| CliError::new(slup_core::Code::BufferTooSmall, "rendering"))?;
    }
    p.out.push_str(&views);
    server.shutdown();
    let _ = writeln!(
        p.out,
        "\n=== Done in {:.1} s: the service stopped and its temporary database was removed.",
        started.elapsed().as_secs_f64()
    );
    Ok(p.out)
}
