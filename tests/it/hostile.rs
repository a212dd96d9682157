//! The reliability bars (the README's "Security and limits"), against the real binary: single
//! requests that kill, stall or leak a loop like ours on tiny_http 0.12, a pipelining client
//! that never reads, connection floods and a header bomb (heavy: `--include-ignored`), and
//! low fd and thread limits. Each case starts the exporter with fast widgets and debug
//! logging, scrapes it on fresh connections every 250 ms with a 1 s timeout (a Prometheus
//! server's view) while it attacks, and checks its bars; every case prints one
//! `hostile CASE PASS|FAIL: …` line with its numbers, then fails with every missed bar and the
//! log's tail. `WIDGET_EXPORTER_BIN=target/release/widget-exporter` attacks the release build.
//!
//! Loopback only; every attack is bounded in connections, bytes and seconds.

use std::ffi::OsString;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::PoisonError;
use std::thread;
use std::time::{Duration, Instant};

use crate::attack;
use crate::attack::{
    command, peak, sleep_until, stalls, usage, Clock, Monitor, Scrape, Scraper, Usage, Verdict,
    RESTART_MSG,
};
use crate::support;
use crate::support::{say, Exporter};

const SCRAPE_EVERY: Duration = Duration::from_millis(250);
/// How long a killer's connections are held open before the attacker leaves.
const HOLD: Duration = Duration::from_secs(3);
/// The loop is never more than this late: a second is a scrape timeout's worth.
const MAX_LATENESS_US: u64 = 1_000_000;
/// After the attacker leaves, threads and fds return to the baseline plus this, within
/// [`RECOVERY`] (the scraper's own connection and tiny_http's idle workers need some slack).
const THREAD_SLACK: u64 = 4;
const FD_SLACK: u64 = 8;
const RECOVERY: Duration = Duration::from_secs(15);

/// Fast widgets and debug logging, which carries one `msg="widget event" lateness_us=N` line
/// per widget event.
fn watched_flags() -> Vec<&'static str> {
    support::fast(&["--log.level=debug"])
}

/// The exporter and the baseline of its usage once settled.
fn start(cmd: &mut Command) -> (Exporter, Usage) {
    let e = Exporter::start_with(cmd);
    thread::sleep(Duration::from_millis(500));
    let base = usage(e.child.id()).unwrap_or_else(|| {
        panic!(
            "exporter gone right after start; log:\n{}",
            attack::log_tail(&e.log(), 30)
        )
    });
    (e, base)
}

/// Whether the child has exited, and how.
fn exited(e: &mut Exporter) -> Option<ExitStatus> {
    e.child.try_wait().ok().flatten()
}

fn ms(d: Duration) -> u128 {
    d.as_millis()
}

/// Facts and bars every case shares: still the same process, how scrapes went, lateness.
fn common(v: &mut Verdict, e: &mut Exporter, log: &str, scrapes: &[&Scrape], all_ok: bool) {
    let status = exited(e);
    let restarts = log.matches(RESTART_MSG).count();
    v.fact(format!(
        "pid {} {} restarts_in_place={restarts}",
        e.child.id(),
        status.map_or_else(|| "alive".to_owned(), |s| format!("EXITED ({s})"))
    ));
    v.check(status.is_none(), || {
        format!("process alive: it exited with {status:?}")
    });
    let (ok, total, slowest, errors) = attack::tally(scrapes);
    v.fact(format!(
        "scrapes {}",
        attack::tally_line(ok, total, slowest, &errors)
    ));
    if all_ok {
        v.check(total > 0 && ok == total, || {
            format!("every normal scrape answered: {ok}/{total} ({errors:?})")
        });
    }
}

/// Records the loop lateness; `Some(bar)` asserts the maximum stays under it, plus the
/// worst stall of the whole machine in the same period (`machine`, seen by [`attack::Clock`]):
/// the bar is on the exporter's loop, not on the host's scheduler.
fn lateness(v: &mut Verdict, log: &str, bar_us: Option<u64>, machine: Duration) -> Vec<u64> {
    let late = attack::lateness_us(log);
    let max = late.iter().copied().max();
    match max {
        Some(max) => v.fact(format!(
            "max lateness {:.1} ms over {} steps (machine stall {} ms)",
            max as f64 / 1e3,
            late.len(),
            ms(machine)
        )),
        None => v.fact("lateness NOT LOGGED".to_owned()),
    }
    if let Some(bar) = bar_us {
        let allowed = bar + machine.as_micros() as u64;
        v.check(max.is_some(), || {
            "loop lateness measurable: no `msg=\"widget event\" lateness_us=N` debug lines"
                .to_owned()
        });
        v.check(max.is_none_or(|m| m < allowed), || {
            format!(
                "loop lateness < {} ms (+{} ms the machine stalled): max {} ms",
                bar / 1000,
                ms(machine),
                max.unwrap_or(0) / 1000
            )
        });
    }
    late
}

