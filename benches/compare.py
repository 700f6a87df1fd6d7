#!/usr/bin/env python3
"""Times sockwho, ss and netstat side by side on a real socket load, and sockwho against its floors.

For each N it makes a private network namespace with its own TCP hash table,
opens N loopback connections there (2N sockets, both ends held by P processes)
with ../shared/bench/sockload.py, and runs every query's tools interleaved
(sockwho, ss, netstat, diaglimit, sockwho, ss, ...) K times each. The queries:

- `-tan`: sockwho, ss, netstat, `diaglimit count` (the bare sock_diag dump: the
  floor) and `diaglimit format` (the dump plus a netstat-like line per socket);
- `-tanp`: the same with owners, and `diaglimit count --map` (the dump and a
  single-threaded /proc fd map: the floor of finding owners);
- `-tln` and the port filter (`--sport 10000`, ss's `sport = :10000`);
- `json, csv`: `sockwho -tan --format json`, `--format csv`, the table
  `sockwho -tan` and `ss -tan`;
- `prometheus`: `sockwho --format prometheus` beside `-tan` and ss.

Then, unless --no-netns, the `--all-netns` part: M namespaces named under
/run/netns (`ip netns add`, lo up), each loaded by its own sockload.py
(`-n C --procs 0`: 2C sockets; all started at once), sharing the host's TCP
hash table as containers do (--netns-ehash gives each its own), and, from the
host's namespace, `sockwho --all-netns -tan` against a shell loop of
`ss -tan -N NAME` over the M names, interleaved K times. `--all-netns` also
looks into every other namespace on the host (the host's own, others' named
ones, those of processes): its lines against the loop's say how many more
sockets it listed, and a note says when other named namespaces were there.

It prints the machine's load average before and after (the figures are only
as quiet as the machine was), then a Markdown table of median and best wall
times, the ratio of each median to ss's (for --all-netns: to the ss loop's),
peak RSS (max over runs) and the lines printed (from one untimed warm-up run,
which also tells which tools are slow), and a second table, the ratios to the
floors, with issue 14's goals:

- `sockwho -tan` / `diaglimit count` (the bare dump): at most 1.3x;
- `sockwho -tan` / `diaglimit format` (dump + a line per socket): shown, no goal;
- `sockwho -tanp` / `diaglimit count --map` (the fd-map floor): at most 0.8x;
- `sockwho -tan --format json` and `--format csv` / `sockwho -tan`: at most 1.2x;
- `sockwho --all-netns -tan` / the `ss -tan -N NAME` loop: at most 0.5x.

(`-tln` and the port filter have no floor here: issue 14 wants them within
1.1x of an earlier run's, which the first table gives.)

Run as root, the full run:
    python3 benches/compare.py --sizes 100000 --runs 11
(the namespaces part as the issue puts it, 100 namespaces of 1,000 connections,
is the default: --netns-count 100 --netns-conns 1000; --no-netns leaves it out,
--sizes '' runs it alone). A quick check: --sizes 1000 --runs 2 --netns-count 3
--netns-conns 50.

Wall time is taken around `/usr/bin/time -o F ip netns exec NS TOOL`, so it
includes launching (the `launch floor` row: the same with `true`); the
--all-netns part runs in the host's namespace, without `ip netns exec`. Peak
RSS comes from GNU time, not from wait4 here: a child spawned by this script
(vfork + exec) reports this Python process's own peak as its ru_maxrss.
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NS = "sockwho-bench"
EHASH = "/proc/sys/net/ipv4/tcp_child_ehash_entries"
GNU_TIME = "/usr/bin/time"
PORT = 10000  # sockload's first listening port (on 127.1.0.1-4)
ALL_NETNS = "sockwho --all-netns -tan"
SS_LOOP = "ss -tan -N NAME, each in turn (sh loop)"
HOST = None  # run_once's netns for the host's own namespace

# (ratio, query, tool, reference tool (same query), goal: at most this, or None)
RATIOS = [
    ("sockwho -tan / bare dump (diaglimit count)", "-tan", "sockwho -tan", "diaglimit count", 1.3),
    ("sockwho -tan / dump + line (diaglimit format)", "-tan", "sockwho -tan",
     "diaglimit format", None),
    ("sockwho -tanp / fd-map floor (diaglimit count --map)", "-tanp", "sockwho -tanp",
     "diaglimit count --map", 0.8),
    ("json / table (sockwho -tan)", "json, csv", "sockwho -tan --format json", "sockwho -tan", 1.2),
    ("csv / table (sockwho -tan)", "json, csv", "sockwho -tan --format csv", "sockwho -tan", 1.2),
    ("--all-netns -tan / ss -tan -N loop", "--all-netns", ALL_NETNS, SS_LOOP, 0.5),
]


def sh(*argv, check=True):
    return subprocess.run(argv, check=check, capture_output=True, text=True)


def make_namespace():
    if NS in sh("ip", "netns", "list").stdout.split():
        delete_namespace()
    old = Path(EHASH).read_text().strip()
    try:
        Path(EHASH).write_text("262144")  # the namespace gets its own table
        sh("ip", "netns", "add", NS)
    finally:
        Path(EHASH).write_text(old)
    sh("ip", "netns", "exec", NS, "ip", "link", "set", "lo", "up")


def delete_namespace(ns=None):
    ns = ns or NS
    for pid in sh("ip", "netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    sh("ip", "netns", "del", ns, check=False)


def spawn_load(shared, n, procs, ns=None):
    """sockload in namespace `ns` (default NS), not yet waited for: see wait_ready."""
    return subprocess.Popen(
        ["ip", "netns", "exec", ns or NS, sys.executable, str(shared / "bench/sockload.py"),
         "-n", str(n), "--procs", str(procs)],
        stdout=subprocess.PIPE, text=True, start_new_session=True)


def wait_ready(load):
    line = load.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"sockload did not get ready (exit {load.wait()})")
    return load


def start_load(shared, n, procs, ns=None):
    return wait_ready(spawn_load(shared, n, procs, ns))


def stop_load(load):
    if load.poll() is None:
        load.terminate()  # sockload ends its children and exits
        try:
            load.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(load.pid, signal.SIGKILL)
            load.wait()


def run_once(cmd, out=subprocess.DEVNULL, netns=""):
    """Wall seconds and peak RSS (KiB) of one run of `cmd` in namespace `netns`
    (default NS; HOST: this script's own, no `ip netns exec`)."""
    with tempfile.NamedTemporaryFile("r") as rss:
        ns = NS if netns == "" else netns
        argv = (["ip", "netns", "exec", ns] if ns else []) + cmd
        if os.access(GNU_TIME, os.X_OK):
            argv = [GNU_TIME, "-q", "-f", "%M", "-o", rss.name] + argv
        t = time.perf_counter()
        p = subprocess.run(argv, stdout=out, stderr=subprocess.PIPE, text=True)
        wall = time.perf_counter() - t
        if p.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)}: exit {p.returncode}: {p.stderr.strip()[-500:]}")
        kib = rss.read().strip()
    return wall, int(kib) if kib.isdigit() else None


