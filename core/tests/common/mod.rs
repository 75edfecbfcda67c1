//! Fixtures shared by the golden, tamper and seed tests and the codec benchmarks: fixed test
//! keys (published in `core/testdata/keys.json`; never use them for anything real) and one
//! deterministic instance of every message. ECDSA signing is RFC 6979 deterministic, so every
//! fixture encodes to the same bytes on every run.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

pub mod lab;

use slup_core::crypto::{PublicKey, Signer, SoftwareSigner};
use slup_core::msg::policy::{ClassAttrs, Classes, Policy};
use slup_core::msg::request::{self, CertSerial, PollRef, Request, RequestData, RequestHeader};
use slup_core::msg::response::{
    self, Ack, AgentActions, ErrorBody, Rejected, Response, ResponseData, ResponseHeader,
};
use slup_core::msg::rum::{
    self, MeasuredValue, Measurement, MeasurementMeta, RumPayload, RumVersion, ValueType,
};
use slup_core::msg::trust::{self, PublicKeyB64, TrustCodePayload, TrustMember, TrustRequest};
use slup_core::msg::{ConnectInfo, HaUdi, SignedList, Version, CAPABILITIES};
use slup_core::nonce::Nonce;
use slup_core::types::*;

/// Secret of the active unit's device key.
pub const ACTIVE_SECRET: [u8; 32] = [0x11; 32];
/// Secret of the standby unit's device key.
pub const STANDBY_SECRET: [u8; 32] = [0x22; 32];
/// Secret of the service key (the device's trust anchor).
pub const SERVICE_SECRET: [u8; 32] = [0x5e; 32];

pub fn active_key() -> SoftwareSigner {
    SoftwareSigner::from_secret_bytes(&ACTIVE_SECRET).unwrap()
}
pub fn standby_key() -> SoftwareSigner {
    SoftwareSigner::from_secret_bytes(&STANDBY_SECRET).unwrap()
}
pub fn service_key() -> SoftwareSigner {
    SoftwareSigner::from_secret_bytes(&SERVICE_SECRET).unwrap()
}

pub fn testdata() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

pub const PII: &str = "2e84a42f-c903-44c5-83b2-e62e258c780f";
pub const POLL_ID: &str = "7d1c2a44-5b0e-4f39-9a61-0c2f5e8b9d13";
pub const NONCE: u64 = 11702702165338740293;
pub const TIMESTAMP: u64 = 1629713888600;
pub const MP: u64 = 1629713890172;

pub fn active_udi() -> Udi<'static> {
    Udi::new("C9800-CL-K9", "9PJK8D70CNB").unwrap()
}
pub fn standby_udi() -> Udi<'static> {
    Udi::new("C9800-CL-K9", "9PJK8D70CNC").unwrap()
}

pub fn agent_info() -> ConnectInfo<'static> {
    ConnectInfo::new("slup", "0.1.0", None, CAPABILITIES).unwrap()
}
pub fn service_info() -> ConnectInfo<'static> {
    ConnectInfo::new("SSM", "1.3", Some(true), CAPABILITIES).unwrap()
}

pub fn request_header(t: RequestType, trusted: bool) -> RequestHeader<'static> {
    RequestHeader {
        version: Version,
        request_type: t,
        locale: Ident::new("en_US.UTF-8").unwrap(),
        sudi: active_udi(),
        timestamp: Timestamp(TIMESTAMP),
        nonce: Nonce::from_value(NONCE),
        product_instance_identifier: if trusted {
            InstanceId(Some(Uuid::new(PII).unwrap()))
        } else {
            InstanceId::NONE
        },
        signing_cert_serial_number: CertSerial(trusted.then_some(TrustId(827))),
        id_cert_serial_number: Ident::new("").unwrap(),
        connect_info: agent_info(),
    }
}

