//! The flag-table machinery: what one flag is ([`Flag`]), how its value is read and spelled
//! back (`Row`), and the table of one kind of source (`SourceFlags`) with its types
//! erased ([`SourceTable`]) so that the command line can hold every kind in one list. The
//! validated settings of the chosen kind travel in [`SourceConfig`].
//!
//! Why the erasure: `config` sits below `source`, so it cannot name a source's types. Each
//! source declares its rows typed (`Row<SimConfig, SimConfig>`, `Row<LogFlags, LogConfig>`)
//! in its own file; the generic impl of [`SourceTable`] below is the one place that turns
//! them into `dyn Any` and back, and the source registry is the one place that reads a
//! [`SourceConfig`] back as its kind's type. Neither a source nor `config` downcasts by hand.

use std::any::Any;
use std::fmt::{self, Write as _};

use crate::error::Error;

/// Whether a flag takes a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// `--flag=VALUE` or `--flag VALUE`.
    Value,
    /// `--flag` or `--flag=VALUE` (never the next argument).
    Optional,
    /// `--flag` alone.
    Nothing,
}

/// Which part of the exporter a flag configures. A flag of a part that is off (or of a
/// source that is not the chosen one) is refused rather than silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The exporter as a whole.
    General,
    /// The HTTP output.
    Web,
    /// The textfile output.
    Textfile,
    /// The source whose table holds the flag.
    Source,
    /// Printing a file and exiting.
    Print,
    /// A threshold of the alerting rules that `--print-alert-rules` prints.
    AlertRules,
}

/// What is switched on, for [`Scope::refuses`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InUse {
    /// The HTTP output.
    pub(crate) http: bool,
    /// The textfile output.
    pub(crate) textfile: bool,
    /// `--print-alert-rules`.
    pub(crate) alert_rules: bool,
}

impl Scope {
    /// Why a flag of this scope cannot be used, if it cannot. Source flags are judged by the
    /// parser, which knows which table holds them.
    pub(crate) fn refuses(self, on: InUse) -> Option<&'static str> {
        match self {
            Scope::General | Scope::Print | Scope::Source => None,
            Scope::Web => (!on.http)
                .then_some("is for the HTTP output, which --web.listen-address=none turns off"),
            Scope::Textfile => {
                (!on.textfile).then_some("is for the textfile output; give --textfile.path too")
            }
            Scope::AlertRules => (!on.alert_rules).then_some(
                "is a threshold of the printed alert rules; give --print-alert-rules too",
            ),
        }
    }
}

/// One flag as operators see it: what `--help`, the README check and the parser's lookup
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flag {
    /// `--group.name`.
    pub name: &'static str,
    /// A short alias (`-h`), if any.
    pub short: Option<&'static str>,
    /// Whether it takes a value.
    pub takes: Takes,
    /// The value's syntax as `--help` shows it (`DURATION`, `[HOST]:PORT`); empty for none.
    pub syntax: &'static str,
    /// The default as an operator would write it; empty when there is none.
    pub default: &'static str,
    /// One line of help.
    pub help: &'static str,
    /// What it configures.
    pub scope: Scope,
}

/// One row of a flag table: the flag, how its value is read into the raw flags `R`, and how
/// a validated config `V` spells it back.
pub(crate) struct Row<R, V> {
    /// The flag itself.
    pub(crate) flag: Flag,
    /// Reads the value (if any) into the raw flags; an error is the reason, quoted after
    /// `invalid value "V" for FLAG: `.
    pub(crate) apply: fn(&mut R, Option<&str>) -> Result<(), String>,
    /// The value that gives back `V`'s setting, when it differs from the default.
    pub(crate) show: fn(&V) -> Option<String>,
}

/// The value a flag was given; `Takes::Value` flags always get one.
#[must_use]
pub(crate) fn given(v: Option<&str>) -> &str {
    v.unwrap_or_default()
}

