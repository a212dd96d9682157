//! HTTP on tiny_http: the listener's socket options, routing, headers and status codes. It
//! answers one request at a time for the loop in `app`; what a scrape contains is `metrics`'
//! and `render`'s business.

pub mod guard;
pub mod pool;
pub mod probe;
pub mod restart;

use std::io;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use tiny_http::{Header, Method, Request, Response, StatusCode};

use crate::host::process::{ProcessReader, ProcessStats};
use crate::log;
use crate::metrics::render::{self, Format};
use crate::metrics::Metrics;

/// Longest a single response write may block the loop (per `write()` call): a client that
/// stops reading costs us at most about this, then its write fails and we move on.
pub const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Sets `TCP_NODELAY` and a send timeout on a listening socket. Linux copies both to every
/// socket `accept()` returns, which is the only way to reach the sockets tiny_http accepts.
///
/// `TCP_NODELAY` matters because tiny_http writes headers and body in separate `write()`s:
/// with Nagle on, a kept-alive response's second write waits for the client's delayed ACK
/// (~40 ms). Std has no setters on listeners, but the options live on the socket, not on the
/// descriptor: a duplicate descriptor, viewed as a `TcpStream`, reaches them safely.
pub fn tune_listener(listener: &TcpListener) -> io::Result<()> {
    pool::tune_listener(listener)?;
    let socket = TcpStream::from(std::os::fd::OwnedFd::from(listener.try_clone()?));
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))
}

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The telemetry path: a scrape.
    Telemetry,
    /// `/`: the landing page.
    Landing,
    /// `/-/healthy`.
    Healthy,
    /// A path we do not serve.
    NotFound,
    /// A path we serve, with a method other than GET or HEAD.
    MethodNotAllowed,
}

/// Routes by path (query and fragment ignored, absolute-form targets accepted) and method.
#[must_use]
pub fn route(method: &Method, target: &str, telemetry_path: &str) -> Route {
    let path = path_of(target);
    let known = path == telemetry_path || path == "/" || path == "/-/healthy";
    if !known {
        return Route::NotFound;
    }
    if !matches!(method, Method::Get | Method::Head) {
        return Route::MethodNotAllowed;
    }
    if path == telemetry_path {
        Route::Telemetry
    } else if path == "/" {
        Route::Landing
    } else {
        Route::Healthy
    }
}

