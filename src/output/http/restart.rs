//! The restart rule, whole: when the exporter re-executes itself in place, how it drains its
//! clients first so that a restart costs no scrape, when it gives up and exits instead, and
//! what it carries across the exec (the counters with the widget families' label sets, the
//! source's position, and its own history of fruitless restarts).
//!
//! A restart in place sheds what tiny_http can leak but never free: connections stuck inside
//! it (an `HTTP/2.0` request line deadlocks its connection thread; a request announcing a
//! body over [`body::SAFE_DRAIN`] is answered and then deliberately leaked, because
//! tiny_http would allocate the whole announced length to discard it) and memory a
//! connection flood left behind. Stuck connections are a client's doing and are always
//! cured by a restart, so they never lead to an exit, however often they come. A memory
//! restart with no flood since the image started cures nothing (the image grows back by
//! itself): those back off, and past [`FRUITLESS_MAX`] of them in [`FRUITLESS_WINDOW`] the
//! exporter exits 1 so that systemd's restart count and the journal show the loop.
//!
//! The drain: stop tiny_http accepting (new connections wait in the kernel's listen backlog,
//! which the exec hands over), answer every request with `Connection: close`, wait until
//! every kept-alive client has had its answer (or [`DRAIN_MAX`]), then exec.
//!
//! It owns the rule, its constants, the drain's bookkeeping and the exec. It asks the guard
//! which connections are open; it neither shuts connections down nor answers requests.

use std::env;
use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::host::sys;
use crate::log;
use crate::metrics::Metrics;
use crate::output::http::guard::Open;
use crate::output::http::probe;

/// Resident memory that a quiet exporter should be under (it idles at about 2 MiB). A
/// connection flood leaves more behind: glibc keeps the stacks of a thousand finished
/// tiny_http threads cached and arenas fragmented. Past this, when quiet, the exporter
/// restarts in place to hand the memory back.
pub const QUIET_RSS_MAX: u64 = 8 << 20;

/// How long memory must stay above [`QUIET_RSS_MAX`] while quiet before the first memory
/// restart; each fruitless restart in the window doubles it (3 s, 6 s, 12 s, then 24 s
/// before the exit).
pub const QUIET_RSS_GRACE: Duration = Duration::from_secs(3);

/// Most open client connections for the exporter to count as quiet.
pub const QUIET_CONNECTIONS: usize = 2;

/// More threads than this at any time since the image started means a connection flood
/// came through (at rest there are six: the loop, tiny_http's accept thread and its four
/// idle workers); memory left behind by one is cured by a restart.
pub const FLOOD_THREADS: u64 = 32;

/// Fruitless memory restarts (no flood since the image started) within
/// [`FRUITLESS_WINDOW`] after which the next one is an exit instead.
pub const FRUITLESS_MAX: usize = 3;

/// The window over which fruitless memory restarts are counted (carried across exec).
pub const FRUITLESS_WINDOW: Duration = Duration::from_secs(15 * 60);

/// Longest a drain may take. New connections wait in the backlog meanwhile, so this plus
/// the exec (a few milliseconds) is the longest a new scrape waits; an idle kept-alive
/// connection that sends nothing within it is closed by the exec.
pub const DRAIN_MAX: Duration = Duration::from_millis(500);

/// No client request answered for this long: nothing is in flight that the loop can see.
pub const DRAIN_SETTLE: Duration = Duration::from_millis(30);

/// An unproven connection younger than this may still be sending its first request over a
/// slow network: the drain waits for it.
pub const DRAIN_NEW: Duration = Duration::from_millis(200);

/// How often a drain looks at the connections.
pub const DRAIN_POLL: Duration = Duration::from_millis(20);

/// Environment variable naming the descriptor of the file that carries the counters and the
/// source's position across a restart in place (so that the next image neither resets the
/// counters nor loses or repeats what this one read). A file, not the environment: the label
/// sets of the widget families and a glob's positions can reach megabytes, and Linux limits
/// one variable to 128 KiB. The file is unlinked at once (made the way kernels older than
/// `O_TMPFILE` allow), so nothing is left behind whatever happens.
const CARRIED_FD_VAR: &str = "WIDGET_EXPORTER_CARRIED_FD";

