//! Everything that talks to the operating system: [`sys`] (all `unsafe`), [`process`]
//! (`/proc`), [`clock`] (the wall clock), [`systemd`] (sd_notify, socket activation, the
//! printed units).

pub mod clock;
pub mod process;
pub mod sys;
pub mod systemd;