def queries(args, has_sport):
    """(query, [(tool label, argv)]): ss is each query's reference."""
    sw, dl = [str(args.sockwho)], [str(args.diaglimit)] if args.diaglimit.exists() else None
    sport = [("sockwho -tan --sport 10000", sw + ["-tan", "--sport", str(PORT)])] if has_sport else []
    q = [
        ("-tan", [("sockwho -tan", sw + ["-tan"]), ("ss -tan", ["ss", "-tan"]),
                  ("netstat -tan", ["netstat", "-tan"]),
                  ("diaglimit count", dl and dl + ["count"]),
                  ("diaglimit format", dl and dl + ["format"])]),
        ("-tanp", [("sockwho -tanp", sw + ["-tanp"]), ("ss -tanp", ["ss", "-tanp"]),
                   ("netstat -tanp", ["netstat", "-tanp"]),
                   ("diaglimit count --map", dl and dl + ["count", "--map"])]),
        ("-tln", [("sockwho -tln", sw + ["-tln"]), ("ss -tln", ["ss", "-tln"]),
                  ("netstat -tln", ["netstat", "-tln"]),
                  ("diaglimit count --states 400", dl and dl + ["count", "--states", "400"])]),
        (f"port {PORT}", sport + [
            (f"ss -tan sport = :{PORT}", ["ss", "-tan", "sport", "=", f":{PORT}"]),
            (f"netstat -tan | awk $4~/:{PORT}$/",
             ["sh", "-c", f"netstat -tan | awk '$4 ~ /:{PORT}$/'"])]),
        ("json, csv", [("sockwho -tan --format json", sw + ["-tan", "--format", "json"]),
                       ("sockwho -tan --format csv", sw + ["-tan", "--format", "csv"]),
                       ("sockwho -tan", sw + ["-tan"]), ("ss -tan", ["ss", "-tan"])]),
        ("prometheus", [("sockwho --format prometheus", sw + ["--format", "prometheus"]),
                        ("sockwho -tan", sw + ["-tan"]), ("ss -tan", ["ss", "-tan"])]),
    ]
    return [(name, [(label, cmd) for label, cmd in tools if cmd]) for name, tools in q]


