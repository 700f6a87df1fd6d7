//! Watch mode, the formats for scripts, and filters, on real sockets.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{BIN, Netns, can_use_netns, reset, sockets};
use crate::twohosts::start;

#[test]
fn jsonl_sees_a_connection_come_and_go_once_each() {
    if !can_use_netns("jsonl_sees_a_connection_come_and_go_once_each") {
        return;
    }
    let ns = Netns::new("jsonl");
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:3100").unwrap());
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, BIN, "-tan", "--port", "3100"])
        .args([
            "--format",
            "jsonl",
            "-c",
            "--interval",
            "0.2",
            "--count",
            "12",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut events: Vec<Value> = Vec::new();
    let mut next_tick = |events: &mut Vec<Value>| loop {
        let line = lines.next().expect("a line").unwrap();
        let v: Value = serde_json::from_str(&line).expect("one JSON object per line");
        if v["event"] == "tick" {
            return v;
        }
        events.push(v);
    };
    let first = next_tick(&mut events);
    assert_eq!(first["sockets"], 1, "the listener alone: {events:?}");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["event"], "added");
    assert_eq!(events[0]["socket"]["state"], "LISTEN");
    // open a connection, wait a refresh, close it with RST, wait again
    let client = ns.enter(|| TcpStream::connect("127.0.0.1:3100").unwrap());
    let (server, _) = listener.accept().unwrap();
    let port = client.local_addr().unwrap().port();
    next_tick(&mut events);
    next_tick(&mut events);
    reset(client);
    reset(server);
    for _ in 0..3 {
        next_tick(&mut events);
    }
    let _ = child.kill();
    let _ = child.wait();
    let of = |kind: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["event"] == kind && e["socket"]["local"]["port"] == port)
            .collect()
    };
    assert_eq!(of("added").len(), 1, "{events:#?}");
    assert_eq!(of("removed").len(), 1, "{events:#?}");
    assert_eq!(of("added")[0]["socket"]["direction"], "outbound");
    assert!(
        of("added")[0]["socket"]["cookie"].is_u64(),
        "keyed by cookie"
    );
    for e in &events {
        assert!(e["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{e}");
    }
}

#[test]
fn piped_watch_prints_a_block_per_refresh_at_once() {
    if !can_use_netns("piped_watch_prints_a_block_per_refresh_at_once") {
        return;
    }
    let ns = Netns::new("blocks");
    let _l = ns.enter(|| TcpListener::bind("127.0.0.1:3150").unwrap());
    let started = Instant::now();
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            BIN,
            "-tln",
            "-c",
            "--interval",
            "2",
            "--count",
            "2",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    // flushed at once, not when the run ends two seconds later
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the first block came late"
    );
    assert!(
        first.starts_with("sockwho 20") && first.contains("(every 2s)"),
        "{first}"
    );
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    assert!(child.wait().unwrap().success());
    let blocks = std::iter::once(&first)
        .chain(&rest)
        .filter(|l| l.starts_with("sockwho 20"))
        .count();
    assert_eq!(blocks, 2, "{rest:?}");
    assert_eq!(
        rest.iter().filter(|l| l.contains("127.0.0.1:3150")).count(),
        2
    );
}

