//! The exporter's side of the systemd contract, with std alone: `sd_notify` datagrams
//! (`READY=1`, `STATUS=…`, `WATCHDOG=1`, `STOPPING=1`), the watchdog settings and the
//! socket-activation environment. It reads values handed to it and never the environment
//! itself, so everything but the socket is pure. It must not touch HTTP, metrics or the
//! loop: `app` decides when to notify and what to do with an adopted socket. The unit files
//! an operator installs are [`units`](crate::host::units)' business.

use std::ffi::OsStr;
use std::io;
use std::os::linux::net::SocketAddrExt as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::Path;
use std::time::Duration;

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
pub const LISTEN_FDS_START: std::os::fd::RawFd = 3;

/// A datagram socket aimed at systemd's notification socket.
///
/// Each [`notify`](Notifier::notify) addresses the target anew instead of connecting once,
/// so a `systemctl daemon-reexec`, which re-creates the socket, does not leave us talking
/// to a dead peer.
#[derive(Debug)]
pub struct Notifier {
    socket: UnixDatagram,
    target: SocketAddr,
}

impl Notifier {
    /// From the value of `$NOTIFY_SOCKET`: an absolute path, or `@name` for a name in Linux's
    /// abstract namespace. Anything else (empty, relative, a bare `@`) is an
    /// [`io::ErrorKind::InvalidInput`] error naming the value.
    ///
    /// Nothing is sent here, and a target that does not exist yet is not an error: the
    /// first [`notify`](Notifier::notify) reports it.
    pub fn connect(notify_socket: &OsStr) -> io::Result<Notifier> {
        let invalid = |why: &str| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid NOTIFY_SOCKET {notify_socket:?}: {why}"),
            )
        };
        let target = match notify_socket.as_bytes() {
            [b'@', name @ ..] if !name.is_empty() => SocketAddr::from_abstract_name(name),
            [b'/', ..] => SocketAddr::from_pathname(Path::new(notify_socket)),
            _ => return Err(invalid("expected an absolute path or @abstract-name")),
        }
        .map_err(|e| invalid(&e.to_string()))?;
        let socket = UnixDatagram::unbound()?;
        // A stuck systemd must never stall the loop: a full queue is an error, not a wait.
        socket.set_nonblocking(true)?;
        Ok(Notifier { socket, target })
    }

    /// Sends `state` as one datagram, e.g. `"READY=1\nSTATUS=serving on :8000"`.
    ///
    /// Never blocks: when systemd's queue is full this is an
    /// [`io::ErrorKind::WouldBlock`] error, and the caller decides whether to retry later.
    pub fn notify(&self, state: &str) -> io::Result<()> {
        let sent = self.socket.send_to_addr(state.as_bytes(), &self.target)?;
        if sent == state.len() {
            Ok(())
        } else {
            // Datagrams are all or nothing; a short count would be a kernel surprise.
            Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("sd_notify sent {sent} of {} bytes", state.len()),
            ))
        }
    }
}

/// From the values of `$WATCHDOG_USEC` and `$WATCHDOG_PID`: how often to send `WATCHDOG=1`,
/// if systemd's watchdog applies to us.
///
/// The result is half of `WATCHDOG_USEC`, the margin `sd_watchdog_enabled(3)` recommends, so
/// a late tick still arrives before systemd's deadline; do not halve it again. `None` when
/// `usec` is unset, not a positive decimal integer, or `pid` is set to anything but `our_pid`
/// (the variables were inherited from a parent that is the one being watched).
#[must_use]
pub fn watchdog_interval(usec: Option<&str>, pid: Option<&str>, our_pid: u32) -> Option<Duration> {
    let usec = parse_decimal(usec?).filter(|&n| n > 0)?;
    if let Some(pid) = pid {
        if parse_decimal(pid) != Some(u64::from(our_pid)) {
            return None;
        }
    }
    Some(Duration::from_micros(usec) / 2)
}

