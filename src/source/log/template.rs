//! Log-line templates (issue 8): literal bytes, `*` for any run of bytes, one `{duration}`
//! capture, `\*` `\{` `\\` escapes; a template matches a whole line. Owns the grammar, the
//! compiled matcher and the parsing of a captured duration. Pure: no files, clocks or metrics.
//!
//! Matching is a glob match over the segments between the stars, with no regex engine and no
//! allocation per line. `{duration}` takes the longest run of number-and-unit bytes
//! (`[0-9.a-z]`, `µ`) where it starts, so where a segment is placed fixes its end; the
//! leftmost placement of each segment therefore ends earliest, and a single left-to-right pass
//! without backtracking finds a match whenever one exists.

use std::time::Duration;

use crate::config::duration::{self, Grammar};

/// Text between two stars: at most three pieces (literal, capture, literal).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Segment {
    before: Vec<u8>,
    /// `Some(after)` when the segment holds the capture: literal `before`, capture, `after`.
    capture: Option<Vec<u8>>,
    /// Index of the rarest byte of `before`, which the search scans for.
    key: usize,
}

/// A compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    /// `segments[0]` is anchored at the line's start, the last at its end, stars between them.
    segments: Vec<Segment>,
}

/// How a line fared against a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Match<'a> {
    /// The line does not have the template's shape.
    No,
    /// It does; the bytes `{duration}` took, if the template has one.
    Yes(Option<&'a [u8]>),
}

/// Whether `{duration}` may take this byte (digits, `.`, unit letters and the bytes of `µ`/`μ`).
fn duration_byte(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'.' | b'a'..=b'z' | 0xC2 | 0xB5 | 0xCE | 0xBC)
}

/// Where the capture starting at `start` ends, if one can start there.
fn capture_end(line: &[u8], start: usize) -> Option<usize> {
    match line.get(start) {
        Some(b'0'..=b'9' | b'.') => {}
        _ => return None,
    }
    let run = line[start..].iter().position(|&b| !duration_byte(b));
    Some(run.map_or(line.len(), |n| start + n))
}

/// Whether `hay` starts with `prefix`, eight bytes at a time: needles are a few dozen bytes,
/// where a `memcmp` call per candidate cost more than the search itself.
fn starts(hay: &[u8], prefix: &[u8]) -> bool {
    let Some(hay) = hay.get(..prefix.len()) else {
        return false;
    };
    let (mut a, mut b) = (hay.chunks_exact(8), prefix.chunks_exact(8));
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().expect("chunks of 8"));
    a.by_ref().zip(b.by_ref()).all(|(x, y)| word(x) == word(y)) && a.remainder() == b.remainder()
}

/// How common a byte is in log lines: the search keys on the rarest byte of a literal.
fn commonness(b: u8) -> u8 {
    match b {
        b' ' => 3,
        b'a'..=b'z' | b'0'..=b'9' => 2,
        b'A'..=b'Z' | b'-' | b':' | b'.' => 1,
        _ => 0,
    }
}

/// Leftmost occurrence of `needle` in `hay` at or after `from`, found by scanning for the
/// needle's byte at `key` (its rarest) and checking the rest around it.
fn find(hay: &[u8], needle: &[u8], key: usize, from: usize) -> Option<usize> {
    let Some(&k) = needle.get(key) else {
        return (from <= hay.len()).then_some(from);
    };
    let mut at = from;
    while at + needle.len() <= hay.len() {
        let n = hay[at + key..=hay.len() - needle.len() + key]
            .iter()
            .position(|&b| b == k)?;
        at += n;
        // The first and last bytes reject most candidates before the whole compare.
        if hay[at] == needle[0]
            && hay[at + needle.len() - 1] == needle[needle.len() - 1]
            && starts(&hay[at..], needle)
        {
            return Some(at);
        }
        at += 1;
    }
    None
}

impl Segment {
    /// The end of this segment placed at `at`, and its capture span, if it fits there.
    fn at(&self, line: &[u8], at: usize) -> Option<(usize, Option<(usize, usize)>)> {
        if !starts(line.get(at..)?, &self.before) {
            return None;
        }
        let mid = at + self.before.len();
        let Some(after) = &self.capture else {
            return Some((mid, None));
        };
        let end = capture_end(line, mid)?;
        starts(&line[end..], after).then_some((end + after.len(), Some((mid, end))))
    }

