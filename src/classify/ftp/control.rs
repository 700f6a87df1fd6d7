//! Which connections are FTP control connections, and this host's side of
//! each: TCP on 21, 990 (implicit FTPS) or a `--ftp-port`, or on the
//! service port of a known FTP daemon. Each client and server pair is one
//! session; whether conntrack's ftp helper watches it is found here too.

use std::collections::HashMap;
use std::time::Instant;

use super::{Ftp, FtpEvidence, FtpLabel, Helper, Role, Session, Side, canonical_ends};
use crate::classify::direction::{Confidence, Direction};
use crate::classify::flows::FlowIndex;
use crate::classify::memory::Memory;
use crate::classify::{Labels, agree};
use crate::model::{ConntrackSource, PortRange, Proto, Socket, State, Tuple};

/// Control ports known without being told: FTP and implicit FTPS.
pub const DEFAULT_CONTROL_PORTS: [u16; 2] = [21, 990];

/// Process names (`comm`) of FTP daemons: their listeners are control ports.
pub const DAEMONS: [&str; 7] = [
    "vsftpd",
    "proftpd",
    "pure-ftpd",
    "in.ftpd",
    "ftpd",
    "bftpd",
    "pyftpdlib",
];

/// A control connection found on this host, or remembered by watch mode.
pub(super) struct Control {
    /// Its socket; `None` where it has gone and watch mode remembers it.
    pub(super) index: Option<usize>,
    pub(super) session: usize,
    pub(super) side: Side,
    /// Its conntrack original tuple, if tracked.
    pub(super) orig: Option<Tuple>,
    /// Open (ESTABLISHED, or in its handshake): it may own new data
    /// connections. A closing or remembered one owns only those seen as
    /// they went (`orphaned()`).
    pub(super) live: bool,
    /// When it ended (TIME_WAIT began, or the kernel destroyed it), where
    /// known; `None` for one still open, or remembered without its end.
    pub(super) ended: Option<Instant>,
}

pub(super) struct ControlPorts {
    ports: Vec<u16>,
    /// Ports whose listener belongs to a known FTP daemon.
    daemon: Vec<u16>,
}

impl ControlPorts {
    pub(super) fn contains(&self, port: u16) -> bool {
        self.ports.contains(&port) || self.daemon.contains(&port)
    }
}

/// 21, 990, `--ftp-port`, and the service ports of FTP daemons: a daemon's
/// listener on a privileged port, or on a port outside the ephemeral range
/// with more than a single-connection backlog. vsftpd's session processes
/// are named vsftpd too, and their passive listeners (backlog 1, often in
/// the ephemeral range) are data channels, not control ports.
pub(super) fn control_ports(sockets: &[Socket], extra: &[u16], range: &PortRange) -> ControlPorts {
    let mut ports = DEFAULT_CONTROL_PORTS.to_vec();
    ports.extend_from_slice(extra);
    let daemon = sockets
        .iter()
        .filter(|s| s.proto == Proto::Tcp && s.state == State::Listen)
        .filter(|s| s.processes.iter().any(|p| DAEMONS.contains(&&*p.name)))
        .filter(|s| {
            let port = s.local.port;
            port < 1024 || (!range.contains(port) && s.backlog.is_none_or(|b| b > 1))
        })
        .map(|s| s.local.port)
        .collect();
    ControlPorts { ports, daemon }
}

