//! Structured logs on stderr, one line per event, in logfmt or JSON. It owns the level
//! filter and the line format; it never decides what is worth logging.
//!
//! The level and format are process-wide (set once by `app::run`), so any module can log
//! without threading a logger through every call.

use std::fmt::{self, Display, Write as _};
use std::io::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use crate::host::clock;

/// How much to log, from most to least verbose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Per-request and per-connection detail.
    Debug = 0,
    /// Start-up, shutdown and other events an operator wants in the journal.
    Info = 1,
    /// Something is wrong but the exporter carries on.
    Warn = 2,
    /// The exporter is about to stop, or cannot do its job.
    Error = 3,
}

impl Level {
    /// The lowercase name used in flags and log lines.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

impl FromStr for Level {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "debug" => Ok(Level::Debug),
            "info" => Ok(Level::Info),
            "warn" => Ok(Level::Warn),
            "error" => Ok(Level::Error),
            _ => Err(()),
        }
    }
}

/// The shape of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `ts=… level=info msg="listening" address=127.0.0.1:8000`
    Logfmt = 0,
    /// `{"ts":"…","level":"info","msg":"listening","address":"127.0.0.1:8000"}`
    Json = 1,
}

impl Format {
    /// The lowercase name used in flags.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Logfmt => "logfmt",
            Format::Json => "json",
        }
    }
}

impl FromStr for Format {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "logfmt" => Ok(Format::Logfmt),
            "json" => Ok(Format::Json),
            _ => Err(()),
        }
    }
}

static LEVEL: AtomicU8 = AtomicU8::new(Level::Info as u8);
static FORMAT: AtomicU8 = AtomicU8::new(Format::Logfmt as u8);

/// Sets the process-wide level and format.
pub fn init(level: Level, format: Format) {
    LEVEL.store(level as u8, Ordering::Relaxed);
    FORMAT.store(format as u8, Ordering::Relaxed);
}

/// Whether a line at `level` would be written; check it before building costly fields.
#[must_use]
pub fn enabled(level: Level) -> bool {
    level as u8 >= LEVEL.load(Ordering::Relaxed)
}

/// One key-value pair of a log line.
pub type Field<'a> = (&'a str, &'a dyn Display);

