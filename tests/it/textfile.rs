//! The textfile output end to end: the real binary writes `--textfile.path`, a real
//! `prometheus-node-exporter` (textfile collector only, on a loopback port) serves it, and we
//! check what node_exporter makes of it; also with `--web.listen-address=none`, `promtool
//! check metrics` on the file, the flag errors that need a filesystem, sd_notify with HTTP
//! off, and the printed unit. Skipped visibly without the tools.

use std::net::SocketAddr;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{binary, run, run_code, run_with_stdin, sample, say, Exporter, Proc, TempDir};

const NODE_EXPORTER: &str = "prometheus-node-exporter";

/// Fast enough that two node_exporter scrapes a second apart see counters move.
const FAST: [&str; 3] = [
    "--textfile.interval=100ms",
    "--widget.interval=20ms",
    "--widget.max-duration=150ms",
];

/// Waits up to 10 s for `check`, or panics with `log()`.
fn wait_for(what: &str, check: impl FnMut() -> bool, log: impl Fn() -> String) {
    support::wait_until(what, Duration::from_secs(10), check, log);
}

/// node_exporter with only the textfile collector, reading `dir`, on a free loopback port.
fn node_exporter(bin: &Path, dir: &TempDir) -> (Proc, SocketAddr) {
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let p = Proc::spawn(
        Command::new(bin)
            .arg("--collector.disable-defaults")
            .arg("--collector.textfile")
            .arg(format!(
                "--collector.textfile.directory={}",
                dir.path().display()
            ))
            .arg(format!("--web.listen-address={addr}")),
        dir.join("node_exporter.log"),
    );
    wait_for(
        "node_exporter to listen",
        || support::connect(addr, Duration::from_millis(200)).is_ok(),
        || p.log(),
    );
    (p, addr)
}

