//! Real sockets in a private namespace, and every label sockwho puts on them.

use std::net::{TcpListener, TcpStream, UdpSocket};

use crate::harness::{Netns, can_use_netns, find, sockets};

struct Fixture {
    _keep: Vec<Box<dyn std::any::Any + Send>>,
    client_port: u16,
    client6_port: u16,
    mapped_port: u16,
    ssh_client_port: u16,
    udp_client_port: u16,
}

/// Opens the sockets every check below looks at.
fn open_sockets(ns: &Netns) -> Fixture {
    ns.enter(|| {
        let l4 = TcpListener::bind("127.0.0.1:2222").unwrap();
        let c4 = TcpStream::connect("127.0.0.1:2222").unwrap();
        let (a4, _) = l4.accept().unwrap();
        let l6 = TcpListener::bind("[::1]:8080").unwrap();
        let c6 = TcpStream::connect("[::1]:8080").unwrap();
        let (a6, _) = l6.accept().unwrap();
        // dual-stack: an IPv4 client of an IPv6 wildcard listener
        let ld = TcpListener::bind("[::]:9090").unwrap();
        let cm = TcpStream::connect("127.0.0.1:9090").unwrap();
        let (am, _) = ld.accept().unwrap();
        // a listener on a well-known port (root only)
        let l22 = TcpListener::bind("0.0.0.0:22").unwrap();
        let c22 = TcpStream::connect("127.0.0.1:22").unwrap();
        let (a22, _) = l22.accept().unwrap();
        let us = UdpSocket::bind("0.0.0.0:5353").unwrap();
        let uc = UdpSocket::bind("127.0.0.1:0").unwrap();
        uc.connect("127.0.0.1:5353").unwrap();
        let port = |s: &TcpStream| s.local_addr().unwrap().port();
        Fixture {
            client_port: port(&c4),
            client6_port: port(&c6),
            mapped_port: port(&cm),
            ssh_client_port: port(&c22),
            udp_client_port: uc.local_addr().unwrap().port(),
            _keep: vec![
                Box::new((l4, c4, a4, l6, c6, a6)),
                Box::new((ld, cm, am, l22, c22, a22)),
                Box::new((us, uc)),
            ],
        }
    })
}

