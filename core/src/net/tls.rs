//! HTTPS on the device: `embedded-tls` (TLS 1.3, no heap) with the server's identity always
//! checked against the configured root and host name (feature `tls`).
//!
//! Certificate failures are told apart, because the seed's troubleshooting turns on them: a
//! firewall intercepting TLS presents a chain from *its* CA ([`Code::TlsUnknownCa`]), a service
//! reached under another name presents a certificate for that name
//! ([`Code::TlsHostMismatch`]), and a device with a wrong clock or a service with a stale
//! certificate gives [`Code::TlsCertExpired`]. Anything that weakens a check is named
//! `danger_…` and is off by default.
//!
//! Certificate validity needs wall-clock time, which `embedded-tls` reads through a static
//! function: the driver sets it with [`set_wall_clock`] (Unix seconds) before connecting. Until
//! it is set, validity dates are not checked (a device without a clock at boot can still reach
//! its service; the chain and the host name are always checked).

use core::sync::atomic::{AtomicU32, Ordering};

use embedded_io::{Read, Write};
use embedded_tls::blocking::{
    Aes128GcmSha256, Certificate, CertificateEntryRef, CertificateRef, CertificateVerifyRef,
    CryptoProvider, TlsClock, TlsConfig, TlsConnection, TlsContext, TlsError, TlsVerifier,
};
use embedded_tls::pki::CertVerifier;
use embedded_tls::SignatureScheme;
use rand_core::{CryptoRng, CryptoRngCore, RngCore};

use super::http::Response;
use super::io::{io_code, post};
use crate::crypto::Signer;
use crate::error::Code;

/// Size of the buffer that keeps the server's certificate message for the signature check.
pub const CERT_BYTES: usize = 4096;
/// A TLS record read buffer that fits any record a server may send (16 KiB + overhead).
pub const RECORD_READ_BYTES: usize = 16_640;

type Suite = Aes128GcmSha256;

static WALL_CLOCK_S: AtomicU32 = AtomicU32::new(0);

/// Sets the time used to check certificate validity (Unix seconds; 0 = unknown).
pub fn set_wall_clock(unix_s: u32) {
    WALL_CLOCK_S.store(unix_s, Ordering::Relaxed);
}

struct WallClock;

impl TlsClock for WallClock {
    fn now() -> Option<u64> {
        match WALL_CLOCK_S.load(Ordering::Relaxed) {
            0 => None,
            s => Some(u64::from(s)),
        }
    }
}

/// Validity dates never checked: used only to tell an expired certificate from other faults.
struct NoClock;

impl TlsClock for NoClock {
    fn now() -> Option<u64> {
        None
    }
}

/// The device's own TLS identity (the seed's trustpoint): a certificate and the key it names.
/// The key is any [`Signer`], so a secure element's key serves as well as a software one.
#[derive(Clone, Copy)]
pub struct ClientIdentity<'a> {
    /// The device certificate, DER.
    pub cert_der: &'a [u8],
    /// Its P-256 key.
    pub key: &'a dyn Signer,
}

impl core::fmt::Debug for ClientIdentity<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_der", &self.cert_der.len())
            .field("key", &self.key.public_key().key_id())
            .finish()
    }
}

/// How to check the server, and how to show who the device is.
#[derive(Clone, Copy, Debug)]
pub struct TlsSettings<'a> {
    /// The host name the certificate must carry (DNS name; also sent as SNI).
    pub server_name: &'a str,
    /// The root the server's chain must lead to, DER.
    pub ca_der: &'a [u8],
    /// Accept any certificate: for an on-prem service whose certificate cannot be checked
    /// (the seed's `revocation-check none` situation, taken further). Never on by default;
    /// the exchange is then encrypted but not authenticated.
    pub danger_accept_any_certificate: bool,
    /// A client certificate for services that ask for one; `None` sends none.
    pub client: Option<ClientIdentity<'a>>,
}

/// Checks the chain, then says precisely why it failed.
struct Verifier<'a> {
    settings: TlsSettings<'a>,
    inner: CertVerifier<'a, Suite, WallClock, CERT_BYTES>,
    failure: Option<Code>,
}

fn copy<'c>(cert: &CertificateRef<'c>) -> CertificateRef<'c> {
    let mut c = CertificateRef::with_context(&[]);
    for e in cert.entries.iter() {
        let entry = match e {
            CertificateEntryRef::X509(d) => CertificateEntryRef::X509(d),
            CertificateEntryRef::RawPublicKey(d) => CertificateEntryRef::RawPublicKey(d),
        };
        let _ = c.add(entry);
    }
    c
}

