//! Conntrack from procfs, where ctnetlink is not to be had:
//! `/proc/net/nf_conntrack` and `/proc/net/nf_conntrack_expect`, parsed as
//! text. They show the tuples only (see [`parse_proc_flows`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::tracked;
use crate::model::{
    Conntrack, ConntrackSource, Endpoint, Expectation, Flow, FlowStatus, Tuple, ct_tcp_state,
};

/// Reads `net/nf_conntrack` and `net/nf_conntrack_expect` under
/// `proc_root`; `Err` names the file that could not be read.
pub(super) fn read(proc_root: &Path) -> Result<Conntrack, (PathBuf, io::Error)> {
    let read = |name: &str| {
        let path = proc_root.join("net").join(name);
        fs::read_to_string(&path).map_err(|e| (path, e))
    };
    Ok(Conntrack {
        flows: parse_proc_flows(&read("nf_conntrack")?).0,
        expectations: parse_proc_expectations(&read("nf_conntrack_expect")?).0,
        source: ConntrackSource::Procfs,
        local: Vec::new(),
    })
}

/// Parses `/proc/net/nf_conntrack`; returns the TCP and UDP flows and the
/// number of malformed lines skipped. Lines come from `ct_seq_show()`
/// (net/netfilter/nf_conntrack_standalone.c):
///
/// `ipv4 2 tcp 6 431999 ESTABLISHED src=A dst=B sport=P dport=Q
/// [UNREPLIED] src=B dst=A sport=Q dport=P [ASSURED] mark=0 zone=0 use=2`,
/// with `packets= bytes=` after each tuple when accounting is on, no
/// timeout for offloaded flows, and no state word for UDP.
///
/// What this form can tell: both tuples, so who opened each flow, and the
/// seconds left, the TCP state, `[UNREPLIED]`, `[ASSURED]`, `mark=` and
/// `zone=` (read into [`FlowStatus`]). What it cannot: the only status
/// words it prints are those two, `[OFFLOAD]` and `[HW_OFFLOAD]`, never
/// `IPS_EXPECTED`, and it prints neither the helper nor the master. So every flow read here has
/// `expected: false` (meaning unknown), `helper: None` and `master: None`:
/// an FTP data connection looks like any other.
pub fn parse_proc_flows(text: &str) -> (Vec<Flow>, usize) {
    parse_lines(text, |line| {
        let mut words = line.split_whitespace();
        // `ipv4 2 tcp 6`: the family's name and number, the protocol's.
        words.nth(1)?.parse::<u8>().ok()?;
        let proto = words.nth(1)?.parse().ok()?;
        if !tracked(proto) {
            return Some(None);
        }
        let words: Vec<&str> = words.collect();
        let tuples = proc_tuples(words.iter().copied(), proto)?;
        let &[orig, reply] = tuples.as_slice() else {
            return None;
        };
        Some(Some(Flow {
            orig,
            reply,
            expected: false,
            helper: None,
            master: None,
            status: proc_status(&words),
        }))
    })
}

/// The words of a flow's line besides its tuples: the seconds left and
/// the TCP state before them, the flags and `mark=` and `zone=` after.
fn proc_status(words: &[&str]) -> FlowStatus {
    let mut status = FlowStatus::default();
    let (head, tail) = words.split_at(words.iter().position(|w| w.contains('=')).unwrap_or(0));
    for w in head {
        match w.parse() {
            Ok(seconds) => status.timeout = Some(seconds),
            Err(_) => status.state = status.state.or(ct_tcp_state(None, Some(w))),
        }
    }
    for w in tail {
        match w.split_once('=') {
            Some(("mark", v)) => status.mark = v.parse().unwrap_or(0),
            Some(("zone", v)) => status.zone = v.parse().unwrap_or(0),
            Some(_) => {}
            None => match *w {
                "[UNREPLIED]" => status.unreplied = true,
                "[ASSURED]" => status.assured = true,
                _ => {}
            },
        }
    }
    status
}

