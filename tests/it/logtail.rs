//! The log source end to end: the real binary follows a real file while a writer
//! in this test appends to it, the real `logrotate` rotates it (rename + create, and
//! copytruncate), and scrapes count every line exactly. Also partial and long lines, a file
//! that is missing or unreadable, standard input, and the bad flags. Owns no exporter code.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{
    append, binary, exits, require_tool, run, run_with_stdin, say, Exporter, TempDir,
};

/// The templates of the unlabeled log tests (this module's and `legacy`'s).
pub(crate) const FINISHED: &str = "--widget.log.finished=* widget * done status=ok took={duration}";
pub(crate) const FAILED: &str = "--widget.log.failed=* widget * done status=failed*";

/// One line shaped like a worker's log line; every 20th a failure.
pub(crate) fn line(i: usize) -> String {
    let status = if i % 20 == 19 { "failed" } else { "ok" };
    format!(
        "2026-12-01T10:00:01Z worker-{} widget {i} done status={status} took={}ms\n",
        i % 8,
        100 + i % 400
    )
}

/// The log source's counts in one scrape.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Counts {
    pub(crate) processed: u64,
    pub(crate) failed: u64,
    pub(crate) matched: u64,
    pub(crate) unmatched: u64,
    pub(crate) invalid: u64,
    pub(crate) too_long: u64,
    pub(crate) readable: u64,
    pub(crate) renames: u64,
    pub(crate) truncates: u64,
}

impl Counts {
    /// The counts in a text exposition; panics when one is missing.
    fn of(body: &str) -> Counts {
        let v = |name: &str| support::expect_sample(body, name) as u64;
        Counts {
            processed: v("widgets_processed_total"),
            failed: v("widgets_failed_total"),
            matched: v("widget_exporter_log_lines_total{result=\"matched\"}"),
            unmatched: v("widget_exporter_log_lines_total{result=\"unmatched\"}"),
            invalid: v("widget_exporter_log_lines_total{result=\"invalid\"}"),
            too_long: v("widget_exporter_log_lines_total{result=\"too_long\"}"),
            readable: v("widget_exporter_log_readable"),
            renames: v("widget_exporter_log_rotations_total{kind=\"rename\"}"),
            truncates: v("widget_exporter_log_rotations_total{kind=\"truncate\"}"),
        }
    }
}

/// The counts in one scrape.
pub(crate) fn counts(exporter: &Exporter) -> Counts {
    let r = exporter.get("/metrics");
    assert_eq!(r.status, 200, "{}", exporter.log());
    Counts::of(&r.body)
}

/// Scrapes until `done` holds for the text exposition (the test may wait; the exporter never
/// does), or panics with the last one; the exposition it held for.
pub(crate) fn scrape_until(exporter: &Exporter, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    support::poll(Duration::from_secs(30), Duration::from_millis(20), || {
        let r = exporter.get("/metrics");
        assert_eq!(r.status, 200, "{}", exporter.log());
        let held = done(&r.body);
        last = r.body;
        held.then(|| last.clone())
    })
    .unwrap_or_else(|| {
        panic!(
            "timed out waiting for {what}; last scrape:\n{last}\nlog:\n{}",
            exporter.log()
        )
    })
}

/// [`scrape_until`] on the counts.
pub(crate) fn wait_for(exporter: &Exporter, what: &str, done: impl Fn(&Counts) -> bool) -> Counts {
    Counts::of(&scrape_until(exporter, what, |body| {
        done(&Counts::of(body))
    }))
}

/// Starts `cmd` as the log source on `path` (a file, a glob or `-`) with `flags` (the
/// templates and any other), and waits until it follows the log.
pub(crate) fn start_log(cmd: &mut Command, path: &str, flags: &[&str]) -> Exporter {
    let path = format!("--widget.log.path={path}");
    following(Exporter::start_with(
        cmd.args(["--widget.source=log", &path]).args(flags),
    ))
}

fn start(path: &Path, extra: &[&str]) -> Exporter {
    start_log(
        &mut Command::new(binary()),
        &path.display().to_string(),
        &[&[FINISHED, FAILED], extra].concat(),
    )
}

