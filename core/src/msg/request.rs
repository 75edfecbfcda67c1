//! The device → service envelope: `{"request":{"header":{…},"request_data":{…}},"signature":{…}}`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{Signer, Verifier};
use crate::envelope::{write_signed, Layout, Signed};
use crate::error::{Code, DecodeError, EncodeError, Error};
use crate::json::{Kind, Node};
use crate::msg::rum::SignedRum;
use crate::msg::trust::{TrustRequest, TRUST_REQUEST_SHAPE};
use crate::msg::{check_version, root, shaped, ConnectInfo, Shape, SignedList, Version, Writer};
use crate::nonce::Nonce;
use crate::types::{Ident, InstanceId, RequestType, Timestamp, TrustId, Udi, Uuid};

/// Most RUM reports in one `LICENSE_USAGE` message.
pub const MAX_REPORTS_PER_MESSAGE: usize = 64;

/// `signing_cert_serial_number`: the installed trust code's id, or `""` before trust.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CertSerial(pub Option<TrustId>);

impl Serialize for CertSerial {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(id) => id.serialize(s),
            None => s.serialize_str(""),
        }
    }
}

impl<'de> Deserialize<'de> for CertSerial {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        if s.is_empty() {
            return Ok(CertSerial(None));
        }
        TrustId::parse(s)
            .map(|t| CertSerial(Some(t)))
            .map_err(|_| serde::de::Error::custom("signing_cert_serial_number"))
    }
}

/// The request header. Tolerant: members added by other agents are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestHeader<'a> {
    /// Always `1.3`.
    pub version: Version,
    /// What the request asks for; selects the `request_data` shape.
    pub request_type: RequestType,
    /// `en_US.UTF-8`.
    #[serde(borrow)]
    pub locale: Ident<'a>,
    /// The requesting (active) unit.
    #[serde(borrow)]
    pub sudi: Udi<'a>,
    /// Device time, Unix ms.
    pub timestamp: Timestamp,
    /// Fresh random nonce; the response echoes it.
    pub nonce: Nonce,
    /// Assigned at trust; empty before.
    #[serde(borrow)]
    pub product_instance_identifier: InstanceId<'a>,
    /// Trust id of the installed trust code; empty before trust.
    pub signing_cert_serial_number: CertSerial,
    /// Unused by slup (no ID certificates); empty.
    #[serde(borrow)]
    pub id_cert_serial_number: Ident<'a>,
    /// The agent.
    #[serde(borrow)]
    pub connect_info: ConnectInfo<'a>,
}

const HEADER_FIELDS: &[&str] = &[
    "version",
    "request_type",
    "locale",
    "sudi",
    "timestamp",
    "nonce",
    "product_instance_identifier",
    "signing_cert_serial_number",
    "id_cert_serial_number",
    "connect_info",
];

const HEADER_SHAPE: Shape = Shape {
    context: "request.header",
    fields: HEADER_FIELDS,
    required: HEADER_FIELDS,
    strict: false,
};

/// `request_data` of `POLL_REQ`: which earlier request to poll (the seed's shape).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollRef<'a> {
    /// The request type that was answered `OK_POLL`.
    pub original_request_type: RequestType,
    /// The `poll_id` the service returned.
    #[serde(borrow)]
    pub original_pid: Uuid<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollReqData<'a> {
    #[serde(borrow)]
    product_instance_identifier: PollRef<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrustSyncData {
    trust_id: TrustId,
}

/// `request_data`, by request type.
// Decoded values live on the caller's stack once per message; boxing is not an option
// without a heap, and the size difference is a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum RequestData<'a> {
    /// Establish trust.
    IdTokenTrust(TrustRequest<'a>),
    /// Signed RUM reports (`{"reports":[…]}`), each checked when decoded.
    LicenseUsage(SignedList<'a>),
    /// Poll for an `OK_POLL` result.
    PollReq(PollRef<'a>),
    /// Refresh trust and policy for this trust id.
    TrustSync(TrustId),
    /// `{}`.
    Hello,
}

impl RequestData<'_> {
    /// The request type this data belongs to.
    pub fn request_type(&self) -> RequestType {
        match self {
            RequestData::IdTokenTrust(_) => RequestType::ID_TOKEN_TRUST,
            RequestData::LicenseUsage(_) => RequestType::LICENSE_USAGE,
            RequestData::PollReq(_) => RequestType::POLL_REQ,
            RequestData::TrustSync(_) => RequestType::TRUST_SYNC,
            RequestData::Hello => RequestType::HELLO,
        }
    }

    fn decode<'a>(t: RequestType, node: &Node<'a>) -> Result<RequestData<'a>, DecodeError> {
        Ok(match t {
            RequestType::ID_TOKEN_TRUST => {
                RequestData::IdTokenTrust(shaped(node, &TRUST_REQUEST_SHAPE)?)
            }
            RequestType::LICENSE_USAGE => {
                const CTX: &str = "request_data(LICENSE_USAGE)";
                node.expect(Kind::Object, CTX)?;
                node.only_members(&["reports"], CTX)?;
                let reports = node.required("reports", CTX)?;
                reports.expect(Kind::Array, CTX)?;
                let mut n = 0usize;
                for r in reports.elements() {
                    n = n.saturating_add(1);
                    if n > MAX_REPORTS_PER_MESSAGE {
                        return Err(r.error(Code::TooManyItems, CTX));
                    }
                    SignedRum::decode_node(&r)?;
                }
                RequestData::LicenseUsage(SignedList::Wire(reports))
            }
            RequestType::POLL_REQ => {
                let d: PollReqData<'a> = shaped(
                    node,
                    &Shape {
                        context: "request_data(POLL_REQ)",
                        fields: &["product_instance_identifier"],
                        required: &["product_instance_identifier"],
                        strict: true,
                    },
                )?;
                // Only usage is answered asynchronously (PROTOCOL.md, OK_POLL).
                if d.product_instance_identifier.original_request_type != RequestType::LICENSE_USAGE
                {
                    return Err(node.error(Code::InvalidValue, "request_data(POLL_REQ)"));
                }
                RequestData::PollReq(d.product_instance_identifier)
            }
            RequestType::TRUST_SYNC => {
                let d: TrustSyncData = shaped(
                    node,
                    &Shape {
                        context: "request_data(TRUST_SYNC)",
                        fields: &["trust_id"],
                        required: &["trust_id"],
                        strict: true,
                    },
                )?;
                RequestData::TrustSync(d.trust_id)
            }
            RequestType::HELLO => {
                node.expect(Kind::Object, "request_data(HELLO)")?;
                node.only_members(&[], "request_data(HELLO)")?;
                RequestData::Hello
            }
        })
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        const CTX: &str = "request_data";
        match self {
            RequestData::IdTokenTrust(t) => w.json(t, CTX).map(|_| ()),
            RequestData::LicenseUsage(list) => {
                w.raw(br#"{"reports":"#, CTX)?;
                list.encode(w, CTX)?;
                w.raw(b"}", CTX)
            }
            RequestData::PollReq(p) => w
                .json(
                    &PollReqData {
                        product_instance_identifier: *p,
                    },
                    CTX,
                )
                .map(|_| ()),
            RequestData::TrustSync(id) => w.json(&TrustSyncData { trust_id: *id }, CTX).map(|_| ()),
            RequestData::Hello => w.raw(b"{}", CTX),
        }
    }
}

