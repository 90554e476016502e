"""Several CoupeCircuit nodes on one machine, joined in one cluster through a
real Redis (standalone or a real 3-master Redis Cluster, redis_harness.py):
each node is its own coupecircuitd (own configuration with a [cluster]
section, session directory, snapshot and state) and its own Apache (own
ServerRoot, own port on 127.0.0.1) loading mod_coupecircuit on that
snapshot. coupecircuitctl runs against a node with --config, as an operator
on that node would."""

from __future__ import annotations

import json
import re
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from harness import Apache, Helper, VirtualHost, clean_env, wait_for


def cluster_section(name: str, node: str, redis: str, extra: Sequence[str] = ()) -> str:
    lines = ["", "[cluster]", f"name = {name}", f"node = {node}", f"redis = {redis}", *extra, ""]
    return "\n".join(lines)


@dataclass
class ClusterNode:
    name: str
    helper: Helper
    apache: Apache | None = None

    def ctl(self, *args: str, wait: float | None = None, timeout: float = 30.0) -> subprocess.CompletedProcess:
        """coupecircuitctl on this node: it learns the cluster from the helper's configuration."""
        global_args = ["--config", str(self.helper.config)] + (["--wait", str(wait)] if wait is not None else [])
        return subprocess.run([str(self.helper.paths.ctl), *global_args, *args],
                              capture_output=True, text=True, timeout=timeout, env=clean_env())

    def ctl_ok(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        result = self.ctl(*args, **kwargs)
        assert result.returncode == 0, f"[{self.name}] coupecircuitctl {' '.join(args)} -> {result.returncode}\n" \
                                       f"{result.stdout}{result.stderr}"
        return result

    def status(self) -> dict:
        result = self.ctl("status", "--json")
        return json.loads(result.stdout)

    def env(self, host: str | None = None) -> dict:
        assert self.apache is not None
        return self.apache.client().env(host=host)


@dataclass
class NodeSet:
    """count nodes of one cluster, made with the test's helper and Apache
    factories (so that they are stopped and their logs checked at teardown)."""
    nodes: list[ClusterNode] = field(default_factory=list)

    @classmethod
    def start(cls, make_helper, make_apache, cluster: str, redis: str, count: int = 3, with_apache: bool = True,
              vhosts: Sequence[VirtualHost] = (), variant: str = "prefork",
              cluster_extra: Sequence[str] = ()) -> "NodeSet":
        result = cls()
        for i in range(1, count + 1):
            name = f"node{i}"
            helper = make_helper(name=name, config_extra=cluster_section(cluster, name, redis, cluster_extra))
            node = ClusterNode(name, helper)
            if with_apache:
                node.apache = make_apache(variant, helper, name=f"apache-{name}", with_module=True,
                                          vhosts=list(vhosts))
            result.nodes.append(node)
        result.wait_joined(count)
        return result

    def __iter__(self):
        return iter(self.nodes)

    def __getitem__(self, index: int) -> ClusterNode:
        return self.nodes[index]

    def wait_joined(self, live: int, timeout: float = 15.0) -> None:
        """Every node reaches Redis and sees `live` registered nodes."""
        def probe():
            return [node.status().get("cluster", {}) for node in self.nodes]

        wait_for(probe, lambda blocks: all(b.get("redis_reachable") and b.get("nodes_live") == live for b in blocks),
                 timeout, f"{len(self.nodes)} nodes joined with {live} live")

    def wait_env(self, condition: Callable[[dict], bool], timeout: float, what: str,
                 host: str | None = None) -> float:
        """Polls /env.php on every node until each satisfies condition; returns
        the seconds until the last (farthest) one did."""
        started = time.monotonic()
        pending = list(self.nodes)
        while True:
            pending = [node for node in pending if not condition(node.env(host=host))]
            elapsed = time.monotonic() - started
            if not pending:
                return elapsed
            if elapsed > timeout:
                raise AssertionError(f"{what}: not on {[n.name for n in pending]} within {timeout} s: "
                                     f"{[n.env(host=host) for n in pending]}")
            time.sleep(0.005)

    def control_versions(self) -> list[int]:
        return [node.status()["cluster"]["control_version"] for node in self.nodes]


CONTROL_VERSION = re.compile(r"control version (\d+)")


def written_version(result: subprocess.CompletedProcess) -> int:
    found = CONTROL_VERSION.search(result.stdout)
    assert found, f"no control version in: {result.stdout}{result.stderr}"
    return int(found.group(1))


def percentile(values: Sequence[float], fraction: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, int(round(fraction * len(ordered) + 0.5)) - 1))
    return ordered[index]


def latency_report(what: str, values: Sequence[float]) -> str:
    return (f"{what}: n={len(values)} p50={statistics.median(values) * 1000:.1f} ms "
            f"p99={percentile(values, 0.99) * 1000:.1f} ms max={max(values) * 1000:.1f} ms")