/// Waits until the exporter has opened its log: it listens first, then opens the source, and
/// a line written before that is behind the end it starts from. A log that cannot be read
/// yet is never said to be followed: its warning is the sign the source is open.
pub(crate) fn following(exporter: Exporter) -> Exporter {
    let opened = [
        "msg=\"following the log\"",
        "log file missing",
        "cannot read the log file",
    ];
    support::wait_until(
        "the log source to open",
        Duration::from_secs(20),
        || opened.iter().any(|line| exporter.log().contains(line)),
        || exporter.log(),
    );
    exporter
}

/// Provokes a restart in place and calls `write` every 100 ms, without scraping, until the
/// new image has been up for a moment: the lines around the exec are read by whichever image
/// is there.
pub(crate) fn write_through_a_restart(exporter: &Exporter, mut write: impl FnMut()) {
    let killer = support::provoke_restart(exporter.addr);
    let deadline = Instant::now() + Duration::from_secs(40);
    let mut after = 0;
    while after < 5 {
        assert!(
            Instant::now() < deadline,
            "no restart in place:\n{}",
            exporter.log()
        );
        write();
        if exporter.log().contains("restarted in place") {
            after += 1;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(killer);
}

#[test]
fn every_line_written_before_a_scrape_is_counted() {
    let dir = TempDir::new("log-scrape");
    let path = dir.join("app.log");
    append(&path, &line(0)); // before start: not counted
    let exporter = start(&path, &[]);
    for i in 1..=50 {
        append(&path, &line(i));
        let c = counts(&exporter);
        assert_eq!(c.matched, i as u64, "line {i} written before the scrape");
    }
    let c = counts(&exporter);
    assert_eq!((c.processed, c.failed, c.readable), (50, 2, 1));
    assert!(
        !exporter
            .get("/metrics")
            .body
            .contains("widgets_in_progress"),
        "without a started template the family is left out"
    );
}

#[test]
fn partial_long_and_invalid_lines() {
    let dir = TempDir::new("log-lines");
    let path = dir.join("app.log");
    append(&path, "");
    let exporter = start(&path, &["--widget.log.started=* widget * start"]);
    let full = line(1);
    let (head, tail) = full.split_at(30);
    append(&path, "x worker-1 widget 1 start\n");
    append(&path, head);
    let c = counts(&exporter);
    assert_eq!((c.matched, c.processed), (1, 0), "half a line waits");
    assert!(exporter
        .get("/metrics")
        .body
        .contains("widgets_in_progress 1"));
    append(&path, tail);
    let c = counts(&exporter);
    assert_eq!((c.matched, c.processed), (2, 1));
    assert!(exporter
        .get("/metrics")
        .body
        .contains("widgets_in_progress 0"));
    let long = format!("{}\n", "y".repeat(200 * 1024));
    append(&path, &long);
    append(&path, "noise\nx widget 2 done status=ok took=1.2.3s\n");
    append(&path, &line(3));
    let c = counts(&exporter);
    assert_eq!(
        (c.matched, c.unmatched, c.invalid, c.too_long, c.processed),
        (3, 1, 1, 1, 2)
    );
    // A bounded buffer: a 200 KiB line did not grow the process by anything like its size
    // over and over (it is read in chunks and skipped, never held whole).
}

#[test]
fn a_missing_file_is_waited_for_and_read_from_its_start() {
    let dir = TempDir::new("log-missing");
    let path = dir.join("later.log");
    let exporter = start(&path, &["--widget.log.poll-interval=20ms"]);
    let c = counts(&exporter);
    assert_eq!((c.readable, c.matched), (0, 0));
    std::thread::sleep(Duration::from_millis(200));
    append(&path, &format!("{}{}", line(1), line(2)));
    let c = wait_for(&exporter, "the file to appear", |c| c.readable == 1);
    assert_eq!(
        c.matched, 2,
        "a file that appears later is read from its start"
    );
    let warnings = exporter.log().matches("log file missing").count();
    assert_eq!(warnings, 1, "warned once per streak:\n{}", exporter.log());
    // The recovery line comes after anything logged at start: by then a false "following
    // the log" line would have been written.
    exporter.wait_for_log("log readable again", Duration::from_secs(30));
    assert!(
        !exporter.log().contains("following the log"),
        "a missing log is never said to be followed:\n{}",
        exporter.log()
    );
}

#[test]
fn an_unreadable_file_is_reported_and_recovered() {
    let dir = TempDir::new("log-unreadable");
    let path = dir.join("app.log");
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
    });
    if root {
        // Root reads a chmod 000 file anyway, and no other permission trick stops it; what
        // stops root is a path it can open but not read: a directory put in the log's place.
        say("running as root: chmod 000 cannot stop root, so a directory stands in for an unreadable log");
        std::fs::create_dir(&path).expect("mkdir");
    } else {
        append(&path, "");
        run(Command::new("chmod").arg("000").arg(&path));
    }
    // A directory given at start is refused (see bad_flags); one appearing later is not.
    let exporter = if root {
        let later = dir.join("app.log.later");
        let exporter = start(&later, &["--widget.log.poll-interval=20ms"]);
        std::fs::rename(&path, &later).expect("put the directory in place");
        exporter
    } else {
        start(&path, &["--widget.log.poll-interval=20ms"])
    };
    let log_path = if root {
        dir.join("app.log.later")
    } else {
        path.clone()
    };
    exporter.wait_for_log("cannot read the log file", Duration::from_secs(30));
    assert_eq!(counts(&exporter).readable, 0);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        exporter.log().matches("cannot read the log file").count(),
        1,
        "warned once per streak:\n{}",
        exporter.log()
    );
    if root {
        std::fs::remove_dir(&log_path).expect("rmdir");
    } else {
        run(Command::new("chmod").arg("644").arg(&log_path));
    }
    append(&log_path, &line(1));
    let c = wait_for(&exporter, "readable again", |c| c.readable == 1);
    assert_eq!(c.matched, 1);
}

