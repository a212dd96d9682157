//! The connection guard: what keeps slow, idle, hostile or too many clients from stalling,
//! killing or silently deafening the exporter behind tiny_http's back.
//!
//! tiny_http gives every connection a thread and two descriptors and never times anything
//! out, and it does not tell us which connections exist. So at intervals the guard lists
//! `/proc/self/fd`, recognises our TCP connections by their addresses (local port = our
//! port), learns from the loop which peers have sent a request, and shuts down connections
//! that have not completed a request within a few seconds, have idled far longer than any
//! scrape interval, exceed the connection cap (unproven ones first), or while memory or
//! thread use is past its cap. `shutdown()` makes the blocked tiny_http thread read EOF and
//! exit, freeing its descriptors and buffers. A connection still open long after being shut
//! down is stuck inside tiny_http (a deadlock of its own); the loop recovers from those.
//!
//! Its scans also count tiny_http's thread pool for [`pool`], which parks connections on
//! idle pool threads, watches the pool while a thread may be idle, and finds connections
//! tiny_http accepted but gave no thread ([`Census::starved`]), which the loop rescues.
//!
//! It owns the connection table and its limits; it does not answer requests.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

use crate::host::limits::{InForce, Spare};
use crate::host::sys;
use crate::log;
use crate::metrics::{CloseReason, Metrics};
use crate::output::http::pool::{self, Pool};

pub use crate::output::http::pool::{MAX_PARKED, NON_POOL_THREADS, POOL_MIN_THREADS, RESCUE_CHECK};

/// Scan interval while connections or threads are past half their cap.
pub const NEAR_CAP_SCAN: Duration = Duration::from_millis(50);

/// The guard's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A connection must complete its first request within this.
    pub first_request: Duration,
    /// A connection idle this long after its last request is closed.
    pub idle: Duration,
    /// Most connections kept; beyond it the oldest unproven (then the longest idle) go.
    pub max_connections: usize,
    /// Above this resident memory, every connection without a request is shut down.
    pub max_rss_bytes: u64,
    /// Above this many threads, likewise.
    pub max_threads: u64,
    /// A shut-down connection still open this much later is stuck.
    pub stuck_after: Duration,
    /// Scan interval when all is quiet, and while connections are being watched.
    pub scan_quiet: Duration,
    /// Scan interval while connections are being watched.
    pub scan_busy: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            first_request: Duration::from_secs(5),
            idle: Duration::from_secs(300),
            max_connections: 256,
            // Half the printed unit's MemoryMax=64M: a header bomb at loopback speed grows
            // by about 6 MiB per busy scan (0.5 s), and on a loaded machine scans run late,
            // so the cut must come well before the OOM killer would.
            max_rss_bytes: 32 << 20,
            max_threads: 300,
            stuck_after: Duration::from_secs(10),
            scan_quiet: Duration::from_secs(2),
            scan_busy: Duration::from_millis(500),
        }
    }
}

/// The share of what the limits allow that the guard keeps: it sheds connections beyond it,
/// so that a burst of the rest arriving between two scans still fits. Half where the limits
/// are tight (see [`TIGHT_BELOW`]), where the next scan is a larger part of the budget away.
const CAP_SHARE: (u64, u64) = (3, 4);

/// See [`CAP_SHARE`].
const TIGHT_CAP_SHARE: (u64, u64) = (1, 2);

/// Limits admitting fewer connections than this are tight: the guard scans every
/// [`TIGHT_SCAN`], quiet or not.
pub const TIGHT_BELOW: u64 = 1024;

/// See [`TIGHT_BELOW`].
pub const TIGHT_SCAN: Duration = Duration::from_millis(100);

/// What the HTTP output keeps besides its connections: descriptors for the probe, the kicks,
/// `/proc` reads, a restart in place and the parked connections (three each); the threads
/// of an idle exporter: the loop, tiny_http's accept thread, the signal thread, its 4 pool threads (the parked
/// connections hold them) and the probe's.
const SPARE: Spare = Spare {
    fds: 16 + 3 * MAX_PARKED as u64,
    threads: NON_POOL_THREADS + POOL_MIN_THREADS as u64 + 1,
    base_threads: NON_POOL_THREADS,
};

