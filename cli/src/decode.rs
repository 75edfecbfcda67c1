//! `slup decode` and `slup verify`: recognise any slup message, check it with the strict
//! decoders of slup-core, verify its signatures when a key is known, print it readably, and
//! when it is invalid say exactly what is wrong and where.

use std::fmt::Write as _;

use slup_core::crypto::PublicKey;
use slup_core::diag::time::{DateTime, Zone};
use slup_core::json::{Kind, Node, DEFAULT_LIMITS};
use slup_core::msg::policy::Policy;
use slup_core::msg::request::{self, RequestData, SignedRequest};
use slup_core::msg::response::{self, Ack, ErrorBody, ResponseData, SignedResponse};
use slup_core::msg::rum::SignedRum;
use slup_core::msg::trust::TrustCode;
use slup_core::msg::SignedList;
use slup_core::types::{Text, Timestamp, Udi};
use slup_core::{Code, DecodeError};

use crate::fail::CliError;
use crate::lint;
use crate::pretty::pretty;

/// What the input is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// Device → service envelope (also a saved usage file).
    Request,
    /// Service → device envelope (also an ACK file).
    Response,
    /// A signed RUM report.
    Rum,
    /// A signed trust code.
    TrustCode,
    /// The unsigned error body of a non-2xx answer.
    ErrorBody,
    /// A bare ACK.
    Ack,
    /// A bare policy.
    Policy,
}

impl MessageType {
    fn label(self) -> &'static str {
        match self {
            MessageType::Request => "request envelope (device to service)",
            MessageType::Response => "response envelope (service to device)",
            MessageType::Rum => "RUM usage report",
            MessageType::TrustCode => "trust code",
            MessageType::ErrorBody => "error body (unsigned, non-2xx answer)",
            MessageType::Ack => "usage acknowledgement",
            MessageType::Policy => "policy",
        }
    }
}

/// Options of `decode` and `verify`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// The key that signed the message (the service key for responses and trust codes, the
    /// device key for requests and reports).
    pub anchor: Option<PublicKey>,
    /// Every signature must be checked and verify (`slup verify`).
    pub require_verified: bool,
    /// Print the indented JSON after the summary.
    pub json: bool,
}

/// Parses a key given as 130 hex digits (65-byte SEC1) or 88 base64 characters.
pub fn parse_key(text: &str) -> Result<PublicKey, CliError> {
    let t = text.trim();
    let bytes: Option<Vec<u8>> = (t.len() == 130)
        .then(|| {
            (0..65)
                .map(|i| {
                    t.get(2 * i..2 * i + 2)
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                })
                .collect()
        })
        .flatten();
    let key = match bytes {
        Some(b) => PublicKey::from_sec1(&b),
        None => PublicKey::from_base64(t),
    };
    key.map_err(|c| CliError::new(c, "--anchor: 130 hex digits or 88 base64 characters of an uncompressed P-256 key (65 bytes, 04‖x‖y)"))
}

/// Recognises the message from its top-level members.
pub fn classify(root: &Node<'_>) -> Option<MessageType> {
    let names: Vec<&str> = root.members().map(|(n, _)| n).collect();
    let has = |n: &str| names.contains(&n);
    if has("request") {
        Some(MessageType::Request)
    } else if has("response") {
        Some(MessageType::Response)
    } else if has("payload") {
        let payload = root
            .members()
            .find(|(n, _)| *n == "payload")
            .map(|(_, v)| v)?;
        let inner: Vec<&str> = payload.members().map(|(n, _)| n).collect();
        if inner.contains(&"trust_id") {
            Some(MessageType::TrustCode)
        } else {
            Some(MessageType::Rum)
        }
    } else if has("error") {
        Some(MessageType::ErrorBody)
    } else if has("acked") {
        Some(MessageType::Ack)
    } else if has("classes") {
        Some(MessageType::Policy)
    } else {
        None
    }
}

fn udi(u: &Udi<'_>) -> String {
    format!(
        "PID:{},SN:{}",
        u.udi_pid.as_str(),
        u.udi_serial_number.as_str()
    )
}

fn text(t: &Text<'_>) -> String {
    t.chars().collect()
}

fn when_ms(ms: u64) -> String {
    format!(
        "{ms} ({})",
        DateTime {
            ts: Timestamp(ms),
            zone: Zone::UTC
        }
    )
}

