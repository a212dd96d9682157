//! The label sets of the log source: which combination of captured label values a line
//! belongs to, under a hard series cap. Owns the names across templates, the table from a
//! label set to its series index, and when a set goes to the overflow series instead. Pure:
//! no files, clocks, metrics or logging (it tells the caller when an overflow streak starts;
//! the caller logs). The sets' counts, and what a restart in place carries, are the widget
//! families' (`metrics`): a carried table is rebuilt by looking its sets up again in order.
//!
//! Memory is bounded by the cap: a set is stored once, when it is admitted, as its values
//! joined by `0xFF` (a byte valid UTF-8 never holds), and an open-addressing index of `u32`s
//! finds it again. Looking up a known set encodes it into one reused buffer, so a line of a
//! known set allocates nothing. The hash keys are random per process (std's `RandomState`), so
//! log lines cannot be chosen to collide.

use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use crate::metrics::OVERFLOW_VALUE;
use crate::source::log::template::{Template, MAX_LABELS, MAX_LABEL_VALUE};

/// Default of `--widget.log.max-series`.
pub(crate) const DEFAULT_MAX_SERIES: usize = 100;

/// Largest `--widget.log.max-series` accepted.
pub(crate) const MAX_SERIES_LIMIT: usize = 10_000;

/// How long without an overflow ends an overflow streak.
pub(crate) const STREAK_QUIET: Duration = Duration::from_secs(60);

/// Ends each stored value; never part of valid UTF-8.
const SEP: u8 = 0xFF;

/// An empty slot of the index.
const EMPTY: u32 = u32::MAX;

/// The label names of the widget families: the union over the finished and failed templates,
/// in order of first appearance (finished first). Refuses more than [`MAX_LABELS`] names.
pub(crate) fn union(templates: &[&Template]) -> Result<Vec<String>, &'static str> {
    let mut names: Vec<String> = Vec::new();
    for name in templates.iter().flat_map(|t| t.label_names()) {
        if !names.contains(name) {
            if names.len() == MAX_LABELS {
                return Err(
                    "at most 4 label names across --widget.log.finished and --widget.log.failed",
                );
            }
            names.push(name.clone());
        }
    }
    Ok(names)
}

/// Where each of `template`'s labels goes among `names` (from [`union`]): `[i]` is the
/// position of the template's label `i`.
///
/// # Panics
///
/// If `names` lacks one of the template's labels: `names` comes from [`union`] over it.
#[must_use]
pub(crate) fn positions(template: &Template, names: &[String]) -> [usize; MAX_LABELS] {
    let mut at = [0; MAX_LABELS];
    for (slot, name) in at.iter_mut().zip(template.label_names()) {
        *slot = names
            .iter()
            .position(|n| n == name)
            .expect("the union holds every template's names");
    }
    at
}

/// A template's label values (as [`crate::source::log::template::Found::Yes`] gives them)
/// put in the order of the union; a name the template lacks gets the empty value.
#[must_use]
pub(crate) fn arrange<'a>(
    template: &Template,
    positions: &[usize; MAX_LABELS],
    values: &[&'a str; MAX_LABELS],
) -> [&'a str; MAX_LABELS] {
    let mut out = [""; MAX_LABELS];
    for (i, value) in values.iter().enumerate().take(template.label_names().len()) {
        out[positions[i]] = value;
    }
    out
}

/// Which series a label set counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Series {
    /// A set seen before, at this index.
    Known(usize),
    /// A set admitted just now, at this index (the next free one): the caller makes its series.
    New(usize),
    /// A new set past the cap: it counts in the overflow series. `streak_started` is true for
    /// the first overflow since the table was made or since a streak ended (no overflow for
    /// [`STREAK_QUIET`], as [`LabelSets::end_step`] tells): the caller warns then, once per
    /// streak.
    Overflow {
        /// Whether this overflow starts a streak.
        streak_started: bool,
    },
}

/// The distinct label sets seen, at most `max_series` of them, never dropped.
#[derive(Debug, Clone)]
pub(crate) struct LabelSets {
    names: Vec<String>,
    max_series: usize,
    /// The admitted sets, by series index: values each followed by [`SEP`].
    sets: Vec<Box<[u8]>>,
    /// Open addressing by hash, linear probing: series indexes or [`EMPTY`]. Its length is a
    /// power of two, at least twice the number of sets.
    index: Vec<u32>,
    hasher: RandomState,
    /// The set being looked up, encoded like `sets`; reused so lookups do not allocate.
    scratch: Vec<u8>,
    overflows: u64,
    /// Whether the current step saw an overflow, and whether a streak is running.
    overflow_this_step: bool,
    /// The end of the last step that overflowed, while a streak runs.
    streak: Option<Instant>,
}

