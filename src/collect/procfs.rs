//! The fallback source: `/proc/net/{tcp,tcp6,udp,udp6}`, rooted at any
//! directory so a saved /proc tree can be replayed in tests.
//!
//! We parse the lines ourselves rather than through the `procfs` crate: its
//! `TcpNetEntry` leaves out the timer columns (`tr tm->when retrnsmt`) that
//! `-o` shows. The format is `get_tcp4_sock()` in `net/ipv4/tcp_ipv4.c`.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::model::{Endpoint, Family, Proto, Socket, State, Timer, TimerKind};

/// The kernel prints `tm->when` in clock ticks of `USER_HZ`, which is 100 on
/// every architecture Linux supports.
const MS_PER_TICK: u64 = 10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed line in /proc/net/{file}: {line:?}")]
pub struct ParseError {
    pub file: &'static str,
    pub line: String,
}

pub fn file_name(family: Family, proto: Proto) -> &'static str {
    match (proto, family) {
        (Proto::Tcp, Family::Inet) => "tcp",
        (Proto::Tcp, Family::Inet6) => "tcp6",
        (Proto::Udp, Family::Inet) => "udp",
        (Proto::Udp, Family::Inet6) => "udp6",
    }
}

/// Reads one table under `proc_root/net/`. A missing IPv6 file (a kernel
/// without IPv6) is an empty table; a missing IPv4 one means this is no
/// /proc. Malformed lines are returned apart so the caller can report them
/// once.
pub fn read_table(
    proc_root: &Path,
    family: Family,
    proto: Proto,
    states: u32,
    out: &mut Vec<Socket>,
) -> io::Result<Vec<ParseError>> {
    let name = file_name(family, proto);
    let text = match std::fs::read_to_string(proc_root.join("net").join(name)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::Inet6 => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    Ok(parse_table(&text, name, family, proto, states, out))
}

/// Parses the text of a table, keeping sockets whose state bit is in `states`.
pub fn parse_table(
    text: &str,
    file: &'static str,
    family: Family,
    proto: Proto,
    states: u32,
    out: &mut Vec<Socket>,
) -> Vec<ParseError> {
    let mut errors = Vec::new();
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        match parse_line(line, family, proto) {
            Some(s) if s.state.bit() & states != 0 => out.push(s),
            Some(_) => {}
            None => errors.push(ParseError {
                file,
                line: line.to_string(),
            }),
        }
    }
    errors
}

/// `sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...`
pub fn parse_line(line: &str, family: Family, proto: Proto) -> Option<Socket> {
    let mut f = line.split_ascii_whitespace();
    let _sl = f.next()?;
    let local = parse_endpoint(f.next()?, family)?;
    let remote = parse_endpoint(f.next()?, family)?;
    let state = State::from_kernel(u8::from_str_radix(f.next()?, 16).ok()?)?;
    let (tx, rx) = f.next()?.split_once(':')?;
    let (tr, when) = f.next()?.split_once(':')?;
    let retransmits = u64::from_str_radix(f.next()?, 16).ok()?;
    let uid = f.next()?.parse().ok()?;
    let _timeout = f.next()?;
    let inode = f.next()?.parse().ok()?;
    let kind = match u8::from_str_radix(tr, 16).ok()? {
        0 => TimerKind::Off,
        1 => TimerKind::On,
        2 => TimerKind::Keepalive,
        3 => TimerKind::TimeWait,
        4 => TimerKind::Probe,
        _ => TimerKind::On,
    };
    let remote = if remote.port == 0 && remote.addr.is_unspecified() {
        None
    } else {
        Some(remote)
    };
    Some(Socket {
        proto,
        family,
        state,
        recv_q: u32::from_str_radix(rx, 16).ok()?,
        send_q: u32::from_str_radix(tx, 16).ok()?,
        backlog: None,
        local,
        remote,
        uid,
        inode,
        cookie: None,
        timer: Timer {
            kind,
            expires_ms: u64::from_str_radix(when, 16).ok()? * MS_PER_TICK,
            retransmits: retransmits.min(255) as u8,
        },
        v6only: None,
        processes: Vec::new(),
    })
}

/// `0100007F:0016`, or 32 hex digits for IPv6: each 32-bit word of the
/// address printed with `%08X` as it sits in memory (so in host byte order).
fn parse_endpoint(s: &str, family: Family) -> Option<Endpoint> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let hex = addr.get(i * 8..i * 8 + 8)?;
        Some(u32::from_str_radix(hex, 16).ok()?.to_ne_bytes())
    };
    let addr = match (family, addr.len()) {
        (Family::Inet, 8) => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        (Family::Inet6, 32) => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(Endpoint::new(addr, port))
}

/// How many sockets of `protos` the namespace holds, from
/// `net/sockstat{,6}` (`TCP: inuse N orphan O tw T ...`): a capacity for the
/// dump's vector, so that 200,000 sockets are not copied while it grows.
/// 0 where the files cannot be read.
pub fn sockstat_hint(net_root: &Path, protos: &[Proto]) -> usize {
    let mut total = 0;
    for file in ["sockstat", "sockstat6"] {
        let Ok(text) = std::fs::read_to_string(net_root.join("net").join(file)) else {
            continue;
        };
        for line in text.lines() {
            let Some((name, fields)) = line.split_once(':') else {
                continue;
            };
            let proto = match name {
                "TCP" | "TCP6" => Proto::Tcp,
                "UDP" | "UDP6" => Proto::Udp,
                _ => continue,
            };
            if !protos.contains(&proto) {
                continue;
            }
            let words: Vec<&str> = fields.split_whitespace().collect();
            for pair in words.chunks(2) {
                if let ["inuse" | "tw", value] = pair {
                    total += value.parse::<usize>().unwrap_or(0);
                }
            }
        }
    }
    total
}
