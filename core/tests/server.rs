#![cfg(feature = "server")]
//! The service side: requests built with the codecs and the fixture keys go through
//! `Service::handle`, and every answer is decoded and verified as a device would.

mod common;

use common::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::{PublicKey, Signer, SoftwareSigner};
use slup_core::msg::request::{self, CertSerial, PollRef, Request, RequestData, RequestHeader};
use slup_core::msg::response::{self, ErrorBody, ResponseData, SignedResponse};
use slup_core::msg::rum;
use slup_core::msg::trust::{PublicKeyB64, TrustCode, TrustMember, TrustRequest};
use slup_core::msg::{SignedList, Version};
use slup_core::nonce::Nonce;
use slup_core::server::store::{PiId, ServiceStore, StoredPolicy, VaId};
use slup_core::server::{Config, MemStore, Reply, Service, TokenSpec, UsageMode};
use slup_core::types::*;
use slup_core::{Code, Error};

/// Service time: a second after the fixtures' request timestamp.
const NOW: u64 = TIMESTAMP + 1_000;
const DAY_MS: u64 = 86_400_000;
/// The fixtures' trust request carries this token.
const HA_TOKEN: &str = "ZjE2ZGQ0NzAtNDYwYi00YzNhLWE0YjktMTIzNDU2Nzg5MGFi%0AMTY5MzQ1";

struct Lab<St: ServiceStore> {
    svc: Service<St, SoftwareSigner>,
    rng: ChaCha20Rng,
    va: VaId,
    out: Vec<u8>,
    nonce: u64,
}

fn lab() -> Lab<MemStore> {
    lab_with(MemStore::new(), UsageMode::Immediate)
}

fn lab_with<St: ServiceStore>(store: St, usage_mode: UsageMode) -> Lab<St> {
    let config = Config {
        usage_mode,
        ..Config::default()
    };
    let mut svc = Service::new(store, service_key(), config).unwrap();
    let sa = svc.create_smart_account("Wireless TAC").unwrap();
    let va = svc.create_virtual_account(sa, "Lab \"9800\" VA").unwrap();
    Lab {
        svc,
        rng: ChaCha20Rng::seed_from_u64(7),
        va,
        out: vec![0u8; 16 * 1024],
        nonce: NONCE,
    }
}

impl<St: ServiceStore> Lab<St> {
    fn token(&mut self, text: &str, max_uses: u32, expires_at: u64) {
        let spec = TokenSpec {
            virtual_account: self.va,
            max_uses,
            expires_at: Timestamp(expires_at),
            export_controlled: false,
        };
        self.svc.add_token(text, spec).unwrap();
    }

    fn send(&mut self, body: &[u8]) -> (Reply, Vec<u8>) {
        let r = self
            .svc
            .handle(Timestamp(NOW), &mut self.rng, body, &mut self.out);
        (r, self.out[..r.len].to_vec())
    }

    fn next_nonce(&mut self) -> u64 {
        self.nonce += 1;
        self.nonce
    }

    /// Sends a request built from `header` fields and `data`, signed with `key`.
    fn request(&mut self, who: &Who, t: RequestType, data: RequestData<'_>) -> (Reply, Vec<u8>) {
        let nonce = self.next_nonce();
        let body = envelope(who, t, nonce, NOW, data);
        self.send(&body)
    }

    /// Trust for the active/standby pair of the fixtures with scope all.
    fn trust_pair(&mut self) -> Trusted {
        let (reply, body) = self.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
        assert_eq!(reply.http_status, 200, "{}", String::from_utf8_lossy(&body));
        let r = answer(&body);
        assert_eq!(r.response.header.status_code, StatusCode::OK);
        trusted(&r)
    }

    fn instance(&self) -> (PiId, slup_core::server::store::InstanceRecord) {
        self.svc.instance_by_udi(&active_udi()).unwrap().unwrap()
    }
}

/// A unit as the service knows it after trust.
struct Who {
    udi: Udi<'static>,
    key: SoftwareSigner,
    pii: Option<String>,
    trust_id: Option<u64>,
}

fn active(t: &Trusted) -> Who {
    Who {
        udi: active_udi(),
        key: active_key(),
        pii: Some(t.pii.clone()),
        trust_id: Some(t.trust_ids[0]),
    }
}

fn header<'a>(who: &'a Who, t: RequestType, nonce: u64, ts: u64) -> RequestHeader<'a> {
    RequestHeader {
        version: Version,
        request_type: t,
        locale: Ident::new("en_US.UTF-8").unwrap(),
        sudi: who.udi,
        timestamp: Timestamp(ts),
        nonce: Nonce::from_value(nonce),
        product_instance_identifier: InstanceId(who.pii.as_deref().map(|p| Uuid::new(p).unwrap())),
        signing_cert_serial_number: CertSerial(who.trust_id.map(TrustId)),
        id_cert_serial_number: Ident::new("").unwrap(),
        connect_info: agent_info(),
    }
}

fn envelope(who: &Who, t: RequestType, nonce: u64, ts: u64, data: RequestData<'_>) -> Vec<u8> {
    let req = Request {
        header: header(who, t, nonce, ts),
        data,
    };
    let mut buf = vec![0u8; 256 * 1024];
    let n = request::encode(&mut buf, &req, &who.key).unwrap();
    buf.truncate(n);
    buf
}

fn trust_envelope(t: &TrustRequest<'static>, key: &SoftwareSigner, nonce: u64) -> Vec<u8> {
    let who = Who {
        udi: t.members[0].sudi,
        key: SoftwareSigner::from_secret_bytes(&key.secret_bytes()).unwrap(),
        pii: None,
        trust_id: None,
    };
    envelope(
        &who,
        RequestType::ID_TOKEN_TRUST,
        nonce,
        NOW,
        RequestData::IdTokenTrust(t.clone()),
    )
}

