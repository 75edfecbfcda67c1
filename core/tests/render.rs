#![cfg(feature = "server")]
//! The `show license …` renderers against a device engine driven through trust, usage and ACK
//! by the service side, on a virtual clock with seeded RNGs: every output is compared whole.

mod common;

use common::custom_policy;
use common::lab::*;
use slup_core::engine::render;
use slup_core::engine::{Command, AGENT_VERSION};
use slup_core::server::UsageMode;
use slup_core::types::{Timestamp, Udi};

/// Trust with the one-use token; it must install.
fn trust(p: &mut Pair) {
    p.trust("TOKEN-ONE-USE");
    assert!(p.dev.trust().is_installed());
}

/// An AP joins the tag.
fn join(p: &mut Pair, serial: &str) {
    p.cmd(Command::Entity {
        tag: TAG,
        udi: Udi::new("C9130AXI-E", serial).unwrap(),
        joined: true,
    })
    .unwrap();
}

/// Renders with `f` into a `String`.
fn show(f: impl FnOnce(&mut String) -> std::fmt::Result) -> String {
    let mut s = String::new();
    f(&mut s).unwrap();
    s
}

/// Trust with a custom policy at T0, a count of 3 and three APs joining, then the report
/// closed at T0+8h sent and acknowledged; the clock stops at T0+8h+1min.
fn reported() -> Pair {
    let mut p = Pair::with_policy(false, UsageMode::Immediate, Some(&custom_policy()));
    trust(&mut p);
    p.cmd(Command::RecordUsage { tag: TAG, count: 3 }).unwrap();
    for sn in ["FGL2301A001", "FGL2301A002", "FGL2301A003"] {
        join(&mut p, sn);
    }
    p.run_for(8 * HOUR + MIN);
    assert_eq!(p.dev.reports().len(), 0);
    p
}

/// [`reported`], then the count goes to 4: the open report closes (kept for the next push)
/// and a new one opens.
fn changed() -> Pair {
    let mut p = reported();
    p.cmd(Command::RecordUsage { tag: TAG, count: 4 }).unwrap();
    assert_eq!(p.dev.reports().len(), 1);
    p
}

fn polling() -> Pair {
    let mut p = Pair::with_policy(
        false,
        UsageMode::Poll {
            retry_time_seconds: 300,
        },
        None,
    );
    trust(&mut p);
    p.cmd(Command::RecordUsage { tag: TAG, count: 2 }).unwrap();
    p.cmd(Command::SyncNow).unwrap();
    while p.exchange().is_some() {}
    p
}

fn rejected() -> Pair {
    let mut p = Pair::with_policy(false, UsageMode::Immediate, None);
    trust(&mut p);
    p.cmd(Command::RecordUsage { tag: TAG, count: 1 }).unwrap();
    let before = p.store.clone();
    p.now += MIN;
    p.cmd(Command::SyncNow).unwrap();
    while p.exchange().is_some() {}
    // The device comes back from an older copy of its records (a storage rollback): the
    // reload closes the same report again, with other contents, and the service refuses it.
    p.store = before;
    p.now += MIN;
    p.reboot();
    p.cmd(Command::SyncNow).unwrap();
    while p.exchange().is_some() {}
    p
}

#[test]
fn status_after_trust_usage_and_ack() {
    let p = reported();
    assert_eq!(
        show(|w| render::status(&p.dev, Timestamp(p.now), w)),
        STATUS
    );
}

#[test]
fn summary_and_usage_after_ack() {
    let p = reported();
    let now = Timestamp(p.now);
    assert_eq!(show(|w| render::summary(&p.dev, now, w)), SUMMARY);
    assert_eq!(show(|w| render::usage(&p.dev, now, w)), USAGE);
}

#[test]
fn air_entities_summary_after_ack() {
    let p = reported();
    assert_eq!(
        show(|w| render::air_entities_summary(&p.dev, Timestamp(p.now), w)),
        AIR
    );
}

#[test]
fn rum_id_all_after_a_count_change() {
    let p = changed();
    assert_eq!(
        show(|w| render::rum_id_all(&p.dev, Timestamp(p.now), w)),
        RUM_CHANGED
    );
}

#[test]
fn tech_support_after_a_count_change() {
    let p = changed();
    assert_eq!(
        show(|w| render::tech_support(&p.dev, Timestamp(p.now), w)),
        TECH.replace("{VERSION}", AGENT_VERSION)
    );
}

