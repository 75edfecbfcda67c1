//! The agent image with the device's TLS client linked in (`slup_core::net::tls`, embedded-tls,
//! TLS 1.3, no heap): the same trust → report → ACK cycle as `slup-firmware`, with every request
//! first offered to a TLS session, so that the flash and stack the TLS client costs can be
//! measured beside the agent without it (issue 6).
//!
//! QEMU's MPS2 board has no network here: the TLS session runs over a scripted socket that
//! answers the ClientHello with a fatal `handshake_failure` alert, and the answer then comes
//! from the recording, as in `slup-firmware`. The socket's bytes pass through `black_box`, so
//! the whole handshake and record layer stay in the image.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]

use core::hint::black_box;

use cortex_m_rt::entry;
use cortex_m_semihosting::hprintln;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::PublicKey;
use slup_core::diag::event::Event;
use slup_core::diag::MessageKind;
use slup_core::net::tls::{post_tls, TlsBuffers, TlsSettings, RECORD_READ_BYTES};
use slup_core::types::Timestamp;
use slup_core::Code;
use slup_firmware::replay::{self, Replay};
use slup_firmware::scenario::{self, Device, Link};
use slup_firmware::{exit, stack};
use static_cell::{ConstStaticCell, StaticCell};

const TX_BYTES: usize = 8 * 1024;
const TLS_WRITE_BYTES: usize = 4 * 1024;

static ENGINE: StaticCell<Device> = StaticCell::new();
static TX: ConstStaticCell<[u8; TX_BYTES]> = ConstStaticCell::new([0; TX_BYTES]);
static TLS_READ: ConstStaticCell<[u8; RECORD_READ_BYTES]> =
    ConstStaticCell::new([0; RECORD_READ_BYTES]);
static TLS_WRITE: ConstStaticCell<[u8; TLS_WRITE_BYTES]> =
    ConstStaticCell::new([0; TLS_WRITE_BYTES]);

/// A fatal `handshake_failure` alert, as a server that refuses the ClientHello sends.
const ALERT: [u8; 7] = [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28];

/// A socket that takes whatever is written and reads back a script.
struct Scripted {
    script: &'static [u8],
    at: usize,
}

impl embedded_io::ErrorType for Scripted {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for Scripted {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        let rest = self.script.get(self.at..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.at += n;
        Ok(n)
    }
}

impl embedded_io::Write for Scripted {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        Ok(black_box(buf).len())
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Offers each request to a TLS session first, then plays the recorded answer back.
struct TlsFirst {
    anchor_der: &'static [u8],
    read: &'static mut [u8; RECORD_READ_BYTES],
    write: &'static mut [u8; TLS_WRITE_BYTES],
    last: Option<Code>,
    replay: Replay,
}

impl Link for TlsFirst {
    fn exchange<'a>(
        &'a mut self,
        now: Timestamp,
        n: usize,
        kind: MessageKind,
        request: &[u8],
        out: &'a mut [u8],
    ) -> Result<&'a [u8], Code> {
        let socket = Scripted {
            script: black_box(&ALERT),
            at: 0,
        };
        let settings = TlsSettings {
            server_name: black_box("smartreceiver.cisco.com"),
            ca_der: self.anchor_der,
            danger_accept_any_certificate: false,
            client: None,
        };
        let buffers = TlsBuffers {
            read: &mut self.read[..],
            write: &mut self.write[..],
        };
        let rng = ChaCha20Rng::seed_from_u64(scenario::NONCE_SEED);
        let mut answer = [0u8; 256];
        let attempt = post_tls(
            socket,
            settings,
            rng,
            buffers,
            "smartreceiver.cisco.com",
            "/licservice/license",
            request,
            &mut answer,
        );
        self.last = attempt.as_ref().err().copied();
        match attempt {
            Ok(_) => hprintln!("TLS attempt: unexpectedly answered"),
            Err(code) => hprintln!("TLS attempt: {} ({})", code, code.number()),
        }
        self.replay.exchange(now, n, kind, request, out)
    }

    fn event(&mut self, event: &Event) {
        hprintln!("  {}", event);
    }
}

#[entry]
fn main() -> ! {
    hprintln!("slup firmware example with the TLS client (Cortex-M4F, QEMU mps2-an386)");
    let Ok(anchor) = PublicKey::from_sec1(&replay::TRUST_ANCHOR) else {
        hprintln!("FAIL: bad trust anchor");
        exit(false)
    };
    let Ok(config) = scenario::config(anchor) else {
        hprintln!("FAIL: config");
        exit(false)
    };
    let device = ENGINE.init_with(|| scenario::device(config));
    stack::repaint();
    let mut link = TlsFirst {
        // No CA certificate is provisioned in this demo: the handshake fails before one is needed.
        anchor_der: black_box(&[]),
        read: TLS_READ.take(),
        write: TLS_WRITE.take(),
        last: None,
        replay: Replay,
    };
    let result = scenario::run(device, TX.take(), &mut [], &mut link);
    let st = stack::measure();
    hprintln!(
        "peak stack, trust -> report -> ACK with TLS: {} bytes",
        st.peak
    );
    hprintln!(
        "TLS buffers: {} + {} bytes (static)",
        RECORD_READ_BYTES,
        TLS_WRITE_BYTES
    );
    let ok = result.is_ok() && link.last == Some(Code::TlsHandshake) && st.peak < st.size;
    if let Err(f) = result {
        hprintln!("FAIL: {}", f.step);
    }
    if ok {
        hprintln!("OK");
    }
    exit(ok)
}
