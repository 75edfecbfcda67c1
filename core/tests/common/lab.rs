//! The lab: a device engine and the service side on one virtual clock with seeded RNGs, every
//! byte passing through the real codecs. Shared by the pair and render tests.
#![cfg(feature = "server")]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::{Signer, SoftwareSigner};
use slup_core::diag::MessageKind;
use slup_core::engine::config::Config as DeviceConfig;
use slup_core::engine::persist::Record;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine, Outcome};
use slup_core::msg::policy::Policy;
use slup_core::server::{Config, MemStore, Service, TokenSpec, UsageMode};
use slup_core::types::{Role, Timestamp};
use slup_core::Code;
use std::collections::BTreeMap;

/// Nov 14 22:13:20 2023 UTC.
pub const T0: u64 = 1_700_000_000_000;
pub const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";
pub const MIN: u64 = 60_000;
pub const HOUR: u64 = 60 * MIN;

pub type Device = Engine<SoftwareKeys<ChaCha20Rng>, ChaCha20Rng>;

pub struct Pair {
    pub dev: Device,
    pub svc: Service<MemStore, SoftwareSigner>,
    pub srng: ChaCha20Rng,
    pub now: u64,
    pub buf: Vec<u8>,
    pub out: Vec<u8>,
    /// Every event the device emitted, as rendered lines.
    pub events: Vec<String>,
    /// The service cannot be reached: requests never arrive.
    pub unreachable: bool,
    /// The service handles the next request, but its answer is lost on the way back.
    pub lose_next_answer: bool,
    /// The device's persistence records as a driver saves them after every call (a RAM store).
    pub store: BTreeMap<u8, Vec<u8>>,
    /// Records written so far.
    pub writes: usize,
}

pub fn service_key() -> SoftwareSigner {
    SoftwareSigner::from_secret_bytes(&[0x5e; 32]).unwrap()
}

impl Pair {
    /// A single unit (or an HA pair) and a service whose virtual account has `policy`.
    pub fn new(ha: bool, mode: UsageMode) -> Pair {
        Pair::with_policy(ha, mode, None)
    }

    /// [`Pair::new`] with a policy on the service's virtual account.
    pub fn with_policy(ha: bool, mode: UsageMode, policy: Option<&Policy<'_>>) -> Pair {
        let mut cfg: DeviceConfig = DeviceConfig::new(
            "C9800-CL-K9",
            "9PJK8D70CNB",
            "17.09.02",
            "regid.2018-05.com.cisco.WLC_9500C,1.0",
            service_key().public_key().clone(),
        )
        .unwrap();
        if ha {
            cfg.add_member(Role::Standby, "C9800-CL-K9", "9PJK8D70CNC")
                .unwrap();
        }
        let dev = Engine::new(
            cfg,
            SoftwareKeys(ChaCha20Rng::seed_from_u64(1)),
            ChaCha20Rng::seed_from_u64(2),
            Timestamp(T0),
        );
        let config = Config {
            usage_mode: mode,
            ..Config::default()
        };
        let mut svc = Service::new(MemStore::new(), service_key(), config).unwrap();
        let sa = svc.create_smart_account("Wireless TAC").unwrap();
        let va = svc.create_virtual_account(sa, "Lab VA").unwrap();
        svc.set_policy(va, policy).unwrap();
        for (text, uses) in [
            ("TOKEN-TWO-USES", 2),
            ("TOKEN-ONE-USE", 1),
            ("TOKEN-AGAIN", 1),
        ] {
            svc.add_token(
                text,
                TokenSpec {
                    virtual_account: va,
                    max_uses: uses,
                    expires_at: Timestamp(T0 + 30 * 24 * HOUR),
                    export_controlled: false,
                },
            )
            .unwrap();
        }
        let mut p = Pair {
            dev,
            svc,
            srng: ChaCha20Rng::seed_from_u64(3),
            now: T0,
            buf: vec![0u8; 16 * 1024],
            out: vec![0u8; 16 * 1024],
            events: Vec::new(),
            unreachable: false,
            lose_next_answer: false,
            store: BTreeMap::new(),
            writes: 0,
        };
        p.drain();
        p
    }

    /// Swaps in a new device (RMA): same service, another serial number, nothing installed.
    pub fn replace_device(&mut self, serial: &str) {
        let cfg: DeviceConfig = DeviceConfig::new(
            "C9800-CL-K9",
            serial,
            "17.09.02",
            "regid.2018-05.com.cisco.WLC_9500C,1.0",
            service_key().public_key().clone(),
        )
        .unwrap();
        self.dev = Engine::new(
            cfg,
            SoftwareKeys(ChaCha20Rng::seed_from_u64(11)),
            ChaCha20Rng::seed_from_u64(12),
            Timestamp(self.now),
        );
        self.drain();
    }

    /// Establishes trust for the active unit with `token` (scope local, no force) and runs the
    /// exchange; the caller asserts the outcome.
    pub fn trust(&mut self, token: &str) {
        self.cmd(Command::EstablishTrust {
            token,
            scope: slup_core::types::Scope::Local,
            force: false,
        })
        .unwrap();
        self.exchange();
    }

