//! A real Prometheus for the tests that judge what an operator loads into it (the printed
//! alert rules, the dashboard's queries): started on a loopback port from a temporary
//! config, killed by its PID when dropped, asked through its HTTP API; and a small JSON
//! reader for its answers and for the dashboard, since the tests take no dev-dependencies.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::{self, Proc};

/// A Prometheus server; killed when dropped.
pub struct Prometheus {
    server: Proc,
    /// Where its HTTP API listens (loopback).
    pub addr: SocketAddr,
    /// The last answer to each API call, for a failure report.
    answers: RefCell<Vec<(String, String)>>,
}

impl Prometheus {
    /// Starts `bin` with `config` (the text of prometheus.yml) in `dir`, and waits until it
    /// says it is ready (`/-/ready`), for at most a minute.
    pub fn start(bin: &Path, dir: &Path, config: &str) -> Prometheus {
        let file = dir.join("prometheus.yml");
        fs::write(&file, config).unwrap_or_else(|e| panic!("cannot write {}: {e}", file.display()));
        // Another process may take the port before Prometheus binds it; then Prometheus
        // exits, and the wait below reports that with its log.
        let addr = SocketAddr::from(([127, 0, 0, 1], support::free_port()));
        let server = Proc::spawn(
            Command::new(bin)
                .arg(format!("--config.file={}", file.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                // Relative defaults (the query log, console templates) stay in the temp dir.
                .current_dir(dir),
            dir.join("prometheus.log"),
        );
        let mut prometheus = Prometheus {
            server,
            addr,
            answers: RefCell::default(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = prometheus.server.exited() {
                panic!(
                    "prometheus exited at start: {status}\n{}",
                    prometheus.log_tail(40)
                );
            }
            if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
                return prometheus;
            }
            assert!(
                Instant::now() < deadline,
                "prometheus not ready within 60 s\n{}",
                prometheus.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether it is still running.
    pub fn running(&mut self) -> bool {
        self.server.exited().is_none()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        support::tail(&self.server.log(), lines)
    }

    /// The last answer to each API call so far, one call a line.
    pub fn answers(&self) -> String {
        let mut out = String::new();
        for (call, answer) in self.answers.borrow().iter() {
            let _ = writeln!(out, "{call}\n  -> {answer}");
        }
        out
    }

    /// `GET target` on its API, remembered for [`Prometheus::answers`].
    fn get(&self, target: &str) -> Result<(u16, String), String> {
        let answer = http_get(self.addr, target);
        let shown = match &answer {
            Ok((status, body)) => format!("{status} {body}"),
            Err(e) => format!("error: {e}"),
        };
        let mut answers = self.answers.borrow_mut();
        match answers.iter_mut().find(|(t, _)| t == target) {
            Some((_, last)) => *last = shown,
            None => answers.push((target.to_owned(), shown)),
        }
        answer
    }

    /// `GET target` on its API, parsed; `Err` for anything but a 200 with JSON (Prometheus
    /// still starting: refused, 503).
    pub fn api(&self, target: &str) -> Result<Json, String> {
        match self.get(target)? {
            (200, body) => Json::parse(&body).map_err(|e| format!("GET {target}: {e}: {body}")),
            (status, body) => Err(format!("GET {target}: status {status}: {body}")),
        }
    }

    /// An instant query: `Ok` with the answer's `data.result` when the status is success
    /// (400 and 422 answers carry the error as JSON too, so they come back as `Err` text).
    pub fn query(&self, promql: &str) -> Result<Vec<Json>, String> {
        let target = format!("/api/v1/query?query={}", url_encode(promql));
        let (status, body) = self.get(&target)?;
        let json =
            Json::parse(&body).map_err(|e| format!("{promql}: status {status}: {e}: {body}"))?;
        if json.get("status").and_then(Json::as_str) != Some("success") {
            return Err(format!(
                "{promql}: status {status}: {} {}",
                json.get("errorType").and_then(Json::as_str).unwrap_or("?"),
                json.get("error").and_then(Json::as_str).unwrap_or("?")
            ));
        }
        Ok(json
            .get("data")
            .and_then(|d| d.get("result"))
            .and_then(Json::as_array)
            .map(<[Json]>::to_vec)
            .unwrap_or_default())
    }

    /// The sample values of an instant query's vector answer (NaN included); `Err` for a
    /// sample without a number.
    pub fn values(&self, promql: &str) -> Result<Vec<f64>, String> {
        self.query(promql)?
            .iter()
            .map(|s| {
                s.get("value")
                    .and_then(Json::as_array)
                    .and_then(|v| v.get(1)?.as_str()?.parse().ok())
                    .ok_or_else(|| format!("{promql}: a sample without a number: {s:?}"))
            })
            .collect()
    }
}

/// A `prometheus.yml` scraping `targets` as job `job` every second and evaluating `rules`
/// (file names, relative to the config) every second.
pub fn config(job: &str, targets: &[SocketAddr], rules: &[&str]) -> String {
    let mut out = String::from("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n");
    if !rules.is_empty() {
        out.push_str("rule_files:\n");
        for r in rules {
            let _ = writeln!(out, "  - {r}");
        }
    }
    let _ = write!(
        out,
        "scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
        targets
            .iter()
            .map(|t| format!("\"{t}\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    out
}

/// One GET on a fresh connection (`Connection: close`).
fn http_get(addr: SocketAddr, target: &str) -> Result<(u16, String), String> {
    support::try_get(addr, target, Duration::from_secs(10))
        .map(|r| (r.status, r.body))
        .map_err(|e| format!("GET {target}: {e}"))
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A JSON value, as RFC 8259 has them; object members keep their order.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// The whole of `text` as one JSON value; `Err` names the byte offset of the first
    /// thing that is not JSON.
    pub fn parse(text: &str) -> Result<Json, String> {
        let mut p = Parser {
            s: text.as_bytes(),
            i: 0,
        };
        let value = p.value(0)?;
        p.ws();
        if p.i != p.s.len() {
            return Err(p.error("trailing characters"));
        }
        Ok(value)
    }

    /// The member `key` of an object.
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// An array's items.
    pub fn as_array(&self) -> Option<&[Json]> {
        match self {
            Json::Array(items) => Some(items),
            _ => None,
        }
    }
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> String {
        format!("invalid JSON at byte {}: {what}", self.i)
    }

    fn ws(&mut self) {
        while matches!(self.s.get(self.i), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, literal: &str) -> bool {
        let end = self.i + literal.len();
        if self.s.get(self.i..end) == Some(literal.as_bytes()) {
            self.i = end;
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 128 {
            return Err(self.error("nested too deep"));
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                let mut members = Vec::new();
                self.ws();
                if self.eat("}") {
                    return Ok(Json::Object(members));
                }
                loop {
                    self.ws();
                    let key = self.string()?;
                    self.ws();
                    if !self.eat(":") {
                        return Err(self.error("expected ':'"));
                    }
                    members.push((key, self.value(depth + 1)?));
                    self.ws();
                    if self.eat("}") {
                        return Ok(Json::Object(members));
                    }
                    if !self.eat(",") {
                        return Err(self.error("expected ',' or '}'"));
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                let mut items = Vec::new();
                self.ws();
                if self.eat("]") {
                    return Ok(Json::Array(items));
                }
                loop {
                    items.push(self.value(depth + 1)?);
                    self.ws();
                    if self.eat("]") {
                        return Ok(Json::Array(items));
                    }
                    if !self.eat(",") {
                        return Err(self.error("expected ',' or ']'"));
                    }
                }
            }
            Some(b'"') => Ok(Json::String(self.string()?)),
            _ if self.eat("true") => Ok(Json::Bool(true)),
            _ if self.eat("false") => Ok(Json::Bool(false)),
            _ if self.eat("null") => Ok(Json::Null),
            _ => self.number(),
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        self.eat("-");
        let digits = |p: &mut Self| {
            let from = p.i;
            while p.s.get(p.i).is_some_and(u8::is_ascii_digit) {
                p.i += 1;
            }
            p.i - from
        };
        let int_start = self.i;
        let n = digits(self);
        if n == 0 || (n > 1 && self.s[int_start] == b'0') {
            return Err(self.error("expected a value"));
        }
        if self.eat(".") && digits(self) == 0 {
            return Err(self.error("expected digits after '.'"));
        }
        if self.eat("e") || self.eat("E") {
            let _ = self.eat("+") || self.eat("-");
            if digits(self) == 0 {
                return Err(self.error("expected an exponent"));
            }
        }
        let text = std::str::from_utf8(&self.s[start..self.i]).expect("ASCII");
        text.parse()
            .map(Json::Number)
            .map_err(|e| self.error(&e.to_string()))
    }

    fn string(&mut self) -> Result<String, String> {
        if !self.eat("\"") {
            return Err(self.error("expected a string"));
        }
        let mut out = Vec::new();
        loop {
            let Some(&b) = self.s.get(self.i) else {
                return Err(self.error("unterminated string"));
            };
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err(self.error("unterminated escape"));
                    };
                    self.i += 1;
                    let c = match e {
                        b'"' => '"',
                        b'\\' => '\\',
                        b'/' => '/',
                        b'b' => '\u{8}',
                        b'f' => '\u{c}',
                        b'n' => '\n',
                        b'r' => '\r',
                        b't' => '\t',
                        b'u' => self.unicode_escape()?,
                        _ => return Err(self.error("unknown escape")),
                    };
                    out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes());
                }
                0..=0x1f => return Err(self.error("control character in a string")),
                _ => out.push(b),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("invalid UTF-8"))
    }

    fn unicode_escape(&mut self) -> Result<char, String> {
        let hex = |p: &mut Self| -> Result<u32, String> {
            let digits =
                p.s.get(p.i..p.i + 4)
                    .ok_or_else(|| p.error("short \\u escape"))?;
            let n = std::str::from_utf8(digits)
                .ok()
                .and_then(|d| u32::from_str_radix(d, 16).ok())
                .ok_or_else(|| p.error("bad \\u escape"))?;
            p.i += 4;
            Ok(n)
        };
        let high = hex(self)?;
        let code = if (0xd800..0xdc00).contains(&high) {
            if !self.eat("\\u") {
                return Err(self.error("lone surrogate"));
            }
            let low = hex(self)?;
            if !(0xdc00..0xe000).contains(&low) {
                return Err(self.error("lone surrogate"));
            }
            0x10000 + ((high - 0xd800) << 10) + (low - 0xdc00)
        } else {
            high
        };
        char::from_u32(code).ok_or_else(|| self.error("lone surrogate"))
    }
}

#[test]
fn json_reads_what_prometheus_and_grafana_write_and_refuses_the_rest() {
    let v = Json::parse(r#" {"a":[1,-2.5e3,true,false,null,"x\"\u00e9\ud83d\ude00\n"],"b":{}} "#)
        .expect("valid");
    let a = v.get("a").and_then(Json::as_array).expect("array");
    assert_eq!(a[1], Json::Number(-2500.0));
    assert_eq!(a[5].as_str(), Some("x\"é😀\n"));
    assert_eq!(v.get("b"), Some(&Json::Object(vec![])));
    for bad in [
        "",
        "{",
        "[1,]",
        "{\"a\":1,}",
        "01",
        "1.",
        "\"\\x\"",
        "\"a\nb\"",
        "tru",
        "[1] 2",
        "\"\\ud800\"",
        "{a:1}",
        "'a'",
        "NaN",
    ] {
        assert!(Json::parse(bad).is_err(), "{bad:?} parsed");
    }
    assert_eq!(
        url_encode("up{job=\"a b\"}[5m]"),
        "up%7Bjob%3D%22a%20b%22%7D%5B5m%5D"
    );
    // The targets answer as the prometheus test reads it: a quoted brace inside a string
    // ends neither the object nor the array.
    let targets = Json::parse(
        r#"{"status":"success","data":{"activeTargets":[{"labels":{"job":"other"},"lastError":"x \"}\""},{"health":"up","labels":{"job":"widget-exporter"},"lastError":""}],"droppedTargets":[]}}"#,
    )
    .expect("valid");
    let active = targets
        .get("data")
        .and_then(|d| d.get("activeTargets"))
        .and_then(Json::as_array)
        .expect("activeTargets");
    assert_eq!(active.len(), 2, "{active:?}");
    assert_eq!(
        active[0].get("lastError").and_then(Json::as_str),
        Some("x \"}\"")
    );
    assert_eq!(active[1].get("health").and_then(Json::as_str), Some("up"));
    assert_eq!(active[1].get("lastError").and_then(Json::as_str), Some(""));
    assert_eq!(
        active[1].get("labels").and_then(|l| l.get("job")),
        Some(&Json::String("widget-exporter".into()))
    );
}
