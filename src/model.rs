//! Plain data shared by the pipeline: what the collectors produce and the
//! classifiers read, and `wire_enum!`, which spells every word the outputs
//! use once. Nothing here does I/O.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// An enum whose values are words of sockwho's output (JSON, CSV, the
/// tables, `--ftp`): each variant's word is written once, here, and
/// everything else uses it. The macro defines the enum (deriving `Debug`,
/// `Clone`, `Copy`, `PartialEq`, `Eq` and `Hash`, plus what the attributes
/// add), `name()` (the word), `ALL` (every variant, in declaration order,
/// so a test can hold the README to the code) and `Serialize` as
/// `name()`. Declaration order is kept: derived `Ord` and discriminants
/// (`as u32`) follow it.
///
#[macro_export]
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $word:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: [$name; [$($word),+].len()] = [$($name::$variant),+];

            /// The word the outputs use for it.
            pub const fn name(self) -> &'static str {
                match self {
                    $( $name::$variant => $word, )+
                }
            }
        }

        impl ::serde::Serialize for $name {
            fn serialize<S: ::serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.name())
            }
        }
    };
}
pub(crate) use wire_enum;

wire_enum! {
    #[derive(PartialOrd, Ord)]
    pub enum Proto {
        Tcp => "tcp",
        Udp => "udp",
    }
}

wire_enum! {
    #[derive(PartialOrd, Ord)]
    pub enum Family {
        Inet => "inet",
        Inet6 => "inet6",
    }
}

/// The kernel's socket states (`include/net/tcp_states.h`). UDP uses
/// `Established` for connected sockets and `Close` for unconnected ones
/// (netstat's `UNCONN`); see [`State::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum State {
    Established = 1,
    SynSent = 2,
    SynRecv = 3,
    FinWait1 = 4,
    FinWait2 = 5,
    TimeWait = 6,
    Close = 7,
    CloseWait = 8,
    LastAck = 9,
    Listen = 10,
    Closing = 11,
    /// A request socket (`TCP_NEW_SYN_RECV`); shown as `SYN_RECV`.
    NewSynRecv = 12,
}

impl State {
    pub const ALL: [State; 12] = [
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait1,
        State::FinWait2,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::Closing,
        State::NewSynRecv,
    ];

    pub fn from_kernel(n: u8) -> Option<State> {
        State::ALL.iter().copied().find(|s| *s as u8 == n)
    }

    /// The kernel's state bit, as used in `inet_diag_req_v2.idiag_states`.
    /// Request sockets answer to `SYN_RECV`'s bit: the kernel adds
    /// `TCPF_NEW_SYN_RECV` itself when that is set, and reports them as
    /// `SYN_RECV` (`inet_req_diag_fill()`).
    pub fn bit(self) -> u32 {
        match self {
            State::NewSynRecv => State::SynRecv.bit(),
            s => 1 << (s as u32),
        }
    }

    /// netstat's name for this state on a socket of `proto`.
    pub fn name(self, proto: Proto) -> &'static str {
        match (self, proto) {
            (State::Close, Proto::Udp) => "UNCONN",
            (State::Established, _) => "ESTABLISHED",
            (State::SynSent, _) => "SYN_SENT",
            (State::SynRecv | State::NewSynRecv, _) => "SYN_RECV",
            (State::FinWait1, _) => "FIN_WAIT1",
            (State::FinWait2, _) => "FIN_WAIT2",
            (State::TimeWait, _) => "TIME_WAIT",
            (State::Close, Proto::Tcp) => "CLOSE",
            (State::CloseWait, _) => "CLOSE_WAIT",
            (State::LastAck, _) => "LAST_ACK",
            (State::Listen, _) => "LISTEN",
            (State::Closing, _) => "CLOSING",
        }
    }
}

