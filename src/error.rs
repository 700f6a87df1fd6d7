//! The errors that end a run, and the exit code each maps to.

use std::io;
use std::path::PathBuf;

use crate::collect::netlink::NetlinkError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read sockets over netlink: {0}")]
    Netlink(#[from] NetlinkError),
    #[error("cannot read {}: {}", path.display(), reason(source))]
    Proc { path: PathBuf, source: io::Error },
    #[error("cannot enter network namespace {spec}: {}", reason(source))]
    Netns { spec: String, source: io::Error },
    #[error("{0}")]
    Usage(String),
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    /// `--serve`: the address cannot be listened on, or the server stopped.
    #[error("cannot serve on {addr}: {}", reason(source))]
    Serve {
        addr: std::net::SocketAddr,
        source: io::Error,
    },
}

/// Whether sockwho runs as root (effective uid 0), for hints that would
/// tell root to run as root.
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// An I/O error as a person reads it: "No such file or directory", without
/// Rust's "(os error 2)".
pub fn reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

impl Error {
    /// 2 for a usage error (clap's own are mapped in main.rs; values clap
    /// cannot judge, such as an unknown service name, come as `Usage`),
    /// 1 for every failure to read or write. A reader that went away is not
    /// a failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            _ if self.is_broken_pipe() => 0,
            Error::Usage(_) => 2,
            _ => 1,
        }
    }

    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Error::Output(e) if e.kind() == io::ErrorKind::BrokenPipe)
    }

    /// A hint where the fix is known: "run as root" only to those who are not.
    pub fn hint(&self) -> Option<&'static str> {
        let denied = |e: &io::Error| e.kind() == io::ErrorKind::PermissionDenied;
        match self {
            Error::Proc { source, .. } if denied(source) && !is_root() => {
                Some("run as root, or check how /proc is mounted (hidepid)")
            }
            Error::Proc { source, .. } if denied(source) => {
                Some("check how /proc is mounted (hidepid) and the security policy")
            }
            Error::Netlink(NetlinkError::Open(_)) => Some("try --source procfs"),
            Error::Netns { source, .. } if denied(source) && !is_root() => {
                Some("entering a namespace needs root")
            }
            Error::Netns { source, .. } if denied(source) => Some(
                "refused even to root: the namespace may belong to another user namespace, or a security module forbids it",
            ),
            Error::Netns { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                Some("see `ip netns list`")
            }
            Error::Serve { source, .. } if source.kind() == io::ErrorKind::AddrInUse => {
                Some("another process listens there: see sockwho -tlnp")
            }
            Error::Serve { source, addr } if denied(source) && addr.port() < 1024 => {
                Some("ports below 1024 need root or CAP_NET_BIND_SERVICE")
            }
            _ => None,
        }
    }
}
