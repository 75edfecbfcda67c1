//! The service → device envelope:
//! `{"signature":{…},"response":{"header":{…},"response_data":…}}`, and the unsigned error
//! body `{"error":{"code":…,"message":…}}` for requests the service cannot authenticate.

use serde::de::IgnoredAny;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::{Signer, Verifier};
use crate::envelope::{write_signed, Layout, Signed};
use crate::error::{Code, DecodeError, EncodeError, Error};
use crate::json::{Kind, Node};
use crate::msg::policy::Policy;
use crate::msg::trust::TrustCode;
use crate::msg::{
    check_version, root, shaped, typed, ConnectInfo, Shape, SignedList, Version, Writer,
    MAX_HA_MEMBERS,
};
use crate::nonce::Nonce;
use crate::types::{ReportId, RequestType, StatusCode, Text, Timestamp, Udi, Uuid};

/// Most report ids acknowledged in one ACK.
pub const MAX_ACKED: usize = crate::msg::request::MAX_REPORTS_PER_MESSAGE;
/// Most rejected reports in one ACK.
pub const MAX_REJECTED: usize = crate::msg::request::MAX_REPORTS_PER_MESSAGE;

/// `agent_actions`: reserved. Written as `null`; any value received is skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AgentActions;

impl Serialize for AgentActions {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_none()
    }
}

impl<'de> Deserialize<'de> for AgentActions {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d).map(|_| AgentActions)
    }
}

/// The response header. Tolerant: members real services add (`locale`, `sch_response`) are
/// skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseHeader<'a> {
    /// Always `1.3`.
    pub version: Version,
    /// The request type answered (`POLL_REQ` when answering a poll).
    pub request_type: RequestType,
    /// Service time, Unix ms (signed, so the device can estimate its clock skew).
    pub mp: Timestamp,
    /// The request's nonce (`null` only in the seed's garbled sample; a device rejects it).
    pub nonce: Option<Nonce>,
    /// The device the response is for.
    #[serde(borrow)]
    pub sudi: Udi<'a>,
    /// The verdict.
    pub status_code: StatusCode,
    /// Why, for `FAILED`; otherwise usually empty.
    #[serde(borrow)]
    pub message: Text<'a>,
    /// For `OK_POLL` and `OK_TRY_AGAIN`: when to come back.
    pub retry_time_seconds: u32,
    /// Reserved, `null`.
    #[serde(default)]
    pub agent_actions: AgentActions,
    /// The service.
    #[serde(borrow)]
    pub connect_info: ConnectInfo<'a>,
}

const HEADER_SHAPE: Shape = Shape {
    context: "response.header",
    fields: &[
        "version",
        "request_type",
        "mp",
        "nonce",
        "sudi",
        "status_code",
        "message",
        "retry_time_seconds",
        "agent_actions",
        "connect_info",
    ],
    required: &[
        "version",
        "request_type",
        "mp",
        "nonce",
        "sudi",
        "status_code",
        "message",
        "retry_time_seconds",
        "connect_info",
    ],
    strict: false,
};

/// One report the service refused, and why.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rejected<'a> {
    /// The refused report.
    pub report_id: ReportId,
    /// Why.
    #[serde(borrow)]
    pub reason: Text<'a>,
}

/// The acknowledgement of a `LICENSE_USAGE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack<'a> {
    /// Reports the service stored: the device may prune them.
    pub acked: heapless::Vec<ReportId, MAX_ACKED>,
    /// Reports the service refused: the device keeps them with the reason.
    #[serde(borrow)]
    pub rejected: heapless::Vec<Rejected<'a>, MAX_REJECTED>,
}

const ACK_SHAPE: Shape = Shape {
    context: "ack",
    fields: &["acked", "rejected"],
    required: &["acked", "rejected"],
    strict: true,
};

