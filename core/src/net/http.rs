//! HTTP/1.1 framing without I/O: the request head written into a buffer, and a response reader
//! that is fed whatever bytes arrive and says when the answer is complete.
//!
//! Both the firmware (embedded-io sockets, TLS) and the host runtime (std sockets with
//! deadlines) drive the same reader, so every peer misbehaviour maps to the same stable code:
//!
//! | what happened                                   | code              |
//! |-------------------------------------------------|-------------------|
//! | the peer closed before sending a byte           | `NoReply`         |
//! | the peer closed mid-head or mid-body            | `TruncatedBody`   |
//! | body or head larger than the caller's buffer    | `OversizeBody`    |
//! | not HTTP/1.x, or broken framing                 | `HttpServerError` |
//!
//! Status codes are reported, not judged: the caller maps 4xx/5xx (and a proxy's 407).

use core::ops::Range;

use crate::error::Code;

/// Most response headers accepted.
pub const MAX_HEADERS: usize = 32;

/// Writes a `POST` head for a body of `body_len` bytes into `out` and returns its length.
/// `target` is the path (origin form) or, through a plain-HTTP proxy, the absolute URL.
/// `extra` headers (e.g. `Proxy-Authorization`) follow the standard ones.
pub fn write_post_head(
    out: &mut [u8],
    host: &str,
    target: &str,
    body_len: usize,
    extra: &[(&str, &str)],
) -> Result<usize, Code> {
    let mut w = Head { out, len: 0 };
    w.line(&["POST ", target, " HTTP/1.1"])?;
    w.line(&["Host: ", host])?;
    w.line(&["Content-Type: application/json"])?;
    w.line(&["Accept: application/json"])?;
    let mut digits = [0u8; 20];
    w.line(&["Content-Length: ", decimal(body_len, &mut digits)])?;
    w.line(&["Connection: close"])?;
    for (name, value) in extra {
        w.line(&[name, ": ", value])?;
    }
    w.line(&[])?;
    Ok(w.len)
}

/// Writes a `CONNECT host:port` head (for an HTTPS tunnel through a proxy) into `out`.
pub fn write_connect_head(
    out: &mut [u8],
    authority: &str,
    extra: &[(&str, &str)],
) -> Result<usize, Code> {
    let mut w = Head { out, len: 0 };
    w.line(&["CONNECT ", authority, " HTTP/1.1"])?;
    w.line(&["Host: ", authority])?;
    for (name, value) in extra {
        w.line(&[name, ": ", value])?;
    }
    w.line(&[])?;
    Ok(w.len)
}

struct Head<'b> {
    out: &'b mut [u8],
    len: usize,
}

impl Head<'_> {
    fn line(&mut self, parts: &[&str]) -> Result<(), Code> {
        for p in parts.iter().copied().chain(["\r\n"]) {
            // A header value must not smuggle a line break into the request.
            if p != "\r\n" && p.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(Code::InvalidArgument);
            }
            let end = self.len.checked_add(p.len()).ok_or(Code::BufferTooSmall)?;
            self.out
                .get_mut(self.len..end)
                .ok_or(Code::BufferTooSmall)?
                .copy_from_slice(p.as_bytes());
            self.len = end;
        }
        Ok(())
    }
}

fn decimal(mut n: usize, buf: &mut [u8; 20]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        if let Some(d) = buf.get_mut(i) {
            // n % 10 < 10: the cast cannot truncate.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    core::str::from_utf8(buf.get(i..).unwrap_or_default()).unwrap_or("0")
}

/// A complete response: its status and where the body sits in the reader's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// `true` if `Content-Type` is `application/json` (parameters allowed).
    pub json: bool,
    /// The body, as a range of the buffer given to [`ResponseReader::new`].
    pub body: Range<usize>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    UntilClose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Reading the head; `filled` bytes of it are in the buffer.
    Head,
    /// Reading the body. Chunked bodies are decoded in place: `body_end` is where decoded data
    /// stops, and the raw bytes after it are still to be decoded.
    Body {
        framing: Framing,
        /// Bytes left of the current chunk (chunked) or of the body (length).
        left: usize,
        /// The last chunk was seen; only the trailer remains.
        trailer: bool,
    },
    Done,
}

