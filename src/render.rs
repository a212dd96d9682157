//! How numbers are spelled: the Prometheus text format 0.0.4 and OpenMetrics 1.0.0, written
//! into one reused `String`; HELP and label-value escaping; number spelling; content types and
//! `Accept` negotiation. It renders a [`Snapshot`] and must not touch atomics, sockets or clocks.

use std::fmt::Write as _;

use crate::metrics::{Family, Kind, Snapshot};

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0.0, chosen when the client prefers it.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    #[must_use]
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Picks the format for an `Accept` header the way client_golang does: media ranges in
/// order of preference (q-value, then position), the first we can serve wins; text when
/// nothing matches or the header is absent. `q=0` means "not acceptable".
#[must_use]
pub fn negotiate(accept: Option<&str>) -> Format {
    let Some(accept) = accept else {
        return Format::Text;
    };
    let mut best: Option<(u16, Format)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let mut q = 1000;
        let mut version = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = parse_qvalue(value).unwrap_or(0),
                "version" => version = Some(value),
                _ => {}
            }
        }
        let format = if media.eq_ignore_ascii_case("application/openmetrics-text") {
            matches!(version, None | Some("1.0.0" | "0.0.1")).then_some(Format::OpenMetrics)
        } else if media.eq_ignore_ascii_case("text/plain") {
            matches!(version, None | Some("0.0.4")).then_some(Format::Text)
        } else if media == "*/*" || media.eq_ignore_ascii_case("text/*") {
            Some(Format::Text)
        } else if media.eq_ignore_ascii_case("application/*") {
            Some(Format::OpenMetrics)
        } else {
            None
        };
        if let Some(format) = format {
            if q > 0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
    }
    best.map_or(Format::Text, |(_, f)| f)
}

/// RFC 9110 qvalue, in thousandths: `0`, `0.5`, `1`, `1.000`; anything else is `None`.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// A sample value as the exposition spells it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Number {
    /// An exact integer, e.g. a counter.
    Int(u64),
    /// A float; `NaN`, `+Inf` and `-Inf` are spelled as both formats require.
    Float(f64),
    /// Integer nanoseconds written as exact decimal seconds (`1.25`, `0.000000001`).
    Nanos(u64),
}

/// Writes `v` in decimal without going through `core::fmt` (a third of render time).
fn write_u64(out: &mut String, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for &d in &buf[i..] {
        out.push(char::from(d));
    }
}

/// Writes `n` the way both formats accept, without allocating.
pub fn write_number(out: &mut String, n: Number) {
    match n {
        Number::Int(v) => write_u64(out, v),
        Number::Float(v) if v.is_nan() => out.push_str("NaN"),
        Number::Float(v) if v.is_infinite() => out.push_str(if v > 0.0 { "+Inf" } else { "-Inf" }),
        // Rust prints the shortest string that round-trips, never with an exponent.
        Number::Float(v) => {
            let _ = write!(out, "{v}");
        }
        Number::Nanos(v) => {
            let (secs, frac) = (v / 1_000_000_000, v % 1_000_000_000);
            write_u64(out, secs);
            if frac != 0 {
                // Nine digits with leading zeros, trailing zeros dropped.
                let mut digits = [b'0'; 9];
                let mut f = frac;
                for d in digits.iter_mut().rev() {
                    *d = b'0' + (f % 10) as u8;
                    f /= 10;
                }
                let len = 9 - digits.iter().rev().take_while(|&&d| d == b'0').count();
                out.push('.');
                for &d in &digits[..len] {
                    out.push(char::from(d));
                }
            }
        }
    }
}

/// HELP text escaping. Text 0.0.4 escapes `\` and newline; OpenMetrics also escapes `"`.
pub fn write_escaped_help(out: &mut String, help: &str, format: Format) {
    write_escaped(out, help, format == Format::OpenMetrics);
}

/// Label-value escaping, the same in both formats: `\`, `"` and newline.
pub fn write_escaped_label_value(out: &mut String, value: &str) {
    write_escaped(out, value, true);
}

