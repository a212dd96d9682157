//! Shared test support, the one layer every test module uses: which binary to run
//! ([`binary`], honouring `WIDGET_EXPORTER_BIN`) and its fast flags ([`FAST`]), spawning it
//! on `127.0.0.1:0` and reading the bound address from its log ([`Exporter`]), other child
//! processes ([`Proc`], [`run`]), the one raw HTTP client ([`try_get`], [`request`],
//! [`KeepAlive`], all on [`read_response`]), the one poll ([`poll`], [`wait_until`]), the one
//! sample parser ([`sample`]) and logfmt parser ([`logfmt`]), outside tools found or visibly
//! skipped ([`require_tool`]), [`TempDir`], and the seeded [`Rng`] of the property tests.
//! It asserts nothing about the exporter; the test modules do.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The binary cargo built for integration tests; [`binary`] falls back to it.
const BIN: &str = env!("CARGO_BIN_EXE_widget-exporter");

/// The binary under test: `$WIDGET_EXPORTER_BIN` (CI points it at the release build; a
/// relative path is taken from the package root), else the debug binary cargo built. Every
/// test that runs the exporter runs this one.
pub fn binary() -> PathBuf {
    static SAID: Once = Once::new();
    let path = match std::env::var_os("WIDGET_EXPORTER_BIN") {
        Some(p) if !p.is_empty() => {
            let p = PathBuf::from(p);
            let p = if p.is_relative() {
                Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
            } else {
                p
            };
            assert!(
                p.is_file(),
                "WIDGET_EXPORTER_BIN: {} is not a file",
                p.display()
            );
            p
        }
        _ => PathBuf::from(BIN),
    };
    SAID.call_once(|| say(&format!("binary under test: {}", path.display())));
    path
}

/// Every module's tests run side by side in this one process (one at a time per core). Those
/// with bars on timing hold the machine shared; floods and load generators hold it alone, so
/// that their load never skews another test's timings on a small machine.
static MACHINE: RwLock<()> = RwLock::new(());

/// For a test with bars on timing: it may run beside another such test, never beside a flood.
pub fn machine_shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(PoisonError::into_inner)
}

/// For a flood or a load generator: nothing else that holds the machine runs meanwhile.
pub fn machine_alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().unwrap_or_else(PoisonError::into_inner)
}

/// Fast widgets (an event every few milliseconds, so counters move within a test's patience
/// and a stalled loop shows at once), half of them failing.
pub const FAST: &[&str] = &[
    "--widget.min-duration=5ms",
    "--widget.max-duration=10ms",
    "--widget.interval=5ms",
    "--widget.failure-ratio=0.5",
];

