//! The addresses of the calling thread's network namespace: an
//! `RTM_GETADDR` dump on `NETLINK_ROUTE` (`inet_dump_ifaddr()` and
//! `inet6_dump_ifaddr()` in the kernel), on the netlink engine. They tell
//! a flow this host forwards (a router's) from one it ends
//! (`classify::ftp::crossing`). Anyone may dump them: no privilege needed.

use std::net::IpAddr;

use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST};

use super::netlink::{
    DecodeError, Message, NLMSG_HDRLEN, NetlinkError, NetlinkSocket, Progress, parse_attributes,
    walk,
};

/// `NETLINK_ROUTE` (include/uapi/linux/netlink.h).
const NETLINK_ROUTE: isize = 0;
/// include/uapi/linux/rtnetlink.h
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
/// `sizeof(struct ifaddrmsg)`: family, prefix length, flags, scope, index.
const IFADDRMSG_LEN: usize = 8;
const REQUEST_LEN: usize = NLMSG_HDRLEN + IFADDRMSG_LEN;
/// include/uapi/linux/if_addr.h: the peer's address on a point-to-point
/// link, else the interface's; the interface's own on IPv4.
const IFA_ADDRESS: usize = 1;
const IFA_LOCAL: usize = 2;

/// Every address of every interface of the caller's namespace, IPv4 and
/// IPv6 (family `AF_UNSPEC`).
pub fn read() -> Result<Vec<IpAddr>, NetlinkError> {
    let mut socket = NetlinkSocket::open(NETLINK_ROUTE)?;
    let mut request = [0u8; REQUEST_LEN];
    request[0..4].copy_from_slice(&(REQUEST_LEN as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETADDR.to_ne_bytes());
    request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    let mut out = Vec::new();
    socket.dump(&request, &mut out, address_message)?;
    out.sort_unstable();
    out.dedup();
    Ok(out)
}

/// Decodes one datagram of an `RTM_GETADDR` dump, appending its addresses.
pub fn decode(datagram: &[u8], out: &mut Vec<IpAddr>) -> Result<Progress, DecodeError> {
    walk(datagram, |m| address_message(m, out))
}

/// One `RTM_NEWADDR` message: `IFA_LOCAL` where there is one (the
/// interface's own address on a point-to-point link), else `IFA_ADDRESS`.
fn address_message(message: Message<'_>, out: &mut Vec<IpAddr>) -> Result<(), DecodeError> {
    if message.kind != RTM_NEWADDR {
        return Ok(());
    }
    let attrs = message
        .payload
        .get(IFADDRMSG_LEN..)
        .ok_or(DecodeError::Truncated("ifaddrmsg"))?;
    let a = parse_attributes::<{ IFA_LOCAL + 1 }>(attrs)?;
    let Some(bytes) = a[IFA_LOCAL].or(a[IFA_ADDRESS]) else {
        return Ok(());
    };
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        out.push(IpAddr::from(v4));
    } else if let Ok(v6) = <[u8; 16]>::try_from(bytes) {
        out.push(IpAddr::from(v6));
    } else {
        return Err(DecodeError::Truncated("IFA_ADDRESS"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = [
            &(4 + payload.len() as u16).to_ne_bytes()[..],
            &kind.to_ne_bytes(),
            payload,
        ]
        .concat();
        a.resize((a.len() + 3) & !3, 0);
        a
    }

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        let len = (NLMSG_HDRLEN + payload.len()) as u32;
        [
            &len.to_ne_bytes()[..],
            &kind.to_ne_bytes(),
            &[0; 10],
            payload,
        ]
        .concat()
    }

    fn ifaddr(attrs: &[Vec<u8>]) -> Vec<u8> {
        [&[0u8; IFADDRMSG_LEN][..], &attrs.concat()].concat()
    }

    #[test]
    fn addresses_of_a_dump() {
        let v4 = message(
            RTM_NEWADDR,
            &ifaddr(&[attr(1, &[10, 0, 0, 9]), attr(2, &[10, 0, 0, 1])]),
        );
        let v6 = message(RTM_NEWADDR, &ifaddr(&[attr(1, &[0xfd; 16])]));
        let other = message(24, &ifaddr(&[attr(1, &[1, 1, 1, 1])]));
        let done = message(3, &[0; 4]);
        let mut out = Vec::new();
        let progress = decode(&[v4, v6, other, done].concat(), &mut out).unwrap();
        assert!(progress.done);
        let want: [IpAddr; 2] = [
            "10.0.0.1".parse().unwrap(),
            "fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd:fdfd".parse().unwrap(),
        ];
        assert_eq!(out, want);
        let odd = message(RTM_NEWADDR, &ifaddr(&[attr(1, &[10, 0])]));
        assert_eq!(
            decode(&odd, &mut out),
            Err(DecodeError::Truncated("IFA_ADDRESS"))
        );
        assert_eq!(
            decode(&message(RTM_NEWADDR, &[0; 4]), &mut out),
            Err(DecodeError::Truncated("ifaddrmsg"))
        );
    }

    #[test]
    fn this_namespace_has_its_loopback_address() {
        // the tests' own traffic runs on 127.0.0.1: lo is up here
        let addrs = read().expect("RTM_GETADDR needs no privilege");
        assert!(addrs.contains(&IpAddr::from([127, 0, 0, 1])), "{addrs:?}");
    }
}
