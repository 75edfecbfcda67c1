//! A long run: 200 report cycles on a virtual clock (5-second report interval, no real
//! waiting) against slup-server with about 10 % of the exchanges hit by a fault (answer
//! dropped after the service stored the reports, body cut in half, signature corrupted,
//! request refused with 503). No report may be lost and none counted twice: every report id
//! the device ever sent is stored by the service exactly once, the service stores nothing
//! else from this device, the device ends with nothing left to send, and its acknowledgement
//! events add up to exactly the number of reports.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::lab::{Lab, TAG};
use slup_core::diag::event::EventKind;
use slup_core::engine::Command;
use slup_core::msg::request::{self, RequestData};
use slup_core::msg::rum::SignedRum;
use slup_core::server::store::ServiceStore;
use slup_core::types::{Timestamp, Udi};
use slup_host::driver::{Outcome, Recorder};
use slup_host::http::Head;
use slup_host::transport::Transport;
use slup_host::{Clock, Driver, HostError, HttpConfig, HttpTransport, SystemClock};
use slup_server::{Durability, Faults};

/// The real clock plus an offset that `sleep` advances: years of schedule in no time.
#[derive(Clone, Default)]
struct VirtualClock(Arc<AtomicU64>);

impl Clock for VirtualClock {
    fn now(&self) -> Timestamp {
        SystemClock.now().add_millis(self.0.load(Ordering::SeqCst))
    }
    fn sleep(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap();
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

/// Notes the id of every report the device sends.
struct Ids<T> {
    inner: T,
    sent: BTreeSet<u64>,
    usage_requests: usize,
}

impl<T: Transport> Transport for Ids<T> {
    fn post(&mut self, url: &str, body: &[u8], response: &mut Vec<u8>) -> Result<Head, HostError> {
        let req = request::decode(body).unwrap();
        if let RequestData::LicenseUsage(list) = &req.request.data {
            self.usage_requests += 1;
            for r in list.iter() {
                self.sent
                    .insert(SignedRum::decode(r).unwrap().payload.report_id.0);
            }
        }
        self.inner.post(url, body, response)
    }
}

const REPORT_S: u32 = 5;
const CYCLES: u32 = 200;

#[test]
fn two_hundred_report_cycles_with_ten_percent_faults_lose_nothing_and_count_nothing_twice() {
    let lab = Lab::start(|c| c.durability = Durability::Normal);
    let faulty = lab.twin(|c| {
        c.durability = Durability::Normal;
        c.https = None;
        c.faults = Faults {
            drop: 0.03,
            truncate: 0.03,
            corrupt_signature: 0.02,
            reject: 0.02,
            seed: 20_260_601,
            ..Faults::default()
        };
    });
    let mut b = lab.trusted_with(&format!("{}/licservice/license", faulty.http_url()), |c| {
        c.intervals.report_s = REPORT_S;
        c.intervals.comm_retry_s = REPORT_S;
        c.intervals.poll_retry_s = REPORT_S;
    });
    let clock = VirtualClock::default();
    let http = HttpConfig {
        connect_timeout: Duration::from_secs(2),
        exchange_timeout: Duration::from_secs(5),
        ..HttpConfig::default()
    };
    let mut d = Driver::new(
        Ids {
            inner: HttpTransport::new(http),
            sent: BTreeSet::new(),
            usage_requests: 0,
        },
        clock.clone(),
    )
    .with_store(b.store.clone());
    let mut sink = Recorder::default();
    let step = |d: &mut Driver<_, VirtualClock>, dev: &mut _, sink: &mut Recorder| {
        let until = clock.now().add_millis(u64::from(REPORT_S) * 1000);
        d.run_until(dev, until, sink, |_| false);
    };
    // The count changes every tenth cycle (a change closes the open report at once).
    let mut held_open = 0;
    for cycle in 0..CYCLES {
        let count = u64::from(cycle / 10 % 9) + 1;
        match b
            .dev
            .handle_command(clock.now(), Command::RecordUsage { tag: TAG, count })
        {
            Ok(_) => {}
            // All four report slots wait for an ACK: the change stays in the open report,
            // which closes at the next report time (documented engine behaviour).
            Err(e) if e.code() == slup_core::Code::CapacityExceeded => held_open += 1,
            Err(e) => panic!("cycle {cycle}: {e:?}"),
        }
        step(&mut d, &mut b.dev, &mut sink);
    }
    // Drain: the last reports go out (faults still on) until nothing is left to send.
    let mut extra = 0;
    while b.dev.reports().iter().next().is_some() {
        extra += 1;
        if extra >= 50 {
            let tail: Vec<String> = sink
                .exchanges
                .iter()
                .rev()
                .take(6)
                .map(|x| format!("{:?} {:?} {:?}", x.kind, x.http_status, x.outcome))
                .collect();
            let evs: Vec<String> = sink
                .events
                .iter()
                .rev()
                .take(8)
                .map(|e| e.to_string())
                .collect();
            panic!(
                "reports still unsent after 50 more cycles: {:?}\n{tail:#?}\n{evs:#?}",
                b.dev.reports().iter().collect::<Vec<_>>()
            );
        }
        step(&mut d, &mut b.dev, &mut sink);
    }
    assert!(sink.storage_errors.is_empty(), "{:?}", sink.storage_errors);

    let usage: Vec<_> = sink
        .exchanges
        .iter()
        .filter(|x| x.kind == slup_core::diag::MessageKind::UsageReporting)
        .collect();
    let faults = usage
        .iter()
        .filter(|x| x.outcome != Outcome::Applied)
        .count();
    let sent = d.transport.sent.clone();
    let (acked, rejected) = sink
        .events
        .iter()
        .fold((0u64, 0u64), |(a, r), e| match e.kind {
            EventKind::UsageAckReceived {
                acknowledged,
                rejected,
            } => (a + u64::from(acknowledged), r + u64::from(rejected)),
            _ => (a, r),
        });
    let udi = Udi::new("C9800-CL-K9", &b.serial).unwrap();
    let stored = lab.reports_of(&b.serial);
    let missing: Vec<u64> = lab.server.with_backend(|be| {
        sent.iter()
            .copied()
            .filter(|id| {
                be.store()
                    .report(&udi, slup_core::types::ReportId(*id))
                    .unwrap()
                    .is_none()
            })
            .collect()
    });
    println!(
        "{CYCLES} cycles (+{extra} to drain), {} usage exchanges, {faults} failed ({:.1} %), \
         {} distinct reports sent, {stored} stored by the service, {acked} acknowledged on the \
         device, {held_open} usage changes held in the open report (report slots full)",
        usage.len(),
        100.0 * faults as f64 / usage.len() as f64,
        sent.len()
    );
    // Faults did happen, at about the configured share.
    assert!(
        faults >= 5,
        "only {faults} faults in {} exchanges",
        usage.len()
    );
    // Nothing lost: every report sent is stored, and the device has nothing left.
    assert!(missing.is_empty(), "reports never stored: {missing:?}");
    assert!(b.dev.reports().iter().next().is_none());
    // Nothing twice: the service holds exactly the reports sent, the device counted each
    // acknowledgement once, and no report was refused.
    assert_eq!(stored, sent.len(), "the service stored other reports");
    assert_eq!(
        acked,
        sent.len() as u64,
        "acknowledgements counted on the device"
    );
    assert_eq!(rejected, 0);
    // One report per report time (a cycle): no report time was skipped or doubled.
    assert!(
        sent.len() as u32 >= CYCLES,
        "{} reports for {CYCLES} report times",
        sent.len()
    );
}
