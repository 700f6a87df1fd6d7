//! Every output on hostile input: namespaces of sockets, decoded from
//! sock_diag datagrams in the input and built from it (both ends of a
//! connection now and then, FTP's ports, conntrack flows and expectations
//! that name them), owned by processes whose names come from the input,
//! with service, user, host and namespace names from it too; classified
//! (`classify::classify`) and rendered in every format (`render::write`:
//! the table, numeric and named, JSON, JSON Lines, CSV, and `--ftp`).
//!
//! Besides "no panic": nothing a terminal acts on reaches the output
//! (`escape::hazards`); the table has one line a row and every cell is one
//! whitespace-free field; JSON and JSON Lines parse, with one socket a row
//! and the process names exact; CSV parses, with one record a row, the
//! header's width, and one owner per `;`; and the classifiers' sessions name
//! sockets that say they belong to them.

#![no_main]

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, LazyLock};

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use sockwho::classify::{self, Classified, Context};
use sockwho::cli::{Cli, Format};
use sockwho::collect::decode::decode_datagram;
use sockwho::collect::names::{Names, Services, Users};
use sockwho::config::{Config, Environment};
use sockwho::model::{
    Conntrack, ConntrackSource, Endpoint, Expectation, Flow, FlowStatus, NetnsId, PortRange, Proto,
    Snapshot, Socket, Source, Tuple, ct_tcp_state,
};
use sockwho::render::escape::hazards;
use sockwho::view::{Part, shown};
use sockwho_fuzz::{Result, Unstructured, hostile_string, processes, socket};

/// Each output once, its configuration resolved once.
static CONFIGS: LazyLock<Vec<(&'static str, Config)>> = LazyLock::new(|| {
    let config = |args: &[&str]| {
        let cli = Cli::parse_from(std::iter::once("sockwho").chain(args.iter().copied()));
        Config::new(&cli, &Environment::default(), |_| None).expect("a usable command line")
    };
    let every = ["-a", "-e", "-o", "-p", "--all-netns"];
    let with = |more: &[&'static str]| -> Vec<&'static str> {
        every.iter().chain(more).copied().collect()
    };
    vec![
        // names shown: services, users, and hosts (-r)
        ("table", config(&with(&["-r", "-W", "--color", "never"]))),
        ("table -n", config(&with(&["-n", "--color", "never"]))),
        ("json", config(&with(&["--format", "json"]))),
        ("jsonl", config(&with(&["--format", "jsonl"]))),
        ("csv", config(&with(&["--format", "csv"]))),
        ("ftp", config(&["--ftp", "--all-netns", "--color", "never"])),
        ("prometheus", config(&with(&["--format", "prometheus"]))),
        ("summary", config(&["-s", "--all-netns"])),
    ]
});

/// Reasons the pipeline gives when conntrack cannot be read: sockwho's own
/// words, not outside text.
const UNREADABLE: &[&str] = &[
    "conntrack is not readable without CAP_NET_ADMIN",
    "conntrack is not readable: ctnetlink: Protocol not supported; /proc/net/nf_conntrack: No such file or directory",
];

fn reversed(t: Tuple) -> Tuple {
    Tuple {
        src: t.dst,
        dst: t.src,
        proto: t.proto,
    }
}

fn ip_proto(p: Proto) -> u8 {
    match p {
        Proto::Tcp => 6,
        Proto::Udp => 17,
    }
}

