//! ss's filter expressions on real sockets in a private namespace: for
//! each expression, `ss -tanH EXPR` and `ss -uanH EXPR` list the same
//! sockets as sockwho's parser and matcher pick from an unfiltered dump,
//! and as the kernel sends running sockwho's bytecode. Sockets compare by
//! (local, remote) address and port; no remote end is `0.0.0.0:0` or
//! `[::]:0`, as ss prints `*`.
//!
//! The sockets: TCP listeners on several ports and addresses (dual-stack,
//! v6-only, bound to a device, with a mark, one on a port the kernel
//! chose), connections to them over IPv4, IPv6 and IPv4-mapped IPv6, one
//! from an explicitly bound port, one bound to `lo`, one half closed
//! (FIN-WAIT-2 / CLOSE-WAIT), one in TIME-WAIT; UDP sockets bound and
//! connected; and, where a cgroup can be made, a connection from a shell
//! in a cgroup of its own.

use std::any::Any;
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream, UdpSocket,
};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use sockwho::collect::bytecode::{self, Program};
use sockwho::collect::names::Services;
use sockwho::collect::netlink::DiagSocket;
use sockwho::filter::PortSpec;
use sockwho::filter::expr::{Lookup, Query, parse_with, read_filter_file};
use sockwho::model::{Family, Proto, Socket, State};

use crate::harness::{Netns, can_use_netns};

type Key = (SocketAddr, SocketAddr);

type Keep = Vec<Box<dyn Any + Send>>;

fn key(s: &Socket) -> Key {
    let remote = s
        .remote
        .map_or(SocketAddr::new(unspecified(s.family), 0), |r| {
            SocketAddr::new(r.addr, r.port)
        });
    (SocketAddr::new(s.local.addr, s.local.port), remote)
}

fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Socket options set before `bind`.
#[derive(Default, Clone, Copy)]
struct Opts<'a> {
    mark: Option<u32>,
    device: Option<&'a str>,
    v6only: Option<bool>,
}

fn check(rc: libc::c_int, what: &str) {
    assert!(rc >= 0, "{what}: {}", std::io::Error::last_os_error());
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(*a.ip()).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than sockaddr_in and aligned for it.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A socket of `ty` bound to `addr` with `opts`.
fn bound(addr: SocketAddr, ty: libc::c_int, opts: Opts) -> OwnedFd {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain system calls on a descriptor this function owns.
    unsafe {
        let fd = libc::socket(domain, ty | libc::SOCK_CLOEXEC, 0);
        check(fd, "socket");
        let fd = OwnedFd::from_raw_fd(fd);
        let int = |level, name, value: libc::c_int| {
            let rc = libc::setsockopt(
                fd.as_raw_fd(),
                level,
                name,
                &value as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
            check(rc, "setsockopt");
        };
        int(libc::SOL_SOCKET, libc::SO_REUSEADDR, 1);
        if let Some(mark) = opts.mark {
            int(libc::SOL_SOCKET, libc::SO_MARK, mark as libc::c_int);
        }
        if let Some(v6only) = opts.v6only {
            int(
                libc::IPPROTO_IPV6,
                libc::IPV6_V6ONLY,
                libc::c_int::from(v6only),
            );
        }
        if let Some(device) = opts.device {
            let rc = libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                device.as_ptr() as *const libc::c_void,
                device.len() as libc::socklen_t,
            );
            check(rc, "SO_BINDTODEVICE");
        }
        let (sa, len) = sockaddr(addr);
        check(
            libc::bind(
                fd.as_raw_fd(),
                &sa as *const _ as *const libc::sockaddr,
                len,
            ),
            &format!("bind {addr}"),
        );
        fd
    }
}

fn listener(addr: &str, opts: Opts) -> TcpListener {
    let fd = bound(addr.parse().unwrap(), libc::SOCK_STREAM, opts);
    // SAFETY: a bound stream socket this function owns.
    check(unsafe { libc::listen(fd.as_raw_fd(), 64) }, "listen");
    TcpListener::from(fd)
}

/// A connection to `to` from `from` (port 0: the kernel picks it), and its
/// accepted end from `l`.
fn connection(l: &TcpListener, from: &str, to: SocketAddr, opts: Opts) -> (TcpStream, TcpStream) {
    let fd = bound(from.parse().unwrap(), libc::SOCK_STREAM, opts);
    let (sa, len) = sockaddr(to);
    // SAFETY: a bound stream socket this function owns.
    let rc = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            &sa as *const _ as *const libc::sockaddr,
            len,
        )
    };
    check(rc, &format!("connect {from} -> {to}"));
    let (accepted, _) = l.accept().unwrap();
    (TcpStream::from(fd), accepted)
}

