//! The HTTP output's families, present only while HTTP is served: requests answered by code,
//! the self-probe, open connections and those the guard shut down by reason, restarts in
//! place. Owns their names, help, kinds, label values, atomics and the methods that update
//! them ([`Http`]), snapshot, encoding and which of them a restart in place carries. It must not touch another owner's families, nor know
//! how requests are served (that is `output::http`) or how the exposition is spelled.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::metrics::render::{family, Encoder, Family, Kind, Number};

const REQUESTS: Family = family(
    "widget_exporter_http_requests_total",
    Kind::Counter,
    "HTTP requests answered by the exporter, by status code.",
);
const SELF_PROBE: Family = family(
    "widget_exporter_self_probe_success",
    Kind::Gauge,
    "Whether the latest request the exporter sent to its own listener came back through the HTTP server (1) or not (0).",
);
const CONNECTIONS: Family = family(
    "widget_exporter_connections",
    Kind::Gauge,
    "Client connections open and not shut down, as of the connection guard's last scan.",
);
const CONNECTIONS_CLOSED: Family = family(
    "widget_exporter_connections_closed_total",
    Kind::Counter,
    "Client connections the exporter shut down to protect itself, by reason.",
);
const RESTARTS: Family = family(
    "widget_exporter_restarts_in_place_total",
    Kind::Counter,
    "Times the exporter re-executed itself in place (same PID and socket) to shed threads, descriptors or memory that tiny_http could not free.",
);

/// Status codes the exporter itself answers with, and their `code` label values; all present
/// from the start at 0.
pub const HTTP_CODES: [(u16, &str); 5] = [
    (200, "200"),
    (400, "400"),
    (404, "404"),
    (405, "405"),
    (503, "503"),
];

/// Why the connection guard shut a connection down (the `reason` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// No complete request within the first-request limit (slowloris, idle floods, header bombs).
    Slow,
    /// Idle far longer than any scrape interval.
    Idle,
    /// Over the connection cap.
    Cap,
    /// Memory or thread use over its cap.
    Pressure,
    /// The client stopped reading our responses.
    WriteTimeout,
    /// The request announced a body (a scrape has none), which tiny_http would wait for.
    Body,
}

impl CloseReason {
    /// Every reason, in label order (`reason as usize` is its index).
    pub(crate) const ALL: [CloseReason; 6] = [
        CloseReason::Slow,
        CloseReason::Idle,
        CloseReason::Cap,
        CloseReason::Pressure,
        CloseReason::WriteTimeout,
        CloseReason::Body,
    ];

    /// The `reason` label value.
    #[must_use]
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CloseReason::Slow => "slow",
            CloseReason::Idle => "idle",
            CloseReason::Cap => "cap",
            CloseReason::Pressure => "pressure",
            CloseReason::WriteTimeout => "write_timeout",
            CloseReason::Body => "body",
        }
    }
}

/// The live HTTP values, updated by the HTTP output with relaxed atomics.
#[derive(Debug, Default)]
pub struct Http {
    requests: [AtomicU64; HTTP_CODES.len()],
    self_probe_success: AtomicU64,
    connections: AtomicU64,
    connections_closed: [AtomicU64; CloseReason::ALL.len()],
    restarts: AtomicU64,
}

impl Http {
    /// The families' values (restarts apart, see [`Http::restarts`]).
    pub(crate) fn snapshot(&self) -> HttpSnapshot {
        HttpSnapshot {
            requests: std::array::from_fn(|i| self.requests[i].load(Relaxed)),
            self_probe_success: self.self_probe_success.load(Relaxed),
            connections: self.connections.load(Relaxed),
            connections_closed: std::array::from_fn(|i| self.connections_closed[i].load(Relaxed)),
        }
    }

    /// Restarts in place so far; a field of the snapshot of its own.
    pub(crate) fn restarts(&self) -> u64 {
        self.restarts.load(Relaxed)
    }

    /// What a restart in place carries: the counters, not the gauges.
    pub(crate) fn carried<'a>(&'a self, out: &mut Vec<&'a AtomicU64>) {
        out.push(&self.restarts);
        out.extend(&self.requests);
        out.extend(&self.connections_closed);
    }
}

/// The families that only mean something while HTTP is served.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSnapshot {
    /// Per [`HTTP_CODES`] entry.
    pub requests: [u64; HTTP_CODES.len()],
    /// 1 when the latest self-probe came back, else 0.
    pub self_probe_success: u64,
    /// Open client connections.
    pub connections: u64,
    /// Per [`CloseReason`], in label order.
    pub connections_closed: [u64; CloseReason::ALL.len()],
}

impl HttpSnapshot {
    /// Writes the HTTP families, with `restarts` in place so far.
    pub(crate) fn encode(&self, restarts: u64, e: &mut Encoder<'_>) {
        e.labeled_counters(
            &REQUESTS,
            "code",
            HTTP_CODES
                .iter()
                .zip(&self.requests)
                .map(|(&(_, code), &n)| (code, n)),
        );
        e.gauge(&SELF_PROBE, Number::Int(self.self_probe_success));
        e.gauge(&CONNECTIONS, Number::Int(self.connections));
        e.labeled_counters(
            &CONNECTIONS_CLOSED,
            "reason",
            CloseReason::ALL
                .iter()
                .zip(&self.connections_closed)
                .map(|(r, &n)| (r.as_str(), n)),
        );
        // Restarts in place shed what tiny_http leaks: without HTTP there are none.
        e.counter(&RESTARTS, restarts);
    }
}

impl Http {
    /// Counts one answered request; codes outside [`HTTP_CODES`] are not counted.
    pub fn count_request(&self, code: u16) {
        if let Some(i) = HTTP_CODES.iter().position(|&(c, _)| c == code) {
            self.requests[i].fetch_add(1, Relaxed);
        }
    }

    /// Publishes the self-probe's latest outcome.
    pub(crate) fn set_self_probe(&self, ok: bool) {
        self.self_probe_success.store(u64::from(ok), Relaxed);
    }

    /// Publishes the number of open client connections.
    pub(crate) fn set_connections(&self, n: u64) {
        self.connections.store(n, Relaxed);
    }

    /// Counts a connection the guard shut down.
    pub(crate) fn count_close(&self, reason: CloseReason) {
        self.connections_closed[reason as usize].fetch_add(1, Relaxed);
    }

    /// Counts a restart in place (call before exporting the counters for it).
    pub(crate) fn count_restart(&self) {
        self.restarts.fetch_add(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use crate::host::process::ProcessStats;
    use crate::metrics::Metrics;

    #[test]
    fn requests_by_code() {
        let m = Metrics::default();
        m.http.count_request(200);
        m.http.count_request(200);
        m.http.count_request(404);
        m.http.count_request(999);
        let s = m.snapshot(ProcessStats::default());
        assert_eq!(s.http.map(|h| h.requests), Some([2, 0, 1, 0, 0]));
    }
}
