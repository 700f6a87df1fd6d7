//! The kernel's events in watch mode, per watched network namespace: every
//! TCP and UDP socket the kernel destroys (sock_diag's destroy multicast
//! groups, which any user may join), and with CAP_NET_ADMIN conntrack's new
//! and destroyed flows and expectations (ctnetlink's groups). A thread of
//! its own, inside the namespace, reads them as they come for the whole
//! session, so nothing is lost while a refresh dumps the tables; the
//! pipeline drains what it gathered at each refresh.
//!
//! Three parts: [`EventSource`] (the thread and its sockets), [`Ledger`]
//! (pure: which destroyed sockets the refreshes listed, which they never
//! saw), and [`LiveConntrack`] (pure: conntrack's tables kept by events).
//!
//! How the ledger matches: the kernel sends a socket's destroy event
//! (`sock_diag_broadcast_destroy()`, from `sk_destruct()`) after it left
//! the socket tables, and a TCP socket that goes to TIME_WAIT is destroyed
//! once its TIME_WAIT socket is hashed. So an event taken before a dump
//! starts names a socket that the dump no longer lists, or one that it
//! lists as a timewait socket. That one has the same cookie when a dump
//! had asked for the socket's cookie before (`inet_twsk_alloc()` copies
//! it), and a new one when not (the kernel makes cookies only when asked:
//! `sock_gen_cookie()`), so it is matched by its ends as well: a timewait
//! socket's ends are no other live connection's.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use super::conntrack::netlink::{expectation_message, flow_message};
use super::decode::decode_with_info;
use super::netlink::sockdiag::{
    SKNLGRP_INET_TCP_DESTROY, SKNLGRP_INET_UDP_DESTROY, SKNLGRP_INET6_TCP_DESTROY,
    SKNLGRP_INET6_UDP_DESTROY,
};
use super::netlink::{
    DecodeError, Message, NETLINK_NETFILTER, NETLINK_SOCK_DIAG, NetlinkError, NetlinkSocket, walk,
};
use crate::model::{
    Conntrack, ConntrackSource, Endpoint, Expectation, Family, Flow, Proto, Socket, State,
    TimerKind, Tuple,
};

/// A socket as the kernel destroyed it, and when the event was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destroyed {
    /// `closed` is set; uid and inode are 0 (the kernel does not send
    /// them), `tcp_info` is there for TCP.
    pub socket: Socket,
    pub at: SystemTime,
}

/// Whether a closed socket is a connect that failed: the kernel zeroes a
/// TCP socket's destination port when `connect()` fails (`tcp_disconnect()`
/// from `__inet_stream_connect()`: refused, or timed out), and keeps its
/// address. The port is then unknown, not 0.
pub fn refused(s: &Socket) -> bool {
    s.closed && s.proto == Proto::Tcp && s.remote.is_some_and(|r| r.port == 0)
}

/// When the sockets that went away in one refresh were destroyed, by
/// namespace inode and cookie: the time of their `removed` or `closed`
/// event. A socket without an entry went away unseen (a TIME_WAIT socket's
/// end sends no event), at the time of the refresh.
pub type Departures = HashMap<(u64, u64), SystemTime>;

/// How many destroy events (and conntrack entries gone) are kept between
/// two refreshes: at 100,000 connections a second, more than a second's
/// worth. Past it, events are dropped and the overrun is said.
pub const MAX_PENDING: usize = 1 << 17;

/// The receive buffer asked for each subscribed socket: about 6,000
/// destroy events (each datagram costs some 1.3 KiB of buffer, most of it
/// the kernel's overhead). Capped by `net.core.rmem_max` without
/// CAP_NET_ADMIN.
const RECV_BUFFER: libc::c_int = 4 << 20;

/// How often the conntrack table is dumped again: with the kernel's default
/// `nf_conntrack_events=2`, flows that existed before the subscription
/// send no event, not even when they end.
const CONNTRACK_RESYNC: Duration = Duration::from_secs(30);

/// How long a socket that a refresh saw go away waits for its destroy
/// event, which the kernel sends from a work queue: a late event for it is
/// not a closed socket of its own. On a loaded machine that queue (one for
/// every namespace's events) and our reader fall seconds behind: with 2 s,
/// the test suite on two busy cores saw one server end of 1,500 reported
/// `removed` and then `closed`. A socket waits here only until its event
/// comes, so the longer wait costs memory only for events the kernel lost.
const LATE_EVENT: Duration = Duration::from_secs(10);
const LATE_EVENT_REFRESHES: u64 = 3;

// ctnetlink's message types: the subsystem in the high byte
// (include/uapi/linux/netfilter/nfnetlink.h), the message in the low one
// (nfnetlink_conntrack.h). A new entry's event is a *_NEW message, its end
// a *_DELETE one, with the same attributes.
const CT_NEW: u16 = 1 << 8; // NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW
const CT_DELETE: u16 = (1 << 8) | 2; // IPCTNL_MSG_CT_DELETE
const EXP_NEW: u16 = 2 << 8; // NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_NEW
const EXP_DELETE: u16 = (2 << 8) | 2; // IPCTNL_MSG_EXP_DELETE

// ctnetlink's multicast groups (`enum nfnetlink_groups` in
// include/uapi/linux/netfilter/nfnetlink.h). Updates (2) are left out:
// joined, their flood delayed the destroy events of short connections
// (tests/integration/ftp_brief.rs missed them); a flow's state comes from
// the dump at start and every resync, and from its new event.
const NFNLGRP_CONNTRACK_NEW: u32 = 1;
const NFNLGRP_CONNTRACK_DESTROY: u32 = 3;
const NFNLGRP_CONNTRACK_EXP_NEW: u32 = 4;
const NFNLGRP_CONNTRACK_EXP_DESTROY: u32 = 6;