/// conntrack's view of some of the sockets: flows in one direction or the
/// other, some expected by an earlier one, with helpers; expectations of
/// connections to their ports.
fn conntrack(u: &mut Unstructured<'_>, sockets: &[Socket]) -> Result<Conntrack> {
    let mut flows: Vec<Flow> = Vec::new();
    let mut expectations = Vec::new();
    // some sockets' addresses are this host's: flows between the others
    // cross it
    let mut local = Vec::new();
    for s in sockets {
        if u.arbitrary()? {
            local.push(s.local.addr);
        }
    }
    for s in sockets {
        let Some(remote) = s.remote else { continue };
        if u.ratio(1, 3)? {
            continue;
        }
        let mut orig = Tuple {
            src: s.local,
            dst: remote,
            proto: ip_proto(s.proto),
        };
        if u.arbitrary()? {
            orig = reversed(orig);
        }
        let helper = match u.int_in_range(0..=3u8)? {
            0 => Some("ftp".to_string()),
            1 => Some(hostile_string(u, 8)?),
            _ => None,
        };
        let master = if !flows.is_empty() && u.arbitrary()? {
            Some(u.choose(&flows)?.orig)
        } else {
            None
        };
        let state = u.int_in_range(0..=11u8)?;
        flows.push(Flow {
            orig,
            reply: reversed(orig),
            expected: master.is_some() || u.ratio(1, 4)?,
            helper,
            master,
            status: FlowStatus {
                state: ct_tcp_state(Some(state), None),
                unreplied: u.arbitrary()?,
                assured: u.arbitrary()?,
                mark: u.arbitrary()?,
                zone: u.arbitrary()?,
                timeout: u.arbitrary()?,
            },
        });
        if u.ratio(1, 4)? {
            expectations.push(Expectation {
                tuple: Tuple {
                    src: Endpoint::new(remote.addr, 0),
                    dst: s.local,
                    proto: ip_proto(s.proto),
                },
                master: Some(orig),
                helper: Some("ftp".to_string()),
                nat: u
                    .arbitrary::<bool>()?
                    .then(|| Endpoint::new(remote.addr, remote.port)),
                timeout: u.arbitrary()?,
            });
        }
    }
    // and whatever a ctnetlink datagram in the input holds
    let len = u.int_in_range(0..=512)?.min(u.len());
    let bytes = u.bytes(len)?;
    let _ = sockwho::collect::conntrack::decode_flows(bytes, &mut flows);
    Ok(Conntrack {
        flows,
        expectations,
        source: if u.arbitrary()? {
            ConntrackSource::Netlink
        } else {
            ConntrackSource::Procfs
        },
        local,
    })
}

/// One namespace's sockets, classified as the pipeline does.
fn part(u: &mut Unstructured<'_>, names: &[Arc<str>], inode: u64) -> Result<Part> {
    let (a, b) = (u.arbitrary::<u16>()?, u.arbitrary::<u16>()?);
    let mut port_range = PortRange {
        low: a.min(b),
        high: a.max(b),
        reserved: Vec::new(),
    };
    for _ in 0..u.int_in_range(0..=2u8)? {
        let (a, b) = (u.arbitrary::<u16>()?, u.arbitrary::<u16>()?);
        port_range.reserved.push((a.min(b), a.max(b)));
    }
    let source = if u.arbitrary()? {
        Source::Netlink
    } else {
        Source::Procfs
    };
    // sockets as the kernel's answer gives them...
    let mut sockets = Vec::new();
    let proto = if u.arbitrary()? {
        Proto::Tcp
    } else {
        Proto::Udp
    };
    let len = u.int_in_range(0..=1024)?.min(u.len());
    let datagram = u.bytes(len)?;
    let _ = decode_datagram(datagram, proto, &mut sockets);
    // ...and built: FTP's ports, both ends of a connection, shared owners
    let mut ports = vec![20, 21, 990, port_range.low, port_range.high];
    let mut addrs: Vec<IpAddr> = Vec::new();
    for _ in 0..u.int_in_range(0..=12u8)? {
        let s = if !sockets.is_empty() && u.ratio(1, 3)? {
            let peer: &Socket = u.choose(&sockets)?;
            let mut s = peer.clone();
            if let Some(r) = peer.remote {
                s.remote = Some(peer.local);
                s.local = r;
            }
            s.inode = u.arbitrary()?;
            s.cookie = u.arbitrary()?;
            s
        } else {
            socket(u, &addrs, &ports)?
        };
        ports.push(s.local.port);
        addrs.push(s.local.addr);
        sockets.push(s);
    }
    for s in &mut sockets {
        s.processes = processes(u, names)?;
    }
    let conntrack = match u.int_in_range(0..=3u8)? {
        0 => None,
        1 => Some(Err(u.choose(UNREADABLE)?.to_string())),
        _ => Some(Ok(conntrack(u, &sockets)?)),
    };
    let ftp_ports: Vec<u16> = (0..u.int_in_range(0..=2u8)?)
        .map(|_| u.arbitrary())
        .collect::<Result<_>>()?;
    // a filter expression's selection, as the collector marks it
    let selected = if u.ratio(1, 4)? {
        Some(
            (0..sockets.len())
                .map(|_| u.arbitrary())
                .collect::<Result<Vec<bool>>>()?,
        )
    } else {
        None
    };
    let snapshot = Snapshot {
        sockets,
        port_range,
        source,
        selected,
        dumped: None,
    };
    let Classified {
        labels,
        sessions,
        crossings,
    } = classify::classify(
        &snapshot,
        Context {
            conntrack: conntrack.as_ref().and_then(|c| c.as_ref().ok()),
            ftp_ports: &ftp_ports,
            memory: None,
        },
    );
    let netns = if u.arbitrary()? {
        Some(NetnsId {
            // a file name under /run/netns: never empty
            name: if u.arbitrary()? {
                Some(hostile_string(u, 16)?).filter(|n| !n.is_empty())
            } else {
                None
            },
            inode,
            pid: u.arbitrary()?,
        })
    } else {
        None
    };
    let Snapshot {
        sockets,
        port_range,
        source,
        selected,
        ..
    } = snapshot;
    Ok(Part {
        inode,
        netns,
        port_range,
        source,
        sockets,
        labels,
        sessions,
        crossings,
        conntrack,
        selected,
    })
}

