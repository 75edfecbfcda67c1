//! A strict, bounded, non-recursive JSON scanner.
//!
//! Every decoder runs [`validate`] over the whole input before anything else looks at it. The
//! validator implements RFC 8259 exactly (no trailing commas, no leading zeros, no control
//! characters in strings, no lone surrogates, valid UTF-8), bounds nesting depth and string
//! length, and keeps its nesting state in a bit stack instead of the call stack, so a
//! 10 000-deep `[[[[…` costs nothing but an error. Only then does typed decoding (serde-json-core)
//! run, on spans the validator has already vouched for — which bounds its recursion too.
//!
//! The second half of the module walks validated documents: [`Node`] is a value's exact byte
//! span, [`Node::members`] and [`Node::elements`] iterate objects and arrays, and
//! [`Node::member`] finds a member by (unescaped) name and rejects duplicates. Signed envelopes
//! use those spans to verify signatures over the exact bytes that were received.

use crate::error::{Code, DecodeError};

/// Hard ceiling on nesting depth: the validator's bit stack has 64 levels.
pub const MAX_DEPTH_CEILING: usize = 64;

/// Bounds applied by [`validate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Deepest allowed nesting of arrays and objects (at most [`MAX_DEPTH_CEILING`]).
    pub max_depth: usize,
    /// Longest allowed string, in raw (escaped) bytes between the quotes; also bounds numbers.
    pub max_string_len: usize,
    /// Largest accepted input, in bytes.
    pub max_input_len: usize,
    /// Accept backslash escapes in member names. slup messages never need them, and refusing
    /// them means two spellings of one name (`"nonce"`, `"n\u006fnce"`) can never be read
    /// differently by the scanner and the typed decoder.
    pub escaped_names: bool,
}

/// The limits every slup message decoder uses (see docs/PROTOCOL.md, "Limits").
pub const DEFAULT_LIMITS: Limits = Limits {
    max_depth: 16,
    max_string_len: 4096,
    max_input_len: 1 << 20,
    escaped_names: false,
};

/// Plain RFC 8259 with generous bounds: for tools that inspect arbitrary JSON.
pub const PERMISSIVE_LIMITS: Limits = Limits {
    max_depth: MAX_DEPTH_CEILING,
    max_string_len: 1 << 20,
    max_input_len: 16 << 20,
    escaped_names: true,
};

const CTX: &str = "json";

