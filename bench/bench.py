#!/usr/bin/env python3
"""CoupeCircuit benchmark driver. Run it through bench/run.sh, which builds
the project (Release) and the benchmark tool first.

Sections (all measured side by side in one run, on 127.0.0.1 only):
  1 per-request cost      callgrind instruction counts of `apache2 -X`
  2 throughput            wrk A/B, with and without mod_coupecircuit
  3 scanner               coupecircuitd against find | xargs grep | wc -l
  4 freshness             session write / manual cut -> value seen by a request
  5 helper cost           coupecircuitd CPU at rest and under session churn

Prints a Markdown report and writes it (with the raw figures as JSON) into
the work directory. Exit status: 0 done (targets may be missed: see the
report), 1 a hard check failed (counts differ, variables missing, a server
did not start), 2 bad usage.
"""
import argparse
import atexit
import datetime
import http.client
import json
import math
import os
import platform
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

SECTIONS = ("percall", "throughput", "scanner", "freshness", "helper", "profile")
AUTH_MARKER = 's:7:"storage"'
VARIABLES = ("LOAD_AVG", "SESSIONS_ACTIVES", "COUPURE_CHARGE_SERVEUR", "SEUIL_SESSIONS_ACTIVES",
             "SEUIL_LOAD_AVG", "COUPECIRCUIT_ETAT", "COUPECIRCUIT_AGE")
# mod_env's floor: the same seven variables with static values.
STATIC_VALUES = {"LOAD_AVG": "0.52", "SESSIONS_ACTIVES": "97", "COUPURE_CHARGE_SERVEUR": "0",
                 "SEUIL_SESSIONS_ACTIVES": "500", "SEUIL_LOAD_AVG": "8.00", "COUPECIRCUIT_ETAT": "ok",
                 "COUPECIRCUIT_AGE": "0"}
THRESHOLD_LINES = "CoupeCircuitThreshold sessions 500\nCoupeCircuitThreshold load 8\n"


class HardCheckFailed(Exception):
    pass


def log(message):
    stamp = time.strftime("%H:%M:%S")
    print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes

class Processes:
    """Everything started here runs in its own session (process group) and is
    stopped by group id at exit, whatever happens."""

    def __init__(self):
        self.running = []

    def start(self, args, log_path, env=None, cwd=None):
        out = open(log_path, "ab")
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True, env=env, cwd=cwd)
        out.close()
        process.log_path = log_path
        self.running.append(process)
        return process

    def stop(self, process, timeout=30.0, sig=signal.SIGTERM):
        if process.poll() is None:
            try:
                os.kill(process.pid, signal.SIGCONT)
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        # Children left in the group (Apache or php-fpm workers).
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if process in self.running:
            self.running.remove(process)

    def stop_all(self):
        for process in list(self.running):
            self.stop(process, timeout=10)


PROCS = Processes()
CLEANUP_PATHS = []


class SessionStore:
    """Where the generated session directories live: by default plain
    directories on the work directory's filesystem. With --session-fs loop,
    a dedicated ext4 filesystem in a sparse image under the work directory,
    on a loop device with direct I/O (default mount options: relatime, no
    online discard), dropped as a whole at the end: much faster to clean up
    where the host filesystem discards freed blocks, but cold reads go through
    the loop device and are slower than on the host filesystem."""

    def __init__(self, work, mode):
        self.root = os.path.join(work, "sessions")
        self.image = os.path.join(work, "sessions.img")
        self.mode = mode
        self.loop = None
        self.kind = "dir"

    def _mounted(self):
        with open("/proc/mounts") as f:
            return any(line.split()[1] == self.root for line in f)

    def _release(self):
        if self._mounted():
            if subprocess.run(["umount", self.root], stderr=subprocess.DEVNULL).returncode != 0:
                subprocess.run(["umount", "-l", self.root], stderr=subprocess.DEVNULL)
        if os.path.exists(self.image):
            found = subprocess.run(["losetup", "-j", self.image], stdout=subprocess.PIPE, text=True,
                                   stderr=subprocess.DEVNULL).stdout
            for line in found.splitlines():
                subprocess.run(["losetup", "-d", line.split(":")[0]], stderr=subprocess.DEVNULL)
            os.unlink(self.image)
        self.loop = None

    def setup(self, size_gb, inodes):
        self._release()  # left over by an interrupted run
        if os.path.isdir(self.root):
            for name in os.listdir(self.root):
                remove_session_dir(os.path.join(self.root, name))
        os.makedirs(self.root, exist_ok=True)
        if self.mode == "dir" or os.geteuid() != 0 or not shutil.which("losetup") or not shutil.which("mkfs.ext4"):
            return self.kind
        try:
            with open(self.image, "wb") as f:
                f.truncate(size_gb << 30)
            run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", str(inodes), "-E", "nodiscard,lazy_itable_init=1",
                 "-L", "ccbench", self.image])
            self.loop = run(["losetup", "--direct-io=on", "-f", "--show", self.image]).stdout.strip()
            run(["mount", "-t", "ext4", self.loop, self.root])
            os.chmod(self.root, 0o755)
            self.kind = "loop"
        except (RuntimeError, OSError) as error:
            log(f"no dedicated filesystem for the session directories ({error}); using {self.root}")
            self._release()
            os.makedirs(self.root, exist_ok=True)
            self.kind = "dir"
        return self.kind

    def teardown(self):
        if self.kind == "loop":
            self._release()


STORE = None


def cleanup():
    PROCS.stop_all()
    for path in CLEANUP_PATHS:
        remove_session_dir(path)
    if STORE is not None:
        STORE.teardown()


def on_signal(signum, _frame):
    log(f"interrupted by signal {signum}: stopping everything started here")
    sys.exit(128 + signum)


