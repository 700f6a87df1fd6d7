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
and the session of the round's control connection; the truth is what the
client's curl made (two data connections a successful round). Prints one
JSON line per side. Run as root: sudo python3 benches/ftp_short.py --mode passive
"""
import argparse, json, os, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--sockwho", default="target/release/sockwho")
p.add_argument("--mode", choices=["passive", "active"], default="passive")
p.add_argument("--seconds", type=float, default=5)
p.add_argument("--conntrack", action="store_true")
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

watch = {}
for side, ns in (("server", SRV), ("client", CLI)):
    watch[side] = subprocess.Popen(["ip", "netns", "exec", ns, a.sockwho, "-tan", "-v", "-c", "--interval", "0.1",
                                    "--format", "jsonl"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
time.sleep(0.5)
rounds, failed = 0, 0
end = time.time() + a.seconds
curl = ["ip", "netns", "exec", CLI, "curl", "-s", "-o", "/dev/null", "-o", "/dev/null"] + (["-P", "-"] if a.mode == "active" else [])
while time.time() < end:
    r = sh(*curl, "ftp://10.231.0.1/", "ftp://10.231.0.1/small", check=False)
    if r.returncode == 0:
        rounds += 1
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
    out, err = w.communicate(timeout=10)
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
        if f and f["role"] == "data" and f["mode"] == a.mode:
            labelled[k] = f["confidence"]
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
