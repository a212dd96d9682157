//! The command line, in two stages (ripgrep's): the flags as read (`Raw`, every general
//! value with its default; each source's own raw flags beside it), then a validated
//! [`Config`] whose required values are never `Option`s that a user checks again. Every flag
//! is declared once, as a `Row` of a table: its name, value syntax, default, help line,
//! scope, how its value is read and how a config spells it back. The tables drive parsing
//! (kingpin style: `--flag=value` or `--flag value`), `--help` ([`usage`]),
//! [`Config::to_args`] for the printed systemd units, [`Config::settings`] for the start-up
//! log line and a test that the README lists every flag. It is pure: it never prints,
//! exits, reads the environment or touches a socket; `main` hands it the arguments and the
//! kinds of source, and decides what to do with the answer.
//!
//! `config` sits at the bottom, below `source`, so it names no source and imports nothing of
//! them. Each kind of source declares its table and validation (`SourceFlags`) in its own
//! file; the source registry hands the kinds to [`parse`] and [`usage`] as an argument
//! ([`Kinds`]), and the validated config of the chosen one travels in [`Config::source`] with
//! its type erased ([`SourceConfig`], see `flags` for why). Inside, the files layer too:
//! `duration` and `flags` (the table machinery, `--help`) at the bottom, `settings`
//! (the general rows, `Raw`, [`Config`]) above them, this file (the parse loop and the
//! checks across flags) on top; children never use this file.
//!
//! To add a general flag: a row in `BEFORE_SOURCES` or `AFTER_SOURCES` (in `--help`
//! order), a field in `Raw` and, if it needs one, in [`Config`]; checks across flags go in
//! `validate`. A source's flag goes in that source's table.

use std::ffi::OsString;

use crate::config::flags::{names, InUse, SWITCH};
use crate::error::Error;

pub(crate) mod duration;
pub(crate) mod flags;
pub(crate) mod settings;

pub use duration::{format_duration, parse_duration};
pub(crate) use flags::{given, unless, Row, SourceFlags};
pub use flags::{Flag, Kinds, Scope, SourceConfig, SourceTable, Takes};
pub use settings::{Command, Config, ListenAddress, Print, UnitFlavor};
pub(crate) use settings::{Raw, AFTER_SOURCES, BEFORE_SOURCES};

/// Where a flag's value goes.
#[derive(Clone, Copy)]
enum Target {
    /// `--widget.source`.
    Switch,
    /// A general flag.
    General(&'static Row<Raw, Config>),
    /// The flag at `row` of the source `kind` (an index into the kinds).
    Source { kind: usize, row: usize },
}

/// Every flag, in `--help` order, with where its value goes.
fn table(kinds: Kinds) -> Vec<(Flag, Target)> {
    let general = |r: &'static Row<Raw, Config>| (r.flag, Target::General(r));
    let sources = kinds.iter().enumerate().flat_map(|(kind, k)| {
        (0..).map_while(move |row| Some((*k.flag(row)?, Target::Source { kind, row })))
    });
    std::iter::once((switch(kinds), Target::Switch))
        .chain(BEFORE_SOURCES.iter().map(general))
        .chain(sources)
        .chain(AFTER_SOURCES.iter().map(general))
        .collect()
}

/// `--widget.source` for these kinds: the first is the default.
fn switch(kinds: Kinds) -> Flag {
    Flag {
        default: kinds.first().map_or("", |k| k.name()),
        ..SWITCH
    }
}

/// Every flag the command line takes with these kinds of source, in `--help` order.
#[must_use]
pub fn flags(kinds: Kinds) -> Vec<Flag> {
    table(kinds).into_iter().map(|(f, _)| f).collect()
}

/// The flag called `name` (or its short alias), with these kinds of source.
#[cfg(test)]
pub(crate) fn flag(kinds: Kinds, name: &str) -> Option<Flag> {
    lookup(&table(kinds), name).map(|(f, _)| f)
}

/// The flag called `name` (or its short alias).
fn lookup(table: &[(Flag, Target)], name: &str) -> Option<(Flag, Target)> {
    table
        .iter()
        .find(|(f, _)| f.name == name || f.short == Some(name))
        .copied()
}

/// The `--help` text, from the tables and the kinds of source.
#[must_use]
pub fn usage(kinds: Kinds) -> String {
    flags::usage(&flags(kinds), kinds)
}

/// Parses the arguments (without the program name) left to right, with `kinds` the sources
/// `--widget.source` chooses from (the default first). `--help`, `-h` and `--version`
/// answer as soon as they are seen; any earlier error still wins. The cross-flag checks run
/// after the last argument and report the first problem.
pub fn parse<I, S>(args: I, kinds: Kinds) -> Result<Command, Error>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let table = table(kinds);
    let mut args = args.into_iter().map(Into::into);
    let mut raw = Raw::default();
    let mut sources: Vec<_> = kinds.iter().map(|k| k.raw()).collect();
    let mut chosen = 0;
    let mut seen: Vec<(Flag, Target)> = Vec::new();
    let mut print_flag: Option<&'static str> = None;

