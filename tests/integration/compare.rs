//! sockwho against ss, and its two sources against each other, on the same
//! sockets in one namespace.

use std::collections::BTreeSet;
use std::net::{TcpListener, TcpStream, UdpSocket};

use crate::harness::{Netns, SS, can_use_netns, has_tools, sockets};

/// A mix of states, families and protocols, with a TIME_WAIT among them.
fn open_mix(ns: &Netns) -> Vec<Box<dyn std::any::Any + Send>> {
    ns.enter(|| {
        let mut keep: Vec<Box<dyn std::any::Any + Send>> = Vec::new();
        let l = TcpListener::bind("127.0.0.1:3000").unwrap();
        for _ in 0..5 {
            let c = TcpStream::connect("127.0.0.1:3000").unwrap();
            let (a, _) = l.accept().unwrap();
            keep.push(Box::new((c, a)));
        }
        // the client closes first: its end goes to TIME_WAIT
        let c = TcpStream::connect("127.0.0.1:3000").unwrap();
        let (a, _) = l.accept().unwrap();
        drop(c);
        drop(a);
        let l6 = TcpListener::bind("[::]:3001").unwrap();
        let c6 = TcpStream::connect("[::1]:3001").unwrap();
        let c4 = TcpStream::connect("127.0.0.1:3001").unwrap();
        let (a6, _) = l6.accept().unwrap();
        let (a4, _) = l6.accept().unwrap();
        keep.push(Box::new((l, l6, c6, c4, a6, a4)));
        let u = UdpSocket::bind("0.0.0.0:3002").unwrap();
        let u6 = UdpSocket::bind("[::]:3003").unwrap();
        let uc = UdpSocket::bind("127.0.0.1:0").unwrap();
        uc.connect("127.0.0.1:3002").unwrap();
        keep.push(Box::new((u, u6, uc)));
        keep
    })
}

/// Waits until the closed connection has reached TIME_WAIT on both ends, so
/// that two looks a moment apart see the same states.
fn settle(ns: &Netns) {
    for _ in 0..100 {
        let moving = ns.exec_ok(&[
            "ss",
            "-tanH",
            "state",
            "fin-wait-1",
            "state",
            "fin-wait-2",
            "state",
            "last-ack",
            "state",
            "close-wait",
        ]);
        if moving.trim().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!("connections still closing in {}", ns.name);
}

type Key = (String, String, String, String);

/// (proto, state, local, remote) with wildcards as `*` and no brackets.
fn key(proto: &str, state: &str, local: String, remote: String) -> Key {
    (proto.to_string(), state.to_string(), local, remote)
}

fn norm_addr(addr: &str) -> String {
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    match addr {
        "*" | "0.0.0.0" | "::" => "*".to_string(),
        a => a.to_string(),
    }
}

fn json_keys(doc: &serde_json::Value) -> BTreeSet<Key> {
    sockets(doc)
        .iter()
        .map(|s| {
            let ep = |e: &serde_json::Value| match e.is_null() {
                true => "*:*".to_string(),
                false => format!("{}:{}", norm_addr(e["addr"].as_str().unwrap()), e["port"]),
            };
            key(
                s["proto"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
                ep(&s["local"]),
                ep(&s["remote"]),
            )
        })
        .collect()
}

/// `tcp ESTAB 0 0 127.0.0.1:3000 127.0.0.1:40000` (ss -tuanH)
fn ss_keys(text: &str) -> BTreeSet<Key> {
    text.lines()
        .map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let state = match f[1] {
                "ESTAB" => "ESTABLISHED",
                "TIME-WAIT" => "TIME_WAIT",
                "SYN-SENT" => "SYN_SENT",
                "SYN-RECV" => "SYN_RECV",
                "FIN-WAIT-1" => "FIN_WAIT1",
                "FIN-WAIT-2" => "FIN_WAIT2",
                "CLOSE-WAIT" => "CLOSE_WAIT",
                "LAST-ACK" => "LAST_ACK",
                "UNCONN" => "UNCONN",
                "LISTEN" => "LISTEN",
                other => panic!("state {other} in {line}"),
            };
            let ep = |s: &str| {
                let (addr, port) = s.rsplit_once(':').unwrap();
                let addr = addr.split('%').next().unwrap();
                if port == "*" {
                    "*:*".to_string()
                } else {
                    format!("{}:{port}", norm_addr(addr))
                }
            };
            key(f[0], state, ep(f[4]), ep(f[5]))
        })
        .collect()
}

