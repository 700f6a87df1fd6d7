//! A model of the kernel's side of sock_diag bytecode, ported from
//! `net/ipv4/inet_diag.c`: [`run`] is
//! [`inet_diag_bc_run()`](https://elixir.bootlin.com/linux/latest/C/ident/inet_diag_bc_run),
//! which decides whether a socket is sent, and [`audit`] is
//! [`inet_diag_bc_audit()`](https://elixir.bootlin.com/linux/latest/C/ident/inet_diag_bc_audit),
//! which refuses a malformed program before the dump starts (EINVAL). The
//! helpers follow the kernel's
//! [`bitstring_match()`](https://elixir.bootlin.com/linux/latest/C/ident/bitstring_match),
//! [`valid_cc()`](https://elixir.bootlin.com/linux/latest/C/ident/valid_cc),
//! [`valid_hostcond()`](https://elixir.bootlin.com/linux/latest/C/ident/valid_hostcond)
//! and
//! [`valid_port_comparison()`](https://elixir.bootlin.com/linux/latest/C/ident/valid_port_comparison),
//! and [`entry`] fills what
//! [`inet_diag_bc_sk()`](https://elixir.bootlin.com/linux/latest/C/ident/inet_diag_bc_sk)
//! fills from a socket.
//!
//! It is faithful for every op of `include/uapi/linux/inet_diag.h` as of
//! Linux 6.x: NOP, jumps, ports, host conditions, and `AUTO`, `DEV_COND`,
//! `MARK_COND` and `CGROUP_COND`, whose facts (`userlocks`, `ifindex`,
//! `mark`, `cgroup_id`) an [`Entry`] holds but a [`Socket`] does not: tests
//! set them by hand. Two things it leaves out: the kernel refuses
//! `MARK_COND` (EPERM) to callers without CAP_NET_ADMIN, and `CGROUP_COND`
//! (EINVAL) when built without CONFIG_SOCK_CGROUP_DATA. Audit a program
//! before running it, as the kernel does.
//!
//! sockwho itself never runs it: the kernel does. It is used by tests and
//! fuzzing only, to check that what [`compile`](super::compile) and
//! [`compile_expr`](super::compile_expr) make passes the audit and accepts
//! exactly the sockets
//! [`Filter::matches_socket`](crate::filter::Filter::matches_socket) and
//! [`Expr::eval_with`](crate::filter::expr::Expr::eval_with) do, without a
//! kernel (the integration tests check the real one, as root). It
//! is plain code rather than `cfg(test)` so that fuzz targets and
//! integration tests can use it; it does not panic, whatever the bytes.

use std::net::IpAddr;

use super::{
    AF_INET, AF_INET6, BC_AUTO, BC_CGROUP_COND, BC_D_COND, BC_D_EQ, BC_D_GE, BC_D_LE, BC_DEV_COND,
    BC_JMP, BC_MARK_COND, BC_NOP, BC_S_COND, BC_S_EQ, BC_S_GE, BC_S_LE,
};
use crate::model::{Family, Socket};

/// `SOCK_BINDPORT_LOCK` in `sk_userlocks`: the port was bound explicitly.
pub const SOCK_BINDPORT_LOCK: u16 = 4;

/// `struct inet_diag_entry`: what the kernel's ops test, for one socket,
/// in the kernel's terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// `AF_INET` or `AF_INET6`: the socket's family (`sk_family`).
    pub family: u8,
    /// The local address, network order; an IPv4 one in the first 4 bytes.
    pub saddr: [u8; 16],
    /// The remote address, likewise; all zeros without a remote end.
    pub daddr: [u8; 16],
    /// The local port, host order (`inet_num`).
    pub sport: u16,
    /// The remote port, host order; 0 without a remote end.
    pub dport: u16,
    /// `sk_bound_dev_if`: the device the socket is bound to, 0 for none.
    pub ifindex: u32,
    /// `sk_userlocks` (0 for TIME_WAIT and request sockets).
    pub userlocks: u16,
    /// `sk_mark`.
    pub mark: u32,
    /// The socket's cgroup v2 id.
    pub cgroup_id: u64,
}

