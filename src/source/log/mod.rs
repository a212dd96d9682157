//! The log source: real widgets counted from the application's own log. Owns its registry
//! entry (`KIND`; its flags and validated config are in `config`), the check mode it offers
//! through the registry (`check`), and the live source: it follows the path (one file, or a
//! glob of files) through `files`, decides what each line means through `classify`, and puts
//! each widget in its label set through `labels`, under the series cap. It never renders,
//! serves or blocks, and it spells no metric names.

mod check;
mod classify;
pub(crate) mod config;
mod files;
mod labels;
mod tail;
pub(crate) mod template;

use std::time::{Duration, Instant};

use crate::config::SourceFlags;
use crate::error::Error;
use crate::log;
use crate::metrics::{LabelSet, LineResult, Metrics, Rotation};
use crate::source::kind::{Checked, Families, Kind, Reads, Source, Step};
use crate::source::log::check::Check;
use crate::source::log::classify::{Classifier, Line};
use crate::source::log::config::{LogConfig, LogFlags};
use crate::source::log::files::{decode_positions, encode_positions, Follower};
use crate::source::log::labels::{LabelSets, Series};
use crate::source::log::tail::Event;
use crate::source::log::template::MAX_LABELS;

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
    check: |config| config.check.then(|| check(config)),
};

/// The check mode: the path read once from its start, and the report.
fn check(config: &LogConfig) -> Checked {
    let mut run = Check::new(config.classifier(), config.max_series);
    let read = run.read_path(&config.path);
    Checked {
        report: run.report(),
        error: read.err(),
    }
}

/// Widgets from a followed log.
pub(crate) struct LogTail {
    follower: Follower,
    classifier: Classifier,
    sets: LabelSets,
    max_series: usize,
    poll: Duration,
    next_due: Instant,
    start: Instant,
    start_unix_nanos: u64,
}

impl LogTail {
    /// Opens the log (a missing file or directory is waited for; a directory where a file is
    /// expected is an error). Resumes each file at `position`, where a previous image of this
    /// process stopped ([`Source::position`]), if the path still names that file. The label
    /// sets a restart in place carried in `metrics` are known again, in the same order.
    pub(crate) fn open(
        config: &LogConfig,
        metrics: &Metrics,
        position: Option<&str>,
        start: Instant,
        start_unix_nanos: u64,
    ) -> Result<LogTail, Error> {
        let path = &config.path;
        let mut follower = Follower::open(path, config.max_files, start)
            .map_err(|e| Error::Usage(e.to_owned()))?;
        if let Some(text) = position {
            let resumed = follower.resume(&decode_positions(text));
            if resumed > 0 {
                log::info(
                    "resumed the log where the previous image stopped",
                    &[("files", &resumed)],
                );
            }
        }
        metrics.log.set_readable(follower.readable());
        metrics.log.set_files(follower.files());
        let classifier = config.classifier();
        let mut sets = LabelSets::new(classifier.names(), config.max_series);
        for values in metrics.widgets.label_with(classifier.names()) {
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            sets.lookup(&values);
        }
        // A missing or unreadable log has had its warning, and "log readable again" follows
        // when it can be read: a line saying it is followed would be untrue.
        if follower.readable() {
            log::info("following the log", &[("path", &path.display())]);
        }
        Ok(LogTail {
            follower,
            classifier,
            sets,
            max_series: config.max_series,
            poll: config.poll_interval,
            next_due: start,
            start,
            start_unix_nanos,
        })
    }
}

/// What the lines of one step change: the templates, the label sets and the cap.
struct Counting<'a> {
    classifier: &'a Classifier,
    sets: &'a mut LabelSets,
    max_series: usize,
    metrics: &'a Metrics,
    now: Instant,
    unix: u64,
    events: u32,
}