fn scrape(addr: SocketAddr) -> String {
    let r = support::try_get(addr, "/metrics", Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("scrape node_exporter: {e}"));
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// The family names of an exposition's TYPE lines.
fn families(body: &str) -> Vec<&str> {
    body.lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
        .collect()
}

const WIDGET_FAMILIES: [&str; 6] = [
    "widgets_processed_total",
    "widgets_failed_total",
    "widgets_in_progress",
    "widget_processing_duration_seconds",
    "widget_last_processed_timestamp_seconds",
    "widget_exporter_build_info",
];
const TEXTFILE_FAMILIES: [&str; 2] = [
    "widget_exporter_textfile_writes_total",
    "widget_exporter_textfile_last_write_timestamp_seconds",
];
const HTTP_FAMILIES: [&str; 5] = [
    "widget_exporter_http_requests_total",
    "widget_exporter_self_probe_success",
    "widget_exporter_connections",
    "widget_exporter_connections_closed_total",
    "widget_exporter_restarts_in_place_total",
];

/// Starts the exporter with HTTP off and waits for its first file.
fn start_without_http(dir: &TempDir, file: &Path, extra: &[&str]) -> Proc {
    let p = Proc::spawn(
        Command::new(binary())
            .arg("--web.listen-address=none")
            .arg(format!("--textfile.path={}", file.display()))
            .args(extra),
        dir.join("exporter.log"),
    );
    wait_for("the first textfile", || file.exists(), || p.log());
    p
}

/// What node_exporter serves from our file, checked over two of its scrapes.
fn check_through_node_exporter(dir: &TempDir, file: &Path, http: bool, log: &dyn Fn() -> String) {
    let Some(node) = support::require_tool(NODE_EXPORTER) else {
        return;
    };
    let ours = std::fs::read_to_string(file).expect("read the textfile");
    assert!(ours.ends_with('\n'), "{ours}");
    let (node, addr) = node_exporter(&node, dir);
    let first = scrape(addr);
    std::thread::sleep(Duration::from_secs(1));
    let second = scrape(addr);
    let context = || {
        format!(
            "node_exporter:\n{second}\nits log:\n{}\nour log:\n{}",
            node.log(),
            log()
        )
    };
    assert_eq!(
        sample(&second, "node_textfile_scrape_error"),
        Some(0.0),
        "{}",
        context()
    );
    let served = families(&second);
    for f in WIDGET_FAMILIES.iter().chain(&TEXTFILE_FAMILIES) {
        assert!(served.contains(f), "{f} missing; {}", context());
    }
    let in_file = families(&ours);
    assert!(
        !in_file.iter().any(|f| f.starts_with("process_")),
        "process_* families are node_exporter's own:\n{ours}"
    );
    for f in HTTP_FAMILIES {
        assert_eq!(in_file.contains(&f), http, "{f} with http={http}:\n{ours}");
    }
    for counter in [
        "widgets_processed_total",
        "widget_exporter_textfile_writes_total{result=\"ok\"}",
    ] {
        let (a, b) = (sample(&first, counter), sample(&second, counter));
        assert!(
            a.zip(b).is_some_and(|(a, b)| b > a),
            "{counter} did not increase between two node_exporter scrapes: {a:?} then {b:?}; {}",
            context()
        );
    }
    assert_eq!(
        sample(
            &second,
            "widget_exporter_textfile_writes_total{result=\"error\"}"
        ),
        Some(0.0),
        "{}",
        context()
    );
}

#[test]
fn node_exporter_serves_the_file_beside_http() {
    let dir = TempDir::new("textfile-http");
    let file = dir.join("widget-exporter.prom");
    let path_flag = format!("--textfile.path={}", file.display());
    let mut args = vec![path_flag.as_str()];
    args.extend(FAST);
    let e = Exporter::start(&args);
    wait_for("the first textfile", || file.exists(), || e.log());
    check_through_node_exporter(&dir, &file, true, &|| e.log());
    // The HTTP output shows the textfile's counters too.
    let metrics = e.get("/metrics").body;
    for f in TEXTFILE_FAMILIES {
        assert!(families(&metrics).contains(&f), "{f}:\n{metrics}");
    }
    assert!(
        sample(
            &metrics,
            "widget_exporter_textfile_writes_total{result=\"ok\"}"
        ) >= Some(1.0)
    );
}

#[test]
fn node_exporter_serves_the_file_with_http_off() {
    let dir = TempDir::new("textfile-nohttp");
    let file = dir.join("widget-exporter.prom");
    let p = start_without_http(&dir, &file, &FAST);
    check_through_node_exporter(&dir, &file, false, &|| p.log());
    let log = p.log();
    assert!(!log.contains("listening"), "no HTTP server at all:\n{log}");
}

#[test]
fn the_file_passes_promtool_check_metrics_and_stays_on_exit() {
    let dir = TempDir::new("textfile-promtool");
    let file = dir.join("widget-exporter.prom");
    let mut p = start_without_http(&dir, &file, &FAST);
    // Wait for a file with widgets in it, so the histogram has samples.
    wait_for(
        "a widget in the file",
        || {
            std::fs::read_to_string(&file)
                .is_ok_and(|t| sample(&t, "widgets_processed_total").is_some_and(|v| v > 0.0))
        },
        || p.log(),
    );
    let _ = p.child.kill();
    let _ = p.child.wait();
    let text = std::fs::read_to_string(&file).expect("the file is left in place on exit");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(".widget-exporter.prom."))
        .collect();
    // SIGKILL may land between create and rename; the next start removes such a file.
    say(&format!(
        "textfile: {} bytes; temporaries after SIGKILL: {leftovers:?}",
        text.len()
    ));
    // Our label values hold no spaces, so a third field on a sample line would be a timestamp.
    assert!(
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .all(|l| l.split(' ').count() == 2),
        "no timestamps:\n{text}"
    );
    let Some(promtool) = support::require_tool("promtool") else {
        return;
    };
    let (ok, out, err) = run_with_stdin(Command::new(promtool).args(["check", "metrics"]), &text);
    assert!(ok, "promtool check metrics:\n{out}\n{err}\nfile:\n{text}");
}

#[test]
fn flag_errors_that_need_the_filesystem_exit_2_naming_the_flag() {
    let dir = TempDir::new("textfile-flags");
    let missing = dir.join("nope/widget-exporter.prom");
    let as_dir = dir.path().display().to_string();
    let cases: [(Vec<String>, &str); 5] = [
        (
            vec![format!("--textfile.path={}", missing.display())],
            "No such file or directory",
        ),
        (vec![format!("--textfile.path={as_dir}")], "is a directory"),
        (
            vec![
                "--textfile.interval=0".into(),
                format!("--textfile.path={as_dir}/w.prom"),
            ],
            "--textfile.interval",
        ),
        (vec!["--web.listen-address=none".into()], "--textfile.path"),
        (
            vec![
                "--web.listen-address=none".into(),
                "--print-systemd-socket".into(),
                format!("--textfile.path={as_dir}/w.prom"),
            ],
            "--print-systemd-socket",
        ),
    ];
    for (args, want) in cases {
        let (code, _, err) = run_code(Command::new(binary()).args(&args), "");
        assert_eq!(code, Some(2), "{args:?}: {err}");
        // The usage line, after the start line when the error was found at start.
        let first = err
            .lines()
            .find(|l| l.starts_with("widget-exporter: "))
            .unwrap_or_default();
        assert!(first.contains(want), "{args:?}: {err}");
        assert!(
            first.contains("--textfile") || first.contains("--web") || first.contains("--print"),
            "{args:?} names no flag: {err}"
        );
    }
}

