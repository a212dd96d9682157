//! The widget families, whatever the source: widgets processed and failed, in progress, the
//! processing-time histogram, the moving average and when the last widget finished. Owns
//! their names, help (worded for the source in use), kinds, atomics, how a snapshot reads
//! them, how they are encoded and which of them a restart in place carries: the [`Widgets`]
//! part with the methods that update it, its [`WidgetsSnapshot`] and that snapshot's
//! `encode`. It must not touch another owner's families nor know how the exposition is
//! spelled (that is `render`).
//!
//! A source may label its widgets (the log source's `{label:NAME}` captures): then processed,
//! failed and the histogram are written per label set from [`Labels`], while in progress, the
//! average and the last timestamp stay totals. The label sets are admitted by the source
//! (which holds the series cap); each set's storage is allocated once, when it is admitted.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::metrics::render::{family, Encoder, Family, Kind, Number};

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
/// The same families, worded for widgets counted from a log (the label set is the source's
/// business: the same families with or without labels).
const LOGGED_PROCESSED: Family = family(
    "widgets_processed_total",
    Kind::Counter,
    "Widgets the log reports finished, successful and failed.",
);
const LOGGED_FAILED: Family = family(
    "widgets_failed_total",
    Kind::Counter,
    "Widgets the log reports failed.",
);
const LOGGED_IN_PROGRESS: Family = family(
    "widgets_in_progress",
    Kind::Gauge,
    "Widgets the log reports started and not yet finished.",
);
const LOGGED_DURATION: Family = family(
    "widget_processing_duration_seconds",
    Kind::Histogram,
    "Processing time of finished widgets, as the log reports it.",
);
const LOGGED_LAST_PROCESSED: Family = family(
    "widget_last_processed_timestamp_seconds",
    Kind::Gauge,
    "Unix time at which the exporter read the last finished widget's line, 0 before the first.",
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

/// The live widget values, updated by the source with relaxed atomics (the average's own
/// state is its `Window`).
#[derive(Debug)]
pub struct Widgets {
    /// Counts per label set, when the source labels its widgets.
    pub(crate) labels: Labels,
    processed: AtomicU64,
    failed: AtomicU64,
    in_progress: AtomicU64,
    /// Per-bucket (not cumulative) counts; the last slot is `+Inf`.
    duration_buckets: [AtomicU64; BUCKETS.len() + 1],
    duration_sum_nanos: AtomicU64,
    last_processed_unix_nanos: AtomicU64,
    window: Window,
}

impl Widgets {
    /// No widgets yet, and an average window `window` wide whose slots count from `start`.
    pub(crate) fn new(window: Duration, start: Instant) -> Self {
        Widgets {
            labels: Labels::default(),
            processed: AtomicU64::default(),
            failed: AtomicU64::default(),
            in_progress: AtomicU64::default(),
            duration_buckets: Default::default(),
            duration_sum_nanos: AtomicU64::default(),
            last_processed_unix_nanos: AtomicU64::default(),
            window: Window::new(window, start),
        }
    }

    /// The families' values (the average as of `now`; in progress only when the source can
    /// tell).
    pub(crate) fn snapshot(&self, now: Instant, in_progress: bool) -> WidgetsSnapshot {
        let mut buckets = [0; BUCKETS.len() + 1];
        let mut cumulative = 0;
        for (out, count) in buckets.iter_mut().zip(&self.duration_buckets) {
            cumulative += count.load(Relaxed);
            *out = cumulative;
        }
        let (window_sum, window_count) = self.window.totals(now);
        WidgetsSnapshot {
            processed: self.processed.load(Relaxed),
            failed: self.failed.load(Relaxed),
            in_progress: in_progress.then(|| self.in_progress.load(Relaxed)),
            duration_buckets: buckets,
            duration_sum_nanos: self.duration_sum_nanos.load(Relaxed),
            average_nanos: (window_count > 0).then(|| window_sum / window_count),
            last_processed_unix_nanos: self.last_processed_unix_nanos.load(Relaxed),
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

/// The widget families, whatever the source.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WidgetsSnapshot {
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
}

impl WidgetsSnapshot {
    /// Writes the widget families. `logged` holds the label sets when the widgets are counted
    /// from a log: the families are then worded for a log, and written per label set when
    /// the source labels its widgets.
    pub(crate) fn encode(&self, logged: Option<&Labels>, e: &mut Encoder<'_>) {
        let [processed, failed, in_progress, duration, last] = if logged.is_some() {
            [
                &LOGGED_PROCESSED,
                &LOGGED_FAILED,
                &LOGGED_IN_PROGRESS,
                &LOGGED_DURATION,
                &LOGGED_LAST_PROCESSED,
            ]
        } else {
            [
                &PROCESSED,
                &FAILED,
                &IN_PROGRESS,
                &DURATION,
                &LAST_PROCESSED,
            ]
        };
        let labeled = logged.map(|l| l.0.borrow());
        let labeled = labeled.as_deref().filter(|l| !l.names.is_empty());
        if let Some(l) = labeled {
            l.encode_counts(processed, |c| c.processed, e);
            l.encode_counts(failed, |c| c.failed, e);
        } else {
            e.counter(processed, self.processed);
            e.counter(failed, self.failed);
        }
        if let Some(n) = self.in_progress {
            e.gauge(in_progress, Number::Int(n));
        }
        match labeled {
            Some(l) => l.encode_histograms(duration, e),
            None => e.histogram(
                duration,
                &BUCKETS,
                &self.duration_buckets,
                Number::Nanos(self.duration_sum_nanos),
            ),
        }
        e.gauge(
            &AVERAGE,
            self.average_nanos
                .map_or(Number::Float(f64::NAN), Number::Nanos),
        );
        e.gauge(last, Number::Nanos(self.last_processed_unix_nanos));
    }
}

/// Most label names a source may put on the widget families.
const MAX_NAMES: usize = 4;

/// The counts the carried form holds per label set: processed, failed, the sum, the buckets.
const CARRIED_COUNTS: usize = 3 + BUCKETS.len() + 1;

/// Where a labeled widget counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LabelSet {
    /// The label set admitted at this index ([`Widgets::admit_label_set`]).
    Admitted(usize),
    /// The overflow series: every label is `__overflow__`.
    Overflow,
}

/// The value of every label of the overflow series.
pub(crate) const OVERFLOW_VALUE: &str = "__overflow__";

/// One label set's values and counts.
#[derive(Debug, Clone, PartialEq)]
struct Counts {
    values: Box<[Box<str>]>,
    processed: u64,
    failed: u64,
    sum_nanos: u64,
    /// Per bucket (not cumulative), `+Inf` last.
    buckets: [u64; BUCKETS.len() + 1],
}

impl Counts {
    fn new(values: Box<[Box<str>]>) -> Counts {
        Counts {
            values,
            processed: 0,
            failed: 0,
            sum_nanos: 0,
            buckets: [0; BUCKETS.len() + 1],
        }
    }
}

/// The label sets of the widget families and their counts: the sets in order of admission,
/// then the overflow series once a widget counted in it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Labeled {
    names: Vec<String>,
    sets: Vec<Counts>,
    overflow: Option<Counts>,
}

/// The label sets, shared by the metrics and the snapshots read from them: a scrape renders
/// them in place, since copying thousands of sets per scrape would allocate.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Labels(Rc<RefCell<Labeled>>);

impl Labels {
    /// How many label sets are admitted (the overflow series not included).
    pub(crate) fn len(&self) -> usize {
        self.0.borrow().sets.len()
    }

    /// Whether the widgets carry labels at all.
    pub(crate) fn any(&self) -> bool {
        !self.0.borrow().names.is_empty()
    }
}

impl Labeled {
    /// Every series in exposition order, with its label pairs (on the stack) and counts.
    fn each(&self, mut f: impl FnMut(&[(&str, &str)], &Counts)) {
        let n = self.names.len().min(MAX_NAMES);
        for c in self.sets.iter().chain(&self.overflow) {
            let mut pairs = [("", ""); MAX_NAMES + 1];
            for (i, pair) in pairs.iter_mut().enumerate().take(n) {
                *pair = (&self.names[i], c.values.get(i).map_or("", |v| &**v));
            }
            f(&pairs[..n], c);
        }
    }

    fn encode_counts(&self, f: &Family, count: fn(&Counts) -> u64, e: &mut Encoder<'_>) {
        e.header(f);
        self.each(|labels, c| e.sample(f.name(), "", labels, Number::Int(count(c))));
    }

    fn encode_histograms(&self, f: &Family, e: &mut Encoder<'_>) {
        e.header(f);
        let n = self.names.len().min(MAX_NAMES);
        self.each(|labels, c| {
            let mut with_le = [("", ""); MAX_NAMES + 1];
            with_le[..n].copy_from_slice(labels);
            let les = BUCKETS.iter().map(|&(_, le)| le).chain(["+Inf"]);
            let mut cumulative = 0;
            for (le, count) in les.zip(c.buckets) {
                cumulative += count;
                with_le[n] = ("le", le);
                e.sample(f.name(), "_bucket", &with_le[..=n], Number::Int(cumulative));
            }
            e.sample(f.name(), "_sum", labels, Number::Nanos(c.sum_nanos));
            e.sample(f.name(), "_count", labels, Number::Int(cumulative));
        });
    }

    /// The carried form (appended to `out`): a line of the names, then one line per set
    /// (`s`, its values, its counts) and one for the overflow series (`o`, its counts), comma
    /// separated, `%`, `,` and control characters in values written `%XX`.
    fn export(&self, out: &mut String) {
        out.push_str("\nnames");
        for name in &self.names {
            out.push(',');
            out.push_str(name);
        }
        let counts = |out: &mut String, c: &Counts| {
            let _ = write!(out, ",{},{},{}", c.processed, c.failed, c.sum_nanos);
            for b in c.buckets {
                let _ = write!(out, ",{b}");
            }
        };
        for c in &self.sets {
            out.push_str("\ns");
            for v in &c.values {
                out.push(',');
                for ch in v.chars() {
                    if ch == '%' || ch == ',' || ch.is_control() {
                        let mut buf = [0; 4];
                        for b in ch.encode_utf8(&mut buf).bytes() {
                            let _ = write!(out, "%{b:02X}");
                        }
                    } else {
                        out.push(ch);
                    }
                }
            }
            counts(out, c);
        }
        if let Some(c) = &self.overflow {
            out.push_str("\no");
            counts(out, c);
        }
    }

    /// The inverse of [`Labeled::export`] (the text after the counters line); `None` for
    /// anything else. Never panics.
    fn import(text: &str) -> Option<Labeled> {
        fn unescape(v: &str) -> Option<Box<str>> {
            let mut bytes = Vec::with_capacity(v.len());
            let mut it = v.bytes();
            while let Some(b) = it.next() {
                if b == b'%' {
                    let hex = [it.next()?, it.next()?];
                    bytes.push(u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?);
                } else {
                    bytes.push(b);
                }
            }
            String::from_utf8(bytes).ok().map(String::into_boxed_str)
        }
        fn counts(values: Box<[Box<str>]>, fields: &[&str]) -> Option<Counts> {
            if fields.len() != CARRIED_COUNTS {
                return None;
            }
            let mut n = fields.iter().map(|f| f.parse::<u64>().ok());
            let mut c = Counts::new(values);
            c.processed = n.next()??;
            c.failed = n.next()??;
            c.sum_nanos = n.next()??;
            for b in &mut c.buckets {
                *b = n.next()??;
            }
            Some(c)
        }
        let mut lines = text.split('\n');
        let mut names = lines.next()?.split(',');
        if names.next()? != "names" {
            return None;
        }
        let names: Vec<String> = names.map(str::to_owned).collect();
        if names.len() > MAX_NAMES || names.iter().any(String::is_empty) {
            return None;
        }
        let mut labeled = Labeled {
            names,
            ..Labeled::default()
        };
        for line in lines {
            let fields: Vec<&str> = line.split(',').collect();
            let n = labeled.names.len();
            match fields.split_first()? {
                (&"s", rest) if rest.len() >= n && labeled.overflow.is_none() => {
                    let values = rest[..n]
                        .iter()
                        .map(|v| unescape(v))
                        .collect::<Option<_>>()?;
                    labeled.sets.push(counts(values, &rest[n..])?);
                }
                (&"o", rest) if labeled.overflow.is_none() => {
                    labeled.overflow = Some(counts(overflow_values(n), rest)?);
                }
                _ => return None,
            }
        }
        Some(labeled)
    }
}

/// The values of the overflow series for `n` label names.
fn overflow_values(n: usize) -> Box<[Box<str>]> {
    vec![Box::<str>::from(OVERFLOW_VALUE); n].into_boxed_slice()
}

impl Widgets {
    /// Counts a widget as started (in progress until it finishes).
    pub fn started(&self) {
        self.in_progress.fetch_add(1, Relaxed);
    }

    /// Records a finished widget: its processing time if known, its outcome, its wall-clock
    /// end and the instant `at` that places it in the average window. A widget without a
    /// duration (a failure logged without one) counts in the totals only, not in the
    /// histogram or the average. In progress goes down by one, never below 0: widgets that
    /// started before the source could see them finish too.
    pub fn finished(&self, duration: Option<Duration>, failed: bool, unix_nanos: u64, at: Instant) {
        let w = self;
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
            w.window.record(at, nanos);
        }
        w.processed.fetch_add(1, Relaxed);
        if failed {
            w.failed.fetch_add(1, Relaxed);
        }
        let running = w.in_progress.load(Relaxed);
        w.in_progress.store(running.saturating_sub(1), Relaxed);
        w.last_processed_unix_nanos.store(unix_nanos, Relaxed);
    }

    /// Labels the widget families with `names` (at most 4; none leaves them unlabeled) and
    /// returns the values of the label sets already known, in order of admission: those a
    /// restart in place carried, if they were made for the same names (else they are
    /// dropped). The caller admits nothing twice: it admits only sets past these.
    pub(crate) fn label_with(&self, names: &[String]) -> Vec<Vec<String>> {
        let mut l = self.labels.0.borrow_mut();
        if l.names != names {
            *l = Labeled {
                names: names.iter().take(MAX_NAMES).cloned().collect(),
                ..Labeled::default()
            };
        }
        l.sets
            .iter()
            .map(|c| c.values.iter().map(|v| String::from(&**v)).collect())
            .collect()
    }

    /// Admits a new label set (its values in the order of the names given to
    /// [`Widgets::label_with`]); returns its index. The only allocation of a labeled
    /// series: counting in it later allocates nothing.
    pub(crate) fn admit_label_set(&self, values: &[&str]) -> usize {
        let mut l = self.labels.0.borrow_mut();
        let n = l.names.len();
        let values = (0..n)
            .map(|i| Box::<str>::from(values.get(i).copied().unwrap_or("")))
            .collect();
        l.sets.push(Counts::new(values));
        l.sets.len() - 1
    }

    /// [`Widgets::finished`], counted in the label set `set` as well.
    pub(crate) fn labeled_finished(
        &self,
        set: LabelSet,
        duration: Option<Duration>,
        failed: bool,
        unix_nanos: u64,
        at: Instant,
    ) {
        self.finished(duration, failed, unix_nanos, at);
        let mut l = self.labels.0.borrow_mut();
        let n = l.names.len();
        let counts = match set {
            LabelSet::Admitted(i) => l.sets.get_mut(i),
            LabelSet::Overflow => Some(
                l.overflow
                    .get_or_insert_with(|| Counts::new(overflow_values(n))),
            ),
        };
        let Some(c) = counts else { return };
        c.processed += 1;
        c.failed += u64::from(failed);
        if let Some(d) = duration {
            let nanos = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
            let slot = BUCKETS
                .iter()
                .position(|&(bound, _)| nanos <= bound)
                .unwrap_or(BUCKETS.len());
            c.buckets[slot] += 1;
            c.sum_nanos = c.sum_nanos.saturating_add(nanos);
        }
    }

    /// The label sets in their carried form, appended to `out` (nothing when unlabeled).
    pub(crate) fn export_labels(&self, out: &mut String) {
        let l = self.labels.0.borrow();
        if !l.names.is_empty() {
            l.export(out);
        }
    }

    /// Restores label sets written by [`Widgets::export_labels`]; false (and nothing changed)
    /// if the text is not exactly that shape.
    pub(crate) fn import_labels(&self, text: &str) -> bool {
        match Labeled::import(text) {
            Some(l) => {
                *self.labels.0.borrow_mut() = l;
                true
            }
            None => false,
        }
    }
}

