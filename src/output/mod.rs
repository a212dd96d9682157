//! Where the numbers go: [`http`] for Prometheus, [`textfile`] for node_exporter's textfile
//! collector. Each is an `Output` that the loop in `app` treats alike: it asks each when it
//! is due next, wakes each to do what is due, lets one of them own the sleep until the next
//! due instant, and asks the first for the exporter's health.
//!
//! # Adding an output
//!
//! One file (or folder) that implements `Output` and has an
//! `open(&Opening) -> Result<Option<Box<dyn Output>>, Error>` (`None` when the configuration
//! does not ask for it), and its line in `Outputs::open`: opened in the order written there,
//! listed in order of authority. Its `wake` must never block: the loop's one thread also
//! steps the source and answers scrapes.

pub mod http;
pub(crate) mod kind;
pub mod textfile;

use std::time::{Duration, Instant};

use crate::error::Error;

pub(crate) use kind::{Carried, Numbers, Opening, Output};

/// The outputs the configuration asks for, in order of authority: the first speaks for the
/// exporter's health, because a process that cannot be scraped must not look alive however
/// well it writes its file.
pub(crate) struct Outputs {
    all: Vec<Box<dyn Output>>,
}

impl Outputs {
    /// Opens every output the configuration asks for. The textfile opens first: a path that
    /// cannot be is a usage error, reported before any socket is bound.
    pub(crate) fn open(opening: &Opening) -> Result<Outputs, Error> {
        let textfile = textfile::open(opening)?;
        let http = http::open(opening)?;
        Ok(Outputs {
            all: [http, textfile].into_iter().flatten().collect(),
        })
    }

    /// Logs where each output publishes.
    pub(crate) fn announce(&self) {
        for output in &self.all {
            output.announce();
        }
    }

    /// Wakes every output at `now`.
    pub(crate) fn wake(&mut self, now: Instant, numbers: &mut Numbers) -> Result<(), Error> {
        self.all
            .iter_mut()
            .try_for_each(|output| output.wake(now, numbers))
    }

    /// When the next output is due, if there is any output.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.all.iter().map(|output| output.next_due()).min()
    }

    /// Sleeps until `until`: in the first output that waits for work of its own (answering
    /// what comes), else by parking the thread, since then only time can bring work.
    pub(crate) fn sleep(&mut self, until: Instant, numbers: &mut Numbers) -> Result<(), Error> {
        for output in &mut self.all {
            if output.wait(until, numbers)? {
                return Ok(());
            }
        }
        std::thread::park_timeout(until.saturating_duration_since(Instant::now()));
        Ok(())
    }

    /// The status for `READY=1`, once the first output proves the exporter up.
    pub(crate) fn ready(&self) -> Option<String> {
        self.all.first().and_then(|output| output.ready())
    }

    /// Whether the first output proved itself within `window` before `now`.
    pub(crate) fn alive(&self, window: Duration, now: Instant) -> bool {
        self.all
            .first()
            .is_some_and(|output| output.alive(window, now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::metrics::Parts;
    use crate::source::kind::Step;
    use crate::source::Source;
    use std::cell::Cell;
    use std::rc::Rc;

    /// A source that does nothing and is due at a fixed instant.
    struct Idle(Instant);

    impl Source for Idle {
        fn step(&mut self, _now: Instant, _metrics: &Metrics) -> Step {
            Step::default()
        }
        fn next_due(&self) -> Instant {
            self.0
        }
    }

    /// An output with fixed answers that counts, where the test can see it, its waits.
    struct Fake {
        due: Instant,
        ready: Option<&'static str>,
        alive: bool,
        waits: bool,
        waited: Rc<Cell<usize>>,
    }

    fn fake(due: Instant, ready: Option<&'static str>, alive: bool, waits: bool) -> Fake {
        Fake {
            due,
            ready,
            alive,
            waits,
            waited: Rc::default(),
        }
    }

    impl Output for Fake {
        fn wake(&mut self, _now: Instant, _numbers: &mut Numbers) -> Result<(), Error> {
            Ok(())
        }
        fn next_due(&self) -> Instant {
            self.due
        }
        fn wait(&mut self, _until: Instant, _numbers: &mut Numbers) -> Result<bool, Error> {
            if self.waits {
                self.waited.set(self.waited.get() + 1);
            }
            Ok(self.waits)
        }
        fn ready(&self) -> Option<String> {
            self.ready.map(str::to_owned)
        }
        fn alive(&self, _window: Duration, _now: Instant) -> bool {
            self.alive
        }
    }

    fn numbers(now: Instant) -> Numbers {
        let parts = Parts {
            in_progress: false,
            http: false,
            textfile: false,
            log: false,
        };
        let metrics = Metrics::new(parts, Duration::from_secs(60), now);
        Numbers::new(metrics, Box::new(Idle(now)))
    }

    #[test]
    fn the_first_output_speaks_for_health() {
        let t = Instant::now();
        let later = t + Duration::from_secs(5);
        let window = Duration::from_secs(1);
        for (what, first, second, ready, alive) in [
            (
                "the first is up and proven, the second is not",
                fake(later, Some("first"), true, true),
                fake(t, None, false, false),
                Some("first"),
                true,
            ),
            (
                "the second is up and proven, the first is not",
                fake(t, None, false, true),
                fake(later, Some("second"), true, false),
                None,
                false,
            ),
        ] {
            let outputs = Outputs {
                all: vec![Box::new(first), Box::new(second)],
            };
            assert_eq!(outputs.ready().as_deref(), ready, "{what}");
            assert_eq!(outputs.alive(window, t), alive, "{what}");
            assert_eq!(outputs.next_due(), Some(t), "{what}: the earliest");
        }
        let none = Outputs { all: Vec::new() };
        assert_eq!((none.ready(), none.alive(window, t)), (None, false));
        assert_eq!(none.next_due(), None);
    }

    #[test]
    fn the_first_output_that_waits_owns_the_sleep() {
        let t = Instant::now();
        let mut n = numbers(t);
        let outputs = [
            fake(t, None, false, false),
            fake(t, None, false, true),
            fake(t, None, false, true),
        ];
        let counts: Vec<Rc<Cell<usize>>> = outputs.iter().map(|o| Rc::clone(&o.waited)).collect();
        let mut outputs = Outputs {
            all: outputs
                .into_iter()
                .map(|o| Box::new(o) as Box<dyn Output>)
                .collect(),
        };
        outputs.sleep(t, &mut n).expect("the fake waits");
        let waited: Vec<usize> = counts.iter().map(|c| c.get()).collect();
        assert_eq!(waited, [0, 1, 0]);
        // Only time wakes these: the thread parks, here until an instant already past.
        let mut outputs = Outputs {
            all: vec![Box::new(fake(t, None, false, false))],
        };
        outputs.sleep(t, &mut n).expect("parking does not fail");
    }
}
