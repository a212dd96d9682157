//! Shared by the reliability suite (`hostile`, `soak`), on top of `support` (which binary,
//! the HTTP client): the binary behind a wrapper, the single-request killers as bytes, a
//! scraper with a hard 1 s timeout, `/proc` sampling of the exporter, the loop lateness the
//! exporter logs at debug, and the [`Verdict`] each case prints and asserts. Std only and
//! loopback only: a user's clone has no attack scripts, so the attacks live here, every loop
//! bounded in count and time.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::support;

/// The scraper's whole budget per scrape: connect, send, read.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(1);

/// The log line a re-exec in place leaves (same PID, listening socket and counters kept).
pub const RESTART_MSG: &str = "msg=\"restarting in place\"";

/// A command that runs the binary under test with `flags`, behind `wrapper` (`prlimit …`,
/// `sh -c …`) when given; the wrapper must end by executing the binary, so the child's PID
/// is the exporter's.
pub fn command(wrapper: &[OsString], flags: &[&str]) -> Command {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut cmd = Command::new(first);
            cmd.args(rest).arg(support::binary());
            cmd
        }
        None => Command::new(support::binary()),
    };
    cmd.args(flags);
    cmd
}

/// Sleeps until `t` (no-op when it has passed).
pub fn sleep_until(t: Instant) {
    let left = t.saturating_duration_since(Instant::now());
    if !left.is_zero() {
        thread::sleep(left);
    }
}

// ---------------------------------------------------------------------------------------
// The verdict

/// A case's facts and missed bars: printed as one line, `LABEL PASS|FAIL: fact; fact…`, then
/// asserted, so that a passing run still shows its figures.
pub struct Verdict {
    label: String,
    facts: Vec<String>,
    failures: Vec<String>,
}

impl Verdict {
    /// A verdict printed under `label` (`hostile CASE`, `soak (60 s)`).
    pub fn new(label: String) -> Verdict {
        Verdict {
            label,
            facts: Vec::new(),
            failures: Vec::new(),
        }
    }

    /// A figure for the printed line.
    pub fn fact(&mut self, fact: String) {
        self.facts.push(fact);
    }

    /// A bar: when `ok` is false, `bar()` says what was missed.
    pub fn check(&mut self, ok: bool, bar: impl FnOnce() -> String) {
        if !ok {
            self.failures.push(bar());
        }
    }

    /// Prints the line and fails the test with every missed bar and the log's tail.
    pub fn finish(self, log: &str) {
        let result = if self.failures.is_empty() {
            "PASS"
        } else {
            "FAIL"
        };
        support::say(&format!(
            "{} {result}: {}",
            self.label,
            self.facts.join("; ")
        ));
        assert!(
            self.failures.is_empty(),
            "{}: {} bar(s) missed:\n  - {}\nlog tail:\n{}",
            self.label,
            self.failures.len(),
            self.failures.join("\n  - "),
            log_tail(log, 30)
        );
    }
}

// ---------------------------------------------------------------------------------------
// /proc sampling

/// What the exporter holds, read from `/proc/PID`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// `Threads:` in `/proc/PID/status`.
    pub threads: u64,
    /// `VmRSS:` in KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: u64,
}

impl Usage {
    /// The field-wise maximum.
    #[must_use]
    pub fn max(self, other: Usage) -> Usage {
        Usage {
            threads: self.threads.max(other.threads),
            rss_kib: self.rss_kib.max(other.rss_kib),
            fds: self.fds.max(other.fds),
        }
    }
}

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "threads={} rss={:.1}MiB fds={}",
            self.threads,
            self.rss_kib as f64 / 1024.0,
            self.fds
        )
    }
}

/// The process's usage, or `None` once it is gone (a zombie has no `VmRSS`).
pub fn usage(pid: u32) -> Option<Usage> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let num = |key: &str| -> Option<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key)?.split_whitespace().next()?.parse().ok())
    };
    let threads = num("Threads:")?;
    let rss_kib = num("VmRSS:")?;
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64;
    Some(Usage {
        threads,
        rss_kib,
        fds,
    })
}

/// A thread sampling a process's usage at a fixed period.
pub struct Monitor {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<(Instant, Usage)>>,
}

impl Monitor {
    /// Starts sampling `pid` every `every`.
    pub fn start(pid: u32, every: Duration) -> Monitor {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let mut samples = Vec::new();
            while !flag.load(Ordering::Relaxed) {
                if let Some(u) = usage(pid) {
                    samples.push((Instant::now(), u));
                }
                thread::sleep(every);
            }
            samples
        });
        Monitor { stop, handle }
    }

    /// Stops and returns the samples.
    pub fn finish(self) -> Vec<(Instant, Usage)> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("monitor thread")
    }
}

