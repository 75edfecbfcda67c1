//! Codec benchmarks: slup's decoders, encoders and envelope verification side by side with
//! serde_json on the same bytes, in one run, so results read as ratios (see
//! `docs/BENCHMARKS.md`).
//!
//! Messages are the golden fixtures of `core/tests/common/mod.rs`. The serde_json baselines
//! are (a) mirror structs borrowing `&str` (zero-copy typed parse, the fair baseline) and
//! (b) `serde_json::Value`. Before any timing, every path is checked to decode the message and,
//! for encoders, to produce exactly the golden bytes (except `Value`, whose object keys come
//! out sorted), so all functions of a group do the same job.
//!
//! Run: `cargo bench -p slup-core --bench codec`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};

use slup_core::crypto::{self, PublicKey, Signer};
use slup_core::envelope::Signed;
use slup_core::json;
use slup_core::msg::policy::Policy;
use slup_core::msg::request::{self, PollRef, Request, RequestData};
use slup_core::msg::response::{self, Response, ResponseData};
use slup_core::msg::rum::{self, SignedRum};
use slup_core::msg::{SignatureObj, SignedList, Writer};
use slup_core::types::{RequestType, StatusCode, Uuid};

use common::*;

/// serde_json mirrors of the wire messages, borrowing every string from the input.
mod mirror {
    use serde::{Deserialize, Serialize};

