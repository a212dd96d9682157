//! What a kind of source is: the `Source` trait its type implements, and the `Kind` it
//! declares in its own file (flag rows and validation, how it opens, which optional families
//! it has, what a printed unit must let it read, and a dry run it may offer instead of
//! running). The sources build on this file and the
//! registry ([`crate::source`]) lists them, so neither needs the other's file.

use std::time::{Duration, Instant};

use crate::config::{SourceConfig, SourceFlags, SourceTable};
use crate::error::Error;
use crate::metrics::Metrics;

/// Where widgets come from.
pub(crate) trait Source {
    /// Advances to `now`, recording every widget event due by then into `metrics`. Never
    /// blocks; does a bounded amount of work per call.
    fn step(&mut self, now: Instant, metrics: &Metrics) -> Step;

    /// The latest instant by which the loop must call [`Source::step`] again; `now` or
    /// earlier means "at once" (more work is waiting).
    fn next_due(&self) -> Instant;

    /// Where the source has got to, as text a restart in place hands to the next image's
    /// `Kind::open` so that it resumes there; `None` when there is nothing to resume.
    fn position(&self) -> Option<String> {
        None
    }
}

/// What one [`Source::step`] did, for the debug log and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Step {
    /// Widget events handled (starts and ends).
    pub(crate) events: u32,
    /// How long after its due instant the most overdue event was handled.
    pub(crate) lateness: Duration,
}

/// The optional metric families a source provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Families {
    /// `widgets_in_progress`: left out by a source that cannot tell when widgets start.
    pub(crate) in_progress: bool,
    /// The log source's own families.
    pub(crate) log: bool,
}

/// What a printed service unit must let the source read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reads {
    /// Nothing outside the unit's defaults.
    Nothing,
    /// A log file, readable to `group` (by number) when only that group may read it.
    Log {
        /// The group to join, if the file's mode needs one.
        group: Option<u32>,
        /// `--widget.log.path`, which the unit must not hide.
        path: std::path::PathBuf,
    },
}

/// What a source's dry run (the log source's `--widget.log.check`) found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// The report, for standard output.
    pub report: String,
    /// What could not be read, if anything: the run failed.
    pub error: Option<String>,
}

/// What opening a source gives.
pub(crate) type Opened = Result<Box<dyn Source>, Error>;

/// A kind of source, declared in its own file: everything the rest of the exporter needs
/// to know of it. `R` is its raw flags, `V` its validated config.
pub(crate) struct Kind<R: 'static, V: 'static> {
    /// Its name, flag rows and validation, as the command line reads them.
    pub(crate) flags: SourceFlags<R, V>,
    /// Opens it, first stepped at `start` (whose wall-clock time is `start_unix_nanos`),
    /// resuming at a position (`Source::position`) a previous image of the process handed
    /// over, where it can.
    pub(crate) open: fn(&V, &Metrics, Option<&str>, Instant, u64) -> Opened,
    /// The optional families it provides with this config.
    pub(crate) families: fn(&V) -> Families,
    /// What a printed service unit must let it read.
    pub(crate) reads: fn(&V) -> Reads,
    /// Its dry run, when the config asks for one instead of running the exporter.
    pub(crate) check: fn(&V) -> Option<Checked>,
}

/// A `Kind` with its types erased, for the registry's list.
pub(crate) trait Registered: Sync {
    /// Its flag table, for [`crate::config`].
    fn table(&'static self) -> &'static dyn SourceTable;
    /// `Kind::open`, if `config` is of this kind.
    fn open(
        &self,
        config: &SourceConfig,
        metrics: &Metrics,
        position: Option<&str>,
        start: Instant,
        start_unix_nanos: u64,
    ) -> Option<Opened>;
    /// [`Kind::families`], if `config` is of this kind.
    fn families(&self, config: &SourceConfig) -> Option<Families>;
    /// [`Kind::reads`], if `config` is of this kind.
    fn reads(&self, config: &SourceConfig) -> Option<Reads>;
    /// [`Kind::check`], if `config` is of this kind and asks for a check.
    fn check(&self, config: &SourceConfig) -> Option<Checked>;
}

impl<R, V> Registered for Kind<R, V>
where
    R: Default + 'static,
    V: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
{
    fn table(&'static self) -> &'static dyn SourceTable {
        &self.flags
    }

    fn open(
        &self,
        config: &SourceConfig,
        metrics: &Metrics,
        position: Option<&str>,
        start: Instant,
        start_unix_nanos: u64,
    ) -> Option<Opened> {
        Some((self.open)(
            config.get()?,
            metrics,
            position,
            start,
            start_unix_nanos,
        ))
    }

    fn families(&self, config: &SourceConfig) -> Option<Families> {
        Some((self.families)(config.get()?))
    }

    fn reads(&self, config: &SourceConfig) -> Option<Reads> {
        Some((self.reads)(config.get()?))
    }

    fn check(&self, config: &SourceConfig) -> Option<Checked> {
        (self.check)(config.get()?)
    }
}