#[test]
fn csv_reads_back_with_a_csv_parser() {
    if !can_use_netns("csv_reads_back_with_a_csv_parser") {
        return;
    }
    let ns = Netns::new("csv");
    // a process name with a comma, a quote and a space
    let script = "import socket,sys\n\
        open('/proc/self/comm','w').write('a,b\"c d')\n\
        s=socket.socket(); s.bind(('127.0.0.1',3160)); s.listen()\n\
        print('READY',flush=True); sys.stdin.read()\n";
    let _p = start(&ns, &["/usr/bin/python3", "-c", script], None);
    let _l = ns.enter(|| TcpListener::bind("[::1]:3161").unwrap());
    let csv_text = ns.sockwho_ok(&["-tlnp", "--format", "csv"]);
    let json = ns.json(&["-tlnp"]);
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header[..6],
        [
            "netns_name",
            "netns_inode",
            "netns_pid",
            "proto",
            "family",
            "state"
        ]
    );
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), sockets(&json).len());
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    for (rec, s) in records.iter().zip(sockets(&json)) {
        assert_eq!(rec[col("local_port")], s["local"]["port"].to_string());
        assert_eq!(
            rec[col("local_addr")],
            *s["local"]["addr"].as_str().unwrap()
        );
        assert_eq!(rec[col("state")], *s["state"].as_str().unwrap());
        assert_eq!(rec[col("direction")], *s["direction"].as_str().unwrap());
        assert_eq!(&rec[col("remote_addr")], "", "null is empty");
    }
    let py = records
        .iter()
        .find(|r| &r[col("local_port")] == "3160")
        .unwrap();
    assert!(
        py[col("processes")].ends_with("/a,b\"c d"),
        "{:?}",
        &py[col("processes")]
    );
    assert!(
        csv_text.contains("\"a,b\"\"c d\"") || csv_text.contains("/a,b\"\"c d\""),
        "RFC 4180 quoting: {csv_text}"
    );
    // every field of the JSON socket has its column
    fn leaves(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) if prefix != "processes" => {
                for (k, v) in o {
                    let p = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}_{k}")
                    };
                    leaves(&p, v, out);
                }
            }
            // a null object (no remote, no ftp) stands for all its columns
            Value::Null => out.push(format!("{prefix}_")),
            _ => out.push(prefix.to_string()),
        }
    }
    let mut keys = Vec::new();
    leaves("", &sockets(&json)[0], &mut keys);
    for k in keys {
        let found = match k.strip_suffix('_') {
            Some(object) => header.iter().any(|h| h.starts_with(&format!("{object}_"))),
            None => header.contains(&k),
        };
        assert!(found, "JSON field {k} has no CSV column");
    }
}

/// Runs sockwho in `ns` and returns the local ports of the rows it lists (JSON).
fn ports(ns: &Netns, args: &[&str]) -> Vec<u16> {
    let mut p: Vec<u16> = sockets(&ns.json(args))
        .iter()
        .map(|s| s["local"]["port"].as_u64().unwrap() as u16)
        .collect();
    p.sort_unstable();
    p
}

#[test]
fn filters_on_real_sockets() {
    if !can_use_netns("filters_on_real_sockets") {
        return;
    }
    let ns = Netns::new("filter");
    ns.sysctl("net.ipv4.ip_local_port_range", "30000 30999");
    let keep = ns.enter(|| {
        let a = TcpListener::bind("127.0.0.1:3200").unwrap();
        let b = TcpListener::bind("127.0.0.2:3201").unwrap();
        let ssh = TcpListener::bind("0.0.0.0:22").unwrap();
        let c1 = TcpStream::connect("127.0.0.1:3200").unwrap();
        let c2 = TcpStream::connect("127.0.0.2:3201").unwrap();
        let (s1, _) = a.accept().unwrap();
        let (s2, _) = b.accept().unwrap();
        (a, b, ssh, c1, c2, s1, s2)
    });
    let c1 = keep.3.local_addr().unwrap().port();
    let c2 = keep.4.local_addr().unwrap().port();
    assert_eq!(ports(&ns, &["-tan", "--sport", "3200"]), vec![3200, 3200]);
    assert_eq!(ports(&ns, &["-tan", "--dport", "3200-3201"]), {
        let mut v = vec![c1, c2];
        v.sort_unstable();
        v
    });
    assert_eq!(ports(&ns, &["-tan", "--port", "3201"]), {
        let mut v = vec![c2, 3201, 3201];
        v.sort_unstable();
        v
    });
    assert_eq!(ports(&ns, &["-tan", "--sport", "ssh"]), vec![22]);
    assert_eq!(
        ports(
            &ns,
            &["-tan", "--src", "127.0.0.2/32", "--state", "listening"]
        ),
        vec![3201]
    );
    assert_eq!(
        ports(&ns, &["-tan", "--dst", "127.0.0.2", "--direction", "out"]),
        vec![c2]
    );
    assert_eq!(
        ports(&ns, &["-tan", "--state", "established", "--class", "eph"]),
        {
            let mut v = vec![c1, c2];
            v.sort_unstable();
            v
        }
    );
    assert_eq!(ports(&ns, &["-tan", "--class", "wk"]), vec![22]);
    // AND across kinds, OR within one
    assert_eq!(
        ports(
            &ns,
            &[
                "-tan", "--sport", "3200", "--sport", "3201", "--state", "listen"
            ]
        ),
        vec![3200, 3201]
    );
    assert!(ports(&ns, &["-tan", "--sport", "3200", "--dport", "22"]).is_empty());
    // by owner: a python process's listener
    let script = "import socket,sys\ns=socket.socket(); s.bind(('127.0.0.1',3202)); s.listen()\nprint('READY',flush=True); sys.stdin.read()\n";
    let py = start(&ns, &["/usr/bin/python3", "-c", script], None);
    assert_eq!(
        ports(&ns, &["-tan", "--pid", &py.0.id().to_string()]),
        vec![3202]
    );
    // the same through /proc
    assert_eq!(
        ports(&ns, &["-tan", "--sport", "3200", "--source", "procfs"]),
        vec![3200, 3200]
    );
    // the table too
    let table = ns.sockwho_ok(&["-tan", "--sport", "3201"]);
    assert_eq!(table.lines().count(), 2 + 2, "{table}");
}