/// From the values of `$LISTEN_PID` and `$LISTEN_FDS`: how many sockets systemd passed us,
/// starting at fd 3 (`SD_LISTEN_FDS_START`).
///
/// `Ok(None)` when nothing was passed to us: `LISTEN_PID` unset (as `sd_listen_fds(3)` treats
/// it) or naming another process, or `LISTEN_FDS=0`; so `Some(n)` always has `n ≥ 1`.
/// `Err` names the variable when a value is malformed, or when `LISTEN_PID` is ours but
/// `LISTEN_FDS` is missing.
pub fn listen_fds(
    pid: Option<&str>,
    fds: Option<&str>,
    our_pid: u32,
) -> Result<Option<u32>, String> {
    let Some(pid) = pid else {
        return Ok(None);
    };
    let pid = parse_decimal(pid)
        .ok_or_else(|| format!("invalid LISTEN_PID {pid:?}: expected a process id"))?;
    if pid != u64::from(our_pid) {
        return Ok(None);
    }
    let fds = fds.ok_or("LISTEN_PID is this process but LISTEN_FDS is not set")?;
    // The last fd, 3 + n - 1, must still be a valid (non-negative i32) file descriptor.
    let count = parse_decimal(fds)
        .and_then(|n| u32::try_from(n).ok())
        .filter(|&n| n <= i32::MAX as u32 - 2)
        .ok_or_else(|| {
            format!("invalid LISTEN_FDS {fds:?}: expected a count of file descriptors")
        })?;
    Ok((count > 0).then_some(count))
}

