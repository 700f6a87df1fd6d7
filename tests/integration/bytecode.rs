//! Kernel-side filtering with sock_diag bytecode, on real sockets in a
//! private namespace: for each filter, the kernel must send exactly the
//! sockets `Filter::matches_socket` picks from an unfiltered dump, and no
//! others (so the filtered dumps are really smaller).

use std::any::Any;
use std::collections::HashSet;
use std::net::{TcpListener, TcpStream, UdpSocket};

use sockwho::collect::bytecode;
use sockwho::collect::netlink::DiagSocket;
use sockwho::filter::{Filter, PortSpec, Prefix};
use sockwho::model::{Endpoint, Family, Proto, Socket, State};

use crate::harness::{Netns, can_use_netns};

/// What identifies a socket across two dumps.
type Key = (Proto, Family, Endpoint, Option<Endpoint>, State);

fn key(s: &Socket) -> Key {
    (s.proto, s.family, s.local, s.remote, s.state)
}

type Keep = Vec<Box<dyn Any + Send>>;

/// 200 connections to 127.0.0.1:4000, 5 to :4001, 3 over [::1]:4002, 3 to
/// 127.0.0.2:4003, 2 IPv4 ones to a dual-stack [::]:4004 (their accepted ends
/// are AF_INET6 sockets with IPv4-mapped addresses), and a few UDP sockets.
fn open_sockets() -> Keep {
    let mut keep: Keep = Vec::new();
    let mut connect = |listen: &str, to: &str, n: usize| {
        let l = TcpListener::bind(listen).unwrap();
        for _ in 0..n {
            let c = TcpStream::connect(to).unwrap();
            let (a, _) = l.accept().unwrap();
            keep.push(Box::new((c, a)));
        }
        keep.push(Box::new(l));
    };
    connect("127.0.0.1:4000", "127.0.0.1:4000", 200);
    connect("127.0.0.1:4001", "127.0.0.1:4001", 5);
    connect("[::1]:4002", "[::1]:4002", 3);
    connect("127.0.0.2:4003", "127.0.0.2:4003", 3);
    connect("[::]:4004", "127.0.0.1:4004", 2);
    let u = UdpSocket::bind("127.0.0.1:4005").unwrap();
    let uc = UdpSocket::bind("127.0.0.2:0").unwrap();
    uc.connect("127.0.0.1:4005").unwrap();
    let u6 = UdpSocket::bind("[::1]:4006").unwrap();
    keep.push(Box::new((u, uc, u6)));
    keep
}

fn ports(list: &[&str]) -> Vec<PortSpec> {
    list.iter()
        .map(|p| PortSpec::parse(p, |_| None).unwrap())
        .collect()
}

fn prefixes(list: &[&str]) -> Vec<Prefix> {
    list.iter().map(|p| p.parse().unwrap()).collect()
}

fn filters() -> Vec<(&'static str, Filter)> {
    let f = Filter::default;
    vec![
        (
            "sport 4001",
            Filter {
                sport: ports(&["4001"]),
                ..f()
            },
        ),
        (
            "dport 4000-4001",
            Filter {
                dport: ports(&["4000-4001"]),
                ..f()
            },
        ),
        (
            "port 4002",
            Filter {
                port: ports(&["4002"]),
                ..f()
            },
        ),
        (
            "src 127.0.0.2/32",
            Filter {
                src: prefixes(&["127.0.0.2/32"]),
                ..f()
            },
        ),
        (
            "dst ::1",
            Filter {
                dst: prefixes(&["::1"]),
                ..f()
            },
        ),
        (
            "sport 4000 and dst 127.0.0.1",
            Filter {
                sport: ports(&["4000"]),
                dst: prefixes(&["127.0.0.1"]),
                ..f()
            },
        ),
        (
            "sport 4004 and src 127.0.0.0/8 (mapped)",
            Filter {
                sport: ports(&["4004"]),
                src: prefixes(&["127.0.0.0/8"]),
                ..f()
            },
        ),
        (
            "dst 0.0.0.0/0 (not listeners)",
            Filter {
                dst: prefixes(&["0.0.0.0/0"]),
                ..f()
            },
        ),
        (
            "port 0-3999 (not listeners' remote port 0)",
            Filter {
                port: ports(&["0-3999"]),
                ..f()
            },
        ),
        (
            "src ::/0 (not mapped)",
            Filter {
                src: prefixes(&["::/0"]),
                ..f()
            },
        ),
        // issue 13, item 5: mapped prefixes shorter than /96 are IPv6
        (
            "src ::ffff:127.0.0.1/64 (::/64)",
            Filter {
                src: prefixes(&["::ffff:127.0.0.1/64"]),
                ..f()
            },
        ),
        (
            "src ::ffff:0:0/95 (not 0.0.0.0)",
            Filter {
                src: prefixes(&["::ffff:0:0/95"]),
                ..f()
            },
        ),
        (
            "dst ::ffff:127.0.0.1/95 (not 127.0.0.1)",
            Filter {
                dst: prefixes(&["::ffff:127.0.0.1/95"]),
                ..f()
            },
        ),
    ]
}

/// One filter's dumps, summed over TCP and UDP, IPv4 and IPv6.
struct Outcome {
    name: &'static str,
    /// All sockets (no bytecode).
    unfiltered: usize,
    /// What `matches_socket` keeps of them, by family.
    expected: Vec<(Family, Proto, HashSet<Key>)>,
    /// What the kernel sent with the bytecode, by family.
    got: Vec<(Family, Proto, Vec<Key>)>,
}

