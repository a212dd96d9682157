//! Everything that talks to the operating system: [`sys`] (all `unsafe`), [`process`]
//! (`/proc`), [`systemd`] (sd_notify, socket activation, the printed units).

pub mod limits;
pub mod process;
pub mod sys;
pub mod systemd;
