//! Kernel-side filtering of ports and addresses: the filter's `sport`,
//! `dport`, `port`, `src` and `dst` as sock_diag bytecode, sent with the dump
//! request as its `INET_DIAG_REQ_BYTECODE` attribute, so that sockets the
//! user filtered out never cross into user space.
//!
//! The ABI is `include/uapi/linux/inet_diag.h`; the kernel runs the program
//! in `inet_diag_bc_run()` and checks it beforehand in
//! `inet_diag_bc_audit()` (`net/ipv4/inet_diag.c`). A program is a sequence
//! of 4-byte aligned ops, `struct inet_diag_bc_op { u8 code; u8 yes; u16 no; }`,
//! where `yes` and `no` are byte offsets, from the op, of the next op when the
//! op's test is true or false. Jumps go forward only. The socket is accepted
//! when the program runs off its end exactly, and rejected when it jumps 4
//! bytes past it.
//!
//! The audit walks the program along the `yes` offsets and insists that each
//! `no` lands on an op it walked through (`valid_cc()`), so every op here
//! falls through on true (`yes` is its own length) and only `no` jumps; an
//! unconditional jump is `INET_DIAG_BC_JMP`, whose `no` the kernel always
//! takes.
//!
//! The filter is compiled as an AND of clauses, one per kind of filter, each
//! an OR of alternatives, each an AND of (possibly negated) tests: the same
//! shape as [`Filter::matches_socket`], which stays the reference. Every
//! filter is applied again in user space, so bytecode that let too much
//! through would only cost time; but it must never reject a socket that
//! `matches_socket` accepts, and the tests hold it to exact agreement.
//!
//! ss's filter expressions ([`Expr`]) compile here too ([`compile_expr`]),
//! to any shape of AND, OR and NOT, and with the tests only the kernel can
//! make (`autobound`, `dev`, `fwmark`, `cgroup`).
//!
//! Four files, one concern each:
//! - this one, the compiler of [`Filter`]s: [`Filter`] -> clauses of tests
//!   ([`compile`]), and the entry points for expressions;
//! - `tree.rs`, the compiler of expressions: [`Expr`] -> a tree of tests;
//! - `emit.rs`, the emitter: clauses or trees -> `inet_diag_bc_op` bytes,
//!   with labels resolved into `no` offsets;
//! - [`kernel`], a model of the kernel's interpreter and audit that the
//!   tests and fuzz targets run compiled programs on.

mod emit;
pub mod kernel;
mod tree;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::filter::expr::Expr;
use crate::filter::{Filter, PortSpec, Prefix};
use crate::model::{Family, unspecified};

// `enum { INET_DIAG_BC_NOP, ... }` in include/uapi/linux/inet_diag.h: the
// ops sockwho emits, and NOP, which the kernel model knows too.
const BC_NOP: u8 = 0;
const BC_JMP: u8 = 1;
const BC_S_GE: u8 = 2;
const BC_S_LE: u8 = 3;
const BC_D_GE: u8 = 4;
const BC_D_LE: u8 = 5;
/// True when the local port was not bound explicitly (no
/// `SOCK_BINDPORT_LOCK` in the socket's `sk_userlocks`).
const BC_AUTO: u8 = 6;
const BC_S_COND: u8 = 7;
const BC_D_COND: u8 = 8;
/// `u32 ifindex` after the op: the device the socket is bound to.
const BC_DEV_COND: u8 = 9;
/// `struct inet_diag_markcond { u32 mark; u32 mask; }` after the op; the
/// kernel refuses it (EPERM) without CAP_NET_ADMIN.
const BC_MARK_COND: u8 = 10;
/// Later additions to the op set (Linux 4.16): a kernel without them
/// refuses the program (EINVAL), and `DiagSocket::dump_filtered` then dumps
/// without it.
const BC_S_EQ: u8 = 11;
const BC_D_EQ: u8 = 12;
/// `u64 cgroup_id` after the op (Linux 5.9, with CONFIG_SOCK_CGROUP_DATA).
const BC_CGROUP_COND: u8 = 13;

const AF_INET: u8 = libc::AF_INET as u8;
const AF_INET6: u8 = libc::AF_INET6 as u8;

