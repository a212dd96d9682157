//! The HTTP output: Prometheus scrapes it. One type, `Http`, that the loop wakes like any
//! other output, and that owns the loop's sleep while it is on: it waits in tiny_http's
//! `recv_timeout` and answers what is waiting, a bounded number in a row.
//!
//! Everything that contains tiny_http 0.12 lives under here, each file owning its whole rule:
//! `listener` (the socket and its options), `server` (routing, and every answer framed and
//! written whole in one send, past tiny_http's `Response`), `body`
//! (requests with a body), [`guard`] (the connection table and shedding), `probe` (the
//! loop's request to itself) and `restart` (restarting in place, and the drain before).
//! This file only puts them in order.

pub(crate) mod body;
pub mod guard;
pub(crate) mod listener;
pub mod pool;
pub(crate) mod probe;
pub(crate) mod restart;
pub(crate) mod server;

use std::net::{Shutdown, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::host::process::ProcessReader;
use crate::host::sys;
use crate::log;
use crate::metrics::CloseReason;
use crate::output::kind::{Numbers, Opening, Output};

use self::guard::Guard;
use self::probe::SelfProbe;
use self::restart::Restarts;

pub use self::server::Site;

/// Most requests answered back to back before the source is stepped again, so a flood of
/// scrapes cannot starve the widgets.
const MAX_DRAIN: usize = 64;

/// How often the loop probes its own listener (more often under a short systemd watchdog).
const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a probe may take to come back through the HTTP path.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most starved connections rescued per guard scan (see [`probe::kick`]).
const MAX_KICKS: usize = 16;

/// How long the self-probe may fail before the exporter exits so that its supervisor
/// restarts it: a process that cannot be scraped must not look alive.
const PROBE_GIVE_UP: Duration = Duration::from_secs(6);

/// The HTTP output: tiny_http's server, and around it the routing, the self-probe, the
/// connection guard and the restart rule.
struct Http {
    site: Site,
    probe: SelfProbe,
    guard: Guard,
    /// Reads our own RSS and threads for the guard.
    own: ProcessReader,
    /// When to restart in place (or give up), and the drain before it.
    restarts: Restarts,
    /// The listening socket, kept to hand to a re-executed image.
    kept: TcpListener,
    /// Its address.
    address: SocketAddr,
    started: Instant,
    /// Declared last, so dropped last, when the exporter exits: tiny_http's drop connects to
    /// its own listener to stop its accept thread, and under a connection flood that connect
    /// hangs (and the exit with it) unless the probe's and the guard's own connections are
    /// closed first.
    server: tiny_http::Server,
}

/// The HTTP output, unless `--web.listen-address=none`: binds (or adopts) the listener and
/// starts tiny_http on it, probing often enough for systemd's watchdog, if there is one.
pub(crate) fn open(opening: &Opening) -> Result<Option<Box<dyn Output>>, Error> {
    let config = opening.config;
    if !config.serves_http() {
        return Ok(None);
    }
    let now = opening.started;
    sys::tune_malloc();
    listener::raise_fd_limit();
    let socket = listener::listener(config)?;
    listener::tune_listener(&socket).map_err(|e| Error::io("tuning the listening socket", e))?;
    let address = socket
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    // Kept to pause tiny_http's accepting and to hand the listening socket to a
    // re-executed image (see `restart`).
    let kept = socket
        .try_clone()
        .map_err(|e| Error::io("duplicating the listening socket", e))?;
    let server = tiny_http::Server::from_listener(socket, None)
        .map_err(|e| Error::Fatal(format!("cannot start the HTTP server: {e}")))?;
    let probe_interval = opening
        .watchdog
        .map_or(PROBE_INTERVAL, |ping| PROBE_INTERVAL.min(ping / 2));
    Ok(Some(Box::new(Http {
        site: Site::new(&config.telemetry_path).describing(config.source_about()),
        probe: SelfProbe::new(address, probe_interval, PROBE_TIMEOUT, now),
        guard: Guard::new(address.port(), guard::Limits::in_force(), now),
        own: ProcessReader::new(),
        restarts: Restarts::new(opening.carried, now),
        kept,
        address,
        started: now,
        server,
    })))
}

impl Output for Http {
    fn announce(&self) {
        log::info("listening", &[("address", &self.address)]);
    }

    /// Runs the guard, the restart rule and the self-probe when due.
    fn wake(&mut self, now: Instant, numbers: &mut Numbers) -> Result<(), Error> {
        let metrics = numbers.metrics();
        // The guard scans before the probe sends, so it never finds the probe's own
        // connection still waiting for its request.
        if now >= self.guard.next_deadline() {
            // Between scans the guard only looks at tiny_http's pool (every few tens of
            // milliseconds while it watches): our own /proc figures are read for scans, and
            // a look counts only the threads, which the pool's census needs if it scans.
            let scan = self.guard.scan_due(now);
            let (rss, threads) = if scan {
                let stats = self.own.read();
                (stats.resident_memory_bytes, stats.threads)
            } else {
                (None, pool::threads_now())
            };
            self.guard.tick(now, rss, threads, metrics);
            let census = self.guard.census();
            if census.starved > 0 && !self.restarts.draining() {
                log::debug(
                    "rescuing starved connections",
                    &[("starved", &census.starved)],
                );
                for _ in 0..census.starved.min(MAX_KICKS) {
                    probe::kick(self.address);
                }
            }
            if scan {
                let seen = restart::Observation {
                    now,
                    rss,
                    threads,
                    open: census.open,
                    stuck: census.stuck,
                    last_close: self.guard.last_close(),
                };
                self.restarts.observe(&seen, &self.kept, self.address)?;
                if self.restarts.draining() {
                    self.site.close_connections();
                }
            }
        }
        if self.restarts.wants_look(now) {
            let open = self.guard.open_connections(now);
            let position = numbers.position();
            self.restarts
                .finish(now, &open, &self.kept, metrics, position.as_deref())?;
        }
        if self.restarts.draining() {
            // The probe's connection would wait in the backlog for the next image.
            return Ok(());
        }
        self.probe.tick(now);
        metrics.http.set_self_probe(self.probe.ok());
        let failing = self.probe.failing_for(self.started, now);
        if failing >= PROBE_GIVE_UP {
            return Err(Error::Fatal(format!(
                "the HTTP server has not answered the self-probe for {} s ({}); exiting so that the supervisor restarts the exporter",
                failing.as_secs(),
                self.probe.last_error().unwrap_or("no answer")
            )));
        }
        self.guard.scan_quietly_at(self.probe.next_send());
        Ok(())
    }

    fn next_due(&self) -> Instant {
        self.restarts
            .next_deadline()
            .unwrap_or_else(|| self.probe.next_deadline().min(self.guard.next_deadline()))
    }

    /// Waits in `recv_timeout`, then answers what is waiting, at most [`MAX_DRAIN`] in a row;
    /// whatever is taken from the queue is answered (a dropped request would go out as a
    /// bare 500).
    fn wait(&mut self, until: Instant, numbers: &mut Numbers) -> Result<bool, Error> {
        let mut next = self
            .server
            .recv_timeout(until.saturating_duration_since(Instant::now()));
        for drained in 1..=MAX_DRAIN {
            match next {
                Ok(Some(request)) => self.serve(request, Instant::now(), numbers),
                Ok(None) => break,
                Err(e) => {
                    // tiny_http's accept thread hands over one error and exits: a drain's
                    // pause, or a port dead for good (then we exit).
                    self.restarts.accept_failed(&e)?;
                    break;
                }
            }
            if drained == MAX_DRAIN {
                break;
            }
            next = self.server.try_recv();
        }
        Ok(true)
    }

    /// Serving proves the exporter up from the start: requests wait in the listen backlog
    /// until the loop answers them.
    fn ready(&self) -> Option<String> {
        Some(format!("serving on {}", self.address))
    }

    fn alive(&self, window: Duration, now: Instant) -> bool {
        self.probe.succeeded_within(window, now)
    }
}

impl Http {
    /// Answers one request: the self-probe's, one with a body we refuse, or a client's.
    fn serve(&mut self, request: tiny_http::Request, now: Instant, numbers: &mut Numbers) {
        let peer = request.remote_addr().copied();
        self.guard.request_from(peer, now);
        self.restarts.served(peer, now);
        let is_probe = server::header_value(&request, probe::HEADER)
            .is_some_and(|token| self.probe.answer(token, now).is_some());
        if is_probe {
            self.guard.probe_from(peer);
            numbers.metrics().http.set_self_probe(true);
            server::answer_probe(request);
            return;
        }
        self.guard.note_activity(now);
        if let Some(unread) = body::unread(&request) {
            body::reject(request, unread, &mut self.guard, numbers.metrics(), now);
        } else if self.guard.is_shut(peer) {
            // Pipelined behind a request that got its connection cut: the answer could not
            // be delivered, so do not render it. (Dropping answers 500 into a closed socket.)
            drop(request);
        } else {
            // Each scrape sees the source as of now, not as of the last wake-up.
            numbers.step(now);
            let metrics = numbers.metrics();
            if self.site.handle(request, metrics, self.probe.last_error()) {
                // The client stopped reading: one bounded stall, then no more.
                self.guard.cut(
                    peer,
                    Shutdown::Both,
                    CloseReason::WriteTimeout,
                    now,
                    metrics,
                );
            }
        }
    }
}