impl Verifier<'_> {
    /// Why the check failed: a chain that does not lead to the configured root is an unknown
    /// CA (checked here, signature by signature, since `embedded-tls` reports every failure
    /// alike); with the chain right, passing without the clock means the dates were at fault;
    /// otherwise the host name.
    fn diagnose(
        &self,
        transcript: &<Suite as embedded_tls::blocking::TlsCipherSuite>::Hash,
        cert: CertificateRef<'_>,
    ) -> Code {
        if !chain_leads_to(self.settings.ca_der, &cert) {
            return Code::TlsUnknownCa;
        }
        let mut v: CertVerifier<'_, Suite, NoClock, CERT_BYTES> =
            CertVerifier::new(Certificate::X509(self.settings.ca_der));
        if v.set_hostname_verification(self.settings.server_name)
            .is_err()
        {
            return Code::TlsHostMismatch;
        }
        match v.verify_certificate(transcript, cert) {
            Ok(()) => Code::TlsCertExpired,
            Err(_) => Code::TlsHostMismatch,
        }
    }
}

/// `true` if every certificate of the chain, from the last to the leaf, is signed by the one
/// before it, starting from `root` (the order `embedded-tls` checks in).
fn chain_leads_to(root: &[u8], cert: &CertificateRef<'_>) -> bool {
    let mut issuer = root;
    for entry in cert.entries.iter().rev() {
        let CertificateEntryRef::X509(der) = entry else {
            return false;
        };
        if !der::signed_by(der, issuer) {
            return false;
        }
        issuer = der;
    }
    !cert.entries.is_empty()
}

/// Just enough DER to check one X.509 signature (ECDSA P-256 with SHA-256, the only kind the
/// device's TLS accepts).
mod der {
    use p256::ecdsa::signature::Verifier as _;
    use p256::ecdsa::{Signature, VerifyingKey};

    const SEQUENCE: u8 = 0x30;
    const BIT_STRING: u8 = 0x03;

    /// One DER element and what follows it.
    struct Element<'a> {
        tag: u8,
        content: &'a [u8],
        /// Header and content: the bytes a signature covers.
        whole: &'a [u8],
        rest: &'a [u8],
    }

    fn element(input: &[u8]) -> Option<Element<'_>> {
        let (&tag, rest) = input.split_first()?;
        let (&first, mut rest) = rest.split_first()?;
        let len = if first < 0x80 {
            usize::from(first)
        } else {
            let n = usize::from(first & 0x7f);
            if n == 0 || n > 3 {
                return None;
            }
            let (bytes, tail) = rest.split_at_checked(n)?;
            rest = tail;
            bytes
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b))
        };
        let header = input.len() - rest.len();
        let (content, rest) = rest.split_at_checked(len)?;
        let whole = input.get(..header + len)?;
        Some(Element {
            tag,
            content,
            whole,
            rest,
        })
    }

    /// `(to-be-signed bytes, to-be-signed content, signature value)` of a certificate.
    fn parts(cert: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
        let outer = element(cert).filter(|e| e.tag == SEQUENCE)?;
        let tbs = element(outer.content)?;
        let algorithm = element(tbs.rest)?;
        let sig = element(algorithm.rest).filter(|e| e.tag == BIT_STRING)?;
        // A BIT STRING starts with its count of unused bits: 0 for a signature.
        let (&0, value) = sig.content.split_first()? else {
            return None;
        };
        Some((tbs.whole, tbs.content, value))
    }

    /// The subject public key of a certificate (SEC1 bytes).
    fn public_key(cert: &[u8]) -> Option<&[u8]> {
        let (_, tbs, _) = parts(cert)?;
        let mut rest = tbs;
        // [0] version is optional; then serial, signature, issuer, validity, subject.
        if rest.first() == Some(&0xa0) {
            rest = element(rest)?.rest;
        }
        for _ in 0..5 {
            rest = element(rest)?.rest;
        }
        let spki = element(rest)?;
        let algorithm = element(spki.content)?;
        let key = element(algorithm.rest).filter(|e| e.tag == BIT_STRING)?;
        key.content
            .split_first()
            .filter(|(unused, _)| **unused == 0)
            .map(|(_, k)| k)
    }

    /// `true` if `cert` carries a valid signature by `issuer`'s key.
    pub(super) fn signed_by(cert: &[u8], issuer: &[u8]) -> bool {
        let (Some((tbs, _, sig)), Some(key)) = (parts(cert), public_key(issuer)) else {
            return false;
        };
        let (Ok(key), Ok(sig)) = (VerifyingKey::from_sec1_bytes(key), Signature::from_der(sig))
        else {
            return false;
        };
        key.verify(tbs, &sig).is_ok()
    }
}

