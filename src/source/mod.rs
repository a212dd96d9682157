//! The seam between the loop and where widgets come from. A source is stepped to an instant
//! and records what happened by then into [`Metrics`]; it says when it next needs a step, so
//! the loop can sleep until then. Sources never render, serve or block: a source with a lot
//! to do (a log's backlog) does a bounded share per step and asks to be stepped again at once.
//!
//! The sources: [`crate::source::sim`] (the simulation, the default) and [`crate::source::log`] (a log
//! file). To add one: a new file implementing [`Source`], its flags in the table in
//! [`crate::config`], and one arm in [`open`].

pub mod log;
pub mod sim;

use std::time::{Duration, Instant};

use crate::config::{Config, SourceKind};
use crate::error::Error;
use crate::metrics::{Metrics, Parts};
use crate::source::log::LogTail;
use crate::source::sim::Simulator;

/// Where widgets come from.
pub trait Source {
    /// Advances to `now`, recording every widget event due by then into `metrics`. Never
    /// blocks; does a bounded amount of work per call.
    fn step(&mut self, now: Instant, metrics: &Metrics) -> Step;

    /// The latest instant by which the loop must call [`Source::step`] again; `now` or
    /// earlier means "at once" (more work is waiting).
    fn next_due(&self) -> Instant;

    /// Where the source has got to, as text a restart in place hands to the next image's
    /// [`open`] so that it resumes there; `None` when there is nothing to resume.
    fn position(&self) -> Option<String> {
        None
    }
}

/// What one [`Source::step`] did, for the debug log and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Widget events handled (starts and ends).
    pub events: u32,
    /// How long after its due instant the most overdue event was handled.
    pub lateness: Duration,
}

/// The optional metric families a source of this kind provides.
#[must_use]
pub fn parts(config: &Config) -> Parts {
    let in_progress = match config.source {
        SourceKind::Simulation => true,
        SourceKind::Log => config.log.started.is_some(),
    };
    Parts {
        in_progress,
        http: config.serves_http(),
        textfile: config.textfile_path.is_some(),
        log: config.source == SourceKind::Log,
    }
}

/// Opens the configured source, first stepped at `start` (whose wall-clock time is
/// `start_unix_nanos`), resuming at `position` ([`Source::position`] of a previous image of
/// the process) where the source can.
pub fn open(
    config: &Config,
    metrics: &Metrics,
    position: Option<&str>,
    start: Instant,
    start_unix_nanos: u64,
) -> Result<Box<dyn Source>, Error> {
    Ok(match config.source {
        SourceKind::Simulation => {
            Box::new(Simulator::new(config.sim.clone(), start, start_unix_nanos))
        }
        SourceKind::Log => Box::new(LogTail::open(
            &config.log,
            metrics,
            position,
            start,
            start_unix_nanos,
        )?),
    })
}
