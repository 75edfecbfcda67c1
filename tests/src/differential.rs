//! Differential testing of slup's JSON handling against `serde_json` on the same bytes.
//!
//! [`check`] runs three comparisons and panics on any disagreement that is not one of the
//! allowed differences listed below:
//!
//! - **(a) scanner**: [`validate`] against `serde_json::from_slice::<Value>`. If serde_json
//!   accepts and the input is within slup's limits, slup must accept; if slup accepts,
//!   serde_json must accept.
//! - **(b) typed**: [`Policy::decode`] and [`Ack::decode`] against the `serde_json` value. The
//!   value is checked against the shape those decoders implement (strict objects, required
//!   members, `null` for an absent optional member, canonical unsigned integers, day counts up to
//!   [`MAX_DAYS`], free text up to [`MAX_TEXT_LEN`] raw bytes, at most [`MAX_ACKED`] ids and
//!   [`MAX_REJECTED`] rejections, no duplicate member names); slup must accept exactly when the
//!   shape is right, and then every field (name unescaped, days, ids, reasons) must be equal.
//! - **(c) escaped member names**, in every full decoder (request and response envelopes, RUM
//!   reports, trust codes, policies, ACKs, error bodies): RFC 8259 compares member names after
//!   unescaping, so when slup accepts a document, the same document with every escaped member
//!   name rewritten in plain form must be accepted too and decode to the same values. That is
//!   what a standard parser (serde_json, Python's `json`) sees; a document whose meaning depends
//!   on how a name is spelled is a parser differential.
//!
//! Allowed differences (principled, documented):
//!
//! 1. **Limits.** slup rejects documents nested deeper than 16 arrays/objects, strings (and
//!    number tokens) longer than 4096 raw bytes, and inputs over 1 MiB
//!    ([`DEFAULT_LIMITS`]); `serde_json` has no such limits below its recursion limit of 128.
//!    Such inputs must be rejected by slup *with a limit code* (`DepthExceeded`,
//!    `StringTooLong`, `MessageTooLarge`, or `EscapedMemberName` for 4.).
//! 2. **Numbers that overflow `f64`** (`1e400`, `-1e400`): RFC 8259 allows any magnitude and
//!    slup's scanner accepts it; `serde_json` (without `arbitrary_precision`) reports "number
//!    out of range". That message is the only rejection tolerated, and the same document with
//!    every number replaced by `0` must then be accepted by `serde_json`.
//! 3. **Duplicate member names** are valid JSON for both scanners (`validate` does not look at
//!    names, `serde_json::Value` keeps the last), but slup's typed decoders reject them
//!    (`DuplicateField`, or `InvalidValue` from serde's derive): (b) therefore runs its own
//!    duplicate check and counts a duplicate as a wrong shape.
//!
//! 4. **Escaped member names** (`{"n\u0061me":1}`) are refused by slup's scanner
//!    (`EscapedMemberName`, docs/PROTOCOL.md "text": producers never escape names, so two
//!    spellings of one name can never be read differently). RFC 8259 allows them and
//!    serde_json unescapes them. Like a limit, this is checked to be the code slup reports.
//!
//! Not differences (both agree, checked by the JSONTestSuite test too): lone, truncated or
//! inverted surrogate escapes, invalid or overlong UTF-8, byte-order marks, control characters
//! in strings, `-0`, numbers that underflow to zero, integers too big for `u64`/`i64` (both
//! accept; serde_json reads an `f64`), DEL and non-characters in strings.

// A differential oracle: panicking on disagreement is its whole job.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fmt;

use serde_json::{Map, Value};
use slup_core::json::{validate, DEFAULT_LIMITS};
use slup_core::msg::policy::{ClassAttrs, Policy, MAX_DAYS};
use slup_core::msg::request::{self, RequestData};
use slup_core::msg::response::{self, Ack, ErrorBody, ResponseData, MAX_ACKED, MAX_REJECTED};
use slup_core::msg::rum::{RumPayload, SignedRum};
use slup_core::msg::trust::{TrustCode, TrustCodePayload};
use slup_core::msg::SignedList;
use slup_core::types::MAX_TEXT_LEN;
use slup_core::Code;

