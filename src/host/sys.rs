//! The few system calls std lacks, as small safe functions: adopting a listening socket
//! passed by systemd, looking at and shutting down sockets by descriptor number, counting
//! directory entries without allocating, the open-files limit, malloc tuning and handing the
//! listener to a re-executed image. All of the crate's `unsafe` lives here, each block with
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
    fn listen(fd: c_int, backlog: c_int) -> c_int;
}

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

/// glibc malloc tuning for a process whose threads come and go (tiny_http's): at most two
/// arenas, and a fixed mmap threshold so that large buffers (a 200 MB header line) go back to
/// the kernel when freed instead of staying in an arena. Errors are ignored: this only
/// changes how quickly memory returns.
pub fn tune_malloc() {
    const M_TRIM_THRESHOLD: c_int = -1;
    const M_MMAP_THRESHOLD: c_int = -3;
    const M_ARENA_MAX: c_int = -8;
    // SAFETY: mallopt takes plain integers and is called before other threads exist.
    unsafe {
        mallopt(M_ARENA_MAX, 2);
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

    #[test]
    fn nofile_limits() {
        let (soft, hard) = nofile_limit().unwrap();
        assert!(soft <= hard && soft > 0);
    }
}
