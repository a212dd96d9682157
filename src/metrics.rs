//! What the exporter exposes: the one table of metric families (name, help, kind), the
//! atomics the loop updates, and the plain [`Snapshot`] a scrape reads once. This is the
//! only file that spells metric names. It must not know how the exposition is spelled
//! (that is `render`) nor where requests come from (`server`).
//!
//! To expose a new number: add a [`Family`] constant, a field to [`Metrics`] (if the loop
//! updates it) and to [`Snapshot`], and one line in [`Snapshot::encode`].

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::process::ProcessStats;
use crate::render::{Encoder, Number};

/// How a family is typed in the exposition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
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
pub struct Family {
    /// The sample name as written in the text format (with `_total`/`_info` where the kind has one).
    pub name: &'static str,
    /// One sentence, free of `\`, `"` and newlines (checked at compile time by `family`).
    pub help: &'static str,
    /// The family's type.
    pub kind: Kind,
}

/// Declares a family. Evaluated at compile time: a HELP text that would need escaping (`\`,
/// `"` or a newline) is a build error, so the renderer can copy HELP texts as they are.
const fn family(name: &'static str, kind: Kind, help: &'static str) -> Family {
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

/// Widgets finished, successful and failed.
pub const PROCESSED: Family = family(
    "widgets_processed_total",
    Kind::Counter,
    "Widgets that finished processing, successful and failed.",
);
/// Widgets that failed.
pub const FAILED: Family = family(
    "widgets_failed_total",
    Kind::Counter,
    "Widgets whose processing failed.",
);
/// 1 while a widget is processing.
pub const IN_PROGRESS: Family = family(
    "widgets_in_progress",
    Kind::Gauge,
    "Widgets being processed right now (1 or 0).",
);
/// Simulated processing time per widget.
pub const DURATION: Family = family(
    "widget_processing_duration_seconds",
    Kind::Histogram,
    "Simulated processing time of finished widgets.",
);
/// Mean over the average window.
pub const AVERAGE: Family = family(
    "average_processing_time_seconds",
    Kind::Gauge,
    "Mean processing time of the widgets finished within the average window, NaN when there were none.",
);
/// When the last widget finished.
pub const LAST_PROCESSED: Family = family(
    "widget_last_processed_timestamp_seconds",
    Kind::Gauge,
    "Unix time at which the last widget finished, 0 before the first.",
);
/// Version of the exporter.
pub const BUILD_INFO: Family = family(
    "widget_exporter_build_info",
    Kind::Info,
    "Build information of widget-exporter; the value is always 1.",
);
/// Requests answered, by status code.
pub const HTTP_REQUESTS: Family = family(
    "widget_exporter_http_requests_total",
    Kind::Counter,
    "HTTP requests answered by the exporter, by status code.",
);
/// Whether the loop's latest request to its own listener came back.
pub const SELF_PROBE: Family = family(
    "widget_exporter_self_probe_success",
    Kind::Gauge,
    "Whether the latest request the exporter sent to its own listener came back through the HTTP server (1) or not (0).",
);
/// Client connections open, as the connection guard last counted them.
pub const CONNECTIONS: Family = family(
    "widget_exporter_connections",
    Kind::Gauge,
    "Client connections open and not shut down, as of the connection guard's last scan.",
);
/// Connections the guard shut down.
pub const CONNECTIONS_CLOSED: Family = family(
    "widget_exporter_connections_closed_total",
    Kind::Counter,
    "Client connections the exporter shut down to protect itself, by reason.",
);
/// Restarts in place.
pub const RESTARTS: Family = family(
    "widget_exporter_restarts_in_place_total",
    Kind::Counter,
    "Times the exporter re-executed itself in place (same PID and socket) to shed threads, descriptors or memory that tiny_http could not free.",
);
/// Standard process metrics, worded as the official clients word them.
pub const PROCESS_CPU: Family = family(
    "process_cpu_seconds_total",
    Kind::Counter,
    "Total user and system CPU time spent in seconds.",
);
/// Resident set size.
pub const PROCESS_RSS: Family = family(
    "process_resident_memory_bytes",
    Kind::Gauge,
    "Resident memory size in bytes.",
);
/// Virtual memory size.
pub const PROCESS_VSIZE: Family = family(
    "process_virtual_memory_bytes",
    Kind::Gauge,
    "Virtual memory size in bytes.",
);
/// Process start time.
pub const PROCESS_START: Family = family(
    "process_start_time_seconds",
    Kind::Gauge,
    "Start time of the process since unix epoch in seconds.",
);
/// Open file descriptors.
pub const PROCESS_OPEN_FDS: Family = family(
    "process_open_fds",
    Kind::Gauge,
    "Number of open file descriptors.",
);
/// Soft limit on file descriptors.
pub const PROCESS_MAX_FDS: Family = family(
    "process_max_fds",
    Kind::Gauge,
    "Maximum number of open file descriptors.",
);

/// Every family, in exposition order.
pub const FAMILIES: &[Family] = &[
    PROCESSED,
    FAILED,
    IN_PROGRESS,
    DURATION,
    AVERAGE,
    LAST_PROCESSED,
    BUILD_INFO,
    HTTP_REQUESTS,
    SELF_PROBE,
    CONNECTIONS,
    CONNECTIONS_CLOSED,
    RESTARTS,
    PROCESS_CPU,
    PROCESS_RSS,
    PROCESS_VSIZE,
    PROCESS_START,
    PROCESS_OPEN_FDS,
    PROCESS_MAX_FDS,
];

/// Histogram bucket upper bounds: integer nanoseconds for exact bucketing, and the canonical
/// `le` spelling, identical in both formats. Fixed for the process lifetime; dense inside the
/// 0.1–0.5 s default range.
pub const BUCKETS: [(u64, &str); 14] = [
    (25_000_000, "0.025"),
    (50_000_000, "0.05"),
    (100_000_000, "0.1"),
    (150_000_000, "0.15"),
    (200_000_000, "0.2"),
    (250_000_000, "0.25"),
    (300_000_000, "0.3"),
    (400_000_000, "0.4"),
    (500_000_000, "0.5"),
    (750_000_000, "0.75"),
    (1_000_000_000, "1.0"),
    (2_500_000_000, "2.5"),
    (5_000_000_000, "5.0"),
    (10_000_000_000, "10.0"),
];

/// Status codes the exporter itself answers with; all present from the start at 0.
pub const HTTP_CODES: [(u16, &str); 5] = [
    (200, "200"),
    (400, "400"),
    (404, "404"),
    (405, "405"),
    (503, "503"),
];

/// Why the connection guard shut a connection down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No complete request within the first-request limit (slowloris, idle floods, header bombs).
    Slow = 0,
    /// Idle far longer than any scrape interval.
    Idle = 1,
    /// Over the connection cap.
    Cap = 2,
    /// Memory or thread use over its cap.
    Pressure = 3,
    /// The client stopped reading our responses.
    WriteTimeout = 4,
    /// The request announced a body (a scrape has none), which tiny_http would wait for.
    Body = 5,
}