#[test]
fn standard_input_is_a_stream_whose_end_is_not_fatal() {
    let mut cmd = Command::new(binary());
    cmd.args([
        "--widget.source=log",
        "--widget.log.path=-",
        FINISHED,
        FAILED,
    ]);
    let mut exporter = following(Exporter::start_fed(&mut cmd, Stdio::piped()));
    let stdin = exporter.child.stdin.take().expect("piped stdin");
    // The last line lacks its newline: the end of the stream ends it.
    a_stream_ends(exporter, stdin, "x widget 7 done status=ok took=5ms");
}

#[test]
fn a_fifo_is_a_stream_whose_end_is_not_fatal() {
    /// `O_NONBLOCK` on Linux: opening a FIFO's write end then fails at once when no reader
    /// holds it, where a plain open would wait for one forever.
    const O_NONBLOCK: i32 = 0o4000;
    let Some(mkfifo) = require_tool("mkfifo") else {
        return;
    };
    let dir = TempDir::new("log-fifo");
    let fifo = dir.join("app.fifo");
    let (ok, _, err) = run(Command::new(mkfifo).arg(&fifo));
    assert!(ok, "mkfifo: {err}");
    let exporter = start(&fifo, &[]);
    let writer = OpenOptions::new()
        .write(true)
        .custom_flags(O_NONBLOCK)
        .open(&fifo)
        .unwrap_or_else(|e| panic!("the exporter holds no read end: {e}\n{}", exporter.log()));
    a_stream_ends(exporter, writer, "");
}

/// Writes 20 lines to the stream the exporter reads, then `last`, and ends the stream: every
/// line is counted, the counters stay, the log is no longer readable, and the exporter runs on.
fn a_stream_ends(mut exporter: Exporter, mut stream: impl Write, last: &str) {
    let text: String = (0..20).map(line).collect();
    stream.write_all(text.as_bytes()).expect("feed");
    let c = wait_for(&exporter, "20 lines from the stream", |c| c.matched == 20);
    assert_eq!((c.failed, c.readable), (1, 1));
    stream.write_all(last.as_bytes()).expect("feed");
    drop(stream);
    exporter.wait_for_log("end of the log stream", Duration::from_secs(30));
    let c = counts(&exporter);
    assert_eq!(
        (c.matched, c.readable),
        (20 + u64::from(!last.is_empty()), 0),
        "the last line, and counters stay at the end of the stream"
    );
    assert!(
        exporter.child.try_wait().expect("wait").is_none(),
        "still running"
    );
}

