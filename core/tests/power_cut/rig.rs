//! The power-cut rig: a device engine driven exactly as the driver contract of
//! `slup_core::storage` says (save after every call, save before sending, an answer counts once
//! its save commits), its records on a medium that can lose power, the lab's service on the
//! other side, and a model of what must survive.
//!
//! After every cut the rig reboots: it mounts the medium again, reads every record, and checks
//! that the set of records is exactly one of the states the medium may hold (the last
//! committed one, or one whose commit was under way), never a mix. It restores a new engine
//! from them, checks the model (report ids never lost or reused, counters never back, nothing
//! acknowledged stored as unacknowledged), finishes the restore, and saves (recovery), where
//! another cut may fall.

use std::collections::{BTreeMap, BTreeSet};

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::SoftwareSigner;
use slup_core::diag::MessageKind;
use slup_core::engine::persist::Record;
use slup_core::engine::reports::ReportState;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::server::{Config, Service, TokenSpec, UsageMode};
use slup_core::storage::fault::{Crash, FaultFlash, SimFs, WriteCheck};
use slup_core::storage::file::FileStorage;
use slup_core::storage::flash::FlashStorage;
use slup_core::storage::{self, Storage};
use slup_core::types::{Scope, Timestamp, Udi};
use slup_core::Code;

use crate::big_store::BigStore;
use crate::common::lab::*;

/// The token the rig trusts with: plenty of uses, valid for decades.
pub const TOKEN: &str = "TOKEN-POWER-CUT-LAB";
/// A second entitlement tag.
pub const TAG2: &str = "regid.2017-08.com.cisco.AIR-DNA-E,1.0_c7a1f2d4-0b6e-4d6f-9a3b-5e2c8f0d1a77";

/// Records by id: what a medium holds.
pub type Snap = BTreeMap<u8, Vec<u8>>;

/// What the model learns from a state once it is on the medium.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Facts {
    /// Report ids held (closed, or open in usage).
    pub ids: BTreeSet<u64>,
    /// The next report id.
    pub next_id: u64,
    /// The clock high-water mark.
    pub high_water: u64,
    /// Report ids the service acknowledged in the change this state saves.
    pub acked: Vec<u64>,
    /// Service answers this state applied (replays must be refused from then on).
    pub answers: Vec<Vec<u8>>,
    /// A factory reset happened in this change: the caller dropped its reports on purpose.
    pub reset: bool,
}

/// What must hold across every reboot.
#[derive(Clone, Debug, Default)]
pub struct Model {
    /// Every report id a durable state held since the last factory reset.
    pub ever: BTreeSet<u64>,
    /// Report ids acknowledged in a durable state.
    pub acked: BTreeSet<u64>,
    /// The highest next report id durable so far.
    pub next_id: u64,
    /// The highest clock high-water mark durable so far.
    pub high_water: u64,
    /// Answers applied in durable states (the last few).
    pub answers: Vec<Vec<u8>>,
}

impl Model {
    pub fn absorb(&mut self, f: &Facts) {
        if f.reset {
            self.ever.clear();
        }
        self.ever.extend(f.ids.iter().copied());
        self.acked.extend(f.acked.iter().copied());
        self.next_id = self.next_id.max(f.next_id);
        self.high_water = self.high_water.max(f.high_water);
        self.answers.extend(f.answers.iter().cloned());
        let n = self.answers.len();
        if n > 6 {
            self.answers.drain(..n - 6);
        }
    }
}

/// A medium that can lose power.
pub trait Medium: Storage + Sized {
    /// `false` once power was lost.
    fn powered(&mut self) -> bool;
    /// Power comes back; the medium is mounted afresh (`seed` picks what a crash kept, where
    /// the medium has a choice).
    fn reboot(self, seed: u64) -> Self;
    /// Loses power after `n` more units of traffic (bytes for flash, system calls for files).
    fn arm(&mut self, n: u64);
    /// About the traffic of a save of `frames` bytes of records (garbage collection included).
    fn traffic(frames: usize) -> u64;
}