    while let Some(arg) = args.next() {
        let arg = arg.into_string().map_err(|raw| {
            Error::Usage(format!(
                "invalid argument {:?}: not valid UTF-8",
                raw.to_string_lossy()
            ))
        })?;
        if arg == "--" {
            // The conventional end of flags; after it, anything is a positional argument.
            match args.next() {
                Some(next) => return Err(unexpected(&next.to_string_lossy())),
                None => break,
            }
        }
        if !arg.starts_with('-') || arg == "-" {
            return Err(unexpected(&arg));
        }
        let (name, inline) = match arg.split_once('=') {
            Some((name, value)) if arg.starts_with("--") => (name, Some(value)),
            _ => (arg.as_str(), None),
        };
        let Some((f, target)) = lookup(&table, name) else {
            let hint = nearest(&table, name)
                .map(|known| format!("; did you mean {known}?"))
                .unwrap_or_default();
            return Err(Error::Usage(format!(
                "unknown flag {}{hint}",
                name.escape_debug()
            )));
        };
        if seen.iter().any(|(s, _)| s.name == f.name) {
            return Err(Error::Usage(format!("flag {name} given twice")));
        }
        seen.push((f, target));
        let value = match f.takes {
            Takes::Value => Some(value(name, inline, &mut args)?),
            Takes::Optional => inline.map(str::to_owned),
            Takes::Nothing => {
                no_value(name, inline)?;
                None
            }
        };
        let printing = raw.print;
        let v = value.as_deref();
        match target {
            Target::Switch => match kinds.iter().position(|k| k.name() == given(v)) {
                Some(i) => {
                    chosen = i;
                    Ok(())
                }
                None => Err(format!("expected {}", names(kinds))),
            },
            Target::General(row) => (row.apply)(&mut raw, v),
            Target::Source { kind, row } => kinds[kind].apply(row, &mut *sources[kind], v),
        }
        .map_err(|why| invalid(v.unwrap_or_default(), name, &why))?;
        if let Some(early) = raw.early.take() {
            return Ok(early);
        }
        if raw.print != printing {
            if let Some(old) = print_flag {
                return Err(Error::Usage(format!(
                    "flags {old} and {} cannot be used together",
                    f.name
                )));
            }
            print_flag = Some(f.name);
        }
    }
    refuse_out_of_scope(&seen, kinds, chosen, &raw)?;
    let Some(kind) = kinds.get(chosen) else {
        return Err(Error::Usage("no source to choose from".to_owned()));
    };
    let raw_source = sources.swap_remove(chosen);
    let print = raw.print;
    let config = validate(raw, kind.validate(raw_source, chosen == 0))?;
    if let Some(print) = print {
        check_print(print, &config)?;
    }
    Ok(match print {
        Some(print) => Command::Print(print, config),
        None => Command::Run(config),
    })
}

/// The first flag given for a part that is off or a source that is not the chosen one.
fn refuse_out_of_scope(
    seen: &[(Flag, Target)],
    kinds: Kinds,
    chosen: usize,
    raw: &Raw,
) -> Result<(), Error> {
    let on = InUse {
        http: raw.listen_address != ListenAddress::Off,
        textfile: raw.textfile_path.is_some(),
        alert_rules: raw.print == Some(Print::AlertRules),
    };
    for (f, target) in seen {
        let why = match *target {
            Target::Source { kind, .. } if kind != chosen => Some(format!(
                "is for --widget.source={}, not {}",
                kinds[kind].name(),
                kinds[chosen].name()
            )),
            _ => f.scope.refuses(on).map(str::to_owned),
        };
        if let Some(why) = why {
            return Err(Error::Usage(format!("flag {} {why}", f.name)));
        }
    }
    Ok(())
}