    /// The leftmost placement at or after `from` (and, when `to_end`, ending at the line's end).
    fn place(
        &self,
        line: &[u8],
        from: usize,
        to_end: bool,
    ) -> Option<(usize, Option<(usize, usize)>)> {
        let mut at = from;
        loop {
            at = find(line, &self.before, self.key, at)?;
            match self.at(line, at) {
                Some((end, cap)) if !to_end || end == line.len() => return Some((end, cap)),
                _ => {}
            }
            // Starts whose capture would begin inside the run just tried share its end, so
            // they fail the same way: skip past them (this keeps long digit runs linear).
            let mid = at + self.before.len();
            let skip = match (&self.capture, capture_end(line, mid)) {
                (Some(_), Some(end)) => end.saturating_sub(self.before.len()),
                _ => 0,
            };
            at = (at + 1).max(skip);
        }
    }
}

impl Template {
    /// Compiles `text`. With `need_duration`, a template without `{duration}` is refused. The
    /// error is a short reason, quoted after "invalid value ... for --flag: ".
    ///
    /// # Panics
    ///
    /// Never: the segment list starts with one segment and only grows.
    pub fn parse(text: &[u8], need_duration: bool) -> Result<Template, &'static str> {
        let mut segments = vec![Segment::default()];
        let mut captures = 0;
        let mut i = 0;
        while i < text.len() {
            let seg = segments.last_mut().expect("always one segment");
            let lit = seg.capture.as_mut().unwrap_or(&mut seg.before);
            match text[i] {
                b'\\' => match text.get(i + 1) {
                    Some(&b @ (b'*' | b'{' | b'\\')) => {
                        lit.push(b);
                        i += 2;
                        continue;
                    }
                    Some(_) => return Err("\\ escapes only *, { and \\"),
                    None => return Err("dangling \\ at the end"),
                },
                b'*' => segments.push(Segment::default()),
                b'{' => {
                    if !text[i..].starts_with(b"{duration}") {
                        return Err("unknown {...}: the only capture is {duration} (write \\{ for a literal {)");
                    }
                    captures += 1;
                    if captures > 1 {
                        return Err("{duration} may appear only once");
                    }
                    seg.capture = Some(Vec::new());
                    i += "{duration}".len();
                    continue;
                }
                b => lit.push(b),
            }
            i += 1;
        }
        if need_duration && captures == 0 {
            return Err("must contain {duration}");
        }
        for seg in &mut segments {
            seg.key = (0..seg.before.len())
                .min_by_key(|&i| commonness(seg.before[i]))
                .unwrap_or(0);
            if let Some(&b) = seg.capture.as_ref().and_then(|after| after.first()) {
                if duration_byte(b) {
                    return Err("{duration} takes its unit with it: it must not be followed by a digit, . or a lowercase letter");
                }
            }
        }
        Ok(Template { segments })
    }

    /// Whether the template has a `{duration}`.
    #[must_use]
    pub fn has_duration(&self) -> bool {
        self.segments.iter().any(|s| s.capture.is_some())
    }

    /// Matches a whole line (without its line ending).
    ///
    /// # Panics
    ///
    /// Never: a compiled template has at least one segment.
    #[must_use]
    pub fn matches<'a>(&self, line: &'a [u8]) -> Match<'a> {
        let (first, rest) = self.segments.split_first().expect("always one segment");
        let Some((mut pos, mut cap)) = first.at(line, 0) else {
            return Match::No;
        };
        let Some((last, middle)) = rest.split_last() else {
            return if pos == line.len() {
                Match::Yes(cap.map(|(a, b)| &line[a..b]))
            } else {
                Match::No
            };
        };
        for seg in middle {
            let Some((end, c)) = seg.place(line, pos, false) else {
                return Match::No;
            };
            pos = end;
            cap = cap.or(c);
        }
        // The last segment hugs the end; a plain literal is just a suffix check.
        let placed = if last.capture.is_none() {
            (line.len() >= pos + last.before.len()
                && starts(&line[line.len() - last.before.len()..], &last.before))
            .then_some((line.len(), None))
        } else {
            last.place(line, pos, true)
        };
        match placed {
            Some((_, c)) => Match::Yes(cap.or(c).map(|(a, b)| &line[a..b])),
            None => Match::No,
        }
    }
}

/// Unit of a bare number captured by `{duration}` (`--widget.log.duration-unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Unit {
    /// Seconds (the default).
    #[default]
    S,
    /// Milliseconds.
    Ms,
    /// Microseconds.
    Us,
    /// Nanoseconds.
    Ns,
}

impl Unit {
    /// Parses `s`, `ms`, `us` or `ns`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Unit> {
        Some(match text {
            "s" => Unit::S,
            "ms" => Unit::Ms,
            "us" => Unit::Us,
            "ns" => Unit::Ns,
            _ => return None,
        })
    }

    /// The flag spelling.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::S => "s",
            Unit::Ms => "ms",
            Unit::Us => "us",
            Unit::Ns => "ns",
        }
    }

    fn nanos(self) -> u64 {
        match self {
            Unit::S => 1_000_000_000,
            Unit::Ms => 1_000_000,
            Unit::Us => 1_000,
            Unit::Ns => 1,
        }
    }
}

