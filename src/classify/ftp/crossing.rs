//! FTP sessions that cross this host: on a router or firewall that forwards
//! them there is no socket of the session, only conntrack's flows and the
//! ftp helper's expectations. What the kernel leaves there, and what a
//! firewall must allow in each mode, is in docs/ftp.md (*Through a
//! router*); the rules here rest on it.
//!
//! A flow is forwarded when neither of its real ends is this namespace's:
//! not the original tuple's source (who opened it) nor the reply tuple's
//! source (who answered, after any DNAT). A forwarded TCP flow to a
//! control port (21, 990, `--ftp-port`) is a control connection: its
//! client is who opened it, its server who answered; masquerade and port
//! forwarding show as the reply tuple's destination and the original
//! tuple's destination.
//!
//! Its data connections, strongest evidence first:
//! - an expected flow whose master is the control flow (`conntrack-master`,
//!   exact: the helper read the PORT/EPRT or 227/229 that made it);
//! - a flow between the same two hosts on ports above 1023, or from port 20
//!   (`same-hosts`, low; `port-20` makes it medium), not on a control port;
//! - a flow the client opened to a high port of another address that no one
//!   answered (`same-client`, low): what a 227 naming an address the client
//!   cannot reach leads to.
//!
//! Several sessions between the same hosts share such flows: the first is
//! taken and `several-sessions` said. A pending expectation belongs to the
//! flow named as its master (or, from /proc, to the session of its hosts).
//!
//! Mode comes from the original tuple: a data flow the control connection's
//! client opened is passive, one its server opened active. An expectation's
//! destination is the end that will accept: the server's (as either side
//! sees it) for passive, the client's (or its NAT address) for active.

use std::collections::HashSet;
use std::net::IpAddr;

use super::{FtpEvidence, Helper, Mode, Role};
use crate::classify::direction::Confidence;
use crate::model::{
    Conntrack, ConntrackSource, Endpoint, Expectation, Flow, FlowStatus, Tuple, canonical,
    wire_enum,
};

const IPPROTO_TCP: u8 = 6;
/// The implicit-TLS control port: the helper cannot read it.
const FTPS_PORT: u16 = 990;

/// One FTP session this host forwards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crossing {
    /// Numbered after the sessions of this namespace's own sockets.
    pub id: u32,
    /// Who opened the control connection, as it sent it.
    pub client: Endpoint,
    /// Who answered it: the server, after any port forwarding.
    pub server: Endpoint,
    /// The client as the server sees it, where NAT changed it
    /// (masquerade: this host's address).
    pub client_nat: Option<Endpoint>,
    /// The server as the client addressed it, where NAT changed it
    /// (a port forward: this host's address).
    pub server_nat: Option<Endpoint>,
    pub helper: Helper,
    /// The mode of its data connections, where they agree.
    pub mode: Option<Mode>,
    /// The control flow first, then data flows, then pending expectations.
    pub flows: Vec<CrossingFlow>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A conntrack flow (or a pending expectation) of a crossing session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CrossingFlow {
    pub role: Role,
    /// For data and pending: who opens it tells the mode.
    pub mode: Option<Mode>,
    /// The original tuple; for an expectation, the tuple expected (its
    /// source port, and with some helpers its address, a wildcard: 0).
    pub orig: Tuple,
    /// `None` for an expectation.
    pub reply: Option<Tuple>,
    pub status: FlowStatus,
    /// `IPS_EXPECTED`: made from the helper's expectation (RELATED).
    pub expected: bool,
    /// What the ftp helper rewrote in the control connection for NAT.
    pub rewrote: Option<Rewrite>,
    pub confidence: Confidence,
    pub evidence: Vec<FtpEvidence>,
}

/// An address and port in PORT/EPRT (active) or 227/229 (passive) that
/// the helper rewrote for NAT: the data connection goes to `to`, and NAT
/// sends it on to `from`, the end the control connection named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rewrite {
    pub from: Endpoint,
    pub to: Endpoint,
}

