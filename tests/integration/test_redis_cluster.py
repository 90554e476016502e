"""Sessions kept in a real Redis Cluster (3 masters, one replica each, all
real redis-server processes), written by real PHP with phpredis
(session.save_handler = rediscluster), counted by coupecircuitd, which
finds the masters with CLUSTER SLOTS and follows a failover. One cluster
for the whole module: it is slow to start."""

from __future__ import annotations

import os

import pytest

from harness import run_dir_for, wait_for
from redis_harness import (NOTIFICATION_DEADLINE, PASS_INTERVAL, RedisCluster, counts, new_id, php_sessions,
                           redis_available, store_of, wait_active)

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server and redis-cli are needed")


@pytest.fixture(scope="module")
def cluster(paths):
    directory = run_dir_for(paths, f"redis-cluster-{os.getpid()}")  # several test runs may share the machine
    cluster = RedisCluster(directory, masters=3, replicas=1, notifications="KEA").start()
    yield cluster
    cluster.stop()


def write(cluster: RedisCluster, *operations: tuple[str, str]) -> None:
    php_sessions("rediscluster", cluster.seeds(), operations)


def cluster_helper(make_helper, cluster: RedisCluster, interval: int = PASS_INTERVAL):
    config = f"\n[sessions]\nsave_handler = rediscluster\nsave_path = {cluster.seeds()}\n"
    return make_helper(interval=interval, config_extra=config)


def test_counts_sessions_spread_over_every_master(make_helper, cluster):
    for master in cluster.masters():
        master.cli("FLUSHALL")
    logged = [new_id() for _ in range(24)]
    write(cluster, *[("authenticated", sid) for sid in logged], *[("anonymous", new_id()) for _ in range(9)],
          ("empty", new_id()))
    per_master = [len(master.keys("PHPREDIS_CLUSTER_SESSION:*")) for master in cluster.masters()]
    assert len(per_master) == 3 and all(n > 0 for n in per_master), f"keys per master: {per_master}"

    helper = cluster_helper(make_helper, cluster, interval=60)
    sessions, store = store_of(helper)
    assert sessions["active"] == counts(authenticated=24, anonymous=9, empty=1), sessions
    assert store["kind"] == "rediscluster" and store["masters_reached"] == 3 and store["masters_total"] == 3
    assert store["keys_seen"] == 34 and store["notifications"] is True

    # Notifications from every master: each login and logout within 1 s.
    for _ in range(3):
        sid = new_id()
        write(cluster, ("authenticated", sid))
        waited = wait_active(helper, counts(authenticated=25, anonymous=9, empty=1), NOTIFICATION_DEADLINE, "login")
        print(f"cluster login seen after {waited:.3f} s")
        write(cluster, ("destroy", sid))
        wait_active(helper, counts(authenticated=24, anonymous=9, empty=1), NOTIFICATION_DEADLINE, "logout")
    text = helper.ctl_ok("status").stdout
    assert "store:      rediscluster, masters 3/3, 34 keys" in text and "notifications on" in text, text


def test_master_killed_replica_promoted_counts_return(make_helper, cluster, logs):
    for master in cluster.masters():
        master.cli("FLUSHALL")
    write(cluster, *[("authenticated", new_id()) for _ in range(12)])
    wait_for(cluster.replication_ready, bool, 10, "replicas in sync")
    for master in cluster.masters():  # replicas have every write before the kill
        master.cli("WAIT", "1", "2000")
    helper = cluster_helper(make_helper, cluster)
    sessions, _ = store_of(helper)
    assert sessions["active"] == counts(authenticated=12)

    logs.allow(r"CC0070")
    victim = cluster.masters()[0]
    victim.kill()
    wait_for(lambda: store_of(helper)[1], lambda store: not store["available"], PASS_INTERVAL + 5,
             "the store is flagged unavailable while a master is down")
    # cluster-node-timeout 1 s: the replica takes over; the helper finds it
    # with CLUSTER SLOTS and counts again, without a restart.
    pid = helper.pid
    waited = wait_active(helper, counts(authenticated=12), 20, "counts back after the failover")
    print(f"counts back {waited:.1f} s after the store was flagged")
    assert helper.pid == pid
    _, store = store_of(helper)
    assert store["masters_reached"] == 3 and store["masters_total"] == 3
    assert "CC0073" in helper.log_text()