/// [`FAST`] followed by `extra` flags.
pub fn fast(extra: &[&'static str]) -> Vec<&'static str> {
    FAST.iter().chain(extra).copied().collect()
}

/// Whether a missing outside tool must fail the test instead of skipping it.
pub fn tools_required() -> bool {
    std::env::var_os("WIDGET_EXPORTER_REQUIRE_TOOLS").is_some_and(|v| v == "1")
}

/// Prints straight to the terminal: the test harness only captures the print macros, and a
/// skip must be seen even when the test passes.
pub fn say(msg: &str) {
    let _ = writeln!(std::io::stderr(), "{msg}");
}

/// Every check skipped so far, by why.
static SKIPPED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Skips a check visibly: prints `skipped: WHY` now, and counts it for the line printed when
/// the test binary exits ([`print_skipped`]). The caller returns without checking.
pub fn skip(why: &str) {
    say(&format!("skipped: {why}"));
    SKIPPED
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(why.to_owned());
}

/// `skipped checks: N (WHY xK, …)`: the last line of `cargo test` (the library has no
/// doctests to run after this binary), so that a summary that says `ok` also says what it
/// did not check. Printed by the C library's `atexit`, which runs after libtest's summary,
/// whether the run passed (main returns) or failed (`process::exit`).
extern "C" fn print_skipped() {
    let skipped = SKIPPED.lock().unwrap_or_else(PoisonError::into_inner);
    let mut by_why: Vec<(&str, usize)> = Vec::new();
    for why in skipped.iter() {
        match by_why.iter_mut().find(|(w, _)| *w == why) {
            Some((_, n)) => *n += 1,
            None => by_why.push((why, 1)),
        }
    }
    let detail = if by_why.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = by_why.iter().map(|(w, n)| format!("{w} x{n}")).collect();
        format!(" ({})", list.join(", "))
    };
    let mut out = std::io::stdout();
    let _ = writeln!(out, "skipped checks: {}{detail}", skipped.len());
    let _ = out.flush();
}

extern "C" {
    fn atexit(callback: extern "C" fn()) -> std::ffi::c_int;
}

/// Registers [`print_skipped`] before libtest's main runs.
extern "C" fn register_print_skipped() {
    // SAFETY: `atexit` is the C library's own, declared with its C signature; it only stores
    // the function pointer, a plain `extern "C" fn()` that lives as long as the program.
    #[allow(unsafe_code)]
    let failed = unsafe { atexit(print_skipped) } != 0;
    if failed {
        say("cannot register the skipped-checks line with atexit");
    }
}

// The ELF initialiser list: the dynamic loader (or the static start code) calls every pointer
// here before main. Test binaries have no other hook that runs before libtest's main.
// SAFETY: the section holds pointers to `extern "C" fn()` taking no arguments, which is the
// entry type of `.init_array`; the function only calls `atexit`.
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static REGISTER_PRINT_SKIPPED: extern "C" fn() = register_print_skipped;

/// Finds `name` on `PATH`, quietly: for a tool that only improves a test when present. A
/// test that needs the tool uses [`require_tool`].
pub fn tool(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Finds `name` on `PATH`; when absent prints `skipped: NAME not found` and returns `None`,
/// or panics under `WIDGET_EXPORTER_REQUIRE_TOOLS=1`.
pub fn require_tool(name: &str) -> Option<PathBuf> {
    let found = tool(name);
    if found.is_none() {
        assert!(
            !tools_required(),
            "{name} not found and WIDGET_EXPORTER_REQUIRE_TOOLS=1"
        );
        skip(&format!("{name} not found"));
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
    skip("python prometheus_client not found");
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
        Self::start_with(Command::new(binary()).args(args))
    }

    /// Like [`Exporter::start`] with a prepared command (env, wrappers); the listen address is added.
    pub fn start_with(cmd: &mut Command) -> Exporter {
        Self::start_fed(cmd, Stdio::null())
    }

    /// Like [`Exporter::start_with`] with `stdin` as the exporter's standard input (a pipe
    /// the test writes, for `--widget.log.path=-`).
    pub fn start_fed(cmd: &mut Command, stdin: Stdio) -> Exporter {
        let mut child = cmd
            .arg("--web.listen-address=127.0.0.1:0")
            .stdin(stdin)
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
        self.get_with(path, "")
    }

    /// Waits until the exporter has logged `needle`; panics with the log after `within`.
    pub fn wait_for_log(&self, needle: &str, within: Duration) -> String {
        wait_until(
            &format!("{needle:?} in the log"),
            within,
            || self.log().contains(needle),
            || self.log(),
        );
        self.log()
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

/// The value of `key` in a logfmt line.
pub fn field(line: &str, key: &str) -> Option<String> {
    logfmt(line)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
}

/// A logfmt line's fields in order; quoted values are unescaped.
pub fn logfmt(line: &str) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    let mut rest = line.trim();
    while let Some((key, after)) = rest.split_once('=') {
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    '\\' => match chars.next() {
                        Some((_, 'n')) => value.push('\n'),
                        Some((_, 't')) => value.push('\t'),
                        Some((_, 'r')) => value.push('\r'),
                        Some((_, c)) => value.push(c),
                        None => {}
                    },
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(' ').unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        fields.push((key.trim().to_string(), value));
        rest = next.trim_start();
    }
    fields
}

/// The value of the sample `series` (its name with its labels, exactly as rendered) in an
/// exposition of either format.
pub fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// [`sample`], or a panic that shows the exposition.
pub fn expect_sample(body: &str, series: &str) -> f64 {
    sample(body, series).unwrap_or_else(|| panic!("no sample {series} in:\n{body}"))
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

    /// Whether the server said this answer is the connection's last (`Connection: close`).
    pub fn closes(&self) -> bool {
        self.header("Connection")
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

// ---------------------------------------------------------------------------------------
// The raw HTTP client: every test that speaks HTTP goes through `read_response`.

/// Connects within `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect: {e}"))
}

/// Sends raw bytes on a fresh connection and reads one response, all within `timeout`.
pub fn try_request(addr: SocketAddr, raw: &str, timeout: Duration) -> Result<Response, String> {
    let deadline = Instant::now() + timeout;
    let mut s = connect(addr, timeout)?;
    s.set_write_timeout(Some(left(deadline)?))
        .map_err(|e| format!("set timeout: {e}"))?;
    s.write_all(raw.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    read_response(&mut s, &mut Vec::new(), deadline, raw.starts_with("HEAD "))
}

/// `GET target` on a fresh connection (`Connection: close`) within `timeout`.
pub fn try_get(addr: SocketAddr, target: &str, timeout: Duration) -> Result<Response, String> {
    try_request(
        addr,
        &format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"),
        timeout,
    )
}

/// A free loopback port (another process may take it before the caller binds it).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Sends a request announcing a body too big to drain: tiny_http leaks its connection, which
/// the exporter cures by re-executing itself (a restart in place, about 10 s later). The
/// caller holds the returned connection until the restart is seen.
pub fn provoke_restart(addr: SocketAddr) -> TcpStream {
    let mut killer = TcpStream::connect(addr).expect("connect");
    killer
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 100000000000\r\n\r\n")
        .expect("send");
    killer
}

/// Sends raw bytes on a fresh connection and reads one response; panics when that fails.
pub fn request(addr: SocketAddr, raw: &str) -> Response {
    try_request(addr, raw, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("no response to {raw:?}: {e}"))
}

fn parse_head(head: &str) -> Option<(u16, Vec<(String, String)>)> {
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers))
}

fn header_in<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Time left before `deadline`, or an error once it has passed.
fn left(deadline: Instant) -> Result<Duration, String> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err("timed out".to_owned())
    } else {
        Ok(d)
    }
}

/// Reads one response from `s` by `Content-Length` (none for the answer to a HEAD), chunked,
/// or until EOF, before `deadline`; `pending` holds what arrived past it (kept-alive
/// connections, pipelining) and is used first.
pub fn read_response(
    s: &mut TcpStream,
    pending: &mut Vec<u8>,
    deadline: Instant,
    head_request: bool,
) -> Result<Response, String> {
    let mut eof = false;
    loop {
        if let Some(end) = find(pending, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&pending[..end]).into_owned();
            let (status, headers) = parse_head(&head)
                .ok_or_else(|| format!("bad status line {:?}", head.lines().next()))?;
            let body_start = end + 4;
            let done = |body: &[u8], used: usize, pending: &mut Vec<u8>| {
                let body = String::from_utf8_lossy(body).into_owned();
                pending.drain(..used);
                Response {
                    status,
                    headers: headers.clone(),
                    body,
                }
            };
            let length: Option<usize> =
                header_in(&headers, "content-length").and_then(|v| v.parse().ok());
            if head_request {
                return Ok(done(&[], body_start, pending));
            } else if let Some(len) = length {
                if pending.len() >= body_start + len {
                    let body = pending[body_start..body_start + len].to_vec();
                    return Ok(done(&body, body_start + len, pending));
                }
            } else if header_in(&headers, "transfer-encoding")
                .is_some_and(|v| v.contains("chunked"))
            {
                if let Some((body, used)) = dechunk(&pending[body_start..]) {
                    return Ok(done(&body, body_start + used, pending));
                }
            } else if eof {
                let body = pending[body_start..].to_vec();
                let used = pending.len();
                return Ok(done(&body, used, pending));
            }
        }
        if eof {
            return Err(format!(
                "connection closed after {} bytes of a response",
                pending.len()
            ));
        }
        let timed_out = |pending: &[u8]| {
            if pending.is_empty() {
                "timed out".to_owned()
            } else {
                format!(
                    "timed out with part of a response ({} bytes)",
                    pending.len()
                )
            }
        };
        let Ok(wait) = left(deadline) else {
            return Err(timed_out(pending));
        };
        s.set_read_timeout(Some(wait))
            .map_err(|e| format!("set timeout: {e}"))?;
        let mut chunk = [0u8; 16384];
        match s.read(&mut chunk) {
            Ok(0) => eof = true,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(timed_out(pending))
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("read: {e}")),
        }
    }
}

