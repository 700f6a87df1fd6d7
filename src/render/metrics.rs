//! `--format prometheus` and `--serve`'s `/metrics`: the counts of
//! [`Tally`] and the listeners and service ports of the rows shown, as the
//! Prometheus text exposition format (version 0.0.4), which node_exporter's
//! textfile collector and every Prometheus server read.
//!
//! The exposition itself is `prometheus-client`'s (`prometheus_text`):
//! HELP and TYPE lines, names, label and HELP escaping of `\`, `"` and the
//! newline, numbers as the Go client writes them. Its `Registry` is built
//! for long-lived metric objects; a look's counts are computed afresh each
//! time, so they go in as one [`Collector`] that owns them (series that went
//! away are gone from the next scrape, as they must be).
//!
//! Label values that come from outside (process and namespace names) are
//! escaped as [`escape`](super::escape) says for every text format, before
//! the exposition's own escaping: nothing a terminal acts on reaches the
//! output raw (`curl localhost:9823/metrics` prints to a terminal too),
//! and a backslash is doubled so that an escape cannot be forged. A process
//! label names every owner, `,`-separated, so a `,` in a name is escaped.
//!
//! Every name, type and help text is spelled once, in [`METRICS`]; the
//! README's table lists the same (a test holds it to this list).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Write};
use std::net::IpAddr;
use std::time::Duration;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet, prometheus_text};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::escape::Rules;
use super::summary::{FtpKey, PartTally, Tally, is_listener, mode_name};
use crate::classify::direction::Direction;
use crate::classify::ports::PortClass;
use crate::config::Config;
use crate::error::Error;
use crate::model::{NetnsId, Proto, State, wire_enum};
use crate::view::{self, Part};

/// The `Content-Type` of the exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// The `service_port` of the connections that have no series of their own.
pub const OTHER_PORT: &str = "other";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// A metric family as it is exposed.
#[derive(Debug)]
pub struct Metric {
    /// The exposed name (a counter's ends in `_total`).
    pub name: &'static str,
    pub kind: Kind,
    pub help: &'static str,
    /// Its labels; `netns` only with `--netns`/`--all-netns`, `process`
    /// only with `-p`.
    pub labels: &'static [&'static str],
}

pub const SOCKETS: Metric = Metric {
    name: "sockwho_sockets",
    kind: Kind::Gauge,
    help: "Sockets by protocol, family, state, direction and the class of the local port.",
    labels: &[
        "netns",
        "proto",
        "family",
        "state",
        "direction",
        "local_class",
    ],
};

pub const LISTENERS: Metric = Metric {
    name: "sockwho_listeners",
    kind: Kind::Gauge,
    help: "Listening sockets (TCP LISTEN, unconnected UDP) on each address and port: 1, or more with SO_REUSEPORT.",
    labels: &["netns", "proto", "addr", "port", "process"],
};

pub const CONNECTIONS: Metric = Metric {
    name: "sockwho_connections",
    kind: Kind::Gauge,
    help: "Established connections by service port (inbound: the local port; outbound: the remote port unless ephemeral); the ports past --metrics-ports count as other.",
    labels: &["netns", "proto", "direction", "service_port"],
};

pub const FTP_SESSIONS: Metric = Metric {
    name: "sockwho_ftp_sessions",
    kind: Kind::Gauge,
    help: "FTP sessions by the side this host is on (router: it forwards them) and their mode (unknown while no data connection is open).",
    labels: &["netns", "side", "mode"],
};

pub const FTP_DATA_CONNECTIONS: Metric = Metric {
    name: "sockwho_ftp_data_connections",
    kind: Kind::Gauge,
    help: "FTP data connections by the side this host is on and their mode.",
    labels: &["netns", "side", "mode"],
};

pub const CONNECTIONS_CLOSED: Metric = Metric {
    name: "sockwho_connections_closed_total",
    kind: Kind::Counter,
    help: "Connections the kernel destroyed since the server started, from sock_diag destroy events (--serve only).",
    labels: &["netns", "proto", "direction"],
};

pub const SCRAPE_DURATION: Metric = Metric {
    name: "sockwho_scrape_duration_seconds",
    kind: Kind::Gauge,
    help: "How long collecting and classifying the sockets took.",
    labels: &[],
};

