//! One full trust → report → ACK cycle of the device engine against the in-process service, for
//! instruction counting (`scripts/measure-cycle` runs it under callgrind and attributes the
//! device's instructions to crypto or to everything else, against DESIGN.md §6: the non-crypto
//! share must stay ≤ 10 %).
//!
//! Only the device's calls matter: each is a function named `device_*` so that callgrind can
//! collect inside them alone (`--toggle-collect=*device_*`). The service side runs outside.

use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use slup_core::crypto::{Signer, SoftwareSigner};
use slup_core::engine::config::Config as DeviceConfig;
use slup_core::engine::trust::SoftwareKeys;
use slup_core::engine::{Command, Engine, Transmit};
use slup_core::server::{Config, MemStore, Service, TokenSpec};
use slup_core::types::{Scope, Timestamp};

type Device = Engine<SoftwareKeys<ChaCha20Rng>, ChaCha20Rng>;

const T0: u64 = 1_700_000_000_000;
const TAG: &str = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";

#[inline(never)]
fn device_new(service_key: &SoftwareSigner) -> Device {
    let cfg = DeviceConfig::new(
        "C9800-CL-K9",
        "9PJK8D70CNB",
        "17.09.02",
        "regid.2018-05.com.cisco.WLC_9500C,1.0",
        service_key.public_key().clone(),
    )
    .expect("config");
    Engine::new(
        cfg,
        SoftwareKeys(ChaCha20Rng::seed_from_u64(1)),
        ChaCha20Rng::seed_from_u64(2),
        Timestamp(T0),
    )
}

#[inline(never)]
fn device_command(dev: &mut Device, cmd: Command<'_>) {
    dev.handle_command(Timestamp(T0), cmd).expect("command");
}

#[inline(never)]
fn device_transmit(dev: &mut Device, buf: &mut [u8]) -> Option<Transmit> {
    dev.poll_transmit(Timestamp(T0), buf)
}

#[inline(never)]
fn device_answer(dev: &mut Device, answer: &[u8]) {
    dev.handle_response(Timestamp(T0), answer).expect("answer");
}

fn main() {
    let service_key = SoftwareSigner::from_secret_bytes(&[0x5e; 32]).expect("key");
    let mut svc = Service::new(
        MemStore::<4, 4, 16, 4>::new(),
        SoftwareSigner::from_secret_bytes(&[0x5e; 32]).expect("key"),
        Config::default(),
    )
    .expect("service");
    let sa = svc.create_smart_account("Wireless TAC").expect("sa");
    let va = svc.create_virtual_account(sa, "Lab").expect("va");
    svc.add_token(
        "TOKEN-ONE-USE",
        TokenSpec {
            virtual_account: va,
            max_uses: 1,
            expires_at: Timestamp(T0 + 86_400_000),
            export_controlled: false,
        },
    )
    .expect("token");
    let mut srng = ChaCha20Rng::seed_from_u64(3);
    let (mut buf, mut out) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);

    let mut dev = device_new(&service_key);
    device_command(
        &mut dev,
        Command::EstablishTrust {
            token: "TOKEN-ONE-USE",
            scope: Scope::Local,
            force: false,
        },
    );
    device_command(&mut dev, Command::RecordUsage { tag: TAG, count: 3 });
    let mut exchanges = 0;
    let mut synced = false;
    loop {
        let Some(t) = device_transmit(&mut dev, &mut buf) else {
            if synced {
                break;
            }
            // Trust is in: close the report and send it.
            device_command(&mut dev, Command::SyncNow);
            synced = true;
            continue;
        };
        let reply = svc.handle(Timestamp(T0), &mut srng, &buf[..t.len], &mut out);
        assert_eq!(reply.http_status, 200);
        device_answer(&mut dev, &out[..reply.len]);
        exchanges += 1;
    }
    assert!(dev.trust().is_installed() && dev.reports().is_empty() && dev.last_ack().is_some());
    println!("cycle: {exchanges} exchanges, trust installed, report acknowledged");
}
