//! The binary: parse the flags, run the exporter, map the outcome to an exit code. Only this
//! file prints outside the log or exits.

use std::process::ExitCode;

use widget_exporter::cli::{self, Command};
use widget_exporter::{app, log};

fn main() -> ExitCode {
    match cli::parse(std::env::args_os().skip(1)) {
        Ok(Command::Help) => {
            print!("{}", cli::USAGE);
            ExitCode::SUCCESS
        }
        Ok(Command::Version) => {
            println!("widget-exporter {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Ok(Command::Print(..)) => {
            eprintln!("widget-exporter: printing units and rules is not implemented yet");
            ExitCode::from(2)
        }
        Ok(Command::Run(config)) => {
            let Err(e) = app::run(&config);
            log::error(&e.to_string(), &[]);
            ExitCode::from(e.exit_code() as u8)
        }
        Err(e) => {
            eprintln!("widget-exporter: {e}\nrun 'widget-exporter --help' for usage");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
