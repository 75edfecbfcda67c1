//! Test switches: faults the server injects on purpose so device tests can see every failure a
//! real network and a real service produce. All off by default. Which requests are hit is
//! drawn from a ChaCha RNG seeded with [`Faults::seed`], so a run with one client in one order
//! is reproducible.

use std::sync::Mutex;
use std::time::Duration;

use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

/// Which faults to inject. Each share is a probability in `0.0..=1.0` per request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Faults {
    /// Handle the request, then close the connection without answering (the answer is lost
    /// on the way back: the service did store what it would have acknowledged).
    pub drop: f64,
    /// Wait this long before answering every request.
    pub delay: Option<Duration>,
    /// Handle the request, then send only the first half of the body (with the full
    /// `Content-Length`) and close.
    pub truncate: f64,
    /// Handle the request, then flip one character of the answer's signature value.
    pub corrupt_signature: f64,
    /// Refuse the request before handling it: `503` with `ServiceTryAgain` (1206).
    pub reject: f64,
    /// Seed of the draws.
    pub seed: u64,
}

/// What to do to one request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Close without answering.
    pub drop: bool,
    /// Send half the body.
    pub truncate: bool,
    /// Corrupt the signature.
    pub corrupt: bool,
    /// Refuse before handling.
    pub reject: bool,
}

/// Draws [`Plan`]s for [`Faults`].
#[derive(Debug)]
pub struct Injector {
    faults: Faults,
    rng: Mutex<ChaCha20Rng>,
}

impl Injector {
    /// An injector for `faults`.
    pub fn new(faults: Faults) -> Self {
        let rng = Mutex::new(ChaCha20Rng::seed_from_u64(faults.seed));
        Injector { faults, rng }
    }

    /// The configured faults.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// `true` when no fault is configured (nothing is drawn).
    pub fn is_off(&self) -> bool {
        let f = &self.faults;
        f.drop <= 0.0
            && f.truncate <= 0.0
            && f.corrupt_signature <= 0.0
            && f.reject <= 0.0
            && f.delay.is_none()
    }

    /// The plan for the next request. Every share is drawn for every request, so enabling one
    /// fault does not change which requests another one hits.
    pub fn next(&self) -> Plan {
        if self.is_off() {
            return Plan::default();
        }
        // A poisoned lock only means another connection thread panicked mid-draw: the RNG
        // state is still a valid RNG state.
        let mut rng = self.rng.lock().unwrap_or_else(|p| p.into_inner());
        let mut draw = |share: f64| {
            // 53 random bits: a uniform float in [0, 1).
            let x = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
            x < share
        };
        Plan {
            reject: draw(self.faults.reject),
            drop: draw(self.faults.drop),
            truncate: draw(self.faults.truncate),
            corrupt: draw(self.faults.corrupt_signature),
        }
    }
}

/// Flips one base64 character of the first `"value":"…"` of a signed answer (the envelope's
/// signature): the answer still parses, and its signature no longer verifies.
pub fn corrupt_signature(body: &mut [u8]) -> bool {
    const NEEDLE: &[u8] = b"\"value\":\"";
    let Some(at) = body.windows(NEEDLE.len()).position(|w| w == NEEDLE) else {
        return false;
    };
    // The fifth character: a flip there changes r, never the padding.
    let Some(c) = body.get_mut(at.saturating_add(NEEDLE.len()).saturating_add(4)) else {
        return false;
    };
    *c = if *c == b'A' { b'B' } else { b'A' };
    true
}
