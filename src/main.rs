//! The binary: parse the flags, run the exporter (or print what was asked), map the outcome
//! to an exit code. Only this file prints outside the log or exits.

use std::process::ExitCode;

use widget_exporter::config::{self, Command, Config, ListenAddress, Print, UnitFlavor};
use widget_exporter::host::systemd;
use widget_exporter::output::textfile;
use widget_exporter::source::{self, Reads};
use widget_exporter::{app, log};

/// Alerting rules for operators, a real file packagers can read.
const ALERT_RULES: &str = include_str!("host/units/widget-exporter.rules.yml");

fn main() -> ExitCode {
    let sources = source::tables();
    match config::parse(std::env::args_os().skip(1), &sources) {
        Ok(Command::Help) => print!("{}", config::usage(&sources)),
        Ok(Command::Version) => println!("widget-exporter {}", env!("CARGO_PKG_VERSION")),
        Ok(Command::Print(what, config)) => print!("{}", printed(what, &config)),
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
            log::error(&e.to_string(), &[]);
            return ExitCode::from(e.exit_code() as u8);
        }
        Err(e) => {
            eprintln!("widget-exporter: {e}\nrun 'widget-exporter --help' for usage");
            return ExitCode::from(e.exit_code() as u8);
        }
    }
    ExitCode::SUCCESS
}

/// The text of a `--print-*` flag, filled in with the other flags given.
fn printed(what: Print, config: &Config) -> String {
    // `config` made sure a textfile path here is absolute and plain enough for a unit file.
    let writes = config.textfile_path.as_deref().map(textfile::dir_of);
    let unit = |text: &str, directive: &str| {
        let mut unit = systemd::fill_args(text, &config.to_args());
        if let Reads::Log { group } = source::reads(config) {
            unit = systemd::with_log_access(&unit, group);
        }
        match writes {
            Some(dir) => systemd::allow_writes(&unit, directive, dir),
            None => unit,
        }
    };
    match what {
        Print::SystemdUnit(UnitFlavor::Modern) => unit(systemd::SERVICE_UNIT, "ReadWritePaths"),
        // systemd 219 knows only the older name (newer ones read it as ReadWritePaths=).
        Print::SystemdUnit(UnitFlavor::Legacy) => {
            unit(systemd::LEGACY_SERVICE_UNIT, "ReadWriteDirectories")
        }
        Print::SystemdSocket => systemd::socket_unit(&match config.listen_address {
            ListenAddress::AllInterfaces(port) => port.to_string(),
            ListenAddress::Ip(addr) => addr.to_string(),
            // Refused by `config`: there is no socket to describe.
            ListenAddress::Off => String::new(),
        }),
        Print::AlertRules => ALERT_RULES.to_owned(),
    }
}