// ---------------------------------------------------------------------------------------
// Single-request killers

macro_rules! killer_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                killer_case(stringify!($name));
            }
        )*
    };
}

killer_tests!(
    cl_100g,
    cl_u64_max,
    cl_100k_held,
    expect_100_continue,
    http2_version_x50,
    h2_preface,
    tls_client_hello,
    bare_lf,
    non_ascii_header,
    header_line_100k,
);

/// An exporter with fast widgets, scraped and sampled from the start, settled for 750 ms.
struct Watched {
    e: Exporter,
    base: Usage,
    pid: u32,
    scraping: Scraper,
    monitor: Monitor,
    clock: Clock,
}

fn watched(sample_every: Duration) -> Watched {
    let (e, base) = start(&mut command(&[], &watched_flags()));
    let pid = e.child.id();
    let scraping = Scraper::start(e.addr, SCRAPE_EVERY);
    let monitor = Monitor::start(pid, sample_every);
    let clock = Clock::start();
    thread::sleep(Duration::from_millis(750));
    Watched {
        e,
        base,
        pid,
        scraping,
        monitor,
        clock,
    }
}

/// What was watched once the attack is over.
struct Watch {
    e: Exporter,
    base: Usage,
    /// How long after the attack `back` held, or `None` when it did not in time.
    recovered: Option<Duration>,
    /// Usage a second after the attack (`None`: the process is gone).
    end: Option<Usage>,
    scrapes: Vec<Scrape>,
    samples: Vec<(Instant, Usage)>,
    machine: Duration,
    log: String,
}

impl Watched {
    /// Polls the usage every 100 ms, up to `within`, until `back` holds for it; scrapes go on
    /// for a second after `over_at` (when the attacker stopped or left) whatever the recovery
    /// did; then collects everything.
    fn after(self, over_at: Instant, within: Duration, back: impl Fn(Usage) -> bool) -> Watch {
        let pid = self.pid;
        let recovered = support::poll_until(within, Duration::from_millis(100), || {
            usage(pid).is_some_and(&back)
        });
        sleep_until(over_at + Duration::from_secs(1));
        let end = usage(pid);
        Watch {
            recovered,
            end,
            scrapes: self.scraping.finish(),
            samples: self.monitor.finish(),
            machine: self.clock.finish(),
            log: self.e.log(),
            e: self.e,
            base: self.base,
        }
    }
}

/// A single hostile request: process alive (same PID), every normal scrape answered, loop lateness
/// < 1 s, and threads/fds back to the baseline within 15 s of the attacker leaving.
fn killer_case(name: &str) {
    let _shared = support::machine_shared();
    let k = attack::killer(name);
    let watching = watched(Duration::from_millis(100));
    let base = watching.base;

    let attack_at = Instant::now();
    let (mut conns, send_errors) = attack::send(watching.e.addr, &k);
    sleep_until(attack_at + HOLD);
    let reply = attack::replies(&mut conns);
    drop(conns);
    let Watch {
        mut e,
        recovered,
        end,
        scrapes,
        samples,
        machine,
        log,
        ..
    } = watching.after(Instant::now(), RECOVERY, |u| {
        u.threads <= base.threads + THREAD_SLACK && u.fds <= base.fds + FD_SLACK
    });

    let mut v = Verdict::new(format!("hostile {name}"));
    v.fact(format!("{} ({} conn)", k.what, k.copies));
    v.fact(format!(
        "reply: {reply}{}",
        if send_errors.is_empty() {
            String::new()
        } else {
            format!(" (attacker: {})", send_errors.join(" | "))
        }
    ));
    let all: Vec<&Scrape> = scrapes.iter().collect();
    common(&mut v, &mut e, &log, &all, true);
    lateness(&mut v, &log, Some(MAX_LATENESS_US), machine);
    let top = peak(&samples, attack_at, Instant::now()).unwrap_or_default();
    v.fact(format!(
        "threads {}→{}→{} fds {}→{}→{}",
        base.threads,
        top.threads,
        end.map_or(0, |u| u.threads),
        base.fds,
        top.fds,
        end.map_or(0, |u| u.fds)
    ));
    v.fact(match recovered {
        Some(d) => format!("recovered {:.1} s after the attacker left", d.as_secs_f64()),
        None => "NOT recovered".to_owned(),
    });
    v.check(recovered.is_some(), || {
        format!(
            "no leak: threads ≤ {} and fds ≤ {} within {} s of the attacker leaving; now {}",
            base.threads + THREAD_SLACK,
            base.fds + FD_SLACK,
            RECOVERY.as_secs(),
            end.map_or_else(|| "gone".to_owned(), |u| u.to_string())
        )
    });
    v.finish(&log);
}

