//! Validated newtypes: once a value has one of these types, it has been checked.
//!
//! Parsing happens once, at the edge (the decoders in [`crate::msg`]); the rest of slup never
//! re-checks a UDI, a UUID or a token. Identifier-like strings are borrowed straight from the
//! input: their allowed alphabet excludes `"` and `\`, so the raw JSON text *is* the value and no
//! unescaping is needed. Free text that may hold escapes is a [`Text`].

use core::fmt;
use core::str::Chars;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Code;

/// A point in time: Unix milliseconds from the platform clock (header `timestamp`, `mp`,
/// `issued_at`). RUM measurement times are Unix *seconds* and stay plain `u64`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// Milliseconds since the Unix epoch.
    pub const fn millis(self) -> u64 {
        self.0
    }

    /// Whole seconds since the Unix epoch.
    pub const fn secs(self) -> u64 {
        self.0 / 1000
    }

    /// This instant plus `ms` milliseconds, saturating.
    pub const fn add_millis(self, ms: u64) -> Self {
        Timestamp(self.0.saturating_add(ms))
    }

    /// Absolute distance to `other` in milliseconds.
    pub const fn abs_diff(self, other: Timestamp) -> u64 {
        self.0.abs_diff(other.0)
    }
}

/// Maximum length of each UDI part (`udi_pid`, `udi_serial_number`).
pub const MAX_UDI_PART_LEN: usize = 64;
/// Maximum length of an ID token.
pub const MAX_TOKEN_LEN: usize = 255;
/// Maximum length of a short identifier (software tag, entitlement tag, names, versions).
pub const MAX_IDENT_LEN: usize = 256;

/// `true` for printable ASCII other than `"` and `\`: the alphabet of identifier strings.
fn is_ident_byte(b: u8) -> bool {
    (0x20..=0x7e).contains(&b) && b != b'"' && b != b'\\'
}

fn check_ident(s: &str, min: usize, max: usize) -> Result<(), Code> {
    if s.len() < min || s.len() > max || !s.bytes().all(is_ident_byte) {
        return Err(Code::InvalidValue);
    }
    Ok(())
}

macro_rules! ident_type {
    ($(#[doc = $doc:literal])* $name:ident, $min:expr, $max:expr) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name<'a>(&'a str);

        impl<'a> $name<'a> {
            /// Checks `s` and wraps it.
            pub fn new(s: &'a str) -> Result<Self, Code> {
                check_ident(s, $min, $max)?;
                Ok(Self(s))
            }

            /// The validated text.
            pub const fn as_str(&self) -> &'a str {
                self.0
            }

            /// Wraps text that was validated when it was stored.
            #[allow(dead_code)]
            pub(crate) const fn from_validated(s: &'a str) -> Self {
                Self(s)
            }
        }

        impl<'de: 'a, 'a> Deserialize<'de> for $name<'a> {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <&'de str>::deserialize(d)?;
                $name::new(s).map_err(|_| serde::de::Error::custom(stringify!($name)))
            }
        }

        impl fmt::Display for $name<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
    };
}

ident_type!(
    /// A UDI part (`udi_pid` or `udi_serial_number`): 1–64 printable ASCII characters.
    UdiPart, 1, MAX_UDI_PART_LEN
);
ident_type!(
    /// An ID token minted by the service: 1–255 printable ASCII characters.
    IdToken, 1, MAX_TOKEN_LEN
);
ident_type!(
    /// A short identifier (tags, versions, names, locale, capability): 0–256 printable ASCII
    /// characters.
    Ident, 0, MAX_IDENT_LEN
);

/// A unique device identifier: product id and serial number (`sudi` on the wire).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Udi<'a> {
    /// Product id, e.g. `C9800-CL-K9`.
    #[serde(borrow)]
    pub udi_pid: UdiPart<'a>,
    /// Serial number, e.g. `9PJK8D70CNB`.
    #[serde(borrow)]
    pub udi_serial_number: UdiPart<'a>,
}

