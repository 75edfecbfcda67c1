//! The service side of the protocol: a sans-IO license service.
//!
//! [`Service`] turns one request body into one answer: `handle(now, rng, body, out)` writes
//! either a signed service envelope (HTTP `200`) or, when the request cannot even be
//! authenticated, an unsigned error body with a non-2xx status, and returns a [`Reply`]. It
//! reads no clock, owns no socket and keeps no state of its own: everything it remembers is in
//! a [`ServiceStore`] ([`MemStore`] in RAM, SQLite in the reference server). The reference
//! server, the device/service pair tests, the Python harness and the fuzzers all drive this one
//! implementation.
//!
//! Per request type (docs/PROTOCOL.md §5):
//!
//! - `ID_TOKEN_TRUST`: proof of possession with the active unit's new key, one token use per
//!   member, one signed trust code per member, the virtual account's policy;
//! - `LICENSE_USAGE`: every report verified with its own unit's key and stored once per
//!   (UDI, report id); answered `OK` with the ACK, or `OK_POLL` in [`UsageMode::Poll`];
//! - `POLL_REQ`: the stored ACK once, then `FAILED` with CSSM's wording;
//! - `TRUST_SYNC`: the policy; `HELLO`: `{}`.
//!
//! Offline, [`Service::ack_usage_file`] turns a usage file into its ACK file.
//!
//! ```
//! use rand_chacha::rand_core::SeedableRng;
//! use slup_core::crypto::SoftwareSigner;
//! use slup_core::msg::response::ErrorBody;
//! use slup_core::server::{Config, MemStore, Service, TokenSpec};
//! use slup_core::types::Timestamp;
//!
//! let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(1);
//! let service_key = SoftwareSigner::generate(&mut rng);
//! let mut svc = Service::new(MemStore::<4, 4, 16, 4>::new(), service_key, Config::default())?;
//! let sa = svc.create_smart_account("Wireless TAC")?;
//! let va = svc.create_virtual_account(sa, "Lab")?;
//! let now = Timestamp(1_700_000_000_000);
//! let spec = TokenSpec {
//!     virtual_account: va,
//!     max_uses: 2, // an HA pair spends one use per unit
//!     expires_at: now.add_millis(30 * 86_400_000),
//!     export_controlled: false,
//! };
//! let token = svc.mint_token(&mut rng, spec)?;
//! assert_eq!(token.len(), 64);
//!
//! // Whatever arrives, the answer is an HTTP status and a body in `out`.
//! let mut out = [0u8; 16 * 1024];
//! let reply = svc.handle(now, &mut rng, b"not json", &mut out);
//! assert_eq!(reply.http_status, 400);
//! let body = ErrorBody::decode(&out[..reply.len]).unwrap();
//! assert_eq!(body.code, slup_core::Code::JsonSyntax.number());
//! # Ok::<(), slup_core::Code>(())
//! ```

mod admin;
mod auth;
mod config;
mod mem_store;
mod reply;
pub mod store;
mod trust;
mod usage;

pub use admin::TokenSpec;
pub use config::{
    Config, UsageMode, CONNECT_INFO_LEN, DEFAULT_MAX_CLOCK_SKEW_MS, DEFAULT_TRY_AGAIN_SECONDS,
};
pub use mem_store::{
    MemStore, DEFAULT_INSTANCES, DEFAULT_POLLS, DEFAULT_REPORTS, DEFAULT_SMART_ACCOUNTS,
    DEFAULT_TOKENS, DEFAULT_VIRTUAL_ACCOUNTS,
};
pub use reply::{Message, Reply, MESSAGE_LEN};
pub use store::ServiceStore;

use rand_core::{CryptoRng, RngCore};

use crate::crypto::Signer;
use crate::error::{Code, Error};
use crate::msg::request::{self, RequestData, RequestHeader, SignedRequest};
use crate::msg::response::{self, AgentActions, Response, ResponseData, ResponseHeader};
use crate::msg::{ConnectInfo, Version, CAPABILITIES};
use crate::types::{Ident, StatusCode, Text, Timestamp};

