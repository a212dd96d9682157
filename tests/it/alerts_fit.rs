//! The alert rules fit an exporter left at its defaults: the rules `--print-alert-rules`
//! prints, loaded into a real Prometheus that scrapes and evaluates every second, never go
//! pending or firing against the default simulation. And rules printed with thresholds a
//! site chose still pass `promtool check rules`. Skipped, visibly, without the tools;
//! failed instead under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::promapi::{Json, Prometheus};
use crate::support::{binary, run, say, Exporter, TempDir};

const JOB: &str = "widget-exporter";

/// How long the rules are watched once the exporter has been scraped: long enough for
/// every rate window to fill with a few dozen widgets and for the noisy first minute of a
/// p90 to pass, short enough for a test. `WIDGET_EXPORTER_ALERT_RUN_SECS` runs it longer.
fn run_for() -> Duration {
    let secs = std::env::var("WIDGET_EXPORTER_ALERT_RUN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    Duration::from_secs(secs)
}

/// The `alert:` names in a rule file.
fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .map(|n| n.trim().to_owned())
        .collect()
}

#[test]
fn printed_rules_stay_quiet_against_the_default_simulation() {
    let Some(bin) = crate::support::require_tool("prometheus") else {
        return;
    };
    let (ok, rules, err) = run(Command::new(binary()).arg("--print-alert-rules"));
    assert!(ok, "--print-alert-rules failed: {err}");
    let names = alert_names(&rules);
    assert!(names.len() >= 9, "{names:?}");

    // The defaults are the point: no flag that speeds up or calms the simulation.
    let exporter = Exporter::start(&[]);
    let dir = TempDir::new("alerts-fit");
    std::fs::write(dir.join("rules.yml"), &rules).expect("write the rules");
    let config = crate::promapi::config(JOB, &[exporter.addr], &["rules.yml"]);
    let mut prometheus = Prometheus::start(&bin, dir.path(), &config);
    let started = Instant::now();

    // From the first scrape on; before it `up` is absent and nothing is judged yet.
    let deadline = started + Duration::from_secs(60);
    while prometheus.values(&format!("up{{job=\"{JOB}\"}}")) != Ok(vec![1.0]) {
        assert!(
            Instant::now() < deadline,
            "the exporter was not scraped within 60 s\n{}",
            prometheus.log_tail(30)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let scraped = started.elapsed();
    // Until the rules were evaluated once with the first scrape in, WidgetExporterDown is
    // rightly pending (`absent(up)`: Prometheus has no target yet; its `for: 2m` outlasts
    // that). Shown, not judged; from then on nothing may be pending or firing.
    let judged_from = Instant::now() + Duration::from_secs(2);

    // Every printed rule is loaded and evaluates without error.
    let loaded = loaded_rules(&prometheus);
    for name in &names {
        assert!(loaded.contains_key(name), "{name} not loaded: {loaded:?}");
    }

    let watch = run_for();
    say(&format!(
        "alerts fit: first scrape {:.1}s after Prometheus started; watching {} rules for {}s",
        scraped.as_secs_f64(),
        names.len(),
        watch.as_secs()
    ));
    let end = Instant::now() + watch;
    let mut seen: Vec<String> = Vec::new();
    let mut before: Vec<String> = Vec::new();
    let mut polls = 0;
    while Instant::now() < end {
        assert!(
            prometheus.running(),
            "prometheus died\n{}",
            prometheus.log_tail(30)
        );
        for what in active_alerts(&prometheus, started) {
            if Instant::now() < judged_from {
                say(&format!(
                    "alerts fit: before the first evaluation with data: {what}"
                ));
                before.push(what);
            } else {
                say(&format!("alerts fit: {what}"));
                seen.push(what);
            }
        }
        for (name, (health, error)) in loaded_rules(&prometheus) {
            assert!(
                health != "err",
                "{name} fails to evaluate: {error}\n{}",
                prometheus.log_tail(20)
            );
        }
        polls += 1;
        std::thread::sleep(Duration::from_secs(2));
    }

    // Prometheus keeps a pending or firing alert in the ALERTS series; this catches one
    // that came and went between two polls.
    let window = judged_from.elapsed().as_secs();
    let blips = prometheus
        .query(&format!("count_over_time(ALERTS[{window}s])"))
        .expect("ALERTS query");
    for name in before.iter().filter_map(|b| b.split(' ').nth(1)) {
        assert_eq!(
            name, "WidgetExporterDown",
            "before the first scrape: {before:?}"
        );
    }
    for b in &blips {
        seen.push(format!("ALERTS: {b:?}"));
    }

    show_margins(&prometheus, window);
    say(&format!(
        "alerts fit: {polls} polls over {:.0}s, {} pending or firing",
        started.elapsed().as_secs_f64(),
        seen.len()
    ));
    assert!(
        seen.is_empty(),
        "shipped rules went pending or firing against the default simulation:\n{}\n\nexporter log:\n{}",
        seen.join("\n"),
        exporter.log()
    );
}

/// Every pending or firing alert, described with the seconds since `started`.
fn active_alerts(prometheus: &Prometheus, started: Instant) -> Vec<String> {
    let alerts = prometheus.api("/api/v1/alerts").expect("alerts API");
    let mut out = Vec::new();
    for a in alerts
        .get("data")
        .and_then(|d| d.get("alerts"))
        .and_then(Json::as_array)
        .unwrap_or_default()
    {
        let text = |v: Option<&Json>| v.and_then(Json::as_str).unwrap_or("?").to_owned();
        out.push(format!(
            "{:.0}s: {} {} value={}",
            started.elapsed().as_secs_f64(),
            text(a.get("labels").and_then(|l| l.get("alertname"))),
            text(a.get("state")),
            text(a.get("value")),
        ));
    }
    out
}

/// What the thresholds faced over the last `window` seconds, printed beside them.
fn show_margins(prometheus: &Prometheus, window: u64) {
    let show = |label: &str, promql: &str| {
        let v = prometheus.values(promql).unwrap_or_default();
        say(&format!("alerts fit: {label} = {v:?}"));
    };
    let p90 = "histogram_quantile(0.9, sum by (le, instance, job) (rate(widget_processing_duration_seconds_bucket[5m])))";
    show("p90 over 5m now (WidgetProcessingSlow above 1 s)", p90);
    show(
        "highest p90 over 5m during the run",
        &format!("max_over_time(({p90})[{window}s:1s])"),
    );
    show(
        "failure ratio over 5m (WidgetFailureRatioHigh above 0.1)",
        "rate(widgets_failed_total[5m]) / rate(widgets_processed_total[5m])",
    );
    show(
        "longest seconds since the last widget during the run (WidgetsNotProcessed above 300)",
        &format!("max_over_time((time() - widget_last_processed_timestamp_seconds)[{window}s:1s])"),
    );
    show("widgets finished", "widgets_processed_total");
}

/// Each loaded alerting rule's name with its health and last error.
fn loaded_rules(prometheus: &Prometheus) -> BTreeMap<String, (String, String)> {
    let answer = prometheus
        .api("/api/v1/rules?type=alert")
        .expect("rules API");
    let mut out = BTreeMap::new();
    let groups = answer
        .get("data")
        .and_then(|d| d.get("groups"))
        .and_then(Json::as_array)
        .unwrap_or_default();
    for rule in groups
        .iter()
        .filter_map(|g| g.get("rules").and_then(Json::as_array))
        .flatten()
    {
        let text = |k| rule.get(k).and_then(Json::as_str).unwrap_or("").to_owned();
        out.insert(text("name"), (text("health"), text("lastError")));
    }
    out
}

#[test]
fn rules_with_chosen_thresholds_pass_promtool_check() {
    let Some(promtool) = crate::support::require_tool("promtool") else {
        return;
    };
    let dir = TempDir::new("alerts-chosen");
    // The flags of `--print-alert-rules`, as a site would give them.
    for (i, t) in [
        &[][..],
        &[
            "--alert.slow-p90=2500ms",
            "--alert.failure-ratio=0.025",
            "--alert.idle-after=1h30m",
        ][..],
        &[
            "--alert.slow-p90=1.5ms",
            "--alert.failure-ratio=0.999",
            "--alert.idle-after=1s",
        ][..],
    ]
    .iter()
    .enumerate()
    {
        let file = dir.join(&format!("rules-{i}.yml"));
        let (ok, rules, err) = run(Command::new(binary()).arg("--print-alert-rules").args(*t));
        assert!(ok, "{t:?}: {err}");
        std::fs::write(&file, &rules).expect("write rules");
        let (ok, out, err) = run(Command::new(&promtool).args(["check", "rules"]).arg(&file));
        assert!(ok, "{t:?}: promtool check rules:\n{out}\n{err}\n{rules}");
        assert_eq!(alert_names(&rules).len(), 9, "{t:?}");
    }
}