pub const SCRAPE_ERRORS: Metric = Metric {
    name: "sockwho_scrape_errors_total",
    kind: Kind::Counter,
    help: "Scrapes that failed (reason netlink, proc, netns, other) and problems a scrape went on without (partial).",
    labels: &["reason"],
};

pub const BUILD_INFO: Metric = Metric {
    name: "sockwho_build_info",
    kind: Kind::Gauge,
    help: "Always 1; the version of sockwho that exports these metrics.",
    labels: &["version"],
};

/// Every metric, in the order of the output.
pub const METRICS: [&Metric; 9] = [
    &SOCKETS,
    &LISTENERS,
    &CONNECTIONS,
    &FTP_SESSIONS,
    &FTP_DATA_CONNECTIONS,
    &CONNECTIONS_CLOSED,
    &SCRAPE_DURATION,
    &SCRAPE_ERRORS,
    &BUILD_INFO,
];

wire_enum! {
    /// Why a scrape went wrong: the `reason` of `sockwho_scrape_errors_total`.
    pub enum ErrorReason {
        /// The sockets could not be read over netlink: the scrape failed.
        Netlink => "netlink",
        /// A file under /proc could not be read: the scrape failed.
        Proc => "proc",
        /// The namespace (`--netns`) could not be entered: the scrape failed.
        Netns => "netns",
        /// The scrape failed otherwise.
        Other => "other",
        /// The scrape went on without something (a namespace skipped,
        /// conntrack unreadable, an owner gone): one per problem.
        Partial => "partial",
    }
}

impl ErrorReason {
    /// The reason of an error that ended a scrape.
    pub fn of(e: &Error) -> ErrorReason {
        match e {
            Error::Netlink(_) => ErrorReason::Netlink,
            Error::Proc { .. } => ErrorReason::Proc,
            Error::Netns { .. } => ErrorReason::Netns,
            _ => ErrorReason::Other,
        }
    }
}

/// `sockwho_scrape_errors_total`: one count per reason, all written (zeros
/// too, so that `rate()` has a series from the first scrape).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorCounts {
    counts: [u64; ErrorReason::ALL.len()],
}

impl ErrorCounts {
    pub fn record(&mut self, reason: ErrorReason, n: u64) {
        self.counts[reason as usize] += n;
    }

    pub fn get(&self, reason: ErrorReason) -> u64 {
        self.counts[reason as usize]
    }
}

/// `sockwho_connections_closed_total`: connections the kernel destroyed,
/// by namespace, protocol and direction, counted from the server's start.
/// The server owns one (`serve::run`) and the source of destroy events
/// feeds it through [`ClosedCounts::record_closed`], between scrapes; the
/// renderer only reads it. A one-shot look has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosedCounts {
    /// Whether namespaces are named (`--netns`, `--all-netns`): without,
    /// every close counts under no `netns` label.
    labelled: bool,
    counts: HashMap<(Option<String>, Proto, Direction), u64>,
}

impl ClosedCounts {
    pub fn new(labelled: bool) -> ClosedCounts {
        ClosedCounts {
            labelled,
            counts: HashMap::new(),
        }
    }

    /// Counts one connection the kernel destroyed, with the direction
    /// sockwho gave it (`Unknown` where it was never seen classified), in
    /// `netns` (`None`: the namespace sockwho runs in). A listener is no
    /// connection: `Direction::Listen` is not counted.
    pub fn record_closed(&mut self, proto: Proto, direction: Direction, netns: Option<&NetnsId>) {
        if direction == Direction::Listen {
            return;
        }
        let netns = netns.filter(|_| self.labelled).map(NetnsId::label);
        *self.counts.entry((netns, proto, direction)).or_default() += 1;
    }

    /// How many were recorded with these labels.
    pub fn count(&self, proto: Proto, direction: Direction, netns: Option<&NetnsId>) -> u64 {
        let netns = netns.filter(|_| self.labelled).map(NetnsId::label);
        self.counts
            .get(&(netns, proto, direction))
            .copied()
            .unwrap_or(0)
    }

    fn series(&self) -> Vec<Series> {
        let mut keys: Vec<_> = self.counts.iter().collect();
        keys.sort_by_key(|((netns, proto, direction), _)| (netns, *proto, *direction as u8));
        keys.into_iter()
            .map(|((netns, proto, direction), &n)| Series {
                labels: netns
                    .as_deref()
                    .map(|n| ("netns", label(n)))
                    .into_iter()
                    .chain([
                        ("proto", proto.name().to_string()),
                        ("direction", direction.name().to_string()),
                    ])
                    .collect(),
                value: Value::Count(n),
            })
            .collect()
    }
}

