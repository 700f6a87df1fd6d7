//! What watch mode remembers between refreshes: the listeners it has seen
//! (a passive FTP listener is often closed right after its one accept), and
//! the connections it saw in SYN_SENT or SYN_RECV (who opened them).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

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

#[derive(Debug, Clone, Default)]
pub struct Memory {
    /// (address, port) of TCP listeners seen; the unspecified address for wildcards.
    listeners: HashSet<(IpAddr, u16)>,
    /// Connections seen in a handshake: true where this host sent the SYN.
    opened_here: HashMap<ConnKey, bool>,
}

impl Memory {
    /// Takes in one refresh's sockets.
    pub fn learn<'a>(&mut self, sockets: impl Iterator<Item = &'a Socket>) {
        for s in sockets.filter(|s| s.proto == Proto::Tcp) {
            match s.state {
                State::Listen => {
                    self.listeners
                        .insert((canonical(s.local.addr), s.local.port));
                }
                State::SynSent | State::SynRecv | State::NewSynRecv => {
                    if let Some(key) = conn_key(s) {
                        self.opened_here.insert(key, s.state == State::SynSent);
                    }
                }
                _ => {}
            }
        }
    }

    /// Whether a TCP listener was seen on `ep`'s port, on its address or a wildcard.
    pub fn listener_was_on(&self, ep: &Endpoint) -> bool {
        let addr = canonical(ep.addr);
        self.listeners
            .iter()
            .any(|&(a, port)| port == ep.port && (a == addr || a.is_unspecified()))
    }

    /// Who opened `s`, where its handshake was seen.
    pub fn opened_here(&self, s: &Socket) -> Option<bool> {
        self.opened_here.get(&conn_key(s)?).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ports::tests::listener;

    #[test]
    fn remembers_listeners_and_handshakes() {
        let mut m = Memory::default();
        let l = listener(Proto::Tcp, "0.0.0.0", 50000, None);
        let mut syn = listener(Proto::Tcp, "10.0.0.1", 40000, None);
        syn.state = State::SynSent;
        syn.remote = Some(Endpoint::new("10.0.0.2".parse().unwrap(), 21));
        m.learn([l, syn.clone()].iter());
        assert!(m.listener_was_on(&Endpoint::new("10.0.0.1".parse().unwrap(), 50000)));
        assert!(!m.listener_was_on(&Endpoint::new("10.0.0.1".parse().unwrap(), 50001)));
        syn.state = State::Established;
        assert_eq!(m.opened_here(&syn), Some(true));
        syn.local.port = 40002;
        assert_eq!(m.opened_here(&syn), None);
    }
}