/// The path of a request target: origin-form as is, absolute-form (`http://host/path`) reduced
/// to its path, query and fragment cut off.
fn path_of(target: &str) -> &str {
    let target = match target.split_once("://") {
        Some((scheme, rest)) if !scheme.contains('/') => rest.find('/').map_or("/", |i| &rest[i..]),
        _ => target,
    };
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// Everything needed to answer requests: the routes, the landing page, the reused scrape
/// buffer and the `/proc` reader.
pub struct Site {
    telemetry_path: String,
    landing: String,
    body: String,
    process: ProcessReader,
    /// The latest `/proc` figures and when they were read.
    process_cache: Option<(Instant, ProcessStats)>,
    /// Answer with `Connection: close` (a restart in place is draining).
    closing: bool,
}

/// How old the `process_*` figures in a scrape may be. Reading `/proc` costs ~50 µs, ten
/// times a render; a scraper hammering the endpoint reuses the figures for up to this long,
/// while Prometheus (one scrape every few seconds at most) always gets a fresh read.
pub const PROCESS_MAX_AGE: Duration = Duration::from_secs(1);

impl Site {
    /// A site serving the given telemetry path.
    #[must_use]
    pub fn new(telemetry_path: &str) -> Self {
        Site {
            telemetry_path: telemetry_path.to_owned(),
            landing: landing_page(telemetry_path),
            body: String::with_capacity(8192),
            process: ProcessReader::new(),
            process_cache: None,
            closing: false,
        }
    }

    /// From now on, every answer says `Connection: close` and is the connection's last
    /// (see `restart`: the drain before a restart in place).
    pub fn close_connections(&mut self) {
        self.closing = true;
    }

    /// Renders the current metrics into the reused buffer and returns it; reads `/proc` only
    /// when its last figures are older than [`PROCESS_MAX_AGE`].
    pub fn scrape(&mut self, metrics: &Metrics, format: Format) -> &str {
        let now = Instant::now();
        let process = match self.process_cache {
            Some((at, stats)) if now.saturating_duration_since(at) < PROCESS_MAX_AGE => stats,
            _ => {
                let stats = self.process.read();
                self.process_cache = Some((now, stats));
                stats
            }
        };
        let snapshot = metrics.snapshot(process);
        render::render(&snapshot, format, &mut self.body);
        &self.body
    }

    /// Answers one request and counts it. `unhealthy` is why `/-/healthy` must say 503, if
    /// it must. A client that hung up is logged at debug; nothing a client sends can make
    /// this fail. Returns whether the write timed out: the client stopped reading, and its
    /// connection must be cut before it stalls the loop again.
    pub fn handle(&mut self, request: Request, metrics: &Metrics, unhealthy: Option<&str>) -> bool {
        let route = route(request.method(), request.url(), &self.telemetry_path);
        let mut format = None;
        let seen = log::enabled(log::Level::Debug).then(|| {
            let ua = header_value(&request, "User-Agent")
                .unwrap_or("")
                .to_owned();
            (request.method().to_string(), request.url().to_owned(), ua)
        });
        let close = self.closing;
        let (code, result) = match route {
            Route::Telemetry => {
                let choice = render::negotiate(header_value(&request, "Accept"));
                format = Some(choice.format);
                let content_type = choice.content_type();
                let body = self.scrape(metrics, choice.format);
                (200, respond(request, 200, &content_type, body, None, close))
            }
            Route::Landing => (200, respond(request, 200, HTML, &self.landing, None, close)),
            Route::Healthy => match unhealthy {
                None => (200, respond(request, 200, TEXT, "OK\n", None, close)),
                Some(why) => {
                    let body = format!("unhealthy: {why}\n");
                    (503, respond(request, 503, TEXT, &body, None, close))
                }
            },
            Route::NotFound => (
                404,
                respond(request, 404, TEXT, "404 page not found\n", None, close),
            ),
            Route::MethodNotAllowed => (
                405,
                respond(
                    request,
                    405,
                    TEXT,
                    "method not allowed\n",
                    Some(("Allow", "GET, HEAD")),
                    close,
                ),
            ),
        };
        metrics.count_request(code);
        if let Some((method, path, user_agent)) = seen {
            let format = format.map_or("-", |f| match f {
                Format::Text => "text",
                Format::OpenMetrics => "openmetrics",
            });
            log::debug(
                "request",
                &[
                    ("method", &method),
                    ("path", &path),
                    ("code", &code),
                    ("format", &format),
                    ("user_agent", &user_agent),
                ],
            );
        }
        match result {
            Ok(()) => false,
            Err(e) => {
                log::debug("response not delivered", &[("code", &code), ("err", &e)]);
                matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                )
            }
        }
    }
}

/// Bodies up to this size are small enough for tiny_http to buffer before handing the
/// request over; anything larger (or any `Expect`) reaches the loop with the body unread.
pub const BUFFERED_BODY: u64 = 1024;

/// Largest unread body we let tiny_http "drain" after shutting the socket's read side: its
/// drain allocates the whole remaining length at once (`vec![0; remaining]`) before the read
/// returns EOF, so a larger claim must never reach it.
pub const SAFE_DRAIN: u64 = 16 << 20;

/// What a request announced about a body that tiny_http has not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreadBody {
    /// Small enough to let tiny_http drain once the read side is shut down.
    Drainable,
    /// Too large (or unparsable) to ever let tiny_http drain.
    Absurd,
}

/// Whether `request` comes with a body tiny_http would make us wait for: an `Expect`
/// header, or a `Content-Length` over [`BUFFERED_BODY`]. A scrape has no body.
#[must_use]
pub fn unread_body(request: &Request) -> Option<UnreadBody> {
    let expect = header_value(request, "Expect").is_some();
    // tiny_http ignores Content-Length when Transfer-Encoding is present, and so do we.
    let length = if header_value(request, "Transfer-Encoding").is_some() {
        None
    } else {
        request.body_length().map(|n| n as u64)
    };
    match length {
        Some(n) if n > SAFE_DRAIN => Some(UnreadBody::Absurd),
        Some(n) if n > BUFFERED_BODY || (expect && n > 0) => Some(UnreadBody::Drainable),
        _ if expect => Some(UnreadBody::Drainable),
        _ => None,
    }
}

/// The raw 400 written straight to a socket when a request must not go back through
/// tiny_http (see [`UnreadBody::Absurd`]).
pub const RAW_BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 33\r\nConnection: close\r\n\r\na scrape request carries no body\n";

/// Answers a request whose body we will not read: 400, after the caller shut down the read
/// side of its socket (so tiny_http's drain ends at once).
pub fn reject_body(request: Request, metrics: &Metrics) {
    metrics.count_request(400);
    if let Err(e) = respond(
        request,
        400,
        TEXT,
        "a scrape request carries no body\n",
        None,
        true,
    ) {
        log::debug("response not delivered", &[("code", &400), ("err", &e)]);
    }
}

