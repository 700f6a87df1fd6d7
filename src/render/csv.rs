//! `--format csv`: a header row, then one row per socket with the fields of
//! the JSON output flattened (`local.port` becomes `local_port`), quoted per
//! RFC 4180. Lists are joined with `;`, processes as `pid/name`; a null is an
//! empty field. Outside text is escaped as [`escape`](super::escape) says
//! (quoting keeps a field whole, not a terminal safe), and a `;` in a process
//! name, which would read as a second owner, too.

use std::io::{self, Write};
use std::net::IpAddr;

use super::digits::{push_decimal, push_ip};
use super::escape::Rules;
use crate::config::Config;
use crate::render::json::{JsonSocket, socket_of};
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

/// One row being written: each field is followed by a `,`, and the last
/// one's becomes the row's end.
///
/// Written by hand rather than by the `csv` crate's writer (whose output
/// this is byte for byte, and which the tests read it back with): its
/// state machine per field and the copies through its buffer were an
/// eighth of `--format csv` at 200,000 sockets, which put CSV above 1.2x
/// the table. Only outside text can need quotes: everything else is
/// sockwho's own vocabulary, numbers and addresses.
struct Line {
    /// The rows written so far, up to 64 KiB.
    text: String,
    /// Scratch for the owners' field, which is quoted whole.
    owners: String,
}

impl Line {
    fn end_field(&mut self) {
        self.text.push(',');
    }

    /// A name of sockwho's own vocabulary (a state, a class, evidence): no
    /// hazard to escape, no quote needed; nothing for none.
    fn text(&mut self, s: Option<&'static str>) {
        self.text.push_str(s.unwrap_or_default());
        self.end_field();
    }

    /// Text from outside (a namespace's name): hazards escaped, quoted
    /// where it holds a `,` or a `"`.
    fn outside(&mut self, s: Option<&str>) {
        if let Some(s) = s {
            quoted(&FIELD.apply(s), &mut self.text);
        }
        self.end_field();
    }

    /// A number, an address or a bool as JSON writes it; nothing for none.
    fn num(&mut self, v: Option<impl Cell>) {
        if let Some(v) = v {
            v.push(&mut self.text);
        }
        self.end_field();
    }

    /// A list of names, joined with `;`.
    fn list(&mut self, items: impl Iterator<Item = &'static str>) {
        for (i, item) in items.enumerate() {
            if i > 0 {
                self.text.push(';');
            }
            self.text.push_str(item);
        }
        self.end_field();
    }

    /// The row's end: its last `,` becomes a newline.
    fn end(&mut self) {
        self.text.pop();
        self.text.push('\n');
    }
}

/// `field` as RFC 4180 (and the `csv` crate) write it: in quotes, its
/// quotes doubled, where it holds a `,`, a `"`, a CR or a LF.
fn quoted(field: &str, line: &mut String) {
    if !field
        .bytes()
        .any(|b| matches!(b, b',' | b'"' | b'\r' | b'\n'))
    {
        line.push_str(field);
        return;
    }
    line.push('"');
    for c in field.chars() {
        if c == '"' {
            line.push('"');
        }
        line.push(c);
    }
    line.push('"');
}

/// A value of a CSV cell, written as JSON writes it.
trait Cell {
    fn push(self, line: &mut String);
}

macro_rules! unsigned_cells {
    ($($t:ty),*) => {$(
        impl Cell for $t {
            fn push(self, line: &mut String) {
                push_decimal(self.into(), line);
            }
        }
    )*};
}
unsigned_cells!(u8, u16, u32, u64);

impl Cell for bool {
    fn push(self, line: &mut String) {
        line.push_str(if self { "true" } else { "false" });
    }
}

impl Cell for IpAddr {
    fn push(self, line: &mut String) {
        push_ip(self, line);
    }
}

