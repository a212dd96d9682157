//! `/proc` readers behind the standard `process_*` families, for the exporter's own process.
//!
//! This module owns reading `/proc/self/{auxv,stat,status,limits,fd}` and `/proc/stat` and
//! parsing them into a plain [`ProcessStats`] snapshot. It must not spell metric names, touch
//! atomics or render anything: `metrics` decides what the values are called, `render` how
//! they are written.
//!
//! The values mean what they mean in the official clients (`client_golang`'s `procfs`,
//! `client_python`), but the parsers are stricter: a value that is missing, cut short,
//! malformed or out of range comes back as `None` for that value only — never as a panic
//! and never as a wrong number. Concretely:
//! - only newline-terminated lines count, and in `/proc/self/stat` only fields followed by a
//!   separator, so a truncated read cannot turn `12345` into `123`;
//! - numbers are plain ASCII digits with checked arithmetic (no sign, no overflow);
//! - a line must have exactly the expected shape (key, value, unit), or it is not used;
//! - everything works on bytes, because `/proc` text is not UTF-8 (a process name is any
//!   bytes but NUL, including spaces, parentheses and newlines).
//!
//! After the first [`ProcessReader::read`], a read allocates only in the `/proc/self/fd`
//! listing (`read_dir`, see `count_open_fds`); every file goes through one reused buffer.

use std::fs::File;
use std::io::Read;

/// End of the auxiliary vector.
const AT_NULL: usize = 0;
/// Auxiliary vector entry holding the kernel's `USER_HZ`, what `sysconf(_SC_CLK_TCK)` returns.
const AT_CLKTCK: usize = 17;
/// `USER_HZ` on every mainstream Linux architecture; used when `/proc/self/auxv` is unreadable.
const FALLBACK_CLK_TCK: u64 = 100;
/// Room for the per-scrape files (`stat`, `status`, `limits` are each under 2 KiB today) so
/// the buffer does not grow on the first scrapes.
const BUF_CAPACITY: usize = 4096;

/// One reading of the exporter's own process, plain values for the `process_*` families.
///
/// Every field is `None` when its source was unreadable or did not parse; the caller omits
/// that sample rather than inventing a value.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStats {
    /// User plus system CPU time, in nanoseconds (`process_cpu_seconds_total`): ticks are
    /// exact decimals of a second, and written as such.
    pub cpu_nanos: Option<u64>,
    /// Resident set size in bytes, from `VmRSS` (`process_resident_memory_bytes`).
    pub resident_memory_bytes: Option<u64>,
    /// Virtual memory size in bytes, from `VmSize` (`process_virtual_memory_bytes`).
    pub virtual_memory_bytes: Option<u64>,
    /// Start time since the Unix epoch, in nanoseconds (`process_start_time_seconds`).
    pub start_time_nanos: Option<u64>,
    /// Open file descriptors (`process_open_fds`).
    pub open_fds: Option<u64>,
    /// Soft limit on open file descriptors; `None` also when unlimited (`process_max_fds`).
    pub max_fds: Option<u64>,
    /// Number of threads; not a standard family, used by the exporter's own guards.
    pub threads: Option<u64>,
}

#[cfg(test)]
impl ProcessStats {
    /// Every value known (each 1), for tests that need every `process_*` family present.
    pub(crate) fn all_known() -> ProcessStats {
        ProcessStats {
            cpu_nanos: Some(1_000_000_000),
            resident_memory_bytes: Some(1),
            virtual_memory_bytes: Some(1),
            start_time_nanos: Some(1_000_000_000),
            open_fds: Some(1),
            max_fds: Some(1),
            threads: Some(1),
        }
    }
}

/// The fields of `/proc/<pid>/stat` this module uses, in clock ticks where they are times.
///
/// Each field is its own `Option` so a line cut short after `stime` still yields the CPU
/// time: one missing field costs one value, as everywhere in this module. [`parse_stat`]
/// returns `None` as a whole only when the input is not recognisably a stat line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stat {
    /// Field 14, `utime`: time scheduled in user mode, in clock ticks.
    pub utime_ticks: Option<u64>,
    /// Field 15, `stime`: time scheduled in kernel mode, in clock ticks.
    pub stime_ticks: Option<u64>,
    /// Field 20, `num_threads`.
    pub num_threads: Option<u64>,
    /// Field 22, `starttime`: start time after boot, in clock ticks.
    pub start_ticks: Option<u64>,
}

/// Reads [`ProcessStats`] for the current process, reusing one buffer for every file.
///
/// The clock tick rate and the start time cannot change for a running process, so they are
/// read once, in [`ProcessReader::new`].
#[derive(Debug)]
pub struct ProcessReader {
    /// The one buffer every `/proc` file is read into.
    buf: Vec<u8>,
    /// `USER_HZ`, never zero.
    clk_tck: u64,
    /// Computed once: `btime` plus our `starttime`.
    start_time_nanos: Option<u64>,
}

