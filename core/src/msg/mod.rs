//! Codecs for every message of `docs/PROTOCOL.md`.
//!
//! Decoding is zero-copy: decoded values borrow the input. Every decoder validates the whole
//! input with [`crate::json::validate`] first, then checks each object's *shape* (which members
//! it may and must have) with the scanner, then lets serde-json-core fill the typed struct, whose
//! field types are the validated newtypes of [`crate::types`]. Encoding writes compact JSON, keys
//! in the order of WIRE.md, into a caller buffer and returns the length.
//!
//! Strict and tolerant objects: an object that slup produces and someone signs (trust code
//! payload, RUM payload, policy, ACK, `request_data`, envelopes, signature objects) rejects
//! unknown members; an object that devices or services in the field are known to extend
//! (request and response `header`, `connect_info`, RUM measurement `meta`) skips them.

pub mod policy;
pub mod request;
pub mod response;
pub mod rum;
pub mod trust;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{KeyId, RawSignature};
use crate::error::{Code, DecodeError, EncodeError};
use crate::json::{Kind, Node, DEFAULT_LIMITS};
use crate::types::{Ident, Text, Udi};

/// The message version this implementation speaks.
pub const MESSAGE_VERSION: &str = "1.3";
/// Most capabilities carried in one `connect_info`.
pub const MAX_CAPABILITIES: usize = 16;
/// Most HA units (trust request members, RUM `ha_udi`, trust codes per response).
pub const MAX_HA_MEMBERS: usize = 8;

/// Which members an object may and must have, checked on the scanner before typed decoding so
/// each fault gets its precise code.
pub(crate) struct Shape {
    pub context: &'static str,
    pub fields: &'static [&'static str],
    pub required: &'static [&'static str],
    /// Reject members not in `fields`.
    pub strict: bool,
}

impl Shape {
    pub(crate) fn check(&self, node: &Node<'_>) -> Result<(), DecodeError> {
        node.expect(Kind::Object, self.context)?;
        // One pass over the members: each value is skipped once, not once per field.
        let mut seen: u64 = 0;
        for (key, value) in node.members() {
            let Some(i) = self.fields.iter().position(|f| crate::json::key_eq(key, f)) else {
                if self.strict {
                    return Err(value.error(Code::UnknownField, self.context));
                }
                continue;
            };
            let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
            if seen & bit != 0 {
                return Err(value.error(Code::DuplicateField, self.context));
            }
            seen |= bit;
        }
        for (i, f) in self.fields.iter().enumerate() {
            let bit = 1u64.checked_shl(i as u32).unwrap_or(0);
            if seen & bit == 0 && self.required.contains(f) {
                return Err(node.error(Code::MissingField, self.context));
            }
        }
        Ok(())
    }
}

/// Maps serde-json-core's errors onto stable codes.
fn serde_code(e: &serde_json_core::de::Error) -> Code {
    use serde_json_core::de::Error as E;
    match e {
        E::InvalidType => Code::WrongType,
        E::InvalidNumber => Code::NumberOutOfRange,
        E::TrailingCharacters => Code::TrailingBytes,
        E::EscapedStringIsTooLong => Code::StringTooLong,
        E::InvalidUnicodeCodePoint | E::InvalidEscapeSequence => Code::InvalidUtf8,
        E::CustomError => Code::InvalidValue,
        // The input passed the strict validator, so a "syntax" complaint here means the value
        // has a shape serde-json-core cannot read as the field's type, e.g. `1e3` for a u64.
        _ => Code::WrongType,
    }
}

/// Typed decode of a validated node with serde-json-core.
pub(crate) fn typed<'a, T: Deserialize<'a>>(
    node: &Node<'a>,
    context: &'static str,
) -> Result<T, DecodeError> {
    match serde_json_core::from_slice::<T>(node.bytes) {
        Ok((v, used)) if used == node.bytes.len() => Ok(v),
        Ok(_) => Err(node.error(Code::TrailingBytes, context)),
        Err(e) => Err(node.error(serde_code(&e), context)),
    }
}

/// Checks `shape`, then decodes.
pub(crate) fn shaped<'a, T: Deserialize<'a>>(
    node: &Node<'a>,
    shape: &Shape,
) -> Result<T, DecodeError> {
    shape.check(node)?;
    typed(node, shape.context)
}

/// Validates a whole input and returns its root, which must be an object.
pub(crate) fn root<'a>(bytes: &'a [u8], context: &'static str) -> Result<Node<'a>, DecodeError> {
    let node = Node::parse(bytes, &DEFAULT_LIMITS).map_err(|mut e| {
        e.context = context;
        e
    })?;
    node.expect(Kind::Object, context)?;
    Ok(node)
}

/// Writes JSON into a caller buffer.
pub struct Writer<'b> {
    buf: &'b mut [u8],
    pos: usize,
}