wire_enum! {
    /// What a firewall admin is told about a crossing session.
    pub enum DiagnosticKind {
        /// A plaintext control connection with no ftp helper assigned.
        HelperNotAssigned => "helper-not-assigned",
        /// A passive data flow nobody answered and conntrack did not expect.
        PassiveUnreplied => "passive-unreplied",
        /// An active data flow from the server that conntrack did not
        /// expect: NEW, not RELATED.
        ActiveNotRelated => "active-not-related",
        /// The control channel is TLS: the helper cannot read it.
        Ftps => "ftps",
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    /// One sentence: what is wrong and what it does to the session.
    pub message: String,
    /// The nftables ruleset that fixes it, where one does.
    pub nft: Option<String>,
}

/// The sessions crossing this host in `ct`, numbered from `first_id`.
/// `local` adds addresses of this host beside `ct.local` (its sockets');
/// with neither, nothing can be told forwarded and none is found.
pub fn crossings(
    ct: &Conntrack,
    local: &[IpAddr],
    extra_ports: &[u16],
    first_id: u32,
) -> Vec<Crossing> {
    let mine: HashSet<IpAddr> = ct
        .local
        .iter()
        .chain(local)
        .map(|a| canonical(*a))
        .filter(|a| !a.is_unspecified())
        .collect();
    if mine.is_empty() {
        return Vec::new();
    }
    let is_mine = |a: IpAddr| {
        let a = canonical(a);
        a.is_loopback() || mine.contains(&a)
    };
    let forwarded: Vec<&Flow> = ct
        .flows
        .iter()
        .filter(|f| f.orig.proto == IPPROTO_TCP && !is_mine(f.orig.src.addr))
        .filter(|f| !is_mine(f.reply.src.addr))
        .collect();
    let control_port =
        |p: u16| super::DEFAULT_CONTROL_PORTS.contains(&p) || extra_ports.contains(&p);
    let is_control = |f: &Flow| control_port(f.reply.src.port) || control_port(f.orig.dst.port);
    let netlink = ct.source == ConntrackSource::Netlink;
    let mut sessions: Vec<Crossing> = forwarded
        .iter()
        .filter(|f| is_control(f))
        .map(|c| session(c, netlink))
        .collect();
    sessions.sort_by_key(|s| (s.client.addr, s.client.port, s.server.addr, s.server.port));
    for (i, s) in sessions.iter_mut().enumerate() {
        s.id = first_id + i as u32;
    }
    for d in forwarded.iter().filter(|f| !is_control(f)) {
        attach_flow(&mut sessions, d);
    }
    for e in ct
        .expectations
        .iter()
        .filter(|e| e.tuple.proto == IPPROTO_TCP)
    {
        attach_expectation(&mut sessions, e);
    }
    for s in &mut sessions {
        s.mode = agreed_mode(&s.flows);
        s.diagnostics = diagnose(s, netlink);
    }
    sessions
}

fn session(c: &Flow, netlink: bool) -> Crossing {
    let (client, server) = (c.orig.src, c.reply.src);
    let helper = match (&c.helper, netlink) {
        (_, false) => Helper::Unknown,
        (Some(h), true) if h == "ftp" => Helper::Assigned,
        _ => Helper::NotAssigned,
    };
    let mut evidence = vec![FtpEvidence::ControlPort];
    if helper == Helper::Assigned {
        evidence.push(FtpEvidence::ConntrackHelper);
    }
    Crossing {
        id: 0,
        client,
        server,
        client_nat: (c.reply.dst != client).then_some(c.reply.dst),
        server_nat: (c.orig.dst != server).then_some(c.orig.dst),
        helper,
        mode: None,
        flows: vec![CrossingFlow {
            role: Role::Control,
            mode: None,
            orig: c.orig,
            reply: Some(c.reply),
            status: c.status,
            expected: c.expected,
            rewrote: None,
            confidence: if helper == Helper::Assigned {
                Confidence::High
            } else {
                Confidence::Medium
            },
            evidence,
        }],
        diagnostics: Vec::new(),
    }
}

fn same(a: IpAddr, b: IpAddr) -> bool {
    canonical(a) == canonical(b)
}

/// Who opened a flow whose opener is `opener`, for session `s`.
fn mode_of_opener(s: &Crossing, opener: IpAddr) -> Option<Mode> {
    if same(opener, s.client.addr) {
        Some(Mode::Passive)
    } else if same(opener, s.server.addr) {
        Some(Mode::Active)
    } else {
        None
    }
}

fn control_orig(s: &Crossing) -> Tuple {
    s.flows[0].orig
}

/// Ties data flow `d` to a session: by its master where conntrack names
/// one, else by the hosts and ports.
fn attach_flow(sessions: &mut [Crossing], d: &Flow) {
    let (opener, answerer) = (d.orig.src, d.reply.src);
    let data = |mode, confidence, evidence| CrossingFlow {
        role: Role::Data,
        mode,
        orig: d.orig,
        reply: Some(d.reply),
        status: d.status,
        expected: d.expected,
        // an expected flow sent on elsewhere than it was opened to: the
        // helper had rewritten the address it was opened to
        rewrote: (d.expected && d.orig.dst != d.reply.src).then_some(Rewrite {
            from: d.reply.src,
            to: d.orig.dst,
        }),
        confidence,
        evidence,
    };
    if let Some(master) = d.master {
        if let Some(s) = sessions.iter_mut().find(|s| control_orig(s) == master) {
            let mode = mode_of_opener(s, opener.addr);
            let evidence = vec![FtpEvidence::ConntrackMaster, FtpEvidence::ConntrackOrigin];
            s.flows.push(data(mode, Confidence::High, evidence));
        }
        // expected by a flow that is not a crossing session's: not ours
        return;
    }
    // both ends: the session's hosts, one each way
    let hosts = |s: &Crossing| {
        let (c, v) = (s.client.addr, s.server.addr);
        (same(opener.addr, c) && same(answerer.addr, v))
            || (same(opener.addr, v) && same(answerer.addr, c))
    };
    let mut evidence = Vec::new();
    let mut candidates: Vec<usize> = sessions
        .iter()
        .enumerate()
        .filter(|(_, s)| hosts(s))
        .map(|(i, _)| i)
        .collect();
    // the server's end and the client's, by the first session of the hosts
    let (server_port, client_port) = match candidates.first() {
        Some(&i) if same(opener.addr, sessions[i].server.addr) => (opener.port, answerer.port),
        _ => (answerer.port, opener.port),
    };
    let ports_fit = client_port > 1023 && (server_port > 1023 || server_port == 20);
    if !candidates.is_empty() && ports_fit {
        evidence.push(FtpEvidence::SameHosts);
        if server_port == 20 {
            evidence.push(FtpEvidence::Port20);
        }
    } else if d.status.unreplied && !d.expected && opener.port > 1023 && d.orig.dst.port > 1023 {
        // a client's connection to a high port nobody answers
        candidates = sessions
            .iter()
            .enumerate()
            .filter(|(_, s)| same(opener.addr, s.client.addr))
            .map(|(i, _)| i)
            .collect();
        evidence.push(FtpEvidence::SameClient);
    } else {
        return;
    }
    let Some(&first) = candidates.first() else {
        return;
    };
    if candidates.len() > 1 {
        evidence.push(FtpEvidence::SeveralSessions);
    }
    evidence.push(FtpEvidence::ConntrackOrigin);
    if d.expected {
        evidence.push(FtpEvidence::ConntrackExpected);
    }
    let confidence = if evidence.contains(&FtpEvidence::Port20) && candidates.len() == 1 {
        Confidence::Medium
    } else {
        Confidence::Low
    };
    let s = &mut sessions[first];
    let mode = mode_of_opener(s, opener.addr);
    s.flows.push(data(mode, confidence, evidence));
}

/// Ties a pending expectation to the session of its master, or (from
/// /proc, where no master is shown) of its hosts.
fn attach_expectation(sessions: &mut [Crossing], e: &Expectation) {
    let (from, to) = (e.tuple.src, e.tuple.dst);
    let wild = |a: IpAddr| a.is_unspecified();
    // the end that will accept: the server's for passive, the client's
    // (or its NAT address, which the helper rewrote PORT to) for active
    let mode_by_ends = |s: &Crossing| {
        let server_ends = [Some(s.server), s.server_nat];
        let client_ends = [Some(s.client), s.client_nat];
        let is =
            |ends: [Option<Endpoint>; 2], a: IpAddr| ends.iter().flatten().any(|x| same(x.addr, a));
        if is(server_ends, to.addr) && (wild(from.addr) || is(client_ends, from.addr)) {
            Some(Mode::Passive)
        } else if is(client_ends, to.addr) && (wild(from.addr) || is(server_ends, from.addr)) {
            Some(Mode::Active)
        } else {
            None
        }
    };
    let (index, evidence, confidence) = match e.master {
        Some(master) => match sessions.iter().position(|s| control_orig(s) == master) {
            Some(i) => (i, FtpEvidence::ConntrackMaster, Confidence::High),
            None => return,
        },
        None => match sessions.iter().position(|s| mode_by_ends(s).is_some()) {
            Some(i) => (i, FtpEvidence::ConntrackExpectation, Confidence::Medium),
            None => return,
        },
    };
    let s = &mut sessions[index];
    let mode = mode_by_ends(s);
    // the ftp helper saves the port only: the address is the accepting end's
    let rewrote = e.nat.and_then(|saved| {
        let addr = match mode {
            _ if !saved.addr.is_unspecified() => saved.addr,
            Some(Mode::Active) => s.client.addr,
            Some(Mode::Passive) => s.server.addr,
            None => return None,
        };
        let from = Endpoint::new(addr, saved.port);
        (from != to).then_some(Rewrite { from, to })
    });
    s.flows.push(CrossingFlow {
        role: Role::Pending,
        mode,
        orig: e.tuple,
        reply: None,
        status: FlowStatus {
            timeout: e.timeout,
            ..FlowStatus::default()
        },
        expected: false,
        rewrote,
        confidence,
        evidence: vec![evidence],
    });
}

fn agreed_mode(flows: &[CrossingFlow]) -> Option<Mode> {
    let mut modes = flows
        .iter()
        .filter(|f| f.role != Role::Control)
        .filter_map(|f| f.mode);
    let first = modes.next()?;
    modes.all(|m| m == first).then_some(first)
}

/// The nftables ruleset that assigns the ftp helper to forwarded control
/// connections to `port`: in the forward hook, where a router sees them
/// (prerouting works too; output would not, it sees only this host's own).
pub fn helper_ruleset(port: u16) -> String {
    format!(
        "table inet sockwho_ftp {{\n  ct helper ftp-{port} {{\n    type \"ftp\" protocol tcp;\n  }}\n  chain forward {{\n    type filter hook forward priority filter;\n    tcp dport {port} ct helper set \"ftp-{port}\"\n  }}\n}}\n"
    )
}

fn diagnose(s: &Crossing, netlink: bool) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let data: Vec<&CrossingFlow> = s.flows.iter().filter(|f| f.role == Role::Data).collect();
    let pending = s.flows.iter().any(|f| f.role == Role::Pending);
    let tls = s.server.port == FTPS_PORT;
    if tls {
        out.push(Diagnostic {
            kind: DiagnosticKind::Ftps,
            message: "implicit FTPS (port 990): the control channel is TLS, so conntrack's ftp helper cannot read PORT or 227 and every data connection is NEW, not RELATED; allow the server's passive port range (or the client's ports, in active mode) by port".to_string(),
            nft: None,
        });
    } else if s.helper == Helper::Assigned
        && !pending
        && data.iter().all(|f| !f.expected)
        && data
            .iter()
            .any(|f| answered(f) && f.evidence.contains(&FtpEvidence::SameHosts))
    {
        out.push(Diagnostic {
            kind: DiagnosticKind::Ftps,
            message: format!(
                "FTPS (AUTH TLS) inferred: the ftp helper watches the control connection but expected none of its {} data connection{}; it cannot read a TLS control channel, so data connections are NEW, not RELATED: allow the server's passive port range by port",
                data.iter().filter(|f| answered(f)).count(),
                if data.iter().filter(|f| answered(f)).count() == 1 { "" } else { "s" }
            ),
            nft: None,
        });
    }
    if s.helper == Helper::NotAssigned && !tls {
        out.push(Diagnostic {
            kind: DiagnosticKind::HelperNotAssigned,
            message: format!(
                "conntrack's ftp helper is not assigned to this control connection: no data connection is RELATED, so a forward chain that accepts only established,related drops active mode's connections from the server (and passive ones too with a default-deny policy){}; the helper is assigned by a rule in the forward hook (nft below)",
                if s.client_nat.is_some() {
                    ", and behind this NAT the client's PORT/EPRT names an address the server cannot reach (nothing rewrites it)"
                } else {
                    ""
                }
            ),
            nft: Some(helper_ruleset(s.server.port)),
        });
    }
    if !netlink {
        // /proc says neither which flow was expected nor which helper watches
        return out;
    }
    for f in &data {
        let (Some(mode), false) = (f.mode, f.expected) else {
            continue;
        };
        let ends = format!("{} -> {}", endpoint(f.orig.src), endpoint(f.orig.dst));
        match mode {
            Mode::Passive if f.status.unreplied => out.push(Diagnostic {
                kind: DiagnosticKind::PassiveUnreplied,
                message: format!(
                    "passive data connection {ends} is UNREPLIED and conntrack did not expect it: the server's 227/229 names an address or port the client cannot reach (the server's own address behind NAT: set its passive address), or the helper could not read the control channel (TLS), or a firewall drops it"
                ),
                nft: None,
            }),
            Mode::Active => out.push(Diagnostic {
                kind: DiagnosticKind::ActiveNotRelated,
                message: format!(
                    "active data connection {ends} from the server is NEW, not RELATED: conntrack did not expect it, so a default-deny forward chain drops it"
                ),
                nft: None,
            }),
            Mode::Passive => {}
        }
    }
    out
}

