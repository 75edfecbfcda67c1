//! Wycheproof ECDSA secp256r1 / SHA-256 vectors, IEEE P1363 (`r‖s`) form, through
//! `slup_core::crypto`.
//!
//! slup enforces low-S (s ≤ n/2), which Wycheproof does not: a few `valid` vectors carry a high
//! s and must be rejected with `HighS`. Their tcIds are pinned below so that any change in
//! either the vectors or our verifier shows up as a test failure, not a silent drift.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::arithmetic_side_effects
)]

use std::collections::BTreeSet;

use slup_core::crypto::{self, PublicKey, RawSignature, SIGNATURE_LEN};
use slup_core::Code;
use wycheproof::ecdsa::{TestName, TestSet};
use wycheproof::TestResult;

/// tcIds of `valid` vectors whose s > n/2: correct ECDSA, rejected by slup's low-S rule.
/// 70 of the 173 valid vectors (Wycheproof 0.9rc5 data in the `wycheproof` 0.7.0 crate); the list
/// was cross-checked against the JSON with an independent script.
const EXPECTED_HIGH_S_REJECTS: &[usize] = &[
    64, 66, 67, 68, 71, 77, 78, 80, 81, 85, 86, 87, 94, 95, 96, 100, 102, 104, 105, 107, 110, 111,
    114, 115, 117, 118, 138, 139, 140, 141, 142, 171, 172, 175, 176, 177, 180, 183, 189, 190, 191,
    192, 195, 196, 197, 199, 200, 204, 210, 211, 216, 217, 226, 227, 229, 233, 234, 237, 240, 242,
    243, 244, 246, 248, 249, 250, 252, 253, 257, 262,
];

/// tcIds of `acceptable` vectors, with the verdict slup gives them (`true` = accepted). The
/// current set has none; a future data update that adds some must list them here.
const EXPECTED_ACCEPTABLE: &[(usize, bool)] = &[];

/// The P-256 group order n, big-endian.
const N: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];

/// `n - s` for a 32-byte big-endian `0 < s < n`, by schoolbook subtraction (independent of p256).
fn n_minus(s: &[u8]) -> [u8; 32] {
    assert_eq!(s.len(), 32);
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(N[i]) - i16::from(s[i]) - borrow;
        borrow = 0;
        if d < 0 {
            d += 256;
            borrow = 1;
        }
        out[i] = d as u8;
    }
    assert_eq!(borrow, 0, "s >= n");
    out
}

/// `true` if the 32-byte big-endian s is above n/2, i.e. s > n - s.
fn is_high(s: &[u8]) -> bool {
    s > &n_minus(s)[..]
}

fn load() -> TestSet {
    TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).expect("load Wycheproof P-256 P1363 set")
}

/// One vector, prepared: the key (if it parses) and the exact-length signature (if 64 bytes).
struct Case {
    tc_id: usize,
    result: TestResult,
    msg: Vec<u8>,
    key: Option<PublicKey>,
    sig: Option<RawSignature>,
}

fn cases(set: &TestSet) -> Vec<Case> {
    let mut out = Vec::new();
    for group in &set.test_groups {
        assert_eq!(group.hash, wycheproof::HashFunction::Sha2_256);
        let key = PublicKey::from_sec1(&group.key.key).ok();
        for t in &group.tests {
            let sig = <[u8; SIGNATURE_LEN]>::try_from(&t.sig[..])
                .ok()
                .map(RawSignature);
            out.push(Case {
                tc_id: t.tc_id,
                result: t.result,
                msg: t.msg.to_vec(),
                key: key.clone(),
                sig,
            });
        }
    }
    out
}

/// slup's verdict: a key that does not parse or a signature that is not 64 bytes is a reject.
fn verdict(c: &Case) -> Result<(), Option<Code>> {
    let key = c.key.as_ref().ok_or(Some(Code::InvalidPublicKey))?;
    let sig = c.sig.as_ref().ok_or(None)?;
    crypto::verify(key, &c.msg, sig).map_err(Some)
}

