//! Independent validators on live scrapes of the real binary: `promtool check metrics` on the
//! text format, `prometheus_client`'s text parser, and its strict OpenMetrics parser. Each
//! skips visibly when its tool is absent, and fails instead under
//! `WIDGET_EXPORTER_REQUIRE_TOOLS=1` (as `.ci/run` sets it).

use std::process::Command;
use std::time::Duration;

use crate::support;
use crate::support::Exporter;

const OM_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0\r\n";

/// Fast, failing widgets so every family has non-trivial values.
fn exporter() -> Exporter {
    let e = Exporter::start(&[
        "--widget.min-duration=1ms",
        "--widget.max-duration=400ms",
        "--widget.interval=1ms",
        "--widget.failure-ratio=0.3",
    ]);
    std::thread::sleep(Duration::from_millis(600));
    e.get("/nope"); // a non-zero 404 counter
    e
}

/// Runs `cmd` on `input`: whether it succeeded, and a report of what it printed.
fn check_with(cmd: &mut Command, input: &str) -> (bool, String) {
    let (ok, out, err) = support::run_with_stdin(cmd, input);
    (
        ok,
        format!("{cmd:?} ok={ok}\nstdout:\n{out}\nstderr:\n{err}"),
    )
}

#[test]
fn promtool_accepts_the_text_format() {
    let Some(promtool) = support::require_tool("promtool") else {
        return;
    };
    let e = exporter();
    let body = e.get("/metrics").body;
    let (ok, report) = check_with(Command::new(promtool).args(["check", "metrics"]), &body);
    // promtool exits non-zero on parse errors and on lint problems alike.
    assert!(ok, "{report}\nbody:\n{body}");
}

/// Parses `body` with prometheus_client and prints `family type samples` per family.
const PARSE: &str = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families as text
from prometheus_client.openmetrics.parser import text_string_to_metric_families as om
parse = om if sys.argv[1] == "om" else text
for f in parse(sys.stdin.read()):
    print(f.name, f.type, len(f.samples))
"#;

fn python_parse(format: &str, body: &str) -> Option<String> {
    let python = support::require_prometheus_client()?;
    let (ok, report) = check_with(Command::new(python).args(["-c", PARSE, format]), body);
    assert!(ok, "{report}\nbody:\n{body}");
    Some(report)
}

#[test]
fn prometheus_client_strict_openmetrics_parser_accepts_openmetrics() {
    let e = exporter();
    let r = e.get_with("/metrics", OM_ACCEPT);
    assert!(r
        .header("Content-Type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    let Some(report) = python_parse("om", &r.body) else {
        return;
    };
    let codes = widget_exporter::metrics::HTTP_CODES.len();
    for line in [
        "widgets_processed counter 1".to_owned(),
        "widget_processing_duration_seconds histogram 17".to_owned(),
        "widget_exporter_build info 1".to_owned(),
        format!("widget_exporter_http_requests counter {codes}"),
        "widget_exporter_self_probe_success gauge 1".to_owned(),
        "process_cpu_seconds counter 1".to_owned(),
    ] {
        assert!(report.contains(&line), "{line:?} missing in\n{report}");
    }
}

#[test]
fn prometheus_client_text_parser_accepts_the_text_format() {
    let e = exporter();
    let body = e.get("/metrics").body;
    let Some(report) = python_parse("text", &body) else {
        return;
    };
    // The text parser names counters without `_total`, like the OpenMetrics one.
    assert!(report.contains("widgets_processed counter 1"), "{report}");
    assert!(
        report.contains("widget_exporter_build_info gauge 1"),
        "{report}"
    );
}
