//! What watch mode remembers between refreshes: the listeners it has seen
//! (a passive FTP listener is often closed right after its one accept), the
//! connections it saw in SYN_SENT or SYN_RECV (who opened them), and the FTP
//! sessions it saw: their control connections for a while after they close,
//! their pending listeners, and the passive ports their data connections
//! used. Data connections that last milliseconds are seen only as they go
//! (TIME_WAIT, or a destroy event), after all of these may have closed.
//!
//! Every map is bounded: an entry stays while its socket is in the table
//! and for a fixed time after it was last seen, and each map has a hard cap
//! beyond which the entries seen longest ago go first. A busy host (issue 13:
//! 1,000 SYN_SENT connects a second from many addresses) must not make watch
//! mode grow without end.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use super::Labels;
use super::direction::Confidence;
use super::ftp::{FtpEvidence, Helper, Mode, Role, Session, Side};
use crate::model::{Endpoint, Proto, Socket, State, canonical};

/// A connection, by what stays the same for its lifetime.
pub type ConnKey = (Proto, IpAddr, u16, IpAddr, u16);

pub fn conn_key(s: &Socket) -> Option<ConnKey> {
    let r = s.remote?;
    Some((
        s.proto,
        canonical(s.local.addr),
        s.local.port,
        canonical(r.addr),
        r.port,
    ))
}

/// How long a listener is remembered after it was last seen: long enough
/// for a passive FTP listener closed after its one accept to still explain
/// the data connection's TIME_WAIT (60 s) and a destroy event after it.
pub const LISTENER_TTL: Duration = Duration::from_secs(300);
/// A handshake matters while its connection lives; kept a little after it
/// was last seen, for a destroy event of that connection.
pub const HANDSHAKE_TTL: Duration = Duration::from_secs(30);
/// A control connection is remembered this long after it was last seen:
/// its data connections' TIME_WAIT (60 s) outlives it, and a client
/// reconnects for the next transfer.
pub const SESSION_TTL: Duration = Duration::from_secs(300);

/// Hard caps, whatever the times say: beyond them the entries seen longest
/// ago go first. About 80 bytes an entry: 10 MiB of handshakes at most.
pub const LISTENERS_CAP: usize = 16_384;
pub const HANDSHAKES_CAP: usize = 131_072;
pub const SESSIONS_CAP: usize = 4_096;
pub const PENDING_CAP: usize = 16_384;
/// Passive ports kept per session: enough to see a configured range.
pub const PASSIVE_PORTS_CAP: usize = 64;

/// A control connection seen on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecentSession {
    pub client: Endpoint,
    pub server: Endpoint,
    /// This host's side of it.
    pub side: Side,
    pub helper: Helper,
    /// The server ports of its passive data connections (and pending
    /// listeners), newest last.
    passive_ports: VecDeque<u16>,
    last_seen: Instant,
    /// When its control connection ended, once a refresh saw that.
    ended: Option<Instant>,
    /// Its control connection's socket cookie (sock_diag), which the
    /// kernel's destroy event names when it goes.
    cookie: Option<u64>,
}

impl RecentSession {
    /// When its control connection was last in the table.
    pub fn last_seen(&self) -> Instant {
        self.last_seen
    }

    /// When its control connection ended, where a refresh saw that (in
    /// TIME_WAIT, or destroyed).
    pub fn ended(&self) -> Option<Instant> {
        self.ended
    }
}

/// A pending data listener of a session, seen on this host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RememberedPending {
    pub client: Endpoint,
    pub server: Endpoint,
    pub side: Side,
    /// It took one connection only (backlog 1) or conntrack expected it:
    /// what it accepted is the session's, not a service's.
    pub single_use: bool,
    last_seen: Instant,
}

type SessionKey = (Endpoint, Endpoint, Side);

#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// (address, port) of TCP listeners seen, the unspecified address for
    /// wildcards -> when first and last seen.
    listeners: HashMap<(IpAddr, u16), (Instant, Instant)>,
    /// Connections seen in a handshake: true where this host sent the SYN;
    /// and when the connection was last seen.
    opened_here: HashMap<ConnKey, (bool, Instant)>,
    sessions: HashMap<SessionKey, RecentSession>,
    /// Pending data listeners by (address, port), as `listeners`.
    pending: HashMap<(IpAddr, u16), RememberedPending>,
}

