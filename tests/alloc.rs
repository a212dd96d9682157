//! Zero allocations per scrape in the steady state, proven with a counting global allocator.
//!
//! The allocator counts only on a thread that has switched counting on, and only between
//! [`count_allocations`]'s start and end, so the test harness and tests running on other
//! threads never show up in a measurement. What is measured is our side of a scrape: reading
//! `/proc`, snapshotting the atomics and rendering into the reused buffer (`Site::scrape`).
//! tiny_http's own per-request work (parsing, headers, the response object) is outside it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use widget_exporter::host::process::ProcessReader;
use widget_exporter::metrics::render::{render, Format};
use widget_exporter::metrics::Metrics;
use widget_exporter::output::http::Site;

/// Scrapes per format in a measured section.
const SCRAPES: u64 = 1000;

/// [`System`], plus counts of the calls made while the current thread is counting.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    // `const` and `Copy`: no lazy initialisation and no destructor, so reading it inside the
    // allocator can never itself allocate or recurse.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

impl Counting {
    fn note(size: usize) {
        // `try_with`: during thread teardown the slot may be gone; such calls are not ours.
        if COUNTING.try_with(Cell::get).unwrap_or(false) {
            ALLOCATIONS.fetch_add(1, Relaxed);
            BYTES.fetch_add(size as u64, Relaxed);
        }
    }
}

// A global allocator cannot be written without `unsafe`; this one only forwards to `System`.
#[allow(unsafe_code)]
// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; counting touches only atomics and a const thread-local, never the heap.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        Self::note(layout.size());
        // SAFETY: the caller's guarantees for `layout` are passed on as they are.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        Self::note(layout.size());
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        Self::note(new_size);
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by this allocator, that is by `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` with counting switched on for this thread; returns (allocations, bytes) it made.
/// The counters are shared, so the measured sections of concurrent tests are serialised.
fn count_allocations(f: impl FnOnce()) -> (u64, u64) {
    static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    ALLOCATIONS.store(0, Relaxed);
    BYTES.store(0, Relaxed);
    COUNTING.set(true);
    f();
    COUNTING.set(false);
    (ALLOCATIONS.load(Relaxed), BYTES.load(Relaxed))
}

/// Metrics as the loop leaves them after a while: widgets of both outcomes, requests counted.
fn busy_metrics() -> Metrics {
    let metrics = Metrics::default();
    for i in 0..500u64 {
        metrics.widgets.started();
        let duration = Duration::from_micros(100_000 + (i * 7_919) % 400_000);
        metrics.widgets.finished(
            Some(duration),
            i % 7 == 0,
            1_795_757_095_000_000_000 + i,
            Instant::now(),
        );
        metrics.http.count_request(200);
    }
    metrics.http.count_request(404);
    metrics
}

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the tests below against passing because nothing is counted.
    let (count, bytes) = count_allocations(|| {
        std::hint::black_box(vec![1u8; 100]);
    });
    assert_eq!((count, bytes), (1, 100));
}

#[test]
fn scrape_allocates_nothing_after_warm_up() {
    let metrics = busy_metrics();
    let mut site = Site::new("/metrics");
    for format in [Format::Text, Format::OpenMetrics] {
        for _ in 0..3 {
            std::hint::black_box(site.scrape(&metrics, format).len());
        }
    }
    let mut lines = Vec::new();
    for format in [Format::Text, Format::OpenMetrics] {
        let (count, bytes) = count_allocations(|| {
            for i in 0..SCRAPES {
                // Between scrapes the loop keeps counting; the payload changes as it would.
                metrics.http.count_request(200);
                if i % 100 == 0 {
                    metrics.widgets.finished(
                        Some(Duration::from_millis(250)),
                        false,
                        1_795_757_100 + i,
                        Instant::now(),
                    );
                }
                std::hint::black_box(site.scrape(&metrics, format).len());
            }
        });
        lines.push(format!(
            "alloc scrape format={format:?} allocations={count} bytes={bytes} scrapes={SCRAPES}"
        ));
    }
    // Printed always: `tests/bench/run.sh` reports these lines (`--nocapture`).
    let report = lines.join("\n");
    println!("{report}");
    assert!(
        lines.iter().all(|l| l.contains(" allocations=0 ")),
        "a steady-state scrape must not allocate:\n{report}"
    );
}

#[test]
fn render_allocates_nothing_after_warm_up() {
    let metrics = busy_metrics();
    let snapshot = metrics.snapshot(ProcessReader::new().read());
    let mut out = String::new();
    let mut lines = Vec::new();
    for format in [Format::Text, Format::OpenMetrics] {
        render(&snapshot, format, &mut out);
        let (count, bytes) = count_allocations(|| {
            for _ in 0..SCRAPES {
                render(std::hint::black_box(&snapshot), format, &mut out);
                std::hint::black_box(out.len());
            }
        });
        lines.push(format!(
            "alloc render format={format:?} allocations={count} bytes={bytes} renders={SCRAPES}"
        ));
    }
    let report = lines.join("\n");
    println!("{report}");
    assert!(
        lines.iter().all(|l| l.contains(" allocations=0 ")),
        "rendering into a warmed-up buffer must not allocate:\n{report}"
    );
}

#[test]
fn reading_proc_allocates_nothing_after_warm_up() {
    // A scrape reuses `/proc` figures for up to a second, so the scrape test above mostly
    // renders; this one covers the read every Prometheus-paced scrape makes.
    let mut reader = ProcessReader::new();
    for _ in 0..3 {
        std::hint::black_box(reader.read());
    }
    let (count, bytes) = count_allocations(|| {
        for _ in 0..200 {
            std::hint::black_box(reader.read());
        }
    });
    assert_eq!((count, bytes), (0, 0), "reading /proc allocated");
}
