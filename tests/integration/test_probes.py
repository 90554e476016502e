"""coupecircuit-probes against real servers the tests control, read through
its results file: an HTTP server (statuses, a body pattern green / yellow /
red like Elasticsearch's _cat/health, a redirect, a 1 GB body, a server that
accepts and never answers), TCP, a real redis-server (DEBUG SLEEP, killed,
-LOADING) and a real PostgreSQL with max_connections = 30 (saturation,
stopped). Configuration errors exit 2 naming file:line; SIGHUP with an error
keeps the running probes."""

from __future__ import annotations

import http.server
import os
import re
import signal
import socket
import socketserver
import subprocess
import threading
import time
from pathlib import Path

import pytest

from harness import free_port, wait_for
from probes_harness import PgClient, Postgres, Probes, probes_binary
from redis_harness import RedisServer, redis_available


@pytest.fixture(autouse=True)
def built(paths):
    if not os.access(probes_binary(paths), os.X_OK):
        pytest.fail(f"{probes_binary(paths)} is missing: build coupecircuit-probes", pytrace=False)


def peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


# ---------------------------------------------------------------- HTTP

class Target:
    """What the test's HTTP server answers, changed by the test."""

    def __init__(self):
        self.status = 200
        self.health = "green"
        self.hits: dict[str, int] = {}
        self.big_bytes_sent = 0
        self.lock = threading.Lock()


