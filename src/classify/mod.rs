//! Pure functions over a [`Snapshot`]: port classes, listening ports,
//! direction and FTP sessions for every socket. No I/O happens here, so every
//! rule is tested on sockets built in code. Direction is weighed first, FTP
//! reads it, and then what FTP knows of who opened its sockets is weighed
//! into their direction (`agree.rs`), so that the two never contradict.

mod agree;
pub mod direction;
pub mod flows;
pub mod ftp;
pub mod memory;
pub mod ports;

use crate::model::{Conntrack, Snapshot, Socket};
use direction::Verdict;
use flows::FlowIndex;
use ftp::FtpLabel;
use memory::Memory;
use ports::{Listeners, PortClass};

/// What sockwho says about one socket, beside what the kernel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub local_class: PortClass,
    /// A listener (TCP LISTEN, or an unconnected UDP socket) covers the local endpoint.
    pub local_listening: bool,
    pub remote_class: Option<PortClass>,
    pub direction: Verdict,
    /// Boxed: rare, and every socket carries the field.
    pub ftp: Option<Box<FtpLabel>>,
}

/// Labels for every socket of a snapshot (same order), and its FTP sessions.
#[derive(Debug, Clone)]
pub struct Classified {
    pub labels: Vec<Labels>,
    pub sessions: Vec<ftp::Session>,
    /// FTP sessions this host forwards (conntrack's alone), numbered after
    /// `sessions`.
    pub crossings: Vec<ftp::crossing::Crossing>,
}

/// What the classifiers know beside the sockets.
#[derive(Debug, Clone, Copy, Default)]
pub struct Context<'a> {
    /// conntrack's flows and expectations, where they could be read.
    pub conntrack: Option<&'a Conntrack>,
    /// `--ftp-port` values, beside 21 and 990.
    pub ftp_ports: &'a [u16],
    /// What earlier refreshes saw (watch mode).
    pub memory: Option<&'a Memory>,
}

pub fn classify(snapshot: &Snapshot, cx: Context<'_>) -> Classified {
    let listeners = Listeners::from_sockets(&snapshot.sockets);
    let flows = FlowIndex::new(cx.conntrack);
    let mut labels: Vec<Labels> = snapshot
        .sockets
        .iter()
        .map(|s| label(s, &listeners, &flows, snapshot, cx.memory))
        .collect();
    let found = ftp::analyse(
        &snapshot.sockets,
        &labels,
        ftp::Context {
            range: &snapshot.port_range,
            flows: &flows,
            extra_ports: cx.ftp_ports,
            memory: cx.memory,
            dumped: snapshot.dumped,
        },
    );
    for (l, f) in labels.iter_mut().zip(found.labels) {
        l.ftp = f.map(Box::new);
    }
    agree::reconcile(&mut labels, |i, word| {
        let s = &snapshot.sockets[i];
        let local_listening = listeners.covers(s.proto, &s.local);
        let seen = direction::Seen {
            ftp: Some(word),
            ..seen_of(s, local_listening, &flows, cx.memory)
        };
        direction::direction(s, &listeners, &snapshot.port_range, seen)
    });
    let crossings = match cx.conntrack {
        Some(ct) => {
            // a socket's address is this host's, whatever RTM_GETADDR said
            let local: Vec<_> = snapshot.sockets.iter().map(|s| s.local.addr).collect();
            let next = found.sessions.len() as u32 + 1;
            ftp::crossing::crossings(ct, &local, cx.ftp_ports, next)
        }
        None => Vec::new(),
    };
    Classified {
        labels,
        sessions: found.sessions,
        crossings,
    }
}

fn label(
    s: &Socket,
    listeners: &Listeners,
    flows: &FlowIndex,
    snapshot: &Snapshot,
    memory: Option<&Memory>,
) -> Labels {
    let range = &snapshot.port_range;
    let local_listening = listeners.covers(s.proto, &s.local);
    let seen = seen_of(s, local_listening, flows, memory);
    Labels {
        local_class: ports::port_class(s.local.port, range),
        local_listening,
        remote_class: s.remote.map(|r| ports::port_class(r.port, range)),
        direction: direction::direction(s, listeners, range, seen),
        ftp: None,
    }
}

/// What conntrack and earlier refreshes know of `s`'s direction.
fn seen_of(
    s: &Socket,
    local_listening: bool,
    flows: &FlowIndex,
    memory: Option<&Memory>,
) -> direction::Seen {
    direction::Seen {
        local_listener: Some(local_listening),
        opened_here: flows.flow_of(s).map(|f| f.opened_here),
        handshake: memory.and_then(|m| m.opened_here(s)),
        listener: memory
            .is_some_and(|m| s.proto == crate::model::Proto::Tcp && m.listener_was_on(&s.local)),
        ftp: None,
    }
}

/// A socket and what sockwho says about it: one line of output, borrowed
/// from the vectors the collector and the classifiers filled (no copy of
/// 200,000 sockets to pair them up).
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub socket: &'a Socket,
    pub labels: &'a Labels,
}

#[cfg(test)]
mod tests {
    use super::direction::{Confidence, Direction, Evidence};
    use super::ftp::{FtpEvidence, Helper, Mode, Role, Side};
    use super::ports::PortClass;
    use crate::model::{Family, Proto, Source, TimerKind};

    /// Each value's name is distinct, and JSON writes exactly that name.
    fn spelled_once<T: serde::Serialize + Copy + std::fmt::Debug>(
        all: &[T],
        name: fn(T) -> &'static str,
    ) {
        let mut seen = std::collections::HashSet::new();
        for &v in all {
            assert!(seen.insert(name(v)), "{v:?}: {} twice", name(v));
            assert_eq!(
                serde_json::to_value(v).unwrap(),
                serde_json::Value::from(name(v)),
                "{v:?}"
            );
        }
    }

    /// Issue #9: FTP evidence was `port20` in JSON and `port-20` in the
    /// README and `--ftp`; every output now takes the one `name()`.
    #[test]
    fn every_wire_word_is_spelled_once_issue_9() {
        assert_eq!(
            serde_json::to_value(FtpEvidence::Port20).unwrap(),
            "port-20"
        );
        spelled_once(&PortClass::ALL, PortClass::name);
        spelled_once(&Direction::ALL, Direction::name);
        spelled_once(&Confidence::ALL, Confidence::name);
        spelled_once(&Evidence::ALL, Evidence::name);
        spelled_once(&Role::ALL, Role::name);
        spelled_once(&Side::ALL, Side::name);
        spelled_once(&Mode::ALL, Mode::name);
        spelled_once(&FtpEvidence::ALL, FtpEvidence::name);
        spelled_once(&Helper::ALL, Helper::name);
        spelled_once(&Proto::ALL, Proto::name);
        spelled_once(&Family::ALL, Family::name);
        spelled_once(&TimerKind::ALL, TimerKind::name);
        spelled_once(&Source::ALL, Source::name);
    }
}
