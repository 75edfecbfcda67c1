//! Stable error codes and the per-operation error types.
//!
//! Every failure slup reports carries a numeric [`Code`] that never changes meaning and is never
//! reused: C callers see it as a `slup_result`, Python as an exception attribute, operators in
//! logs. `docs/ERRORS.md` lists each code with a one-line meaning and a hint; the test
//! `error_codes_documented` keeps the two in step.
//!
//! Codes live in bands of one hundred:
//!
//! | band | concern |
//! |---|---|
//! | 1000–1099 | decode: the bytes are not a well-formed message |
//! | 1100–1199 | crypto: keys, signatures, base64 |
//! | 1200–1299 | protocol and service status: nonces, versions, `FAILED`, ... |
//! | 1300–1399 | transport: DNS, TCP, TLS, proxy, HTTP |
//! | 1400–1499 | storage: records, integrity, format versions |
//! | 1500–1599 | policy and state: trust, reports, schedule |
//! | 1600–1699 | API misuse: buffers, capacities, arguments |

use core::fmt;

macro_rules! codes {
    ($( $(#[doc = $doc:literal])* $name:ident = $num:literal, $msg:literal; )*) => {
        /// A stable numeric error code; see `docs/ERRORS.md`.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        #[repr(u16)]
        pub enum Code {
            $( $(#[doc = $doc])* $name = $num, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[$(Code::$name),*];

            /// The number that identifies this code forever.
            pub const fn number(self) -> u16 {
                self as u16
            }

            /// The code's symbolic name, e.g. `"JsonSyntax"`.
            pub const fn name(self) -> &'static str {
                match self { $(Code::$name => stringify!($name),)* }
            }

            /// A one-line meaning in plain English.
            pub const fn message(self) -> &'static str {
                match self { $(Code::$name => $msg,)* }
            }

            /// The code for a number, if one exists.
            pub fn from_number(n: u16) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.number() == n)
            }
        }
    };
}

