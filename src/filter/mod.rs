//! Filters, as netstat and ss users reach for them: states (with ss's
//! groups), ports (numbers, ranges, service names), addresses and prefixes,
//! owners, direction, port class, FTP. Parsed once from the command line;
//! filters of different kinds combine with AND, values of one kind with OR.
//!
//! States, ports and addresses are facts of the socket the kernel can test
//! itself (the dump's state mask, sock_diag's bytecode: see
//! `collect::bytecode`); the rest needs sockwho's labels and is applied after
//! classification. Every filter is also applied in user space, so the
//! /proc source and the kernel agree.
//!
//! ss's filter expressions (`sport = :22 or dst 10.0.0.0/8`), with their
//! own parser and meaning, are in [`expr`].

pub mod expr;

use std::net::IpAddr;
use std::str::FromStr;

use crate::classify::Labels;
use crate::classify::direction::Direction;
use crate::classify::ports::PortClass;
use crate::model::{Socket, State, canonical};

/// An inclusive port range; a single port is `lo == hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSpec {
    pub lo: u16,
    pub hi: u16,
}

impl PortSpec {
    pub fn contains(&self, port: u16) -> bool {
        (self.lo..=self.hi).contains(&port)
    }

    /// `22`, `1000-2000`, or a service name looked up with `service`.
    pub fn parse(text: &str, service: impl Fn(&str) -> Option<u16>) -> Result<PortSpec, String> {
        let number = |t: &str| -> Result<u16, String> {
            match t.parse::<u16>() {
                Ok(p) => Ok(p),
                Err(_) if t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty() => {
                    Err(format!("port {t} is out of range (0-65535)"))
                }
                Err(_) => service(t).ok_or_else(|| format!("unknown port or service name '{t}'")),
            }
        };
        match text.split_once('-') {
            Some((lo, hi))
                if !lo.is_empty() && !hi.is_empty() && lo.chars().all(|c| c.is_ascii_digit()) =>
            {
                let (lo, hi) = (number(lo)?, number(hi)?);
                if lo > hi {
                    return Err(format!("port range {text} runs backwards"));
                }
                Ok(PortSpec { lo, hi })
            }
            _ => {
                let p = number(text)?;
                Ok(PortSpec { lo: p, hi: p })
            }
        }
    }
}

/// An address and prefix length: `10.0.0.0/8`, `fe80::/10`, `127.0.0.1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl FromStr for Prefix {
    type Err = String;

    fn from_str(text: &str) -> Result<Prefix, String> {
        let (addr, len) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .map_err(|_| format!("'{text}' is not an address or prefix"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = match len {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|&l| l <= max)
                .ok_or_else(|| format!("'{text}': prefix length must be 0-{max}"))?,
        };
        Ok(Prefix { addr, len }.canonical())
    }
}

impl Prefix {
    /// The prefix in the form sockets are compared with, the length cut to
    /// the family's. An IPv4-mapped prefix of /96 or longer
    /// (`::ffff:10.0.0.0/104`) is the IPv4 prefix it maps (`10.0.0.0/8`),
    /// as mapped socket addresses are compared in their IPv4 form. A shorter
    /// one stays IPv6: `::ffff:127.0.0.1/64` is `::/64`, and no mapped
    /// address is inside it; neither is `127.0.0.1` (issue 13, item 5).
    pub fn canonical(&self) -> Prefix {
        match self.addr {
            IpAddr::V4(_) => Prefix {
                addr: self.addr,
                len: self.len.min(32),
            },
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if self.len >= 96 => Prefix {
                    addr: IpAddr::V4(v4),
                    len: self.len.min(128) - 96,
                },
                _ => Prefix {
                    addr: self.addr,
                    len: self.len.min(128),
                },
            },
        }
    }

    /// Whether `addr` is inside; IPv4-mapped IPv6 addresses count as IPv4.
    pub fn contains(&self, addr: IpAddr) -> bool {
        let prefix = self.canonical();
        match (prefix.addr, canonical(addr)) {
            (IpAddr::V4(p), IpAddr::V4(a)) => {
                let len = u32::from(prefix.len);
                let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
                (u32::from(p) & mask) == (u32::from(a) & mask)
            }
            (IpAddr::V6(p), IpAddr::V6(a)) => {
                let len = u32::from(prefix.len);
                let mask = if len == 0 {
                    0
                } else {
                    u128::MAX << (128 - len)
                };
                (u128::from(p) & mask) == (u128::from(a) & mask)
            }
            _ => false,
        }
    }
}

