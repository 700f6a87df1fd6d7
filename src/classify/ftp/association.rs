//! Which session each data connection and pending data listener belongs
//! to, and how sure that is. A socket is tied to a session only on evidence
//! of association: conntrack's expectation (exact where its master is the
//! control connection), port 20, a pending listener of the session, or the
//! same owning process; never for being between the same two hosts. Among
//! several sessions, [`Found::choose`] ranks the evidence.

use std::net::IpAddr;

use super::control::{Control, ControlPorts};
use super::{
    Context, Ftp, FtpEvidence, FtpLabel, Helper, Role, Session, Side, canonical_ends, mode,
};
use crate::classify::Labels;
use crate::classify::direction::Confidence;
use crate::classify::flows::FlowIndex;
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
    let ct = cx.flows;
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
                controls,
                sessions: &ftp.sessions,
                ct,
                range: cx.range,
            };
            let label = if listen {
                found.pending(i, ports)
            } else {
                found.data(i)
            };
            if let Some(label) = label {
                ftp.sessions[label.session as usize - 1].members.push(i);
                ftp.labels[i] = Some(label);
            }
        }
    }
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
            mode::of_data(s, &self.labels[i].direction, side, flow, port20, self.range);
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
            mode: Some(mode::of_pending(side)),
            confidence,
            evidence,
        })
    }
}

fn same_tuple(a: &Tuple, b: &Tuple) -> bool {
    let c = |e: &Endpoint| (canonical(e.addr), e.port);
    a.proto == b.proto && c(&a.src) == c(&b.src) && c(&a.dst) == c(&b.dst)
}
