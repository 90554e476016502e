"""Building blocks of the CoupeCircuit integration tests.

Everything runs for real and binds only to 127.0.0.1:
  * Helper       the coupecircuitd helper (foreground) and coupecircuitctl;
  * Apache       a complete, self-contained Apache ServerRoot (own httpd.conf,
                 logs, pid file, mutexes, document root with PHP pages), in
                 two variants: "prefork" (mod_php) and "event" (php-fpm
                 through mod_proxy_fcgi);
  * PhpFpm       the php-fpm master serving the "event" variant;
  * HttpClient   http.client with a small cookie jar;
  * LoadRunner   bounded threaded request loop;
  * LogScanner   fails on unexpected warnings/errors in the logs.
"""

from __future__ import annotations

import ctypes
import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

APACHE_BIN = "/usr/sbin/apache2"
APACHE_MODULE_DIR = Path("/usr/lib/apache2/modules")
PHP_CLI = "/usr/bin/php"
PHP_FPM_BIN = "/usr/sbin/php-fpm8.2"
WWW_USER = "www-data"
WWW_GROUP = "www-data"

# Variables exported by mod_coupecircuit (default names) and read by env.php.
ENV_KEYS = (
    "LOAD_AVG",
    "SESSIONS_ACTIVES",
    "COUPURE_CHARGE_SERVEUR",
    "SEUIL_SESSIONS_ACTIVES",
    "SEUIL_LOAD_AVG",
    "COUPECIRCUIT_ETAT",
    "COUPECIRCUIT_AGE",
)

PHP_PAGES_DIR = Path(__file__).resolve().parent / "php"

# Environment variables never handed to the processes under test.
_SCRUBBED_ENV = set(ENV_KEYS) | {"JOURNAL_STREAM", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "WATCHDOG_USEC",
                                  "PHP_INI_SCAN_DIR", "PHPRC"}


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV and not k.startswith("APACHE_")}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    env["LANG"] = "C"
    env["LC_ALL"] = "C"
    env.update(extra)
    return env


def running_as_root() -> bool:
    return os.geteuid() == 0


# ---------------------------------------------------------------- processes