/// The checks across general flags, then the config they make with the source's. Each flag's
/// own limits were checked as it was read, so that the message can quote what the operator
/// wrote; the source checked its own flags across each other.
fn validate(raw: Raw, source: Result<SourceConfig, Error>) -> Result<Config, Error> {
    if raw.listen_address == ListenAddress::Off && raw.textfile_path.is_none() {
        return Err(Error::Usage(
            "--web.listen-address=none needs --textfile.path: with no HTTP and no textfile the \
             metrics would go nowhere"
                .to_owned(),
        ));
    }
    Ok(Config {
        listen_address: raw.listen_address,
        telemetry_path: raw.telemetry_path,
        systemd_socket: raw.systemd_socket,
        source: source?,
        average_window: raw.average_window,
        textfile_path: raw.textfile_path,
        textfile_interval: raw.textfile_interval,
        log_level: raw.log_level,
        log_format: raw.log_format,
        alert_thresholds: raw.alert_thresholds,
    })
}

/// What a printed file cannot say for this config.
fn check_print(print: Print, config: &Config) -> Result<(), Error> {
    match (print, &config.textfile_path) {
        (Print::SystemdSocket, _) if !config.serves_http() => Err(Error::Usage(
            "--print-systemd-socket: there is no socket with --web.listen-address=none \
             (the textfile output needs no .socket unit)"
                .to_owned(),
        )),
        (Print::SystemdUnit(_), Some(path)) => {
            let why = if !path.starts_with('/') {
                "a systemd unit needs an absolute path"
            } else if path
                .bytes()
                .any(|b| b <= b' ' || b"\"'\\%\x7f".contains(&b))
            {
                "a systemd unit cannot name a path with whitespace, quotes, backslashes or %"
            } else {
                return Ok(());
            };
            Err(invalid(path, "--textfile.path", why))
        }
        _ => Ok(()),
    }
}

/// The flag whose name is nearest to `name` within two edits (a letter added, dropped,
/// changed, or two neighbours swapped), if any: the likeliest one meant.
fn nearest(table: &[(Flag, Target)], name: &str) -> Option<&'static str> {
    table
        .iter()
        .map(|(f, _)| (edits(name, f.name), f.name))
        .filter(|&(d, _)| d <= 2)
        .min_by_key(|&(d, _)| d)
        .map(|(_, known)| known)
}

