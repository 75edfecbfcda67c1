//! The wear simulation: a device with the default configuration except hourly reporting runs
//! for a simulated span against the lab's service, saving its records on an emulated NOR
//! flash after every call, and the flash counts erases per page.
//!
//! Shared by the `wear` example (ten years, printed) and the power-cut tests (a month, checked).

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::SoftwareSigner;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::server::{Config, Service, TokenSpec, UsageMode};
use slup_core::storage::fault::{FaultFlash, WriteCheck};
use slup_core::storage::flash::FlashStorage;
use slup_core::storage::{self};
use slup_core::types::{Scope, Timestamp};
use slup_core::Code;

use super::big_store::BigStore;
use super::lab::{service_key, Pair, HOUR, T0, TAG};

/// What the flash went through.
#[derive(Clone, Debug, Default)]
pub struct Wear {
    /// Simulated hours.
    pub hours: u64,
    /// Saves that wrote something.
    pub saves: u64,
    /// Usage reports the service acknowledged.
    pub acked: u64,
    /// Bytes programmed.
    pub bytes_written: u64,
    /// Erases per page.
    pub erases: Vec<u32>,
}

impl Wear {
    pub fn max(&self) -> u32 {
        self.erases.iter().copied().max().unwrap_or(0)
    }
    pub fn min(&self) -> u32 {
        self.erases.iter().copied().min().unwrap_or(0)
    }
    pub fn mean(&self) -> f64 {
        let n = self.erases.len().max(1) as f64;
        self.erases.iter().map(|e| f64::from(*e)).sum::<f64>() / n
    }
}

const TOKEN: &str = "TOKEN-WEAR";

type Flash = FaultFlash<4, 4096>;

/// Runs `hours` of hourly reporting on `pages` 4 KiB pages (4-byte words); `progress` is called
/// every simulated year.
pub fn simulate(pages: usize, hours: u64, mut progress: impl FnMut(&Wear)) -> Wear {
    let p = Pair::new(false, UsageMode::Immediate);
    let mut cfg = p.dev.config().clone();
    cfg.intervals.report_s = 3600;
    let mut dev = Engine::new(
        cfg,
        SoftwareKeys(ChaCha20Rng::seed_from_u64(7)),
        ChaCha20Rng::seed_from_u64(8),
        Timestamp(T0),
    );
    let mut svc: Service<BigStore, SoftwareSigner> =
        Service::new(BigStore::new(), service_key(), Config::default()).unwrap();
    let sa = svc.create_smart_account("Wear Lab").unwrap();
    let va = svc.create_virtual_account(sa, "Wear VA").unwrap();
    svc.add_token(
        TOKEN,
        TokenSpec {
            virtual_account: va,
            max_uses: 10,
            expires_at: Timestamp(T0 + HOUR),
            export_controlled: false,
        },
    )
    .unwrap();
    let flash = Flash::new(pages).with_check(WriteCheck::OnceThenZeros);
    let work = vec![0u8; FlashStorage::<Flash, Vec<u8>>::work_len()];
    let mut st = FlashStorage::new(flash, 0..(pages * 4096) as u32, work).unwrap();
    let mut buf = vec![0u8; 32 * 1024];
    let mut wire = vec![0u8; 16 * 1024];
    let mut out = vec![0u8; 16 * 1024];
    let mut srng = ChaCha20Rng::seed_from_u64(9);
    let mut wear = Wear::default();
    let mut now = T0;
    let mut save =
        |dev: &mut super::lab::Device, st: &mut FlashStorage<Flash, Vec<u8>>, wear: &mut Wear| {
            while dev.poll_event().is_some() {}
            let saved = storage::save(dev, st, &mut buf).expect("no fault is injected here");
            if !saved.is_empty() {
                wear.saves += 1;
            }
        };
    save(&mut dev, &mut st, &mut wear);
    dev.handle_command(
        Timestamp(now),
        Command::EstablishTrust {
            token: TOKEN,
            scope: Scope::Local,
            force: false,
        },
    )
    .unwrap();
    dev.handle_command(
        Timestamp(now),
        Command::RecordUsage {
            tag: TAG,
            count: 10,
        },
    )
    .unwrap();
    save(&mut dev, &mut st, &mut wear);
    let end = T0 + hours * HOUR;
    let mut next_year = T0 + 365 * 24 * HOUR;
    let mut next_day = T0 + 24 * HOUR;
    loop {
        // Every exchange due now.
        while let Some(t) = dev.poll_transmit(Timestamp(now), &mut wire) {
            save(&mut dev, &mut st, &mut wear);
            let reply = svc.handle(Timestamp(now), &mut srng, &wire[..t.len], &mut out);
            if reply.http_status == 200 {
                let before = dev.reports().len();
                let _ = dev.handle_response(Timestamp(now), &out[..reply.len]);
                wear.acked += before.saturating_sub(dev.reports().len()) as u64;
            } else {
                dev.handle_transport_error(Timestamp(now), Code::HttpClientError);
            }
            save(&mut dev, &mut st, &mut wear);
        }
        let next = dev.poll_timeout().map_or(end, |t| t.0).max(now);
        if next >= end {
            break;
        }
        now = next;
        if now >= next_day {
            // Once a day the count moves (an access point joins or leaves).
            next_day += 24 * HOUR;
            let count = 10 + (now / (24 * HOUR)) % 2;
            dev.handle_command(Timestamp(now), Command::RecordUsage { tag: TAG, count })
                .unwrap();
            save(&mut dev, &mut st, &mut wear);
        }
        dev.handle_timeout(Timestamp(now));
        save(&mut dev, &mut st, &mut wear);
        if now >= next_year {
            next_year += 365 * 24 * HOUR;
            wear.hours = (now - T0) / HOUR;
            wear.erases = st.flash().unwrap().erase_counts().to_vec();
            wear.bytes_written = st.flash().unwrap().stats().bytes_written;
            progress(&wear);
        }
    }
    wear.hours = hours;
    wear.erases = st.flash().unwrap().erase_counts().to_vec();
    wear.bytes_written = st.flash().unwrap().stats().bytes_written;
    wear
}