/// A request: header and data.
#[derive(Clone, Debug, PartialEq)]
pub struct Request<'a> {
    /// The header.
    pub header: RequestHeader<'a>,
    /// The data; its type must match `header.request_type`.
    pub data: RequestData<'a>,
}

/// A request as received: decoded, with the exact signed bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedRequest<'a> {
    /// The decoded request.
    pub request: Request<'a>,
    /// The exact `request` bytes and the signature.
    pub signed: Signed<'a>,
}

impl<'a> SignedRequest<'a> {
    /// Verifies the envelope signature with the device key.
    pub fn verify(&self, verifier: &impl Verifier) -> Result<(), Code> {
        self.signed.verify(verifier)
    }
}

/// Decodes a device → service envelope (also: an offline usage file).
pub fn decode(bytes: &[u8]) -> Result<SignedRequest<'_>, DecodeError> {
    const CTX: &str = "request";
    let root = root(bytes, CTX)?;
    let signed = Signed::split(&root, "request", CTX)?;
    let body = signed.body;
    body.only_members(&["header", "request_data"], CTX)?;
    let header_node = body.required("header", CTX)?;
    header_node.expect(Kind::Object, HEADER_SHAPE.context)?;
    check_version(&header_node, HEADER_SHAPE.context)?;
    let t = header_node.required("request_type", HEADER_SHAPE.context)?;
    if !matches!(t.kind(), Kind::String) {
        return Err(t.error(Code::WrongType, HEADER_SHAPE.context));
    }
    let header: RequestHeader<'_> = shaped(&header_node, &HEADER_SHAPE).map_err(|e| {
        if e.code == Code::InvalidValue && t.raw_str().is_some_and(|s| !is_request_type(s)) {
            t.error(Code::UnknownRequestType, HEADER_SHAPE.context)
        } else {
            e
        }
    })?;
    let data_node = body.required("request_data", CTX)?;
    let data = RequestData::decode(header.request_type, &data_node)?;
    if let RequestData::IdTokenTrust(t) = &data {
        // The requester is the active unit, listed first.
        if t.members.first().map(|m| m.sudi) != Some(header.sudi) {
            return Err(data_node.error(Code::UdiMismatch, "request_data(ID_TOKEN_TRUST)"));
        }
    }
    Ok(SignedRequest {
        request: Request { header, data },
        signed,
    })
}

/// Decodes a standalone `request_data` value of type `t` (fuzzing, tooling).
pub fn decode_data(t: RequestType, bytes: &[u8]) -> Result<RequestData<'_>, DecodeError> {
    RequestData::decode(t, &root(bytes, "request_data")?)
}

fn is_request_type(s: &str) -> bool {
    [
        "ID_TOKEN_TRUST",
        "LICENSE_USAGE",
        "POLL_REQ",
        "TRUST_SYNC",
        "HELLO",
    ]
    .contains(&s)
}

/// Encodes and signs a request into `buf`; returns the length. The header's `request_type`
/// must match the data ([`Code::InvalidArgument`] otherwise).
pub fn encode(buf: &mut [u8], req: &Request<'_>, signer: &impl Signer) -> Result<usize, Error> {
    if req.header.request_type != req.data.request_type() {
        return Err(Error::Protocol(Code::InvalidArgument));
    }
    let mut w = Writer::new(buf);
    write_signed(&mut w, "request", Layout::MemberFirst, signer, |w| {
        w.raw(br#"{"header":"#, "request")?;
        w.json(&req.header, "request.header")?;
        w.raw(br#","request_data":"#, "request")?;
        req.data.encode(w)?;
        w.raw(b"}", "request")
    })?;
    Ok(w.len())
}
