//! The log source's families, present only with that source: lines read by result, whether
//! the log is readable, rotations by kind, files followed, and with labeled templates the
//! label sets in use and the widgets that overflowed the series cap. Owns their names, help,
//! kinds, label values, atomics and the methods that update them ([`Log`]), snapshot,
//! encoding and which of them a restart in place carries. It must not touch another owner's
//! families, nor know how a log is read (that is `source::log`) or how the exposition is
//! spelled. Where the source has read to is not a metric: the restart in place carries it
//! apart (`Source::position`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::render::{family, Encoder, Family, Kind, Number};
use crate::metrics::widgets::Labels;

const LINES: Family = family(
    "widget_exporter_log_lines_total",
    Kind::Counter,
    "Log lines read, by how they fared against the templates.",
);
const READABLE: Family = family(
    "widget_exporter_log_readable",
    Kind::Gauge,
    "1 while the followed log (for a glob, its directory) is readable, else 0.",
);
const ROTATIONS: Family = family(
    "widget_exporter_log_rotations_total",
    Kind::Counter,
    "Rotations of the followed log seen, by kind.",
);
const FILES: Family = family(
    "widget_exporter_log_files",
    Kind::Gauge,
    "Log files followed now (a glob may match several; 1 or 0 for a single path).",
);
const SERIES: Family = family(
    "widget_exporter_log_series",
    Kind::Gauge,
    "Distinct label sets in use on the widget families, the overflow series not included.",
);
const OVERFLOW: Family = family(
    "widget_exporter_log_label_overflow_total",
    Kind::Counter,
    "Widgets counted in the overflow series: their label set was new once the series cap was reached.",
);

/// How a log line fared (the `result` label of the lines read).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineResult {
    /// It matched a template and was counted.
    Matched,
    /// It matched no template.
    Unmatched,
    /// It matched a template but its duration did not parse or was out of range.
    Invalid,
    /// It was longer than the line limit and skipped.
    TooLong,
}

impl LineResult {
    /// Every result, in label order (`result as usize` is its index).
    const ALL: [LineResult; 4] = [
        LineResult::Matched,
        LineResult::Unmatched,
        LineResult::Invalid,
        LineResult::TooLong,
    ];

    /// The `result` label value.
    fn as_str(self) -> &'static str {
        match self {
            LineResult::Matched => "matched",
            LineResult::Unmatched => "unmatched",
            LineResult::Invalid => "invalid",
            LineResult::TooLong => "too_long",
        }
    }
}

/// How the followed log was rotated (the `kind` label of the rotations).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Renamed away and replaced by a new file (logrotate's default).
    Rename,
    /// Truncated in place (logrotate's `copytruncate`).
    Truncate,
}

impl Rotation {
    /// Every kind, in label order (`kind as usize` is its index).
    const ALL: [Rotation; 2] = [Rotation::Rename, Rotation::Truncate];

    /// The `kind` label value.
    fn as_str(self) -> &'static str {
        match self {
            Rotation::Rename => "rename",
            Rotation::Truncate => "truncate",
        }
    }
}

/// The live log values, updated by the log source with relaxed atomics.
#[derive(Debug, Default)]
pub(crate) struct Log {
    lines: [AtomicU64; LineResult::ALL.len()],
    readable: AtomicU64,
    rotations: [AtomicU64; Rotation::ALL.len()],
    files: AtomicU64,
    overflow: AtomicU64,
}

impl Log {
    /// The families' values, with the widget families' label sets (`labels`) to count and
    /// to render in place.
    pub(crate) fn snapshot(&self, labels: &Labels) -> LogSnapshot {
        LogSnapshot {
            lines: std::array::from_fn(|i| self.lines[i].load(Relaxed)),
            readable: self.readable.load(Relaxed),
            rotations: std::array::from_fn(|i| self.rotations[i].load(Relaxed)),
            files: self.files.load(Relaxed),
            overflow: self.overflow.load(Relaxed),
            labels: labels.clone(),
        }
    }