pub fn trust_request() -> TrustRequest<'static> {
    let mut members = heapless::Vec::new();
    members
        .push(TrustMember {
            role: Role::Active,
            sudi: active_udi(),
            public_key: PublicKeyB64(active_key().public_key().clone()),
        })
        .unwrap();
    members
        .push(TrustMember {
            role: Role::Standby,
            sudi: standby_udi(),
            public_key: PublicKeyB64(standby_key().public_key().clone()),
        })
        .unwrap();
    TrustRequest {
        id_token: IdToken::new("ZjE2ZGQ0NzAtNDYwYi00YzNhLWE0YjktMTIzNDU2Nzg5MGFi%0AMTY5MzQ1")
            .unwrap(),
        scope: Scope::All,
        force: true,
        members,
    }
}

pub fn rum_payload(report_id: u64, count: u64) -> RumPayload<'static> {
    let mut ha = heapless::Vec::new();
    ha.push(HaUdi {
        role: Role::Active,
        sudi: active_udi(),
    })
    .unwrap();
    ha.push(HaUdi {
        role: Role::Standby,
        sudi: standby_udi(),
    })
    .unwrap();
    let mut added = heapless::Vec::new();
    added
        .push(Udi::new("C9130AXI-E", "FJC2311T0AA").unwrap())
        .unwrap();
    added
        .push(Udi::new("C9130AXI-E", "FJC2311T0AB").unwrap())
        .unwrap();
    let mut measurements = heapless::Vec::new();
    measurements
        .push(Measurement {
            log_time: 1680767427,
            metric_name: Ident::new("ENTITLEMENT").unwrap(),
            start_time: 1680767118,
            end_time: 1680807618,
            sample_interval: 900,
            num_samples: 46,
            value: MeasuredValue {
                kind: ValueType::COUNT,
                value: Count(count),
            },
            meta: MeasurementMeta {
                added_sudi_list: added,
                removed_sudi_list: heapless::Vec::new(),
                sudi_list_overflow: 0,
                termination_reason: Ident::new("ReportTime").unwrap(),
                clock_change_delta: Delta(0),
            },
        })
        .unwrap();
    RumPayload {
        version: RumVersion,
        report_id: ReportId(report_id),
        sudi: active_udi(),
        product_instance_identifier: InstanceId(Some(Uuid::new(PII).unwrap())),
        software_tag: Ident::new(
            "regid.2018-05.com.cisco.WLC_9500C,1.0_85665885-b52c-4bfd-a0b6-3a2d1bd8f1d9",
        )
        .unwrap(),
        entitlement_tag: Ident::new(
            "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790",
        )
        .unwrap(),
        software_version: Ident::new("17.09.02").unwrap(),
        ha_udi: ha,
        measurements,
    }
}

/// A signed RUM report, leaked so its bytes can be borrowed for `'static`.
pub fn signed_rum(report_id: u64, count: u64) -> &'static [u8] {
    let mut buf = vec![0u8; 8192];
    let n = rum::encode(&mut buf, &rum_payload(report_id, count), &active_key()).unwrap();
    buf.truncate(n);
    Box::leak(buf.into_boxed_slice())
}

pub fn custom_policy() -> Policy<'static> {
    Policy {
        name: Text::plain("Custom Policy"),
        ack_required: Some(true),
        classes: Classes {
            perpetual: Some(ClassAttrs {
                first_report_days: Some(30),
                reporting_frequency_days: Some(60),
                report_on_change_days: Some(60),
            }),
            subscription: Some(ClassAttrs {
                first_report_days: Some(120),
                reporting_frequency_days: None,
                report_on_change_days: Some(111),
            }),
            enforced: None,
            export: None,
        },
    }
}

pub fn trust_code_payload(role: Role) -> TrustCodePayload<'static> {
    let (udi, key) = match role {
        Role::Standby => (standby_udi(), standby_key()),
        _ => (active_udi(), active_key()),
    };
    TrustCodePayload {
        trust_id: TrustId(if role == Role::Standby { 828 } else { 827 }),
        product_instance_identifier: Uuid::new(PII).unwrap(),
        sudi: udi,
        public_key: PublicKeyB64(key.public_key().clone()),
        issued_at: Timestamp(MP),
        smart_account: Text::plain("Wireless TAC"),
        virtual_account: Text::plain("Lab \"9800\" VA"),
    }
}