/// The exhaustive tests' flash: 4-byte words, 1 KiB pages (14 of them).
pub type SmallFlash = FaultFlash<4, 1024>;
/// Pages of it.
pub const SMALL_PAGES: usize = 14;

/// How often the rig's flashes let a word be programmed: once, then only with zeros, as often
/// as asked (STM32L4/G4 allow that). `sequential-storage` 8 programs a page-state word again
/// (with zeros) for as long as a torn program leaves it reading unmarked; the million-cut run
/// found a word torn twice and programmed a third time.
pub const CHECK: WriteCheck = WriteCheck::OnceThenZeros;

/// A small flash for the exhaustive tests.
pub fn small_flash() -> SmallFlash {
    SmallFlash::new(SMALL_PAGES).with_check(CHECK)
}
/// The random tests' flash: 8-byte words, 1 KiB pages.
pub type RandomFlash = FaultFlash<8, 1024>;
/// Pages of it.
pub const RANDOM_PAGES: usize = 24;

pub type FlashMedium<const W: usize, const P: usize> = FlashStorage<FaultFlash<W, P>, Vec<u8>>;

/// Mounts `flash` as the rig's storage (the whole flash).
pub fn mount<const W: usize, const P: usize>(flash: FaultFlash<W, P>) -> FlashMedium<W, P> {
    let len = flash.image().len() as u32;
    let work = vec![0u8; FlashMedium::<W, P>::work_len().max(256)];
    FlashStorage::new(flash, 0..len, work).unwrap()
}

impl<const W: usize, const P: usize> Medium for FlashMedium<W, P> {
    fn powered(&mut self) -> bool {
        self.flash().unwrap().powered()
    }
    fn reboot(self, _seed: u64) -> Self {
        let mut f = self.into_flash().unwrap();
        // After a cut the power comes back; a clean power cycle keeps the cut still ahead.
        if !f.powered() {
            f.power_on();
        }
        mount(f)
    }
    fn arm(&mut self, n: u64) {
        self.flash().unwrap().cut_after(n);
    }
    fn traffic(frames: usize) -> u64 {
        // The frames and the manifest, and a little more: a page erase now and then.
        (frames + 256 + P / 4) as u64
    }
}

impl Medium for FileStorage<SimFs> {
    fn powered(&mut self) -> bool {
        !self.fs().crashed()
    }
    fn reboot(self, seed: u64) -> Self {
        let old = self.into_fs();
        let ahead = old.pending_crash();
        let fs = old.reboot(Crash::ALL[(seed % 6) as usize]);
        let mut st = FileStorage::open(fs).unwrap();
        if let Some(at) = ahead {
            let at = at.max(st.fs().calls());
            st.fs().crash_at(at);
        }
        st
    }
    fn arm(&mut self, n: u64) {
        let at = self.fs().calls() + n;
        self.fs().crash_at(at);
    }
    fn traffic(_frames: usize) -> u64 {
        // Read the state (first time), create, write, sync, rename, sync the directory.
        6
    }
}

/// Reads every record of `m`.
pub fn read_all<S: Storage>(m: &mut S) -> Snap {
    try_read_all(m).unwrap_or_else(|(r, e)| panic!("{r:?} unreadable after a cut: {e:?}"))
}

/// Reads every record of `m`, or says which one failed.
pub fn try_read_all<S: Storage>(m: &mut S) -> Result<Snap, (Record, Code)> {
    let mut buf = vec![0u8; 32 * 1024];
    let mut snap = Snap::new();
    for r in Record::ALL {
        match m.read(r, &mut buf) {
            Ok(Some(n)) => {
                snap.insert(r.id(), buf[..n].to_vec());
            }
            Ok(None) => {}
            Err(e) => return Err((r, e)),
        }
    }
    Ok(snap)
}

/// One transaction as the storage saw it.
pub type Tx = Vec<(Record, Vec<u8>)>;

