"""End to end behind a real HAProxy: two nodes, each an Apache (prefork +
mod_php + mod_coupecircuit) with its own coupecircuitd (own sessions,
snapshot, state and agent port), and HAProxy in front of them with the
backend and the Apache settings of docs/LOAD_BALANCERS.md, taken from the
document itself (only addresses, ports, timings and the token change).

Everything binds to 127.0.0.1; HAProxy runs in the foreground (-db) with its
stats socket in the test's run directory, and is stopped at teardown.
"""

from __future__ import annotations

import os
import re
import secrets
import signal
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import Apache, Helper, HttpClient, clean_env, free_port, port_accepts, stop_process, wait_for

HAPROXY_BIN = "/usr/sbin/haproxy"
TOKEN = "cc-lb-" + secrets.token_hex(20)
TOKEN_PLACEHOLDER = "REPLACE-WITH-A-LONG-RANDOM-TOKEN"
CHECK_INTERVAL = "300ms"

# srv_op_state and srv_admin_state of "show servers state".
OP_RUNNING, OP_STOPPING = 2, 3          # STOPPING: NOLB, persistent clients only
ADMIN_DRAIN = 0x08 | 0x10                # forced or inherited drain (the agent's "drain")
ADMIN_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40

NODE_PAGE = """<?php
// Which node answered, the state PHP sees, and whether the session is logged in.
header('Content-Type: application/json');
header('Cache-Control: no-store');
$logged = false;
if (isset($_COOKIE['PHPSESSID'])) {
    session_start();
    $logged = isset($_SESSION['vzn_test']);
    session_write_close();
}
echo json_encode(['node' => $_SERVER['NODE'] ?? null, 'etat' => $_SERVER['COUPECIRCUIT_ETAT'] ?? null,
                  'logged_in' => $logged]), "\\n";
"""


# ---------------------------------------------------------------- the document

def code_block(document: str, language: str, needle: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", document, re.S)
    found = [block for block in blocks if needle in block]
    assert len(found) == 1, f"expected one ```{language} block with {needle!r} in LOAD_BALANCERS.md"
    return found[0]


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} appears {text.count(old)} times in the documented block"
    return text.replace(old, new)


def documented_backend(source_dir: Path, servers: list[tuple[str, int, int]]) -> str:
    """The HAProxy backend of the document, with test addresses, ports,
    timings and token. servers: (name, http port, agent port)."""
    block = code_block((source_dir / "docs" / "LOAD_BALANCERS.md").read_text(), "haproxy", "backend php")
    block = replace_once(block, TOKEN_PLACEHOLDER, TOKEN)
    block = replace_once(block, " inter 2s ", f" inter {CHECK_INTERVAL} ")
    block = replace_once(block, " agent-inter 2s", f" agent-inter {CHECK_INTERVAL}")
    lines = [line for line in block.splitlines() if not line.strip().startswith("server ")]
    documented = [line for line in block.splitlines() if line.strip().startswith("server ")]
    assert len(documented) == len(servers)
    for line, (name, port, agent_port) in zip(documented, servers):
        assert re.fullmatch(rf"\s+server {name} \S+ cookie {name}", line), line
        lines.append(f"    server {name} 127.0.0.1:{port} cookie {name} agent-port {agent_port}")
    return "\n".join(lines) + "\n"


def documented_apache_lines(source_dir: Path) -> list[str]:
    block = code_block((source_dir / "docs" / "LOAD_BALANCERS.md").read_text(), "apache", "coupecircuit-health")
    return replace_once(block, TOKEN_PLACEHOLDER, TOKEN).splitlines()


# ---------------------------------------------------------------- HAProxy

