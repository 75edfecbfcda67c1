//! The `flash_image` fuzz target: mounts an arbitrary flash image as the engine's storage,
//! restores an engine from it, then runs engine operations and saves after each.
//!
//! Input: one byte choosing the geometry (word size and page size), the image (whole pages,
//! up to [`MAX_PAGES`]; a short image is padded with erased bytes), then the operations, one
//! byte each. Properties, for every input:
//!
//! - nothing panics, loops or allocates without bound: a hostile image ends in a defined
//!   degraded state (records lost, each with an event) and the engine keeps working;
//! - on a structure the storage wrote itself (a blank image, or one it formatted because it
//!   held no manifest or could not be read), whatever a save committed reads back, byte for
//!   byte, through a fresh mount;
//! - a restored engine is consistent: restoring what it then saves restores exactly.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::{Signer, SoftwareSigner};
use slup_core::engine::config::Config;
use slup_core::engine::persist::Record;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine};
use slup_core::storage::fault::{FaultFlash, WriteCheck};
use slup_core::storage::flash::FlashStorage;
use slup_core::storage::{self, Storage};
use slup_core::types::{Timestamp, Udi};

/// Pages of the largest image.
pub const MAX_PAGES: usize = 16;
/// Operations run at most.
pub const MAX_OPS: usize = 24;

const T0: u64 = 1_700_000_000_000;
const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

type Device = Engine<SoftwareKeys<ChaCha20Rng>, ChaCha20Rng>;

fn device(now: u64) -> Device {
    let anchor = SoftwareSigner::from_secret_bytes(&[0x5e; 32])
        .unwrap()
        .public_key()
        .clone();
    let cfg: Config = Config::new(
        "C9800-CL-K9",
        "9PJK8D70CNB",
        "17.09.02",
        "regid.2018-05.com.cisco.WLC_9500C,1.0",
        anchor,
    )
    .unwrap();
    Engine::new(
        cfg,
        SoftwareKeys(ChaCha20Rng::seed_from_u64(1)),
        ChaCha20Rng::seed_from_u64(2),
        Timestamp(now),
    )
}

/// The fuzz entry point.
pub fn check(data: &[u8]) {
    let Some((&geometry, rest)) = data.split_first() else {
        return;
    };
    match geometry % 6 {
        0 => run::<1, 256>(rest),
        1 => run::<4, 256>(rest),
        2 => run::<4, 512>(rest),
        3 => run::<8, 1024>(rest),
        4 => run::<16, 1024>(rest),
        _ => run::<4, 4096>(rest),
    }
}

fn mount<const W: usize, const P: usize>(
    flash: FaultFlash<W, P>,
) -> FlashStorage<FaultFlash<W, P>, Vec<u8>> {
    let len = flash.image().len() as u32;
    let work = vec![0u8; FlashStorage::<FaultFlash<W, P>, Vec<u8>>::work_len().max(256)];
    FlashStorage::new(flash, 0..len, work).expect("a valid geometry")
}

