//! The JSON output (`--format json`), schema 1. These types are the schema:
//! they live apart from the model so that it changes only on purpose, and
//! the README documents every field.

use std::io::{self, Write};
use std::net::IpAddr;

use std::cell::RefCell;

use serde::Serialize;

use super::escape::JsonText;
use crate::classify::Row;
use crate::classify::direction::{Confidence, Direction, EvidenceSet};
use crate::classify::ftp::crossing::{Crossing, DiagnosticKind};
use crate::classify::ftp::{FtpEvidence, Helper, Mode, Role, Side};
use crate::classify::ports::PortClass;
use crate::config::Config;
use crate::model::{NetnsId, Source, TcpInfo};
use crate::view::Part;

pub const SCHEMA: u32 = 1;

#[derive(Serialize)]
#[serde(bound = "")]
struct Document<'a, I: Iterator<Item = JsonSocket<'a>>> {
    schema: u32,
    /// Watch mode: when this refresh was taken.
    #[serde(skip_serializing_if = "Option::is_none")]
    time: Option<&'a str>,
    source: &'static str,
    port_range: [u16; 2],
    reserved_ports: &'a [(u16, u16)],
    /// With `--netns`/`--all-netns`: each namespace and its own port range.
    #[serde(skip_serializing_if = "Option::is_none")]
    namespaces: Option<Vec<JsonNetns<'a>>>,
    sockets: Streamed<I>,
    /// Every FTP session, whatever the filters show of its sockets.
    ftp_sessions: Vec<JsonSession<'a>>,
}

/// A sequence written straight from an iterator: 200,000 sockets go out
/// one by one instead of as a vector of documents first.
struct Streamed<I>(RefCell<Option<I>>);

impl<T: Serialize, I: Iterator<Item = T>> Serialize for Streamed<I> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error;
        let items = self
            .0
            .borrow_mut()
            .take()
            .ok_or_else(|| S::Error::custom("a stream is written once"))?;
        serializer.collect_seq(items)
    }
}

#[derive(Serialize)]
struct JsonSession<'a> {
    session: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    netns: Option<JsonNetnsId<'a>>,
    client: JsonHost,
    server: JsonHost,
    /// Which side(s) of the session this host is on: `client`, `server`,
    /// or `router` for a session it forwards.
    here: Vec<&'static str>,
    /// `assigned`, `not-assigned`, `not-tracked`, `unknown`, `unreadable`.
    helper: Helper,
    /// The rest: a session this host forwards (conntrack's alone).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    crossing: Option<JsonCrossing>,
}

/// What a forwarded session's entry adds.
#[derive(Serialize)]
struct JsonCrossing {
    mode: Option<Mode>,
    /// How NAT here shows each end to the other, where it changed it.
    nat: JsonNat,
    flows: Vec<JsonFlow>,
    diagnostics: Vec<JsonDiagnostic>,
}

#[derive(Serialize)]
struct JsonNat {
    /// The client as the server sees it (source NAT, masquerade).
    client_as: Option<JsonHost>,
    /// The server as the client addressed it (destination NAT).
    server_as: Option<JsonHost>,
}

#[derive(Serialize)]
struct JsonFlow {
    role: Role,
    mode: Option<Mode>,
    /// conntrack's original tuple (an expectation's: the tuple expected,
    /// wildcards as 0).
    orig: JsonTuple,
    /// `null` for a pending expectation.
    reply: Option<JsonTuple>,
    /// conntrack's TCP state name, `null` where none (a pending expectation).
    state: Option<&'static str>,
    unreplied: bool,
    assured: bool,
    /// `IPS_EXPECTED`: made from the helper's expectation (RELATED).
    expected: bool,
    mark: u32,
    zone: u16,
    timeout: Option<u32>,
    /// What the ftp helper rewrote for NAT: PORT/EPRT or 227/229 named
    /// `from`, it became `to`.
    rewrote: Option<JsonRewrite>,
    confidence: Confidence,
    evidence: Vec<FtpEvidence>,
}

#[derive(Serialize)]
struct JsonTuple {
    src: JsonHost,
    dst: JsonHost,
}

#[derive(Serialize)]
struct JsonRewrite {
    from: JsonHost,
    to: JsonHost,
}

#[derive(Serialize)]
struct JsonDiagnostic {
    kind: DiagnosticKind,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    nft: Option<String>,
}

