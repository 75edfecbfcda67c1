//! `ID_TOKEN_TRUST`: proof of possession, token accounting, registration and trust codes.
//!
//! Nothing is written until the signed answer is: the plan is checked and encoded first, then
//! committed in one [`ServiceStore::commit_trust`]. So a `FAILED` (unknown, expired or
//! exhausted token, inconsistent members) or an answer that does not fit `out` changes
//! nothing, as the protocol promises.
//!
//! Re-trust of an instance that is already trusted keeps its `product_instance_identifier`
//! and moves it to the token's virtual account. With `force: false` it still succeeds unless
//! [`super::Config::retrust_requires_force`] is set: the device enforces `force` itself, and a
//! request resent after a lost answer must not fail.

use rand_core::{CryptoRng, RngCore};

use super::reply::{message, Message, Refusal};
use super::store::{
    fixed, InstanceRecord, MemberRecord, Name, PiId, ServiceStore, StoredPolicy, TokenId, UdiBuf,
};
use super::{Reply, Service, Verdict};
use crate::crypto::Signer;
use crate::error::{Code, EncodeError, Error};
use crate::msg::request::{RequestHeader, SignedRequest};
use crate::msg::response::ResponseData;
use crate::msg::trust::{
    encode_trust_code, PublicKeyB64, TrustCodePayload, TrustMember, TrustRequest,
};
use crate::msg::{SignedList, MAX_HA_MEMBERS};
use crate::types::{Scope, StatusCode, Text, Timestamp, TrustId, Uuid};

/// Everything a successful trust will write, worked out before anything is.
struct Plan {
    token: TokenId,
    /// The token's spent uses after this trust.
    uses: u32,
    existing: Option<PiId>,
    /// The instance after this trust; its first `requested` members get new trust codes.
    record: InstanceRecord,
    requested: usize,
    smart_account: Name,
    virtual_account: Name,
    policy: Option<StoredPolicy>,
}

/// Why no plan: a `FAILED` message, or a store failure.
// Without a heap there is nothing to box into; a plan fails at most once per request.
#[allow(clippy::large_enum_variant)]
enum NoPlan {
    Failed(Message),
    Store(Code),
}

impl From<Code> for NoPlan {
    fn from(c: Code) -> Self {
        NoPlan::Store(c)
    }
}

macro_rules! failed {
    ($($arg:tt)*) => {
        NoPlan::Failed(message(format_args!($($arg)*)))
    };
}

impl<St: ServiceStore, S: Signer> Service<St, S> {
    /// Answers `ID_TOKEN_TRUST`.
    pub(super) fn establish_trust<R: RngCore + CryptoRng>(
        &mut self,
        now: Timestamp,
        rng: &mut R,
        req: &SignedRequest<'_>,
        t: &TrustRequest<'_>,
        out: &mut [u8],
    ) -> Reply {
        let header = &req.request.header;
        // The codec's member rules: the Active unit first and once, no unit twice, `local`
        // covering the Active unit only. Without them nobody can tell which key must sign.
        let (Ok(()), Some(active)) = (t.check(), t.members.first()) else {
            return Refusal::new(
                400,
                Code::InvalidValue,
                format_args!(
                    "ID_TOKEN_TRUST members must list the Active unit first and once, no unit twice, and only the Active unit for scope local"
                ),
            )
            .write(out);
        };
        // Proof of possession: the request is signed with the key it asks us to bind.
        if let Err(code) = req.verify(&active.public_key.0) {
            return Refusal::new(
                401,
                code,
                format_args!(
                    "ID_TOKEN_TRUST must be signed with the Active member's new key {}: {code}",
                    active.public_key.0.key_id()
                ),
            )
            .write(out);
        }
        if let Some(v) = self.skew_verdict(now, header) {
            return self.respond_verdict(out, now, header, &v);
        }
        let plan = match self.plan_trust(now, rng, header, t, active) {
            Ok(p) => p,
            Err(NoPlan::Failed(m)) => {
                let v = Verdict {
                    status: StatusCode::FAILED,
                    message: m,
                    retry_time_seconds: 0,
                };
                return self.respond_verdict(out, now, header, &v);
            }
            Err(NoPlan::Store(code)) => {
                return self.respond_verdict(out, now, header, &self.trust_store_verdict(code))
            }
        };
        let reply = match self.encode_trust(out, now, header, &plan) {
            Ok(len) => Reply {
                http_status: 200,
                len,
            },
            Err(e) => {
                let m = message(format_args!("service could not write its answer: {e}"));
                return super::reply::error_body(out, 500, e.code(), &m);
            }
        };
        match self
            .store
            .commit_trust(plan.token, plan.uses, plan.existing, &plan.record)
        {
            Ok(_) => reply,
            Err(code) => self.respond_verdict(out, now, header, &self.trust_store_verdict(code)),
        }
    }