impl ProcessReader {
    /// Reads the clock tick rate from `/proc/self/auxv` (100 if unreadable), boot time from
    /// `/proc/stat` and the process's own start time from `/proc/self/stat`.
    #[must_use]
    pub fn new() -> Self {
        let mut buf = Vec::with_capacity(BUF_CAPACITY);
        let clk_tck = read_into("/proc/self/auxv", &mut buf)
            .and_then(parse_auxv_clktck)
            .unwrap_or(FALLBACK_CLK_TCK);
        let btime = read_into("/proc/stat", &mut buf).and_then(parse_btime);
        let stat = read_into("/proc/self/stat", &mut buf).and_then(parse_stat);
        let start_time_nanos = start_time_nanos(btime, stat.and_then(|s| s.start_ticks), clk_tck);
        // /proc/stat grows with the CPU count (per-CPU and interrupt lines); do not keep a
        // buffer sized for it when the per-scrape files are a few KiB.
        buf.clear();
        buf.shrink_to(BUF_CAPACITY);
        ProcessReader {
            buf,
            clk_tck,
            start_time_nanos,
        }
    }

    /// Takes one reading. Unreadable files and unparsable fields give `None` for the values
    /// they feed, never a panic.
    pub fn read(&mut self) -> ProcessStats {
        let stat = read_into("/proc/self/stat", &mut self.buf)
            .and_then(parse_stat)
            .unwrap_or_default();
        let status = read_into("/proc/self/status", &mut self.buf);
        let resident_memory_bytes = status
            .and_then(|s| parse_status_kib(s, b"VmRSS"))
            .and_then(kib_to_bytes);
        let virtual_memory_bytes = status
            .and_then(|s| parse_status_kib(s, b"VmSize"))
            .and_then(kib_to_bytes);
        let max_fds = read_into("/proc/self/limits", &mut self.buf).and_then(parse_limits_nofile);
        ProcessStats {
            cpu_nanos: cpu_nanos(&stat, self.clk_tck),
            resident_memory_bytes,
            virtual_memory_bytes,
            start_time_nanos: self.start_time_nanos,
            open_fds: count_open_fds(),
            max_fds,
            threads: stat.num_threads,
        }
    }
}

impl Default for ProcessReader {
    fn default() -> Self {
        Self::new()
    }
}

/// Replaces `buf`'s contents with the file at `path`; `None` if it cannot be opened or read.
///
/// Opening a short literal path does not allocate (std builds the C string on the stack),
/// and `read_to_end` only grows `buf` when the file outgrows its capacity.
fn read_into<'a>(path: &str, buf: &'a mut Vec<u8>) -> Option<&'a [u8]> {
    buf.clear();
    File::open(path).ok()?.read_to_end(buf).ok()?;
    Some(buf)
}

/// Counts the entries of `/proc/self/fd`; `None` if it cannot be listed.
fn count_open_fds() -> Option<u64> {
    // getdents64 on a stack buffer: no allocation per scrape (read_dir allocates). The
    // directory's own descriptor is counted, as client_golang and client_python count it.
    let dir = File::open("/proc/self/fd").ok()?;
    crate::host::sys::count_dir_entries(&dir).ok()
}

/// CPU nanoseconds from user and system ticks; `None` if either is missing or a sum
/// overflows.
fn cpu_nanos(stat: &Stat, clk_tck: u64) -> Option<u64> {
    ticks_to_nanos(stat.utime_ticks?.checked_add(stat.stime_ticks?)?, clk_tck)
}

/// Nanoseconds since the epoch from boot time (whole seconds) and start ticks after boot.
fn start_time_nanos(btime: Option<u64>, start_ticks: Option<u64>, clk_tck: u64) -> Option<u64> {
    btime?
        .checked_mul(1_000_000_000)?
        .checked_add(ticks_to_nanos(start_ticks?, clk_tck)?)
}

/// Ticks of `clk_tck` per second as nanoseconds (exact for the usual 100, 250 and 1000 Hz,
/// rounded down otherwise); `None` past u64. `clk_tck` is never zero: [`parse_auxv_clktck`]
/// rejects zero and the fallback is 100.
fn ticks_to_nanos(ticks: u64, clk_tck: u64) -> Option<u64> {
    u64::try_from(u128::from(ticks) * 1_000_000_000 / u128::from(clk_tck.max(1))).ok()
}

/// `/proc` "kB" are KiB; `None` rather than a wrapped value on overflow.
fn kib_to_bytes(kib: u64) -> Option<u64> {
    kib.checked_mul(1024)
}

