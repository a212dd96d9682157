//! The legacy-kernel promise, run instead of trusted: the binary under test (the release
//! build when `WIDGET_EXPORTER_BIN` points at it) starts under a seccomp filter that makes
//! every system call added after a given Linux release fail with `ENOSYS`, exactly as that
//! kernel would, and the core paths must still work: serve and scrape both formats, follow
//! a log across a rename rotation, write a textfile, restart in place, socket activation.
//! Two kernels: 3.2 (the floor the binary's ELF note names) and 3.10 (CentOS 7). The calls
//! and the release that added each are in `tests/legacy/syscalls.tbl`.
//!
//! The filter is installed in the child between fork and exec (`pre_exec`), so it covers
//! the exporter from its first instruction, every image a restart in place executes, and
//! whatever `systemd-socket-activate` executes. The tests also prove it bites: a child checks
//! that refused calls really fail with `ENOSYS` and allowed ones do not, and the kernel's
//! `Seccomp:` line for the exporter says it runs filtered. What the filter cannot model:
//! flags and options that old calls gained later (`O_TMPFILE`, new `prctl` options, …); a
//! new flag on an old call still reaches today's kernel.
// The filter is installed, and probed, with raw system calls; each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, c_ulong};
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::logtail::{counts, following, line, wait_for, Counts, FAILED, FINISHED};
use crate::support::{
    self, append, binary, provoke_restart, require_tool, sample, say, tool, try_request,
    wait_until, Exporter, TempDir,
};

/// The table: `number name since`, `#` comments.
const TABLE: &str = include_str!("legacy/syscalls.tbl");

/// The highest x86_64 system call number Linux 3.2 has (`process_vm_writev`). Numbers are
/// handed out in merge order, so every number up to it exists on both modelled kernels.
const FLOOR: u32 = 311;

/// A Linux release, (major, minor).
type Version = (u32, u32);

/// The kernels modelled: the binary's own floor, and CentOS 7's.
const KERNELS: [Version; 2] = [(3, 2), (3, 10)];

/// One row of the table.
#[derive(Debug, Clone, PartialEq)]
struct Syscall {
    nr: u32,
    name: &'static str,
    since: Version,
}

/// The table, parsed; a malformed row fails the test naming the row.
fn table() -> Vec<Syscall> {
    TABLE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let bad = || panic!("tests/legacy/syscalls.tbl: malformed row {l:?}");
            let mut cols = l.split_whitespace();
            let (Some(nr), Some(name), Some(since), None) =
                (cols.next(), cols.next(), cols.next(), cols.next())
            else {
                bad()
            };
            let Some((major, minor)) = since.split_once('.') else {
                bad()
            };
            match (nr.parse(), major.parse(), minor.parse()) {
                (Ok(nr), Ok(major), Ok(minor)) => Syscall {
                    nr,
                    name,
                    since: (major, minor),
                },
                _ => bad(),
            }
        })
        .collect()
}

/// Whether the modelled `kernel` lacks x86_64 call `nr` (so the filter refuses it).
fn lacks(kernel: Version, nr: u32, table: &[Syscall]) -> bool {
    nr > FLOOR && !table.iter().any(|s| s.nr == nr && s.since <= kernel)
}

fn kernel_name(kernel: Version) -> String {
    format!("Linux {}.{}", kernel.0, kernel.1)
}

/// The filter runs only where its numbers mean what the table says.
fn on_x86_64(what: &str) -> bool {
    if cfg!(target_arch = "x86_64") {
        return true;
    }
    crate::support::skip(&format!(
        "{what}: the legacy-kernel filter models x86_64 system calls, this is {}",
        std::env::consts::ARCH
    ));
    false
}

// ---------------------------------------------------------------------------------------
// The filter: classic BPF over `struct seccomp_data` (nr at offset 0, arch at offset 4).

/// `struct sock_filter`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct SockFilter {
    code: u16,
    jt: u8,
    jf: u8,
    k: u32,
}