def bench_query(tools, runs, slow_runs, slow_secs, netns=""):
    """Warm up and count lines, then run the tools round-robin; stats per tool."""
    stats = {}
    for label, cmd in tools:
        with tempfile.TemporaryFile() as f:
            wall, kib = run_once(cmd, out=f, netns=netns)
            f.seek(0)
            lines = sum(1 for _ in f)
        want = slow_runs if wall >= slow_secs else runs
        stats[label] = {"want": want, "times": [], "rss": [], "lines": lines}
    for _ in range(max(s["want"] for s in stats.values())):
        for label, cmd in tools:
            s = stats[label]
            if len(s["times"]) < s["want"]:
                wall, kib = run_once(cmd, netns=netns)
                s["times"].append(wall)
                s["rss"].append(kib)
    return stats


def size(n):
    return f"{n:,}" if isinstance(n, int) else n


def table(rows):
    out = ["| query | N | tool | runs | median s | min s | ratio to ss | peak RSS MiB | lines |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for query, n, label, s, ref in rows:
        med, rss = statistics.median(s["times"]), [k for k in s["rss"] if k]
        ratio = f"{med / ref:.2f}" if ref else "-"
        peak = f"{max(rss) / 1024:.1f}" if rss else "-"
        label = label.replace("|", "\\|")
        out.append(f"| {query} | {size(n)} | {label} | {len(s['times'])} | {med:.4f} "
                   f"| {min(s['times']):.4f} | {ratio} | {peak} | {s['lines']:,} |")
    return "\n".join(out)


def ratio_table(rows):
    """Each sockwho row against its named reference, measured in the same round-robin."""
    by = {(query, n, label): s for query, n, label, s, _ in rows}
    sizes = list(dict.fromkeys(n for _, n, _, _, _ in rows))
    out = ["| ratio | N | median s | reference median s | measured | goal | met |",
           "|---|---:|---:|---:|---:|---:|---|"]
    for name, query, tool, ref, goal in RATIOS:
        for n in sizes:
            s, r = by.get((query, n, tool)), by.get((query, n, ref))
            if not (s and r):
                continue
            med, rmed = statistics.median(s["times"]), statistics.median(r["times"])
            x = med / rmed
            met = "-" if goal is None else ("yes" if x <= goal else "no")
            if s.get("caveat"):
                met += f" ({s['caveat']})"
            want = "-" if goal is None else f"<= {goal:.2f}x"
            out.append(f"| {name} | {size(n)} | {med:.4f} | {rmed:.4f} | {x:.2f}x "
                       f"| {want} | {met} |")
    return "\n".join(out) if len(out) > 2 else "(no ratio: the reference rows were not measured)"


def load_line(before, after=None):
    text = f"load average before {before[0]:.2f} {before[1]:.2f} {before[2]:.2f}"
    if after:
        text += f", after {after[0]:.2f} {after[1]:.2f} {after[2]:.2f}"
    return f"{text}; {os.cpu_count()} CPUs"


def report(rows, notes, before, after=None):
    return (load_line(before, after) + "\n\n" + table(rows) + "\n\nRatios to the floors:\n\n"
            + ratio_table(rows) + "\n" + "".join(f"\n- {x}" for x in notes) + "\n")


def netns_names():
    """The names `ip netns list` gives (its lines: `NAME` or `NAME (id: N)`)."""
    lines = sh("ip", "netns", "list").stdout.splitlines()
    return [line.split()[0] for line in lines if line.strip()]


def netns_part(args, rows, notes):
    """M named namespaces of C connections each: --all-netns against an ss -N loop."""
    names = [f"{args.netns_prefix}{i}" for i in range(args.netns_count)]
    mine = set(names)
    made, loads = [], []
    label = f"{args.netns_count} × {args.netns_conns:,}"
    try:
        present = set(netns_names())
        for name in names:
            if name in present:
                delete_namespace(name)
        t = time.time()
        old = Path(EHASH).read_text().strip()
        try:
            Path(EHASH).write_text(str(args.netns_ehash))  # 0: share the host's table
            for name in names:
                made.append(name)
                sh("ip", "netns", "add", name)
        finally:
            Path(EHASH).write_text(old)
        for name in names:
            sh("ip", "-n", name, "link", "set", "lo", "up")
        loads = [spawn_load(args.shared, args.netns_conns, 0, name) for name in names]
        for load in loads:
            wait_ready(load)
        print(f"{label} namespaces: loads ready in {time.time() - t:.0f} s", file=sys.stderr)
        others = [x for x in netns_names() if x not in mine]
        caveat = None
        if others:
            caveat = f"{len(others)} other namespaces listed too"
            some = ", ".join(sorted(others)[:5]) + (", ..." if len(others) > 5 else "")
            notes.append(f"--all-netns: {len(others)} other named network namespaces were on "
                         f"the host ({some}); it looked into them too (its lines against the "
                         "loop's)")
        loop = "for n in " + " ".join(names) + "; do ss -tan -N $n; done"
        tools = [(ALL_NETNS, [str(args.sockwho), "--all-netns", "-tan"]),
                 (SS_LOOP, ["sh", "-c", loop])]
        t = time.time()
        stats = bench_query(tools, args.runs, args.slow_runs or args.runs, args.slow_secs,
                            netns=HOST)
        stats[ALL_NETNS]["caveat"] = caveat
        ref = statistics.median(stats[SS_LOOP]["times"])
        rows += [("--all-netns", label, name, s, ref) for name, s in stats.items()]
        print(f"  --all-netns: {time.time() - t:.0f} s", file=sys.stderr)
    finally:
        for load in loads:
            if load.poll() is None:
                load.terminate()
        for load in loads:
            try:
                load.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(load.pid, signal.SIGKILL)
                load.wait()
        for name in made:
            delete_namespace(name)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000",
                    help="connection counts N ('' for none: the namespaces part alone)")
    ap.add_argument("--procs", type=int, default=50, help="processes holding the load")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each tool")
    ap.add_argument("--slow-runs", type=int, help="runs of a tool whose warm-up took "
                    "--slow-secs or more (default --runs)")
    ap.add_argument("--slow-secs", type=float, default=5.0)
    ap.add_argument("--netns-count", type=int, default=100,
                    help="namespaces of the --all-netns part (M)")
    ap.add_argument("--netns-conns", type=int, default=1000,
                    help="connections in each of them (C: 2C sockets)")
    ap.add_argument("--netns-prefix", default="sockwho-cmp",
                    help="their names under /run/netns: PREFIX0 .. PREFIX<M-1>")
    ap.add_argument("--netns-ehash", type=int, default=0,
                    help="tcp_child_ehash_entries when they are made: 0 shares the host's "
                    "TCP hash table (as containers do), N gives each a table of its own")
    ap.add_argument("--no-netns", action="store_true", help="leave the --all-netns part out")
    ap.add_argument("--sockwho", type=Path, default=REPO / "target/release/sockwho")
    ap.add_argument("--diaglimit", type=Path, default=REPO / "target/diaglimit/release/diaglimit")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, help="also write the tables here")
    args = ap.parse_args()
    args.sockwho, args.diaglimit, args.shared = (
        (REPO / p).resolve() for p in (args.sockwho, args.diaglimit, args.shared))
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", args.netns_prefix):
        raise SystemExit("--netns-prefix: letters, digits, '_', '.', '-' only")
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes network namespaces")
    if not args.sockwho.exists():
        raise SystemExit(f"{args.sockwho} not found: cargo build --release")
    notes = []
    if not args.diaglimit.exists():
        notes.append(f"diaglimit not found at {args.diaglimit}: no floor rows")
    if not os.access(GNU_TIME, os.X_OK):
        notes.append(f"{GNU_TIME} not found (apt-get install time): no peak RSS")
    has_sport = "--sport" in sh(str(args.sockwho), "--help").stdout
    if not has_sport:
        notes.append(f"sockwho has no --sport: no sockwho row for the port {PORT} filter")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # cleanup runs in finally

    before = os.getloadavg()
    print(load_line(before), file=sys.stderr)
    rows = []
    for n in (int(x) for x in args.sizes.split(",") if x.strip()):
        load = None
        try:
            make_namespace()
            t = time.time()
            load = start_load(args.shared, n, args.procs)
            print(f"N={n:,}: load ready in {time.time() - t:.0f} s", file=sys.stderr)
            floor = bench_query([("launch floor (true)", ["true"])], args.runs, args.runs, 1e9)
            rows.append(("-", n, "launch floor (true)", floor["launch floor (true)"], None))
            for query, tools in queries(args, has_sport):
                t = time.time()
                stats = bench_query(tools, args.runs, args.slow_runs or args.runs, args.slow_secs)
                ref = next((statistics.median(s["times"])
                            for label, s in stats.items() if label.startswith("ss ")), None)
                rows += [(query, n, label, s, ref) for label, s in stats.items()]
                print(f"  {query}: {time.time() - t:.0f} s", file=sys.stderr)
        finally:
            if load:
                stop_load(load)
            delete_namespace()
        if args.out:
            args.out.write_text(report(rows, notes, before))
    if not args.no_netns and args.netns_count > 0:
        netns_part(args, rows, notes)
    after = os.getloadavg()
    text = report(rows, notes, before, after)
    if args.out:
        args.out.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
