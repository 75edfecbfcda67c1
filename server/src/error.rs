//! [`Error`]: what the server's library API reports, with the stable code when there is one.

use std::fmt;

use slup_core::Code;

/// A failure of the server library: a stable code (docs/ERRORS.md) when one applies, and a
/// message for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    code: Option<Code>,
    message: String,
}

impl Error {
    /// An error with a stable code.
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Error {
            code: Some(code),
            message: message.into(),
        }
    }

    /// An error no stable code describes (an operating-system or TLS set-up failure).
    pub fn other(message: impl Into<String>) -> Self {
        Error {
            code: None,
            message: message.into(),
        }
    }

    /// The stable code, if any.
    pub fn code(&self) -> Option<Code> {
        self.code
    }

    /// The message, without the code.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) if self.message.is_empty() => write!(f, "{code}"),
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for Error {}

impl From<Code> for Error {
    fn from(code: Code) -> Self {
        Error::new(code, "")
    }
}

impl From<slup_core::Error> for Error {
    fn from(e: slup_core::Error) -> Self {
        let message = match e {
            slup_core::Error::Decode(d) => format!("in {} at byte {}", d.context, d.offset),
            slup_core::Error::Encode(d) => format!("while encoding {}", d.context),
            slup_core::Error::Crypto(_) | slup_core::Error::Protocol(_) => String::new(),
        };
        Error::new(e.code(), message)
    }
}

impl From<slup_core::DecodeError> for Error {
    fn from(e: slup_core::DecodeError) -> Self {
        slup_core::Error::Decode(e).into()
    }
}

impl From<crate::store::OpenError> for Error {
    fn from(e: crate::store::OpenError) -> Self {
        Error::new(e.code, e.message)
    }
}