fn run<const W: usize, const P: usize>(data: &[u8]) {
    // The first two bytes say how many pages the image has; the rest of the pages' bytes
    // follow, then the operations.
    let Some((&pages, rest)) = data.split_first() else {
        return;
    };
    let pages = 2 + usize::from(pages) % (MAX_PAGES - 1);
    let take = rest.len().min(pages * P);
    let (image_part, ops) = rest.split_at(take);
    let mut image = vec![0xFFu8; pages * P];
    image[..image_part.len()].copy_from_slice(image_part);
    let flash = FaultFlash::<W, P>::from_image(&image).with_check(WriteCheck::Unlimited);
    let mut st = mount(flash);
    let mut buf = vec![0u8; 32 * 1024];
    let mut now = T0;
    let mut dev = device(now);
    let restored = storage::restore(&mut dev, &mut st, &mut buf, Timestamp(now));
    assert!(restored.lost.iter().all(|r| dev.changed().contains(r)));
    drain(&mut dev);
    let _ = storage::save(&mut dev, &mut st, &mut buf);
    // Read-back is promised on a structure this storage wrote: a blank image, or one it
    // formatted. An image with a valid manifest over a damaged map may later show an older
    // consistent state (never a mix; see the storage docs), so only the no-panic properties
    // apply to it.
    let mut ours = st.own_structure();
    for &op in ops.iter().take(MAX_OPS) {
        let t = Timestamp(now);
        match op % 8 {
            0 | 1 => {
                let _ = dev.handle_command(
                    t,
                    Command::RecordUsage {
                        tag: TAG,
                        count: u64::from(op >> 3),
                    },
                );
            }
            2 => {
                let _ = dev.handle_command(
                    t,
                    Command::Entity {
                        tag: TAG,
                        udi: Udi::new("AIR-AP1852I", "FGL1").unwrap(),
                        joined: op & 0x80 != 0,
                    },
                );
            }
            3 => {
                let _ = dev.handle_command(t, Command::SyncNow);
            }
            4 => {
                now += u64::from(op >> 3) * 600_000;
                dev.handle_timeout(Timestamp(now));
            }
            5 => {
                let _ = dev.handle_command(t, Command::FactoryReset);
            }
            6 => {
                let mut file = vec![0u8; 8192];
                let _ = dev.save_usage(t, false, &mut file);
            }
            _ => {
                // A power cycle: remount and restore.
                ours |= st.own_structure();
                let flash = st.into_flash().unwrap();
                st = mount(flash);
                dev = device(now);
                storage::restore(&mut dev, &mut st, &mut buf, Timestamp(now));
            }
        }
        drain(&mut dev);
        let saved = storage::save(&mut dev, &mut st, &mut buf).is_ok();
        ours |= st.own_structure();
        if saved && ours {
            check_reads_back(&mut dev, st.flash().unwrap().clone(), &mut buf);
        }
    }
}

fn drain(dev: &mut Device) {
    while dev.poll_event().is_some() {}
}

/// A fresh mount reads every record exactly as the engine writes it now.
fn check_reads_back<const W: usize, const P: usize>(
    dev: &mut Device,
    flash: FaultFlash<W, P>,
    buf: &mut [u8],
) {
    let mut st = mount(flash);
    let mut mine = vec![0u8; 32 * 1024];
    for r in Record::ALL {
        let n = dev.write_record(r, &mut mine).unwrap();
        match st.read(r, buf) {
            Ok(Some(m)) => assert_eq!(&buf[..m], &mine[..n], "{r:?} reads back differently"),
            other => panic!("{r:?} saved but reads back as {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_garbage_and_used_images_mount_and_work() {
        // Erased, all zeros, and a pattern: each geometry.
        for g in 0..6u8 {
            for fill in [0xFFu8, 0x00, 0xA5] {
                let mut input = vec![g, 3];
                input.extend(std::iter::repeat_n(fill, 4 * 4096));
                input.extend([0, 1, 3, 4, 7, 5, 0]);
                check(&input);
            }
        }
        // A real image: saved by a device, then mounted with every operation.
        check(&seed_with_state());
    }

    /// Regenerates the seed corpus (`cargo test -p slup-tests --lib -- --ignored`).
    #[test]
    #[ignore]
    fn regenerate_flash_image_seeds() {
        let dir = crate::workspace_root().join("fuzz/corpus/flash_image");
        std::fs::create_dir_all(&dir).unwrap();
        let mut empty = vec![2u8, 4];
        empty.extend([0, 8, 3, 4, 6, 7, 5, 1]);
        std::fs::write(dir.join("empty_512"), empty).unwrap();
        std::fs::write(dir.join("saved_state_512"), seed_with_state()).unwrap();
        let mut zeros = vec![3u8, 2];
        zeros.extend(std::iter::repeat_n(0u8, 2048));
        zeros.extend([0, 7]);
        std::fs::write(dir.join("zeros_1024"), zeros).unwrap();
    }

    /// An image holding a device's saved records (4-byte words, 512-byte pages), then ops.
    fn seed_with_state() -> Vec<u8> {
        let pages = 8usize;
        let flash = FaultFlash::<4, 512>::new(pages);
        let mut st = mount(flash);
        let mut dev = device(T0);
        let mut buf = vec![0u8; 32 * 1024];
        dev.handle_command(Timestamp(T0), Command::RecordUsage { tag: TAG, count: 3 })
            .unwrap();
        storage::save(&mut dev, &mut st, &mut buf).unwrap();
        let mut input = vec![2u8, (pages - 2) as u8];
        input.extend_from_slice(st.flash().unwrap().image());
        input.extend([7, 0, 3, 4, 7]);
        input
    }
}
