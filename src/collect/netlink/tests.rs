//! The engine's tests, written once for all of its users: sock_diag
//! (`collect::decode`) and ctnetlink's flows and expectations
//! (`collect::conntrack::netlink`), each on a dump captured from a real
//! kernel (tests/fixtures/sockdiag/, tests/fixtures/conntrack/) and on
//! datagrams derived from it. The dump loop runs on a scripted transport.

use super::*;
use crate::collect::conntrack::netlink as ct;
use crate::collect::decode;
use crate::model::Proto;

macro_rules! fixture {
    ($path:literal) => {
        include_bytes!(concat!("../../../tests/fixtures/", $path)) as &[u8]
    };
}

/// One user of the engine: a captured dump (its last datagram holds
/// `NLMSG_DONE`), a captured `NLMSG_ERROR` answer and its errno, and the
/// per-message decoder its code hands to [`NetlinkSocket::dump`], with the
/// entries erased to their `Debug` text so that one test serves all.
struct User {
    name: &'static str,
    dump: [&'static [u8]; 2],
    error: &'static [u8],
    errno: i32,
    decode: fn(Message<'_>, &mut Vec<String>) -> Result<(), DecodeError>,
}

fn erased<T: std::fmt::Debug>(
    decode: impl FnOnce(&mut Vec<T>) -> Result<(), DecodeError>,
    out: &mut Vec<String>,
) -> Result<(), DecodeError> {
    let mut entries = Vec::new();
    decode(&mut entries)?;
    out.extend(entries.iter().map(|e| format!("{e:?}")));
    Ok(())
}

const USERS: [User; 3] = [
    User {
        name: "sock_diag",
        dump: [
            fixture!("sockdiag/tcp4.0.bin"),
            fixture!("sockdiag/tcp4.1.bin"),
        ],
        error: fixture!("sockdiag/error.0.bin"),
        errno: libc::ENOENT,
        decode: |m, out| erased(|v| decode::decode_message(m, Proto::Tcp, v), out),
    },
    User {
        name: "ctnetlink flows",
        dump: [
            fixture!("conntrack/passive-flows-0.bin"),
            fixture!("conntrack/passive-flows-1.bin"),
        ],
        error: fixture!("conntrack/eperm-flows-0.bin"),
        errno: libc::EPERM,
        decode: |m, out| erased(|v| ct::flow_message(m, v), out),
    },
    User {
        name: "ctnetlink expectations",
        dump: [
            fixture!("conntrack/passive-expectations-0.bin"),
            fixture!("conntrack/passive-expectations-1.bin"),
        ],
        error: fixture!("conntrack/eperm-flows-0.bin"),
        errno: libc::EPERM,
        decode: |m, out| erased(|v| ct::expectation_message(m, v), out),
    },
];

/// A walk of one datagram with the user's decoder.
fn walk_as(user: &User, datagram: &[u8], out: &mut Vec<String>) -> Result<Progress, DecodeError> {
    walk(datagram, |m| (user.decode)(m, out))
}

/// The entries of the user's whole dump.
fn entries(user: &User) -> Vec<String> {
    let mut out = Vec::new();
    for d in user.dump {
        walk_as(user, d, &mut out).unwrap();
    }
    assert!(!out.is_empty(), "{}", user.name);
    out
}

/// Where each message of a well-formed datagram starts, and its nlmsg_len.
fn messages(d: &[u8]) -> Vec<(usize, usize)> {
    let mut list = Vec::new();
    let mut off = 0;
    while off < d.len() {
        let len = u32::from_ne_bytes(d[off..off + 4].try_into().unwrap()) as usize;
        list.push((off, len));
        off += len.next_multiple_of(4);
    }
    list
}

/// The datagram with `flag` set on every message.
fn flagged(d: &[u8], flag: u16) -> Vec<u8> {
    let mut d = d.to_vec();
    for (off, _) in messages(&d) {
        let flags = u16::from_ne_bytes([d[off + 6], d[off + 7]]) | flag;
        d[off + 6..off + 8].copy_from_slice(&flags.to_ne_bytes());
    }
    d
}

fn with_seq(d: &[u8], seq: u32) -> Vec<u8> {
    let mut d = d.to_vec();
    for (off, _) in messages(&d) {
        d[off + 8..off + 12].copy_from_slice(&seq.to_ne_bytes());
    }
    d
}

/// A message with this type and payload, seq 0.
fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
    let len = (NLMSG_HDRLEN + payload.len()) as u32;
    let mut m = [
        &len.to_ne_bytes()[..],
        &kind.to_ne_bytes(),
        &[0; 10],
        payload,
    ]
    .concat();
    m.resize(m.len().next_multiple_of(4), 0);
    m
}

/// `NLMSG_ERROR`: `struct nlmsgerr`, the negated errno and the request's
/// header.
fn error(errno: i32) -> Vec<u8> {
    message(
        NLMSG_ERROR,
        &[&errno.wrapping_neg().to_ne_bytes()[..], &[0; 16]].concat(),
    )
}

/// The user's final datagram (`NLMSG_DONE`) carrying an errno.
fn done_with(user: &User, errno: i32) -> Vec<u8> {
    let mut d = user.dump[1].to_vec();
    assert_eq!(messages(&d), [(0, 20)], "{}: a lone NLMSG_DONE", user.name);
    d[16..20].copy_from_slice(&errno.wrapping_neg().to_ne_bytes());
    d
}

/// A datagram a script answers with: stamped with the request's sequence
/// number as the kernel does, or left as it is (a stale one).
enum Answer {
    Reply(Vec<u8>),
    Stale(Vec<u8>),
}

/// A transport that answers the n-th request with the n-th list of
/// datagrams (the last list again after the end), and records requests.
struct Script {
    attempts: Vec<Vec<Answer>>,
    sent: Vec<Vec<u8>>,
    next: usize,
    current: Vec<u8>,
}

impl Script {
    fn new(attempts: Vec<Vec<Answer>>) -> Script {
        Script {
            attempts,
            sent: Vec::new(),
            next: 0,
            current: Vec::new(),
        }
    }