fn usage(reports: &[&[u8]]) -> RequestData<'static> {
    let list: &'static [&'static [u8]] = Box::leak(
        reports
            .iter()
            .map(|r| &*Box::leak(r.to_vec().into_boxed_slice()))
            .collect::<Vec<&'static [u8]>>()
            .into_boxed_slice(),
    );
    RequestData::LicenseUsage(SignedList::Items(list))
}

/// A report signed with `key`, for `sudi`.
fn report(id: u64, count: u64, sudi: Udi<'static>, key: &SoftwareSigner) -> Vec<u8> {
    let mut p = rum_payload(id, count);
    p.sudi = sudi;
    let mut buf = vec![0u8; 8192];
    let n = rum::encode(&mut buf, &p, key).unwrap();
    buf.truncate(n);
    buf
}

/// Decodes an answer and verifies it with the service key, as a device does.
fn answer(body: &[u8]) -> SignedResponse<'_> {
    let r =
        response::decode(body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(body)));
    r.verify(service_key().public_key()).unwrap();
    r
}

fn error(reply: Reply, body: &[u8]) -> (u16, Code, String) {
    let e = ErrorBody::decode(body).unwrap();
    (
        reply.http_status,
        Code::from_number(e.code).unwrap(),
        e.message.to_string(),
    )
}

struct Trusted {
    pii: String,
    trust_ids: Vec<u64>,
}

fn trusted(r: &SignedResponse<'_>) -> Trusted {
    let ResponseData::Trust { trust_codes, .. } = &r.response.data else {
        panic!("not a trust answer: {:?}", r.response.data);
    };
    let mut pii = String::new();
    let mut trust_ids = Vec::new();
    for bytes in trust_codes.iter() {
        let code = TrustCode::decode(bytes).unwrap();
        code.signed.verify(service_key().public_key()).unwrap();
        pii = code
            .payload
            .product_instance_identifier
            .as_str()
            .to_string();
        trust_ids.push(code.payload.trust_id.0);
    }
    Trusted { pii, trust_ids }
}

fn failed_message(body: &[u8]) -> String {
    let r = answer(body);
    assert_eq!(r.response.header.status_code, StatusCode::FAILED);
    assert_eq!(r.response.data, ResponseData::None);
    r.response.header.message.to_string()
}

fn acked_and_rejected(r: &SignedResponse<'_>) -> (Vec<u64>, Vec<(u64, String)>) {
    let ResponseData::Usage { ack, .. } = &r.response.data else {
        panic!("not a usage answer: {:?}", r.response.data);
    };
    (
        ack.acked.iter().map(|r| r.0).collect(),
        ack.rejected
            .iter()
            .map(|r| (r.report_id.0, r.reason.to_string()))
            .collect(),
    )
}

fn other_unit() -> (Udi<'static>, SoftwareSigner) {
    (
        Udi::new("C9800-CL-K9", "9PJK8D70XYZ").unwrap(),
        SoftwareSigner::from_secret_bytes(&[0x33; 32]).unwrap(),
    )
}

fn local_trust(
    udi: Udi<'static>,
    key: &SoftwareSigner,
    token: &'static str,
) -> TrustRequest<'static> {
    let mut members = heapless::Vec::new();
    members
        .push(TrustMember {
            role: Role::Active,
            sudi: udi,
            public_key: PublicKeyB64(key.public_key().clone()),
        })
        .unwrap();
    TrustRequest {
        id_token: IdToken::new(token).unwrap(),
        scope: Scope::Local,
        force: false,
        members,
    }
}

// ---- ID_TOKEN_TRUST ------------------------------------------------------------------------

#[test]
fn ha_trust_with_scope_all_spends_two_uses_and_returns_two_verified_codes() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.svc.set_policy(lab.va, Some(&custom_policy())).unwrap();

    let (reply, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
    assert_eq!(reply.http_status, 200);
    let r = answer(&body);
    let h = &r.response.header;
    assert_eq!(h.status_code, StatusCode::OK);
    assert_eq!(h.request_type, RequestType::ID_TOKEN_TRUST);
    assert_eq!(h.nonce, Some(Nonce::from_value(NONCE)));
    assert_eq!(h.sudi, active_udi());
    assert_eq!(h.mp, Timestamp(NOW));
    assert_eq!(h.connect_info.name.as_str(), "SSM");
    assert_eq!(h.connect_info.version.as_str(), "1.3");
    assert_eq!(h.connect_info.prod, Some(true));

    let ResponseData::Trust {
        trust_codes,
        policy,
    } = &r.response.data
    else {
        panic!("{:?}", r.response.data)
    };
    assert_eq!(policy.as_ref(), Some(&custom_policy()));
    let codes: Vec<TrustCode<'_>> = trust_codes
        .iter()
        .map(|b| TrustCode::decode(b).unwrap())
        .collect();
    assert_eq!(codes.len(), 2);
    let expect = [(active_udi(), active_key()), (standby_udi(), standby_key())];
    for (i, (code, (udi, key))) in codes.iter().zip(&expect).enumerate() {
        assert_eq!(code.signed.verify(service_key().public_key()), Ok(()));
        assert_eq!(code.payload.trust_id, TrustId(i as u64 + 1));
        assert_eq!(code.payload.sudi, *udi);
        assert_eq!(code.payload.public_key.0, *key.public_key());
        assert_eq!(code.payload.issued_at, Timestamp(NOW));
        assert!(code.payload.smart_account.eq_str("Wireless TAC"));
        assert!(code.payload.virtual_account.eq_str("Lab \"9800\" VA"));
    }
    let pii = codes[0].payload.product_instance_identifier;
    assert_eq!(codes[1].payload.product_instance_identifier, pii);
    assert_eq!(Uuid::new(pii.as_str()), Ok(pii), "lower-case UUID");

    let (pi, rec) = lab.instance();
    assert_eq!(rec.uuid.as_str(), pii.as_str());
    assert_eq!(rec.members.len(), 2);
    assert_eq!(
        rec.members[1].public_key.key_id(),
        standby_key().public_key().key_id()
    );
    assert_eq!(rec.members[1].trust_id, TrustId(2));
    assert!(!rec.removed);
    assert_eq!(
        lab.svc.instance_by_udi(&standby_udi()).unwrap().unwrap().0,
        pi
    );
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 2);

    // The same request again (its answer was lost): the same codes, no use spent.
    let (reply, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE + 1));
    assert_eq!(reply.http_status, 200);
    assert_eq!(trusted(&answer(&body)).trust_ids, [1, 2]);
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 2);

    // A new attempt (new keys) finds the token spent: it fails and changes nothing.
    let new_active = SoftwareSigner::from_secret_bytes(&[0x33; 32]).unwrap();
    let new_standby = SoftwareSigner::from_secret_bytes(&[0x44; 32]).unwrap();
    let mut fresh = trust_request();
    fresh.members[0].public_key = PublicKeyB64(new_active.public_key().clone());
    fresh.members[1].public_key = PublicKeyB64(new_standby.public_key().clone());
    let (reply, body) = lab.send(&trust_envelope(&fresh, &new_active, NONCE + 2));
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        failed_message(&body),
        "The ID token has 0 of 2 uses left; this request needs 2, one per HA member."
    );
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 2);
    let (_, now_rec) = lab.instance();
    assert_eq!(now_rec.members, rec.members);
}