fn udp(addr: &str, opts: Opts) -> UdpSocket {
    UdpSocket::from(bound(addr.parse().unwrap(), libc::SOCK_DGRAM, opts))
}

/// The sockets of the module doc, in the calling thread's namespace.
fn open_sockets() -> Keep {
    let mut keep: Keep = Vec::new();
    let none = Opts::default();
    let l22 = listener("127.0.0.1:22", none);
    let l80 = listener(
        "0.0.0.0:80",
        Opts {
            mark: Some(0x10),
            ..none
        },
    );
    let l443 = listener(
        "[::]:443",
        Opts {
            v6only: Some(false),
            ..none
        },
    );
    let l5000 = listener(
        "[::]:5000",
        Opts {
            v6only: Some(true),
            ..none
        },
    );
    let l2121 = listener("10.9.0.1:2121", none);
    let l3000 = listener("[fd00::1]:3000", none);
    let l7000 = listener(
        "0.0.0.0:7000",
        Opts {
            device: Some("sw0"),
            ..none
        },
    );
    let auto = listener("127.0.0.1:0", none);
    let at = |l: &TcpListener, host: &str| {
        SocketAddr::new(host.parse().unwrap(), l.local_addr().unwrap().port())
    };
    let v4 = "0.0.0.0:0";
    let v6 = "[::]:0";
    let mut connect = |l: &TcpListener, from: &str, to: SocketAddr, opts: Opts, n: usize| {
        for _ in 0..n {
            keep.push(Box::new(connection(l, from, to, opts)));
        }
    };
    connect(&l22, v4, at(&l22, "127.0.0.1"), none, 2);
    connect(
        &l22,
        v4,
        at(&l22, "127.0.0.1"),
        Opts {
            mark: Some(0x11),
            ..none
        },
        1,
    );
    connect(
        &l22,
        v4,
        at(&l22, "127.0.0.1"),
        Opts {
            device: Some("lo"),
            ..none
        },
        1,
    );
    connect(&l80, v4, at(&l80, "127.0.0.1"), none, 2);
    connect(&l80, "127.0.0.2:1500", at(&l80, "127.0.0.1"), none, 1);
    connect(&l443, v4, at(&l443, "127.0.0.1"), none, 2);
    connect(&l443, v6, at(&l443, "::1"), none, 2);
    connect(&l2121, "10.9.0.1:0", at(&l2121, "10.9.0.1"), none, 2);
    connect(&l3000, "[fd00::1]:0", at(&l3000, "fd00::1"), none, 2);
    connect(&l5000, v6, at(&l5000, "::1"), none, 1);
    // half closed: the client in FIN-WAIT-2, the server's end in CLOSE-WAIT
    let (half, half_accepted) = connection(&l80, v4, at(&l80, "127.0.0.1"), none);
    half.shutdown(Shutdown::Write).unwrap();
    // closed by the client first: it waits in TIME-WAIT
    let (mut gone, mut gone_accepted) = connection(&l22, v4, at(&l22, "127.0.0.1"), none);
    gone.write_all(b"bye").unwrap();
    drop(gone);
    let mut buf = Vec::new();
    gone_accepted.read_to_end(&mut buf).unwrap();
    drop(gone_accepted);
    keep.push(Box::new((half, half_accepted)));
    let u53 = udp("127.0.0.1:53", none);
    let u5353 = udp(
        "[::]:5353",
        Opts {
            mark: Some(0x20),
            ..none
        },
    );
    let u40001 = udp("127.0.0.1:40001", none);
    u40001.connect("127.0.0.1:53").unwrap();
    let u6 = udp("[::1]:0", none);
    u6.connect("[::1]:5353").unwrap();
    let ulo = udp(
        "0.0.0.0:6000",
        Opts {
            device: Some("lo"),
            ..none
        },
    );
    keep.push(Box::new((u53, u5353, u40001, u6, ulo)));
    keep.push(Box::new((l22, l80, l443, l5000, l2121, l3000, l7000, auto)));
    keep
}

