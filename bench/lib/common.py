"""Process, HTTP, CPU-time and statistics helpers shared by every benchmark section,
and the constants of the report (the seven variables, their static values)."""
import http.client
import math
import os
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
