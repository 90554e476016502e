"""4. Freshness: session write / manual cut -> value seen by a request."""
import http.client
import os
import pwd
import random
import subprocess
import time
from pathlib import Path

import harness
from lib.common import (CLEANUP_PATHS, PROCS, THRESHOLD_LINES, HardCheckFailed, http_get, log, med, percentile,
                        remove_session_dir, spread, wait_ok)


def start_server(bench, base, session_dir, snapshot):
    """The integration tests' event variant: Apache (mpm_event) + php-fpm
    through mod_proxy_fcgi + mod_coupecircuit, serving the bench's pages."""
    paths = harness.Paths(build_dir=Path(bench.build), source_dir=Path(__file__).resolve().parents[2])
    try:
        apache = harness.Apache(paths, Path(base) / "apache", "event", session_dir=Path(session_dir),
                                snapshot=Path(snapshot), with_module=True,
                                server_lines=THRESHOLD_LINES.strip().splitlines(), document_root=Path(bench.docroot))
    except RuntimeError as error:
        raise HardCheckFailed(f"no Apache ServerRoot under {base}: {error}") from error
    try:
        apache.start()
    except (AssertionError, RuntimeError) as error:
        apache.stop()
        raise HardCheckFailed(f"Apache + php-fpm did not start: {error}") from error
    return apache


def poller(conn):
    """Reads the seven values through the module on one keep-alive connection."""
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
    return poll


def poll_until(poll, field, accept, t0, pause):
    """perf_counter() when poll()[field] is accepted, None after 10 s from t0."""
    while time.perf_counter() - t0 < 10:
        if accept(poll()[field]):
            return time.perf_counter()
        time.sleep(pause)
    return None


def session_trials(bench, port, poll, trials, rnd):
    """A login (new session) -> the new SESSIONS_ACTIVES seen by a request."""
    latencies = []
    for i in range(trials):
        before = int(poll()[1])
        t0 = time.perf_counter()
        status, body = http_get(port, "/login.php")
        t1 = time.perf_counter()
        if status != 200:
            raise HardCheckFailed(f"login page: HTTP {status}: {body!r}")
        seen = poll_until(poll, 1, lambda value: int(value) > before, t0, 0.002)
        if seen is None:
            bench.fail(f"freshness trial {i + 1}: the new session never showed in $_SERVER within 10 s")
            break
        latencies.append({"from_request_start": seen - t0, "from_response": seen - t1})
        time.sleep(rnd.uniform(0.05, 0.25))
    log(f"  session write -> $_SERVER: p50 {med([x['from_request_start'] for x in latencies]) * 1000:.1f} ms "
        f"over {len(latencies)} trials")
    return latencies


