//! tiny_http 0.12's thread pool (`TaskPool`), as the exporter models it, and everything the
//! exporter does about it.
//!
//! # The pool
//! tiny_http's accept thread hands every accepted connection to the pool. If the pool counts
//! no idle thread, it starts a new thread for the connection; otherwise it queues the
//! connection (first in, first out) and wakes one waiting thread. A thread serves one
//! connection until it ends, then takes the next queued one, or waits. Four threads wait for
//! ever; any other thread ends after 5 s without a connection.
//!
//! The count of idle threads is stale: a woken thread still counts as idle until it runs.
//! A connection accepted in that window (microseconds, or milliseconds on a loaded machine)
//! is queued although no thread will take it: it waits, unread, until some connection ends
//! (see [`PoolCensus::starved`]). The exporter cannot see tiny_http accept a connection, and
//! a starved connection sends nothing the loop can see; a scrape queued behind a silent one
//! waits for ever. So the hazard exists exactly while some pool thread is idle:
//!
//! - **Parking** keeps the idle count at zero: the exporter holds a connection of its own on
//!   each thread tiny_http keeps idle for ever (at start, and on any thread idle longer than
//!   tiny_http lets an ordinary one live), at most [`MAX_PARKED`]. With no idle thread,
//!   every new connection gets a thread of its own, which cannot starve. Parked connections
//!   send nothing, are never shut down and are not clients.
//! - **Watching** covers the rest: a connection that ends leaves its thread idle for 5 s (a
//!   readiness check that connects and hangs up does exactly that), and the first seconds
//!   after start race the parking. So for [`START_WATCH`] after start, for [`WATCH_FOR`]
//!   after a client's connection came or went or a thread was started, while a thread stays
//!   idle, and while connections starve, the pool is looked at every [`WATCH`]: a look
//!   counts descriptors and threads, and when either moved since the last scan the guard
//!   scans and counts starved connections. Then the watch stops, and an idle exporter adds
//!   no wake-ups (after one scrape on a fresh connection it looks for about 5 s, until
//!   tiny_http ends the idle thread). What it leaves: a connection that comes and goes
//!   unseen after a quiet spell leaves an idle thread that only the next scan sees (the
//!   guard's quiet interval, 2 s); a burst queued behind it in between waits until then.
//! - **Rescuing** ([`kick`]): a connection of ours that hangs up at once. With no idle
//!   thread counted it gets a new thread, which reads EOF and takes the starved connection
//!   from the queue; with one counted, that thread takes the starved connection first.
//!
//! The self-probe keeps its own thread busy the same way (see `probe`): it closes its last
//! connection just before the next one, which takes the freed thread. Without that its
//! thread would be idle between probes, for ever, and the watch would never stop.
//!
//! With no idle thread, the accept thread starts a thread per connection and accepts more
//! slowly: the listen backlog is raised to [`BACKLOG`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::host::limits;
use crate::log;

/// How many pool threads tiny_http 0.12 keeps for ever (`MIN_THREADS` in its task pool).
pub const POOL_MIN_THREADS: usize = 4;

/// Threads of the process that are not tiny_http pool threads: the loop's, tiny_http's
/// accept thread and the one that waits for SIGTERM and SIGINT (`app`). Every other thread
/// serves (or waits to serve) one connection.
pub const NON_POOL_THREADS: u64 = 3;

/// Most connections the pool parks on idle threads. tiny_http keeps 4 idle threads for
/// ever; a few more may stay idle when a restart or a burst races their start.
pub const MAX_PARKED: usize = 8;

/// The listening socket's accept backlog. With no idle pool thread (see parking), tiny_http's
/// accept thread starts a thread for every connection it accepts, about 50 µs each: a
/// burst of a few hundred connections arriving faster than that overflows Linux's default
/// of 128 (std's), and a connection whose handshake the kernel drops waits 1 s for its
/// client to retry. The connection cap (256 by default) fits several times over.
pub const BACKLOG: u32 = 1024;

/// Prepares the listening socket for tiny_http's accept thread: see [`BACKLOG`].
pub fn tune_listener(listener: &std::net::TcpListener) -> std::io::Result<()> {
    crate::host::sys::raise_listen_backlog(listener, BACKLOG)
}

/// How long tiny_http lets a pool thread beyond its 4 wait for a connection before it ends.
pub const TRANSIENT_IDLE: Duration = Duration::from_secs(5);

/// Pool threads idle this long are ones tiny_http keeps for ever (the others end after
/// [`TRANSIENT_IDLE`]); the pool parks a connection on each. Idle threads seen while the
/// pool is younger than [`PARK_AT_ONCE`] are parked on at once: at start every idle thread
/// is such a thread.
pub const PARK_AFTER: Duration = Duration::from_secs(6);

