//! The real JSONTestSuite (`../shared/testdata/JSONTestSuite/test_parsing`) through slup.
//!
//! First the scanner alone: every `y_` file is accepted (unless it nests deeper than our limit
//! or escapes a member name: both listed), every `n_` file rejected, and the verdict on every `i_` file (implementation-defined) is
//! pinned in [`I_ACCEPTED`] so a change is noticed. Then every file is spliced into real
//! messages, as the value of a known member and of an unknown one, in strict and in tolerant
//! objects: no `n_` input may ever get through a full decoder, and a `y_` input in a position
//! where unknown members are tolerated may only fail on the depth limit (or on an escaped member
//! name, which slup refuses everywhere).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::path::PathBuf;

use slup_core::json::{validate, DEFAULT_LIMITS};
use slup_core::msg::policy::Policy;
use slup_core::msg::response::Ack;
use slup_core::msg::rum::SignedRum;
use slup_core::msg::{request, response};
use slup_core::{Code, DecodeError};
use slup_tests::differential::{has_escaped_member_name, json_depth};
use slup_tests::{shared_dir, workspace_root};

/// `y_` files that nest deeper than [`DEFAULT_LIMITS`] allows and are therefore rejected with
/// `DepthExceeded`. None in the current suite (the deepest `y_` file nests 2 levels); the test
/// recomputes every depth so this list cannot go stale.
const Y_DEEPER_THAN_LIMIT: &[&str] = &[];

/// `y_` files with a backslash escape in a member name, which slup refuses
/// (`EscapedMemberName`, docs/PROTOCOL.md "text"). Recomputed by the test as well.
const Y_ESCAPED_MEMBER_NAME: &[&str] = &["y_object_escaped_null_in_key.json"];

/// The code slup must refuse valid JSON `content` with when it sits `base` levels deep, or
/// `None` if it must be accepted; `name` must be listed accordingly.
fn refusal(name: &str, content: &[u8], base: usize) -> Option<Code> {
    let deep = base + json_depth(content) > DEFAULT_LIMITS.max_depth;
    let escaped = has_escaped_member_name(content);
    if base == 0 {
        assert_eq!(
            deep,
            Y_DEEPER_THAN_LIMIT.contains(&name),
            "{name}: Y_DEEPER_THAN_LIMIT is out of date"
        );
        assert_eq!(
            escaped,
            Y_ESCAPED_MEMBER_NAME.contains(&name),
            "{name}: Y_ESCAPED_MEMBER_NAME is out of date"
        );
    }
    if deep {
        Some(Code::DepthExceeded)
    } else if escaped {
        Some(Code::EscapedMemberName)
    } else {
        None
    }
}

/// The `i_` files slup's scanner accepts; every other `i_` file is rejected. The accepted ones
/// are all numbers: RFC 8259 puts no bound on magnitude or precision and slup never converts
/// numbers it does not decode. Rejected: invalid UTF-8, unpaired or inverted surrogate escapes,
/// UTF-16 and byte-order marks (`JsonSyntax`/`InvalidUtf8`), and 500 nested arrays
/// (`DepthExceeded`).
const I_ACCEPTED: &[&str] = &[
    "i_number_double_huge_neg_exp.json",
    "i_number_huge_exp.json",
    "i_number_neg_int_huge_exp.json",
    "i_number_pos_double_huge_exp.json",
    "i_number_real_neg_overflow.json",
    "i_number_real_pos_overflow.json",
    "i_number_real_underflow.json",
    "i_number_too_big_neg_int.json",
    "i_number_too_big_pos_int.json",
    "i_number_very_big_negative_int.json",
];

/// Every `test_parsing` file, sorted by name; `None` (with a notice) without `../shared`.
fn suite() -> Option<Vec<(String, Vec<u8>)>> {
    let Some(shared) = shared_dir() else {
        println!("NOTICE: ../shared not found beside the checkout; JSONTestSuite tests skipped");
        return None;
    };
    let dir = shared.join("testdata/JSONTestSuite/test_parsing");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let out: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&p).unwrap())
        })
        .collect();
    assert!(out.len() > 300, "JSONTestSuite looks incomplete");
    Some(out)
}

