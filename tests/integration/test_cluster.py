"""One switch for the whole cluster: three real nodes (each its own
coupecircuitd and its own Apache prefork + mod_php on its own port), joined
through a real Redis, standalone (TestStandalone) and a real 3-master Redis
Cluster (TestRedisCluster). coupecircuitctl runs on one node and every node's
$_SERVER follows; Redis killed keeps every node's cut; Redis back converges
and a --local change made meanwhile is reported; bad input says which
configuration line is wrong. Each class starts its nodes once and its tests
run in order."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time

import pytest

from cluster_harness import NodeSet, cluster_section, latency_report, percentile, written_version
from harness import LoadRunner, VirtualHost, free_port, run_dir_for, wait_for
from redis_harness import RedisCluster, RedisServer, redis_available

pytestmark = pytest.mark.skipif(not redis_available(), reason="redis-server and redis-cli are needed")

TOGGLES = 50
SPREAD_LIMIT_S = 1.0  # cut -> $_SERVER on the farthest node, p99
CLUSTER = "prod-web"
# Each vhost with a directive of its own: vhosts with none share the main
# server's settings in mod_coupecircuit (and so its ServerName).
VHOSTS = [VirtualHost("a.test", ["CoupeCircuitThreshold load 500"]),
          VirtualHost("b.test", ["CoupeCircuitThreshold load 400"])]


def cut_value(expected: str):
    return lambda env: env["COUPURE_CHARGE_SERVEUR"] == expected


def toggle_and_measure(nodes: NodeSet, label: str) -> list[float]:
    """cut on / cut off through node 1, TOGGLES times; each time, the seconds
    from the command until $_SERVER shows it on every node."""
    spreads = []
    for i in range(TOGGLES):
        on = i % 2 == 0
        started = time.monotonic()
        nodes[0].ctl_ok("cut", "on" if on else "off", wait=5)
        nodes.wait_env(cut_value("1" if on else "0"), 5.0, f"toggle {i}")
        spreads.append(time.monotonic() - started)
    report = latency_report(f"{label}: cut -> $_SERVER on the farthest of {len(nodes.nodes)} nodes", spreads)
    print(report)
    assert percentile(spreads, 0.99) <= SPREAD_LIMIT_S, report
    return spreads


def redis_get(server: RedisServer, key: str) -> str:
    return server.cli("GET", key).stdout.strip()


# ---------------------------------------------------------------- standalone Redis

@pytest.fixture(scope="class")
def standalone(paths):
    directory = run_dir_for(paths, f"cluster-redis-{os.getpid()}", group="test_cluster")
    server = RedisServer(directory).start()
    yield server
    server.stop()


@pytest.fixture(scope="class")
def standalone_nodes(standalone, make_class_helper, make_class_apache):
    return NodeSet.start(make_class_helper, make_class_apache, CLUSTER, f"tcp://127.0.0.1:{standalone.port}",
                         vhosts=VHOSTS)


class TestStandalone:
    def test_cut_reaches_every_node(self, standalone_nodes):
        nodes = standalone_nodes
        for node in nodes:
            assert node.env()["COUPURE_CHARGE_SERVEUR"] == "0"
        toggle_and_measure(nodes, "standalone Redis")
        assert len(set(nodes.control_versions())) == 1, nodes.control_versions()
        # The cluster view: one line per node, all in sync.
        result = nodes[1].ctl("status", "--cluster")
        assert result.returncode == 0, result.stdout + result.stderr
        for node in nodes:
            assert re.search(rf"^{node.name}\s+live\s+ok\b", result.stdout, re.M), result.stdout

    def test_vhost_threshold_reaches_every_node(self, standalone_nodes):
        nodes = standalone_nodes
        started = time.monotonic()
        nodes[1].ctl_ok("threshold", "set", "sessions", "7", "--vhost", "a.test")
        spread = nodes.wait_env(lambda e: e["SEUIL_SESSIONS_ACTIVES"] == "7", 5.0, "vhost threshold", host="a.test")
        print(f"vhost threshold -> $_SERVER on every node: {(time.monotonic() - started) * 1000:.1f} ms")
        assert spread <= SPREAD_LIMIT_S
        for node in nodes:  # the other vhost keeps none
            assert node.env(host="b.test")["SEUIL_SESSIONS_ACTIVES"] is None
        nodes[2].ctl_ok("threshold", "unset", "sessions", "--vhost", "a.test")
        nodes.wait_env(lambda e: e["SEUIL_SESSIONS_ACTIVES"] is None, SPREAD_LIMIT_S, "vhost threshold unset",
                       host="a.test")

    def test_two_operators_race_end_equal(self, standalone_nodes, standalone):
        nodes = standalone_nodes
        versions = set()
        for round_number in range(20):
            barrier = threading.Barrier(2)
            results = {}

            def operator(index: int, args: tuple[str, ...]):
                barrier.wait()
                results[index] = nodes[index].ctl(*args, wait=5)

            threads = [threading.Thread(target=operator, args=(0, ("cut", "on", "--reason", f"round {round_number}"))),
                       threading.Thread(target=operator, args=(2, ("cut", "off")))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(60)
            for index, result in results.items():
                assert result.returncode == 0, f"operator {index}: {result.stdout}{result.stderr}"
            written = {written_version(result) for result in results.values()}
            assert len(written) == 2, f"two writes, two versions: {results}"
            versions |= written
            # Every node ends on the last-written state, Redis's.
            stored = redis_get(standalone, f"coupecircuit:{{{CLUSTER}}}:control")
            last_cut = '"active":true' in stored
            last_version = int(re.search(r'"version":(\d+)', stored).group(1))
            assert last_version == max(written)
            wait_for(lambda: [(n.status()["cut"]["active"], n.status()["cluster"]["control_version"]) for n in nodes],
                     lambda seen: all(s == (last_cut, last_version) for s in seen), 2.0,
                     f"round {round_number}: every node on version {last_version}")
            nodes.wait_env(cut_value("1" if last_cut else "0"), 2.0, f"round {round_number} $_SERVER")
        assert len(versions) == 40, "every write got a version of its own"
        nodes[0].ctl_ok("cut", "off")

    def test_redis_down_keeps_the_cut_and_back_reports_local_change(self, standalone_nodes, standalone, class_logs):
        nodes = standalone_nodes
        class_logs.allow(r"CC0401")  # the outage, on purpose
        nodes[0].ctl_ok("cut", "on", "--reason", "before the outage")
        nodes.wait_env(cut_value("1"), 2.0, "cut before the outage")
        version = nodes.control_versions()[0]
        loads = [LoadRunner(node.apache.port, threads=2).start() for node in nodes]
        try:
            standalone.kill()
            wait_for(lambda: [n.status()["cluster"]["redis_reachable"] for n in nodes], lambda r: not any(r), 5.0,
                     "every node sees Redis unreachable")
            # Fail static: the cut stays for a while with Redis down, the heartbeat stays fresh.
            deadline = time.monotonic() + 3.0
            while time.monotonic() < deadline:
                for node in nodes:
                    assert node.env()["COUPURE_CHARGE_SERVEUR"] == "1"
                    status = node.status()
                    assert status["status"] == "cut" and status["age_seconds"] < 2.0, status
                time.sleep(0.2)
            # A cluster change cannot be made: nothing changes, --local is suggested.
            refused = nodes[1].ctl("cut", "off", wait=2)
            assert refused.returncode == 1, refused.stdout + refused.stderr
            assert "nothing was changed" in refused.stderr and "--local" in refused.stderr, refused.stderr
            assert re.search(r"coupecircuitd\.conf:\d+: \[cluster\] redis", refused.stderr), refused.stderr
            nodes.wait_env(cut_value("1"), 0.5, "cut kept after a refused change")
            # A node-local change during the outage.
            nodes[2].ctl_ok("threshold", "set", "sessions", "5", "--local")
            flagged = nodes[2].status()["cluster"]
            assert flagged["local_change_unsynced"] is True, flagged
            assert "CC0405" in nodes[2].helper.log_text()
        finally:
            for load in loads:
                load.stop()
        for load in loads:
            assert load.completed() > 0 and load.failures == [], load.failures[:5]

        # A restart during the outage keeps the cut (the mirror file).
        nodes[1].helper.stop()
        nodes[1].helper.start()
        assert nodes[1].status()["cut"]["active"] is True

        # Redis back, empty (no persistence): the nodes write the state back and converge.
        standalone.start()
        wait_for(lambda: [n.status()["cluster"] for n in nodes],
                 lambda blocks: all(b["redis_reachable"] and b["nodes_live"] == 3 for b in blocks), 10.0,
                 "every node reaches Redis again")
        stored = redis_get(standalone, f"coupecircuit:{{{CLUSTER}}}:control")
        assert f'"version":{version}' in stored and '"active":true' in stored, stored
        wait_for(nodes[2].helper.log_text, lambda text: "CC0406" in text, 5.0, "the local change is reported")
        assert nodes[2].status()["cluster"]["local_change_unsynced"] is True
        view = nodes[0].ctl("status", "--cluster")
        assert re.search(r"^node3 .*LOCAL-CHANGE-DURING-OUTAGE", view.stdout, re.M), view.stdout
        assert nodes[2].env()["SEUIL_SESSIONS_ACTIVES"] == "5"  # kept, not overwritten

        # A cluster change after the outage reaches every node.
        nodes[0].ctl_ok("cut", "off")
        nodes.wait_env(cut_value("0"), SPREAD_LIMIT_S, "cut off after the outage")
        assert len(set(nodes.control_versions())) == 1 and nodes.control_versions()[0] > version
        nodes[2].ctl_ok("threshold", "unset", "sessions", "--local")
        wait_for(lambda: nodes[2].status()["cluster"]["local_change_unsynced"], lambda flag: flag is False, 2.0,
                 "the flag clears once the local layer is emptied")

    def test_a_node_that_does_not_confirm_is_named(self, standalone_nodes):
        nodes = standalone_nodes
        frozen = nodes[2].helper
        os.kill(frozen.pid, signal.SIGSTOP)  # registered (3 s TTL) but applying nothing
        try:
            result = nodes[0].ctl("cut", "on", wait=0.5)
            assert result.returncode == 1, result.stdout + result.stderr
            assert "not confirmed within 0.5 s by: node3" in result.stdout, result.stdout
            assert "node1" not in result.stdout.split("by:")[1]
        finally:
            os.kill(frozen.pid, signal.SIGCONT)
        wait_for(nodes.control_versions, lambda versions: len(set(versions)) == 1, 5.0, "node3 catches up")
        nodes.wait_env(cut_value("1"), 2.0, "cut on every node once node3 runs again")
        nodes[0].ctl_ok("cut", "off")

    def test_a_stopped_node_is_marked_missing(self, standalone_nodes):
        nodes = standalone_nodes
        nodes[2].helper.stop()
        result = wait_for(lambda: nodes[0].ctl("status", "--cluster"),
                          lambda r: re.search(r"^node3\s+missing", r.stdout, re.M) is not None, 10.0,
                          "node3 marked missing")[0]
        assert result.returncode == 1, result.stdout
        json_view = nodes[0].ctl("status", "--cluster", "--json").stdout
        assert '"status": "missing"' in json_view
        # A change does not wait for a node that is gone.
        nodes[0].ctl_ok("cut", "on", wait=3)
        nodes[0].ctl_ok("cut", "off", wait=3)
        nodes[2].helper.start()
        nodes.wait_joined(3)
        assert len(set(nodes.control_versions())) == 1


# ---------------------------------------------------------------- Redis Cluster

@pytest.fixture(scope="class")
def redis_cluster(paths):
    directory = run_dir_for(paths, f"cluster-rediscluster-{os.getpid()}", group="test_cluster")
    cluster = RedisCluster(directory, masters=3).start()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="class")
def cluster_nodes(redis_cluster, make_class_helper, make_class_apache):
    return NodeSet.start(make_class_helper, make_class_apache, CLUSTER, redis_cluster.seeds())


class TestRedisCluster:
    def test_cut_reaches_every_node(self, cluster_nodes, redis_cluster):
        nodes = cluster_nodes
        toggle_and_measure(nodes, "3-master Redis Cluster")
        # Every key of the cluster lives in one hash slot, on one master.
        masters = redis_cluster.masters()
        slot = masters[0].cli("CLUSTER", "KEYSLOT", f"coupecircuit:{{{CLUSTER}}}:control").stdout.strip()
        held = {master.port: int(master.cli("CLUSTER", "COUNTKEYSINSLOT", slot).stdout.strip()) for master in masters}
        assert sorted(held.values())[:2] == [0, 0] and max(held.values()) >= 5, held  # control, index, 3 nodes
        view = nodes[0].ctl("status", "--cluster", "--json")
        assert view.returncode == 0 and view.stdout.count('"status": "live"') == 3, view.stdout


# ---------------------------------------------------------------- bad input

def test_unreachable_redis_starts_and_refuses_changes(make_helper):
    port = free_port()
    helper = make_helper(name="node", config_extra=cluster_section("lonely", "n1", f"tcp://127.0.0.1:{port}"))
    line = next(n for n, text in enumerate(helper.config.read_text().splitlines(), 1) if text.startswith("redis"))
    wait_for(helper.log_text, lambda text: "CC0401" in text, 5.0, "the unreachable Redis is logged")
    logged = next(text for text in helper.log_text().splitlines() if "CC0401" in text)
    assert f"coupecircuitd.conf:{line}: [cluster] redis" in logged and "cannot connect" in logged, logged
    status = helper.status()[1]
    assert status["status"] == "ok" and status["cluster"]["redis_reachable"] is False, status
    result = helper.ctl("cut", "on", global_args=["--config", str(helper.config)])
    assert result.returncode == 1 and "nothing was changed" in result.stderr, result.stdout + result.stderr
    assert f"coupecircuitd.conf:{line}: [cluster] redis" in result.stderr, result.stderr
    assert helper.status()[1]["cut"]["active"] is False


def test_wrong_password_is_named(make_helper, run_dir):
    server = RedisServer(run_dir / "redis", password="right-password").start()
    try:
        secret = run_dir / "redis.pass"
        secret.write_text("wrong-password\n")
        secret.chmod(0o600)
        helper = make_helper(name="node", config_extra=cluster_section(
            "secured", "n1", f"tcp://127.0.0.1:{server.port}", [f"auth_file = {secret}"]))
        wait_for(helper.log_text, lambda text: "CC0401" in text, 5.0, "the refused password is logged")
        logged = next(text for text in helper.log_text().splitlines() if "CC0401" in text)
        assert "authentication failed" in logged and "[cluster] auth_file" in logged, logged
        assert "wrong-password" not in helper.log_text()
        assert helper.status()[1]["status"] == "ok"
    finally:
        server.stop()


@pytest.mark.parametrize("name", ["prod web", "prod/web", "{prod}"])
def test_bad_cluster_name_names_the_line(make_helper, logs, paths, name):
    logs.allow(r"CC0005")  # the configuration error, on purpose
    helper = make_helper(start=False, name="node",
                         config_extra=cluster_section(name, "n1", "tcp://127.0.0.1:6379"))
    line = next(n for n, text in enumerate(helper.config.read_text().splitlines(), 1) if text.startswith("name ="))
    result = helper.run_once()
    assert result.returncode == 2
    assert f"coupecircuitd.conf:{line}: [cluster] name = {name}" in helper.log_text(), helper.log_text()
    check = subprocess.run([str(paths.daemon), "--config", str(helper.config), "--check"], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 2 and f"coupecircuitd.conf:{line}: [cluster] name" in check.stderr, check.stderr
    ctl = helper.ctl("status", global_args=["--config", str(helper.config)])
    assert ctl.returncode == 2 and f"coupecircuitd.conf:{line}: [cluster] name" in ctl.stderr, ctl.stderr


def test_status_cluster_without_cluster_section(make_helper, paths):
    helper = make_helper()
    check = subprocess.run([str(paths.daemon), "--config", str(helper.config), "--check"], capture_output=True,
                           text=True, timeout=30)
    assert check.returncode == 0 and "configuration valid" in check.stdout, check.stdout + check.stderr
    result = helper.ctl("status", "--cluster", global_args=["--config", str(helper.config)])
    assert result.returncode == 2 and "no [cluster] section" in result.stderr, result.stdout + result.stderr
