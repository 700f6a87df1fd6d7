//! The command line, as clap derive types. Nothing else in sockwho touches
//! clap; `config.rs` turns these raw options into a resolved configuration.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use clap::{Parser, ValueEnum};

use crate::classify::direction::Direction;
use crate::classify::ports::PortClass;
use crate::filter::{self, Prefix};

const AFTER_HELP: &str = "\
Columns after State: Dir is the direction (listen, in, out, unknown; \
':med' or ':low' marks a guess), Ports the classes of the local and the \
remote port (wk well-known, reg registered, eph ephemeral; '*' after the \
local class: a listener is on that port).

Exit status: 0 success (also when the reader of the output goes away), \
1 the sockets could not be read (netlink, /proc), 2 usage error.";

/// List TCP and UDP sockets like `netstat -an`, and tell whose port is
/// ephemeral and who opened each connection.
#[derive(Debug, Parser)]
// Repeated flags are accepted as netstat accepts them (-ee, -nn, -tann,
// -a -a): every argument overrides itself; lists still collect.
#[command(name = "sockwho", version, after_help = AFTER_HELP, args_override_self = true)]
pub struct Cli {
    /// Show both listening and non-listening sockets.
    #[arg(short = 'a', long = "all")]
    pub all: bool,

    /// Show only listening sockets (TCP LISTEN and unconnected UDP).
    #[arg(short = 'l', long = "listening")]
    pub listening: bool,

    /// Show numeric ports and users instead of names.
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,

    /// Numeric ports only (netstat's --numeric-ports).
    #[arg(long = "numeric-ports")]
    pub numeric_ports: bool,

    /// Numeric hosts (netstat's --numeric-hosts): the default unless -r.
    #[arg(long = "numeric-hosts")]
    pub numeric_hosts: bool,

    /// Numeric users only (netstat's --numeric-users).
    #[arg(long = "numeric-users")]
    pub numeric_users: bool,

    /// No header lines (ss's -H).
    #[arg(short = 'H', long = "no-header")]
    pub no_header: bool,

    /// Resolve host names (reverse lookups; may query DNS).
    #[arg(short = 'r', long = "resolve")]
    pub resolve: bool,

    /// TCP sockets (with -u: both; neither: both).
    #[arg(short = 't', long = "tcp")]
    pub tcp: bool,

    /// UDP sockets.
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,

    /// IPv4 only.
    #[arg(short = '4', long = "inet")]
    pub inet: bool,

    /// IPv6 only.
    #[arg(short = '6', long = "inet6")]
    pub inet6: bool,

    /// Extend: show the User and Inode columns.
    #[arg(short = 'e', long = "extend")]
    pub extend: bool,

    /// Show TCP timers (netstat's Timer column).
    #[arg(short = 'o', long = "timers")]
    pub timers: bool,

    /// Show the owning processes (PID/Program name).
    #[arg(short = 'p', long = "program", visible_alias = "programs")]
    pub program: bool,

    /// Wide output; accepted for netstat compatibility: nothing is truncated.
    #[arg(short = 'W', long = "wide")]
    pub wide: bool,

    /// Show the FTP sessions alone, grouped, each explained: who is client
    /// and server, who opened each data connection, the mode, and what a
    /// firewall on each side must allow. With --format json, jsonl or csv:
    /// only the sockets of FTP sessions.
    #[arg(long = "ftp")]
    pub ftp: bool,

    /// Treat PORT as an FTP control port, beside 21 and 990 (repeatable).
    #[arg(long = "ftp-port", value_name = "PORT")]
    pub ftp_port: Vec<u16>,

