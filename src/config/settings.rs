//! The general flags and what they make: the two general tables ([`BEFORE_SOURCES`],
//! [`AFTER_SOURCES`]) reading into [`Raw`], and the validated [`Config`] with the
//! [`Command`] `main` acts on. A config spells itself back from the same rows
//! ([`Config::to_args`], [`Config::settings`]). The parser that drives the rows is in the
//! module above; nothing here knows a particular source.

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::config::duration::{format_duration, parse_duration};
use crate::config::flags::{
    given, never, unless, Flag, InUse, Row, Scope, SourceConfig, Takes, SWITCH,
};
use crate::host::units::Thresholds;
use crate::log::{Format, Level};

/// The shortest and longest `--widget.average-window`: the window's memory is a fixed ring
/// of time slots, so any width in this range works at any widget rate.
const AVERAGE_WINDOW: (Duration, Duration) = (Duration::from_secs(1), Duration::from_secs(86_400));

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
    /// `--print-alert-rules`: Prometheus alerting rules for the exporter's metrics, with
    /// [`Config::alert_thresholds`].
    AlertRules,
    /// `--print-grafana-dashboard`: a Grafana dashboard of the exporter's metrics.
    GrafanaDashboard,
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
    /// `--widget.source` and that source's own flags, validated by the source.
    pub source: SourceConfig,
    /// `--widget.average-window`, for any source.
    pub average_window: Duration,
    /// `--textfile.path`: the file kept up to date for node_exporter, if any.
    pub textfile_path: Option<String>,
    /// `--textfile.interval`: more than 0.
    pub textfile_interval: Duration,
    /// `--log.level`.
    pub log_level: Level,
    /// `--log.format`.
    pub log_format: Format,
    /// `--alert.*`: the thresholds `--print-alert-rules` prints, each within its bounds.
    pub alert_thresholds: Thresholds,
}

impl Config {
    /// Whether the exporter serves HTTP.
    #[must_use]
    pub fn serves_http(&self) -> bool {
        self.listen_address != ListenAddress::Off
    }

    /// The chosen source's name, as `--widget.source` takes it.
    #[must_use]
    pub fn source_name(&self) -> &'static str {
        self.source.name()
    }

    /// What the exporter exports with the chosen source, for the landing page and a printed
    /// unit: "a simulated widget-processing service".
    #[must_use]
    pub fn source_about(&self) -> &'static str {
        self.source.kind().about()
    }

    /// The outputs this config turns on, as the start-up line names them: `http`,
    /// `textfile` or `http,textfile`.
    #[must_use]
    pub fn outputs(&self) -> &'static str {
        match (self.serves_http(), self.textfile_path.is_some()) {
            (true, true) => "http,textfile",
            (false, true) => "textfile",
            // `config` refuses a config with neither.
            (true | false, false) => "http",
        }
    }

    /// Every setting that applies to this config, as (flag name without `--`, value), in
    /// `--help` order, defaults included: what the start-up log line shows.
    #[must_use]
    pub fn settings(&self) -> Vec<(&'static str, String)> {
        let on = InUse {
            http: self.serves_http(),
            textfile: self.textfile_path.is_some(),
            alert_rules: false,
        };
        self.rows()
            .filter(|(f, _)| f.takes != Takes::Nothing && f.scope != Scope::Print)
            .filter(|(f, _)| f.scope.refuses(on).is_none())
            .map(|(f, shown)| {
                let value = shown.unwrap_or_else(|| match f.default {
                    "" => "unset".to_owned(),
                    d => d.to_owned(),
                });
                (f.name.trim_start_matches('-'), value)
            })
            .collect()
    }

    /// The settings that differ from the defaults, as `--flag=value` in `--help` order, such
    /// that parsing them gives this config back. Values are raw: a caller writing them into a
    /// systemd unit must escape `%`, `$`, `\` and quotes itself.
    #[must_use]
    pub fn to_args(&self) -> Vec<String> {
        self.rows()
            .filter_map(|(f, shown)| Some(format!("{}={}", f.name, shown?)))
            .collect()
    }

    /// The flags that apply to this config (the general ones and the chosen source's), each
    /// with how this config spells it when that is not the default.
    fn rows(&self) -> impl Iterator<Item = (Flag, Option<String>)> + '_ {
        let kind = self.source.kind();
        let (name, default) = (self.source.name(), self.source.is_default());
        // Shown as a setting always, spelled as an argument only when not the default.
        let switch = (
            Flag {
                default: if default { name } else { "" },
                ..SWITCH
            },
            (!default).then(|| name.to_owned()),
        );
        let general = |r: &'static Row<Raw, Config>| (r.flag, (r.show)(self));
        let source = (0..)
            .map_while(move |i| Some((*kind.flag(i)?, kind.show(i, &self.source))))
            .collect::<Vec<_>>();
        std::iter::once(switch)
            .chain(BEFORE_SOURCES.iter().map(general))
            .chain(source)
            .chain(AFTER_SOURCES.iter().map(general))
    }
}