def run(args, check=True, capture=True, timeout=None, env=None):
    """Runs a command to completion in its own process group, which is
    registered so that an interrupted run stops it too."""
    process = subprocess.Popen(args, stdout=subprocess.PIPE if capture else None,
                               stderr=subprocess.PIPE if capture else None, stdin=subprocess.DEVNULL, text=True,
                               env=env, start_new_session=True)
    process.log_path = "(captured)"
    PROCS.running.append(process)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except BaseException:
        PROCS.stop(process, timeout=5)
        raise
    if process in PROCS.running:
        PROCS.running.remove(process)
    result = subprocess.CompletedProcess(args, process.returncode, stdout, stderr)
    if check and result.returncode != 0:
        raise RuntimeError(f"{shlex.join(args)} failed ({result.returncode}): {result.stderr or ''}{result.stdout or ''}")
    return result


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(port, path="/", timeout=60.0, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise HardCheckFailed(f"server for port {port} exited early (see {process.log_path})")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            return response.status
        except OSError:
            time.sleep(0.1)
    raise HardCheckFailed(f"nothing answers on 127.0.0.1:{port} after {timeout:.0f} s")


def wait_ok(port, path, timeout=60.0):
    """Waits until `path` answers 200 (php-fpm behind Apache starts later)."""
    deadline = time.monotonic() + timeout
    status, body = None, ""
    while time.monotonic() < deadline:
        try:
            status, body = http_get(port, path)
            if status == 200:
                return body
        except OSError:
            pass
        time.sleep(0.1)
    raise HardCheckFailed(f"{path} on port {port} still answers {status} after {timeout:.0f} s: {body[:200]!r}")


def http_get(port, path, timeout=10.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read().decode("utf-8", "replace")
    conn.close()
    return response.status, body


def cpu_ns(pid):
    """CPU time (user + system) of every thread of pid, in nanoseconds."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[0])
        return total
    except (OSError, ValueError, IndexError):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


def group_cpu_ns(pgid):
    """CPU time of every process in process group pgid."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total += cpu_ns(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return total


def proc_split(pid):
    """(utime, stime) in seconds (tick-sampled) and context switches of pid."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    switches = proc_status_kb(pid, "voluntary_ctxt_switches") + proc_status_kb(pid, "nonvoluntary_ctxt_switches")
    return int(fields[11]) / tick, int(fields[12]) / tick, switches


def proc_status_kb(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


# ---------------------------------------------------------------- statistics

def med(values):
    return statistics.median(values) if values else float("nan")


def percentile(values, p):
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100.0 * len(ordered)))
    return ordered[rank - 1]


def spread(values, fmt="{:.2f}"):
    if not values:
        return "-"
    if len(values) == 1:
        return "(1 run)"
    return f"{fmt.format(min(values))}–{fmt.format(max(values))}"


def human_count(value):
    return f"{value:,.0f}".replace(",", " ")


def parse_time_v(path):
    """Fields of /usr/bin/time -v."""
    out = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("User time (seconds):"):
                out["user"] = float(line.split(":")[1])
            elif line.startswith("System time (seconds):"):
                out["sys"] = float(line.split(":")[1])
            elif line.startswith("Maximum resident set size (kbytes):"):
                out["maxrss_kb"] = int(line.split(":")[1])
    out["cpu"] = out.get("user", 0.0) + out.get("sys", 0.0)
    return out


# ---------------------------------------------------------------- the bench

class Bench:
    def __init__(self, options):
        self.o = options
        self.quick = options.quick
        self.build = os.path.abspath(options.build_dir)
        self.work = os.path.abspath(options.work_dir)
        self.daemon_bin = os.path.join(self.build, "scanner", "coupecircuitd")
        self.ctl_bin = os.path.join(self.build, "ctl", "coupecircuitctl")
        self.module_so = os.path.join(self.build, "mod_coupecircuit", "mod_coupecircuit.so")
        self.tool = options.tool
        self.modules_dir = options.apache_modules
        self.apache_bin = options.apache_bin
        self.is_root = os.geteuid() == 0
        self.www_user = "www-data" if self.is_root else pwd.getpwuid(os.geteuid()).pw_name
        self.results = {"quick": self.quick, "sections": {}}
        self.rows = []          # summary table rows
        self.details = []       # (title, markdown) per section
        self.notes = []
        self.failures = []
        self.daemon_conf = os.path.join(self.work, "coupecircuitd.conf")
        self.module_helper = None
        self.prewarm_seconds = {}
        self.started = time.monotonic()

    # ---- helpers

    def path(self, *parts):
        p = os.path.join(self.work, *parts)
        return p

    def mkdir(self, p, owner_www=False, mode=0o755):
        os.makedirs(p, exist_ok=True)
        os.chmod(p, mode)
        if owner_www and self.is_root:
            entry = pwd.getpwnam(self.www_user)
            os.chown(p, entry.pw_uid, entry.pw_gid)
        return p

    def fail(self, message):
        log("HARD CHECK FAILED: " + message)
        self.failures.append(message)

    def tool_json(self, *args, timeout=None):
        result = run([self.tool, *[str(a) for a in args]], timeout=timeout)
        return json.loads(result.stdout.strip().splitlines()[-1])

    def generate(self, name, count, seed, stable=900, mode="0600"):
        directory = os.path.join(STORE.root, name)
        if os.path.exists(directory):
            remove_session_dir(directory)
        CLEANUP_PATHS.append(directory)
        info = self.tool_json("generate", directory, count, seed, stable, mode)
        log(f"generated {count} session files in {directory} ({info['seconds']:.1f} s, "
            f"{info['expected_active_authenticated']} active authenticated)")
        return directory, info

    def status(self, snapshot, state=None):
        args = [self.ctl_bin, "--snapshot", snapshot]
        if state:
            args += ["--state", state]
        result = run(args + ["status", "--json"], check=False)
        try:
            return json.loads(result.stdout)
        except json.JSONDecodeError:
            return {"status": "unreadable", "output": result.stdout + result.stderr}

    def start_daemon(self, session_dir, snapshot, state, interval=None, name="helper", timeout=900):
        args = [self.daemon_bin, "--foreground", "--config", self.daemon_conf, "--session-dir", session_dir,
                "--snapshot", snapshot, "--state", state]
        if interval is not None:
            args += ["--interval", str(interval)]
        process = PROCS.start(args, self.path("logs", f"{name}.log"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise HardCheckFailed(f"coupecircuitd exited ({process.returncode}), see {process.log_path}")
            if os.path.exists(snapshot):
                s = self.status(snapshot, state)
                if s.get("helper_pid") == process.pid and s.get("last_scan", {}).get("wall_time", 0) > 0:
                    return process
            time.sleep(0.1)
        raise HardCheckFailed(f"coupecircuitd did not publish within {timeout} s")

    # ---- Apache configuration

    def apache_conf(self, name, port, mpm, features, docroot, switch_user, session_dir=None, snapshot=None,
                    fpm_port=None, extra=""):
        base = self.mkdir(self.path("apache", name), owner_www=not switch_user)
        logs = self.mkdir(os.path.join(base, "logs"), owner_www=not switch_user)
        rundir = self.mkdir(os.path.join(base, "run"), owner_www=not switch_user)
        m = self.modules_dir
        lines = [
            f'ServerRoot "{base}"',
            "ServerName 127.0.0.1",
            f"Listen 127.0.0.1:{port}",
            f"PidFile {rundir}/httpd.pid",
            f"DefaultRuntimeDir {rundir}",
            f"ErrorLog {logs}/error.log",
            "LogLevel warn",
            f"LoadModule mpm_{mpm}_module {m}/mod_mpm_{mpm}.so",
            f"LoadModule authz_core_module {m}/mod_authz_core.so",
            f"LoadModule mime_module {m}/mod_mime.so",
            "TypesConfig /etc/mime.types",
        ]
        if switch_user and self.is_root:
            lines += [f"User {self.www_user}", f"Group {self.www_user}"]
        lines += [
            "KeepAlive On", "MaxKeepAliveRequests 0", "KeepAliveTimeout 60", "Timeout 60",
            f"DocumentRoot {docroot}",
            f"<Directory {docroot}>", "  Require all granted", "  AllowOverride None", "  Options None",
            "</Directory>",
        ]
        if mpm == "event":
            lines += ["StartServers 2", "ServerLimit 4", "ThreadsPerChild 25", "MaxRequestWorkers 100",
                      "MinSpareThreads 25", "MaxSpareThreads 100"]
        elif mpm == "prefork":
            lines += ["StartServers 20", "MinSpareServers 20", "MaxSpareServers 40", "ServerLimit 40",
                      "MaxRequestWorkers 40", "MaxConnectionsPerChild 0"]
        if "setenv" in features:
            lines.append(f"LoadModule env_module {m}/mod_env.so")
            lines += [f"SetEnv {k} {v}" for k, v in STATIC_VALUES.items()]
        if "cc" in features:
            lines.append(f"LoadModule coupecircuit_module {self.module_so}")
            lines.append(f"CoupeCircuitSnapshot {snapshot}")
            lines += THRESHOLD_LINES.strip().splitlines()
        if "refuse" in features:
            # Armed but never tripped, whatever the machine's load: the
            # thresholds above are overridden for this server.
            lines += ["CoupeCircuitThreshold sessions 1000000", "CoupeCircuitThreshold load 1000",
                      "CoupeCircuitAction refuse-new"]
        if "php" in features:
            lines.append(f"LoadModule php_module {m}/libphp8.2.so")
            lines += ['<FilesMatch "\\.php$">', "  SetHandler application/x-httpd-php", "</FilesMatch>"]
        if "fcgi" in features:
            lines.append(f"LoadModule proxy_module {m}/mod_proxy.so")
            lines.append(f"LoadModule proxy_fcgi_module {m}/mod_proxy_fcgi.so")
            lines += ['<FilesMatch "\\.php$">', f'  SetHandler "proxy:fcgi://127.0.0.1:{fpm_port}"', "</FilesMatch>"]
        if extra:
            lines.append(extra)
        conf = os.path.join(base, "httpd.conf")
        with open(conf, "w") as f:
            f.write("\n".join(lines) + "\n")
        return conf

    def write_docroot(self, session_glob_dir):
        docroot = self.mkdir(self.path("htdocs"))
        rnd = random.Random(7)
        with open(os.path.join(docroot, "static.txt"), "w") as f:
            f.write("".join(rnd.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(511)) + "\n")
        names = ", ".join(f"'{v}'" for v in VARIABLES)
        pages = {
            # Every page but none.php reads $_SERVER['REQUEST_URI'] as any
            # application does: PHP imports the CGI environment into $_SERVER
            # on a script's first use of it, whatever the key.
            "none.php": "<?php\necho \"ok\\n\";\n",
            "uri.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\necho \"ok $u\\n\";\n",
            "server.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\n$v = [];\n"
                          "foreach ([%s] as $k) { $v[] = $_SERVER[$k] ?? ''; }\n"
                          "echo implode(' ', $v), ' ', $u, \"\\n\";\n" % names,
            "apcu_setup.php": "<?php\napcu_store([%s]);\necho \"stored\\n\";\n" % ", ".join(
                f"'{k}' => '{v}'" for k, v in STATIC_VALUES.items()),
            "apcu.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\n$got = apcu_fetch([%s]);\n$v = [];\n"
                        "foreach ([%s] as $k) { $v[] = $got[$k] ?? ''; }\n"
                        "echo implode(' ', $v), ' ', $u, \"\\n\";\n" % (names, names),
            # The naive way: ask the kernel and count the session files on every request.
            "naive.php": "<?php\n$u = $_SERVER['REQUEST_URI'] ?? '';\n$l = sys_getloadavg();\n"
                         "$n = count(glob('%s/sess_*'));\n"
                         "$v = [sprintf('%%.2f', $l[0]), $n, '0', '500', '8.00', ($n >= 500 || $l[0] >= 8) ? 'surcharge' : 'ok', '0'];\n"
                         "echo implode(' ', $v), ' ', $u, \"\\n\";\n" % session_glob_dir,
            "login.php": "<?php\nsession_start();\n$_SESSION['vzn_bench'] = ['storage' => 'compte_reel'];\n"
                         "echo session_id(), \"\\n\";\n",
        }
        for name, text in pages.items():
            with open(os.path.join(docroot, name), "w") as f:
                f.write(text)
        return docroot

    # ---- 1. per-request cost

    def callgrind_total(self, conf, port, path, count, setup_path, tag, check=None):
        """Runs apache2 -X under callgrind, sends `count` requests on one
        keep-alive connection and returns the total instruction count."""
        out_dir = self.mkdir(self.path("callgrind"), owner_www=True, mode=0o777)
        out_file = os.path.join(out_dir, f"{tag}.{count}.out")
        if os.path.exists(out_file):
            os.unlink(out_file)
        args = ["valgrind", "--tool=callgrind", "--collect-atstart=yes", f"--callgrind-out-file={out_file}",
                self.apache_bin, "-X", "-f", conf]
        if self.is_root:
            # callgrind creates its output file at start and writes it at exit:
            # the whole process runs as the Apache user so both work.
            args = ["setpriv", f"--reuid={self.www_user}", f"--regid={self.www_user}", "--init-groups"] + args
        process = PROCS.start(args, self.path("logs", f"callgrind-{tag}.log"))
        try:
            wait_http(port, "/static.txt", timeout=120, process=process)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            if setup_path:
                conn.request("GET", setup_path)
                r = conn.getresponse()
                r.read()
            first_body = None
            for _ in range(count):
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                if r.status != 200:
                    raise HardCheckFailed(f"{tag}: HTTP {r.status} for {path}")
                if first_body is None:
                    first_body = body.decode("utf-8", "replace")
            conn.close()
            if check is not None:
                check(first_body)
        finally:
            if process.poll() is None:
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                pass
            PROCS.stop(process)
        total = None
        with open(out_file) as f:
            for line in f:
                if line.startswith("totals:") or (total is None and line.startswith("summary:")):
                    total = int(line.split()[1])
        if total is None:
            raise HardCheckFailed(f"{tag}: no instruction total in {out_file}")
        return total

    def section_percall(self):
        log("1. per-request cost (callgrind, apache2 -X, prefork)")
        n = 100 if self.quick else 400
        reps = 1 if self.quick else 3
        snapshot = self.module_helper["snapshot"]
        docroot = self.docroot
        expected_sessions = str(self.status(snapshot)["sessions"]["active_authenticated"])

        def check_values(kind):
            def check(body):
                fields = body.strip().split(" ")
                if len(fields) != 8 or any(f == "" for f in fields):
                    raise HardCheckFailed(f"{kind}: the page did not see the seven values: {body!r}")
                if kind == "cc" and fields[1] != str(self.status(snapshot)["sessions"]["active_authenticated"]):
                    raise HardCheckFailed(f"mod_coupecircuit exported SESSIONS_ACTIVES={fields[1]}, "
                                          f"the helper counts {expected_sessions}")
            return check

        rows = [
            ("static_none", "Static file, no module", [], "/static.txt", None, None),
            ("static_setenv", "Static file, mod_env SetEnv ×7 (floor)", ["setenv"], "/static.txt", None, None),
            ("static_cc", "Static file, mod_coupecircuit", ["cc"], "/static.txt", None, None),
            ("static_cc_refuse", "Static file, mod_coupecircuit, refuse-new on (not tripped)", ["cc", "refuse"],
             "/static.txt", None, None),
            ("php_none", "PHP page, no module, does not touch $_SERVER", ["php"], "/none.php", None, None),
            ("php_uri", "PHP page, no module, reads $_SERVER['REQUEST_URI'] only", ["php"], "/uri.php", None, None),
            ("php_server_none", "PHP page reading the seven keys, no module (absent)", ["php"], "/server.php", None,
             None),
            ("php_setenv", "PHP page, SetEnv ×7, reads $_SERVER (floor)", ["php", "setenv"], "/server.php", None,
             check_values("setenv")),
            ("php_cc", "PHP page, mod_coupecircuit, reads $_SERVER", ["php", "cc"], "/server.php", None,
             check_values("cc")),
            ("php_apcu", "PHP page, apcu_fetch of the seven values", ["php"], "/apcu.php", "/apcu_setup.php",
             check_values("apcu")),
            ("php_naive", "PHP page, sys_getloadavg() + glob() of 1k session files", ["php"], "/naive.php", None,
             check_values("naive")),
        ]
        confs = {}
        refuse_supported = False
        for tag, _, features, *_ in rows:
            port = free_port()
            conf = self.apache_conf(f"cg-{tag}", port, "prefork", features, docroot, switch_user=False,
                                    snapshot=snapshot)
            confs[tag] = (conf, port)
        test = run([self.apache_bin, "-t", "-f", confs["static_cc_refuse"][0]], check=False)
        refuse_supported = test.returncode == 0
        if not refuse_supported:
            why = (test.stderr or test.stdout).strip().splitlines()
            self.notes.append("`CoupeCircuitAction refuse-new` is rejected by this build "
                              f"(`{why[0] if why else 'syntax error'}`): row 1d is n/a.")
        figures = {tag: [] for tag, *_ in rows}
        outputs = {}
        broken = set()
        for rep in range(reps):
            for tag, title, features, path, setup, check in rows:
                if tag == "static_cc_refuse" and not refuse_supported:
                    continue
                conf, port = confs[tag]
                # The naive page costs millions of instructions a request:
                # fewer requests are enough there.
                rn = min(n, 100) if tag == "php_naive" else (min(n, 200) if tag.startswith("php") else n)
                if tag in broken:
                    continue
                try:
                    i1 = self.callgrind_total(conf, port, path, rn, setup, f"{tag}.{rep}", check if rep == 0 else None)
                    i2 = self.callgrind_total(conf, port, path, 2 * rn, setup, f"{tag}.{rep}")
                except HardCheckFailed as error:
                    self.fail(f"per-request cost, {tag}: {error}")
                    broken.add(tag)
                    continue
                per_request = (i2 - i1) / rn
                outputs[tag] = (rn, self.path("callgrind", f"{tag}.{rep}.{rn}.out"),
                                self.path("callgrind", f"{tag}.{rep}.{2 * rn}.out"))
                figures[tag].append(per_request)
                log(f"  {tag} rep {rep + 1}/{reps}: {per_request:,.0f} instructions/request")

        table = ["| Configuration | Instructions / request (median) | min–max | Added vs baseline | Ratio to the SetEnv floor |",
                 "|---|---:|---:|---:|---:|"]
        raw = {}
        for tag, title, *_ in rows:
            values = figures[tag]
            if not values:
                table.append(f"| {title} | n/a (not implemented) | | | |")
                raw[tag] = None
                continue
            group = "static" if tag.startswith("static") else "php"
            floor = med(figures[f"{group}_setenv"])
            none = med(figures["static_none" if group == "static" else "php_uri"])
            ratio = med(values) / floor
            raw[tag] = {"median": med(values), "values": values, "ratio_to_floor": ratio}
            table.append(f"| {title} | {human_count(med(values))} | {spread(values, '{:,.0f}')} | "
                         f"{med(values) - none:+,.0f} | {ratio:.3f} |")
        profile = []
        for tag, label in (("static_cc", "mod_coupecircuit"), ("static_setenv", "mod_env SetEnv ×7")):
            if tag in outputs and "static_none" in outputs:
                profile.append(f"Where the instructions {label} adds to a static request go (callgrind self cost, "
                               "per request, this configuration minus no module; top functions):\n")
                profile.append("| Function | Instructions / request |\n|---|---:|")
                for name, cost in callgrind_delta(outputs[tag], outputs["static_none"])[:12]:
                    profile.append(f"| `{name}` | {cost:+,.0f} |")
                profile.append("")
        self.details.append(("1. Per-request cost (callgrind)",
                             f"`apache2 -X` (prefork, one process) under `valgrind --tool=callgrind --collect-atstart=yes`, "
                             f"one keep-alive connection, N = {n} (static), {min(n, 200)} (PHP), {min(n, 100)} "
                             "(the naive page) and 2N requests per run: (I(2N) − I(N)) / N = instructions per request; "
                             f"{reps} repetition(s). Static file: 512 bytes. PHP: mod_php 8.2 with opcache. Baseline "
                             "for \"added\": no module (static), the page that only reads $_SERVER['REQUEST_URI'] (PHP: "
                             "PHP imports the whole CGI environment into $_SERVER on a script's first use of it, which "
                             "any application pays).\n\n" + "\n".join(table) + "\n\n" + "\n".join(profile)))
        self.results["sections"]["percall"] = {"n": n, "reps": reps, "rows": raw}

        for group, label in (("static", "static file"), ("php", "PHP page")):
            cc = figures[f"{group}_cc"]
            floor = figures[f"{group}_setenv"]
            ratios = [c / f for c, f in zip(cc, floor)]
            self.rows.append({
                "section": "1", "what": f"Per-request instructions, {label}: mod_coupecircuit / SetEnv floor",
                "value": f"{med(ratios):.3f} ({human_count(med(cc))} vs {human_count(med(floor))})",
                "spread": spread(ratios, "{:.3f}"), "target": "≤ 1.00",
                "met": med(ratios) <= 1.0})
        refuse = figures["static_cc_refuse"]
        if refuse:
            ratios = [r / f for r, f in zip(refuse, figures["static_setenv"])]
            self.rows.append({"section": "1", "what": "Per-request instructions, static: refuse-new (not tripped) / floor",
                              "value": f"{med(ratios):.3f}", "spread": spread(ratios, "{:.3f}"), "target": "≤ 1.00",
                              "met": med(ratios) <= 1.0})
        else:
            self.rows.append({"section": "1", "what": "Per-request instructions, static: refuse-new (not tripped) / floor",
                              "value": "n/a (not implemented)", "spread": "", "target": "≤ 1.00", "met": None})
        if figures.get("php_server_none") and figures.get("php_cc"):
            ratios = [c / a for c, a in zip(figures["php_cc"], figures["php_server_none"])]
            self.rows.append({"section": "1", "what": "Per-request instructions, PHP page reading the seven keys: "
                              "with mod_coupecircuit / without (the A/B of section 2)",
                              "value": f"{med(ratios):.3f}", "spread": spread(ratios, "{:.3f}"), "target": "(reference)",
                              "met": None})
        for tag, label in (("php_apcu", "apcu_fetch"), ("php_naive", "sys_getloadavg()+glob()")):
            ratios = [a / c for a, c in zip(figures[tag], figures["php_cc"])]
            self.rows.append({"section": "1", "what": f"Per-request instructions, PHP: {label} / mod_coupecircuit+$_SERVER",
                              "value": f"{med(ratios):.3f} ({human_count(med(figures[tag]))})",
                              "spread": spread(ratios, "{:.3f}"), "target": "(reference)", "met": None})

    # ---- 2. throughput

    def wrk(self, port, path, seconds, server=None):
        """Requests per second, and the server's CPU time per request (all
        processes of its group) when `server` is given."""
        cpu0 = group_cpu_ns(server.pid) if server else 0
        result = run(["wrk", "-t2", "-c16", f"-d{seconds}s", f"http://127.0.0.1:{port}{path}"], timeout=seconds + 60)
        cpu1 = group_cpu_ns(server.pid) if server else 0
        text = result.stdout
        match = re.search(r"Requests/sec:\s+([0-9.]+)", text)
        total = re.search(r"(\d+) requests in", text)
        if not match or not total:
            raise HardCheckFailed(f"wrk output not understood: {text}")
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
        if bad and int(bad.group(1)) > 0:
            raise HardCheckFailed(f"wrk saw {bad.group(1)} error responses on port {port}{path}")
        return float(match.group(1)), (cpu1 - cpu0) / max(1, int(total.group(1))) / 1000.0

    def section_throughput(self):
        log("2. throughput A/B (wrk -t2 -c16, keep-alive)")
        pairs = 4 if self.quick else 12
        seconds = 2 if self.quick else 3
        snapshot = self.module_helper["snapshot"]
        raw = {}
        table = ["| Workload | req/s without (median) | req/s with (median) | Ratio with/without (median) | min–max | "
                 "Server CPU / request without / with | CPU ratio with/without (min–max) | Pairs |",
                 "|---|---:|---:|---:|---:|---:|---:|---:|"]
        for kind, mpm, features, path in (("static", "event", [], "/static.txt"),
                                          ("php", "prefork", ["php"], "/server.php")):
            port_a, port_b = free_port(), free_port()
            conf_a = self.apache_conf(f"wrk-{kind}-without", port_a, mpm, features, self.docroot, switch_user=True)
            conf_b = self.apache_conf(f"wrk-{kind}-with", port_b, mpm, features + ["cc"], self.docroot,
                                      switch_user=True, snapshot=snapshot)
            a = PROCS.start([self.apache_bin, "-DFOREGROUND", "-f", conf_a], self.path("logs", f"wrk-{kind}-a.log"))
            b = PROCS.start([self.apache_bin, "-DFOREGROUND", "-f", conf_b], self.path("logs", f"wrk-{kind}-b.log"))
            try:
                wait_http(port_a, path, process=a)
                wait_http(port_b, path, process=b)
                if kind == "php":
                    _, body_a = http_get(port_a, path)
                    _, body_b = http_get(port_b, path)
                    fields_b = body_b.strip().split(" ")
                    if len(fields_b) != 8 or "" in fields_b:
                        raise HardCheckFailed(f"PHP with mod_coupecircuit does not see the values: {body_b!r}")
                    if body_a.strip() != path:
                        raise HardCheckFailed(f"PHP without the module sees values: {body_a!r}")
                # Warm both (workers forked, opcache filled).
                self.wrk(port_a, path, 1)
                self.wrk(port_b, path, 1)
                without, with_, ratios, cpu_ratios, cpu_a, cpu_b = [], [], [], [], [], []
                for i in range(pairs):
                    order = [("a", port_a, a), ("b", port_b, b)] if i % 2 == 0 else [("b", port_b, b), ("a", port_a, a)]
                    got = {}
                    for label, port, server in order:
                        got[label] = self.wrk(port, path, seconds, server)
                    without.append(got["a"][0])
                    with_.append(got["b"][0])
                    ratios.append(got["b"][0] / got["a"][0])
                    cpu_a.append(got["a"][1])
                    cpu_b.append(got["b"][1])
                    cpu_ratios.append(got["b"][1] / got["a"][1])
                    log(f"  {kind} pair {i + 1}/{pairs}: without {got['a'][0]:.0f} req/s, with {got['b'][0]:.0f} req/s, "
                        f"ratio {ratios[-1]:.3f}; server CPU/request ratio {cpu_ratios[-1]:.3f}")
            finally:
                PROCS.stop(a)
                PROCS.stop(b)
            raw[kind] = {"without": without, "with": with_, "ratios": ratios, "mpm": mpm,
                         "cpu_us_per_request_without": cpu_a, "cpu_us_per_request_with": cpu_b, "cpu_ratios": cpu_ratios}
            label = "static file (mpm_event)" if kind == "static" else "PHP page reading $_SERVER (prefork + mod_php)"
            table.append(f"| {label} | {med(without):,.0f} | {med(with_):,.0f} | {med(ratios):.3f} | "
                         f"{spread(ratios, '{:.3f}')} | {med(cpu_a):.1f} / {med(cpu_b):.1f} µs | "
                         f"{med(cpu_ratios):.3f} ({spread(cpu_ratios, '{:.3f}')}) | {pairs} |")
            self.rows.append({"section": "2", "what": f"Throughput, {label}: with / without module",
                              "value": f"{med(ratios):.3f}", "spread": spread(ratios, "{:.3f}"), "target": "≥ 0.99",
                              "met": med(ratios) >= 0.99})
        self.details.append(("2. Throughput A/B (wrk)",
                             f"`wrk -t2 -c16 -d{seconds}s`, keep-alive, {pairs} interleaved pairs (order alternates "
                             "A-B, B-A), both servers running side by side on 127.0.0.1, one warm-up run each. "
                             "Ratio = requests/s with mod_coupecircuit ÷ requests/s without, per pair. wrk and "
                             "Apache share the machine's CPUs. Server CPU per request: user + system time of all "
                             "the server's processes (/proc/<pid>/task/*/schedstat) during the run ÷ requests served; "
                             "less sensitive than requests/s to other load on the machine.\n\n" + "\n".join(table)))
        self.results["sections"]["throughput"] = raw

    # ---- 3. scanner

    def shell_count(self, directory, tag):
        time_file = self.path("logs", f"time-shell-{tag}.txt")
        command = (f"find {shlex.quote(directory)} -name 'sess_*' -mmin -24 -size +0 | "
                   f"xargs grep -l {shlex.quote(AUTH_MARKER)} | wc -l")
        env = dict(os.environ, LC_ALL="C")
        started = time.perf_counter()
        result = run(["/usr/bin/time", "-v", "-o", time_file, "sh", "-c", command], env=env)
        wall = time.perf_counter() - started
        t = parse_time_v(time_file)
        return {"count": int(result.stdout.strip()), "wall": wall, "cpu": t["cpu"], "maxrss_kb": t.get("maxrss_kb", 0)}

    def once_count(self, directory, snapshot, state, tag):
        time_file = self.path("logs", f"time-once-{tag}.txt")
        started = time.perf_counter()
        run(["/usr/bin/time", "-v", "-o", time_file, self.daemon_bin, "--once", "--config", self.daemon_conf,
             "--session-dir", directory, "--snapshot", snapshot, "--state", state])
        wall = time.perf_counter() - started
        t = parse_time_v(time_file)
        s = self.status(snapshot, state)
        return {"count": s["sessions"]["active_authenticated"], "wall": wall, "cpu": t["cpu"],
                "maxrss_kb": t.get("maxrss_kb", 0), "scan_us": s["last_scan"]["duration_us"],
                "files_seen": s["sessions"]["files_seen"]}

    def prewarm(self, directory):
        """Reads the whole directory with parallel readers right before a warm
        measurement (see the note on idle page-cache pages)."""
        info = self.tool_json("warm", directory, 16)
        self.prewarm_seconds.setdefault(os.path.basename(directory), []).append(info["seconds"])
        return info["seconds"]

    def check_counts(self, what, expected, near_boundary=0, **counts):
        if near_boundary:
            self.notes.append(f"{what}: {near_boundary} file(s) within 3 s of the 24-minute boundary")
        bad = {k: v for k, v in counts.items() if v != expected}
        if bad:
            self.fail(f"{what}: expected {expected} active authenticated sessions, got {counts}")
            return False
        return True

    def wait_scan_after(self, snapshot, state, previous, timeout):
        """Waits until last_scan differs from `previous` (wall_time,
        duration_us). Also notes the oldest heartbeat seen meanwhile
        (self.max_age_seen): readers see that age while the helper scans."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.status(snapshot, state)
            self.max_age_seen = max(getattr(self, "max_age_seen", 0.0), float(s.get("age_seconds", 0.0)))
            scan = (s.get("last_scan", {}).get("wall_time"), s.get("last_scan", {}).get("duration_us"))
            if scan[0] and scan != previous:
                return s
            time.sleep(0.1)
        raise HardCheckFailed(f"no new scan published within {timeout:.0f} s")

    def wait_count(self, snapshot, state, expected, timeout):
        deadline = time.monotonic() + timeout
        s = None
        while time.monotonic() < deadline:
            s = self.status(snapshot, state)
            if s.get("sessions", {}).get("active_authenticated") == expected:
                return s
            time.sleep(0.05)
        return s

    def scanner_size(self, count, reps, can_drop, keep=False):
        tag = f"{count // 1000}k"
        directory, info = self.generate(f"scan-{tag}", count, seed=count + 11, stable=900)
        base = self.mkdir(self.path("scan", tag))
        snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
        out = {"files": count, "generate_s": info["seconds"]}

        # First scan, warm: a warm-up pair, then `reps` alternating pairs.
        exp = self.tool_json("retime", directory)
        expected = exp["expected_active_authenticated"]
        out["expected"] = expected
        # Warm-up (not measured): every file read once, then each tool once.
        self.prewarm(directory)
        self.once_count(directory, snapshot, state, f"{tag}-warmup")
        self.shell_count(directory, f"{tag}-warmup")
        once, shell = [], []
        for i in range(reps):
            self.prewarm(directory)
            order = ("once", "shell") if i % 2 == 0 else ("shell", "once")
            for which in order:
                if which == "once":
                    once.append(self.once_count(directory, snapshot, state, f"{tag}-{i}"))
                else:
                    shell.append(self.shell_count(directory, f"{tag}-{i}"))
            exp_now = self.tool_json("expect", directory)
            self.check_counts(f"{tag} first scan (warm) round {i + 1}", exp_now["expected_active_authenticated"],
                              near_boundary=exp_now["near_boundary"], coupecircuitd=once[-1]["count"], shell=shell[-1]["count"])
            log(f"  {tag} warm: coupecircuitd --once {once[-1]['wall']:.3f} s, shell {shell[-1]['wall']:.3f} s "
                f"(count {once[-1]['count']} / {shell[-1]['count']}, expected {exp_now['expected_active_authenticated']})")
        out["warm"] = {"once": once, "shell": shell}

        # First scan, cold page cache (one round at 1M files: minutes each).
        if can_drop:
            self.tool_json("retime", directory)
            once_c, shell_c = [], []
            for i in range(reps if count < 1_000_000 else 1):
                order = ("once", "shell") if i % 2 == 0 else ("shell", "once")
                for which in order:
                    drop_caches()
                    if which == "once":
                        once_c.append(self.once_count(directory, snapshot, state, f"{tag}-cold-{i}"))
                    else:
                        shell_c.append(self.shell_count(directory, f"{tag}-cold-{i}"))
                exp_now = self.tool_json("expect", directory)
                self.check_counts(f"{tag} first scan (cold) round {i + 1}", exp_now["expected_active_authenticated"],
                                  near_boundary=exp_now["near_boundary"], coupecircuitd=once_c[-1]["count"], shell=shell_c[-1]["count"])
                log(f"  {tag} cold: coupecircuitd --once {once_c[-1]['wall']:.3f} s, shell {shell_c[-1]['wall']:.3f} s")
            out["cold"] = {"once": once_c, "shell": shell_c}

        # Rescan after 1 % of the files changed, long-running helper. The
        # interval only has to leave time for the change and its inotify
        # catch-up between two periodic scans.
        self.tool_json("retime", directory)
        interval = 5 if count <= 100_000 else 15
        self.prewarm(directory)
        helper = self.start_daemon(directory, snapshot, state, interval=interval, name=f"scan-{tag}-periodic")
        periodic, shell_r, catchup = [], [], []
        try:
            s = self.status(snapshot, state)
            out["daemon_rss_after_first_scan_kb"] = proc_status_kb(helper.pid, "VmRSS")
            previous = (s["last_scan"]["wall_time"], s["last_scan"]["duration_us"])
            for i in range(reps):
                # Mutate right after a periodic scan so that the next one
                # starts after the change is complete.
                s = self.wait_scan_after(snapshot, state, previous, timeout=interval * 3 + 60)
                previous = (s["last_scan"]["wall_time"], s["last_scan"]["duration_us"])
                cpu0 = cpu_ns(helper.pid)
                mutated = self.tool_json("mutate", directory, 10, 1000 + i)
                t0 = time.perf_counter()
                expected = mutated["expected_active_authenticated"]
                s = self.wait_count(snapshot, state, expected, timeout=60)
                catchup.append({"seconds": time.perf_counter() - t0, "cpu_s": (cpu_ns(helper.pid) - cpu0) / 1e9,
                                "changed": mutated["changed"], "change_s": mutated["seconds"]})
                self.check_counts(f"{tag} after 1 % changed (inotify)", expected,
                                  coupecircuitd=s.get("sessions", {}).get("active_authenticated"))
                # A periodic scan that overlapped the change does not count.
                previous = (s["last_scan"]["wall_time"], s["last_scan"]["duration_us"])
                cpu1 = cpu_ns(helper.pid)
                self.max_age_seen = 0.0
                s = self.wait_scan_after(snapshot, state, previous, timeout=interval * 3 + 60)
                cpu2 = cpu_ns(helper.pid)
                previous = (s["last_scan"]["wall_time"], s["last_scan"]["duration_us"])
                periodic.append({"scan_s": s["last_scan"]["duration_us"] / 1e6, "cpu_s": (cpu2 - cpu1) / 1e9,
                                 "count": s["sessions"]["active_authenticated"], "max_age_s": self.max_age_seen})
                # The shell way after the same change, helper paused.
                os.kill(helper.pid, signal.SIGSTOP)
                try:
                    self.prewarm(directory)
                    shell_r.append(self.shell_count(directory, f"{tag}-rescan-{i}"))
                finally:
                    os.kill(helper.pid, signal.SIGCONT)
                self.check_counts(f"{tag} rescan round {i + 1}", expected, coupecircuitd=periodic[-1]["count"],
                                  shell=shell_r[-1]["count"])
                log(f"  {tag} rescan: periodic {periodic[-1]['scan_s']:.3f} s (cpu {periodic[-1]['cpu_s']:.3f} s), "
                    f"shell {shell_r[-1]['wall']:.3f} s, inotify catch-up of {mutated['changed']} files "
                    f"{catchup[-1]['seconds']:.3f} s")
            out["daemon_hwm_kb"] = proc_status_kb(helper.pid, "VmHWM")
        finally:
            PROCS.stop(helper)
        out["rescan"] = {"interval": interval, "periodic": periodic, "shell": shell_r, "inotify_catchup": catchup}

        # SIGHUP (reload): the documented full rescan trigger.
        helper = self.start_daemon(directory, snapshot, state, interval=86400, name=f"scan-{tag}-sighup")
        sighup = []
        try:
            for i in range(reps):
                mutated = self.tool_json("mutate", directory, 10, 2000 + i)
                expected = mutated["expected_active_authenticated"]
                self.wait_count(snapshot, state, expected, timeout=60)
                s = self.status(snapshot, state)
                previous = (s["last_scan"]["wall_time"], s["last_scan"]["duration_us"])
                self.prewarm(directory)
                cpu0 = cpu_ns(helper.pid)
                self.max_age_seen = 0.0
                os.kill(helper.pid, signal.SIGHUP)
                s = self.wait_scan_after(snapshot, state, previous, timeout=600)
                cpu1 = cpu_ns(helper.pid)
                sighup.append({"scan_s": s["last_scan"]["duration_us"] / 1e6, "cpu_s": (cpu1 - cpu0) / 1e9,
                               "count": s["sessions"]["active_authenticated"], "max_age_s": self.max_age_seen})
                self.check_counts(f"{tag} SIGHUP rescan round {i + 1}", expected, coupecircuitd=sighup[-1]["count"])
                log(f"  {tag} SIGHUP rescan: {sighup[-1]['scan_s']:.3f} s (cpu {sighup[-1]['cpu_s']:.3f} s)")
            out["sighup_hwm_kb"] = proc_status_kb(helper.pid, "VmHWM")
        finally:
            PROCS.stop(helper)
        out["sighup"] = sighup
        # Removing a million files takes minutes on a filesystem that discards
        # freed blocks: it is left to the end of the run (CLEANUP_PATHS), after
        # every measurement.
        out["directory"] = directory if keep else None
        return out

    def section_scanner(self):
        log("3. scanner: coupecircuitd against find | xargs grep | wc -l")
        sizes = [10_000] if self.quick else [10_000, 100_000, 1_000_000]
        reps = 3
        can_drop = drop_caches()
        if not can_drop:
            self.notes.append("Dropping the page cache (`echo 3 > /proc/sys/vm/drop_caches`) is not permitted here: "
                              "cold-cache figures are missing.")
        raw = {}
        for size in sizes:
            raw[size] = self.scanner_size(size, reps, can_drop, keep=(size == 100_000))
        self.results["sections"]["scanner"] = raw
        self.scanner_dir_100k = raw.get(100_000, {}).get("directory")

        table = ["| Files | Measure | coupecircuitd (median) | shell way (median) | Speed-up (median, min–max) | CPU ratio shell/helper | Peak RSS helper / shell |",
                 "|---:|---|---:|---:|---:|---:|---:|"]
        for size, r in raw.items():
            label = human_count(size)
            def add(measure, mine, theirs, mine_key="wall", cpu_mine=None, rss=""):
                speed = [t["wall"] / m[mine_key] for m, t in zip(mine, theirs)]
                cpu_values = cpu_mine if cpu_mine is not None else [m["cpu"] for m in mine]
                cpu_ratio = [t["cpu"] / c if c > 0 else float("inf") for c, t in zip(cpu_values, theirs)]
                table.append(f"| {label} | {measure} | {med([m[mine_key] for m in mine]):.3f} s | "
                             f"{med([t['wall'] for t in theirs]):.3f} s | {med(speed):.2f}× ({spread(speed)}) | "
                             f"{med(cpu_ratio):.2f}× | {rss} |")
                return speed
            w = r["warm"]
            rss = f"{med([o['maxrss_kb'] for o in w['once']]) / 1024:.1f} MB / {med([s['maxrss_kb'] for s in w['shell']]) / 1024:.1f} MB"
            speed_warm = add("first scan, warm cache (`--once`, process wall time)", w["once"], w["shell"], rss=rss)
            speed_cold = None
            if "cold" in r:
                c = r["cold"]
                speed_cold = add("first scan, cold cache (`--once`)", c["once"], c["shell"])
            p = r["rescan"]
            speed_rescan = add(f"rescan after 1 % changed (periodic full rescan, `--interval {p['interval']}`)",
                               p["periodic"], p["shell"], mine_key="scan_s",
                               cpu_mine=[x["cpu_s"] for x in p["periodic"]],
                               rss=f"{r['daemon_hwm_kb'] / 1024:.1f} MB (VmHWM)")
            h = r["sighup"]
            speed_hup = add("rescan after 1 % changed (SIGHUP reload)", h, p["shell"], mine_key="scan_s",
                            cpu_mine=[x["cpu_s"] for x in h], rss=f"{r['sighup_hwm_kb'] / 1024:.1f} MB (VmHWM)")
            catch = p["inotify_catchup"]
            table.append(f"| {label} | inotify: the 1 % ({catch[0]['changed']} files, rewritten in "
                         f"{med([x['change_s'] for x in catch]):.2f} s) counted right this long after the last write "
                         f"(helper CPU for the whole change) | {med([x['seconds'] for x in catch]):.3f} s "
                         f"(CPU {med([x['cpu_s'] for x in catch]):.3f} s) | | | | |")
            ages = {"periodic": max(x["max_age_s"] for x in p["periodic"]), "sighup": max(x["max_age_s"] for x in h)}
            table.append(f"| {label} | oldest snapshot heartbeat seen by a reader during a full rescan (periodic / "
                         f"SIGHUP; stale beyond CoupeCircuitMaxAge, default 10 s) | {ages['periodic']:.1f} s / "
                         f"{ages['sighup']:.1f} s | | | | |")
            if max(ages.values()) > 10:
                self.notes.append(f"{label} files: the helper does not tick while it scans, so the snapshot's "
                                  f"heartbeat reached {max(ages.values()):.1f} s during a full rescan: beyond "
                                  "CoupeCircuitMaxAge (10 s) mod_coupecircuit exports COUPECIRCUIT_ETAT=inconnu "
                                  "and drops LOAD_AVG/SESSIONS_ACTIVES until the scan ends.")
            if size == max(raw):
                target_note = "" if size == 1_000_000 else f" (at {label} files; targets are for 1M)"
                self.rows.append({"section": "3", "what": f"Scanner {label} files: first scan, warm, shell / coupecircuitd{target_note}",
                                  "value": f"{med(speed_warm):.2f}×", "spread": spread(speed_warm),
                                  "target": "≥ 1.5×", "met": med(speed_warm) >= 1.5})
                if speed_cold:
                    self.rows.append({"section": "3", "what": f"Scanner {label} files: first scan, cold, shell / coupecircuitd{target_note}",
                                      "value": f"{med(speed_cold):.2f}×", "spread": spread(speed_cold),
                                      "target": "≥ 1.5×", "met": med(speed_cold) >= 1.5})
                self.rows.append({"section": "3", "what": f"Scanner {label} files: rescan after 1 % changed (periodic), shell / coupecircuitd",
                                  "value": f"{med(speed_rescan):.2f}×", "spread": spread(speed_rescan),
                                  "target": "≥ 3×", "met": med(speed_rescan) >= 3})
                self.rows.append({"section": "3", "what": f"Scanner {label} files: rescan after 1 % changed (SIGHUP), shell / coupecircuitd",
                                  "value": f"{med(speed_hup):.2f}×", "spread": spread(speed_hup),
                                  "target": "≥ 3×", "met": med(speed_hup) >= 3})
                inotify_ratio = [t["cpu"] / c["cpu_s"] for c, t in zip(catch, p["shell"]) if c["cpu_s"] > 0]
                if inotify_ratio:
                    self.rows.append({"section": "3", "what": f"Scanner {label} files: the same 1 % change absorbed "
                                      "through inotify, shell CPU / helper CPU",
                                      "value": f"{med(inotify_ratio):.1f}×", "spread": spread(inotify_ratio, "{:.1f}"),
                                      "target": "(reference)", "met": None})
                peak = max(r["daemon_hwm_kb"], r["sighup_hwm_kb"], max(o["maxrss_kb"] for o in w["once"])) / 1024
                self.rows.append({"section": "3", "what": f"Scanner {label} files: helper peak RSS (VmHWM / max RSS)",
                                  "value": f"{peak:.1f} MB", "spread": "", "target": "≤ 100 MB", "met": peak <= 100})
        self.details.append(("3. Scanner",
                             "Shell way: `find DIR -name 'sess_*' -mmin -24 -size +0 | xargs grep -l 's:7:\"storage\"' | wc -l` "
                             "(LC_ALL=C), timed with `/usr/bin/time -v`. First scan: `coupecircuitd --once` in a fresh "
                             "process (process wall time, includes start-up and publishing). Rescan: a long-running "
                             "`coupecircuitd --foreground`; 1 % of the files are rewritten (new content and class, mtime "
                             "now), inotify brings them in, then the next periodic full rescan is timed "
                             "(`last_scan.duration_us`); SIGHUP rows: a reload's full scan (the table is kept, so a rescan). The shell way is re-run "
                             "after the same change with the helper stopped (SIGSTOP). Every count is checked against "
                             "the others and against the generator's expected count (hard check). Mix: 30 % empty, "
                             "30 % anonymous, 15 % unknown, 25 % authenticated; 24/60 active. Warm: right before "
                             "each warm round the whole directory is read by 16 parallel readers (`cc_benchtool warm`; "
                             "1M files: " + ", ".join(f"{v:.0f} s" for v in self.prewarm_seconds.get("scan-1000k", [])[:3]) +
                             "…); CPU of the periodic rescan includes the helper's idle ticks while waiting for it.\n\n"
                             + "\n".join(table)))

    # ---- 4. freshness

    def section_freshness(self):
        log("4. freshness (php-fpm session write -> $_SERVER, coupecircuitctl cut -> $_SERVER)")
        trials = 20 if self.quick else 200
        cut_trials = 10 if self.quick else 50
        directory, info = self.generate("fresh-1k", 1000, seed=4242, stable=900)
        if self.is_root:
            entry = pwd.getpwnam(self.www_user)
            os.chown(directory, entry.pw_uid, entry.pw_gid)
        base = self.mkdir(self.path("fresh"))
        snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
        helper = self.start_daemon(directory, snapshot, state, name="fresh-helper")
        fpm_port, port = free_port(), free_port()
        fpm_conf = os.path.join(base, "php-fpm.conf")
        user_lines = f"user = {self.www_user}\ngroup = {self.www_user}\n" if self.is_root else ""
        with open(fpm_conf, "w") as f:
            f.write(f"[global]\npid = {base}/php-fpm.pid\nerror_log = {base}/php-fpm.log\ndaemonize = no\n\n"
                    f"[bench]\n{user_lines}listen = 127.0.0.1:{fpm_port}\npm = static\npm.max_children = 4\n"
                    f"php_admin_value[session.save_path] = {directory}\n"
                    "php_admin_value[session.gc_probability] = 0\n"
                    "php_admin_value[session.serialize_handler] = php\n")
        fpm = PROCS.start([self.o.php_fpm, "-F", "-y", fpm_conf], self.path("logs", "php-fpm.log"))
        conf = self.apache_conf("fresh", port, "event", ["fcgi", "cc"], self.docroot, switch_user=True,
                                snapshot=snapshot, fpm_port=fpm_port)
        apache = PROCS.start([self.apache_bin, "-DFOREGROUND", "-f", conf], self.path("logs", "fresh-apache.log"))
        session_lat, cut_lat, off_lat = [], [], []
        try:
            wait_http(port, "/static.txt", process=apache)
            wait_ok(port, "/server.php")
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)

            def poll():
                conn.request("GET", "/server.php")
                r = conn.getresponse()
                body = r.read().decode()
                if r.status != 200:
                    raise HardCheckFailed(f"poll page: HTTP {r.status}: {body!r}")
                fields = body.strip().split(" ")
                if len(fields) != 8 or fields[1] == "":
                    raise HardCheckFailed(f"poll page through php-fpm does not see the values: {body!r}")
                return fields

            deadline = time.monotonic() + 30
            while poll()[5] not in ("ok", "surcharge") and time.monotonic() < deadline:
                time.sleep(0.1)
            rnd = random.Random(99)
            for i in range(trials):
                before = int(poll()[1])
                t0 = time.perf_counter()
                status, body = http_get(port, "/login.php")
                t1 = time.perf_counter()
                if status != 200:
                    raise HardCheckFailed(f"login page: HTTP {status}: {body!r}")
                seen = None
                while time.perf_counter() - t0 < 10:
                    if int(poll()[1]) > before:
                        seen = time.perf_counter()
                        break
                    time.sleep(0.002)
                if seen is None:
                    self.fail(f"freshness trial {i + 1}: the new session never showed in $_SERVER within 10 s")
                    break
                session_lat.append({"from_request_start": seen - t0, "from_response": seen - t1})
                time.sleep(rnd.uniform(0.05, 0.25))
            log(f"  session write -> $_SERVER: p50 {med([x['from_request_start'] for x in session_lat]) * 1000:.1f} ms "
                f"over {len(session_lat)} trials")
            ctl = [self.ctl_bin, "--snapshot", snapshot, "--state", state]
            for i in range(cut_trials):
                t0 = time.perf_counter()
                process = subprocess.Popen(ctl + ["cut", "on", "--reason", "bench"], stdout=subprocess.DEVNULL,
                                           stderr=subprocess.DEVNULL)
                seen = None
                while time.perf_counter() - t0 < 10:
                    if poll()[2] == "1":
                        seen = time.perf_counter()
                        break
                    time.sleep(0.001)
                process.wait()
                if seen is None:
                    self.fail(f"cut trial {i + 1}: COUPURE_CHARGE_SERVEUR=1 never seen within 10 s")
                    break
                cut_lat.append(seen - t0)
                t0 = time.perf_counter()
                process = subprocess.Popen(ctl + ["cut", "off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                while time.perf_counter() - t0 < 10:
                    if poll()[2] == "0":
                        off_lat.append(time.perf_counter() - t0)
                        break
                    time.sleep(0.001)
                process.wait()
                time.sleep(rnd.uniform(0.05, 0.25))
            log(f"  cut on -> $_SERVER: p50 {med(cut_lat) * 1000:.1f} ms over {len(cut_lat)} trials")
            conn.close()
        finally:
            PROCS.stop(apache)
            PROCS.stop(fpm)
            PROCS.stop(helper)
            remove_session_dir(directory)
            CLEANUP_PATHS.remove(directory)
        start_ms = [x["from_request_start"] * 1000 for x in session_lat]
        response_ms = [x["from_response"] * 1000 for x in session_lat]
        cut_ms = [x * 1000 for x in cut_lat]
        off_ms = [x * 1000 for x in off_lat]
        self.results["sections"]["freshness"] = {"session_ms_from_request_start": start_ms,
                                                  "session_ms_from_response": response_ms,
                                                  "cut_on_ms": cut_ms, "cut_off_ms": off_ms}
        table = ["| Path | Trials | p50 | p99 | min–max |", "|---|---:|---:|---:|---:|"]
        for label, values in (("session write (php-fpm request start) → new SESSIONS_ACTIVES in $_SERVER", start_ms),
                              ("same, measured from the login response", response_ms),
                              ("`coupecircuitctl cut on` (process start) → COUPURE_CHARGE_SERVEUR=1", cut_ms),
                              ("`coupecircuitctl cut off` → COUPURE_CHARGE_SERVEUR=0", off_ms)):
            if values:
                table.append(f"| {label} | {len(values)} | {percentile(values, 50):.1f} ms | {percentile(values, 99):.1f} ms | "
                             f"{spread(values, '{:.1f}')} ms |")
        self.details.append(("4. Freshness",
                             "Apache (mpm_event) + mod_proxy_fcgi + php-fpm 8.2 (files session handler) + "
                             "mod_coupecircuit + coupecircuitd on a 1k-file session directory. Each trial: a request to "
                             "a page that calls session_start() and stores the login marker (a new session), then a "
                             "PHP page read through the module is polled every ~2 ms on a keep-alive connection until "
                             "SESSIONS_ACTIVES grows; 50–250 ms random pause between trials. Cut: "
                             "`coupecircuitctl cut on` is started, and the same page is polled until "
                             "COUPURE_CHARGE_SERVEUR=1.\n\n" + "\n".join(table)))
        if start_ms:
            p99 = percentile(start_ms, 99)
            self.rows.append({"section": "4", "what": "Freshness: php-fpm session write → $_SERVER, p99 (p50)",
                              "value": f"{p99:.1f} ms ({percentile(start_ms, 50):.1f} ms)", "spread": spread(start_ms, "{:.1f}") + " ms",
                              "target": "p99 ≤ 1 s", "met": p99 <= 1000})
        if cut_ms:
            p99 = percentile(cut_ms, 99)
            self.rows.append({"section": "4", "what": "Freshness: `coupecircuitctl cut on` → $_SERVER, p99 (p50)",
                              "value": f"{p99:.1f} ms ({percentile(cut_ms, 50):.1f} ms)", "spread": spread(cut_ms, "{:.1f}") + " ms",
                              "target": "p99 ≤ 100 ms", "met": p99 <= 100})

    # ---- 5. helper cost

    def section_helper(self):
        log("5. helper CPU at rest and under 1,000 session writes/s (100k files)")
        window = 10 if self.quick else 60
        directory = getattr(self, "scanner_dir_100k", None)
        if directory:
            self.tool_json("retime", directory)
        else:
            directory, _ = self.generate("helper-100k", 100_000, seed=555, stable=900)
        self.helper_dir = directory
        base = self.mkdir(self.path("helper"))
        snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
        helper = self.start_daemon(directory, snapshot, state, name="cost-helper")
        out = {}
        try:
            time.sleep(2)
            scan0 = self.status(snapshot, state).get("last_scan", {})
            c0, t0 = cpu_ns(helper.pid), time.perf_counter()
            if helper.poll() is not None:
                raise HardCheckFailed(f"coupecircuitd exited ({helper.returncode}), see {helper.log_path}")
            time.sleep(window)
            c1, t1 = cpu_ns(helper.pid), time.perf_counter()
            scan1 = self.status(snapshot, state).get("last_scan", {})
            rest_rescan_s = (scan1.get("duration_us", 0) / 1e6
                             if (scan1.get("wall_time"), scan1.get("duration_us")) !=
                             (scan0.get("wall_time"), scan0.get("duration_us")) else 0.0)
            rest = (c1 - c0) / 1e9 / (t1 - t0) * 100
            writer = subprocess.Popen([self.tool, "churn", directory, "1000", str(window + 2), "77"],
                                      stdout=subprocess.PIPE, text=True)
            time.sleep(1)
            c2, t2 = cpu_ns(helper.pid), time.perf_counter()
            split0 = proc_split(helper.pid)
            w0 = cpu_ns(writer.pid)
            time.sleep(window)
            c3, t3 = cpu_ns(helper.pid), time.perf_counter()
            split1 = proc_split(helper.pid)
            w1 = cpu_ns(writer.pid)
            stdout, _ = writer.communicate(timeout=60)
            churn_info = json.loads(stdout.strip().splitlines()[-1])
            if helper.poll() is not None:
                raise HardCheckFailed(f"coupecircuitd exited ({helper.returncode}) during the churn, see {helper.log_path}")
            busy = (c3 - c2) / 1e9 / (t3 - t2) * 100
            writes = churn_info["rate"] * (t3 - t2)
            out = {"window_s": window, "rest_pct": rest, "churn_pct": busy, "writer": churn_info,
                   "writer_pct": (w1 - w0) / 1e9 / (t3 - t2) * 100, "hwm_kb": proc_status_kb(helper.pid, "VmHWM"),
                   "user_s": split1[0] - split0[0], "system_s": split1[1] - split0[1],
                   "switches_per_write": (split1[2] - split0[2]) / max(1.0, writes), "rest_rescan_s": rest_rescan_s,
                   "cpu_us_per_write": (c3 - c2) / 1e3 / max(1.0, writes)}
            log(f"  at rest {rest:.3f} % of a core, under churn {busy:.3f} % ({churn_info['rate']:.0f} writes/s)")
        finally:
            PROCS.stop(helper)
        self.results["sections"]["helper"] = out
        table = ["| Condition | coupecircuitd CPU (% of one core) | Notes |", "|---|---:|---|",
                 f"| at rest, {window} s | {out['rest_pct']:.3f} % | default rescan interval (60 s): "
                 + (f"the window holds one periodic full rescan ({out['rest_rescan_s']:.2f} s) |"
                    if out["rest_rescan_s"] else "no periodic full rescan in the window |"),
                 f"| {out['writer']['rate']:.0f} session writes/s, {window} s | {out['churn_pct']:.3f} % | "
                 f"{out['cpu_us_per_write']:.1f} µs of helper CPU per write (user {out['user_s']:.2f} s / system "
                 f"{out['system_s']:.2f} s, tick-sampled), {out['switches_per_write']:.2f} context switches per write; "
                 f"the writer itself: {out['writer_pct']:.1f} % |"]
        self.details.append(("5. Helper cost",
                             f"`coupecircuitd --foreground` on 100k session files; CPU from /proc/<pid>/task/*/schedstat "
                             f"over {window} s at rest, then over {window} s while a writer rewrites random sess_ files "
                             "(new content each time) at a steady 1,000 per second. Peak RSS (VmHWM): "
                             f"{out['hwm_kb'] / 1024:.1f} MB.\n\n" + "\n".join(table)))
        self.rows.append({"section": "5", "what": f"Helper CPU under 1,000 writes/s on 100k files (at rest: {out['rest_pct']:.3f} %)",
                          "value": f"{out['churn_pct']:.2f} % of a core", "spread": f"(one {window} s window)",
                          "target": "≤ 2 %", "met": out["churn_pct"] <= 2})

    # ---- 6. profiles (where the helper's time goes)

    def section_profile(self):
        log("6. profiles: coupecircuitd --once and under churn (strace -c, callgrind, perf)")
        directory = getattr(self, "helper_dir", None) or getattr(self, "scanner_dir_100k", None)
        if not directory or not os.path.isdir(directory):
            directory, _ = self.generate("profile-100k", 100_000, seed=556, stable=900)
        files = sum(1 for name in os.listdir(directory) if name.startswith("sess_"))
        base = self.mkdir(self.path("profile"))
        snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
        once = [self.daemon_bin, "--once", "--config", self.daemon_conf, "--session-dir", directory,
                "--snapshot", snapshot, "--state", state]
        shell = (f"find {shlex.quote(directory)} -name 'sess_*' -mmin -24 -size +0 | "
                 f"xargs grep -l {shlex.quote(AUTH_MARKER)} | wc -l")
        parts = [f"On {human_count(files)} session files (warm cache). Syscalls counted with `strace -c -f`, user-space "
                 "instructions with callgrind, time split with `perf record -e cpu-clock` (a VM: kernel samples are "
                 "approximate).\n"]
        self.prewarm(directory)
        run(once)  # warm
        if shutil.which("strace"):
            table = ["| Syscall | coupecircuitd --once: calls (per file) | shell way: calls (per file) |", "|---|---:|---:|"]
            counts = {}
            for label, args in (("once", once), ("shell", ["sh", "-c", shell])):
                out_file = os.path.join(base, f"strace-{label}.txt")
                run(["strace", "-f", "-c", "-o", out_file] + args, env=dict(os.environ, LC_ALL="C"))
                counts[label] = parse_strace_c(out_file)
            names = sorted(set(counts["once"]) | set(counts["shell"]),
                           key=lambda n: -(counts["once"].get(n, 0) + counts["shell"].get(n, 0)))
            for name in names[:8]:
                a, b = counts["once"].get(name, 0), counts["shell"].get(name, 0)
                table.append(f"| {name} | {a:,} ({a / files:.2f}) | {b:,} ({b / files:.2f}) |")
            ta, tb = sum(counts["once"].values()), sum(counts["shell"].values())
            table.append(f"| **total** | {ta:,} ({ta / files:.2f}) | {tb:,} ({tb / files:.2f}) |")
            parts += ["First scan, system calls:\n", "\n".join(table), ""]
            self.results.setdefault("profile", {})["strace"] = counts
        out_file = os.path.join(base, "once.callgrind")
        run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"] + once)
        inclusive = callgrind_inclusive(out_file)
        total = inclusive.get("PROGRAM TOTALS", 0)
        if total:
            table = ["| Function (inclusive) | Instructions | Share | Per file |", "|---|---:|---:|---:|"]
            for name, cost in top_functions(inclusive, total)[:14]:
                table.append(f"| `{name}` | {cost:,} | {cost / total * 100:.1f} % | {cost / files:,.0f} |")
            parts += [f"First scan, user-space instructions (callgrind, total {total:,}, {total / files:,.0f} per file):\n",
                      "\n".join(table), ""]
        if shutil.which("perf"):
            data = os.path.join(base, "once.perf")
            if run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-o", data] + once,
                   check=False).returncode == 0:
                parts += ["First scan, where the time goes (perf, self time):\n", perf_tables(data), ""]
            snapshot2 = os.path.join(base, "snapshot-churn")
            helper = self.start_daemon(directory, snapshot2, state + "-churn", name="profile-helper")
            try:
                writer = subprocess.Popen([self.tool, "churn", directory, "1000", "14", "78"], stdout=subprocess.DEVNULL)
                time.sleep(2)
                data = os.path.join(base, "churn.perf")
                ok = run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-p", str(helper.pid), "-o",
                          data, "--", "sleep", "10"], check=False).returncode == 0
                writer.wait(timeout=60)
                if shutil.which("strace"):
                    writer = subprocess.Popen([self.tool, "churn", directory, "1000", "7", "79"], stdout=subprocess.DEVNULL)
                    time.sleep(1)
                    out_file = os.path.join(base, "strace-churn.txt")
                    tracer = subprocess.Popen(["strace", "-c", "-o", out_file, "-p", str(helper.pid)],
                                              stderr=subprocess.DEVNULL)
                    time.sleep(5)
                    tracer.send_signal(signal.SIGINT)
                    tracer.wait(timeout=30)
                    writer.wait(timeout=60)
                    calls = parse_strace_c(out_file)
                    per_write = ", ".join(f"{name} {count / 5000:.2f}" for name, count in
                                          sorted(calls.items(), key=lambda kv: -kv[1])[:8])
                    parts += [f"Under 1,000 writes/s, system calls per session write (strace -c over 5 s, the "
                              f"helper slowed by tracing): {per_write}.\n"]
                    self.results.setdefault("profile", {})["strace_churn"] = calls
            finally:
                PROCS.stop(helper)
            if ok:
                parts += ["Under 1,000 writes/s, where the helper's time goes (perf, self time):\n", perf_tables(data), ""]
        # User-space instructions per session write: two helpers under
        # callgrind on identical directories, one of them with 10 s of churn.
        pair = []
        for label in ("churned", "idle"):
            d, _ = self.generate(f"profile-{label}-30k", 30_000, seed=808, stable=900)
            out_file = os.path.join(base, f"helper-{label}.callgrind")
            process = PROCS.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", self.daemon_bin,
                                   "--foreground", "--config", self.daemon_conf, "--session-dir", d, "--snapshot",
                                   os.path.join(base, f"snapshot-{label}"), "--state", os.path.join(base, f"state-{label}")],
                                  self.path("logs", f"profile-{label}.log"))
            pair.append((d, out_file, process))
        try:
            time.sleep(12)  # both finish their first scan
            churn = json.loads(run([self.tool, "churn", pair[0][0], "1000", "10", "81"]).stdout.strip().splitlines()[-1])
            time.sleep(2)
        finally:
            for _, _, process in pair:
                PROCS.stop(process, timeout=60)
        a, b = callgrind_functions(pair[0][1]), callgrind_functions(pair[1][1])
        writes = max(1, churn["writes"])
        delta = {k: (a.get(k, 0) - b.get(k, 0)) / writes for k in set(a) | set(b)}
        total = sum(delta.values())
        table = ["| Function (self) | Instructions / write | Share |", "|---|---:|---:|"]
        for name, cost in sorted(delta.items(), key=lambda kv: -kv[1])[:12]:
            table.append(f"| `{name}` | {cost:,.0f} | {cost / total * 100:.1f} % |")
        parts += [f"Under churn, user-space instructions per session write (callgrind, two helpers on identical "
                  f"30k-file directories, one receiving {writes:,} writes in 10 s): {total:,.0f} in all.\n",
                  "\n".join(table), ""]
        self.results.setdefault("profile", {})["instructions_per_write"] = total
        self.details.append(("6. Profiles", "\n".join(parts)))

    # ---- driver

    def machine(self):
        model = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        try:
            with open("/etc/debian_version") as f:
                debian = f.read().strip()
        except OSError:
            debian = "?"
        memory = "?"
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    memory = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
        damon = damon_pageout_age()
        if damon:
            self.notes.append(f"This machine pages out page-cache pages left idle for about {damon:.0f} s (a DAMON "
                              "`pageout` scheme is running): \"warm\" means touched within that time. At 1M files "
                              "the warm rounds follow each other closely enough; a cold pass takes longer than that.")
        return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "debian": debian,
                "memory": memory, "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %z"),
                "load_at_start": os.getloadavg()}

    def report(self, elapsed):
        m = self.results["machine"]
        lines = [f"## CoupeCircuit benchmarks ({'quick' if self.quick else 'full'} mode)", "",
                 f"Machine: {m['nproc']} CPUs ({m['cpu']}), {m['memory']} RAM, kernel {m['kernel']}, Debian {m['debian']}; "
                 f"run {m['date']}, load average at start {m['load_at_start'][0]:.2f}; "
                 f"suite time {elapsed / 60:.1f} min.", "",
                 "| # | Measurement (side by side, same run) | Result (median) | min–max | Target | Met |",
                 "|---|---|---:|---:|---|---|"]
        for row in self.rows:
            met = {True: "yes", False: "**no**", None: "—"}[row["met"]]
            lines.append(f"| {row['section']} | {row['what']} | {row['value']} | {row['spread']} | {row['target']} | {met} |")
        if self.failures:
            lines += ["", "**Hard checks failed:**", ""] + [f"- {f}" for f in self.failures]
        for title, body in self.details:
            lines += ["", f"### {title}", "", body]
        if self.notes:
            lines += ["", "### Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"

    def main(self):
        global STORE
        self.mkdir(self.path("logs"))
        STORE = SessionStore(self.work, self.o.session_fs)
        # 1M files (70 % with one 4 KiB block) + 100k + small ones.
        kind = STORE.setup(size_gb=4 if self.quick else 12, inodes=300_000 if self.quick else 1_500_000)
        self.results["session_fs"] = kind
        if kind == "loop":
            self.notes.append("Session directories: a dedicated ext4 filesystem (sparse image under the work directory, "
                              "loop device with direct I/O, default mount options: relatime, no discard), removed at "
                              "the end of the run.")
        else:
            self.notes.append(f"Session directories: plain directories under {STORE.root}.")
        with open(self.daemon_conf, "w") as f:
            f.write("[log]\nlevel = notice\n")
        self.results["machine"] = self.machine()
        if self.o.only:
            wanted = self.o.only.split(",")
        else:
            wanted = [s for s in SECTIONS if s != "profile" or (not self.quick and not self.o.no_profile)]
        for name in wanted:
            if name not in SECTIONS:
                raise SystemExit(f"unknown section {name} (one of {', '.join(SECTIONS)})")
        need_module = any(s in wanted for s in ("percall", "throughput"))
        # A world-readable 1k-file session directory: the helper for sections
        # 1-2 scans it and the naive PHP page globs it.
        glob_dir, _ = self.generate("module-1k", 1000, seed=1001, stable=900, mode="0644")
        self.docroot = self.write_docroot(glob_dir)
        timings = {}
        try:
            if need_module:
                base = self.mkdir(self.path("module"))
                snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
                process = self.start_daemon(glob_dir, snapshot, state, name="module-helper")
                self.module_helper = {"process": process, "snapshot": snapshot, "state": state}
            for name in SECTIONS:
                if name not in wanted:
                    continue
                if name == "scanner" and self.module_helper:
                    PROCS.stop(self.module_helper["process"])
                    self.module_helper = None
                started = time.monotonic()
                try:
                    getattr(self, f"section_{name}")()
                except HardCheckFailed as error:
                    self.fail(f"{name}: {error}")
                timings[name] = time.monotonic() - started
                log(f"section {name} done in {timings[name]:.0f} s")
        finally:
            if self.module_helper:
                PROCS.stop(self.module_helper["process"])
        elapsed = time.monotonic() - self.started
        self.results["timings_s"] = timings
        self.results["elapsed_s"] = elapsed
        self.results["failures"] = self.failures
        self.results["notes"] = self.notes
        text = self.report(elapsed)
        with open(self.path("results.md"), "w") as f:
            f.write(text)
        with open(self.path("results.json"), "w") as f:
            json.dump(self.results, f, indent=2, default=str)
        print(text, flush=True)
        log(f"report: {self.path('results.md')}, raw figures: {self.path('results.json')}")
        started = time.monotonic()
        PROCS.stop_all()
        for path in list(CLEANUP_PATHS):
            if STORE.kind != "loop":
                remove_session_dir(path)
            CLEANUP_PATHS.remove(path)
        STORE.teardown()
        log(f"generated session directories removed in {time.monotonic() - started:.0f} s")
        if self.failures:
            return 1
        if self.o.strict and any(r["met"] is False for r in self.rows):
            return 1
        return 0


def callgrind_functions(path):
    """Self instruction cost per function of one callgrind output."""
    result = subprocess.run(["callgrind_annotate", "--threshold=100", "--inclusive=no", path],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    costs = {}
    for line in result.stdout.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\))?\s*(\S.*:.*)$", line)
        if not match:
            continue
        location = match.group(2).strip()
        file_part, _, rest = location.partition(":")
        function = re.sub(r"'\d+", "", rest)
        library = ""
        m = re.search(r"\[(.*)\]\s*$", function)
        if m:
            library = os.path.basename(m.group(1))
            function = function[:m.start()].strip()
        function = function.replace("(anonymous namespace)::", "")
        if "(" in function:
            function = function[:function.index("(")] + "()"
        if function.startswith("0x"):
            function = "(anonymous code)"
        key = f"{function} [{library}]" if library else function
        costs[key] = costs.get(key, 0) + int(match.group(1).replace(",", ""))
    return costs