#[test]
fn with_http_off_ready_follows_the_first_write_and_the_watchdog_stops_with_the_writes() {
    let dir = TempDir::new("textfile-notify");
    let data = dir.join("data");
    std::fs::create_dir(&data).expect("mkdir");
    let file = data.join("widget-exporter.prom");
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).expect("bind notify socket");
    let p = Proc::spawn(
        Command::new(binary())
            .args(["--web.listen-address=none", "--textfile.interval=100ms"])
            .arg(format!("--textfile.path={}", file.display()))
            .env("NOTIFY_SOCKET", &sock_path)
            .env("WATCHDOG_USEC", "400000")
            .env_remove("WATCHDOG_PID"),
        dir.join("exporter.log"),
    );
    let receive = |for_: Duration| support::receive_until(&sock, Instant::now() + for_);
    let healthy = receive(Duration::from_millis(1500));
    let ready = healthy
        .iter()
        .position(|(_, m)| m.lines().any(|l| l == "READY=1"));
    assert!(
        ready.is_some(),
        "no READY=1: {healthy:?}\nlog:\n{}",
        p.log()
    );
    assert!(file.exists(), "READY=1 before the first write");
    let pings = healthy.iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(
        pings >= 3,
        "{pings} pings in 1.5 s: {healthy:?}\nlog:\n{}",
        p.log()
    );
    std::fs::remove_dir_all(&data).expect("remove the directory under it");
    // The next write (within 100 ms) fails; a ping already due may still go out.
    let _ = receive(Duration::from_millis(500));
    let failing = receive(Duration::from_secs(1));
    assert!(
        !failing.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "pings went on while writes failed: {failing:?}\nlog:\n{}",
        p.log()
    );
    std::fs::create_dir(&data).expect("recreate");
    let recovered = receive(Duration::from_secs(1));
    assert!(
        recovered.iter().any(|(_, m)| m == "WATCHDOG=1"),
        "no pings after recovery: {recovered:?}\nlog:\n{}",
        p.log()
    );
    let log = p.log();
    assert_eq!(
        log.matches("cannot write the textfile").count(),
        1,
        "one warning per streak:\n{log}"
    );
    assert!(log.contains("textfile written again"), "{log}");
}

#[test]
fn printed_unit_may_write_the_directory_and_scores_ok() {
    let dir = TempDir::new("textfile-unit");
    let file = dir.join("widget-exporter.prom");
    let (ok, unit, err) = run(Command::new(binary())
        .arg("--print-systemd-unit")
        .arg("--web.listen-address=none")
        .arg(format!("--textfile.path={}", file.display())));
    assert!(ok, "{err}");
    let rw: Vec<&str> = unit
        .lines()
        .filter(|l| l.starts_with("ReadWritePaths="))
        .collect();
    assert_eq!(
        rw,
        [format!("ReadWritePaths={}", dir.path().display())],
        "{unit}"
    );
    let Some(analyze) = support::require_tool("systemd-analyze") else {
        return;
    };
    let path = dir.join("widget-exporter.service");
    std::fs::write(
        &path,
        unit.replace(
            "/usr/local/bin/widget-exporter",
            binary().to_str().expect("a UTF-8 path to the binary"),
        ),
    )
    .expect("write unit");
    let (score, line) = support::security_score(&analyze, &path);
    say(&format!(
        "measured: systemd-analyze security (textfile unit): {line}"
    ));
    assert!(score < 5.0, "{line}");
    let (ok, out, err) = run(Command::new(&analyze).arg("verify").arg(&path));
    assert!(
        ok && err.trim().is_empty(),
        "systemd-analyze verify:\n{out}\n{err}"
    );
}
