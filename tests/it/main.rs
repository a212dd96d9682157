//! The integration tests, one binary: a module per concern, all of them on the one support
//! layer (`support`: the binary under test, the HTTP client, tools found or skipped) and the
//! reliability suite's attacks (`attack`). `cargo test --test it MODULE::` runs one concern.

mod attack;
mod support;

mod alerts;
mod burst;
mod cli;
mod fuzz;
mod golden;
mod hostile;
mod logtail;
mod prometheus;
mod scrape;
mod soak;
mod systemd;
mod textfile;
mod validators;
