//! The wall clock, read in one place: the unix time that the exposition's timestamps, the
//! log's lines and a source's anchor all share. Everything else in the crate measures with
//! `Instant`, which a clock step cannot move.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Time since the unix epoch now; zero for a clock set before 1970 (a board without an RTC
/// at boot), which no timestamp we write can mean.
#[must_use]
pub(crate) fn unix_time() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// [`unix_time`] in nanoseconds, saturating (in the year 2554).
#[must_use]
pub(crate) fn unix_nanos() -> u64 {
    u64::try_from(unix_time().as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nanos_agree_with_the_duration() {
        let before = unix_time();
        let nanos = unix_nanos();
        let after = unix_time();
        assert!(before.as_nanos() <= u128::from(nanos) && u128::from(nanos) <= after.as_nanos());
        // Well after 2020, well before the saturation.
        assert!(nanos > 1_577_836_800 * 1_000_000_000 && nanos < u64::MAX);
    }
}
