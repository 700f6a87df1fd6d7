//! Issue 15: the summary, the Prometheus exposition and `--serve`, on real
//! sockets in namespaces made here: promtool accepts every output, a real
//! Prometheus server scrapes the server and PromQL counts what the test
//! opened, the server holds under load and bad clients, and
//! `sockwho_connections` stays bounded on 10,000 remote ports.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{BIN, NFT, Netns, PROMETHEUS, PROMTOOL, can_use_netns, has_tools, reset};
use crate::twohosts::{Hosts, SRV4, libunftp, start, suppaftp_download};
use sockwho::render::escape::hazards;

/// Where the servers listen inside their namespace.
const SERVE: &str = "127.0.0.1:9823";

/// A sample of the exposition.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

impl Sample {
    fn label(&self, key: &str) -> &str {
        self.labels.get(key).map_or("", String::as_str)
    }
}

/// Parses the text exposition format (0.0.4) strictly: HELP and TYPE
/// before a family's samples, every sample of a declared family, label
/// values quoted with `\\`, `\"` and `\n` escapes, no series twice.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let name_ok = |n: &str| {
        !n.is_empty()
            && n.chars().enumerate().all(|(i, c)| {
                c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
            })
    };
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut seen = std::collections::HashSet::new();
    let mut samples = Vec::new();
    if !text.ends_with('\n') {
        return Err("no newline at the end".into());
    }
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name, what) = (words.next(), words.next(), words.next());
            match (kind, name, what) {
                (Some("HELP"), Some(n), Some(_)) if name_ok(n) => {}
                (Some("TYPE"), Some(n), Some(t)) if name_ok(n) => {
                    if !["gauge", "counter"].contains(&t) {
                        return Err(format!("type {t}: {line}"));
                    }
                    typed.insert(n.to_string(), t.to_string());
                }
                _ => return Err(format!("comment: {line:?}")),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| format!("no value: {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|_| format!("value {value:?}: {line:?}"))?;
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (
                n,
                rest.strip_suffix('}')
                    .ok_or_else(|| format!("labels: {line:?}"))?,
            ),
            None => (series, ""),
        };
        if !name_ok(name) || !typed.contains_key(name) {
            return Err(format!("sample of no declared family: {line:?}"));
        }
        let mut map = BTreeMap::new();
        let mut chars = labels.chars().peekable();
        while chars.peek().is_some() {
            let key: String = chars.by_ref().take_while(|&c| c != '=').collect();
            if !name_ok(&key) || chars.next() != Some('"') {
                return Err(format!("label {key:?}: {line:?}"));
            }
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => match chars.next() {
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        Some('n') => value.push('\n'),
                        other => return Err(format!("escape {other:?}: {line:?}")),
                    },
                    Some('"') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated value: {line:?}")),
                }
            }
            match chars.next() {
                Some(',') | None => {}
                Some(c) => return Err(format!("{c:?} after a label: {line:?}")),
            }
            if map.insert(key.clone(), value).is_some() {
                return Err(format!("label {key} twice: {line:?}"));
            }
        }
        if !seen.insert((name.to_string(), map.clone())) {
            return Err(format!("series twice: {line:?}"));
        }
        samples.push(Sample {
            name: name.to_string(),
            labels: map,
            value,
        });
    }
    Ok(samples)
}

fn of<'a>(samples: &'a [Sample], name: &str) -> impl Iterator<Item = &'a Sample> {
    samples.iter().filter(move |s| s.name == name)
}

/// `promtool check metrics` on `text`: no problem found, nothing said.
fn promtool(what: &str, text: &[u8]) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool");
    child.stdin.take().unwrap().write_all(text).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics on {what} ({}): {}{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(text)
    );
}

/// An HTTP answer.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }
}