fn when_s(s: u64) -> String {
    format!(
        "{s} ({})",
        DateTime {
            ts: Timestamp(s.saturating_mul(1000)),
            zone: Zone::UTC
        }
    )
}

/// The result of checking one signature.
enum Check {
    Verified(&'static str),
    Failed(Code),
    NotChecked(&'static str),
}

struct Report {
    out: String,
    checks: Vec<(String, Check)>,
}

impl Report {
    fn line(&mut self, label: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.out, "  {label:<18} {value}");
    }
    fn check(&mut self, what: String, c: Check) {
        self.checks.push((what, c));
    }
}

/// Decodes, checks and prints `input`; on failure `out` holds the diagnosis and the error
/// carries the first code.
pub fn run(
    input: &[u8],
    name: &str,
    opts: &Options,
    out: &mut String,
) -> Result<MessageType, CliError> {
    let root = Node::parse(input, &DEFAULT_LIMITS).map_err(|e| invalid(input, name, e, out))?;
    if root.kind() != Kind::Object {
        let e = DecodeError::new(Code::WrongType, root.offset, "message");
        return Err(invalid(input, name, e, out));
    }
    let Some(kind) = classify(&root) else {
        let names: Vec<&str> = root.members().map(|(n, _)| n).collect();
        let e = DecodeError::new(Code::UnknownField, root.offset, "message");
        let err = invalid(input, name, e, out);
        let _ = writeln!(
            out,
            "\nThe top-level members ({}) are not those of any slup message: request/signature, \
             signature/response, payload/signature, error, acked/rejected, or name/classes.",
            names.join(", ")
        );
        return Err(err);
    };
    let mut r = Report {
        out: String::new(),
        checks: Vec::new(),
    };
    let decoded = match kind {
        MessageType::Request => request::decode(input).map(|m| describe_request(&m, opts, &mut r)),
        MessageType::Response => {
            response::decode(input).map(|m| describe_response(&m, opts, &mut r))
        }
        MessageType::Rum => SignedRum::decode(input).map(|m| describe_rum(&m, opts, &mut r, "")),
        MessageType::TrustCode => {
            TrustCode::decode(input).map(|m| describe_trust_code(&m, opts, &mut r, ""))
        }
        MessageType::ErrorBody => ErrorBody::decode(input).map(|m| {
            let named =
                Code::from_number(m.code).map_or("unknown code".to_string(), |c| c.to_string());
            r.line("code", format!("{} ({named})", m.code));
            r.line("message", text(&m.message));
        }),
        MessageType::Ack => Ack::decode(input).map(|a| describe_ack(&a, &mut r)),
        MessageType::Policy => Policy::decode(input).map(|p| describe_policy(&p, &mut r)),
    };
    if let Err(e) = decoded {
        return Err(invalid(input, name, e, out));
    }
    let _ = writeln!(out, "{name}: valid {}", kind.label());
    out.push_str(&r.out);
    let mut first_failure = None;
    let mut unchecked = false;
    if !r.checks.is_empty() {
        let _ = writeln!(out, "Signatures:");
    }
    for (what, c) in &r.checks {
        let verdict = match c {
            Check::Verified(how) => format!("verified ({how})"),
            Check::Failed(code) => {
                first_failure.get_or_insert(*code);
                format!("FAILS: {code}")
            }
            Check::NotChecked(why) => {
                unchecked = true;
                format!("not checked: {why}")
            }
        };
        let _ = writeln!(out, "  {what:<28} {verdict}");
    }
    if opts.json {
        let _ = writeln!(
            out,
            "\nJSON (indented for reading; signatures cover the original bytes, not these):"
        );
        pretty(&root, 0, out);
        out.push('\n');
    }
    if let Some(code) = first_failure {
        return Err(CliError::new(
            code,
            format!("{name}: a signature does not verify"),
        ));
    }
    if opts.require_verified && unchecked {
        return Err(CliError::new(
            Code::InvalidArgument,
            format!("{name}: some signatures could not be checked; pass --anchor with the signer's public key"),
        ));
    }
    Ok(kind)
}

/// Writes the diagnosis of an invalid message into `out`; returns the error to report.
fn invalid(input: &[u8], name: &str, e: DecodeError, out: &mut String) -> CliError {
    let _ = writeln!(out, "{name}: INVALID");
    let _ = writeln!(out, "  {} in {} at byte {}", e.code, e.context, e.offset);
    snippet(input, e.offset, out);
    let findings = lint::lint(input);
    // The tolerant reading usually explains the strict decoder's stop in words.
    // The strict scanner stops at or after the cause: prefer the last finding before it.
    let same = || findings.iter().filter(|f| f.code == e.code);
    let explained = same()
        .filter(|f| f.offset <= e.offset)
        .max_by_key(|f| f.offset)
        .or_else(|| same().min_by_key(|f| f.offset.abs_diff(e.offset)));
    if let Some(f) = explained {
        let _ = writeln!(out, "  what: {}", f.text);
    }
    if let Some(h) = crate::hints::hint(e.code) {
        let _ = writeln!(out, "  hint: {h}");
    }
    if !findings.is_empty() {
        let _ = writeln!(
            out,
            "\nEverything a tolerant reading of the same bytes found, in input order:"
        );
        for f in &findings {
            let _ = writeln!(
                out,
                "  byte {:>5}  E{} {}: {}",
                f.offset,
                f.code.number(),
                f.code.name(),
                f.text
            );
        }
    }
    CliError::new(
        e.code,
        format!(
            "{name}: {} in {} at byte {}",
            e.code.name(),
            e.context,
            e.offset
        ),
    )
}

/// The input around `offset`, on one line, with a caret under the offset.
fn snippet(input: &[u8], offset: usize, out: &mut String) {
    let start = offset.saturating_sub(50);
    let end = (offset + 30).min(input.len());
    let shown = |b: &[u8]| -> String {
        b.iter()
            .map(|&c| {
                if (0x20..0x7f).contains(&c) {
                    char::from(c)
                } else {
                    '.'
                }
            })
            .collect()
    };
    let before = shown(
        input
            .get(start..offset.min(input.len()))
            .unwrap_or_default(),
    );
    let after = shown(input.get(offset.min(input.len())..end).unwrap_or_default());
    let lead = if start > 0 { "…" } else { "" };
    let tail = if end < input.len() {
        "…"
    } else if offset >= input.len() {
        "⟨end of input⟩"
    } else {
        ""
    };
    let _ = writeln!(out, "  | {lead}{before}{after}{tail}");
    let _ = writeln!(
        out,
        "  | {}^",
        " ".repeat(lead.chars().count() + before.chars().count())
    );
}

fn check_with(
    signed: &slup_core::envelope::Signed<'_>,
    key: Option<&PublicKey>,
    how: &'static str,
    missing: &'static str,
) -> Check {
    match key {
        Some(k) => match signed.verify(k) {
            Ok(()) => Check::Verified(how),
            Err(c) => Check::Failed(c),
        },
        None => Check::NotChecked(missing),
    }
}

fn describe_request(m: &SignedRequest<'_>, opts: &Options, r: &mut Report) {
    let h = &m.request.header;
    let _ = writeln!(
        r.out,
        "{} request, message version 1.3",
        h.request_type.as_str()
    );
    r.line("sudi", udi(&h.sudi));
    r.line("timestamp", when_ms(h.timestamp.millis()));
    r.line("nonce", h.nonce);
    r.line(
        "instance",
        h.product_instance_identifier
            .uuid()
            .map_or("(none: before trust)".to_string(), |u| {
                u.as_str().to_string()
            }),
    );
    r.line(
        "signing trust id",
        h.signing_cert_serial_number
            .0
            .map_or("(none)".to_string(), |t| t.value().to_string()),
    );
    let caps: Vec<&str> = h
        .connect_info
        .capabilities
        .iter()
        .map(|c| c.as_str())
        .collect();
    r.line(
        "agent",
        format!(
            "{} {} [{}]",
            h.connect_info.name.as_str(),
            h.connect_info.version.as_str(),
            caps.join(" ")
        ),
    );
    let key_id = m.signed.signature.key.0;
    // Every request but the trust request is signed with the device's installed key, which
    // only the caller can supply; the trust request proves possession of its Active member's
    // new key.
    let mut trust_key = None;
    let mut reports = None;
    match &m.request.data {
        RequestData::IdTokenTrust(t) => {
            let token = t.id_token.as_str();
            let shown: String = token.chars().take(12).collect();
            r.line("id token", format!("{shown}… ({} characters)", token.len()));
            r.line("scope / force", format!("{:?} / {}", t.scope, t.force));
            for mem in t.members.iter() {
                let k = &mem.public_key.0;
                r.line(
                    &format!("member {:?}", mem.role),
                    format!("{} key id {}", udi(&mem.sudi), k.key_id().0),
                );
                if mem.role == slup_core::types::Role::Active {
                    trust_key = Some(k.clone());
                }
            }
        }
        RequestData::LicenseUsage(list) => {
            r.line("reports", list.len());
            reports = Some(list);
        }
        RequestData::PollReq(p) => r.line(
            "polls",
            format!(
                "{} answered OK_POLL with poll id {}",
                p.original_request_type.as_str(),
                p.original_pid.as_str()
            ),
        ),
        RequestData::TrustSync(id) => r.line("trust id", id.value()),
        RequestData::Hello => r.line("data", "{} (greeting a CSLU)"),
    }
    let c = match &m.request.data {
        RequestData::IdTokenTrust(_) => check_with(
            &m.signed,
            trust_key.as_ref(),
            "the Active member's new key: proof of possession",
            "no Active member",
        ),
        _ => check_with(
            &m.signed,
            opts.anchor.as_ref(),
            "--anchor",
            "pass --anchor with the device's public key",
        ),
    };
    r.check(format!("envelope (key id {key_id})"), c);
    if let Some(list) = reports {
        describe_reports(list, opts, r);
    }
}

fn describe_reports(list: &SignedList<'_>, opts: &Options, r: &mut Report) {
    for (i, bytes) in list.iter().enumerate() {
        match SignedRum::decode(bytes) {
            Ok(rum) => describe_rum(&rum, opts, r, &format!("report {}: ", i + 1)),
            Err(e) => r.line(
                &format!("report {}", i + 1),
                format!("does not decode: {e}"),
            ),
        }
    }
}

fn describe_rum(m: &SignedRum<'_>, opts: &Options, r: &mut Report, prefix: &str) {
    let p = &m.payload;
    let _ = writeln!(
        r.out,
        "  {prefix}RUM report {} for {}",
        p.report_id.0,
        udi(&p.sudi)
    );
    let tag = p.entitlement_tag.as_str();
    r.line(
        "  entitlement",
        format!("{} ({tag})", slup_core::engine::render::license_name(tag)),
    );
    r.line(
        "  software",
        format!(
            "{} {}",
            p.software_tag.as_str(),
            p.software_version.as_str()
        ),
    );
    if let Some(u) = p.product_instance_identifier.uuid() {
        r.line("  instance", u.as_str());
    }
    for (role_udi, n) in p.ha_udi.iter().zip(1..) {
        r.line(
            &format!("  HA unit {n}"),
            format!("{:?} {}", role_udi.role, udi(&role_udi.sudi)),
        );
    }
    for ms in p.measurements.iter() {
        r.line(
            "  count",
            format!(
                "{} ({} samples every {} s)",
                ms.value.value.value(),
                ms.num_samples,
                ms.sample_interval
            ),
        );
        r.line(
            "  window",
            format!("{} to {}", when_s(ms.start_time), when_s(ms.end_time)),
        );
        let meta = &ms.meta;
        if !meta.added_sudi_list.is_empty()
            || !meta.removed_sudi_list.is_empty()
            || meta.sudi_list_overflow > 0
        {
            r.line(
                "  sub-devices",
                format!(
                    "{} added, {} removed{}",
                    meta.added_sudi_list.len(),
                    meta.removed_sudi_list.len(),
                    if meta.sudi_list_overflow > 0 {
                        format!(", {} more not listed", meta.sudi_list_overflow)
                    } else {
                        String::new()
                    }
                ),
            );
        }
        r.line("  closed because", meta.termination_reason.as_str());
        if meta.clock_change_delta.0 != 0 {
            r.line("  clock change", format!("{} s", meta.clock_change_delta.0));
        }
    }
    let c = check_with(
        &m.signed,
        opts.anchor.as_ref(),
        "--anchor",
        "pass --anchor with the device's public key",
    );
    r.check(
        format!(
            "{prefix}report {} (key id {})",
            p.report_id.0, m.signed.signature.key.0
        ),
        c,
    );
}

fn describe_trust_code(m: &TrustCode<'_>, opts: &Options, r: &mut Report, prefix: &str) {
    let p = &m.payload;
    let _ = writeln!(
        r.out,
        "  {prefix}trust code {} for {}",
        p.trust_id.value(),
        udi(&p.sudi)
    );
    r.line("  instance", p.product_instance_identifier.as_str());
    r.line("  device key id", p.public_key.0.key_id().0);
    r.line("  issued", when_ms(p.issued_at.millis()));
    r.line(
        "  account",
        format!("{} / {}", text(&p.smart_account), text(&p.virtual_account)),
    );
    let c = check_with(
        &m.signed,
        opts.anchor.as_ref(),
        "--anchor",
        "pass --anchor with the service's public key",
    );
    r.check(
        format!(
            "{prefix}trust code {} (key id {})",
            p.trust_id.value(),
            m.signed.signature.key.0
        ),
        c,
    );
}

fn describe_ack(a: &Ack<'_>, r: &mut Report) {
    let ids: Vec<String> = a.acked.iter().map(|i| i.0.to_string()).collect();
    r.line(
        "acknowledged",
        if ids.is_empty() {
            "(none)".to_string()
        } else {
            ids.join(" ")
        },
    );
    for rej in a.rejected.iter() {
        r.line(
            "rejected",
            format!("{}: {}", rej.report_id.0, text(&rej.reason)),
        );
    }
}

fn describe_policy(p: &Policy<'_>, r: &mut Report) {
    let resolved = p.resolve();
    r.line("policy", text(&p.name));
    r.line(
        "ACK required",
        format!(
            "{} ({})",
            resolved.ack_required.0,
            resolved.ack_required.1.label()
        ),
    );
    for (label, c) in [
        ("perpetual", slup_core::msg::policy::Class::Perpetual),
        ("subscription", slup_core::msg::policy::Class::Subscription),
        ("enforced", slup_core::msg::policy::Class::Enforced),
        ("export", slup_core::msg::policy::Class::Export),
    ] {
        let v = resolved.class(c);
        r.line(
            label,
            format!(
                "first report {} d, every {} d, on change {} d",
                v[0].0, v[1].0, v[2].0
            ),
        );
    }
}

fn describe_response(m: &SignedResponse<'_>, opts: &Options, r: &mut Report) {
    let h = &m.response.header;
    let _ = writeln!(
        r.out,
        "{:?} answer to {}, message version 1.3",
        h.status_code,
        h.request_type.as_str()
    );
    r.line("for", udi(&h.sudi));
    r.line("service time", when_ms(h.mp.millis()));
    r.line(
        "nonce",
        h.nonce.map_or(
            "null: a device refuses this answer (NonceMismatch)".to_string(),
            |n| n.to_string(),
        ),
    );
    if !h.message.is_empty() {
        r.line("message", text(&h.message));
    }
    if h.retry_time_seconds > 0 {
        r.line("retry after", format!("{} s", h.retry_time_seconds));
    }
    r.line(
        "service",
        format!(
            "{} {}",
            h.connect_info.name.as_str(),
            h.connect_info.version.as_str()
        ),
    );
    let key_id = m.signed.signature.key.0;
    let c = check_with(
        &m.signed,
        opts.anchor.as_ref(),
        "--anchor",
        "pass --anchor with the service's public key",
    );
    r.check(format!("envelope (key id {key_id})"), c);
    match &m.response.data {
        ResponseData::None => {}
        ResponseData::Poll(id) => r.line("poll id", id.as_str()),
        ResponseData::Trust {
            trust_codes,
            policy,
        } => {
            r.line("trust codes", trust_codes.len());
            for (i, bytes) in trust_codes.iter().enumerate() {
                if let Ok(tc) = TrustCode::decode(bytes) {
                    describe_trust_code(&tc, opts, r, &format!("code {}: ", i + 1));
                }
            }
            if let Some(p) = policy {
                describe_policy(p, r);
            }
        }
        ResponseData::Usage { ack, policy } => {
            describe_ack(ack, r);
            if let Some(p) = policy {
                describe_policy(p, r);
            }
        }
        ResponseData::TrustSync { policy } => match policy {
            Some(p) => describe_policy(p, r),
            None => r.line("policy", "unchanged"),
        },
        ResponseData::Hello => r.line("data", "{} (the CSLU answered)"),
    }
}
