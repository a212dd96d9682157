//! How numbers are spelled: the exposition model (a `Family` of a `Kind`, samples of a
//! `Number`), the Prometheus text format 0.0.4 and OpenMetrics 1.0.0 written into one
//! reused `String`, label-value escaping (HELP texts are checked at compile time to need
//! none), content types and `Accept` negotiation. It renders anything that is an
//! [`Exposition`]; it knows nothing of the crate's metrics (no import from `metrics`) and must
//! not touch atomics, sockets or clocks.

use std::fmt::Write as _;

/// How a family is typed in the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Monotonic; `name` ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Cumulative buckets plus `_sum` and `_count`.
    Histogram,
    /// Constant 1 with informative labels; `name` ends in `_info` (a gauge in the text format).
    Info,
}

/// A metric family: its sample name, HELP text and kind, declared together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Family {
    /// The sample name as written in the text format (with `_total`/`_info` where the kind has one).
    name: &'static str,
    /// One sentence, free of `\`, `"` and newlines (checked at compile time by `family`).
    help: &'static str,
    /// The family's type.
    kind: Kind,
}

/// Declares a family. Evaluated at compile time: a HELP text that would need escaping (`\`,
/// `"` or a newline) is a build error, so the renderer can copy HELP texts as they are.
///
/// # Panics
///
/// At compile time, when `help` needs escaping.
#[must_use]
pub(crate) const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
    let bytes = help.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        assert!(
            !matches!(bytes[i], b'\\' | b'"' | b'\n'),
            "HELP texts must need no escaping"
        );
        i += 1;
    }
    Family { name, help, kind }
}

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4, the default.
    Text,
    /// OpenMetrics 1.0.0, chosen when the client prefers it.
    OpenMetrics,
}

/// The name-escaping scheme a scraper asked for (Prometheus 3's `escaping=` parameter). Our
/// metric and label names are all legacy-valid, so the body is the same under every scheme;
/// the answer only names the scheme back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// `allow-utf-8`: names as they are.
    AllowUtf8,
    /// `underscores`.
    Underscores,
    /// `dots`.
    Dots,
    /// `values`.
    Values,
}

impl Escaping {
    fn parse(s: &str) -> Option<Escaping> {
        Some(match s {
            "allow-utf-8" | "allow-utf8" => Escaping::AllowUtf8,
            "underscores" => Escaping::Underscores,
            "dots" => Escaping::Dots,
            "values" => Escaping::Values,
            _ => return None,
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Escaping::AllowUtf8 => "allow-utf-8",
            Escaping::Underscores => "underscores",
            Escaping::Dots => "dots",
            Escaping::Values => "values",
        }
    }
}

/// What a scrape is answered with: the format of the body, and the version and escaping
/// its `Content-Type` names, which are always ones the scraper asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The body's format.
    pub format: Format,
    /// The version named: `0.0.4` or `1.0.0` for text, `1.0.0` or `0.0.1` for OpenMetrics.
    /// Text 1.0.0 differs from 0.0.4 only in allowing UTF-8 names, which we never use, so
    /// the same body is valid in both.
    pub version: &'static str,
    /// The escaping scheme named back, when the scraper asked for one.
    pub escaping: Option<Escaping>,
}

impl Choice {
    /// The default answer: text 0.0.4.
    pub const TEXT: Choice = Choice {
        format: Format::Text,
        version: "0.0.4",
        escaping: None,
    };

    /// OpenMetrics 1.0.0 without an escaping parameter.
    pub const OPENMETRICS: Choice = Choice {
        format: Format::OpenMetrics,
        version: "1.0.0",
        escaping: None,
    };

    /// The `Content-Type` header value.
    #[must_use]
    pub fn content_type(self) -> String {
        let media = match self.format {
            Format::Text => "text/plain",
            Format::OpenMetrics => "application/openmetrics-text",
        };
        let mut out = format!("{media}; version={}; charset=utf-8", self.version);
        if let Some(e) = self.escaping {
            out.push_str("; escaping=");
            out.push_str(e.as_str());
        }
        out
    }
}