/// See [`PARK_AFTER`].
pub const PARK_AT_ONCE: Duration = Duration::from_secs(2);

/// How often the pool is looked at while a thread may be idle: well under the 100 ms a
/// scrape may wait behind a starved connection.
pub const WATCH: Duration = Duration::from_millis(40);

/// How long the watch goes on after a client's connection came or went, or a thread was
/// started: long enough for a short connection (a readiness check, a scrape) to end and its
/// thread to be seen idle, after which the watch goes on while it stays idle.
pub const WATCH_FOR: Duration = Duration::from_secs(3);

/// How long the watch goes on after start: clients that poll for the port meet the pool
/// while it is being parked, and their own connections are not yet seen.
pub const START_WATCH: Duration = Duration::from_secs(6);

/// How soon after a rescue or a park the guard checks that it worked.
pub const RESCUE_CHECK: Duration = Duration::from_millis(5);

/// Longest the loop waits for the kernel to accept a connection of its own.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(20);

/// Where to connect to reach a listener bound to `local`: loopback for a wildcard address.
#[must_use]
pub fn target_for(local: SocketAddr) -> SocketAddr {
    let ip = match local.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, local.port())
}

/// A connection of ours to our own listener at `target`: bounded by a short timeout, since
/// the loop makes it (a park, a kick, the self-probe), and loopback answers at once or never.
pub fn connect(target: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
}

/// Connects to our own listener at `local` and hangs up at once: the rescue of a starved
/// connection (see the module doc). Errors are ignored: the next scan tries again.
pub fn kick(local: SocketAddr) {
    let _ = connect(target_for(local));
}

/// The descriptors and threads that [`PoolCensus::read`] derives from: what the guard's scan
/// found, in the pool's terms.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolCensus {
    /// Connections accepted by tiny_http but given no thread: connections held (open,
    /// shut down or orphaned, all still owning their descriptors) minus pool threads. Each
    /// pool thread serves one connection, so any excess sits in tiny_http's queue, unread.
    /// Counted whether or not they have sent anything: the queue is first in, first out, so
    /// a scrape can wait behind silent connections.
    pub starved: usize,
    /// Pool threads with no connection: idle threads, which a burst can be queued behind.
    pub idle: usize,
}

impl PoolCensus {
    /// The pool's state given `held` connections (ours and clients') and the process's
    /// `threads`, when known.
    #[must_use]
    pub fn read(held: u64, threads: Option<u64>) -> PoolCensus {
        let pool = threads.map(|t| t.saturating_sub(NON_POOL_THREADS));
        PoolCensus {
            starved: pool.map_or(0, |p| held.saturating_sub(p) as usize),
            idle: pool.map_or(0, |p| p.saturating_sub(held) as usize),
        }
    }
}

/// A connection parked on an idle pool thread: our side, its address, and whether a scan has
/// seen tiny_http's side yet.
#[derive(Debug)]
struct Parked {
    /// Held open, never read or written: tiny_http's thread blocks reading it.
    _stream: TcpStream,
    local: SocketAddr,
    since: Instant,
    seen: bool,
}

/// The pool model's state: the parked connections, the watch, the rescues.
#[derive(Debug)]
pub struct Pool {
    port: u16,
    /// An address the listener is reached at (a connection's local one), for parking.
    listener: Option<SocketAddr>,
    parked: Vec<Parked>,
    created: Instant,
    /// Since when pool threads have been idle.
    idle_since: Option<Instant>,
    /// Descriptors and threads at the last scan: a look that finds them moved asks for one.
    counts: Option<(u64, u64)>,
    /// Client connections and threads at the last scan: when they move, the watch goes on.
    shape: Option<(u64, u64)>,
    watch_until: Instant,
    last_look: Instant,
    census: PoolCensus,
    /// Starved connections found so far (each one the loop is asked to rescue), and when
    /// that was last logged.
    starved_total: u64,
    last_starved_log: Option<Instant>,
}

impl Pool {
    /// The pool behind the listener on local port `port`, watched from `now` on.
    #[must_use]
    pub fn new(port: u16, now: Instant) -> Pool {
        Pool {
            port,
            listener: None,
            parked: Vec::new(),
            created: now,
            idle_since: None,
            counts: None,
            shape: None,
            watch_until: now + START_WATCH,
            last_look: now,
            census: PoolCensus::default(),
            starved_total: 0,
            last_starved_log: None,
        }
    }

    /// What the last scan found.
    #[must_use]
    pub fn census(&self) -> PoolCensus {
        self.census
    }

    /// Connections parked now.
    #[must_use]
    pub fn parked(&self) -> usize {
        self.parked.len()
    }

    /// When the pool wants to be looked at next, if it is being watched.
    #[must_use]
    pub fn next_look(&self) -> Option<Instant> {
        (self.last_look < self.watch_until).then_some(self.last_look + WATCH)
    }