/// Labels the control connections among `sockets` and opens their sessions
/// in `ftp`. Returns them all, each saying whether it is live.
pub(super) fn find(
    sockets: &[Socket],
    labels: &[Labels],
    ports: &ControlPorts,
    ct: &FlowIndex<'_>,
    ftp: &mut Ftp,
) -> Vec<Control> {
    let mut controls: Vec<Control> = Vec::new();
    let mut by_key = HashMap::new();
    for (i, s) in sockets.iter().enumerate() {
        let Some((side, mut evidence)) = control_side(s, &labels[i], ports) else {
            continue;
        };
        let (local, remote) = canonical_ends(s);
        let (client, server) = match side {
            Side::Server => (remote, local),
            Side::Client => (local, remote),
        };
        let next = ftp.sessions.len();
        let session = *by_key.entry((client, server)).or_insert(next);
        if session == next {
            ftp.sessions.push(Session {
                id: next as u32 + 1,
                client,
                server,
                members: Vec::new(),
                helper: helper_state(ct, s),
            });
        }
        if ftp.sessions[session].helper == Helper::Assigned {
            evidence.push(FtpEvidence::ConntrackHelper);
        }
        ftp.sessions[session].members.push(i);
        ftp.labels.resize(sockets.len(), None);
        ftp.labels[i] = Some(FtpLabel {
            session: session as u32 + 1,
            role: Role::Control,
            side,
            mode: None,
            confidence: Confidence::High,
            evidence,
            word: Some(agree::control_word(side, remote.port)),
        });
        // A closing control connection keeps its label, but no longer owns
        // new data connections: it must not compete with the live one.
        let live = !s.closed
            && matches!(
                s.state,
                State::Established | State::SynSent | State::SynRecv
            );
        controls.push(Control {
            index: Some(i),
            session,
            side,
            orig: ct.flow_of(s).map(|f| f.orig),
            live,
            ended: s.ended,
        });
    }
    controls
}

/// Opens a session in `ftp` for each control connection watch mode
/// remembers that this snapshot does not show: data connections seen as
/// they went may still belong to it. [`super::analyse`] drops those that
/// nothing joins.
pub(super) fn remembered(memory: &Memory, controls: &mut Vec<Control>, ftp: &mut Ftp) {
    // oldest first: the newest wins ties (`Found::choose`)
    let mut recent: Vec<_> = memory.sessions().collect();
    recent.sort_by_key(|r| (r.last_seen(), r.client.port));
    for r in recent {
        let shown = controls.iter().any(|c| {
            let s = &ftp.sessions[c.session];
            c.side == r.side && s.client == r.client && s.server == r.server
        });
        if shown {
            continue;
        }
        let session = ftp.sessions.len();
        ftp.sessions.push(Session {
            id: session as u32 + 1,
            client: r.client,
            server: r.server,
            members: Vec::new(),
            helper: r.helper,
        });
        controls.push(Control {
            index: None,
            session,
            side: r.side,
            // the client opened it; conntrack's original tuple unless NAT'd
            orig: Some(Tuple {
                src: r.client,
                dst: r.server,
                proto: 6,
            }),
            live: false,
            ended: r.ended(),
        });
    }
}

/// This host's side of `s`, if it is a control connection: the server where
/// it listens on (or accepted on) a control port, the client where the
/// remote end is one and it was not accepted here.
fn control_side(s: &Socket, l: &Labels, ports: &ControlPorts) -> Option<(Side, Vec<FtpEvidence>)> {
    if s.proto != Proto::Tcp || s.state == State::Listen {
        return None;
    }
    let remote = s.remote?;
    let why = |port: u16| {
        if ports.ports.contains(&port) {
            FtpEvidence::ControlPort
        } else {
            FtpEvidence::FtpDaemon
        }
    };
    // conntrack's word that this host opened it outweighs the listener
    let d = l.direction.direction;
    if ports.contains(s.local.port)
        && ((l.local_listening && d != Direction::Outbound) || d == Direction::Inbound)
    {
        return Some((Side::Server, vec![why(s.local.port)]));
    }
    if ports.contains(remote.port) && l.direction.direction != Direction::Inbound {
        return Some((Side::Client, vec![why(remote.port)]));
    }
    None
}

fn helper_state(ct: &FlowIndex, control: &Socket) -> Helper {
    if !ct.readable() {
        return Helper::Unreadable;
    }
    match ct.flow_of(control) {
        None => Helper::NotTracked,
        Some(f) => match (f.helper, f.source) {
            (Some("ftp"), _) => Helper::Assigned,
            (_, ConntrackSource::Procfs) => Helper::Unknown,
            _ => Helper::NotAssigned,
        },
    }
}
