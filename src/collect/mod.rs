//! Everything that touches the kernel or /proc: the socket tables (over
//! sock_diag netlink, or /proc/net as fallback), the port range, owners and
//! names. Each submodule owns one source.

pub mod bytecode;
pub mod conntrack;
pub mod decode;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod processes;
pub mod procfs;
pub mod sysctl;

use std::collections::HashSet;

use crate::cli::Source as SourceChoice;
use crate::config::Config;
use crate::error::Error;
use crate::model::{PortRange, Process, Proto, Snapshot, Socket, Source, State};

/// Non-fatal problems, each said once on stderr at the end of the run.
#[derive(Debug, Default)]
pub struct Notices {
    lines: Vec<String>,
}

impl Notices {
    pub fn push(&mut self, line: String) {
        if !self.lines.contains(&line) {
            self.lines.push(line);
        }
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    pub fn extend(&mut self, other: Notices) {
        for line in other.lines {
            self.push(line);
        }
    }
}

/// Collects the sockets and the port range the configuration asks for.
pub fn snapshot(cfg: &Config, notices: &mut Notices) -> Result<Snapshot, Error> {
    let port_range = sysctl::read_port_range(&cfg.proc_root).unwrap_or_else(|why| {
        notices.push(format!("{why}; using the default port range 32768-60999"));
        PortRange::default()
    });
    let procfs = |notices: &mut Notices| read_procfs(cfg, notices).map(|s| (s, Source::Procfs));
    let (sockets, source) = match cfg.source {
        SourceChoice::Netlink => (dump_netlink(cfg, notices)?, Source::Netlink),
        SourceChoice::Procfs => procfs(notices)?,
        // A replayed /proc tree has no netlink to go with it.
        SourceChoice::Auto if cfg.replaying() => procfs(notices)?,
        // No sock_diag (a kernel without inet_diag or udp_diag, a seccomp
        // filter): /proc/net has the same sockets.
        SourceChoice::Auto => match dump_netlink(cfg, notices) {
            Ok(sockets) => (sockets, Source::Netlink),
            Err(_) => procfs(notices)?,
        },
    };
    Ok(Snapshot {
        sockets,
        port_range,
        source,
    })
}

/// One dump per family and protocol. With port or address filters the
/// kernel runs them (sock_diag bytecode) and only matching sockets cross
/// into user space; the listeners, which classification needs whatever is
/// shown, come from a second dump of the listening table alone, which is
/// small.
fn dump_netlink(cfg: &Config, notices: &mut Notices) -> Result<Vec<Socket>, Error> {
    let mut diag = netlink::DiagSocket::open()?;
    let filtered = cfg.filter.has_endpoint_filters();
    let mut sockets = if filtered {
        Vec::new()
    } else {
        // a little over, for sockets made while we dump
        let hint = procfs::sockstat_hint(&cfg.net_root(), &cfg.protos);
        Vec::with_capacity(hint + hint / 64 + 16)
    };
    for &proto in &cfg.protos {
        let listening = match proto {
            Proto::Tcp => State::Listen.bit(),
            Proto::Udp => State::Close.bit(),
        };
        for &family in &cfg.families {
            let start = sockets.len();
            let bytecode = if filtered {
                bytecode::compile(&cfg.filter, family)
            } else {
                None
            };
            let states = if filtered {
                cfg.wanted_states(proto)
            } else {
                cfg.dump_states(proto)
            };
            if states != 0 {
                diag.dump_filtered(family, proto, states, bytecode.as_deref(), &mut sockets)?;
            }
            let matched = sockets.len() - start;
            if filtered {
                let mut context = Vec::new();
                diag.dump_filtered(family, proto, listening, None, &mut context)?;
                let known: HashSet<Option<u64>> =
                    sockets[start..].iter().map(|s| s.cookie).collect();
                sockets.extend(context.into_iter().filter(|s| !known.contains(&s.cookie)));
            }
            if cfg.verbose {
                notices.push(format!(
                    "netlink {}/{}: the kernel returned {matched} sockets{} and {} listeners for context",
                    proto.name(),
                    family.name(),
                    if bytecode.is_some() { " (filtered in the kernel)" } else { "" },
                    sockets.len() - start - matched
                ));
            }
        }
    }
    Ok(sockets)
}

fn read_procfs(cfg: &Config, notices: &mut Notices) -> Result<Vec<Socket>, Error> {
    let mut sockets = Vec::new();
    for &proto in &cfg.protos {
        for &family in &cfg.families {
            let malformed = procfs::read_table(
                &cfg.net_root(),
                family,
                proto,
                cfg.dump_states(proto),
                &mut sockets,
            )
            .map_err(|source| Error::Proc {
                path: cfg
                    .net_root()
                    .join("net")
                    .join(procfs::file_name(family, proto)),
                source,
            })?;
            if let Some(first) = malformed.first() {
                notices.push(format!(
                    "skipped {} malformed line(s); the first: {first}",
                    malformed.len()
                ));
            }
        }
    }
    Ok(sockets)
}

/// The owners of the sockets whose inodes are in `wanted`.
pub fn owners(
    cfg: &Config,
    wanted: &HashSet<u64>,
    notices: &mut Notices,
) -> Result<Vec<(u64, Process)>, Error> {
    let owners = processes::find_owners(&cfg.proc_root, wanted).map_err(|source| Error::Proc {
        path: cfg.proc_root.clone(),
        source,
    })?;
    if owners.denied > 0 {
        notices.push(format!(
            "cannot see which sockets {} processes of other users hold: their owners show as - (run as root to see them)",
            owners.denied
        ));
    }
    Ok(owners.by_inode)
}
