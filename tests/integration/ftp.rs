//! FTP sessions between two hosts, with real servers (libunftp in-process,
//! pyftpdlib) and real clients (suppaftp in-process, curl), seen by sockwho
//! from each side alone.

use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use serde_json::Value;
use suppaftp::Mode;

use crate::harness::{CURL, NFT, Netns, PYFTPDLIB, SS, can_use_netns, has_tools, sockets};
use crate::twohosts::{
    CLI4, Hosts, SRV4, SRV6, libunftp, start, suppaftp_download, wait_established,
};

/// The one socket matching `pred`.
fn one<'a>(doc: &'a Value, what: &str, pred: impl Fn(&Value) -> bool) -> &'a Value {
    let found: Vec<&Value> = sockets(doc).iter().filter(|s| pred(s)).collect();
    assert_eq!(found.len(), 1, "{what}: {found:#?}\nin {doc:#}");
    found[0]
}

fn port(ep: &Value) -> u16 {
    ep["port"].as_u64().map_or(0, |p| p as u16)
}

fn established(s: &Value) -> bool {
    s["proto"] == "tcp" && s["state"] == "ESTABLISHED"
}

/// The `ftp` object of the connection between `local` and `remote` ports.
fn ftp_of(doc: &Value, local: u16, remote: u16) -> &Value {
    &one(doc, &format!("{local}->{remote}"), |s| {
        established(s) && port(&s["local"]) == local && port(&s["remote"]) == remote
    })["ftp"]
}

/// The established socket (not `control`) whose local or remote port is in `range`.
fn data_socket(doc: &Value, local_side: bool, range: std::ops::RangeInclusive<u16>) -> &Value {
    one(doc, "the data connection", |s| {
        let ep = if local_side {
            &s["local"]
        } else {
            &s["remote"]
        };
        established(s) && range.contains(&port(ep))
    })
}

fn evidence(ftp: &Value) -> Vec<String> {
    ftp["evidence"]
        .as_array()
        .unwrap_or(&vec![])
        .iter()
        .map(|e| e.as_str().unwrap().to_string())
        .collect()
}

fn assert_ftp(ftp: &Value, session: u64, role: &str, side: &str, mode: Option<&str>) {
    assert_eq!(ftp["session"], session, "{ftp}");
    assert_eq!(ftp["role"], role, "{ftp}");
    assert_eq!(ftp["side"], side, "{ftp}");
    assert_eq!(ftp["mode"].as_str(), mode, "{ftp}");
}

/// The direction FTP's label of `s` implies: a control connection's client
/// opened it; a passive data connection the client, an active one the server.
fn ftp_direction(s: &Value) -> Option<&'static str> {
    let f = &s["ftp"];
    let client_opened = match (f["role"].as_str()?, f["mode"].as_str()) {
        ("control", _) | ("data", Some("passive")) => true,
        ("data", Some("active")) => false,
        _ => return None,
    };
    let here = f["side"] == "client";
    Some(if client_opened == here {
        "outbound"
    } else {
        "inbound"
    })
}

/// Issue 10 item 4: `direction` and `ftp` never contradict each other on
/// any socket: the direction FTP implies, or `unknown` with FTP's label `low`.
#[track_caller]
pub fn assert_agree(doc: &Value) {
    for s in sockets(doc) {
        let Some(want) = ftp_direction(s) else {
            continue;
        };
        assert!(
            s["direction"] == want
                || (s["direction"] == "unknown" && s["ftp"]["confidence"] == "low"),
            "direction {} ({}) but FTP says {want}: {s}",
            s["direction"],
            s["direction_evidence"]
        );
    }
}

/// `doc`, once its labels are seen to agree.
#[track_caller]
pub fn checked(doc: Value) -> Value {
    assert_agree(&doc);
    doc
}

const ECHO_SERVER: &str = "import socket,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
s.bind(('0.0.0.0',2222)); s.listen()\n\
print('READY',flush=True); c,_=s.accept(); sys.stdin.read()\n";

fn python_client(host: &str, port: u16) -> String {
    format!(
        "import socket,sys\nc=socket.create_connection(('{host}',{port}))\nprint('READY',flush=True); sys.stdin.read()\n"
    )
}