#[test]
fn a_one_use_token_cannot_trust_an_ha_pair() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 1, NOW + DAY_MS);
    let (_, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
    assert_eq!(
        failed_message(&body),
        "The ID token has 1 of 1 uses left; this request needs 2, one per HA member."
    );
    assert_eq!(lab.svc.instance_by_udi(&active_udi()).unwrap(), None);
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 0);
}

#[test]
fn expired_token_fails_and_registers_nothing() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 5, NOW);
    let (reply, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        failed_message(&body),
        format!("The ID token expired at {NOW} (service time {NOW}).")
    );
    assert_eq!(lab.svc.instance_by_udi(&active_udi()).unwrap(), None);
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 0);
}

#[test]
fn unknown_token_fails() {
    let mut lab = lab();
    lab.token("some-other-token", 5, NOW + DAY_MS);
    let (reply, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
    assert_eq!(reply.http_status, 200);
    let r = answer(&body);
    assert_eq!(r.response.header.nonce, Some(Nonce::from_value(NONCE)));
    assert_eq!(failed_message(&body), "The ID token is not valid.");
    assert_eq!(lab.svc.instance_by_udi(&active_udi()).unwrap(), None);
}

#[test]
fn trust_signed_with_another_key_than_the_active_members_is_401() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    // Signed by the standby's key: no proof of possession of the active key.
    let (reply, body) = lab.send(&trust_envelope(&trust_request(), &standby_key(), NONCE));
    let (status, code, msg) = error(reply, &body);
    assert_eq!((status, code), (401, Code::KeyIdMismatch));
    assert!(msg.starts_with("ID_TOKEN_TRUST must be signed with the Active member's new key"));
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 0);
}

#[test]
fn tampered_envelope_is_401_bad_signature() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let good = trust_envelope(&trust_request(), &active_key(), NONCE);
    let text = String::from_utf8(good).unwrap();
    let bad = text.replacen("\"force\":true", "\"force\":false", 1);
    assert_ne!(bad, text);
    let (reply, body) = lab.send(bad.as_bytes());
    let (status, code, _) = error(reply, &body);
    assert_eq!((status, code), (401, Code::BadSignature));
    assert_eq!(code.number(), 1100);
    assert_eq!(lab.svc.instance_by_udi(&active_udi()).unwrap(), None);

    // After trust, a tampered usage request is refused the same way.
    let t = lab.trust_pair();
    let who = active(&t);
    let good = envelope(&who, RequestType::HELLO, 5, NOW, RequestData::Hello);
    let bad = String::from_utf8(good)
        .unwrap()
        .replacen("en_US.UTF-8", "en_US.UTF-9", 1);
    let (reply, body) = lab.send(bad.as_bytes());
    assert_eq!(error(reply, &body).1, Code::BadSignature);
}

#[test]
fn retrust_keeps_the_instance_id_and_renews_only_the_active_unit_with_scope_local() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.token("second-token", 1, NOW + DAY_MS);
    let first = lab.trust_pair();
    assert_eq!(first.trust_ids, [1, 2]);

    // force:false on a trusted instance still succeeds (the device enforces force).
    let t = local_trust(active_udi(), &active_key(), "second-token");
    let (reply, body) = lab.send(&trust_envelope(&t, &active_key(), 99));
    assert_eq!(reply.http_status, 200);
    let again = trusted(&answer(&body));
    assert_eq!(again.pii, first.pii);
    assert_eq!(again.trust_ids, [3]);
    let rec = lab.instance().1;
    let ids: Vec<u64> = rec.members.iter().map(|m| m.trust_id.0).collect();
    assert_eq!(ids, [3, 2], "the standby keeps its trust code");

    // The old trust id no longer authenticates the active unit.
    let stale = active(&first);
    let (reply, body) = lab.request(&stale, RequestType::HELLO, RequestData::Hello);
    let (status, code, _) = error(reply, &body);
    assert_eq!((status, code), (401, Code::NotTrusted));
}

