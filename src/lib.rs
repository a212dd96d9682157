//! widget-exporter: a tiny, synchronous Prometheus exporter for a widget-processing service.
//!
//! Where numbers come from: a [`source`] of widgets ([`source::sim`], the simulation, or
//! [`source::log`], the application's log), gathered in [`metrics`]. Where they go: an
//! [`output`] ([`output::http`] for Prometheus, [`output::textfile`] for node_exporter),
//! rendered by [`metrics::render`] and driven by the one loop in [`app`]. [`config`] turns
//! flags into a configuration; [`host`] is everything that talks to the operating system.

pub mod app;
pub mod config;
pub mod error;
pub mod host;
pub mod log;
pub mod metrics;
pub mod output;
pub mod source;
