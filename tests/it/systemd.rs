//! Running under systemd, without systemd as PID 1: the sd_notify protocol over a datagram
//! socket the test binds (path and `@abstract`), the watchdog that only pings while the HTTP
//! path answers, socket activation through `systemd-socket-activate`, and the printed units
//! checked by `systemd-analyze verify` and `security`.

use std::net::{SocketAddr, TcpStream};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{binary, run, run_code, say, Exporter, TempDir};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(name: &str) -> String {
    format!(
        "we-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn notify_env(cmd: &mut Command, notify_socket: &str, watchdog_usec: u64) {
    cmd.env("NOTIFY_SOCKET", notify_socket)
        .env("WATCHDOG_USEC", watchdog_usec.to_string())
        .env_remove("WATCHDOG_PID")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS");
}

fn check_ready_and_watchdog(sock: &UnixDatagram, notify_socket: &str) {
    let exec = Instant::now();
    let mut cmd = Command::new(binary());
    notify_env(&mut cmd, notify_socket, 400_000);
    let e = Exporter::start_with(&mut cmd);
    let got = support::receive_until(sock, Instant::now() + Duration::from_secs(2));
    let ready = got
        .iter()
        .find(|(_, m)| m.lines().any(|l| l == "READY=1"))
        .unwrap_or_else(|| panic!("no READY=1 in {got:?}; log:\n{}", e.log()));
    assert!(
        ready.1.contains(&format!("STATUS=serving on {}", e.addr)),
        "{ready:?}"
    );
    say(&format!(
        "measured: exec to READY=1 (debug build, via {notify_socket}): {:.1} ms",
        (ready.0 - exec).as_secs_f64() * 1e3
    ));
    // READY=1 came after the port accepts: a scrape right now works.
    assert_eq!(e.get("/metrics").status, 200);
    // WATCHDOG_USEC=400ms: a ping about every 200 ms while the HTTP path answers.
    let pings = got.iter().filter(|(_, m)| m == "WATCHDOG=1").count();
    assert!(pings >= 4, "{pings} pings in 2 s: {got:?}");
    assert!(
        e.log()
            .contains("msg=\"systemd watchdog enabled\" ping_interval=200ms"),
        "{}",
        e.log()
    );
}

#[test]
fn notify_ready_and_watchdog_on_a_path_socket() {
    let dir = TempDir::new("systemd");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    check_ready_and_watchdog(&sock, path.to_str().unwrap());
}

#[test]
fn notify_ready_and_watchdog_on_an_abstract_socket() {
    let name = unique("notify");
    let sock =
        UnixDatagram::bind_addr(&UnixAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    check_ready_and_watchdog(&sock, &format!("@{name}"));
}

#[test]
fn no_notify_socket_means_silence() {
    let e = Exporter::start_with(
        Command::new(binary())
            .env_remove("NOTIFY_SOCKET")
            .env("WATCHDOG_USEC", "1000000"),
    );
    assert_eq!(e.get("/-/healthy").status, 200);
    assert!(!e.log().contains("watchdog"), "{}", e.log());
}

/// Holds `n` idle connections open (ignoring connect failures once the target is saturated).
fn flood(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect()
}

#[test]
fn watchdog_stops_when_the_http_path_dies() {
    let Some(prlimit) = support::require_tool("prlimit") else {
        return;
    };
    let dir = TempDir::new("systemd");
    let path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    // 48 descriptors: tiny_http spends two per connection, so ~20 idle connections exhaust
    // them and its accept thread gets EMFILE and exits for good.
    let mut cmd = Command::new(prlimit);
    cmd.arg("--nofile=48:48").arg(binary());
    notify_env(&mut cmd, path.to_str().unwrap(), 1_000_000);
    let mut e = Exporter::start_with(&mut cmd);
    let healthy = support::receive_until(&sock, Instant::now() + Duration::from_millis(1500));
    assert!(
        healthy.iter().filter(|(_, m)| m == "WATCHDOG=1").count() >= 2,
        "pings while healthy: {healthy:?}"
    );
    let attack = Instant::now();
    let conns = flood(e.addr, 60);
    let after = support::receive_until(&sock, Instant::now() + Duration::from_secs(8));
    let last_ping = after
        .iter()
        .filter(|(_, m)| m == "WATCHDOG=1")
        .map(|(t, _)| *t)
        .next_back();
    let stopped_after = last_ping.map_or(Duration::ZERO, |t| t - attack);
    say(&format!(
        "measured: watchdog pings stopped {:.0} ms after the fd flood began ({} connections held)",
        stopped_after.as_secs_f64() * 1e3,
        conns.len()
    ));
    // The last 4 s of the window (four ping intervals) had no ping: systemd would restart us.
    let quiet_since = Instant::now().checked_sub(Duration::from_secs(4)).unwrap();
    assert!(
        last_ping.is_none_or(|t| t < quiet_since),
        "pings went on after the HTTP path died: {after:?}\nlog:\n{}",
        e.log()
    );
    // And the exporter said why and exited non-zero rather than idling deaf.
    let status = support::wait_exit(&mut e.child, Duration::from_secs(10));
    assert!(
        status.is_some_and(|s| !s.success()),
        "status {status:?}; log:\n{}",
        e.log()
    );
    assert!(e.log().contains("level=error"), "{}", e.log());
    drop(conns);
}

#[test]
fn socket_activation_serves_and_probes_through_the_passed_socket() {
    let Some(activate) = support::require_tool("systemd-socket-activate") else {
        return;
    };
    let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
    let mut child = Command::new(activate)
        .args(["-l", &addr.to_string()])
        .arg(binary())
        .arg("--web.systemd-socket")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let get = || support::try_get(addr, "/metrics", Duration::from_secs(5)).ok();
    let answer = support::poll(Duration::from_secs(10), Duration::from_millis(50), || {
        get().filter(|r| r.status == 200)
    });
    // The self-probe goes through the adopted socket too.
    let probed = support::poll_until(
        deadline.saturating_duration_since(Instant::now()),
        Duration::from_millis(100),
        || get().is_some_and(|r| r.body.contains("\nwidget_exporter_self_probe_success 1\n")),
    )
    .is_some();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        answer.is_some(),
        "no 200 through the activated socket; log:\n{log}"
    );
    assert!(probed, "self-probe never succeeded; log:\n{log}");
    assert!(
        log.contains("adopted the listening socket passed at fd 3"),
        "{log}"
    );
}

#[test]
fn systemd_socket_flag_without_a_socket_exits_1() {
    let (code, _, err) = run_code(
        Command::new(binary())
            .arg("--web.systemd-socket")
            .env_remove("LISTEN_PID")
            .env_remove("LISTEN_FDS"),
        "",
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("--web.systemd-socket") && err.contains("LISTEN_FDS"),
        "{err}"
    );
}

/// Prints a unit with the given flags and writes it where `systemd-analyze` can read it, with
/// `ExecStart=` pointing at the binary under test (verify checks that it exists).
fn write_unit(dir: &TempDir, file: &str, args: &[&str]) -> PathBuf {
    let (ok, text, err) = run(Command::new(binary()).args(args));
    assert!(ok, "{args:?}: {err}");
    let path = dir.join(file);
    let bin = binary();
    let bin = bin.to_str().expect("a UTF-8 path to the binary");
    std::fs::write(&path, text.replace("/usr/local/bin/widget-exporter", bin)).unwrap();
    path
}

#[test]
fn printed_units_pass_systemd_analyze_verify() {
    let Some(analyze) = support::require_tool("systemd-analyze") else {
        return;
    };
    let dir = TempDir::new("systemd");
    let flags = [
        "--widget.interval=2s",
        "--web.listen-address=127.0.0.1:9123",
    ];
    for (flavor, extra) in [
        ("modern", "--print-systemd-unit"),
        ("legacy", "--print-systemd-unit=legacy"),
    ] {
        let mut args = vec![extra];
        args.extend(flags);
        let unit = write_unit(&dir, "widget-exporter.service", &args);
        let text = std::fs::read_to_string(&unit).unwrap();
        assert!(
            text.contains("--widget.interval=2s"),
            "{flavor}: flags are filled in:\n{text}"
        );
        let socket = write_unit(
            &dir,
            "widget-exporter.socket",
            &["--print-systemd-socket", flags[1]],
        );
        assert!(std::fs::read_to_string(&socket)
            .unwrap()
            .contains("\nListenStream=127.0.0.1:9123\n"));
        let (ok, out, err) = run(Command::new(&analyze).arg("verify").arg(&unit).arg(&socket));
        // verify prints problems on stderr. The legacy unit keeps MemoryLimit= on purpose
        // (systemd < 231 knows no MemoryMax=); new systemd only notes that it is deprecated.
        let problems: Vec<&str> = err
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("MemoryLimit="))
            .collect();
        assert!(
            ok && problems.is_empty(),
            "{flavor}: systemd-analyze verify:\n{out}\n{err}"
        );
    }
}