    /// A look at `now` with `fds` descriptors open and `threads` threads: whether either
    /// moved since the last scan (then the guard must scan). Starved connections found by
    /// that scan always ask for another.
    pub fn moved(&mut self, now: Instant, fds: Option<u64>, threads: Option<u64>) -> bool {
        self.last_look = now;
        self.census.starved > 0 || self.counts != both(fds, threads)
    }

    /// Takes the pool's own connections out of a scan's `seen` connections (by peer): they
    /// are counted as held, never judged. A parked connection whose other side is gone (or
    /// never came) after a while is dropped. `local` is where clients reach the listener.
    pub fn claim<V>(
        &mut self,
        seen: &mut std::collections::HashMap<SocketAddr, V>,
        local: Option<SocketAddr>,
        now: Instant,
    ) {
        if local.is_some() {
            self.listener = local;
        }
        for p in &mut self.parked {
            p.seen = seen.remove(&p.local).is_some();
        }
        self.parked
            .retain(|p| p.seen || now.saturating_duration_since(p.since) < Duration::from_secs(1));
    }

    /// Counts the pool after a scan at `now` found `held` connections besides the parked
    /// ones, `clients` of them clients' (not the probe's), with `fds` descriptors and
    /// `threads` threads in the process; decides whether to keep watching.
    ///
    /// The watch goes on when the clients' connections moved or a thread was started (a
    /// connection that came may leave its thread idle when it ends), while a thread stays
    /// idle, and while connections starve. A thread that ended is no reason, nor is the
    /// probe's own turnover: its thread is idle for a few milliseconds between two probes,
    /// which a scan can see once, not twice.
    pub fn count(
        &mut self,
        now: Instant,
        held: u64,
        clients: u64,
        fds: Option<u64>,
        threads: Option<u64>,
    ) -> PoolCensus {
        let parked_seen = self.parked.iter().filter(|p| p.seen).count() as u64;
        self.census = PoolCensus::read(held + parked_seen, threads);
        let idle_since = if self.census.idle == 0 {
            self.idle_since = None;
            now
        } else {
            *self.idle_since.get_or_insert(now)
        };
        if now.saturating_duration_since(idle_since) >= WATCH / 2 {
            self.watch_until = self.watch_until.max(now + WATCH * 2);
        }
        let shape = threads.map(|t| (clients, t));
        let moved = match (shape, self.shape) {
            (Some((c, t)), Some((was_c, was_t))) => c != was_c || t > was_t,
            (now, was) => now != was,
        };
        if moved || self.census.starved > 0 {
            self.watch_until = self.watch_until.max(now + WATCH_FOR);
        }
        self.shape = shape;
        self.counts = both(fds, threads);
        self.last_look = now;
        self.log_starved(now);
        self.census
    }

    /// Parks a connection on each pool thread that tiny_http will keep idle for ever (see
    /// [`PARK_AFTER`]), up to [`MAX_PARKED`]. Returns whether it parked any: the guard then
    /// checks soon that each took an idle thread (a race can give it a new one).
    pub fn park(&mut self, now: Instant) -> bool {
        let idle = self.census.idle;
        let Some(since) = self.idle_since.filter(|_| idle > 0) else {
            return false;
        };
        let age = now.saturating_duration_since(self.created);
        // Right at the start the pool's threads may not be waiting yet: a connection parked
        // then gets a thread of its own and leaves theirs idle.
        // Later idle threads are parked only once they have outlived tiny_http's 5 s: a
        // client that connects anew for each request leaves one idle thread after the other.
        let starting =
            (RESCUE_CHECK..PARK_AT_ONCE).contains(&age) && self.parked.len() < POOL_MIN_THREADS;
        if !starting && now.saturating_duration_since(since) < PARK_AFTER {
            return false;
        }
        // Until a connection shows where the listener is reached, loopback: a wildcard
        // listener (the default) accepts there; for another address parking waits.
        let target = self
            .listener
            .unwrap_or_else(|| SocketAddr::from((std::net::Ipv4Addr::LOCALHOST, self.port)));
        // Parked connections not yet seen by a scan may already hold an idle thread.
        let unseen = self.parked.iter().filter(|p| !p.seen).count();
        let most = if starting {
            POOL_MIN_THREADS
        } else {
            MAX_PARKED
        };
        let room = most.saturating_sub(self.parked.len());
        let mut any = false;
        for _ in 0..idle.saturating_sub(unseen).min(room) {
            let parked = connect(target).and_then(|stream| Ok((stream.local_addr()?, stream)));
            match parked {
                Ok((local, stream)) => {
                    self.parked.push(Parked {
                        _stream: stream,
                        local,
                        since: now,
                        seen: false,
                    });
                    any = true;
                }
                // The next scan tries again.
                Err(_) => break,
            }
        }
        self.idle_since = None;
        any
    }