#[test]
fn validator_verdicts() {
    let Some(files) = suite() else { return };
    let (mut y, mut n, mut i_ok, mut i_err) = (0, 0, 0, 0);
    let mut i_seen = Vec::new();
    for (name, data) in &files {
        let verdict = validate(data, &DEFAULT_LIMITS);
        if name.starts_with("y_") {
            match refusal(name, data, 0) {
                Some(code) => assert_eq!(verdict.map_err(|e| e.code), Err(code), "{name}"),
                None => {
                    assert!(verdict.is_ok(), "{name} rejected: {verdict:?}");
                    y += 1;
                }
            }
        } else if name.starts_with("n_") {
            assert!(verdict.is_err(), "{name} accepted");
            n += 1;
        } else if name.starts_with("i_") {
            i_seen.push(name.as_str());
            assert_eq!(
                verdict.is_ok(),
                I_ACCEPTED.contains(&name.as_str()),
                "{name}: verdict {verdict:?} differs from I_ACCEPTED"
            );
            if verdict.is_ok() {
                i_ok += 1;
            } else {
                i_err += 1;
            }
        }
        // And the serde_json differential on every file.
        slup_tests::differential::check(data);
    }
    for listed in I_ACCEPTED {
        assert!(i_seen.contains(listed), "{listed} is not in the suite");
    }
    println!(
        "y_ accepted: {y} (refused by rule: {Y_DEEPER_THAN_LIMIT:?} {Y_ESCAPED_MEMBER_NAME:?}); \
         n_ rejected: {n}; i_ accepted: {i_ok}, rejected: {i_err}"
    );
}

/// A place in a real message where a suite file's content becomes a member value.
struct Position {
    name: &'static str,
    golden: &'static str,
    /// Text that occurs exactly once in the golden, replaced by `before + content + after`.
    anchor: &'static str,
    before: &'static str,
    after: &'static str,
    decode: fn(&[u8]) -> Result<(), DecodeError>,
    /// An unknown member of an object that tolerates unknown members: valid JSON there must
    /// not fail the decoder. Holds the nesting depth of the member's value.
    tolerant_at_depth: Option<usize>,
}

fn dec_request(b: &[u8]) -> Result<(), DecodeError> {
    request::decode(b).map(|_| ())
}
fn dec_response(b: &[u8]) -> Result<(), DecodeError> {
    response::decode(b).map(|_| ())
}
fn dec_policy(b: &[u8]) -> Result<(), DecodeError> {
    Policy::decode(b).map(|_| ())
}
fn dec_ack(b: &[u8]) -> Result<(), DecodeError> {
    Ack::decode(b).map(|_| ())
}
fn dec_rum(b: &[u8]) -> Result<(), DecodeError> {
    SignedRum::decode(b).map(|_| ())
}

const POSITIONS: &[Position] = &[
    Position {
        name: "request header `locale` (known)",
        golden: "request_hello.json",
        anchor: r#""locale":"en_US.UTF-8""#,
        before: r#""locale":"#,
        after: "",
        decode: dec_request,
        tolerant_at_depth: None,
    },
    Position {
        name: "request header `x_vendor` (unknown, tolerated)",
        golden: "request_hello.json",
        anchor: r#""header":{"#,
        before: r#""header":{"x_vendor":"#,
        after: ",",
        decode: dec_request,
        tolerant_at_depth: Some(3),
    },
    Position {
        name: "request connect_info `x_vendor` (unknown, tolerated)",
        golden: "request_trust_sync.json",
        anchor: r#""connect_info":{"#,
        before: r#""connect_info":{"x_vendor":"#,
        after: ",",
        decode: dec_request,
        tolerant_at_depth: Some(4),
    },
    Position {
        name: "request_data `x_vendor` (unknown, strict)",
        golden: "request_trust_sync.json",
        anchor: r#""request_data":{"#,
        before: r#""request_data":{"x_vendor":"#,
        after: ",",
        decode: dec_request,
        tolerant_at_depth: None,
    },
    Position {
        name: "response header `message` (known)",
        golden: "response_usage_ok.json",
        anchor: r#""message":"""#,
        before: r#""message":"#,
        after: "",
        decode: dec_response,
        tolerant_at_depth: None,
    },
    Position {
        name: "response header `x_vendor` (unknown, tolerated)",
        golden: "response_usage_ok.json",
        anchor: r#""header":{"#,
        before: r#""header":{"x_vendor":"#,
        after: ",",
        decode: dec_response,
        tolerant_at_depth: Some(3),
    },
    Position {
        name: "signature `x_vendor` (unknown, strict)",
        golden: "response_usage_ok.json",
        anchor: r#"{"signature":{"#,
        before: r#"{"signature":{"x_vendor":"#,
        after: ",",
        decode: dec_response,
        tolerant_at_depth: None,
    },
    Position {
        name: "policy `name` (known)",
        golden: "policy.json",
        anchor: r#""name":"Custom Policy""#,
        before: r#""name":"#,
        after: "",
        decode: dec_policy,
        tolerant_at_depth: None,
    },
    Position {
        name: "policy `x_vendor` (unknown, strict)",
        golden: "policy.json",
        anchor: r#"{"name""#,
        before: r#"{"x_vendor":"#,
        after: r#","name""#,
        decode: dec_policy,
        tolerant_at_depth: None,
    },
    Position {
        name: "ack `reason` (known)",
        golden: "ack.json",
        anchor: r#""reason":"report window ends in the future""#,
        before: r#""reason":"#,
        after: "",
        decode: dec_ack,
        tolerant_at_depth: None,
    },
    Position {
        name: "RUM measurement meta `x_vendor` (unknown, tolerated)",
        golden: "rum_report.json",
        anchor: r#""meta":{"#,
        before: r#""meta":{"x_vendor":"#,
        after: ",",
        decode: dec_rum,
        tolerant_at_depth: Some(5),
    },
    Position {
        name: "RUM measurement meta `termination_reason` (known)",
        golden: "rum_report.json",
        anchor: r#""termination_reason":"ReportTime""#,
        before: r#""termination_reason":"#,
        after: "",
        decode: dec_rum,
        tolerant_at_depth: None,
    },
];

