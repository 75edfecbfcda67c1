//! HTTP/1.1 framing for the server: reading one request (head parsed by `httparse`, body by
//! `Content-Length`) and writing one response. No routing and no protocol here.

use std::io::{self, Read, Write};

use slup_core::msg::response::ErrorBody;
use slup_core::types::Text;
use slup_core::Code;

/// Largest request head (request line and headers).
pub const MAX_HEAD: usize = 16 * 1024;
/// Most headers in a request.
pub const MAX_HEADERS: usize = 64;

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// `POST`, `GET`, …
    pub method: String,
    /// The path, query removed.
    pub path: String,
    /// The `Content-Type` header, if any.
    pub content_type: Option<String>,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// `Connection: close`, or HTTP/1.0 without keep-alive.
    pub close: bool,
    /// The body.
    pub body: Vec<u8>,
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The peer closed the connection before sending anything: the normal end of keep-alive.
    Closed,
    /// No request started before the idle deadline.
    Idle,
    /// The request is not acceptable: answer `status` with `code` and `message`, then close.
    Bad {
        /// HTTP status.
        status: u16,
        /// Stable code for the error body.
        code: Code,
        /// Why.
        message: String,
        /// The request line, when it was parsed (for the log).
        what: Option<(String, String)>,
    },
    /// The socket failed (timeout in the middle of a request, reset, TLS failure).
    Io(io::Error),
}

fn bad(status: u16, code: Code, message: impl Into<String>) -> ReadError {
    ReadError::Bad {
        status,
        code,
        message: message.into(),
        what: None,
    }
}