#[test]
fn a_malformed_filter_is_a_one_line_usage_error() {
    for args in [
        &["--sport", "nosuchservice"][..],
        &["--dport", "70000"],
        &["--port", "3000-2000"],
        &["--src", "10.0.0.0/33"],
        &["--dst", "not-an-address"],
        &["--state", "bogus"],
        &["--direction", "sideways"],
        &["--class", "huge"],
        &["--pid", "abc"],
        &["--interval", "0"],
        &["--count", "0"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("sockwho: "), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// Drives the full-screen view on a pseudo-terminal: the screen, a resize,
/// and `q`, after which the terminal must be as it was.
const PTY_DRIVER: &str = r#"
import fcntl, os, pty, select, signal, struct, sys, termios, time
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execvp(argv[0], argv)
def winsize(rows, cols):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack('HHHH', rows, cols, 0, 0))
winsize(30, 120)
before = termios.tcgetattr(fd)
out = b''
def read_for(seconds):
    global out
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 65536)
            except OSError:
                return
read_for(1.5)
sys.stdout.write('FRAME1 %d\n' % len(out))
mark = len(out)
winsize(30, 40)
read_for(1.0)
sys.stdout.write('RESIZED %d\n' % len(out))
os.write(fd, b'q')
read_for(1.0)
_, status = os.waitpid(pid, 0)
after = termios.tcgetattr(fd)
sys.stdout.write('EXIT %d\n' % os.waitstatus_to_exitcode(status))
sys.stdout.write('LFLAG_SAME %s\n' % (before[3] == after[3]))
sys.stdout.buffer.write(b'OUTPUT ' + out.hex().encode() + b'\n')
sys.stdout.write('SPLIT %d\n' % mark)
"#;

/// Issue 11: the interactive view on a pseudo-terminal. ratatui redraws
/// only the cells that change: no frame clears the screen (the one clear is
/// ratatui's after the resize), and after the resize to 40 columns nothing
/// is written past the 40th.
#[test]
fn the_interactive_view_redraws_in_place_and_q_restores_the_terminal() {
    if !can_use_netns("the_interactive_view_redraws_in_place_and_q_restores_the_terminal") {
        return;
    }
    let ns = Netns::new("pty");
    let _keep = ns.enter(|| {
        let l = TcpListener::bind("127.0.0.1:3300").unwrap();
        let c = TcpStream::connect("127.0.0.1:3300").unwrap();
        (l, c)
    });
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            "/usr/bin/python3",
            "-c",
            PTY_DRIVER,
        ])
        .args([BIN, "-tan", "-c", "--interval", "0.3"])
        .env("TERM", "xterm")
        .output()
        .unwrap();
    let report = String::from_utf8(out.stdout).unwrap();
    let field = |name: &str| {
        report
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("{name} in {report}"))
            .to_string()
    };
    assert_eq!(field("EXIT"), "0", "q quits with status 0");
    assert_eq!(
        field("LFLAG_SAME"),
        "True",
        "the terminal modes are restored"
    );
    let hex = field("OUTPUT");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let screen = String::from_utf8_lossy(&bytes).into_owned();
    assert!(
        screen.starts_with("\x1b[?1049h"),
        "enters the alternate screen"
    );
    assert!(
        screen.trim_end().ends_with("\x1b[?1049l"),
        "leaves it: {:?}",
        &screen[screen.len().saturating_sub(80)..]
    );
    assert!(screen.contains("\x1b[?25h"), "shows the cursor again");
    assert!(screen.contains("\x1b[?1000h"), "follows the mouse's wheel");
    assert!(screen.contains("\x1b[?1000l"), "and stops at the end");
    let split: usize = field("SPLIT").parse().unwrap();
    let before = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let after = String::from_utf8_lossy(&bytes[split..]).into_owned();
    // what a person saw before the resize, at 120x30
    let (seen, overflow) = emulate(&before, 120, 30);
    assert!(!overflow);
    let text = seen.join("\n");
    assert!(text.starts_with("sockwho "), "the header: {text}");
    assert!(text.contains("ESTABLISHED 2,"), "counts by state: {text}");
    assert!(text.contains("rows 1-3 of 3 | sort: state"), "{text}");
    assert!(text.contains("127.0.0.1:3300"), "the connection: {text}");
    assert!(text.contains("? help") && text.contains("q quit"), "{text}");
    // several refreshes (the clock, the ages), none clearing the screen
    // nor writing again what did not change
    assert_eq!(before.matches("0.3s:").count(), 1, "{before:?}");
    assert_eq!(before.matches("\x1b[2J").count(), 0, "{before:?}");
    // but ratatui's after the resize (a clear of its own, and the backend's)
    let clears = after.replace("\x1b[2J\x1b[2J", "\x1b[2J");
    assert!(clears.matches("\x1b[2J").count() <= 1, "{after:?}");
    // after the resize to 40 columns: drawn again, nothing past the 40th
    let (seen, overflow) = emulate(&after, 40, 30);
    assert!(!overflow, "written past the 40th column: {after:?}");
    let text = seen.join("\n");
    assert!(text.contains("127.0.0.1:3300"), "{text}");
    assert!(text.contains("hidden:"), "{text}");
}

