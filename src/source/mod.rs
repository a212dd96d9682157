//! The seam between the loop and where widgets come from. A source is stepped to an instant
//! and records what happened by then into [`Metrics`]; it says when it next needs a step, so
//! the loop can sleep until then. Sources never render, serve or block: a source with a lot
//! to do (a log's backlog) does a bounded share per step and asks to be stepped again at once.
//!
//! A source describes itself: its file declares a `Kind` (its flag rows and validation,
//! how it opens, which optional families it has, what a printed unit must let it read), and
//! `KINDS`, the registry, lists every kind. Nothing else names a source: [`crate::config`]
//! gets the kinds' flag tables from [`tables`] as an argument, and `open`, `parts` and
//! [`reads`] find the chosen kind here. To add a source: one new file (or folder) with a
//! type implementing `Source` and its `KIND`, and one line in `KINDS`.

pub(crate) mod kind;
pub mod log;
pub(crate) mod sim;

use std::time::Instant;

use crate::config::{Config, SourceTable};
use crate::metrics::{Metrics, Parts};

pub use kind::{Checked, Reads};
pub(crate) use kind::{Opened, Registered, Source};

/// Every kind of source, the default first: the registry.
pub(crate) static KINDS: &[&dyn Registered] = &[&sim::KIND, &log::KIND];

/// The kinds' flag tables, the default first: what [`crate::config::parse`] and
/// [`crate::config::usage`] take.
#[must_use]
pub fn tables() -> Vec<&'static dyn SourceTable> {
    KINDS.iter().map(|k| k.table()).collect()
}

/// The chosen kind's answer for `config`. Every config comes from [`crate::config::parse`]
/// with [`tables`], so the kind of that name is registered and its config is of its type.
fn chosen<T>(config: &Config, ask: impl Fn(&dyn Registered) -> Option<T>) -> T {
    KINDS
        .iter()
        .filter(|k| k.table().name() == config.source.name())
        .find_map(|k| ask(*k))
        .expect("a config comes from config::parse with the registry's tables")
}

/// The optional metric families this config's source and outputs provide.
#[must_use]
pub(crate) fn parts(config: &Config) -> Parts {
    let families = chosen(config, |k| k.families(&config.source));
    Parts {
        in_progress: families.in_progress,
        http: config.serves_http(),
        textfile: config.textfile_path.is_some(),
        log: families.log,
    }
}

/// What a printed service unit must let this config's source read.
#[must_use]
pub fn reads(config: &Config) -> Reads {
    chosen(config, |k| k.reads(&config.source))
}

/// The source's dry run, when the config asks for one instead of running the exporter: no
/// output is opened, the other flags are accepted and ignored.
#[must_use]
pub fn check(config: &Config) -> Option<Checked> {
    KINDS.iter().find_map(|k| k.check(&config.source))
}

/// Opens the configured source, first stepped at `start` (whose wall-clock time is
/// `start_unix_nanos`), resuming at `position` (`Source::position` of a previous image of
/// the process) where the source can.
pub(crate) fn open(
    config: &Config,
    metrics: &Metrics,
    position: Option<&str>,
    start: Instant,
    start_unix_nanos: u64,
) -> Opened {
    chosen(config, |k| {
        k.open(&config.source, metrics, position, start, start_unix_nanos)
    })
}

