//! Civil time from Unix milliseconds, and the date layouts of the device outputs.
//!
//! No clock, no time-zone database: the caller passes a [`Timestamp`] and, where a layout shows
//! a zone, a [`Zone`] (a label and a fixed offset; [`Zone::UTC`] by default). The calendar is the
//! proleptic Gregorian one, computed with Howard Hinnant's `days_from_civil` /
//! `civil_from_days` algorithms in plain integer arithmetic, valid over the whole `u64`
//! millisecond range (up to year 584 556 019).
//!
//! | function | layout | used by |
//! |---|---|---|
//! | [`fmt_syslog`] | `Aug 22 12:13:08.425` (day space-padded: `Sep  1`) | syslog lines, [`EventLog`](super::event::EventLog) |
//! | [`fmt_history`] | `Aug 23 10:18:08 2021 UTC` (day zero-padded: `Sep 01`) | `show license history message`, tech-support |
//! | [`fmt_status`] | `Aug 30 18:45:53 2023 UTC` | `show license status` ("Installed On") |
//! | [`fmt_clock`] | `07:38:15.237 UTC Fri Aug 27 2021` (day unpadded) | `show license air entities summary` |
//!
//! The paddings follow the real outputs: IOS syslog stamps read `*Sep  1 11:04:51.711`, the
//! licensing agent prints `Sep 01 11:04:51 2023 PDT`, and `show clock` prints
//! `11:04:51.711 PDT Fri Sep 1 2023`.
//!
//! ```
//! use slup_core::diag::time::{fmt_clock, fmt_history, fmt_syslog, Zone};
//! use slup_core::types::Timestamp;
//!
//! let t = Timestamp(1_629_713_888_600);
//! let mut s = heapless::String::<64>::new();
//! core::fmt::write(&mut s, format_args!("{}", fmt_syslog(t))).unwrap();
//! assert_eq!(s.as_str(), "Aug 23 10:18:08.600");
//! s.clear();
//! core::fmt::write(&mut s, format_args!("{}", fmt_history(t, Zone::UTC))).unwrap();
//! assert_eq!(s.as_str(), "Aug 23 10:18:08 2021 UTC");
//! s.clear();
//! core::fmt::write(&mut s, format_args!("{}", fmt_clock(t))).unwrap();
//! assert_eq!(s.as_str(), "10:18:08.600 UTC Mon Aug 23 2021");
//! ```

use core::fmt;

use crate::types::Timestamp;

/// Milliseconds in a day.
pub const MS_PER_DAY: u64 = 86_400_000;

/// Largest `|days|` [`civil_from_days`] accepts: 2⁴⁰ days, about three billion years either
/// side of 1970, beyond any `u64` millisecond timestamp (2.1·10¹¹ days).
pub const MAX_ABS_DAYS: i64 = 1 << 40;

/// Largest `|offset|` of a [`Zone`], in minutes: 18 hours, as in ISO 8601 practice.
pub const MAX_OFFSET_MINUTES: i16 = 18 * 60;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const WEEKDAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];

/// A time zone as the outputs show it: a label printed after the time, and the fixed offset
/// from UTC that the printed time includes.
///
/// slup has no zone database; a device configured with `clock timezone PDT -7` passes
/// `Zone::fixed("PDT", -7 * 60)`. The label is printed verbatim.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Zone<'a> {
    label: &'a str,
    offset_minutes: i16,
}

impl Zone<'static> {
    /// Coordinated Universal Time, labelled `UTC`.
    pub const UTC: Zone<'static> = Zone {
        label: "UTC",
        offset_minutes: 0,
    };
}

impl<'a> Zone<'a> {
    /// A zone `offset_minutes` east of UTC (negative west), or `None` if the offset exceeds
    /// [`MAX_OFFSET_MINUTES`].
    pub const fn fixed(label: &'a str, offset_minutes: i16) -> Option<Self> {
        if offset_minutes > MAX_OFFSET_MINUTES || offset_minutes < -MAX_OFFSET_MINUTES {
            return None;
        }
        Some(Zone {
            label,
            offset_minutes,
        })
    }