impl Limits {
    /// The default limits with the connection and thread caps lowered, where needed, to
    /// `CAP_SHARE` of what `in_force` allows. The defaults stay the upper bounds.
    #[must_use]
    pub fn derive(in_force: &InForce) -> Limits {
        let d = Limits::default();
        let possible = in_force.connections(SPARE);
        let tight = possible.is_some_and(|p| p < TIGHT_BELOW);
        let (num, den) = if tight { TIGHT_CAP_SHARE } else { CAP_SHARE };
        let share = |n: u64| n * num / den;
        let max_connections = possible.map_or(d.max_connections, |p| {
            d.max_connections.min(share(p).max(1) as usize)
        });
        let max_threads = in_force
            .thread_connections(SPARE)
            .map_or(d.max_threads, |p| {
                d.max_threads.min(SPARE.threads + share(p).max(1))
            });
        // Where the limits admit few connections, a flood of silent ones (which wake nothing)
        // must be seen before it reaches them: scan often, on our own wake-ups.
        let (scan_quiet, scan_busy) = if tight {
            (TIGHT_SCAN, TIGHT_SCAN.min(d.scan_busy))
        } else {
            (d.scan_quiet, d.scan_busy)
        };
        Limits {
            max_connections,
            max_threads,
            scan_quiet,
            scan_busy,
            ..d
        }
    }

    /// Reads the limits in force, derives the caps from them and logs both at info.
    #[must_use]
    pub fn in_force() -> Limits {
        let in_force = InForce::read();
        let limits = Limits::derive(&in_force);
        // 0: no such limit found.
        let or_0 = |v: Option<u64>| v.unwrap_or(0);
        log::info(
            "connection caps from the limits in force",
            &[
                ("max_connections", &limits.max_connections),
                ("max_threads", &limits.max_threads),
                ("connections_possible", &or_0(in_force.connections(SPARE))),
                ("scan_quiet_ms", &limits.scan_quiet.as_millis()),
                ("open_files_limit", &or_0(in_force.nofile)),
                ("cgroup_tasks_left", &or_0(in_force.tasks_left)),
            ],
        );
        limits
    }
}

#[derive(Debug, Clone, Copy)]
struct Conn {
    /// One of the connection's descriptors (tiny_http holds two) and its local address.
    fd: RawFd,
    local: SocketAddr,
    first_seen: Instant,
    last_request: Option<Instant>,
    shut: Option<(Instant, CloseReason)>,
}

/// What the last scan found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    /// Connections open and not shut down.
    pub open: usize,
    /// Connections shut down at least `stuck_after` ago and still open.
    pub stuck: usize,
    /// Connections tiny_http accepted but gave no thread (see [`pool::PoolCensus`]): the
    /// loop rescues them ([`pool::kick`]).
    pub starved: usize,
    /// Pool threads with no connection: idle threads, which a burst can be queued behind.
    pub idle: usize,
    /// Connections parked on idle pool threads.
    pub parked: usize,
}

/// An open connection, as [`Guard::open_connections`] lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Open {
    /// The client's address.
    pub peer: SocketAddr,
    /// It has sent a request.
    pub proven: bool,
    /// Bytes wait unread in its socket (a request nobody has read yet).
    pub unread: bool,
    /// When a scan first saw it.
    pub first_seen: Instant,
}

/// When the guard scans next, and why.
#[derive(Debug, Clone, Copy)]
struct Schedule {
    next: Instant,
    last: Instant,
    /// A connection may soon need shutting down.
    busy: bool,
    /// A request arrived since the last scan.
    active: bool,
    /// A scan is due within [`RESCUE_CHECK`]: quiet scheduling must not postpone it.
    soon: bool,
}

impl Schedule {
    /// A scan at `at` or earlier, which quiet scheduling must not postpone.
    fn soon(&mut self, at: Instant) {
        self.next = self.next.min(at);
        self.soon = true;
    }
}

/// Closures since the last warning, per reason, and when that warning was.
#[derive(Debug, Default)]
struct Closures {
    unreported: [u64; CloseReason::ALL.len()],
    last_warning: Option<Instant>,
    last: Option<Instant>,
}

/// The connection table and its schedule.
#[derive(Debug)]
pub struct Guard {
    port: u16,
    limits: Limits,
    conns: HashMap<SocketAddr, Conn>,
    /// Requests from peers the table does not know yet, and when they came.
    unseen_requests: HashMap<SocketAddr, Instant>,
    /// Descriptors of our port whose TCP connection is over but which are still open, and
    /// since when: a healthy tiny_http thread closes them within milliseconds.
    orphans: HashMap<RawFd, Instant>,
    schedule: Schedule,
    census: Census,
    pool: Pool,
    closures: Closures,
    /// The self-probe's connection (kept alive between probes): ours, not a client's.
    probe_peer: Option<SocketAddr>,
}

impl Guard {
    /// A guard for connections to local port `port`, first scanning at `now`.
    #[must_use]
    pub fn new(port: u16, limits: Limits, now: Instant) -> Self {
        Guard {
            port,
            limits,
            conns: HashMap::new(),
            unseen_requests: HashMap::new(),
            orphans: HashMap::new(),
            schedule: Schedule {
                next: now,
                last: now,
                busy: false,
                active: false,
                soon: false,
            },
            census: Census::default(),
            pool: Pool::new(port, now),
            closures: Closures::default(),
            probe_peer: None,
        }
    }

