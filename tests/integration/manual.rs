//! The manuals: the man page and shell completions come from the clap
//! definition (the committed page must match it), and README.md documents
//! the JSON schema and every word the output uses, as the code has them.

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
        ".SH \"EXAMPLES\"",
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
    // --state completes to its words, --netns to the names under /run/netns
    for shell in ["bash", "zsh", "fish"] {
        let out = Command::new(BIN)
            .args(["--completions", shell])
            .output()
            .unwrap();
        let script = String::from_utf8(out.stdout).unwrap();
        assert!(script.contains("synchronized"), "{shell} completes --state");
        assert!(
            script.matches("/run/netns").count() >= 2,
            "{shell} completes --netns and -N from /run/netns"
        );
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
    // and completes, as bash would call it
    let complete = |words: &str| {
        let probe = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1)); \
             _sockwho sockwho \"${{COMP_WORDS[COMP_CWORD]}}\" \"${{COMP_WORDS[COMP_CWORD-1]}}\"; \
             echo \"${{COMPREPLY[@]}}\"",
            file.display()
        );
        let out = Command::new("bash").args(["-c", &probe]).output().unwrap();
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(complete("sockwho --state esta").trim(), "established");
    assert_eq!(complete("sockwho --format js").trim(), "json jsonl");
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
    // a socket of our own, with owners, a namespace label (this very one)
    // and tcp_info (-i: the kernel sends a listener's too)
    let _listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = Command::new(BIN)
        .args(["-tlnpi", "--format", "json", "--netns", "/proc/self/ns/net"])
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
        // tcp_info's own fields, in a table of their own
        if let Some(info) = s["tcp_info"].as_object() {
            for key in info.keys() {
                assert!(
                    documented.contains(key),
                    "tcp_info field {key} is not documented in README.md"
                );
                seen.insert(key.clone());
            }
        }
    }
    assert!(seen.contains("rtt_us"), "a listener's tcp_info: {doc:#}");
    let top: Vec<&String> = doc.as_object().unwrap().keys().collect();
    // what only watch mode's `closed` events have (tests/integration/events.rs
    // holds them to the README)
    let closed_only = |name: &String| {
        section
            .lines()
            .any(|l| l.starts_with(&format!("| `{name}` |")) && l.contains("`closed` events only"))
    };
    for name in &documented {
        assert!(
            seen.contains(name) || top.contains(&name) || closed_only(name),
            "README.md documents {name}, which the output does not have"
        );
    }
}

/// The text of README.md's `## title` section.
fn readme_section<'a>(readme: &'a str, title: &str) -> &'a str {
    let head = format!("\n## {title}\n");
    let start = readme
        .find(&head)
        .unwrap_or_else(|| panic!("README.md has no {title} section"))
        + head.len();
    let rest = &readme[start..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

/// The cells of the table rows in `section` (`\|` is a `|` inside a cell).
fn table_rows(section: &str) -> Vec<Vec<String>> {
    section
        .lines()
        .filter(|l| l.starts_with("| "))
        .map(|l| {
            l.replace("\\|", "\u{1}")
                .split('|')
                .map(|c| c.trim().replace('\u{1}', "|"))
                .collect::<Vec<_>>()
        })
        .map(|cells| cells[1..cells.len() - 1].to_vec())
        .collect()
}

/// The words between backticks.
fn backticked(text: &str) -> std::collections::BTreeSet<String> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// Text without its parenthesised asides: "`a` (an aside) or `b`".
fn without_asides(text: &str) -> String {
    let mut depth = 0usize;
    text.chars()
        .filter(|&c| {
            match c {
                '(' => depth += 1,
                ')' => depth = depth.saturating_sub(1),
                _ => return depth == 0,
            }
            false
        })
        .collect()
}

/// The quoted values after `"key": ` in `text`: `"a"|"b"|null` (null is
/// left out: it is JSON's, not a word of ours).
fn quoted_values(text: &str, key: &str) -> std::collections::BTreeSet<String> {
    let head = format!("\"{key}\": ");
    let start = text
        .find(&head)
        .unwrap_or_else(|| panic!("README.md documents no values of \"{key}\""))
        + head.len();
    let rest = &text[start..];
    let end = rest.find([',', '}', ']']).unwrap_or(rest.len());
    rest[..end]
        .split('|')
        .map(|v| v.trim().trim_matches('"').to_string())
        .filter(|v| v != "null")
        .collect()
}

#[track_caller]
fn assert_same_words(what: &str, documented: std::collections::BTreeSet<String>, emitted: &[&str]) {
    let emitted: std::collections::BTreeSet<String> =
        emitted.iter().map(|s| s.to_string()).collect();
    let missing: Vec<_> = emitted.difference(&documented).collect();
    let stale: Vec<_> = documented.difference(&emitted).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md, {what}: not documented {missing:?}; documented but never emitted {stale:?}"
    );
}