/// Sends `request` as it is and reads the answer until the server closes:
/// the head parsed, the body checked against its Content-Length.
fn exchange(addr: SocketAddr, request: &[u8]) -> std::io::Result<Reply> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.write_all(request)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let bad =
        |why: &str| std::io::Error::other(format!("{why}: {:?}", String::from_utf8_lossy(&raw)));
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("head"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("status line"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let reply = Reply {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    };
    if let Some(len) = reply.header("content-length") {
        let is_head = request.starts_with(b"HEAD ");
        let want: usize = len.parse().map_err(|_| bad("content-length"))?;
        if !is_head && want != reply.body.len() {
            return Err(bad(&format!("{} bytes of {want}", reply.body.len())));
        }
    }
    Ok(reply)
}

fn get(addr: SocketAddr, path: &str) -> std::io::Result<Reply> {
    exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: sockwho\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

/// `sockwho --serve` in a namespace, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    stderr: tempfile::NamedTempFile,
}

impl Server {
    fn start(ns: &Netns, args: &[&str]) -> Server {
        let stderr = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, BIN, "--serve", SERVE])
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr.reopen().unwrap())
            .spawn()
            .expect("sockwho --serve");
        let server = Server {
            child,
            addr: SERVE.parse().unwrap(),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let addr = server.addr;
        while !ns.enter(|| TcpStream::connect(addr).is_ok()) {
            assert!(
                Instant::now() < deadline,
                "the server did not start: {}",
                server.said()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }

    /// What it said on stderr so far.
    fn said(&self) -> String {
        std::fs::read_to_string(self.stderr.path()).unwrap_or_default()
    }

    /// Its resident memory, KiB (`ip netns exec` execs it: the child's pid is its own).
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Listeners and connections the tests count: TCP listeners on
/// 127.0.0.1:20001-20003 and `n` connections to 20001, held open.
struct Opened {
    _listeners: Vec<TcpListener>,
    _conns: Vec<(TcpStream, TcpStream)>,
}

fn open(ns: &Netns, n: usize) -> Opened {
    ns.enter(|| {
        let listeners: Vec<TcpListener> = (20001..=20003)
            .map(|p| TcpListener::bind(("127.0.0.1", p)).unwrap())
            .collect();
        let conns = (0..n)
            .map(|_| {
                let c = TcpStream::connect("127.0.0.1:20001").unwrap();
                (c, listeners[0].accept().unwrap().0)
            })
            .collect();
        Opened {
            _listeners: listeners,
            _conns: conns,
        }
    })
}

/// A process named (comm and argv[0]) `ev"il\` ESC `[2J,x`, holding a
/// TCP listener on 7900 and a UDP socket on 7901.
const HOSTILE: &str = r#"
import subprocess, sys
name = 'ev"il\\\x1b[2J,x'
child = """
import socket, sys
open('/proc/self/comm', 'w').write(sys.argv[1])
s = socket.socket(); s.bind(('127.0.0.1', 7900)); s.listen()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 7901))
print('READY', flush=True); sys.stdin.read()
"""
p = subprocess.Popen([name, '-c', child, name], executable='/usr/bin/python3',
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
print(p.stdout.readline().decode().strip(), flush=True)
sys.stdin.read()
"#;

/// Says a figure beside the test's result, where a person sees it.
fn say(test: &str, what: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{test}: {what}");
}

/// Every output promtool is given: one look with and without -p, every
/// namespace, a hostile process name, and a /metrics answer.
#[test]
fn promtool_accepts_every_output_issue_15() {
    let test = "promtool_accepts_every_output_issue_15";
    if !can_use_netns(test) || !has_tools(test, &[PROMTOOL]) {
        return;
    }
    let ns = Netns::new("prom");
    let _opened = open(&ns, 2);
    // a process with a name that would break a label or a terminal
    let _hostile = start(&ns, &["/usr/bin/python3", "-c", HOSTILE], None);
    let looks: &[&[&str]] = &[
        &["--format", "prometheus"],
        &["--format", "prometheus", "-p"],
        &[
            "--format",
            "prometheus",
            "-p",
            "--netns",
            "/proc/self/ns/net",
        ],
        &["--format", "prometheus", "-t", "--sport", "20001"],
    ];
    for args in looks {
        let out = ns.sockwho_ok(args);
        promtool(&format!("{args:?}"), out.as_bytes());
        assert!(hazards(out.as_bytes()).is_empty(), "{args:?}: {out}");
        let samples = parse(&out).unwrap();
        assert!(of(&samples, "sockwho_build_info").count() == 1, "{out}");
    }
    let with_p = parse(&ns.sockwho_ok(&["--format", "prometheus", "-p"])).unwrap();
    let hostile = of(&with_p, "sockwho_listeners")
        .find(|s| s.label("port") == "7900")
        .expect("the hostile process's listener");
    // the exposition's escapes undone: sockwho's own escaping is left
    assert_eq!(
        hostile.label("process"),
        "ev\"il\\\\\\x1b[2J\\x2cx",
        "{hostile:?}"
    );
    // every namespace of the host, from the host
    let all = Command::new(BIN)
        .args(["--format", "prometheus", "--all-netns"])
        .output()
        .unwrap();
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    promtool("--all-netns", &all.stdout);
    let all = parse(std::str::from_utf8(&all.stdout).unwrap()).unwrap();
    assert!(
        of(&all, "sockwho_listeners")
            .any(|s| s.label("netns") == ns.name && s.label("port") == "20002"),
        "--all-netns labels each namespace"
    );
    // a /metrics answer, namespaces named
    let server = Server::start(&ns, &["-p", "--netns", "/proc/self/ns/net"]);
    let reply = ns.enter(|| get(server.addr, "/metrics")).unwrap();
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    promtool("/metrics", &reply.body);
    let served = parse(reply.text()).unwrap();
    assert!(of(&served, "sockwho_sockets").all(|s| !s.label("netns").is_empty()));
    assert!(
        reply
            .text()
            .contains("# TYPE sockwho_connections_closed_total counter\n")
    );
}

/// Issue 15: Prometheus itself scrapes `sockwho --serve` in a namespace,
/// and PromQL over its HTTP API counts the sockets the test opened.
#[test]
fn prometheus_scrapes_serve_and_promql_counts_the_sockets_issue_15() {
    let test = "prometheus_scrapes_serve_and_promql_counts_the_sockets_issue_15";
    if !can_use_netns(test) || !has_tools(test, &[PROMETHEUS]) {
        return;
    }
    let ns = Netns::new("promq");
    let _opened = open(&ns, 4);
    let server = Server::start(&ns, &[]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 2s\n  scrape_timeout: 2s\n\
             scrape_configs:\n  - job_name: sockwho\n    static_configs:\n      - targets: ['{SERVE}']\n"
        ),
    )
    .unwrap();
    let web = "127.0.0.1:9090";
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut prometheus = Command::new("ip")
        .args(["netns", "exec", &ns.name, "prometheus"])
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .spawn()
        .expect("prometheus");
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let prometheus = Kill(&mut prometheus);
    let web: SocketAddr = web.parse().unwrap();
    let query = |promql: &str| -> Option<f64> {
        let path = format!("/api/v1/query?query={}", percent(promql));
        let reply = ns.enter(|| get(web, &path)).ok()?;
        let doc: Value = serde_json::from_slice(&reply.body).ok()?;
        let result = doc["data"]["result"].as_array()?;
        result.first()?["value"][1].as_str()?.parse().ok()
    };
    let listeners = r#"count(sockwho_listeners{job="sockwho",proto="tcp",port=~"2000[1-3]"})"#;
    let inbound =
        r#"sum(sockwho_connections{job="sockwho",direction="inbound",service_port="20001"})"#;
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = (None, None);
    while Instant::now() < deadline {
        seen = (query(listeners), query(inbound));
        if seen.0.is_some() && seen.1.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    drop(prometheus);
    assert_eq!(
        seen,
        (Some(3.0), Some(4.0)),
        "PromQL on what Prometheus scraped; prometheus said: {}; sockwho said: {}",
        std::fs::read_to_string(log.path()).unwrap_or_default(),
        server.said()
    );
}

/// PromQL in a query string.
fn percent(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

/// Opens and resets connections to a listener of its own in `ns` until
/// told to stop: sockets come and go under the scrapes.
fn churn(ns: &Netns, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    ns.spawn(move || {
        let l = TcpListener::bind("127.0.0.1:7000").unwrap();
        let mut n = 0;
        while !stop.load(Ordering::SeqCst) {
            let c = TcpStream::connect("127.0.0.1:7000").unwrap();
            let (a, _) = l.accept().unwrap();
            n += 1;
            if n % 4 == 0 {
                // some stay a moment, so that scrapes see them
                std::thread::sleep(Duration::from_millis(2));
            }
            reset(c);
            drop(a);
        }
        n
    })
}

/// One valid scrape: 200, the whole body, an exposition that parses with
/// the families every scrape has.
fn check_scrape(reply: std::io::Result<Reply>) -> Result<(), String> {
    let reply = reply.map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("status {}", reply.status));
    }
    let samples = parse(reply.text())?;
    if of(&samples, "sockwho_build_info").count() != 1
        || of(&samples, "sockwho_listeners").count() < 3
    {
        return Err(format!("families missing: {}", reply.text()));
    }
    Ok(())
}

/// Issue 15: 50 scrapers, 2,000 requests while connections churn; every
/// answer complete and valid, the memory flat, a line on stderr per kind of
/// problem at most; and bad clients (malformed requests, huge headers, a
/// byte a second, one that closes before its answer) do not stop it.
#[test]
fn serve_holds_under_load_and_bad_clients_issue_15() {
    let test = "serve_holds_under_load_and_bad_clients_issue_15";
    if !can_use_netns(test) {
        return;
    }
    let ns = Netns::new("load");
    let _opened = open(&ns, 8);
    let mut server = Server::start(&ns, &[]);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let churner = churn(&ns, Arc::clone(&stop));

    // 50 scrapers, `n` requests in all; half reuse one connection
    let burst = |n: usize| -> Vec<String> {
        let left = Arc::new(AtomicUsize::new(n));
        let scrapers: Vec<_> = (0..50)
            .map(|i| {
                let left = Arc::clone(&left);
                ns.spawn(move || {
                    let mut failures = Vec::new();
                    let take = || {
                        left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                            .is_ok()
                    };
                    if i % 2 == 0 {
                        while take() {
                            if let Err(e) = check_scrape(get(addr, "/metrics")) {
                                failures.push(e);
                            }
                        }
                    } else {
                        let mut conn = KeepAlive::new(addr);
                        while take() {
                            if let Err(e) = check_scrape(conn.get("/metrics")) {
                                failures.push(e);
                            }
                        }
                    }
                    failures
                })
            })
            .collect();
        scrapers
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    };
    let started = Instant::now();
    let failures = burst(200);
    assert_eq!(failures, Vec::<String>::new(), "warm-up");
    let before = server.rss_kib();
    let failures = burst(1800);
    let after = server.rss_kib();
    let took = started.elapsed();
    assert_eq!(failures, Vec::<String>::new());
    // flat: what the first 200 requests grew to, the next 1,800 keep
    assert!(
        after <= before + 4 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 1,800 requests"
    );
    say(
        test,
        &format!(
            "2,000 scrapes in {:.1} s; RSS {before} KiB after 200, {after} KiB after 2,000",
            took.as_secs_f64()
        ),
    );

    // bad clients, while scrapes go on
    let bad = |request: &[u8]| ns.enter(|| exchange(addr, request));
    let malformed = bad(b"GARBAGE \x00\xff nonsense\r\n\r\n").unwrap();
    assert_eq!(malformed.status, 400, "{malformed:?}");
    let mut huge = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 64 * 1024));
    huge.extend_from_slice(b"\r\n\r\n");
    match bad(&huge) {
        Ok(r) => assert_eq!(r.status, 431, "{r:?}"),
        // closed while the rest was still being sent: refused too
        Err(e) => assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
            ),
            "{e}"
        ),
    }
    assert_eq!(
        bad(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().status,
        404
    );
    let post =
        bad(b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .unwrap();
    assert_eq!(
        (post.status, post.header("allow")),
        (405, Some("GET, HEAD"))
    );
    let head = bad(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    assert!(head.status == 200 && head.body.is_empty(), "{head:?}");
    // closes right after asking, and after reading a little
    for read in [0usize, 100] {
        ns.enter(|| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            let mut buf = vec![0; read];
            s.read_exact(&mut buf).unwrap();
            reset(s);
        });
    }
    // a byte a second: the server closes it within its header timeout,
    // and answers others meanwhile
    let slow = ns.spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        let started = Instant::now();
        for b in b"GET /metrics HTTP/1.1\r\nHost: slowloris\r\nX-Slow: "
            .iter()
            .cycle()
        {
            if s.write_all(&[*b]).is_err() {
                break;
            }
            let mut probe = [0u8; 1];
            s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
            match s.read(&mut probe) {
                Ok(0) | Err(_) if started.elapsed() > Duration::from_secs(40) => break,
                Ok(0) => break,
                _ => {}
            }
        }
        started.elapsed()
    });
    std::thread::sleep(Duration::from_secs(2));
    for _ in 0..5 {
        check_scrape(ns.enter(|| get(addr, "/metrics"))).unwrap();
    }
    let held = slow.join().unwrap();
    assert!(
        held < Duration::from_secs(15),
        "a byte-a-second client held its connection {held:?}"
    );
    say(
        test,
        &format!("a byte-a-second client was closed after {held:?}"),
    );
    stop.store(true, Ordering::SeqCst);
    let churned = churner.join().unwrap();
    assert!(churned > 100, "the churn ran: {churned}");
    check_scrape(ns.enter(|| get(addr, "/metrics"))).unwrap();
    assert!(server.alive(), "{}", server.said());
    // one line per kind of problem, never one per request
    let said = server.said();
    assert!(said.lines().count() <= 6, "{said}");
    say(test, &format!("stderr said: {said:?}"));
}

