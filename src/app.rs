//! The one loop that owns the work: step the simulation to now, answer the requests that are
//! waiting (a bounded number), then sleep in `recv_timeout` until the next simulation event.
//! Also the start-up order (bind, tune, serve, announce) and what ends the process.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{format_duration, Config, ListenAddress};
use crate::error::Error;
use crate::log;
use crate::metrics::Metrics;
use crate::server::{self, Site};
use crate::sim::Simulator;

/// Most requests answered back to back before the simulation is stepped again, so a flood
/// of scrapes cannot starve the widgets.
pub const MAX_DRAIN: usize = 64;

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

/// Runs the exporter until it cannot serve any more; returns why.
pub fn run(config: &Config) -> Result<std::convert::Infallible, Error> {
    log::init(config.log_level, config.log_format);
    let listener = bind(&config.listen_address)?;
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
    let start_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let mut sim = Simulator::new(config.sim.clone(), Instant::now(), start_unix);
    let mut site = Site::new(&config.telemetry_path);

    loop {
        sim.step(Instant::now(), &mut rng, &metrics);
        let timeout = sim.next_event().saturating_duration_since(Instant::now());
        let mut next = http.recv_timeout(timeout);
        let mut drained = 0;
        loop {
            match next {
                Ok(Some(request)) => {
                    // Each scrape sees the simulation as of now, not as of the last wake-up.
                    sim.step(Instant::now(), &mut rng, &metrics);
                    site.handle(request, &metrics);
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
