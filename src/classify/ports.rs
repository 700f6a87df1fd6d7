//! Port classes (by the namespace's own `ip_local_port_range`), the parity
//! the kernel gives `connect()` ports, and which ports have a listener.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::model::{Endpoint, Family, PortRange, Proto, Socket, State, canonical, wire_enum};

wire_enum! {
    pub enum PortClass {
        /// 0-1023: ports only root may bind, assigned to services.
        WellKnown => "well-known",
        /// Inside the namespace's `ip_local_port_range` and not reserved: the
        /// kernel hands these out to `connect()` and `bind(port 0)`.
        Ephemeral => "ephemeral",
        /// Everything else.
        Registered => "registered",
    }
}

impl PortClass {
    /// The table's abbreviation (the Ports column: `eph*/wk`).
    pub fn short(self) -> &'static str {
        match self {
            PortClass::WellKnown => "wk",
            PortClass::Ephemeral => "eph",
            PortClass::Registered => "reg",
        }
    }
}

pub fn port_class(port: u16, range: &PortRange) -> PortClass {
    if port < 1024 {
        PortClass::WellKnown
    } else if range.contains(port) {
        PortClass::Ephemeral
    } else {
        PortClass::Registered
    }
}

/// Which parity the kernel gives `connect()` ports: that of the low end of
/// the range (Linux 4.6+, `__inet_hash_connect()`); `bind(port 0)` gets the
/// other one (`inet_csk_find_open_port()`). Where it does not hold (ports
/// bound explicitly, UDP, a per-socket range): `docs/ftp.md`, *Port parity*.
pub fn has_connect_parity(port: u16, range: &PortRange) -> bool {
    port % 2 == range.low % 2
}

#[derive(Debug, Clone, Copy)]
struct Bound {
    family: Family,
    addr: IpAddr,
    v6only: Option<bool>,
}

/// TCP listeners and unconnected UDP sockets, by port, and the addresses
/// that belong to this host (those its sockets are bound to).
#[derive(Debug, Default)]
pub struct Listeners {
    by_port: HashMap<(Proto, u16), Vec<Bound>>,
    local_addrs: HashSet<IpAddr>,
}