// ---------------------------------------------------------------------------------------
// A restart in place costs no scrape

/// One request announcing a body over 16 MiB (answered 400, then
/// deliberately leaked: see the README's threat table) makes the exporter restart in place
/// about 10 s later. The drain before the exec must cost no request of a kept-alive scraper
/// (every 100 ms) nor of the fresh-connection scraper, and the counters go on from where
/// they were.
#[test]
fn a_restart_in_place_costs_no_scrape() {
    let _shared = support::machine_shared();
    let (mut e, _base) = start(&mut command(&[], &watched_flags()));
    let scraping = Scraper::start(e.addr, SCRAPE_EVERY);
    let (mut conns, _) = attack::send(e.addr, &attack::killer("cl_100g"));
    thread::sleep(Duration::from_millis(300));
    let reply = attack::replies(&mut conns);
    let log = std::sync::Arc::clone(&e.log);
    let deadline = Instant::now() + Duration::from_secs(25);
    let restarted_at = std::sync::Mutex::new(None);
    let seen = attack::kept_alive(e.addr, Duration::from_millis(100), || {
        let mut at = restarted_at.lock().unwrap_or_else(PoisonError::into_inner);
        if at.is_none()
            && log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(RESTART_MSG)
        {
            *at = Some(Instant::now());
        }
        // Scrape on for 2 s after the restart.
        at.is_some_and(|t| t.elapsed() >= Duration::from_secs(2)) || Instant::now() >= deadline
    });
    drop(conns);
    let scrapes = scraping.finish();
    let log = e.log();

    let mut v = Verdict::new("hostile a_restart_in_place_costs_no_scrape".to_owned());
    v.fact(format!("killer reply: {reply}"));
    let all: Vec<&Scrape> = scrapes.iter().collect();
    common(&mut v, &mut e, &log, &all, true);
    let restarts = log.matches(RESTART_MSG).count();
    let drained = log
        .lines()
        .find(|l| l.contains(RESTART_MSG))
        .and_then(|l| support::field(l, "drained_ms"));
    // With no failure, every connection after the first followed a `Connection: close`.
    let reconnects = seen.connects.saturating_sub(1);
    v.fact(format!(
        "kept-alive: {} answered, {} failed, {reconnects} reconnect(s) after Connection: close, {} counter decreases; drain took {} ms",
        seen.ok,
        seen.failed,
        seen.decreases.len(),
        drained.as_deref().unwrap_or("?")
    ));
    v.check(reply.contains("400"), || {
        format!("the killer is answered 400: {reply}")
    });
    v.check(restarts >= 1, || {
        "the leaked request leads to a restart in place".to_owned()
    });
    v.check(seen.failed == 0, || {
        format!(
            "no kept-alive request failed across the restart: {:?}",
            seen.errors
        )
    });
    v.check(reconnects >= 1, || {
        "the drain told the kept-alive client to close (Connection: close)".to_owned()
    });
    v.check(seen.decreases.is_empty(), || {
        format!(
            "counters carried across the restart: decreases {:?}",
            seen.decreases
        )
    });
    v.check(
        log.contains("reason=\"1 connection stuck inside tiny_http\""),
        || "the restart names one stuck connection, not its two descriptors".to_owned(),
    );
    v.finish(&log);
}

// ---------------------------------------------------------------------------------------
// Pipelining client that never reads

/// What the never-reading client saw.
struct Pipelined {
    requests_sent: usize,
    write_error: Option<String>,
    /// How the connection looked when the client finally read: `Ok(description)` when it
    /// was cut (EOF or reset), `Err(description)` when it was still open.
    cut: Result<String, String>,
}

