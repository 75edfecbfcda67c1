//! The `slup` command: `demo`, `device`, `decode`, `verify`, `probe`.
#![forbid(unsafe_code)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

mod decode;
mod demo;
mod device;
mod fail;
mod hints;
mod lint;
mod pretty;
mod probe;

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use fail::{exit, CliError};

/// slup: Smart Licensing Using Policy, for devices you build.
#[derive(Parser, Debug)]
#[command(name = "slup", version, about, after_help = fail::EXIT_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Start a license service and a simulated Catalyst 9800-CL on this machine and run
    /// trust, AP joins and leaves, usage reports and ACKs over HTTPS; print the show views.
    Demo,
    /// Pretty-print any slup message or file (request, response, usage or ACK file, RUM
    /// report, trust code, policy, error body) and say exactly what is wrong with an invalid
    /// one.
    #[command(after_help = fail::EXIT_HELP)]
    Decode {
        /// The file, or `-` for standard input.
        file: String,
        /// The signer's public key, to check signatures too (130 hex digits or 88 base64).
        #[arg(long)]
        anchor: Option<String>,
        /// Print only the verdict and summary, without the indented JSON.
        #[arg(long)]
        brief: bool,
    },
    /// Check a message and every signature in it; fails unless all of them verify.
    #[command(after_help = fail::EXIT_HELP)]
    Verify {
        /// The file, or `-` for standard input.
        file: String,
        /// The signer's public key: the service's for responses, ACK files and trust codes,
        /// the device's for requests and reports (ID_TOKEN_TRUST carries its own).
        #[arg(long)]
        anchor: Option<String>,
    },
    /// A host device whose licensing state lives in a directory.
    Device(device::DeviceArgs),
    /// Check, step by step, that a license service is reachable: DNS, TCP connect (443 for
    /// https, like `telnet <host> 443`), proxy CONNECT, TLS (the presented certificate chain
    /// shown, so an intercepting CA is obvious), one HTTP request; each with its verdict and
    /// timing, stopping at the first failure with its stable code.
    #[command(after_help = fail::EXIT_HELP)]
    Probe(probe::ProbeArgs),
}

fn read_input(file: &str) -> Result<Vec<u8>, CliError> {
    if file == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .map_err(|e| CliError::file("standard input", &e))?;
        Ok(v)
    } else {
        std::fs::read(file).map_err(|e| CliError::file(file, &e))
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Cmd::Demo => {
            let text = demo::run()?;
            print(&text);
            Ok(())
        }
        Cmd::Decode {
            file,
            anchor,
            brief,
        } => decode_cmd(&file, anchor.as_deref(), !brief, false),
        Cmd::Verify { file, anchor } => decode_cmd(&file, anchor.as_deref(), false, true),
        Cmd::Device(args) => device::run(args),
        Cmd::Probe(args) => probe::run(args),
    }
}

fn decode_cmd(file: &str, anchor: Option<&str>, json: bool, verify: bool) -> Result<(), CliError> {
    let input = read_input(file)?;
    let opts = decode::Options {
        anchor: anchor.map(decode::parse_key).transpose()?,
        require_verified: verify,
        json,
    };
    let name = if file == "-" { "<stdin>" } else { file };
    let mut out = String::new();
    let result = decode::run(&input, name, &opts, &mut out);
    print(&out);
    result.map(|_| ())
}

/// Writes to standard output; a closed pipe (`slup … | head`) is not an error.
fn print(text: &str) {
    let mut o = std::io::stdout().lock();
    let _ = o.write_all(text.as_bytes());
    let _ = o.flush();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::from(exit::OK),
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(e.exit_status())
        }
    }
}