    /// A full table cannot heal by waiting: `FAILED`. Anything else may: `OK_TRY_AGAIN`.
    fn trust_store_verdict(&self, code: Code) -> Verdict {
        match code {
            Code::CapacityExceeded | Code::StorageFull => Verdict::failed(format_args!(
                "The service cannot register this product instance: {code}"
            )),
            _ => self.try_again(code),
        }
    }

    #[allow(clippy::result_large_err)] // see NoPlan
    fn plan_trust<R: RngCore + CryptoRng>(
        &self,
        now: Timestamp,
        rng: &mut R,
        header: &RequestHeader<'_>,
        t: &TrustRequest<'_>,
        active: &TrustMember<'_>,
    ) -> Result<Plan, NoPlan> {
        if active.sudi != header.sudi {
            return Err(failed!(
                "The Active member {} is not the requesting unit {}",
                active.sudi,
                header.sudi
            ));
        }
        for (i, m) in t.members.iter().enumerate() {
            if let Some(n) = t
                .members
                .iter()
                .skip(i.saturating_add(1))
                .find(|n| n.public_key == m.public_key)
            {
                return Err(failed!(
                    "Units {} and {} present the same key",
                    m.sudi,
                    n.sudi
                ));
            }
        }

        let Some((token_id, token)) = self.store.token_by_text(t.id_token.as_str())? else {
            return Err(failed!("The ID token is not valid."));
        };
        if now >= token.expires_at {
            return Err(failed!(
                "The ID token expired at {} (service time {}).",
                token.expires_at.millis(),
                now.millis()
            ));
        }
        let existing = self.existing_instance(t)?;
        let prior = match existing {
            Some(pi) => self.store.instance(pi)?,
            None => None,
        };
        // A resend after a lost answer: the same token, and every listed unit already holds
        // exactly the key it presents (a new attempt on the device means new keys). It gets its
        // trust codes again and spends nothing, or one lost answer would burn the token.
        let resend = prior.as_ref().is_some_and(|p| {
            !p.removed
                && p.token == token_id
                && t.members.iter().all(|m| {
                    p.member(&m.sudi)
                        .is_some_and(|r| r.public_key == m.public_key.0)
                })
        });
        // One use per unit: an HA pair trusted with scope all needs two (the seed's note).
        let needed = if resend {
            0
        } else {
            u32::try_from(t.members.len()).unwrap_or(u32::MAX)
        };
        let left = token.max_uses.saturating_sub(token.uses);
        if needed > left {
            return Err(failed!(
                "The ID token has {left} of {} uses left; this request needs {needed}, one per HA member.",
                token.max_uses
            ));
        }
        let Some(va) = self.store.virtual_account(token.virtual_account)? else {
            return Err(failed!("The ID token's virtual account no longer exists."));
        };
        let Some(smart_account) = self.store.smart_account_name(va.smart_account)? else {
            return Err(failed!("The ID token's smart account no longer exists."));
        };

        if prior.is_some() && !resend && !t.force && self.config.retrust_requires_force {
            return Err(failed!(
                "The product instance is already trusted; use force to replace its trust."
            ));
        }
        let uuid = match &prior {
            Some(p) => p.uuid.clone(),
            None => {
                let mut bytes = [0u8; 16];
                rng.fill_bytes(&mut bytes);
                let mut text = [0u8; 36];
                fixed(Uuid::from_random(bytes, &mut text).as_str())?
            }
        };

        let mut next = self.store.last_trust_id()?;
        let mut members = heapless::Vec::<MemberRecord, MAX_HA_MEMBERS>::new();
        // As listed: the active unit first (TrustRequest::check).
        for m in &t.members {
            // A resend keeps the trust ids it was given; anything else gets fresh ones.
            let kept = prior
                .as_ref()
                .filter(|_| resend)
                .and_then(|p| p.member(&m.sudi))
                .map(|r| r.trust_id);
            let trust_id = match kept {
                Some(id) => id,
                None => {
                    next = next
                        .checked_add(1)
                        .ok_or_else(|| failed!("The service has no trust ids left."))?;
                    TrustId(next)
                }
            };
            let member = MemberRecord {
                role: m.role,
                udi: UdiBuf::from_udi(&m.sudi)?,
                public_key: m.public_key.0.clone(),
                trust_id,
            };
            members
                .push(member)
                .map_err(|_| failed!("Too many HA members."))?;
        }
        // Scope local renews the active unit only: the others keep their trust codes.
        if t.scope == Scope::Local {
            let kept = prior.iter().flat_map(|p| p.members.iter());
            for m in kept.filter(|m| !t.members.iter().any(|r| m.udi.matches(&r.sudi))) {
                members
                    .push(m.clone())
                    .map_err(|_| failed!("Too many HA members."))?;
            }
        }

        Ok(Plan {
            token: token_id,
            uses: token.uses.saturating_add(needed),
            existing,
            record: InstanceRecord {
                virtual_account: token.virtual_account,
                uuid,
                token: token_id,
                members,
                export_controlled: token.export_controlled,
                removed: false,
                trusted_at: now,
                last_contact: now,
            },
            requested: t.members.len(),
            smart_account,
            virtual_account: va.name,
            policy: va.policy,
        })
    }

