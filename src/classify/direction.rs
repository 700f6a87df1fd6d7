//! Who opened a connection: `inbound` (accepted here), `outbound`
//! (connected from here), `listen`, or `unknown`, with the evidence.
//!
//! Signals come in two strengths. Strong ones are facts of this host's
//! kernel: a listener on the local port, a listener on the remote end when
//! that end is this host too, and the handshake states. Weak ones are
//! conventions: which side's port is well-known or ephemeral, and the parity
//! the kernel gives `connect()` ports (`docs/ftp.md`, *Port parity*).
//! Agreeing strong signals give `high`; weak ones alone give `medium` (two or
//! more) or `low` (one); signals that disagree give `unknown`.
//!
//! FTP's word on who opened a connection (a control connection's client
//! opened it; a data connection's mode says which end did) is evidence too
//! ([`FtpWord`], `ftp-control` and `ftp-mode`): as strong as what FTP rests
//! on, and only where FTP knows something this module did not already
//! count (`agree.rs` says which).

use serde::Serialize;

use super::ports::{Listeners, PortClass, has_connect_parity, port_class};
use crate::model::{PortRange, Proto, Socket, State, wire_enum};

wire_enum! {
    pub enum Direction {
        Listen => "listen",
        Inbound => "inbound",
        Outbound => "outbound",
        Unknown => "unknown",
    }
}

wire_enum! {
    /// How sure a verdict is; ordered, so that the weaker of two is their `min`.
    #[derive(PartialOrd, Ord)]
    pub enum Confidence {
        Low => "low",
        Medium => "medium",
        High => "high",
    }
}

wire_enum! {
    /// The signals a direction rests on, facts first; README's *Direction*
    /// table lists them all (a test holds it to [`Evidence::ALL`]).
    pub enum Evidence {
        /// conntrack's original tuple: who sent the first packet. Exact.
        Conntrack => "conntrack",
        /// The socket is in LISTEN.
        ListenState => "listen-state",
        /// A UDP socket with no peer.
        Unconnected => "unconnected",
        /// A listener covers the local address and port.
        Listener => "listener",
        /// The remote end is this host, and a listener covers it.
        PeerListener => "peer-listener",
        /// The handshake is ours: SYN sent.
        SynSent => "syn-sent",
        /// The handshake is theirs: SYN received.
        SynRecv => "syn-recv",
        /// An earlier refresh saw this connection in SYN_SENT (watch mode).
        SeenSynSent => "seen-syn-sent",
        /// An earlier refresh saw this connection in SYN_RECV (watch mode).
        SeenSynRecv => "seen-syn-recv",
        /// An earlier refresh saw a listener on the local port (watch mode).
        RememberedListener => "remembered-listener",
        /// The local port is well-known and the remote one is not.
        LocalWellKnown => "local-well-known",
        /// The remote port is well-known and the local one is not.
        RemoteWellKnown => "remote-well-known",
        /// The local port is ephemeral and the remote one is not.
        LocalEphemeral => "local-ephemeral",
        /// The remote port is ephemeral and the local one is not.
        RemoteEphemeral => "remote-ephemeral",
        /// The local ephemeral port has the parity the kernel gives `connect()`.
        ConnectParity => "connect-parity",
        /// An FTP data connection: its mode and this host's side say who
        /// opened it (passive: the client, active: the server).
        FtpMode => "ftp-mode",
        /// An FTP control connection: its client opened it.
        FtpControl => "ftp-control",
    }
}

// An `EvidenceSet` has a bit for each kind.
const _: () = assert!(Evidence::ALL.len() <= u32::BITS as usize);

impl Evidence {
    fn bit(self) -> u32 {
        1 << (self as u32)
    }

    fn strong(self) -> bool {
        matches!(
            self,
            Evidence::Listener
                | Evidence::PeerListener
                | Evidence::SynSent
                | Evidence::SynRecv
                | Evidence::SeenSynSent
                | Evidence::SeenSynRecv
                | Evidence::RememberedListener
        )
    }
}

/// A set of evidence, in the order of [`Evidence::ALL`]: one word per socket
/// rather than a vector, since every one of 200,000 sockets has some.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct EvidenceSet(u32);

impl EvidenceSet {
    pub fn push(&mut self, e: Evidence) {
        self.0 |= e.bit();
    }

    pub fn contains(&self, e: Evidence) -> bool {
        self.0 & e.bit() != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn iter(&self) -> impl Iterator<Item = Evidence> + '_ {
        Evidence::ALL.into_iter().filter(|e| self.contains(*e))
    }

