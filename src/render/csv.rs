//! `--format csv`: a header row, then one row per socket with the fields of
//! the JSON output flattened (`local.port` becomes `local_port`), quoted per
//! RFC 4180. Lists are joined with `;`, processes as `pid/name`; a null is an
//! empty field. Outside text is escaped as [`escape`](super::escape) says
//! (quoting keeps a field whole, not a terminal safe), and a `;` in a process
//! name, which would read as a second owner, too.

use std::io::{self, Write};

use serde_json::Value;

use super::escape::Rules;
use crate::config::Config;
use crate::render::json::socket_of;
use crate::view::Part;

/// The columns, as paths into a JSON socket.
pub const COLUMNS: &[&str] = &[
    "netns.name",
    "netns.inode",
    "netns.pid",
    "proto",
    "family",
    "state",
    "recv_q",
    "send_q",
    "backlog",
    "local.addr",
    "local.port",
    "local.class",
    "local.listening",
    "remote.addr",
    "remote.port",
    "remote.class",
    "direction",
    "direction_confidence",
    "direction_evidence",
    "uid",
    "inode",
    "cookie",
    "timer.kind",
    "timer.expires_ms",
    "timer.retransmits",
    "ftp.session",
    "ftp.role",
    "ftp.side",
    "ftp.mode",
    "ftp.confidence",
    "ftp.evidence",
    "processes",
];

/// With `-i`, after [`COLUMNS`]: `tcp_info`'s fields (`tcp_info_rtt_us`...),
/// empty where the kernel sent none.
pub const TCP_INFO_COLUMNS: &[&str] = &[
    "tcp_info.rtt_us",
    "tcp_info.rttvar_us",
    "tcp_info.min_rtt_us",
    "tcp_info.rto_us",
    "tcp_info.snd_cwnd",
    "tcp_info.snd_ssthresh",
    "tcp_info.retransmits",
    "tcp_info.retrans",
    "tcp_info.total_retrans",
    "tcp_info.bytes_acked",
    "tcp_info.bytes_received",
    "tcp_info.bytes_retrans",
    "tcp_info.delivery_rate_bps",
    "tcp_info.pacing_rate_bps",
    "tcp_info.busy_time_us",
    "tcp_info.rwnd_limited_us",
    "tcp_info.sndbuf_limited_us",
];

/// The columns the options ask for: `tcp_info`'s only with `-i`.
pub fn columns(cfg: &Config) -> impl Iterator<Item = &'static str> + Clone {
    let info: &[&str] = if cfg.tcp_info { TCP_INFO_COLUMNS } else { &[] };
    COLUMNS.iter().chain(info).copied()
}

/// Text in a field: hazards escaped, whitespace kept (the field is quoted).
const FIELD: Rules = Rules {
    whitespace: false,
    separators: &[],
};

/// One field: a scalar as it is, a list joined with `;`, a process as `pid/name`.
fn field(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => FIELD.apply(s).into_owned(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::Object(o) => match o.get("name") {
                    Some(Value::String(name)) => {
                        format!("{}/{}", field(o.get("pid")), FIELD.with(&[';']).apply(name))
                    }
                    name => format!("{}/{}", field(o.get("pid")), field(name)),
                },
                other => field(Some(other)),
            })
            .collect::<Vec<_>>()
            .join(";"),
        Some(other) => other.to_string(),
    }
}

fn lookup<'a>(socket: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(socket, |v, key| v.get(key))
}

pub fn write(cfg: &Config, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
    write_at(cfg, parts, None, !cfg.no_header, out)
}

/// The rows of one refresh; in watch mode with a `time` column first, and
/// the header only before the first refresh.
pub fn write_at(
    cfg: &Config,
    parts: &[Part],
    time: Option<&str>,
    header: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut csv = csv::Writer::from_writer(out);
    if header {
        let names = columns(cfg).map(|c| c.replace('.', "_"));
        let first = time.map(|_| "time".to_string());
        csv.write_record(first.into_iter().chain(names))?;
    }
    for (part, row) in crate::view::shown(cfg, parts) {
        let socket = serde_json::to_value(socket_of(cfg, part, row)).map_err(io::Error::from)?;
        let fields = columns(cfg).map(|path| field(lookup(&socket, path)));
        csv.write_record(time.map(str::to_string).into_iter().chain(fields))?;
    }
    csv.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Socket, TcpInfo};
    use clap::Parser;

    /// The header and the rows.
    fn csv_of(args: &[&str], sockets: Vec<Socket>) -> (csv::StringRecord, Vec<csv::StringRecord>) {
        let cli = crate::cli::Cli::parse_from(
            ["sockwho", "--format", "csv"]
                .into_iter()
                .chain(args.iter().copied()),
        );
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let mut out = Vec::new();
        write(&cfg, &[Part::classified(sockets, None)], &mut out).unwrap();
        let mut reader = csv::Reader::from_reader(&out[..]);
        let header = reader.headers().unwrap().clone();
        (header, reader.into_records().map(Result::unwrap).collect())
    }

    /// tcp_info's columns come with -i only, after the others, empty
    /// where the kernel sent nothing (UDP here) or an old kernel lacks one.
    #[test]
    fn tcp_info_columns_only_with_i() {
        let mut tcp = Socket::tcp("10.0.0.1:5000", Some("10.0.0.2:40000")).cookie(1);
        tcp.tcp_info = Some(Box::new(TcpInfo {
            rtt_us: 31,
            delivery_rate_bps: Some(8000),
            ..Default::default()
        }));
        let udp = Socket::udp("10.0.0.1:53", Some("10.0.0.3:5353")).cookie(2);
        let sockets = vec![tcp, udp];
        let (header, plain) = csv_of(&["-an"], sockets.clone());
        assert_eq!(header.len(), COLUMNS.len());
        assert!(!header.iter().any(|h| h.starts_with("tcp_info")));
        let (header, info) = csv_of(&["-ani"], sockets);
        assert_eq!(header.len(), COLUMNS.len() + TCP_INFO_COLUMNS.len());
        let col = |name: &str| header.iter().position(|h| h == name).unwrap();
        assert_eq!(col("tcp_info_rtt_us"), COLUMNS.len());
        for name in ["tcp_info_delivery_rate_bps", "tcp_info_sndbuf_limited_us"] {
            col(name);
        }
        let (tcp, udp) = (&info[0], &info[1]);
        assert_eq!(&tcp[col("proto")], "tcp");
        assert_eq!(&tcp[col("tcp_info_rtt_us")], "31");
        assert_eq!(&tcp[col("tcp_info_delivery_rate_bps")], "8000");
        assert_eq!(
            &tcp[col("tcp_info_bytes_acked")],
            "",
            "not sent: empty, not 0"
        );
        assert_eq!(&udp[col("tcp_info_rtt_us")], "");
        // the other columns are as without -i
        assert_eq!(
            &tcp.iter().collect::<Vec<_>>()[..COLUMNS.len()],
            &plain[0].iter().collect::<Vec<_>>()[..]
        );
    }
}
