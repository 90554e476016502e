#!/usr/bin/python3
"""The overload experiment: the incident of a traffic spike on two PHP nodes
in front of a 30-connection PostgreSQL, without CoupeCircuit (run A) and with
it (run B; run C: B with one node's helper killed during the spike).

Everything runs on this machine, on 127.0.0.1 and free ports, and is stopped
at the end: PostgreSQL (its own cluster in a temporary directory,
max_connections = 30), one redis-server keeping both nodes' PHP sessions
(phpredis; `--sessions files`: each node's own directory), two nodes (Apache
event MPM + php-fpm + mod_coupecircuit + coupecircuitd each, started with the
integration tests' harness), HAProxy in front (cookie persistence, health and
agent checks; `--lb roundrobin`: neither), and the load generator of
loadgen.py.

The rates are never constants: the site's capacity is measured first (a
closed loop below the database's connection limit), the load profile goes
from 0.5x to 3x that capacity and back, and CoupeCircuit's thresholds are
derived from it.

Usage (as root, after a build): overload.py [--quick] [--build-dir DIR] [--out DIR] [--publish]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import csv
import datetime
import json
import math
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

sys.dont_write_bytecode = True          # the source tree stays clean
HERE = Path(__file__).resolve().parent
SOURCE_DIR = HERE.parents[1]
sys.path.insert(0, str(SOURCE_DIR / "tests" / "integration"))
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import probes_harness  # noqa: E402
import loadgen  # noqa: E402
import report  # noqa: E402
from redis_harness import RedisServer, redis_available  # noqa: E402

HOST = "app.example"
HAPROXY_BIN = "/usr/sbin/haproxy"
DB_MAX_CONNECTIONS = 30        # as in the incident
FPM_CHILDREN = 32              # per node: 64 PHP workers for 27 application connections
CAPACITY_CLIENTS = 24          # closed loop just below the application's 27 connections
# The load generator and HAProxy play machines of their own (the clients, the
# load balancer): on this shared machine they run at a higher priority than
# the nodes, so that the nodes' saturation is what limits the traffic.
CLIENT_NICE = -10


@dataclass(frozen=True)
class Mode:
    name: str
    capacity_seconds: float
    think: float               # mean think time of a logged-in user (s)
    profile: loadgen.Profile
    timeout: float             # a person gives up after this many seconds
    hold: int                  # CoupeCircuitHold


# The quick mode shortens the phases and, in the same proportion, the
# patience of a person (the full run's 8 s timeout over a 70 s spike becomes
# 2.5 s over 24 s): the backlog of an overloaded site grows with the length
# of the spike, the latency at which people give up must shrink with it.
QUICK = Mode("quick", capacity_seconds=6, think=1.0,
             profile=loadgen.Profile(base=8, up=6, peak=24, down=4, cool=14), timeout=2.5, hold=5)
FULL = Mode("full", capacity_seconds=12, think=2.0,
            profile=loadgen.Profile(base=20, up=20, peak=70, down=10, cool=40), timeout=8.0, hold=10)

# Share of the capacity the logged-in users present from the start offer.
BASE_USERS_SHARE = 0.25
# Sessions at which a node trips, as a share of the sessions that offer the
# full capacity (capacity x think time); released at RELEASE_SHARE. The
# baseline (0.5x) keeps about half of that logged in, below the release.
TRIP_SHARE = 0.8
RELEASE_SHARE = 0.65
# Keyspace notifications (keys, generic commands such as DEL/EXPIRE, strings,
# expirations): the helpers see a login or logout within a second.
REDIS_NOTIFICATIONS = "Kg$x"


def log(message: str) -> None:
    print(f"[overload {time.strftime('%H:%M:%S')}] {message}", flush=True)


# ---------------------------------------------------------------- PostgreSQL

class Postgres(probes_harness.Postgres):
    """The tests' PostgreSQL starter with the application's schema, bigger
    buffers and warnings only in its log."""

    def __init__(self, max_connections: int = DB_MAX_CONNECTIONS):
        super().__init__(max_connections, prefix="cc-overload-pg-", monitor=False,
                         settings={"shared_buffers": "64MB", "log_min_messages": "warning", "log_line_prefix": "%m "})

    @property
    def dsn(self) -> str:
        return f"host=127.0.0.1 port={self.port} dbname=app user=app connect_timeout=5"

    def start(self) -> None:
        super().start()
        self.psql((HERE / "app" / "schema.sql").read_text(), database="app", user="app", timeout=120)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        super().stop()
        shutil.rmtree(self.directory, ignore_errors=True)


# ---------------------------------------------------------------- nodes

@dataclass
class Thresholds:
    trip: int
    release: int


@dataclass(frozen=True)
class SessionStore:
    """Where PHP keeps the sessions: "files" (each node's own directory, the
    harness's default: a user must stay on his node) or "redis" (one
    redis-server for both nodes, phpredis: any node serves any user)."""
    kind: str
    redis_url: str = ""

    @property
    def shared(self) -> bool:
        return self.kind == "redis"


def sessions_settings(store: SessionStore) -> tuple[dict[str, str], str]:
    """The php-fpm pool's php_admin_value settings of the store, and the
    helper's [sessions] lines (the same values as php.ini, as the README
    tells operators)."""
    if store.kind == "files":
        return {}, ""  # the harness points PHP's files handler and the helper at the node's directory
    return ({"session.save_handler": "redis", "session.save_path": store.redis_url},
            f"\n[sessions]\nsave_handler = redis\nsave_path = {store.redis_url}\n")


class Node:
    """Apache (event MPM) + php-fpm + the application, and its coupecircuitd."""

    def __init__(self, paths: harness.Paths, workdir: Path, name: str, dsn: str, with_cc: bool,
                 thresholds: Thresholds | None, hold: int, token: str, sessions: SessionStore):
        self.name = name
        self.with_cc = with_cc
        self.agent_port = harness.free_port()
        fpm_settings, helper_sessions = sessions_settings(sessions)
        agent = ""
        if with_cc and thresholds is not None:
            agent = f"\n[agent]\nport = {self.agent_port}\nsessions = {thresholds.trip}\n"
        self.helper = harness.Helper(paths, harness.make_dir(workdir / "helper"),
                                     config_extra=helper_sessions + agent)
        vhost = [f'SetEnv OVERLOAD_DSN "{dsn}"',
                 "<IfModule coupecircuit_module>"]
        if thresholds is not None:
            vhost += [f"    CoupeCircuitThreshold sessions {thresholds.trip} {thresholds.release}",
                      f"    CoupeCircuitHold {hold}"]
        vhost += ["    CoupeCircuitAction refuse-new",
                  "    CoupeCircuitRetryAfter 30",
                  "    CoupeCircuitExempt /coupecircuit/",
                  '    <Location "/health">',
                  "        SetHandler coupecircuit-health",
                  f"        CoupeCircuitHealthToken {token}",
                  "    </Location>",
                  '    <Location "/coupecircuit/status">',
                  "        SetHandler coupecircuit-status",
                  "        Require local",
                  "    </Location>",
                  "</IfModule>"]
        mpm = {"StartServers": "2", "ServerLimit": "4", "ThreadsPerChild": "25", "MinSpareThreads": "25",
               "MaxSpareThreads": "100", "MaxRequestWorkers": "100"}
        self.apache = harness.Apache(paths, harness.make_dir(workdir / "apache"), "event", self.helper.session_dir,
                                     snapshot=self.helper.snapshot, with_module=with_cc,
                                     vhosts=[harness.VirtualHost(HOST, vhost)], mpm=mpm,
                                     server_lines=["<IfModule !authz_host_module>",
                                                   f'    LoadModule authz_host_module '
                                                   f'"{harness.APACHE_MODULE_DIR}/mod_authz_host.so"',
                                                   "</IfModule>"])
        assert self.apache.fpm is not None
        self.apache.fpm.children = FPM_CHILDREN
        self.apache.fpm.write_config()
        if fpm_settings:
            # The pool's php_admin_value lines win over php.ini: replace the
            # harness's session directory by the store.
            pool = self.apache.fpm.config.read_text()
            default = f"php_admin_value[session.save_path] = {self.helper.session_dir}\n"
            assert default in pool, "the php-fpm pool of the harness changed"
            pool = pool.replace(default, "".join(f'php_admin_value[{key}] = "{value}"\n'
                                                  for key, value in fpm_settings.items()))
            self.apache.fpm.config.write_text(pool)
        for page in self.apache.htdocs.glob("*.php"):
            page.unlink()
        for page in (HERE / "app").glob("*.php"):
            shutil.copyfile(page, self.apache.htdocs / page.name)
            os.chmod(self.apache.htdocs / page.name, 0o644)
        # Without the module (run A), /health is this file: the node is always "UP".
        (self.apache.htdocs / "health").write_text("UP\n")
        with open(self.apache.php_ini, "a", encoding="ascii") as ini:
            ini.write("\n; production-like\n[opcache]\nopcache.enable = 1\nopcache.validate_timestamps = 0\n")

    def start(self) -> None:
        if self.with_cc:
            self.helper.start()
        self.apache.start()

    def stop(self) -> None:
        try:
            self.apache.stop()
        finally:
            self.helper.stop()

    def status(self) -> dict:
        """sessions and state from the module's status page (run B)."""
        request = urllib.request.Request(f"http://127.0.0.1:{self.apache.port}/coupecircuit/status?json",
                                         headers={"Host": HOST})
        try:
            with urllib.request.urlopen(request, timeout=2) as reply:
                document = json.loads(reply.read())
        except (OSError, ValueError):
            return {"sessions": None, "state": "?"}
        vhosts = [v for v in document.get("vhosts", []) if v.get("name") == HOST] or document.get("vhosts", [])
        return {"sessions": document.get("sessions", {}).get("active_authenticated"),
                "state": vhosts[0].get("state", "?") if vhosts else "?",
                "health": document.get("snapshot", {}).get("health")}