def become_subreaper() -> None:
    """Daemonised processes (apache2 -k start) are re-parented to this process
    instead of PID 1, so that they can be reaped and never linger as zombies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def pid_gone(pid: int) -> bool:
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return True
    except ChildProcessError:
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            data = stat.read()
    except FileNotFoundError:
        return True
    state = data.rsplit(")", 1)[-1].split()[0]
    return state in ("Z", "X")


def reap_orphans() -> None:
    """Collects exited orphans re-parented to this process (see become_subreaper)."""
    while True:
        try:
            reaped, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if reaped == 0:
            return


def children_of(pid: int) -> list[int]:
    result = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[-1].split()
        except OSError:
            continue
        if len(fields) > 1 and fields[1] == str(pid) and fields[0] not in ("Z", "X"):
            result.append(int(entry))
    return result


def wait_for(fetch: Callable[[], object], condition: Callable[[object], bool], timeout: float, what: str,
             interval: float = 0.02):
    """Polls fetch() until condition(value) holds; returns (value, seconds
    waited). Fails with the last value seen once the deadline has passed."""
    start = time.monotonic()
    deadline = start + timeout
    last: object = None
    last_error: BaseException | None = None
    while True:
        try:
            last = fetch()
            last_error = None
            if condition(last):
                return last, time.monotonic() - start
        except (OSError, http.client.HTTPException, ValueError) as error:
            last_error = error
        if time.monotonic() >= deadline:
            detail = f"last error: {last_error!r}" if last_error is not None else f"last value: {last!r}"
            raise AssertionError(f"{what}: not reached within {timeout:.1f} s ({detail})")
        time.sleep(interval)


def stop_process(process: subprocess.Popen | None, signo: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
    """Sends signo to a running process, then SIGKILL after timeout; returns
    its exit status (None when it never started)."""
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signo)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
    return process.returncode


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def chown_www(path: Path) -> None:
    if running_as_root():
        shutil.chown(path, WWW_USER, WWW_GROUP)


def make_dir(path: Path, mode: int = 0o755) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    return path


def check_traversable(path: Path) -> None:
    """Apache children and php-fpm workers run as www-data when the tests run as
    root: every ancestor of their files must be searchable by others."""
    if not running_as_root():
        return
    for ancestor in [path, *path.parents]:
        if ancestor.exists() and (ancestor.stat().st_mode & 0o001) == 0:
            raise RuntimeError(f"{ancestor} is not searchable by {WWW_USER} (mode "
                               f"{oct(ancestor.stat().st_mode & 0o777)}): use a build directory below "
                               f"world-searchable directories")


# ---------------------------------------------------------------- locations

@dataclass
class Paths:
    build_dir: Path
    source_dir: Path

    @property
    def daemon(self) -> Path:
        return self.build_dir / "scanner" / "coupecircuitd"

    @property
    def ctl(self) -> Path:
        return self.build_dir / "ctl" / "coupecircuitctl"

    @property
    def module(self) -> Path:
        return self.build_dir / "mod_coupecircuit" / "mod_coupecircuit.so"

    @property
    def run_root(self) -> Path:
        return self.build_dir / "tests" / "integration" / "run"

    def fixture_dir(self, fixture: str) -> Path:
        """Where the SETUP of a CTest fixture (coupecircuit_integration_fixture
        in CMakeLists.txt) leaves what its tests need: port, pid, sockets."""
        return self.build_dir / "tests" / "integration" / "fixtures" / fixture


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:100]


def run_dir_for(paths: Paths, test_name: str, group: str | None = None) -> Path:
    """A fresh directory for one test (or one class: test_name is then the
    class name), under run/<group>/ when given (the test file's name: tests of
    different files, run side by side by ctest -j, never share one)."""
    root = paths.run_root
    # Under ctest, module-scoped fixtures of the same file run in several
    # processes at once (one per CTest test): each gets its own tree.
    ctest_name = os.environ.get("COUPECIRCUIT_CTEST_NAME")
    if ctest_name and not group:
        root = root / _safe_name(ctest_name)
    directory = root / _safe_name(test_name)
    if group:
        directory = root / _safe_name(group) / _safe_name(test_name)
    if directory.exists():
        shutil.rmtree(directory)
    make_dir(directory)
    return directory


# ---------------------------------------------------------------- PHP sessions

SESSION_CONTENT = {
    "empty": "",
    "anonymous": "$_SESSION['Default'] = ['initialized' => true];",
    "unknown": ("$_SESSION['Default'] = ['initialized' => true];"
                "$_SESSION['__ZF'] = ['vzn_abc' => ['ENT' => time()]];"),
    "authenticated": ("$_SESSION['Default'] = ['initialized' => true];"
                      "$_SESSION['__ZF'] = ['vzn_abc' => ['ENT' => time()]];"
                      "$_SESSION['vzn_test'] = ['storage' => 'compte_reel'];"),
}


def php_session(session_dir: Path, kind: str, session_id: str | None = None) -> Path:
    """Creates (or, given an existing id, rewrites) one session file with the
    real PHP session extension (CLI) and returns its path."""
    session_id = session_id or secrets.token_hex(13)
    code = (f"session_id('{session_id}'); if (!session_start()) exit(3); {SESSION_CONTENT[kind]} "
            "if (!session_write_close()) exit(4);")
    result = subprocess.run(
        [PHP_CLI, "-n", "-d", f"session.save_path={session_dir}", "-d", "session.gc_probability=0",
         "-d", "session.use_cookies=0", "-d", "session.use_strict_mode=0", "-d", "session.save_handler=files",
         "-d", "session.serialize_handler=php", "-d", "display_errors=stderr", "-r", code],
        capture_output=True, text=True, timeout=30, env=clean_env())
    assert result.returncode == 0 and result.stderr == "", \
        f"php session_start failed ({result.returncode}): {result.stdout}{result.stderr}"
    path = session_dir / f"sess_{session_id}"
    assert path.is_file(), f"PHP did not create {path}"
    if kind == "empty":
        assert path.stat().st_size == 0, f"{path} should be empty"
    return path


# ---------------------------------------------------------------- log scanning

APACHE_BAD_LINE = re.compile(r"\[(?:[A-Za-z0-9_.]*:)?(warn|error|crit|alert|emerg)\]|segfault|exit signal|AH00052",
                             re.IGNORECASE)
FPM_BAD_LINE = re.compile(r"\b(WARNING|ERROR|ALERT|EMERG|CRIT)\b|segfault|exit signal|SIGSEGV|core dumped")
PHP_BAD_LINE = re.compile(r"PHP (Warning|Fatal error|Parse error|Notice|Deprecated|Recoverable)")
# coupecircuitd message IDs that report a problem.
HELPER_BAD_LINE = re.compile(r"\b(CC0004|CC0005|CC0011|CC0012|CC0013|CC0020|CC0021|CC0031|CC0040)\b")


@dataclass
class LogScanner:
    """Collects log files and the patterns allowed in them; problems() lists the
    lines matching a file's "bad" pattern and none of the allowed ones."""
    files: list[tuple[Path, re.Pattern]] = field(default_factory=list)
    allowed: list[re.Pattern] = field(default_factory=list)

    def watch(self, path: Path, bad: re.Pattern) -> None:
        self.files.append((path, bad))

    def allow(self, pattern: str) -> None:
        self.allowed.append(re.compile(pattern))

    def problems(self) -> list[str]:
        found = []
        for path, bad in self.files:
            if not path.exists():
                continue
            for line in path.read_text(errors="replace").splitlines():
                if bad.search(line) and not any(p.search(line) for p in self.allowed):
                    found.append(f"{path.name}: {line}")
        return found


