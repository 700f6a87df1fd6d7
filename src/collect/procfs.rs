//! The fallback source: `/proc/net/{tcp,tcp6,udp,udp6}`, rooted at any
//! directory so a saved /proc tree can be replayed in tests.
//!
//! We parse the lines ourselves rather than through the `procfs` crate: its
//! `TcpNetEntry` leaves out the timer columns (`tr tm->when retrnsmt`) that
//! `-o` shows. The format is `get_tcp4_sock()` in `net/ipv4/tcp_ipv4.c`.
//!
//! The text is read as bytes: a line that is not UTF-8, or not in the
//! kernel's format, is skipped and counted, never the whole table. The
//! kernel walks its hash tables while sockets come and go, and under churn
//! prints a socket twice now and then (seen: 80 of 300 reads at 2,000
//! connections a second); each socket is kept once.

use std::collections::HashSet;
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
    let text = match std::fs::read(proc_root.join("net").join(name)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound && family == Family::Inet6 => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e),
    };
    Ok(parse_table(&text, name, family, proto, states, out))
}

/// Parses the text of a table, keeping sockets whose state bit is in
/// `states`, each once.
pub fn parse_table(
    text: impl AsRef<[u8]>,
    file: &'static str,
    family: Family,
    proto: Proto,
    states: u32,
    out: &mut Vec<Socket>,
) -> Vec<ParseError> {
    let mut errors = Vec::new();
    let mut seen = HashSet::new();
    let lines = text.as_ref().split(|&b| b == b'\n').skip(1);
    for bytes in lines.filter(|l| !l.trim_ascii().is_empty()) {
        let parsed = std::str::from_utf8(bytes)
            .ok()
            .and_then(|line| parse_line(line, family, proto));
        match parsed {
            Some(s) if s.state.bit() & states == 0 => {}
            Some(s) => {
                // a TIME_WAIT socket has no inode: its ends tell it apart
                if seen.insert((s.local, s.remote, s.inode)) {
                    out.push(s);
                }
            }
            None => errors.push(ParseError {
                file,
                line: String::from_utf8_lossy(bytes).into_owned(),
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
            // a value no kernel prints (it would overflow) makes the line malformed
            expires_ms: u64::from_str_radix(when, 16)
                .ok()?
                .checked_mul(MS_PER_TICK)?,
            retransmits: retransmits.min(255) as u8,
        },
        v6only: None,
        processes: Vec::new(),
        closed: false,
        owner_gone: false,
        ended: None,
        tcp_info: None,
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

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";
    const LISTEN: &str = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n";
    const TIME_WAIT: &str = "   1: 0100007F:1F90 0100007F:D431 06 00000000:00000000 03:00001770 00000000     0        0 0 3 0000000000000000\n";

    fn parse(text: &[u8]) -> (Vec<Socket>, Vec<ParseError>) {
        let mut out = Vec::new();
        let errors = parse_table(text, "tcp", Family::Inet, Proto::Tcp, !0, &mut out);
        (out, errors)
    }

    #[test]
    fn lines_parse_with_their_timers() {
        let (sockets, errors) = parse(format!("{HEADER}{LISTEN}{TIME_WAIT}").as_bytes());
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(sockets.len(), 2);
        assert_eq!(sockets[0].state, State::Listen);
        assert_eq!(sockets[0].inode, 12345);
        assert_eq!(sockets[1].timer.kind, TimerKind::TimeWait);
        assert_eq!(sockets[1].timer.expires_ms, 0x1770 * 10);
    }

    /// Issue 13, item 3: `tm->when` of 0xF000000000000000 ticks overflowed
    /// (a panic in a debug build, a wrapped timer in release).
    #[test]
    fn a_timer_that_would_overflow_is_a_malformed_line_regression_13() {
        let bad = LISTEN.replace("00:00000000", "02:F000000000000000");
        let (sockets, errors) = parse(format!("{HEADER}{bad}{TIME_WAIT}").as_bytes());
        assert_eq!(sockets.len(), 1);
        assert_eq!(errors.len(), 1);
    }

    /// Issue 13, item 6: the kernel prints a socket twice under churn.
    #[test]
    fn a_socket_printed_twice_is_kept_once_regression_13() {
        let text = format!("{HEADER}{LISTEN}{TIME_WAIT}{LISTEN}{TIME_WAIT}");
        let (sockets, errors) = parse(text.as_bytes());
        assert!(errors.is_empty());
        assert_eq!(sockets.len(), 2);
    }

    /// Issue 13, item 9: one bad byte skipped its whole table.
    #[test]
    fn a_line_that_is_not_utf8_skips_alone_regression_13() {
        let mut text = format!("{HEADER}{LISTEN}").into_bytes();
        text.extend_from_slice(b"   2: 0100007F:1F91 \xff\xfe 0A\n");
        text.extend_from_slice(TIME_WAIT.as_bytes());
        let (sockets, errors) = parse(&text);
        assert_eq!(sockets.len(), 2);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].line.contains('\u{fffd}'));
    }
}