/// Escapes `\` and newline, and `"` if `quote`; text that needs none is copied whole.
fn write_escaped(out: &mut String, text: &str, quote: bool) {
    let special = |b: u8| b == b'\\' || b == b'\n' || (quote && b == b'"');
    let mut rest = text;
    while let Some(i) = rest.bytes().position(special) {
        out.push_str(&rest[..i]);
        out.push_str(match rest.as_bytes()[i] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            _ => "\\\"",
        });
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
}

/// Renders a snapshot into `out` (cleared first). The buffer is meant to be reused: once it
/// has grown to the payload's size, rendering allocates nothing.
pub fn render(snapshot: &Snapshot, format: Format, out: &mut String) {
    out.clear();
    let mut e = Encoder { out, format };
    snapshot.encode(&mut e);
    if format == Format::OpenMetrics {
        e.out.push_str("# EOF\n");
    }
}

/// Writes families sample by sample; knows the syntax of both formats, nothing of what the
/// numbers mean. Each method writes one whole family: HELP, TYPE, then its samples.
pub struct Encoder<'a> {
    out: &'a mut String,
    format: Format,
}

impl Encoder<'_> {
    /// The family name as HELP/TYPE lines spell it: OpenMetrics drops the `_total` of
    /// counters and the `_info` of info families.
    fn family_name(&self, f: &Family) -> &'static str {
        if self.format == Format::OpenMetrics {
            let suffix = match f.kind {
                Kind::Counter => "_total",
                Kind::Info => "_info",
                Kind::Gauge | Kind::Histogram => "",
            };
            f.name.strip_suffix(suffix).unwrap_or(f.name)
        } else {
            f.name
        }
    }

    fn header(&mut self, f: &Family) {
        let name = self.family_name(f);
        let kind = match (f.kind, self.format) {
            (Kind::Counter, _) => "counter",
            (Kind::Gauge, _) | (Kind::Info, Format::Text) => "gauge",
            (Kind::Histogram, _) => "histogram",
            (Kind::Info, Format::OpenMetrics) => "info",
        };
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        // Family HELP texts need no escaping (a build error otherwise, see
        // `metrics::family`), so they are copied; `write_escaped_help` is for any other.
        self.out.push_str(f.help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    fn sample(&mut self, name: &str, suffix: &str, labels: &[(&str, &str)], value: Number) {
        self.out.push_str(name);
        self.out.push_str(suffix);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (key, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(key);
                self.out.push_str("=\"");
                write_escaped_label_value(self.out, value);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        write_number(self.out, value);
        self.out.push('\n');
    }

    /// An unlabelled integer counter.
    pub fn counter(&mut self, f: &Family, value: u64) {
        self.counter_number(f, Number::Int(value));
    }

    /// An unlabelled counter with any number spelling (e.g. CPU seconds).
    pub fn counter_number(&mut self, f: &Family, value: Number) {
        self.header(f);
        self.sample(f.name, "", &[], value);
    }

    /// An unlabelled gauge.
    pub fn gauge(&mut self, f: &Family, value: Number) {
        self.header(f);
        self.sample(f.name, "", &[], value);
    }

    /// A counter family with one label, one sample per `(label value, count)`.
    pub fn labeled_counters<'v>(
        &mut self,
        f: &Family,
        label: &str,
        values: impl IntoIterator<Item = (&'v str, u64)>,
    ) {
        self.header(f);
        for (value, count) in values {
            self.sample(f.name, "", &[(label, value)], Number::Int(count));
        }
    }

    /// An info family: one sample with value 1.
    pub fn info(&mut self, f: &Family, labels: &[(&str, &str)]) {
        self.header(f);
        self.sample(f.name, "", labels, Number::Int(1));
    }

    /// A histogram: `cumulative` has one count per bound plus the `+Inf` bucket last, which
    /// is also `_count`.
    pub fn histogram(
        &mut self,
        f: &Family,
        bounds: &[(u64, &str)],
        cumulative: &[u64],
        sum: Number,
    ) {
        self.header(f);
        let les = bounds.iter().map(|&(_, le)| le).chain(["+Inf"]);
        for (le, &count) in les.zip(cumulative) {
            self.sample(f.name, "_bucket", &[("le", le)], Number::Int(count));
        }
        self.sample(f.name, "_sum", &[], sum);
        let count = cumulative.last().copied().unwrap_or(0);
        self.sample(f.name, "_count", &[], Number::Int(count));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        for (n, want) in [
            (Number::Int(0), "0"),
            (Number::Int(u64::MAX), "18446744073709551615"),
            (Number::Int(7), "7"),
            (Number::Int(10), "10"),
            (Number::Nanos(1_000_000_010), "1.00000001"),
            (Number::Nanos(100_000_000), "0.1"),
            (Number::Float(f64::NAN), "NaN"),
            (Number::Float(f64::INFINITY), "+Inf"),
            (Number::Float(f64::NEG_INFINITY), "-Inf"),
            (Number::Float(0.1), "0.1"),
            (Number::Float(-2.5), "-2.5"),
            (Number::Float(1.0), "1"),
            (Number::Float(1e-7), "0.0000001"),
            (Number::Float(1_700_000_000.25), "1700000000.25"),
            (Number::Nanos(0), "0"),
            (Number::Nanos(1), "0.000000001"),
            (Number::Nanos(250_000_000), "0.25"),
            (Number::Nanos(1_000_000_000), "1"),
            (Number::Nanos(1_795_757_095_123_000_000), "1795757095.123"),
            (Number::Nanos(u64::MAX), "18446744073.709551615"),
        ] {
            let mut s = String::new();
            write_number(&mut s, n);
            assert_eq!(s, want, "{n:?}");
        }
    }

    #[test]
    fn escaping() {
        for (input, help_text, help_om, label) in [
            ("plain", "plain", "plain", "plain"),
            ("a\\b", "a\\\\b", "a\\\\b", "a\\\\b"),
            ("a\"b", "a\"b", "a\\\"b", "a\\\"b"),
            ("a\nb", "a\\nb", "a\\nb", "a\\nb"),
            ("\\n", "\\\\n", "\\\\n", "\\\\n"),
            ("ünï", "ünï", "ünï", "ünï"),
        ] {
            let mut s = String::new();
            write_escaped_help(&mut s, input, Format::Text);
            assert_eq!(s, help_text, "help text {input:?}");
            s.clear();
            write_escaped_help(&mut s, input, Format::OpenMetrics);
            assert_eq!(s, help_om, "help om {input:?}");
            s.clear();
            write_escaped_label_value(&mut s, input);
            assert_eq!(s, label, "label {input:?}");
        }
    }

    #[test]
    fn negotiation() {
        use Format::{OpenMetrics as Om, Text};
        for (accept, want) in [
            (None, Text),
            (Some(""), Text),
            (Some("*/*"), Text),
            (Some("text/plain"), Text),
            (Some("application/openmetrics-text"), Om),
            (Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"), Om),
            (Some("application/openmetrics-text; version=0.0.1"), Om),
            (Some("application/openmetrics-text;version=2.0.0"), Text),
            (Some("application/openmetrics-text;q=0"), Text),
            (Some("text/plain;q=0.5, application/openmetrics-text;q=0.9"), Om),
            (Some("application/openmetrics-text;q=0.4, text/plain;q=0.5"), Text),
            (Some("text/plain, application/openmetrics-text"), Text),
            (Some("application/openmetrics-text, text/plain"), Om),
            (Some("APPLICATION/OpenMetrics-Text"), Om),
            (Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=1.0.0;q=0.7"), Om),
            (Some("application/json"), Text),
            (Some("application/*"), Om),
            (Some("application/openmetrics-text;q=abc"), Text),
            (Some("application/openmetrics-text;q=1.5"), Text),
            (Some(";;;,,,=;q="), Text),
        ] {
            assert_eq!(negotiate(accept), want, "{accept:?}");
        }
    }

    #[test]
    fn qvalues() {
        for (s, want) in [
            ("1", Some(1000)),
            ("1.000", Some(1000)),
            ("0", Some(0)),
            ("0.5", Some(500)),
            ("0.75", Some(750)),
            ("0.001", Some(1)),
            ("0.0001", None),
            ("1.5", None),
            ("", None),
            ("-0", None),
            ("0.x", None),
        ] {
            assert_eq!(parse_qvalue(s), want, "{s:?}");
        }
    }
}
