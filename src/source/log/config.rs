//! The log source's flags and its validated config, in two stages: [`LogFlags`] as read
//! (the required path and finished template may still be missing), then [`LogConfig`], where
//! they are not `Option`s and the templates are tied together in a [`Classifier`] (label
//! names across templates). The log source and the check mode open from a [`LogConfig`] and
//! check nothing again. Pure, but for [`LogConfig::reading_group`], which looks at the file
//! for the printed unit.

use std::path::PathBuf;
use std::time::Duration;

use crate::config::{format_duration, given, parse_duration, unless, Flag, Row, Scope, Takes};
use crate::error::Error;
use crate::source::log::classify::Classifier;
use crate::source::log::files::{Glob, DEFAULT_MAX_FILES, MAX_FILES_LIMIT};
use crate::source::log::labels::{DEFAULT_MAX_SERIES, MAX_SERIES_LIMIT};
use crate::source::log::template::{Template, Unit};

/// Bounds of `--widget.log.poll-interval`: often enough to matter, rare enough to stay idle.
const MIN_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_secs(60);

/// A template as the operator wrote it, and compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    /// The flag value, to spell it back in printed units.
    pub(crate) text: String,
    /// The compiled matcher.
    pub(crate) template: Template,
}

impl Pattern {
    /// Compiles a flag value; with `need_duration` it must contain `{duration}`.
    pub(crate) fn parse(text: &str, need_duration: bool) -> Result<Pattern, &'static str> {
        Ok(Pattern {
            text: text.to_owned(),
            template: Template::parse(text.as_bytes(), need_duration)?,
        })
    }
}

/// The log source's flags as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogFlags {
    /// `--widget.log.path`.
    pub(crate) path: Option<PathBuf>,
    /// `--widget.log.finished`.
    pub(crate) finished: Option<Pattern>,
    /// `--widget.log.failed`.
    pub(crate) failed: Option<Pattern>,
    /// `--widget.log.started`.
    pub(crate) started: Option<Pattern>,
    /// `--widget.log.duration-unit`.
    pub(crate) unit: Unit,
    /// `--widget.log.poll-interval`.
    pub(crate) poll_interval: Duration,
    /// `--widget.log.max-series`.
    pub(crate) max_series: usize,
    /// `--widget.log.max-files`.
    pub(crate) max_files: usize,
    /// `--widget.log.check`.
    pub(crate) check: bool,
}

impl Default for LogFlags {
    fn default() -> Self {
        LogFlags {
            path: None,
            finished: None,
            failed: None,
            started: None,
            unit: Unit::S,
            poll_interval: Duration::from_secs(1),
            max_series: DEFAULT_MAX_SERIES,
            max_files: DEFAULT_MAX_FILES,
            check: false,
        }
    }
}

/// The log source's settings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogConfig {
    /// `--widget.log.path` (`-` is standard input).
    pub(crate) path: PathBuf,
    /// `--widget.log.finished`: contains `{duration}`.
    pub(crate) finished: Pattern,
    /// `--widget.log.failed`.
    pub(crate) failed: Option<Pattern>,
    /// `--widget.log.started`.
    pub(crate) started: Option<Pattern>,
    /// `--widget.log.duration-unit`.
    pub(crate) unit: Unit,
    /// `--widget.log.poll-interval`: from 10ms to 1m.
    pub(crate) poll_interval: Duration,
    /// `--widget.log.max-series`: from 1 to [`MAX_SERIES_LIMIT`].
    pub(crate) max_series: usize,
    /// `--widget.log.max-files`: from 1 to [`MAX_FILES_LIMIT`].
    pub(crate) max_files: usize,
    /// `--widget.log.check`: read the log once, report, exit.
    pub(crate) check: bool,
}

impl LogConfig {
    /// The templates tied together. Validation built one already, so this cannot fail.
    pub(crate) fn classifier(&self) -> Classifier {
        classifier(
            &self.finished,
            self.failed.as_ref(),
            self.started.as_ref(),
            self.unit,
        )
        .expect("validate tied these templates together")
    }
}

/// The templates tied together, or why they cannot be.
fn classifier(
    finished: &Pattern,
    failed: Option<&Pattern>,
    started: Option<&Pattern>,
    unit: Unit,
) -> Result<Classifier, &'static str> {
    Classifier::new(
        finished.template.clone(),
        failed.map(|p| p.template.clone()),
        started.map(|p| p.template.clone()),
        unit,
    )
}

impl LogConfig {
    /// The group a service must join to read the configured log: the file's group (by
    /// number) when only that group may read it (mode `0640` and the like).
    #[must_use]
    pub(crate) fn reading_group(&self) -> Option<u32> {
        use std::os::unix::fs::MetadataExt;
        let meta = std::fs::metadata(&self.path).ok()?;
        (meta.mode() & 0o044 == 0o040).then(|| meta.gid())
    }
}