    /// When the loop must call [`Guard::tick`] next: the next scan, or the next look at the
    /// pool while it is being watched.
    #[must_use]
    pub fn next_deadline(&self) -> Instant {
        let next = self.schedule.next;
        self.pool.next_look().map_or(next, |look| look.min(next))
    }

    /// When the next scan is due (the pool's looks aside).
    #[cfg(test)]
    fn next_scan(&self) -> Instant {
        self.schedule.next
    }

    /// What the last scan found.
    #[must_use]
    pub fn census(&self) -> Census {
        self.census
    }

    /// Moves a quiet guard's next scan to `at` (when the loop wakes anyway), so that quiet
    /// scans add no wake-ups of their own; a busy guard keeps its short interval.
    pub fn scan_quietly_at(&mut self, at: Instant) {
        let s = &mut self.schedule;
        if s.busy || s.active || s.soon {
            return;
        }
        // Riding on a wake-up much later than the quiet interval would leave a flood unseen
        // for too long where the limits are tight (see [`Limits::derive`]).
        let quiet = self.limits.scan_quiet;
        let latest = s.last + quiet + quiet / 4;
        s.next = if at <= latest { at } else { s.last + quiet };
    }

    /// Whether [`Guard::tick`] at `now` scans (else it only looks at the pool, and reads the
    /// thread count itself when the caller passes none: the caller may skip its own reads).
    #[must_use]
    pub fn scan_due(&self, now: Instant) -> bool {
        now >= self.schedule.next
    }

    /// When the guard last shut a connection down, if ever.
    #[must_use]
    pub fn last_close(&self) -> Option<Instant> {
        self.closures.last
    }

    /// A client (not the self-probe) is being served at `now`: scan soon, since more
    /// connections may be arriving and tiny_http may starve one of them.
    pub fn note_activity(&mut self, now: Instant) {
        let s = &mut self.schedule;
        s.active = true;
        s.next = s.next.min(now + self.limits.scan_busy / 2);
    }

    /// The request from `peer` was the self-probe's: its connection is ours, counted as held
    /// but never as a client's, and never shed.
    pub fn probe_from(&mut self, peer: Option<SocketAddr>) {
        self.probe_peer = peer;
    }

    /// A request from `peer` arrived: its connection is proven and active.
    pub fn request_from(&mut self, peer: Option<SocketAddr>, now: Instant) {
        let Some(peer) = peer else { return };
        if let Some(c) = self.conns.get_mut(&peer) {
            c.last_request = Some(now);
        } else {
            // Accepted since the last scan: remembered for the next one rather than found by
            // a scan of every descriptor on the request path. A new connection may be part of
            // a burst that tiny_http is starving: that scan comes soon.
            self.unseen_requests.insert(peer, now);
            self.schedule.soon(now + RESCUE_CHECK);
        }
    }

    /// Scans when due and applies the limits; between scans, looks at the pool while it is
    /// being watched. `rss` and `threads` are the process's current figures, when known.
    pub fn tick(
        &mut self,
        now: Instant,
        rss: Option<u64>,
        threads: Option<u64>,
        metrics: &Metrics,
    ) {
        if now < self.next_deadline() {
            return;
        }
        let fds = pool::open_fds();
        if !self.scan_due(now)
            && !self
                .pool
                .moved(now, fds, threads.or_else(pool::threads_now))
        {
            return;
        }
        self.scan(now);
        let pressure = self.apply_limits(now, rss, threads, metrics);
        self.count(now, fds, threads);
        metrics.http.set_connections(self.census.open as u64);
        self.plan(now, threads, pressure);
        if self.pool.park(now) {
            // See that each took an idle thread (a race can give it a new one).
            self.schedule.soon(now + RESCUE_CHECK * 2);
        }
        self.census.parked = self.pool.parked();
        self.warn_closures(now);
    }

