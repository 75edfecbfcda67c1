//! [`Backend`]: the sans-IO [`Service`] over a [`SqliteStore`], with its key, its randomness
//! and the wall clock; the one object the HTTP server, the admin subcommands and the tests
//! drive.
//!
//! The service signing key lives in the database (generated on first open), so a restarted
//! server keeps the trust anchor its devices were provisioned with.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rand_chacha::ChaCha20Rng;
use rand_core::{OsRng, SeedableRng};
use slup_core::crypto::{Signer, SoftwareSigner};
use slup_core::msg::policy::Policy;
use slup_core::msg::rum::SignedRum;
use slup_core::nonce::Nonce;
use slup_core::server::store::{InstanceRecord, PiId, ServiceStore, StoredAck, VaId};
use slup_core::server::{Config, Reply, Service, TokenSpec, UsageMode};
use slup_core::types::Timestamp;
use slup_core::Code;

use crate::error::Error;
use crate::store::{Durability, InstanceRow, SqliteStore, TokenRow};

/// The smart account [`Backend::mint_token`] uses when none is named.
pub const DEFAULT_SMART_ACCOUNT: &str = "Demo SA";

/// Largest answer the service writes (16 KiB holds every answer at the message limits).
pub const ANSWER_BUF: usize = 32 * 1024;

const SERVICE_KEY: &str = "service_key";
const DAY_MS: u64 = 86_400_000;