/// The sysctl that decides whether conntrack sends events; read, never written.
const CONNTRACK_EVENTS_SYSCTL: &str = "/proc/sys/net/netfilter/nf_conntrack_events";

/// What to follow.
#[derive(Debug, Clone)]
pub struct Options {
    pub protos: Vec<Proto>,
    pub families: Vec<Family>,
    /// Say what the conntrack events sysctl is (`-v`).
    pub verbose: bool,
}

/// What the pipeline takes at each refresh.
#[derive(Debug, Default)]
pub struct Drained {
    pub destroyed: Vec<Destroyed>,
    /// Lines for the notices: events lost, a source that stopped.
    pub notices: Vec<String>,
}

/// What the thread gathered since the last drain.
#[derive(Debug, Default)]
struct Shared {
    destroyed: Vec<Destroyed>,
    /// The kernel reported an overrun (`ENOBUFS`), or [`MAX_PENDING`] was
    /// reached: destroy events were lost.
    lost: bool,
    conntrack: Option<LiveConntrack>,
    conntrack_lost: bool,
    /// A source that stopped for good, with why.
    failed: Option<String>,
    /// Destroy events read in all, for `-v`.
    read: u64,
}

/// The events of one namespace, read on a thread of their own that lives
/// as long as this value.
#[derive(Debug)]
pub struct EventSource {
    shared: Arc<Mutex<Shared>>,
    /// Written to stop the thread (an eventfd it polls).
    stop: Arc<OwnedFd>,
    thread: Option<JoinHandle<()>>,
    label: String,
    conntrack: bool,
}

