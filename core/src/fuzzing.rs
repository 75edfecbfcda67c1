//! Entry points for the fuzz targets and the corpus replay tests. Not a stable API.
//!
//! Each function feeds arbitrary bytes to one decoder and, where it decodes, checks the
//! properties that must hold for every accepted input: re-encoding gives bytes that decode to
//! the same value, and a decoded signed object's span lies inside the input. A panic here is a
//! bug; a returned error is the expected outcome for most inputs.

// Assertions are the point of this module: a failed one is a bug the fuzzer found.
#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

use crate::crypto::Signer;
use crate::msg::policy::Policy;
use crate::msg::response::{Ack, ErrorBody};
use crate::msg::rum::SignedRum;
use crate::msg::trust::TrustCode;
use crate::msg::{request, response, Writer};
use crate::nonce::NonceTracker;
use crate::types::RequestType;

/// Buffer for re-encoding accepted inputs.
const REENCODE_BUF: usize = 64 * 1024;

/// A fuzz target: its name (the `fuzz/fuzz_targets/<name>.rs` file and corpus directory) and
/// its entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every no_std target, by name.
pub const TARGETS: &[Target] = &[
    ("json_validate", json_validate),
    ("request_envelope", request_envelope),
    ("response_envelope", response_envelope),
    ("request_data_id_token_trust", |d| {
        request_data(RequestType::ID_TOKEN_TRUST, d)
    }),
    ("request_data_license_usage", |d| {
        request_data(RequestType::LICENSE_USAGE, d)
    }),
    ("request_data_poll_req", |d| {
        request_data(RequestType::POLL_REQ, d)
    }),
    ("request_data_trust_sync", |d| {
        request_data(RequestType::TRUST_SYNC, d)
    }),
    ("request_data_hello", |d| {
        request_data(RequestType::HELLO, d)
    }),
    ("rum_report", rum_report),
    ("trust_code", trust_code),
    ("ack", ack),
    ("policy", policy),
    ("error_body", error_body),
    ("nonce_tracker", nonce_tracker),
    ("roundtrip", roundtrip),
];

fn within(input: &[u8], part: &[u8]) -> bool {
    let (i, p) = (input.as_ptr() as usize, part.as_ptr() as usize);
    p >= i && p + part.len() <= i + input.len()
}

/// The validator alone.
pub fn json_validate(data: &[u8]) {
    let _ = crate::json::validate(data, &crate::json::DEFAULT_LIMITS);
}

/// The device → service envelope.
pub fn request_envelope(data: &[u8]) {
    if let Ok(r) = request::decode(data) {
        assert!(within(data, r.signed.body.bytes));
    }
}

/// The service → device envelope.
pub fn response_envelope(data: &[u8]) {
    if let Ok(r) = response::decode(data) {
        assert!(within(data, r.signed.body.bytes));
    }
}

/// One `request_data` type.
pub fn request_data(t: RequestType, data: &[u8]) {
    let _ = request::decode_data(t, data);
}

/// A signed RUM report; accepted payloads re-encode to an equal payload.
pub fn rum_report(data: &[u8]) {
    if let Ok(r) = SignedRum::decode(data) {
        let mut buf = [0u8; REENCODE_BUF];
        let mut w = Writer::new(&mut buf);
        if w.json(&r.payload, "fuzz").is_ok() {
            let node = crate::json::Node::parse(w.written(), &crate::json::DEFAULT_LIMITS)
                .expect("re-encoded payload is valid JSON");
            let again = crate::msg::rum::RumPayload::decode_node(&node)
                .expect("re-encoded payload decodes");
            assert_eq!(again, r.payload);
        }
    }
}

/// A signed trust code.
pub fn trust_code(data: &[u8]) {
    let _ = TrustCode::decode(data);
}

/// An ACK; accepted ACKs round-trip.
pub fn ack(data: &[u8]) {
    if let Ok(a) = Ack::decode(data) {
        let mut buf = [0u8; REENCODE_BUF];
        let n = a.encode(&mut buf).expect("ack fits");
        assert_eq!(Ack::decode(&buf[..n]).expect("re-encoded ack decodes"), a);
    }
}

/// A policy; accepted policies round-trip.
pub fn policy(data: &[u8]) {
    if let Ok(p) = Policy::decode(data) {
        let mut buf = [0u8; REENCODE_BUF];
        let mut w = Writer::new(&mut buf);
        w.json(&p, "fuzz").expect("policy fits");
        let n = w.len();
        assert_eq!(
            Policy::decode(&buf[..n]).expect("re-encoded policy decodes"),
            p
        );
        let _ = p.resolve();
    }
}

/// The unsigned error body.
pub fn error_body(data: &[u8]) {
    if let Ok(e) = ErrorBody::decode(data) {
        let mut buf = [0u8; 4096];
        let n = e.encode(&mut buf).expect("error body fits");
        assert_eq!(
            ErrorBody::decode(&buf[..n]).expect("re-encoded error decodes"),
            e
        );
    }
}

/// Persisted nonce-tracker state; accepted states re-encode to the same bytes.
pub fn nonce_tracker(data: &[u8]) {
    if let Ok(t) = NonceTracker::<16, 32>::decode(data) {
        let mut buf = [0u8; NonceTracker::<16, 32>::ENCODED_LEN];
        let n = t.encode(&mut buf).expect("tracker fits");
        assert_eq!(&buf[..n], data);
    }
}

/// Any envelope: decode, re-encode the decoded body with a fixed key, decode again, compare.
pub fn roundtrip(data: &[u8]) {
    let signer = crate::crypto::SoftwareSigner::from_secret_bytes(&[7u8; 32]).expect("valid key");
    let mut buf = [0u8; REENCODE_BUF];
    if let Ok(r) = request::decode(data) {
        if let Ok(n) = request::encode(&mut buf, &r.request, &signer) {
            let again = request::decode(&buf[..n]).expect("re-encoded request decodes");
            assert_eq!(again.request, r.request);
            again
                .verify(signer.public_key())
                .expect("fresh signature verifies");
        }
    }
    if let Ok(r) = response::decode(data) {
        if let Ok(n) = response::encode(&mut buf, &r.response, &signer) {
            let again = response::decode(&buf[..n]).expect("re-encoded response decodes");
            assert_eq!(again.response, r.response);
            again
                .verify(signer.public_key())
                .expect("fresh signature verifies");
        }
    }
}
