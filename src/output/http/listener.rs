//! The listening socket: the one systemd (or a restart in place) passed, else a fresh bind of
//! the listen address, tuned so that every connection tiny_http accepts inherits what the loop
//! needs from it. Also the open-files limit that tiny_http's connections spend.

use std::env;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use crate::config::{Config, ListenAddress};
use crate::error::Error;
use crate::host::sys;
use crate::host::systemd;
use crate::log;

/// Binds the listen address. `:PORT` means every interface: IPv6 dual-stack where the host has
/// IPv6, IPv4 where it does not (old hosts often boot with IPv6 disabled).
fn bind(address: &ListenAddress) -> Result<TcpListener, Error> {
    let bind = |addr: SocketAddr| {
        TcpListener::bind(addr).map_err(|source| Error::Bind {
            address: addr.to_string(),
            source,
        })
    };
    match *address {
        ListenAddress::Ip(addr) => bind(addr),
        ListenAddress::Off => Err(Error::Fatal(
            "--web.listen-address=none: there is no address to listen on".to_owned(),
        )),
        ListenAddress::AllInterfaces(port) => {
            match bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port))) {
                Err(Error::Bind { source, .. })
                    if source.kind() != std::io::ErrorKind::AddrInUse =>
                {
                    bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)))
                }
                other => other,
            }
        }
    }
}

/// The listener: the socket systemd passed (required with `--web.systemd-socket`, adopted
/// automatically when `LISTEN_PID` names us), else a fresh bind of the listen address.
pub(crate) fn listener(config: &Config) -> Result<TcpListener, Error> {
    let passed = systemd::listen_fds(
        env::var("LISTEN_PID").ok().as_deref(),
        env::var("LISTEN_FDS").ok().as_deref(),
        std::process::id(),
    );
    let adopt = || {
        let listener = sys::adopt_listener(systemd::LISTEN_FDS_START)
            .map_err(|e| Error::io("adopting the socket passed by systemd", e))?;
        // Passed non-blocking (systemd's NonBlocking=), tiny_http's accept thread would exit
        // at its first empty backlog.
        listener
            .set_nonblocking(false)
            .map_err(|e| Error::io("making the passed socket blocking", e))?;
        Ok(listener)
    };
    match passed {
        Ok(Some(count)) => {
            if count > 1 {
                log::warn(
                    "systemd passed several sockets; serving on the first only",
                    &[("count", &count)],
                );
            }
            let listener = adopt()?;
            log::info(
                "adopted the listening socket passed at fd 3 (by systemd, or by a restart in place)",
                &[],
            );
            Ok(listener)
        }
        Ok(None) if config.systemd_socket => Err(Error::Fatal(
            "--web.systemd-socket: systemd passed no socket (LISTEN_PID/LISTEN_FDS are not set for this process)"
                .to_owned(),
        )),
        Err(why) if config.systemd_socket => {
            Err(Error::Fatal(format!("--web.systemd-socket: {why}")))
        }
        Err(why) => {
            log::warn(
                "ignoring malformed socket-activation variables",
                &[("reason", &why)],
            );
            bind(&config.listen_address)
        }
        Ok(None) => bind(&config.listen_address),
    }
}

/// Longest a single response write may block the loop (per `write()` call): a client that
/// stops reading costs us at most about this, then its write fails and we move on.
const SEND_TIMEOUT: Duration = Duration::from_millis(100);

/// Sets `TCP_NODELAY` and a send timeout on a listening socket. Linux copies both to every
/// socket `accept()` returns, which is the only way to reach the sockets tiny_http accepts.
///
/// `TCP_NODELAY` matters because tiny_http writes headers and body in separate `write()`s:
/// with Nagle on, a kept-alive response's second write waits for the client's delayed ACK
/// (~40 ms). Std has no setters on listeners, but the options live on the socket, not on the
/// descriptor: a duplicate descriptor, viewed as a `TcpStream`, reaches them safely.
pub(crate) fn tune_listener(listener: &TcpListener) -> io::Result<()> {
    crate::output::http::pool::tune_listener(listener)?;
    let socket = TcpStream::from(std::os::fd::OwnedFd::from(listener.try_clone()?));
    socket.set_nodelay(true)?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))
}

/// tiny_http spends two descriptors per connection; the usual soft limit of 1024 would make
/// `accept()` fail (and tiny_http's accept thread exit) at ~500 connections. The hard limit
/// is ours to take.
pub(crate) fn raise_fd_limit() {
    match sys::raise_nofile_limit() {
        Ok((old, new)) if old != new => log::debug(
            "raised the open-files limit",
            &[("from", &old), ("to", &new)],
        ),
        Ok(_) => {}
        Err(e) => log::warn("cannot raise the open-files limit", &[("err", &e)]),
    }
}