/// The optimal-string-alignment distance between `a` and `b`, in characters: the fewest
/// insertions, deletions, substitutions and swaps of two neighbours that turn one into the
/// other (each part edited once).
fn edits(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows of the table: two back (for swaps), one back and this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j] + 1).min(row[j - 1] + 1).min(last[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

fn invalid(value: &str, flag: &str, why: &str) -> Error {
    Error::Usage(format!("invalid value {value:?} for {flag}: {why}"))
}

fn unexpected(arg: &str) -> Error {
    Error::Usage(format!("unexpected argument {arg:?}"))
}

fn no_value(flag: &str, inline: Option<&str>) -> Result<(), Error> {
    match inline {
        None => Ok(()),
        Some(_) => Err(Error::Usage(format!("flag {flag} does not take a value"))),
    }
}

/// The value of a valued flag: after `=`, or the next argument unless that is a flag.
fn value(
    flag: &str,
    inline: Option<&str>,
    rest: &mut impl Iterator<Item = OsString>,
) -> Result<String, Error> {
    if let Some(v) = inline {
        return Ok(v.to_owned());
    }
    let needs = || Error::Usage(format!("flag {flag} needs a value"));
    let next = rest.next().ok_or_else(needs)?;
    let next = next
        .into_string()
        .map_err(|raw| invalid(&raw.to_string_lossy(), flag, "not valid UTF-8"))?;
    // `--log.level --help` is a forgotten value, not the level "--help".
    if next.starts_with("--") || next == "-h" {
        return Err(needs());
    }
    Ok(next)
}

/// The parser with made-up kinds of source: what it does for any registry, without one.
#[cfg(test)]
mod tests {
    use super::*;

    /// A kind whose one flag is required: `--x.n`, a number.
    #[derive(Debug, Default, Clone, Copy)]
    struct Raw {
        n: Option<u32>,
    }

    #[derive(Debug, Clone, PartialEq)]
    struct Settings {
        n: u32,
    }

    fn required(raw: Raw) -> Result<Settings, Error> {
        let n = raw
            .n
            .ok_or_else(|| Error::Usage("flag --x.n is required".into()))?;
        Ok(Settings { n })
    }

    const fn row(name: &'static str) -> Row<Raw, Settings> {
        Row {
            flag: Flag {
                name,
                short: None,
                takes: Takes::Value,
                syntax: "N",
                default: "",
                help: "a number",
                scope: Scope::Source,
            },
            apply: |raw, v| {
                raw.n = Some(given(v).parse().map_err(|_| "expected a number")?);
                Ok(())
            },
            show: |c| Some(c.n.to_string()),
        }
    }

    static A: SourceFlags<Raw, Settings> = SourceFlags {
        name: "a",
        summary: "from a",
        about: "a",
        required: &[],
        help: "",
        example: "",
        rows: &[row("--a.n")],
        validate: required,
    };
    static B: SourceFlags<Raw, Settings> = SourceFlags {
        name: "b",
        summary: "from b",
        about: "b",
        required: &[],
        help: "",
        example: "",
        rows: &[row("--bb.n")],
        validate: required,
    };
    static C: SourceFlags<Raw, Settings> = SourceFlags {
        name: "c",
        summary: "from c",
        about: "c",
        required: &[],
        help: "",
        example: "",
        rows: &[],
        validate: required,
    };

    fn run(args: &[&str]) -> Result<Command, String> {
        parse(args.iter().copied(), &[&A, &B, &C]).map_err(|e| e.to_string())
    }

    #[test]
    fn edit_distances() {
        for (a, b, want) in [
            ("", "", 0),
            ("abc", "abc", 0),
            ("abc", "", 3),
            ("abc", "abd", 1),
            ("abc", "ab", 1),
            ("abc", "abxc", 1),
            ("abc", "acb", 1),
            ("abcd", "badc", 2),
            ("ca", "abc", 3),
            ("--web.listen-adress", "--web.listen-address", 1),
            ("--web.lisetn-adress", "--web.listen-address", 2),
            ("--log.levle", "--log.level", 1),
            ("µs", "us", 1),
        ] {
            assert_eq!(edits(a, b), want, "{a:?} {b:?}");
            assert_eq!(edits(b, a), want, "{b:?} {a:?}");
        }
    }

    #[test]
    fn an_unknown_flag_near_a_known_one_gets_a_suggestion() {
        #[rustfmt::skip]
        let cases: &[(&[&str], &str)] = &[
            (&["--a.m=1"], "unknown flag --a.m; did you mean --a.n?"),
            (&["--bb.nn", "1"], "unknown flag --bb.nn; did you mean --bb.n?"),
            (&["--log.levle=info"], "unknown flag --log.levle; did you mean --log.level?"),
            (&["--hepl"], "unknown flag --hepl; did you mean --help?"),
            (&["--print-systemd-unti"], "unknown flag --print-systemd-unti; did you mean --print-systemd-unit?"),
            (&["--log.lv=info"], "unknown flag --log.lv"),
            (&["--zzz"], "unknown flag --zzz"),
        ];
        for (args, want) in cases {
            assert_eq!(run(args).err().as_deref(), Some(*want), "{args:?}");
        }
    }

    #[test]
    fn alert_thresholds_only_with_the_alert_rules() {
        use crate::host::units::Thresholds;
        use std::time::Duration;
        let printed = |args: &[&str]| match parse(args.iter().copied(), &[&A]) {
            Ok(Command::Print(Print::AlertRules, config)) => Ok(config.alert_thresholds),
            Ok(other) => panic!("{args:?}: {other:?}"),
            Err(e) => Err(e.to_string()),
        };
        assert_eq!(
            printed(&["--a.n=1", "--print-alert-rules"]),
            Ok(Thresholds::default())
        );
        assert_eq!(
            printed(&[
                "--a.n=1",
                "--alert.slow-p90=450ms",
                "--print-alert-rules",
                "--alert.failure-ratio=.05",
                "--alert.idle-after=1h",
            ]),
            Ok(Thresholds {
                slow_p90: Duration::from_millis(450),
                failure_ratio: 0.05,
                idle_after: Duration::from_secs(3600),
            })
        );
        #[rustfmt::skip]
        let cases: &[(&str, &str)] = &[
            ("--alert.slow-p90=0s", "invalid value \"0s\" for --alert.slow-p90: must be longer than 0s"),
            ("--alert.idle-after=999ms", "invalid value \"999ms\" for --alert.idle-after: must be at least 1s"),
            ("--alert.failure-ratio=0", "invalid value \"0\" for --alert.failure-ratio: expected a number above 0 and below 1, like 0.1"),
            ("--alert.failure-ratio=1", "invalid value \"1\" for --alert.failure-ratio: expected a number above 0 and below 1, like 0.1"),
            ("--alert.failure-ratio=NaN", "invalid value \"NaN\" for --alert.failure-ratio: expected a number above 0 and below 1, like 0.1"),
            ("--alert.failure-ratio=1e-1", "invalid value \"1e-1\" for --alert.failure-ratio: expected a number above 0 and below 1, like 0.1"),
        ];
        for (arg, want) in cases {
            let got = printed(&["--a.n=1", "--print-alert-rules", arg]);
            assert_eq!(got.as_ref().err().map(String::as_str), Some(*want), "{arg}");
        }
        // Without the rules they would do nothing: refused, naming the flag.
        for arg in [
            "--alert.slow-p90=2s",
            "--alert.failure-ratio=0.2",
            "--alert.idle-after=1m",
        ] {
            let name = arg.split('=').next().unwrap_or_default();
            for with in [&[][..], &["--print-systemd-unit"][..]] {
                let mut args = vec!["--a.n=1", arg];
                args.extend(with);
                let want = format!(
                    "flag {name} is a threshold of the printed alert rules; give \
                     --print-alert-rules too"
                );
                assert_eq!(run(&args).err(), Some(want), "{args:?}");
            }
        }
    }

    #[test]
    fn the_kinds_come_from_the_argument() {
        let kinds: Kinds = &[&A, &B, &C];
        let help = usage(kinds);
        let about = help.replace('\n', " ");
        assert!(
            about.contains("widgets from a (the default), from b or from c."),
            "{help}"
        );
        assert!(
            help.contains("widget source: a, b or c (default a)"),
            "{help}"
        );
        assert!(
            help.contains("--a.n=N") && help.contains("--bb.n=N"),
            "{help}"
        );
        // The chosen kind's flags are read and validated into its own type.
        let Ok(Command::Run(config)) = run(&["--widget.source=b", "--bb.n=7"]) else {
            panic!("{:?}", run(&["--widget.source=b", "--bb.n=7"]));
        };
        assert_eq!(config.source.name(), "b");
        assert_eq!(config.source.get::<Settings>(), Some(&Settings { n: 7 }));
        assert_eq!(config.to_args(), ["--widget.source=b", "--bb.n=7"]);
        assert!(config
            .settings()
            .contains(&("widget.source", "b".to_owned())));
        // Errors name the kinds given, the flag and the kind it belongs to.
        #[rustfmt::skip]
        let cases: &[(&[&str], &str)] = &[
            (&["--widget.source=d"], "invalid value \"d\" for --widget.source: expected a, b or c"),
            (&["--a.n=x"], "invalid value \"x\" for --a.n: expected a number"),
            (&["--bb.n=1"], "flag --bb.n is for --widget.source=b, not a"),
            (&["--widget.source=c"], "flag --x.n is required"),
        ];
        for (args, want) in cases {
            assert_eq!(run(args).err().as_deref(), Some(*want), "{args:?}");
        }
        // With no kind at all there is nothing to run.
        assert!(parse(["--log.level=info"], &[]).is_err());
    }
}
