//! The command line. Every flag is declared once, in [`FLAGS`]: its name, value syntax,
//! default, help line, which part of the exporter it configures ([`Scope`]), how its value is
//! read into a [`Config`] and how a config spells it back. That one table drives parsing
//! (kingpin style: `--flag=value` or `--flag value`), `--help` ([`usage`]), [`Config::to_args`]
//! for the printed systemd units, and a test that the README lists every flag. Validation
//! turns arguments into a [`Config`] or one [`Error::Usage`] line naming the flag and the
//! cause. It is pure: it never prints, exits, reads the environment or touches a socket;
//! `main` hands it the arguments and decides what to do with the answer.
//!
//! To add a flag: a row in [`FLAGS`] (in `--help` order) and, if it needs one, a field in
//! [`Config`]; checks across flags go in `validate`.

use std::ffi::OsString;
use std::fmt::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::error::Error;
use crate::log::{Format, Level};
use crate::source::log::template::Unit;
use crate::source::log::{LogConfig, Pattern};
use crate::source::sim::SimConfig;

pub mod duration;

pub use duration::{format_duration, parse_duration};

/// The shortest and longest `--widget.average-window`: the window's memory is a fixed ring
/// of time slots, so any width in this range works at any widget rate.
const AVERAGE_WINDOW: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));
/// The shortest widget cycle (`min-duration + interval`): it bounds the event rate.
const MIN_CYCLE: Duration = Duration::from_millis(1);

/// Bounds of `--widget.log.poll-interval`: often enough to matter, rare enough to stay idle.
const MIN_POLL: Duration = Duration::from_millis(10);
const MAX_POLL: Duration = Duration::from_secs(60);

/// Where the exporter listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddress {
    /// `:PORT`: every interface.
    AllInterfaces(u16),
    /// `IPV4:PORT`, `[IPV6]:PORT` or `localhost:PORT` (which means `127.0.0.1`).
    Ip(SocketAddr),
    /// `none`: no HTTP at all (the textfile is the only output).
    Off,
}

impl fmt::Display for ListenAddress {
    /// The form the flag accepts back: `:8000`, `127.0.0.1:8000`, `[::1]:8000`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ListenAddress::AllInterfaces(port) => write!(f, ":{port}"),
            ListenAddress::Ip(addr) => write!(f, "{addr}"),
            ListenAddress::Off => f.write_str("none"),
        }
    }
}

/// Where widgets come from (`--widget.source`); see `source`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// The built-in simulation, the default.
    Simulation,
    /// A log file the application writes (`logtail`).
    Log,
}

impl SourceKind {
    /// Every source, in the order `--help` names them.
    pub const ALL: [SourceKind; 2] = [SourceKind::Simulation, SourceKind::Log];

    /// The value `--widget.source` takes for it.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Simulation => "simulation",
            SourceKind::Log => "log",
        }
    }
}

/// Which systemd a printed service unit targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitFlavor {
    /// A current systemd (the default).
    Modern,
    /// An older systemd, as on long-term-support hosts.
    Legacy,
}

/// What a `--print-…` flag asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Print {
    /// `--print-systemd-unit[=modern|legacy]`: a service unit running these flags.
    SystemdUnit(UnitFlavor),
    /// `--print-systemd-socket`: a socket unit for the listen address.
    SystemdSocket,
    /// `--print-alert-rules`: Prometheus alerting rules for the exporter's metrics.
    AlertRules,
}

/// Everything the exporter needs to run, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `--web.listen-address`.
    pub listen_address: ListenAddress,
    /// `--web.telemetry-path`: starts with `/`, never `/` or `/-/healthy`.
    pub telemetry_path: String,
    /// `--web.systemd-socket`: adopt the socket systemd passes instead of binding.
    pub systemd_socket: bool,
    /// `--widget.source`.
    pub source: SourceKind,
    /// `--widget.average-window`, for any source.
    pub average_window: Duration,
    /// The simulation's flags.
    pub sim: SimConfig,
    /// `--textfile.path`: the file kept up to date for node_exporter, if any.
    pub textfile_path: Option<String>,
    /// `--textfile.interval`: more than 0.
    pub textfile_interval: Duration,
    /// The log source's flags.
    pub log: LogConfig,
    /// `--log.level`.
    pub log_level: Level,
    /// `--log.format`.
    pub log_format: Format,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen_address: ListenAddress::AllInterfaces(8000),
            telemetry_path: "/metrics".to_owned(),
            systemd_socket: false,
            source: SourceKind::Simulation,
            average_window: Duration::from_secs(60),
            sim: SimConfig::default(),
            textfile_path: None,
            textfile_interval: Duration::from_secs(15),
            log: LogConfig::default(),
            log_level: Level::Info,
            log_format: Format::Logfmt,
        }
    }
}

impl Config {
    /// Whether the exporter serves HTTP.
    #[must_use]
    pub fn serves_http(&self) -> bool {
        self.listen_address != ListenAddress::Off
    }

    /// Every setting that applies to this config, as (flag name without `--`, value), in
    /// [`FLAGS`] order, defaults included: what the start-up log line shows.
    #[must_use]
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        FLAGS
            .iter()
            .filter(|f| f.takes != Takes::Nothing && f.scope != Scope::Print)
            .filter(|f| f.scope.refuses(self).is_none())
            .map(|f| {
                let value = (f.show)(self).unwrap_or_else(|| match f.default {
                    "" => "unset".to_owned(),
                    d => d.to_owned(),
                });
                (f.name.trim_start_matches('-'), value)
            })
            .collect()
    }

    /// The settings that differ from the defaults, as `--flag=value` in [`FLAGS`] order, such
    /// that parsing them gives this config back. Values are raw: a caller writing them into a
    /// systemd unit must escape `%`, `$`, `\` and quotes itself.
    #[must_use]
    pub fn to_args(&self) -> Vec<String> {
        FLAGS
            .iter()
            .filter_map(|f| Some(format!("{}={}", f.name, (f.show)(self)?)))
            .collect()
    }
}

/// What `main` should do.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the exporter.
    Run(Config),
    /// Print a generated file for this config and exit.
    Print(Print, Config),
    /// Print [`usage`] and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// Which part of the exporter a flag configures. A flag of a source that is not the chosen
/// one is refused rather than silently ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The exporter as a whole.
    General,
    /// The HTTP output.
    Web,
    /// The textfile output.
    Textfile,
    /// The simulation source.
    Simulation,
    /// The log source.
    Log,
    /// Printing a file and exiting.
    Print,
}