codes! {
    // ---- 1000: decode -------------------------------------------------------------------
    /// Bytes are not valid JSON (RFC 8259).
    JsonSyntax = 1000, "malformed JSON";
    /// Non-whitespace bytes follow the top-level value.
    TrailingBytes = 1001, "trailing bytes after the JSON value";
    /// Arrays and objects nest deeper than the decoder allows.
    DepthExceeded = 1002, "JSON nesting deeper than allowed";
    /// A string is longer than the decoder allows.
    StringTooLong = 1003, "JSON string longer than allowed";
    /// A string is not valid UTF-8 or holds a lone surrogate escape.
    InvalidUtf8 = 1004, "invalid UTF-8 or unpaired surrogate in a string";
    /// A required member is absent.
    MissingField = 1005, "required field missing";
    /// A member has the wrong JSON type.
    WrongType = 1006, "field has the wrong JSON type";
    /// An object we produce and sign holds a member the spec does not define.
    UnknownField = 1007, "unknown field in a strict object";
    /// The same member name appears twice in one object.
    DuplicateField = 1008, "duplicate field";
    /// An array holds more elements than the decoder allows.
    TooManyItems = 1009, "array longer than allowed";
    /// A value is well-typed but outside what the spec allows (length, charset, range).
    InvalidValue = 1010, "field value out of range or malformed";
    /// An input is larger than the decoder accepts.
    MessageTooLarge = 1011, "message larger than allowed";
    /// `request_type` names a type this implementation does not know.
    UnknownRequestType = 1012, "unknown request_type";
    /// `status_code` names a status this implementation does not know.
    UnknownStatus = 1013, "unknown status_code";
    /// A number does not fit the field's integer type.
    NumberOutOfRange = 1014, "number out of range";
    /// A member name holds a backslash escape, which slup messages never use.
    EscapedMemberName = 1015, "escaped member name";

    // ---- 1100: crypto -------------------------------------------------------------------
    /// The signature does not verify over the signed bytes.
    BadSignature = 1100, "signature does not verify";
    /// The signature's `s` is above n/2 (malleable form).
    HighS = 1101, "signature not in low-S form";
    /// The signature names a key id other than the expected key.
    KeyIdMismatch = 1102, "signature key id does not match the expected key";
    /// A public key is not a valid uncompressed P-256 point.
    InvalidPublicKey = 1103, "invalid P-256 public key";
    /// Base64 text is malformed or has the wrong decoded length.
    InvalidBase64 = 1104, "invalid base64";
    /// The signature `type` is not `SHA256`.
    UnsupportedSignatureType = 1105, "unsupported signature type";
    /// The signer (software key or secure element) failed to sign.
    SigningFailed = 1106, "signing failed";
    /// r or s is zero or not below the group order.
    InvalidSignatureEncoding = 1107, "signature scalars out of range";

    // ---- 1200: protocol / status ----------------------------------------------------------
    /// The message `version` is not one this implementation speaks.
    UnsupportedVersion = 1200, "unsupported message version";
    /// A response's nonce was never issued by this device (or was forgotten).
    UnknownNonce = 1201, "nonce was never issued";
    /// A response's nonce was already answered once.
    ReplayedNonce = 1202, "nonce already answered (replay)";
    /// A response answers a different request than the one outstanding.
    NonceMismatch = 1203, "nonce does not match the outstanding request";
    /// The response's `request_type` differs from the request's.
    RequestTypeMismatch = 1204, "response answers another request type";
    /// The service answered `FAILED`.
    ServiceFailed = 1205, "service answered FAILED";
    /// The service answered `OK_TRY_AGAIN`.
    ServiceTryAgain = 1206, "service asked to try again later";
    /// The response names another device (UDI mismatch).
    UdiMismatch = 1207, "response is for another device";
    /// The service answered with an unsigned `{"error":…}` body.
    ServiceError = 1208, "service rejected the request";
    /// The service's signed time is more than the allowed skew from the device clock.
    ClockSkew = 1209, "clock skew beyond tolerance";

    // ---- 1300: transport ------------------------------------------------------------------
    /// Host name did not resolve.
    DnsFailure = 1300, "DNS resolution failed";
    /// TCP connection refused.
    ConnectRefused = 1301, "connection refused";
    /// TCP connect did not complete in time.
    ConnectTimeout = 1302, "connect timed out";
    /// The peer stopped answering mid-exchange.
    ReadTimeout = 1303, "read timed out";
    /// TLS handshake failed for a reason other than the certificate.
    TlsHandshake = 1304, "TLS handshake failed";
    /// The server's certificate chains to no configured root (interception?).
    TlsUnknownCa = 1305, "server certificate from an unknown CA";
    /// The server's certificate does not name the host.
    TlsHostMismatch = 1306, "server certificate does not match the host name";
    /// The server's certificate has expired or is not yet valid.
    TlsCertExpired = 1307, "server certificate expired or not yet valid";
    /// The proxy's host name did not resolve.
    ProxyDnsFailure = 1308, "proxy DNS resolution failed";
    /// The proxy refused the connection or the CONNECT.
    ProxyRefused = 1309, "proxy refused the connection";
    /// The proxy wants (other) credentials: HTTP 407.
    ProxyAuthRequired = 1310, "proxy authentication required (407)";
    /// The service answered an HTTP 4xx status.
    HttpClientError = 1311, "HTTP 4xx from the service";
    /// The service answered an HTTP 5xx status.
    HttpServerError = 1312, "HTTP 5xx from the service";
    /// The connection closed before the whole body arrived.
    TruncatedBody = 1313, "response body truncated";
    /// The response body exceeds the receive buffer.
    OversizeBody = 1314, "response body larger than the buffer";
    /// The connection reset or closed unexpectedly.
    ConnectionReset = 1315, "connection reset";
    /// No reply at all arrived for a request.
    NoReply = 1316, "no reply";

    // ---- 1400: storage --------------------------------------------------------------------
    /// A stored record fails its integrity check.
    RecordCorrupt = 1400, "stored record is corrupt";
    /// A stored record has a newer format version than this build understands.
    RecordFromNewerVersion = 1401, "stored record has a newer format version";
    /// The storage medium failed to read or write.
    StorageIo = 1402, "storage read or write failed";
    /// The storage medium is full.
    StorageFull = 1403, "storage full";

    // ---- 1500: policy / state -------------------------------------------------------------
    /// Trust is already installed and `force` was not given.
    TrustAlreadyInstalled = 1500, "trust already installed (use force)";
    /// The operation needs trust, and none is installed.
    NotTrusted = 1501, "no trust installed";
    /// A file or message answers a request this device never made.
    NotAnswering = 1502, "message answers no request of this device";
    /// The device clock moved backwards beyond tolerance.
    ClockRollback = 1503, "system clock moved backwards";
    /// A report id is unknown to this device.
    UnknownReport = 1504, "unknown report id";

    // ---- 1600: API misuse -----------------------------------------------------------------
    /// The caller's output buffer is too small.
    BufferTooSmall = 1600, "output buffer too small";
    /// A fixed-capacity table is full.
    CapacityExceeded = 1601, "capacity exceeded";
    /// An argument violates the API contract.
    InvalidArgument = 1602, "invalid argument";
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "E{} {}: {}", self.number(), self.name(), self.message())
    }
}