/// `Some(text)` when `value` differs from `default`: the usual `show`.
pub(crate) fn unless<T: PartialEq>(
    value: &T,
    default: &T,
    text: impl FnOnce() -> String,
) -> Option<String> {
    (value != default).then(text)
}

/// A `show` for flags that are never spelled back.
#[must_use]
pub(crate) fn never<V>(_: &V) -> Option<String> {
    None
}

/// The kinds of source the command line offers, the default first (the source registry).
pub type Kinds<'k> = &'k [&'static dyn SourceTable];

/// `--widget.source`: the switch between the kinds of source. The parser owns it, since its
/// values, default and help come from the kinds it is given.
pub(crate) const SWITCH: Flag = Flag {
    name: "--widget.source",
    short: None,
    takes: Takes::Value,
    syntax: "SOURCE",
    default: "",
    help: "widget source",
    scope: Scope::General,
};

/// "a or b", "a, b or c": the kinds' names as an operator reads them.
pub(crate) fn names(kinds: Kinds) -> String {
    let mut out = String::new();
    for (i, k) in kinds.iter().enumerate() {
        if i > 0 {
            out.push_str(if i + 1 == kinds.len() { " or " } else { ", " });
        }
        out.push_str(k.name());
    }
    out
}

/// The value syntax every source shares, after the kinds' own (`SourceFlags::help`).
const DURATION: &str = "DURATION is like 250ms, 1.5s or 1m30s (units ns, us, ms, s, m, h).\n";

/// The example for the outputs, after the kinds' examples.
const TEXTFILE_EXAMPLE: &str = "\
Write a file for node_exporter's textfile collector every 15s, with no HTTP port:
  widget-exporter --web.listen-address=none \\
    --textfile.path=/var/lib/prometheus/node-exporter/widget-exporter.prom
";

/// The `--help` text for `flags` (every flag, in order) and the kinds of source: the flags,
/// each kind's under a heading with its required flags marked, then what each kind says of
/// itself and the general notes. It names no file: the host that got the binary may have
/// nothing else.
pub(crate) fn usage(flags: &[Flag], kinds: Kinds) -> String {
    let mut out = String::from("usage: widget-exporter [FLAGS]\n\n");
    let mut about =
        String::from("Exports the metrics of a widget-processing service for Prometheus: widgets");
    for (i, k) in kinds.iter().enumerate() {
        if i > 0 {
            about.push_str(if i + 1 == kinds.len() { " or" } else { "," });
        }
        let _ = write!(about, " {}", k.summary());
        if i == 0 {
            about.push_str(" (the default)");
        }
    }
    about.push_str(". Serves them over HTTP, writes them to a file, or both.");
    wrap(&mut out, &about, 90);
    out.push('\n');
    let left = |f: &Flag| {
        let names = f.short.map_or_else(String::new, |s| format!("{s}, "));
        match f.takes {
            Takes::Value => format!("{names}{}={}", f.name, f.syntax),
            Takes::Optional | Takes::Nothing => format!("{names}{}{}", f.name, f.syntax),
        }
    };
    let width = flags
        .iter()
        .map(|f| left(f).chars().count())
        .max()
        .unwrap_or(0);
    let owner = |f: &Flag| {
        kinds
            .iter()
            .find(|k| (0..).map_while(|i| k.flag(i)).any(|g| g.name == f.name))
    };
    // Each kind's flags, and the thresholds of the printed alert rules, under a heading.
    let mut section = None;
    for f in flags {
        let kind = owner(f);
        let here = match kind {
            Some(k) if k.required().is_empty() => {
                Some(format!("with --widget.source={}:", k.name()))
            }
            // The marker takes the indent's place: the lines stay as wide as the others.
            Some(k) => Some(format!(
                "with --widget.source={} (* marks a required flag):",
                k.name()
            )),
            None if f.scope == Scope::AlertRules => Some("with --print-alert-rules:".to_owned()),
            None => None,
        };
        if here != section {
            out.push('\n');
            if let Some(heading) = &here {
                out.push_str(heading);
                out.push('\n');
            }
            section = here;
        }
        let l = left(f);
        let pad = width - l.chars().count();
        let required = kind.is_some_and(|k| k.required().contains(&f.name));
        let indent = if required { "* " } else { "  " };
        let _ = write!(out, "{indent}{l}{:pad$}  {}", "", f.help);
        if f.name == SWITCH.name {
            let _ = write!(out, ": {}", names(kinds));
        }
        if !f.default.is_empty() && f.takes == Takes::Value {
            let _ = write!(out, " (default {})", f.default);
        }
        out.push('\n');
    }
    for k in kinds {
        if !k.help().is_empty() {
            out.push('\n');
            out.push_str(k.help());
        }
    }
    out.push('\n');
    out.push_str(DURATION);
    let examples = kinds.iter().map(|k| k.example()).chain([TEXTFILE_EXAMPLE]);
    for example in examples.filter(|e| !e.is_empty()) {
        out.push('\n');
        out.push_str(example);
    }
    out
}

/// Appends `text` as lines of at most `width` characters, broken between words.
fn wrap(out: &mut String, text: &str, width: usize) {
    let mut line = 0;
    for word in text.split(' ') {
        if line > 0 && line + 1 + word.chars().count() > width {
            out.push('\n');
            line = 0;
        } else if line > 0 {
            out.push(' ');
            line += 1;
        }
        out.push_str(word);
        line += word.chars().count();
    }
    out.push('\n');
}

/// One kind of source as the command line sees it, declared in the source's own file.
pub(crate) struct SourceFlags<R: 'static, V: 'static> {
    /// The value of `--widget.source` that chooses it.
    pub(crate) name: &'static str,
    /// How `--help`'s first lines say where its widgets come from ("from a simulation").
    pub(crate) summary: &'static str,
    /// What the exporter exports with it, for the landing page and a printed unit's
    /// `Description=`: "a simulated widget-processing service".
    pub(crate) about: &'static str,
    /// The flags it cannot do without, which `--help` marks.
    pub(crate) required: &'static [&'static str],
    /// Its part of `--help` after the flags (the syntax of its values), lines of at most
    /// 90 characters each ending in a newline; empty for none.
    pub(crate) help: &'static str,
    /// Its example in `--help`: a line saying what it does, then the command indented by
    /// two spaces; empty for none.
    pub(crate) example: &'static str,
    /// Its flags, in `--help` order; given with another source, they are refused.
    pub(crate) rows: &'static [Row<R, V>],
    /// Turns the raw flags into its validated config, or one usage error naming the flag.
    pub(crate) validate: fn(R) -> Result<V, Error>,
}