impl Scope {
    /// Why a flag of this scope cannot be used with `config`, if it cannot.
    fn refuses(self, config: &Config) -> Option<String> {
        let source = |kind: SourceKind| {
            (config.source != kind).then(|| {
                format!(
                    "is for --widget.source={}, not {}",
                    kind.as_str(),
                    config.source.as_str()
                )
            })
        };
        match self {
            Scope::General | Scope::Print => None,
            Scope::Web => (!config.serves_http()).then(|| {
                "is for the HTTP output, which --web.listen-address=none turns off".into()
            }),
            Scope::Textfile => config
                .textfile_path
                .is_none()
                .then(|| "is for the textfile output; give --textfile.path too".into()),
            Scope::Simulation => source(SourceKind::Simulation),
            Scope::Log => source(SourceKind::Log),
        }
    }
}

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

/// The state parsing builds up; what a flag's `apply` changes.
#[derive(Debug, Default)]
struct Parsed {
    config: Config,
    print: Option<Print>,
    /// `--help` or `--version`: answered as soon as seen.
    early: Option<Command>,
}

/// One flag: everything about it, in one place.
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
    /// Reads the value (if any) into the parse state; an error is the reason, quoted after
    /// `invalid value "V" for FLAG: `.
    apply: fn(&mut Parsed, Option<&str>) -> Result<(), String>,
    /// The value that gives back `config`'s setting, when it differs from the default.
    show: fn(&Config) -> Option<String>,
}

impl fmt::Debug for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// The value a flag was given; `Takes::Value` flags always get one.
fn given(v: Option<&str>) -> &str {
    v.unwrap_or_default()
}

fn never(_: &Config) -> Option<String> {
    None
}

/// `Some(text)` when `value` differs from `default`.
fn unless<T: PartialEq>(value: &T, default: &T, text: impl FnOnce() -> String) -> Option<String> {
    (value != default).then(text)
}

/// Records a `--print-…` request; the parse loop refuses a second one.
#[allow(clippy::unnecessary_wraps)] // the shape of every `apply`
fn print(p: &mut Parsed, what: Print) -> Result<(), String> {
    p.print = Some(what);
    Ok(())
}

/// Reads a template flag into its slot.
fn template(
    slot: &mut Option<Pattern>,
    v: Option<&str>,
    need_duration: bool,
) -> Result<(), String> {
    *slot = Some(Pattern::parse(given(v), need_duration)?);
    Ok(())
}

fn defaults() -> Config {
    Config::default()
}

