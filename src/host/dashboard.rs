//! The Grafana dashboard `--print-grafana-dashboard` prints: Grafana 9 JSON with a
//! Prometheus data-source variable and `job` and `instance` variables, one row each for
//! throughput, latency, work and the exporter's health. The panels are a table here and
//! the JSON is written from it, so ids and positions cannot clash and every query is in one
//! place for the tests. It knows metric names only as query text; nothing here touches the
//! metrics themselves.

use std::fmt::Write as _;

/// Replaced in every query by the selector of the chosen job and instances.
const SEL: &str = "{@}";
/// The selector the `job` and `instance` variables make.
const SELECTOR: &str = "{job=\"$job\", instance=~\"$instance\"}";

/// How a panel draws its queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Lines over time.
    TimeSeries,
    /// The latest value, large.
    Stat,
    /// Histogram buckets over time.
    Heatmap,
}

/// One panel: its title, what it shows (the tooltip), how, in which unit, and its queries
/// (PromQL with `{@}` for the selector, and the legend).
struct Panel {
    title: &'static str,
    description: &'static str,
    kind: Kind,
    unit: &'static str,
    /// The texts shown for 0 and 1, for a panel whose value is a yes or no.
    yes_no: Option<(&'static str, &'static str)>,
    width: u32,
    queries: &'static [(&'static str, &'static str)],
}

const fn panel(
    title: &'static str,
    kind: Kind,
    unit: &'static str,
    width: u32,
    queries: &'static [(&'static str, &'static str)],
    description: &'static str,
) -> Panel {
    Panel {
        title,
        description,
        kind,
        unit,
        yes_no: None,
        width,
        queries,
    }
}

const fn yes_no(mut p: Panel, no: &'static str, yes: &'static str) -> Panel {
    p.yes_no = Some((no, yes));
    p
}

