//! The widget simulation, the default [`Source`]: a state machine that alternates
//! "processing" (a duration drawn uniformly from the configured range) and "idle" (the
//! configured interval), and records each finished widget in [`Metrics`]. Time is passed in
//! and randomness comes from its own seeded generator, so tests drive it without clocks. It
//! never sleeps: it tells the loop when its next event is due. Its flags, their validation
//! and its registry entry (`KIND`) are at the top of this file.

use std::time::{Duration, Instant};

use crate::config::{
    format_duration, given, parse_duration, unless, Flag, Row, Scope, SourceFlags, Takes,
};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::source::kind::{Families, Kind, Reads, Source, Step};

/// The simulation in the source registry. Its flags need no raw stage of their own: every
/// one has a default, so the raw flags are already a [`SimConfig`] that `validate` checks
/// across flags.
pub(crate) static KIND: Kind<SimConfig, SimConfig> = Kind {
    flags: SourceFlags {
        name: "simulation",
        summary: "from a simulation",
        about: "a simulated widget-processing service",
        required: &[],
        example: "",
        help: "",
        rows: FLAGS,
        validate,
    },
    open: |config, _, _, start, start_unix_nanos| {
        Ok(Box::new(Simulator::new(
            config.clone(),
            start,
            start_unix_nanos,
        )))
    },
    families: |_| Families {
        in_progress: true,
        log: false,
    },
    reads: |_| Reads::Nothing,
    check: |_| None,
};

/// How the simulated widget service behaves.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SimConfig {
    /// Shortest processing time of one widget.
    pub(crate) min_duration: Duration,
    /// Longest processing time of one widget.
    pub(crate) max_duration: Duration,
    /// Idle time between one widget's end and the next one's start.
    pub(crate) interval: Duration,
    /// Probability in [0, 1] that a widget fails.
    pub(crate) failure_ratio: f64,
    /// Seed for a reproducible sequence; `None` seeds from the OS.
    pub(crate) seed: Option<u64>,
}

const DEFAULT: SimConfig = SimConfig {
    min_duration: Duration::from_millis(100),
    max_duration: Duration::from_millis(500),
    interval: Duration::from_secs(1),
    failure_ratio: 0.0,
    seed: None,
};

impl Default for SimConfig {
    fn default() -> Self {
        DEFAULT
    }
}

/// The shortest widget cycle (`min-duration + interval`): it bounds the event rate.
const MIN_CYCLE: Duration = Duration::from_millis(1);

