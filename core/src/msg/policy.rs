//! Policy: reporting requirements per license class, and how each value's origin is resolved
//! against Cisco's defaults.

use serde::{Deserialize, Serialize};

use crate::error::{Code, DecodeError};
use crate::json::Node;
use crate::msg::{shaped, Shape};
use crate::types::Text;

/// Longest accepted day count (ten years).
pub const MAX_DAYS: u16 = 3650;

/// The three reporting attributes of one license class. An absent attribute keeps the service
/// default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassAttrs {
    /// Days before the first report is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_report_days: Option<u16>,
    /// Days between reports after the first (0: no periodic requirement).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reporting_frequency_days: Option<u16>,
    /// Days after a usage change within which a report is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub report_on_change_days: Option<u16>,
}

impl ClassAttrs {
    fn values(&self) -> [Option<u16>; 3] {
        [
            self.first_report_days,
            self.reporting_frequency_days,
            self.report_on_change_days,
        ]
    }
}

/// The four license classes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Classes {
    /// Unenforced / non-export perpetual licenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub perpetual: Option<ClassAttrs>,
    /// Unenforced / non-export subscription licenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<ClassAttrs>,
    /// Enforced licenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enforced: Option<ClassAttrs>,
    /// Export-controlled licenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub export: Option<ClassAttrs>,
}

/// A policy as the service sends it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy<'a> {
    /// Policy name, e.g. `Custom Policy`.
    #[serde(borrow)]
    pub name: Text<'a>,
    /// Whether each report must be acknowledged; absent keeps the default (yes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_required: Option<bool>,
    /// Per-class attributes.
    pub classes: Classes,
}

const SHAPE: Shape = Shape {
    context: "policy",
    fields: &["name", "ack_required", "classes"],
    required: &["name", "classes"],
    strict: true,
};

impl<'a> Policy<'a> {
    /// Decodes a policy node and bounds each day count by [`MAX_DAYS`].
    pub fn decode_node(node: &Node<'a>) -> Result<Self, DecodeError> {
        let p: Policy<'a> = shaped(node, &SHAPE)?;
        let c = &p.classes;
        let too_long = [c.perpetual, c.subscription, c.enforced, c.export]
            .iter()
            .flatten()
            .flat_map(|a| a.values())
            .flatten()
            .any(|d| d > MAX_DAYS);
        if too_long {
            return Err(node.error(Code::InvalidValue, "policy days"));
        }
        Ok(p)
    }

    /// Decodes a standalone policy document.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, DecodeError> {
        Self::decode_node(&crate::msg::root(bytes, "policy")?)
    }

    /// Resolves every value against Cisco's defaults, keeping each value's origin.
    pub fn resolve(&self) -> ResolvedPolicy {
        let mut r = ResolvedPolicy::CISCO_DEFAULT;
        if let Some(ack) = self.ack_required {
            r.ack_required = (ack, Origin::Customer);
        }
        let c = &self.classes;
        for (slot, attrs) in
            r.classes
                .iter_mut()
                .zip([c.perpetual, c.subscription, c.enforced, c.export])
        {
            let Some(attrs) = attrs else { continue };
            for (value, given) in slot.iter_mut().zip(attrs.values()) {
                if let Some(days) = given {
                    *value = (days, Origin::Customer);
                }
            }
        }
        r
    }
}

/// Where a policy value came from, shown as `(Customer Policy)` or `(CISCO default)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Cisco's default, in force because the installed policy does not set it.
    CiscoDefault,
    /// Set by the installed policy.
    Customer,
}

impl Origin {
    /// The label printed in status output.
    pub const fn label(self) -> &'static str {
        match self {
            Origin::CiscoDefault => "CISCO default",
            Origin::Customer => "Customer Policy",
        }
    }
}

/// Index of a class in [`ResolvedPolicy::classes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// Unenforced/Non-Export Perpetual.
    Perpetual = 0,
    /// Unenforced/Non-Export Subscription.
    Subscription = 1,
    /// Enforced (Perpetual/Subscription).
    Enforced = 2,
    /// Export (Perpetual/Subscription).
    Export = 3,
}

/// A policy with every value resolved: `[first report, reporting frequency, report on change]`
/// days per class, each with its origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResolvedPolicy {
    /// Whether reports must be acknowledged.
    pub ack_required: (bool, Origin),
    /// Indexed by [`Class`]; inner order first-report, frequency, on-change.
    pub classes: [[(u16, Origin); 3]; 4],
}

impl ResolvedPolicy {
    /// Cisco's default policy: 365/0/90, 90/90/90, 0/0/0, 0/0/0, ACK required.
    pub const CISCO_DEFAULT: ResolvedPolicy = {
        const fn d(v: u16) -> (u16, Origin) {
            (v, Origin::CiscoDefault)
        }
        ResolvedPolicy {
            ack_required: (true, Origin::CiscoDefault),
            classes: [
                [d(365), d(0), d(90)],
                [d(90), d(90), d(90)],
                [d(0), d(0), d(0)],
                [d(0), d(0), d(0)],
            ],
        }
    };

    /// The attributes of one class.
    pub fn class(&self, c: Class) -> [(u16, Origin); 3] {
        self.classes
            .get(c as usize)
            .copied()
            .unwrap_or(Self::CISCO_DEFAULT.classes[0])
    }
}
