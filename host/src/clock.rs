//! The platform clock: Unix milliseconds from the system time, and sleeping until a deadline.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use slup_core::types::Timestamp;

/// What the driver needs from time: the current instant and a way to wait.
pub trait Clock {
    /// Now, Unix milliseconds.
    fn now(&self) -> Timestamp;
    /// Blocks for `d` (a test clock may just advance).
    fn sleep(&self, d: Duration);
}

/// The system clock. A clock set before 1970 reads as the epoch: the engine then sees a clock
/// change, which is what it is.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Timestamp(ms)
    }

    fn sleep(&self, d: Duration) {
        std::thread::sleep(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_time_is_after_2023_and_moves_forward() {
        let a = SystemClock.now();
        assert!(a.0 > 1_700_000_000_000, "{a:?}");
        SystemClock.sleep(Duration::from_millis(2));
        assert!(SystemClock.now() > a);
    }
}
