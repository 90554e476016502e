"""One session pass per cluster (docs/CLUSTER.md): three real coupecircuitd
sharing one real redis-server for their sessions and their cluster (and two
sharing a real 3-master Redis Cluster), sessions written by real PHP
(phpredis). Exactly one helper holds the lease and
counts, the others show its counts; kill -9 of the holder hands the lease
and the counting to another within TTL + 1 s while Apache answers 200
under wrk; Redis killed: every node flags its sessions unknown, Apache still
answers 200."""

from __future__ import annotations

import os
import time

import pytest

from harness import run_dir_for, wait_for
from redis_harness import RedisCluster, RedisServer, counts, new_id, php_sessions, redis_available
from test_faults_under_load import MPM_FULL, PREFORK_MPM, Wrk

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server and redis-cli are needed")

CLUSTER = "lease-test"
NODES = ("web1", "web2", "web3")
LEASE_TTL = 3           # seconds ([cluster] lease_ttl)
STALE_AFTER = 3         # seconds ([cluster] counts_stale_after)
PASS_INTERVAL = 1       # seconds ([sessions] rescan_interval)
FAILOVER_LIMIT = LEASE_TTL + 1.0


def cluster_doc(helper) -> tuple[dict, dict]:
    """(status document, its cluster block) of one node."""
    _, document = helper.status()
    return document, document.get("cluster", {})


def holders(helpers) -> list[str]:
    return [name for name, helper in helpers.items() if cluster_doc(helper)[1].get("lease_held_here")]


@pytest.fixture(scope="module")
def redis(paths):
    server = RedisServer(run_dir_for(paths, f"cluster-lease-redis-{os.getpid()}") / "redis").start()
    yield server
    if server.running():
        server.stop()


@pytest.fixture
def nodes(make_helper, redis):
    """Three helpers of one cluster, sessions and cluster state in `redis`."""
    if not redis.running():
        redis.start()
    redis.cli("FLUSHALL")
    php_sessions("redis", f"tcp://127.0.0.1:{redis.port}",
                 [("authenticated", new_id()), ("authenticated", new_id()), ("anonymous", new_id())])
    helpers = {}
    for name in NODES:
        config = (f"\n[sessions]\nsave_handler = redis\nsave_path = tcp://127.0.0.1:{redis.port}\n"
                  f"\n[cluster]\nname = {CLUSTER}\nnode = {name}\nredis = tcp://127.0.0.1:{redis.port}\n"
                  f"lease_ttl = {LEASE_TTL}\ncounts_stale_after = {STALE_AFTER}\n")
        helpers[name] = make_helper(start=False, name=name, interval=PASS_INTERVAL, config_extra=config)
    for helper in helpers.values():
        helper.start(wait=False)
    expected = counts(authenticated=2, anonymous=1)
    for name, helper in helpers.items():
        wait_for(lambda h=helper: cluster_doc(h), lambda v: v[0].get("sessions", {}).get("active") == expected,
                 20, f"{name} shows the cluster's counts")
    return helpers


def scan_calls(redis) -> int:
    for line in redis.cli("INFO", "commandstats").stdout.splitlines():
        if line.startswith("cmdstat_scan:"):
            return int(line.split("calls=")[1].split(",")[0])
    return 0


def test_exactly_one_node_counts(nodes, redis):
    holder = wait_for(lambda: holders(nodes), lambda h: len(h) == 1, 10, "one lease holder")[0][0]
    for name, helper in nodes.items():
        _, block = cluster_doc(helper)
        assert block["lease_holder"] == holder, (name, block)
        assert block["counts_from_peer"] == (name != holder), (name, block)
        assert not block["counts_stale"], (name, block)
        assert block["lease_fencing"] >= 1, (name, block)
    # Only the holder scans: over a few pass periods, Redis sees at most one
    # SCAN per period (three counting nodes would make three).
    window = 5 * PASS_INTERVAL
    before = scan_calls(redis)
    time.sleep(window)
    scans = scan_calls(redis) - before
    assert 1 <= scans <= window / PASS_INTERVAL + 2, f"{scans} SCAN calls in {window} s"
    # A new login is counted by the holder and shown everywhere.
    php_sessions("redis", f"tcp://127.0.0.1:{redis.port}", [("authenticated", new_id())])
    for name, helper in nodes.items():
        wait_for(lambda h=helper: cluster_doc(h)[0], lambda d: d["sessions"]["active"]["authenticated"] == 3,
                 PASS_INTERVAL + 5, f"{name} shows the new login")
    # A clean stop releases the lease (compare-and-delete): another node takes
    # it at its next attempt, sooner than the TTL would let it.
    stopped_at = time.monotonic()
    assert nodes[holder].stop() == 0
    assert "CC0451" in nodes[holder].log_text() and "released on stop" in nodes[holder].log_text()
    others = {name: helper for name, helper in nodes.items() if name != holder}
    wait_for(lambda: holders(others), lambda h: len(h) == 1, LEASE_TTL, "another holder after a clean stop",
             interval=0.05)
    print(f"lease taken over after a clean stop: {time.monotonic() - stopped_at:.2f} s")


