//! The self-probe: at intervals the loop sends a request to its own listener and counts the
//! probe good only when that request comes back out of `recv_timeout`. That proves the whole
//! HTTP path (kernel backlog, tiny_http's accept thread, a connection thread, the queue),
//! which a loop-only check cannot: tiny_http's accept thread can die for good while the
//! process keeps running. It never blocks the loop: connecting to loopback is bounded by a
//! short timeout and the request is written to a fresh, empty socket buffer.
//!
//! Each probe's connection but the first is kept alive until just before the next probe,
//! then closed, and the next probe connects a few milliseconds later: so the tiny_http thread
//! that served one probe serves the next, and is never left idle between probes, where a
//! burst of new connections could be queued behind it (see `pool`).
//! It owns no HTTP routing and no metrics; `app` asks it and publishes what it says.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use crate::output::http::pool;

/// Header carrying the probe token; a request with it is the probe's, not a client's.
pub const HEADER: &str = "X-Widget-Exporter-Probe";

/// How long after closing the last probe's connection the next probe connects: time for
/// the tiny_http thread that served it to see the end and wait for a new connection.
pub const ROTATE_GAP: Duration = Duration::from_millis(5);

/// A probe on its way through the HTTP path.
#[derive(Debug)]
struct InFlight {
    token: u64,
    sent: Instant,
    /// Kept open until the answer is in, then until the next probe.
    stream: TcpStream,
}

/// Schedule and state of the self-probe.
#[derive(Debug)]
pub struct SelfProbe {
    target: SocketAddr,
    interval: Duration,
    timeout: Duration,
    next_at: Instant,
    in_flight: Option<InFlight>,
    /// The last probe's connection, kept alive (and its tiny_http thread busy) until the next.
    kept: Option<TcpStream>,
    last_success: Option<Instant>,
    last_ok: bool,
    last_error: Option<String>,
    rng: fastrand::Rng,
}

impl SelfProbe {
    /// A probe of the listener at `local`, first sent at `now`, then every `interval`; a
    /// probe not back within `timeout` counts as failed.
    #[must_use]
    pub fn new(local: SocketAddr, interval: Duration, timeout: Duration, now: Instant) -> Self {
        SelfProbe {
            target: pool::target_for(local),
            interval,
            timeout: timeout.min(interval),
            next_at: now,
            in_flight: None,
            kept: None,
            last_success: None,
            last_ok: false,
            last_error: None,
            rng: fastrand::Rng::new(),
        }
    }

    /// When the loop must call [`SelfProbe::tick`] next: the next send, or the deadline of
    /// the probe in flight.
    #[must_use]
    pub fn next_deadline(&self) -> Instant {
        match &self.in_flight {
            Some(p) => p.sent + self.timeout,
            None => self.next_at,
        }
    }

    /// When the next probe goes out.
    #[must_use]
    pub fn next_send(&self) -> Instant {
        self.next_at
    }

    /// Times out a probe that did not come back, and sends the next one when it is due.
    pub fn tick(&mut self, now: Instant) {
        if let Some(p) = &self.in_flight {
            if now >= p.sent + self.timeout {
                self.in_flight = None;
                self.fail(format!("no answer within {} ms", self.timeout.as_millis()));
            }
        }
        if self.in_flight.is_none() && now >= self.next_at {
            if self.kept.take().is_some() {
                // Closed now; its thread is ready for the probe that follows.
                self.next_at = now + ROTATE_GAP;
                return;
            }
            self.next_at = now + self.interval;
            self.send(now);
        }
    }

    fn send(&mut self, now: Instant) {
        let token = self.rng.u64(..);
        let request = format!(
            "GET /-/healthy HTTP/1.1\r\nHost: {}\r\n{HEADER}: {token:016x}\r\n\r\n",
            self.target
        );
        let sent = pool::connect(self.target).and_then(|mut s| {
            s.set_nonblocking(true)?;
            s.write_all(request.as_bytes())?;
            Ok(s)
        });
        match sent {
            Ok(stream) => {
                self.in_flight = Some(InFlight {
                    token,
                    sent: now,
                    stream,
                });
            }
            Err(e) => self.fail(format!("cannot send to {}: {e}", self.target)),
        }
    }

    fn fail(&mut self, why: String) {
        self.last_ok = false;
        self.last_error = Some(why);
    }

    /// Whether a request carrying the probe header with `value` is the probe in flight; if
    /// so the probe succeeded at `now`. Returns the round trip.
    pub fn answer(&mut self, value: &str, now: Instant) -> Option<Duration> {
        let token = u64::from_str_radix(value.trim(), 16).ok()?;
        let p = self.in_flight.take_if(|p| p.token == token)?;
        let round_trip = now.saturating_duration_since(p.sent);
        // The first probe's connection is closed at once: at start a client's connection can
        // be queued behind its thread (see `pool`), and is served when that thread is free.
        if self.last_success.is_some() {
            self.kept = Some(p.stream);
        }
        self.last_ok = true;
        self.last_error = None;
        self.last_success = Some(now);
        Some(round_trip)
    }

    /// Whether the latest finished probe succeeded.
    #[must_use]
    pub fn ok(&self) -> bool {
        self.last_ok
    }