def make_handler(target: Target):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            with target.lock:
                target.hits[self.path] = target.hits.get(self.path, 0) + 1
            if self.path == "/_cat/health":
                body = f"1700000000 10:00:00 prod {target.health} 3 3 10 5 0 0 0 0 - 100.0%\n".encode()
                self.send_response(target.status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            elif self.path == "/moved":
                self.send_response(302)
                self.send_header("Location", "/target")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/big":
                # 1 GB announced and streamed until the client goes away.
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 30))
                self.end_headers()
                chunk = b"0" * 65536
                try:
                    for _ in range((1 << 30) // len(chunk)):
                        self.wfile.write(chunk)
                        with target.lock:
                            target.big_bytes_sent += len(chunk)
                except OSError:
                    pass
            else:
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")
    return Handler


class ThreadingServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


@pytest.fixture
def http_target():
    target = Target()
    server = ThreadingServer(("127.0.0.1", 0), make_handler(target))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    target.port = server.server_address[1]
    yield target
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_port():
    """A socket that listens and never accepts: connections complete in the
    kernel's backlog, requests are never answered."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    yield listener.getsockname()[1]
    listener.close()


def test_http_statuses_body_redirect_big_body_and_a_silent_server(paths, run_dir, http_target, silent_port):
    base = f"http://127.0.0.1:{http_target.port}"
    closed_port = free_port()
    fast = "period = 200ms\nrise = 1\nfall = 1\n"
    probes = Probes(paths, run_dir / "probes", f"""
[probe es]
type = http
url = {base}/_cat/health
body = green|yellow
timeout = 1
{fast}
[probe redirect]
type = http
url = {base}/moved
{fast}
[probe redirect-ok]
type = http
url = {base}/moved
status = 301-302
{fast}
[probe silent]
type = http
url = http://127.0.0.1:{silent_port}/
timeout = 3
{fast}
[probe big]
type = http
url = {base}/big
body = ^0+$
timeout = 5
period = 1
rise = 1
fall = 1
[probe tcp-up]
type = tcp
address = 127.0.0.1:{http_target.port}
{fast}
[probe tcp-down]
type = tcp
address = 127.0.0.1:{closed_port}
{fast}
""").start()
    try:
        up = lambda p: p["status"] == "up"
        down = lambda p: p["status"] == "down"
        es, _ = probes.wait_probe("es", up, 5, "up while green")
        assert es["error"] == "" and es["latency_us"] > 0 and "saturation_pct" not in es

        # The silent server: down on the timeout (3 s), measured as such.
        silent, _ = probes.wait_probe("silent", down, 10, "down on its timeout")
        assert silent["error"] == "timeout after 3000 ms"
        assert 2_900_000 <= silent["latency_us"] <= 4_500_000, silent

        # Meanwhile every other probe keeps its own pace: es follows the
        # body well within the silent probe's 3 s timeout.
        http_target.health = "yellow"
        time.sleep(0.5)
        assert probes.probe("es")["status"] == "up"
        http_target.health = "red"
        es, waited = probes.wait_probe("es", down, 5, "down when red")
        assert es["error"] == "body does not match"
        assert waited < 2.0, f"es took {waited:.1f} s: delayed by the silent probe?"
        http_target.health = "green"
        http_target.status = 503
        es, waited = probes.wait_probe("es", lambda p: p["error"] == "status 503", 5, "status 503")
        assert es["status"] == "down" and waited < 2.0
        http_target.status = 200
        probes.wait_probe("es", up, 5, "up again")
        # The file is written at least once per shortest period (200 ms).
        first = probes.results()["written_wall_ms"]
        wait_for(probes.results, lambda r: r["written_wall_ms"] >= first + 200, 2, "the results file is rewritten")

        # A redirect is a status like any other: never followed.
        redirect, _ = probes.wait_probe("redirect", down, 5, "down on 302")
        assert redirect["error"] == "status 302"
        probes.wait_probe("redirect-ok", up, 5, "up when 302 is accepted")
        assert http_target.hits.get("/target", 0) == 0

        probes.wait_probe("tcp-up", up, 5, "up")
        tcp_down, _ = probes.wait_probe("tcp-down", down, 5, "down")
        assert tcp_down["error"]

        # 1 GB announced: 64 KiB read, the transfer stopped, well within the timeout.
        big, _ = probes.wait_probe("big", up, 10, "up on the first 64 KiB")
        assert big["latency_us"] < 2_000_000, big
        time.sleep(1.5)  # another check or two
        assert http_target.big_bytes_sent < 64 << 20, f"{http_target.big_bytes_sent} bytes sent"
        assert peak_rss_kib(probes.process.pid) < 64 * 1024
        assert probes.running()
    finally:
        assert probes.stop() == 0
    log = probes.log_text()
    assert "CC0500" in log and "CC0501" in log
    assert re.search(r"CC0511: probe silent is down: timeout after 3000 ms", log)


# ---------------------------------------------------------------- Redis

class FakeRedis:
    """Answers every command with one error line, as a Redis loading its
    dataset (-LOADING) or a replica without its master (-MASTERDOWN) does."""

    def __init__(self, reply: bytes):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.reply = reply
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(connection,), daemon=True).start()

    def _answer(self, connection):
        with connection:
            try:
                while connection.recv(4096):
                    connection.sendall(self.reply)
            except OSError:
                pass

    def close(self):
        self.listener.close()


@pytest.mark.skipif(not redis_available(), reason="redis-server and redis-cli are needed")
def test_redis_debug_sleep_kill_and_loading(paths, run_dir):
    server = RedisServer(run_dir / "redis").start()
    loading = FakeRedis(b"-LOADING Redis is loading the dataset in memory\r\n")
    masterdown = FakeRedis(b"-MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.\r\n")
    fast = "period = 200ms\ntimeout = 500ms\nrise = 1\nfall = 1\n"
    probes = Probes(paths, run_dir / "probes", f"""
[probe cache]
type = redis
address = tcp://127.0.0.1:{server.port}
{fast}
[probe loading]
type = redis
address = 127.0.0.1:{loading.port}
{fast}
[probe masterdown]
type = redis
address = 127.0.0.1:{masterdown.port}
{fast}
""").start()
    sleeper = None
    try:
        up = lambda p: p["status"] == "up"
        down = lambda p: p["status"] == "down"
        probes.wait_probe("cache", up, 5, "up")
        assert probes.wait_probe("loading", down, 5, "down")[0]["error"].startswith("LOADING")
        assert probes.wait_probe("masterdown", down, 5, "down")[0]["error"].startswith("MASTERDOWN")

        # DEBUG SLEEP beyond the timeout: down on the timeout, up once it answers.
        sleeper = subprocess.Popen(["redis-cli", "-p", str(server.port), "DEBUG", "SLEEP", "3"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cache, _ = probes.wait_probe("cache", down, 3, "down while Redis sleeps")
        assert cache["error"] == "timeout after 500 ms", cache
        assert cache["latency_us"] < 1_500_000, cache
        probes.wait_probe("cache", up, 10, "up after the sleep")

        server.kill()
        cache, _ = probes.wait_probe("cache", down, 3, "down once killed")
        assert cache["error"].startswith("cannot connect"), cache
    finally:
        if sleeper is not None:
            sleeper.wait(10)
        assert probes.stop() == 0
        loading.close()
        masterdown.close()
        server.kill()


# ---------------------------------------------------------------- PostgreSQL

@pytest.fixture
def postgres():
    if not (Path("/usr/lib/postgresql/15/bin/postgres")).exists():
        pytest.skip("PostgreSQL 15 is needed")
    server = Postgres(max_connections=30).start()
    yield server
    server.remove()


def test_postgresql_saturation_follows_clients_and_down_when_stopped(paths, run_dir, postgres):
    secret = "Pg-Secret-Marker-4242"
    conninfo = run_dir / "pg.conninfo"
    conninfo.write_text(f"host=127.0.0.1 port={postgres.port} dbname=app user=app password={secret}\n")
    os.chmod(conninfo, 0o600)
    probes = Probes(paths, run_dir / "probes", f"""
[probe main-db]
type = postgresql
conninfo_file = {conninfo}
period = 300ms
timeout = 2
rise = 1
fall = 1
critical = yes
""").start()
    clients: list[PgClient] = []
    try:
        db, _ = probes.wait_probe("main-db", lambda p: p["status"] == "up", 10, "up")
        assert db["saturation_pct"] <= 10 and db["critical"] is True and db["latency_us"] > 0
        # max_connections 30 - superuser_reserved_connections 3 = 27 for the application.
        clients += [PgClient(postgres.port) for _ in range(22)]
        db, _ = probes.wait_probe("main-db", lambda p: p.get("saturation_pct", 0) >= 80, 5, "saturation >= 80 %")
        assert db["saturation_pct"] in (81, 82), db
        clients += [PgClient(postgres.port) for _ in range(5)]
        db, _ = probes.wait_probe("main-db", lambda p: p.get("saturation_pct") == 100, 5, "saturation 100 %")
        assert db["status"] == "up"
        for client in clients:
            client.close()
        clients.clear()
        probes.wait_probe("main-db", lambda p: p.get("saturation_pct", 100) <= 10, 10, "saturation back down")

        postgres.stop()
        db, waited = probes.wait_probe("main-db", lambda p: p["status"] == "down", 5, "down once stopped")
        assert db["error"] == "cannot connect", db
        assert "saturation_pct" not in db
    finally:
        for client in clients:
            client.close()
        assert probes.stop() == 0
    everything = probes.log_text() + probes.results_path.read_text()
    for leak in (secret, f"port={postgres.port}", "user=app"):
        assert leak not in everything, f"{leak} leaked"


# ---------------------------------------------------------------- configuration

BAD_CONFIGS = {
    # The sections start at line 4 (after [probes] results).
    "unknown type": ("[probe x]\ntype = ldap\n", 5, "unknown type"),
    "bad regex": ("[probe x]\ntype = http\nurl = http://127.0.0.1:1/\nbody = (green\n", 7, "PCRE2"),
    "missing url": ("[probe x]\ntype = http\n", 4, "url is missing"),
    "bad name": ("[probe a.b]\ntype = tcp\naddress = 127.0.0.1:1\n", 4, "[probe a.b]"),
    "17 probes": ("".join(f"[probe p{i}]\ntype = tcp\naddress = 127.0.0.1:1\n" for i in range(17)), 4 + 16 * 3,
                  "too many probes"),
}


def test_config_errors_exit_2_naming_file_and_line(paths, run_dir):
    for case, (sections, line, fragment) in BAD_CONFIGS.items():
        probes = Probes(paths, run_dir / case.replace(" ", "-"), sections)
        result = probes.run_once()
        assert result.returncode == 2, f"{case}: {result.returncode} {result.stderr}"
        assert f"CC0504: {probes.config_path}:{line}: " in result.stderr, f"{case}: {result.stderr}"
        assert fragment in result.stderr, f"{case}: {result.stderr}"
        assert not probes.results_path.exists(), case
    usage = subprocess.run([str(probes_binary(paths)), "--no-such-option"], capture_output=True, text=True, timeout=30)
    assert usage.returncode == 2
    conninfo = run_dir / "open.conninfo"
    conninfo.write_text("host=127.0.0.1 password=Open-Secret\n")
    os.chmod(conninfo, 0o644)
    probes = Probes(paths, run_dir / "open-conninfo", f"[probe pg]\ntype = postgresql\nconninfo_file = {conninfo}\n")
    result = probes.run_once()
    assert result.returncode == 2 and "group or others" in result.stderr and "Open-Secret" not in result.stderr


def test_once_writes_results_and_exits_0_even_when_probes_are_down(paths, run_dir):
    probes = Probes(paths, run_dir / "probes", f"[probe gone]\ntype = tcp\naddress = 127.0.0.1:{free_port()}\n")
    result = probes.run_once()
    assert result.returncode == 0, result.stderr
    results = probes.results()
    assert results["format"] == "coupecircuit-probes/1"
    assert results["stale_after_ms"] == 3 * 5000 + 2000
    assert [(p["name"], p["status"]) for p in results["probes"]] == [("gone", "down")]
    assert oct(probes.results_path.stat().st_mode & 0o777) == "0o644"


def test_sighup_with_an_error_keeps_the_running_probes(paths, run_dir, http_target):
    good = f"[probe web]\ntype = tcp\naddress = 127.0.0.1:{http_target.port}\nperiod = 200ms\nrise = 1\n"
    probes = Probes(paths, run_dir / "probes", good).start()
    try:
        probes.wait_probe("web", lambda p: p["status"] == "up", 5, "up")
        probes.write_config(good + "[probe es]\ntype = http\nurl = http://127.0.0.1:1/\nbody = (green\n")
        probes.signal(signal.SIGHUP)
        wait_for(probes.log_text, lambda t: "CC0503" in t, 5, "the reload is refused")
        assert f"{probes.config_path}:12: [probe es] body:" in probes.log_text()
        # Still running, still checking, still writing.
        before = probes.results()["written_wall_ms"]
        results, _ = wait_for(probes.results, lambda r: r["written_wall_ms"] > before, 3, "results still written")
        assert [p["name"] for p in results["probes"]] == ["web"] and results["probes"][0]["status"] == "up"
        since = results["probes"][0]["since_wall_s"]

        probes.write_config(good + f"[probe web2]\ntype = tcp\naddress = 127.0.0.1:{http_target.port}\nperiod = 200ms\nrise = 1\n")
        probes.signal(signal.SIGHUP)
        wait_for(probes.log_text, lambda t: "CC0502" in t, 5, "the reload is accepted")
        probes.wait_probe("web2", lambda p: p["status"] == "up", 5, "the new probe up")
        assert probes.probe("web")["since_wall_s"] == since, "an unchanged probe keeps its state"
    finally:
        assert probes.stop() == 0