    /// Shuts down the connections past a limit; returns whether memory or threads are past
    /// theirs.
    fn apply_limits(
        &mut self,
        now: Instant,
        rss: Option<u64>,
        threads: Option<u64>,
        metrics: &Metrics,
    ) -> bool {
        let l = self.limits;
        let mut doomed: Vec<(SocketAddr, CloseReason)> = Vec::new();
        let probe = self.probe_peer;
        let mut live: Vec<(&SocketAddr, &Conn)> = self
            .conns
            .iter()
            .filter(|(peer, c)| c.shut.is_none() && Some(**peer) != probe)
            .collect();
        for (peer, c) in &live {
            match c.last_request {
                None if now.saturating_duration_since(c.first_seen) >= l.first_request => {
                    doomed.push((**peer, CloseReason::Slow));
                }
                Some(t) if now.saturating_duration_since(t) >= l.idle => {
                    doomed.push((**peer, CloseReason::Idle));
                }
                _ => {}
            }
        }
        live.retain(|(peer, _)| !doomed.iter().any(|(d, _)| d == *peer));
        // Unproven first (oldest first), then proven by longest idle: the order to shed in.
        live.sort_by_key(|(_, c)| {
            (
                c.last_request.is_some(),
                c.last_request.unwrap_or(c.first_seen),
            )
        });
        let unproven = live
            .iter()
            .filter(|(_, c)| c.last_request.is_none())
            .count();
        // Memory over its cap: every connection without a request goes (header bombs grow
        // by the megabyte). Threads over theirs: only as many as the excess, oldest first,
        // so that an attacker reconnecting at once does not turn the guard into churn.
        let memory = rss.is_some_and(|r| r > l.max_rss_bytes);
        let thread_excess = threads.map_or(0, |t| t.saturating_sub(l.max_threads)) as usize;
        let shed = if memory {
            unproven
        } else {
            thread_excess.min(unproven)
        };
        let over_cap = live
            .len()
            .saturating_sub(shed)
            .saturating_sub(l.max_connections);
        doomed.extend(
            live[..shed]
                .iter()
                .map(|(peer, _)| (**peer, CloseReason::Pressure)),
        );
        doomed.extend(
            live[shed..shed + over_cap]
                .iter()
                .map(|(peer, _)| (**peer, CloseReason::Cap)),
        );
        for (peer, reason) in doomed {
            self.shut(peer, Shutdown::Both, reason, now, metrics);
        }
        memory || thread_excess > 0
    }

    /// Sets the next scan after one at `now`.
    fn plan(&mut self, now: Instant, threads: Option<u64>, pressure: bool) {
        let l = self.limits;
        // Busy while a connection may soon need shutting down; kept-alive scrapers that have
        // proven themselves only need the idle check, which the quiet interval serves.
        let unproven = self
            .conns
            .values()
            .any(|c| c.shut.is_none() && c.last_request.is_none());
        let s = &mut self.schedule;
        // Requests since the last scan: new connections may be arriving, and one that tiny_http
        // starves must be found soon (see `Census::starved`).
        s.busy = unproven || s.active || self.census.stuck > 0 || pressure;
        s.active = false;
        s.last = now;
        // Past half the cap, a burst could reach the limits before a busy scan: look often.
        let near_cap = self.census.open * 2 > l.max_connections
            || threads.is_some_and(|t| t * 2 > l.max_threads);
        let starved = self.census.starved > 0;
        s.next = now
            + if starved {
                // The loop is about to rescue them; see that it worked, and find the rest
                // of a burst still being accepted.
                RESCUE_CHECK * 2
            } else if near_cap {
                NEAR_CAP_SCAN
            } else if s.busy {
                l.scan_busy
            } else {
                l.scan_quiet
            };
        s.soon = starved;
    }

    /// Whether the connection from `peer` was shut down: its further (pipelined) requests
    /// deserve no work.
    #[must_use]
    pub fn is_shut(&self, peer: Option<SocketAddr>) -> bool {
        peer.and_then(|p| self.conns.get(&p))
            .is_some_and(|c| c.shut.is_some())
    }

    /// Shuts down the connection from `peer` (found by a fresh scan if needed); false if it
    /// is not (or no longer) open.
    pub fn cut(
        &mut self,
        peer: Option<SocketAddr>,
        how: Shutdown,
        reason: CloseReason,
        now: Instant,
        metrics: &Metrics,
    ) -> bool {
        let Some(peer) = peer else { return false };
        if !self.conns.contains_key(&peer) && self.find(peer, now).is_none() {
            return false;
        }
        self.shut(peer, how, reason, now, metrics)
    }

    /// Writes `bytes` straight to the connection from `peer`, then shuts it down: for a
    /// request that must not go back through tiny_http. False if the connection is gone.
    pub fn answer_and_cut(
        &mut self,
        peer: Option<SocketAddr>,
        bytes: &[u8],
        reason: CloseReason,
        now: Instant,
        metrics: &Metrics,
    ) -> bool {
        let Some(peer) = peer else { return false };
        let Some(c) = self
            .conns
            .get(&peer)
            .copied()
            .or_else(|| self.find(peer, now).copied())
        else {
            return false;
        };
        if let Err(e) = sys::write_if(c.fd, c.local, peer, bytes) {
            log::debug(
                "direct answer not delivered",
                &[("peer", &peer), ("err", &e)],
            );
        }
        self.shut(peer, Shutdown::Both, reason, now, metrics)
    }