/// `--state` names: netstat's and ss's state names, and ss's groups.
pub fn parse_states(text: &str) -> Result<u32, String> {
    let mut mask = 0;
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        mask |= state_bits(name).ok_or_else(|| {
            format!(
                "unknown state '{name}' (states: established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, \
                 time-wait, close, close-wait, last-ack, listening, closing, unconnected; \
                 groups: all, connected, synchronized, bucket, big)"
            )
        })?;
    }
    if mask == 0 {
        return Err("--state needs a state name".to_string());
    }
    Ok(mask)
}

fn state_bits(name: &str) -> Option<u32> {
    use State::*;
    let bits = |states: &[State]| states.iter().fold(0, |m, s| m | s.bit());
    let all = bits(&State::ALL);
    let connected = all & !bits(&[Listen, Close]);
    let name = name.to_ascii_lowercase().replace('_', "-");
    Some(match name.as_str() {
        "established" | "estab" => bits(&[Established]),
        "syn-sent" => bits(&[SynSent]),
        "syn-recv" | "syn-received" | "syn-rcv" => bits(&[SynRecv]),
        "fin-wait-1" | "fin-wait1" => bits(&[FinWait1]),
        "fin-wait-2" | "fin-wait2" => bits(&[FinWait2]),
        "time-wait" => bits(&[TimeWait]),
        // an unconnected UDP socket is in the kernel's TCP_CLOSE
        "close" | "closed" | "unconn" | "unconnected" => bits(&[Close]),
        "close-wait" => bits(&[CloseWait]),
        "last-ack" => bits(&[LastAck]),
        "listen" | "listening" => bits(&[Listen]),
        "closing" => bits(&[Closing]),
        "all" => all,
        "connected" => connected,
        "synchronized" => connected & !bits(&[SynSent]),
        "bucket" => bits(&[SynRecv, TimeWait]),
        "big" => all & !bits(&[SynRecv, TimeWait]),
        _ => return None,
    })
}

/// `--direction`: `in`, `inbound`, `out`, `outbound`, `listen`, `unknown`.
pub fn parse_direction(text: &str) -> Result<Direction, String> {
    match text.to_ascii_lowercase().as_str() {
        "in" | "inbound" => Ok(Direction::Inbound),
        "out" | "outbound" => Ok(Direction::Outbound),
        "listen" | "listening" => Ok(Direction::Listen),
        "unknown" | "?" => Ok(Direction::Unknown),
        _ => Err(format!(
            "unknown direction '{text}' (in, out, listen, unknown)"
        )),
    }
}

/// `--class`: `well-known`/`wk`, `registered`/`reg`, `ephemeral`/`eph`.
pub fn parse_class(text: &str) -> Result<PortClass, String> {
    match text.to_ascii_lowercase().as_str() {
        "well-known" | "wk" => Ok(PortClass::WellKnown),
        "registered" | "reg" => Ok(PortClass::Registered),
        "ephemeral" | "eph" => Ok(PortClass::Ephemeral),
        _ => Err(format!(
            "unknown port class '{text}' (well-known, registered, ephemeral)"
        )),
    }
}

/// Every filter of a run. Empty lists and `None` let everything through.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// State bits (`State::bit`), or `None` for what -a/-l ask for.
    pub states: Option<u32>,
    pub sport: Vec<PortSpec>,
    pub dport: Vec<PortSpec>,
    /// Either end.
    pub port: Vec<PortSpec>,
    pub src: Vec<Prefix>,
    pub dst: Vec<Prefix>,
    pub pid: Vec<u32>,
    pub direction: Vec<Direction>,
    /// The local port's class.
    pub class: Vec<PortClass>,
    /// Only sockets that are part of an FTP session.
    pub ftp: bool,
}

fn any_or_empty<T>(list: &[T], pred: impl Fn(&T) -> bool) -> bool {
    list.is_empty() || list.iter().any(pred)
}

impl Filter {
    /// Whether ports or addresses are filtered: what the kernel's bytecode can do.
    pub fn has_endpoint_filters(&self) -> bool {
        !(self.sport.is_empty()
            && self.dport.is_empty()
            && self.port.is_empty()
            && self.src.is_empty()
            && self.dst.is_empty())
    }

