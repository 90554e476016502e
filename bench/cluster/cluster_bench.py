#!/usr/bin/env python3
"""Benchmark of coupecircuitd in a cluster (docs/CLUSTER.md), not a test.

Three nodes on this machine, each a real coupecircuitd with its own snapshot
and state (and, for the cut row, its own Apache + mod_coupecircuit + mod_php),
one local redis-server (no persistence) holding the sessions (phpredis) and
the cluster's keys. Side by side in one run:

  at rest     Redis commands per second per node, from MONITOR (each command's
              client port mapped to the helper owning it with ss -tnp): the
              lease holder and the others apart; and each helper's CPU
              (utime + stime from /proc over the same window).
  failover    kill -9 of the lease holder -> another node holds the lease and
              publishes its own counts (polled every 20 ms), N times, against
              the target TTL + 1 s.
  cut         coupecircuitctl cut on|off typed on node 1 -> $_SERVER
              ['COUPURE_CHARGE_SERVEUR'] on node 3's Apache (polled over
              HTTP, 5 ms apart), p50/p99 over the toggles (--toggles, 200 by
              default), against the targets p50 <= 100 ms, p99 <= 1 s.

  bench/cluster/cluster_bench.py --build-dir build [--window 30] [--failovers 5] [--toggles 200]
Prints Markdown rows for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SOURCE = HERE.parents[1]
sys.path.insert(0, str(SOURCE / "tests" / "integration"))

import harness  # noqa: E402  (the integration tests' real-parts harness)
from redis_harness import RedisServer, new_id, php_sessions  # noqa: E402

CLUSTER = "bench"
NODES = ("web1", "web2", "web3")
TICKS = os.sysconf("SC_CLK_TCK")
# The Redis session store's own pass (the holder only; grows with the keys).
SESSION_PASS_COMMANDS = {"SCAN", "PTTL", "STRLEN", "GETRANGE", "CONFIG", "SUBSCRIBE", "PSUBSCRIBE"}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def ports_of(pid: int) -> set[int]:
    """Local TCP ports of a process's connections (ss -tnp)."""
    out = subprocess.run(["ss", "-tnpH"], capture_output=True, text=True, check=True).stdout
    ports = set()
    for line in out.splitlines():
        if f"pid={pid}," in line:
            local = line.split()[3]
            ports.add(int(local.rsplit(":", 1)[1]))
    return ports


class Cluster:
    def __init__(self, paths: harness.Paths, work: Path, lease_ttl: int, interval: int, with_apache: bool):
        self.paths = paths
        self.work = work
        self.redis = RedisServer(work / "redis").start()
        self.helpers: dict[str, harness.Helper] = {}
        self.apaches: dict[str, harness.Apache] = {}
        self.lease_ttl = lease_ttl
        for name in NODES:
            config = (f"\n[sessions]\nsave_handler = redis\nsave_path = tcp://127.0.0.1:{self.redis.port}\n"
                      f"\n[cluster]\nname = {CLUSTER}\nnode = {name}\nredis = tcp://127.0.0.1:{self.redis.port}\n"
                      f"lease_ttl = {lease_ttl}\n")
            self.helpers[name] = harness.Helper(paths, harness.make_dir(work / name), interval=interval,
                                                config_extra=config)
        php_sessions("redis", f"tcp://127.0.0.1:{self.redis.port}",
                     [("authenticated", new_id()) for _ in range(50)] + [("anonymous", new_id()) for _ in range(50)])
        for helper in self.helpers.values():
            helper.start(wait=False)
        for helper in self.helpers.values():
            helper.wait_ready(30)
        if with_apache:
            for name, helper in self.helpers.items():
                apache = harness.Apache(paths, harness.make_dir(work / f"apache-{name}"), "prefork",
                                        helper.session_dir, snapshot=helper.snapshot, with_module=True)
                apache.start()
                self.apaches[name] = apache

    def doc(self, name: str) -> dict:
        return self.helpers[name].status()[1]

    def holder(self) -> str | None:
        held = [name for name in self.helpers if self.helpers[name].running()
                and self.doc(name).get("cluster", {}).get("lease_held_here")]
        return held[0] if len(held) == 1 else None

    def stop(self) -> None:
        for apache in self.apaches.values():
            try:
                apache.stop()
            except AssertionError:
                pass
        for helper in self.helpers.values():
            helper.stop()
        self.redis.stop()


