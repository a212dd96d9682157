//! Bursts of new connections against the real binary: a scrape must not wait behind
//! connections that tiny_http accepted but gave no thread (its pool queues a burst behind
//! idle threads; the HTTP output's guard rescues them). Bounds are generous (1 s for what
//! takes a few milliseconds); the benchmark prints the real figures. Hostile clients and the
//! soak have their own modules.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support;
use crate::support::{Exporter, KeepAlive};

/// Generous: an answer takes milliseconds; a connection left without a thread waits for the
/// guard's quiet scan, 0.5 to 2 s.
const BOUND: Duration = Duration::from_secs(1);

const SCRAPE: &str = "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n";

#[test]
fn a_scrape_is_answered_while_silent_connections_are_open() {
    let _shared = support::machine_shared();
    for silent in [20, 200] {
        let exporter = Exporter::start(&[]);
        // Opened back to back, and the first scrape right behind them: the burst tiny_http
        // queues behind its idle threads, first in, first out, silent ones first.
        let held: Vec<TcpStream> = (0..silent)
            .map(|_| TcpStream::connect(exporter.addr).expect("connect a silent connection"))
            .collect();
        let mut slow = Vec::new();
        for attempt in 0..20 {
            let t0 = Instant::now();
            let response = exporter.get("/metrics");
            let took = t0.elapsed();
            assert_eq!(response.status, 200, "attempt {attempt}");
            if took > BOUND {
                slow.push((attempt, took));
            }
        }
        assert!(
            slow.is_empty(),
            "with {silent} silent connections open, scrapes slower than {BOUND:?}: {slow:?}\nlog:\n{}",
            exporter.log()
        );
        drop(held);
    }
}

#[test]
fn every_connection_of_a_fresh_burst_is_answered() {
    let _shared = support::machine_shared();
    for _start in 0..3 {
        let exporter = Exporter::start(&[]);
        // Like wrk -c16: connect all, then a request on each, then read each answer.
        let mut conns: Vec<KeepAlive> =
            (0..16).map(|_| KeepAlive::connect(exporter.addr)).collect();
        let t0 = Instant::now();
        for c in &mut conns {
            let response = c.send(SCRAPE);
            assert_eq!(response.status, 200);
        }
        let took = t0.elapsed();
        assert!(
            took < BOUND,
            "16 fresh connections took {took:?} to be answered\nlog:\n{}",
            exporter.log()
        );
    }
}