/// The field-wise peak of the samples taken in `[from, to]`, or `None` when there is none
/// (a bar on a peak of no samples would pass unmeasured).
pub fn peak(samples: &[(Instant, Usage)], from: Instant, to: Instant) -> Option<Usage> {
    samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .map(|(_, u)| *u)
        .reduce(Usage::max)
}

/// A control for timing bars: a thread of the test itself that sleeps 5 ms at a time and
/// records how much later than asked it woke. When the whole machine stalls (two cores, a
/// build running next door), this sees it too, and a bar on the exporter's loop can tell the
/// machine's stall from the loop's own.
pub struct Clock {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Duration>,
}

impl Clock {
    /// Starts the control thread.
    pub fn start() -> Clock {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = thread::spawn(move || {
            let nap = Duration::from_millis(5);
            let mut worst = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                thread::sleep(nap);
                worst = worst.max(t.elapsed().saturating_sub(nap));
            }
            worst
        });
        Clock { stop, handle }
    }

    /// Stops; the worst oversleep seen.
    pub fn finish(self) -> Duration {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("clock thread")
    }
}

// ---------------------------------------------------------------------------------------
// Scraping

/// One scrape by the background scraper.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// When it started.
    pub at: Instant,
    /// How long it took, failed or not.
    pub took: Duration,
    /// `widgets_processed_total`, or why the scrape failed.
    pub result: Result<u64, String>,
}

/// A thread that scrapes `/metrics` on a fresh connection at a fixed period with a hard 1 s
/// timeout, the way a Prometheus server with `scrape_timeout: 1s` would see the exporter.
pub struct Scraper {
    stop: Arc<AtomicBool>,
    results: Arc<Mutex<Vec<Scrape>>>,
    handle: JoinHandle<()>,
}

