//! The `show license …` outputs, rendered from an [`Engine`] into any [`core::fmt::Write`].
//!
//! Every renderer has the same shape, `fn(engine, now, writer) -> fmt::Result`, and writes the
//! layout of the real device output (research §1.3, §2.5, §3.1–§3.4 and the seed) where slup has
//! the same facts, in UTC:
//!
//! | renderer | command |
//! |---|---|
//! | [`status`] | `show license status` |
//! | [`summary`] | `show license summary` |
//! | [`usage`] | `show license usage` |
//! | [`rum_id_all`] | `show license rum id all` |
//! | [`air_entities_summary`] | `show license air entities summary` |
//! | [`history_message`] | `show license history message` |
//! | [`tech_support`] | `show license tech-support` |
//!
//! Nothing here allocates or panics. Text that came from the network (account and policy names,
//! rejection reasons) and the configured URL are written with control characters escaped
//! (`\x1b`, `\u{0085}`), so no value can break a line or reach a terminal as a control sequence.
//!
//! Where slup differs from the device, it says what is true of slup rather than copy the
//! device: the hostname is never sent (`Sending Hostname: no`), intervals are printed in the
//! unit they were configured in (`8 hours`), and lines for facts slup does not keep (VRF,
//! `Next ACK push check`, `Last report file write`) are left out rather than filled with
//! `<none>`.
//!
//! Licenses are shown by the short name of their entitlement tag: the segment after the last
//! dot and before the comma of an ISO 19770-2 `regid.` tag (`regid.2017-08.com.cisco.AIR-DNA-A,
//! 1.0_…` → `AIR-DNA-A`), the whole tag otherwise. `tech_support` also prints the full tag.
//! Every license is shown as unenforced, not export-restricted and perpetual: slup measures
//! usage and enforces nothing.

use core::fmt::{self, Write};

use rand_core::{CryptoRng, RngCore};

use super::config::TransportMode;
use super::reports::{ReportState, DEFAULT_REPORTS};
use super::trust::{InstalledCode, KeyProvider};
use super::usage::{DEFAULT_TAGS, SAMPLE_INTERVAL_S};
use super::{Engine, AGENT_VERSION};
use crate::diag::event::EventKind;
use crate::diag::time::{fmt_clock, fmt_status, Zone};
use crate::diag::{write_char_escaped, MessageKind};
use crate::msg::policy::Origin;
use crate::msg::CAPABILITIES;
use crate::types::{Role, Timestamp};

/// The locale announced in every request header.
const LOCALE: &str = "en_US.UTF-8";
/// The message version announced in every request header.
const MESSAGE_VERSION: &str = "1.3";

/// The four license classes of a policy, in [`ResolvedPolicy::classes`] order.
///
/// [`ResolvedPolicy::classes`]: crate::msg::policy::ResolvedPolicy::classes
const CLASS_TITLES: [&str; 4] = [
    "Unenforced/Non-Export Perpetual Attributes",
    "Unenforced/Non-Export Subscription Attributes",
    "Enforced (Perpetual/Subscription) License Attributes",
    "Export (Perpetual/Subscription) License Attributes",
];

/// The three attributes of a class, in the order of each class's values.
const ATTR_TITLES: [&str; 3] = [
    "First report requirement (days)",
    "Reporting frequency (days)",
    "Report on change (days)",
];

// ---- small formatting helpers ---------------------------------------------------------------

/// `Aug 30 18:45:53 2023 UTC`, or `<none>`.
struct When(Option<Timestamp>);

impl fmt::Display for When {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{}", fmt_status(t)),
            None => f.write_str("<none>"),
        }
    }
}

/// `07:38:15.237 UTC Fri Aug 27 2021`, or `<none>`.
struct Clock(Option<Timestamp>);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(t) => write!(f, "{}", fmt_clock(t)),
            None => f.write_str("<none>"),
        }
    }
}

/// Text with control characters escaped; `<none>` when empty.
struct Esc<'a>(&'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("<none>");
        }
        for c in self.0.chars() {
            write_char_escaped(f, c, false)?;
        }
        Ok(())
    }
}

