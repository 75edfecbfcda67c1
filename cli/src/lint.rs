//! A tolerant second reading of a message, to say *what* is wrong and *where*, beyond the
//! strict decoder's first stop: keys lost or misspelt, members in the wrong object, an input
//! that ends inside open objects, line-wrapped base64, a `null` nonce.
//!
//! It never decides validity (the strict decoders do); it only explains. It reads past
//! syntax errors where the intent is clear (a string with no member name, a missing comma)
//! and reports each one with its byte offset.

use base64_len::decoded_len;
use slup_core::Code;

/// One thing found, at a byte offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// Byte offset in the input.
    pub offset: usize,
    /// The code the strict decoder would give it.
    pub code: Code,
    /// What is wrong, in words.
    pub text: String,
}

/// Every member name message version 1.3 defines, anywhere, plus the two header members real
/// services add (`locale`, `sch_response`).
const KNOWN: &[&str] = &[
    "ack",
    "ack_required",
    "acked",
    "added_sudi_list",
    "additional_info",
    "agent_actions",
    "capabilities",
    "cert_sn",
    "classes",
    "clock_change_delta",
    "code",
    "connect_info",
    "end_time",
    "enforced",
    "entitlement_tag",
    "error",
    "export",
    "first_report_days",
    "force",
    "ha_udi",
    "header",
    "id_cert_serial_number",
    "id_token",
    "issued_at",
    "key",
    "locale",
    "log_time",
    "measurements",
    "members",
    "message",
    "meta",
    "metric_name",
    "mp",
    "name",
    "nonce",
    "num_samples",
    "original_pid",
    "original_request_type",
    "payload",
    "perpetual",
    "pid",
    "policy",
    "poll_id",
    "prod",
    "product_instance_identifier",
    "public_key",
    "reason",
    "rejected",
    "removed_sudi_list",
    "report_id",
    "report_on_change_days",
    "reporting_frequency_days",
    "reports",
    "request",
    "request_data",
    "request_type",
    "response",
    "response_data",
    "retry_time_seconds",
    "role",
    "sample_interval",
    "sch_response",
    "scope",
    "signature",
    "signing_cert_serial_number",
    "smart_account",
    "software_tag",
    "software_version",
    "start_time",
    "status_code",
    "subscription",
    "sudi",
    "sudi_list_overflow",
    "termination_reason",
    "timestamp",
    "trust_codes",
    "trust_id",
    "type",
    "udi_pid",
    "udi_serial_number",
    "value",
    "version",
    "virtual_account",
];

/// Members that belong in one particular object, by the name of the member holding it.
const PLACES: &[(&str, &[&str], &str)] = &[
    ("request_data", &["request"], "beside `header` in `request`"),
    (
        "response_data",
        &["response"],
        "beside `header` in `response`",
    ),
    (
        "timestamp",
        &["header"],
        "in the request header (message version 1.3)",
    ),
    ("nonce", &["header"], "in the header (message version 1.3)"),
    ("status_code", &["header"], "in the response header"),
    ("retry_time_seconds", &["header"], "in the response header"),
    ("mp", &["header"], "in the response header"),
    (
        "signature",
        &["", "[reports]", "[trust_codes]"],
        "beside the signed member, at the top of the signed object",
    ),
];

struct Lint<'a> {
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// The end of the input was reported (once, by the innermost open value).
    ended: bool,
    found: Vec<Finding>,
}

/// Deeper than any message nests (16): past this the reading stops rather than recursing.
const MAX_DEPTH: usize = 64;

/// Where a value sits: the member name that holds it (`""` at the root, `[name]` for an
/// element of array `name`), and the chain of those above it.
#[derive(Clone)]
struct Path {
    names: Vec<(String, usize)>,
}

impl Path {
    fn holder(&self) -> &str {
        self.names.last().map_or("", |(n, _)| n.as_str())
    }
    fn push(&self, name: String, at: usize) -> Path {
        let mut p = self.clone();
        p.names.push((name, at));
        p
    }
}

fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

