#!/usr/bin/env python3
"""Times a watch-mode refresh on 200,000 sockets against a one-shot `sockwho -tan`, with peak RSS.

Issue 11 asks that a refresh of `-tan -c --format jsonl` on 200,000 sockets cost at most 1.2x a
one-shot `-tan`, and that the process stay under 64 MiB; the same for the table form. In a
private namespace with its own TCP hash table, loaded by ../shared/bench/sockload.py (N
connections: 2N sockets, spread over P processes), it runs:

- `sockwho -tan` one-shot, K times (wall time, launch included, and peak RSS by GNU time);
- `sockwho -tan -c --format jsonl --interval 0.01 --count R` and `sockwho -tan -c --interval
  0.01 --count R` once each, stdout to a file as a consumer would take it: the refreshes run
  back to back (the interval is shorter than a refresh), so the time between two refreshes'
  timestamps (the `tick` events' `time`, the table blocks' `sockwho TIME` lines) is what one
  refresh costs. The first refresh (every socket `added`, owners' cache empty) is apart from
  the steady ones. Peak RSS is the whole run's.
- the interactive view, `sockwho -tan -c --interval 0.01` on a terminal (tmux, 200x50), with
  `--count R` and `--count 1`: it prints no times of its own, so a refresh's cost is the
  difference of the two runs' wall times over R - 1 (each refresh collects, sorts the 200,000
  rows and draws a screen). Left out, and said, where tmux is not installed.

Run as root:  python3 benches/watch_scale.py [--connections 100000] [--runs 5] [--refreshes 10]

Build sockwho with `cargo build --release` first. The machine's load average is printed
before and after: the figures are only as quiet as the machine was.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402
from compare import (  # noqa: E402  the namespace and load helpers, shared
    REPO, delete_namespace, make_namespace, run_once, start_load, stop_load)

# a namespace of this script's own, whatever else runs benches/compare.py
compare.NS = f"sockwho-watch-{os.getpid()}"


def stamp(text):
    """Seconds since the epoch of sockwho's `2026-11-24T03:30:00.123Z`."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()


def refresh_times(path, jsonl):
    """The refreshes' timestamps in sockwho's output, and how many sockets the first listed."""
    times, listed = [], None
    with open(path, "rb") as f:
        for line in f:
            if jsonl and b'"event":"tick"' in line:
                tick = json.loads(line)
                times.append(stamp(tick["time"]))
                listed = tick["sockets"] if listed is None else listed
            elif not jsonl and line.startswith(b"sockwho 20"):
                times.append(stamp(line.split()[1].decode()))
            elif not jsonl and len(times) == 1 and line.startswith(b"tcp"):
                listed = (listed or 0) + 1
    return times, listed


def watch(sockwho, form, refreshes, scratch):
    argv = [sockwho, "-tan", "-c", "--interval", "0.01", "--count", str(refreshes)]
    if form == "jsonl":
        argv += ["--format", "jsonl"]
    path = Path(scratch) / f"watch.{form}"
    with open(path, "w") as out:
        wall, kib = run_once(argv, out=out)
    times, listed = refresh_times(path, form == "jsonl")
    size = path.stat().st_size
    path.unlink()
    gaps = [b - a for a, b in zip(times, times[1:])]
    return {"wall": wall, "kib": kib, "gaps": gaps, "listed": listed, "bytes": size,
            "refreshes": len(times)}


def interactive(sockwho, count, scratch):
    """Wall seconds and peak RSS (KiB) of the interactive view for `count` refreshes, on a
    terminal of tmux's, or None without tmux."""
    if not shutil.which("tmux"):
        return None
    result = Path(scratch) / f"tui.{count}"
    server = f"sockwho-watch-{os.getpid()}"
    cmd = (f"{compare.GNU_TIME} -q -f '%e %M' -o {result} ip netns exec {compare.NS} "
           f"{sockwho} -tan -c --interval 0.01 --count {count}")
    subprocess.run(["tmux", "-L", server, "new-session", "-d", "-x", "200", "-y", "50", cmd],
                   check=True)
    try:
        deadline = time.time() + 600
        while not (result.exists() and result.stat().st_size):
            if time.time() > deadline:
                raise SystemExit("the interactive view did not end in 10 minutes")
            time.sleep(0.2)
        time.sleep(0.1)  # GNU time writes its line at once; let it finish
        wall, kib = result.read_text().split()
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)
    result.unlink()
    return float(wall), int(kib)


