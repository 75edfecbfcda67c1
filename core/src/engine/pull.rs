//! The device REST API a CSLU uses in CSLU-initiated (pull) mode, as a sans-IO handler.
//!
//! The firmware's own HTTP server parses the request line and headers and mounts
//! [`Engine::handle_pull`] under `/smartlic-service`; the engine answers with a status and a
//! JSON body written into the caller's buffer. Routes (research §5.3):
//!
//! | method | path | answer |
//! |---|---|---|
//! | POST | `/smartlic-service/close-reports` | closes open reports: `{"closed":<n>}` |
//! | GET | `/smartlic-service/list` | `{"usage_list":[{"report_id":…,"closed":<unix s>,"state":"…"}]}` |
//! | GET | `/smartlic-service/all-reports` | `{"nonce":"<n>","usage":[<signed RUM report>,…]}` |
//! | GET | `/smartlic-service/days` | the same, closed in the last 90 days |
//! | GET | `/smartlic-service/days/<n>` | the same, closed in the last `n` days (1–3650) |
//! | POST | `/smartlic-service/import` | applies an ACK file (body): `{"imported":true}` |
//!
//! Each report listing carries a fresh nonce, outstanding until an ACK answering it is imported:
//! the service echoes it in the ACK it signs, so an imported ACK is bound to a listing this
//! device produced, and a replayed one is refused.
//!
//! Every request needs HTTP Basic credentials. Errors are `{"error":{"code":…,"message":…}}`
//! with 400 (bad request), 401 (credentials), 404 (no such path), 405 (wrong method), 409 (the
//! import answers nothing this device saved) or 507 (the answer does not fit the buffer).

use rand_core::{CryptoRng, RngCore};

use crate::error::{Code, Error};
use crate::msg::response::ErrorBody;
use crate::msg::Writer;
use crate::types::{format_u64, parse_canonical_u64, Text, Timestamp};

use super::reports::ReportState;
use super::trust::KeyProvider;
use super::usage::CloseReason;
use super::{Engine, DAY_MS};

/// Days `/days` covers without a number.
pub const DEFAULT_PULL_DAYS: u64 = 90;

/// An HTTP request as the platform's server parsed it.
#[derive(Clone, Copy, Debug)]
pub struct PullRequest<'a> {
    /// `GET` or `POST`.
    pub method: &'a str,
    /// The path, query removed.
    pub path: &'a str,
    /// The `Authorization` header's value, if any.
    pub authorization: Option<&'a str>,
    /// The body.
    pub body: &'a [u8],
}

/// The credentials the CSLU must present.
#[derive(Clone, Copy, Debug)]
pub struct PullCredentials<'a> {
    /// User name.
    pub user: &'a str,
    /// Password.
    pub password: &'a str,
}

/// The answer: HTTP status and the length of the JSON body written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PullResponse {
    /// HTTP status.
    pub status: u16,
    /// Body bytes written into the caller's buffer.
    pub len: usize,
}

/// Compares without stopping at the first difference, so timing says nothing about where a
/// guessed password goes wrong.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn authorized(header: Option<&str>, creds: &PullCredentials<'_>) -> bool {
    use base64ct::Encoding;
    let Some(b64) = header.and_then(|h| h.strip_prefix("Basic ")) else {
        return false;
    };
    let mut buf = [0u8; 192];
    let Ok(decoded) = base64ct::Base64::decode(b64.trim(), &mut buf) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|b| *b == b':') else {
        return false;
    };
    let (user, password) = (&decoded[..colon], &decoded[colon.saturating_add(1)..]);
    // Evaluate both comparisons, always.
    let user_ok = same_bytes(user, creds.user.as_bytes());
    let password_ok = same_bytes(password, creds.password.as_bytes());
    user_ok & password_ok
}

fn error(out: &mut [u8], status: u16, code: Code, message: &str) -> PullResponse {
    let body = ErrorBody {
        code: code.number(),
        message: Text::plain(message),
    };
    PullResponse {
        status,
        len: body.encode(out).unwrap_or(0),
    }
}