    fn shut(
        &mut self,
        peer: SocketAddr,
        how: Shutdown,
        reason: CloseReason,
        now: Instant,
        metrics: &Metrics,
    ) -> bool {
        let Some(c) = self.conns.get_mut(&peer) else {
            return false;
        };
        let done = sys::shutdown_if(c.fd, c.local, peer, how).is_ok();
        if done && c.shut.is_none() {
            // A half shutdown (the body guard's read side) still ends the connection: the
            // request's answer is its last.
            c.shut = Some((now, reason));
            self.closures.last = Some(now);
            metrics.http.count_close(reason);
            self.closures.unreported[reason as usize] += 1;
            log::debug(
                "connection shut down",
                &[("peer", &peer), ("reason", &reason.as_str())],
            );
        }
        done
    }

    /// Rescans and returns the connection from `peer`, if it is open.
    fn find(&mut self, peer: SocketAddr, now: Instant) -> Option<&mut Conn> {
        self.scan(now);
        self.conns.get_mut(&peer)
    }

    /// Lists our connections in `/proc/self/fd`: forgets the closed, adds the new.
    fn scan(&mut self, now: Instant) {
        let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
            return;
        };
        let mut seen: HashMap<SocketAddr, (RawFd, SocketAddr)> =
            HashMap::with_capacity(self.conns.len());
        let mut orphans = Vec::new();
        for entry in dir.flatten() {
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<RawFd>().ok())
            else {
                continue;
            };
            if fd <= 2 {
                continue;
            }
            if let Some((local, peer)) = sys::socket_addrs(fd) {
                if local.port() == self.port {
                    seen.entry(peer).or_insert((fd, local));
                }
            } else if sys::orphan_socket(fd).is_some_and(|local| local.port() == self.port) {
                orphans.push(fd);
            }
        }
        // Where clients reach the listener (a wildcard one has no address of its own).
        let local = seen.values().next().map(|&(_, local)| local);
        self.pool.claim(&mut seen, local, now);
        self.conns.retain(|peer, _| seen.contains_key(peer));
        self.orphans.retain(|fd, _| orphans.contains(fd));
        for fd in orphans {
            self.orphans.entry(fd).or_insert(now);
        }
        for (peer, (fd, local)) in seen {
            let c = self.conns.entry(peer).or_insert(Conn {
                fd,
                local,
                first_seen: now,
                last_request: None,
                shut: None,
            });
            c.fd = fd;
            c.local = local;
            if let Some(t) = self.unseen_requests.remove(&peer) {
                c.last_request = Some(c.last_request.map_or(t, |l| l.max(t)));
            }
        }
        // Requests from connections that closed before any scan saw them.
        self.unseen_requests.clear();
    }

    fn count(&mut self, now: Instant, fds: Option<u64>, threads: Option<u64>) {
        let stuck_after = self.limits.stuck_after;
        let old = |t: Instant| now.saturating_duration_since(t) >= stuck_after;
        // A connection shut down long ago but still connected, or a descriptor whose
        // connection is over but is still held: either way a tiny_http thread is stuck.
        let shut_long_ago = self
            .conns
            .values()
            .filter(|c| c.shut.is_some_and(|(t, _)| old(t)))
            .count();
        // tiny_http holds two descriptors per connection: count sockets, not descriptors.
        let mut orphaned: Vec<Option<std::path::PathBuf>> = self
            .orphans
            .iter()
            .filter(|(_, &t)| old(t))
            .map(|(fd, _)| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok())
            .collect();
        orphaned.sort();
        orphaned.dedup();
        let orphaned_long_ago = orphaned.len();
        // Every connection tiny_http holds has a pool thread or waits in its queue; orphans
        // are listed by descriptor, two per connection.
        let held = (self.conns.len() + self.orphans.len().div_ceil(2)) as u64;
        let probe = self.probe_peer;
        let clients = self.conns.keys().filter(|&&p| Some(p) != probe).count() as u64;
        let pool = self.pool.count(now, held, clients, fds, threads);
        self.census = Census {
            open: self
                .conns
                .iter()
                .filter(|(peer, c)| c.shut.is_none() && Some(**peer) != self.probe_peer)
                .count(),
            stuck: shut_long_ago + orphaned_long_ago,
            starved: pool.starved,
            idle: pool.idle,
            parked: self.pool.parked(),
        };
    }

    /// Rescans at `now` and lists the connections open and not shut down: what a drain
    /// before a restart in place waits for (see `restart`).
    pub fn open_connections(&mut self, now: Instant) -> Vec<Open> {
        self.scan(now);
        self.conns
            .iter()
            .filter(|(peer, c)| c.shut.is_none() && Some(**peer) != self.probe_peer)
            .map(|(peer, c)| Open {
                peer: *peer,
                proven: c.last_request.is_some(),
                unread: sys::unread_bytes(c.fd).is_some_and(|n| n > 0),
                first_seen: c.first_seen,
            })
            .collect()
    }

    /// At most one warning a minute, with what was closed since the last one.
    fn warn_closures(&mut self, now: Instant) {
        let c = &mut self.closures;
        if c.unreported.iter().all(|&n| n == 0)
            || c.last_warning
                .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(60))
        {
            return;
        }
        let mut summary = String::new();
        for (reason, n) in CloseReason::ALL.iter().zip(&mut c.unreported) {
            if *n > 0 {
                if !summary.is_empty() {
                    summary.push(',');
                }
                let _ = write!(summary, "{}:{n}", reason.as_str());
                *n = 0;
            }
        }
        log::warn(
            "closed misbehaving connections",
            &[
                ("closed", &summary),
                ("open", &self.census.open),
                ("stuck", &self.census.stuck),
            ],
        );
        c.last_warning = Some(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};

    fn limits() -> Limits {
        Limits {
            first_request: Duration::from_secs(5),
            idle: Duration::from_secs(60),
            max_connections: 8,
            max_rss_bytes: u64::MAX,
            max_threads: u64::MAX,
            stuck_after: Duration::from_secs(10),
            scan_quiet: Duration::from_secs(2),
            scan_busy: Duration::from_millis(250),
        }
    }

    /// `n` accepted connections: (client, server) pairs.
    fn pairs(listener: &TcpListener, n: usize) -> Vec<(TcpStream, TcpStream)> {
        (0..n)
            .map(|_| {
                let c = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let (s, _) = listener.accept().unwrap();
                (c, s)
            })
            .collect()
    }

    /// What a scan should find when nothing is starved.
    fn census(open: usize, stuck: usize) -> Census {
        Census {
            open,
            stuck,
            ..Census::default()
        }
    }

    /// A listener, a guard watching its port from `t0`, and metrics.
    fn fixture(l: Limits) -> (TcpListener, Guard, Metrics, Instant) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let t0 = Instant::now();
        (listener, Guard::new(port, l, t0), Metrics::default(), t0)
    }

    fn closed(client: &mut TcpStream) -> bool {
        client
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut b = [0u8; 1];
        matches!(client.read(&mut b), Ok(0))
    }

    #[test]
    fn closes_silent_connections_and_keeps_proven_ones() {
        let (listener, mut g, m, t0) = fixture(limits());
        let mut conns = pairs(&listener, 2);
        g.tick(t0, None, None, &m);
        assert_eq!(g.census(), census(2, 0));
        assert_eq!(
            g.next_scan(),
            t0 + Duration::from_millis(250),
            "busy: watching"
        );
        let proven = conns[0].0.local_addr().unwrap();
        g.request_from(Some(proven), t0 + Duration::from_secs(1));
        g.tick(t0 + Duration::from_secs(5), None, None, &m);
        assert!(closed(&mut conns[1].0), "the silent one is shut");
        conns[0].0.write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        conns[0].1.read_exact(&mut b).unwrap();
        // Idle for the idle limit: closed too.
        g.tick(t0 + Duration::from_secs(61), None, None, &m);
        assert!(closed(&mut conns[0].0));
        let s = m.snapshot(crate::host::process::ProcessStats::default());
        let closed = s.http.expect("HTTP families").connections_closed;
        assert_eq!(closed[CloseReason::Slow as usize], 1);
        assert_eq!(closed[CloseReason::Idle as usize], 1);
    }

    #[test]
    fn the_cap_sheds_unproven_connections_first() {
        let (listener, mut g, m, t0) = fixture(Limits {
            max_connections: 3,
            ..limits()
        });
        let mut conns = pairs(&listener, 5);
        for (c, _) in &conns[3..] {
            g.request_from(Some(c.local_addr().unwrap()), t0);
        }
        g.tick(t0, None, None, &m);
        // 5 open, cap 3: two of the three unproven go; the proven two stay.
        let shut: Vec<bool> = conns
            .iter_mut()
            .map(|(c, _)| {
                c.set_read_timeout(Some(Duration::from_millis(300)))
                    .unwrap();
                let mut b = [0u8; 1];
                matches!(c.read(&mut b), Ok(0))
            })
            .collect();
        assert_eq!(shut.iter().filter(|&&s| s).count(), 2, "{shut:?}");
        assert!(!shut[3] && !shut[4], "{shut:?}");
        assert_eq!(g.census().open, 3);
        assert_eq!(g.next_scan(), t0 + NEAR_CAP_SCAN, "at the cap: scans often");
    }

    #[test]
    fn pressure_sheds_connections_without_a_request_and_cut_finds_new_ones() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let m = Metrics::default();
        let t0 = Instant::now();
        let l = Limits {
            max_rss_bytes: 1 << 30,
            ..limits()
        };
        let mut g = Guard::new(port, l, t0);
        let mut conns = pairs(&listener, 2);
        g.request_from(Some(conns[1].0.local_addr().unwrap()), t0);
        g.tick(t0, Some(1 << 29), None, &m);
        assert_eq!(g.census().open, 2, "under the cap nothing happens");
        g.tick(t0 + Duration::from_secs(1), Some(1 << 31), None, &m);
        assert!(closed(&mut conns[0].0));
        assert_eq!(g.census().open, 1);
        // A connection accepted after the scan is found on demand.
        let mut late = pairs(&listener, 1);
        let peer = late[0].0.local_addr().unwrap();
        assert!(g.answer_and_cut(Some(peer), b"bye", CloseReason::Body, t0, &m));
        let mut got = Vec::new();
        late[0].0.read_to_end(&mut got).unwrap();
        assert_eq!(got, b"bye");
        let gone: SocketAddr = "127.0.0.1:9".parse().unwrap();
        assert!(!g.cut(
            Some(gone),
            Shutdown::Both,
            CloseReason::WriteTimeout,
            t0,
            &m
        ));
    }

    #[test]
    fn a_descriptor_held_after_its_connection_ended_is_stuck() {
        let (listener, mut g, m, t0) = fixture(limits());
        let mut conns = pairs(&listener, 1);
        g.tick(t0, None, None, &m);
        // A connection that ends and whose descriptors are closed leaves nothing behind.
        conns[0].1.shutdown(Shutdown::Both).unwrap();
        drop(conns.pop());
        std::thread::sleep(Duration::from_millis(50));
        g.tick(t0 + Duration::from_secs(1), None, None, &m);
        assert_eq!(g.census(), Census::default());
        g.tick(t0 + Duration::from_secs(12), None, None, &m);
        assert_eq!(g.census(), Census::default(), "dropped: gone, not stuck");
        let mut held = pairs(&listener, 1);
        let (client, server) = held.pop().unwrap();
        g.tick(t0 + Duration::from_secs(13), None, None, &m);
        drop(client);
        server.shutdown(Shutdown::Both).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        g.tick(t0 + Duration::from_secs(14), None, None, &m);
        g.tick(t0 + Duration::from_secs(25), None, None, &m);
        assert_eq!(g.census(), census(0, 1), "held after its end: stuck");
        drop(server);
    }

    #[test]
    fn connections_beyond_the_pool_threads_are_starved() {
        let (listener, mut g, m, t0) = fixture(limits());
        let _conns = pairs(&listener, 3);
        // Three connections, three pool threads (plus the loop's and the accept thread).
        g.tick(t0, None, Some(NON_POOL_THREADS + 3), &m);
        assert_eq!(g.census().starved, 0);
        assert_eq!(g.next_scan(), t0 + Duration::from_millis(250));
        // One pool thread for three connections: two wait in the queue, silent or not.
        let t1 = t0 + Duration::from_millis(250);
        g.tick(t1, None, Some(NON_POOL_THREADS + 1), &m);
        assert_eq!(g.census().starved, 2);
        assert_eq!(g.next_scan(), t1 + RESCUE_CHECK * 2, "checks again soon");
        // Idle pool threads beyond the connections starve nobody; unknown: nobody.
        g.tick(t1 + RESCUE_CHECK * 2, None, Some(NON_POOL_THREADS + 9), &m);
        assert_eq!(g.census().starved, 0);
        g.tick(t1 + RESCUE_CHECK * 4, None, None, &m);
        assert_eq!(g.census().starved, 0);
    }

    #[test]
    fn a_request_from_a_new_connection_brings_the_check_forward() {
        let (listener, mut g, m, t0) = fixture(limits());
        g.tick(t0, None, None, &m);
        assert_eq!(g.next_scan(), t0 + Duration::from_secs(2), "quiet");
        let conns = pairs(&listener, 1);
        let t1 = t0 + Duration::from_millis(100);
        g.request_from(Some(conns[0].0.local_addr().unwrap()), t1);
        assert_eq!(g.next_scan(), t1 + RESCUE_CHECK);
        g.tick(t1 + RESCUE_CHECK, None, None, &m);
        // Known now: its next requests do not bring anything forward.
        let next = g.next_scan();
        g.request_from(Some(conns[0].0.local_addr().unwrap()), t1 + RESCUE_CHECK);
        assert_eq!(g.next_scan(), next);
    }

    #[test]
    fn the_pool_is_looked_at_between_scans_while_watched() {
        let (_listener, mut g, m, t0) = fixture(limits());
        g.tick(t0, None, None, &m);
        assert_eq!(g.next_scan(), t0 + Duration::from_secs(2), "quiet");
        assert_eq!(g.next_deadline(), t0 + pool::WATCH, "watched after start");
        // Looked at (and scanned only if descriptors moved, which other tests in this
        // process may do): the next look follows.
        g.tick(t0 + pool::WATCH, None, None, &m);
        assert_eq!(g.next_deadline(), t0 + pool::WATCH * 2);
    }

    #[test]
    fn the_probe_connection_is_ours_not_a_client() {
        let (listener, mut g, m, t0) = fixture(Limits {
            max_connections: 1,
            ..limits()
        });
        let mut conns = pairs(&listener, 2);
        let probe = conns[0].0.local_addr().unwrap();
        g.request_from(Some(probe), t0);
        g.probe_from(Some(probe));
        g.request_from(Some(conns[1].0.local_addr().unwrap()), t0);
        g.tick(t0, None, Some(NON_POOL_THREADS + 2), &m);
        assert_eq!(g.census().open, 1, "the client only");
        assert_eq!(g.census().starved, 0, "held all the same");
        conns[0]
            .0
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut b = [0u8; 1];
        assert!(conns[0].0.read(&mut b).is_err(), "not shed for the cap");
    }

    #[test]
    fn caps_follow_the_limits_in_force() {
        let d = Limits::default();
        let none = InForce::default();
        for (in_force, connections, threads) in [
            (none, d.max_connections, d.max_threads),
            // Plenty: the defaults stay the upper bounds.
            (
                InForce {
                    nofile: Some(1 << 20),
                    fds: Some(10),
                    tasks_left: Some(100_000),
                    threads: Some(2),
                    ..none
                },
                256,
                300,
            ),
            // A hard open-files limit of 128: (128 - 10 - 40) / 2 = 39 possible; tight, so
            // half of them kept.
            (
                InForce {
                    nofile: Some(128),
                    fds: Some(10),
                    ..none
                },
                19,
                300,
            ),
            // pids.max=32 with 2 tasks in the group: 32 threads, 8 idle, 24 for connections.
            (
                InForce {
                    tasks_left: Some(30),
                    threads: Some(2),
                    ..none
                },
                12,
                20,
            ),
            // 2000 connections possible is not tight: 3/4 of them, under the defaults.
            (
                InForce {
                    nofile: Some(4096 + 10 + 40),
                    fds: Some(10),
                    ..none
                },
                256,
                300,
            ),
            // RLIMIT_NPROC bounds from above too; the tighter limit wins.
            (
                InForce {
                    tasks_left: Some(1000),
                    nproc: Some(47),
                    threads: Some(2),
                    ..none
                },
                19,
                27,
            ),
            // Hopeless limits still leave one connection.
            (
                InForce {
                    nofile: Some(20),
                    fds: Some(10),
                    ..none
                },
                1,
                300,
            ),
        ] {
            let l = Limits::derive(&in_force);
            assert_eq!(
                (l.max_connections, l.max_threads),
                (connections, threads),
                "{in_force:?}"
            );
        }
    }

    #[test]
    fn a_stuck_connection_counts_once_for_its_two_descriptors() {
        let (listener, mut g, m, t0) = fixture(limits());
        let (client, server) = pairs(&listener, 1).pop().unwrap();
        // tiny_http reads and writes through two descriptors of the same socket.
        let twin = server.try_clone().unwrap();
        g.tick(t0, None, None, &m);
        drop(client);
        server.shutdown(Shutdown::Both).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        g.tick(t0 + Duration::from_secs(1), None, None, &m);
        g.tick(t0 + Duration::from_secs(12), None, None, &m);
        assert_eq!(g.census(), census(0, 1), "one connection, not two");
        drop((server, twin));
    }

    #[test]
    fn a_connection_open_long_after_shutdown_is_stuck() {
        let (listener, mut g, m, t0) = fixture(limits());
        // The server side stays open (as a deadlocked tiny_http thread would keep it).
        let _conns = pairs(&listener, 1);
        g.tick(t0, None, None, &m);
        g.tick(t0 + Duration::from_secs(5), None, None, &m);
        assert_eq!(g.census(), Census::default());
        g.tick(t0 + Duration::from_secs(15), None, None, &m);
        assert_eq!(g.census(), census(0, 1));
    }
}