def mib(kib):
    return f"{kib / 1024:.1f}" if kib else "-"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=100_000, help="N: 2N sockets")
    ap.add_argument("--procs", type=int, default=50, help="processes holding the load")
    ap.add_argument("--runs", type=int, default=5, help="one-shot runs")
    ap.add_argument("--refreshes", type=int, default=10, help="refreshes of each watch run")
    ap.add_argument("--sockwho", type=Path, default=REPO / "target/release/sockwho")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    ap.add_argument("--scratch", default="/dev/shm", help="where the outputs are written")
    args = ap.parse_args()
    args.sockwho, args.shared = ((REPO / p).resolve() for p in (args.sockwho, args.shared))
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes a network namespace")
    if not args.sockwho.exists():
        raise SystemExit(f"{args.sockwho} not found: cargo build --release")
    sw = str(args.sockwho)
    load = None
    before = os.getloadavg()
    try:
        make_namespace()
        t = time.time()
        load = start_load(args.shared, args.connections, args.procs)
        print(f"N={args.connections:,}: load ready in {time.time() - t:.0f} s", file=sys.stderr)
        with tempfile.TemporaryDirectory(dir=args.scratch) as scratch:
            shots = []
            for _ in range(args.runs):
                with open(Path(scratch) / "once", "w") as out:
                    shots.append(run_once([sw, "-tan"], out=out))
            runs = {form: watch(sw, form, args.refreshes, scratch) for form in ("jsonl", "table")}
            tui = interactive(sw, args.refreshes, scratch), interactive(sw, 1, scratch)
    finally:
        if load:
            stop_load(load)
        delete_namespace()
    after = os.getloadavg()
    ref = statistics.median(w for w, _ in shots)
    ref_kib = max(k or 0 for _, k in shots)
    out = [
        f"load average before {before[0]:.2f} {before[1]:.2f}, after {after[0]:.2f} {after[1]:.2f}; "
        f"{os.cpu_count()} CPUs",
        "",
        "| what | sockets | median s | min s | max s | ratio to the one-shot | peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| sockwho -tan (one-shot, {args.runs} runs, launch included) | - | {ref:.3f} | "
        f"{min(w for w, _ in shots):.3f} | {max(w for w, _ in shots):.3f} | 1.00 | {mib(ref_kib)} |",
    ]
    for form, r in runs.items():
        name = "-tan -c --format jsonl" if form == "jsonl" else "-tan -c (table to a file)"
        steady = r["gaps"][1:] or r["gaps"]
        if not steady:
            out.append(f"| {name} | {r['listed']} | no refresh timed | | | | {mib(r['kib'])} |")
            continue
        med = statistics.median(steady)
        out.append(
            f"| {name}: refreshes 3..{r['refreshes']} | {r['listed']:,} | {med:.3f} | "
            f"{min(steady):.3f} | {max(steady):.3f} | {med / ref:.2f} | {mib(r['kib'])} |")
        if r["gaps"]:
            out.append(
                f"| {name}: refresh 1 to 2 | | {r['gaps'][0]:.3f} | | | "
                f"{r['gaps'][0] / ref:.2f} | |")
        out.append(
            f"| {name}: whole run ({r['refreshes']} refreshes, {r['bytes']:,} bytes) | | "
            f"{r['wall']:.3f} | | | | |")
    many, one = tui
    if many and one:
        each = (many[0] - one[0]) / max(args.refreshes - 1, 1)
        out.append(
            f"| -tan -c (interactive, tmux 200x50): refreshes 2..{args.refreshes} | - | "
            f"{each:.3f} | | | {each / ref:.2f} | {mib(max(many[1], one[1]))} |")
        out.append(
            f"| -tan -c (interactive): whole runs of {args.refreshes} and 1 refreshes | | "
            f"{many[0]:.2f} and {one[0]:.2f} | | | | |")
    else:
        out.append("| -tan -c (interactive) | not measured: tmux is not installed | | | | | |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
