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

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Appends the IMF-fixdate of `d` since the epoch (`Thu, 03 Dec 2026 10:31:07 GMT`): the
/// form of an HTTP `Date` header (RFC 9110, 5.6.7).
pub(crate) fn write_http_date(out: &mut String, d: Duration) {
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let secs = d.as_secs();
    let days = secs / 86_400;
    let (y, m, day) = civil_from_days(i64::try_from(days).unwrap_or(i64::MAX / 2));
    let year = u64::try_from(y).unwrap_or(0);
    let rem = secs % 86_400;
    // Per request, so without `core::fmt`: two digits at a time.
    let two = |out: &mut String, v: u64| {
        out.push(char::from(b'0' + (v / 10 % 10) as u8));
        out.push(char::from(b'0' + (v % 10) as u8));
    };
    // 1970-01-01 was a Thursday; `m` is 1 to 12.
    out.push_str(WEEKDAYS[(days % 7) as usize]);
    out.push_str(", ");
    two(out, u64::from(day));
    out.push(' ');
    out.push_str(MONTHS[(m as usize + 11) % 12]);
    out.push(' ');
    two(out, year / 100);
    two(out, year);
    out.push(' ');
    two(out, rem / 3600);
    out.push(':');
    two(out, rem % 3600 / 60);
    out.push(':');
    two(out, rem % 60);
    out.push_str(" GMT");
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

    #[test]
    fn http_dates() {
        for (secs, want) in [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            // RFC 9110's own example.
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_796_293_867, "Thu, 03 Dec 2026 10:31:07 GMT"),
            (4_107_542_399, "Sun, 28 Feb 2100 23:59:59 GMT"),
        ] {
            let mut s = String::new();
            write_http_date(&mut s, Duration::from_secs(secs));
            assert_eq!(s, want, "{secs}");
        }
    }
}