/// A data connection that worked: the server answered. What did not (a
/// 227 naming another address) says nothing of TLS.
fn answered(f: &CrossingFlow) -> bool {
    !f.status.unreplied
}

/// `10.0.0.1:21`, `[fd00::1]:21`.
pub fn endpoint(e: Endpoint) -> String {
    match canonical(e.addr) {
        IpAddr::V6(a) => format!("[{a}]:{}", e.port),
        a => format!("{a}:{}", e.port),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Flow;

    fn ep(s: &str) -> Endpoint {
        s.parse::<std::net::SocketAddr>().unwrap().into()
    }

    fn tuple(src: &str, dst: &str) -> Tuple {
        Tuple {
            src: ep(src),
            dst: ep(dst),
            proto: IPPROTO_TCP,
        }
    }

    /// A flow `orig`, answered as `reply` (NAT shows there).
    fn flow(orig: (&str, &str), reply: (&str, &str)) -> Flow {
        Flow {
            orig: tuple(orig.0, orig.1),
            reply: tuple(reply.0, reply.1),
            expected: false,
            helper: None,
            master: None,
            status: FlowStatus {
                state: Some("ESTABLISHED"),
                assured: true,
                ..FlowStatus::default()
            },
        }
    }

    // The lab of tests/integration/router.rs: client 10.204.0.2 behind the
    // router's masquerade to 10.203.0.254, server 10.203.0.1.
    const ROUTER: [&str; 2] = ["10.204.0.1", "10.203.0.254"];

    fn control() -> Flow {
        let mut c = flow(
            ("10.204.0.2:48252", "10.203.0.1:21"),
            ("10.203.0.1:21", "10.203.0.254:48252"),
        );
        c.helper = Some("ftp".into());
        c
    }

    fn ct(flows: Vec<Flow>, expectations: Vec<Expectation>) -> Conntrack {
        Conntrack {
            flows,
            expectations,
            source: ConntrackSource::Netlink,
            local: ROUTER.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    fn found(ct: &Conntrack) -> Vec<Crossing> {
        crossings(ct, &[], &[], 1)
    }

    fn kinds(s: &Crossing) -> Vec<DiagnosticKind> {
        s.diagnostics.iter().map(|d| d.kind).collect()
    }

    #[test]
    fn active_through_masquerade_with_the_helper() {
        // the helper rewrote PORT 10,204,0,2,218,237 to 10,203,0,254,218,237;
        // the server's connection to it is sent on to the client
        let mut data = flow(
            ("10.203.0.1:37285", "10.203.0.254:56045"),
            ("10.204.0.2:56045", "10.203.0.1:37285"),
        );
        data.expected = true;
        data.master = Some(control().orig);
        let local_session = flow(
            ("10.204.0.1:5000", "10.204.0.2:22"),
            ("10.204.0.2:22", "10.204.0.1:5000"),
        );
        let s = found(&ct(vec![data, control(), local_session], vec![]));
        assert_eq!(s.len(), 1, "{s:#?}");
        let s = &s[0];
        assert_eq!(
            (s.client, s.server),
            (ep("10.204.0.2:48252"), ep("10.203.0.1:21"))
        );
        assert_eq!(s.client_nat, Some(ep("10.203.0.254:48252")));
        assert_eq!(s.server_nat, None);
        assert_eq!((s.helper, s.mode), (Helper::Assigned, Some(Mode::Active)));
        assert_eq!(s.flows[1].role, Role::Data);
        assert_eq!(s.flows[1].confidence, Confidence::High);
        assert_eq!(s.flows[1].evidence[0], FtpEvidence::ConntrackMaster);
        // the helper rewrote the client's PORT to the router's address
        let rewrote = Rewrite {
            from: ep("10.204.0.2:56045"),
            to: ep("10.203.0.254:56045"),
        };
        assert_eq!(s.flows[1].rewrote, Some(rewrote));
        assert!(s.diagnostics.is_empty(), "{:?}", s.diagnostics);
    }

    #[test]
    fn a_pending_expectation_tells_the_mode_and_what_nat_rewrote() {
        let active = Expectation {
            tuple: tuple("10.203.0.1:0", "10.203.0.254:50001"),
            master: Some(control().orig),
            helper: Some("ftp".into()),
            nat: Some(ep("0.0.0.0:50000")),
            timeout: Some(299),
        };
        let passive = Expectation {
            tuple: tuple("10.204.0.2:0", "10.203.0.1:40000"),
            nat: None,
            ..active.clone()
        };
        let other = Expectation {
            master: Some(tuple("10.9.9.9:1", "10.203.0.1:21")),
            ..active.clone()
        };
        let s = &found(&ct(vec![control()], vec![active, passive, other]))[0];
        let pending: Vec<_> = s.flows.iter().filter(|f| f.role == Role::Pending).collect();
        assert_eq!(pending.len(), 2);
        assert_eq!(pending[0].mode, Some(Mode::Active));
        let rewrote = Rewrite {
            from: ep("10.204.0.2:50000"),
            to: ep("10.203.0.254:50001"),
        };
        assert_eq!(pending[0].rewrote, Some(rewrote));
        assert_eq!(pending[1].rewrote, None, "the server's own port");
        assert_eq!(pending[1].mode, Some(Mode::Passive));
        assert_eq!(s.mode, None, "the two disagree");
        // from /proc: no master, the hosts tell
        let mut procfs = ct(
            vec![control()],
            vec![Expectation {
                master: None,
                ..pending_of(s, 1)
            }],
        );
        procfs.source = ConntrackSource::Procfs;
        let s = &found(&procfs)[0];
        assert_eq!(s.helper, Helper::Unknown);
        assert_eq!(s.flows[1].evidence, [FtpEvidence::ConntrackExpectation]);
        assert_eq!(s.flows[1].mode, Some(Mode::Passive));
    }

    fn pending_of(s: &Crossing, i: usize) -> Expectation {
        let f = s
            .flows
            .iter()
            .filter(|f| f.role == Role::Pending)
            .nth(i)
            .unwrap();
        Expectation {
            tuple: f.orig,
            master: None,
            helper: None,
            nat: None,
            timeout: None,
        }
    }

    #[test]
    fn passive_with_no_helper_by_the_hosts() {
        let mut c = control();
        c.helper = None;
        let data = flow(
            ("10.204.0.2:40000", "10.203.0.1:44391"),
            ("10.203.0.1:44391", "10.203.0.254:40000"),
        );
        // another service between the same hosts is not FTP data
        let ssh = flow(
            ("10.204.0.2:40001", "10.203.0.1:22"),
            ("10.203.0.1:22", "10.203.0.254:40001"),
        );
        let s = &found(&ct(vec![c, data, ssh], vec![]))[0];
        assert_eq!(s.flows.len(), 2, "{:#?}", s.flows);
        assert_eq!(s.mode, Some(Mode::Passive));
        assert_eq!(s.flows[1].confidence, Confidence::Low);
        assert_eq!(
            s.flows[1].evidence,
            [FtpEvidence::SameHosts, FtpEvidence::ConntrackOrigin]
        );
        assert_eq!(kinds(s), [DiagnosticKind::HelperNotAssigned]);
        let nft = s.diagnostics[0].nft.as_deref().unwrap();
        assert!(
            nft.contains("hook forward") && nft.contains("tcp dport 21 ct helper set"),
            "{nft}"
        );
        assert!(s.diagnostics[0].message.contains("behind this NAT"));
    }

    #[test]
    fn active_from_port_20_not_expected_is_not_related() {
        let mut c = control();
        c.helper = None;
        let data = flow(
            ("10.203.0.1:20", "10.204.0.2:50000"),
            ("10.204.0.2:50000", "10.203.0.1:20"),
        );
        let s = &found(&ct(vec![c, data], vec![]))[0];
        assert_eq!(s.mode, Some(Mode::Active));
        assert_eq!(s.flows[1].confidence, Confidence::Medium);
        assert!(s.flows[1].evidence.contains(&FtpEvidence::Port20));
        assert_eq!(
            kinds(s),
            [
                DiagnosticKind::HelperNotAssigned,
                DiagnosticKind::ActiveNotRelated
            ]
        );
    }

    #[test]
    fn a_passive_connection_nobody_answers() {
        // the server's 227 named its private address, which the client
        // cannot reach
        let mut data = flow(
            ("10.204.0.2:40000", "192.168.7.7:50000"),
            ("192.168.7.7:50000", "10.203.0.254:40000"),
        );
        data.status = FlowStatus {
            state: Some("SYN_SENT"),
            unreplied: true,
            ..FlowStatus::default()
        };
        let s = &found(&ct(vec![control(), data], vec![]))[0];
        assert_eq!(s.flows[1].evidence[0], FtpEvidence::SameClient);
        assert_eq!(s.flows[1].mode, Some(Mode::Passive));
        // the helper does not record a 227 naming another address than the
        // server's (`loose` is off): no TLS is inferred from it
        assert_eq!(kinds(s), [DiagnosticKind::PassiveUnreplied]);
    }

    #[test]
    fn ftps_on_990_and_inferred() {
        let implicit = flow(
            ("10.204.0.2:48000", "10.203.0.1:990"),
            ("10.203.0.1:990", "10.203.0.254:48000"),
        );
        let s = &found(&ct(vec![implicit], vec![]))[0];
        assert_eq!(kinds(s), [DiagnosticKind::Ftps]);
        // AUTH TLS on 21: the helper watches but expects nothing
        let data = flow(
            ("10.204.0.2:40000", "10.203.0.1:44391"),
            ("10.203.0.1:44391", "10.203.0.254:40000"),
        );
        let s = &found(&ct(vec![control(), data.clone()], vec![]))[0];
        assert_eq!(kinds(s), [DiagnosticKind::Ftps]);
        // with an expectation of it, the helper reads the channel
        let e = Expectation {
            tuple: tuple("10.204.0.2:0", "10.203.0.1:44392"),
            master: Some(control().orig),
            helper: Some("ftp".into()),
            nat: None,
            timeout: None,
        };
        let s = &found(&ct(vec![control(), data], vec![e]))[0];
        assert_eq!(kinds(s), []);
    }

    #[test]
    fn two_clients_two_sessions_and_the_hosts_own_flows_are_not_crossing() {
        let second = flow(
            ("10.205.0.2:40000", "10.203.0.1:21"),
            ("10.203.0.1:21", "10.203.0.254:40000"),
        );
        let mut d1 = flow(
            ("10.204.0.2:41000", "10.203.0.1:50001"),
            ("10.203.0.1:50001", "10.203.0.254:41000"),
        );
        d1.expected = true;
        d1.master = Some(control().orig);
        let mut d2 = flow(
            ("10.205.0.2:41000", "10.203.0.1:50002"),
            ("10.203.0.1:50002", "10.203.0.254:41001"),
        );
        d2.expected = true;
        d2.master = Some(second.orig);
        // this host's own FTP client: a socket's, not crossing
        let own = flow(
            ("10.203.0.254:40000", "10.203.0.1:21"),
            ("10.203.0.1:21", "10.203.0.254:40000"),
        );
        let s = crossings(
            &ct(vec![d2, second, own, control(), d1], vec![]),
            &[],
            &[],
            4,
        );
        assert_eq!(s.len(), 2, "{s:#?}");
        assert_eq!((s[0].id, s[1].id), (4, 5));
        for (session, port) in s.iter().zip([50001, 50002]) {
            assert_eq!(session.flows.len(), 2);
            assert_eq!(session.flows[1].orig.dst.port, port);
            assert_eq!(session.mode, Some(Mode::Passive));
        }
        // without this host's addresses nothing is known forwarded
        let mut blind = ct(vec![control()], vec![]);
        blind.local.clear();
        assert!(found(&blind).is_empty());
        // a socket's address counts as this host's
        assert!(crossings(&blind, &["10.203.0.254".parse().unwrap()], &[], 1).len() == 1);
        assert!(crossings(&blind, &["10.204.0.2".parse().unwrap()], &[], 1).is_empty());
    }

    #[test]
    fn an_extra_control_port_and_a_port_forward() {
        // a port forward: the client asked the router's 198.51.100.1:2121,
        // sent on to the server's 10.203.0.1:2121
        let c = flow(
            ("203.0.113.5:40000", "10.204.0.1:2121"),
            ("10.203.0.1:2121", "203.0.113.5:40000"),
        );
        assert!(found(&ct(vec![c.clone()], vec![])).is_empty());
        let s = crossings(&ct(vec![c], vec![]), &[], &[2121], 1);
        assert_eq!(s[0].server, ep("10.203.0.1:2121"));
        assert_eq!(s[0].server_nat, Some(ep("10.204.0.1:2121")));
        assert_eq!(s[0].client_nat, None);
        let nft = s[0].diagnostics[0].nft.as_deref().unwrap();
        assert!(nft.contains("tcp dport 2121"), "{nft}");
    }
}