#[test]
fn fresh_engine_has_no_trust_and_the_cisco_default_policy() {
    let p = Pair::with_policy(true, UsageMode::Immediate, None);
    let (d, now) = (&p.dev, Timestamp(p.now));
    let status = show(|w| render::status(d, now, w));
    assert_eq!(status, FRESH_STATUS);
    // Every policy value is Cisco's, and says so.
    let values: Vec<&str> = status.lines().filter(|l| l.contains("(days)")).collect();
    assert_eq!(values.len(), 12);
    assert!(values.iter().all(|l| l.ends_with(" (CISCO default)")));
    assert_eq!(show(|w| render::summary(d, now, w)), FRESH_SUMMARY);
    assert_eq!(show(|w| render::usage(d, now, w)), FRESH_USAGE);
    assert_eq!(show(|w| render::rum_id_all(d, now, w)), FRESH_RUM);
    assert_eq!(show(|w| render::air_entities_summary(d, now, w)), FRESH_AIR);
}

#[test]
fn custom_policy_marks_only_the_values_it_sets() {
    let status = show(|w| {
        let p = reported();
        render::status(&p.dev, Timestamp(p.now), w)
    });
    let customer: Vec<&str> = status
        .lines()
        .filter(|l| l.ends_with(" (Customer Policy)"))
        .map(str::trim)
        .collect();
    assert_eq!(
        customer,
        [
            "Reporting ACK required: yes (Customer Policy)",
            "First report requirement (days): 30 (Customer Policy)",
            "Reporting frequency (days): 60 (Customer Policy)",
            "Report on change (days): 60 (Customer Policy)",
            "First report requirement (days): 120 (Customer Policy)",
            "Report on change (days): 111 (Customer Policy)",
        ]
    );
    let defaults = status
        .lines()
        .filter(|l| l.ends_with(" (CISCO default)"))
        .count();
    assert_eq!(defaults, 7);
}

#[test]
fn rum_id_all_shows_pending_and_rejected_reports() {
    let p = polling();
    assert_eq!(
        show(|w| render::rum_id_all(&p.dev, Timestamp(p.now), w)),
        RUM_PENDING
    );
    let p = rejected();
    assert_eq!(
        show(|w| render::rum_id_all(&p.dev, Timestamp(p.now), w)),
        RUM_REJECTED
    );
}

#[test]
fn history_message_is_the_engine_history() {
    let p = reported();
    let shown = show(|w| render::history_message(&p.dev, Timestamp(p.now), w));
    let mut direct = String::new();
    p.dev
        .history()
        .render(&mut direct, slup_core::diag::time::Zone::UTC)
        .unwrap();
    assert_eq!(shown, direct);
    assert!(shown.starts_with("Message History (oldest to newest):\n"));
    assert!(shown.contains("Usage Reporting:\nREQUEST: Nov 15 06:13:20 2023 UTC\n"));
    if slup_core::engine::HISTORY_BYTES == 1024 {
        // A device's 1 KiB arena keeps the newest exchange, each body cut to its first 512
        // bytes and marked; the trust exchange gave way, and says so.
        assert!(
            shown.contains("<2 older entries evicted>\nTrust Establishment:\n  No past history\n"),
            "{shown}"
        );
        assert!(shown.contains(
            "<truncated: showing 512 of 1775 bytes>\nRESPONSE: Nov 15 06:13:20 2023 UTC\n"
        ));
    } else {
        // A host's (the `std` feature, as when the whole workspace is built) keeps it all.
        assert!(
            shown.contains("Trust Establishment:\nREQUEST: Nov 14 22:13:20 2023 UTC\n"),
            "{shown}"
        );
        assert!(
            !shown.contains("evicted") && !shown.contains("truncated"),
            "{shown}"
        );
    }
}

/// `show license status` after trust with the custom policy, usage and its ACK.
const STATUS: &str = "\
Utility:
  Status: DISABLED

Smart Licensing Using Policy:
  Status: ENABLED

Account Information:
  Smart Account: Wireless TAC As of Nov 14 22:13:20 2023 UTC
  Virtual Account: Lab VA

Data Privacy:
  Sending Hostname: no
    Callhome hostname privacy: DISABLED
    Smart Licensing hostname privacy: ENABLED
  Version privacy: DISABLED

Transport:
  Type: Smart
  URL: https://smartreceiver.cisco.com/licservice/license
  Proxy:
    Not Configured