/// A shell in a cgroup of its own holding a connection to 127.0.0.1:22,
/// and the cgroup's path under the cgroup2 mount; `None` where a cgroup
/// cannot be made (no cgroup2 mount, or a read-only one).
struct CgroupShell {
    child: Child,
    dir: std::path::PathBuf,
    path: String,
}

impl CgroupShell {
    fn start(ns: &Netns) -> Option<CgroupShell> {
        let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
        let mount = mounts.lines().find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| f[1].to_string())
        })?;
        let path = format!("/sockwho-ssfilter-{}", std::process::id());
        let dir = std::path::Path::new(&mount).join(&path[1..]);
        if let Err(e) = std::fs::create_dir(&dir) {
            eprintln!("ssfilter: no cgroup test: mkdir {}: {e}", dir.display());
            return None;
        }
        let script = format!(
            "echo $$ > {}/cgroup.procs && exec 3<>/dev/tcp/127.0.0.1/22 && echo ready && read x",
            dir.display()
        );
        // nsenter enters the network namespace alone: `ip netns exec`
        // mounts a /sys of its own, without the cgroup mounts under it
        let spawned = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{}", ns.name))
            .args(["bash", "-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn();
        let child = match spawned {
            Ok(child) => child,
            Err(e) => {
                eprintln!("ssfilter: no cgroup test: nsenter bash: {e}");
                let _ = std::fs::remove_dir(&dir);
                return None;
            }
        };
        let mut shell = CgroupShell { child, dir, path };
        let mut ready = [0u8; 6];
        let out = shell.child.stdout.as_mut()?;
        match out.read_exact(&mut ready) {
            Ok(()) if &ready == b"ready\n" => Some(shell),
            _ => {
                eprintln!("ssfilter: no cgroup test: the shell did not connect");
                None
            }
        }
    }
}

impl Drop for CgroupShell {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// What `ss` lists: the last two columns of each line, `*` for no port or
/// the IPv6 any-address, `%DEV` left out.
fn ss(ns: &Netns, flags: &str, args: &[String]) -> BTreeSet<Key> {
    let mut argv = vec!["ss", flags];
    argv.extend(args.iter().map(String::as_str));
    // in the network namespace alone, so that ss finds the cgroup mount
    // (see CgroupShell::start); `ip netns exec` where there is no nsenter
    let out = match Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", ns.name))
        .args(&argv)
        .output()
    {
        Ok(out) => out,
        Err(_) => ns.exec(&argv),
    };
    assert!(
        out.status.success(),
        "{argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let addr = |text: &str| -> SocketAddr {
        let (host, port) = text.rsplit_once(':').unwrap_or_else(|| panic!("{text}"));
        let host = host.split('%').next().unwrap_or(host);
        let port = if port == "*" {
            0
        } else {
            port.parse().unwrap()
        };
        let ip: IpAddr = match host {
            "*" => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            h if h.starts_with('[') => h.trim_matches(['[', ']']).parse().unwrap(),
            h => h.parse().unwrap_or_else(|_| panic!("{text}")),
        };
        SocketAddr::new(ip, port)
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            assert!(f.len() >= 2, "{line}");
            (addr(f[f.len() - 2]), addr(f[f.len() - 1]))
        })
        .collect()
}

