//! sock_diag answers from the kernel, or from a file `ss -D` wrote
//! (`SOCKWHO_DIAG_FILE`): `decode::decode_datagram` on any bytes, for TCP
//! and UDP, and `netlink::Replay` on the same bytes taken as a saved dump.
//!
//! Besides "no panic": every socket is well formed (`check_socket`, and
//! what netlink gives: a cookie, a 32-bit inode, an expiry only with a
//! timer); a replay gives each family and protocol only its own sockets, in
//! the states asked for, fails or succeeds whatever was asked, leaves `out`
//! as it was on an error, and reads its first dump as `decode_datagram`
//! reads the datagram. With `-i` (`decode_with_info`, `Replay::with_info`)
//! the sockets are the same but for their `tcp_info`, which only TCP
//! sockets have; `decode_tcp_info` on the bytes themselves gives a field
//! only when the struct holds all of it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use sockwho::collect::decode::{
    TCP_INFO_MIN_LEN, decode_datagram, decode_inet_diag_msg, decode_tcp_info, decode_with_info,
};
use sockwho::collect::netlink::{Replay, walk};
use sockwho::model::{Family, Proto, Socket, State, TimerKind};
use sockwho_fuzz::{all_states, check_socket};

fn check_decoded(s: &Socket, proto: Proto) {
    check_socket(s);
    assert_eq!(s.proto, proto, "{s:?}");
    assert!(
        s.cookie.is_some(),
        "netlink gives every socket a cookie: {s:?}"
    );
    assert!(
        s.timer.kind != TimerKind::Off || s.timer.expires_ms == 0,
        "an expiry without a timer: {s:?}"
    );
    // idiag_inode is a u32
    assert!(s.inode <= u64::from(u32::MAX), "{s:?}");
}

/// A socket no dump holds, to see that an error leaves `out` alone.
fn sentinel() -> Socket {
    Socket {
        proto: Proto::Udp,
        family: Family::Inet,
        state: State::Close,
        recv_q: 7,
        send_q: 7,
        backlog: None,
        local: sockwho::model::Endpoint::new([192, 0, 2, 7].into(), 7),
        remote: None,
        uid: 7,
        inode: 7,
        cookie: None,
        timer: sockwho::model::Timer::OFF,
        v6only: None,
        processes: Vec::new(),
        closed: false,
        tcp_info: None,
        ended: None,
        owner_gone: false,
    }
}

/// Sockets without their `tcp_info`, to compare with and without `-i`.
fn without_info(sockets: &[Socket]) -> Vec<Socket> {
    sockets
        .iter()
        .cloned()
        .map(|mut s| {
            s.tcp_info = None;
            s
        })
        .collect()
}

/// `decode_tcp_info` on any bytes: something exactly from the oldest
/// struct's size on, and each field only where all of it is in `data`.
fn check_tcp_info(data: &[u8]) {
    let Some(info) = decode_tcp_info(data) else {
        assert!(data.len() < TCP_INFO_MIN_LEN);
        return;
    };
    assert!(data.len() >= TCP_INFO_MIN_LEN);
    let ends = [
        (info.pacing_rate_bps.is_some(), 112),
        (info.bytes_acked.is_some(), 128),
        (info.bytes_received.is_some(), 136),
        (info.min_rtt_us.is_some(), 152),
        (info.delivery_rate_bps.is_some(), 168),
        (info.busy_time_us.is_some(), 176),
        (info.rwnd_limited_us.is_some(), 184),
        (info.sndbuf_limited_us.is_some(), 192),
        (info.bytes_retrans.is_some(), 216),
    ];
    for (i, (present, end)) in ends.into_iter().enumerate() {
        assert!(
            !present || data.len() >= end,
            "field {i} of {} bytes: {info:?}",
            data.len()
        );
    }
}

fuzz_target!(|data: &[u8]| {
    check_tcp_info(data);
    let mut first_dump = None;
    for proto in [Proto::Tcp, Proto::Udp] {
        let mut out = Vec::new();
        match decode_datagram(data, proto, &mut out) {
            Ok(progress) => {
                if proto == Proto::Tcp && progress.done {
                    first_dump = Some(out.clone());
                }
            }
            Err(e) => {
                // every error has a one-line text, whatever the errno
                let text = e.to_string();
                assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
            }
        }
        for s in &out {
            check_decoded(s, proto);
        }
        // with -i: the same sockets, tcp_info aside; none for UDP
        let mut with = Vec::new();
        let result = walk(data, |m| decode_with_info(m, proto, &mut with));
        if result.is_ok() {
            assert_eq!(without_info(&with), without_info(&out));
        }
        for s in &with {
            check_decoded(s, proto);
            assert!(proto == Proto::Tcp || s.tcp_info.is_none(), "{s:?}");
        }
        // one message alone, as a destroy event brings it
        if let Ok(s) = decode_inet_diag_msg(data, proto) {
            check_decoded(&s, proto);
        }
    }

    let replay = Replay::from_bytes(data.to_vec());
    let all = all_states();
    // the state mask of one request, from the input
    let some = data.first().map_or(0, |&b| u32::from(b) << 1) & all;
    let mut ok = None;
    for family in [Family::Inet, Family::Inet6] {
        for proto in [Proto::Tcp, Proto::Udp] {
            let mut every = vec![sentinel()];
            let result = replay.dump_filtered(family, proto, all, None, &mut every);
            assert_eq!(every[0], sentinel(), "what `out` held is kept");
            let mut chosen = vec![sentinel()];
            let chosen_result = replay.dump_filtered(family, proto, some, None, &mut chosen);
            assert_eq!(chosen[0], sentinel());
            // whether the file reads is a fact of the file, not of the request
            for r in [&result, &chosen_result] {
                let this = r.is_ok();
                assert_eq!(
                    *ok.get_or_insert(this),
                    this,
                    "{result:?} {chosen_result:?}"
                );
            }
            match result {
                Err(e) => {
                    assert_eq!(every.len(), 1, "an error leaves `out` as it was");
                    assert_eq!(chosen.len(), 1);
                    let text = e.to_string();
                    assert!(!text.is_empty() && !text.contains('\n'), "{text:?}");
                }
                Ok(()) => {
                    let every = &every[1..];
                    // with -i: the same sockets, tcp_info aside
                    let mut with = vec![sentinel()];
                    let info = Replay::from_bytes(data.to_vec()).with_info(true);
                    info.dump_filtered(family, proto, all, None, &mut with)
                        .expect("with -i the file reads as without");
                    assert_eq!(without_info(&with[1..]), without_info(every));
                    for s in every {
                        check_decoded(s, Proto::Tcp);
                        assert_eq!(s.family, family, "{s:?}");
                    }
                    if proto == Proto::Udp {
                        assert!(every.is_empty(), "ss dumps TCP only: {every:?}");
                    }
                    // the state mask selects, and only it
                    let wanted: Vec<&Socket> =
                        every.iter().filter(|s| some & s.state.bit() != 0).collect();
                    let chosen: Vec<&Socket> = chosen[1..].iter().collect();
                    assert_eq!(wanted, chosen, "states {some:#x}");
                    // its first dump is the datagram's
                    if proto == Proto::Tcp {
                        let first = first_dump
                            .as_ref()
                            .expect("a replay that reads has a first dump that ends");
                        let mine: Vec<&Socket> =
                            first.iter().filter(|s| s.family == family).collect();
                        assert!(mine.len() <= every.len());
                        assert!(
                            mine.iter().zip(every).all(|(a, b)| *a == b),
                            "the first dump of the file is not the datagram's"
                        );
                    }
                }
            }
        }
    }
});
