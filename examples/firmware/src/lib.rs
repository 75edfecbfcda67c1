//! Support shared by the two images of this example: the demo script, stack measurement,
//! exiting QEMU, and the panic handler.
//!
//! - `slup-firmware` (`src/main.rs`): the agent, driven through a full trust → report → ACK
//!   cycle;
//! - `crypto-baseline` (`src/bin/crypto_baseline.rs`): the same runtime, RNG and output, with
//!   only P-256 key generation, signing, verification and SHA-256, to show what the crypto
//!   alone costs.
//!
//! There is no allocator in either image: no `#[global_allocator]`, and linking would fail if
//! any crate in the graph used `alloc`.
#![no_std]
#![deny(clippy::undocumented_unsafe_blocks)]

pub mod replay;
pub mod scenario;

use cortex_m_semihosting::debug;

/// Exits QEMU through semihosting with status 0 (`ok`) or 1.
pub fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Only reached without a semihosting host (on real hardware, without a debugger).
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    use core::fmt::Write as _;
    // Not `hprintln!`, which panics itself when it cannot print.
    if let Ok(mut out) = cortex_m_semihosting::hio::hstdout() {
        let _ = match info.location() {
            Some(l) => writeln!(out, "PANIC at {}:{}", l.file(), l.line()),
            None => writeln!(out, "PANIC"),
        };
    }
    exit(false)
}

/// The stack's high-water mark.
///
/// cortex-m-rt's `paint-stack` feature fills the whole stack region (from `_stack_end`, just
/// above the statics, up to `_stack_start`, the top of RAM) with [`PAINT`] before `main` runs.
/// Whatever the program pushed since has scrubbed the paint off, so the lowest word that no
/// longer holds it marks the deepest the stack has ever been.
///
/// It can under-count only by a frame's untouched tail at the very deepest point (a local
/// buffer never written down to its end), which is why this is a measurement on a known run,
/// not a bound.
pub mod stack {
    /// What cortex-m-rt paints the stack with.
    pub const PAINT: u32 = cortex_m_rt::STACK_PAINT_VALUE;

    extern "C" {
        /// Top of the stack (initial SP), from cortex-m-rt's `link.x`.
        static _stack_start: u32;
        /// Lowest address the stack may reach, from cortex-m-rt's `link.x`.
        static _stack_end: u32;
    }

    /// The stack region and how much of it was ever used.
    #[derive(Clone, Copy, Debug)]
    pub struct Usage {
        /// Bytes between the top of the stack and the deepest word ever written.
        pub peak: usize,
        /// Bytes of the region (RAM left after the statics).
        pub size: usize,
    }

    fn bounds() -> (usize, usize) {
        let top = core::ptr::addr_of!(_stack_start) as usize;
        let bottom = core::ptr::addr_of!(_stack_end) as usize;
        (bottom, top)
    }

    /// Bytes in use right now (top of the stack minus SP).
    pub fn current() -> usize {
        let (_, top) = bounds();
        top.saturating_sub(cortex_m::register::msp::read() as usize)
    }

    /// Paints the free part of the stack again (everything below the current stack pointer),
    /// so that the next [`measure`] sees only what is used from here on.
    pub fn repaint() {
        // Interrupts off: no exception frame may be pushed below SP while it is painted.
        cortex_m::interrupt::free(|_| {
            let (bottom, _) = bounds();
            let sp = cortex_m::register::msp::read() as usize;
            let mut p = bottom;
            while p + 4 <= sp {
                // SAFETY: `p` is a word-aligned address in [_stack_end, SP): the stack region
                // below the current stack pointer. No frame lives there (the Arm EABI has no
                // red zone), no exception can push one there while interrupts are disabled,
                // and no Rust reference points into it; the statics lie below `_stack_end`.
                unsafe { core::ptr::write_volatile(p as *mut u32, PAINT) };
                p += 4;
            }
        });
    }

    /// Scans the painted region from its bottom for the high-water mark.
    pub fn measure() -> Usage {
        let (bottom, top) = bounds();
        let mut p = bottom;
        while p < top {
            // SAFETY: `p` is a word-aligned address in [_stack_end, _stack_start), the stack
            // region cortex-m-rt's linker script reserves in RAM (both ends are 4-aligned,
            // which link.x asserts). It is always mapped and readable, reading it has no side
            // effect, and a volatile read of a `u32` cannot alias any Rust reference in a way
            // that matters: the value is only compared.
            let word = unsafe { core::ptr::read_volatile(p as *const u32) };
            if word != PAINT {
                break;
            }
            p += 4;
        }
        Usage {
            peak: top - p,
            size: top - bottom,
        }
    }
}
