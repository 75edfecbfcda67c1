//! The part of URL syntax a license service URL uses: `http[s]://host[:port][/path]`, with
//! bracketed IPv6 literals. No user info, no fragments: a service URL has neither.

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
    /// Parses `text`; anything else than the form above is [`Code::InvalidArgument`].
    pub fn parse(text: &str) -> Result<Url, HostError> {
        let bad = |why: &str| HostError::new(Code::InvalidArgument, format!("URL {text:?}: {why}"));
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(bad("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(bad(
                "the path holds a fragment, a space or a control character",
            ));
        }
        if authority.contains('@') {
            return Err(bad("user information is not supported in a service URL"));
        }
        let (host, port) = split_host_port(authority).ok_or_else(|| bad("bad host or port"))?;
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Url {
            tls,
            host: host.to_string(),
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            path: path.to_string(),
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

/// Splits `host[:port]` or `[v6][:port]`; `None` when malformed.
pub fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = rest.get(..end)?;
        let after = rest.get(end + 1..)?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (host, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let valid_host = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-._:%".contains(&b));
    if !valid_host {
        return None;
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.parse().ok()?),
        Some(_) => return None,
    };
    Some((host, port))
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
    fn refuses_what_is_not_a_service_url() {
        for bad in [
            "ftp://x/",
            "http://",
            "http://host:99999/",
            "http://host:/",
            "http://us@host/",
            "http://host/a b",
            "http://ho st/",
            "http://[::1/",
        ] {
            let e = Url::parse(bad).unwrap_err();
            assert_eq!(e.code, Code::InvalidArgument, "{bad}");
        }
    }
}