/// The simulation's flags, in `--help` order.
const FLAGS: &[Row<SimConfig, SimConfig>] = &[
    Row {
        flag: Flag {
            name: "--widget.min-duration",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "100ms",
            help: "shortest time a simulated widget takes",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.min_duration = parse_duration(given(v))?;
            if p.min_duration.is_zero() {
                return Err("must be longer than 0s".into());
            }
            Ok(())
        },
        show: |c| {
            unless(&c.min_duration, &DEFAULT.min_duration, || {
                format_duration(c.min_duration)
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.max-duration",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "500ms",
            help: "longest time a simulated widget takes",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.max_duration = parse_duration(given(v))?;
            Ok(())
        },
        show: |c| {
            unless(&c.max_duration, &DEFAULT.max_duration, || {
                format_duration(c.max_duration)
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.interval",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "1s",
            help: "idle time between simulated widgets",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.interval = parse_duration(given(v))?;
            Ok(())
        },
        show: |c| {
            unless(&c.interval, &DEFAULT.interval, || {
                format_duration(c.interval)
            })
        },
    },
    Row {
        flag: Flag {
            name: "--widget.failure-ratio",
            short: None,
            takes: Takes::Value,
            syntax: "RATIO",
            default: "0",
            help: "chance from 0 to 1 that a simulated widget fails",
            scope: Scope::Source,
        },
        apply: |p, v| {
            p.failure_ratio = match given(v).parse::<f64>() {
                // `+ 0.0` turns -0 into 0, so the config never spells a negative zero.
                Ok(r) if (0.0..=1.0).contains(&r) => r + 0.0,
                _ => return Err("expected a number from 0 to 1".into()),
            };
            Ok(())
        },
        // Bits, not `==`: -0.0 is not the default spelling, and NaN must not vanish.
        show: |c| {
            unless(
                &c.failure_ratio.to_bits(),
                &DEFAULT.failure_ratio.to_bits(),
                || c.failure_ratio.to_string(),
            )
        },
    },
    Row {
        flag: Flag {
            name: "--widget.seed",
            short: None,
            takes: Takes::Value,
            syntax: "N",
            default: "",
            help: "seed for a reproducible simulation (default random)",
            scope: Scope::Source,
        },
        apply: |p, v| {
            let seed = given(v)
                .parse::<u64>()
                .map_err(|_| "expected a whole number from 0 to 18446744073709551615".to_owned())?;
            p.seed = Some(seed);
            Ok(())
        },
        show: |c| c.seed.map(|s| s.to_string()),
    },
];

/// The checks across the simulation's flags.
fn validate(sim: SimConfig) -> Result<SimConfig, Error> {
    let (min, max, interval) = (sim.min_duration, sim.max_duration, sim.interval);
    let fmt = format_duration;
    if min > max {
        return Err(Error::Usage(format!(
            "--widget.min-duration ({}) is longer than --widget.max-duration ({})",
            fmt(min),
            fmt(max)
        )));
    }
    // Both are below 2^64 ns when parsed, so this cannot saturate in practice.
    if min.saturating_add(interval) < MIN_CYCLE {
        return Err(Error::Usage(format!(
            "--widget.min-duration ({}) plus --widget.interval ({}) is shorter than {}, \
             the shortest widget cycle the simulation allows",
            fmt(min),
            fmt(interval),
            fmt(MIN_CYCLE)
        )));
    }
    Ok(sim)
}

/// Most events one [`Simulator::step`] handles. A loop that was stopped (SIGSTOP, a debugger)
/// far longer than this many widget cycles resynchronises instead of replaying every missed
/// widget in one burst.
pub(crate) const MAX_EVENTS_PER_STEP: u32 = 10_000;

#[derive(Debug, Clone, Copy)]
enum State {
    Idle {
        next_start: Instant,
    },
    Processing {
        end: Instant,
        duration: Duration,
        fails: bool,
    },
}

/// The widget service's state, its random generator and the wall-clock anchor.
#[derive(Debug)]
pub(crate) struct Simulator {
    config: SimConfig,
    state: State,
    rng: fastrand::Rng,
    /// An instant and the unix time in nanoseconds it corresponds to.
    anchor: (Instant, u64),
}

impl Simulator {
    /// A simulator whose first widget starts at `start`; `start_unix_nanos` is the wall-clock
    /// time of that instant, used for `widget_last_processed_timestamp_seconds`.
    #[must_use]
    pub(crate) fn new(config: SimConfig, start: Instant, start_unix_nanos: u64) -> Self {
        Simulator {
            rng: config
                .seed
                .map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed),
            config,
            state: State::Idle { next_start: start },
            anchor: (start, start_unix_nanos),
        }
    }

    /// When the next widget event is due; the loop may sleep until then.
    #[must_use]
    pub(crate) fn next_event(&self) -> Instant {
        match self.state {
            State::Idle { next_start } => next_start,
            State::Processing { end, .. } => end,
        }
    }

    /// Advances the simulation to `now`: handles every event due, each at its scheduled
    /// instant (so a late loop does not skew durations, the schedule or the window). After
    /// [`MAX_EVENTS_PER_STEP`] it gives up replaying missed widgets and restarts the
    /// schedule at `now`.
    pub(crate) fn advance(&mut self, now: Instant, metrics: &Metrics) -> Step {
        let mut report = Step::default();
        while self.next_event() <= now {
            if report.events == MAX_EVENTS_PER_STEP {
                self.state = State::Idle { next_start: now };
                break;
            }
            report.events += 1;
            report.lateness = report.lateness.max(now - self.next_event());
            self.state = match self.state {
                State::Idle { next_start } => {
                    let duration = self.draw_duration();
                    metrics.widgets.started();
                    State::Processing {
                        end: next_start + duration,
                        duration,
                        fails: self.rng.f64() < self.config.failure_ratio,
                    }
                }
                State::Processing {
                    end,
                    duration,
                    fails,
                } => {
                    metrics
                        .widgets
                        .finished(Some(duration), fails, self.unix_nanos(end), end);
                    State::Idle {
                        next_start: end + self.config.interval,
                    }
                }
            };
        }
        report
    }

    fn draw_duration(&mut self) -> Duration {
        let min = u64::try_from(self.config.min_duration.as_nanos()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.config.max_duration.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.u64(min..=max.max(min)))
    }

    fn unix_nanos(&self, at: Instant) -> u64 {
        let (instant, unix) = self.anchor;
        let since =
            u64::try_from(at.saturating_duration_since(instant).as_nanos()).unwrap_or(u64::MAX);
        unix.saturating_add(since)
    }
}

impl Source for Simulator {
    fn step(&mut self, now: Instant, metrics: &Metrics) -> Step {
        self.advance(now, metrics)
    }

    fn next_due(&self) -> Instant {
        self.next_event()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::process::ProcessStats;

    const MS: Duration = Duration::from_millis(1);

    fn config(min_ms: u64, max_ms: u64, interval_ms: u64, ratio: f64) -> SimConfig {
        SimConfig {
            min_duration: MS * min_ms as u32,
            max_duration: MS * max_ms as u32,
            interval: MS * interval_ms as u32,
            failure_ratio: ratio,
            seed: Some(1),
        }
    }

    #[test]
    fn fixed_durations_follow_the_schedule() {
        let t0 = Instant::now();
        let m = Metrics::default();
        let mut sim = Simulator::new(config(200, 200, 1000, 0.0), t0, 1_000_000_000);
        assert_eq!(sim.next_event(), t0);
        let r = sim.advance(t0, &m);
        assert_eq!(r.events, 1);
        assert_eq!(
            m.snapshot(ProcessStats::default()).widgets.in_progress,
            Some(1)
        );
        assert_eq!(sim.next_event(), t0 + MS * 200);
        // Nothing happens before the end is due.
        assert_eq!(sim.advance(t0 + MS * 199, &m).events, 0);
        // A late step still records the simulated duration and keeps the schedule.
        let r = sim.advance(t0 + MS * 250, &m);
        assert_eq!((r.events, r.lateness), (1, MS * 50));
        let s = m.snapshot(ProcessStats::default());
        assert_eq!((s.widgets.processed, s.widgets.in_progress), (1, Some(0)));
        assert_eq!(s.widgets.duration_sum_nanos, 200_000_000);
        assert_eq!(s.widgets.last_processed_unix_nanos, 1_200_000_000);
        assert_eq!(sim.next_event(), t0 + MS * 1200);
        // Ten cycles later: ten more widgets, whatever the step size.
        sim.advance(t0 + MS * 13_200, &m);
        assert_eq!(m.snapshot(ProcessStats::default()).widgets.processed, 11);
    }

    #[test]
    fn durations_stay_in_range_and_seed_reproduces() {
        let run = |seed| {
            let t0 = Instant::now();
            let m = Metrics::default();
            let cfg = SimConfig {
                seed: Some(seed),
                ..config(100, 500, 1, 0.3)
            };
            let mut sim = Simulator::new(cfg, t0, 0);
            let mut ends = Vec::new();
            for _ in 0..400 {
                let at = sim.next_event();
                sim.advance(at, &m);
                ends.push(at - t0);
            }
            let s = m.snapshot(ProcessStats::default());
            (ends, s)
        };
        let (a, sa) = run(42);
        let (b, sb) = run(42);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_eq!(sa.widgets.processed, 200);
        assert!(sa.widgets.duration_sum_nanos >= 200 * 100_000_000);
        assert!(sa.widgets.duration_sum_nanos <= 200 * 500_000_000);
        // Every duration lands between the 0.1 and 0.5 bounds.
        assert_eq!(
            sa.widgets.duration_buckets[1], 0,
            "nothing at or under 0.05"
        );
        assert_eq!(sa.widgets.duration_buckets[8], 200, "all at or under 0.5");
        // 30 % failures: 60 expected; 25..=95 is far outside any plausible seed's spread.
        assert!(
            (25..=95).contains(&sa.widgets.failed),
            "{}",
            sa.widgets.failed
        );
    }

    #[test]
    fn failure_ratio_edges() {
        for (ratio, want) in [(0.0, 0), (1.0, 50)] {
            let t0 = Instant::now();
            let m = Metrics::default();
            let mut sim = Simulator::new(config(1, 2, 1, ratio), t0, 0);
            while m.snapshot(ProcessStats::default()).widgets.processed < 50 {
                let at = sim.next_event();
                sim.advance(at, &m);
            }
            assert_eq!(
                m.snapshot(ProcessStats::default()).widgets.failed,
                want,
                "ratio {ratio}"
            );
        }
    }

    #[test]
    fn widgets_enter_the_window_at_their_end() {
        // The window is the metrics'; the simulation places each widget at its scheduled end,
        // so a late step does not shift it.
        let t0 = Instant::now();
        let m = Metrics::new(crate::metrics::Parts::default(), Duration::from_secs(5), t0);
        let mut sim = Simulator::new(config(100, 100, 900, 0.0), t0, 0);
        let avg = |at| {
            m.snapshot_at(ProcessStats::default(), at)
                .widgets
                .average_nanos
        };
        sim.advance(t0, &m);
        assert_eq!(avg(t0), None, "empty window before the first widget ends");
        // Widgets end at 0.1 s, 1.1 s, 2.1 s, ... each 100 ms long.
        sim.advance(t0 + MS * 3_100, &m);
        assert_eq!(avg(t0 + MS * 3_100), Some(100_000_000));
        assert_eq!(m.snapshot(ProcessStats::default()).widgets.processed, 4);
        // Long after the last: the window is empty again (NaN), not a stale mean.
        assert_eq!(avg(t0 + MS * 9_000), None);
    }

    #[test]
    fn a_stopped_loop_resynchronises() {
        let t0 = Instant::now();
        let m = Metrics::default();
        let mut sim = Simulator::new(config(1, 1, 0, 0.0), t0, 0);
        let later = t0 + Duration::from_secs(3600);
        let r = sim.advance(later, &m);
        assert_eq!(r.events, MAX_EVENTS_PER_STEP);
        // Resynchronised: the schedule restarts at `later` instead of replaying the rest.
        assert_eq!(sim.next_event(), later);
    }
}
