//! ctnetlink answers: `conntrack::decode_flows` and
//! `conntrack::decode_expectations` on any bytes, and the same bytes as an
//! `RTM_GETADDR` answer (`addresses::decode`), on the same netlink walk.
//!
//! Besides "no panic": only TCP and UDP come out, each tuple has one
//! family for both its ends, a helper name holds no NUL (it is the string
//! up to the first), a TCP state is one of conntrack's names, and an error
//! has a one-line text.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockwho::collect::addresses;
use sockwho::collect::conntrack::{decode_expectations, decode_flows};
use sockwho::collect::decode::{DecodeError, Progress};
use sockwho::model::{CT_TCP_STATES, Tuple};

fn check_tuple(t: &Tuple) {
    assert!(t.proto == 6 || t.proto == 17, "not TCP or UDP: {t:?}");
    assert_eq!(
        t.src.addr.is_ipv4(),
        t.dst.addr.is_ipv4(),
        "ends of two families: {t:?}"
    );
}

fn check_helper(helper: Option<&str>) {
    if let Some(h) = helper {
        assert!(!h.contains('\0'), "{h:?}");
    }
}

fn check_result(r: &Result<Progress, DecodeError>) {
    if let Err(e) = r {
        let text = e.to_string();
        assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
    }
}

fuzz_target!(|data: &[u8]| {
    let mut flows = Vec::new();
    check_result(&decode_flows(data, &mut flows));
    for f in &flows {
        check_tuple(&f.orig);
        check_tuple(&f.reply);
        if let Some(m) = &f.master {
            check_tuple(m);
        }
        check_helper(f.helper.as_deref());
        if let Some(state) = f.status.state {
            assert!(CT_TCP_STATES.contains(&state), "{state:?}");
        }
    }

    let mut expectations = Vec::new();
    check_result(&decode_expectations(data, &mut expectations));
    for e in &expectations {
        check_tuple(&e.tuple);
        if let Some(m) = &e.master {
            check_tuple(m);
        }
        check_helper(e.helper.as_deref());
    }

    let mut addrs = Vec::new();
    check_result(&addresses::decode(data, &mut addrs));

    // Each datagram of a dump is decoded onto what the earlier ones gave:
    // what was there stays in front, and the same bytes give the same
    // flows again (or fail again, after the same ones).
    let before = flows.len();
    let first = decode_flows(data, &mut Vec::new()).map_err(|e| e.to_string());
    let again = decode_flows(data, &mut flows).map_err(|e| e.to_string());
    assert_eq!(first, again);
    assert_eq!(flows.len(), 2 * before);
    assert_eq!(flows[..before], flows[before..]);
});
