//! Body rejection, whole: which requests carry a body we refuse, and how each is refused
//! without the loop ever waiting on the client or tiny_http allocating what the client claims.
//!
//! A scrape has no body. tiny_http buffers a body of up to [`BUFFERED_BODY`] before handing
//! the request over; anything larger (or any `Expect`) reaches the loop unread, and answering
//! it through tiny_http would make the loop wait for the client inside `respond()` (tiny_http
//! drains the body first), or, for an absurd length, abort the process (the drain allocates
//! the whole length at once). So:
//!
//! - a body up to [`SAFE_DRAIN`]: the socket's read side is shut down first, so the drain
//!   sees EOF at once, and the 400 goes out through tiny_http, closing the connection;
//! - a larger (or unparsable) one never reaches the drain: [`RAW_BAD_REQUEST`] goes straight
//!   to the socket, the connection is cut and the request is deliberately leaked. Its
//!   tiny_http thread then waits forever for that request, so the guard counts the
//!   connection as stuck and the output restarts in place (see `restart`: tiny_http 0.12
//!   offers no way to drop such a request without that allocation, nor to free its thread
//!   without dropping it).
//!
//! It owns the rule and its constants; the guard does the socket work (shutting down, the
//! direct write) and `host::sys` the system calls.

use std::net::Shutdown;
use std::time::Instant;

use tiny_http::Request;

use crate::log;
use crate::metrics::{CloseReason, Metrics};
use crate::output::http::guard::Guard;
use crate::output::http::server::{self, header_value};

/// Bodies up to this size are small enough for tiny_http to buffer before handing the
/// request over; anything larger (or any `Expect`) reaches the loop with the body unread.
const BUFFERED_BODY: u64 = 1024;

/// Largest unread body we let tiny_http "drain" after shutting the socket's read side: its
/// drain allocates the whole remaining length at once (`vec![0; remaining]`) before the read
/// returns EOF, so a larger claim must never reach it.
pub(crate) const SAFE_DRAIN: u64 = 16 << 20;

/// The raw 400 written straight to a socket when a request must not go back through
/// tiny_http (see [`Unread::Absurd`]).
const RAW_BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\nConnection: close\r\n\r\na scrape request carries no body\n";

/// What a request announced about a body that tiny_http has not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unread {
    /// Small enough to let tiny_http drain once the read side is shut down.
    Drainable,
    /// Too large (or unparsable) to ever let tiny_http drain.
    Absurd,
}

/// Whether `request` comes with a body tiny_http would make us wait for: an `Expect`
/// header, or a `Content-Length` over [`BUFFERED_BODY`].
#[must_use]
pub(crate) fn unread(request: &Request) -> Option<Unread> {
    let expect = header_value(request, "Expect").is_some();
    // tiny_http ignores Content-Length when Transfer-Encoding is present, and so do we.
    let length = if header_value(request, "Transfer-Encoding").is_some() {
        None
    } else {
        request.body_length().map(|n| n as u64)
    };
    classify(length, expect)
}

/// The rule on plain values: the announced length (if any and if tiny_http uses it) and
/// whether an `Expect` header came.
fn classify(length: Option<u64>, expect: bool) -> Option<Unread> {
    match length {
        Some(n) if n > SAFE_DRAIN => Some(Unread::Absurd),
        Some(n) if n > BUFFERED_BODY || (expect && n > 0) => Some(Unread::Drainable),
        _ if expect => Some(Unread::Drainable),
        _ => None,
    }
}

/// Refuses `request`, whose body is `body`, with a 400 that ends its connection (counted
/// in `metrics`, the connection's close counted as [`CloseReason::Body`]).
pub(crate) fn reject(
    request: Request,
    body: Unread,
    guard: &mut Guard,
    metrics: &Metrics,
    now: Instant,
) {
    let peer = request.remote_addr().copied();
    metrics.http.count_request(400);
    match body {
        Unread::Drainable => {
            // With the read side shut down (or the connection already gone, when it cannot
            // be found) the drain sees EOF at once.
            guard.cut(peer, Shutdown::Read, CloseReason::Body, now, metrics);
            let answer = "a scrape request carries no body\n";
            if let Err(e) = server::respond(
                request,
                &mut String::new(),
                400,
                server::TEXT,
                answer,
                None,
                true,
            ) {
                log::debug("response not delivered", &[("code", &400), ("err", &e)]);
            }
        }
        Unread::Absurd => {
            guard.answer_and_cut(peer, RAW_BAD_REQUEST, CloseReason::Body, now, metrics);
            std::mem::forget(request);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_refused_and_how() {
        use Unread::{Absurd, Drainable};
        for (length, expect, want) in [
            (None, false, None),
            (Some(0), false, None),
            (Some(BUFFERED_BODY), false, None),
            (Some(BUFFERED_BODY + 1), false, Some(Drainable)),
            (Some(SAFE_DRAIN), false, Some(Drainable)),
            (Some(SAFE_DRAIN + 1), false, Some(Absurd)),
            (Some(u64::MAX), false, Some(Absurd)),
            (None, true, Some(Drainable)),
            (Some(0), true, Some(Drainable)),
            (Some(1), true, Some(Drainable)),
            (Some(SAFE_DRAIN + 1), true, Some(Absurd)),
        ] {
            assert_eq!(classify(length, expect), want, "{length:?} expect={expect}");
        }
    }

    #[test]
    fn the_raw_answer_declares_its_body_length() {
        let text = std::str::from_utf8(RAW_BAD_REQUEST).expect("ASCII");
        let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
        assert!(head.starts_with("HTTP/1.1 400 "), "{head}");
        assert!(head.contains("\r\nConnection: close"), "{head}");
        assert!(
            head.contains(&format!("\r\nContent-Length: {}", body.len())),
            "{head}"
        );
    }
}