/// The longest program an attribute can carry: `nla_len` is a u16 and
/// includes the 4-byte attribute header.
const MAX_LEN: usize = u16::MAX as usize - 4;

/// The filter's ports and addresses (`sport`, `dport`, `port`, `src`, `dst`
/// of [`Filter`]) as inet_diag bytecode for dumps of `family`; `None` when
/// there is nothing to filter in the kernel (or the program would not fit an
/// attribute: user space filters anyway).
///
/// Semantics are those of [`Filter::matches_socket`] for these fields: values
/// of one kind OR, kinds AND; `port` is the local or the remote port; `src`
/// is the local address, `dst` the remote one; a socket without a remote end
/// (a listener, an unconnected UDP socket) matches no `dst` and no remote
/// `port`. Prefixes of the other family never match, so a filter that can
/// match nothing in `family` compiles to a program that rejects everything.
///
/// IPv4-mapped IPv6 addresses count as IPv4, as in [`Prefix::contains`]. The
/// kernel does that itself: an `AF_INET` host condition tested on an
/// `AF_INET6` socket matches when the socket's address is `::ffff:a.b.c.d`
/// and `a.b.c.d` is inside the prefix (`inet_diag_bc_run()`), so an IPv4
/// prefix is sent as such in IPv6 dumps too. The reverse needs help: an IPv6
/// prefix that overlaps `::ffff:0:0/96` (`::/0`, `::/64`) would match mapped
/// addresses in the kernel, which compares all 128 bits, so it is sent with
/// "and the address is not mapped".
pub fn compile(filter: &Filter, family: Family) -> Option<Vec<u8>> {
    let clauses = [
        any_of(&filter.sport, |p| vec![port_range(Side::Local, *p)]),
        any_of(&filter.dport, |p| vec![port_range(Side::Remote, *p)]),
        any_of(&filter.port, |p| {
            let mut alternatives = vec![port_range(Side::Local, *p)];
            alternatives.extend(remote_port(*p, family));
            alternatives
        }),
        any_of(&filter.src, |p| host(Side::Local, p, family)),
        any_of(&filter.dst, |p| {
            let alternatives = host(Side::Remote, p, family);
            // A socket without a remote end shows 0.0.0.0:0 or [::]:0 to the
            // kernel; a prefix that holds that address must not match it.
            if p.contains(unspecified(family)) {
                with_remote_end(alternatives, family)
            } else {
                alternatives
            }
        }),
    ];
    let mut program = Vec::new();
    for clause in clauses {
        match clause {
            Clause::Always => {}
            Clause::Never => return Some(emit::reject_all()),
            Clause::AnyOf(alternatives) => program.push(alternatives),
        }
    }
    if program.is_empty() {
        return None;
    }
    emit::emit(&program).filter(|bytes| bytes.len() <= MAX_LEN)
}

/// A program for an expression, and what it is worth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The bytecode; `None` when the kernel has nothing to test (it sends
    /// the whole dump) or when the program would not fit an attribute.
    pub bytecode: Option<Vec<u8>>,
    /// Whether the kernel, running it, decides the expression alone: it
    /// sends exactly the sockets of the dump that match. `false` when the
    /// program approximates (a `state` predicate the dump's states do not
    /// settle; a `dev`, `cgroup` or `autobound` not resolved, see
    /// [`Expr::resolve`]; a program too long): it then sends every socket
    /// that matches and some that do not.
    ///
    /// A kernel may refuse a program: `fwmark` without CAP_NET_ADMIN
    /// (EPERM), `cgroup` before Linux 5.9 or without
    /// CONFIG_SOCK_CGROUP_DATA (EINVAL). On EINVAL
    /// [`DiagSocket::dump_filtered`](super::netlink::DiagSocket::dump_filtered)
    /// dumps again without the program, which user space can make up for
    /// only where the expression has no kernel-only predicate.
    pub exact: bool,
}

/// `expr` as inet_diag bytecode for dumps of `family` in the states
/// `expr.states()` allows (or fewer): [`compile_expr_in`]'s bytecode for
/// those states.
pub fn compile_expr(expr: &Expr, family: Family) -> Option<Vec<u8>> {
    compile_expr_in(expr, family, expr.states()).bytecode
}