/// Runs every differential check on `data`; panics on a disagreement.
pub fn check(data: &[u8]) {
    check_validate(data);
    check_policy(data);
    check_ack(data);
    check_escaped_names(data);
}

/// One lexical token of a document that is already known to be valid JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TokKind {
    Open,
    Close,
    /// A string that is an object member name.
    Key,
    /// A string value.
    Str,
    Number,
    Literal,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: TokKind,
    /// Byte range of the token; for strings, the quotes included.
    start: usize,
    end: usize,
    /// Containers enclosing the token (for `Open`, those enclosing the new container).
    depth: usize,
}

/// Splits valid JSON into tokens. Only meaningful on input a conforming parser accepted.
fn tokens(b: &[u8]) -> Vec<Tok> {
    let mut out = Vec::new();
    // One entry per open container: true for an object.
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let depth = stack.len();
        match c {
            b'{' | b'[' => {
                out.push(Tok {
                    kind: TokKind::Open,
                    start: i,
                    end: i + 1,
                    depth,
                });
                stack.push(c == b'{');
                expect_key = c == b'{';
                i += 1;
            }
            b'}' | b']' => {
                stack.pop();
                out.push(Tok {
                    kind: TokKind::Close,
                    start: i,
                    end: i + 1,
                    depth: stack.len(),
                });
                expect_key = false;
                i += 1;
            }
            b',' => {
                expect_key = stack.last() == Some(&true);
                i += 1;
            }
            b'"' => {
                let start = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push(Tok {
                    kind: if expect_key {
                        TokKind::Key
                    } else {
                        TokKind::Str
                    },
                    start,
                    end: i.min(b.len()),
                    depth,
                });
                expect_key = false;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < b.len() && matches!(b[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                out.push(Tok {
                    kind: TokKind::Number,
                    start,
                    end: i,
                    depth,
                });
            }
            b't' | b'f' | b'n' => {
                let start = i;
                while i < b.len() && b[i].is_ascii_alphabetic() {
                    i += 1;
                }
                out.push(Tok {
                    kind: TokKind::Literal,
                    start,
                    end: i,
                    depth,
                });
            }
            // Whitespace and ':'.
            _ => i += 1,
        }
    }
    out
}

/// Nesting depth of valid JSON (`0` for a scalar, `1` for `[]`).
fn depth_of(toks: &[Tok]) -> usize {
    toks.iter()
        .filter(|t| t.kind == TokKind::Open)
        .map(|t| t.depth + 1)
        .max()
        .unwrap_or(0)
}

/// `true` if some member name of valid JSON `data` holds a backslash escape.
pub fn has_escaped_member_name(data: &[u8]) -> bool {
    tokens(data)
        .iter()
        .any(|t| t.kind == TokKind::Key && data[t.start..t.end].contains(&b'\\'))
}

/// `true` if valid JSON `data` is within [`DEFAULT_LIMITS`]: the bounds slup adds to RFC 8259
/// (depth, string and number length, input size, no escaped member names).
pub fn within_limits(data: &[u8]) -> bool {
    if data.len() > DEFAULT_LIMITS.max_input_len {
        return false;
    }
    let toks = tokens(data);
    let escaped_name = |t: &Tok| {
        t.kind == TokKind::Key && data.get(t.start..t.end).is_some_and(|r| r.contains(&b'\\'))
    };
    depth_of(&toks) <= DEFAULT_LIMITS.max_depth
        && (DEFAULT_LIMITS.escaped_names || !toks.iter().any(escaped_name))
        && toks.iter().all(|t| {
            let raw = match t.kind {
                // Between the quotes.
                TokKind::Key | TokKind::Str => t.end.saturating_sub(t.start + 2),
                TokKind::Number => t.end - t.start,
                _ => 0,
            };
            raw <= DEFAULT_LIMITS.max_string_len
        })
}

/// The nesting depth of valid JSON `data`, computed independently of slup's scanner.
pub fn json_depth(data: &[u8]) -> usize {
    depth_of(&tokens(data))
}

/// Valid JSON `data` with every number token replaced by `0`.
fn zero_numbers(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut last = 0;
    for t in tokens(data).iter().filter(|t| t.kind == TokKind::Number) {
        out.extend_from_slice(&data[last..t.start]);
        out.push(b'0');
        last = t.end;
    }
    out.extend_from_slice(&data[last..]);
    out
}

fn show(data: &[u8]) -> String {
    let s = String::from_utf8_lossy(data);
    if s.len() > 300 {
        let cut = (0..=300)
            .rev()
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}… ({} bytes)", &s[..cut], data.len())
    } else {
        format!("{s:?}")
    }
}