# ---------------------------------------------------------------- HAProxy

class HAProxy:
    def __init__(self, directory: Path, nodes: list[Node], token: str, balance: str):
        self.directory = directory
        self.port = harness.free_port()
        self.config = directory / "haproxy.cfg"
        self.log = directory / "haproxy.log"
        self.process: subprocess.Popen | None = None
        errorfile = directory / "503.http"
        errorfile.write_text("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/html; charset=utf-8\r\n"
                             "Retry-After: 30\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
                             "<!doctype html><title>Trop de monde</title><p>Reessayez dans quelques minutes.</p>\n")
        sticky = balance == "sticky"
        servers = "".join(
            f"    server {n.name} 127.0.0.1:{n.apache.port}{' cookie ' + n.name if sticky else ''}"
            f"{' agent-port ' + str(n.agent_port) if sticky else ''}\n" for n in nodes)
        if sticky:
            # The backend of docs/LOAD_BALANCERS.md (checks every 500 ms):
            # cookie persistence; a node that trips is drained (health check
            # DRAIN, agent) and keeps only its users.
            backend = ("    cookie SRV insert indirect nocache httponly\n"
                       "    http-check expect rstring ^(UP|DRAIN)\n"
                       "    http-check expect string UP error-status L7OKC\n")
            checks = "check inter 500ms fall 3 rise 2 weight 100 agent-check agent-inter 500ms"
        else:
            # Seed 004's load balancer: plain round robin, no persistence,
            # no drain; a node is down only when it does not answer. Each
            # node sheds new visitors itself (refuse-new, the application).
            backend = "    http-check expect rstring ^(UP|DRAIN)\n"
            checks = "check inter 500ms fall 3 rise 2"
        self.config.write_text(f"""# HAProxy of the overload experiment (generated)
global
    maxconn 4000
    # One line per request (X-Request-Id captured), health changes.
    log stderr format short local0 info

defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout check 5s
    # Longer than the clients' idle keep-alive (aiohttp: 15 s): the clients
    # close idle connections, never the other way round.
    timeout http-keep-alive 30s
    log global
    option httplog
    option log-health-checks

frontend www
    bind 127.0.0.1:{self.port}
    http-request capture req.hdr(X-Request-Id) len 12
    default_backend php

backend php
    balance roundrobin
    retry-on 503 conn-failure empty-response
    option redispatch 1
    http-request disable-l7-retry unless METH_GET
    option httpchk
    http-check send meth GET uri /health ver HTTP/1.1 hdr Host {HOST} hdr Authorization "Bearer {token}"
{backend}    http-response set-header X-Node %[srv_name]
    errorfile 503 {errorfile}
    default-server {checks}
{servers}""")

    def requests_logged(self) -> dict[int, str]:
        """X-Request-Id -> log line of every request HAProxy logged (option httplog)."""
        return requests_logged(self.log)

    def start(self) -> None:
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen([HAPROXY_BIN, "-f", str(self.config), "-db"], stdin=subprocess.DEVNULL,
                                            stdout=output, stderr=output, env=harness.clean_env(),
                                            start_new_session=True, preexec_fn=lambda: os.nice(CLIENT_NICE))
        def state():
            if self.process.poll() is not None:
                raise RuntimeError(f"haproxy exited with {self.process.returncode}: {self.log.read_text()}")
            return harness.port_accepts(self.port)

        harness.wait_for(state, bool, 20, "HAProxy accepts connections")

    def stop(self) -> None:
        harness.stop_process(self.process)