/// The wall clock in Unix milliseconds.
pub fn now() -> Timestamp {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    Timestamp(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// The license service with its database, key and randomness.
#[derive(Debug)]
pub struct Backend {
    svc: Service<SqliteStore, SoftwareSigner>,
    rng: ChaCha20Rng,
}

/// What one request produced: HTTP status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status (`200` with a signed envelope, otherwise an error body).
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

impl Backend {
    /// Opens (or creates) the database at `path`, loading (or generating) the service key.
    pub fn open(path: impl AsRef<Path>, durability: Durability) -> Result<Self, Error> {
        let mut store = SqliteStore::open_with(path, durability)?;
        let secret = store.meta_or_insert(SERVICE_KEY, || {
            SoftwareSigner::generate(&mut OsRng).secret_bytes().to_vec()
        })?;
        let secret: [u8; 32] = secret.as_slice().try_into().map_err(|_| {
            Error::new(
                Code::RecordCorrupt,
                "the stored service key is not 32 bytes",
            )
        })?;
        let key = SoftwareSigner::from_secret_bytes(&secret)
            .map_err(|c| Error::new(c, "the stored service key is not a P-256 scalar"))?;
        let svc = Service::new(store, key, Config::default())?;
        Ok(Backend {
            svc,
            rng: ChaCha20Rng::from_rng(OsRng)
                .map_err(|e| Error::other(format!("no operating-system randomness: {e}")))?,
        })
    }

    /// The service's public key, 65-byte SEC1 uncompressed: the devices' trust anchor.
    pub fn trust_anchor_sec1(&self) -> Vec<u8> {
        self.svc.signer().public_key().sec1().to_vec()
    }

    /// The service.
    pub fn service(&self) -> &Service<SqliteStore, SoftwareSigner> {
        &self.svc
    }

    /// The service, e.g. to change its [`Config`].
    pub fn service_mut(&mut self) -> &mut Service<SqliteStore, SoftwareSigner> {
        &mut self.svc
    }

    /// The store.
    pub fn store(&self) -> &SqliteStore {
        self.svc.store()
    }

    /// Answers `OK_POLL` with this retry delay (`Some`), or `OK` at once (`None`).
    pub fn set_poll_delay(&mut self, seconds: Option<u32>) {
        self.svc.config_mut().usage_mode = match seconds {
            Some(retry_time_seconds) => UsageMode::Poll { retry_time_seconds },
            None => UsageMode::Immediate,
        };
    }

    /// Answers one request body at the current time, as one transaction: the answer is
    /// returned only after everything it acknowledges is committed. When the batch cannot be
    /// committed the answer is a `503` error body and nothing of the request stays.
    pub fn handle(&mut self, body: &[u8]) -> Answer {
        self.handle_at(now(), body)
    }

    /// [`Backend::handle`] at a given time.
    pub fn handle_at(&mut self, now: Timestamp, body: &[u8]) -> Answer {
        if let Err(e) = self.begin_batch() {
            return storage_answer(e);
        }
        let answer = self.handle_in_batch(now, body);
        match self.commit_batch() {
            Ok(()) => answer,
            Err(e) => storage_answer(e),
        }
    }

    /// Opens a batch transaction for [`Backend::handle_in_batch`] (see [`crate::commit`]).
    pub fn begin_batch(&mut self) -> Result<(), (Code, String)> {
        self.svc.store_mut().begin().map_err(|code| {
            let detail = self.store().take_last_error().unwrap_or_default();
            (code, detail)
        })
    }

    /// Answers one request inside the open batch: its writes are not durable until
    /// [`Backend::commit_batch`] succeeds, and the answer must not leave before.
    pub fn handle_in_batch(&mut self, now: Timestamp, body: &[u8]) -> Answer {
        let mut out = vec![0u8; ANSWER_BUF];
        let Reply { http_status, len } = self.svc.handle(now, &mut self.rng, body, &mut out);
        out.truncate(len);
        Answer {
            status: http_status,
            body: out,
        }
    }

    /// Commits the open batch; on failure rolls it back (nothing of it stays) and says why.
    pub fn commit_batch(&mut self) -> Result<(), (Code, String)> {
        self.svc.store_mut().commit().map_err(|code| {
            let detail = self.store().take_last_error().unwrap_or_default();
            self.svc.store_mut().rollback();
            (code, detail)
        })
    }

    /// Turns an offline usage file into its signed ACK file (one transaction).
    pub fn ack_usage_file(&mut self, file: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = vec![0u8; ANSWER_BUF];
        self.svc.store_mut().begin()?;
        match self
            .svc
            .ack_usage_file(now(), &mut self.rng, file, &mut out)
        {
            Ok(len) => {
                self.svc.store_mut().commit()?;
                out.truncate(len);
                Ok(out)
            }
            Err(e) => {
                self.svc.store_mut().rollback();
                Err(e.into())
            }
        }
    }

    /// CSLU-initiated pull: verifies and stores reports read from a device (one transaction),
    /// and writes the signed ACK for them: a `LICENSE_USAGE` service envelope (status `OK`,
    /// no nonce: it answers no request) for the first report's unit, with its virtual
    /// account's policy. `None` when no report decodes.
    pub fn ingest_pulled(
        &mut self,
        reports: &[&[u8]],
        nonce: Option<Nonce>,
    ) -> Result<(StoredAck, Option<Vec<u8>>), Error> {
        let now = now();
        self.svc.store_mut().begin()?;
        let ack = match self.svc.ingest_pulled(now, reports.iter().copied()) {
            Ok(a) => a,
            Err(code) => {
                self.svc.store_mut().rollback();
                let detail = self.store().take_last_error().unwrap_or_default();
                return Err(Error::new(code, detail));
            }
        };
        self.svc.store_mut().commit()?;
        let Some(rum) = reports.iter().find_map(|b| SignedRum::decode(b).ok()) else {
            return Ok((ack, None));
        };
        let mut out = vec![0u8; ANSWER_BUF];
        let len = self
            .svc
            .pulled_ack(now, rum.payload.sudi, nonce, &ack, &mut out)?;
        out.truncate(len);
        Ok((ack, Some(out)))
    }

    /// The smart account `name`, created if absent.
    fn smart_account(&mut self, name: &str) -> Result<slup_core::server::store::SaId, Error> {
        match self.store().smart_account_by_name(name)? {
            Some(sa) => Ok(sa),
            None => Ok(self.svc.create_smart_account(name)?),
        }
    }

    /// The virtual account `va` of smart account `sa`, both created if absent.
    pub fn virtual_account(&mut self, sa: &str, va: &str) -> Result<VaId, Error> {
        let sa = self.smart_account(sa)?;
        match self.store().virtual_account_by_name(sa, va)? {
            Some(v) => Ok(v),
            None => Ok(self.svc.create_virtual_account(sa, va)?),
        }
    }

    /// Mints a random ID token for virtual account `va` of smart account `sa` (both created
    /// if absent) and returns its text.
    pub fn mint_token(
        &mut self,
        sa: &str,
        va: &str,
        max_uses: u32,
        expires_in_days: u32,
        export_controlled: bool,
    ) -> Result<String, Error> {
        if max_uses == 0 {
            return Err(Error::new(
                Code::InvalidArgument,
                "a token needs at least one use",
            ));
        }
        let virtual_account = self.virtual_account(sa, va)?;
        let spec = TokenSpec {
            virtual_account,
            max_uses,
            expires_at: now().add_millis(u64::from(expires_in_days).saturating_mul(DAY_MS)),
            export_controlled,
        };
        let text = self.svc.mint_token(&mut self.rng, spec)?;
        Ok(text.as_str().to_owned())
    }

    /// Adds an ID token with a chosen text (fixtures, scripted labs).
    pub fn add_token(
        &mut self,
        text: &str,
        va: VaId,
        max_uses: u32,
        expires_in_days: u32,
    ) -> Result<(), Error> {
        let spec = TokenSpec {
            virtual_account: va,
            max_uses,
            expires_at: now().add_millis(u64::from(expires_in_days).saturating_mul(DAY_MS)),
            export_controlled: false,
        };
        self.svc.add_token(text, spec)?;
        Ok(())
    }

    /// Sets the policy of virtual account `va` of smart account `sa` from its JSON (the wire
    /// form: `{"name":…,"ack_required":…,"classes":{…}}`); `None` clears it.
    pub fn set_policy(&mut self, sa: &str, va: &str, json: Option<&[u8]>) -> Result<(), Error> {
        let va = self.virtual_account(sa, va)?;
        let policy = json.map(Policy::decode).transpose().map_err(|e| {
            Error::new(
                e.code,
                format!("policy: in {} at byte {}", e.context, e.offset),
            )
        })?;
        self.svc.set_policy(va, policy.as_ref())?;
        Ok(())
    }

    /// Every ID token.
    pub fn tokens(&self) -> Result<Vec<TokenRow>, Error> {
        Ok(self.store().tokens()?)
    }

    /// Every product instance, removed ones too.
    pub fn instances(&self) -> Result<Vec<InstanceRow>, Error> {
        Ok(self.store().instances()?)
    }

    /// One product instance by row id.
    pub fn instance(&self, id: PiId) -> Result<Option<InstanceRecord>, Error> {
        Ok(self.store().instance(id)?)
    }

    /// Removes a product instance (the seed's RMA step): its units' requests are refused with
    /// `403` from now on, and they may establish trust again as a new instance.
    pub fn remove_instance(&mut self, id: PiId) -> Result<(), Error> {
        if self.store().instance(id)?.is_none() {
            return Err(Error::new(
                Code::InvalidArgument,
                format!("no product instance {}", id.0),
            ));
        }
        Ok(self.svc.remove_instance(id)?)
    }
}

/// The `503` answer when the database refused a transaction.
fn storage_answer((code, detail): (Code, String)) -> Answer {
    Answer {
        status: 503,
        body: crate::http::error_json(code, &format!("service storage failed: {detail}")),
    }
}