impl Counting<'_> {
    fn line(&mut self, line: &[u8]) {
        let metrics = self.metrics;
        match self.classifier.classify(line) {
            Line::Finished {
                failed,
                duration,
                labels,
            } => {
                match self.label_set(&labels) {
                    None => metrics
                        .widgets
                        .finished(duration, failed, self.unix, self.now),
                    Some(set) => {
                        metrics
                            .widgets
                            .labeled_finished(set, duration, failed, self.unix, self.now);
                    }
                }
                metrics.log.count_line(LineResult::Matched);
                self.events = self.events.saturating_add(1);
            }
            Line::Started => {
                metrics.widgets.started();
                metrics.log.count_line(LineResult::Matched);
                self.events = self.events.saturating_add(1);
            }
            Line::Invalid(_) => metrics.log.count_line(LineResult::Invalid),
            Line::Unmatched => metrics.log.count_line(LineResult::Unmatched),
        }
    }

    /// The label set a widget counts in; `None` when the templates have no labels.
    fn label_set(&mut self, labels: &[&str; MAX_LABELS]) -> Option<LabelSet> {
        let n = self.classifier.names().len();
        if n == 0 {
            return None;
        }
        let values = &labels[..n];
        Some(match self.sets.lookup(values) {
            Series::Known(i) => LabelSet::Admitted(i),
            Series::New(_) => LabelSet::Admitted(self.metrics.widgets.admit_label_set(values)),
            Series::Overflow { streak_started } => {
                self.metrics.log.count_label_overflow();
                if streak_started {
                    let names = self.classifier.names().join(",");
                    let set = values.join(",");
                    log::warn(
                        "label sets past --widget.log.max-series count in the __overflow__ series",
                        &[
                            ("max_series", &self.max_series),
                            ("labels", &names),
                            ("first_set", &set),
                        ],
                    );
                }
                LabelSet::Overflow
            }
        })
    }
}

