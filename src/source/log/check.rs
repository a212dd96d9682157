//! The check mode's report: a log read once from its start to its end through the same line
//! splitter, classifier and label-set table as the live source, and what a template would
//! count there, as text for an operator. Owns the report's counts and its wording, and what
//! "every file the path names" means for a check. No clocks, metrics or printing.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;

use crate::metrics::OVERFLOW_VALUE;
use crate::source::log::classify::{Classifier, Line};
use crate::source::log::files::Glob;
use crate::source::log::labels::{LabelSets, Series};
use crate::source::log::tail::{Event, Splitter};

/// Lines of each kind shown in the report.
pub(crate) const SHOWN_LINES: usize = 5;

/// Label sets shown in the report, the largest first.
pub(crate) const SHOWN_SETS: usize = 20;

/// Most bytes of a line shown (cut at a character boundary).
pub(crate) const SHOWN_BYTES: usize = 120;

/// The counts of a check run, and the first lines worth showing.
pub(crate) struct Check {
    classifier: Classifier,
    sets: LabelSets,
    /// Widgets per admitted label set, by series index.
    per_set: Vec<u64>,
    overflowed: u64,
    /// matched, unmatched, invalid, too long.
    lines: [u64; 4],
    processed: u64,
    failed: u64,
    started: u64,
    unmatched: Vec<String>,
    invalid: Vec<String>,
    splitter: Splitter,
}

impl Check {
    /// A run of `classifier` under a series cap of `max_series`.
    #[must_use]
    pub(crate) fn new(classifier: Classifier, max_series: usize) -> Check {
        let sets = LabelSets::new(classifier.names(), max_series);
        Check {
            classifier,
            sets,
            per_set: Vec::new(),
            overflowed: 0,
            lines: [0; 4],
            processed: 0,
            failed: 0,
            started: 0,
            unmatched: Vec::new(),
            invalid: Vec::new(),
            splitter: Splitter::default(),
        }
    }

    /// Reads `input` to its end, counting every line; a last line without `\n` counts too.
    /// A read error ends the input: lines read before it are counted, and the error returned.
    pub(crate) fn read(&mut self, mut input: impl Read) -> std::io::Result<()> {
        let mut chunk = vec![0; 64 << 10];
        let mut splitter = std::mem::take(&mut self.splitter);
        let result = loop {
            match input.read(&mut chunk) {
                Ok(0) => break Ok(()),
                Ok(n) => splitter.feed(&chunk[..n], &mut |e| self.event(e)),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        splitter.flush(&mut |e| self.event(e));
        self.splitter = splitter;
        result
    }

    /// Reads what `--widget.log.path` names from its start to its end: standard input for
    /// `-`, every matching file (by name) for a glob, else the file. The error says what
    /// could not be read (an empty glob is one: there was nothing to try the templates on);
    /// the files that could be read are counted all the same.
    pub(crate) fn read_path(&mut self, path: &Path) -> Result<(), String> {
        if path == Path::new("-") {
            return self
                .read(std::io::stdin().lock())
                .map_err(|e| format!("cannot read standard input: {e}"));
        }
        let glob = Glob::parse(path).map_err(str::to_owned)?;
        let files = match &glob {
            Some(glob) => glob
                .list()
                .map_err(|e| format!("cannot list {}: {e}", glob.dir().display()))?,
            None => vec![path.to_owned()],
        };
        if files.is_empty() {
            return Err(format!("no file matches {}", path.display()));
        }
        let mut first_error = Ok(());
        for file in files {
            let read = File::open(&file).and_then(|f| {
                if f.metadata()?.is_dir() {
                    return Err(std::io::Error::other("is a directory"));
                }
                self.read(f)
            });
            if let (Err(e), Ok(())) = (read, &first_error) {
                first_error = Err(format!("cannot read {}: {e}", file.display()));
            }
        }
        first_error
    }

    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Line(line) => self.line(line),
            Event::TooLong => self.lines[3] += 1,
            Event::Renamed | Event::Truncated => {}
        }
    }

    /// Counts one line (without its line ending).
    pub(crate) fn line(&mut self, line: &[u8]) {
        match self.classifier.classify(line) {
            Line::Finished { failed, labels, .. } => {
                self.lines[0] += 1;
                self.processed += 1;
                self.failed += u64::from(failed);
                match self.sets.lookup(&labels) {
                    Series::Known(i) => self.per_set[i] += 1,
                    Series::New(_) => self.per_set.push(1),
                    Series::Overflow { .. } => self.overflowed += 1,
                }
            }
            Line::Started => {
                self.lines[0] += 1;
                self.started += 1;
            }
            Line::Invalid(why) => {
                self.lines[2] += 1;
                if self.invalid.len() < SHOWN_LINES {
                    let reason = self.classifier.reason(why);
                    self.invalid.push(format!("{reason}: {}", shown(line)));
                }
            }
            Line::Unmatched => {
                self.lines[1] += 1;
                if self.unmatched.len() < SHOWN_LINES {
                    self.unmatched.push(shown(line));
                }
            }
        }
    }