/// The entry of a socket as the decoder would have reported it: no remote
/// end is `0.0.0.0:0` / `[::]:0` in the kernel. The facts a [`Socket`] does
/// not hold are 0: not bound to a device, a port bound by the kernel, no
/// mark, no cgroup.
pub fn entry(s: &Socket) -> Entry {
    let bytes = |a: IpAddr| match a {
        IpAddr::V4(a) => {
            let mut b = [0; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    };
    Entry {
        family: match s.family {
            Family::Inet => AF_INET,
            Family::Inet6 => AF_INET6,
        },
        saddr: bytes(s.local.addr),
        daddr: s.remote.map_or([0; 16], |r| bytes(r.addr)),
        sport: s.local.port,
        dport: s.remote.map_or(0, |r| r.port),
        ifindex: 0,
        userlocks: 0,
        mark: 0,
        cgroup_id: 0,
    }
}

/// The `u32` at `at` (native order), if the program holds it.
fn u32_at(bc: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(
        bc.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// The op at `at`: `(code, yes, no)`, or `None` past the end.
pub(super) fn op_at(bc: &[u8], at: usize) -> Option<(u8, u8, u16)> {
    match bc.get(at..at.checked_add(4)?)? {
        &[code, yes, a, b] => Some((code, yes, u16::from_ne_bytes([a, b]))),
        _ => None,
    }
}

/// `bitstring_match()`: the first `bits` bits of `a1` and `a2` agree.
/// `None` if either is shorter than that (the audit rules it out).
fn bitstring_match(a1: &[u8], a2: &[u8], bits: u8) -> Option<bool> {
    let words = usize::from(bits >> 5) * 4;
    let bits = bits & 0x1f;
    if a1.get(..words)? != a2.get(..words)? {
        return Some(false);
    }
    if bits != 0 {
        let word = |a: &[u8]| -> Option<u32> {
            Some(u32::from_be_bytes(
                a.get(words..words + 4)?.try_into().ok()?,
            ))
        };
        let mask = u32::MAX << (32 - bits);
        if (word(a1)? ^ word(a2)?) & mask != 0 {
            return Some(false);
        }
    }
    Some(true)
}

/// The S_COND / D_COND case of `inet_diag_bc_run()`, on the op at the
/// start of `op`.
fn hostcond_run(op: &[u8], e: &Entry) -> Option<bool> {
    let local = *op.first()? == BC_S_COND;
    let (family, prefix_len) = (*op.get(4)?, *op.get(5)?);
    let port = i32::from_ne_bytes(op.get(8..12)?.try_into().ok()?);
    let cond_addr = op.get(12..)?;
    if port != -1 && port != i32::from(if local { e.sport } else { e.dport }) {
        return Some(false);
    }
    let addr: &[u8] = if local { &e.saddr } else { &e.daddr };
    if family != 0 && family != e.family {
        // an AF_INET condition on an AF_INET6 socket: its mapped address
        if e.family == AF_INET6
            && family == AF_INET
            && addr[..10] == [0; 10]
            && addr[10..12] == [0xff, 0xff]
        {
            return bitstring_match(&addr[12..], cond_addr, prefix_len);
        }
        return Some(false);
    }
    if prefix_len == 0 {
        return Some(true);
    }
    bitstring_match(addr, cond_addr, prefix_len)
}

/// `inet_diag_bc_run()`: whether the program accepts the socket of `e`.
///
/// The kernel runs only programs its audit passed, and so should callers:
/// on one [`audit`] refuses, the answer means nothing (an op cut short, or
/// one that would not move on, rejects; an unknown op is true, as in the
/// kernel's `switch`).
pub fn run(bc: &[u8], e: &Entry) -> bool {
    let mut at = 0;
    let mut len = bc.len() as i64;
    while len > 0 {
        let Some((code, yes, no)) = op_at(bc, at) else {
            return false;
        };
        let port = || op_at(bc, at + 4).map(|(_, _, port)| port);
        let truth = match code {
            BC_NOP => Some(true),
            BC_JMP => Some(false),
            BC_S_EQ => port().map(|p| e.sport == p),
            BC_S_GE => port().map(|p| e.sport >= p),
            BC_S_LE => port().map(|p| e.sport <= p),
            BC_D_EQ => port().map(|p| e.dport == p),
            BC_D_GE => port().map(|p| e.dport >= p),
            BC_D_LE => port().map(|p| e.dport <= p),
            BC_S_COND | BC_D_COND => hostcond_run(&bc[at..], e),
            BC_AUTO => Some(e.userlocks & SOCK_BINDPORT_LOCK == 0),
            BC_DEV_COND => u32_at(bc, at + 4).map(|index| index == e.ifindex),
            BC_MARK_COND => u32_at(bc, at + 4)
                .zip(u32_at(bc, at + 8))
                .map(|(mark, mask)| e.mark & mask == mark),
            // get_unaligned(): the u64 sits 4 bytes into the op
            BC_CGROUP_COND => bc
                .get(at + 4..at + 12)
                .and_then(|b| b.try_into().ok())
                .map(|id| u64::from_ne_bytes(id) == e.cgroup_id),
            // the kernel's `int yes = 1;` before its switch
            _ => Some(true),
        };
        let Some(truth) = truth else {
            return false;
        };
        let step = if truth {
            usize::from(yes)
        } else {
            usize::from(no)
        };
        if step == 0 {
            // the audit's yes/no >= 4; the kernel would loop for ever
            return false;
        }
        at += step;
        len -= step as i64;
    }
    len == 0
}

/// `valid_cc()`: `cc` bytes before the end is an op on the `yes` walk.
fn valid_cc(bc: &[u8], mut len: i64, cc: i64) -> bool {
    let mut at = 0;
    while len >= 0 {
        if cc > len {
            return false;
        }
        if cc == len {
            return true;
        }
        let Some(yes) = bc.get(at + 1).copied().map(i64::from) else {
            return false;
        };
        if yes < 4 || yes & 3 != 0 {
            return false;
        }
        len -= yes;
        at += yes as usize;
    }
    false
}

/// `inet_diag_bc_audit()`: `Ok` when the kernel would run the program, the
/// place and reason it would refuse it (EINVAL) otherwise. Unknown ops are
/// refused, as in the kernel; `MARK_COND` passes as it does for a caller
/// with CAP_NET_ADMIN.
pub fn audit(bc: &[u8]) -> Result<(), String> {
    if bc.len() < 4 {
        return Err("shorter than one op".into());
    }
    let total = bc.len() as i64;
    let (mut at, mut len) = (0, total);
    while len > 0 {
        // the kernel reads a cut-short op anyway; its `yes` (>= 4) then
        // leaves `len` negative, and the program is refused
        let Some((code, yes, no)) = op_at(bc, at) else {
            return Err(format!("{at}: op cut short"));
        };
        let (yes, no) = (i64::from(yes), i64::from(no));
        let mut min_len = 4;
        match code {
            BC_S_COND | BC_D_COND => {
                // valid_hostcond()
                min_len += 8;
                if len < min_len {
                    return Err(format!("{at}: hostcond cut short"));
                }
                let addr_len = match bc[at + 4] {
                    0 => 0,
                    AF_INET => 4,
                    AF_INET6 => 16,
                    f => return Err(format!("{at}: family {f}")),
                };
                min_len += addr_len;
                if len < min_len || i64::from(bc[at + 5]) > 8 * addr_len {
                    return Err(format!("{at}: bad address or prefix length"));
                }
            }
            BC_S_EQ | BC_S_GE | BC_S_LE | BC_D_EQ | BC_D_GE | BC_D_LE => {
                // valid_port_comparison()
                min_len += 4;
                if len < min_len {
                    return Err(format!("{at}: port comparison cut short"));
                }
            }
            // valid_devcond(), valid_markcond(), valid_cgroupcond()
            BC_DEV_COND | BC_MARK_COND | BC_CGROUP_COND => {
                min_len += if code == BC_DEV_COND { 4 } else { 8 };
                if len < min_len {
                    return Err(format!("{at}: op {code} cut short"));
                }
            }
            BC_AUTO | BC_JMP | BC_NOP => {}
            other => return Err(format!("{at}: unknown op {other}")),
        }
        if code != BC_NOP {
            if no < min_len || no > len + 4 || no & 3 != 0 {
                return Err(format!("{at}: no={no} (len {len}, min {min_len})"));
            }
            if no < len && !valid_cc(bc, total, len - no) {
                return Err(format!("{at}: no={no} lands inside an op"));
            }
        }
        if yes < min_len || yes > len + 4 || yes & 3 != 0 {
            return Err(format!("{at}: yes={yes} (len {len}, min {min_len})"));
        }
        at += yes as usize;
        len -= yes;
    }
    if len == 0 {
        Ok(())
    } else {
        Err("the yes walk does not end at the end".into())
    }
}

#[cfg(test)]
mod tests {
    //! The model on its own: hand-made programs, good and bad.

    use super::*;

    fn v4(addr: [u8; 4], sport: u16) -> Entry {
        let mut saddr = [0; 16];
        saddr[..4].copy_from_slice(&addr);
        Entry {
            family: AF_INET,
            saddr,
            daddr: [0; 16],
            sport,
            dport: 0,
            ifindex: 0,
            userlocks: 0,
            mark: 0,
            cgroup_id: 0,
        }
    }

    #[test]
    fn runs_along_yes_and_no() {
        let e = v4([127, 0, 0, 1], 22);
        // off the end exactly: accept; 4 bytes past it: reject
        assert!(run(&[BC_NOP, 4, 0, 0], &e));
        assert!(!run(&[BC_JMP, 4, 8, 0], &e));
        let [a, b] = 22u16.to_ne_bytes();
        let sport_22 = [BC_S_EQ, 8, 12, 0, 0, 0, a, b];
        assert!(run(&sport_22, &e));
        assert!(!run(&sport_22, &v4([127, 0, 0, 1], 23)));
        // AF_INET 127.0.0.0/8, any port, on the local address
        let mut cond = vec![BC_S_COND, 16, 20, 0, AF_INET, 8, 0, 0];
        cond.extend_from_slice(&(-1i32).to_ne_bytes());
        cond.extend_from_slice(&[127, 0, 0, 0]);
        audit(&cond).unwrap();
        assert!(run(&cond, &e));
        assert!(!run(&cond, &v4([10, 0, 0, 1], 22)));
        // and on the IPv4-mapped address of an AF_INET6 socket
        let mut mapped = e;
        mapped.family = AF_INET6;
        mapped.saddr = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1];
        assert!(run(&cond, &mapped));
        mapped.saddr[11] = 0xfe;
        assert!(!run(&cond, &mapped));
    }

    #[test]
    fn runs_the_tests_of_facts_a_socket_does_not_hold() {
        let mut e = v4([127, 0, 0, 1], 22);
        let auto = [BC_AUTO, 4, 8, 0];
        audit(&auto).unwrap();
        assert!(run(&auto, &e));
        e.userlocks = SOCK_BINDPORT_LOCK;
        assert!(!run(&auto, &e));
        let mut dev = vec![BC_DEV_COND, 8, 12, 0];
        dev.extend_from_slice(&3u32.to_ne_bytes());
        audit(&dev).unwrap();
        assert!(!run(&dev, &e));
        e.ifindex = 3;
        assert!(run(&dev, &e));
        let mut mark = vec![BC_MARK_COND, 12, 16, 0];
        mark.extend_from_slice(&0x10u32.to_ne_bytes());
        mark.extend_from_slice(&0xf0u32.to_ne_bytes());
        audit(&mark).unwrap();
        e.mark = 0x13;
        assert!(run(&mark, &e));
        e.mark = 0x23;
        assert!(!run(&mark, &e));
        let mut cgroup = vec![BC_CGROUP_COND, 12, 16, 0];
        cgroup.extend_from_slice(&(1u64 << 40 | 7).to_ne_bytes());
        audit(&cgroup).unwrap();
        assert!(!run(&cgroup, &e));
        e.cgroup_id = 1 << 40 | 7;
        assert!(run(&cgroup, &e));
    }

    #[test]
    fn audit_refuses_what_the_kernel_refuses() {
        let [a, b] = 22u16.to_ne_bytes();
        audit(&[BC_S_EQ, 8, 12, 0, 0, 0, a, b]).unwrap();
        for (bad, why) in [
            (vec![], "empty"),
            (vec![BC_JMP, 4], "shorter than an op"),
            // the integration tests' program the real kernel refuses
            (vec![BC_JMP, 4, 6, 0], "a jump not 4-byte aligned"),
            (vec![BC_JMP, 4, 12, 0], "a jump past the reject"),
            (vec![BC_JMP, 4, 4, 0, 0], "an op cut short"),
            (vec![BC_S_EQ, 4, 8, 0], "a port comparison without its port"),
            (
                vec![BC_JMP, 4, 8, 0, BC_S_EQ, 8, 12, 0, 0, 0, a, b],
                "a jump into the port half of an op",
            ),
            (vec![14, 4, 8, 0], "an op past CGROUP_COND"),
            (vec![BC_DEV_COND, 4, 8, 0], "DEV_COND without its index"),
            (
                vec![BC_MARK_COND, 8, 12, 0, 0, 0, 0, 0],
                "MARK_COND without its mask",
            ),
            (
                vec![BC_CGROUP_COND, 8, 12, 0, 1, 0, 0, 0],
                "CGROUP_COND cut short",
            ),
            (vec![42, 4, 8, 0], "an unknown op"),
            (
                vec![
                    BC_S_COND, 16, 20, 0, AF_INET, 33, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
                "a prefix longer than the address",
            ),
            (
                vec![
                    BC_S_COND, 16, 20, 0, AF_INET6, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                ],
                "an IPv6 condition without room for its address",
            ),
        ] {
            assert!(audit(&bad).is_err(), "{why}: {bad:?}");
        }
    }

    #[test]
    fn does_not_panic_on_garbage() {
        // xorshift64
        let mut x: u64 = 0x0bad_c0de;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let e = v4([127, 0, 0, 1], 22);
        let mut audited = 0;
        for _ in 0..3000 {
            // a few ops shaped like the ones sockwho emits, with offsets
            // drawn at random, then a byte or two spoiled now and then
            let mut bytes = Vec::new();
            for _ in 0..next() % 5 {
                let no = 4 * (1 + next() % 6) as u8;
                match next() % 4 {
                    0 => bytes.extend_from_slice(&[BC_NOP, 4, 0, 0]),
                    1 => bytes.extend_from_slice(&[BC_JMP, 4, no, 0]),
                    2 => bytes.extend_from_slice(&[BC_S_EQ, 8, no, 0, 0, 0, 22, 0]),
                    _ => {
                        bytes.extend_from_slice(&[BC_D_COND, 16, no, 0, AF_INET, 8, 0, 0]);
                        bytes.extend_from_slice(&(-1i32).to_ne_bytes());
                        bytes.extend_from_slice(&[127, 0, 0, 0]);
                    }
                }
            }
            while !bytes.is_empty() && next() % 3 == 0 {
                let at = (next() % bytes.len() as u64) as usize;
                bytes[at] = next() as u8;
            }
            if next() % 4 == 0 {
                bytes.truncate((next() % 20) as usize);
            }
            run(&bytes, &e);
            audited += usize::from(audit(&bytes).is_ok());
        }
        // some were programs the kernel would run, and many were not
        assert!(audited > 300 && audited < 2700, "{audited}");
    }
}