impl Scraper {
    /// Starts scraping `addr` every `every`.
    pub fn start(addr: SocketAddr, every: Duration) -> Scraper {
        let stop = Arc::new(AtomicBool::new(false));
        let results = Arc::new(Mutex::new(Vec::new()));
        let (flag, sink) = (Arc::clone(&stop), Arc::clone(&results));
        let handle = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                let at = Instant::now();
                let result = scrape_once(addr, SCRAPE_TIMEOUT);
                let took = at.elapsed();
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(Scrape { at, took, result });
                // Sleep in short steps so that `finish` returns promptly.
                while !flag.load(Ordering::Relaxed) && at.elapsed() < every {
                    thread::sleep(Duration::from_millis(20));
                }
            }
        });
        Scraper {
            stop,
            results,
            handle,
        }
    }

    /// The scrapes so far.
    pub fn snapshot(&self) -> Vec<Scrape> {
        self.results
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Stops (after the scrape in flight, at most 1 s) and returns every scrape.
    pub fn finish(self) -> Vec<Scrape> {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("scraper thread");
        std::mem::take(&mut *self.results.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// Counts and the slowest scrape among `scrapes`: (ok, total, slowest, first errors).
pub fn tally(scrapes: &[&Scrape]) -> (usize, usize, Duration, Vec<String>) {
    let ok = scrapes.iter().filter(|s| s.result.is_ok()).count();
    let slowest = scrapes.iter().map(|s| s.took).max().unwrap_or_default();
    let mut errors: Vec<String> = scrapes
        .iter()
        .filter_map(|s| s.result.as_ref().err().cloned())
        .collect();
    errors.dedup();
    errors.truncate(3);
    (ok, scrapes.len(), slowest, errors)
}

/// A [`tally`] as a verdict states it: `3/4 ok, slowest 12 ms (errors: …)`.
pub fn tally_line(ok: usize, total: usize, slowest: Duration, errors: &[String]) -> String {
    let errors = if errors.is_empty() {
        String::new()
    } else {
        format!(" (errors: {})", errors.join(" | "))
    };
    format!(
        "{ok}/{total} ok, slowest {} ms{errors}",
        slowest.as_millis()
    )
}

/// One `GET /metrics` on a fresh connection, all of it within `timeout`; the value of
/// `widgets_processed_total`.
pub fn scrape_once(addr: SocketAddr, timeout: Duration) -> Result<u64, String> {
    let r = support::try_request(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: scraper\r\nConnection: close\r\n\r\n",
        timeout,
    )?;
    if r.status != 200 {
        return Err(format!("status {}", r.status));
    }
    processed_total(&r.body).ok_or_else(|| "no widgets_processed_total sample".to_owned())
}

/// `widgets_processed_total` in an exposition (either format).
pub fn processed_total(body: &str) -> Option<u64> {
    support::sample(body, "widgets_processed_total").map(|v| v as u64)
}

/// What a kept-alive scraper saw.
#[derive(Debug, Default)]
pub struct KeptAlive {
    pub ok: u64,
    pub failed: u64,
    /// Connections opened, the first included.
    pub connects: u64,
    /// (before, after) each time `widgets_processed_total` went down.
    pub decreases: Vec<(u64, u64)>,
    /// Failures counted by what went wrong.
    pub errors: BTreeMap<String, u64>,
}

impl KeptAlive {
    fn fail(&mut self, why: String) {
        self.failed += 1;
        *self.errors.entry(why).or_insert(0) += 1;
    }
}

/// Scrapes over one kept-alive connection, one request per `every` (zero: as fast as it
/// can), until `until()`, as an HTTP/1.1 client does: a new connection after an answer that
/// says `Connection: close` (a drain before a restart in place) or after a failure. A 200
/// without `widgets_processed_total` is a failure.
pub fn kept_alive(addr: SocketAddr, every: Duration, until: impl Fn() -> bool) -> KeptAlive {
    const REQUEST: &str = "GET /metrics HTTP/1.1\r\nHost: kept-alive\r\n\r\n";
    const TIMEOUT: Duration = Duration::from_secs(2);
    let mut stats = KeptAlive::default();
    let mut conn: Option<support::KeepAlive> = None;
    let mut last: Option<u64> = None;
    while !until() {
        let at = Instant::now();
        let c = match &mut conn {
            Some(c) => c,
            None => match support::KeepAlive::try_connect(addr, TIMEOUT) {
                Ok(c) => conn.insert(c),
                Err(e) => {
                    stats.fail(e);
                    thread::sleep(every.max(Duration::from_millis(100)));
                    continue;
                }
            },
        };
        let connects = c.connects;
        let result = c.try_send(REQUEST, TIMEOUT);
        // Requests answered on the current connection: a failure of the first one is told
        // apart (a new connection waits for a free tiny_http thread; a kept-alive one should not).
        let first = c.served == 0 || c.connects > connects;
        match result {
            Ok(r) if r.status == 200 => match processed_total(&r.body) {
                Some(v) => {
                    stats.ok += 1;
                    if let Some(before) = last.filter(|&l| v < l) {
                        stats.decreases.push((before, v));
                    }
                    last = Some(v);
                }
                None => stats.fail("200 without widgets_processed_total".to_owned()),
            },
            Ok(r) => stats.fail(format!("status {}", r.status)),
            Err(e) => {
                stats.fail(if first {
                    format!("first request on a connection: {e}")
                } else {
                    e
                });
                stats.connects += c.connects;
                conn = None;
            }
        }
        sleep_until(at + every);
    }
    stats.connects += conn.map_or(0, |c| c.connects);
    stats
}

// ---------------------------------------------------------------------------------------
// Loop lateness

/// Every `lateness_us` of the exporter's `msg="widget event"` debug lines, in log order.
pub fn lateness_us(log: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains("msg=\"widget event\""))
        .filter_map(|l| support::field(l, "lateness_us")?.parse().ok())
        .collect()
}

/// The peak lateness of each stall: a run of events later than `threshold_us`, ended by an
/// event on time (a stalled loop replays the missed events with falling lateness).
pub fn stalls(lateness: &[u64], threshold_us: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut current: Option<u64> = None;
    for &l in lateness {
        if l > threshold_us {
            current = Some(current.map_or(l, |c| c.max(l)));
        } else if let Some(c) = current.take() {
            out.push(c);
        }
    }
    out.extend(current);
    out
}

/// The log without the per-event and per-request debug lines, last `n` lines: what to show
/// when a case fails.
pub fn log_tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.contains("msg=\"widget event\"") && !l.contains("level=debug msg=request"))
        .collect();
    crate::support::tail(&lines.join("\n"), n)
}

// ---------------------------------------------------------------------------------------
// The single-request killers

/// One hostile request, sent on `copies` fresh connections that are then held open.
#[derive(Debug, Clone)]
pub struct Killer {
    /// Short name (also the test's name).
    pub name: &'static str,
    /// What it is.
    pub what: &'static str,
    /// The bytes sent.
    pub payload: Vec<u8>,
    /// How many connections send it.
    pub copies: usize,
}