/// The rows, in order, and their panels.
const ROWS: &[(&str, &[Panel])] = &[
    (
        "Throughput",
        &[
            panel(
                "Widgets per second",
                Kind::TimeSeries,
                "ops",
                12,
                &[
                    (
                        "sum by (instance) (rate(widgets_processed_total{@}[$__rate_interval]))",
                        "finished {{instance}}",
                    ),
                    (
                        "sum by (instance) (rate(widgets_failed_total{@}[$__rate_interval]))",
                        "failed {{instance}}",
                    ),
                ],
                "Widgets that finished (failed ones included) and that failed, per second.",
            ),
            panel(
                "Failure ratio",
                Kind::TimeSeries,
                "percentunit",
                12,
                &[(
                    "sum by (instance) (rate(widgets_failed_total{@}[$__rate_interval])) / sum by (instance) (rate(widgets_processed_total{@}[$__rate_interval]))",
                    "{{instance}}",
                )],
                "Share of the finished widgets that failed; no value while none finish. WidgetFailureRatioHigh fires above --alert.failure-ratio over 5 minutes.",
            ),
        ],
    ),
    (
        "Latency",
        &[
            panel(
                "Processing time p50, p90, p99",
                Kind::TimeSeries,
                "s",
                8,
                &[
                    (
                        "histogram_quantile(0.5, sum by (le, instance) (rate(widget_processing_duration_seconds_bucket{@}[$__rate_interval])))",
                        "p50 {{instance}}",
                    ),
                    (
                        "histogram_quantile(0.9, sum by (le, instance) (rate(widget_processing_duration_seconds_bucket{@}[$__rate_interval])))",
                        "p90 {{instance}}",
                    ),
                    (
                        "histogram_quantile(0.99, sum by (le, instance) (rate(widget_processing_duration_seconds_bucket{@}[$__rate_interval])))",
                        "p99 {{instance}}",
                    ),
                ],
                "Quantiles interpolated within the histogram's buckets. WidgetProcessingSlow fires when p90 over 5 minutes is above --alert.slow-p90.",
            ),
            panel(
                "Processing time distribution",
                Kind::Heatmap,
                "s",
                8,
                &[(
                    "sum by (le) (increase(widget_processing_duration_seconds_bucket{@}[$__rate_interval]))",
                    "{{le}}",
                )],
                "Widgets finished per bucket of processing time.",
            ),
            panel(
                "Average processing time",
                Kind::TimeSeries,
                "s",
                8,
                &[("average_processing_time_seconds{@}", "{{instance}}")],
                "Mean processing time over the exporter's average window (--widget.average-window); no value while none finish.",
            ),
        ],
    ),
    (
        "Work",
        &[
            panel(
                "Widgets in progress",
                Kind::TimeSeries,
                "short",
                12,
                &[("widgets_in_progress{@}", "{{instance}}")],
                "Widgets started and not finished yet (the simulation; a log source with --widget.log.started).",
            ),
            panel(
                "Time since the last widget",
                Kind::Stat,
                "s",
                12,
                &[(
                    "time() - (widget_last_processed_timestamp_seconds{@} > 0)",
                    "{{instance}}",
                )],
                "Seconds since a widget last finished; no value before the first. WidgetsNotProcessed fires above --alert.idle-after.",
            ),
        ],
    ),
    (
        "Exporter health",
        &[
            yes_no(
                panel(
                    "Up",
                    Kind::Stat,
                    "none",
                    6,
                    &[("up{@}", "{{instance}}")],
                    "Whether Prometheus's last scrape of the exporter succeeded (HTTP output). With a textfile, this is node_exporter's.",
                ),
                "down",
                "up",
            ),
            panel(
                "Textfile age",
                Kind::Stat,
                "s",
                6,
                &[(
                    "time() - (widget_exporter_textfile_last_write_timestamp_seconds{@} > 0)",
                    "{{instance}}",
                )],
                "Seconds since the exporter last wrote --textfile.path (textfile output). It grows while writes fail or the exporter is gone.",
            ),
            yes_no(
                panel(
                    "Self-probe",
                    Kind::Stat,
                    "none",
                    6,
                    &[("widget_exporter_self_probe_success{@}", "{{instance}}")],
                    "Whether the exporter's latest request to its own listener came back (HTTP output).",
                ),
                "failing",
                "ok",
            ),
            yes_no(
                panel(
                    "Log readable",
                    Kind::Stat,
                    "none",
                    6,
                    &[("widget_exporter_log_readable{@}", "{{instance}}")],
                    "Whether the followed log is open and readable (log source). While it is not, no widget is counted.",
                ),
                "unreadable",
                "readable",
            ),
            panel(
                "Restarts in place",
                Kind::TimeSeries,
                "short",
                8,
                &[(
                    "increase(widget_exporter_restarts_in_place_total{@}[1h])",
                    "{{instance}}",
                )],
                "Re-executions in place over the last hour (same PID and socket) to shed what a client left behind. The log says why.",
            ),
            panel(
                "Connections closed by reason",
                Kind::TimeSeries,
                "ops",
                8,
                &[(
                    "sum by (reason) (rate(widget_exporter_connections_closed_total{@}[$__rate_interval]))",
                    "{{reason}}",
                )],
                "Client connections the exporter shut down to protect itself, per second.",
            ),
            panel(
                "Requests by status code",
                Kind::TimeSeries,
                "reqps",
                8,
                &[(
                    "sum by (code) (rate(widget_exporter_http_requests_total{@}[$__rate_interval]))",
                    "{{code}}",
                )],
                "HTTP requests the exporter answered, per second.",
            ),
            panel(
                "Log lines by result",
                Kind::TimeSeries,
                "ops",
                8,
                &[(
                    "sum by (result) (rate(widget_exporter_log_lines_total{@}[$__rate_interval]))",
                    "{{result}}",
                )],
                "Log lines read per second: matched a template, matched none, a bad duration, or too long (log source).",
            ),
            panel(
                "Log rotations",
                Kind::TimeSeries,
                "short",
                8,
                &[(
                    "sum by (kind) (increase(widget_exporter_log_rotations_total{@}[1h]))",
                    "{{kind}}",
                )],
                "Rotations of the followed log seen over the last hour, by kind (log source).",
            ),
            panel(
                "Label overflow",
                Kind::TimeSeries,
                "ops",
                8,
                &[(
                    "sum by (instance) (rate(widget_exporter_log_label_overflow_total{@}[$__rate_interval]))",
                    "{{instance}}",
                )],
                "Log lines per second whose label set found no room under the series cap (log source with {label:NAME} in a template).",
            ),
            panel(
                "Resident memory",
                Kind::TimeSeries,
                "bytes",
                8,
                &[("process_resident_memory_bytes{@}", "{{instance}}")],
                "The exporter's resident memory (HTTP output; with a textfile, node_exporter's).",
            ),
            panel(
                "File descriptors",
                Kind::TimeSeries,
                "short",
                8,
                &[
                    ("process_open_fds{@}", "open {{instance}}"),
                    ("process_max_fds{@}", "limit {{instance}}"),
                ],
                "Open file descriptors and the limit (HTTP output). Each client connection holds 2.",
            ),
            panel(
                "CPU",
                Kind::TimeSeries,
                "percentunit",
                8,
                &[(
                    "rate(process_cpu_seconds_total{@}[$__rate_interval])",
                    "{{instance}}",
                )],
                "CPU time used per second, in cores (HTTP output).",
            ),
        ],
    ),
];