/// Parses `/proc/<pid>/stat` (see proc(5)).
///
/// The line is `pid (comm) state ppid …`, where `comm` may hold spaces, parentheses and even
/// newlines, so fields are counted from the **last** `)`. Fields 4 to 22 must be integers
/// separated by single spaces, and a field counts only if a separator follows it (a field at
/// the very end of unterminated input may have been cut short). From the first field that
/// breaks these rules on, fields are `None`.
///
/// Returns `None` when the input is not a stat line at all: no `pid (` prefix, no `) `
/// after it, or a state (field 3) that is not a single letter.
#[must_use]
pub fn parse_stat(stat: &[u8]) -> Option<Stat> {
    let open = stat.iter().position(|&b| b == b'(')?;
    let close = stat.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    parse_u64(stat[..open].strip_suffix(b" ")?)?;
    let rest = stat[close + 1..].strip_prefix(b" ")?;
    let rest = match rest.iter().position(|&b| b == b'\n') {
        Some(end) => &rest[..end],
        // No newline: keep only the fields a space proves complete.
        None => &rest[..rest.iter().rposition(|&b| b == b' ').unwrap_or(0)],
    };

    // fields[i] is field i + 3 of proc(5): state, ppid, …, starttime (22).
    let mut fields: [Option<&[u8]>; 20] = [None; 20];
    for (i, (slot, field)) in fields
        .iter_mut()
        .zip(rest.split(|&b| b == b' '))
        .enumerate()
    {
        let well_formed = if i == 0 {
            matches!(field, [state] if state.is_ascii_alphabetic())
        } else {
            // Some fields are signed (tpgid is -1 without a terminal, nice can be negative).
            is_integer(field)
        };
        if !well_formed {
            break;
        }
        *slot = Some(field);
    }
    // Without a one-letter state the last ')' did not close comm; nothing after it is trusted.
    fields[0]?;
    let number = |field: usize| fields[field - 3].and_then(parse_u64);
    Some(Stat {
        utime_ticks: number(14),
        stime_ticks: number(15),
        num_threads: number(20),
        start_ticks: number(22),
    })
}

/// Parses the value of a `Key:  <n> kB` line of `/proc/<pid>/status`, in KiB (multiply by
/// 1024 for bytes).
///
/// `key` is given without its colon, e.g. `b"VmRSS"`. The first line starting with `key:`
/// decides: it must be newline-terminated and hold exactly a number and the unit `kB`,
/// separated by any ASCII whitespace. A process without an address space (a kernel thread)
/// has no `VmRSS` line at all, hence `None`.
#[must_use]
pub fn parse_status_kib(status: &[u8], key: &[u8]) -> Option<u64> {
    let value =
        complete_lines(status).find_map(|line| line.strip_prefix(key)?.strip_prefix(b":"))?;
    let mut words = words(value);
    match (words.next(), words.next(), words.next()) {
        (Some(number), Some(b"kB"), None) => parse_u64(number),
        _ => None,
    }
}

/// Parses the soft limit on open files from `/proc/<pid>/limits`; `None` when it is
/// `unlimited` or the line is missing or malformed.
///
/// The line must read exactly `Max open files <soft> <hard> files`, each limit a number or
/// `unlimited`; requiring the hard limit and the unit after the soft limit proves the soft
/// limit was not cut short.
#[must_use]
pub fn parse_limits_nofile(limits: &[u8]) -> Option<u64> {
    let line = complete_lines(limits).find(|line| line.starts_with(b"Max open files"))?;
    let mut words = words(line);
    let shape = (
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
        words.next(),
    );
    let (Some(b"Max"), Some(b"open"), Some(b"files"), Some(soft), Some(hard), Some(b"files"), None) =
        shape
    else {
        return None;
    };
    Limit::parse(hard)?;
    match Limit::parse(soft)? {
        Limit::Value(soft) => Some(soft),
        Limit::Unlimited => None,
    }
}

/// One value of `/proc/<pid>/limits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Limit {
    Value(u64),
    Unlimited,
}

impl Limit {
    /// `None` unless the word is a plain number or `unlimited`.
    fn parse(word: &[u8]) -> Option<Limit> {
        if word == b"unlimited" {
            Some(Limit::Unlimited)
        } else {
            parse_u64(word).map(Limit::Value)
        }
    }
}

/// Parses boot time, in seconds since the epoch, from the `btime <n>` line of `/proc/stat`.
///
/// The line must be newline-terminated and hold exactly the key and one number.
#[must_use]
pub fn parse_btime(proc_stat: &[u8]) -> Option<u64> {
    let mut words = complete_lines(proc_stat)
        .map(words)
        .find(|words| words.clone().next() == Some(b"btime".as_slice()))?;
    match (words.next(), words.next(), words.next()) {
        (Some(_), Some(number), None) => parse_u64(number),
        _ => None,
    }
}

/// Parses `AT_CLKTCK` from `/proc/<pid>/auxv`: native-endian `(type, value)` pairs of `usize`
/// words, ended by `AT_NULL`.
///
/// `None` if absent before `AT_NULL` or the end of input, or zero (it is a divisor). A
/// trailing partial pair is ignored. Only valid for the current process's own auxv, since
/// the word size is this build's.
#[must_use]
pub fn parse_auxv_clktck(auxv: &[u8]) -> Option<u64> {
    const WORD: usize = std::mem::size_of::<usize>();
    for pair in auxv.chunks_exact(2 * WORD) {
        let (kind, value) = pair.split_at(WORD);
        let kind = usize::from_ne_bytes(kind.try_into().ok()?);
        match kind {
            AT_NULL => return None,
            AT_CLKTCK => {
                let value = usize::from_ne_bytes(value.try_into().ok()?);
                return u64::try_from(value).ok().filter(|&ticks| ticks > 0);
            }
            _ => {}
        }
    }
    None
}