/// (a) The scanner against `serde_json::Value`.
fn check_validate(data: &[u8]) {
    let ours = validate(data, &DEFAULT_LIMITS);
    let theirs = serde_json::from_slice::<Value>(data);
    match (&ours, &theirs) {
        (Err(_), Err(_)) => {}
        (Ok(()), Ok(_)) => {
            assert!(
                within_limits(data),
                "slup accepted a document beyond its limits: {}",
                show(data)
            );
        }
        (Err(e), Ok(_)) => {
            if within_limits(data) {
                panic!(
                    "serde_json accepts, slup rejects ({e:?}) a document within limits: {}",
                    show(data)
                );
            }
            assert!(
                matches!(
                    e.code,
                    Code::DepthExceeded
                        | Code::StringTooLong
                        | Code::MessageTooLarge
                        | Code::EscapedMemberName
                ),
                "beyond limits, but slup's code is {e:?}, not a limit code: {}",
                show(data)
            );
        }
        (Ok(()), Err(e)) => {
            let msg = e.to_string();
            assert!(
                msg.starts_with("number out of range"),
                "slup accepts, serde_json rejects ({msg}): {}",
                show(data)
            );
            let zeroed = zero_numbers(data);
            if let Err(e2) = serde_json::from_slice::<Value>(&zeroed) {
                panic!(
                    "slup accepts; serde_json rejects an f64 overflow and, with numbers zeroed, \
                     still rejects ({e2}): {}",
                    show(data)
                );
            }
        }
    }
}

/// `true` if some object of valid JSON `data` names a member twice (compared after unescaping).
fn has_duplicate_members(data: &[u8]) -> bool {
    // One set of names per open container (arrays get an unused one).
    let mut names: Vec<HashSet<String>> = Vec::new();
    for t in tokens(data) {
        match t.kind {
            TokKind::Open => names.push(HashSet::new()),
            TokKind::Close => {
                names.pop();
            }
            TokKind::Key => {
                let Ok(k) = serde_json::from_slice::<String>(&data[t.start..t.end]) else {
                    return true;
                };
                if let Some(set) = names.last_mut() {
                    if !set.insert(k) {
                        return true;
                    }
                }
            }
            _ => {}
        }
    }
    false
}

/// The value as `serde_json` reads it, if it is valid JSON without duplicate member names.
fn no_dup_value(data: &[u8]) -> Option<Value> {
    let v = serde_json::from_slice::<Value>(data).ok()?;
    (!has_duplicate_members(data)).then_some(v)
}

/// Raw lengths (between the quotes) of the string *values* at `depth`, in document order.
fn raw_string_lens(data: &[u8], depth: usize) -> Vec<usize> {
    tokens(data)
        .iter()
        .filter(|t| t.kind == TokKind::Str && t.depth == depth)
        .map(|t| t.end.saturating_sub(t.start + 2))
        .collect()
}

/// Members of `obj` are all in `allowed` and every one of `required` is present.
fn members_ok(obj: &Map<String, Value>, allowed: &[&str], required: &[&str]) -> bool {
    obj.keys().all(|k| allowed.contains(&k.as_str()))
        && required.iter().all(|r| obj.contains_key(*r))
}

