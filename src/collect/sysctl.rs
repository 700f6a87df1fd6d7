//! The namespace's ephemeral port range: `net.ipv4.ip_local_port_range` and
//! `net.ipv4.ip_local_reserved_ports` (both also govern IPv6). The files under
//! `/proc/sys/net` show the network namespace of the process reading them.

use std::path::Path;

use crate::error::reason;
use crate::model::PortRange;

/// Whether the namespace forwards packets and conntrack tracks any flow
/// (`net.ipv4.ip_forward` or `net.ipv6.conf.all.forwarding`, and
/// `net.netfilter.nf_conntrack_count`, which anyone may read): a router
/// whose conntrack may hold FTP sessions that cross it. Unreadable is no.
pub fn forwards_tracked_flows(proc_root: &Path) -> bool {
    let on = |name: &str| {
        std::fs::read_to_string(proc_root.join("sys/net").join(name))
            .is_ok_and(|t| t.trim().parse::<u64>().is_ok_and(|n| n > 0))
    };
    (on("ipv4/ip_forward") || on("ipv6/conf/all/forwarding")) && on("netfilter/nf_conntrack_count")
}

/// Reads the range under `proc_root/sys/net/ipv4/`, with one-line notices
/// for what could not be read: a missing or malformed `ip_local_port_range`
/// gives the kernel's default; a malformed `ip_local_reserved_ports` keeps
/// the range and drops only the reserved list.
pub fn read_port_range(proc_root: &Path) -> (PortRange, Vec<String>) {
    let dir = proc_root.join("sys/net/ipv4");
    let mut notices = Vec::new();
    let read = |name: &str| {
        let path = dir.join(name);
        std::fs::read(&path)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .map_err(|e| format!("cannot read {}: {}", path.display(), reason(&e)))
    };
    let default = PortRange::default();
    let (low, high) = match read("ip_local_port_range") {
        Ok(text) => parse_range(&text).unwrap_or_else(|| {
            notices.push(format!(
                "malformed ip_local_port_range: {:?}; using the default port range {}-{}",
                text.trim(),
                default.low,
                default.high
            ));
            (default.low, default.high)
        }),
        Err(why) => {
            notices.push(format!(
                "{why}; using the default port range {}-{}",
                default.low, default.high
            ));
            (default.low, default.high)
        }
    };
    // Reserved ports are optional: an old kernel or a partial /proc tree may
    // not have them, and an empty set is the default anyway.
    let reserved = match read("ip_local_reserved_ports") {
        Ok(text) => parse_reserved(&text).unwrap_or_else(|| {
            notices.push(format!(
                "malformed ip_local_reserved_ports: {:?}; no port is taken as reserved",
                text.trim()
            ));
            Vec::new()
        }),
        Err(_) => Vec::new(),
    };
    (
        PortRange {
            low,
            high,
            reserved,
        },
        notices,
    )
}

/// `"32768\t60999\n"`
pub fn parse_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_ascii_whitespace();
    let low = it.next()?.parse().ok()?;
    let high = it.next()?.parse().ok()?;
    (it.next().is_none() && low <= high).then_some((low, high))
}

/// `"8080,9000-9100\n"`, or an empty line.
pub fn parse_reserved(text: &str) -> Option<Vec<(u16, u16)>> {
    let text = text.trim();
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split(',')
        .map(|part| match part.split_once('-') {
            Some((lo, hi)) => {
                let (lo, hi) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
                (lo <= hi).then_some((lo, hi))
            }
            None => {
                let p = part.trim().parse().ok()?;
                Some((p, p))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(range: &[u8], reserved: Option<&[u8]>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let ipv4 = dir.path().join("sys/net/ipv4");
        std::fs::create_dir_all(&ipv4).unwrap();
        std::fs::write(ipv4.join("ip_local_port_range"), range).unwrap();
        if let Some(r) = reserved {
            std::fs::write(ipv4.join("ip_local_reserved_ports"), r).unwrap();
        }
        dir
    }

    /// Issue 13, items 7 and 9: a malformed or non-UTF-8 reserved list no
    /// longer discards a valid range.
    #[test]
    fn a_malformed_reserved_list_keeps_the_range_regression_13() {
        for reserved in [&b"8080,x\n"[..], b"\xff\xfe\n"] {
            let dir = tree(b"20000\t29999\n", Some(reserved));
            let (range, notices) = read_port_range(dir.path());
            assert_eq!((range.low, range.high), (20000, 29999));
            assert!(range.reserved.is_empty());
            assert_eq!(notices.len(), 1, "{notices:?}");
            assert!(
                notices[0].contains("ip_local_reserved_ports"),
                "{notices:?}"
            );
        }
        let dir = tree(b"20000\t29999\n", Some(b"8080\n"));
        assert_eq!(read_port_range(dir.path()).0.reserved, vec![(8080, 8080)]);
    }

    /// Issue 13, item 10: the reason without "(os error 2)".
    #[test]
    fn a_missing_range_says_why_in_words_regression_13() {
        let dir = tempfile::tempdir().unwrap();
        let (range, notices) = read_port_range(dir.path());
        assert_eq!(range, PortRange::default());
        assert!(
            notices[0].contains("No such file or directory"),
            "{notices:?}"
        );
        assert!(!notices[0].contains("os error"), "{notices:?}");
    }

    #[test]
    fn range_parses_kernel_format() {
        assert_eq!(parse_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_range("1024 65535"), Some((1024, 65535)));
        assert_eq!(parse_range("60999 32768"), None);
        assert_eq!(parse_range("32768"), None);
        assert_eq!(parse_range("a b"), None);
    }

    #[test]
    fn reserved_parses_lists_and_ranges() {
        assert_eq!(parse_reserved("\n"), Some(vec![]));
        assert_eq!(
            parse_reserved("8080,40000-40010\n"),
            Some(vec![(8080, 8080), (40000, 40010)])
        );
        assert_eq!(parse_reserved("8080,x"), None);
        assert_eq!(parse_reserved("9-1"), None);
    }
}