/// The outcomes of `filters()`, and the sizes of an unfiltered TCP/IPv4 dump
/// and of one sent with a program the kernel refuses.
fn dump_all(ns: &Netns) -> (Vec<Outcome>, (usize, usize)) {
    ns.enter(|| {
        let keep = open_sockets();
        let states = State::ALL.iter().fold(0, |m, s| m | s.bit());
        let mut diag = DiagSocket::open().unwrap();
        let mut outcomes = Vec::new();
        for (name, filter) in filters() {
            let mut outcome = Outcome {
                name,
                unfiltered: 0,
                expected: Vec::new(),
                got: Vec::new(),
            };
            for proto in [Proto::Tcp, Proto::Udp] {
                for family in [Family::Inet, Family::Inet6] {
                    let mut all = Vec::new();
                    diag.dump(family, proto, states, &mut all).unwrap();
                    outcome.unfiltered += all.len();
                    let expected = all
                        .iter()
                        .filter(|s| filter.matches_socket(s))
                        .map(key)
                        .collect();
                    let program = bytecode::compile(&filter, family);
                    assert!(program.is_some(), "{name}: nothing for the kernel");
                    let mut got = Vec::new();
                    diag.dump_filtered(family, proto, states, program.as_deref(), &mut got)
                        .unwrap_or_else(|e| panic!("{name} ({family:?} {proto:?}): {e}"));
                    outcome.expected.push((family, proto, expected));
                    outcome
                        .got
                        .push((family, proto, got.iter().map(key).collect()));
                }
            }
            outcomes.push(outcome);
        }
        // a jump that is not 4-byte aligned: inet_diag_bc_audit() says EINVAL,
        // and dump_filtered asks again without the program
        let (mut all, mut refused) = (Vec::new(), Vec::new());
        diag.dump(Family::Inet, Proto::Tcp, states, &mut all)
            .unwrap();
        let bad = [1, 4, 6, 0];
        diag.dump_filtered(Family::Inet, Proto::Tcp, states, Some(&bad), &mut refused)
            .unwrap();
        drop(keep);
        (outcomes, (all.len(), refused.len()))
    })
}

#[test]
fn kernel_sends_only_what_matches() {
    if !can_use_netns("bytecode::kernel_sends_only_what_matches") {
        return;
    }
    let ns = Netns::new("bytecode");
    let (outcomes, (all, refused)) = dump_all(&ns);
    assert_eq!(refused, all, "a refused program means an unfiltered dump");
    for o in &outcomes {
        let mut sent = 0;
        for ((family, proto, expected), (_, _, got)) in o.expected.iter().zip(&o.got) {
            let got_set: HashSet<Key> = got.iter().copied().collect();
            assert_eq!(got.len(), got_set.len(), "{}: duplicates", o.name);
            // not assert_eq!: the sets run to hundreds of sockets
            assert!(
                got_set == *expected,
                "{} ({family:?} {proto:?}): the kernel sent {:?} more, missed {:?}",
                o.name,
                got_set.difference(expected).collect::<Vec<_>>(),
                expected.difference(&got_set).collect::<Vec<_>>()
            );
            sent += got.len();
        }
        eprintln!(
            "{:45} kernel sent {sent:3} of {} sockets",
            o.name, o.unfiltered
        );
        assert!(
            sent < o.unfiltered,
            "{}: {sent} of {}",
            o.name,
            o.unfiltered
        );
    }
    let count = |name: &str, family: Family| -> usize {
        let o = outcomes.iter().find(|o| o.name == name).unwrap();
        o.got
            .iter()
            .filter(|(f, _, _)| *f == family)
            .map(|(_, _, g)| g.len())
            .sum()
    };
    // 421 TCP sockets over IPv4, 10 over IPv6, 3 UDP
    assert_eq!(outcomes[0].unfiltered, 434);
    // the listener and the 5 accepted ends
    assert_eq!(count("sport 4001", Family::Inet), 6);
    assert_eq!(count("sport 4001", Family::Inet6), 0);
    // the 205 clients
    assert_eq!(count("dport 4000-4001", Family::Inet), 205);
    // the listener, 3 clients, 3 accepted ends
    assert_eq!(count("port 4002", Family::Inet6), 7);
    assert_eq!(count("dst ::1", Family::Inet6), 6);
    // the 200 accepted ends, not the listener
    assert_eq!(count("sport 4000 and dst 127.0.0.1", Family::Inet), 200);
    // the two accepted ends of [::]:4004, as ::ffff:127.0.0.1: the
    // kernel's AF_INET condition matched mapped addresses
    assert_eq!(
        count("sport 4004 and src 127.0.0.0/8 (mapped)", Family::Inet6),
        2
    );
    assert_eq!(
        count("port 0-3999 (not listeners' remote port 0)", Family::Inet),
        0
    );
    // [::1]:4002 and its 6 connected ends, [::]:4004, [::1]:4006 (UDP)
    assert_eq!(count("src ::/0 (not mapped)", Family::Inet6), 9);
    // the same 9 as ::/0: not 127.0.0.1's hundreds, nor the mapped ones
    assert_eq!(count("src ::ffff:127.0.0.1/64 (::/64)", Family::Inet6), 9);
    assert_eq!(count("src ::ffff:127.0.0.1/64 (::/64)", Family::Inet), 0);
    // ::fffe:0:0/95 holds none of them; the kernel would have sent the
    // mapped ends of [::]:4004 without the "not mapped" test
    for family in [Family::Inet, Family::Inet6] {
        assert_eq!(count("src ::ffff:0:0/95 (not 0.0.0.0)", family), 0);
        assert_eq!(count("dst ::ffff:127.0.0.1/95 (not 127.0.0.1)", family), 0);
    }
}