/// What `main` should do.
#[derive(Debug, PartialEq)]
pub enum Command {
    /// Run the exporter.
    Run(Config),
    /// Print a generated file for this config and exit.
    Print(Print, Config),
    /// Print [`crate::config::usage`] and exit.
    Help,
    /// Print the version and exit.
    Version,
}

/// The general flags as read, every one with its default until given: what a general row's
/// `apply` changes. The sources' raw flags are kept beside it, one per kind.
#[derive(Debug)]
pub(crate) struct Raw {
    pub(crate) listen_address: ListenAddress,
    pub(crate) telemetry_path: String,
    pub(crate) systemd_socket: bool,
    pub(crate) textfile_path: Option<String>,
    pub(crate) textfile_interval: Duration,
    pub(crate) average_window: Duration,
    pub(crate) log_level: Level,
    pub(crate) log_format: Format,
    pub(crate) print: Option<Print>,
    pub(crate) alert_thresholds: Thresholds,
    /// `--help` or `--version`: answered as soon as seen.
    pub(crate) early: Option<Command>,
}

impl Default for Raw {
    fn default() -> Self {
        Raw {
            listen_address: ListenAddress::AllInterfaces(8000),
            telemetry_path: "/metrics".to_owned(),
            systemd_socket: false,
            textfile_path: None,
            textfile_interval: Duration::from_secs(15),
            average_window: Duration::from_secs(60),
            log_level: Level::Info,
            log_format: Format::Logfmt,
            print: None,
            alert_thresholds: Thresholds::default(),
            early: None,
        }
    }
}

/// Records a `--print-…` request; the parse loop refuses a second one.
#[allow(clippy::unnecessary_wraps)] // the shape of every `apply`
fn print(p: &mut Raw, what: Print) -> Result<(), String> {
    p.print = Some(what);
    Ok(())
}

