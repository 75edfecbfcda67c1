//! Service URLs as owned values for the host runtime; the syntax is `slup_core::url`'s:
//! `http[s]://host[:port][/path]`, with bracketed IPv6 literals, no user info, no fragments.

pub use slup_core::url::split_host_port;
use slup_core::url::ServiceUrl;
use slup_core::Code;

use crate::error::HostError;

/// A parsed service URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    /// `true` for `https`.
    pub tls: bool,
    /// Host name or IP literal, without brackets.
    pub host: String,
    /// Port (80 or 443 when absent).
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Url {
    /// Parses `text` (`slup_core::url`); anything else than the form above is
    /// [`Code::InvalidArgument`].
    pub fn parse(text: &str) -> Result<Url, HostError> {
        let u = ServiceUrl::parse(text)
            .map_err(|why| HostError::new(Code::InvalidArgument, format!("URL {text:?}: {why}")))?;
        Ok(Url {
            tls: u.tls,
            host: u.host.to_string(),
            port: u.port,
            path: u.path.to_string(),
        })
    }

    /// `host:port` as written in `Host` and `CONNECT` (IPv6 in brackets).
    pub fn authority(&self) -> String {
        host_port(&self.host, self.port)
    }
}

/// `host:port`, bracketing an IPv6 literal.
pub fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_service_urls() {
        let u = Url::parse("https://smartreceiver.cisco.com/licservice/license").unwrap();
        assert_eq!(
            (u.tls, u.host.as_str(), u.port, u.path.as_str()),
            (true, "smartreceiver.cisco.com", 443, "/licservice/license")
        );
        let u = Url::parse("http://cslu-local:8182/cslu/v1/pi").unwrap();
        assert_eq!(
            (u.tls, u.port, u.authority()),
            (false, 8182, "cslu-local:8182".into())
        );
        let u = Url::parse("http://[::1]:80").unwrap();
        assert_eq!((u.host.as_str(), u.path.as_str()), ("::1", "/"));
        assert_eq!(u.authority(), "[::1]:80");
    }

    #[test]
    fn a_refusal_says_why_with_a_stable_code() {
        let e = Url::parse("http://us@host/").unwrap_err();
        assert_eq!(e.code, Code::InvalidArgument);
        assert!(e.detail.contains("user information"), "{e}");
    }
}