/// `expr` as inet_diag bytecode for dumps of `family` whose state mask is
/// `states`. Every socket of such a dump that [`Expr::eval_with`] accepts
/// (whatever the kernel-only facts) the program accepts too; with
/// [`Program::exact`], no other. The meaning of each predicate is
/// `Expr`'s; a socket without a remote end is `0.0.0.0:0` / `[::]:0`
/// there as in the kernel. Predicates of the other family never match
/// (`src fe80::/10` in an IPv4 dump), and a program that can accept
/// nothing is one jump past the end.
pub fn compile_expr_in(expr: &Expr, family: Family, states: u32) -> Program {
    let (root, exact) = tree::lower(expr, family, states);
    let bytecode = match &root {
        tree::Node::True => {
            return Program {
                bytecode: None,
                exact,
            };
        }
        tree::Node::False => Some(emit::reject_all()),
        root => emit::emit_tree(root),
    };
    match bytecode.filter(|b| b.len() <= MAX_LEN) {
        Some(b) => Program {
            bytecode: Some(b),
            exact,
        },
        // a jump too long for a u16, or a program for an attribute
        None => Program {
            bytecode: None,
            exact: false,
        },
    }
}

/// The index of the network device `name` in the calling thread's network
/// namespace (`if_nametoindex(3)`), for [`Expr::resolve`].
pub fn if_index(name: &str) -> Option<u32> {
    let name = std::ffi::CString::new(name).ok()?;
    // SAFETY: a valid NUL-terminated string; the call only reads it.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    (index != 0).then_some(index)
}

/// The id the kernel gives the cgroup v2 at `path`, for [`Expr::resolve`]:
/// as ss's `get_cgroup2_id()`, `path` is a cgroup2 directory, or one under
/// the cgroup2 mount (`/system.slice`). The id is the directory's inode
/// number (kernfs numbers its nodes by id on 64-bit systems).
pub fn cgroup_id(path: &str) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    let of = |p: &std::path::Path| -> Option<u64> {
        let meta = std::fs::metadata(p).ok()?;
        (meta.is_dir() && is_cgroup2(p)).then(|| meta.ino())
    };
    if let Some(id) = of(std::path::Path::new(path)) {
        return Some(id);
    }
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mount = mounts.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let (_, dir, fstype) = (fields.next()?, fields.next()?, fields.next()?);
        // /proc/self/mounts writes blanks in paths as octal escapes
        (fstype == "cgroup2").then(|| dir.replace("\\040", " "))
    })?;
    of(&std::path::Path::new(&mount).join(path.trim_start_matches('/')))
}

/// Whether `path` is on a cgroup2 file system (`statfs(2)`).
fn is_cgroup2(path: &std::path::Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills the zeroed struct it is given; the path is a
    // valid NUL-terminated string.
    unsafe {
        let mut fs: libc::statfs = std::mem::zeroed();
        libc::statfs(c_path.as_ptr(), &mut fs) == 0
            && fs.f_type as u64 == libc::CGROUP2_SUPER_MAGIC as u64
    }
}

/// Which end of the socket a test looks at: the kernel's S_* and D_* ops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Local,
    Remote,
}

