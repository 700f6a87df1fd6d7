//! FTP through a router (issue 16): three namespaces, a client, a router
//! and a server, joined by veth pairs; the router forwards between them
//! and masquerades the client's subnet with nftables. pyftpdlib serves,
//! curl downloads (throttled, so that the flows outlive the look), and
//! each case is judged on the router alone, where no socket of the session
//! exists: `sockwho --ftp`, `--format json`, `--format prometheus` there.
//!
//! Each test has its own subnets, 10.N.1.0/24 (client), 10.N.2.0/24
//! (server) and 10.N.3.0/24 (a second client).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{
    BIN, CURL, NFT, Netns, PYFTPDLIB, Running, SETPRIV, Tool, binary_for_anyone, can_use_netns,
    has_tools, run_ok,
};

const OPENSSL: Tool = Tool {
    command: "openssl",
    python: None,
    install: "apt-get install openssl",
};
const PYOPENSSL: Tool = Tool {
    command: "OpenSSL",
    python: Some("python3"),
    install: "python3 -m pip install pyopenssl",
};

/// The router's NAT: the clients' subnets leave masqueraded.
fn masquerade(n: u8) -> String {
    format!(
        "table ip nat {{
  chain post {{
    type nat hook postrouting priority srcnat;
    ip saddr {{ 10.{n}.1.0/24, 10.{n}.3.0/24 }} oifname \"r1\" masquerade
  }}
}}
"
    )
}

/// The ftp helper assigned as ../shared/design/ftp.md says for a router:
/// in the forward hook.
const HELPER: &str = "table inet ftp {
  ct helper ftp-21 {
    type \"ftp\" protocol tcp;
  }
  chain forward {
    type filter hook forward priority filter;
    tcp dport 21 ct helper set \"ftp-21\"
  }
}
";

/// A default-deny forward chain that lets new connections through to port
/// 21 only, and the rest as conntrack relates them.
const DEFAULT_DENY: &str = "table inet fw {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    tcp dport 21 ct state new accept
  }
}
";

/// The three hosts (and a second client). Fields drop in order: the
/// processes go before their namespaces.
struct Lab {
    processes: Vec<Running>,
    n: u8,
    /// pyftpdlib takes a PORT naming another address than the control
    /// connection's peer (a client behind NAT with no helper rewriting it).
    permit_foreign: bool,
    rulesets: usize,
    client: Netns,
    client2: Netns,
    router: Netns,
    server: Netns,
    dir: tempfile::TempDir,
}

fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    a.exec_ok(&[
        "ip", "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", &b.name,
    ]);
    a.exec_ok(&["ip", "link", "set", a_dev, "up"]);
    b.exec_ok(&["ip", "link", "set", b_dev, "up"]);
}