def cut_trials(bench, ctl, poll, trials, rnd):
    """`coupecircuitctl cut on` / `cut off` -> COUPURE_CHARGE_SERVEUR seen by a request."""
    cut_lat, off_lat = [], []
    for i in range(trials):
        t0 = time.perf_counter()
        process = subprocess.Popen(ctl + ["cut", "on", "--reason", "bench"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        seen = poll_until(poll, 2, lambda value: value == "1", t0, 0.001)
        process.wait()
        if seen is None:
            bench.fail(f"cut trial {i + 1}: COUPURE_CHARGE_SERVEUR=1 never seen within 10 s")
            break
        cut_lat.append(seen - t0)
        t0 = time.perf_counter()
        process = subprocess.Popen(ctl + ["cut", "off"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        seen = poll_until(poll, 2, lambda value: value == "0", t0, 0.001)
        if seen is not None:
            off_lat.append(seen - t0)
        process.wait()
        time.sleep(rnd.uniform(0.05, 0.25))
    log(f"  cut on -> $_SERVER: p50 {med(cut_lat) * 1000:.1f} ms over {len(cut_lat)} trials")
    return cut_lat, off_lat


def measure(bench, port, snapshot, state, trials, n_cut):
    wait_ok(port, "/server.php")
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    poll = poller(conn)
    deadline = time.monotonic() + 30
    while poll()[5] not in ("ok", "surcharge") and time.monotonic() < deadline:
        time.sleep(0.1)
    rnd = random.Random(99)
    session_lat = session_trials(bench, port, poll, trials, rnd)
    ctl = [bench.ctl_bin, "--snapshot", snapshot, "--state", state]
    cut_lat, off_lat = cut_trials(bench, ctl, poll, n_cut, rnd)
    conn.close()
    return session_lat, cut_lat, off_lat


def report(bench, start_ms, response_ms, cut_ms, off_ms):
    table = ["| Path | Trials | p50 | p99 | min–max |", "|---|---:|---:|---:|---:|"]
    for label, values in (("session write (php-fpm request start) → new SESSIONS_ACTIVES in $_SERVER", start_ms),
                          ("same, measured from the login response", response_ms),
                          ("`coupecircuitctl cut on` (process start) → COUPURE_CHARGE_SERVEUR=1", cut_ms),
                          ("`coupecircuitctl cut off` → COUPURE_CHARGE_SERVEUR=0", off_ms)):
        if values:
            table.append(f"| {label} | {len(values)} | {percentile(values, 50):.1f} ms | {percentile(values, 99):.1f} ms | "
                         f"{spread(values, '{:.1f}')} ms |")
    bench.details.append(("4. Freshness",
                          "Apache (mpm_event) + mod_proxy_fcgi + php-fpm 8.2 (files session handler) + "
                          "mod_coupecircuit + coupecircuitd on a 1k-file session directory. Each trial: a request to "
                          "a page that calls session_start() and stores the login marker (a new session), then a "
                          "PHP page read through the module is polled every ~2 ms on a keep-alive connection until "
                          "SESSIONS_ACTIVES grows; 50–250 ms random pause between trials. Cut: "
                          "`coupecircuitctl cut on` is started, and the same page is polled until "
                          "COUPURE_CHARGE_SERVEUR=1.\n\n" + "\n".join(table)))
    for what, values, target, limit in (("php-fpm session write", start_ms, "p99 ≤ 1 s", 1000),
                                        ("`coupecircuitctl cut on`", cut_ms, "p99 ≤ 100 ms", 100)):
        if values:
            p99 = percentile(values, 99)
            bench.rows.append({"section": "4", "what": f"Freshness: {what} → $_SERVER, p99 (p50)",
                               "value": f"{p99:.1f} ms ({percentile(values, 50):.1f} ms)",
                               "spread": spread(values, "{:.1f}") + " ms", "target": target, "met": p99 <= limit})


def run_section(bench):
    log("4. freshness (php-fpm session write -> $_SERVER, coupecircuitctl cut -> $_SERVER)")
    trials = 20 if bench.quick else 200
    n_cut = 10 if bench.quick else 50
    directory, _ = bench.generate("fresh-1k", 1000, seed=4242, stable=900)
    if bench.is_root:
        entry = pwd.getpwnam(bench.www_user)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    base = bench.mkdir(bench.path("fresh"))
    snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
    helper = bench.start_daemon(directory, snapshot, state, name="fresh-helper")
    apache = None
    session_lat, cut_lat, off_lat = [], [], []
    try:
        apache = start_server(bench, base, directory, snapshot)
        session_lat, cut_lat, off_lat = measure(bench, apache.port, snapshot, state, trials, n_cut)
    finally:
        if apache is not None:
            apache.stop()
        PROCS.stop(helper)
        remove_session_dir(directory)
        CLEANUP_PATHS.remove(directory)
    start_ms = [x["from_request_start"] * 1000 for x in session_lat]
    response_ms = [x["from_response"] * 1000 for x in session_lat]
    cut_ms = [x * 1000 for x in cut_lat]
    off_ms = [x * 1000 for x in off_lat]
    bench.results["sections"]["freshness"] = {"session_ms_from_request_start": start_ms,
                                              "session_ms_from_response": response_ms,
                                              "cut_on_ms": cut_ms, "cut_off_ms": off_ms}
    report(bench, start_ms, response_ms, cut_ms, off_ms)
