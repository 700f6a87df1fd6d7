//! FTP sessions from the socket table: control connections, the data
//! connections and pending data listeners that belong to each, the mode
//! (active or passive), and the side this host is on.
//!
//! What real servers and clients leave in the socket tables, and what the
//! kernel and conntrack add, is in `docs/ftp.md`; the rules here rest on it.
//! Evidence, strongest first: conntrack's ftp helper (an expected flow whose
//! master is the control connection), port 20, the same process as the
//! control connection, a listener on the data port, then port parity. A
//! live connection between the same two hosts is tagged only on evidence of
//! association (conntrack, port 20, a pending listener of the session or the
//! same owning process), never for the hosts alone. A connection seen only
//! as it went (TIME_WAIT, or `closed` from a destroy event) has no owner
//! left to ask: there the hosts and ports of a live or recent control
//! connection are evidence too (`same-hosts`, never `high` alone), beside
//! what watch mode remembers (`Memory`: a session's pending listener, the
//! passive ports seen, sessions whose control connection has gone).
//!
//! [`analyse`] runs three steps, a module each: `control` finds the control
//! connections and this host's side of each (a session per client and
//! server), `association` ties data connections and pending listeners to
//! those sessions and ranks the evidence, and `mode` tells active from
//! passive by who opened the data connection.

use super::Labels;
use super::direction::{Confidence, FtpWord};
use super::flows::FlowIndex;
use super::memory::Memory;
use crate::model::{Endpoint, PortRange, Socket, State, canonical, wire_enum};

mod association;
mod control;
pub mod crossing;
mod mode;

pub use control::{DAEMONS, DEFAULT_CONTROL_PORTS};

wire_enum! {
    pub enum Role {
        Control => "control",
        Data => "data",
        /// A listener waiting for the data connection of its session.
        Pending => "pending",
    }
}

wire_enum! {
    pub enum Side {
        Client => "client",
        Server => "server",
    }
}

wire_enum! {
    pub enum Mode {
        /// PORT/EPRT: the server opens the data connection to the client.
        Active => "active",
        /// PASV/EPSV: the client opens the data connection to the server.
        Passive => "passive",
    }
}

wire_enum! {
    /// Why a socket is said to be part of a session, and in which mode.
    /// README's *FTP* table lists them all (a test holds it to
    /// [`FtpEvidence::ALL`]).
    pub enum FtpEvidence {
        /// The control connection uses port 21, 990 or a `--ftp-port`.
        ControlPort => "control-port",
        /// The control port is a listener of a known FTP daemon.
        FtpDaemon => "ftp-daemon",
        /// conntrack's ftp helper is assigned to the control connection.
        ConntrackHelper => "conntrack-helper",
        /// conntrack: the data flow was expected by this control connection.
        ConntrackMaster => "conntrack-master",
        /// conntrack: the data flow was expected (by a helper; master unknown).
        ConntrackExpected => "conntrack-expected",
        /// conntrack: a pending expectation names this listener.
        ConntrackExpectation => "conntrack-expectation",
        /// conntrack's original tuple says who opened the data connection.
        ConntrackOrigin => "conntrack-origin",
        /// The server end of the data connection is port 20 (ftp-data).
        Port20 => "port-20",
        /// The same process holds the control and the data socket.
        SameProcess => "same-process",
        /// A listener on the data socket's local port: it was accepted here.
        DataListener => "data-listener",
        /// It was accepted from a pending listener of the session.
        PendingListener => "pending-listener",
        /// The data connection's peer is this host, listening there.
        PeerListener => "peer-listener",
        /// The handshake state says who opened it.
        Handshake => "handshake",
        /// The local port has the parity Linux gives `connect()`.
        ConnectParity => "connect-parity",
        /// The local port has the parity Linux gives `bind(port 0)`.
        BindParity => "bind-parity",
        /// The remote port has `connect()` parity (if the peer is Linux).
        RemoteConnectParity => "remote-connect-parity",
        /// The remote port has `bind(port 0)` parity (if the peer is Linux).
        RemoteBindParity => "remote-bind-parity",
        /// Over IPv6: EPSV or EPRT (PASV and PORT cannot carry IPv6).
        Ipv6 => "ipv6",
        /// Several sessions could own it; the most likely was taken.
        SeveralSessions => "several-sessions",
        /// Seen as it went: it ended with this session's control connection
        /// (within milliseconds: a data connection and its control
        /// connection end together), better than with any other session's;
        /// sessions whose control connection had ended well before it are
        /// out.
        Timing => "timing",
        /// The ftp helper watches the control connection but did not expect
        /// this flow (FTPS, or a NAT'd 227/PORT address, or not FTP at all).
        NotExpected => "not-expected",
        /// A connection seen only as it went (TIME_WAIT, closed), whose owner
        /// cannot be known, between the hosts of the session on the ports a
        /// data connection uses. Host-level: `low` alone.
        SameHosts => "same-hosts",
        /// Crossing this host: the session's client opened it to a high port
        /// of another address, and no one answered (a 227 naming an address
        /// the client cannot reach). Low.
        SameClient => "same-client",
        /// The server's port lies in the range of the passive ports seen
        /// for this server (watch mode, or this snapshot): passive.
        PassiveRange => "passive-range",
        /// An earlier refresh saw a pending listener of the session on the
        /// local port (watch mode): accepted from it.
        RememberedPending => "remembered-pending",
        /// The session's control connection is closing, or gone and
        /// remembered (watch mode).
        RecentControl => "recent-control",
        /// Its program closed it between the dump and the walk of `/proc`
        /// for owners (one that could read every process): seen as it
        /// went, though its state is still open.
        OwnerGone => "owner-gone",
        /// Only one end's port is in this host's ephemeral range: that end
        /// opened it, by the direction's convention. A guess.
        EphemeralPort => "ephemeral-port",
        /// The direction's own evidence says otherwise: neither is stated
        /// with confidence.
        DirectionDisagrees => "direction-disagrees",
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
    /// Who opened the connection by FTP's evidence, as direction evidence
    /// (`agree.rs`): not shown itself.
    pub word: Option<FtpWord>,
}

wire_enum! {
    /// Whether conntrack's ftp helper watches a session's control connection.
    pub enum Helper {
        Assigned => "assigned",
        NotAssigned => "not-assigned",
        /// conntrack holds no flow for the control connection (not in use here).
        NotTracked => "not-tracked",
        /// conntrack was read from /proc, which does not show helpers.
        Unknown => "unknown",
        /// conntrack could not be read as this user.
        Unreadable => "unreadable",
    }
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
    /// One entry per socket of the snapshot, or none where no socket is
    /// in a session.
    pub labels: Vec<Option<FtpLabel>>,
    pub sessions: Vec<Session>,
}

/// Inputs besides the sockets.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub range: &'a PortRange,
    /// conntrack's flows, indexed by socket ends (empty where unreadable).
    pub flows: &'a FlowIndex<'a>,
    /// `--ftp-port` values, beside 21 and 990.
    pub extra_ports: &'a [u16],
    /// What earlier refreshes saw (watch mode).
    pub memory: Option<&'a Memory>,
    /// When the table was read (`Snapshot::dumped`).
    pub dumped: Option<std::time::Instant>,
}