/// The dashboard as Grafana 9 (and later) imports it: no `__inputs`; the data source is
/// the `datasource` variable, picked on the dashboard.
#[must_use]
pub fn render() -> String {
    let dashboard = obj(vec![
        ("annotations", obj(vec![("list", Json::Array(vec![]))])),
        (
            "description",
            s("widget-exporter: widgets processed, failed and how long they took, and the exporter's own health."),
        ),
        ("editable", Json::Bool(true)),
        ("graphTooltip", n(1)),
        ("id", Json::Null),
        ("links", Json::Array(vec![])),
        ("panels", Json::Array(panels())),
        ("refresh", s("30s")),
        ("schemaVersion", n(36)),
        ("tags", Json::Array(vec![s("widget-exporter"), s("prometheus")])),
        ("templating", obj(vec![("list", Json::Array(variables()))])),
        ("time", obj(vec![("from", s("now-1h")), ("to", s("now"))])),
        ("timepicker", obj(vec![])),
        ("timezone", s("")),
        ("title", s("widget-exporter")),
        ("uid", s("widget-exporter")),
        ("version", n(1)),
    ]);
    let mut out = String::new();
    dashboard.write(&mut out, 0);
    out.push('\n');
    out
}

/// Every panel's data source: the dashboard's variable.
fn datasource() -> Json {
    obj(vec![("type", s("prometheus")), ("uid", s("${datasource}"))])
}

/// The rows and their panels, laid out left to right on Grafana's 24-column grid.
fn panels() -> Vec<Json> {
    let mut panels = Vec::new();
    let (mut id, mut y) = (1u32, 0u32);
    for (row, row_panels) in ROWS {
        panels.push(obj(vec![
            ("collapsed", Json::Bool(false)),
            ("gridPos", grid(0, y, 24, 1)),
            ("id", n(id)),
            ("panels", Json::Array(vec![])),
            ("title", s(row)),
            ("type", s("row")),
        ]));
        id += 1;
        y += 1;
        // Panels fill a line left to right; the next line starts below the tallest.
        let (mut x, mut line_height) = (0, 0);
        for p in *row_panels {
            let height = if p.kind == Kind::Stat { 5 } else { 8 };
            if x + p.width > 24 {
                (x, y) = (0, y + line_height);
                line_height = 0;
            }
            panels.push(panel_json(p, id, grid(x, y, p.width, height)));
            id += 1;
            x += p.width;
            line_height = line_height.max(height);
        }
        y += line_height;
    }
    panels
}

