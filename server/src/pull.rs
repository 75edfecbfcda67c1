//! CSLU-initiated (pull) mode: the service reads a device's REST API instead of waiting for
//! the device to post.
//!
//! 1. `POST /smartlic-service/close-reports` closes the device's open reports;
//! 2. `GET /smartlic-service/all-reports` returns `{"nonce":"<n>","usage":[<signed RUM
//!    report>,…]}`;
//! 3. every report is verified with its own unit's bound key and stored once per
//!    (UDI, report id), in one transaction ([`Backend::ingest_pulled`]);
//! 4. the signed ACK (a `LICENSE_USAGE` service envelope for the reports' unit) is pushed to
//!    `POST /smartlic-service/import`, and the device's answer is reported.
//!
//! Every call carries HTTP Basic credentials.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;
use slup_core::msg::response::ErrorBody;
use slup_core::nonce::Nonce;
use slup_core::server::store::StoredAck;
use slup_core::Code;

use crate::backend::Backend;
use crate::client;
use crate::error::Error;

/// How to reach the device.
#[derive(Clone, Debug, Default)]
pub struct PullOptions {
    /// Basic credentials: user.
    pub user: String,
    /// Basic credentials: password.
    pub password: String,
    /// Push the ACK back (`false`: read and store only).
    pub push: bool,
    /// For `https://` devices: the client TLS configuration (see [`client::tls_trusting`]).
    pub tls: Option<Arc<rustls::ClientConfig>>,
}

/// What a pull did.
#[derive(Clone, Debug)]
pub struct PullOutcome {
    /// Reports the device returned.
    pub pulled: usize,
    /// The service's verdict on them.
    pub ack: StoredAck,
    /// The device's answer to the pushed ACK: status and body (`None` when not pushed or
    /// nothing was pulled).
    pub push: Option<(u16, Vec<u8>)>,
}

impl PullOutcome {
    /// `true` unless the device refused the pushed ACK.
    pub fn push_accepted(&self) -> bool {
        self.push.as_ref().is_none_or(|(s, _)| *s == 200)
    }
}

impl fmt::Display for PullOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "pulled {} reports: {} acknowledged and stored, {} rejected",
            self.pulled,
            self.ack.acked.len(),
            self.ack.rejected.len()
        )?;
        for (id, why) in &self.ack.rejected {
            writeln!(f, "  rejected report {}: {}", id.0, why.as_str())?;
        }
        match &self.push {
            None => write!(f, "ACK not pushed"),
            Some((200, _)) => write!(f, "ACK pushed: the device imported it"),
            Some((status, body)) => match ErrorBody::decode(body) {
                Ok(e) => {
                    let code = Code::from_number(e.code)
                        .map_or_else(|| format!("E{}", e.code), |c| c.to_string());
                    write!(f, "ACK pushed: the device refused it with {status}: {code}")
                }
                Err(_) => write!(
                    f,
                    "ACK pushed: the device refused it with {status}: {}",
                    String::from_utf8_lossy(body)
                ),
            },
        }
    }
}

/// Why a pull failed: the device could not be read, or the service could not store.
#[derive(Debug)]
pub enum PullError {
    /// Reaching or reading the device failed.
    Device(Error),
    /// The service's database failed.
    Service(Error),
}

impl fmt::Display for PullError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PullError::Device(e) => write!(f, "device: {e}"),
            PullError::Service(e) => write!(f, "service: {e}"),
        }
    }
}

impl std::error::Error for PullError {}

fn basic(user: &str, password: &str) -> String {
    use base64ct::Encoding;
    format!(
        "Basic {}",
        base64ct::Base64::encode_string(format!("{user}:{password}").as_bytes())
    )
}

fn expect_ok(what: &str, r: &client::Response) -> Result<(), PullError> {
    if r.status == 200 {
        return Ok(());
    }
    let detail = match ErrorBody::decode(&r.body) {
        Ok(e) => format!("E{} {}", e.code, e.message),
        Err(_) => String::from_utf8_lossy(&r.body).into_owned(),
    };
    let code = if r.status >= 500 {
        Code::HttpServerError
    } else {
        Code::HttpClientError
    };
    Err(PullError::Device(Error::new(
        code,
        format!("{what} answered {}: {detail}", r.status),
    )))
}

/// Pulls from the device at `device_url` (e.g. `http://10.0.0.5`) into `backend`.
pub fn pull(
    backend: &mut Backend,
    device_url: &str,
    o: &PullOptions,
) -> Result<PullOutcome, PullError> {
    let url = client::parse_url(device_url).map_err(PullError::Device)?;
    let auth = basic(&o.user, &o.password);
    let headers = [("Authorization", auth.as_str())];
    let json = [
        ("Authorization", auth.as_str()),
        ("Content-Type", "application/json"),
    ];
    let call = |method: &str, path: &str, h: &[(&str, &str)], body: &[u8]| {
        client::request(&url, method, path, h, body, o.tls.as_ref()).map_err(PullError::Device)
    };

    let r = call("POST", "/smartlic-service/close-reports", &headers, b"")?;
    expect_ok("close-reports", &r)?;
    let r = call("GET", "/smartlic-service/all-reports", &headers, b"")?;
    expect_ok("all-reports", &r)?;
    #[derive(serde::Deserialize)]
    struct AllReports<'a> {
        /// The listing's nonce, echoed in the ACK so the device can tell it answers this pull.
        nonce: Option<&'a str>,
        #[serde(borrow)]
        usage: Vec<&'a RawValue>,
    }
    let all: AllReports<'_> = serde_json::from_slice(&r.body).map_err(|e| {
        PullError::Device(Error::new(
            Code::JsonSyntax,
            format!("all-reports is not {{\"usage\":[…]}}: {e}"),
        ))
    })?;
    let nonce = match all.nonce.map(Nonce::parse) {
        Some(Ok(n)) => Some(n),
        Some(Err(code)) => {
            return Err(PullError::Device(Error::new(
                code,
                "all-reports carries a nonce that is not one".to_string(),
            )))
        }
        None => None,
    };
    let reports: Vec<&[u8]> = all.usage.iter().map(|r| r.get().as_bytes()).collect();
    let pulled = reports.len();
    if pulled == 0 {
        return Ok(PullOutcome {
            pulled,
            ack: StoredAck::default(),
            push: None,
        });
    }
    let (ack, envelope) = backend
        .ingest_pulled(&reports, nonce)
        .map_err(PullError::Service)?;
    let push = match envelope {
        Some(body) if o.push => {
            let r = call("POST", "/smartlic-service/import", &json, &body)?;
            Some((r.status, r.body))
        }
        _ => None,
    };
    Ok(PullOutcome { pulled, ack, push })
}