# ---------------------------------------------------------------- one run

class Cluster:
    """Two nodes and HAProxy, started and stopped together."""

    def __init__(self, paths: harness.Paths, workdir: Path, dsn: str, with_cc: bool,
                 thresholds: Thresholds | None, hold: int, balance: str, sessions: SessionStore):
        self.token = "cc-overload-" + secrets.token_hex(16)
        self.nodes = [Node(paths, harness.make_dir(workdir / name), name, dsn, with_cc, thresholds, hold, self.token,
                           sessions) for name in ("web1", "web2")]
        self.lb = HAProxy(workdir, self.nodes, self.token, balance)

    def __enter__(self) -> "Cluster":
        try:
            for node in self.nodes:
                node.start()
            self.lb.start()
            # Both servers seen up by HAProxy before any traffic.
            harness.wait_for(lambda: self.ready(), bool, 20, "the nodes answer through HAProxy", interval=0.2)
        except BaseException:
            self.__exit__()
            raise
        return self

    def ready(self) -> bool:
        request = urllib.request.Request(f"http://127.0.0.1:{self.lb.port}/login.php", headers={"Host": HOST})
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status == 200

    def __exit__(self, *exc) -> None:
        self.lb.stop()
        for node in self.nodes:
            try:
                node.stop()
            except AssertionError as error:
                log(f"stopping {node.name}: {error}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.lb.port}"

    def php_errors(self) -> int:
        count = 0
        for node in self.nodes:
            assert node.apache.fpm is not None
            path = node.apache.fpm.php_log
            if path.exists():
                count += path.read_text(errors="replace").count("database connection failed")
        return count


def refused_by_postgres(log_text: str) -> int:
    """Connections PostgreSQL refused for lack of slots (the application's
    role sees "remaining connection slots are reserved" once only the
    superusers' slots are left, "too many clients" beyond)."""
    return log_text.count("too many clients already") + log_text.count("remaining connection slots are reserved")


class client_priority:
    """CLIENT_NICE for the calling thread (Linux: nice is per thread) while the
    load generator runs; processes started meanwhile would inherit it, so none
    is started inside."""

    def __enter__(self):
        os.setpriority(os.PRIO_PROCESS, 0, CLIENT_NICE)

    def __exit__(self, *exc):
        os.setpriority(os.PRIO_PROCESS, 0, 0)


def requests_logged(haproxy_log: Path) -> dict[int, str]:
    logged = {}
    for line in haproxy_log.read_text(errors="replace").splitlines():
        start = line.find("{")
        end = line.find("}", start + 1)
        if start >= 0 and end > start and line[start + 1:end].isdigit():
            logged[int(line[start + 1:end])] = line
    return logged


def unanswered(records: list[loadgen.Record], logged: dict[int, str]) -> dict:
    """Requests whose connection closed before any answer (status 0, not a
    timeout): on a reused keep-alive connection or a new one, and whether
    HAProxy logged them at all (then its lines, without the client address)."""
    failed = [r for r in records if r.outcome == loadgen.FAILED]
    return {"count": len(failed), "on_reused_connection": sum(1 for r in failed if r.reused == 1),
            "on_new_connection": sum(1 for r in failed if r.reused == 0),
            "logged_by_haproxy": sum(1 for r in failed if r.request_id in logged),
            "haproxy_lines": [logged[r.request_id].split("] ", 1)[-1] for r in failed if r.request_id in logged][:5],
            "errors": dict(collections.Counter(r.error for r in failed)),
            "pages": dict(collections.Counter(f"{r.cls} {r.page}" for r in failed)),
            "latency_ms_max": max((r.latency_ms for r in failed), default=None)}


def thresholds_for(capacity_rps: float, think: float, shared_sessions: bool) -> Thresholds:
    """Per node: the sessions a node counts are its own (files) or the whole
    site's (Redis: every helper counts the one store)."""
    sessions_at_capacity = capacity_rps * think / (1 if shared_sessions else 2)
    trip = max(4, round(TRIP_SHARE * sessions_at_capacity))
    release = max(2, min(trip - 1, round(RELEASE_SHARE * sessions_at_capacity)))
    return Thresholds(trip, release)


def save_run(out: Path, name: str, outcome: dict) -> None:
    with open(out / f"requests-{name}.csv", "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(loadgen.RECORD_HEADER)
        writer.writerows(loadgen.records_to_rows(outcome["records"]))
    loadgen.dump_json(out / f"samples-{name}.json", outcome["samples"])


def machine() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            memory_kb = int(line.split()[1])
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": round(memory_kb / 1024 / 1024, 1),
            "kernel": platform.release(), "load_at_start": os.getloadavg(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def run_experiment(args: argparse.Namespace) -> dict:
    mode = QUICK if args.quick else FULL
    paths = harness.Paths(Path(args.build_dir).resolve(), SOURCE_DIR)
    for binary in (paths.daemon, paths.ctl, paths.module):
        if not binary.exists():
            raise SystemExit(f"{binary} is missing: build first (cmake --build {args.build_dir})")
    out = harness.make_dir(Path(args.out).resolve())
    work = out / "work"
    if work.exists():
        shutil.rmtree(work)
    harness.make_dir(work)
    harness.check_traversable(work)
    harness.become_subreaper()
    started = time.monotonic()
    result: dict = {"mode": mode.name, "machine": machine(), "think": mode.think, "timeout": mode.timeout,
                    "hold": mode.hold, "profile": vars(mode.profile), "balance": args.lb, "sessions": args.sessions,
                    "db_max_connections": DB_MAX_CONNECTIONS, "fpm_children": FPM_CHILDREN, "runs": {}}
    postgres = Postgres()
    redis: RedisServer | None = None
    store = SessionStore("files")
    try:
        log(f"PostgreSQL (max_connections = {DB_MAX_CONNECTIONS}) in {postgres.directory}")
        postgres.start()
        if args.sessions == "redis":
            if not redis_available():
                raise SystemExit("--sessions redis: redis-server and redis-cli are needed (Debian redis-server)")
            redis = RedisServer(work / "redis", notifications=REDIS_NOTIFICATIONS).start()
            store = SessionStore("redis", f"tcp://127.0.0.1:{redis.port}")
            log(f"Redis for the sessions of both nodes: {store.redis_url}")
        runs = ["A", "B"] + (["C"] if args.with_c else [])
        thresholds: Thresholds | None = None
        for name in runs:
            with_cc = name != "A"
            if redis is not None:
                redis.cli("FLUSHALL")   # every run starts without sessions, like its own directories
            with Cluster(paths, harness.make_dir(work / name), postgres.dsn, with_cc, thresholds, mode.hold,
                         args.lb, store) as cluster:
                if "capacity" not in result:
                    log("measuring the capacity (closed loop, "
                        f"{CAPACITY_CLIENTS} logged-in users without think time, {mode.capacity_seconds:.0f} s)")
                    with client_priority():
                        capacity = asyncio.run(loadgen.measure_capacity(cluster.url, HOST, CAPACITY_CLIENTS,
                                                                        mode.capacity_seconds, mode.timeout))
                    result["capacity"] = capacity
                    thresholds = thresholds_for(capacity["rps"], mode.think, store.shared)
                    result["thresholds"] = vars(thresholds)
                    log(f"capacity {capacity['rps']:.0f} requests/s (p50 {capacity['p50_ms']:.0f} ms, "
                        f"p99 {capacity['p99_ms']:.0f} ms, {capacity['errors']} errors); sessions threshold per "
                        f"node {thresholds.trip} (release {thresholds.release})")
                    if name != "A":
                        raise SystemExit("the capacity is measured on run A")
                capacity_rps = result["capacity"]["rps"]
                base_users = max(4, round(BASE_USERS_SHARE * capacity_rps * mode.think))
                events = {}
                if name == "C":
                    kill_at = round(mode.profile.crossing_up(1.0)) + 2
                    victim = cluster.nodes[0]
                    events[kill_at] = victim.helper.kill9
                    result.setdefault("c_helper_killed_at", kill_at)
                log(f"run {name}: {'with' if with_cc else 'without'} CoupeCircuit, {base_users} logged-in users, "
                    f"new visitors 0.5x..3x of {capacity_rps:.0f} requests/s over {mode.profile.duration:.0f} s")
                pg_log_before = len(postgres.log_text())

                def sample() -> dict:
                    row = {}
                    if with_cc:
                        for node in cluster.nodes:
                            status = node.status()
                            row[f"{node.name}_sessions"] = status["sessions"]
                            row[f"{node.name}_state"] = status["state"]
                    return row

                with client_priority():
                    outcome = asyncio.run(loadgen.run_scenario(cluster.url, HOST, mode.profile, capacity_rps,
                                                               mode.think, base_users, mode.timeout, sample=sample,
                                                               events=events, seed=7))
                save_run(out, name, outcome)
                summary = report.summarize(outcome, mode.profile, mode.hold)
                summary["php_db_connection_failures"] = cluster.php_errors()
                summary["pg_too_many_clients"] = refused_by_postgres(postgres.log_text()[pg_log_before:])
                summary["with_coupecircuit"] = with_cc
                summary["unanswered"] = unanswered(outcome["records"], cluster.lb.requests_logged())
                result["runs"][name] = summary
                log(f"run {name}: " + report.one_line(summary))
    finally:
        if redis is not None:
            redis.stop()
        postgres.stop()
    result["elapsed_seconds"] = round(time.monotonic() - started, 1)
    loadgen.dump_json(out / "results.json", result)
    figure = report.figure(out, result, mode.profile)
    markdown = report.markdown(result, figure_name="overload.png")
    (out / "OVERLOAD.md").write_text(markdown)
    if args.publish:
        shutil.copyfile(figure, SOURCE_DIR / "docs" / "overload.png")
        (SOURCE_DIR / "docs" / "OVERLOAD.md").write_text(markdown)
        log("published docs/OVERLOAD.md and docs/overload.png")
    log(f"done in {result['elapsed_seconds']:.0f} s: {out}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short phases (under 3 minutes), for the test command")
    parser.add_argument("--build-dir", default=os.environ.get("COUPECIRCUIT_BUILD_DIR", str(SOURCE_DIR / "build")))
    parser.add_argument("--out", help="directory of the results (default: <build>/bench/overload/<mode>)")
    parser.add_argument("--publish", action="store_true", help="write docs/OVERLOAD.md and docs/overload.png")
    parser.add_argument("--with-c", action="store_true", help="also run C: B with web1's helper killed in the spike")
    parser.add_argument("--lb", choices=("sticky", "roundrobin"), default="sticky",
                        help="HAProxy cookie persistence (default) or plain round robin")
    parser.add_argument("--sessions", choices=("redis", "files"), default="redis",
                        help="PHP sessions in one Redis for both nodes (default), or each node's files")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("run as root: Apache and php-fpm run as www-data, PostgreSQL as postgres, like in production")
    if args.out is None:
        args.out = str(Path(args.build_dir) / "bench" / "overload" / ("quick" if args.quick else "full"))
    run_experiment(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
