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
#![forbid(unsafe_code)]

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
/// above the statics, up to `_stack_start`, the top of RAM) with `0xCCCCCCCC` before `main`
/// runs. Whatever the program pushed since has scrubbed the paint off, so the lowest word that
/// no longer holds it marks the deepest the stack has ever been.
///
/// The painting and scanning below the stack pointer are `cortex-m-stack`'s, in inline
/// assembly (which, unlike Rust code, may touch memory below SP), so this crate can forbid
/// `unsafe_code`.
///
/// It can under-count only by a frame's untouched tail at the very deepest point (a local
/// buffer never written down to its end), which is why this is a measurement on a known run,
/// not a bound.
pub mod stack {
    // Both crates must paint with the same value, or the first scan would find no paint.
    const _: () = assert!(cortex_m_rt::STACK_PAINT_VALUE == cortex_m_stack::STACK_PAINT_VALUE);

    /// The stack region and how much of it was ever used.
    #[derive(Clone, Copy, Debug)]
    pub struct Usage {
        /// Bytes between the top of the stack and the deepest word ever written.
        pub peak: usize,
        /// Bytes of the region (RAM left after the statics).
        pub size: usize,
    }

    /// Paints the free part of the stack again (everything below the current stack pointer),
    /// so that the next [`measure`] sees only what is used from here on.
    pub fn repaint() {
        // Interrupts off: no exception frame may be pushed below SP while it is painted.
        cortex_m::interrupt::free(|_| cortex_m_stack::repaint_stack());
    }

    /// Scans the painted region from its bottom for the high-water mark.
    pub fn measure() -> Usage {
        let size = cortex_m_stack::stack_size() as usize;
        let untouched = cortex_m_stack::stack_painted() as usize;
        Usage {
            peak: size.saturating_sub(untouched),
            size,
        }
    }
}
