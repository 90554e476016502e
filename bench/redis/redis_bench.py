#!/usr/bin/env python3
"""Benchmark of coupecircuitd counting PHP sessions kept in Redis (not a test).

A local redis-server (no persistence) is filled with N phpredis sessions
(25 % authenticated, ~1.4 KB; the others anonymous, ~0.3 KB; TTL 1440 s),
then, side by side in the same run:
  floor       bench/redis/redis_floor: SCAN MATCH COUNT 1000 + pipelined GET of
              every key, the least a counter can ask the server for;
  first pass  coupecircuitd --once (a fresh helper: every value is new);
  rescan      a running helper, pass triggered by SIGHUP after 1 % of the
              sessions were rewritten: bytes the server sent for the pass
              (INFO stats total_net_output_bytes) versus a first pass;
  RSS         VmHWM of the running helper;
  notify      (--notify) keyspace notifications on: login -> snapshot latency
              (p50/p99 of 50 logins) and the helper's CPU while 1,000 session
              writes per second arrive for 20 s.

  bench/redis/redis_bench.py --build-dir build [--sessions 100000 1000000]
Prints Markdown rows for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
PREFIX = "PHPREDIS_SESSION:"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def resp(*words: bytes) -> bytes:
    out = [b"*%d\r\n" % len(words)]
    for word in words:
        out.append(b"$%d\r\n%s\r\n" % (len(word), word))
    return b"".join(out)


_POOL: dict[int, list[str]] = {}


def filler(length: int, rng: random.Random) -> str:
    """One of 256 random strings of that length (generating 1M values stays fast)."""
    pool = _POOL.get(length)
    if pool is None:  # built once (setdefault would rebuild it on every call)
        pool = _POOL[length] = ["".join(random.Random(length * 1000 + i).choices("abcdefghij", k=length))
                                for i in range(256)]
    return pool[rng.randrange(256)]


def session_value(authenticated: bool, rng: random.Random) -> bytes:
    if authenticated:
        prefs = filler(1200, rng)
        return ('Default|a:1:{s:11:"initialized";b:1;}__ZF|a:1:{s:7:"vzn_abc";a:1:{s:3:"ENT";i:1700000000;}}'
                f'vzn_test|a:2:{{s:7:"storage";s:11:"compte_reel";s:5:"prefs";s:{len(prefs)}:"{prefs}";}}').encode()
    cart = filler(220, rng)
    return f'Default|a:2:{{s:11:"initialized";b:1;s:4:"cart";s:{len(cart)}:"{cart}";}}'.encode()


class Redis:
    def __init__(self, workdir: Path):
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(workdir), "--logfile", str(workdir / "redis.log")], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.cli("PING") != "PONG":
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server does not answer")
            time.sleep(0.05)

    def cli(self, *args: str) -> str:
        return subprocess.run(["redis-cli", "-p", str(self.port), *args], capture_output=True, text=True).stdout.strip()

    def pipe(self, data: bytes) -> None:
        subprocess.run(["redis-cli", "-p", str(self.port), "--pipe"], input=data, check=True, capture_output=True)

    def net_output(self) -> int:
        for line in self.cli("INFO", "stats").splitlines():
            if line.startswith("total_net_output_bytes:"):
                return int(line.split(":")[1])
        raise RuntimeError("no total_net_output_bytes")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def fill(redis: Redis, count: int, rng: random.Random) -> list[bytes]:
    """One pipelined connection (redis-cli --pipe) fed in batches of 10k SETEX."""
    keys = []
    writer = subprocess.Popen(["redis-cli", "-p", str(redis.port), "--pipe"], stdin=subprocess.PIPE,
                              stdout=subprocess.DEVNULL)
    batch = []
    for i in range(count):
        key = (PREFIX + "%026x" % rng.getrandbits(104)).encode()
        keys.append(key)
        batch.append(resp(b"SETEX", key, b"1440", session_value(i % 4 == 0, rng)))
        if len(batch) == 10000:
            writer.stdin.write(b"".join(batch))
            batch = []
    writer.stdin.write(b"".join(batch))
    writer.stdin.close()
    if writer.wait(600) != 0:
        raise RuntimeError("redis-cli --pipe failed")
    return keys


def status(ctl: Path, snapshot: Path) -> dict:
    result = subprocess.run([str(ctl), "--snapshot", str(snapshot), "--max-age", "86400", "status", "--json"],
                            capture_output=True, text=True)
    return json.loads(result.stdout)


def wait_for_helper(ctl: Path, snapshot: Path, helper: subprocess.Popen, ready, failure: str) -> None:
    """Polls (2 minutes at most) until this helper published a snapshot whose
    store ready(store) accepts; raises RuntimeError(failure) past that."""
    deadline = time.monotonic() + 120
    while True:
        try:
            document = status(ctl, snapshot)
            if document.get("helper_pid") == helper.pid and ready(document["store"]):
                return
        except (json.JSONDecodeError, KeyError):
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(failure)
        time.sleep(0.1)


def vm(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def run(count: int, build: Path, floor_tool: Path, work: Path, rounds: int) -> dict:
    rng = random.Random(count)
    redis = Redis(work)
    try:
        started = time.monotonic()
        keys = fill(redis, count, rng)
        print(f"filled {count:,} sessions in {time.monotonic() - started:.1f} s", file=sys.stderr, flush=True)
        assert int(redis.cli("DBSIZE")) == count
        daemon, ctl = build / "scanner" / "coupecircuitd", build / "ctl" / "coupecircuitctl"
        config = work / "coupecircuitd.conf"
        config.write_text(f"[sessions]\nsave_handler = redis\nsave_path = tcp://127.0.0.1:{redis.port}\n"
                          f"[log]\nlevel = warning\n")
        snapshot, state = work / "snapshot", work / "state"
        base = [str(daemon), "--config", str(config), "--snapshot", str(snapshot), "--state", str(state)]

        floors = []
        for _ in range(rounds):
            out = subprocess.run([str(floor_tool), "127.0.0.1", str(redis.port), PREFIX], capture_output=True,
                                 text=True, check=True).stdout
            floors.append(json.loads(out))
        floor_s = statistics.median(f["seconds"] for f in floors)

        firsts, first_bytes = [], []
        for _ in range(rounds):
            before = redis.net_output()
            started = time.monotonic()
            subprocess.run(base + ["--once"], check=True)
            wall = time.monotonic() - started
            first_bytes.append(redis.net_output() - before)
            document = status(ctl, snapshot)
            store = document["store"]
            assert store["keys_seen"] == count, store
            assert document["sessions"]["active"]["authenticated"] == (count + 3) // 4, document["sessions"]
            firsts.append((store["pass_duration_us"] / 1e6, wall))
        first_pass_s = statistics.median(p for p, _ in firsts)
        first_wall_s = statistics.median(w for _, w in firsts)

        helper = subprocess.Popen(base + ["--foreground", "--interval", "3600"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for_helper(ctl, snapshot, helper, lambda store: store["keys_seen"] == count,
                            "the helper's first pass did not end")

            def triggered_pass(prepare=None) -> tuple[int, dict]:
                previous = status(ctl, snapshot)["last_scan"]["wall_time"], status(ctl, snapshot)["store"]
                if prepare:
                    prepare()
                time.sleep(1.1)  # a new wall_time second for the pass below
                before = redis.net_output()
                helper.send_signal(signal.SIGHUP)
                deadline = time.monotonic() + 120
                while True:
                    document = status(ctl, snapshot)
                    if document["last_scan"]["wall_time"] != previous[0]:
                        return redis.net_output() - before, document["store"]
                    if time.monotonic() > deadline:
                        raise RuntimeError("no pass after SIGHUP")
                    time.sleep(0.05)

            unchanged_bytes, unchanged = triggered_pass()
            changed = rng.sample(keys, max(1, count // 100))

            def rewrite():
                redis.pipe(b"".join(resp(b"SETEX", key, b"1440", session_value(True, rng)) for key in changed))

            rescan_bytes, rescan = triggered_pass(rewrite)
            rss_peak = vm(helper.pid, "VmHWM")
            rss_now = vm(helper.pid, "VmRSS")
        finally:
            helper.terminate()
            helper.wait(30)
        return {
            "sessions": count, "floor_s": floor_s, "floor_bytes": floors[0]["bytes"],
            "first_pass_s": first_pass_s, "first_wall_s": first_wall_s,
            "first_bytes": statistics.median(first_bytes),
            "unchanged_bytes": unchanged_bytes, "unchanged_pass_s": unchanged["pass_duration_us"] / 1e6,
            "rescan_bytes": rescan_bytes, "rescan_values": rescan["values_read_last_pass"],
            "rescan_pass_s": rescan["pass_duration_us"] / 1e6, "changed": len(changed),
            "rss_peak": rss_peak, "rss_now": rss_now,
        }
    finally:
        redis.stop()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def notify_run(count: int, build: Path, work: Path) -> dict:
    rng = random.Random(count + 1)
    redis = Redis(work)
    try:
        redis.cli("CONFIG", "SET", "notify-keyspace-events", "KEA")
        keys = fill(redis, count, rng)
        daemon, ctl = build / "scanner" / "coupecircuitd", build / "ctl" / "coupecircuitctl"
        config = work / "notify.conf"
        config.write_text(f"[sessions]\nsave_handler = redis\nsave_path = tcp://127.0.0.1:{redis.port}\n"
                          f"[log]\nlevel = warning\n")
        snapshot = work / "snapshot-notify"
        helper = subprocess.Popen([str(daemon), "--config", str(config), "--snapshot", str(snapshot), "--state",
                                   str(work / "state-notify"), "--foreground"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            wait_for_helper(ctl, snapshot, helper, lambda store: store["notifications"], "no first pass")
            latencies = []
            for _ in range(50):
                before = status(ctl, snapshot)["sessions"]["active"]["authenticated"]
                key = (PREFIX + "%026x" % rng.getrandbits(104)).encode()
                started = time.monotonic()
                redis.pipe(resp(b"SETEX", key, b"1440", session_value(True, rng)))
                while status(ctl, snapshot)["sessions"]["active"]["authenticated"] == before:
                    if time.monotonic() - started > 10:
                        raise RuntimeError("login not seen")
                latencies.append(time.monotonic() - started)
            latencies.sort()
            writer = subprocess.Popen(["redis-cli", "-p", str(redis.port), "--pipe"], stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL)
            cpu_before, started = cpu_seconds(helper.pid), time.monotonic()
            sent = 0
            while time.monotonic() - started < 20:
                target = int((time.monotonic() - started) * 1000)
                batch = [resp(b"SETEX", rng.choice(keys), b"1440", session_value(rng.random() < 0.25, rng))
                         for _ in range(max(0, target - sent))]
                if batch:
                    writer.stdin.write(b"".join(batch))
                    writer.stdin.flush()
                    sent += len(batch)
                time.sleep(0.01)
            elapsed = time.monotonic() - started
            cpu = cpu_seconds(helper.pid) - cpu_before
            writer.stdin.close()
            writer.wait(60)
        finally:
            helper.terminate()
            helper.wait(30)
        return {"p50": latencies[len(latencies) // 2], "p99": latencies[int(len(latencies) * 0.99) - 1],
                "writes_per_s": sent / elapsed, "cpu_percent": 100 * cpu / elapsed}
    finally:
        redis.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build-dir", required=True, type=Path)
    parser.add_argument("--sessions", type=int, nargs="+", default=[100_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--notify", type=int, default=0, metavar="SESSIONS",
                        help="also measure with keyspace notifications on, over this many sessions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cc-redis-bench-") as temporary:
        work = Path(temporary)
        floor_tool = work / "redis_floor"
        subprocess.run(["g++", "-std=c++20", "-O2", "-o", str(floor_tool), str(HERE / "redis_floor.cpp"), "-lhiredis"],
                       check=True)
        print("| sessions | floor SCAN+GET | first pass (helper) | ratio | --once wall | bytes: first pass | "
              "bytes: pass, nothing changed | bytes: pass after 1 % rewritten (values read) | full/1 % ratio | RSS peak |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for count in args.sessions:
            r = run(count, args.build_dir, floor_tool, work, args.rounds)
            print(f"| {r['sessions']:,} | {r['floor_s']:.3f} s | {r['first_pass_s']:.3f} s | "
                  f"{r['first_pass_s'] / r['floor_s']:.2f}x | {r['first_wall_s']:.3f} s | "
                  f"{r['first_bytes'] / 1e6:.1f} MB | {r['unchanged_bytes'] / 1e6:.2f} MB | "
                  f"{r['rescan_bytes'] / 1e6:.2f} MB ({r['rescan_values']:,}) | "
                  f"{r['first_bytes'] / r['rescan_bytes']:.1f}x | {r['rss_peak'] / 1e6:.0f} MB |", flush=True)
            print(json.dumps(r), file=sys.stderr, flush=True)
        if args.notify:
            n = notify_run(args.notify, args.build_dir, work)
            print(f"\n| sessions | login -> snapshot p50 | p99 | session writes/s | helper CPU |\n|---|---|---|---|---|\n"
                  f"| {args.notify:,} | {n['p50'] * 1000:.0f} ms | {n['p99'] * 1000:.0f} ms | "
                  f"{n['writes_per_s']:.0f} | {n['cpu_percent']:.2f} % of a core |", flush=True)
            print(json.dumps(n), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