/// A decoding failure: what went wrong, where, and in which object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DecodeError {
    /// The stable code.
    pub code: Code,
    /// Byte offset in the input at or near the fault (0 when unknown).
    pub offset: usize,
    /// The object or field being decoded, e.g. `"response.header"`.
    pub context: &'static str,
}

impl DecodeError {
    /// A decode error with a code, an offset and a context.
    pub const fn new(code: Code, offset: usize, context: &'static str) -> Self {
        Self {
            code,
            offset,
            context,
        }
    }

    /// The stable code.
    pub const fn code(&self) -> Code {
        self.code
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} in {} at byte {}",
            self.code, self.context, self.offset
        )
    }
}

/// An encoding failure (the caller's buffer is too small, or a value cannot be represented).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeError {
    /// The stable code.
    pub code: Code,
    /// What was being written.
    pub context: &'static str,
}

impl EncodeError {
    /// The buffer ran out while writing `context`.
    pub const fn buffer(context: &'static str) -> Self {
        Self {
            code: Code::BufferTooSmall,
            context,
        }
    }

    /// The stable code.
    pub const fn code(&self) -> Code {
        self.code
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} while encoding {}", self.code, self.context)
    }
}

/// Any failure of a message operation: decoding, verifying or encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The bytes do not decode.
    Decode(DecodeError),
    /// A signature, key or base64 failure.
    Crypto(Code),
    /// Encoding failed.
    Encode(EncodeError),
    /// A nonce, version or status rule was broken.
    Protocol(Code),
}

impl Error {
    /// The stable code.
    pub const fn code(&self) -> Code {
        match self {
            Error::Decode(e) => e.code,
            Error::Encode(e) => e.code,
            Error::Crypto(c) | Error::Protocol(c) => *c,
        }
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}

impl From<EncodeError> for Error {
    fn from(e: EncodeError) -> Self {
        Error::Encode(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Decode(e) => e.fmt(f),
            Error::Encode(e) => e.fmt(f),
            Error::Crypto(c) | Error::Protocol(c) => c.fmt(f),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}
#[cfg(feature = "std")]
impl std::error::Error for DecodeError {}
#[cfg(feature = "std")]
impl std::error::Error for EncodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_banded() {
        let mut prev = 0u16;
        for c in Code::ALL {
            assert!(c.number() > prev, "{c:?} out of order");
            assert!((1000..1700).contains(&c.number()));
            assert_eq!(Code::from_number(c.number()), Some(*c));
            prev = c.number();
        }
    }
}