impl<'a> Ack<'a> {
    /// Decodes an `ack` node.
    ///
    /// Element by element into the lists, in document order, with the same typed decoding and
    /// the same codes as decoding the whole object at once, but without moving kilobytes of
    /// half-built lists through nested results: serde's derived decoder for two 64-entry lists
    /// took a 24 KiB stack frame on a Cortex-M4.
    pub fn decode_node(node: &Node<'a>) -> Result<Self, DecodeError> {
        let mut ack = Ack::default();
        ack.decode_into(node)?;
        Ok(ack)
    }

    /// [`Ack::decode_node`] into `self`, which must be empty.
    fn decode_into(&mut self, node: &Node<'a>) -> Result<(), DecodeError> {
        const CTX: &str = ACK_SHAPE.context;
        ACK_SHAPE.check(node)?;
        for (key, list) in node.members() {
            let acked = crate::json::key_eq(key, "acked");
            list.expect(Kind::Array, CTX)?;
            for item in list.elements() {
                // A list longer than its capacity is an invalid value, as serde reports it.
                let full = item.error(Code::InvalidValue, CTX);
                if acked {
                    let id: ReportId = typed(&item, CTX)?;
                    self.acked.push(id).map_err(|_| full)?;
                } else {
                    let r: Rejected<'a> = typed(&item, CTX)?;
                    self.rejected.push(r).map_err(|_| full)?;
                }
            }
        }
        Ok(())
    }