    /// The report, one `\n`-ended line each:
    ///
    /// ```text
    /// lines: matched=N unmatched=N invalid=N too_long=N
    /// widgets: processed=N failed=N started=N
    /// label sets: N of at most M, overflow=N
    ///   N {name="value",...}          (the 20 largest, then "  ... N more")
    /// unmatched lines (first 5 of N):
    ///   line
    /// invalid lines (first 5 of N):
    ///   reason: line
    /// ```
    ///
    /// The label-set part only when the templates have labels; a list only when not empty.
    #[must_use]
    pub(crate) fn report(&self) -> String {
        let [matched, unmatched, invalid, too_long] = self.lines;
        let mut out = format!(
            "lines: matched={matched} unmatched={unmatched} invalid={invalid} too_long={too_long}\n\
             widgets: processed={} failed={} started={}\n",
            self.processed, self.failed, self.started
        );
        if !self.sets.names().is_empty() {
            self.write_sets(&mut out);
        }
        for (title, shown, total) in [
            ("unmatched", &self.unmatched, unmatched),
            ("invalid", &self.invalid, invalid),
        ] {
            if shown.is_empty() {
                continue;
            }
            let _ = writeln!(out, "{title} lines (first {} of {total}):", shown.len());
            for line in shown {
                let _ = writeln!(out, "  {line}");
            }
        }
        out
    }

    fn write_sets(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "label sets: {} of at most {}, overflow={}",
            self.sets.len(),
            self.sets.max_series(),
            self.overflowed
        );
        // Largest first; among equals, the set seen first.
        let mut order: Vec<(u64, Option<usize>)> = self
            .per_set
            .iter()
            .enumerate()
            .map(|(i, &n)| (n, Some(i)))
            .collect();
        if self.overflowed > 0 {
            order.push((self.overflowed, None));
        }
        order.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(a.1.unwrap_or(usize::MAX).cmp(&b.1.unwrap_or(usize::MAX)))
        });
        for &(count, series) in order.iter().take(SHOWN_SETS) {
            let _ = write!(out, "  {count} {{");
            for (i, name) in self.sets.names().iter().enumerate() {
                let value =
                    series.map_or(OVERFLOW_VALUE, |s| self.sets.values(s).nth(i).unwrap_or(""));
                let comma = if i == 0 { "" } else { "," };
                let _ = write!(out, "{comma}{name}=\"{}\"", escape_value(value));
            }
            out.push_str("}\n");
        }
        if order.len() > SHOWN_SETS {
            let _ = writeln!(out, "  ... {} more", order.len() - SHOWN_SETS);
        }
    }
}