impl<'a> Udi<'a> {
    /// Builds a UDI from its two parts, checking both.
    pub fn new(pid: &'a str, serial: &'a str) -> Result<Self, Code> {
        Ok(Udi {
            udi_pid: UdiPart::new(pid)?,
            udi_serial_number: UdiPart::new(serial)?,
        })
    }
}

impl fmt::Display for Udi<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PID:{},SN:{}", self.udi_pid, self.udi_serial_number)
    }
}

/// A lower-case UUID such as `2e84a42f-c903-44c5-83b2-e62e258c780f` (product instance ids,
/// poll ids).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Uuid<'a>(&'a str);

impl<'a> Uuid<'a> {
    /// Checks the 8-4-4-4-12 lower-case hex layout.
    pub fn new(s: &'a str) -> Result<Self, Code> {
        let b = s.as_bytes();
        if b.len() != 36 {
            return Err(Code::InvalidValue);
        }
        for (i, &c) in b.iter().enumerate() {
            let ok = match i {
                8 | 13 | 18 | 23 => c == b'-',
                _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
            };
            if !ok {
                return Err(Code::InvalidValue);
            }
        }
        Ok(Uuid(s))
    }

    /// Formats 16 random bytes as a version-4 UUID into `buf` and returns it.
    pub fn from_random<'b>(bytes: [u8; 16], buf: &'b mut [u8; 36]) -> Uuid<'b> {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut b = bytes;
        b[6] = (b[6] & 0x0f) | 0x40;
        b[8] = (b[8] & 0x3f) | 0x80;
        let mut o = 0;
        for (i, byte) in b.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                buf[o] = b'-';
                o += 1;
            }
            buf[o] = HEX[usize::from(byte >> 4)];
            buf[o + 1] = HEX[usize::from(byte & 0xf)];
            o += 2;
        }
        // Only ASCII hex digits and dashes were written.
        Uuid(core::str::from_utf8(buf).unwrap_or_default())
    }

    /// The validated text.
    pub const fn as_str(&self) -> &'a str {
        self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Uuid<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        Uuid::new(s).map_err(|_| serde::de::Error::custom("uuid"))
    }
}

impl fmt::Display for Uuid<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// `product_instance_identifier`: the UUID the service assigned at trust, or empty before trust.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InstanceId<'a>(pub Option<Uuid<'a>>);

impl<'a> InstanceId<'a> {
    /// The empty identifier of a device without trust.
    pub const NONE: InstanceId<'static> = InstanceId(None);

    /// The UUID, if assigned.
    pub const fn uuid(&self) -> Option<Uuid<'a>> {
        self.0
    }
}

impl Serialize for InstanceId<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.map(|u| u.0).unwrap_or(""))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for InstanceId<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        if s.is_empty() {
            return Ok(InstanceId(None));
        }
        Uuid::new(s)
            .map(|u| InstanceId(Some(u)))
            .map_err(|_| serde::de::Error::custom("product_instance_identifier"))
    }
}

/// A usage report id: unique and increasing per UDI.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReportId(pub u64);

/// Parses a canonical decimal `u64`: 1–20 digits, no sign, no leading zero (except `"0"`).
///
/// Canonical form matters for nonces and trust ids: `"007"` and `"7"` must not be two spellings
/// of one value, or a replay could slip past a tracker that compares text.
pub fn parse_canonical_u64(s: &str) -> Result<u64, Code> {
    let b = s.as_bytes();
    if b.is_empty() || b.len() > 20 || (b.len() > 1 && b[0] == b'0') {
        return Err(Code::InvalidValue);
    }
    let mut v: u64 = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            return Err(Code::InvalidValue);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(c - b'0')))
            .ok_or(Code::InvalidValue)?;
    }
    Ok(v)
}