/// Reads one response into a caller buffer, bytes as they come.
///
/// ```
/// use slup_core::net::http::{Progress, ResponseReader};
///
/// let mut buf = [0u8; 256];
/// let mut r = ResponseReader::new(&mut buf);
/// let wire = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
/// let mut done = None;
/// for byte in wire {
///     r.space()[0] = *byte;
///     if let Progress::Done(resp) = r.advance(1)? {
///         done = Some(resp);
///     }
/// }
/// let resp = done.unwrap();
/// assert_eq!((resp.status, resp.json), (200, true));
/// assert_eq!(&r.buffer()[resp.body], b"{}");
/// # Ok::<(), slup_core::Code>(())
/// ```
pub struct ResponseReader<'b> {
    buf: &'b mut [u8],
    /// Raw bytes received and not yet decoded end here.
    filled: usize,
    /// Decoded body: `body_start..body_end`.
    body_start: usize,
    body_end: usize,
    status: u16,
    json: bool,
    state: State,
    /// Stop after the head (a proxy's answer to `CONNECT`: what follows is the tunnel).
    head_only: bool,
}

/// What [`ResponseReader::advance`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Keep reading into [`ResponseReader::space`].
    NeedMore,
    /// The response is complete.
    Done(Response),
}

impl<'b> ResponseReader<'b> {
    /// A reader whose head and body must fit `buf`.
    pub fn new(buf: &'b mut [u8]) -> Self {
        ResponseReader {
            buf,
            filled: 0,
            body_start: 0,
            body_end: 0,
            status: 0,
            json: false,
            state: State::Head,
            head_only: false,
        }
    }

    /// A reader that completes at the end of the head, with an empty body.
    pub fn head_only(buf: &'b mut [u8]) -> Self {
        ResponseReader {
            head_only: true,
            ..ResponseReader::new(buf)
        }
    }

    /// Where the next bytes go. Empty once the buffer is full (the next `advance(0)` then
    /// reports `OversizeBody` unless the response is complete).
    pub fn space(&mut self) -> &mut [u8] {
        self.buf.get_mut(self.filled..).unwrap_or_default()
    }

    /// The whole buffer (index it with [`Response::body`]).
    pub fn buffer(&self) -> &[u8] {
        self.buf
    }

    /// `true` once any byte has arrived.
    pub fn started(&self) -> bool {
        self.filled > 0 || self.state != State::Head
    }

    /// `n` more bytes were written into [`ResponseReader::space`].
    pub fn advance(&mut self, n: usize) -> Result<Progress, Code> {
        self.filled = self
            .filled
            .checked_add(n)
            .filter(|f| *f <= self.buf.len())
            .ok_or(Code::InvalidArgument)?;
        loop {
            match self.state {
                State::Done => return Ok(Progress::Done(self.response())),
                State::Head => {
                    if !self.parse_head()? {
                        return self.need_more();
                    }
                }
                State::Body {
                    framing,
                    left,
                    trailer,
                } => {
                    if !self.decode_body(framing, left, trailer)? {
                        return self.need_more();
                    }
                }
            }
        }
    }

    /// The connection closed: the response is complete only if its framing says so.
    pub fn finish(&mut self) -> Result<Response, Code> {
        match self.state {
            State::Done => Ok(self.response()),
            State::Head if self.filled == 0 => Err(Code::NoReply),
            State::Body {
                framing: Framing::UntilClose,
                ..
            } => {
                self.body_end = self.filled;
                self.state = State::Done;
                Ok(self.response())
            }
            _ => Err(Code::TruncatedBody),
        }
    }

    fn need_more(&self) -> Result<Progress, Code> {
        if self.filled >= self.buf.len() {
            return Err(Code::OversizeBody);
        }
        Ok(Progress::NeedMore)
    }

    fn response(&self) -> Response {
        Response {
            status: self.status,
            json: self.json,
            body: self.body_start..self.body_end,
        }
    }

