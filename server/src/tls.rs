//! TLS for the HTTPS listener: rustls with the `ring` provider, and the certificates — a CA and
//! a server certificate for `localhost` and `127.0.0.1` generated at start, or PEM files.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::Error;

/// Where the HTTPS certificate comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsSource {
    /// A CA and a server certificate for `localhost`, `127.0.0.1` and `::1`, generated at
    /// start; the CA is [`crate::Running::ca_cert_der`].
    Generate,
    /// Test switch: like `Generate`, but the server certificate is signed by a second,
    /// foreign CA; [`crate::Running::ca_cert_der`] still gives the first one, so a client that
    /// trusts it sees an unknown CA (the seed's TLS-intercepting firewall).
    ForeignCa,
    /// PEM files: the certificate chain (server first) and its private key.
    Pem {
        /// Certificate chain file.
        cert: PathBuf,
        /// Private key file (PKCS#8, PKCS#1 or SEC1).
        key: PathBuf,
    },
}

/// A server TLS configuration and the CA clients should trust (when generated).
pub struct Tls {
    /// The rustls configuration.
    pub config: Arc<ServerConfig>,
    /// The CA certificate clients should trust, DER (`None` for PEM files).
    pub ca_der: Option<Vec<u8>>,
    /// The same, PEM.
    pub ca_pem: Option<String>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("ca_der", &self.ca_der.as_ref().map(Vec::len))
            .finish_non_exhaustive()
    }
}

fn tls_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::other(format!("TLS set-up: {what}: {e}"))
}

/// A self-signed CA named `name`.
fn make_ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, Error> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| tls_err("CA", e))?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, "slup");
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().map_err(|e| tls_err("CA key", e))?;
    CertifiedIssuer::self_signed(params, key).map_err(|e| tls_err("CA certificate", e))
}

/// A server certificate for the loopback names, signed by `ca`: (chain, key).
fn make_leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), Error> {
    let mut params =
        CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| tls_err("server", e))?;
    params.subject_alt_names.extend([
        SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)),
        SanType::IpAddress(IpAddr::V6(Ipv6Addr::LOCALHOST)),
    ]);
    params
        .distinguished_name
        .push(DnType::CommonName, "slup-server localhost");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().map_err(|e| tls_err("server key", e))?;
    let cert = params
        .signed_by(&key, ca)
        .map_err(|e| tls_err("server certificate", e))?;
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    Ok((vec![cert.der().clone(), ca.der().clone()], key_der))
}

fn server_config(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<ServerConfig>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err("protocol versions", e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls_err("certificate", e))?;
    Ok(Arc::new(config))
}

/// Builds the TLS configuration for `source`.
pub fn load(source: &TlsSource) -> Result<Tls, Error> {
    match source {
        TlsSource::Generate | TlsSource::ForeignCa => {
            let ca = make_ca("slup-server test CA")?;
            let (chain, key) = if *source == TlsSource::ForeignCa {
                make_leaf(&make_ca("slup-server foreign CA")?)?
            } else {
                make_leaf(&ca)?
            };
            Ok(Tls {
                config: server_config(chain, key)?,
                ca_der: Some(ca.der().to_vec()),
                ca_pem: Some(ca.pem()),
            })
        }
        TlsSource::Pem { cert, key } => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| tls_err(&cert.display().to_string(), e))?;
            if chain.is_empty() {
                return Err(tls_err(&cert.display().to_string(), "no certificate"));
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| tls_err(&key.display().to_string(), e))?;
            Ok(Tls {
                config: server_config(chain, key)?,
                ca_der: None,
                ca_pem: None,
            })
        }
    }
}
