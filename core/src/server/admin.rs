//! The operator's side: accounts, ID tokens, policies, RMA and look-ups, as the reference
//! server's admin API and the tests use them. Inputs are checked here, so the store only ever
//! holds values the protocol can carry.

use base64ct::{Base64UrlUnpadded, Encoding};
use rand_core::{CryptoRng, RngCore};

use super::store::{
    fixed, InstanceRecord, PiId, ReportRecord, SaId, ServiceStore, StoredPolicy, TokenId,
    TokenRecord, TokenText, VaId, NAME_LEN,
};
use super::Service;
use crate::crypto::Signer;
use crate::error::Code;
use crate::msg::policy::Policy;
use crate::types::{IdToken, ReportId, Timestamp, Udi};

/// What an ID token allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// Instances trusted with it join this virtual account.
    pub virtual_account: VaId,
    /// Units it may trust in total; an HA pair with scope `all` spends two.
    pub max_uses: u32,
    /// Refused from this instant on.
    pub expires_at: Timestamp,
    /// Instances trusted with it may use export-controlled licenses.
    pub export_controlled: bool,
}

/// Random bytes in a minted token: 48 bytes, 64 URL-safe base64 characters.
const MINTED_TOKEN_BYTES: usize = 48;

/// A name is 1–64 bytes of text without control characters (they would need escapes in every
/// trust code).
fn check_name(name: &str) -> Result<(), Code> {
    if name.is_empty() || name.len() > NAME_LEN || name.chars().any(char::is_control) {
        return Err(Code::InvalidArgument);
    }
    Ok(())
}

impl<St: ServiceStore, S: Signer> Service<St, S> {
    /// Creates a smart account; an invalid or taken name is [`Code::InvalidArgument`].
    pub fn create_smart_account(&mut self, name: &str) -> Result<SaId, Code> {
        check_name(name)?;
        self.store.add_smart_account(name)
    }

    /// Creates a virtual account in `sa`; an invalid or taken name is
    /// [`Code::InvalidArgument`].
    pub fn create_virtual_account(&mut self, sa: SaId, name: &str) -> Result<VaId, Code> {
        check_name(name)?;
        self.store.add_virtual_account(sa, name)
    }

    /// Adds an ID token with a chosen text (fixtures, scripted labs). A text that is not a
    /// valid token, a taken text, `max_uses` 0 or an unknown virtual account is
    /// [`Code::InvalidArgument`].
    pub fn add_token(&mut self, text: &str, spec: TokenSpec) -> Result<TokenId, Code> {
        IdToken::new(text).map_err(|_| Code::InvalidArgument)?;
        if spec.max_uses == 0 {
            return Err(Code::InvalidArgument);
        }
        self.store.add_token(&TokenRecord {
            text: fixed(text)?,
            virtual_account: spec.virtual_account,
            max_uses: spec.max_uses,
            uses: 0,
            expires_at: spec.expires_at,
            export_controlled: spec.export_controlled,
        })
    }

    /// Mints an ID token with a random text, as CSSM's "New Token…" does, and returns the
    /// text to give the operator.
    pub fn mint_token<R: RngCore + CryptoRng>(
        &mut self,
        rng: &mut R,
        spec: TokenSpec,
    ) -> Result<TokenText, Code> {
        let mut bytes = [0u8; MINTED_TOKEN_BYTES];
        rng.fill_bytes(&mut bytes);
        let mut text = [0u8; MINTED_TOKEN_BYTES * 4 / 3];
        let text =
            Base64UrlUnpadded::encode(&bytes, &mut text).map_err(|_| Code::InvalidArgument)?;
        self.add_token(text, spec)?;
        fixed(text)
    }

    /// Sets (or with `None` clears) the policy of a virtual account. A name longer than 64
    /// bytes is [`Code::CapacityExceeded`]; days above ten years [`Code::InvalidValue`].
    pub fn set_policy(&mut self, va: VaId, policy: Option<&Policy<'_>>) -> Result<(), Code> {
        let stored = policy.map(StoredPolicy::from_policy).transpose()?;
        self.store.set_policy(va, stored)
    }

    /// Removes a product instance (RMA): from now on its units' requests are refused with
    /// `403`, and its units may establish trust again as a new instance.
    pub fn remove_instance(&mut self, pi: PiId) -> Result<(), Code> {
        self.store.set_removed(pi, true)
    }

    /// The instance a unit belongs to (a live one first), with its record.
    pub fn instance_by_udi(&self, udi: &Udi<'_>) -> Result<Option<(PiId, InstanceRecord)>, Code> {
        let Some(pi) = self.store.instance_by_udi(udi)? else {
            return Ok(None);
        };
        Ok(self.store.instance(pi)?.map(|r| (pi, r)))
    }

    /// How many distinct reports an instance has delivered.
    pub fn report_count(&self, pi: PiId) -> Result<usize, Code> {
        self.store.report_count(pi)
    }

    /// A stored report.
    pub fn report(&self, udi: &Udi<'_>, id: ReportId) -> Result<Option<ReportRecord>, Code> {
        self.store.report(udi, id)
    }

    /// An ID token's record, by text.
    pub fn token(&self, text: &str) -> Result<Option<TokenRecord>, Code> {
        Ok(self.store.token_by_text(text)?.map(|(_, t)| t))
    }
}