impl Listeners {
    pub fn from_sockets<'s>(sockets: impl IntoIterator<Item = &'s Socket>) -> Listeners {
        let mut l = Listeners::default();
        for s in sockets {
            let listening = match s.proto {
                Proto::Tcp => s.state == State::Listen,
                Proto::Udp => s.remote.is_none(),
            };
            if listening {
                l.by_port
                    .entry((s.proto, s.local.port))
                    .or_default()
                    .push(Bound {
                        family: s.family,
                        addr: canonical(s.local.addr),
                        v6only: s.v6only,
                    });
            }
            if !s.local.is_unspecified() {
                l.local_addrs.insert(s.local.canonical_addr());
            }
        }
        l
    }

    /// Whether a listener of `proto` accepts on `ep`: same address, or a
    /// wildcard of the same family (an IPv6 wildcard also takes IPv4 unless
    /// it is known to be `IPV6_V6ONLY`).
    pub fn covers(&self, proto: Proto, ep: &Endpoint) -> bool {
        let Some(bound) = self.by_port.get(&(proto, ep.port)) else {
            return false;
        };
        let addr = ep.canonical_addr();
        bound.iter().any(|b| {
            if !b.addr.is_unspecified() {
                return b.addr == addr;
            }
            match (b.family, addr) {
                (Family::Inet, IpAddr::V4(_)) => true,
                (Family::Inet, IpAddr::V6(_)) => false,
                (Family::Inet6, IpAddr::V6(_)) => true,
                (Family::Inet6, IpAddr::V4(_)) => b.v6only != Some(true),
            }
        })
    }

    /// Whether `addr` is this host's: loopback, or an address one of its own
    /// sockets is bound to.
    pub fn is_local_addr(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        addr.is_loopback() || self.local_addrs.contains(&addr)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn range(low: u16, high: u16, reserved: &[(u16, u16)]) -> PortRange {
        PortRange {
            low,
            high,
            reserved: reserved.to_vec(),
        }
    }

    #[test]
    fn port_classes_follow_the_namespace_range() {
        let default = PortRange::default();
        let own = range(20000, 20100, &[(20050, 20060)]);
        // (port, range, expected)
        let cases = [
            (0, &default, PortClass::WellKnown),
            (22, &default, PortClass::WellKnown),
            (1023, &default, PortClass::WellKnown),
            (1024, &default, PortClass::Registered),
            (32767, &default, PortClass::Registered),
            (32768, &default, PortClass::Ephemeral),
            (60999, &default, PortClass::Ephemeral),
            (61000, &default, PortClass::Registered),
            // a namespace with its own range
            (20000, &own, PortClass::Ephemeral),
            (20049, &own, PortClass::Ephemeral),
            (20050, &own, PortClass::Registered), // reserved
            (20060, &own, PortClass::Registered), // reserved
            (20101, &own, PortClass::Registered),
            (40000, &own, PortClass::Registered), // ephemeral only by default
        ];
        for (port, r, want) in cases {
            assert_eq!(port_class(port, r), want, "port {port} in {r:?}");
        }
    }

    #[test]
    fn connect_parity_is_that_of_the_range_start() {
        let default = PortRange::default(); // starts even
        assert!(has_connect_parity(40000, &default));
        assert!(!has_connect_parity(40001, &default));
        let odd = range(10001, 20000, &[]);
        assert!(has_connect_parity(15001, &odd));
        assert!(!has_connect_parity(15000, &odd));
    }

    /// A listener (TCP) or an unconnected socket (UDP) on `addr`:`port`.
    pub(crate) fn listener(proto: Proto, addr: &str, port: u16, v6only: Option<bool>) -> Socket {
        let addr: IpAddr = addr.parse().unwrap();
        let mut s = Socket::new(proto, Endpoint::new(addr, port), None).inode(1);
        s.v6only = v6only;
        s
    }

    #[test]
    fn listeners_cover_same_address_and_wildcards() {
        let sockets = [
            listener(Proto::Tcp, "0.0.0.0", 22, None),
            listener(Proto::Tcp, "::", 80, Some(false)),
            listener(Proto::Tcp, "::", 443, Some(true)),
            listener(Proto::Tcp, "127.0.0.1", 8080, None),
            listener(Proto::Tcp, "::1", 8081, Some(false)),
            listener(Proto::Udp, "0.0.0.0", 53, None),
        ];
        let l = Listeners::from_sockets(&sockets);
        let ep = |a: &str, p| Endpoint::new(a.parse().unwrap(), p);
        let cases = [
            (Proto::Tcp, ep("10.0.0.1", 22), true),
            (Proto::Tcp, ep("::ffff:10.0.0.1", 22), true), // v4-mapped
            (Proto::Tcp, ep("fe80::1", 22), false),        // 0.0.0.0 takes no IPv6
            (Proto::Tcp, ep("10.0.0.1", 23), false),
            (Proto::Tcp, ep("fe80::1", 80), true),
            (Proto::Tcp, ep("10.0.0.1", 80), true), // dual-stack
            (Proto::Tcp, ep("10.0.0.1", 443), false), // v6only
            (Proto::Tcp, ep("fe80::1", 443), true),
            (Proto::Tcp, ep("127.0.0.1", 8080), true),
            (Proto::Tcp, ep("::ffff:127.0.0.1", 8080), true),
            (Proto::Tcp, ep("127.0.0.2", 8080), false), // other address
            (Proto::Tcp, ep("::1", 8081), true),
            (Proto::Udp, ep("10.0.0.1", 53), true),
            (Proto::Tcp, ep("10.0.0.1", 53), false), // other protocol
        ];
        for (proto, e, want) in cases {
            assert_eq!(l.covers(proto, &e), want, "{proto:?} {e:?}");
        }
    }

    #[test]
    fn local_addresses_are_loopback_and_bound_ones() {
        let mut s = listener(Proto::Tcp, "10.1.2.3", 22, None);
        s.state = State::Established;
        s.remote = Some(Endpoint::new("10.9.9.9".parse().unwrap(), 40000));
        let l = Listeners::from_sockets(&[s]);
        assert!(l.is_local_addr("10.1.2.3".parse().unwrap()));
        assert!(l.is_local_addr("::ffff:10.1.2.3".parse().unwrap()));
        assert!(l.is_local_addr("127.0.0.5".parse().unwrap()));
        assert!(l.is_local_addr("::1".parse().unwrap()));
        assert!(!l.is_local_addr("10.9.9.9".parse().unwrap()));
        assert_eq!(
            canonical("::ffff:10.1.2.3".parse().unwrap()),
            "10.1.2.3".parse::<IpAddr>().unwrap()
        );
    }
}