/// The value of the first header named `name` (case-insensitive).
#[must_use]
pub fn header_value<'r>(request: &'r Request, name: &'static str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Answers the loop's own probe: 200, not counted among clients' requests.
pub fn answer_probe(request: Request) {
    if let Err(e) = respond(request, 200, TEXT, "OK\n", None, false) {
        log::debug("probe response not delivered", &[("err", &e)]);
    }
}

const HTML: &str = "text/html; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

fn header(name: &str, value: &str) -> Header {
    Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("static header names and values are ASCII")
}

fn respond(
    request: Request,
    code: u16,
    content_type: &str,
    body: &str,
    extra: Option<(&str, &str)>,
    close: bool,
) -> io::Result<()> {
    if close {
        return respond_closing(request, code, content_type, body, extra);
    }
    let mut headers = vec![header("Content-Type", content_type)];
    if let Some((name, value)) = extra {
        headers.push(header(name, value));
    }
    let response = Response::new(
        StatusCode(code),
        headers,
        body.as_bytes(),
        Some(body.len()),
        None,
    );
    request.respond(response)
}

/// Writes the whole answer ourselves, with `Connection: close`: tiny_http's `Response` drops
/// any `Connection` header it is given, and a client must learn that this answer is the
/// connection's last before it sends another request on it.
fn respond_closing(
    request: Request,
    code: u16,
    content_type: &str,
    body: &str,
    extra: Option<(&str, &str)>,
) -> io::Result<()> {
    use std::fmt::Write as _;
    use std::io::Write as _;
    let head_only = *request.method() == Method::Head;
    let mut head = String::with_capacity(160);
    let _ = write!(
        head,
        "HTTP/1.1 {code} {}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n",
        StatusCode(code).default_reason_phrase(),
        body.len()
    );
    if let Some((name, value)) = extra {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    // The writer waits its turn behind answers to earlier pipelined requests, like respond().
    let mut writer = request.into_writer();
    let written = writer
        .write_all(head.as_bytes())
        .and_then(|()| {
            if head_only {
                Ok(())
            } else {
                writer.write_all(body.as_bytes())
            }
        })
        .and_then(|()| writer.flush());
    // A client that already hung up is not an error, as in tiny_http's own respond().
    match written {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::BrokenPipe
                    | io::ErrorKind::ConnectionAborted
                    | io::ErrorKind::ConnectionRefused
                    | io::ErrorKind::ConnectionReset
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

fn landing_page(telemetry_path: &str) -> String {
    let mut path = String::new();
    for c in telemetry_path.chars() {
        match c {
            '&' => path.push_str("&amp;"),
            '<' => path.push_str("&lt;"),
            '>' => path.push_str("&gt;"),
            '"' => path.push_str("&quot;"),
            c => path.push(c),
        }
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>widget-exporter</title></head>\n\
         <body>\n<h1>widget-exporter</h1>\n\
         <p>Version {version}. A Prometheus exporter for a simulated widget-processing service.</p>\n\
         <ul>\n<li><a href=\"{path}\">{path}</a>: metrics</li>\n<li><a href=\"/-/healthy\">/-/healthy</a>: health</li>\n</ul>\n\
         </body>\n</html>\n",
        version = env!("CARGO_PKG_VERSION"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        use Route::*;
        let get = Method::Get;
        for (method, target, want) in [
            (&get, "/metrics", Telemetry),
            (&Method::Head, "/metrics", Telemetry),
            (&get, "/metrics?x=1", Telemetry),
            (&get, "/metrics#frag", Telemetry),
            (&get, "http://host:8000/metrics", Telemetry),
            (&get, "http://host", Landing),
            (&get, "/", Landing),
            (&get, "/-/healthy", Healthy),
            (&get, "/metrics/", NotFound),
            (&get, "/METRICS", NotFound),
            (&get, "", NotFound),
            (&get, "*", NotFound),
            (&get, "/a?b=http://c/metrics", NotFound),
            (&Method::Post, "/metrics", MethodNotAllowed),
            (&Method::Options, "/", MethodNotAllowed),
            (&Method::Delete, "/-/healthy", MethodNotAllowed),
            (&Method::Post, "/nope", NotFound),
        ] {
            assert_eq!(route(method, target, "/metrics"), want, "{method} {target}");
        }
        assert_eq!(route(&get, "/custom", "/custom"), Telemetry);
        assert_eq!(route(&get, "/metrics", "/custom"), NotFound);
    }

    #[test]
    fn landing_page_escapes_the_path() {
        let page = landing_page("/a<b>\"&");
        assert!(page.contains("href=\"/a&lt;b&gt;&quot;&amp;\""));
        assert!(page.contains(env!("CARGO_PKG_VERSION")));
    }
}
