//! `slup-server`: the reference license service and its operator commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use slup_core::server::store::PiId;
use slup_server::backend::Backend;
use slup_server::{
    bench, pull, Durability, Error, Faults, Server, ServerConfig, TlsSource, DEFAULT_SMART_ACCOUNT,
};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  the command failed (the message carries the stable code, e.g. E1602 InvalidArgument)
  2  bad command line
  3  the database cannot be used (E1401 newer schema, E1400 not a slup-server database, E1402 I/O)
  4  a listener or TLS could not be set up, or the device could not be reached (pull)";

/// The reference license service of slup: cloud, CSLU and on-prem endpoints on one HTTP(S)
/// server, state in one SQLite file.
#[derive(Parser, Debug)]
#[command(name = "slup-server", version, after_help = EXIT_CODES)]
struct Cli {
    /// The SQLite database (created on first use).
    #[arg(long, global = true, default_value = "slup-server.db")]
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the endpoints until SIGINT/SIGTERM (or end of stdin with --stop-on-eof).
    Serve(ServeArgs),
    /// ID tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Product instances.
    #[command(subcommand)]
    Instances(InstancesCmd),
    /// Policies per virtual account.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Offline: turn a signed usage file into its signed ACK file.
    AckFile {
        /// The usage file the device saved.
        usage_file: PathBuf,
        /// Where to write the ACK file.
        #[arg(short, long)]
        output: PathBuf,
    },
    /// CSLU-initiated mode: read the reports of a device's REST API, store them, push the ACK.
    Pull(PullArgs),
    /// Load generator: signed usage reports verified and durably stored per second.
    Bench(BenchArgs),
}

#[derive(Args, Debug)]
struct ServeArgs {
    /// Plain HTTP listener.
    #[arg(long, value_name = "ADDR")]
    http: Option<SocketAddr>,
    /// HTTPS listener (a CA and a certificate for localhost are generated unless --cert/--key).
    #[arg(long, value_name = "ADDR")]
    https: Option<SocketAddr>,
    /// Certificate chain (PEM) for HTTPS.
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Private key (PEM) for HTTPS.
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// Write the generated CA certificate (PEM) here, for clients to trust.
    #[arg(long, value_name = "FILE")]
    ca_out: Option<PathBuf>,
    /// Answer usage with OK_POLL and this retry delay in seconds (the ACK comes with POLL_REQ).
    #[arg(long, value_name = "S")]
    poll_delay: Option<u32>,
    /// Commit durability.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = slup_server::DEFAULT_MAX_BODY)]
    max_body: usize,
    /// Most connections at once.
    #[arg(long, default_value_t = slup_server::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Stop when standard input ends (for test harnesses running the server as a child).
    #[arg(long)]
    stop_on_eof: bool,
    /// No log line per refused request.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    faults: FaultArgs,
}