Miscellaneous:
  Custom Id: <empty>

Policy:
  Policy in use: Installed On Nov 15 06:13:20 2023 UTC
  Policy name: Custom Policy
  Reporting ACK required: yes (Customer Policy)
  Unenforced/Non-Export Perpetual Attributes:
    First report requirement (days): 30 (Customer Policy)
    Reporting frequency (days): 60 (Customer Policy)
    Report on change (days): 60 (Customer Policy)
  Unenforced/Non-Export Subscription Attributes:
    First report requirement (days): 120 (Customer Policy)
    Reporting frequency (days): 90 (CISCO default)
    Report on change (days): 111 (Customer Policy)
  Enforced (Perpetual/Subscription) License Attributes:
    First report requirement (days): 0 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 0 (CISCO default)
  Export (Perpetual/Subscription) License Attributes:
    First report requirement (days): 0 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 0 (CISCO default)

Usage Reporting:
  Last ACK received: Nov 15 06:13:20 2023 UTC
  Next ACK deadline: Jan 14 06:13:20 2024 UTC
  Reporting push interval: 8 hours
  Next report push: Nov 15 14:13:20 2023 UTC
  Last report push: Nov 15 06:13:20 2023 UTC

Trust Code Installed:
  Active: PID:C9800-CL-K9,SN:9PJK8D70CNB
    INSTALLED on Nov 14 22:13:20 2023 UTC
";

/// `show license summary` after the ACK.
const SUMMARY: &str = "\
Account Information:
  Smart Account: Wireless TAC As of Nov 14 22:13:20 2023 UTC
  Virtual Account: Lab VA

License Usage:
  License                 Entitlement Tag               Count Status
  -----------------------------------------------------------------------------
  AIR-DNA-A               (AIR-DNA-A)                       3 IN USE
";

/// `show license usage` after the ACK.
const USAGE: &str = "\
License Authorization:
  Status: Not Applicable

AIR-DNA-A (AIR-DNA-A):
  Description: AIR-DNA-A
  Count: 3
  Version: 1.0
  Status: IN USE
  Export status: NOT RESTRICTED
  Feature Name: AIR-DNA-A
  Feature Description: AIR-DNA-A
  Enforcement type: NOT ENFORCED
  License type: Perpetual
";

/// `show license air entities summary` after the ACK: three APs joined with the report.
const AIR: &str = "\
Last license report time.....: 06:13:20.000 UTC Wed Nov 15 2023
Upcoming license report time.....: 14:13:20.000 UTC Wed Nov 15 2023
No. of APs active at last report.....: 3
No. of APs newly added with last report.....: 3
No. of APs deleted with last report.....: 0
";

/// `show license rum id all` after the count change: the closed report waits for the next push.
const RUM_CHANGED: &str = "\
Smart Licensing Usage Report:
====================================
Report Id,          State,    Flag, Feature Name
1700028800          CLOSED    N     AIR-DNA-A
1700028860          OPEN      N     AIR-DNA-A
";

/// `show license tech-support` after the count change (`{VERSION}` is the agent version).
const TECH: &str = "\
Smart Licensing Tech Support info

Current time: 06:14:20.000 UTC Wed Nov 15 2023

Smart Licensing Status
======================

Utility:
  Status: DISABLED

Smart Licensing Using Policy:
  Status: ENABLED

Account Information:
  Smart Account: Wireless TAC As of Nov 14 22:13:20 2023 UTC
  Virtual Account: Lab VA

Data Privacy:
  Sending Hostname: no
    Callhome hostname privacy: DISABLED
    Smart Licensing hostname privacy: ENABLED
  Version privacy: DISABLED

Transport:
  Type: Smart
  URL: https://smartreceiver.cisco.com/licservice/license
  Proxy:
    Not Configured

Miscellaneous:
  Custom Id: <empty>

Policy:
  Policy in use: Installed On Nov 15 06:13:20 2023 UTC
  Policy name: Custom Policy
  Reporting ACK required: yes (Customer Policy)
  Unenforced/Non-Export Perpetual Attributes:
    First report requirement (days): 30 (Customer Policy)
    Reporting frequency (days): 60 (Customer Policy)
    Report on change (days): 60 (Customer Policy)
  Unenforced/Non-Export Subscription Attributes:
    First report requirement (days): 120 (Customer Policy)
    Reporting frequency (days): 90 (CISCO default)
    Report on change (days): 111 (Customer Policy)
  Enforced (Perpetual/Subscription) License Attributes:
    First report requirement (days): 0 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 0 (CISCO default)
  Export (Perpetual/Subscription) License Attributes:
    First report requirement (days): 0 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 0 (CISCO default)