#[test]
fn json_labels_on_real_sockets() {
    if !can_use_netns("json_labels_on_real_sockets") {
        return;
    }
    let ns = Netns::new("labels");
    let f = open_sockets(&ns);
    let doc = ns.json(&["-anp"]);
    assert_eq!(doc["schema"], 1);
    assert_eq!(doc["port_range"], serde_json::json!([32768, 60999]));
    assert_eq!(doc["source"], "netlink");
    let me = std::process::id();

    let l = find(&doc, "tcp", 2222, None);
    assert_eq!(l["state"], "LISTEN");
    assert_eq!(l["family"], "inet");
    assert_eq!(l["local"]["class"], "registered");
    assert_eq!(l["local"]["listening"], true);
    assert_eq!(l["direction"], "listen");
    assert_eq!(l["direction_confidence"], "high");
    assert!(
        l["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["pid"] == me)
    );
    assert!(l["inode"].as_u64().unwrap() > 0);

    // the server's end of a loopback connection: inbound, from the listener
    let s = find(&doc, "tcp", 2222, Some(f.client_port));
    assert_eq!(s["state"], "ESTABLISHED");
    assert_eq!(s["direction"], "inbound");
    assert_eq!(s["direction_confidence"], "high");
    assert_eq!(s["direction_evidence"][0], "listener");
    assert_eq!(s["local"]["listening"], true);
    assert_eq!(s["remote"]["class"], "ephemeral");
    assert_eq!(s["remote"]["addr"], "127.0.0.1");
    // the client's end: outbound, its peer is a listener of this host
    let c = find(&doc, "tcp", f.client_port, Some(2222));
    assert_eq!(c["direction"], "outbound");
    assert_eq!(c["direction_confidence"], "high");
    assert_eq!(c["direction_evidence"][0], "peer-listener");
    assert_eq!(c["local"]["class"], "ephemeral");
    assert_eq!(c["local"]["listening"], false);
    assert_eq!(c["remote"]["class"], "registered");
    // connect() ports have the parity of the range's low end (Linux 4.6+)
    assert_eq!(
        f.client_port % 2,
        0,
        "connect port {} is even",
        f.client_port
    );
    assert!(
        c["direction_evidence"]
            .as_array()
            .unwrap()
            .contains(&"connect-parity".into())
    );

    // IPv6
    let s6 = find(&doc, "tcp", 8080, Some(f.client6_port));
    assert_eq!(
        (s6["family"].as_str(), s6["direction"].as_str()),
        (Some("inet6"), Some("inbound"))
    );
    assert_eq!(s6["local"]["addr"], "::1");
    let c6 = find(&doc, "tcp", f.client6_port, Some(8080));
    assert_eq!(c6["direction"], "outbound");

    // v4-mapped: the accepted socket is tcp6 with ::ffff: addresses, the
    // client is plain tcp; both sides are recognised
    let am = find(&doc, "tcp", 9090, Some(f.mapped_port));
    assert_eq!(am["family"], "inet6");
    assert_eq!(am["local"]["addr"], "::ffff:127.0.0.1");
    assert_eq!(am["direction"], "inbound");
    let cm = find(&doc, "tcp", f.mapped_port, Some(9090));
    assert_eq!(cm["family"], "inet");
    assert_eq!(cm["direction"], "outbound");
    assert_eq!(cm["direction_evidence"][0], "peer-listener");

    // a well-known port
    let s22 = find(&doc, "tcp", 22, Some(f.ssh_client_port));
    assert_eq!(s22["local"]["class"], "well-known");
    assert_eq!(s22["direction"], "inbound");
    assert!(
        s22["direction_evidence"]
            .as_array()
            .unwrap()
            .contains(&"local-well-known".into())
    );
    let c22 = find(&doc, "tcp", f.ssh_client_port, Some(22));
    assert_eq!(c22["remote"]["class"], "well-known");
    assert_eq!(c22["direction"], "outbound");
    // not FTP: nothing here uses an FTP port
    assert!(sockets(&doc).iter().all(|s| s["ftp"].is_null()));

    // UDP: bound, and connected
    let us = find(&doc, "udp", 5353, None);
    assert_eq!(us["state"], "UNCONN");
    assert_eq!(us["direction"], "listen");
    assert_eq!(us["remote"], serde_json::Value::Null);
    let uc = find(&doc, "udp", f.udp_client_port, Some(5353));
    assert_eq!(uc["state"], "ESTABLISHED");
    assert_eq!(uc["local"]["class"], "ephemeral");
    assert_eq!(uc["direction"], "outbound");

    // every socket carries the whole schema
    for s in sockets(&doc) {
        for key in [
            "proto",
            "family",
            "state",
            "recv_q",
            "send_q",
            "local",
            "remote",
            "direction",
            "direction_confidence",
            "direction_evidence",
            "uid",
            "inode",
            "processes",
            "ftp",
        ] {
            assert!(s.get(key).is_some(), "{key} missing in {s}");
        }
    }
    // without -p there is no processes field
    let doc = ns.json(&["-an"]);
    assert!(sockets(&doc).iter().all(|s| s.get("processes").is_none()));
}

/// The netstat view: header, columns, states, and one field per cell.
#[test]
fn table_has_netstat_columns_and_fields() {
    if !can_use_netns("table_has_netstat_columns_and_fields") {
        return;
    }
    let ns = Netns::new("table");
    let f = open_sockets(&ns);
    let out = ns.sockwho_ok(&["-an"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("Active Internet connections (servers and established)")
    );
    let header = lines.next().unwrap();
    assert!(
        header.starts_with("Proto Recv-Q Send-Q Local Address"),
        "{header}"
    );
    assert!(
        header.contains("Foreign Address")
            && header.contains("State")
            && header.ends_with("Dir,Ports,FTP")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(
        rows.len(),
        14,
        "4 listeners, 8 connected TCP ends, 2 UDP: {out}"
    );
    for r in &rows {
        // netstat leaves an unconnected UDP socket's State empty
        let unconnected = r[0].starts_with("udp") && r[4].ends_with(":*");
        let fields = if unconnected { 6 } else { 7 };
        assert_eq!(r.len(), fields, "every row has {fields} fields: {r:?}");
    }
    let row = |local: &str| {
        rows.iter()
            .find(|r| r[3] == local)
            .unwrap_or_else(|| panic!("{local} in {out}"))
    };
    assert_eq!(
        row("127.0.0.1:2222")[..6],
        ["tcp", "0", "0", "127.0.0.1:2222", "0.0.0.0:*", "LISTEN"]
    );
    assert_eq!(row("0.0.0.0:5353")[4..6], ["0.0.0.0:*", "listen,reg*/-,-"]);
    assert_eq!(row(":::9090")[..5], ["tcp6", "0", "0", ":::9090", ":::*"]);
    let client = row(&format!("127.0.0.1:{}", f.client_port));
    assert_eq!(client[5..], ["ESTABLISHED", "out,eph/reg,-"]);
    let server = rows
        .iter()
        .find(|r| r[3] == "127.0.0.1:2222" && r[5] == "ESTABLISHED")
        .unwrap();
    assert_eq!(server[6..], ["in,reg*/eph,-"]);
    // piped: no colour; forced: colour
    assert!(!out.contains('\x1b'));
    let coloured = ns.sockwho_ok(&["-an", "--color", "always"]);
    assert!(coloured.contains("\x1b["));

    // -l, the default and the extra columns
    let listening = ns.sockwho_ok(&["-tuln"]);
    assert!(listening.starts_with("Active Internet connections (only servers)\n"));
    assert!(
        listening
            .lines()
            .skip(2)
            .all(|l| l.contains("LISTEN") || l.starts_with("udp"))
    );
    let connected = ns.sockwho_ok(&["-tn"]);
    assert!(connected.starts_with("Active Internet connections (w/o servers)\n"));
    assert!(
        connected.lines().skip(2).all(|l| l.contains("ESTABLISHED")),
        "{connected}"
    );
    let wide = ns.sockwho_ok(&["-tanpeo", "-W"]);
    let header = wide.lines().nth(1).unwrap();
    let words = header.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        words.ends_with("State User Inode PID/Program name Dir,Ports,FTP,More Timer"),
        "{header}"
    );
    let me = format!("{}/", std::process::id());
    assert!(
        wide.lines()
            .filter(|l| l.contains("LISTEN"))
            .all(|l| l.contains(&me)),
        "{wide}"
    );
    assert!(
        wide.lines()
            .skip(2)
            .all(|l| l.contains(" off (") || l.contains(" keepalive ("))
    );
    // -4 and -6
    assert!(
        ns.sockwho_ok(&["-an4"])
            .lines()
            .skip(2)
            .all(|l| l.starts_with("tcp ") || l.starts_with("udp "))
    );
    assert!(
        ns.sockwho_ok(&["-an6"])
            .lines()
            .skip(2)
            .all(|l| l.starts_with("tcp6") || l.starts_with("udp6"))
    );
    // names without -n: well-known ports by service, ephemeral ones by number
    // (.ci/run installs netbase for /etc/services)
    let named = ns.sockwho_ok(&["-tae"]);
    assert!(named.contains("0.0.0.0:ssh "), "{named}");
    let listener = named.lines().find(|l| l.contains("0.0.0.0:ssh ")).unwrap();
    assert_eq!(
        listener.split_whitespace().nth(6),
        Some("root"),
        "User after State, as in netstat: {listener}"
    );
    // -r: host names; the namespace has only loopback, so no lookup leaves it
    let resolved = ns.sockwho_ok(&["-tlr"]);
    if std::fs::read_to_string("/etc/hosts").is_ok_and(|h| {
        h.lines()
            .any(|l| l.starts_with("127.0.0.1") && l.contains("localhost"))
    }) {
        assert!(resolved.contains("localhost:2222 "), "{resolved}");
    }
    assert!(named.contains(&format!("127.0.0.1:{}", f.client_port)));
}

#[test]
fn the_namespace_port_range_drives_the_classes() {
    if !can_use_netns("the_namespace_port_range_drives_the_classes") {
        return;
    }
    let ns = Netns::new("range");
    ns.sysctl("net.ipv4.ip_local_port_range", "20000 20999");
    let _l = ns.enter(|| {
        let a = TcpListener::bind("127.0.0.1:20500").unwrap();
        let b = TcpListener::bind("127.0.0.1:40500").unwrap();
        let c = TcpStream::connect("127.0.0.1:40500").unwrap();
        (a, b, c)
    });
    let class =
        |doc: &serde_json::Value, port: u16| find(doc, "tcp", port, None)["local"]["class"].clone();
    let doc = ns.json(&["-tln"]);
    assert_eq!(doc["port_range"], serde_json::json!([20000, 20999]));
    assert_eq!(class(&doc, 20500), "ephemeral");
    assert_eq!(class(&doc, 40500), "registered");
    let client = ns.json(&["-tn"]);
    let c = sockets(&client)
        .iter()
        .find(|s| s["remote"]["port"] == 40500)
        .expect("the client end");
    let cport = c["local"]["port"].as_u64().unwrap();
    assert!(
        (20000..=20999).contains(&cport),
        "connect() used the namespace range: {cport}"
    );
    assert_eq!(c["local"]["class"], "ephemeral");

    ns.sysctl("net.ipv4.ip_local_port_range", "40000 40999");
    let doc = ns.json(&["-tln"]);
    assert_eq!(class(&doc, 20500), "registered");
    assert_eq!(class(&doc, 40500), "ephemeral");
    ns.sysctl("net.ipv4.ip_local_reserved_ports", "40500");
    let doc = ns.json(&["-tln"]);
    assert_eq!(doc["reserved_ports"], serde_json::json!([[40500, 40500]]));
    assert_eq!(class(&doc, 40500), "registered");
}

#[test]
fn a_process_name_with_an_escape_sequence_is_escaped() {
    if !can_use_netns("a_process_name_with_an_escape_sequence_is_escaped") {
        return;
    }
    let ns = Netns::new("escape");
    // a real process whose comm and argv[0] hold ESC [ 3 1 m and a space
    // (the table shows argv[0]'s base name, as netstat does; JSON the comm)
    let script = "import socket,sys\n\
        open('/proc/self/comm','w').write('ev\\x1b[31m il')\n\
        s=socket.socket(); s.bind(('127.0.0.1',7777)); s.listen()\n\
        print('READY',flush=True); sys.stdin.read()\n";
    let exec_as = "exec -a \"$0\" /usr/bin/python3 -c \"$1\"";
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &ns.name, "bash", "-c", exec_as])
        .args(["ev\x1b[31m il", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    assert_eq!(line.trim(), "READY");
    let table = ns.sockwho_ok(&["-tlnp"]);
    let json = ns.json(&["-tlnp"]);
    drop(child.stdin.take());
    let _ = child.wait();
    assert!(
        !table.contains('\x1b'),
        "raw ESC reached the terminal: {table:?}"
    );
    assert!(
        table.contains(&format!("{}/ev\\x1b[31m\\x20il", child.id())),
        "{table}"
    );
    let row = table
        .lines()
        .find(|l| l.contains("127.0.0.1:7777"))
        .unwrap();
    assert_eq!(row.split_whitespace().count(), 8, "{row}");
    // JSON keeps the name as it is; the JSON string escape makes it safe
    let l = find(&json, "tcp", 7777, None);
    assert_eq!(l["processes"][0]["name"], "ev\x1b[31m il");
    assert_eq!(l["processes"][0]["program"], "ev\x1b[31m il");
}
