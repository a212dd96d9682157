//! The log source (issue 8): real widgets counted from the application's own log. Owns its
//! registry entry ([`KIND`]; its flags and validated config are in `config`) and what a line
//! means (failed template first, then finished, then started) and the log families' counts. It reads through [`crate::source::log::tail`] and matches through
//! [`crate::source::log::template`]; it never renders, serves or blocks, and it spells no metric names.

pub mod check;
pub mod classify;
pub(crate) mod config;
pub mod files;
pub mod labels;
pub mod tail;
pub mod template;

use std::time::{Duration, Instant};

use crate::config::SourceFlags;
use crate::error::Error;
use crate::metrics::{LineResult, Metrics, Rotation};
use crate::source::kind::{Families, Kind, Reads, Source, Step};
use crate::source::log::config::{LogConfig, LogFlags};
use crate::source::log::tail::{Event, Position, Tail};
use crate::source::log::template::{parse_duration, Match, Template, Unit};

/// The log source in the source registry.
pub(crate) static KIND: Kind<LogFlags, LogConfig> = Kind {
    flags: SourceFlags {
        name: "log",
        summary: "counted from a log file",
        about: "a widget-processing service, counted from its log",
        required: &["--widget.log.path", "--widget.log.finished"],
        example: config::EXAMPLE,
        help: config::HELP,
        rows: config::FLAGS,
        validate: config::validate,
    },
    open: |config, metrics, position, start, start_unix_nanos| {
        Ok(Box::new(LogTail::open(
            config,
            metrics,
            position,
            start,
            start_unix_nanos,
        )?))
    },
    families: |config| Families {
        in_progress: config.started.is_some(),
        log: true,
    },
    reads: |config| Reads::Log {
        group: config.reading_group(),
        path: config.path.clone(),
    },
};

/// What lines mean.
struct Rules {
    finished: Template,
    failed: Option<Template>,
    started: Option<Template>,
    unit: Unit,
}

/// Widgets from a followed log.
pub(crate) struct LogTail {
    tail: Tail,
    rules: Rules,
    poll: Duration,
    next_due: Instant,
    start: Instant,
    start_unix_nanos: u64,
}

impl LogTail {
    /// Opens the log (a missing file is waited for; a directory is an error). Resumes at
    /// `position`, where a previous image of this process stopped ([`Source::position`]), if
    /// the path still names that file.
    pub(crate) fn open(
        config: &LogConfig,
        metrics: &Metrics,
        position: Option<&str>,
        start: Instant,
        start_unix_nanos: u64,
    ) -> Result<LogTail, Error> {
        let path = &config.path;
        let mut tail = Tail::open(path, start).ok_or_else(|| {
            Error::Usage("--widget.log.path names a directory, not a log file".to_owned())
        })?;
        if let Some(at) = position.and_then(parse_position) {
            if tail.resume(at) {
                crate::log::info("resumed the log where the previous image stopped", &[]);
            }
        }
        metrics.set_log_readable(tail.readable());
        crate::log::info("following the log", &[("path", &path.display())]);
        Ok(LogTail {
            tail,
            rules: Rules {
                finished: config.finished.template.clone(),
                failed: config.failed.as_ref().map(|p| p.template.clone()),
                started: config.started.as_ref().map(|p| p.template.clone()),
                unit: config.unit,
            },
            poll: config.poll_interval,
            next_due: start,
            start,
            start_unix_nanos,
        })
    }
}

impl Rules {
    /// What one line means; returns whether it was a widget event.
    fn line(&self, line: &[u8], metrics: &Metrics, now: Instant, unix: u64) -> bool {
        let failed = self.failed.as_ref().map_or(Match::No, |t| t.matches(line));
        let (capture, is_failure) = match failed {
            Match::Yes(capture) => (capture, true),
            Match::No => match self.finished.matches(line) {
                Match::Yes(capture) => (capture, false),
                Match::No => {
                    let started = self
                        .started
                        .as_ref()
                        .is_some_and(|t| t.matches(line) != Match::No);
                    if started {
                        metrics.widget_started();
                        metrics.count_line(LineResult::Matched);
                    } else {
                        metrics.count_line(LineResult::Unmatched);
                    }
                    return started;
                }
            },
        };
        let duration = match capture {
            None => None,
            Some(text) => {
                let Some(d) = parse_duration(text, self.unit) else {
                    metrics.count_line(LineResult::Invalid);
                    return false;
                };
                Some(d)
            }
        };
        metrics.widget_finished(duration, is_failure, unix, now);
        metrics.count_line(LineResult::Matched);
        true
    }
}