class HAProxy:
    """haproxy -db with a stats socket in its directory."""

    def __init__(self, directory: Path, backend: str):
        self.directory = directory
        self.port = free_port()
        # A UNIX socket path holds at most 97 characters for HAProxy: a short
        # private directory, whatever the depth of the build tree.
        self.socket_directory = Path(tempfile.mkdtemp(prefix="cc-haproxy-"))
        self.socket_path = self.socket_directory / "stats.sock"
        self.config = directory / "haproxy.cfg"
        self.log = directory / "haproxy.log"
        self.process: subprocess.Popen | None = None
        self.backend = backend
        self.write_config()

    def write_config(self) -> None:
        self.config.write_text(f"""# HAProxy of one integration test (generated)
global
    stats socket {self.socket_path} mode 600 level admin
    pidfile {self.directory / "haproxy.pid"}

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout check 5s

frontend www
    bind 127.0.0.1:{self.port}
    default_backend php

{self.backend}""")

    def check_config(self) -> subprocess.CompletedProcess:
        return subprocess.run([HAPROXY_BIN, "-c", "-f", str(self.config)], capture_output=True, text=True,
                              timeout=30, env=clean_env())

    def start(self, attempts: int = 3) -> None:
        for attempt in range(attempts):
            with open(self.log, "ab") as log:
                self.process = subprocess.Popen([HAPROXY_BIN, "-f", str(self.config), "-db"], stdin=subprocess.DEVNULL,
                                                stdout=log, stderr=log, env=clean_env(), start_new_session=True)

            def state():
                if self.process.poll() is not None:
                    return "exited"
                return port_accepts(self.port) and self.socket_path.exists() and "Name: HAProxy" in self.command(
                    "show info")

            result, _ = wait_for(state, lambda v: v is True or v == "exited", 20.0, "HAProxy ready")
            if result is True:
                return
            text = self.log.read_text(errors="replace")
            if "cannot bind socket" not in text or attempt == attempts - 1:
                raise AssertionError(f"haproxy exited with {self.process.returncode}:\n{text}")
            self.port = free_port()
            self.write_config()

    def stop(self) -> None:
        try:
            self._stop()
        finally:
            shutil.rmtree(self.socket_directory, ignore_errors=True)

    def _stop(self) -> None:
        stop_process(self.process)

    def command(self, line: str) -> str:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            connection.settimeout(5)
            connection.connect(str(self.socket_path))
            connection.sendall(line.encode() + b"\n")
            data = b""
            while chunk := connection.recv(65536):
                data += chunk
        return data.decode()

    def stat(self) -> dict[str, dict[str, str]]:
        """show stat, the servers of backend php, by name."""
        lines = self.command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        rows = [dict(zip(header, line.split(","))) for line in lines[1:] if line]
        return {row["svname"]: row for row in rows if row["pxname"] == "php" and row["svname"] not in
                ("BACKEND", "FRONTEND")}

    def servers_state(self) -> dict[str, dict[str, int | str]]:
        lines = [line for line in self.command("show servers state php").splitlines() if line]
        header = lines[1].lstrip("# ").split()
        result = {}
        for line in lines[2:]:
            row = dict(zip(header, line.split()))
            result[row["srv_name"]] = {key: int(value) if value.lstrip("-").isdigit() else value
                                       for key, value in row.items()}
        return result


@pytest.fixture
def haproxy_factory(run_dir, logs):
    if not os.access(HAPROXY_BIN, os.X_OK):
        pytest.skip(f"{HAPROXY_BIN} is missing (Debian package haproxy)")
    created: list[HAProxy] = []

    def factory(backend: str) -> HAProxy:
        proxy = HAProxy(run_dir, backend)
        logs.watch(proxy.log, re.compile(r"\[ALERT\]|\[EMERG\]"))
        created.append(proxy)
        return proxy

    yield factory
    for proxy in created:
        proxy.stop()


# ---------------------------------------------------------------- nodes

@dataclass
class Node:
    name: str
    helper: Helper
    apache: Apache
    agent_port: int


def start_node(paths, make_helper, make_apache, name: str) -> Node:
    agent_port = free_port()
    helper = make_helper(name=f"helper-{name}", config_extra=f"\n[agent]\nport = {agent_port}\nbind = 127.0.0.1\n")
    wait_for(lambda: f"127.0.0.1:{agent_port}" in helper.log_text(), bool, 10.0, f"{name}: agent listening")
    lines = [f"SetEnv NODE {name}", "CoupeCircuitHold 0", "CoupeCircuitMaxAge 2",
             "CoupeCircuitThreshold sessions 3", *documented_apache_lines(paths.source_dir)]
    apache = make_apache("prefork", helper, with_module=True, start=False, name=f"apache-{name}",
                         server_lines=lines)
    (apache.htdocs / "node.php").write_text(NODE_PAGE)
    apache.start()
    return Node(name, helper, apache, agent_port)


def node_of(client: HttpClient, path: str = "/node.php") -> dict:
    reply = client.request(path)
    assert reply.status == 200, (reply.status, reply.body[:300])
    answer = reply.json()
    answer["srv_cookie"] = client.cookies.get("SRV")
    return answer