/// `null` or absent: an optional member left out.
fn absent(v: Option<&Value>) -> bool {
    matches!(v, None | Some(Value::Null))
}

/// A canonical unsigned integer (no sign, fraction or exponent): `serde_json` keeps exactly
/// those as `u64`.
fn as_uint(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) if n.is_u64() => n.as_u64(),
        _ => None,
    }
}

const CLASS_NAMES: [&str; 4] = ["perpetual", "subscription", "enforced", "export"];
const DAY_NAMES: [&str; 3] = [
    "first_report_days",
    "reporting_frequency_days",
    "report_on_change_days",
];

/// Does `v` (read from `data`) have exactly the shape and values `Policy::decode` accepts?
fn policy_shape_ok(data: &[u8], v: &Value) -> bool {
    let Value::Object(root) = v else { return false };
    if !members_ok(
        root,
        &["name", "ack_required", "classes"],
        &["name", "classes"],
    ) {
        return false;
    }
    // In a well-shaped policy the only string value inside the root object is `name`.
    let Some(Value::String(_)) = root.get("name") else {
        return false;
    };
    match raw_string_lens(data, 1).as_slice() {
        [n] if *n <= MAX_TEXT_LEN => {}
        _ => return false,
    }
    if !matches!(
        root.get("ack_required"),
        None | Some(Value::Null | Value::Bool(_))
    ) {
        return false;
    }
    let Some(Value::Object(classes)) = root.get("classes") else {
        return false;
    };
    if !members_ok(classes, &CLASS_NAMES, &[]) {
        return false;
    }
    classes.values().all(|attrs| match attrs {
        Value::Null => true,
        Value::Object(a) => {
            members_ok(a, &DAY_NAMES, &[])
                && a.values()
                    .all(|d| d.is_null() || as_uint(d).is_some_and(|d| d <= u64::from(MAX_DAYS)))
        }
        _ => false,
    })
}

fn days(v: Option<&Value>) -> Option<u16> {
    if absent(v) {
        return None;
    }
    let d = v
        .and_then(as_uint)
        .expect("day count is an unsigned integer");
    Some(u16::try_from(d).expect("day count fits u16"))
}

fn class_attrs(v: Option<&Value>) -> Option<ClassAttrs> {
    if absent(v) {
        return None;
    }
    let a = v.and_then(Value::as_object).expect("class is an object");
    Some(ClassAttrs {
        first_report_days: days(a.get(DAY_NAMES[0])),
        reporting_frequency_days: days(a.get(DAY_NAMES[1])),
        report_on_change_days: days(a.get(DAY_NAMES[2])),
    })
}

/// (b) `Policy::decode` against the `serde_json` value.
fn check_policy(data: &[u8]) {
    let ours = Policy::decode(data);
    let theirs = no_dup_value(data);
    let shape_ok = theirs
        .as_ref()
        .is_some_and(|v| within_limits(data) && policy_shape_ok(data, v));
    let p = match (ours, shape_ok) {
        (Ok(p), true) => p,
        (Err(_), false) => return,
        (Ok(p), false) => panic!(
            "Policy::decode accepts ({p:?}) what serde_json reads as no valid policy ({:?}): {}",
            theirs,
            show(data)
        ),
        (Err(e), true) => panic!(
            "Policy::decode rejects ({e:?}) a valid policy ({:?}): {}",
            theirs,
            show(data)
        ),
    };
    let v = theirs.expect("shape checked");
    let root = v.as_object().expect("shape checked");
    let name = root
        .get("name")
        .and_then(Value::as_str)
        .expect("shape checked");
    assert_eq!(p.name.to_string(), name, "policy name: {}", show(data));
    let ack_required = if absent(root.get("ack_required")) {
        None
    } else {
        root.get("ack_required").and_then(Value::as_bool)
    };
    assert_eq!(p.ack_required, ack_required, "ack_required: {}", show(data));
    let classes = root
        .get("classes")
        .and_then(Value::as_object)
        .expect("shape checked");
    let c = &p.classes;
    let ours_classes = [c.perpetual, c.subscription, c.enforced, c.export];
    for (name, ours_class) in CLASS_NAMES.iter().zip(ours_classes) {
        assert_eq!(
            ours_class,
            class_attrs(classes.get(*name)),
            "class {name}: {}",
            show(data)
        );
    }
}

