//! The log source's labels, glob, check mode and truncation end to end: the real binary reads
//! real files while this test writes them (and the real `logrotate` rotates them), and
//! scrapes count every widget exactly, in its label set, under the series cap. The exposition
//! full of awkward label values passes promtool and the strict OpenMetrics parser; label sets
//! survive a restart in place; the check mode reports without serving; every bad flag is one
//! line naming it, exit 2. Owns no exporter code.

use std::fmt::Write as _;
use std::process::Command;
use std::time::Duration;

use crate::logtail::{
    logrotate, scrape_until as wait_for, start_log, write_through_a_restart, writer,
};
use crate::support::{
    append, binary, exits, require_prometheus_client, require_tool, run_with_stdin, sample,
    Exporter, TempDir,
};

const FINISHED: &str =
    "--widget.log.finished=* worker={label:worker} done status={label:status} took={duration}";
const FAILED: &str = "--widget.log.failed=* worker={label:worker} failed reason={label:reason}";

/// One finished widget of `worker` with `status`.
fn done(worker: &str, status: &str) -> String {
    format!("2026-12-01T10:00:01Z worker={worker} done status={status} took=250ms\n")
}

/// The sum of a family's samples (every label set) in a text exposition.
fn total(body: &str, family: &str) -> u64 {
    body.lines()
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

/// Starts the log source on `path` with the labeled templates and `extra` flags, and waits
/// until it follows the log.
fn start(path: &str, extra: &[&str]) -> Exporter {
    start_with(&mut Command::new(binary()), path, extra)
}

/// [`start`] with a prepared command (its environment).
fn start_with(cmd: &mut Command, path: &str, extra: &[&str]) -> Exporter {
    start_log(cmd, path, &[&[FINISHED, FAILED], extra].concat())
}

/// Sets up to the cap get a series each; every later new set counts in the one series whose
/// every label is `__overflow__`, and in the overflow counter, warned about once; known sets
/// keep counting in their own series.
#[test]
fn the_series_cap_and_its_overflow_series() {
    let dir = TempDir::new("labels-cap");
    let path = dir.join("app.log");
    append(&path, "");
    let exporter = start(
        &path.display().to_string(),
        &[
            "--widget.log.max-series=3",
            "--widget.log.poll-interval=50ms",
        ],
    );
    let mut text = String::new();
    for i in 0..20 {
        text.push_str(&done(&format!("w{i}"), "ok"));
    }
    text.push_str(&done("w0", "ok"));
    text.push_str("2026-12-01T10:00:01Z worker=w1 failed reason=timeout\n");
    append(&path, &text);
    let body = wait_for(&exporter, "22 widgets", |b| {
        total(b, "widgets_processed_total") == 22
    });
    let want = [
        (
            r#"widgets_processed_total{worker="w0",status="ok",reason=""}"#,
            2,
        ),
        (
            r#"widgets_processed_total{worker="w1",status="ok",reason=""}"#,
            1,
        ),
        (
            r#"widgets_processed_total{worker="w2",status="ok",reason=""}"#,
            1,
        ),
        (
            r#"widgets_processed_total{worker="__overflow__",status="__overflow__",reason="__overflow__"}"#,
            18,
        ),
        (
            r#"widgets_failed_total{worker="__overflow__",status="__overflow__",reason="__overflow__"}"#,
            1,
        ),
        (
            r#"widgets_failed_total{worker="w0",status="ok",reason=""}"#,
            0,
        ),
        (
            r#"widget_processing_duration_seconds_count{worker="__overflow__",status="__overflow__",reason="__overflow__"}"#,
            17,
        ),
        (
            r#"widget_processing_duration_seconds_bucket{worker="w0",status="ok",reason="",le="0.25"}"#,
            2,
        ),
        ("widget_exporter_log_series", 3),
        ("widget_exporter_log_label_overflow_total", 18),
        ("widget_exporter_log_files", 1),
        (r#"widget_exporter_log_lines_total{result="matched"}"#, 22),
    ];
    for (name, value) in want {
        assert_eq!(
            sample(&body, name),
            Some(f64::from(value)),
            "{name} in\n{body}"
        );
    }
    // The totals without labels are not written beside the labeled series.
    assert_eq!(sample(&body, "widgets_processed_total"), None, "{body}");
    assert!(!body.contains("widgets_in_progress"), "no started template");
    let warnings = exporter
        .log()
        .lines()
        .filter(|l| l.contains("__overflow__ series"))
        .count();
    assert_eq!(warnings, 1, "one warning per streak:\n{}", exporter.log());
    // Memory stays bounded by the cap: many more new sets add no series.
    let more: String = (100..2100).map(|i| done(&format!("x{i}"), "ok")).collect();
    append(&path, &more);
    let body = wait_for(&exporter, "2000 more", |b| {
        total(b, "widgets_processed_total") == 2022
    });
    assert_eq!(sample(&body, "widget_exporter_log_series"), Some(3.0));
    assert_eq!(
        body.matches("widgets_processed_total{").count(),
        4,
        "{body}"
    );
}

/// Label values full of quotes, backslashes, braces, commas, `=` and UTF-8 are escaped so
/// that promtool and the strict OpenMetrics parser accept both formats.
#[test]
fn awkward_label_values_pass_promtool_and_the_strict_openmetrics_parser() {
    let dir = TempDir::new("labels-escape");
    let path = dir.join("app.log");
    append(&path, "");
    let exporter = start(
        &path.display().to_string(),
        &[
            "--widget.log.poll-interval=50ms",
            "--widget.log.started=* start",
        ],
    );
    let awkward = [
        r#"a"b"#,
        r"c\d",
        r#"\""#,
        r"\n",
        "{x=1,y=\"2\"}",
        "é✓ 日本",
        "tab\there",
        "trailing\\",
        "# HELP",
        "}",
    ];
    let mut text = String::from("x start\n");
    for (i, v) in awkward.iter().enumerate() {
        text.push_str(&done(&format!("w{i}"), v));
        let _ = writeln!(text, "2026-12-01T10:00:01Z worker={v} failed reason={v}");
    }
    append(&path, &text);
    let n = 2 * awkward.len() as u64;
    wait_for(&exporter, "every widget", |b| {
        total(b, "widgets_processed_total") == n
    });
    let text = exporter.get("/metrics").body;
    assert!(
        text.contains(r#"widgets_processed_total{worker="w0",status="a\"b",reason=""} 1"#),
        "{text}"
    );
    assert!(
        text.contains(
            r#"widgets_failed_total{worker="trailing\\",status="",reason="trailing\\"} 1"#
        ),
        "{text}"
    );
    let om = exporter
        .get_with(
            "/metrics",
            "Accept: application/openmetrics-text; version=1.0.0\r\n",
        )
        .body;
    assert!(om.ends_with("# EOF\n"), "{om}");
    // promtool reads the text format only (it knows no OpenMetrics `info` type).
    if let Some(promtool) = require_tool("promtool") {
        let (ok, out, err) =
            run_with_stdin(Command::new(promtool).args(["check", "metrics"]), &text);
        assert!(ok, "promtool check metrics:\n{out}{err}\n{text}");
    }
    let Some(python) = require_prometheus_client() else {
        return;
    };
    for (parser, body) in [
        ("prometheus_client.openmetrics.parser", &om),
        ("prometheus_client.parser", &text),
    ] {
        // Parses every sample and prints the values read back, to compare with those written.
        let script = format!(
            "import sys, json\n\
             from {parser} import text_string_to_metric_families as parse\n\
             seen = set()\n\
             for family in parse(sys.stdin.read()):\n\
             \x20   for s in family.samples:\n\
             \x20       seen.add(s.labels.get('status', ''))\n\
             \x20       seen.add(s.labels.get('reason', ''))\n\
             print(json.dumps(sorted(seen)))\n"
        );
        let (ok, seen, err) = run_with_stdin(Command::new(&python).args(["-c", &script]), body);
        assert!(ok, "{parser}:\n{seen}{err}\n{body}");
        for v in awkward {
            // JSON spells the value back: quotes, backslashes, tabs and non-ASCII escaped.
            let json: String = v
                .chars()
                .map(|c| match c {
                    '\\' | '"' => format!("\\{c}"),
                    '\t' => "\\t".to_owned(),
                    c if c.is_ascii() => c.to_string(),
                    c => format!("\\u{:04x}", c as u32),
                })
                .collect();
            assert!(
                seen.contains(&format!("\"{json}\"")),
                "{parser}: {v:?} not in {seen}"
            );
        }
    }
}

/// Three workers' logs under one glob, each rotated twice by the real `logrotate` (`create`,
/// then `postrotate` tells the writers to reopen); the rotated names (`.1`, `.2`) are outside
/// the glob. Every line is counted exactly once, in its worker's label set.
#[test]
fn a_glob_of_three_files_rotated_by_logrotate_counts_exactly() {
    let Some(bin) = require_tool("logrotate") else {
        return;
    };
    let dir = TempDir::new("labels-glob");
    let workers = ["a", "b", "c"];
    for w in workers {
        append(&dir.join(&format!("worker-{w}.log")), "");
    }
    let glob = format!("{}/worker-*.log", dir.path().display());
    let exporter = start(&glob, &["--widget.log.poll-interval=50ms"]);
    wait_for(&exporter, "three files", |b| {
        sample(b, "widget_exporter_log_files") == Some(3.0)
    });
    let lines = 1500;
    let reopen: Vec<_> = workers
        .iter()
        .map(|w| dir.join(&format!("reopen-{w}")))
        .collect();
    let writers: Vec<_> = workers
        .iter()
        .zip(&reopen)
        .map(|(&w, reopen)| {
            let status = |i| if i % 10 == 0 { "slow" } else { "ok" };
            writer(
                &dir.join(&format!("worker-{w}.log")),
                reopen,
                lines,
                Duration::from_micros(400),
                move |i| done(w, status(i)),
            )
        })
        .collect();
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(250));
        logrotate(&bin, &dir, &glob, "create", &reopen);
    }
    for w in writers {
        w.join().expect("writer");
    }
    assert!(dir.join("worker-a.log.2").exists(), "rotated twice");
    let all = 3 * lines as u64;
    wait_for(&exporter, "every line", |b| {
        total(b, "widgets_processed_total") >= all
    });
    // Still exactly that once the rotated files have been drained and closed.
    std::thread::sleep(Duration::from_millis(1500));
    let body = exporter.get("/metrics").body;
    assert_eq!(total(&body, "widgets_processed_total"), all, "{body}");
    for w in workers {
        let ok = format!(r#"widgets_processed_total{{worker="{w}",status="ok",reason=""}}"#);
        let slow = format!(r#"widgets_processed_total{{worker="{w}",status="slow",reason=""}}"#);
        assert_eq!(sample(&body, &ok), Some(1350.0), "{ok}\n{body}");
        assert_eq!(sample(&body, &slow), Some(150.0), "{slow}\n{body}");
    }
    assert_eq!(
        sample(&body, "widget_exporter_log_files"),
        Some(3.0),
        "{body}"
    );
    assert_eq!(
        sample(&body, "widget_exporter_log_series"),
        Some(6.0),
        "{body}"
    );
}

/// A file renamed to another name the glob matches is the same file (device and inode): it
/// is not read again from its start, and what is written to it later counts once.
#[test]
fn a_rename_inside_the_glob_is_not_read_twice() {
    let dir = TempDir::new("labels-rename");
    let first = dir.join("w-1.log");
    append(&first, "");
    let glob = format!("{}/w-*.log", dir.path().display());
    let exporter = start(&glob, &["--widget.log.poll-interval=50ms"]);
    let ten: String = (0..10).map(|_| done("a", "ok")).collect();
    append(&first, &ten);
    wait_for(&exporter, "ten", |b| {
        total(b, "widgets_processed_total") == 10
    });
    let second = dir.join("w-2.log");
    std::fs::rename(&first, &second).expect("rename");
    std::thread::sleep(Duration::from_millis(300));
    append(&second, &done("a", "ok"));
    let body = wait_for(&exporter, "eleven", |b| {
        total(b, "widgets_processed_total") >= 11
    });
    std::thread::sleep(Duration::from_millis(300));
    let body2 = exporter.get("/metrics").body;
    assert_eq!(
        total(&body2, "widgets_processed_total"),
        11,
        "{body}\n{body2}"
    );
    assert_eq!(
        sample(&body2, "widget_exporter_log_files"),
        Some(1.0),
        "{body2}"
    );
}

/// A file truncated and written past its old size before the next poll is seen as truncated
/// (its first bytes changed): every line after the truncation counts exactly once.
#[test]
fn truncate_and_regrow_within_one_poll_counts_every_line() {
    let dir = TempDir::new("labels-truncate");
    let path = dir.join("app.log");
    append(&path, "");
    let exporter = start(
        &path.display().to_string(),
        &["--widget.log.poll-interval=1s"],
    );
    let before: String = (0..4).map(|i| done(&format!("b{i}"), "ok")).collect();
    append(&path, &before);
    wait_for(&exporter, "four", |b| {
        total(b, "widgets_processed_total") == 4
    });
    // Truncated and refilled in one go, well within the one-second poll.
    let after: String = (0..12).map(|i| done(&format!("after{i}"), "ok")).collect();
    assert!(after.len() > before.len());
    std::fs::write(&path, &after).expect("truncate and refill");
    let body = wait_for(&exporter, "sixteen", |b| {
        total(b, "widgets_processed_total") >= 16
    });
    assert_eq!(
        sample(
            &body,
            r#"widget_exporter_log_rotations_total{kind="truncate"}"#
        ),
        Some(1.0),
        "{body}"
    );
    std::thread::sleep(Duration::from_millis(1200));
    let body = exporter.get("/metrics").body;
    assert_eq!(total(&body, "widgets_processed_total"), 16, "{body}");
}

/// A restart in place (`support::provoke_restart`) carries the label sets with their counts,
/// in their order, and the overflow count, in an unlinked file of the temporary directory
/// that nothing leaves behind.
#[test]
fn a_restart_in_place_carries_the_label_sets() {
    let dir = TempDir::new("labels-restart");
    let (one, two) = (dir.join("w-1.log"), dir.join("w-2.log"));
    append(&one, "");
    append(&two, "");
    let tmp = dir.join("tmp");
    std::fs::create_dir(&tmp).expect("a temporary directory of its own");
    let exporter = start_with(
        Command::new(binary()).env("TMPDIR", &tmp),
        &format!("{}/w-*.log", dir.path().display()),
        &[
            "--widget.log.max-series=2",
            "--widget.log.poll-interval=50ms",
        ],
    );
    let text: String = ["a", "b", "c"].iter().map(|w| done(w, "ok")).collect();
    append(&one, &text);
    append(&two, &done("a", "ok"));
    let before = wait_for(&exporter, "four", |b| {
        total(b, "widgets_processed_total") == 4
    });
    // Both files gain lines, without scrapes, until the new image has been up for a moment:
    // whichever image reads them, each counts once.
    let mut written = 4;
    write_through_a_restart(&exporter, || {
        append(&one, &done("a", "ok"));
        append(&two, &done("b", "ok"));
        written += 2;
    });
    // The sets come back in the same order: b is known, d still overflows.
    append(&one, &done("b", "ok"));
    append(&two, &done("d", "ok"));
    written += 2;
    wait_for(&exporter, "every line", |b| {
        total(b, "widgets_processed_total") >= written
    });
    std::thread::sleep(Duration::from_millis(300));
    let after = exporter.get("/metrics").body;
    assert_eq!(
        total(&after, "widgets_processed_total"),
        written,
        "nothing twice"
    );
    let set = |w: &str| format!(r#"widgets_processed_total{{worker="{w}",status="ok",reason=""}}"#);
    let overflow = r#"widgets_processed_total{worker="__overflow__",status="__overflow__",reason="__overflow__"}"#;
    assert_eq!(sample(&before, &set("a")), Some(2.0), "{before}");
    assert_eq!(sample(&after, overflow), Some(2.0), "{after}");
    assert_eq!(
        sample(&after, "widget_exporter_log_label_overflow_total"),
        Some(2.0)
    );
    assert_eq!(sample(&after, "widget_exporter_log_series"), Some(2.0));
    let order = |body: &str| {
        body.lines()
            .filter(|l| l.starts_with("widgets_processed_total{"))
            .map(|l| l.split(' ').next().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(order(&before), order(&after));
    assert!(
        exporter
            .log()
            .contains("resumed the log where the previous image stopped\" files=2"),
        "{}",
        exporter.log()
    );
    assert!(
        !exporter.log().contains("cannot make the carried file"),
        "{}",
        exporter.log()
    );
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The check mode reads the path once from its start and reports what the templates count;
/// the deployed command's other flags are accepted and ignored (no port, no textfile).
#[test]
fn the_check_mode_reports_without_serving() {
    let dir = TempDir::new("labels-check");
    let path = dir.join("app.log");
    let mut text = String::new();
    for i in 0..30 {
        text.push_str(&done(
            &format!("w{}", i % 3),
            if i % 5 == 0 { "slow" } else { "ok" },
        ));
    }
    text.push_str("2026-12-01T10:00:01Z worker=w9 failed reason=timeout\n");
    text.push_str(&done(&"v".repeat(200), "ok"));
    text.push_str("a line of noise\n");
    text.push_str(&"x".repeat(70_000));
    text.push('\n');
    append(&path, &text);
    let textfile = dir.join("out.prom");
    let log = format!("--widget.log.path={}", path.display());
    let tf = format!("--textfile.path={}", textfile.display());
    let args = [
        "--widget.source=log",
        &log,
        FINISHED,
        FAILED,
        "--widget.log.started=* start",
        "--widget.log.max-series=4",
        "--web.listen-address=127.0.0.1:1",
        &tf,
        "--log.format=json",
        "--widget.log.check",
    ];
    let (code, out, err) = exits(&args, "");
    assert_eq!(code, Some(0), "{out}{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("lines: matched=31 unmatched=1 invalid=1 too_long=1"),
        "{out}"
    );
    assert_eq!(
        lines.next(),
        Some("widgets: processed=31 failed=1 started=0"),
        "{out}"
    );
    assert_eq!(
        lines.next(),
        Some("label sets: 4 of at most 4, overflow=5"),
        "{out}"
    );
    assert!(
        out.contains("  8 {worker=\"w0\",status=\"ok\",reason=\"\"}\n"),
        "{out}"
    );
    assert!(
        out.contains(
            "  5 {worker=\"__overflow__\",status=\"__overflow__\",reason=\"__overflow__\"}\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("unmatched lines (first 1 of 1):\n  a line of noise\n"),
        "{out}"
    );
    assert!(out.contains("invalid lines (first 1 of 1):\n"), "{out}");
    assert!(out.contains("longer than 128 bytes"), "{out}");
    assert!(err.is_empty(), "nothing logged, nothing served: {err}");
    assert!(!textfile.exists(), "no textfile written");
    // Standard input for `-`, and every file of a glob.
    let (code, out, _) = exits(
        &[
            "--widget.source=log",
            "--widget.log.path=-",
            FINISHED,
            "--widget.log.check",
        ],
        &done("w1", "ok").repeat(3),
    );
    assert_eq!(code, Some(0));
    assert!(out.starts_with("lines: matched=3 unmatched=0"), "{out}");
    append(&dir.join("more.log"), &done("w7", "ok"));
    let glob = format!("--widget.log.path={}/*.log", dir.path().display());
    let (code, out, _) = exits(
        &["--widget.source=log", &glob, FINISHED, "--widget.log.check"],
        "",
    );
    assert_eq!(code, Some(0));
    assert!(out.starts_with("lines: matched=31 unmatched=2 "), "{out}");
    // Exit 1 when the path cannot be read; the report of what was read is still printed.
    let missing = format!("--widget.log.path={}", dir.join("missing.log").display());
    let (code, out, err) = exits(
        &[
            "--widget.source=log",
            &missing,
            FINISHED,
            "--widget.log.check",
        ],
        "",
    );
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("missing.log"), "{err}");
    assert!(out.starts_with("lines: matched=0 "), "{out}");
    // Exit 2 on a bad flag, before reading anything.
    let (code, out, err) = exits(
        &[
            "--widget.source=log",
            &log,
            "--widget.log.finished=* {label:le} {duration}",
            "--widget.log.check",
        ],
        "",
    );
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(
        out.is_empty() && err.contains("--widget.log.finished"),
        "{err}"
    );
}

/// Every bad value of the new flags and templates: exit 2, one line naming the flag.
#[test]
fn every_bad_flag_is_one_line_naming_it() {
    let dir = TempDir::new("labels-flags");
    let path = dir.join("app.log");
    append(&path, "");
    let log = format!("--widget.log.path={}", path.display());
    let plain = "--widget.log.finished=* took={duration}";
    #[rustfmt::skip]
    let cases: &[(&[&str], &str)] = &[
        (&[&log, "--widget.log.finished=* {label:a}* took={duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished={label:a}{duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished={label:a}{label:b} {duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished=* {label:__x} {duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished=* {label:le} {duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished=* {label:9a} {duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished=* {label:} {duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished=* {label:a-b} {duration}"], "--widget.log.finished"),
        (&[&log, "--widget.log.finished={label:a} {label:b} {label:c} {duration}", "--widget.log.failed={label:d} {label:e} x"], "--widget.log.failed"),
        (&[&log, plain, "--widget.log.failed=x {label:a}*"], "--widget.log.failed"),
        (&[&log, plain, "--widget.log.started=* {label:a} start"], "--widget.log.started"),
        (&[&log, plain, "--widget.log.max-series=0"], "--widget.log.max-series"),
        (&[&log, plain, "--widget.log.max-series=10001"], "--widget.log.max-series"),
        (&[&log, plain, "--widget.log.max-series=many"], "--widget.log.max-series"),
        (&[&log, plain, "--widget.log.max-series=-1"], "--widget.log.max-series"),
        (&[&log, plain, "--widget.log.max-files=0"], "--widget.log.max-files"),
        (&[&log, plain, "--widget.log.max-files=1025"], "--widget.log.max-files"),
        (&[&log, plain, "--widget.log.max-files="], "--widget.log.max-files"),
        (&["--widget.log.path=/var/*/app.log", plain], "--widget.log.path"),
        (&["--widget.log.path=/var/log/*/", plain], "--widget.log.path"),
        (&["--widget.log.path=/v?r/log/x*", plain], "--widget.log.path"),
        (&[&log, plain, "--widget.log.check=yes"], "--widget.log.check"),
    ];
    for &(args, flag) in cases {
        for check in [false, true] {
            let mut all = vec!["--widget.source=log"];
            all.extend_from_slice(args);
            if check {
                all.push("--widget.log.check");
            }
            let (code, out, err) = exits(&all, "");
            assert_eq!(code, Some(2), "{all:?}: {out}{err}");
            let first = err.lines().next().unwrap_or_default();
            assert!(first.contains(flag), "{all:?}: {err}");
            assert_eq!(err.lines().count(), 2, "one line and the usage hint: {err}");
            assert!(out.is_empty(), "{out}");
        }
    }
    // The check flag belongs to the log source.
    let (code, _, err) = exits(&["--widget.log.check"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--widget.log.check"), "{err}");
}