Usage Reporting:
  Last ACK received: Nov 15 06:13:20 2023 UTC
  Next ACK deadline: Jan 14 06:13:20 2024 UTC
  Reporting push interval: 8 hours
  Next report push: Nov 15 14:13:20 2023 UTC
  Last report push: Nov 15 06:13:20 2023 UTC

Trust Code Installed:
  Active: PID:C9800-CL-K9,SN:9PJK8D70CNB
    INSTALLED on Nov 14 22:13:20 2023 UTC

License Usage
=============
Handle: 1
  License: AIR-DNA-A
  Entitlement Tag: regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790
  Description: AIR-DNA-A
  Count: 4
  Version: 1.0
  Status: IN USE
  Export status: NOT RESTRICTED
  Feature Name: AIR-DNA-A
  Feature Description: AIR-DNA-A
  Enforcement type: NOT ENFORCED
  License type: Perpetual
  Measurements:
    ENTITLEMENT:
      Interval: 00:15:00
      Current Value: 4
      Current Report: 1700028860
      Samples: 0
  Sub-devices:
    Active now: 3
    Active at last report: 3
    Added with last report: 0
    Deleted with last report: 0

Product Information
===================
UDI: PID:C9800-CL-K9,SN:9PJK8D70CNB

HA UDI List:
    Active:PID:C9800-CL-K9,SN:9PJK8D70CNB

Agent Version
=============
Smart Agent for Licensing: slup {VERSION}

Upcoming Scheduled Jobs
=======================
Send Utility RUM reports: Nov 15 14:13:20 2023 UTC
Next engine deadline: Nov 15 06:28:20 2023 UTC
Request in flight: no

Communication Statistics:
=======================
Communication Level Allowed: DIRECT
Overall State: <empty>
Trust Establishment:
  Attempts: Total=1, Success=1, Fail=0  Ongoing Failure: Overall=0 Communication=0
  Last Response: OK on Nov 14 22:13:20 2023 UTC
    Failure Reason: <none>
  Last Success Time: Nov 14 22:13:20 2023 UTC
  Last Failure Time: <none>
Usage Reporting:
  Attempts: Total=1, Success=1, Fail=0  Ongoing Failure: Overall=0 Communication=0
  Last Response: OK on Nov 15 06:13:20 2023 UTC
    Failure Reason: <none>
  Last Success Time: Nov 15 06:13:20 2023 UTC
  Last Failure Time: <none>
Result Polling:
  Attempts: Total=0, Success=0, Fail=0  Ongoing Failure: Overall=0 Communication=0
  Last Response: <none>
    Failure Reason: <none>
  Last Success Time: <none>
  Last Failure Time: <none>
Trust Sync:
  Attempts: Total=0, Success=0, Fail=0  Ongoing Failure: Overall=0 Communication=0
  Last Response: <none>
    Failure Reason: <none>
  Last Success Time: <none>
  Last Failure Time: <none>
Hello Message:
  Attempts: Total=0, Success=0, Fail=0  Ongoing Failure: Overall=0 Communication=0
  Last Response: <none>
    Failure Reason: <none>
  Last Success Time: <none>
  Last Failure Time: <none>

Usage Report Summary:
=====================
Total: 3,  Purged: 1
Total Acknowledged Received: 1,  Waiting for Ack: 0
Available to Report: 1  Collecting Data: 1
In Storage: 1,  Rejected: 0
Report Module Status: Ready

Trust Data
==========
Overall Trust: INSTALLED (1)
Product Instance: ff333f9f-da91-409c-a6db-37da20b7b707
  Active: PID:C9800-CL-K9,SN:9PJK8D70CNB
    INSTALLED on Nov 14 22:13:20 2023 UTC, TrustId:1, issued Nov 14 22:13:20 2023 UTC

Event Log
=========
Nov 14 22:13:20.000: %SMART_LIC-6-AGENT_READY: Smart Agent for Licensing is initialized
Nov 14 22:13:20.000: %SMART_LIC-6-TRUST_INSTALL_SUCCESS: A new licensing trust code was successfully installed
Nov 14 22:13:20.000: %SMART_LIC-6-POLICY_INSTALL_SUCCESS: A new licensing policy was successfully installed
Nov 15 06:13:20.000: %SMART_LIC-6-USAGE_ACK_RECEIVED: A usage report acknowledgement was received: 1 acknowledged, 0 rejected
Nov 15 06:13:20.000: %SMART_LIC-6-POLICY_INSTALL_SUCCESS: A new licensing policy was successfully installed

