//! Durations: the one parser and the one formatter. The grammar is Go's `time.Duration`
//! (`250ms`, `1.5s`, `1m30s`, units `ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`, `h`); what differs
//! between its users is a parameter (`Grammar`): whether a bare number stands for a unit
//! (a log line's `took=0.231`) and the longest duration accepted. Flags read durations through
//! [`parse_duration`], which adds the sign and the wording of the error; the log source's
//! templates call `nanos` on the bytes `{duration}` captured. [`format_duration`] writes
//! what [`parse_duration`] reads back. Pure: no clocks.

use std::fmt::Write as _;
use std::time::Duration;

const SHAPE: &str = "expected a duration like 250ms or 1s";

/// What a user of [`nanos`] accepts beyond the common grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Grammar {
    /// Nanoseconds a bare number standing alone is worth (`0.231` with seconds), or `None`
    /// when every number needs its unit (`0` alone is always zero, as in Go).
    pub(crate) bare: Option<u64>,
    /// The longest duration accepted, in nanoseconds.
    pub(crate) max_nanos: u64,
}

/// Why a text is not a duration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Invalid<'a> {
    /// Empty, or a unit without its number.
    Shape,
    /// A number without its unit where the grammar needs one.
    MissingUnit,
    /// A unit that is not one of Go's.
    UnknownUnit(&'a [u8]),
    /// Past [`Grammar::max_nanos`].
    TooLong,
}

/// The grammar of a flag: every number has its unit, up to 2^64 - 1 nanoseconds.
const FLAG: Grammar = Grammar {
    bare: None,
    max_nanos: u64::MAX,
};

/// Parses an unsigned duration into nanoseconds: `0`, or one or more `<number><unit>` with
/// an optional fraction (`1.5s`, `.5s`, `1.s`, `1m30s`). Fraction digits past the 19th are
/// read and ignored: they change the result by well under a nanosecond.
pub(crate) fn nanos(text: &[u8], grammar: Grammar) -> Result<u64, Invalid<'_>> {
    if text == b"0" {
        return Ok(0);
    }
    if text.is_empty() {
        return Err(Invalid::Shape);
    }
    let mut total: u64 = 0;
    let mut rest = text;
    let mut first = true;
    while !rest.is_empty() {
        // Every split below is at an ASCII byte.
        let (whole, after) = rest.split_at(count_digits(rest));
        let (frac, after) = match after.strip_prefix(b".") {
            Some(f) => f.split_at(count_digits(f)),
            None => (&after[..0], after),
        };
        if whole.is_empty() && frac.is_empty() {
            return Err(Invalid::Shape);
        }
        let unit_len = after
            .iter()
            .take_while(|b| **b != b'.' && !b.is_ascii_digit())
            .count();
        let (unit, after) = after.split_at(unit_len);
        rest = after;
        let per: u128 = match unit {
            b"ns" => 1,
            // `µ` (micro sign) and `μ` (Greek mu), as Go accepts both.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            // A bare number only alone: "1m30" is a typo, not 1 minute and 30 units.
            b"" => match grammar.bare {
                Some(per) if first && rest.is_empty() => u128::from(per),
                _ => return Err(Invalid::MissingUnit),
            },
            other => return Err(Invalid::UnknownUnit(other)),
        };
        let whole = whole
            .iter()
            .try_fold(0u128, |n, b| {
                n.checked_mul(10)?.checked_add(u128::from(b - b'0'))
            })
            .and_then(|n| n.checked_mul(per))
            .ok_or(Invalid::TooLong)?;
        let (mut numerator, mut scale) = (0u128, 1u128);
        for b in frac.iter().take(19) {
            numerator = numerator * 10 + u128::from(b - b'0');
            scale *= 10;
        }
        let item = whole
            .checked_add(numerator * per / scale)
            .and_then(|n| u64::try_from(n).ok())
            .ok_or(Invalid::TooLong)?;
        total = total
            .checked_add(item)
            .filter(|t| *t <= grammar.max_nanos)
            .ok_or(Invalid::TooLong)?;
        first = false;
    }
    Ok(total)
}

