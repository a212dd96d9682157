//! What the exporter exposes. Families are grouped by owner, one file each: `widgets` (any
//! source's widgets), `http` (the HTTP output), `textfile` (the textfile output), `log` (the
//! log source) and `process` (the exporter's build and `process_*`). An owner's file holds
//! all of a family: its name, help and kind, its label values, the owner's part of
//! [`Metrics`] (the atomics the loop updates, and the methods that update them), the owner's
//! snapshot and how it reads them, how they are encoded, and which of them a restart in
//! place carries. An owner's file names neither [`Metrics`] nor [`Snapshot`]: callers update
//! a part (`metrics.http.count_close(reason)`), and this file puts the parts together.
//!
//! This file is the glue: [`Metrics`] (one part per owner), [`Parts`] (which optional owners
//! this exporter has), the plain [`Snapshot`] a scrape reads once (one owner's snapshot per
//! field) and the order in which it is encoded, what the textfile holds, and the text a
//! restart in place carries. It spells no metric name. It must not know how the exposition
//! is spelled (that is `render`, which knows nothing of these families) nor where requests
//! come from (`output`).
//!
//! To add a family, edit its owner's file only, in five places, top to bottom:
//! 1. declare it (`render::family`: name, kind, help) beside the others;
//! 2. add its atomic to the owner's part, and a method of the part that updates it;
//! 3. add its value to the owner's snapshot and the line of the part's `snapshot` that reads
//!    it;
//! 4. write it in the owner's `encode`, where it is to appear in the exposition;
//! 5. if a restart in place must not reset it (a counter), add it to the owner's `carried`.
//!
//! No other file changes, widget families included (a `process_*` family needs its value in
//! `host::process` first). The golden files under `tests/golden/` then change
//! (`UPDATE_GOLDEN=1`); no list of families needs the new one, the tests read them from a
//! rendered exposition. A new owner is a new file and six lines here: its part of
//! [`Metrics`] and the line of `new` that makes it, its field of [`Snapshot`] and the line of
//! `snapshot_at` that reads it (an `Option`, with a [`Parts`] switch, if the owner is
//! optional), one line in `encode` and one in `counters`.

mod http;
mod log;
mod process;
pub mod render;
mod textfile;
mod widgets;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::host::process::ProcessStats;
use crate::metrics::render::{Encoder, Exposition};

pub use http::{CloseReason, Http, HttpSnapshot, HTTP_CODES};
pub use log::{LineResult, LogSnapshot, Rotation};
pub use textfile::TextfileSnapshot;
pub(crate) use widgets::{LabelSet, OVERFLOW_VALUE};
pub use widgets::{Widgets, WidgetsSnapshot, BUCKETS};

/// Which optional families this exporter has, fixed at start by its source and outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
// Each bool switches one independent group of families; a bitset would only hide that.
#[allow(clippy::struct_excessive_bools)]
pub struct Parts {
    /// `widgets_in_progress`: the source knows when widgets start.
    pub in_progress: bool,
    /// The HTTP families (requests, self-probe, connections, restarts in place): HTTP is
    /// served.
    pub http: bool,
    /// The textfile families: `--textfile.path` is written.
    pub textfile: bool,
    /// The log families (lines, readable, rotations): the source is a log.
    pub log: bool,
}

impl Default for Parts {
    fn default() -> Self {
        Parts {
            in_progress: true,
            http: true,
            textfile: false,
            log: false,
        }
    }
}

/// The live values, updated by the loop with relaxed atomics (one writer; readers need no
/// ordering beyond each value being whole). One part per owner, declared with the methods
/// that update it in the owner's file.
#[derive(Debug)]
pub struct Metrics {
    parts: Parts,
    /// The widget families, updated by the source.
    pub widgets: Widgets,
    /// The HTTP families, updated by the HTTP output.
    pub http: Http,
    /// The textfile families, updated by the textfile output.
    pub(crate) textfile: textfile::Textfile,
    /// The log families, updated by the log source.
    pub(crate) log: log::Log,
}

