//! Shared test support: spawn the real binary on `127.0.0.1:0`, read the bound address from
//! its log, talk to it over raw `TcpStream`s, and find (or visibly skip) outside tools.
#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Path of the binary under test, built by cargo for integration tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_widget-exporter");

/// Whether a missing outside tool must fail the test instead of skipping it.
pub fn tools_required() -> bool {
    std::env::var_os("WIDGET_EXPORTER_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// Prints straight to the terminal: the test harness only captures the print macros, and a
/// skip must be seen even when the test passes.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Finds `name` on `PATH`; when absent prints `skipped: NAME not found` and returns `None`,
/// or panics under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            !tools_required(),
            "{name} not found and WIDGET_EXPORTER_REQUIRE_TOOLS=1"
        );
        say(&format!("skipped: {name} not found"));
    }
    found
}

/// A Python interpreter that can `import prometheus_client`: `$WIDGET_EXPORTER_PYTHON` (set by
/// `.ci/run` to its venv) or `python3`. Skips or fails like [`require_tool`].
pub fn require_prometheus_client() -> Option<PathBuf> {
    let python = std::env::var_os("WIDGET_EXPORTER_PYTHON")
        .map_or_else(|| PathBuf::from("python3"), PathBuf::from);
    let ok = Command::new(&python)
        .args(["-c", "import prometheus_client"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        return Some(python);
    }
    assert!(
        !tools_required(),
        "python prometheus_client not found ({}) and WIDGET_EXPORTER_REQUIRE_TOOLS=1",
        python.display()
    );
    say("skipped: python prometheus_client not found");
    None
}

/// A running exporter; killed when dropped. Its stderr is collected for diagnostics.
pub struct Exporter {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<String>>,
}

impl Exporter {
    /// Starts the binary on `127.0.0.1:0` with extra flags and waits for its "listening" line.
    pub fn start(args: &[&str]) -> Exporter {
        Self::start_with(Command::new(BIN).args(args))
    }

    /// Like [`Exporter::start`] with a prepared command (env, wrappers); the listen address is added.
    pub fn start_with(cmd: &mut Command) -> Exporter {
        let mut child = cmd
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn widget-exporter");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = listening_address(&line) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = sink.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(20)) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "exporter never logged its address; log:\n{}",
                log.lock().unwrap()
            );
        };
        Exporter {
            child,
            addr: addr.parse().expect("logged address parses"),
            log,
        }
    }

    /// Everything the exporter logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// One request on a fresh connection (`Connection: close`).
    pub fn get(&self, path: &str) -> Response {
        request(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"),
        )
    }

    /// GET with extra header lines (each ending in `\r\n`).
    pub fn get_with(&self, path: &str, headers: &str) -> Response {
        request(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: test\r\n{headers}Connection: close\r\n\r\n"),
        )
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address of a "listening" line, logfmt or JSON.
fn listening_address(line: &str) -> Option<String> {
    if line.contains("msg=listening") {
        return field(line, "address");
    }
    let rest = line.split_once("\"msg\":\"listening\"")?.1;
    let start = rest.find("\"address\":\"")? + "\"address\":\"".len();
    Some(rest[start..].split('"').next()?.to_string())
}

/// The value of `key=` in a logfmt line (unquoted values only).
pub fn field(line: &str, key: &str) -> Option<String> {
    let pat = format!(" {key}=");
    let start = line.find(&pat)? + pat.len();
    Some(
        line[start..]
            .split(' ')
            .next()?
            .trim_matches('"')
            .to_string(),
    )
}

/// A parsed HTTP response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends raw bytes on a fresh connection and reads one response until the server closes.
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(raw.as_bytes()).expect("send request");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).expect("read response");
    parse_response(&buf).unwrap_or_else(|| {
        panic!(
            "unparsable response to {raw:?}: {:?}",
            String::from_utf8_lossy(&buf)
        )
    })
}

/// Parses one response (the first one in `buf`), honouring Content-Length when present; a
/// shorter body (a HEAD response) is taken as it is.
pub fn parse_response(buf: &[u8]) -> Option<Response> {
    let text = std::str::from_utf8(buf).ok()?;
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(rest.len());
    Some(Response {
        status,
        headers,
        body: rest.get(..len).unwrap_or(rest).to_string(),
    })
}

/// A kept-alive connection for several requests in a row.
pub struct KeepAlive {
    stream: TcpStream,
    pending: Vec<u8>,
}

impl KeepAlive {
    pub fn connect(addr: SocketAddr) -> KeepAlive {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        KeepAlive {
            stream,
            pending: Vec::new(),
        }
    }

    /// Sends one request and reads exactly one response (by Content-Length).
    pub fn send(&mut self, raw: &str) -> Response {
        self.stream.write_all(raw.as_bytes()).expect("send");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(end) = find(&self.pending, b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&self.pending[..end]).to_string();
                let len = head
                    .lines()
                    .filter_map(|l| l.split_once(':'))
                    .find(|(k, _)| k.trim().eq_ignore_ascii_case("content-length"))
                    .and_then(|(_, v)| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                let body_len = if raw.starts_with("HEAD ") { 0 } else { len };
                if self.pending.len() >= end + 4 + body_len {
                    let rest = self.pending.split_off(end + 4 + body_len);
                    let parsed = parse_response(&self.pending).expect("parsable response");
                    self.pending = rest;
                    return Response {
                        body: if body_len == 0 {
                            String::new()
                        } else {
                            parsed.body
                        },
                        ..parsed
                    };
                }
            }
            assert!(Instant::now() < deadline, "response timed out");
            let mut chunk = [0u8; 16384];
            let n = self.stream.read(&mut chunk).expect("read");
            assert!(n > 0, "server closed a kept-alive connection");
            self.pending.extend_from_slice(&chunk[..n]);
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Runs a command to completion and returns (success, stdout, stderr), panicking with
/// everything shown when it could not even start.
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