impl Lint<'_> {
    fn at(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }
    fn ws(&mut self) {
        while self.at().is_some_and(|c| c.is_ascii_whitespace()) {
            self.pos += 1;
        }
    }
    fn note(&mut self, offset: usize, code: Code, text: String) {
        self.found.push(Finding { offset, code, text });
    }

    /// The string at `pos` (raw, escapes in place); `None` when it never ends.
    fn string(&mut self) -> Option<String> {
        let start = self.pos;
        self.pos += 1;
        while let Some(c) = self.at() {
            self.pos += 1;
            match c {
                b'\\' => self.pos += 1,
                b'"' => {
                    let raw = self.b.get(start + 1..self.pos - 1).unwrap_or_default();
                    return Some(String::from_utf8_lossy(raw).into_owned());
                }
                _ => {}
            }
        }
        self.note(
            start,
            Code::JsonSyntax,
            "a string that never ends: the input stops inside it".into(),
        );
        None
    }

    fn value(&mut self, path: &Path) -> Option<String> {
        self.ws();
        let start = self.pos;
        match self.at()? {
            b'{' => {
                self.object(path);
                None
            }
            b'[' => {
                self.array(path);
                None
            }
            b'"' => self.string().map(|s| format!("\"{s}\"")),
            _ => {
                while self.at().is_some_and(|c| {
                    !matches!(c, b',' | b'}' | b']' | b':') && !c.is_ascii_whitespace()
                }) {
                    self.pos += 1;
                }
                if self.pos == start {
                    self.note(
                        start,
                        Code::JsonSyntax,
                        format!("`{}` cannot start a value", char::from(self.b[start])),
                    );
                    self.pos += 1;
                }
                Some(String::from_utf8_lossy(&self.b[start..self.pos]).into_owned())
            }
        }
    }

    fn unclosed(&mut self, path: &Path, what: &str) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let chain: Vec<String> = path
            .names
            .iter()
            .map(|(n, at)| {
                format!(
                    "{} (opened at byte {at})",
                    if n.is_empty() { "the message" } else { n }
                )
            })
            .collect();
        self.note(
            self.b.len(),
            Code::JsonSyntax,
            format!(
                "the input ends with {} {what} still open: {}; the message is cut short or a closing bracket is missing",
                chain.len(),
                chain.join(", ")
            ),
        );
    }

    /// Enters a nested value; `false` (and the reading stops) when too deep.
    fn enter(&mut self) -> bool {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            self.note(
                self.pos,
                Code::DepthExceeded,
                format!(
                    "nesting deeper than {MAX_DEPTH} levels; no slup message nests deeper than 16"
                ),
            );
            self.pos = self.b.len() + 1;
            return false;
        }
        true
    }

    fn object(&mut self, path: &Path) {
        if !self.enter() {
            return;
        }
        self.object_members(path);
        self.depth -= 1;
    }

    fn array(&mut self, path: &Path) {
        if !self.enter() {
            return;
        }
        self.array_elements(path);
        self.depth -= 1;
    }

    fn object_members(&mut self, path: &Path) {
        self.pos += 1;
        let mut seen: Vec<String> = Vec::new();
        loop {
            self.ws();
            match self.at() {
                None => return self.unclosed(path, "value(s)"),
                Some(b'}') => {
                    self.pos += 1;
                    return;
                }
                Some(b'"') => {
                    let key_at = self.pos;
                    let Some(key) = self.string() else { return };
                    self.ws();
                    match self.at() {
                        Some(b':') => {
                            self.pos += 1;
                            self.member(path, &key, key_at, &mut seen);
                        }
                        Some(b',') | Some(b'}') => {
                            let shown: String = key.chars().take(60).collect();
                            self.note(
                                key_at,
                                Code::JsonSyntax,
                                format!("the string \"{shown}…\" stands where a member name must be: its member name (and colon) were lost"),
                            );
                        }
                        _ => {
                            self.note(
                                self.pos,
                                Code::JsonSyntax,
                                format!("a colon must follow the member name `{key}`"),
                            );
                            return;
                        }
                    }
                }
                Some(c) => {
                    self.note(
                        self.pos,
                        Code::JsonSyntax,
                        format!("`{}` where a member name must be", char::from(c)),
                    );
                    self.pos += 1;
                }
            }
            self.ws();
            match self.at() {
                Some(b',') => self.pos += 1,
                Some(b'}') | None => {}
                Some(b'"') => self.note(
                    self.pos,
                    Code::JsonSyntax,
                    "a comma is missing between two members".into(),
                ),
                Some(c) => {
                    self.note(
                        self.pos,
                        Code::JsonSyntax,
                        format!(
                            "`{}` after a member: a comma or `}}` must follow",
                            char::from(c)
                        ),
                    );
                    self.pos += 1;
                }
            }
        }
    }

    fn member(&mut self, path: &Path, key: &str, key_at: usize, seen: &mut Vec<String>) {
        if seen.iter().any(|k| k == key) {
            self.note(
                key_at,
                Code::DuplicateField,
                format!("`{key}` appears twice in the same object"),
            );
        }
        seen.push(key.to_string());
        if key.contains('\\') {
            self.note(
                key_at,
                Code::EscapedMemberName,
                format!("the member name `{key}` holds an escape"),
            );
        } else if !KNOWN.contains(&key) {
            let best = KNOWN.iter().map(|k| (distance(key, k), *k)).min();
            let hint = match best {
                Some((d, k)) if d <= 3 && d * 4 <= key.len() => format!("; did you mean `{k}`?"),
                _ => String::new(),
            };
            self.note(
                key_at,
                Code::UnknownField,
                format!("`{key}` is not a member of message version 1.3{hint}"),
            );
        }
        let holder = path.holder().to_string();
        if let Some((_, places, where_)) = PLACES.iter().find(|(m, _, _)| *m == key) {
            let known_holder =
                holder.is_empty() || KNOWN.contains(&holder.trim_matches(['[', ']']));
            if known_holder && !places.contains(&holder.as_str()) {
                let inside = if holder.is_empty() {
                    "the top level".to_string()
                } else {
                    format!("`{holder}`")
                };
                self.note(
                    key_at,
                    Code::UnknownField,
                    format!("`{key}` sits in {inside}; it belongs {where_}"),
                );
            }
        }
        let value_at = {
            self.ws();
            self.pos
        };
        let child = path.push(key.to_string(), value_at);
        let scalar = if self.at() == Some(b'[') {
            self.array(&path.push(format!("[{key}]"), value_at));
            None
        } else {
            self.value(&child)
        };
        self.check_scalar(&holder, key, value_at, scalar.as_deref());
    }

    fn check_scalar(&mut self, holder: &str, key: &str, at: usize, v: Option<&str>) {
        let Some(v) = v else { return };
        if key == "nonce" && v == "null" {
            self.note(at, Code::NonceMismatch, "the nonce is null: a device refuses any response that does not echo its request's nonce".into());
        }
        if holder == "signature" && key == "value" {
            let text = v.trim_matches('"');
            if text.contains("\\n") || text.contains("\\r") {
                self.note(at, Code::InvalidBase64, "the base64 signature holds line breaks (a terminal wrapped it); base64 in slup is one unbroken line".into());
            } else if let Some(n) = decoded_len(text) {
                if n != 64 {
                    let rsa = if n == 256 {
                        " (the size of an RSA-2048 signature)"
                    } else {
                        ""
                    };
                    self.note(at, Code::InvalidBase64, format!("the signature decodes to {n} bytes{rsa}; an ECDSA P-256 signature r||s is 64 bytes"));
                }
            }
        }
        if holder == "signature" && key == "type" && v != "\"SHA256\"" {
            self.note(
                at,
                Code::UnsupportedSignatureType,
                format!("signature type {v}; only \"SHA256\" is defined"),
            );
        }
    }

    fn array_elements(&mut self, path: &Path) {
        self.pos += 1;
        loop {
            self.ws();
            match self.at() {
                None => return self.unclosed(path, "value(s)"),
                Some(b']') => {
                    self.pos += 1;
                    return;
                }
                _ => {
                    let _ = self.value(path);
                }
            }
            self.ws();
            match self.at() {
                Some(b',') => self.pos += 1,
                Some(b']') | None => {}
                Some(c) => {
                    self.note(
                        self.pos,
                        Code::JsonSyntax,
                        format!(
                            "`{}` after an array element: a comma or `]` must follow",
                            char::from(c)
                        ),
                    );
                    self.pos += 1;
                }
            }
        }
    }
}

