"""The overload experiment's quick mode (bench/overload/run.sh --quick) as a
test of the whole promise: two nodes behind HAProxy, their PHP sessions in one
real redis-server (phpredis, counted by each node's coupecircuitd), PostgreSQL
limited to 30 connections, new visitors ramping to 3x the capacity measured
at the start.

The shape, whatever the machine's speed or other work (the rates come from
the capacity measured at the start): with CoupeCircuit (B) no 5xx at all,
at least 95 % of the logged-in users' requests succeed, none is sent back to
the login form, and new visitors are shed; without it (A) the same traffic
brings at least one 500 or timeout.
The full run's targets are in docs/OVERLOAD.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from harness import clean_env
from redis_harness import redis_available

QUICK_BUDGET_SECONDS = 300


@pytest.fixture(scope="module")
def results(paths):
    if not paths.module.is_file():
        pytest.skip(f"mod_coupecircuit.so not built ({paths.module} does not exist)")
    if os.geteuid() != 0:
        pytest.skip("the overload experiment runs as root (www-data, postgres)")
    if not os.path.exists("/usr/lib/postgresql/15/bin/postgres"):
        pytest.skip("PostgreSQL 15 is missing (Debian package postgresql)")
    if not redis_available():
        pytest.skip("redis-server and redis-cli are needed (Debian package redis-server)")
    out = paths.run_root / "overload-quick"
    command = [sys.executable, str(paths.source_dir / "bench" / "overload" / "overload.py"), "--quick",
               "--sessions", "redis", "--build-dir", str(paths.build_dir), "--out", str(out)]
    try:
        run = subprocess.run(command, capture_output=True, text=True, timeout=QUICK_BUDGET_SECONDS,
                             env=clean_env(PYTHONDONTWRITEBYTECODE="1"))
    except subprocess.TimeoutExpired as error:
        pytest.fail(f"overload.py --quick took more than {QUICK_BUDGET_SECONDS} s:\n{error.stdout}\n{error.stderr}")
    assert run.returncode == 0, f"overload.py --quick -> {run.returncode}\n{run.stdout}\n{run.stderr}"
    document = json.loads((out / "results.json").read_text())
    document["log"] = run.stdout
    return document


def totals(run: dict, key: str) -> int:
    return sum(run["classes"][cls][key] for cls in ("logged-in", "new"))


def test_capacity_is_measured(results):
    capacity = results["capacity"]
    assert capacity["rps"] > 5, results["log"]
    assert capacity["errors"] == 0, f"the capacity measurement itself failed requests: {capacity}"
    assert results["thresholds"]["release"] < results["thresholds"]["trip"]


def test_without_coupecircuit_the_spike_fails_requests(results):
    run = results["runs"]["A"]
    failures = totals(run, "errors_5xx") + totals(run, "timeouts")
    assert failures >= 1, f"run A saw no 500 and no timeout: the spike overloaded nothing\n{results['log']}"


def test_with_coupecircuit_nobody_gets_a_5xx(results):
    run = results["runs"]["B"]
    assert totals(run, "errors_5xx") == 0, f"run B: {json.dumps(run['classes'], indent=1)}\n{results['log']}"
    assert run["pg_too_many_clients"] == 0, "PostgreSQL refused connections in run B"


def test_with_coupecircuit_logged_in_users_keep_working(results):
    users = results["runs"]["B"]["classes"]["logged-in"]
    assert users["success_rate"] >= 0.95, f"run B, logged-in users: {users}\n{results['log']}"
    # The sessions are in Redis: whichever node answers, nobody is logged out.
    assert results["sessions"] == "redis"
    assert users["lost_session"] == 0, f"run B sent logged-in users back to the login form: {users}"


def test_with_coupecircuit_new_visitors_are_shed_politely(results):
    run = results["runs"]["B"]
    new = run["classes"]["new"]
    assert new["shed"] > 0, f"run B shed no new visitor: {new}"
    assert run["first_shed_after_spike_s"] is not None
    assert any(node.get("tripped") for node in run["nodes"].values()), run["nodes"]