/// The screen a terminal of `cols` x `rows` shows after `s`, as far as
/// ratatui writes it (cursor moves, SGR, clears, printed characters), and
/// whether anything was written past the last column.
fn emulate(s: &str, cols: usize, rows: usize) -> (Vec<String>, bool) {
    let mut grid = vec![vec![' '; cols]; rows];
    let (mut row, mut col, mut overflow) = (0usize, 0usize, false);
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut params = String::new();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() || c == '~' {
                        let mut nums = params.split(';').map(|n| n.parse::<usize>().unwrap_or(1));
                        match c {
                            'H' => {
                                row = nums.next().unwrap_or(1).saturating_sub(1);
                                col = nums.next().unwrap_or(1).saturating_sub(1);
                            }
                            'J' if params == "2" => grid = vec![vec![' '; cols]; rows],
                            _ => {}
                        }
                        break;
                    }
                    params.push(c);
                }
            }
            '\x1b' => {
                chars.next();
            }
            '\r' => col = 0,
            '\n' => row += 1,
            c if c.is_control() => {}
            c => {
                if col >= cols || row >= rows {
                    overflow = true;
                } else {
                    grid[row][col] = c;
                }
                col += 1;
            }
        }
    }
    let lines = grid
        .into_iter()
        .map(|l| l.into_iter().collect::<String>().trim_end().to_string())
        .collect();
    (lines, overflow)
}