def callgrind_delta(run, baseline):
    """Per-request self cost per function of `run` minus `baseline`, each
    given as (N, output with N requests, output with 2N requests)."""
    def per_request(entry):
        n, small, large = entry
        a, b = callgrind_functions(small), callgrind_functions(large)
        return {k: (b.get(k, 0) - a.get(k, 0)) / n for k in set(a) | set(b)}
    x, y = per_request(run), per_request(baseline)
    delta = {k: x.get(k, 0) - y.get(k, 0) for k in set(x) | set(y)}
    return sorted(((k, v) for k, v in delta.items() if abs(v) >= 1), key=lambda kv: -kv[1])


def damon_pageout_age():
    """Seconds of idleness after which a running DAMON pageout scheme
    reclaims pages, or None."""
    base = "/sys/kernel/mm/damon/admin/kdamonds"
    try:
        for kdamond in os.listdir(base):
            if not kdamond.isdigit():
                continue
            with open(f"{base}/{kdamond}/state") as f:
                if f.read().strip() != "on":
                    continue
            contexts = f"{base}/{kdamond}/contexts"
            for context in (c for c in os.listdir(contexts) if c.isdigit()):
                with open(f"{contexts}/{context}/monitoring_attrs/intervals/aggr_us") as f:
                    aggregation_us = int(f.read())
                schemes = f"{contexts}/{context}/schemes"
                for scheme in (x for x in os.listdir(schemes) if x.isdigit()):
                    with open(f"{schemes}/{scheme}/action") as f:
                        if f.read().strip() != "pageout":
                            continue
                    with open(f"{schemes}/{scheme}/access_pattern/age/min") as f:
                        return int(f.read()) * aggregation_us / 1e6
    except (OSError, ValueError):
        return None
    return None


