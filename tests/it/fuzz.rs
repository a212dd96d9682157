//! A property test over everything of ours that parses outside input: the flags
//! (`config::parse`, with non-UTF-8 arguments), durations (`config::parse_duration`), the `Accept`
//! header (`render::negotiate`) and the `/proc` files (`process::fuzz_parsers`). Inputs come
//! from the seeded generator of `support`, mixing grammar-shaped pieces, mutations of real
//! inputs and raw bytes. No input may panic, and a few invariants must hold (round trips,
//! determinism). Bounded by time: 2 s per target, or `WIDGET_EXPORTER_FUZZ_SECS`, and at least
//! [`MIN_CASES`] cases however slow the machine. A failure prints the seed;
//! `WIDGET_EXPORTER_FUZZ_SEED=N` replays it.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use widget_exporter::config::{self, format_duration, parse_duration, Command};
use widget_exporter::host::process;
use widget_exporter::metrics::render::{negotiate, Format};
use widget_exporter::source;

use crate::support;
use crate::support::{master_seed, Rng};

/// Seconds each target runs.
fn budget() -> Duration {
    let secs = std::env::var("WIDGET_EXPORTER_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(2.0);
    Duration::from_secs_f64(secs)
}

/// The fewest cases a target runs. The slowest target (`/proc` parsers) runs about 35 000
/// cases a second in a debug build on an idle 2-core machine: ten thousand is a few seconds
/// even when the machine is ten times slower, and far more than any one input shape needs.
const MIN_CASES: u64 = 10_000;

/// How long past its budget a target may run to reach [`MIN_CASES`]; a target that cannot is
/// broken (a case that hangs or crawls), not unlucky.
const OVERTIME: Duration = Duration::from_secs(60);

/// Runs `case` with fresh generators until the budget is spent and at least [`MIN_CASES`]
/// ran. `case` writes a description
/// of its input into the `String` before calling the code under test, so that a panic (a
/// bug, or a failed invariant) is reported with the input, the seed and the case number.
fn fuzz(target: &str, mut case: impl FnMut(&mut Rng, &mut String)) {
    let seed = master_seed();
    let mut master = Rng::new(seed);
    let start = Instant::now();
    let end = start + budget();
    let mut cases = 0u64;
    let mut input = String::new();
    while (Instant::now() < end || cases < MIN_CASES) && Instant::now() < end + OVERTIME {
        let mut rng = Rng::new(master.next());
        input.clear();
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| case(&mut rng, &mut input))) {
            let why = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!(
                "fuzz {target}: case {cases} panicked: {why}\n  input: {input}\n  replay: WIDGET_EXPORTER_FUZZ_SEED={seed} cargo test --test it fuzz::{target}"
            );
        }
        cases += 1;
    }
    let took = start.elapsed().as_secs_f64();
    support::say(&format!(
        "fuzz {target}: {cases} cases in {took:.1} s, seed {seed}"
    ));
    assert!(
        cases >= MIN_CASES,
        "fuzz {target}: only {cases} cases in {took:.1} s, fewer than {MIN_CASES}\n  replay: WIDGET_EXPORTER_FUZZ_SEED={seed} cargo test --test it fuzz::{target}"
    );
}

// ---------------------------------------------------------------------------------------
// Flags

/// Tokens that look like flags but are not: every real flag comes from `config::flags`, so a
/// flag added to the table is fuzzed at once.
const NEAR_FLAGS: &[&str] = &["-h", "--", "-", "--web", "--widget.", "---log.level"];

const VALUES: &[&str] = &[
    "",
    "0",
    "1",
    "0.5",
    "-0",
    "-1",
    "1e3",
    "NaN",
    "inf",
    "-inf",
    "1.0000000000000002",
    "true",
    "false",
    "TRUE",
    "1ms",
    "1ns",
    "1.5s",
    "1m30s",
    "2h",
    "-1s",
    ".5s",
    "5.s",
    "1µs",
    "1μs",
    "9999999999999999999h",
    "18446744073709551615",
    "18446744073709551616",
    ":0",
    ":8000",
    ":65535",
    ":65536",
    "127.0.0.1:0",
    "[::1]:9100",
    "[::1]",
    "localhost:1",
    "0.0.0.0:",
    "host.example:80",
    "/metrics",
    "/",
    "/-/healthy",
    "//",
    "/a?b#c",
    "debug",
    "info",
    "warn",
    "error",
    "DEBUG",
    "logfmt",
    "json",
    "modern",
    "legacy",
    "--help",
    "-h",
    "--version",
];