/// Picks the answer to an `Accept` header the way client_golang does: media ranges in order
/// of preference (q-value, then position), the first we can serve wins; text 0.0.4 when
/// nothing matches or the header is absent (never a 406: the exposition formats say text
/// 0.0.4 is the last resort). `q=0` means "not acceptable". Prometheus 2 asks for
/// OpenMetrics first; Prometheus 3 adds `escaping=` and `text/plain;version=1.0.0`, and may
/// put protobuf, which we do not serve, before them all.
#[must_use]
pub fn negotiate(accept: Option<&str>) -> Choice {
    let Some(accept) = accept else {
        return Choice::TEXT;
    };
    let mut best: Option<(u16, Choice)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim();
        let mut q = 1000;
        let mut version = None;
        let mut escaping = None;
        for param in parts {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let value = value.trim().trim_matches('"');
            match key.trim().to_ascii_lowercase().as_str() {
                "q" => q = parse_qvalue(value).unwrap_or(0),
                "version" => version = Some(value),
                "escaping" => escaping = Escaping::parse(value),
                _ => {}
            }
        }
        let choice = |format, version| Choice {
            format,
            version,
            escaping,
        };
        let choice = if media.eq_ignore_ascii_case("application/openmetrics-text") {
            match version {
                None | Some("1.0.0") => Some(choice(Format::OpenMetrics, "1.0.0")),
                Some("0.0.1") => Some(choice(Format::OpenMetrics, "0.0.1")),
                Some(_) => None,
            }
        } else if media.eq_ignore_ascii_case("text/plain") {
            match version {
                None | Some("0.0.4") => Some(Choice::TEXT),
                Some("1.0.0") => Some(choice(Format::Text, "1.0.0")),
                Some(_) => None,
            }
        } else if media == "*/*" || media.eq_ignore_ascii_case("text/*") {
            Some(Choice::TEXT)
        } else if media.eq_ignore_ascii_case("application/*") {
            Some(Choice::OPENMETRICS)
        } else {
            None
        };
        if let Some(choice) = choice {
            if q > 0 && best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, choice));
            }
        }
    }
    best.map_or(Choice::TEXT, |(_, c)| c)
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
pub(crate) enum Number {
    /// An exact integer, e.g. a counter.
    Int(u64),
    /// A float; `NaN`, `+Inf` and `-Inf` are spelled as both formats require.
    Float(f64),
    /// Integer nanoseconds written as exact decimal seconds (`1.25`, `0.000000001`).
    Nanos(u64),
}