pub fn signed_trust_code(role: Role) -> &'static [u8] {
    let mut buf = vec![0u8; 4096];
    let n = trust::encode_trust_code(&mut buf, &trust_code_payload(role), &service_key()).unwrap();
    buf.truncate(n);
    Box::leak(buf.into_boxed_slice())
}

pub fn response_header(
    t: RequestType,
    status: StatusCode,
    message: &'static str,
    retry: u32,
) -> ResponseHeader<'static> {
    ResponseHeader {
        version: Version,
        request_type: t,
        mp: Timestamp(MP),
        nonce: Some(Nonce::from_value(NONCE)),
        sudi: active_udi(),
        status_code: status,
        message: Text::plain(message),
        retry_time_seconds: retry,
        agent_actions: AgentActions,
        connect_info: service_info(),
    }
}

pub fn ack() -> Ack<'static> {
    let mut acked = heapless::Vec::new();
    acked.push(ReportId(1671840757)).unwrap();
    let mut rejected = heapless::Vec::new();
    rejected
        .push(Rejected {
            report_id: ReportId(1671840758),
            reason: Text::plain("report window ends in the future"),
        })
        .unwrap();
    Ack { acked, rejected }
}

/// Which key verifies a golden message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyWith {
    Device,
    Service,
    Unsigned,
}

/// What a golden file holds, for decoding it back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
    Rum,
    TrustCode,
    Policy,
    Ack,
    ErrorBody,
}

/// Every golden message: file name, kind, key, and its bytes as encoded by the fixtures.
pub fn goldens() -> Vec<(&'static str, Kind, VerifyWith, Vec<u8>)> {
    let dev = active_key();
    let svc = service_key();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];

    let mut req = |name, t, trusted, data: RequestData<'static>, out: &mut Vec<_>| {
        let r = Request {
            header: request_header(t, trusted),
            data,
        };
        let n = request::encode(&mut buf, &r, &dev).unwrap();
        out.push((name, Kind::Request, VerifyWith::Device, buf[..n].to_vec()));
    };
    req(
        "request_id_token_trust.json",
        RequestType::ID_TOKEN_TRUST,
        false,
        RequestData::IdTokenTrust(trust_request()),
        &mut out,
    );
    let reports: &'static [&'static [u8]] =
        Box::leak(vec![signed_rum(1671840757, 3), signed_rum(1671840758, 4)].into_boxed_slice());
    req(
        "request_license_usage.json",
        RequestType::LICENSE_USAGE,
        true,
        RequestData::LicenseUsage(SignedList::Items(reports)),
        &mut out,
    );
    req(
        "request_poll_req.json",
        RequestType::POLL_REQ,
        true,
        RequestData::PollReq(PollRef {
            original_request_type: RequestType::LICENSE_USAGE,
            original_pid: Uuid::new(POLL_ID).unwrap(),
        }),
        &mut out,
    );
    req(
        "request_trust_sync.json",
        RequestType::TRUST_SYNC,
        true,
        RequestData::TrustSync(TrustId(827)),
        &mut out,
    );
    req(
        "request_hello.json",
        RequestType::HELLO,
        true,
        RequestData::Hello,
        &mut out,
    );

    let mut buf = vec![0u8; 64 * 1024];
    let mut resp = |name, header, data, out: &mut Vec<_>| {
        let r = Response { header, data };
        let n = response::encode(&mut buf, &r, &svc).unwrap();
        out.push((name, Kind::Response, VerifyWith::Service, buf[..n].to_vec()));
    };
    let codes: &'static [&'static [u8]] = Box::leak(
        vec![
            signed_trust_code(Role::Active),
            signed_trust_code(Role::Standby),
        ]
        .into_boxed_slice(),
    );
    resp(
        "response_trust_ok.json",
        response_header(RequestType::ID_TOKEN_TRUST, StatusCode::OK, "", 0),
        ResponseData::Trust {
            trust_codes: SignedList::Items(codes),
            policy: Some(custom_policy()),
        },
        &mut out,
    );
    resp(
        "response_usage_ok.json",
        response_header(RequestType::LICENSE_USAGE, StatusCode::OK, "", 0),
        ResponseData::Usage {
            ack: ack(),
            policy: Some(custom_policy()),
        },
        &mut out,
    );
    resp(
        "response_usage_ok_poll.json",
        response_header(RequestType::LICENSE_USAGE, StatusCode::OK_POLL, "", 300),
        ResponseData::Poll(Uuid::new(POLL_ID).unwrap()),
        &mut out,
    );
    resp(
        "response_poll_req_ok.json",
        response_header(RequestType::POLL_REQ, StatusCode::OK, "", 0),
        ResponseData::Usage {
            ack: ack(),
            policy: None,
        },
        &mut out,
    );
    resp(
        "response_try_again.json",
        response_header(
            RequestType::LICENSE_USAGE,
            StatusCode::OK_TRY_AGAIN,
            "service busy",
            60,
        ),
        ResponseData::None,
        &mut out,
    );
    resp(
        "response_poll_failed.json",
        response_header(
            RequestType::POLL_REQ,
            StatusCode::FAILED,
            "Invalid ProductInstanceIdentifier: 7d1c2a44-5b0e-4f39-9a61-0c2f5e8b9d13 provided in the polling request",
            0,
        ),
        ResponseData::None,
        &mut out,
    );
    resp(
        "response_trust_sync_ok.json",
        response_header(RequestType::TRUST_SYNC, StatusCode::OK, "", 0),
        ResponseData::TrustSync { policy: None },
        &mut out,
    );
    resp(
        "response_hello_ok.json",
        response_header(RequestType::HELLO, StatusCode::OK, "", 0),
        ResponseData::Hello,
        &mut out,
    );

    out.push((
        "rum_report.json",
        Kind::Rum,
        VerifyWith::Device,
        signed_rum(1671840757, 3).to_vec(),
    ));
    out.push((
        "trust_code.json",
        Kind::TrustCode,
        VerifyWith::Service,
        signed_trust_code(Role::Active).to_vec(),
    ));
    let mut b = [0u8; 4096];
    let mut w = slup_core::msg::Writer::new(&mut b);
    w.json(&custom_policy(), "policy").unwrap();
    out.push((
        "policy.json",
        Kind::Policy,
        VerifyWith::Unsigned,
        w.written().to_vec(),
    ));
    let n = ack().encode(&mut b).unwrap();
    out.push(("ack.json", Kind::Ack, VerifyWith::Unsigned, b[..n].to_vec()));
    let n = ErrorBody {
        code: 1201,
        message: Text::plain("nonce was never issued"),
    }
    .encode(&mut b)
    .unwrap();
    out.push((
        "error_body.json",
        Kind::ErrorBody,
        VerifyWith::Unsigned,
        b[..n].to_vec(),
    ));
    out
}