/// Environment variable carrying the same text when no file could be made (no writable
/// temporary directory), if it is small enough for one ([`CARRIED_VAR_MAX`]).
const CARRIED_VAR: &str = "WIDGET_EXPORTER_CARRIED";

/// Largest text [`CARRIED_VAR`] carries: well under Linux's 128 KiB for one variable.
const CARRIED_VAR_MAX: usize = 64 << 10;

/// Separates the counters from the position in the carried text: a control character,
/// which neither holds (label values write theirs `%XX`).
const CARRIED_SEP: char = '\x1e';

/// Environment variable carrying the ages (ms) of the fruitless memory restarts.
const HISTORY_VAR: &str = "WIDGET_EXPORTER_RESTARTS";

/// Why the exporter restarts in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// Connections stuck inside tiny_http: a client's doing, always cured by a restart.
    Stuck {
        /// How many connections (not descriptors) are stuck.
        connections: usize,
    },
    /// Memory above [`QUIET_RSS_MAX`] while quiet.
    Memory {
        /// Resident memory when the rule fired.
        rss: u64,
        /// No flood since the image started: the restart will not cure it.
        fruitless: bool,
    },
}

impl Cause {
    /// The reason logged with the restart.
    #[must_use]
    pub fn describe(&self) -> String {
        match *self {
            Cause::Stuck { connections: 1 } => "1 connection stuck inside tiny_http".to_owned(),
            Cause::Stuck { connections } => {
                format!("{connections} connections stuck inside tiny_http")
            }
            Cause::Memory {
                rss,
                fruitless: false,
            } => format!(
                "memory left behind by a connection flood ({} KiB)",
                rss >> 10
            ),
            Cause::Memory {
                rss,
                fruitless: true,
            } => format!(
                "memory above {} MiB with no connection flood since the last start ({} KiB)",
                QUIET_RSS_MAX >> 20,
                rss >> 10
            ),
        }
    }
}

/// What the loop saw at a guard scan.
#[derive(Debug, Clone, Copy)]
pub struct Observation {
    /// When.
    pub now: Instant,
    /// Resident memory, when known.
    pub rss: Option<u64>,
    /// Threads, when known.
    pub threads: Option<u64>,
    /// Open client connections (not shut down).
    pub open: usize,
    /// Connections stuck inside tiny_http.
    pub stuck: usize,
    /// When the guard last shut a connection down, if ever in this image.
    pub last_close: Option<Instant>,
}

/// What was carried across the last restart in place, read once at start.
#[derive(Debug, Default)]
pub struct Carried {
    /// The counters, in `Metrics::export_counters`'s format.
    pub counters: Option<String>,
    /// Where the source had got to, in `Source::position`'s format.
    pub position: Option<String>,
    /// Ages of the fruitless memory restarts at the moment of the exec.
    fruitless_ages: Vec<Duration>,
}

impl Carried {
    /// Takes the carried state out of the environment. Call while the process has a single
    /// thread: changing the environment is not safe later.
    #[must_use]
    pub fn take_from_env() -> Carried {
        let text = |var| env::var_os(var).map(|s| s.to_string_lossy().into_owned());
        let fd = text(CARRIED_FD_VAR);
        let inline = text(CARRIED_VAR);
        let history = text(HISTORY_VAR);
        for var in [CARRIED_FD_VAR, CARRIED_VAR, HISTORY_VAR] {
            env::remove_var(var);
        }
        let carried = match fd {
            Some(fd) => read_carried(&fd)
                .map_err(|e| log::warn("cannot read the carried counters", &[("err", &e)]))
                .ok(),
            None => inline,
        };
        let (counters, position) = match carried.as_deref().map(|t| t.split_once(CARRIED_SEP)) {
            Some(Some((counters, position))) => {
                (Some(counters.to_owned()), Some(position.to_owned()))
            }
            Some(None) => (carried, None),
            None => (None, None),
        };
        Carried {
            counters,
            position,
            fruitless_ages: history.as_deref().map(parse_ages).unwrap_or_default(),
        }
    }
}

