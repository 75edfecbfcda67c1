//! Summaries of the certificates a TLS server presents: subject, issuer, names and validity,
//! one line each, so that a chain issued by a firewall's CA instead of the service's is
//! obvious (the seed's TLS interception).

use std::fmt;
use std::net::IpAddr;

use slup_core::diag::time::{DateTime, Zone};
use slup_core::types::Timestamp;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

/// One certificate of a presented chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// Subject distinguished name, `CN=…, O=…`.
    pub subject: String,
    /// Issuer distinguished name.
    pub issuer: String,
    /// DNS names and IP addresses of the subjectAltName extension.
    pub names: Vec<String>,
    /// Start of validity, Unix seconds.
    pub not_before: i64,
    /// End of validity, Unix seconds.
    pub not_after: i64,
    /// A CA certificate (basicConstraints CA:true).
    pub is_ca: bool,
}

impl CertSummary {
    /// Reads a DER certificate; `None` when it does not parse.
    pub fn from_der(der: &[u8]) -> Option<CertSummary> {
        let (_, cert) = X509Certificate::from_der(der).ok()?;
        let mut names = Vec::new();
        if let Ok(Some(san)) = cert.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    GeneralName::DNSName(d) => names.push((*d).to_string()),
                    GeneralName::IPAddress(b) => {
                        if let Ok(a) = <[u8; 4]>::try_from(*b) {
                            names.push(IpAddr::from(a).to_string());
                        } else if let Ok(a) = <[u8; 16]>::try_from(*b) {
                            names.push(IpAddr::from(a).to_string());
                        }
                    }
                    _ => {}
                }
            }
        }
        Some(CertSummary {
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            names,
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
            is_ca: cert.is_ca(),
        })
    }

    /// `true` when subject and issuer are the same name (a root, or a lone self-signed
    /// certificate).
    pub fn self_issued(&self) -> bool {
        self.subject == self.issuer
    }

    /// Where `now` (Unix seconds) stands against the validity period.
    pub fn validity_at(&self, now: i64) -> &'static str {
        if now < self.not_before {
            "NOT YET VALID"
        } else if now > self.not_after {
            "EXPIRED"
        } else {
            "valid now"
        }
    }
}

/// A Unix time in seconds as `Jan 01 00:00:00 2030 UTC`; dates before 1970 show as such.
pub fn date(secs: i64) -> String {
    match u64::try_from(secs) {
        Ok(s) => DateTime {
            ts: Timestamp(s.saturating_mul(1000)),
            zone: Zone::UTC,
        }
        .to_string(),
        Err(_) => format!("{secs} s before 1970"),
    }
}

impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subject {}", self.subject)?;
        if self.self_issued() {
            write!(f, " (self-signed)")?;
        } else {
            write!(f, "; issuer {}", self.issuer)?;
        }
        if !self.names.is_empty() {
            write!(f, "; names {}", self.names.join(", "))?;
        }
        if self.is_ca {
            write!(f, "; CA")?;
        }
        write!(
            f,
            "; valid {} to {}",
            date(self.not_before),
            date(self.not_after)
        )
    }
}

/// Unix seconds now.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
