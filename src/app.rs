//! The one loop that owns the work: step the source to now, answer the requests that are
//! waiting (a bounded number), run the self-probe and the systemd watchdog when due, then
//! sleep in `recv_timeout` until the next of those events. Also the start-up order (limits,
//! listener, server, readiness) and what ends the process. It names no particular source:
//! `source::open` picks it from the config.

use std::env;
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use crate::config::{format_duration, Config, ListenAddress};
use crate::error::Error;
use crate::host::clock;
use crate::host::process::ProcessReader;
use crate::host::sys;
use crate::host::systemd::{self, Notifier};
use crate::log;
use crate::metrics::{CloseReason, Metrics};
use crate::output::http::guard::{self, Guard};
use crate::output::http::probe::{self, SelfProbe};
use crate::output::http::restart::{self, Restarts};
use crate::output::http::{self, Site, UnreadBody};
use crate::output::textfile::{Outcome, Textfile};
use crate::source::{self, Source};

/// Most requests answered back to back before the source is stepped again, so a flood of
/// scrapes cannot starve the widgets.
pub const MAX_DRAIN: usize = 64;

/// How often the loop probes its own listener (more often under a short systemd watchdog).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a probe may take to come back through the HTTP path.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Most starved connections rescued per guard scan (see [`probe::kick`]).
pub const MAX_KICKS: usize = 16;

/// How long the self-probe may fail before the exporter exits so that its supervisor
/// restarts it: a process that cannot be scraped must not look alive.
pub const PROBE_GIVE_UP: Duration = Duration::from_secs(6);

/// Binds the listen address. `:PORT` means every interface: IPv6 dual-stack where the host has
/// IPv6, IPv4 where it does not (old hosts often boot with IPv6 disabled).
pub fn bind(address: &ListenAddress) -> Result<TcpListener, Error> {
    let bind = |addr: SocketAddr| {
        TcpListener::bind(addr).map_err(|source| Error::Bind {
            address: addr.to_string(),
            source,
        })
    };
    match *address {
        ListenAddress::Ip(addr) => bind(addr),
        ListenAddress::Off => Err(Error::Fatal(
            "--web.listen-address=none: there is no address to listen on".to_owned(),
        )),
        ListenAddress::AllInterfaces(port) => {
            match bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
                Err(Error::Bind { source, .. })
                    if source.kind() != std::io::ErrorKind::AddrInUse =>
                {
                    bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
                }
                other => other,
            }
        }
    }
}