/// Writes `requests` pipelined GETs without reading for `hold`, then reads until the
/// connection ends or 5 s pass.
fn pipeline(addr: SocketAddr, requests: usize, hold: Duration) -> Pipelined {
    const REQUEST: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: victim\r\n\r\n";
    let end = Instant::now() + hold;
    let mut s = support::connect(addr, Duration::from_secs(2)).expect("connect");
    s.set_write_timeout(Some(Duration::from_millis(250)))
        .expect("write timeout");
    let data = REQUEST.repeat(requests);
    let (mut off, mut write_error) = (0, None);
    while off < data.len() && Instant::now() < end {
        match s.write(&data[off..data.len().min(off + 65536)]) {
            Ok(n) => off += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                write_error = Some(e.to_string());
                break;
            }
        }
    }
    sleep_until(end);
    s.set_read_timeout(Some(Duration::from_millis(250)))
        .expect("read timeout");
    let read_end = Instant::now() + Duration::from_secs(5);
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 16];
    let cut = loop {
        if Instant::now() >= read_end {
            break Err(format!("still open after reading {got} bytes for 5 s"));
        }
        match s.read(&mut buf) {
            Ok(0) => break Ok(format!("EOF after {got} buffered bytes")),
            Ok(n) => got += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break Ok(format!("{:?} after {got} bytes", e.kind())),
        }
    };
    Pipelined {
        requests_sent: off / REQUEST.len(),
        write_error,
        cut,
    }
}

/// A client that pipelines without reading: at most one stall, of at most 0.5 s (seen in the lateness log and in
/// scrape latencies), then that connection is cut; scrapes keep succeeding.
#[test]
fn pipelining_client_that_never_reads() {
    /// A loop event this late, or a scrape this slow, is part of a stall.
    const STALL_US: u64 = 100_000;
    const SLOW_SCRAPE: Duration = Duration::from_millis(200);
    const MAX_STALL_US: u64 = 500_000;
    let _shared = support::machine_shared();
    let (mut e, _base) = start(&mut command(&[], &watched_flags()));
    let scraping = Scraper::start(e.addr, SCRAPE_EVERY);
    let clock = Clock::start();
    thread::sleep(Duration::from_millis(750));
    let addr = e.addr;
    let attacker = thread::spawn(move || pipeline(addr, 20_000, Duration::from_secs(10)));
    let p = attacker.join().expect("attacker thread");
    thread::sleep(Duration::from_secs(1));
    let scrapes = scraping.finish();
    let machine = clock.finish();
    let log = e.log();

    let mut v = Verdict::new("hostile pipelining_client_that_never_reads".to_owned());
    v.fact(format!(
        "sent {} of 20000 pipelined GETs in 10 s{}",
        p.requests_sent,
        p.write_error
            .as_ref()
            .map_or_else(String::new, |w| format!(" (write failed: {w})"))
    ));
    let all: Vec<&Scrape> = scrapes.iter().collect();
    common(&mut v, &mut e, &log, &all, true);
    let late = lateness(&mut v, &log, Some(MAX_STALL_US + 1), machine);
    // A machine-wide stall is not the loop's: raise the threshold by it.
    let loop_stalls = stalls(&late, STALL_US + machine.as_micros() as u64);
    // Slow scrapes less than a second apart belong to the same stall.
    let mut scrape_stalls: Vec<(Instant, Duration)> = Vec::new();
    for s in scrapes.iter().filter(|s| s.took > SLOW_SCRAPE + machine) {
        match scrape_stalls.last_mut() {
            Some((last, worst)) if s.at.duration_since(*last) < Duration::from_secs(1) => {
                *last = s.at;
                *worst = (*worst).max(s.took);
            }
            _ => scrape_stalls.push((s.at, s.took)),
        }
    }
    v.fact(format!(
        "loop stalls > 100 ms: {:?} ms; scrape stalls > 200 ms: {:?} ms",
        loop_stalls.iter().map(|l| l / 1000).collect::<Vec<_>>(),
        scrape_stalls
            .iter()
            .map(|(_, d)| ms(*d))
            .collect::<Vec<_>>()
    ));
    v.check(loop_stalls.len() <= 1, || {
        format!(
            "at most one loop stall: {} (lateness > 100 ms)",
            loop_stalls.len()
        )
    });
    v.check(scrape_stalls.len() <= 1, || {
        format!(
            "at most one scrape stall: {} (scrapes > 200 ms)",
            scrape_stalls.len()
        )
    });
    let worst_scrape = scrape_stalls.iter().map(|(_, d)| *d).max();
    v.check(
        worst_scrape
            .is_none_or(|d| d <= Duration::from_micros(MAX_STALL_US) + SLOW_SCRAPE + machine),
        || {
            format!(
                "the stall ≤ 0.5 s as scrapes see it (+200 ms for the scrape): {} ms",
                worst_scrape.map_or(0, ms)
            )
        },
    );
    v.fact(match &p.cut {
        Ok(how) => format!("connection cut ({how})"),
        Err(how) => format!("connection NOT cut ({how})"),
    });
    v.check(p.cut.is_ok(), || {
        format!(
            "the never-reading connection is cut: {}",
            p.cut.as_ref().unwrap_err()
        )
    });
    v.finish(&log);
}