impl Source for LogTail {
    fn step(&mut self, now: Instant, metrics: &Metrics) -> Step {
        // "When the line was read": one clock reading per step, as the simulation does.
        let since = now.saturating_duration_since(self.start).as_nanos();
        let unix = self
            .start_unix_nanos
            .saturating_add(u64::try_from(since).unwrap_or(u64::MAX));
        let mut counting = Counting {
            classifier: &self.classifier,
            sets: &mut self.sets,
            max_series: self.max_series,
            metrics,
            now,
            unix,
            events: 0,
        };
        let more = self.follower.step(now, |event| match event {
            Event::Line(line) => counting.line(line),
            Event::TooLong => metrics.log.count_line(LineResult::TooLong),
            Event::Renamed => metrics.log.count_rotation(Rotation::Rename),
            Event::Truncated => metrics.log.count_rotation(Rotation::Truncate),
        });
        let events = counting.events;
        self.sets.end_step(now);
        metrics.log.set_readable(self.follower.readable());
        metrics.log.set_files(self.follower.files());
        self.next_due = if more {
            now
        } else {
            let poll = now + self.poll;
            self.follower.drain_deadline().map_or(poll, |d| d.min(poll))
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
        let positions = self.follower.positions();
        (!positions.is_empty()).then(|| encode_positions(&positions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::ProcessStats;
    use crate::metrics::render::{render, Format};
    use crate::metrics::{Parts, Snapshot};
    use crate::source::log::config::Pattern;
    use crate::source::log::files::decode_positions;
    use crate::source::log::template::Unit;
    use crate::testing::{append, TempDir};
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
            max_series: 100,
            max_files: 64,
            check: false,
        }
    }

    fn snap(m: &Metrics) -> Snapshot {
        m.snapshot(ProcessStats::default())
    }

    const PARTS: Parts = Parts {
        in_progress: true,
        http: false,
        textfile: false,
        log: true,
    };

    #[test]
    fn lines_become_widgets_and_counts() {
        let dir = TempDir::new("logtail");
        let path = dir.join("app.log");
        std::fs::write(&path, b"before start: not counted\n").expect("write");
        let t0 = Instant::now();
        let metrics = Metrics::new(PARTS, Duration::from_secs(60), t0);
        let mut source =
            LogTail::open(&config(path.clone(), true), &metrics, None, t0, 1_000).expect("open");
        append(
            &path,
            "t w-1 widget 1 start\nt w-1 widget 2 start\nt w-1 widget 1 done status=ok took=250\n\
             t w-1 widget 2 done status=failed took=1s\nnoise\n\
             t w-1 widget 3 done status=ok took=1.2.3s\n",
        );
        let step = source.step(t0 + Duration::from_millis(5), &metrics);
        assert_eq!(step.events, 4);
        let s = snap(&metrics);
        assert_eq!(
            (s.widgets.processed, s.widgets.failed, s.widgets.in_progress),
            (2, 1, Some(0))
        );
        assert_eq!(
            s.widgets.duration_sum_nanos, 250_000_000,
            "the failure had no {{duration}}"
        );
        assert_eq!(s.widgets.last_processed_unix_nanos, 1_000 + 5_000_000);
        let log = s.log.expect("log families");
        assert_eq!(
            (log.lines, log.readable, log.rotations, log.files),
            ([4, 1, 1, 0], 1, [0, 0], 1)
        );
        assert!(source.next_due() > t0 + Duration::from_millis(5));
        let at = source.position().map(|p| decode_positions(&p));
        assert_eq!(
            at.and_then(|p| p.first().map(|p| p.offset)),
            std::fs::metadata(&path).ok().map(|m| m.len())
        );
        // A new image opened at that position reads only what was written since.
        append(&path, "t w-1 widget 4 done status=ok took=5\n");
        let fresh = Metrics::new(PARTS, Duration::from_secs(60), t0);
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
        assert_eq!(
            (snap(&fresh).widgets.processed, log.lines),
            (1, [1, 0, 0, 0])
        );
        std::fs::remove_file(&path).expect("remove the log");
        let _ = source.step(t0 + Duration::from_millis(6), &metrics);
        let log = snap(&metrics).log.expect("log families");
        assert_eq!((log.readable, log.rotations), (0, [1, 0]));
    }

    /// Labeled widgets: one series per label set up to the cap, then the overflow series
    /// (and its counter); the sets and their counts survive a restart in place in the same
    /// order.
    #[test]
    fn label_sets_under_the_cap_and_across_a_restart() {
        let dir = TempDir::new("loglabels");
        let path = dir.join("app.log");
        std::fs::write(&path, b"").expect("write");
        let mut c = config(path.clone(), false);
        c.finished = Pattern::parse(
            "done status={label:status} w={label:worker} took={duration}",
            true,
        )
        .expect("parses");
        c.failed =
            Some(Pattern::parse("failed w={label:worker} why={label:why}", false).expect("parses"));
        c.max_series = 3;
        let t0 = Instant::now();
        let metrics = Metrics::new(PARTS, Duration::from_secs(60), t0);
        let mut source = LogTail::open(&c, &metrics, None, t0, 0).expect("open");
        append(
            &path,
            "done status=ok w=a took=100\ndone status=ok w=a took=200\nfailed w=b why=\"q\\\n\
             done status=ok w=c took=1\ndone status=ok w=d took=1\nfailed w=e why=x\n",
        );
        source.step(t0, &metrics);
        let text = |m: &Metrics| {
            let mut out = String::new();
            render(&snap(m), Format::Text, &mut out);
            out
        };
        let out = text(&metrics);
        for want in [
            "widgets_processed_total{status=\"ok\",worker=\"a\",why=\"\"} 2\n",
            "widgets_failed_total{status=\"\",worker=\"b\",why=\"\\\"q\\\\\"} 1\n",
            "widgets_processed_total{status=\"ok\",worker=\"c\",why=\"\"} 1\n",
            "widgets_processed_total{status=\"__overflow__\",worker=\"__overflow__\",why=\"__overflow__\"} 2\n",
            "widgets_failed_total{status=\"__overflow__\",worker=\"__overflow__\",why=\"__overflow__\"} 1\n",
            "widget_processing_duration_seconds_bucket{status=\"ok\",worker=\"a\",why=\"\",le=\"0.1\"} 1\n",
            "widget_processing_duration_seconds_sum{status=\"ok\",worker=\"a\",why=\"\"} 0.3\n",
            "widget_processing_duration_seconds_count{status=\"__overflow__\",worker=\"__overflow__\",why=\"__overflow__\"} 1\n",
            "widgets_processed_total 6\n",
            "widget_exporter_log_series 3\n",
            "widget_exporter_log_label_overflow_total 2\n",
        ] {
            if want.starts_with("widgets_processed_total 6") {
                assert!(!out.contains(want), "the totals are not written with labels");
            } else {
                assert!(out.contains(want), "{want}{out}");
            }
        }
        assert_eq!(snap(&metrics).widgets.processed, 6);
        // A restart in place: the counters and the sets, then a new line of a known set
        // counts in its series, not in the overflow.
        let carried = metrics.export_counters();
        let next = Metrics::new(PARTS, Duration::from_secs(60), t0);
        assert!(next.import_counters(&carried));
        let position = source.position();
        let mut again = LogTail::open(&c, &next, position.as_deref(), t0, 0).expect("reopen");
        append(&path, "done status=ok w=c took=1\n");
        again.step(t0, &next);
        let out = text(&next);
        assert!(
            out.contains("widgets_processed_total{status=\"ok\",worker=\"c\",why=\"\"} 2\n"),
            "{out}"
        );
        assert!(
            out.contains("widget_exporter_log_label_overflow_total 2\n"),
            "{out}"
        );
        assert!(out.contains("widget_exporter_log_series 3\n"), "{out}");
        // Another configuration's table is not taken: other names start empty.
        let other = Metrics::new(PARTS, Duration::from_secs(60), t0);
        assert!(other.import_counters(&carried));
        assert!(other.widgets.label_with(&["status".to_owned()]).is_empty());
    }
}