impl Lab {
    fn new(tag: &str, n: u8, rules: &[&str]) -> Lab {
        let router = Netns::new(&format!("{tag}-r"));
        let client = Netns::new(&format!("{tag}-c"));
        let client2 = Netns::new(&format!("{tag}-d"));
        let server = Netns::new(&format!("{tag}-s"));
        veth(&router, "r0", &client, "c0");
        veth(&router, "r1", &server, "s0");
        veth(&router, "r2", &client2, "c0");
        let net = |host: u8, last: u8| format!("10.{n}.{host}.{last}");
        router.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net(1, 1)),
            "dev",
            "r0",
        ]);
        router.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net(2, 254)),
            "dev",
            "r1",
        ]);
        router.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net(3, 1)),
            "dev",
            "r2",
        ]);
        router.sysctl("net.ipv4.ip_forward", "1");
        for (ns, subnet, gateway) in [(&client, 1, net(1, 1)), (&client2, 3, net(3, 1))] {
            ns.exec_ok(&[
                "ip",
                "addr",
                "add",
                &format!("{}/24", net(subnet, 2)),
                "dev",
                "c0",
            ]);
            ns.exec_ok(&["ip", "route", "add", "default", "via", &gateway]);
        }
        server.exec_ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", net(2, 1)),
            "dev",
            "s0",
        ]);
        server.exec_ok(&["ip", "route", "add", "default", "via", &net(2, 254)]);
        let dir = tempfile::tempdir().expect("a temporary directory");
        // Large enough that a transfer at 20 kB/s outlives the test.
        std::fs::write(dir.path().join("bigfile"), vec![0; 5_000_000]).expect("write bigfile");
        std::fs::write(dir.path().join("small"), b"hello\n").expect("write small");
        let mut lab = Lab {
            processes: Vec::new(),
            n,
            permit_foreign: false,
            rulesets: 0,
            client,
            client2,
            router,
            server,
            dir,
        };
        lab.load(&masquerade(n));
        for r in rules {
            lab.load(r);
        }
        lab
    }

    fn server_addr(&self) -> String {
        format!("10.{}.2.1", self.n)
    }

    fn client_addr(&self) -> String {
        format!("10.{}.1.2", self.n)
    }

    /// This router's address on the server's side: masquerade's.
    fn masqueraded(&self) -> String {
        format!("10.{}.2.254", self.n)
    }

    /// Loads an nftables ruleset on the router.
    fn load(&mut self, ruleset: &str) {
        self.rulesets += 1;
        let path = self.dir.path().join(format!("rules-{}.nft", self.rulesets));
        std::fs::write(&path, ruleset).expect("write the ruleset");
        let file = path.to_str().expect("a UTF-8 path").to_string();
        self.router.exec_ok(&["nft", "-f", &file]);
    }

    fn spawn(&mut self, netns: &str, argv: &[&str]) {
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .args(argv)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
        self.processes.push(Running(child));
    }

    /// pyftpdlib on the server, plain or with TLS (AUTH TLS, required).
    /// `announce`: the address its 227 names instead of its own
    /// (pyftpdlib's `masquerade_address`).
    fn serve(&mut self, tls: bool, announce: Option<&str>) {
        let dir = self.dir.path().to_str().expect("a UTF-8 path").to_string();
        let script = if tls {
            let (cert, key) = (format!("{dir}/cert.pem"), format!("{dir}/key.pem"));
            let out = Command::new("openssl")
                .args([
                    "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                ])
                .args(["-subj", "/CN=ftps.test", "-keyout", &key, "-out", &cert])
                .output()
                .expect("openssl");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            format!(
                "from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import TLS_FTPHandler
from pyftpdlib.servers import FTPServer
a = DummyAuthorizer()
a.add_anonymous({dir:?})
h = TLS_FTPHandler
h.certfile = {cert:?}
h.keyfile = {key:?}
h.tls_control_required = True
h.tls_data_required = True
h.authorizer = a
FTPServer(({server:?}, 21), h).serve_forever()
",
                server = self.server_addr()
            )
        } else {
            format!(
                "from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer
a = DummyAuthorizer()
a.add_anonymous({dir:?})
FTPHandler.authorizer = a
FTPHandler.masquerade_address = {announce}
FTPHandler.permit_foreign_addresses = {foreign}
FTPServer(({server:?}, 21), FTPHandler).serve_forever()
",
                server = self.server_addr(),
                announce = announce.map_or("None".to_string(), |a| format!("{a:?}")),
                foreign = if self.permit_foreign { "True" } else { "False" },
            )
        };
        let server = self.server.name.clone();
        self.spawn(&server, &["python3", "-c", &script]);
        let index = self.processes.len() - 1;
        self.wait("pyftpdlib to listen on port 21", |lab| {
            if let Ok(Some(status)) = lab.processes[index].0.try_wait() {
                panic!("pyftpdlib exited ({status}): is it installed for python3?");
            }
            !lab.server
                .exec(&["ss", "-Hltn", "sport = :21"])
                .stdout
                .is_empty()
        });
    }

    /// Starts a throttled download of bigfile with curl on a client.
    fn curl(&mut self, second: bool, extra: &[&str]) {
        let mut argv = vec!["curl", "-s", "--limit-rate", "20k"];
        argv.extend_from_slice(extra);
        let url = format!("ftp://{}/bigfile", self.server_addr());
        argv.extend([url.as_str(), "-o", "/dev/null"]);
        let client = if second { &self.client2 } else { &self.client };
        let name = client.name.clone();
        self.spawn(&name, &argv);
    }

    /// Downloads the small file with curl on the client, to the end.
    fn fetch(&self, extra: &[&str]) -> std::process::Output {
        let mut argv = vec!["curl", "-s", "--max-time", "10"];
        argv.extend_from_slice(extra);
        let url = format!("ftp://{}/small", self.server_addr());
        argv.push(&url);
        self.client.exec(&argv)
    }

    fn wait(&mut self, what: &str, mut done: impl FnMut(&mut Lab) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The router's `ftp_sessions` once `ready` holds of them.
    fn sessions_when(&mut self, what: &str, ready: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let mut found = Vec::new();
        self.wait(what, |lab| {
            let doc = lab.router.json(&[]);
            found = doc["ftp_sessions"].as_array().cloned().unwrap_or_default();
            ready(&found)
        });
        found
    }
}

/// The flows of a session of the given role.
fn flows<'a>(session: &'a Value, role: &str) -> Vec<&'a Value> {
    session["flows"]
        .as_array()
        .expect("flows")
        .iter()
        .filter(|f| f["role"] == role)
        .collect()
}

