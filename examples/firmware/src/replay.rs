//! The service's answers that `build.rs` recorded on the host, and the link that plays them
//! back: it checks each request is byte for byte the one the service answered there.

use cortex_m_semihosting::hprintln;
use slup_core::crypto::sha256;
use slup_core::diag::event::Event;
use slup_core::diag::MessageKind;
use slup_core::types::Timestamp;
use slup_core::Code;

use crate::scenario::Link;

mod recorded {
    include!(concat!(env!("OUT_DIR"), "/replay.rs"));
}
pub use recorded::{ANSWERS, REQUEST_SHA256, TRUST_ANCHOR};

/// Stands in for the transport: checks each request is the one the service answered on the
/// host, and hands back the service's answer.
pub struct Replay;

impl Link for Replay {
    fn exchange<'a>(
        &'a mut self,
        _now: Timestamp,
        n: usize,
        kind: MessageKind,
        request: &[u8],
        _out: &'a mut [u8],
    ) -> Result<&'a [u8], Code> {
        let (Some(expected), Some(answer)) = (REQUEST_SHA256.get(n), ANSWERS.get(n)) else {
            hprintln!("request {} ({}) was not recorded", n, kind);
            return Err(Code::InvalidArgument);
        };
        if sha256(request) != *expected {
            hprintln!(
                "request {} ({}) differs from the one the host sent: not deterministic?",
                n,
                kind
            );
            return Err(Code::InvalidArgument);
        }
        hprintln!(
            "{}: sent {} bytes (signed), answer {} bytes",
            kind,
            request.len(),
            answer.len()
        );
        Ok(answer)
    }

    fn event(&mut self, event: &Event) {
        hprintln!("  {}", event);
    }
}
