//! The benchmark's ceiling: the least an HTTP/1.1 keep-alive server can do to answer a scrape
//! with std alone, returning a fixed body of N bytes. `tests/bench/run.sh` measures the
//! exporter against it in the same run, so the ratio says what tiny_http and our loop cost
//! on top of the kernel, the loopback and `wrk` itself.
//!
//! Std has no readiness API (no epoll), so with std only the practical upper bound for many
//! keep-alive connections is one blocking thread per connection: each connection is served by
//! one thread that reads, finds the end of each request header and writes the canned answer.
//! It parses nothing else (no method, path or headers), answers every pipelined request in the
//! buffer, closes on EOF, and sets `TCP_NODELAY` on each accepted stream.
//!
//! `--bytes N` sets the body size (default: what a fresh exporter renders for `/metrics`),
//! `--listen ADDR` the address (default `127.0.0.1:0`). It prints `listening ADDR` on stderr
//! once bound.

#[path = "flags.rs"]
mod flags;

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::ExitCode;
use std::sync::Arc;

use widget_exporter::metrics::render::Format;
use widget_exporter::metrics::Metrics;
use widget_exporter::output::http::Site;

/// Longest request header accepted; a longer one closes the connection.
const MAX_HEADER: usize = 8192;

fn main() -> ExitCode {
    let (listen, bytes) = match flags::parse(std::env::args().skip(1))
        .map(|(l, b)| (l, b.unwrap_or_else(default_bytes)))
    {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("ceiling: {e}\nusage: ceiling [--bytes N] [--listen ADDR]");
            return ExitCode::from(2);
        }
    };
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("ceiling: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => eprintln!("listening {addr}"),
        Err(e) => {
            eprintln!("ceiling: reading the bound address: {e}");
            return ExitCode::FAILURE;
        }
    }
    let response: Arc<[u8]> = canned_response(bytes).into();
    for stream in listener.incoming() {
        // A failed accept (e.g. the peer reset before we got to it) costs that one connection.
        let Ok(stream) = stream else { continue };
        let response = Arc::clone(&response);
        std::thread::spawn(move || {
            let _ = serve(stream, &response);
        });
    }
    ExitCode::SUCCESS
}

/// The size of what a fresh exporter serves on `/metrics` in the text format.
fn default_bytes() -> usize {
    Site::new("/metrics")
        .scrape(&Metrics::default(), Format::Text)
        .len()
}

/// Status line, the two headers a scraper needs, and `bytes` of exposition-like text.
fn canned_response(bytes: usize) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {bytes}\r\n\r\n"
    )
    .into_bytes();
    let line = b"widget_ceiling_sample_total 1234567\n";
    out.extend(line.iter().cycle().take(bytes));
    out
}

/// Answers every complete request header in the buffer, then reads more; returns on EOF.
fn serve(mut stream: TcpStream, response: &[u8]) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut buf = [0u8; MAX_HEADER];
    let mut filled = 0;
    loop {
        let n = stream.read(&mut buf[filled..])?;
        if n == 0 {
            return Ok(());
        }
        // Only the new bytes (and the 3 before them) can complete a header.
        let mut scan = filled.saturating_sub(3);
        filled += n;
        let mut start = 0;
        while let Some(end) = find_header_end(&buf[scan..filled]) {
            stream.write_all(response)?;
            start = scan + end;
            scan = start;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            return Ok(());
        }
    }
}

/// The index just past the first `\r\n\r\n`, if any.
fn find_header_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}