/// Runs every parser on arbitrary bytes, discarding the results; for property tests that
/// assert the parsers never panic.
#[doc(hidden)]
pub fn fuzz_parsers(bytes: &[u8]) {
    use std::hint::black_box;
    black_box(parse_stat(bytes));
    black_box(parse_status_kib(bytes, b"VmRSS"));
    black_box(parse_status_kib(bytes, b"VmSize"));
    black_box(parse_status_kib(bytes, b""));
    // Also a key taken from the input, so keys with odd bytes get exercised.
    black_box(parse_status_kib(bytes, &bytes[..bytes.len().min(5)]));
    black_box(parse_limits_nofile(bytes));
    black_box(parse_btime(bytes));
    black_box(parse_auxv_clktck(bytes));
    black_box(parse_u64(bytes));
}

/// The newline-terminated lines of `text`, without their newline; an unterminated last line
/// is dropped because it may have been cut short.
fn complete_lines(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split_inclusive(|&b| b == b'\n')
        .filter_map(|line| line.strip_suffix(b"\n"))
}

/// The runs of non-whitespace in `line`.
fn words(line: &[u8]) -> impl Iterator<Item = &[u8]> + Clone {
    line.split(u8::is_ascii_whitespace)
        .filter(|word| !word.is_empty())
}

/// An optional `-` and at least one ASCII digit, nothing else.
fn is_integer(field: &[u8]) -> bool {
    let digits = field.strip_prefix(b"-").unwrap_or(field);
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}

