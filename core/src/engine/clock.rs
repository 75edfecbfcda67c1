//! The engine's view of time: a persisted high-water mark that never goes back, and detection of
//! the platform clock jumping backwards or forwards.
//!
//! The engine reads no clock; every call carries `now`. A platform clock can be set back (NTP
//! correction, an operator, a dead RTC battery) or leap forward (suspend, a late NTP sync). The
//! engine must neither crash nor corrupt its schedule when that happens, so it works on
//! *effective* time — the latest instant it has ever seen — and reports each jump once, with
//! its size, for the `SYSTEM_CLOCK_CHANGED` event and the RUM `clock_change_delta`.

use crate::types::Timestamp;

/// A backwards step smaller than this is jitter, not a clock change.
pub const DEFAULT_ROLLBACK_TOLERANCE_MS: u64 = 60_000;
/// Time arriving this much later than the engine's own next deadline counts as a forward jump.
pub const DEFAULT_FORWARD_TOLERANCE_MS: u64 = 60 * 60_000;

/// A clock change the monitor noticed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClockChange {
    /// The clock went back by this many milliseconds beyond tolerance.
    Rollback {
        /// How far back, in ms.
        delta_ms: u64,
    },
    /// The clock arrived this many milliseconds past the deadline the engine asked for.
    Forward {
        /// How far past the deadline, in ms.
        delta_ms: u64,
    },
}

impl ClockChange {
    /// The change in whole seconds, negative for a rollback (the RUM `clock_change_delta`).
    pub fn delta_secs(&self) -> i64 {
        match *self {
            ClockChange::Rollback { delta_ms } => 0i64.saturating_sub_unsigned(delta_ms / 1000),
            ClockChange::Forward { delta_ms } => i64::try_from(delta_ms / 1000).unwrap_or(i64::MAX),
        }
    }
}

/// Tracks effective time and detects clock changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockMonitor {
    high_water: Timestamp,
    rollback_tolerance_ms: u64,
    forward_tolerance_ms: u64,
}

impl ClockMonitor {
    /// A monitor that has seen nothing yet (or restored from a persisted high-water mark).
    pub const fn new(high_water: Timestamp) -> Self {
        ClockMonitor {
            high_water,
            rollback_tolerance_ms: DEFAULT_ROLLBACK_TOLERANCE_MS,
            forward_tolerance_ms: DEFAULT_FORWARD_TOLERANCE_MS,
        }
    }

    /// Sets the tolerances.
    pub const fn with_tolerances(mut self, rollback_ms: u64, forward_ms: u64) -> Self {
        self.rollback_tolerance_ms = rollback_ms;
        self.forward_tolerance_ms = forward_ms;
        self
    }

    /// The latest instant ever observed: persist it, and restore with [`ClockMonitor::new`].
    pub const fn high_water(&self) -> Timestamp {
        self.high_water
    }

    /// Observes `now`. `deadline` is the engine's own next deadline, if it had one: arriving
    /// much later than that means time leapt while nobody looked. Returns the effective time
    /// (never earlier than any time seen before) and the change, if any.
    pub fn observe(
        &mut self,
        now: Timestamp,
        deadline: Option<Timestamp>,
    ) -> (Timestamp, Option<ClockChange>) {
        let mut change = None;
        if now < self.high_water {
            let back = self.high_water.abs_diff(now);
            if back > self.rollback_tolerance_ms {
                change = Some(ClockChange::Rollback { delta_ms: back });
            }
        } else if let Some(d) = deadline {
            if now > d.add_millis(self.forward_tolerance_ms) {
                change = Some(ClockChange::Forward {
                    delta_ms: now.abs_diff(d),
                });
            }
        }
        if now > self.high_water {
            self.high_water = now;
        }
        (self.high_water, change)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: Timestamp = Timestamp(1_700_000_000_000);

    #[test]
    fn effective_time_never_goes_back() {
        let mut c = ClockMonitor::new(Timestamp(0));
        assert_eq!(c.observe(T0, None), (T0, None));
        let (eff, change) = c.observe(Timestamp(T0.0 - 3_600_000), None);
        assert_eq!(eff, T0);
        assert_eq!(
            change,
            Some(ClockChange::Rollback {
                delta_ms: 3_600_000
            })
        );
        assert_eq!(change.unwrap().delta_secs(), -3600);
        // Jitter within tolerance is silent.
        assert_eq!(c.observe(Timestamp(T0.0 - 1_000), None), (T0, None));
        // The clock catching up again moves effective time on.
        assert_eq!(c.observe(T0.add_millis(5), None), (T0.add_millis(5), None));
    }

    #[test]
    fn arriving_long_after_the_deadline_is_a_forward_jump() {
        let mut c = ClockMonitor::new(T0);
        let deadline = T0.add_millis(900_000);
        assert_eq!(c.observe(deadline.add_millis(10), Some(deadline)).1, None);
        let late = deadline.add_millis(DEFAULT_FORWARD_TOLERANCE_MS + 5_000);
        let (eff, change) = c.observe(late, Some(deadline));
        assert_eq!(eff, late);
        assert_eq!(
            change,
            Some(ClockChange::Forward {
                delta_ms: DEFAULT_FORWARD_TOLERANCE_MS + 5_000
            })
        );
    }

    #[test]
    fn restored_high_water_catches_a_rollback_across_reboot() {
        let mut c = ClockMonitor::new(T0);
        let (_, change) = c.observe(Timestamp(0), None);
        assert_eq!(change, Some(ClockChange::Rollback { delta_ms: T0.0 }));
        assert_eq!(c.high_water(), T0);
    }
}
