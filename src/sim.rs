//! The widget simulation: a state machine that alternates "processing" (a duration drawn
//! uniformly from the configured range) and "idle" (the configured interval), and records each
//! finished widget in [`Metrics`]. Time and randomness are passed in, so tests drive it without
//! clocks. It never sleeps: it tells the loop when its next event is due.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::metrics::Metrics;

/// How the simulated widget service behaves; validated by `cli`.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Shortest processing time of one widget.
    pub min_duration: Duration,
    /// Longest processing time of one widget.
    pub max_duration: Duration,
    /// Idle time between one widget's end and the next one's start.
    pub interval: Duration,
    /// Probability in [0, 1] that a widget fails.
    pub failure_ratio: f64,
    /// Seed for a reproducible sequence; `None` seeds from the OS.
    pub seed: Option<u64>,
    /// Window of `average_processing_time_seconds`.
    pub average_window: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            min_duration: Duration::from_millis(100),
            max_duration: Duration::from_millis(500),
            interval: Duration::from_secs(1),
            failure_ratio: 0.0,
            seed: None,
            average_window: Duration::from_secs(60),
        }
    }
}

/// Most events one [`Simulator::step`] handles. A loop that was stopped (SIGSTOP, a debugger)
/// far longer than this many widget cycles resynchronises instead of replaying every missed
/// widget in one burst.
pub const MAX_EVENTS_PER_STEP: u32 = 10_000;

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

/// What one [`Simulator::step`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Events handled (widget starts and ends).
    pub events: u32,
    /// How long after its scheduled instant the most overdue handled event ran.
    pub lateness: Duration,
    /// The step gave up replaying missed widgets and restarted the schedule at `now`.
    pub resynced: bool,
}

/// The widget service's state, the completion window and the wall-clock anchor.
#[derive(Debug)]
pub struct Simulator {
    config: SimConfig,
    state: State,
    /// (end instant, duration in nanoseconds) of widgets finished within the window.
    window: VecDeque<(Instant, u64)>,
    window_sum_nanos: u64,
    /// An instant and the unix time in nanoseconds it corresponds to.
    anchor: (Instant, u64),
}

impl Simulator {
    /// A simulator whose first widget starts at `start`; `start_unix_nanos` is the wall-clock
    /// time of that instant, used for `widget_last_processed_timestamp_seconds`.
    #[must_use]
    pub fn new(config: SimConfig, start: Instant, start_unix_nanos: u64) -> Self {
        Simulator {
            config,
            state: State::Idle { next_start: start },
            window: VecDeque::new(),
            window_sum_nanos: 0,
            anchor: (start, start_unix_nanos),
        }
    }

    /// When the next widget event is due; the loop may sleep until then.
    #[must_use]
    pub fn next_event(&self) -> Instant {
        match self.state {
            State::Idle { next_start } => next_start,
            State::Processing { end, .. } => end,
        }
    }