#[test]
fn bad_flags() {
    let dir = TempDir::new("log-flags");
    let log = format!("--widget.log.path={}", dir.join("a.log").display());
    let cases: &[(&[&str], i32, &str)] = &[
        (&[&log], 2, "--widget.log.path is for --widget.source=log"),
        (
            &[
                "--widget.source=log",
                &log,
                FINISHED,
                "--widget.min-duration=1s",
            ],
            2,
            "--widget.min-duration is for --widget.source=simulation",
        ),
        (
            &["--widget.source=log", &log],
            2,
            "--widget.log.finished is required",
        ),
        (
            &["--widget.source=log", &log, "--widget.log.finished=* done"],
            2,
            "--widget.log.finished: must contain {duration}",
        ),
        (
            &[
                "--widget.source=log",
                &log,
                "--widget.log.finished={duration}{duration}",
            ],
            2,
            "only once",
        ),
        (
            &[
                "--widget.source=log",
                &log,
                FINISHED,
                "--widget.log.failed={oops}",
            ],
            2,
            "--widget.log.failed: unknown {...}",
        ),
        (
            &[
                "--widget.source=log",
                &log,
                FINISHED,
                "--widget.log.started=x\\",
            ],
            2,
            "--widget.log.started: dangling \\",
        ),
    ];
    for &(args, code, want) in cases {
        let (status, _, stderr) = exits(args, "");
        assert_eq!(status, Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
        assert_eq!(
            stderr.lines().next().map(|l| l.contains("--widget")),
            Some(true),
            "{stderr}"
        );
    }
    let (code, _, stderr) = exits(
        &[
            "--widget.source=log",
            FINISHED,
            "--web.listen-address=127.0.0.1:0",
            &format!("--widget.log.path={}", dir.path().display()),
        ],
        "",
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("names a directory, not a log file"),
        "{stderr}"
    );
}

/// A writer that appends `line(0)`, `line(1)`, ... to `path`, a pause after each, and reopens
/// the path when `reopen` appears (what a daemon does on its postrotate signal); returns how
/// many lines it wrote.
pub(crate) fn writer(
    path: &Path,
    reopen: &Path,
    lines: usize,
    pause: Duration,
    line: impl Fn(usize) -> String + Send + 'static,
) -> std::thread::JoinHandle<usize> {
    let (path, reopen) = (path.to_owned(), reopen.to_owned());
    std::thread::spawn(move || {
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)
                .expect("open log")
        };
        let mut file = open();
        for i in 0..lines {
            file.write_all(line(i).as_bytes()).expect("write");
            if std::fs::remove_file(&reopen).is_ok() {
                file = open();
            }
            std::thread::sleep(pause);
        }
        lines
    })
}

/// Runs the real `logrotate` (`bin`) once, forced, on the files `pattern` matches, rotated
/// `how` (`create` or `copytruncate`); its postrotate script touches each `reopen` file, once
/// for all of them.
pub(crate) fn logrotate(bin: &Path, dir: &TempDir, pattern: &str, how: &str, reopen: &[PathBuf]) {
    let conf = dir.join("logrotate.conf");
    let touch: Vec<String> = reopen.iter().map(|r| r.display().to_string()).collect();
    std::fs::write(
        &conf,
        format!(
            "{pattern} {{\n  rotate 5\n  {how}\n  missingok\n  sharedscripts\n  postrotate\n    touch {}\n  endscript\n}}\n",
            touch.join(" ")
        ),
    )
    .expect("write logrotate.conf");
    let (ok, out, err) = run(Command::new(bin)
        .arg("-f")
        .arg("-s")
        .arg(dir.join("logrotate.state"))
        .arg(&conf));
    assert!(ok, "logrotate failed:\n{out}\n{err}");
}

