//! The pipeline and the binary end to end on captured input, without root
//! (issue 9): a saved /proc tree (`SOCKWHO_PROC_ROOT`), a raw sock_diag
//! dump as `ss -D` writes it (`SOCKWHO_DIAG_FILE`), and other roots for
//! /etc and /run (`SOCKWHO_ETC_ROOT`, `SOCKWHO_RUN_ROOT`). The fixtures are
//! described in tests/fixtures/README.md; what they hold is in sockets.json.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::BIN;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn captured() -> Value {
    serde_json::from_slice(&std::fs::read(fixtures().join("sockets.json")).unwrap()).unwrap()
}

/// An `ss -D` file: the datagrams of the TCP dumps, one after the other.
fn diag_file(dir: &Path) -> PathBuf {
    let mut bytes = Vec::new();
    for name in ["tcp4.0", "tcp4.1", "tcp6.0", "tcp6.1"] {
        bytes.extend(std::fs::read(fixtures().join(format!("sockdiag/{name}.bin"))).unwrap());
    }
    let path = dir.join("tcp.diag");
    std::fs::write(&path, bytes).unwrap();
    path
}

/// Runs the binary with these replay variables, insisting on success.
fn replay(env: &[(&str, &Path)], args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args)
        .env_remove("SOCKWHO_PROC_ROOT")
        .env_remove("SOCKWHO_DIAG_FILE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    );
    assert!(out.status.success(), "{args:?}: {stderr}");
    (stdout, stderr)
}

type Ends = (String, String, String, String);

fn ends_of(sockets: &[Value], proto: &str) -> BTreeSet<Ends> {
    sockets
        .iter()
        .filter(|s| s["proto"] == proto)
        .map(|s| {
            let (local, remote) = (&s["local"], &s["remote"]);
            let pick = |e: &Value, i: usize, key: &str| -> String {
                if e.is_null() {
                    return "-".into();
                }
                match e.get(key) {
                    Some(v) => v.to_string().trim_matches('"').to_string(),
                    None => e[i].to_string().trim_matches('"').to_string(),
                }
            };
            (
                pick(local, 0, "addr"),
                pick(local, 1, "port"),
                pick(remote, 0, "addr"),
                pick(remote, 1, "port"),
            )
        })
        .collect()
}

#[test]
fn a_saved_proc_tree_replays_end_to_end() {
    let want = captured();
    let proc = fixtures().join("proc");
    let (out, err) = replay(
        &[("SOCKWHO_PROC_ROOT", &proc)],
        &["-tuan", "--format", "json"],
    );
    assert_eq!(err, "", "nothing to complain about");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["source"], "procfs");
    assert_eq!(doc["port_range"], serde_json::json!([20000, 29999]));
    assert_eq!(
        doc["reserved_ports"],
        serde_json::json!([[20000, 20099], [25000, 25000]])
    );
    let sockets = doc["sockets"].as_array().unwrap();
    let all = want["sockets"].as_array().unwrap();
    for proto in ["tcp", "udp"] {
        assert_eq!(ends_of(sockets, proto), ends_of(all, proto), "{proto}");
    }
    // the labels come from the replayed namespace's own range and listeners
    let client = all.iter().find(|s| s["name"] == "tcp4-client").unwrap();
    let port = &client["local"][1];
    let s = sockets
        .iter()
        .find(|s| s["local"]["port"] == *port && s["proto"] == "tcp")
        .unwrap();
    assert_eq!(s["direction"], "outbound", "{s}");
    assert_eq!(s["local"]["class"], "ephemeral");
    let server = sockets
        .iter()
        .find(|s| s["local"]["port"] == 2222 && s["remote"]["port"] == *port)
        .unwrap();
    assert_eq!(server["direction"], "inbound");
    assert_eq!(server["direction_evidence"][0], "listener");
}

#[test]
fn an_ss_dump_file_replays_with_its_cookies() {
    let dir = tempfile::tempdir().unwrap();
    let file = diag_file(dir.path());
    let proc = fixtures().join("proc");
    let env = [
        ("SOCKWHO_DIAG_FILE", file.as_path()),
        ("SOCKWHO_PROC_ROOT", proc.as_path()),
    ];
    let (out, _) = replay(&env, &["-tan", "--format", "json"]);
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["source"], "netlink");
    let sockets = doc["sockets"].as_array().unwrap();
    let want = captured();
    let all = want["sockets"].as_array().unwrap();
    assert_eq!(ends_of(sockets, "tcp"), ends_of(all, "tcp"));
    let cookies = |list: &[Value]| -> BTreeSet<u64> {
        list.iter()
            .filter(|s| s["proto"] == "tcp")
            .map(|s| s["cookie"].as_u64().expect("a cookie"))
            .collect()
    };
    assert_eq!(cookies(sockets), cookies(all));
    // the same replay as a table, filtered in user space
    let (table, _) = replay(&env, &["-tn", "--sport", "2222"]);
    let rows: Vec<&str> = table.lines().skip(2).collect();
    assert_eq!(rows.len(), 1, "{table}");
    assert!(
        rows[0].contains("127.0.0.1:2222") && rows[0].contains("ESTABLISHED"),
        "{table}"
    );
    // a replay holds TCP only, as ss's TCPDIAG_FILE
    let (udp, _) = replay(&env, &["-uan", "--format", "json"]);
    let udp: Value = serde_json::from_str(&udp).unwrap();
    assert_eq!(udp["sockets"], serde_json::json!([]));
}