impl Memory {
    /// Takes in one refresh seen at `now`: its sockets, and what was said of
    /// them (same order) with its FTP sessions. Then forgets what is too old
    /// and holds every map to its cap.
    pub fn learn(
        &mut self,
        now: Instant,
        sockets: &[Socket],
        labels: &[Labels],
        sessions: &[Session],
    ) {
        for s in sockets.iter().filter(|s| s.proto == Proto::Tcp) {
            match s.state {
                State::Listen => {
                    self.listeners
                        .entry((canonical(s.local.addr), s.local.port))
                        .and_modify(|seen| seen.1 = now)
                        .or_insert((now, now));
                }
                State::SynSent | State::SynRecv | State::NewSynRecv => {
                    if let Some(key) = conn_key(s) {
                        self.opened_here
                            .insert(key, (s.state == State::SynSent, now));
                    }
                }
                // still in the table: its handshake still tells
                _ if !s.closed && !self.opened_here.is_empty() => {
                    if let Some(seen) = conn_key(s).and_then(|k| self.opened_here.get_mut(&k)) {
                        seen.1 = now;
                    }
                }
                _ => {}
            }
        }
        self.learn_ftp(now, sockets, labels, sessions);
        self.prune(now);
    }

    fn learn_ftp(
        &mut self,
        now: Instant,
        sockets: &[Socket],
        labels: &[Labels],
        sessions: &[Session],
    ) {
        let session_of = |id: u32| sessions.get((id as usize).checked_sub(1)?);
        for (s, l) in sockets.iter().zip(labels) {
            let Some(f) = l.ftp.as_deref() else { continue };
            let Some(session) = session_of(f.session) else {
                continue;
            };
            let key = (session.client, session.server, f.side);
            match f.role {
                Role::Control => {
                    let entry = self.sessions.entry(key).or_insert_with(|| RecentSession {
                        client: session.client,
                        server: session.server,
                        side: f.side,
                        helper: session.helper,
                        passive_ports: VecDeque::new(),
                        last_seen: now,
                        ended: None,
                        cookie: None,
                    });
                    entry.last_seen = now;
                    entry.ended = s.ended.or(entry.ended);
                    entry.cookie = s.cookie.or(entry.cookie);
                    entry.helper = session.helper;
                }
                Role::Pending => {
                    self.pending.insert(
                        (canonical(s.local.addr), s.local.port),
                        RememberedPending {
                            client: session.client,
                            server: session.server,
                            side: f.side,
                            single_use: f.confidence == Confidence::High
                                || s.backlog.is_some_and(|b| b <= 1),
                            last_seen: now,
                        },
                    );
                    if f.mode == Some(Mode::Passive) {
                        self.passive_port(key, s.local.port);
                    }
                }
                // A passive port, where something beside the hosts ties the
                // connection to the session and the range itself did not
                // decide: what the range is inferred from must not rest on it.
                Role::Data
                    if f.mode == Some(Mode::Passive)
                        && !f.evidence.iter().any(|e| {
                            matches!(e, FtpEvidence::SameHosts | FtpEvidence::PassiveRange)
                        }) =>
                {
                    let port = match (f.side, s.remote) {
                        (Side::Server, _) => s.local.port,
                        (Side::Client, Some(r)) => r.port,
                        (Side::Client, None) => continue,
                    };
                    self.passive_port(key, port);
                }
                Role::Data => {}
            }
        }
    }

    fn passive_port(&mut self, key: SessionKey, port: u16) {
        let Some(session) = self.sessions.get_mut(&key) else {
            return;
        };
        let ports = &mut session.passive_ports;
        if ports.back() == Some(&port) {
            return;
        }
        ports.retain(|&p| p != port);
        ports.push_back(port);
        while ports.len() > PASSIVE_PORTS_CAP {
            ports.pop_front();
        }
    }

    /// Forgets what was last seen too long before `now`, then holds each
    /// map to its cap.
    fn prune(&mut self, now: Instant) {
        bound(&mut self.listeners, now, LISTENER_TTL, LISTENERS_CAP, |v| {
            v.1
        });
        bound(
            &mut self.opened_here,
            now,
            HANDSHAKE_TTL,
            HANDSHAKES_CAP,
            |v| v.1,
        );
        bound(&mut self.sessions, now, SESSION_TTL, SESSIONS_CAP, |v| {
            v.last_seen
        });
        bound(&mut self.pending, now, LISTENER_TTL, PENDING_CAP, |v| {
            v.last_seen
        });
    }