# ---------------------------------------------------------------- coupecircuitd

class Helper:
    """coupecircuitd --foreground with its own session directory, snapshot,
    state and configuration file, and coupecircuitctl bound to them."""

    def __init__(self, paths: Paths, workdir: Path, active_minutes: int | None = None, interval: int = 60,
                 config_extra: str = "", active_minutes_flag: int | None = None):
        self.paths = paths
        self.workdir = workdir
        # Like Debian's /var/lib/php/sessions: drwx-wx-wt, PHP (www-data) can
        # create its files but not list the directory.
        self.session_dir = make_dir(workdir / "sessions", 0o1733)
        self.control_dir = make_dir(workdir / "cc")
        self.snapshot = self.control_dir / "snapshot"
        self.state = self.control_dir / "state"
        self.config = workdir / "coupecircuitd.conf"
        self.log_path = workdir / "coupecircuitd.log"
        self.interval = interval
        self.active_minutes_flag = active_minutes_flag
        self.process: subprocess.Popen | None = None
        self.write_config(active_minutes=active_minutes, extra=config_extra)

    # configuration
    def write_config(self, active_minutes: int | None = None, extra: str = "") -> None:
        lines = ["[sessions]", f"dir = {self.session_dir}"]
        if active_minutes is not None:
            lines.append(f"active_minutes = {active_minutes}")
        lines += ["", "[snapshot]", f"path = {self.snapshot}", "", "[state]", f"path = {self.state}",
                  "", "[log]", "level = info", ""]
        text = "\n".join(lines) + extra
        temporary = self.config.with_suffix(".tmp")
        temporary.write_text(text)
        os.replace(temporary, self.config)

    def command(self, once: bool = False) -> list[str]:
        command = [str(self.paths.daemon), "--config", str(self.config), "--session-dir", str(self.session_dir),
                   "--snapshot", str(self.snapshot), "--state", str(self.state), "--interval", str(self.interval)]
        if self.active_minutes_flag is not None:
            command += ["--active-minutes", str(self.active_minutes_flag)]
        command.append("--once" if once else "--foreground")
        return command

    # life cycle
    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, wait: bool = True) -> dict | None:
        """Starts the helper; with wait, returns its first status once published."""
        assert not self.running(), "coupecircuitd is already running"
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            env=clean_env(), start_new_session=True)
        return self.wait_ready() if wait else None

    def wait_ready(self, timeout: float = 10.0) -> dict:
        def probe():
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"coupecircuitd exited with {self.process.returncode}:\n{self.log_text()}")
            return self.status()

        (_, document), _ = wait_for(probe, lambda v: v[1].get("status") in ("ok", "cut", "over_threshold")
                                    and v[1].get("helper_pid") == self.pid, timeout,
                                    "coupecircuitd publishes its snapshot")
        return document

    def run_once(self, timeout: float = 30.0) -> subprocess.CompletedProcess:
        with open(self.log_path, "ab") as log:
            return subprocess.run(self.command(once=True), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                  env=clean_env(), timeout=timeout)

    def signal(self, signo: int) -> None:
        assert self.running(), "coupecircuitd is not running"
        self.process.send_signal(signo)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after timeout; returns the exit status."""
        return stop_process(self.process, signal.SIGTERM, timeout)

    def kill9(self) -> None:
        assert self.running(), "coupecircuitd is not running"
        self.process.kill()
        self.process.wait(10)

    def restart(self, hard: bool = False) -> None:
        if hard:
            self.kill9()
        else:
            self.stop()
        self.start()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # coupecircuitctl
    def ctl(self, *args: str, global_args: Sequence[str] = (), timeout: float = 30.0) -> subprocess.CompletedProcess:
        command = [str(self.paths.ctl), "--snapshot", str(self.snapshot), "--state", str(self.state), *global_args,
                   *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=clean_env())

    def ctl_ok(self, *args: str, **kwargs) -> subprocess.CompletedProcess:
        result = self.ctl(*args, **kwargs)
        assert result.returncode == 0, f"coupecircuitctl {' '.join(args)} -> {result.returncode}\n" \
                                       f"{result.stdout}{result.stderr}"
        return result

    def status(self, max_age: float | None = None) -> tuple[int, dict]:
        global_args = ["--max-age", str(max_age)] if max_age is not None else []
        result = self.ctl("status", "--json", global_args=global_args)
        try:
            document = json.loads(result.stdout)
        except json.JSONDecodeError as error:
            raise AssertionError(f"status --json is not JSON ({result.returncode}): {result.stdout!r} "
                                 f"{result.stderr!r}") from error
        return result.returncode, document

    def session(self, kind: str, session_id: str | None = None) -> Path:
        return php_session(self.session_dir, kind, session_id)


# ---------------------------------------------------------------- HTTP

@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def json(self):
        return json.loads(self.body.decode("utf-8"))

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


class HttpClient:
    """One request per connection (Connection: close), to 127.0.0.1 only; keeps
    the cookies the server sets (enough for PHPSESSID)."""

    def __init__(self, port: int, host: str | None = None, timeout: float = 15.0):
        self.port = port
        self.host = host
        self.timeout = timeout
        self.cookies: dict[str, str] = {}

    def request(self, path: str, method: str = "GET", host: str | None = None,
                headers: dict[str, str] | None = None, body: bytes | None = None) -> Response:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            all_headers = {"Host": host or self.host or f"127.0.0.1:{self.port}", "Connection": "close",
                           "User-Agent": "coupecircuit-integration"}
            if self.cookies:
                all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            all_headers.update(headers or {})
            connection.request(method, path, body=body, headers=all_headers)
            reply = connection.getresponse()
            data = reply.read()
            response = Response(reply.status, reply.getheaders(), data)
        finally:
            connection.close()
        for key, value in response.headers:
            if key.lower() == "set-cookie":
                pair = value.split(";", 1)[0]
                name, _, cookie_value = pair.partition("=")
                if cookie_value in ("", "deleted"):
                    self.cookies.pop(name.strip(), None)
                else:
                    self.cookies[name.strip()] = cookie_value.strip()
        return response

    def env(self, host: str | None = None, extra: Iterable[str] = ()) -> dict:
        """GET /env.php and returns its JSON (fails unless 200)."""
        names = ",".join(extra)
        response = self.request("/env.php" + (f"?extra={names}" if names else ""), host=host)
        assert response.status == 200, f"/env.php -> {response.status}: {response.body[:500]!r}"
        return response.json()


class WorkerThreads:
    """`threads` daemon threads running self._loop until stop(); self.lock
    guards what they record."""

    def __init__(self, threads: int):
        self.threads = threads
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.workers: list[threading.Thread] = []

    def _loop(self) -> None:
        raise NotImplementedError

    def start(self):
        for _ in range(self.threads):
            worker = threading.Thread(target=self._loop, daemon=True)
            worker.start()
            self.workers.append(worker)
        return self

    def stop(self) -> None:
        self.stop_event.set()
        for worker in self.workers:
            worker.join(60)


class LoadRunner(WorkerThreads):
    """Threads sending GET requests (new connection each) until stopped; bounded
    by max_seconds and max_requests. Records every failure."""

    def __init__(self, port: int, path: str = "/env.php", threads: int = 4, max_seconds: float = 120.0,
                 max_requests: int = 200_000, check: Callable[[Response], str | None] | None = None):
        super().__init__(threads)
        self.port = port
        self.path = path
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.check = check
        self.count = 0
        self.failures: list[str] = []

    def _loop(self) -> None:
        client = HttpClient(self.port, timeout=30.0)
        deadline = time.monotonic() + self.max_seconds
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.count >= self.max_requests:
                    return
                self.count += 1
            problem = None
            try:
                response = client.request(self.path)
                if not 200 <= response.status < 300:
                    problem = f"HTTP {response.status}"
                elif self.check is not None:
                    problem = self.check(response)
            except (OSError, http.client.HTTPException) as error:
                problem = f"{type(error).__name__}: {error}"
            if problem is not None:
                with self.lock:
                    self.failures.append(problem)

    def completed(self) -> int:
        with self.lock:
            return self.count


# ---------------------------------------------------------------- php-fpm

class PhpFpm:
    """php-fpm8.2 -F with one static pool on 127.0.0.1:<port>."""

    def __init__(self, root: Path, session_dir: Path, document_root: Path, children: int = 4):
        self.root = root
        self.session_dir = session_dir
        self.document_root = document_root
        self.children = children
        self.port = free_port()
        self.config = root / "conf" / "php-fpm.conf"
        self.log = root / "logs" / "php-fpm.log"
        self.php_log = root / "logs" / "php-fpm-php.log"
        self.pid_file = root / "run" / "php-fpm.pid"
        self.process: subprocess.Popen | None = None
        if running_as_root():
            self.php_log.touch()
            chown_www(self.php_log)
        self.write_config()

    def write_config(self) -> None:
        user = f"user = {WWW_USER}\ngroup = {WWW_GROUP}\n" if running_as_root() else ""
        self.config.write_text(f"""; php-fpm for the integration tests (generated)