/// The log source's part of `--help`: the template rule.
pub(crate) const HELP: &str = r"A TEMPLATE matches a whole log line: * matches any text; {duration} takes the time a
widget took (231ms, 1.5s; a bare number is in --widget.log.duration-unit) and is required
in --widget.log.finished; {label:NAME} takes a label value (at most 4 per template, each
followed by literal text or ending the template); \*, \{ and \\ match *, { and \.
";

/// The log source's example in `--help`.
pub(crate) const EXAMPLE: &str = r#"Count a log whose lines end "done status=ok took=231ms" or "done status=failed"; try
the templates on the log first with --widget.log.check, then run without it:
  widget-exporter --widget.source=log --widget.log.path=/var/log/widgets/app.log \
    --widget.log.finished='* done status=ok took={duration}' \
    --widget.log.failed='* done status=failed*'
"#;

/// Reads a template flag into its slot.
fn template(
    slot: &mut Option<Pattern>,
    v: Option<&str>,
    need_duration: bool,
) -> Result<(), String> {
    *slot = Some(Pattern::parse(given(v), need_duration)?);
    Ok(())
}

/// The log source's flags, in `--help` order.
pub(crate) const FLAGS: &[Row<LogFlags, LogConfig>] = &[
    Row {
        flag: Flag {
            name: "--widget.log.path",
            short: None,
            takes: Takes::Value,
            syntax: "FILE",
            default: "",
            help: "the log to follow (- or a FIFO: a stream; * or ?: a glob)",
            scope: Scope::Source,
        },
        apply: |p, v| {
            if given(v).is_empty() {
                return Err("must not be empty".into());
            }
            let path = PathBuf::from(given(v));
            Glob::parse(&path)?;
            p.path = Some(path);
            Ok(())
        },
        show: |c| Some(c.path.display().to_string()),
    },
    Row {
        flag: Flag {
            name: "--widget.log.finished",
            short: None,
            takes: Takes::Value,
            syntax: "TEMPLATE",
            default: "",
            help: "a matching line is one finished widget ({label:NAME})",
            scope: Scope::Source,
        },
        apply: |p, v| template(&mut p.finished, v, true),
        show: |c| Some(c.finished.text.clone()),
    },
    Row {
        flag: Flag {
            name: "--widget.log.failed",
            short: None,
            takes: Takes::Value,
            syntax: "TEMPLATE",
            default: "",
            help: "a line matching it is one failed widget",
            scope: Scope::Source,
        },
        apply: |p, v| template(&mut p.failed, v, false),
        show: |c| c.failed.as_ref().map(|p| p.text.clone()),
    },
    Row {
        flag: Flag {
            name: "--widget.log.started",
            short: None,
            takes: Takes::Value,
            syntax: "TEMPLATE",
            default: "",
            help: "a line matching it is one widget started",
            scope: Scope::Source,
        },
        apply: |p, v| {
            template(&mut p.started, v, false)?;
            if p.started
                .as_ref()
                .is_some_and(|t| !t.template.label_names().is_empty())
            {
                p.started = None;
                return Err(
                    "takes no {label:NAME}: a started widget has no outcome to label".into(),
                );
            }
            Ok(())
        },
        show: |c| c.started.as_ref().map(|p| p.text.clone()),
    },
    Row {
        flag: Flag {
            name: "--widget.log.duration-unit",
            short: None,
            takes: Takes::Value,
            syntax: "UNIT",
            default: "s",
            help: "unit of a bare {duration} number: s, ms, us, ns",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.unit = Unit::parse(given(v)).ok_or("expected s, ms, us or ns")?;
            Ok(())
        },
        show: |c| {
            unless(&c.unit, &LogFlags::default().unit, || {
                c.unit.as_str().to_owned()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.log.poll-interval",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "1s",
            help: "how often the log is checked between scrapes",
            scope: Scope::Source,
        },
        apply: |p, v| {
            let poll = parse_duration(given(v))?;
            if poll < MIN_POLL || poll > MAX_POLL {
                return Err("must be from 10ms to 1m".into());
            }
            p.poll_interval = poll;
            Ok(())
        },
        show: |c| {
            unless(&c.poll_interval, &LogFlags::default().poll_interval, || {
                format_duration(c.poll_interval)
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.log.max-series",
            short: None,
            takes: Takes::Value,
            syntax: "N",
            default: "100",
            help: "most label sets; more count as __overflow__",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.max_series = count(v, MAX_SERIES_LIMIT)?;
            Ok(())
        },
        show: |c| {
            unless(&c.max_series, &LogFlags::default().max_series, || {
                c.max_series.to_string()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.log.max-files",
            short: None,
            takes: Takes::Value,
            syntax: "N",
            default: "64",
            help: "most files a glob follows at once",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.max_files = count(v, MAX_FILES_LIMIT)?;
            Ok(())
        },
        show: |c| {
            unless(&c.max_files, &LogFlags::default().max_files, || {
                c.max_files.to_string()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.log.check",
            short: None,
            takes: Takes::Nothing,
            syntax: "",
            default: "",
            help: "read the log once, print what the templates count, exit",
            scope: Scope::Source,
        },
        apply: |p, _| {
            p.check = true;
            Ok(())
        },
        // A deployed command never holds it: a printed unit leaves it out.
        show: |_| None,
    },
];

/// A whole number from 1 to `max`.
fn count(v: Option<&str>, max: usize) -> Result<usize, String> {
    given(v)
        .parse::<usize>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| format!("expected a whole number from 1 to {max}"))
}

/// The required flags, then the validated config.
pub(crate) fn validate(flags: LogFlags) -> Result<LogConfig, Error> {
    let required =
        |flag: &str| Error::Usage(format!("flag {flag} is required with --widget.source=log"));
    let path = flags.path.ok_or_else(|| required("--widget.log.path"))?;
    let finished = flags
        .finished
        .ok_or_else(|| required("--widget.log.finished"))?;
    classifier(
        &finished,
        flags.failed.as_ref(),
        flags.started.as_ref(),
        flags.unit,
    )
    .map_err(|e| Error::Usage(e.to_owned()))?;
    Ok(LogConfig {
        path,
        finished,
        failed: flags.failed,
        started: flags.started,
        unit: flags.unit,
        poll_interval: flags.poll_interval,
        max_series: flags.max_series,
        max_files: flags.max_files,
        check: flags.check,
    })
}