impl<'b> Writer<'b> {
    /// A writer at the start of `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.pos
    }

    /// `true` if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.pos == 0
    }

    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        self.buf.get(..self.pos).unwrap_or_default()
    }

    /// Appends raw bytes.
    pub fn raw(&mut self, bytes: &[u8], context: &'static str) -> Result<(), EncodeError> {
        let end = self
            .pos
            .checked_add(bytes.len())
            .ok_or(EncodeError::buffer(context))?;
        self.buf
            .get_mut(self.pos..end)
            .ok_or(EncodeError::buffer(context))?
            .copy_from_slice(bytes);
        self.pos = end;
        Ok(())
    }

    /// Appends `value` as compact JSON; returns the range it occupies.
    pub fn json<T: Serialize + ?Sized>(
        &mut self,
        value: &T,
        context: &'static str,
    ) -> Result<core::ops::Range<usize>, EncodeError> {
        let start = self.pos;
        let rest = self
            .buf
            .get_mut(start..)
            .ok_or(EncodeError::buffer(context))?;
        let n = serde_json_core::to_slice(value, rest).map_err(|_| EncodeError::buffer(context))?;
        self.pos = start.checked_add(n).ok_or(EncodeError::buffer(context))?;
        Ok(start..self.pos)
    }

    /// The bytes in `range`, e.g. a member just written, to sign.
    pub fn slice(&self, range: core::ops::Range<usize>) -> &[u8] {
        self.buf.get(range).unwrap_or_default()
    }

    /// Overwrites `bytes` at `at` (inside what was already written or reserved).
    pub(crate) fn patch(
        &mut self,
        at: usize,
        bytes: &[u8],
        context: &'static str,
    ) -> Result<(), EncodeError> {
        let end = at
            .checked_add(bytes.len())
            .ok_or(EncodeError::buffer(context))?;
        self.buf
            .get_mut(at..end)
            .ok_or(EncodeError::buffer(context))?
            .copy_from_slice(bytes);
        Ok(())
    }
}

/// A `signature` object: `{"type":"SHA256","key":"<key id>","value":"<base64 r‖s>"}`. The
/// service's adds `"pid":null,"cert_sn":null` (the seed's shape).
/// The `type` is always `SHA256` (ECDSA P-256 over SHA-256, r‖s, low-S), so it is not stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SignatureObj {
    /// Key id of the signing key.
    pub key: KeyId,
    /// The signature.
    pub value: RawSignature,
    /// `pid` and `cert_sn` present (as `null`) — the service envelope's form.
    pub service_form: bool,
}

impl SignatureObj {
    pub(crate) const SHAPE: Shape = Shape {
        context: "signature",
        fields: &["type", "key", "value", "pid", "cert_sn"],
        required: &["type", "key", "value"],
        strict: true,
    };

    /// Decodes a signature object node. `type` other than `SHA256` is
    /// [`Code::UnsupportedSignatureType`]; a bad value is [`Code::InvalidBase64`].
    pub fn decode(node: &Node<'_>) -> Result<SignatureObj, DecodeError> {
        let ctx = Self::SHAPE.context;
        Self::SHAPE.check(node)?;
        let kind = node.required("type", ctx)?;
        if kind.raw_str() != Some("SHA256") {
            return Err(kind.error(Code::UnsupportedSignatureType, ctx));
        }
        let value = node.required("value", ctx)?;
        let sig = value
            .raw_str()
            .ok_or(value.error(Code::WrongType, ctx))
            .and_then(|s| RawSignature::from_base64(s).map_err(|c| value.error(c, ctx)))?;
        let key = node.required("key", ctx)?;
        let key_id = key
            .raw_str()
            .ok_or(key.error(Code::WrongType, ctx))
            .and_then(|s| KeyId::parse(s).map_err(|c| key.error(c, ctx)))?;
        let mut service_form = false;
        for extra in ["pid", "cert_sn"] {
            if let Some(v) = node.member(extra, ctx)? {
                // Only `null` is defined for these.
                v.expect(Kind::Null, ctx)?;
                service_form = true;
            }
        }
        Ok(SignatureObj {
            key: key_id,
            value: sig,
            service_form,
        })
    }

