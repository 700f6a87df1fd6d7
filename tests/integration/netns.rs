//! `--netns` and `--all-netns`: namespaces made by the tests, each with its
//! own sockets and port range, looked into from outside.

use std::collections::HashSet;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    BIN, Netns, SETPRIV, binary_for_anyone, can_use_netns, has_tools, output_when_not_busy, sockets,
};
use crate::twohosts::{Proc, start};

fn sockwho(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run sockwho")
}

fn json(args: &[&str]) -> Value {
    let mut argv = vec!["--format", "json"];
    argv.extend_from_slice(args);
    let out = sockwho(&argv);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn inode(ns: &Netns) -> u64 {
    std::fs::metadata(format!("/run/netns/{}", ns.name))
        .unwrap()
        .ino()
}

/// The listener on `port` in the namespace named `name` (None: unnamed).
fn listener<'a>(doc: &'a Value, port: u16, name: Option<&str>) -> &'a Value {
    let found: Vec<&Value> = sockets(doc)
        .iter()
        .filter(|s| {
            s["state"] == "LISTEN"
                && s["local"]["port"] == port
                && s["netns"]["name"].as_str() == name
        })
        .collect();
    assert_eq!(found.len(), 1, "{port} in {name:?}: {doc:#}");
    found[0]
}

/// Two namespaces with a listener on 20500 each and their own port range.
fn two_namespaces() -> (Netns, Netns, Vec<TcpListener>) {
    let a = Netns::new("nsa");
    let b = Netns::new("nsb");
    a.sysctl("net.ipv4.ip_local_port_range", "20000 20999");
    b.sysctl("net.ipv4.ip_local_port_range", "40000 40999");
    let la = a.enter(|| TcpListener::bind("0.0.0.0:20500").unwrap());
    let lb = b.enter(|| TcpListener::bind("0.0.0.0:20500").unwrap());
    (a, b, vec![la, lb])
}

#[test]
fn one_namespace_by_name_path_or_pid() {
    if !can_use_netns("one_namespace_by_name_path_or_pid") {
        return;
    }
    let (a, b, _keep) = two_namespaces();
    let doc = json(&["--netns", &a.name, "-tln"]);
    assert_eq!(doc["port_range"], serde_json::json!([20000, 20999]));
    assert_eq!(doc["namespaces"][0]["name"], a.name.as_str());
    assert_eq!(doc["namespaces"][0]["inode"], inode(&a));
    assert_eq!(
        listener(&doc, 20500, Some(&a.name))["local"]["class"],
        "ephemeral"
    );
    assert_eq!(sockets(&doc).len(), 1, "only a's sockets: {doc:#}");

    let path = format!("/run/netns/{}", b.name);
    let doc = json(&["--netns", &path, "-tln"]);
    assert_eq!(doc["port_range"], serde_json::json!([40000, 40999]));
    assert_eq!(
        listener(&doc, 20500, Some(&b.name))["local"]["class"],
        "registered"
    );

    // a process's namespace; its name is found from /run/netns
    let sleeper = start(&b, &["sleep", "30"], Some(Duration::from_millis(100)));
    let pid = sleeper.0.id().to_string();
    let doc = json(&["--netns", &pid, "-tln"]);
    assert_eq!(doc["namespaces"][0]["inode"], inode(&b));
    assert_eq!(doc["namespaces"][0]["pid"], sleeper.0.id());
    assert_eq!(doc["namespaces"][0]["name"], b.name.as_str());

    // the table names it in a NETNS column, first
    let table = String::from_utf8(sockwho(&["--netns", &a.name, "-tln"]).stdout).unwrap();
    let mut lines = table.lines().skip(1);
    assert!(lines.next().unwrap().starts_with("NETNS "), "{table}");
    let row = lines.next().unwrap();
    assert!(row.starts_with(&format!("{} tcp ", a.name)), "{table}");
    // and sockwho itself stays where it was: a plain run still sees the host
    let host = json(&["-tln"]);
    assert!(
        sockets(&host)
            .iter()
            .all(|s| s["local"]["port"] != 20500 || s.get("netns").is_none())
    );
    assert!(host.get("namespaces").is_none());
}

/// A namespace with no name, held by two processes (parent and child).
const UNNAMED: &str = "import os, socket, sys\n\
s = socket.socket(); s.bind(('0.0.0.0', 7100)); s.listen()\n\
if os.fork() == 0:\n    sys.stdin.read(); sys.exit(0)\n\
print('READY', flush=True); sys.stdin.read()\n";