/// A plain decimal number, as systemd writes these variables: ASCII digits only, so no
/// sign, spaces or empty string slip through `u64::from_str`.
fn parse_decimal(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;
    use std::path::PathBuf;

    const ME: u32 = 4242;

    #[test]
    fn watchdog_interval_cases() {
        let half_30s = Some(Duration::from_secs(15));
        #[rustfmt::skip]
        let cases: &[(Option<&str>, Option<&str>, Option<Duration>)] = &[
            (Some("30000000"), None,          half_30s),
            (Some("30000000"), Some("4242"),  half_30s),
            (Some("30000000"), Some("4243"),  None),
            (Some("30000000"), Some(""),      None),
            (Some("30000000"), Some("x"),     None),
            (Some("30000000"), Some("+4242"), None),
            (Some("1"),        None,          Some(Duration::from_nanos(500))),
            (Some("0"),        None,          None),
            (Some(""),         None,          None),
            (Some("-5"),       None,          None),
            (Some("+5"),       None,          None),
            (Some(" 5"),       None,          None),
            (Some("5s"),       None,          None),
            (Some("99999999999999999999"), None, None),
            (None,             None,          None),
            (None,             Some("4242"),  None),
        ];
        for &(usec, pid, want) in cases {
            assert_eq!(
                watchdog_interval(usec, pid, ME),
                want,
                "usec={usec:?} pid={pid:?}"
            );
        }
    }

    /// `LISTEN_PID`, `LISTEN_FDS`, and what [`listen_fds`] makes of them.
    type ListenCase<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Result<Option<u32>, &'a str>,
    );

    #[test]
    fn listen_fds_cases() {
        let max = (i32::MAX - 2).to_string();
        let over = (i32::MAX - 1).to_string();
        #[rustfmt::skip]
        let cases: &[ListenCase] = &[
            (Some("4242"), Some("1"),   Ok(Some(1))),
            (Some("4242"), Some("3"),   Ok(Some(3))),
            (Some("4242"), Some(&max),  Ok(Some(i32::MAX as u32 - 2))),
            (Some("4242"), Some("0"),   Ok(None)),
            (Some("4243"), Some("1"),   Ok(None)),
            (Some("4243"), Some("zz"),  Ok(None)),
            (None,         Some("1"),   Ok(None)),
            (None,         None,        Ok(None)),
            (Some("4242"), None,        Err("LISTEN_PID is this process but LISTEN_FDS is not set")),
            (Some("4242"), Some(""),    Err(r#"invalid LISTEN_FDS "": expected a count of file descriptors"#)),
            (Some("4242"), Some("-1"),  Err(r#"invalid LISTEN_FDS "-1": expected a count of file descriptors"#)),
            (Some("4242"), Some("two"), Err(r#"invalid LISTEN_FDS "two": expected a count of file descriptors"#)),
            (Some("4242"), Some(&over), Err(r#"invalid LISTEN_FDS "2147483646": expected a count of file descriptors"#)),
            (Some(""),     Some("1"),   Err(r#"invalid LISTEN_PID "": expected a process id"#)),
            (Some("abc"),  Some("1"),   Err(r#"invalid LISTEN_PID "abc": expected a process id"#)),
        ];
        for (pid, fds, want) in cases {
            let want = want.map_err(str::to_owned);
            assert_eq!(listen_fds(*pid, *fds, ME), want, "pid={pid:?} fds={fds:?}");
        }
    }

    #[test]
    fn connect_rejects_what_is_not_a_socket_address() {
        let long = format!("/{}", "x".repeat(200));
        for bad in [
            "",
            "run/systemd/notify",
            "notify",
            "@",
            "vsock:2:1234",
            &long,
        ] {
            let err = Notifier::connect(OsStr::new(bad)).expect_err(bad);
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{bad:?}: {err}");
            assert!(
                err.to_string().starts_with("invalid NOTIFY_SOCKET"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn notify_reports_a_missing_target() {
        let path = socket_path("missing");
        let notifier = Notifier::connect(path.as_os_str()).expect("absolute path");
        let err = notifier.notify("READY=1").expect_err("nobody is listening");
        assert_eq!(err.kind(), io::ErrorKind::NotFound, "{err}");
    }

    #[test]
    fn notify_sends_to_a_path() {
        let path = socket_path("path");
        let receiver = BoundPath::bind(path.clone());
        let notifier = Notifier::connect(path.as_os_str()).expect("connect");
        let state = "READY=1\nSTATUS=serving on :8000";
        notifier.notify(state).expect("send");
        assert_eq!(receive(&receiver.socket), state.as_bytes());
    }

    #[test]
    fn notify_sends_to_an_abstract_name() {
        let name = format!("widget-exporter-test-{}-abstract", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let receiver = UnixDatagram::bind_addr(&addr).expect("bind abstract name");
        let mut value = OsString::from("@");
        value.push(&name);
        let notifier = Notifier::connect(&value).expect("connect");
        notifier.notify("WATCHDOG=1").expect("send");
        notifier.notify("STOPPING=1").expect("send");
        assert_eq!(receive(&receiver), b"WATCHDOG=1");
        assert_eq!(receive(&receiver), b"STOPPING=1");
    }

    #[test]
    fn notify_never_blocks_on_a_full_queue() {
        let name = format!("widget-exporter-test-{}-full", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
        let _receiver = UnixDatagram::bind_addr(&addr).expect("bind abstract name");
        let notifier = Notifier::connect(OsStr::new(&format!("@{name}"))).expect("connect");
        // The receive queue holds net.unix.max_dgram_qlen datagrams (512 by default) and a
        // bounded amount of memory; a blocking socket would hang here instead of failing.
        let err = (0..100_000)
            .find_map(|_| notifier.notify("WATCHDOG=1").err())
            .expect("the queue of a reader that never reads fills up");
        assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    }

    /// A temp path unique to this process and test; removed before binding and on drop.
    fn socket_path(test: &str) -> PathBuf {
        std::env::temp_dir().join(format!(
            "widget-exporter-{}-{test}.sock",
            std::process::id()
        ))
    }

    struct BoundPath {
        socket: UnixDatagram,
        path: PathBuf,
    }

    impl BoundPath {
        fn bind(path: PathBuf) -> BoundPath {
            let _ = std::fs::remove_file(&path);
            let socket = UnixDatagram::bind(&path).expect("bind temp socket");
            BoundPath { socket, path }
        }
    }

    impl Drop for BoundPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    fn receive(socket: &UnixDatagram) -> Vec<u8> {
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("non-zero timeout");
        let mut buf = [0u8; 4096];
        let n = socket.recv(&mut buf).expect("a datagram within 5 s");
        buf[..n].to_vec()
    }
}
