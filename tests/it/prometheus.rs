//! A real Prometheus server (Debian's `prometheus` package) scrapes the real binary every
//! second from a temporary config; the test asserts through Prometheus's HTTP API that the
//! target is healthy, `up` is 1, at least three scrapes all succeeded, widgets are counted,
//! and the p90 from `histogram_quantile` lies within the configured duration range; then,
//! from the exporter's debug log, that Prometheus negotiated OpenMetrics and never fell back
//! to text.
//!
//! Prometheus is driven over the support layer's raw HTTP client and its JSON is read by string search: the
//! tests take no dev-dependencies.

use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{Exporter, Proc, TempDir};

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
    let mut prometheus = Prometheus::start(&bin, dir.path(), exporter.addr);
    let mut api = Api::new(prometheus.addr);

    let mut why = String::new();
    let p90 = support::poll(DEADLINE, POLL, || {
        if let Some(status) = prometheus.server.exited() {
            fail(
                &format!("prometheus exited early: {status}"),
                &api,
                &prometheus,
                &exporter,
            );
        }
        api.all_conditions(exporter.addr).map_err(|e| why = e).ok()
    });
    let Some(p90) = p90 else {
        fail(
            &format!("after {DEADLINE:?}, still: {why}"),
            &api,
            &prometheus,
            &exporter,
        )
    };

    let log = exporter.log();
    let scrapes: Vec<Vec<(String, String)>> = log
        .lines()
        .map(support::logfmt)
        .filter(|fields| {
            get(fields, "msg") == Some("request")
                && get(fields, "user_agent").is_some_and(|ua| ua.starts_with("Prometheus/"))
        })
        .collect();
    let formats: Vec<Option<&str>> = scrapes.iter().map(|f| get(f, "format")).collect();
    let openmetrics = formats
        .iter()
        .filter(|f| **f == Some("openmetrics"))
        .count();
    if openmetrics == 0 || formats.iter().any(|f| *f != Some("openmetrics")) {
        let requests: String = log
            .lines()
            .filter(|l| get(&support::logfmt(l), "msg") == Some("request"))
            .flat_map(|l| [l, "\n"])
            .collect();
        fail(
            &format!(
                "expected every request from a Prometheus/ user agent to be answered with \
                 format=openmetrics (and at least one); got {openmetrics} of {} ({} with \
                 format=text, {} without a format field). The exporter's request lines:\n{requests}",
                formats.len(),
                formats.iter().filter(|f| **f == Some("text")).count(),
                formats.iter().filter(|f| f.is_none()).count(),
            ),
            &api,
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
fn fail(what: &str, api: &Api, prometheus: &Prometheus, exporter: &Exporter) -> ! {
    let mut msg = format!("{what}\n\n--- last Prometheus API answers ---\n");
    for (call, answer) in &api.answers {
        let _ = writeln!(msg, "{call}\n  -> {answer}");
    }
    let _ = write!(
        msg,
        "\n--- Prometheus log, tail ---\n{}\n\n--- exporter log, tail ---\n{}",
        tail(&prometheus.server.log(), 40),
        tail(&exporter.log(), 40)
    );
    panic!("{msg}");
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// A Prometheus server scraping one target every second; killed when dropped.
struct Prometheus {
    server: Proc,
    addr: SocketAddr,
}

impl Prometheus {
    fn start(bin: &Path, dir: &Path, target: SocketAddr) -> Prometheus {
        let config = dir.join("prometheus.yml");
        fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: {JOB}\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        // Another process may take the port before Prometheus binds it; then Prometheus
        // exits, and the test reports that with its log.
        let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
        let server = Proc::spawn(
            Command::new(bin)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                // Relative defaults (the query log, console templates) stay in the temp dir.
                .current_dir(dir),
            dir.join("prometheus.log"),
        );
        Prometheus { server, addr }
    }
}

/// Prometheus's HTTP API, remembering the last answer to each call for the failure report.
struct Api {
    addr: SocketAddr,
    answers: Vec<(String, String)>,
}

impl Api {
    fn new(addr: SocketAddr) -> Api {
        Api {
            addr,
            answers: Vec::new(),
        }
    }

    /// One round of every check; the p90 in seconds when all of them hold.
    fn all_conditions(&mut self, exporter: SocketAddr) -> Result<f64, String> {
        let targets = self.get("/api/v1/targets")?;
        let target = json_array_objects(&targets, "activeTargets")
            .into_iter()
            .find(|t| t.contains(&format!("\"job\":\"{JOB}\"")))
            .ok_or("no active target for the job")?;
        let url = format!("http://{exporter}/metrics");
        if json_string(target, "scrapeUrl").as_deref() != Some(url.as_str()) {
            return Err(format!("target does not scrape {url}"));
        }
        if json_string(target, "health").as_deref() != Some("up") {
            return Err("target health is not up".into());
        }
        if json_string(target, "lastError").as_deref() != Some("") {
            return Err("target lastError is not empty".into());
        }

        let up = self.query(&format!("up{{job=\"{JOB}\"}}"))?;
        if !matches!(up[..], [v] if (v - 1.0).abs() < 1e-9) {
            return Err(format!("up is {up:?}, expected [1]"));
        }
        // Catches a failure between two polls that `lastError` no longer shows.
        let min_up = self.query(&format!("min_over_time(up{{job=\"{JOB}\"}}[5m])"))?;
        if !matches!(min_up[..], [v] if (v - 1.0).abs() < 1e-9) {
            return Err(format!(
                "some scrape failed: min_over_time(up) is {min_up:?}"
            ));
        }

        // "A few scrapes": more than the two a rate needs, so the format check below sees more.
        let scrapes = self.query(&format!("count_over_time(up{{job=\"{JOB}\"}}[5m])"))?;
        if !matches!(scrapes[..], [n] if n >= 3.0) {
            return Err(format!("scrapes so far: {scrapes:?}, waiting for 3"));
        }

        let rate = self.query("rate(widgets_processed_total[10s]) > 0")?;
        if rate.is_empty() {
            return Err("no widgets processed per second yet".into());
        }

        let p90 = self.query(
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

    /// An instant query's sample values (NaN included).
    fn query(&mut self, promql: &str) -> Result<Vec<f64>, String> {
        let body = self.get(&format!("/api/v1/query?query={}", url_encode(promql)))?;
        if json_string(&body, "status").as_deref() != Some("success") {
            return Err(format!("query {promql} did not succeed"));
        }
        // Each vector sample is `"value":[<unix time>,"<number>"]`.
        body.split("\"value\":[")
            .skip(1)
            .map(|rest| {
                let number = rest.split_once(',').and_then(|(_, r)| {
                    let r = r.trim_start().strip_prefix('"')?;
                    Some(&r[..r.find('"')?])
                });
                number
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| format!("unparsable sample in the answer to {promql}"))
            })
            .collect()
    }

    /// The body of a 200 answer; anything else (Prometheus still starting: refused, 503) is
    /// an `Err` to retry.
    fn get(&mut self, target: &str) -> Result<String, String> {
        let answer = support::try_get(self.addr, target, Duration::from_secs(10));
        let shown = match &answer {
            Ok(r) => format!("{} {}", r.status, r.body),
            Err(e) => format!("error: {e}"),
        };
        match self.answers.iter_mut().find(|(t, _)| t == target) {
            Some((_, last)) => *last = shown,
            None => self.answers.push((target.to_string(), shown)),
        }
        match answer {
            Ok(r) if r.status == 200 => Ok(r.body),
            Ok(r) => Err(format!("GET {target}: status {}", r.status)),
            Err(e) => Err(format!("GET {target}: {e}")),
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The raw value of the first string member `key` in `json` (escapes left as they are:
/// enough to compare with plain ASCII).
fn json_string(json: &str, key: &str) -> Option<String> {
    let pat = format!("\"{key}\":");
    let rest = json[json.find(&pat)? + pat.len()..]
        .trim_start()
        .strip_prefix('"')?;
    let mut escaped = false;
    let end = rest.find(|c| {
        let end = c == '"' && !escaped;
        escaped = c == '\\' && !escaped;
        end
    })?;
    Some(rest[..end].to_string())
}

/// The top-level objects of the array member `key`, as slices of `json`.
fn json_array_objects<'a>(json: &'a str, key: &str) -> Vec<&'a str> {
    let pat = format!("\"{key}\":");
    let Some(at) = json.find(&pat) else {
        return Vec::new();
    };
    let Some(array) = json[at + pat.len()..].trim_start().strip_prefix('[') else {
        return Vec::new();
    };
    let (mut objects, mut depth, mut start) = (Vec::new(), 0usize, 0);
    let (mut in_string, mut escaped) = (false, false);
    for (i, c) in array.char_indices() {
        if in_string {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '{' | '[' => {
                if depth == 0 {
                    start = i;
                }
                depth += 1;
            }
            '}' | ']' if depth == 0 => break, // the array's own end
            '}' | ']' => {
                depth -= 1;
                if depth == 0 && c == '}' {
                    objects.push(&array[start..=i]);
                }
            }
            _ => {}
        }
    }
    objects
}

/// The value of `key` among a logfmt line's fields.
fn get<'a>(fields: &'a [(String, String)], key: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[test]
fn helpers_parse_what_prometheus_and_the_exporter_write() {
    assert_eq!(
        url_encode("up{job=\"a b\"}[5m]"),
        "up%7Bjob%3D%22a%20b%22%7D%5B5m%5D"
    );
    assert_eq!(
        support::dechunk(b"5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n").map(|(body, _)| body),
        Some(b"hello!".to_vec())
    );
    let targets = r#"{"status":"success","data":{"activeTargets":[{"labels":{"job":"other"},"lastError":"x \"}\""},{"health":"up","labels":{"job":"widget-exporter"},"lastError":""}],"droppedTargets":[]}}"#;
    let objects = json_array_objects(targets, "activeTargets");
    assert_eq!(objects.len(), 2, "{objects:?}");
    assert_eq!(
        json_string(objects[0], "lastError").as_deref(),
        Some("x \\\"}\\\"")
    );
    assert_eq!(json_string(objects[1], "health").as_deref(), Some("up"));
    assert_eq!(json_string(objects[1], "lastError").as_deref(), Some(""));
    let line = r#"ts=2026-01-01T00:00:00.000Z level=debug msg=request path=/metrics user_agent="curl x format=text" format=openmetrics"#;
    let fields = support::logfmt(line);
    assert_eq!(get(&fields, "user_agent"), Some("curl x format=text"));
    assert_eq!(get(&fields, "format"), Some("openmetrics"));
    assert_eq!(get(&fields, "msg"), Some("request"));
}
