//! Replays the fuzz corpora on stable: every file of `fuzz/corpus/<target>/` and
//! `fuzz/regressions/<target>/` goes through the matching entry of
//! `slup_core::fuzzing::TARGETS` (or the serde_json differential for `differential`), so a
//! crash the fuzzer once found stays fixed without nightly or libFuzzer.
//!
//! The seed files themselves come from `regenerate_seed_corpora` and `regenerate_nonce_seed`
//! (`cargo test -p slup-tests --test corpus_replay -- --ignored`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Once;

use slup_core::fuzzing::TARGETS;
use slup_core::json::{Node, DEFAULT_LIMITS};
use slup_core::nonce::{Nonce, NonceTracker};
use slup_core::types::Timestamp;
use slup_tests::{shared_dir, workspace_root};

/// The fuzz target that is not in `TARGETS` (it needs std and serde_json).
const DIFFERENTIAL: &str = "differential";
/// The storage fuzz target (it needs std: the emulated flash allocates).
const FLASH_IMAGE: &str = "flash_image";

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// The entry point for a corpus directory name.
fn target(name: &str) -> Option<fn(&[u8])> {
    if name == DIFFERENTIAL {
        return Some(slup_tests::differential::check);
    }
    if name == FLASH_IMAGE {
        return Some(slup_tests::flash_image::check);
    }
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

fn all_target_names() -> Vec<&'static str> {
    TARGETS
        .iter()
        .map(|(n, _)| *n)
        .chain([DIFFERENTIAL, FLASH_IMAGE])
        .collect()
}

fn sorted_entries(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

thread_local! {
    /// Set while a corpus file runs: its panic is collected and reported, not printed.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

/// Installs (once, for the whole test binary) a panic hook that stays silent for panics caught
/// while [`QUIET`] is set on the panicking thread and defers to the default hook otherwise.
fn quiet_panics() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !QUIET.get() {
                default(info);
            }
        }));
    });
}

/// Replays every `<root>/<target>/<file>`; returns files per target. Panics, after running
/// everything, listing every directory that names no target and every file that panicked.
fn replay(root: &Path) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    let mut failures = Vec::new();
    if !root.is_dir() {
        return counts;
    }
    quiet_panics();
    for dir in sorted_entries(root) {
        if !dir.is_dir() {
            continue;
        }
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        let Some(f) = target(&name) else {
            failures.push(format!("{}: no fuzz target named {name:?}", dir.display()));
            continue;
        };
        let mut n = 0usize;
        for file in sorted_entries(&dir) {
            if !file.is_file() {
                continue;
            }
            let data = fs::read(&file).unwrap();
            n += 1;
            QUIET.set(true);
            let result = catch_unwind(AssertUnwindSafe(|| f(&data)));
            QUIET.set(false);
            if let Err(p) = result {
                let msg = p
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {msg}", file.display()));
            }
        }
        counts.insert(name, n);
    }
    for (t, n) in &counts {
        println!("{}/{t}: {n} files replayed", root.display());
    }
    assert!(
        failures.is_empty(),
        "{} failure(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    counts
}

#[test]
fn corpus_replays_cleanly() {
    let counts = replay(&fuzz_dir().join("corpus"));
    // Every target has seeds, so `cargo fuzz run` never starts from nothing.
    for name in all_target_names() {
        assert!(
            counts.get(name).copied().unwrap_or(0) > 0,
            "fuzz/corpus/{name} is missing or empty"
        );
    }
}

#[test]
fn regressions_replay_cleanly() {
    let counts = replay(&fuzz_dir().join("regressions"));
    println!(
        "{} regression files",
        counts.values().copied().sum::<usize>()
    );
}

#[test]
fn every_target_has_a_fuzz_binary() {
    let manifest = fs::read_to_string(fuzz_dir().join("Cargo.toml")).unwrap();
    for name in all_target_names() {
        let file = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(file.is_file(), "{} missing", file.display());
        assert!(
            manifest.contains(&format!("name = \"{name}\"")),
            "fuzz/Cargo.toml has no [[bin]] {name}"
        );
    }
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    let dir = fuzz_dir().join("corpus").join(target);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(name), bytes).unwrap();
}

/// The encoded nonce-tracker states seeding `nonce_tracker`.
fn nonce_states() -> Vec<(&'static str, Vec<u8>)> {
    let encode = |t: &NonceTracker<16, 32>| {
        let mut buf = [0u8; NonceTracker::<16, 32>::ENCODED_LEN];
        let n = t.encode(&mut buf).unwrap();
        buf[..n].to_vec()
    };
    let mut out = vec![("empty.bin", encode(&NonceTracker::new()))];

    let mut t = NonceTracker::<16, 32>::new();
    for (i, v) in [11702702165338740293u64, 1, u64::MAX]
        .into_iter()
        .enumerate()
    {
        t.track(Nonce::from_value(v), Timestamp(1629713888600 + i as u64))
            .unwrap();
    }
    t.answer(Nonce::from_value(1)).unwrap();
    t.track(Nonce::from_value(42), Timestamp(1629713890172))
        .unwrap();
    out.push(("mixed.bin", encode(&t)));

    // Full: 16 outstanding, and an answered ring that has wrapped.
    let mut t = NonceTracker::<16, 32>::new();
    for v in 1000..1040u64 {
        t.track(Nonce::from_value(v), Timestamp(v)).unwrap();
        t.answer(Nonce::from_value(v)).unwrap();
    }
    for v in 0..16u64 {
        t.track(Nonce::from_value(v * 7919), Timestamp(v)).unwrap();
    }
    out.push(("full.bin", encode(&t)));
    out
}

