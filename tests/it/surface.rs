//! What an operator sees of the binary before and around the metrics: `--help` that stands
//! alone, a suggestion for a misspelled flag, one rule for exit codes, the lifecycle lines
//! (the first line at start, the first textfile write, a stop by signal with status 0), the
//! print flags (the dashboard, the alert thresholds, the warnings of a printed unit) and the
//! text that names the source in use.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::promapi::Json;
use crate::support::{self, binary, exits, run, wait_exit, Exporter, TempDir};

/// A usage error: exit 2, a `widget-exporter: ` line with `want`, then the hint line, and
/// no log line saying `level=error`.
fn assert_usage_error(args: &[&str], want: &str) {
    let (code, _, err) = exits(args, "");
    assert_eq!(code, Some(2), "{args:?}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("widget-exporter: "))
        .unwrap_or_else(|| panic!("{args:?}: no usage line:\n{err}"));
    assert!(lines[at].contains(want), "{args:?}: {err}");
    assert_eq!(
        lines.get(at + 1).copied(),
        Some("run 'widget-exporter --help' for usage"),
        "{args:?}: {err}"
    );
    assert!(!err.contains("level=error"), "{args:?}: {err}");
}

fn utf8(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

#[test]
fn help_stands_alone() {
    let (ok, help, err) = run(Command::new(binary()).arg("--help"));
    assert!(ok, "{err}");
    // No file the host may lack.
    assert!(!help.contains("README") && !help.contains(".md"), "{help}");
    // The log source's required flags are marked under its heading.
    let log = help
        .split("with --widget.source=log (* marks a required flag):\n")
        .nth(1)
        .unwrap_or_else(|| panic!("no log section:\n{help}"));
    for flag in ["--widget.log.path=", "--widget.log.finished="] {
        let line = log.lines().find(|l| l.contains(flag)).unwrap_or_default();
        assert!(line.starts_with("* --widget.log."), "{flag}: {line}");
    }
    for flag in ["--widget.log.failed=", "--widget.log.poll-interval="] {
        let line = log.lines().find(|l| l.contains(flag)).unwrap_or_default();
        assert!(line.starts_with("  --widget.log."), "{flag}: {line}");
    }
    // The template rule: the star, the duration (required in finished), labels, escapes.
    let rule = help.replace('\n', " ");
    for part in [
        "* matches any text",
        "{duration}",
        "required in --widget.log.finished",
        "{label:NAME}",
        r"\*, \{ and \\ match *, { and \.",
    ] {
        assert!(rule.contains(part), "{part}:\n{help}");
    }
    // Two examples, each a command of this binary: a log and a textfile.
    let examples: Vec<&str> = help
        .lines()
        .filter(|l| l.starts_with("  widget-exporter "))
        .collect();
    assert!(
        examples.iter().any(|l| l.contains("--widget.source=log")),
        "{help}"
    );
    assert!(
        examples
            .iter()
            .any(|l| l.contains("--web.listen-address=none")),
        "{help}"
    );
    assert!(help.contains("--textfile.path=/"), "{help}");
    // The alert thresholds and the dashboard are there too.
    for flag in [
        "--alert.slow-p90=DURATION",
        "--alert.failure-ratio=RATIO",
        "--alert.idle-after=DURATION",
        "--print-grafana-dashboard",
    ] {
        assert!(help.contains(flag), "{flag}:\n{help}");
    }
}

#[test]
fn the_log_example_in_help_runs() {
    // The example's templates, as --help prints them, count the lines it describes.
    let dir = TempDir::new("surface-example");
    let log = dir.join("app.log");
    std::fs::write(&log, "").expect("create the log");
    let (ok, help, _) = run(Command::new(binary()).arg("--help"));
    assert!(ok);
    let template = |flag: &str| {
        let start = format!("{flag}='");
        let at = help
            .find(&start)
            .unwrap_or_else(|| panic!("{flag}:\n{help}"))
            + start.len();
        let value = help[at..].split('\'').next().unwrap_or_default();
        format!("{flag}={value}")
    };
    let finished = template("--widget.log.finished");
    let failed = template("--widget.log.failed");
    let e = crate::logtail::start_log(
        &mut Command::new(binary()),
        utf8(&log),
        &[&finished, &failed],
    );
    support::append(
        &log,
        "2026-12-01T10:00:01Z widget 1 done status=ok took=231ms\n\
         2026-12-01T10:00:02Z widget 2 done status=failed\n",
    );
    let body = crate::logtail::scrape_until(&e, "the example's two lines", |body| {
        support::sample(body, "widgets_processed_total").is_some_and(|n| n >= 2.0)
    });
    let value = |name| support::sample(&body, name);
    assert_eq!(
        (
            value("widgets_processed_total"),
            value("widgets_failed_total")
        ),
        (Some(2.0), Some(1.0)),
        "{body}"
    );
}

#[test]
fn a_misspelled_flag_gets_a_suggestion() {
    for (arg, want) in [
        (
            "--web.listen-adress=:9100",
            "unknown flag --web.listen-adress; did you mean --web.listen-address?",
        ),
        (
            "--textfile.pahts=/x.prom",
            "unknown flag --textfile.pahts; did you mean --textfile.path?",
        ),
        (
            "--widget.log.finsihed=x",
            "unknown flag --widget.log.finsihed; did you mean --widget.log.finished?",
        ),
    ] {
        let (code, out, err) = exits(&[arg], "");
        assert_eq!(code, Some(2), "{arg}: {err}");
        assert!(out.is_empty());
        assert_eq!(
            err,
            format!("widget-exporter: {want}\nrun 'widget-exporter --help' for usage\n")
        );
    }
    // Three edits away: no guess.
    let (code, _, err) = exits(&["--web.lstn-adress=:9100"], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.starts_with("widget-exporter: unknown flag --web.lstn-adress\n"),
        "{err}"
    );
}

#[test]
fn configuration_errors_at_start_exit_2_in_the_usage_style() {
    let dir = TempDir::new("surface-exits");
    let here = utf8(dir.path()).to_owned();
    let listen = "--web.listen-address=127.0.0.1:0";
    // A log path that is a directory.
    assert_usage_error(
        &[
            listen,
            "--widget.source=log",
            &format!("--widget.log.path={here}"),
            "--widget.log.finished={duration}",
        ],
        "--widget.log.path names a directory",
    );
    // A textfile path that is a directory.
    assert_usage_error(
        &[listen, &format!("--textfile.path={here}")],
        "for --textfile.path: is a directory",
    );
    // A textfile in a directory that does not exist.
    assert_usage_error(
        &[listen, &format!("--textfile.path={here}/nope/w.prom")],
        "No such file or directory",
    );
    // The same without HTTP.
    assert_usage_error(
        &[
            "--web.listen-address=none",
            &format!("--textfile.path={here}"),
        ],
        "for --textfile.path: is a directory",
    );
}

#[test]
fn a_textfile_that_cannot_be_written_at_start_exits_1_with_one_line() {
    // sysfs refuses new files to root too; /proc likewise.
    let Some(dir) = ["/sys", "/proc"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
    else {
        support::skip("neither /sys nor /proc is here");
        return;
    };
    let path = format!("--textfile.path={dir}/widget-exporter-surface.prom");
    for listen in [
        "--web.listen-address=none",
        "--web.listen-address=127.0.0.1:0",
    ] {
        let mut child = Command::new(binary())
            .args([listen, &path])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let status = wait_exit(&mut child, Duration::from_secs(20));
        if status.is_none() {
            let _ = child.kill();
        }
        let out = child.wait_with_output().expect("reap");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{listen}: {err}");
        let errors: Vec<&str> = err.lines().filter(|l| l.contains("level=error")).collect();
        assert_eq!(errors.len(), 1, "{listen}: {err}");
        assert!(
            errors[0].contains("cannot write --textfile.path=") && errors[0].contains("at start"),
            "{err}"
        );
        // Nothing says the failure is retried: the process ends.
        assert!(!err.contains("retrying"), "{err}");
        assert!(
            !err.contains("widget-exporter: "),
            "runtime, not usage: {err}"
        );
    }
}

#[test]
fn the_first_line_names_the_version_the_source_and_the_outputs() {
    let dir = TempDir::new("surface-start");
    let file = dir.join("w.prom");
    let textfile = format!("--textfile.path={}", utf8(&file));
    for (args, source, outputs) in [
        (vec![], "simulation", "http"),
        (vec![textfile.as_str()], "simulation", "http,textfile"),
    ] {
        let e = Exporter::start(&args);
        let log = e.log();
        let first = log.lines().next().unwrap_or_default();
        assert!(first.contains("msg=\"starting widget-exporter\""), "{log}");
        for field in [
            format!(" version={} ", env!("CARGO_PKG_VERSION")),
            format!(" source={source} "),
            format!(" outputs={outputs} "),
            " widget.average-window=60s ".to_owned(),
        ] {
            assert!(first.contains(&field), "{field}: {first}");
        }
    }
}

#[test]
fn the_first_textfile_write_is_logged_at_info() {
    let dir = TempDir::new("surface-first-write");
    let file = dir.join("w.prom");
    let path = utf8(&file).to_owned();
    let e = Exporter::start(&[&format!("--textfile.path={path}")]);
    let log = e.wait_for_log("msg=\"textfile written;", Duration::from_secs(20));
    let line = log
        .lines()
        .find(|l| l.contains("msg=\"textfile written;"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("level=info"), "{line}");
    assert!(line.contains(&format!(" path={path}")), "{line}");
    assert!(file.is_file());
    // Once: later writes are at debug.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(e.log().matches("msg=\"textfile written;").count(), 1);
}

#[test]
fn sigterm_and_sigint_end_with_status_0_and_one_line() {
    let Some(kill) = support::require_tool("kill") else {
        return;
    };
    for signal in ["TERM", "INT"] {
        let mut e = Exporter::start(&[]);
        let pid = e.child.id().to_string();
        let (ok, _, err) = run(Command::new(&kill).args([&format!("-{signal}"), &pid]));
        assert!(ok, "kill: {err}");
        let status = wait_exit(&mut e.child, Duration::from_secs(20));
        let line = format!("msg=stopping signal=SIG{signal}");
        let log = e.wait_for_log(&line, Duration::from_secs(20));
        assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}\n{log}");
        let stops: Vec<&str> = log.lines().filter(|l| l.contains(&line)).collect();
        assert_eq!(stops.len(), 1, "{log}");
        assert!(stops[0].contains("level=info"), "{log}");
        assert!(!log.contains("level=error"), "{log}");
    }
}

#[test]
fn after_a_restart_in_place_sigterm_still_ends_with_status_0() {
    let Some(kill) = support::require_tool("kill") else {
        return;
    };
    let mut e = Exporter::start(&[]);
    // A request announcing a body too big to drain leaks its connection inside tiny_http,
    // which the exporter cures by re-executing itself, with the stop signals still blocked.
    let killer = support::provoke_restart(e.addr);
    let log = e.wait_for_log("restarted in place", Duration::from_secs(20));
    assert!(log.contains("restarted in place"), "{log}");
    drop(killer);
    let pid = e.child.id().to_string();
    let (ok, _, err) = run(Command::new(&kill).args(["-TERM", &pid]));
    assert!(ok, "kill: {err}");
    let status = wait_exit(&mut e.child, Duration::from_secs(20));
    let log = e.wait_for_log("msg=stopping signal=SIGTERM", Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{status:?}\n{log}");
    assert_eq!(
        log.matches("msg=stopping signal=SIGTERM").count(),
        1,
        "{log}"
    );
}

#[test]
fn under_systemd_a_stop_says_stopping() {
    let Some(kill) = support::require_tool("kill") else {
        return;
    };
    let dir = TempDir::new("surface-stopping");
    let path = dir.join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&path).expect("bind the notify socket");
    let mut e = Exporter::start_with(Command::new(binary()).env("NOTIFY_SOCKET", &path));
    let pid = e.child.id().to_string();
    let (ok, _, err) = run(Command::new(&kill).args(["-TERM", &pid]));
    assert!(ok, "kill: {err}");
    let status = wait_exit(&mut e.child, Duration::from_secs(20));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", e.log());
    // Everything it sent is queued by now.
    let got = support::receive_until(&sock, Instant::now() + Duration::from_millis(100));
    assert_eq!(
        got.last().map(|(_, m)| m.as_str()),
        Some("STOPPING=1"),
        "{got:?}"
    );
}

#[test]
fn the_dashboard_is_json() {
    let (code, text, err) = exits(&["--print-grafana-dashboard"], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(text.starts_with('{') && text.trim_end().ends_with('}'));
    for key in ["\"panels\"", "\"templating\"", "\"${datasource}\""] {
        assert!(text.contains(key), "{key}");
    }
    Json::parse(&text).unwrap_or_else(|e| panic!("not JSON: {e}"));
}

#[test]
fn alert_thresholds_reach_the_printed_rules() {
    let (code, defaults, err) = exits(&["--print-alert-rules"], "");
    assert_eq!(code, Some(0), "{err}");
    let (code, chosen, err) = exits(
        &[
            "--print-alert-rules",
            "--alert.slow-p90=2500ms",
            "--alert.failure-ratio=0.025",
            "--alert.idle-after=1h30m",
        ],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    for (default, site) in [
        ("\n          ) > 1\n", "\n          ) > 2.5\n"),
        ("(threshold 1s)", "(threshold 2.5s)"),
        ("rate(widgets_processed_total[5m]) > 0.1)", "> 0.025)"),
        (
            "More than 10% of widgets fail",
            "More than 2.5% of widgets fail",
        ),
        (
            "widget_last_processed_timestamp_seconds > 300\n",
            "widget_last_processed_timestamp_seconds > 5400\n",
        ),
        ("offset 5m\n", "offset 1h30m\n"),
    ] {
        assert!(defaults.contains(default), "{default:?}:\n{defaults}");
        assert!(!chosen.contains(default), "{default:?} stayed:\n{chosen}");
        assert!(chosen.contains(site), "{site:?}:\n{chosen}");
    }
    assert_eq!(defaults.lines().count(), chosen.lines().count());
}

#[test]
fn alert_thresholds_are_refused_without_the_rules() {
    for arg in [
        "--alert.slow-p90=2s",
        "--alert.failure-ratio=0.2",
        "--alert.idle-after=10m",
    ] {
        let name = arg.split('=').next().unwrap_or_default();
        for with in [&[][..], &["--print-systemd-unit"][..]] {
            let mut args = vec![arg];
            args.extend(with);
            let (code, out, err) = exits(&args, "");
            assert_eq!(code, Some(2), "{args:?}: {err}");
            assert!(out.is_empty(), "{out}");
            assert_eq!(
                err,
                format!(
                    "widget-exporter: flag {name} is a threshold of the printed alert rules; \
                     give --print-alert-rules too\nrun 'widget-exporter --help' for usage\n"
                ),
            );
        }
    }
    // Out of bounds, with the rules: the value and the flag named.
    for (arg, why) in [
        ("--alert.slow-p90=0s", "must be longer than 0s"),
        ("--alert.failure-ratio=1", "above 0 and below 1"),
        ("--alert.idle-after=500ms", "must be at least 1s"),
    ] {
        let (code, _, err) = exits(&["--print-alert-rules", arg], "");
        assert_eq!(code, Some(2), "{arg}: {err}");
        let name = arg.split('=').next().unwrap_or_default();
        assert!(err.contains(name) && err.contains(why), "{arg}: {err}");
    }
}

#[test]
fn a_printed_unit_warns_of_each_path_it_hides() {
    /// The flags, then each warning as (the flag and path, the directive).
    type Case = (Vec<&'static str>, Vec<(&'static str, &'static str)>);
    // Paths need not exist to be printed into a unit.
    let cases: [Case; 4] = [
        (vec![], vec![]),
        (
            vec!["--textfile.path=/tmp/widgets/w.prom"],
            vec![("--textfile.path=/tmp/widgets/w.prom", "PrivateTmp=")],
        ),
        (
            vec![
                "--widget.source=log",
                "--widget.log.path=/home/app/widgets.log",
                "--widget.log.finished={duration}",
                "--textfile.path=/var/tmp/w.prom",
            ],
            vec![
                ("--widget.log.path=/home/app/widgets.log", "ProtectHome="),
                ("--textfile.path=/var/tmp/w.prom", "PrivateTmp="),
            ],
        ),
        (
            vec![
                "--widget.source=log",
                "--widget.log.path=/var/log/widgets.log",
                "--widget.log.finished={duration}",
                "--textfile.path=/var/lib/node/w.prom",
            ],
            vec![],
        ),
    ];
    for flavor in ["--print-systemd-unit", "--print-systemd-unit=legacy"] {
        for (args, want) in &cases {
            let mut all = args.clone();
            all.push(flavor);
            let (code, unit, err) = exits(&all, "");
            assert_eq!(code, Some(0), "{all:?}: {err}");
            assert!(unit.contains("[Service]"), "{unit}");
            let lines: Vec<&str> = err.lines().collect();
            assert_eq!(lines.len(), want.len(), "{all:?}: {err}");
            for (line, (path, directive)) in lines.iter().zip(want) {
                assert!(line.starts_with("widget-exporter: warning: "), "{line}");
                assert!(
                    line.contains(path) && line.contains(directive),
                    "{path} {directive}: {line}"
                );
            }
        }
    }
}

#[test]
fn operators_read_what_is_true_for_the_source_in_use() {
    let description = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--print-systemd-unit");
        let (code, unit, err) = exits(&all, "");
        assert_eq!(code, Some(0), "{err}");
        unit.lines()
            .find(|l| l.starts_with("Description="))
            .unwrap_or_default()
            .to_owned()
    };
    let dir = TempDir::new("surface-about");
    let log: PathBuf = dir.join("app.log");
    std::fs::write(&log, "").expect("create the log");
    let log_args = [
        "--widget.source=log".to_owned(),
        format!("--widget.log.path={}", utf8(&log)),
        "--widget.log.finished={duration}".to_owned(),
    ];
    let log_args: Vec<&str> = log_args.iter().map(String::as_str).collect();

    let sim = description(&[]);
    assert!(sim.contains("simulated"), "{sim}");
    let counted = description(&log_args);
    assert!(
        counted.contains("counted from its log") && !counted.contains("simulated"),
        "{counted}"
    );

    let page = Exporter::start(&[]).get("/").body;
    assert!(
        page.contains("simulated widget-processing service"),
        "{page}"
    );
    let page = Exporter::start(&log_args).get("/").body;
    assert!(
        page.contains("counted from its log") && !page.contains("simulated"),
        "{page}"
    );
}