#[test]
fn retrust_without_force_can_be_refused_by_configuration() {
    let mut lab = lab();
    lab.svc.config_mut().retrust_requires_force = true;
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.token("second-token", 1, NOW + DAY_MS);
    lab.trust_pair();
    let t = local_trust(active_udi(), &active_key(), "second-token");
    let (_, body) = lab.send(&trust_envelope(&t, &active_key(), 99));
    assert_eq!(
        failed_message(&body),
        "The product instance is already trusted; use force to replace its trust."
    );
    assert_eq!(lab.svc.token("second-token").unwrap().unwrap().uses, 0);
}

#[test]
fn trust_without_an_active_member_is_400() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let mut t = trust_request();
    t.members[0].role = Role::Member;
    let (reply, body) = lab.send(&trust_envelope(&t, &active_key(), NONCE));
    // Refused before any key is tried (by the codec or by the service's member rules).
    let (status, code, _) = error(reply, &body);
    assert_eq!((status, code), (400, Code::InvalidValue));
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 0);
}

#[test]
fn an_answer_that_does_not_fit_changes_nothing() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.out = vec![0u8; 1500];
    let (reply, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
    assert_eq!(error(reply, &body).0, 500);
    assert_eq!(error(reply, &body).1, Code::BufferTooSmall);
    assert_eq!(lab.svc.token(HA_TOKEN).unwrap().unwrap().uses, 0);
    assert_eq!(lab.svc.instance_by_udi(&active_udi()).unwrap(), None);

    // Without room for even the error body, the status alone answers.
    lab.out = vec![0u8; 8];
    let (reply, _) = lab.send(b"{");
    assert_eq!(
        reply,
        Reply {
            http_status: 400,
            len: 0
        }
    );
}

// ---- authentication ------------------------------------------------------------------------

#[test]
fn undecodable_bodies_are_400_with_the_decode_code() {
    let mut lab = lab();
    let cases: &[(&[u8], Code)] = &[
        (b"{", Code::JsonSyntax),
        (b"{\"request\":{}}", Code::MissingField),
        (b"[]", Code::WrongType),
        (b"{} x", Code::TrailingBytes),
    ];
    for (body, want) in cases {
        let (reply, out) = lab.send(body);
        let (status, code, msg) = error(reply, &out);
        assert_eq!(
            (status, code),
            (400, *want),
            "{}",
            String::from_utf8_lossy(body)
        );
        assert!(msg.starts_with("request does not decode: "), "{msg}");
    }
}

#[test]
fn a_unit_the_service_never_trusted_is_401_not_trusted() {
    let mut lab = lab();
    let who = Who {
        udi: active_udi(),
        key: active_key(),
        pii: Some(PII.to_string()),
        trust_id: Some(827),
    };
    let (reply, body) = lab.request(&who, RequestType::HELLO, RequestData::Hello);
    assert_eq!(
        error(reply, &body),
        (
            401,
            Code::NotTrusted,
            format!("The identity for the instance {PII} is not valid. Please re-register the instance.")
        )
    );
}

#[test]
fn a_request_signed_with_another_units_key_is_401_key_id_mismatch() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let mut who = active(&t);
    who.key = standby_key();
    let (reply, body) = lab.request(&who, RequestType::HELLO, RequestData::Hello);
    let (status, code, msg) = error(reply, &body);
    assert_eq!((status, code), (401, Code::KeyIdMismatch));
    assert_eq!(
        msg,
        format!(
            "request signed with key {}, not the device key {} bound to PID:C9800-CL-K9,SN:9PJK8D70CNB",
            standby_key().public_key().key_id(),
            active_key().public_key().key_id()
        )
    );
}

#[test]
fn rma_removed_instance_is_403_with_csssms_wording_and_may_trust_again_as_new() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 4, NOW + DAY_MS);
    let t = lab.trust_pair();
    let (pi, _) = lab.instance();
    lab.svc.remove_instance(pi).unwrap();

    let who = active(&t);
    let r1 = report(1, 3, active_udi(), &active_key());
    let (reply, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1]));
    assert_eq!(
        error(reply, &body),
        (
            403,
            Code::NotTrusted,
            format!(
                "The identity for the instance {} is not valid. Please re-register the instance.",
                t.pii
            )
        )
    );
    assert_eq!(lab.svc.report_count(pi).unwrap(), 0);

    // The replaced hardware registers as a new product instance.
    let again = lab.trust_pair();
    assert_ne!(again.pii, t.pii);
    assert_eq!(again.trust_ids, [3, 4]);
    let (pi2, rec) = lab.instance();
    assert_ne!(pi2, pi);
    assert!(!rec.removed);
}

#[test]
fn a_stale_instance_id_is_401() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let mut who = active(&t);
    who.pii = Some(PII.to_string());
    let (reply, body) = lab.request(&who, RequestType::HELLO, RequestData::Hello);
    assert_eq!(error(reply, &body).0, 401);
    assert_eq!(error(reply, &body).1, Code::NotTrusted);
}

#[test]
fn a_skewed_request_clock_fails() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let body = envelope(
        &who,
        RequestType::HELLO,
        77,
        NOW - 2 * 3_600_000,
        RequestData::Hello,
    );
    let (reply, out) = lab.send(&body);
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        failed_message(&out),
        format!(
            "Request timestamp {} is 7200 s away from service time {NOW}; tolerance is 3600 s. Set the device clock.",
            NOW - 2 * 3_600_000
        )
    );
}

// ---- LICENSE_USAGE -------------------------------------------------------------------------