    /// Advances the simulation to `now`: handles every event due, each at its scheduled
    /// instant (so a late loop does not skew durations or the schedule), then slides the
    /// average window.
    pub fn step(&mut self, now: Instant, rng: &mut fastrand::Rng, metrics: &Metrics) -> StepReport {
        let mut report = StepReport::default();
        while self.next_event() <= now {
            if report.events == MAX_EVENTS_PER_STEP {
                self.state = State::Idle { next_start: now };
                report.resynced = true;
                break;
            }
            report.events += 1;
            report.lateness = report.lateness.max(now - self.next_event());
            self.state = match self.state {
                State::Idle { next_start } => {
                    let duration = self.draw_duration(rng);
                    metrics.widget_started();
                    State::Processing {
                        end: next_start + duration,
                        duration,
                        fails: rng.f64() < self.config.failure_ratio,
                    }
                }
                State::Processing {
                    end,
                    duration,
                    fails,
                } => {
                    let nanos = u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX);
                    metrics.widget_finished(duration, fails, self.unix_nanos(end));
                    self.window.push_back((end, nanos));
                    self.window_sum_nanos = self.window_sum_nanos.saturating_add(nanos);
                    State::Idle {
                        next_start: end + self.config.interval,
                    }
                }
            };
        }
        self.slide_window(now, metrics);
        report
    }

    fn draw_duration(&self, rng: &mut fastrand::Rng) -> Duration {
        let min = u64::try_from(self.config.min_duration.as_nanos()).unwrap_or(u64::MAX);
        let max = u64::try_from(self.config.max_duration.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.u64(min..=max.max(min)))
    }

    /// Drops widgets that finished `average_window` or longer ago and publishes the rest.
    fn slide_window(&mut self, now: Instant, metrics: &Metrics) {
        while let Some(&(end, nanos)) = self.window.front() {
            if now.saturating_duration_since(end) < self.config.average_window {
                break;
            }
            self.window.pop_front();
            self.window_sum_nanos -= nanos;
        }
        metrics.set_window(self.window_sum_nanos, self.window.len() as u64);
    }

    fn unix_nanos(&self, at: Instant) -> u64 {
        let (instant, unix) = self.anchor;
        let since =
            u64::try_from(at.saturating_duration_since(instant).as_nanos()).unwrap_or(u64::MAX);
        unix.saturating_add(since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::ProcessStats;

    const MS: Duration = Duration::from_millis(1);

    fn config(min_ms: u64, max_ms: u64, interval_ms: u64, ratio: f64) -> SimConfig {
        SimConfig {
            min_duration: MS * min_ms as u32,
            max_duration: MS * max_ms as u32,
            interval: MS * interval_ms as u32,
            failure_ratio: ratio,
            seed: Some(1),
            average_window: Duration::from_secs(60),
        }
    }

    #[test]
    fn fixed_durations_follow_the_schedule() {
        let t0 = Instant::now();
        let m = Metrics::default();
        let mut rng = fastrand::Rng::with_seed(7);
        let mut sim = Simulator::new(config(200, 200, 1000, 0.0), t0, 1_000_000_000);
        assert_eq!(sim.next_event(), t0);
        let r = sim.step(t0, &mut rng, &m);
        assert_eq!(r.events, 1);
        assert_eq!(m.snapshot(ProcessStats::default()).in_progress, 1);
        assert_eq!(sim.next_event(), t0 + MS * 200);
        // Nothing happens before the end is due.
        assert_eq!(sim.step(t0 + MS * 199, &mut rng, &m).events, 0);
        // A late step still records the simulated duration and keeps the schedule.
        let r = sim.step(t0 + MS * 250, &mut rng, &m);
        assert_eq!((r.events, r.lateness), (1, MS * 50));
        let s = m.snapshot(ProcessStats::default());
        assert_eq!((s.processed, s.in_progress), (1, 0));
        assert_eq!(s.duration_sum_nanos, 200_000_000);
        assert_eq!(s.last_processed_unix_nanos, 1_200_000_000);
        assert_eq!(sim.next_event(), t0 + MS * 1200);
        // Ten cycles later: ten more widgets, whatever the step size.
        sim.step(t0 + MS * 13_200, &mut rng, &m);
        assert_eq!(m.snapshot(ProcessStats::default()).processed, 11);
    }

    #[test]
    fn durations_stay_in_range_and_seed_reproduces() {
        let run = |seed| {
            let t0 = Instant::now();
            let m = Metrics::default();
            let mut rng = fastrand::Rng::with_seed(seed);
            let mut sim = Simulator::new(config(100, 500, 1, 0.3), t0, 0);
            let mut ends = Vec::new();
            for _ in 0..400 {
                let at = sim.next_event();
                sim.step(at, &mut rng, &m);
                ends.push(at - t0);
            }
            let s = m.snapshot(ProcessStats::default());
            (ends, s)
        };
        let (a, sa) = run(42);
        let (b, sb) = run(42);
        assert_eq!(a, b);
        assert_eq!(sa, sb);
        assert_eq!(sa.processed, 200);
        assert!(sa.duration_sum_nanos >= 200 * 100_000_000);
        assert!(sa.duration_sum_nanos <= 200 * 500_000_000);
        // Every duration lands between the 0.1 and 0.5 bounds.
        assert_eq!(sa.duration_buckets[1], 0, "nothing at or under 0.05");
        assert_eq!(sa.duration_buckets[8], 200, "all at or under 0.5");
        // 30 % failures: 60 expected; 25..=95 is far outside any plausible seed's spread.
        assert!((25..=95).contains(&sa.failed), "{}", sa.failed);
    }

    #[test]
    fn failure_ratio_edges() {
        for (ratio, want) in [(0.0, 0), (1.0, 50)] {
            let t0 = Instant::now();
            let m = Metrics::default();
            let mut rng = fastrand::Rng::with_seed(3);
            let mut sim = Simulator::new(config(1, 2, 1, ratio), t0, 0);
            while m.snapshot(ProcessStats::default()).processed < 50 {
                let at = sim.next_event();
                sim.step(at, &mut rng, &m);
            }
            assert_eq!(
                m.snapshot(ProcessStats::default()).failed,
                want,
                "ratio {ratio}"
            );
        }
    }

    #[test]
    fn average_is_a_true_mean_over_the_window() {
        let t0 = Instant::now();
        let m = Metrics::default();
        let mut rng = fastrand::Rng::with_seed(9);
        let mut cfg = config(100, 100, 900, 0.0);
        cfg.average_window = Duration::from_secs(5);
        let mut sim = Simulator::new(cfg, t0, 0);
        let avg = |m: &Metrics| m.snapshot(ProcessStats::default()).average_nanos;
        sim.step(t0, &mut rng, &m);
        assert_eq!(avg(&m), None, "empty window before the first widget ends");
        // Widgets end at 0.1 s, 1.1 s, 2.1 s, ... each 100 ms long.
        sim.step(t0 + MS * 3_100, &mut rng, &m);
        assert_eq!(avg(&m), Some(100_000_000));
        assert_eq!(m.snapshot(ProcessStats::default()).processed, 4);
        // At 7.1 s the widgets that ended at 0.1, 1.1 and 2.1 s (exactly 5 s ago) are out.
        sim.step(t0 + MS * 7_100, &mut rng, &m);
        let s = m.snapshot(ProcessStats::default());
        assert_eq!(s.processed, 8);
        assert_eq!(sim.window.len(), 5);
        // A long idle gap empties the window: NaN again, not a stale mean.
        let mut cfg = config(100, 100, 60_000, 0.0);
        cfg.average_window = Duration::from_secs(5);
        let m = Metrics::default();
        let mut sim = Simulator::new(cfg, t0, 0);
        sim.step(t0 + MS * 100, &mut rng, &m);
        sim.step(t0 + MS * 100, &mut rng, &m);
        assert_eq!(avg(&m), Some(100_000_000));
        sim.step(t0 + MS * 5_100, &mut rng, &m);
        assert_eq!(avg(&m), None);
    }

    #[test]
    fn mean_of_mixed_durations() {
        let t0 = Instant::now();
        let m = Metrics::default();
        let mut rng = fastrand::Rng::with_seed(11);
        let mut sim = Simulator::new(config(100, 500, 10, 0.0), t0, 0);
        sim.step(t0 + Duration::from_secs(10), &mut rng, &m);
        let total: u64 = sim.window.iter().map(|&(_, n)| n).sum();
        let s = m.snapshot(ProcessStats::default());
        assert_eq!(s.average_nanos, Some(total / sim.window.len() as u64));
        assert_eq!(sim.window.len() as u64, s.processed);
    }

    #[test]
    fn a_stopped_loop_resynchronises() {
        let t0 = Instant::now();
        let m = Metrics::default();
        let mut rng = fastrand::Rng::with_seed(5);
        let mut sim = Simulator::new(config(1, 1, 0, 0.0), t0, 0);
        let later = t0 + Duration::from_secs(3600);
        let r = sim.step(later, &mut rng, &m);
        assert!(r.resynced);
        assert_eq!(r.events, MAX_EVENTS_PER_STEP);
        assert_eq!(sim.next_event(), later);
    }
}