/// Parses a captured duration: a non-negative decimal with an attached Go-style unit
/// (`231ms`, `1.5s`, `1m30s`) or bare (`0.231`, scaled by `bare`), through the crate's one
/// duration parser. `None` when it does not parse or exceeds Go's range (about 292 years);
/// such a line counts as `invalid`.
#[must_use]
pub fn parse_duration(text: &[u8], bare: Unit) -> Option<Duration> {
    let grammar = Grammar {
        bare: Some(bare.nanos()),
        max_nanos: i64::MAX as u64,
    };
    duration::nanos(text, grammar)
        .ok()
        .map(Duration::from_nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template::parse(text.as_bytes(), false).expect("test template parses")
    }

    #[test]
    fn matching_table() {
        // (template, line, expected capture: None = no match, Some("") = match w/o capture)
        let cases: &[(&str, &[u8], Option<&str>)] = &[
            (
                "* widget * done status=ok took={duration}",
                b"2026-12-01T10:00:01Z worker-3 widget 4711 done status=ok took=231ms",
                Some("231ms"),
            ),
            (
                "* widget * done status=ok took={duration}",
                b"2026-12-01T10:00:01Z worker-3 widget 4711 done status=failed took=231ms",
                None,
            ),
            ("abc", b"abc", Some("")),
            ("abc", b"abcd", None),
            ("abc", b"xabc", None),
            ("*", b"", Some("")),
            ("*", b"anything \xff\xfe", Some("")),
            ("a*", b"a", Some("")),
            ("*a", b"ba", Some("")),
            ("*a", b"ab", None),
            ("a*b*c", b"abc", Some("")),
            ("a*b*c", b"aXbYbZc", Some("")),
            ("a*b*c", b"acb", None),
            ("ab*ba", b"aba", None),
            ("*\\**", b"x*y", Some("")),
            ("*\\**", b"xy", None),
            ("\\{x}", b"{x}", Some("")),
            ("a\\\\b", b"a\\b", Some("")),
            ("took={duration}", b"took=1.5s", Some("1.5s")),
            ("took={duration}", b"took=.5", Some(".5")),
            ("took={duration}", b"took=abc", None),
            ("took={duration}", b"took=", None),
            ("took={duration} ms", b"took=231 ms", Some("231")),
            ("*{duration}", b"took=231ms", Some("231ms")),
            ("*{duration}*", b"a 12 b 34", Some("12")),
            ("*t={duration}*", b"x t=1s t=2s", Some("1s")),
            ("* {duration}", b"1 2 3", Some("3")),
            ("*={duration}", b"a=1 b=2", Some("2")),
            ("*={duration} end", b"a=1 b=2 end", Some("2")),
            ("*{duration}X", b"a12X", Some("12")),
            ("*{duration}X", b"a12x", None),
            ("{duration}", b"1h2m\xc2\xb5", Some("1h2mµ")),
            ("*took={duration}", b"took=231ms\r", None),
        ];
        for &(template, line, want) in cases {
            let got = match t(template).matches(line) {
                Match::No => None,
                Match::Yes(c) => Some(String::from_utf8_lossy(c.unwrap_or(b"")).into_owned()),
            };
            assert_eq!(
                got.as_deref(),
                want,
                "{template:?} vs {:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn parse_errors_table() {
        let cases: &[(&str, bool, &str)] = &[
            ("* done", true, "must contain {duration}"),
            ("{duration} {duration}", false, "only once"),
            ("{name}", false, "unknown {...}"),
            ("{durat", false, "unknown {...}"),
            ("abc\\", false, "dangling \\"),
            ("a\\b", false, "escapes only"),
            ("{duration}ms", false, "must not be followed by a digit"),
        ];
        for &(text, need, want) in cases {
            let err = Template::parse(text.as_bytes(), need).expect_err(text);
            assert!(err.contains(want), "{text:?}: {err:?} lacks {want:?}");
        }
        assert!(Template::parse(b"* done {duration}", true).is_ok());
        assert!(!t("* done").has_duration());
        assert!(t("{duration}*").has_duration());
    }

    #[test]
    fn duration_table() {
        let ms = Duration::from_millis;
        let cases: &[(&str, Unit, Option<Duration>)] = &[
            ("231ms", Unit::S, Some(ms(231))),
            ("1.5s", Unit::S, Some(ms(1500))),
            ("0.231", Unit::S, Some(ms(231))),
            ("231", Unit::Ms, Some(ms(231))),
            ("7", Unit::Us, Some(Duration::from_micros(7))),
            ("7", Unit::Ns, Some(Duration::from_nanos(7))),
            ("1m30s", Unit::S, Some(ms(90_000))),
            ("2h", Unit::S, Some(ms(7_200_000))),
            ("5µs", Unit::S, Some(Duration::from_micros(5))),
            ("5us", Unit::S, Some(Duration::from_micros(5))),
            (".5s", Unit::S, Some(ms(500))),
            ("5.s", Unit::S, Some(ms(5000))),
            ("0.0000000019s", Unit::S, Some(Duration::from_nanos(1))),
            ("1.2.3s", Unit::S, None),
            (".", Unit::S, None),
            ("", Unit::S, None),
            ("5x", Unit::S, None),
            ("1m30", Unit::S, None),
            ("s", Unit::S, None),
            (
                "9223372036s",
                Unit::S,
                Some(Duration::from_secs(9_223_372_036)),
            ),
            ("9223372037s", Unit::S, None),
            ("99999999999999999999999999999999ns", Unit::S, None),
        ];
        for &(text, unit, want) in cases {
            assert_eq!(parse_duration(text.as_bytes(), unit), want, "{text:?}");
        }
        for u in [Unit::S, Unit::Ms, Unit::Us, Unit::Ns] {
            assert_eq!(Unit::parse(u.as_str()), Some(u));
        }
        assert_eq!(Unit::parse("m"), None);
    }

    /// The obvious exponential matcher: stars try every length shortest first, the capture
    /// takes its longest run. Its answers define the grammar the fast matcher must agree with.
    fn naive<'a>(tokens: &[Tok], line: &'a [u8], at: usize, cap: Option<&'a [u8]>) -> Match<'a> {
        let Some((tok, rest)) = tokens.split_first() else {
            return if at == line.len() {
                Match::Yes(cap)
            } else {
                Match::No
            };
        };
        match tok {
            Tok::Byte(b) if line.get(at) == Some(b) => naive(rest, line, at + 1, cap),
            Tok::Byte(_) => Match::No,
            Tok::Star => (at..=line.len())
                .map(|n| naive(rest, line, n, cap))
                .find(|m| *m != Match::No)
                .unwrap_or(Match::No),
            Tok::Dur => match capture_end(line, at) {
                Some(end) => naive(rest, line, end, Some(&line[at..end])),
                None => Match::No,
            },
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Tok {
        Byte(u8),
        Star,
        Dur,
    }

    #[test]
    fn agrees_with_the_naive_matcher() {
        // As tests/support's master_seed: WIDGET_EXPORTER_FUZZ_SEED replays, else the clock.
        let seed = std::env::var("WIDGET_EXPORTER_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("template property test seed: {seed} (WIDGET_EXPORTER_FUZZ_SEED={seed} replays)");
        // The crate's own generator, seeded: the same one the simulation and tests/support use.
        let mut g = fastrand::Rng::with_seed(seed);
        // A small alphabet so that literals, numbers and units collide often.
        let alphabet = b"ab1.2 =s*{\\m";
        let (mut matched, mut captured) = (0, 0);
        for _ in 0..20_000 {
            let mut tokens = Vec::new();
            let mut text = Vec::new();
            let mut has_dur = false;
            for _ in 0..g.usize(..7) {
                match g.usize(..6) {
                    0 => {
                        tokens.push(Tok::Star);
                        text.push(b'*');
                    }
                    1 if !has_dur => {
                        has_dur = true;
                        tokens.push(Tok::Dur);
                        text.extend_from_slice(b"{duration}");
                    }
                    _ => {
                        let b = alphabet[g.usize(..alphabet.len())];
                        if matches!(b, b'*' | b'{' | b'\\') {
                            text.push(b'\\');
                        }
                        tokens.push(Tok::Byte(b));
                        text.push(b);
                    }
                }
            }
            let Ok(template) = Template::parse(&text, false) else {
                continue; // a unit letter after {duration}: refused by design
            };
            for _ in 0..8 {
                let line: Vec<u8> = (0..g.usize(..12))
                    .map(|_| alphabet[g.usize(..alphabet.len())])
                    .collect();
                let want = naive(&tokens, &line, 0, None);
                matched += usize::from(want != Match::No);
                captured += usize::from(matches!(want, Match::Yes(Some(_))));
                assert_eq!(
                    template.matches(&line),
                    want,
                    "seed {seed}: template {:?} line {:?}",
                    String::from_utf8_lossy(&text),
                    String::from_utf8_lossy(&line)
                );
            }
        }
        // The generator must reach both answers and the capture, or the test proves little.
        assert!(
            matched > 2_000 && captured > 500,
            "seed {seed}: {matched} matches, {captured} captures"
        );
    }
}