    /// Writes the object (device form, or service form with `pid`/`cert_sn`).
    pub fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        const CTX: &str = "signature";
        let mut kb = [0u8; 20];
        let mut vb = [0u8; crate::crypto::SIGNATURE_B64_LEN];
        w.raw(br#"{"type":"SHA256","key":""#, CTX)?;
        w.raw(
            crate::types::format_u64(u64::from(self.key.0), &mut kb).as_bytes(),
            CTX,
        )?;
        w.raw(br#"","value":""#, CTX)?;
        w.raw(self.value.to_base64(&mut vb).as_bytes(), CTX)?;
        if self.service_form {
            w.raw(br#"","pid":null,"cert_sn":null}"#, CTX)
        } else {
            w.raw(br#""}"#, CTX)
        }
    }

    /// The encoded length, known before signing (key ids vary in length).
    pub fn encoded_len(key: KeyId, service_form: bool) -> usize {
        let mut kb = [0u8; 20];
        let key_len = crate::types::format_u64(u64::from(key.0), &mut kb).len();
        let fixed = br#"{"type":"SHA256","key":"","value":""}"#.len();
        let extra = if service_form {
            br#","pid":null,"cert_sn":null"#.len()
        } else {
            0
        };
        fixed + key_len + crate::crypto::SIGNATURE_B64_LEN + extra
    }
}

/// `connect_info`: who is talking. In requests it describes the agent; in responses the
/// service (`prod` appears only there). Tolerant: unknown members are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectInfo<'a> {
    /// Implementation name: `slup` for this agent, `SSM` for the cloud service.
    #[serde(borrow)]
    pub name: Ident<'a>,
    /// Implementation version.
    #[serde(borrow)]
    pub version: Ident<'a>,
    /// Free text.
    #[serde(borrow)]
    pub additional_info: Text<'a>,
    /// Production service (responses only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prod: Option<bool>,
    /// Capabilities, e.g. `POLICY_USAGE`.
    #[serde(borrow)]
    pub capabilities: heapless::Vec<Ident<'a>, MAX_CAPABILITIES>,
}

impl<'a> ConnectInfo<'a> {
    /// Builds a `connect_info` from plain parts; capabilities beyond
    /// [`MAX_CAPABILITIES`] are a [`Code::CapacityExceeded`].
    pub fn new(
        name: &'a str,
        version: &'a str,
        prod: Option<bool>,
        capabilities: &[&'a str],
    ) -> Result<Self, Code> {
        let mut caps = heapless::Vec::new();
        for c in capabilities {
            caps.push(Ident::new(c)?)
                .map_err(|_| Code::CapacityExceeded)?;
        }
        Ok(ConnectInfo {
            name: Ident::new(name)?,
            version: Ident::new(version)?,
            additional_info: Text::EMPTY,
            prod,
            capabilities: caps,
        })
    }
}

/// The capabilities slup announces (WIRE.md).
pub const CAPABILITIES: &[&str] = &["DLC", "AppHA", "EXPORT_2", "POLICY_USAGE", "UTILITY"];

/// `version`, which must be `"1.3"`; anything else is [`Code::UnsupportedVersion`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version;

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(MESSAGE_VERSION)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        if s == MESSAGE_VERSION {
            Ok(Version)
        } else {
            Err(serde::de::Error::custom("version"))
        }
    }
}

/// Checks a header's `version` member with its precise code before typed decoding.
pub(crate) fn check_version(header: &Node<'_>, context: &'static str) -> Result<(), DecodeError> {
    let v = header.required("version", context)?;
    match v.raw_str() {
        Some(MESSAGE_VERSION) => Ok(()),
        Some(_) => Err(v.error(Code::UnsupportedVersion, context)),
        None => Err(v.error(Code::WrongType, context)),
    }
}

/// One unit of an HA group: its role and UDI (`ha_udi` entries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HaUdi<'a> {
    /// Active, Standby or Member.
    pub role: crate::types::Role,
    /// The unit's UDI.
    #[serde(borrow)]
    pub sudi: Udi<'a>,
}

/// A list of signed objects (RUM reports, trust codes) kept as their exact bytes: either
/// as received on the wire, or as a caller-supplied list to encode.
#[derive(Clone, Copy, Debug)]
pub enum SignedList<'a> {
    /// The array node of a decoded message; every element was checked at decode time.
    Wire(Node<'a>),
    /// Exact bytes of each signed object, to be written as they are.
    Items(&'a [&'a [u8]]),
}

impl<'a> SignedList<'a> {
    /// The exact bytes of each element.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (wire, items) = match *self {
            SignedList::Wire(n) => (Some(n.elements().map(|e| e.bytes)), None),
            SignedList::Items(list) => (None, Some(list.iter().copied())),
        };
        wire.into_iter()
            .flatten()
            .chain(items.into_iter().flatten())
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.iter().count()
    }

    /// `true` if there are no elements.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }

    /// Writes `[e1,e2,…]`.
    pub(crate) fn encode(
        &self,
        w: &mut Writer<'_>,
        context: &'static str,
    ) -> Result<(), EncodeError> {
        w.raw(b"[", context)?;
        for (i, item) in self.iter().enumerate() {
            if i > 0 {
                w.raw(b",", context)?;
            }
            w.raw(item, context)?;
        }
        w.raw(b"]", context)
    }
}

impl PartialEq for SignedList<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}