    /// Look into one network namespace: a name under /run/netns, a path to
    /// a namespace file (/proc/PID/ns/net, a bind mount), or a PID.
    #[arg(
        short = 'N',
        long = "netns",
        value_name = "NAME|PATH|PID",
        conflicts_with = "all_netns"
    )]
    pub netns: Option<String>,

    /// Look into every network namespace on the host (a NETNS column).
    #[arg(long = "all-netns")]
    pub all_netns: bool,

    /// Output format: a table, one JSON document, JSON Lines events, CSV,
    /// or Prometheus metrics (the text exposition format, for
    /// node_exporter's textfile collector).
    #[arg(long = "format", value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// A summary instead of the sockets, as ss -s gives: sockets by protocol
    /// and state, connections by direction and by local port class,
    /// listeners, FTP sessions by mode and side. With --format json, the
    /// same as one object. Counts every socket the filters let through,
    /// listeners included (as -a).
    #[arg(short = 's', long = "summary", conflicts_with_all = ["watch", "ftp"])]
    pub summary: bool,

    /// Serve Prometheus metrics over HTTP at ADDR:PORT/metrics, collecting
    /// on each scrape (owners cached between scrapes). Only :PORT: on
    /// loopback (127.0.0.1). Read-only: GET and HEAD /metrics, nothing else.
    #[arg(
        long = "serve",
        value_name = "[ADDR]:PORT",
        value_parser = parse_serve,
        conflicts_with_all = ["watch", "summary", "ftp"]
    )]
    pub serve: Option<SocketAddr>,

    /// With --format prometheus or --serve: how many service ports get
    /// series of their own in sockwho_connections (the ports with the most
    /// connections); the others count as service_port="other".
    #[arg(long = "metrics-ports", value_name = "N", default_value_t = 50)]
    pub metrics_ports: usize,

    /// Refresh continuously (netstat's -c): full screen on a terminal, a
    /// table per refresh or JSON Lines events when piped.
    #[arg(short = 'c', long = "watch", visible_alias = "continuous")]
    pub watch: bool,

    /// Seconds between refreshes in watch mode (fractions allowed).
    #[arg(long = "interval", value_name = "SECS", default_value_t = 1.0, value_parser = parse_interval)]
    pub interval: f64,

    /// Stop after N refreshes (watch mode).
    #[arg(long = "count", value_name = "N", value_parser = parse_count)]
    pub count: Option<u64>,

    /// Only these states: names (established, time-wait, listening...) or
    /// ss's groups (connected, synchronized, bucket, big, all); comma-separated.
    #[arg(long = "state", value_name = "STATE[,STATE]", value_parser = filter::parse_states)]
    pub state: Vec<u32>,

    /// Only this local port: a number, a range LO-HI, or a service name (repeatable).
    #[arg(long = "sport", value_name = "PORT")]
    pub sport: Vec<String>,

    /// Only this remote port (repeatable).
    #[arg(long = "dport", value_name = "PORT")]
    pub dport: Vec<String>,

    /// Only this port at either end (repeatable).
    #[arg(long = "port", value_name = "PORT")]
    pub port: Vec<String>,

    /// Only local addresses in this address or prefix (repeatable).
    #[arg(long = "src", value_name = "ADDR[/LEN]")]
    pub src: Vec<Prefix>,

    /// Only remote addresses in this address or prefix (repeatable).
    #[arg(long = "dst", value_name = "ADDR[/LEN]")]
    pub dst: Vec<Prefix>,

    /// Only sockets held by this process (repeatable).
    #[arg(long = "pid", value_name = "PID", value_parser = parse_pid)]
    pub pid: Vec<u32>,

    /// Only this direction: in, out, listen, unknown (repeatable).
    #[arg(long = "direction", value_name = "DIR", value_parser = filter::parse_direction)]
    pub direction: Vec<Direction>,

    /// Only sockets whose local port is of this class: well-known,
    /// registered, ephemeral (repeatable).
    #[arg(long = "class", value_name = "CLASS", value_parser = filter::parse_class)]
    pub class: Vec<PortClass>,

    /// Say on stderr what was read from the kernel.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// When to colour the table.
    #[arg(long = "color", value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Where to read sockets from: netlink (sock_diag), procfs (/proc/net),
    /// or auto (netlink, falling back to procfs).
    #[arg(long = "source", value_enum, default_value_t = SourceChoice::Auto)]
    pub source: SourceChoice,

    /// Print a shell completion script and exit.
    #[arg(long = "completions", value_enum, value_name = "SHELL")]
    pub completions: Option<Shell>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
    Jsonl,
    Csv,
    Prometheus,
}