fn kinds(session: &Value) -> Vec<&str> {
    session["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| d["kind"].as_str().expect("kind"))
        .collect()
}

fn ready(test: &str, tools: &[Tool]) -> bool {
    can_use_netns(test) && has_tools(test, tools)
}

#[test]
fn passive_through_masquerade_without_the_helper() {
    if !ready(
        "passive_through_masquerade_without_the_helper",
        &[NFT, CURL, PYFTPDLIB],
    ) {
        return;
    }
    let mut lab = Lab::new("rtpasv", 210, &[]);
    lab.serve(false, None);
    // watch mode, from before the session: its data flow comes by a new
    // event (SYN_SENT, unreplied), and conntrack sends no update when the
    // server answers; the refreshes after must still see it answered
    let watcher = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.router.name,
            BIN,
            "-c",
            "--format",
            "json",
        ])
        .args(["--interval", "0.25", "--count", "24"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("sockwho -c on the router");
    std::thread::sleep(Duration::from_millis(500));
    lab.curl(false, &[]);
    let sessions = lab.sessions_when("a data flow crossing the router", |s| {
        s.len() == 1 && flows(&s[0], "data").len() == 1
    });
    let watched = watcher.wait_with_output().expect("sockwho -c ended");
    let last = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .last()
        .map(|l| serde_json::from_str::<Value>(l).expect("a JSON document a line"))
        .expect("watch mode's documents");
    let crossing: Vec<&Value> = last["ftp_sessions"]
        .as_array()
        .expect("ftp_sessions")
        .iter()
        .filter(|s| s["here"] == serde_json::json!(["router"]))
        .collect();
    assert_eq!(crossing.len(), 1, "{last:#}");
    let data = flows(crossing[0], "data");
    assert_eq!(data.len(), 1, "{last:#}");
    // answered (ESTABLISHED, or CLOSE_WAIT once the server has sent all)
    assert_ne!(data[0]["state"], "SYN_SENT", "{last:#}");
    assert_eq!(data[0]["unreplied"], false, "{last:#}");
    assert_eq!(kinds(crossing[0]), ["helper-not-assigned"], "{last:#}");
    let s = &sessions[0];
    assert_eq!(s["here"], serde_json::json!(["router"]), "{s:#}");
    assert_eq!(s["client"]["addr"], lab.client_addr());
    assert_eq!(s["server"]["addr"], lab.server_addr());
    assert_eq!(s["server"]["port"], 21);
    assert_eq!(s["nat"]["client_as"]["addr"], lab.masqueraded(), "{s:#}");
    assert_eq!(s["helper"], "not-assigned");
    assert_eq!(s["mode"], "passive");
    let data = flows(s, "data")[0];
    assert_eq!(data["orig"]["src"]["addr"], lab.client_addr(), "{data:#}");
    assert_eq!(data["expected"], false);
    assert_eq!(data["state"], "ESTABLISHED");
    assert_eq!(data["evidence"][0], "same-hosts");
    assert_eq!(kinds(s), ["helper-not-assigned"], "{s:#}");
    let nft = s["diagnostics"][0]["nft"]
        .as_str()
        .expect("the nft ruleset");
    assert!(nft.contains("hook forward") && nft.contains("tcp dport 21 ct helper set"));
    // what a person reads on the router
    let text = lab.router.sockwho_ok(&["--ftp"]);
    for line in [
        "FTP sessions crossing this host: 1",
        "Session 1: crossing this host; passive mode",
        "! helper-not-assigned: ",
    ] {
        assert!(text.contains(line), "{line:?} in\n{text}");
    }
    let want = format!("NAT: the server sees the client as {}:", lab.masqueraded());
    assert!(text.contains(&want), "{want:?} in\n{text}");
    // looked into from outside: --netns and --all-netns name the router
    for how in [
        vec!["--netns", lab.router.name.as_str()],
        vec!["--all-netns"],
    ] {
        let mut argv = vec!["--format", "json"];
        argv.extend(how.iter().copied());
        let out = run_ok(Command::new(BIN).args(&argv));
        let doc: Value = serde_json::from_str(&out).expect("JSON");
        let crossing: Vec<&Value> = doc["ftp_sessions"]
            .as_array()
            .expect("ftp_sessions")
            .iter()
            .filter(|s| s["here"] == serde_json::json!(["router"]))
            .filter(|s| s["client"]["addr"] == lab.client_addr())
            .collect();
        assert_eq!(crossing.len(), 1, "{how:?}: {doc:#}");
        assert_eq!(crossing[0]["netns"]["name"], lab.router.name, "{how:?}");
    }
    // and what a fleet scrapes
    let metrics = lab.router.sockwho_ok(&["--format", "prometheus"]);
    let series = "sockwho_ftp_sessions{side=\"router\",mode=\"passive\"} 1";
    assert!(
        metrics.lines().any(|l| l == series),
        "{series} in\n{metrics}"
    );
}

#[test]
fn active_through_masquerade_with_the_helper_and_nat() {
    if !ready(
        "active_through_masquerade_with_the_helper_and_nat",
        &[NFT, CURL, PYFTPDLIB],
    ) {
        return;
    }
    let mut lab = Lab::new("rtactv", 211, &[HELPER]);
    lab.serve(false, None);
    lab.curl(false, &["--ftp-port", "-"]);
    let sessions = lab.sessions_when("an active data flow crossing the router", |s| {
        s.len() == 1 && flows(&s[0], "data").len() == 1
    });
    let s = &sessions[0];
    assert_eq!(s["helper"], "assigned", "{s:#}");
    assert_eq!(s["mode"], "active");
    let data = flows(s, "data")[0];
    // the server opened it, to the address the helper wrote into PORT
    assert_eq!(data["orig"]["src"]["addr"], lab.server_addr(), "{data:#}");
    assert_eq!(data["orig"]["dst"]["addr"], lab.masqueraded());
    assert_eq!(data["reply"]["src"]["addr"], lab.client_addr());
    assert_eq!(data["expected"], true);
    assert_eq!(data["confidence"], "high");
    assert_eq!(data["evidence"][0], "conntrack-master");
    assert_eq!(data["rewrote"]["from"]["addr"], lab.client_addr());
    assert_eq!(data["rewrote"]["to"]["addr"], lab.masqueraded());
    assert_eq!(kinds(s), Vec::<&str>::new(), "{s:#}");
    let text = lab.router.sockwho_ok(&["--ftp"]);
    assert!(
        text.contains("Session 1: crossing this host; active mode")
            && text.contains("the ftp helper rewrote PORT/EPRT for NAT: the client's "),
        "{text}"
    );
    // a PASV nobody follows leaves the helper's expectation pending
    let server: SocketAddr = format!("{}:21", lab.server_addr()).parse().unwrap();
    let (_control, port) = lab.client.enter(move || pasv(server));
    let sessions = lab.sessions_when("a pending expectation", |s| {
        s.iter().any(|x| !flows(x, "pending").is_empty())
    });
    let waiting = sessions
        .iter()
        .find(|x| !flows(x, "pending").is_empty())
        .expect("found");
    let pending = flows(waiting, "pending")[0];
    assert_eq!(pending["mode"], "passive", "{waiting:#}");
    assert_eq!(pending["orig"]["dst"]["port"], port);
    assert_eq!(pending["reply"], Value::Null);
    assert_eq!(pending["evidence"][0], "conntrack-master");
}

/// Logs in anonymously on a new control connection and asks for PASV:
/// the connection (kept open) and the port the 227 names.
fn pasv(server: SocketAddr) -> (TcpStream, u16) {
    let stream = TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut say = |command: &str| {
        if !command.is_empty() {
            (&stream)
                .write_all(format!("{command}\r\n").as_bytes())
                .expect("send");
        }
        // a reply ends with a line that starts with its code and a space
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a reply");
            let bytes = line.as_bytes();
            if bytes.len() >= 4 && bytes[..3].iter().all(u8::is_ascii_digit) && bytes[3] == b' ' {
                return line;
            }
        }
    };
    say("");
    say("USER anonymous");
    say("PASS x@");
    let reply = say("PASV");
    assert!(reply.starts_with("227 "), "{reply}");
    let inner = &reply[reply.find('(').expect("(") + 1..reply.find(')').expect(")")];
    let n: Vec<u16> = inner
        .split(',')
        .map(|x| x.trim().parse().expect("a number"))
        .collect();
    (stream, n[4] * 256 + n[5])
}

