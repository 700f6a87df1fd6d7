//! Which session each data connection and pending data listener belongs
//! to, and how sure that is. A live socket is tied to a session only on
//! evidence of association: conntrack's expectation (exact where its master
//! is the control connection), port 20, a pending listener of the session,
//! or the same owning process; never for being between the same two hosts.
//! A socket seen only as it went (`orphaned()`: TIME_WAIT, closed) has no
//! owner to ask, so there the session's hosts and ports count too
//! (`same-hosts`, `low` alone; `medium` with the server's passive range),
//! beside a pending listener of the session that watch mode saw
//! (`remembered-pending`); and closing or remembered control connections
//! may own it. Among several sessions, [`Found::choose`] ranks the evidence,
//! and for those seen as they went, when each ended: a data connection
//! ends with its control connection, so a session whose control connection
//! had ended well before it is out, and the one whose end fits best is
//! taken (`timing`; [`Fit`]).

use std::cmp::Reverse;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::control::{Control, ControlPorts};
use super::{
    Context, Ftp, FtpEvidence, FtpLabel, Helper, Mode, Role, Session, Side, canonical_ends, mode,
    orphaned,
};
use crate::classify::direction::Confidence;
use crate::classify::flows::FlowIndex;
use crate::classify::memory::Memory;
use crate::classify::{Labels, agree};
use crate::model::{Endpoint, Family, PortRange, Proto, Socket, State, Tuple, canonical};