/// Does `v` (read from `data`) have exactly the shape and values `Ack::decode` accepts?
fn ack_shape_ok(data: &[u8], v: &Value) -> bool {
    let Value::Object(root) = v else { return false };
    if !members_ok(root, &["acked", "rejected"], &["acked", "rejected"]) {
        return false;
    }
    let Some(Value::Array(acked)) = root.get("acked") else {
        return false;
    };
    if acked.len() > MAX_ACKED || !acked.iter().all(|a| as_uint(a).is_some()) {
        return false;
    }
    let Some(Value::Array(rejected)) = root.get("rejected") else {
        return false;
    };
    if rejected.len() > MAX_REJECTED {
        return false;
    }
    let each = rejected.iter().all(|r| match r {
        Value::Object(o) => {
            members_ok(o, &["report_id", "reason"], &["report_id", "reason"])
                && o.get("report_id").and_then(as_uint).is_some()
                && o.get("reason").is_some_and(Value::is_string)
        }
        _ => false,
    });
    // In a well-shaped ACK the string values at depth 3 are the reasons, in order.
    each && raw_string_lens(data, 3).iter().all(|&n| n <= MAX_TEXT_LEN)
}

/// (b) `Ack::decode` against the `serde_json` value.
fn check_ack(data: &[u8]) {
    let ours = Ack::decode(data);
    let theirs = no_dup_value(data);
    let shape_ok = theirs
        .as_ref()
        .is_some_and(|v| within_limits(data) && ack_shape_ok(data, v));
    let a = match (ours, shape_ok) {
        (Ok(a), true) => a,
        (Err(_), false) => return,
        (Ok(a), false) => panic!(
            "Ack::decode accepts ({a:?}) what serde_json reads as no valid ACK ({:?}): {}",
            theirs,
            show(data)
        ),
        (Err(e), true) => panic!(
            "Ack::decode rejects ({e:?}) a valid ACK ({:?}): {}",
            theirs,
            show(data)
        ),
    };
    let v = theirs.expect("shape checked");
    let acked: Vec<u64> = v["acked"]
        .as_array()
        .expect("shape checked")
        .iter()
        .map(|a| as_uint(a).expect("shape checked"))
        .collect();
    let ours_acked: Vec<u64> = a.acked.iter().map(|r| r.0).collect();
    assert_eq!(ours_acked, acked, "acked: {}", show(data));
    let rejected: Vec<(u64, String)> = v["rejected"]
        .as_array()
        .expect("shape checked")
        .iter()
        .map(|r| {
            (
                as_uint(&r["report_id"]).expect("shape checked"),
                r["reason"].as_str().expect("shape checked").to_owned(),
            )
        })
        .collect();
    let ours_rejected: Vec<(u64, String)> = a
        .rejected
        .iter()
        .map(|r| (r.report_id.0, r.reason.to_string()))
        .collect();
    assert_eq!(ours_rejected, rejected, "rejected: {}", show(data));
}

/// Valid JSON `data` with every member name that holds an escape rewritten in its plain,
/// `serde_json`-encoded form; `None` if no name holds an escape.
fn canonical_names(data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(data.len());
    let mut last = 0;
    let mut changed = false;
    for t in tokens(data) {
        let raw = &data[t.start..t.end];
        if t.kind != TokKind::Key || !raw.contains(&b'\\') {
            continue;
        }
        let name: String = serde_json::from_slice(raw).expect("valid member name");
        let plain = serde_json::to_vec(&name).expect("a string encodes");
        if plain != raw {
            out.extend_from_slice(&data[last..t.start]);
            out.extend_from_slice(&plain);
            last = t.end;
            changed = true;
        }
    }
    out.extend_from_slice(&data[last..]);
    changed.then_some(out)
}

