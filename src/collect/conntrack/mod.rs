//! Conntrack of the current network namespace: the tracked flows and the
//! expectations its helpers (ftp) made. They are read over ctnetlink, the
//! `NFNL_SUBSYS_CTNETLINK` and `NFNL_SUBSYS_CTNETLINK_EXP` subsystems of
//! `NETLINK_NETFILTER` ([`netlink`], on the netlink engine), or, when that
//! fails, from `/proc/net/nf_conntrack` and `/proc/net/nf_conntrack_expect`
//! ([`procfs`]). The decoders and parsers there take bytes or text, and
//! never panic on malformed input; [`read`] picks the source.
//!
//! ctnetlink comes first because only it says which flow is expected, which
//! helper a flow has and which flow is another's master; procfs shows the
//! tuples only (see [`parse_proc_flows`]). Both need privilege: nfnetlink
//! refuses every request without CAP_NET_ADMIN (`nfnetlink_rcv_msg()`), and
//! the procfs files are mode 0440, owned by root
//! (`nf_conntrack_standalone_init_proc()`).

pub mod netlink;
pub mod procfs;

use std::path::Path;

pub use netlink::{decode_expectations, decode_flows};
pub use procfs::{parse_proc_expectations, parse_proc_flows};

use super::netlink::NetlinkError;
use crate::error::reason;
use crate::model::{Conntrack, ConntrackSource};

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Reads the current namespace's conntrack: ctnetlink first (needs
/// CAP_NET_ADMIN), then `net/nf_conntrack` and `net/nf_conntrack_expect`
/// under `proc_root`, skipping malformed lines. `Err` carries a one-line
/// reason when neither is readable.
///
/// `/proc/net` is the namespace of the thread group's leader: a caller on a
/// thread that entered another namespace passes `/proc/thread-self`.
pub fn read(proc_root: &Path) -> Result<Conntrack, String> {
    let netlink = match netlink::read() {
        Ok((flows, expectations)) => {
            return Ok(Conntrack {
                flows,
                expectations,
                source: ConntrackSource::Netlink,
                local: Vec::new(),
            });
        }
        Err(e) => e,
    };
    procfs::read(proc_root).map_err(|(path, e)| match netlink {
        NetlinkError::Kernel { errno: libc::EPERM } => {
            "conntrack is not readable without CAP_NET_ADMIN".to_string()
        }
        netlink => format!(
            "conntrack is not readable: ctnetlink: {netlink}; {}: {}",
            path.display(),
            reason(&e)
        ),
    })
}

/// The protocols whose flows have ports, and so can belong to a socket.
fn tracked(proto: u8) -> bool {
    proto == IPPROTO_TCP || proto == IPPROTO_UDP
}

#[cfg(test)]
pub(crate) mod tests {
    use super::netlink::tests::{ACTIVE_FLOWS, PASSIVE_EXPECTATIONS, PASSIVE_FLOWS, dump};
    use super::*;
    use crate::model::Flow;

    /// Captured by tests/fixtures/conntrack/capture.sh; see the README there.
    pub(crate) const PASSIVE_PROC: &str =
        include_str!("../../../tests/fixtures/conntrack/passive-nf_conntrack.txt");
    pub(crate) const PASSIVE_PROC_EXPECT: &str =
        include_str!("../../../tests/fixtures/conntrack/passive-nf_conntrack_expect.txt");
    const ACTIVE_PROC: &str =
        include_str!("../../../tests/fixtures/conntrack/active-nf_conntrack.txt");

    #[test]
    fn captured_procfs_has_the_netlink_tuples_and_nothing_more() {
        for (text, datagrams) in [(PASSIVE_PROC, PASSIVE_FLOWS), (ACTIVE_PROC, ACTIVE_FLOWS)] {
            let (mut proc, malformed) = parse_proc_flows(text);
            assert_eq!(malformed, 0);
            let mut netlink = dump(&datagrams, decode_flows);
            for f in &mut netlink {
                (f.expected, f.helper, f.master) = (false, None, None);
            }
            // read moments apart: the seconds left differ
            for f in proc.iter_mut().chain(&mut netlink) {
                assert!(f.status.timeout.is_some(), "{f:?}");
                f.status.timeout = None;
            }
            let key = |f: &Flow| format!("{:?}", f.orig);
            proc.sort_by_key(key);
            netlink.sort_by_key(key);
            assert_eq!(proc, netlink);
        }
        let (expectations, malformed) = parse_proc_expectations(PASSIVE_PROC_EXPECT);
        let mut netlink = dump(&PASSIVE_EXPECTATIONS, decode_expectations);
        netlink[0].master = None;
        netlink[0].timeout = expectations[0].timeout;
        assert_eq!((expectations, malformed), (netlink, 0));
    }
}