/// Parses `/proc/net/nf_conntrack_expect`; returns the TCP and UDP
/// expectations and the number of malformed lines skipped. Lines come from
/// `exp_seq_show()` (net/netfilter/nf_conntrack_expect.c):
///
/// `297 l3proto = 2 proto=6 src=A dst=B sport=0 dport=Q ftp`: the seconds
/// left (or `-`), the tuple with its wildcards as 0, then any of the flags
/// `PERMANENT,INACTIVE,USERSPACE` and the helper's name, with `/class` when
/// the class has a name. The master is not shown.
pub fn parse_proc_expectations(text: &str) -> (Vec<Expectation>, usize) {
    parse_lines(text, |line| {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.get(1) != Some(&"l3proto") {
            return None;
        }
        let proto = words.iter().find_map(|w| w.strip_prefix("proto="))?;
        let proto = proto.parse().ok()?;
        if !tracked(proto) {
            return Some(None);
        }
        let &[tuple] = proc_tuples(words.iter().copied(), proto)?.as_slice() else {
            return None;
        };
        let is_flags = |w: &str| {
            w.split(',')
                .all(|f| matches!(f, "PERMANENT" | "INACTIVE" | "USERSPACE"))
        };
        let helper = words
            .last()
            .filter(|w| !w.contains('=') && !is_flags(w))
            .and_then(|w| w.split('/').next())
            .map(str::to_string);
        Some(Some(Expectation {
            tuple,
            master: None,
            helper,
            nat: None,
            timeout: words[0].parse().ok(),
        }))
    })
}

/// Runs `entry` on each non-blank line: `Some(Some(item))` keeps an item,
/// `Some(None)` skips the line, `None` counts it as malformed.
fn parse_lines<T>(text: &str, entry: impl Fn(&str) -> Option<Option<T>>) -> (Vec<T>, usize) {
    let mut items = Vec::new();
    let mut malformed = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match entry(line) {
            Some(item) => items.extend(item),
            None => malformed += 1,
        }
    }
    (items, malformed)
}