impl CloseReason {
    /// Every reason, in label order.
    pub const ALL: [CloseReason; 6] = [
        CloseReason::Slow,
        CloseReason::Idle,
        CloseReason::Cap,
        CloseReason::Pressure,
        CloseReason::WriteTimeout,
        CloseReason::Body,
    ];

    /// The `reason` label value.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            CloseReason::Slow => "slow",
            CloseReason::Idle => "idle",
            CloseReason::Cap => "cap",
            CloseReason::Pressure => "pressure",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Body => "body",
        }
    }
}

/// The live values, updated by the loop with relaxed atomics (one writer; readers need no
/// ordering beyond each value being whole).
#[derive(Debug, Default)]
pub struct Metrics {
    processed: AtomicU64,
    failed: AtomicU64,
    in_progress: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    duration_buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_nanos: AtomicU64,
    window_sum_nanos: AtomicU64,
    window_count: AtomicU64,
    last_processed_unix_nanos: AtomicU64,
    http_requests: [AtomicU64; HTTP_CODES.len()],
    self_probe_success: AtomicU64,
    connections: AtomicU64,
    connections_closed: [AtomicU64; CloseReason::ALL.len()],
    restarts: AtomicU64,
}

impl Metrics {
    /// Marks a widget as started.
    pub fn widget_started(&self) {
        self.in_progress.store(1, Relaxed);
    }

