//! The text files sockwho reads (from /proc, /etc, or a saved tree under
//! `SOCKWHO_PROC_ROOT` / `SOCKWHO_ETC_ROOT`), all on the same bytes:
//! `procfs::parse_table` for tcp, tcp6, udp and udp6; conntrack's
//! `parse_proc_flows` and `parse_proc_expectations`; sysctl's `parse_range`
//! and `parse_reserved`; `names::Services::parse` and `Users::parse`.
//!
//! Besides "no panic": sockets are well formed and of the table's family
//! and protocol, in the states asked for, each once; a line is a socket or
//! an error, never both; flows and expectations are TCP or UDP with one
//! family a tuple; ranges run forwards and read back the same; a service or
//! user name is one that lookups can find again, never numeric.

#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use sockwho::collect::conntrack::{parse_proc_expectations, parse_proc_flows};
use sockwho::collect::names::{Services, Users};
use sockwho::collect::procfs::{file_name, parse_table};
use sockwho::collect::sysctl::{parse_range, parse_reserved};
use sockwho::model::{Family, Proto, Tuple};
use sockwho_fuzz::{all_states, check_socket};

fn nonblank(lines: impl Iterator<Item = impl AsRef<[u8]>>) -> usize {
    lines
        .filter(|l| !l.as_ref().trim_ascii().is_empty())
        .count()
}

fn tables(data: &[u8]) {
    // the first line is the header
    let lines = nonblank(data.split(|&b| b == b'\n').skip(1));
    let all = all_states();
    let some = data.last().map_or(0, |&b| u32::from(b) << 1) & all;
    for family in [Family::Inet, Family::Inet6] {
        for proto in [Proto::Tcp, Proto::Udp] {
            let file = file_name(family, proto);
            let mut every = Vec::new();
            let errors = parse_table(data, file, family, proto, all, &mut every);
            assert!(every.len() + errors.len() <= lines);
            for e in &errors {
                assert_eq!(e.file, file);
                let text = e.to_string();
                assert!(!text.contains('\n'), "{text:?}");
            }
            let mut seen = HashSet::new();
            for s in &every {
                check_socket(s);
                assert_eq!((s.family, s.proto), (family, proto), "{s:?}");
                assert_eq!((s.backlog, s.cookie, s.v6only), (None, None, None));
                assert_eq!(s.timer.expires_ms % 10, 0, "ticks of 10 ms: {s:?}");
                assert!(seen.insert((s.local, s.remote, s.inode)), "twice: {s:?}");
            }
            let mut chosen = Vec::new();
            let chosen_errors = parse_table(data, file, family, proto, some, &mut chosen);
            // a malformed line is one whatever the states asked for
            assert_eq!(errors, chosen_errors);
            for s in &chosen {
                assert!(some & s.state.bit() != 0, "{some:#x}: {s:?}");
            }
            // every socket of those states is there (a socket printed
            // twice in two states may be kept in the other one)
            for s in every.iter().filter(|s| some & s.state.bit() != 0) {
                assert!(chosen.contains(s), "{some:#x}: {s:?} left out");
            }
        }
    }
}

fn check_tuple(t: &Tuple) {
    assert!(t.proto == 6 || t.proto == 17, "not TCP or UDP: {t:?}");
    // a tuple is of one family (fuzz/seeds/procfs/conntrack-tuple-of-two-families)
    assert_eq!(t.src.addr.is_ipv4(), t.dst.addr.is_ipv4(), "{t:?}");
}

fn conntrack(text: &str) {
    let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
    let (flows, malformed) = parse_proc_flows(text);
    assert!(flows.len() + malformed <= lines);
    for f in &flows {
        check_tuple(&f.orig);
        check_tuple(&f.reply);
        // /proc/net/nf_conntrack shows neither
        assert!(
            !f.expected && f.helper.is_none() && f.master.is_none(),
            "{f:?}"
        );
    }
    let (expectations, malformed) = parse_proc_expectations(text);
    assert!(expectations.len() + malformed <= lines);
    for e in &expectations {
        check_tuple(&e.tuple);
        assert!(e.master.is_none(), "{e:?}");
        if let Some(h) = &e.helper {
            assert!(
                !h.contains(['=', '/']) && !h.contains(char::is_whitespace),
                "{h:?}"
            );
        }
    }
}

fn sysctl(text: &str) {
    if let Some((lo, hi)) = parse_range(text) {
        assert!(lo <= hi);
        assert_eq!(parse_range(&format!("{lo}\t{hi}\n")), Some((lo, hi)));
    }
    if let Some(reserved) = parse_reserved(text) {
        let again: Vec<String> = reserved
            .iter()
            .map(|&(lo, hi)| {
                assert!(lo <= hi, "{reserved:?}");
                if lo == hi {
                    lo.to_string()
                } else {
                    format!("{lo}-{hi}")
                }
            })
            .collect();
        assert_eq!(parse_reserved(&again.join(",")), Some(reserved));
    }
}

fn numeric(name: &str) -> bool {
    name.bytes().all(|b| b.is_ascii_digit())
}

fn names(data: &[u8], text: &str) {
    let services = Services::parse(data);
    assert!(services.skipped <= data.split(|&b| b == b'\n').count());
    let words: Vec<&str> = text
        .split(|c: char| c.is_ascii_whitespace() || c == '/')
        .filter(|w| !w.is_empty())
        .take(64)
        .collect();
    for w in &words {
        let Some(port) = services.port(w) else {
            continue;
        };
        // a name made of digits would read as another port
        assert!(!numeric(w), "{w:?} names port {port}");
        let name = services
            .name(port, Proto::Tcp)
            .or_else(|| services.name(port, Proto::Udp))
            .unwrap_or_else(|| panic!("{w:?} is port {port}, which has no name"));
        assert!(!name.is_empty() && !numeric(name), "{name:?}");
        assert!(
            !name.contains(|c: char| c.is_ascii_whitespace() || c == '#'),
            "{name:?}"
        );
    }
    for port in [0, 21, 22, 80, 65535] {
        for proto in [Proto::Tcp, Proto::Udp] {
            if let Some(name) = services.name(port, proto) {
                assert!(!numeric(name), "{name:?}");
                assert!(services.port(name).is_some(), "{name:?} has no port");
            }
        }
    }

    let users = Users::parse(text);
    for line in text.lines() {
        let mut f = line.split(':');
        let (Some(name), Some(_), Some(uid)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        // an empty name is no name (it would be an empty table cell)
        if let (Ok(uid), false) = (uid.parse::<u32>(), name.is_empty()) {
            let name = users
                .name(uid)
                .unwrap_or_else(|| panic!("uid {uid} of {line:?} has no name"));
            assert!(!name.is_empty() && !name.contains([':', '\n']), "{name:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    tables(data);
    let text = String::from_utf8_lossy(data);
    conntrack(&text);
    sysctl(&text);
    // the first line alone, as the sysctl files hold one
    sysctl(text.lines().next().unwrap_or_default());
    names(data, &text);
});