impl LabelSets {
    /// An empty table for these label names (from [`union`]) and this cap (clamped to
    /// 1..=[`MAX_SERIES_LIMIT`]; the flag refuses values outside it). With no names, the one
    /// empty set is the only set.
    #[must_use]
    pub(crate) fn new(names: &[String], max_series: usize) -> LabelSets {
        LabelSets {
            names: names.to_vec(),
            max_series: max_series.clamp(1, MAX_SERIES_LIMIT),
            sets: Vec::new(),
            index: Vec::new(),
            hasher: RandomState::new(),
            scratch: Vec::with_capacity(MAX_LABELS * (MAX_LABEL_VALUE + 1)),
            overflows: 0,
            overflow_this_step: false,
            streak: None,
        }
    }

    /// The label names, in series order.
    #[must_use]
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// The series cap.
    #[must_use]
    pub(crate) fn max_series(&self) -> usize {
        self.max_series
    }

    /// The number of distinct sets admitted (the overflow series not included).
    #[must_use]
    pub(crate) fn len(&self) -> usize {
        self.sets.len()
    }

    #[cfg(test)]
    /// How many lookups went to the overflow series.
    #[must_use]
    pub(crate) fn overflows(&self) -> u64 {
        self.overflows
    }

    /// The values of the set at `series`, in the order of [`LabelSets::names`].
    pub(crate) fn values(&self, series: usize) -> impl Iterator<Item = &str> {
        let (set, n) = self
            .sets
            .get(series)
            .map_or((&[][..], 0), |s| (&s[..], self.names.len()));
        set.split(|&b| b == SEP)
            .take(n)
            .map(|v| std::str::from_utf8(v).unwrap_or(""))
    }

    /// The series of a label set: its values in the order of [`LabelSets::names`] (from
    /// [`arrange`]); values past the names are ignored. Allocates only when it admits a set.
    pub(crate) fn lookup(&mut self, values: &[&str]) -> Series {
        self.scratch.clear();
        for v in values.iter().take(self.names.len()) {
            self.scratch.extend_from_slice(v.as_bytes());
            self.scratch.push(SEP);
        }
        // A log that writes the overflow series' own values counts there: a set of its own
        // would repeat that series in the exposition.
        if !self.names.is_empty()
            && values
                .iter()
                .take(self.names.len())
                .all(|v| *v == OVERFLOW_VALUE)
        {
            self.overflows += 1;
            return Series::Overflow {
                streak_started: false,
            };
        }
        let (slot, found) = self.probe();
        if let Some(series) = found {
            return Series::Known(series);
        }
        if self.sets.len() >= self.max_series {
            self.overflows += 1;
            let streak_started = self.streak.is_none() && !self.overflow_this_step;
            self.overflow_this_step = true;
            return Series::Overflow { streak_started };
        }
        let series = self.sets.len();
        self.sets.push(self.scratch.as_slice().into());
        if self.grow() {
            self.reindex();
        } else {
            self.index[slot] = series as u32;
        }
        Series::New(series)
    }

    /// Closes the step that ends at `now`: a streak ends once no step overflowed for
    /// [`STREAK_QUIET`], so the next overflow is warned about again (sets that overflow now and
    /// then make one warning a minute at most, not one per poll).
    pub(crate) fn end_step(&mut self, now: Instant) {
        if std::mem::take(&mut self.overflow_this_step) {
            self.streak = Some(now);
        } else if self
            .streak
            .is_some_and(|last| now.saturating_duration_since(last) >= STREAK_QUIET)
        {
            self.streak = None;
        }
    }

    /// Where `scratch` is or would go in the index, and its series if it is there.
    fn probe(&self) -> (usize, Option<usize>) {
        if self.index.is_empty() {
            return (0, None);
        }
        let mask = self.index.len() - 1;
        let mut slot = self.hasher.hash_one(&self.scratch[..]) as usize & mask;
        loop {
            match self.index[slot] {
                EMPTY => return (slot, None),
                i if *self.sets[i as usize] == self.scratch[..] => return (slot, Some(i as usize)),
                _ => slot = (slot + 1) & mask,
            }
        }
    }

    /// Whether the index must grow to stay at most half full.
    fn grow(&self) -> bool {
        self.index.len() < 2 * self.sets.len()
    }

    /// Rebuilds the index at twice the sets' count (rounded up to a power of two).
    fn reindex(&mut self) {
        let len = (2 * self.sets.len()).next_power_of_two().max(8);
        self.index.clear();
        self.index.resize(len, EMPTY);
        let mask = len - 1;
        for (i, set) in self.sets.iter().enumerate() {
            let mut slot = self.hasher.hash_one(&set[..]) as usize & mask;
            while self.index[slot] != EMPTY {
                slot = (slot + 1) & mask;
            }
            self.index[slot] = i as u32;
        }
    }

