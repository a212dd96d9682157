//! The exporter's families about itself: its build, and the standard `process_*` families
//! worded as the official clients word them, from the [`ProcessStats`] that `host::process`
//! reads. Owns their names, help, kinds and encoding; there are no atomics (`/proc` is read
//! per scrape) and nothing is carried across a restart in place. It must not read `/proc`
//! itself nor touch another owner's families.

use crate::host::process::ProcessStats;
use crate::metrics::render::{family, Encoder, Family, Kind, Number};

const BUILD_INFO: Family = family(
    "widget_exporter_build_info",
    Kind::Info,
    "Build information of widget-exporter; the value is always 1.",
);
const CPU: Family = family(
    "process_cpu_seconds_total",
    Kind::Counter,
    "Total user and system CPU time spent in seconds.",
);
const RSS: Family = family(
    "process_resident_memory_bytes",
    Kind::Gauge,
    "Resident memory size in bytes.",
);
const VSIZE: Family = family(
    "process_virtual_memory_bytes",
    Kind::Gauge,
    "Virtual memory size in bytes.",
);
const START: Family = family(
    "process_start_time_seconds",
    Kind::Gauge,
    "Start time of the process since unix epoch in seconds.",
);
const OPEN_FDS: Family = family(
    "process_open_fds",
    Kind::Gauge,
    "Number of open file descriptors.",
);
const MAX_FDS: Family = family(
    "process_max_fds",
    Kind::Gauge,
    "Maximum number of open file descriptors.",
);

/// Writes the build info family.
pub(crate) fn encode_build_info(e: &mut Encoder<'_>) {
    e.info(&BUILD_INFO, &[("version", env!("CARGO_PKG_VERSION"))]);
}

/// Writes the `process_*` families; a `None` value leaves its family out.
pub(crate) fn encode(p: &ProcessStats, e: &mut Encoder<'_>) {
    if let Some(v) = p.cpu_nanos {
        e.counter_number(&CPU, Number::Nanos(v));
    }
    for (family, value) in [
        (&RSS, p.resident_memory_bytes.map(Number::Int)),
        (&VSIZE, p.virtual_memory_bytes.map(Number::Int)),
        (&START, p.start_time_nanos.map(Number::Nanos)),
        (&OPEN_FDS, p.open_fds.map(Number::Int)),
        (&MAX_FDS, p.max_fds.map(Number::Int)),
    ] {
        if let Some(v) = value {
            e.gauge(family, v);
        }
    }
}