wire_enum! {
    /// A TCP timer as the kernel reports it (`idiag_timer`, `/proc/net/tcp`'s
    /// `tr`), named with netstat's words.
    pub enum TimerKind {
        Off => "off",
        /// Retransmit, or a lost-probe / reordering timer (netstat's `on`).
        On => "on",
        Keepalive => "keepalive",
        TimeWait => "timewait",
        Probe => "probe",
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub kind: TimerKind,
    /// Milliseconds until it fires (0 where the kernel gives none).
    pub expires_ms: u64,
    pub retransmits: u8,
}

impl Timer {
    pub const OFF: Timer = Timer {
        kind: TimerKind::Off,
        expires_ms: 0,
        retransmits: 0,
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub addr: IpAddr,
    pub port: u16,
}

impl Endpoint {
    pub fn new(addr: IpAddr, port: u16) -> Endpoint {
        Endpoint { addr, port }
    }

    /// The address with IPv4-mapped IPv6 (`::ffff:a.b.c.d`) turned into IPv4,
    /// so a dual-stack socket's peer compares equal to the same peer over IPv4.
    pub fn canonical_addr(&self) -> IpAddr {
        canonical(self.addr)
    }

    pub fn is_unspecified(&self) -> bool {
        self.addr.is_unspecified()
    }
}

impl From<SocketAddr> for Endpoint {
    fn from(a: SocketAddr) -> Endpoint {
        Endpoint::new(a.ip(), a.port())
    }
}

pub fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

pub fn unspecified(family: Family) -> IpAddr {
    match family {
        Family::Inet => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        Family::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Process {
    pub pid: u32,
    /// `/proc/PID/comm` as read: raw, not yet safe for a terminal. Shared by
    /// all the sockets of the process.
    pub name: std::sync::Arc<str>,
    /// The base name of argv[0] (`/proc/PID/cmdline`), which netstat shows;
    /// `None` where there is none (kernel threads, an emptied cmdline).
    pub program: Option<std::sync::Arc<str>>,
}

impl Process {
    pub fn new(pid: u32, name: &str) -> Process {
        Process {
            pid,
            name: name.into(),
            program: None,
        }
    }

    /// The program name as netstat shows it: argv[0]'s base name, else comm.
    pub fn program(&self) -> &str {
        self.program.as_deref().unwrap_or(&self.name)
    }
}

/// One socket as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socket {
    pub proto: Proto,
    pub family: Family,
    pub state: State,
    pub recv_q: u32,
    pub send_q: u32,
    /// The listen backlog, for listeners read over netlink (`/proc/net` has none).
    pub backlog: Option<u32>,
    pub local: Endpoint,
    /// `None` for listeners and unconnected UDP sockets.
    pub remote: Option<Endpoint>,
    pub uid: u32,
    /// 0 for sockets without one (TIME_WAIT, request sockets).
    pub inode: u64,
    /// The kernel's socket cookie (netlink only).
    pub cookie: Option<u64>,
    pub timer: Timer,
    /// `IPV6_V6ONLY` of an IPv6 listener or unconnected socket, where known.
    pub v6only: Option<bool>,
    /// Owners, filled in only when asked for (`-p`).
    pub processes: Vec<Process>,
    /// Seen only as the kernel destroyed it (a sock_diag destroy event in
    /// watch mode), never in a dump: the fields are what the kernel said as
    /// it went (uid and inode 0, no owners).
    pub closed: bool,
    /// In the dump with an inode, but a walk of `/proc` made after it, that
    /// could read every process, found no descriptor of it: its program
    /// closed it (or ended) in between, so it is seen as it went. Set by the
    /// pipeline, for FTP; never in an output.
    pub owner_gone: bool,
    /// When the connection ended, where that is known: a closed socket's
    /// destroy, or the moment it entered TIME_WAIT (its timer counted back
    /// from the kernel's fixed 60 s). Set by the pipeline, for FTP's timing
    /// evidence; never in an output.
    pub ended: Option<std::time::Instant>,
    /// `tcp_info`, where the kernel sent it (`INET_DIAG_INFO`: destroy
    /// events, and dumps that ask for it). Boxed: rare, and large.
    pub tcp_info: Option<Box<TcpInfo>>,
}

/// The parts of the kernel's `struct tcp_info` (include/uapi/linux/tcp.h)
/// that sockwho shows, in the units their names say. Fields that a kernel's
/// shorter struct does not have are `None` (the struct grows at its end,
/// and the attribute's length says how much of it was sent).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TcpInfo {
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub rto_us: u32,
    pub snd_cwnd: u32,
    pub snd_ssthresh: u32,
    /// Retransmissions of the current timeout (`tcpi_retransmits`).
    pub retransmits: u8,
    /// Segments retransmitted and not yet acknowledged (`tcpi_retrans`:
    /// the first number of ss's `retrans:N/TOTAL`).
    pub retrans: u32,
    pub total_retrans: u32,
    /// `None` also while the kernel has no sample (it sends `~0`).
    pub min_rtt_us: Option<u32>,
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    pub bytes_retrans: Option<u64>,
    pub delivery_rate_bps: Option<u64>,
    /// `None` also when pacing is unlimited (the kernel sends `~0`).
    pub pacing_rate_bps: Option<u64>,
    pub busy_time_us: Option<u64>,
    pub rwnd_limited_us: Option<u64>,
    pub sndbuf_limited_us: Option<u64>,
}

/// Sockets built in code, for unit tests, benches and fuzz targets: the
/// classifiers and renderers are pure, so they run on these without a
/// kernel. The collectors fill every field themselves and do not use this.
///
/// ```
/// use sockwho::model::{Socket, State};
/// let listener = Socket::tcp("0.0.0.0:21", None).backlog(32).process(812, "vsftpd");
/// let accepted = Socket::tcp("10.0.0.1:21", Some("10.0.0.2:40000")).inode(7);
/// let closing = Socket::tcp("[fd00::1]:21", Some("[fd00::2]:40000")).state(State::TimeWait);
/// assert_eq!((listener.state, accepted.state), (State::Listen, State::Established));
/// # let _ = closing;
/// ```
impl Socket {
    /// A socket of `proto` on `local`, connected to `remote` (`None`: a TCP
    /// listener or an unconnected UDP socket), in the state that says so
    /// (`ESTABLISHED`, `LISTEN`, UDP's `CLOSE`), of `local`'s family, and
    /// otherwise empty: no queues, backlog or cookie, uid and inode 0, the
    /// timer off, no owners. It takes any endpoints, as a fuzz target needs.
    pub fn new(proto: Proto, local: Endpoint, remote: Option<Endpoint>) -> Socket {
        let state = match (proto, remote) {
            (_, Some(_)) => State::Established,
            (Proto::Tcp, None) => State::Listen,
            (Proto::Udp, None) => State::Close,
        };
        Socket {
            proto,
            family: if local.addr.is_ipv4() {
                Family::Inet
            } else {
                Family::Inet6
            },
            state,
            recv_q: 0,
            send_q: 0,
            backlog: None,
            local,
            remote,
            uid: 0,
            inode: 0,
            cookie: None,
            timer: Timer::OFF,
            v6only: None,
            processes: Vec::new(),
            closed: false,
            owner_gone: false,
            ended: None,
            tcp_info: None,
        }
    }

    /// [`Socket::new`] for TCP, from `"addr:port"` or `"[v6]:port"`.
    ///
    /// # Panics
    ///
    /// On an address that does not parse, ends of two families, or a remote
    /// end of `0.0.0.0:0` (the collectors say "no remote end" with `None`):
    /// it takes literals written in a test, never outside input.
    pub fn tcp(local: &str, remote: Option<&str>) -> Socket {
        let (local, remote) = literal_ends(local, remote);
        Socket::new(Proto::Tcp, local, remote)
    }

    /// [`Socket::tcp`] for UDP.
    ///
    /// # Panics
    ///
    /// As [`Socket::tcp`].
    pub fn udp(local: &str, remote: Option<&str>) -> Socket {
        let (local, remote) = literal_ends(local, remote);
        Socket::new(Proto::Udp, local, remote)
    }

    pub fn state(mut self, state: State) -> Socket {
        self.state = state;
        self
    }

    pub fn inode(mut self, inode: u64) -> Socket {
        self.inode = inode;
        self
    }

    pub fn cookie(mut self, cookie: u64) -> Socket {
        self.cookie = Some(cookie);
        self
    }

    pub fn uid(mut self, uid: u32) -> Socket {
        self.uid = uid;
        self
    }

    pub fn backlog(mut self, backlog: u32) -> Socket {
        self.backlog = Some(backlog);
        self
    }

    pub fn v6only(mut self, v6only: bool) -> Socket {
        self.v6only = Some(v6only);
        self
    }

    pub fn queues(mut self, recv_q: u32, send_q: u32) -> Socket {
        self.recv_q = recv_q;
        self.send_q = send_q;
        self
    }

    pub fn timer(mut self, timer: Timer) -> Socket {
        self.timer = timer;
        self
    }

    pub fn ended(mut self, at: std::time::Instant) -> Socket {
        self.ended = Some(at);
        self
    }

    /// Adds an owner.
    pub fn process(mut self, pid: u32, name: &str) -> Socket {
        self.processes.push(Process::new(pid, name));
        self
    }
}

/// How long the kernel keeps a connection in TIME_WAIT (`TCP_TIMEWAIT_LEN`
/// in include/net/tcp.h; no sysctl changes it).
pub const TIME_WAIT_LEN: std::time::Duration = std::time::Duration::from_secs(60);

impl Socket {
    /// When a TIME_WAIT socket dumped at `dumped` entered TIME_WAIT: its
    /// timer counted back from [`TIME_WAIT_LEN`]. `None` for other states.
    pub fn time_wait_began(&self, dumped: std::time::Instant) -> Option<std::time::Instant> {
        if self.state != State::TimeWait || self.timer.kind != TimerKind::TimeWait {
            return None;
        }
        let left = std::time::Duration::from_millis(self.timer.expires_ms);
        dumped.checked_sub(TIME_WAIT_LEN.saturating_sub(left))
    }
}

/// The ends of a socket written as literals; see [`Socket::tcp`].
fn literal_ends(local: &str, remote: Option<&str>) -> (Endpoint, Option<Endpoint>) {
    let parse = |s: &str| -> Endpoint {
        match s.parse::<SocketAddr>() {
            Ok(a) => a.into(),
            Err(e) => panic!("{s:?} is not addr:port or [v6]:port: {e}"),
        }
    };
    let local = parse(local);
    let remote = remote.map(parse);
    if let Some(r) = remote {
        assert_eq!(
            r.addr.is_ipv4(),
            local.addr.is_ipv4(),
            "one family per socket: {local:?} {r:?}"
        );
        assert!(
            !(r.port == 0 && r.addr.is_unspecified()),
            "no remote end is None, not {r:?}"
        );
    }
    (local, remote)
}

/// The namespace's `net.ipv4.ip_local_port_range` (it applies to IPv6 too)
/// and `ip_local_reserved_ports`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortRange {
    pub low: u16,
    pub high: u16,
    pub reserved: Vec<(u16, u16)>,
}

impl Default for PortRange {
    /// The kernel's default since Linux 4.x.
    fn default() -> Self {
        PortRange {
            low: 32768,
            high: 60999,
            reserved: Vec::new(),
        }
    }
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.low..=self.high).contains(&port) && !self.is_reserved(port)
    }

    pub fn is_reserved(&self, port: u16) -> bool {
        self.reserved
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&port))
    }
}