/// A duration in seconds, in the largest unit that divides it: `30 days`, `8 hours`,
/// `5 minutes`, `1 second`.
struct Interval(u64);

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        let (n, unit) = if s == 0 {
            (0, "second")
        } else if s.is_multiple_of(86_400) {
            (s / 86_400, "day")
        } else if s.is_multiple_of(3600) {
            (s / 3600, "hour")
        } else if s.is_multiple_of(60) {
            (s / 60, "minute")
        } else {
            (s, "second")
        };
        write!(f, "{n} {unit}{}", if n == 1 { "" } else { "s" })
    }
}

/// `hh:mm:ss`, as in `Interval: 00:15:00`.
struct Hms(u64);

impl fmt::Display for Hms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0;
        write!(f, "{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    }
}

/// Writes `s`, cut to `max` characters (the last three replaced by `...`) when longer, and
/// pads it with spaces to `width` characters. Returns the characters written before padding.
fn cell<W: Write + ?Sized>(
    w: &mut W,
    s: &str,
    max: usize,
    width: usize,
) -> Result<usize, fmt::Error> {
    let len = s.chars().count();
    let shown = if len > max {
        let keep = max.saturating_sub(3);
        for c in s.chars().take(keep) {
            write_char_escaped(w, c, false)?;
        }
        w.write_str("...")?;
        keep.saturating_add(3)
    } else {
        for c in s.chars() {
            write_char_escaped(w, c, false)?;
        }
        len
    };
    pad(w, shown, width)?;
    Ok(shown)
}

/// Writes spaces from column `from` to column `to`.
fn pad<W: Write + ?Sized>(w: &mut W, from: usize, to: usize) -> fmt::Result {
    for _ in from..to {
        w.write_char(' ')?;
    }
    Ok(())
}

/// The short name of an entitlement tag: `AIR-DNA-A` for
/// `regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-…`; the tag itself when it is not a
/// `regid.` tag.
pub fn license_name(tag: &str) -> &str {
    let head = tag.split(',').next().unwrap_or(tag);
    if !head.starts_with("regid.") {
        return tag;
    }
    match head.rsplit('.').next() {
        Some(name) if !name.is_empty() => name,
        _ => tag,
    }
}

/// The version of an entitlement tag: `1.0` for `regid.…,1.0_b6308627-…`; `1.0` when the tag
/// carries none.
pub fn license_version(tag: &str) -> &str {
    match tag.split_once(',') {
        Some((_, rest)) => match rest.split('_').next() {
            Some(v) if !v.is_empty() => v,
            _ => "1.0",
        },
        None => "1.0",
    }
}

fn role_label(role: Role) -> &'static str {
    match role {
        Role::Active => "Active",
        Role::Standby => "Standby",
        Role::Member => "Member",
    }
}

fn transport_label(mode: TransportMode) -> &'static str {
    match mode {
        TransportMode::Smart => "Smart",
        TransportMode::Cslu => "cslu",
        TransportMode::OnPrem => "On-Prem",
        TransportMode::Off => "Off",
    }
}

fn origin(o: Origin) -> &'static str {
    o.label()
}

// ---- shared blocks --------------------------------------------------------------------------

/// The trust code whose account names are shown: the active unit's, else the first.
fn account_code<K, R, const M: usize>(e: &Engine<K, R, M>) -> Option<InstalledCode>
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    let t = e.trust();
    t.codes()
        .find(|c| c.role == Role::Active)
        .or_else(|| t.codes().next())
}

fn account_information<K, R, const M: usize, W>(e: &Engine<K, R, M>, w: &mut W) -> fmt::Result
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
    W: Write + ?Sized,
{
    writeln!(w, "Account Information:")?;
    match account_code(e) {
        Some(c) => {
            writeln!(
                w,
                "  Smart Account: {} As of {}",
                Esc(&c.smart_account),
                fmt_status(c.installed_at)
            )?;
            writeln!(w, "  Virtual Account: {}", Esc(&c.virtual_account))
        }
        None => {
            writeln!(w, "  Smart Account: <none>")?;
            writeln!(w, "  Virtual Account: <none>")
        }
    }
}