/// One socket's fields, in the order of [`columns`], from the JSON shape
/// itself: a scalar as JSON has it, a list joined with `;`, a process as
/// `pid/name`, a null as nothing. No `serde_json::Value` is built (one a
/// socket made CSV cost 4x the table at 200,000 sockets).
fn write_socket(line: &mut Line, s: &JsonSocket<'_>, info: bool) {
    let netns = s.netns.as_ref();
    line.outside(netns.and_then(|n| n.name).map(|n| n.0));
    line.num(netns.map(|n| n.inode));
    line.num(netns.and_then(|n| n.pid));
    for name in [s.proto, s.family, s.state] {
        line.text(Some(name));
    }
    line.num(Some(s.recv_q));
    line.num(Some(s.send_q));
    line.num(s.backlog);
    line.num(Some(s.local.addr));
    line.num(s.local.port);
    line.text(s.local.class.map(|c| c.name()));
    line.num(s.local.listening);
    let remote = s.remote.as_ref();
    line.num(remote.map(|r| r.addr));
    line.num(remote.and_then(|r| r.port));
    line.text(remote.and_then(|r| r.class).map(|c| c.name()));
    line.text(Some(s.direction.name()));
    line.text(s.direction_confidence.map(|c| c.name()));
    line.list(s.direction_evidence.iter().map(|e| e.name()));
    line.num(s.uid);
    line.num(Some(s.inode));
    line.num(s.cookie);
    line.text(Some(s.timer.kind));
    line.num(Some(s.timer.expires_ms));
    line.num(Some(s.timer.retransmits));
    let ftp = s.ftp.as_ref();
    line.num(ftp.map(|f| f.session));
    line.text(ftp.map(|f| f.role.name()));
    line.text(ftp.map(|f| f.side.name()));
    line.text(ftp.and_then(|f| f.mode).map(|m| m.name()));
    line.text(ftp.map(|f| f.confidence.name()));
    let evidence = ftp.map_or(&[][..], |f| f.evidence);
    line.list(evidence.iter().map(|e| e.name()));
    // `pid/name;pid/name`, quoted as one field where a name needs it
    let owners = &mut line.owners;
    owners.clear();
    for (i, p) in s.processes.iter().flatten().enumerate() {
        if i > 0 {
            owners.push(';');
        }
        push_decimal(p.pid.into(), owners);
        owners.push('/');
        owners.push_str(&FIELD.with(&[';']).apply(p.name.0));
    }
    quoted(&line.owners, &mut line.text);
    line.end_field();
    if info {
        let t = s.tcp_info.as_ref().and_then(Option::as_ref);
        line.num(t.map(|t| t.rtt_us));
        line.num(t.map(|t| t.rttvar_us));
        line.num(t.and_then(|t| t.min_rtt_us));
        line.num(t.map(|t| t.rto_us));
        line.num(t.map(|t| t.snd_cwnd));
        line.num(t.map(|t| t.snd_ssthresh));
        line.num(t.map(|t| t.retransmits));
        line.num(t.map(|t| t.retrans));
        line.num(t.map(|t| t.total_retrans));
        line.num(t.and_then(|t| t.bytes_acked));
        line.num(t.and_then(|t| t.bytes_received));
        line.num(t.and_then(|t| t.bytes_retrans));
        line.num(t.and_then(|t| t.delivery_rate_bps));
        line.num(t.and_then(|t| t.pacing_rate_bps));
        line.num(t.and_then(|t| t.busy_time_us));
        line.num(t.and_then(|t| t.rwnd_limited_us));
        line.num(t.and_then(|t| t.sndbuf_limited_us));
    }
    line.end();
}

pub fn write(cfg: &Config, parts: &[Part], out: &mut dyn Write) -> io::Result<()> {
    write_at(cfg, parts, None, !cfg.no_header, out)
}

