//! End to end: the real `slup` binary against an in-process slup-server on loopback.

use std::path::Path;
use std::process::{Command, Output};

use slup_server::{Running, Server, ServerConfig};

const AP_TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

fn slup(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_slup"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `slup device --dir <dir> args…`, requiring exit status `want`.
fn device(dir: &Path, args: &[&str], want: i32) -> String {
    let mut all = vec!["device", "--dir", dir.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = slup(&all);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(want), "slup {all:?}\n{t}");
    t
}

fn server(https: bool) -> (tempfile::TempDir, Running) {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = ServerConfig::ephemeral(dir.path().join("slup.db"));
    if https {
        cfg = cfg.with_https();
    }
    cfg.log = false;
    (dir, Server::start(cfg).unwrap())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A device in `dir` for `serial`, configured for CSLU over plain HTTP.
fn cslu_device(dir: &Path, s: &Running, serial: &str, standby: Option<&str>) {
    let anchor = hex(&s.trust_anchor_sec1());
    let mut init = vec!["init", "--serial", serial, "--anchor", &anchor];
    if let Some(sb) = standby {
        init.extend_from_slice(&["--standby", sb]);
    }
    device(dir, &init, 0);
    let url = format!("{}/cslu/v1/pi", s.http_url());
    device(dir, &["configure", "--transport", "cslu", "--url", &url], 0);
}

#[test]
fn demo_runs_and_prints_the_three_views() {
    let o = slup(&["demo"]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    for want in [
        "# show license status",
        "# show license air entities summary",
        "# show license history message",
        "%SMART_LIC-6-TRUST_INSTALL_SUCCESS",
        "%SMART_LIC-6-USAGE_ACK_RECEIVED",
        "Trust Code Installed:",
        "No. of APs active at last report.....: 3",
        "No. of APs newly added with last report.....: 1",
        "No. of APs deleted with last report.....: 1",
    ] {
        assert!(t.contains(want), "{want:?} missing\n{t}");
    }
    assert!(!t.contains("COMM_FAILED"), "{t}");
}

#[test]
fn decode_points_at_the_defects_of_the_seed_messages() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let req = data.join("seed_poll_request_as_printed.json");
    let o = slup(&["decode", req.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    for want in [
        "INVALID",
        "E1000 JsonSyntax",
        "3 value(s) still open: the message (opened at byte 0), request (opened at byte 11), header (opened at byte 21)",
        "did you mean `product_instance_identifier`?",
        "`request_data` sits in `header`",
        "`signature` sits in `request_data`",
        "hint: ",
    ] {
        assert!(t.contains(want), "{want:?} missing\n{t}");
    }
    let resp = data.join("seed_failed_response_as_printed.json");
    let o = slup(&["decode", resp.to_str().unwrap()]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    for want in [
        "what: the string \"Invalid ProductInstanceIdentifier",
        "stands where a member name must be",
        "base64 signature holds line breaks",
        "this signature has no `key`",
        "the nonce is null",
        "`status_code` sits in `connect_info`",
    ] {
        assert!(t.contains(want), "{want:?} missing\n{t}");
    }
}

#[test]
fn decode_and_verify_a_valid_message_and_catch_a_tampered_one() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../core/testdata/golden/response_usage_ok.json");
    let g = golden.to_str().unwrap();
    let o = slup(&["decode", g]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(0), "{t}");
    assert!(
        t.contains("valid response envelope") && t.contains("OK answer to LICENSE_USAGE"),
        "{t}"
    );
    // The service test key of core/testdata/keys.json.
    let anchor =
        "BK4vWF4kt3Vw4xyRCC48c/QDXx/kspdESxoblGmWaOkPNiKED6aecl06K+YWimd5roNLPPkvhmNw8HUwYEGIAa0=";
    let o = slup(&["verify", g, "--anchor", anchor]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(text(&o).contains("verified (--anchor)"));
    // Without the key, verify cannot vouch for it.
    assert_eq!(slup(&["verify", g]).status.code(), Some(2));
    // One changed byte inside the signed member.
    let bytes = std::fs::read(&golden).unwrap();
    let s = String::from_utf8(bytes)
        .unwrap()
        .replacen("\"message\":\"\"", "\"message\":\"x\"", 1);
    let dir = tempfile::tempdir().unwrap();
    let tampered = dir.path().join("tampered.json");
    std::fs::write(&tampered, s).unwrap();
    let o = slup(&["verify", tampered.to_str().unwrap(), "--anchor", anchor]);
    let t = text(&o);
    assert_eq!(o.status.code(), Some(1), "{t}");
    assert!(t.contains("E1100 BadSignature"), "{t}");
}

#[test]
fn a_device_over_http_in_cslu_mode_keeps_its_state_between_invocations() {
    let (_db, s) = server(false);
    let token = s.mint_token("Wireless", 1, 30).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("dev");
    cslu_device(&d, &s, "9PJK8D70CNB", None);
    let t = device(&d, &["trust", "idtoken", &token, "local"], 0);
    assert!(
        t.contains("TRUST_INSTALL_SUCCESS") && t.contains("trust installed for 1 unit(s)"),
        "{t}"
    );
    // Trust again without force is refused by the device itself.
    let t = device(&d, &["trust", "idtoken", &token], 5);
    assert!(
        t.contains("E1500 TrustAlreadyInstalled") && t.contains("hint: "),
        "{t}"
    );
    device(
        &d,
        &["ap", "join", AP_TAG, "PID:C9120AXI-E,SN:FGL2401A0B1"],
        0,
    );
    device(&d, &["ap", "join", AP_TAG, "C9130AXI-E,FJC2402Z0C3"], 0);
    let t = device(&d, &["show", "summary"], 0);
    assert!(t.contains("AIR-DNA-A") && t.contains("    2 IN USE"), "{t}");
    let t = device(&d, &["sync"], 0);
    assert!(t.contains("USAGE_ACK_RECEIVED"), "{t}");
    let t = device(&d, &["show", "air"], 0);
    assert!(
        t.contains("No. of APs active at last report.....: 2"),
        "{t}"
    );
    let t = device(&d, &["show", "status"], 0);
    assert!(
        t.contains("Type: cslu") && t.contains("Cslu address: http://127.0.0.1:"),
        "{t}"
    );
    assert!(t.contains("Active: PID:C9800-CL-K9,SN:9PJK8D70CNB"), "{t}");
    // A host keeps 16 KiB of message history: after `sync`, the LICENSE_USAGE exchange and
    // the trust sync it asks for are both there, whole.
    let t = device(&d, &["show", "history"], 0);
    assert!(t.contains("TRUST_SYNC"), "{t}");
    assert!(t.contains("LICENSE_USAGE"), "{t}");
    assert!(!t.contains("evicted") && !t.contains("truncated"), "{t}");
    for view in ["usage", "tech-support", "rum"] {
        device(&d, &["show", view], 0);
    }
    // The service holds the instance and its reports.
    let rows = s.with_backend(|b| b.instances()).unwrap();
    assert_eq!(rows.len(), 1);
    assert!(rows[0].reports >= 1);
}

#[test]
fn a_device_over_https_in_smart_mode_verifies_the_service_ca() {
    let (_db, s) = server(true);
    let (_db2, foreign) = server(true);
    let token = s.mint_token("Wireless", 2, 30).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("dev");
    let anchor = hex(&s.trust_anchor_sec1());
    device(
        &d,
        &["init", "--serial", "9PJK8D70CNB", "--anchor", &anchor],
        0,
    );
    let url = format!("{}/licservice/license", s.https_url().unwrap());
    // The CA of another service: the TLS interception case.
    let wrong = dir.path().join("foreign-ca.pem");
    std::fs::write(&wrong, foreign.ca_cert_pem().unwrap()).unwrap();
    device(
        &d,
        &[
            "configure",
            "--transport",
            "smart",
            "--url",
            &url,
            "--ca",
            wrong.to_str().unwrap(),
        ],
        0,
    );
    let t = device(&d, &["trust", "idtoken", &token], 4);
    assert!(
        t.contains("E1305 TlsUnknownCa") && t.contains("intercepting TLS"),
        "{t}"
    );
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, s.ca_cert_pem().unwrap()).unwrap();
    device(&d, &["configure", "--ca", ca.to_str().unwrap()], 0);
    // The failed attempt's keys are pending: force starts a new attempt now.
    let t = device(&d, &["trust", "idtoken", &token, "--force"], 0);
    assert!(t.contains("TRUST_INSTALL_SUCCESS"), "{t}");
    device(&d, &["usage", "record", AP_TAG, "5"], 0);
    let t = device(&d, &["sync"], 0);
    assert!(t.contains("USAGE_ACK_RECEIVED"), "{t}");
}

#[test]
fn air_gapped_round_trip_through_files() {
    let (_db, s) = server(false);
    let token = s.mint_token("Wireless", 1, 30).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("dev");
    cslu_device(&d, &s, "9PJK8D70CNB", None);
    device(&d, &["trust", "idtoken", &token], 0);
    device(&d, &["configure", "--transport", "off"], 0);
    device(&d, &["usage", "record", AP_TAG, "7"], 0);
    // Every report the device holds now goes into the file.
    let ids = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_digit()))
            .filter_map(|l| l.split_whitespace().next().map(str::to_string))
            .collect()
    };
    let before = ids(&device(&d, &["show", "rum"], 0));
    assert!(!before.is_empty());
    let usage = dir.path().join("usage.json");
    let t = device(&d, &["save-usage", usage.to_str().unwrap()], 0);
    assert!(t.contains("usage written"), "{t}");
    // The file is a signed LICENSE_USAGE; decode recognises it.
    let o = slup(&["decode", "--brief", usage.to_str().unwrap()]);
    assert!(text(&o).contains("LICENSE_USAGE request"), "{}", text(&o));
    // The operator carries it to the service and brings the ACK back.
    let ack = s
        .with_backend(|b| b.ack_usage_file(&std::fs::read(&usage).unwrap()))
        .unwrap();
    let ack_path = dir.path().join("ack.json");
    std::fs::write(&ack_path, &ack).unwrap();
    let t = device(&d, &["import", ack_path.to_str().unwrap()], 0);
    assert!(t.contains("USAGE_ACK_RECEIVED"), "{t}");
    // Every report of the file is acknowledged and pruned. (Each invocation is a boot, and a
    // boot closes the open report as `ProductReload`: newer reports wait for the next file.)
    let after = ids(&device(&d, &["show", "rum"], 0));
    assert!(
        before.iter().all(|id| !after.contains(id)),
        "{before:?} {after:?}"
    );
    // The same ACK again answers nothing outstanding.
    let t = device(&d, &["import", ack_path.to_str().unwrap()], 4);
    assert!(t.contains("E1202 ReplayedNonce"), "{t}");
}

#[test]
fn a_two_use_token_trusts_an_ha_pair_and_is_then_exhausted() {
    let (_db, s) = server(false);
    let token = s.mint_token("Wireless", 2, 30).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let pair = dir.path().join("pair");
    cslu_device(&pair, &s, "9PJK8D70CNB", Some("9PJK8D70CNC"));
    let t = device(&pair, &["trust", "idtoken", &token, "all"], 0);
    assert!(t.contains("trust installed for 2 unit(s)"), "{t}");
    let t = device(&pair, &["show", "status"], 0);
    assert!(t.contains("Standby: PID:C9800-CL-K9,SN:9PJK8D70CNC"), "{t}");
    let other = dir.path().join("other");
    cslu_device(&other, &s, "FDO2250X0AA", None);
    let t = device(&other, &["trust", "idtoken", &token], 4);
    assert!(t.contains("E1205 ServiceFailed"), "{t}");
    assert!(
        t.to_lowercase().contains("exhausted") || t.to_lowercase().contains("uses"),
        "the service's reason is shown\n{t}"
    );
}

#[test]
fn rma_refuses_the_old_identity_and_a_new_device_can_trust() {
    let (_db, s) = server(false);
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("old");
    cslu_device(&old, &s, "9PJK8D70CNB", None);
    device(
        &old,
        &[
            "trust",
            "idtoken",
            &s.mint_token("Wireless", 1, 30).unwrap(),
        ],
        0,
    );
    let rows = s.with_backend(|b| b.instances()).unwrap();
    assert_eq!(rows.len(), 1);
    s.with_backend(|b| b.remove_instance(rows[0].id)).unwrap();
    device(&old, &["usage", "record", AP_TAG, "1"], 0);
    let t = device(&old, &["sync"], 4);
    assert!(t.contains("E1208 ServiceError"), "{t}");
    let new = dir.path().join("new");
    cslu_device(&new, &s, "9PJK8D70CND", None);
    let t = device(
        &new,
        &[
            "trust",
            "idtoken",
            &s.mint_token("Wireless", 1, 30).unwrap(),
        ],
        0,
    );
    assert!(t.contains("TRUST_INSTALL_SUCCESS"), "{t}");
}

#[test]
fn a_token_starting_with_a_dash_is_a_token() {
    let (_db, s) = server(false);
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("dev");
    cslu_device(&d, &s, "9PJK8D70CNB", None);
    // Tokens are base64url text: a leading `-` is not an option.
    let t = device(&d, &["trust", "idtoken", "-NOT-A-MINTED-TOKEN", "local"], 4);
    assert!(t.contains("E1205 ServiceFailed"), "{t}");
}

#[test]
fn help_documents_the_exit_codes_and_errors_carry_codes() {
    let o = slup(&["--help"]);
    let t = text(&o);
    assert!(
        t.contains("Exit status:") && t.contains("4  the service could not be reached"),
        "{t}"
    );
    let dir = tempfile::tempdir().unwrap();
    let t = device(&dir.path().join("none"), &["show", "status"], 2);
    assert!(
        t.contains("E1602 InvalidArgument") && t.contains("slup device --dir"),
        "{t}"
    );
    let o = slup(&["decode", "/nonexistent/file.json"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
}
