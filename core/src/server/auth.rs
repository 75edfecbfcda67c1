//! Authenticating a request signed with a bound device key (every type but `ID_TOKEN_TRUST`).
//!
//! The unit is found by the header's UDI, not by the signature's key id: key ids are 32 bits of
//! a hash, so anyone can grind a key whose id collides with a victim's, while a UDI names at
//! most one live unit. The signature must then name and verify with that unit's key.

use super::reply::Refusal;
use super::store::{InstanceRecord, PiId, ServiceStore};
use crate::error::Code;
use crate::msg::request::SignedRequest;
use crate::types::Udi;

/// A unit whose request verified with its bound device key.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its product instance.
    pub pi: PiId,
    /// The instance as stored.
    pub record: InstanceRecord,
}

/// The wording CSSM uses for an identity it no longer (or never) knew.
fn identity_invalid(http_status: u16, req: &SignedRequest<'_>) -> Refusal {
    let h = &req.request.header;
    match h.product_instance_identifier.uuid() {
        Some(pii) => Refusal::new(
            http_status,
            Code::NotTrusted,
            format_args!(
                "The identity for the instance {pii} is not valid. Please re-register the instance."
            ),
        ),
        None => Refusal::new(
            http_status,
            Code::NotTrusted,
            format_args!(
                "The identity for the instance {} is not valid. Please re-register the instance.",
                h.sudi
            ),
        ),
    }
}

fn storage(code: Code) -> Refusal {
    Refusal::new(503, code, format_args!("service storage failed: {code}"))
}

/// Checks `req` against the key bound to its header's UDI, then that the instance is live and
/// that the header names it and its current trust code.
// Without a heap there is nothing to box into; a refusal is built at most once per request.
#[allow(clippy::result_large_err)]
pub fn authenticate<St: ServiceStore>(
    store: &St,
    req: &SignedRequest<'_>,
) -> Result<Caller, Refusal> {
    let h = &req.request.header;
    let udi: &Udi<'_> = &h.sudi;
    let Some(pi) = store.instance_by_udi(udi).map_err(storage)? else {
        return Err(identity_invalid(401, req));
    };
    let Some(record) = store.instance(pi).map_err(storage)? else {
        return Err(identity_invalid(401, req));
    };
    let Some(member) = record.member(udi) else {
        return Err(identity_invalid(401, req));
    };
    if let Err(code) = req.verify(&member.public_key) {
        return Err(match code {
            Code::KeyIdMismatch => Refusal::new(
                401,
                code,
                format_args!(
                    "request signed with key {}, not the device key {} bound to {udi}",
                    req.signed.signature.key,
                    member.public_key.key_id()
                ),
            ),
            _ => Refusal::new(
                401,
                code,
                format_args!("request signature of {udi} does not verify: {code}"),
            ),
        });
    }
    // Only an authenticated caller learns that its instance was removed.
    if record.removed {
        return Err(identity_invalid(403, req));
    }
    let named = h.product_instance_identifier.uuid();
    if named.map(|u| u.as_str()) != Some(record.uuid.as_str()) {
        return Err(identity_invalid(401, req));
    }
    if h.signing_cert_serial_number.0 != Some(member.trust_id) {
        return Err(Refusal::new(
            401,
            Code::NotTrusted,
            format_args!(
                "signing_cert_serial_number is not the current trust code {} of {udi}; establish trust again",
                member.trust_id
            ),
        ));
    }
    Ok(Caller { pi, record })
}