    /// Records a finished widget: its simulated duration, outcome and wall-clock end.
    pub fn widget_finished(&self, duration: Duration, failed: bool, unix_nanos: u64) {
        let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
        let slot = BUCKETS
            .iter()
            .position(|&(bound, _)| nanos <= bound)
            .unwrap_or(BUCKETS.len());
        self.duration_buckets[slot].fetch_add(1, Relaxed);
        self.duration_sum_nanos.fetch_add(nanos, Relaxed);
        self.processed.fetch_add(1, Relaxed);
        if failed {
            self.failed.fetch_add(1, Relaxed);
        }
        self.in_progress.store(0, Relaxed);
        self.last_processed_unix_nanos.store(unix_nanos, Relaxed);
    }

    /// Publishes the moving window's sum and count.
    pub fn set_window(&self, sum_nanos: u64, count: u64) {
        self.window_sum_nanos.store(sum_nanos, Relaxed);
        self.window_count.store(count, Relaxed);
    }

    /// Counts one answered request; codes outside [`HTTP_CODES`] are not counted.
    pub fn count_request(&self, code: u16) {
        if let Some(i) = HTTP_CODES.iter().position(|&(c, _)| c == code) {
            self.http_requests[i].fetch_add(1, Relaxed);
        }
    }

    /// Publishes the self-probe's latest outcome.
    pub fn set_self_probe(&self, ok: bool) {
        self.self_probe_success.store(u64::from(ok), Relaxed);
    }

    /// Publishes the number of open client connections.
    pub fn set_connections(&self, n: u64) {
        self.connections.store(n, Relaxed);
    }

    /// Counts a connection the guard shut down.
    pub fn count_close(&self, reason: CloseReason) {
        self.connections_closed[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts a restart in place (call before exporting the counters for it).
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Relaxed);
    }

    /// The counters, as text to hand to a re-executed image of this process (so that
    /// restarting in place does not reset them).
    #[must_use]
    pub fn export_counters(&self) -> String {
        let mut out = String::from("v1");
        for c in self.counters() {
            out.push(',');
            out.push_str(&c.load(Relaxed).to_string());
        }
        out
    }

    /// Restores counters written by [`Metrics::export_counters`]; false (and nothing
    /// changed) if the text is not exactly that shape.
    pub fn import_counters(&self, text: &str) -> bool {
        let mut parts = text.split(',');
        let counters = self.counters();
        if parts.next() != Some("v1") {
            return false;
        }
        let values: Vec<u64> = parts.map_while(|p| p.parse().ok()).collect();
        if values.len() != counters.len() || text.split(',').count() != counters.len() + 1 {
            return false;
        }
        for (c, v) in counters.iter().zip(values) {
            c.store(v, Relaxed);
        }
        true
    }

    /// Every monotonic value, in a fixed order.
    fn counters(&self) -> Vec<&AtomicU64> {
        let mut all = vec![
            &self.processed,
            &self.failed,
            &self.duration_sum_nanos,
            &self.last_processed_unix_nanos,
            &self.restarts,
        ];
        all.extend(&self.duration_buckets);
        all.extend(&self.http_requests);
        all.extend(&self.connections_closed);
        all
    }