    /// The label printed after the time.
    pub const fn label(&self) -> &'a str {
        self.label
    }

    /// Offset from UTC in minutes, east positive.
    pub const fn offset_minutes(&self) -> i16 {
        self.offset_minutes
    }
}

impl Default for Zone<'static> {
    fn default() -> Self {
        Zone::UTC
    }
}

/// A calendar date and time of day (proleptic Gregorian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Civil {
    /// Year, e.g. 2021 (negative years are astronomical: 0 is 1 BC).
    pub year: i64,
    /// Month, 1–12.
    pub month: u8,
    /// Day of the month, 1–31.
    pub day: u8,
    /// Hour, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// Second, 0–59 (Unix time has no leap seconds).
    pub second: u8,
    /// Millisecond, 0–999.
    pub millis: u16,
    /// Day of the week, 0 = Sunday … 6 = Saturday.
    pub weekday: u8,
}

impl Civil {
    /// The civil time of `ts` in UTC.
    pub const fn from_timestamp(ts: Timestamp) -> Civil {
        Civil::in_zone(ts, Zone::UTC)
    }

    /// The civil time of `ts` in `zone` (UTC shifted by the zone's offset).
    pub const fn in_zone(ts: Timestamp, zone: Zone<'_>) -> Civil {
        let ms = ts.millis();
        // Both fit an i64: days ≤ 2.2·10¹¹, and the time of day < 8.64·10⁷.
        let mut days = (ms / MS_PER_DAY) as i64;
        let mut of_day = (ms % MS_PER_DAY) as i64 + zone.offset_minutes as i64 * 60_000;
        // |offset| < one day, so one step either way normalises.
        if of_day < 0 {
            of_day += MS_PER_DAY as i64;
            days -= 1;
        } else if of_day >= MS_PER_DAY as i64 {
            of_day -= MS_PER_DAY as i64;
            days += 1;
        }
        let (year, month, day) = civil_from_days_unchecked(days);
        Civil {
            year,
            month,
            day,
            hour: (of_day / 3_600_000) as u8,
            minute: (of_day / 60_000 % 60) as u8,
            second: (of_day / 1000 % 60) as u8,
            millis: (of_day % 1000) as u16,
            // 1970-01-01 was a Thursday.
            weekday: (days + 4).rem_euclid(7) as u8,
        }
    }

    /// The UTC timestamp of this civil time (its `weekday` is ignored), or `None` if a field is
    /// out of range, the date does not exist, or it lies before 1970 or beyond `u64`
    /// milliseconds.
    pub fn to_timestamp(&self) -> Option<Timestamp> {
        if self.hour > 23 || self.minute > 59 || self.second > 59 || self.millis > 999 {
            return None;
        }
        let year = i32::try_from(self.year).ok()?;
        let days = u64::try_from(days_from_civil(year, self.month, self.day)?).ok()?;
        let of_day = u64::from(self.hour) * 3_600_000
            + u64::from(self.minute) * 60_000
            + u64::from(self.second) * 1000
            + u64::from(self.millis);
        days.checked_mul(MS_PER_DAY)?
            .checked_add(of_day)
            .map(Timestamp)
    }

    /// The month's three-letter English abbreviation, e.g. `"Aug"`.
    pub fn month_name(&self) -> &'static str {
        MONTHS
            .get(usize::from(self.month).wrapping_sub(1))
            .copied()
            .unwrap_or("???")
    }

    /// The weekday's three-letter English abbreviation, e.g. `"Fri"`.
    pub fn weekday_name(&self) -> &'static str {
        WEEKDAYS
            .get(usize::from(self.weekday))
            .copied()
            .unwrap_or("???")
    }
}

