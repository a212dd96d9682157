//! The widget families, whatever the source: widgets processed and failed, in progress, the
//! processing-time histogram, the moving average and when the last widget finished. Owns
//! their names, help, kinds, atomics, how a snapshot reads them, how they are encoded and
//! which of them a restart in place carries. Their snapshot values are the [`Snapshot`]'s own
//! fields (declared in `mod.rs`, filled here). It must not touch another owner's families
//! nor know how the exposition is spelled (that is `render`).

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::metrics::render::{family, Encoder, Family, Kind, Number};
use crate::metrics::{Metrics, Snapshot};

const PROCESSED: Family = family(
    "widgets_processed_total",
    Kind::Counter,
    "Widgets that finished processing, successful and failed.",
);
const FAILED: Family = family(
    "widgets_failed_total",
    Kind::Counter,
    "Widgets whose processing failed.",
);
const IN_PROGRESS: Family = family(
    "widgets_in_progress",
    Kind::Gauge,
    "Widgets being processed right now (1 or 0).",
);
const DURATION: Family = family(
    "widget_processing_duration_seconds",
    Kind::Histogram,
    "Simulated processing time of finished widgets.",
);
const AVERAGE: Family = family(
    "average_processing_time_seconds",
    Kind::Gauge,
    "Mean processing time of the widgets finished within the average window, NaN when there were none.",
);
const LAST_PROCESSED: Family = family(
    "widget_last_processed_timestamp_seconds",
    Kind::Gauge,
    "Unix time at which the last widget finished, 0 before the first.",
);

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

/// The live widget values (the average's own state is the [`Window`], a part of its own).
#[derive(Debug, Default)]
pub(crate) struct Widgets {
    processed: AtomicU64,
    failed: AtomicU64,
    in_progress: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    duration_buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_nanos: AtomicU64,
    last_processed_unix_nanos: AtomicU64,
}

impl Widgets {
    /// The widget fields of a snapshot (the average over `window` as of `now`; in progress
    /// only when the source can tell); every other owner's part is left empty.
    pub(crate) fn snapshot(&self, window: &Window, now: Instant, in_progress: bool) -> Snapshot {
        let mut buckets = [0; BUCKETS.len() + 1];
        let mut cumulative = 0;
        for (out, count) in buckets.iter_mut().zip(&self.duration_buckets) {
            cumulative += count.load(Relaxed);
            *out = cumulative;
        }
        let (window_sum, window_count) = window.totals(now);
        Snapshot {
            processed: self.processed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            in_progress: in_progress.then(|| self.in_progress.load(Relaxed)),
            duration_buckets: buckets,
            duration_sum_nanos: self.duration_sum_nanos.load(Relaxed),
            average_nanos: (window_count > 0).then(|| window_sum / window_count),
            last_processed_unix_nanos: self.last_processed_unix_nanos.load(Relaxed),
            ..Snapshot::default()
        }
    }

    /// What a restart in place carries: everything but the in-progress gauge and the window.
    pub(crate) fn carried<'a>(&'a self, out: &mut Vec<&'a AtomicU64>) {
        out.extend([
            &self.processed,
            &self.failed,
            &self.duration_sum_nanos,
            &self.last_processed_unix_nanos,
        ]);
        out.extend(&self.duration_buckets);
    }
}

/// Writes the widget families of `s`.
pub(crate) fn encode(s: &Snapshot, e: &mut Encoder<'_>) {
    e.counter(&PROCESSED, s.processed);
    e.counter(&FAILED, s.failed);
    if let Some(n) = s.in_progress {
        e.gauge(&IN_PROGRESS, Number::Int(n));
    }
    e.histogram(
        &DURATION,
        &BUCKETS,
        &s.duration_buckets,
        Number::Nanos(s.duration_sum_nanos),
    );
    e.gauge(
        &AVERAGE,
        s.average_nanos
            .map_or(Number::Float(f64::NAN), Number::Nanos),
    );
    e.gauge(&LAST_PROCESSED, Number::Nanos(s.last_processed_unix_nanos));
}

impl Metrics {
    /// Counts a widget as started (in progress until it finishes).
    pub fn widget_started(&self) {
        self.widgets.in_progress.fetch_add(1, Relaxed);
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
        let w = &self.widgets;
        if let Some(duration) = duration {
            let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
            let slot = BUCKETS
                .iter()
                .position(|&(bound, _)| nanos <= bound)
                .unwrap_or(BUCKETS.len());
            w.duration_buckets[slot].fetch_add(1, Relaxed);
            let sum = w.duration_sum_nanos.load(Relaxed);
            w.duration_sum_nanos
                .store(sum.saturating_add(nanos), Relaxed);
            self.window.record(at, nanos);
        }
        w.processed.fetch_add(1, Relaxed);
        if failed {
            w.failed.fetch_add(1, Relaxed);
        }
        let running = w.in_progress.load(Relaxed);
        w.in_progress.store(running.saturating_sub(1), Relaxed);
        w.last_processed_unix_nanos.store(unix_nanos, Relaxed);
    }
}

/// Slots of the average window: its far edge moves in steps of a hundredth of the window.
const WINDOW_SLOTS: usize = 100;

/// The moving window of `average_processing_time_seconds`: a ring of [`WINDOW_SLOTS`] time
/// slots, each holding the sum and count of the widgets that finished in it. Memory is fixed
/// whatever the widget rate; the mean is exact over the widgets of the slots it covers, which
/// span between 99 % and 100 % of the window (the oldest slot leaves whole).
#[derive(Debug)]
pub(crate) struct Window {
    start: Instant,
    slot_nanos: u128,
    /// Slot number + 1 (0: never used), sum of durations in nanoseconds, widget count.
    slots: [[AtomicU64; 3]; WINDOW_SLOTS],
}

impl Window {
    /// An empty window `width` wide whose slots count from `start`.
    pub(crate) fn new(width: Duration, start: Instant) -> Self {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::ProcessStats;
    use crate::metrics::Parts;

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
}