/// Issue #9: README.md names exactly the words the code emits. The
/// *Direction* and *FTP* tables list every evidence name (first column) and
/// nothing else; the *JSON* field table lists every value of each enum field.
#[test]
fn the_readme_names_exactly_the_words_the_code_emits_issue_9() {
    use sockwho::classify::direction::{Confidence, Direction, Evidence};
    use sockwho::classify::ftp::crossing::DiagnosticKind;
    use sockwho::classify::ftp::{FtpEvidence, Helper, Mode, Role, Side};
    use sockwho::classify::ports::PortClass;
    use sockwho::model::{Family, Proto, Source, State, TimerKind};

    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let first_column = |title: &str| {
        table_rows(readme_section(&readme, title))
            .iter()
            .flat_map(|cells| backticked(&cells[0]))
            .collect()
    };
    assert_same_words(
        "the Direction table",
        first_column("Direction"),
        &Evidence::ALL.map(Evidence::name),
    );
    // the FTP section's own table, before its subsections
    let ftp = readme_section(&readme, "FTP");
    let (evidence, router) = ftp
        .split_once("\n### FTP through a router\n")
        .expect("README.md's FTP section has a subsection FTP through a router");
    let column = |section: &str| -> std::collections::BTreeSet<String> {
        table_rows(section)
            .iter()
            .flat_map(|cells| backticked(&cells[0]))
            .collect()
    };
    assert_same_words(
        "the FTP table",
        column(evidence),
        &FtpEvidence::ALL.map(FtpEvidence::name),
    );
    assert_same_words(
        "the diagnostics table of FTP through a router",
        column(router.split("\n### ").next().unwrap_or_default()),
        &DiagnosticKind::ALL.map(DiagnosticKind::name),
    );

    let json = readme_section(&readme, "JSON");
    let rows = table_rows(json);
    // the description of the field named in the first column
    let cell = |field: &str| -> String {
        rows.iter()
            .find(|cells| backticked(&cells[0]).contains(field))
            .unwrap_or_else(|| panic!("README.md's JSON table has no {field}"))[1]
            .clone()
    };
    // "`a`, `b`; more": the values before the first `;`, asides left out
    let listed = |field: &str| {
        let text = cell(field);
        backticked(&without_asides(text.split(';').next().unwrap_or("")))
    };
    // "`key` (`a`, `b`)": the values in the parentheses after a sub-field
    let after = |field: &str, key: &str| {
        let text = cell(field);
        let head = format!("`{key}` (");
        let start = text
            .find(&head)
            .unwrap_or_else(|| panic!("README.md: {field} lists no values of {key}"))
            + head.len();
        backticked(&text[start..start + text[start..].find(')').unwrap_or(0)])
    };
    assert_same_words("source", listed("source"), &Source::ALL.map(Source::name));
    assert_same_words("proto", listed("proto"), &Proto::ALL.map(Proto::name));
    assert_same_words("family", listed("family"), &Family::ALL.map(Family::name));
    assert_same_words(
        "direction",
        listed("direction"),
        &Direction::ALL.map(Direction::name),
    );
    assert_same_words(
        "direction_confidence",
        listed("direction_confidence"),
        &Confidence::ALL.map(Confidence::name),
    );
    assert_same_words(
        "local.class",
        after("local", "class"),
        &PortClass::ALL.map(PortClass::name),
    );
    assert_same_words(
        "timer.kind",
        after("timer", "kind"),
        &TimerKind::ALL.map(TimerKind::name),
    );
    let ftp = cell("ftp");
    assert_same_words(
        "ftp.role",
        quoted_values(&ftp, "role"),
        &Role::ALL.map(Role::name),
    );
    assert_same_words(
        "ftp.side",
        quoted_values(&ftp, "side"),
        &Side::ALL.map(Side::name),
    );
    assert_same_words(
        "ftp.mode",
        quoted_values(&ftp, "mode"),
        &Mode::ALL.map(Mode::name),
    );
    assert_same_words(
        "ftp.confidence",
        quoted_values(&ftp, "confidence"),
        &Confidence::ALL.map(Confidence::name),
    );
    // described in the text below the table
    assert_same_words(
        "ftp_sessions' helper",
        quoted_values(json, "helper"),
        &Helper::ALL.map(Helper::name),
    );
    // netstat's TCP state names, then UDP's own word for an unconnected socket
    let tcp: Vec<&str> = State::ALL.iter().map(|s| s.name(Proto::Tcp)).collect();
    assert_same_words("state", listed("state"), &tcp);
    assert!(
        backticked(&cell("state")).contains(State::Close.name(Proto::Udp)),
        "README.md: state names UNCONN"
    );
}