/// When the last usage report went out (the end of the last usage exchange, answered or not).
fn last_report_push<K, R, const M: usize>(e: &Engine<K, R, M>) -> Option<Timestamp>
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
{
    e.stats()
        .block(MessageKind::UsageReporting)
        .last_response()
        .map(|(_, at)| at)
}

fn policy_block<K, R, const M: usize, W>(e: &Engine<K, R, M>, w: &mut W) -> fmt::Result
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
    W: Write + ?Sized,
{
    let p = e.policy();
    writeln!(w, "Policy:")?;
    match p.installed_at {
        Some(at) => writeln!(w, "  Policy in use: Installed On {}", fmt_status(at))?,
        None => writeln!(w, "  Policy in use: Cisco default")?,
    }
    writeln!(w, "  Policy name: {}", Esc(&p.name))?;
    let (ack, ack_origin) = p.resolved.ack_required;
    writeln!(
        w,
        "  Reporting ACK required: {} ({})",
        if ack { "yes" } else { "no" },
        origin(ack_origin)
    )?;
    for (title, class) in CLASS_TITLES.iter().zip(p.resolved.classes.iter()) {
        writeln!(w, "  {title}:")?;
        for (attr, (days, o)) in ATTR_TITLES.iter().zip(class.iter()) {
            writeln!(w, "    {attr}: {days} ({})", origin(*o))?;
        }
    }
    Ok(())
}

fn trust_codes_block<K, R, const M: usize, W>(e: &Engine<K, R, M>, w: &mut W) -> fmt::Result
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
    W: Write + ?Sized,
{
    writeln!(w, "Trust Code Installed:")?;
    for m in e.config().members.iter() {
        writeln!(w, "  {}: {}", role_label(m.role), m.udi.udi())?;
        match e.trust().codes().find(|c| c.udi == m.udi) {
            Some(c) => writeln!(w, "    INSTALLED on {}", fmt_status(c.installed_at))?,
            None => writeln!(w, "    NOT INSTALLED")?,
        }
    }
    Ok(())
}

fn license_table_header<W: Write + ?Sized>(w: &mut W) -> fmt::Result {
    writeln!(w, "License Usage:")?;
    writeln!(
        w,
        "  License                 Entitlement Tag               Count Status"
    )?;
    writeln!(
        w,
        "  -----------------------------------------------------------------------------"
    )
}

fn in_use(count: u64) -> &'static str {
    if count > 0 {
        "IN USE"
    } else {
        "NOT IN USE"
    }
}

/// The per-license fields shared by `show license usage` and tech-support, two-space indented.
fn license_fields<W: Write + ?Sized>(w: &mut W, tag: &str, count: u64) -> fmt::Result {
    let name = license_name(tag);
    writeln!(w, "  Description: {name}")?;
    writeln!(w, "  Count: {count}")?;
    writeln!(w, "  Version: {}", license_version(tag))?;
    writeln!(w, "  Status: {}", in_use(count))?;
    writeln!(w, "  Export status: NOT RESTRICTED")?;
    writeln!(w, "  Feature Name: {name}")?;
    writeln!(w, "  Feature Description: {name}")?;
    writeln!(w, "  Enforcement type: NOT ENFORCED")?;
    writeln!(w, "  License type: Perpetual")
}

// ---- renderers ------------------------------------------------------------------------------