    /// Parses the head if it is all there; `false` if more bytes are needed.
    fn parse_head(&mut self) -> Result<bool, Code> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        let raw = self.buf.get(..self.filled).unwrap_or_default();
        let head_len = match resp.parse(raw) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Ok(false),
            Err(httparse::Error::TooManyHeaders) => return Err(Code::OversizeBody),
            Err(_) => return Err(Code::HttpServerError),
        };
        let status = resp.code.ok_or(Code::HttpServerError)?;
        let mut framing = Framing::UntilClose;
        let mut json = false;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                if trimmed(h.value).eq_ignore_ascii_case(b"chunked") {
                    framing = Framing::Chunked;
                } else {
                    return Err(Code::HttpServerError);
                }
            } else if h.name.eq_ignore_ascii_case("content-length") {
                let n = parse_decimal(trimmed(h.value)).ok_or(Code::HttpServerError)?;
                match framing {
                    Framing::Length(m) if m != n => return Err(Code::HttpServerError),
                    Framing::Chunked => {}
                    _ => framing = Framing::Length(n),
                }
            } else if h.name.eq_ignore_ascii_case("content-type") {
                let v = trimmed(h.value);
                let essence = v.split(|b| *b == b';').next().unwrap_or_default();
                json = trimmed(essence).eq_ignore_ascii_case(b"application/json");
            }
        }
        self.status = status;
        self.json = json;
        // 1xx, 204 and 304 carry no body; nor does the head of a tunnel.
        if status < 200 || status == 204 || status == 304 || self.head_only {
            framing = Framing::Length(0);
        }
        // The body is decoded where the head was: move what followed the head to the front.
        self.buf.copy_within(head_len..self.filled, 0);
        self.filled -= head_len;
        self.body_start = 0;
        self.body_end = 0;
        let left = match framing {
            Framing::Length(n) if n > self.buf.len() => return Err(Code::OversizeBody),
            Framing::Length(n) => n,
            _ => 0,
        };
        self.state = State::Body {
            framing,
            left,
            trailer: false,
        };
        Ok(true)
    }

    /// Decodes what has arrived of the body; `true` when the state moved on (done).
    fn decode_body(&mut self, framing: Framing, left: usize, trailer: bool) -> Result<bool, Code> {
        // `left` only matters to chunked framing; a length body is complete by its size.
        match framing {
            Framing::UntilClose => {
                self.body_end = self.filled;
                Ok(false)
            }
            Framing::Length(n) => {
                if self.filled >= n {
                    // Bytes past the declared length are ignored (`Connection: close`).
                    self.filled = n;
                    self.body_end = n;
                    self.state = State::Done;
                    Ok(true)
                } else {
                    Ok(false)
                }
            }
            Framing::Chunked => self.decode_chunks(left, trailer),
        }
    }

    /// Chunked decoding in place: data is moved down to `body_end`, chunk-size lines dropped.
    fn decode_chunks(&mut self, mut left: usize, mut trailer: bool) -> Result<bool, Code> {
        loop {
            let pending = self.filled - self.body_end;
            if trailer {
                // Trailer fields end with an empty line; we keep none of them.
                let raw = self.buf.get(self.body_end..self.filled).unwrap_or_default();
                return match find_empty_line(raw) {
                    Some(_) => {
                        self.filled = self.body_end;
                        self.state = State::Done;
                        Ok(true)
                    }
                    None => {
                        self.state = State::Body {
                            framing: Framing::Chunked,
                            left: 0,
                            trailer: true,
                        };
                        Ok(false)
                    }
                };
            }
            if left > 0 {
                // Data of the current chunk (followed by CRLF, consumed with the next size line).
                let take = left.min(pending);
                self.body_end += take;
                left -= take;
                if left > 0 || take == pending {
                    self.state = State::Body {
                        framing: Framing::Chunked,
                        left,
                        trailer: false,
                    };
                    return Ok(false);
                }
                continue;
            }
            // At a chunk boundary: optional CRLF after the previous chunk's data, then the size.
            let raw = self.buf.get(self.body_end..self.filled).unwrap_or_default();
            let skip = if self.body_end == self.body_start {
                0
            } else if raw.len() < 2 {
                return self.wait_chunk();
            } else if raw.starts_with(b"\r\n") {
                2
            } else {
                return Err(Code::HttpServerError);
            };
            let line = raw.get(skip..).unwrap_or_default();
            let (consumed, size) = match httparse::parse_chunk_size(line) {
                Ok(httparse::Status::Complete((c, s))) => (c, s),
                Ok(httparse::Status::Partial) => return self.wait_chunk(),
                Err(_) => return Err(Code::HttpServerError),
            };
            let size = usize::try_from(size).map_err(|_| Code::OversizeBody)?;
            let header = skip + consumed;
            // Drop the size line: move the rest of the raw bytes down.
            self.buf
                .copy_within(self.body_end + header..self.filled, self.body_end);
            self.filled -= header;
            if size == 0 {
                trailer = true;
                continue;
            }
            if self.body_end.saturating_add(size) > self.buf.len() {
                return Err(Code::OversizeBody);
            }
            left = size;
        }
    }

    fn wait_chunk(&mut self) -> Result<bool, Code> {
        self.state = State::Body {
            framing: Framing::Chunked,
            left: 0,
            trailer: false,
        };
        Ok(false)
    }
}

fn trimmed(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    v.get(start..end).unwrap_or_default()
}

fn parse_decimal(v: &[u8]) -> Option<usize> {
    if v.is_empty() || v.len() > 12 {
        return None;
    }
    v.iter().try_fold(0usize, |acc, b| {
        let d = b.checked_sub(b'0').filter(|d| *d < 10)?;
        acc.checked_mul(10)?.checked_add(usize::from(d))
    })
}

