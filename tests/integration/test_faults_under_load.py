"""mod_coupecircuit in a real Apache (prefork + mod_php) under wrk load while
faults happen: the helper republishing as fast as it can, the helper killed
with SIGKILL and restarted, graceful restarts of Apache, the snapshot file
deleted, replaced with garbage and truncated.

Every request must get a 2xx/3xx answer (wrk sends `Connection: close`, so a
graceful restart cannot close a kept-alive connection under a request: no
socket error of any kind is acceptable), the values must come back after each
fault within CoupeCircuitMaxAge + 3 s, and the error logs must show no crash
(the log scanner of the `logs` fixture).

Each phase lasts 10 s (60 s with COUPECIRCUIT_LONG_TESTS=1), longer when the
faults take longer on a slow host: the load always covers all of them.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass

import pytest

from harness import Apache, Helper, clean_env, wait_for

WRK = shutil.which("wrk") or "/usr/bin/wrk"
MAX_AGE = 2
RECOVERY = MAX_AGE + 3.0
PHASE_SECONDS = 60 if os.environ.get("COUPECIRCUIT_LONG_TESTS") == "1" else 10
# Faults of phases (b), (c) and (d) are spread over this share of the phase;
# the load lasts until the last one has been dealt with in any case.
FAULT_SPAN = 0.8

# Room for wrk's 8 connections, the probes and the children still closing
# connections (each request has its own). wrk saturates the CPUs, so prefork
# may still spawn up to the limit and log "server reached MaxRequestWorkers"
# (AH00161): a capacity notice, allowed; failed or slow requests are what the
# wrk checks catch.
PREFORK_MPM = {"StartServers": "8", "MinSpareServers": "8", "MaxSpareServers": "16", "ServerLimit": "32",
               "MaxRequestWorkers": "32"}
MPM_FULL = r"AH00161: server reached MaxRequestWorkers"

MODULE_STALE_OR_MISSING = r"\[coupecircuit:warn\].*\b(CC0301|CC0302)\b"
HELPER_RECREATED = r"\bCC0021\b"

REQUESTS_LINE = re.compile(r"^\s*(\d+) requests in ([\d.]+)(\w+),", re.MULTILINE)
SOCKET_ERRORS_LINE = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")


@dataclass
class WrkResult:
    output: str
    requests: int
    seconds: str
    socket_errors: dict[str, int]
    non_2xx_3xx: str | None


def parse_wrk(output: str) -> WrkResult:
    requests = REQUESTS_LINE.search(output)
    assert requests is not None, f"no request count in the output of wrk:\n{output}"
    errors = {"connect": 0, "read": 0, "write": 0, "timeout": 0}
    socket_line = SOCKET_ERRORS_LINE.search(output)
    if socket_line is not None:
        errors = dict(zip(errors, map(int, socket_line.groups())))
    elif "Socket errors" in output:
        raise AssertionError(f"unparsed 'Socket errors' line in the output of wrk:\n{output}")
    non_2xx = next((line.strip() for line in output.splitlines() if "Non-2xx or 3xx responses" in line), None)
    return WrkResult(output, int(requests.group(1)), requests.group(2) + requests.group(3), errors, non_2xx)


class Wrk:
    """wrk -t2 -c8 against /env.php in a subprocess, one connection per request.
    It runs for the phase and, on a slow host, until the last fault has been
    dealt with: -d leaves room and finish() stops it with SIGINT (wrk then
    prints its statistics as at the end of -d)."""

    SLACK = 120

    def __init__(self, port: int, seconds: int):
        self.seconds = seconds
        self.command = [WRK, "-t2", "-c8", f"-d{seconds + self.SLACK}s", "--timeout", "10s", "--latency",
                        "-H", "Connection: close", f"http://127.0.0.1:{port}/env.php"]
        self.process: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> "Wrk":
        self.started = time.monotonic()
        self.process = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, env=clean_env())
        return self

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def remaining(self) -> float:
        return self.started + self.seconds - time.monotonic()

    def finish(self) -> WrkResult:
        """Waits for the end of the phase, stops wrk and parses its output."""
        assert self.process is not None
        sleep_until(self.started + self.seconds)
        assert self.running(), f"wrk ended early ({self.process.returncode}):\n{self.process.communicate()[0]}"
        self.process.send_signal(signal.SIGINT)
        output, _ = self.process.communicate(timeout=60)
        assert self.process.returncode == 0, f"wrk exited with {self.process.returncode}:\n{output}"
        return parse_wrk(output)

    def kill(self) -> None:
        if self.running():
            self.process.kill()
            self.process.communicate(timeout=10)


def env_ok(client, within: float, what: str, condition=None) -> dict:
    """Polls /env.php (every answer must be a 200) until COUPECIRCUIT_ETAT is
    ok (and condition(env) holds, when given) within `within` seconds."""
    env, _ = wait_for(client.env, lambda e: e["COUPECIRCUIT_ETAT"] == "ok" and (condition is None or condition(e)),
                      within, what, interval=0.05)
    return env


def sleep_until(moment: float) -> None:
    delay = moment - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def spread(wrk: Wrk, count: int, index: int) -> float:
    """Monotonic time of fault `index` (0-based) of `count`, spread evenly."""
    return wrk.started + wrk.seconds * FAULT_SPAN * (index + 0.5) / count


# ---------------------------------------------------------------- the faults

def republish(helper: Helper, apache: Apache, wrk: Wrk) -> list[str]:
    """(a) coupecircuitctl threshold set sessions N in a loop, N varying, as
    fast as it goes; the values are checked every second or so and at the end."""
    client = apache.client()
    notes = []
    count = 0
    next_check = time.monotonic() + 1.0
    while wrk.remaining() > 1.0:
        value = 10 + count % 90
        helper.ctl_ok("threshold", "set", "sessions", str(value))
        count += 1
        if time.monotonic() >= next_check:
            env_ok(client, RECOVERY, f"values while republishing (after {count} threshold changes)")
            next_check = time.monotonic() + 1.0
    final = "4242"
    helper.ctl_ok("threshold", "set", "sessions", final)
    env_ok(client, RECOVERY, "the last threshold reaches PHP", lambda e: e["SEUIL_SESSIONS_ACTIVES"] == final)
    notes.append(f"{count + 1} threshold changes")
    return notes


def recoveries(apache: Apache, wrk: Wrk, fault, what: str) -> float:
    """fault(index) 10 times, spread over the load, each followed by values
    back in PHP; returns the longest recovery, in seconds."""
    client = apache.client()
    waits = []
    for index in range(10):
        sleep_until(spread(wrk, 10, index))
        fault(index)
        since = time.monotonic()
        env_ok(client, RECOVERY, f"values after {what} #{index + 1}")
        waits.append(time.monotonic() - since)
    return max(waits)


def kill9_and_restart(helper: Helper, apache: Apache, wrk: Wrk) -> list[str]:
    """(b) the helper killed with SIGKILL and restarted, 10 times."""

    def fault(index: int) -> None:
        helper.kill9()
        time.sleep(0.1 * (index % 4))  # a few kills leave the snapshot unattended for a while
        helper.start()

    return [f"10 kill -9 + restart, recovery max {recoveries(apache, wrk, fault, 'kill -9 and restart'):.2f} s"]


def graceful_restarts(helper: Helper, apache: Apache, wrk: Wrk) -> list[str]:
    """(c) apache2 -k graceful, 10 times."""
    del helper  # every fault has the same signature
    longest = recoveries(apache, wrk, lambda _index: apache.graceful(), "graceful restart")
    return [f"10 graceful restarts, recovery max {longest:.2f} s"]


def damage_snapshot(helper: Helper, apache: Apache, wrk: Wrk) -> list[str]:
    """(d) the snapshot deleted, replaced with garbage of the same size
    (written aside, then renamed over), truncated to 0 bytes: once each."""
    client = apache.client()
    path = helper.snapshot

    def delete():
        path.unlink()

    def garbage():
        temporary = path.with_name(path.name + ".garbage")
        temporary.write_bytes(os.urandom(path.stat().st_size))
        os.replace(temporary, path)

    def truncate():
        os.truncate(path, 0)

    notes = []
    faults = [("deleted", delete), ("replaced with garbage", garbage), ("truncated", truncate)]
    for index, (name, fault) in enumerate(faults):
        sleep_until(spread(wrk, len(faults), index))
        env_ok(client, RECOVERY, f"values before the snapshot is {name}")
        fault()
        since = time.monotonic()
        env_ok(client, RECOVERY, f"values back after the snapshot was {name}")
        assert helper.running(), f"coupecircuitd exited ({helper.process.returncode}) after the snapshot was " \
                                 f"{name}:\n{helper.log_text()}"
        notes.append(f"{name}: back in {time.monotonic() - since:.2f} s")
    return notes


PHASES = {
    "republish": (republish, ()),
    "helper_kill9": (kill9_and_restart, (MODULE_STALE_OR_MISSING,)),
    "graceful": (graceful_restarts, ()),
    "snapshot_damage": (damage_snapshot, (MODULE_STALE_OR_MISSING, HELPER_RECREATED)),
}


@pytest.mark.parametrize("phase", list(PHASES))
def test_faults_under_load(helper, make_apache, module_so, logs, phase):
    if not os.access(WRK, os.X_OK):
        pytest.skip(f"wrk is not installed ({WRK}; Debian package wrk)")
    fault, allowed = PHASES[phase]
    for pattern in (MPM_FULL, *allowed):
        logs.allow(pattern)
    apache = make_apache("prefork", helper, with_module=True, server_lines=[f"CoupeCircuitMaxAge {MAX_AGE}"],
                         mpm=PREFORK_MPM)
    client = apache.client()
    env_ok(client, RECOVERY, "values before the load")

    wrk = Wrk(apache.port, PHASE_SECONDS).start()
    try:
        notes = fault(helper, apache, wrk)
        result = wrk.finish()
    finally:
        wrk.kill()

    assert helper.running(), f"coupecircuitd exited ({helper.process.returncode}):\n{helper.log_text()}"
    env_ok(client, RECOVERY, "values after the load")
    print(f"\n[{phase}] {result.seconds}: {result.requests} requests, socket errors {result.socket_errors}, "
          f"{result.non_2xx_3xx or 'no non-2xx/3xx'}; " + "; ".join(notes))
    assert result.requests > 0, result.output
    assert result.non_2xx_3xx is None, f"{result.non_2xx_3xx}\n{result.output}"
    assert result.socket_errors == {"connect": 0, "read": 0, "write": 0, "timeout": 0}, result.output
