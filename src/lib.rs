//! widget-exporter: a tiny, synchronous Prometheus exporter for a widget-processing service.
//!
//! Where numbers come from: a [`source`] of widgets, [`sim`] (the simulation) or [`logtail`]
//! (the application's log, followed by [`tail`] and matched by [`template`]), and [`process`]
//! (`/proc`), gathered in [`metrics`]. Where they go: [`render`] (the exposition formats) for
//! [`server`] (HTTP) and [`textfile`] (node_exporter's textfile collector), driven by the one
//! loop in [`app`]. Containment of tiny_http: [`guard`], [`probe`], [`restart`]. [`cli`]
//! turns flags into a configuration.

pub mod app;
pub mod cli;
pub mod error;
pub mod guard;
pub mod log;
pub mod logtail;
pub mod metrics;
pub mod notify;
pub mod probe;
pub mod process;
pub mod render;
pub mod restart;
pub mod server;
pub mod sim;
pub mod source;
pub mod sys;
pub mod tail;
pub mod template;
pub mod textfile;
