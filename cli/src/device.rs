//! `slup device …`: a host device whose configuration and licensing state live in a
//! directory. Each invocation boots the engine from the directory's records, carries out one
//! command (talking to the service when the command or the schedule calls for it), and saves
//! what changed, atomically, before anything leaves the device.

use std::fmt::Write as _;
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use rand_core::OsRng;
use serde::{Deserialize, Serialize};
use slup_core::diag::event::{Event, EventKind};
use slup_core::engine::config::{Config, TransportMode};
use slup_core::engine::render;
use slup_core::engine::reports::ReportState;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine, Outcome as EngineOutcome};
use slup_core::types::{Role, Scope, Timestamp, Udi};
use slup_core::Code;
use slup_host::driver::{Exchange, Outcome, Sink};
use slup_host::{
    persist, store, Clock, Driver, FileStore, HttpConfig, HttpTransport, Proxy, Resolver, Roots,
    Source, SystemClock,
};

use crate::fail::CliError;

type Device = Engine<SoftwareKeys<OsRng>, OsRng>;

const CONFIG: &str = "device.json";
const CA: &str = "ca";
const LAST_HISTORY: &str = "last-history";
/// Request and usage-file buffer.
const BUF: usize = slup_host::driver::REQUEST_BUFFER;

/// `slup device [--dir DIR] <command>`.
#[derive(Args, Debug)]
pub struct DeviceArgs {
    /// The device's state directory.
    #[arg(long, global = true, default_value = "./slup-device")]
    dir: PathBuf,
    #[command(subcommand)]
    cmd: DeviceCmd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum TransportArg {
    /// Directly to the cloud service (HTTPS).
    Smart,
    /// Through a CSLU (sends HELLO).
    Cslu,
    /// An on-prem service.
    Onprem,
    /// Air-gapped: usage leaves by file.
    Off,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ScopeArg {
    /// The active unit only.
    Local,
    /// Every unit of the HA group (one token use each).
    All,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum View {
    /// show license status
    Status,
    /// show license summary
    Summary,
    /// show license usage
    Usage,
    /// show license history message
    History,
    /// show license tech-support
    TechSupport,
    /// show license rum id all
    Rum,
    /// show license air entities summary
    Air,
}

#[derive(Subcommand, Debug)]
enum DeviceCmd {
    /// Create the device: its identity and the service's public key (its trust anchor).
    Init {
        /// Serial number of the active unit.
        #[arg(long)]
        serial: String,
        /// Product id.
        #[arg(long, default_value = "C9800-CL-K9")]
        pid: String,
        /// Serial number of an HA standby unit (same product id).
        #[arg(long)]
        standby: Option<String>,
        /// The service's public key: 130 hex digits (65-byte SEC1) or 88 base64 characters.
        #[arg(long)]
        anchor: String,
        /// Software version announced in reports.
        #[arg(long, default_value = "17.09.02")]
        software_version: String,
        /// ISO 19770-2 software tag of the product.
        #[arg(long, default_value = "regid.2018-05.com.cisco.WLC_9500C,1.0")]
        software_tag: String,
        /// Replace an existing device in this directory (its licensing state is erased).
        #[arg(long)]
        force: bool,
    },
    /// Set how the device reaches its service: transport, URL, proxy, CA.
    Configure {
        /// license smart transport …
        #[arg(long, value_enum)]
        transport: Option<TransportArg>,
        /// license smart url … (`default` for the transport's default URL)
        #[arg(long)]
        url: Option<String>,
        /// HTTP proxy `[http://][user:password@]host:port`, or `none`.
        #[arg(long)]
        proxy: Option<String>,
        /// CA certificate(s) that vouch for an HTTPS service (PEM or DER file), or `none` for
        /// the public web roots.
        #[arg(long)]
        ca: Option<String>,
        /// Seconds between usage reports.
        #[arg(long)]
        report_interval: Option<u32>,
        /// Local address connections come from (`ip http client source-interface`), or
        /// `none` for the system's choice.
        #[arg(long)]
        source: Option<String>,
        /// Host entries `NAME=ADDRESS`, tried before DNS (repeatable; replaces the list;
        /// `none` clears it), e.g. `--host cslu-local=192.0.2.10`.
        #[arg(long = "host", value_name = "NAME=ADDRESS")]
        hosts: Vec<String>,
    },
    /// license smart trust …
    Trust {
        #[command(subcommand)]
        what: TrustCmd,
    },
    /// Usage counts.
    Usage {
        #[command(subcommand)]
        what: UsageCmd,
    },
    /// Access points (sub-devices) joining and leaving.
    Ap {
        #[command(subcommand)]
        what: ApCmd,
    },
    /// license smart sync all: close open reports and report now.
    Sync {
        /// After an OK_POLL, wait up to this many seconds for the ACK.
        #[arg(long, default_value_t = 0)]
        wait: u64,
    },
    /// license smart save usage: write the signed usage file for an air-gapped transfer.
    SaveUsage {
        /// The file to write.
        file: String,
        /// Include reports already sent and waiting for their ACK.
        #[arg(long)]
        all: bool,
    },
    /// license smart import: apply the service's signed ACK file.
    Import {
        /// The ACK file.
        file: String,
    },
    /// license smart factory reset: clear trust, policy, reports and counters.
    FactoryReset,
    /// show license …
    Show {
        /// Which view.
        #[arg(value_enum)]
        view: View,
    },
}

#[derive(Subcommand, Debug)]
enum TrustCmd {
    /// license smart trust idtoken <token> local|all [force]
    Idtoken {
        /// The ID token from the service (it may start with `-`).
        #[arg(allow_hyphen_values = true)]
        token: String,
        /// Which units.
        #[arg(value_enum, default_value = "local")]
        scope: ScopeArg,
        /// Replace trust already installed.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum UsageCmd {
    /// Set the count in use of an entitlement tag.
    Record {
        /// Entitlement tag.
        tag: String,
        /// Count in use.
        count: u64,
    },
}

#[derive(Subcommand, Debug)]
enum ApCmd {
    /// An AP joins: it is listed in the next report and uses one license of `tag`.
    Join {
        /// Entitlement tag the AP uses.
        tag: String,
        /// The AP's UDI: `PID:<pid>,SN:<serial>` or `<pid>,<serial>`.
        udi: String,
    },
    /// An AP leaves.
    Leave {
        /// Entitlement tag.
        tag: String,
        /// The AP's UDI.
        udi: String,
    },
}

/// The device's configuration file.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct DeviceFile {
    pid: String,
    serial: String,
    standby: Option<String>,
    software_version: String,
    software_tag: String,
    /// The service's public key, SEC1 hex.
    anchor: String,
    transport: String,
    url: String,
    proxy: Option<String>,
    report_interval_s: Option<u32>,
    /// Local address to connect from.
    #[serde(default)]
    source: Option<std::net::IpAddr>,
    /// Host entries, `NAME=ADDRESS`.
    #[serde(default)]
    hosts: Vec<String>,
}

/// Parses `NAME=ADDRESS`.
fn parse_host(text: &str) -> Result<(String, std::net::IpAddr), CliError> {
    text.split_once('=')
        .and_then(|(n, a)| Some((n.trim().to_string(), a.trim().parse().ok()?)))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| {
            CliError::new(
                Code::InvalidArgument,
                format!("host entry {text:?}: write NAME=ADDRESS"),
            )
        })
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Prints events and exchanges as they happen, and keeps them.
#[derive(Default)]
struct Console {
    events: Vec<Event>,
    exchanges: Vec<Exchange>,
}

impl Sink for Console {
    fn event(&mut self, e: &Event) {
        if e.kind != EventKind::AgentReady {
            println!("{}", e.line());
        }
        self.events.push(*e);
    }
    fn exchange(&mut self, x: &Exchange) {
        let verdict = match &x.outcome {
            Outcome::Applied => format!("HTTP {}, applied", x.http_status.unwrap_or(0)),
            Outcome::Refused(e) => format!("answer refused: {e}"),
            Outcome::Failed(e) => format!("failed: {e}"),
        };
        println!("-> {} to {}: {verdict}", x.kind, x.url);
        self.exchanges.push(x.clone());
    }
    fn storage_error(&mut self, e: &slup_host::HostError) {
        eprintln!("error saving the device state: {e}");
    }
}

impl Console {
    /// The first failure of this invocation's exchanges, as an error.
    fn failure(&self) -> Option<CliError> {
        for x in &self.exchanges {
            match &x.outcome {
                Outcome::Failed(e) => {
                    return Some(CliError::new(e.code, format!("{}: {}", x.kind, e.detail)))
                }
                Outcome::Refused(e) => {
                    return Some(CliError::new(
                        e.code,
                        format!("{}: the answer was refused ({})", x.kind, e.detail),
                    ))
                }
                Outcome::Applied => {}
            }
        }
        self.events.iter().find_map(|e| match e.kind {
            EventKind::CommFailed { cause, .. } | EventKind::TrustCodeInstallFailed { cause } => {
                Some(CliError::new(cause, e.detail.as_str().to_string()))
            }
            _ => None,
        })
    }
}

struct Ctx {
    store: FileStore,
    dev: Device,
    driver: Driver<HttpTransport, SystemClock>,
    console: Console,
}

fn read_config(store: &FileStore) -> Result<DeviceFile, CliError> {
    let bytes = store.read(CONFIG)?.ok_or_else(|| {
        CliError::new(
            Code::InvalidArgument,
            format!(
                "no device in {}: run `slup device --dir {} init --serial … --anchor …` first",
                store.dir().display(),
                store.dir().display()
            ),
        )
    })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| CliError::new(Code::RecordCorrupt, format!("{CONFIG}: {e}")))
}

fn write_config(store: &FileStore, f: &DeviceFile) -> Result<(), CliError> {
    let bytes = serde_json::to_vec_pretty(f)
        .map_err(|e| CliError::new(Code::InvalidArgument, e.to_string()))?;
    store.write(CONFIG, &bytes)?;
    Ok(())
}

fn transport_mode(s: &str) -> TransportMode {
    match s {
        "cslu" => TransportMode::Cslu,
        "onprem" => TransportMode::OnPrem,
        "off" => TransportMode::Off,
        _ => TransportMode::Smart,
    }
}

fn engine_config(f: &DeviceFile) -> Result<Config, CliError> {
    let anchor = crate::decode::parse_key(&f.anchor)?;
    let mut c: Config = Config::new(
        &f.pid,
        &f.serial,
        &f.software_version,
        &f.software_tag,
        anchor,
    )?;
    if let Some(s) = &f.standby {
        c.add_member(Role::Standby, &f.pid, s)?;
    }
    c.set_transport(transport_mode(&f.transport), &f.url)?;
    if let Some(s) = f.report_interval_s {
        c.intervals.report_s = s;
    }
    Ok(c)
}

fn boot(dir: &std::path::Path) -> Result<Ctx, CliError> {
    let store = FileStore::open(dir)?;
    let file = read_config(&store)?;
    let config = engine_config(&file)?;
    let roots = match store.read(CA)? {
        Some(ca) => Roots::from_pem_or_der(&ca)?,
        None => Roots::WebPki,
    };
    let proxy = file.proxy.as_deref().map(Proxy::parse).transpose()?;
    let mut resolver = Resolver::system();
    for h in &file.hosts {
        let (name, addr) = parse_host(h)?;
        resolver = resolver.with_host(&name, &[addr]);
    }
    let http = HttpConfig {
        roots,
        proxy,
        resolver,
        source: file.source.map_or(Source::Auto, Source::Address),
        ..HttpConfig::default()
    };
    let now = SystemClock.now();
    let mut dev: Device = Engine::new(config, SoftwareKeys(OsRng), OsRng, now);
    let mut console = Console::default();
    for (r, e) in persist::restore(&mut dev, &store, now, persist::Restart::Resume) {
        eprintln!("warning: the {} record was not restored: {e}", r.name());
    }
    while let Some(e) = dev.poll_event() {
        console.event(&e);
    }
    let driver = Driver::new(HttpTransport::new(http), SystemClock).with_store(store.clone());
    Ok(Ctx {
        store,
        dev,
        driver,
        console,
    })
}

impl Ctx {
    fn now(&self) -> Timestamp {
        SystemClock.now()
    }

    fn command(&mut self, c: Command<'_>) -> Result<EngineOutcome, CliError> {
        let r = self.dev.handle_command(self.now(), c);
        while let Some(e) = self.dev.poll_event() {
            self.console.event(&e);
        }
        Ok(r?)
    }

    /// Saves every changed record, and the message history for `show history`.
    fn save(&mut self) -> Result<(), CliError> {
        persist::save(&mut self.dev, &self.store)?;
        if self.dev.history().iter().next().is_some() {
            let mut text = format!(
                "(message history of the last command that exchanged messages, saved {})\n",
                slup_core::diag::time::DateTime {
                    ts: self.now(),
                    zone: slup_core::diag::time::Zone::UTC
                }
            );
            let _ = render::history_message(&self.dev, self.now(), &mut text);
            self.store.write(LAST_HISTORY, text.as_bytes())?;
        }
        Ok(())
    }

    fn pump(&mut self) {
        self.driver.pump(&mut self.dev, &mut self.console);
    }
}

fn parse_udi(text: &str) -> Result<(String, String), CliError> {
    let t = text.trim();
    let (pid, sn) = if let Some(rest) = t.strip_prefix("PID:") {
        rest.split_once(",SN:")
    } else {
        t.split_once(',')
    }
    .ok_or_else(|| {
        CliError::new(
            Code::InvalidArgument,
            format!("UDI {text:?}: write PID:<pid>,SN:<serial> or <pid>,<serial>"),
        )
    })?;
    Udi::new(pid, sn).map_err(|c| CliError::new(c, format!("UDI {text:?}")))?;
    Ok((pid.to_string(), sn.to_string()))
}

/// Runs `slup device …`.
pub fn run(args: DeviceArgs) -> Result<(), CliError> {
    let dir = args.dir;
    match args.cmd {
        DeviceCmd::Init {
            serial,
            pid,
            standby,
            anchor,
            software_version,
            software_tag,
            force,
        } => {
            let store = FileStore::open(&dir)?;
            if store.read(CONFIG)?.is_some() && !force {
                return Err(CliError::new(
                    Code::InvalidArgument,
                    format!("{} already holds a device; add --force to replace it and erase its licensing state", dir.display()),
                ));
            }
            let key = crate::decode::parse_key(&anchor)?;
            let file = DeviceFile {
                pid,
                serial,
                standby,
                software_version,
                software_tag,
                anchor: hex(key.sec1()),
                transport: "smart".into(),
                url: String::new(),
                proxy: None,
                report_interval_s: None,
                source: None,
                hosts: Vec::new(),
            };
            engine_config(&file)?;
            persist::clear(&store)?;
            store.remove(LAST_HISTORY)?;
            write_config(&store, &file)?;
            println!(
                "device PID:{},SN:{} created in {} (trust anchor key id {})",
                file.pid,
                file.serial,
                dir.display(),
                key.key_id().0
            );
            Ok(())
        }
        DeviceCmd::Configure {
            transport,
            url,
            proxy,
            ca,
            report_interval,
            source,
            hosts,
        } => {
            let store = FileStore::open(&dir)?;
            let mut f = read_config(&store)?;
            if let Some(t) = transport {
                f.transport = format!("{t:?}").to_lowercase();
            }
            if let Some(u) = url {
                f.url = if u == "default" { String::new() } else { u };
            }
            if let Some(p) = proxy {
                f.proxy = if p == "none" {
                    None
                } else {
                    Some(Proxy::parse(&p).map(|_| p)?)
                };
            }
            if let Some(s) = report_interval {
                f.report_interval_s = Some(s);
            }
            if let Some(s) = source {
                f.source = if s == "none" {
                    None
                } else {
                    Some(s.parse().map_err(|_| {
                        CliError::new(
                            Code::InvalidArgument,
                            format!("--source {s:?}: an IP address of this host, or none"),
                        )
                    })?)
                };
            }
            if !hosts.is_empty() {
                f.hosts = if hosts.iter().any(|h| h == "none") {
                    Vec::new()
                } else {
                    for h in &hosts {
                        parse_host(h)?;
                    }
                    hosts
                };
            }
            if let Some(c) = ca {
                if c == "none" {
                    store.remove(CA)?;
                } else {
                    let bytes = std::fs::read(&c).map_err(|e| CliError::file(&c, &e))?;
                    Roots::from_pem_or_der(&bytes)?.client_config()?;
                    store.write(CA, &bytes)?;
                }
            }
            let cfg = engine_config(&f)?;
            write_config(&store, &f)?;
            println!(
                "transport {}, url {}, proxy {}, source {}, host entries {}, CA {}",
                f.transport,
                cfg.effective_url().unwrap_or("(none)"),
                f.proxy.as_deref().unwrap_or("none"),
                f.source.map_or("system".to_string(), |a| a.to_string()),
                if f.hosts.is_empty() {
                    "none".to_string()
                } else {
                    f.hosts.join(" ")
                },
                if store.read(CA)?.is_some() {
                    "configured"
                } else {
                    "public web roots"
                }
            );
            Ok(())
        }
        DeviceCmd::Trust {
            what:
                TrustCmd::Idtoken {
                    token,
                    scope,
                    force,
                },
        } => {
            let mut c = boot(&dir)?;
            let scope = match scope {
                ScopeArg::Local => Scope::Local,
                ScopeArg::All => Scope::All,
            };
            c.command(Command::EstablishTrust {
                token: &token,
                scope,
                force,
            })?;
            c.pump();
            c.save()?;
            if c.console
                .events
                .iter()
                .any(|e| e.kind == EventKind::TrustInstallSuccess)
            {
                let n = c.dev.trust().codes().count();
                println!("trust installed for {n} unit(s)");
                Ok(())
            } else {
                Err(c.console.failure().unwrap_or_else(|| {
                    CliError::new(
                        Code::NoReply,
                        "trust was not installed; the device retries on its schedule",
                    )
                }))
            }
        }
        DeviceCmd::Usage {
            what: UsageCmd::Record { tag, count },
        } => {
            let mut c = boot(&dir)?;
            c.command(Command::RecordUsage { tag: &tag, count })?;
            c.pump();
            c.save()
        }
        DeviceCmd::Ap { what } => {
            let (tag, udi, joined) = match what {
                ApCmd::Join { tag, udi } => (tag, udi, true),
                ApCmd::Leave { tag, udi } => (tag, udi, false),
            };
            let (pid, sn) = parse_udi(&udi)?;
            let mut c = boot(&dir)?;
            let u = Udi::new(&pid, &sn)?;
            c.command(Command::Entity {
                tag: &tag,
                udi: u,
                joined,
            })?;
            // Each AP in service uses one license of its tag.
            let active = c
                .dev
                .usage()
                .tags()
                .iter()
                .find(|t| t.tag.as_str() == tag)
                .map_or(0, |t| u64::from(t.entities.active_now));
            c.command(Command::RecordUsage {
                tag: &tag,
                count: active,
            })?;
            c.pump();
            c.save()?;
            println!(
                "AP PID:{pid},SN:{sn} {}; {active} in service for this tag",
                if joined { "joined" } else { "left" }
            );
            Ok(())
        }
        DeviceCmd::Sync { wait } => {
            let mut c = boot(&dir)?;
            c.command(Command::SyncNow)?;
            let until = c.now().add_millis(wait.saturating_mul(1000));
            c.driver.run_until(&mut c.dev, until, &mut c.console, |d| {
                !d.reports().iter().any(|r| r.state == ReportState::Pending)
            });
            c.save()?;
            if let Some(e) = c.console.failure() {
                return Err(e);
            }
            if c.dev
                .reports()
                .iter()
                .any(|r| r.state == ReportState::Pending)
            {
                println!("reports sent; the service answered OK_POLL and the device polls for the ACK on its schedule (sync --wait N waits)");
            }
            Ok(())
        }
        DeviceCmd::SaveUsage { file, all } => {
            let mut c = boot(&dir)?;
            let mut buf = vec![0u8; BUF];
            let r = c.dev.save_usage(c.now(), all, &mut buf);
            while let Some(e) = c.dev.poll_event() {
                c.console.event(&e);
            }
            let n = r?;
            // The file's nonce must be on the medium before the file leaves the device.
            c.save()?;
            store::write_atomic(
                std::path::Path::new(&file),
                buf.get(..n).unwrap_or_default(),
            )?;
            println!("usage written to {file} ({n} bytes); have the service acknowledge it, then `slup device import <ack file>`");
            Ok(())
        }
        DeviceCmd::Import { file } => {
            let bytes = std::fs::read(&file).map_err(|e| CliError::file(&file, &e))?;
            let mut c = boot(&dir)?;
            let r = c.dev.import(c.now(), &bytes);
            while let Some(e) = c.dev.poll_event() {
                c.console.event(&e);
            }
            c.save()?;
            r?;
            println!("{file} imported");
            Ok(())
        }
        DeviceCmd::FactoryReset => {
            let mut c = boot(&dir)?;
            c.command(Command::FactoryReset)?;
            c.save()?;
            c.store.remove(LAST_HISTORY)?;
            println!(
                "licensing state cleared (trust, policy, reports, counters); configuration kept"
            );
            Ok(())
        }
        DeviceCmd::Show { view } => {
            let mut c = boot(&dir)?;
            c.pump();
            let now = c.now();
            let mut out = String::new();
            let r = match view {
                View::Status => render::status(&c.dev, now, &mut out),
                View::Summary => render::summary(&c.dev, now, &mut out),
                View::Usage => render::usage(&c.dev, now, &mut out),
                View::TechSupport => render::tech_support(&c.dev, now, &mut out),
                View::Rum => render::rum_id_all(&c.dev, now, &mut out),
                View::Air => render::air_entities_summary(&c.dev, now, &mut out),
                View::History => {
                    if c.dev.history().iter().next().is_some() {
                        render::history_message(&c.dev, now, &mut out)
                    } else {
                        let saved = c.store.read(LAST_HISTORY)?.unwrap_or_default();
                        let _ = write!(out, "{}", String::from_utf8_lossy(&saved));
                        Ok(())
                    }
                }
            };
            r.map_err(|_| CliError::new(Code::BufferTooSmall, "rendering"))?;
            c.save()?;
            print!("{out}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn udis_parse_in_both_spellings() {
        assert_eq!(
            parse_udi("PID:C9120AXI-E,SN:FGL2401A0B1").unwrap(),
            ("C9120AXI-E".into(), "FGL2401A0B1".into())
        );
        assert_eq!(
            parse_udi("C9120AXI-E,FGL2401A0B1").unwrap(),
            ("C9120AXI-E".into(), "FGL2401A0B1".into())
        );
        assert_eq!(
            parse_udi("C9120AXI-E").unwrap_err().code,
            Some(Code::InvalidArgument)
        );
    }
}