#[test]
fn same_socket_set_as_ss() {
    if !can_use_netns("same_socket_set_as_ss") || !has_tools("same_socket_set_as_ss", &[SS]) {
        return;
    }
    let ns = Netns::new("ss");
    let _keep = open_mix(&ns);
    settle(&ns);
    let ours = json_keys(&ns.json(&["-tuan"]));
    let theirs = ss_keys(&ns.exec_ok(&["ss", "-tuanH"]));
    assert_eq!(ours, theirs);
    assert!(ours.iter().any(|k| k.1 == "TIME_WAIT"), "{ours:?}");
    assert!(ours.len() >= 20, "{ours:?}");
    // TCP of both families came in one dump (TCPDIAG_GETSOCK), listed as
    // two dumps list them: IPv4, then IPv6
    let out = ns.sockwho(&["-tan", "-v"]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("one dump of both families"), "{said}");
    let doc = ns.json(&["-tan"]);
    let families: Vec<&str> = sockets(&doc)
        .iter()
        .map(|s| s["family"].as_str().unwrap())
        .collect();
    let first_v6 = families
        .iter()
        .position(|f| *f == "inet6")
        .expect("IPv6 sockets");
    assert!(
        families[first_v6..].iter().all(|f| *f == "inet6"),
        "{families:?}"
    );
    assert!(families[0] == "inet", "{families:?}");
    // and the same rows, in netstat's form
    let netstat_like = ns.sockwho_ok(&["-tuan"]);
    assert_eq!(netstat_like.lines().count(), ours.len() + 2);
}

#[test]
fn procfs_source_matches_netlink() {
    if !can_use_netns("procfs_source_matches_netlink") {
        return;
    }
    let ns = Netns::new("sources");
    let _keep = open_mix(&ns);
    settle(&ns);
    let netlink = ns.json(&["-tuanpe", "--source", "netlink"]);
    let procfs = ns.json(&["-tuanpe", "--source", "procfs"]);
    assert_eq!(netlink["source"], "netlink");
    assert_eq!(procfs["source"], "procfs");
    // everything but what only netlink knows (cookie, backlog) and the
    // timers, which count down between the two runs
    let strip = |doc: &serde_json::Value| -> BTreeSet<String> {
        sockets(doc)
            .iter()
            .map(|s| {
                let mut s = s.clone();
                let o = s.as_object_mut().unwrap();
                // processes: another test's child, between its fork and its
                // exec, briefly holds this process's descriptors too
                for k in ["cookie", "backlog", "timer", "processes"] {
                    o.shift_remove(k);
                }
                s.to_string()
            })
            .collect()
    };
    let (n, p) = (strip(&netlink), strip(&procfs));
    assert!(
        n == p,
        "only over netlink: {:#?}\nonly in /proc: {:#?}",
        n.difference(&p).collect::<Vec<_>>(),
        p.difference(&n).collect::<Vec<_>>()
    );
    let me = std::process::id();
    for doc in [&netlink, &procfs] {
        for s in sockets(doc).iter().filter(|s| s["inode"] != 0) {
            let pids: Vec<u64> = s["processes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["pid"].as_u64().unwrap())
                .collect();
            assert!(pids.contains(&u64::from(me)), "owned by this test: {s}");
        }
    }
    assert!(sockets(&netlink).iter().all(|s| s["cookie"].is_u64()));
    assert!(sockets(&procfs).iter().all(|s| s["cookie"].is_null()));
}