def parse_strace_c(path):
    calls = {}
    with open(path) as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                try:
                    calls[fields[-1]] = int(fields[3])
                except ValueError:
                    continue
    return calls


def callgrind_inclusive(path):
    result = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100", path],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    costs = {}
    for line in result.stdout.splitlines():
        match = re.match(r"\s*([\d,]+)\s+(?:\([^)]*\))?\s*(.*)$", line)
        if not match:
            continue
        location = match.group(2).strip()
        cost = int(match.group(1).replace(",", ""))
        if location.startswith("PROGRAM TOTALS"):
            costs["PROGRAM TOTALS"] = cost
            continue
        if ":" not in location:
            continue
        function = location.partition(":")[2]
        function = re.sub(r"\s*\[[^\]]*\]\s*$", "", function).replace("(anonymous namespace)::", "")
        if "(" in function:
            function = function[:function.index("(")]
        costs[function] = max(costs.get(function, 0), cost)
    return costs


def top_functions(inclusive, total):
    """The program's own functions below main, and libc/libstdc++ entry points."""
    skip = ("main", "(below main)", "__libc_start_main", "__libc_start_call_main", "PROGRAM TOTALS",
            "coupecircuit::run_daemon", "_start")
    rows = [(name, cost) for name, cost in inclusive.items()
            if name and not name.startswith("0x") and not name.startswith("_dl") and name not in skip
            and cost < total * 0.97]
    return sorted(rows, key=lambda kv: -kv[1])