    pub fn to_vec(&self) -> Vec<Evidence> {
        self.iter().collect()
    }
}

impl Extend<Evidence> for EvidenceSet {
    fn extend<I: IntoIterator<Item = Evidence>>(&mut self, items: I) {
        items.into_iter().for_each(|e| self.push(e));
    }
}

impl FromIterator<Evidence> for EvidenceSet {
    fn from_iter<I: IntoIterator<Item = Evidence>>(items: I) -> Self {
        let mut set = EvidenceSet::default();
        set.extend(items);
        set
    }
}

impl<const N: usize> From<[Evidence; N]> for EvidenceSet {
    fn from(items: [Evidence; N]) -> Self {
        items.into_iter().collect()
    }
}

impl PartialEq<Vec<Evidence>> for EvidenceSet {
    fn eq(&self, other: &Vec<Evidence>) -> bool {
        self.to_vec() == *other
    }
}

impl Serialize for EvidenceSet {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.iter())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Verdict {
    pub direction: Direction,
    /// `None` for `unknown`.
    pub confidence: Option<Confidence>,
    pub evidence: EvidenceSet,
}

impl Verdict {
    fn new(
        direction: Direction,
        confidence: Option<Confidence>,
        evidence: impl Into<EvidenceSet>,
    ) -> Self {
        Verdict {
            direction,
            confidence,
            evidence: evidence.into(),
        }
    }
}

/// What FTP knows of who opened a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FtpWord {
    /// This host opened it.
    pub opened_here: bool,
    /// A control connection's side (`ftp-control`), else a data
    /// connection's mode (`ftp-mode`).
    pub control: bool,
    pub vote: Vote,
    /// The local port was bound on purpose (a server's passive range), so
    /// its parity says nothing of `connect()`.
    pub local_bound: bool,
}

/// How much FTP's word weighs beside the socket's own signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vote {
    /// A fact of FTP (port 20): a strong signal.
    Strong,
    /// As many weak signals as said (port parity FTP reads and direction
    /// does not: the remote port's, a `bind(0)` port's, a passive range).
    Weak(u8),
    /// Drawn from this verdict's own signals or conntrack's: it agrees and
    /// weighs nothing more, so nothing is counted twice.
    Agrees,
}

impl FtpWord {
    fn evidence(self) -> Evidence {
        if self.control {
            Evidence::FtpControl
        } else {
            Evidence::FtpMode
        }
    }

    fn direction(self) -> Direction {
        if self.opened_here {
            Direction::Outbound
        } else {
            Direction::Inbound
        }
    }
}

/// What is known of a socket beside the socket table of this moment.
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    /// conntrack's word: this host sent the first packet.
    pub opened_here: Option<bool>,
    /// An earlier refresh saw its handshake: true for SYN_SENT.
    pub handshake: Option<bool>,
    /// An earlier refresh saw a listener on its local port.
    pub listener: bool,
    /// Whether a listener covers the local endpoint, where the caller has
    /// already asked (it is the `listening` label too).
    pub local_listener: Option<bool>,
    /// What FTP knows of who opened it, once FTP has looked (`agree.rs`).
    pub ftp: Option<FtpWord>,
}

/// The direction of `s`. conntrack's word, where it tracks the connection,
/// settles the question; the other signals that agree with it are kept as
/// evidence. What earlier refreshes saw counts as a fact too.
pub fn direction(s: &Socket, listeners: &Listeners, range: &PortRange, seen: Seen) -> Verdict {
    let mut verdict = with_conntrack(s, listeners, range, seen);
    // FTP's word drawn from these very signals: shown where it agrees
    if let Some(word) = seen.ftp.filter(|w| w.vote == Vote::Agrees)
        && verdict.direction == word.direction()
    {
        verdict.evidence.push(word.evidence());
    }
    verdict
}

fn with_conntrack(s: &Socket, listeners: &Listeners, range: &PortRange, seen: Seen) -> Verdict {
    let verdict = by_sockets(s, listeners, range, seen);
    let Some(here) = seen.opened_here else {
        return verdict;
    };
    let direction = if here {
        Direction::Outbound
    } else {
        Direction::Inbound
    };
    let mut evidence = EvidenceSet::default();
    evidence.push(Evidence::Conntrack);
    if verdict.direction == direction {
        evidence.extend(verdict.evidence.iter());
    }
    Verdict::new(direction, Some(Confidence::High), evidence)
}