#[test]
fn wycheproof_p256_sha256_p1363() {
    let set = load();
    let cases = cases(&set);
    assert_eq!(cases.len(), set.number_of_tests);
    assert!(!cases.is_empty());

    let (mut valid_ok, mut invalid_rejected) = (0usize, 0usize);
    let mut high_s_seen = BTreeSet::new();
    let mut acceptable_seen = Vec::new();
    let mut failures = Vec::new();
    // How each non-accepted vector was rejected, for the printout.
    let mut reject_codes = std::collections::BTreeMap::<String, usize>::new();

    for c in &cases {
        let v = verdict(c);
        if let Err(e) = v {
            let name = e.map_or("not 64 bytes", Code::name).to_string();
            *reject_codes.entry(name).or_default() += 1;
        }
        match c.result {
            TestResult::Valid => match v {
                Ok(()) => valid_ok += 1,
                Err(Some(Code::HighS)) => {
                    high_s_seen.insert(c.tc_id);
                }
                Err(e) => failures.push(format!("tcId {} valid but rejected: {e:?}", c.tc_id)),
            },
            TestResult::Invalid => match v {
                Err(_) => invalid_rejected += 1,
                Ok(()) => failures.push(format!("tcId {} invalid but accepted", c.tc_id)),
            },
            TestResult::Acceptable => acceptable_seen.push((c.tc_id, v.is_ok())),
        }
        // A key that fails to parse must only ever appear with invalid vectors.
        if c.key.is_none() {
            assert_eq!(
                c.result,
                TestResult::Invalid,
                "tcId {}: unparsed key",
                c.tc_id
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");

    let expected: BTreeSet<usize> = EXPECTED_HIGH_S_REJECTS.iter().copied().collect();
    assert_eq!(
        expected.len(),
        EXPECTED_HIGH_S_REJECTS.len(),
        "duplicate tcId"
    );
    let missing: Vec<_> = expected.difference(&high_s_seen).collect();
    let unexpected: Vec<_> = high_s_seen.difference(&expected).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "high-S rejects differ: listed but not seen {missing:?}, seen but not listed {unexpected:?}"
    );
    // Every listed vector really is high-S, is valid, and fails with exactly HighS.
    for id in EXPECTED_HIGH_S_REJECTS {
        let c = cases.iter().find(|c| c.tc_id == *id).unwrap();
        assert_eq!(c.result, TestResult::Valid, "tcId {id}");
        assert!(is_high(&c.sig.unwrap().0[32..]), "tcId {id}");
        assert_eq!(verdict(c), Err(Some(Code::HighS)), "tcId {id}");
    }
    assert_eq!(acceptable_seen, EXPECTED_ACCEPTABLE, "acceptable verdicts");

    let versions: BTreeSet<_> = set
        .test_groups
        .iter()
        .filter_map(|g| g.source.as_ref())
        .map(|s| format!("{} {}", s.name, s.version))
        .collect();
    println!(
        "wycheproof ecdsa_secp256r1_sha256_p1363: generatorVersion {:?}, sources {versions:?}",
        set.generator_version
    );
    println!(
        "total {}, valid ok {valid_ok}, invalid rejected {invalid_rejected}, \
         high-S expected rejects {}, acceptable {}",
        cases.len(),
        high_s_seen.len(),
        acceptable_seen.len()
    );
    println!("rejections by code: {reject_codes:?}");
    assert_eq!(
        valid_ok + invalid_rejected + high_s_seen.len() + acceptable_seen.len(),
        cases.len()
    );
}

/// Every valid vector, with s replaced by its low form, verifies: the high-S rejects above are
/// due to the S form alone.
#[test]
fn wycheproof_valid_vectors_verify_after_low_s_normalization() {
    let set = load();
    let mut checked = 0usize;
    let mut flipped = 0usize;
    for c in cases(&set).iter().filter(|c| c.result == TestResult::Valid) {
        let key = c.key.as_ref().unwrap();
        let mut sig = c.sig.unwrap();
        if is_high(&sig.0[32..]) {
            let low = n_minus(&sig.0[32..]);
            sig.0[32..].copy_from_slice(&low);
            flipped += 1;
        }
        assert_eq!(
            crypto::verify(key, &c.msg, &sig),
            Ok(()),
            "tcId {} after low-S",
            c.tc_id
        );
        checked += 1;
    }
    assert_eq!(flipped, EXPECTED_HIGH_S_REJECTS.len());
    println!("valid vectors verified after low-S normalization: {checked} ({flipped} flipped)");
}
