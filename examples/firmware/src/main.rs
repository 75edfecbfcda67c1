//! slup on a Cortex-M4F: a full trust → report → ACK cycle, then the numbers that DESIGN.md §6
//! budgets: flash (run `llvm-size` on this ELF), engine state (`size_of` the engine, printed),
//! and peak stack (measured, printed). Run with `./run.sh`, or `cargo run --release` here.
//!
//! The network is replaced by answers that `build.rs` recorded from slup's reference service
//! running the same deterministic script (`src/scenario.rs`) on the host; everything the device
//! does with them is real.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::mem::size_of;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::PublicKey;
use slup_firmware::replay::{self, Replay};
use slup_firmware::scenario::{self, Device};
use slup_firmware::{exit, stack};
use static_cell::{ConstStaticCell, StaticCell};

/// Bytes of the transmit buffer: every request the engine builds must fit.
const TX_BYTES: usize = 8 * 1024;

// The engine and the transmit buffer live in statics (.bss), as in a product: they are RAM the
// integrator sets aside, not stack. `Engine::new` is one struct expression whose big parts are
// constants, so `init_with` lets the compiler build the engine in its static, field by field;
// what boot still puts on the stack is the config, the RNGs and a few small parts (README).
static ENGINE: StaticCell<Device> = StaticCell::new();
static TX: ConstStaticCell<[u8; TX_BYTES]> = ConstStaticCell::new([0; TX_BYTES]);

/// Builds the configuration and the engine, in its static.
#[inline(never)]
fn boot() -> Option<&'static mut Device> {
    let Ok(anchor) = PublicKey::from_sec1(&replay::TRUST_ANCHOR) else {
        hprintln!("FAIL: bad trust anchor");
        return None;
    };
    let config = match scenario::config(anchor) {
        Ok(c) => c,
        Err(code) => {
            hprintln!("FAIL: config: {}", code);
            return None;
        }
    };
    Some(ENGINE.init_with(|| scenario::device(config)))
}

/// The engine's state by part (the public types of its fields, at the engine's capacities).
fn breakdown() {
    use slup_core::crypto::SoftwareSigner;
    use slup_core::diag::event::EventLog;
    use slup_core::diag::history::MessageHistory;
    use slup_core::diag::stats::CommStats;
    use slup_core::engine::config::Config;
    use slup_core::engine::reports::ReportStore;
    use slup_core::engine::trust::{PendingKeys, Trust};
    use slup_core::engine::usage::Usage;
    use slup_core::engine::{
        PolicyState, DEFAULT_MEMBERS, EVENT_LOG, HISTORY_BYTES, HISTORY_ENTRIES, STATS_REASON_LEN,
    };
    use slup_core::nonce::NonceTracker;

    let parts: [(&str, usize); 12] = [
        ("reports (closed, signed)", size_of::<ReportStore>()),
        (
            "message history",
            size_of::<MessageHistory<HISTORY_ENTRIES, HISTORY_BYTES>>(),
        ),
        ("usage (tags, open reports)", size_of::<Usage>()),
        ("event log (and queue)", size_of::<EventLog<EVENT_LOG>>()),
        ("comm stats", size_of::<CommStats<STATS_REASON_LEN>>()),
        ("config", size_of::<Config>()),
        (
            "trust (installed)",
            size_of::<Trust<SoftwareSigner, DEFAULT_MEMBERS>>(),
        ),
        (
            "pending keys",
            size_of::<PendingKeys<SoftwareSigner, DEFAULT_MEMBERS>>(),
        ),
        ("pending ID token", slup_core::types::MAX_TOKEN_LEN + 4),
        ("nonces", size_of::<NonceTracker>()),
        ("policy", size_of::<PolicyState>()),
        ("2 RNGs (ChaCha20)", 2 * size_of::<ChaCha20Rng>()),
    ];
    let mut sum = 0;
    for (name, bytes) in parts {
        hprintln!("  {}: {} bytes", name, bytes);
        sum += bytes;
    }
    hprintln!(
        "  rest (timers, in flight, poll id, saved digests, padding): {} bytes",
        size_of::<Device>().saturating_sub(sum)
    );
    // Decoded messages live on the stack while the engine handles them.
    hprintln!(
        "size_of::<SignedResponse>(): {} bytes (a decoded answer, on the stack)",
        size_of::<slup_core::msg::response::SignedResponse<'_>>()
    );
    hprintln!(
        "size_of::<Request>(): {} bytes (a request being encoded, on the stack)",
        size_of::<slup_core::msg::request::Request<'_>>()
    );
}

#[entry]
fn main() -> ! {
    hprintln!("slup firmware example (Cortex-M4F, QEMU mps2-an386)");
    let Some(device) = boot() else { exit(false) };
    let boot_peak = stack::measure().peak;
    // From here on, measure the agent at work apart from its construction.
    stack::repaint();
    let tx = TX.take();
    let result = scenario::run(device, tx, &mut [], &mut Replay);
    let run_peak = stack::measure().peak;

    hprintln!("size_of::<Engine>(): {} bytes", size_of::<Device>());
    breakdown();
    hprintln!("transmit buffer: {} bytes (static)", TX_BYTES);
    let recorded: usize = replay::ANSWERS.iter().map(|a| a.len()).sum();
    hprintln!("recorded answers in flash: {} bytes", recorded);
    let ok = match result {
        Ok(s) => {
            hprintln!("ID_TOKEN_TRUST request: {} bytes", s.trust_request);
            hprintln!("LICENSE_USAGE request: {} bytes", s.usage_request);
            hprintln!("events: {}", s.events);
            true
        }
        Err(f) => {
            match f.code {
                Some(code) => hprintln!("FAIL: {}: {} ({})", f.step, code, code.number()),
                None => hprintln!("FAIL: {}", f.step),
            }
            false
        }
    };
    hprintln!(
        "peak stack, boot (config + Engine::new): {} bytes",
        boot_peak
    );
    hprintln!("peak stack, trust -> report -> ACK: {} bytes", run_peak);
    let peak = boot_peak.max(run_peak);
    let size = stack::measure().size;
    hprintln!("peak stack: {} bytes (of {} available)", peak, size);
    // Paint gone down to the last word: the stack may have run into the statics below it.
    let ok = ok && peak < size;
    if !ok && peak >= size {
        hprintln!("FAIL: the stack overflowed");
    }
    if ok {
        hprintln!("OK");
    }
    exit(ok)
}