/// Transactions, and the states before the first and after each.
pub type Recording = (Vec<Tx>, Vec<(Snap, Facts)>);

/// Passes a transaction through and keeps a copy.
struct Recorder<'a, S> {
    inner: &'a mut S,
    staged: Tx,
    log: &'a mut Vec<Tx>,
}

impl<S: Storage> Storage for Recorder<'_, S> {
    fn read(&mut self, r: Record, buf: &mut [u8]) -> Result<Option<usize>, Code> {
        self.inner.read(r, buf)
    }
    fn stage(&mut self, r: Record, frame: &[u8]) -> Result<(), Code> {
        self.staged.push((r, frame.to_vec()));
        self.inner.stage(r, frame)
    }
    fn commit(&mut self) -> Result<(), Code> {
        self.log.push(std::mem::take(&mut self.staged));
        self.inner.commit()
    }
    fn discard(&mut self) {
        self.staged.clear();
        self.inner.discard()
    }
    fn wipe(&mut self) -> Result<(), Code> {
        self.inner.wipe()
    }
}

/// Counters for the report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Tally {
    pub saves: u64,
    pub cuts: u64,
    /// Cuts that fell while recovering from the previous one.
    pub second_cuts: u64,
    /// Reboots that found the state whose commit was under way.
    pub found_new: u64,
    pub found_old: u64,
    pub exchanges: u64,
    pub failed_saves: u64,
    /// Random steps taken, and those that began without trust installed.
    pub steps: u64,
    pub untrusted_steps: u64,
    /// The longest run of steps without trust while the service could be reached.
    pub longest_untrusted: u64,
    run_untrusted: u64,
}

/// Steps a device may go without trust while the service can be reached: it tries again at a
/// quarter of the steps, and a try fails only to a cut (about 8% of saves). More means the
/// device is stuck (as it was when a cut orphaned its new key).
pub const MAX_UNTRUSTED_REACHABLE_STEPS: u64 = 100;

/// The device, its medium, the service and the model.
pub struct Rig<M: Medium> {
    /// The device (and the lab's clock and buffers).
    pub p: Pair,
    /// The service the device talks to.
    pub svc: Service<BigStore, SoftwareSigner>,
    pub m: Option<M>,
    pub rec: Vec<u8>,
    /// The last state known committed, and what the model learns from it.
    pub durable: (Snap, Facts),
    /// States the medium may hold now (the durable one first).
    pub possible: Vec<(Snap, Facts)>,
    pub model: Model,
    /// Power is off: nothing happens until [`Rig::reboot`].
    pub down: bool,
    /// Facts of changes not yet committed.
    meta: Facts,
    /// Transactions and the states after them, when recording.
    pub log: Option<Recording>,
    pub tally: Tally,
    /// Usage files saved and the ACK files answering them, not yet imported.
    pub ack_files: Vec<Vec<u8>>,
    /// The caller's truth: counts per tag it recorded.
    pub truth: BTreeMap<&'static str, u64>,
    pub rng: ChaCha20Rng,
    /// The rig's virtual account on the service.
    pub va: slup_core::server::store::VaId,
    /// The last events, for failure messages.
    pub events: Vec<String>,
    /// Random cuts: a save is cut with this chance in a thousand (the first save of a
    /// recovery with twice that), at a random byte within about its traffic.
    pub cut_rate: Option<u64>,
    /// The next save is the first of a recovery.
    recovering: bool,
    /// Check that a device without trust gets it back while the service can be reached (off
    /// where faults make the medium refuse saves for long stretches).
    pub check_liveness: bool,
    /// Why the last save failed (`None` once a save commits), for the driver's report and
    /// failure messages.
    pub last_save_error: Option<Code>,
}

/// A device engine with the lab's configuration and nothing restored.
pub fn fresh_device(p: &Pair, seed: u64) -> Device {
    Engine::new(
        p.dev.config().clone(),
        SoftwareKeys(ChaCha20Rng::seed_from_u64(seed)),
        ChaCha20Rng::seed_from_u64(seed ^ 0x5eed),
        Timestamp(p.now),
    )
}

