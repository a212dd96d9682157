//! The site: routing, the landing page, headers and status codes, the reused scrape and
//! answer buffers, and the answer itself: framed here (status line, `Date`,
//! `Content-Length`, `Connection`) and written in one send. It answers one request at a time
//! for the HTTP output; what a scrape contains is `metrics`' and `render`'s business, which
//! requests deserve an answer is the output's.

use std::io;
use std::time::{Duration, Instant};

use tiny_http::{HTTPVersion, Method, Request, StatusCode};

use crate::host::clock;
use crate::host::process::{ProcessReader, ProcessStats};
use crate::log;
use crate::metrics::render::{self, Format};
use crate::metrics::Metrics;

/// Where a request goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
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
fn route(method: &Method, target: &str, telemetry_path: &str) -> Route {
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
/// and answer buffers and the `/proc` reader.
pub struct Site {
    telemetry_path: String,
    landing: String,
    body: String,
    /// Where each answer is composed, head and body, before its one write (see [`respond`]).
    answer: String,
    process: ProcessReader,
    /// The latest `/proc` figures and when they were read.
    process_cache: Option<(Instant, ProcessStats)>,
    /// Answer with `Connection: close` (a restart in place is draining).
    closing: bool,
}

/// How old the `process_*` figures in a scrape may be. Reading `/proc` costs ~50 µs, ten
/// times a render; a scraper hammering the endpoint reuses the figures for up to this long,
/// while Prometheus (one scrape every few seconds at most) always gets a fresh read.
const PROCESS_MAX_AGE: Duration = Duration::from_secs(1);

impl Site {
    /// A site serving the given telemetry path, for a widget-processing service whose
    /// source it does not name (see `Site::describing`).
    #[must_use]
    pub fn new(telemetry_path: &str) -> Self {
        Site {
            telemetry_path: telemetry_path.to_owned(),
            landing: landing_page(telemetry_path, "a widget-processing service"),
            body: String::with_capacity(8192),
            answer: String::with_capacity(8192),
            process: ProcessReader::new(),
            process_cache: None,
            closing: false,
        }
    }

    /// The site whose landing page says what the numbers are of: `about` is the source's
    /// phrase ("a widget-processing service, counted from its log"), so that an operator
    /// reads what is true for the source in use.
    #[must_use]
    pub(crate) fn describing(mut self, about: &str) -> Self {
        self.landing = landing_page(&self.telemetry_path, about);
        self
    }

    /// From now on, every answer says `Connection: close` and is the connection's last
    /// (see `restart`: the drain before a restart in place).
    pub(crate) fn close_connections(&mut self) {
        self.closing = true;
    }

    /// Renders the current metrics into the reused buffer and returns it; reads `/proc` only
    /// when its last figures are older than `PROCESS_MAX_AGE`.
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
    pub(crate) fn handle(
        &mut self,
        request: Request,
        metrics: &Metrics,
        unhealthy: Option<&str>,
    ) -> bool {
        let route = route(request.method(), request.url(), &self.telemetry_path);
        let mut format = None;
        let seen = log::enabled(log::Level::Debug).then(|| {
            let ua = header_value(&request, "User-Agent")
                .unwrap_or("")
                .to_owned();
            (request.method().to_string(), request.url().to_owned(), ua)
        });
        let close = self.closing;
        // What the answers borrow that is built per request.
        let scrape_type: String;
        let unhealthy_body: String;
        let (code, content_type, body, extra): (u16, &str, &str, _) = match route {
            Route::Telemetry => {
                let choice = render::negotiate(header_value(&request, "Accept"));
                format = Some(choice.format);
                scrape_type = choice.content_type();
                self.scrape(metrics, choice.format);
                (200, &scrape_type, &self.body, None)
            }
            Route::Landing => (200, HTML, &self.landing, None),
            Route::Healthy => match unhealthy {
                None => (200, TEXT, "OK\n", None),
                Some(why) => {
                    unhealthy_body = format!("unhealthy: {why}\n");
                    (503, TEXT, &unhealthy_body, None)
                }
            },
            Route::NotFound => (404, TEXT, "404 page not found\n", None),
            Route::MethodNotAllowed => (
                405,
                TEXT,
                "method not allowed\n",
                Some(("Allow", "GET, HEAD")),
            ),
        };
        let result = respond(
            request,
            &mut self.answer,
            code,
            content_type,
            body,
            extra,
            close,
        );
        metrics.http.count_request(code);
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

/// The value of the first header named `name` (case-insensitive).
#[must_use]
pub(crate) fn header_value<'r>(request: &'r Request, name: &'static str) -> Option<&'r str> {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Answers the loop's own probe: 200, not counted among clients' requests.
pub(crate) fn answer_probe(request: Request) {
    if let Err(e) = respond(request, &mut String::new(), 200, TEXT, "OK\n", None, false) {
        log::debug("probe response not delivered", &[("err", &e)]);
    }
}

const HTML: &str = "text/html; charset=utf-8";
pub(crate) const TEXT: &str = "text/plain; charset=utf-8";

/// Answers `request`; with `close`, as the connection's last answer. The answer is
/// composed in `buf` (cleared first): the HTTP output reuses one, so that a scrape's answer
/// costs no allocation of its size.
///
/// The whole answer (status line, headers, body) goes out in one write, past tiny_http's
/// `Response`: that one gives its 1 KiB buffer the head and flushes it alone before the body,
/// two sends and two TCP segments per scrape, and it drops any `Connection` header it is
/// given. The writer still waits its turn behind answers to earlier pipelined requests, and
/// dropping it lets tiny_http go on with the connection.
pub(crate) fn respond(
    request: Request,
    buf: &mut String,
    code: u16,
    content_type: &str,
    body: &str,
    extra: Option<(&str, &str)>,
    close: bool,
) -> io::Result<()> {
    use std::io::Write as _;
    let connection = header_value(&request, "Connection");
    let http10 = *request.http_version() == HTTPVersion(1, 0);
    let answer = buf;
    answer.clear();
    // Per request, so without `core::fmt`.
    answer.push_str("HTTP/1.1 ");
    render::write_u64(answer, u64::from(code));
    answer.push(' ');
    answer.push_str(StatusCode(code).default_reason_phrase());
    answer.push_str("\r\nDate: ");
    clock::write_http_date(answer, clock::unix_time());
    answer.push_str("\r\nContent-Type: ");
    answer.push_str(content_type);
    answer.push_str("\r\nContent-Length: ");
    render::write_u64(answer, body.len() as u64);
    answer.push_str("\r\n");
    if let Some((name, value)) = extra {
        for part in [name, ": ", value, "\r\n"] {
            answer.push_str(part);
        }
    }
    match persistence(connection, http10, close) {
        Persistence::Close => answer.push_str("Connection: close\r\n"),
        Persistence::KeepAlive10 => answer.push_str("Connection: keep-alive\r\n"),
        Persistence::KeepAlive => {}
    }
    answer.push_str("\r\n");
    if *request.method() != Method::Head {
        answer.push_str(body);
    }
    let mut writer = request.into_writer();
    let written = writer
        .write_all(answer.as_bytes())
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

/// What an answer says of its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Persistence {
    /// `Connection: close`: the connection's last answer.
    Close,
    /// Nothing: HTTP/1.1 keeps the connection by default.
    KeepAlive,
    /// `Connection: keep-alive`: an HTTP/1.0 client keeps it only when told so.
    KeepAlive10,
}

/// Whether the answer ends its connection: when `close` (a restart in place is draining),
/// and whenever tiny_http reads no further request on it (its own rule, in
/// `ClientConnection::next`: a `Connection` header naming `close` or `upgrade`, or HTTP/1.0
/// without `keep-alive`), so that the client learns it from the answer.
fn persistence(connection: Option<&str>, http10: bool, close: bool) -> Persistence {
    let connection = connection.map(str::to_ascii_lowercase);
    let asked = |token: &str| connection.as_deref().is_some_and(|v| v.contains(token));
    if close || asked("close") || asked("upgrade") || (http10 && !asked("keep-alive")) {
        Persistence::Close
    } else if http10 {
        Persistence::KeepAlive10
    } else {
        Persistence::KeepAlive
    }
}

fn landing_page(telemetry_path: &str, about: &str) -> String {
    let escape = |text: &str| {
        let mut out = String::new();
        for c in text.chars() {
            match c {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                c => out.push(c),
            }
        }
        out
    };
    let path = escape(telemetry_path);
    let about = escape(about);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>widget-exporter</title></head>\n\
         <body>\n<h1>widget-exporter</h1>\n\
         <p>Version {version}. A Prometheus exporter for {about}.</p>\n\
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
    fn persistence_follows_tiny_http_and_the_drain() {
        use Persistence::*;
        for (connection, http10, close, want) in [
            (None, false, false, KeepAlive),
            (None, false, true, Close),
            (Some("close"), false, false, Close),
            (Some("Keep-Alive, Close"), false, false, Close),
            (Some("Upgrade"), false, false, Close),
            (Some("keep-alive"), false, false, KeepAlive),
            (None, true, false, Close),
            (Some("Keep-Alive"), true, false, KeepAlive10),
            (Some("keep-alive"), true, true, Close),
            (Some("te"), true, false, Close),
        ] {
            assert_eq!(
                persistence(connection, http10, close),
                want,
                "{connection:?} http10={http10} close={close}"
            );
        }
    }

    #[test]
    fn landing_page_escapes_the_path() {
        let page = landing_page("/a<b>\"&", "a <b>");
        assert!(page.contains("href=\"/a&lt;b&gt;&quot;&amp;\""));
        assert!(page.contains(env!("CARGO_PKG_VERSION")));
        assert!(
            page.contains("A Prometheus exporter for a &lt;b&gt;.</p>"),
            "{page}"
        );
    }
}