/// Every flag, in `--help` order.
pub const FLAGS: &[Flag] = &[
    Flag {
        name: "--widget.source",
        short: None,
        takes: Takes::Value,
        syntax: "SOURCE",
        default: "simulation",
        help: "widget source: simulation or log",
        scope: Scope::General,
        apply: |p, v| {
            p.config.source = SourceKind::ALL
                .into_iter()
                .find(|k| k.as_str() == given(v))
                .ok_or("expected simulation or log")?;
            Ok(())
        },
        show: |c| {
            unless(&c.source, &defaults().source, || {
                c.source.as_str().to_owned()
            })
        },
    },
    Flag {
        name: "--web.listen-address",
        short: None,
        takes: Takes::Value,
        syntax: "[HOST]:PORT",
        default: ":8000",
        help: "where to listen (HOST: IP, localhost) or none",
        // General, not Web: it is the switch that turns the HTTP output off.
        scope: Scope::General,
        apply: |p, v| {
            p.config.listen_address = parse_listen_address(given(v))?;
            Ok(())
        },
        show: |c| {
            unless(&c.listen_address, &defaults().listen_address, || {
                c.listen_address.to_string()
            })
        },
    },
    Flag {
        name: "--web.telemetry-path",
        short: None,
        takes: Takes::Value,
        syntax: "PATH",
        default: "/metrics",
        help: "path that serves the metrics",
        scope: Scope::Web,
        apply: |p, v| {
            check_telemetry_path(given(v))?;
            given(v).clone_into(&mut p.config.telemetry_path);
            Ok(())
        },
        show: |c| {
            unless(&c.telemetry_path, &defaults().telemetry_path, || {
                c.telemetry_path.clone()
            })
        },
    },
    Flag {
        name: "--web.systemd-socket",
        short: None,
        takes: Takes::Optional,
        syntax: "[=BOOL]",
        default: "false",
        help: "use the socket systemd passes instead",
        scope: Scope::Web,
        apply: |p, v| {
            p.config.systemd_socket = match v {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => return Err("expected true or false".into()),
            };
            Ok(())
        },
        show: |c| c.systemd_socket.then(|| "true".to_owned()),
    },
    Flag {
        name: "--textfile.path",
        short: None,
        takes: Takes::Value,
        syntax: "FILE",
        default: "",
        help: "write the metrics to FILE (*.prom) for node_exporter",
        scope: Scope::Textfile,
        apply: |p, v| {
            // The directory is checked at start (`textfile::Textfile::open`): parsing stays pure.
            let name = &given(v)[given(v).rfind('/').map_or(0, |i| i + 1)..];
            if matches!(name, "" | "." | "..") {
                return Err("expected a path ending in a file name".into());
            }
            p.config.textfile_path = Some(given(v).to_owned());
            Ok(())
        },
        show: |c| c.textfile_path.clone(),
    },
    Flag {
        name: "--textfile.interval",
        short: None,
        takes: Takes::Value,
        syntax: "DURATION",
        default: "15s",
        help: "how often to rewrite --textfile.path",
        scope: Scope::Textfile,
        apply: |p, v| {
            p.config.textfile_interval = parse_duration(given(v))?;
            if p.config.textfile_interval.is_zero() {
                return Err("must be longer than 0s".into());
            }
            Ok(())
        },
        show: |c| {
            unless(&c.textfile_interval, &defaults().textfile_interval, || {
                format_duration(c.textfile_interval)
            })
        },
    },
    Flag {
        name: "--widget.min-duration",
        short: None,
        takes: Takes::Value,
        syntax: "DURATION",
        default: "100ms",
        help: "shortest time a simulated widget takes",
        scope: Scope::Simulation,
        apply: |p, v| {
            p.config.sim.min_duration = parse_duration(given(v))?;
            if p.config.sim.min_duration.is_zero() {
                return Err("must be longer than 0s".into());
            }
            Ok(())
        },
        show: |c| {
            unless(&c.sim.min_duration, &defaults().sim.min_duration, || {
                format_duration(c.sim.min_duration)
            })
        },
    },
    Flag {
        name: "--widget.max-duration",
        short: None,
        takes: Takes::Value,
        syntax: "DURATION",
        default: "500ms",
        help: "longest time a simulated widget takes",
        scope: Scope::Simulation,
        apply: |p, v| {
            p.config.sim.max_duration = parse_duration(given(v))?;
            Ok(())
        },
        show: |c| {
            unless(&c.sim.max_duration, &defaults().sim.max_duration, || {
                format_duration(c.sim.max_duration)
            })
        },
    },
    Flag {
        name: "--widget.interval",
        short: None,
        takes: Takes::Value,
        syntax: "DURATION",
        default: "1s",
        help: "idle time between simulated widgets",
        scope: Scope::Simulation,
        apply: |p, v| {
            p.config.sim.interval = parse_duration(given(v))?;
            Ok(())
        },
        show: |c| {
            unless(&c.sim.interval, &defaults().sim.interval, || {
                format_duration(c.sim.interval)
            })
        },
    },
    Flag {
        name: "--widget.failure-ratio",
        short: None,
        takes: Takes::Value,
        syntax: "RATIO",
        default: "0",
        help: "chance from 0 to 1 that a simulated widget fails",
        scope: Scope::Simulation,
        apply: |p, v| {
            p.config.sim.failure_ratio = match given(v).parse::<f64>() {
                // `+ 0.0` turns -0 into 0, so the config never spells a negative zero.
                Ok(r) if (0.0..=1.0).contains(&r) => r + 0.0,
                _ => return Err("expected a number from 0 to 1".into()),
            };
            Ok(())
        },
        // Bits, not `==`: -0.0 is not the default spelling, and NaN must not vanish.
        show: |c| {
            unless(
                &c.sim.failure_ratio.to_bits(),
                &defaults().sim.failure_ratio.to_bits(),
                || c.sim.failure_ratio.to_string(),
            )
        },
    },
    Flag {
        name: "--widget.seed",
        short: None,
        takes: Takes::Value,
        syntax: "N",
        default: "",
        help: "seed for a reproducible simulation (default random)",
        scope: Scope::Simulation,
        apply: |p, v| {
            let seed = given(v)
                .parse::<u64>()
                .map_err(|_| "expected a whole number from 0 to 18446744073709551615".to_owned())?;
            p.config.sim.seed = Some(seed);
            Ok(())
        },
        show: |c| c.sim.seed.map(|s| s.to_string()),
    },
    Flag {
        name: "--widget.log.path",
        short: None,
        takes: Takes::Value,
        syntax: "FILE",
        default: "",
        help: "the log to follow (- or a FIFO: read as a stream)",
        scope: Scope::Log,
        apply: |p, v| {
            if given(v).is_empty() {
                return Err("must not be empty".into());
            }
            p.config.log.path = Some(given(v).into());
            Ok(())
        },
        show: |c| c.log.path.as_ref().map(|p| p.display().to_string()),
    },
    Flag {
        name: "--widget.log.finished",
        short: None,
        takes: Takes::Value,
        syntax: "TEMPLATE",
        default: "",
        help: "a line matching it is one finished widget",
        scope: Scope::Log,
        apply: |p, v| template(&mut p.config.log.finished, v, true),
        show: |c| c.log.finished.as_ref().map(|p| p.text.clone()),
    },
    Flag {
        name: "--widget.log.failed",
        short: None,
        takes: Takes::Value,
        syntax: "TEMPLATE",
        default: "",
        help: "a line matching it is one failed widget",
        scope: Scope::Log,
        apply: |p, v| template(&mut p.config.log.failed, v, false),
        show: |c| c.log.failed.as_ref().map(|p| p.text.clone()),
    },
    Flag {
        name: "--widget.log.started",
        short: None,
        takes: Takes::Value,
        syntax: "TEMPLATE",
        default: "",
        help: "a line matching it is one widget started",
        scope: Scope::Log,
        apply: |p, v| template(&mut p.config.log.started, v, false),
        show: |c| c.log.started.as_ref().map(|p| p.text.clone()),
    },
    Flag {
        name: "--widget.log.duration-unit",
        short: None,
        takes: Takes::Value,
        syntax: "UNIT",
        default: "s",
        help: "unit of a bare {duration} number: s, ms, us, ns",
        scope: Scope::Log,
        apply: |p, v| {
            p.config.log.unit = Unit::parse(given(v)).ok_or("expected s, ms, us or ns")?;
            Ok(())
        },
        show: |c| {
            unless(&c.log.unit, &defaults().log.unit, || {
                c.log.unit.as_str().to_owned()
            })
        },
    },
    Flag {
        name: "--widget.log.poll-interval",
        short: None,
        takes: Takes::Value,
        syntax: "DURATION",
        default: "1s",
        help: "how often the log is checked between scrapes",
        scope: Scope::Log,
        apply: |p, v| {
            let poll = parse_duration(given(v))?;
            if poll < MIN_POLL || poll > MAX_POLL {
                return Err("must be from 10ms to 1m".into());
            }
            p.config.log.poll_interval = poll;
            Ok(())
        },
        show: |c| {
            unless(&c.log.poll_interval, &defaults().log.poll_interval, || {
                format_duration(c.log.poll_interval)
            })
        },
    },
    Flag {
        name: "--widget.average-window",
        short: None,
        takes: Takes::Value,
        syntax: "DURATION",
        default: "60s",
        help: "window of the average time, 1s to 24h",
        scope: Scope::General,
        apply: |p, v| {
            let window = parse_duration(given(v))?;
            if !(AVERAGE_WINDOW.0..=AVERAGE_WINDOW.1).contains(&window) {
                return Err("must be from 1s to 24h".into());
            }
            p.config.average_window = window;
            Ok(())
        },
        show: |c| {
            unless(&c.average_window, &defaults().average_window, || {
                format_duration(c.average_window)
            })
        },
    },
    Flag {
        name: "--log.level",
        short: None,
        takes: Takes::Value,
        syntax: "LEVEL",
        default: "info",
        help: "debug, info, warn or error",
        scope: Scope::General,
        apply: |p, v| {
            p.config.log_level = given(v)
                .parse()
                .map_err(|()| "expected one of debug, info, warn, error")?;
            Ok(())
        },
        show: |c| {
            unless(&c.log_level, &defaults().log_level, || {
                c.log_level.as_str().to_owned()
            })
        },
    },
    Flag {
        name: "--log.format",
        short: None,
        takes: Takes::Value,
        syntax: "FORMAT",
        default: "logfmt",
        help: "logfmt or json",
        scope: Scope::General,
        apply: |p, v| {
            p.config.log_format = given(v).parse().map_err(|()| "expected logfmt or json")?;
            Ok(())
        },
        show: |c| {
            unless(&c.log_format, &defaults().log_format, || {
                c.log_format.as_str().to_owned()
            })
        },
    },
    Flag {
        name: "--print-systemd-unit",
        short: None,
        takes: Takes::Optional,
        syntax: "[=FLAVOR]",
        default: "",
        help: "print a systemd service unit; FLAVOR modern (default), legacy",
        scope: Scope::Print,
        apply: |p, v| {
            let flavor = match v {
                None | Some("modern") => UnitFlavor::Modern,
                Some("legacy") => UnitFlavor::Legacy,
                Some(_) => return Err("expected modern or legacy".into()),
            };
            print(p, Print::SystemdUnit(flavor))
        },
        show: never,
    },
    Flag {
        name: "--print-systemd-socket",
        short: None,
        takes: Takes::Nothing,
        syntax: "",
        default: "",
        help: "print a systemd socket unit for the listen address and exit",
        scope: Scope::Print,
        apply: |p, _| print(p, Print::SystemdSocket),
        show: never,
    },
    Flag {
        name: "--print-alert-rules",
        short: None,
        takes: Takes::Nothing,
        syntax: "",
        default: "",
        help: "print Prometheus alerting rules and exit",
        scope: Scope::Print,
        apply: |p, _| print(p, Print::AlertRules),
        show: never,
    },
    Flag {
        name: "--help",
        short: Some("-h"),
        takes: Takes::Nothing,
        syntax: "",
        default: "",
        help: "print this help and exit",
        scope: Scope::General,
        apply: |p, _| {
            p.early = Some(Command::Help);
            Ok(())
        },
        show: never,
    },
    Flag {
        name: "--version",
        short: None,
        takes: Takes::Nothing,
        syntax: "",
        default: "",
        help: "print the version and exit",
        scope: Scope::General,
        apply: |p, _| {
            p.early = Some(Command::Version);
            Ok(())
        },
        show: never,
    },
];