/// The text of the carried file at descriptor `fd` (a number, as [`CARRIED_FD_VAR`] holds).
fn read_carried(fd: &str) -> io::Result<String> {
    use std::io::Read;
    let fd = fd
        .parse()
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, format!("bad fd {fd:?}")))?;
    let mut text = String::new();
    sys::adopt_file(fd)?.read_to_string(&mut text)?;
    Ok(text)
}

/// `text` in an unlinked file of the temporary directory, rewound, that survives the exec.
fn carried_file(text: &str) -> io::Result<std::fs::File> {
    use std::io::{Seek, Write};
    use std::os::unix::fs::OpenOptionsExt;
    let path = env::temp_dir().join(format!(
        ".widget-exporter-carried-{}-{}",
        std::process::id(),
        crate::host::clock::unix_nanos()
    ));
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    file.write_all(text.as_bytes())?;
    file.rewind()?;
    sys::keep_across_exec(&file)?;
    Ok(file)
}

/// `1200,45000` (milliseconds) into ages; anything unparsable is skipped.
fn parse_ages(text: &str) -> Vec<Duration> {
    text.split(',')
        .filter_map(|a| a.trim().parse::<u64>().ok())
        .map(Duration::from_millis)
        .filter(|&a| a < FRUITLESS_WINDOW)
        .take(FRUITLESS_MAX)
        .collect()
}

/// The ages of `times` at `now`, in milliseconds, for [`HISTORY_VAR`].
fn format_ages(times: &[Instant], now: Instant) -> String {
    let ages: Vec<String> = times
        .iter()
        .map(|&t| now.saturating_duration_since(t).as_millis().to_string())
        .collect();
    ages.join(",")
}

/// What [`Restarts::observe`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Stay,
    /// Drain, then restart in place.
    Restart(Cause),
    /// Exit 1 with this message: restarting would not help.
    GiveUp(String),
}

/// The pure rule: when to restart, when to give up. No sockets, no clock of its own.
#[derive(Debug)]
pub struct Rule {
    /// When the fruitless memory restarts happened (the last [`FRUITLESS_WINDOW`]).
    fruitless: Vec<Instant>,
    peak_threads: u64,
    bloated_since: Option<Instant>,
}

impl Rule {
    /// The rule for an image started at `now` with `carried` history.
    #[must_use]
    pub fn new(carried: &Carried, now: Instant) -> Rule {
        Rule {
            fruitless: carried
                .fruitless_ages
                .iter()
                .filter_map(|&age| now.checked_sub(age))
                .collect(),
            peak_threads: 0,
            bloated_since: None,
        }
    }

    /// How long the quiet exporter must stay bloated before the next memory restart.
    #[must_use]
    pub fn grace(&self, now: Instant) -> Duration {
        QUIET_RSS_GRACE * (1u32 << self.fruitless_within(now).min(8))
    }

    fn fruitless_within(&self, now: Instant) -> usize {
        self.fruitless
            .iter()
            .filter(|&&t| now.saturating_duration_since(t) < FRUITLESS_WINDOW)
            .count()
    }

    /// Decides at a guard scan.
    pub fn observe(&mut self, o: &Observation) -> Decision {
        let now = o.now;
        self.peak_threads = self.peak_threads.max(o.threads.unwrap_or(0));
        if o.stuck > 0 {
            return Decision::Restart(Cause::Stuck {
                connections: o.stuck,
            });
        }
        // Quiet: hardly any connections, and none shut down lately (a flood is over).
        let quiet = o.open <= QUIET_CONNECTIONS
            && o.last_close
                .is_none_or(|t| now.saturating_duration_since(t) >= QUIET_RSS_GRACE);
        let bloated = quiet && o.rss.is_some_and(|r| r > QUIET_RSS_MAX);
        self.bloated_since = bloated.then(|| self.bloated_since.unwrap_or(now));
        let Some(since) = self.bloated_since else {
            return Decision::Stay;
        };
        if now.saturating_duration_since(since) < self.grace(now) {
            return Decision::Stay;
        }
        let rss = o.rss.unwrap_or(0);
        let flood = self.peak_threads > FLOOD_THREADS || o.last_close.is_some();
        if flood {
            return Decision::Restart(Cause::Memory {
                rss,
                fruitless: false,
            });
        }
        if self.fruitless_within(now) >= FRUITLESS_MAX {
            return Decision::GiveUp(format!(
                "resident memory stays above {} MiB ({} KiB) with no connection flood to explain it, after {FRUITLESS_MAX} restarts in place within {} min; exiting so that the supervisor sees it",
                QUIET_RSS_MAX >> 20,
                rss >> 10,
                FRUITLESS_WINDOW.as_secs() / 60
            ));
        }
        Decision::Restart(Cause::Memory {
            rss,
            fruitless: true,
        })
    }