def new_visitors(proxy: HAProxy, count: int) -> list[str]:
    """Nodes that served `count` new visitors (no cookie); each gets the SRV
    cookie of the node that answered."""
    nodes = []
    for _ in range(count):
        answer = node_of(HttpClient(proxy.port))
        assert answer["srv_cookie"] == answer["node"], answer
        assert answer["logged_in"] is False
        nodes.append(answer["node"])
    return nodes


def visitor_on(proxy: HAProxy, name: str) -> HttpClient:
    """A new visitor that roundrobin sent to node `name` (and who keeps its cookie)."""
    for _ in range(10):
        client = HttpClient(proxy.port)
        if node_of(client)["node"] == name:
            return client
    raise AssertionError(f"roundrobin never chose {name}")


SERVER_FIELDS = ("srv_op_state", "srv_admin_state", "srv_uweight")
STAT_FIELDS = ("status", "weight", "check_status", "agent_status", "last_agt")


def servers(proxy: HAProxy) -> dict[str, dict]:
    """What the tests look at, per server: op and admin state, weight set by
    the agent (show servers state), status, effective weight, check and agent
    results (show stat)."""
    state, stat = proxy.servers_state(), proxy.stat()
    return {name: {**{key: state[name][key] for key in SERVER_FIELDS},
                   **{key: stat[name][key] for key in STAT_FIELDS}} for name in state}


def wait_servers(proxy: HAProxy, condition, what: str, timeout: float = 15.0) -> dict[str, dict]:
    found, _ = wait_for(lambda: servers(proxy), condition, timeout, what)
    return found


def is_up(server: dict) -> bool:
    return (server["srv_op_state"] == OP_RUNNING and server["srv_admin_state"] == 0 and server["srv_uweight"] == 100
            and server["weight"] == "100" and server["status"] == "UP" and server["check_status"] == "L7OK"
            and server["agent_status"] == "L7OK")


def both_up(s) -> bool:
    return is_up(s["web1"]) and is_up(s["web2"])


@pytest.fixture
def cluster(paths, make_helper, make_apache, module_so, haproxy_factory):
    web1 = start_node(paths, make_helper, make_apache, "web1")
    web2 = start_node(paths, make_helper, make_apache, "web2")
    backend = documented_backend(paths.source_dir, [("web1", web1.apache.port, web1.agent_port),
                                                    ("web2", web2.apache.port, web2.agent_port)])
    proxy = haproxy_factory(backend)
    result = proxy.check_config()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "[WARNING]" not in result.stdout + result.stderr and "[ALERT]" not in result.stdout + result.stderr, \
        result.stdout + result.stderr
    proxy.start()
    wait_servers(proxy, both_up, "both servers UP, checked by HTTP and by the agent")
    return proxy, web1, web2


# ======================================================================