/// Slots of the average window: its far edge moves in steps of a hundredth of the window.
const WINDOW_SLOTS: usize = 100;

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
    /// An empty window `width` wide whose slots count from `start`.
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::ProcessStats;
    use crate::metrics::{Metrics, Parts};

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
            m.widgets
                .finished(Some(Duration::from_millis(ms)), failed, 7, Instant::now());
        }
        let s = m.snapshot(ProcessStats::default());
        // le=0.025 holds 25ms exactly; 26ms goes to 0.05; 20s only to +Inf.
        assert_eq!(s.widgets.duration_buckets[0], 1);
        assert_eq!(s.widgets.duration_buckets[1], 2);
        assert_eq!(s.widgets.duration_buckets[2], 3);
        assert_eq!(s.widgets.duration_buckets[8], 4);
        assert_eq!(s.widgets.duration_buckets[BUCKETS.len() - 1], 4);
        assert_eq!(s.widgets.duration_buckets[BUCKETS.len()], 5);
        assert_eq!(s.widgets.duration_sum_nanos, 20_651_000_000);
        assert_eq!(
            (s.widgets.processed, s.widgets.failed, s.widgets.in_progress),
            (5, 1, Some(0))
        );
        assert_eq!(s.widgets.last_processed_unix_nanos, 7);
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
                .widgets
                .average_nanos
        };
        let finish = |nanos, at| {
            m.widgets
                .finished(Some(Duration::from_nanos(nanos)), false, 0, t0 + at);
        };
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
        m.widgets.finished(None, true, 0, t0 + ms(20_000));
        let s = m.snapshot_at(ProcessStats::default(), t0 + ms(20_000));
        assert_eq!(
            (
                s.widgets.processed,
                s.widgets.failed,
                s.widgets.average_nanos
            ),
            (1_000_004, 1, Some(499))
        );
        // Every width from 1 s to 24 h works; the step is a hundredth of it.
        for width in [Duration::from_secs(1), Duration::from_secs(86_400)] {
            let m = Metrics::new(Parts::default(), width, t0);
            m.widgets.finished(Some(ms(1)), false, 0, t0);
            let at = |d| {
                m.snapshot_at(ProcessStats::default(), t0 + d)
                    .widgets
                    .average_nanos
            };
            assert_eq!(at(width / 100 * 99), Some(1_000_000));
            assert_eq!(at(width), None);
        }
    }

    /// The label sets and their counts survive the carried form, whatever their values hold;
    /// anything that is not that form is refused without a panic and changes nothing.
    #[test]
    fn label_sets_survive_the_carried_form() {
        use crate::metrics::render::{render, Format};
        let parts = Parts {
            log: true,
            ..Parts::default()
        };
        let names = ["status".to_owned(), "worker".to_owned()];
        let a = Metrics::new(parts, Duration::from_secs(60), Instant::now());
        assert!(a.widgets.label_with(&names).is_empty());
        let awkward = [
            ["ok", "w1"],
            ["fa,il%ed", "w\u{fc}"],
            ["", "\n1\u{0}2%4:\u{7f}\"\\"],
        ];
        for (i, values) in awkward.iter().enumerate() {
            assert_eq!(a.widgets.admit_label_set(values), i);
            let set = LabelSet::Admitted(i);
            a.widgets.labeled_finished(
                set,
                Some(Duration::from_millis(120)),
                i == 1,
                5,
                Instant::now(),
            );
        }
        a.widgets
            .labeled_finished(LabelSet::Overflow, None, true, 6, Instant::now());
        let text = a.export_counters();
        assert!(!text.contains('\0'), "{text:?}");
        let b = Metrics::new(parts, Duration::from_secs(60), Instant::now());
        assert!(b.import_counters(&text));
        let rendered = |m: &Metrics| {
            let mut out = String::new();
            render(
                &m.snapshot(ProcessStats::default()),
                Format::OpenMetrics,
                &mut out,
            );
            out.lines()
                .filter(|l| l.starts_with("widget"))
                .filter(|l| !l.starts_with("widget_exporter_log_files"))
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(rendered(&a), rendered(&b));
        assert!(rendered(&b).iter().any(|l| l.contains(r#"worker="\n1"#)));
        let known = b.widgets.label_with(&names);
        assert_eq!(known.len(), 3);
        assert_eq!(known[1], ["fa,il%ed", "w\u{fc}"]);
        // Every cut and every single-byte change is refused or read without a panic.
        for cut in (0..text.len()).filter(|&c| text.is_char_boundary(c)) {
            let _ = Metrics::default().import_counters(&text[..cut]);
        }
        for at in 0..text.len() {
            for byte in [b'9', b',', b'%', b'\n', b's', b'o'] {
                let mut bad = text.clone().into_bytes();
                bad[at] = byte;
                let _ = Metrics::default().import_counters(&String::from_utf8_lossy(&bad));
            }
        }
        let numbers = text.split('\n').next().expect("a first line");
        for bad in [
            format!("{numbers}\nnames,a,b,c,d,e"),
            format!("{numbers}\nnames,a\ns,x,1"),
            format!(
                "{numbers}\nnames,a\no,1,2\ns,x,{}",
                "0,".repeat(CARRIED_COUNTS)
            ),
            format!(
                "{numbers}\nnames,a\ns,%zz,{}",
                ["0"; CARRIED_COUNTS].join(",")
            ),
            format!("{numbers}\nlabels,a"),
        ] {
            let c = Metrics::new(parts, Duration::from_secs(60), Instant::now());
            assert!(!c.import_counters(&bad), "{bad:?}");
            assert!(
                c.widgets.label_with(&names).is_empty(),
                "nothing changed: {bad:?}"
            );
        }
        let good = format!(
            "{numbers}\nnames,a\ns,%2C,{}",
            ["0"; CARRIED_COUNTS].join(",")
        );
        assert!(Metrics::default().import_counters(&good));
    }

    #[test]
    fn in_progress_never_goes_below_zero() {
        let m = Metrics::default();
        let now = Instant::now();
        m.widgets
            .finished(Some(Duration::from_millis(1)), false, 0, now);
        m.widgets.started();
        m.widgets.started();
        assert_eq!(
            m.snapshot(ProcessStats::default()).widgets.in_progress,
            Some(2)
        );
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
        assert_eq!(
            (s.widgets.in_progress, s.http),
            (None, None),
            "families left out"
        );
    }
}
