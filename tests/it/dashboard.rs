//! The Grafana dashboard against a real Prometheus: two exporters (the default simulation
//! over HTTP; a log source that also writes a textfile, so the log and textfile families
//! have data) scraped every second; the dashboard's variables substituted as Grafana would;
//! every panel query evaluated through the HTTP API. Each must be valid, and each whose
//! families the exporters expose must return data. The dashboard must be JSON (read by the
//! test's own reader, and by python3's when there is one). Skipped, visibly, without
//! Prometheus; failed instead under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::promapi::{Json, Prometheus};
use crate::support::{say, Exporter, TempDir};

const JOB: &str = "widget-exporter";
/// What Grafana puts for `$__rate_interval` with a 1 s scrape interval is 4 s; a little
/// more keeps a late scrape from emptying a rate.
const RATE_INTERVAL: &str = "10s";

/// The dashboard as printed; checked to be JSON by python3's reader too when it is there.
fn dashboard() -> (String, Json) {
    let (ok, text, err) = crate::support::run(
        Command::new(crate::support::binary()).arg("--print-grafana-dashboard"),
    );
    assert!(ok, "--print-grafana-dashboard: {err}");
    let json = Json::parse(&text).unwrap_or_else(|e| panic!("dashboard: {e}"));
    if let Some(python) = crate::support::tool("python3") {
        let (ok, _, err) = crate::support::run_with_stdin(
            Command::new(python).args(["-c", "import json, sys; json.load(sys.stdin)"]),
            &text,
        );
        assert!(ok, "python3's json refuses the dashboard: {err}");
    }
    (text, json)
}

/// (panel title, refId, expr) of every query of every panel, in the dashboard's order.
fn panel_queries(dashboard: &Json) -> Vec<(String, String, String)> {
    fn walk(panels: &[Json], out: &mut Vec<(String, String, String)>) {
        for p in panels {
            let title = p.get("title").and_then(Json::as_str).unwrap_or("?");
            for t in p
                .get("targets")
                .and_then(Json::as_array)
                .unwrap_or_default()
            {
                let text = |k| t.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
                out.push((title.to_owned(), text("refId"), text("expr")));
            }
            // A collapsed row carries its panels inside it.
            walk(
                p.get("panels").and_then(Json::as_array).unwrap_or_default(),
                out,
            );
        }
    }
    let mut out = Vec::new();
    walk(
        dashboard
            .get("panels")
            .and_then(Json::as_array)
            .unwrap_or_default(),
        &mut out,
    );
    out
}