/// Service, user and host names for the ports, uids and addresses in use,
/// from the input, read as sockwho reads /etc/services and /etc/passwd.
fn names(u: &mut Unstructured<'_>, parts: &[Part]) -> Result<Names> {
    let sockets = || parts.iter().flat_map(|p| &p.sockets);
    let (mut services, mut passwd) = (String::new(), String::new());
    let mut hosts = HashMap::new();
    for s in sockets() {
        if u.arbitrary()? {
            let proto = s.proto.name();
            let name = hostile_string(u, 12)?;
            services.push_str(&format!("{name} {}/{proto}\n", s.local.port));
        }
        if u.arbitrary()? {
            // an empty name (fuzz/seeds/render/empty-user-name) is no name
            let name = hostile_string(u, 12)?;
            passwd.push_str(&format!("{name}:x:{}:0::/:/bin/sh\n", s.uid));
        }
        for ep in std::iter::once(s.local).chain(s.remote) {
            if u.ratio(1, 3)? {
                hosts.insert(ep.addr, hostile_string(u, 20)?);
            }
        }
    }
    Ok(Names {
        services: Some(Services::parse(services.as_bytes())),
        users: Some(Users::parse(&passwd)),
        looked_up: hosts.keys().copied().collect(),
        hosts,
    })
}

fn shown_text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// The table: a title, a header, then one line a row, each of as many
/// whitespace-separated fields as there are columns (the timer, netstat's
/// `off (0.00/0/0)`, is two; an unconnected UDP socket's State is empty, as
/// netstat leaves it).
fn check_table(cfg: &Config, parts: &[Part], out: &[u8]) {
    let text = std::str::from_utf8(out).expect("UTF-8, said hazards()");
    let rows = shown(cfg, parts).count();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 + rows, "one line a row:\n{text}");
    // netstat's six, then sockwho's one field
    let columns = 7
        + usize::from(cfg.names_namespaces())
        + 2 * usize::from(cfg.extend)
        + usize::from(cfg.program)
        + 2 * usize::from(cfg.timers);
    for (l, (_, row)) in lines[2..].iter().zip(shown(cfg, parts)) {
        let s = row.socket;
        // a closed socket (watch mode) says CLOSED instead
        let unconnected = s.proto == sockwho::model::Proto::Udp
            && s.state == sockwho::model::State::Close
            && !s.closed;
        assert_eq!(
            l.split_whitespace().count(),
            columns - usize::from(unconnected),
            "a cell that is not one field:\n{l}"
        );
    }
}

