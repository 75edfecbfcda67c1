//! `slup device` on the network: host entries, the source address, and failure details in the
//! `COMM_FAILED` lines it prints.

use std::path::Path;
use std::process::{Command, Output};

use slup_server::{Server, ServerConfig};

fn slup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slup"))
        .args(args)
        .output()
        .unwrap()
}

/// Runs `slup device --dir <dir> args…`, requiring exit status `want`; returns the output.
fn device(dir: &Path, args: &[&str], want: i32) -> String {
    let mut all = vec!["device", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = slup(&all);
    let t = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(o.status.code(), Some(want), "slup {all:?}\n{t}");
    t
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn host_entries_and_the_source_address_reach_the_service_and_failures_say_why() {
    let sdir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::ephemeral(sdir.path().join("slup.db"));
    cfg.log = false;
    let s = Server::start(cfg).unwrap();
    let token = s.mint_token("Lab", 5, 30).unwrap();
    let port = s.http_addr().unwrap().port();
    let anchor = hex(&s.trust_anchor_sec1());

    // A name no DNS knows: the COMM_FAILED line says which name and why.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    device(d, &["init", "--serial", "NET0001", "--anchor", &anchor], 0);
    let url = format!("http://license.invalid:{port}/cslu/v1/pi");
    device(d, &["configure", "--transport", "cslu", "--url", &url], 0);
    let out = device(d, &["trust", "idtoken", &token, "local"], 4);
    assert!(
        out.contains("%SMART_LIC-3-COMM_FAILED")
            && out.contains("E1300 DnsFailure: DNS resolution failed: license.invalid: DNS:"),
        "{out}"
    );

    // A host entry for it, and a chosen source address: trust goes through.
    let out = device(
        d,
        &[
            "configure",
            "--host",
            "license.invalid=127.0.0.1",
            "--source",
            "127.0.0.1",
        ],
        0,
    );
    assert!(
        out.contains("source 127.0.0.1, host entries license.invalid=127.0.0.1"),
        "{out}"
    );
    let out = device(d, &["trust", "idtoken", &token, "local", "--force"], 0);
    assert!(out.contains("TRUST_INSTALL_SUCCESS"), "{out}");

    // A source address this host does not have is refused before anything leaves.
    device(d, &["configure", "--source", "192.0.2.55"], 0);
    device(
        d,
        &[
            "usage",
            "record",
            "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790",
            "2",
        ],
        0,
    );
    let out = device(d, &["sync"], 2);
    assert!(
        out.contains("192.0.2.55 is not an address of this host"),
        "{out}"
    );
    device(d, &["configure", "--source", "none", "--host", "none"], 0);
    let out = device(d, &["configure", "--host", "nonsense"], 2);
    assert!(out.contains("write NAME=ADDRESS"), "{out}");
}