/// What the sockwho binary lists for `sockwho FLAGS --format json EXPR`.
fn binary(ns: &Netns, flags: &str, args: &[String]) -> BTreeSet<Key> {
    let flags = flags.trim_end_matches('H');
    let mut argv = vec![flags, "--format", "json"];
    argv.extend(args.iter().map(String::as_str));
    let out = ns.sockwho(&argv);
    assert!(
        out.status.success(),
        "sockwho {argv:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    doc["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let end = |e: &serde_json::Value| {
                SocketAddr::new(
                    e["addr"].as_str().unwrap().parse().unwrap(),
                    e["port"].as_u64().unwrap() as u16,
                )
            };
            let family = if s["family"] == "inet" {
                Family::Inet
            } else {
                Family::Inet6
            };
            let remote = if s["remote"].is_null() {
                SocketAddr::new(unspecified(family), 0)
            } else {
                end(&s["remote"])
            };
            (end(&s["local"]), remote)
        })
        .collect()
}

fn all_states(proto: Proto) -> u32 {
    match proto {
        Proto::Tcp => State::ALL.iter().fold(0, |m, s| m | s.bit()),
        Proto::Udp => State::Established.bit() | State::Close.bit(),
    }
}

/// sockwho's answers for one expression and protocol.
#[derive(Debug, Default)]
struct Ours {
    /// `Expr::eval` said yes, on the unfiltered dump.
    user: BTreeSet<Key>,
    /// `Expr::eval` could not tell (a kernel-only predicate).
    undecided: BTreeSet<Key>,
    /// What the kernel sent with the bytecode.
    kernel: BTreeSet<Key>,
    /// Whether every family's program was exact.
    exact: bool,
    /// Whether the expression has a kernel-only predicate.
    kernel_only: bool,
}

fn ours(diag: &mut DiagSocket, query: &Query, proto: Proto) -> Ours {
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let range: Vec<u16> = range
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    let lookup = Lookup {
        if_index: &bytecode::if_index,
        cgroup_id: &bytecode::cgroup_id,
        port_range: PortSpec {
            lo: range[0],
            hi: range[1],
        },
    };
    let mut expr = query.expr.clone();
    if let Some(e) = &mut expr {
        e.resolve(&lookup).unwrap();
    }
    let states = query.dump_states(all_states(proto)) & all_states(proto);
    let families = match query.family {
        Some(f) => vec![f],
        None => vec![Family::Inet, Family::Inet6],
    };
    let mut o = Ours {
        exact: true,
        kernel_only: expr.as_ref().is_some_and(|e| e.kernel_only().is_some()),
        ..Ours::default()
    };
    for family in families {
        let mut all = Vec::new();
        diag.dump(family, proto, all_states(proto), &mut all)
            .unwrap();
        for s in all.iter().filter(|s| s.state.bit() & states != 0) {
            match expr.as_ref().map_or(Some(true), |e| e.eval(s)) {
                Some(true) => {
                    o.user.insert(key(s));
                }
                None => {
                    o.undecided.insert(key(s));
                }
                Some(false) => {}
            }
        }
        if states == 0 {
            continue;
        }
        let Program { bytecode, exact } = match &expr {
            Some(e) => bytecode::compile_expr_in(e, family, states),
            None => Program {
                bytecode: None,
                exact: true,
            },
        };
        o.exact &= exact;
        let mut sent = Vec::new();
        diag.dump_filtered(family, proto, states, bytecode.as_deref(), &mut sent)
            .unwrap();
        o.kernel.extend(sent.iter().map(key));
    }
    o
}