/// A random argument vector: flags alone, `--flag=value`, `--flag value`, raw bytes
/// (non-UTF-8 included), truncated or edited flags.
fn random_args(rng: &mut Rng) -> Vec<OsString> {
    let mut args = Vec::new();
    for _ in 0..rng.below(7) {
        let flag = if rng.chance(80) {
            rng.pick(&config::flags(&source::tables())).name
        } else {
            *rng.pick(NEAR_FLAGS)
        };
        match rng.below(9) {
            0 => args.push(OsString::from(flag)),
            1 | 2 => args.push(OsString::from(format!("{flag}={}", rng.pick(VALUES)))),
            3 => {
                args.push(OsString::from(flag));
                args.push(OsString::from(*rng.pick(VALUES)));
            }
            4 => args.push(OsString::from(format!(
                "{flag}={}",
                format_duration(rng.duration())
            ))),
            5 => args.push(OsString::from(format!("{flag}={}", rng.text(12)))),
            6 => {
                let mut raw = format!("{flag}=").into_bytes();
                raw.extend(rng.bytes(12));
                args.push(OsString::from_vec(raw));
            }
            7 => args.push(OsString::from_vec(rng.mutate(flag.as_bytes()))),
            _ => args.push(OsString::from_vec(rng.bytes(24))),
        }
    }
    args
}

#[test]
fn cli_parse() {
    let mut accepted = 0u64;
    fuzz("cli_parse", |rng, input| {
        let args = random_args(rng);
        *input = format!("{args:?}");
        let config = match config::parse(args, &source::tables()) {
            Ok(Command::Run(c) | Command::Print(_, c)) => c,
            Ok(Command::Help | Command::Version) => return,
            Err(e) => {
                // A usage error is one line that names the problem.
                let msg = e.to_string();
                assert!(
                    !msg.is_empty() && !msg.contains('\n'),
                    "error is not one line: {msg:?}"
                );
                return;
            }
        };
        accepted += 1;
        // Invariant: a config's own spelling parses back to the same config.
        let args = config.to_args();
        match config::parse(args.clone(), &source::tables()) {
            Ok(Command::Run(again)) => assert_eq!(
                again.to_args(),
                args,
                "to_args does not round-trip: {config:?}"
            ),
            other => panic!("to_args {args:?} of {config:?} parses to {other:?}"),
        }
    });
    support::say(&format!(
        "fuzz cli_parse: {accepted} argument vectors accepted"
    ));
    // The round trip is checked on accepted vectors only.
    assert!(accepted > 0, "fuzz cli_parse: no argument vector accepted");
}

// ---------------------------------------------------------------------------------------
// Durations

#[test]
fn duration_parse() {
    const UNITS: &[&str] = &["ns", "us", "µs", "μs", "ms", "s", "m", "h", "", "x", "sm"];
    fuzz("duration_parse", |rng, input| {
        let s = match rng.below(4) {
            // Grammar-shaped: signs, digits, fractions and units in random order.
            0 | 1 => {
                let mut s = String::new();
                if rng.chance(10) {
                    s.push(*rng.pick(&['-', '+']));
                }
                for _ in 0..=rng.below(4) {
                    let digits = rng.below(25);
                    for _ in 0..digits {
                        s.push(char::from(b'0' + (rng.next() % 10) as u8));
                    }
                    if rng.chance(30) {
                        s.push('.');
                        for _ in 0..rng.below(25) {
                            s.push(char::from(b'0' + (rng.next() % 10) as u8));
                        }
                    }
                    s.push_str(rng.pick::<&str>(UNITS));
                }
                s
            }
            2 => rng.text(16),
            _ => {
                let valid = format_duration(rng.duration());
                String::from_utf8_lossy(&rng.mutate(valid.as_bytes())).into_owned()
            }
        };
        *input = format!("{s:?}");
        if let Ok(d) = parse_duration(&s) {
            // Invariant: what parses, formats to something that parses to the same value.
            let formatted = format_duration(d);
            assert_eq!(
                parse_duration(&formatted),
                Ok(d),
                "{s:?} -> {d:?} -> {formatted:?}"
            );
        }
    });
}