impl JsonCrossing {
    fn of(c: &Crossing) -> JsonCrossing {
        let tuple = |t: &crate::model::Tuple| JsonTuple {
            src: JsonHost::of(t.src),
            dst: JsonHost::of(t.dst),
        };
        JsonCrossing {
            mode: c.mode,
            nat: JsonNat {
                client_as: c.client_nat.map(JsonHost::of),
                server_as: c.server_nat.map(JsonHost::of),
            },
            flows: c
                .flows
                .iter()
                .map(|f| JsonFlow {
                    role: f.role,
                    mode: f.mode,
                    orig: tuple(&f.orig),
                    reply: f.reply.as_ref().map(tuple),
                    state: f.status.state,
                    unreplied: f.status.unreplied,
                    assured: f.status.assured,
                    expected: f.expected,
                    mark: f.status.mark,
                    zone: f.status.zone,
                    timeout: f.status.timeout,
                    rewrote: f.rewrote.map(|r| JsonRewrite {
                        from: JsonHost::of(r.from),
                        to: JsonHost::of(r.to),
                    }),
                    confidence: f.confidence,
                    evidence: f.evidence.clone(),
                })
                .collect(),
            diagnostics: c
                .diagnostics
                .iter()
                .map(|d| JsonDiagnostic {
                    kind: d.kind,
                    message: d.message.clone(),
                    nft: d.nft.clone(),
                })
                .collect(),
        }
    }
}

#[derive(Serialize)]
struct JsonHost {
    addr: IpAddr,
    port: u16,
}

impl JsonHost {
    fn of(e: crate::model::Endpoint) -> JsonHost {
        JsonHost {
            addr: e.addr,
            port: e.port,
        }
    }
}

#[derive(Serialize)]
struct JsonNetns<'a> {
    #[serde(flatten)]
    id: JsonNetnsId<'a>,
    port_range: [u16; 2],
    reserved_ports: &'a [(u16, u16)],
}

/// `{"name": "blue", "inode": 4026532296, "pid": 1234}`; name and pid may be null.
#[derive(Serialize)]
pub struct JsonNetnsId<'a> {
    pub(super) name: Option<JsonText<'a>>,
    pub(super) inode: u64,
    pub(super) pid: Option<u32>,
}

impl<'a> From<&'a NetnsId> for JsonNetnsId<'a> {
    fn from(n: &'a NetnsId) -> Self {
        JsonNetnsId {
            name: n.name.as_deref().map(JsonText),
            inode: n.inode,
            pid: n.pid,
        }
    }
}

#[derive(Serialize)]
pub struct JsonSocket<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) netns: Option<JsonNetnsId<'a>>,
    pub(super) proto: &'static str,
    pub(super) family: &'static str,
    pub(super) state: &'static str,
    pub(super) recv_q: u32,
    pub(super) send_q: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) backlog: Option<u32>,
    pub(super) local: JsonEndpoint,
    pub(super) remote: Option<JsonEndpoint>,
    pub(super) direction: Direction,
    pub(super) direction_confidence: Option<Confidence>,
    pub(super) direction_evidence: EvidenceSet,
    /// `null` for a socket seen only as the kernel destroyed it: its
    /// event does not say (the kernel sends 0).
    pub(super) uid: Option<u32>,
    pub(super) inode: u64,
    pub(super) cookie: Option<u64>,
    pub(super) timer: JsonTimer,
    pub(super) ftp: Option<JsonFtp<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) processes: Option<Vec<JsonProcess<'a>>>,
    /// With `-i`, on every socket: `null` where the kernel sent none (UDP,
    /// TIME_WAIT, `/proc`). Without it, only where the kernel sent it
    /// anyway (a closed socket's destroy event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) tcp_info: Option<Option<JsonTcpInfo>>,
}

#[derive(Serialize)]
pub(super) struct JsonEndpoint {
    pub(super) addr: IpAddr,
    /// `null` (with its class) for the remote end of a failed connect,
    /// whose port the kernel forgot: see `collect::events::refused`.
    pub(super) port: Option<u16>,
    pub(super) class: Option<PortClass>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) listening: Option<bool>,
}