    #[cfg(test)]
    /// Bytes this table holds on the heap, roughly: what the cap bounds.
    #[must_use]
    pub(crate) fn heap_bytes(&self) -> usize {
        self.sets.capacity() * std::mem::size_of::<Box<[u8]>>()
            + self.sets.iter().map(|s| s.len()).sum::<usize>()
            + self.index.capacity() * 4
            + self.scratch.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn sets_map_to_stable_series_until_the_cap_then_to_the_overflow_series() {
        let mut t = LabelSets::new(&names(&["status", "worker"]), 3);
        let steps: &[(&[&str], Series)] = &[
            (&["ok", "w1"], Series::New(0)),
            (&["ok", "w1"], Series::Known(0)),
            (&["failed", "w1"], Series::New(1)),
            // The separator keeps ("a", "bc") apart from ("ab", "c").
            (&["ok", "w1x"], Series::New(2)),
            (
                &["okw", "1x"],
                Series::Overflow {
                    streak_started: true,
                },
            ),
            (
                &["ok", "w2"],
                Series::Overflow {
                    streak_started: false,
                },
            ),
            (&["failed", "w1"], Series::Known(1)),
            (&["ok", "w1x"], Series::Known(2)),
            (&["ok", "w1", "ignored past the names"], Series::Known(0)),
            (
                &[OVERFLOW_VALUE, OVERFLOW_VALUE],
                Series::Overflow {
                    streak_started: false,
                },
            ),
        ];
        for (i, &(values, want)) in steps.iter().enumerate() {
            assert_eq!(t.lookup(values), want, "step {i}: {values:?}");
        }
        assert_eq!((t.len(), t.overflows()), (3, 3));
        assert_eq!(t.values(1).collect::<Vec<_>>(), ["failed", "w1"]);
        assert_eq!(t.values(9).count(), 0, "no such series: no values");
        // Steps with an overflow keep the streak; a minute without one ends it.
        let t0 = Instant::now();
        t.end_step(t0);
        t.end_step(t0 + STREAK_QUIET / 2);
        assert_eq!(
            t.lookup(&["x", "y"]),
            Series::Overflow {
                streak_started: false
            }
        );
        t.end_step(t0 + STREAK_QUIET);
        t.end_step(t0 + STREAK_QUIET * 3 / 2);
        assert_eq!(
            t.lookup(&["x", "y"]),
            Series::Overflow {
                streak_started: false
            },
            "less than a minute after the last overflow"
        );
        t.end_step(t0 + STREAK_QUIET * 2);
        t.end_step(t0 + STREAK_QUIET * 3);
        assert_eq!(
            t.lookup(&["x", "y"]),
            Series::Overflow {
                streak_started: true
            }
        );
    }

    #[test]
    fn no_names_means_one_set() {
        let mut t = LabelSets::new(&[], 1);
        assert_eq!(t.lookup(&[]), Series::New(0));
        assert_eq!(t.lookup(&["whatever"]), Series::Known(0));
        assert_eq!(t.values(0).count(), 0);
    }

    #[test]
    fn memory_is_bounded_by_the_cap_and_known_sets_do_not_allocate() {
        let mut t = LabelSets::new(&names(&["a", "b"]), 100);
        let long = "v".repeat(MAX_LABEL_VALUE - 8);
        let mut value = String::with_capacity(MAX_LABEL_VALUE);
        let mut at_cap = 0;
        for i in 0..200_000u32 {
            value.clear();
            value.push_str(&long);
            write!(value, "{i:08}").expect("writing to a String");
            let got = t.lookup(&[&value, &long]);
            if i == 99 {
                at_cap = t.heap_bytes();
            }
            assert_eq!(matches!(got, Series::New(_)), i < 100);
        }
        assert_eq!((t.len(), t.overflows()), (100, 199_900));
        assert_eq!(t.heap_bytes(), at_cap, "overflowing sets take no memory");
        // 100 sets of two values of at most 128 bytes, with slack for the index and vectors.
        assert!(at_cap < 100 * 2 * 129 + (16 << 10), "{at_cap} bytes");
        for series in 0..100 {
            let v: Vec<String> = t.values(series).map(str::to_owned).collect();
            let refs = [v[0].as_str(), v[1].as_str()];
            assert_eq!(t.lookup(&refs), Series::Known(series));
        }
        assert_eq!(t.heap_bytes(), at_cap, "known sets take no memory");
    }

    #[test]
    fn the_union_and_the_arrangement_of_values() {
        let t = |s: &str| Template::parse(s.as_bytes(), false).expect("test template parses");
        let finished = t("* status={label:status} worker={label:worker}");
        let failed = t("* worker={label:worker} reason={label:reason}");
        let all = union(&[&finished, &failed]).expect("three names");
        assert_eq!(all, ["status", "worker", "reason"]);
        let at = positions(&failed, &all);
        assert_eq!(
            arrange(&failed, &at, &["w1", "timeout", "", ""]),
            ["", "w1", "timeout", ""]
        );
        let at = positions(&finished, &all);
        assert_eq!(
            arrange(&finished, &at, &["ok", "w2", "", ""]),
            ["ok", "w2", "", ""]
        );
        let five = t("{label:a} {label:b} {label:c} *");
        let more = t("{label:d} {label:e} *");
        assert!(union(&[&five, &more])
            .expect_err("five names")
            .contains("at most 4"));
        assert!(
            union(&[&five, &five]).is_ok(),
            "the same names in both templates"
        );
    }
}