/// One test the kernel can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Test {
    /// `port == n`, `port >= n`, `port <= n`.
    PortEq(Side, u16),
    PortGe(Side, u16),
    PortLe(Side, u16),
    /// The address is inside `addr/len`: an `inet_diag_hostcond` of the
    /// address's family (`addr` is already masked to `len` bits).
    Host(Side, IpAddr, u8),
    /// `port == n` as a host condition with no address (`AF_UNSPEC`), as
    /// ss sends it: every kernel knows it, unlike S_EQ/D_EQ.
    HostPort(Side, u16),
    /// The local port was not bound explicitly.
    Auto,
    /// The socket is bound to the device of this index.
    Dev(u32),
    /// `mark & mask == mark` (the second is the mask).
    Mark(u32, u32),
    /// The socket belongs to the cgroup v2 of this id.
    Cgroup(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Literal {
    test: Test,
    negated: bool,
}

fn is(test: Test) -> Literal {
    Literal {
        test,
        negated: false,
    }
}

fn not(test: Test) -> Literal {
    Literal {
        test,
        negated: true,
    }
}

/// Tests that must all be true; empty is true.
type Conjunction = Vec<Literal>;

/// Alternatives of which one must be true; empty is false.
type Disjunction = Vec<Conjunction>;

/// One kind of filter (all its `sport`s, say), simplified.
enum Clause {
    Always,
    Never,
    AnyOf(Disjunction),
}

/// The OR of `values`, each turned into alternatives by `alternatives`; an
/// empty list filters nothing.
fn any_of<T>(values: &[T], alternatives: impl Fn(&T) -> Disjunction) -> Clause {
    if values.is_empty() {
        return Clause::Always;
    }
    let all: Disjunction = values.iter().flat_map(alternatives).collect();
    if all.iter().any(Vec::is_empty) {
        Clause::Always
    } else if all.is_empty() {
        Clause::Never
    } else {
        Clause::AnyOf(all)
    }
}

/// `lo <= port <= hi`, leaving out bounds every port meets.
fn port_range(side: Side, p: PortSpec) -> Conjunction {
    if p.lo == p.hi {
        return vec![is(Test::PortEq(side, p.lo))];
    }
    let mut tests = Vec::new();
    if p.lo > 0 {
        tests.push(is(Test::PortGe(side, p.lo)));
    }
    if p.hi < u16::MAX {
        tests.push(is(Test::PortLe(side, p.hi)));
    }
    tests
}

/// The socket has a remote end and its port is in `p`: `matches_socket`'s
/// `s.remote.is_some() && p.contains(remote_port)`. The kernel sees a
/// missing remote end as port 0, so only a range holding 0 needs more than
/// a port test.
fn remote_port(p: PortSpec, family: Family) -> Disjunction {
    let mut alternatives = Vec::new();
    if p.hi > 0 {
        let nonzero = PortSpec {
            lo: p.lo.max(1),
            hi: p.hi,
        };
        alternatives.push(port_range(Side::Remote, nonzero));
    }
    if p.lo == 0 {
        // port 0, with an address: a remote end all the same
        alternatives.push(vec![
            is(Test::PortEq(Side::Remote, 0)),
            not(unspecified_host(family)),
        ]);
    }
    alternatives
}

/// Each alternative, and the socket has a remote end: the decoder's
/// `remote` is `None` exactly when the remote port is 0 and the address is
/// unspecified, so "has one" is port >= 1 OR address specified.
fn with_remote_end(alternatives: Disjunction, family: Family) -> Disjunction {
    let mut out = Vec::new();
    for conjunction in alternatives {
        for extra in [
            is(Test::PortGe(Side::Remote, 1)),
            not(unspecified_host(family)),
        ] {
            let mut c = conjunction.clone();
            c.push(extra);
            out.push(c);
        }
    }
    out
}

/// The remote address is 0.0.0.0 or `::`, as the kernel holds it for a
/// socket without a remote end.
fn unspecified_host(family: Family) -> Test {
    match unspecified(family) {
        IpAddr::V4(a) => Test::Host(Side::Remote, IpAddr::V4(a), 32),
        IpAddr::V6(a) => Test::Host(Side::Remote, IpAddr::V6(a), 128),
    }
}

/// The address on `side` is inside `prefix`, as [`Prefix::contains`] has it:
/// mapped socket addresses are IPv4, and the prefix is compared in the form
/// [`Prefix::canonical`] gives it (a mapped one of /96 or longer is IPv4).
fn host(side: Side, prefix: &Prefix, family: Family) -> Disjunction {
    let Prefix { addr, len } = prefix.canonical();
    let cond = Test::Host(side, mask(addr, len), len);
    match (family, addr) {
        // The kernel matches an AF_INET condition against AF_INET sockets,
        // and against the IPv4-mapped addresses of AF_INET6 sockets.
        (_, IpAddr::V4(_)) => vec![vec![is(cond)]],
        // An IPv6 prefix never matches an IPv4 socket (the kernel agrees:
        // the families differ), so leave it out of IPv4 dumps.
        (Family::Inet, IpAddr::V6(_)) => vec![],
        (Family::Inet6, IpAddr::V6(a)) if overlaps_mapped(a, len) => {
            // `AF_INET 0.0.0.0/0` on an AF_INET6 socket: "address mapped".
            let mapped = Test::Host(side, IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
            vec![vec![is(cond), not(mapped)]]
        }
        (Family::Inet6, IpAddr::V6(_)) => vec![vec![is(cond)]],
    }
}

/// Whether `addr/len` holds some IPv4-mapped address (`::ffff:0:0/96`).
fn overlaps_mapped(addr: Ipv6Addr, len: u8) -> bool {
    let bits = u32::from(len.min(96));
    let m = if bits == 0 {
        0
    } else {
        u128::MAX << (128 - bits)
    };
    let block = u128::from(Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0));
    u128::from(addr) & m == block & m
}

/// `addr` with the bits past `len` cleared. The kernel ignores them
/// (`bitstring_match()`), but a dump of the program reads better.
fn mask(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(a) & m))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    //! The compiler's tests: its programs, run on the kernel model, must
    //! accept exactly the sockets `Filter::matches_socket` does. The
    //! synthetic sockets, filters and ops here serve the emitter's tests
    //! too, and the sockets `filter::expr`'s.

    use std::net::SocketAddr;

    use super::kernel::{audit, entry, run};
    use super::*;
    use crate::model::{Endpoint, Proto, Socket, State, Timer};

    pub(crate) fn sock(local: &str, remote: Option<&str>) -> Socket {
        let local: SocketAddr = local.parse().unwrap();
        let remote: Option<SocketAddr> = remote.map(|r| r.parse().unwrap());
        let family = if local.is_ipv4() {
            Family::Inet
        } else {
            Family::Inet6
        };
        if let Some(r) = remote {
            assert_eq!(r.is_ipv4(), local.is_ipv4(), "one family per socket");
            // the decoder never makes one of these: it is "no remote end"
            assert!(!(r.port() == 0 && r.ip().is_unspecified()));
        }
        Socket {
            proto: Proto::Tcp,
            family,
            state: if remote.is_some() {
                State::Established
            } else {
                State::Listen
            },
            recv_q: 0,
            send_q: 0,
            backlog: None,
            local: Endpoint::new(local.ip(), local.port()),
            remote: remote.map(|r| Endpoint::new(r.ip(), r.port())),
            uid: 0,
            inode: 1,
            cookie: None,
            timer: Timer::OFF,
            v6only: None,
            processes: Vec::new(),
            closed: false,
            owner_gone: false,
            ended: None,
            tcp_info: None,
        }
    }

    pub(super) fn sockets() -> Vec<Socket> {
        let pairs: &[(&str, Option<&str>)] = &[
            ("0.0.0.0:22", None),
            ("127.0.0.1:4000", None),
            ("0.0.0.0:0", None),
            ("0.0.0.0:68", None),
            ("127.0.0.1:4000", Some("127.0.0.1:40000")),
            ("127.0.0.1:40000", Some("127.0.0.1:4000")),
            ("10.1.2.3:22", Some("192.168.1.5:51000")),
            ("10.1.2.3:40001", Some("8.8.8.8:443")),
            ("127.0.0.2:4003", Some("127.0.0.2:33000")),
            ("10.0.0.1:5000", Some("10.0.0.2:0")),
            ("10.0.0.1:5001", Some("0.0.0.0:53")),
            ("192.168.1.1:65535", Some("10.9.9.9:1")),
            ("[::]:22", None),
            ("[::]:0", None),
            ("[::ffff:10.0.0.1]:5000", None),
            ("[::1]:4002", Some("[::1]:45000")),
            ("[::1]:45000", Some("[::1]:4002")),
            ("[::ffff:127.0.0.1]:4004", Some("[::ffff:127.0.0.1]:41000")),
            ("[::ffff:10.1.2.3]:80", Some("[::ffff:192.168.1.5]:50000")),
            ("[fe80::1]:22", Some("[fe80::2]:50001")),
            ("[2001:db8::1]:443", Some("[2001:db8:1::9]:60000")),
            ("[::ffff:0.0.0.0]:7", Some("[::ffff:0.0.0.0]:0")),
            ("[::]:5353", Some("[::]:53")),
            ("[::1]:6000", Some("[::1]:0")),
            ("[::fffe:1.2.3.4]:1", Some("[::1]:2")),
            ("[::1]:4001", Some("[::ffff:127.0.0.1]:0")),
        ];
        pairs.iter().map(|(l, r)| sock(l, *r)).collect()
    }

    const PORTS: &[&str] = &[
        "0",
        "0-10",
        "1",
        "22",
        "53",
        "80",
        "443",
        "4000",
        "4000-4001",
        "4002",
        "1-65535",
        "0-65535",
        "65535",
        "1000-2000",
        "32768-60999",
        "40000-65535",
        "0-4000",
    ];

    const PREFIXES: &[&str] = &[
        "0.0.0.0/0",
        "0.0.0.0",
        "0.0.0.0/8",
        "10.0.0.0/8",
        "10.1.2.3",
        "127.0.0.0/8",
        "127.0.0.1",
        "127.0.0.2/32",
        "192.168.1.0/24",
        "8.8.8.8/32",
        "::/0",
        "::",
        "::/8",
        "::/64",
        "::/80",
        "::/96",
        "::1",
        "fe80::/10",
        "2001:db8::/32",
        "::ffff:0:0/96",
        "::ffff:10.0.0.0/104",
        "::ffff:127.0.0.1",
        "::fffe:0:0/95",
        "::ffff:0.0.0.0/128",
    ];

    pub(super) fn ports(list: &[&str]) -> Vec<PortSpec> {
        list.iter()
            .map(|p| PortSpec::parse(p, |_| None).unwrap())
            .collect()
    }

    pub(super) fn prefixes(list: &[&str]) -> Vec<Prefix> {
        list.iter().map(|p| p.parse().unwrap()).collect()
    }

    /// Runs the compiled program of `filter` on every socket and insists it
    /// agrees with `Filter::matches_socket`; returns how many it accepted.
    pub(super) fn check(name: &str, filter: &Filter, sockets: &[Socket]) -> usize {
        let mut accepted = 0;
        for family in [Family::Inet, Family::Inet6] {
            let program = compile(filter, family);
            if let Some(bc) = &program {
                audit(bc).unwrap_or_else(|e| panic!("{name} ({family:?}): audit: {e}: {bc:?}"));
            }
            for s in sockets.iter().filter(|s| s.family == family) {
                let kernel = program.as_deref().is_none_or(|bc| run(bc, &entry(s)));
                assert_eq!(
                    kernel,
                    filter.matches_socket(s),
                    "{name} on {:?} -> {:?}: {program:?}",
                    s.local,
                    s.remote
                );
                accepted += usize::from(kernel);
            }
        }
        accepted
    }

    /// xorshift64: enough randomness for picking filters, reproducibly.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }

        fn pick<'a>(&mut self, from: &[&'a str]) -> Vec<&'a str> {
            // most kinds unused, like on a command line
            let n = [0, 0, 0, 1, 1, 2, 3][self.below(7)];
            (0..n).map(|_| from[self.below(from.len())]).collect()
        }
    }

    pub(super) fn op(code: u8, yes: u8, no: u16) -> Vec<u8> {
        let [a, b] = no.to_ne_bytes();
        vec![code, yes, a, b]
    }

    pub(super) fn concat(parts: &[Vec<u8>]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn nothing_to_filter_and_nothing_to_match() {
        assert_eq!(compile(&Filter::default(), Family::Inet), None);
        let everything = Filter {
            sport: ports(&["22", "0-65535"]),
            states: Some(State::Listen.bit()),
            pid: vec![1],
            ..Filter::default()
        };
        assert_eq!(compile(&everything, Family::Inet6), None);
        // an IPv6 prefix in an IPv4 dump: one jump past the end
        let v6 = Filter {
            sport: ports(&["22"]),
            src: prefixes(&["fe80::/10"]),
            ..Filter::default()
        };
        assert_eq!(compile(&v6, Family::Inet), Some(op(BC_JMP, 4, 8)));
        audit(&op(BC_JMP, 4, 8)).unwrap();
        assert!(!run(&op(BC_JMP, 4, 8), &entry(&sock("1.2.3.4:22", None))));
    }

    #[test]
    fn mapped_addresses() {
        let mapped = sock("[::ffff:10.1.2.3]:80", Some("[::ffff:192.168.1.5]:50000"));
        let native = sock("10.1.2.3:80", Some("192.168.1.5:50000"));
        let f = Filter {
            src: prefixes(&["10.0.0.0/8"]),
            dst: prefixes(&["192.168.0.0/16"]),
            ..Filter::default()
        };
        for s in [&mapped, &native] {
            assert!(run(&compile(&f, s.family).unwrap(), &entry(s)));
        }
        // ::/0 holds mapped addresses for the kernel, not for Prefix::contains
        let f = Filter {
            src: prefixes(&["::/0"]),
            ..Filter::default()
        };
        let bc = compile(&f, Family::Inet6).unwrap();
        assert!(!run(&bc, &entry(&mapped)));
        assert!(run(&bc, &entry(&sock("[::1]:1", None))));
    }

    /// Issue 13, item 5: an IPv4-mapped address with a prefix shorter than
    /// /96 is the IPv6 prefix it spells (`::ffff:127.0.0.1/64` is `::/64`,
    /// `::ffff:0:0/95` is `::fffe:0:0/95`), in user space and in the kernel;
    /// it was narrowed to the mapped IPv4 host (127.0.0.1/32, 0.0.0.0/32).
    #[test]
    fn mapped_prefix_shorter_than_96_is_ipv6() {
        let src = |p: &str| Filter {
            src: prefixes(&[p]),
            ..Filter::default()
        };
        let v4 = sock("127.0.0.1:4000", Some("127.0.0.1:40000"));
        let mapped = sock("[::ffff:127.0.0.1]:4004", Some("[::ffff:127.0.0.1]:41000"));
        let v6 = sock("[::1]:4002", Some("[::1]:45000"));
        let slash64 = src("::ffff:127.0.0.1/64");
        assert!(!slash64.matches_socket(&v4));
        // mapped addresses are IPv4, which no IPv6 prefix holds (as ::/64)
        assert!(!slash64.matches_socket(&mapped));
        assert!(slash64.matches_socket(&v6));
        let slash95 = src("::ffff:0:0/95");
        assert!(!slash95.matches_socket(&sock("0.0.0.0:22", None)));
        assert!(!slash95.matches_socket(&sock("[::ffff:0.0.0.0]:7", Some("[::ffff:0.0.0.0]:0"))));
        assert!(slash95.matches_socket(&sock("[::fffe:1.2.3.4]:1", Some("[::1]:2"))));
        // the kernel gets the programs of the IPv6 prefixes they are
        for family in [Family::Inet, Family::Inet6] {
            assert_eq!(compile(&slash64, family), compile(&src("::/64"), family));
            assert_eq!(
                compile(&slash95, family),
                compile(&src("::fffe:0:0/95"), family)
            );
        }
        // from /96 on, the IPv4 prefix they map (e860f98)
        assert_eq!(
            compile(&src("::ffff:127.0.0.1/104"), Family::Inet6),
            compile(&src("127.0.0.0/8"), Family::Inet6)
        );
        let mut sockets = sockets();
        sockets.extend([v4, mapped, v6]);
        let mut accepted = 0;
        for p in [
            "::ffff:127.0.0.1/64",
            "::ffff:0:0/95",
            "::ffff:10.0.0.0/80",
            "::ffff:0:0/0",
            "::ffff:127.0.0.1/96",
            "::ffff:127.0.0.1/127",
        ] {
            let dst = Filter {
                dst: prefixes(&[p]),
                ..Filter::default()
            };
            accepted += check(&format!("src {p}"), &src(p), &sockets);
            accepted += check(&format!("dst {p}"), &dst, &sockets);
        }
        assert!(accepted > 0);
    }

    #[test]
    fn too_long_for_an_attribute() {
        let many = |n: u16| Filter {
            sport: (1..=n).map(|p| PortSpec { lo: p, hi: p }).collect(),
            ..Filter::default()
        };
        // 12 bytes a port (S_EQ and a jump), 8 for the last
        let bc = compile(&many(5000), Family::Inet).unwrap();
        assert_eq!(bc.len(), 12 * 5000 - 4);
        audit(&bc).unwrap();
        assert!(run(&bc, &entry(&sock("1.1.1.1:4999", None))));
        assert!(!run(&bc, &entry(&sock("1.1.1.1:5001", None))));
        assert_eq!(compile(&many(6000), Family::Inet), None);
    }

    #[test]
    fn agrees_with_matches_socket_on_a_table() {
        let sockets = sockets();
        let table: Vec<(&str, Filter)> = vec![
            (
                "sport 22",
                Filter {
                    sport: ports(&["22"]),
                    ..Filter::default()
                },
            ),
            (
                "dport 0",
                Filter {
                    dport: ports(&["0"]),
                    ..Filter::default()
                },
            ),
            (
                "port 0",
                Filter {
                    port: ports(&["0"]),
                    ..Filter::default()
                },
            ),
            (
                "port 0-10",
                Filter {
                    port: ports(&["0-10"]),
                    ..Filter::default()
                },
            ),
            (
                "port 4000-4002",
                Filter {
                    port: ports(&["4000-4002"]),
                    ..Filter::default()
                },
            ),
            (
                "src 127/8",
                Filter {
                    src: prefixes(&["127.0.0.0/8"]),
                    ..Filter::default()
                },
            ),
            (
                "src ::/0",
                Filter {
                    src: prefixes(&["::/0"]),
                    ..Filter::default()
                },
            ),
            (
                "src ::/80",
                Filter {
                    src: prefixes(&["::/80"]),
                    ..Filter::default()
                },
            ),
            (
                "dst 0/0",
                Filter {
                    dst: prefixes(&["0.0.0.0/0"]),
                    ..Filter::default()
                },
            ),
            (
                "dst ::/0",
                Filter {
                    dst: prefixes(&["::/0"]),
                    ..Filter::default()
                },
            ),
            (
                "dst ::",
                Filter {
                    dst: prefixes(&["::"]),
                    ..Filter::default()
                },
            ),
            (
                "dst 0.0.0.0",
                Filter {
                    dst: prefixes(&["0.0.0.0"]),
                    ..Filter::default()
                },
            ),
            (
                "src v4 or v6",
                Filter {
                    src: prefixes(&["10.0.0.0/8", "::1", "fe80::/10"]),
                    ..Filter::default()
                },
            ),
            (
                "sport 4000 and dst 127.0.0.1",
                Filter {
                    sport: ports(&["4000"]),
                    dst: prefixes(&["127.0.0.1"]),
                    ..Filter::default()
                },
            ),
            (
                "everything at once",
                Filter {
                    sport: ports(&["1-65535", "0"]),
                    dport: ports(&["40000-65535", "0", "53"]),
                    port: ports(&["0-4000", "65535"]),
                    src: prefixes(&["0.0.0.0/0", "::/0"]),
                    dst: prefixes(&["0.0.0.0/0", "::/64"]),
                    ..Filter::default()
                },
            ),
        ];
        let mut accepted = 0;
        for (name, filter) in &table {
            accepted += check(name, filter, &sockets);
        }
        assert!(accepted > 0);
    }

    #[test]
    fn agrees_with_matches_socket_on_random_filters() {
        let sockets = sockets();
        let mut rng = Rng(0x5eed_50c4_d1a6);
        let (mut accepted, mut filtered) = (0, 0);
        for i in 0..3000 {
            let f = Filter {
                sport: ports(&rng.pick(PORTS)),
                dport: ports(&rng.pick(PORTS)),
                port: ports(&rng.pick(PORTS)),
                src: prefixes(&rng.pick(PREFIXES)),
                dst: prefixes(&rng.pick(PREFIXES)),
                ..Filter::default()
            };
            filtered += usize::from(compile(&f, Family::Inet6).is_some());
            accepted += check(&format!("random filter {i}: {f:?}"), &f, &sockets);
        }
        // the draw exercised both outcomes
        assert!(accepted > 1000 && filtered > 1000, "{accepted} {filtered}");
    }
}