fn count_digits(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_digit()).count()
}

/// Parses a flag's duration: `nanos` with every unit required, and a leading `-` understood
/// but refused (`+` is allowed). The error is a short reason that reads after
/// "invalid value …: ".
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let total = nanos(body.as_bytes(), FLAG).map_err(|why| match why {
        Invalid::Shape => SHAPE.to_owned(),
        Invalid::MissingUnit => format!("{SHAPE} (missing unit)"),
        Invalid::UnknownUnit(unit) => {
            format!("{SHAPE} (unknown unit {:?})", String::from_utf8_lossy(unit))
        }
        Invalid::TooLong => "too long (the limit is about 584 years)".to_owned(),
    })?;
    if negative && total > 0 {
        return Err("negative durations are not allowed".to_owned());
    }
    Ok(Duration::from_nanos(total))
}

/// Formats a duration the way Go's `time.Duration.String()` does, so that
/// [`parse_duration`] reads it back exactly: `0s`, `1.5µs`, `250ms`, `1.5s`, `1m30s`,
/// `2h0m0s`.
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let mut out = String::new();
    let nanos = d.as_nanos();
    if nanos == 0 {
        out.push_str("0s");
    } else if nanos < 1_000_000_000 {
        let (unit, scale, width) = match nanos {
            0..=999 => ("ns", 1, 0),
            1_000..=999_999 => ("µs", 1_000, 3),
            _ => ("ms", 1_000_000, 6),
        };
        push_decimal(&mut out, nanos / scale, nanos % scale, width);
        out.push_str(unit);
    } else {
        let secs = d.as_secs();
        let (hours, minutes) = (secs / 3600, secs / 60 % 60);
        if hours > 0 {
            let _ = write!(out, "{hours}h{minutes}m");
        } else if minutes > 0 {
            let _ = write!(out, "{minutes}m");
        }
        push_decimal(
            &mut out,
            u128::from(secs % 60),
            u128::from(d.subsec_nanos()),
            9,
        );
        out.push('s');
    }
    out
}