#[test]
fn usage_is_acked_immediately_with_the_policy() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.svc.set_policy(lab.va, Some(&custom_policy())).unwrap();
    let t = lab.trust_pair();
    let who = active(&t);
    let r1 = report(1671840757, 3, active_udi(), &active_key());
    let r2 = report(1671840758, 4, standby_udi(), &standby_key());
    let (reply, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1, &r2]));
    assert_eq!(reply.http_status, 200);
    let r = answer(&body);
    let h = &r.response.header;
    assert_eq!(h.status_code, StatusCode::OK);
    assert_eq!(h.request_type, RequestType::LICENSE_USAGE);
    assert_eq!(h.nonce, Some(Nonce::from_value(lab.nonce)));
    assert_eq!(h.sudi, active_udi());
    assert_eq!(h.retry_time_seconds, 0);
    assert_eq!(
        acked_and_rejected(&r),
        (vec![1671840757, 1671840758], vec![])
    );
    let ResponseData::Usage { policy, .. } = &r.response.data else {
        unreachable!()
    };
    assert_eq!(policy.as_ref(), Some(&custom_policy()));

    let (pi, rec) = lab.instance();
    assert_eq!(rec.last_contact, Timestamp(NOW));
    assert_eq!(lab.svc.report_count(pi).unwrap(), 2);
    let stored = lab
        .svc
        .report(&standby_udi(), ReportId(1671840758))
        .unwrap()
        .unwrap();
    assert_eq!(stored.count, 4);
    assert_eq!(stored.instance, pi);
    assert_eq!(
        stored.entitlement.as_str(),
        "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790"
    );
}

#[test]
fn a_resent_report_is_acked_again_and_counted_once() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let r1 = report(1671840757, 3, active_udi(), &active_key());
    for _ in 0..2 {
        let (_, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1]));
        assert_eq!(
            acked_and_rejected(&answer(&body)),
            (vec![1671840757], vec![])
        );
    }
    // Twice in one message: acked once.
    let (_, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1, &r1]));
    assert_eq!(
        acked_and_rejected(&answer(&body)),
        (vec![1671840757], vec![])
    );
    let (pi, _) = lab.instance();
    assert_eq!(lab.svc.report_count(pi).unwrap(), 1);
    let stored = lab
        .svc
        .report(&active_udi(), ReportId(1671840757))
        .unwrap()
        .unwrap();
    assert_eq!(stored.count, 3);
}

#[test]
fn a_different_report_under_a_used_id_is_rejected() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let first = report(1671840757, 3, active_udi(), &active_key());
    let conflicting = report(1671840757, 9, active_udi(), &active_key());
    lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&first]));
    let (_, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&conflicting]));
    assert_eq!(
        acked_and_rejected(&answer(&body)),
        (
            vec![],
            vec![(
                1671840757,
                "report_id already received with different content".to_string()
            )]
        )
    );
    let (pi, _) = lab.instance();
    assert_eq!(lab.svc.report_count(pi).unwrap(), 1);
    let stored = lab
        .svc
        .report(&active_udi(), ReportId(1671840757))
        .unwrap()
        .unwrap();
    assert_eq!(stored.count, 3);
}

#[test]
fn bad_reports_are_rejected_one_by_one_with_a_reason() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let good = report(10, 3, active_udi(), &active_key());
    // Claims to be the active unit's, signed with the standby's key.
    let other_key = report(11, 3, active_udi(), &standby_key());
    // Edited after signing.
    let edited = String::from_utf8(report(12, 3, active_udi(), &active_key()))
        .unwrap()
        .replacen("\"num_samples\":46", "\"num_samples\":47", 1)
        .into_bytes();
    // A unit that is not part of this instance.
    let (udi, key) = other_unit();
    let foreign = report(13, 3, udi, &key);
    let (reply, body) = lab.request(
        &who,
        RequestType::LICENSE_USAGE,
        usage(&[&good, &other_key, &edited, &foreign]),
    );
    assert_eq!(reply.http_status, 200);
    let r = answer(&body);
    assert_eq!(r.response.header.status_code, StatusCode::OK);
    assert_eq!(
        acked_and_rejected(&r),
        (
            vec![10],
            vec![
                (
                    11,
                    "signed with a key that is not the unit's device key".to_string()
                ),
                (12, "signature does not verify".to_string()),
                (
                    13,
                    "sudi is not a unit of this product instance".to_string()
                ),
            ]
        )
    );
    let (pi, _) = lab.instance();
    assert_eq!(lab.svc.report_count(pi).unwrap(), 1);
}