#[test]
fn modern_unit_scores_ok_or_better_in_systemd_analyze_security() {
    let Some(analyze) = support::require_tool("systemd-analyze") else {
        return;
    };
    let dir = TempDir::new("systemd");
    let unit = write_unit(&dir, "widget-exporter.service", &["--print-systemd-unit"]);
    let (score, line) = support::security_score(&analyze, &unit);
    say(&format!("measured: systemd-analyze security: {line}"));
    assert!(score < 5.0, "{line}");
}

#[test]
fn printed_alert_rules_are_the_shipped_file() {
    let (ok, out, _) = run(Command::new(binary()).arg("--print-alert-rules"));
    assert!(ok);
    let file = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/host/units/widget-exporter.rules.yml"
    ))
    .unwrap();
    assert_eq!(out, file);
}

#[test]
fn log_source_unit_can_read_a_group_readable_log_and_stays_ok() {
    let Some(analyze) = support::require_tool("systemd-analyze") else {
        return;
    };
    let dir = TempDir::new("systemd-log");
    let log = dir.0.join("app.log");
    std::fs::write(&log, "").unwrap();
    // A log only its group may read, as Debian's /var/log files (root:adm 0640).
    run(Command::new("chmod").arg("0640").arg(&log));
    let gid = std::os::unix::fs::MetadataExt::gid(&std::fs::metadata(&log).unwrap());
    let path = format!("--widget.log.path={}", log.display());
    let flags = [
        "--print-systemd-unit",
        "--widget.source=log",
        &path,
        "--widget.log.finished=* done took={duration}",
    ];
    let unit = write_unit(&dir, "widget-exporter.service", &flags);
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("--widget.source=log"), "{text}");
    let group_line = text
        .lines()
        .find(|l| l.starts_with("SupplementaryGroups="))
        .unwrap_or_else(|| panic!("no SupplementaryGroups= for a 0640 log:\n{text}"));
    assert_eq!(group_line, format!("SupplementaryGroups={gid}"));
    let (ok, out, err) = run(Command::new(&analyze).arg("verify").arg(&unit));
    assert!(
        ok && err.trim().is_empty(),
        "systemd-analyze verify:\n{out}\n{err}"
    );
    let (score, line) = support::security_score(&analyze, &unit);
    say(&format!("measured: log unit: {line}"));
    assert!(score < 5.0, "{line}");
    // A world-readable log needs no group: the line stays a commented example.
    run(Command::new("chmod").arg("0644").arg(&log));
    let unit = write_unit(&dir, "widget-exporter.service", &flags);
    let text = std::fs::read_to_string(&unit).unwrap();
    assert!(text.contains("\n#SupplementaryGroups=adm\n"), "{text}");
}