    /// Reads every value once into a plain snapshot.
    #[must_use]
    pub fn snapshot(&self, process: ProcessStats) -> Snapshot {
        let mut buckets = [0; BUCKETS.len() + 1];
        let mut cumulative = 0;
        for (out, count) in buckets.iter_mut().zip(&self.duration_buckets) {
            cumulative += count.load(Relaxed);
            *out = cumulative;
        }
        let window_count = self.window_count.load(Relaxed);
        Snapshot {
            processed: self.processed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            in_progress: self.in_progress.load(Relaxed),
            duration_buckets: buckets,
            duration_sum_nanos: self.duration_sum_nanos.load(Relaxed),
            average_nanos: (window_count > 0)
                .then(|| self.window_sum_nanos.load(Relaxed) / window_count),
            last_processed_unix_nanos: self.last_processed_unix_nanos.load(Relaxed),
            http_requests: std::array::from_fn(|i| self.http_requests[i].load(Relaxed)),
            self_probe_success: self.self_probe_success.load(Relaxed),
            connections: self.connections.load(Relaxed),
            connections_closed: std::array::from_fn(|i| self.connections_closed[i].load(Relaxed)),
            restarts: self.restarts.load(Relaxed),
            process,
        }
    }
}

/// Plain values read once per scrape; what `render` turns into an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `widgets_processed_total`.
    pub processed: u64,
    /// `widgets_failed_total`.
    pub failed: u64,
    /// `widgets_in_progress`.
    pub in_progress: u64,
    /// Cumulative bucket counts, `+Inf` last (so the last is also `_count`).
    pub duration_buckets: [u64; BUCKETS.len() + 1],
    /// `_sum` in nanoseconds.
    pub duration_sum_nanos: u64,
    /// Mean over the window in nanoseconds; `None` when the window is empty (rendered `NaN`).
    pub average_nanos: Option<u64>,
    /// End of the last widget, unix nanoseconds; 0 before the first.
    pub last_processed_unix_nanos: u64,
    /// Per [`HTTP_CODES`] entry.
    pub http_requests: [u64; HTTP_CODES.len()],
    /// 1 when the latest self-probe came back, else 0.
    pub self_probe_success: u64,
    /// Open client connections.
    pub connections: u64,
    /// Per [`CloseReason::ALL`] entry.
    pub connections_closed: [u64; CloseReason::ALL.len()],
    /// Restarts in place so far.
    pub restarts: u64,
    /// From `/proc`; a `None` field leaves its family out.
    pub process: ProcessStats,
}

