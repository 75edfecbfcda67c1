//! Diagnostics: exact renderings of the time layouts, syslog events, message history and
//! communication statistics; ring and arena capacity behaviour; and robustness against any body.

use std::fmt::Write as _;
use std::string::String;

use slup_core::diag::event::{Event, EventKind, EventLog, Peer, Severity};
use slup_core::diag::history::{Body, Direction, MessageHistory};
use slup_core::diag::stats::{CommLevel, CommStats, ResponseStatus};
use slup_core::diag::time::{
    civil_from_days, days_from_civil, fmt_clock, fmt_clock_in, fmt_history, fmt_status, fmt_syslog,
    is_leap_year, Civil, Zone, MAX_ABS_DAYS,
};
use slup_core::diag::{Category, Detail, ImportKind, MessageKind};
use slup_core::error::Code;
use slup_core::types::{RequestType, Timestamp};

fn s(d: impl std::fmt::Display) -> String {
    d.to_string()
}

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

// ---- time ---------------------------------------------------------------------------------------

/// (ms, syslog, history/status, clock) for dates whose answers come from an independent source
/// (Python's `datetime`).
const KNOWN: &[(u64, &str, &str, &str)] = &[
    (
        0,
        "Jan  1 00:00:00.000",
        "Jan 01 00:00:00 1970 UTC",
        "00:00:00.000 UTC Thu Jan 1 1970",
    ),
    (
        946_684_799_000,
        "Dec 31 23:59:59.000",
        "Dec 31 23:59:59 1999 UTC",
        "23:59:59.000 UTC Fri Dec 31 1999",
    ),
    (
        946_684_800_000,
        "Jan  1 00:00:00.000",
        "Jan 01 00:00:00 2000 UTC",
        "00:00:00.000 UTC Sat Jan 1 2000",
    ),
    (
        951_782_400_000,
        "Feb 29 00:00:00.000",
        "Feb 29 00:00:00 2000 UTC",
        "00:00:00.000 UTC Tue Feb 29 2000",
    ),
    (
        951_868_800_000,
        "Mar  1 00:00:00.000",
        "Mar 01 00:00:00 2000 UTC",
        "00:00:00.000 UTC Wed Mar 1 2000",
    ),
    (
        68_169_600_000,
        "Feb 29 00:00:00.000",
        "Feb 29 00:00:00 1972 UTC",
        "00:00:00.000 UTC Tue Feb 29 1972",
    ),
    (
        1_709_164_800_000,
        "Feb 29 00:00:00.000",
        "Feb 29 00:00:00 2024 UTC",
        "00:00:00.000 UTC Thu Feb 29 2024",
    ),
    (
        1_735_689_599_000,
        "Dec 31 23:59:59.000",
        "Dec 31 23:59:59 2024 UTC",
        "23:59:59.000 UTC Tue Dec 31 2024",
    ),
    (
        1_640_995_199_999,
        "Dec 31 23:59:59.999",
        "Dec 31 23:59:59 2021 UTC",
        "23:59:59.999 UTC Fri Dec 31 2021",
    ),
    (
        1_640_995_200_000,
        "Jan  1 00:00:00.000",
        "Jan 01 00:00:00 2022 UTC",
        "00:00:00.000 UTC Sat Jan 1 2022",
    ),
    (
        4_107_456_000_000,
        "Feb 28 00:00:00.000",
        "Feb 28 00:00:00 2100 UTC",
        "00:00:00.000 UTC Sun Feb 28 2100",
    ),
    (
        4_107_542_400_000,
        "Mar  1 00:00:00.000",
        "Mar 01 00:00:00 2100 UTC",
        "00:00:00.000 UTC Mon Mar 1 2100",
    ),
    (
        2_147_483_648_000,
        "Jan 19 03:14:08.000",
        "Jan 19 03:14:08 2038 UTC",
        "03:14:08.000 UTC Tue Jan 19 2038",
    ),
    (
        253_402_300_799_000,
        "Dec 31 23:59:59.000",
        "Dec 31 23:59:59 9999 UTC",
        "23:59:59.000 UTC Fri Dec 31 9999",
    ),
    // The seed: the POLL_REQ request timestamp and the response's `mp`.
    (
        1_629_713_888_600,
        "Aug 23 10:18:08.600",
        "Aug 23 10:18:08 2021 UTC",
        "10:18:08.600 UTC Mon Aug 23 2021",
    ),
    (
        1_629_713_890_172,
        "Aug 23 10:18:10.172",
        "Aug 23 10:18:10 2021 UTC",
        "10:18:10.172 UTC Mon Aug 23 2021",
    ),
    // The seed's syslog lines.
    (
        1_629_634_388_425,
        "Aug 22 12:13:08.425",
        "Aug 22 12:13:08 2021 UTC",
        "12:13:08.425 UTC Sun Aug 22 2021",
    ),
    // The seed's `show license air entities summary`.
    (
        1_630_049_895_237,
        "Aug 27 07:38:15.237",
        "Aug 27 07:38:15 2021 UTC",
        "07:38:15.237 UTC Fri Aug 27 2021",
    ),
    // The tech-support "Installed On" policy time and "Current time" (in UTC here).
    (
        1_693_421_153_000,
        "Aug 30 18:45:53.000",
        "Aug 30 18:45:53 2023 UTC",
        "18:45:53.000 UTC Wed Aug 30 2023",
    ),
    (
        1_693_566_291_711,
        "Sep  1 11:04:51.711",
        "Sep 01 11:04:51 2023 UTC",
        "11:04:51.711 UTC Fri Sep 1 2023",
    ),
    // The end of u64 milliseconds.
    (
        u64::MAX,
        "Apr  3 14:25:51.615",
        "Apr 03 14:25:51 584556019 UTC",
        "14:25:51.615 UTC Wed Apr 3 584556019",
    ),
];

#[test]
fn known_dates_render_in_every_layout() {
    for &(ms, syslog, history, clock) in KNOWN {
        let t = Timestamp(ms);
        assert_eq!(s(fmt_syslog(t)), syslog, "syslog {ms}");
        assert_eq!(s(fmt_history(t, Zone::UTC)), history, "history {ms}");
        assert_eq!(s(fmt_status(t)), history, "status {ms}");
        assert_eq!(s(fmt_clock(t)), clock, "clock {ms}");
    }
}

#[test]
fn known_dates_round_trip_through_civil() {
    for &(ms, ..) in KNOWN {
        let c = Civil::from_timestamp(Timestamp(ms));
        assert_eq!(c.to_timestamp(), Some(Timestamp(ms)), "{ms}: {c:?}");
    }
}

#[test]
fn seed_timestamp_is_aug_23_2021_10_18_08_600_utc() {
    let c = Civil::from_timestamp(Timestamp(1_629_713_888_600));
    assert_eq!(
        c,
        Civil {
            year: 2021,
            month: 8,
            day: 23,
            hour: 10,
            minute: 18,
            second: 8,
            millis: 600,
            weekday: 1,
        }
    );
    assert_eq!(c.month_name(), "Aug");
    assert_eq!(c.weekday_name(), "Mon");
}