/// Test switches.
#[derive(Args, Debug)]
struct FaultArgs {
    /// Share of answers dropped after handling (0..1).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_drop: f64,
    /// Delay before every answer, in milliseconds.
    #[arg(long, value_name = "MS")]
    fault_delay_ms: Option<u64>,
    /// Share of answers cut in half (0..1).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_truncate: f64,
    /// Share of answers with a corrupted signature (0..1).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_corrupt: f64,
    /// Share of requests refused with 503 before handling (0..1).
    #[arg(long, value_name = "P", default_value_t = 0.0)]
    fault_reject: f64,
    /// Seed of the fault draws.
    #[arg(long, value_name = "N", default_value_t = 0)]
    fault_seed: u64,
    /// Serve HTTPS with a certificate from a foreign CA (not the one written by --ca-out).
    #[arg(long)]
    foreign_ca: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DurabilityArg {
    /// synchronous=FULL: every commit fsynced before the answer.
    Full,
    /// synchronous=NORMAL in WAL: survives a crash of the process, not of the machine.
    Normal,
}

impl From<DurabilityArg> for Durability {
    fn from(d: DurabilityArg) -> Self {
        match d {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        }
    }
}

#[derive(Subcommand, Debug)]
enum TokenCmd {
    /// Mint a token and print its text.
    Create {
        /// Virtual account (created if absent).
        #[arg(long)]
        va: String,
        /// Smart account (created if absent).
        #[arg(long, default_value = DEFAULT_SMART_ACCOUNT)]
        sa: String,
        /// Units it may trust (an HA pair with scope all spends two).
        #[arg(long)]
        uses: u32,
        /// Days until it expires.
        #[arg(long, value_name = "DAYS")]
        expires: u32,
        /// Instances trusted with it may use export-controlled licenses.
        #[arg(long)]
        export_controlled: bool,
    },
    /// List every token.
    List,
}

#[derive(Subcommand, Debug)]
enum InstancesCmd {
    /// List every product instance.
    List,
    /// Show one product instance with its units and reports.
    Show {
        /// Row id (from `instances list`) or product instance UUID.
        id: String,
    },
    /// Remove a product instance (RMA): its units are refused from now on.
    Remove {
        /// Row id (from `instances list`) or product instance UUID.
        id: String,
    },
}

#[derive(Subcommand, Debug)]
enum PolicyCmd {
    /// Set the policy of a virtual account from a JSON file (the wire `policy` object).
    Set {
        /// Virtual account (created if absent).
        #[arg(long)]
        va: String,
        /// Smart account (created if absent).
        #[arg(long, default_value = DEFAULT_SMART_ACCOUNT)]
        sa: String,
        /// `{"name":…,"ack_required":…,"classes":{…}}`
        policy_json: PathBuf,
    },
    /// Clear the policy of a virtual account (devices keep Cisco's default).
    Clear {
        /// Virtual account.
        #[arg(long)]
        va: String,
        /// Smart account.
        #[arg(long, default_value = DEFAULT_SMART_ACCOUNT)]
        sa: String,
    },
}

#[derive(Args, Debug)]
struct PullArgs {
    /// The device's base URL, e.g. http://10.0.0.5 (the REST API is under /smartlic-service).
    device_url: String,
    /// Basic credentials: user.
    #[arg(long, default_value = "admin")]
    user: String,
    /// Basic credentials: password.
    #[arg(long, env = "SLUP_PULL_PASSWORD", default_value = "")]
    password: String,
    /// Do not push the ACK back (read and store only).
    #[arg(long)]
    no_push: bool,
    /// For an https:// device: the CA certificate (PEM) to verify it with.
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Client threads.
    #[arg(long, default_value_t = 4)]
    threads: usize,
    /// Simulated devices (each trusts once, then reports).
    #[arg(long, default_value_t = 64)]
    devices: usize,
    /// Reports per LICENSE_USAGE message.
    #[arg(long, default_value_t = 10)]
    per_message: usize,
    /// Messages per device.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Commit durability.
    #[arg(long, value_enum, default_value_t = DurabilityArg::Full)]
    durability: DurabilityArg,
}

fn fail(e: &Error) -> ExitCode {
    eprintln!("slup-server: {e}");
    let db = matches!(
        e.code(),
        Some(
            slup_core::Code::RecordFromNewerVersion
                | slup_core::Code::RecordCorrupt
                | slup_core::Code::StorageIo
        )
    );
    ExitCode::from(if db { 3 } else { 1 })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Command(e)) => fail(&e),
        Err(Failure::Setup(e)) => {
            eprintln!("slup-server: {e}");
            ExitCode::from(4)
        }
    }
}

/// Why a command failed, which picks the exit code.
enum Failure {
    Command(Error),
    Setup(Error),
}

impl From<slup_core::Code> for Failure {
    fn from(c: slup_core::Code) -> Self {
        Failure::Command(c.into())
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::Command(e)
    }
}

fn open(cli: &Cli) -> Result<Backend, Error> {
    Backend::open(&cli.db, Durability::Full)
}

fn instance_id(b: &Backend, id: &str) -> Result<PiId, Error> {
    if let Ok(n) = id.parse::<u32>() {
        return Ok(PiId(n));
    }
    b.store().instance_by_uuid(id)?.ok_or_else(|| {
        Error::new(
            slup_core::Code::InvalidArgument,
            format!("no product instance {id}"),
        )
    })
}