impl<M: Medium> Rig<M> {
    /// An HA pair (or a single unit) with a fresh engine on `medium`.
    pub fn new(ha: bool, medium: M, seed: u64) -> Self {
        let mut p = Pair::new(ha, UsageMode::Immediate);
        // The rig's own service: the same key, a store with room for every report.
        let config = Config {
            usage_mode: UsageMode::Immediate,
            ..Config::default()
        };
        let mut svc = Service::new(BigStore::new(), service_key(), config).unwrap();
        let sa = svc.create_smart_account("Power Cut Lab").unwrap();
        let va = svc.create_virtual_account(sa, "Cuts VA").unwrap();
        svc.add_token(
            TOKEN,
            TokenSpec {
                virtual_account: va,
                max_uses: u32::MAX,
                // Longer than any run: half a million cuts are more than 20 years of device
                // time, and an expired token would leave the device without trust.
                expires_at: Timestamp(T0 + 1000 * 365 * 24 * HOUR),
                export_controlled: false,
            },
        )
        .unwrap();
        // Pair::new saved into its RAM map; this engine has saved nothing anywhere yet.
        p.dev = fresh_device(&p, seed);
        let mut rig = Rig {
            p,
            svc,
            m: Some(medium),
            rec: vec![0u8; 32 * 1024],
            durable: (Snap::new(), Facts::default()),
            possible: vec![(Snap::new(), Facts::default())],
            model: Model::default(),
            down: false,
            meta: Facts::default(),
            log: None,
            tally: Tally::default(),
            ack_files: Vec::new(),
            truth: BTreeMap::new(),
            rng: ChaCha20Rng::seed_from_u64(seed),
            va,
            events: Vec::new(),
            cut_rate: None,
            recovering: false,
            check_liveness: false,
            last_save_error: None,
        };
        rig.save();
        rig
    }

    pub fn now(&self) -> Timestamp {
        Timestamp(self.p.now)
    }

    pub fn medium(&mut self) -> &mut M {
        self.m.as_mut().unwrap()
    }

    /// The live engine's facts, with the pending change's metadata.
    fn facts(&mut self) -> Facts {
        let dev = &self.p.dev;
        let mut ids: BTreeSet<u64> = dev.reports().iter().map(|r| r.id.0).collect();
        ids.extend(
            dev.usage()
                .tags()
                .iter()
                .filter_map(|t| t.open.map(|o| o.report_id.0)),
        );
        Facts {
            ids,
            next_id: dev.usage().next_report_id(),
            high_water: high_water(dev),
            ..self.meta.clone()
        }
    }

    /// Saves every changed record; `true` when committed (or nothing changed).
    pub fn save(&mut self) -> bool {
        if self.down {
            return false;
        }
        self.drain_events();
        let changed = self.p.dev.changed();
        if changed.is_empty() {
            return true;
        }
        let mut cand = self.durable.0.clone();
        for r in changed.iter() {
            let n = self.p.dev.record_len(r).unwrap();
            let mut b = vec![0u8; n];
            self.p.dev.write_record(r, &mut b).unwrap();
            cand.insert(r.id(), b);
        }
        let facts = self.facts();
        self.possible.push((cand.clone(), facts.clone()));
        self.tally.saves += 1;
        if let Some(rate) = self.cut_rate {
            let rate = if std::mem::take(&mut self.recovering) {
                2 * rate
            } else {
                rate
            };
            if self.rng.next_u64() % 1000 < rate {
                let frames: usize = changed
                    .iter()
                    .map(|r| cand.get(&r.id()).map_or(0, Vec::len))
                    .sum();
                let span = M::traffic(frames).max(1);
                let at = self.rng.next_u64() % span;
                self.m.as_mut().unwrap().arm(at);
            }
        }
        let m = self.m.as_mut().unwrap();
        let result = match self.log.as_mut() {
            Some((txs, _)) => {
                let mut rec = Recorder {
                    inner: m,
                    staged: Vec::new(),
                    log: txs,
                };
                storage::save(&mut self.p.dev, &mut rec, &mut self.rec)
            }
            None => storage::save(&mut self.p.dev, m, &mut self.rec),
        };
        match result {
            Ok(_) => {
                if let Some((_, states)) = self.log.as_mut() {
                    states.push((cand.clone(), facts.clone()));
                }
                self.model.absorb(&facts);
                self.meta = Facts::default();
                self.durable = (cand, facts);
                self.possible = vec![self.durable.clone()];
                self.last_save_error = None;
                self.check_live();
                true
            }
            Err(code) => {
                self.last_save_error = Some(code);
                self.tally.failed_saves += 1;
                if !self.m.as_mut().unwrap().powered() {
                    self.down = true;
                }
                false
            }
        }
    }

