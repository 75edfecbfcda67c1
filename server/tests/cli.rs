//! The `slup-server` binary: operator commands on a database file, `serve` as a child process
//! (URLs and trust anchor on stdout, one log line per refused request on stderr, clean stop),
//! and the documented exit codes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};

use slup_core::Code;

use common::{Client, TempDir};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_slup-server"))
}

fn run(dir: &TempDir, args: &[&str]) -> (i32, String, String) {
    let out = bin().arg("--db").arg(dir.db()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_documents_the_exit_codes() {
    let out = bin().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for needle in [
        "Exit codes:",
        "serve",
        "token",
        "instances",
        "ack-file",
        "pull",
        "bench",
    ] {
        assert!(text.contains(needle), "{needle}: {text}");
    }
    let out = bin().arg("no-such-command").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn tokens_policies_and_instances_from_the_command_line() {
    let dir = TempDir::new("cli-admin");
    let (code, token, err) = run(
        &dir,
        &[
            "token",
            "create",
            "--va",
            "Lab",
            "--uses",
            "2",
            "--expires",
            "30",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let token = token.trim();
    assert_eq!(token.len(), 64, "{token}");
    let (code, list, _) = run(&dir, &["token", "list"]);
    assert_eq!(code, 0);
    assert!(
        list.contains(token) && list.contains("Demo SA / Lab") && list.contains("0/2"),
        "{list}"
    );

    let policy = dir.0.join("policy.json");
    std::fs::write(
        &policy,
        r#"{"name":"Custom Policy","ack_required":true,"classes":{"perpetual":{"first_report_days":30,"reporting_frequency_days":60}}}"#,
    )
    .unwrap();
    let (code, out, err) = run(
        &dir,
        &["policy", "set", "--va", "Lab", policy.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("policy set"));
    std::fs::write(&policy, "{\"name\":").unwrap();
    let (code, _, err) = run(
        &dir,
        &["policy", "set", "--va", "Lab", policy.to_str().unwrap()],
    );
    assert_eq!(code, 1);
    assert!(err.contains("E1000 JsonSyntax"), "{err}");

    let (code, out, _) = run(&dir, &["instances", "list"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 1, "header only: {out}");
    let (code, _, err) = run(&dir, &["instances", "remove", "7"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("E1602") && err.contains("no product instance 7"),
        "{err}"
    );

    let usage = dir.0.join("usage.json");
    std::fs::write(&usage, "not a usage file").unwrap();
    let ack = dir.0.join("ack.json");
    let (code, _, err) = run(
        &dir,
        &[
            "ack-file",
            usage.to_str().unwrap(),
            "-o",
            ack.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 1);
    assert!(err.contains("E1000"), "{err}");
    assert!(!ack.exists());
}

#[test]
fn a_database_from_a_newer_version_exits_3() {
    let dir = TempDir::new("cli-newer");
    assert_eq!(run(&dir, &["instances", "list"]).0, 0);
    let c = rusqlite::Connection::open(dir.db()).unwrap();
    c.pragma_update(None, "user_version", 99).unwrap();
    drop(c);
    let (code, _, err) = run(&dir, &["instances", "list"]);
    assert_eq!(code, 3);
    assert!(err.contains("E1401 RecordFromNewerVersion"), "{err}");
}

#[test]
fn serve_prints_its_urls_logs_refusals_and_stops_cleanly() {
    let dir = TempDir::new("cli-serve");
    let ca = dir.0.join("ca.pem");
    let mut child = bin()
        .arg("--db")
        .arg(dir.db())
        .args([
            "serve",
            "--http",
            "127.0.0.1:0",
            "--https",
            "127.0.0.1:0",
            "--ca-out",
            ca.to_str().unwrap(),
            "--stop-on-eof",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let (mut http, mut anchor, mut https) = (None, None, None);
    let mut line = String::new();
    while http.is_none() || https.is_none() || anchor.is_none() {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "server stopped early"
        );
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.first().copied() {
            Some("http") => http = Some(words[1].trim_start_matches("http://").to_owned()),
            Some("https") => https = Some(words[1].to_owned()),
            Some("trust") => anchor = Some((*words.last().unwrap()).to_owned()),
            _ => {}
        }
    }
    let anchor = anchor.unwrap();
    assert_eq!(anchor.len(), 130, "{anchor}");
    assert!(anchor.starts_with("04"));
    assert!(https.unwrap().starts_with("https://127.0.0.1:"));
    // Wait for the CA line so the file is complete.
    line.clear();
    stdout.read_line(&mut line).unwrap();
    assert!(line.starts_with("CA certificate:"), "{line}");
    assert!(std::fs::read_to_string(&ca)
        .unwrap()
        .contains("BEGIN CERTIFICATE"));

    let c = Client::new(http.unwrap().parse().unwrap(), "/cslu/v1/pi");
    let r = c.request("POST", "text/plain", b"{}").unwrap();
    assert_eq!(
        (r.status, r.error_code()),
        (415, Code::InvalidArgument.number())
    );
    let r = Client::new(c.addr, "/elsewhere").post_json(b"{}").unwrap();
    assert_eq!(r.status, 404);

    drop(child.stdin.take());
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("POST /cslu/v1/pi -> 415 E1602 InvalidArgument"),
        "{err}"
    );
    assert!(err.contains("POST /elsewhere -> 404 E1602"), "{err}");
    assert!(err.contains("stopped"), "{err}");

    // The same trust anchor from the operator's side after the restart of nothing: the key
    // lives in the database.
    let mut again = bin()
        .arg("--db")
        .arg(dir.db())
        .args(["serve", "--http", "127.0.0.1:0", "--stop-on-eof", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(again.stdout.take().unwrap());
    let mut first = String::new();
    loop {
        first.clear();
        out.read_line(&mut first).unwrap();
        if first.starts_with("trust anchor") {
            break;
        }
    }
    assert!(first.trim_end().ends_with(&anchor));
    drop(again.stdin.take());
    assert!(again.wait().unwrap().success());
}

#[test]
fn instances_list_show_and_remove_a_trusted_device() {
    use slup_core::types::Scope;
    let dir = TempDir::new("cli-instances");
    let srv = slup_server::Server::start(slup_server::ServerConfig::ephemeral(dir.db())).unwrap();
    let token = srv.mint_token("Lab", 1, 30).unwrap();
    let c = Client::new(srv.http_addr().unwrap(), "/cslu/v1/pi");
    let mut dev = common::Device::new("9PJK8D70CNB", None, &srv.trust_anchor_sec1(), 41);
    dev.trust(&token, Scope::Local);
    dev.run(&c);
    dev.report(3);
    dev.run(&c);
    let uuid = dev.e.trust().instance().unwrap().as_str().to_owned();
    srv.shutdown();

    let (code, list, _) = run(&dir, &["instances", "list"]);
    assert_eq!(code, 0);
    assert!(
        list.contains(&uuid) && list.contains("active") && list.contains("SN:9PJK8D70CNB"),
        "{list}"
    );
    let (code, show, _) = run(&dir, &["instances", "show", &uuid]);
    assert_eq!(code, 0);
    assert!(
        show.contains("Demo SA / Lab") && show.contains("count 3"),
        "{show}"
    );
    let (code, out, err) = run(&dir, &["instances", "remove", &uuid]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("removed"));
    let (_, show, _) = run(&dir, &["instances", "show", &uuid]);
    assert!(show.contains("removed (RMA)"), "{show}");

    // The device is refused by the restarted service.
    let srv = slup_server::Server::start(slup_server::ServerConfig::ephemeral(dir.db())).unwrap();
    dev.report(4);
    let sent = dev.run(&Client::new(srv.http_addr().unwrap(), "/cslu/v1/pi"));
    assert!(sent.iter().any(|(_, status)| *status == 403), "{sent:?}");
    srv.shutdown();
}

#[test]
fn bench_runs_a_small_load_and_checks_every_ack() {
    let out = bin()
        .args([
            "bench",
            "--threads",
            "2",
            "--devices",
            "3",
            "--messages",
            "2",
            "--per-message",
            "4",
            "--durability",
            "normal",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.starts_with("24 reports in 6 messages (4 per message) from 3 devices"),
        "{text}"
    );
    assert!(
        text.contains("reports/s verified and durably stored"),
        "{text}"
    );
    let out = bin()
        .args(["bench", "--per-message", "65"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}