    /// Decodes a standalone `ack` document.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_node(&root(bytes, "ack")?)
    }

    /// Encodes the ACK into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(buf);
        w.json(self, "ack")?;
        Ok(w.len())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsageData<'a> {
    #[serde(borrow)]
    ack: Ack<'a>,
    #[serde(borrow)]
    policy: Option<Policy<'a>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyOnly<'a> {
    #[serde(borrow)]
    policy: Option<Policy<'a>>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PollData<'a> {
    #[serde(borrow)]
    poll_id: Uuid<'a>,
}

/// `response_data`, by status and request type.
// Decoded values live on the caller's stack once per message; boxing is not an option
// without a heap, and the size difference is a few hundred bytes.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum ResponseData<'a> {
    /// `FAILED` and `OK_TRY_AGAIN` carry nothing (`null`).
    None,
    /// `OK_POLL`: the id to poll with.
    Poll(Uuid<'a>),
    /// `OK` to `ID_TOKEN_TRUST`: one signed trust code per unit, and maybe a policy.
    Trust {
        /// Signed trust codes, each checked when decoded.
        trust_codes: SignedList<'a>,
        /// Policy to install, if any.
        policy: Option<Policy<'a>>,
    },
    /// `OK` to `LICENSE_USAGE` (directly or through `POLL_REQ`).
    Usage {
        /// Acknowledged and rejected reports.
        ack: Ack<'a>,
        /// Policy to install, if any.
        policy: Option<Policy<'a>>,
    },
    /// `OK` to `TRUST_SYNC`.
    TrustSync {
        /// Policy to install, if any.
        policy: Option<Policy<'a>>,
    },
    /// `OK` to `HELLO`: `{}`.
    Hello,
}

fn policy_node<'a>(node: &Node<'a>, ctx: &'static str) -> Result<Option<Policy<'a>>, DecodeError> {
    let p = node.required("policy", ctx)?;
    if p.kind() == Kind::Null {
        Ok(None)
    } else {
        Policy::decode_node(&p).map(Some)
    }
}

impl<'a> ResponseData<'a> {
    /// Decodes `node` into `self` (which is [`ResponseData::None`]) in place: an ACK is two
    /// kilobytes, and moving it through nested results costs that much stack each time.
    fn decode_into(
        &mut self,
        header: &ResponseHeader<'a>,
        node: &Node<'a>,
    ) -> Result<(), DecodeError> {
        *self = match header.status_code {
            StatusCode::FAILED | StatusCode::OK_TRY_AGAIN => {
                // `null` per spec; the seed's FAILED answer carries `""`, tolerated.
                let empty = match node.kind() {
                    Kind::Null => true,
                    Kind::String => node.bytes == b"\"\"",
                    Kind::Object => node.members().next().is_none(),
                    _ => false,
                };
                if !empty {
                    return Err(node.error(Code::WrongType, "response_data(FAILED)"));
                }
                ResponseData::None
            }
            StatusCode::OK_POLL => {
                // Only usage is answered asynchronously (a poll may be answered OK_POLL again).
                if !matches!(
                    header.request_type,
                    RequestType::LICENSE_USAGE | RequestType::POLL_REQ
                ) {
                    return Err(node.error(Code::InvalidValue, "response_data(OK_POLL)"));
                }
                let d: PollData<'a> = shaped(
                    node,
                    &Shape {
                        context: "response_data(OK_POLL)",
                        fields: &["poll_id"],
                        required: &["poll_id"],
                        strict: true,
                    },
                )?;
                ResponseData::Poll(d.poll_id)
            }
            StatusCode::OK => match header.request_type {
                RequestType::ID_TOKEN_TRUST => {
                    const CTX: &str = "response_data(ID_TOKEN_TRUST)";
                    node.expect(Kind::Object, CTX)?;
                    node.only_members(&["trust_codes", "policy"], CTX)?;
                    let codes = node.required("trust_codes", CTX)?;
                    codes.expect(Kind::Array, CTX)?;
                    let mut n = 0usize;
                    for c in codes.elements() {
                        n = n.saturating_add(1);
                        if n > MAX_HA_MEMBERS {
                            return Err(c.error(Code::TooManyItems, CTX));
                        }
                        TrustCode::decode_node(&c)?;
                    }
                    ResponseData::Trust {
                        trust_codes: SignedList::Wire(codes),
                        policy: policy_node(node, CTX)?,
                    }
                }
                RequestType::LICENSE_USAGE | RequestType::POLL_REQ => {
                    const CTX: &str = "response_data(LICENSE_USAGE)";
                    node.expect(Kind::Object, CTX)?;
                    node.only_members(&["ack", "policy"], CTX)?;
                    let ack_node = node.required("ack", CTX)?;
                    *self = ResponseData::Usage {
                        ack: Ack::default(),
                        policy: None,
                    };
                    if let ResponseData::Usage { ack, policy } = self {
                        ack.decode_into(&ack_node)?;
                        *policy = policy_node(node, CTX)?;
                    }
                    return Ok(());
                }
                RequestType::TRUST_SYNC => {
                    const CTX: &str = "response_data(TRUST_SYNC)";
                    node.expect(Kind::Object, CTX)?;
                    node.only_members(&["policy"], CTX)?;
                    ResponseData::TrustSync {
                        policy: policy_node(node, CTX)?,
                    }
                }
                RequestType::HELLO => {
                    node.expect(Kind::Object, "response_data(HELLO)")?;
                    node.only_members(&[], "response_data(HELLO)")?;
                    ResponseData::Hello
                }
            },
        };
        Ok(())
    }

    fn encode(&self, w: &mut Writer<'_>) -> Result<(), EncodeError> {
        const CTX: &str = "response_data";
        match self {
            ResponseData::None => w.raw(b"null", CTX),
            ResponseData::Poll(id) => w.json(&PollData { poll_id: *id }, CTX).map(|_| ()),
            ResponseData::Trust {
                trust_codes,
                policy,
            } => {
                w.raw(br#"{"trust_codes":"#, CTX)?;
                trust_codes.encode(w, CTX)?;
                w.raw(br#","policy":"#, CTX)?;
                w.json(policy, CTX)?;
                w.raw(b"}", CTX)
            }
            ResponseData::Usage { ack, policy } => w
                .json(
                    &UsageData {
                        ack: ack.clone(),
                        policy: policy.clone(),
                    },
                    CTX,
                )
                .map(|_| ()),
            ResponseData::TrustSync { policy } => w
                .json(
                    &PolicyOnly {
                        policy: policy.clone(),
                    },
                    CTX,
                )
                .map(|_| ()),
            ResponseData::Hello => w.raw(b"{}", CTX),
        }
    }
}

/// A response: header and data.
#[derive(Clone, Debug, PartialEq)]
pub struct Response<'a> {
    /// The header.
    pub header: ResponseHeader<'a>,
    /// The data, shaped by status and request type.
    pub data: ResponseData<'a>,
}

/// A response as received: decoded, with the exact signed bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct SignedResponse<'a> {
    /// The decoded response.
    pub response: Response<'a>,
    /// The exact `response` bytes and the signature.
    pub signed: Signed<'a>,
}