fn find_empty_line(raw: &[u8]) -> Option<usize> {
    if raw.starts_with(b"\r\n") {
        return Some(2);
    }
    raw.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    /// Feeds `wire` in pieces of `step` bytes, then closes.
    fn read(wire: &[u8], cap: usize, step: usize) -> Result<(Response, Vec<u8>), Code> {
        let mut buf = std::vec![0u8; cap];
        let mut r = ResponseReader::new(&mut buf);
        for piece in wire.chunks(step) {
            let mut fed = 0;
            while fed < piece.len() {
                let space = r.space();
                let n = space.len().min(piece.len() - fed);
                if n == 0 {
                    r.advance(0)?;
                    return Err(Code::OversizeBody);
                }
                space[..n].copy_from_slice(&piece[fed..fed + n]);
                fed += n;
                if let Progress::Done(resp) = r.advance(n)? {
                    let body = r.buffer()[resp.body.clone()].to_vec();
                    return Ok((resp, body));
                }
            }
        }
        let resp = r.finish()?;
        let body = r.buffer()[resp.body.clone()].to_vec();
        Ok((resp, body))
    }

    fn all_steps(wire: &[u8], cap: usize) -> Result<(Response, Vec<u8>), Code> {
        let first = read(wire, cap, wire.len().max(1));
        for step in 1..wire.len().min(64) {
            assert_eq!(read(wire, cap, step), first, "step {step}");
        }
        first
    }

    #[test]
    fn length_chunked_and_until_close_bodies() {
        let (r, body) = all_steps(
            b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{\"a\":1}",
            256,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.json, body.as_slice()),
            (200, true, &b"{\"a\":1}"[..])
        );

        let (r, body) = all_steps(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\n{\"a\r\n4;ext=1\r\n\":1}\r\n0\r\nX-T: 1\r\n\r\n",
            256,
        )
        .unwrap();
        assert_eq!(
            (r.status, r.json, body.as_slice()),
            (200, false, &b"{\"a\":1}"[..])
        );

        let (r, body) = all_steps(b"HTTP/1.0 500 Oops\r\n\r\nbroken", 256).unwrap();
        assert_eq!((r.status, body.as_slice()), (500, &b"broken"[..]));
    }

    #[test]
    fn every_fault_has_its_code() {
        let cases: [(&[u8], usize, Code); 8] = [
            (b"", 64, Code::NoReply),
            (b"HTTP/1.1 200 OK\r\nContent-Le", 64, Code::TruncatedBody),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nabc",
                64,
                Code::TruncatedBody,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
                64,
                Code::TruncatedBody,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n",
                64,
                Code::OversizeBody,
            ),
            (b"SSH-2.0-OpenSSH\r\n\r\n", 64, Code::HttpServerError),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                64,
                Code::HttpServerError,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
                64,
                Code::HttpServerError,
            ),
        ];
        for (wire, cap, want) in cases {
            for step in 1..=wire.len().max(1) {
                assert_eq!(
                    read(wire, cap, step).map(|_| ()),
                    Err(want),
                    "{:?} step {step}",
                    core::str::from_utf8(wire)
                );
            }
        }
        // A head that never ends fills the buffer.
        let mut long = b"HTTP/1.1 200 OK\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'X', 100));
        assert_eq!(read(&long, 64, 7).map(|_| ()), Err(Code::OversizeBody));
        // A chunked body larger than the buffer.
        let wire = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n";
        assert_eq!(read(wire, 64, 5).map(|_| ()), Err(Code::OversizeBody));
    }

    #[test]
    fn request_heads() {
        let mut out = [0u8; 256];
        let n = write_post_head(
            &mut out,
            "127.0.0.1:8182",
            "/cslu/v1/pi",
            42,
            &[("Proxy-Authorization", "Basic dTpw")],
        )
        .unwrap();
        assert_eq!(
            core::str::from_utf8(&out[..n]).unwrap(),
            "POST /cslu/v1/pi HTTP/1.1\r\nHost: 127.0.0.1:8182\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: 42\r\nConnection: close\r\nProxy-Authorization: Basic dTpw\r\n\r\n"
        );
        assert_eq!(
            write_post_head(&mut out, "h", "/\r\nX: y", 0, &[]),
            Err(Code::InvalidArgument)
        );
        assert_eq!(
            write_post_head(&mut out[..10], "h", "/", 0, &[]),
            Err(Code::BufferTooSmall)
        );
        let n = write_connect_head(&mut out, "smartreceiver.cisco.com:443", &[]).unwrap();
        assert!(core::str::from_utf8(&out[..n])
            .unwrap()
            .starts_with("CONNECT smartreceiver.cisco.com:443 HTTP/1.1\r\n"));
    }
}