impl Default for Metrics {
    /// Every family of the simulation served over HTTP, a 60 s window starting now.
    fn default() -> Self {
        Metrics::new(Parts::default(), Duration::from_secs(60), Instant::now())
    }
}

impl Metrics {
    /// Metrics with the optional families of `parts`, and an average window of `window`
    /// whose slots count from `start`.
    #[must_use]
    pub(crate) fn new(parts: Parts, window: Duration, start: Instant) -> Self {
        Metrics {
            parts,
            widgets: Widgets::new(window, start),
            http: Http::default(),
            textfile: textfile::Textfile::default(),
            log: log::Log::default(),
        }
    }

    /// Reads every value once into a plain snapshot, the average window as of now.
    #[must_use]
    pub fn snapshot(&self, process: ProcessStats) -> Snapshot {
        self.snapshot_at(process, Instant::now())
    }

    /// Like [`Metrics::snapshot`], with the average window as of `now`.
    #[must_use]
    pub(crate) fn snapshot_at(&self, process: ProcessStats, now: Instant) -> Snapshot {
        let p = self.parts;
        Snapshot {
            widgets: self.widgets.snapshot(now, p.in_progress),
            http: p.http.then(|| self.http.snapshot()),
            restarts: self.http.restarts(),
            textfile: p.textfile.then(|| self.textfile.snapshot()),
            log: p.log.then(|| self.log.snapshot(&self.widgets.labels)),
            process,
        }
    }

    /// What the textfile written at `now` (`unix_nanos`) says: no `process_*` families
    /// (node_exporter has its own, and duplicates fail its scrape), and the textfile families
    /// as the written file states them.
    #[must_use]
    pub(crate) fn textfile_snapshot(&self, now: Instant, unix_nanos: u64) -> Snapshot {
        let mut s = self.snapshot_at(ProcessStats::default(), now);
        if let Some(t) = &mut s.textfile {
            t.as_written(unix_nanos);
        }
        s
    }

    /// The counters, as text to hand to a re-executed image of this process (so that
    /// restarting in place does not reset them): a line of numbers, then the label sets of
    /// the widget families with their counts, if the source labels its widgets.
    #[must_use]
    pub(crate) fn export_counters(&self) -> String {
        let mut out = String::from("v1");
        for c in self.counters() {
            out.push(',');
            out.push_str(&c.load(Relaxed).to_string());
        }
        self.widgets.export_labels(&mut out);
        out
    }

    /// Restores counters written by [`Metrics::export_counters`]; false (and nothing
    /// changed) if the text is not exactly that shape.
    pub(crate) fn import_counters(&self, text: &str) -> bool {
        let (numbers, labels) = match text.split_once('\n') {
            Some((numbers, labels)) => (numbers, Some(labels)),
            None => (text, None),
        };
        let mut parts = numbers.split(',');
        let counters = self.counters();
        if parts.next() != Some("v1") {
            return false;
        }
        let values: Vec<u64> = parts.map_while(|p| p.parse().ok()).collect();
        if values.len() != counters.len() || numbers.split(',').count() != counters.len() + 1 {
            return false;
        }
        if labels.is_some_and(|l| !self.widgets.import_labels(l)) {
            return false;
        }
        for (c, v) in counters.iter().zip(values) {
            c.store(v, Relaxed);
        }
        true
    }

    /// Every value a restart in place carries, owner by owner, in a fixed order.
    fn counters(&self) -> Vec<&AtomicU64> {
        let mut all = Vec::new();
        self.widgets.carried(&mut all);
        self.http.carried(&mut all);
        self.textfile.carried(&mut all);
        self.log.carried(&mut all);
        all
    }
}

/// Plain values read once per scrape; what `render` turns into an exposition. Each owner's
/// values are one field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// The widget families.
    pub widgets: WidgetsSnapshot,
    /// The HTTP families; `None` when HTTP is not served (left out).
    pub http: Option<HttpSnapshot>,
    /// Restarts in place so far (written with the HTTP families: only HTTP restarts).
    pub restarts: u64,
    /// The textfile families; `None` without `--textfile.path` (left out).
    pub textfile: Option<TextfileSnapshot>,
    /// The log source's families; `None` with another source (left out).
    pub log: Option<LogSnapshot>,
    /// From `/proc`; a `None` field leaves its family out.
    pub process: ProcessStats,
}

