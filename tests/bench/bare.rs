//! The benchmark's design limit: a bare tiny_http 0.12 server, one thread answering every
//! request out of `recv_timeout` with a fixed body of N bytes, `TCP_NODELAY` on its listener.
//! It is what the exporter is built on, minus everything the exporter adds (the simulation,
//! the guard, the self-probe, malloc tuning, stack size, send timeouts, answers framed and
//! sent in one write instead of through tiny_http's `Response`), so
//! `tests/bench/run.sh` can show which part of a gap to the raw-socket ceiling is tiny_http's
//! own and which part is ours. It must stay bare: nothing of the exporter's runtime is used.
//!
//! `--bytes N` sets the body size (default 1024), `--listen ADDR` the address (default
//! `127.0.0.1:0`). It prints `listening ADDR` on stderr once bound.

#[path = "flags.rs"]
mod flags;

use std::net::{TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

fn main() -> ExitCode {
    let (listen, bytes) =
        match flags::parse(std::env::args().skip(1)).map(|(l, b)| (l, b.unwrap_or(1024))) {
            Ok(parsed) => parsed,
            Err(e) => {
                eprintln!("bare: {e}\nusage: bare [--bytes N] [--listen ADDR]");
                return ExitCode::from(2);
            }
        };
    let listener = match TcpListener::bind(&listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("bare: cannot listen on {listen}: {e}");
            return ExitCode::FAILURE;
        }
    };
    // TCP_NODELAY on the listener is inherited by every accepted socket on Linux.
    let nodelay = listener
        .try_clone()
        .and_then(|l| TcpStream::from(OwnedFd::from(l)).set_nodelay(true));
    if let Err(e) = nodelay {
        eprintln!("bare: setting TCP_NODELAY: {e}");
        return ExitCode::FAILURE;
    }
    let addr = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("bare: reading the bound address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let server = match tiny_http::Server::from_listener(listener, None) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bare: cannot start tiny_http: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening {addr}");
    let body = body(bytes);
    let content_type = tiny_http::Header::from_bytes(
        &b"Content-Type"[..],
        &b"text/plain; version=0.0.4; charset=utf-8"[..],
    )
    .expect("a constant, valid header");
    loop {
        match server.recv_timeout(Duration::from_secs(1)) {
            Ok(Some(request)) => {
                let response =
                    tiny_http::Response::from_data(body.clone()).with_header(content_type.clone());
                // A client that hung up costs only its own answer.
                let _ = request.respond(response);
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("bare: tiny_http stopped: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
}

/// `bytes` of exposition-like text.
fn body(bytes: usize) -> Vec<u8> {
    let line = b"widget_bare_sample_total 1234567\n";
    line.iter().copied().cycle().take(bytes).collect()
}
