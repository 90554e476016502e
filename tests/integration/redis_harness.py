"""Real Redis for the integration tests: a standalone redis-server, a Redis
Cluster of real redis-server processes (redis-cli --cluster create), and
sessions written by real PHP with phpredis (save_handler redis or
rediscluster). Everything binds to 127.0.0.1 on free ports."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

from harness import PHP_CLI, SESSION_CONTENT, clean_env, free_port, make_dir, stop_process, wait_for

REDIS_SERVER = "/usr/bin/redis-server"
REDIS_CLI = "/usr/bin/redis-cli"

# The PHP script that writes sessions: one PHP process for many operations.
SESSIONS_PHP = Path(__file__).resolve().parent / "php" / "redis_sessions.php"


def cluster_port() -> int:
    """A free port whose cluster bus port (port + 10000) is valid and free too."""
    import socket
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def redis_available() -> bool:
    return shutil.which(REDIS_SERVER) is not None and shutil.which(REDIS_CLI) is not None


class RedisServer:
    """One redis-server process (standalone, or a Cluster node)."""

    def __init__(self, workdir: Path, cluster: bool = False, notifications: str = "",
                 password: str | None = None, port: int | None = None):
        self.workdir = make_dir(workdir)
        self.port = port or (cluster_port() if cluster else free_port())
        self.cluster = cluster
        self.notifications = notifications
        self.password = password
        self.process: subprocess.Popen | None = None
        self.log_path = self.workdir / "redis.log"

    def command(self) -> list[str]:
        command = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.workdir),
                   "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", str(self.log_path),
                   "--enable-debug-command", "local", "--notify-keyspace-events", self.notifications]
        if self.cluster:
            command += ["--cluster-enabled", "yes", "--cluster-config-file", str(self.workdir / "nodes.conf"),
                        "--cluster-node-timeout", "1000"]
        if self.password:
            command += ["--requirepass", self.password, "--masterauth", self.password]
        return command

    def start(self) -> "RedisServer":
        assert self.process is None or self.process.poll() is not None
        self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, env=clean_env(), start_new_session=True)
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        wait_for(lambda: self.cli("PING", check=False).stdout.strip(), lambda v: v in ("PONG", "NOAUTH") or
                 v.startswith("NOAUTH"), 10, f"redis-server on port {self.port} answers")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        if self.running():
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.running():
            stop_process(self.process, signal.SIGTERM, 10)

    def cli(self, *args: str, check: bool = True, timeout: float = 15) -> subprocess.CompletedProcess:
        command = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port)]
        env = clean_env()
        if self.password:
            env["REDISCLI_AUTH"] = self.password
        if self.cluster:
            command.append("-c")
        result = subprocess.run(command + list(args), capture_output=True, text=True, timeout=timeout, env=env)
        if check:
            assert result.returncode == 0 and not result.stdout.startswith("ERR"), \
                f"redis-cli {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    def keys(self, pattern: str = "*") -> list[str]:
        return [k for k in self.cli("--scan", "--pattern", pattern).stdout.split("\n") if k]


class RedisCluster:
    """masters (+ one replica each when replicas) cluster-enabled redis-servers
    joined by redis-cli --cluster create."""

    def __init__(self, workdir: Path, masters: int = 3, replicas: int = 0, notifications: str = ""):
        self.workdir = make_dir(workdir)
        count = masters * (1 + replicas)
        self.nodes = [RedisServer(self.workdir / f"node{i}", cluster=True, notifications=notifications)
                      for i in range(count)]
        self.replicas = replicas

    def start(self) -> "RedisCluster":
        try:
            self._start()
        except BaseException:
            self.stop()  # never leave nodes behind
            raise
        return self

    def _start(self) -> None:
        for node in self.nodes:
            node.start()
        addresses = [f"127.0.0.1:{node.port}" for node in self.nodes]
        result = subprocess.run([REDIS_CLI, "--cluster", "create", *addresses, "--cluster-replicas",
                                 str(self.replicas), "--cluster-yes"], capture_output=True, text=True, timeout=60,
                                env=clean_env())
        assert result.returncode == 0, f"redis-cli --cluster create: {result.stdout}{result.stderr}"
        for node in self.nodes:
            wait_for(lambda n=node: n.cli("CLUSTER", "INFO").stdout, lambda v: "cluster_state:ok" in v, 20,
                     f"cluster state ok on {node.port}")
        if self.replicas:
            wait_for(self.replication_ready, bool, 30, "replicas in sync")

    def replication_ready(self) -> bool:
        for node in self.nodes:
            info = node.cli("INFO", "replication", check=False).stdout
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return True

    def seeds(self) -> str:
        return "&".join(f"seed[]=127.0.0.1:{node.port}" for node in self.nodes[:2])

    def masters(self) -> list[RedisServer]:
        result = []
        for node in self.nodes:
            if node.running() and "role:master" in node.cli("INFO", "replication", check=False).stdout:
                result.append(node)
        return result

    def node_on(self, port: int) -> RedisServer:
        return next(node for node in self.nodes if node.port == port)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def php_sessions(handler: str, save_path: str, operations: Sequence[tuple[str, str]],
                 extra_ini: Sequence[str] = ()) -> dict:
    """Runs real PHP (CLI, phpredis) once for a list of (operation, session id):
    operation is a session kind of harness.SESSION_CONTENT (written with
    session_start/session_write_close), "destroy" (session_destroy) or "big"
    (a logged-in session of more than 2 MiB). Returns PHP's report."""
    payload = json.dumps({"operations": [[op, sid] for op, sid in operations], "content": SESSION_CONTENT})
    command = [PHP_CLI, "-n", "-d", "extension=igbinary", "-d", "extension=redis", "-d", "session.gc_probability=0",
               "-d", "session.use_cookies=0", "-d", "session.use_strict_mode=0", "-d", "session.serialize_handler=php",
               "-d", f"session.save_handler={handler}", "-d", f"session.save_path=\"{save_path}\"",
               "-d", "display_errors=stderr", "-d", "memory_limit=256M"]
    for setting in extra_ini:
        command += ["-d", setting]
    result = subprocess.run(command + [str(SESSIONS_PHP)], input=payload, capture_output=True, text=True, timeout=60,
                            env=clean_env())
    assert result.returncode == 0 and result.stderr == "", \
        f"PHP sessions in {handler} failed ({result.returncode}): {result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def new_id() -> str:
    return secrets.token_hex(13)


# What the Redis tests read back from coupecircuitctl status --json.
CLASSES = ("empty", "anonymous", "unknown", "authenticated")
PASS_INTERVAL = 2  # rescan_interval of the Redis tests' helpers
# Notifications bring a change within a tenth of a second on an idle host;
# the tests that rely on them pass every 60 s, so this bound, generous for a
# busy host, still tells a notification from a full pass.
NOTIFICATION_DEADLINE = 5.0


def counts(**values: int) -> dict:
    return {name: values.get(name, 0) for name in CLASSES}


def store_of(helper) -> tuple[dict, dict]:
    code, document = helper.status()
    # 3 with "sessions_unknown": the store cannot be counted now.
    assert code in (0, 1) or (code == 3 and document.get("status") == "sessions_unknown"), \
        f"status exit {code}: {document}"
    return document["sessions"], document["store"]


def wait_active(helper, active: dict, timeout: float, what: str) -> float:
    """Waits until the store is available and its active counts are active."""
    _, waited = wait_for(lambda: store_of(helper), lambda v: v[0]["active"] == active and v[1]["available"],
                         timeout, f"{what}: active {active}")
    return waited
