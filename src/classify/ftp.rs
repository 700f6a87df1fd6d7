//! FTP sessions from the socket table: control connections, the data
//! connections and pending data listeners that belong to each, the mode
//! (active or passive), and the side this host is on.
//!
//! The rules and their evidence follow `../shared/design/ftp.md`, strongest
//! first: conntrack's ftp helper (an expected flow whose master is the control
//! connection), port 20, the same process as the control connection, a
//! listener on the data port, then port parity. A connection between the same
//! two hosts is tagged only on evidence of association (conntrack, port 20 or
//! the same owning process), never for the hosts alone.

use std::collections::HashMap;
use std::net::IpAddr;

use serde::Serialize;

use super::Labels;
use super::direction::{Confidence, Direction, Evidence, Verdict};
use super::flows::{FlowIndex, FlowMatch};
use super::ports::{PortClass, has_connect_parity};
use crate::model::{
    ConntrackSource, Endpoint, Family, PortRange, Proto, Socket, State, Tuple, canonical,
};

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Control,
    Data,
    /// A listener waiting for the data connection of its session.
    Pending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    Client,
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// PORT/EPRT: the server opens the data connection to the client.
    Active,
    /// PASV/EPSV: the client opens the data connection to the server.
    Passive,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FtpEvidence {
    /// The control connection uses port 21, 990 or a `--ftp-port`.
    ControlPort,
    /// The control port is a listener of a known FTP daemon.
    FtpDaemon,
    /// conntrack's ftp helper is assigned to the control connection.
    ConntrackHelper,
    /// conntrack: the data flow was expected by this control connection.
    ConntrackMaster,
    /// conntrack: the data flow was expected (by a helper; master unknown).
    ConntrackExpected,
    /// conntrack: a pending expectation names this listener.
    ConntrackExpectation,
    /// conntrack's original tuple says who opened the data connection.
    ConntrackOrigin,
    /// The server end of the data connection is port 20 (ftp-data).
    Port20,
    /// The same process holds the control and the data socket.
    SameProcess,
    /// A listener on the data socket's local port: it was accepted here.
    DataListener,
    /// It was accepted from a pending listener of the session.
    PendingListener,
    /// The data connection's peer is this host, listening there.
    PeerListener,
    /// The handshake state says who opened it.
    Handshake,
    /// The local port has the parity Linux gives `connect()`.
    ConnectParity,
    /// The local port has the parity Linux gives `bind(port 0)`.
    BindParity,
    /// The remote port has `connect()` parity (if the peer is Linux).
    RemoteConnectParity,
    /// The remote port has `bind(port 0)` parity (if the peer is Linux).
    RemoteBindParity,
    /// Over IPv6: EPSV or EPRT (PASV and PORT cannot carry IPv6).
    Ipv6,
    /// Several sessions could own it; the most likely was taken.
    SeveralSessions,
    /// The ftp helper watches the control connection but did not expect
    /// this flow (FTPS, or a NAT'd 227/PORT address, or not FTP at all).
    NotExpected,
}

impl FtpEvidence {
    /// The name scripts see (the JSON form).
    pub fn name(self) -> &'static str {
        match self {
            FtpEvidence::ControlPort => "control-port",
            FtpEvidence::FtpDaemon => "ftp-daemon",
            FtpEvidence::ConntrackHelper => "conntrack-helper",
            FtpEvidence::ConntrackMaster => "conntrack-master",
            FtpEvidence::ConntrackExpected => "conntrack-expected",
            FtpEvidence::ConntrackExpectation => "conntrack-expectation",
            FtpEvidence::ConntrackOrigin => "conntrack-origin",
            FtpEvidence::Port20 => "port-20",
            FtpEvidence::SameProcess => "same-process",
            FtpEvidence::DataListener => "data-listener",
            FtpEvidence::PendingListener => "pending-listener",
            FtpEvidence::PeerListener => "peer-listener",
            FtpEvidence::Handshake => "handshake",
            FtpEvidence::ConnectParity => "connect-parity",
            FtpEvidence::BindParity => "bind-parity",
            FtpEvidence::RemoteConnectParity => "remote-connect-parity",
            FtpEvidence::RemoteBindParity => "remote-bind-parity",
            FtpEvidence::Ipv6 => "ipv6",
            FtpEvidence::SeveralSessions => "several-sessions",
            FtpEvidence::NotExpected => "not-expected",
        }
    }
}

