//! Numbers and addresses written into a line by hand: `write!` through
//! `Display` was most of a column's cost (the owner column's
//! `PID/Program name`, 50 ms of `-tanp` at 200,000 sockets; IPv4 addresses
//! and ports in CSV), and every output writes a few numbers a socket.

use std::fmt::Write as _;
use std::net::IpAddr;

/// `n` in decimal, as `Display` writes it.
pub fn push_decimal(n: u64, line: &mut String) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // a char at a time: a `from_utf8` check per number cost more
    for &d in &digits[i..] {
        line.push(char::from(d));
    }
}

/// `addr` as `Display` writes it: IPv4 by hand (the common case), IPv6 by
/// `Display`, which gives the RFC 5952 form.
pub fn push_ip(addr: IpAddr, line: &mut String) {
    match addr {
        IpAddr::V4(v4) => {
            // into 15 bytes on the stack, then one push: two an address
            // a row, 200,000 rows, twice (the table measures, then writes)
            let mut text = [0u8; 15];
            let mut n = 0;
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    text[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    text[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    text[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                text[n] = b'0' + octet % 10;
                n += 1;
            }
            line.push_str(std::str::from_utf8(&text[..n]).unwrap_or_default());
        }
        IpAddr::V6(v6) => {
            let _ = write!(line, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_what_display_writes() {
        let mut n = 1u64;
        let mut all = vec![0, u64::from(u16::MAX), u64::from(u32::MAX), u64::MAX];
        while let Some(next) = n.checked_mul(10) {
            all.extend([n - 1, n, n + 1]);
            n = next;
        }
        for n in all {
            let mut line = String::from("x");
            push_decimal(n, &mut line);
            assert_eq!(line, format!("x{n}"));
        }
    }

    #[test]
    fn addresses_are_what_display_writes() {
        for addr in [
            "0.0.0.0",
            "127.0.0.1",
            "255.255.255.255",
            "10.200.3.45",
            "1.20.100.9",
            "99.100.109.110",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "2001:db8::1:0:0:1",
            "fe80::1",
        ] {
            let addr: IpAddr = addr.parse().unwrap();
            let mut line = String::new();
            push_ip(addr, &mut line);
            assert_eq!(line, addr.to_string());
        }
    }
}