/// `show license status`: agent state, account, data privacy, transport, policy with the origin
/// of every value, usage reporting times, and the trust code of every HA unit.
///
/// ```text
/// Utility:
///   Status: DISABLED
///
/// Smart Licensing Using Policy:
///   Status: ENABLED
///
/// Account Information:
///   Smart Account: Wireless TAC As of Nov 14 22:13:20 2023 UTC
///   Virtual Account: Lab VA
/// …
/// Policy:
///   Policy in use: Installed On Nov 14 22:13:20 2023 UTC
///   Policy name: Custom Policy
///   Reporting ACK required: yes (CISCO default)
///   Unenforced/Non-Export Perpetual Attributes:
///     First report requirement (days): 30 (Customer Policy)
/// …
/// Trust Code Installed:
///   Active: PID:C9800-CL-K9,SN:9PJK8D70CNB
///     INSTALLED on Nov 14 22:13:20 2023 UTC
/// ```
///
/// Before a policy is installed the policy in use is `Cisco default`, with `(CISCO default)` on
/// every value. `Next ACK deadline` is [`Engine::ack_deadline`].
pub fn status<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    // Every renderer takes `now`; the status shows stored instants only.
    let _ = now;
    let c = e.config();
    writeln!(w, "Utility:\n  Status: DISABLED\n")?;
    writeln!(w, "Smart Licensing Using Policy:\n  Status: ENABLED\n")?;
    account_information(e, w)?;
    writeln!(w)?;
    // slup never sends a hostname; the software version goes in every report.
    writeln!(w, "Data Privacy:")?;
    writeln!(w, "  Sending Hostname: no")?;
    writeln!(w, "    Callhome hostname privacy: DISABLED")?;
    writeln!(w, "    Smart Licensing hostname privacy: ENABLED")?;
    writeln!(w, "  Version privacy: DISABLED\n")?;
    writeln!(w, "Transport:")?;
    writeln!(w, "  Type: {}", transport_label(c.transport))?;
    let url = c.effective_url();
    match c.transport {
        TransportMode::Smart | TransportMode::OnPrem => {
            writeln!(w, "  URL: {}", Esc(url.unwrap_or_default()))?;
        }
        TransportMode::Cslu => writeln!(w, "  Cslu address: {}", Esc(url.unwrap_or_default()))?,
        TransportMode::Off => {}
    }
    if c.transport != TransportMode::Off {
        writeln!(w, "  Proxy:\n    Not Configured")?;
    }
    writeln!(w)?;
    writeln!(w, "Miscellaneous:\n  Custom Id: <empty>\n")?;
    policy_block(e, w)?;
    writeln!(w)?;
    writeln!(w, "Usage Reporting:")?;
    writeln!(w, "  Last ACK received: {}", When(e.last_ack()))?;
    writeln!(w, "  Next ACK deadline: {}", When(e.ack_deadline()))?;
    writeln!(
        w,
        "  Reporting push interval: {}",
        Interval(u64::from(c.intervals.report_s))
    )?;
    writeln!(
        w,
        "  Next report push: {}",
        When(Some(e.next_report_time()))
    )?;
    writeln!(w, "  Last report push: {}", When(last_report_push(e)))?;
    writeln!(w)?;
    trust_codes_block(e, w)
}

/// `show license summary`: the account, then one row per license in use.
///
/// ```text
/// Account Information:
///   Smart Account: <none>
///   Virtual Account: <none>
///
/// License Usage:
///   License                 Entitlement Tag               Count Status
///   -----------------------------------------------------------------------------
///   AIR-DNA-A               (AIR-DNA-A)                       3 IN USE
/// ```
///
/// Names longer than their column are cut and end with `...`.
pub fn summary<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    let _ = now;
    account_information(e, w)?;
    writeln!(w)?;
    license_table_header(w)?;
    for t in e.usage().tags() {
        let name = license_name(&t.tag);
        license_row(w, name, name, t.count)?;
    }
    Ok(())
}

/// One row of the `License Usage` table: the license in a 24-character column, `(tag)` in a
/// 30-character one, the count right-aligned under `Count`, then the status.
fn license_row<W: Write + ?Sized>(w: &mut W, license: &str, tag: &str, count: u64) -> fmt::Result {
    w.write_str("  ")?;
    cell(w, license, 23, 24)?;
    w.write_char('(')?;
    let shown = cell(w, tag, 25, 0)?;
    w.write_char(')')?;
    pad(w, shown.saturating_add(2), 30)?;
    writeln!(w, "{count:>5} {}", in_use(count))
}

/// `show license usage`: every license measured, with its count and (fixed) license type.
///
/// ```text
/// License Authorization:
///   Status: Not Applicable
///
/// AIR-DNA-A (AIR-DNA-A):
///   Description: AIR-DNA-A
///   Count: 3
///   Version: 1.0
///   Status: IN USE
///   Export status: NOT RESTRICTED
///   Feature Name: AIR-DNA-A
///   Feature Description: AIR-DNA-A
///   Enforcement type: NOT ENFORCED
///   License type: Perpetual
/// ```
pub fn usage<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    let _ = now;
    writeln!(w, "License Authorization:\n  Status: Not Applicable")?;
    for t in e.usage().tags() {
        let name = license_name(&t.tag);
        writeln!(w, "\n{name} ({name}):")?;
        license_fields(w, &t.tag, t.count)?;
    }
    Ok(())
}