    /// Like [`Pair::trust`], but the service's answer is lost on the way back: the service
    /// has spent a use and holds the new key, the device still waits.
    pub fn trust_answer_lost(&mut self, token: &str) {
        self.lose_next_answer = true;
        self.trust(token);
        assert!(!self.dev.trust().is_installed());
        assert_eq!(self.svc.token(token).unwrap().unwrap().uses, 1);
    }

    /// Collects the device's events and saves every changed record, as a driver does after
    /// each call into the engine.
    pub fn drain(&mut self) {
        self.drain_events();
        self.save();
    }

    /// Collects the device's events without saving anything.
    pub fn drain_events(&mut self) {
        while let Some(e) = self.dev.poll_event() {
            self.events.push(e.to_string());
        }
    }

    /// Writes every changed record into the RAM store.
    pub fn save(&mut self) {
        for r in self.dev.changed().iter() {
            let n = self.dev.record_len(r).unwrap();
            let mut bytes = vec![0u8; n];
            assert_eq!(self.dev.write_record(r, &mut bytes), Ok(n));
            self.store.insert(r.id(), bytes);
            self.dev.mark_saved(r);
            self.writes += 1;
        }
        assert!(self.dev.changed().is_empty());
    }

    /// A new engine with this device's configuration, nothing restored, its RNGs seeded
    /// from `seed`.
    pub fn fresh_engine(&self, seed: u64) -> Device {
        Engine::new(
            self.dev.config().clone(),
            SoftwareKeys(ChaCha20Rng::seed_from_u64(seed)),
            ChaCha20Rng::seed_from_u64(seed + 1),
            Timestamp(self.now),
        )
    }

    /// Power cycle: a new engine restored from the store at `self.now`, open reports closed
    /// on reload. Returns what each record's restore said.
    pub fn reboot(&mut self) -> Vec<(Record, Result<(), Code>)> {
        self.restart(true)
    }

    /// Only the process restarts on the same state (the CLI): nothing closes.
    pub fn resume(&mut self) -> Vec<(Record, Result<(), Code>)> {
        self.restart(false)
    }

    fn restart(&mut self, reload: bool) -> Vec<(Record, Result<(), Code>)> {
        self.dev = self.fresh_engine(self.now);
        let now = Timestamp(self.now);
        let mut results = Vec::new();
        for (id, bytes) in self.store.clone() {
            let r = Record::from_id(id).unwrap();
            results.push((r, self.dev.restore_record(now, r, &bytes)));
        }
        if reload {
            self.dev.finish_restore(now);
        } else {
            self.dev.finish_resume(now);
        }
        self.drain();
        results
    }

    /// One exchange if the device has something to send; returns what was sent.
    pub fn exchange(&mut self) -> Option<MessageKind> {
        let now = Timestamp(self.now);
        let t = self.dev.poll_transmit(now, &mut self.buf)?;
        if self.unreachable {
            self.dev.handle_transport_error(now, Code::ConnectRefused);
            self.drain();
            return Some(t.kind);
        }
        let reply = self
            .svc
            .handle(now, &mut self.srng, &self.buf[..t.len], &mut self.out);
        if std::mem::take(&mut self.lose_next_answer) {
            self.dev.handle_transport_error(now, Code::ReadTimeout);
        } else if reply.http_status == 200 {
            let _ = self.dev.handle_response(now, &self.out[..reply.len]);
        } else {
            self.dev.handle_transport_error(now, Code::HttpClientError);
        }
        self.drain();
        Some(t.kind)
    }

    /// Runs the device until `ms` have passed, firing every deadline and exchange on the way.
    pub fn run_for(&mut self, ms: u64) {
        let end = self.now + ms;
        let mut handled_at = None;
        loop {
            while self.exchange().is_some() {}
            let next = self.dev.poll_timeout().map(|t| t.0).unwrap_or(end);
            if next > end {
                break;
            }
            // A deadline already reached is fine once (handle it now); handing it out again
            // after it was handled would make every driver spin.
            assert!(
                next > self.now || handled_at != Some(self.now),
                "deadline {next} still due after handle_timeout at {} (next report {:?}, in flight {}, reports {:?})",
                self.now,
                self.dev.next_report_time(),
                self.dev.in_flight(),
                self.dev.reports().iter().map(|r| r.state).collect::<Vec<_>>()
            );
            self.now = self.now.max(next);
            self.dev.handle_timeout(Timestamp(self.now));
            handled_at = Some(self.now);
            self.drain();
        }
        self.now = end;
        self.dev.handle_timeout(Timestamp(self.now));
        self.drain();
    }

    pub fn cmd(&mut self, c: Command<'_>) -> Result<Outcome, Code> {
        let r = self
            .dev
            .handle_command(Timestamp(self.now), c)
            .map_err(|e| e.code());
        self.drain();
        r
    }

    pub fn has_event(&self, needle: &str) -> bool {
        self.events.iter().any(|e| e.contains(needle))
    }
}