/// Walks the calendar one day at a time with a naive month table and checks both algorithms on
/// every day from 1583 (the first full Gregorian year) to 3000 and a few millennia beyond.
#[test]
fn every_day_agrees_with_a_naive_calendar_walk() {
    fn leap(y: i64) -> bool {
        (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
    }
    fn month_len(y: i64, m: u8) -> u8 {
        [
            31,
            if leap(y) { 29 } else { 28 },
            31,
            30,
            31,
            30,
            31,
            31,
            30,
            31,
            30,
            31,
        ][usize::from(m - 1)]
    }
    let start = days_from_civil(1583, 1, 1).unwrap();
    let (mut y, mut m, mut d) = (1583i64, 1u8, 1u8);
    let mut weekday = Civil::in_zone(Timestamp(0), Zone::UTC).weekday as i64; // Thursday
    weekday = (weekday + start).rem_euclid(7);
    for days in start..=days_from_civil(6000, 12, 31).unwrap() {
        assert_eq!(civil_from_days(days), Some((y, m, d)), "day {days}");
        assert_eq!(days_from_civil(y as i32, m, d), Some(days), "{y}-{m}-{d}");
        if days >= 0 {
            let c = Civil::from_timestamp(Timestamp(days as u64 * 86_400_000 + 45_296_789));
            assert_eq!((c.year, c.month, c.day), (y, m, d));
            assert_eq!((c.hour, c.minute, c.second, c.millis), (12, 34, 56, 789));
            assert_eq!(i64::from(c.weekday), weekday, "{y}-{m}-{d}");
        }
        assert_eq!(is_leap_year(y), leap(y));
        weekday = (weekday + 1) % 7;
        d += 1;
        if d > month_len(y, m) {
            d = 1;
            m += 1;
            if m > 12 {
                m = 1;
                y += 1;
            }
        }
    }
}

#[test]
fn calendar_edges() {
    assert_eq!(days_from_civil(1970, 1, 1), Some(0));
    assert_eq!(days_from_civil(1969, 12, 31), Some(-1));
    assert_eq!(civil_from_days(-1), Some((1969, 12, 31)));
    assert_eq!(days_from_civil(2000, 2, 29), Some(11_016));
    assert_eq!(days_from_civil(2024, 2, 29), Some(19_782));
    assert_eq!(
        days_from_civil(2100, 2, 29),
        None,
        "2100 is not a leap year"
    );
    assert_eq!(
        days_from_civil(1900, 2, 29),
        None,
        "1900 is not a leap year"
    );
    assert_eq!(days_from_civil(2023, 2, 29), None);
    assert_eq!(days_from_civil(2023, 4, 31), None);
    assert_eq!(days_from_civil(2023, 0, 1), None);
    assert_eq!(days_from_civil(2023, 13, 1), None);
    assert_eq!(days_from_civil(2023, 1, 0), None);
    assert_eq!(days_from_civil(2023, 12, 32), None);
    assert!(days_from_civil(i32::MIN, 1, 1).is_some());
    assert!(days_from_civil(i32::MAX, 12, 31).is_some());
    assert!(civil_from_days(MAX_ABS_DAYS).is_some());
    assert!(civil_from_days(-MAX_ABS_DAYS).is_some());
    assert_eq!(civil_from_days(MAX_ABS_DAYS + 1), None);
    assert_eq!(civil_from_days(i64::MIN), None);
    assert_eq!(civil_from_days(i64::MAX), None);
    // Round trip at the extremes of the accepted range.
    for days in [MAX_ABS_DAYS, -MAX_ABS_DAYS, 0, -719_468, -719_469] {
        let (y, m, d) = civil_from_days(days).unwrap();
        if let Ok(y) = i32::try_from(y) {
            assert_eq!(days_from_civil(y, m, d), Some(days));
        }
    }
}

#[test]
fn civil_to_timestamp_rejects_what_does_not_exist() {
    let base = Civil::from_timestamp(Timestamp(1_709_164_800_000)); // Feb 29 2024
    assert_eq!(base.to_timestamp(), Some(Timestamp(1_709_164_800_000)));
    for bad in [
        Civil {
            year: 2100,
            month: 2,
            day: 29,
            ..base
        },
        Civil { month: 13, ..base },
        Civil { day: 0, ..base },
        Civil { hour: 24, ..base },
        Civil { minute: 60, ..base },
        Civil { second: 60, ..base },
        Civil {
            millis: 1000,
            ..base
        },
        Civil { year: 1969, ..base },
        Civil {
            year: 600_000_000,
            ..base
        },
        Civil {
            year: i64::MIN,
            ..base
        },
    ] {
        assert_eq!(bad.to_timestamp(), None, "{bad:?}");
    }
}

#[test]
fn zones_shift_the_time_and_print_their_label() {
    let pdt = Zone::fixed("PDT", -7 * 60).unwrap();
    let t = Timestamp(1_693_437_158_000); // Aug 30 2023 23:12:38 UTC
    assert_eq!(s(fmt_history(t, pdt)), "Aug 30 16:12:38 2023 PDT");
    assert_eq!(s(fmt_clock_in(t, pdt)), "16:12:38.000 PDT Wed Aug 30 2023");
    let cet = Zone::fixed("CET", 60).unwrap();
    assert_eq!(s(fmt_history(t, cet)), "Aug 31 00:12:38 2023 CET");
    // Before the epoch in local time.
    let west = Zone::fixed("W", -60).unwrap();
    assert_eq!(s(fmt_history(Timestamp(0), west)), "Dec 31 23:00:00 1969 W");
    // Past the end of u64 milliseconds in local time.
    let east = Zone::fixed("E", 18 * 60).unwrap();
    assert_eq!(
        s(fmt_history(Timestamp(u64::MAX), east)),
        "Apr 04 08:25:51 584556019 E"
    );
    assert_eq!(Zone::fixed("X", 18 * 60 + 1), None);
    assert_eq!(Zone::fixed("X", -18 * 60 - 1), None);
    assert_eq!(Zone::fixed("X", i16::MIN), None);
    assert_eq!(Zone::default(), Zone::UTC);
    assert_eq!(Zone::UTC.label(), "UTC");
    assert_eq!(pdt.offset_minutes(), -420);
}

// ---- events -------------------------------------------------------------------------------------

const T: Timestamp = Timestamp(1_629_634_391_879); // Aug 22 2021 12:13:11.879 UTC

fn ev(kind: EventKind, detail: &str) -> String {
    s(Event::<96>::with_detail(T, kind, detail))
}

#[test]
fn seed_trust_install_line_is_exact() {
    let e: Event = Event::new(T, EventKind::TrustInstallSuccess);
    assert_eq!(
        s(e.line()),
        "Aug 22 12:13:11.879: %SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code was \
         successfully installed"
    );
    assert_eq!(e.severity(), Severity::Informational);
}

#[test]
fn every_event_kind_renders_its_exact_text() {
    let cases: &[(EventKind, &str, &str)] = &[
        (
            EventKind::AgentReady,
            "",
            "%SMART_LIC-6-AGENT_READY: Smart Agent for Licensing is initialized",
        ),
        (
            EventKind::AgentEnabled,
            "",
            "%SMART_LIC-6-AGENT_ENABLED: Smart Agent for Licensing is enabled",
        ),
        (
            EventKind::TrustInstallSuccess,
            "",
            "%SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code was successfully \
             installed",
        ),
        (
            EventKind::TrustCodeInstallFailed {
                cause: Code::BadSignature,
            },
            "",
            "%SMART_LIC-3-TRUST_CODE_INSTALL_FAILED: The install of a new licensing trust code \
             has failed: E1100 BadSignature: signature does not verify",
        ),
        (
            EventKind::TrustCodeInstallFailed {
                cause: Code::TrustAlreadyInstalled,
            },
            "PID:C9800-CL-K9,SN:9PJK8D70CNB",
            "%SMART_LIC-3-TRUST_CODE_INSTALL_FAILED: The install of a new licensing trust code \
             has failed: E1500 TrustAlreadyInstalled: trust already installed (use force): \
             PID:C9800-CL-K9,SN:9PJK8D70CNB",
        ),
        (
            EventKind::PolicyInstallSuccess,
            "",
            "%SMART_LIC-6-POLICY_INSTALL_SUCCESS: A new licensing policy was successfully \
             installed",
        ),
        (
            EventKind::PolicyInstallFailed {
                cause: Code::InvalidValue,
            },
            "",
            "%SMART_LIC-3-POLICY_INSTALL_FAILED: The install of a new licensing policy has \
             failed: E1010 InvalidValue: field value out of range or malformed",
        ),
        (
            EventKind::CommFailed {
                peer: Peer::Cssm,
                cause: Code::DnsFailure,
            },
            "smartreceiver.cisco.com",
            "%SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco Smart Software \
             Manager (CSSM) : E1300 DnsFailure: DNS resolution failed: smartreceiver.cisco.com",
        ),
        (
            EventKind::CommFailed {
                peer: Peer::Cslu,
                cause: Code::ConnectRefused,
            },
            "",
            "%SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco Smart License \
             Utility (CSLU) : E1301 ConnectRefused: connection refused",
        ),
        (
            EventKind::CommFailed {
                peer: Peer::OnPrem,
                cause: Code::TlsUnknownCa,
            },
            "",
            "%SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco Smart Software \
             Manager On-Prem : E1305 TlsUnknownCa: server certificate from an unknown CA",
        ),
        (
            EventKind::CommRestored { peer: Peer::Cslu },
            "",
            "%SMART_LIC-5-COMM_RESTORED: Communications with Cisco Smart License Utility (CSLU) \
             restored",
        ),
        (
            EventKind::CommRestored { peer: Peer::Cssm },
            "",
            "%SMART_LIC-5-COMM_RESTORED: Communications with Cisco Smart Software Manager \
             (CSSM) restored",
        ),
        (
            EventKind::ReportingRequired { days: 42 },
            "",
            "%SMART_LIC-6-REPORTING_REQUIRED: A Usage report acknowledgement will be required \
             in 42 days",
        ),
        (
            EventKind::ReportingNotSupported,
            "",
            "%SMART_LIC-4-REPORTING_NOT_SUPPORTED: Smart Agent for Licensing CSSM OnPrem is \
             down rev and does not support the enhanced policy and usage reporting mode.",
        ),
        (
            EventKind::SystemClockChanged,
            "",
            "%SMART_LIC-5-SYSTEM_CLOCK_CHANGED: Smart Agent for Licensing System clock has been \
             changed",
        ),
        (
            EventKind::SystemClockChanged,
            "moved back 3433 s",
            "%SMART_LIC-5-SYSTEM_CLOCK_CHANGED: Smart Agent for Licensing System clock has been \
             changed : moved back 3433 s",
        ),
        (
            EventKind::UsageAckReceived {
                acknowledged: 3,
                rejected: 1,
            },
            "",
            "%SMART_LIC-6-USAGE_ACK_RECEIVED: A usage report acknowledgement was received: 3 \
             acknowledged, 1 rejected",
        ),
        (
            EventKind::FactoryReset,
            "",
            "%SMART_LIC-4-FACTORY_RESET: Licensing factory reset; reload required",
        ),
        (
            EventKind::PlatformError {
                cause: Code::StorageIo,
            },
            "",
            "%SMART_LIC-2-PLATFORM_ERROR: Smart Licensing has encountered an internal software \
             error. Contact TAC: E1402 StorageIo: storage read or write failed",
        ),
        (
            EventKind::CrlFetchFail {
                trustpoint: "SLA-TrustPoint",
            },
            "",
            "%PKI-3-CRL_FETCH_FAIL: CRL fetch for trustpoint SLA-TrustPoint failed",
        ),
    ];
    for (kind, detail, want) in cases {
        assert_eq!(ev(*kind, detail), *want);
        let line = s(Event::<96>::with_detail(T, *kind, detail).line());
        assert_eq!(line, format!("Aug 22 12:13:11.879: {want}"));
        assert!(want.starts_with(&format!(
            "%{}-{}-{}: ",
            kind.facility(),
            kind.severity().number(),
            kind.mnemonic()
        )));
    }
}

#[test]
fn event_detail_is_cut_marked_and_kept_on_one_line() {
    let kind = EventKind::CommFailed {
        peer: Peer::Cssm,
        cause: Code::ServiceFailed,
    };
    let e = Event::<16>::with_detail(T, kind, "Invalid\nProductInstanceIdentifier");
    assert_eq!(
        s(e),
        "%SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco Smart Software Manager \
         (CSSM) : E1205 ServiceFailed: service answered FAILED: Invalid\\x0aProductI \
         <truncated: showing 16 of 33 bytes>"
    );
    // A terminal escape from the network reaches the log escaped.
    let e = Event::<64>::with_detail(T, EventKind::SystemClockChanged, "\u{1b}[2J\r\u{85}");
    assert_eq!(
        s(e),
        "%SMART_LIC-5-SYSTEM_CLOCK_CHANGED: Smart Agent for Licensing System clock has been \
         changed : \\x1b[2J\\x0d\\u{0085}"
    );
    // Detail capacity 0: nothing kept, the loss still shown.
    let e = Event::<0>::with_detail(T, EventKind::AgentReady, "abc");
    assert_eq!(
        s(e),
        "%SMART_LIC-6-AGENT_READY: Smart Agent for Licensing is initialized :  <truncated: \
         showing 0 of 3 bytes>"
    );
}

#[test]
fn event_log_overwrites_oldest_and_counts() {
    let mut log: EventLog<3> = EventLog::new();
    assert!(log.is_empty());
    assert_eq!(log.capacity(), 3);
    for i in 0..5u32 {
        let old = log.record(
            T.add_millis(u64::from(i) * 1000),
            EventKind::ReportingRequired { days: i },
            "",
        );
        assert_eq!(old.is_some(), i >= 3, "push {i}");
        if let Some(old) = old {
            assert_eq!(old.kind, EventKind::ReportingRequired { days: i - 3 });
        }
    }
    assert_eq!(log.len(), 3);
    assert_eq!(log.overwritten(), 2);
    let days: Vec<_> = log
        .iter()
        .map(|e| match e.kind {
            EventKind::ReportingRequired { days } => days,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(days, [2, 3, 4]);
    assert_eq!(
        log.newest().map(|e| e.kind),
        Some(EventKind::ReportingRequired { days: 4 })
    );
    let mut out = String::new();
    log.render(&mut out).unwrap();
    assert_eq!(
        out,
        "<2 older events overwritten>\n\
         Aug 22 12:13:13.879: %SMART_LIC-6-REPORTING_REQUIRED: A Usage report acknowledgement \
         will be required in 2 days\n\
         Aug 22 12:13:14.879: %SMART_LIC-6-REPORTING_REQUIRED: A Usage report acknowledgement \
         will be required in 3 days\n\
         Aug 22 12:13:15.879: %SMART_LIC-6-REPORTING_REQUIRED: A Usage report acknowledgement \
         will be required in 4 days\n"
    );
    log.clear();
    assert!(log.is_empty());
    assert_eq!(log.overwritten(), 0);
}

#[test]
fn seed_syslog_sequence_renders_exactly() {
    let mut log: EventLog = EventLog::new();
    log.push(Event::new(T, EventKind::TrustInstallSuccess));
    log.record(
        Timestamp(1_629_710_383_486), // Aug 23 09:19:43.486
        EventKind::CommFailed {
            peer: Peer::Cssm,
            cause: Code::DnsFailure,
        },
        "",
    );
    log.record(
        Timestamp(1_629_710_610_701), // Aug 23 09:23:30.701
        EventKind::CommFailed {
            peer: Peer::Cssm,
            cause: Code::ConnectTimeout,
        },
        "",
    );
    log.push(Event::new(
        Timestamp(1_629_713_890_172),
        EventKind::CommRestored { peer: Peer::Cssm },
    ));
    let mut out = String::new();
    log.render(&mut out).unwrap();
    assert_eq!(
        out,
        "Aug 22 12:13:11.879: %SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code was \
         successfully installed\n\
         Aug 23 09:19:43.486: %SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco \
         Smart Software Manager (CSSM) : E1300 DnsFailure: DNS resolution failed\n\
         Aug 23 09:23:30.701: %SMART_LIC-3-COMM_FAILED: Communications failure with the Cisco \
         Smart Software Manager (CSSM) : E1302 ConnectTimeout: connect timed out\n\
         Aug 23 10:18:10.172: %SMART_LIC-5-COMM_RESTORED: Communications with Cisco Smart \
         Software Manager (CSSM) restored\n"
    );
}

#[test]
fn event_log_capacity_zero_and_one() {
    let mut none: EventLog<0> = EventLog::new();
    assert!(none.push(Event::new(T, EventKind::AgentReady)).is_some());
    assert!(none.push(Event::new(T, EventKind::AgentReady)).is_some());
    assert_eq!(none.len(), 0);
    assert_eq!(none.overwritten(), 2);
    assert_eq!(none.iter().count(), 0);
    let mut out = String::new();
    none.render(&mut out).unwrap();
    assert_eq!(out, "<2 older events overwritten>\n");

    let mut one: EventLog<1> = EventLog::new();
    assert!(one.push(Event::new(T, EventKind::AgentReady)).is_none());
    let old = one.push(Event::new(T, EventKind::AgentEnabled));
    assert_eq!(old.map(|e| e.kind), Some(EventKind::AgentReady));
    assert_eq!(one.len(), 1);
    assert_eq!(one.overwritten(), 1);
    let mut out = String::new();
    one.render(&mut out).unwrap();
    assert_eq!(
        out,
        "<1 older events overwritten>\n\
         Aug 22 12:13:11.879: %SMART_LIC-6-AGENT_ENABLED: Smart Agent for Licensing is enabled\n"
    );
}

#[test]
fn event_log_with_random_details_never_panics() {
    let mut rng = Rng(0x5eed);
    let mut log: EventLog<7, 24> = EventLog::new();
    for i in 0..2000u64 {
        let len = rng.below(64) as usize;
        let bytes = rng.bytes(len);
        let text = String::from_utf8_lossy(&bytes);
        let kind = match rng.below(4) {
            0 => EventKind::CommFailed {
                peer: Peer::Cslu,
                cause: Code::ALL[rng.below(Code::ALL.len() as u64) as usize],
            },
            1 => EventKind::ReportingRequired {
                days: rng.next() as u32,
            },
            2 => EventKind::CrlFetchFail {
                trustpoint: "SLA-TrustPoint",
            },
            _ => EventKind::FactoryReset,
        };
        log.record(Timestamp(rng.next()), kind, &text);
        assert_eq!(log.len() as u64, (i + 1).min(7));
        let mut out = String::new();
        log.render(&mut out).unwrap();
        // One line per event (plus the overwrite note): details never break lines.
        assert_eq!(
            out.lines().count(),
            log.len() + usize::from(log.overwritten() > 0)
        );
    }
    assert_eq!(log.overwritten(), 2000 - 7);
}

// ---- message history ----------------------------------------------------------------------------

const SEED_REQUEST: &str = r#"{"request":{"header":{"request_type":"POLL_REQ","sudi":{"udi_pid":"C9800-CL-K9","udi_serial_number":"NB"},"version":"1.3"}}}"#;
const SEED_RESPONSE: &str = r#"{"signature":{"type":"SHA256","value":"TXZE034f\nqAu1","pid":null,"cert_sn":null},"response":{"header":{"version":"1.3","mp":1629713890172,"request_type":"POLL_REQ","status_code":"FAILED","message":"Invalid ProductInstanceIdentifier: 2e84a42f-c903-44c5-83b2-e62e258c780f provided in the polling request"}}}"#;

const EMPTY_IMPORTS: &str = "\nImport Message History (oldest to newest):\n\
    ====================================================\n\
    Import POLICY:\n  No past Import history\n\n\
    Import TRUST CODE:\n  No past Import history\n\n\
    Import RUM ACK:\n  No past Import history\n";

fn render<const E: usize, const B: usize>(h: &MessageHistory<E, B>) -> String {
    let mut out = String::new();
    h.render(&mut out, Zone::UTC).unwrap();
    out
}

#[test]
fn empty_history_matches_the_device_layout() {
    let h: MessageHistory = MessageHistory::new();
    assert_eq!(
        render(&h),
        format!(
            "Message History (oldest to newest):\n\
             ====================================================\n\
             Trust Establishment:\n  No past history\n\
             Usage Reporting:\n  No past history\n\
             Result Polling:\n  No past history\n\
             Trust Sync:\n  No past history\n\
             Hello Message:\n  No past history\n{EMPTY_IMPORTS}"
        )
    );
}

#[test]
fn seed_exchange_renders_request_and_response() {
    let mut h: MessageHistory = MessageHistory::new();
    h.record_request(
        Timestamp(1_629_713_888_600),
        RequestType::POLL_REQ,
        SEED_REQUEST.as_bytes(),
    );
    h.record_response(
        Timestamp(1_629_713_890_172),
        RequestType::POLL_REQ,
        SEED_RESPONSE.as_bytes(),
    );
    let central = Zone::fixed("Central", -5 * 60).unwrap();
    let mut out = String::new();
    h.render(&mut out, central).unwrap();
    assert_eq!(
        out,
        format!(
            "Message History (oldest to newest):\n\
             ====================================================\n\
             Trust Establishment:\n  No past history\n\
             Usage Reporting:\n  No past history\n\
             Result Polling:\n\
             REQUEST: Aug 23 05:18:08 2021 Central\n\
             {SEED_REQUEST}\n\
             RESPONSE: Aug 23 05:18:10 2021 Central\n\
             {SEED_RESPONSE}\n\
             Trust Sync:\n  No past history\n\
             Hello Message:\n  No past history\n{EMPTY_IMPORTS}"
        )
    );
}

/// The seed's CSCvy84684: a request with no answer must not print an empty RESPONSE.
#[test]
fn no_reply_is_recorded_as_no_reply_never_as_an_empty_body() {
    let mut h: MessageHistory = MessageHistory::new();
    let body = br#"{"request":{"header":{"request_type":"ID_TOKEN_TRUST"},"sudi":{"udi_pid":"C9800-CL-K9"}}}"#;
    h.record_request(
        Timestamp(1_624_965_159_000),
        MessageKind::TrustEstablishment,
        body,
    );
    h.record_no_reply(
        Timestamp(1_624_965_160_000),
        MessageKind::TrustEstablishment,
        Code::NoReply,
    );
    h.record_request(
        Timestamp(1_624_965_170_000),
        MessageKind::TrustEstablishment,
        body,
    );
    h.record_response(
        Timestamp(1_624_965_171_000),
        MessageKind::TrustEstablishment,
        b"",
    );
    let out = render(&h);
    let want_section = format!(
        "Trust Establishment:\n\
         REQUEST: Jun 29 11:12:39 2021 UTC\n{}\n\
         RESPONSE: Jun 29 11:12:40 2021 UTC\n\
         <no reply: E1316 NoReply: no reply>\n\
         REQUEST: Jun 29 11:12:50 2021 UTC\n{}\n\
         RESPONSE: Jun 29 11:12:51 2021 UTC\n\
         <empty body>\n\
         Usage Reporting:\n",
        std::str::from_utf8(body).unwrap(),
        std::str::from_utf8(body).unwrap()
    );
    assert!(out.contains(&want_section), "{out}");
    // No RESPONSE line is ever followed directly by another header or a blank line.
    let lines: Vec<_> = out.lines().collect();
    for pair in lines.windows(2) {
        if pair[0].starts_with("RESPONSE:") || pair[0].starts_with("REQUEST:") {
            assert!(!pair[1].is_empty() && !pair[1].ends_with(':'), "{pair:?}");
        }
    }
    match h.newest().unwrap().body {
        Body::Bytes(b) => {
            assert!(b.is_empty());
            assert_eq!(b.original_len(), 0);
        }
        Body::NoReply { .. } => panic!("empty body recorded as no reply"),
    }
    let no_reply = h.iter().nth(1).unwrap();
    assert_eq!(no_reply.direction, Direction::Response);
    assert_eq!(
        no_reply.body,
        Body::NoReply {
            cause: Code::NoReply
        }
    );
}

#[test]
fn no_reply_carries_the_precise_cause() {
    let mut h: MessageHistory<4, 64> = MessageHistory::new();
    h.record_request(T, MessageKind::Hello, b"{}");
    h.record_no_reply(T.add_millis(2000), MessageKind::Hello, Code::DnsFailure);
    let out = render(&h);
    assert!(out.contains(
        "Hello Message:\n\
         REQUEST: Aug 22 12:13:11 2021 UTC\n{}\n\
         RESPONSE: Aug 22 12:13:13 2021 UTC\n\
         <no reply: E1300 DnsFailure: DNS resolution failed>\n"
    ));
}

#[test]
fn imports_render_in_their_own_section() {
    let mut h: MessageHistory = MessageHistory::new();
    h.record_import(
        T,
        ImportKind::RumAck,
        b"<smartLicense><smartLicenseRumAck/></smartLicense>",
    );
    h.record_response(
        T,
        Category::Import(ImportKind::Policy),
        b"<smartLicensePolicy/>\n",
    );
    let out = render(&h);
    assert!(
        out.ends_with(
            "\nImport Message History (oldest to newest):\n\
         ====================================================\n\
         Import POLICY:\n\
         RESPONSE: Aug 22 12:13:11 2021 UTC\n\
         <smartLicensePolicy/>\n\n\
         Import TRUST CODE:\n  No past Import history\n\n\
         Import RUM ACK:\n\
         RESPONSE: Aug 22 12:13:11 2021 UTC\n\
         <smartLicense><smartLicenseRumAck/></smartLicense>\n"
        ),
        "{out}"
    );
}

#[test]
fn entry_count_evicts_oldest_and_counts() {
    let mut h: MessageHistory<2, 1024> = MessageHistory::new();
    for i in 0..5u8 {
        let r = h.record_request(
            T.add_millis(u64::from(i) * 1000),
            MessageKind::UsageReporting,
            &[b'a' + i],
        );
        assert!(r.stored);
        assert_eq!(r.evicted, usize::from(i >= 2));
        assert!(!r.truncated);
    }
    assert_eq!(h.len(), 2);
    assert_eq!(h.evicted(), 3);
    assert_eq!(h.bytes_used(), 2);
    let bodies: Vec<Vec<u8>> = h
        .iter()
        .map(|e| match e.body {
            Body::Bytes(b) => b.bytes().collect(),
            Body::NoReply { .. } => unreachable!(),
        })
        .collect();
    assert_eq!(bodies, [b"d".to_vec(), b"e".to_vec()]);
    let out = render(&h);
    assert!(
        out.starts_with(
            "Message History (oldest to newest):\n\
         ====================================================\n\
         <3 older entries evicted>\n\
         Trust Establishment:\n  No past history\n\
         Usage Reporting:\n\
         REQUEST: Aug 22 12:13:14 2021 UTC\nd\n\
         REQUEST: Aug 22 12:13:15 2021 UTC\ne\n\
         Result Polling:\n"
        ),
        "{out}"
    );
}

#[test]
fn arena_evicts_oldest_until_the_body_fits() {
    // 16-byte arena, bodies of up to 8 bytes.
    let mut h: MessageHistory<8, 16> = MessageHistory::new();
    assert_eq!(MessageHistory::<8, 16>::MAX_BODY_LEN, 8);
    assert_eq!(
        h.record_request(T, MessageKind::TrustSync, b"11111111")
            .evicted,
        0
    );
    assert_eq!(
        h.record_response(T, MessageKind::TrustSync, b"2222222")
            .evicted,
        0
    );
    // No-reply entries take no arena bytes.
    assert_eq!(
        h.record_no_reply(T, MessageKind::TrustSync, Code::ReadTimeout)
            .evicted,
        0
    );
    assert_eq!(h.bytes_used(), 15);
    // 6 more bytes: the oldest (8 bytes) must go; 7 + 6 fit.
    let r = h.record_request(T, MessageKind::TrustSync, b"333333");
    assert_eq!((r.stored, r.evicted, r.truncated), (true, 1, false));
    assert_eq!(h.len(), 3);
    assert_eq!(h.bytes_used(), 13);
    // 8 more: 13 + 8 > 16, so "2222222" (7), now the oldest, goes; 6 + 8 fit, and the
    // no-reply entry recorded after it stays.
    let r = h.record_request(T, MessageKind::TrustSync, b"44444444");
    assert_eq!(r.evicted, 1);
    assert_eq!(h.evicted(), 2);
    assert_eq!(h.bytes_used(), 14);
    let bodies: Vec<Vec<u8>> = h
        .iter()
        .map(|e| match e.body {
            Body::Bytes(b) => b.bytes().collect(),
            Body::NoReply { .. } => b"-".to_vec(),
        })
        .collect();
    assert_eq!(
        bodies,
        [b"-".to_vec(), b"333333".to_vec(), b"44444444".to_vec()]
    );
}

#[test]
fn bodies_wrap_around_the_arena_end_intact() {
    let mut h: MessageHistory<8, 16> = MessageHistory::new();
    h.record_request(T, MessageKind::UsageReporting, b"AAAAAA");
    h.record_request(T, MessageKind::UsageReporting, b"BBBBBB");
    // "CCCCC€" is 8 bytes; 6 + 6 + 8 > 16, so "AAAAAA" goes and the new body starts at 12,
    // wrapping after 4 bytes, in the middle of the euro sign.
    let body = "CCCCC€".as_bytes();
    assert_eq!(body.len(), 8);
    let r = h.record_request(T, MessageKind::UsageReporting, body);
    assert_eq!(r.evicted, 1);
    let newest = h.newest().unwrap();
    let Body::Bytes(b) = newest.body else {
        panic!()
    };
    let (first, second) = b.parts();
    assert_eq!(first, b"CCCC");
    assert_eq!(second, "C€".as_bytes());
    assert_eq!(b.bytes().collect::<Vec<_>>(), body);
    let mut buf = [0u8; 5];
    assert_eq!(b.copy_to(&mut buf), 5);
    assert_eq!(&buf, b"CCCCC");
    let out = render(&h);
    assert!(
        out.contains("REQUEST: Aug 22 12:13:11 2021 UTC\nCCCCC€\n"),
        "{out}"
    );
}

#[test]
fn long_bodies_are_cut_and_marked_with_their_length() {
    let mut h: MessageHistory<4, 16> = MessageHistory::new();
    let r = h.record_response(T, MessageKind::ResultPolling, b"0123456789abcdefghij");
    assert_eq!((r.stored, r.evicted, r.truncated), (true, 0, true));
    assert_eq!(h.truncated(), 1);
    let Body::Bytes(b) = h.newest().unwrap().body else {
        panic!()
    };
    assert_eq!((b.len(), b.original_len(), b.is_truncated()), (8, 20, true));
    let out = render(&h);
    assert!(
        out.contains(
            "Result Polling:\n\
         RESPONSE: Aug 22 12:13:11 2021 UTC\n\
         01234567\n\
         <truncated: showing 8 of 20 bytes>\n\
         Trust Sync:\n"
        ),
        "{out}"
    );
    // A cut never splits a character: "aaaaaaaé" is 9 bytes, the cut at 8 would split "é".
    h.record_response(T, MessageKind::ResultPolling, "aaaaaaaé".as_bytes());
    let Body::Bytes(b) = h.newest().unwrap().body else {
        panic!()
    };
    assert_eq!(b.bytes().collect::<Vec<_>>(), b"aaaaaaa");
    assert_eq!(b.original_len(), 9);
    // Bytes that are not UTF-8 are cut where asked.
    h.record_response(T, MessageKind::ResultPolling, &[0x80; 20]);
    let Body::Bytes(b) = h.newest().unwrap().body else {
        panic!()
    };
    assert_eq!(b.len(), 8);
}

#[test]
fn huge_body_into_default_history() {
    let mut h: MessageHistory = MessageHistory::new();
    h.record_request(T, MessageKind::UsageReporting, SEED_REQUEST.as_bytes());
    let huge = vec![b'x'; 1 << 20];
    let r = h.record_request(T, MessageKind::UsageReporting, &huge);
    assert!(r.truncated);
    assert_eq!(r.evicted, 0, "half the arena is always left for the rest");
    let r = h.record_response(T, MessageKind::UsageReporting, &huge);
    assert!(r.truncated);
    // The request and its response are both kept, whole up to 4096 bytes each.
    let newest: Vec<_> = h.iter().rev().take(2).collect();
    for e in &newest {
        let Body::Bytes(b) = e.body else { panic!() };
        assert_eq!((b.len(), b.original_len()), (4096, 1 << 20));
    }
    assert_eq!(h.bytes_used(), 8192);
    let out = render(&h);
    assert_eq!(
        out.matches("<truncated: showing 4096 of 1048576 bytes>\n")
            .count(),
        2
    );
}

#[test]
fn non_utf8_and_control_bytes_render_escaped() {
    let mut h: MessageHistory<4, 256> = MessageHistory::new();
    h.record_response(
        T,
        MessageKind::Hello,
        b"\xff{\"a\":\"\xc3\xa9\xe2\x82\"}\x00\x1b[31m\r\n\tend",
    );
    let out = render(&h);
    assert!(
        out.contains(
            "Hello Message:\n\
         RESPONSE: Aug 22 12:13:11 2021 UTC\n\
         \\xff{\"a\":\"é\\xe2\\x82\"}\\x00\\x1b[31m\\x0d\n\tend\n\
         \nImport"
        ),
        "{out}"
    );
}

#[test]
fn history_capacity_zero_and_one() {
    let mut none: MessageHistory<0, 64> = MessageHistory::new();
    let r = none.record_request(T, MessageKind::TrustEstablishment, b"{}");
    assert_eq!((r.stored, r.evicted), (false, 0));
    let r = none.record_no_reply(T, MessageKind::TrustEstablishment, Code::NoReply);
    assert!(!r.stored);
    assert_eq!(none.len(), 0);
    assert_eq!(none.evicted(), 2);
    assert_eq!(none.bytes_used(), 0);
    assert!(render(&none)
        .contains("====\n<2 older entries evicted>\nTrust Establishment:\n  No past history\n"));

    let mut one: MessageHistory<1, 64> = MessageHistory::new();
    one.record_request(T, MessageKind::TrustEstablishment, b"{}");
    let r = one.record_no_reply(T, MessageKind::TrustEstablishment, Code::ConnectTimeout);
    assert_eq!((r.stored, r.evicted), (true, 1));
    assert_eq!(one.len(), 1);
    assert_eq!(one.bytes_used(), 0);
    assert!(render(&one).contains(
        "<1 older entries evicted>\nTrust Establishment:\n\
         RESPONSE: Aug 22 12:13:11 2021 UTC\n\
         <no reply: E1302 ConnectTimeout: connect timed out>\n\
         Usage Reporting:\n"
    ));

    // No arena at all: every body is cut to nothing, and says so.
    let mut bare: MessageHistory<2, 0> = MessageHistory::new();
    let r = bare.record_request(T, MessageKind::TrustSync, b"hello");
    assert_eq!((r.stored, r.truncated), (true, true));
    bare.record_response(T, MessageKind::TrustSync, b"");
    assert!(render(&bare).contains(
        "Trust Sync:\n\
         REQUEST: Aug 22 12:13:11 2021 UTC\n\
         <truncated: showing 0 of 5 bytes>\n\
         RESPONSE: Aug 22 12:13:11 2021 UTC\n\
         <empty body>\n"
    ));

    let mut h: MessageHistory<3, 32> = MessageHistory::new();
    h.record_request(T, MessageKind::TrustSync, b"abc");
    h.clear();
    assert!(h.is_empty());
    assert_eq!((h.bytes_used(), h.evicted()), (0, 0));
    assert_eq!(h.capacity(), 3);
    assert_eq!(h.arena_capacity(), 32);
}

/// Model-checks the history against a simple queue under random operations, across capacities,
/// with random, huge and non-UTF-8 bodies; renders after every step.
#[test]
fn random_operations_never_panic_and_match_a_model() {
    fn run<const E: usize, const B: usize>(seed: u64, steps: usize) {
        let mut rng = Rng(seed);
        let mut h: MessageHistory<E, B> = MessageHistory::new();
        let mut model: std::collections::VecDeque<(Option<Vec<u8>>, usize)> = Default::default();
        let mut evicted = 0u64;
        let max = MessageHistory::<E, B>::MAX_BODY_LEN;
        for _ in 0..steps {
            let kind = MessageKind::ALL[rng.below(5) as usize];
            let len = match rng.below(10) {
                0 => 0,
                1 => rng.below(4 * B as u64 + 8) as usize,
                2 => 100_000,
                _ => rng.below(max as u64 + 2) as usize,
            };
            let body = match rng.below(3) {
                0 => rng.bytes(len),
                1 => "é€😀x".repeat(len / 10 + 1).into_bytes()[..len].to_vec(),
                _ => vec![b'{'; len],
            };
            let (recorded, stored_body) = if rng.below(6) == 0 {
                let cause = Code::ALL[rng.below(Code::ALL.len() as u64) as usize];
                (h.record_no_reply(Timestamp(rng.next()), kind, cause), None)
            } else {
                let dir = if rng.below(2) == 0 {
                    Direction::Request
                } else {
                    Direction::Response
                };
                let r = h.record(Timestamp(rng.next()), kind, dir, &body);
                (r, Some(body.clone()))
            };
            if E == 0 {
                assert!(!recorded.stored);
                evicted += 1;
            } else {
                assert!(recorded.stored);
                // What was kept (a cut may step back to a character boundary).
                let kept = match h.newest().unwrap().body {
                    Body::Bytes(b) => {
                        let bytes: Vec<u8> = b.bytes().collect();
                        let original = stored_body.as_ref().unwrap();
                        assert_eq!(b.original_len(), original.len());
                        assert!(original.starts_with(&bytes));
                        let want = original.len().min(max);
                        assert!(bytes.len() <= want && bytes.len() + 3 >= want);
                        assert_eq!(recorded.truncated, bytes.len() < original.len());
                        bytes.len()
                    }
                    Body::NoReply { .. } => {
                        assert!(stored_body.is_none());
                        0
                    }
                };
                let mut n = 0;
                while model.len() >= E || B - model.iter().map(|e| e.1).sum::<usize>() < kept {
                    model.pop_front();
                    n += 1;
                }
                assert_eq!(recorded.evicted, n);
                evicted += n as u64;
                model.push_back((stored_body, kept));
            }
            assert_eq!(h.len(), model.len());
            assert_eq!(h.evicted(), evicted);
            assert_eq!(h.bytes_used(), model.iter().map(|e| e.1).sum::<usize>());
            assert!(h.bytes_used() <= B && h.len() <= E);
            for (entry, (body, kept)) in h.iter().zip(&model) {
                match (entry.body, body) {
                    (Body::Bytes(b), Some(body)) => {
                        assert_eq!(b.len(), *kept);
                        assert!(b.bytes().eq(body[..*kept].iter().copied()));
                    }
                    (Body::NoReply { .. }, None) => {}
                    other => panic!("entry and model differ: {other:?}"),
                }
            }
            let out = render(&h);
            assert!(out.starts_with("Message History (oldest to newest):\n"));
        }
    }
    run::<16, 8192>(1, 400);
    run::<4, 64>(2, 3000);
    run::<3, 7>(3, 3000);
    run::<1, 1>(4, 1000);
    run::<5, 0>(5, 1000);
    run::<0, 16>(6, 200);
    run::<2, 3>(7, 2000);
}

// ---- communication statistics -------------------------------------------------------------------

const EMPTY_BLOCK: &str =
    "  Attempts: Total=0, Success=0, Fail=0  Ongoing Failure: Overall=0 Communication=0\n\
    \x20 Last Response: <none>\n\
    \x20   Failure Reason: <none>\n\
    \x20 Last Success Time: <none>\n\
    \x20 Last Failure Time: <none>\n";

fn stats_text<const R: usize>(st: &CommStats<R>, zone: Zone<'_>) -> String {
    let mut out = String::new();
    st.render(&mut out, zone).unwrap();
    out
}

#[test]
fn empty_stats_match_the_tech_support_layout() {
    let st: CommStats = CommStats::new();
    assert_eq!(
        stats_text(&st, Zone::UTC),
        format!(
            "Communication Statistics:\n\
             =======================\n\
             Communication Level Allowed: DIRECT\n\
             Overall State: <empty>\n\
             Trust Establishment:\n{EMPTY_BLOCK}\
             Usage Reporting:\n{EMPTY_BLOCK}\
             Result Polling:\n{EMPTY_BLOCK}\
             Trust Sync:\n{EMPTY_BLOCK}\
             Hello Message:\n{EMPTY_BLOCK}"
        )
    );
}

/// The tech-support capture of research §1.3 (golden_output_8_proxy and golden_output_10),
/// replayed: an unknown instance rejected twice, and a CSLU that never answers.
#[test]
fn failures_render_like_the_device_with_precise_reasons() {
    let pdt = Zone::fixed("PDT", -7 * 60).unwrap();
    let body = r#"{"product_instance_identifier":["The identity for the instance f654477d-627f-4049-bada-b44f18612bcc is not valid.Please re-register the instance."]}"#;
    let mut st: CommStats = CommStats::new();
    for t in [1_693_437_000_000, 1_693_437_158_000] {
        st.record_attempt(MessageKind::UsageReporting, Timestamp(t));
        st.record_failure(
            MessageKind::UsageReporting,
            Timestamp(t),
            ResponseStatus::InvalidStatusCode,
            Code::HttpClientError,
            body,
        );
    }
    st.record_attempt(MessageKind::TrustSync, Timestamp(1_693_437_148_000));
    st.record_error(
        MessageKind::TrustSync,
        Timestamp(1_693_437_148_000),
        Code::HttpClientError,
        body,
    );
    st.set_level(CommLevel::Indirect);
    for i in 0..210u64 {
        st.record_attempt(
            MessageKind::Hello,
            Timestamp(1_701_511_951_000 - (209 - i) * 3_600_000),
        );
        st.record_error(
            MessageKind::Hello,
            Timestamp(1_701_511_951_000 - (209 - i) * 3_600_000),
            Code::DnsFailure,
            "cslu-local",
        );
    }
    assert_eq!(st.block(MessageKind::Hello).ongoing_communication(), 210);
    let out = stats_text(&st, pdt);
    assert_eq!(
        out,
        format!(
            "Communication Statistics:\n\
             =======================\n\
             Communication Level Allowed: INDIRECT\n\
             Overall State: <empty>\n\
             Trust Establishment:\n{EMPTY_BLOCK}\
             Usage Reporting:\n\
             \x20 Attempts: Total=2, Success=0, Fail=2  Ongoing Failure: Overall=2 Communication=0\n\
             \x20 Last Response: INVALID STATUS CODE on Aug 30 16:12:38 2023 PDT\n\
             \x20   Failure Reason: E1311 HttpClientError: HTTP 4xx from the service: \
             {{\"product_instance_identifier\":[\"The identity for the instance \
             f654477d-627f-4049-bada-b44f18612bcc is not valid.Please re-register the \
             instance.\"]}}\n\
             \x20 Last Success Time: <none>\n\
             \x20 Last Failure Time: Aug 30 16:12:38 2023 PDT\n\
             Result Polling:\n{EMPTY_BLOCK}\
             Trust Sync:\n\
             \x20 Attempts: Total=1, Success=0, Fail=1  Ongoing Failure: Overall=1 Communication=0\n\
             \x20 Last Response: INVALID STATUS CODE on Aug 30 16:12:28 2023 PDT\n\
             \x20   Failure Reason: E1311 HttpClientError: HTTP 4xx from the service: \
             {{\"product_instance_identifier\":[\"The identity for the instance \
             f654477d-627f-4049-bada-b44f18612bcc is not valid.Please re-register the \
             instance.\"]}}\n\
             \x20 Last Success Time: <none>\n\
             \x20 Last Failure Time: Aug 30 16:12:28 2023 PDT\n\
             Hello Message:\n\
             \x20 Attempts: Total=210, Success=0, Fail=210  Ongoing Failure: Overall=210 \
             Communication=210\n\
             \x20 Last Response: NO REPLY on Dec 02 03:12:31 2023 PDT\n\
             \x20   Failure Reason: E1300 DnsFailure: DNS resolution failed: cslu-local\n\
             \x20 Last Success Time: <none>\n\
             \x20 Last Failure Time: Dec 02 03:12:31 2023 PDT\n"
        )
    );
}

#[test]
fn success_ends_failure_runs_and_clears_the_reason() {
    let mut st: CommStats<32> = CommStats::new();
    let k = MessageKind::UsageReporting;
    st.record_attempt(k, T);
    st.record_error(k, T, Code::ConnectTimeout, "");
    st.record_attempt(k, T);
    st.record_error(k, T, Code::ServiceFailed, "unknown instance x");
    let b = st.block(k);
    assert_eq!(
        (
            b.total(),
            b.fail(),
            b.ongoing_overall(),
            b.ongoing_communication()
        ),
        (2, 2, 2, 0)
    );
    assert_eq!(b.last_response(), Some((ResponseStatus::Failed, T)));
    assert_eq!(
        s(b.failure_reason().unwrap()),
        "E1205 ServiceFailed: service answered FAILED: unknown instance x"
    );
    st.record_attempt(k, T);
    // An attempt in flight: Total runs one ahead.
    assert_eq!(st.block(k).total(), 3);
    let later = T.add_millis(300_000);
    st.record_success(k, later, ResponseStatus::OkPoll);
    let b = st.block(k);
    assert_eq!((b.total(), b.success(), b.fail()), (3, 1, 2));
    assert_eq!((b.ongoing_overall(), b.ongoing_communication()), (0, 0));
    assert_eq!(b.failure_reason(), None);
    assert_eq!(b.last_success(), Some(later));
    assert_eq!(b.last_failure(), Some(T));
    let out = stats_text(&st, Zone::UTC);
    assert!(
        out.contains(
            "Usage Reporting:\n\
         \x20 Attempts: Total=3, Success=1, Fail=2  Ongoing Failure: Overall=0 Communication=0\n\
         \x20 Last Response: OK_POLL on Aug 22 12:18:11 2021 UTC\n\
         \x20   Failure Reason: <none>\n\
         \x20 Last Success Time: Aug 22 12:18:11 2021 UTC\n\
         \x20 Last Failure Time: Aug 22 12:13:11 2021 UTC\n"
        ),
        "{out}"
    );
    // Outcomes without a recorded attempt still count one, so Total ≥ Success + Fail.
    st.record_success(MessageKind::Hello, T, ResponseStatus::Ok);
    st.record_error(MessageKind::Hello, T, Code::ReadTimeout, "");
    let b = st.block(MessageKind::Hello);
    assert_eq!(
        (b.total(), b.success(), b.fail(), b.ongoing_communication()),
        (2, 1, 1, 1)
    );
    // A long reason is cut and marked.
    st.record_error(
        MessageKind::TrustSync,
        T,
        Code::ServiceError,
        &"x".repeat(100),
    );
    assert!(stats_text(&st, Zone::UTC).contains(&format!(
        "    Failure Reason: E1208 ServiceError: service rejected the request: {} \
         <truncated: showing 32 of 100 bytes>\n",
        "x".repeat(32)
    )));
    st.set_offline(true);
    assert!(st.is_offline());
    assert!(stats_text(&st, Zone::UTC)
        .contains("Overall State: Device configured for Offline transport\n"));
    st.reset();
    assert_eq!(st.block(MessageKind::Hello).total(), 0);
    assert!(st.is_offline());
}

#[test]
fn failure_codes_map_to_device_statuses() {
    use ResponseStatus as S;
    for (code, want) in [
        (Code::DnsFailure, S::NoReply),
        (Code::ConnectRefused, S::NoReply),
        (Code::TlsUnknownCa, S::NoReply),
        (Code::ProxyAuthRequired, S::NoReply),
        (Code::NoReply, S::NoReply),
        (Code::ConnectionReset, S::NoReply),
        (Code::HttpClientError, S::InvalidStatusCode),
        (Code::HttpServerError, S::InvalidStatusCode),
        (Code::TruncatedBody, S::InvalidResponse),
        (Code::BadSignature, S::InvalidResponse),
        (Code::JsonSyntax, S::InvalidResponse),
        (Code::ReplayedNonce, S::InvalidResponse),
        (Code::ServiceFailed, S::Failed),
        (Code::ServiceError, S::Failed),
        (Code::ServiceTryAgain, S::OkTryAgain),
        (Code::SigningFailed, S::BuildRequestError),
        (Code::BufferTooSmall, S::BuildRequestError),
    ] {
        assert_eq!(S::for_failure(code), want, "{code:?}");
    }
    for code in Code::ALL {
        let _ = S::for_failure(*code);
    }
    assert_eq!(
        [
            S::Ok,
            S::OkPoll,
            S::OkTryAgain,
            S::Failed,
            S::NoReply,
            S::InvalidStatusCode,
            S::InvalidResponse,
            S::BuildRequestError
        ]
        .map(S::as_str),
        [
            "OK",
            "OK_POLL",
            "OK_TRY_AGAIN",
            "FAILED",
            "NO REPLY",
            "INVALID STATUS CODE",
            "INVALID RESPONSE",
            "BUILD REQUEST ERROR"
        ]
    );
}

#[test]
fn counters_saturate_instead_of_overflowing() {
    // Reach u32::MAX quickly through the public API is impractical; check that a long run of
    // mixed outcomes keeps the invariants.
    let mut st: CommStats<8> = CommStats::new();
    let mut rng = Rng(99);
    for _ in 0..20_000 {
        let k = MessageKind::ALL[rng.below(5) as usize];
        match rng.below(3) {
            0 => st.record_attempt(k, Timestamp(rng.next())),
            1 => st.record_success(k, Timestamp(rng.next()), ResponseStatus::Ok),
            _ => {
                let code = Code::ALL[rng.below(Code::ALL.len() as u64) as usize];
                let len = rng.below(40) as usize;
                let text = String::from_utf8_lossy(&rng.bytes(len)).into_owned();
                st.record_error(k, Timestamp(rng.next()), code, &text);
            }
        }
        let b = st.block(k);
        assert!(b.total() >= b.success() + b.fail());
        assert!(b.ongoing_communication() <= b.ongoing_overall());
    }
    let out = stats_text(&st, Zone::UTC);
    assert_eq!(out.lines().count(), 4 + 5 * 6, "reasons never break lines");
}

// ---- shared ---------------------------------------------------------------------------------------

#[test]
fn categories_and_details() {
    assert_eq!(
        MessageKind::from(RequestType::ID_TOKEN_TRUST),
        MessageKind::TrustEstablishment
    );
    assert_eq!(
        MessageKind::from(RequestType::LICENSE_USAGE),
        MessageKind::UsageReporting
    );
    assert_eq!(
        MessageKind::from(RequestType::POLL_REQ),
        MessageKind::ResultPolling
    );
    assert_eq!(
        MessageKind::from(RequestType::TRUST_SYNC),
        MessageKind::TrustSync
    );
    assert_eq!(MessageKind::from(RequestType::HELLO), MessageKind::Hello);
    assert_eq!(
        s(Category::from(ImportKind::TrustCode)),
        "Import TRUST CODE"
    );
    assert_eq!(s(Category::from(MessageKind::Hello)), "Hello Message");

    let d = Detail::<8>::new("naïve text");
    assert_eq!(d.as_str(), "naïve t");
    assert_eq!((d.len(), d.original_len(), d.is_truncated()), (8, 11, true));
    assert_eq!(s(d), "naïve t <truncated: showing 8 of 11 bytes>");
    let d = Detail::<8>::from_chars("a\u{1F600}bcdefg".chars());
    assert_eq!(d.as_str(), "a\u{1F600}bcd");
    let d: Detail = Detail::default();
    assert!(d.is_empty() && !d.is_truncated());
    assert_eq!(s(d), "");
}

#[test]
fn rendering_into_a_full_buffer_fails_cleanly() {
    let mut h: MessageHistory<4, 256> = MessageHistory::new();
    h.record_request(T, MessageKind::TrustEstablishment, SEED_REQUEST.as_bytes());
    let mut small = heapless::String::<64>::new();
    assert!(h.render(&mut small, Zone::UTC).is_err());
    let mut log: EventLog = EventLog::new();
    log.push(Event::new(T, EventKind::ReportingNotSupported));
    let mut small = heapless::String::<32>::new();
    assert!(log.render(&mut small).is_err());
    let st: CommStats = CommStats::new();
    let mut small = heapless::String::<32>::new();
    assert!(st.render(&mut small, Zone::UTC).is_err());
    let mut out = String::new();
    write!(out, "{}", fmt_syslog(T)).unwrap();
    assert_eq!(out, "Aug 22 12:13:11.879");
}