const TCP: &[&str] = &[
    "",
    "state established",
    "state established ( dport = :ssh or sport = :ssh )",
    "exclude listening sport gt :1024 and not dst 10.0.0.0/8",
    "exclude listening sport gt :1024 and not dst 10.9.0.0/16",
    "state listening",
    "state connected",
    "state synchronized",
    "state bucket",
    "state big",
    "state time-wait",
    "state fin-wait-2 state close-wait",
    "exclude established",
    "exclude established exclude listening",
    "state listening exclude listening state time-wait",
    "sport = :22",
    "sport == 22",
    "sport eq :ssh",
    "dport != :22",
    "dport = :0",
    "sport < :1024",
    "sport le :443",
    "sport > :5000",
    "sport >= :3000 and sport <= :7000",
    "dport lt :1000 and dport gt :0",
    "src 127.0.0.1",
    "src 127.0.0.1:22",
    "dst 127.0.0.1:22",
    "src = 127.0.0.2",
    "src [::1]:443",
    "dst [::1]",
    "dst ::1/128",
    "src *:443",
    "src :80",
    "dst 10.9.0.0/24",
    "src 10.9/16",
    "dst fd00::/64",
    "src fd00::1/128:3000",
    "dst 0.0.0.0",
    "dst 127.0.0.0/8",
    "src 127.0.0.0/8 and not src 127.0.0.1",
    "sport = :22 or sport = :80 and dport = :0",
    "not sport = :22",
    "! ( sport = :22 || sport = :80 )",
    "sport = :22 && dst 127.0.0.1",
    "( sport = :22 ) ( dport != :0 )",
    "( sport = :443 or dport = :443 ) and not dst 127.0.0.1",
    "src ::/0",
    "src [::ffff:127.0.0.1]",
    "autobound",
    "not autobound",
    "autobound and dst 127.0.0.1",
    "dev = sw0",
    "dev sw0 or dev lo",
    "dev != lo",
    "state established dev lo",
    "fwmark = 0x10",
    "fwmark = 0x10/0xf0",
    "fwmark != 0x11",
    "src inet:127.0.0.1",
    "sport = inet6::443",
];

const UDP: &[&str] = &[
    "",
    "sport = :53",
    "dst 127.0.0.1:53",
    "state established",
    "state unconnected",
    "dport = :0",
    "autobound",
    "dev lo",
    "fwmark 0x20",
    "src [::]:5353",
    "not src 127.0.0.1",
];

/// Who lists sockets the other does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Ss,
    Sockwho,
}

/// Where sockwho differs from ss on purpose (see `filter::expr`'s doc):
/// the expression, the protocol, who lists more, and which sockets.
type Difference = (&'static str, Proto, Who, fn(&Key) -> bool);

fn differences() -> Vec<Difference> {
    vec![
        // ss's `not autobound` is not the opposite of its `autobound`: a
        // port bound explicitly inside the range is neither to ss...
        ("not autobound", Proto::Udp, Who::Sockwho, |k| {
            k.0.port() == 40001
        }),
        // ... nor is the end of an accepted connection (autobound to the
        // kernel, outside the range)
        ("not autobound", Proto::Tcp, Who::Sockwho, |k| {
            k.1.port() != 0 && [22, 80, 443, 2121, 3000, 5000].contains(&k.0.port())
        }),
        // ss's ::/0 holds IPv4-mapped addresses
        ("src ::/0", Proto::Tcp, Who::Ss, |k| mapped(k.0.ip())),
        // sockwho's ::ffff:127.0.0.1 is 127.0.0.1, which native IPv4
        // sockets have too
        ("src [::ffff:127.0.0.1]", Proto::Tcp, Who::Sockwho, |k| {
            k.0.is_ipv4()
        }),
    ]
}

fn mapped(ip: IpAddr) -> bool {
    matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some())
}

fn split(expr: &str) -> Vec<String> {
    expr.split_whitespace().map(String::from).collect()
}

