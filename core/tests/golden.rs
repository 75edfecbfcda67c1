//! Golden messages: every message type encodes to the exact bytes committed in
//! `core/testdata/golden/`, decodes back to an equal value, re-encodes to the same bytes, and
//! verifies with the right key. Set `SLUP_BLESS=1` to rewrite the files after an intended change.

mod common;

use common::*;
use slup_core::msg::policy::Policy;
use slup_core::msg::response::{Ack, ErrorBody};
use slup_core::msg::{request, response, rum, trust};

fn golden_dir() -> std::path::PathBuf {
    testdata().join("golden")
}

#[test]
fn every_message_matches_its_golden_bytes() {
    let bless = std::env::var_os("SLUP_BLESS").is_some();
    std::fs::create_dir_all(golden_dir()).unwrap();
    for (name, _, _, bytes) in goldens() {
        let path = golden_dir().join(name);
        if bless {
            std::fs::write(&path, &bytes).unwrap();
            continue;
        }
        let want = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with SLUP_BLESS=1)", path.display()));
        assert!(
            want == bytes,
            "{name} differs from its golden file\n want: {}\n  got: {}",
            String::from_utf8_lossy(&want),
            String::from_utf8_lossy(&bytes)
        );
    }
}

#[test]
fn every_golden_decodes_verifies_and_reencodes_identically() {
    let dev = active_key();
    let svc = service_key();
    let mut buf = vec![0u8; 64 * 1024];
    for (name, kind, with, bytes) in goldens() {
        decode_and_verify(kind, with, &bytes).unwrap_or_else(|c| panic!("{name}: {c}"));
        let n = match kind {
            Kind::Request => {
                request::encode(&mut buf, &request::decode(&bytes).unwrap().request, &dev).unwrap()
            }
            Kind::Response => {
                response::encode(&mut buf, &response::decode(&bytes).unwrap().response, &svc)
                    .unwrap()
            }
            Kind::Rum => rum::encode(
                &mut buf,
                &rum::SignedRum::decode(&bytes).unwrap().payload,
                &dev,
            )
            .unwrap(),
            Kind::TrustCode => trust::encode_trust_code(
                &mut buf,
                &trust::TrustCode::decode(&bytes).unwrap().payload,
                &svc,
            )
            .unwrap(),
            Kind::Policy => {
                let mut w = slup_core::msg::Writer::new(&mut buf);
                w.json(&Policy::decode(&bytes).unwrap(), "t").unwrap();
                w.len()
            }
            Kind::Ack => Ack::decode(&bytes).unwrap().encode(&mut buf).unwrap(),
            Kind::ErrorBody => ErrorBody::decode(&bytes).unwrap().encode(&mut buf).unwrap(),
        };
        assert_eq!(
            &buf[..n],
            &bytes[..],
            "{name} does not re-encode to the same bytes"
        );
    }
}

#[test]
fn decoded_values_equal_the_fixtures() {
    let bytes = goldens()
        .into_iter()
        .find(|g| g.0 == "request_id_token_trust.json")
        .unwrap()
        .3;
    let r = request::decode(&bytes).unwrap();
    assert_eq!(
        r.request.header,
        request_header(slup_core::types::RequestType::ID_TOKEN_TRUST, false)
    );
    assert_eq!(
        r.request.data,
        request::RequestData::IdTokenTrust(trust_request())
    );

    let rum_bytes = signed_rum(1671840757, 3);
    assert_eq!(
        rum::SignedRum::decode(rum_bytes).unwrap().payload,
        rum_payload(1671840757, 3)
    );
    assert_eq!(
        trust::TrustCode::decode(signed_trust_code(slup_core::types::Role::Active))
            .unwrap()
            .payload,
        trust_code_payload(slup_core::types::Role::Active)
    );
    let p = custom_policy();
    let mut b = [0u8; 1024];
    let mut w = slup_core::msg::Writer::new(&mut b);
    w.json(&p, "t").unwrap();
    let n = w.len();
    assert_eq!(Policy::decode(&b[..n]).unwrap(), p);
    assert_eq!(
        Ack::decode(&{
            let n = ack().encode(&mut b).unwrap();
            b[..n].to_vec()
        })
        .unwrap(),
        ack()
    );
}

#[test]
fn escaped_text_survives_the_round_trip() {
    // `Lab "9800" VA` is written with escaped quotes and read back as the same characters.
    let tc = trust::TrustCode::decode(signed_trust_code(slup_core::types::Role::Active)).unwrap();
    assert!(tc.payload.virtual_account.eq_str("Lab \"9800\" VA"));
    let mut scratch = [0u8; 32];
    assert_eq!(
        tc.payload
            .virtual_account
            .unescape_into(&mut scratch)
            .unwrap(),
        "Lab \"9800\" VA"
    );
    let mut tiny = [0u8; 4];
    assert_eq!(
        tc.payload.virtual_account.unescape_into(&mut tiny),
        Err(slup_core::Code::BufferTooSmall)
    );
}

#[test]
fn encoders_report_small_buffers_instead_of_writing_partially() {
    let dev = active_key();
    for (name, kind, _, bytes) in goldens() {
        if kind != Kind::Request {
            continue;
        }
        let req = request::decode(&bytes).unwrap().request;
        for len in [0, 1, bytes.len() / 2, bytes.len() - 1] {
            let mut small = vec![0u8; len];
            let e = request::encode(&mut small, &req, &dev).unwrap_err();
            assert_eq!(
                e.code(),
                slup_core::Code::BufferTooSmall,
                "{name} into {len} bytes"
            );
        }
    }
}

#[test]
fn test_keys_file_matches_the_fixtures() {
    use slup_core::crypto::Signer;
    let mut out = String::from(
        "{\n  \"note\": \"slup TEST keys: public on purpose, never use them for anything real\",\n",
    );
    let keys = [
        ("active_device", ACTIVE_SECRET),
        ("standby_device", STANDBY_SECRET),
        ("service", SERVICE_SECRET),
    ];
    for (i, (name, secret)) in keys.iter().enumerate() {
        let signer = slup_core::crypto::SoftwareSigner::from_secret_bytes(secret).unwrap();
        let mut b64 = [0u8; 88];
        let hex: String = secret.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!(
            "  \"{name}\": {{\"secret_hex\": \"{hex}\", \"public_key\": \"{}\", \"key_id\": \"{}\"}}{}\n",
            signer.public_key().to_base64(&mut b64),
            signer.public_key().key_id(),
            if i + 1 < keys.len() { "," } else { "" }
        ));
    }
    out.push_str("}\n");
    let path = testdata().join("keys.json");
    if std::env::var_os("SLUP_BLESS").is_some() {
        std::fs::write(&path, &out).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        out,
        "run with SLUP_BLESS=1"
    );
}