/// What the exposition says of the scrape itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct Scrape<'a> {
    /// How long the look took; `None` leaves the metric out (a caller that
    /// did not time it).
    pub duration: Option<Duration>,
    /// Counted since the server started; for one look, that look's.
    pub errors: Option<&'a ErrorCounts>,
    /// `--serve` only.
    pub closed: Option<&'a ClosedCounts>,
}

/// Text in a label value: hazards and backslashes escaped, whitespace kept.
const LABEL: Rules = Rules {
    whitespace: false,
    separators: &[],
};

fn label(s: &str) -> String {
    LABEL.apply(s).into_owned()
}

#[derive(Debug, Clone, Copy)]
enum Value {
    Count(u64),
    Seconds(f64),
}

#[derive(Debug)]
struct Series {
    labels: Vec<(&'static str, String)>,
    value: Value,
}

#[derive(Debug)]
struct Family {
    metric: &'static Metric,
    series: Vec<Series>,
}

/// Every family of one look, owned: what the registry encodes.
#[derive(Debug)]
struct Exposition(Vec<Family>);

impl Collector for Exposition {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for family in &self.0 {
            let m = family.metric;
            // the encoder adds a counter's `_total` itself
            let (name, kind) = match m.kind {
                Kind::Gauge => (m.name, MetricType::Gauge),
                Kind::Counter => (
                    m.name.strip_suffix("_total").unwrap_or(m.name),
                    MetricType::Counter,
                ),
            };
            let mut metric = encoder.encode_descriptor(name, m.help, None, kind)?;
            for s in &family.series {
                let mut e = metric.encode_family(&s.labels)?;
                match (m.kind, s.value) {
                    (Kind::Counter, Value::Count(n)) => {
                        e.encode_counter::<NoLabelSet, u64, u64>(&n, None)?
                    }
                    (Kind::Counter, Value::Seconds(v)) => {
                        e.encode_counter::<NoLabelSet, f64, f64>(&v, None)?
                    }
                    (Kind::Gauge, Value::Count(n)) => e.encode_gauge(&n)?,
                    (Kind::Gauge, Value::Seconds(v)) => e.encode_gauge(&v)?,
                }
            }
        }
        Ok(())
    }
}

/// Writes the exposition of one look.
pub fn write(cfg: &Config, parts: &[Part], scrape: &Scrape, out: &mut dyn Write) -> io::Result<()> {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(exposition(cfg, parts, scrape)));
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry)
        .map_err(|_| io::Error::other("the metrics could not be encoded"))?;
    out.write_all(text.as_bytes())
}

fn exposition(cfg: &Config, parts: &[Part], scrape: &Scrape) -> Exposition {
    let tally = Tally::new(cfg, parts);
    let mut families = vec![
        Family {
            metric: &SOCKETS,
            series: tally.parts.iter().flat_map(sockets).collect(),
        },
        Family {
            metric: &LISTENERS,
            series: listeners(cfg, parts),
        },
        Family {
            metric: &CONNECTIONS,
            series: connections(cfg, parts),
        },
        Family {
            metric: &FTP_SESSIONS,
            series: tally
                .parts
                .iter()
                .flat_map(|t| ftp(t, &t.sessions))
                .collect(),
        },
        Family {
            metric: &FTP_DATA_CONNECTIONS,
            series: tally.parts.iter().flat_map(|t| ftp(t, &t.data)).collect(),
        },
    ];
    if let Some(closed) = scrape.closed {
        families.push(Family {
            metric: &CONNECTIONS_CLOSED,
            series: closed.series(),
        });
    }
    if let Some(d) = scrape.duration {
        families.push(Family {
            metric: &SCRAPE_DURATION,
            series: vec![Series {
                labels: Vec::new(),
                value: Value::Seconds(d.as_secs_f64()),
            }],
        });
    }
    let none = ErrorCounts::default();
    let errors = scrape.errors.unwrap_or(&none);
    families.push(Family {
        metric: &SCRAPE_ERRORS,
        series: ErrorReason::ALL
            .iter()
            .map(|&r| Series {
                labels: vec![("reason", r.name().to_string())],
                value: Value::Count(errors.get(r)),
            })
            .collect(),
    });
    families.push(Family {
        metric: &BUILD_INFO,
        series: vec![Series {
            labels: vec![("version", env!("CARGO_PKG_VERSION").to_string())],
            value: Value::Count(1),
        }],
    });
    Exposition(families)
}