/// Where a report stands, as `show license rum id all` names it.
#[derive(Clone, Copy)]
enum RumState {
    Open,
    Closed,
    Pending,
    Rejected,
}

impl RumState {
    const fn label(self) -> &'static str {
        match self {
            RumState::Open => "OPEN",
            RumState::Closed => "CLOSED",
            RumState::Pending => "PENDING",
            RumState::Rejected => "REJECTED",
        }
    }
}

struct RumRow<'a> {
    id: u64,
    state: RumState,
    tag: &'a str,
    reason: &'a str,
}

/// `show license rum id all`: every report slup holds, oldest id first.
///
/// ```text
/// Smart Licensing Usage Report:
/// ====================================
/// Report Id,          State,    Flag, Feature Name
/// 1700028800          CLOSED    N     AIR-DNA-A
/// 1700028801          OPEN      N     AIR-DNA-A
/// ```
///
/// States: `OPEN` (measuring), `CLOSED` (signed, not sent yet), `PENDING` (sent, waiting for
/// its ACK), `REJECTED` (refused by the service, followed by a `Reason:` line). Acknowledged
/// reports are deleted, so `ACK` never appears.
pub fn rum_id_all<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    let _ = now;
    let tags = e.usage().tags();
    let mut rows: heapless::Vec<RumRow<'_>, { DEFAULT_TAGS + DEFAULT_REPORTS }> =
        heapless::Vec::new();
    for t in tags {
        if let Some(o) = &t.open {
            let _ = rows.push(RumRow {
                id: o.report_id.0,
                state: RumState::Open,
                tag: &t.tag,
                reason: "",
            });
        }
    }
    for r in e.reports().iter() {
        let state = match r.state {
            ReportState::Closed => RumState::Closed,
            ReportState::Pending => RumState::Pending,
            ReportState::Rejected => RumState::Rejected,
        };
        let _ = rows.push(RumRow {
            id: r.id.0,
            state,
            tag: tags.get(r.tag).map_or("<unknown>", |t| t.tag.as_str()),
            reason: &r.reason,
        });
    }
    rows.sort_unstable_by_key(|r| r.id);
    writeln!(w, "Smart Licensing Usage Report:")?;
    writeln!(w, "====================================")?;
    writeln!(w, "Report Id,          State,    Flag, Feature Name")?;
    for r in rows.iter() {
        writeln!(
            w,
            "{:<20}{:<10}{:<6}{}",
            r.id,
            r.state.label(),
            "N",
            license_name(r.tag)
        )?;
        if let RumState::Rejected = r.state {
            writeln!(w, "{:20}Reason: {}", "", Esc(r.reason))?;
        }
    }
    Ok(())
}

/// `show license air entities summary`, the seed's layout: when usage was last reported and
/// will next be, and the sub-devices (access points) of the last report, summed over tags
/// (record each access point under one tag).
///
/// ```text
/// Last license report time.....: 07:38:15.237 UTC Fri Aug 27 2021
/// Upcoming license report time.....: 15:38:15.972 UTC Fri Aug 27 2021
/// No. of APs active at last report.....: 3
/// No. of APs newly added with last report.....: 0
/// No. of APs deleted with last report.....: 0
/// ```
///
/// Before the first report the last time is `<none>`.
pub fn air_entities_summary<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    let _ = now;
    let (mut active, mut added, mut deleted) = (0u64, 0u64, 0u64);
    for t in e.usage().tags() {
        let s = &t.entities;
        active = active.saturating_add(u64::from(s.active_at_last_report));
        added = added.saturating_add(u64::from(s.added_with_last_report));
        deleted = deleted.saturating_add(u64::from(s.deleted_with_last_report));
    }
    writeln!(
        w,
        "Last license report time.....: {}",
        Clock(last_report_push(e))
    )?;
    writeln!(
        w,
        "Upcoming license report time.....: {}",
        Clock(Some(e.next_report_time()))
    )?;
    writeln!(w, "No. of APs active at last report.....: {active}")?;
    writeln!(w, "No. of APs newly added with last report.....: {added}")?;
    writeln!(w, "No. of APs deleted with last report.....: {deleted}")
}