#[test]
fn passive_session_from_each_side() {
    if !can_use_netns("passive_session_from_each_side") {
        return;
    }
    let h = Hosts::new("pasv");
    // libunftp answers PASV only on an IPv4 socket (not a v4-mapped one)
    let _server = libunftp(&h.srv, &format!("{SRV4}:21"), 50000..=50100);
    // Not FTP, between the same two hosts: a service in other processes...
    let _svc = start(&h.srv, &["/usr/bin/python3", "-c", ECHO_SERVER], None);
    let _svc_client = start(
        &h.cli,
        &["/usr/bin/python3", "-c", &python_client(SRV4, 2222)],
        None,
    );
    // ...and one on a well-known port in the very processes that do FTP
    let web = h.srv.enter(|| TcpListener::bind("0.0.0.0:80").unwrap());
    let _web_client = h.cli.enter(|| TcpStream::connect((SRV4, 80)).unwrap());
    let _web_conn = web.accept().unwrap();

    let t = suppaftp_download(&h.cli, &format!("{SRV4}:21"), Mode::Passive);
    let srv = checked(h.srv.json(&["-tanp"]));
    let cli = checked(h.cli.json(&["-tanp"]));

    // the server's view
    let ctl = ftp_of(&srv, 21, t.control_port);
    assert_ftp(ctl, 1, "control", "server", None);
    assert_eq!(ctl["confidence"], "high");
    assert!(evidence(ctl).contains(&"control-port".to_string()));
    let data = data_socket(&srv, true, 50000..=50100);
    let data_port = port(&data["local"]);
    assert_ftp(&data["ftp"], 1, "data", "server", Some("passive"));
    assert_eq!(
        data["local"]["class"], "ephemeral",
        "50000 is inside 32768-60999"
    );
    // the session itself, for scripts
    let session = &srv["ftp_sessions"][0];
    assert_eq!(session["client"]["addr"], CLI4);
    assert_eq!(session["server"]["port"], 21);
    assert_eq!(session["here"], serde_json::json!(["server"]));
    assert_eq!(session["helper"], "not-tracked");
    assert_eq!(srv["ftp_sessions"].as_array().unwrap().len(), 1);
    // the client's view
    let ctl = ftp_of(&cli, t.control_port, 21);
    assert_ftp(ctl, 1, "control", "client", None);
    let data = data_socket(&cli, false, data_port..=data_port);
    assert_ftp(&data["ftp"], 1, "data", "client", Some("passive"));
    assert!(evidence(&data["ftp"]).contains(&"same-process".to_string()));

    // the other connections between the same hosts are not FTP
    for doc in [&srv, &cli] {
        for s in sockets(doc) {
            if [2222, 80].contains(&port(&s["local"])) || [2222, 80].contains(&port(&s["remote"])) {
                assert!(s["ftp"].is_null(), "not FTP: {s}");
            }
        }
    }

    // the table's FTP column
    let table = h.srv.sockwho_ok(&["-tan"]);
    let row = |needle: &str| {
        table
            .lines()
            .find(|l| l.contains(needle) && l.contains("ESTABLISHED"))
            .unwrap_or_else(|| panic!("{needle} in {table}"))
            .to_string()
    };
    // sockwho's field is Dir,Ports,FTP
    assert!(row(":21 ").contains(",ftp#1:ctl"), "{table}");
    assert!(
        row(&format!(":{data_port} ")).contains(",ftp#1:data:passive"),
        "{table}"
    );
    assert!(row(":2222 ").ends_with(",-"), "{table}");

    // the sessions view, from each side
    let view = h.srv.sockwho_ok(&["--ftp"]);
    assert!(
        view.contains("Session 1: this host is the server; passive mode"),
        "{view}"
    );
    assert!(view.contains(&format!(
        "Passive data: the server (this host) must accept new inbound TCP on its passive ports (seen: {data_port})"
    )), "{view}");
    assert!(
        view.contains("conntrack does not track this connection here"),
        "{view}"
    );
    assert!(!view.contains("2222"), "{view}");
    let view = h.cli.sockwho_ok(&["--ftp"]);
    assert!(
        view.contains("Session 1: this host is the client; passive mode"),
        "{view}"
    );
    assert!(
        view.contains(&format!(
            "client {CLI4} opened the control connection from port {}",
            t.control_port
        )),
        "{view}"
    );
}

