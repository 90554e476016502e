"""coupecircuit-probes for the integration tests: the real program on a
configuration of [probe NAME] sections, read through its results file; a
real PostgreSQL cluster of its own (temporary directory, free port on
127.0.0.1) and clients that hold connections to it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

from harness import Paths, clean_env, free_port, make_dir, stop_process, wait_for

PG_BIN = Path("/usr/lib/postgresql/15/bin")


def probes_binary(paths: Paths) -> Path:
    return paths.build_dir / "probes" / "coupecircuit-probes"


class Probes:
    """One coupecircuit-probes process: config in workdir, results in
    workdir/run/probes.json, log in workdir/probes.log."""

    def __init__(self, paths: Paths, workdir: Path, sections: str):
        self.paths = paths
        self.workdir = make_dir(workdir)
        self.config_path = self.workdir / "coupecircuitd.conf"
        self.results_path = self.workdir / "run" / "probes.json"
        self.log_path = self.workdir / "probes.log"
        self.process: subprocess.Popen | None = None
        self.write_config(sections)

    def write_config(self, sections: str) -> None:
        self.config_path.write_text(f"[probes]\nresults = {self.results_path}\n\n{sections}")

    def start(self) -> "Probes":
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([str(probes_binary(self.paths)), "--config", str(self.config_path),
                                             "--foreground"], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=clean_env())
        wait_for(self.results, lambda r: r is not None, 10, "coupecircuit-probes writes its results file")
        return self

    def run_once(self, timeout: float = 30) -> subprocess.CompletedProcess:
        return subprocess.run([str(probes_binary(self.paths)), "--config", str(self.config_path), "--once"],
                              capture_output=True, text=True, timeout=timeout, env=clean_env())

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, signo: int) -> None:
        assert self.running()
        self.process.send_signal(signo)

    def stop(self) -> int | None:
        return stop_process(self.process, signal.SIGTERM, 15)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def results(self) -> dict | None:
        try:
            return json.loads(self.results_path.read_text())
        except FileNotFoundError:
            return None

    def probe(self, name: str) -> dict:
        results = self.results()
        assert results is not None, "no results file"
        found = [p for p in results["probes"] if p["name"] == name]
        assert found, f"probe {name} not in {results}"
        return found[0]

    def wait_probe(self, name: str, condition, timeout: float, what: str) -> tuple[dict, float]:
        return wait_for(lambda: self.probe(name), condition, timeout, f"probe {name}: {what}", interval=0.05)


# ---------------------------------------------------------------- PostgreSQL

class Postgres:
    """A PostgreSQL cluster of its own in a temporary directory, on
    127.0.0.1:<free port>, run as the postgres user when the tests run as
    root; a role and a database "app", trust authentication. `settings`
    adds to or overrides the server settings; `monitor` grants pg_monitor
    to "app" (what the saturation query reads)."""

    def __init__(self, max_connections: int = 30, prefix: str = "cc-probes-pg-",
                 settings: dict | None = None, monitor: bool = True):
        self.max_connections = max_connections
        self.extra_settings = dict(settings or {})
        self.monitor = monitor
        self.directory = Path(tempfile.mkdtemp(prefix=prefix))
        os.chmod(self.directory, 0o755)
        self.data = self.directory / "data"
        self.log_path = self.directory / "postgres.log"
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.user = "postgres" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
        if os.geteuid() == 0:
            shutil.chown(self.directory, self.user, self.user)

    def _as_owner(self, command: list[str]) -> list[str]:
        return ["runuser", "-u", self.user, "--", *command] if os.geteuid() == 0 else command

    def start(self, initdb: bool = True) -> "Postgres":
        env = clean_env()
        if initdb:
            subprocess.run(self._as_owner([str(PG_BIN / "initdb"), "-D", str(self.data), "-U", "postgres",
                                           "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"]),
                           check=True, capture_output=True, env=env, timeout=120)
        settings = {"port": self.port, "listen_addresses": "127.0.0.1", "unix_socket_directories": self.directory,
                    "max_connections": self.max_connections, "shared_buffers": "16MB", "fsync": "off",
                    "synchronous_commit": "off", "full_page_writes": "off", "logging_collector": "off",
                    **self.extra_settings}
        command = [str(PG_BIN / "postgres"), "-D", str(self.data)]
        for key, value in settings.items():
            command += ["-c", f"{key}={value}"]
        with open(self.log_path, "ab") as output:
            self.process = subprocess.Popen(self._as_owner(command), stdin=subprocess.DEVNULL, stdout=output,
                                            stderr=output, env=env, start_new_session=True)
        wait_for(lambda: self.process.poll() is None and subprocess.run(
            [str(PG_BIN / "pg_isready"), "-q", "-h", str(self.directory), "-p", str(self.port)],
            env=env, timeout=10).returncode == 0, bool, 60, "PostgreSQL accepts connections", interval=0.2)
        if initdb:
            self.psql("CREATE ROLE app LOGIN")
            self.psql("CREATE DATABASE app OWNER app")
            if self.monitor:
                self.psql("GRANT pg_monitor TO app")
        return self

    def psql(self, sql: str, database: str = "postgres", user: str = "postgres", timeout: float = 60) -> str:
        result = subprocess.run(self._as_owner([str(PG_BIN / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1",
                                                "-h", str(self.directory), "-p", str(self.port), "-U", user,
                                                "-d", database, "-At", "-c", sql]),
                                capture_output=True, text=True, env=clean_env(), timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr}")
        return result.stdout

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # fast shutdown, through runuser
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


class PgClient:
    """One idle client connection held open (the startup handshake of the
    PostgreSQL protocol 3.0, trust authentication): what a PHP worker holding
    a connection looks like to the server."""

    def __init__(self, port: int, user: str = "app", database: str = "app"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        params = f"user\0{user}\0database\0{database}\0application_name\0test-client\0\0".encode()
        self.sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
        buffer = b""
        while True:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("PostgreSQL closed the connection")
            buffer += chunk
            if buffer[:1] == b"E":
                raise ConnectionError(buffer[5:].decode(errors="replace"))
            if b"Z\0\0\0\x05" in buffer:  # ReadyForQuery
                return

    def close(self) -> None:
        try:
            self.sock.sendall(b"X\0\0\0\x04")  # Terminate
        except OSError:
            pass
        self.sock.close()