/// Checks the signature objects for required members the tolerant reading can see.
fn missing_signature_keys(b: &[u8], found: &mut Vec<Finding>) {
    let text = String::from_utf8_lossy(b);
    let mut from = 0;
    while let Some(i) = text.get(from..).and_then(|t| t.find("\"signature\"")) {
        let at = from + i;
        let obj_start = text.get(at..).and_then(|t| t.find('{')).map(|j| at + j);
        let obj_end =
            obj_start.and_then(|s| text.get(s..).and_then(|t| t.find('}')).map(|j| s + j));
        if let (Some(s), Some(e)) = (obj_start, obj_end) {
            let obj = &text[s..=e];
            for m in ["type", "key", "value"] {
                if !obj.contains(&format!("\"{m}\"")) {
                    found.push(Finding {
                        offset: at,
                        code: Code::MissingField,
                        text: format!("this signature has no `{m}`"),
                    });
                }
            }
        }
        from = at + 1;
    }
}

/// Reads `b` tolerantly; returns what it found, in input order.
pub fn lint(b: &[u8]) -> Vec<Finding> {
    let mut l = Lint {
        b,
        pos: 0,
        depth: 0,
        ended: false,
        found: Vec::new(),
    };
    l.ws();
    if l.at().is_some() {
        let root = Path {
            names: vec![(String::new(), l.pos)],
        };
        if l.at() == Some(b'{') {
            l.object(&root);
        } else {
            let _ = l.value(&root);
        }
        l.ws();
        if l.pos < b.len() && l.depth == 0 {
            l.note(
                l.pos,
                Code::TrailingBytes,
                "bytes follow the end of the message".into(),
            );
        }
    }
    missing_signature_keys(b, &mut l.found);
    l.found.sort_by_key(|f| f.offset);
    l.found.dedup();
    l.found
}

