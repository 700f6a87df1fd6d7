//! A corpus of hostile process names through every format (issue 13): no
//! byte a terminal acts on reaches stdout raw, nothing forges a column, a
//! separator or a second owner, and JSON keeps each name exact.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::harness::{Netns, can_use_netns, sockets};
use sockwho::render::escape::hazards;

/// Names a process can give itself (comm: at most 15 bytes).
const CORPUS: &[&str] = &[
    "q\x1b[2J\x1b[H",
    "x,1/sshd",
    "a|b c;d",
    "\u{202e}rtl",
    "\u{9b}31m",
    "\x7fdel",
    "\u{2028}sep",
    "\u{200b}zw",
    "\u{feff}bom",
    "\u{200f}rlm",
    "\u{061c}alm",
    "tab\tnl\n",
    "\"quote\\",
    "x,1",
];

/// Starts one process per name, with that name as its comm and its argv[0]
/// (the table shows argv[0]'s base name, as netstat does; JSON the comm),
/// each holding a listener on 7800 + i; the last also on 21 with a
/// connection to it: an FTP control session, so that `--ftp` shows an owner.
const SCRIPT: &str = r#"
import os, socket, subprocess, sys, json
names = json.loads(sys.argv[1])
child = sys.argv[2]
ready_r, ready_w = os.pipe()
procs = [
    subprocess.Popen([name, '-c', child, str(i), str(len(names)), name, str(ready_w)],
                     executable='/usr/bin/python3', pass_fds=[ready_w], stdin=subprocess.PIPE)
    for i, name in enumerate(names)
]
# every child has named itself and listens
got = 0
while got < len(names):
    got += len(os.read(ready_r, len(names) - got))
print('READY', json.dumps([p.pid for p in procs]), flush=True)
sys.stdin.read()
"#;

const CHILD: &str = r#"
import os, socket, sys
i, n, name, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
with open('/proc/self/comm', 'wb') as f:
    f.write(name.encode())
s = socket.socket(); s.bind(('127.0.0.1', 7800 + i)); s.listen()
keep = [s]
if i == n - 1:
    l = socket.socket(); l.bind(('127.0.0.1', 21)); l.listen()
    c = socket.create_connection(('127.0.0.1', 21))
    keep += [l, c, l.accept()[0]]
os.write(ready, b'.')
sys.stdin.read()
"#;

#[test]
fn hostile_names_are_safe_in_every_format_regression_13() {
    if !can_use_netns("hostile_names_are_safe_in_every_format_regression_13") {
        return;
    }
    let ns = Netns::new("hostile");
    let names = serde_json::to_string(CORPUS).unwrap();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "/usr/bin/python3",
            "-c",
            SCRIPT,
            &names,
            CHILD,
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pids: Vec<u32> = serde_json::from_str(line.trim().strip_prefix("READY ").unwrap()).unwrap();
    // what the kernel kept of each name (15 bytes), as sockwho reads it
    let kept: Vec<String> = pids
        .iter()
        .map(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/comm")).unwrap();
            let raw = raw.strip_suffix(b"\n").unwrap_or(&raw);
            String::from_utf8_lossy(raw).into_owned()
        })
        .collect();

    let formats: &[&[&str]] = &[
        &["-tanp"],
        &["-tanpe"],
        &["-tanp", "--format", "json"],
        &["-tanp", "--format", "jsonl"],
        &["-tanp", "--format", "csv"],
        &["-tanp", "-c", "--count", "1"],
        &["-p", "--ftp"],
    ];
    let mut outputs = Vec::new();
    for args in formats {
        let out = ns.sockwho(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = std::str::from_utf8(&out.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: output is not UTF-8: {e}"));
        let found = hazards(text.as_bytes());
        assert!(found.is_empty(), "{args:?} let {found:?} through:\n{text}");
        outputs.push(text.to_string());
    }
    drop(child.stdin.take());
    let _ = child.wait();

    // the table: every row as many fields as the header has columns
    let table = &outputs[0];
    let header = table.lines().nth(1).unwrap();
    let columns = header.split_whitespace().count() - 3; // "Local Address", "Foreign Address", "PID/Program name"
    for (i, pid) in pids.iter().enumerate() {
        let port = format!("127.0.0.1:{}", 7800 + i);
        let row = table.lines().find(|l| l.contains(&port)).unwrap();
        assert_eq!(row.split_whitespace().count(), columns, "{row}");
        // PID/Program name, after netstat's State
        let owner = row.split_whitespace().nth(6).unwrap();
        assert!(owner.starts_with(&format!("{pid}/")), "one owner: {owner}");
        assert!(!owner.contains(','), "no second owner: {owner}");
    }
    // JSON: each name exact
    let doc: serde_json::Value = serde_json::from_str(&outputs[2]).unwrap();
    for (i, name) in kept.iter().enumerate() {
        let s = sockets(&doc)
            .iter()
            .find(|s| s["local"]["port"] == 7800 + i && s["state"] == "LISTEN")
            .unwrap();
        assert_eq!(s["processes"][0]["name"], name.as_str(), "{name:?}");
    }
    // JSON Lines: every line parses
    for line in outputs[3].lines() {
        serde_json::from_str::<serde_json::Value>(line).unwrap();
    }
    // CSV: every record as long as the header; one owner per listener
    let mut csv = csv::Reader::from_reader(outputs[4].as_bytes());
    let head = csv.headers().unwrap().clone();
    let col = |n: &str| head.iter().position(|h| h == n).unwrap();
    for rec in csv.records() {
        let rec = rec.unwrap();
        assert_eq!(rec.len(), head.len());
        let port: u16 = rec[col("local_port")].parse().unwrap();
        if (7800..7800 + CORPUS.len() as u16).contains(&port) && &rec[col("state")] == "LISTEN" {
            assert_eq!(rec[col("processes")].split(';').count(), 1, "{rec:?}");
        }
    }
    // the FTP view: every table line has as many cells as its header
    let ftp = &outputs[6];
    let cells = |l: &str| l.matches('|').count();
    let head = ftp.lines().find(|l| l.contains("| role")).unwrap();
    for l in ftp.lines().filter(|l| l.trim_start().starts_with('|')) {
        assert_eq!(cells(l), cells(head), "{l}");
    }
}