/// A keep-alive HTTP/1.1 connection, reopened when the server closes it.
struct KeepAlive {
    addr: SocketAddr,
    conn: Option<std::io::BufReader<TcpStream>>,
}

impl KeepAlive {
    fn new(addr: SocketAddr) -> KeepAlive {
        KeepAlive { addr, conn: None }
    }

    /// As an HTTP client does: a request on a reused connection that the
    /// server closed meanwhile (idle or lifetime) is sent again on a new one.
    fn get(&mut self, path: &str) -> std::io::Result<Reply> {
        let reused = self.conn.is_some();
        match self.once(path) {
            Err(e) if reused && e.kind() == std::io::ErrorKind::ConnectionAborted => {
                self.conn = None;
                self.once(path)
            }
            other => other,
        }
    }

    fn once(&mut self, path: &str) -> std::io::Result<Reply> {
        use std::io::BufRead;
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr)?;
            s.set_read_timeout(Some(Duration::from_secs(60)))?;
            self.conn = Some(std::io::BufReader::new(s));
        }
        let Some(conn) = self.conn.as_mut() else {
            unreachable!()
        };
        conn.get_mut()
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: sockwho\r\n\r\n").as_bytes())?;
        let mut status = String::new();
        // nothing at all came back: the server had closed the connection
        let nothing = |e: Option<std::io::Error>| {
            std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                format!("closed before answering: {e:?}"),
            )
        };
        match conn.read_line(&mut status) {
            Ok(0) => return Err(nothing(None)),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return Err(nothing(Some(e)));
            }
            r => {
                r?;
            }
        }
        let code: u16 = status
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("status line {status:?}")))?;
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            conn.read_line(&mut line)?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let reply = Reply {
            status: code,
            headers,
            body: Vec::new(),
        };
        let len: usize = reply
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("no content-length"))?;
        let mut body = vec![0; len];
        let read = conn.read_exact(&mut body);
        if read.is_err() {
            self.conn = None;
        }
        read?;
        if reply.header("connection") == Some("close") {
            self.conn = None;
        }
        Ok(Reply { body, ..reply })
    }
}

