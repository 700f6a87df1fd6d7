//! Without root: every socket is listed, the owners a user may see are
//! shown, the rest are `-`, and one line says so.

use std::io::BufRead;
use std::net::TcpListener;
use std::process::{Command, Stdio};

use crate::harness::{
    Netns, SETPRIV, binary_for_anyone, can_use_netns, has_tools, output_when_not_busy,
};

#[test]
fn unprivileged_user_sees_sockets_and_only_own_owners() {
    if !can_use_netns("unprivileged_user_sees_sockets_and_only_own_owners")
        || !has_tools(
            "unprivileged_user_sees_sockets_and_only_own_owners",
            &[SETPRIV],
        )
    {
        return;
    }
    let ns = Netns::new("nobody");
    // a socket of root's (this test process)...
    let _root = ns.enter(|| TcpListener::bind("127.0.0.1:6001").unwrap());
    // ...and one of nobody's
    let script = "import socket,sys\n\
        s=socket.socket(); s.bind(('127.0.0.1',6002)); s.listen()\n\
        print('READY',flush=True); sys.stdin.read()\n";
    let nobody = [
        "setpriv",
        "--reuid",
        "65534",
        "--regid",
        "65534",
        "--clear-groups",
    ];
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .args(nobody)
        .args(["/usr/bin/python3", "-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 as nobody");
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "READY");

    let (_dir, bin) = binary_for_anyone();
    let mut argv: Vec<&str> = nobody.to_vec();
    argv.extend([bin.to_str().unwrap(), "-tlnp"]);
    let out = output_when_not_busy(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(&argv),
    );
    drop(child.stdin.take());
    let _ = child.wait();

    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8(out.stdout).unwrap();
    let row = |port: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("127.0.0.1:{port} ")))
            .unwrap_or_else(|| panic!("{port} in {table}"))
            .split_whitespace()
            .nth(6) // PID/Program name, after State, as in netstat
            .unwrap()
            .to_string()
    };
    assert_eq!(row("6001"), "-", "root's socket: owner hidden");
    assert_eq!(row("6002"), format!("{}/python3", child.id()));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one notice: {err}");
    assert!(
        err.starts_with("sockwho: ") && err.contains("run as root"),
        "{err}"
    );
}