/// The flag called `name` (or its short alias).
#[must_use]
pub fn flag(name: &str) -> Option<&'static Flag> {
    FLAGS
        .iter()
        .find(|f| f.name == name || f.short == Some(name))
}

/// The `--help` text, from [`FLAGS`].
#[must_use]
pub fn usage() -> String {
    let mut out = String::from(
        "usage: widget-exporter [FLAGS]\n\n\
         Exports the metrics of a widget-processing service for Prometheus: widgets from a\n\
         simulation (the default) or counted from a log file.\n\n",
    );
    let left = |f: &Flag| {
        let names = f.short.map_or_else(String::new, |s| format!("{s}, "));
        match f.takes {
            Takes::Value => format!("{names}{}={}", f.name, f.syntax),
            Takes::Optional | Takes::Nothing => format!("{names}{}{}", f.name, f.syntax),
        }
    };
    let width = FLAGS
        .iter()
        .map(|f| left(f).chars().count())
        .max()
        .unwrap_or(0);
    for f in FLAGS {
        let l = left(f);
        let pad = width - l.chars().count();
        let _ = write!(out, "  {l}{:pad$}  {}", "", f.help);
        if !f.default.is_empty() && f.takes == Takes::Value {
            let _ = write!(out, " (default {})", f.default);
        }
        out.push('\n');
    }
    out.push_str(
        "\nDURATION is like 250ms, 1.5s or 1m30s (units ns, us, ms, s, m, h).\n\
         See README.md for the metrics, a scrape config and deployment on older systems.\n",
    );
    out
}

/// Parses the arguments (without the program name) left to right. `--help`, `-h` and
/// `--version` answer as soon as they are seen; any earlier error still wins. The
/// cross-flag checks run after the last argument and report the first problem.
pub fn parse<I, S>(args: I) -> Result<Command, Error>
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let mut args = args.into_iter().map(Into::into);
    let mut state = Parsed::default();
    let mut seen: Vec<&'static Flag> = Vec::new();
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
        let Some(f) = flag(name) else {
            return Err(Error::Usage(format!(
                "unknown flag {}",
                name.escape_debug()
            )));
        };
        if seen.iter().any(|s| std::ptr::eq(*s, f)) {
            return Err(Error::Usage(format!("flag {name} given twice")));
        }
        seen.push(f);
        let value = match f.takes {
            Takes::Value => Some(value(name, inline, &mut args)?),
            Takes::Optional => inline.map(str::to_owned),
            Takes::Nothing => {
                no_value(name, inline)?;
                None
            }
        };
        let printing = state.print;
        (f.apply)(&mut state, value.as_deref())
            .map_err(|why| invalid(value.as_deref().unwrap_or_default(), name, &why))?;
        if let Some(early) = state.early.take() {
            return Ok(early);
        }
        if state.print != printing {
            if let Some(old) = print_flag {
                return Err(Error::Usage(format!(
                    "flags {old} and {} cannot be used together",
                    f.name
                )));
            }
            print_flag = Some(f.name);
        }
    }
    let Parsed { config, print, .. } = state;
    for f in &seen {
        if let Some(why) = f.scope.refuses(&config) {
            return Err(Error::Usage(format!("flag {} {why}", f.name)));
        }
    }
    validate(&config)?;
    if let Some(print) = print {
        check_print(print, &config)?;
    }
    Ok(match print {
        Some(print) => Command::Print(print, config),
        None => Command::Run(config),
    })
}

/// The checks that need more than one flag, in flag order. Each flag's own limits were
/// checked as it was read, so that the message can quote what the operator wrote.
fn validate(config: &Config) -> Result<(), Error> {
    if !config.serves_http() && config.textfile_path.is_none() {
        return Err(Error::Usage(
            "--web.listen-address=none needs --textfile.path: with no HTTP and no textfile the \
             metrics would go nowhere"
                .to_owned(),
        ));
    }
    if config.source == SourceKind::Log {
        for (flag, missing) in [
            ("--widget.log.path", config.log.path.is_none()),
            ("--widget.log.finished", config.log.finished.is_none()),
        ] {
            if missing {
                return Err(Error::Usage(format!(
                    "flag {flag} is required with --widget.source=log"
                )));
            }
        }
    }
    let sim = &config.sim;
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
    Ok(())
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

fn parse_listen_address(s: &str) -> Result<ListenAddress, &'static str> {
    const SHAPE: &str = "expected [HOST]:PORT with HOST an IP address or localhost";
    if s == "none" {
        return Ok(ListenAddress::Off);
    }
    let (host, port) = s.rsplit_once(':').ok_or(SHAPE)?;
    // Digits only: `u16::from_str` would also take "+80".
    if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SHAPE);
    }
    let port: u16 = port
        .parse()
        .map_err(|_| "expected a port from 0 to 65535")?;
    if host.is_empty() {
        Ok(ListenAddress::AllInterfaces(port))
    } else if host.eq_ignore_ascii_case("localhost") {
        Ok(ListenAddress::Ip(SocketAddr::from((
            Ipv4Addr::LOCALHOST,
            port,
        ))))
    } else {
        // No DNS in a static binary: anything but an IP literal is refused here.
        s.parse().map(ListenAddress::Ip).map_err(|_| SHAPE)
    }
}