#[test]
fn helper_not_assigned_active_fails_and_the_ruleset_given_fixes_it() {
    if !ready(
        "helper_not_assigned_active_fails_and_the_ruleset_given_fixes_it",
        &[NFT, CURL, PYFTPDLIB],
    ) {
        return;
    }
    let mut lab = Lab::new("rtnohelp", 212, &[DEFAULT_DENY]);
    lab.serve(false, None);
    let failed = lab.fetch(&["--ftp-port", "-"]);
    assert!(!failed.status.success(), "active mode must fail here");
    // the control flow stays in conntrack (TIME_WAIT) after curl gave up
    let sessions = lab.sessions_when("the control flow", |s| s.len() == 1);
    let s = &sessions[0];
    assert_eq!(s["helper"], "not-assigned", "{s:#}");
    assert_eq!(kinds(s), ["helper-not-assigned"], "{s:#}");
    let message = s["diagnostics"][0]["message"].as_str().expect("message");
    assert!(message.contains("established,related"), "{message}");
    assert!(message.contains("behind this NAT"), "{message}");
    let text = lab.router.sockwho_ok(&["--ftp"]);
    assert!(text.contains("! helper-not-assigned: "), "{text}");
    // the ruleset the diagnostic gives, loaded as it is, makes active work
    lab.load(s["diagnostics"][0]["nft"].as_str().expect("nft"));
    let fixed = lab.fetch(&["--ftp-port", "-"]);
    assert!(
        fixed.status.success(),
        "with the ruleset given: {}",
        String::from_utf8_lossy(&fixed.stderr)
    );
    assert_eq!(fixed.stdout, b"hello\n");
}