#[test]
fn poll_mode_answers_ok_poll_then_the_ack_once_then_the_seeds_failed() {
    let mut lab = lab_with(
        MemStore::<16, 16, 128, 16>::new(),
        UsageMode::Poll {
            retry_time_seconds: 300,
        },
    );
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let r1 = report(1671840757, 3, active_udi(), &active_key());
    let (_, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1]));
    let r = answer(&body);
    assert_eq!(r.response.header.status_code, StatusCode::OK_POLL);
    assert_eq!(r.response.header.retry_time_seconds, 300);
    let ResponseData::Poll(poll_id) = r.response.data else {
        panic!("{:?}", r.response.data)
    };
    let poll_id = poll_id.as_str().to_string();
    assert_eq!(lab.svc.store().poll_count(), 1);
    // Stored at once, acknowledged through the poll.
    assert_eq!(lab.svc.report_count(lab.instance().0).unwrap(), 1);

    let poll = |id: &str| {
        RequestData::PollReq(PollRef {
            original_request_type: RequestType::LICENSE_USAGE,
            original_pid: Uuid::new(Box::leak(id.to_string().into_boxed_str())).unwrap(),
        })
    };
    let (_, body) = lab.request(&who, RequestType::POLL_REQ, poll(&poll_id));
    let r = answer(&body);
    assert_eq!(r.response.header.status_code, StatusCode::OK);
    assert_eq!(r.response.header.request_type, RequestType::POLL_REQ);
    assert_eq!(r.response.header.nonce, Some(Nonce::from_value(lab.nonce)));
    assert_eq!(acked_and_rejected(&r), (vec![1671840757], vec![]));
    assert_eq!(lab.svc.store().poll_count(), 0);

    let (_, body) = lab.request(&who, RequestType::POLL_REQ, poll(&poll_id));
    assert_eq!(
        failed_message(&body),
        format!("Invalid ProductInstanceIdentifier: {poll_id} provided in the polling request")
    );
    // The seed's own poll id, never issued here.
    let (_, body) = lab.request(&who, RequestType::POLL_REQ, poll(PII));
    assert_eq!(
        failed_message(&body),
        "Invalid ProductInstanceIdentifier: 2e84a42f-c903-44c5-83b2-e62e258c780f provided in the polling request"
    );
}

#[test]
fn trust_sync_returns_the_policy_and_hello_an_empty_object() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let (_, body) = lab.request(
        &who,
        RequestType::TRUST_SYNC,
        RequestData::TrustSync(TrustId(1)),
    );
    let r = answer(&body);
    assert_eq!(r.response.header.status_code, StatusCode::OK);
    assert_eq!(r.response.data, ResponseData::TrustSync { policy: None });

    lab.svc.set_policy(lab.va, Some(&custom_policy())).unwrap();
    let (_, body) = lab.request(
        &who,
        RequestType::TRUST_SYNC,
        RequestData::TrustSync(TrustId(1)),
    );
    assert_eq!(
        answer(&body).response.data,
        ResponseData::TrustSync {
            policy: Some(custom_policy())
        }
    );
    let (_, body) = lab.request(
        &who,
        RequestType::TRUST_SYNC,
        RequestData::TrustSync(TrustId(2)),
    );
    assert_eq!(
        failed_message(&body),
        "Trust id 2 is not the current trust of PID:C9800-CL-K9,SN:9PJK8D70CNB; establish trust again"
    );

    let (_, body) = lab.request(&who, RequestType::HELLO, RequestData::Hello);
    let r = answer(&body);
    assert_eq!(r.response.header.status_code, StatusCode::OK);
    assert_eq!(r.response.header.request_type, RequestType::HELLO);
    assert_eq!(r.response.data, ResponseData::Hello);
}

// ---- offline -------------------------------------------------------------------------------

#[test]
fn a_usage_file_becomes_an_ack_file_the_device_accepts() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.svc.set_policy(lab.va, Some(&custom_policy())).unwrap();
    let t = lab.trust_pair();
    let who = active(&t);
    let r1 = report(1671840757, 3, active_udi(), &active_key());
    // Written on the air-gapped device a week before it is imported.
    let file = envelope(
        &who,
        RequestType::LICENSE_USAGE,
        4242,
        NOW - 7 * DAY_MS,
        usage(&[&r1]),
    );
    // Even in poll mode an ACK file is never OK_POLL.
    lab.svc.config_mut().usage_mode = UsageMode::Poll {
        retry_time_seconds: 300,
    };
    let mut out = vec![0u8; 16 * 1024];
    let n = lab
        .svc
        .ack_usage_file(Timestamp(NOW), &mut lab.rng, &file, &mut out)
        .unwrap();
    let ack_file = out[..n].to_vec();
    let r = response::decode(&ack_file).unwrap();
    assert_eq!(r.verify(service_key().public_key()), Ok(()));
    let usage_file = request::decode(&file).unwrap();
    assert_eq!(
        r.response.header.nonce,
        Some(usage_file.request.header.nonce)
    );
    assert_eq!(r.response.header.nonce, Some(Nonce::from_value(4242)));
    assert_eq!(r.response.header.request_type, RequestType::LICENSE_USAGE);
    assert_eq!(r.response.header.status_code, StatusCode::OK);
    assert_eq!(r.response.header.sudi, active_udi());
    assert_eq!(acked_and_rejected(&r), (vec![1671840757], vec![]));
    let ResponseData::Usage { policy, .. } = &r.response.data else {
        unreachable!()
    };
    assert_eq!(policy.as_ref(), Some(&custom_policy()));
    assert_eq!(lab.svc.report_count(lab.instance().0).unwrap(), 1);

    // Importing the same file again acknowledges the same report without counting it twice.
    let n2 = lab
        .svc
        .ack_usage_file(Timestamp(NOW), &mut lab.rng, &file, &mut out)
        .unwrap();
    assert_eq!(
        acked_and_rejected(&answer(&out[..n2])),
        (vec![1671840757], vec![])
    );
    assert_eq!(lab.svc.report_count(lab.instance().0).unwrap(), 1);
}

#[test]
fn usage_files_that_are_not_usage_or_not_authentic_are_refused() {
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let mut out = vec![0u8; 16 * 1024];
    let hello = envelope(&who, RequestType::HELLO, 1, NOW, RequestData::Hello);
    assert_eq!(
        lab.svc
            .ack_usage_file(Timestamp(NOW), &mut lab.rng, &hello, &mut out),
        Err(Error::Protocol(Code::InvalidArgument))
    );
    let mut forged = Who {
        key: standby_key(),
        ..active(&t)
    };
    forged.udi = active_udi();
    let file = envelope(&forged, RequestType::LICENSE_USAGE, 2, NOW, usage(&[]));
    assert_eq!(
        lab.svc
            .ack_usage_file(Timestamp(NOW), &mut lab.rng, &file, &mut out),
        Err(Error::Crypto(Code::KeyIdMismatch))
    );
    let e = lab
        .svc
        .ack_usage_file(Timestamp(NOW), &mut lab.rng, b"{\"request\":", &mut out)
        .unwrap_err();
    assert_eq!(e.code(), Code::JsonSyntax);
}

