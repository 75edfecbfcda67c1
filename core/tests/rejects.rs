//! What a receiver must reject, each with its precise stable code; and what it must tolerate.
//! Each case edits a golden message textually and re-signs nothing: decoding fails before any
//! signature check.

mod common;

use common::*;
use slup_core::msg::policy::Policy;
use slup_core::msg::response::Ack;
use slup_core::msg::rum::SignedRum;
use slup_core::msg::{request, response};
use slup_core::Code;

fn golden(name: &str) -> String {
    String::from_utf8(std::fs::read(testdata().join("golden").join(name)).unwrap()).unwrap()
}

fn req_code(text: &str) -> Code {
    request::decode(text.as_bytes()).unwrap_err().code
}

fn resp_code(text: &str) -> Code {
    response::decode(text.as_bytes()).unwrap_err().code
}

#[test]
fn request_envelope_rejects() {
    let g = golden("request_hello.json");
    let cases: &[(&str, &str, Code)] = &[
        (
            "\"version\":\"1.3\"",
            "\"version\":\"1.2\"",
            Code::UnsupportedVersion,
        ),
        ("\"version\":\"1.3\"", "\"version\":1.3", Code::WrongType),
        (
            "\"request_type\":\"HELLO\"",
            "\"request_type\":\"GOODBYE\"",
            Code::UnknownRequestType,
        ),
        (
            "\"nonce\":\"11702702165338740293\"",
            "\"nonce\":\"011702702165338740293\"",
            Code::InvalidValue,
        ),
        (
            "\"nonce\":\"11702702165338740293\"",
            "\"nonce\":\"99999999999999999999\"",
            Code::InvalidValue,
        ),
        (
            "\"timestamp\":1629713888600",
            "\"timestamp\":-1",
            Code::NumberOutOfRange,
        ),
        ("\"timestamp\":1629713888600,", "", Code::MissingField),
        (
            "\"udi_pid\":\"C9800-CL-K9\"",
            "\"udi_pid\":\"\"",
            Code::InvalidValue,
        ),
        (
            "\"udi_pid\":\"C9800-CL-K9\"",
            "\"udi_pid\":\"C9800\\u0041\"",
            Code::InvalidValue,
        ),
        (
            "\"request_data\":{}",
            "\"request_data\":{\"x\":1}",
            Code::UnknownField,
        ),
        (
            "\"request_data\":{}",
            "\"request_data\":[]",
            Code::WrongType,
        ),
        (
            "{\"request\":",
            "{\"extra\":1,\"request\":",
            Code::UnknownField,
        ),
        (
            "\"type\":\"SHA256\"",
            "\"type\":\"SHA1\"",
            Code::UnsupportedSignatureType,
        ),
        ("\"key\":\"", "\"key\":\"0", Code::InvalidValue),
        ("\"value\":\"", "\"value\":\"A", Code::InvalidBase64),
    ];
    for (from, to, code) in cases {
        assert!(g.contains(from), "{from}");
        let bad = g.replacen(from, to, 1);
        assert_eq!(req_code(&bad), *code, "{from} -> {to}");
    }
    assert_eq!(req_code(&format!("{g} x")), Code::TrailingBytes);
    assert_eq!(req_code(&g[..g.len() - 1]), Code::JsonSyntax);
    assert_eq!(req_code("[]"), Code::WrongType);
}

