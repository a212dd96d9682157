//! What the exporter exposes: the one table of metric families (name, help, kind), the
//! atomics the loop updates, and the plain [`Snapshot`] a scrape reads once. This is the
//! only file that spells metric names. It must not know how the exposition is spelled
//! (that is `render`) nor where requests come from (`server`).
//!
//! To expose a new number: add a [`Family`] constant, a field to [`Metrics`] (if the loop
//! updates it) and to [`Snapshot`], and one line in `Snapshot`'s [`Exposition::encode`].
//! Families that exist only with some source or output (the HTTP ones, `widgets_in_progress`)
//! are switched on by [`Parts`] and come as an `Option` in the snapshot: `None` leaves them out.

pub mod render;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::host::process::ProcessStats;
use crate::metrics::render::{family, Encoder, Exposition, Family, Kind, Number};

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
/// Writes of the textfile, by result.
pub const TEXTFILE_WRITES: Family = family(
    "widget_exporter_textfile_writes_total",
    Kind::Counter,
    "Writes of the --textfile.path file for node_exporter, by result (ok or error).",
);
/// When the textfile was last written.
pub const TEXTFILE_LAST_WRITE: Family = family(
    "widget_exporter_textfile_last_write_timestamp_seconds",
    Kind::Gauge,
    "Unix time of the latest successful write of the --textfile.path file, 0 before the first.",
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

/// Log lines read, by result (log source).
pub const LOG_LINES: Family = family(
    "widget_exporter_log_lines_total",
    Kind::Counter,
    "Log lines read, by how they fared against the templates.",
);
/// Whether the followed log can be read (log source).
pub const LOG_READABLE: Family = family(
    "widget_exporter_log_readable",
    Kind::Gauge,
    "1 while the followed log is open and readable, else 0.",
);
/// Rotations of the followed log (log source).
pub const LOG_ROTATIONS: Family = family(
    "widget_exporter_log_rotations_total",
    Kind::Counter,
    "Rotations of the followed log seen, by kind.",
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
    TEXTFILE_WRITES,
    TEXTFILE_LAST_WRITE,
    LOG_LINES,
    LOG_READABLE,
    LOG_ROTATIONS,
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

/// How a log line fared (the `result` label of [`LOG_LINES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineResult {
    /// It matched a template and was counted.
    Matched = 0,
    /// It matched no template.
    Unmatched = 1,
    /// It matched a template but its duration did not parse or was out of range.
    Invalid = 2,
    /// It was longer than the line limit and skipped.
    TooLong = 3,
}

/// The `result` label values of [`LOG_LINES`], indexed by [`LineResult`]; shaped like
/// [`HTTP_CODES`] so that the labeled families share one copy of the encoder's code.
pub const LINE_RESULTS: [(u16, &str); 4] = [
    (0, "matched"),
    (1, "unmatched"),
    (2, "invalid"),
    (3, "too_long"),
];

/// How the followed log was rotated (the `kind` label of [`LOG_ROTATIONS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotation {
    /// Renamed away and replaced by a new file (logrotate's default).
    Rename = 0,
    /// Truncated in place (logrotate's `copytruncate`).
    Truncate = 1,
}

/// The `kind` label values of [`LOG_ROTATIONS`], indexed by [`Rotation`].
pub const ROTATION_KINDS: [(u16, &str); 2] = [(0, "rename"), (1, "truncate")];

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

/// Slots of the average window: its far edge moves in steps of a hundredth of the window.
pub const WINDOW_SLOTS: usize = 100;

/// The moving window of `average_processing_time_seconds`: a ring of [`WINDOW_SLOTS`] time
/// slots, each holding the sum and count of the widgets that finished in it. Memory is fixed
/// whatever the widget rate; the mean is exact over the widgets of the slots it covers, which
/// span between 99 % and 100 % of the window (the oldest slot leaves whole).
#[derive(Debug)]
struct Window {
    start: Instant,
    slot_nanos: u128,
    /// Slot number + 1 (0: never used), sum of durations in nanoseconds, widget count.
    slots: [[AtomicU64; 3]; WINDOW_SLOTS],
}

impl Window {
    fn new(width: Duration, start: Instant) -> Self {
        Window {
            start,
            slot_nanos: (width.as_nanos() / WINDOW_SLOTS as u128).max(1),
            slots: std::array::from_fn(|_| Default::default()),
        }
    }