/// The data source, the job and the instances, as the queries use them.
fn variables() -> Vec<Json> {
    let variable = |name: &str, label: &str, query: &str, all: bool| {
        obj(vec![
            ("current", obj(vec![])),
            ("datasource", datasource()),
            ("definition", s(query)),
            ("hide", n(0)),
            ("includeAll", Json::Bool(all)),
            ("label", s(label)),
            ("multi", Json::Bool(all)),
            ("name", s(name)),
            ("options", Json::Array(vec![])),
            (
                "query",
                obj(vec![
                    ("query", s(query)),
                    ("refId", s("StandardVariableQuery")),
                ]),
            ),
            ("refresh", n(2)),
            ("regex", s("")),
            ("sort", n(1)),
            ("type", s("query")),
        ])
    };
    let mut instance = variable(
        "instance",
        "Instance",
        "label_values(widget_exporter_build_info{job=\"$job\"}, instance)",
        true,
    );
    if let Json::Object(members) = &mut instance {
        members.insert(0, ("allValue", s(".+")));
    }
    vec![
        obj(vec![
            ("current", obj(vec![])),
            ("hide", n(0)),
            ("includeAll", Json::Bool(false)),
            ("label", s("Data source")),
            ("multi", Json::Bool(false)),
            ("name", s("datasource")),
            ("options", Json::Array(vec![])),
            ("query", s("prometheus")),
            ("refresh", n(1)),
            ("regex", s("")),
            ("type", s("datasource")),
        ]),
        variable(
            "job",
            "Job",
            "label_values(widget_exporter_build_info, job)",
            false,
        ),
        instance,
    ]
}

/// One panel's JSON.
fn panel_json(p: &Panel, id: u32, grid_pos: Json) -> Json {
    let targets = p
        .queries
        .iter()
        .zip('A'..)
        .map(|(&(expr, legend), ref_id)| {
            let mut t = vec![
                ("datasource", datasource()),
                ("expr", s(&expr.replace(SEL, SELECTOR))),
                ("legendFormat", s(legend)),
                ("range", Json::Bool(true)),
                ("refId", s(&ref_id.to_string())),
            ];
            if p.kind == Kind::Heatmap {
                t.push(("format", s("heatmap")));
            }
            obj(t)
        })
        .collect();
    let mut defaults = vec![("unit", s(p.unit))];
    if let Some((no, yes)) = p.yes_no {
        let mapping = |text: &str, color: &str| obj(vec![("color", s(color)), ("text", s(text))]);
        defaults.push((
            "mappings",
            Json::Array(vec![obj(vec![
                (
                    "options",
                    obj(vec![
                        ("0", mapping(no, "red")),
                        ("1", mapping(yes, "green")),
                    ]),
                ),
                ("type", s("value")),
            ])]),
        ));
    }
    obj(vec![
        ("datasource", datasource()),
        ("description", s(p.description)),
        (
            "fieldConfig",
            obj(vec![
                ("defaults", obj(defaults)),
                ("overrides", Json::Array(vec![])),
            ]),
        ),
        ("gridPos", grid_pos),
        ("id", n(id)),
        ("options", options(p)),
        ("targets", Json::Array(targets)),
        ("title", s(p.title)),
        (
            "type",
            s(match p.kind {
                Kind::TimeSeries => "timeseries",
                Kind::Stat => "stat",
                Kind::Heatmap => "heatmap",
            }),
        ),
    ])
}