#[test]
fn tolerated_positions_skip_unknown_members() {
    let g = golden("request_hello.json");
    // A vendor member in the header and in connect_info: skipped, the envelope decodes.
    let t = g
        .replacen(
            "\"locale\":",
            "\"x_vendor\":{\"deep\":[1,2,{\"a\":null}]},\"locale\":",
            1,
        )
        .replacen(
            "\"additional_info\":\"\"",
            "\"additional_info\":\"\",\"hostname\":\"wlc-1\"",
            1,
        );
    request::decode(t.as_bytes()).unwrap();
    // The same member in a strict object is refused.
    let strict = golden("policy.json").replacen("\"classes\":", "\"x_vendor\":1,\"classes\":", 1);
    assert_eq!(
        Policy::decode(strict.as_bytes()).unwrap_err().code,
        Code::UnknownField
    );
    // RUM measurement meta tolerates `close_reason` (real 17.9 devices send it); the payload
    // itself does not tolerate unknown members.
    let rum = golden("rum_report.json");
    let meta = rum.replacen(
        "\"sudi_list_overflow\":",
        "\"close_reason\":\"ProductReload\",\"sudi_list_overflow\":",
        1,
    );
    assert!(SignedRum::decode(meta.as_bytes()).is_ok());
    let payload = rum.replacen(
        "\"report_id\":",
        "\"utility_enabled\":false,\"report_id\":",
        1,
    );
    assert_eq!(
        SignedRum::decode(payload.as_bytes()).unwrap_err().code,
        Code::UnknownField
    );
}

#[test]
fn response_envelope_rejects() {
    let g = golden("response_usage_ok.json");
    let cases: &[(&str, &str, Code)] = &[
        (
            "\"status_code\":\"OK\"",
            "\"status_code\":\"MAYBE\"",
            Code::UnknownStatus,
        ),
        ("\"mp\":1629713890172", "\"mp\":1e3", Code::WrongType),
        (
            "\"acked\":[1671840757]",
            "\"acked\":[\"1671840757\"]",
            Code::WrongType,
        ),
        (
            "\"acked\":[1671840757]",
            "\"acked\":[18446744073709551616]",
            Code::NumberOutOfRange,
        ),
        (
            "\"first_report_days\":30",
            "\"first_report_days\":3651",
            Code::InvalidValue,
        ),
        ("\"pid\":null", "\"pid\":\"x\"", Code::WrongType),
        (
            "\"response_data\":{",
            "\"response_data\":{\"extra\":0,",
            Code::UnknownField,
        ),
    ];
    for (from, to, code) in cases {
        assert!(g.contains(from), "{from}");
        assert_eq!(resp_code(&g.replacen(from, to, 1)), *code, "{from} -> {to}");
    }
    let many: Vec<String> = (0..65).map(|i| (1000 + i).to_string()).collect();
    let too_many = format!(r#"{{"acked":[{}],"rejected":[]}}"#, many.join(","));
    assert_eq!(
        Ack::decode(too_many.as_bytes()).unwrap_err().code,
        Code::InvalidValue
    );
}

#[test]
fn failed_and_try_again_tolerate_empty_data_only() {
    let g = golden("response_poll_failed.json");
    for ok in ["\"\"", "{}"] {
        response::decode(
            g.replacen(
                "\"response_data\":null",
                &format!("\"response_data\":{ok}"),
                1,
            )
            .as_bytes(),
        )
        .unwrap();
    }
    let bad = g.replacen("\"response_data\":null", "\"response_data\":{\"ack\":1}", 1);
    assert_eq!(resp_code(&bad), Code::WrongType);
}

#[test]
fn license_usage_checks_every_report_when_decoding() {
    let g = golden("request_license_usage.json");
    // Break the second report's payload: the envelope is refused as a whole.
    let idx = g.rfind("\"report_id\":1671840758").unwrap();
    let bad = format!(
        "{}\"report_id\":-1{}",
        &g[..idx],
        &g[idx + "\"report_id\":1671840758".len()..]
    );
    assert_eq!(req_code(&bad), Code::NumberOutOfRange);
}

#[test]
fn oversized_strings_and_inputs_are_refused() {
    let g = golden("request_hello.json");
    let long = "a".repeat(5000);
    let bad = g.replacen("\"locale\":", &format!("\"x\":\"{long}\",\"locale\":"), 1);
    assert_eq!(req_code(&bad), Code::StringTooLong);
    let huge = format!("{{\"x\":\"{}\"}}", "a ".repeat(600_000));
    assert_eq!(req_code(&huge), Code::MessageTooLarge);
}
