//! The few system calls std lacks, as small safe functions: adopting a listening socket
//! passed by systemd, looking at and shutting down sockets by descriptor number, counting
//! directory entries without allocating, the open-files limit, malloc tuning, handing the
//! listener and a file of carried state to a re-executed image, and waiting for the signals
//! that stop the exporter. All of the crate's `unsafe` lives here, each block with
//! its reason. Nothing here knows about HTTP, metrics or the loop.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_void};
use std::fs::File;
use std::io;
use std::mem::ManuallyDrop;
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

const SOL_SOCKET: c_int = 1;
const SO_TYPE: c_int = 3;
const SO_ACCEPTCONN: c_int = 30;
const SOCK_STREAM: c_int = 1;
const RLIMIT_NOFILE: c_int = 7;

#[repr(C)]
struct Rlimit {
    cur: u64,
    max: u64,
}

extern "C" {
    fn getsockopt(fd: c_int, level: c_int, name: c_int, value: *mut c_void, len: *mut u32)
        -> c_int;
    fn getdents64(fd: c_int, buf: *mut c_void, len: usize) -> isize;
    fn getrlimit(resource: c_int, limit: *mut Rlimit) -> c_int;
    fn setrlimit(resource: c_int, limit: *const Rlimit) -> c_int;
    fn mallopt(param: c_int, value: c_int) -> c_int;
    fn ioctl(fd: c_int, request: std::ffi::c_ulong, ...) -> c_int;
    fn dup2(old: c_int, new: c_int) -> c_int;
    fn sigemptyset(set: *mut SigSet) -> c_int;
    fn sigaddset(set: *mut SigSet, signal: c_int) -> c_int;
    fn pthread_sigmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwait(set: *const SigSet, signal: *mut c_int) -> c_int;
    fn fcntl(fd: c_int, cmd: c_int, ...) -> c_int;
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

/// `sigset_t`: 1024 bits in glibc and musl alike, on every Linux architecture.
#[repr(C)]
struct SigSet([u64; 16]);

const SIG_BLOCK: c_int = 0;
const SIG_UNBLOCK: c_int = 1;
const SIGINT: c_int = 2;
const SIGTERM: c_int = 15;

/// The signals that stop the exporter, with their names: SIGTERM (systemd, `kill`) and
/// SIGINT (Ctrl-C).
const STOP_SIGNALS: [(c_int, &str); 2] = [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")];

/// The set of [`STOP_SIGNALS`].
fn stop_set() -> io::Result<SigSet> {
    let mut set = SigSet([0; 16]);
    // SAFETY: `set` is a live, writable sigset_t-sized buffer; both calls only write into it
    // and fail (returning -1) for an invalid signal number, which ours are not.
    let ok = unsafe {
        sigemptyset(&raw mut set) == 0
            && STOP_SIGNALS
                .iter()
                .all(|&(signal, _)| sigaddset(&raw mut set, signal) == 0)
    };
    if ok {
        Ok(set)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Blocks SIGTERM and SIGINT in the calling thread, so that they wait for
/// [`wait_stop_signal`] instead of ending the process. Threads started afterwards inherit
/// the mask, so it must be called before any other thread exists; an `exec` keeps it too.
pub fn block_stop_signals() -> io::Result<()> {
    mask_stop_signals(SIG_BLOCK)
}

/// Undoes [`block_stop_signals`] in the calling thread: for when nothing will wait for them.
pub fn unblock_stop_signals() -> io::Result<()> {
    mask_stop_signals(SIG_UNBLOCK)
}

fn mask_stop_signals(how: c_int) -> io::Result<()> {
    let set = stop_set()?;
    // SAFETY: `set` is a valid, initialised sigset_t; the old mask is not asked for (null).
    // Changing the calling thread's mask has no effect on memory.
    let rc = unsafe { pthread_sigmask(how, &raw const set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        // pthread functions return the error number instead of setting errno.
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits until SIGTERM or SIGINT is pending (blocked by [`block_stop_signals`] in every
/// thread) and takes it; returns its name.
pub fn wait_stop_signal() -> io::Result<&'static str> {
    let set = stop_set()?;
    loop {
        let mut signal: c_int = 0;
        // SAFETY: `set` is a valid sigset_t and `signal` a live c_int that sigwait writes.
        let rc = unsafe { sigwait(&raw const set, &raw mut signal) };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        if let Some(&(_, name)) = STOP_SIGNALS.iter().find(|&&(s, _)| s == signal) {
            return Ok(name);
        }
    }
}

const F_GETFD: c_int = 1;
const F_SETFD: c_int = 2;
const FD_CLOEXEC: c_int = 1;

/// Runs `f` on the socket behind `fd` without taking ownership of the descriptor.
///
/// The descriptor may belong to another thread (tiny_http's); the calls made through it
/// (`getsockname`, `getpeername`, `shutdown`, a short write) are the ones that are safe on a
/// socket shared between threads. If `fd` was closed meanwhile the calls fail with `EBADF`;
/// if its number was reused, they act on the new socket, which is why callers identify a
/// connection by its addresses right before acting on it.
fn with_socket<T>(fd: RawFd, f: impl FnOnce(&TcpStream) -> T) -> T {
    // SAFETY: `ManuallyDrop` keeps the borrowed descriptor from being closed when the view
    // goes out of scope; `TcpStream` methods only issue socket system calls on the number,
    // which the kernel validates.
    let view = ManuallyDrop::new(unsafe { TcpStream::from_raw_fd(fd) });
    f(&view)
}

/// The (local, peer) addresses of a connected TCP socket, or `None` for anything else.
#[must_use]
pub fn socket_addrs(fd: RawFd) -> Option<(SocketAddr, SocketAddr)> {
    with_socket(fd, |s| Some((s.local_addr().ok()?, s.peer_addr().ok()?)))
}

/// The local address of an IP socket that is neither connected nor listening: a connection
/// whose TCP life is over but whose descriptor is still held. `None` for anything else.
#[must_use]
pub fn orphan_socket(fd: RawFd) -> Option<SocketAddr> {
    with_socket(fd, |s| {
        let local = s.local_addr().ok()?;
        let not_connected = s
            .peer_addr()
            .is_err_and(|e| e.kind() == io::ErrorKind::NotConnected);
        (not_connected && socket_option(fd, SO_ACCEPTCONN).ok()? == 0).then_some(local)
    })
}

/// Bytes received on the socket behind `fd` that nobody has read yet (`FIONREAD`).
#[must_use]
pub fn unread_bytes(fd: RawFd) -> Option<u32> {
    const FIONREAD: std::ffi::c_ulong = 0x541B;
    let mut n: c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which is valid for that write;
    // the kernel validates `fd` (EBADF, ENOTTY for a non-socket).
    let rc = unsafe { ioctl(fd, FIONREAD, &raw mut n) };
    (rc == 0).then(|| u32::try_from(n).unwrap_or(0))
}

/// Shuts down the socket behind `fd` if it still connects `local` and `peer`.
pub fn shutdown_if(
    fd: RawFd,
    local: SocketAddr,
    peer: SocketAddr,
    how: Shutdown,
) -> io::Result<()> {
    with_socket(fd, |s| {
        if s.local_addr().ok() != Some(local) || s.peer_addr().ok() != Some(peer) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "connection is gone",
            ));
        }
        s.shutdown(how)
    })
}

/// Writes `bytes` to the socket behind `fd` if it still connects `local` and `peer` (bounded
/// by the socket's send timeout).
pub fn write_if(fd: RawFd, local: SocketAddr, peer: SocketAddr, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    with_socket(fd, |s| {
        if s.local_addr().ok() != Some(local) || s.peer_addr().ok() != Some(peer) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "connection is gone",
            ));
        }
        let mut s: &TcpStream = s;
        s.write_all(bytes)
    })
}

/// Most glibc malloc arenas (glibc's own default is 8 per CPU, so hundreds on a large host).
///
/// Every tiny_http request is allocated on its connection's thread and freed on the loop's,
/// and each takes an arena lock (its channel is allocated aligned, which no thread cache
/// serves), so connection threads that share an arena wait on each other: with 2 arenas, 16
/// busy connections spent a fifth of their throughput in those waits. Each arena reserves
/// 64 MiB of address space but keeps only what it uses: with 8, resident memory after 16
/// busy connections or a 1000-connection flood measured the same as with 2, and the virtual
/// size (`process_virtual_memory_bytes`) is about 0.5 GiB instead of 70 MiB.
/// `tests/bench/README.md` has the figures.
const MALLOC_ARENAS: c_int = 8;

/// glibc malloc tuning for a process whose threads come and go (tiny_http's): at most
/// [`MALLOC_ARENAS`] arenas, and a fixed mmap threshold so that large buffers (a 200 MB header
/// line) go back to the kernel when freed instead of staying in an arena. Errors are
/// ignored: this only changes how quickly memory returns.
pub fn tune_malloc() {
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_ARENA_MAX: c_int = -8;
    // SAFETY: mallopt takes plain integers and is called before other threads exist.
    unsafe {
        mallopt(M_ARENA_MAX, MALLOC_ARENAS);
        mallopt(M_MMAP_THRESHOLD, 64 * 1024);
        mallopt(M_TRIM_THRESHOLD, 128 * 1024);
    }
}

/// Puts a duplicate of `listener` at descriptor 3 without close-on-exec, so that an image
/// executed next inherits it the way systemd passes sockets. Whatever was at 3 is closed.
pub fn pass_listener_at_fd3(listener: &TcpListener) -> io::Result<()> {
    // dup2 onto a different number always clears close-on-exec (dup2(3, 3) would keep it).
    // A fresh duplicate lands at 3 when 3 is free (a drain stopped tiny_http's accept
    // thread, which held it); then a second duplicate replaces that one.
    let mut fresh = listener.try_clone()?;
    let at_three = if fresh.as_raw_fd() == 3 {
        let other = listener.try_clone()?;
        Some(std::mem::replace(&mut fresh, other))
    } else {
        None
    };
    // SAFETY: dup2 only manipulates the descriptor table; it is called right before exec,
    // and the descriptor it may replace belongs to a thread the exec is about to end (or is
    // `at_three`, which is forgotten below instead of closed).
    let ok = unsafe { dup2(fresh.as_raw_fd(), 3) } == 3;
    if let Some(three) = at_three {
        // Descriptor 3 is the new duplicate now: it must survive into the next image.
        let _ = std::os::fd::IntoRawFd::into_raw_fd(three);
    }
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Lets `file` survive the next exec: clears its close-on-exec flag (std sets it on every
/// descriptor it opens). The image executed next takes it back with [`adopt_file`].
pub fn keep_across_exec(file: &File) -> io::Result<()> {
    // SAFETY: F_SETFD takes an int and changes only the flags of a descriptor `file` owns.
    if unsafe { fcntl(file.as_raw_fd(), F_SETFD, 0) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of `fd`, inherited across exec, as a regular file (close-on-exec again),
/// after checking that it is one. Anything else (0 to 2, a descriptor not open, not a regular
/// file) is an error and `fd` is left alone. The caller promises that nothing else in the
/// process owns `fd` (it was named by a variable of ours, which a previous image set).
pub fn adopt_file(fd: RawFd) -> io::Result<File> {
    let invalid =
        |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} {what}"));
    if fd <= 2 {
        return Err(invalid("is standard input, output or error"));
    }
    // SAFETY: F_GETFD takes no argument and only reads the descriptor's flags; a number that
    // is not open gives EBADF.
    if unsafe { fcntl(fd, F_GETFD) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is open (checked above) and the caller says nothing else owns it, so the
    // `File` may own and eventually close it; it is given back untouched if it is no file.
    let file = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
    if !file.metadata()?.is_file() {
        return Err(invalid("is not a regular file"));
    }
    let file = ManuallyDrop::into_inner(file);
    // SAFETY: as F_SETFD above, on the descriptor `file` now owns.
    unsafe { fcntl(file.as_raw_fd(), F_SETFD, FD_CLOEXEC) };
    Ok(file)
}

fn socket_option(fd: RawFd, name: c_int) -> io::Result<c_int> {
    let mut value: c_int = 0;
    let mut len = u32::try_from(std::mem::size_of::<c_int>()).expect("4 fits in u32");
    // SAFETY: `value` and `len` are valid for writes of the sizes passed; the kernel checks
    // `fd` and reports EBADF/ENOTSOCK for anything that is not an open socket.
    let rc = unsafe { getsockopt(fd, SOL_SOCKET, name, (&raw mut value).cast(), &raw mut len) };
    if rc == 0 {
        Ok(value)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the accept backlog of a listening TCP socket to `backlog` (the kernel caps it at
/// `net.core.somaxconn`); one already at least that long is left alone, so a longer one set
/// by systemd's `Backlog=` stays. Linux applies a second `listen()` to the live socket.
pub fn raise_listen_backlog(listener: &TcpListener, backlog: u32) -> io::Result<()> {
    const IPPROTO_TCP: c_int = 6;
    const TCP_INFO: c_int = 11;
    // struct tcp_info begins with 8 single bytes, then u32 fields; for a listening socket
    // the sixth of them (tcpi_sacked, bytes 28..32) is the accept backlog.
    let mut info = [0u32; 8]; // 32 bytes
    let mut len: u32 = 32;
    let fd = listener.as_raw_fd();
    // SAFETY: `info` and `len` are valid for writes of the sizes passed; the kernel writes
    // at most `len` bytes and checks `fd`.
    let rc = unsafe {
        getsockopt(
            fd,
            IPPROTO_TCP,
            TCP_INFO,
            info.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    if len >= 32 && info[7] >= backlog {
        return Ok(());
    }
    let backlog = c_int::try_from(backlog).unwrap_or(c_int::MAX);
    // SAFETY: listen() only reads its integer arguments; the kernel checks `fd`.
    if unsafe { listen(fd, backlog) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Takes ownership of `fd` as a listening TCP socket, after checking that it is one: a
/// stream socket, listening, of an IP family. Anything else is an error and `fd` is left
/// alone. The caller promises that nothing else in the process owns `fd`
/// (systemd's `LISTEN_FDS` descriptors are ours alone).
pub fn adopt_listener(fd: RawFd) -> io::Result<TcpListener> {
    let invalid =
        |what: &str| io::Error::new(io::ErrorKind::InvalidInput, format!("fd {fd} {what}"));
    if socket_option(fd, SO_TYPE).map_err(|e| invalid(&format!("is not a socket ({e})")))?
        != SOCK_STREAM
    {
        return Err(invalid("is not a stream socket"));
    }
    if socket_option(fd, SO_ACCEPTCONN)? != 1 {
        return Err(invalid("is not listening"));
    }
    // SAFETY: `fd` is an open, listening stream socket (checked above) that the caller says
    // nothing else owns, so the `TcpListener` may own and eventually close it.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    if listener.local_addr().is_ok() {
        Ok(listener)
    } else {
        // Not an IP socket (e.g. AF_UNIX): give the descriptor back untouched.
        std::mem::forget(listener);
        Err(invalid("is not a TCP (IPv4/IPv6) socket"))
    }
}

/// Counts the entries of an open directory, `.` and `..` excluded, without allocating.
pub fn count_dir_entries(dir: &File) -> io::Result<u64> {
    // u64 elements keep the buffer 8-byte aligned, as `struct linux_dirent64` needs.
    let mut buf = [0u64; 512];
    let mut count = 0;
    loop {
        // SAFETY: `buf` is valid for writes of its full byte length; the kernel writes at most
        // that many bytes of whole records and returns how many it wrote.
        let n = unsafe {
            getdents64(
                dir.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                std::mem::size_of_val(&buf),
            )
        };
        let Ok(n) = usize::try_from(n) else {
            return Err(io::Error::last_os_error());
        };
        if n == 0 {
            return Ok(count);
        }
        let bytes: &[u8] = {
            // SAFETY: the first `n` bytes of `buf` were just initialised by the kernel, and
            // u8 has no alignment or validity requirements.
            unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), n) }
        };
        let mut at = 0;
        // linux_dirent64: u64 ino, i64 off, u16 reclen, u8 type, then a NUL-terminated name.
        while at + 19 < n {
            let reclen = usize::from(u16::from_ne_bytes([bytes[at + 16], bytes[at + 17]]));
            if reclen == 0 || at + reclen > n {
                break;
            }
            let name = &bytes[at + 19..at + reclen];
            if !name.starts_with(b".\0") && !name.starts_with(b"..\0") {
                count += 1;
            }
            at += reclen;
        }
    }
}

/// The open-files limit as (soft, hard).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = Rlimit { cur: 0, max: 0 };
    // SAFETY: `limit` is a valid, writable `struct rlimit` (two u64 on 64-bit Linux).
    if unsafe { getrlimit(RLIMIT_NOFILE, &raw mut limit) } == 0 {
        Ok((limit.cur, limit.max))
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Raises the soft open-files limit to the hard one; returns (old soft, new soft).
pub fn raise_nofile_limit() -> io::Result<(u64, u64)> {
    let (soft, hard) = nofile_limit()?;
    if soft >= hard {
        return Ok((soft, soft));
    }
    let limit = Rlimit {
        cur: hard,
        max: hard,
    };
    // SAFETY: `limit` is a valid `struct rlimit`; raising soft up to hard needs no privilege.
    if unsafe { setrlimit(RLIMIT_NOFILE, &raw const limit) } == 0 {
        Ok((soft, hard))
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::net::UdpSocket;
    use std::os::fd::IntoRawFd;

    extern "C" {
        fn pthread_self() -> usize;
        fn pthread_kill(thread: usize, signal: c_int) -> c_int;
    }

    /// A stop signal aimed at one thread that blocks it is taken by that thread's wait, by
    /// name; the other threads of the test process never see it.
    #[test]
    fn a_blocked_stop_signal_waits_for_its_taker() {
        let taken = std::thread::spawn(|| {
            block_stop_signals().expect("block");
            let mut names = Vec::new();
            for signal in [SIGINT, SIGTERM] {
                // SAFETY: the thread is this live one, and the signal is blocked in it, so it
                // stays pending until `wait_stop_signal` takes it.
                assert_eq!(unsafe { pthread_kill(pthread_self(), signal) }, 0);
                names.push(wait_stop_signal().expect("wait"));
            }
            unblock_stop_signals().expect("unblock");
            names
        })
        .join()
        .expect("the thread ends");
        assert_eq!(taken, ["SIGINT", "SIGTERM"]);
    }

    #[test]
    fn counts_directory_entries() {
        let dir = std::env::temp_dir().join(format!("we-sys-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        assert_eq!(count_dir_entries(&File::open(&dir).unwrap()).unwrap(), 0);
        for i in 0..700 {
            File::create(dir.join(format!("file-with-a-longish-name-{i}"))).unwrap();
        }
        // 700 entries need several getdents64 calls with a 4 KiB buffer.
        assert_eq!(count_dir_entries(&File::open(&dir).unwrap()).unwrap(), 700);
        std::fs::remove_dir_all(&dir).unwrap();
        let fds = File::open("/proc/self/fd").unwrap();
        assert!(count_dir_entries(&fds).unwrap() >= 3);
        // A file is not a directory.
        assert!(count_dir_entries(&File::open("/proc/self/stat").unwrap()).is_err());
    }

    #[test]
    fn adopts_only_listening_tcp_sockets() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let adopted = adopt_listener(listener.into_raw_fd()).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), addr);

        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let err = adopt_listener(udp.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not a stream socket"), "{err}");

        let file = File::open("/proc/self/stat").unwrap();
        let err = adopt_listener(file.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");

        let unix = std::os::unix::net::UnixListener::bind(
            std::env::temp_dir().join(format!("we-sys-{}.sock", std::process::id())),
        )
        .unwrap();
        let err = adopt_listener(unix.as_raw_fd()).unwrap_err();
        assert!(err.to_string().contains("not a TCP"), "{err}");
        drop(unix);
        let _ = std::fs::remove_file(
            std::env::temp_dir().join(format!("we-sys-{}.sock", std::process::id())),
        );
    }

    #[test]
    fn sees_and_shuts_down_sockets_by_number() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, peer) = listener.accept().unwrap();
        let local = server.local_addr().unwrap();
        assert_eq!(socket_addrs(server.as_raw_fd()), Some((local, peer)));
        assert_eq!(
            socket_addrs(listener.as_raw_fd()),
            None,
            "a listener has no peer"
        );
        assert_eq!(
            socket_addrs(File::open("/proc/self/stat").unwrap().as_raw_fd()),
            None
        );
        let other: SocketAddr = "127.0.0.1:1".parse().unwrap();
        assert!(shutdown_if(server.as_raw_fd(), local, other, Shutdown::Both).is_err());
        assert_eq!(unread_bytes(server.as_raw_fd()), Some(0));
        (&client).write_all(b"abc").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert_eq!(unread_bytes(server.as_raw_fd()), Some(3));
        write_if(server.as_raw_fd(), local, peer, b"hi").unwrap();
        shutdown_if(server.as_raw_fd(), local, peer, Shutdown::Both).unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut &client, &mut got).unwrap();
        assert_eq!(got, b"hi", "written, then the client sees EOF");
        // The descriptor stayed open: we only borrowed it. Both sides closed, the socket is
        // an orphan: its TCP connection is over, its descriptor still held.
        assert!(server.local_addr().is_ok());
        drop(client);
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert_eq!(orphan_socket(server.as_raw_fd()), Some(local));
    }

    /// A file kept across exec loses close-on-exec, and is adopted back only by its number
    /// and only as a regular file.
    #[test]
    fn files_are_kept_across_exec_and_adopted() {
        use std::io::{Read, Seek, Write};
        let path = std::env::temp_dir().join(format!("we-sys-keep-{}", std::process::id()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .expect("a temp file");
        std::fs::remove_file(&path).expect("unlink");
        file.write_all(b"carried").expect("write");
        file.rewind().expect("rewind");
        keep_across_exec(&file).expect("keep");
        // SAFETY: a plain flags read of a descriptor this test owns.
        assert_eq!(unsafe { fcntl(file.as_raw_fd(), F_GETFD) } & FD_CLOEXEC, 0);
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        let mut back = adopt_file(fd).expect("adopted");
        // SAFETY: as above.
        assert_eq!(unsafe { fcntl(fd, F_GETFD) } & FD_CLOEXEC, FD_CLOEXEC);
        let mut text = String::new();
        back.read_to_string(&mut text).expect("read");
        assert_eq!(text, "carried");
        drop(back);
        assert!(adopt_file(fd).is_err(), "closed now");
        assert!(adopt_file(1).is_err());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let err = adopt_file(listener.as_raw_fd()).expect_err("a socket");
        assert!(err.to_string().contains("not a regular file"), "{err}");
        assert!(listener.local_addr().is_ok(), "left alone");
    }

    #[test]
    fn nofile_limits() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard && soft > 0);
    }
}
