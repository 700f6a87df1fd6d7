//! Issue 10 item 3: FTP data connections that last milliseconds (LIST, a
//! small RETR) leave only TIME_WAIT on the server. A one-shot sockwho on the
//! server afterwards ties them to their session with the right mode: with
//! conntrack's ftp helper by its master tuple (`high`), without it by the
//! session's hosts (`same-hosts`, `low`) and the ports' parity. Real servers
//! (libunftp in-process, pyftpdlib) and clients (suppaftp in-process, curl)
//! in two namespaces.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;
use suppaftp::Mode;

use crate::ftp::checked;
use crate::harness::{CURL, NFT, Netns, PYFTPDLIB, can_use_netns, has_tools, sockets};
use crate::twohosts::{CLI4, Hosts, SRV4, start};

/// A libunftp server (anonymous, both modes) serving a 1 KiB file `small`,
/// on a thread in `ns`; stopped on drop.
struct Server {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

fn libunftp(ns: &Netns, passive: std::ops::RangeInclusive<u16>) -> Server {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("small"), vec![b'x'; 1024]).unwrap();
    let root = dir.path().to_path_buf();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = ns.spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = libunftp::ServerBuilder::new(Box::new(move || {
            unftp_sbe_fs::Filesystem::new(root.clone()).unwrap()
        }))
        .passive_ports(passive)
        .active_passive_mode(libunftp::options::ActivePassiveMode::ActiveAndPassive)
        .shutdown_indicator(async move {
            let _ = stopped.await;
            libunftp::options::Shutdown::new().grace_period(Duration::from_millis(50))
        })
        .build()
        .unwrap();
        rt.block_on(server.listen(format!("{SRV4}:21"))).unwrap();
    });
    Server {
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A suppaftp session that ran `rounds` of LIST and RETR of `small` and
/// holds its control connection open until [`Session::quit`].
struct Session {
    control_port: u16,
    quit: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

fn short_transfers(ns: &Netns, mode: Mode, rounds: usize) -> Session {
    let addr: SocketAddr = format!("{SRV4}:21").parse().unwrap();
    let (ready_tx, ready) = mpsc::channel();
    let (quit, quitting) = mpsc::channel::<()>();
    let thread = ns.spawn(move || {
        let mut stream = None;
        for _ in 0..100 {
            match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
                Ok(s) => {
                    stream = Some(s);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        let stream = stream.expect("the server listens");
        let control_port = stream.local_addr().unwrap().port();
        let mut raw = stream.try_clone().unwrap();
        let mut ftp = suppaftp::FtpStream::connect_with_stream(stream).unwrap();
        if mode == Mode::Active {
            ftp = ftp.active_mode(Duration::from_secs(10));
        }
        ftp.set_mode(mode);
        ftp.login("anonymous", "sockwho@test").unwrap();
        for _ in 0..rounds {
            ftp.list(None).unwrap();
            assert_eq!(
                ftp.retr_as_buffer("small").unwrap().into_inner().len(),
                1024
            );
        }
        ready_tx.send(control_port).unwrap();
        let _ = quitting.recv();
        // QUIT, then wait for the server to close first (as curl and most
        // clients' timing let it): its end goes to TIME_WAIT
        use std::io::{Read, Write};
        raw.write_all(b"QUIT\r\n").unwrap();
        let mut rest = Vec::new();
        let _ = raw.read_to_end(&mut rest);
        drop(ftp);
    });
    let control_port = ready
        .recv_timeout(Duration::from_secs(30))
        .expect("the transfers ran");
    Session {
        control_port,
        quit: Some(quit),
        thread: Some(thread),
    }
}

impl Session {
    fn quit(&mut self) {
        drop(self.quit.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.quit();
    }
}

fn port(ep: &Value) -> u16 {
    ep["port"].as_u64().map_or(0, |p| p as u16)
}

fn evidence(s: &Value) -> Vec<&str> {
    s["ftp"]["evidence"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The server's TIME_WAIT sockets towards the client other than the control
/// connection: the session's finished data connections.
fn finished_data(doc: &Value) -> Vec<&Value> {
    sockets(doc)
        .iter()
        .filter(|s| {
            s["state"] == "TIME_WAIT"
                && s["remote"]["addr"] == CLI4
                && port(&s["local"]) != 21
                && port(&s["remote"]) != 21
        })
        .collect()
}

/// One line a socket: what to read when an assertion fails.
fn summary(doc: &Value) -> String {
    sockets(doc)
        .iter()
        .map(|s| {
            format!(
                "{} {}:{} -> {}:{} {} {}\n",
                s["state"],
                s["local"]["addr"],
                s["local"]["port"],
                s["remote"]["addr"],
                s["remote"]["port"],
                s["direction"],
                s["ftp"]
            )
        })
        .collect()
}

/// The session of the control connection from `client_port`.
fn session_of(doc: &Value, client_port: u16) -> u64 {
    let ctl = sockets(doc)
        .iter()
        .find(|s| port(&s["local"]) == 21 && port(&s["remote"]) == client_port)
        .unwrap_or_else(|| panic!("no control connection from {client_port}: {doc:#}"));
    assert_eq!(ctl["ftp"]["role"], "control", "{ctl}");
    ctl["ftp"]["session"].as_u64().unwrap()
}

/// Every finished data connection of `doc` is data of `session` on the
/// server in `mode`, at `confidence`, with `decides` among its evidence;
/// its direction agrees (`checked`). Returns how many there were.
#[track_caller]
fn assert_finished(
    doc: &Value,
    session: u64,
    mode: &str,
    confidence: &str,
    decides: &[&str],
) -> usize {
    let data = finished_data(doc);
    assert!(
        !data.is_empty(),
        "no TIME_WAIT data connection: {}",
        summary(doc)
    );
    for s in &data {
        let f = &s["ftp"];
        assert_eq!(f["role"], "data", "{s}");
        assert_eq!(f["side"], "server", "{s}");
        assert_eq!(f["session"], session, "{s}");
        assert_eq!(f["mode"], mode, "{s}");
        assert_eq!(f["confidence"], confidence, "{s}");
        for e in decides {
            assert!(evidence(s).contains(e), "{e}: {s}");
        }
        // passive: the client opened it; active: this server did
        let opened = if mode == "passive" {
            "inbound"
        } else {
            "outbound"
        };
        assert!(
            s["direction"] == opened || s["direction"] == "unknown",
            "{s}"
        );
    }
    data.len()
}

/// conntrack's ftp helper, assigned with nftables (as ftp.rs does).
fn assign_helper(ns: &Netns, hook: &str) {
    let rules = format!(
        "table inet sockwho {{ ct helper ftp-std {{ type \"ftp\" protocol tcp; }}; \
         chain c {{ type filter hook {hook} priority filter; tcp dport 21 ct helper set \"ftp-std\"; }}; }}"
    );
    ns.exec_ok(&["nft", &rules]);
}

/// LIST and a 1 KiB RETR, three times, in `mode`; then a one-shot look on
/// the server with the control connection open, and another once the
/// client has quit and the server closed first (its end of the control
/// connection in TIME_WAIT).
fn one_session(tag: &str, mode: Mode, helper: bool) -> (Value, Value) {
    let h = Hosts::new(tag);
    if helper {
        assign_helper(&h.srv, "prerouting");
        assign_helper(&h.cli, "output");
    }
    let _server = libunftp(&h.srv, 55000..=55100);
    let mut session = short_transfers(&h.cli, mode, 3);
    let open = checked(h.srv.json(&["-tan"]));
    let id = session_of(&open, session.control_port);
    assert_eq!(id, 1, "{}", summary(&open));
    session.quit();
    let control = format!("dport = :{}", session.control_port);
    for _ in 0..50 {
        let left = h.srv.exec_ok(&["ss", "-tanH", &control]);
        if left.lines().all(|l| l.starts_with("TIME-WAIT")) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let closed = checked(h.srv.json(&["-tan"]));
    let ctl = sockets(&closed)
        .iter()
        .find(|s| port(&s["local"]) == 21 && port(&s["remote"]) == session.control_port);
    assert_eq!(
        ctl.map(|c| &c["state"]),
        Some(&Value::from("TIME_WAIT")),
        "{}",
        summary(&closed)
    );
    (open, closed)
}

#[test]
fn passive_short_transfers_in_time_wait_belong_to_their_session() {
    if !can_use_netns("passive_short_transfers_in_time_wait_belong_to_their_session") {
        return;
    }
    let (open, closed) = one_session("bpas", Mode::Passive, false);
    // the hosts tie them (no owner is left to ask), at low; the client's
    // connect() port says passive
    let n = assert_finished(&open, 1, "passive", "low", &["same-hosts"]);
    assert_eq!(n, 6, "3 LIST and 3 RETR: {open:#}");
    for s in finished_data(&open) {
        assert!((55000..=55100).contains(&port(&s["local"])), "{s}");
        assert!(evidence(s).contains(&"remote-connect-parity"), "{s}");
    }
    // after QUIT the closing control connection still owns them
    assert_finished(
        &closed,
        1,
        "passive",
        "low",
        &["same-hosts", "recent-control"],
    );
}

#[test]
fn active_short_transfers_in_time_wait_belong_to_their_session() {
    if !can_use_netns("active_short_transfers_in_time_wait_belong_to_their_session") {
        return;
    }
    let (open, closed) = one_session("bact", Mode::Active, false);
    // libunftp connects from a connect() port to suppaftp's bind(0) port:
    // both parities say active (medium), the hosts tie it (low)
    let n = assert_finished(
        &open,
        1,
        "active",
        "low",
        &["same-hosts", "remote-bind-parity", "connect-parity"],
    );
    assert_eq!(n, 6, "{open:#}");
    for s in finished_data(&open) {
        assert_eq!(s["direction"], "outbound", "{s}");
        assert!(
            s["direction_evidence"]
                .as_array()
                .unwrap()
                .contains(&Value::from("ftp-mode"))
        );
    }
    assert_finished(
        &closed,
        1,
        "active",
        "low",
        &["same-hosts", "recent-control"],
    );
}

#[test]
fn the_ftp_helper_makes_short_transfers_certain() {
    if !can_use_netns("the_ftp_helper_makes_short_transfers_certain")
        || !has_tools("the_ftp_helper_makes_short_transfers_certain", &[NFT])
    {
        return;
    }
    for (tag, mode, want) in [
        ("hpas", Mode::Passive, "passive"),
        ("hact", Mode::Active, "active"),
    ] {
        let (open, closed) = one_session(tag, mode, true);
        // conntrack's master tuple names the control connection; its
        // original tuple who opened the data connection
        for doc in [&open, &closed] {
            assert_finished(
                doc,
                1,
                want,
                "high",
                &["conntrack-master", "conntrack-origin"],
            );
            for s in finished_data(doc) {
                assert_eq!(s["direction_evidence"][0], "conntrack", "{s}");
            }
        }
    }
}

/// pyftpdlib serves; curl lists the directory and fetches a small file,
/// then a large one slowly, in one session. pyftpdlib's passive ports come
/// from bind(0), its active connections too.
#[test]
fn pyftpdlib_and_curl_short_transfers_one_shot() {
    if !can_use_netns("pyftpdlib_and_curl_short_transfers_one_shot")
        || !has_tools(
            "pyftpdlib_and_curl_short_transfers_one_shot",
            &[PYFTPDLIB, CURL],
        )
    {
        return;
    }
    for (tag, active, want) in [("ppas", false, "passive"), ("pact", true, "active")] {
        let h = Hosts::new(tag);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), vec![b'x'; 1024]).unwrap();
        std::fs::File::create(dir.path().join("big"))
            .unwrap()
            .set_len(64 << 20)
            .unwrap();
        let _py = start(
            &h.srv,
            &[
                "python3",
                "-m",
                "pyftpdlib",
                "-i",
                SRV4,
                "-p",
                "21",
                "-d",
                dir.path().to_str().unwrap(),
            ],
            Some(Duration::from_millis(300)),
        );
        let (list, small, big) = (
            format!("ftp://{SRV4}/"),
            format!("ftp://{SRV4}/small"),
            format!("ftp://{SRV4}/big"),
        );
        let mut argv = vec![
            "curl",
            "-s",
            "--retry",
            "20",
            "--retry-connrefused",
            "--limit-rate",
            "20k",
        ];
        if active {
            argv.extend(["-P", "-"]);
        }
        argv.extend([
            list.as_str(),
            "-o",
            "/dev/null",
            small.as_str(),
            "-o",
            "/dev/null",
            big.as_str(),
            "-o",
            "/dev/null",
        ]);
        let mut curl = start(&h.cli, &argv, Some(Duration::from_millis(100)));
        let mut doc = Value::Null;
        for _ in 0..100 {
            doc = checked(h.srv.json(&["-tanp"]));
            if finished_data(&doc).len() >= 2 {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(
            finished_data(&doc).len(),
            2,
            "LIST and RETR small: {}",
            summary(&doc)
        );
        let ctl = sockets(&doc)
            .iter()
            .find(|s| port(&s["local"]) == 21 && s["state"] == "ESTABLISHED")
            .unwrap_or_else(|| panic!("{}", summary(&doc)));
        let session = ctl["ftp"]["session"].as_u64().unwrap();
        assert_finished(&doc, session, want, "low", &["same-hosts"]);
        // must not: once curl has quit, pyftpdlib's control connection is
        // gone from the server's table (curl closes after 221, so the
        // TIME_WAIT is the client's): a one-shot look has no session left
        // to tie them to (watch mode remembers it)
        let _ = curl.0.kill();
        let _ = curl.0.wait();
        for _ in 0..50 {
            doc = checked(h.srv.json(&["-tanp"]));
            if !sockets(&doc)
                .iter()
                .any(|s| port(&s["local"]) == 21 && s["state"] != "LISTEN")
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            finished_data(&doc).iter().all(|s| s["ftp"].is_null()),
            "{}",
            summary(&doc)
        );
    }
}

/// Watch mode (`-c --format jsonl`) on a file in `ns`, stopped with SIGTERM
/// by [`Watcher::stop`], which returns the events.
struct Watcher {
    child: std::process::Child,
    out: tempfile::NamedTempFile,
}

impl Watcher {
    fn start(ns: &Netns) -> Watcher {
        let out = tempfile::NamedTempFile::new().unwrap();
        let child = std::process::Command::new("ip")
            .args(["netns", "exec", &ns.name, crate::harness::BIN])
            .args(["-tan", "-c", "--interval", "0.1", "--format", "jsonl"])
            .stdout(out.reopen().unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let w = Watcher { child, out };
        // from its first refresh on
        for _ in 0..100 {
            if w.events().iter().any(|e| e["event"] == "tick") {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        w
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.out.path())
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    fn stop(mut self) -> Vec<Value> {
        // SAFETY: kill(2) on our own child's pid
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        self.events()
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Each data connection's last event on one `side` of a watched session
/// (an added TIME_WAIT, a closed event...), by the port `truth` knows it
/// by: the client's in active mode, the server's in passive mode.
fn last_words(
    events: &[Value],
    side: &str,
    active: bool,
    truth: &std::collections::HashMap<u16, u16>,
) -> std::collections::HashMap<u16, Value> {
    let mut seen = std::collections::HashMap::new();
    for e in events {
        let s = &e["socket"];
        if s["proto"] != "tcp" || s["remote"].is_null() {
            continue;
        }
        let (l, r) = (port(&s["local"]), port(&s["remote"]));
        let (server_end, client_end) = if side == "server" { (l, r) } else { (r, l) };
        let key = if active { client_end } else { server_end };
        if l == 21 || r == 21 || !truth.contains_key(&key) {
            continue;
        }
        seen.insert(key, s.clone());
    }
    seen
}

/// Issue 10's measurement, short: curl runs one session after another (a
/// LIST and a 1 KiB RETR each, a new control connection each time, 100 ms
/// apart) while watch mode runs on both hosts. Every data connection
/// appears in the events, as data of the right mode, and its `ftp.control`
/// names the control connection curl used for it (curl's own `-w
/// %{local_port}` and `-v`): among sessions between the same two hosts,
/// seen only as they went, each goes to its own (`timing`).
#[test]
fn watched_short_sessions_each_data_connection_joins_its_own_session() {
    let test = "watched_short_sessions_each_data_connection_joins_its_own_session";
    // no burst of another test's destroy events delays these
    let _one = crate::events::one_at_a_time();
    if !can_use_netns(test) || !has_tools(test, &[PYFTPDLIB, CURL]) {
        return;
    }
    for (tag, active, want) in [("wpas", false, "passive"), ("wact", true, "active")] {
        let h = Hosts::new(tag);
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("small"), vec![b'x'; 1024]).unwrap();
        let root = dir.path().to_str().unwrap();
        let _py = start(
            &h.srv,
            &[
                "python3",
                "-m",
                "pyftpdlib",
                "-i",
                SRV4,
                "-p",
                "21",
                "-d",
                root,
            ],
            Some(Duration::from_millis(300)),
        );
        let (server, client) = (Watcher::start(&h.srv), Watcher::start(&h.cli));
        // data port (the server's in passive mode, the client's in active
        // mode) -> the control connection's client port
        let mut truth = std::collections::HashMap::new();
        let data_port = data_ports_said(active);
        for _ in 0..6 {
            let (list, small) = (format!("ftp://{SRV4}/"), format!("ftp://{SRV4}/small"));
            let mut argv = vec!["curl", "-v", "-s", "--retry", "20", "--retry-connrefused"];
            argv.extend(["-w", "%{local_port}\n"]);
            if active {
                argv.extend(["-P", "-"]);
            }
            argv.extend([
                list.as_str(),
                "-o",
                "/dev/null",
                small.as_str(),
                "-o",
                "/dev/null",
            ]);
            let out = std::process::Command::new("ip")
                .args(["netns", "exec", &h.cli.name])
                .args(&argv)
                .output()
                .unwrap();
            assert!(out.status.success(), "curl: {out:?}");
            let control: u16 = String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .next()
                .and_then(|p| p.parse().ok())
                .expect("curl's control port");
            let said = String::from_utf8_lossy(&out.stderr);
            let ports = data_port(&said);
            assert_eq!(ports.len(), 2, "LIST and RETR: {said}");
            for p in ports {
                truth.insert(p, control);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // The last sessions' data connections are seen by their destroy
        // events, which the kernel sends from a work queue: on a loaded
        // machine they come later than a fixed wait (both of the last
        // session's were missing after 500 ms once). Each watcher is given
        // until it has seen all, then half a second for their last words.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline
            && [("server", &server), ("client", &client)]
                .iter()
                .any(|(side, w)| last_words(&w.events(), side, active, &truth).len() < truth.len())
        {
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_millis(500));
        for (side, events) in [("server", server.stop()), ("client", client.stop())] {
            let seen = last_words(&events, side, active, &truth);
            assert_eq!(
                seen.len(),
                truth.len(),
                "{side} {want}: seen {:?} of {:?}",
                seen.keys().collect::<Vec<_>>(),
                truth
            );
            for (key, s) in &seen {
                // where it fails, what the watcher said of it and of the
                // control connections, to tell why
                if s["ftp"]["role"] != "data" {
                    let port = |ep: &Value| ep["port"].as_u64();
                    for e in &events {
                        let t = &e["socket"];
                        let ports = [port(&t["local"]), port(&t["remote"])];
                        if ports.contains(&Some(u64::from(*key))) || ports.contains(&Some(21)) {
                            eprintln!("{side}: {e}");
                        }
                    }
                }
                let f = &s["ftp"];
                assert_eq!(f["role"], "data", "{side} {want} {key}: {s}");
                assert_eq!(f["mode"], want, "{side} {key}: {s}");
                assert_eq!(
                    port(&f["control"]["client"]),
                    truth[key],
                    "{side} {want} data port {key}: the session of another control connection: {s}"
                );
            }
        }
    }
}

/// The data ports curl's `-v` names: the server's 229 reply in passive
/// mode, curl's EPRT (or PORT) in active mode.
fn data_ports_said(active: bool) -> impl Fn(&str) -> Vec<u16> {
    move |said: &str| {
        said.lines()
            .filter_map(|line| {
                if active {
                    let rest = line.split("EPRT |").nth(1)?;
                    rest.split('|').nth(2)?.parse().ok()
                } else {
                    let rest = line.split("(|||").nth(1)?;
                    rest.split('|').next()?.parse().ok()
                }
            })
            .collect()
    }
}