/// The `netns` label of a part, where namespaces are named.
fn netns_label(netns: Option<&NetnsId>) -> Option<(&'static str, String)> {
    netns.map(|n| ("netns", label(&n.label())))
}

fn sockets<'t>(t: &'t PartTally<'t>) -> impl Iterator<Item = Series> + 't {
    t.sockets.iter().map(move |(k, &n)| Series {
        labels: netns_label(t.netns)
            .into_iter()
            .chain([
                ("proto", k.proto.name().to_string()),
                ("family", k.family.name().to_string()),
                ("state", k.state.name(k.proto).to_string()),
                ("direction", k.direction.name().to_string()),
                ("local_class", k.local_class.name().to_string()),
            ])
            .collect(),
        value: Value::Count(n),
    })
}

/// Every side and mode, zeros too: an alert on a mode that appears needs
/// no `absent()`.
fn ftp<'t>(
    t: &'t PartTally<'t>,
    counts: &'t BTreeMap<FtpKey, u64>,
) -> impl Iterator<Item = Series> + 't {
    FtpKey::all().map(move |k| Series {
        labels: netns_label(t.netns)
            .into_iter()
            .chain([
                ("side", k.side.name().to_string()),
                ("mode", mode_name(k.mode).to_string()),
            ])
            .collect(),
        value: Value::Count(counts.get(&k).copied().unwrap_or(0)),
    })
}

/// The owners' program names (argv[0]'s base name, as the table shows
/// them), each once, `,`-separated.
fn programs(s: &crate::model::Socket) -> String {
    let names: BTreeSet<&str> = s.processes.iter().map(|p| p.program()).collect();
    let each: Vec<String> = names
        .into_iter()
        .map(|n| LABEL.with(&[',']).apply(n).into_owned())
        .collect();
    each.join(",")
}

/// One series per address and port listened on (per owner set with `-p`).
fn listeners(cfg: &Config, parts: &[Part]) -> Vec<Series> {
    let mut series = Vec::new();
    for part in parts {
        let mut counts: BTreeMap<(Proto, IpAddr, u16, Option<String>), u64> = BTreeMap::new();
        for (_, row) in view::shown(cfg, std::slice::from_ref(part)) {
            let s = row.socket;
            if !is_listener(s.proto, s.state) {
                continue;
            }
            let process = cfg.program.then(|| programs(s));
            *counts
                .entry((s.proto, s.local.addr, s.local.port, process))
                .or_default() += 1;
        }
        let netns = part.netns.as_ref().filter(|_| cfg.names_namespaces());
        series.extend(counts.into_iter().map(|((proto, addr, port, process), n)| {
            Series {
                labels: netns_label(netns)
                    .into_iter()
                    .chain([
                        ("proto", proto.name().to_string()),
                        ("addr", addr.to_string()),
                        ("port", port.to_string()),
                    ])
                    .chain(process.map(|p| ("process", p)))
                    .collect(),
                value: Value::Count(n),
            }
        }));
    }
    series
}

/// The service port of an established connection: inbound, the local
/// port (where something listens); outbound, the remote port unless it is
/// ephemeral (then the service is unknown); otherwise none.
fn service_port(row: &crate::classify::Row) -> Option<u16> {
    let (s, l) = (row.socket, row.labels);
    match l.direction.direction {
        Direction::Inbound => Some(s.local.port),
        Direction::Outbound if l.remote_class != Some(PortClass::Ephemeral) => {
            s.remote.map(|r| r.port)
        }
        _ => None,
    }
}