/// Reads one request: the head into `buf` (which keeps bytes read past it for the next
/// request on the connection), then `Content-Length` body bytes up to `max_body`.
///
/// The socket's read timeout makes reads return periodically; `give_up(in_request)` then
/// decides: `false` waits on. Giving up before the first byte is [`ReadError::Idle`] (the
/// normal end of an idle keep-alive connection); inside a request it is a `408`.
pub fn read_request<S: Read + Write>(
    stream: &mut S,
    buf: &mut Vec<u8>,
    max_body: usize,
    mut give_up: impl FnMut(bool) -> bool,
) -> Result<Request, ReadError> {
    let mut chunk = [0u8; 8192];
    let head_len = loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut req = httparse::Request::new(&mut headers);
            match req.parse(buf) {
                Ok(httparse::Status::Complete(n)) => break n,
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(bad(
                        400,
                        Code::InvalidArgument,
                        format!("malformed HTTP request: {e}"),
                    ))
                }
            }
            if buf.len() >= MAX_HEAD {
                return Err(bad(
                    431,
                    Code::InvalidArgument,
                    format!("request head larger than {MAX_HEAD} bytes"),
                ));
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) if buf.is_empty() => return Err(ReadError::Closed),
            Ok(0) => {
                return Err(bad(
                    400,
                    Code::TruncatedBody,
                    "connection closed inside the request head",
                ))
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if is_timeout(&e) => {
                if buf.is_empty() {
                    if give_up(false) {
                        return Err(ReadError::Idle);
                    }
                } else if give_up(true) {
                    return Err(bad(
                        408,
                        Code::ReadTimeout,
                        "request head incomplete at the deadline",
                    ));
                }
            }
            Err(e) => return Err(ReadError::Io(e)),
        }
    };

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    // The same bytes parsed Complete just above.
    if !matches!(req.parse(buf), Ok(httparse::Status::Complete(_))) {
        return Err(bad(400, Code::InvalidArgument, "malformed HTTP request"));
    }
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default().to_owned();
    let what = Some((method.clone(), path.clone()));
    let with_what = |e: ReadError| match e {
        ReadError::Bad {
            status,
            code,
            message,
            ..
        } => ReadError::Bad {
            status,
            code,
            message,
            what: what.clone(),
        },
        other => other,
    };
    let http10 = req.version == Some(0);
    let mut content_length: Option<usize> = None;
    let mut content_type = None;
    let mut authorization = None;
    let mut connection = None;
    let mut chunked = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_owned();
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = value.parse::<usize>().map_err(|_| {
                with_what(bad(
                    400,
                    Code::InvalidArgument,
                    format!("Content-Length {value:?} is not a number"),
                ))
            })?;
            if content_length.is_some_and(|m| m != n) {
                return Err(with_what(bad(
                    400,
                    Code::InvalidArgument,
                    "two different Content-Length headers",
                )));
            }
            content_length = Some(n);
        } else if h.name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value);
        } else if h.name.eq_ignore_ascii_case("authorization") {
            authorization = Some(value);
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection = Some(value.to_ascii_lowercase());
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = true;
        } else if h.name.eq_ignore_ascii_case("expect") {
            expect_continue = value.eq_ignore_ascii_case("100-continue");
        }
    }
    let close = match connection.as_deref() {
        Some(c) if c.contains("close") => true,
        Some(c) if c.contains("keep-alive") => false,
        _ => http10,
    };
    if chunked {
        return Err(with_what(bad(
            411,
            Code::InvalidArgument,
            "Transfer-Encoding is not supported: send a Content-Length",
        )));
    }
    let body_len = match (content_length, method.as_str()) {
        (Some(n), _) => n,
        (None, "POST" | "PUT") => {
            return Err(with_what(bad(
                411,
                Code::InvalidArgument,
                "Content-Length required",
            )))
        }
        (None, _) => 0,
    };
    if body_len > max_body {
        return Err(with_what(bad(
            413,
            Code::MessageTooLarge,
            format!("body of {body_len} bytes is larger than the {max_body}-byte limit"),
        )));
    }

    // The head is consumed; whatever follows it is the body (and maybe the next request).
    let mut rest = buf.split_off(head_len);
    std::mem::swap(buf, &mut rest);
    // curl and others wait for this before sending a larger body.
    if expect_continue && buf.len() < body_len {
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| stream.flush())
            .map_err(ReadError::Io)?;
    }
    while buf.len() < body_len {
        match stream.read(&mut chunk) {
            Ok(0) => {
                return Err(with_what(bad(
                    400,
                    Code::TruncatedBody,
                    format!(
                        "connection closed after {} of {body_len} body bytes",
                        buf.len()
                    ),
                )))
            }
            Ok(n) => buf.extend_from_slice(chunk.get(..n).unwrap_or_default()),
            Err(e) if is_timeout(&e) => {
                if give_up(true) {
                    return Err(with_what(bad(
                        408,
                        Code::ReadTimeout,
                        format!(
                            "body incomplete at the deadline: {} of {body_len} bytes",
                            buf.len()
                        ),
                    )));
                }
            }
            Err(e) => return Err(ReadError::Io(e)),
        }
    }
    let next = buf.split_off(body_len);
    let body = std::mem::replace(buf, next);
    Ok(Request {
        method,
        path,
        content_type,
        authorization,
        close,
        body,
    })
}

/// `true` for the errors a socket read timeout produces.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// The reason phrase of the statuses the server sends.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

/// The head of a response with a JSON body of `len` bytes.
pub fn response_head(status: u16, len: usize, close: bool, extra: &str) -> String {
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {len}\r\n\
         Connection: {}\r\n{extra}\r\n",
        reason(status),
        if close { "close" } else { "keep-alive" },
    )
}

/// Writes a whole response and flushes it.
pub fn write_response<S: Write>(
    stream: &mut S,
    status: u16,
    body: &[u8],
    close: bool,
    extra: &str,
) -> io::Result<()> {
    let mut out = response_head(status, body.len(), close, extra).into_bytes();
    out.extend_from_slice(body);
    stream.write_all(&out)?;
    stream.flush()
}

/// The unsigned error body `{"error":{"code":…,"message":…}}`.
pub fn error_json(code: Code, message: &str) -> Vec<u8> {
    let body = ErrorBody {
        code: code.number(),
        message: Text::plain(message),
    };
    let mut out = vec![0u8; message.len().saturating_mul(6).saturating_add(128)];
    let n = body.encode(&mut out).unwrap_or(0);
    out.truncate(n);
    out
}