/// The metric names a query selects: each name right before a `{`.
fn selected_names(expr: &str) -> Vec<String> {
    expr.match_indices('{')
        .map(|(at, _)| {
            let head = &expr[..at];
            let start = head
                .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .map_or(0, |i| i + 1);
            head[start..].to_owned()
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// The series names an exporter's text exposition has (`# TYPE` lines, histograms with
/// their `_bucket`, `_sum` and `_count`).
fn series_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else {
            continue;
        };
        let mut parts = rest.split_whitespace();
        let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        if kind == "histogram" {
            for suffix in ["_bucket", "_sum", "_count"] {
                names.insert(format!("{name}{suffix}"));
            }
        }
        names.insert(name.to_owned());
    }
    names
}

#[test]
fn every_panel_query_is_valid_and_those_with_families_return_data() {
    let Some(bin) = crate::support::require_tool("prometheus") else {
        return;
    };
    let (_, json) = dashboard();
    let queries = panel_queries(&json);
    assert!(queries.len() >= 20, "{queries:?}");

    let dir = TempDir::new("dashboard");
    let log = dir.join("app.log");
    std::fs::write(&log, "").expect("create the log");
    let sim = Exporter::start(&[]);
    let log_flag = format!("--widget.log.path={}", log.display());
    let textfile_flag = format!(
        "--textfile.path={}",
        dir.join("widget-exporter.prom").display()
    );
    let logged = Exporter::start(&[
        "--widget.source=log",
        &log_flag,
        // A label whose values outgrow a cap of 2 sets, so the overflow panel has data.
        "--widget.log.finished=widget {label:widget} done took={duration}",
        "--widget.log.failed=* failed *",
        "--widget.log.max-series=2",
        "--widget.log.poll-interval=100ms",
        &textfile_flag,
        "--textfile.interval=1s",
    ]);

    // Lines the log source counts, matches none of, and a rotation (renamed away).
    let stop = Arc::new(AtomicBool::new(false));
    let writer = write_log(log.clone(), Arc::clone(&stop));

    let config = crate::promapi::config(JOB, &[sim.addr, logged.addr], &[]);
    let mut prometheus = Prometheus::start(&bin, dir.path(), &config);

    // What the two exporters expose, from their own /metrics.
    let mut families: BTreeSet<String> = ["up".to_owned()].into();
    for e in [&sim, &logged] {
        let r = e.get("/metrics");
        assert_eq!(r.status, 200);
        families.extend(series_names(&r.body));
    }

    // Until every query that should have data has it, for at most a minute: rates need
    // two scrapes inside their window.
    let deadline = Instant::now() + Duration::from_secs(60);
    let report = loop {
        assert!(
            prometheus.running(),
            "prometheus died\n{}",
            prometheus.log_tail(30)
        );
        let (report, waiting) = one_round(&prometheus, &queries, &families);
        if waiting.is_empty() {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "after 60 s these queries still return nothing although their families are \
             exposed:\n{}\n\nfamilies: {families:?}\n\nexporter log:\n{}\n\nprometheus:\n{}",
            waiting.join("\n"),
            logged.log(),
            prometheus.log_tail(20)
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    stop.store(true, Ordering::Relaxed);
    writer.join().expect("log writer");

    // The variables resolve as Grafana's label_values() would.
    let jobs = prometheus
        .api("/api/v1/label/job/values?match[]=widget_exporter_build_info")
        .map(|j| format!("{:?}", j.get("data")))
        .expect("label values API");
    assert!(
        jobs.contains(JOB),
        "label_values(widget_exporter_build_info, job): {jobs}"
    );
    let instances = prometheus
        .api(&format!(
            "/api/v1/label/instance/values?match[]={}",
            crate::promapi::url_encode(&format!("widget_exporter_build_info{{job=\"{JOB}\"}}"))
        ))
        .map(|j| format!("{:?}", j.get("data")))
        .expect("label values API");
    for e in [&sim, &logged] {
        assert!(instances.contains(&e.addr.to_string()), "{instances}");
    }
    say(&format!(
        "dashboard: {} queries, all valid ($job={JOB}, $instance=.+, $__rate_interval={RATE_INTERVAL}); \
         simulation at {}, log source + textfile at {}:\n  {}",
        queries.len(),
        sim.addr,
        logged.addr,
        report.join("\n  ")
    ));
}

/// Appends to `log` every 200 ms until `stop`: widgets done and failed, a line matching no
/// template, and once a rotation by rename.
fn write_log(log: PathBuf, stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut n = 0u32;
        while !stop.load(Ordering::Relaxed) {
            n += 1;
            if n == 20 {
                let _ = std::fs::rename(&log, log.with_extension("log.1"));
            }
            let line = match n % 5 {
                0 => "widget 7 failed disk full\n".to_owned(),
                1 => "starting up, nothing to see\n".to_owned(),
                _ => format!("widget {n} done took=0.{}s\n", 1 + n % 4),
            };
            crate::support::append(&log, &line);
            std::thread::sleep(Duration::from_millis(200));
        }
    })
}

/// Evaluates every query once with the variables substituted: a line per query for the
/// report, and the queries that should have returned data and did not. An invalid query
/// fails the test at once.
fn one_round(
    prometheus: &Prometheus,
    queries: &[(String, String, String)],
    families: &BTreeSet<String>,
) -> (Vec<String>, Vec<String>) {
    let mut report = Vec::new();
    let mut waiting = Vec::new();
    for (title, ref_id, expr) in queries {
        let promql = expr
            .replace("$job", JOB)
            .replace("$instance", ".+")
            .replace("$__rate_interval", RATE_INTERVAL);
        let names = selected_names(&promql);
        let missing: Vec<&String> = names.iter().filter(|n| !families.contains(*n)).collect();
        // Prometheus is up, so an error is the query's: bad_data (it does not parse) or
        // execution (e.g. a match that is not one-to-one).
        let series = prometheus
            .query(&promql)
            .unwrap_or_else(|e| panic!("{title} [{ref_id}]: invalid query: {e}"))
            .len();
        if missing.is_empty() && series == 0 {
            waiting.push(format!("{title} [{ref_id}]: {promql}"));
        }
        report.push(format!(
            "{title} [{ref_id}]: {}",
            if !missing.is_empty() {
                format!("no data expected (no {} here)", missing[0])
            } else if series > 0 {
                format!("data, {series} series")
            } else {
                "NO DATA".to_owned()
            }
        ));
    }
    (report, waiting)
}

#[test]
fn helpers_read_queries_and_expositions() {
    assert_eq!(
        selected_names("sum by (le) (rate(a_bucket{job=\"x\"}[1m])) / b{job=\"x\"} > 0"),
        ["a_bucket", "b"]
    );
    assert_eq!(
        selected_names("time() - (c{job=\"x\", instance=~\".+\"} > 0)"),
        ["c"]
    );
    let names = series_names(
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1\"} 0\n# TYPE c_total counter\n",
    );
    assert!(names.contains("h_bucket") && names.contains("h_count") && names.contains("c_total"));
    let (text, json) = dashboard();
    assert!(text.ends_with("}\n"));
    let vars: Vec<&str> = json
        .get("templating")
        .and_then(|t| t.get("list"))
        .and_then(Json::as_array)
        .unwrap_or_default()
        .iter()
        .filter_map(|v| v.get("name").and_then(Json::as_str))
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
}
