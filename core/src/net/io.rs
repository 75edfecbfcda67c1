//! One HTTP exchange over any blocking `embedded-io` stream (a TCP socket, a TLS session, a
//! proxy tunnel), with each I/O fault mapped to its stable code.

use embedded_io::{Error as _, ErrorKind, Read, Write};

use super::http::{write_connect_head, write_post_head, Progress, Response, ResponseReader};
use crate::error::Code;

/// Room for a request head (the URL path and the proxy credentials are the long parts).
pub const HEAD_BYTES: usize = 768;

/// What an I/O error means for the exchange. `reading`: the request was sent completely.
pub fn io_code(kind: ErrorKind, reading: bool) -> Code {
    match kind {
        ErrorKind::TimedOut => Code::ReadTimeout,
        ErrorKind::ConnectionRefused => Code::ConnectRefused,
        ErrorKind::ConnectionReset
        | ErrorKind::ConnectionAborted
        | ErrorKind::BrokenPipe
        | ErrorKind::NotConnected => Code::ConnectionReset,
        _ if reading => Code::TruncatedBody,
        _ => Code::ConnectionReset,
    }
}

/// Sends `POST target` with `body` and reads the answer into `response`. The caller maps the
/// status (4xx, 5xx, a proxy's 407) with [`status_code`].
pub fn post<S: Read + Write>(
    io: &mut S,
    host: &str,
    target: &str,
    extra: &[(&str, &str)],
    body: &[u8],
    response: &mut [u8],
) -> Result<Response, Code> {
    let mut head = [0u8; HEAD_BYTES];
    let n = write_post_head(&mut head, host, target, body.len(), extra)?;
    send(io, head.get(..n).unwrap_or_default())?;
    send(io, body)?;
    io.flush().map_err(|e| io_code(e.kind(), false))?;
    receive(io, ResponseReader::new(response))
}

/// Opens an HTTPS tunnel through a proxy: `CONNECT authority`, with Basic credentials if
/// given. A 407 is [`Code::ProxyAuthRequired`]; any other refusal [`Code::ProxyRefused`].
pub fn connect_tunnel<S: Read + Write>(
    io: &mut S,
    authority: &str,
    credentials: Option<(&str, &str)>,
) -> Result<(), Code> {
    let mut auth = [0u8; 256];
    let mut extra: heapless::Vec<(&str, &str), 1> = heapless::Vec::new();
    if let Some((user, password)) = credentials {
        let value = basic_auth(user, password, &mut auth)?;
        let _ = extra.push(("Proxy-Authorization", value));
    }
    let mut head = [0u8; HEAD_BYTES];
    let n = write_connect_head(&mut head, authority, &extra)?;
    send(io, head.get(..n).unwrap_or_default())?;
    io.flush().map_err(|e| io_code(e.kind(), false))?;
    let mut buf = [0u8; 1024];
    let answer = receive(io, ResponseReader::head_only(&mut buf)).map_err(|c| match c {
        Code::NoReply | Code::TruncatedBody | Code::ConnectionReset => Code::ProxyRefused,
        other => other,
    })?;
    match answer.status {
        200..=299 => Ok(()),
        407 => Err(Code::ProxyAuthRequired),
        _ => Err(Code::ProxyRefused),
    }
}

/// `Basic base64(user:password)` into `out`.
pub fn basic_auth<'o>(user: &str, password: &str, out: &'o mut [u8; 256]) -> Result<&'o str, Code> {
    use base64ct::{Base64, Encoding};
    let mut plain = [0u8; 160];
    let len = user.len() + 1 + password.len();
    let dst = plain.get_mut(..len).ok_or(Code::InvalidArgument)?;
    let (u, rest) = dst.split_at_mut(user.len());
    u.copy_from_slice(user.as_bytes());
    if let Some((colon, p)) = rest.split_first_mut() {
        *colon = b':';
        p.copy_from_slice(password.as_bytes());
    }
    let (prefix, tail) = out.split_at_mut(6);
    prefix.copy_from_slice(b"Basic ");
    let encoded = Base64::encode(plain.get(..len).unwrap_or_default(), tail)
        .map_err(|_| Code::InvalidArgument)?
        .len();
    core::str::from_utf8(out.get(..6 + encoded).unwrap_or_default())
        .map_err(|_| Code::InvalidArgument)
}

/// The stable code for a service's HTTP status, `None` for 2xx.
pub fn status_code(status: u16) -> Option<Code> {
    match status {
        200..=299 => None,
        407 => Some(Code::ProxyAuthRequired),
        400..=499 => Some(Code::HttpClientError),
        _ => Some(Code::HttpServerError),
    }
}

fn send<S: Write>(io: &mut S, mut bytes: &[u8]) -> Result<(), Code> {
    while !bytes.is_empty() {
        match io.write(bytes) {
            Ok(0) => return Err(Code::ConnectionReset),
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
            Err(e) => return Err(io_code(e.kind(), false)),
        }
    }
    Ok(())
}

fn receive<S: Read>(io: &mut S, mut reader: ResponseReader<'_>) -> Result<Response, Code> {
    loop {
        let space = reader.space();
        if space.is_empty() {
            // Full and not complete: advance(0) names it.
            if let Progress::Done(r) = reader.advance(0)? {
                return Ok(r);
            }
            return Err(Code::OversizeBody);
        }
        match io.read(space) {
            Ok(0) => return reader.finish(),
            Ok(n) => {
                if let Progress::Done(r) = reader.advance(n)? {
                    return Ok(r);
                }
            }
            Err(e) if !reader.started() && e.kind() == ErrorKind::ConnectionReset => {
                return Err(Code::NoReply)
            }
            Err(e) => return Err(io_code(e.kind(), true)),
        }
    }
}