/// What sockwho says about a socket's part in an FTP session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FtpLabel {
    pub session: u32,
    pub role: Role,
    pub side: Side,
    pub mode: Option<Mode>,
    pub confidence: Confidence,
    pub evidence: Vec<FtpEvidence>,
}

/// Whether conntrack's ftp helper watches a session's control connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Helper {
    Assigned,
    NotAssigned,
    /// conntrack holds no flow for the control connection (not in use here).
    NotTracked,
    /// conntrack was read from /proc, which does not show helpers.
    Unknown,
    /// conntrack could not be read as this user.
    Unreadable,
}

/// One FTP session as seen from this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: u32,
    pub client: Endpoint,
    pub server: Endpoint,
    /// Socket indices: control(s) first, then data and pending, in table order.
    pub members: Vec<usize>,
    pub helper: Helper,
}

#[derive(Debug, Clone, Default)]
pub struct Ftp {
    /// One entry per socket of the snapshot.
    pub labels: Vec<Option<FtpLabel>>,
    pub sessions: Vec<Session>,
}

/// Inputs besides the sockets.
/// Inputs besides the sockets.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub range: &'a PortRange,
    /// conntrack's flows, indexed by socket ends (empty where unreadable).
    pub flows: &'a FlowIndex<'a>,
    /// `--ftp-port` values, beside 21 and 990.
    pub extra_ports: &'a [u16],
}