/// The text exposition: every line a comment or a sample of sockwho's, so
/// no outside text ended a label value or a line.
fn check_exposition(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("UTF-8, said hazards()");
    for line in text.lines() {
        assert!(
            line.starts_with("# ") || line.starts_with("sockwho_"),
            "a line that is no sample: {line:?}"
        );
    }
}

fn check_json(cfg: &Config, parts: &[Part], out: &[u8]) {
    let doc: serde_json::Value = serde_json::from_slice(out)
        .unwrap_or_else(|e| panic!("JSON that does not parse: {e}\n{}", shown_text(out)));
    let sockets = doc["sockets"].as_array().expect("a sockets array");
    let rows: Vec<_> = shown(cfg, parts).collect();
    assert_eq!(sockets.len(), rows.len());
    for (json, (_, row)) in sockets.iter().zip(&rows) {
        let names: Vec<&str> = json["processes"]
            .as_array()
            .expect("processes with -p")
            .iter()
            .map(|p| p["name"].as_str().expect("a name"))
            .collect();
        let want: Vec<&str> = row.socket.processes.iter().map(|p| &*p.name).collect();
        assert_eq!(names, want, "process names kept exact");
    }
}

fn check_jsonl(out: &[u8]) {
    let text = std::str::from_utf8(out).expect("UTF-8, said hazards()");
    for line in text.lines() {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
            panic!("a JSON line that does not parse: {e}\n{line}");
        }
    }
}

fn check_csv(cfg: &Config, parts: &[Part], out: &[u8]) {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(out);
    let width = reader.headers().expect("a header").len();
    let rows: Vec<_> = shown(cfg, parts).collect();
    let mut n = 0;
    for (record, (_, row)) in reader.records().zip(&rows) {
        let record = record.unwrap_or_else(|e| panic!("CSV: {e}\n{}", shown_text(out)));
        assert_eq!(record.len(), width);
        let owners = &record[width - 1];
        let want = row.socket.processes.len();
        let got = if owners.is_empty() {
            0
        } else {
            owners.split(';').count()
        };
        assert_eq!(got, want, "one owner per ';': {owners:?}");
        n += 1;
    }
    assert_eq!(n, rows.len(), "one record a row:\n{}", shown_text(out));
}

/// Invariants of the classifiers' output, on any sockets.
fn check_classified(p: &Part) {
    assert_eq!(p.labels.len(), p.sockets.len());
    for session in &p.sessions {
        for &i in &session.members {
            let label = p.labels.get(i).and_then(|l| l.ftp.as_ref());
            assert!(
                label.is_some(),
                "session {} names socket {i}, which has no FTP label",
                session.id
            );
        }
    }
}

fn render(data: &[u8]) -> Result<()> {
    let mut u = Unstructured::new(data);
    // names shared by sockets, as one process owns several; FTP daemons'
    // among them, whose listeners are control ports
    let mut shared: Vec<Arc<str>> = vec!["vsftpd".into(), "pyftpdlib".into()];
    for _ in 0..u.int_in_range(0..=3u8)? {
        shared.push(hostile_string(&mut u, 16)?.into());
    }
    let mut parts = Vec::new();
    for inode in 0..u.int_in_range(1..=2u64)? {
        parts.push(part(&mut u, &shared, inode)?);
    }
    let names = names(&mut u, &parts)?;
    for p in &parts {
        check_classified(p);
    }
    for (what, cfg) in CONFIGS.iter() {
        let mut out = Vec::new();
        sockwho::render::write(cfg, &parts, &names, &mut out).expect("a Vec takes every byte");
        let bad = hazards(&out);
        assert!(
            bad.is_empty(),
            "{what}: {bad:?} reached the output:\n{}",
            shown_text(&out)
        );
        match (cfg.ftp_view || cfg.summary, cfg.format) {
            (true, _) => {}
            (false, Format::Table) => check_table(cfg, &parts, &out),
            (false, Format::Json) => check_json(cfg, &parts, &out),
            (false, Format::Jsonl) => check_jsonl(&out),
            (false, Format::Csv) => check_csv(cfg, &parts, &out),
            (false, Format::Prometheus) => check_exposition(&out),
        }
    }
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = render(data);
});