// ---- capacities ----------------------------------------------------------------------------

#[test]
fn a_full_mem_store_answers_cleanly() {
    // One instance, one report, one pending poll, two tokens.
    let mut lab = lab_with(
        MemStore::<2, 1, 1, 1>::new(),
        UsageMode::Poll {
            retry_time_seconds: 300,
        },
    );
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    lab.token("second-token", 1, NOW + DAY_MS);
    let spec = TokenSpec {
        virtual_account: lab.va,
        max_uses: 1,
        expires_at: Timestamp(NOW + DAY_MS),
        export_controlled: true,
    };
    assert_eq!(
        lab.svc.add_token("third-token", spec),
        Err(Code::CapacityExceeded)
    );
    assert_eq!(
        lab.svc.mint_token(&mut lab.rng, spec),
        Err(Code::CapacityExceeded)
    );

    let t = lab.trust_pair();
    // A second product instance does not fit: FAILED, and the token keeps its use.
    let (udi, key) = other_unit();
    let req = local_trust(udi, &key, "second-token");
    let (reply, body) = lab.send(&trust_envelope(&req, &key, 5));
    assert_eq!(reply.http_status, 200);
    assert_eq!(
        failed_message(&body),
        "The service cannot register this product instance: E1601 CapacityExceeded: capacity exceeded"
    );
    assert_eq!(lab.svc.token("second-token").unwrap().unwrap().uses, 0);

    // Two reports, room for one: try again later; the stored one is acked on the resend.
    let who = active(&t);
    let r1 = report(1, 3, active_udi(), &active_key());
    let r2 = report(2, 3, active_udi(), &active_key());
    let (reply, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1, &r2]));
    assert_eq!(reply.http_status, 200);
    let r = answer(&body);
    assert_eq!(r.response.header.status_code, StatusCode::OK_TRY_AGAIN);
    assert_eq!(r.response.header.retry_time_seconds, 300);
    assert_eq!(
        r.response.header.message.to_string(),
        "service storage unavailable: E1601 CapacityExceeded: capacity exceeded"
    );
    assert_eq!(lab.svc.report_count(lab.instance().0).unwrap(), 1);

    // One pending poll fits, a second does not.
    let (_, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1]));
    assert_eq!(
        answer(&body).response.header.status_code,
        StatusCode::OK_POLL
    );
    let (_, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&[&r1]));
    assert_eq!(
        answer(&body).response.header.status_code,
        StatusCode::OK_TRY_AGAIN
    );
    assert_eq!(lab.svc.store().poll_count(), 1);
}

#[test]
fn admin_inputs_are_checked() {
    let mut lab = lab();
    assert_eq!(
        lab.svc.create_smart_account("Wireless TAC"),
        Err(Code::InvalidArgument),
        "taken"
    );
    assert_eq!(lab.svc.create_smart_account(""), Err(Code::InvalidArgument));
    assert_eq!(
        lab.svc.create_smart_account("a\nb"),
        Err(Code::InvalidArgument)
    );
    assert_eq!(
        lab.svc.create_smart_account(&"x".repeat(65)),
        Err(Code::InvalidArgument)
    );
    let spec = TokenSpec {
        virtual_account: lab.va,
        max_uses: 0,
        expires_at: Timestamp(NOW),
        export_controlled: false,
    };
    assert_eq!(lab.svc.add_token("t", spec), Err(Code::InvalidArgument));
    let spec = TokenSpec {
        max_uses: 1,
        ..spec
    };
    assert_eq!(
        lab.svc.add_token("has space\"", spec),
        Err(Code::InvalidArgument)
    );
    let minted = lab.svc.mint_token(&mut lab.rng, spec).unwrap();
    assert_eq!(minted.len(), 64);
    assert_eq!(lab.svc.token(&minted).unwrap().unwrap().max_uses, 1);
    assert_eq!(
        lab.svc.add_token(&minted, spec),
        Err(Code::InvalidArgument),
        "taken"
    );

    let mut p = custom_policy();
    p.classes.export = Some(slup_core::msg::policy::ClassAttrs {
        first_report_days: Some(4000),
        ..Default::default()
    });
    assert_eq!(
        lab.svc.set_policy(lab.va, Some(&p)),
        Err(Code::InvalidValue)
    );
    assert_eq!(
        StoredPolicy::from_policy(&custom_policy())
            .unwrap()
            .policy(),
        custom_policy()
    );
    let va = lab.svc.store().virtual_account(lab.va).unwrap().unwrap();
    assert_eq!(va.policy, None);
}

#[test]
fn a_service_key_other_than_the_anchor_is_detected_by_the_device() {
    // Sanity check of the harness itself: answers verify with the fixture anchor only.
    let mut lab = lab();
    lab.token(HA_TOKEN, 2, NOW + DAY_MS);
    let (_, body) = lab.send(&trust_envelope(&trust_request(), &active_key(), NONCE));
    let r = response::decode(&body).unwrap();
    let stranger: PublicKey = active_key().public_key().clone();
    assert_eq!(r.verify(&stranger), Err(Code::KeyIdMismatch));
    assert_eq!(r.verify(service_key().public_key()), Ok(()));
}

// ---- bounds --------------------------------------------------------------------------------