    fn replies(datagrams: &[&[u8]]) -> Vec<Answer> {
        datagrams
            .iter()
            .map(|d| Answer::Reply(d.to_vec()))
            .collect()
    }

    fn seqs(&self) -> Vec<u32> {
        self.sent
            .iter()
            .map(|r| u32::from_ne_bytes(r[8..12].try_into().unwrap()))
            .collect()
    }
}

impl Transport for Script {
    fn send(&mut self, request: &[u8]) -> Result<(), NetlinkError> {
        self.sent.push(request.to_vec());
        self.next = 0;
        Ok(())
    }

    fn recv(&mut self) -> Result<&[u8], NetlinkError> {
        let request = self.sent.last().expect("a request before an answer");
        let seq = u32::from_ne_bytes(request[8..12].try_into().unwrap());
        let attempt = (self.sent.len() - 1).min(self.attempts.len() - 1);
        self.current = match self.attempts[attempt].get(self.next) {
            Some(Answer::Reply(d)) => with_seq(d, seq),
            Some(Answer::Stale(d)) => d.clone(),
            None => return Err(NetlinkError::Io(io::Error::other("the script ran out"))),
        };
        self.next += 1;
        Ok(&self.current)
    }
}

/// A dump on the script with the user's decoder, into `out` prefilled with
/// one marker entry, which must survive whatever happens.
fn dump_as(user: &User, script: &mut Script) -> (Result<(), NetlinkError>, Vec<String>) {
    let request = [0u8; NLMSG_HDRLEN + 4];
    let mut out = vec!["before".to_string()];
    let mut seq = 0;
    let result = dump_over(script, &mut seq, &request, &mut out, user.decode);
    assert_eq!(out[0], "before", "{}", user.name);
    out.remove(0);
    (result, out)
}

#[test]
fn a_clean_dump_is_read_once_to_done() {
    for user in &USERS {
        let mut script = Script::new(vec![Script::replies(&user.dump)]);
        let (result, out) = dump_as(user, &mut script);
        assert!(result.is_ok(), "{}: {result:?}", user.name);
        assert_eq!(out, entries(user), "{}", user.name);
        assert_eq!(script.seqs(), [1], "{}: one request, numbered", user.name);
    }
}

#[test]
fn an_nlmsg_error_is_a_kernel_error() {
    for user in &USERS {
        let want = DecodeError::Kernel { errno: user.errno };
        assert_eq!(
            walk_as(user, user.error, &mut Vec::new()),
            Err(want.clone())
        );
        // after entries of the same datagram, too: they are dropped
        let mixed = [user.dump[0], &error(libc::EPERM)].concat();
        let eperm = DecodeError::Kernel { errno: libc::EPERM };
        assert_eq!(walk_as(user, &mixed, &mut Vec::new()), Err(eperm));
        for answer in [vec![user.error], vec![&mixed[..], user.dump[1]]] {
            let mut script = Script::new(vec![Script::replies(&answer)]);
            let (result, out) = dump_as(user, &mut script);
            assert!(
                matches!(result, Err(NetlinkError::Kernel { .. })),
                "{}: {result:?}",
                user.name
            );
            assert!(out.is_empty(), "{}: {out:?}", user.name);
        }
    }
}

#[test]
fn an_acknowledgement_is_not_an_error() {
    for user in &USERS {
        let with_ack = [&error(0)[..], user.dump[0]].concat();
        let mut out = Vec::new();
        assert_eq!(walk_as(user, &with_ack, &mut out), Ok(Progress::default()));
        let mut clean = Vec::new();
        walk_as(user, user.dump[0], &mut clean).unwrap();
        assert_eq!(out, clean, "{}", user.name);
        // an nlmsgerr without its errno is cut
        let short = message(NLMSG_ERROR, &[0; 2]);
        let got = walk_as(user, &short, &mut Vec::new());
        assert_eq!(got, Err(DecodeError::Truncated("error")), "{}", user.name);
    }
}

#[test]
fn done_carrying_an_errno_is_a_kernel_error() {
    // the kernel's own, from sock_diag for a protocol without a handler:
    // the same but for seq and pid
    let (made, sctp4) = (
        done_with(&USERS[0], libc::ENOENT),
        fixture!("sockdiag/sctp4.0.bin"),
    );
    assert_eq!((&made[..8], &made[16..]), (&sctp4[..8], &sctp4[16..]));
    for user in &USERS {
        for errno in [libc::ENOENT, 1, -5, i32::MIN, i32::MAX] {
            let done = done_with(user, errno);
            let got = walk_as(user, &done, &mut Vec::new());
            assert!(
                matches!(got, Err(DecodeError::Kernel { .. })),
                "{} {errno}: {got:?}",
                user.name
            );
            let mut script = Script::new(vec![Script::replies(&[user.dump[0], &done])]);
            let (result, out) = dump_as(user, &mut script);
            assert!(
                matches!(result, Err(NetlinkError::Kernel { .. })),
                "{}: {result:?}",
                user.name
            );
            assert!(out.is_empty());
        }
        // errno 0 is the ordinary end
        let got = walk_as(user, &done_with(user, 0), &mut Vec::new());
        assert_eq!(
            got,
            Ok(Progress {
                done: true,
                interrupted: false
            })
        );
    }
}

#[test]
fn errno_i32_min_does_not_panic() {
    for user in &USERS {
        for d in [error(i32::MIN), done_with(user, i32::MIN)] {
            let got = walk_as(user, &d, &mut Vec::new());
            assert_eq!(got, Err(DecodeError::Kernel { errno: i32::MIN }));
            // and its text is one line
            let text = NetlinkError::from(got.unwrap_err()).to_string();
            assert!(!text.contains('\n') && !text.contains("os error"), "{text}");
        }
    }
}

#[test]
fn an_interrupted_dump_is_started_again() {
    for user in &USERS {
        let intr: Vec<Vec<u8>> = user
            .dump
            .iter()
            .map(|d| flagged(d, NLM_F_DUMP_INTR))
            .collect();
        let first = intr.iter().map(|d| Answer::Reply(d.clone())).collect();
        let mut script = Script::new(vec![first, Script::replies(&user.dump)]);
        let (result, out) = dump_as(user, &mut script);
        assert!(result.is_ok(), "{}: {result:?}", user.name);
        // the second answer only, not both
        assert_eq!(out, entries(user), "{}", user.name);
        assert_eq!(script.seqs(), [1, 2], "{}", user.name);
        // the walker only notes it: the entries still decode
        let mut flagged_out = Vec::new();
        let got = walk_as(user, &intr[0], &mut flagged_out).unwrap();
        assert!(got.interrupted && !got.done);
        assert!(!flagged_out.is_empty());
    }
}

#[test]
fn an_always_interrupted_dump_gives_up_after_the_retries() {
    for user in &USERS {
        // only the DONE message flagged: still interrupted
        let answer = vec![
            Answer::Reply(user.dump[0].to_vec()),
            Answer::Reply(flagged(user.dump[1], NLM_F_DUMP_INTR)),
        ];
        let mut script = Script::new(vec![answer]);
        let (result, out) = dump_as(user, &mut script);
        assert!(
            matches!(result, Err(NetlinkError::Interrupted(DUMP_RETRIES))),
            "{}: {result:?}",
            user.name
        );
        assert!(out.is_empty(), "{}", user.name);
        let seqs: Vec<u32> = (1..=DUMP_RETRIES as u32).collect();
        assert_eq!(script.seqs(), seqs, "{}", user.name);
    }
}

/// Every prefix of every datagram: `Ok` with the entries of the whole
/// messages when it ends between messages (done once `NLMSG_DONE` is
/// whole), `Truncated` when it ends inside one; never a panic.
#[test]
fn every_prefix_of_every_datagram_is_whole_messages_or_truncated() {
    for user in &USERS {
        for d in user.dump.iter().copied().chain([user.error]) {
            let msgs = messages(d);
            let mut full = Vec::new();
            let _ = walk_as(user, d, &mut full);
            for cut in 0..=d.len() {
                let mut out = Vec::new();
                let got = walk_as(user, &d[..cut], &mut out);
                let what = format!("{} [..{cut}] of {}", user.name, d.len());
                let inside = msgs.iter().any(|&(off, len)| off < cut && cut < off + len);
                if inside {
                    assert!(
                        matches!(got, Err(DecodeError::Truncated(_))),
                        "{what}: {got:?}"
                    );
                    continue;
                }
                let whole = msgs.iter().filter(|&&(off, len)| off + len <= cut).count();
                if d == user.error && whole > 0 {
                    assert!(matches!(got, Err(DecodeError::Kernel { .. })), "{what}");
                    continue;
                }
                let done = d == user.dump[1] && whole > 0;
                assert_eq!(
                    got,
                    Ok(Progress {
                        done,
                        interrupted: false
                    }),
                    "{what}"
                );
                // each entry is one message here
                assert_eq!(out[..], full[..out.len()], "{what}");
                if d == user.dump[0] {
                    assert_eq!(out.len(), whole, "{what}");
                }
            }
            // and as a dump's datagram: an error, not entries lost
            for (off, len) in msgs {
                let cut = &d[..off + len - 1];
                let mut script = Script::new(vec![Script::replies(&[cut, user.dump[1]])]);
                let (result, out) = dump_as(user, &mut script);
                assert!(
                    matches!(result, Err(NetlinkError::Truncated(_))),
                    "{}: {result:?}",
                    user.name
                );
                assert!(out.is_empty());
            }
        }
    }
}

#[test]
fn an_empty_datagram_is_nothing_to_the_walker_and_an_error_to_a_dump() {
    for user in &USERS {
        let mut out = Vec::new();
        assert_eq!(walk_as(user, &[], &mut out), Ok(Progress::default()));
        assert!(out.is_empty());
        let mut script = Script::new(vec![Script::replies(&[user.dump[0], &[]])]);
        let (result, out) = dump_as(user, &mut script);
        assert!(
            matches!(result, Err(NetlinkError::Truncated("empty datagram"))),
            "{}: {result:?}",
            user.name
        );
        assert!(out.is_empty());
    }
}

#[test]
fn a_dump_skips_what_an_abandoned_dump_left_behind() {
    for user in &USERS {
        // a whole earlier answer (seq 77), ERROR and DONE included
        let stale = |d: &[u8]| Answer::Stale(with_seq(d, 77));
        let answer = vec![
            stale(user.dump[0]),
            stale(&error(libc::EPERM)),
            stale(user.dump[1]),
            Answer::Reply(user.dump[0].to_vec()),
            Answer::Reply(user.dump[1].to_vec()),
        ];
        let mut script = Script::new(vec![answer]);
        let (result, out) = dump_as(user, &mut script);
        assert!(result.is_ok(), "{}: {result:?}", user.name);
        assert_eq!(out, entries(user), "{}", user.name);
    }
}

#[test]
fn nothing_after_done_is_read() {
    for user in &USERS {
        let d = [user.dump[1], user.dump[0], &error(libc::EPERM)].concat();
        let mut out = Vec::new();
        let got = walk_as(user, &d, &mut out);
        assert_eq!(
            got,
            Ok(Progress {
                done: true,
                interrupted: false
            })
        );
        assert!(out.is_empty(), "{}", user.name);
        let (progress, used) = walk_from(&d, None, |_| Ok(())).unwrap();
        assert!(progress.done);
        assert_eq!(used, user.dump[1].len(), "{}", user.name);
    }
}

#[test]
fn a_request_too_short_for_a_header_is_refused() {
    let mut script = Script::new(vec![Script::replies(&USERS[0].dump)]);
    let mut out: Vec<String> = Vec::new();
    let got = dump_over(&mut script, &mut 0, &[0; 8], &mut out, |_, _| Ok(()));
    assert!(matches!(got, Err(NetlinkError::Truncated("request"))));
    assert!(script.sent.is_empty());
}

#[test]
fn error_texts_are_one_line_without_os_error() {
    let errors = [
        NetlinkError::Open(io::Error::from_raw_os_error(libc::EPROTONOSUPPORT)),
        NetlinkError::Io(io::Error::from_raw_os_error(libc::ECONNREFUSED)),
        NetlinkError::Kernel { errno: libc::EPERM },
        NetlinkError::Truncated("header"),
        NetlinkError::Oversized(70_000),
        NetlinkError::Malformed(DecodeError::Family(3)),
        NetlinkError::Interrupted(DUMP_RETRIES),
        NetlinkError::Overrun,
    ];
    for e in errors {
        let text = e.to_string();
        assert!(!text.contains('\n') && !text.contains("os error"), "{text}");
    }
    assert_eq!(
        NetlinkError::Kernel { errno: libc::EPERM }.to_string(),
        "the kernel answered with error 1: Operation not permitted"
    );
    assert_eq!(
        NetlinkError::Open(io::Error::from_raw_os_error(libc::EACCES)).to_string(),
        "cannot open a netlink socket: Permission denied"
    );
}

/// A dump longer than its first datagram is received on a thread of its
/// own: every entry arrives, in the kernel's order, and the receiving stops
/// at `NLMSG_DONE` (the script's next answer is never asked for). A
/// datagram that does not decode midway ends the dump with its error and
/// nothing of it, while the receiver still has answers to take: it does
/// not hang.
#[test]
fn a_long_dump_is_received_beside_its_decoding() {
    for user in &USERS {
        let middle = vec![user.dump[0]; 40];
        let long: Vec<&[u8]> = middle.iter().copied().chain([user.dump[1]]).collect();
        let mut answer = Script::replies(&long);
        answer.push(Answer::Reply(error(libc::EPERM)));
        let mut script = Script::new(vec![answer]);
        let (result, out) = dump_as(user, &mut script);
        assert!(result.is_ok(), "{}: {result:?}", user.name);
        let mut want = Vec::new();
        for d in &long {
            walk_as(user, d, &mut want).unwrap();
        }
        assert_eq!(out, want, "{}", user.name);
        assert_eq!(
            script.next,
            long.len(),
            "{}: read past NLMSG_DONE",
            user.name
        );
        // in the middle of it, a datagram cut short (the receiver stops
        // there too), or one whose message is too short for its type (the
        // receiver goes on to the end)
        let cut = &user.dump[0][..user.dump[0].len() - 3];
        let kind = u16::from_ne_bytes(user.dump[0][4..6].try_into().unwrap());
        let short = message(kind, &[1, 2, 3, 4]);
        for wrong in [cut, &short[..]] {
            let mut bad: Vec<&[u8]> = vec![user.dump[0]; 3];
            bad.push(wrong);
            bad.extend(vec![user.dump[0]; 40]);
            bad.push(user.dump[1]);
            let mut script = Script::new(vec![Script::replies(&bad)]);
            let (result, out) = dump_as(user, &mut script);
            assert!(
                matches!(
                    result,
                    Err(NetlinkError::Malformed(_) | NetlinkError::Truncated(_))
                ),
                "{}: {result:?}",
                user.name
            );
            assert!(out.is_empty(), "{}: {out:?}", user.name);
        }
    }
}