#[test]
fn the_kernel_filters_ports_so_only_matches_cross() {
    if !can_use_netns("the_kernel_filters_ports_so_only_matches_cross") {
        return;
    }
    let ns = Netns::new("kfilter");
    let _keep = ns.enter(|| {
        let busy = TcpListener::bind("127.0.0.1:3400").unwrap();
        let quiet = TcpListener::bind("127.0.0.1:3401").unwrap();
        let mut held = Vec::new();
        for _ in 0..300 {
            held.push(TcpStream::connect("127.0.0.1:3400").unwrap());
            held.push(busy.accept().unwrap().0);
        }
        for _ in 0..2 {
            held.push(TcpStream::connect("127.0.0.1:3401").unwrap());
            held.push(quiet.accept().unwrap().0);
        }
        (busy, quiet, held)
    });
    let said = |args: &[&str]| {
        let mut argv = vec!["-v", "-4"];
        argv.extend_from_slice(args);
        let out = ns.sockwho(&argv);
        assert!(out.status.success());
        let err = String::from_utf8(out.stderr).unwrap();
        let line = err
            .lines()
            .find(|l| l.contains("netlink tcp/inet"))
            .unwrap_or_else(|| panic!("{err}"))
            .to_string();
        (line, String::from_utf8(out.stdout).unwrap())
    };
    let (line, _) = said(&["-tan"]);
    assert!(
        line.contains("the kernel returned 606 sockets and 0 listeners"),
        "{line}"
    );
    let (line, table) = said(&["-tan", "--sport", "3401"]);
    assert!(
        line.contains("the kernel returned 3 sockets (filtered in the kernel)"),
        "{line}"
    );
    assert_eq!(table.lines().count(), 2 + 3, "{table}");
    let (line, _) = said(&["-tn", "--dport", "3401"]);
    assert!(
        line.contains("the kernel returned 2 sockets (filtered in the kernel) and 2 listeners"),
        "{line}"
    );
    let (line, _) = said(&["-tan", "--src", "127.0.0.9"]);
    assert!(line.contains("the kernel returned 0 sockets"), "{line}");
}

