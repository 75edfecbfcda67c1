//! HTTP/1.1 framing over any byte stream, with `httparse`: one `POST` out, one response in.
//!
//! The response body is framed by `Transfer-Encoding: chunked`, `Content-Length`, or the end of
//! the connection (we always send `Connection: close`). Every read and write runs against one
//! deadline, and the body against a size cap, so a hostile or broken peer can neither stall the
//! device nor make it allocate without bound. Each failure maps to one stable code:
//!
//! | what happened | code |
//! |---|---|
//! | the peer closed before sending a byte | `NoReply` |
//! | the peer closed mid-head or mid-body | `TruncatedBody` |
//! | the deadline passed | `ReadTimeout` |
//! | reset, aborted, broken pipe | `ConnectionReset` |
//! | body (or head) over the cap | `OversizeBody` |
//! | not HTTP/1.x, or bad framing | `HttpServerError` (whatever answered failed to speak HTTP) |

use std::io::{self, Read, Write};
use std::time::{Duration, Instant};

use slup_core::Code;

use crate::error::{classify_io, HostError};

/// Largest response head (status line and headers) accepted.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// Most response headers accepted.
pub const MAX_HEADERS: usize = 64;
/// Longest chunk-size line or trailer line accepted.
const MAX_LINE: usize = 1024;

/// A byte stream whose blocking operations can be bounded in time.
pub trait Stream: Read + Write {
    /// Bounds the next reads and writes to `d` (never zero).
    fn set_timeout(&mut self, d: Duration) -> io::Result<()>;
}

impl Stream for std::net::TcpStream {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(d))?;
        self.set_write_timeout(Some(d))
    }
}

/// The instant by which the exchange must be over.
#[derive(Clone, Copy, Debug)]
pub struct Deadline(pub Instant);

impl Deadline {
    /// `d` from now.
    pub fn after(d: Duration) -> Self {
        Deadline(Instant::now() + d)
    }

    /// Time left, or `ReadTimeout` when none is.
    pub fn remaining(&self, what: &str) -> Result<Duration, HostError> {
        let left = self.0.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(HostError::new(
                Code::ReadTimeout,
                format!("deadline passed {what}"),
            ))
        } else {
            Ok(left)
        }
    }
}

/// A response: status, content type and the body (in the caller's vector).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// HTTP status code.
    pub status: u16,
    /// The reason phrase (`Not Found`), possibly empty.
    pub reason: String,
    /// `Content-Type`, if any.
    pub content_type: Option<String>,
    /// The challenge of `Proxy-Authenticate` or `WWW-Authenticate`, if any.
    pub authenticate: Option<String>,
    /// The body of an error status was cut short (the peer closed or reset the connection
    /// mid-page). The status still counts: an error page is read for the operator only.
    pub cut: bool,
}

/// At most `max` characters of a body for an operator to read: the text of an HTML page
/// (tags dropped: a proxy's or captive portal's error page says who answered), whitespace
/// collapsed, control characters and invalid UTF-8 shown as `?`.
pub fn excerpt(body: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(body);
    let html = text.trim_start().starts_with('<');
    let mut out = String::new();
    let mut in_tag = false;
    let mut space = false;
    for c in text.chars() {
        if html {
            match c {
                '<' => {
                    in_tag = true;
                    space = !out.is_empty();
                    continue;
                }
                '>' if in_tag => {
                    in_tag = false;
                    continue;
                }
                _ if in_tag => continue,
                _ => {}
            }
        }
        if c.is_whitespace() {
            space = !out.is_empty();
            continue;
        }
        if out.chars().count() >= max {
            out.push('…');
            return out;
        }
        if space {
            out.push(' ');
            space = false;
        }
        out.push(if c.is_control() || c == '\u{fffd}' {
            '?'
        } else {
            c
        });
    }
    out
}

enum Framing {
    Chunked,
    Length(usize),
    UntilClose,
    Empty,
}

/// Buffered reads from a stream under a deadline.
struct Reader<'s, S: Stream> {
    s: &'s mut S,
    deadline: Deadline,
    buf: Vec<u8>,
    /// Bytes of `buf` before this offset are consumed.
    pos: usize,
    seen_any: bool,
}