/// A label value as the text exposition writes it: `\`, `"` and newline escaped.
fn escape_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// A line as it is safe to print on a terminal: at most [`SHOWN_BYTES`] bytes of it, cut at a
/// character boundary (then `...`); control characters, `\` and bytes that are not UTF-8
/// escaped (`\n`, `\u{1b}`, `\\`, `\xff`), so what is shown is unambiguous and never moves the
/// cursor or changes colours.
#[must_use]
pub(crate) fn shown(line: &[u8]) -> String {
    let mut out = String::new();
    let mut used = 0;
    for chunk in line.utf8_chunks() {
        for c in chunk.valid().chars() {
            if used + c.len_utf8() > SHOWN_BYTES {
                out.push_str("...");
                return out;
            }
            used += c.len_utf8();
            if c == '\\' {
                out.push_str("\\\\");
            } else if c.is_control() {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
        }
        for b in chunk.invalid() {
            if used + 1 > SHOWN_BYTES {
                out.push_str("...");
                return out;
            }
            used += 1;
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::log::template::{Template, Unit};

    fn t(s: &str) -> Template {
        Template::parse(s.as_bytes(), false).expect("test template parses")
    }

    fn check(max_series: usize) -> Check {
        let c = Classifier::new(
            t("* done status=ok took={duration} worker={label:worker}"),
            Some(t("* done status=failed worker={label:worker}")),
            Some(t("* start")),
            Unit::Ms,
        )
        .expect("valid templates");
        Check::new(c, max_series)
    }

    #[test]
    fn the_report_counts_like_the_live_source() {
        let mut log = Vec::new();
        log.extend_from_slice(b"a start\nb start\n");
        for (n, w) in [(3, "w-1"), (1, "w-2"), (2, "w\"3\\")] {
            for _ in 0..n {
                log.extend_from_slice(format!("x done status=ok took=5 worker={w}\n").as_bytes());
            }
        }
        log.extend_from_slice(b"x done status=failed worker=w-2\r\n");
        log.extend_from_slice(b"noise 1\nnoise \x1b[31mred\x1b[0m \xff\n");
        log.extend_from_slice(b"x done status=ok took=1.2.3 worker=w-1\n");
        log.extend_from_slice(b"x done status=failed worker=\xfe\n");
        log.extend_from_slice(&vec![b'l'; crate::source::log::tail::MAX_LINE + 1]);
        log.extend_from_slice(b"\nx done status=ok took=7 worker=w-9\n");
        log.extend_from_slice(b"last line without end");
        let mut c = check(3);
        c.read(&log[..]).expect("a slice reads");
        let want = "\
lines: matched=10 unmatched=3 invalid=2 too_long=1
widgets: processed=8 failed=1 started=2
label sets: 3 of at most 3, overflow=1
  3 {worker=\"w-1\"}
  2 {worker=\"w-2\"}
  2 {worker=\"w\\\"3\\\\\"}
  1 {worker=\"__overflow__\"}
unmatched lines (first 3 of 3):
  noise 1
  noise \\u{1b}[31mred\\u{1b}[0m \\xff
  last line without end
invalid lines (first 2 of 2):
  the {duration} capture is no duration: x done status=ok took=1.2.3 worker=w-1
  the value of label worker is not valid UTF-8: x done status=failed worker=\\xfe
";
        assert_eq!(c.report(), want);
    }

    #[test]
    fn lists_and_sets_are_bounded() {
        let mut c = check(100);
        let mut log = String::new();
        for i in 0..30 {
            for _ in 0..=i {
                let _ = writeln!(log, "x done status=ok took=1 worker=w{i}");
            }
            let _ = writeln!(log, "junk {i}");
        }
        c.read(log.as_bytes()).expect("reads");
        let report = c.report();
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines[3], "  30 {worker=\"w29\"}", "largest first");
        assert_eq!(lines[22], "  11 {worker=\"w10\"}", "the 20th largest");
        assert_eq!(lines[23], "  ... 10 more");
        assert_eq!(lines[24], "unmatched lines (first 5 of 30):");
        assert_eq!(lines[29], "  junk 4");
        assert_eq!(lines.len(), 30);
    }

    #[test]
    fn shown_lines_are_cut_at_a_character_boundary_and_escaped() {
        let e = "é".repeat(100); // 200 bytes
        let ae = format!("a{e}");
        let cases: &[(&[u8], String)] = &[
            (b"plain", "plain".to_owned()),
            (&[b'a'; 120], "a".repeat(120)),
            (&[b'a'; 121], format!("{}...", "a".repeat(120))),
            (e.as_bytes(), format!("{}...", "é".repeat(60))),
            (ae.as_bytes(), format!("a{}...", "é".repeat(59))),
            (b"tab\there \\ \x07", "tab\\there \\\\ \\u{7}".to_owned()),
            (
                b"\xff\xfe ok \xe2\x82",
                "\\xff\\xfe ok \\xe2\\x82".to_owned(),
            ),
            (&[0xff; 200], format!("{}...", "\\xff".repeat(120))),
        ];
        for (line, want) in cases {
            assert_eq!(shown(line), *want, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn a_path_a_glob_or_nothing_to_read() {
        let dir = std::env::temp_dir().join(format!("we-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        std::fs::write(dir.join("b.log"), "x start\n").expect("write");
        std::fs::write(dir.join("a.log"), "x start\nhalf").expect("write");
        std::fs::write(dir.join("a.log.1"), "x start\n").expect("write");
        let mut c = check(10);
        c.read_path(&dir.join("*.log")).expect("a glob");
        // Each file's last line ends with the file: "half" is a line of its own.
        assert!(
            c.report().starts_with("lines: matched=2 unmatched=1 "),
            "{}",
            c.report()
        );
        let mut c = check(10);
        c.read_path(&dir.join("a.log.1")).expect("a file");
        assert!(c.report().starts_with("lines: matched=1 "));
        let errors = [
            (dir.join("*.nothing"), "no file matches"),
            (dir.join("missing.log"), "cannot read"),
            (dir.clone(), "is a directory"),
            (dir.join("*/x.log"), "may appear only in the last component"),
        ];
        for (path, want) in errors {
            let err = check(10).read_path(&path).expect_err("cannot read");
            assert!(err.contains(want), "{err}");
        }
        std::fs::remove_dir_all(&dir).expect("clean up");
    }

    #[test]
    fn a_read_error_keeps_what_was_read() {
        struct Failing(bool);
        impl Read for Failing {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if std::mem::replace(&mut self.0, true) {
                    return Err(std::io::Error::other("disk on fire"));
                }
                let text = b"x start\nx sta";
                buf[..text.len()].copy_from_slice(text);
                Ok(text.len())
            }
        }
        let mut c = check(10);
        assert!(c.read(Failing(false)).is_err());
        assert!(c
            .report()
            .starts_with("lines: matched=1 unmatched=1 invalid=0 too_long=0\n"));
    }
}