fn rum_payloads<'a>(list: &SignedList<'a>) -> Vec<Option<RumPayload<'a>>> {
    list.iter()
        .map(|b| SignedRum::decode(b).ok().map(|r| r.payload))
        .collect()
}

fn trust_payloads<'a>(list: &SignedList<'a>) -> Vec<Option<TrustCodePayload<'a>>> {
    list.iter()
        .map(|b| TrustCode::decode(b).ok().map(|t| t.payload))
        .collect()
}

fn same_request_data(a: &RequestData<'_>, b: &RequestData<'_>) -> bool {
    match (a, b) {
        // Signed lists compare by bytes; compare what their elements decode to.
        (RequestData::LicenseUsage(x), RequestData::LicenseUsage(y)) => {
            rum_payloads(x) == rum_payloads(y)
        }
        _ => a == b,
    }
}

fn same_response_data(a: &ResponseData<'_>, b: &ResponseData<'_>) -> bool {
    match (a, b) {
        (
            ResponseData::Trust {
                trust_codes: x,
                policy: px,
            },
            ResponseData::Trust {
                trust_codes: y,
                policy: py,
            },
        ) => px == py && trust_payloads(x) == trust_payloads(y),
        _ => a == b,
    }
}

/// (c) Escaped member names mean what their plain spelling means, in every decoder. With
/// [`DEFAULT_LIMITS`] refusing escaped names outright this holds trivially; it guards the rule
/// (and any decoder that relaxes it).
fn check_escaped_names(data: &[u8]) {
    // Only documents some decoder accepts matter, and those are valid JSON.
    if validate(data, &DEFAULT_LIMITS).is_err() {
        return;
    }
    let Some(plain) = canonical_names(data) else {
        return;
    };
    let differ = |what: &str, a: &dyn fmt::Debug, b: &dyn fmt::Debug| -> ! {
        panic!(
            "{what}: the document is accepted ({a:?}), but with its member names unescaped \
             it reads as {b:?}: {}",
            show(data)
        )
    };
    if let Ok(a) = request::decode(data) {
        match request::decode(&plain) {
            Ok(b)
                if a.request.header == b.request.header
                    && same_request_data(&a.request.data, &b.request.data)
                    && a.signed.signature == b.signed.signature => {}
            b => differ("request", &a.request, &b.map(|r| r.request)),
        }
    }
    if let Ok(a) = response::decode(data) {
        match response::decode(&plain) {
            Ok(b)
                if a.response.header == b.response.header
                    && same_response_data(&a.response.data, &b.response.data)
                    && a.signed.signature == b.signed.signature => {}
            b => differ("response", &a.response, &b.map(|r| r.response)),
        }
    }
    if let Ok(a) = SignedRum::decode(data) {
        match SignedRum::decode(&plain) {
            Ok(b) if a.payload == b.payload && a.signed.signature == b.signed.signature => {}
            b => differ("RUM report", &a.payload, &b.map(|r| r.payload)),
        }
    }
    if let Ok(a) = TrustCode::decode(data) {
        match TrustCode::decode(&plain) {
            Ok(b) if a.payload == b.payload && a.signed.signature == b.signed.signature => {}
            b => differ("trust code", &a.payload, &b.map(|t| t.payload)),
        }
    }
    if let Ok(a) = Policy::decode(data) {
        match Policy::decode(&plain) {
            Ok(b) if a == b => {}
            b => differ("policy", &a, &b),
        }
    }
    if let Ok(a) = Ack::decode(data) {
        match Ack::decode(&plain) {
            Ok(b) if a == b => {}
            b => differ("ack", &a, &b),
        }
    }
    if let Ok(a) = ErrorBody::decode(data) {
        match ErrorBody::decode(&plain) {
            Ok(b) if a == b => {}
            b => differ("error body", &a, &b),
        }
    }
}