/// `SourceFlags` with its types erased, for the parser's list of kinds.
pub trait SourceTable: Sync {
    /// The value of `--widget.source` that chooses it.
    fn name(&self) -> &'static str;
    /// How `--help` says where its widgets come from.
    fn summary(&self) -> &'static str;
    /// What the exporter exports with it: "a simulated widget-processing service".
    fn about(&self) -> &'static str;
    /// The flags it cannot do without.
    fn required(&self) -> &'static [&'static str];
    /// Its part of `--help` after the flags.
    fn help(&self) -> &'static str;
    /// Its example in `--help`.
    fn example(&self) -> &'static str;
    /// Its flag at `row`, if there is one.
    fn flag(&self, row: usize) -> Option<&'static Flag>;
    /// Fresh raw flags, all defaults.
    fn raw(&self) -> Box<dyn Any>;
    /// Reads a value of its flag at `row` into `raw` (from [`SourceTable::raw`]).
    fn apply(&self, row: usize, raw: &mut dyn Any, value: Option<&str>) -> Result<(), String>;
    /// Validates `raw` (from [`SourceTable::raw`]) into the source's config.
    fn validate(&'static self, raw: Box<dyn Any>, default: bool) -> Result<SourceConfig, Error>;
    /// How `config` (of this kind) spells its flag at `row`, when not the default.
    fn show(&self, row: usize, config: &SourceConfig) -> Option<String>;
}