    /// What must hold of the live engine after every committed save.
    fn check_live(&self) {
        let reports = self.p.dev.reports();
        let ids: Vec<u64> = reports.iter().map(|r| r.id.0).collect();
        let unique: BTreeSet<u64> = ids.iter().copied().collect();
        assert_eq!(unique.len(), ids.len(), "a report id twice: {ids:?}");
        for r in reports.iter() {
            assert_ne!(
                r.state,
                ReportState::Rejected,
                "the service rejected report {} ({}): {:?}",
                r.id.0,
                r.reason,
                self.events
            );
            assert!(
                !self.model.acked.contains(&r.id.0),
                "acknowledged report {} stored again as unacknowledged",
                r.id.0
            );
        }
    }

    pub fn drain_events(&mut self) {
        while let Some(e) = self.p.dev.poll_event() {
            self.events.push(e.to_string());
        }
        let n = self.events.len();
        if n > 40 {
            self.events.drain(..n - 40);
        }
    }

    /// An engine call followed by a save.
    pub fn call<T>(&mut self, f: impl FnOnce(&mut Device, Timestamp) -> T) -> Option<T> {
        if self.down {
            return None;
        }
        let now = self.now();
        let r = f(&mut self.p.dev, now);
        self.save();
        Some(r)
    }

    /// Builds the next request and saves before it leaves; returns it and the service's answer
    /// (`None` for the answer when it never comes back).
    pub fn send(&mut self) -> Option<(MessageKind, Option<Vec<u8>>)> {
        if self.down {
            return None;
        }
        let now = self.now();
        let t = self.p.dev.poll_transmit(now, &mut self.p.buf)?;
        if !self.save() {
            if !self.down {
                // Not saved: it must not go out.
                let code = self.last_save_error.expect("a failed save keeps its error");
                self.p.dev.handle_transport_error(now, code);
                self.save();
            }
            return None;
        }
        self.tally.exchanges += 1;
        for r in self.p.dev.reports().iter() {
            if r.state == ReportState::Pending {
                assert!(
                    !self.model.acked.contains(&r.id.0),
                    "acknowledged report {} sent again",
                    r.id.0
                );
            }
        }
        if self.p.unreachable {
            self.p.dev.handle_transport_error(now, Code::ConnectRefused);
            self.save();
            return Some((t.kind, None));
        }
        let reply = self
            .svc
            .handle(now, &mut self.p.srng, &self.p.buf[..t.len], &mut self.p.out);
        if reply.http_status != 200 {
            self.p
                .dev
                .handle_transport_error(now, Code::HttpClientError);
            self.save();
            return Some((t.kind, None));
        }
        let answer = self.p.out[..reply.len].to_vec();
        if std::mem::take(&mut self.p.lose_next_answer) {
            self.p.dev.handle_transport_error(now, Code::ReadTimeout);
            self.save();
            return Some((t.kind, None));
        }
        Some((t.kind, Some(answer)))
    }