    /// The number of the slot `at` falls in.
    fn slot_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.start).as_nanos();
        u64::try_from(since / self.slot_nanos).unwrap_or(u64::MAX - 1)
    }

    fn record(&self, at: Instant, nanos: u64) {
        let n = self.slot_of(at);
        let [epoch, sum, count] = &self.slots[(n % WINDOW_SLOTS as u64) as usize];
        let seen = epoch.load(Relaxed);
        if seen > n + 1 {
            return; // older than the window already
        }
        if seen != n + 1 {
            epoch.store(n + 1, Relaxed);
            sum.store(0, Relaxed);
            count.store(0, Relaxed);
        }
        sum.store(sum.load(Relaxed).saturating_add(nanos), Relaxed);
        count.fetch_add(1, Relaxed);
    }

    /// (sum, count) of the slots within the window at `now`.
    fn totals(&self, now: Instant) -> (u64, u64) {
        let current = self.slot_of(now) + 1;
        let oldest = current.saturating_sub(WINDOW_SLOTS as u64 - 1);
        let (mut total, mut widgets) = (0u64, 0u64);
        for [epoch, sum, count] in &self.slots {
            if (oldest..=current).contains(&epoch.load(Relaxed)) {
                total = total.saturating_add(sum.load(Relaxed));
                widgets += count.load(Relaxed);
            }
        }
        (total, widgets)
    }
}

/// The live values, updated by the loop with relaxed atomics (one writer; readers need no
/// ordering beyond each value being whole).
#[derive(Debug)]
pub struct Metrics {
    parts: Parts,
    window: Window,
    processed: AtomicU64,
    failed: AtomicU64,
    in_progress: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    duration_buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_nanos: AtomicU64,
    last_processed_unix_nanos: AtomicU64,
    http_requests: [AtomicU64; HTTP_CODES.len()],
    self_probe_success: AtomicU64,
    connections: AtomicU64,
    connections_closed: [AtomicU64; CloseReason::ALL.len()],
    restarts: AtomicU64,
    /// Textfile writes that succeeded and that failed.
    textfile_writes: [AtomicU64; 2],
    textfile_last_write_unix_nanos: AtomicU64,
    log_lines: [AtomicU64; LINE_RESULTS.len()],
    log_readable: AtomicU64,
    log_rotations: [AtomicU64; ROTATION_KINDS.len()],
    /// Where the log source has read to (device, inode, offset + 1; 0: nowhere), carried
    /// across a restart in place like the counters so no line is lost or counted twice.
    log_position: [AtomicU64; 3],
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
    pub fn new(parts: Parts, window: Duration, start: Instant) -> Self {
        Metrics {
            parts,
            window: Window::new(window, start),
            processed: AtomicU64::default(),
            failed: AtomicU64::default(),
            in_progress: AtomicU64::default(),
            duration_buckets: Default::default(),
            duration_sum_nanos: AtomicU64::default(),
            last_processed_unix_nanos: AtomicU64::default(),
            http_requests: Default::default(),
            self_probe_success: AtomicU64::default(),
            connections: AtomicU64::default(),
            connections_closed: Default::default(),
            restarts: AtomicU64::default(),
            textfile_writes: Default::default(),
            textfile_last_write_unix_nanos: AtomicU64::default(),
            log_lines: Default::default(),
            log_readable: AtomicU64::default(),
            log_rotations: Default::default(),
            log_position: Default::default(),
        }
    }

    /// The optional families this exporter has.
    #[must_use]
    pub fn parts(&self) -> Parts {
        self.parts
    }

    /// Counts a widget as started (in progress until it finishes).
    pub fn widget_started(&self) {
        self.in_progress.fetch_add(1, Relaxed);
    }

