//! netstat's drop-in contract (issue 12): for the same sockets and the same
//! flags, jc's netstat parser and Ansible's `listen_ports_facts` read
//! sockwho's table exactly as they read netstat's, field for field.
//! `netstat/compare.py` does the parsing, with jc itself and a copy of
//! Ansible's parsing logic.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::{JC, NETSTAT, Netns, can_use_netns, has_tools};

/// Sockets of every kind netstat shows differently: listeners on IPv4, on
/// IPv6 dual-stack and v6only, connections over each (one to the dual-stack
/// listener from IPv4: v4-mapped ends), unconnected and connected UDP.
const SOCKETS: &str = r#"
import socket, sys
keep = []
def tcp(family, addr, port, v6only=None):
    s = socket.socket(family, socket.SOCK_STREAM)
    if v6only is not None:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, v6only)
    s.bind((addr, port)); s.listen(8); keep.append(s); return s
l4 = tcp(socket.AF_INET, '127.0.0.1', 2222)
tcp(socket.AF_INET, '0.0.0.0', 2223)
l6 = tcp(socket.AF_INET6, '::', 8080, 0)
tcp(socket.AF_INET6, '::', 8443, 1)
for family, addr, port, l in [(socket.AF_INET, '127.0.0.1', 2222, l4),
                              (socket.AF_INET6, '::1', 8080, l6),
                              (socket.AF_INET, '127.0.0.1', 8080, l6)]:
    c = socket.socket(family, socket.SOCK_STREAM); c.connect((addr, port))
    keep += [c, l.accept()[0]]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('0.0.0.0', 5353)); keep.append(u)
u6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
u6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1); u6.bind(('::', 5354)); keep.append(u6)
uc = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); uc.connect(('127.0.0.1', 5353)); keep.append(uc)
print('READY', flush=True)
sys.stdin.read()
"#;

#[test]
fn jc_and_ansible_read_sockwho_as_they_read_netstat() {
    let test = "jc_and_ansible_read_sockwho_as_they_read_netstat";
    if !can_use_netns(test) || !has_tools(test, &[NETSTAT, JC]) {
        return;
    }
    let ns = Netns::new("netstat");
    let mut holder = Command::new("ip")
        .args(["netns", "exec", &ns.name, "/usr/bin/python3", "-c", SOCKETS])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/integration/netstat/compare.py"
    );
    let mut failures = Vec::new();
    for flags in ["-an", "-tan", "-uan", "-tulpn", "-tanp", "-tane", "-tano"] {
        let theirs = ns.exec_ok(&["netstat", flags]);
        let ours = ns.sockwho_ok(&[flags]);
        let (a, b) = (dir.path().join("netstat"), dir.path().join("sockwho"));
        std::fs::write(&a, &theirs).unwrap();
        std::fs::write(&b, &ours).unwrap();
        let programs = if flags.contains('p') { "1" } else { "0" };
        let out = Command::new("python3")
            .arg(script)
            .args([&a, &b])
            .arg(programs)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "compare.py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            verdict["rows"].as_u64().unwrap() >= 3,
            "{flags}: too few rows to judge: {theirs}"
        );
        for parser in ["jc", "ansible", "ansible_old"] {
            for d in verdict[parser].as_array().into_iter().flatten() {
                failures.push(format!("{flags} {parser}: {d}"));
            }
        }
        if !failures.is_empty() {
            failures.push(format!(
                "netstat {flags}:\n{theirs}\nsockwho {flags}:\n{ours}"
            ));
        }
    }
    drop(holder.stdin.take());
    let _ = holder.wait();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
