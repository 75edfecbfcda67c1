//! The demo's script: establish trust, record usage, report it, get the ACK.
//!
//! Shared word for word by the firmware (`src/main.rs`) and by `build.rs`, which runs it on the
//! host against slup's reference service (`slup_core::server`) and records the service's
//! answers. The firmware runs it again on the Cortex-M4 and replays those answers, so every
//! step on the device is real: key generation, signing the requests, decoding the answers,
//! verifying the service's signatures, installing the trust code, closing and signing the
//! usage report, and applying the ACK.
//!
//! That works because everything here is deterministic: a fixed clock and seeded RNGs give
//! byte-identical requests on both sides (the firmware checks this by SHA-256 before using an
//! answer, so a difference is reported as such, not as a confusing nonce mismatch).

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::PublicKey;
use slup_core::diag::event::{Event, EventKind};
use slup_core::diag::MessageKind;
use slup_core::engine::config::Config;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine, Outcome, Transmit};
use slup_core::types::{Scope, Timestamp};
use slup_core::Code;

/// The device: software P-256 keys and nonces from ChaCha20, default capacities.
pub type Device = Engine<SoftwareKeys<ChaCha20Rng>, ChaCha20Rng>;

/// The virtual clock's start (Unix milliseconds).
pub const T0: u64 = 1_700_000_000_000;
/// One minute.
pub const MINUTE: u64 = 60_000;
/// The product instance (the active unit's UDI).
pub const PID: &str = "C9800-CL-K9";
/// Its serial number.
pub const SERIAL: &str = "9PJK8D70CNB";
/// Software version announced in reports.
pub const SOFTWARE_VERSION: &str = "17.09.02";
/// Software tag announced in reports.
pub const SOFTWARE_TAG: &str = "regid.2018-05.com.cisco.WLC_9500C,1.0";
/// The entitlement whose usage is reported.
pub const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";
/// The ID token the service issues for the demo.
pub const TOKEN: &str = "FIRMWARE-DEMO-TOKEN";
/// The service's signing key. Only `build.rs` (the service) uses it; the firmware gets the
/// public half as its trust anchor.
pub const SERVICE_SECRET: [u8; 32] = [0x5e; 32];
/// Requests the script sends, hence answers it needs.
pub const EXCHANGES: usize = 2;

/// Seed of the device-key RNG. **Demo only**: a product seeds its RNG from the hardware TRNG
/// (or lets a secure element generate the keys); a fixed seed makes every device key public.
pub const KEY_SEED: u64 = 1;
/// Seed of the nonce RNG. **Demo only**, as [`KEY_SEED`].
pub const NONCE_SEED: u64 = 2;

/// The configuration: one unit, default transport, cadences and capacities.
pub fn config(trust_anchor: PublicKey) -> Result<Config, Code> {
    Config::new(PID, SERIAL, SOFTWARE_VERSION, SOFTWARE_TAG, trust_anchor)
}

/// A fresh device at [`T0`].
pub fn device(config: Config) -> Device {
    Engine::new(
        config,
        SoftwareKeys(ChaCha20Rng::seed_from_u64(KEY_SEED)),
        ChaCha20Rng::seed_from_u64(NONCE_SEED),
        Timestamp(T0),
    )
}

/// What carries requests to the service and shows events.
pub trait Link {
    /// POSTs `request` (the `n`th of the script) at `now` and returns the service's `200` body,
    /// written into `out` or borrowed from elsewhere.
    fn exchange<'a>(
        &'a mut self,
        now: Timestamp,
        n: usize,
        kind: MessageKind,
        request: &[u8],
        out: &'a mut [u8],
    ) -> Result<&'a [u8], Code>;

    /// An event the engine emitted, in order.
    fn event(&mut self, event: &Event);
}

/// Which step failed, and the engine's code when it gave one.
#[derive(Clone, Copy, Debug)]
pub struct Failure {
    /// The step.
    pub step: &'static str,
    /// The engine's error code, if any.
    pub code: Option<Code>,
}

fn fail(step: &'static str) -> impl FnOnce(Code) -> Failure {
    move |code| Failure {
        step,
        code: Some(code),
    }
}

fn check(ok: bool, step: &'static str) -> Result<(), Failure> {
    if ok {
        Ok(())
    } else {
        Err(Failure { step, code: None })
    }
}