wire_enum! {
    /// Where the sockets were read from.
    #[derive(Default)]
    pub enum Source {
        #[default]
        Netlink => "netlink",
        Procfs => "procfs",
    }
}

/// Everything collected in one pass: the input of the classifiers.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub sockets: Vec<Socket>,
    pub port_range: PortRange,
    pub source: Source,
    /// With an ss filter expression: which sockets it selected (the others
    /// are listeners dumped for context). `None` without one.
    pub selected: Option<Vec<bool>>,
    /// When the kernel's table was read (set by the pipeline): what the
    /// ends of connections seen as they went are measured against.
    pub dumped: Option<std::time::Instant>,
}

/// A connection tracking tuple: one direction of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: Endpoint,
    pub dst: Endpoint,
    /// IP protocol number (6 = TCP, 17 = UDP).
    pub proto: u8,
}

/// A tracked flow, as conntrack holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The direction of the first packet: `orig.src` opened the connection.
    pub orig: Tuple,
    pub reply: Tuple,
    /// `IPS_EXPECTED`: the flow was created from a helper's expectation.
    pub expected: bool,
    /// The helper assigned to this flow (`ftp` on a control connection).
    pub helper: Option<String>,
    /// For an expected flow: the original tuple of the flow that expected it
    /// (ctnetlink only; /proc/net/nf_conntrack does not show it).
    pub master: Option<Tuple>,
    pub status: FlowStatus,
}