const OWN_RAW: &str = "a kind reads only the raw flags it made";

impl<R, V> SourceTable for SourceFlags<R, V>
where
    R: Default + 'static,
    V: Clone + PartialEq + fmt::Debug + Send + Sync + 'static,
{
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn about(&self) -> &'static str {
        self.about
    }

    fn required(&self) -> &'static [&'static str] {
        self.required
    }

    fn help(&self) -> &'static str {
        self.help
    }

    fn example(&self) -> &'static str {
        self.example
    }

    fn flag(&self, row: usize) -> Option<&'static Flag> {
        self.rows.get(row).map(|r| &r.flag)
    }

    fn raw(&self) -> Box<dyn Any> {
        Box::new(R::default())
    }

    fn apply(&self, row: usize, raw: &mut dyn Any, value: Option<&str>) -> Result<(), String> {
        (self.rows[row].apply)(raw.downcast_mut().expect(OWN_RAW), value)
    }

    fn validate(&'static self, raw: Box<dyn Any>, default: bool) -> Result<SourceConfig, Error> {
        let raw = *raw.downcast::<R>().expect(OWN_RAW);
        Ok(SourceConfig {
            kind: self,
            default,
            value: Box::new((self.validate)(raw)?),
        })
    }

    fn show(&self, row: usize, config: &SourceConfig) -> Option<String> {
        (self.rows[row].show)(config.get()?)
    }
}

/// The chosen source's validated config, whatever its type: the registry reads it back with
/// `SourceConfig::get` and the kind's own type.
pub struct SourceConfig {
    kind: &'static dyn SourceTable,
    default: bool,
    value: Box<dyn Value>,
}

impl SourceConfig {
    /// The kind's name, as `--widget.source` takes it.
    #[must_use]
    pub(crate) fn name(&self) -> &'static str {
        self.kind.name()
    }

    /// Whether the kind is the default one (no `--widget.source` needed to choose it).
    #[must_use]
    pub(crate) fn is_default(&self) -> bool {
        self.default
    }

    /// The kind's flag table.
    pub(crate) fn kind(&self) -> &'static dyn SourceTable {
        self.kind
    }

    /// The config as its kind's type `V`; `None` if it is of another kind.
    #[must_use]
    pub(crate) fn get<V: Any>(&self) -> Option<&V> {
        (*self.value).as_any().downcast_ref()
    }

    /// `SourceConfig::get`, to edit: tests build the configs they expect.
    #[cfg(test)]
    pub(crate) fn get_mut<V: Any>(&mut self) -> Option<&mut V> {
        (*self.value).as_any_mut().downcast_mut()
    }
}

impl Clone for SourceConfig {
    fn clone(&self) -> Self {
        SourceConfig {
            kind: self.kind,
            default: self.default,
            value: (*self.value).clone_box(),
        }
    }
}

impl PartialEq for SourceConfig {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
            && self.default == other.default
            && (*self.value).same(&*other.value)
    }
}

impl fmt::Debug for SourceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {:?}", self.name(), &*self.value)
    }
}

/// What [`SourceConfig`] needs of a source's config type, for any such type.
trait Value: Any + fmt::Debug + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    #[cfg(test)]
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn clone_box(&self) -> Box<dyn Value>;
    fn same(&self, other: &dyn Value) -> bool;
}

impl<T: Any + Clone + PartialEq + fmt::Debug + Send + Sync> Value for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    #[cfg(test)]
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }

    fn clone_box(&self) -> Box<dyn Value> {
        Box::new(self.clone())
    }

    fn same(&self, other: &dyn Value) -> bool {
        other.as_any().downcast_ref::<T>() == Some(self)
    }
}
