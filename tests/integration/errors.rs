//! Bad input and closed pipes: one line on stderr, a documented exit code,
//! never a panic and never a half-written output.

use std::io::Read;
use std::process::{Command, Stdio};

use crate::harness::BIN;

fn sockwho(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).output().expect("run sockwho")
}

#[test]
fn usage_error_is_one_line_and_exit_2() {
    for args in [
        &["--bogus"][..],
        &["--format", "yaml"],
        &["--source", "x"],
        &["-Z"],
    ] {
        let out = sockwho(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("sockwho: "), "{err}");
        assert!(out.stdout.is_empty());
    }
    assert_eq!(sockwho(&["--help"]).status.code(), Some(0));
    assert_eq!(sockwho(&["--version"]).status.code(), Some(0));
}

#[test]
fn unreadable_proc_is_an_error_with_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["-an", "--source", "procfs"])
        .env("SOCKWHO_PROC_ROOT", dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "no half-written output");
    let err = String::from_utf8(out.stderr).unwrap();
    let last = err.lines().last().unwrap();
    assert!(
        last.starts_with("sockwho: cannot read ") && last.contains("missing/net/tcp"),
        "{err}"
    );
}

#[test]
fn a_closed_stdout_exits_quietly_with_0() {
    // the reader is gone before sockwho writes anything
    let mut child = Command::new(BIN)
        .args(["-an"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    // and the shell's way
    let out = Command::new("sh")
        .args(["-c", &format!("{BIN} -an | head -1")])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

/// Issue 13, item 10: `--help > /dev/full` exited 0 silently.
#[test]
fn help_and_version_to_a_full_device_fail_regression_13() {
    for arg in ["--help", "--version"] {
        let full = std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .expect("/dev/full");
        let out = Command::new(BIN)
            .arg(arg)
            .stdout(full)
            .output()
            .expect("run sockwho");
        assert_eq!(out.status.code(), Some(1), "{arg}");
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(
            err,
            "sockwho: cannot write the output: No space left on device\n"
        );
    }
}

/// Issue 13, item 9: one bad byte in a replayed /proc/net/tcp failed the
/// whole run; now the line is skipped and said once.
#[test]
fn a_replayed_table_with_a_bad_byte_skips_the_line_regression_13() {
    let dir = tempfile::tempdir().unwrap();
    let net = dir.path().join("net");
    std::fs::create_dir_all(&net).unwrap();
    let mut tcp = b"  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n".to_vec();
    tcp.extend_from_slice(b"   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1\n");
    tcp.extend_from_slice(b"   1: 0100007F:1F91 \xff 0A\n");
    std::fs::write(net.join("tcp"), tcp).unwrap();
    let out = Command::new(BIN)
        .args(["-tln"])
        .env("SOCKWHO_PROC_ROOT", dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("127.0.0.1:8080"), "{table}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("skipped 1 malformed line"), "{err}");
}

/// Issue 12: netstat's and ss's habits. Repeated flags and netstat's long
/// options are accepted; the usual mistakes get a hint; numbers and values
/// are judged in sockwho's words.
#[test]
fn netstat_and_ss_habits_are_understood() {
    for args in [
        &["-ee", "-tn"][..],
        &["-nn", "-t"],
        &["-tann"],
        &["-a", "-a", "-t", "-n"],
        &[
            "--numeric-ports",
            "--numeric-hosts",
            "--numeric-users",
            "-t",
        ],
        &[
            "--extend",
            "--programs",
            "--listening",
            "--tcp",
            "--udp",
            "-n",
        ],
        &["--continuous", "--count", "1", "-tn"],
        &["-H", "-tn"],
        &["--sport", ":22", "-tn"],
    ] {
        let out = sockwho(args);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // -H: no header lines at all
    let out = sockwho(&["-H", "-tln"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(
        !table.contains("Active Internet") && !table.contains("Proto"),
        "{table}"
    );
    let said = |args: &[&str]| {
        let out = sockwho(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(out.stdout.is_empty());
        let err = String::from_utf8(out.stderr).unwrap();
        assert_eq!(err.lines().count(), 1, "{err}");
        err
    };
    assert!(said(&["-c", "2"]).contains("-c --interval 2"));
    assert!(said(&["--format", "yaml"]).contains("valid values: table, json, jsonl, csv"));
    let count = said(&["--count=-1"]);
    assert!(count.contains("not a number of refreshes"), "{count}");
    let pid = said(&["--pid", "abc"]);
    assert!(pid.contains("not a process ID"), "{pid}");
    assert!(!pid.contains("invalid digit"), "Rust's words: {pid}");
}
