//! `collect::conntrack` against real FTP sessions: two private namespaces
//! joined by a veth pair, the kernel's ftp helper assigned on the server side
//! as ../shared/design/ftp.md says, pyftpdlib serving there, and curl (or a
//! few lines of FTP spoken from here) on the client side.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockwho::collect::conntrack;
use sockwho::model::{Conntrack, ConntrackSource, Endpoint, Expectation, Flow, Tuple};

use crate::harness::{Netns, Running, can_use_netns};

const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 201, 0, 1));
const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 201, 0, 2));
const TCP: u8 = 6;
/// The ftp.md ruleset. nft 1.0.6 wants a `;` or a newline after each `}`
/// block, so it is not on one line here.
const RULESET: &str = "table inet t {
    ct helper ftp-std { type \"ftp\" protocol tcp; }
    chain pre { type filter hook prerouting priority filter; tcp dport 21 ct helper set \"ftp-std\"; }
}
";

/// An FTP server in one namespace and a client namespace beside it. Fields
/// drop in order: the processes go before their namespaces.
struct Ftp {
    processes: Vec<Running>,
    server: Netns,
    client: Netns,
    dir: tempfile::TempDir,
}

impl Ftp {
    fn new(tag: &str) -> Ftp {
        let server = Netns::new(&format!("{tag}-s"));
        let client = Netns::new(&format!("{tag}-c"));
        let dir = tempfile::tempdir().expect("a temporary directory");
        server.exec_ok(&[
            "ip",
            "link",
            "add",
            "ct0",
            "type",
            "veth",
            "peer",
            "name",
            "ct1",
            "netns",
            &client.name,
        ]);
        server.exec_ok(&["ip", "addr", "add", "10.201.0.1/24", "dev", "ct0"]);
        server.exec_ok(&["ip", "link", "set", "ct0", "up"]);
        client.exec_ok(&["ip", "addr", "add", "10.201.0.2/24", "dev", "ct1"]);
        client.exec_ok(&["ip", "link", "set", "ct1", "up"]);
        let rules = dir.path().join("ftp.nft");
        std::fs::write(&rules, RULESET).expect("write the ruleset");
        server.exec_ok(&["nft", "-f", rules.to_str().expect("a UTF-8 path")]);
        // Large enough that a transfer at 20 kB/s outlives the test.
        std::fs::write(dir.path().join("bigfile"), vec![0; 5_000_000]).expect("write bigfile");
        let mut ftp = Ftp {
            processes: Vec::new(),
            server,
            client,
            dir,
        };
        let dir = ftp.dir.path().to_str().expect("a UTF-8 path").to_string();
        let server_name = ftp.server.name.clone();
        ftp.spawn(
            &server_name,
            &[
                "python3",
                "-m",
                "pyftpdlib",
                "-i",
                "10.201.0.1",
                "-p",
                "21",
                "-d",
                &dir,
            ],
        );
        ftp.wait("pyftpdlib to listen on 10.201.0.1:21", |ftp| {
            let out = ftp.server.exec(&["ss", "-Hltn", "sport = :21"]);
            let server = &mut ftp.processes[0].0;
            if let Ok(Some(status)) = server.try_wait() {
                panic!("pyftpdlib exited ({status}): is it installed for python3?");
            }
            !out.stdout.is_empty()
        });
        ftp
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

    /// Starts a throttled download of bigfile with curl on the client side.
    fn curl(&mut self, extra: &[&str]) {
        let mut argv = vec!["curl", "-s", "--limit-rate", "20k"];
        argv.extend_from_slice(extra);
        argv.extend(["ftp://10.201.0.1/bigfile", "-o", "/dev/null"]);
        let client = self.client.name.clone();
        self.spawn(&client, &argv);
    }

    /// The server namespace's conntrack as `read` gives it.
    fn conntrack(&self) -> Conntrack {
        // /proc/net would be the namespace of the process's main thread.
        let ct = self
            .server
            .enter(|| conntrack::read(Path::new("/proc/thread-self")))
            .expect("conntrack is readable as root");
        assert_eq!(ct.source, ConntrackSource::Netlink);
        ct
    }

    fn wait(&mut self, what: &str, mut done: impl FnMut(&mut Ftp) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the data connection of curl's transfer and returns the
    /// control flow and the data flow.
    fn session(&mut self) -> (Conntrack, Flow, Flow) {
        let mut found = None;
        self.wait("an expected flow", |ftp| {
            let ct = ftp.conntrack();
            found = ct.flows.iter().any(|f| f.expected).then_some(ct);
            found.is_some()
        });
        let ct = found.expect("found");
        let pick = |what: &str, wanted: &dyn Fn(&Flow) -> bool| {
            let flows: Vec<&Flow> = ct.flows.iter().filter(|f| wanted(f)).collect();
            assert_eq!(flows.len(), 1, "one {what}: {:#?}", ct.flows);
            flows[0].clone()
        };
        let control = pick("control flow", &|f| f.orig.dst == Endpoint::new(SERVER, 21));
        let data = pick("expected flow", &|f| f.expected);
        assert_eq!(control.helper.as_deref(), Some("ftp"));
        assert_eq!(control.orig.src.addr, CLIENT);
        assert!(!control.expected);
        assert_eq!(data.master, Some(control.orig));
        (ct, control, data)
    }
}

#[test]
fn passive_data_flow_is_expected_and_opened_by_the_client() {
    if !can_use_netns("passive_data_flow_is_expected_and_opened_by_the_client") {
        return;
    }
    let mut ftp = Ftp::new("ctpasv");
    ftp.curl(&[]);
    let (_, _, data) = ftp.session();
    assert_eq!(data.orig.src.addr, CLIENT, "{data:?}");
    assert_eq!(data.orig.dst.addr, SERVER, "{data:?}");
}

#[test]
fn active_data_flow_is_expected_and_opened_by_the_server() {
    if !can_use_netns("active_data_flow_is_expected_and_opened_by_the_server") {
        return;
    }
    let mut ftp = Ftp::new("ctactv");
    ftp.curl(&["--ftp-port", "-"]);
    let (_, _, data) = ftp.session();
    assert_eq!(data.orig.src.addr, SERVER, "{data:?}");
    assert_eq!(data.orig.dst.addr, CLIENT, "{data:?}");
}

#[test]
fn pasv_leaves_a_pending_expectation_towards_the_server() {
    if !can_use_netns("pasv_leaves_a_pending_expectation_towards_the_server") {
        return;
    }
    let ftp = Ftp::new("ctexp");
    // Log in and ask for PASV, then connect nowhere: the expectation stays.
    let (_control, local, port) = ftp.client.enter(|| {
        let addr = SocketAddr::new(SERVER, 21);
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
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
            reply(&mut reader)
        };
        say("");
        say("USER anonymous");
        say("PASS x");
        let pasv = say("PASV");
        assert!(pasv.starts_with("227 "), "{pasv}");
        let port = pasv_port(&pasv);
        let local = stream.local_addr().expect("local address");
        (stream, local, port)
    });
    let ct = ftp.conntrack();
    let control = Tuple {
        src: Endpoint::new(CLIENT, local.port()),
        dst: Endpoint::new(SERVER, 21),
        proto: TCP,
    };
    // the ftp helper's expectations last 5 minutes (`ftp_exp_policy`)
    let left = ct.expectations.first().and_then(|e| e.timeout);
    assert!(left.is_some_and(|s| (1..=300).contains(&s)), "{ct:?}");
    assert_eq!(
        ct.expectations,
        [Expectation {
            // dst = the server: passive.
            tuple: Tuple {
                src: Endpoint::new(CLIENT, 0),
                dst: Endpoint::new(SERVER, port),
                proto: TCP,
            },
            master: Some(control),
            helper: Some("ftp".to_string()),
            // no NAT here
            nat: None,
            timeout: left,
        }]
    );
}

#[test]
fn procfs_shows_the_same_control_and_data_flows() {
    if !can_use_netns("procfs_shows_the_same_control_and_data_flows") {
        return;
    }
    let mut ftp = Ftp::new("ctproc");
    ftp.curl(&[]);
    let (_, control, data) = ftp.session();
    let text = ftp.server.enter(|| {
        std::fs::read_to_string("/proc/thread-self/net/nf_conntrack").expect("read nf_conntrack")
    });
    let (flows, malformed) = conntrack::parse_proc_flows(&text);
    assert_eq!(malformed, 0, "{text}");
    for netlink in [control, data] {
        let proc = flows
            .iter()
            .find(|f| f.orig == netlink.orig)
            .unwrap_or_else(|| panic!("{:?} in {text}", netlink.orig));
        assert_eq!(proc.reply, netlink.reply);
        // What procfs cannot tell.
        assert!(!proc.expected && proc.helper.is_none() && proc.master.is_none());
    }
}

#[test]
fn without_privilege_read_says_why() {
    if !can_use_netns("without_privilege_read_says_why") {
        return;
    }
    let ns = Netns::new("ctnopriv");
    let result = ns.enter(|| {
        // Raw syscalls change this thread only (libc's wrappers change
        // them all). Groups and gid first, while we may; leaving uid 0 then
        // drops every capability.
        // SAFETY: no pointers but an empty group list; the thread ends
        // right after.
        let rcs = unsafe {
            [
                libc::syscall(libc::SYS_setgroups, 0, std::ptr::null::<libc::gid_t>()),
                libc::syscall(libc::SYS_setresgid, 65534, 65534, 65534),
                libc::syscall(libc::SYS_setresuid, 65534, 65534, 65534),
            ]
        };
        assert_eq!(rcs, [0; 3], "{}", std::io::Error::last_os_error());
        conntrack::read(Path::new("/proc/thread-self"))
    });
    // A change of uid makes the whole process undumpable; undo that.
    // SAFETY: no pointers.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 1) };
    assert_eq!(
        result,
        Err("conntrack is not readable without CAP_NET_ADMIN".to_string())
    );
}

/// Reads one FTP reply, skipping the lines of a multi-line one.
fn reply(reader: &mut impl BufRead) -> String {
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read a reply");
        assert!(n > 0, "the FTP server hung up");
        let b = line.as_bytes();
        if b.len() > 3 && b[..3].iter().all(u8::is_ascii_digit) && b[3] == b' ' {
            return line.trim_end().to_string();
        }
    }
}

/// The port of `227 Entering passive mode (h1,h2,h3,h4,p1,p2).`
fn pasv_port(reply: &str) -> u16 {
    let inside = reply
        .split(['(', ')'])
        .nth(1)
        .unwrap_or_else(|| panic!("{reply}"));
    let n: Vec<u16> = inside.split(',').map(|x| x.parse().expect(reply)).collect();
    n[4] * 256 + n[5]
}
