//! The one loop that owns the work: step the source to now, wake every output to do what is
//! due, tell systemd what the outputs' health proves, then sleep until the next due instant
//! (in the output that waits for work of its own, if one does). Also the start-up order
//! (the start line, the source, then the outputs, then readiness) and what ends the process: an
//! output's error, or SIGTERM or SIGINT (status 0, see `stop_on_signals`).
//!
//! It names no particular source or output: `source::open` picks the source from the
//! configuration and `Outputs::open` the outputs.

use std::env;
use std::time::{Duration, Instant};

use crate::config::{format_duration, Config};
use crate::error::Error;
use crate::host::systemd::{self, Notifier};
use crate::host::{clock, sys};
use crate::log;
use crate::metrics::Metrics;
use crate::output::{Carried, Numbers, Opening, Outputs};
use crate::source;

/// Runs the exporter until it cannot serve any more; returns why.
pub fn run(config: &Config) -> Result<std::convert::Infallible, Error> {
    log::init(config.log_level, config.log_format);
    log_start(config);
    // Before any other thread exists, so that every thread inherits the blocked signals.
    stop_on_signals();
    // Taken while this is the only thread: the environment is not safe to change later.
    let carried = Carried::take_from_env();
    let started = Instant::now();
    let systemd = Systemd::from_env();
    // The source opens first: a path it cannot use is a usage error, reported before any
    // socket is bound.
    let metrics = Metrics::new(source::parts(config), config.average_window, started);
    if let Some(state) = &carried.counters {
        if metrics.import_counters(state) {
            log::info("restarted in place; counters carried over", &[]);
        }
    }
    let source = source::open(
        config,
        &metrics,
        carried.position.as_deref(),
        started,
        clock::unix_nanos(),
    )?;
    let mut outputs = Outputs::open(&Opening {
        config,
        carried: &carried,
        watchdog: systemd.watchdog,
        started,
    })?;
    outputs.announce();
    if running_as_root() {
        log::warn(
            "running as root; the exporter needs no privileges, run it as an unprivileged user",
            &[],
        );
    }
    let mut numbers = Numbers::new(metrics, source);
    let mut health = Health {
        systemd,
        ready: false,
        next_ping: started,
    };
    health.announce_ready(&outputs);

    loop {
        let now = Instant::now();
        numbers.step(now);
        outputs.wake(now, &mut numbers)?;
        health.announce_ready(&outputs);
        let ping = health.feed_watchdog(&outputs, now);
        let deadline = [outputs.next_due(), ping]
            .into_iter()
            .flatten()
            .fold(numbers.next_due(), Instant::min);
        outputs.sleep(deadline, &mut numbers)?;
    }
}

/// What systemd learns of the outputs' health: `READY=1` once, then watchdog pings.
struct Health {
    systemd: Systemd,
    /// `READY=1` was sent.
    ready: bool,
    next_ping: Instant,
}

impl Health {
    /// Sends `READY=1` the first time the outputs prove the exporter up.
    fn announce_ready(&mut self, outputs: &Outputs) {
        if self.ready {
            return;
        }
        if let Some(status) = outputs.ready() {
            self.ready = true;
            self.systemd.notify(&format!("READY=1\nSTATUS={status}"));
        }
    }

    /// Pings systemd's watchdog when due, if the outputs proved themselves within one
    /// interval; returns when it is due next (`None` without a watchdog).
    fn feed_watchdog(&mut self, outputs: &Outputs, now: Instant) -> Option<Instant> {
        let ping = self.systemd.watchdog?;
        if now >= self.next_ping {
            // Only a proven output keeps systemd's watchdog fed.
            if outputs.alive(ping, now) {
                self.systemd.notify("WATCHDOG=1");
            }
            self.next_ping = now + ping;
        }
        Some(self.next_ping)
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

/// Makes SIGTERM and SIGINT end the process with status 0 after one info line naming the
/// signal (and `STOPPING=1` to systemd), instead of the default death by signal (status 143
/// and no line). The signals are blocked in this thread, which every later thread inherits,
/// and one small thread takes them with `sigwait`: the loop's sleep in tiny_http's
/// `recv_timeout` is a condition variable that no signal interrupts, and nothing may block
/// the loop. The mask survives the `exec` of a restart in place, and the new image calls
/// this again, so a signal sent in between waits, pending, for its new thread.
///
/// Exiting from that thread in the middle of the loop's work is safe: the textfile is
/// replaced by a rename, so node_exporter sees the old file or the new one, never part of
/// one (a temporary file left by the exit is removed at the next start); the log source
/// only reads; a scrape cut short is retried by Prometheus; and each log line is written
/// whole, under the standard error's lock.
fn stop_on_signals() {
    if let Err(e) = sys::block_stop_signals() {
        log::warn(
            "cannot take SIGTERM and SIGINT; they end the process without a line",
            &[("err", &e)],
        );
        return;
    }
    let notifier = env::var_os("NOTIFY_SOCKET").and_then(|path| Notifier::connect(&path).ok());
    let spawned = std::thread::Builder::new()
        .name("signals".to_owned())
        .spawn(move || match sys::wait_stop_signal() {
            Ok(signal) => {
                log::info("stopping", &[("signal", &signal)]);
                if let Some(n) = notifier {
                    let _ = n.notify("STOPPING=1");
                }
                std::process::exit(0);
            }
            Err(e) => log::warn("cannot wait for SIGTERM and SIGINT", &[("err", &e)]),
        });
    if let Err(e) = spawned {
        // No thread takes them: let them end the process as they would by default.
        let _ = sys::unblock_stop_signals();
        log::warn("cannot start the signal thread", &[("err", &e)]);
    }
}

/// Logs the version, the source and outputs in use, and every setting that applies,
/// defaults included: the first line at start.
fn log_start(config: &Config) {
    let settings = config.settings();
    let version = env!("CARGO_PKG_VERSION");
    let source = config.source_name();
    let outputs = config.outputs();
    let mut fields: Vec<log::Field<'_>> = vec![
        ("version", &version),
        ("source", &source),
        ("outputs", &outputs),
    ];
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