/// Established connections by (part, proto, direction, service port): the
/// `--metrics-ports` series with the most connections keep their port, in
/// all namespaces together; every other connection counts under
/// `service_port="other"` of its namespace, protocol and direction. So at
/// most N + 6 series per namespace, whatever the host does.
fn connections(cfg: &Config, parts: &[Part]) -> Vec<Series> {
    type Key = (usize, Proto, u8, Option<u16>);
    let mut counts: HashMap<Key, u64> = HashMap::new();
    for (i, part) in parts.iter().enumerate() {
        for (_, row) in view::shown(cfg, std::slice::from_ref(part)) {
            if row.socket.state != State::Established {
                continue;
            }
            let key = (
                i,
                row.socket.proto,
                row.labels.direction.direction as u8,
                service_port(&row),
            );
            *counts.entry(key).or_default() += 1;
        }
    }
    let mut ported: Vec<(Key, u64)> = counts
        .iter()
        .filter(|((_, _, _, port), _)| port.is_some())
        .map(|(&k, &n)| (k, n))
        .collect();
    // most connections first; ties to the lower port, so the cut is stable
    ported.sort_by(|(ka, a), (kb, b)| b.cmp(a).then(ka.cmp(kb)));
    for &((i, proto, dir, _), n) in ported.iter().skip(cfg.metrics_ports) {
        *counts.entry((i, proto, dir, None)).or_default() += n;
    }
    let kept: Vec<(Key, u64)> = ported.into_iter().take(cfg.metrics_ports).collect();
    let mut series: Vec<(Key, u64)> = counts
        .into_iter()
        .filter(|((_, _, _, port), _)| port.is_none())
        .chain(kept)
        .collect();
    // by namespace, protocol, direction, then port, other last
    series.sort_by_key(|&((i, proto, dir, port), _)| (i, proto, dir, port.is_none(), port));
    let labelled = cfg.names_namespaces();
    series
        .into_iter()
        .map(|((i, proto, dir, port), n)| Series {
            labels: netns_label(parts[i].netns.as_ref().filter(|_| labelled))
                .into_iter()
                .chain([
                    ("proto", proto.name().to_string()),
                    ("direction", Direction::ALL[dir as usize].name().to_string()),
                    (
                        "service_port",
                        port.map_or(OTHER_PORT.to_string(), |p| p.to_string()),
                    ),
                ])
                .collect(),
            value: Value::Count(n),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::escape::hazards;
    use super::super::summary::tests::{config, host, part};
    use super::*;
    use crate::model::Socket;

    fn render(args: &[&str], parts: &[Part], scrape: &Scrape) -> String {
        let mut argv = vec!["--format", "prometheus"];
        argv.extend_from_slice(args);
        let mut out = Vec::new();
        write(&config(&argv), parts, scrape, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// The samples of the text: (name, labels as written, value).
    fn samples(text: &str) -> Vec<(String, String, String)> {
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| {
                let (series, value) = l.rsplit_once(' ').unwrap();
                let (name, labels) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                (name.to_string(), labels.to_string(), value.to_string())
            })
            .collect()
    }

    fn value(text: &str, name: &str, labels: &str) -> Option<String> {
        samples(text)
            .into_iter()
            .find(|(n, l, _)| n == name && l == labels)
            .map(|(_, _, v)| v)
    }

    #[test]
    fn every_family_has_help_and_type_and_its_series() {
        let parts = [part(host(), None)];
        let errors = ErrorCounts::default();
        let text = render(
            &[],
            &parts,
            &Scrape {
                duration: Some(Duration::from_millis(1500)),
                errors: Some(&errors),
                closed: None,
            },
        );
        for m in METRICS.iter().filter(|m| m.name != CONNECTIONS_CLOSED.name) {
            assert!(
                text.contains(&format!("# HELP {} ", m.name)),
                "{}: {text}",
                m.name
            );
            assert!(
                text.contains(&format!("# TYPE {} {}\n", m.name, m.kind.name())),
                "{}: {text}",
                m.name
            );
        }
        assert!(!text.contains("sockwho_connections_closed_total"));
        assert_eq!(
            value(
                &text,
                "sockwho_sockets",
                r#"proto="tcp",family="inet",state="LISTEN",direction="listen",local_class="well-known""#
            )
            .as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            value(&text, "sockwho_scrape_duration_seconds", "").as_deref(),
            Some("1.5")
        );
        assert_eq!(
            value(&text, "sockwho_scrape_errors_total", r#"reason="partial""#).as_deref(),
            Some("0")
        );
        let version = format!(r#"version="{}""#, env!("CARGO_PKG_VERSION"));
        assert_eq!(
            value(&text, "sockwho_build_info", &version).as_deref(),
            Some("1")
        );
        assert!(!text.contains("netns="), "no netns label unless asked");
    }

    #[test]
    fn listeners_connections_and_ftp() {
        let parts = [part(host(), None)];
        let text = render(&[], &parts, &Scrape::default());
        let get = |name: &str, labels: &str| value(&text, name, labels);
        assert_eq!(
            get("sockwho_listeners", r#"proto="tcp",addr="::",port="80""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            get(
                "sockwho_listeners",
                r#"proto="udp",addr="0.0.0.0",port="53""#
            )
            .as_deref(),
            Some("1")
        );
        assert!(!text.contains("process="), "process only with -p");
        let conn = |dir: &str, port: &str| {
            get(
                "sockwho_connections",
                &format!(r#"proto="tcp",direction="{dir}",service_port="{port}""#),
            )
        };
        assert_eq!(conn("inbound", "22").as_deref(), Some("1"), "{text}");
        assert_eq!(conn("inbound", "21").as_deref(), Some("1"), "{text}");
        assert_eq!(conn("outbound", "443").as_deref(), Some("1"), "{text}");
        assert_eq!(
            get(
                "sockwho_connections",
                r#"proto="udp",direction="outbound",service_port="53""#
            )
            .as_deref(),
            Some("1")
        );
        // SYN_SENT and TIME_WAIT are no established connections
        let total: u64 = samples(&text)
            .iter()
            .filter(|(n, _, _)| n == "sockwho_connections")
            .map(|(_, _, v)| v.parse::<u64>().unwrap())
            .sum();
        assert_eq!(total, 5, "{text}");
        assert_eq!(
            get("sockwho_ftp_sessions", r#"side="server",mode="active""#).as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            get(
                "sockwho_ftp_data_connections",
                r#"side="server",mode="active""#
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            get("sockwho_ftp_sessions", r#"side="client",mode="unknown""#).as_deref(),
            Some("0"),
            "zeros are written"
        );
    }

    #[test]
    fn the_ports_past_the_bound_count_as_other() {
        // 300 outbound connections to 300 remote ports, one more to 443
        let mut sockets: Vec<Socket> = (0..300u16)
            .map(|i| {
                Socket::tcp(
                    &format!("10.0.0.1:{}", 40000 + i),
                    Some(&format!("10.0.0.2:{}", 1000 + i)),
                )
            })
            .collect();
        sockets.push(Socket::tcp("10.0.0.1:39999", Some("10.0.0.2:1000")));
        let parts = [part(sockets, None)];
        let text = render(&["--metrics-ports", "10"], &parts, &Scrape::default());
        let series: Vec<_> = samples(&text)
            .into_iter()
            .filter(|(n, _, _)| n == "sockwho_connections")
            .collect();
        assert_eq!(series.len(), 11, "{series:?}");
        assert_eq!(
            value(
                &text,
                "sockwho_connections",
                r#"proto="tcp",direction="outbound",service_port="1000""#
            )
            .as_deref(),
            Some("2"),
            "the busiest port keeps its series"
        );
        assert_eq!(
            value(
                &text,
                "sockwho_connections",
                r#"proto="tcp",direction="outbound",service_port="other""#
            )
            .as_deref(),
            Some("290")
        );
        let none = render(&["--metrics-ports", "0"], &parts, &Scrape::default());
        assert_eq!(
            samples(&none)
                .iter()
                .filter(|(n, _, _)| n == "sockwho_connections")
                .count(),
            1
        );
    }

    #[test]
    fn hostile_names_are_escaped_in_label_values() {
        let names = [
            "evil\x1b[2Jname",
            "quote\"brace}",
            "new\nline",
            "back\\slash",
            "rtl\u{202e}txt",
            "comma,1/sshd",
            "c1\u{9b}31m",
            "zw\u{200b}j",
        ];
        let mut sockets = Vec::new();
        for (i, name) in names.iter().enumerate() {
            sockets.push(
                Socket::tcp(&format!("0.0.0.0:{}", 2000 + i), None)
                    .inode(i as u64 + 1)
                    .process(100 + i as u32, name),
            );
        }
        let netns = NetnsId {
            name: Some("ns\x1b]0;title\x07\"x".to_string()),
            inode: 7,
            pid: None,
        };
        let parts = [part(sockets, Some(netns))];
        let text = render(&["-p", "--all-netns"], &parts, &Scrape::default());
        assert_eq!(hazards(text.as_bytes()), Vec::<String>::new(), "{text}");
        // every sample line is one line, whatever the names held
        assert_eq!(
            samples(&text)
                .iter()
                .filter(|(n, _, _)| n == "sockwho_listeners")
                .count(),
            names.len()
        );
        assert!(text.contains(r#"process="evil\\x1b[2Jname""#), "{text}");
        assert!(text.contains(r#"process="quote\"brace}""#), "{text}");
        assert!(text.contains(r#"process="new\\x0aline""#), "{text}");
        assert!(text.contains(r#"process="back\\\\slash""#), "{text}");
        assert!(text.contains(r#"process="comma\\x2c1/sshd""#), "{text}");
        assert!(
            text.contains(r#"netns="ns\\x1b]0;title\\x07\"x""#),
            "{text}"
        );
    }

    #[test]
    fn owners_of_one_listener_are_named_once_each() {
        let s = Socket::tcp("0.0.0.0:80", None)
            .inode(1)
            .process(10, "nginx")
            .process(11, "nginx")
            .process(12, "apache2");
        let reuse = Socket::tcp("0.0.0.0:80", None)
            .inode(2)
            .process(10, "nginx");
        let parts = [part(vec![s, reuse], None)];
        let text = render(&["-p"], &parts, &Scrape::default());
        assert_eq!(
            value(
                &text,
                "sockwho_listeners",
                r#"proto="tcp",addr="0.0.0.0",port="80",process="apache2,nginx""#
            )
            .as_deref(),
            Some("1"),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "sockwho_listeners",
                r#"proto="tcp",addr="0.0.0.0",port="80",process="nginx""#
            )
            .as_deref(),
            Some("1"),
            "{text}"
        );
    }

    #[test]
    fn closed_connections_are_counted_as_recorded() {
        let blue = NetnsId {
            name: Some("blue".to_string()),
            inode: 9,
            pid: None,
        };
        let mut closed = ClosedCounts::new(true);
        closed.record_closed(Proto::Tcp, Direction::Inbound, Some(&blue));
        closed.record_closed(Proto::Tcp, Direction::Inbound, Some(&blue));
        closed.record_closed(Proto::Tcp, Direction::Outbound, None);
        closed.record_closed(Proto::Tcp, Direction::Listen, None);
        assert_eq!(closed.count(Proto::Tcp, Direction::Inbound, Some(&blue)), 2);
        assert_eq!(closed.count(Proto::Tcp, Direction::Listen, None), 0);
        let parts = [part(vec![], Some(blue.clone()))];
        let text = render(
            &["--all-netns"],
            &parts,
            &Scrape {
                closed: Some(&closed),
                ..Scrape::default()
            },
        );
        assert!(
            text.contains("# TYPE sockwho_connections_closed_total counter\n"),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "sockwho_connections_closed_total",
                r#"netns="blue",proto="tcp",direction="inbound""#
            )
            .as_deref(),
            Some("2"),
            "{text}"
        );
        assert_eq!(
            value(
                &text,
                "sockwho_connections_closed_total",
                r#"proto="tcp",direction="outbound""#
            )
            .as_deref(),
            Some("1")
        );
        // without namespaces named, every close is of the one namespace
        let mut plain = ClosedCounts::new(false);
        plain.record_closed(Proto::Udp, Direction::Unknown, Some(&blue));
        plain.record_closed(Proto::Udp, Direction::Unknown, None);
        assert_eq!(plain.count(Proto::Udp, Direction::Unknown, None), 2);
    }

    #[test]
    fn scrape_errors_are_counted_by_reason() {
        let mut errors = ErrorCounts::default();
        errors.record(ErrorReason::Partial, 3);
        errors.record(
            ErrorReason::of(&Error::Netns {
                spec: "x".into(),
                source: io::Error::from(io::ErrorKind::NotFound),
            }),
            1,
        );
        let text = render(
            &[],
            &[],
            &Scrape {
                errors: Some(&errors),
                ..Scrape::default()
            },
        );
        for (reason, n) in [("partial", "3"), ("netns", "1"), ("netlink", "0")] {
            assert_eq!(
                value(
                    &text,
                    "sockwho_scrape_errors_total",
                    &format!(r#"reason="{reason}""#)
                )
                .as_deref(),
                Some(n),
                "{text}"
            );
        }
    }
}