/// Labels the data connections and pending listeners among `sockets` that
/// belong to the sessions of `controls`, in `ftp`.
pub(super) fn attach(
    sockets: &[Socket],
    labels: &[Labels],
    ports: &ControlPorts,
    controls: &[Control],
    cx: Context<'_>,
    ftp: &mut Ftp,
) {
    // Listeners first: a data connection accepted from a session's pending
    // listener (vsftpd keeps it open) belongs to that session. Then live
    // data connections, whose passive ports tell the server's passive range
    // to those seen only as they went.
    // the listeners whose owners did not go just after the dump: one that
    // went is a single-use listener's (a data channel's), not a service's
    let staying = crate::classify::ports::Listeners::from_sockets(
        sockets
            .iter()
            .filter(|s| s.proto == Proto::Tcp && s.state == State::Listen && !s.owner_gone),
    );
    for pass in [Pass::Listeners, Pass::Live, Pass::Orphaned] {
        let passive = match pass {
            Pass::Orphaned => passive_ranges(sockets, ftp, cx.memory),
            _ => HashMap::new(),
        };
        let mut pending: HashMap<u16, Vec<usize>> = HashMap::new();
        for (i, f) in ftp.labels.iter().enumerate() {
            if f.as_ref().is_some_and(|f| f.role == Role::Pending) {
                pending.entry(sockets[i].local.port).or_default().push(i);
            }
        }
        for (i, s) in sockets.iter().enumerate() {
            let wanted = s.proto == Proto::Tcp
                && match pass {
                    Pass::Listeners => s.state == State::Listen,
                    Pass::Live => s.state != State::Listen && !orphaned(s),
                    Pass::Orphaned => s.state != State::Listen && orphaned(s),
                };
            if ftp.labels[i].is_some() || !wanted {
                continue;
            }
            let found = Found {
                sockets,
                labels,
                ftp: &ftp.labels,
                controls,
                sessions: &ftp.sessions,
                ct: cx.flows,
                range: cx.range,
                memory: cx.memory,
                dumped: cx.dumped,
                passive: &passive,
                pending: &pending,
                staying: &staying,
            };
            let label = match pass {
                Pass::Listeners => found.pending(i, ports),
                _ => found.data(i),
            };
            if let Some(label) = label {
                ftp.sessions[label.session as usize - 1].members.push(i);
                ftp.labels[i] = Some(label);
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Listeners,
    Live,
    Orphaned,
}

/// The widest range of passive ports a server is taken to use: a configured
/// range (vsftpd's `pasv_min_port`, ProFTPD's `PassivePorts`) is usually
/// narrow; ports the kernel or a program picks from all over the ephemeral
/// range say nothing about the next one.
const PASSIVE_RANGE_SPAN: u16 = 1000;

/// Each server's passive range, where two or more passive ports of it were
/// seen within [`PASSIVE_RANGE_SPAN`]: those of this snapshot's pending
/// listeners and live passive data connections, and those watch mode saw.
fn passive_ranges(
    sockets: &[Socket],
    ftp: &Ftp,
    memory: Option<&Memory>,
) -> HashMap<Endpoint, (u16, u16)> {
    let mut seen: HashMap<Endpoint, Vec<u16>> = HashMap::new();
    for (s, f) in sockets.iter().zip(&ftp.labels) {
        let Some(f) = f.as_ref().filter(|f| f.role != Role::Control) else {
            continue;
        };
        if f.mode != Some(Mode::Passive) {
            continue;
        }
        let port = match (f.side, s.remote) {
            (Side::Server, _) => s.local.port,
            (Side::Client, Some(r)) => r.port,
            (Side::Client, None) => continue,
        };
        let server = ftp.sessions[f.session as usize - 1].server;
        seen.entry(server).or_default().push(port);
    }
    if let Some(m) = memory {
        let servers: Vec<Endpoint> = ftp.sessions.iter().map(|s| s.server).collect();
        for server in servers {
            let ports = seen.entry(server).or_default();
            ports.extend(m.passive_ports(server));
        }
    }
    seen.into_iter()
        .filter_map(|(server, mut ports)| {
            ports.sort_unstable();
            ports.dedup();
            let (&low, &high) = (ports.first()?, ports.last()?);
            (ports.len() >= 2 && high - low <= PASSIVE_RANGE_SPAN).then_some((server, (low, high)))
        })
        .collect()
}

fn share_owner(a: &Socket, b: &Socket) -> bool {
    a.processes
        .iter()
        .any(|p| b.processes.iter().any(|q| q.pid == p.pid))
}

/// Past this, a control connection that ended before a connection seen as
/// it went is not its owner: more than the events' thread can lag.
const TIMING_LIMIT: Duration = Duration::from_millis(100);

/// How well a control connection's end fits the end of a connection seen
/// as it went: the cost of taking it as the owner (`None`: an end is not
/// known), so that the greater `Fit` is the likelier owner.
///
/// A data connection and its control connection end together, within a few
/// milliseconds and in either order: the data connection closes before the
/// 226 reply, but a client that closes both at exit leaves the server's data
/// socket to enter TIME_WAIT a moment after the control connection went;
/// and a destroy event's time is when sockwho read it (later than the
/// destroy), a TIME_WAIT's start is counted back from a timer in
/// milliseconds. A client's next session follows within tens of
/// milliseconds (curl in a loop: 20 ms). So the cost is how far apart the
/// two ends are, twice that where the control connection ended first (the
/// usual order is the other); an open control connection ends after now at
/// the earliest, and costs at least the time since the connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Fit(Option<Reverse<Duration>>);

impl Fit {
    const UNKNOWN: Fit = Fit(None);

    /// `None` where the control connection had ended well before `ended`,
    /// the end of the connection seen as it went: not its owner. `dumped`
    /// is when the table was read.
    fn of(ended: Option<Instant>, control: &Control, dumped: Option<Instant>) -> Option<Fit> {
        let Some(data) = ended else {
            return Some(Fit::UNKNOWN);
        };
        let cost = match control.ended {
            Some(c) if c >= data => c - data,
            Some(c) if data - c <= TIMING_LIMIT => (data - c) * 2,
            Some(_) => return None,
            // in the table and not ended: open (or closing) now
            None if control.index.is_some() => {
                dumped.map_or(Duration::MAX, |now| now.saturating_duration_since(data))
            }
            None => return Some(Fit::UNKNOWN),
        };
        Some(Fit(Some(Reverse(cost))))
    }
}

/// A control connection that may own a socket, and what ties them.
struct Candidate {
    control: usize,
    /// conntrack tied it to this very control connection.
    exact: bool,
    /// Accepted from a single-use pending listener of the session (open now,
    /// or seen by watch mode).
    listener: bool,
    same_process: bool,
    /// Nothing but the hosts and ports ties it (`same-hosts`, and perhaps
    /// `passive-range`).
    hosts_only: bool,
    /// For a connection seen as it went: how their ends fit.
    timing: Fit,
    evidence: Vec<FtpEvidence>,
}

impl Candidate {
    /// How sure the tie is: certain with session-specific evidence or port
    /// 20, a guess on the owner alone or the hosts and the passive range,
    /// low on the hosts alone and among several sessions.
    fn confidence(&self, several: bool) -> Confidence {
        if several {
            Confidence::Low
        } else if self.tied() {
            Confidence::High
        } else if !self.hosts_only || self.evidence.contains(&FtpEvidence::PassiveRange) {
            Confidence::Medium
        } else {
            Confidence::Low
        }
    }

    /// Evidence that makes the tie certain where no other session competes:
    /// conntrack's, the session's single-use listener, or port 20; more than
    /// the owner alone, which may also talk HTTP to the same peer.
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
    memory: Option<&'a Memory>,
    /// When the table was read, where known.
    dumped: Option<Instant>,
    /// Each server's passive range (`passive_ranges()`).
    passive: &'a HashMap<Endpoint, (u16, u16)>,
    /// The sockets labelled pending, by local port.
    pending: &'a HashMap<u16, Vec<usize>>,
    staying: &'a crate::classify::ports::Listeners,
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
        // the pending listeners, by port: found once a pass, not per socket
        self.pending.get(&ep.port)?.iter().find_map(|&i| {
            let (l, f) = (&self.sockets[i], self.ftp[i].as_ref()?);
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
        let strength = |c: &Candidate| {
            (
                c.exact,
                c.listener,
                c.same_process,
                c.tied(),
                !c.hosts_only,
                c.evidence.contains(&FtpEvidence::PassiveRange),
            )
        };
        // then when each ended (connections seen as they went), the live
        // control connection, one in the table before one remembered, and
        // the newest (remembered ones come in the order they were last seen)
        candidates.sort_by_key(|c| {
            let control = &self.controls[c.control];
            let ctl = control.index.map_or(0, |i| self.sockets[i].inode);
            std::cmp::Reverse((
                strength(c),
                c.timing,
                control.live,
                control.index.is_some(),
                ctl <= inode || inode == 0,
                ctl,
                c.control,
            ))
        });
        let best = candidates.first()?;
        let session = self.controls[best.control].session;
        // ambiguous only where another session's evidence is as strong
        let several = candidates
            .iter()
            .any(|c| self.controls[c.control].session != session && strength(c) == strength(best));
        candidates.into_iter().next().map(|c| (c, several))
    }

    /// Whether the local end of `s` is a service's, not a data channel's:
    /// a listener covers it (or watch mode saw one there) that is no
    /// pending listener of a session. What such a listener accepted is not
    /// tied by the hosts alone.
    fn service_port(&self, i: usize, pending: bool) -> bool {
        let s = &self.sockets[i];
        // a connection whose owner went just after the dump, taken by no
        // listener but one that went too (or still in the queue of one
        // that did: see `owner_gone`): a single-use listener's, not a
        // service's
        if pending || (s.owner_gone && !self.staying.covers(Proto::Tcp, &s.local)) {
            return false;
        }
        // a listener seen once on an ephemeral port, whose owner was not
        // read in time, was a data channel's (see `lasting_listener_on`)
        let service = |m: &Memory| {
            m.lasting_listener_on(&s.local)
                || (m.listener_was_on(&s.local) && !self.range.contains(s.local.port))
        };
        let remembered = self
            .memory
            .is_some_and(|m| service(m) && m.pending_on(&s.local).is_none());
        self.labels[i].local_listening || remembered
    }

    fn data(&self, i: usize) -> Option<FtpLabel> {
        let s = &self.sockets[i];
        let (local, remote) = canonical_ends(s);
        let flow = self.ct.flow_of(s);
        let orphan = orphaned(s);
        // closed by its program between the dump and the walk: it was
        // open when the table was read
        let ended = match s.owner_gone {
            true => s.ended.or(self.dumped),
            false => s.ended.filter(|_| orphan),
        };
        let mut candidates = Vec::new();
        // a session ruled out because its control connection ended first
        let mut ruled_out = false;
        for (c, control) in self.controls.iter().enumerate() {
            // A closing or remembered control connection owns no new data
            // connection, only those seen as they went.
            if !(control.live || orphan) || !self.faces(control, local.addr, remote.addr) {
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
            let owner = control.index.map(|i| &self.sockets[i]);
            let same_process = owner.is_some_and(|o| share_owner(s, o));
            if same_process {
                evidence.push(FtpEvidence::SameProcess);
            }
            let listener = self.pending_listener_on(control.session, control.side, &s.local);
            if listener.is_some() {
                evidence.push(FtpEvidence::PendingListener);
            }
            // what watch mode saw: a pending listener of this session here
            let remembered = self
                .memory
                .filter(|_| orphan && listener.is_none())
                .and_then(|m| m.pending_on(&s.local))
                .filter(|p| {
                    p.side == control.side
                        && p.client == session.client
                        && p.server == session.server
                });
            if remembered.is_some() {
                evidence.push(FtpEvidence::RememberedPending);
            }
            // Seen only as it went, no owner to ask: the session's hosts and
            // the ports a data connection uses, unless a service listens here.
            let pending = listener.is_some() || remembered.is_some();
            let same_hosts = orphan && !self.service_port(i, pending);
            let tying = exact
                || port20
                || same_process
                || pending
                || evidence.contains(&FtpEvidence::ConntrackExpected);
            if !(tying || same_hosts) {
                continue;
            }
            // only the hosts tie it: a control connection that had ended
            // before it did is not its owner
            let timing = match Fit::of(ended, control, self.dumped) {
                Some(t) => t,
                None if tying => Fit::UNKNOWN,
                None => {
                    ruled_out = true;
                    continue;
                }
            };
            if !tying {
                evidence.push(FtpEvidence::SameHosts);
            }
            let in_range = orphan
                && self
                    .passive
                    .get(&session.server)
                    .is_some_and(|&(low, high)| (low..=high).contains(&server_port));
            if in_range {
                evidence.push(FtpEvidence::PassiveRange);
            }
            if !control.live {
                evidence.push(FtpEvidence::RecentControl);
            }
            candidates.push(Candidate {
                control: c,
                exact,
                listener: listener == Some(true) || remembered.is_some_and(|p| p.single_use),
                same_process,
                hosts_only: !tying,
                timing,
                evidence,
            });
        }
        let (chosen, several) = self.choose(candidates, s.inode)?;
        // timing chose among sessions, or left one only
        let timed = chosen.timing != Fit::UNKNOWN && (several || ruled_out);
        let side = self.controls[chosen.control].side;
        // The same owner alone is a heuristic: a process that also talks to
        // the same peer on other unprivileged ports (an application server
        // with FTP and HTTP in one JVM) looks the same.
        let mut confidence = chosen.confidence(several);
        let hosts_only = chosen.hosts_only;
        let mut evidence = chosen.evidence;
        if s.owner_gone {
            evidence.push(FtpEvidence::OwnerGone);
        }
        if timed {
            evidence.push(FtpEvidence::Timing);
            // the one session between these hosts that was still open
            // when it ended: more than the hosts alone
            if !several && hosts_only {
                confidence = confidence.max(Confidence::Medium);
            }
        }
        if evidence.contains(&FtpEvidence::NotExpected) {
            confidence = Confidence::Low;
        }
        if several {
            evidence.push(FtpEvidence::SeveralSessions);
        }
        let facts = mode::Facts {
            port20: evidence.contains(&FtpEvidence::Port20),
            passive_range: evidence.contains(&FtpEvidence::PassiveRange),
        };
        let (mode, mode_evidence, mode_confidence) =
            mode::of_data(s, &self.labels[i].direction, side, flow, facts, self.range);
        let word = mode
            .map(|m| agree::mode_word(side, m, &mode_evidence, facts.port20, facts.passive_range));
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
            word,
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
            let Some(owner) = control.index.filter(|_| control.live) else {
                continue;
            };
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
            let same_process = share_owner(l, &self.sockets[owner]);
            if same_process {
                evidence.push(FtpEvidence::SameProcess);
            }
            if !evidence.is_empty() {
                candidates.push(Candidate {
                    control: c,
                    exact,
                    listener: false,
                    same_process,
                    hosts_only: false,
                    timing: Fit::UNKNOWN,
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
            mode: Some(mode::of_pending(side)),
            confidence,
            evidence,
            word: None,
        })
    }
}

fn same_tuple(a: &Tuple, b: &Tuple) -> bool {
    let c = |e: &Endpoint| (canonical(e.addr), e.port);
    a.proto == b.proto && c(&a.src) == c(&b.src) && c(&a.dst) == c(&b.dst)
}