    /// Records that a restart for `cause` happens at `now`.
    fn restarting(&mut self, cause: Cause, now: Instant) {
        if let Cause::Memory {
            fruitless: true, ..
        } = cause
        {
            self.fruitless
                .retain(|&t| now.saturating_duration_since(t) < FRUITLESS_WINDOW);
            self.fruitless.push(now);
        }
    }
}

/// A drain in progress.
#[derive(Debug)]
struct Drain {
    cause: Cause,
    since: Instant,
    /// tiny_http's accept thread has stopped (new connections wait in the backlog).
    accept_stopped: bool,
    last_served: Option<Instant>,
    /// Connections answered with `Connection: close` during the drain.
    answered: Vec<SocketAddr>,
    next_look: Instant,
}

impl Drain {
    /// Whether the exec may go ahead: tiny_http accepts no more, nothing answered lately,
    /// and every open connection is done with (answered during the drain, or never used
    /// and old, or silent since before the drain only if the drain is over).
    fn done(&self, now: Instant, open: &[Open]) -> bool {
        if now.saturating_duration_since(self.since) >= DRAIN_MAX {
            return true;
        }
        let settled = self
            .last_served
            .is_none_or(|t| now.saturating_duration_since(t) >= DRAIN_SETTLE);
        self.accept_stopped
            && settled
            && open.iter().all(|c| {
                let answered = self.answered.contains(&c.peer);
                let abandoned =
                    !c.proven && now.saturating_duration_since(c.first_seen) >= DRAIN_NEW;
                !c.unread && (answered || abandoned)
            })
    }
}

/// The restart rule and the drain, as the loop owns them.
#[derive(Debug)]
pub struct Restarts {
    rule: Rule,
    drain: Option<Drain>,
}

impl Restarts {
    /// For an image started at `now` with `carried` history.
    #[must_use]
    pub fn new(carried: &Carried, now: Instant) -> Restarts {
        Restarts {
            rule: Rule::new(carried, now),
            drain: None,
        }
    }

