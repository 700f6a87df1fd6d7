#!/usr/bin/env python3
"""Watch mode's memory over 10,000 refreshes under churn: it must stay flat (issue 11).

Everything watch mode keeps between refreshes (handshakes seen, listeners, FTP sessions,
owners, first-seen times, the rows gone that linger, the names looked up, the notices said)
is pruned to what is alive or still useful; this shows it, as a user would see it: the
process's RSS, read from /proc/PID/status as the refreshes go by.

In a private namespace (loopback, and a veth pair of its own whose route to 10.99.0.0/16 goes
to a gateway no one is, so that connects to it stay in SYN_SENT), a generator churns without
end, by default each second:
- 100 connections over loopback from ever new source addresses (127.5.x.y), each living
  about a second, the server closing first: TIME_WAIT sockets, 6,000 at any time;
- 1,000 connects to ever new addresses in 10.99.0.0/16 that stay in SYN_SENT for 3 s (the
  issue's case: watch mode remembered each handshake and grew without end);
- 10 listeners on new ephemeral ports, each closed after a second;
- 100 connected UDP sockets to new addresses (127.6.x.y), each closed after a second.

Then `sockwho -tuan -c --interval 0.01 --count R` runs in it, in the forms asked for: JSON
Lines and the table on a pipe this script reads (the refreshes are counted as they come and
RSS is read at every twentieth of the run), and the interactive view in tmux (RSS read every
ten seconds, against the time since it started). Printed: RSS at each point, and the growth
from 60 s (past the 30 s that handshakes are remembered) to the end: flat means that what
grows while the first handshakes are remembered stops growing then.

Run as root:  python3 benches/watch_churn.py [--refreshes 10000] [--forms jsonl,table,tui]

Build sockwho with `cargo build --release` first.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
from compare import REPO, delete_namespace, make_namespace, sh  # noqa: E402

compare.NS = f"sockwho-churn-{os.getpid()}"

# The generator, run inside the namespace. Loopback and 10.99.0.0/16 (routed to nowhere,
# on a veth pair of the namespace's own) only.
CHURN = r"""
import collections, errno, socket, sys, time
conns, syns, listeners, udps = (int(a) for a in sys.argv[1:5])
TICK = 0.01
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 8000)); srv.listen(4096); srv.setblocking(False)
# (close at, socket), in time order: what lives a second, and the SYNs (3 s)
short, long = collections.deque(), collections.deque()
n = 0
def addr(prefix, i):
    return f"{prefix}.{(i >> 8) & 255}.{i & 255 or 1}"
def each(rate, tick):
    # how many of `rate` a second fall on tick `tick`
    return rate * (tick + 1) // 100 - rate * tick // 100
print("READY", flush=True)
tick = 0
while True:
    start = time.monotonic()
    for _ in range(each(conns, tick % 100)):
        n += 1
        c = socket.socket()
        c.bind((addr("127.5", n % 65000), 0))
        try:
            c.connect(("127.0.0.1", 8000))
            short.append((start + 1.0, c))
        except OSError:
            c.close()
    while True:
        try:
            s, _ = srv.accept()
            s.close()  # the server closes first: its end goes to TIME_WAIT
        except BlockingIOError:
            break
    for _ in range(each(syns, tick % 100)):
        n += 1
        c = socket.socket(); c.setblocking(False)
        try:
            c.connect((addr("10.99", n % 65000), 443))
        except BlockingIOError:
            pass
        long.append((start + 3.0, c))
    for _ in range(each(listeners, tick % 100)):
        l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
        short.append((start + 1.0, l))
    for _ in range(each(udps, tick % 100)):
        n += 1
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        u.connect((addr("127.6", n % 65000), 53))
        short.append((start + 1.0, u))
    now = time.monotonic()
    for held in (short, long):
        while held and held[0][0] <= now:
            held.popleft()[1].close()
    tick += 1
    time.sleep(max(0.0, TICK - (time.monotonic() - start)))