    /// Records a finished widget: its processing time if known, its outcome, its wall-clock
    /// end and the instant `at` that places it in the average window. A widget without a
    /// duration (a failure logged without one) counts in the totals only, not in the
    /// histogram or the average. In progress goes down by one, never below 0: widgets that
    /// started before the source could see them finish too.
    pub fn widget_finished(
        &self,
        duration: Option<Duration>,
        failed: bool,
        unix_nanos: u64,
        at: Instant,
    ) {
        if let Some(duration) = duration {
            let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            let slot = BUCKETS
                .iter()
                .position(|&(bound, _)| nanos <= bound)
                .unwrap_or(BUCKETS.len());
            self.duration_buckets[slot].fetch_add(1, Relaxed);
            let sum = self.duration_sum_nanos.load(Relaxed);
            self.duration_sum_nanos
                .store(sum.saturating_add(nanos), Relaxed);
            self.window.record(at, nanos);
        }
        self.processed.fetch_add(1, Relaxed);
        if failed {
            self.failed.fetch_add(1, Relaxed);
        }
        let running = self.in_progress.load(Relaxed);
        self.in_progress.store(running.saturating_sub(1), Relaxed);
        self.last_processed_unix_nanos.store(unix_nanos, Relaxed);
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

    /// Counts one write of the textfile, and when it succeeded.
    pub fn count_textfile_write(&self, ok: bool, unix_nanos: u64) {
        self.textfile_writes[usize::from(!ok)].fetch_add(1, Relaxed);
        if ok {
            self.textfile_last_write_unix_nanos
                .store(unix_nanos, Relaxed);
        }
    }

    /// What the textfile written at `now` (`unix_nanos`) says: no `process_*` families
    /// (node_exporter has its own, and duplicates fail its scrape), and the textfile families
    /// as if this write succeeded, which is true whenever anyone reads the file.
    #[must_use]
    pub fn textfile_snapshot(&self, now: Instant, unix_nanos: u64) -> Snapshot {
        let mut s = self.snapshot_at(ProcessStats::default(), now);
        if let Some(t) = &mut s.textfile {
            t.writes[0] += 1;
            t.last_write_unix_nanos = unix_nanos;
        }
        s
    }

    /// Counts a restart in place (call before exporting the counters for it).
    pub fn count_restart(&self) {
        self.restarts.fetch_add(1, Relaxed);
    }

    /// Counts one log line.
    pub fn count_line(&self, result: LineResult) {
        self.log_lines[result as usize].fetch_add(1, Relaxed);
    }

    /// Publishes whether the followed log is readable.
    pub fn set_log_readable(&self, readable: bool) {
        self.log_readable.store(u64::from(readable), Relaxed);
    }

    /// Counts one rotation of the followed log.
    pub fn count_rotation(&self, kind: Rotation) {
        self.log_rotations[kind as usize].fetch_add(1, Relaxed);
    }

    /// Records where the log source has read to (device, inode, offset), to be carried
    /// across a restart in place.
    pub fn set_log_position(&self, at: Option<(u64, u64, u64)>) {
        let (dev, ino, offset) = at.map_or((0, 0, 0), |(d, i, o)| (d, i, o + 1));
        let [d, i, o] = &self.log_position;
        d.store(dev, Relaxed);
        i.store(ino, Relaxed);
        o.store(offset, Relaxed);
    }

    /// The position recorded by [`Metrics::set_log_position`] (or carried over), if any.
    #[must_use]
    pub fn log_position(&self) -> Option<(u64, u64, u64)> {
        let [d, i, o] = &self.log_position;
        let offset = o.load(Relaxed);
        (offset > 0).then(|| (d.load(Relaxed), i.load(Relaxed), offset - 1))
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
        all.extend(&self.textfile_writes);
        all.push(&self.textfile_last_write_unix_nanos);
        all.extend(&self.log_lines);
        all.extend(&self.log_rotations);
        all.extend(&self.log_position);
        all
    }

    /// Reads every value once into a plain snapshot, the average window as of now.
    #[must_use]
    pub fn snapshot(&self, process: ProcessStats) -> Snapshot {
        self.snapshot_at(process, Instant::now())
    }

    /// Like [`Metrics::snapshot`], with the average window as of `now`.
    #[must_use]
    pub fn snapshot_at(&self, process: ProcessStats, now: Instant) -> Snapshot {
        let mut buckets = [0; BUCKETS.len() + 1];
        let mut cumulative = 0;
        for (out, count) in buckets.iter_mut().zip(&self.duration_buckets) {
            cumulative += count.load(Relaxed);
            *out = cumulative;
        }
        let (window_sum, window_count) = self.window.totals(now);
        Snapshot {
            processed: self.processed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            in_progress: self
                .parts
                .in_progress
                .then(|| self.in_progress.load(Relaxed)),
            duration_buckets: buckets,
            duration_sum_nanos: self.duration_sum_nanos.load(Relaxed),
            average_nanos: (window_count > 0).then(|| window_sum / window_count),
            last_processed_unix_nanos: self.last_processed_unix_nanos.load(Relaxed),
            http: self.parts.http.then(|| HttpSnapshot {
                requests: std::array::from_fn(|i| self.http_requests[i].load(Relaxed)),
                self_probe_success: self.self_probe_success.load(Relaxed),
                connections: self.connections.load(Relaxed),
                connections_closed: std::array::from_fn(|i| {
                    self.connections_closed[i].load(Relaxed)
                }),
            }),
            restarts: self.restarts.load(Relaxed),
            textfile: self.parts.textfile.then(|| TextfileSnapshot {
                writes: std::array::from_fn(|i| self.textfile_writes[i].load(Relaxed)),
                last_write_unix_nanos: self.textfile_last_write_unix_nanos.load(Relaxed),
            }),
            log: self.parts.log.then(|| LogSnapshot {
                lines: std::array::from_fn(|i| self.log_lines[i].load(Relaxed)),
                readable: self.log_readable.load(Relaxed),
                rotations: std::array::from_fn(|i| self.log_rotations[i].load(Relaxed)),
            }),
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
    /// `widgets_in_progress`; `None` when the source cannot tell (left out).
    pub in_progress: Option<u64>,
    /// Cumulative bucket counts, `+Inf` last (so the last is also `_count`).
    pub duration_buckets: [u64; BUCKETS.len() + 1],
    /// `_sum` in nanoseconds.
    pub duration_sum_nanos: u64,
    /// Mean over the window in nanoseconds; `None` when the window is empty (rendered `NaN`).
    pub average_nanos: Option<u64>,
    /// End of the last widget, unix nanoseconds; 0 before the first.
    pub last_processed_unix_nanos: u64,
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

/// The families that only mean something while HTTP is served.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSnapshot {
    /// Per [`HTTP_CODES`] entry.
    pub requests: [u64; HTTP_CODES.len()],
    /// 1 when the latest self-probe came back, else 0.
    pub self_probe_success: u64,
    /// Open client connections.
    pub connections: u64,
    /// Per [`CloseReason::ALL`] entry.
    pub connections_closed: [u64; CloseReason::ALL.len()],
}

/// The `result` label values of the textfile writes, shaped like [`HTTP_CODES`] so that both
/// families share one copy of the encoder's code (the binary is size-bound).
const TEXTFILE_RESULTS: [(u16, &str); 2] = [(0, "ok"), (1, "error")];

/// A (label value, count) pair from a table row and its counter.
fn labeled((&(_, label), &n): (&(u16, &'static str), &u64)) -> (&'static str, u64) {
    (label, n)
}

/// The families of the textfile output.
#[derive(Debug, Clone, PartialEq)]
pub struct TextfileSnapshot {
    /// Writes that succeeded, then writes that failed.
    pub writes: [u64; 2],
    /// When the latest successful write happened, unix nanoseconds; 0 before the first.
    pub last_write_unix_nanos: u64,
}

/// The families of the log source.
#[derive(Debug, Clone, PartialEq)]
pub struct LogSnapshot {
    /// Per [`LINE_RESULTS`] entry.
    pub lines: [u64; LINE_RESULTS.len()],
    /// 1 while the log is readable, else 0.
    pub readable: u64,
    /// Per [`ROTATION_KINDS`] entry.
    pub rotations: [u64; ROTATION_KINDS.len()],
}

impl Exposition for Snapshot {
    /// Writes every family, in [`FAMILIES`] order, through the format-agnostic encoder.
    fn encode(&self, e: &mut Encoder<'_>) {
        e.counter(&PROCESSED, self.processed);
        e.counter(&FAILED, self.failed);
        if let Some(n) = self.in_progress {
            e.gauge(&IN_PROGRESS, Number::Int(n));
        }
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
        if let Some(http) = &self.http {
            e.labeled_counters(
                &HTTP_REQUESTS,
                "code",
                HTTP_CODES.iter().zip(&http.requests).map(labeled),
            );
            e.gauge(&SELF_PROBE, Number::Int(http.self_probe_success));
            e.gauge(&CONNECTIONS, Number::Int(http.connections));
            e.labeled_counters(
                &CONNECTIONS_CLOSED,
                "reason",
                CloseReason::ALL
                    .iter()
                    .zip(&http.connections_closed)
                    .map(|(r, &n)| (r.as_str(), n)),
            );
            // Restarts in place shed what tiny_http leaks: without HTTP there are none.
            e.counter(&RESTARTS, self.restarts);
        }
        if let Some(t) = &self.textfile {
            e.labeled_counters(
                &TEXTFILE_WRITES,
                "result",
                TEXTFILE_RESULTS.iter().zip(&t.writes).map(labeled),
            );
            e.gauge(&TEXTFILE_LAST_WRITE, Number::Nanos(t.last_write_unix_nanos));
        }
        if let Some(log) = &self.log {
            e.labeled_counters(
                &LOG_LINES,
                "result",
                LINE_RESULTS.iter().zip(&log.lines).map(labeled),
            );
            e.gauge(&LOG_READABLE, Number::Int(log.readable));
            e.labeled_counters(
                &LOG_ROTATIONS,
                "kind",
                ROTATION_KINDS.iter().zip(&log.rotations).map(labeled),
            );
        }
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
            m.widget_finished(Some(Duration::from_millis(ms)), failed, 7, Instant::now());
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
        assert_eq!((s.processed, s.failed, s.in_progress), (5, 1, Some(0)));
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
    fn requests_by_code() {
        let m = Metrics::default();
        m.count_request(200);
        m.count_request(200);
        m.count_request(404);
        m.count_request(999);
        let s = m.snapshot(ProcessStats::default());
        assert_eq!(s.http.map(|h| h.requests), Some([2, 0, 1, 0, 0]));
    }

    /// The window's mean is exact over the widgets of the slots it covers, and its far edge
    /// moves in steps of a hundredth of the window, at any widget rate.
    #[test]
    fn average_window_is_a_ring_of_slots() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let m = Metrics::new(Parts::default(), Duration::from_secs(10), t0);
        let avg = |at| {
            m.snapshot_at(ProcessStats::default(), t0 + at)
                .average_nanos
        };
        let finish =
            |nanos, at| m.widget_finished(Some(Duration::from_nanos(nanos)), false, 0, t0 + at);
        assert_eq!(avg(ms(0)), None, "empty: NaN");
        finish(300, ms(50));
        finish(100, ms(150));
        assert_eq!(avg(ms(200)), Some(200));
        // Slots are 100 ms wide; the widget at 50 ms is in slot 0, which leaves the window
        // when slot 100 begins (at 10 s), the one at 150 ms one slot later.
        assert_eq!(avg(ms(9_999)), Some(200));
        assert_eq!(avg(ms(10_000)), Some(100));
        assert_eq!(avg(ms(10_100)), None);
        // A million widgets in one slot cost no memory and average exactly.
        for i in 0..1_000_000u64 {
            finish(i % 1000, ms(20_000));
        }
        assert_eq!(avg(ms(20_000)), Some(499));
        // A widget placed before the window's oldest slot does not count.
        finish(5, ms(0));
        assert_eq!(avg(ms(20_000)), Some(499));
        // A failure without a duration counts in the totals, not in the window.
        m.widget_finished(None, true, 0, t0 + ms(20_000));
        let s = m.snapshot_at(ProcessStats::default(), t0 + ms(20_000));
        assert_eq!(
            (s.processed, s.failed, s.average_nanos),
            (1_000_004, 1, Some(499))
        );
        // Every width from 1 s to 24 h works; the step is a hundredth of it.
        for width in [Duration::from_secs(1), Duration::from_secs(86_400)] {
            let m = Metrics::new(Parts::default(), width, t0);
            m.widget_finished(Some(ms(1)), false, 0, t0);
            let at = |d| m.snapshot_at(ProcessStats::default(), t0 + d).average_nanos;
            assert_eq!(at(width / 100 * 99), Some(1_000_000));
            assert_eq!(at(width), None);
        }
    }

    #[test]
    fn in_progress_never_goes_below_zero() {
        let m = Metrics::default();
        let now = Instant::now();
        m.widget_finished(Some(Duration::from_millis(1)), false, 0, now);
        m.widget_started();
        m.widget_started();
        assert_eq!(m.snapshot(ProcessStats::default()).in_progress, Some(2));
        let m = Metrics::new(
            Parts {
                in_progress: false,
                http: false,
                textfile: false,
                log: false,
            },
            Duration::from_secs(60),
            now,
        );
        let s = m.snapshot(ProcessStats::default());
        assert_eq!((s.in_progress, s.http), (None, None), "families left out");
    }

    /// The textfile holds the widget families and the exporter's own, never `process_*`
    /// (node_exporter's), and the HTTP ones only while HTTP is served; it counts the write
    /// that produced it.
    #[test]
    fn textfile_families() {
        use crate::metrics::render::{render, Format};
        let names = |text: &str| -> Vec<String> {
            text.lines()
                .filter_map(|l| Some(l.strip_prefix("# TYPE ")?.split(' ').next()?.to_owned()))
                .collect()
        };
        let http_only = [
            HTTP_REQUESTS,
            SELF_PROBE,
            CONNECTIONS,
            CONNECTIONS_CLOSED,
            RESTARTS,
        ];
        let process = [
            PROCESS_CPU,
            PROCESS_RSS,
            PROCESS_VSIZE,
            PROCESS_START,
            PROCESS_OPEN_FDS,
            PROCESS_MAX_FDS,
        ];
        let now = Instant::now();
        for http in [false, true] {
            let parts = Parts {
                http,
                textfile: true,
                ..Parts::default()
            };
            let m = Metrics::new(parts, Duration::from_secs(60), now);
            m.count_textfile_write(true, 5_000_000_000);
            m.count_textfile_write(false, 6_000_000_000);
            let mut out = String::new();
            render(
                &m.textfile_snapshot(now, 7_500_000_000),
                Format::Text,
                &mut out,
            );
            let got = names(&out);
            for f in FAMILIES {
                let log_only = [&LOG_LINES, &LOG_READABLE, &LOG_ROTATIONS];
                let want = !process.contains(f)
                    && (http || !http_only.contains(f))
                    && !log_only.contains(&f);
                assert_eq!(
                    got.iter().any(|n| n == f.name),
                    want,
                    "{} http={http}",
                    f.name
                );
            }
            assert!(out.contains("\nwidget_exporter_textfile_writes_total{result=\"ok\"} 2\n"));
            assert!(out.contains("\nwidget_exporter_textfile_writes_total{result=\"error\"} 1\n"));
            assert!(out.contains("\nwidget_exporter_textfile_last_write_timestamp_seconds 7.5\n"));
            // The live counters are not moved by rendering.
            let live = m
                .snapshot(ProcessStats::default())
                .textfile
                .expect("textfile part");
            assert_eq!(live.writes, [1, 1]);
            assert_eq!(live.last_write_unix_nanos, 5_000_000_000);
        }
        let without = Metrics::default().snapshot(ProcessStats::default());
        assert_eq!(
            without.textfile, None,
            "no textfile families without --textfile.path"
        );
    }

    #[test]
    fn counters_survive_export_and_import() {
        let a = Metrics::default();
        a.widget_finished(Some(Duration::from_millis(120)), true, 99, Instant::now());
        a.count_request(404);
        a.count_close(CloseReason::Body);
        a.set_connections(7);
        a.count_line(LineResult::Invalid);
        a.count_rotation(Rotation::Truncate);
        a.set_log_position(Some((8, 9, 0)));
        let text = a.export_counters();
        let b = Metrics::default();
        assert_eq!(b.log_position(), None);
        assert!(b.import_counters(&text));
        assert_eq!(
            b.log_position(),
            Some((8, 9, 0)),
            "the tail position rides along"
        );
        let (sa, sb) = (
            a.snapshot(ProcessStats::default()),
            b.snapshot(ProcessStats::default()),
        );
        let http = |s: &Snapshot| s.http.clone().expect("HTTP families");
        assert_eq!(http(&sb).connections, 0, "gauges are not carried");
        assert_eq!(sb.average_nanos, None, "nor is the window");
        assert_eq!(
            sa,
            Snapshot {
                http: Some(HttpSnapshot {
                    connections: 7,
                    ..http(&sb)
                }),
                average_nanos: sa.average_nanos,
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