const GET: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: attacker\r\n";

/// The single-request killers: on tiny_http 0.12 each kills, stalls or leaks a loop shaped
/// like ours unless the exporter contains it (measured).
pub fn killers() -> Vec<Killer> {
    let get = |extra: &[u8]| [GET, extra].concat();
    let mut big_header = GET.to_vec();
    big_header.extend_from_slice(b"X-Big: ");
    big_header.resize(big_header.len() + 100 * 1024, b'a');
    big_header.extend_from_slice(b"\r\n\r\n");
    let mut tls = vec![
        0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
    ];
    tls.resize(tls.len() + 40, 0);
    let one = |name, what, payload| Killer {
        name,
        what,
        payload,
        copies: 1,
    };
    vec![
        one(
            "cl_100g",
            "GET, Content-Length 100000000000, body never sent",
            get(b"Content-Length: 100000000000\r\n\r\n"),
        ),
        one(
            "cl_u64_max",
            "GET, Content-Length 18446744073709551615, body never sent",
            get(b"Content-Length: 18446744073709551615\r\n\r\n"),
        ),
        one(
            "cl_100k_held",
            "GET, Content-Length 100000, body held back",
            get(b"Content-Length: 100000\r\n\r\n"),
        ),
        one(
            "expect_100_continue",
            "GET, Expect: 100-continue, Content-Length 10, body held back",
            get(b"Content-Length: 10\r\nExpect: 100-continue\r\n\r\n"),
        ),
        Killer {
            name: "http2_version_x50",
            what: "GET /metrics HTTP/2.0 on 50 connections",
            payload: b"GET /metrics HTTP/2.0\r\nHost: attacker\r\n\r\n".to_vec(),
            copies: 50,
        },
        one(
            "h2_preface",
            "HTTP/2 prior-knowledge preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        one("tls_client_hello", "TLS ClientHello bytes", tls),
        one(
            "bare_lf",
            "request with LF-only line endings",
            b"GET /metrics HTTP/1.1\nHost: attacker\n\n".to_vec(),
        ),
        one(
            "non_ascii_header",
            "non-ASCII header value",
            get(b"X-Bin: \xff\xfe\r\n\r\n"),
        ),
        one("header_line_100k", "one 100 KiB header line", big_header),
    ]
}

/// The killer called `name`.
pub fn killer(name: &str) -> Killer {
    killers()
        .into_iter()
        .find(|k| k.name == name)
        .unwrap_or_else(|| panic!("no killer named {name}"))
}

/// Sends `k` on its connections and keeps them; the errors met on the way.
pub fn send(addr: SocketAddr, k: &Killer) -> (Vec<TcpStream>, Vec<String>) {
    let (mut conns, mut errors) = (Vec::new(), Vec::new());
    for _ in 0..k.copies {
        match support::connect(addr, Duration::from_secs(2)) {
            Ok(mut s) => {
                let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
                if let Err(e) = s.write_all(&k.payload) {
                    errors.push(format!("send: {e}"));
                }
                conns.push(s);
            }
            Err(e) => errors.push(e),
        }
    }
    errors.dedup();
    (conns, errors)
}

/// What came back on a held connection so far, without waiting: the status line, `closed`,
/// `reset` or `silent` (nothing, still open).
pub fn reply_of(s: &mut TcpStream) -> String {
    if s.set_nonblocking(true).is_err() {
        return "unknown".to_owned();
    }
    let mut buf = vec![0u8; 65536];
    match s.read(&mut buf) {
        Ok(0) => "closed".to_owned(),
        Ok(n) => {
            let text = String::from_utf8_lossy(&buf[..n]);
            let first = text.lines().next().unwrap_or("").trim();
            if first.starts_with("HTTP/") {
                first.to_owned()
            } else {
                format!("{n} bytes")
            }
        }
        Err(e) if e.kind() == ErrorKind::WouldBlock => "silent".to_owned(),
        Err(e) => format!("{:?}", e.kind()),
    }
}

/// [`reply_of`] for every connection, counted: `HTTP/1.1 400 Bad Request x1, silent x49`.
pub fn replies(conns: &mut [TcpStream]) -> String {
    let mut counts = BTreeMap::new();
    for s in conns.iter_mut() {
        *counts.entry(reply_of(s)).or_insert(0) += 1;
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k} x{n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
