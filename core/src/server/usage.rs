//! `LICENSE_USAGE`, `POLL_REQ` and offline usage files: verify each report, store it once,
//! acknowledge it.
//!
//! Reports are deduplicated by (UDI, report id) and compared by the SHA-256 of their signed
//! payload bytes: a resend after a lost ACK is acknowledged again and counted once, while a
//! different report under a used id is rejected. One bad report never fails the message.

use rand_core::{CryptoRng, RngCore};

use super::auth::{authenticate, Caller};
use super::reply::Refusal;
use super::store::{
    fixed, PollRecord, RejectReason, ReportRecord, ServiceStore, StoredAck, StoredPolicy, UdiBuf,
};
use super::{Reply, Service, UsageMode, Verdict};
use crate::crypto::{sha256, Signer};
use crate::error::{Code, Error};
use crate::msg::request::{self, PollRef, RequestData, RequestHeader};
use crate::msg::response::{self, AgentActions, Response, ResponseData, ResponseHeader};
use crate::msg::rum::SignedRum;
use crate::msg::SignedList;
use crate::msg::{ConnectInfo, Version, CAPABILITIES};
use crate::nonce::Nonce;
use crate::types::{RequestType, StatusCode, Text, Timestamp, Udi, Uuid};

impl<St: ServiceStore, S: Signer> Service<St, S> {
    /// Answers `LICENSE_USAGE`: `OK` with the ACK, or `OK_POLL` with the ACK kept for the poll.
    pub(super) fn license_usage<R: RngCore + CryptoRng>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        header: &RequestHeader<'_>,
        caller: &Caller,
        reports: &SignedList<'_>,
        out: &mut [u8],
    ) -> Reply {
        let ack = match self.ingest(now, caller, reports) {
            Ok(a) => a,
            Err(code) => return self.respond_verdict(out, now, header, &self.try_again(code)),
        };
        let UsageMode::Poll { retry_time_seconds } = self.config.usage_mode else {
            return match self.policy_of(caller) {
                Ok(policy) => self.answer_usage(out, now, header, &ack, policy.as_ref()),
                Err(code) => self.respond_verdict(out, now, header, &self.try_again(code)),
            };
        };
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let mut text = [0u8; 36];
        let poll_id = Uuid::from_random(bytes, &mut text);
        let v = Verdict {
            status: StatusCode::OK_POLL,
            message: super::Message::new(),
            retry_time_seconds,
        };
        let reply = self.respond(out, now, header, &v, &ResponseData::Poll(poll_id));
        if !reply.is_signed() {
            return reply;
        }
        // Stored only once the answer is written, so a failed answer leaves no orphan behind.
        let stored = fixed(poll_id.as_str()).and_then(|poll_id| {
            self.store.add_poll(&PollRecord {
                poll_id,
                instance: caller.pi,
                ack,
                created_at: now,
            })
        });
        match stored {
            Ok(()) => reply,
            Err(code) => self.respond_verdict(out, now, header, &self.try_again(code)),
        }
    }

    /// Answers `POLL_REQ`: the stored ACK once, then CSSM's `FAILED`.
    pub(super) fn poll(
        &mut self,
        now: Timestamp,
        header: &RequestHeader<'_>,
        caller: &Caller,
        poll: &PollRef<'_>,
        out: &mut [u8],
    ) -> Reply {
        let pid = poll.original_pid;
        // Only LICENSE_USAGE is ever answered OK_POLL, so nothing else can be pending.
        let taken = if poll.original_request_type == RequestType::LICENSE_USAGE {
            self.store.take_poll(caller.pi, pid.as_str())
        } else {
            Ok(None)
        };
        let record = match taken {
            Ok(Some(r)) => r,
            Ok(None) => {
                let v = Verdict::failed(format_args!(
                    "Invalid ProductInstanceIdentifier: {pid} provided in the polling request"
                ));
                return self.respond_verdict(out, now, header, &v);
            }
            Err(code) => return self.respond_verdict(out, now, header, &self.try_again(code)),
        };
        let reply = match self.policy_of(caller) {
            Ok(policy) => self.answer_usage(out, now, header, &record.ack, policy.as_ref()),
            Err(code) => self.respond_verdict(out, now, header, &self.try_again(code)),
        };
        if !reply.is_signed() {
            // The device never saw the ACK: keep it for the next poll.
            let _ = self.store.add_poll(&record);
        }
        reply
    }

    /// Turns an offline usage file (exactly a `LICENSE_USAGE` envelope) into its ACK file
    /// (exactly the service envelope answering it: same nonce, `OK`, never `OK_POLL`), and
    /// returns its length in `out`.
    ///
    /// The file's timestamp is not checked against `now`: usage files are carried by hand and
    /// are old by nature. Errors: the file does not decode (`Error::Decode`); it is not
    /// `LICENSE_USAGE` (`InvalidArgument`); it does not authenticate (`Error::Crypto` with the
    /// signature code, or `NotTrusted`); the store fails (its code; reports stored before the
    /// failure are acknowledged again when the file is retried); the ACK does not fit `out`
    /// (`BufferTooSmall`).
    pub fn ack_usage_file<R: RngCore + CryptoRng>(
        &mut self,
        now: Timestamp,
        _rng: &mut R,
        file: &[u8],
        out: &mut [u8],
    ) -> Result<usize, Error> {
        let req = request::decode(file)?;
        let RequestData::LicenseUsage(reports) = &req.request.data else {
            return Err(Error::Protocol(Code::InvalidArgument));
        };
        let caller = authenticate(&self.store, &req).map_err(|r| refusal_error(&r))?;
        // Last contact is bookkeeping: failing to note it must not fail the import.
        let _ = self.store.touch_instance(caller.pi, now);
        let ack = self
            .ingest(now, &caller, reports)
            .map_err(Error::Protocol)?;
        let policy = self.policy_of(&caller).map_err(Error::Protocol)?;
        let data = ResponseData::Usage {
            ack: ack.ack(),
            policy: policy.as_ref().map(|p| p.policy()),
        };
        self.encode_response(out, now, &req.request.header, &Self::ok(), &data)
    }

    /// CSLU-initiated pull: verifies and stores RUM reports read from a device's REST API
    /// (`/smartlic-service/all-reports`), each with the key bound to its own unit, exactly as
    /// `LICENSE_USAGE` does; returns the ACK. There is no envelope to authenticate, so a report
    /// of a unit the service does not know, or of a removed instance, is rejected
    /// (`ForeignUnit`); a report that does not decode is skipped (it has no id to reject).
    /// A store failure stops at that report and is returned.
    pub fn ingest_pulled<'r>(
        &mut self,
        now: Timestamp,
        reports: impl IntoIterator<Item = &'r [u8]>,
    ) -> Result<StoredAck, Code> {
        let mut ack = StoredAck::default();
        for bytes in reports {
            let Ok(rum) = SignedRum::decode(bytes) else {
                continue;
            };
            let id = rum.payload.report_id;
            let caller = match self.store.instance_by_udi(&rum.payload.sudi)? {
                Some(pi) => self
                    .store
                    .instance(pi)?
                    .filter(|r| !r.removed)
                    .map(|record| Caller { pi, record }),
                None => None,
            };
            let verdict = match &caller {
                Some(c) => self.ingest_one(now, c, &rum)?,
                None => Err(RejectReason::ForeignUnit),
            };
            match verdict {
                Ok(()) if !ack.acked.contains(&id) => {
                    // Bounded like an ACK: beyond 64 ids the rest stay unacknowledged.
                    let _ = ack.acked.push(id);
                }
                Ok(()) => {}
                Err(why) => {
                    let _ = ack.rejected.push((id, why));
                }
            }
        }
        Ok(ack)
    }

    /// Signs the ACK of reports taken by [`Service::ingest_pulled`], for the CSLU to push back
    /// through the device's `import`: `nonce` is the one the device's report listing carried
    /// (the device accepts only an ACK that answers it), `sudi` the device that was pulled.
    /// Carries the instance's policy like any usage answer. Returns the length written.
    pub fn pulled_ack(
        &self,
        now: Timestamp,
        sudi: Udi<'_>,
        nonce: Option<Nonce>,
        ack: &StoredAck,
        out: &mut [u8],
    ) -> Result<usize, Code> {
        let policy = match self.store.instance_by_udi(&sudi)? {
            Some(pi) => match self.store.instance(pi)? {
                Some(record) => self.policy_of(&Caller { pi, record })?,
                None => None,
            },
            None => None,
        };
        let c = &self.config;
        let resp = Response {
            header: ResponseHeader {
                version: Version,
                request_type: RequestType::LICENSE_USAGE,
                mp: now,
                nonce,
                sudi,
                status_code: StatusCode::OK,
                message: Text::plain(""),
                retry_time_seconds: 0,
                agent_actions: AgentActions,
                connect_info: ConnectInfo::new(&c.name, &c.version, Some(c.prod), CAPABILITIES)?,
            },
            data: ResponseData::Usage {
                ack: ack.ack(),
                policy: policy.as_ref().map(|p| p.policy()),
            },
        };
        response::encode(out, &resp, &self.signer).map_err(|e| e.code())
    }

    /// `OK` with an ACK and the policy.
    fn answer_usage(
        &self,
        out: &mut [u8],
        now: Timestamp,
        header: &RequestHeader<'_>,
        ack: &StoredAck,
        policy: Option<&StoredPolicy>,
    ) -> Reply {
        let data = ResponseData::Usage {
            ack: ack.ack(),
            policy: policy.map(|p| p.policy()),
        };
        self.respond(out, now, header, &Self::ok(), &data)
    }

    /// Verifies and stores every report; a store failure stops at that report.
    pub(super) fn ingest(
        &mut self,
        now: Timestamp,
        caller: &Caller,
        reports: &SignedList<'_>,
    ) -> Result<StoredAck, Code> {
        let mut ack = StoredAck::default();
        for bytes in reports.iter() {
            // Every report was decoded and checked with the envelope; this cannot fail.
            let Ok(rum) = SignedRum::decode(bytes) else {
                continue;
            };
            let id = rum.payload.report_id;
            match self.ingest_one(now, caller, &rum)? {
                Ok(()) => {
                    if !ack.acked.contains(&id) {
                        // At most 64 reports per message, and 64 acked ids fit.
                        let _ = ack.acked.push(id);
                    }
                }
                Err(why) => {
                    // Rejections beyond MAX_REJECTED stay in neither list (PROTOCOL.md §11):
                    // unacknowledged, so the device keeps them.
                    let _ = ack.rejected.push((id, why));
                }
            }
        }
        Ok(ack)
    }

    /// Checks one report and stores it if new: `Ok(Err(reason))` rejects it.
    fn ingest_one(
        &mut self,
        now: Timestamp,
        caller: &Caller,
        rum: &SignedRum<'_>,
    ) -> Result<Result<(), RejectReason>, Code> {
        let p = &rum.payload;
        let Some(member) = caller.record.member(&p.sudi) else {
            return Ok(Err(RejectReason::ForeignUnit));
        };
        match rum.signed.verify(&member.public_key) {
            Ok(()) => {}
            Err(Code::KeyIdMismatch) => return Ok(Err(RejectReason::WrongKey)),
            Err(_) => return Ok(Err(RejectReason::BadSignature)),
        }
        let digest = sha256(rum.signed.body.bytes);
        match self.store.report(&p.sudi, p.report_id)? {
            Some(r) if r.payload_sha256 == digest => Ok(Ok(())),
            Some(_) => Ok(Err(RejectReason::ConflictingDuplicate)),
            None => {
                self.store.add_report(&ReportRecord {
                    instance: caller.pi,
                    udi: UdiBuf::from_udi(&p.sudi)?,
                    report_id: p.report_id,
                    payload_sha256: digest,
                    entitlement: fixed(p.entitlement_tag.as_str())?,
                    count: p.measurements.last().map_or(0, |m| m.value.value.0),
                    received_at: now,
                })?;
                Ok(Ok(()))
            }
        }
    }
}

/// The error `ack_usage_file` reports for a refused file.
fn refusal_error(r: &Refusal) -> Error {
    match r.code {
        Code::BadSignature
        | Code::HighS
        | Code::InvalidSignatureEncoding
        | Code::KeyIdMismatch
        | Code::InvalidPublicKey => Error::Crypto(r.code),
        code => Error::Protocol(code),
    }
}