def at_rest(cluster: Cluster, window: float) -> list[str]:
    """Commands per second per node (MONITOR), helper CPU."""
    harness.wait_for(cluster.holder, lambda h: h is not None, 20, "a lease holder")
    time.sleep(3)  # settled: first passes and publishes done
    holder = cluster.holder()
    owners = {}
    for name, helper in cluster.helpers.items():
        for port in ports_of(helper.pid):
            owners[port] = name
    cpu_before = {name: cpu_seconds(h.pid) for name, h in cluster.helpers.items()}
    # MONITOR over a socket of our own (redis-cli's buffered output would be
    # lost when it is interrupted).
    monitor = socket.create_connection(("127.0.0.1", cluster.redis.port))
    monitor.sendall(b"MONITOR\r\n")
    monitor.settimeout(0.2)
    received = bytearray()
    started = time.monotonic()
    while time.monotonic() - started < window:
        try:
            chunk = monitor.recv(65536)
        except socket.timeout:
            continue
        if not chunk:
            break
        received += chunk
    monitor.close()
    output = received.decode(errors="replace")
    elapsed = time.monotonic() - started
    cpu = {name: (cpu_seconds(h.pid) - cpu_before[name]) / elapsed for name, h in cluster.helpers.items()}
    per_node = {name: 0 for name in NODES}
    commands = {name: {} for name in NODES}
    line_re = re.compile(r'^\+?\S+ \[\d+ 127\.0\.0\.1:(\d+)\] "(\w+)"')
    for line in output.splitlines():
        matched = line_re.match(line)
        if matched is None:
            continue
        name = owners.get(int(matched.group(1)))
        if name is None:
            continue
        per_node[name] += 1
        word = matched.group(2).upper()
        if word in ("EVALSHA", "EVAL"):
            word += " (script)"
        commands[name][word] = commands[name].get(word, 0) + 1
    rows = []
    coordination_total = 0.0
    for name in NODES:
        role = "lease holder" if name == holder else "reader"
        session_pass = sum(v for k, v in commands[name].items() if k in SESSION_PASS_COMMANDS) / elapsed
        coordination = per_node[name] / elapsed - session_pass
        coordination_total += coordination
        detail = ", ".join(f"{k} {v / elapsed:.2f}" for k, v in sorted(commands[name].items()))
        rows.append(f"| cluster at rest, {name} ({role}) | {coordination:.2f} cluster commands/s"
                    f"{f' + {session_pass:.2f} session pass' if session_pass else ''} (target <= 10) | "
                    f"helper CPU {cpu[name] * 100:.2f} % | {detail} |")
    rows.append(f"| cluster at rest, 3 nodes | {coordination_total / 3:.2f} cluster commands/s per node | "
                f"window {elapsed:.0f} s | 50 nodes: about {coordination_total / 3 * 50:.0f} commands/s on Redis |")
    return rows


def failover(cluster: Cluster, runs: int) -> list[str]:
    times = []
    for _ in range(runs):
        holder, _ = harness.wait_for(cluster.holder, lambda h: h is not None, 30, "a lease holder")
        survivors = [n for n in NODES if n != holder]
        killed = time.monotonic()
        cluster.helpers[holder].kill9()

        def taken():
            for name in survivors:
                block = cluster.doc(name).get("cluster", {})
                if block.get("lease_held_here") and not block.get("counts_from_peer") and not block.get("counts_stale"):
                    return name
            return None

        harness.wait_for(taken, lambda n: n is not None, cluster.lease_ttl + 30, "a new holder", interval=0.02)
        times.append(time.monotonic() - killed)
        cluster.helpers[holder].start(wait=False)
        cluster.helpers[holder].wait_ready(30)
    limit = cluster.lease_ttl + 1
    return [f"| lease failover (kill -9 of the holder -> another holds and counts), TTL {cluster.lease_ttl} s | "
            f"p50 {statistics.median(times):.2f} s, max {max(times):.2f} s over {runs} | target <= {limit} s | "
            f"{'met' if max(times) <= limit else 'MISSED'} |"]


def cut_latency(cluster: Cluster, toggles: int) -> list[str]:
    first, farthest = cluster.helpers[NODES[0]], cluster.apaches[NODES[-1]].client()
    latencies = []
    for i in range(toggles):
        on = i % 2 == 0
        started = time.monotonic()
        result = subprocess.run([str(first.paths.ctl), "--config", str(first.config), "cut", "on" if on else "off"],
                                capture_output=True, text=True, timeout=30, env=harness.clean_env())
        if result.returncode != 0:
            raise RuntimeError(f"toggle {i}: coupecircuitctl -> {result.returncode}: {result.stdout}{result.stderr}")
        want = "1" if on else "0"
        while farthest.env().get("COUPURE_CHARGE_SERVEUR") != want:
            if time.monotonic() - started > 10:
                raise RuntimeError(f"toggle {i}: node 3 did not follow within 10 s")
            time.sleep(0.005)
        latencies.append(time.monotonic() - started)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    return [f"| cut on node 1 -> $_SERVER on node 3 (ctl included), {toggles} toggles | p50 {p50 * 1000:.0f} ms, "
            f"p99 {p99 * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms | targets p50 <= 100 ms, p99 <= 1 s | "
            f"{'met' if p50 <= 0.1 and p99 <= 1.0 else 'MISSED'} |"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build-dir", default="build")
    parser.add_argument("--window", type=float, default=30.0, help="seconds of the at-rest measure")
    parser.add_argument("--failovers", type=int, default=5)
    parser.add_argument("--toggles", type=int, default=200, help="0: no cut row (no Apache)")
    parser.add_argument("--lease-ttl", type=int, default=6)
    parser.add_argument("--interval", type=int, default=10, help="[sessions] rescan_interval")
    options = parser.parse_args()
    paths = harness.Paths(Path(options.build_dir).resolve(), SOURCE)
    work = harness.run_dir_for(paths, f"cluster-bench-{os.getpid()}")
    cluster = Cluster(paths, work, options.lease_ttl, options.interval, options.toggles > 0)
    rows = []
    try:
        rows += at_rest(cluster, options.window)
        if options.toggles > 0:
            rows += cut_latency(cluster, options.toggles)
        rows += failover(cluster, options.failovers)
    finally:
        cluster.stop()
    print("| measure | figure | reference | note |")
    print("|---|---|---|---|")
    for row in rows:
        print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