impl Flow {
    /// Takes what a later event of the same flow says, keeping what only
    /// an earlier one said: an update event leaves out the master, and the
    /// TCP state unless it changed (`ctnetlink_conntrack_event()`).
    pub fn update(&mut self, later: Flow) {
        self.reply = later.reply;
        self.expected |= later.expected;
        self.helper = later.helper.or(self.helper.take());
        self.master = later.master.or(self.master);
        self.status = FlowStatus {
            state: later.status.state.or(self.status.state),
            ..later.status
        };
    }
}

/// What conntrack says of a flow beside its tuples: what a firewall's
/// rules match on (`ct state`, `ct mark`, `ct zone`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowStatus {
    /// The TCP tracker's state as conntrack names it (`SYN_SENT`,
    /// `ESTABLISHED`, ...: [`CT_TCP_STATES`]); `None` for UDP, or where
    /// it was not said (an update event without protocol information).
    pub state: Option<&'static str>,
    /// No packet of the reply direction has been seen (`IPS_SEEN_REPLY`
    /// unset; `[UNREPLIED]` in /proc).
    pub unreplied: bool,
    /// `IPS_ASSURED` (`[ASSURED]`): traffic seen both ways, kept under
    /// pressure.
    pub assured: bool,
    pub mark: u32,
    pub zone: u16,
    /// Seconds until conntrack forgets the flow, where it said.
    pub timeout: Option<u32>,
}