/// Holds sockets in forked workers of its own (each under the open-files
/// limit): `udp N FIRST` connects N UDP sockets to 127.0.0.1:FIRST+i;
/// `tcp N FIRST LISTEN` connects N TCP sockets to 127.0.0.1:FIRST+i, which
/// nft redirects to the one listener on LISTEN, accepted here too.
const HOLD: &str = r#"
import os, resource, socket, sys
kind, n, first = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
limit = min(hard, 4096)
resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
per = limit - 64
ready_r, ready_w = os.pipe()
def workers(count, make):
    for lo in range(0, count, per):
        hi = min(count, lo + per)
        if os.fork() == 0:
            keep = [make(i) for i in range(lo, hi)]
            os.write(ready_w, b'.' * (hi - lo))
            sys.stdin.read()
            os._exit(0)
def udp(i):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.connect(('127.0.0.1', first + i))
    return s
want = n
if kind == 'tcp':
    l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(('127.0.0.1', int(sys.argv[4]))); l.listen(4096)
    workers(n, lambda i: l.accept()[0])
    workers(n, lambda i: socket.create_connection(('127.0.0.1', first + i)))
    want = 2 * n
else:
    workers(n, udp)
got = 0
while got < want:
    got += len(os.read(ready_r, want - got))
print('READY', flush=True)
sys.stdin.read()
"#;