/// Active mode with no helper, through a forward chain that lets all
/// through: the server's data connection is NEW, not RELATED (what a
/// default-deny chain would drop), to the address the client's PORT named.
#[test]
fn active_without_the_helper_is_new_not_related() {
    if !ready(
        "active_without_the_helper_is_new_not_related",
        &[NFT, CURL, PYFTPDLIB],
    ) {
        return;
    }
    let mut lab = Lab::new("rtnorel", 217, &[]);
    lab.permit_foreign = true;
    lab.serve(false, None);
    lab.curl(false, &["--ftp-port", "-"]);
    let sessions = lab.sessions_when("an active data flow crossing the router", |s| {
        s.len() == 1 && flows(&s[0], "data").len() == 1
    });
    let s = &sessions[0];
    assert_eq!(s["mode"], "active", "{s:#}");
    assert_eq!(s["helper"], "not-assigned", "{s:#}");
    let data = flows(s, "data")[0];
    assert_eq!(data["orig"]["src"]["addr"], lab.server_addr(), "{data:#}");
    assert_eq!(data["orig"]["dst"]["addr"], lab.client_addr(), "{data:#}");
    assert_eq!(data["expected"], false, "{data:#}");
    assert_eq!(
        kinds(s),
        ["helper-not-assigned", "active-not-related"],
        "{s:#}"
    );
    let text = lab.router.sockwho_ok(&["--ftp"]);
    assert!(text.contains("! active-not-related: "), "{text}");
}