impl Snapshot {
    /// Writes every family, in [`FAMILIES`] order, through the format-agnostic encoder.
    pub fn encode(&self, e: &mut Encoder<'_>) {
        e.counter(&PROCESSED, self.processed);
        e.counter(&FAILED, self.failed);
        e.gauge(&IN_PROGRESS, Number::Int(self.in_progress));
        e.histogram(
            &DURATION,
            &BUCKETS,
            &self.duration_buckets,
            Number::Nanos(self.duration_sum_nanos),
        );
        e.gauge(
            &AVERAGE,
            self.average_nanos
                .map_or(Number::Float(f64::NAN), Number::Nanos),
        );
        e.gauge(
            &LAST_PROCESSED,
            Number::Nanos(self.last_processed_unix_nanos),
        );
        e.info(&BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))]);
        e.labeled_counters(
            &HTTP_REQUESTS,
            "code",
            HTTP_CODES
                .iter()
                .zip(&self.http_requests)
                .map(|(&(_, code), &n)| (code, n)),
        );
        e.gauge(&SELF_PROBE, Number::Int(self.self_probe_success));
        e.gauge(&CONNECTIONS, Number::Int(self.connections));
        e.labeled_counters(
            &CONNECTIONS_CLOSED,
            "reason",
            CloseReason::ALL
                .iter()
                .zip(&self.connections_closed)
                .map(|(r, &n)| (r.as_str(), n)),
        );
        e.counter(&RESTARTS, self.restarts);
        let p = &self.process;
        if let Some(v) = p.cpu_seconds {
            e.counter_number(&PROCESS_CPU, Number::Float(v));
        }
        for (family, value) in [
            (&PROCESS_RSS, p.resident_memory_bytes.map(Number::Int)),
            (&PROCESS_VSIZE, p.virtual_memory_bytes.map(Number::Int)),
            (&PROCESS_START, p.start_time_seconds.map(Number::Float)),
            (&PROCESS_OPEN_FDS, p.open_fds.map(Number::Int)),
            (&PROCESS_MAX_FDS, p.max_fds.map(Number::Int)),
        ] {
            if let Some(v) = value {
                e.gauge(family, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucketing_is_inclusive_and_cumulative() {
        let m = Metrics::default();
        for (ms, failed) in [
            (25, false),
            (26, false),
            (100, true),
            (500, false),
            (20_000, false),
        ] {
            m.widget_finished(Duration::from_millis(ms), failed, 7);
        }
        let s = m.snapshot(ProcessStats::default());
        // le=0.025 holds 25ms exactly; 26ms goes to 0.05; 20s only to +Inf.
        assert_eq!(s.duration_buckets[0], 1);
        assert_eq!(s.duration_buckets[1], 2);
        assert_eq!(s.duration_buckets[2], 3);
        assert_eq!(s.duration_buckets[8], 4);
        assert_eq!(s.duration_buckets[BUCKETS.len() - 1], 4);
        assert_eq!(s.duration_buckets[BUCKETS.len()], 5);
        assert_eq!(s.duration_sum_nanos, 20_651_000_000);
        assert_eq!((s.processed, s.failed, s.in_progress), (5, 1, 0));
        assert_eq!(s.last_processed_unix_nanos, 7);
    }

    #[test]
    fn bucket_table_is_sorted_and_canonical() {
        for pair in BUCKETS.windows(2) {
            assert!(pair[0].0 < pair[1].0);
        }
        for (nanos, le) in BUCKETS {
            let parsed: f64 = le.parse().unwrap();
            assert!((parsed * 1e9 - nanos as f64).abs() < 1.0, "{le}");
            // Canonical: what Go's strconv.FormatFloat(v, 'f', -1) gives, with ".0" kept on integers.
            assert!(le.contains('.'), "{le}");
            assert!(!le.ends_with('0') || le.ends_with(".0"), "{le}");
        }
    }

    #[test]
    fn window_average_and_requests() {
        let m = Metrics::default();
        assert_eq!(m.snapshot(ProcessStats::default()).average_nanos, None);
        m.set_window(300, 2);
        m.count_request(200);
        m.count_request(200);
        m.count_request(404);
        m.count_request(999);
        let s = m.snapshot(ProcessStats::default());
        assert_eq!(s.average_nanos, Some(150));
        assert_eq!(s.http_requests, [2, 0, 1, 0, 0]);
    }

    #[test]
    fn counters_survive_export_and_import() {
        let a = Metrics::default();
        a.widget_finished(Duration::from_millis(120), true, 99);
        a.count_request(404);
        a.count_close(CloseReason::Body);
        a.set_connections(7);
        let text = a.export_counters();
        let b = Metrics::default();
        assert!(b.import_counters(&text));
        let (sa, sb) = (
            a.snapshot(ProcessStats::default()),
            b.snapshot(ProcessStats::default()),
        );
        assert_eq!(sb.connections, 0, "gauges are not carried");
        assert_eq!(
            sa,
            Snapshot {
                connections: 7,
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
            assert_eq!(c.snapshot(ProcessStats::default()).processed, 0);
        }
    }

    #[test]
    fn family_names_match_their_kind() {
        for f in FAMILIES {
            match f.kind {
                Kind::Counter => assert!(f.name.ends_with("_total"), "{}", f.name),
                Kind::Info => assert!(f.name.ends_with("_info"), "{}", f.name),
                _ => assert!(!f.name.ends_with("_total"), "{}", f.name),
            }
            assert!(!f.help.contains(['\\', '"', '\n']), "{}", f.name);
        }
        let mut names: Vec<_> = FAMILIES.iter().map(|f| f.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAMILIES.len());
    }
}