/// `whole`, then `.frac` as `width` digits without trailing zeros, if `frac` is not 0.
fn push_decimal(out: &mut String, whole: u128, frac: u128, width: usize) {
    let _ = write!(out, "{whole}");
    if frac > 0 {
        let digits = format!("{frac:0width$}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const NS: fn(u64) -> Duration = Duration::from_nanos;
    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn durations_parse() {
        #[rustfmt::skip]
        let cases: &[(&str, Result<Duration, &str>)] = &[
            ("0", Ok(Duration::ZERO)),
            ("-0", Ok(Duration::ZERO)),
            ("+0", Ok(Duration::ZERO)),
            ("0s", Ok(Duration::ZERO)),
            ("-0s", Ok(Duration::ZERO)),
            ("1ns", Ok(NS(1))),
            ("1us", Ok(NS(1_000))),
            ("1µs", Ok(NS(1_000))), // U+00B5 micro sign
            ("1μs", Ok(NS(1_000))), // U+03BC greek mu
            ("1.5ms", Ok(NS(1_500_000))),
            ("250ms", Ok(MS(250))),
            ("1s", Ok(S(1))),
            ("+1s", Ok(S(1))),
            ("1.5s", Ok(MS(1500))),
            (".5s", Ok(MS(500))),
            ("1.s", Ok(S(1))),
            ("1.5h", Ok(S(5400))),
            ("1s500ms", Ok(MS(1500))),
            ("1m30s", Ok(S(90))),
            ("2h45m", Ok(S(9900))),
            ("2h0m0s", Ok(S(7200))),
            ("1h1h", Ok(S(7200))),
            ("0.000000001s", Ok(NS(1))),
            ("0.0000000009s", Ok(Duration::ZERO)),
            ("1.0000000000000000000000001s", Ok(S(1))),
            ("18446744073709551615ns", Ok(NS(u64::MAX))),
            ("5124095h34m33.709551615s", Ok(NS(u64::MAX))),
            ("", Err("expected a duration like 250ms or 1s")),
            ("-", Err("expected a duration like 250ms or 1s")),
            ("+", Err("expected a duration like 250ms or 1s")),
            ("abc", Err("expected a duration like 250ms or 1s")),
            ("µs", Err("expected a duration like 250ms or 1s")),
            ("s", Err("expected a duration like 250ms or 1s")),
            (".s", Err("expected a duration like 250ms or 1s")),
            (" 1s", Err("expected a duration like 250ms or 1s")),
            ("--1s", Err("expected a duration like 250ms or 1s")),
            ("1", Err("(missing unit)")),
            ("10", Err("(missing unit)")),
            ("1s1", Err("(missing unit)")),
            ("1.5.5s", Err("(missing unit)")),
            ("1x", Err("(unknown unit \"x\")")),
            ("1 s", Err("(unknown unit \" s\")")),
            ("1S", Err("(unknown unit \"S\")")),
            ("1sec", Err("(unknown unit \"sec\")")),
            ("-1s", Err("negative durations are not allowed")),
            ("-1.5ms", Err("negative durations are not allowed")),
            ("99999999999h", Err("too long")),
            ("18446744073709551616ns", Err("too long")),
            ("5124095h34m33.709551616s", Err("too long")),
            ("18446744073709551615ns1ns", Err("too long")),
            ("99999999999999999999999999999999999999999s", Err("too long")),
        ];
        for (input, want) in cases {
            match (parse_duration(input), want) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{input:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "{input:?}: {got}"),
                (got, want) => panic!("{input:?}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn durations_format() {
        #[rustfmt::skip]
        let cases = [
            (Duration::ZERO, "0s"),
            (NS(1), "1ns"),
            (NS(999), "999ns"),
            (NS(1_000), "1µs"),
            (NS(1_500), "1.5µs"),
            (NS(1_000_001), "1.000001ms"),
            (NS(1_500_000), "1.5ms"),
            (MS(250), "250ms"),
            (NS(999_999_999), "999.999999ms"),
            (S(1), "1s"),
            (MS(1500), "1.5s"),
            (NS(1_000_000_001), "1.000000001s"),
            (S(60), "1m0s"),
            (S(90), "1m30s"),
            (S(3600), "1h0m0s"),
            (S(7200), "2h0m0s"),
            (S(9900), "2h45m0s"),
            (S(3661) + MS(500), "1h1m1.5s"),
            (NS(u64::MAX), "5124095h34m33.709551615s"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want, "{d:?}");
            assert_eq!(parse_duration(want), Ok(d), "{want} does not read back");
        }
    }

    /// The grammar's parameters: a bare number alone, and the limit.
    #[test]
    fn grammar_parameters() {
        let seconds = Grammar {
            bare: Some(1_000_000_000),
            max_nanos: 100_000_000_000,
        };
        #[rustfmt::skip]
        let cases: &[(&str, Result<u64, Invalid>)] = &[
            ("0.25", Ok(250_000_000)),
            ("2", Ok(2_000_000_000)),
            ("0", Ok(0)),
            ("1m40s", Ok(100_000_000_000)),
            ("1m40.000000001s", Err(Invalid::TooLong)),
            ("101", Err(Invalid::TooLong)),
            ("1m30", Err(Invalid::MissingUnit)),
            ("1.2.3", Err(Invalid::MissingUnit)),
            ("1x", Err(Invalid::UnknownUnit(b"x"))),
            (".", Err(Invalid::Shape)),
        ];
        for (text, want) in cases {
            assert_eq!(nanos(text.as_bytes(), seconds), *want, "{text:?}");
        }
        assert_eq!(nanos(b"2", FLAG), Err(Invalid::MissingUnit));
    }
}
