//! Micro-benchmark of rendering (`cargo bench --bench render`): one realistic snapshot
//! rendered into one reused `String`, in both formats, timed with `Instant` over batches. No
//! sockets, no `/proc`, no atomics. For scale it also times a whole `Site::scrape` (read
//! `/proc`, snapshot the atomics, render), which is the exporter's own work per scrape.
//!
//! One line per case, `KIND format=F ns=N min_ns=M bytes=B batches=K iters=I` with KIND
//! `render` or `scrape`: `ns` is the median over the batches of the mean time per call,
//! `min_ns` the fastest batch (the least disturbed on a shared machine). `tests/bench/run.sh`
//! reads these lines.

use std::hint::black_box;
use std::time::{Duration, Instant};

use widget_exporter::host::process::ProcessStats;
use widget_exporter::metrics::render::{render, Format};
use widget_exporter::metrics::{Metrics, Snapshot};
use widget_exporter::output::http::Site;

/// Renders per batch; a batch lasts a few milliseconds, long against `Instant`'s resolution.
const ITERS: u32 = 20_000;
/// Scrapes per batch.
const SCRAPE_ITERS: u32 = 500;
/// Batches per case; the median shrugs off the ones a noisy neighbour disturbed.
const BATCHES: usize = 15;

/// An exporter that has run for about a day: every family present, multi-digit counters, a
/// filled histogram, real-looking `/proc` values. Built through [`Metrics`]' own methods, as
/// the loop builds it, so the bench follows the families as they change.
fn snapshot() -> Snapshot {
    let metrics = Metrics::default();
    let mut end_unix_nanos = 1_795_670_695_000_000_000;
    // One widget every ~1.3 s for a day, durations spread over the 0.1–0.5 s defaults.
    for i in 0..66_461u64 {
        let duration = Duration::from_micros(100_000 + (i * 7_919) % 400_000);
        end_unix_nanos += 1_300_000_000;
        metrics
            .widgets
            .finished(Some(duration), i % 20 == 0, end_unix_nanos, Instant::now());
    }
    metrics.widgets.started();
    for _ in 0..5_760 {
        metrics.http.count_request(200);
    }
    for _ in 0..12 {
        metrics.http.count_request(404);
    }
    metrics.snapshot(ProcessStats {
        cpu_nanos: Some(12_470_000_000),
        resident_memory_bytes: Some(1_679_360),
        virtual_memory_bytes: Some(9_453_568),
        start_time_nanos: Some(1_795_670_695_120_000_000),
        open_fds: Some(7),
        max_fds: Some(1_048_576),
        threads: Some(2),
    })
}

/// Median and minimum over [`BATCHES`] of the mean nanoseconds per call of `f`, which runs
/// `iters` times per batch after a warm-up of a tenth of that.
fn measure(iters: u32, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..iters / 10 {
        f();
    }
    let mut per_call: Vec<f64> = (0..BATCHES)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..iters {
                f();
            }
            start.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    per_call.sort_by(f64::total_cmp);
    (per_call[BATCHES / 2], per_call[0])
}

fn main() {
    let snapshot = snapshot();
    let formats = [("text", Format::Text), ("openmetrics", Format::OpenMetrics)];
    for (name, format) in formats {
        let mut out = String::new();
        let (ns, min) = measure(ITERS, || {
            render(black_box(&snapshot), format, &mut out);
            black_box(out.as_ptr());
        });
        let bytes = out.len();
        println!(
            "render format={name} ns={ns:.0} min_ns={min:.0} bytes={bytes} batches={BATCHES} iters={ITERS}"
        );
    }
    // A scrape reads four `/proc` files per call: far slower, so fewer calls per batch.
    let metrics = Metrics::default();
    let mut site = Site::new("/metrics");
    for (name, format) in formats {
        let mut bytes = 0;
        let (ns, min) = measure(SCRAPE_ITERS, || {
            bytes = black_box(site.scrape(&metrics, format).len());
        });
        println!(
            "scrape format={name} ns={ns:.0} min_ns={min:.0} bytes={bytes} batches={BATCHES} iters={SCRAPE_ITERS}"
        );
    }
}
