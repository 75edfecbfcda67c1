//! One failure type for the host runtime: a stable [`Code`] and a short detail saying exactly
//! what failed (the address, the HTTP status, the file).

use core::fmt;

use slup_core::Code;

/// A failure with its stable code (docs/ERRORS.md) and what it concerned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostError {
    /// The stable code.
    pub code: Code,
    /// What failed, for the operator: `127.0.0.1:8182`, `HTTP 503`, a file name, …
    pub detail: String,
}

impl HostError {
    /// A failure with `code` and `detail`.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        HostError {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.detail.is_empty() {
            write!(f, "{}", self.code)
        } else {
            write!(f, "{} ({})", self.code, self.detail)
        }
    }
}

impl std::error::Error for HostError {}

impl From<Code> for HostError {
    fn from(code: Code) -> Self {
        HostError::new(code, "")
    }
}

/// The code for an I/O failure during an exchange; TLS failures carried inside the I/O error
/// keep their precise TLS code.
pub fn classify_io(e: &std::io::Error, what: &str) -> HostError {
    use std::io::ErrorKind;
    if let Some(tls) = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        return crate::tls::classify(tls);
    }
    match e.kind() {
        ErrorKind::TimedOut | ErrorKind::WouldBlock => {
            HostError::new(Code::ReadTimeout, format!("no answer in time ({what})"))
        }
        ErrorKind::UnexpectedEof => HostError::new(Code::TruncatedBody, format!("{what}: {e}")),
        _ => HostError::new(Code::ConnectionReset, format!("{what}: {e}")),
    }
}
