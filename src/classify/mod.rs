//! Pure functions over a [`Snapshot`]: port classes, listening ports and
//! direction for every socket. No I/O happens here, so every rule is tested
//! on sockets built in code.

pub mod direction;
pub mod ports;

use crate::model::{Snapshot, Socket};
use direction::Verdict;
use ports::{Listeners, PortClass};

/// What sockwho says about one socket, beside what the kernel said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub local_class: PortClass,
    /// A listener (TCP LISTEN, or an unconnected UDP socket) covers the local endpoint.
    pub local_listening: bool,
    pub remote_class: Option<PortClass>,
    pub direction: Verdict,
}

/// Labels for every socket of the snapshot, in the same order.
pub fn classify(snapshot: &Snapshot) -> Vec<Labels> {
    let listeners = Listeners::from_sockets(&snapshot.sockets);
    snapshot
        .sockets
        .iter()
        .map(|s| label(s, &listeners, snapshot))
        .collect()
}

fn label(s: &Socket, listeners: &Listeners, snapshot: &Snapshot) -> Labels {
    let range = &snapshot.port_range;
    Labels {
        local_class: ports::port_class(s.local.port, range),
        local_listening: listeners.covers(s.proto, &s.local),
        remote_class: s.remote.map(|r| ports::port_class(r.port, range)),
        direction: direction::direction(s, listeners, range),
    }
}

/// A socket and what sockwho says about it: one line of output.
#[derive(Debug, Clone)]
pub struct Row {
    pub socket: Socket,
    pub labels: Labels,
}
