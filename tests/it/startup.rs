//! A scrape right after start, as a Prometheus server meets a freshly (re)started exporter:
//! a readiness check connects and hangs up, other clients hold connections that send
//! nothing, then the scrape comes on a new connection. tiny_http's pool can queue a
//! connection behind an idle thread that another connection took (see
//! `src/output/http/pool.rs`); nothing of it reaches the loop, so only the pool's watch
//! finds it. The phase against the exporter's start decides it, so each start waits a
//! random few milliseconds first. The bound is generous (1 s for what takes about a
//! millisecond; a missed rescue waited 2 s); `tests/bench/run.sh startup` prints the real
//! figures over 100 starts per case beside the bare tiny_http loop.

use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::support::{connect, try_request, Exporter, Rng};

/// Generous: an answer takes about a millisecond.
const BOUND: Duration = Duration::from_secs(1);

/// Fresh starts per count of silent connections.
const STARTS: usize = 20;

const SCRAPE: &str = "GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n";

#[test]
fn a_scrape_after_start_is_answered_beside_silent_connections() {
    // Its bound is generous, but floods in other tests must not run beside it.
    let _shared = crate::support::machine_shared();
    let seed = crate::support::master_seed();
    println!("seed {seed} (WIDGET_EXPORTER_FUZZ_SEED replays it)");
    let mut rng = Rng::new(seed);
    let mut slow = Vec::new();
    for start in 0..STARTS {
        for silent in [0, 1, 20, 200] {
            let exporter = Exporter::start(&[]);
            // Somewhere in the first 25 ms: before, during or after the pool is parked.
            std::thread::sleep(Duration::from_micros(rng.below(25_000) as u64));
            drop(connect(exporter.addr, BOUND).expect("the readiness check connects"));
            let held: Vec<TcpStream> = (0..silent)
                .map(|_| connect(exporter.addr, BOUND).expect("a silent connection"))
                .collect();
            let t0 = Instant::now();
            let answer = try_request(exporter.addr, SCRAPE, Duration::from_secs(5));
            let took = t0.elapsed();
            match answer {
                Ok(r) if r.status == 200 && took <= BOUND => {}
                other => slow.push(format!(
                    "start {start}, {silent} silent: {:?} after {took:?}\nlog:\n{}",
                    other.map(|r| r.status),
                    exporter.log()
                )),
            }
            drop(held);
        }
    }
    assert!(
        slow.is_empty(),
        "{} of {} scrapes not answered within {BOUND:?} (seed {seed}):\n{}",
        slow.len(),
        STARTS * 4,
        slow.join("\n")
    );
}