#[test]
fn the_largest_answers_fit_16_kib() {
    let mut lab = lab();
    // Names at their limit, made of the character that escapes to two bytes.
    let name = "\"".repeat(64);
    let sa = lab.svc.create_smart_account(&name).unwrap();
    let va = lab.svc.create_virtual_account(sa, &name).unwrap();
    let mut policy = custom_policy();
    policy.name = Text::plain(Box::leak(name.clone().into_boxed_str()));
    let all = slup_core::msg::policy::ClassAttrs {
        first_report_days: Some(3650),
        reporting_frequency_days: Some(3650),
        report_on_change_days: Some(3650),
    };
    policy.classes = slup_core::msg::policy::Classes {
        perpetual: Some(all),
        subscription: Some(all),
        enforced: Some(all),
        export: Some(all),
    };
    lab.svc.set_policy(va, Some(&policy)).unwrap();
    let spec = TokenSpec {
        virtual_account: va,
        max_uses: 8,
        expires_at: Timestamp(NOW + DAY_MS),
        export_controlled: true,
    };
    let token: &'static str = Box::leak("T".repeat(255).into_boxed_str());
    lab.svc.add_token(token, spec).unwrap();

    // Eight units with UDI parts of 64 characters.
    let keys: Vec<SoftwareSigner> = (0..8u8)
        .map(|i| SoftwareSigner::from_secret_bytes(&[0x40 + i; 32]).unwrap())
        .collect();
    let mut members = heapless::Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let pid: &'static str = Box::leak("P".repeat(64).into_boxed_str());
        let serial: &'static str = Box::leak(format!("{i}{}", "S".repeat(63)).into_boxed_str());
        members
            .push(TrustMember {
                role: if i == 0 { Role::Active } else { Role::Standby },
                sudi: Udi::new(pid, serial).unwrap(),
                public_key: PublicKeyB64(key.public_key().clone()),
            })
            .unwrap();
    }
    let t = TrustRequest {
        id_token: IdToken::new(token).unwrap(),
        scope: Scope::All,
        force: true,
        members,
    };
    let (reply, body) = lab.send(&trust_envelope(&t, &keys[0], u64::MAX));
    assert_eq!(reply.http_status, 200, "{}", String::from_utf8_lossy(&body));
    let trusted = trusted(&answer(&body));
    assert_eq!(trusted.trust_ids, [1, 2, 3, 4, 5, 6, 7, 8]);
    // The trust codes also lived in `out` while the envelope was written.
    assert!(reply.len * 2 < 16 * 1024, "{}", reply.len);

    // 64 reports, every one rejected: the longest ACK.
    let who = Who {
        udi: t.members[0].sudi,
        key: SoftwareSigner::from_secret_bytes(&keys[0].secret_bytes()).unwrap(),
        pii: Some(trusted.pii.clone()),
        trust_id: Some(1),
    };
    let reports: Vec<Vec<u8>> = (0..64)
        .map(|i| report(u64::MAX - i, u64::MAX, active_udi(), &active_key()))
        .collect();
    let refs: Vec<&[u8]> = reports.iter().map(|r| &r[..]).collect();
    let (reply, body) = lab.request(&who, RequestType::LICENSE_USAGE, usage(&refs));
    assert_eq!(reply.http_status, 200, "{}", String::from_utf8_lossy(&body));
    let (acked, rejected) = acked_and_rejected(&answer(&body));
    assert_eq!((acked.len(), rejected.len()), (0, 64));
    assert!(reply.len < 16 * 1024, "{}", reply.len);
}

#[test]
fn mutated_requests_never_panic_and_every_200_verifies() {
    let mut lab = lab_with(
        MemStore::<16, 16, 128, 16>::new(),
        UsageMode::Poll {
            retry_time_seconds: 300,
        },
    );
    lab.token(HA_TOKEN, 64, NOW + DAY_MS);
    let t = lab.trust_pair();
    let who = active(&t);
    let r1 = report(1, 3, active_udi(), &active_key());
    let bodies = [
        trust_envelope(&trust_request(), &active_key(), 1),
        envelope(&who, RequestType::LICENSE_USAGE, 2, NOW, usage(&[&r1])),
        envelope(
            &who,
            RequestType::POLL_REQ,
            3,
            NOW,
            RequestData::PollReq(PollRef {
                original_request_type: RequestType::LICENSE_USAGE,
                original_pid: Uuid::new(POLL_ID).unwrap(),
            }),
        ),
        envelope(
            &who,
            RequestType::TRUST_SYNC,
            4,
            NOW,
            RequestData::TrustSync(TrustId(1)),
        ),
        envelope(&who, RequestType::HELLO, 5, NOW, RequestData::Hello),
    ];
    let mut rng = ChaCha20Rng::seed_from_u64(99);
    use rand_chacha::rand_core::RngCore;
    for i in 0..3000u32 {
        let mut b = bodies[i as usize % bodies.len()].clone();
        let at = rng.next_u32() as usize % b.len();
        match rng.next_u32() % 4 {
            0 => b[at] ^= 1 << (rng.next_u32() % 8),
            1 => b.truncate(at),
            2 => {
                let end = (at + 1 + rng.next_u32() as usize % 16).min(b.len());
                b.drain(at..end);
            }
            _ => b.insert(at, b"{}[]\",:0\\"[rng.next_u32() as usize % 9]),
        }
        let (reply, out) = lab.send(&b);
        assert!(reply.len <= lab.out.len());
        match reply.http_status {
            200 => {
                answer(&out);
            }
            400 | 401 | 403 => {
                ErrorBody::decode(&out).unwrap();
            }
            s => panic!("status {s} for {}", String::from_utf8_lossy(&b)),
        }
    }
}
