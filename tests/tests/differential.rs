//! The serde_json differential on fixed inputs: every golden message, the allowed differences
//! (each must pass without a panic), and the helpers that decide what "within limits" means.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;

use slup_core::json::{validate, DEFAULT_LIMITS};
use slup_tests::differential::{check, has_escaped_member_name, json_depth, within_limits};
use slup_tests::workspace_root;

#[test]
fn every_golden_agrees() {
    let dir = workspace_root().join("core/testdata/golden");
    let mut n = 0;
    for e in fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "json") {
            let data = fs::read(&p).unwrap();
            assert!(serde_json::from_slice::<serde_json::Value>(&data).is_ok());
            check(&data);
            n += 1;
        }
    }
    assert!(n >= 18, "only {n} goldens");
}

#[test]
fn allowed_differences_pass() {
    let deep = format!("{}{}", "[".repeat(17), "]".repeat(17));
    let long = format!("\"{}\"", "a".repeat(4097));
    let long_number = "1".repeat(4097);
    for doc in [
        // f64 overflow: slup accepts, serde_json says "number out of range".
        "[1e400]",
        r#"{"a":-1e400,"b":"x"}"#,
        // Duplicates: both scanners accept; typed decoders refuse.
        r#"{"a":1,"a":2}"#,
        r#"{"name":"x","name":"y","classes":{}}"#,
        r#"{"acked":[],"acked":[],"rejected":[]}"#,
        // Beyond limits: serde_json accepts, slup refuses with a limit code.
        &deep,
        &long,
        &long_number,
        // Escaped member names: refused with EscapedMemberName.
        r#"{"n\u0061me":"x","classes":{}}"#,
        r#"{"acked":[],"rejected":[{"report_id":1,"re\u0061son":"late"}]}"#,
        // Typed edge cases that both sides must read alike.
        r#"{"name":"P\u00e9 \"q\"","ack_required":null,"classes":{"perpetual":null}}"#,
        r#"{"name":"x","classes":{"export":{"first_report_days":3650}}}"#,
        r#"{"name":"x","classes":{"export":{"first_report_days":3651}}}"#,
        r#"{"name":"x","classes":{"export":{"first_report_days":-0}}}"#,
        r#"{"name":"x","classes":{"export":{"first_report_days":1.0}}}"#,
        r#"{"acked":[0,18446744073709551615],"rejected":[]}"#,
        r#"{"acked":[18446744073709551616],"rejected":[]}"#,
        r#"{"acked":[],"rejected":[{"report_id":1,"reason":"\ud83d\ude00"}]}"#,
    ] {
        check(doc.as_bytes());
    }
}

#[test]
fn limit_helpers() {
    let at = |d: usize| format!("{}{}", "[".repeat(d), "]".repeat(d));
    assert_eq!(json_depth(b"1"), 0);
    assert_eq!(json_depth(br#"{"a":[{}]}"#), 3);
    assert_eq!(json_depth(br#"["[[[", {"]]": "{{"}]"#), 2);
    assert!(within_limits(at(16).as_bytes()));
    assert!(!within_limits(at(17).as_bytes()));
    assert!(validate(at(16).as_bytes(), &DEFAULT_LIMITS).is_ok());
    assert!(validate(at(17).as_bytes(), &DEFAULT_LIMITS).is_err());
    let s = |n: usize| format!("[\"{}\"]", "\\n".repeat(n / 2));
    assert!(within_limits(s(4096).as_bytes()));
    assert!(!within_limits(s(4098).as_bytes()));
    assert!(has_escaped_member_name(br#"{"a\"b":1}"#));
    assert!(!has_escaped_member_name(br#"{"a":"\"b"}"#));
    assert!(!has_escaped_member_name(br#"["\\", {"k": ["\\"]}]"#));
}