    /// Applies an answer and saves; the answer counts once that save commits.
    pub fn answer(&mut self, answer: &[u8]) -> bool {
        if self.down {
            return false;
        }
        let before: BTreeSet<u64> = self.p.dev.reports().iter().map(|r| r.id.0).collect();
        let ok = self.p.dev.handle_response(self.now(), answer).is_ok();
        self.note_answer(ok, answer, &before);
        self.save()
    }

    fn note_answer(&mut self, ok: bool, answer: &[u8], before: &BTreeSet<u64>) {
        if ok {
            let after: BTreeSet<u64> = self.p.dev.reports().iter().map(|r| r.id.0).collect();
            self.meta.acked.extend(before.difference(&after).copied());
            self.meta.answers.push(answer.to_vec());
        }
    }

    /// One whole exchange, if something is due.
    pub fn exchange(&mut self) -> Option<MessageKind> {
        let (kind, answer) = self.send()?;
        if let Some(a) = answer {
            self.answer(&a);
        }
        Some(kind)
    }

    /// Exchanges while something is due (bounded).
    pub fn exchanges(&mut self) {
        for _ in 0..6 {
            if self.exchange().is_none() {
                break;
            }
        }
    }

    pub fn establish_trust(&mut self, force: bool) {
        self.call(|d, now| {
            let _ = d.handle_command(
                now,
                Command::EstablishTrust {
                    token: TOKEN,
                    scope: Scope::All,
                    force,
                },
            );
        });
        self.exchanges();
    }

    pub fn record(&mut self, tag: &'static str, count: u64) {
        self.truth.insert(tag, count);
        self.call(|d, now| {
            let _ = d.handle_command(now, Command::RecordUsage { tag, count });
        });
    }

    pub fn entity(&mut self, serial: &str, joined: bool) {
        self.call(|d, now| {
            let _ = d.handle_command(
                now,
                Command::Entity {
                    tag: TAG,
                    udi: Udi::new("AIR-AP1852I", serial).unwrap(),
                    joined,
                },
            );
        });
    }

    /// Advances the clock to the next deadline (at most `max_ms` on) and handles it.
    pub fn advance(&mut self, max_ms: u64) {
        if self.down {
            return;
        }
        let next = self.p.dev.poll_timeout().map_or(u64::MAX, |t| t.0);
        self.p.now = self.p.now.max(next.min(self.p.now + max_ms));
        self.call(|d, now| d.handle_timeout(now));
        self.exchanges();
    }

    /// `license smart save usage`, then the service's ACK file for it, kept for an import.
    pub fn save_usage_file(&mut self) {
        let mut file = vec![0u8; 16 * 1024];
        let Some(Ok(n)) = self.call(|d, now| d.save_usage(now, false, &mut file)) else {
            return;
        };
        if self.down || !self.p.dev.changed().is_empty() {
            // Not saved: the file must not be handed out.
            return;
        }
        let mut ack = vec![0u8; 16 * 1024];
        if let Ok(m) = self
            .svc
            .ack_usage_file(self.now(), &mut self.p.srng, &file[..n], &mut ack)
        {
            self.ack_files.push(ack[..m].to_vec());
        }
    }

    /// Imports the oldest ACK file waiting.
    pub fn import_ack_file(&mut self) {
        if self.down || self.ack_files.is_empty() {
            return;
        }
        let ack = self.ack_files.remove(0);
        let before: BTreeSet<u64> = self.p.dev.reports().iter().map(|r| r.id.0).collect();
        let ok = self.p.dev.import(self.now(), &ack).is_ok();
        self.note_answer(ok, &ack, &before);
        self.save();
    }

    pub fn factory_reset(&mut self) {
        if self.down {
            return;
        }
        let _ = self.p.dev.handle_command(self.now(), Command::FactoryReset);
        self.meta.reset = true;
        self.truth.clear();
        self.save();
    }