/// Finds the FTP sessions among `sockets` (with their `labels`, same order).
pub fn analyse(sockets: &[Socket], labels: &[Labels], cx: Context<'_>) -> Ftp {
    // the labels are made one per socket only where there are sessions
    // (8 MB at 200,000 sockets, for none)
    let mut ftp = Ftp::default();
    let ports = control::control_ports(sockets, cx.extra_ports, cx.range);
    let mut controls = control::find(sockets, labels, &ports, cx.flows, &mut ftp);
    let seen = ftp.sessions.len();
    if let Some(memory) = cx.memory {
        control::remembered(memory, &mut controls, &mut ftp);
    }
    if controls.is_empty() {
        return ftp;
    }
    ftp.labels.resize(sockets.len(), None);
    association::attach(sockets, labels, &ports, &controls, cx, &mut ftp);
    drop_unused(&mut ftp, seen);
    for session in &mut ftp.sessions {
        session.members.sort_unstable();
    }
    ftp
}

/// Removes the remembered sessions (from index `seen` on) that no socket of
/// this snapshot belongs to, and numbers the rest after those seen.
fn drop_unused(ftp: &mut Ftp, seen: usize) {
    let mut ids = vec![0u32; ftp.sessions.len()];
    let mut kept = Vec::with_capacity(ftp.sessions.len());
    for (i, mut s) in std::mem::take(&mut ftp.sessions).into_iter().enumerate() {
        if i < seen || !s.members.is_empty() {
            s.id = kept.len() as u32 + 1;
            ids[i] = s.id;
            kept.push(s);
        }
    }
    ftp.sessions = kept;
    for l in ftp.labels.iter_mut().flatten() {
        if let Some(&id) = ids.get(l.session as usize - 1) {
            l.session = id;
        }
    }
}

/// A socket seen only as it went: TIME_WAIT and the other states of a
/// socket its program has closed (orphaned: inode 0; CLOSE_WAIT too, where
/// the program closed it with data unread, just before the kernel resets
/// it: curl's active data connection), one a destroy event reported, or
/// one whose program closed it just after the dump (`owner_gone`). No
/// process holds it any more, so "the same process" cannot be asked of it.
fn orphaned(s: &Socket) -> bool {
    s.closed
        || s.owner_gone
        || s.state == State::TimeWait
        || (s.inode == 0
            && matches!(
                s.state,
                State::FinWait1
                    | State::FinWait2
                    | State::CloseWait
                    | State::LastAck
                    | State::Closing
                    | State::Close
            ))
}

/// A socket's (local, remote) ends with v4-mapped addresses made IPv4, so
/// that a dual-stack control socket and IPv4 data sockets compare equal.
fn canonical_ends(s: &Socket) -> (Endpoint, Endpoint) {
    let local = Endpoint::new(canonical(s.local.addr), s.local.port);
    let remote = s
        .remote
        .map_or(local, |r| Endpoint::new(canonical(r.addr), r.port));
    (local, remote)
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod brief_tests;