#[test]
fn expressions_select_what_ss_selects() {
    if !can_use_netns("ssfilter::expressions_select_what_ss_selects") {
        return;
    }
    let ns = Netns::new("ssfilter");
    for cmd in [
        // a veth pair, both ends here: sw0 is a device to bind to
        "ip link add sw0 type veth peer name sw1",
        "ip link set sw1 up",
        "ip link set sw0 up",
        "ip addr add 10.9.0.1/24 dev sw0",
        "ip addr add fd00::1/64 dev sw0 nodad",
    ] {
        ns.exec_ok(&cmd.split(' ').collect::<Vec<_>>());
    }
    let keep = ns.enter(open_sockets);
    let shell = CgroupShell::start(&ns);
    let services = Services::load(std::path::Path::new("/etc/services"));
    let service = |name: &str| services.port(name);
    let mut cases: Vec<(String, Proto)> = TCP
        .iter()
        .map(|e| (e.to_string(), Proto::Tcp))
        .chain(UDP.iter().map(|e| (e.to_string(), Proto::Udp)))
        .collect();
    if let Some(shell) = &shell {
        cases.push((format!("cgroup = {}", shell.path), Proto::Tcp));
        cases.push((
            format!("not cgroup = {} and sport != :22", shell.path),
            Proto::Tcp,
        ));
    }
    let queries: Vec<Query> = cases
        .iter()
        .map(|(e, _)| parse_with(&split(e), &service).unwrap_or_else(|err| panic!("{e}: {err}")))
        .collect();
    let results: Vec<Ours> = ns.enter(|| {
        let mut diag = DiagSocket::open().unwrap();
        // the TIME-WAIT and FIN-WAIT-2 sockets come a moment after the close
        for _ in 0..200 {
            let mut all = Vec::new();
            diag.dump(Family::Inet, Proto::Tcp, all_states(Proto::Tcp), &mut all)
                .unwrap();
            let seen = |state: State| all.iter().any(|s| s.state == state);
            if seen(State::TimeWait) && seen(State::FinWait2) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        cases
            .iter()
            .zip(&queries)
            .map(|((_, proto), q)| ours(&mut diag, q, *proto))
            .collect()
    });
    let mut totals = std::collections::HashMap::new();
    let mut narrowed = 0;
    for (((text, proto), o), query) in cases.iter().zip(&results).zip(&queries) {
        let flags = match proto {
            Proto::Tcp => "-tanH",
            Proto::Udp => "-uanH",
        };
        let theirs = ss(&ns, flags, &split(text));
        if text.is_empty() {
            totals.insert(*proto, theirs.len());
        }
        let mut want = theirs.clone();
        for (e, p, who, which) in differences() {
            if e != text || p != *proto {
                continue;
            }
            let different: Vec<Key> = match who {
                Who::Ss => theirs.iter().filter(|k| which(k)).copied().collect(),
                Who::Sockwho => o.kernel.iter().filter(|k| which(k)).copied().collect(),
            };
            assert!(
                !different.is_empty(),
                "{text}: the known difference is gone"
            );
            for k in different {
                match who {
                    Who::Ss => want.remove(&k),
                    Who::Sockwho => {
                        assert!(!theirs.contains(&k), "{text}: ss lists {k:?} too");
                        want.insert(k)
                    }
                };
            }
        }
        let show = |set: &BTreeSet<Key>| {
            let more: Vec<_> = set.difference(&want).collect();
            let fewer: Vec<_> = want.difference(set).collect();
            format!("more {more:?}, fewer {fewer:?}")
        };
        // the kernel's answer: exact, or at least what matches
        if o.exact {
            assert!(
                o.kernel == want,
                "{text} ({proto:?}): kernel: {}",
                show(&o.kernel)
            );
        } else {
            assert!(
                o.kernel.is_superset(&want),
                "{text} ({proto:?}): kernel: {}",
                show(&o.kernel)
            );
        }
        if o.kernel_only {
            // user space alone cannot tell; what it can tell agrees
            assert!(
                o.user.is_subset(&want),
                "{text} ({proto:?}): user space: {}",
                show(&o.user)
            );
            let maybe: BTreeSet<Key> = o.user.union(&o.undecided).copied().collect();
            assert!(
                maybe.is_superset(&want),
                "{text} ({proto:?}): user space: {}",
                show(&maybe)
            );
            assert!(
                o.exact,
                "{text}: a kernel-only predicate needs an exact program"
            );
        } else {
            assert!(o.undecided.is_empty(), "{text}");
            assert!(
                o.user == want,
                "{text} ({proto:?}): user space: {}",
                show(&o.user)
            );
        }
        // and the binary, given the expression as ss is given it (cgroup
        // paths are relative to a mount `ip netns exec` does not keep)
        if !text.starts_with("cgroup") && !text.contains(" cgroup") {
            let ours = binary(&ns, flags, &split(text));
            let mut want_binary = want.clone();
            // the binary lists what the library's kernel dump lets through
            // where a known difference is sockwho's own
            want_binary.extend(o.user.difference(&theirs).copied());
            assert!(
                ours == want_binary || ours == want,
                "{text} ({proto:?}): sockwho {flags}: {}",
                show(&ours)
            );
        }
        let total = totals.get(proto).copied().unwrap_or(usize::MAX);
        narrowed += usize::from(!want.is_empty() && want.len() < total);
        eprintln!(
            "{:62} {:?} ss {:2}  sockwho {:2}  kernel sent {:2}{}",
            text,
            proto,
            theirs.len(),
            o.user.len() + o.undecided.len(),
            o.kernel.len(),
            if query.states.is_some() {
                " (state words)"
            } else {
                ""
            }
        );
        match text.as_str() {
            // left to right: (22 or 80) and no remote end, the two listeners;
            // `and` first would add the four accepted ends on port 22
            "sport = :22 or sport = :80 and dport = :0" => assert_eq!(want.len(), 2),
            t if t.starts_with("cgroup") => assert_eq!(want.len(), 1),
            // the listener bound to sw0; and the client bound to lo
            "dev = sw0" => assert_eq!(want.len(), 1),
            "dev sw0 or dev lo" => assert_eq!(want.len(), 2),
            // the listener marked 0x10 and its four accepted ends (they
            // take its mark); and the client marked 0x11
            "fwmark = 0x10" => assert_eq!(want.len(), 5),
            "fwmark = 0x10/0xf0" => assert_eq!(want.len(), 6),
            // [::1] connected from a port the kernel chose
            "autobound" if *proto == Proto::Udp => assert_eq!(want.len(), 1),
            _ => {}
        }
    }
    // 8 listeners, 17 connections, the TIME-WAIT end; the shell's connection
    let tcp = 8 + 2 * 17 + 1 + if shell.is_some() { 2 } else { 0 };
    assert_eq!(
        totals.get(&Proto::Tcp),
        Some(&tcp),
        "TCP sockets in the namespace"
    );
    assert_eq!(totals.get(&Proto::Udp), Some(&5));
    assert!(
        narrowed * 10 >= cases.len() * 8,
        "{narrowed} of {}",
        cases.len()
    );
    drop(shell);
    drop(keep);
}

/// `-F FILE`: the file's lines come after the positional arguments.
#[test]
fn filter_file_reads_like_ss() {
    if !can_use_netns("ssfilter::filter_file_reads_like_ss") {
        return;
    }
    let ns = Netns::new("ssfilterf");
    let keep = ns.enter(open_sockets_without_devices);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("filter");
    std::fs::write(
        &file,
        "# ssh either way\n( dport = :22\n  or sport = :22 )\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let mut args = split("state established");
    args.extend(read_filter_file(path).unwrap());
    let query = parse_with(&args, &|_| None).unwrap();
    let o = ns.enter(|| ours(&mut DiagSocket::open().unwrap(), &query, Proto::Tcp));
    let theirs = ss(
        &ns,
        "-tanH",
        &split(&format!("-F {path} state established")),
    );
    assert_eq!(theirs.len(), 4, "{theirs:?}");
    assert_eq!(o.user, theirs);
    assert_eq!(o.kernel, theirs);
    drop(keep);
}

/// A dump saved with `ss -D` replays through `SOCKWHO_DIAG_FILE` as
/// through `TCPDIAG_FILE` into ss (iproute2's testsuite/tests/ss does the
/// same): the same sockets for the same expression, and the binary's
/// `-F FILE` as ss's.
#[test]
fn ss_dump_files_replay_with_the_same_results() {
    if !can_use_netns("ssfilter::ss_dump_files_replay_with_the_same_results") {
        return;
    }
    let ns = Netns::new("ssdump");
    let keep = ns.enter(open_sockets_without_devices);
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("tcp.raw");
    // ss's replay reads the first dump of a file: one family
    ns.exec_ok(&["ss", "-tan4", "-D", dump.to_str().unwrap()]);
    let replayed_ss = |args: &[String]| -> BTreeSet<Key> {
        let out = Command::new("ss")
            .arg("-tanH")
            .args(args)
            .env("TCPDIAG_FILE", &dump)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|line| {
                let f: Vec<&str> = line.split_whitespace().collect();
                let end = |t: &str| -> SocketAddr {
                    let (h, p) = t.rsplit_once(':').unwrap();
                    let p = if p == "*" { 0 } else { p.parse().unwrap() };
                    let h = if h == "*" { "0.0.0.0" } else { h };
                    SocketAddr::new(h.parse().unwrap(), p)
                };
                (end(f[f.len() - 2]), end(f[f.len() - 1]))
            })
            .collect()
    };
    let replayed_ours = |args: &[String]| -> BTreeSet<Key> {
        let mut argv = vec!["-tan".to_string(), "--format".into(), "json".into()];
        argv.extend(args.iter().cloned());
        let out = Command::new(crate::harness::BIN)
            .args(&argv)
            .env("SOCKWHO_DIAG_FILE", &dump)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        doc["sockets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let end = |e: &serde_json::Value| {
                    if e.is_null() {
                        return SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
                    }
                    SocketAddr::new(
                        e["addr"].as_str().unwrap().parse().unwrap(),
                        e["port"].as_u64().unwrap() as u16,
                    )
                };
                (end(&s["local"]), end(&s["remote"]))
            })
            .collect()
    };
    let mut compared = 0;
    for expr in [
        "",
        "sport = :22",
        "dport = :22 or sport = :80",
        "state established",
        "state listening",
        "exclude listening sport > :1024",
        "( sport = :22 or dport = :22 ) and not dst 127.0.0.1",
        "src 127.0.0.0/8 and dport != :22",
        "sport = :22 or sport = :80 and dport = :0",
    ] {
        let args = split(expr);
        let theirs = replayed_ss(&args);
        let ours = replayed_ours(&args);
        if expr.starts_with("state") || expr.starts_with("exclude") {
            // ss applies state words only in the dump request it sends the
            // kernel, so its replay shows every state; sockwho's replay
            // applies them, and gives what ss gives live
            let live = ss(&ns, "-tan4H", &args);
            assert!(theirs.is_superset(&live), "'{expr}'");
            assert_eq!(
                ours, live,
                "'{expr}' over the replayed dump, as ss gives it live"
            );
        } else {
            assert_eq!(ours, theirs, "'{expr}' over the replayed dump");
        }
        compared += usize::from(!theirs.is_empty());
    }
    assert!(
        compared >= 7,
        "the expressions select something: {compared}"
    );
    drop(keep);
}

/// Two connections to 127.0.0.1:22 and a listener on :80.
fn open_sockets_without_devices() -> Keep {
    let l22 = TcpListener::bind("127.0.0.1:22").unwrap();
    let l80 = TcpListener::bind("127.0.0.1:80").unwrap();
    let mut keep: Keep = Vec::new();
    for _ in 0..2 {
        let c = TcpStream::connect("127.0.0.1:22").unwrap();
        let (a, _) = l22.accept().unwrap();
        keep.push(Box::new((c, a)));
    }
    keep.push(Box::new((l22, l80)));
    keep
}