    /// The live instance the listed units already belong to, if any; units of two different
    /// live instances cannot be merged by a trust request.
    #[allow(clippy::result_large_err)] // see NoPlan
    fn existing_instance(&self, t: &TrustRequest<'_>) -> Result<Option<PiId>, NoPlan> {
        let mut found: Option<(PiId, &TrustMember<'_>)> = None;
        for m in &t.members {
            let Some(pi) = self.store.instance_by_udi(&m.sudi)? else {
                continue;
            };
            if self.store.instance(pi)?.is_none_or(|r| r.removed) {
                continue;
            }
            match found {
                None => found = Some((pi, m)),
                Some((other, _)) if other == pi => {}
                Some((_, first)) => {
                    return Err(failed!(
                        "Units {} and {} belong to different product instances; remove one first.",
                        first.sudi,
                        m.sudi
                    ))
                }
            }
        }
        Ok(found.map(|(pi, _)| pi))
    }

    /// Writes the trust codes at the end of `out`, then the envelope quoting them at its start.
    fn encode_trust(
        &self,
        out: &mut [u8],
        now: Timestamp,
        header: &RequestHeader<'_>,
        plan: &Plan,
    ) -> Result<usize, Error> {
        const CTX: &str = "trust codes";
        let uuid = Uuid::new(&plan.record.uuid).map_err(Error::Protocol)?;
        let mut tail = out.len();
        let mut spans = heapless::Vec::<(usize, usize), MAX_HA_MEMBERS>::new();
        for m in plan.record.members.iter().take(plan.requested) {
            let payload = TrustCodePayload {
                trust_id: m.trust_id,
                product_instance_identifier: uuid,
                sudi: m.udi.udi().map_err(Error::Protocol)?,
                public_key: PublicKeyB64(m.public_key.clone()),
                issued_at: now,
                smart_account: Text::plain(&plan.smart_account),
                virtual_account: Text::plain(&plan.virtual_account),
            };
            let head = out.get_mut(..tail).ok_or(EncodeError::buffer(CTX))?;
            let n = encode_trust_code(head, &payload, &self.signer)?;
            // Move the code just written behind the previous ones, at the end of `out`.
            let start = tail.checked_sub(n).ok_or(EncodeError::buffer(CTX))?;
            out.copy_within(..n, start);
            tail = start;
            spans
                .push((start, n))
                .map_err(|_| EncodeError::buffer(CTX))?;
        }
        let (front, back) = out.split_at_mut(tail);
        let mut codes: [&[u8]; MAX_HA_MEMBERS] = [&[]; MAX_HA_MEMBERS];
        for (slot, &(start, n)) in codes.iter_mut().zip(&spans) {
            let at = start.saturating_sub(tail);
            *slot = back.get(at..at.saturating_add(n)).unwrap_or_default();
        }
        let data = ResponseData::Trust {
            trust_codes: SignedList::Items(codes.get(..spans.len()).unwrap_or_default()),
            policy: plan.policy.as_ref().map(|p| p.policy()),
        };
        self.encode_response(front, now, header, &Self::ok(), &data)
    }
}