#[test]
fn ftps_through_the_router() {
    if !ready(
        "ftps_through_the_router",
        &[NFT, CURL, PYFTPDLIB, OPENSSL, PYOPENSSL],
    ) {
        return;
    }
    let mut lab = Lab::new("rtftps", 213, &[HELPER]);
    lab.serve(true, None);
    lab.curl(false, &["--ssl-reqd", "-k"]);
    let sessions = lab.sessions_when("a TLS data flow crossing the router", |s| {
        s.len() == 1 && flows(&s[0], "data").len() == 1
    });
    let s = &sessions[0];
    assert_eq!(s["helper"], "assigned", "{s:#}");
    assert_eq!(s["mode"], "passive");
    let data = flows(s, "data")[0];
    assert_eq!(
        data["expected"], false,
        "the helper cannot read TLS: {data:#}"
    );
    assert_eq!(flows(s, "pending").len(), 0);
    assert_eq!(kinds(s), ["ftps"], "{s:#}");
    let text = lab.router.sockwho_ok(&["--ftp"]);
    assert!(text.contains("! ftps: FTPS (AUTH TLS) inferred"), "{text}");
}

#[test]
fn two_clients_at_once() {
    if !ready("two_clients_at_once", &[NFT, CURL, PYFTPDLIB]) {
        return;
    }
    let mut lab = Lab::new("rttwo", 214, &[HELPER]);
    lab.serve(false, None);
    lab.curl(false, &[]);
    lab.curl(true, &["--ftp-port", "-"]);
    let sessions = lab.sessions_when("two sessions, each with its data flow", |s| {
        s.len() == 2 && s.iter().all(|x| flows(x, "data").len() == 1)
    });
    let second = format!("10.{}.3.2", lab.n);
    let mut clients: Vec<&str> = sessions
        .iter()
        .map(|s| s["client"]["addr"].as_str().expect("addr"))
        .collect();
    clients.sort_unstable();
    assert_eq!(clients, [lab.client_addr().as_str(), second.as_str()]);
    assert_ne!(sessions[0]["session"], sessions[1]["session"]);
    for s in &sessions {
        let data = flows(s, "data")[0];
        assert_eq!(data["evidence"][0], "conntrack-master", "{s:#}");
        let mode = if s["client"]["addr"] == second.as_str() {
            "active"
        } else {
            "passive"
        };
        assert_eq!(s["mode"], mode, "{s:#}");
    }
    let summary = lab.router.json(&["-s"]);
    assert_eq!(
        summary["ftp"]["sessions"]["by_side"]["router"], 2,
        "{summary}"
    );
    // watch mode: a document a line, each with both sessions (the table
    // conntrack's events keep)
    let out = lab.router.sockwho_ok(&[
        "-c",
        "--format",
        "json",
        "--interval",
        "0.2",
        "--count",
        "3",
    ]);
    let docs: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON document a line"))
        .collect();
    assert_eq!(docs.len(), 3, "{out}");
    for doc in &docs {
        let here: Vec<&Value> = doc["ftp_sessions"]
            .as_array()
            .expect("ftp_sessions")
            .iter()
            .filter(|s| s["here"] == serde_json::json!(["router"]))
            .collect();
        assert_eq!(here.len(), 2, "{doc}");
    }
}