/// The command line as the registry assembles it: every flag of every kind, through
/// [`crate::config::parse`].
#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceConfig;
    use crate::config::{self, flag, Command, ListenAddress, Print, Scope, Takes, UnitFlavor};
    use crate::error::Error;
    use crate::log::{Format, Level};
    use crate::source::kind::Kind;
    use crate::source::log::config::{LogFlags, Pattern};
    use crate::source::log::template::Unit;
    use crate::source::sim::SimConfig;
    use std::ffi::OsString;
    use std::net::{Ipv6Addr, SocketAddr};
    use std::time::Duration;

    const MS: fn(u64) -> Duration = Duration::from_millis;
    const NS: fn(u64) -> Duration = Duration::from_nanos;
    const S: fn(u64) -> Duration = Duration::from_secs;

    fn run(args: &[&str]) -> Result<Command, Error> {
        config::parse(args.iter().copied(), &tables())
    }

    fn parse<I, T>(args: I) -> Result<Command, Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString>,
    {
        config::parse(args, &tables())
    }

    fn message(args: &[&str]) -> String {
        match run(args) {
            Err(Error::Usage(msg)) => msg,
            other => panic!("{args:?}: expected a usage error, got {other:?}"),
        }
    }

    /// The config with every default.
    fn defaults() -> Config {
        match run(&[]) {
            Ok(Command::Run(config)) => config,
            other => panic!("no flags: {other:?}"),
        }
    }

    fn with(edit: fn(&mut Config)) -> Config {
        let mut config = defaults();
        edit(&mut config);
        config
    }

    /// The simulation's settings in `config`, to edit.
    fn sim(config: &mut Config) -> &mut SimConfig {
        config.source.get_mut().expect("the simulation")
    }

    /// The config of `kind` made from its raw flags `raw`.
    fn source<R, V>(kind: &'static Kind<R, V>, raw: R) -> SourceConfig
    where
        R: Default + 'static,
        V: Clone + PartialEq + std::fmt::Debug + Send + Sync + 'static,
    {
        let default = std::ptr::eq(kind.table(), KINDS[0].table());
        kind.table()
            .validate(Box::new(raw), default)
            .expect("test source flags validate")
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
            ("--widget.min-duration", "1ms", |c| sim(c).min_duration = MS(1)),
            ("--widget.max-duration", "2s", |c| sim(c).max_duration = S(2)),
            ("--widget.max-duration", "100ms", |c| sim(c).max_duration = MS(100)),
            ("--widget.interval", "0", |c| sim(c).interval = Duration::ZERO),
            ("--widget.interval", "1m30s", |c| sim(c).interval = S(90)),
            ("--widget.failure-ratio", "0.25", |c| sim(c).failure_ratio = 0.25),
            ("--widget.failure-ratio", "1", |c| sim(c).failure_ratio = 1.0),
            ("--widget.failure-ratio", "-0", |c| sim(c).failure_ratio = 0.0),
            ("--widget.seed", "42", |c| sim(c).seed = Some(42)),
            ("--widget.seed", "0", |c| sim(c).seed = Some(0)),
            ("--widget.seed", "18446744073709551615", |c| sim(c).seed = Some(u64::MAX)),
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
            (&[], defaults()),
            (&["--"], defaults()),
            (&["--web.systemd-socket"], with(|c| c.systemd_socket = true)),
            (&["--web.systemd-socket=true"], with(|c| c.systemd_socket = true)),
            (&["--web.systemd-socket=false"], defaults()),
            (&["--web.telemetry-path=/a=b"], with(|c| c.telemetry_path = "/a=b".to_owned())),
            (&["--widget.interval", "0", "--log.level", "warn"], with(|c| { sim(c).interval = Duration::ZERO; c.log_level = Level::Warn; })),
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
        let unit = |flavor| Command::Print(Print::SystemdUnit(flavor), defaults());
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
            (&["--print-systemd-socket"], Command::Print(Print::SystemdSocket, defaults())),
            (&["--print-alert-rules"], Command::Print(Print::AlertRules, defaults())),
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
            source: source(
                &sim::KIND,
                SimConfig {
                    min_duration: NS(1_500),
                    max_duration: S(5400),
                    interval: MS(1),
                    failure_ratio: 0.1,
                    seed: Some(7),
                },
            ),
            average_window: MS(1500),
            textfile_path: Some("/var/lib/node/w.prom".into()),
            textfile_interval: S(60),
            log_level: Level::Warn,
            log_format: Format::Json,
            alert_thresholds: crate::host::units::Thresholds::default(),
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
        assert!(defaults().to_args().is_empty());
        #[rustfmt::skip]
        let configs = [
            defaults(),
            all,
            with(|c| c.listen_address = ListenAddress::AllInterfaces(0)),
            with(|c| c.listen_address = ListenAddress::Ip(([127, 0, 0, 1], 8000).into())),
            with(|c| c.telemetry_path = "/a=b%20c".to_owned()),
            with(|c| sim(c).failure_ratio = 1.0 / 3.0),
            with(|c| sim(c).failure_ratio = 1e-300),
            with(|c| sim(c).seed = Some(0)),
            with(|c| sim(c).interval = NS(1_000_000_001)),
            with(|c| sim(c).max_duration = NS(u64::MAX)),
            with(|c| c.average_window = NS(86_399_999_999_999)),
            with(|c| c.log_level = Level::Debug),
            with(|c| {
                c.listen_address = ListenAddress::Off;
                c.textfile_path = Some("w.prom".into());
                c.textfile_interval = NS(1);
            }),
            with(|c| {
                c.source = source(&log::KIND, LogFlags {
                    path: Some("-".into()),
                    finished: Some(Pattern::parse("* took={duration} \\* x", true).expect("parses")),
                    failed: Some(Pattern::parse("*=failed*", false).expect("parses")),
                    started: Some(Pattern::parse("* start *", false).expect("parses")),
                    unit: Unit::Ms,
                    poll_interval: MS(250),
                    max_series: 5,
                    max_files: 3,
                    check: false,
                });
            }),
        ];
        for config in configs {
            let args = config.to_args();
            let got = config::parse(&args, &tables()).map_err(|e| e.to_string());
            assert_eq!(got, Ok(Command::Run(config.clone())), "{args:?}");
        }
    }

    #[test]
    fn usage_text() {
        let usage = config::usage(&tables());
        assert!(usage.starts_with("usage: widget-exporter [FLAGS]\n\n"));
        assert!(usage
            .lines()
            .all(|l| l.chars().count() <= 100 && l == l.trim_end()));
        // It stands alone: the host that got the binary may have no other file.
        assert!(
            !usage.contains("README") && !usage.contains(".md"),
            "{usage}"
        );
        // The log source's required flags are marked, and its template rule is there.
        for required in ["--widget.log.path=", "--widget.log.finished="] {
            let line = usage
                .lines()
                .find(|l| l.contains(required))
                .unwrap_or_default();
            assert!(line.starts_with("* "), "{line}");
        }
        assert!(usage.contains("{duration}") && usage.contains("{label:NAME}"));
        // Every flag, in table order, with its default.
        let mut lines = usage.lines();
        for f in config::flags(&tables()) {
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
        let log_flags: Vec<_> = (0..).map_while(|i| log::KIND.table().flag(i)).collect();
        for f in config::flags(&tables()) {
            // A flag refused without its companion (--textfile.interval without a path) is
            // checked with the companion given.
            let companion = match f.scope {
                Scope::Textfile if f.name != "--textfile.path" => Some("--textfile.path=w.prom"),
                Scope::AlertRules => Some("--print-alert-rules"),
                _ => None,
            };
            if f.takes == Takes::Value && !f.default.is_empty() {
                let arg = format!("{}={}", f.name, f.default);
                // A source's flag is tried with that source (and what it requires), a flag
                // refused without its companion with the companion.
                let mut want = defaults();
                let mut args = vec![arg.as_str()];
                if let Some(c) = companion {
                    if f.scope == Scope::Textfile {
                        want.textfile_path = Some("w.prom".into());
                    }
                    args.push(c);
                }
                if log_flags.iter().any(|g| g.name == f.name) {
                    args.extend([
                        "--widget.source=log",
                        "--widget.log.path=a",
                        "--widget.log.finished={duration}",
                    ]);
                    want.source = source(
                        &log::KIND,
                        LogFlags {
                            path: Some("a".into()),
                            finished: Some(Pattern::parse("{duration}", true).expect("parses")),
                            ..LogFlags::default()
                        },
                    );
                }
                let want = match f.scope {
                    Scope::AlertRules => Command::Print(Print::AlertRules, want),
                    _ => Command::Run(want),
                };
                assert_eq!(run(&args).ok(), Some(want), "{arg} is not the default");
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

    /// The flags a kind marks required in `--help` are its own, and its validation refuses
    /// to go without each of them.
    #[test]
    fn required_flags_are_the_kinds_own_and_required() {
        let log_args = [
            "--widget.source=log",
            "--widget.log.path=a",
            "--widget.log.finished={duration}",
        ];
        assert!(run(&log_args).is_ok());
        for kind in tables() {
            let own: Vec<_> = (0..).map_while(|i| kind.flag(i)).map(|f| f.name).collect();
            for name in kind.required() {
                assert!(own.contains(name), "{} marks {name}", kind.name());
                let without: Vec<&str> = log_args
                    .iter()
                    .copied()
                    .filter(|a| !a.starts_with(&format!("{name}=")))
                    .collect();
                let err = message(&without);
                assert!(err.contains(name) && err.contains("required"), "{err}");
            }
        }
        assert_eq!(
            log::KIND.table().required(),
            ["--widget.log.path", "--widget.log.finished"]
        );
    }

    #[test]
    fn flags_are_found_by_name_and_alias() {
        for f in config::flags(&tables()) {
            assert!(f.name.starts_with("--"), "{}", f.name);
            assert_eq!(flag(&tables(), f.name).map(|g| g.name), Some(f.name));
        }
        assert_eq!(flag(&tables(), "-h").map(|f| f.name), Some("--help"));
        assert!(flag(&tables(), "--nope").is_none());
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
                        let _ = config::parse_duration(&[a, b, c, d].concat());
                    }
                }
            }
        }
    }
}
