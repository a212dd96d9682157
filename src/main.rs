//! The binary: parse the flags, run the exporter (or print what was asked), map the outcome
//! to an exit code. Only this file prints outside the log or exits (but for the signal
//! thread, `app`'s, which ends the process with status 0).
//!
//! One rule for exits: a configuration error found at start, by the parser or while
//! opening what the flags name (a path that is a directory, a directory that does not
//! exist), is an [`Error::Usage`]: exit 2, printed in the usage style with the hint. Any
//! other failure is a runtime one: exit 1 with one log line.

use std::path::Path;
use std::process::ExitCode;

use widget_exporter::config::{self, Command, Config, ListenAddress, Print, UnitFlavor};
use widget_exporter::error::Error;
use widget_exporter::host::{dashboard, units};
use widget_exporter::output::textfile;
use widget_exporter::source::{self, Reads};
use widget_exporter::{app, log};

fn main() -> ExitCode {
    let sources = source::tables();
    match config::parse(std::env::args_os().skip(1), &sources) {
        Ok(Command::Help) => print!("{}", config::usage(&sources)),
        Ok(Command::Version) => println!("widget-exporter {}", env!("CARGO_PKG_VERSION")),
        Ok(Command::Print(what, config)) => {
            let (text, warnings) = printed(what, &config);
            for warning in warnings {
                eprintln!("{warning}");
            }
            print!("{text}");
        }
        Ok(Command::Run(config)) => {
            if let Some(checked) = source::check(&config) {
                print!("{}", checked.report);
                return match checked.error {
                    None => ExitCode::SUCCESS,
                    Some(e) => {
                        eprintln!("widget-exporter: {e}");
                        ExitCode::FAILURE
                    }
                };
            }
            // tiny_http spawns a thread per connection; 256 KiB of stack is plenty for them and
            // keeps a connection flood's address space small. Set while we are single-threaded.
            if std::env::var_os("RUST_MIN_STACK").is_none() {
                std::env::set_var("RUST_MIN_STACK", "262144");
            }
            let Err(e) = app::run(&config);
            if matches!(e, Error::Usage(_)) {
                return usage_error(&e);
            }
            log::error(&e.to_string(), &[]);
            return ExitCode::from(e.exit_code() as u8);
        }
        Err(e) => return usage_error(&e),
    }
    ExitCode::SUCCESS
}

/// A configuration error in the usage style: one line naming the flag, the hint, exit 2.
fn usage_error(e: &Error) -> ExitCode {
    eprintln!("widget-exporter: {e}\nrun 'widget-exporter --help' for usage");
    ExitCode::from(e.exit_code() as u8)
}

/// The text of a `--print-*` flag, filled in with the other flags given, and the warnings
/// for standard error (the paths a printed unit would hide).
fn printed(what: Print, config: &Config) -> (String, Vec<String>) {
    // `config` made sure a textfile path here is absolute and plain enough for a unit file.
    let writes = config.textfile_path.as_deref().map(textfile::dir_of);
    let unit = |text: &str, directive: &str| {
        let mut unit = units::fill_args(text, &config.to_args());
        unit = units::describe(&unit, config.source_about());
        let mut log_path = None;
        if let Reads::Log { group, path } = source::reads(config) {
            unit = units::with_log_access(&unit, group);
            log_path = Some(path);
        }
        if let Some(dir) = writes {
            unit = units::allow_writes(&unit, directive, dir);
        }
        let warnings = units::hidden_paths(
            &unit,
            log_path.as_deref(),
            config.textfile_path.as_deref().map(Path::new),
        );
        (unit, warnings)
    };
    match what {
        Print::SystemdUnit(UnitFlavor::Modern) => unit(units::SERVICE_UNIT, "ReadWritePaths"),
        // systemd 219 knows only the older name (newer ones read it as ReadWritePaths=).
        Print::SystemdUnit(UnitFlavor::Legacy) => {
            unit(units::LEGACY_SERVICE_UNIT, "ReadWriteDirectories")
        }
        Print::SystemdSocket => (
            units::socket_unit(&match config.listen_address {
                ListenAddress::AllInterfaces(port) => port.to_string(),
                ListenAddress::Ip(addr) => addr.to_string(),
                // Refused by `config`: there is no socket to describe.
                ListenAddress::Off => String::new(),
            }),
            Vec::new(),
        ),
        Print::AlertRules => (units::alert_rules(&config.alert_thresholds), Vec::new()),
        Print::GrafanaDashboard => (dashboard::render(), Vec::new()),
    }
}