/// Writes `v` in decimal without going through `core::fmt` (a third of render time); the
/// HTTP output writes its answers' heads with it too.
pub(crate) fn write_u64(out: &mut String, mut v: u64) {
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
fn write_number(out: &mut String, n: Number) {
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

/// Label-value escaping, the same in both formats: `\`, `"` and newline; a value that needs
/// none is copied whole. (HELP texts need none: `family` refuses them at compile time.)
fn write_escaped_label_value(out: &mut String, text: &str) {
    let special = |b: u8| b == b'\\' || b == b'\n' || b == b'"';
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

/// Something that can be rendered: it writes its families, in order, through an [`Encoder`].
pub trait Exposition {
    /// Writes every family through `e`, which knows the format.
    fn encode(&self, e: &mut Encoder<'_>);
}

/// Renders `exposition` into `out` (cleared first). The buffer is meant to be reused: once it
/// has grown to the payload's size, rendering allocates nothing.
pub fn render(exposition: &impl Exposition, format: Format, out: &mut String) {
    out.clear();
    let mut e = Encoder { out, format };
    exposition.encode(&mut e);
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

impl Family {
    /// The sample name, as the text format writes it.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }
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

    /// Writes a family's HELP and TYPE lines: what an owner with samples of its own shape
    /// (labels known only at run time) writes first, then each [`Encoder::sample`].
    pub(crate) fn header(&mut self, f: &Family) {
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
        // Family HELP texts need no escaping (a build error otherwise, see `family`).
        self.out.push_str(f.help);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind);
        self.out.push('\n');
    }

    /// Writes one sample of the family named `name` (the family's sample name, see
    /// [`Family::name`]), `suffix` appended (`_bucket`, `_sum`, `_count` or nothing), its label
    /// values escaped.
    pub(crate) fn sample(
        &mut self,
        name: &str,
        suffix: &str,
        labels: &[(&str, &str)],
        value: Number,
    ) {
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
    pub(crate) fn counter(&mut self, f: &Family, value: u64) {
        self.counter_number(f, Number::Int(value));
    }

    /// An unlabelled counter with any number spelling (e.g. CPU seconds).
    pub(crate) fn counter_number(&mut self, f: &Family, value: Number) {
        self.header(f);
        self.sample(f.name, "", &[], value);
    }

    /// An unlabelled gauge.
    pub(crate) fn gauge(&mut self, f: &Family, value: Number) {
        self.header(f);
        self.sample(f.name, "", &[], value);
    }

    /// A counter family with one label, one sample per `(label value, count)`.
    pub(crate) fn labeled_counters<'v>(
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
    pub(crate) fn info(&mut self, f: &Family, labels: &[(&str, &str)]) {
        self.header(f);
        self.sample(f.name, "", labels, Number::Int(1));
    }

    /// A histogram: `cumulative` has one count per bound plus the `+Inf` bucket last, which
    /// is also `_count`.
    pub(crate) fn histogram(
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
        for (input, want) in [
            ("plain", "plain"),
            ("a\\b", "a\\\\b"),
            ("a\"b", "a\\\"b"),
            ("a\nb", "a\\nb"),
            ("\\n", "\\\\n"),
            ("ünï", "ünï"),
        ] {
            let mut s = String::new();
            write_escaped_label_value(&mut s, input);
            assert_eq!(s, want, "{input:?}");
        }
    }

    #[test]
    fn negotiation() {
        // What Prometheus sends: 2.x, 3.x by default, 3.x with PrometheusProto first.
        const PROMETHEUS_2: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        const PROMETHEUS_3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        const PROMETHEUS_3_PROTO: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
        const PROMETHEUS_3_TEXT: &str = "text/plain;version=1.0.0;escaping=underscores;q=0.5,text/plain;version=0.0.4;q=0.4,*/*;q=0.3";
        const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
        const OM: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
        for (accept, want) in [
            (None, TEXT),
            (Some(""), TEXT),
            (Some("*/*"), TEXT),
            (Some("text/plain"), TEXT),
            (Some("application/openmetrics-text"), OM),
            (Some(PROMETHEUS_2), OM),
            (Some(PROMETHEUS_3), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
            (Some(PROMETHEUS_3_PROTO), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
            (Some(PROMETHEUS_3_TEXT), "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"),
            (Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited"), TEXT),
            (Some("text/plain;version=1.0.0"), "text/plain; version=1.0.0; charset=utf-8"),
            (Some("text/plain;version=1.0.0;escaping=bogus"), "text/plain; version=1.0.0; charset=utf-8"),
            (Some("application/openmetrics-text; version=0.0.1"), "application/openmetrics-text; version=0.0.1; charset=utf-8"),
            (Some("application/openmetrics-text;version=2.0.0"), TEXT),
            (Some("application/openmetrics-text;q=0"), TEXT),
            (Some("text/plain;q=0.5, application/openmetrics-text;q=0.9"), OM),
            (Some("application/openmetrics-text;q=0.4, text/plain;q=0.5"), TEXT),
            (Some("text/plain, application/openmetrics-text"), TEXT),
            (Some("application/openmetrics-text, text/plain"), OM),
            (Some("APPLICATION/OpenMetrics-Text"), OM),
            (Some("application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,text/plain;version=1.0.0;q=0.7"), "text/plain; version=1.0.0; charset=utf-8"),
            (Some("application/json"), TEXT),
            (Some("application/*"), OM),
            (Some("application/openmetrics-text;q=abc"), TEXT),
            (Some("application/openmetrics-text;q=1.5"), TEXT),
            (Some(";;;,,,=;q="), TEXT),
        ] {
            let choice = negotiate(accept);
            assert_eq!(choice.content_type(), want, "{accept:?}");
            let om = want.starts_with("application/openmetrics-text");
            assert_eq!(choice.format == Format::OpenMetrics, om, "{accept:?}");
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