fn run(cli: Cli) -> Result<(), Failure> {
    match &cli.command {
        Command::Serve(a) => serve(&cli, a),
        Command::Token(TokenCmd::Create {
            va,
            sa,
            uses,
            expires,
            export_controlled,
        }) => {
            let mut b = open(&cli)?;
            let token = b.mint_token(sa, va, *uses, *expires, *export_controlled)?;
            println!("{token}");
            Ok(())
        }
        Command::Token(TokenCmd::List) => {
            let b = open(&cli)?;
            println!(
                "{:<4} {:<22} {:>9} {:<15} {:<6} text",
                "id", "virtual account", "uses", "expires (ms)", "export"
            );
            for t in b.tokens()? {
                let va = b.store().account_label(t.record.virtual_account);
                println!(
                    "{:<4} {:<22} {:>4}/{:<4} {:<15} {:<6} {}",
                    t.id.0,
                    va,
                    t.record.uses,
                    t.record.max_uses,
                    t.record.expires_at.0,
                    if t.record.export_controlled {
                        "yes"
                    } else {
                        "no"
                    },
                    t.record.text
                );
            }
            Ok(())
        }
        Command::Instances(InstancesCmd::List) => {
            let b = open(&cli)?;
            println!(
                "{:<4} {:<36} {:<8} {:>7} units",
                "id", "product instance", "state", "reports"
            );
            for row in b.instances()? {
                let units: Vec<String> = row
                    .record
                    .members
                    .iter()
                    .map(|m| format!("{:?} PID:{},SN:{}", m.role, m.udi.pid, m.udi.serial))
                    .collect();
                println!(
                    "{:<4} {:<36} {:<8} {:>7} {}",
                    row.id.0,
                    row.record.uuid,
                    if row.record.removed {
                        "removed"
                    } else {
                        "active"
                    },
                    row.reports,
                    units.join("; ")
                );
            }
            Ok(())
        }
        Command::Instances(InstancesCmd::Show { id }) => {
            let b = open(&cli)?;
            let pi = instance_id(&b, id)?;
            let rec = b.instance(pi)?.ok_or_else(|| {
                Error::new(
                    slup_core::Code::InvalidArgument,
                    format!("no product instance {id}"),
                )
            })?;
            println!("product instance {} (id {})", rec.uuid, pi.0);
            println!(
                "  virtual account   {}",
                b.store().account_label(rec.virtual_account)
            );
            println!(
                "  state             {}",
                if rec.removed {
                    "removed (RMA)"
                } else {
                    "active"
                }
            );
            println!("  export controlled {}", rec.export_controlled);
            println!("  trusted at (ms)   {}", rec.trusted_at.0);
            println!("  last contact (ms) {}", rec.last_contact.0);
            for m in &rec.members {
                println!(
                    "  unit {:?} PID:{},SN:{} trust id {} key {}",
                    m.role,
                    m.udi.pid,
                    m.udi.serial,
                    m.trust_id,
                    m.public_key.key_id()
                );
            }
            let reports = b.store().reports_of(pi)?;
            println!("  reports           {}", reports.len());
            for r in reports {
                println!(
                    "    report {} from SN:{} count {} received (ms) {}",
                    r.report_id.0, r.udi.serial, r.count, r.received_at.0
                );
            }
            Ok(())
        }
        Command::Instances(InstancesCmd::Remove { id }) => {
            let mut b = open(&cli)?;
            let pi = instance_id(&b, id)?;
            b.remove_instance(pi)?;
            println!("removed product instance {}", pi.0);
            Ok(())
        }
        Command::Policy(PolicyCmd::Set {
            va,
            sa,
            policy_json,
        }) => {
            let json = std::fs::read(policy_json).map_err(|e| {
                Error::new(
                    slup_core::Code::StorageIo,
                    format!("{}: {e}", policy_json.display()),
                )
            })?;
            open(&cli)?.set_policy(sa, va, Some(&json))?;
            println!("policy set for {sa} / {va}");
            Ok(())
        }
        Command::Policy(PolicyCmd::Clear { va, sa }) => {
            open(&cli)?.set_policy(sa, va, None)?;
            println!("policy cleared for {sa} / {va}");
            Ok(())
        }
        Command::AckFile { usage_file, output } => {
            let file = std::fs::read(usage_file).map_err(|e| {
                Error::new(
                    slup_core::Code::StorageIo,
                    format!("{}: {e}", usage_file.display()),
                )
            })?;
            let ack = open(&cli)?.ack_usage_file(&file)?;
            std::fs::write(output, &ack).map_err(|e| {
                Error::new(
                    slup_core::Code::StorageIo,
                    format!("{}: {e}", output.display()),
                )
            })?;
            println!("wrote {} ({} bytes)", output.display(), ack.len());
            Ok(())
        }
        Command::Pull(a) => {
            let mut b = open(&cli)?;
            let tls =
                a.ca.as_deref()
                    .map(slup_server::client::tls_trusting)
                    .transpose()
                    .map_err(Failure::Setup)?;
            let opts = pull::PullOptions {
                user: a.user.clone(),
                password: a.password.clone(),
                push: !a.no_push,
                tls,
            };
            let outcome = pull::pull(&mut b, &a.device_url, &opts).map_err(|e| match e {
                pull::PullError::Device(e) => Failure::Setup(e),
                pull::PullError::Service(e) => Failure::Command(e),
            })?;
            println!("{outcome}");
            if !outcome.push_accepted() {
                return Err(Failure::Command(Error::new(
                    slup_core::Code::ServiceError,
                    "the device refused the ACK; the reports are stored on the service",
                )));
            }
            Ok(())
        }
        Command::Bench(a) => {
            let opts = bench::BenchOptions {
                threads: a.threads,
                devices: a.devices,
                per_message: a.per_message,
                messages: a.messages,
                durability: a.durability.into(),
            };
            let r = bench::run(&opts).map_err(Failure::Command)?;
            println!("{r}");
            Ok(())
        }
    }
}