impl SignedResponse<'_> {
    /// Verifies the envelope signature with the service's trust anchor.
    pub fn verify(&self, verifier: &impl Verifier) -> Result<(), Code> {
        self.signed.verify(verifier)
    }
}

/// Decodes a service → device envelope (also: an offline ACK file).
#[inline(never)]
pub fn decode(bytes: &[u8]) -> Result<SignedResponse<'_>, DecodeError> {
    const CTX: &str = "response";
    let root = root(bytes, CTX)?;
    let signed = Signed::split(&root, "response", CTX)?;
    let body = signed.body;
    body.only_members(&["header", "response_data"], CTX)?;
    let header_node = body.required("header", CTX)?;
    header_node.expect(Kind::Object, HEADER_SHAPE.context)?;
    check_version(&header_node, HEADER_SHAPE.context)?;
    let status = header_node.required("status_code", HEADER_SHAPE.context)?;
    if let Some(s) = status.raw_str() {
        if !["OK", "OK_POLL", "OK_TRY_AGAIN", "FAILED"].contains(&s) {
            return Err(status.error(Code::UnknownStatus, HEADER_SHAPE.context));
        }
    }
    let header: ResponseHeader<'_> = shaped(&header_node, &HEADER_SHAPE)?;
    let data = body.required("response_data", CTX)?;
    // Built once and filled in place (see `ResponseData::decode_into`).
    let mut resp = SignedResponse {
        response: Response {
            header,
            data: ResponseData::None,
        },
        signed,
    };
    let r = &mut resp.response;
    r.data.decode_into(&r.header, &data)?;
    Ok(resp)
}

/// Encodes and signs a response into `buf` (signature first, as the seed shows); returns the
/// length.
pub fn encode(buf: &mut [u8], resp: &Response<'_>, signer: &impl Signer) -> Result<usize, Error> {
    let mut w = Writer::new(buf);
    write_signed(&mut w, "response", Layout::SignatureFirst, signer, |w| {
        w.raw(br#"{"header":"#, "response")?;
        w.json(&resp.header, "response.header")?;
        w.raw(br#","response_data":"#, "response")?;
        resp.data.encode(w)?;
        w.raw(b"}", "response")
    })?;
    Ok(w.len())
}

/// The unsigned error body of a non-2xx HTTP answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody<'a> {
    /// A stable code from docs/ERRORS.md (unknown numbers are kept as they are).
    pub code: u16,
    /// What went wrong.
    #[serde(borrow)]
    pub message: Text<'a>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorWrapper<'a> {
    #[serde(borrow)]
    error: ErrorBody<'a>,
}

impl<'a> ErrorBody<'a> {
    /// Decodes `{"error":{"code":…,"message":…}}`.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        let node = root(bytes, "error")?;
        let w: ErrorWrapper<'a> = shaped(
            &node,
            &Shape {
                context: "error",
                fields: &["error"],
                required: &["error"],
                strict: true,
            },
        )?;
        Ok(w.error)
    }

    /// Encodes the body into `buf`; returns the length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let mut w = Writer::new(buf);
        w.json(&ErrorWrapper { error: *self }, "error")?;
        Ok(w.len())
    }
}