/// Writes `v` in decimal into `buf`, returning the digits.
pub fn format_u64(v: u64, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    let mut n = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    core::str::from_utf8(&buf[i..]).unwrap_or("0")
}

/// Declares a `u64` carried on the wire as a canonical decimal string.
macro_rules! decimal_string_type {
    ($(#[doc = $doc:literal])* $name:ident) => {
        $(#[doc = $doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(pub u64);

        impl $name {
            /// Parses the canonical decimal form.
            pub fn parse(s: &str) -> Result<Self, Code> {
                parse_canonical_u64(s).map($name)
            }

            /// The numeric value.
            pub const fn value(self) -> u64 {
                self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let mut buf = [0u8; 20];
                s.serialize_str(format_u64(self.0, &mut buf))
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <&'de str>::deserialize(d)?;
                $name::parse(s).map_err(|_| serde::de::Error::custom(stringify!($name)))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }
    };
}

decimal_string_type!(
    /// The id of an installed trust code (`trust_id`, and `signing_cert_serial_number` after
    /// trust): a canonical decimal string.
    TrustId
);

/// The role of a unit in a high-availability group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// The active unit, which talks to the service.
    Active,
    /// The hot standby.
    Standby,
    /// Any other member of a stack.
    Member,
}

/// Which HA units an ID-token trust request covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only the active unit.
    Local,
    /// Every unit of the HA group; one token use per unit.
    All,
}

/// The kinds of device → service request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum RequestType {
    /// Establish trust with an ID token.
    ID_TOKEN_TRUST,
    /// Send signed usage reports.
    LICENSE_USAGE,
    /// Ask for the result of an earlier request answered `OK_POLL`.
    POLL_REQ,
    /// Refresh trust and policy.
    TRUST_SYNC,
    /// Say hello to a CSLU.
    HELLO,
}

impl RequestType {
    /// The wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            RequestType::ID_TOKEN_TRUST => "ID_TOKEN_TRUST",
            RequestType::LICENSE_USAGE => "LICENSE_USAGE",
            RequestType::POLL_REQ => "POLL_REQ",
            RequestType::TRUST_SYNC => "TRUST_SYNC",
            RequestType::HELLO => "HELLO",
        }
    }
}

/// The service's verdict in a response header.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(non_camel_case_types, clippy::upper_case_acronyms)]
pub enum StatusCode {
    /// Done; `response_data` holds the result.
    OK,
    /// Accepted; come back with `POLL_REQ` after `retry_time_seconds`.
    OK_POLL,
    /// Not now; resend the same request after `retry_time_seconds`.
    OK_TRY_AGAIN,
    /// Refused; `message` says why and nothing changed on the service.
    FAILED,
}

/// Free text from the wire (`message`, `reason`, names): the raw JSON string content, escapes
/// still in place, borrowed from the input; or plain text to be escaped when encoded.
///
/// Decoding never copies. To get the characters, iterate [`Text::chars`] (no buffer) or unescape
/// into a caller scratch buffer with [`Text::unescape_into`].
#[derive(Clone, Copy, Debug)]
pub enum Text<'a> {
    /// JSON string content as it appeared between the quotes, already validated.
    Raw(&'a str),
    /// Plain text; escaped when encoded.
    Plain(&'a str),
}

/// Maximum length of free text, in raw (escaped) bytes.
pub const MAX_TEXT_LEN: usize = 1024;

impl<'a> Text<'a> {
    /// Plain text, e.g. a message the service composes.
    pub const fn plain(s: &'a str) -> Self {
        Text::Plain(s)
    }

    /// The empty text.
    pub const EMPTY: Text<'static> = Text::Plain("");

    /// The characters, unescaped on the fly.
    pub fn chars(&self) -> TextChars<'a> {
        match *self {
            Text::Raw(s) => TextChars {
                inner: s.chars(),
                raw: true,
            },
            Text::Plain(s) => TextChars {
                inner: s.chars(),
                raw: false,
            },
        }
    }

    /// `true` if there are no characters.
    pub fn is_empty(&self) -> bool {
        match *self {
            Text::Raw(s) | Text::Plain(s) => s.is_empty(),
        }
    }

    /// Unescapes into `buf` and returns the text; `BufferTooSmall` if it does not fit.
    pub fn unescape_into<'b>(&self, buf: &'b mut [u8]) -> Result<&'b str, Code> {
        let mut n = 0usize;
        for c in self.chars() {
            let len = c.len_utf8();
            let end = n.checked_add(len).ok_or(Code::BufferTooSmall)?;
            let dst = buf.get_mut(n..end).ok_or(Code::BufferTooSmall)?;
            c.encode_utf8(dst);
            n = end;
        }
        let out = buf.get(..n).ok_or(Code::BufferTooSmall)?;
        core::str::from_utf8(out).map_err(|_| Code::InvalidUtf8)
    }

    /// Compares the characters with `s`.
    pub fn eq_str(&self, s: &str) -> bool {
        self.chars().eq(s.chars())
    }
}

