//! The integration tests, one binary: a module per concern, all of them on one support layer
//! (`support`: the binary under test, child processes, the HTTP client, polling, parsers,
//! outside tools found or skipped) and the reliability suite's attacks (`attack`).
//!
//! `cargo test --test it MODULE::` runs one concern. The heavy cases are `#[ignore]`d;
//! `.ci/run` runs the reliability suite against the release binary with
//! `--include-ignored hostile:: fuzz:: soak:: legacy::`. A check that lacks an outside tool is
//! skipped visibly, counted, and the count is this binary's last line
//! (`skipped checks: N`); `WIDGET_EXPORTER_REQUIRE_TOOLS=1` turns each skip into a failure.
//! The counting allocator of `tests/alloc.rs` is a `#[global_allocator]`: here it would sit
//! under every allocation of every test, so it keeps a binary of its own.

mod attack;
mod promapi;
mod support;

mod alerts;
mod alerts_fit;
mod burst;
mod cli;
mod dashboard;
mod fuzz;
mod golden;
mod hostile;
mod legacy;
mod log_source;
mod logtail;
mod prometheus;
mod scrape;
mod soak;
mod startup;
mod surface;
mod systemd;
mod textfile;
mod validators;
