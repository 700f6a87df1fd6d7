//! The man page and shell completions come from the clap definition; the
//! committed page must match it.

use std::process::Command;

use crate::harness::BIN;

fn render_man_page() -> Vec<u8> {
    let mut page = Vec::new();
    clap_mangen::Man::new(sockwho::cli::command())
        .render(&mut page)
        .expect("render the man page");
    page
}

#[test]
fn committed_man_page_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/man/sockwho.1");
    let fresh = render_man_page();
    if std::env::var_os("SOCKWHO_BLESS").is_some() {
        std::fs::write(path, &fresh).unwrap();
    }
    let committed = std::fs::read(path).unwrap_or_default();
    assert!(
        committed == fresh,
        "man/sockwho.1 is stale: run `SOCKWHO_BLESS=1 cargo test --test integration man_page` and commit it"
    );
    let text = String::from_utf8(fresh).unwrap();
    for needle in ["sockwho", "\\-\\-format", "Exit status"] {
        assert!(text.contains(needle), "{needle} in the man page");
    }
}

#[test]
fn completions_for_bash_zsh_and_fish() {
    for (shell, needle) in [
        ("bash", "_sockwho()"),
        ("zsh", "#compdef sockwho"),
        ("fish", "complete -c sockwho"),
    ] {
        let out = Command::new(BIN)
            .args(["--completions", shell])
            .output()
            .unwrap();
        assert!(out.status.success());
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains(needle), "{shell}: {needle}");
        assert!(script.contains("format"), "{shell} completes --format");
    }
    // the bash script parses
    let script = Command::new(BIN)
        .args(["--completions", "bash"])
        .output()
        .unwrap()
        .stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sockwho.bash");
    std::fs::write(&file, script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).status().unwrap();
    assert!(check.success());
}
