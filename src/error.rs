//! The crate's one error type. It owns the wording of every failure that reaches `main`
//! and the exit code that goes with it; it knows nothing about how the failure happened.

use std::fmt;
use std::io;

/// Everything that can stop the exporter, with enough context to act on it.
#[derive(Debug)]
pub enum Error {
    /// A configuration error found at start, by the parser or while opening what the flags
    /// name (a path that is a directory, a directory that does not exist): a message naming
    /// the flag and what was wrong (exit 2, printed in the usage style).
    Usage(String),
    /// The listen address could not be bound (exit 1).
    Bind {
        /// The address as the operator wrote it or as it resolved.
        address: String,
        /// What the kernel said.
        source: io::Error,
    },
    /// Any other runtime failure, with what we were doing at the time (exit 1).
    Io {
        /// What we were doing, e.g. "adopting the systemd socket".
        context: String,
        /// What the system said.
        source: io::Error,
    },
    /// The exporter can no longer serve and must be restarted (exit 1).
    Fatal(String),
}

impl Error {
    /// Builds an [`Error::Io`] from what we were doing and the system error.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The process exit code for this error: 2 for usage errors, 1 for everything else.
    #[must_use]
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            _ => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Usage(msg) | Error::Fatal(msg) => f.write_str(msg),
            Error::Bind { address, source } => {
                if source.kind() == io::ErrorKind::AddrInUse {
                    write!(
                        f,
                        "cannot listen on {address}: address already in use (another exporter running?)"
                    )
                } else {
                    write!(f, "cannot listen on {address}: {source}")
                }
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Io { source, .. } => Some(source),
            Error::Usage(_) | Error::Fatal(_) => None,
        }
    }
}