/// The rows of one refresh; in watch mode with a `time` column first, and
/// the header only before the first refresh. Rows reach `out` 64 KiB at a
/// time.
pub fn write_at(
    cfg: &Config,
    parts: &[Part],
    time: Option<&str>,
    header: bool,
    out: &mut dyn Write,
) -> io::Result<()> {
    let mut line = Line {
        text: String::with_capacity(64 * 1024),
        owners: String::new(),
    };
    if header {
        if time.is_some() {
            line.text(Some("time"));
        }
        for name in columns(cfg) {
            line.text.push_str(&name.replace('.', "_"));
            line.end_field();
        }
        line.end();
    }
    for (part, row) in crate::view::shown(cfg, parts) {
        if let Some(time) = time {
            quoted(time, &mut line.text);
            line.end_field();
        }
        write_socket(&mut line, &socket_of(cfg, part, row), cfg.tcp_info);
        if line.text.len() >= 60 * 1024 {
            out.write_all(line.text.as_bytes())?;
            line.text.clear();
        }
    }
    out.write_all(line.text.as_bytes())?;
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Socket, TcpInfo};
    use clap::Parser;

    use serde_json::Value;

    /// The first form of a row, kept as the reference: the socket's JSON
    /// as a `Value`, each column looked up by its path.
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

    fn reference(cfg: &Config, parts: &[Part]) -> Vec<Vec<String>> {
        crate::view::shown(cfg, parts)
            .map(|(part, row)| {
                let socket = serde_json::to_value(socket_of(cfg, part, row)).unwrap();
                columns(cfg)
                    .map(|path| field(path.split('.').try_fold(&socket, |v, k| v.get(k))))
                    .collect()
            })
            .collect()
    }

    /// Fields are quoted as the `csv` crate's writer quotes them, byte for
    /// byte.
    #[test]
    fn fields_are_quoted_as_the_csv_crate_quotes_them() {
        for field in [
            "x",
            "a,b",
            "say \"hi\"",
            "\"",
            ",",
            "a\r\nb",
            "x;y/z",
            "ümlaut, too",
        ] {
            let mut ours = String::new();
            quoted(field, &mut ours);
            ours.push(',');
            quoted("tail", &mut ours);
            ours.push('\n');
            let mut theirs = csv::Writer::from_writer(Vec::new());
            theirs.write_record([field, "tail"]).unwrap();
            let theirs = String::from_utf8(theirs.into_inner().unwrap()).unwrap();
            assert_eq!(ours, theirs, "{field:?}");
        }
    }

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

    /// The rows are those of the first form, field for field, in every
    /// option that changes them: a namespace's name, owners with a `;`
    /// and a control byte in their names, FTP labels, tcp_info, closed and
    /// refused sockets, IPv6, UDP, listeners.
    #[test]
    fn rows_are_the_json_shape_flattened() {
        let mut owned = Socket::tcp("10.0.0.1:21", Some("10.0.0.2:40000"))
            .cookie(1)
            .inode(77)
            .uid(1000);
        owned.processes = vec![
            crate::model::Process::new(42, "vsftpd;7/evil"),
            crate::model::Process::new(43, "a\x1b[2Jb,c"),
        ];
        owned.tcp_info = Some(Box::new(TcpInfo {
            rtt_us: 31,
            min_rtt_us: Some(5),
            bytes_acked: Some(9),
            ..Default::default()
        }));
        let mut closed = Socket::tcp("10.0.0.1:40001", Some("10.0.0.9:0")).cookie(3);
        closed.closed = true;
        closed.state = crate::model::State::Close;
        let sockets = vec![
            Socket::tcp("0.0.0.0:21", None),
            owned,
            Socket::tcp("10.0.0.1:20", Some("10.0.0.2:40001")).state(crate::model::State::SynSent),
            Socket::tcp("[::1]:22", Some("[::ffff:10.0.0.3]:5000")).cookie(2),
            Socket::udp("10.0.0.1:53", Some("10.0.0.3:5353")),
            closed,
        ];
        let netns = crate::model::NetnsId {
            name: Some("blue\u{202e},x".to_string()),
            inode: 4026532296,
            pid: Some(9),
        };
        for args in [
            &["-an"][..],
            &["-anp"],
            &["-anpi"],
            &["-anpi", "--all-netns"],
        ] {
            let cli = crate::cli::Cli::parse_from(
                ["sockwho", "--format", "csv"]
                    .into_iter()
                    .chain(args.iter().copied()),
            );
            let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
            let parts = [Part::classified(sockets.clone(), Some(netns.clone()))];
            let mut out = Vec::new();
            write(&cfg, &parts, &mut out).unwrap();
            let mut reader = csv::Reader::from_reader(&out[..]);
            let rows: Vec<Vec<String>> = reader
                .records()
                .map(|r| r.unwrap().iter().map(str::to_string).collect())
                .collect();
            assert_eq!(rows, reference(&cfg, &parts), "{args:?}");
            assert_eq!(rows.len(), sockets.len(), "{args:?}");
        }
        // and the labels were there to compare: FTP and a direction
        let cli = crate::cli::Cli::parse_from(["sockwho", "--format", "csv", "-anp"]);
        let cfg = Config::new(&cli, &Default::default(), |_| None).unwrap();
        let rows = reference(&cfg, &[Part::classified(sockets, None)]);
        let col = |name: &str| COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(rows[1][col("ftp.role")], "control", "{rows:?}");
        assert_eq!(
            rows[1][col("processes")],
            "42/vsftpd\\x3b7/evil;43/a\\x1b[2Jb,c"
        );
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
