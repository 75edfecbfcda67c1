//! The part of URL syntax a license service URL uses: `http[s]://host[:port][/path]`, with
//! bracketed IPv6 literals. No user info, no fragments: a service URL has neither. Borrowed
//! and allocation-free, so the device configuration, the host runtime and the service's own
//! client all read URLs the same way.

/// Why a text is not a service URL (a fixed phrase, for the caller's message).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UrlError(pub &'static str);

impl core::fmt::Display for UrlError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.0)
    }
}

/// A parsed service URL, borrowing from the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceUrl<'a> {
    /// `true` for `https`.
    pub tls: bool,
    /// Host name or IP literal, without brackets.
    pub host: &'a str,
    /// Port (80 or 443 when absent).
    pub port: u16,
    /// Path and query, starting with `/` (`/` when absent).
    pub path: &'a str,
}

impl<'a> ServiceUrl<'a> {
    /// Parses `text`; anything else than the form above is refused with the reason.
    pub fn parse(text: &'a str) -> Result<Self, UrlError> {
        let (tls, rest) = if let Some(r) = text.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = text.strip_prefix("http://") {
            (false, r)
        } else {
            return Err(UrlError("must start with http:// or https://"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, "/"),
        };
        if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(UrlError(
                "the path holds a fragment, a space or a control character",
            ));
        }
        if authority.contains('@') {
            return Err(UrlError(
                "user information is not supported in a service URL",
            ));
        }
        let (host, port) = split_host_port(authority).ok_or(UrlError("bad host or port"))?;
        if host.is_empty() {
            return Err(UrlError("no host"));
        }
        Ok(ServiceUrl {
            tls,
            host,
            port: port.unwrap_or(if tls { 443 } else { 80 }),
            path,
        })
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
        let u = ServiceUrl::parse("https://smartreceiver.cisco.com/licservice/license").unwrap();
        assert_eq!(
            (u.tls, u.host, u.port, u.path),
            (true, "smartreceiver.cisco.com", 443, "/licservice/license")
        );
        let u = ServiceUrl::parse("http://cslu-local:8182/cslu/v1/pi").unwrap();
        assert_eq!((u.tls, u.host, u.port), (false, "cslu-local", 8182));
        let u = ServiceUrl::parse("http://[::1]:80").unwrap();
        assert_eq!((u.host, u.port, u.path), ("::1", 80, "/"));
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
            "http://host/#frag",
            "http://ho st/",
            "http://[::1/",
        ] {
            assert!(ServiceUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