fn by_sockets(s: &Socket, listeners: &Listeners, range: &PortRange, seen: Seen) -> Verdict {
    if s.proto == Proto::Tcp && s.state == State::Listen {
        return Verdict::new(
            Direction::Listen,
            Some(Confidence::High),
            [Evidence::ListenState],
        );
    }
    let Some(remote) = s.remote else {
        // An unconnected UDP socket receives from anyone: a service when its
        // port is not one the kernel hands out, otherwise likely a client's
        // (a resolver's) socket, which we do not claim to know.
        return if port_class(s.local.port, range) == PortClass::Ephemeral {
            Verdict::new(
                Direction::Unknown,
                None,
                [Evidence::Unconnected, Evidence::LocalEphemeral],
            )
        } else {
            Verdict::new(
                Direction::Listen,
                Some(Confidence::High),
                [Evidence::Unconnected],
            )
        };
    };

    let mut inbound = EvidenceSet::default();
    let mut outbound = EvidenceSet::default();
    let local_listener = seen
        .local_listener
        .unwrap_or_else(|| listeners.covers(s.proto, &s.local));
    if local_listener {
        inbound.push(Evidence::Listener);
    }
    if listeners.is_local_addr(remote.addr) && listeners.covers(s.proto, &remote) {
        outbound.push(Evidence::PeerListener);
    }
    match s.state {
        State::SynSent => outbound.push(Evidence::SynSent),
        State::SynRecv | State::NewSynRecv => inbound.push(Evidence::SynRecv),
        _ => match seen.handshake {
            Some(true) => outbound.push(Evidence::SeenSynSent),
            Some(false) => inbound.push(Evidence::SeenSynRecv),
            None => {}
        },
    }
    if seen.listener && !local_listener && s.proto == Proto::Tcp {
        inbound.push(Evidence::RememberedListener);
    }
    let local = port_class(s.local.port, range);
    let theirs = port_class(remote.port, range);
    if local == PortClass::WellKnown && theirs != PortClass::WellKnown {
        inbound.push(Evidence::LocalWellKnown);
    }
    if theirs == PortClass::WellKnown && local != PortClass::WellKnown {
        outbound.push(Evidence::RemoteWellKnown);
    }
    if local == PortClass::Ephemeral && theirs != PortClass::Ephemeral {
        outbound.push(Evidence::LocalEphemeral);
    }
    if theirs == PortClass::Ephemeral && local != PortClass::Ephemeral {
        inbound.push(Evidence::RemoteEphemeral);
    }
    // Only TCP ports come from the parity-split allocator; a port with a
    // listener was bound on purpose.
    if s.proto == Proto::Tcp
        && local == PortClass::Ephemeral
        && !local_listener
        && !seen.ftp.is_some_and(|w| w.local_bound)
        && has_connect_parity(s.local.port, range)
    {
        outbound.push(Evidence::ConnectParity);
    }
    let mut extra = Extra::default();
    if let Some(word) = seen.ftp {
        let (set, strong, more) = if word.opened_here {
            (&mut outbound, &mut extra.strong_out, &mut extra.more_out)
        } else {
            (&mut inbound, &mut extra.strong_in, &mut extra.more_in)
        };
        match word.vote {
            Vote::Strong => {
                set.push(word.evidence());
                *strong = true;
            }
            Vote::Weak(n) => {
                set.push(word.evidence());
                *more = usize::from(n.saturating_sub(1));
            }
            Vote::Agrees => {}
        }
    }
    weigh(inbound, outbound, extra)
}

/// Weight beside what the evidence sets say by themselves: FTP's word is
/// strong or weak by what it rests on, and may count as two weak signals.
#[derive(Debug, Clone, Copy, Default)]
struct Extra {
    strong_in: bool,
    strong_out: bool,
    more_in: usize,
    more_out: usize,
}

fn weigh(inbound: EvidenceSet, outbound: EvidenceSet, extra: Extra) -> Verdict {
    let strong_in = extra.strong_in || inbound.iter().any(|e| e.strong());
    let strong_out = extra.strong_out || outbound.iter().any(|e| e.strong());
    let (direction, winner, count) = match (strong_in, strong_out) {
        (true, false) => return Verdict::new(Direction::Inbound, Some(Confidence::High), inbound),
        (false, true) => {
            return Verdict::new(Direction::Outbound, Some(Confidence::High), outbound);
        }
        // Facts that disagree (a connection between two listening ports of
        // this host): the conventions cannot settle it.
        (true, true) => return unknown(inbound, outbound),
        (false, false) => match (inbound.is_empty(), outbound.is_empty()) {
            (false, true) => (Direction::Inbound, inbound, inbound.len() + extra.more_in),
            (true, false) => (
                Direction::Outbound,
                outbound,
                outbound.len() + extra.more_out,
            ),
            _ => return unknown(inbound, outbound),
        },
    };
    let confidence = if count >= 2 {
        Confidence::Medium
    } else {
        Confidence::Low
    };
    Verdict::new(direction, Some(confidence), winner)
}