fn golden(name: &str) -> String {
    let p = workspace_root().join("core/testdata/golden").join(name);
    fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// `golden` with `pos.anchor` replaced by `before + content + after`.
fn splice(golden: &str, pos: &Position, content: &[u8]) -> Vec<u8> {
    let at = golden
        .find(pos.anchor)
        .unwrap_or_else(|| panic!("{}: anchor not in {}", pos.name, pos.golden));
    assert_eq!(
        golden.matches(pos.anchor).count(),
        1,
        "{}: anchor not unique",
        pos.name
    );
    let mut out = Vec::with_capacity(golden.len() + content.len() + 32);
    out.extend_from_slice(&golden.as_bytes()[..at]);
    out.extend_from_slice(pos.before.as_bytes());
    out.extend_from_slice(content);
    out.extend_from_slice(pos.after.as_bytes());
    out.extend_from_slice(&golden.as_bytes()[at + pos.anchor.len()..]);
    out
}

#[test]
fn known_and_unknown_field_positions() {
    let Some(files) = suite() else { return };
    for pos in POSITIONS {
        let g = golden(pos.golden);
        // The unmodified anchor content decodes: the position is a real one.
        (pos.decode)(g.as_bytes()).unwrap_or_else(|e| panic!("{}: golden: {e:?}", pos.name));
        let (mut accepted, mut rejected) = (0, 0);
        for (name, content) in &files {
            let msg = splice(&g, pos, content);
            let verdict = (pos.decode)(&msg);
            if name.starts_with("n_") {
                assert!(
                    verdict.is_err(),
                    "{}: {name} made it through the decoder",
                    pos.name
                );
            }
            if let (true, Some(base)) = (name.starts_with("y_"), pos.tolerant_at_depth) {
                if let Some(code) = refusal(name, content, base) {
                    assert_eq!(
                        verdict.map_err(|e| e.code),
                        Err(code),
                        "{}: {name}",
                        pos.name
                    );
                } else {
                    assert!(
                        verdict.is_ok(),
                        "{}: valid JSON {name} in a tolerated unknown member fails: {verdict:?}",
                        pos.name
                    );
                }
            }
            if verdict.is_ok() {
                accepted += 1;
            } else {
                rejected += 1;
            }
        }
        println!("{}: {accepted} accepted, {rejected} rejected", pos.name);
    }
}

/// Runs `f` on a thread with a 64 KiB stack: a recursive descent into 10 000 levels would
/// overflow it.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .name("small-stack".into())
        .stack_size(64 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn nesting_bomb_in_unknown_field() {
    let g = golden("request_hello.json");
    let pos = &POSITIONS[1];
    assert_eq!(pos.name, "request header `x_vendor` (unknown, tolerated)");
    let arrays = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let objects = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    for bomb in [arrays, objects] {
        let msg = splice(&g, pos, bomb.as_bytes());
        let code = on_small_stack(move || request::decode(&msg).map(|_| ()).map_err(|e| e.code));
        assert_eq!(code, Err(Code::DepthExceeded), "{}…", &bomb[..10]);
    }
}