Other Info
==========
Software ID: regid.2018-05.com.cisco.WLC_9500C,1.0
Software Version: 17.09.02
Message Version: 1.3
Locale: en_US.UTF-8
agent.capabilities: DLC, AppHA, EXPORT_2, POLICY_USAGE, UTILITY
Transport: Smart
Report interval: 8 hours
Sample interval: 15 minutes
Poll retry interval: 5 minutes
Trust first retry interval: 1 minute
Communication retry interval: 1 hour
Maximum clock skew: 1 hour
Reporting warning: 14 days
";

/// `show license status` of a fresh HA pair: no trust, Cisco default policy.
const FRESH_STATUS: &str = "\
Utility:
  Status: DISABLED

Smart Licensing Using Policy:
  Status: ENABLED

Account Information:
  Smart Account: <none>
  Virtual Account: <none>

Data Privacy:
  Sending Hostname: no
    Callhome hostname privacy: DISABLED
    Smart Licensing hostname privacy: ENABLED
  Version privacy: DISABLED

Transport:
  Type: Smart
  URL: https://smartreceiver.cisco.com/licservice/license
  Proxy:
    Not Configured

Miscellaneous:
  Custom Id: <empty>

Policy:
  Policy in use: Cisco default
  Policy name: Cisco default
  Reporting ACK required: yes (CISCO default)
  Unenforced/Non-Export Perpetual Attributes:
    First report requirement (days): 365 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 90 (CISCO default)
  Unenforced/Non-Export Subscription Attributes:
    First report requirement (days): 90 (CISCO default)
    Reporting frequency (days): 90 (CISCO default)
    Report on change (days): 90 (CISCO default)
  Enforced (Perpetual/Subscription) License Attributes:
    First report requirement (days): 0 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 0 (CISCO default)
  Export (Perpetual/Subscription) License Attributes:
    First report requirement (days): 0 (CISCO default)
    Reporting frequency (days): 0 (CISCO default)
    Report on change (days): 0 (CISCO default)

Usage Reporting:
  Last ACK received: <none>
  Next ACK deadline: <none>
  Reporting push interval: 8 hours
  Next report push: Nov 15 06:13:20 2023 UTC
  Last report push: <none>

Trust Code Installed:
  Active: PID:C9800-CL-K9,SN:9PJK8D70CNB
    NOT INSTALLED
  Standby: PID:C9800-CL-K9,SN:9PJK8D70CNC
    NOT INSTALLED
";

/// `show license summary` of a fresh engine.
const FRESH_SUMMARY: &str = "\
Account Information:
  Smart Account: <none>
  Virtual Account: <none>

License Usage:
  License                 Entitlement Tag               Count Status
  -----------------------------------------------------------------------------
";

/// `show license usage` of a fresh engine.
const FRESH_USAGE: &str = "\
License Authorization:
  Status: Not Applicable
";

/// `show license rum id all` of a fresh engine.
const FRESH_RUM: &str = "\
Smart Licensing Usage Report:
====================================
Report Id,          State,    Flag, Feature Name
";

/// `show license air entities summary` of a fresh engine: never reported.
const FRESH_AIR: &str = "\
Last license report time.....: <none>
Upcoming license report time.....: 06:13:20.000 UTC Wed Nov 15 2023
No. of APs active at last report.....: 0
No. of APs newly added with last report.....: 0
No. of APs deleted with last report.....: 0
";

/// `show license rum id all` while the service answered `OK_POLL`.
const RUM_PENDING: &str = "\
Smart Licensing Usage Report:
====================================
Report Id,          State,    Flag, Feature Name
1700000000          PENDING   N     AIR-DNA-A
1700000001          OPEN      N     AIR-DNA-A
";

/// `show license rum id all` after the service rejected a report signed before a forced re-trust.
const RUM_REJECTED: &str = "\
Smart Licensing Usage Report:
====================================
Report Id,          State,    Flag, Feature Name
1700000000          REJECTED  N     AIR-DNA-A
                    Reason: report_id already received with different content
1700000121          OPEN      N     AIR-DNA-A
";
