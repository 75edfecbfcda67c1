//! HTTPS with rustls (ring provider). The server is always verified: against the CA
//! certificates configured for the service, or the public web roots when none are. There is
//! no switch to skip verification.
//!
//! The verifier also keeps the chain the server presented ([`Presented`]), verified or not,
//! so that a refusal can say whose certificate it was: a firewall's CA in place of the
//! service's is the seed's TLS interception.

use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{pem::PemObject, CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use slup_core::Code;

use crate::cert::CertSummary;
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
        self.recording_config().map(|(c, _)| c)
    }

    /// The rustls client configuration for these roots, and where its verifier keeps the
    /// chain each server presents.
    pub fn recording_config(&self) -> Result<(Arc<ClientConfig>, Presented), HostError> {
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
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(store), provider.clone())
            .build()
            .map_err(|e| HostError::new(Code::InvalidArgument, format!("CA certificates: {e}")))?;
        let presented = Presented::default();
        let verifier = Arc::new(Recording {
            inner,
            presented: presented.clone(),
        });
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| HostError::new(Code::TlsHandshake, e.to_string()))?
            // rustls calls every custom verifier "dangerous"; this one hands each verdict to
            // WebPkiServerVerifier unchanged and only notes the chain first.
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok((Arc::new(config), presented))
    }
}

/// The chain the last server presented (server certificate first), whether or not it was
/// accepted.
#[derive(Clone, Debug, Default)]
pub struct Presented(Arc<Mutex<Vec<CertificateDer<'static>>>>);

impl Presented {
    /// The chain, as presented.
    pub fn chain(&self) -> Vec<CertificateDer<'static>> {
        self.0.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Forgets it (before a new handshake).
    pub fn clear(&self) {
        if let Ok(mut c) = self.0.lock() {
            c.clear();
        }
    }

    /// One summary per certificate that parses.
    pub fn summaries(&self) -> Vec<CertSummary> {
        self.chain()
            .iter()
            .filter_map(|c| CertSummary::from_der(c.as_ref()))
            .collect()
    }
}

/// rustls' own WebPKI verification, noting what was presented first. It changes no verdict.
#[derive(Debug)]
struct Recording {
    inner: Arc<WebPkiServerVerifier>,
    presented: Presented,
}

impl ServerCertVerifier for Recording {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Ok(mut c) = self.presented.0.lock() {
            c.clear();
            c.push(end_entity.clone().into_owned());
            c.extend(intermediates.iter().map(|i| i.clone().into_owned()));
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
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

/// Rewrites the detail of a certificate failure (`TlsUnknownCa`, `TlsHostMismatch`,
/// `TlsCertExpired`) to say whose certificate it was, most telling part first: the untrusted
/// issuer, the names the certificate holds, or its end of validity.
pub fn explain(mut err: HostError, host: &str, chain: &[CertSummary]) -> HostError {
    let Some(leaf) = chain.first() else {
        return err;
    };
    let top = chain.last().unwrap_or(leaf);
    err.detail = match err.code {
        Code::TlsUnknownCa => format!(
            "issuer {} is not a trusted CA; {host} presented {} ({})",
            top.issuer, leaf.subject, err.detail
        ),
        Code::TlsHostMismatch => format!(
            "the certificate names {}, not {host} (subject {}; {})",
            if leaf.names.is_empty() {
                "no host".to_string()
            } else {
                leaf.names.join(", ")
            },
            leaf.subject,
            err.detail
        ),
        Code::TlsCertExpired => {
            let now = crate::cert::unix_now();
            let bad = chain
                .iter()
                .find(|c| c.validity_at(now) != "valid now")
                .unwrap_or(leaf);
            format!(
                "{} is valid {} to {}, {}; check the clock ({})",
                bad.subject,
                crate::cert::date(bad.not_before),
                crate::cert::date(bad.not_after),
                bad.validity_at(now),
                err.detail
            )
        }
        _ => return err,
    };
    err
}
