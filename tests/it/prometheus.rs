//! A real Prometheus server (Debian's `prometheus` package) scrapes the real binary every
//! second from a temporary config; the test asserts through Prometheus's HTTP API that the
//! target is healthy, `up` is 1, at least three scrapes all succeeded, widgets are counted,
//! and the p90 from `histogram_quantile` lies within the configured duration range; then,
//! from the exporter's debug log, that Prometheus negotiated OpenMetrics and never fell back
//! to text.
//!
//! Prometheus is run and asked through `promapi`, the runner the alert and dashboard tests
//! share.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::promapi::{self, Json, Prometheus};
use crate::support;
use crate::support::{Exporter, TempDir};

/// Generous: Prometheus usually has everything within ~5 s of starting.
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(250);
const JOB: &str = "widget-exporter";
/// The configured `--widget.min-duration` and `--widget.max-duration`, in seconds; both are
/// bucket bounds, so `histogram_quantile`'s interpolation cannot leave this range.
const MIN_SECONDS: f64 = 0.1;
const MAX_SECONDS: f64 = 0.3;

#[test]
fn prometheus_scrapes_openmetrics_and_sees_the_widgets() {
    let Some(bin) = support::require_tool("prometheus") else {
        return;
    };
    let started = Instant::now();
    // Declared in this order so they drop in reverse: Prometheus is killed before its
    // directory is removed, and the exporter goes last.
    let exporter = Exporter::start(&[
        "--widget.min-duration=100ms",
        "--widget.max-duration=300ms",
        "--widget.interval=50ms",
        "--widget.failure-ratio=0.2",
        "--log.level=debug",
    ]);
    let dir = TempDir::new("prometheus");
    let config = promapi::config(JOB, &[exporter.addr], &[]);
    let mut prometheus = Prometheus::start(&bin, dir.path(), &config);

    let mut why = String::new();
    let p90 = support::poll(DEADLINE, POLL, || {
        if !prometheus.running() {
            fail("prometheus exited early", &prometheus, &exporter);
        }
        all_conditions(&prometheus, exporter.addr)
            .map_err(|e| why = e)
            .ok()
    });
    let Some(p90) = p90 else {
        fail(
            &format!("after {DEADLINE:?}, still: {why}"),
            &prometheus,
            &exporter,
        )
    };

    let log = exporter.log();
    let formats: Vec<Option<String>> = log
        .lines()
        .filter(|l| {
            support::field(l, "msg").as_deref() == Some("request")
                && support::field(l, "user_agent").is_some_and(|ua| ua.starts_with("Prometheus/"))
        })
        .map(|l| support::field(l, "format"))
        .collect();
    let openmetrics = formats
        .iter()
        .filter(|f| f.as_deref() == Some("openmetrics"))
        .count();
    if openmetrics == 0 || formats.iter().any(|f| f.as_deref() != Some("openmetrics")) {
        let requests: String = log
            .lines()
            .filter(|l| support::field(l, "msg").as_deref() == Some("request"))
            .flat_map(|l| [l, "\n"])
            .collect();
        fail(
            &format!(
                "expected every request from a Prometheus/ user agent to be answered with \
                 format=openmetrics (and at least one); got {openmetrics} of {} ({} with \
                 format=text, {} without a format field). The exporter's request lines:\n{requests}",
                formats.len(),
                formats
                    .iter()
                    .filter(|f| f.as_deref() == Some("text"))
                    .count(),
                formats.iter().filter(|f| f.is_none()).count(),
            ),
            &prometheus,
            &exporter,
        );
    }
    support::say(&format!(
        "prometheus: all conditions held after {:.1}s; p90 {p90}s; {openmetrics} scrapes, all OpenMetrics",
        started.elapsed().as_secs_f64()
    ));
}

/// Panics with the reason, the last answer to every API call, and both logs' tails.
fn fail(what: &str, prometheus: &Prometheus, exporter: &Exporter) -> ! {
    panic!(
        "{what}\n\n--- last Prometheus API answers ---\n{}\n--- Prometheus log, tail ---\n{}\n\n\
         --- exporter log, tail ---\n{}",
        prometheus.answers(),
        prometheus.log_tail(40),
        support::tail(&exporter.log(), 40)
    );
}

/// One round of every check; the p90 in seconds when all of them hold.
fn all_conditions(prometheus: &Prometheus, exporter: SocketAddr) -> Result<f64, String> {
    let targets = prometheus.api("/api/v1/targets")?;
    let target = targets
        .get("data")
        .and_then(|d| d.get("activeTargets"))
        .and_then(Json::as_array)
        .unwrap_or_default()
        .iter()
        .find(|t| {
            t.get("labels")
                .and_then(|l| l.get("job"))
                .and_then(Json::as_str)
                == Some(JOB)
        })
        .ok_or("no active target for the job")?;
    let text = |key: &str| target.get(key).and_then(Json::as_str);
    let url = format!("http://{exporter}/metrics");
    if text("scrapeUrl") != Some(url.as_str()) {
        return Err(format!("target does not scrape {url}"));
    }
    if text("health") != Some("up") {
        return Err("target health is not up".into());
    }
    if text("lastError") != Some("") {
        return Err("target lastError is not empty".into());
    }

    let up = prometheus.values(&format!("up{{job=\"{JOB}\"}}"))?;
    if !matches!(up[..], [v] if (v - 1.0).abs() < 1e-9) {
        return Err(format!("up is {up:?}, expected [1]"));
    }
    // Catches a failure between two polls that `lastError` no longer shows.
    let min_up = prometheus.values(&format!("min_over_time(up{{job=\"{JOB}\"}}[5m])"))?;
    if !matches!(min_up[..], [v] if (v - 1.0).abs() < 1e-9) {
        return Err(format!(
            "some scrape failed: min_over_time(up) is {min_up:?}"
        ));
    }

    // "A few scrapes": more than the two a rate needs, so the format check below sees more.
    let scrapes = prometheus.values(&format!("count_over_time(up{{job=\"{JOB}\"}}[5m])"))?;
    if !matches!(scrapes[..], [n] if n >= 3.0) {
        return Err(format!("scrapes so far: {scrapes:?}, waiting for 3"));
    }

    let rate = prometheus.values("rate(widgets_processed_total[10s]) > 0")?;
    if rate.is_empty() {
        return Err("no widgets processed per second yet".into());
    }

    let p90 = prometheus.values(
        "histogram_quantile(0.9, sum by (le) (rate(widget_processing_duration_seconds_bucket[15s])))",
    )?;
    // The epsilon absorbs float rounding in the interpolation at a bucket bound.
    match p90[..] {
        [v] if (MIN_SECONDS - 1e-9..=MAX_SECONDS + 1e-9).contains(&v) => Ok(v),
        _ => Err(format!(
            "p90 is {p90:?}, expected one value in [{MIN_SECONDS}, {MAX_SECONDS}]"
        )),
    }
}
