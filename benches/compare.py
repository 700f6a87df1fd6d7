#!/usr/bin/env python3
"""Times sockwho, ss and netstat side by side on a real socket load.

For each N it makes a private network namespace with its own TCP hash table,
opens N loopback connections there (2N sockets, both ends held by P processes)
with ../shared/bench/sockload.py, and runs every query's tools interleaved
(sockwho, ss, netstat, diaglimit, sockwho, ss, ...) K times each. It prints a
Markdown table of median and best wall times, the ratio of each median to
ss's, peak RSS (max over runs) and the lines printed (from one untimed
warm-up run, which also tells which tools are slow).

Run as root:  python3 benches/compare.py --sizes 1000,10000,100000

Wall time is taken around `/usr/bin/time -o F ip netns exec NS TOOL`, so it
includes launching (the `launch floor` row: the same with `true`). Peak RSS
comes from GNU time, not from wait4 here: a child spawned by this script
(vfork + exec) reports this Python process's own peak as its ru_maxrss.
"""
import argparse
import os
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


def delete_namespace():
    for pid in sh("ip", "netns", "pids", NS, check=False).stdout.split():
        try:
            os.kill(int(pid), signal.SIGKILL)
        except ProcessLookupError:
            pass
    sh("ip", "netns", "del", NS, check=False)


def start_load(shared, n, procs):
    load = subprocess.Popen(
        ["ip", "netns", "exec", NS, sys.executable, str(shared / "bench/sockload.py"),
         "-n", str(n), "--procs", str(procs)],
        stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = load.stdout.readline()
    if not line.startswith("READY"):
        raise SystemExit(f"sockload did not get ready (exit {load.wait()})")
    return load


def stop_load(load):
    if load.poll() is None:
        load.terminate()  # sockload ends its children and exits
        try:
            load.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(load.pid, signal.SIGKILL)
            load.wait()


def run_once(cmd, out=subprocess.DEVNULL):
    """Wall seconds and peak RSS (KiB) of one run of `cmd` in the namespace."""
    with tempfile.NamedTemporaryFile("r") as rss:
        argv = ["ip", "netns", "exec", NS] + cmd
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
                  ("diaglimit count", dl and dl + ["count"])]),
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
        ("json", [("sockwho -tan --format json", sw + ["-tan", "--format", "json"]),
                  ("ss -tan", ["ss", "-tan"])]),
        ("prometheus", [("sockwho --format prometheus", sw + ["--format", "prometheus"]),
                        ("sockwho -tan", sw + ["-tan"]), ("ss -tan", ["ss", "-tan"])]),
    ]
    return [(name, [(label, cmd) for label, cmd in tools if cmd]) for name, tools in q]


def bench_query(tools, runs, slow_runs, slow_secs):
    """Warm up and count lines, then run the tools round-robin; stats per tool."""
    stats = {}
    for label, cmd in tools:
        with tempfile.TemporaryFile() as f:
            wall, kib = run_once(cmd, out=f)
            f.seek(0)
            lines = sum(1 for _ in f)
        want = slow_runs if wall >= slow_secs else runs
        stats[label] = {"want": want, "times": [], "rss": [], "lines": lines}
    for _ in range(max(s["want"] for s in stats.values())):
        for label, cmd in tools:
            s = stats[label]
            if len(s["times"]) < s["want"]:
                wall, kib = run_once(cmd)
                s["times"].append(wall)
                s["rss"].append(kib)
    return stats


def table(rows):
    out = ["| query | N | tool | runs | median s | min s | ratio to ss | peak RSS MiB | lines |",
           "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for query, n, label, s, ref in rows:
        med, rss = statistics.median(s["times"]), [k for k in s["rss"] if k]
        ratio = f"{med / ref:.2f}" if ref else "-"
        peak = f"{max(rss) / 1024:.1f}" if rss else "-"
        label = label.replace("|", "\\|")
        out.append(f"| {query} | {n:,} | {label} | {len(s['times'])} | {med:.4f} "
                   f"| {min(s['times']):.4f} | {ratio} | {peak} | {s['lines']:,} |")
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="connection counts N")
    ap.add_argument("--procs", type=int, default=50, help="processes holding the load")
    ap.add_argument("--runs", type=int, default=5, help="timed runs of each tool")
    ap.add_argument("--slow-runs", type=int, help="runs of a tool whose warm-up took "
                    "--slow-secs or more (default --runs)")
    ap.add_argument("--slow-secs", type=float, default=5.0)
    ap.add_argument("--sockwho", type=Path, default=REPO / "target/release/sockwho")
    ap.add_argument("--diaglimit", type=Path, default=REPO / "target/diaglimit/release/diaglimit")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--out", type=Path, help="also write the table here")
    args = ap.parse_args()
    args.sockwho, args.diaglimit, args.shared = (
        (REPO / p).resolve() for p in (args.sockwho, args.diaglimit, args.shared))
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes a network namespace")
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

    rows = []
    for n in (int(x) for x in args.sizes.split(",")):
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
            args.out.write_text(table(rows) + "\n" + "".join(f"\n- {x}" for x in notes) + "\n")
    print(table(rows))
    for note in notes:
        print(f"- {note}")


if __name__ == "__main__":
    main()
