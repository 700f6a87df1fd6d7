//! Two hosts on one machine: a server and a client namespace joined by a
//! veth pair, with IPv4 and IPv6 addresses, and real FTP servers and
//! clients to run in them.

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::harness::{Netns, run_ok};

pub const SRV4: &str = "10.77.0.1";
pub const CLI4: &str = "10.77.0.2";
pub const SRV6: &str = "fd77::1";
pub const CLI6: &str = "fd77::2";

pub struct Hosts {
    pub srv: Netns,
    pub cli: Netns,
}

static LINKS: AtomicUsize = AtomicUsize::new(0);

impl Hosts {
    pub fn new(tag: &str) -> Hosts {
        let srv = Netns::new(&format!("{tag}s"));
        let cli = Netns::new(&format!("{tag}c"));
        let n = LINKS.fetch_add(1, Ordering::SeqCst);
        let (a, b) = (
            format!("sw{}x{n}a", std::process::id() % 100_000),
            format!("sw{}x{n}b", std::process::id() % 100_000),
        );
        run_ok(Command::new("ip").args(["link", "add", &a, "type", "veth", "peer", "name", &b]));
        run_ok(Command::new("ip").args(["link", "set", &a, "netns", &srv.name]));
        run_ok(Command::new("ip").args(["link", "set", &b, "netns", &cli.name]));
        for (ns, dev, v4, v6) in [(&srv, &a, SRV4, SRV6), (&cli, &b, CLI4, CLI6)] {
            ns.exec_ok(&["ip", "addr", "add", &format!("{v4}/24"), "dev", dev]);
            ns.exec_ok(&[
                "ip",
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            ns.exec_ok(&["ip", "link", "set", dev, "up"]);
        }
        Hosts { srv, cli }
    }
}

/// A libunftp server (anonymous, active and passive) on a thread in `ns`,
/// serving a directory with a 256 MiB file `big`; stopped on drop.
pub struct FtpServer {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

pub fn libunftp(ns: &Netns, bind: &str, passive: std::ops::RangeInclusive<u16>) -> FtpServer {
    let dir = tempfile::tempdir().unwrap();
    // Larger than what the sockets of a held transfer can buffer, so the
    // data connection stays open. Written out: sparse files end early here.
    std::fs::write(dir.path().join("big"), vec![b'x'; 32 << 20]).unwrap();
    let root = dir.path().to_path_buf();
    let bind = bind.to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = ns.spawn(move || {
        // One thread: every socket the server makes is in this namespace.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let server = libunftp::ServerBuilder::new(Box::new(move || {
            unftp_sbe_fs::Filesystem::new(root.clone()).unwrap()
        }))
        .greeting("sockwho test server")
        .passive_ports(passive)
        .active_passive_mode(libunftp::options::ActivePassiveMode::ActiveAndPassive)
        .shutdown_indicator(async move {
            let _ = stopped.await;
            libunftp::options::Shutdown::new().grace_period(Duration::from_millis(50))
        })
        .build()
        .unwrap();
        rt.block_on(server.listen(bind)).unwrap();
    });
    FtpServer {
        stop: Some(stop),
        thread: Some(thread),
        _dir: dir,
    }
}

impl Drop for FtpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Connects, retrying while the server starts.
fn connect(addr: SocketAddr) -> TcpStream {
    let start = Instant::now();
    loop {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => return s,
            Err(e) if start.elapsed() < Duration::from_secs(10) => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("connect {addr}: {e}"),
        }
    }
}

/// A suppaftp download held in the middle, so its data connection stays
/// open while sockwho looks; released on drop.
pub struct Transfer {
    pub control_port: u16,
    release: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

pub fn suppaftp_download(ns: &Netns, server: &str, mode: suppaftp::Mode) -> Transfer {
    let addr: SocketAddr = server.parse().unwrap();
    let (ready_tx, ready) = mpsc::channel();
    let (release, released) = mpsc::channel::<()>();
    let thread = ns.spawn(move || {
        let stream = connect(addr);
        let control_port = stream.local_addr().unwrap().port();
        let mut ftp = suppaftp::FtpStream::connect_with_stream(stream).unwrap();
        if mode == suppaftp::Mode::Active {
            ftp = ftp.active_mode(Duration::from_secs(10));
        }
        ftp.set_mode(mode);
        ftp.login("anonymous", "sockwho@test").unwrap();
        let mut data = ftp.retr_as_stream("big").unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        data.read_exact(&mut buf).unwrap();
        ready_tx.send(control_port).unwrap();
        let _ = released.recv();
        drop(data);
        drop(ftp);
    });
    let control_port = ready
        .recv_timeout(Duration::from_secs(20))
        .expect("the download started");
    Transfer {
        control_port,
        release: Some(release),
        thread: Some(thread),
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        drop(self.release.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A process in `ns` that prints READY once set up; killed on drop.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `argv` in `ns` and waits for it to print a line starting with
/// READY (Python helpers), or for `wait` to pass (other programs).
pub fn start(ns: &Netns, argv: &[&str], wait: Option<Duration>) -> Proc {
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(argv)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    match wait {
        Some(d) => std::thread::sleep(d),
        None => {
            let mut line = String::new();
            BufReader::new(child.stdout.take().unwrap())
                .read_line(&mut line)
                .unwrap();
            assert!(line.starts_with("READY"), "{argv:?} said {line:?}");
        }
    }
    Proc(child)
}

/// Waits until `ns` has an established TCP connection to or from `port`.
pub fn wait_established(ns: &Netns, port: u16) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(20) {
        let out = ns.exec_ok(&["ss", "-tnH", "state", "established"]);
        if out.lines().any(|l| l.contains(&format!(":{port} "))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no established connection on port {port} in {}", ns.name);
}