impl<S: Stream> Reader<'_, S> {
    fn pending(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos = self.pos.saturating_add(n).min(self.buf.len());
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
    }

    /// Reads more bytes; `Ok(false)` at the end of the stream.
    fn fill(&mut self, what: &str) -> Result<bool, HostError> {
        let left = self.deadline.remaining(what)?;
        self.s
            .set_timeout(left)
            .map_err(|e| classify_io(&e, what))?;
        let mut chunk = [0u8; 8192];
        loop {
            match self.s.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.seen_any = true;
                    self.buf
                        .extend_from_slice(chunk.get(..n).unwrap_or_default());
                    return Ok(true);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(classify_io(&e, what)),
            }
        }
    }

    /// The end of the stream came too early.
    fn eof(&self, what: &str) -> HostError {
        if self.seen_any {
            HostError::new(Code::TruncatedBody, format!("connection closed {what}"))
        } else {
            HostError::new(Code::NoReply, "connection closed without a response")
        }
    }

    /// One CRLF-terminated line (without the CRLF), at most [`MAX_LINE`] bytes.
    fn line(&mut self, what: &str) -> Result<Vec<u8>, HostError> {
        loop {
            if let Some(i) = self.pending().windows(2).position(|w| w == b"\r\n") {
                let line = self.pending().get(..i).unwrap_or_default().to_vec();
                self.consume(i + 2);
                return Ok(line);
            }
            if self.pending().len() > MAX_LINE {
                return Err(malformed(format!("line over {MAX_LINE} bytes {what}")));
            }
            if !self.fill(what)? {
                return Err(self.eof(what));
            }
        }
    }
}

fn malformed(why: impl Into<String>) -> HostError {
    HostError::new(
        Code::HttpServerError,
        format!("malformed HTTP response: {}", why.into()),
    )
}

fn oversize(got: usize, cap: usize) -> HostError {
    HostError::new(
        Code::OversizeBody,
        format!("response body of {got} bytes or more; the limit is {cap}"),
    )
}

/// Writes `head` and `body` before the deadline.
pub fn write_all<S: Stream>(
    s: &mut S,
    deadline: Deadline,
    head: &[u8],
    body: &[u8],
) -> Result<(), HostError> {
    for part in [head, body] {
        let mut rest = part;
        while !rest.is_empty() {
            let left = deadline.remaining("sending the request")?;
            s.set_timeout(left)
                .map_err(|e| classify_io(&e, "sending the request"))?;
            match s.write(rest) {
                Ok(0) => {
                    return Err(HostError::new(
                        Code::ConnectionReset,
                        "connection closed while sending the request",
                    ))
                }
                Ok(n) => rest = rest.get(n..).unwrap_or_default(),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(classify_io(&e, "sending the request")),
            }
        }
    }
    s.flush()
        .map_err(|e| classify_io(&e, "sending the request"))
}

/// Reads one response head (skipping `1xx` interim responses) and then its body into `body`,
/// at most `cap` bytes. `no_body` is set for answers to `CONNECT`, whose 2xx has none.
pub fn read_response<S: Stream>(
    s: &mut S,
    deadline: Deadline,
    cap: usize,
    body: &mut Vec<u8>,
    no_body: bool,
) -> Result<Head, HostError> {
    let mut r = Reader {
        s,
        deadline,
        buf: Vec::new(),
        pos: 0,
        seen_any: false,
    };
    body.clear();
    loop {
        let (mut head, framing) = read_head(&mut r, no_body)?;
        if (100..200).contains(&head.status) && head.status != 101 {
            continue;
        }
        match read_body(&mut r, framing, cap, body) {
            Ok(()) => {}
            // A peer that refuses us (a proxy's 407, a gateway's 502) often closes without
            // reading our request, which resets the connection under its own page: the
            // status has arrived, and it is the answer.
            Err(e)
                if head.status >= 300
                    && matches!(e.code, Code::ConnectionReset | Code::TruncatedBody) =>
            {
                head.cut = true;
                return Ok(head);
            }
            Err(e) => return Err(e),
        }
        if no_body && !r.pending().is_empty() {
            return Err(malformed("bytes after the head of a CONNECT answer"));
        }
        return Ok(head);
    }
}