/// Issue 15: 10,000 distinct remote ports (UDP, and TCP through an nft
/// redirect) make no more than `--metrics-ports` + 6 series of
/// `sockwho_connections`, and every connection is still counted.
#[test]
fn connections_stay_bounded_on_10000_remote_ports_issue_15() {
    let test = "connections_stay_bounded_on_10000_remote_ports_issue_15";
    if !can_use_netns(test) || !has_tools(test, &[NFT, PROMTOOL]) {
        return;
    }
    let ns = Netns::new("ports");
    ns.sysctl("net.ipv4.ip_local_port_range", "40000 60999");
    ns.exec_ok(&[
        "nft",
        "table ip sockwho { chain out { type nat hook output priority -100; \
         ip daddr 127.0.0.1 tcp dport 20000-29999 redirect to :999; }; }",
    ]);
    let _udp = start(
        &ns,
        &["/usr/bin/python3", "-c", HOLD, "udp", "10000", "30000"],
        None,
    );
    // Connections to different ports may share a source port; redirected to
    // one port, the second of them is given another source port by NAT, from
    // 1024-65535. A listener there could be its new peer (a connection from
    // the listener's port to itself, which direction rightly calls unknown):
    // the listener is on a port below 1024, which NAT never hands out for
    // ports above it.
    let _tcp = start(
        &ns,
        &[
            "/usr/bin/python3",
            "-c",
            HOLD,
            "tcp",
            "10000",
            "20000",
            "999",
        ],
        None,
    );
    for (n, args) in [(50usize, &[][..]), (5, &["--metrics-ports", "5"][..])] {
        let mut argv = vec!["--format", "prometheus"];
        argv.extend_from_slice(args);
        let out = ns.sockwho_ok(&argv);
        promtool(&format!("{argv:?}"), out.as_bytes());
        let samples = parse(&out).unwrap();
        let series: Vec<&Sample> = of(&samples, "sockwho_connections").collect();
        assert!(
            series.len() <= n + 6,
            "{} series of sockwho_connections with --metrics-ports {n}",
            series.len()
        );
        say(
            test,
            &format!(
                "--metrics-ports {n}: {} series of sockwho_connections for 30,000 connections",
                series.len()
            ),
        );
        let count = |proto: &str, dir: &str| -> f64 {
            series
                .iter()
                .filter(|s| s.label("proto") == proto && s.label("direction") == dir)
                .map(|s| s.value)
                .sum()
        };
        assert_eq!(count("udp", "outbound"), 10_000.0, "{series:?}");
        assert_eq!(count("tcp", "outbound"), 10_000.0, "{series:?}");
        assert_eq!(count("tcp", "inbound"), 10_000.0, "{series:?}");
        let inbound = series
            .iter()
            .find(|s| s.label("direction") == "inbound")
            .unwrap();
        assert_eq!(inbound.label("service_port"), "999", "{inbound:?}");
        assert!(series.iter().any(|s| s.label("service_port") == "other"));
    }
}

