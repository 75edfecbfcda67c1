//! The crypto baseline: the same runtime, RNG, output and panic handler as the agent image, but
//! only P-256 key generation, ECDSA signing and verification, and SHA-256. The difference
//! between the two images' sizes is what the agent itself costs (see README.md).
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::{self, sha256, Signer, SoftwareSigner};
use slup_firmware::{exit, scenario, stack};

#[entry]
fn main() -> ! {
    hprintln!("slup crypto baseline (Cortex-M4F)");
    // Demo seed, as in the agent image; a product seeds from its hardware TRNG.
    let mut rng = ChaCha20Rng::seed_from_u64(scenario::KEY_SEED);
    let key = SoftwareSigner::generate(&mut rng);
    // black_box: the compiler must not precompute anything from constant input.
    let msg: &[u8] = black_box(scenario::TAG.as_bytes());
    let digest = sha256(msg);
    let signed = crypto::sign(&key, msg);
    let verified = signed
        .as_ref()
        .is_ok_and(|sig| crypto::verify(key.public_key(), msg, sig).is_ok());
    // A different message must not verify with the same signature.
    let other: &[u8] = black_box(scenario::TOKEN.as_bytes());
    let rejected = signed
        .as_ref()
        .is_ok_and(|sig| crypto::verify(key.public_key(), other, sig).is_err());
    hprintln!("sha256 first byte: {:#04x}", digest[0]);
    hprintln!("sign: {}", if signed.is_ok() { "ok" } else { "failed" });
    hprintln!("verify: {}", if verified { "ok" } else { "failed" });
    hprintln!(
        "verify other message: {}",
        if rejected { "rejected" } else { "ACCEPTED" }
    );
    let st = stack::measure();
    hprintln!("peak stack: {} bytes (of {} available)", st.peak, st.size);
    let ok = signed.is_ok() && verified && rejected && st.peak < st.size;
    if ok {
        hprintln!("OK");
    }
    exit(ok)
}
