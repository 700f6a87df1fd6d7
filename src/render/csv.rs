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
        let names = COLUMNS.iter().map(|c| c.replace('.', "_"));
        let first = time.map(|_| "time".to_string());
        csv.write_record(first.into_iter().chain(names))?;
    }
    for (part, row) in crate::view::shown(cfg, parts) {
        let socket = serde_json::to_value(socket_of(cfg, part, row)).map_err(io::Error::from)?;
        let fields = COLUMNS.iter().map(|path| field(lookup(&socket, path)));
        csv.write_record(time.map(str::to_string).into_iter().chain(fields))?;
    }
    csv.flush()
}
