//! conntrack's flows indexed by the socket ends they belong to, so that a
//! socket finds its flow, and with it who sent the first packet.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::model::{
    Conntrack, ConntrackSource, Endpoint, Expectation, Proto, Socket, Tuple, canonical,
};

/// A socket's flow.
#[derive(Debug, Clone, Copy)]
pub struct FlowMatch<'a> {
    /// This host sent the first packet: it opened the connection.
    pub opened_here: bool,
    pub expected: bool,
    pub orig: Tuple,
    pub master: Option<Tuple>,
    pub helper: Option<&'a str>,
    pub source: ConntrackSource,
}

pub struct FlowIndex<'a> {
    ct: Option<&'a Conntrack>,
    /// (protocol, local, remote) as this host sees them -> (flow, opened here)
    by_ends: HashMap<(u8, Endpoint, Endpoint), (usize, bool)>,
}

fn canonical_endpoint(e: Endpoint) -> Endpoint {
    Endpoint::new(canonical(e.addr), e.port)
}

impl<'a> FlowIndex<'a> {
    pub fn new(ct: Option<&'a Conntrack>) -> FlowIndex<'a> {
        let mut by_ends = HashMap::new();
        let c = canonical_endpoint;
        for (i, f) in ct
            .map(|c| c.flows.as_slice())
            .unwrap_or_default()
            .iter()
            .enumerate()
        {
            // We opened it: our socket is the original source (SNAT changes
            // only the reply tuple).
            by_ends.insert((f.orig.proto, c(f.orig.src), c(f.orig.dst)), (i, true));
            // The peer opened it: we answer from the reply source (after DNAT).
            by_ends
                .entry((f.reply.proto, c(f.reply.src), c(f.reply.dst)))
                .or_insert((i, false));
        }
        FlowIndex { ct, by_ends }
    }

    /// Whether conntrack could be read at all.
    pub fn readable(&self) -> bool {
        self.ct.is_some()
    }

    pub fn flow_of(&self, s: &Socket) -> Option<FlowMatch<'a>> {
        let ct = self.ct?;
        let proto = match s.proto {
            Proto::Tcp => 6,
            Proto::Udp => 17,
        };
        let remote = s.remote?;
        let key = (
            proto,
            canonical_endpoint(s.local),
            canonical_endpoint(remote),
        );
        let &(i, opened_here) = self.by_ends.get(&key)?;
        let f = &ct.flows[i];
        Some(FlowMatch {
            opened_here,
            expected: f.expected,
            orig: f.orig,
            master: f.master,
            helper: f.helper.as_deref(),
            source: ct.source,
        })
    }

    /// A pending TCP expectation of the ftp helper whose destination is
    /// `port` on `addr`.
    pub fn expectation_for(&self, addr: IpAddr, port: u16) -> Option<&'a Expectation> {
        self.ct?.expectations.iter().find(|e| {
            e.tuple.proto == 6
                && e.helper.as_deref().is_none_or(|h| h == "ftp")
                && e.tuple.dst.port == port
                && canonical(e.tuple.dst.addr) == canonical(addr)
        })
    }
}