use auth::{authenticate, Caller};
use reply::{error_body, message, Refusal};

/// A license service over a store `St`, signing with the service key `S`.
#[derive(Debug)]
pub struct Service<St: ServiceStore, S: Signer> {
    store: St,
    signer: S,
    config: Config,
}

/// What a handler decided, before it is written: a signed answer without data of its own.
struct Verdict {
    status: StatusCode,
    message: Message,
    retry_time_seconds: u32,
}

impl Verdict {
    fn failed(args: core::fmt::Arguments<'_>) -> Self {
        Verdict {
            status: StatusCode::FAILED,
            message: message(args),
            retry_time_seconds: 0,
        }
    }
}

impl<St: ServiceStore, S: Signer> Service<St, S> {
    /// A service over `store`, signing with `signer` (the key devices hold as trust anchor).
    /// A `connect_info` name or version that is not an identifier is
    /// [`Code::InvalidArgument`].
    pub fn new(store: St, signer: S, config: Config) -> Result<Self, Code> {
        for s in [config.name.as_str(), config.version.as_str()] {
            Ident::new(s).map_err(|_| Code::InvalidArgument)?;
        }
        Ok(Service {
            store,
            signer,
            config,
        })
    }

    /// The store.
    pub fn store(&self) -> &St {
        &self.store
    }

    /// The store, for direct administration.
    pub fn store_mut(&mut self) -> &mut St {
        &mut self.store
    }

    /// The signing key.
    pub fn signer(&self) -> &S {
        &self.signer
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration, e.g. to switch the usage mode between requests.
    pub fn config_mut(&mut self) -> &mut Config {
        &mut self.config
    }

    /// Gives the store and the key back.
    pub fn into_parts(self) -> (St, S) {
        (self.store, self.signer)
    }

    /// Answers one request body into `out`.
    ///
    /// `200`: `out[..len]` is a signed service envelope whose `nonce` echoes the request's and
    /// whose `sudi` is the requester's. Otherwise `out[..len]` is the unsigned error body:
    /// `400` the body does not decode (its decode code); `401` unknown unit, stale identity or
    /// bad signature (`NotTrusted`, `KeyIdMismatch`, `BadSignature`, …); `403` the instance
    /// was removed (`NotTrusted`); `500` the answer does not fit `out` (`BufferTooSmall`) or
    /// signing failed; `503` the store failed while authenticating. 16 KiB of `out` holds every
    /// answer at the message limits.
    pub fn handle<R: RngCore + CryptoRng>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        body: &[u8],
        out: &mut [u8],
    ) -> Reply {
        let req = match request::decode(body) {
            Ok(r) => r,
            Err(e) => {
                let m = message(format_args!("request does not decode: {e}"));
                return error_body(out, 400, e.code, &m);
            }
        };
        if let RequestData::IdTokenTrust(t) = &req.request.data {
            return self.establish_trust(now, rng, &req, t, out);
        }
        let caller = match authenticate(&self.store, &req) {
            Ok(c) => c,
            Err(refusal) => return refusal.write(out),
        };
        // Last contact is bookkeeping: failing to note it must not fail the request.
        let _ = self.store.touch_instance(caller.pi, now);
        let header = &req.request.header;
        if let Some(v) = self.skew_verdict(now, header) {
            return self.respond_verdict(out, now, header, &v);
        }
        match &req.request.data {
            RequestData::LicenseUsage(reports) => {
                self.license_usage(now, rng, header, &caller, reports, out)
            }
            RequestData::PollReq(poll) => self.poll(now, header, &caller, poll, out),
            RequestData::TrustSync(trust_id) => self.trust_sync(now, &req, &caller, *trust_id, out),
            RequestData::Hello => self.respond(out, now, header, &Self::ok(), &ResponseData::Hello),
            // Answered above, before authentication by a bound key.
            RequestData::IdTokenTrust(_) => Refusal::new(
                400,
                Code::InvalidArgument,
                format_args!("unexpected ID_TOKEN_TRUST"),
            )
            .write(out),
        }
    }