#[test]
fn names_come_from_the_etc_root() {
    let etc = tempfile::tempdir().unwrap();
    std::fs::write(etc.path().join("services"), "fixture-svc 2222/tcp\n").unwrap();
    std::fs::write(
        etc.path().join("passwd"),
        "root:x:0:0::/root:/bin/sh\nfixture-user:x:1000:1000::/:/bin/false\n",
    )
    .unwrap();
    let proc = fixtures().join("proc");
    let env = [
        ("SOCKWHO_PROC_ROOT", proc.as_path()),
        ("SOCKWHO_ETC_ROOT", etc.path()),
    ];
    let (table, _) = replay(&env, &["-tae"]);
    assert!(table.contains("127.0.0.1:fixture-svc"), "{table}");
    let v6only = table.lines().find(|l| l.contains(":::8443")).unwrap();
    assert!(v6only.contains("fixture-user"), "{v6only}");
    // and a port filter by that name
    let (json, _) = replay(
        &env,
        &["-tan", "--sport", "fixture-svc", "--format", "json"],
    );
    let doc: Value = serde_json::from_str(&json).unwrap();
    let sockets = doc["sockets"].as_array().unwrap();
    assert!(!sockets.is_empty());
    assert!(sockets.iter().all(|s| s["local"]["port"] == 2222), "{json}");
}

#[test]
fn namespaces_are_named_from_the_run_root() {
    // a name under RUN/netns for the namespace sockwho runs in: no root needed
    let run = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(run.path().join("netns")).unwrap();
    let target = std::fs::read_link("/proc/self/ns/net").map(|_| "/proc/self/ns/net");
    std::os::unix::fs::symlink(target.unwrap(), run.path().join("netns/replayed")).unwrap();
    let (json, _) = replay(
        &[("SOCKWHO_RUN_ROOT", run.path())],
        &["-tln", "--netns", "replayed", "--format", "json"],
    );
    let doc: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(doc["namespaces"][0]["name"], "replayed", "{json}");
}

#[test]
fn the_pipeline_runs_on_replayed_inputs_in_process() {
    use clap::Parser;
    use sockwho::cli::Cli;
    use sockwho::collect::{Inputs, Notices};
    use sockwho::config::{Config, Environment};
    use sockwho::pipeline::Pipeline;

    let dir = tempfile::tempdir().unwrap();
    let env = Environment {
        inputs: Inputs {
            proc: fixtures().join("proc"),
            diag_file: Some(diag_file(dir.path())),
            ..Inputs::live()
        },
        ..Environment::default()
    };
    let cfg = Config::new(&Cli::parse_from(["sockwho", "-tan"]), &env, |_| None).unwrap();
    let mut notices = Notices::default();
    let parts = Pipeline::once(&cfg).look(&mut notices).unwrap();
    assert_eq!(parts.len(), 1);
    let want = captured();
    let tcp = want["sockets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["proto"] == "tcp")
        .count();
    assert_eq!(parts[0].sockets.len(), tcp);
    assert_eq!(parts[0].port_range.low, 20000);
    assert!(notices.lines().is_empty(), "{:?}", notices.lines());
}

/// A /proc tree with two TCP sockets of the client's side of a passive
/// session: curl's control connection (held by PID 20) and a data
/// connection, open when the table was read, whose inode `holder` holds
/// (or no one: curl closed it before the walk of /proc got to it).
fn client_side_tree(dir: &Path, holder: Option<(u32, &str)>) {
    let net = dir.join("net");
    std::fs::create_dir_all(&net).unwrap();
    // 10.231.0.2:36614 -> 10.231.0.1:21 (inode 7), :42614 -> :57489 (inode 9)
    let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   \
        0: 0200E70A:8F06 0100E70A:0015 01 00000000:00000000 00:00000000 00000000     0        0 7 1 0000000000000000 20 0 0 10 -1\n   \
        1: 0200E70A:A676 0100E70A:E091 01 00000000:00000000 00:00000000 00000000     0        0 9 1 0000000000000000 20 0 0 10 -1\n";
    std::fs::write(net.join("tcp"), tcp).unwrap();
    for ((pid, name), inode) in [Some((20, "curl")), holder]
        .into_iter()
        .flatten()
        .zip([7, 9])
    {
        let fd = dir.join(format!("{pid}/fd"));
        std::fs::create_dir_all(&fd).unwrap();
        std::fs::write(dir.join(format!("{pid}/comm")), format!("{name}\n")).unwrap();
        std::os::unix::fs::symlink(format!("socket:[{inode}]"), fd.join("3")).unwrap();
    }
}

/// A data connection whose owner closed it between the dump and the walk
/// for owners is seen as it went: it joins the session still open, saying
/// `owner-gone`. One that another process holds stays out.
#[test]
fn a_socket_no_process_holds_after_the_dump_is_seen_as_it_went() {
    let data_of = |holder: Option<(u32, &str)>| {
        let dir = tempfile::tempdir().unwrap();
        client_side_tree(dir.path(), holder);
        let (out, _) = replay(
            &[("SOCKWHO_PROC_ROOT", dir.path())],
            &["-tan", "--format", "json"],
        );
        let doc: Value = serde_json::from_str(&out).unwrap();
        let sockets = doc["sockets"].as_array().unwrap().clone();
        sockets
            .into_iter()
            .find(|s| s["local"]["port"] == 42614)
            .expect("the data connection")
    };
    let gone = data_of(None);
    let f = &gone["ftp"];
    assert_eq!(f["role"], "data", "{gone}");
    assert_eq!(f["mode"], "passive", "{gone}");
    assert_eq!(f["control"]["client"]["port"], 36614, "{gone}");
    let evidence = f["evidence"].as_array().unwrap();
    assert!(evidence.iter().any(|e| e == "owner-gone"), "{gone}");
    assert_eq!(gone["direction"], "outbound", "{gone}");
    // must not: held by a process that is not curl, it is no data of curl's
    let held = data_of(Some((21, "other")));
    assert!(held["ftp"].is_null(), "{held}");
}
