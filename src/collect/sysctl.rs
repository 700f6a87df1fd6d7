//! The namespace's ephemeral port range: `net.ipv4.ip_local_port_range` and
//! `net.ipv4.ip_local_reserved_ports` (both also govern IPv6). The files under
//! `/proc/sys/net` show the network namespace of the process reading them.

use std::path::Path;

use crate::model::PortRange;

/// Reads the range under `proc_root/sys/net/ipv4/`. `Err` carries a one-line
/// reason; the caller then uses the kernel's default and says so.
pub fn read_port_range(proc_root: &Path) -> Result<PortRange, String> {
    let dir = proc_root.join("sys/net/ipv4");
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name))
            .map_err(|e| format!("cannot read {}: {e}", dir.join(name).display()))
    };
    let range = read("ip_local_port_range")?;
    let (low, high) = parse_range(&range)
        .ok_or_else(|| format!("malformed ip_local_port_range: {:?}", range.trim()))?;
    // Reserved ports are optional: an old kernel or a partial /proc tree may
    // not have them, and an empty set is the default anyway.
    let reserved = match read("ip_local_reserved_ports") {
        Ok(text) => parse_reserved(&text)
            .ok_or_else(|| format!("malformed ip_local_reserved_ports: {:?}", text.trim()))?,
        Err(_) => Vec::new(),
    };
    Ok(PortRange {
        low,
        high,
        reserved,
    })
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
