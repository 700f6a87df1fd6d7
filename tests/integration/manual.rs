//! The man page and shell completions come from the clap definition; the
//! committed page must match it.

use std::process::Command;

use crate::harness::BIN;

/// clap's sections, then sockwho's own (`cli::MAN_SECTIONS`), then the version.
fn render_man_page() -> Vec<u8> {
    let man = clap_mangen::Man::new(sockwho::cli::command());
    let mut page = Vec::new();
    man.render_title(&mut page)
        .and_then(|()| man.render_name_section(&mut page))
        .and_then(|()| man.render_synopsis_section(&mut page))
        .and_then(|()| man.render_description_section(&mut page))
        .and_then(|()| man.render_options_section(&mut page))
        .and_then(|()| man.render_extra_section(&mut page))
        .expect("render the man page");
    for (heading, entries) in sockwho::cli::MAN_SECTIONS {
        page.extend_from_slice(format!(".SH \"{heading}\"\n").as_bytes());
        for (term, text) in *entries {
            if term.is_empty() {
                page.extend_from_slice(format!(".PP\n{}\n", roff(text)).as_bytes());
            } else {
                page.extend_from_slice(
                    format!(".TP\n\\fB{}\\fR\n{}\n", roff(term), roff(text)).as_bytes(),
                );
            }
        }
    }
    man.render_version_section(&mut page)
        .expect("render the man page");
    page
}

/// Text as roff takes it: backslashes and hyphens escaped, no line that
/// starts with a control character.
fn roff(text: &str) -> String {
    let escaped = text.replace('\\', "\\e").replace('-', "\\-");
    match escaped.chars().next() {
        Some('.' | '\'') => format!("\\&{escaped}"),
        _ => escaped,
    }
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
    for needle in [
        "sockwho",
        "\\-\\-format",
        "Exit status",
        ".SH \"ENVIRONMENT\"",
        "SOCKWHO_DIAG_FILE",
        ".SH \"EXIT STATUS\"",
        ".SH \"SEE ALSO\"",
    ] {
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

/// The JSON schema is documented in one place, README.md's "JSON" section:
/// every field the output has is documented there, and every field
/// documented there is in the output.
#[test]
fn the_readme_documents_the_json_schema_as_it_is() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let start = readme.find("\n## JSON\n").expect("a JSON section");
    let rest = &readme[start + 9..];
    let section = &rest[..rest.find("\n## ").unwrap_or(rest.len())];
    assert!(
        section.contains("Schema version 1"),
        "the version is documented"
    );
    // names in the first column of the field table: | `a`, `b` | ... |
    let documented: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or("");
            first
                .split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect();
    // a socket of our own, with owners and a namespace label (this very one)
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(BIN)
        .args(["-tlnp", "--format", "json", "--netns", "/proc/self/ns/net"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["schema"], 1);
    for key in doc.as_object().unwrap().keys() {
        assert!(
            documented.contains(key) || section.contains(&format!("`{key}`")),
            "top-level field {key} is not documented"
        );
    }
    let sockets = doc["sockets"].as_array().unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for s in sockets {
        for key in s.as_object().unwrap().keys() {
            assert!(
                documented.contains(key),
                "socket field {key} is not documented in README.md"
            );
            seen.insert(key.clone());
        }
    }
    let top: Vec<&String> = doc.as_object().unwrap().keys().collect();
    for name in &documented {
        assert!(
            seen.contains(name) || top.contains(&name),
            "README.md documents {name}, which the output does not have"
        );
    }
}