    /// Starved connections are tiny_http's doing and rescued at once, but an operator (and
    /// the benchmark) should see that it happens: one line a second at most, with the total.
    fn log_starved(&mut self, now: Instant) {
        let starved = self.census.starved;
        if starved == 0 {
            return;
        }
        self.starved_total += starved as u64;
        if self
            .last_starved_log
            .is_some_and(|t| now.saturating_duration_since(t) < Duration::from_secs(1))
        {
            return;
        }
        self.last_starved_log = Some(now);
        log::info(
            "rescuing connections tiny_http left without a thread",
            &[
                ("starved", &starved),
                ("starved_total", &self.starved_total),
            ],
        );
    }
}

/// Descriptors open now (a look's first figure; the loop reads the threads).
#[must_use]
pub fn open_fds() -> Option<u64> {
    limits::count_entries("/proc/self/fd")
}

/// Threads of the process now (a look's second figure, when the loop has not read it).
#[must_use]
pub fn threads_now() -> Option<u64> {
    limits::count_entries("/proc/self/task")
}

/// Both figures of a look, when both are known.
fn both(fds: Option<u64>, threads: Option<u64>) -> Option<(u64, u64)> {
    Some((fds?, threads?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_are_reached_on_loopback() {
        for (local, want) in [
            ("0.0.0.0:80", "127.0.0.1:80"),
            ("[::]:80", "[::1]:80"),
            ("10.1.2.3:9", "10.1.2.3:9"),
            ("[::1]:8000", "[::1]:8000"),
        ] {
            assert_eq!(target_for(local.parse().unwrap()).to_string(), want);
        }
    }

    #[test]
    fn starved_and_idle_are_held_connections_against_pool_threads() {
        let pool = |held, threads| PoolCensus::read(held, threads);
        assert_eq!(pool(3, Some(NON_POOL_THREADS + 3)), PoolCensus::default());
        assert_eq!(
            pool(3, Some(NON_POOL_THREADS + 1)),
            PoolCensus {
                starved: 2,
                idle: 0
            }
        );
        assert_eq!(
            pool(1, Some(NON_POOL_THREADS + 4)),
            PoolCensus {
                starved: 0,
                idle: 3
            }
        );
        assert_eq!(pool(9, None), PoolCensus::default(), "unknown: nothing");
    }

    #[test]
    fn the_watch_goes_on_while_the_pool_moves_and_stops_after() {
        let t0 = Instant::now();
        let mut pool = Pool::new(9, t0);
        assert_eq!(pool.next_look(), Some(t0 + WATCH), "watched from the start");
        // Nothing idle, nothing moving: the watch ends with the start's.
        let (fds, threads) = (Some(20), Some(NON_POOL_THREADS + 1));
        pool.count(t0, 1, 1, fds, threads);
        let t1 = t0 + START_WATCH + WATCH;
        assert!(
            !pool.moved(t1, fds, threads),
            "the same descriptors and threads"
        );
        pool.count(t1, 1, 1, fds, threads);
        assert_eq!(pool.next_look(), None, "quiet: no looks of its own");
        assert!(pool.moved(t1, Some(22), threads), "a new connection");
        // The probe's thread idle between two probes, seen once: no reason to watch.
        pool.count(t1, 0, 1, Some(19), threads);
        pool.count(t1 + RESCUE_CHECK, 1, 1, fds, threads);
        assert_eq!(pool.next_look(), None);
        // A thread that stays idle (a client's connection ended): watched again.
        let t2 = t1 + WATCH;
        pool.count(t2, 0, 0, fds, threads);
        assert_eq!(pool.next_look(), Some(t2 + WATCH), "a client left");
        pool.count(t2 + WATCH_FOR, 0, 0, fds, threads);
        let t3 = t2 + WATCH_FOR + WATCH;
        pool.count(t3, 0, 0, fds, threads);
        assert_eq!(
            pool.next_look(),
            Some(t3 + WATCH),
            "still idle: still watched"
        );
        // The idle thread ends (tiny_http's 5 s): nothing left to watch.
        let t4 = t3 + TRANSIENT_IDLE;
        pool.count(t4, 0, 0, fds, Some(NON_POOL_THREADS));
        assert_eq!(pool.next_look(), None, "a thread that ended is no reason");
        // More threads than before: moved, and watched.
        assert!(pool.moved(t4, fds, Some(NON_POOL_THREADS + 1)));
        pool.count(t4, 1, 0, fds, Some(NON_POOL_THREADS + 1));
        assert_eq!(pool.next_look(), Some(t4 + WATCH), "a thread was started");
    }
}
