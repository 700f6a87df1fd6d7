//! A small harness: private network namespaces made by the tests, and the
//! sockwho binary run inside them.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

pub const BIN: &str = env!("CARGO_BIN_EXE_sockwho");

/// Says that a test is skipped, and why, where a person sees it: libtest
/// captures `eprintln!` of passing tests, not writes to the stderr handle.
pub fn skip(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED {test}: {why}");
}

/// A tool a test runs, and where it comes from.
pub struct Tool {
    /// A command on PATH, or a Python module.
    pub command: &'static str,
    /// For a module: the Python that must import it.
    pub python: Option<&'static str>,
    pub install: &'static str,
}

pub const NFT: Tool = Tool {
    command: "nft",
    python: None,
    install: "apt-get install nftables",
};
pub const CURL: Tool = Tool {
    command: "curl",
    python: None,
    install: "apt-get install curl",
};
pub const SETPRIV: Tool = Tool {
    command: "setpriv",
    python: None,
    install: "apt-get install util-linux",
};
pub const SS: Tool = Tool {
    command: "ss",
    python: None,
    install: "apt-get install iproute2",
};
pub const NETSTAT: Tool = Tool {
    command: "netstat",
    python: None,
    install: "apt-get install net-tools",
};
/// Debian's `prometheus` package: the server, and promtool beside it.
pub const PROMETHEUS: Tool = Tool {
    command: "prometheus",
    python: None,
    install: "apt-get install prometheus",
};
pub const PROMTOOL: Tool = Tool {
    command: "promtool",
    python: None,
    install: "apt-get install prometheus",
};
/// A real terminal for the interactive view's test.
pub const TMUX: Tool = Tool {
    command: "tmux",
    python: None,
    install: "apt-get install tmux",
};
/// jc, for the PATH's python3 (the tests run it as `python3`).
pub const JC: Tool = Tool {
    command: "jc",
    python: Some("python3"),
    install: "python3 -m pip install jc",
};
pub const PYFTPDLIB: Tool = Tool {
    command: "pyftpdlib",
    python: Some("python3"),
    install: "python3 -m pip install pyftpdlib",
};

fn has(tool: &Tool) -> bool {
    let probe = if let Some(python) = tool.python {
        Command::new(python)
            .args(["-c", &format!("import {}", tool.command)])
            .output()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {}", tool.command)])
            .output()
    };
    probe.is_ok_and(|o| o.status.success())
}

/// Whether the tools a test runs are here. Under CI they must be (.ci/run
/// installs them); elsewhere the test is skipped, saying what to install.
pub fn has_tools(test: &str, tools: &[Tool]) -> bool {
    let missing: Vec<String> = tools
        .iter()
        .filter(|t| !has(t))
        .map(|t| format!("{} ({})", t.command, t.install))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("needs {}", missing.join(", "));
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but it {why}");
    }
    skip(test, &why);
    false
}

/// Whether tests that need root and `ip netns` can run here. Under CI they
/// must: a missing privilege there is a failure, not a skip.
pub fn can_use_netns(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let ip = Command::new("ip")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if root && ip {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{test}: CI=true but root={root} ip={ip}: namespace tests must run in CI");
    }
    skip(
        test,
        &format!("needs root and `ip netns` (root={root}, ip={ip}); run `sudo cargo test`"),
    );
    false
}

/// A child process, killed and reaped on drop.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A network namespace with its loopback up, deleted on drop.
pub struct Netns {
    pub name: String,
}

static COUNTER: AtomicUsize = AtomicUsize::new(0);

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let name = format!("sw-{tag}-{}-{n}", std::process::id());
        run_ok(Command::new("ip").args(["netns", "add", &name]));
        let ns = Netns { name };
        ns.exec_ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace and insists that it succeeds.
    pub fn exec_ok(&self, argv: &[&str]) -> String {
        let out = self.exec(argv);
        assert!(
            out.status.success(),
            "{argv:?} in {} failed: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    pub fn exec(&self, argv: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .expect("ip netns exec")
    }

    /// Runs sockwho inside the namespace.
    pub fn sockwho(&self, args: &[&str]) -> Output {
        let mut argv = vec![BIN];
        argv.extend_from_slice(args);
        self.exec(&argv)
    }

    /// Runs sockwho, insists on success, and returns its stdout.
    pub fn sockwho_ok(&self, args: &[&str]) -> String {
        let out = self.sockwho(args);
        assert!(
            out.status.success(),
            "sockwho {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut argv = vec!["--format", "json"];
        argv.extend_from_slice(args);
        serde_json::from_str(&self.sockwho_ok(&argv)).expect("sockwho printed valid JSON")
    }

    pub fn sysctl(&self, key: &str, value: &str) {
        self.exec_ok(&["sysctl", "-q", "-w", &format!("{key}={value}")]);
    }

    /// Runs `f` on a thread that has entered the namespace: the sockets it
    /// opens live there, and stay open in this process after it returns.
    pub fn enter<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        let path = self.path();
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    join_netns(&path);
                    f()
                })
                .join()
                .expect("namespace thread")
        })
    }

    /// Like [`Netns::enter`], for a thread that goes on (a server, a client
    /// in the middle of a transfer). Threads it starts are in the namespace too.
    pub fn spawn<R: Send + 'static>(
        &self,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> std::thread::JoinHandle<R> {
        let path = self.path();
        std::thread::spawn(move || {
            join_netns(&path);
            f()
        })
    }

    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Moves the calling thread into the namespace at `path`.
fn join_netns(path: &str) {
    let ns = File::open(path).expect("open the namespace");
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

pub fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The sockets of a JSON document, as a vector.
pub fn sockets(doc: &serde_json::Value) -> &Vec<serde_json::Value> {
    doc["sockets"].as_array().expect("a sockets array")
}

/// The one socket with this local port and state, and remote port if given.
pub fn find<'a>(
    doc: &'a serde_json::Value,
    proto: &str,
    local_port: u16,
    remote_port: Option<u16>,
) -> &'a serde_json::Value {
    let found: Vec<_> = sockets(doc)
        .iter()
        .filter(|s| {
            s["proto"] == proto
                && s["local"]["port"] == local_port
                && match remote_port {
                    Some(p) => s["remote"]["port"] == p,
                    None => s["remote"].is_null(),
                }
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{proto} {local_port} -> {remote_port:?}: {found:#?}"
    );
    found[0]
}

/// Runs `cmd`, again while the kernel says the program is busy (ETXTBSY):
/// a copy of the binary just written may still be open for writing in a
/// child another test forked at that moment, until that child execs.
pub fn output_when_not_busy(cmd: &mut Command) -> Output {
    for _ in 0..50 {
        match cmd.output() {
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {}
            Ok(out) if String::from_utf8_lossy(&out.stderr).contains("Text file busy") => {}
            out => return out.expect("spawn"),
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    cmd.output().expect("spawn")
}

/// A copy of the binary that any user may run: the checkout may sit where
/// nobody else can reach (under /root). Keep the directory while it runs.
pub fn binary_for_anyone() -> (tempfile::TempDir, std::path::PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("sockwho");
    std::fs::copy(BIN, &bin).unwrap();
    for path in [dir.path(), bin.as_path()] {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    (dir, bin)
}

/// Closes with RST (SO_LINGER 0): no TIME_WAIT left behind, the port free
/// at once.
pub fn reset(s: std::net::TcpStream) {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a linger struct of the right size.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}