    /// Takes in when sockets listed before went (by cookie: the kernel's
    /// destroy events, watch mode), before the refresh that no longer
    /// shows them is classified: a control connection that went keeps its
    /// end for the timing of its data connections.
    pub fn learn_ends(&mut self, ended: &HashMap<u64, Instant>) {
        if ended.is_empty() {
            return;
        }
        for session in self.sessions.values_mut() {
            if let Some(at) = session.cookie.and_then(|c| ended.get(&c)) {
                session.ended.get_or_insert(*at);
            }
        }
    }

    /// Whether a TCP listener was seen on `ep`'s port, on its address or a wildcard.
    pub fn listener_was_on(&self, ep: &Endpoint) -> bool {
        wildcards(ep).any(|k| self.listeners.contains_key(&k))
    }

    /// Whether a TCP listener that lasted was seen on `ep`'s port: in two
    /// refreshes or more. A data channel's pending listener (pyftpdlib's,
    /// curl's) lives for milliseconds, from the 227 reply or the PORT
    /// command to the one accept, and is seen once if at all, often gone
    /// before its owner can be read; a service's listener stays.
    pub fn lasting_listener_on(&self, ep: &Endpoint) -> bool {
        wildcards(ep).any(|k| {
            self.listeners
                .get(&k)
                .is_some_and(|(first, last)| first < last)
        })
    }

    /// Who opened `s`, where its handshake was seen.
    pub fn opened_here(&self, s: &Socket) -> Option<bool> {
        self.opened_here.get(&conn_key(s)?).map(|v| v.0)
    }

    /// The control connections seen (those still in the table too).
    pub fn sessions(&self) -> impl Iterator<Item = &RecentSession> {
        self.sessions.values()
    }

    /// The pending data listener seen on `ep`'s port (its address or a
    /// wildcard), if any.
    pub fn pending_on(&self, ep: &Endpoint) -> Option<&RememberedPending> {
        wildcards(ep).find_map(|k| self.pending.get(&k))
    }

    /// The passive ports seen for sessions with `server`.
    pub fn passive_ports(&self, server: Endpoint) -> impl Iterator<Item = u16> + '_ {
        self.sessions
            .values()
            .filter(move |s| s.server == server)
            .flat_map(|s| s.passive_ports.iter().copied())
    }
}

/// The keys a listener taking connections on `ep` may be stored under.
fn wildcards(ep: &Endpoint) -> impl Iterator<Item = (IpAddr, u16)> {
    [
        canonical(ep.addr),
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ]
    .into_iter()
    .map(move |a| (a, ep.port))
}