/// `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const SockFilter,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K
const OFFSET_NR: u32 = 0;
const OFFSET_ARCH: u32 = 4;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
const AUDIT_ARCH_I386: u32 = 0x4000_0003;
/// The x32 ABI's calls carry this bit; x32 was merged in 3.4, so both kernels lack it.
const X32_SYSCALL_BIT: u32 = 0x4000_0000;
const ENOSYS: i32 = 38;
const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const REFUSE: u32 = SECCOMP_RET_ERRNO | ENOSYS as u32;
const PR_SET_SECCOMP: c_int = 22;
const PR_SET_NO_NEW_PRIVS: c_int = 38;
const SECCOMP_MODE_FILTER: c_ulong = 2;

extern "C" {
    fn prctl(option: c_int, ...) -> c_int;
    fn syscall(number: c_long, ...) -> c_long;
    fn kill(pid: c_int, sig: c_int) -> c_int;
}

fn op(code: u16, k: u32) -> SockFilter {
    SockFilter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The program for `kernel`: a foreign ABI or x32 is refused; numbers up to [`FLOOR`] are
/// allowed; above it only the calls the table dates at or before `kernel`. Everything else
/// (including calls newer than the table) gets `ENOSYS`.
fn program(kernel: Version, table: &[Syscall]) -> Vec<SockFilter> {
    let allowed: Vec<u32> = table
        .iter()
        .filter(|s| s.nr > FLOOR && s.since <= kernel)
        .map(|s| s.nr)
        .collect();
    let refuse_at = 6 + allowed.len();
    let allow_at = refuse_at + 1;
    let to = |from: usize, target: usize| {
        u8::try_from(target - from - 1).expect("a BPF jump spans at most 255 instructions")
    };
    let mut p = vec![
        op(BPF_LD_W_ABS, OFFSET_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 1, 0),
        op(BPF_RET_K, REFUSE),
        op(BPF_LD_W_ABS, OFFSET_NR),
        jump(BPF_JGE_K, X32_SYSCALL_BIT, to(4, refuse_at), 0),
        jump(BPF_JGT_K, FLOOR, 0, to(5, allow_at)),
    ];
    for (i, nr) in allowed.iter().enumerate() {
        p.push(jump(BPF_JEQ_K, *nr, to(6 + i, allow_at), 0));
    }
    p.push(op(BPF_RET_K, REFUSE));
    p.push(op(BPF_RET_K, SECCOMP_RET_ALLOW));
    assert_eq!(p.len(), allow_at + 1);
    p
}

/// Runs `prog` on one call the way the kernel does, for the opcodes [`program`] emits.
fn verdict(prog: &[SockFilter], arch: u32, nr: u32) -> u32 {
    let (mut pc, mut acc) = (0usize, 0u32);
    loop {
        let i = prog[pc];
        pc += 1;
        match i.code {
            BPF_LD_W_ABS => {
                acc = match i.k {
                    OFFSET_NR => nr,
                    OFFSET_ARCH => arch,
                    k => panic!("load from offset {k}"),
                }
            }
            BPF_JEQ_K | BPF_JGT_K | BPF_JGE_K => {
                let taken = match i.code {
                    BPF_JEQ_K => acc == i.k,
                    BPF_JGT_K => acc > i.k,
                    _ => acc >= i.k,
                };
                pc += usize::from(if taken { i.jt } else { i.jf });
            }
            BPF_RET_K => return i.k,
            code => panic!("opcode {code:#x}"),
        }
    }
}

/// Installs `prog` on the calling thread: no new privileges (which lets an unprivileged
/// process install a filter), then the filter. Only raw system calls: it runs between fork
/// and exec.
fn install(prog: &[SockFilter]) -> io::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS reads only integer arguments (the unused ones must be 0).
    if unsafe {
        prctl(
            PR_SET_NO_NEW_PRIVS,
            1 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    let fprog = SockFprog {
        len: u16::try_from(prog.len()).expect("a short program"),
        filter: prog.as_ptr(),
    };
    // SAFETY: `fprog` and the instructions it points at outlive the call, and the kernel
    // copies the program before returning.
    if unsafe {
        prctl(
            PR_SET_SECCOMP,
            SECCOMP_MODE_FILTER,
            std::ptr::from_ref(&fprog) as c_ulong,
            0 as c_ulong,
            0 as c_ulong,
        )
    } != 0
    {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes `cmd` start under the filter for `kernel`.
fn filtered(cmd: &mut Command, kernel: Version) -> &mut Command {
    let prog = program(kernel, &table());
    // SAFETY: the closure runs in the forked child and only makes two prctl calls on a
    // program built before the fork: no allocation, no lock.
    unsafe { cmd.pre_exec(move || install(&prog)) }
}

/// What the kernel says of the filter on `pid`: its `Seccomp:` line (2 = filtered).
fn seccomp_mode(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Seccomp:").map(|v| v.trim().to_owned()))
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

// ---------------------------------------------------------------------------------------
// The table and the program, without a process.

#[test]
fn the_table_is_well_formed_and_agrees_with_the_kernel_headers() {
    let table = table();
    assert!(table.len() >= 70, "{} rows", table.len());
    for pair in table.windows(2) {
        assert!(
            pair[0].nr < pair[1].nr,
            "rows out of order or repeated: {pair:?}"
        );
    }
    for s in &table {
        assert!(
            s.nr >= 310 && s.since >= (3, 2),
            "only calls from the 3.2 floor on belong here: {s:?}"
        );
    }
    // Numbers and dates that the rest of this file leans on, spelled out independently.
    let row = |name: &str| {
        table
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the table"))
    };
    for (name, nr, since) in [
        ("process_vm_writev", 311, (3, 2)),
        ("kcmp", 312, (3, 5)),
        ("finit_module", 313, (3, 8)),
        ("sched_setattr", 314, (3, 14)),
        ("getrandom", 318, (3, 17)),
        ("statx", 332, (4, 11)),
        ("rseq", 334, (4, 18)),
        ("clone3", 435, (5, 3)),
        ("close_range", 436, (5, 9)),
        ("futex_waitv", 449, (5, 16)),
    ] {
        assert_eq!(row(name), &Syscall { nr, name, since }, "{name}");
    }

    let header = Path::new("/usr/include/x86_64-linux-gnu/asm/unistd_64.h");
    let Ok(text) = std::fs::read_to_string(header) else {
        say(&format!(
            "note: {} not found; numbers not cross-checked",
            header.display()
        ));
        return;
    };
    let defined: Vec<(&str, u32)> = text
        .lines()
        .filter_map(|l| {
            let mut w = l.strip_prefix("#define __NR_")?.split_whitespace();
            Some((w.next()?, w.next()?.parse().ok()?))
        })
        .collect();
    let mut checked = 0;
    for s in &table {
        if let Some((_, nr)) = defined.iter().find(|(name, _)| *name == s.name) {
            assert_eq!(*nr, s.nr, "{} is {nr} in {}", s.name, header.display());
            checked += 1;
        }
    }
    assert!(
        checked >= 50,
        "only {checked} rows found in {}",
        header.display()
    );
    let undated: Vec<&str> = defined
        .iter()
        .filter(|(_, nr)| *nr > FLOOR && !table.iter().any(|s| s.nr == *nr))
        .map(|(name, _)| *name)
        .collect();
    say(&format!(
        "legacy table: {checked} of {} rows agree with {}; calls there the table does not date (refused at every modelled kernel): {undated:?}",
        table.len(),
        header.display()
    ));
}

#[test]
fn the_filter_program_refuses_exactly_what_each_kernel_lacked() {
    let table = table();
    for kernel in KERNELS {
        let prog = program(kernel, &table);
        for nr in 0..1024 {
            let want = if lacks(kernel, nr, &table) {
                REFUSE
            } else {
                SECCOMP_RET_ALLOW
            };
            assert_eq!(
                verdict(&prog, AUDIT_ARCH_X86_64, nr),
                want,
                "call {nr} under {}",
                kernel_name(kernel)
            );
        }
        // x32 (3.4) and a foreign ABI, even for calls native x86_64 has.
        assert_eq!(verdict(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT), REFUSE);
        assert_eq!(
            verdict(&prog, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 1),
            REFUSE
        );
        assert_eq!(verdict(&prog, AUDIT_ARCH_I386, 0), REFUSE);
    }
    // The boundary between the two kernels, by literal numbers: kcmp (3.5) and
    // finit_module (3.8) exist on CentOS 7 but not on 3.2; sched_setattr (3.14) on neither.
    let (old, centos) = (program((3, 2), &table), program((3, 10), &table));
    let x = |prog: &[SockFilter], nr| verdict(prog, AUDIT_ARCH_X86_64, nr);
    assert_eq!(
        [0, 231, 311, 312, 313, 314, 318, 332, 435, 999].map(|nr| x(&old, nr) == REFUSE),
        [false, false, false, true, true, true, true, true, true, true]
    );
    assert_eq!(
        [0, 231, 311, 312, 313, 314, 318, 332, 435, 999].map(|nr| x(&centos, nr) == REFUSE),
        [false, false, false, false, false, true, true, true, true, true]
    );
}

// ---------------------------------------------------------------------------------------
// The filter bites.

/// Calls the child makes once filtered, (name, number): one from before 3.2, the two that
/// 3.10 has and 3.2 lacks, and three that both lack. [`probe_calls`] gives each arguments
/// that make it harmless when allowed.
const PROBES: [(&str, c_long); 6] = [
    ("getcpu", 309),
    ("kcmp", 312),
    ("finit_module", 313),
    ("getrandom", 318),
    ("statx", 332),
    ("clone3", 435),
];

/// Makes each [`PROBES`] call; its result, or the negated errno.
fn probe_calls() -> [i64; PROBES.len()] {
    let mut out = [0i64; PROBES.len()];
    let mut byte = [0u8; 8];
    let mut statx_buf = [0u8; 256];
    let mut cpu = 0u32;
    for (slot, (_, nr)) in out.iter_mut().zip(PROBES) {
        // SAFETY: every pointer passed is to a live local of sufficient size or null where
        // the call allows it; the calls that could act are given arguments that fail first
        // (finit_module on fd -1, clone3 with size 0; kcmp only compares our fd 0 with itself).
        let r = unsafe {
            match nr {
                309 => syscall(
                    nr,
                    std::ptr::from_mut(&mut cpu),
                    std::ptr::null::<u8>(),
                    std::ptr::null::<u8>(),
                ),
                312 => {
                    let pid = c_int::try_from(std::process::id()).unwrap_or(0);
                    syscall(nr, pid, pid, 0 as c_long, 0 as c_long, 0 as c_long)
                }
                313 => syscall(nr, -1 as c_long, c"".as_ptr(), 0 as c_long),
                318 => syscall(nr, byte.as_mut_ptr(), 1usize, 1 as c_ulong),
                332 => syscall(
                    nr,
                    -100 as c_long,
                    c"/".as_ptr(),
                    0 as c_long,
                    0x7ff as c_ulong,
                    statx_buf.as_mut_ptr(),
                ),
                _ => syscall(nr, std::ptr::null::<u8>(), 0usize),
            }
        };
        *slot = if r < 0 {
            -i64::from(io::Error::last_os_error().raw_os_error().unwrap_or(0))
        } else {
            #[allow(clippy::useless_conversion)] // c_long is i32 on 32-bit targets
            i64::from(r)
        };
    }
    out
}

/// A child under `kernel`'s filter makes the [`PROBES`] calls, reports them over a socket,
/// then executes the binary under test with `--version`; returns the reports and the
/// version line.
fn probe_under(kernel: Version) -> ([i64; PROBES.len()], String) {
    let (mut rx, tx) = UnixStream::pair().expect("socketpair");
    let prog = program(kernel, &table());
    let mut cmd = Command::new(binary());
    cmd.arg("--version").stdin(Stdio::null());
    // SAFETY: the closure runs in the forked child: prctl, raw system calls and one write
    // of a stack buffer to a socket made before the fork; no allocation, no lock.
    unsafe {
        cmd.pre_exec(move || {
            install(&prog)?;
            let mut bytes = [0u8; 8 * PROBES.len()];
            for (chunk, r) in bytes.chunks_mut(8).zip(probe_calls()) {
                chunk.copy_from_slice(&r.to_ne_bytes());
            }
            (&tx).write_all(&bytes)
        });
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?} under the filter: {e}"));
    drop(cmd); // closes our copy of the child's end, so the read below ends
    let mut bytes = Vec::new();
    rx.read_to_end(&mut bytes).expect("read the probe report");
    assert_eq!(bytes.len(), 8 * PROBES.len(), "probe report");
    let mut got = [0i64; PROBES.len()];
    for (g, chunk) in got.iter_mut().zip(bytes.chunks(8)) {
        *g = i64::from_ne_bytes(chunk.try_into().expect("8 bytes"));
    }
    assert!(
        out.status.success(),
        "--version under the {} filter: {:?}\n{}",
        kernel_name(kernel),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (got, String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

#[test]
fn the_filter_bites_refused_calls_fail_with_enosys_and_allowed_ones_do_not() {
    if !on_x86_64("the filter bites") {
        return;
    }
    let table = table();
    // The same calls unfiltered, to tell the filter's ENOSYS from a host kernel's own.
    let native = probe_calls();
    for kernel in KERNELS {
        let (filtered, version) = probe_under(kernel);
        let mut seen = Vec::new();
        for (i, (name, nr)) in PROBES.iter().enumerate() {
            let refused = lacks(kernel, *nr as u32, &table);
            let host_lacks = native[i] == -i64::from(ENOSYS);
            seen.push(format!("{name}={}", filtered[i]));
            if refused {
                assert_eq!(
                    filtered[i],
                    -i64::from(ENOSYS),
                    "{name} under {} must fail with ENOSYS (unfiltered: {})",
                    kernel_name(kernel),
                    native[i]
                );
            } else if !host_lacks {
                assert_ne!(
                    filtered[i],
                    -i64::from(ENOSYS),
                    "{name} exists on {} and must not be refused",
                    kernel_name(kernel)
                );
            }
        }
        say(&format!(
            "{} filter: {} (negative: -errno; unfiltered here: {native:?}); the binary under it printed {version:?}",
            kernel_name(kernel),
            seen.join(" ")
        ));
    }
}

// ---------------------------------------------------------------------------------------
// The core paths.

/// A scrape in text 0.0.4 and one in OpenMetrics, each well-formed enough to tell.
fn scrape_both_formats(e: &Exporter, name: &str) {
    let text = e.get("/metrics");
    assert_eq!(text.status, 200, "{name}: {}", e.log());
    let ct = text.header("Content-Type").unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{name}: {ct}");
    assert!(
        text.body
            .contains("# TYPE widgets_processed_total counter\n"),
        "{name}: {}",
        text.body
    );
    let om = e.get_with(
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0\r\n",
    );
    assert_eq!(om.status, 200, "{name}: {}", e.log());
    let ct = om.header("Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("application/openmetrics-text; version=1.0.0"),
        "{name}: {ct}"
    );
    assert!(om.body.ends_with("# EOF\n"), "{name}: {}", om.body);
}

fn core_paths(kernel: Version) {
    let name = kernel_name(kernel);
    let dir = TempDir::new("legacy");
    let path = dir.join("app.log");
    let rotated = dir.join("app.log.1");
    let prom = dir.join("widgets.prom");
    append(&path, "");
    let log_flag = format!("--widget.log.path={}", path.display());
    let prom_flag = format!("--textfile.path={}", prom.display());
    let flags = [
        "--widget.source=log",
        &log_flag,
        FINISHED,
        FAILED,
        "--widget.log.poll-interval=50ms",
        &prom_flag,
        "--textfile.interval=100ms",
    ];
    let e = following(Exporter::start_with(filtered(
        Command::new(binary()).args(flags),
        kernel,
    )));
    let pid = e.child.id();
    let log = || e.log();
    let within = Duration::from_secs(30);
    assert_eq!(seccomp_mode(pid), "2", "{name}: the exporter runs filtered");

    scrape_both_formats(&e, &name);

    // A log followed across a rename rotation: the application goes on writing to the
    // renamed file until it reopens, then writes to the new one.
    for i in 0..10 {
        append(&path, &line(i));
    }
    let seen = |c: &Counts| (c.matched, c.renames);
    wait_for(&e, "the first 10 lines", |c| seen(c) == (10, 0));
    std::fs::rename(&path, &rotated).expect("rotate");
    for i in 10..13 {
        append(&rotated, &line(i));
    }
    for i in 13..20 {
        append(&path, &line(i));
    }
    wait_for(&e, "20 lines across the rotation", |c| seen(c) == (20, 1));
    std::thread::sleep(Duration::from_millis(300)); // six polls: nothing read twice
    assert_eq!(
        seen(&counts(&e)),
        (20, 1),
        "{name}: exactly once across rotation"
    );

    // The textfile, with the same counts.
    wait_until(
        "the textfile to show the 20 lines",
        within,
        || {
            std::fs::read_to_string(&prom)
                .is_ok_and(|body| sample(&body, "widgets_processed_total") == Some(20.0))
        },
        log,
    );

    // A restart in place (a request announcing a body too big to drain leaks its
    // connection inside tiny_http): the new image runs under the same filter, keeps serving
    // with the counters carried and resumes the log where the old one stopped.
    let killer = provoke_restart(e.addr);
    wait_until(
        "a restart in place",
        within,
        || e.log().contains("restarted in place"),
        log,
    );
    drop(killer);
    assert_eq!(seen(&counts(&e)), (20, 1), "{name}: counts carried");
    append(&path, &line(20));
    append(&path, &line(21));
    wait_for(&e, "2 more lines after the restart", |c| c.matched == 22);
    assert!(
        e.log()
            .contains("resumed the log where the previous image stopped"),
        "{name}: {}",
        e.log()
    );
    assert_eq!(
        seccomp_mode(pid),
        "2",
        "{name}: the new image runs filtered"
    );
    scrape_both_formats(&e, &name);
    say(&format!(
        "{name}: served text and OpenMetrics, counted 20 lines across a rename rotation, wrote the textfile, restarted in place with counts carried (exporter pid {pid}, Seccomp: {})",
        seccomp_mode(pid)
    ));
    drop(e);
    refused_calls(kernel, &flags);
}

/// Logs which calls the binary attempted that the filter refused, when `strace` is there:
/// a short run of the same flags under `strace -f`, a scrape of each format.
fn refused_calls(kernel: Version, flags: &[&str]) {
    let Some(strace) = tool("strace") else {
        say("note: strace not found; the refused calls are not listed");
        return;
    };
    let (ok, _, err) = crate::support::run(filtered(
        Command::new(&strace)
            .args(["-qq", "-e", "status=failed", "-o", "/dev/null"])
            .arg(binary())
            .arg("--version"),
        kernel,
    ));
    if !ok {
        say(&format!(
            "note: strace cannot trace here ({}); the refused calls are not listed",
            err.trim()
        ));
        return;
    }
    let dir = TempDir::new("legacy-strace");
    let trace = dir.join("trace");
    let mut cmd = Command::new(strace);
    cmd.args(["-f", "-qq", "-e", "status=failed", "-o"])
        .arg(&trace)
        .arg(binary())
        .args(flags);
    let mut e = Exporter::start_with(filtered(&mut cmd, kernel));
    let _ = e.get("/metrics");
    let _ = e.get_with(
        "/metrics",
        "Accept: application/openmetrics-text;version=1.0.0\r\n",
    );
    // A killed strace leaves its tracee running: end the exporter first, by its pid.
    for pid in children(e.child.id()) {
        // SAFETY: kill takes integers; the pid is a child of our own strace.
        unsafe { kill(pid, 9) };
    }
    // strace then reaps it and exits by itself.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && matches!(e.child.try_wait(), Ok(None)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(e);
    let text = std::fs::read_to_string(&trace).unwrap_or_default();
    let mut names: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("= -1 ENOSYS"))
        .filter_map(|l| {
            // strace pads the pid column to five characters.
            let call = l.split_once(' ')?.1.trim_start();
            let call = call.strip_prefix("<... ").unwrap_or(call);
            call.split(['(', ' ']).next()
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    say(&format!(
        "{}: calls the binary attempted and the filter refused (strace): {names:?}",
        kernel_name(kernel)
    ));
}

/// The processes whose parent is `pid`, from `/proc/*/stat`.
fn children(pid: u32) -> Vec<c_int> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| {
        let child: c_int = entry.ok()?.file_name().to_str()?.parse().ok()?;
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).ok()?;
        // After the command name in parentheses: the state, then the parent's pid.
        let parent: u32 = stat
            .rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()?;
        (parent == pid).then_some(child)
    })
    .collect()
}

#[test]
fn core_paths_work_on_linux_3_2() {
    if on_x86_64("core paths on Linux 3.2") {
        core_paths((3, 2));
    }
}

#[test]
fn core_paths_work_on_linux_3_10() {
    if on_x86_64("core paths on Linux 3.10") {
        core_paths((3, 10));
    }
}

#[test]
fn socket_activation_works_on_linux_3_2_and_3_10() {
    if !on_x86_64("socket activation") {
        return;
    }
    let Some(activate) = require_tool("systemd-socket-activate") else {
        return;
    };
    for kernel in KERNELS {
        let name = kernel_name(kernel);
        let addr: SocketAddr = format!("127.0.0.1:{}", support::free_port())
            .parse()
            .unwrap();
        // systemd-socket-activate runs filtered too and executes the exporter in place on
        // the first connection, handing over the socket at fd 3.
        let mut cmd = Command::new(&activate);
        cmd.args(["-l", &addr.to_string()])
            .arg(binary())
            .arg("--web.systemd-socket")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = filtered(&mut cmd, kernel)
            .spawn()
            .expect("spawn systemd-socket-activate");
        let raw = "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut answer = None;
        while Instant::now() < deadline && answer.is_none() {
            answer = try_request(addr, raw, Duration::from_secs(2))
                .ok()
                .filter(|r| r.status == 200);
            if answer.is_none() {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let mode = seccomp_mode(child.id());
        let _ = child.kill();
        let out = child.wait_with_output().expect("wait");
        let log = String::from_utf8_lossy(&out.stderr);
        let answer = answer.unwrap_or_else(|| panic!("{name}: no 200 on {addr}; log:\n{log}"));
        assert!(
            answer.body.contains("widgets_processed_total"),
            "{name}: {}",
            answer.body
        );
        assert!(
            log.contains("adopted the listening socket passed at fd 3"),
            "{name}: {log}"
        );
        assert_eq!(mode, "2", "{name}: the exporter runs filtered");
        say(&format!(
            "{name}: served through a socket passed by systemd-socket-activate (Seccomp: {mode})"
        ));
    }
}
