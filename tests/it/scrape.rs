//! The real binary over plain TCP: routes, status codes, headers, both formats, keep-alive,
//! counters that only go up, and a scrape answered at once while a widget is processing.

// Counters are printed as exact integers; comparing them exactly is the point.
#![allow(clippy::float_cmp)]

use std::time::{Duration, Instant};

use crate::support;
use crate::support::{expect_sample, Exporter, KeepAlive, TempDir, FAST};

const PROMETHEUS_ACCEPT: &str = "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n";

#[test]
fn text_format_by_default() {
    let e = Exporter::start(&[]);
    let r = e.get("/metrics");
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        r.header("Content-Type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.body.ends_with('\n'));
    assert!(!r.body.contains("# EOF"));
    assert!(r.body.contains("# TYPE widgets_processed_total counter\n"));
    assert!(r.body.contains("widget_exporter_build_info{version=\""));
    for code in ["200", "400", "404", "405"] {
        assert!(
            r.body.contains(&format!(
                "widget_exporter_http_requests_total{{code=\"{code}\"}} "
            )),
            "code {code} present from the start"
        );
    }
    for family in [
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
        "process_virtual_memory_bytes",
    ] {
        assert!(r.body.contains(&format!("\n{family} ")), "{family}");
    }
}

#[test]
fn openmetrics_when_preferred() {
    let e = Exporter::start(&[]);
    let r = e.get_with("/metrics", PROMETHEUS_ACCEPT);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(r.body.ends_with("\n# EOF\n"), "{}", r.body);
    assert!(r.body.contains("# TYPE widgets_processed counter\n"));
    assert!(r.body.contains("# TYPE widget_exporter_build info\n"));
    // A client that asks for text only still gets text.
    let r = e.get_with("/metrics", "Accept: text/plain;version=0.0.4\r\n");
    assert!(r.header("Content-Type").unwrap().starts_with("text/plain"));
}

/// Prometheus 3's default Accept header, and the one with protobuf (which we do not serve)
/// first: OpenMetrics 1.0.0 named back with the escaping asked for, never a 406. A scraper
/// that asks for text 1.0.0 only gets it named as such (the body is valid in both).
#[test]
fn prometheus_3_negotiation() {
    const OM3: &str = "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1";
    let e = Exporter::start(&[]);
    for (accept, want) in [
        (OM3.to_owned(), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
        (format!("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,{OM3}"), "application/openmetrics-text; version=1.0.0; charset=utf-8; escaping=allow-utf-8"),
        ("text/plain;version=1.0.0;escaping=underscores".to_owned(), "text/plain; version=1.0.0; charset=utf-8; escaping=underscores"),
        ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited".to_owned(), "text/plain; version=0.0.4; charset=utf-8"),
    ] {
        let r = e.get_with("/metrics", &format!("Accept: {accept}\r\n"));
        assert_eq!(r.status, 200, "{accept}");
        assert_eq!(r.header("Content-Type"), Some(want), "{accept}");
        assert_eq!(
            r.body.ends_with("# EOF\n"),
            want.starts_with("application/openmetrics-text"),
            "{accept}"
        );
    }
}

#[test]
fn other_routes_and_methods() {
    let e = Exporter::start(&["--web.telemetry-path=/custom"]);
    let r = e.get("/");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    assert!(r.body.contains("href=\"/custom\""), "{}", r.body);
    assert!(r.body.contains(env!("CARGO_PKG_VERSION")));
    let r = e.get("/-/healthy");
    assert_eq!((r.status, r.body.as_str()), (200, "OK\n"));
    assert_eq!(e.get("/custom").status, 200);
    assert_eq!(e.get("/metrics").status, 404);
    assert_eq!(e.get("/nope").status, 404);
    let r = support::request(
        e.addr,
        "POST /custom HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("GET, HEAD"));
    let r = support::request(
        e.addr,
        "HEAD /custom HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert!(r.body.is_empty(), "HEAD has no body");
    let len: usize = r.header("Content-Length").unwrap().parse().unwrap();
    assert!(
        len > 1000,
        "HEAD announces the GET body's length, got {len}"
    );
    // Every answer above was counted under its code.
    let body = e.get("/custom").body;
    assert_eq!(
        expect_sample(&body, "widget_exporter_http_requests_total{code=\"404\"}"),
        2.0
    );
    assert_eq!(
        expect_sample(&body, "widget_exporter_http_requests_total{code=\"405\"}"),
        1.0
    );
    assert!(expect_sample(&body, "widget_exporter_http_requests_total{code=\"200\"}") >= 4.0);
}

#[test]
fn keep_alive_serves_many_requests_on_one_connection() {
    let e = Exporter::start(&[]);
    let mut conn = KeepAlive::connect(e.addr);
    for i in 0..20 {
        let path = if i % 2 == 0 { "/metrics" } else { "/-/healthy" };
        let r = conn.send(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n"));
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(
            r.header("Connection")
                .map(str::to_ascii_lowercase)
                .as_deref()
                .unwrap_or("keep-alive"),
            "keep-alive"
        );
    }
    let r = conn.send("HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    let r = conn.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert!(
        r.body.starts_with("# HELP"),
        "the connection stays in sync after HEAD"
    );
}

/// The exporter frames every answer itself (one write each): a `Date` in IMF-fixdate, a
/// `Content-Length`, and a `Connection` header that says what happens to the connection
/// next, which the server then does.
#[test]
fn answers_say_what_becomes_of_their_connection() {
    use std::io::{Read, Write};
    let e = Exporter::start(&[]);
    let deadline = || Instant::now() + Duration::from_secs(10);
    let open = || support::connect(e.addr, Duration::from_secs(5)).expect("connect");
    // The server hung up: the next read sees EOF (or a reset), never more bytes.
    let closed = |s: &mut std::net::TcpStream| {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut byte = [0u8; 1];
        matches!(s.read(&mut byte), Ok(0) | Err(_))
    };

    // HTTP/1.1, nothing said: kept, and the header names the date in GMT.
    let r = support::request(e.addr, "GET /-/healthy HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.body.as_str()), (200, "OK\n"));
    assert_eq!(r.header("Connection"), None, "{:?}", r.headers);
    assert_eq!(r.header("Content-Length"), Some("3"));
    let date = r.header("Date").expect("a Date header");
    let parts: Vec<&str> = date.split([' ', ':']).collect();
    assert!(
        parts.len() == 8
            && ["Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,", "Sun,"].contains(&parts[0])
            && parts[1].len() == 2
            && parts[3].len() == 4
            && parts[7] == "GMT",
        "IMF-fixdate: {date}"
    );

    // HTTP/1.1 asking to close: told so, then closed.
    for (raw, why) in [
        (
            "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            "close",
        ),
        ("GET /metrics HTTP/1.0\r\n\r\n", "HTTP/1.0"),
        ("HEAD /metrics HTTP/1.0\r\n\r\n", "HEAD over HTTP/1.0"),
    ] {
        let mut s = open();
        s.write_all(raw.as_bytes()).unwrap();
        let r =
            support::read_response(&mut s, &mut Vec::new(), deadline(), raw.starts_with("HEAD"))
                .unwrap_or_else(|err| panic!("{why}: {err}"));
        assert_eq!(r.status, 200, "{why}");
        assert!(r.closes(), "{why}: {:?}", r.headers);
        assert!(closed(&mut s), "{why}: the server kept the connection");
    }

    // HTTP/1.0 with keep-alive: told it is kept, and it is.
    let mut s = open();
    let mut pending = Vec::new();
    for i in 0..3 {
        s.write_all(b"GET /-/healthy HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = support::read_response(&mut s, &mut pending, deadline(), false)
            .unwrap_or_else(|err| panic!("HTTP/1.0 keep-alive, request {i}: {err}"));
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Connection")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("keep-alive"),
            "request {i}"
        );
    }

    // Pipelined in one write: answered in order, each whole, the last one closing.
    let mut s = open();
    s.write_all(
        b"GET /-/healthy HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /nope HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    let mut pending = Vec::new();
    let mut read = |head| support::read_response(&mut s, &mut pending, deadline(), head).unwrap();
    let (healthy, missing, head, last) = (read(false), read(false), read(true), read(false));
    assert_eq!((healthy.status, healthy.body.as_str()), (200, "OK\n"));
    assert_eq!(missing.status, 404);
    assert_eq!(head.status, 200);
    let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
    assert!(
        length > 1000,
        "HEAD announces the scrape's length: {length}"
    );
    assert!(last.body.starts_with("# HELP"), "{}", last.body);
    assert_eq!(
        last.body.len(),
        last.header("Content-Length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    assert!(last.closes() && !healthy.closes() && !missing.closes() && !head.closes());
    assert!(
        pending.is_empty(),
        "bytes after the last answer: {pending:?}"
    );
}

#[test]
fn counters_only_go_up_and_agree() {
    let e = Exporter::start(FAST);
    let mut last = (0.0, 0.0, 0.0);
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(150));
        let body = e.get("/metrics").body;
        let processed = expect_sample(&body, "widgets_processed_total");
        let failed = expect_sample(&body, "widgets_failed_total");
        let count = expect_sample(&body, "widget_processing_duration_seconds_count");
        let inf = expect_sample(
            &body,
            "widget_processing_duration_seconds_bucket{le=\"+Inf\"}",
        );
        let sum = expect_sample(&body, "widget_processing_duration_seconds_sum");
        assert_eq!(count, inf);
        assert_eq!(count, processed);
        assert!(failed <= processed);
        assert!(
            processed >= last.0 && failed >= last.1 && sum >= last.2,
            "{body}"
        );
        // FAST's 5–10 ms widgets: the histogram puts them all at or under 25 ms.
        assert_eq!(
            expect_sample(
                &body,
                "widget_processing_duration_seconds_bucket{le=\"0.025\"}"
            ),
            count
        );
        last = (processed, failed, sum);
    }
    assert!(last.0 > 10.0, "widgets kept being processed: {last:?}");
    assert!(
        last.1 > 0.0,
        "failure ratio 0.5 produced failures: {last:?}"
    );
    let body = e.get("/metrics").body;
    let avg = expect_sample(&body, "average_processing_time_seconds");
    assert!(
        (0.005..=0.010).contains(&avg),
        "mean of FAST's 5-10 ms widgets: {avg}"
    );
    let ts = expect_sample(&body, "widget_last_processed_timestamp_seconds");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!((now - ts).abs() < 60.0, "last processed {ts} vs now {now}");
}

#[test]
fn scrape_is_answered_while_a_long_widget_processes() {
    let _shared = support::machine_shared();
    let e = Exporter::start(&["--widget.min-duration=20s", "--widget.max-duration=20s"]);
    // The first widget starts at once and takes 20 s of simulated time.
    let body = e.get("/metrics").body;
    assert_eq!(expect_sample(&body, "widgets_in_progress"), 1.0);
    for _ in 0..3 {
        let t = Instant::now();
        let r = e.get("/metrics");
        let took = t.elapsed();
        assert_eq!(r.status, 200);
        // Generous: behaviour (no blocking sleep), not a benchmark.
        assert!(took < Duration::from_secs(2), "scrape took {took:?}");
        assert_eq!(expect_sample(&r.body, "widgets_processed_total"), 0.0);
    }
    // Nothing has finished, so the window is empty and says so.
    assert!(body.contains("\naverage_processing_time_seconds NaN\n"));
    assert!(body.contains("\nwidget_last_processed_timestamp_seconds 0\n"));
}

#[test]
fn logs_name_the_version_and_settings() {
    let e = Exporter::start(&["--widget.seed=42"]);
    let log = e.log();
    let start = log
        .lines()
        .find(|l| l.contains("msg=\"starting widget-exporter\""))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        start.contains(&format!("version={}", env!("CARGO_PKG_VERSION"))),
        "{start}"
    );
    assert!(
        start.contains(" widget.seed=42 ")
            && start.contains(" widget.interval=1s ")
            && start.contains(" widget.source=simulation "),
        "{start}"
    );
    assert!(
        log.lines().all(|l| l.starts_with("ts=")),
        "one logfmt line per event:\n{log}"
    );
}

#[test]
fn no_request_lines_at_the_default_level() {
    let dir = TempDir::new("scrape-quiet");
    let out = dir.join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let file = out.join("w.prom");
    let e = Exporter::start(&[
        &format!("--textfile.path={}", file.display()),
        "--textfile.interval=50ms",
    ]);
    assert_eq!(e.get("/metrics").status, 200);
    // The loop logs a request (at debug) right after answering it, before it goes on to any
    // other work. Once the answer is here, a textfile write that fails comes later, so its
    // warning in the log proves that the request's line would be there too.
    std::fs::remove_dir_all(&out).expect("remove the textfile's directory");
    e.wait_for_log("cannot write the textfile", Duration::from_secs(10));
    assert!(!e.log().contains("msg=request"), "{}", e.log());
}

#[test]
fn json_logs_and_debug_requests() {
    let e = Exporter::start_with(
        std::process::Command::new(support::binary())
            .args(["--log.format=json", "--log.level=debug"]),
    );
    e.get("/nope");
    e.wait_for_log("\"msg\":\"request\"", Duration::from_secs(10));
    let log = e.log();
    assert!(
        log.lines()
            .all(|l| l.starts_with("{\"ts\":\"") && l.ends_with('}')),
        "{log}"
    );
    assert!(
        log.contains("\"msg\":\"request\"") && log.contains("\"code\":404"),
        "{log}"
    );
}

#[test]
fn sixteen_busy_keep_alive_clients_get_only_200s() {
    let _alone = support::machine_alone();
    // Enough back-to-back requests that the loop drains its queue to the cap again and again:
    // a request taken from the queue and then dropped would go out as a bare 500.
    let e = Exporter::start(&[]);
    let addr = e.addr;
    let workers: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut conn = KeepAlive::connect(addr);
                (0..150)
                    .map(|_| conn.send("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n").status)
                    .filter(|&s| s != 200)
                    .count()
            })
        })
        .collect();
    let bad: usize = workers.into_iter().map(|w| w.join().unwrap()).sum();
    assert_eq!(
        bad,
        0,
        "non-200 answers among 2400 scrapes; log:\n{}",
        e.log()
    );
}