/// A complete chunked body at the start of `buf`: (body, bytes used), or `None` if incomplete.
pub fn dechunk(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (mut at, mut body) = (0, Vec::new());
    loop {
        let line_end = at + find(&buf[at..], b"\r\n")?;
        let size_text = String::from_utf8_lossy(&buf[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, if any, end with an empty line.
            let end = at + find(&buf[at..], b"\r\n")?;
            if end == at {
                return Some((body, at + 2));
            }
            let trailers_end = at + find(&buf[at..], b"\r\n\r\n")?;
            return Some((body, trailers_end + 4));
        }
        if buf.len() < at + size + 2 {
            return None;
        }
        body.extend_from_slice(&buf[at..at + size]);
        at += size + 2;
    }
}

/// A kept-alive connection for several requests in a row. It behaves like an HTTP/1.1
/// client must: after an answer that says `Connection: close` it opens a new connection for
/// the next request instead of reusing the old one.
pub struct KeepAlive {
    addr: SocketAddr,
    stream: TcpStream,
    pending: Vec<u8>,
    /// The server said the last answer was the connection's last.
    closing: bool,
    /// Connections opened, the first included.
    pub connects: u64,
    /// Answers read on the current connection.
    pub served: u64,
}

impl KeepAlive {
    /// Connects, or panics.
    pub fn connect(addr: SocketAddr) -> KeepAlive {
        Self::try_connect(addr, Duration::from_secs(5)).expect("connect")
    }

    /// Connects within `timeout`.
    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> Result<KeepAlive, String> {
        Ok(KeepAlive {
            addr,
            stream: connect(addr, timeout)?,
            pending: Vec::new(),
            closing: false,
            connects: 1,
            served: 0,
        })
    }

    /// Sends one request and reads exactly one response; panics on failure, and when the
    /// server closes the connection without having said so.
    pub fn send(&mut self, raw: &str) -> Response {
        self.try_send(raw, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("kept-alive request {raw:?}: {e}"))
    }

    /// Sends one request and reads one response within `timeout` (reconnecting first if
    /// the last answer said `Connection: close`).
    pub fn try_send(&mut self, raw: &str, timeout: Duration) -> Result<Response, String> {
        let deadline = Instant::now() + timeout;
        if self.closing {
            self.stream = connect(self.addr, timeout)?;
            self.pending.clear();
            self.closing = false;
            self.connects += 1;
            self.served = 0;
        }
        self.stream
            .set_write_timeout(Some(left(deadline)?))
            .map_err(|e| format!("set timeout: {e}"))?;
        self.stream
            .write_all(raw.as_bytes())
            .map_err(|e| format!("send: {e}"))?;
        let r = read_response(
            &mut self.stream,
            &mut self.pending,
            deadline,
            raw.starts_with("HEAD "),
        )
        .map_err(|e| {
            if e.starts_with("connection closed after 0 bytes") {
                "server closed a kept-alive connection (connection closed after 0 bytes)".to_owned()
            } else {
                e
            }
        })?;
        self.served += 1;
        self.closing = r.closes();
        Ok(r)
    }
}

/// Where `needle` first occurs in `hay`.
pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Runs a command to completion with nothing on its standard input and returns (success,
/// stdout, stderr), panicking with everything shown when it could not even start.
pub fn run(cmd: &mut Command) -> (bool, String, String) {
    run_with_stdin(cmd, "")
}

/// [`run`] with `input` on the command's standard input.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> (bool, String, String) {
    let (code, out, err) = run_code(cmd, input);
    (code == Some(0), out, err)
}

/// Runs the binary under test with `args` and `input` on its standard input to completion:
/// (exit code, stdout, stderr).
pub fn exits(args: &[&str], input: &str) -> (Option<i32>, String, String) {
    run_code(Command::new(binary()).args(args), input)
}

/// Runs a command to completion with `input` on its standard input: (exit code, `None` when
/// a signal ended it; stdout; stderr), panicking with everything shown when it could not even
/// start.
pub fn run_code(cmd: &mut Command, input: &str) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("piped stdin");
    // A writer thread: a command that answers before reading all of its input (or never
    // reads it: a broken pipe is fine) must not deadlock against a full pipe.
    let input = input.to_owned();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("cannot wait for {cmd:?}: {e}"));
    let _ = writer.join();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A child process other than the exporter under HTTP (a Prometheus server, node_exporter,
/// the exporter with HTTP off): its stdout and stderr go to a file, and it is killed and
/// reaped when dropped.
pub struct Proc {
    pub child: Child,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with its output in the file `log`.
    pub fn spawn(cmd: &mut Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone a file handle");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Proc { child, log }
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Whether it has exited, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last `lines` lines of `text`: what a failure shows of a log.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Appends `text` to the file `path`, creating it: a line written the way a logging
/// application writes it.
pub fn append(path: &Path, text: &str) {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("append to {}: {e}", path.display()));
}

/// Receives datagrams (sd_notify messages) until `deadline`, returning (arrival, text) pairs.
pub fn receive_until(
    sock: &std::os::unix::net::UnixDatagram,
    deadline: Instant,
) -> Vec<(Instant, String)> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        if let Ok(n) = sock.recv(&mut buf) {
            got.push((
                Instant::now(),
                String::from_utf8_lossy(&buf[..n]).into_owned(),
            ));
        }
    }
    got
}