/// conntrack's TCP states by number (`enum tcp_conntrack`,
/// include/uapi/linux/netfilter/nf_conntrack_tcp.h), named as
/// `tcp_conntrack_names` in nf_conntrack_proto_tcp.c prints them in
/// /proc/net/nf_conntrack (and `conntrack -L`).
pub const CT_TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// The name of conntrack's TCP state `code`, or of the state word `name`
/// in the table's spelling: `None` for any other.
pub fn ct_tcp_state(code: Option<u8>, name: Option<&str>) -> Option<&'static str> {
    match (code, name) {
        (Some(c), _) => CT_TCP_STATES.get(usize::from(c)).copied(),
        (None, Some(n)) => CT_TCP_STATES.iter().copied().find(|s| *s == n),
        (None, None) => None,
    }
}

/// A helper's expectation of a connection yet to come.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// The expected connection's original tuple; the source port (and with
    /// some helpers the source address) is a wildcard, shown as 0 / unspecified.
    pub tuple: Tuple,
    /// The original tuple of the flow that expects it (ctnetlink only).
    pub master: Option<Tuple>,
    pub helper: Option<String>,
    /// What a NAT helper rewrote (`CTA_EXPECT_NAT`): the address and port
    /// the expected connection will be sent on to, as the control
    /// connection named them before the rewrite (the ftp helper keeps the
    /// port only: the address is unspecified). ctnetlink only.
    pub nat: Option<Endpoint>,
    /// Seconds until the expectation lapses, where it said.
    pub timeout: Option<u32>,
}

/// Where conntrack's state was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConntrackSource {
    Netlink,
    Procfs,
}

/// What conntrack knows in one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conntrack {
    pub flows: Vec<Flow>,
    pub expectations: Vec<Expectation>,
    pub source: ConntrackSource,
    /// The namespace's own addresses (its interfaces'), so that a flow this
    /// host only forwards is told from one it ends: empty where they were
    /// not read.
    pub local: Vec<IpAddr>,
}

/// A network namespace, as sockwho names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetnsId {
    /// Its name under /run/netns (or `docker/ID` under /run/docker/netns).
    pub name: Option<String>,
    /// The inode of its nsfs file: what `ls -l /proc/PID/ns/net` shows.
    pub inode: u64,
    /// A process in it, where one was seen.
    pub pid: Option<u32>,
}

impl NetnsId {
    /// The name, or `net:[INODE]` as /proc shows the link.
    pub fn label(&self) -> String {
        match &self.name {
            Some(name) => name.clone(),
            None => format!("net:[{}]", self.inode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builder_reads_literals_and_implies_the_state() {
        let l = Socket::tcp("[::]:21", None).v6only(false).backlog(32);
        assert_eq!(
            (l.family, l.state, l.local.port, l.v6only, l.backlog),
            (Family::Inet6, State::Listen, 21, Some(false), Some(32))
        );
        let c = Socket::tcp("10.0.0.1:40000", Some("10.0.0.2:21"))
            .inode(7)
            .process(20, "curl");
        assert_eq!(
            (c.family, c.state, c.inode),
            (Family::Inet, State::Established, 7)
        );
        assert_eq!(
            c.remote,
            Some(Endpoint::new("10.0.0.2".parse().unwrap(), 21))
        );
        assert_eq!(&*c.processes[0].name, "curl");
        assert_eq!(Socket::udp("0.0.0.0:53", None).state, State::Close);
    }

    #[test]
    #[should_panic(expected = "one family per socket")]
    fn the_builder_refuses_two_families() {
        Socket::tcp("10.0.0.1:1", Some("[::1]:2"));
    }

    #[test]
    #[should_panic(expected = "not addr:port")]
    fn the_builder_refuses_what_does_not_parse() {
        Socket::tcp("10.0.0.1", None);
    }
}