    #[derive(Deserialize, Serialize)]
    pub struct Udi<'a> {
        pub udi_pid: &'a str,
        pub udi_serial_number: &'a str,
    }

    #[derive(Deserialize, Serialize)]
    pub struct ConnectInfo<'a> {
        pub name: &'a str,
        pub version: &'a str,
        pub additional_info: &'a str,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub prod: Option<bool>,
        #[serde(borrow)]
        pub capabilities: Vec<&'a str>,
    }

    /// Device form of the signature object.
    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct DeviceSig<'a> {
        #[serde(rename = "type")]
        pub kind: &'a str,
        pub key: &'a str,
        pub value: &'a str,
    }

    /// Service form: adds `"pid":null,"cert_sn":null`.
    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ServiceSig<'a> {
        #[serde(rename = "type")]
        pub kind: &'a str,
        pub key: &'a str,
        pub value: &'a str,
        pub pid: Option<&'a str>,
        pub cert_sn: Option<&'a str>,
    }

    #[derive(Deserialize, Serialize)]
    pub struct RequestHeader<'a> {
        pub version: &'a str,
        pub request_type: &'a str,
        pub locale: &'a str,
        #[serde(borrow)]
        pub sudi: Udi<'a>,
        pub timestamp: u64,
        pub nonce: &'a str,
        pub product_instance_identifier: &'a str,
        pub signing_cert_serial_number: &'a str,
        pub id_cert_serial_number: &'a str,
        #[serde(borrow)]
        pub connect_info: ConnectInfo<'a>,
    }

    // ---- POLL_REQ request ----

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct PollRef<'a> {
        pub original_request_type: &'a str,
        pub original_pid: &'a str,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct PollReqData<'a> {
        #[serde(borrow)]
        pub product_instance_identifier: PollRef<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct PollReqBody<'a> {
        #[serde(borrow)]
        pub header: RequestHeader<'a>,
        #[serde(borrow)]
        pub request_data: PollReqData<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct PollReqEnvelope<'a> {
        #[serde(borrow)]
        pub request: PollReqBody<'a>,
        #[serde(borrow)]
        pub signature: DeviceSig<'a>,
    }

    // ---- RUM report ----

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct HaUdi<'a> {
        pub role: &'a str,
        #[serde(borrow)]
        pub sudi: Udi<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct MeasuredValue<'a> {
        #[serde(rename = "type")]
        pub kind: &'a str,
        pub value: &'a str,
    }

    #[derive(Deserialize, Serialize)]
    pub struct Meta<'a> {
        #[serde(borrow)]
        pub added_sudi_list: Vec<Udi<'a>>,
        #[serde(borrow)]
        pub removed_sudi_list: Vec<Udi<'a>>,
        pub sudi_list_overflow: u32,
        pub termination_reason: &'a str,
        pub clock_change_delta: &'a str,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Measurement<'a> {
        pub log_time: u64,
        pub metric_name: &'a str,
        pub start_time: u64,
        pub end_time: u64,
        pub sample_interval: u32,
        pub num_samples: u32,
        #[serde(borrow)]
        pub value: MeasuredValue<'a>,
        #[serde(borrow)]
        pub meta: Meta<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RumPayload<'a> {
        pub version: &'a str,
        pub report_id: u64,
        #[serde(borrow)]
        pub sudi: Udi<'a>,
        pub product_instance_identifier: &'a str,
        pub software_tag: &'a str,
        pub entitlement_tag: &'a str,
        pub software_version: &'a str,
        #[serde(borrow)]
        pub ha_udi: Vec<HaUdi<'a>>,
        #[serde(borrow)]
        pub measurements: Vec<Measurement<'a>>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct RumReport<'a> {
        #[serde(borrow)]
        pub payload: RumPayload<'a>,
        #[serde(borrow)]
        pub signature: DeviceSig<'a>,
    }

    // ---- LICENSE_USAGE request ----

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct UsageData<'a> {
        #[serde(borrow)]
        pub reports: Vec<RumReport<'a>>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct UsageBody<'a> {
        #[serde(borrow)]
        pub header: RequestHeader<'a>,
        #[serde(borrow)]
        pub request_data: UsageData<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct UsageEnvelope<'a> {
        #[serde(borrow)]
        pub request: UsageBody<'a>,
        #[serde(borrow)]
        pub signature: DeviceSig<'a>,
    }

    // ---- policy ----

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct ClassAttrs {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub first_report_days: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub reporting_frequency_days: Option<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub report_on_change_days: Option<u16>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Classes {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub perpetual: Option<ClassAttrs>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub subscription: Option<ClassAttrs>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub enforced: Option<ClassAttrs>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub export: Option<ClassAttrs>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Policy<'a> {
        pub name: &'a str,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub ack_required: Option<bool>,
        pub classes: Classes,
    }

    // ---- usage-ACK response ----

    #[derive(Deserialize, Serialize)]
    pub struct ResponseHeader<'a> {
        pub version: &'a str,
        pub request_type: &'a str,
        pub mp: u64,
        pub nonce: Option<&'a str>,
        #[serde(borrow)]
        pub sudi: Udi<'a>,
        pub status_code: &'a str,
        pub message: &'a str,
        pub retry_time_seconds: u32,
        #[serde(default)]
        pub agent_actions: Option<()>,
        #[serde(borrow)]
        pub connect_info: ConnectInfo<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Rejected<'a> {
        pub report_id: u64,
        pub reason: &'a str,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct Ack<'a> {
        pub acked: Vec<u64>,
        #[serde(borrow)]
        pub rejected: Vec<Rejected<'a>>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct AckData<'a> {
        #[serde(borrow)]
        pub ack: Ack<'a>,
        #[serde(borrow)]
        pub policy: Option<Policy<'a>>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct AckBody<'a> {
        #[serde(borrow)]
        pub header: ResponseHeader<'a>,
        #[serde(borrow)]
        pub response_data: AckData<'a>,
    }

    #[derive(Deserialize, Serialize)]
    #[serde(deny_unknown_fields)]
    pub struct AckEnvelope<'a> {
        #[serde(borrow)]
        pub signature: ServiceSig<'a>,
        #[serde(borrow)]
        pub response: AckBody<'a>,
    }
}

/// The messages, as the fixtures encode them.
struct Fixtures {
    poll_req: Vec<u8>,
    license_usage: Vec<u8>,
    usage_ack: Vec<u8>,
    policy: Vec<u8>,
    rum: Vec<u8>,
}

fn fixtures() -> Fixtures {
    let all = goldens();
    let get = |name: &str| {
        all.iter()
            .find(|(n, ..)| *n == name)
            .map(|(.., b)| b.clone())
            .unwrap_or_else(|| panic!("no golden {name}"))
    };
    Fixtures {
        poll_req: get("request_poll_req.json"),
        license_usage: get("request_license_usage.json"),
        usage_ack: get("response_usage_ok.json"),
        policy: get("policy.json"),
        rum: get("rum_report.json"),
    }
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

/// Output buffer size for every encoder.
const BUF: usize = 16 * 1024;

// ------------------------------------------------------------------------------------------
// decode
// ------------------------------------------------------------------------------------------

/// One `decode/<msg>` group: slup, typed serde_json, `serde_json::Value`, and slup's
/// validation pass alone for scale.
fn decode_group<'m, S, T>(c: &mut Criterion, msg: &str, bytes: &'m [u8], slup: S, typed: T)
where
    S: Fn(&'m [u8]) -> bool,
    T: Fn(&'m [u8]) -> bool,
{
    // Every path must accept the message before it is timed.
    assert!(slup(bytes), "slup rejects {msg}");
    assert!(typed(bytes), "serde_json typed mirror rejects {msg}");
    assert!(serde_json::from_slice::<serde_json::Value>(bytes).is_ok());

    let mut g = c.benchmark_group(format!("decode/{msg}"));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("slup", |b| b.iter(|| slup(black_box(bytes))));
    g.bench_function("serde_json_typed", |b| b.iter(|| typed(black_box(bytes))));
    g.bench_function("serde_json_value", |b| {
        b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(bytes)).map(black_box))
    });
    // Breakdown, not a contender: slup's first pass alone (RFC 8259 validation + limits),
    // which every slup decoder runs before locating members and typed decoding.
    g.bench_function("slup_validate_only", |b| {
        b.iter(|| json::validate(black_box(bytes), &json::DEFAULT_LIMITS).is_ok())
    });
    g.finish();
}

/// Decodes with serde_json into `T`, keeping the value alive until `black_box` has seen it.
fn typed_ok<'m, T: serde::Deserialize<'m>>(bytes: &'m [u8]) -> bool {
    serde_json::from_slice::<T>(bytes).map(black_box).is_ok()
}

fn decode(c: &mut Criterion) {
    let f = fixtures();

    decode_group(
        c,
        "poll_req",
        &f.poll_req,
        |b| request::decode(b).map(black_box).is_ok(),
        typed_ok::<mirror::PollReqEnvelope<'_>>,
    );
    decode_group(
        c,
        "license_usage",
        &f.license_usage,
        |b| request::decode(b).map(black_box).is_ok(),
        typed_ok::<mirror::UsageEnvelope<'_>>,
    );
    decode_group(
        c,
        "usage_ack",
        &f.usage_ack,
        |b| response::decode(b).map(black_box).is_ok(),
        typed_ok::<mirror::AckEnvelope<'_>>,
    );
    decode_group(
        c,
        "policy",
        &f.policy,
        |b| Policy::decode(b).map(black_box).is_ok(),
        typed_ok::<mirror::Policy<'_>>,
    );
    decode_group(
        c,
        "rum",
        &f.rum,
        |b| SignedRum::decode(b).map(black_box).is_ok(),
        typed_ok::<mirror::RumReport<'_>>,
    );
}

// ------------------------------------------------------------------------------------------
// encode
// ------------------------------------------------------------------------------------------

/// Writes `{"<member>":<body>,"signature":<sig>}` (device layout) without signing: `sig` was
/// taken from the golden message, so the output is the golden bytes.
fn member_first(
    buf: &mut [u8],
    member: &[u8],
    sig: &SignatureObj,
    body: impl FnOnce(&mut Writer<'_>),
) -> usize {
    let mut w = Writer::new(buf);
    w.raw(b"{\"", "bench").unwrap();
    w.raw(member, "bench").unwrap();
    w.raw(b"\":", "bench").unwrap();
    body(&mut w);
    w.raw(b",\"signature\":", "bench").unwrap();
    sig.encode(&mut w).unwrap();
    w.raw(b"}", "bench").unwrap();
    w.len()
}

/// One `encode/<msg>` group. `slup` and `slup_signed` write into a caller buffer and return the
/// length; `typed` is the serde_json mirror, serialised with `to_writer` into a reused `Vec`;
/// `value` is the same message as a `serde_json::Value`.
fn encode_group<S, T: serde::Serialize>(
    c: &mut Criterion,
    msg: &str,
    golden: &[u8],
    slup: impl Fn(&mut [u8]) -> usize,
    slup_signed: Option<S>,
    typed: &T,
) where
    S: Fn(&mut [u8]) -> usize,
{
    let mut buf = vec![0u8; BUF];
    let mut out: Vec<u8> = Vec::with_capacity(BUF);
    let value: serde_json::Value = serde_json::from_slice(golden).unwrap();

    // Same bytes from every typed path (Value sorts keys, so only its length is comparable).
    let n = slup(&mut buf);
    assert!(buf[..n] == *golden, "slup unsigned encode of {msg} differs");
    if let Some(s) = &slup_signed {
        let n = s(&mut buf);
        assert!(buf[..n] == *golden, "slup signed encode of {msg} differs");
    }
    serde_json::to_writer(&mut out, typed).unwrap();
    assert!(out == golden, "serde_json typed encode of {msg} differs");
    out.clear();
    serde_json::to_writer(&mut out, &value).unwrap();
    assert_eq!(out.len(), golden.len(), "serde_json Value encode of {msg}");

    let mut g = c.benchmark_group(format!("encode/{msg}"));
    g.throughput(Throughput::Bytes(golden.len() as u64));
    g.bench_function("slup", |b| b.iter(|| slup(black_box(&mut buf[..]))));
    if let Some(s) = &slup_signed {
        g.bench_function("slup_signed", |b| b.iter(|| s(black_box(&mut buf[..]))));
    }
    bench_to_writer(&mut g, "serde_json_typed", &mut out, typed);
    bench_to_writer(&mut g, "serde_json_value", &mut out, &value);
    g.finish();
}

fn bench_to_writer<T: serde::Serialize>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    out: &mut Vec<u8>,
    v: &T,
) {
    g.bench_function(name, |b| {
        b.iter(|| {
            out.clear();
            serde_json::to_writer(&mut *out, black_box(v)).unwrap();
            out.len()
        })
    });
}

type NoSign = fn(&mut [u8]) -> usize;

fn encode(c: &mut Criterion) {
    let f = fixtures();
    let dev = active_key();
    let svc = service_key();

    // poll_req
    {
        let poll = PollRef {
            original_request_type: RequestType::LICENSE_USAGE,
            original_pid: Uuid::new(POLL_ID).unwrap(),
        };
        let header = request_header(RequestType::POLL_REQ, true);
        let sig = request::decode(&f.poll_req).unwrap().signed.signature;
        let req = Request {
            header: header.clone(),
            data: RequestData::PollReq(poll),
        };
        let typed: mirror::PollReqEnvelope<'_> = serde_json::from_slice(&f.poll_req).unwrap();
        encode_group(
            c,
            "poll_req",
            &f.poll_req,
            |buf| {
                member_first(buf, b"request", &sig, |w| {
                    w.raw(br#"{"header":"#, "bench").unwrap();
                    w.json(&header, "bench").unwrap();
                    w.raw(
                        br#","request_data":{"product_instance_identifier":"#,
                        "bench",
                    )
                    .unwrap();
                    w.json(&poll, "bench").unwrap();
                    w.raw(b"}}", "bench").unwrap();
                })
            },
            Some(|buf: &mut [u8]| request::encode(buf, &req, &dev).unwrap()),
            &typed,
        );
    }

    // license_usage: the reports are already-signed bytes, copied verbatim (as on a device).
    {
        let reports: Vec<&'static [u8]> =
            vec![signed_rum(1671840757, 3), signed_rum(1671840758, 4)];
        let header = request_header(RequestType::LICENSE_USAGE, true);
        let sig = request::decode(&f.license_usage).unwrap().signed.signature;
        let req = Request {
            header: header.clone(),
            data: RequestData::LicenseUsage(SignedList::Items(&reports)),
        };
        let typed: mirror::UsageEnvelope<'_> = serde_json::from_slice(&f.license_usage).unwrap();
        encode_group(
            c,
            "license_usage",
            &f.license_usage,
            |buf| {
                member_first(buf, b"request", &sig, |w| {
                    w.raw(br#"{"header":"#, "bench").unwrap();
                    w.json(&header, "bench").unwrap();
                    w.raw(br#","request_data":{"reports":["#, "bench").unwrap();
                    for (i, r) in reports.iter().enumerate() {
                        if i > 0 {
                            w.raw(b",", "bench").unwrap();
                        }
                        w.raw(r, "bench").unwrap();
                    }
                    w.raw(b"]}}", "bench").unwrap();
                })
            },
            Some(|buf: &mut [u8]| request::encode(buf, &req, &dev).unwrap()),
            &typed,
        );
    }

    // usage_ack: the service layout puts the signature first.
    {
        let header = response_header(RequestType::LICENSE_USAGE, StatusCode::OK, "", 0);
        let ack = ack();
        let policy = custom_policy();
        let sig = response::decode(&f.usage_ack).unwrap().signed.signature;
        let resp = Response {
            header: header.clone(),
            data: ResponseData::Usage {
                ack: ack.clone(),
                policy: Some(policy.clone()),
            },
        };
        let typed: mirror::AckEnvelope<'_> = serde_json::from_slice(&f.usage_ack).unwrap();
        encode_group(
            c,
            "usage_ack",
            &f.usage_ack,
            |buf| {
                let mut w = Writer::new(buf);
                w.raw(br#"{"signature":"#, "bench").unwrap();
                sig.encode(&mut w).unwrap();
                w.raw(br#","response":{"header":"#, "bench").unwrap();
                w.json(&header, "bench").unwrap();
                w.raw(br#","response_data":{"ack":"#, "bench").unwrap();
                w.json(&ack, "bench").unwrap();
                w.raw(br#","policy":"#, "bench").unwrap();
                w.json(&policy, "bench").unwrap();
                w.raw(b"}}}", "bench").unwrap();
                w.len()
            },
            Some(|buf: &mut [u8]| response::encode(buf, &resp, &svc).unwrap()),
            &typed,
        );
    }

    // policy: unsigned.
    {
        let policy = custom_policy();
        let typed: mirror::Policy<'_> = serde_json::from_slice(&f.policy).unwrap();
        encode_group(
            c,
            "policy",
            &f.policy,
            |buf| {
                let mut w = Writer::new(buf);
                w.json(&policy, "bench").unwrap();
                w.len()
            },
            None::<NoSign>,
            &typed,
        );
    }

    // rum
    {
        let payload = rum_payload(1671840757, 3);
        let sig = SignedRum::decode(&f.rum).unwrap().signed.signature;
        let typed: mirror::RumReport<'_> = serde_json::from_slice(&f.rum).unwrap();
        encode_group(
            c,
            "rum",
            &f.rum,
            |buf| {
                member_first(buf, b"payload", &sig, |w| {
                    w.json(&payload, "bench").unwrap();
                })
            },
            Some(|buf: &mut [u8]| rum::encode(buf, &payload, &dev).unwrap()),
            &typed,
        );
    }
}

// ------------------------------------------------------------------------------------------
// verify
// ------------------------------------------------------------------------------------------

/// One `verify/<msg>` group: `Signed::verify` on an already-decoded envelope vs bare ECDSA
/// P-256 (`crypto::verify`) over the same signed bytes and signature; plus the full receive
/// path (decode, then verify) for scale.
fn verify_group<'m>(
    c: &mut Criterion,
    msg: &str,
    bytes: &'m [u8],
    key: &PublicKey,
    split: impl Fn(&'m [u8]) -> Signed<'m>,
) {
    let signed = split(bytes);
    let body = signed.body.bytes;
    let sig = signed.signature.value;
    signed.verify(key).unwrap();
    crypto::verify(key, body, &sig).unwrap();

    let mut g = c.benchmark_group(format!("verify/{msg}"));
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("slup_envelope", |b| {
        b.iter(|| black_box(&signed).verify(key).is_ok())
    });
    g.bench_function("bare_ecdsa", |b| {
        b.iter(|| crypto::verify(key, black_box(body), black_box(&sig)).is_ok())
    });
    g.bench_function("slup_decode_and_verify", |b| {
        b.iter(|| split(black_box(bytes)).verify(key).is_ok())
    });
    g.finish();
}

fn verify(c: &mut Criterion) {
    let f = fixtures();
    let dev = active_key().public_key().clone();
    let svc = service_key().public_key().clone();

    verify_group(c, "poll_req", &f.poll_req, &dev, |b| {
        request::decode(b).unwrap().signed
    });
    verify_group(c, "license_usage", &f.license_usage, &dev, |b| {
        request::decode(b).unwrap().signed
    });
    verify_group(c, "usage_ack", &f.usage_ack, &svc, |b| {
        response::decode(b).unwrap().signed
    });
    verify_group(c, "rum", &f.rum, &dev, |b| {
        SignedRum::decode(b).unwrap().signed
    });
}

criterion_group! {
    name = benches;
    config = config();
    targets = decode, encode, verify
}
criterion_main!(benches);