/// Drops the entries of `map` last seen more than `ttl` before `now`; then,
/// if more than `cap` remain, those seen longest ago, down to three
/// quarters of the cap so that a map at its cap is not sorted every refresh.
fn bound<K: Eq + std::hash::Hash, V>(
    map: &mut HashMap<K, V>,
    now: Instant,
    ttl: Duration,
    cap: usize,
    seen: impl Fn(&V) -> Instant,
) {
    map.retain(|_, v| now.saturating_duration_since(seen(v)) <= ttl);
    if map.len() <= cap {
        return;
    }
    let keep = cap - cap / 4;
    let mut times: Vec<Instant> = map.values().map(&seen).collect();
    let (_, cutoff, _) = times.select_nth_unstable_by(map.len() - keep, |a, b| a.cmp(b));
    let cutoff = *cutoff;
    map.retain(|_, v| seen(v) >= cutoff);
    // many seen at the same instant: drop any beyond the cap
    let mut left = keep;
    map.retain(|_, _| {
        let kept = left > 0;
        left = left.saturating_sub(1);
        kept
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ports::tests::listener;

    fn learn(m: &mut Memory, now: Instant, sockets: &[Socket]) {
        m.learn(now, sockets, &[], &[]);
    }

    #[test]
    fn remembers_listeners_and_handshakes() {
        let mut m = Memory::default();
        let l = listener(Proto::Tcp, "0.0.0.0", 50000, None);
        let mut syn = listener(Proto::Tcp, "10.0.0.1", 40000, None);
        syn.state = State::SynSent;
        syn.remote = Some(Endpoint::new("10.0.0.2".parse().unwrap(), 21));
        learn(&mut m, Instant::now(), &[l, syn.clone()]);
        assert!(m.listener_was_on(&Endpoint::new("10.0.0.1".parse().unwrap(), 50000)));
        assert!(!m.listener_was_on(&Endpoint::new("10.0.0.1".parse().unwrap(), 50001)));
        syn.state = State::Established;
        assert_eq!(m.opened_here(&syn), Some(true));
        syn.local.port = 40002;
        assert_eq!(m.opened_here(&syn), None);
    }

    #[test]
    fn what_is_alive_stays_and_what_went_is_forgotten() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut m = Memory::default();
        let syn = Socket::tcp("10.0.0.1:40000", Some("10.0.0.2:80")).state(State::SynSent);
        let gone = Socket::tcp("10.0.0.1:40002", Some("10.0.0.2:80")).state(State::SynSent);
        let pasv = Socket::tcp("10.0.0.1:50000", None);
        learn(&mut m, at(0), &[syn.clone(), gone.clone(), pasv]);
        // the first connection lives on, established, for ten minutes
        let est = syn.clone().state(State::Established);
        for s in (10..=600).step_by(10) {
            learn(&mut m, at(s), std::slice::from_ref(&est));
        }
        assert_eq!(m.opened_here(&est), Some(true), "alive: kept");
        assert_eq!(
            m.opened_here(&gone),
            None,
            "gone for ten minutes: forgotten"
        );
        assert!(!m.listener_was_on(&Endpoint::new("10.0.0.1".parse().unwrap(), 50000)));
        // must not: forget a listener within its time
        let mut m = Memory::default();
        learn(&mut m, at(0), &[Socket::tcp("0.0.0.0:50000", None)]);
        learn(&mut m, at(240), &[]);
        assert!(m.listener_was_on(&Endpoint::new("10.0.0.1".parse().unwrap(), 50000)));
        // and a closed socket's report does not keep a handshake alive
        let mut m = Memory::default();
        learn(&mut m, at(0), std::slice::from_ref(&gone));
        let mut closed = gone.clone().state(State::Close);
        closed.closed = true;
        learn(&mut m, at(HANDSHAKE_TTL.as_secs() + 1), &[closed]);
        assert_eq!(m.opened_here(&gone), None);
    }

    /// Issue 13 item 4: handshakes were never forgotten, so 1,000 SYN_SENT
    /// connects a second from many addresses grew watch mode without end.
    /// 100,000 distinct handshakes over 1,000 refreshes: every map stays
    /// within its time and its cap.
    #[test]
    fn memory_stays_bounded_regression_13() {
        let t0 = Instant::now();
        let mut m = Memory::default();
        let mut most = 0;
        for refresh in 0..1_000u32 {
            let now = t0 + Duration::from_millis(100 * u64::from(refresh));
            let sockets: Vec<Socket> = (0..100u32)
                .map(|i| {
                    let n = refresh * 100 + i;
                    let [_, a, b, c] = n.to_be_bytes();
                    let remote = format!("10.{a}.{b}.{c}:443");
                    let local = format!("10.255.0.1:{}", 32768 + (n % 28000));
                    let mut s = Socket::tcp(&local, Some(&remote)).state(State::SynSent);
                    if i % 10 == 0 {
                        // and a listener on a new port now and then
                        s = Socket::tcp(&format!("10.255.0.1:{}", 1024 + n % 60000), None);
                    }
                    s
                })
                .collect();
            m.learn(now, &sockets, &[], &[]);
            most = most.max(m.opened_here.len());
            assert!(m.opened_here.len() <= HANDSHAKES_CAP);
            assert!(m.listeners.len() <= LISTENERS_CAP);
        }
        // 90 handshakes a refresh, ten refreshes a second, kept 30 s
        let per_ttl = 90 * 10 * HANDSHAKE_TTL.as_secs() as usize;
        assert!(most <= per_ttl + 90, "{most} handshakes at once");
        assert!(m.opened_here.len() <= per_ttl + 90);
        // the caps hold where the times do not help: 200,000 at one instant
        let mut m = Memory::default();
        let burst: Vec<Socket> = (0..200_000u32)
            .map(|n| {
                let [_, a, b, c] = n.to_be_bytes();
                Socket::tcp("10.255.0.1:40000", Some(&format!("10.{a}.{b}.{c}:443")))
                    .state(State::SynSent)
            })
            .collect();
        m.learn(t0, &burst, &[], &[]);
        assert!(
            m.opened_here.len() <= HANDSHAKES_CAP,
            "{}",
            m.opened_here.len()
        );
    }
}