#[test]
fn duration_round_trip() {
    fuzz("duration_round_trip", |rng, input| {
        let d = rng.duration();
        *input = format!("{d:?} ({} ns)", d.as_nanos());
        let formatted = format_duration(d);
        assert_eq!(parse_duration(&formatted), Ok(d), "formatted {formatted:?}");
    });
}

// ---------------------------------------------------------------------------------------
// Accept header

#[test]
fn accept_negotiation() {
    const MEDIA: &[&str] = &[
        "application/openmetrics-text",
        "APPLICATION/OpenMetrics-Text",
        "text/plain",
        "TEXT/PLAIN",
        "*/*",
        "text/*",
        "application/*",
        "application/json",
        "text/html",
        "",
        "*",
        "/",
    ];
    const PARAMS: &[&str] = &[
        "q=0",
        "q=0.5",
        "q=1",
        "q=1.000",
        "q=1.0001",
        "q=0.001",
        "q=2",
        "q=",
        "q=abc",
        "Q=0.7",
        "version=1.0.0",
        "version=0.0.1",
        "version=0.0.4",
        "version=\"1.0.0\"",
        "version=2.0.0",
        "charset=utf-8",
        "escaping=allow-utf-8",
        "=",
        "",
        " ; ",
    ];
    const PROMETHEUS: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    assert_eq!(negotiate(Some(PROMETHEUS)).format, Format::OpenMetrics);
    assert_eq!(negotiate(None).format, Format::Text);
    fuzz("accept_negotiation", |rng, input| {
        let header = if rng.chance(75) {
            let mut h = String::new();
            for i in 0..=rng.below(5) {
                if i > 0 {
                    h.push_str(rng.pick::<&str>(&[",", ", ", ",,", " ,"]));
                }
                h.push_str(rng.pick::<&str>(MEDIA));
                for _ in 0..rng.below(3) {
                    h.push(';');
                    h.push_str(rng.pick::<&str>(PARAMS));
                }
            }
            if rng.chance(20) {
                String::from_utf8_lossy(&rng.mutate(h.as_bytes())).into_owned()
            } else {
                h
            }
        } else if rng.chance(50) {
            rng.text(64)
        } else {
            String::from_utf8_lossy(&rng.bytes(64)).into_owned()
        };
        *input = format!("{header:?}");
        let choice = negotiate(Some(&header));
        assert_eq!(choice, negotiate(Some(&header)), "not deterministic");
        let format = choice.format;
        // The answer names a version of the format it is in, and nothing else.
        let content_type = choice.content_type();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4; charset=utf-8")
                || content_type.starts_with("text/plain; version=1.0.0; charset=utf-8")
                || content_type.starts_with("application/openmetrics-text; version="),
            "{content_type}"
        );
        // Only an application/… range can select OpenMetrics.
        if !header.to_ascii_lowercase().contains("application/") {
            assert_eq!(
                format,
                Format::Text,
                "OpenMetrics without an application/ range"
            );
        }
    });
}

// ---------------------------------------------------------------------------------------
// /proc files

/// Real `/proc` files of this process, as mutation seeds.
fn proc_seeds() -> Vec<Vec<u8>> {
    [
        "/proc/self/stat",
        "/proc/self/status",
        "/proc/self/limits",
        "/proc/stat",
        "/proc/self/auxv",
    ]
    .iter()
    .filter_map(|p| std::fs::read(p).ok())
    .collect()
}

#[test]
fn proc_parsers() {
    let seeds = proc_seeds();
    // Invariant: the untouched files parse (a parser that never succeeds would pass
    // every no-panic check).
    let file = |name: &str| std::fs::read(name).unwrap_or_default();
    assert!(process::parse_stat(&file("/proc/self/stat")).is_some());
    assert!(process::parse_status_kib(&file("/proc/self/status"), b"VmRSS").is_some());
    assert!(process::parse_limits_nofile(&file("/proc/self/limits")).is_some());
    assert!(process::parse_btime(&file("/proc/stat")).is_some());
    assert!(process::parse_auxv_clktck(&file("/proc/self/auxv")).is_some());
    fuzz("proc_parsers", |rng, input| {
        let bytes = if !seeds.is_empty() && rng.chance(70) {
            let seed = rng.pick(&seeds);
            rng.mutate(seed)
        } else {
            rng.bytes(512)
        };
        *input = format!("{:?}", String::from_utf8_lossy(&bytes));
        process::fuzz_parsers(&bytes);
    });
}