#[test]
fn every_namespace_once_with_its_own_range_and_owners() {
    if !can_use_netns("every_namespace_once_with_its_own_range_and_owners") {
        return;
    }
    let (a, b, _keep) = two_namespaces();
    let holder = Netns::new("host");
    // `unshare -n` from inside a namespace of ours, so no name is given to it
    let unnamed: Proc = start(
        &holder,
        &["unshare", "-n", "/usr/bin/python3", "-c", UNNAMED],
        None,
    );
    let doc = json(&["--all-netns", "-tlnp"]);
    let namespaces = doc["namespaces"].as_array().unwrap();
    let inodes: Vec<u64> = namespaces
        .iter()
        .map(|n| n["inode"].as_u64().unwrap())
        .collect();
    let unique: HashSet<u64> = inodes.iter().copied().collect();
    assert_eq!(
        inodes.len(),
        unique.len(),
        "each namespace once: {namespaces:#?}"
    );
    for ns in [&a, &b, &holder] {
        assert!(inodes.contains(&inode(ns)), "{} listed", ns.name);
    }
    // its own range in each
    assert_eq!(
        listener(&doc, 20500, Some(&a.name))["local"]["class"],
        "ephemeral"
    );
    assert_eq!(
        listener(&doc, 20500, Some(&b.name))["local"]["class"],
        "registered"
    );
    let ranges: Vec<&Value> = namespaces.iter().map(|n| &n["port_range"]).collect();
    assert!(ranges.contains(&&serde_json::json!([20000, 20999])));
    assert!(ranges.contains(&&serde_json::json!([40000, 40999])));
    // the unnamed one: once, with a PID in it, and its owners found
    let l = listener(&doc, 7100, None);
    let pid = l["netns"]["pid"]
        .as_u64()
        .expect("a pid names the unnamed namespace");
    let owners: Vec<u64> = l["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["pid"].as_u64().unwrap())
        .collect();
    assert_eq!(owners.len(), 2, "parent and child share the socket: {l}");
    assert!(
        owners.contains(&pid) || owners.contains(&(unnamed.0.id() as u64)),
        "{l}"
    );
    let label = format!("net:[{}]", l["netns"]["inode"]);
    let table = String::from_utf8(sockwho(&["--all-netns", "-tln"]).stdout).unwrap();
    assert!(
        table
            .lines()
            .any(|r| r.starts_with(&label) && r.contains(":7100 ")),
        "{label} in {table}"
    );
}

#[test]
fn a_missing_namespace_is_a_one_line_error() {
    for spec in ["sw-no-such-namespace", "/nonexistent/ns/net", "999999999"] {
        let out = sockwho(&["--netns", spec, "-tln"]);
        assert_eq!(out.status.code(), Some(1), "{spec}");
        assert!(out.stdout.is_empty(), "{spec}: no output");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{spec}: {err}");
        assert!(
            err.starts_with(&format!("sockwho: cannot enter network namespace {spec}: ")),
            "{err}"
        );
    }
}

#[test]
fn without_root_namespaces_need_more() {
    if !can_use_netns("without_root_namespaces_need_more")
        || !has_tools("without_root_namespaces_need_more", &[SETPRIV])
    {
        return;
    }
    let (a, _b, _keep) = two_namespaces();
    let (_dir, bin) = binary_for_anyone();
    let nobody = |args: &[&str]| {
        output_when_not_busy(
            Command::new("setpriv")
                .args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
                .arg(&bin)
                .args(args),
        )
    };
    let out = nobody(&["--netns", &a.name, "-tln"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains(&a.name) && err.contains("Operation not permitted") && err.contains("root"),
        "{err}"
    );

    let out = nobody(&["--all-netns", "-tln"]);
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err.lines().count(),
        1,
        "one line says what needs more: {err}"
    );
    assert!(
        err.contains("could not enter") && err.contains("run as root"),
        "{err}"
    );
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        table.lines().nth(1).unwrap().starts_with("NETNS "),
        "{table}"
    );
    assert!(!table.contains(&a.name), "a's sockets need root: {table}");
}

#[test]
fn namespaces_that_vanish_during_the_scan_are_skipped() {
    if !can_use_netns("namespaces_that_vanish_during_the_scan_are_skipped") {
        return;
    }
    // Short-lived processes, each alone in a namespace of its own, come and
    // go while sockwho scans /proc: some exit between the listing and the
    // open. None of that may fail a run.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churn = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut started = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Command::new("unshare")
                    .args(["-n", "sleep", "0.02"])
                    .spawn()
                    .map(|mut c| {
                        started += 1;
                        std::thread::spawn(move || c.wait());
                    });
                std::thread::sleep(Duration::from_millis(2));
            }
            started
        })
    };
    let start = Instant::now();
    let mut runs = 0;
    while runs < 20 || start.elapsed() < Duration::from_secs(2) {
        let out = sockwho(&["--all-netns", "-tan"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "run {runs}: {err}");
        assert!(
            err.lines()
                .all(|l| l.starts_with("sockwho: skipped") || l.contains("permission denied")),
            "{err}"
        );
        let table = String::from_utf8(out.stdout).unwrap();
        assert!(table.starts_with("Active Internet connections"), "{table}");
        runs += 1;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(churn.join().unwrap() > 20, "the churn ran");
}

/// Issue 13, item 10: as root, a refused namespace is not "run as root".
/// Root of a user namespace of its own (`unshare -Ur`) is refused the host's
/// namespaces: the hint must say why, not tell root to become root.
#[test]
fn root_refused_a_namespace_is_not_told_to_run_as_root_regression_13() {
    let test = "root_refused_a_namespace_is_not_told_to_run_as_root_regression_13";
    if !can_use_netns(test) {
        return;
    }
    let ns = Netns::new("userns");
    let out = Command::new("unshare")
        .args(["-Ur", BIN, "--netns", &ns.name, "-tan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
    assert!(
        !err.contains("run as root") && !err.contains("needs root"),
        "{err}"
    );
    assert!(err.contains("refused even to root"), "{err}");
    let out = Command::new("unshare")
        .args(["-Ur", BIN, "--all-netns", "-tan"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("run as root"), "{err}");
}
