//! The command line of the real binary: help, version, usage errors (exit 2, the flag named,
//! nothing bound) and runtime errors (exit 1).

use std::net::TcpListener;
use std::process::Command;

use crate::support::{binary, exits, run, run_code};

#[test]
fn help_and_version() {
    let (ok, out, _) = run(Command::new(binary()).arg("--help"));
    assert!(ok);
    assert!(out.starts_with("usage: widget-exporter"), "{out}");
    for flag in [
        "--web.listen-address",
        "--web.telemetry-path",
        "--widget.min-duration",
        "--widget.max-duration",
        "--widget.interval",
        "--widget.failure-ratio",
        "--widget.seed",
        "--widget.average-window",
        "--log.level",
        "--log.format",
    ] {
        assert!(out.contains(flag), "--help names {flag}");
    }
    let (ok, out, _) = run(Command::new(binary()).arg("--version"));
    assert!(ok);
    assert_eq!(
        out.trim(),
        format!("widget-exporter {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_flags_exit_2_naming_the_flag_and_bind_nothing() {
    // Hold a port: if the exporter tried to bind it, it would fail with exit 1, not 2.
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let listen = format!("--web.listen-address={}", held.local_addr().unwrap());
    for (args, names) in [
        (&["--nope"][..], "--nope"),
        (&["--widget.interval=abc"], "--widget.interval"),
        (&["--widget.interval", "-1s"], "--widget.interval"),
        (&["--widget.min-duration=0s"], "--widget.min-duration"),
        (&["--widget.min-duration=600ms"], "--widget.max-duration"),
        (&["--widget.failure-ratio=1.5"], "--widget.failure-ratio"),
        (&["--widget.failure-ratio=NaN"], "--widget.failure-ratio"),
        (&["--widget.seed=-3"], "--widget.seed"),
        (&["--widget.average-window=0s"], "--widget.average-window"),
        (&["--log.level=loud"], "--log.level"),
        (&["--log.format=xml"], "--log.format"),
        (&["--web.telemetry-path=metrics"], "--web.telemetry-path"),
        (&["--web.listen-address=nohost:80"], "--web.listen-address"),
        (&["--web.listen-address=:99999"], "--web.listen-address"),
        (&["--log.level"], "--log.level"),
        (&["stray"], "stray"),
    ] {
        let mut cmd = Command::new(binary());
        cmd.args(args);
        if !args.iter().any(|a| a.starts_with("--web.listen-address")) {
            cmd.arg(&listen);
        }
        let (code, _, stderr) = run_code(&mut cmd, "");
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        let first = stderr.lines().next().unwrap_or("");
        assert!(
            first.contains(names),
            "{args:?}: first line names {names}: {stderr}"
        );
        assert!(
            stderr.contains("--help"),
            "{args:?}: a usage hint: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn port_in_use_exits_1_with_a_clear_message() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let (code, _, err) = exits(&[&format!("--web.listen-address={addr}")], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("address already in use") && err.contains(&addr.to_string()),
        "{err}"
    );
    assert!(
        err.contains("level=error"),
        "runtime errors are log lines: {err}"
    );
}