/// Writes one line at `level` if it passes the filter. A failed write to stderr is ignored:
/// losing a log line must never stop the exporter.
pub fn log(level: Level, msg: &str, fields: &[Field<'_>]) {
    if !enabled(level) {
        return;
    }
    let format = if FORMAT.load(Ordering::Relaxed) == Format::Json as u8 {
        Format::Json
    } else {
        Format::Logfmt
    };
    let line = format_line(format, clock::unix_time(), level, msg, fields);
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at debug level.
pub fn debug(msg: &str, fields: &[Field<'_>]) {
    log(Level::Debug, msg, fields);
}
/// Logs at info level.
pub fn info(msg: &str, fields: &[Field<'_>]) {
    log(Level::Info, msg, fields);
}
/// Logs at warn level.
pub fn warn(msg: &str, fields: &[Field<'_>]) {
    log(Level::Warn, msg, fields);
}
/// Logs at error level.
pub fn error(msg: &str, fields: &[Field<'_>]) {
    log(Level::Error, msg, fields);
}

/// Renders one complete line, newline included, stamped `now` (since the unix epoch).
#[must_use]
pub fn format_line(
    format: Format,
    now: Duration,
    level: Level,
    msg: &str,
    fields: &[Field<'_>],
) -> String {
    let mut ts = String::with_capacity(24);
    write_rfc3339(&mut ts, now);
    let mut out = String::with_capacity(96);
    let mut value = String::new();
    match format {
        Format::Logfmt => {
            let _ = write!(out, "ts={ts} level={} msg=", level.as_str());
            write_logfmt_value(&mut out, msg);
            for (key, v) in fields {
                value.clear();
                let _ = write!(value, "{v}");
                let _ = write!(out, " {key}=");
                write_logfmt_value(&mut out, &value);
            }
        }
        Format::Json => {
            let _ = write!(
                out,
                "{{\"ts\":\"{ts}\",\"level\":\"{}\",\"msg\":",
                level.as_str()
            );
            write_json_string(&mut out, msg);
            for (key, v) in fields {
                value.clear();
                let _ = write!(value, "{v}");
                out.push(',');
                write_json_string(&mut out, key);
                out.push(':');
                if is_json_literal(&value) {
                    out.push_str(&value);
                } else {
                    write_json_string(&mut out, &value);
                }
            }
            out.push('}');
        }
    }
    out.push('\n');
    out
}

/// logfmt: bare when the value is a simple token, quoted and escaped otherwise.
fn write_logfmt_value(out: &mut String, v: &str) {
    let bare = !v.is_empty()
        && v.chars()
            .all(|c| c > ' ' && c != '"' && c != '=' && c != '\\' && c != '\u{7f}');
    if bare {
        out.push_str(v);
    } else {
        write_json_string(out, v);
    }
}

fn write_json_string(out: &mut String, v: &str) {
    out.push('"');
    for c in v.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Whether a field's text is a JSON number or boolean, written bare so that a log pipeline
/// gets `"max_connections":256`, not a string it must convert. The fields' values reach us
/// already formatted, so this goes by JSON's own grammar: `42`, `-1.5`, `1e-3`, `true`,
/// `false`; `007`, `1.`, `NaN`, `0.1.0` or an address stay strings.
fn is_json_literal(v: &str) -> bool {
    if v == "true" || v == "false" {
        return true;
    }
    let b = v.as_bytes();
    let mut i = usize::from(b.first() == Some(&b'-'));
    let digits = |i: &mut usize| {
        let start = *i;
        while b.get(*i).is_some_and(u8::is_ascii_digit) {
            *i += 1;
        }
        *i > start
    };
    // An integer part: `0`, or a nonzero digit and more digits.
    if b.get(i) == Some(&b'0') {
        i += 1;
    } else if !digits(&mut i) {
        return false;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        if !digits(&mut i) {
            return false;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(&mut i) {
            return false;
        }
    }
    i == b.len()
}

/// `2026-11-27T05:24:55.123Z`, UTC, millisecond precision.
fn write_rfc3339(out: &mut String, d: Duration) {
    let secs = d.as_secs();
    let (y, m, day) = clock::civil_from_days(i64::try_from(secs / 86_400).unwrap_or(i64::MAX / 2));
    let rem = secs % 86_400;
    let _ = write!(
        out,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    );
}

/// A value that renders through `Display` without allocating: for fields built from parts.
pub struct Lazy<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result>(pub F);

impl<F: Fn(&mut fmt::Formatter<'_>) -> fmt::Result> Display for Lazy<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        (self.0)(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64, millis: u64) -> Duration {
        Duration::from_millis(secs * 1000 + millis)
    }

    #[test]
    fn timestamps() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (951_782_400, "2000-02-29T00:00:00.000Z"),
            (1_795_757_095, "2026-11-27T05:24:55.000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000Z"),
        ] {
            let mut s = String::new();
            write_rfc3339(&mut s, at(secs, 0));
            assert_eq!(s, want, "{secs}");
        }
    }

    #[test]
    fn logfmt_lines() {
        let addr = "127.0.0.1:8000";
        let line = format_line(
            Format::Logfmt,
            at(0, 5),
            Level::Info,
            "listening",
            &[("address", &addr), ("note", &"two words"), ("q", &"a\"b")],
        );
        assert_eq!(
            line,
            "ts=1970-01-01T00:00:00.005Z level=info msg=listening address=127.0.0.1:8000 note=\"two words\" q=\"a\\\"b\"\n"
        );
        let empty = format_line(Format::Logfmt, at(0, 0), Level::Warn, "", &[]);
        assert_eq!(empty, "ts=1970-01-01T00:00:00.000Z level=warn msg=\"\"\n");
    }

    #[test]
    fn json_lines() {
        let n = 3;
        let line = format_line(
            Format::Json,
            at(0, 0),
            Level::Error,
            "bad\nthing",
            &[("count", &n), ("ctl", &"\u{1}")],
        );
        assert_eq!(
            line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"error\",\"msg\":\"bad\\nthing\",\"count\":3,\"ctl\":\"\\u0001\"}\n"
        );
    }

    #[test]
    fn json_numbers_and_booleans_are_bare() {
        for (v, bare) in [
            ("0", true),
            ("256", true),
            ("-1", true),
            ("0.25", true),
            ("1e-3", true),
            ("2.5E+10", true),
            ("true", true),
            ("false", true),
            ("", false),
            ("-", false),
            ("007", false),
            ("1.", false),
            (".5", false),
            ("1e", false),
            ("NaN", false),
            ("+Inf", false),
            ("0.1.0", false),
            ("127.0.0.1:8000", false),
            ("100ms", false),
            ("True", false),
        ] {
            assert_eq!(is_json_literal(v), bare, "{v:?}");
        }
        let line = format_line(
            Format::Json,
            at(0, 0),
            Level::Info,
            "m",
            &[("n", &256), ("f", &0.5), ("b", &false), ("v", &"0.1.0")],
        );
        assert_eq!(
            line,
            "{\"ts\":\"1970-01-01T00:00:00.000Z\",\"level\":\"info\",\"msg\":\"m\",\"n\":256,\"f\":0.5,\"b\":false,\"v\":\"0.1.0\"}\n"
        );
    }

    #[test]
    fn names_round_trip() {
        for l in [Level::Debug, Level::Info, Level::Warn, Level::Error] {
            assert_eq!(l.as_str().parse::<Level>(), Ok(l));
        }
        for f in [Format::Logfmt, Format::Json] {
            assert_eq!(f.as_str().parse::<Format>(), Ok(f));
        }
        assert!("INFO".parse::<Level>().is_err());
    }
}