/// The tuples among `words`: `print_tuple()` prints `src= dst= sport=
/// dport=` for TCP and UDP, so each `dport=` closes one. `None` if a value
/// does not parse or a tuple is incomplete.
fn proc_tuples<'a>(words: impl Iterator<Item = &'a str>, proto: u8) -> Option<Vec<Tuple>> {
    let (mut tuples, mut src, mut dst, mut sport) = (Vec::new(), None, None, None);
    for (key, value) in words.filter_map(|w| w.split_once('=')) {
        match key {
            "src" => src = Some(value.parse().ok()?),
            "dst" => dst = Some(value.parse().ok()?),
            "sport" => sport = Some(value.parse().ok()?),
            "dport" => {
                let (s, d): (std::net::IpAddr, std::net::IpAddr) = (src.take()?, dst.take()?);
                // one tuple is of one family (found by fuzzing: a line with
                // an IPv4 and an IPv6 end was taken)
                if s.is_ipv4() != d.is_ipv4() {
                    return None;
                }
                tuples.push(Tuple {
                    src: Endpoint::new(s, sport.take()?),
                    dst: Endpoint::new(d, value.parse().ok()?),
                    proto,
                })
            }
            _ => {}
        }
    }
    (src.is_none() && dst.is_none() && sport.is_none()).then_some(tuples)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collect::conntrack::IPPROTO_UDP;
    use crate::collect::conntrack::netlink::tests::{B, tcp};
    use crate::collect::conntrack::tests::{PASSIVE_PROC, PASSIVE_PROC_EXPECT};

    /// Found by fuzzing (fuzz/seeds/procfs/conntrack-tuple-of-two-families).
    #[test]
    fn a_tuple_of_two_families_is_malformed_regression_13() {
        let line = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=fd00::1 sport=1 dport=2 src=fd00::1 dst=10.0.0.1 sport=2 dport=1 mark=0 zone=0 use=2\n";
        let (flows, malformed) = parse_proc_flows(line);
        assert!(flows.is_empty(), "{flows:?}");
        assert_eq!(malformed, 1);
    }

    #[test]
    fn procfs_flow_lines() {
        let text = "\
ipv4     2 udp      17 29 src=10.0.0.1 dst=10.0.0.2 sport=5000 dport=53 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=53 dport=5000 mark=0 zone=0 use=2
ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=7 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=7 mark=0 zone=0 use=2
ipv6     10 tcp      6 ESTABLISHED src=fd00:0000:0000:0000:0000:0000:0000:0001 dst=fd00:0000:0000:0000:0000:0000:0000:0002 sport=1 dport=2 packets=3 bytes=180 src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0000:0000:0000:0000:0000:0000:0001 sport=2 dport=1 packets=2 bytes=120 [OFFLOAD] mark=0 zone=0 use=2

garbage
ipv4     2 tcp      6 10 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 mark=0 use=1
ipv4     2 tcp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=70000 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2 dport=70000 use=1
ipv4     2 tcp      6 10 CLOSE src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 src=10.0.0.2 dst=10.0.0.1 sport=2
";
        let (flows, malformed) = parse_proc_flows(text);
        assert_eq!(malformed, 4);
        assert_eq!(flows.len(), 2);
        assert_eq!(flows[0].orig.proto, IPPROTO_UDP);
        assert_eq!(flows[0].reply.src, Endpoint::new(B.into(), 53));
        assert_eq!(flows[1].orig, tcp("[fd00::1]:1", "[fd00::2]:2"));
        assert_eq!(flows[1].reply, tcp("[fd00::2]:2", "[fd00::1]:1"));
        // what the firewall matches on: the UDP flow has no state
        let udp = FlowStatus {
            unreplied: true,
            timeout: Some(29),
            ..FlowStatus::default()
        };
        assert_eq!(flows[0].status, udp);
        let offloaded = FlowStatus {
            state: Some("ESTABLISHED"),
            ..FlowStatus::default()
        };
        assert_eq!(flows[1].status, offloaded);
    }

    #[test]
    fn procfs_flow_status_words() {
        let line = "ipv4     2 tcp      6 117 SYN_SENT src=10.0.0.1 dst=10.0.0.2 sport=1 dport=2 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 sport=2 dport=1 mark=7 zone=3 use=1\n\
ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.1 dst=10.0.0.2 sport=3 dport=4 src=10.0.0.2 dst=10.0.0.1 sport=4 dport=3 [ASSURED] mark=0 use=2\n";
        let (flows, malformed) = parse_proc_flows(line);
        assert_eq!(malformed, 0);
        let syn = FlowStatus {
            state: Some("SYN_SENT"),
            unreplied: true,
            assured: false,
            mark: 7,
            zone: 3,
            timeout: Some(117),
        };
        assert_eq!(flows[0].status, syn);
        assert_eq!(flows[1].status.state, Some("ESTABLISHED"));
        assert!(flows[1].status.assured && !flows[1].status.unreplied);
    }

    #[test]
    fn procfs_expectation_lines() {
        let text = "\
- l3proto = 10 proto=6 src=fd00:0000:0000:0000:0000:0000:0000:0002 dst=fd00:0000:0000:0000:0000:0000:0000:0001 sport=0 dport=50000 PERMANENT,INACTIVE ftp
12 l3proto = 2 proto=17 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=5062 sip/audio
300 l3proto = 2 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=21 USERSPACE
5 l3proto = 2 proto=47 src=10.0.0.2 dst=10.0.0.1 srckey=0x0 dstkey=0x1 pptp
300 l3proto = 2 proto=6 src=10.0.0.2 dst=10.0.0.1 sport=0 dport=
nonsense
";
        let (exps, malformed) = parse_proc_expectations(text);
        assert_eq!(malformed, 2);
        let helpers: Vec<_> = exps.iter().map(|e| e.helper.as_deref()).collect();
        assert_eq!(helpers, [Some("ftp"), Some("sip"), None]);
        assert_eq!(exps[0].tuple, tcp("[fd00::2]:0", "[fd00::1]:50000"));
        assert_eq!(exps[1].tuple.proto, IPPROTO_UDP);
    }

    #[test]
    fn procfs_fallback_reads_under_proc_root() {
        let root = tempfile::tempdir().unwrap();
        assert!(read(root.path()).is_err());
        std::fs::create_dir(root.path().join("net")).unwrap();
        std::fs::write(root.path().join("net/nf_conntrack"), PASSIVE_PROC).unwrap();
        let (path, _) = read(root.path()).unwrap_err();
        assert_eq!(path, root.path().join("net/nf_conntrack_expect"));
        std::fs::write(
            root.path().join("net/nf_conntrack_expect"),
            PASSIVE_PROC_EXPECT,
        )
        .unwrap();
        let ct = read(root.path()).unwrap();
        assert_eq!((ct.flows.len(), ct.expectations.len()), (5, 1));
        assert_eq!(ct.source, ConntrackSource::Procfs);
    }
}