    fn trust_sync(
        &mut self,
        now: Timestamp,
        req: &SignedRequest<'_>,
        caller: &Caller,
        trust_id: crate::types::TrustId,
        out: &mut [u8],
    ) -> Reply {
        let header = &req.request.header;
        let current = caller.record.member(&header.sudi).map(|m| m.trust_id);
        if current != Some(trust_id) {
            let v = Verdict::failed(format_args!(
                "Trust id {trust_id} is not the current trust of {}; establish trust again",
                header.sudi
            ));
            return self.respond_verdict(out, now, header, &v);
        }
        match self.policy_of(caller) {
            Ok(policy) => self.respond(
                out,
                now,
                header,
                &Self::ok(),
                &ResponseData::TrustSync {
                    policy: policy.as_ref().map(|p| p.policy()),
                },
            ),
            Err(code) => self.respond_verdict(out, now, header, &self.try_again(code)),
        }
    }

    /// The policy of the caller's virtual account.
    fn policy_of(&self, caller: &Caller) -> Result<Option<store::StoredPolicy>, Code> {
        Ok(self
            .store
            .virtual_account(caller.record.virtual_account)?
            .and_then(|va| va.policy))
    }

    /// `FAILED` when the request's clock is too far from ours.
    fn skew_verdict(&self, now: Timestamp, header: &RequestHeader<'_>) -> Option<Verdict> {
        let skew = now.abs_diff(header.timestamp);
        (skew > self.config.max_clock_skew_ms).then(|| {
            Verdict::failed(format_args!(
                "Request timestamp {} is {} s away from service time {}; tolerance is {} s. Set the device clock.",
                header.timestamp.millis(),
                skew / 1000,
                now.millis(),
                self.config.max_clock_skew_ms / 1000
            ))
        })
    }

    fn ok() -> Verdict {
        Verdict {
            status: StatusCode::OK,
            message: Message::new(),
            retry_time_seconds: 0,
        }
    }

    /// `OK_TRY_AGAIN` after a store failure: the device resends the same data later.
    fn try_again(&self, code: Code) -> Verdict {
        Verdict {
            status: StatusCode::OK_TRY_AGAIN,
            message: message(format_args!("service storage unavailable: {code}")),
            retry_time_seconds: self.config.try_again_seconds,
        }
    }

    /// A signed answer without data (`FAILED`, `OK_TRY_AGAIN`).
    fn respond_verdict(
        &self,
        out: &mut [u8],
        now: Timestamp,
        header: &RequestHeader<'_>,
        v: &Verdict,
    ) -> Reply {
        self.respond(out, now, header, v, &ResponseData::None)
    }

    /// Writes a signed service envelope answering `header`.
    fn respond(
        &self,
        out: &mut [u8],
        now: Timestamp,
        header: &RequestHeader<'_>,
        v: &Verdict,
        data: &ResponseData<'_>,
    ) -> Reply {
        match self.encode_response(out, now, header, v, data) {
            Ok(len) => Reply {
                http_status: 200,
                len,
            },
            Err(e) => error_body(
                out,
                500,
                e.code(),
                &message(format_args!("service could not write its answer: {e}")),
            ),
        }
    }

    fn encode_response(
        &self,
        out: &mut [u8],
        now: Timestamp,
        header: &RequestHeader<'_>,
        v: &Verdict,
        data: &ResponseData<'_>,
    ) -> Result<usize, Error> {
        let connect_info = ConnectInfo::new(
            &self.config.name,
            &self.config.version,
            Some(self.config.prod),
            CAPABILITIES,
        )
        .map_err(Error::Protocol)?;
        let resp = Response {
            header: ResponseHeader {
                version: Version,
                request_type: header.request_type,
                mp: now,
                nonce: Some(header.nonce),
                sudi: header.sudi,
                status_code: v.status,
                message: Text::plain(&v.message),
                retry_time_seconds: v.retry_time_seconds,
                agent_actions: AgentActions,
                connect_info,
            },
            data: data.clone(),
        };
        response::encode(out, &resp, &self.signer)
    }
}
