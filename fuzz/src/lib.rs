//! What the fuzz targets share: the invariants every socket a collector
//! makes must hold ([`check_socket`]), and generators that turn fuzzer bytes
//! into sockets, addresses, ports and hostile text ([`Unstructured`] from
//! `arbitrary`, re-exported by libfuzzer-sys), so that each target can build
//! what sockwho would have read from the kernel or /proc.
//!
//! A failed check panics with what was wrong and the value: libFuzzer then
//! saves the input under `fuzz/artifacts/TARGET/` (see `fuzz/run.sh`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

pub use libfuzzer_sys::arbitrary::{self, Arbitrary, Result, Unstructured};
use sockwho::model::{Endpoint, Family, Process, Proto, Socket, State, Timer, TimerKind};

/// `SOCKWHO_FUZZ_STRICT=1`: check for the bugs the targets have found and
/// that are not fixed yet too (each target names them, with its input
/// under `fuzz/regressions/TARGET/`); without it a target steers around
/// them, so that a run finds what is new.
pub fn strict() -> bool {
    static STRICT: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| {
        std::env::var_os("SOCKWHO_FUZZ_STRICT").is_some_and(|v| v == "1")
    });
    *STRICT
}

/// Every state bit (`State::bit`): what `-a` dumps of TCP.
pub fn all_states() -> u32 {
    State::ALL.iter().fold(0, |m, s| m | s.bit())
}

/// Whether `addr` is of `family`.
pub fn of_family(addr: IpAddr, family: Family) -> bool {
    matches!(
        (addr, family),
        (IpAddr::V4(_), Family::Inet) | (IpAddr::V6(_), Family::Inet6)
    )
}

/// What holds for every socket a collector makes, from any bytes: one
/// family for both ends, "no remote end" spelled only as `None` (never as
/// `0.0.0.0:0` or `[::]:0`), a backlog only on a TCP listener, and no
/// owners yet (they are read apart).
pub fn check_socket(s: &Socket) {
    assert!(
        of_family(s.local.addr, s.family),
        "local address not of the socket's family: {s:?}"
    );
    if let Some(r) = s.remote {
        assert!(
            of_family(r.addr, s.family),
            "remote address not of the socket's family: {s:?}"
        );
        assert!(
            !(r.port == 0 && r.addr.is_unspecified()),
            "an unspecified remote end that is not None: {s:?}"
        );
    }
    if s.backlog.is_some() {
        assert!(
            s.proto == Proto::Tcp && s.state == State::Listen && s.send_q == 0,
            "a backlog on what is no TCP listener: {s:?}"
        );
    }
    assert!(
        s.processes.is_empty(),
        "owners before they were read: {s:?}"
    );
}

/// Characters that have broken or could break an output: terminal controls
/// (C0, C1, DEL), invisible and reordering ones, every kind of whitespace,
/// and the separators of the formats (CSV, the table's owner lists, JSON).
pub const NASTY: &[char] = &[
    '\x1b',
    '\u{9b}',
    '\x7f',
    '\0',
    '\x07',
    '\x08',
    '\n',
    '\r',
    '\t',
    '\x0b',
    '\x0c',
    ' ',
    '\u{a0}',
    '\u{85}',
    '\u{1680}',
    '\u{2007}',
    '\u{3000}',
    '\u{2028}',
    '\u{2029}',
    '\u{202e}',
    '\u{2066}',
    '\u{200b}',
    '\u{200f}',
    '\u{61c}',
    '\u{ad}',
    '\u{180e}',
    '\u{feff}',
    '\u{fff9}',
    '\u{e0041}',
    '\u{fffd}',
    '\\',
    '"',
    '\'',
    ',',
    ';',
    '/',
    ':',
    '#',
    '=',
    '[',
    ']',
    '{',
    '}',
    '%',
    '-',
    'e',
    '1',
    '\u{e9}',
    '\u{4e2d}',
    '\u{1f600}',
];

/// Up to `max` characters, half of them from [`NASTY`].
pub fn hostile_string(u: &mut Unstructured<'_>, max: usize) -> Result<String> {
    let n = u.int_in_range(0..=max)?;
    let mut s = String::new();
    for _ in 0..n {
        let c = if u.arbitrary()? {
            *u.choose(NASTY)?
        } else {
            char::arbitrary(u)?
        };
        s.push(c);
    }
    Ok(s)
}

/// A port near one of `near` (the boundaries of a filter, say) or any.
pub fn port(u: &mut Unstructured<'_>, near: &[u16]) -> Result<u16> {
    Ok(match u.int_in_range(0..=3u8)? {
        0 if !near.is_empty() => {
            let p = *u.choose(near)?;
            match u.int_in_range(0..=2u8)? {
                0 => p.wrapping_sub(1),
                1 => p,
                _ => p.wrapping_add(1),
            }
        }
        1 => *u.choose(&[
            0, 1, 20, 21, 22, 1023, 1024, 32767, 32768, 60999, 61000, 65535,
        ])?,
        _ => u.arbitrary()?,
    })
}