/// `show license history message`: the engine's [`MessageHistory`], times in UTC.
///
/// [`MessageHistory`]: crate::diag::history::MessageHistory
pub fn history_message<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    let _ = now;
    e.history().render(w, Zone::UTC)
}

/// `show license tech-support`: everything an operator or TAC needs in one output.
///
/// Sections, in order: the current time; the [`status`] output; `License Usage` per license
/// with its full entitlement tag, current report and sub-devices; `Product Information` with
/// the HA UDI list; `Agent Version`; `Upcoming Scheduled Jobs`; `Communication Statistics`
/// ([`CommStats`]); `Usage Report Summary`; `Trust Data`; the `Event Log`; and `Other Info`
/// (message version, locale, capabilities, and every configured interval).
///
/// In the `Usage Report Summary`, acknowledged reports are counted from the event log: when
/// the log has overwritten events the counts are lower bounds, printed `>=N`.
///
/// [`CommStats`]: crate::diag::stats::CommStats
pub fn tech_support<K: KeyProvider, R: RngCore + CryptoRng, const M: usize>(
    e: &Engine<K, R, M>,
    now: Timestamp,
    w: &mut impl Write,
) -> fmt::Result {
    let c = e.config();
    writeln!(w, "Smart Licensing Tech Support info\n")?;
    writeln!(w, "Current time: {}\n", fmt_clock(now))?;
    writeln!(w, "Smart Licensing Status\n======================\n")?;
    status(e, now, w)?;

    writeln!(w, "\nLicense Usage\n=============")?;
    let tags = e.usage().tags();
    if tags.is_empty() {
        writeln!(w, "No licenses in use")?;
    }
    for (i, t) in tags.iter().enumerate() {
        if i > 0 {
            writeln!(w)?;
        }
        writeln!(w, "Handle: {}", i.saturating_add(1))?;
        writeln!(w, "  License: {}", license_name(&t.tag))?;
        writeln!(w, "  Entitlement Tag: {}", t.tag)?;
        license_fields(w, &t.tag, t.count)?;
        writeln!(w, "  Measurements:\n    ENTITLEMENT:")?;
        writeln!(w, "      Interval: {}", Hms(u64::from(SAMPLE_INTERVAL_S)))?;
        writeln!(w, "      Current Value: {}", t.count)?;
        match &t.open {
            Some(o) => {
                writeln!(w, "      Current Report: {}", o.report_id.0)?;
                writeln!(w, "      Samples: {}", o.num_samples)?;
            }
            None => writeln!(w, "      Current Report: <none>")?,
        }
        let s = &t.entities;
        writeln!(w, "  Sub-devices:")?;
        writeln!(w, "    Active now: {}", s.active_now)?;
        writeln!(w, "    Active at last report: {}", s.active_at_last_report)?;
        writeln!(
            w,
            "    Added with last report: {}",
            s.added_with_last_report
        )?;
        writeln!(
            w,
            "    Deleted with last report: {}",
            s.deleted_with_last_report
        )?;
    }

    writeln!(w, "\nProduct Information\n===================")?;
    match c.active() {
        Some(m) => writeln!(w, "UDI: {}", m.udi.udi())?,
        None => writeln!(w, "UDI: <none>")?,
    }
    writeln!(w, "\nHA UDI List:")?;
    for m in c.members.iter() {
        writeln!(w, "    {}:{}", role_label(m.role), m.udi.udi())?;
    }

    writeln!(w, "\nAgent Version\n=============")?;
    writeln!(w, "Smart Agent for Licensing: slup {AGENT_VERSION}")?;

    writeln!(w, "\nUpcoming Scheduled Jobs\n=======================")?;
    writeln!(
        w,
        "Send Utility RUM reports: {}",
        When(Some(e.next_report_time()))
    )?;
    writeln!(w, "Next engine deadline: {}", When(e.poll_timeout()))?;
    writeln!(
        w,
        "Request in flight: {}",
        if e.in_flight() { "yes" } else { "no" }
    )?;
    writeln!(w)?;

    e.stats().render(w, Zone::UTC)?;

    usage_report_summary(e, w)?;

    writeln!(w, "\nTrust Data\n==========")?;
    let installed = e.trust().codes().count();
    if installed > 0 {
        writeln!(w, "Overall Trust: INSTALLED ({installed})")?;
    } else {
        writeln!(w, "Overall Trust: No ID")?;
    }
    match e.trust().instance() {
        Some(id) => writeln!(w, "Product Instance: {}", id.as_str())?,
        None => writeln!(w, "Product Instance: <none>")?,
    }
    for m in c.members.iter() {
        writeln!(w, "  {}: {}", role_label(m.role), m.udi.udi())?;
        match e.trust().codes().find(|code| code.udi == m.udi) {
            Some(code) => writeln!(
                w,
                "    INSTALLED on {}, TrustId:{}, issued {}",
                fmt_status(code.installed_at),
                code.trust_id,
                fmt_status(code.issued_at)
            )?,
            None => writeln!(w, "    NOT INSTALLED")?,
        }
    }

    writeln!(w, "\nEvent Log\n=========")?;
    e.event_log().render(w)?;

    let i = &c.intervals;
    writeln!(w, "\nOther Info\n==========")?;
    writeln!(w, "Software ID: {}", c.software_tag)?;
    writeln!(w, "Software Version: {}", c.software_version)?;
    writeln!(w, "Message Version: {MESSAGE_VERSION}")?;
    writeln!(w, "Locale: {LOCALE}")?;
    w.write_str("agent.capabilities:")?;
    for (n, cap) in CAPABILITIES.iter().enumerate() {
        w.write_str(if n == 0 { " " } else { ", " })?;
        w.write_str(cap)?;
    }
    writeln!(w)?;
    writeln!(w, "Transport: {}", transport_label(c.transport))?;
    writeln!(w, "Report interval: {}", Interval(u64::from(i.report_s)))?;
    writeln!(
        w,
        "Sample interval: {}",
        Interval(u64::from(SAMPLE_INTERVAL_S))
    )?;
    writeln!(
        w,
        "Poll retry interval: {}",
        Interval(u64::from(i.poll_retry_s))
    )?;
    writeln!(
        w,
        "Trust first retry interval: {}",
        Interval(u64::from(i.trust_first_retry_s))
    )?;
    writeln!(
        w,
        "Communication retry interval: {}",
        Interval(u64::from(i.comm_retry_s))
    )?;
    if i.max_clock_skew_ms.is_multiple_of(1000) {
        writeln!(
            w,
            "Maximum clock skew: {}",
            Interval(i.max_clock_skew_ms / 1000)
        )?;
    } else {
        writeln!(w, "Maximum clock skew: {} ms", i.max_clock_skew_ms)?;
    }
    writeln!(
        w,
        "Reporting warning: {}",
        Interval(u64::from(i.reporting_warning_days).saturating_mul(86_400))
    )
}