/// `true` for Gregorian leap years: divisible by 4, except centuries not divisible by 400.
pub const fn is_leap_year(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

/// Days in `month` (1–12) of `year`, or 0 for a month out of range.
pub const fn days_in_month(year: i64, month: u8) -> u8 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap_year(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days from 1970-01-01 to the given date (negative before), or `None` if the date does not
/// exist.
pub const fn days_from_civil(year: i32, month: u8, day: u8) -> Option<i64> {
    if day == 0 || day > days_in_month(year as i64, month) {
        return None;
    }
    // March-based year, so the leap day is the last day of the year.
    let y = year as i64 - if month <= 2 { 1 } else { 0 };
    let era = (if y >= 0 { y } else { y - 399 }) / 400;
    let yoe = y - era * 400; // [0, 399]
    let mp = (month as i64 + 9) % 12; // March = 0 … February = 11
    let doy = (153 * mp + 2) / 5 + day as i64 - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    Some(era * 146_097 + doe - 719_468)
}

/// The date (year, month 1–12, day 1–31) `days` after 1970-01-01, or `None` if `|days|`
/// exceeds [`MAX_ABS_DAYS`].
pub const fn civil_from_days(days: i64) -> Option<(i64, u8, u8)> {
    if days > MAX_ABS_DAYS || days < -MAX_ABS_DAYS {
        return None;
    }
    Some(civil_from_days_unchecked(days))
}

/// [`civil_from_days`] for `|days| ≤ MAX_ABS_DAYS`, where no step can overflow.
const fn civil_from_days_unchecked(days: i64) -> (i64, u8, u8) {
    let z = days + 719_468; // days since 0000-03-01
    let era = (if z >= 0 { z } else { z - 146_096 }) / 146_097;
    let doe = z - era * 146_097; // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11]
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = (if mp < 10 { mp + 3 } else { mp - 9 }) as u8;
    let year = yoe + era * 400 + if month <= 2 { 1 } else { 0 };
    (year, month, day)
}

/// A syslog time stamp, `Aug 22 12:13:08.425` (UTC, day space-padded, no year, no zone).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SyslogTime(pub Timestamp);

impl fmt::Display for SyslogTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Civil::from_timestamp(self.0);
        write!(
            f,
            "{} {:2} {:02}:{:02}:{:02}.{:03}",
            c.month_name(),
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.millis
        )
    }
}

/// A date and time with year and zone label, `Aug 23 10:18:08 2021 UTC` (day zero-padded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DateTime<'a> {
    /// The instant.
    pub ts: Timestamp,
    /// The zone it is shown in.
    pub zone: Zone<'a>,
}

impl fmt::Display for DateTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Civil::in_zone(self.ts, self.zone);
        write!(
            f,
            "{} {:02} {:02}:{:02}:{:02} {} {}",
            c.month_name(),
            c.day,
            c.hour,
            c.minute,
            c.second,
            c.year,
            self.zone.label
        )
    }
}

/// A `show clock` style stamp, `07:38:15.237 UTC Fri Aug 27 2021` (day unpadded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockTime<'a> {
    /// The instant.
    pub ts: Timestamp,
    /// The zone it is shown in.
    pub zone: Zone<'a>,
}

impl fmt::Display for ClockTime<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = Civil::in_zone(self.ts, self.zone);
        write!(
            f,
            "{:02}:{:02}:{:02}.{:03} {} {} {} {} {}",
            c.hour,
            c.minute,
            c.second,
            c.millis,
            self.zone.label,
            c.weekday_name(),
            c.month_name(),
            c.day,
            c.year
        )
    }
}

/// `Aug 22 12:13:08.425`: the syslog layout, UTC.
pub const fn fmt_syslog(ts: Timestamp) -> SyslogTime {
    SyslogTime(ts)
}

/// `Aug 23 10:18:08 2021 UTC`: the message history (and tech-support) layout, in `zone`.
pub const fn fmt_history(ts: Timestamp, zone: Zone<'_>) -> DateTime<'_> {
    DateTime { ts, zone }
}

/// `Aug 30 18:45:53 2023 UTC`: the `show license status` layout ("Installed On …"), UTC.
pub const fn fmt_status(ts: Timestamp) -> DateTime<'static> {
    DateTime {
        ts,
        zone: Zone::UTC,
    }
}

/// `07:38:15.237 UTC Fri Aug 27 2021`: the `show license air entities summary` layout, UTC.
pub const fn fmt_clock(ts: Timestamp) -> ClockTime<'static> {
    ClockTime {
        ts,
        zone: Zone::UTC,
    }
}

/// [`fmt_clock`] in `zone`.
pub const fn fmt_clock_in(ts: Timestamp, zone: Zone<'_>) -> ClockTime<'_> {
    ClockTime { ts, zone }
}
