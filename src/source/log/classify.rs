//! What a log line means, decided once for the live source and the check mode alike: the
//! failed template first, then finished, then started; the duration parsed and the label
//! values put in the order of the label names across templates. Owns the rules that tie the
//! templates together (at most 4 label names in all, none on the started template). Pure: no
//! files, clocks, metrics or label-set table.

use std::time::Duration;

use crate::source::log::labels::{arrange, positions, union};
use crate::source::log::template::{
    parse_duration, Found, Template, Unit, MAX_LABELS, MAX_LABEL_VALUE,
};

/// What a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A widget finished (or failed): a widget event.
    Finished {
        /// It matched the failed template.
        failed: bool,
        /// The parsed `{duration}`, when the template has one.
        duration: Option<Duration>,
        /// The label values in the order of [`Classifier::names`]; `""` for a name the
        /// matching template lacks, and past the names.
        labels: [&'a str; MAX_LABELS],
    },
    /// A widget started (matched only the started template).
    Started,
    /// The line matched a template but cannot count: it is `invalid`.
    Invalid(Why),
    /// The line matched no template.
    Unmatched,
}

/// Why a matched line is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Why {
    /// `{duration}` took bytes that are no duration.
    Duration,
    /// A label value is not valid UTF-8 (or, with `too_long`, longer than 128 bytes).
    Label {
        /// The label's index in [`Classifier::names`].
        name: usize,
        /// Too long rather than not UTF-8.
        too_long: bool,
    },
}

/// The compiled templates and what ties them together.
#[derive(Debug, Clone)]
pub(crate) struct Classifier {
    finished: Template,
    failed: Option<Template>,
    started: Option<Template>,
    unit: Unit,
    names: Vec<String>,
    at_finished: [usize; MAX_LABELS],
    at_failed: [usize; MAX_LABELS],
}

impl Classifier {
    /// Ties the templates together: refuses label captures in the started template (the
    /// error names `--widget.log.started`) and more than 4 label names across the finished and
    /// failed templates (the error names both).
    pub(crate) fn new(
        finished: Template,
        failed: Option<Template>,
        started: Option<Template>,
        unit: Unit,
    ) -> Result<Classifier, &'static str> {
        if started
            .as_ref()
            .is_some_and(|t| !t.label_names().is_empty())
        {
            return Err("--widget.log.started takes no {label:NAME}: a started widget has no outcome to label");
        }
        let mut both = vec![&finished];
        both.extend(failed.as_ref());
        let names = union(&both)?;
        let at_finished = positions(&finished, &names);
        let at_failed = failed
            .as_ref()
            .map_or([0; MAX_LABELS], |t| positions(t, &names));
        Ok(Classifier {
            finished,
            failed,
            started,
            unit,
            names,
            at_finished,
            at_failed,
        })
    }

    /// The label names of the widget families, in order.
    #[must_use]
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// What `line` (without its line ending) is.
    #[must_use]
    pub(crate) fn classify<'a>(&self, line: &'a [u8]) -> Line<'a> {
        let failed = self.failed.as_ref().and_then(|t| match t.capture(line) {
            Found::No => None,
            found => Some((found, t, &self.at_failed, true)),
        });
        let (found, template, at, is_failure) = if let Some(hit) = failed {
            hit
        } else {
            let found = self.finished.capture(line);
            if found == Found::No {
                let started = self
                    .started
                    .as_ref()
                    .is_some_and(|t| t.capture(line) != Found::No);
                return if started {
                    Line::Started
                } else {
                    Line::Unmatched
                };
            }
            (found, &self.finished, &self.at_finished, false)
        };
        match found {
            Found::No => Line::Unmatched,
            Found::Invalid(bad) => Line::Invalid(Why::Label {
                name: at[bad.label],
                too_long: bad.too_long,
            }),
            Found::Yes { duration, labels } => {
                let duration = match duration {
                    None => None,
                    Some(text) => match parse_duration(text, self.unit) {
                        Some(d) => Some(d),
                        None => return Line::Invalid(Why::Duration),
                    },
                };
                Line::Finished {
                    failed: is_failure,
                    duration,
                    labels: arrange(template, at, &labels),
                }
            }
        }
    }

    /// The reason in words, for the check mode's report and log lines.
    #[must_use]
    pub(crate) fn reason(&self, why: Why) -> String {
        match why {
            Why::Duration => "the {duration} capture is no duration".to_owned(),
            Why::Label { name, too_long } => {
                let name = self.names.get(name).map_or("?", String::as_str);
                if too_long {
                    format!("the value of label {name} is longer than {MAX_LABEL_VALUE} bytes")
                } else {
                    format!("the value of label {name} is not valid UTF-8")
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Template {
        Template::parse(s.as_bytes(), false).expect("test template parses")
    }

    fn classifier() -> Classifier {
        Classifier::new(
            t("* widget * done status=ok took={duration} worker={label:worker}"),
            Some(t(
                "* widget * done status=failed reason={label:reason} worker={label:worker}",
            )),
            Some(t("* widget * start")),
            Unit::Ms,
        )
        .expect("valid templates")
    }

    #[test]
    fn lines_table() {
        let c = classifier();
        assert_eq!(c.names(), ["worker", "reason"]);
        let ms = |n| Some(Duration::from_millis(n));
        let cases: &[(&[u8], Line<'_>)] = &[
            (
                b"t widget 1 done status=ok took=231 worker=w-3",
                Line::Finished {
                    failed: false,
                    duration: ms(231),
                    labels: ["w-3", "", "", ""],
                },
            ),
            (
                b"t widget 1 done status=failed reason=timeout worker=w-1",
                Line::Finished {
                    failed: true,
                    duration: None,
                    labels: ["w-1", "timeout", "", ""],
                },
            ),
            (b"t widget 1 start", Line::Started),
            (b"t widget 1 done status=unknown", Line::Unmatched),
            (
                b"t widget 1 done status=ok took=1.2.3s worker=w",
                Line::Invalid(Why::Duration),
            ),
            (
                b"t widget 1 done status=failed reason=\xff worker=w",
                Line::Invalid(Why::Label {
                    name: 1,
                    too_long: false,
                }),
            ),
        ];
        for (line, want) in cases {
            assert_eq!(
                c.classify(line),
                *want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
        assert!(c
            .reason(Why::Label {
                name: 1,
                too_long: true
            })
            .contains("label reason is longer than 128 bytes"));
    }

    #[test]
    fn templates_are_tied_together() {
        let labelled_start = Classifier::new(t("a"), None, Some(t("s {label:x}")), Unit::S);
        assert!(labelled_start
            .expect_err("started with a label")
            .contains("--widget.log.started takes no {label:NAME}"));
        let five = Classifier::new(
            t("{label:a} {label:b} {label:c} x"),
            Some(t("{label:c} {label:d} {label:e} y")),
            None,
            Unit::S,
        );
        assert!(five.expect_err("five names").contains("at most 4"));
        let c = Classifier::new(t("{label:a} x"), Some(t("{label:a} y")), None, Unit::S);
        assert_eq!(c.expect("shared name").names(), ["a"]);
    }
}