/// The `Usage Report Summary:` block of tech-support (research §2.5).
fn usage_report_summary<K, R, const M: usize, W>(e: &Engine<K, R, M>, w: &mut W) -> fmt::Result
where
    K: KeyProvider,
    R: RngCore + CryptoRng,
    W: Write + ?Sized,
{
    let (mut closed, mut pending, mut rejected) = (0usize, 0usize, 0usize);
    for r in e.reports().iter() {
        match r.state {
            ReportState::Closed => closed = closed.saturating_add(1),
            ReportState::Pending => pending = pending.saturating_add(1),
            ReportState::Rejected => rejected = rejected.saturating_add(1),
        }
    }
    let collecting = e.usage().tags().iter().filter(|t| t.open.is_some()).count();
    let stored = e.reports().len();
    let log = e.event_log();
    let mut acked: u64 = 0;
    for ev in log.iter() {
        if let EventKind::UsageAckReceived { acknowledged, .. } = ev.kind {
            acked = acked.saturating_add(u64::from(acknowledged));
        }
    }
    let at_least = if log.overwritten() > 0 { ">=" } else { "" };
    let total = acked
        .saturating_add(stored as u64)
        .saturating_add(collecting as u64);
    writeln!(w, "\nUsage Report Summary:\n=====================")?;
    writeln!(w, "Total: {at_least}{total},  Purged: {at_least}{acked}")?;
    writeln!(
        w,
        "Total Acknowledged Received: {at_least}{acked},  Waiting for Ack: {pending}"
    )?;
    writeln!(
        w,
        "Available to Report: {closed}  Collecting Data: {collecting}"
    )?;
    writeln!(w, "In Storage: {stored},  Rejected: {rejected}")?;
    let module = if stored >= DEFAULT_REPORTS {
        "Full"
    } else {
        "Ready"
    };
    writeln!(w, "Report Module Status: {module}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::String;

    fn text(f: impl FnOnce(&mut String) -> fmt::Result) -> String {
        let mut s = String::new();
        f(&mut s).unwrap();
        s
    }

    #[test]
    fn license_names_and_versions_come_from_the_tag() {
        let tag = "regid.2017-08.com.cisco.AIR-DNA-A,1.0_b6308627-3ab0-4a11-a3d9-586911a0d790";
        assert_eq!(license_name(tag), "AIR-DNA-A");
        assert_eq!(license_version(tag), "1.0");
        assert_eq!(
            license_name("regid.2021-05.com.cisco.C9K_HSEC,2.1_90fd"),
            "C9K_HSEC"
        );
        assert_eq!(
            license_version("regid.2021-05.com.cisco.C9K_HSEC,2.1_90fd"),
            "2.1"
        );
        assert_eq!(license_name("CUBE_T_STD"), "CUBE_T_STD");
        assert_eq!(license_version("CUBE_T_STD"), "1.0");
        assert_eq!(license_name("regid.x."), "regid.x.");
        assert_eq!(license_version("a,_b"), "1.0");
    }

    #[test]
    fn license_rows_follow_the_device_columns() {
        // The research §3.4 sample, row for row.
        let rows = text(|w| {
            license_row(w, "network-advantage", "C9300-24 Network Advantage", 2)?;
            license_row(w, "hseck9", "DNA_HSEC", 1)?;
            license_row(w, "a-license-name-far-too-long-for-it", "T", 0)
        });
        assert_eq!(
            rows,
            "  network-advantage       (C9300-24 Network Advan...)       2 IN USE\n\
             \x20 hseck9                  (DNA_HSEC)                        1 IN USE\n\
             \x20 a-license-name-far-t... (T)                               0 NOT IN USE\n"
        );
    }

    #[test]
    fn intervals_use_the_largest_whole_unit() {
        let cases = [
            (0, "0 seconds"),
            (1, "1 second"),
            (61, "61 seconds"),
            (300, "5 minutes"),
            (3600, "1 hour"),
            (28_800, "8 hours"),
            (86_400, "1 day"),
            (30 * 86_400, "30 days"),
            (90_000, "25 hours"),
        ];
        for (secs, want) in cases {
            assert_eq!(text(|w| write!(w, "{}", Interval(secs))), want);
        }
        assert_eq!(text(|w| write!(w, "{}", Hms(900))), "00:15:00");
        assert_eq!(text(|w| write!(w, "{}", Hms(90_061))), "25:01:01");
    }

    #[test]
    fn network_text_cannot_break_the_layout() {
        assert_eq!(
            text(|w| write!(w, "{}", Esc("Lab\n\x1b[31mVA\u{85}"))),
            "Lab\\x0a\\x1b[31mVA\\u{0085}"
        );
        assert_eq!(text(|w| write!(w, "{}", Esc(""))), "<none>");
        // Cutting counts characters, not bytes.
        assert_eq!(text(|w| cell(w, "ééééé", 4, 6).map(|_| ())), "é...  ");
        assert_eq!(text(|w| write!(w, "{}", When(None))), "<none>");
        assert_eq!(text(|w| write!(w, "{}", Clock(None))), "<none>");
        assert_eq!(
            text(|w| write!(w, "{}", Clock(Some(Timestamp(1_630_049_895_237))))),
            "07:38:15.237 UTC Fri Aug 27 2021"
        );
    }
}
