//! Tamper tests: every single-bit flip of every signed golden message is rejected, by the
//! decoder or by signature verification. Nothing about a signed message can change unnoticed:
//! not the signed bytes, not the signature, not the key id, not the envelope around them.

mod common;

use common::*;

#[test]
fn every_single_bit_flip_of_a_signed_golden_is_rejected() {
    let mut checked = 0usize;
    for (name, kind, with, bytes) in goldens() {
        if with == VerifyWith::Unsigned {
            continue;
        }
        assert_eq!(
            decode_and_verify(kind, with, &bytes),
            Ok(()),
            "{name} must verify untouched"
        );
        let mut copy = bytes.clone();
        for i in 0..copy.len() {
            for bit in 0..8 {
                copy[i] ^= 1 << bit;
                let verdict = decode_and_verify(kind, with, &copy);
                assert!(
                    verdict.is_err(),
                    "{name}: flipping bit {bit} of byte {i} ({:?} -> {:?}) was accepted",
                    bytes[i] as char,
                    copy[i] as char
                );
                copy[i] ^= 1 << bit;
                checked += 1;
            }
        }
    }
    println!("{checked} single-bit flips rejected");
    assert!(checked > 50_000);
}

#[test]
fn a_signature_from_another_key_is_rejected_with_key_id_mismatch() {
    let (_, kind, _, bytes) = goldens()
        .into_iter()
        .find(|g| g.0 == "response_usage_ok.json")
        .unwrap();
    // Verifying the service's response with the device key: wrong key id.
    assert_eq!(
        decode_and_verify(kind, VerifyWith::Device, &bytes),
        Err(slup_core::Code::KeyIdMismatch)
    );
}

#[test]
fn a_signature_over_re_serialised_bytes_does_not_verify_the_original() {
    // Whitespace inside the signed member changes the signed bytes: the rule is exact bytes,
    // never "equivalent JSON".
    let (_, kind, with, bytes) = goldens()
        .into_iter()
        .find(|g| g.0 == "request_hello.json")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let spaced = text.replacen("{\"header\":{", "{\"header\": {", 1);
    assert_ne!(spaced, text);
    assert_eq!(
        decode_and_verify(kind, with, spaced.as_bytes()),
        Err(slup_core::Code::BadSignature)
    );
    // Whitespace outside the signed member is fine.
    let outside = text.replacen(",\"signature\":", " ,\n \"signature\" : ", 1);
    assert_eq!(decode_and_verify(kind, with, outside.as_bytes()), Ok(()));
}

#[test]
fn duplicate_signed_member_is_rejected() {
    let (_, kind, with, bytes) = goldens()
        .into_iter()
        .find(|g| g.0 == "request_hello.json")
        .unwrap();
    let text = String::from_utf8(bytes).unwrap();
    let body_end = text.find(",\"signature\"").unwrap();
    let body = &text[1..body_end]; // "request":{…}
    let doubled = format!("{{{body},{}", &text[1..]);
    assert_eq!(
        decode_and_verify(kind, with, doubled.as_bytes()),
        Err(slup_core::Code::DuplicateField)
    );
}