/// Finds the FTP sessions among `sockets` (with their `labels`, same order).
pub fn analyse(sockets: &[Socket], labels: &[Labels], cx: Context<'_>) -> Ftp {
    let ct = cx.flows;
    let mut ftp = Ftp {
        labels: vec![None; sockets.len()],
        sessions: Vec::new(),
    };
    let ports = control_ports(sockets, cx.extra_ports, cx.range);
    let mut controls: Vec<Control> = Vec::new();
    let mut by_key: HashMap<(Endpoint, Endpoint), usize> = HashMap::new();
    for (i, s) in sockets.iter().enumerate() {
        let Some((side, mut evidence)) = control_side(s, &labels[i], &ports) else {
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
        ftp.labels[i] = Some(FtpLabel {
            session: session as u32 + 1,
            role: Role::Control,
            side,
            mode: None,
            confidence: Confidence::High,
            evidence,
        });
        // A closing control connection keeps its label, but no longer owns
        // new data connections: it must not compete with the live one.
        if matches!(
            s.state,
            State::Established | State::SynSent | State::SynRecv
        ) {
            controls.push(Control {
                index: i,
                session,
                side,
                orig: ct.flow_of(s).map(|f| f.orig),
            });
        }
    }
    if controls.is_empty() {
        return ftp;
    }
    // Listeners first: a data connection accepted from a session's pending
    // listener (vsftpd keeps it open) belongs to that session.
    for listen in [true, false] {
        for (i, s) in sockets.iter().enumerate() {
            let wanted = s.proto == Proto::Tcp && (s.state == State::Listen) == listen;
            if ftp.labels[i].is_some() || !wanted {
                continue;
            }
            let found = Found {
                sockets,
                labels,
                ftp: &ftp.labels,
                controls: &controls,
                sessions: &ftp.sessions,
                ct,
                range: cx.range,
            };
            let label = if listen {
                found.pending(i, &ports)
            } else {
                found.data(i)
            };
            if let Some(label) = label {
                ftp.sessions[label.session as usize - 1].members.push(i);
                ftp.labels[i] = Some(label);
            }
        }
    }
    for session in &mut ftp.sessions {
        session.members.sort_unstable();
    }
    ftp
}

/// A live control connection found on this host.
struct Control {
    index: usize,
    session: usize,
    side: Side,
    /// Its conntrack original tuple, if tracked.
    orig: Option<Tuple>,
}

struct ControlPorts {
    ports: Vec<u16>,
    /// Ports whose listener belongs to a known FTP daemon.
    daemon: Vec<u16>,
}

impl ControlPorts {
    fn contains(&self, port: u16) -> bool {
        self.ports.contains(&port) || self.daemon.contains(&port)
    }
}

/// 21, 990, `--ftp-port`, and the service ports of FTP daemons: a daemon's
/// listener on a privileged port, or on a port outside the ephemeral range
/// with more than a single-connection backlog. vsftpd's session processes
/// are named vsftpd too, and their passive listeners (backlog 1, often in
/// the ephemeral range) are data channels, not control ports.
fn control_ports(sockets: &[Socket], extra: &[u16], range: &PortRange) -> ControlPorts {
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
    if ports.contains(s.local.port)
        && (l.local_listening || l.direction.direction == Direction::Inbound)
    {
        return Some((Side::Server, vec![why(s.local.port)]));
    }
    if ports.contains(remote.port) && l.direction.direction != Direction::Inbound {
        return Some((Side::Client, vec![why(remote.port)]));
    }
    None
}

fn canonical_ends(s: &Socket) -> (Endpoint, Endpoint) {
    let local = Endpoint::new(canonical(s.local.addr), s.local.port);
    let remote = s
        .remote
        .map_or(local, |r| Endpoint::new(canonical(r.addr), r.port));
    (local, remote)
}

fn share_owner(a: &Socket, b: &Socket) -> bool {
    a.processes
        .iter()
        .any(|p| b.processes.iter().any(|q| q.pid == p.pid))
}

/// A control connection that may own a socket, and what ties them.
struct Candidate {
    control: usize,
    /// conntrack tied it to this very control connection.
    exact: bool,
    /// Accepted from a single-use pending listener of the session.
    listener: bool,
    same_process: bool,
    evidence: Vec<FtpEvidence>,
}

impl Candidate {
    /// How sure the tie is: certain with session-specific or host-level
    /// evidence, a guess on the owner alone, low among several sessions.
    fn confidence(&self, several: bool) -> Confidence {
        match (several, self.tied()) {
            (true, _) => Confidence::Low,
            (false, true) => Confidence::High,
            (false, false) => Confidence::Medium,
        }
    }

    /// Evidence that ties the socket to this session, not just to these
    /// two hosts or this process.
    fn tied(&self) -> bool {
        self.exact
            || self.listener
            || self.evidence.iter().any(|e| {
                matches!(
                    e,
                    FtpEvidence::ConntrackExpected
                        | FtpEvidence::ConntrackExpectation
                        | FtpEvidence::Port20
                )
            })
    }
}

/// What is known when data connections and pending listeners are sought.
struct Found<'a> {
    sockets: &'a [Socket],
    labels: &'a [Labels],
    ftp: &'a [Option<FtpLabel>],
    controls: &'a [Control],
    sessions: &'a [Session],
    ct: &'a FlowIndex<'a>,
    range: &'a PortRange,
}