#[test]
fn rename_rotation_with_logrotate_loses_and_repeats_nothing() {
    let Some(bin) = require_tool("logrotate") else {
        return;
    };
    let dir = TempDir::new("log-rename");
    let path = dir.join("app.log");
    let reopen = dir.join("reopen");
    append(&path, "");
    // Polled often enough to see each rotation: two within one poll would hide the middle file.
    let exporter = start(&path, &["--widget.log.poll-interval=50ms"]);
    let total = 3_000;
    let writing = writer(&path, &reopen, total, Duration::from_micros(300), line);
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(300));
        logrotate(
            &bin,
            &dir,
            &path.display().to_string(),
            "create",
            std::slice::from_ref(&reopen),
        );
    }
    let written = writing.join().expect("writer");
    let c = wait_for(&exporter, "every line", |c| c.matched >= written as u64);
    assert_eq!((c.renames, c.truncates), (2, 0));
    // Still exactly that once the renamed files have been drained and closed.
    std::thread::sleep(Duration::from_millis(1500));
    let c = counts(&exporter);
    assert_eq!(c.matched, written as u64, "nothing lost, nothing twice");
    assert_eq!(c.failed, (written / 20) as u64);
    assert_eq!(c.readable, 1);
}

#[test]
fn copytruncate_with_logrotate_counts_exactly_when_the_writer_pauses() {
    let Some(bin) = require_tool("logrotate") else {
        return;
    };
    let dir = TempDir::new("log-truncate");
    let path = dir.join("app.log");
    let reopen = dir.join("reopen");
    append(&path, "");
    let exporter = start(&path, &[]);
    let mut written = 0;
    for round in 0..2 {
        let batch = 500 + round * 100;
        let text: String = (0..batch).map(line).collect();
        append(&path, &text);
        written += batch;
        wait_for(&exporter, "the batch", |c| c.matched == written as u64);
        // The writer pauses: nothing is written between logrotate's copy and its truncate.
        logrotate(
            &bin,
            &dir,
            &path.display().to_string(),
            "copytruncate",
            std::slice::from_ref(&reopen),
        );
        let _ = std::fs::remove_file(&reopen);
        wait_for(&exporter, "the truncation", |c| {
            c.truncates == (round + 1) as u64
        });
    }
    append(&path, &line(7));
    let c = wait_for(&exporter, "the last line", |c| {
        c.matched == (written + 1) as u64
    });
    assert_eq!((c.renames, c.truncates), (0, 2), "the copy is never read");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counts(&exporter).matched, (written + 1) as u64);
}

/// A restart in place ([`support::provoke_restart`]) carries the read position with the
/// counters: lines written while the new image starts are neither lost nor counted twice.
#[test]
fn a_restart_in_place_keeps_the_read_position() {
    let dir = TempDir::new("log-restart");
    let path = dir.join("app.log");
    append(&path, "");
    let exporter = start(&path, &[]);
    let mut written = 0;
    for _ in 0..10 {
        append(&path, &line(written));
        written += 1;
    }
    wait_for(&exporter, "the first lines", |c| {
        c.matched == written as u64
    });
    write_through_a_restart(&exporter, || {
        append(&path, &line(written));
        written += 1;
    });
    let c = wait_for(&exporter, "every line", |c| c.matched >= written as u64);
    assert_eq!(c.matched, written as u64, "nothing twice");
    assert!(
        exporter
            .log()
            .contains("resumed the log where the previous image stopped"),
        "{}",
        exporter.log()
    );
}

#[test]
fn log_mode_exposition_passes_promtool() {
    let Some(promtool) = require_tool("promtool") else {
        return;
    };
    let dir = TempDir::new("log-promtool");
    let path = dir.join("app.log");
    append(&path, "");
    let exporter = start(&path, &["--widget.log.started=* widget * start"]);
    append(&path, &format!("x widget 1 start\n{}noise\n", line(1)));
    let body = exporter.get("/metrics").body;
    assert!(
        body.contains("widget_exporter_log_lines_total{result=\"too_long\"} 0"),
        "{body}"
    );
    let (ok, out, err) = run_with_stdin(Command::new(promtool).args(["check", "metrics"]), &body);
    assert!(ok, "promtool check metrics:\n{out}{err}\n{body}");
}