fn serve(cli: &Cli, a: &ServeArgs) -> Result<(), Failure> {
    let mut cfg = ServerConfig::ephemeral(&cli.db);
    cfg.http = a.http;
    cfg.https = a.https.map(|addr| {
        let source = match (&a.cert, &a.key, a.faults.foreign_ca) {
            (Some(cert), Some(key), _) => TlsSource::Pem {
                cert: cert.clone(),
                key: key.clone(),
            },
            (_, _, true) => TlsSource::ForeignCa,
            _ => TlsSource::Generate,
        };
        (addr, source)
    });
    if cfg.http.is_none() && cfg.https.is_none() {
        cfg.http = Some(SocketAddr::from(([127, 0, 0, 1], 8182)));
    }
    cfg.durability = a.durability.into();
    cfg.poll_delay = a.poll_delay;
    cfg.max_body = a.max_body;
    cfg.max_connections = a.max_connections;
    cfg.log = !a.quiet;
    let f = &a.faults;
    for (name, p) in [
        ("--fault-drop", f.fault_drop),
        ("--fault-truncate", f.fault_truncate),
        ("--fault-corrupt", f.fault_corrupt),
        ("--fault-reject", f.fault_reject),
    ] {
        if !(0.0..=1.0).contains(&p) {
            return Err(Failure::Command(Error::new(
                slup_core::Code::InvalidArgument,
                format!("{name} {p} is not a share between 0 and 1"),
            )));
        }
    }
    cfg.faults = Faults {
        drop: f.fault_drop,
        delay: f.fault_delay_ms.map(Duration::from_millis),
        truncate: f.fault_truncate,
        corrupt_signature: f.fault_corrupt,
        reject: f.fault_reject,
        seed: f.fault_seed,
    };
    let running = Server::start(cfg).map_err(|e| match e.code() {
        Some(_) => Failure::Command(e),
        None => Failure::Setup(e),
    })?;
    let hex: String = running
        .trust_anchor_sec1()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    println!("slup-server: database {}", cli.db.display());
    println!("trust anchor (SEC1, hex): {hex}");
    let paths = slup_server::listener::ENDPOINTS.join(" ");
    if !running.http_url().is_empty() {
        println!("http  {}  {paths}", running.http_url());
    }
    if let Some(u) = running.https_url() {
        println!("https {u}  {paths}");
    }
    if let (Some(path), Some(pem)) = (&a.ca_out, running.ca_cert_pem()) {
        std::fs::write(path, pem)
            .map_err(|e| Failure::Setup(Error::other(format!("{}: {e}", path.display()))))?;
        println!("CA certificate: {}", path.display());
    }
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let (tx, rx) = std::sync::mpsc::channel::<&'static str>();
    let sig = tx.clone();
    ctrlc::set_handler(move || {
        let _ = sig.send("signal");
    })
    .map_err(|e| Failure::Setup(Error::other(format!("signal handler: {e}"))))?;
    if a.stop_on_eof {
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
            let _ = tx.send("end of input");
        });
    }
    let why = rx.recv().unwrap_or("shutdown");
    eprintln!("slup-server: {why}: finishing in-flight requests");
    running.shutdown();
    eprintln!("slup-server: stopped");
    Ok(())
}