fn read_head<S: Stream>(
    r: &mut Reader<'_, S>,
    no_body: bool,
) -> Result<(Head, Framing), HostError> {
    const WHAT: &str = "before the end of the response head";
    loop {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(r.pending()) {
            Ok(httparse::Status::Complete(n)) => {
                let status = resp.code.unwrap_or(0);
                let reason = resp.reason.unwrap_or("").to_string();
                let mut content_type = None;
                let mut authenticate = None;
                let mut length: Option<usize> = None;
                let mut chunked = false;
                let mut encoded = false;
                for h in resp.headers.iter() {
                    let name = h.name;
                    let value = std::str::from_utf8(h.value)
                        .map_err(|_| malformed(format!("non-text {name} header")))?
                        .trim();
                    if name.eq_ignore_ascii_case("content-type") {
                        content_type = Some(value.to_string());
                    } else if name.eq_ignore_ascii_case("proxy-authenticate")
                        || name.eq_ignore_ascii_case("www-authenticate")
                    {
                        authenticate = Some(value.to_string());
                    } else if name.eq_ignore_ascii_case("content-length") {
                        let v: usize = value
                            .parse()
                            .map_err(|_| malformed(format!("Content-Length {value:?}")))?;
                        if length.is_some_and(|l| l != v) {
                            return Err(malformed("two different Content-Length headers"));
                        }
                        length = Some(v);
                    } else if name.eq_ignore_ascii_case("transfer-encoding") {
                        encoded = true;
                        // Chunked must be the last coding when present (RFC 9112 §6.1).
                        chunked = value
                            .rsplit(',')
                            .next()
                            .is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
                    }
                }
                let framing = if no_body && (200..300).contains(&status)
                    || status == 204
                    || status == 304
                    || (100..200).contains(&status)
                {
                    Framing::Empty
                } else if chunked {
                    Framing::Chunked
                } else if encoded {
                    Framing::UntilClose
                } else if let Some(l) = length {
                    Framing::Length(l)
                } else {
                    Framing::UntilClose
                };
                r.consume(n);
                return Ok((
                    Head {
                        status,
                        reason,
                        content_type,
                        authenticate,
                        cut: false,
                    },
                    framing,
                ));
            }
            Ok(httparse::Status::Partial) => {
                if r.pending().len() >= MAX_HEAD_BYTES {
                    return Err(HostError::new(
                        Code::OversizeBody,
                        format!("response head over {MAX_HEAD_BYTES} bytes"),
                    ));
                }
            }
            Err(httparse::Error::TooManyHeaders) => {
                return Err(HostError::new(
                    Code::OversizeBody,
                    format!("more than {MAX_HEADERS} response headers"),
                ))
            }
            Err(e) => return Err(malformed(e.to_string())),
        }
        if !r.fill(WHAT)? {
            return Err(r.eof(WHAT));
        }
    }
}

fn read_body<S: Stream>(
    r: &mut Reader<'_, S>,
    framing: Framing,
    cap: usize,
    body: &mut Vec<u8>,
) -> Result<(), HostError> {
    match framing {
        Framing::Empty => Ok(()),
        Framing::Length(n) => {
            if n > cap {
                return Err(oversize(n, cap));
            }
            read_exact(r, n, body, "before the end of the body")
        }
        Framing::UntilClose => loop {
            let take = r.pending().len();
            if body.len().saturating_add(take) > cap {
                return Err(oversize(body.len().saturating_add(take), cap));
            }
            body.extend_from_slice(r.pending());
            r.consume(take);
            if !r.fill("reading the body")? {
                return Ok(());
            }
        },
        Framing::Chunked => loop {
            const WHAT: &str = "inside a chunked body";
            let line = r.line(WHAT)?;
            let mut sized = line.clone();
            sized.extend_from_slice(b"\r\n");
            let size = match httparse::parse_chunk_size(&sized) {
                Ok(httparse::Status::Complete((_, size))) => size,
                _ => return Err(malformed("bad chunk size line")),
            };
            if size == 0 {
                // Trailers, up to the empty line.
                while !r.line(WHAT)?.is_empty() {}
                return Ok(());
            }
            let size = usize::try_from(size).unwrap_or(usize::MAX);
            if body.len().saturating_add(size) > cap {
                return Err(oversize(body.len().saturating_add(size), cap));
            }
            read_exact(r, size, body, WHAT)?;
            if !r.line(WHAT)?.is_empty() {
                return Err(malformed("chunk data longer than its size"));
            }
        },
    }
}

