//! Shared test support: spawn the real binary on `127.0.0.1:0`, read the bound address from
//! its log, talk to it over raw `TcpStream`s, and find (or visibly skip) outside tools.
#![allow(dead_code)] // each test crate uses its own subset

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// A directory of its own under the system temp dir, removed when dropped (also on panic).
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A fresh, empty directory whose name carries `tag`, the test's pid and a counter.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("widget-exporter-{tag}-{}-{n}", std::process::id()));
        // A leftover from a killed run whose pid was recycled.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// xorshift64* seeded through splitmix64: small, std-only and reproducible from one number.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent` %.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// Up to `max` bytes, biased toward ASCII and the bytes parsers care about.
    pub fn bytes(&mut self, max: usize) -> Vec<u8> {
        const SPECIAL: &[u8] = b" \t\r\n:;,=.-+()/*\"'\\0123456789";
        let len = self.below(max + 1);
        (0..len)
            .map(|_| match self.below(4) {
                0 => *self.pick(SPECIAL),
                1 => b'a' + (self.next() % 26) as u8,
                2 => self.next() as u8,
                _ => 0x20 + (self.next() % 95) as u8,
            })
            .collect()
    }

    /// A string of up to `max` chars, some of them multi-byte.
    pub fn text(&mut self, max: usize) -> String {
        const ODD: &[char] = &['µ', 'μ', 'é', '\u{0}', '\u{7f}', '\u{feff}', '€', '𝄞', 'İ'];
        let len = self.below(max + 1);
        (0..len)
            .map(|_| {
                if self.chance(10) {
                    *self.pick(ODD)
                } else {
                    char::from(0x20 + (self.next() % 95) as u8)
                }
            })
            .collect()
    }

    /// A random duration across magnitudes, nanoseconds to centuries.
    pub fn duration(&mut self) -> Duration {
        let shift = self.below(64) as u32;
        Duration::from_nanos(self.next() >> shift)
    }

    /// Random edits of `input`: flips, inserts, deletions, truncation, splices of itself.
    pub fn mutate(&mut self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        for _ in 0..=self.below(8) {
            let at = self.below(out.len() + 1);
            match self.below(7) {
                0 if !out.is_empty() => {
                    let i = self.below(out.len());
                    out[i] = self.next() as u8;
                }
                1 => {
                    let junk = self.bytes(8);
                    out.splice(at..at, junk);
                }
                2 if at < out.len() => {
                    let end = (at + 1 + self.below(16)).min(out.len());
                    out.drain(at..end);
                }
                3 => out.truncate(at),
                4 if !out.is_empty() => {
                    let from = self.below(out.len());
                    let end = (from + 1 + self.below(64)).min(out.len());
                    let piece = out[from..end].to_vec();
                    out.splice(at..at, piece);
                }
                5 => {
                    const TOKENS: &[&[u8]] = &[
                        b"18446744073709551615",
                        b"18446744073709551616",
                        b"99999999999999999999999999",
                        b"-1",
                        b")",
                        b"(",
                        b"\n",
                        b"\0",
                    ];
                    let token = *self.pick(TOKENS);
                    out.splice(at..at, token.iter().copied());
                }
                _ => {}
            }
        }
        out
    }
}

/// The seed of a property test: `WIDGET_EXPORTER_FUZZ_SEED` (to replay a failure), else the clock.
/// Print it with the test so that a failure can be replayed.
pub fn master_seed() -> u64 {
    std::env::var("WIDGET_EXPORTER_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        })
}
