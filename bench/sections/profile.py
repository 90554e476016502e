"""6. Profiles: where the helper's time goes (strace -c, callgrind, perf)."""
import json
import os
import shlex
import shutil
import signal
import subprocess
import time

from lib.common import AUTH_MARKER, PROCS, human_count, log, run
from lib.profiles import callgrind_functions, callgrind_inclusive, parse_strace_c, perf_tables, top_functions


def first_scan_syscalls(bench, base, once, shell, files):
    """System calls of `coupecircuitd --once` and of the shell way."""
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
    bench.results.setdefault("profile", {})["strace"] = counts
    return ["First scan, system calls:\n", "\n".join(table), ""]


def first_scan_instructions(base, once, files):
    """User-space instructions of `coupecircuitd --once`, inclusive, top functions."""
    out_file = os.path.join(base, "once.callgrind")
    run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}"] + once)
    inclusive = callgrind_inclusive(out_file)
    total = inclusive.get("PROGRAM TOTALS", 0)
    if not total:
        return []
    table = ["| Function (inclusive) | Instructions | Share | Per file |", "|---|---:|---:|---:|"]
    for name, cost in top_functions(inclusive, total)[:14]:
        table.append(f"| `{name}` | {cost:,} | {cost / total * 100:.1f} % | {cost / files:,.0f} |")
    return [f"First scan, user-space instructions (callgrind, total {total:,}, {total / files:,.0f} per file):\n",
            "\n".join(table), ""]


def churn_syscalls(bench, helper, directory, base):
    """System calls per session write of a running helper (strace -c over 5 s)."""
    writer = subprocess.Popen([bench.tool, "churn", directory, "1000", "7", "79"], stdout=subprocess.DEVNULL)
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
    bench.results.setdefault("profile", {})["strace_churn"] = calls
    return [f"Under 1,000 writes/s, system calls per session write (strace -c over 5 s, the "
            f"helper slowed by tracing): {per_write}.\n"]


def perf_profiles(bench, directory, base, once, state):
    """Where the time goes (perf): the first scan, then a helper under churn."""
    parts = []
    data = os.path.join(base, "once.perf")
    if run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-o", data] + once,
           check=False).returncode == 0:
        parts += ["First scan, where the time goes (perf, self time):\n", perf_tables(data), ""]
    snapshot2 = os.path.join(base, "snapshot-churn")
    helper = bench.start_daemon(directory, snapshot2, state + "-churn", name="profile-helper")
    try:
        writer = subprocess.Popen([bench.tool, "churn", directory, "1000", "14", "78"], stdout=subprocess.DEVNULL)
        time.sleep(2)
        data = os.path.join(base, "churn.perf")
        ok = run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "4000", "-g", "-p", str(helper.pid), "-o",
                  data, "--", "sleep", "10"], check=False).returncode == 0
        writer.wait(timeout=60)
        if shutil.which("strace"):
            parts += churn_syscalls(bench, helper, directory, base)
    finally:
        PROCS.stop(helper)
    if ok:
        parts += ["Under 1,000 writes/s, where the helper's time goes (perf, self time):\n", perf_tables(data), ""]
    return parts


def instructions_per_write(bench, base):
    """User-space instructions per session write: two helpers under
    callgrind on identical directories, one of them with 10 s of churn."""
    pair = []
    for label in ("churned", "idle"):
        d, _ = bench.generate(f"profile-{label}-30k", 30_000, seed=808, stable=900)
        out_file = os.path.join(base, f"helper-{label}.callgrind")
        process = PROCS.start(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out_file}", bench.daemon_bin,
                               "--foreground", "--config", bench.daemon_conf, "--session-dir", d, "--snapshot",
                               os.path.join(base, f"snapshot-{label}"), "--state", os.path.join(base, f"state-{label}")],
                              bench.path("logs", f"profile-{label}.log"))
        pair.append((d, out_file, process))
    try:
        time.sleep(12)  # both finish their first scan
        churn = json.loads(run([bench.tool, "churn", pair[0][0], "1000", "10", "81"]).stdout.strip().splitlines()[-1])
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
    bench.results.setdefault("profile", {})["instructions_per_write"] = total
    return [f"Under churn, user-space instructions per session write (callgrind, two helpers on identical "
            f"30k-file directories, one receiving {writes:,} writes in 10 s): {total:,.0f} in all.\n",
            "\n".join(table), ""]


def run_section(bench):
    log("6. profiles: coupecircuitd --once and under churn (strace -c, callgrind, perf)")
    directory = getattr(bench, "helper_dir", None) or getattr(bench, "scanner_dir_100k", None)
    if not directory or not os.path.isdir(directory):
        directory, _ = bench.generate("profile-100k", 100_000, seed=556, stable=900)
    files = sum(1 for name in os.listdir(directory) if name.startswith("sess_"))
    base = bench.mkdir(bench.path("profile"))
    snapshot, state = os.path.join(base, "snapshot"), os.path.join(base, "state")
    once = [bench.daemon_bin, "--once", "--config", bench.daemon_conf, "--session-dir", directory,
            "--snapshot", snapshot, "--state", state]
    shell = (f"find {shlex.quote(directory)} -name 'sess_*' -mmin -24 -size +0 | "
             f"xargs grep -l {shlex.quote(AUTH_MARKER)} | wc -l")
    parts = [f"On {human_count(files)} session files (warm cache). Syscalls counted with `strace -c -f`, user-space "
             "instructions with callgrind, time split with `perf record -e cpu-clock` (a VM: kernel samples are "
             "approximate).\n"]
    bench.prewarm(directory)
    run(once)  # warm
    if shutil.which("strace"):
        parts += first_scan_syscalls(bench, base, once, shell, files)
    parts += first_scan_instructions(base, once, files)
    if shutil.which("perf"):
        parts += perf_profiles(bench, directory, base, once, state)
    parts += instructions_per_write(bench, base)
    bench.details.append(("6. Profiles", "\n".join(parts)))