def perf_tables(data):
    def report(sort):
        result = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", sort, "--stdio", "-g", "none"],
                                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        rows = []
        for line in result.stdout.splitlines():
            match = re.match(r"\s*([\d.]+)%\s+(.*?)\s*(?:-\s+-\s*)?$", line)
            if match:
                rows.append((float(match.group(1)), match.group(2).strip()))
        return rows
    split = ", ".join(f"{name} {pct:.1f} %" for pct, name in report("dso")[:5])
    table = ["| Symbol | Self time |", "|---|---:|"]
    for pct, name in report("symbol")[:15]:
        name = re.sub(r"\s+", " ", name).replace("(anonymous namespace)::", "")
        if len(name) > 90:
            name = name[:87] + "..."
        table.append(f"| `{name}` | {pct:.1f} % |")
    return f"By object: {split}.\n\n" + "\n".join(table)


def remove_session_dir(path):
    if not os.path.isdir(path):
        return
    tool = os.environ.get("CC_BENCHTOOL")
    if tool and os.path.exists(tool):
        subprocess.run([tool, "remove", path], stdout=subprocess.DEVNULL, check=False)
    if os.path.exists(path):
        shutil.rmtree(path, ignore_errors=True)
    if os.path.exists(path + ".manifest"):
        os.unlink(path + ".manifest")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI smoke: small sizes, few repetitions")
    parser.add_argument("--build-dir", required=True)
    parser.add_argument("--work-dir", required=True)
    parser.add_argument("--tool", required=True, help="cc_benchtool binary")
    parser.add_argument("--only", help="comma-separated sections: " + ",".join(SECTIONS))
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument("--no-profile", action="store_true", help="skip the profiles (section 6) in full mode")
    parser.add_argument("--apache-bin", default="/usr/sbin/apache2")
    parser.add_argument("--apache-modules", default="/usr/lib/apache2/modules")
    parser.add_argument("--php-fpm", default="/usr/sbin/php-fpm8.2")
    parser.add_argument("--session-fs", choices=("loop", "dir"), default="dir",
                        help="session directories in the work directory (default) or on a dedicated loop-mounted ext4")
    options = parser.parse_args()
    os.environ["CC_BENCHTOOL"] = options.tool
    os.makedirs(options.work_dir, exist_ok=True)
    atexit.register(cleanup)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    return Bench(options).main()


if __name__ == "__main__":
    sys.exit(main())