    /// Whether a drain is under way: every answer must say `Connection: close`.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.drain.is_some()
    }

    /// Applies the rule at a guard scan: may begin a drain (stopping tiny_http's accept
    /// thread through `listener`, which shares its socket, and a connection to `address`);
    /// an error means exit 1.
    pub fn observe(
        &mut self,
        o: &Observation,
        listener: &TcpListener,
        address: SocketAddr,
    ) -> Result<(), Error> {
        if self.drain.is_some() {
            return Ok(());
        }
        match self.rule.observe(o) {
            Decision::Stay => Ok(()),
            Decision::GiveUp(why) => Err(Error::Fatal(why)),
            Decision::Restart(cause) => {
                log::info(
                    "draining before a restart in place",
                    &[("reason", &cause.describe())],
                );
                let accept_stopped = match stop_accepting(listener, address) {
                    Ok(()) => false,
                    Err(e) => {
                        // Without a pause the drain still answers with `Connection: close`
                        // and ends at DRAIN_MAX; a connection accepted at the last moment
                        // may lose its request.
                        log::warn("cannot pause accepting for the drain", &[("err", &e)]);
                        true
                    }
                };
                self.drain = Some(Drain {
                    cause,
                    since: o.now,
                    accept_stopped,
                    last_served: None,
                    answered: Vec::new(),
                    next_look: o.now,
                });
                Ok(())
            }
        }
    }

    /// A request from `peer` was answered at `now` (with `Connection: close` if draining).
    pub fn served(&mut self, peer: Option<SocketAddr>, now: Instant) {
        if let Some(d) = &mut self.drain {
            d.last_served = Some(now);
            if let Some(p) = peer {
                if !d.answered.contains(&p) {
                    d.answered.push(p);
                }
            }
        }
    }

    /// tiny_http's accept thread handed over an error and exited: expected while draining
    /// (the pause), fatal otherwise (the port would be deaf for good: exiting lets the
    /// supervisor restart us instead).
    pub fn accept_failed(&mut self, e: &io::Error) -> Result<(), Error> {
        match &mut self.drain {
            Some(d) if e.kind() == io::ErrorKind::WouldBlock => {
                d.accept_stopped = true;
                Ok(())
            }
            _ => Err(Error::Fatal(format!(
                "the HTTP server stopped accepting connections: {e}"
            ))),
        }
    }

    /// When the loop must look at the drain again (call [`Restarts::wants_look`]).
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.drain.as_ref().map(|d| d.next_look)
    }

    /// Whether a drain wants the open connections at `now`.
    #[must_use]
    pub fn wants_look(&self, now: Instant) -> bool {
        self.drain.as_ref().is_some_and(|d| now >= d.next_look)
    }

    /// Looks at the drain with the guard's `open` connections: when it is done, restarts in
    /// place carrying the counters and the source's `position` (and returns only the error of
    /// a failed exec); otherwise schedules the next look.
    pub fn finish(
        &mut self,
        now: Instant,
        open: &[Open],
        listener: &TcpListener,
        metrics: &Metrics,
        position: Option<&str>,
    ) -> Result<(), Error> {
        let Some(d) = &mut self.drain else {
            return Ok(());
        };
        if !d.done(now, open) {
            d.next_look = now + DRAIN_POLL;
            return Ok(());
        }
        let (cause, took, answered) = (
            d.cause,
            now.saturating_duration_since(d.since),
            d.answered.len(),
        );
        let still_open = open.len();
        self.rule.restarting(cause, now);
        log::warn(
            "restarting in place",
            &[
                ("reason", &cause.describe()),
                ("drained_ms", &took.as_millis()),
                ("answered", &answered),
                ("left_open", &still_open),
            ],
        );
        let history = format_ages(&self.rule.fruitless, now);
        Err(exec(listener, metrics, position, &history))
    }
}

/// Stops tiny_http's accept thread without closing the listening socket: `listener` shares
/// the accept thread's open file description, so making it non-blocking makes the accept
/// thread's next `accept()` fail with `WouldBlock` once the backlog is empty, and tiny_http's
/// accept thread exits on any error. A connection of our own wakes it from the `accept()` it
/// is blocked in. Connections arriving later wait in the backlog for the next image.
fn stop_accepting(listener: &TcpListener, address: SocketAddr) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    probe::kick(address);
    Ok(())
}