    /// The filters on the socket's own facts (what the kernel could test).
    pub fn matches_socket(&self, s: &Socket) -> bool {
        let remote_port = s.remote.map_or(0, |r| r.port);
        let remote_addr = s.remote.map(|r| r.addr);
        let port_in = |list: &[PortSpec], port: u16| any_or_empty(list, |p| p.contains(port));
        let addr_in = |list: &[Prefix], addr: Option<IpAddr>| {
            any_or_empty(list, |p| addr.is_some_and(|a| p.contains(a)))
        };
        port_in(&self.sport, s.local.port)
            && port_in(&self.dport, remote_port)
            && any_or_empty(&self.port, |p| {
                p.contains(s.local.port) || (s.remote.is_some() && p.contains(remote_port))
            })
            && addr_in(&self.src, Some(s.local.addr))
            && addr_in(&self.dst, remote_addr)
            && self.states.is_none_or(|m| m & s.state.bit() != 0)
    }

    /// The filters on what sockwho says about the socket.
    pub fn matches_labels(&self, s: &Socket, l: &Labels) -> bool {
        any_or_empty(&self.pid, |pid| s.processes.iter().any(|p| p.pid == *pid))
            && any_or_empty(&self.direction, |d| *d == l.direction.direction)
            && any_or_empty(&self.class, |c| *c == l.local_class)
            && (!self.ftp || l.ftp.is_some())
    }

    /// Whether the owners must be read to filter (`--pid`).
    pub fn needs_owners(&self) -> bool {
        !self.pid.is_empty()
    }
}

/// The protocol a state mask makes sense for: UDP knows only ESTABLISHED
/// and (unconnected) CLOSE.
pub fn udp_states(mask: u32) -> u32 {
    mask & (State::Established.bit() | State::Close.bit())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(name: &str) -> Option<u16> {
        match name {
            "ssh" => Some(22),
            "ftp" => Some(21),
            _ => None,
        }
    }

    #[test]
    fn ports_parse_numbers_ranges_and_names() {
        let p = |t| PortSpec::parse(t, svc);
        assert_eq!(p("22"), Ok(PortSpec { lo: 22, hi: 22 }));
        assert_eq!(p("1000-2000"), Ok(PortSpec { lo: 1000, hi: 2000 }));
        assert_eq!(p("ssh"), Ok(PortSpec { lo: 22, hi: 22 }));
        assert!(p("2000-1000").unwrap_err().contains("backwards"));
        assert!(p("70000").unwrap_err().contains("out of range"));
        assert!(p("nosuch").unwrap_err().contains("unknown port"));
        assert!(p("").is_err());
        assert!(p("1-").is_err());
    }

    #[test]
    fn prefixes_parse_and_match() {
        let p: Prefix = "10.0.0.0/8".parse().unwrap();
        assert!(p.contains("10.1.2.3".parse().unwrap()));
        assert!(p.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!p.contains("11.0.0.1".parse().unwrap()));
        assert!(!p.contains("fe80::1".parse().unwrap()));
        let p: Prefix = "fe80::/10".parse().unwrap();
        assert!(p.contains("fe80::1".parse().unwrap()));
        assert!(!p.contains("fd00::1".parse().unwrap()));
        let host: Prefix = "127.0.0.1".parse().unwrap();
        assert_eq!(host.len, 32);
        assert!(!host.contains("127.0.0.2".parse().unwrap()));
        let any: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains("8.8.8.8".parse().unwrap()));
        assert!("10.0.0.0/33".parse::<Prefix>().is_err());
        assert!("nonsense".parse::<Prefix>().is_err());
        assert!("[::1]".parse::<Prefix>().is_ok());
        // a v4-mapped prefix is the IPv4 prefix it maps
        let mapped: Prefix = "::ffff:10.0.0.0/104".parse().unwrap();
        assert_eq!(mapped, "10.0.0.0/8".parse().unwrap());
        assert!(mapped.contains("10.200.0.1".parse().unwrap()));
        assert!(!mapped.contains("11.0.0.1".parse().unwrap()));
    }

    #[test]
    fn states_parse_names_and_groups() {
        let est = State::Established.bit();
        assert_eq!(parse_states("established"), Ok(est));
        assert_eq!(
            parse_states("ESTABLISHED,time_wait"),
            Ok(est | State::TimeWait.bit())
        );
        let connected = parse_states("connected").unwrap();
        assert!(connected & State::Listen.bit() == 0 && connected & est != 0);
        assert!(parse_states("synchronized").unwrap() & State::SynSent.bit() == 0);
        assert_eq!(
            parse_states("bucket"),
            Ok(State::SynRecv.bit() | State::TimeWait.bit())
        );
        assert!(parse_states("bogus").unwrap_err().contains("unknown state"));
        assert!(parse_states("").is_err());
    }
}