fn err(code: Code, offset: usize) -> DecodeError {
    DecodeError::new(code, offset, CTX)
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Cursor over the input; every access is bounds-checked.
struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos = self.pos.saturating_add(1);
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(is_ws) {
            self.bump();
        }
    }

    fn expect(&mut self, c: u8) -> Result<(), DecodeError> {
        if self.peek() == Some(c) {
            self.bump();
            Ok(())
        } else {
            Err(err(Code::JsonSyntax, self.pos))
        }
    }

    fn hex4(&mut self) -> Result<u16, DecodeError> {
        let mut v: u16 = 0;
        for _ in 0..4 {
            let d = self
                .peek()
                .and_then(|c| (c as char).to_digit(16))
                .ok_or(err(Code::JsonSyntax, self.pos))?;
            v = (v << 4) | d as u16;
            self.bump();
        }
        Ok(v)
    }

    /// Scans a string starting at its opening quote; leaves the cursor after the closing quote.
    fn string(&mut self, max_len: usize) -> Result<(), DecodeError> {
        let open = self.pos;
        self.expect(b'"')?;
        let start = self.pos;
        loop {
            let c = self.peek().ok_or(err(Code::JsonSyntax, self.pos))?;
            if self.pos.saturating_sub(start) > max_len {
                return Err(err(Code::StringTooLong, open));
            }
            match c {
                b'"' => break,
                0x00..=0x1f => return Err(err(Code::JsonSyntax, self.pos)),
                b'\\' => {
                    self.bump();
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => self.bump(),
                        Some(b'u') => {
                            self.bump();
                            let at = self.pos;
                            let u = self.hex4()?;
                            if (0xD800..0xDC00).contains(&u) {
                                // A high surrogate must be followed by an escaped low one.
                                if self.peek() != Some(b'\\') {
                                    return Err(err(Code::InvalidUtf8, at));
                                }
                                self.bump();
                                if self.peek() != Some(b'u') {
                                    return Err(err(Code::InvalidUtf8, at));
                                }
                                self.bump();
                                let lo = self.hex4()?;
                                if !(0xDC00..0xE000).contains(&lo) {
                                    return Err(err(Code::InvalidUtf8, at));
                                }
                            } else if (0xDC00..0xE000).contains(&u) {
                                return Err(err(Code::InvalidUtf8, at));
                            }
                        }
                        _ => return Err(err(Code::JsonSyntax, self.pos)),
                    }
                }
                _ => self.bump(),
            }
        }
        let raw = self.b.get(start..self.pos).unwrap_or_default();
        if core::str::from_utf8(raw).is_err() {
            return Err(err(Code::InvalidUtf8, start));
        }
        self.bump(); // closing quote
        Ok(())
    }

    /// Scans a member name: a string, without escapes unless `limits` allow them.
    fn name(&mut self, limits: &Limits) -> Result<(), DecodeError> {
        let start = self.pos;
        self.string(limits.max_string_len)?;
        let raw = self.b.get(start..self.pos).unwrap_or_default();
        if !limits.escaped_names && raw.contains(&b'\\') {
            return Err(err(Code::EscapedMemberName, start));
        }
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let s = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        self.pos.saturating_sub(s)
    }

    fn number(&mut self, max_len: usize) -> Result<(), DecodeError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.bump();
        }
        match self.peek() {
            Some(b'0') => self.bump(),
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(err(Code::JsonSyntax, self.pos)),
        }
        if self.peek() == Some(b'.') {
            self.bump();
            if self.digits() == 0 {
                return Err(err(Code::JsonSyntax, self.pos));
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.bump();
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.bump();
            }
            if self.digits() == 0 {
                return Err(err(Code::JsonSyntax, self.pos));
            }
        }
        if self.pos.saturating_sub(start) > max_len {
            return Err(err(Code::StringTooLong, start));
        }
        Ok(())
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), DecodeError> {
        let end = self.pos.saturating_add(word.len());
        if self.b.get(self.pos..end) == Some(word) {
            self.pos = end;
            Ok(())
        } else {
            Err(err(Code::JsonSyntax, self.pos))
        }
    }
}

/// Checks that `input` is exactly one RFC 8259 JSON value (surrounding whitespace allowed)
/// within `limits`. Never recurses, never panics.
pub fn validate(input: &[u8], limits: &Limits) -> Result<(), DecodeError> {
    if input.len() > limits.max_input_len {
        return Err(err(Code::MessageTooLarge, limits.max_input_len));
    }
    let max_depth = limits.max_depth.min(MAX_DEPTH_CEILING);
    let mut c = Cursor { b: input, pos: 0 };
    // Bit i set: level i is an object; clear: an array.
    let mut stack: u64 = 0;
    let mut depth: usize = 0;
    c.skip_ws();
    'value: loop {
        // Expecting a value at the cursor.
        match c.peek() {
            Some(open @ (b'{' | b'[')) => {
                if depth >= max_depth {
                    return Err(err(Code::DepthExceeded, c.pos));
                }
                let is_obj = open == b'{';
                stack = (stack & !(1u64 << depth)) | (u64::from(is_obj) << depth);
                depth = depth.saturating_add(1);
                c.bump();
                c.skip_ws();
                let close = if is_obj { b'}' } else { b']' };
                if c.peek() == Some(close) {
                    c.bump();
                    depth = depth.saturating_sub(1);
                } else {
                    if is_obj {
                        c.name(limits)?;
                        c.skip_ws();
                        c.expect(b':')?;
                        c.skip_ws();
                    }
                    continue 'value;
                }
            }
            Some(b'"') => c.string(limits.max_string_len)?,
            Some(b't') => c.literal(b"true")?,
            Some(b'f') => c.literal(b"false")?,
            Some(b'n') => c.literal(b"null")?,
            Some(b'-' | b'0'..=b'9') => c.number(limits.max_string_len)?,
            _ => return Err(err(Code::JsonSyntax, c.pos)),
        }
        // After a complete value: close containers or move to the next element.
        loop {
            c.skip_ws();
            if depth == 0 {
                return if c.pos == input.len() {
                    Ok(())
                } else {
                    Err(err(Code::TrailingBytes, c.pos))
                };
            }
            let top = depth.saturating_sub(1);
            let in_obj = stack & (1u64 << top) != 0;
            match c.peek() {
                Some(b',') => {
                    c.bump();
                    c.skip_ws();
                    if in_obj {
                        c.name(limits)?;
                        c.skip_ws();
                        c.expect(b':')?;
                        c.skip_ws();
                    }
                    continue 'value;
                }
                Some(b'}') if in_obj => {
                    c.bump();
                    depth = top;
                }
                Some(b']') if !in_obj => {
                    c.bump();
                    depth = top;
                }
                _ => return Err(err(Code::JsonSyntax, c.pos)),
            }
        }
    }
}