impl Found<'_> {
    /// Whether `control`'s end of its session is on `local`'s host, facing
    /// `remote`'s: the server end for a connection from the server's address
    /// to the client's, the client end the other way round. Both, where
    /// client and server are one host (loopback).
    fn faces(&self, control: &Control, local: IpAddr, remote: IpAddr) -> bool {
        let s = &self.sessions[control.session];
        match control.side {
            Side::Server => local == s.server.addr && remote == s.client.addr,
            Side::Client => local == s.client.addr && remote == s.server.addr,
        }
    }

    /// The single-use pending listener of `session` on `side` that takes
    /// connections on `ep`, if any: it ties what it accepted to the session.
    fn pending_listener_on(&self, session: usize, side: Side, ep: &Endpoint) -> Option<bool> {
        self.sockets.iter().zip(self.ftp).find_map(|(l, f)| {
            let f = f.as_ref()?;
            let ours =
                f.role == Role::Pending && f.session as usize == session + 1 && f.side == side;
            let takes = l.local.port == ep.port
                && (l.local.addr.is_unspecified() || canonical(l.local.addr) == canonical(ep.addr));
            // tied when conntrack expected the listener, or it takes one
            // connection only (vsftpd, curl); a service's listener shared
            // by the process (HTTP in the same JVM) is not
            (ours && takes)
                .then(|| f.confidence == Confidence::High || l.backlog.is_some_and(|b| b <= 1))
        })
    }

    /// The most likely owner among `candidates`: session-specific evidence
    /// first (conntrack's master, the session's own listener, the same
    /// process), host-level evidence (port 20, an expectation without
    /// master) after, and the most recent control connection last. Sockets
    /// get increasing inode numbers, but in per-CPU batches, so that order
    /// only breaks ties. Returns whether several sessions were in the running.
    fn choose(&self, mut candidates: Vec<Candidate>, inode: u64) -> Option<(Candidate, bool)> {
        let strength = |c: &Candidate| (c.exact, c.listener, c.same_process, c.tied());
        candidates.sort_by_key(|c| {
            let ctl = self.sockets[self.controls[c.control].index].inode;
            std::cmp::Reverse((strength(c), ctl <= inode || inode == 0, ctl))
        });
        let best = candidates.first()?;
        let session = self.controls[best.control].session;
        // ambiguous only where another session's evidence is as strong
        let several = candidates
            .iter()
            .any(|c| self.controls[c.control].session != session && strength(c) == strength(best));
        candidates.into_iter().next().map(|c| (c, several))
    }

    fn data(&self, i: usize) -> Option<FtpLabel> {
        let s = &self.sockets[i];
        let (local, remote) = canonical_ends(s);
        let flow = self.ct.flow_of(s);
        let mut candidates = Vec::new();
        for (c, control) in self.controls.iter().enumerate() {
            if !self.faces(control, local.addr, remote.addr) {
                continue;
            }
            let session = &self.sessions[control.session];
            let (client_port, server_port) = match control.side {
                Side::Server => (remote.port, local.port),
                Side::Client => (local.port, remote.port),
            };
            // Data connections go from an unprivileged client port to port
            // 20 or an unprivileged server port: ssh, http and the like
            // between the same hosts, even from the same process, stay out.
            if client_port < 1024
                || (server_port < 1024 && server_port != 20)
                || server_port == session.server.port
            {
                continue;
            }
            let mut evidence = Vec::new();
            let mut exact = false;
            match flow {
                Some(f) if f.expected => match (f.master, control.orig) {
                    (Some(m), Some(o)) if same_tuple(&m, &o) => {
                        exact = true;
                        evidence.push(FtpEvidence::ConntrackMaster);
                    }
                    (Some(_), Some(_)) => continue, // expected by another control connection
                    _ => evidence.push(FtpEvidence::ConntrackExpected),
                },
                Some(_) if session.helper == Helper::Assigned => {
                    evidence.push(FtpEvidence::NotExpected)
                }
                _ => {}
            }
            let port20 = server_port == 20;
            if port20 {
                evidence.push(FtpEvidence::Port20);
            }
            let same_process = share_owner(s, &self.sockets[control.index]);
            if same_process {
                evidence.push(FtpEvidence::SameProcess);
            }
            let listener = self.pending_listener_on(control.session, control.side, &s.local);
            if listener.is_some() {
                evidence.push(FtpEvidence::PendingListener);
            }
            let tying = exact
                || port20
                || same_process
                || listener.is_some()
                || evidence.contains(&FtpEvidence::ConntrackExpected);
            if tying {
                candidates.push(Candidate {
                    control: c,
                    exact,
                    listener: listener == Some(true),
                    same_process,
                    evidence,
                });
            }
        }
        let (chosen, several) = self.choose(candidates, s.inode)?;
        let side = self.controls[chosen.control].side;
        // The same owner alone is a heuristic: a process that also talks to
        // the same peer on other unprivileged ports (an application server
        // with FTP and HTTP in one JVM) looks the same.
        let mut confidence = chosen.confidence(several);
        let mut evidence = chosen.evidence;
        if evidence.contains(&FtpEvidence::NotExpected) {
            confidence = Confidence::Low;
        }
        if several {
            evidence.push(FtpEvidence::SeveralSessions);
        }
        let port20 = evidence.contains(&FtpEvidence::Port20);
        let (mode, mode_evidence, mode_confidence) =
            data_mode(s, &self.labels[i].direction, side, flow, port20, self.range);
        evidence.extend(mode_evidence);
        if let Some(c) = mode_confidence {
            confidence = confidence.min(c);
        }
        if s.family == Family::Inet6 && !matches!(canonical(s.local.addr), IpAddr::V4(_)) {
            evidence.push(FtpEvidence::Ipv6);
        }
        Some(FtpLabel {
            session: self.controls[chosen.control].session as u32 + 1,
            role: Role::Data,
            side,
            mode,
            confidence,
            evidence,
        })
    }

    fn pending(&self, i: usize, ports: &ControlPorts) -> Option<FtpLabel> {
        let l = &self.sockets[i];
        // passive ports and the ports of PORT/EPRT are unprivileged
        if ports.contains(l.local.port) || l.local.port < 1024 {
            return None;
        }
        let addr = canonical(l.local.addr);
        let mut candidates = Vec::new();
        for (c, control) in self.controls.iter().enumerate() {
            let session = &self.sessions[control.session];
            let here = match control.side {
                Side::Server => session.server.addr,
                Side::Client => session.client.addr,
            };
            // the listener must take connections on this session's address
            if !(l.local.addr.is_unspecified() || addr == here) {
                continue;
            }
            let mut evidence = Vec::new();
            let mut exact = false;
            if let Some(e) = self.ct.expectation_for(here, l.local.port) {
                match (e.master, control.orig) {
                    (Some(m), Some(o)) if same_tuple(&m, &o) => exact = true,
                    (Some(_), Some(_)) => continue,
                    _ => {}
                }
                evidence.push(FtpEvidence::ConntrackExpectation);
            }
            let same_process = share_owner(l, &self.sockets[control.index]);
            if same_process {
                evidence.push(FtpEvidence::SameProcess);
            }
            if !evidence.is_empty() {
                candidates.push(Candidate {
                    control: c,
                    exact,
                    listener: false,
                    same_process,
                    evidence,
                });
            }
        }
        let (chosen, several) = self.choose(candidates, l.inode)?;
        let side = self.controls[chosen.control].side;
        let confidence = chosen.confidence(several);
        let mut evidence = chosen.evidence;
        if several {
            evidence.push(FtpEvidence::SeveralSessions);
        }
        Some(FtpLabel {
            session: self.controls[chosen.control].session as u32 + 1,
            role: Role::Pending,
            side,
            // the server waits in passive mode, the client in active mode
            mode: Some(match side {
                Side::Server => Mode::Passive,
                Side::Client => Mode::Active,
            }),
            confidence,
            evidence,
        })
    }
}