impl<K, R, const MEMBERS: usize> Engine<K, R, MEMBERS>
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    /// Answers one request of the device REST API (see the [module docs](self)).
    pub fn handle_pull(
        &mut self,
        now: Timestamp,
        req: &PullRequest<'_>,
        creds: &PullCredentials<'_>,
        out: &mut [u8],
    ) -> PullResponse {
        if !authorized(req.authorization, creds) {
            return error(
                out,
                401,
                Code::InvalidArgument,
                "Basic credentials required",
            );
        }
        let Some(route) = req.path.strip_prefix("/smartlic-service/") else {
            return error(out, 404, Code::InvalidArgument, "no such path");
        };
        let post = match req.method {
            "POST" => true,
            "GET" => false,
            _ => return error(out, 405, Code::InvalidArgument, "only GET and POST"),
        };
        let result = match (route, post) {
            ("close-reports", true) => self.pull_close(now, out),
            ("import", true) => match self.import(now, req.body) {
                Ok(()) => write_raw(out, br#"{"imported":true}"#),
                Err(e) => {
                    let status = match e.code() {
                        Code::NotAnswering | Code::ReplayedNonce => 409,
                        _ => 400,
                    };
                    return error(out, status, e.code(), e.code().message());
                }
            },
            ("list", false) => self.pull_list(out),
            ("all-reports", false) => self.pull_reports(out, None, now),
            ("days", false) => self.pull_reports(out, Some(DEFAULT_PULL_DAYS), now),
            (r, false) if r.starts_with("days/") => {
                let n = r.get(5..).map(parse_canonical_u64);
                match n {
                    Some(Ok(n)) if (1..=3650).contains(&n) => self.pull_reports(out, Some(n), now),
                    _ => return error(out, 400, Code::InvalidArgument, "days/<n> needs 1..3650"),
                }
            }
            ("close-reports" | "import", false) | ("list" | "all-reports" | "days", true) => {
                return error(
                    out,
                    405,
                    Code::InvalidArgument,
                    "wrong method for this path",
                )
            }
            _ => return error(out, 404, Code::InvalidArgument, "no such path"),
        };
        match result {
            Ok(len) => PullResponse { status: 200, len },
            Err(e) if e.code() == Code::BufferTooSmall => error(
                out,
                507,
                Code::BufferTooSmall,
                "answer larger than the buffer",
            ),
            Err(e) => error(out, 400, e.code(), e.code().message()),
        }
    }

    fn pull_close(&mut self, now: Timestamp, out: &mut [u8]) -> Result<usize, Error> {
        let before = self.reports.len();
        self.close_all(now, CloseReason::CurrentUsageRequested)?;
        let closed = self.reports.len().saturating_sub(before);
        let mut w = Writer::new(out);
        let mut n = [0u8; 20];
        w.raw(br#"{"closed":"#, "pull")?;
        w.raw(format_u64(closed as u64, &mut n).as_bytes(), "pull")?;
        w.raw(b"}", "pull")?;
        Ok(w.len())
    }

    fn pull_list(&self, out: &mut [u8]) -> Result<usize, Error> {
        let mut w = Writer::new(out);
        let mut n = [0u8; 20];
        w.raw(br#"{"usage_list":["#, "pull")?;
        for (i, r) in self.reports.iter().enumerate() {
            if i > 0 {
                w.raw(b",", "pull")?;
            }
            w.raw(br#"{"report_id":"#, "pull")?;
            w.raw(format_u64(r.id.0, &mut n).as_bytes(), "pull")?;
            w.raw(br#","closed":"#, "pull")?;
            w.raw(format_u64(r.closed_s, &mut n).as_bytes(), "pull")?;
            w.raw(br#","state":""#, "pull")?;
            let state: &[u8] = match r.state {
                ReportState::Closed => b"CLOSED",
                ReportState::Pending => b"PENDING",
                ReportState::Rejected => b"REJECTED",
            };
            w.raw(state, "pull")?;
            w.raw(br#""}"#, "pull")?;
        }
        w.raw(b"]}", "pull")?;
        Ok(w.len())
    }

    /// The reports, with a fresh nonce: the ACK the CSLU brings back through `import` must
    /// answer it, exactly as an ACK file must answer a saved usage file.
    fn pull_reports(
        &mut self,
        out: &mut [u8],
        days: Option<u64>,
        now: Timestamp,
    ) -> Result<usize, Error> {
        let nonce = self.issue_nonce(now)?;
        let written = self.write_reports(out, days, now, nonce);
        if written.is_err() {
            self.nonces.cancel(nonce);
        }
        written
    }

    fn write_reports(
        &self,
        out: &mut [u8],
        days: Option<u64>,
        now: Timestamp,
        nonce: crate::nonce::Nonce,
    ) -> Result<usize, Error> {
        let since_s = days.map(|d| now.0.saturating_sub(d.saturating_mul(DAY_MS)) / 1000);
        let mut w = Writer::new(out);
        let mut digits = [0u8; 20];
        w.raw(br#"{"nonce":""#, "pull")?;
        w.raw(nonce.format(&mut digits).as_bytes(), "pull")?;
        w.raw(br#"","usage":["#, "pull")?;
        let mut first = true;
        for r in self.reports.iter() {
            if since_s.is_some_and(|s| r.closed_s < s) {
                continue;
            }
            if !first {
                w.raw(b",", "pull")?;
            }
            first = false;
            w.raw(self.reports.bytes(r), "pull")?;
        }
        w.raw(b"]}", "pull")?;
        Ok(w.len())
    }
}

fn write_raw(out: &mut [u8], bytes: &[u8]) -> Result<usize, Error> {
    let mut w = Writer::new(out);
    w.raw(bytes, "pull")?;
    Ok(w.len())
}