impl PartialEq for Text<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.chars().eq(other.chars())
    }
}
impl Eq for Text<'_> {}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for c in self.chars() {
            f.write_char(c)?;
        }
        Ok(())
    }
}

impl Serialize for Text<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match *self {
            Text::Raw(raw) => serde_json_core::str::EscapedStr(raw).serialize(s),
            Text::Plain(p) => s.serialize_str(p),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = serde_json_core::str::EscapedStr::deserialize(d)?;
        if raw.0.len() > MAX_TEXT_LEN {
            return Err(serde::de::Error::custom("text too long"));
        }
        // The scanner has validated escapes already; re-check so a Text can never hold an
        // escape that `chars` would have to drop.
        if !crate::json::escapes_valid(raw.0) {
            return Err(serde::de::Error::custom("bad escape"));
        }
        Ok(Text::Raw(raw.0))
    }
}

/// Iterator over the characters of a [`Text`], unescaping as it goes.
#[derive(Clone, Debug)]
pub struct TextChars<'a> {
    inner: Chars<'a>,
    raw: bool,
}

impl Iterator for TextChars<'_> {
    type Item = char;

    fn next(&mut self) -> Option<char> {
        let c = self.inner.next()?;
        if !self.raw || c != '\\' {
            return Some(c);
        }
        crate::json::unescape_one(&mut self.inner)
    }
}

decimal_string_type!(
    /// A measured count, carried as a decimal string (`value.value`, as on real devices).
    Count
);

/// A signed number of seconds carried as a canonical decimal string (`clock_change_delta`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delta(pub i64);

impl Delta {
    /// Parses `0`, `17`, `-3433` (no `+`, no leading zeros, no `-0`).
    pub fn parse(s: &str) -> Result<Self, Code> {
        match s.strip_prefix('-') {
            Some(digits) => {
                let v = parse_canonical_u64(digits)?;
                if v == 0 {
                    return Err(Code::InvalidValue);
                }
                // -(2^63) is the one magnitude that only fits negated.
                0i64.checked_sub_unsigned(v)
                    .map(Delta)
                    .ok_or(Code::InvalidValue)
            }
            None => i64::try_from(parse_canonical_u64(s)?)
                .map(Delta)
                .map_err(|_| Code::InvalidValue),
        }
    }
}

impl Serialize for Delta {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = [0u8; 21];
        let mut digits = [0u8; 20];
        let d = format_u64(self.0.unsigned_abs(), &mut digits).as_bytes();
        let mut n = 0;
        if self.0 < 0 {
            buf[0] = b'-';
            n = 1;
        }
        let end = n + d.len();
        buf[n..end].copy_from_slice(d);
        s.serialize_str(core::str::from_utf8(&buf[..end]).unwrap_or("0"))
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <&'de str>::deserialize(d)?;
        Delta::parse(s).map_err(|_| serde::de::Error::custom("Delta"))
    }
}