fn check_telemetry_path(p: &str) -> Result<(), &'static str> {
    if !p.starts_with('/') {
        Err("must start with /")
    } else if p == "/" {
        Err("must not be / (the landing page)")
    } else if p == "/-/healthy" {
        Err("must not be /-/healthy (the health check)")
    } else if p
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '?' || c == '#')
    {
        Err("must not contain whitespace, control characters, ? or #")
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv6Addr;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const NS: fn(u64) -> Duration = Duration::from_nanos;
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn run(args: &[&str]) -> Result<Command, Error> {
        parse(args.iter().copied())
    }

    fn message(args: &[&str]) -> String {
        match run(args) {
            Err(Error::Usage(msg)) => msg,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    fn with(edit: fn(&mut Config)) -> Config {
        let mut config = Config::default();
        edit(&mut config);
        config
    }

    #[test]
    fn listen_addresses() {
        let v4 = |ip: [u8; 4], port| Ok(ListenAddress::Ip(SocketAddr::from((ip, port))));
        let v6 = |ip: Ipv6Addr, port| Ok(ListenAddress::Ip(SocketAddr::from((ip, port))));
        let all = |port| Ok(ListenAddress::AllInterfaces(port));
        let shape = "expected [HOST]:PORT with HOST an IP address or localhost";
        let port = "expected a port from 0 to 65535";
        #[rustfmt::skip]
        let cases = [
            (":8000", all(8000), ":8000"),
            (":0", all(0), ":0"),
            (":65535", all(65535), ":65535"),
            (":08000", all(8000), ":8000"),
            ("127.0.0.1:8000", v4([127, 0, 0, 1], 8000), "127.0.0.1:8000"),
            ("0.0.0.0:9", v4([0, 0, 0, 0], 9), "0.0.0.0:9"),
            ("localhost:8000", v4([127, 0, 0, 1], 8000), "127.0.0.1:8000"),
            ("LocalHost:1", v4([127, 0, 0, 1], 1), "127.0.0.1:1"),
            ("[::1]:8000", v6(Ipv6Addr::LOCALHOST, 8000), "[::1]:8000"),
            ("[::]:80", v6(Ipv6Addr::UNSPECIFIED, 80), "[::]:80"),
            (":65536", Err(port), ""),
            ("127.0.0.1:99999", Err(port), ""),
            ("", Err(shape), ""),
            (":", Err(shape), ""),
            ("8000", Err(shape), ""),
            (":+80", Err(shape), ""),
            (":-1", Err(shape), ""),
            (": 80", Err(shape), ""),
            ("x:1", Err(shape), ""),
            ("example.com:80", Err(shape), ""),
            ("localhost.:80", Err(shape), ""),
            ("127.0.0.1", Err(shape), ""),
            ("127.0.0.1:", Err(shape), ""),
            ("1.2.3:80", Err(shape), ""),
            ("::1:8000", Err(shape), ""),
            ("[::1]", Err(shape), ""),
            ("[127.0.0.1]:80", Err(shape), ""),
        ];
        for (input, want, display) in cases {
            let got = parse_listen_address(input);
            assert_eq!(got, want, "{input:?}");
            if let Ok(address) = got {
                assert_eq!(address.to_string(), display, "{input:?}");
            }
        }
    }

    #[test]
    fn each_flag_in_both_forms() {
        type Edit = fn(&mut Config);
        #[rustfmt::skip]
        let cases: &[(&str, &str, Edit)] = &[
            ("--web.listen-address", "127.0.0.1:9", |c| c.listen_address = ListenAddress::Ip(([127, 0, 0, 1], 9).into())),
            ("--web.listen-address", "[::1]:0", |c| c.listen_address = ListenAddress::Ip((Ipv6Addr::LOCALHOST, 0).into())),
            ("--web.listen-address", ":8000", |_| {}),
            ("--web.listen-address", ":9100", |c| c.listen_address = ListenAddress::AllInterfaces(9100)),
            ("--web.telemetry-path", "/x/metrics", |c| c.telemetry_path = "/x/metrics".to_owned()),
            ("--web.telemetry-path", "/métriques", |c| c.telemetry_path = "/métriques".to_owned()),
            ("--widget.min-duration", "1ms", |c| c.sim.min_duration = MS(1)),
            ("--widget.max-duration", "2s", |c| c.sim.max_duration = S(2)),
            ("--widget.max-duration", "100ms", |c| c.sim.max_duration = MS(100)),
            ("--widget.interval", "0", |c| c.sim.interval = Duration::ZERO),
            ("--widget.interval", "1m30s", |c| c.sim.interval = S(90)),
            ("--widget.failure-ratio", "0.25", |c| c.sim.failure_ratio = 0.25),
            ("--widget.failure-ratio", "1", |c| c.sim.failure_ratio = 1.0),
            ("--widget.failure-ratio", "-0", |c| c.sim.failure_ratio = 0.0),
            ("--widget.seed", "42", |c| c.sim.seed = Some(42)),
            ("--widget.seed", "0", |c| c.sim.seed = Some(0)),
            ("--widget.seed", "18446744073709551615", |c| c.sim.seed = Some(u64::MAX)),
            ("--widget.average-window", "1h", |c| c.average_window = S(3600)),
            ("--widget.average-window", "1h2m3s", |c| c.average_window = S(3723)),
            ("--widget.average-window", "1s", |c| c.average_window = S(1)),
            ("--widget.average-window", "24h", |c| c.average_window = S(86_400)),
            ("--widget.source", "simulation", |_| {}),
            ("--log.level", "debug", |c| c.log_level = Level::Debug),
            ("--log.level", "warn", |c| c.log_level = Level::Warn),
            ("--log.level", "error", |c| c.log_level = Level::Error),
            ("--log.format", "json", |c| c.log_format = Format::Json),
            ("--log.format", "logfmt", |_| {}),
        ];
        for (flag, value, edit) in cases {
            let want = Command::Run(with(*edit));
            let joined = format!("{flag}={value}");
            assert_eq!(run(&[&joined]).ok().as_ref(), Some(&want), "{joined}");
            assert_eq!(
                run(&[flag, value]).ok().as_ref(),
                Some(&want),
                "{flag} {value}"
            );
        }
        #[rustfmt::skip]
        let cases: &[(&[&str], Config)] = &[
            (&[], Config::default()),
            (&["--"], Config::default()),
            (&["--web.systemd-socket"], with(|c| c.systemd_socket = true)),
            (&["--web.systemd-socket=true"], with(|c| c.systemd_socket = true)),
            (&["--web.systemd-socket=false"], Config::default()),
            (&["--web.telemetry-path=/a=b"], with(|c| c.telemetry_path = "/a=b".to_owned())),
            (&["--widget.interval", "0", "--log.level", "warn"], with(|c| { c.sim.interval = Duration::ZERO; c.log_level = Level::Warn; })),
        ];
        for (args, want) in cases {
            assert_eq!(run(args).ok(), Some(Command::Run(want.clone())), "{args:?}");
        }
    }

    #[test]
    fn errors() {
        // (arguments, the flag or argument the message must name, a part of the message)
        #[rustfmt::skip]
        let cases: &[(&[&str], &str, &str)] = &[
            (&["--widget.interval=abc"], "--widget.interval", "invalid value \"abc\" for --widget.interval: expected a duration like 250ms or 1s"),
            (&["--widget.interval", "-1s"], "--widget.interval", "invalid value \"-1s\" for --widget.interval: negative durations are not allowed"),
            (&["--widget.max-duration=1"], "--widget.max-duration", "expected a duration like 250ms or 1s (missing unit)"),
            (&["--widget.average-window=99999999999h"], "--widget.average-window", "too long"),
            (&["--foo"], "--foo", "unknown flag --foo"),
            (&["--foo=bar"], "--foo", "unknown flag --foo"),
            (&["-v"], "-v", "unknown flag -v"),
            (&["-h=1"], "-h=1", "unknown flag -h=1"),
            (&["--=x"], "--", "unknown flag --"),
            (&["--fo\no"], "--fo\\no", "unknown flag --fo\\no"),
            (&["--log.level"], "--log.level", "flag --log.level needs a value"),
            (&["--log.level", "--help"], "--log.level", "flag --log.level needs a value"),
            (&["--web.listen-address", "-h"], "--web.listen-address", "flag --web.listen-address needs a value"),
            (&["--widget.seed"], "--widget.seed", "flag --widget.seed needs a value"),
            (&["--log.level="], "--log.level", "invalid value \"\" for --log.level: expected one of debug, info, warn, error"),
            (&["--log.level=INFO"], "--log.level", "invalid value \"INFO\" for --log.level"),
            (&["--log.format=text"], "--log.format", "invalid value \"text\" for --log.format: expected logfmt or json"),
            (&["--widget.failure-ratio=2"], "--widget.failure-ratio", "invalid value \"2\" for --widget.failure-ratio: expected a number from 0 to 1"),
            (&["--widget.failure-ratio=-0.1"], "--widget.failure-ratio", "expected a number from 0 to 1"),
            (&["--widget.failure-ratio=NaN"], "--widget.failure-ratio", "expected a number from 0 to 1"),
            (&["--widget.failure-ratio=inf"], "--widget.failure-ratio", "expected a number from 0 to 1"),
            (&["--widget.failure-ratio=half"], "--widget.failure-ratio", "expected a number from 0 to 1"),
            (&["--widget.seed=-1"], "--widget.seed", "invalid value \"-1\" for --widget.seed: expected a whole number"),
            (&["--widget.seed=18446744073709551616"], "--widget.seed", "expected a whole number"),
            (&["--web.listen-address=x:1"], "--web.listen-address", "invalid value \"x:1\" for --web.listen-address: expected [HOST]:PORT with HOST an IP address or localhost"),
            (&["--web.listen-address=:70000"], "--web.listen-address", "expected a port from 0 to 65535"),
            (&["--web.systemd-socket=yes"], "--web.systemd-socket", "invalid value \"yes\" for --web.systemd-socket: expected true or false"),
            (&["--web.systemd-socket", "true"], "true", "unexpected argument \"true\""),
            (&["--web.listen-address=none"], "--textfile.path", "--web.listen-address=none needs --textfile.path"),
            (&["--textfile.path=w.prom", "--textfile.interval=0"], "--textfile.interval", "invalid value \"0\" for --textfile.interval: must be longer than 0s"),
            (&["--textfile.interval=1s"], "--textfile.interval", "flag --textfile.interval is for the textfile output; give --textfile.path too"),
            (&["--textfile.path=dir/"], "--textfile.path", "invalid value \"dir/\" for --textfile.path: expected a path ending in a file name"),
            (&["--textfile.path=.."], "--textfile.path", "expected a path ending in a file name"),
            (&["--web.listen-address=none", "--textfile.path=w.prom", "--web.telemetry-path=/x"], "--web.telemetry-path", "flag --web.telemetry-path is for the HTTP output, which --web.listen-address=none turns off"),
            (&["--web.listen-address=none", "--textfile.path=/w.prom", "--print-systemd-socket"], "--print-systemd-socket", "there is no socket with --web.listen-address=none"),
            (&["--textfile.path=w.prom", "--print-systemd-unit"], "--textfile.path", "a systemd unit needs an absolute path"),
            (&["--textfile.path=/a b/w.prom", "--print-systemd-unit=legacy"], "--textfile.path", "cannot name a path with whitespace"),
            (&["--widget.min-duration=600ms"], "--widget.max-duration", "--widget.min-duration (600ms) is longer than --widget.max-duration (500ms)"),
            (&["--widget.max-duration=50ms"], "--widget.min-duration", "--widget.min-duration (100ms) is longer than --widget.max-duration (50ms)"),
            (&["--widget.min-duration=0s"], "--widget.min-duration", "invalid value \"0s\" for --widget.min-duration: must be longer than 0s"),
            (&["--widget.min-duration=500us", "--widget.interval=0"], "--widget.interval", "--widget.min-duration (500µs) plus --widget.interval (0s) is shorter than 1ms"),
            (&["--widget.average-window=0"], "--widget.average-window", "invalid value \"0\" for --widget.average-window: must be from 1s to 24h"),
            (&["--widget.average-window=999ms"], "--widget.average-window", "must be from 1s to 24h"),
            (&["--widget.average-window=24h0m1s"], "--widget.average-window", "must be from 1s to 24h"),
            (&["--widget.source=mtail"], "--widget.source", "invalid value \"mtail\" for --widget.source: expected simulation"),
            (&["--web.telemetry-path=metrics"], "--web.telemetry-path", "invalid value \"metrics\" for --web.telemetry-path: must start with /"),
            (&["--web.telemetry-path="], "--web.telemetry-path", "must start with /"),
            (&["--web.telemetry-path=/"], "--web.telemetry-path", "must not be / (the landing page)"),
            (&["--web.telemetry-path=/-/healthy"], "--web.telemetry-path", "must not be /-/healthy (the health check)"),
            (&["--web.telemetry-path=/a b"], "--web.telemetry-path", "must not contain whitespace, control characters, ? or #"),
            (&["--web.telemetry-path=/a\tb"], "--web.telemetry-path", "invalid value \"/a\\tb\""),
            (&["--web.telemetry-path=/a\u{a0}b"], "--web.telemetry-path", "must not contain"),
            (&["--web.telemetry-path=/a\u{7f}"], "--web.telemetry-path", "must not contain"),
            (&["--web.telemetry-path=/a?b"], "--web.telemetry-path", "must not contain"),
            (&["--web.telemetry-path=/a#b"], "--web.telemetry-path", "must not contain"),
            (&["foo"], "foo", "unexpected argument \"foo\""),
            (&["-"], "-", "unexpected argument \"-\""),
            (&["--", "--help"], "--help", "unexpected argument \"--help\""),
            (&["--log.level=info", "--log.level=debug"], "--log.level", "flag --log.level given twice"),
            (&["--log.level", "info", "--log.level", "info"], "--log.level", "flag --log.level given twice"),
            (&["--web.systemd-socket", "--web.systemd-socket=false"], "--web.systemd-socket", "flag --web.systemd-socket given twice"),
            (&["--version=1"], "--version", "flag --version does not take a value"),
            (&["--help=yes"], "--help", "flag --help does not take a value"),
            (&["--print-alert-rules=1"], "--print-alert-rules", "flag --print-alert-rules does not take a value"),
            (&["--print-systemd-socket=x"], "--print-systemd-socket", "does not take a value"),
            (&["--print-systemd-unit=old"], "--print-systemd-unit", "invalid value \"old\" for --print-systemd-unit: expected modern or legacy"),
            (&["--print-systemd-unit", "legacy"], "legacy", "unexpected argument \"legacy\""),
            (&["--print-systemd-unit", "--print-systemd-unit=legacy"], "--print-systemd-unit", "given twice"),
            (&["--print-systemd-unit", "--print-alert-rules"], "--print-alert-rules", "flags --print-systemd-unit and --print-alert-rules cannot be used together"),
            (&["--print-alert-rules", "--print-systemd-socket"], "--print-systemd-socket", "cannot be used together"),
            (&["--print-alert-rules", "--log.level=x"], "--log.level", "invalid value \"x\""),
            (&["--print-systemd-socket", "--widget.min-duration=1s"], "--widget.min-duration", "is longer than --widget.max-duration"),
            (&["--foo", "--help"], "--foo", "unknown flag --foo"),
            (&["--log.level=x", "--version"], "--log.level", "invalid value \"x\""),
            (&["--widget.source=file"], "--widget.source", "expected simulation or log"),
            (&["--widget.log.path=a.log"], "--widget.log.path", "flag --widget.log.path is for --widget.source=log, not simulation"),
            (&["--widget.source=log", "--widget.log.path=a", "--widget.log.finished={duration}", "--widget.interval=1s"], "--widget.interval", "is for --widget.source=simulation, not log"),
            (&["--widget.source=log", "--widget.log.finished={duration}"], "--widget.log.path", "flag --widget.log.path is required with --widget.source=log"),
            (&["--widget.source=log", "--widget.log.path=a"], "--widget.log.finished", "is required"),
            (&["--widget.source=log", "--widget.log.path="], "--widget.log.path", "must not be empty"),
            (&["--widget.source=log", "--widget.log.finished=* done"], "--widget.log.finished", "invalid value \"* done\" for --widget.log.finished: must contain {duration}"),
            (&["--widget.source=log", "--widget.log.finished={duration} {duration}"], "--widget.log.finished", "only once"),
            (&["--widget.source=log", "--widget.log.failed={id}"], "--widget.log.failed", "unknown {...}"),
            (&["--widget.source=log", "--widget.log.started=a\\"], "--widget.log.started", "dangling"),
            (&["--widget.source=log", "--widget.log.duration-unit=m"], "--widget.log.duration-unit", "expected s, ms, us or ns"),
            (&["--widget.source=log", "--widget.log.poll-interval=1ms"], "--widget.log.poll-interval", "must be from 10ms to 1m"),
        ];
        for (args, names, want) in cases {
            let msg = message(args);
            assert!(msg.contains(want), "{args:?}: {msg}");
            assert!(msg.contains(names), "{args:?}: {msg} does not name {names}");
            assert!(!msg.contains('\n'), "{args:?}: {msg} is not one line");
            assert!(!msg.starts_with(char::is_uppercase), "{args:?}: {msg}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn non_utf8_arguments() {
        use std::os::unix::ffi::OsStringExt;
        let bad = || OsString::from_vec(vec![b'-', b'-', 0xff]);
        #[rustfmt::skip]
        let cases = [
            (vec![bad()], "invalid argument \"--\u{fffd}\": not valid UTF-8"),
            (vec!["--log.level".into(), bad()], "invalid value \"--\u{fffd}\" for --log.level: not valid UTF-8"),
            (vec!["--".into(), bad()], "unexpected argument \"--\u{fffd}\""),
        ];
        for (args, want) in cases {
            assert!(
                matches!(parse(args), Err(Error::Usage(msg)) if msg == want),
                "{want}"
            );
        }
        assert_eq!(
            parse([OsString::from("--help"), bad()]).ok(),
            Some(Command::Help)
        );
    }

    #[test]
    fn help_version_and_print() {
        let unit = |flavor| Command::Print(Print::SystemdUnit(flavor), Config::default());
        let json = with(|c| c.log_format = Format::Json);
        #[rustfmt::skip]
        let cases = [
            (&["--help"][..], Command::Help),
            (&["-h"], Command::Help),
            (&["--version"], Command::Version),
            (&["--help", "--version"], Command::Help),
            (&["--version", "-h"], Command::Version),
            (&["--help", "--foo", "bar"], Command::Help),
            (&["--log.level=debug", "--version", "--foo"], Command::Version),
            (&["--print-alert-rules", "--help"], Command::Help),
            (&["--widget.min-duration=1s", "--help"], Command::Help),
            (&["--print-systemd-unit"], unit(UnitFlavor::Modern)),
            (&["--print-systemd-unit=modern"], unit(UnitFlavor::Modern)),
            (&["--print-systemd-unit=legacy"], unit(UnitFlavor::Legacy)),
            (&["--print-systemd-unit=legacy", "--log.format", "json"], Command::Print(Print::SystemdUnit(UnitFlavor::Legacy), json)),
            (&["--print-systemd-socket"], Command::Print(Print::SystemdSocket, Config::default())),
            (&["--print-alert-rules"], Command::Print(Print::AlertRules, Config::default())),
        ];
        for (args, want) in cases {
            assert_eq!(run(args).ok(), Some(want), "{args:?}");
        }
    }

    #[test]
    fn to_args_round_trips() {
        let all = Config {
            listen_address: ListenAddress::Ip(SocketAddr::from((Ipv6Addr::LOCALHOST, 9100))),
            telemetry_path: "/widgets/metrics".to_owned(),
            systemd_socket: true,
            source: SourceKind::Simulation,
            average_window: MS(1500),
            sim: SimConfig {
                min_duration: NS(1_500),
                max_duration: S(5400),
                interval: MS(1),
                failure_ratio: 0.1,
                seed: Some(7),
            },
            textfile_path: Some("/var/lib/node/w.prom".into()),
            textfile_interval: S(60),
            log: LogConfig::default(),
            log_level: Level::Warn,
            log_format: Format::Json,
        };
        let want = [
            "--web.listen-address=[::1]:9100",
            "--web.telemetry-path=/widgets/metrics",
            "--web.systemd-socket=true",
            "--textfile.path=/var/lib/node/w.prom",
            "--textfile.interval=1m0s",
            "--widget.min-duration=1.5µs",
            "--widget.max-duration=1h30m0s",
            "--widget.interval=1ms",
            "--widget.failure-ratio=0.1",
            "--widget.seed=7",
            "--widget.average-window=1.5s",
            "--log.level=warn",
            "--log.format=json",
        ];
        assert_eq!(all.to_args(), want);
        assert!(Config::default().to_args().is_empty());
        #[rustfmt::skip]
        let configs = [
            Config::default(),
            all,
            with(|c| c.listen_address = ListenAddress::AllInterfaces(0)),
            with(|c| c.listen_address = ListenAddress::Ip(([127, 0, 0, 1], 8000).into())),
            with(|c| c.telemetry_path = "/a=b%20c".to_owned()),
            with(|c| c.sim.failure_ratio = 1.0 / 3.0),
            with(|c| c.sim.failure_ratio = 1e-300),
            with(|c| c.sim.seed = Some(0)),
            with(|c| c.sim.interval = NS(1_000_000_001)),
            with(|c| c.sim.max_duration = NS(u64::MAX)),
            with(|c| c.average_window = NS(86_399_999_999_999)),
            with(|c| c.log_level = Level::Debug),
            with(|c| {
                c.listen_address = ListenAddress::Off;
                c.textfile_path = Some("w.prom".into());
                c.textfile_interval = NS(1);
            }),
            with(|c| {
                c.source = SourceKind::Log;
                c.log = LogConfig {
                    path: Some("-".into()),
                    finished: Some(Pattern::parse("* took={duration} \\* x", true).expect("parses")),
                    failed: Some(Pattern::parse("*=failed*", false).expect("parses")),
                    started: Some(Pattern::parse("* start *", false).expect("parses")),
                    unit: Unit::Ms,
                    poll_interval: MS(250),
                };
            }),
        ];
        for config in configs {
            let args = config.to_args();
            let got = parse(&args).map_err(|e| e.to_string());
            assert_eq!(got, Ok(Command::Run(config.clone())), "{args:?}");
        }
    }

    #[test]
    fn usage_text() {
        let usage = usage();
        assert!(usage.starts_with("usage: widget-exporter [FLAGS]\n\n"));
        assert!(usage
            .lines()
            .all(|l| l.chars().count() <= 100 && l == l.trim_end()));
        assert!(usage.lines().last().is_some_and(|l| l.contains("README")));
        // Every flag, in table order, with its default.
        let mut lines = usage.lines();
        for f in FLAGS {
            let line = lines
                .find(|l| l.contains(f.name))
                .unwrap_or_else(|| panic!("{} missing from usage or out of order", f.name));
            assert!(line.contains(f.help), "{line}");
            if f.takes == Takes::Value && !f.default.is_empty() {
                assert!(line.contains(&format!("(default {})", f.default)), "{line}");
            }
        }
    }

    /// The table's defaults are what the config starts with, and every flag is listed in the
    /// README's flags table with the same default.
    #[test]
    fn table_defaults_and_readme() {
        let readme = include_str!("../../README.md");
        for f in FLAGS {
            // A flag refused without its companion (--textfile.interval without a path) is
            // checked with the companion given.
            let companion = match f.scope {
                Scope::Textfile if f.name != "--textfile.path" => Some("--textfile.path=w.prom"),
                _ => None,
            };
            if f.takes == Takes::Value && !f.default.is_empty() {
                let arg = format!("{}={}", f.name, f.default);
                // A source's flag is tried with that source (and what it requires), a flag
                // refused without its companion with the companion.
                let mut want = Config::default();
                let mut args = vec![arg.as_str()];
                if let Some(c) = companion {
                    want.textfile_path = Some("w.prom".into());
                    args.push(c);
                }
                if f.scope == Scope::Log {
                    args.extend([
                        "--widget.source=log",
                        "--widget.log.path=a",
                        "--widget.log.finished={duration}",
                    ]);
                    want.source = SourceKind::Log;
                    want.log.path = Some("a".into());
                    want.log.finished = Some(Pattern::parse("{duration}", true).expect("parses"));
                }
                assert_eq!(
                    run(&args).ok(),
                    Some(Command::Run(want)),
                    "{arg} is not the default"
                );
            }
            // A row's first cell names the flag, alone or beside its aliases.
            let row = readme
                .lines()
                .filter(|l| l.starts_with("| `-"))
                .find(|l| {
                    let cell = l.split('|').nth(1).unwrap_or_default();
                    cell.split(['`', '=', '[', ',', '/', ' '])
                        .any(|word| word == f.name)
                })
                .unwrap_or_else(|| panic!("README's flags table has no row for {}", f.name));
            if f.takes == Takes::Value && !f.default.is_empty() {
                assert!(
                    row.contains(&format!("| `{}` |", f.default)),
                    "README row of {} lacks default {}: {row}",
                    f.name,
                    f.default
                );
            }
        }
    }

    #[test]
    fn flags_are_found_by_name_and_alias() {
        for f in FLAGS {
            assert!(f.name.starts_with("--"), "{}", f.name);
            assert_eq!(flag(f.name).map(|g| g.name), Some(f.name));
        }
        assert_eq!(flag("-h").map(|f| f.name), Some("--help"));
        assert!(flag("--nope").is_none());
    }

    /// Every argument list built from awkward tokens gets an answer, never a panic.
    #[test]
    fn no_panics() {
        #[rustfmt::skip]
        let tokens = [
            "", "-", "--", "=", "--=", "-h", "--help=", "--web.listen-address", ":", "[", "]:1",
            "[::1]:", "localhost:", "--web.telemetry-path", "/", "--widget.interval", "1.", ".",
            "µ", "μs", "9999999999999999999999h", "--widget.failure-ratio", "1e309",
            "--widget.seed", "--print-systemd-unit=", "--log.level", "\u{0}", "é=é",
        ];
        for a in tokens {
            for b in tokens {
                for c in tokens {
                    let _ = run(&[a, b, c]);
                }
            }
        }
        let pieces = [
            "0", "1", "9", ".", "µ", "μ", "s", "m", "h", "n", "u", "-", "+", " ",
        ];
        for a in pieces {
            for b in pieces {
                for c in pieces {
                    for d in pieces {
                        let _ = parse_duration(&[a, b, c, d].concat());
                    }
                }
            }
        }
    }
}