impl Source for LogTail {
    fn step(&mut self, now: Instant, metrics: &Metrics) -> Step {
        // "When the line was read": one clock reading per step, as the simulation does.
        let since = now.saturating_duration_since(self.start).as_nanos();
        let unix = self
            .start_unix_nanos
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX));
        let mut events = 0u32;
        let rules = &self.rules;
        let more = self.tail.step(now, |event| match event {
            Event::Line(line) => {
                if rules.line(line, metrics, now, unix) {
                    events = events.saturating_add(1);
                }
            }
            Event::TooLong => metrics.count_line(LineResult::TooLong),
            Event::Renamed => metrics.count_rotation(Rotation::Rename),
            Event::Truncated => metrics.count_rotation(Rotation::Truncate),
        });
        metrics.set_log_readable(self.tail.readable());
        self.next_due = if more {
            now
        } else {
            let poll = now + self.poll;
            self.tail.drain_deadline().map_or(poll, |d| d.min(poll))
        };
        Step {
            events,
            lateness: Duration::ZERO,
        }
    }

    fn next_due(&self) -> Instant {
        self.next_due
    }

    fn position(&self) -> Option<String> {
        let p = self.tail.position()?;
        Some(format!("{},{},{}", p.dev, p.ino, p.offset))
    }
}

/// The inverse of [`LogTail`]'s [`Source::position`]: `dev,ino,offset`.
fn parse_position(text: &str) -> Option<Position> {
    let mut numbers = text.split(',').map(|n| n.parse::<u64>().ok());
    let at = Position {
        dev: numbers.next()??,
        ino: numbers.next()??,
        offset: numbers.next()??,
    };
    numbers.next().is_none().then_some(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::ProcessStats;
    use crate::metrics::{Parts, Snapshot};
    use crate::source::log::config::Pattern;
    use std::io::Write;
    use std::path::PathBuf;

    fn config(path: PathBuf, started: bool) -> LogConfig {
        let p = |t: &str, d| Some(Pattern::parse(t, d).expect("test template parses"));
        LogConfig {
            path,
            finished: Pattern::parse("* widget * done status=ok took={duration}", true)
                .expect("test template parses"),
            failed: p("* widget * done status=failed*", false),
            started: if started {
                p("* widget * start", false)
            } else {
                None
            },
            unit: Unit::Ms,
            poll_interval: Duration::from_secs(1),
        }
    }

    fn snap(m: &Metrics) -> Snapshot {
        m.snapshot(ProcessStats::default())
    }

    #[test]
    fn lines_become_widgets_and_counts() {
        let dir = std::env::temp_dir().join(format!("we-logtail-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("app.log");
        std::fs::write(&path, b"before start: not counted\n").expect("write");
        let t0 = Instant::now();
        let parts = Parts {
            in_progress: true,
            http: false,
            textfile: false,
            log: true,
        };
        let metrics = Metrics::new(parts, Duration::from_secs(60), t0);
        let mut source =
            LogTail::open(&config(path.clone(), true), &metrics, None, t0, 1_000).expect("open");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("append");
        f.write_all(
            b"t w-1 widget 1 start\nt w-1 widget 2 start\nt w-1 widget 1 done status=ok took=250\n\
              t w-1 widget 2 done status=failed took=1s\nnoise\n\
              t w-1 widget 3 done status=ok took=1.2.3s\n",
        )
        .expect("append");
        let step = source.step(t0 + Duration::from_millis(5), &metrics);
        assert_eq!(step.events, 4);
        let s = snap(&metrics);
        assert_eq!((s.processed, s.failed, s.in_progress), (2, 1, Some(0)));
        assert_eq!(
            s.duration_sum_nanos, 250_000_000,
            "the failure had no {{duration}}"
        );
        assert_eq!(s.last_processed_unix_nanos, 1_000 + 5_000_000);
        let log = s.log.expect("log families");
        assert_eq!(
            (log.lines, log.readable, log.rotations),
            ([4, 1, 1, 0], 1, [0, 0])
        );
        assert!(source.next_due() > t0 + Duration::from_millis(5));
        let at = source.position().and_then(|p| parse_position(&p));
        assert_eq!(
            at.map(|p| p.offset),
            std::fs::metadata(&path).ok().map(|m| m.len())
        );
        // A new image opened at that position reads only what was written since.
        f.write_all(b"t w-1 widget 4 done status=ok took=5\n")
            .expect("append");
        let fresh = Metrics::new(parts, Duration::from_secs(60), t0);
        let position = source.position();
        let mut next = LogTail::open(
            &config(path.clone(), true),
            &fresh,
            position.as_deref(),
            t0,
            1_000,
        )
        .expect("reopen");
        next.step(t0 + Duration::from_millis(5), &fresh);
        let log = snap(&fresh).log.expect("log families");
        assert_eq!((snap(&fresh).processed, log.lines), (1, [1, 0, 0, 0]));
        std::fs::remove_dir_all(&dir).expect("clean up");
        let _ = source.step(t0 + Duration::from_millis(6), &metrics);
        let log = snap(&metrics).log.expect("log families");
        assert_eq!((log.readable, log.rotations), (0, [1, 0]));
    }

    #[test]
    fn a_carried_position_parses_strictly() {
        let at = |dev, ino, offset| Some(Position { dev, ino, offset });
        for (text, want) in [
            ("1,2,3", at(1, 2, 3)),
            ("0,0,0", at(0, 0, 0)),
            ("1,2", None),
            ("1,2,3,4", None),
            ("1,x,3", None),
            ("", None),
        ] {
            assert_eq!(parse_position(text), want, "{text:?}");
        }
    }
}