def test_holder_killed_another_takes_over_within_ttl(nodes, redis, make_apache, logs):
    logs.allow(MPM_FULL)  # wrk saturates the CPUs: a capacity notice
    apaches = {name: make_apache("prefork", helper, name=f"apache-{name}", with_module=True, mpm=PREFORK_MPM)
               for name, helper in nodes.items()}
    holder = wait_for(lambda: holders(nodes), lambda h: len(h) == 1, 10, "one lease holder")[0][0]
    fencing = cluster_doc(nodes[holder])[1]["lease_fencing"]
    survivors = {name: helper for name, helper in nodes.items() if name != holder}
    loads = [Wrk(apache.port, 8).start() for name, apache in apaches.items() if name != holder]
    try:
        killed_at = time.monotonic()
        nodes[holder].kill9()

        def new_holder():
            for name, helper in survivors.items():
                document, block = cluster_doc(helper)
                if block.get("lease_held_here") and not block.get("counts_from_peer") and \
                        document["sessions"]["known"]:
                    return name, block
            return None

        (name, block), _ = wait_for(new_holder, lambda v: v is not None, FAILOVER_LIMIT + 5,
                                    "another node holds the lease and counts", interval=0.05)
        took = time.monotonic() - killed_at
        print(f"lease failover: {took:.2f} s (TTL {LEASE_TTL} s)")
        assert took <= FAILOVER_LIMIT, f"failover took {took:.2f} s, more than TTL + 1 s"
        assert block["lease_fencing"] > fencing
        other = next(n for n in survivors if n != name)
        wait_for(lambda: cluster_doc(survivors[other])[1], lambda b: b["lease_holder"] == name and
                 b["counts_from_peer"] and b["lease_fencing"] == block["lease_fencing"], 5,
                 f"{other} uses {name}'s counts")
    finally:
        results = [load.finish() for load in loads]
    for result in results:
        assert result.requests > 0, result.output
        assert result.non_2xx_3xx is None, result.output
        assert not any(result.socket_errors.values()), result.output


def test_redis_killed_sessions_unknown_everywhere_requests_served(nodes, redis, make_apache, logs):
    logs.allow(MPM_FULL)
    name = NODES[0]
    apache = make_apache("prefork", nodes[name], name=f"apache-{name}", with_module=True, mpm=PREFORK_MPM)
    load = Wrk(apache.port, 6).start()
    try:
        redis.kill()
        for node, helper in nodes.items():
            document, block = wait_for(lambda h=helper: cluster_doc(h), lambda v: not v[0]["sessions"]["known"],
                                       STALE_AFTER + LEASE_TTL + 5, f"{node} flags sessions unknown")[0]
            code, _ = helper.status(max_age=3)
            assert code != 2, f"{node}: heartbeat stale"
            assert block["counts_stale"] or block["lease_held_here"], (node, block)
        # Fail open: the variable is absent (never 0), the request served.
        env = apache.client().env()
        assert env["SESSIONS_ACTIVES"] is None, env
        assert env["COUPECIRCUIT_ETAT"] == "ok", env
    finally:
        result = load.finish()
        redis.start()
    assert result.requests > 0, result.output
    assert result.non_2xx_3xx is None, result.output
    assert not any(result.socket_errors.values()), result.output
    # Redis back (empty): one node takes the lease again, every node counts.
    for node, helper in nodes.items():
        wait_for(lambda h=helper: cluster_doc(h)[0], lambda d: d["sessions"]["known"], LEASE_TTL + STALE_AFTER + 10,
                 f"{node} counts again")


def test_one_counter_on_a_redis_cluster(make_helper, paths):
    """Sessions and the cluster's keys on a 3-master Redis Cluster: the lease
    keys share one hash slot ({lease-test}), one node counts every master."""
    redis_cluster = RedisCluster(run_dir_for(paths, f"cluster-lease-rc-{os.getpid()}") / "rc", masters=3).start()
    helpers = {}
    try:
        seeds = redis_cluster.seeds()
        php_sessions("rediscluster", seeds, [("authenticated", new_id()) for _ in range(6)])
        for name in NODES[:2]:
            config = (f"\n[sessions]\nsave_handler = rediscluster\nsave_path = {seeds}\n"
                      f"\n[cluster]\nname = {CLUSTER}\nnode = {name}\nredis = {seeds}\n"
                      f"lease_ttl = {LEASE_TTL}\ncounts_stale_after = {STALE_AFTER}\n")
            helpers[name] = make_helper(start=False, name=name, interval=PASS_INTERVAL, config_extra=config)
            helpers[name].start(wait=False)
        for name, helper in helpers.items():
            wait_for(lambda h=helper: cluster_doc(h)[0],
                     lambda d: d.get("sessions", {}).get("known") and d["sessions"]["active"]["authenticated"] == 6,
                     20, f"{name} shows the 6 logins of the 3 masters")
        holder = wait_for(lambda: holders(helpers), lambda h: len(h) == 1, 10, "one lease holder")[0][0]
        reader = next(n for n in helpers if n != holder)
        document, block = cluster_doc(helpers[reader])
        assert block["counts_from_peer"] and block["lease_holder"] == holder, block
        assert document["store"]["masters_reached"] == 3 and document["store"]["masters_total"] == 3, document
        # The lease's keys live together on one master (one Lua script).
        masters = redis_cluster.masters()
        slot = masters[0].cli("CLUSTER", "KEYSLOT", f"coupecircuit:{{{CLUSTER}}}:lease").stdout.strip()
        held = {node.port: int(node.cli("CLUSTER", "COUNTKEYSINSLOT", slot).stdout.strip()) for node in masters}
        assert sorted(held.values())[:-1] == [0, 0] and max(held.values()) >= 3, held  # lease, fencing, counts, ...
    finally:
        for helper in helpers.values():
            helper.stop()  # before Redis: a clean stop releases the lease
        redis_cluster.stop()