[global]
pid = {self.pid_file}
error_log = {self.log}
log_level = notice
daemonize = no

[cc]
{user}listen = 127.0.0.1:{self.port}
listen.allowed_clients = 127.0.0.1
pm = static
pm.max_children = {self.children}
catch_workers_output = yes
decorate_workers_output = no
security.limit_extensions = .php
chdir = {self.document_root}
php_admin_value[session.save_path] = {self.session_dir}
php_admin_value[error_log] = {self.php_log}
php_admin_flag[log_errors] = on
php_admin_flag[display_errors] = off
""")

    def start(self, php_ini: Path, timeout: float = 15.0, attempts: int = 3) -> None:
        """Starts the master; picks another port when the chosen one was taken
        in the meantime."""
        for attempt in range(attempts):
            with open(self.root / "logs" / "php-fpm.stderr", "ab") as output:
                self.process = subprocess.Popen([PHP_FPM_BIN, "-F", "-y", str(self.config), "-c", str(php_ini)],
                                                stdin=subprocess.DEVNULL, stdout=output, stderr=output,
                                                env=clean_env(), start_new_session=True)

            def probe():
                if self.process.poll() is not None:
                    return "exited"
                log = self.log.read_text(errors="replace") if self.log.exists() else ""
                return "ready to handle connections" in log and port_accepts(self.port)

            state, _ = wait_for(probe, lambda v: v is True or v == "exited", timeout,
                                f"php-fpm ready on 127.0.0.1:{self.port}")
            if state is True:
                return
            log = self.log.read_text(errors="replace") if self.log.exists() else ""
            if "Address already in use" not in log or attempt == attempts - 1:
                raise AssertionError(f"php-fpm exited with {self.process.returncode}:\n{log}")
            # The port was taken since it was chosen: keep that log aside, try another one.
            os.replace(self.log, self.log.with_name(f"php-fpm.bind-failure-{attempt}.log"))
            self.port = free_port()
            self.write_config()

    def stop(self, timeout: float = 15.0) -> None:
        stop_process(self.process, signal.SIGQUIT, timeout)


# ---------------------------------------------------------------- Apache

VARIANTS = ("prefork", "event")

MPM_DEFAULTS = {
    "prefork": {"StartServers": "2", "MinSpareServers": "2", "MaxSpareServers": "4", "ServerLimit": "16",
                "MaxRequestWorkers": "16", "MaxConnectionsPerChild": "0"},
    "event": {"StartServers": "2", "ServerLimit": "16", "ThreadsPerChild": "10", "MinSpareThreads": "10",
              "MaxSpareThreads": "40", "MaxRequestWorkers": "40", "MaxConnectionsPerChild": "0"},
}

# One process serving every request: "once per process" log lines become
# "exactly once" (used by the stale-snapshot tests).
MPM_SINGLE_PROCESS = {
    "prefork": {"StartServers": "1", "MinSpareServers": "1", "MaxSpareServers": "1", "ServerLimit": "1",
                "MaxRequestWorkers": "1"},
    "event": {"StartServers": "1", "ServerLimit": "1", "ThreadsPerChild": "16", "MinSpareThreads": "1",
              "MaxSpareThreads": "16", "MaxRequestWorkers": "16"},
}
# What a deliberately single-process server may log when its only process is busy.
SINGLE_PROCESS_ALLOWED = (r"AH00161: server reached MaxRequestWorkers", r"AH00484: server reached MaxRequestWorkers")


@dataclass
class VirtualHost:
    name: str
    lines: Sequence[str] = ()


class Apache:
    """A self-contained Apache ServerRoot under `root`. Nothing under
    /etc/apache2 is read: every module is loaded by path."""

    def __init__(self, paths: Paths, root: Path, variant: str, session_dir: Path, snapshot: Path | None = None,
                 with_module: bool = False, server_lines: Sequence[str] = (),
                 vhosts: Sequence[VirtualHost] = (), directory_lines: Sequence[str] = (),
                 mpm: dict[str, str] | None = None,
                 module_lines: Sequence[str] | None = None, log_scanner: LogScanner | None = None,
                 document_root: Path | None = None):
        """document_root: serve that directory as it is (it must hold the
        index.html that start() waits for) instead of a copy of the test
        pages under root/htdocs."""
        assert variant in VARIANTS, variant
        self.paths = paths
        self.root = root
        self.variant = variant
        self.session_dir = session_dir
        self.snapshot = snapshot
        self.with_module = with_module
        self.server_lines = list(server_lines)
        self.vhosts = list(vhosts)
        self.directory_lines = list(directory_lines)
        self.mpm = {**MPM_DEFAULTS[variant], **(mpm or {})}
        self.module_lines = module_lines
        self.port = free_port()
        self.conf = root / "conf" / "httpd.conf"
        self.error_log = root / "logs" / "error.log"
        self.access_log = root / "logs" / "access.log"
        self.pid_file = root / "run" / "httpd.pid"
        self.own_htdocs = document_root is None
        self.htdocs = root / "htdocs" if document_root is None else document_root
        self.php_ini = root / "php" / "php.ini"
        self.fpm: PhpFpm | None = None
        self.started = False
        self.logs = log_scanner if log_scanner is not None else LogScanner()
        self._prepare()

    # -- files
    def _prepare(self) -> None:
        check_traversable(self.root)
        for sub in ("conf", "logs", "run", "run/mutex", "htdocs", "php"):
            make_dir(self.root / sub)
        if self.own_htdocs:
            for page in PHP_PAGES_DIR.glob("*.php"):
                shutil.copyfile(page, self.htdocs / page.name)
                os.chmod(self.htdocs / page.name, 0o644)
            (self.htdocs / "index.html").write_text("<!doctype html><title>ok</title><p>ok</p>\n")
        (self.root / "conf" / "mime.types").write_text("text/html html htm\ntext/plain txt\n"
                                                       "application/json json\n")
        self.php_ini.write_text(f"""; PHP settings of the integration tests (generated)