impl EventSource {
    /// Starts following the namespace of `netns` (a `/proc/.../ns/net`
    /// file; the caller's namespace when it is that one): joins the
    /// destroy groups of `options`' protocols and families, and conntrack's
    /// where the namespace has it, CAP_NET_ADMIN allows and the sysctl lets
    /// the kernel send events, seeding its tables by a dump. Returns once
    /// the subscriptions are in place, so nothing destroyed after this
    /// returns is missed, with the lines `-v` says. `label` names the
    /// namespace in what is said.
    pub fn start(
        netns: File,
        options: &Options,
        label: String,
    ) -> Result<(EventSource, Vec<String>), String> {
        // SAFETY: eventfd has no preconditions; the fd is checked below.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(crate::error::reason(&io::Error::last_os_error()));
        }
        // SAFETY: a new fd that nothing else owns.
        let stop = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (ready, started) = mpsc::sync_channel(1);
        let thread = {
            let (shared, stop, options, label) =
                (shared.clone(), stop.clone(), options.clone(), label.clone());
            std::thread::Builder::new()
                .name("sockwho-events".to_string())
                .spawn(move || {
                    let follower = match Follower::open(&netns, &options, &label, &shared) {
                        Ok((follower, said)) => {
                            let _ = ready.send(Ok((said, follower.conntrack.is_some())));
                            follower
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    follower.run(&shared, &stop);
                })
                .map_err(|e| crate::error::reason(&e))?
        };
        let (said, conntrack) = started
            .recv()
            .unwrap_or_else(|_| Err("the event thread ended".to_string()))?;
        Ok((
            EventSource {
                shared,
                stop,
                thread: Some(thread),
                label,
                conntrack,
            },
            said,
        ))
    }

    /// Takes the destroy events gathered since the last call (call it just
    /// before the refresh dumps: see the module's doc), and what to say.
    pub fn drain(&self) -> Drained {
        let mut shared = lock(&self.shared);
        let mut notices = Vec::new();
        if std::mem::take(&mut shared.lost) {
            notices.push(format!(
                "the kernel dropped socket destroy events in {} (the event buffer overran): connections that opened and closed between refreshes may be missing",
                self.label
            ));
        }
        if std::mem::take(&mut shared.conntrack_lost) {
            notices.push(format!(
                "the kernel dropped conntrack events in {} (the event buffer overran): the table was dumped again",
                self.label
            ));
        }
        if let Some(why) = &shared.failed {
            notices.push(format!(
                "stopped following kernel events in {}: {why}",
                self.label
            ));
        }
        Drained {
            destroyed: std::mem::take(&mut shared.destroyed),
            notices,
        }
    }

    /// Whether conntrack's tables are kept here (by events) rather than
    /// read at each refresh.
    pub fn keeps_conntrack(&self) -> bool {
        self.conntrack
    }

    /// Conntrack as events kept it: the flows and expectations alive now,
    /// and those that ended since the last call (each handed on once), so
    /// the classifier sees flows that opened and closed between refreshes.
    /// `want` false only forgets the ended ones. `None` where conntrack is
    /// not kept here.
    pub fn conntrack(&self, want: bool) -> Option<Conntrack> {
        lock(&self.shared)
            .conntrack
            .as_mut()
            .and_then(|c| c.snapshot(want))
    }

    /// As [`EventSource::conntrack`], with the table dumped again first
    /// (on the calling thread, which must be in the namespace): what the
    /// state of a flow is now, where the events (no updates) say only how
    /// it began. The table stays locked through the dump, so that the
    /// events that come meanwhile wait in the socket and apply after it.
    pub fn conntrack_now(&self) -> Option<Conntrack> {
        let mut shared = lock(&self.shared);
        let table = shared.conntrack.as_mut()?;
        if let Ok(ct) = seed() {
            table.resync(ct.flows, ct.expectations);
        }
        table.snapshot(true)
    }

    /// Destroy events read so far, for `-v`.
    pub fn read(&self) -> u64 {
        lock(&self.shared).read
    }
}

impl Drop for EventSource {
    fn drop(&mut self) {
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our eventfd.
        unsafe { libc::write(self.stop.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A poisoned lock only means the thread panicked while holding it; what it
/// gathered is still plain data.
fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The thread's side: its sockets, inside the namespace.
struct Follower {
    /// One subscribed socket per protocol: the destroy messages do not say
    /// theirs in the fixed part.
    diag: Vec<(NetlinkSocket, Proto)>,
    conntrack: Option<NetlinkSocket>,
    resync_at: Instant,
}

impl Follower {
    /// Enters the namespace (unless this thread is in it already), joins
    /// the groups and seeds conntrack.
    fn open(
        netns: &File,
        options: &Options,
        label: &str,
        shared: &Mutex<Shared>,
    ) -> Result<(Follower, Vec<String>), String> {
        enter(netns).map_err(|e| format!("cannot enter it: {}", crate::error::reason(&e)))?;
        let mut diag = Vec::new();
        for &proto in &options.protos {
            let groups: Vec<u32> = options
                .families
                .iter()
                .map(|&family| match (family, proto) {
                    (Family::Inet, Proto::Tcp) => SKNLGRP_INET_TCP_DESTROY,
                    (Family::Inet, Proto::Udp) => SKNLGRP_INET_UDP_DESTROY,
                    (Family::Inet6, Proto::Tcp) => SKNLGRP_INET6_TCP_DESTROY,
                    (Family::Inet6, Proto::Udp) => SKNLGRP_INET6_UDP_DESTROY,
                })
                .collect();
            let socket = NetlinkSocket::subscribe(NETLINK_SOCK_DIAG, &groups)
                .map_err(|e| format!("cannot join sock_diag's destroy groups: {e}"))?;
            grow_buffer(&socket);
            diag.push((socket, proto));
        }
        let mut said = Vec::new();
        let conntrack = follow_conntrack(label, options.verbose, &mut said, shared);
        Ok((
            Follower {
                diag,
                conntrack,
                resync_at: Instant::now() + CONNTRACK_RESYNC,
            },
            said,
        ))
    }

    fn run(mut self, shared: &Mutex<Shared>, stop: &OwnedFd) {
        let mut gathered = Vec::new();
        loop {
            let mut fds: Vec<libc::pollfd> = std::iter::once(stop.as_fd())
                .chain(self.diag.iter().map(|(s, _)| s.as_fd()))
                .chain(self.conntrack.iter().map(|s| s.as_fd()))
                .map(|fd| libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events: libc::POLLIN,
                    revents: 0,
                })
                .collect();
            let timeout = match self.conntrack {
                Some(_) => {
                    let left = self.resync_at.saturating_duration_since(Instant::now());
                    libc::c_int::try_from(left.as_millis()).unwrap_or(libc::c_int::MAX)
                }
                None => -1,
            };
            // SAFETY: `fds` is a live array of `fds.len()` pollfds.
            let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                lock(shared).failed = Some(crate::error::reason(&e));
                return;
            }
            if fds[0].revents != 0 {
                return;
            }
            let ready = |i: usize| fds.get(i).is_some_and(|f| f.revents != 0);
            for i in 0..self.diag.len() {
                if ready(1 + i) {
                    let (socket, proto) = &mut self.diag[i];
                    if let Err(why) = read_destroyed(socket, *proto, &mut gathered, shared) {
                        lock(shared).failed = Some(why);
                        return;
                    }
                }
            }
            if self.conntrack.is_some() {
                let i = 1 + self.diag.len();
                if ready(i) && !self.read_conntrack(shared) {
                    return;
                }
                if Instant::now() >= self.resync_at {
                    self.resync(shared);
                }
            }
        }
    }

    /// Applies what conntrack's socket holds; false when it failed for good.
    fn read_conntrack(&mut self, shared: &Mutex<Shared>) -> bool {
        let Some(socket) = &mut self.conntrack else {
            return true;
        };
        loop {
            match socket.try_recv() {
                Ok(Some(datagram)) => {
                    let mut guard = lock(shared);
                    if let Some(table) = guard.conntrack.as_mut() {
                        // a message that does not decode is skipped: the
                        // next dump puts the table right
                        let _ = walk(datagram, |m| table.apply(m));
                    }
                }
                Ok(None) => return true,
                Err(NetlinkError::Overrun) => {
                    lock(shared).conntrack_lost = true;
                    self.resync_at = Instant::now();
                }
                Err(e) => {
                    let mut guard = lock(shared);
                    guard.conntrack = None;
                    guard.failed = Some(format!("conntrack events: {e}"));
                    self.conntrack = None;
                    return true;
                }
            }
        }
    }

    /// Dumps conntrack again, then applies the events that came meanwhile.
    fn resync(&mut self, shared: &Mutex<Shared>) {
        self.resync_at = Instant::now() + CONNTRACK_RESYNC;
        if let Ok(ct) = seed() {
            if let Some(table) = lock(shared).conntrack.as_mut() {
                table.resync(ct.flows, ct.expectations);
            }
            self.read_conntrack(shared);
        }
    }
}

/// Moves this thread into the namespace of `netns`, unless it is there.
fn enter(netns: &File) -> io::Result<()> {
    let here = std::fs::metadata("/proc/thread-self/ns/net")?.ino();
    if netns.metadata()?.ino() == here {
        // setns() would want CAP_SYS_ADMIN even for the namespace we are in
        return Ok(());
    }
    // SAFETY: a valid namespace fd; CLONE_NEWNET moves only this thread.
    if unsafe { libc::setns(netns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Asks for a receive buffer that holds a burst: with CAP_NET_ADMIN past
/// `net.core.rmem_max` (`SO_RCVBUFFORCE`), else up to it. Best effort: the
/// default buffer works, only overruns sooner.
fn grow_buffer(socket: &NetlinkSocket) {
    let size = RECV_BUFFER;
    for option in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a valid socket fd and an int option of the right size.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return;
        }
    }
}

/// Reads every datagram queued on a destroy subscription and hands the
/// sockets to `shared`. `Err` when the socket failed for good.
fn read_destroyed(
    socket: &mut NetlinkSocket,
    proto: Proto,
    gathered: &mut Vec<Destroyed>,
    shared: &Mutex<Shared>,
) -> Result<(), String> {
    let mut sockets = Vec::new();
    let mut lost = false;
    let mut result = Ok(());
    loop {
        match socket.try_recv() {
            Ok(Some(datagram)) => {
                let at = SystemTime::now();
                sockets.clear();
                // A message that does not decode (a family we do not know)
                // is left out; the others of the datagram are kept.
                let _ = walk(datagram, |m| {
                    let _ = decode_with_info(m, proto, &mut sockets);
                    Ok::<(), DecodeError>(())
                });
                gathered.extend(sockets.drain(..).map(|mut socket| {
                    socket.closed = true;
                    Destroyed { socket, at }
                }));
            }
            Ok(None) => break,
            // netlink_overrun(): some events were dropped; the socket goes on
            Err(NetlinkError::Overrun) => lost = true,
            Err(e) => {
                result = Err(format!("sock_diag destroy events: {e}"));
                break;
            }
        }
    }
    let mut guard = lock(shared);
    guard.read += gathered.len() as u64;
    let room = MAX_PENDING.saturating_sub(guard.destroyed.len());
    if gathered.len() > room {
        gathered.truncate(room);
        lost = true;
    }
    guard.destroyed.append(gathered);
    guard.lost |= lost;
    result
}

/// Joins conntrack's groups where it can and should, and seeds the table:
/// the socket, or `None` with the reason in `said` under `-v`.
fn follow_conntrack(
    label: &str,
    verbose: bool,
    said: &mut Vec<String>,
    shared: &Mutex<Shared>,
) -> Option<NetlinkSocket> {
    let mut say = |line: String| {
        if verbose {
            said.push(format!("conntrack events in {label}: {line}"));
        }
    };
    // Only read: changing it is the administrator's call, and it is global
    // to the namespace.
    let events = match std::fs::read_to_string(CONNTRACK_EVENTS_SYSCTL) {
        Ok(text) => text.trim().to_string(),
        Err(_) => {
            say("none: nf_conntrack is not loaded (no net.netfilter.nf_conntrack_events)".into());
            return None;
        }
    };
    let meaning = match events.as_str() {
        "0" => {
            "off: conntrack sends no events, so flows are read at each refresh and those that open and close between two are not seen"
        }
        "1" => "on",
        "2" => {
            "sent while someone listens; flows older than the subscription send none, so they come from a dump at start and every 30 s"
        }
        _ => "a value sockwho does not know",
    };
    let sysctl = format!(
        "net.netfilter.nf_conntrack_events = {events} ({meaning}); sockwho does not change it"
    );
    if events != "1" && events != "2" {
        say(sysctl);
        return None;
    }
    let groups = [
        NFNLGRP_CONNTRACK_NEW,
        NFNLGRP_CONNTRACK_DESTROY,
        NFNLGRP_CONNTRACK_EXP_NEW,
        NFNLGRP_CONNTRACK_EXP_DESTROY,
    ];
    // Subscribed before the dump: an event of a flow the dump saw only
    // repeats it, and one it missed is not lost.
    let socket = match NetlinkSocket::subscribe(NETLINK_NETFILTER, &groups) {
        Ok(socket) => socket,
        Err(NetlinkError::Open(e)) if e.raw_os_error() == Some(libc::EPERM) => {
            say(format!("not followed without CAP_NET_ADMIN; {sysctl}"));
            return None;
        }
        Err(e) => {
            say(format!("not followed: {e}; {sysctl}"));
            return None;
        }
    };
    grow_buffer(&socket);
    match seed() {
        Ok(ct) => {
            lock(shared).conntrack = Some(LiveConntrack::seed(ct.flows, ct.expectations));
            say(format!(
                "followed, from a dump of {} flows; {sysctl}",
                lock(shared).conntrack.as_ref().map_or(0, |c| c.flows.len())
            ));
            Some(socket)
        }
        Err(why) => {
            say(format!("not followed: {why}; {sysctl}"));
            None
        }
    }
}

/// A dump of this thread's namespace's conntrack over ctnetlink, as
/// `conntrack::read` takes it; its /proc fallback does not count, since
/// events come over ctnetlink only.
fn seed() -> Result<Conntrack, String> {
    match super::conntrack::read(Path::new("/proc/thread-self"))? {
        ct if ct.source == ConntrackSource::Netlink => Ok(ct),
        _ => Err("ctnetlink is not available".to_string()),
    }
}

/// Conntrack's flows and expectations of one namespace, kept by its events
/// on a table seeded by a dump. What ended since the last
/// [`LiveConntrack::snapshot`] is kept until then, so that a refresh still
/// sees it.
#[derive(Debug, Default)]
pub struct LiveConntrack {
    flows: HashMap<Tuple, Flow>,
    expectations: HashMap<(Tuple, Option<Tuple>), Expectation>,
    gone_flows: Vec<Flow>,
    gone_expectations: Vec<Expectation>,
}

impl LiveConntrack {
    pub fn seed(flows: Vec<Flow>, expectations: Vec<Expectation>) -> LiveConntrack {
        let mut table = LiveConntrack::default();
        table.fill(flows, expectations);
        table
    }

    fn fill(&mut self, flows: Vec<Flow>, expectations: Vec<Expectation>) {
        self.flows = flows.into_iter().map(|f| (f.orig, f)).collect();
        self.expectations = expectations
            .into_iter()
            .map(|e| ((e.tuple, e.master), e))
            .collect();
    }

    /// Applies one ctnetlink event; other messages are skipped.
    pub fn apply(&mut self, message: Message<'_>) -> Result<(), DecodeError> {
        // The decoders read *_NEW messages; a *_DELETE one has the same
        // attributes (ctnetlink_conntrack_event(), ctnetlink_expect_event()).
        let as_kind = |kind| Message { kind, ..message };
        match message.kind {
            CT_NEW => {
                let mut out = Vec::new();
                flow_message(message, &mut out)?;
                for f in out {
                    match self.flows.get_mut(&f.orig) {
                        Some(known) => known.update(f),
                        None => {
                            self.flows.insert(f.orig, f);
                        }
                    }
                }
            }
            CT_DELETE => {
                let mut out = Vec::new();
                flow_message(as_kind(CT_NEW), &mut out)?;
                for f in out {
                    // what the table knew (helper, master) rather than what
                    // a destroy event says, which leaves them out
                    let gone = self.flows.remove(&f.orig).unwrap_or(f);
                    push_capped(&mut self.gone_flows, gone);
                }
            }
            EXP_NEW => {
                let mut out = Vec::new();
                expectation_message(message, &mut out)?;
                for e in out {
                    self.expectations.insert((e.tuple, e.master), e);
                }
            }
            EXP_DELETE => {
                let mut out = Vec::new();
                expectation_message(as_kind(EXP_NEW), &mut out)?;
                for e in out {
                    let gone = self.expectations.remove(&(e.tuple, e.master)).unwrap_or(e);
                    push_capped(&mut self.gone_expectations, gone);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Takes a fresh dump as the table; what the table held that the dump
    /// does not has ended since.
    pub fn resync(&mut self, flows: Vec<Flow>, expectations: Vec<Expectation>) {
        let old_flows = std::mem::take(&mut self.flows);
        let old_expectations = std::mem::take(&mut self.expectations);
        self.fill(flows, expectations);
        for (orig, f) in old_flows {
            if !self.flows.contains_key(&orig) {
                push_capped(&mut self.gone_flows, f);
            }
        }
        for (key, e) in old_expectations {
            if !self.expectations.contains_key(&key) {
                push_capped(&mut self.gone_expectations, e);
            }
        }
    }

    /// The table and what ended since the last call, which is then
    /// forgotten; `None` without `want` (only forgets).
    pub fn snapshot(&mut self, want: bool) -> Option<Conntrack> {
        let gone_flows = std::mem::take(&mut self.gone_flows);
        let gone_expectations = std::mem::take(&mut self.gone_expectations);
        if !want {
            return None;
        }
        let mut flows: Vec<Flow> = self.flows.values().cloned().collect();
        // a flow that ended and began again is there once, alive
        flows.extend(
            gone_flows
                .into_iter()
                .filter(|f| !self.flows.contains_key(&f.orig)),
        );
        let mut expectations: Vec<Expectation> = self.expectations.values().cloned().collect();
        expectations.extend(
            gone_expectations
                .into_iter()
                .filter(|e| !self.expectations.contains_key(&(e.tuple, e.master))),
        );
        Some(Conntrack {
            flows,
            expectations,
            source: ConntrackSource::Netlink,
            local: Vec::new(),
        })
    }
}

fn push_capped<T>(list: &mut Vec<T>, item: T) {
    if list.len() < MAX_PENDING {
        list.push(item);
    }
}

/// Which destroyed sockets the refreshes of one namespace listed: each
/// socket is reported once, by its cookie. Pure; the pipeline keeps one per
/// namespace for the session.
#[derive(Debug, Default)]
pub struct Ledger {
    /// The cookies of the sockets the last refresh's dump listed.
    listed: HashSet<u64>,
    /// Listed sockets that went away before their destroy event came, with
    /// the refresh and the moment they went: a late event for one of them
    /// is already reported as `removed`.
    departed: HashMap<u64, (u64, Instant)>,
    refresh: u64,
    pub counts: Counts,
}

/// What the events of a session came to, for `-v`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Sockets never listed: `closed`.
    pub closed: u64,
    /// Listed sockets destroyed: `removed`, at the event's time.
    pub removed: u64,
    /// Sockets the dump still lists: their timewait sockets, under the
    /// same cookie or the same ends.
    pub listed: u64,
    /// Events that came after their socket was reported `removed`, and
    /// repeated ones.
    pub late: u64,
}

/// One refresh's merge.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Sockets that opened and closed since the refresh before, never
    /// listed, in the order of their events: reported `closed`.
    pub closed: Vec<Destroyed>,
    /// When the listed sockets that went away were destroyed, by cookie:
    /// those the refresh before listed, and those whose event came late
    /// (reported `removed` at an earlier refresh).
    pub removed_at: HashMap<u64, SystemTime>,
}

impl Ledger {
    /// Merges `events` (the destroy events taken before this refresh's dump
    /// began) with `dumped` (the dump): an event of a socket the dump lists
    /// (a TIME_WAIT socket keeps its cookie) is dropped, one of a socket the
    /// refresh before listed dates its `removed`, one that comes late for a
    /// socket already reported `removed` or repeats another is dropped, and
    /// the rest are sockets never listed: `closed`. `now` ages the sockets
    /// that wait for a late event.
    pub fn merge(&mut self, dumped: &[Socket], events: Vec<Destroyed>, now: Instant) -> Merged {
        self.refresh += 1;
        let listed: HashSet<u64> = dumped.iter().filter_map(|s| s.cookie).collect();
        let timewait: HashSet<Ends> = match events.is_empty() {
            true => HashSet::new(),
            false => dumped.iter().filter(|s| timewait(s)).map(ends).collect(),
        };
        let mut merged = Merged::default();
        let mut seen = HashSet::new();
        for event in events {
            let Some(cookie) = event.socket.cookie else {
                continue;
            };
            if !seen.insert(cookie) {
                self.counts.late += 1;
            } else if listed.contains(&cookie)
                || (event.socket.proto == Proto::Tcp && timewait.contains(&ends(&event.socket)))
            {
                self.counts.listed += 1;
            } else if self.listed.contains(&cookie) {
                self.counts.removed += 1;
                merged.removed_at.insert(cookie, event.at);
            } else if self.departed.remove(&cookie).is_some() {
                // reported `removed` already; its end still counts (metrics,
                // FTP's timing)
                self.counts.late += 1;
                merged.removed_at.insert(cookie, event.at);
            } else {
                self.counts.closed += 1;
                merged.closed.push(event);
            }
        }
        // listed before, gone now, no event yet: it may still come
        for &cookie in self.listed.difference(&listed) {
            if !merged.removed_at.contains_key(&cookie) {
                self.departed.insert(cookie, (self.refresh, now));
            }
        }
        let refresh = self.refresh;
        self.departed.retain(|_, &mut (when, at)| {
            refresh - when < LATE_EVENT_REFRESHES || now.duration_since(at) < LATE_EVENT
        });
        self.listed = listed;
        merged
    }
}

/// A connection's ends as the kernel states them (no address is made
/// canonical: a destroy event and a dump say the same).
type Ends = (Proto, Endpoint, Option<Endpoint>);

fn ends(s: &Socket) -> Ends {
    (s.proto, s.local, s.remote)
}

/// A timewait socket: TIME_WAIT, or FIN_WAIT2 on the timewait timer
/// (`inet_twsk_diag_fill()` reports the substate).
fn timewait(s: &Socket) -> bool {
    s.proto == Proto::Tcp && (s.state == State::TimeWait || s.timer.kind == TimerKind::TimeWait)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Endpoint, State};

    fn socket(cookie: u64, port: u16) -> Socket {
        Socket::tcp("10.0.0.1:5000", Some(&format!("10.0.0.2:{port}"))).cookie(cookie)
    }

    fn destroyed(cookie: u64, port: u16, secs: u64) -> Destroyed {
        let mut s = socket(cookie, port).state(State::Close);
        s.closed = true;
        Destroyed {
            socket: s,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(secs),
        }
    }

    fn cookies(merged: &Merged) -> Vec<u64> {
        merged
            .closed
            .iter()
            .filter_map(|d| d.socket.cookie)
            .collect()
    }

    #[test]
    fn a_socket_never_listed_is_closed() {
        let mut ledger = Ledger::default();
        let t = Instant::now();
        ledger.merge(&[socket(1, 80)], vec![], t);
        let merged = ledger.merge(&[socket(1, 80)], vec![destroyed(2, 81, 5)], t);
        assert_eq!(cookies(&merged), [2]);
        assert!(merged.closed[0].socket.closed);
        assert!(merged.removed_at.is_empty());
        // and it is not news twice
        let again = ledger.merge(&[socket(1, 80)], vec![], t);
        assert_eq!(again, Merged::default());
    }

    #[test]
    fn a_socket_destroyed_after_it_was_listed_is_removed_at_the_event() {
        let mut ledger = Ledger::default();
        let t = Instant::now();
        ledger.merge(&[socket(1, 80), socket(2, 81)], vec![], t);
        let merged = ledger.merge(&[socket(2, 81)], vec![destroyed(1, 80, 7)], t);
        assert!(merged.closed.is_empty());
        assert_eq!(
            merged.removed_at,
            HashMap::from([(1, SystemTime::UNIX_EPOCH + Duration::from_secs(7))])
        );
        assert_eq!(ledger.counts.removed, 1);
    }

    #[test]
    fn a_socket_still_listed_under_its_cookie_is_not_closed() {
        // destroyed as it went to TIME_WAIT, which the dump lists
        let mut ledger = Ledger::default();
        let t = Instant::now();
        ledger.merge(&[], vec![], t);
        let tw = socket(3, 80).state(State::TimeWait);
        let merged = ledger.merge(std::slice::from_ref(&tw), vec![destroyed(3, 80, 1)], t);
        assert_eq!(merged, Merged::default());
        // the same when it was listed before in ESTABLISHED
        ledger.merge(&[socket(4, 82)], vec![], t);
        let tw = socket(4, 82).state(State::TimeWait);
        assert_eq!(
            ledger.merge(&[tw], vec![destroyed(4, 82, 2)], t),
            Merged::default()
        );
        assert_eq!(ledger.counts.listed, 2);
    }

    /// A socket no dump asked the cookie of gets a new one as it goes to
    /// TIME_WAIT: its ends tell.
    #[test]
    fn a_timewait_socket_under_a_new_cookie_is_matched_by_its_ends() {
        let mut ledger = Ledger::default();
        let t = Instant::now();
        let tw = socket(90, 80).state(State::TimeWait);
        let merged = ledger.merge(&[tw], vec![destroyed(3, 80, 1)], t);
        assert_eq!(merged, Merged::default());
        // FIN_WAIT2 on the timewait timer is a timewait socket too
        let fw2 = socket(91, 81)
            .state(State::FinWait2)
            .timer(crate::model::Timer {
                kind: TimerKind::TimeWait,
                expires_ms: 100,
                retransmits: 0,
            });
        assert_eq!(
            ledger.merge(&[fw2], vec![destroyed(4, 81, 1)], t),
            Merged::default()
        );
        // a live socket on the same ends is a new connection: the old one
        // closed
        let live = socket(92, 82);
        let merged = ledger.merge(&[live], vec![destroyed(5, 82, 1)], t);
        assert_eq!(cookies(&merged), [5]);
        // and UDP has no timewait
        let mut udp = destroyed(6, 83, 1);
        udp.socket.proto = Proto::Udp;
        let tw = socket(93, 83).state(State::TimeWait);
        assert_eq!(cookies(&ledger.merge(&[tw], vec![udp], t)), [6]);
        assert_eq!(ledger.counts.listed, 2);
    }

    #[test]
    fn duplicates_and_late_events_are_reported_once() {
        let mut ledger = Ledger::default();
        let t = Instant::now();
        // the same event twice in one batch
        let merged = ledger.merge(&[], vec![destroyed(5, 80, 1), destroyed(5, 80, 1)], t);
        assert_eq!(cookies(&merged), [5]);
        // a listed socket gone from the dump before its event came: the
        // refresh says `removed`; the event, a refresh later, is not news
        ledger.merge(&[socket(6, 81)], vec![], t);
        let gone = ledger.merge(&[], vec![], t);
        assert_eq!(gone, Merged::default());
        let late = ledger.merge(&[], vec![destroyed(6, 81, 2)], t);
        // not closed again; only its destroy's time is said (for metrics'
        // closed count and FTP's timing)
        assert!(late.closed.is_empty());
        assert_eq!(late.removed_at.keys().collect::<Vec<_>>(), [&6]);
        assert_eq!(ledger.counts.late, 2);
        // a cookie of one namespace's event is never another's socket: the
        // pipeline keeps one ledger per namespace
        assert_eq!(ledger.counts.closed, 1);
    }

    #[test]
    fn what_waits_for_a_late_event_is_forgotten() {
        let mut ledger = Ledger::default();
        let t = Instant::now();
        let many: Vec<Socket> = (0..1000).map(|c| socket(c, 80)).collect();
        ledger.merge(&many, vec![], t);
        ledger.merge(&[], vec![], t);
        assert_eq!(ledger.departed.len(), 1000);
        // a few refreshes and a few seconds later: gone
        for i in 1..=LATE_EVENT_REFRESHES {
            ledger.merge(&[], vec![], t + LATE_EVENT + Duration::from_millis(i));
        }
        assert!(ledger.departed.is_empty());
        assert!(ledger.listed.is_empty());
        // an event that comes even later is a socket of its own: closed
        let merged = ledger.merge(&[], vec![destroyed(7, 80, 9)], t + LATE_EVENT * 2);
        assert_eq!(cookies(&merged), [7]);
    }

    #[test]
    fn sockets_without_a_cookie_are_not_matched() {
        let mut ledger = Ledger::default();
        let mut d = destroyed(1, 80, 1);
        d.socket.cookie = None;
        assert_eq!(
            ledger.merge(&[], vec![d], Instant::now()),
            Merged::default()
        );
    }

    fn tuple(src: &str, dst: &str) -> Tuple {
        let ep = |s: &str| Endpoint::from(s.parse::<std::net::SocketAddr>().unwrap());
        Tuple {
            src: ep(src),
            dst: ep(dst),
            proto: 6,
        }
    }

    fn flow(src: &str, dst: &str) -> Flow {
        Flow {
            orig: tuple(src, dst),
            reply: tuple(dst, src),
            expected: false,
            helper: None,
            master: None,
            status: Default::default(),
        }
    }

    fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
        let mut a = [
            &(4 + payload.len() as u16).to_ne_bytes()[..],
            &kind.to_ne_bytes(),
            payload,
        ]
        .concat();
        a.resize(a.len().next_multiple_of(4), 0);
        a
    }

    fn nest(kind: u16, attrs: &[Vec<u8>]) -> Vec<u8> {
        attr(kind | 0x8000, &attrs.concat())
    }

    fn tuple_attr(kind: u16, t: Tuple) -> Vec<u8> {
        let ip = |e: Endpoint| match e.addr {
            std::net::IpAddr::V4(v4) => v4.octets().to_vec(),
            std::net::IpAddr::V6(v6) => v6.octets().to_vec(),
        };
        nest(
            kind,
            &[
                nest(1, &[attr(1, &ip(t.src)), attr(2, &ip(t.dst))]),
                nest(
                    2,
                    &[
                        attr(1, &[t.proto]),
                        attr(2, &t.src.port.to_be_bytes()),
                        attr(3, &t.dst.port.to_be_bytes()),
                    ],
                ),
            ],
        )
    }

    /// A ctnetlink event as the kernel sends it, in a message of `kind`.
    fn event(kind: u16, f: &Flow, helper: Option<&str>) -> Vec<u8> {
        event_with_status(kind, f, helper, 0)
    }

    fn event_with_status(kind: u16, f: &Flow, helper: Option<&str>, status: u32) -> Vec<u8> {
        let mut attrs = vec![
            tuple_attr(1, f.orig),
            tuple_attr(2, f.reply),
            attr(3, &status.to_be_bytes()),
        ];
        if let Some(h) = helper {
            attrs.push(nest(5, &[attr(1, format!("{h}\0").as_bytes())]));
        }
        let payload = [vec![libc::AF_INET as u8, 0, 0, 0], attrs.concat()].concat();
        message(kind, &payload)
    }

    fn message(kind: u16, payload: &[u8]) -> Vec<u8> {
        [
            &((16 + payload.len()) as u32).to_ne_bytes()[..],
            &kind.to_ne_bytes(),
            &[0; 10],
            payload,
        ]
        .concat()
    }

    fn expectation_event(kind: u16, e: &Expectation) -> Vec<u8> {
        let mut attrs = vec![tuple_attr(2, e.tuple)];
        if let Some(m) = e.master {
            attrs.push(tuple_attr(1, m));
        }
        let payload = [vec![libc::AF_INET as u8, 0, 0, 0], attrs.concat()].concat();
        message(kind, &payload)
    }

    fn apply(table: &mut LiveConntrack, bytes: &[u8]) {
        walk(bytes, |m| table.apply(m)).unwrap();
    }

    #[test]
    fn conntrack_events_keep_the_table_and_what_ended_is_seen_once() {
        let seeded = flow("10.0.0.2:40000", "10.0.0.1:21");
        let mut table = LiveConntrack::seed(vec![seeded.clone()], vec![]);
        // a data connection opens and closes between two refreshes
        let data = flow("10.0.0.2:40001", "10.0.0.1:50000");
        apply(&mut table, &event(CT_NEW, &data, None));
        apply(&mut table, &event(CT_DELETE, &data, None));
        let ct = table.snapshot(true).unwrap();
        assert_eq!(ct.source, ConntrackSource::Netlink);
        let mut origs: Vec<Tuple> = ct.flows.iter().map(|f| f.orig).collect();
        origs.sort_by_key(|t| t.src.port);
        assert_eq!(origs, [seeded.orig, data.orig]);
        // handed on once
        assert_eq!(
            table.snapshot(true).unwrap().flows,
            std::slice::from_ref(&seeded)
        );
        // a destroy event keeps what the table knew of the flow
        apply(&mut table, &event(CT_NEW, &data, Some("ftp")));
        apply(&mut table, &event(CT_DELETE, &data, None));
        let ct = table.snapshot(true).unwrap();
        let gone = ct.flows.iter().find(|f| f.orig == data.orig).unwrap();
        assert_eq!(gone.helper.as_deref(), Some("ftp"));
        // without `want`, what ended is only forgotten
        apply(&mut table, &event(CT_DELETE, &seeded, None));
        assert_eq!(table.snapshot(false), None);
        assert_eq!(table.snapshot(true).unwrap().flows, []);
    }

    #[test]
    fn conntrack_update_events_change_the_status_and_keep_the_rest() {
        let mut table = LiveConntrack::default();
        let control = flow("10.0.0.2:40000", "10.0.0.1:21");
        apply(&mut table, &event(CT_NEW, &control, Some("ftp")));
        let first = &table.snapshot(true).unwrap().flows[0];
        assert!(first.status.unreplied);
        // IPS_SEEN_REPLY | IPS_ASSURED, and no helper said this time
        apply(&mut table, &event_with_status(CT_NEW, &control, None, 6));
        let later = &table.snapshot(true).unwrap().flows[0];
        assert_eq!(later.helper.as_deref(), Some("ftp"));
        assert!(!later.status.unreplied && later.status.assured);
    }

    #[test]
    fn conntrack_expectations_come_and_go() {
        let mut table = LiveConntrack::default();
        let e = Expectation {
            tuple: tuple("10.0.0.2:0", "10.0.0.1:50000"),
            master: Some(tuple("10.0.0.2:40000", "10.0.0.1:21")),
            helper: None,
            nat: None,
            timeout: None,
        };
        apply(&mut table, &expectation_event(EXP_NEW, &e));
        assert_eq!(
            table.snapshot(true).unwrap().expectations,
            std::slice::from_ref(&e)
        );
        apply(&mut table, &expectation_event(EXP_DELETE, &e));
        // gone, but this refresh still sees it, once
        assert_eq!(
            table.snapshot(true).unwrap().expectations,
            std::slice::from_ref(&e)
        );
        assert_eq!(table.snapshot(true).unwrap().expectations, []);
    }

    #[test]
    fn a_resync_ends_what_the_dump_no_longer_has() {
        let (a, b) = (
            flow("10.0.0.2:1", "10.0.0.1:21"),
            flow("10.0.0.2:2", "10.0.0.1:21"),
        );
        let mut table = LiveConntrack::seed(vec![a.clone(), b.clone()], vec![]);
        table.resync(vec![b.clone()], vec![]);
        let ct = table.snapshot(true).unwrap();
        assert_eq!(ct.flows.len(), 2, "a ended since: seen this once more");
        assert_eq!(table.snapshot(true).unwrap().flows, [b]);
    }

    #[test]
    fn malformed_conntrack_events_are_errors_not_panics() {
        let mut table = LiveConntrack::default();
        let good = event(CT_NEW, &flow("10.0.0.2:1", "10.0.0.1:21"), None);
        for cut in 16..good.len() {
            let mut m = good[..cut].to_vec();
            m[..4].copy_from_slice(&(cut as u32).to_ne_bytes());
            let _ = walk(&m, |m| table.apply(m));
        }
        // a message of another subsystem is skipped
        let other = message(3 << 8, &[0; 8]);
        apply(&mut table, &other);
    }
}