/// The listener: the socket systemd passed (required with `--web.systemd-socket`, adopted
/// automatically when `LISTEN_PID` names us), else a fresh bind of the listen address.
fn listener(config: &Config) -> Result<TcpListener, Error> {
    let passed = systemd::listen_fds(
        env::var("LISTEN_PID").ok().as_deref(),
        env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    let adopt = || {
        let listener = sys::adopt_listener(systemd::LISTEN_FDS_START)
            .map_err(|e| Error::io("adopting the socket passed by systemd", e))?;
        // Passed non-blocking (systemd's NonBlocking=), tiny_http's accept thread would exit
        // at its first empty backlog.
        listener
            .set_nonblocking(false)
            .map_err(|e| Error::io("making the passed socket blocking", e))?;
        Ok(listener)
    };
    match passed {
        Ok(Some(count)) => {
            if count > 1 {
                log::warn(
                    "systemd passed several sockets; serving on the first only",
                    &[("count", &count)],
                );
            }
            let listener = adopt()?;
            log::info(
                "adopted the listening socket passed at fd 3 (by systemd, or by a restart in place)",
                &[],
            );
            Ok(listener)
        }
        Ok(None) if config.systemd_socket => Err(Error::Fatal(
            "--web.systemd-socket: systemd passed no socket (LISTEN_PID/LISTEN_FDS are not set for this process)"
                .to_owned(),
        )),
        Err(why) if config.systemd_socket => {
            Err(Error::Fatal(format!("--web.systemd-socket: {why}")))
        }
        Err(why) => {
            log::warn(
                "ignoring malformed socket-activation variables",
                &[("reason", &why)],
            );
            bind(&config.listen_address)
        }
        Ok(None) => bind(&config.listen_address),
    }
}

/// Runs the exporter until it cannot serve any more; returns why.
pub fn run(config: &Config) -> Result<std::convert::Infallible, Error> {
    log::init(config.log_level, config.log_format);
    // Taken while this is the only thread: the environment is not safe to change later.
    let carried = restart::Carried::take_from_env();
    let started = Instant::now();
    // Before any socket: a textfile that cannot be is a usage error (exit 2).
    let textfile = match &config.textfile_path {
        Some(path) => Some(
            Textfile::open(path, config.textfile_interval, started).map_err(|why| {
                Error::Usage(format!("invalid value {path:?} for --textfile.path: {why}"))
            })?,
        ),
        None => None,
    };
    let systemd = Systemd::from_env();
    let (web, http) = if config.serves_http() {
        let (web, http) = Web::start(config, &carried, systemd.watchdog, started)?;
        (Some(web), Some(http))
    } else {
        (None, None)
    };

    log_start(config);
    if let Some(web) = &web {
        log::info("listening", &[("address", &web.address)]);
    }
    if running_as_root() {
        log::warn(
            "running as root; the exporter needs no privileges, run it as an unprivileged user",
            &[],
        );
    }

    let metrics = Metrics::new(source::parts(config), config.average_window, started);
    if let Some(state) = &carried.counters {
        if metrics.import_counters(state) {
            log::info("restarted in place; counters carried over", &[]);
        }
    }
    let source = source::open(config, &metrics, started, clock::unix_nanos())?;
    let mut state = Loop {
        source,
        web,
        textfile,
        next_ping: started,
        started,
        metrics,
        systemd,
        ready: false,
    };
    if let Some(web) = &state.web {
        state.ready = true;
        state
            .systemd
            .notify(&format!("READY=1\nSTATUS=serving on {}", web.address));
    }

    loop {
        let deadline = state.wake(Instant::now())?;
        let timeout = deadline.saturating_duration_since(Instant::now());
        let Some(http) = &http else {
            // With HTTP off there are no requests to wait for: sleep until the source's next
            // step (a widget event, a log poll) or the next write is due.
            std::thread::park_timeout(timeout);
            continue;
        };
        let mut next = http.recv_timeout(timeout);
        // Answer what is waiting, at most MAX_DRAIN in a row; whatever is taken from the
        // queue is answered (a dropped request would go out as a bare 500).
        for drained in 1..=MAX_DRAIN {
            match next {
                Ok(Some(request)) => state.serve(request, Instant::now()),
                Ok(None) => break,
                Err(e) => {
                    // tiny_http's accept thread hands over one error and exits: a drain's
                    // pause, or a port dead for good (then we exit).
                    if let Some(web) = &mut state.web {
                        web.restarts.accept_failed(&e)?;
                    }
                    break;
                }
            }
            if drained == MAX_DRAIN {
                break;
            }
            next = http.try_recv();
        }
    }
}

/// Everything the loop owns besides the HTTP server.
struct Loop {
    metrics: Metrics,
    source: Box<dyn Source>,
    /// The HTTP output, unless `--web.listen-address=none`.
    web: Option<Web>,
    /// The textfile output, with `--textfile.path`.
    textfile: Option<Textfile>,
    systemd: Systemd,
    next_ping: Instant,
    started: Instant,
    /// `READY=1` was sent.
    ready: bool,
}

/// The HTTP output's side of the loop: routing, the self-probe, the connection guard and
/// the restart rule.
struct Web {
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
}

impl Web {
    /// Binds (or adopts) the listener and starts tiny_http on it, probing often enough for
    /// systemd's watchdog, if there is one.
    fn start(
        config: &Config,
        carried: &restart::Carried,
        watchdog: Option<Duration>,
        now: Instant,
    ) -> Result<(Web, tiny_http::Server), Error> {
        sys::tune_malloc();
        raise_fd_limit();
        let listener = listener(config)?;
        http::tune_listener(&listener).map_err(|e| Error::io("tuning the listening socket", e))?;
        let address = listener
            .local_addr()
            .map_err(|e| Error::io("reading the bound address", e))?;
        // Kept to pause tiny_http's accepting and to hand the listening socket to a
        // re-executed image (see `restart`).
        let kept = listener
            .try_clone()
            .map_err(|e| Error::io("duplicating the listening socket", e))?;
        let http = tiny_http::Server::from_listener(listener, None)
            .map_err(|e| Error::Fatal(format!("cannot start the HTTP server: {e}")))?;
        let probe_interval = watchdog.map_or(PROBE_INTERVAL, |ping| PROBE_INTERVAL.min(ping / 2));
        let web = Web {
            site: Site::new(&config.telemetry_path),
            probe: SelfProbe::new(address, probe_interval, PROBE_TIMEOUT, now),
            guard: Guard::new(address.port(), guard::Limits::in_force(), now),
            own: ProcessReader::new(),
            restarts: Restarts::new(carried, now),
            kept,
            address,
        };
        Ok((web, http))
    }

    /// Runs the guard, the restart rule and the self-probe when due; returns when they are
    /// due next, or why the exporter must stop. `source_due` bounds a drain's wait.
    fn wake(
        &mut self,
        now: Instant,
        metrics: &Metrics,
        started: Instant,
        source_due: Instant,
    ) -> Result<Instant, Error> {
        // The guard scans before the probe sends, so it never finds the probe's own
        // connection still waiting for its request.
        if now >= self.guard.next_deadline() {
            let stats = self.own.read();
            self.guard
                .tick(now, stats.resident_memory_bytes, stats.threads, metrics);
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
            let seen = restart::Observation {
                now,
                rss: stats.resident_memory_bytes,
                threads: stats.threads,
                open: census.open,
                stuck: census.stuck,
                last_close: self.guard.last_close(),
            };
            self.restarts.observe(&seen, &self.kept, self.address)?;
            if self.restarts.draining() {
                self.site.close_connections();
            }
        }
        if self.restarts.wants_look(now) {
            let open = self.guard.open_connections(now);
            self.restarts.finish(now, &open, &self.kept, metrics)?;
        }
        if let Some(look) = self.restarts.next_deadline() {
            // Draining: the probe's connection would wait in the backlog for the next image.
            return Ok(look.min(source_due));
        }
        self.probe.tick(now);
        metrics.set_self_probe(self.probe.ok());
        let failing = self.probe.failing_for(started, now);
        if failing >= PROBE_GIVE_UP {
            return Err(Error::Fatal(format!(
                "the HTTP server has not answered the self-probe for {} s ({}); exiting so that the supervisor restarts the exporter",
                failing.as_secs(),
                self.probe.last_error().unwrap_or("no answer")
            )));
        }
        self.guard.scan_quietly_at(self.probe.next_send());
        Ok(self.probe.next_deadline().min(self.guard.next_deadline()))
    }
}

impl Loop {
    /// Runs whatever is due at `now` (source, outputs, watchdog) and returns when the loop
    /// must wake next, or why it must stop.
    fn wake(&mut self, now: Instant) -> Result<Instant, Error> {
        step(&mut *self.source, &self.metrics, now);
        let mut deadline = self.source.next_due();
        if let Some(web) = &mut self.web {
            deadline = deadline.min(web.wake(now, &self.metrics, self.started, deadline)?);
        }
        if let Some(textfile) = &mut self.textfile {
            if textfile.tick(now, &self.metrics).is_some_and(Outcome::ok) && !self.ready {
                // With HTTP off, the first file is what proves the exporter up.
                self.ready = true;
                self.systemd
                    .notify(&format!("READY=1\nSTATUS=writing {}", textfile.path()));
            }
            deadline = deadline.min(textfile.next_due());
        }
        if let Some(ping) = self.systemd.watchdog {
            if now >= self.next_ping {
                // Only a proven output keeps systemd's watchdog fed: the HTTP path when it
                // is served, else the latest textfile write.
                let alive = match (&self.web, &self.textfile) {
                    (Some(web), _) => web.probe.succeeded_within(ping, now),
                    (None, Some(textfile)) => textfile.last_ok(),
                    (None, None) => false,
                };
                if alive {
                    self.systemd.notify("WATCHDOG=1");
                }
                self.next_ping = now + ping;
            }
            deadline = deadline.min(self.next_ping);
        }
        Ok(deadline)
    }

    /// Answers one request: the self-probe's, one with a body we refuse, or a client's.
    fn serve(&mut self, request: tiny_http::Request, now: Instant) {
        let Some(web) = &mut self.web else {
            return;
        };
        let peer = request.remote_addr().copied();
        web.guard.request_from(peer, now);
        web.restarts.served(peer, now);
        let is_probe = http::header_value(&request, probe::HEADER)
            .is_some_and(|token| web.probe.answer(token, now).is_some());
        if is_probe {
            web.guard.probe_from(peer);
            self.metrics.set_self_probe(true);
            http::answer_probe(request);
            return;
        }
        web.guard.note_activity(now);
        if let Some(body) = http::unread_body(&request) {
            reject_body(request, body, &mut web.guard, &self.metrics, now);
        } else if web.guard.is_shut(peer) {
            // Pipelined behind a request that got its connection cut: the answer could not
            // be delivered, so do not render it. (Dropping answers 500 into a closed socket.)
            drop(request);
        } else {
            // Each scrape sees the source as of now, not as of the last wake-up.
            step(&mut *self.source, &self.metrics, now);
            if web
                .site
                .handle(request, &self.metrics, web.probe.last_error())
            {
                // The client stopped reading: one bounded stall, then no more.
                web.guard.cut(
                    peer,
                    Shutdown::Both,
                    CloseReason::WriteTimeout,
                    now,
                    &self.metrics,
                );
            }
        }
    }
}

/// Advances the source to `now`, logging at debug how late its events ran (the benchmark
/// reads these lines).
fn step(source: &mut dyn Source, metrics: &Metrics, now: Instant) {
    let report = source.step(now, metrics);
    if report.events > 0 && log::enabled(log::Level::Debug) {
        let lateness_us = report.lateness.as_micros();
        log::debug(
            "widget event",
            &[("events", &report.events), ("lateness_us", &lateness_us)],
        );
    }
}

/// A request announcing a body tiny_http has not read: it would make the loop wait for the
/// client inside `respond()` (tiny_http drains the body first), or, for an absurd length,
/// abort the process (the drain allocates the whole length). Shutting the socket's read side
/// makes the drain see EOF at once; an absurd length never reaches the drain at all: the 400
/// goes straight to the socket and the request is deliberately leaked. Its tiny_http thread
/// then waits forever for that request, so the guard counts the connection as stuck and the
/// loop restarts in place (see `restart`: tiny_http 0.12 offers no way to drop such a request
/// without that allocation, nor to free its thread without dropping it).
fn reject_body(
    request: tiny_http::Request,
    body: UnreadBody,
    guard: &mut Guard,
    metrics: &Metrics,
    now: Instant,
) {
    let peer = request.remote_addr().copied();
    if body == UnreadBody::Drainable {
        // With the read side shut down (or the connection already gone, when it cannot be
        // found) the drain sees EOF at once.
        guard.cut(peer, Shutdown::Read, CloseReason::Body, now, metrics);
        http::reject_body(request, metrics);
        return;
    }
    guard.answer_and_cut(peer, http::RAW_BAD_REQUEST, CloseReason::Body, now, metrics);
    metrics.count_request(400);
    std::mem::forget(request);
}

/// The systemd side: the notify socket, if any, and the watchdog ping interval, if any.
struct Systemd {
    notifier: Option<Notifier>,
    watchdog: Option<Duration>,
}

impl Systemd {
    fn from_env() -> Self {
        let notifier = env::var_os("NOTIFY_SOCKET").and_then(|path| {
            Notifier::connect(&path)
                .map_err(|e| log::warn("cannot use NOTIFY_SOCKET", &[("err", &e)]))
                .ok()
        });
        let watchdog = notifier.as_ref().and_then(|_| {
            systemd::watchdog_interval(
                env::var("WATCHDOG_USEC").ok().as_deref(),
                env::var("WATCHDOG_PID").ok().as_deref(),
                std::process::id(),
            )
        });
        if let Some(ping) = watchdog {
            log::info(
                "systemd watchdog enabled",
                &[("ping_interval", &format_duration(ping))],
            );
        }
        Systemd { notifier, watchdog }
    }

    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            if let Err(e) = n.notify(state) {
                log::warn("cannot notify systemd", &[("state", &state), ("err", &e)]);
            }
        }
    }
}

/// tiny_http spends two descriptors per connection; the usual soft limit of 1024 would make
/// `accept()` fail (and tiny_http's accept thread exit) at ~500 connections. The hard limit
/// is ours to take.
fn raise_fd_limit() {
    match sys::raise_nofile_limit() {
        Ok((old, new)) if old != new => log::debug(
            "raised the open-files limit",
            &[("from", &old), ("to", &new)],
        ),
        Ok(_) => {}
        Err(e) => log::warn("cannot raise the open-files limit", &[("err", &e)]),
    }
}

/// Logs the version and every setting that applies, defaults included.
fn log_start(config: &Config) {
    let settings = config.settings();
    let version = env!("CARGO_PKG_VERSION");
    let mut fields: Vec<log::Field<'_>> = vec![("version", &version)];
    fields.extend(
        settings
            .iter()
            .map(|(k, v)| (*k, v as &dyn std::fmt::Display)),
    );
    log::info("starting widget-exporter", &fields);
}

/// `/proc/self` belongs to the process's effective user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