"""


def rss_kib(pid):
    """VmRSS and VmHWM of `pid` in KiB, or None once it is gone."""
    try:
        fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text()
                      .splitlines() if ":" in line)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (FileNotFoundError, ProcessLookupError, KeyError):
        return None


def sockets_now():
    out = sh("ip", "netns", "exec", compare.NS, "ss", "-Htuan").stdout
    return out.count("\n")


def piped(sockwho, form, refreshes):
    """Runs a machine or table form on a pipe; RSS at every twentieth of the refreshes."""
    argv = ["ip", "netns", "exec", compare.NS, sockwho, "-tuan", "-c", "--interval", "0.01",
            "--count", str(refreshes)]
    if form == "jsonl":
        argv += ["--format", "jsonl"]
    marker = b'"event":"tick"' if form == "jsonl" else b"sockwho 20"
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    step = max(refreshes // 20, 1)
    points, seen, t0, pid = [], 0, time.time(), None
    for line in proc.stdout:
        if not (marker in line if form == "jsonl" else line.startswith(marker)):
            continue
        seen += 1
        if pid is None:
            pid = sockwho_pid()
        if seen == 1 or seen % step == 0:
            got = rss_kib(pid) if pid else None
            if got:
                points.append((seen, time.time() - t0, *got))
    proc.wait()
    return points, seen, time.time() - t0


def sockwho_pid():
    for pid in sh("ip", "netns", "pids", compare.NS, check=False).stdout.split():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "sockwho":
                return int(pid)
        except FileNotFoundError:
            pass
    return None


def interactive(sockwho, refreshes):
    """The interactive view in tmux (200x50); RSS every ten seconds until it ends."""
    server = f"sockwho-churn-{os.getpid()}"
    cmd = f"ip netns exec {compare.NS} {sockwho} -tuan -c --interval 0.01 --count {refreshes}"
    subprocess.run(["tmux", "-L", server, "new-session", "-d", "-x", "200", "-y", "50", cmd],
                   check=True)
    points, t0, pid = [], time.time(), None
    try:
        while pid is None and time.time() - t0 < 10:
            pid = sockwho_pid()
            time.sleep(0.05)
        while pid and (got := rss_kib(pid)):
            points.append((None, time.time() - t0, *got))
            time.sleep(10)
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)
    return points, refreshes, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--refreshes", type=int, default=10_000)
    ap.add_argument("--forms", default="jsonl,table,tui")
    ap.add_argument("--conns", type=int, default=100, help="loopback connections a second")
    ap.add_argument("--syns", type=int, default=1000, help="SYN_SENT connects a second")
    ap.add_argument("--listeners", type=int, default=10, help="listeners a second")
    ap.add_argument("--udp", type=int, default=100, help="UDP sockets a second")
    ap.add_argument("--warmup", type=float, default=70, help="seconds of churn before")
    ap.add_argument("--sockwho", type=Path, default=REPO / "target/release/sockwho")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes a network namespace")
    sw = str((REPO / args.sockwho).resolve())
    if not Path(sw).exists():
        raise SystemExit(f"{sw} not found: cargo build --release")
    forms = args.forms.split(",")
    if "tui" in forms and not shutil.which("tmux"):
        print("the interactive view is not measured: tmux is not installed", file=sys.stderr)
        forms.remove("tui")
    churn = None
    results = {}
    before = os.getloadavg()
    try:
        make_namespace()
        ns = ["ip", "netns", "exec", compare.NS]
        # connects to 10.99/16 leave through a veth pair of the namespace's own, to a
        # gateway whose (static) address no one has: the SYNs go nowhere, and stay unanswered
        sh(*ns, "ip", "link", "add", "churn0", "type", "veth", "peer", "name", "churn1")
        sh(*ns, "ip", "addr", "add", "10.98.0.1/24", "dev", "churn0")
        for link in ("churn0", "churn1"):
            sh(*ns, "ip", "link", "set", link, "up")
        sh(*ns, "ip", "neigh", "replace", "10.98.0.2", "lladdr", "02:00:00:00:00:01", "dev",
           "churn0", "nud", "permanent")
        sh(*ns, "ip", "route", "replace", "10.99.0.0/16", "via", "10.98.0.2")
        churn = subprocess.Popen(
            [*ns, sys.executable, "-c", CHURN, str(args.conns), str(args.syns),
             str(args.listeners), str(args.udp)], stdout=subprocess.PIPE, text=True,
            start_new_session=True)
        if churn.stdout.readline().strip() != "READY":
            raise SystemExit("the churn generator did not start")
        time.sleep(args.warmup)  # TIME_WAIT (60 s) reaches its steady count
        for form in forms:
            start = sockets_now()
            got = interactive(sw, args.refreshes) if form == "tui" else \
                piped(sw, form, args.refreshes)
            results[form] = (*got, start, sockets_now())
    finally:
        if churn:
            os.killpg(churn.pid, 9)
        delete_namespace()
    after = os.getloadavg()
    print(f"churn a second: {args.conns} loopback connections (TIME_WAIT), {args.syns} "
          f"SYN_SENT connects, {args.listeners} listeners, {args.udp} UDP sockets; "
          f"load average before {before[0]:.2f}, after {after[0]:.2f}; {os.cpu_count()} CPUs\n")
    names = {"jsonl": "-tuan -c --format jsonl (pipe)", "table": "-tuan -c (table, pipe)",
             "tui": "-tuan -c (interactive, tmux 200x50)"}
    for form, (points, seen, wall, start, end) in results.items():
        print(f"## {names[form]}: {seen:,} refreshes in {wall:.0f} s "
              f"({1000 * wall / max(seen, 1):.1f} ms each); {start:,} sockets at the start, "
              f"{end:,} at the end\n")
        print("| refresh | seconds | RSS MiB | peak RSS MiB |\n|---:|---:|---:|---:|")
        for n, t, rss, hwm in points:
            print(f"| {n if n is not None else '-'} | {t:.0f} | {rss / 1024:.1f} | "
                  f"{hwm / 1024:.1f} |")
        # past the handshakes' TTL (30 s): what grows after is what does not stop
        steady = [p for p in points if p[1] >= 60]
        if len(steady) >= 2:
            first, last = steady[0], steady[-1]
            rss = [p[2] for p in steady]
            print(f"\nfrom {first[1]:.0f} s to the end ({last[1]:.0f} s): RSS "
                  f"{first[2] / 1024:.1f} -> {last[2] / 1024:.1f} MiB "
                  f"({(last[2] - first[2]) / 1024:+.1f}), between {min(rss) / 1024:.1f} and "
                  f"{max(rss) / 1024:.1f}; peak {last[3] / 1024:.1f} MiB\n")


if __name__ == "__main__":
    main()