/// Issue 15: `-s` on real sockets, in text and JSON, with filters and
/// namespaces named.
#[test]
fn the_summary_counts_real_sockets_issue_15() {
    let test = "the_summary_counts_real_sockets_issue_15";
    if !can_use_netns(test) {
        return;
    }
    let ns = Netns::new("sum");
    let _opened = open(&ns, 3);
    let doc: Value = serde_json::from_str(&ns.sockwho_ok(&["-s", "--format", "json"])).unwrap();
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["listeners"]["by_proto"]["tcp"], 3, "{doc}");
    assert_eq!(doc["connections"]["by_direction"]["inbound"], 3, "{doc}");
    assert_eq!(doc["connections"]["by_direction"]["outbound"], 3, "{doc}");
    assert_eq!(
        doc["sockets"]["by_proto"]["tcp"]["by_state"]["ESTABLISHED"],
        6
    );
    let filtered: Value =
        serde_json::from_str(&ns.sockwho_ok(&["-s", "--format", "json", "--sport", "20002"]))
            .unwrap();
    assert_eq!(filtered["sockets"]["total"], 1, "{filtered}");
    let text = ns.sockwho_ok(&["-s"]);
    assert!(
        text.starts_with("Sockets: 9 (tcp 9, udp 0; inet 9, inet6 0)\n"),
        "{text}"
    );
    assert!(text.contains("\nListeners: 3 (tcp 3, udp 0)\n"), "{text}");
    // from the host, into the namespace by name
    let out = Command::new(BIN)
        .args(["-s", "--format", "json", "--netns", &ns.name])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let named: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(named["namespaces"][0]["netns"]["name"], ns.name.as_str());
    assert_eq!(named["namespaces"][0]["listeners"]["total"], 3);
    let out = Command::new(BIN)
        .args(["-s", "--all-netns"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("Network namespace {}:\n", ns.name)),
        "{text}"
    );
    assert!(text.contains(" network namespaces:\nSockets: "), "{text}");
}