/// `tcp_info`, in the units its names say: times in microseconds, rates in
/// bits per second (the kernel's bytes per second times 8, as ss shows
/// them). A field the kernel's struct is too old to have is `null`, as are
/// `min_rtt_us` before the first sample and `pacing_rate_bps` when pacing is
/// unlimited (the kernel's `~0`). The byte counters are the kernel's (the
/// SYN and the FIN count one each once acknowledged or received).
#[derive(Serialize)]
pub(super) struct JsonTcpInfo {
    pub(super) rtt_us: u32,
    pub(super) rttvar_us: u32,
    pub(super) min_rtt_us: Option<u32>,
    pub(super) rto_us: u32,
    pub(super) snd_cwnd: u32,
    pub(super) snd_ssthresh: u32,
    pub(super) retransmits: u8,
    pub(super) retrans: u32,
    pub(super) total_retrans: u32,
    pub(super) bytes_acked: Option<u64>,
    pub(super) bytes_received: Option<u64>,
    pub(super) bytes_retrans: Option<u64>,
    pub(super) delivery_rate_bps: Option<u64>,
    pub(super) pacing_rate_bps: Option<u64>,
    pub(super) busy_time_us: Option<u64>,
    pub(super) rwnd_limited_us: Option<u64>,
    pub(super) sndbuf_limited_us: Option<u64>,
}

impl From<&TcpInfo> for JsonTcpInfo {
    fn from(t: &TcpInfo) -> JsonTcpInfo {
        JsonTcpInfo {
            rtt_us: t.rtt_us,
            rttvar_us: t.rttvar_us,
            min_rtt_us: t.min_rtt_us,
            rto_us: t.rto_us,
            snd_cwnd: t.snd_cwnd,
            snd_ssthresh: t.snd_ssthresh,
            retransmits: t.retransmits,
            retrans: t.retrans,
            total_retrans: t.total_retrans,
            bytes_acked: t.bytes_acked,
            bytes_received: t.bytes_received,
            bytes_retrans: t.bytes_retrans,
            delivery_rate_bps: t.delivery_rate_bps,
            pacing_rate_bps: t.pacing_rate_bps,
            busy_time_us: t.busy_time_us,
            rwnd_limited_us: t.rwnd_limited_us,
            sndbuf_limited_us: t.sndbuf_limited_us,
        }
    }
}

#[derive(Serialize)]
pub(super) struct JsonTimer {
    pub(super) kind: &'static str,
    pub(super) expires_ms: u64,
    pub(super) retransmits: u8,
}

#[derive(Serialize)]
pub(super) struct JsonFtp<'a> {
    pub(super) session: u32,
    pub(super) role: Role,
    pub(super) side: Side,
    pub(super) mode: Option<Mode>,
    pub(super) confidence: Confidence,
    pub(super) evidence: &'a [FtpEvidence],
    /// The session's control connection (its `client` and `server` as in
    /// `ftp_sessions`): in JSON Lines, where no session list is written,
    /// this is what ties a data connection to its session.
    control: Option<JsonControl>,
}

#[derive(Serialize)]
struct JsonControl {
    client: JsonHost,
    server: JsonHost,
}

impl JsonControl {
    fn of(s: &crate::classify::ftp::Session) -> JsonControl {
        JsonControl {
            client: JsonHost::of(s.client),
            server: JsonHost::of(s.server),
        }
    }
}

#[derive(Serialize)]
pub(super) struct JsonProcess<'a> {
    pub(super) pid: u32,
    pub(super) name: JsonText<'a>,
    /// argv[0]'s base name, which netstat shows (the table's PID/Program name).
    pub(super) program: JsonText<'a>,
}

/// One socket of `part` in the JSON shape, as the options ask for it.
pub fn socket_of<'a>(cfg: &Config, part: &'a Part, row: Row<'a>) -> JsonSocket<'a> {
    let mut s = socket(row, cfg.program);
    if let Some(f) = &mut s.ftp {
        f.control = part
            .sessions
            .iter()
            .find(|s| s.id == f.session)
            .map(JsonControl::of);
    }
    if cfg.names_namespaces() {
        s.netns = part.netns.as_ref().map(JsonNetnsId::from);
    }
    if cfg.tcp_info && s.tcp_info.is_none() {
        s.tcp_info = Some(None);
    }
    s
}