/// Decoded length of canonical-looking base64, without decoding it.
mod base64_len {
    /// `Some(bytes)` when `s` has only base64 characters and a length that is a multiple of 4.
    pub fn decoded_len(s: &str) -> Option<usize> {
        let ok = s
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='));
        if !ok || s.is_empty() || !s.len().is_multiple_of(4) {
            return None;
        }
        let pad = s.bytes().rev().take_while(|c| *c == b'=').count();
        Some(s.len() / 4 * 3 - pad)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codes(input: &str) -> Vec<(Code, String)> {
        lint(input.as_bytes())
            .into_iter()
            .map(|f| (f.code, f.text))
            .collect()
    }

    #[test]
    fn a_clean_message_has_no_findings() {
        let golden = include_bytes!("../../core/testdata/golden/response_usage_ok.json");
        assert_eq!(lint(golden), vec![]);
        let golden = include_bytes!("../../core/testdata/golden/request_license_usage.json");
        assert_eq!(lint(golden), vec![]);
    }

    #[test]
    fn explains_the_usual_defects() {
        let f = codes(r#"{"request":{"header":{"product_instance_identifieur":""}"#);
        assert!(
            f.iter().any(|(c, t)| *c == Code::UnknownField
                && t.contains("did you mean `product_instance_identifier`")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|(c, t)| *c == Code::JsonSyntax && t.contains("2 value(s) still open")),
            "{f:?}"
        );
        let f = codes(r#"{"a":{"name":"x","lost value",1}}"#);
        assert!(
            f.iter()
                .any(|(_, t)| t.contains("stands where a member name must be")),
            "{f:?}"
        );
        let f = codes(
            r#"{"signature":{"type":"SHA256","value":"AAAA\nBBBB"},"response":{"header":{"nonce":null}}}"#,
        );
        assert!(f.iter().any(|(c, _)| *c == Code::InvalidBase64), "{f:?}");
        assert!(f.iter().any(|(c, _)| *c == Code::NonceMismatch), "{f:?}");
        assert!(
            f.iter()
                .any(|(c, t)| *c == Code::MissingField && t.contains("`key`")),
            "{f:?}"
        );
        let f = codes(r#"{"request":{"header":{"request_data":{"nonce":"1"}}}}"#);
        assert!(
            f.iter()
                .any(|(_, t)| t.contains("`request_data` sits in `header`")),
            "{f:?}"
        );
        assert!(
            f.iter()
                .any(|(_, t)| t.contains("`nonce` sits in `request_data`")),
            "{f:?}"
        );
        let f = codes(r#"{"a":1,"a":2} x"#);
        assert!(f.iter().any(|(c, _)| *c == Code::DuplicateField), "{f:?}");
        assert!(f.iter().any(|(c, _)| *c == Code::TrailingBytes), "{f:?}");
    }

    #[test]
    fn hostile_input_never_panics() {
        for input in [
            "",
            "{",
            "[",
            "\"",
            "{\"",
            "{\"a\"",
            "{\"a\":",
            "[1,",
            "}",
            "]]]",
            "{\"a\" 1}",
            "\\",
        ] {
            let _ = lint(input.as_bytes());
        }
        let deep = "[".repeat(100_000);
        let _ = lint(deep.as_bytes());
    }
}