/// Checks that raw string content (between the quotes) holds only valid escapes.
pub fn escapes_valid(raw: &str) -> bool {
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch == '\\' && unescape_one(&mut chars).is_none() {
            return false;
        }
    }
    true
}

fn hex4_chars(chars: &mut core::str::Chars<'_>) -> Option<u32> {
    let mut v = 0u32;
    for _ in 0..4 {
        v = (v << 4) | chars.next()?.to_digit(16)?;
    }
    Some(v)
}

/// Decodes one escape sequence; `chars` is positioned just after the backslash. Handles
/// surrogate pairs. `None` for an invalid escape (which [`validate`] never lets through).
pub fn unescape_one(chars: &mut core::str::Chars<'_>) -> Option<char> {
    Some(match chars.next()? {
        '"' => '"',
        '\\' => '\\',
        '/' => '/',
        'b' => '\u{8}',
        'f' => '\u{c}',
        'n' => '\n',
        'r' => '\r',
        't' => '\t',
        'u' => {
            let hi = hex4_chars(chars)?;
            if (0xD800..0xDC00).contains(&hi) {
                if chars.next()? != '\\' || chars.next()? != 'u' {
                    return None;
                }
                let lo = hex4_chars(chars)?;
                if !(0xDC00..0xE000).contains(&lo) {
                    return None;
                }
                char::from_u32(0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00))?
            } else {
                char::from_u32(hi)?
            }
        }
        _ => return None,
    })
}

/// The kind of a JSON value, from its first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{…}`
    Object,
    /// `[…]`
    Array,
    /// `"…"`
    String,
    /// a number
    Number,
    /// `true` or `false`
    Bool,
    /// `null`
    Null,
}

/// One value of a validated document: its exact bytes and where they start in the input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    /// The value's bytes, from its first to its last byte inclusive.
    pub bytes: &'a [u8],
    /// Offset of the first byte in the whole input.
    pub offset: usize,
}

/// Returns the end (exclusive) of the value starting at `pos` in validated `b`.
/// Iterative; on input that is not validated it stops at the end rather than panicking.
fn value_end(b: &[u8], mut pos: usize) -> usize {
    let mut depth: usize = 0;
    loop {
        let Some(&c) = b.get(pos) else { return pos };
        match c {
            b'"' => {
                pos = pos.saturating_add(1);
                while let Some(&s) = b.get(pos) {
                    pos = pos.saturating_add(1);
                    match s {
                        b'\\' => pos = pos.saturating_add(1),
                        b'"' => break,
                        _ => {}
                    }
                }
            }
            b'{' | b'[' => {
                depth = depth.saturating_add(1);
                pos = pos.saturating_add(1);
            }
            b'}' | b']' => {
                depth = depth.saturating_sub(1);
                pos = pos.saturating_add(1);
            }
            _ if depth == 0 => {
                // A scalar at top level: runs until a delimiter.
                while b
                    .get(pos)
                    .is_some_and(|&s| !matches!(s, b',' | b'}' | b']') && !is_ws(s))
                {
                    pos = pos.saturating_add(1);
                }
                return pos;
            }
            _ => pos = pos.saturating_add(1),
        }
        if depth == 0 {
            return pos;
        }
    }
}

