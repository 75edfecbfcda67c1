//! Trust: the `ID_TOKEN_TRUST` request's members and the signed trust codes the service
//! returns, one per HA unit.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{PublicKey, Signer, PUBLIC_KEY_B64_LEN};
use crate::envelope::{write_signed, Layout, Signed};
use crate::error::{Code, DecodeError, Error};
use crate::json::Node;
use crate::msg::{shaped, Shape, Writer, MAX_HA_MEMBERS};
use crate::types::{IdToken, Role, Scope, Text, Timestamp, TrustId, Udi, Uuid};

/// A P-256 public key as a JSON string: base64 of the 65-byte SEC1 point, checked to be on the
/// curve when decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicKeyB64(pub PublicKey);

impl Serialize for PublicKeyB64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; PUBLIC_KEY_B64_LEN];
        s.serialize_str(self.0.to_base64(&mut buf))
    }
}

impl<'de> Deserialize<'de> for PublicKeyB64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        PublicKey::from_base64(s)
            .map(PublicKeyB64)
            .map_err(|_| serde::de::Error::custom("public key"))
    }
}

/// One HA unit in an `ID_TOKEN_TRUST` request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustMember<'a> {
    /// The unit's role.
    pub role: Role,
    /// The unit's UDI.
    #[serde(borrow)]
    pub sudi: Udi<'a>,
    /// The unit's new device key.
    pub public_key: PublicKeyB64,
}

/// `request_data` of `ID_TOKEN_TRUST`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustRequest<'a> {
    /// The ID token minted by the service.
    #[serde(borrow)]
    pub id_token: IdToken<'a>,
    /// `local` (active unit only) or `all`.
    pub scope: Scope,
    /// Replace trust already installed.
    pub force: bool,
    /// One entry per unit covered; the active unit first.
    #[serde(borrow)]
    pub members: heapless::Vec<TrustMember<'a>, MAX_HA_MEMBERS>,
}

impl TrustRequest<'_> {
    /// Rules types cannot express: at least one member, the active unit first, no unit twice,
    /// and `local` covering exactly the active unit.
    pub fn check(&self) -> Result<(), Code> {
        let first = self.members.first().ok_or(Code::InvalidValue)?;
        if first.role != Role::Active || self.members.iter().skip(1).any(|m| m.role == Role::Active)
        {
            return Err(Code::InvalidValue);
        }
        if self.scope == Scope::Local && self.members.len() != 1 {
            return Err(Code::InvalidValue);
        }
        for (i, m) in self.members.iter().enumerate() {
            if self.members.iter().skip(i + 1).any(|o| o.sudi == m.sudi) {
                return Err(Code::InvalidValue);
            }
        }
        Ok(())
    }
}

pub(crate) const TRUST_REQUEST_SHAPE: Shape = Shape {
    context: "request_data(ID_TOKEN_TRUST)",
    fields: &["id_token", "scope", "force", "members"],
    required: &["id_token", "scope", "force", "members"],
    strict: true,
};

/// The signed payload of a trust code.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustCodePayload<'a> {
    /// The trust id; the device sends it as `signing_cert_serial_number` afterwards.
    pub trust_id: TrustId,
    /// The product instance the service assigned.
    #[serde(borrow)]
    pub product_instance_identifier: Uuid<'a>,
    /// The unit this code is for.
    #[serde(borrow)]
    pub sudi: Udi<'a>,
    /// The device key the service bound to the unit.
    pub public_key: PublicKeyB64,
    /// When the service issued the code, Unix ms.
    pub issued_at: Timestamp,
    /// Smart account name.
    #[serde(borrow)]
    pub smart_account: Text<'a>,
    /// Virtual account name.
    #[serde(borrow)]
    pub virtual_account: Text<'a>,
}

const PAYLOAD_SHAPE: Shape = Shape {
    context: "trust_code.payload",
    fields: &[
        "trust_id",
        "product_instance_identifier",
        "sudi",
        "public_key",
        "issued_at",
        "smart_account",
        "virtual_account",
    ],
    required: &[
        "trust_id",
        "product_instance_identifier",
        "sudi",
        "public_key",
        "issued_at",
        "smart_account",
        "virtual_account",
    ],
    strict: true,
};

/// A signed trust code as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustCode<'a> {
    /// The decoded payload.
    pub payload: TrustCodePayload<'a>,
    /// The exact payload bytes and the service's signature.
    pub signed: Signed<'a>,
}

impl<'a> TrustCode<'a> {
    /// Decodes a standalone trust code.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_node(&crate::msg::root(bytes, "trust_code")?)
    }

    /// Decodes a trust code node (an element of `trust_codes`).
    pub fn decode_node(node: &Node<'a>) -> Result<Self, DecodeError> {
        let signed = Signed::split(node, "payload", "trust_code")?;
        let payload = shaped(&signed.body, &PAYLOAD_SHAPE)?;
        Ok(TrustCode { payload, signed })
    }
}

/// Encodes and signs a trust code with the service key. Returns the length written.
pub fn encode_trust_code(
    buf: &mut [u8],
    payload: &TrustCodePayload<'_>,
    signer: &impl Signer,
) -> Result<usize, Error> {
    let mut w = Writer::new(buf);
    write_signed(&mut w, "payload", Layout::MemberFirst, signer, |w| {
        w.json(payload, "trust_code.payload").map(|_| ())
    })?;
    Ok(w.len())
}