/// The general flags listed between `--widget.source` and the sources' flags.
pub(crate) const BEFORE_SOURCES: &[Row<Raw, Config>] = &[
    Row {
        flag: Flag {
            name: "--web.listen-address",
            short: None,
            takes: Takes::Value,
            syntax: "[HOST]:PORT",
            default: ":8000",
            help: "where to listen (HOST: IP, localhost) or none",
            // General, not Web: it is the switch that turns the HTTP output off.
            scope: Scope::General,
        },
        apply: |p, v| {
            p.listen_address = parse_listen_address(given(v))?;
            Ok(())
        },
        show: |c| {
            unless(&c.listen_address, &Raw::default().listen_address, || {
                c.listen_address.to_string()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--web.telemetry-path",
            short: None,
            takes: Takes::Value,
            syntax: "PATH",
            default: "/metrics",
            help: "path that serves the metrics",
            scope: Scope::Web,
        },
        apply: |p, v| {
            check_telemetry_path(given(v))?;
            given(v).clone_into(&mut p.telemetry_path);
            Ok(())
        },
        show: |c| {
            unless(&c.telemetry_path, &Raw::default().telemetry_path, || {
                c.telemetry_path.clone()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--web.systemd-socket",
            short: None,
            takes: Takes::Optional,
            syntax: "[=BOOL]",
            default: "false",
            help: "use the socket systemd passes instead",
            scope: Scope::Web,
        },
        apply: |p, v| {
            p.systemd_socket = match v {
                None | Some("true") => true,
                Some("false") => false,
                Some(_) => return Err("expected true or false".into()),
            };
            Ok(())
        },
        show: |c| c.systemd_socket.then(|| "true".to_owned()),
    },
    Row {
        flag: Flag {
            name: "--textfile.path",
            short: None,
            takes: Takes::Value,
            syntax: "FILE",
            default: "",
            help: "write the metrics to FILE (*.prom) for node_exporter",
            scope: Scope::Textfile,
        },
        apply: |p, v| {
            // The directory is checked at start (`textfile::Textfile::open`): parsing stays pure.
            let name = &given(v)[given(v).rfind('/').map_or(0, |i| i + 1)..];
            if matches!(name, "" | "." | "..") {
                return Err("expected a path ending in a file name".into());
            }
            p.textfile_path = Some(given(v).to_owned());
            Ok(())
        },
        show: |c| c.textfile_path.clone(),
    },
    Row {
        flag: Flag {
            name: "--textfile.interval",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "15s",
            help: "how often to rewrite --textfile.path",
            scope: Scope::Textfile,
        },
        apply: |p, v| {
            p.textfile_interval = parse_duration(given(v))?;
            if p.textfile_interval.is_zero() {
                return Err("must be longer than 0s".into());
            }
            Ok(())
        },
        show: |c| {
            unless(
                &c.textfile_interval,
                &Raw::default().textfile_interval,
                || format_duration(c.textfile_interval),
            )
        },
    },
];

/// The general flags listed after the sources' flags.
pub(crate) const AFTER_SOURCES: &[Row<Raw, Config>] = &[
    Row {
        flag: Flag {
            name: "--widget.average-window",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "60s",
            help: "window of the average time, 1s to 24h",
            scope: Scope::General,
        },
        apply: |p, v| {
            let window = parse_duration(given(v))?;
            if !(AVERAGE_WINDOW.0..=AVERAGE_WINDOW.1).contains(&window) {
                return Err("must be from 1s to 24h".into());
            }
            p.average_window = window;
            Ok(())
        },
        show: |c| {
            unless(&c.average_window, &Raw::default().average_window, || {
                format_duration(c.average_window)
            })
        },
    },
    Row {
        flag: Flag {
            name: "--log.level",
            short: None,
            takes: Takes::Value,
            syntax: "LEVEL",
            default: "info",
            help: "debug, info, warn or error",
            scope: Scope::General,
        },
        apply: |p, v| {
            p.log_level = given(v)
                .parse()
                .map_err(|()| "expected one of debug, info, warn, error")?;
            Ok(())
        },
        show: |c| {
            unless(&c.log_level, &Raw::default().log_level, || {
                c.log_level.as_str().to_owned()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--log.format",
            short: None,
            takes: Takes::Value,
            syntax: "FORMAT",
            default: "logfmt",
            help: "logfmt or json",
            scope: Scope::General,
        },
        apply: |p, v| {
            p.log_format = given(v).parse().map_err(|()| "expected logfmt or json")?;
            Ok(())
        },
        show: |c| {
            unless(&c.log_format, &Raw::default().log_format, || {
                c.log_format.as_str().to_owned()
            })
        },
    },
    Row {
        flag: Flag {
            name: "--print-systemd-unit",
            short: None,
            takes: Takes::Optional,
            syntax: "[=FLAVOR]",
            default: "",
            help: "print a systemd service unit; FLAVOR modern (default), legacy",
            scope: Scope::Print,
        },
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
    Row {
        flag: Flag {
            name: "--print-systemd-socket",
            short: None,
            takes: Takes::Nothing,
            syntax: "",
            default: "",
            help: "print a systemd socket unit for the listen address and exit",
            scope: Scope::Print,
        },
        apply: |p, _| print(p, Print::SystemdSocket),
        show: never,
    },
    Row {
        flag: Flag {
            name: "--print-alert-rules",
            short: None,
            takes: Takes::Nothing,
            syntax: "",
            default: "",
            help: "print Prometheus alerting rules and exit",
            scope: Scope::Print,
        },
        apply: |p, _| print(p, Print::AlertRules),
        show: never,
    },
    Row {
        flag: Flag {
            name: "--print-grafana-dashboard",
            short: None,
            takes: Takes::Nothing,
            syntax: "",
            default: "",
            help: "print a Grafana dashboard (JSON) and exit",
            scope: Scope::Print,
        },
        apply: |p, _| print(p, Print::GrafanaDashboard),
        show: never,
    },
    Row {
        flag: Flag {
            name: "--help",
            short: Some("-h"),
            takes: Takes::Nothing,
            syntax: "",
            default: "",
            help: "print this help and exit",
            scope: Scope::General,
        },
        apply: |p, _| {
            p.early = Some(Command::Help);
            Ok(())
        },
        show: never,
    },
    Row {
        flag: Flag {
            name: "--version",
            short: None,
            takes: Takes::Nothing,
            syntax: "",
            default: "",
            help: "print the version and exit",
            scope: Scope::General,
        },
        apply: |p, _| {
            p.early = Some(Command::Version);
            Ok(())
        },
        show: never,
    },
    Row {
        flag: Flag {
            name: "--alert.slow-p90",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "1s",
            help: "alert when the p90 processing time is above it",
            scope: Scope::AlertRules,
        },
        apply: |p, v| {
            let d = parse_duration(given(v))?;
            if d.is_zero() {
                return Err("must be longer than 0s".into());
            }
            p.alert_thresholds.slow_p90 = d;
            Ok(())
        },
        show: never,
    },
    Row {
        flag: Flag {
            name: "--alert.failure-ratio",
            short: None,
            takes: Takes::Value,
            syntax: "RATIO",
            default: "0.1",
            help: "alert when more than this share of widgets fail",
            scope: Scope::AlertRules,
        },
        apply: |p, v| {
            p.alert_thresholds.failure_ratio = parse_ratio(given(v))?;
            Ok(())
        },
        show: never,
    },
    Row {
        flag: Flag {
            name: "--alert.idle-after",
            short: None,
            takes: Takes::Value,
            syntax: "DURATION",
            default: "5m",
            help: "alert when no widget finished for this long",
            scope: Scope::AlertRules,
        },
        apply: |p, v| {
            let d = parse_duration(given(v))?;
            if d < Duration::from_secs(1) {
                return Err("must be at least 1s".into());
            }
            p.alert_thresholds.idle_after = d;
            Ok(())
        },
        show: never,
    },
];

pub(crate) fn parse_listen_address(s: &str) -> Result<ListenAddress, &'static str> {
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

/// A share strictly between 0 and 1, written as a plain decimal (`0.1`, `.05`).
fn parse_ratio(s: &str) -> Result<f64, &'static str> {
    const SHAPE: &str = "expected a number above 0 and below 1, like 0.1";
    // Digits and one point only: `f64::from_str` would also take "inf", "NaN" and "1e-1".
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Err(SHAPE);
    }
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r < 1.0 => Ok(r),
        _ => Err(SHAPE),
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
}
