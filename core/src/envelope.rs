//! Signed objects: `{"<member>":{…},"signature":{…}}`.
//!
//! The signing rule of WIRE.md: the signature covers the *exact bytes* of the member's value as
//! they appear in the message, from its `{` to its matching `}`. Receivers locate that span with
//! the scanner ([`Signed::split`]) and verify it; nobody re-serialises. Producers serialise the
//! member once, sign those bytes, and write the signature beside them ([`write_signed`]).
//!
//! Three member names are signed this way: `request` (device → service), `response` (service →
//! device, whose envelope puts `signature` first), and `payload` (RUM reports and trust codes).

use crate::crypto::{self, KeyId, Signer, Verifier};
use crate::error::{Code, DecodeError, EncodeError, Error};
use crate::json::{Kind, Node};
use crate::msg::{SignatureObj, Writer};

/// A signed object as received: the exact span of the signed member and its signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Signed<'a> {
    /// The signed member's value, exactly as received.
    pub body: Node<'a>,
    /// The signature beside it.
    pub signature: SignatureObj,
}

impl<'a> Signed<'a> {
    /// Splits an object that must hold exactly `member` and `signature`, in any order.
    pub fn split(
        node: &Node<'a>,
        member: &'static str,
        context: &'static str,
    ) -> Result<Self, DecodeError> {
        node.expect(Kind::Object, context)?;
        node.only_members(&[member, "signature"], context)?;
        let body = node.required(member, context)?;
        body.expect(Kind::Object, context)?;
        let signature = SignatureObj::decode(&node.required("signature", context)?)?;
        Ok(Signed { body, signature })
    }

    /// Verifies the signature over the exact body bytes with `verifier`, after checking that
    /// the signature names the verifier's key.
    pub fn verify(&self, verifier: &impl Verifier) -> Result<(), Code> {
        if self.signature.key != verifier.key_id() {
            return Err(Code::KeyIdMismatch);
        }
        crypto::verify(verifier, self.body.bytes, &self.signature.value)
    }
}

/// Which side's envelope layout to write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// `{"<member>":…,"signature":{type,key,value}}` — requests, RUM reports, trust codes.
    MemberFirst,
    /// `{"signature":{type,key,value,pid,cert_sn},"<member>":…}` — service responses.
    SignatureFirst,
}

/// Writes a signed object: `body` writes the member's value, which is then signed exactly as
/// written. Returns the range of the signed bytes inside the writer.
pub fn write_signed(
    w: &mut Writer<'_>,
    member: &str,
    layout: Layout,
    signer: &impl Signer,
    body: impl FnOnce(&mut Writer<'_>) -> Result<(), EncodeError>,
) -> Result<core::ops::Range<usize>, Error> {
    const CTX: &str = "signed envelope";
    let key: KeyId = signer.public_key().key_id();
    let service_form = layout == Layout::SignatureFirst;
    let sig_len = SignatureObj::encoded_len(key, service_form);
    let sig_at;
    w.raw(b"{\"", CTX)?;
    match layout {
        Layout::MemberFirst => {
            w.raw(member.as_bytes(), CTX)?;
            w.raw(b"\":", CTX)?;
            sig_at = None;
        }
        Layout::SignatureFirst => {
            w.raw(b"signature\":", CTX)?;
            // Reserve the signature's exact length; filled in once the body is signed.
            sig_at = Some(w.len());
            for _ in 0..sig_len {
                w.raw(b" ", CTX)?;
            }
            w.raw(b",\"", CTX)?;
            w.raw(member.as_bytes(), CTX)?;
            w.raw(b"\":", CTX)?;
        }
    }
    let start = w.len();
    body(w)?;
    let signed = start..w.len();
    let value = crypto::sign(signer, w.slice(signed.clone())).map_err(Error::Crypto)?;
    let sig = SignatureObj {
        key,
        value,
        service_form,
    };
    match sig_at {
        None => {
            w.raw(b",\"signature\":", CTX)?;
            sig.encode(w)?;
            w.raw(b"}", CTX)?;
        }
        Some(at) => {
            let mut tmp = [0u8; 192];
            let mut t = Writer::new(&mut tmp);
            sig.encode(&mut t)?;
            if t.len() != sig_len {
                return Err(Error::Encode(EncodeError::buffer(CTX)));
            }
            w.patch(at, t.written(), CTX)?;
            w.raw(b"}", CTX)?;
        }
    }
    Ok(signed)
}