fn unknown(inbound: EvidenceSet, outbound: EvidenceSet) -> Verdict {
    Verdict::new(
        Direction::Unknown,
        None,
        EvidenceSet(inbound.0 | outbound.0),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ports::tests::listener;

    fn conn(proto: Proto, state: State, local: &str, remote: &str) -> Socket {
        let end = |a: &str| a.parse::<std::net::SocketAddr>().unwrap().into();
        Socket::new(proto, end(local), Some(end(remote)))
            .state(state)
            .inode(1)
    }

    use Confidence::*;
    use Direction::*;
    use Evidence::*;

    struct Case {
        name: &'static str,
        socket: Socket,
        want: Direction,
        conf: Option<Confidence>,
        evidence: &'static [Evidence],
    }

    #[test]
    fn direction_rules() {
        let host = [
            listener(Proto::Tcp, "0.0.0.0", 2222, None),
            listener(Proto::Tcp, "::", 8080, Some(false)),
            listener(Proto::Tcp, "127.0.0.1", 9000, None),
            listener(Proto::Tcp, "127.0.0.1", 9001, None),
            listener(Proto::Udp, "0.0.0.0", 5353, None),
        ];
        let listeners = Listeners::from_sockets(&host);
        let range = PortRange::default();
        let tcp = Proto::Tcp;
        let est = State::Established;
        let cases = vec![
            Case {
                name: "listener is listen",
                socket: host[0].clone(),
                want: Listen,
                conf: Some(High),
                evidence: &[ListenState],
            },
            Case {
                name: "udp unconnected service port",
                socket: host[4].clone(),
                want: Listen,
                conf: Some(High),
                evidence: &[Unconnected],
            },
            Case {
                name: "udp unconnected ephemeral port is not claimed",
                socket: listener(Proto::Udp, "0.0.0.0", 40001, None),
                want: Unknown,
                conf: None,
                evidence: &[Unconnected, LocalEphemeral],
            },
            Case {
                name: "accepted on a listener (registered port)",
                socket: conn(tcp, est, "10.0.0.1:2222", "10.0.0.2:40000"),
                want: Inbound,
                conf: Some(High),
                evidence: &[Listener, RemoteEphemeral],
            },
            Case {
                name: "accepted on a dual-stack listener, v4-mapped",
                socket: conn(
                    tcp,
                    est,
                    "[::ffff:10.0.0.1]:8080",
                    "[::ffff:10.0.0.2]:40000",
                ),
                want: Inbound,
                conf: Some(High),
                evidence: &[Listener, RemoteEphemeral],
            },
            Case {
                name: "no listener on a port of another address",
                socket: conn(tcp, est, "127.0.0.2:9000", "127.0.0.1:40001"),
                want: Inbound,
                conf: Some(Low),
                evidence: &[RemoteEphemeral],
            },
            Case {
                name: "loopback client side: the peer is ours and listens",
                socket: conn(tcp, est, "127.0.0.1:40000", "127.0.0.1:9000"),
                want: Outbound,
                conf: Some(High),
                evidence: &[PeerListener, LocalEphemeral, ConnectParity],
            },
            Case {
                name: "a remote peer's listener does not count",
                socket: conn(tcp, est, "10.0.0.1:40001", "10.0.0.9:9000"),
                want: Outbound,
                conf: Some(Low),
                evidence: &[LocalEphemeral],
            },
            Case {
                name: "both ends listen: facts disagree",
                socket: conn(tcp, est, "127.0.0.1:9001", "127.0.0.1:9000"),
                want: Unknown,
                conf: None,
                evidence: &[Listener, PeerListener],
            },
            Case {
                name: "syn-sent is ours",
                socket: conn(tcp, State::SynSent, "10.0.0.1:40001", "10.0.0.9:7000"),
                want: Outbound,
                conf: Some(High),
                evidence: &[SynSent, LocalEphemeral],
            },
            Case {
                name: "syn-recv is theirs",
                socket: conn(tcp, State::SynRecv, "10.0.0.1:7000", "10.0.0.9:7001"),
                want: Inbound,
                conf: Some(High),
                evidence: &[SynRecv],
            },
            Case {
                name: "remote well-known, local ephemeral with connect parity",
                socket: conn(tcp, est, "10.0.0.1:40000", "10.0.0.9:443"),
                want: Outbound,
                conf: Some(Medium),
                evidence: &[RemoteWellKnown, LocalEphemeral, ConnectParity],
            },
            Case {
                name: "bind parity does not vote",
                socket: conn(tcp, est, "10.0.0.1:40001", "10.0.0.9:443"),
                want: Outbound,
                conf: Some(Medium),
                evidence: &[RemoteWellKnown, LocalEphemeral],
            },
            Case {
                name: "local well-known without a listener (TIME_WAIT after close)",
                socket: conn(tcp, State::TimeWait, "10.0.0.1:22", "10.0.0.9:50000"),
                want: Inbound,
                conf: Some(Medium),
                evidence: &[LocalWellKnown, RemoteEphemeral],
            },
            Case {
                name: "two registered ports: nothing to go on",
                socket: conn(tcp, est, "10.0.0.1:5000", "10.0.0.9:6000"),
                want: Unknown,
                conf: None,
                evidence: &[],
            },
            Case {
                name: "two ephemeral ports: parity alone",
                socket: conn(tcp, est, "10.0.0.1:40000", "10.0.0.9:41000"),
                want: Outbound,
                conf: Some(Low),
                evidence: &[ConnectParity],
            },
            Case {
                name: "udp: parity is not a signal",
                socket: conn(Proto::Udp, est, "10.0.0.1:40000", "10.0.0.9:41000"),
                want: Unknown,
                conf: None,
                evidence: &[],
            },
            Case {
                name: "udp connected to a well-known port",
                socket: conn(Proto::Udp, est, "10.0.0.1:40000", "10.0.0.9:53"),
                want: Outbound,
                conf: Some(Medium),
                evidence: &[RemoteWellKnown, LocalEphemeral],
            },
            Case {
                name: "two ephemeral ports with bind parity: nothing to go on",
                socket: conn(tcp, est, "10.0.0.1:40001", "10.0.0.9:41001"),
                want: Unknown,
                conf: None,
                evidence: &[],
            },
        ];
        for c in cases {
            let v = direction(&c.socket, &listeners, &range, Seen::default());
            assert_eq!(
                (v.direction, v.confidence, v.evidence.to_vec().as_slice()),
                (c.want, c.conf, c.evidence),
                "{}",
                c.name
            );
        }
    }

    #[test]
    fn conntrack_settles_the_direction() {
        let listeners = Listeners::default();
        // nothing to go on from the sockets alone...
        let s = conn(
            Proto::Tcp,
            State::Established,
            "10.0.0.1:5000",
            "10.0.0.9:6000",
        );
        assert_eq!(
            direction(&s, &listeners, &PortRange::default(), Seen::default()).direction,
            Unknown
        );
        // ...but conntrack saw the first packet
        let v = direction(
            &s,
            &listeners,
            &PortRange::default(),
            Seen {
                opened_here: Some(false),
                ..Seen::default()
            },
        );
        assert_eq!(
            (v.direction, v.confidence, v.evidence),
            (Inbound, Some(High), EvidenceSet::from([Conntrack]))
        );
        // agreeing signals stay as evidence; disagreeing ones go
        let s = conn(
            Proto::Tcp,
            State::Established,
            "10.0.0.1:40000",
            "10.0.0.9:443",
        );
        let v = direction(
            &s,
            &listeners,
            &PortRange::default(),
            Seen {
                opened_here: Some(true),
                ..Seen::default()
            },
        );
        assert_eq!(
            v.evidence,
            vec![Conntrack, RemoteWellKnown, LocalEphemeral, ConnectParity]
        );
        let v = direction(
            &s,
            &listeners,
            &PortRange::default(),
            Seen {
                opened_here: Some(false),
                ..Seen::default()
            },
        );
        assert_eq!(
            (v.direction, v.evidence.to_vec()),
            (Inbound, vec![Conntrack])
        );
    }

    #[test]
    fn the_namespace_range_moves_the_ephemeral_signals() {
        let listeners = Listeners::default();
        let s = conn(
            Proto::Tcp,
            State::Established,
            "10.0.0.1:20000",
            "10.0.0.9:443",
        );
        let default = direction(&s, &listeners, &PortRange::default(), Seen::default());
        assert_eq!(default.evidence, vec![RemoteWellKnown]);
        let own = PortRange {
            low: 20000,
            high: 20999,
            reserved: vec![],
        };
        let v = direction(&s, &listeners, &own, Seen::default());
        assert_eq!(
            v.evidence,
            vec![RemoteWellKnown, LocalEphemeral, ConnectParity]
        );
        assert_eq!(v.confidence, Some(Medium));
    }
}