/// A panel's display options, by kind.
fn options(p: &Panel) -> Json {
    match p.kind {
        Kind::TimeSeries => obj(vec![
            (
                "legend",
                obj(vec![
                    ("displayMode", s("list")),
                    ("placement", s("bottom")),
                    ("showLegend", Json::Bool(true)),
                ]),
            ),
            (
                "tooltip",
                obj(vec![("mode", s("multi")), ("sort", s("none"))]),
            ),
        ]),
        Kind::Stat => obj(vec![
            (
                "colorMode",
                s(if p.yes_no.is_some() {
                    "background"
                } else {
                    "value"
                }),
            ),
            ("graphMode", s("none")),
            (
                "reduceOptions",
                obj(vec![
                    ("calcs", Json::Array(vec![s("lastNotNull")])),
                    ("fields", s("")),
                    ("values", Json::Bool(false)),
                ]),
            ),
            ("textMode", s("value_and_name")),
        ]),
        Kind::Heatmap => obj(vec![
            ("calculate", Json::Bool(false)),
            ("cellGap", n(1)),
            (
                "color",
                obj(vec![("mode", s("scheme")), ("scheme", s("Oranges"))]),
            ),
            ("yAxis", obj(vec![("unit", s(p.unit))])),
        ]),
    }
}

fn grid(x: u32, y: u32, w: u32, h: u32) -> Json {
    obj(vec![("h", n(h)), ("w", n(w)), ("x", n(x)), ("y", n(y))])
}

