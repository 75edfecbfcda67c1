//! Errors as the command prints them: the stable code, what it concerned, the hint from
//! docs/ERRORS.md, and the documented exit status.

use std::fmt;

use slup_core::Code;
use slup_host::HostError;

/// Exit statuses of `slup`, as `slup --help` documents them.
pub mod exit {
    /// Success; for `decode` and `verify`, the message is valid.
    pub const OK: u8 = 0;
    /// The message or file is not a valid slup message (decode, signature): codes 1000–1199.
    pub const INVALID_MESSAGE: u8 = 1;
    /// Bad command line or argument (codes 1600–1699).
    pub const USAGE: u8 = 2;
    /// Local storage or file error (codes 1400–1499, unreadable or unwritable files).
    pub const STORAGE: u8 = 3;
    /// The service could not be reached or refused (codes 1200–1399).
    pub const SERVICE: u8 = 4;
    /// The device's licensing state does not allow it (codes 1500–1599).
    pub const STATE: u8 = 5;
}

/// The exit-status table printed by `slup --help`.
pub const EXIT_HELP: &str = "\
Exit status:
  0  success; for decode and verify, the message is valid
  1  the message or file is not a valid slup message (codes E1000-E1199)
  2  bad command line or argument (codes E1600-E1699)
  3  local storage or file error (codes E1400-E1499)
  4  the service could not be reached or refused the request (codes E1200-E1399)
  5  the device's licensing state does not allow it (codes E1500-E1599)

Errors print the stable code (docs/ERRORS.md), what it concerned, and a hint.";

/// A failure of a command.
#[derive(Debug)]
pub struct CliError {
    /// The stable code, when there is one.
    pub code: Option<Code>,
    /// What failed.
    pub detail: String,
}

impl CliError {
    /// A failure with a code.
    pub fn new(code: Code, detail: impl Into<String>) -> Self {
        CliError {
            code: Some(code),
            detail: detail.into(),
        }
    }

    /// A file that cannot be read or written.
    pub fn file(path: &str, e: &std::io::Error) -> Self {
        CliError::new(Code::StorageIo, format!("{path}: {e}"))
    }

    /// The exit status for this failure.
    pub fn exit_status(&self) -> u8 {
        match self.code.map(|c| c.number()) {
            Some(1000..=1199) => exit::INVALID_MESSAGE,
            Some(1200..=1399) => exit::SERVICE,
            Some(1400..=1499) => exit::STORAGE,
            Some(1500..=1599) => exit::STATE,
            _ => exit::USAGE,
        }
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(c) => {
                write!(f, "error: {c}")?;
                if !self.detail.is_empty() {
                    write!(f, "\n  {}", self.detail)?;
                }
                if let Some(h) = crate::hints::hint(c) {
                    write!(f, "\n  hint: {h}")?;
                }
                Ok(())
            }
            None => write!(f, "error: {}", self.detail),
        }
    }
}

impl From<HostError> for CliError {
    fn from(e: HostError) -> Self {
        CliError::new(e.code, e.detail)
    }
}

impl From<Code> for CliError {
    fn from(c: Code) -> Self {
        CliError::new(c, "")
    }
}

impl From<slup_core::Error> for CliError {
    fn from(e: slup_core::Error) -> Self {
        match e {
            slup_core::Error::Decode(d) => {
                CliError::new(d.code, format!("in {} at byte {}", d.context, d.offset))
            }
            other => CliError::new(other.code(), ""),
        }
    }
}
