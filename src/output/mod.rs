//! Where the numbers go: [`http`] for Prometheus, [`textfile`] for node_exporter's textfile
//! collector.

pub mod http;
pub mod textfile;