#[test]
fn unprivileged_on_the_router_says_once_what_it_cannot_see() {
    if !ready(
        "unprivileged_on_the_router_says_once_what_it_cannot_see",
        &[NFT, CURL, PYFTPDLIB, SETPRIV],
    ) {
        return;
    }
    let mut lab = Lab::new("rtnopriv", 215, &[HELPER]);
    lab.serve(false, None);
    lab.curl(false, &[]);
    lab.sessions_when("a session as root", |s| s.len() == 1);
    let (_dir, bin) = binary_for_anyone();
    let bin = bin.to_str().expect("a UTF-8 path");
    let nobody = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
    ];
    let run = |args: &[&str]| {
        let mut argv = nobody.to_vec();
        argv.push(bin);
        argv.extend_from_slice(args);
        lab.router.exec(&argv)
    };
    let out = run(&["--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(doc["ftp_sessions"], serde_json::json!([]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let said = "FTP sessions this host forwards are not shown: conntrack is not readable without CAP_NET_ADMIN";
    assert_eq!(stderr.matches(said).count(), 1, "{stderr}");
    let view = run(&["--ftp"]);
    let text = String::from_utf8_lossy(&view.stdout);
    assert!(
        text.contains("conntrack: conntrack is not readable without CAP_NET_ADMIN"),
        "{text}"
    );
}

#[test]
fn a_227_naming_an_address_the_client_cannot_reach() {
    if !ready(
        "a_227_naming_an_address_the_client_cannot_reach",
        &[NFT, CURL, PYFTPDLIB],
    ) {
        return;
    }
    let mut lab = Lab::new("rtunrep", 216, &[HELPER]);
    // a server behind NAT announcing an address of its own network: the
    // router routes it towards the server, which drops what is not its own
    let hidden = format!("10.{}.9.9", lab.n);
    let via = lab.server_addr();
    lab.router.exec_ok(&[
        "ip",
        "route",
        "add",
        &format!("10.{}.9.0/24", lab.n),
        "via",
        &via,
    ]);
    lab.serve(false, Some(&hidden));
    // PASV (not EPSV), and the address in the 227 obeyed
    lab.curl(
        false,
        &[
            "--disable-epsv",
            "--no-ftp-skip-pasv-ip",
            "--connect-timeout",
            "60",
        ],
    );
    let sessions = lab.sessions_when("the unanswered data flow", |s| {
        s.len() == 1 && flows(&s[0], "data").len() == 1
    });
    let s = &sessions[0];
    let data = flows(s, "data")[0];
    assert_eq!(data["orig"]["dst"]["addr"], hidden, "{s:#}");
    assert_eq!(data["unreplied"], true);
    assert_eq!(data["state"], "SYN_SENT");
    assert_eq!(data["expected"], false);
    assert_eq!(data["mode"], "passive");
    assert_eq!(data["evidence"][0], "same-client");
    assert_eq!(kinds(s), ["passive-unreplied"], "{s:#}");
    let text = lab.router.sockwho_ok(&["--ftp"]);
    assert!(
        text.contains("! passive-unreplied: passive data connection"),
        "{text}"
    );
}