[PHP]
engine = On
expose_php = Off
display_errors = Off
display_startup_errors = Off
log_errors = On
error_reporting = E_ALL
variables_order = "GPCS"
request_order = "GP"
opcache.enable = 0

[Session]
session.save_handler = files
session.save_path = "{self.session_dir}"
session.serialize_handler = php
session.use_strict_mode = 1
session.use_cookies = 1
session.use_only_cookies = 1
session.gc_probability = 0
session.lazy_write = 1
""")
        if self.variant == "event":
            self.fpm = PhpFpm(self.root, self.session_dir, self.htdocs)
            self.logs.watch(self.fpm.log, FPM_BAD_LINE)
            self.logs.watch(self.fpm.php_log, PHP_BAD_LINE)
        self.logs.watch(self.error_log, APACHE_BAD_LINE)
        self.write_config()

    def module_block(self) -> list[str]:
        if not self.with_module:
            return []
        if self.module_lines is not None:
            return list(self.module_lines)
        lines = [f'LoadModule coupecircuit_module "{self.paths.module}"', "LogLevel warn coupecircuit:info",
                 "CoupeCircuit On"]
        if self.snapshot is not None:
            lines.append(f'CoupeCircuitSnapshot "{self.snapshot}"')
        return lines

    def render(self) -> str:
        modules = APACHE_MODULE_DIR
        lines = [
            "# Apache ServerRoot of one integration test (generated). Loads nothing from /etc/apache2.",
            f'ServerRoot "{self.root}"',
            f"Listen 127.0.0.1:{self.port}",
            "ServerName 127.0.0.1",
            f'PidFile "{self.pid_file}"',
            f'DefaultRuntimeDir "{self.root / "run"}"',
            f'Mutex file:{self.root / "run" / "mutex"} default',
            "Timeout 30",
            "KeepAlive On",
            "MaxKeepAliveRequests 100",
            "KeepAliveTimeout 2",
            "",
            f'LoadModule mpm_{self.variant}_module "{modules}/mod_mpm_{self.variant}.so"',
            f'LoadModule authz_core_module "{modules}/mod_authz_core.so"',
            f'LoadModule mime_module "{modules}/mod_mime.so"',
            f'LoadModule dir_module "{modules}/mod_dir.so"',
            f'LoadModule env_module "{modules}/mod_env.so"',
            f'LoadModule rewrite_module "{modules}/mod_rewrite.so"',
            f'LoadModule setenvif_module "{modules}/mod_setenvif.so"',
        ]
        # Debian builds these two in; another build may not.
        for name in ("log_config", "unixd"):
            lines += [f"<IfModule !{name}_module>", f'    LoadModule {name}_module "{modules}/mod_{name}.so"',
                      "</IfModule>"]
        if self.variant == "prefork":
            lines.append(f'LoadModule php_module "{modules}/libphp8.2.so"')
        else:
            lines.append(f'LoadModule proxy_module "{modules}/mod_proxy.so"')
            lines.append(f'LoadModule proxy_fcgi_module "{modules}/mod_proxy_fcgi.so"')
        if running_as_root():
            lines += [f"User {WWW_USER}", f"Group {WWW_GROUP}"]
        lines += [
            "",
            f'ErrorLog "{self.error_log}"',
            "LogLevel warn",
            'LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{Host}i\\" %P %D" cc',
            f'CustomLog "{self.access_log}" cc',
            f'TypesConfig "{self.root / "conf" / "mime.types"}"',
            "",
            f"<IfModule mpm_{self.variant}_module>",
            *[f"    {key} {value}" for key, value in self.mpm.items()],
            "</IfModule>",
            "",
            f'DocumentRoot "{self.htdocs}"',
            "<Directory />",
            "    AllowOverride None",
            "    Require all denied",
            "</Directory>",
            f'<Directory "{self.htdocs}">',
            "    Options None",
            "    AllowOverride None",
            "    Require all granted",
            *[f"    {line}" for line in self.directory_lines],
            "</Directory>",
            "DirectoryIndex index.html",
            "",
        ]
        if self.variant == "prefork":
            lines += [
                f'PHPINIDir "{self.php_ini.parent}"',
                '<FilesMatch "\\.php$">',
                "    SetHandler application/x-httpd-php",
                "</FilesMatch>",
                f'php_admin_value session.save_path "{self.session_dir}"',
                "php_admin_flag log_errors on",
                "php_admin_flag display_errors off",
            ]
        else:
            assert self.fpm is not None
            lines += [
                '<FilesMatch "\\.php$">',
                f'    SetHandler "proxy:fcgi://127.0.0.1:{self.fpm.port}"',
                "</FilesMatch>",
                "ProxyTimeout 30",
            ]
        lines.append("")
        lines += self.module_block()
        lines += self.server_lines
        for vhost in self.vhosts:
            lines += ["", f"<VirtualHost 127.0.0.1:{self.port}>", f"    ServerName {vhost.name}",
                      f'    DocumentRoot "{self.htdocs}"', *[f"    {line}" for line in vhost.lines],
                      "</VirtualHost>"]
        return "\n".join(lines) + "\n"

    def write_config(self) -> None:
        self.conf.write_text(self.render())

    def line_of(self, needle: str) -> int:
        """1-based line number of the first configuration line containing needle."""
        for number, line in enumerate(self.conf.read_text().splitlines(), start=1):
            if needle in line:
                return number
        raise AssertionError(f"{needle!r} not in {self.conf}")

    # -- commands
    def apache2(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
        return subprocess.run([APACHE_BIN, "-d", str(self.root), "-f", str(self.conf), *args],
                              capture_output=True, text=True, timeout=timeout, env=clean_env())

    def configtest(self) -> subprocess.CompletedProcess:
        return self.apache2("-t")

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def client(self, host: str | None = None) -> HttpClient:
        return HttpClient(self.port, host=host)

    def start(self, timeout: float = 30.0, attempts: int = 3) -> None:
        if self.fpm is not None and (self.fpm.process is None or self.fpm.process.poll() is not None):
            self.fpm.start(self.php_ini)
        for attempt in range(attempts):
            self.write_config()
            result = self.apache2("-k", "start")
            if result.returncode == 0:
                break
            output = result.stdout + result.stderr + self.error_log_text()
            if "Address already in use" not in output or attempt == attempts - 1:
                raise AssertionError(f"apache2 -k start -> {result.returncode}\n{output}")
            # The port was taken since it was chosen: keep that log aside, try another one.
            if self.error_log.exists():
                os.replace(self.error_log, self.error_log.with_name(f"error.bind-failure-{attempt}.log"))
            self.port = free_port()
        self.started = True
        probe = self.client()

        def ready():
            return probe.request("/index.html").status

        wait_for(ready, lambda status: status == 200 and self.pid() is not None, timeout,
                 f"Apache ({self.variant}) answers on 127.0.0.1:{self.port}")

    # Error log ids of the parent: (graceful restart requested, configured and running).
    GRACEFUL_IDS = {"prefork": ("AH00171", "AH00163"), "event": ("AH00493", "AH00489")}

    def graceful(self, timeout: float = 30.0) -> None:
        """apache2 -k graceful; returns once the parent has logged the restart,
        runs a new generation of children and the server answers."""
        parent = self.pid()
        assert parent is not None, "Apache is not running"
        requested, running = self.GRACEFUL_IDS[self.variant]
        before = set(children_of(parent))
        restarts = self.error_log_text().count(requested)
        result = self.apache2("-k", "graceful")
        assert result.returncode == 0, f"apache2 -k graceful -> {result.returncode}\n{result.stdout}{result.stderr}"
        probe = self.client()

        def state():
            log = self.error_log_text()
            restarted = log.count(requested) > restarts
            configured = restarted and running in log[log.rfind(requested):]
            fresh = bool(set(children_of(parent)) - before)
            return restarted, configured, fresh, probe.request("/index.html").status

        wait_for(state, lambda s: s[0] and s[1] and s[2] and s[3] == 200, timeout,
                 f"graceful restart completes ({requested} then {running}, new children, HTTP 200)")
        assert self.pid() == parent, "a graceful restart must keep the parent process"

    def stop(self, timeout: float = 30.0) -> None:
        """apache2 -k stop, then waits for the parent to exit (SIGTERM to it if
        -k stop failed, SIGKILL to everything after the timeout)."""
        if not self.started:
            if self.fpm is not None:
                self.fpm.stop()
            return
        parent = self.pid()
        result = self.apache2("-k", "stop")
        self.started = False
        try:
            if parent is not None:
                if result.returncode != 0 and not pid_gone(parent):
                    os.kill(parent, signal.SIGTERM)
                try:
                    wait_for(lambda: pid_gone(parent), bool, timeout, f"Apache parent {parent} exits")
                except AssertionError:
                    for child in children_of(parent):
                        os.kill(child, signal.SIGKILL)
                    os.kill(parent, signal.SIGKILL)
                    wait_for(lambda: pid_gone(parent), bool, 10, f"Apache parent {parent} killed")
                    raise
            assert result.returncode == 0, f"apache2 -k stop -> {result.returncode}\n{result.stdout}{result.stderr}"
        finally:
            if self.fpm is not None:
                self.fpm.stop()

    # -- logs
    def error_log_text(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""

    def module_warnings(self) -> list[str]:
        return [line for line in self.error_log_text().splitlines()
                if re.search(r"\[coupecircuit:(warn|error|crit|alert|emerg)\]", line)]