/// What the script observed.
#[derive(Clone, Copy, Debug, Default)]
pub struct Summary {
    /// Bytes of the signed `ID_TOKEN_TRUST` request.
    pub trust_request: usize,
    /// Bytes of the signed `LICENSE_USAGE` request.
    pub usage_request: usize,
    /// Events emitted.
    pub events: usize,
    /// `TRUST_INSTALL_SUCCESS` was emitted.
    pub trust_installed: bool,
    /// `USAGE_ACK_RECEIVED` was emitted.
    pub usage_acked: bool,
}

/// Runs the script on `dev`, sending through `link`; `buf` receives each request and `out` may
/// receive each answer. (Never inlined, so that its stack use is measured apart from the
/// caller's.)
#[inline(never)]
pub fn run(
    dev: &mut Device,
    buf: &mut [u8],
    out: &mut [u8],
    link: &mut impl Link,
) -> Result<Summary, Failure> {
    let mut s = Summary::default();
    let t0 = Timestamp(T0);
    drain(dev, link, &mut s);

    // `license smart trust idtoken FIRMWARE-DEMO-TOKEN local`: generates the device key.
    let outcome = dev
        .handle_command(
            t0,
            Command::EstablishTrust {
                token: TOKEN,
                scope: Scope::Local,
                force: false,
            },
        )
        .map_err(|e| fail("establish trust")(e.code()))?;
    check(outcome == Outcome::Queued, "establish trust: not queued")?;
    s.trust_request = exchange(dev, t0, 0, buf, out, link, "trust")?;
    drain(dev, link, &mut s);
    check(dev.trust().is_installed(), "trust: not installed")?;

    // Usage changes, then `license smart sync`: the open report is closed, signed and sent.
    let t1 = Timestamp(T0 + MINUTE);
    dev.handle_command(t1, Command::RecordUsage { tag: TAG, count: 3 })
        .map_err(|e| fail("record usage")(e.code()))?;
    let t2 = Timestamp(T0 + 2 * MINUTE);
    dev.handle_command(t2, Command::SyncNow)
        .map_err(|e| fail("sync")(e.code()))?;
    s.usage_request = exchange(dev, t2, 1, buf, out, link, "usage")?;
    drain(dev, link, &mut s);
    check(
        dev.reports().is_empty(),
        "usage: reports left unacknowledged",
    )?;

    // The next deadline: the platform's timer would fire it. (What the engine wants to send
    // after that is beyond the recorded script.)
    // A deadline already past means "now".
    if let Some(at) = dev.poll_timeout() {
        dev.handle_timeout(at.max(t2));
    }
    drain(dev, link, &mut s);
    check(s.trust_installed, "no TRUST_INSTALL_SUCCESS event")?;
    check(s.usage_acked, "no USAGE_ACK_RECEIVED event")?;
    Ok(s)
}

fn exchange(
    dev: &mut Device,
    now: Timestamp,
    n: usize,
    buf: &mut [u8],
    out: &mut [u8],
    link: &mut impl Link,
    step: &'static str,
) -> Result<usize, Failure> {
    let Some(t) = transmit(dev, now, buf) else {
        return Err(Failure { step, code: None });
    };
    let request = buf.get(..t.len).ok_or(Failure { step, code: None })?;
    let answer = link
        .exchange(now, n, t.kind, request, out)
        .map_err(fail(step))?;
    respond(dev, now, answer).map_err(|e| fail(step)(e.code()))?;
    Ok(t.len)
}

// A driver calls the engine's entry points from different places (a send task, a receive
// callback), so their stack frames follow one another. Inlined into one function here, the
// compiler would give that function the sum of both frames rather than the larger of the two.

/// `poll_transmit`, in a frame of its own.
#[inline(never)]
fn transmit(dev: &mut Device, now: Timestamp, buf: &mut [u8]) -> Option<Transmit> {
    dev.poll_transmit(now, buf)
}

/// `handle_response`, in a frame of its own.
#[inline(never)]
fn respond(dev: &mut Device, now: Timestamp, answer: &[u8]) -> Result<(), slup_core::Error> {
    dev.handle_response(now, answer)
}

fn drain(dev: &mut Device, link: &mut impl Link, s: &mut Summary) {
    while let Some(e) = dev.poll_event() {
        s.events += 1;
        match e.kind {
            EventKind::TrustInstallSuccess => s.trust_installed = true,
            EventKind::UsageAckReceived { .. } => s.usage_acked = true,
            _ => {}
        }
        link.event(&e);
    }
}