#[test]
fn active_session_from_each_side() {
    if !can_use_netns("active_session_from_each_side") {
        return;
    }
    let h = Hosts::new("actv");
    let _server = libunftp(&h.srv, &format!("{SRV4}:21"), 50000..=50100);
    let t = suppaftp_download(&h.cli, &format!("{SRV4}:21"), Mode::Active);
    let srv = checked(h.srv.json(&["-tanp"]));
    let cli = checked(h.cli.json(&["-tanp"]));
    assert_ftp(
        ftp_of(&srv, 21, t.control_port),
        1,
        "control",
        "server",
        None,
    );
    assert_ftp(
        ftp_of(&cli, t.control_port, 21),
        1,
        "control",
        "client",
        None,
    );
    // suppaftp listened on a bind(0) port, which has the odd parity
    let data = one(&cli, "client data", |s| {
        established(s) && port(&s["remote"]) != 21
    });
    let client_port = port(&data["local"]);
    assert_eq!(client_port % 2, 1, "bind(0) port {client_port}");
    assert_ftp(&data["ftp"], 1, "data", "client", Some("active"));
    assert!(evidence(&data["ftp"]).contains(&"bind-parity".to_string()));
    // the server connected to it from a connect() port
    let data = one(&srv, "server data", |s| {
        established(s) && port(&s["remote"]) == client_port
    });
    assert_ftp(&data["ftp"], 1, "data", "server", Some("active"));
    assert!(evidence(&data["ftp"]).contains(&"connect-parity".to_string()));

    let view = h.cli.sockwho_ok(&["--ftp"]);
    assert!(
        view.contains("Session 1: this host is the client; active mode"),
        "{view}"
    );
    assert!(view.contains(&format!("Active data: the client (this host) must accept new INBOUND TCP from the server on its data ports (seen: {client_port})")), "{view}");
}

const RAW_CLIENT: &str = r#"
import socket, sys
mode, host = sys.argv[1], sys.argv[2]
c = socket.create_connection((host, 21)); f = c.makefile('rb')
def cmd(line):
    if line: c.sendall((line + '\r\n').encode())
    while True:
        r = f.readline().decode()
        if r[3:4] == ' ': return r.strip()
cmd(None); cmd('USER anonymous'); cmd('PASS x')
if mode == 'pasv':
    print('READY', cmd('PASV'), flush=True)
else:
    l = socket.socket(); l.bind((c.getsockname()[0], 0)); l.listen(1)
    h, p = l.getsockname()
    print('READY', cmd('PORT %s,%d,%d' % (h.replace('.', ','), p >> 8, p & 255)), p, flush=True)
sys.stdin.read()
"#;

#[test]
fn pending_data_channels_on_each_side() {
    if !can_use_netns("pending_data_channels_on_each_side") {
        return;
    }
    let h = Hosts::new("pend");
    let _server = libunftp(&h.srv, &format!("{SRV4}:21"), 51000..=51100);
    // PASV, and no connection yet: the server's passive port waits
    let _pasv = start(
        &h.cli,
        &["/usr/bin/python3", "-c", RAW_CLIENT, "pasv", SRV4],
        None,
    );
    let srv = checked(h.srv.json(&["-tanp"]));
    let pending = one(&srv, "passive listener", |s| {
        s["state"] == "LISTEN" && (51000..=51100).contains(&port(&s["local"]))
    });
    assert_ftp(&pending["ftp"], 1, "pending", "server", Some("passive"));
    // PORT: the server connected at once; the client has not accepted yet
    let _port = start(
        &h.cli,
        &["/usr/bin/python3", "-c", RAW_CLIENT, "port", SRV4],
        None,
    );
    let cli = checked(h.cli.json(&["-tanp"]));
    let listener = one(&cli, "active listener", |s| s["state"] == "LISTEN");
    assert_ftp(&listener["ftp"], 2, "pending", "client", Some("active"));
    let lport = port(&listener["local"]);
    let waiting = one(&cli, "the waiting connection", |s| {
        established(s) && port(&s["local"]) == lport
    });
    assert_eq!(waiting["inode"], 0, "not accepted: no inode, no owner");
    assert_ftp(&waiting["ftp"], 2, "data", "client", Some("active"));
    assert!(evidence(&waiting["ftp"]).contains(&"pending-listener".to_string()));
}