#[test]
#[ignore = "writes fuzz/corpus/nonce_tracker; run by hand when the format changes"]
fn regenerate_nonce_seed() {
    for (name, bytes) in nonce_states() {
        assert!(NonceTracker::<16, 32>::decode(&bytes).is_ok());
        write("nonce_tracker", name, &bytes);
    }
}

/// JSONTestSuite files that seed `json_validate` and `differential`.
const SUITE_SEEDS: &[&str] = &[
    "y_object_duplicated_key.json",
    "y_object_escaped_null_in_key.json",
    "y_object_extreme_numbers.json",
    "y_number_real_capital_e_neg_exp.json",
    "y_number_negative_zero.json",
    "y_string_accepted_surrogate_pairs.json",
    "y_string_allowed_escapes.json",
    "y_string_unicode_escaped_double_quote.json",
    "y_string_with_del_character.json",
    "y_structure_whitespace_array.json",
    "n_array_extra_comma.json",
    "n_number_-01.json",
    "n_object_trailing_comma.json",
    "n_string_escaped_emoji.json",
    "n_string_incomplete_surrogate_escape_invalid.json",
    "n_string_unescaped_tab.json",
    "n_structure_object_with_trailing_garbage.json",
    "n_structure_open_array_object.json",
    "i_number_huge_exp.json",
    "i_number_real_pos_overflow.json",
    "i_number_real_underflow.json",
    "i_number_too_big_pos_int.json",
    "i_string_1st_surrogate_but_2nd_missing.json",
    "i_string_inverted_surrogates_U+1D11E.json",
    "i_string_overlong_sequence_2_bytes.json",
    "i_string_UTF-16LE_with_BOM.json",
    "i_structure_500_nested_arrays.json",
];

/// Hand-written edge cases for the typed differential.
const TYPED_SEEDS: &[(&str, &str)] = &[
    (
        "policy_nulls.json",
        r#"{"name":"P\u00e9 \"q\"","ack_required":null,"classes":{"perpetual":null,"export":{"first_report_days":null,"report_on_change_days":3650}}}"#,
    ),
    (
        "policy_too_many_days.json",
        r#"{"name":"x","classes":{"enforced":{"first_report_days":3651}}}"#,
    ),
    (
        "policy_float_days.json",
        r#"{"name":"x","classes":{"enforced":{"first_report_days":1e1}}}"#,
    ),
    (
        "ack_extremes.json",
        r#"{"acked":[0,18446744073709551615],"rejected":[{"report_id":7,"reason":"\ud83d\ude00\n"}]}"#,
    ),
    (
        "ack_overflow.json",
        r#"{"acked":[18446744073709551616],"rejected":[]}"#,
    ),
    (
        "ack_duplicate.json",
        r#"{"acked":[],"rejected":[{"report_id":1,"reason":"a","report_id":2}]}"#,
    ),
];

fn golden(name: &str) -> Vec<u8> {
    let p = workspace_root().join("core/testdata/golden").join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
#[ignore = "writes the seed files of fuzz/corpus; run by hand when the goldens change"]
fn regenerate_seed_corpora() {
    regenerate_nonce_seed();
    let mut goldens: Vec<String> = sorted_entries(&workspace_root().join("core/testdata/golden"))
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    goldens.retain(|n| n.ends_with(".json"));
    for name in &goldens {
        let bytes = golden(name);
        if name.starts_with("request_") {
            write("request_envelope", name, &bytes);
            write("roundtrip", name, &bytes);
            let root = Node::parse(&bytes, &DEFAULT_LIMITS).unwrap();
            let req = root.required("request", "seed").unwrap();
            let data = req.required("request_data", "seed").unwrap();
            let t = req
                .required("header", "seed")
                .unwrap()
                .required("request_type", "seed")
                .unwrap()
                .raw_str()
                .unwrap()
                .to_ascii_lowercase();
            write(
                &format!("request_data_{t}"),
                "request_data.json",
                data.bytes,
            );
        }
        if name.starts_with("response_") {
            write("response_envelope", name, &bytes);
            write("roundtrip", name, &bytes);
        }
    }
    for (target, name) in [
        ("rum_report", "rum_report.json"),
        ("trust_code", "trust_code.json"),
        ("ack", "ack.json"),
        ("policy", "policy.json"),
        ("error_body", "error_body.json"),
        ("json_validate", "policy.json"),
        ("json_validate", "request_license_usage.json"),
        ("json_validate", "response_trust_ok.json"),
        ("differential", "policy.json"),
        ("differential", "ack.json"),
    ] {
        write(target, name, &golden(name));
    }
    for (name, text) in TYPED_SEEDS {
        write("differential", name, text.as_bytes());
        let target = if name.starts_with("policy") {
            "policy"
        } else {
            "ack"
        };
        write(target, name, text.as_bytes());
    }
    let suite = shared_dir()
        .expect("../shared with the JSONTestSuite")
        .join("testdata/JSONTestSuite/test_parsing");
    for name in SUITE_SEEDS {
        let bytes = fs::read(suite.join(name)).unwrap();
        write("json_validate", name, &bytes);
        write("differential", name, &bytes);
    }
}