fn read_exact<S: Stream>(
    r: &mut Reader<'_, S>,
    n: usize,
    body: &mut Vec<u8>,
    what: &str,
) -> Result<(), HostError> {
    let mut left = n;
    loop {
        let take = left.min(r.pending().len());
        body.extend_from_slice(r.pending().get(..take).unwrap_or_default());
        r.consume(take);
        left -= take;
        if left == 0 {
            return Ok(());
        }
        if !r.fill(what)? {
            return Err(HostError::new(
                Code::TruncatedBody,
                format!("connection closed {what} ({} of {n} bytes)", n - left),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scripted peer: reads come from `input` in `step`-byte pieces.
    struct Script {
        input: Vec<u8>,
        at: usize,
        step: usize,
        written: Vec<u8>,
    }

    impl Read for Script {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.input.len() - self.at);
            buf[..n].copy_from_slice(&self.input[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }
    impl Write for Script {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.written.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    impl Stream for Script {
        fn set_timeout(&mut self, _: Duration) -> io::Result<()> {
            Ok(())
        }
    }

    fn read(input: &[u8], step: usize, cap: usize) -> Result<(Head, Vec<u8>), HostError> {
        let mut s = Script {
            input: input.to_vec(),
            at: 0,
            step,
            written: Vec::new(),
        };
        let mut body = Vec::new();
        let head = read_response(
            &mut s,
            Deadline::after(Duration::from_secs(5)),
            cap,
            &mut body,
            false,
        )?;
        Ok((head, body))
    }

    #[test]
    fn frames_bodies_every_way_at_any_read_size() {
        let cases: [(&[u8], &[u8]); 5] = [
            (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", b"hello"),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nhel\r\n2\r\nlo\r\n0\r\nX-T: 1\r\n\r\n",
                b"hello",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nhello", b"hello"),
            (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", b"hi"),
            (b"HTTP/1.1 204 No Content\r\nContent-Length: 9\r\n\r\n", b""),
        ];
        for (wire, want) in cases {
            for step in [1, 3, 7, 4096] {
                let (head, body) = read(wire, step, 64).unwrap();
                assert_eq!(body, want, "{step} {:?}", String::from_utf8_lossy(wire));
                assert!(head.status == 200 || head.status == 204);
            }
        }
    }

    #[test]
    fn excerpts_show_the_text_an_operator_needs() {
        assert_eq!(
            excerpt(
                b"<html><head><title>407 Proxy Authentication Required</title></head>\n<body><h1>Access denied</h1></body></html>",
                80
            ),
            "407 Proxy Authentication Required Access denied"
        );
        assert_eq!(excerpt(b"{\"a\":\n  1}\x01\xff", 80), "{\"a\": 1}??");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(b"", 3), "");
    }

    #[test]
    fn each_failure_has_its_code() {
        let cases: [(&[u8], Code); 9] = [
            (b"", Code::NoReply),
            (b"HTTP/1.1 200 OK\r\nContent-Le", Code::TruncatedBody),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhello",
                Code::TruncatedBody,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
                Code::TruncatedBody,
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 65\r\n\r\n",
                Code::OversizeBody,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n",
                Code::OversizeBody,
            ),
            (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", Code::HttpServerError),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                Code::HttpServerError,
            ),
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                Code::HttpServerError,
            ),
        ];
        for (wire, code) in cases {
            let e = read(wire, 5, 64).unwrap_err();
            assert_eq!(e.code, code, "{:?}: {e}", String::from_utf8_lossy(wire));
        }
        let mut huge = b"HTTP/1.1 200 OK\r\n".to_vec();
        huge.extend(std::iter::repeat_n(b"X-Pad: 0123456789\r\n".iter().copied(), 1000).flatten());
        assert_eq!(read(&huge, 4096, 64).unwrap_err().code, Code::OversizeBody);
        let mut close = b"HTTP/1.1 200 OK\r\n\r\n".to_vec();
        close.extend([b'x'; 65]);
        assert_eq!(read(&close, 4096, 64).unwrap_err().code, Code::OversizeBody);
    }
}
