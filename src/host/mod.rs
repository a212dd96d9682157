//! Everything that talks to the operating system: [`sys`] (all `unsafe`), [`process`]
//! (`/proc`), [`limits`] (the limits in force: open files, the pids cgroup), [`clock`] (the
//! wall clock), [`systemd`] (sd_notify, socket activation); and
//! what an operator installs beside the binary: [`units`] (the printed units and alerting
//! rules) and [`dashboard`] (the Grafana dashboard).

pub mod clock;
pub mod dashboard;
pub mod limits;
pub mod process;
pub mod sys;
pub mod systemd;
pub mod units;