impl TlsVerifier<Suite> for Verifier<'_> {
    fn set_hostname_verification(&mut self, hostname: &str) -> Result<(), TlsError> {
        self.inner.set_hostname_verification(hostname)
    }

    fn verify_certificate(
        &mut self,
        transcript: &<Suite as embedded_tls::blocking::TlsCipherSuite>::Hash,
        cert: CertificateRef<'_>,
    ) -> Result<(), TlsError> {
        if self.settings.danger_accept_any_certificate {
            return Ok(());
        }
        let spare = copy(&cert);
        let result = self.inner.verify_certificate(transcript, cert);
        if result.is_err() {
            self.failure = Some(self.diagnose(transcript, spare));
        }
        result
    }

    fn verify_signature(&mut self, verify: CertificateVerifyRef<'_>) -> Result<(), TlsError> {
        if self.settings.danger_accept_any_certificate {
            return Ok(());
        }
        let result = self.inner.verify_signature(verify);
        if result.is_err() {
            // The server does not hold the key of the certificate it showed.
            self.failure = Some(Code::TlsHandshake);
        }
        result
    }
}

struct Provider<'a, R> {
    rng: R,
    verifier: Verifier<'a>,
}

impl<R: RngCore + CryptoRng> CryptoProvider for Provider<'_, R> {
    type CipherSuite = Suite;
    type Signature = p256::ecdsa::DerSignature;

    fn rng(&mut self) -> impl CryptoRngCore {
        &mut self.rng
    }

    fn verifier(&mut self) -> Result<&mut impl TlsVerifier<Suite>, TlsError> {
        Ok(&mut self.verifier)
    }

    fn signer(
        &mut self,
    ) -> Result<(impl signature::SignerMut<Self::Signature>, SignatureScheme), TlsError> {
        match self.verifier.settings.client {
            Some(id) => Ok((ClientSigner(id.key), SignatureScheme::EcdsaSecp256r1Sha256)),
            None => Err(TlsError::Unimplemented),
        }
    }

    fn client_cert(&mut self) -> Option<Certificate<impl AsRef<[u8]>>> {
        self.verifier
            .settings
            .client
            .map(|id| Certificate::X509(id.cert_der))
    }
}

/// Signs the client's `CertificateVerify` with the device key.
struct ClientSigner<'a>(&'a dyn Signer);

impl signature::SignerMut<p256::ecdsa::DerSignature> for ClientSigner<'_> {
    fn try_sign(&mut self, msg: &[u8]) -> Result<p256::ecdsa::DerSignature, signature::Error> {
        // embedded-tls calls the infallible `sign`, which would panic on an error: a key that
        // cannot sign gives a well-formed signature that the server refuses instead.
        let signed = self
            .0
            .sign_digest(&crate::crypto::sha256(msg))
            .ok()
            .and_then(|raw| p256::ecdsa::Signature::from_slice(&raw.0).ok());
        match signed {
            Some(sig) => Ok(sig.to_der()),
            None => p256::ecdsa::DerSignature::try_from(&UNUSABLE_SIGNATURE[..]),
        }
    }
}

/// DER of (r, s) = (1, 1): valid encoding, never a valid signature.
const UNUSABLE_SIGNATURE: [u8; 8] = [0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x01];

/// The stable code for a TLS failure, when the verifier did not name a precise one.
fn tls_code(e: TlsError) -> Code {
    match e {
        TlsError::Io(kind) => io_code(kind, false),
        TlsError::ConnectionClosed => Code::ConnectionReset,
        _ => Code::TlsHandshake,
    }
}

/// Buffers for one TLS session (the driver's RAM, not the engine's).
pub struct TlsBuffers<'b> {
    /// Encrypted records coming in: [`RECORD_READ_BYTES`] fits anything.
    pub read: &'b mut [u8],
    /// Encrypted records going out (the handshake must fit; 4 KiB is plenty).
    pub write: &'b mut [u8],
}

/// Opens TLS on `socket` (already connected, or a proxy tunnel), checks the server, sends
/// `POST target` with `body` and reads the answer into `response`.
#[allow(clippy::too_many_arguments)]
pub fn post_tls<S: Read + Write, R: RngCore + CryptoRng>(
    socket: S,
    settings: TlsSettings<'_>,
    rng: R,
    buffers: TlsBuffers<'_>,
    host_header: &str,
    target: &str,
    body: &[u8],
    response: &mut [u8],
) -> Result<Response, Code> {
    let config = TlsConfig::new().with_server_name(settings.server_name);
    let mut provider = Provider {
        rng,
        verifier: Verifier {
            settings,
            inner: CertVerifier::new(Certificate::X509(settings.ca_der)),
            failure: None,
        },
    };
    let mut tls: TlsConnection<'_, S, Suite> =
        TlsConnection::new(socket, buffers.read, buffers.write);
    if let Err(e) = tls.open(TlsContext::new(&config, &mut provider)) {
        return Err(provider.verifier.failure.unwrap_or(tls_code(e)));
    }
    post(&mut tls, host_header, target, &[], body, response)
}