/// Just enough JSON to write the dashboard: members keep the order given.
enum Json {
    Null,
    Bool(bool),
    Number(u32),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(&'static str, Json)>),
}

fn s(text: &str) -> Json {
    Json::String(text.to_owned())
}

fn n(number: u32) -> Json {
    Json::Number(number)
}

fn obj(members: Vec<(&'static str, Json)>) -> Json {
    Json::Object(members)
}

impl Json {
    /// Appends the value, indented by two spaces a level as Grafana exports it.
    fn write(&self, out: &mut String, depth: usize) {
        let indent = |out: &mut String, depth: usize| {
            out.push('\n');
            out.extend(std::iter::repeat_n("  ", depth));
        };
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Number(x) => {
                let _ = write!(out, "{x}");
            }
            Json::String(text) => push_string(out, text),
            Json::Array(items) if items.is_empty() => out.push_str("[]"),
            Json::Object(members) if members.is_empty() => out.push_str("{}"),
            Json::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    item.write(out, depth + 1);
                }
                indent(out, depth);
                out.push(']');
            }
            Json::Object(members) => {
                out.push('{');
                for (i, (key, value)) in members.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    indent(out, depth + 1);
                    push_string(out, key);
                    out.push_str(": ");
                    value.write(out, depth + 1);
                }
                indent(out, depth);
                out.push('}');
            }
        }
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped.
fn push_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    use crate::host::process::ProcessStats;
    use crate::metrics::render::{render as render_exposition, Format};
    use crate::metrics::{Metrics, Parts};

    /// Families a panel may name that this crate does not expose (yet): the log source's
    /// label overflow counter comes with its label sets.
    const ELSEWHERE: &[&str] = &["widget_exporter_log_label_overflow_total"];

    /// The series names of an exporter with every part and every process value, read from
    /// its exposition as Prometheus would see them (histograms with their suffixes).
    fn exposed() -> Vec<String> {
        let parts = Parts {
            in_progress: true,
            http: true,
            textfile: true,
            log: true,
        };
        let metrics = Metrics::new(parts, Duration::from_secs(60), Instant::now());
        let process = ProcessStats::all_known();
        let mut out = String::new();
        render_exposition(&metrics.snapshot(process), Format::Text, &mut out);
        let mut names = Vec::new();
        for (name, kind) in out
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' '))
        {
            if kind == "histogram" {
                names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}")));
            }
            names.push(name.to_owned());
        }
        names
    }

    fn queries() -> impl Iterator<Item = (&'static str, &'static str)> {
        ROWS.iter()
            .flat_map(|(_, panels)| panels.iter())
            .flat_map(|p| p.queries.iter().map(move |&(q, _)| (p.title, q)))
    }

    /// The metric names a query selects (each is followed by the selector).
    fn selected(query: &str) -> Vec<&str> {
        query
            .match_indices(SEL)
            .map(|(at, _)| {
                let head = &query[..at];
                let start = head
                    .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .map_or(0, |i| i + 1);
                &head[start..]
            })
            .collect()
    }

    #[test]
    fn every_query_selects_known_families_of_the_chosen_job_and_instances() {
        let exposed = exposed();
        assert!(exposed.len() > 20, "{exposed:?}");
        let known = |name: &str| {
            name == "up" || ELSEWHERE.contains(&name) || exposed.iter().any(|e| e == name)
        };
        let mut count = 0;
        for (title, query) in queries() {
            let names = selected(query);
            assert!(!names.is_empty(), "{title}: {query}");
            for name in names {
                assert!(known(name), "{title}: unknown family {name:?} in {query}");
            }
            // Every metric name in it is selected: no stray `{` or unselected name.
            assert_eq!(
                query.matches('{').count(),
                query.matches(SEL).count(),
                "{title}: {query}"
            );
            count += 1;
        }
        assert!(count >= 20, "{count}");
    }

    #[test]
    fn every_row_the_operators_need_is_there() {
        let titles: Vec<&str> = ROWS.iter().map(|(t, _)| *t).collect();
        assert_eq!(titles, ["Throughput", "Latency", "Work", "Exporter health"]);
        let all: String = queries().map(|(_, q)| q).collect::<Vec<_>>().join("\n");
        for needle in [
            "rate(widgets_processed_total",
            "rate(widgets_failed_total",
            "histogram_quantile(0.5,",
            "histogram_quantile(0.9,",
            "histogram_quantile(0.99,",
            "average_processing_time_seconds",
            "widgets_in_progress",
            "widget_last_processed_timestamp_seconds",
            "up{",
            "widget_exporter_textfile_last_write_timestamp_seconds",
            "widget_exporter_self_probe_success",
            "widget_exporter_restarts_in_place_total",
            "widget_exporter_connections_closed_total",
            "widget_exporter_log_lines_total",
            "widget_exporter_log_readable",
            "widget_exporter_log_rotations_total",
            "widget_exporter_log_label_overflow_total",
        ] {
            assert!(all.contains(needle), "{needle}");
        }
    }

    #[test]
    fn panels_fit_the_grid_and_have_unique_ids() {
        let out = render();
        let ids: Vec<&str> = out
            .lines()
            .filter_map(|l| l.trim().strip_prefix("\"id\": "))
            .map(|v| v.trim_end_matches(','))
            .collect();
        let mut unique = ids.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ids.len(), "{ids:?}");
        for (_, panels) in ROWS {
            for p in *panels {
                assert!(p.width > 0 && p.width <= 24, "{}", p.title);
            }
        }
    }

    #[test]
    fn the_output_is_balanced_escaped_json_with_the_variables() {
        let out = render();
        // Outside strings, brackets balance; inside them, every quote is escaped.
        let (mut depth, mut in_string, mut escaped) = (0i32, false, false);
        for c in out.chars() {
            if in_string {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => in_string = false,
                    c => assert!(u32::from(c) >= 0x20, "raw control character"),
                }
                continue;
            }
            match c {
                '"' => in_string = true,
                '{' | '[' => depth += 1,
                '}' | ']' => depth -= 1,
                _ => {}
            }
            assert!(depth >= 0);
        }
        assert_eq!((depth, in_string), (0, false));
        assert!(out.starts_with("{\n  \"annotations\""));
        assert!(!out.contains("__inputs"));
        for needle in [
            r#""uid": "${datasource}""#,
            r#""query": "label_values(widget_exporter_build_info, job)""#,
            r#"widget_exporter_build_info{job=\"$job\"}, instance)"#,
            r#"rate(widgets_processed_total{job=\"$job\", instance=~\"$instance\"}[$__rate_interval])"#,
        ] {
            assert!(out.contains(needle), "{needle}");
        }
    }

    #[test]
    fn strings_are_escaped() {
        let mut out = String::new();
        push_string(&mut out, "a\"b\\c\nd\u{1}é");
        assert_eq!(out, r#""a\"b\\c\nd\u0001é""#);
    }
}
