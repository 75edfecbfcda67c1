//! What [`super::Service::handle`] hands back: an HTTP status and the body length, and the
//! helpers that write unsigned error bodies and bounded messages.

use core::fmt::{self, Write};

use crate::error::Code;
use crate::msg::response::ErrorBody;
use crate::types::Text;

/// The answer to one request: write `out[..len]` as the body with this HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// `200` with a signed service envelope; otherwise (`400`, `401`, `403`, `500`, `503`) the
    /// unsigned error body `{"error":{"code":…,"message":…}}`.
    pub http_status: u16,
    /// Body length in `out`. `0` only when `out` cannot hold even the error body.
    pub len: usize,
}

impl Reply {
    /// `true` for a `200` with a signed envelope.
    pub const fn is_signed(&self) -> bool {
        self.http_status == 200
    }
}

/// Longest message the service composes (`FAILED` messages, error bodies).
pub const MESSAGE_LEN: usize = 256;

/// A message the service composes.
pub type Message = heapless::String<MESSAGE_LEN>;

/// Formats a message; text beyond [`MESSAGE_LEN`] is cut (every message the service writes
/// fits, UDIs and UUIDs included).
pub fn message(args: fmt::Arguments<'_>) -> Message {
    let mut m = Message::new();
    // A full buffer keeps what fits: a shortened explanation beats none.
    let _ = m.write_fmt(args);
    m
}

/// A request the service will not act on, answered with an unsigned error body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// Non-2xx HTTP status.
    pub http_status: u16,
    /// The stable code in the body.
    pub code: Code,
    /// The body's message.
    pub message: Message,
}

impl Refusal {
    /// A refusal with a composed message.
    pub fn new(http_status: u16, code: Code, args: fmt::Arguments<'_>) -> Self {
        Refusal {
            http_status,
            code,
            message: message(args),
        }
    }

    /// Writes the error body into `out`.
    pub fn write(&self, out: &mut [u8]) -> Reply {
        error_body(out, self.http_status, self.code, &self.message)
    }
}

/// Writes `{"error":{"code":…,"message":…}}` into `out`.
pub fn error_body(out: &mut [u8], http_status: u16, code: Code, message: &str) -> Reply {
    let body = ErrorBody {
        code: code.number(),
        message: Text::plain(message),
    };
    // Without room even for the error body, the status alone must carry the verdict.
    let len = body.encode(out).unwrap_or(0);
    Reply { http_status, len }
}