/// One socket in the JSON shape; `with_processes` adds `processes` (`-p`).
pub fn socket(row: Row<'_>, with_processes: bool) -> JsonSocket<'_> {
    let s = &row.socket;
    let l = &row.labels;
    let refused = crate::collect::events::refused(s);
    JsonSocket {
        netns: None,
        proto: s.proto.name(),
        family: s.family.name(),
        state: s.state.name(s.proto),
        recv_q: s.recv_q,
        send_q: s.send_q,
        backlog: s.backlog,
        local: JsonEndpoint {
            addr: s.local.addr,
            port: Some(s.local.port),
            class: Some(l.local_class),
            listening: Some(l.local_listening),
        },
        remote: s.remote.zip(l.remote_class).map(|(r, class)| JsonEndpoint {
            addr: r.addr,
            port: (!refused).then_some(r.port),
            class: (!refused).then_some(class),
            listening: None,
        }),
        direction: l.direction.direction,
        direction_confidence: l.direction.confidence,
        direction_evidence: l.direction.evidence,
        uid: (!s.closed).then_some(s.uid),
        inode: s.inode,
        cookie: s.cookie,
        timer: JsonTimer {
            kind: s.timer.kind.name(),
            expires_ms: s.timer.expires_ms,
            retransmits: s.timer.retransmits,
        },
        ftp: l.ftp.as_ref().map(|f| JsonFtp {
            session: f.session,
            role: f.role,
            side: f.side,
            mode: f.mode,
            confidence: f.confidence,
            evidence: &f.evidence,
            control: None,
        }),
        processes: with_processes.then(|| {
            s.processes
                .iter()
                .map(|p| JsonProcess {
                    pid: p.pid,
                    name: JsonText(&p.name),
                    program: JsonText(p.program()),
                })
                .collect()
        }),
        tcp_info: s.tcp_info.as_deref().map(|t| Some(JsonTcpInfo::from(t))),
    }
}

/// The document for every part: the sockets the options show, with their
/// namespace when namespaces are named (`--netns`, `--all-netns`).
pub fn write(cfg: &Config, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
    write_at(cfg, parts, None, out)
}

/// The document, with the time of the refresh in watch mode: one compact
/// document per line.
pub fn write_at(
    cfg: &Config,
    parts: &[Part],
    time: Option<&str>,
    out: &mut dyn Write,
) -> io::Result<()> {
    let first = parts.first();
    let range = first.map(|p| p.port_range.clone()).unwrap_or_default();
    let labelled = cfg.names_namespaces();
    let doc = Document {
        schema: SCHEMA,
        time,
        source: first.map_or(Source::Netlink, |p| p.source).name(),
        port_range: [range.low, range.high],
        reserved_ports: &range.reserved,
        namespaces: labelled.then(|| {
            parts
                .iter()
                .filter_map(|p| {
                    let n = p.netns.as_ref()?;
                    Some(JsonNetns {
                        id: JsonNetnsId::from(n),
                        port_range: [p.port_range.low, p.port_range.high],
                        reserved_ports: &p.port_range.reserved,
                    })
                })
                .collect()
        }),
        sockets: Streamed(RefCell::new(Some(
            crate::view::shown(cfg, parts).map(|(p, r)| socket_of(cfg, p, r)),
        ))),
        ftp_sessions: parts
            .iter()
            .flat_map(|p| p.sessions.iter().map(move |s| (p, s)))
            .map(|(p, s)| {
                let mut here: Vec<Side> = s
                    .members
                    .iter()
                    .filter_map(|&i| p.labels[i].ftp.as_ref())
                    .filter(|f| f.role == Role::Control)
                    .map(|f| f.side)
                    .collect();
                here.sort_by_key(|s| *s == Side::Client);
                here.dedup();
                JsonSession {
                    session: s.id,
                    netns: p.netns.as_ref().filter(|_| labelled).map(JsonNetnsId::from),
                    client: JsonHost::of(s.client),
                    server: JsonHost::of(s.server),
                    here: here.into_iter().map(Side::name).collect(),
                    helper: s.helper,
                    crossing: None,
                }
            })
            .chain(parts.iter().flat_map(|p| {
                p.crossings.iter().map(move |c| JsonSession {
                    session: c.id,
                    netns: p.netns.as_ref().filter(|_| labelled).map(JsonNetnsId::from),
                    client: JsonHost::of(c.client),
                    server: JsonHost::of(c.server),
                    here: vec!["router"],
                    helper: c.helper,
                    crossing: Some(JsonCrossing::of(c)),
                })
            }))
            .collect(),
    };
    // outside text is JsonText: the rest is sockwho's own, safe as it is
    let mut chunked = super::Chunked::new(out);
    serde_json::to_writer(&mut chunked, &doc).map_err(io::Error::from)?;
    chunked.write_all(b"\n")?;
    chunked.finish()
}