/// Replaces this process's image with a fresh one of the same binary, same PID and flags,
/// handing over the listening socket (as systemd would, at fd 3), the counters, the source's
/// position and the fruitless-restart history. Exec ends every thread and closes every other descriptor;
/// connections waiting in the listen backlog are kept, and systemd sees the same main PID.
/// It takes a few milliseconds. Returns only if the exec failed.
fn exec(listener: &TcpListener, metrics: &Metrics, position: Option<&str>, history: &str) -> Error {
    metrics.http.count_restart();
    // The drain made the socket non-blocking; the next image's accept thread must block.
    if let Err(e) = listener.set_nonblocking(false) {
        return Error::io("making the listening socket blocking again", e);
    }
    if let Err(e) = sys::pass_listener_at_fd3(listener) {
        return Error::io("handing the listening socket to the new image", e);
    }
    let mut argv = env::args_os();
    let program = argv
        .next()
        .unwrap_or_else(|| OsString::from("widget-exporter"));
    let mut command = std::process::Command::new("/proc/self/exe");
    let mut text = metrics.export_counters();
    if let Some(p) = position {
        text.push(CARRIED_SEP);
        text.push_str(p);
    }
    command.env_remove(CARRIED_VAR).env_remove(CARRIED_FD_VAR);
    // Kept open until the exec, which hands it over.
    let file = carried_file(&text);
    match &file {
        Ok(file) => {
            command.env(CARRIED_FD_VAR, file.as_raw_fd().to_string());
        }
        Err(e) if text.len() <= CARRIED_VAR_MAX => {
            log::warn(
                "cannot make the carried file; carrying in the environment",
                &[("err", e)],
            );
            command.env(CARRIED_VAR, &text);
        }
        Err(e) => log::warn(
            "cannot make the carried file; counters and positions start again",
            &[("err", e), ("bytes", &text.len())],
        ),
    }
    let e = command
        .arg0(program)
        .args(argv)
        .env("LISTEN_PID", std::process::id().to_string())
        .env("LISTEN_FDS", "1")
        .env_remove("LISTEN_FDNAMES")
        .env(HISTORY_VAR, history)
        .exec();
    Error::io("restarting in place (exec)", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn quiet(now: Instant, rss_mib: u64) -> Observation {
        Observation {
            now,
            rss: Some(rss_mib * MIB),
            threads: Some(6),
            open: 1,
            stuck: 0,
            last_close: None,
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Observes `o` every second from `from` for `n` seconds; the first decision that is
    /// not `Stay`, and when.
    fn run(rule: &mut Rule, o: Observation, n: u64) -> Option<(u64, Decision)> {
        (0..=n).find_map(|s| {
            let d = rule.observe(&Observation {
                now: o.now + secs(s),
                ..o
            });
            (d != Decision::Stay).then_some((s, d))
        })
    }

    #[test]
    fn stuck_connections_always_restart_and_never_give_up() {
        let t0 = Instant::now();
        let mut rule = Rule::new(&Carried::default(), t0);
        for i in 0..50 {
            let now = t0 + secs(i);
            let d = rule.observe(&Observation {
                stuck: 1,
                ..quiet(now, 20)
            });
            assert_eq!(d, Decision::Restart(Cause::Stuck { connections: 1 }));
            rule.restarting(Cause::Stuck { connections: 1 }, now);
        }
        assert_eq!(rule.grace(t0 + secs(50)), QUIET_RSS_GRACE, "no backoff");
    }

    #[test]
    fn memory_restarts_only_when_quiet_for_the_grace() {
        let t0 = Instant::now();
        for (what, o, fires) in [
            ("under the limit", quiet(t0, 7), false),
            ("bloated and quiet", quiet(t0, 9), true),
            (
                "busy: many connections",
                Observation {
                    open: 3,
                    ..quiet(t0, 9)
                },
                false,
            ),
            (
                "a flood just ended",
                Observation {
                    last_close: Some(t0 + secs(60)),
                    ..quiet(t0, 9)
                },
                false,
            ),
            (
                "rss unknown",
                Observation {
                    rss: None,
                    ..quiet(t0, 9)
                },
                false,
            ),
        ] {
            let mut rule = Rule::new(&Carried::default(), t0);
            let got = run(&mut rule, o, 30);
            assert_eq!(got.is_some(), fires, "{what}: {got:?}");
            if let Some((s, _)) = got {
                assert_eq!(s, QUIET_RSS_GRACE.as_secs(), "{what}");
            }
        }
    }

    #[test]
    fn a_flood_makes_the_memory_restart_worth_it() {
        let t0 = Instant::now();
        let mut rule = Rule::new(&Carried::default(), t0);
        rule.observe(&Observation {
            threads: Some(400),
            open: 300,
            ..quiet(t0, 30)
        });
        let (_, d) = run(&mut rule, quiet(t0 + secs(1), 12), 10).unwrap();
        assert_eq!(
            d,
            Decision::Restart(Cause::Memory {
                rss: 12 * MIB,
                fruitless: false
            })
        );
    }

    /// An exporter that sits above the limit by itself: restarts back off (3, 6, 12 s), the
    /// history survives each exec, and the fourth time it gives up. A restart that cured
    /// (a flood since) does not count.
    #[test]
    fn fruitless_memory_restarts_back_off_then_give_up() {
        let mut t = Instant::now();
        let mut carried = Carried::default();
        let mut waited = Vec::new();
        let outcome = loop {
            let mut rule = Rule::new(&carried, t);
            let (s, d) = run(&mut rule, quiet(t, 9), 600).expect("decides");
            t += secs(s);
            waited.push(s);
            match d {
                Decision::Restart(cause) => {
                    assert!(
                        matches!(
                            cause,
                            Cause::Memory {
                                fruitless: true,
                                ..
                            }
                        ),
                        "{cause:?}"
                    );
                    rule.restarting(cause, t);
                    // Across the exec, as `exec` passes it.
                    carried = Carried {
                        counters: None,
                        position: None,
                        fruitless_ages: parse_ages(&format_ages(&rule.fruitless, t)),
                    };
                    t += Duration::from_millis(5);
                }
                give_up => break give_up,
            }
        };
        assert_eq!(waited, [3, 6, 12, 24]);
        assert!(
            matches!(&outcome, Decision::GiveUp(why) if why.contains("3 restarts in place within 15 min")),
            "{outcome:?}"
        );
        // Outside the window the history no longer counts.
        let rule = Rule::new(&carried, t);
        assert_eq!(rule.grace(t), QUIET_RSS_GRACE * 8);
        assert_eq!(rule.grace(t + FRUITLESS_WINDOW), QUIET_RSS_GRACE);
    }

    #[test]
    fn carried_history_parses_leniently() {
        for (text, want) in [
            ("", vec![]),
            ("1200,45000", vec![1200, 45000]),
            (" 7 , x, -1,,9", vec![7, 9]),
            ("900000", vec![]),
            ("1,2,3,4,5", vec![1, 2, 3]),
        ] {
            let got: Vec<u64> = parse_ages(text)
                .iter()
                .map(|d| d.as_millis() as u64)
                .collect();
            assert_eq!(got, want, "{text:?}");
        }
    }

    #[test]
    fn causes_count_connections_in_words() {
        assert_eq!(
            Cause::Stuck { connections: 1 }.describe(),
            "1 connection stuck inside tiny_http"
        );
        assert_eq!(
            Cause::Stuck { connections: 3 }.describe(),
            "3 connections stuck inside tiny_http"
        );
    }

    fn open(peer: &str, proven: bool, unread: bool, first_seen: Instant) -> Open {
        Open {
            peer: peer.parse().unwrap(),
            proven,
            unread,
            first_seen,
        }
    }

    #[test]
    fn a_drain_waits_for_kept_alive_clients_then_gives_up_at_its_bound() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let drain = |accept_stopped, last_served, answered: &[&str]| Drain {
            cause: Cause::Stuck { connections: 1 },
            since: t0,
            accept_stopped,
            last_served,
            answered: answered.iter().map(|p| p.parse().unwrap()).collect(),
            next_look: t0,
        };
        let kept = open("127.0.0.1:5000", true, false, t0);
        let silent_old = open("127.0.0.1:5001", false, false, t0);
        let pending = open("127.0.0.1:5002", false, true, t0);
        let young = open("127.0.0.1:5003", false, false, ms(50));
        for (what, d, now, conns, done) in [
            ("nothing open", drain(true, None, &[]), ms(1), vec![], true),
            (
                "accept thread still running",
                drain(false, None, &[]),
                ms(100),
                vec![],
                false,
            ),
            (
                "an answer just went out",
                drain(true, Some(ms(90)), &[]),
                ms(100),
                vec![],
                false,
            ),
            (
                "a kept-alive client not told yet",
                drain(true, None, &[]),
                ms(100),
                vec![kept],
                false,
            ),
            (
                "the kept-alive client was answered",
                drain(true, Some(ms(10)), &["127.0.0.1:5000"]),
                ms(100),
                vec![kept],
                true,
            ),
            (
                "a silent connection of old",
                drain(true, None, &[]),
                ms(250),
                vec![silent_old],
                true,
            ),
            (
                "a request waiting to be read",
                drain(true, None, &[]),
                ms(250),
                vec![pending],
                false,
            ),
            (
                "a new connection, request on its way",
                drain(true, None, &[]),
                ms(100),
                vec![young],
                false,
            ),
            (
                "the bound",
                drain(false, Some(ms(499)), &[]),
                t0 + DRAIN_MAX,
                vec![kept, pending],
                true,
            ),
        ] {
            assert_eq!(d.done(now, &conns), done, "{what}");
        }
    }
}