/// Issue 15: an active-mode FTP download between two hosts is what the
/// README's alert looks for, on each side.
#[test]
fn an_active_ftp_data_connection_shows_in_the_metrics_issue_15() {
    let test = "an_active_ftp_data_connection_shows_in_the_metrics_issue_15";
    if !can_use_netns(test) {
        return;
    }
    let h = Hosts::new("pftp");
    let _server = libunftp(&h.srv, &format!("{SRV4}:21"), 55000..=55100);
    let _transfer = suppaftp_download(&h.cli, &format!("{SRV4}:21"), suppaftp::Mode::Active);
    for (ns, side) in [(&h.srv, "server"), (&h.cli, "client")] {
        let out = ns.sockwho_ok(&["--format", "prometheus"]);
        let samples = parse(&out).unwrap();
        let value = |name: &str, mode: &str| {
            of(&samples, name)
                .find(|s| s.label("side") == side && s.label("mode") == mode)
                .map(|s| s.value)
        };
        assert_eq!(
            value("sockwho_ftp_data_connections", "active"),
            Some(1.0),
            "{side}: {out}"
        );
        assert_eq!(
            value("sockwho_ftp_sessions", "active"),
            Some(1.0),
            "{side}: {out}"
        );
        assert_eq!(
            value("sockwho_ftp_sessions", "passive"),
            Some(0.0),
            "{side}: {out}"
        );
        let summary: Value =
            serde_json::from_str(&ns.sockwho_ok(&["-s", "--format", "json"])).unwrap();
        assert_eq!(summary["ftp"]["sessions"]["by_side"][side], 1, "{summary}");
        assert_eq!(summary["ftp"]["data_connections"]["by_mode"]["active"], 1);
    }
}

/// Options that cannot be served are usage errors; a port taken is said so.
#[test]
fn serve_refuses_what_it_cannot_do_issue_15() {
    for args in [
        &["--serve", "example.com:80"][..],
        &["--serve", ":9823", "--format", "csv"],
        &["--serve", ":9823", "-c"],
        &["-s", "--format", "prometheus"],
        &["-c", "--format", "prometheus"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
    }
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN).args(["--serve", &addr]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("sockwho: cannot serve on {addr}: "))
            && err.contains("sockwho -tlnp"),
        "{err}"
    );
}

/// README.md's *Prometheus* section lists every metric as the code names
/// it, with its type, and the summary's JSON fields as the output has them.
#[test]
fn the_readme_lists_every_metric_and_summary_field_issue_15() {
    use sockwho::render::metrics::METRICS;
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = |title: &str| -> String {
        let head = format!("\n## {title}\n");
        let start = readme
            .find(&head)
            .unwrap_or_else(|| panic!("no {title} section"))
            + head.len();
        let rest = &readme[start..];
        rest[..rest.find("\n## ").unwrap_or(rest.len())].to_string()
    };
    let prom = section("Prometheus");
    let rows: Vec<(String, String)> = prom
        .lines()
        .filter(|l| l.starts_with("| `sockwho_"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let name = cells[1].trim_matches('`');
            let name = name.split('{').next().unwrap_or(name).to_string();
            (name, cells[2].to_string())
        })
        .collect();
    let documented: Vec<(String, String)> = rows.clone();
    let code: Vec<(String, String)> = METRICS
        .iter()
        .map(|m| (m.name.to_string(), m.kind.name().to_string()))
        .collect();
    assert_eq!(
        documented, code,
        "README.md's metric table, in the code's order"
    );
    for m in METRICS {
        let row = prom
            .lines()
            .find(|l| l.starts_with(&format!("| `{}", m.name)))
            .unwrap();
        for label in m.labels {
            assert!(row.contains(label), "{}: label {label} in {row}", m.name);
        }
    }
    // every field of the summary's JSON is named in the Summary section
    let summary = section("Summary");
    let out = Command::new(BIN)
        .args(["-s", "--format", "json", "--netns", "/proc/self/ns/net"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    fn keys(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                for (k, v) in m {
                    // counts by a word of the output: the words are documented elsewhere
                    if !k.starts_with("by_") {
                        keys(v, out);
                    }
                    out.push(k.clone());
                }
            }
            Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
            _ => {}
        }
    }
    let mut fields = Vec::new();
    keys(&doc, &mut fields);
    for f in fields {
        assert!(
            summary.contains(&format!("`{f}`")),
            "README.md's Summary section: `{f}`"
        );
    }
}

