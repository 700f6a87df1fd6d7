#!/usr/bin/env python3
"""Issue 10's measurement: short FTP data connections seen by watch mode.

Two namespaces joined by a veth pair (server 10.231.0.1, client 10.231.0.2),
pyftpdlib serving on the server, and a client loop of LIST and a 1 KiB RETR
with curl (one control connection, two data connections each round) for
--seconds, passive (EPSV/PASV) or active (PORT, the server connects from an
ephemeral port: pyftpdlib does not use port 20), while
`sockwho -tan -c --interval 0.1 --format jsonl` runs on each side. With
--conntrack, conntrack's ftp helper is assigned on both sides (nft).

For each side it counts the data connections that appear in any event
(added, changed, removed, closed) and those labelled data with the right mode
and the session of the round's control connection (`ftp.control`); the truth
is what the client's curl made and said with -v (two data connections a
successful round, their ports, and the control connection's port). Prints one
JSON line per side. Run as root: sudo python3 benches/ftp_short.py --mode passive
"""
import argparse, json, os, re, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--sockwho", default="target/release/sockwho")
p.add_argument("--mode", choices=["passive", "active"], default="passive")
p.add_argument("--seconds", type=float, default=5)
p.add_argument("--conntrack", action="store_true")
p.add_argument("--debug", action="store_true", help="print each data connection not labelled right")
a = p.parse_args()

SRV, CLI = "swm-srv", "swm-cli"
def sh(*argv, check=True, **kw):
    return subprocess.run(argv, check=check, **kw)
for ns in (SRV, CLI):
    sh("ip", "netns", "del", ns, check=False, stderr=subprocess.DEVNULL)
    sh("ip", "netns", "add", ns)
    sh("ip", "-n", ns, "link", "set", "lo", "up")
sh("ip", "link", "add", "swm0", "netns", SRV, "type", "veth", "peer", "name", "swm1", "netns", CLI)
sh("ip", "-n", SRV, "addr", "add", "10.231.0.1/24", "dev", "swm0")
sh("ip", "-n", CLI, "addr", "add", "10.231.0.2/24", "dev", "swm1")
sh("ip", "-n", SRV, "link", "set", "swm0", "up")
sh("ip", "-n", CLI, "link", "set", "swm1", "up")
if a.conntrack:
    for ns, hook in ((SRV, "prerouting"), (CLI, "output")):
        rules = ('table inet sockwho { ct helper ftp-std { type "ftp" protocol tcp; }; '
                 'chain c { type filter hook %s priority filter; tcp dport 21 ct helper set "ftp-std"; }; }' % hook)
        sh("ip", "netns", "exec", ns, "nft", rules)

d = tempfile.mkdtemp()
with open(os.path.join(d, "small"), "wb") as f:
    f.write(b"x" * 1024)
server = subprocess.Popen(["ip", "netns", "exec", SRV, sys.executable, "-m", "pyftpdlib", "-i", "10.231.0.1",
                           "-p", "21", "-d", d], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
for _ in range(100):
    if b":21 " in sh("ip", "netns", "exec", SRV, "ss", "-Hltn", capture_output=True).stdout:
        break
    time.sleep(0.05)

watch, files = {}, {}
for side, ns in (("server", SRV), ("client", CLI)):
    # to files, not pipes: a pipe nobody reads until the end fills at 64 KiB
    # and stops the watcher at its next write
    files[side] = (open(os.path.join(d, side + ".jsonl"), "w+b"), open(os.path.join(d, side + ".err"), "w+b"))
    watch[side] = subprocess.Popen(["ip", "netns", "exec", ns, a.sockwho, "-tan", "-v", "-c", "--interval", "0.1",
                                    "--format", "jsonl"], stdout=files[side][0], stderr=files[side][1])
# measure what happens while both watch: from the first refresh on each side
for _ in range(200):
    if all(b'"tick"' in open(f[0].name, "rb").read() for f in files.values()):
        break
    time.sleep(0.05)
rounds, failed = 0, 0
end = time.time() + a.seconds
curl = ["ip", "netns", "exec", CLI, "curl", "-v", "-s", "-w", "%{local_port}\n", "-o", "/dev/null", "-o", "/dev/null"] + (["-P", "-"] if a.mode == "active" else [])
# the truth, from curl itself: its control connection's port (-w, one
# connection for both URLs) and the data port of each transfer (-v: the
# server's 229 reply in passive mode, curl's EPRT in active mode)
session_of = {}  # data port -> control connection's client port
DATA_PORT = re.compile(r"\(\|\|\|(\d+)\|\)|EPRT \|\d\|[^|]+\|(\d+)\|")
while time.time() < end:
    r = sh(*curl, "ftp://10.231.0.1/", "ftp://10.231.0.1/small", check=False, capture_output=True)
    if r.returncode == 0:
        rounds += 1
        control = int(r.stdout.split()[0])
        for m in DATA_PORT.finditer(r.stderr.decode(errors="replace")):
            session_of.setdefault(int(m.group(1) or m.group(2)), set()).add(control)
    else:
        failed += 1
time.sleep(1.0)  # the last refreshes, and the destroy events
for w in watch.values():
    w.terminate()
server.terminate()

def data_key(s):
    r = s.get("remote") or {}
    l = s["local"]
    return (l["addr"], l["port"], r.get("addr"), r.get("port"))

for side, w in watch.items():
    w.wait(timeout=10)
    out, err = (f.seek(0) or f.read() for f in files[side])
    seen, labelled, kinds = {}, {}, {}
    for line in out.decode().splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line cut by the stop
        kinds[ev["event"]] = kinds.get(ev["event"], 0) + 1
        s = ev.get("socket")
        if not s or s.get("proto") != "tcp" or not s.get("remote"):
            continue
        l, r = s["local"], s["remote"]
        if 21 in (l["port"], r["port"]) or r["port"] == 0:
            continue  # control connections, refused connects
        k = data_key(s)
        seen[k] = True
        f = s.get("ftp")
        # the port curl saw named: the server's in passive mode, the client's in active mode
        server_end, client_end = (l, r) if side == "server" else (r, l)
        port = (server_end if a.mode == "passive" else client_end)["port"]
        control = ((f or {}).get("control") or {}).get("client") or {}
        if (f and f["role"] == "data" and f["mode"] == a.mode
                and control.get("port") in session_of.get(port, ())):
            labelled[k] = f["confidence"]
        elif a.debug:
            print(side, ev["event"], ev["time"], k, "truth", session_of.get(port), "ftp", f, file=sys.stderr)
    truth = 2 * rounds
    conf = {}
    for c in labelled.values():
        conf[c] = conf.get(c, 0) + 1
    print(json.dumps({"side": side, "mode": a.mode, "conntrack": a.conntrack, "rounds": rounds,
                      "failed_rounds": failed, "data_connections": truth, "seen": len(seen),
                      "labelled_right": len(labelled), "confidence": conf, "events": kinds,
                      "stderr": err.decode().strip().splitlines()[-3:]}))
for ns in (SRV, CLI):
    sh("ip", "netns", "del", ns, check=False)