// ---------------------------------------------------------------------------------------
// Floods and the header bomb (heavy)

/// How long each flood lasts.
const FLOOD: Duration = Duration::from_secs(20);
/// After the attacker stops, RSS and threads come under these within [`HEAVY_RECOVERY`].
const RSS_AFTER_KIB: u64 = 10 * 1024;
const THREADS_AFTER: u64 = 20;
const HEAVY_RECOVERY: Duration = Duration::from_secs(10);

/// A flood or a bomb: scrapes ≥ 95 % successful during the attack; RSS < 10 MiB and threads
/// < 20 within 10 s after the attacker stops; peak RSS under the printed unit's `MemoryMax=`.
fn heavy_case(name: &str, attack: impl FnOnce(SocketAddr) -> String) {
    let _alone = support::machine_alone();
    let watching = watched(Duration::from_millis(50));
    let attack_at = Instant::now();
    let what = attack(watching.e.addr);
    let stopped_at = Instant::now();
    let Watch {
        mut e,
        base,
        recovered,
        end,
        scrapes,
        samples,
        machine,
        log,
    } = watching.after(stopped_at, HEAVY_RECOVERY, |u| {
        u.rss_kib < RSS_AFTER_KIB && u.threads < THREADS_AFTER
    });

    let mut v = Verdict::new(format!("hostile {name}"));
    v.fact(what);
    let during: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| s.at >= attack_at && s.at <= stopped_at)
        .collect();
    common(&mut v, &mut e, &log, &during, false);
    let (ok, total, _, errors) = attack::tally(&during);
    v.check(total > 0 && ok * 100 >= total * 95, || {
        format!("scrapes ≥ 95 % successful during the attack: {ok}/{total} ({errors:?})")
    });
    let after: Vec<&Scrape> = scrapes.iter().filter(|s| s.at > stopped_at).collect();
    let (ok_after, total_after, _, _) = attack::tally(&after);
    v.fact(format!("after the attack {ok_after}/{total_after} ok"));
    lateness(&mut v, &log, None, machine);
    let top = peak(&samples, attack_at, Instant::now());
    v.fact(format!(
        "baseline {base}; PEAK {}; end {}",
        top.map_or_else(|| "not sampled".to_owned(), |u| u.to_string()),
        end.map_or_else(|| "gone".to_owned(), |u| u.to_string())
    ));
    v.fact(match recovered {
        Some(d) => format!("under 10 MiB/20 threads {:.1} s after", d.as_secs_f64()),
        None => "NOT back under 10 MiB/20 threads".to_owned(),
    });
    v.check(recovered.is_some(), || {
        format!(
            "RSS < 10 MiB and threads < 20 within 10 s of the attacker stopping: {}",
            end.map_or_else(|| "gone".to_owned(), |u| u.to_string())
        )
    });
    let cap = memory_max_kib();
    v.check(
        cap.is_some_and(|cap| top.is_some_and(|top| top.rss_kib < cap)),
        || match (cap, top) {
            (None, _) => {
                "the printed unit's MemoryMax= bounds the peak RSS: --print-systemd-unit has no MemoryMax= in K, M or G".to_owned()
            }
            (Some(_), None) => "peak RSS under the unit's MemoryMax=: no usage sample during the attack".to_owned(),
            (Some(cap), Some(top)) => format!(
                "peak RSS under the unit's MemoryMax= ({} MiB): {:.1} MiB",
                cap / 1024,
                top.rss_kib as f64 / 1024.0
            ),
        },
    );
    v.finish(&log);
}

/// `MemoryMax=` of the printed modern unit, in KiB: the cap systemd enforces, so the
/// exporter's own guards must keep RSS under it.
fn memory_max_kib() -> Option<u64> {
    let out = Command::new(support::binary())
        .arg("--print-systemd-unit")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let value = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("MemoryMax="))?
        .trim();
    let (digits, unit) = value.split_at(value.find(|c: char| !c.is_ascii_digit())?);
    let n: u64 = digits.parse().ok()?;
    match unit {
        "K" => Some(n),
        "M" => Some(n << 10),
        "G" => Some(n << 20),
        _ => None,
    }
}