#[test]
fn a_refresh_walks_proc_only_for_sockets_not_seen_before() {
    if !can_use_netns("a_refresh_walks_proc_only_for_sockets_not_seen_before") {
        return;
    }
    let ns = Netns::new("cache");
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:3500").unwrap());
    let mut child = Command::new("ip")
        .args([
            "netns",
            "exec",
            &ns.name,
            BIN,
            "-tanp",
            "-v",
            "-c",
            "--interval",
            "0.3",
            "--count",
            "8",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // after the third refresh, a new connection: one more walk, no more
    let mut blocks = 0;
    let mut keep = None;
    for line in lines.by_ref() {
        if line.unwrap().starts_with("sockwho 20") {
            blocks += 1;
            if blocks == 3 {
                let c = ns.enter(|| TcpStream::connect("127.0.0.1:3500").unwrap());
                keep = Some((c, listener.accept().unwrap()));
            }
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(blocks, 8);
    assert!(
        err.contains("owners: /proc walked 2 times in 8 refreshes"),
        "{err}"
    );
    drop(keep);
}

/// Issue 11: every machine-readable watch stream parses line by line, with
/// no text line mixed in, and notices are said once each as they occur.
#[test]
fn every_machine_watch_stream_parses_line_by_line() {
    if !can_use_netns("every_machine_watch_stream_parses_line_by_line") {
        return;
    }
    let ns = Netns::new("streams");
    let _keep = ns.enter(|| {
        let l = TcpListener::bind("127.0.0.1:3400").unwrap();
        let c = TcpStream::connect("127.0.0.1:3400").unwrap();
        (l, c)
    });
    let watch = |format: &str| {
        let out = ns.sockwho(&[
            "-tan",
            "-v",
            "-c",
            "--count",
            "4",
            "--interval",
            "0.05",
            "--format",
            format,
        ]);
        assert!(out.status.success());
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // JSON: one compact document per line per refresh, each with its time
    let (json, err) = watch("json");
    let docs: Vec<Value> = json
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(docs.len(), 4, "{json}");
    for d in &docs {
        assert!(d["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{d}");
        assert_eq!(sockets(d).len(), 3);
    }
    // the -v lines of each refresh are said once, not piled up at the end
    let lines: Vec<&str> = err.lines().collect();
    let unique: std::collections::HashSet<&&str> = lines.iter().collect();
    assert_eq!(lines.len(), unique.len(), "a notice said twice: {err}");
    assert!(err.contains("owners: /proc walked"), "{err}");
    // CSV: the header once, a time column first
    let (csv, _) = watch("csv");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    assert_eq!(&reader.headers().unwrap()[0], "time");
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(records.len(), 4 * 3, "{csv}");
    assert!(records.iter().all(|r| r[0].ends_with('Z')));
    // JSON Lines: every line an event
    let (jsonl, _) = watch("jsonl");
    let events: Vec<Value> = jsonl
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(events.iter().filter(|e| e["event"] == "tick").count(), 4);
}

/// A tmux server of the test's own (`tmux -L`), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn run(&self, args: &[&str]) -> std::process::Output {
        Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux")
    }

    /// What the window shows, line by line.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "w"]).stdout).into_owned()
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "w"];
        args.extend_from_slice(keys);
        assert!(self.run(&args).status.success());
    }

    fn type_text(&self, text: &str) {
        assert!(
            self.run(&["send-keys", "-t", "w", "-l", text])
                .status
                .success()
        );
    }

    /// Waits for the screen to show what `ok` wants (a refresh is 0.2 s).
    fn wait_for(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let screen = self.screen();
            if ok(&screen) {
                return screen;
            }
            assert!(Instant::now() < end, "{what}, never shown:\n{screen}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Issue 11: the interactive view on a real terminal, driven with keys as a
/// person would, read back as the window shows it (`tmux capture-pane`): in
/// a namespace of the test's own, with known sockets (a listener on 3700
/// with 40 connections to it, and an FTP control connection to 21).
#[test]
fn the_interactive_view_in_tmux_scrolls_sorts_filters_and_quits() {
    use crate::harness::{TMUX, has_tools};
    let test = "the_interactive_view_in_tmux_scrolls_sorts_filters_and_quits";
    if !can_use_netns(test) || !has_tools(test, &[TMUX]) {
        return;
    }
    let ns = Netns::new("tmux");
    let keep = ns.enter(|| {
        let l = TcpListener::bind("127.0.0.1:3700").unwrap();
        let ftp = TcpListener::bind("127.0.0.1:21").unwrap();
        let mut held = Vec::new();
        for _ in 0..40 {
            held.push(TcpStream::connect("127.0.0.1:3700").unwrap());
            held.push(l.accept().unwrap().0);
        }
        held.push(TcpStream::connect("127.0.0.1:21").unwrap());
        held.push(ftp.accept().unwrap().0);
        (l, ftp, held)
    });
    // every port a row can show: a cut one would be another number
    let mut ports: std::collections::HashSet<u16> = [3700, 21].into();
    for s in &keep.2 {
        ports.insert(s.local_addr().unwrap().port());
    }
    let dir = tempfile::tempdir().unwrap();
    let status = dir.path().join("status");
    let command = format!(
        "ip netns exec {} {BIN} -tan -c --interval 0.2; echo $? > {}",
        ns.name,
        status.display()
    );
    let tmux = Tmux {
        socket: format!("sockwho-test-{}", std::process::id()),
    };
    let started = tmux.run(&[
        "new-session",
        "-d",
        "-s",
        "w",
        "-x",
        "100",
        "-y",
        "30",
        &command,
    ]);
    assert!(started.status.success(), "{started:?}");
    let rows = |first: usize, last: usize, of: usize| {
        move |s: &str| s.contains(&format!("rows {first}-{last} of {of} "))
    };
    // 84 rows: two listeners, 82 ends of connections; 25 fit
    let first = tmux.wait_for("the first rows", rows(1, 25, 84));
    let lines: Vec<&str> = first.lines().collect();
    assert!(lines[0].starts_with("sockwho "), "{first}");
    assert!(
        first.contains("84 sockets; ESTABLISHED 82, LISTEN 2;"),
        "{first}"
    );
    assert!(first.contains("sort: state"), "{first}");
    assert!(
        first.contains("Local Address") && first.contains("Age"),
        "{first}"
    );
    assert!(lines.last().unwrap().contains("q quit"), "{first}");
    assert!(first.lines().all(|l| l.chars().count() <= 100));
    // scroll: a page, a row, the end, the start
    tmux.keys(&["PageDown"]);
    tmux.wait_for("a page down", rows(26, 50, 84));
    tmux.keys(&["Down"]);
    tmux.wait_for("a row down", rows(27, 51, 84));
    tmux.keys(&["End"]);
    tmux.wait_for("the end", rows(60, 84, 84));
    tmux.keys(&["Home"]);
    tmux.wait_for("the start", rows(1, 25, 84));
    // sort by local port: port 21's connection first
    tmux.keys(&["s"]);
    let sorted = tmux.wait_for("the sort", |s| s.contains("sort: local port"));
    let first_row = sorted
        .lines()
        .skip_while(|l| !l.contains("Local Address"))
        .nth(1)
        .unwrap();
    assert!(first_row.contains("127.0.0.1:21 "), "{sorted}");
    // a filter, then a bad one: said, the view goes on with the good one
    tmux.keys(&["/"]);
    tmux.type_text("sport = :3700");
    tmux.keys(&["Enter"]);
    tmux.wait_for("the filter", |s| {
        s.contains("rows 1-25 of 41 ") && s.contains("filter: sport = :3700")
    });
    tmux.keys(&["/"]);
    tmux.type_text(" or nonsense");
    tmux.keys(&["Enter"]);
    let bad = tmux.wait_for("the bad filter's error", |s| {
        s.contains("filter: unexpected 'nonsense'")
    });
    assert!(
        bad.contains(" of 41 | sort: local port | filter: sport = :3700 "),
        "{bad}"
    );
    // the FTP pane
    tmux.keys(&["f"]);
    let pane = tmux.wait_for("the FTP pane", |s| s.contains("FTP sessions: 1"));
    assert!(pane.contains("ftp#1"), "{pane}");
    assert!(pane.contains("control 127.0.0.1:"), "{pane}");
    tmux.keys(&["f"]);
    tmux.wait_for("the pane closed", |s| !s.contains("FTP sessions"));
    // help, closed by any key
    tmux.keys(&["?"]);
    tmux.wait_for("help", |s| {
        s.contains("keys (any key closes)") && s.contains("q, Ctrl-C")
    });
    tmux.keys(&["x"]);
    tmux.wait_for("help closed", |s| !s.contains("any key closes"));
    // a narrower window: whole columns go, said in the header, no port cut
    tmux.keys(&["/"]);
    tmux.keys(&["C-u"]);
    for _ in 0..30 {
        tmux.keys(&["BSpace"]);
    }
    tmux.keys(&["Enter"]);
    tmux.wait_for("no filter", |s| {
        s.contains(" of 84 ") && !s.contains("filter:")
    });
    assert!(
        tmux.run(&["resize-window", "-t", "w", "-x", "50", "-y", "30"])
            .status
            .success()
    );
    let narrow = tmux.wait_for("the narrow window", |s| {
        s.contains("hidden:") && s.lines().all(|l| l.chars().count() <= 50)
    });
    let mut seen = 0;
    for word in narrow.split_whitespace() {
        if let Some(port) = word.strip_prefix("127.0.0.1:") {
            let port: u16 = port.parse().unwrap_or_else(|_| panic!("{word}: {narrow}"));
            assert!(ports.contains(&port), "{word} is no port here: {narrow}");
            seen += 1;
        }
    }
    assert!(seen >= 10, "{narrow}");
    // q quits, with status 0
    tmux.keys(&["q"]);
    let end = Instant::now() + Duration::from_secs(10);
    while !status.exists() {
        assert!(Instant::now() < end, "q did not quit: {}", tmux.screen());
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(std::fs::read_to_string(&status).unwrap().trim(), "0");
    drop(keep);
}