    /// Why the latest probe failed, if it did.
    #[must_use]
    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// Whether a probe succeeded within `window` before `now`.
    #[must_use]
    pub fn succeeded_within(&self, window: Duration, now: Instant) -> bool {
        self.last_success
            .is_some_and(|t| now.saturating_duration_since(t) <= window)
    }

    /// How long the probe has been failing: since the last success (or since `started`, if
    /// none ever succeeded); zero while it is fine.
    #[must_use]
    pub fn failing_for(&self, started: Instant, now: Instant) -> Duration {
        if self.last_ok {
            Duration::ZERO
        } else {
            now.saturating_duration_since(self.last_success.unwrap_or(started))
        }
    }
}

/// The rescue of a starved connection, kept here for the loop's callers (see [`pool::kick`]).
pub use crate::output::http::pool::kick;

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    #[test]
    fn a_probe_that_comes_back_succeeds() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let mut p = SelfProbe::new(
            listener.local_addr().unwrap(),
            Duration::from_secs(5),
            Duration::from_secs(1),
            t0,
        );
        assert!(!p.ok());
        p.tick(t0);
        assert_eq!(p.next_deadline(), t0 + Duration::from_secs(1));
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 512];
        let n = conn.read(&mut buf).unwrap();
        let text = std::str::from_utf8(&buf[..n]).unwrap();
        let token = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Widget-Exporter-Probe: "))
            .unwrap();
        assert_eq!(p.answer("0123", t0), None, "a wrong token is not our probe");
        let rt = p.answer(token, t0 + Duration::from_millis(3)).unwrap();
        assert_eq!(rt, Duration::from_millis(3));
        assert!(p.ok() && p.succeeded_within(Duration::ZERO, t0 + Duration::from_millis(3)));
        assert_eq!(p.answer(token, t0), None, "answered once");
        assert_eq!(p.next_deadline(), t0 + Duration::from_secs(5));
    }

    #[test]
    fn a_probe_connection_is_kept_until_just_before_the_next() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let every = Duration::from_secs(2);
        let mut p = SelfProbe::new(listener.local_addr().unwrap(), every, every / 2, t0);
        let token = |conn: &mut TcpStream| {
            let mut buf = [0u8; 512];
            let n = conn.read(&mut buf).unwrap();
            let text = std::str::from_utf8(&buf[..n]).unwrap().to_owned();
            assert!(!text.contains("Connection: close"), "{text}");
            text.lines()
                .find_map(|l| l.strip_prefix("X-Widget-Exporter-Probe: "))
                .unwrap()
                .to_owned()
        };
        p.tick(t0);
        let (mut zeroth, _) = listener.accept().unwrap();
        assert!(p.answer(&token(&mut zeroth), t0).is_some());
        let mut b = [0u8; 1];
        assert!(
            matches!(zeroth.read(&mut b), Ok(0)),
            "the first probe's connection closes at once"
        );
        let t0 = t0 + every;
        p.tick(t0);
        let (mut first, _) = listener.accept().unwrap();
        assert!(p.answer(&token(&mut first), t0).is_some());
        first
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        assert!(first.read(&mut b).is_err(), "still open after the answer");
        // Due: the kept connection closes, and the next probe follows shortly after.
        p.tick(t0 + every);
        assert!(matches!(first.read(&mut b), Ok(0)), "closed when due");
        assert_eq!(p.next_deadline(), t0 + every + ROTATE_GAP);
        p.tick(t0 + every + ROTATE_GAP);
        let (mut second, _) = listener.accept().unwrap();
        assert!(p.answer(&token(&mut second), t0 + every).is_some());
        assert_eq!(p.next_deadline(), t0 + every * 2 + ROTATE_GAP);
    }

    #[test]
    fn a_probe_that_never_comes_back_fails() {
        // The kernel completes the handshake (backlog) but nobody ever answers.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let t0 = Instant::now();
        let mut p = SelfProbe::new(
            listener.local_addr().unwrap(),
            Duration::from_secs(2),
            Duration::from_secs(1),
            t0,
        );
        p.tick(t0);
        p.tick(t0 + Duration::from_millis(999));
        assert!(p.last_error().is_none());
        p.tick(t0 + Duration::from_secs(1));
        assert!(!p.ok());
        assert!(
            p.last_error().unwrap().contains("no answer"),
            "{:?}",
            p.last_error()
        );
        assert_eq!(
            p.failing_for(t0, t0 + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        // The next one goes out on schedule.
        p.tick(t0 + Duration::from_secs(2));
        assert_eq!(p.next_deadline(), t0 + Duration::from_secs(3));
    }

    #[test]
    fn a_closed_port_fails_at_once() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let t0 = Instant::now();
        let mut p = SelfProbe::new(addr, Duration::from_secs(5), Duration::from_secs(1), t0);
        p.tick(t0);
        assert!(!p.ok());
        assert!(
            p.last_error().unwrap().contains("cannot send"),
            "{:?}",
            p.last_error()
        );
        assert_eq!(p.next_deadline(), t0 + Duration::from_secs(5));
    }
}