/// Our own soft open-files limit, raised to the hard one with `prlimit` when it is lower
/// than `need` (std cannot call setrlimit).
fn own_nofile(need: u64) -> u64 {
    fn read() -> (u64, u64) {
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let nums: Vec<u64> = limits
            .lines()
            .find(|l| l.starts_with("Max open files"))
            .map(|l| {
                l.split_whitespace()
                    .filter_map(|w| w.parse().ok())
                    .collect()
            })
            .unwrap_or_default();
        (
            nums.first().copied().unwrap_or(1024),
            nums.get(1).copied().unwrap_or(1024),
        )
    }
    let (soft, hard) = read();
    if soft >= need {
        return soft;
    }
    if let Some(prlimit) = support::tool("prlimit") {
        let _ = Command::new(prlimit)
            .arg(format!("--pid={}", std::process::id()))
            .arg(format!("--nofile={hard}:{hard}"))
            .status();
    }
    read().0
}

/// Opens connections to `addr` until `n` are open or `deadline`; (connections, failures).
fn open_many(
    addr: SocketAddr,
    n: usize,
    deadline: Instant,
    timeout: Duration,
) -> (Vec<TcpStream>, usize) {
    let (mut conns, mut failed) = (Vec::with_capacity(n), 0);
    while conns.len() < n && Instant::now() < deadline {
        if let Ok(s) = support::connect(addr, timeout) {
            conns.push(s);
        } else {
            // A refusal is instant: pace the retries instead of spinning.
            failed += 1;
            thread::sleep(Duration::from_millis(5));
        }
    }
    (conns, failed)
}

/// Whether the peer closed (or reset) `s`, without waiting.
fn closed_by_peer(s: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    let _ = s.set_nonblocking(true);
    match s.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => e.kind() != ErrorKind::WouldBlock,
    }
}

/// N connections that start a request and send one more header byte every `every`,
/// re-opening the ones the server drops, for [`FLOOD`].
fn slowloris(addr: SocketAddr, n: usize, every: Duration) -> String {
    const START: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: victim\r\nX-Slow: ";
    let end = Instant::now() + FLOOD;
    let open = || -> Option<TcpStream> {
        let mut s = support::connect(addr, Duration::from_millis(500)).ok()?;
        s.set_write_timeout(Some(Duration::from_millis(500))).ok()?;
        s.write_all(START).ok()?;
        s.set_nonblocking(true).ok()?;
        Some(s)
    };
    let (mut socks, mut failed, mut dropped, mut reopened) = (Vec::new(), 0, 0, 0);
    // At most 500 new connections a second, like the script.
    while socks.len() < n && Instant::now() < end {
        let burst = Instant::now();
        for _ in 0..(n - socks.len()).min(500) {
            match open() {
                Some(s) => socks.push(s),
                None => failed += 1,
            }
        }
        if socks.len() < n {
            sleep_until(burst + Duration::from_secs(1));
        }
    }
    let opened = socks.len();
    while Instant::now() < end {
        sleep_until((Instant::now() + every).min(end));
        let mut alive = Vec::with_capacity(socks.len());
        for mut s in socks {
            if !closed_by_peer(&s) && s.write(b"a").is_ok() {
                alive.push(s);
                continue;
            }
            dropped += 1;
            if Instant::now() < end {
                if let Some(s) = open() {
                    alive.push(s);
                    reopened += 1;
                }
            }
        }
        socks = alive;
    }
    format!(
        "slowloris: {opened} of {n} opened ({failed} failed), {dropped} dropped by the server, {reopened} re-opened, {} alive at the end",
        socks.len()
    )
}

#[test]
#[ignore = "heavy: run by .ci/run with --include-ignored"]
fn slowloris_1000_connections() {
    own_nofile(1300);
    heavy_case("slowloris_1000_connections", |addr| {
        slowloris(addr, 1000, Duration::from_secs(3))
    });
}

#[test]
#[ignore = "heavy: run by .ci/run with --include-ignored"]
fn idle_3000_connections() {
    let want: usize = 3000;
    let soft = own_nofile(want as u64 + 300);
    let n = want.min(usize::try_from(soft.saturating_sub(300)).unwrap_or(want));
    if n < want {
        say(&format!(
            "idle_3000_connections: our open-files limit is {soft}; flooding with {n} connections only"
        ));
    }
    heavy_case("idle_3000_connections", |addr| {
        let end = Instant::now() + FLOOD;
        let (conns, failed) = open_many(
            addr,
            n,
            Instant::now() + Duration::from_secs(10),
            Duration::from_millis(500),
        );
        sleep_until(end);
        let closed = conns.iter().filter(|s| closed_by_peer(s)).count();
        format!(
            "idle flood: {} of {n} opened ({failed} failed), {closed} closed by the server after {} s",
            conns.len(),
            FLOOD.as_secs()
        )
    });
}

