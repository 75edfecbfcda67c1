//! TLS over a TCP stream with every socket read and write bounded by one deadline.
//!
//! rustls' own `complete_io` and `StreamOwned` loop over socket reads until they have a whole
//! record or a finished handshake; a peer that drips one byte at a time then keeps each read
//! within its timeout while the whole takes as long as it likes. Here each socket operation
//! gets only the time left before the deadline, so the deadline holds whatever the peer does.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustls::ClientConnection;
use slup_core::Code;

use crate::error::{classify_io, HostError};
use crate::http::{Deadline, Stream};

/// A client TLS connection over TCP.
#[derive(Debug)]
pub struct TlsStream {
    conn: ClientConnection,
    sock: TcpStream,
    until: Instant,
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "deadline passed")
}

impl TlsStream {
    /// Runs the handshake of `conn` over `sock` before `deadline`.
    pub fn handshake(
        conn: ClientConnection,
        sock: TcpStream,
        deadline: Deadline,
    ) -> Result<TlsStream, HostError> {
        let mut s = TlsStream {
            conn,
            sock,
            until: deadline.0,
        };
        let fail = |e: io::Error| {
            let mut err = classify_io(&e, "TLS handshake");
            if matches!(err.code, Code::TruncatedBody | Code::NoReply) {
                // The peer hung up mid-handshake: not a TLS server, or a middlebox. A reset
                // stays a reset.
                err.code = Code::TlsHandshake;
            }
            err
        };
        while s.conn.is_handshaking() {
            s.write_pending().map_err(fail)?;
            if !s.conn.is_handshaking() {
                break;
            }
            match s.read_more() {
                Ok(0) => {
                    return Err(HostError::new(
                        Code::TlsHandshake,
                        "the connection closed during the TLS handshake",
                    ))
                }
                Ok(_) => {}
                Err(e) => {
                    // Tell the peer why (the alert rustls queued), if it still listens.
                    let _ = s.write_pending();
                    return Err(fail(e));
                }
            }
        }
        s.write_pending().map_err(fail)?;
        Ok(s)
    }

    /// The negotiated version and cipher suite.
    pub fn parameters(&self) -> Option<String> {
        Some(format!(
            "{:?}, {:?}",
            self.conn.protocol_version()?,
            self.conn.negotiated_cipher_suite()?.suite()
        ))
    }

    fn left(&self) -> io::Result<Duration> {
        let left = self.until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(timed_out())
        } else {
            Ok(left)
        }
    }

    /// Sends every TLS byte rustls has queued.
    fn write_pending(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            let left = self.left()?;
            self.sock.set_write_timeout(Some(left))?;
            self.conn.write_tls(&mut self.sock)?;
        }
        Ok(())
    }

    /// One socket read and the records it completes; `Ok(0)` at the end of the stream.
    fn read_more(&mut self) -> io::Result<usize> {
        let left = self.left()?;
        self.sock.set_read_timeout(Some(left))?;
        let n = loop {
            match self.conn.read_tls(&mut self.sock) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => break r?,
            }
        };
        self.conn
            .process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        Ok(n)
    }
}

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.conn.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // A peer that closes without close_notify ends the stream; the HTTP framing
                // (length or chunks) then tells a complete answer from a cut one.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            self.write_pending()?;
            self.read_more()?;
        }
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.conn.writer().write(buf)?;
        self.write_pending()?;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.conn.writer().flush()?;
        self.write_pending()
    }
}

impl Stream for TlsStream {
    fn set_timeout(&mut self, d: Duration) -> io::Result<()> {
        self.until = Instant::now() + d;
        Ok(())
    }
}