/// `--serve [ADDR]:PORT`: an IP address (IPv6 in brackets) or `localhost`,
/// and a port; without an address, loopback. A name other than localhost is
/// refused rather than looked up: what a server listens on should not
/// depend on DNS.
fn parse_serve(text: &str) -> Result<SocketAddr, String> {
    let wrong =
        || format!("'{text}' is not ADDR:PORT or :PORT (e.g. :9823, 0.0.0.0:9823, [::1]:9823)");
    let (host, port) = text.rsplit_once(':').ok_or_else(wrong)?;
    let port: u16 = port.parse().map_err(|_| wrong())?;
    let addr = match host {
        "" | "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        _ => host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .parse()
            .map_err(|_| wrong())?,
    };
    Ok(SocketAddr::new(addr, port))
}

/// `--count N`: a positive whole number, said in sockwho's words.
fn parse_count(text: &str) -> Result<u64, String> {
    match text.parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a number of refreshes (1 or more)")),
    }
}

/// `--pid N`: a process ID.
fn parse_pid(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!("'{text}' is not a process ID (a number from 1)")),
    }
}

fn parse_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s.is_finite() && (0.01..=86400.0).contains(&s) => Ok(s),
        _ => Err(format!(
            "'{text}' is not a number of seconds between 0.01 and 86400"
        )),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

/// `--source`: where sockets may be read from (`model::Source` says where
/// they were).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceChoice {
    Auto,
    Netlink,
    Procfs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// The clap command, for the man page and completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Writes the completion script for `shell` to `out`.
pub fn write_completions(shell: Shell, out: &mut dyn std::io::Write) {
    let shell = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    clap_complete::generate(shell, &mut command(), "sockwho", out);
}

/// The man page's sections beside the options, as (heading, entries): an
/// entry is a term and its text, or a paragraph when the term is empty.
/// `tests/integration/manual.rs` renders them after clap's own sections.
pub const MAN_SECTIONS: &[(&str, &[(&str, &str)])] = &[
    (
        "ENVIRONMENT",
        &[
            (
                "NO_COLOR",
                "When set and not empty, no colour (unless --color always).",
            ),
            ("TERM", "When dumb, no colour (unless --color always)."),
            (
                "SOCKWHO_PROC_ROOT",
                "Read a saved /proc tree instead of /proc: its net/tcp, net/tcp6, net/udp, \
                 net/udp6 and sys/net/ipv4/ip_local_port_range and ip_local_reserved_ports. \
                 Nothing is read from the live kernel then (no netlink, no conntrack, no \
                 namespace is entered).",
            ),
            (
                "SOCKWHO_DIAG_FILE",
                "Read sockets from a raw sock_diag dump instead of the kernel: the file \
                 ss -D FILE writes (iproute2 replays it with TCPDIAG_FILE). As with ss, its \
                 sockets are TCP; unlike ss, every dump in the file is read, not only the \
                 first. Filters run in user space.",
            ),
            (
                "SOCKWHO_ETC_ROOT",
                "Read services and passwd under this directory instead of /etc.",
            ),
            (
                "SOCKWHO_RUN_ROOT",
                "Look for named namespaces under this directory's netns/ and docker/netns/ \
                 instead of /run.",
            ),
        ],
    ),
    (
        "EXIT STATUS",
        &[
            (
                "0",
                "Success, also when the reader of the output goes away (sockwho -an | head -1).",
            ),
            (
                "1",
                "The sockets could not be read or the output could not be written (netlink \
                 error, unreadable /proc, a full disk).",
            ),
            ("2", "Usage error: an unknown option or a bad value."),
        ],
    ),
    (
        "SEE ALSO",
        &[(
            "",
            "netstat(8), ss(8), lsof(8), conntrack(8), ip-netns(8), nft(8)",
        )],
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serve_takes_a_port_and_defaults_to_loopback() {
        let ok = |text: &str| parse_serve(text).map(|a| a.to_string());
        assert_eq!(ok(":9823").as_deref(), Ok("127.0.0.1:9823"));
        assert_eq!(ok("localhost:9823").as_deref(), Ok("127.0.0.1:9823"));
        assert_eq!(ok("0.0.0.0:9823").as_deref(), Ok("0.0.0.0:9823"));
        assert_eq!(ok("[::]:9823").as_deref(), Ok("[::]:9823"));
        assert_eq!(ok("[::1]:9823").as_deref(), Ok("[::1]:9823"));
        for bad in [
            "9823",
            ":",
            ":99999",
            "example.com:80",
            "1.2.3:80",
            "[::1:80",
        ] {
            assert!(parse_serve(bad).is_err(), "{bad}");
        }
    }
}