/// The public key that verifies a golden.
pub fn verifier(with: VerifyWith) -> Option<PublicKey> {
    match with {
        VerifyWith::Device => Some(active_key().public_key().clone()),
        VerifyWith::Service => Some(service_key().public_key().clone()),
        VerifyWith::Unsigned => None,
    }
}

/// Decodes (and, if signed, verifies) a message of `kind`; `Err` with the stable code if
/// anything fails.
pub fn decode_and_verify(
    kind: Kind,
    with: VerifyWith,
    bytes: &[u8],
) -> Result<(), slup_core::Code> {
    let key = verifier(with);
    let check = |signed: &slup_core::envelope::Signed<'_>| match &key {
        Some(k) => signed.verify(k),
        None => Ok(()),
    };
    match kind {
        Kind::Request => check(&request::decode(bytes).map_err(|e| e.code)?.signed),
        Kind::Response => check(&response::decode(bytes).map_err(|e| e.code)?.signed),
        Kind::Rum => check(&rum::SignedRum::decode(bytes).map_err(|e| e.code)?.signed),
        Kind::TrustCode => check(&trust::TrustCode::decode(bytes).map_err(|e| e.code)?.signed),
        Kind::Policy => Policy::decode(bytes).map(|_| ()).map_err(|e| e.code),
        Kind::Ack => Ack::decode(bytes).map(|_| ()).map_err(|e| e.code),
        Kind::ErrorBody => ErrorBody::decode(bytes).map(|_| ()).map_err(|e| e.code),
    }
}