/// An address of `family`: one of `near` (turned IPv4-mapped for an IPv6
/// socket, with low bits flipped now and then), a special one, or any.
pub fn addr(u: &mut Unstructured<'_>, family: Family, near: &[IpAddr]) -> Result<IpAddr> {
    let special: &[IpAddr] = match family {
        Family::Inet => &[
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V4(Ipv4Addr::BROADCAST),
        ],
        Family::Inet6 => &[
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0x7f00, 1)),
            IpAddr::V6(Ipv6Addr::new(0, 0, 0, 0, 0, 0xfffe, 0, 1)),
        ],
    };
    let any = |u: &mut Unstructured<'_>| -> Result<IpAddr> {
        Ok(match family {
            Family::Inet => IpAddr::V4(Ipv4Addr::from(u.arbitrary::<u32>()?)),
            Family::Inet6 if u.arbitrary()? => {
                // IPv4-mapped: where IPv4 prefixes meet IPv6 sockets
                IpAddr::V6(Ipv4Addr::from(u.arbitrary::<u32>()?).to_ipv6_mapped())
            }
            Family::Inet6 => IpAddr::V6(Ipv6Addr::from(u.arbitrary::<u128>()?)),
        })
    };
    match u.int_in_range(0..=3u8)? {
        0 if !near.is_empty() => {
            let base = match (*u.choose(near)?, family) {
                (IpAddr::V4(a), Family::Inet) => IpAddr::V4(a),
                (IpAddr::V4(a), Family::Inet6) => IpAddr::V6(a.to_ipv6_mapped()),
                (IpAddr::V6(a), Family::Inet6) => IpAddr::V6(a),
                (IpAddr::V6(_), Family::Inet) => return any(u),
            };
            // flip one bit, or none, so both sides of a prefix are met
            let bit = u.int_in_range(0..=128u32)?;
            Ok(match base {
                IpAddr::V4(a) if bit < 32 => IpAddr::V4(Ipv4Addr::from(u32::from(a) ^ (1 << bit))),
                IpAddr::V6(a) if bit < 128 => {
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) ^ (1 << bit)))
                }
                other => other,
            })
        }
        1 => Ok(*u.choose(special)?),
        _ => any(u),
    }
}

/// A socket with the shape a collector gives (see [`check_socket`]), its
/// ends near `addrs` and `ports`.
pub fn socket(u: &mut Unstructured<'_>, addrs: &[IpAddr], ports: &[u16]) -> Result<Socket> {
    let family = if u.arbitrary()? {
        Family::Inet
    } else {
        Family::Inet6
    };
    let proto = if u.arbitrary()? {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    let local = Endpoint::new(addr(u, family, addrs)?, port(u, ports)?);
    let remote = if u.ratio(1, 4)? {
        None
    } else {
        let r = Endpoint::new(addr(u, family, addrs)?, port(u, ports)?);
        // the collectors' "no remote end"
        (!(r.port == 0 && r.addr.is_unspecified())).then_some(r)
    };
    let state = *u.choose(&State::ALL)?;
    let kind = *u.choose(&[
        TimerKind::Off,
        TimerKind::On,
        TimerKind::Keepalive,
        TimerKind::TimeWait,
        TimerKind::Probe,
    ])?;
    let listener = proto == Proto::Tcp && state == State::Listen;
    let send_q = if listener { 0 } else { u.arbitrary()? };
    Ok(Socket {
        proto,
        family,
        state,
        recv_q: u.arbitrary()?,
        send_q,
        backlog: if listener { u.arbitrary()? } else { None },
        local,
        remote,
        uid: u.arbitrary()?,
        inode: u.arbitrary()?,
        cookie: u.arbitrary()?,
        timer: Timer {
            kind,
            expires_ms: u.arbitrary()?,
            retransmits: u.arbitrary()?,
        },
        v6only: if family == Family::Inet6 {
            u.arbitrary()?
        } else {
            None
        },
        processes: Vec::new(),
        closed: u.ratio(1, 8)?,
        tcp_info: None,
        // when it went: the classifier's timing evidence, left to the
        // collectors (an Instant is not arbitrary input)
        ended: None,
        // the owner walk's verdict: it comes with the processes, none here
        owner_gone: false,
    })
}

/// Owners with hostile names, as `/proc/PID/comm` may hold any bytes (a
/// process names itself with `prctl(PR_SET_NAME)`); one `Arc` may be
/// shared, as the collector shares a process's name among its sockets.
pub fn processes(u: &mut Unstructured<'_>, shared: &[Arc<str>]) -> Result<Vec<Process>> {
    let n = u.int_in_range(0..=3u8)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let name = if !shared.is_empty() && u.arbitrary()? {
            Arc::clone(u.choose(shared)?)
        } else {
            Arc::from(hostile_string(u, 24)?)
        };
        // argv[0]'s base name is outside text too
        let program = if u.arbitrary()? {
            Some(Arc::from(hostile_string(u, 24)?))
        } else {
            None
        };
        out.push(Process {
            pid: u.arbitrary()?,
            name,
            program,
        });
    }
    Ok(out)
}