def test_cut_node_drains_and_keeps_its_users(cluster):
    proxy, web1, web2 = cluster
    assert sorted(set(new_visitors(proxy, 6))) == ["web1", "web2"], "roundrobin over both nodes"

    # Alice logs in on web1 (through HAProxy: the cookie SRV=web1 keeps her there).
    alice = visitor_on(proxy, "web1")
    reply = alice.request("/login.php")
    assert reply.status == 200
    session_id = reply.json()["session_id"]
    assert (web1.helper.session_dir / f"sess_{session_id}").exists()
    assert node_of(alice) == {"node": "web1", "etat": "ok", "logged_in": True, "srv_cookie": "web1"}

    # Cut web1: its health check says DRAIN coupure and its agent drain.
    web1.helper.ctl_ok("cut", "on", "--reason", "lb test")

    def drained(s) -> bool:
        web1 = s["web1"]
        return (web1["srv_op_state"] == OP_STOPPING and web1["srv_admin_state"] & ADMIN_DRAIN != 0
                and web1["srv_admin_state"] & ADMIN_MAINT == 0 and web1["check_status"] == "L7OKC"
                and web1["status"] in ("NOLB", "DRAIN", "DRAIN (agent)") and is_up(s["web2"]))

    wait_servers(proxy, drained, "web1 drained by its health check (NOLB) and its agent (admin drain)")

    # New visitors all go to web2.
    assert new_visitors(proxy, 20) == ["web2"] * 20
    # Alice stays on web1, logged in, and PHP sees the cut.
    for _ in range(10):
        assert node_of(alice) == {"node": "web1", "etat": "coupure", "logged_in": True, "srv_cookie": "web1"}
    # A visitor without a session who still has web1's cookie: web1 refuses him
    # (refuse-new), HAProxy retries on web2, which gives him its cookie.
    stuck = HttpClient(proxy.port)
    stuck.cookies["SRV"] = "web1"
    for _ in range(3):
        answer = node_of(stuck)
        assert answer["node"] == "web2" and answer["logged_in"] is False
    assert stuck.cookies["SRV"] == "web2"
    # ... and POST is not retried: the refusal reaches him.
    poster = HttpClient(proxy.port)
    poster.cookies["SRV"] = "web1"
    reply = poster.request("/node.php", method="POST", body=b"x=1",
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 503 and reply.header("X-CoupeCircuit") == "coupure", reply.headers
    assert reply.header("Retry-After") == "120"

    # Cut off: web1 is back for everyone.
    web1.helper.ctl_ok("cut", "off")
    wait_servers(proxy, both_up, "web1 back UP")
    assert sorted(set(new_visitors(proxy, 6))) == ["web1", "web2"]
    assert node_of(alice) == {"node": "web1", "etat": "ok", "logged_in": True, "srv_cookie": "web1"}


def test_tripped_vhost_drains_by_health_check_only(cluster):
    """CoupeCircuitThreshold sessions 3 reached on web1 (Apache's own
    threshold, unknown to the agent): the health check drains the node, the
    agent still says up."""
    proxy, web1, web2 = cluster
    alice = visitor_on(proxy, "web1")
    assert alice.request("/login.php").status == 200
    sessions = [web1.helper.session("authenticated") for _ in range(2)]

    def drained_by_check(s) -> bool:
        web1 = s["web1"]
        return (web1["srv_op_state"] == OP_STOPPING and web1["srv_admin_state"] == 0 and web1["status"] == "NOLB"
                and web1["check_status"] == "L7OKC" and web1["agent_status"] == "L7OK" and is_up(s["web2"]))

    wait_servers(proxy, drained_by_check, "web1 NOLB by its health check, agent up")
    assert new_visitors(proxy, 10) == ["web2"] * 10
    for _ in range(5):
        assert node_of(alice) == {"node": "web1", "etat": "surcharge", "logged_in": True, "srv_cookie": "web1"}
    for session in sessions:
        session.unlink()
    wait_servers(proxy, both_up, "web1 back UP once released")


def test_agent_weight_and_helper_failure(cluster, logs):
    """A global override puts web1 at 75 % of its trip point: the agent sets
    its weight to 50 %, Apache (under the override's TRIP) stays UP. Then
    coupecircuitd of web1 dies: HAProxy keeps web1 in the pool."""
    proxy, web1, web2 = cluster
    logs.allow(r"\[coupecircuit:warn\].*CC030[12]")
    web1.helper.ctl_ok("threshold", "set", "sessions", "8")
    sessions = [web1.helper.session("authenticated") for _ in range(6)]

    def half_weight(s) -> bool:
        web1 = s["web1"]
        return (web1["srv_uweight"] == 50 and web1["weight"] == "50" and web1["srv_op_state"] == OP_RUNNING
                and web1["srv_admin_state"] == 0 and web1["status"] == "UP" and web1["check_status"] == "L7OK")

    wait_servers(proxy, half_weight, "web1 at weight 50 (6 sessions of 8)")
    nodes = new_visitors(proxy, 30)
    assert 5 <= nodes.count("web1") <= 15 and nodes.count("web1") < nodes.count("web2"), nodes

    # The helper of web1 dies: health UP inconnu (MaxAge 2), agent unreachable: web1 stays in.
    for session in sessions:
        session.unlink()
    web1.helper.ctl_ok("threshold", "unset", "sessions")
    wait_servers(proxy, both_up, "web1 back at weight 100")
    web1.helper.kill9()
    reply, _ = wait_for(lambda: HttpClient(web1.apache.port).request(
        "/health", headers={"Authorization": f"Bearer {TOKEN}"}), lambda r: r.body == b"UP inconnu\n", 10.0,
        "web1 health: UP inconnu")
    assert reply.status == 200

    def web1_kept(s) -> bool:
        web1 = s["web1"]
        return (web1["agent_status"] == "L4CON" and web1["srv_op_state"] == OP_RUNNING
                and web1["srv_admin_state"] == 0 and web1["status"] == "UP" and web1["check_status"] == "L7OK")

    wait_servers(proxy, web1_kept, "web1 UP with its agent unreachable")
    assert sorted(set(new_visitors(proxy, 6))) == ["web1", "web2"]
