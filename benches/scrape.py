#!/usr/bin/env python3
"""Times one scrape of `sockwho --serve` against a one-shot `sockwho -tan` on a real load.

Issue 15 asks that one scrape on 200,000 sockets cost at most 1.2x a one-shot `-tan`. In a
private namespace loaded by ../shared/bench/sockload.py (N connections: 2N sockets), it
starts `sockwho --serve` there and times, interleaved, K scrapes of /metrics (curl's own
time_total: request sent to last byte read, so no launch) and K one-shot runs of
`sockwho -tan` and `sockwho --format prometheus` (wall time as benches/compare.py takes it,
launch included; the `launch floor` row is the same with `true`). With --program, also
`--serve -p` against `-tanp` (the server reads owners only for sockets not seen before).

Run as root:  python3 benches/scrape.py [--connections 100000] [--runs 10]

Build sockwho with `cargo build --release` first. Prints a Markdown table of median and best
times, and each scrape's ratio to its one-shot counterpart.
"""
import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare import (  # noqa: E402  the namespace and load helpers, shared
    NS, REPO, delete_namespace, make_namespace, run_once, start_load, stop_load)

SERVE = "127.0.0.1:9823"


def start_server(sockwho, extra):
    server = subprocess.Popen(
        ["ip", "netns", "exec", NS, str(sockwho), "--serve", SERVE, *extra],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline:
        if scrape_once() is not None:
            return server
        if server.poll() is not None:
            raise SystemExit(f"sockwho --serve exited: {server.stderr.read()}")
        time.sleep(0.1)
    raise SystemExit("sockwho --serve did not answer")


def scrape_once():
    """Seconds curl took for one GET /metrics (None if it failed) and the bytes read."""
    p = subprocess.run(
        ["ip", "netns", "exec", NS, "curl", "-sf", "-o", "/dev/null",
         "-w", "%{time_total} %{size_download}", f"http://{SERVE}/metrics"],
        capture_output=True, text=True)
    if p.returncode != 0:
        return None
    secs, size = p.stdout.split()
    return float(secs), int(size)


def stop_server(server):
    server.terminate()
    try:
        server.wait(10)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def row(label, times, ref=None):
    med = statistics.median(times)
    ratio = f"{med / ref:.2f}" if ref else "-"
    return f"| {label} | {len(times)} | {med:.4f} | {min(times):.4f} | {ratio} |"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", type=int, default=100_000, help="N: 2N sockets")
    ap.add_argument("--procs", type=int, default=50, help="processes holding the load")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--program", action="store_true", help="also --serve -p against -tanp")
    ap.add_argument("--sockwho", type=Path, default=REPO / "target/release/sockwho")
    ap.add_argument("--shared", type=Path, default=REPO.parent / "shared")
    args = ap.parse_args()
    args.sockwho, args.shared = ((REPO / p).resolve() for p in (args.sockwho, args.shared))
    if os.geteuid() != 0:
        raise SystemExit("run as root: it makes a network namespace")
    if not args.sockwho.exists():
        raise SystemExit(f"{args.sockwho} not found: cargo build --release")
    sw = str(args.sockwho)
    pairs = [([], [sw, "-tan"], "-tan")]
    if args.program:
        pairs.append((["-p"], [sw, "-tanp"], "-tanp"))
    out = ["| what | runs | median s | min s | ratio to the one-shot |",
           "|---|---:|---:|---:|---:|"]
    load = server = None
    try:
        make_namespace()
        t = time.time()
        load = start_load(args.shared, args.connections, args.procs)
        print(f"N={args.connections:,}: load ready in {time.time() - t:.0f} s", file=sys.stderr)
        floor = [run_once(["true"])[0] for _ in range(args.runs)]
        out.append(row("launch floor (true)", floor))
        prom = [run_once([sw, "--format", "prometheus"])[0] for _ in range(args.runs)]
        for extra, one_shot, name in pairs:
            server = start_server(args.sockwho, extra)
            first = scrape_once()  # the first scrape reads owners of every socket (-p)
            scrapes, shots, size = [], [], first[1]
            for _ in range(args.runs):
                secs, size = scrape_once()
                scrapes.append(secs)
                shots.append(run_once(one_shot)[0])
            stop_server(server)
            server = None
            ref = statistics.median(shots)
            out.append(row(f"sockwho {name} (one-shot)", shots))
            out.append(row(f"scrape of --serve {' '.join(extra)} ({size:,} bytes)", scrapes, ref))
            out.append(row(f"first scrape of --serve {' '.join(extra)}", [first[0]], ref))
            if not extra:
                out.append(row("sockwho --format prometheus (one-shot)", prom, ref))
    finally:
        if server:
            stop_server(server)
        if load:
            stop_load(load)
        delete_namespace()
    print("\n".join(out))


if __name__ == "__main__":
    main()