fn skip_ws_at(b: &[u8], mut pos: usize) -> usize {
    while b.get(pos).copied().is_some_and(is_ws) {
        pos = pos.saturating_add(1);
    }
    pos
}

impl<'a> Node<'a> {
    /// The root value of a document, after validating it with `limits`.
    pub fn parse(input: &'a [u8], limits: &Limits) -> Result<Node<'a>, DecodeError> {
        validate(input, limits)?;
        let start = skip_ws_at(input, 0);
        let end = value_end(input, start);
        Ok(Node {
            bytes: input.get(start..end).unwrap_or_default(),
            offset: start,
        })
    }

    /// The value's kind.
    pub fn kind(&self) -> Kind {
        match self.bytes.first() {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// A [`DecodeError`] located at this node.
    pub fn error(&self, code: Code, context: &'static str) -> DecodeError {
        DecodeError::new(code, self.offset, context)
    }

    /// Requires this node to be of `kind`.
    pub fn expect(&self, kind: Kind, context: &'static str) -> Result<(), DecodeError> {
        if self.kind() == kind {
            Ok(())
        } else {
            Err(self.error(Code::WrongType, context))
        }
    }

    /// The raw content of a string node (between the quotes, escapes in place).
    pub fn raw_str(&self) -> Option<&'a str> {
        if self.kind() != Kind::String {
            return None;
        }
        let inner = self.bytes.get(1..self.bytes.len().saturating_sub(1))?;
        core::str::from_utf8(inner).ok()
    }

    /// The members of an object node, as (raw key, value). Empty for non-objects.
    pub fn members(&self) -> Members<'a> {
        Members {
            node: *self,
            pos: if self.kind() == Kind::Object {
                1
            } else {
                usize::MAX
            },
        }
    }

    /// The elements of an array node. Empty for non-arrays.
    pub fn elements(&self) -> Elements<'a> {
        Elements {
            node: *self,
            pos: if self.kind() == Kind::Array {
                1
            } else {
                usize::MAX
            },
        }
    }

    /// The member named `name` (compared after unescaping), if present. Two members with that
    /// name are an error: a signed envelope with two `request`s must never verify one and act
    /// on the other.
    pub fn member(
        &self,
        name: &str,
        context: &'static str,
    ) -> Result<Option<Node<'a>>, DecodeError> {
        let mut found = None;
        for (key, value) in self.members() {
            if key_eq(key, name) {
                if found.is_some() {
                    return Err(value.error(Code::DuplicateField, context));
                }
                found = Some(value);
            }
        }
        Ok(found)
    }

    /// Like [`Node::member`], but absence is [`Code::MissingField`].
    pub fn required(&self, name: &str, context: &'static str) -> Result<Node<'a>, DecodeError> {
        self.member(name, context)?
            .ok_or(self.error(Code::MissingField, context))
    }

    /// Requires every member name of this object to be one of `allowed` (strict objects).
    pub fn only_members(&self, allowed: &[&str], context: &'static str) -> Result<(), DecodeError> {
        for (key, value) in self.members() {
            if !allowed.iter().any(|a| key_eq(key, a)) {
                return Err(value.error(Code::UnknownField, context));
            }
        }
        Ok(())
    }

    fn sub(&self, start: usize, end: usize) -> Node<'a> {
        Node {
            bytes: self.bytes.get(start..end).unwrap_or_default(),
            offset: self.offset.saturating_add(start),
        }
    }
}

/// `true` if the raw (possibly escaped) key equals `name`.
pub fn key_eq(raw: &str, name: &str) -> bool {
    if !raw.contains('\\') {
        return raw == name;
    }
    crate::types::Text::Raw(raw).eq_str(name)
}