#[test]
#[ignore = "heavy: run by .ci/run with --include-ignored"]
fn header_line_200mb_unterminated() {
    heavy_case("header_line_200mb_unterminated", |addr| {
        const TOTAL: usize = 200 << 20;
        let end = Instant::now() + FLOOD;
        let mut s = support::connect(addr, Duration::from_secs(2)).expect("connect");
        s.set_write_timeout(Some(Duration::from_secs(2)))
            .expect("write timeout");
        let chunk = vec![b'a'; 1 << 16];
        let mut sent = 0;
        let mut stopped = s
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: victim\r\nX-Bomb: ")
            .err();
        while stopped.is_none() && sent < TOTAL && Instant::now() < end {
            match s.write(&chunk[..chunk.len().min(TOTAL - sent)]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => stopped = Some(e),
            }
        }
        let took = FLOOD.saturating_sub(end.saturating_duration_since(Instant::now()));
        // Hold the connection a little, as a real bomb would, then leave.
        sleep_until((Instant::now() + Duration::from_secs(3)).min(end));
        let how = match stopped {
            None => String::new(),
            Some(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                ", then the server stopped reading".to_owned()
            }
            Some(e) => format!(", then the server cut it ({e})"),
        };
        format!(
            "header bomb: {:.1} MB of one header line sent in {:.1} s{how}{}",
            sent as f64 / 1e6,
            took.as_secs_f64(),
            if closed_by_peer(&s) {
                "; closed by the server"
            } else {
                "; still open when the attacker left"
            }
        )
    });
}

// ---------------------------------------------------------------------------------------
// Low limits: never a silent outage