impl Exposition for Snapshot {
    /// Writes every family, owner by owner, in exposition order.
    fn encode(&self, e: &mut Encoder<'_>) {
        let logged = self.log.as_ref().map(|l| &l.labels);
        self.widgets.encode(logged, e);
        process::encode_build_info(e);
        if let Some(http) = &self.http {
            http.encode(self.restarts, e);
        }
        if let Some(t) = &self.textfile {
            t.encode(e);
        }
        if let Some(log) = &self.log {
            log.encode(e);
        }
        process::encode(&self.process, e);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_export_and_import() {
        let a = Metrics::default();
        a.widgets
            .finished(Some(Duration::from_millis(120)), true, 99, Instant::now());
        a.http.count_request(404);
        a.http.count_close(CloseReason::Body);
        a.http.set_connections(7);
        a.log.count_line(LineResult::Invalid);
        a.log.count_rotation(Rotation::Truncate);
        let text = a.export_counters();
        let b = Metrics::default();
        assert!(b.import_counters(&text));
        let (sa, sb) = (
            a.snapshot(ProcessStats::default()),
            b.snapshot(ProcessStats::default()),
        );
        let http = |s: &Snapshot| s.http.clone().expect("HTTP families");
        assert_eq!(http(&sb).connections, 0, "gauges are not carried");
        assert_eq!(sb.widgets.average_nanos, None, "nor is the window");
        assert_eq!(
            sa,
            Snapshot {
                http: Some(HttpSnapshot {
                    connections: 7,
                    ..http(&sb)
                }),
                widgets: WidgetsSnapshot {
                    average_nanos: sa.widgets.average_nanos,
                    ..sb.widgets.clone()
                },
                ..sb
            }
        );
        for bad in [
            "",
            "v2,1",
            "v1",
            "v1,x",
            &format!("{text},1"),
            &text[..text.len() - 2],
        ] {
            let c = Metrics::default();
            assert!(!c.import_counters(bad), "{bad:?}");
            assert_eq!(c.snapshot(ProcessStats::default()).widgets.processed, 0);
        }
    }

    /// Every family as both formats type it, with every part on: counters end in `_total`
    /// and info families in `_info` (which OpenMetrics drops), nothing else does, and no name
    /// is used twice.
    #[test]
    fn family_names_match_their_kind() {
        use crate::metrics::render::{render, Format};
        let parts = Parts {
            in_progress: true,
            http: true,
            textfile: true,
            log: true,
        };
        let process = ProcessStats::all_known();
        let s = Metrics::new(parts, Duration::from_secs(60), Instant::now()).snapshot(process);
        let types = |format| {
            let mut out = String::new();
            render(&s, format, &mut out);
            out.lines()
                .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
                .map(|(name, kind)| (name.to_owned(), kind.to_owned()))
                .collect::<Vec<_>>()
        };
        let (text, om) = (types(Format::Text), types(Format::OpenMetrics));
        for owned in [
            "widgets_processed_total",
            "widget_exporter_build_info",
            "widget_exporter_http_requests_total",
            "widget_exporter_textfile_writes_total",
            "widget_exporter_log_lines_total",
            "process_cpu_seconds_total",
        ] {
            assert!(text.iter().any(|(n, _)| n == owned), "{owned}: {text:?}");
        }
        assert_eq!(text.len(), om.len());
        for ((name, kind), (om_name, om_kind)) in text.iter().zip(&om) {
            let suffix = match om_kind.as_str() {
                "counter" => "_total",
                "info" => "_info",
                _ => "",
            };
            assert_eq!(*name, format!("{om_name}{suffix}"), "{om_kind}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{name}");
            assert_eq!(om_kind == "info", name.ends_with("_info"), "{name}");
        }
        let mut names: Vec<_> = text.iter().map(|(n, _)| n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), text.len());
    }
}