/// A non-negative decimal of ASCII digits only (no sign, no spaces); `None` on overflow.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |value, &byte| {
        if !byte.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::clock;

    /// comm is `(a) b) (c)`: spaces and parentheses, as a process may name itself.
    const STAT_ODD_COMM: &[u8] = b"4242 ((a) b) (c)) S 1 4242 4242 0 -1 4194560 2100 0 3 0 \
        1234 567 0 0 20 0 7 0 98765 1052672000 3000 18446744073709551615 1 1 0 0 0 0 0 4096 \
        17475 0 0 0 17 3 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const STAT_ODD_COMM_VALUES: Stat = Stat {
        utime_ticks: Some(1234),
        stime_ticks: Some(567),
        num_threads: Some(7),
        start_ticks: Some(98765),
    };
    /// A real `cat` line.
    const STAT_CAT: &[u8] = b"3351 (cat) R 3349 3349 2703 0 -1 4194304 104 0 0 0 0 0 0 0 20 0 1 0 \
        19359 3133440 383 18446744073709551615 93906023452672 93906023472553 140727271923792 0 0 \
        0 0 0 0 0 0 0 17 1 0 0 0 0 0 93906023488560 93906023490176 93906869493760 \
        140727271930592 140727271930612 140727271930612 140727271931883 0\n";

    const STATUS: &[u8] = b"Name:\tcat\nUmask:\t0022\nState:\tR (running)\nTgid:\t3956\n\
        Ngid:\t0\nPid:\t3956\nPPid:\t3952\nTracerPid:\t0\nUid:\t0\t0\t0\t0\nGid:\t0\t0\t0\t0\n\
        FDSize:\t256\nGroups:\t \nVmPeak:\t    3708 kB\nVmSize:\t    3708 kB\nVmLck:\t       0 kB\n\
        VmPin:\t       0 kB\nVmHWM:\t    1696 kB\nVmRSS:\t    1696 kB\nRssAnon:\t     112 kB\n\
        RssFile:\t    1584 kB\nRssShmem:\t       0 kB\nVmData:\t    1008 kB\nThreads:\t1\n";
    /// A kernel thread has no address space, so no `Vm*` lines.
    const STATUS_KTHREAD: &[u8] =
        b"Name:\tkthreadd\nUmask:\t0000\nState:\tS (sleeping)\nTgid:\t2\nThreads:\t1\n";

    const LIMITS_HEAD: &str = "\
Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max stack size            8388608              unlimited            bytes     
Max processes             96364                96364                processes 
";
    const LIMITS_TAIL: &str = "\
Max locked memory         8388608              8388608              bytes     
Max realtime timeout      unlimited            unlimited            us        
";

    const PROC_STAT: &[u8] = b"cpu  10132153 290696 3084719 46828483 16683 0 25195 0 0 0\n\
        cpu0 1393280 32966 572056 13366730 5038 0 23213 0 0 0\n\
        intr 199292014 19 0 0 0 0 0 0 0 1 0 0\nctxt 361227648\nbtime 1795757060\n\
        processes 3211394\nprocs_running 2\nprocs_blocked 0\nsoftirq 87216823 0 1 2 3\n";

    fn limits_with(line: &str) -> Vec<u8> {
        format!("{LIMITS_HEAD}{line}{LIMITS_TAIL}").into_bytes()
    }

    fn auxv(pairs: &[(usize, usize)]) -> Vec<u8> {
        pairs
            .iter()
            .flat_map(|&(kind, value)| [kind.to_ne_bytes(), value.to_ne_bytes()])
            .flatten()
            .collect()
    }

    #[test]
    fn parse_u64_cases() {
        let cases: &[(&[u8], Option<u64>)] = &[
            (b"0", Some(0)),
            (b"007", Some(7)),
            (b"1795757060", Some(1_795_757_060)),
            (b"18446744073709551615", Some(u64::MAX)),
            (b"18446744073709551616", None),
            (b"99999999999999999999999", None),
            (b"", None),
            (b"+1", None),
            (b"-1", None),
            (b" 1", None),
            (b"1 ", None),
            (b"1a", None),
            (b"1.5", None),
            (b"\xff", None),
        ];
        for &(input, want) in cases {
            assert_eq!(
                parse_u64(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn parse_stat_whole_lines() {
        let cases: &[(&str, &[u8], Option<Stat>)] = &[
            (
                "comm with spaces and parens",
                STAT_ODD_COMM,
                Some(STAT_ODD_COMM_VALUES),
            ),
            (
                "real cat line",
                STAT_CAT,
                Some(Stat {
                    utime_ticks: Some(0),
                    stime_ticks: Some(0),
                    num_threads: Some(1),
                    start_ticks: Some(19359),
                }),
            ),
            (
                "comm with newline and non-UTF-8",
                b"7 (x\n)\xff)) S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 2 0 9 0\n",
                Some(Stat {
                    utime_ticks: Some(5),
                    stime_ticks: Some(6),
                    num_threads: Some(2),
                    start_ticks: Some(9),
                }),
            ),
            (
                "empty comm",
                b"7 () S 1 1 1 0 -1 0 0 0 0 0 5 6 0 0 20 0 2 0 9\n",
                Some(Stat {
                    utime_ticks: Some(5),
                    stime_ticks: Some(6),
                    num_threads: Some(2),
                    start_ticks: Some(9),
                }),
            ),
        ];
        for &(name, input, want) in cases {
            assert_eq!(parse_stat(input), want, "{name}");
        }
    }

    /// Damage costs the fields it touches and those after it, never a wrong value.
    #[test]
    fn parse_stat_damaged_lines() {
        let all_none = Some(Stat::default());
        let cases: &[(&str, &[u8], Option<Stat>)] = &[
            (
                "cut after stime",
                b"4242 (w) S 1 4242 4242 0 -1 4194560 2100 0 3 0 1234 567 0 0",
                Some(Stat {
                    utime_ticks: Some(1234),
                    stime_ticks: Some(567),
                    ..Stat::default()
                }),
            ),
            (
                "cut inside starttime must not give a smaller number",
                b"4242 (w) S 1 4242 4242 0 -1 4194560 2100 0 3 0 1234 567 0 0 20 0 7 0 987",
                Some(Stat {
                    start_ticks: None,
                    ..STAT_ODD_COMM_VALUES
                }),
            ),
            (
                "unterminated but starttime followed by a space",
                b"4242 (w) S 1 4242 4242 0 -1 4194560 2100 0 3 0 1234 567 0 0 20 0 7 0 98765 10",
                Some(STAT_ODD_COMM_VALUES),
            ),
            (
                "starttime last and newline-terminated",
                b"4242 (w) S 1 4242 4242 0 -1 4194560 2100 0 3 0 1234 567 0 0 20 0 7 0 98765\n",
                Some(STAT_ODD_COMM_VALUES),
            ),
            (
                "overflowing utime costs cpu only",
                b"1 (w) S 1 1 1 0 -1 0 0 0 0 0 99999999999999999999999 567 0 0 20 0 7 0 98765 0\n",
                Some(Stat {
                    utime_ticks: None,
                    ..STAT_ODD_COMM_VALUES
                }),
            ),
            (
                "double space misaligns: later fields dropped",
                b"1 (w) S 1 1 1 0 -1 0 0 0 0 0 1234 567  0 0 20 0 7 0 98765 0\n",
                Some(Stat {
                    utime_ticks: Some(1234),
                    stime_ticks: Some(567),
                    ..Stat::default()
                }),
            ),
            (
                "non-integer field drops it and later ones",
                b"1 (w) S 1 1 1 0 -1 0 0 0 0 0 1234 567 0 0 20 x 7 0 98765 0\n",
                Some(Stat {
                    utime_ticks: Some(1234),
                    stime_ticks: Some(567),
                    ..Stat::default()
                }),
            ),
            (
                "negative starttime is not a tick count",
                b"1 (w) S 1 1 1 0 -1 0 0 0 0 0 1234 567 0 0 20 0 7 0 -5 0\n",
                Some(Stat {
                    start_ticks: None,
                    ..STAT_ODD_COMM_VALUES
                }),
            ),
            ("nothing after comm", b"1 (w) \n", None),
            ("state only", b"1 (w) S\n", all_none),
            ("cut inside comm", b"4242 ((a) b) (c", None),
            ("cut right after comm", b"4242 ((a) b) (c))", None),
            ("state is not one letter", b"1 (w) SS 1 1 1\n", None),
            ("no pid", b"(w) S 1 1 1\n", None),
            ("pid not a number", b"x1 (w) S 1 1 1\n", None),
            ("close before open", b"1 ) (w S 1\n", None),
            ("empty", b"", None),
            ("garbage", b"\xff\xfe\x00)(\x80 garbage \xc3\x28", None),
        ];
        for &(name, input, want) in cases {
            assert_eq!(parse_stat(input), want, "{name}");
        }
    }

    /// Cutting a sample anywhere must give each value either in full or `None`.
    #[test]
    fn truncation_never_gives_a_wrong_value() {
        fn check<T: PartialEq + std::fmt::Debug>(sample: &[u8], parse: impl Fn(&[u8]) -> T) {
            let full = parse(sample);
            for len in 0..sample.len() {
                let cut = parse(&sample[..len]);
                assert!(
                    cut == full || cut == parse(b""),
                    "cut at {len}: {cut:?} vs full {full:?}"
                );
            }
        }
        for stat in [STAT_ODD_COMM, STAT_CAT] {
            check(stat, |s| parse_stat(s).unwrap_or_default().utime_ticks);
            check(stat, |s| parse_stat(s).unwrap_or_default().stime_ticks);
            check(stat, |s| parse_stat(s).unwrap_or_default().num_threads);
            check(stat, |s| parse_stat(s).unwrap_or_default().start_ticks);
        }
        check(STATUS, |s| parse_status_kib(s, b"VmRSS"));
        check(STATUS, |s| parse_status_kib(s, b"VmSize"));
        check(
            &limits_with(
                "Max open files            20000                20000                files     \n",
            ),
            parse_limits_nofile,
        );
        check(PROC_STAT, parse_btime);
        check(
            &auxv(&[(33, 0x7f00), (6, 4096), (AT_CLKTCK, 100), (AT_NULL, 0)]),
            parse_auxv_clktck,
        );
    }

    #[test]
    fn parse_status_kib_cases() {
        type Case<'a> = (&'a str, &'a [u8], &'a [u8], Option<u64>);
        let cases: &[Case] = &[
            ("real VmRSS", STATUS, b"VmRSS", Some(1696)),
            ("real VmSize", STATUS, b"VmSize", Some(3708)),
            ("kernel thread has no VmRSS", STATUS_KTHREAD, b"VmRSS", None),
            (
                "prefix of another key does not match",
                STATUS,
                b"VmRS",
                None,
            ),
            ("count is not a kB value", STATUS, b"Threads", None),
            (
                "spaces instead of tab",
                b"VmRSS:    2116 kB\n",
                b"VmRSS",
                Some(2116),
            ),
            (
                "tabs everywhere",
                b"VmRSS:\t2116\tkB\t\n",
                b"VmRSS",
                Some(2116),
            ),
            (
                "no space after colon",
                b"VmRSS:2116 kB\n",
                b"VmRSS",
                Some(2116),
            ),
            ("CRLF", b"VmRSS:\t2116 kB\r\n", b"VmRSS", Some(2116)),
            ("space before colon", b"VmRSS :\t2116 kB\n", b"VmRSS", None),
            ("missing unit", b"VmRSS:\t2116\n", b"VmRSS", None),
            ("other unit", b"VmRSS:\t2116 MB\n", b"VmRSS", None),
            ("extra word", b"VmRSS:\t2116 kB x\n", b"VmRSS", None),
            ("unit cut short", b"VmRSS:\t2116 k", b"VmRSS", None),
            ("no final newline", b"VmRSS:\t2116 kB", b"VmRSS", None),
            ("missing number", b"VmRSS:\t kB\n", b"VmRSS", None),
            ("negative", b"VmRSS:\t-2116 kB\n", b"VmRSS", None),
            (
                "overflow",
                b"VmRSS:\t99999999999999999999999 kB\n",
                b"VmRSS",
                None,
            ),
            (
                "first matching line decides",
                b"VmRSS:\tx kB\nVmRSS:\t5 kB\n",
                b"VmRSS",
                None,
            ),
            (
                "non-UTF-8 elsewhere",
                b"Name:\t\xff\xfe)(\nVmRSS:\t    2116 kB\n",
                b"VmRSS",
                Some(2116),
            ),
            ("empty", b"", b"VmRSS", None),
        ];
        for &(name, input, key, want) in cases {
            assert_eq!(parse_status_kib(input, key), want, "{name}");
        }
    }

    #[test]
    fn parse_limits_nofile_cases() {
        let cases: &[(&str, &str, Option<u64>)] = &[
            (
                "real line",
                "Max open files            20000                20000                files     \n",
                Some(20000),
            ),
            (
                "soft below hard",
                "Max open files            1024                 524288               files     \n",
                Some(1024),
            ),
            (
                "hard unlimited",
                "Max open files            1024                 unlimited            files     \n",
                Some(1024),
            ),
            (
                "soft unlimited",
                "Max open files            unlimited            unlimited            files     \n",
                None,
            ),
            (
                "single spaces",
                "Max open files 1024 4096 files\n",
                Some(1024),
            ),
            ("missing line", "", None),
            ("no hard limit", "Max open files            1024\n", None),
            ("no unit", "Max open files            1024 4096\n", None),
            (
                "other unit",
                "Max open files            1024 4096 bytes\n",
                None,
            ),
            (
                "extra word",
                "Max open files            1024 4096 files x\n",
                None,
            ),
            (
                "bad soft",
                "Max open files            1k 4096 files\n",
                None,
            ),
            (
                "bad hard",
                "Max open files            1024 4k files\n",
                None,
            ),
            (
                "overflow",
                "Max open files            99999999999999999999999 unlimited files\n",
                None,
            ),
            (
                "longer name",
                "Max open filesystems      1024 4096 files\n",
                None,
            ),
        ];
        for &(name, line, want) in cases {
            assert_eq!(parse_limits_nofile(&limits_with(line)), want, "{name}");
        }
        let cut = format!("{LIMITS_HEAD}Max open files            1024");
        assert_eq!(
            parse_limits_nofile(cut.as_bytes()),
            None,
            "cut after soft limit"
        );
        assert_eq!(parse_limits_nofile(b"\xff\xfe\n\x80"), None, "garbage");
    }

    #[test]
    fn parse_btime_cases() {
        let cases: &[(&str, &[u8], Option<u64>)] = &[
            ("real /proc/stat", PROC_STAT, Some(1_795_757_060)),
            ("alone", b"btime 1795757060\n", Some(1_795_757_060)),
            (
                "absent",
                b"cpu  1 2 3\nctxt 361227648\nprocesses 3211394\n",
                None,
            ),
            ("cut short", b"ctxt 361227648\nbtime 17957", None),
            ("no final newline", b"btime 1795757060", None),
            ("longer key", b"btimex 5\n", None),
            ("extra word", b"btime 5 6\n", None),
            ("missing value", b"btime\n", None),
            ("negative", b"btime -5\n", None),
            ("overflow", b"btime 99999999999999999999999\n", None),
            (
                "non-UTF-8 elsewhere",
                b"intr \xff\xfe\nbtime 42\n",
                Some(42),
            ),
            ("empty", b"", None),
        ];
        for &(name, input, want) in cases {
            assert_eq!(parse_btime(input), want, "{name}");
        }
    }

    #[test]
    fn parse_auxv_clktck_cases() {
        let mut trailing = auxv(&[(AT_CLKTCK, 100), (AT_NULL, 0)]);
        trailing.extend_from_slice(&[0xff; 5]);
        let cases: &[(&str, Vec<u8>, Option<u64>)] = &[
            (
                "typical",
                auxv(&[
                    (33, 0x7f89_f977_c000),
                    (16, 0x178b_fbff),
                    (6, 4096),
                    (AT_CLKTCK, 100),
                    (AT_NULL, 0),
                ]),
                Some(100),
            ),
            (
                "first entry",
                auxv(&[(AT_CLKTCK, 250), (AT_NULL, 0)]),
                Some(250),
            ),
            (
                "no AT_NULL",
                auxv(&[(6, 4096), (AT_CLKTCK, 1024)]),
                Some(1024),
            ),
            ("absent", auxv(&[(6, 4096), (AT_NULL, 0)]), None),
            (
                "after AT_NULL",
                auxv(&[(AT_NULL, 0), (AT_CLKTCK, 100)]),
                None,
            ),
            (
                "zero is rejected",
                auxv(&[(AT_CLKTCK, 0), (AT_NULL, 0)]),
                None,
            ),
            (
                "17 as a value is not a key",
                auxv(&[(6, AT_CLKTCK), (AT_NULL, 0)]),
                None,
            ),
            ("trailing partial pair", trailing, Some(100)),
            (
                "cut inside the pair",
                auxv(&[(AT_CLKTCK, 100)])[..12].to_vec(),
                None,
            ),
            ("empty", Vec::new(), None),
        ];
        for (name, input, want) in cases {
            assert_eq!(parse_auxv_clktck(input), *want, "{name}");
        }
    }

    #[test]
    fn derived_values() {
        let stat = STAT_ODD_COMM_VALUES;
        let cases: &[(&str, Option<u64>, Option<u64>)] = &[
            ("cpu at 100 Hz", cpu_nanos(&stat, 100), Some(18_010_000_000)),
            ("cpu at 250 Hz", cpu_nanos(&stat, 250), Some(7_204_000_000)),
            (
                "cpu at 300 Hz, rounded down",
                cpu_nanos(&stat, 300),
                Some(6_003_333_333),
            ),
            (
                "cpu without stime",
                cpu_nanos(
                    &Stat {
                        stime_ticks: None,
                        ..stat
                    },
                    100,
                ),
                None,
            ),
            (
                "cpu sum overflows",
                cpu_nanos(
                    &Stat {
                        utime_ticks: Some(u64::MAX),
                        stime_ticks: Some(1),
                        ..stat
                    },
                    100,
                ),
                None,
            ),
            (
                "cpu past u64 nanoseconds",
                cpu_nanos(
                    &Stat {
                        utime_ticks: Some(u64::MAX / 2),
                        stime_ticks: Some(0),
                        ..stat
                    },
                    100,
                ),
                None,
            ),
            (
                "start",
                start_time_nanos(Some(1000), Some(250), 100),
                Some(1_002_500_000_000),
            ),
            (
                "start without btime",
                start_time_nanos(None, Some(250), 100),
                None,
            ),
            (
                "start without ticks",
                start_time_nanos(Some(1000), None, 100),
                None,
            ),
            (
                "start past u64 nanoseconds",
                start_time_nanos(Some(u64::MAX / 1000), Some(0), 100),
                None,
            ),
        ];
        for &(name, got, want) in cases {
            assert_eq!(got, want, "{name}");
        }
        assert_eq!(kib_to_bytes(1696), Some(1_736_704));
        assert_eq!(kib_to_bytes(u64::MAX / 1000), None);
    }

    #[test]
    fn live_reading_is_complete_and_plausible() {
        let mut reader = ProcessReader::new();
        let auxv = std::fs::read("/proc/self/auxv").expect("this test needs /proc");
        assert_eq!(parse_auxv_clktck(&auxv), Some(reader.clk_tck));

        let stats = reader.read();
        let now = clock::unix_time().as_secs_f64();
        let cpu = stats.cpu_nanos.expect("cpu_nanos");
        let rss = stats.resident_memory_bytes.expect("resident_memory_bytes");
        let vsize = stats.virtual_memory_bytes.expect("virtual_memory_bytes");
        let start = stats.start_time_nanos.expect("start_time_nanos") as f64 / 1e9;
        let open = stats.open_fds.expect("open_fds");
        let max = stats.max_fds.expect("max_fds");
        let threads = stats.threads.expect("threads");
        assert!(cpu < 3600 * 1_000_000_000, "{stats:?}");
        assert!(rss > 0 && rss % 1024 == 0, "{stats:?}");
        assert!(vsize >= rss, "{stats:?}");
        // btime is whole seconds, so allow a little slack into the future.
        assert!(
            start > now - 86_400.0 && start < now + 5.0,
            "{stats:?}, now {now}"
        );
        assert!(open >= 3 && open <= max, "{stats:?}");
        assert!(threads >= 1, "{stats:?}");
    }

    #[test]
    fn reads_reuse_one_buffer() {
        let mut reader = ProcessReader::default();
        let first = reader.read();
        let capacity = reader.buf.capacity();
        for _ in 0..20 {
            let again = reader.read();
            assert_eq!(again.start_time_nanos, first.start_time_nanos);
            assert_eq!(again.max_fds, first.max_fds);
        }
        assert_eq!(
            reader.buf.capacity(),
            capacity,
            "the buffer grew after warm-up"
        );
    }

    #[test]
    fn fuzz_parsers_never_panic() {
        // Bytes the parsers care about, so random inputs reach deep into them.
        const ALPHABET: &[u8] = b"0123456789 \t\n()-:kBSRbtimeVmRSunlitdMaxopenfs\x00\x11\xff\x80";
        let limits = limits_with("Max open files 1024 4096 files\n");
        let auxv = auxv(&[(6, 4096), (AT_CLKTCK, 100), (AT_NULL, 0)]);
        let samples: [&[u8]; 6] = [STAT_ODD_COMM, STAT_CAT, STATUS, &limits, PROC_STAT, &auxv];
        let mut rng = fastrand::Rng::with_seed(0x9e37_79b9_7f4a_7c15);
        let mut input = Vec::new();
        for round in 0..6000 {
            input.clear();
            match round % 3 {
                0 => (0..rng.usize(..64)).for_each(|_| input.push(rng.u8(..))),
                1 => (0..rng.usize(..200))
                    .for_each(|_| input.push(ALPHABET[rng.usize(..ALPHABET.len())])),
                _ => {
                    // A real sample with a few bytes overwritten, then cut anywhere.
                    input.extend_from_slice(samples[rng.usize(..samples.len())]);
                    for _ in 0..rng.usize(..4) {
                        let at = rng.usize(..input.len());
                        input[at] = ALPHABET[rng.usize(..ALPHABET.len())];
                    }
                    input.truncate(rng.usize(..=input.len()));
                }
            }
            fuzz_parsers(&input);
            assert_ne!(
                parse_auxv_clktck(&input),
                Some(0),
                "a zero tick rate would divide by zero"
            );
        }
    }
}