/// Under a low limit and a flood of 400 idle connections, either every
/// scrape keeps succeeding (and the process lives), or the process exits non-zero within
/// 10 s of the first failed scrape. A process that lives on deaf, or exits 0, fails.
fn limited_flood(case: &str, cmd: &mut Command) {
    const FLOOD_CONNS: usize = 400;
    const OUTAGE_LIMIT: Duration = Duration::from_secs(10);
    let (mut e, base) = start(cmd);
    let pid = e.child.id();
    let scraping = Scraper::start(e.addr, SCRAPE_EVERY);
    thread::sleep(Duration::from_secs(1));
    let flood_at = Instant::now();
    let (conns, failed) = open_many(
        e.addr,
        FLOOD_CONNS,
        flood_at + Duration::from_secs(5),
        Duration::from_millis(200),
    );
    let opened = conns.len();
    // Watch 12 s after the flood, longer if a scrape failed late: its 10 s must be seen.
    let mut exit: Option<(Instant, ExitStatus)> = None;
    let hard_end = flood_at + Duration::from_secs(25);
    loop {
        if let Ok(Some(status)) = e.child.try_wait() {
            exit = Some((Instant::now(), status));
            break;
        }
        let first_fail = scraping
            .snapshot()
            .iter()
            .find(|s| s.result.is_err())
            .map(|s| s.at);
        let until = first_fail.map_or(flood_at + Duration::from_secs(12), |f| {
            (f + OUTAGE_LIMIT + Duration::from_millis(500)).max(flood_at + Duration::from_secs(12))
        });
        if Instant::now() >= until.min(hard_end) {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    let peak_usage = usage(pid);
    drop(conns);
    let scrapes = scraping.finish();
    let log = e.log();

    let mut v = Verdict::new(format!("hostile {case}"));
    v.fact(format!(
        "baseline {base}; flood {opened} of {FLOOD_CONNS} connections opened ({failed} failed)"
    ));
    if let Some(u) = peak_usage {
        v.fact(format!("under flood {u}"));
    }
    // Scrapes that began after the exit say nothing about a silent outage.
    let relevant: Vec<&Scrape> = scrapes
        .iter()
        .filter(|s| exit.is_none_or(|(t, _)| s.at < t))
        .collect();
    let (ok, total, slowest, errors) = attack::tally(&relevant);
    v.fact(format!(
        "scrapes while it ran {}",
        attack::tally_line(ok, total, slowest, &errors)
    ));
    let first_fail = relevant.iter().find(|s| s.result.is_err()).map(|s| s.at);
    let kept_serving = exit.is_none() && total > 0 && ok == total;
    let exited_loudly = exit.is_some_and(|(t, status)| {
        let outage_from = first_fail.unwrap_or(t);
        !status.success() && t.saturating_duration_since(outage_from) <= OUTAGE_LIMIT
    });
    v.fact(match exit {
        None => "still running".to_owned(),
        Some((t, status)) => format!(
            "exited {status} {:.1} s after the flood began, {:.1} s after the first failed scrape",
            t.duration_since(flood_at).as_secs_f64(),
            first_fail.map_or(0.0, |f| t.saturating_duration_since(f).as_secs_f64())
        ),
    });
    v.fact(
        match (kept_serving, exited_loudly) {
            (true, _) => "OUTCOME kept serving",
            (_, true) => "OUTCOME exited non-zero in time",
            _ => "OUTCOME SILENT OUTAGE",
        }
        .to_owned(),
    );
    // The two outcomes exclude each other (one needs the process alive, the other exited).
    v.check(kept_serving ^ exited_loudly, || {
        format!(
            "either every scrape succeeds, or a non-zero exit within {} s of the first failure: {ok}/{total} scrapes ok, exit {:?}",
            OUTAGE_LIMIT.as_secs(),
            exit.map(|(_, s)| s)
        )
    });
    v.finish(&log);
}

#[test]
fn fd_limit_128_then_flood() {
    let Some(prlimit) = support::require_tool("prlimit") else {
        return;
    };
    let _alone = support::machine_alone();
    let wrapper = [prlimit.into_os_string(), OsString::from("--nofile=128:128")];
    limited_flood(
        "fd_limit_128_then_flood",
        &mut command(&wrapper, &watched_flags()),
    );
}

/// A pids cgroup of our own (v1 `pids` hierarchy or cgroup v2), removed when dropped.
/// `prlimit --nproc` does not limit root, so the thread limit comes from the pids controller.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    /// The group, or why none could be made (every place tried).
    fn create(max: u64) -> Result<PidsCgroup, String> {
        let name = format!("widget-exporter-test-{}", std::process::id());
        let mut why = Vec::new();
        for root in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup"] {
            let root = Path::new(root);
            if !root.join("cgroup.procs").exists() {
                why.push(format!("{}: not a cgroup hierarchy", root.display()));
                continue;
            }
            let dir = root.join(&name);
            if let Err(e) = std::fs::create_dir(&dir) {
                why.push(format!("{}: {e}", dir.display()));
                continue;
            }
            let cg = PidsCgroup(dir);
            match std::fs::write(cg.0.join("pids.max"), max.to_string()) {
                Ok(()) => return Ok(cg),
                Err(e) => why.push(format!("{}/pids.max: {e}", cg.0.display())),
            }
        }
        Err(why.join("; "))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // The exporter is dead by now, but the kernel may release the group a moment later.
        let removed =
            support::poll_until(Duration::from_secs(2), Duration::from_millis(50), || {
                std::fs::remove_dir(&self.0).is_ok() || !self.0.exists()
            });
        if removed.is_none() {
            say(&format!("could not remove cgroup {}", self.0.display()));
        }
    }
}

#[test]
fn thread_limit_then_flood() {
    // Eight threads at rest (main, accept, signals, probe, four tiny_http workers) plus room
    // for scrapes; 400 connections want 400 more.
    const PIDS_MAX: u64 = 16;
    let _alone = support::machine_alone();
    let cg = match PidsCgroup::create(PIDS_MAX) {
        Ok(cg) => cg,
        // Not a missing tool but a host property (containers often mount cgroups read-only,
        // and only root may write them); CI runs as root with a writable hierarchy, so there
        // the test must run, not skip.
        Err(why) => {
            assert!(
                !support::tools_required(),
                "thread_limit_then_flood: no writable pids cgroup and WIDGET_EXPORTER_REQUIRE_TOOLS=1: {why}"
            );
            say(&format!(
                "thread_limit_then_flood: no writable pids cgroup ({why}); prlimit --nproc does not bind root"
            ));
            support::skip("no writable pids cgroup");
            return;
        }
    };
    // The shell joins the group, then becomes the exporter: same PID, every thread counted.
    let wrapper = [
        OsString::from("sh"),
        OsString::from("-c"),
        OsString::from("echo $$ > \"$0/cgroup.procs\" && exec \"$@\""),
        cg.0.clone().into_os_string(),
    ];
    let mut cmd = command(&wrapper, &watched_flags());
    limited_flood(
        &format!("thread_limit_then_flood (pids.max={PIDS_MAX})"),
        &mut cmd,
    );
    drop(cg);
}
