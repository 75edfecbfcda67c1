//! HTTPS with rustls (ring provider). The server is always verified: against the CA
//! certificates configured for the service, or the public web roots when none are. There is
//! no switch to skip verification.

use std::sync::Arc;

use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName};
use rustls::{CertificateError, ClientConfig, RootCertStore};
use slup_core::Code;

use crate::error::HostError;

/// Which certificate authorities may vouch for the service.
#[derive(Clone, Debug, Default)]
pub enum Roots {
    /// The public web PKI (Mozilla's roots, from `webpki-roots`): for the cloud service.
    #[default]
    WebPki,
    /// Exactly these CA certificates: an on-prem service, a CSLU over HTTPS, a lab.
    Certificates(Vec<CertificateDer<'static>>),
}

impl Roots {
    /// CA certificates from PEM text (one or more `CERTIFICATE` blocks) or one DER certificate.
    pub fn from_pem_or_der(bytes: &[u8]) -> Result<Roots, HostError> {
        let bad = |why: String| HostError::new(Code::InvalidArgument, format!("CA file: {why}"));
        if bytes.starts_with(b"-----BEGIN") || bytes.iter().take(64).all(u8::is_ascii) {
            let certs = CertificateDer::pem_slice_iter(bytes)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| bad(e.to_string()))?;
            if certs.is_empty() {
                return Err(bad("no CERTIFICATE block".into()));
            }
            return Ok(Roots::Certificates(certs));
        }
        Ok(Roots::Certificates(vec![CertificateDer::from(
            bytes.to_vec(),
        )]))
    }

    /// The rustls client configuration for these roots.
    pub fn client_config(&self) -> Result<Arc<ClientConfig>, HostError> {
        let mut store = RootCertStore::empty();
        match self {
            Roots::WebPki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::Certificates(certs) => {
                for c in certs {
                    store.add(c.clone()).map_err(|e| {
                        HostError::new(Code::InvalidArgument, format!("CA certificate: {e}"))
                    })?;
                }
            }
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HostError::new(Code::TlsHandshake, e.to_string()))?
            .with_root_certificates(store)
            .with_no_client_auth();
        Ok(Arc::new(config))
    }
}

/// The name the certificate must carry: the URL's host (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, HostError> {
    ServerName::try_from(host.to_string()).map_err(|_| {
        HostError::new(
            Code::InvalidArgument,
            format!("{host:?} is not a host name for TLS"),
        )
    })
}

/// The stable code for a TLS failure.
pub fn classify(e: &rustls::Error) -> HostError {
    let code = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => Code::TlsUnknownCa,
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                Code::TlsHostMismatch
            }
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. } => Code::TlsCertExpired,
            _ => Code::TlsHandshake,
        },
        _ => Code::TlsHandshake,
    };
    HostError::new(code, format!("TLS: {e}"))
}
