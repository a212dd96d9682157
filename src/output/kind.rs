//! What an output is, apart from the list of outputs (`mod.rs`): the `Output` trait, what an
//! output is opened with, and the numbers it publishes. The outputs' files use this file and
//! `mod.rs` uses theirs, so dependencies point one way.

use std::time::{Duration, Instant};

use crate::config::Config;
use crate::error::Error;
use crate::log;
use crate::metrics::Metrics;
use crate::source::Source;

/// What a previous image of this process handed over when it restarted in place.
pub(crate) use crate::output::http::restart::Carried;

/// What an output is opened with.
pub(crate) struct Opening<'a> {
    /// The validated configuration.
    pub(crate) config: &'a Config,
    /// What a previous image handed over, if this one was restarted in place.
    pub(crate) carried: &'a Carried,
    /// systemd's watchdog interval, when there is one: health must be proven more often.
    pub(crate) watchdog: Option<Duration>,
    /// When the process started.
    pub(crate) started: Instant,
}

/// The numbers the outputs publish: the metrics, and the source that feeds them.
pub(crate) struct Numbers {
    metrics: Metrics,
    source: Box<dyn Source>,
}

impl Numbers {
    /// `source`, counting into `metrics`.
    pub(crate) fn new(metrics: Metrics, source: Box<dyn Source>) -> Numbers {
        Numbers { metrics, source }
    }

    /// The metrics, as the source has brought them up to its latest step.
    pub(crate) fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Advances the source to `now`, logging at debug how late its events ran (the benchmark
    /// reads these lines).
    pub(crate) fn step(&mut self, now: Instant) {
        let report = self.source.step(now, &self.metrics);
        if report.events > 0 && log::enabled(log::Level::Debug) {
            let lateness_us = report.lateness.as_micros();
            log::debug(
                "widget event",
                &[("events", &report.events), ("lateness_us", &lateness_us)],
            );
        }
    }

    /// Where the source has got to, for a restart in place to hand over.
    pub(crate) fn position(&self) -> Option<String> {
        self.source.position()
    }

    /// When the source must be stepped next (a widget event, a log poll).
    pub(crate) fn next_due(&self) -> Instant {
        self.source.next_due()
    }
}

/// One place the numbers go.
pub(crate) trait Output {
    /// Logs where the output publishes, once the start-up line is out.
    fn announce(&self) {}

    /// Does what is due at `now` (a write, a probe, a scan), without blocking; an error
    /// means the exporter must stop.
    fn wake(&mut self, now: Instant, numbers: &mut Numbers) -> Result<(), Error>;

    /// When [`Output::wake`] has something to do next.
    fn next_due(&self) -> Instant;

    /// Waits until `until` unless work that cannot wait arrives for this output first (a
    /// request), doing that work; returns whether it waited. An output that nothing but time
    /// wakes keeps this default and returns false at once.
    fn wait(&mut self, until: Instant, numbers: &mut Numbers) -> Result<bool, Error> {
        let _ = (until, numbers);
        Ok(false)
    }

    /// Health, for systemd's `READY=1`: the status line once the output proves the exporter
    /// up, `None` until then.
    fn ready(&self) -> Option<String>;

    /// Health, for systemd's watchdog: whether the output proved itself within `window`
    /// before `now`.
    fn alive(&self, window: Duration, now: Instant) -> bool;
}