#[test]
fn epsv_and_eprt_over_ipv6_and_a_second_control_port() {
    if !can_use_netns("epsv_and_eprt_over_ipv6_and_a_second_control_port")
        || !has_tools(
            "epsv_and_eprt_over_ipv6_and_a_second_control_port",
            &[PYFTPDLIB, CURL, SS],
        )
    {
        return;
    }
    let h = Hosts::new("six");
    let _server = libunftp(&h.srv, &format!("[{SRV6}]:21"), 52000..=52100);
    let epsv = suppaftp_download(&h.cli, &format!("[{SRV6}]:21"), Mode::ExtendedPassive);
    let srv = checked(h.srv.json(&["-tanp"]));
    let data = data_socket(&srv, true, 52000..=52100);
    assert_eq!(data["family"], "inet6");
    assert_ftp(&data["ftp"], 1, "data", "server", Some("passive"));
    assert!(evidence(&data["ftp"]).contains(&"ipv6".to_string()));
    assert_ftp(
        ftp_of(&srv, 21, epsv.control_port),
        1,
        "control",
        "server",
        None,
    );
    drop(epsv);

    // pyftpdlib speaks EPRT; on port 2100, a control port only when named
    let dir = tempfile::tempdir().unwrap();
    std::fs::File::create(dir.path().join("big"))
        .unwrap()
        .set_len(256 << 20)
        .unwrap();
    let _py = start(
        &h.srv,
        &[
            "python3",
            "-m",
            "pyftpdlib",
            "-i",
            "::",
            "-p",
            "2100",
            "-d",
            dir.path().to_str().unwrap(),
        ],
        Some(Duration::from_millis(100)),
    );
    wait_listening(&h.srv, 2100);
    let eprt = suppaftp_download(&h.cli, &format!("[{SRV6}]:2100"), Mode::Active);
    let unnamed = checked(h.cli.json(&["-tanp"]));
    let live: Vec<&Value> = sockets(&unnamed)
        .iter()
        .filter(|s| established(s))
        .collect();
    assert_eq!(
        live.len(),
        2,
        "the EPRT control and data connections: {unnamed:#}"
    );
    assert!(
        live.iter().all(|s| s["ftp"].is_null()),
        "2100 is no control port by default: {unnamed:#}"
    );
    for (ns, side) in [(&h.cli, "client"), (&h.srv, "server")] {
        let doc = checked(ns.json(&["-tanp", "--ftp-port", "2100"]));
        let ctl = one(&doc, "control", |s| {
            established(s) && (port(&s["local"]) == 2100 || port(&s["remote"]) == 2100)
        });
        // the EPSV session may linger in TIME_WAIT as session 1
        let session = ctl["ftp"]["session"].as_u64().unwrap();
        assert_ftp(&ctl["ftp"], session, "control", side, None);
        let data = one(&doc, "data", |s| {
            established(s) && !s["ftp"].is_null() && s["ftp"]["role"] == "data"
        });
        assert_eq!(data["family"], "inet6");
        assert_ftp(&data["ftp"], session, "data", side, Some("active"));
        assert!(
            evidence(&data["ftp"]).contains(&"ipv6".to_string()),
            "{data}"
        );
    }
    let _ = eprt.control_port;
}