/// The README's scrape config and alert rules are what promtool accepts.
#[test]
fn the_readme_config_and_rules_pass_promtool_issue_15() {
    let test = "the_readme_config_and_rules_pass_promtool_issue_15";
    if !has_tools(test, &[PROMTOOL]) {
        return;
    }
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme
        .find("\n## Prometheus\n")
        .expect("a Prometheus section");
    let rest = &readme[start + 1..];
    let section = &rest[..rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1)];
    let blocks: Vec<&str> = section
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("\n```").next())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut checked = Vec::new();
    for block in blocks {
        let (what, file) = if block.starts_with("groups:") {
            ("rules", "rules.yml")
        } else if block.starts_with("scrape_configs:") {
            ("config", "prometheus.yml")
        } else {
            continue;
        };
        let path = dir.path().join(file);
        std::fs::write(&path, format!("{block}\n")).unwrap();
        let out = Command::new("promtool")
            .args(["check", what])
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "promtool check {what}: {}{}\n{block}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        checked.push(what);
    }
    checked.sort();
    assert_eq!(checked, ["config", "rules"]);
}

/// `sockwho_connections_closed_total` counts the connections the kernel
/// destroyed between scrapes: those that opened and closed in between, and
/// those a scrape listed that closed before the next.
#[test]
fn closed_connections_are_counted_between_scrapes_issue_15() {
    let test = "closed_connections_are_counted_between_scrapes_issue_15";
    if !can_use_netns(test) {
        return;
    }
    let ns = Netns::new("closedtotal");
    let server = Server::start(&ns, &[]);
    let addr = server.addr;
    let closed = |direction: &str| -> f64 {
        let reply = ns.enter(|| get(addr, "/metrics")).expect("a scrape");
        let samples =
            parse(&String::from_utf8_lossy(&reply.body)).unwrap_or_else(|e| panic!("{e}"));
        of(&samples, "sockwho_connections_closed_total")
            .filter(|s| s.label("proto") == "tcp" && s.label("direction") == direction)
            .map(|s| s.value)
            .sum()
    };
    let (inbound0, outbound0) = (closed("inbound"), closed("outbound"));
    // 20 connections that open and close between two scrapes, and 5 that a
    // scrape lists before they close
    let listener = ns.enter(|| TcpListener::bind("127.0.0.1:20011").unwrap());
    ns.enter(|| {
        for _ in 0..20 {
            let c = TcpStream::connect("127.0.0.1:20011").unwrap();
            let (a, _) = listener.accept().unwrap();
            drop((c, a));
        }
    });
    let held: Vec<(TcpStream, TcpStream)> = ns.enter(|| {
        (0..5)
            .map(|_| {
                let c = TcpStream::connect("127.0.0.1:20011").unwrap();
                let (a, _) = listener.accept().unwrap();
                (c, a)
            })
            .collect()
    });
    let _ = closed("inbound"); // lists the five
    drop(held);
    // the destroy events come from a kernel work queue: give them a moment
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (inbound, outbound) = (closed("inbound"), closed("outbound"));
        if inbound - inbound0 >= 25.0 && outbound - outbound0 >= 25.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "closed: inbound {} outbound {} (want 25 each): {}",
            inbound - inbound0,
            outbound - outbound0,
            server.said()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
