//! The one loop that owns the work: step the simulation to now, answer the requests that are
//! waiting (a bounded number), run the self-probe and the systemd watchdog when due, then
//! sleep in `recv_timeout` until the next of those events. Also the start-up order (limits,
//! listener, server, readiness) and what ends the process.

use std::env;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{format_duration, Config, ListenAddress};
use crate::error::Error;
use crate::log;
use crate::metrics::Metrics;
use crate::notify::{self, Notifier};
use crate::probe::{self, SelfProbe};
use crate::server::{self, Site};
use crate::sim::Simulator;
use crate::sys;

/// Most requests answered back to back before the simulation is stepped again, so a flood
/// of scrapes cannot starve the widgets.
pub const MAX_DRAIN: usize = 64;

/// How often the loop probes its own listener (more often under a short systemd watchdog).
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);

/// How long a probe may take to come back through the HTTP path.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

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
    let passed = notify::listen_fds(
        env::var("LISTEN_PID").ok().as_deref(),
        env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    let adopt = || {
        sys::adopt_listener(notify::LISTEN_FDS_START)
            .map_err(|e| Error::io("adopting the socket passed by systemd", e))
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
            log::info("adopted the listening socket passed by systemd", &[]);
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
    raise_fd_limit();
    let listener = listener(config)?;
    server::tune_listener(&listener).map_err(|e| Error::io("tuning the listening socket", e))?;
    let address = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    let http = tiny_http::Server::from_listener(listener, None)
        .map_err(|e| Error::Fatal(format!("cannot start the HTTP server: {e}")))?;

    log_start(config);
    log::info("listening", &[("address", &address)]);
    if running_as_root() {
        log::warn(
            "running as root; the exporter needs no privileges, run it as an unprivileged user",
            &[],
        );
    }

    let metrics = Metrics::default();
    let mut rng = config
        .sim
        .seed
        .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed);
    let started = Instant::now();
    let start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut sim = Simulator::new(config.sim.clone(), started, start_unix);
    let mut site = Site::new(&config.telemetry_path);
    let systemd = Systemd::from_env();
    let probe_interval = systemd
        .watchdog
        .map_or(PROBE_INTERVAL, |ping| PROBE_INTERVAL.min(ping / 2));
    let mut probe = SelfProbe::new(address, probe_interval, PROBE_TIMEOUT, started);
    let mut next_ping = started;

    systemd.notify(&format!("READY=1\nSTATUS=serving on {address}"));

    loop {
        let now = Instant::now();
        sim.step(now, &mut rng, &metrics);
        probe.tick(now);
        metrics.set_self_probe(probe.ok());
        let failing = probe.failing_for(started, now);
        if failing >= PROBE_GIVE_UP {
            return Err(Error::Fatal(format!(
                "the HTTP server has not answered the self-probe for {} s ({}); exiting so that the supervisor restarts the exporter",
                failing.as_secs(),
                probe.last_error().unwrap_or("no answer")
            )));
        }
        if let Some(ping) = systemd.watchdog {
            if now >= next_ping {
                // Only a proven HTTP path keeps systemd's watchdog fed.
                if probe.succeeded_within(ping, now) {
                    systemd.notify("WATCHDOG=1");
                }
                next_ping = now + ping;
            }
        }

        let mut deadline = sim.next_event().min(probe.next_deadline());
        if systemd.watchdog.is_some() {
            deadline = deadline.min(next_ping);
        }
        let mut next = http.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let mut drained = 0;
        loop {
            match next {
                Ok(Some(request)) => {
                    let now = Instant::now();
                    if let Some(token) = server::header_value(&request, probe::HEADER) {
                        if probe.answer(token, now).is_some() {
                            metrics.set_self_probe(true);
                            server::answer_probe(request);
                            next = http.try_recv();
                            continue;
                        }
                    }
                    // Each scrape sees the simulation as of now, not as of the last wake-up.
                    sim.step(now, &mut rng, &metrics);
                    site.handle(request, &metrics, probe.last_error());
                }
                Ok(None) => break,
                Err(e) => {
                    // tiny_http's accept thread hands over one error and exits: the port is
                    // dead for good. Exiting lets the supervisor restart us instead of idling deaf.
                    return Err(Error::Fatal(format!(
                        "the HTTP server stopped accepting connections: {e}"
                    )));
                }
            }
            drained += 1;
            if drained == MAX_DRAIN {
                break;
            }
            next = http.try_recv();
        }
    }
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
            notify::watchdog_interval(
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

fn log_start(config: &Config) {
    let sim = &config.sim;
    let seed = sim
        .seed
        .map_or_else(|| "random".to_owned(), |s| s.to_string());
    log::info(
        "starting widget-exporter",
        &[
            ("version", &env!("CARGO_PKG_VERSION")),
            ("listen_address", &config.listen_address),
            ("telemetry_path", &config.telemetry_path),
            ("min_duration", &format_duration(sim.min_duration)),
            ("max_duration", &format_duration(sim.max_duration)),
            ("interval", &format_duration(sim.interval)),
            ("failure_ratio", &sim.failure_ratio),
            ("seed", &seed),
            ("average_window", &format_duration(sim.average_window)),
        ],
    );
}

/// `/proc/self` belongs to the process's effective user.
fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}