fn wait_listening(ns: &Netns, port: u16) {
    for _ in 0..100 {
        if ns.exec_ok(&["ss", "-tlnH"]).contains(&format!(":{port} ")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

#[test]
fn two_sessions_at_once_with_curl() {
    if !can_use_netns("two_sessions_at_once_with_curl")
        || !has_tools("two_sessions_at_once_with_curl", &[PYFTPDLIB, CURL, SS])
    {
        return;
    }
    let h = Hosts::new("two");
    let _v4 = libunftp(&h.srv, &format!("{SRV4}:21"), 53000..=53050);
    let _v6 = libunftp(&h.srv, &format!("[{SRV6}]:21"), 53051..=53100);
    let t = suppaftp_download(&h.cli, &format!("{SRV4}:21"), Mode::Passive);
    // curl over IPv6 (EPSV), slowed so its data connection stays open
    let _curl = start(
        &h.cli,
        &[
            "curl",
            "-g",
            "-s",
            "--limit-rate",
            "20k",
            &format!("ftp://[{SRV6}]/big"),
            "-o",
            "/dev/null",
        ],
        Some(Duration::from_millis(200)),
    );
    wait_established(&h.cli, 21);
    for _ in 0..100 {
        if h.cli
            .exec_ok(&["ss", "-tnH", "state", "established"])
            .lines()
            .filter(|l| l.contains("fd77::1"))
            .count()
            >= 2
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    for (ns, side) in [(&h.srv, "server"), (&h.cli, "client")] {
        let doc = checked(ns.json(&["-tanp"]));
        let sessions_of = |family: &str| -> Vec<u64> {
            sockets(&doc)
                .iter()
                .filter(|s| established(s) && !s["ftp"].is_null())
                .filter(|s| {
                    let v6 = !s["local"]["addr"].as_str().unwrap().contains('.');
                    v6 == (family == "v6")
                })
                .map(|s| s["ftp"]["session"].as_u64().unwrap())
                .collect()
        };
        let (v4, v6) = (sessions_of("v4"), sessions_of("v6"));
        assert_eq!(v4.len(), 2, "{side}: v4 control and data: {doc:#}");
        assert_eq!(v6.len(), 2, "{side}: v6 control and data: {doc:#}");
        assert!(
            v4[0] == v4[1] && v6[0] == v6[1] && v4[0] != v6[0],
            "{side}: {v4:?} {v6:?}"
        );
        for s in sockets(&doc)
            .iter()
            .filter(|s| established(s) && s["ftp"]["role"] == "data")
        {
            assert_eq!(s["ftp"]["side"], side);
            assert_eq!(s["ftp"]["mode"], "passive", "{s}");
        }
    }
    let view = h.srv.sockwho_ok(&["--ftp"]);
    assert!(view.starts_with("FTP sessions: 2"), "{view}");
    let _ = t.control_port;
}

/// conntrack's ftp helper, assigned with nftables on both hosts.
fn assign_helper(ns: &Netns, hook: &str) {
    let rules = format!(
        "table inet sockwho {{ ct helper ftp-std {{ type \"ftp\" protocol tcp; }}; \
         chain c {{ type filter hook {hook} priority filter; tcp dport 21 ct helper set \"ftp-std\"; }}; }}"
    );
    ns.exec_ok(&["nft", &rules]);
}

#[test]
fn conntrack_helper_ties_data_to_its_session() {
    if !can_use_netns("conntrack_helper_ties_data_to_its_session")
        || !has_tools("conntrack_helper_ties_data_to_its_session", &[NFT, CURL])
    {
        return;
    }
    let h = Hosts::new("ct");
    assign_helper(&h.srv, "prerouting");
    assign_helper(&h.cli, "output");
    let _server = libunftp(&h.srv, &format!("{SRV4}:21"), 54000..=54100);
    // two sessions from one client process to one server process: only
    // conntrack can tell which owns which data connection
    let pasv = suppaftp_download(&h.cli, &format!("{SRV4}:21"), Mode::Passive);
    let actv = suppaftp_download(&h.cli, &format!("{SRV4}:21"), Mode::Active);
    for (ns, side) in [(&h.srv, "server"), (&h.cli, "client")] {
        let doc = checked(ns.json(&["-tanp"]));
        let ctl = |client_port: u16| {
            &one(&doc, "control", |s| {
                established(s)
                    && (port(&s["local"]) == client_port || port(&s["remote"]) == client_port)
                    && (port(&s["local"]) == 21 || port(&s["remote"]) == 21)
            })["ftp"]
        };
        let (p, a) = (ctl(pasv.control_port), ctl(actv.control_port));
        assert!(
            evidence(p).contains(&"conntrack-helper".to_string()),
            "{side}: {p}"
        );
        let datas: Vec<&Value> = sockets(&doc)
            .iter()
            .filter(|s| established(s) && s["ftp"]["role"] == "data")
            .collect();
        assert_eq!(datas.len(), 2, "{side}: {doc:#}");
        for d in datas {
            let f = &d["ftp"];
            let ev = evidence(f);
            assert!(ev.contains(&"conntrack-master".to_string()), "{side}: {f}");
            assert!(ev.contains(&"conntrack-origin".to_string()), "{side}: {f}");
            assert_eq!(f["confidence"], "high", "{side}: {f}");
            let want = if f["mode"] == "passive" { p } else { a };
            assert_eq!(
                f["session"], want["session"],
                "{side}: data in the wrong session: {f}"
            );
            assert_eq!(d["direction_evidence"][0], "conntrack", "{d}");
        }
        assert!(
            doc["ftp_sessions"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["helper"] == "assigned"),
            "{doc:#}"
        );
        let view = ns.sockwho_ok(&["--ftp"]);
        assert!(view.contains("conntrack read over netlink"), "{view}");
        assert!(
            view.contains("conntrack's ftp helper is assigned to this control connection"),
            "{view}"
        );
    }
}