    /// Power cycle. After a cut: checks what the medium holds against the states it may hold
    /// and the model, then recovers. Without one (`down` false): a clean reboot.
    pub fn reboot(&mut self) {
        let seed = self.rng.next_u64();
        let cut = self.down;
        if cut {
            self.tally.cuts += 1;
        }
        let mut m = self.m.take().unwrap().reboot(seed);
        let snap = loop {
            match try_read_all(&mut m) {
                Ok(s) => break s,
                // The power went again while booting (reads change nothing): boot again.
                Err(_) if !m.powered() => {
                    self.tally.second_cuts += 1;
                    m = m.reboot(self.rng.next_u64());
                }
                Err((r, e)) => panic!("{r:?} unreadable after a cut: {e:?}"),
            }
        };
        let Some(found) = self.possible.iter().position(|(s, _)| *s == snap) else {
            let diff: Vec<_> = Record::ALL
                .iter()
                .map(|r| {
                    let got = snap.get(&r.id());
                    let which: Vec<usize> = self
                        .possible
                        .iter()
                        .enumerate()
                        .filter(|(_, (s, _))| s.get(&r.id()) == got)
                        .map(|(i, _)| i)
                        .collect();
                    (r.name(), which)
                })
                .collect();
            panic!(
                "after a cut the medium holds none of the {} possible states (a mix?): \
                 record -> states it matches {diff:?}; {:?}",
                self.possible.len(),
                self.tally
            );
        };
        if found + 1 == self.possible.len() && found > 0 {
            self.tally.found_new += 1;
        } else {
            self.tally.found_old += 1;
        }
        let (snap, facts) = self.possible[found].clone();
        let mut dev = fresh_device(&self.p, seed);
        let now = self.now();
        for (id, bytes) in &snap {
            let r = Record::from_id(*id).unwrap();
            if let Err(e) = dev.restore_record(now, r, bytes) {
                panic!("a committed {r:?} record does not restore: {e:?}");
            }
        }
        // Resumes exactly: every stored record encodes back to the same bytes.
        for r in dev.changed().iter() {
            assert!(!snap.contains_key(&r.id()), "{r:?} restored inexactly");
        }
        self.model.absorb(&facts);
        check_restored(&dev, &self.model);
        dev.finish_restore(now);
        self.recovering = true;
        self.p.dev = dev;
        self.m = Some(m);
        self.durable = (snap, facts);
        self.possible = vec![self.durable.clone()];
        self.meta = Facts::default();
        self.down = false;
        self.drain_events();
        // The platform tells the engine its current counts again.
        let truth: Vec<_> = self.truth.iter().map(|(t, c)| (*t, *c)).collect();
        self.save();
        for (tag, count) in truth {
            self.record(tag, count);
        }
        if !self.down && self.p.dev.changed().is_empty() {
            self.check_replays();
        }
        if self.down && cut {
            self.tally.second_cuts += 1;
        }
    }

    /// Answers applied in durable states are refused when replayed, and change nothing.
    fn check_replays(&mut self) {
        let now = self.now();
        let guarded = [
            Record::Trust,
            Record::Policy,
            Record::Reports,
            Record::Nonces,
        ];
        let before: Vec<Vec<u8>> = guarded
            .iter()
            .map(|r| record_bytes(&self.p.dev, *r))
            .collect();
        let answers = self.model.answers.clone();
        for a in answers.iter().rev().take(2) {
            let r = self.p.dev.import(now, a);
            assert!(r.is_err(), "a replayed answer was accepted after a reboot");
        }
        let after: Vec<Vec<u8>> = guarded
            .iter()
            .map(|r| record_bytes(&self.p.dev, *r))
            .collect();
        assert_eq!(before, after, "a refused replay changed the device");
        self.save();
    }