// ---------------------------------------------------------------------------------------
// Waiting: the test may wait; the exporter never does.

/// Calls `probe` every `every` until it returns a value, or `None` once `within` has passed
/// (`probe` runs at least once, and once more at the deadline).
pub fn poll<T>(
    within: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = probe() {
            return Some(v);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        std::thread::sleep(every.min(deadline - now));
    }
}

/// Waits up to `within` for `child` to end: how it ended, or `None` if it did not.
pub fn wait_exit(child: &mut Child, within: Duration) -> Option<std::process::ExitStatus> {
    poll(within, Duration::from_millis(20), || {
        child.try_wait().ok().flatten()
    })
}

/// Polls `ok` every `every` until it holds: how long that took, or `None` after `within`.
pub fn poll_until(
    within: Duration,
    every: Duration,
    mut ok: impl FnMut() -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    poll(within, every, || ok().then(|| start.elapsed()))
}

/// Polls `ok` every 20 ms until it holds; after `within`, panics naming `what` with
/// `context()` (a log, say).
pub fn wait_until(
    what: &str,
    within: Duration,
    ok: impl FnMut() -> bool,
    context: impl Fn() -> String,
) {
    assert!(
        poll_until(within, Duration::from_millis(20), ok).is_some(),
        "timed out after {within:?} waiting for {what}; log:\n{}",
        context()
    );
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

/// The one seeded generator of the property tests: reproducible from one number (printed).
pub struct Rng(fastrand::Rng);

impl Rng {
    /// The crate's own generator (fastrand, as the simulation uses), seeded.
    pub fn new(seed: u64) -> Rng {
        Rng(fastrand::Rng::with_seed(seed))
    }

    pub fn next(&mut self) -> u64 {
        self.0.u64(..)
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

/// `systemd-analyze security --offline=true UNIT`: the overall exposure score and its line.
/// systemd's bands: < 1 SAFE, < 5 OK, then MEDIUM, EXPOSED, UNSAFE.
pub fn security_score(analyze: &std::path::Path, unit: &std::path::Path) -> (f64, String) {
    let (_, out, err) = run(Command::new(analyze)
        .args(["security", "--offline=true"])
        .arg(unit));
    let line = out
        .lines()
        .chain(err.lines())
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no score:\n{out}\n{err}"))
        .trim()
        .to_owned();
    let score = line
        .split(':')
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unparsable: {line}"));
    (score, line)
}

#[test]
fn the_parsers_read_what_the_exporter_writes() {
    assert_eq!(
        dechunk(b"5\r\nhello\r\n1;x=y\r\n!\r\n0\r\n\r\n").map(|(body, _)| body),
        Some(b"hello!".to_vec())
    );
    let line = r#"ts=2026-01-01T00:00:00.000Z level=debug msg=request path=/metrics user_agent="curl x format=text" format=openmetrics"#;
    assert_eq!(
        field(line, "user_agent").as_deref(),
        Some("curl x format=text")
    );
    assert_eq!(field(line, "format").as_deref(), Some("openmetrics"));
    assert_eq!(field(line, "msg").as_deref(), Some("request"));
    assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
    assert_eq!(tail("a", 5), "a");
}
