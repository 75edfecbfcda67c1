//! RUM usage reports: `{"payload":{…},"signature":{…}}`, signed by the device when the report
//! closes and sent, exported or pulled later without being re-encoded.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::crypto::Signer;
use crate::envelope::{write_signed, Layout, Signed};
use crate::error::{Code, DecodeError, Error};
use crate::json::Node;
use crate::msg::{shaped, HaUdi, Shape, Writer, MAX_HA_MEMBERS};
use crate::types::{Count, Delta, Ident, InstanceId, ReportId, Udi};

/// The RUM payload version this implementation writes and reads.
pub const RUM_VERSION: &str = "2.0";
/// Most measurements in one report.
pub const MAX_MEASUREMENTS: usize = 4;
/// Most UDIs in one `added_sudi_list` or `removed_sudi_list`; more are counted in
/// `sudi_list_overflow`.
pub const MAX_SUDI_LIST: usize = 16;

/// `version` of a RUM payload: must be `"2.0"`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RumVersion;

impl Serialize for RumVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(RUM_VERSION)
    }
}

impl<'de> Deserialize<'de> for RumVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match <&'de str>::deserialize(d)? {
            RUM_VERSION => Ok(RumVersion),
            _ => Err(serde::de::Error::custom("rum version")),
        }
    }
}

/// The kind of a measured value: only `COUNT` is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ValueType {
    /// A count of licenses in use.
    COUNT,
}

/// `value` of a measurement: `{"type":"COUNT","value":"3"}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeasuredValue {
    /// Always `COUNT`.
    #[serde(rename = "type")]
    pub kind: ValueType,
    /// The count, a decimal string on the wire.
    pub value: Count,
}

/// `meta` of a measurement: sub-device changes and why the report closed. Tolerant: devices in
/// the field add members here (`close_reason`), which are skipped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeasurementMeta<'a> {
    /// Sub-devices (the 9800's APs) that joined during the window.
    #[serde(borrow)]
    pub added_sudi_list: heapless::Vec<Udi<'a>, MAX_SUDI_LIST>,
    /// Sub-devices that left during the window.
    #[serde(borrow)]
    pub removed_sudi_list: heapless::Vec<Udi<'a>, MAX_SUDI_LIST>,
    /// How many joins and leaves did not fit the two lists: counted, never dropped silently.
    pub sudi_list_overflow: u32,
    /// Why the report closed: `""` while open, `CurrentUsageRequested`, `ProductReload`,
    /// `ReportTime`, `UsageChanged`.
    #[serde(borrow)]
    pub termination_reason: Ident<'a>,
    /// Clock change observed in the window, seconds (decimal string).
    pub clock_change_delta: Delta,
}

/// One measurement record of a report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Measurement<'a> {
    /// When the record was written, Unix seconds.
    pub log_time: u64,
    /// `ENTITLEMENT`.
    #[serde(borrow)]
    pub metric_name: Ident<'a>,
    /// Window start, Unix seconds.
    pub start_time: u64,
    /// Window end, Unix seconds (not before `start_time`).
    pub end_time: u64,
    /// Seconds between samples (900 on real devices).
    pub sample_interval: u32,
    /// Samples taken in the window.
    pub num_samples: u32,
    /// The measured count.
    pub value: MeasuredValue,
    /// Sub-device changes and close reason.
    #[serde(borrow)]
    pub meta: MeasurementMeta<'a>,
}

/// The signed payload of a RUM report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RumPayload<'a> {
    /// Always `2.0`.
    pub version: RumVersion,
    /// Unique and increasing per UDI.
    pub report_id: ReportId,
    /// The reporting device.
    #[serde(borrow)]
    pub sudi: Udi<'a>,
    /// Assigned at trust; empty before.
    #[serde(borrow)]
    pub product_instance_identifier: InstanceId<'a>,
    /// ISO 19770-2 software tag of the product.
    #[serde(borrow)]
    pub software_tag: Ident<'a>,
    /// The entitlement (license) measured.
    #[serde(borrow)]
    pub entitlement_tag: Ident<'a>,
    /// Software version, e.g. `17.09.02`.
    #[serde(borrow)]
    pub software_version: Ident<'a>,
    /// The HA group at report time.
    #[serde(borrow)]
    pub ha_udi: heapless::Vec<HaUdi<'a>, MAX_HA_MEMBERS>,
    /// The measurement records.
    #[serde(borrow)]
    pub measurements: heapless::Vec<Measurement<'a>, MAX_MEASUREMENTS>,
}

const PAYLOAD_SHAPE: Shape = Shape {
    context: "rum.payload",
    fields: &[
        "version",
        "report_id",
        "sudi",
        "product_instance_identifier",
        "software_tag",
        "entitlement_tag",
        "software_version",
        "ha_udi",
        "measurements",
    ],
    required: &[
        "version",
        "report_id",
        "sudi",
        "product_instance_identifier",
        "software_tag",
        "entitlement_tag",
        "software_version",
        "ha_udi",
        "measurements",
    ],
    strict: true,
};

impl<'a> RumPayload<'a> {
    /// Decodes a payload node and checks what types cannot: window order.
    pub fn decode_node(node: &Node<'a>) -> Result<Self, DecodeError> {
        let p: RumPayload<'a> = shaped(node, &PAYLOAD_SHAPE)?;
        if p.measurements.iter().any(|m| m.start_time > m.end_time) {
            return Err(node.error(Code::InvalidValue, "rum.measurement window"));
        }
        Ok(p)
    }
}

/// A signed RUM report as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedRum<'a> {
    /// The decoded payload.
    pub payload: RumPayload<'a>,
    /// The exact payload bytes and the signature.
    pub signed: Signed<'a>,
}

impl<'a> SignedRum<'a> {
    /// Decodes a standalone report.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_node(&crate::msg::root(bytes, "rum")?)
    }

    /// Decodes a report node (an element of `reports`).
    pub fn decode_node(node: &Node<'a>) -> Result<Self, DecodeError> {
        let signed = Signed::split(node, "payload", "rum")?;
        let payload = RumPayload::decode_node(&signed.body)?;
        Ok(SignedRum { payload, signed })
    }
}

/// Signs a stored report again with `signer`: the same payload bytes, a new signature (after a
/// re-trust the service knows only the new key). Returns the length written into `buf`.
pub fn resign(report: &[u8], signer: &impl Signer, buf: &mut [u8]) -> Result<usize, Error> {
    let node = crate::msg::root(report, "rum")?;
    let signed = Signed::split(&node, "payload", "rum")?;
    let mut w = Writer::new(buf);
    write_signed(&mut w, "payload", Layout::MemberFirst, signer, |w| {
        w.raw(signed.body.bytes, "rum.payload")
    })?;
    Ok(w.len())
}

/// Encodes and signs a report: `{"payload":…,"signature":…}`. Returns the length written.
pub fn encode(
    buf: &mut [u8],
    payload: &RumPayload<'_>,
    signer: &impl Signer,
) -> Result<usize, Error> {
    let mut w = Writer::new(buf);
    write_signed(&mut w, "payload", Layout::MemberFirst, signer, |w| {
        w.json(payload, "rum.payload").map(|_| ())
    })?;
    Ok(w.len())
}