    /// One random step of a device's life.
    pub fn random_op(&mut self) {
        self.tally.steps += 1;
        if self.p.dev.trust().is_installed() {
            self.tally.run_untrusted = 0;
        } else {
            self.tally.untrusted_steps += 1;
            if !self.p.unreachable {
                self.tally.run_untrusted += 1;
            }
            let t = &mut self.tally;
            t.longest_untrusted = t.longest_untrusted.max(t.run_untrusted);
            if self.check_liveness && t.run_untrusted > MAX_UNTRUSTED_REACHABLE_STEPS {
                let sizes: Vec<(&str, usize)> = Record::ALL
                    .iter()
                    .map(|r| (r.name(), self.durable.0.get(&r.id()).map_or(0, Vec::len)))
                    .collect();
                panic!(
                    "no trust for {} steps with the service reachable (last save error {:?}, \
                     durable records {sizes:?}): {:?}",
                    t.run_untrusted, self.last_save_error, self.events
                );
            }
        }
        let pick = self.rng.next_u32() % 100;
        let small = u64::from(self.rng.next_u32() % 7);
        match pick {
            0..=17 => {
                let tag = if small % 3 == 0 { TAG2 } else { TAG };
                self.record(tag, small);
            }
            18..=24 => {
                let serial = ["FGL1", "FGL2", "FGL3"][(small % 3) as usize];
                self.entity(serial, small % 2 == 0);
            }
            25..=39 => {
                self.call(|d, now| {
                    let _ = d.handle_command(now, Command::SyncNow);
                });
                self.exchanges();
            }
            40..=52 => self.advance(HOUR * (1 + small)),
            53..=64 => {
                // Report time.
                self.p.now = self.p.now.max(self.p.dev.next_report_time().0);
                self.call(|d, now| d.handle_timeout(now));
                self.exchanges();
            }
            65..=69 => self.p.unreachable = !self.p.unreachable,
            70..=72 => self.p.lose_next_answer = true,
            73..=76 => self.save_usage_file(),
            77..=80 => self.import_ack_file(),
            81..=82 => {
                self.factory_reset();
                self.establish_trust(false);
            }
            83..=85 => {
                // A clean power cycle.
                self.reboot();
            }
            86..=87 => {
                // The clock is set back.
                self.p.now -= 2 * HOUR;
                self.advance(MIN);
            }
            _ => {
                self.exchanges();
            }
        }
        if !self.p.dev.trust().is_installed() && !self.down && self.rng.next_u32().is_multiple_of(4)
        {
            self.establish_trust(false);
        }
    }
}

/// Record `r` as the engine would save it now.
pub fn record_bytes(dev: &Device, r: Record) -> Vec<u8> {
    let mut b = vec![0u8; dev.record_len(r).unwrap()];
    dev.write_record(r, &mut b).unwrap();
    b
}

/// The clock high-water mark, read from the engine's schedule record.
pub fn high_water(dev: &Device) -> u64 {
    let mut b = vec![0u8; 256];
    let n = dev.write_record(Record::Schedule, &mut b).unwrap();
    assert!(n >= 12);
    u64::from_le_bytes(b[4..12].try_into().unwrap())
}

/// What must hold of an engine restored from a durable state (before `finish_restore`).
pub fn check_restored(dev: &Device, model: &Model) {
    let mut held: BTreeSet<u64> = BTreeSet::new();
    for r in dev.reports().iter() {
        assert!(held.insert(r.id.0), "report id {} twice", r.id.0);
        assert!(
            !model.acked.contains(&r.id.0),
            "acknowledged report {} restored as unacknowledged",
            r.id.0
        );
    }
    for t in dev.usage().tags() {
        if let Some(o) = t.open {
            assert!(
                held.insert(o.report_id.0),
                "open report id {} also closed",
                o.report_id.0
            );
        }
    }
    let lost: Vec<_> = model
        .ever
        .iter()
        .filter(|id| !held.contains(id) && !model.acked.contains(id))
        .collect();
    assert!(lost.is_empty(), "reports lost across a reboot: {lost:?}");
    let next = dev.usage().next_report_id();
    assert!(
        next >= model.next_id,
        "report id counter went back: {next} < {}",
        model.next_id
    );
    assert!(
        held.iter().all(|id| *id < next),
        "report id {held:?} not below the counter {next}"
    );
    let hw = high_water(dev);
    assert!(
        hw >= model.high_water,
        "clock high-water mark went back: {hw} < {}",
        model.high_water
    );
}