    /// What a restart in place carries: the counters, not whether the log is readable nor
    /// how many files are followed.
    pub(crate) fn carried<'a>(&'a self, out: &mut Vec<&'a AtomicU64>) {
        out.extend(&self.lines);
        out.extend(&self.rotations);
        out.push(&self.overflow);
    }
}

/// The families of the log source.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSnapshot {
    /// Per [`LineResult`], in label order.
    pub lines: [u64; LineResult::ALL.len()],
    /// 1 while the log is readable, else 0.
    pub readable: u64,
    /// Per [`Rotation`], in label order.
    pub rotations: [u64; Rotation::ALL.len()],
    /// Files followed now.
    pub files: u64,
    /// Widgets counted in the overflow series.
    pub overflow: u64,
    /// The widget families' label sets (rendered with the widget families).
    pub(crate) labels: Labels,
}

impl LogSnapshot {
    /// Writes the log families.
    pub(crate) fn encode(&self, e: &mut Encoder<'_>) {
        e.labeled_counters(
            &LINES,
            "result",
            LineResult::ALL
                .iter()
                .zip(&self.lines)
                .map(|(r, &n)| (r.as_str(), n)),
        );
        e.gauge(&READABLE, Number::Int(self.readable));
        e.labeled_counters(
            &ROTATIONS,
            "kind",
            Rotation::ALL
                .iter()
                .zip(&self.rotations)
                .map(|(k, &n)| (k.as_str(), n)),
        );
        e.gauge(&FILES, Number::Int(self.files));
        if self.labels.any() {
            e.gauge(&SERIES, Number::Int(self.labels.len() as u64));
            e.counter(&OVERFLOW, self.overflow);
        }
    }
}

impl Log {
    /// Counts one log line.
    pub(crate) fn count_line(&self, result: LineResult) {
        self.lines[result as usize].fetch_add(1, Relaxed);
    }

    /// Publishes whether the followed log is readable.
    pub(crate) fn set_readable(&self, readable: bool) {
        self.readable.store(u64::from(readable), Relaxed);
    }

    /// Counts one rotation of the followed log.
    pub(crate) fn count_rotation(&self, kind: Rotation) {
        self.rotations[kind as usize].fetch_add(1, Relaxed);
    }

    /// Publishes how many log files are followed.
    pub(crate) fn set_files(&self, files: usize) {
        self.files.store(files as u64, Relaxed);
    }

    /// Counts one widget in the overflow series (as it is counted in the widget families).
    pub(crate) fn count_label_overflow(&self) {
        self.overflow.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::{LineResult, Rotation};
    use crate::host::process::ProcessStats;
    use crate::metrics::render::{render, Format};
    use crate::metrics::{Metrics, Parts};

    /// Each count lands on the sample of its own label value.
    #[test]
    fn counts_land_on_their_label() {
        let parts = Parts {
            log: true,
            ..Parts::default()
        };
        for (i, &result) in LineResult::ALL.iter().enumerate() {
            assert_eq!(
                result as usize, i,
                "{result:?}: ALL is in declaration order"
            );
            let m = Metrics::new(parts, Duration::from_secs(60), Instant::now());
            m.log.count_line(result);
            let mut out = String::new();
            render(&m.snapshot(ProcessStats::default()), Format::Text, &mut out);
            let want = format!(
                "\nwidget_exporter_log_lines_total{{result=\"{}\"}} 1\n",
                result.as_str()
            );
            assert!(out.contains(&want), "{want}{out}");
        }
        for (i, &kind) in Rotation::ALL.iter().enumerate() {
            assert_eq!(kind as usize, i, "{kind:?}: ALL is in declaration order");
            let m = Metrics::new(parts, Duration::from_secs(60), Instant::now());
            m.log.count_rotation(kind);
            let mut out = String::new();
            render(&m.snapshot(ProcessStats::default()), Format::Text, &mut out);
            let want = format!(
                "\nwidget_exporter_log_rotations_total{{kind=\"{}\"}} 1\n",
                kind.as_str()
            );
            assert!(out.contains(&want), "{want}{out}");
        }
    }
}