/// Iterator over the members of an object [`Node`].
#[derive(Clone, Debug)]
pub struct Members<'a> {
    node: Node<'a>,
    pos: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, Node<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.node.bytes;
        let mut pos = skip_ws_at(b, self.pos);
        match b.get(pos) {
            Some(b'"') => {}
            _ => {
                self.pos = usize::MAX;
                return None;
            }
        }
        let key_end = value_end(b, pos);
        let key = self.node.sub(pos, key_end).raw_str()?;
        pos = skip_ws_at(b, key_end);
        if b.get(pos) != Some(&b':') {
            self.pos = usize::MAX;
            return None;
        }
        let vstart = skip_ws_at(b, pos.saturating_add(1));
        let vend = value_end(b, vstart);
        let value = self.node.sub(vstart, vend);
        let after = skip_ws_at(b, vend);
        self.pos = if b.get(after) == Some(&b',') {
            after.saturating_add(1)
        } else {
            usize::MAX
        };
        Some((key, value))
    }
}

/// Iterator over the elements of an array [`Node`].
#[derive(Clone, Debug)]
pub struct Elements<'a> {
    node: Node<'a>,
    pos: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Node<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.node.bytes;
        let start = skip_ws_at(b, self.pos);
        match b.get(start) {
            None | Some(b']') => {
                self.pos = usize::MAX;
                return None;
            }
            _ => {}
        }
        let end = value_end(b, start);
        let after = skip_ws_at(b, end);
        self.pos = if b.get(after) == Some(&b',') {
            after.saturating_add(1)
        } else {
            usize::MAX
        };
        Some(self.node.sub(start, end))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        validate(s.as_bytes(), &DEFAULT_LIMITS).is_ok()
    }

    #[test]
    fn accepts_and_rejects_basics() {
        for good in [
            "{}",
            "[]",
            "0",
            "-0.5e+3",
            "\"a\\u00e9\\ud83d\\ude00\"",
            " {\"a\" : [1, true, null]} ",
            "{\"a\":{\"b\":[]}}",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "",
            "{",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            "\"\\ud800\"",
            "\"\\udc00\"",
            "\"\t\"",
            "{\"a\" 1}",
            "[1] x",
            "nul",
            "\"\\x\"",
            "{1:2}",
            "[\"\\ud800\\u0041\"]",
        ] {
            assert!(!ok(bad), "{bad}");
        }
    }

    #[test]
    fn nesting_bomb_is_an_error_not_a_crash() {
        let mut bomb = std::vec::Vec::from(&b"{\"x\":"[..]);
        bomb.extend(core::iter::repeat_n(b'[', 10_000));
        let e = validate(&bomb, &DEFAULT_LIMITS).unwrap_err();
        assert_eq!(e.code, Code::DepthExceeded);
    }

    #[test]
    fn members_and_spans() {
        let doc = br#" {"a" : {"x":"}"} , "b":[1,{"c":2}], "d\u0065":3 } "#;
        assert_eq!(
            validate(doc, &DEFAULT_LIMITS).unwrap_err().code,
            Code::EscapedMemberName
        );
        let root = Node::parse(doc, &PERMISSIVE_LIMITS).unwrap();
        let keys: std::vec::Vec<_> = root.members().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "d\\u0065"]);
        let a = root.required("a", "t").unwrap();
        assert_eq!(a.bytes, br#"{"x":"}"}"#);
        assert_eq!(&doc[a.offset..a.offset + a.bytes.len()], a.bytes);
        let b = root.required("b", "t").unwrap();
        assert_eq!(b.elements().count(), 2);
        assert_eq!(root.required("de", "t").unwrap().bytes, b"3");
        assert!(root.only_members(&["a", "b"], "t").is_err());
    }

    #[test]
    fn duplicate_member_rejected() {
        let root = Node::parse(br#"{"a":1,"\u0061":2}"#, &PERMISSIVE_LIMITS).unwrap();
        assert_eq!(
            root.member("a", "t").unwrap_err().code,
            Code::DuplicateField
        );
    }

    #[test]
    fn string_length_bound() {
        let limits = Limits {
            max_string_len: 4,
            ..DEFAULT_LIMITS
        };
        assert!(validate(b"\"abcd\"", &limits).is_ok());
        assert_eq!(
            validate(b"\"abcde\"", &limits).unwrap_err().code,
            Code::StringTooLong
        );
    }
}