fn data_mode(
    s: &Socket,
    direction: &Verdict,
    side: Side,
    flow: Option<FlowMatch>,
    port20: bool,
    range: &PortRange,
) -> (Option<Mode>, Vec<FtpEvidence>, Option<Confidence>) {
    // Who opened it, as the mode follows: the client opens passive
    // connections, the server active ones.
    let by_opener = |opened_here: bool| match (side, opened_here) {
        (Side::Client, true) | (Side::Server, false) => Mode::Passive,
        (Side::Client, false) | (Side::Server, true) => Mode::Active,
    };
    if let Some(f) = flow {
        return (
            Some(by_opener(f.opened_here)),
            vec![FtpEvidence::ConntrackOrigin],
            Some(Confidence::High),
        );
    }
    let remote_port = s.remote.map_or(0, |r| r.port);
    if port20 {
        return (Some(Mode::Active), Vec::new(), Some(Confidence::High));
    }
    if direction.confidence == Some(Confidence::High) {
        let fact = direction.evidence.iter().find_map(|e| match e {
            Evidence::Listener => Some(FtpEvidence::DataListener),
            Evidence::PeerListener => Some(FtpEvidence::PeerListener),
            Evidence::SynSent
            | Evidence::SynRecv
            | Evidence::SeenSynSent
            | Evidence::SeenSynRecv => Some(FtpEvidence::Handshake),
            Evidence::RememberedListener => Some(FtpEvidence::DataListener),
            _ => None,
        });
        let opened_here = match direction.direction {
            Direction::Outbound => Some(true),
            Direction::Inbound => Some(false),
            _ => None,
        };
        if let (Some(fact), Some(here)) = (fact, opened_here) {
            return (Some(by_opener(here)), vec![fact], Some(Confidence::High));
        }
    }
    // Port parity, where the kernel chose the port: `Some(true)` for the
    // parity of connect(), `Some(false)` for that of bind(port 0).
    let connect_parity = |port: u16| {
        (super::ports::port_class(port, range) == PortClass::Ephemeral)
            .then(|| has_connect_parity(port, range))
    };
    match (
        side,
        connect_parity(s.local.port),
        connect_parity(remote_port),
    ) {
        // a client's connect() port: it opened the connection
        (Side::Client, Some(true), _) => (
            Some(Mode::Passive),
            vec![FtpEvidence::ConnectParity],
            Some(Confidence::Medium),
        ),
        // a client's bind(0) port with no listener left: the port it sent with PORT/EPRT
        (Side::Client, Some(false), _) => (
            Some(Mode::Active),
            vec![FtpEvidence::BindParity],
            Some(Confidence::Medium),
        ),
        // On the server the client's port speaks first: a passive port may be
        // bound explicitly from a configured range, whatever its parity, but
        // the client's end is its connect() port in passive mode and the
        // port it listened on in active mode (if the client is Linux). A
        // local port that agrees raises the confidence.
        (Side::Server, local, Some(true)) => {
            let mut evidence = vec![FtpEvidence::RemoteConnectParity];
            let agree = local == Some(false);
            if agree {
                evidence.push(FtpEvidence::BindParity);
            }
            (
                Some(Mode::Passive),
                evidence,
                Some(if agree {
                    Confidence::Medium
                } else {
                    Confidence::Low
                }),
            )
        }
        (Side::Server, local, Some(false)) => {
            let mut evidence = vec![FtpEvidence::RemoteBindParity];
            let agree = local == Some(true);
            if agree {
                evidence.push(FtpEvidence::ConnectParity);
            }
            (
                Some(Mode::Active),
                evidence,
                Some(if agree {
                    Confidence::Medium
                } else {
                    Confidence::Low
                }),
            )
        }
        // a server's connect() port: it connected to the client
        (Side::Server, Some(true), None) => (
            Some(Mode::Active),
            vec![FtpEvidence::ConnectParity],
            Some(Confidence::Low),
        ),
        _ => (None, Vec::new(), None),
    }
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

pub(crate) fn same_tuple(a: &Tuple, b: &Tuple) -> bool {
    let c = |e: &Endpoint| (canonical(e.addr), e.port);
    a.proto == b.proto && c(&a.src) == c(&b.src) && c(&a.dst) == c(&b.dst)
}

#[cfg(test)]
mod tests;
